//! Typed decoding of error-queue messages and of `SCM_ZC_NOTIFICATION`
//! answers, both into [`ZcRange`].

use crate::error::{DecodeError, ZcError};
use crate::layout::{
    read_ee, read_elem, read_timestamps, read_zc_length, EE_SIZE, ZC_ELEM_SIZE, ZC_ELEM_ZEROCOPY,
    ZC_INFO_SIZE,
};
use crate::walk::Cmsg;
use crate::ZC_POISON;
use msgzc_abi::FromBytes;
use msgzc_abi::{
    Endian, ErrOrigin, Target, WordSize, IPV6_RECVERR, IP_RECVERR, SOL_IP, SOL_IPV6,
    SO_EE_CODE_ZEROCOPY_COPIED,
};

/// An inclusive range of completed `MSG_ZEROCOPY` send ids.
///
/// Ids are the kernel's per-socket `u32` counter, so a range may wrap:
/// `lo > hi` means `lo..=u32::MAX` then `0..=hi`.
///
/// ```
/// use msgzc_cmsg::ZcRange;
/// let r = ZcRange { lo: u32::MAX - 1, hi: 1, copied: true };
/// assert_eq!(r.count(), 4);
/// assert!(r.contains(0) && !r.contains(2));
/// assert_eq!(ZcRange { lo: 0, hi: u32::MAX, copied: false }.count(), 1 << 32);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ZcRange {
    /// First id (inclusive).
    pub lo: u32,
    /// Last id (inclusive).
    pub hi: u32,
    /// The kernel copied the data instead of sending the pages
    /// (`SO_EE_CODE_ZEROCOPY_COPIED`, or `zerocopy == 0` in `zc_info`).
    pub copied: bool,
}

impl ZcRange {
    /// How many ids the range covers, `1..=2^32`.
    ///
    /// ```
    /// # use msgzc_cmsg::ZcRange;
    /// assert_eq!(ZcRange { lo: 5, hi: 5, copied: false }.count(), 1);
    /// assert_eq!(ZcRange { lo: u32::MAX, hi: 0, copied: false }.count(), 2);
    /// ```
    pub const fn count(&self) -> u64 {
        self.hi.wrapping_sub(self.lo) as u64 + 1
    }

    /// Whether `id` is in the range (wrapping).
    ///
    /// ```
    /// # use msgzc_cmsg::ZcRange;
    /// let r = ZcRange { lo: 10, hi: 12, copied: false };
    /// assert!(r.contains(10) && r.contains(12) && !r.contains(9) && !r.contains(13));
    /// ```
    pub const fn contains(&self, id: u32) -> bool {
        id.wrapping_sub(self.lo) <= self.hi.wrapping_sub(self.lo)
    }

    /// The ids in order, `lo` first.
    ///
    /// ```
    /// # use msgzc_cmsg::ZcRange;
    /// let r = ZcRange { lo: u32::MAX, hi: 1, copied: true };
    /// assert!(r.ids().eq([u32::MAX, 0, 1]));
    /// ```
    pub fn ids(&self) -> impl Iterator<Item = u32> {
        let lo = self.lo;
        (0..self.count()).map(move |i| lo.wrapping_add(i as u32))
    }
}

/// A `struct sock_extended_err` that is not a zerocopy completion (ICMP and
/// local errors, timestamp reports), with the offender address that may
/// follow it.
///
/// ```
/// use msgzc_cmsg::{decode_errqueue, Cmsg, ErrqueueItem, Offender};
/// use msgzc_abi::{Arch, ErrOrigin};
///
/// // x86_64: ICMP port unreachable (ECONNREFUSED, origin 2, type 3, code 3)
/// // followed by the offender's sockaddr_in (AF_INET, 127.0.0.1).
/// let mut data = [0u8; 32];
/// data[..8].copy_from_slice(&[111, 0, 0, 0, 2, 3, 3, 0]);
/// data[16..18].copy_from_slice(&2u16.to_le_bytes());
/// data[20..24].copy_from_slice(&[127, 0, 0, 1]);
/// let m = Cmsg { level: 0, ty: 11, data: &data, offset: 0 };
/// let Ok(ErrqueueItem::Extended(e)) = decode_errqueue(Arch::X86_64.target(), &m) else {
///     panic!("not an extended error");
/// };
/// assert_eq!((e.errno, e.origin(), e.ty, e.code), (111, Some(ErrOrigin::Icmp), 3, 3));
/// assert_eq!(&e.offender[4..8], &[127, 0, 0, 1]);
/// let addr = "127.0.0.1:0".parse().unwrap();
/// assert_eq!(e.offender_addr(Arch::X86_64.target()), Ok(Some(Offender::V4(addr))));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtendedErr<'a> {
    /// `ee_errno` (0 for timestamp reports).
    pub errno: u32,
    /// `ee_origin`, raw; see [`origin`](Self::origin).
    pub origin_raw: u8,
    /// `ee_type` (ICMP type, or `SCM_TSTAMP_*`).
    pub ty: u8,
    /// `ee_code` (ICMP code).
    pub code: u8,
    /// `ee_info` (e.g. MTU, or the timestamp key).
    pub info: u32,
    /// `ee_data`.
    pub data: u32,
    /// `SO_EE_OFFENDER`: the raw `sockaddr` after the struct, if any, in
    /// the target's layout; [`offender_addr`](Self::offender_addr) decodes
    /// it.
    pub offender: &'a [u8],
}

impl ExtendedErr<'_> {
    /// The origin, if it is a known one.
    ///
    /// ```
    /// # use msgzc_cmsg::ExtendedErr;
    /// # use msgzc_abi::ErrOrigin;
    /// let e = ExtendedErr { errno: 0, origin_raw: 4, ty: 0, code: 0, info: 0, data: 0, offender: &[] };
    /// assert_eq!(e.origin(), Some(ErrOrigin::Timestamping));
    /// assert_eq!(ExtendedErr { origin_raw: 99, ..e }.origin(), None);
    /// ```
    pub fn origin(&self) -> Option<ErrOrigin> {
        ErrOrigin::from_raw(self.origin_raw)
    }
}

/// The three timestamps of an `SCM_TIMESTAMPING` report (software,
/// deprecated, hardware), as `(seconds, nanoseconds)`.
///
/// ```
/// use msgzc_cmsg::{decode_errqueue, Cmsg, ErrqueueItem, Timestamps};
/// use msgzc_abi::Arch;
///
/// // armv7 SO_TIMESTAMPING_OLD (type 37): three 32-bit timespecs.
/// let mut data = [0u8; 24];
/// data[..4].copy_from_slice(&5i32.to_le_bytes());
/// data[4..8].copy_from_slice(&250i32.to_le_bytes());
/// let m = Cmsg { level: 1, ty: 37, data: &data, offset: 0 };
/// assert_eq!(
///     decode_errqueue(Arch::Armv7.target(), &m),
///     Ok(ErrqueueItem::Timestamps(Timestamps { ts: [(5, 250), (0, 0), (0, 0)], new: false }))
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamps {
    /// `ts[0..3]`.
    pub ts: [(i64, i64); 3],
    /// Whether it came as `SO_TIMESTAMPING_NEW` (64-bit time on every
    /// target) rather than `SO_TIMESTAMPING_OLD`.
    pub new: bool,
}

/// One error-queue control message, typed.
///
/// ```
/// use msgzc_cmsg::{decode_errqueue, Cmsg, ErrqueueItem};
/// use msgzc_abi::Arch;
///
/// // SOL_SOCKET/SCM_RIGHTS is not an error-queue message: kept, not dropped.
/// let m = Cmsg { level: 1, ty: 1, data: &[3, 0, 0, 0], offset: 48 };
/// assert_eq!(decode_errqueue(Arch::X86_64.target(), &m), Ok(ErrqueueItem::Other(m)));
/// ```
///
/// Non-exhaustive: messages this crate learns to decode get variants of
/// their own instead of [`Other`](Self::Other).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrqueueItem<'a> {
    /// A zerocopy completion (`SO_EE_ORIGIN_ZEROCOPY`, `ee_errno == 0`).
    Zerocopy(ZcRange),
    /// Any other extended error: ICMP, local, timestamping, txtime.
    Extended(ExtendedErr<'a>),
    /// A transmit timestamp report.
    Timestamps(Timestamps),
    /// A message this crate does not interpret.
    Other(Cmsg<'a>),
}

/// Decodes one message received with `MSG_ERRQUEUE` on a socket of `target`.
///
/// Recognised: `SOL_IP`/`IP_RECVERR` and `SOL_IPV6`/`IPV6_RECVERR` (the
/// kernel sends the IPv4 form for IPv4 packets on an IPv6 socket too), and
/// `SO_TIMESTAMPING_OLD`/`NEW`. Everything else is [`ErrqueueItem::Other`].
///
/// ```
/// use msgzc_cmsg::{decode_errqueue, Cmsg, ErrqueueItem, ZcRange};
/// use msgzc_abi::Arch;
///
/// // sparc64 (big-endian): sends 7..=9 completed, copied.
/// let data = [0, 0, 0, 0, 5, 0, 1, 0, 0, 0, 0, 7, 0, 0, 0, 9];
/// let m = Cmsg { level: 0, ty: 11, data: &data, offset: 0 };
/// assert_eq!(
///     decode_errqueue(Arch::Sparc64.target(), &m),
///     Ok(ErrqueueItem::Zerocopy(ZcRange { lo: 7, hi: 9, copied: true }))
/// );
/// ```
#[inline]
pub fn decode_errqueue<'a>(target: Target, m: &Cmsg<'a>) -> Result<ErrqueueItem<'a>, DecodeError> {
    let short = |needed: usize| DecodeError::Short {
        message: (m.level, m.ty),
        needed,
        got: m.data.len(),
    };
    // (level, type) as one 64-bit key: two compares rather than four.
    let key = |level: i32, ty: i32| u64::from(level as u32) | (u64::from(ty as u32) << 32);
    let k = key(m.level, m.ty);
    let is_recverr = k == key(SOL_IP, IP_RECVERR) || k == key(SOL_IPV6, IPV6_RECVERR);
    if is_recverr {
        let ee = read_ee(target.endian, m.data).ok_or(short(EE_SIZE))?;
        if ee.errno == 0 && ee.origin == ErrOrigin::Zerocopy.raw() {
            return Ok(ErrqueueItem::Zerocopy(ZcRange {
                lo: ee.info,
                hi: ee.data,
                copied: ee.code & SO_EE_CODE_ZEROCOPY_COPIED != 0,
            }));
        }
        return Ok(ErrqueueItem::Extended(ExtendedErr {
            errno: ee.errno,
            origin_raw: ee.origin,
            ty: ee.ty,
            code: ee.code,
            info: ee.info,
            data: ee.data,
            offender: &m.data[EE_SIZE..],
        }));
    }
    let s = target.family.socket();
    if m.level == s.sol_socket && (m.ty == s.so_timestamping_old || m.ty == s.so_timestamping_new) {
        let new = m.ty == s.so_timestamping_new;
        // OLD uses `long` fields: 32-bit on 32-bit targets.
        let field = if new || target.word == WordSize::W64 {
            8
        } else {
            4
        };
        let ts = read_timestamps(target.endian, field == 8, m.data).ok_or(short(6 * field))?;
        return Ok(ErrqueueItem::Timestamps(Timestamps { ts, new }));
    }
    Ok(ErrqueueItem::Other(*m))
}

/// What the kernel did with an `SCM_ZC_NOTIFICATION` placeholder.
///
/// ```
/// use msgzc_cmsg::{ControlBuf, ControlBuilder, MsgFlags, ZcOutcome, ZcRange};
/// use msgzc_abi::Arch;
///
/// let mut buf = ControlBuf::<64>::new();
/// let mut b = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap();
/// b.zc_placeholder(2).unwrap();
/// let mut c = b.finish();
/// // What a v8 kernel does through msg_control: zc_info.length = 1 and one
/// // element {lo 5, hi 9, zerocopy 0}, in place.
/// let mut answer = [0u8; 16];
/// answer[..4].copy_from_slice(&1u32.to_le_bytes());
/// answer[4..8].copy_from_slice(&5u32.to_le_bytes());
/// answer[8..12].copy_from_slice(&9u32.to_le_bytes());
/// // SAFETY: bytes 16..32 lie inside the 44-byte message `c` points to.
/// unsafe { c.as_mut_ptr().add(16).copy_from(answer.as_ptr(), 16) };
/// let ZcOutcome::Written(done) = c.zc_outcome(c.len(), MsgFlags::empty()).unwrap() else {
///     panic!("not written");
/// };
/// assert!(done.iter().eq([ZcRange { lo: 5, hi: 9, copied: true }]));
/// ```
///
/// Non-exhaustive: a later revision of the proposal may answer in new ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ZcOutcome<'a> {
    /// The buffer held no placeholder.
    NotRequested,
    /// The kernel never wrote it: it does not implement the proposal (or
    /// took the number for something else). Nothing was completed through
    /// it; completions stay on the error queue.
    Unwritten {
        /// The placeholder's capacity.
        capacity: usize,
    },
    /// The kernel wrote these completions (possibly none).
    Written(ZcCompletions<'a>),
}

/// Completions a kernel wrote into a placeholder; validated on creation
/// (see [`ZcOutcome`] for a complete example).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZcCompletions<'a> {
    endian: Endian,
    /// The written `zc_info_elem`s, whole: indexing one never needs a
    /// bounds check on its bytes.
    elems: &'a [[u8; ZC_ELEM_SIZE]],
}

impl<'a> ZcCompletions<'a> {
    /// Number of ranges.
    ///
    /// ```
    /// # use msgzc_cmsg::{ControlBuf, ControlBuilder, MsgFlags, ZcOutcome};
    /// # use msgzc_abi::Arch;
    /// # let mut buf = ControlBuf::<64>::new();
    /// # let mut b = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap();
    /// # b.zc_placeholder(2).unwrap();
    /// # let mut c = b.finish();
    /// // A kernel that wrote zc_info.length = 0: written, but empty.
    /// // SAFETY: bytes 16..20 (zc_info.length) lie inside the message.
    /// unsafe { c.as_mut_ptr().add(16).write_bytes(0, 4) };
    /// let Ok(ZcOutcome::Written(done)) = c.zc_outcome(c.len(), MsgFlags::empty()) else {
    ///     panic!()
    /// };
    /// assert_eq!(done.len(), 0);
    /// assert!(done.is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.elems.len()
    }

    /// Whether the kernel wrote no range (see [`len`](Self::len)).
    pub fn is_empty(&self) -> bool {
        self.elems.is_empty()
    }

    /// The ranges, in the order the kernel wrote them (see [`ZcOutcome`]).
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = ZcRange> + 'a {
        let e = self.endian;
        self.elems.iter().map(move |c| {
            let (lo, hi, zerocopy) = read_elem(e, c);
            ZcRange {
                lo,
                hi,
                copied: zerocopy == 0,
            }
        })
    }
}

/// Validates and decodes the data of a returned placeholder.
///
/// The elements are viewed as whole 12-byte arrays, so no byte read below
/// needs a bounds check of its own. The order of the checks is tuned for
/// a kernel's answer, but the outcome is that of checking, in turn: an
/// untouched placeholder ([`Unwritten`](ZcOutcome::Unwritten)), a length
/// over the capacity, a bad `zerocopy` byte, a disturbed poison.
#[inline]
pub(crate) fn decode_zc_info(
    e: Endian,
    data: &[u8],
    capacity: usize,
) -> Result<ZcOutcome<'_>, ZcError> {
    let size_changed = ZcError::SizeChanged {
        expected: ZC_INFO_SIZE + capacity * ZC_ELEM_SIZE,
        found: data.len(),
    };
    let Some((head, elems)) = data.split_first_chunk::<ZC_INFO_SIZE>() else {
        return Err(size_changed);
    };
    // Exactly `capacity` elements, or the size changed.
    let Ok(elems) = <[[u8; ZC_ELEM_SIZE]]>::ref_from_bytes_with_elems(elems, capacity) else {
        return Err(size_changed);
    };
    let length = read_zc_length(e, head);
    // `None` when length > capacity, which an untouched placeholder
    // (length == capacity) never has.
    let Some((written, unwritten)) = usize::try_from(length)
        .ok()
        .and_then(|n| elems.split_at_checked(n))
    else {
        return Err(ZcError::LengthOverCapacity { length, capacity });
    };
    let poisoned = |c: &[u8; ZC_ELEM_SIZE]| *c == [ZC_POISON; ZC_ELEM_SIZE];
    let bits = zerocopy_bits(written);
    // A poisoned element has a `zerocopy` byte above 1, so an untouched
    // placeholder shows up here too (or has no element at all).
    if bits > 1 || elems.is_empty() {
        if unwritten.is_empty() && elems.iter().all(poisoned) {
            return Ok(ZcOutcome::Unwritten { capacity });
        }
        let bad = written
            .iter()
            .map(|c| c[ZC_ELEM_ZEROCOPY])
            .enumerate()
            .find(|&(_, z)| z > 1);
        if let Some((index, zerocopy)) = bad {
            return Err(ZcError::BadElement { index, zerocopy });
        }
    }
    if let Some(i) = unwritten.iter().position(|c| !poisoned(c)) {
        return Err(ZcError::PoisonDisturbed {
            index: written.len() + i,
        });
    }
    Ok(ZcOutcome::Written(ZcCompletions {
        endian: e,
        elems: written,
    }))
}

/// The `zerocopy` bytes of `elems` OR-ed together, eight elements per
/// step: one `or` each, where a plain fold gets vectorised into byte
/// gathers.
#[inline]
fn zerocopy_bits(elems: &[[u8; ZC_ELEM_SIZE]]) -> u8 {
    let z = |c: &[u8; ZC_ELEM_SIZE]| c[ZC_ELEM_ZEROCOPY];
    let mut eights = elems.chunks_exact(8);
    let mut bits = 0;
    for q in &mut eights {
        if let [a, b, c, d, e, f, g, h] = q {
            bits |= z(a) | z(b) | z(c) | z(d) | z(e) | z(f) | z(g) | z(h);
        }
    }
    eights.remainder().iter().fold(bits, |bits, c| bits | z(c))
}

#[cfg(test)]
mod tests {
    //! The decoders against the straightforward ones they replaced, kept
    //! here as the specification, on every named target.

    use super::*;
    use crate::layout::{elem_bytes, zc_info_bytes};
    use msgzc_abi::proposal::v8::ZC_NOTIFICATION_MAX;
    use msgzc_abi::Arch;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// A decoded `zc_info`, comparable across implementations.
    #[derive(Debug, PartialEq)]
    enum Decoded {
        Unwritten(usize),
        Written(Vec<ZcRange>),
    }

    fn normalise(r: Result<ZcOutcome<'_>, ZcError>) -> Result<Decoded, ZcError> {
        r.map(|o| match o {
            ZcOutcome::Unwritten { capacity } => Decoded::Unwritten(capacity),
            ZcOutcome::Written(c) => {
                let v: Vec<ZcRange> = c.iter().collect();
                assert_eq!((c.len(), c.is_empty()), (v.len(), v.is_empty()));
                Decoded::Written(v)
            }
            ZcOutcome::NotRequested => unreachable!("not from decode_zc_info"),
        })
    }

    fn reference_zc_info(e: Endian, data: &[u8], capacity: usize) -> Result<Decoded, ZcError> {
        let expected = ZC_INFO_SIZE + capacity * ZC_ELEM_SIZE;
        if data.len() != expected {
            return Err(ZcError::SizeChanged {
                expected,
                found: data.len(),
            });
        }
        let u32_at = |b: &[u8]| {
            let a = [b[0], b[1], b[2], b[3]];
            match e {
                Endian::Little => u32::from_le_bytes(a),
                Endian::Big => u32::from_be_bytes(a),
            }
        };
        let length = u32_at(data);
        let elems = &data[ZC_INFO_SIZE..];
        let elem = |i: usize| &elems[i * ZC_ELEM_SIZE..(i + 1) * ZC_ELEM_SIZE];
        let poisoned = |i: usize| elem(i).iter().all(|&b| b == ZC_POISON);
        if length as usize == capacity && (0..capacity).all(poisoned) {
            return Ok(Decoded::Unwritten(capacity));
        }
        let Some(n) = usize::try_from(length).ok().filter(|&n| n <= capacity) else {
            return Err(ZcError::LengthOverCapacity { length, capacity });
        };
        if let Some(index) = (0..n).find(|&i| elem(i)[8] > 1) {
            return Err(ZcError::BadElement {
                index,
                zerocopy: elem(index)[8],
            });
        }
        if let Some(index) = (n..capacity).find(|&i| !poisoned(i)) {
            return Err(ZcError::PoisonDisturbed { index });
        }
        Ok(Decoded::Written(
            (0..n)
                .map(|i| ZcRange {
                    lo: u32_at(elem(i)),
                    hi: u32_at(&elem(i)[4..]),
                    copied: elem(i)[8] == 0,
                })
                .collect(),
        ))
    }

    fn reference_errqueue<'a>(
        target: Target,
        m: &Cmsg<'a>,
    ) -> Result<ErrqueueItem<'a>, DecodeError> {
        let short = |needed: usize| DecodeError::Short {
            message: (m.level, m.ty),
            needed,
            got: m.data.len(),
        };
        let big = target.is_big_endian();
        let int = |b: &[u8]| {
            let mut a = [0u8; 8];
            if big {
                a[8 - b.len()..].copy_from_slice(b);
                i64::from_be_bytes(a)
            } else {
                a[..b.len()].copy_from_slice(b);
                i64::from_le_bytes(a)
            }
        };
        let recverr = (m.level == SOL_IP && m.ty == IP_RECVERR)
            || (m.level == SOL_IPV6 && m.ty == IPV6_RECVERR);
        if recverr {
            let d = m.data.get(..16).ok_or(short(16))?;
            let (errno, info, data) = (int(&d[..4]), int(&d[8..12]), int(&d[12..16]));
            let (errno, info, data) = (errno as u32, info as u32, data as u32);
            if errno == 0 && d[4] == 5 {
                return Ok(ErrqueueItem::Zerocopy(ZcRange {
                    lo: info,
                    hi: data,
                    copied: d[6] & 1 != 0,
                }));
            }
            return Ok(ErrqueueItem::Extended(ExtendedErr {
                errno,
                origin_raw: d[4],
                ty: d[5],
                code: d[6],
                info,
                data,
                offender: &m.data[16..],
            }));
        }
        let s = target.family.socket();
        if m.level == s.sol_socket
            && (m.ty == s.so_timestamping_old || m.ty == s.so_timestamping_new)
        {
            let new = m.ty == s.so_timestamping_new;
            let field = if new || target.word == WordSize::W64 {
                8
            } else {
                4
            };
            let d = m.data.get(..6 * field).ok_or(short(6 * field))?;
            let read = |i: usize| {
                let v = int(&d[i * field..(i + 1) * field]);
                if field == 4 {
                    i64::from(v as i32)
                } else {
                    v
                }
            };
            let ts = [(read(0), read(1)), (read(2), read(3)), (read(4), read(5))];
            return Ok(ErrqueueItem::Timestamps(Timestamps { ts, new }));
        }
        Ok(ErrqueueItem::Other(*m))
    }

    /// One `zc_info_elem` of a forged answer: poisoned, poisoned but for
    /// one byte, or written with a `zerocopy` byte good or bad.
    fn element(e: Endian, kind: u8, lo: u32, hi: u32, z: u8, at: usize) -> [u8; ZC_ELEM_SIZE] {
        let mut poison = [ZC_POISON; ZC_ELEM_SIZE];
        match kind % 4 {
            0 => poison,
            1 => {
                poison[at % ZC_ELEM_SIZE] = z;
                poison
            }
            2 => elem_bytes(e, lo, hi, z % 2, [ZC_POISON; 3]),
            _ => elem_bytes(e, lo, hi, z, [z; 3]),
        }
    }

    /// Every combination of a few element kinds for capacities 0..=2 and
    /// lengths 0..=3: the small corners (an empty placeholder, a length
    /// just over the capacity) exhaustively.
    #[test]
    fn small_zc_infos_decode_like_the_reference() {
        for e in [Endian::Little, Endian::Big] {
            let kinds = [
                [ZC_POISON; ZC_ELEM_SIZE],
                element(e, 1, 0, 0, 0, 8),
                element(e, 1, 0, 0, 1, 3),
                element(e, 2, 5, 9, 0, 0),
                element(e, 2, 5, 9, 1, 0),
                element(e, 3, 5, 9, 2, 0),
            ];
            for capacity in 0..=2usize {
                for length in 0..=3u32 {
                    for pick in 0..kinds.len().pow(capacity as u32) {
                        let mut data = zc_info_bytes(e, length).to_vec();
                        let mut p = pick;
                        for _ in 0..capacity {
                            data.extend_from_slice(&kinds[p % kinds.len()]);
                            p /= kinds.len();
                        }
                        assert_eq!(
                            normalise(decode_zc_info(e, &data, capacity)),
                            reference_zc_info(e, &data, capacity),
                            "{e:?} capacity {capacity} length {length} pick {pick}"
                        );
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(crate::tests::proptest_config())]
        #[test]
        fn zc_info_decodes_like_the_reference(
            arch in 0usize..15,
            capacity in 0usize..=16,
            length in prop_oneof![0u32..=18, any::<u32>()],
            full in any::<bool>(),
            elems in proptest::collection::vec(
                (any::<u8>(), any::<u32>(), any::<u32>(), any::<u8>(), 0usize..12),
                16,
            ),
            kinds in 0u8..4,
            resize in prop_oneof![Just(0isize), -13isize..13],
        ) {
            let e = Arch::ALL[arch].target().endian;
            // Mostly answers a kernel could write; sometimes anything.
            let length = if full { capacity as u32 } else { length };
            let mut data = zc_info_bytes(e, length).to_vec();
            for (i, &(kind, lo, hi, z, at)) in elems[..capacity].iter().enumerate() {
                let kind = match kinds {
                    0 => 0,                                       // untouched
                    1 if i < length as usize => 2,                // a good answer
                    1 => 0,
                    _ => kind,                                    // anything
                };
                data.extend_from_slice(&element(e, kind, lo, hi, z, at));
            }
            let size = data.len().saturating_add_signed(resize);
            data.resize(size, ZC_POISON);
            prop_assert_eq!(
                normalise(decode_zc_info(e, &data, capacity)),
                reference_zc_info(e, &data, capacity)
            );
        }

        #[test]
        fn errqueue_decodes_like_the_reference(
            arch in 0usize..15,
            pick in 0usize..10,
            level in any::<i32>(),
            ty in any::<i32>(),
            data in proptest::collection::vec(any::<u8>(), 0..64),
            origin in prop_oneof![Just(5u8), any::<u8>()],
            errno_zero in any::<bool>(),
        ) {
            let t = Arch::ALL[arch].target();
            let s = t.family.socket();
            let (level, ty) = [
                (SOL_IP, IP_RECVERR),
                (SOL_IPV6, IPV6_RECVERR),
                (SOL_IP, IPV6_RECVERR),
                (SOL_IPV6, IP_RECVERR),
                (s.sol_socket, s.so_timestamping_old),
                (s.sol_socket, s.so_timestamping_new),
                (level, s.so_timestamping_old),
                (s.sol_socket, ty),
                (level, IP_RECVERR),
                (level, ty),
            ][pick];
            let mut data = data;
            if data.len() > 4 {
                data[4] = origin;
                if errno_zero {
                    data[..4].fill(0);
                }
            }
            let m = Cmsg { level, ty, data: &data, offset: 8 };
            prop_assert_eq!(decode_errqueue(t, &m), reference_errqueue(t, &m));
        }
    }

    /// A placeholder of `capacity` elements as a kernel filled it: all
    /// written, `zerocopy` alternating 1 and 0, except `bad` at each of `at`.
    fn written_with(e: Endian, capacity: usize, at: &[usize], bad: u8) -> Vec<u8> {
        let mut data = zc_info_bytes(e, capacity as u32).to_vec();
        for i in 0..capacity {
            let z = if at.contains(&i) {
                bad
            } else {
                u8::from(i % 2 == 0)
            };
            data.extend_from_slice(&elem_bytes(e, i as u32, i as u32, z, [0; 3]));
        }
        data
    }

    /// The `zerocopy` bytes are checked eight elements at a time: a bad one
    /// must be found in every position of a full chunk and of the rest,
    /// alone or beside a second equal one (which a fold that cancels or
    /// masks bits would lose).
    #[test]
    #[cfg_attr(miri, ignore = "exhaustive over positions; the native run covers it")]
    fn a_bad_zerocopy_byte_is_found_in_every_position() {
        let max = ZC_NOTIFICATION_MAX as usize;
        for e in [Endian::Little, Endian::Big] {
            for capacity in 1..=max {
                for bad in [2, 3, ZC_POISON, 0xff] {
                    for i in 0..capacity {
                        let want = Err(ZcError::BadElement {
                            index: i,
                            zerocopy: bad,
                        });
                        let data = written_with(e, capacity, &[i], bad);
                        assert_eq!(decode_zc_info(e, &data, capacity), want, "{capacity} {i}");
                        for j in i + 1..capacity {
                            let data = written_with(e, capacity, &[i, j], bad);
                            assert_eq!(
                                decode_zc_info(e, &data, capacity),
                                want,
                                "{capacity} {i} {j}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Every capacity a placeholder may have, full or short of a chunk of
    /// eight, comes back untouched as `Unwritten`, never as completions.
    #[test]
    #[cfg_attr(miri, ignore = "exhaustive over positions; the native run covers it")]
    fn an_untouched_placeholder_of_any_capacity_is_unwritten() {
        for e in [Endian::Little, Endian::Big] {
            for capacity in 0..=ZC_NOTIFICATION_MAX as usize {
                let mut data = zc_info_bytes(e, capacity as u32).to_vec();
                data.resize(ZC_INFO_SIZE + capacity * ZC_ELEM_SIZE, ZC_POISON);
                assert_eq!(
                    decode_zc_info(e, &data, capacity),
                    Ok(ZcOutcome::Unwritten { capacity })
                );
            }
        }
    }

    /// An untouched placeholder with one byte changed, anywhere, is an
    /// error: neither `Unwritten` (something wrote it) nor completions (the
    /// other elements still hold the poison). Only a lone element whose
    /// `zerocopy` byte became 0 or 1 reads as the completion it looks like:
    /// there is no poisoned element left to tell by.
    #[test]
    #[cfg_attr(miri, ignore = "exhaustive over positions; the native run covers it")]
    fn one_disturbed_byte_is_never_read_as_completions() {
        let p = u32::from_ne_bytes([ZC_POISON; 4]);
        for e in [Endian::Little, Endian::Big] {
            for capacity in 1..=ZC_NOTIFICATION_MAX as usize {
                let mut data = zc_info_bytes(e, capacity as u32).to_vec();
                data.resize(ZC_INFO_SIZE + capacity * ZC_ELEM_SIZE, ZC_POISON);
                for at in ZC_INFO_SIZE..data.len() {
                    let byte = (at - ZC_INFO_SIZE) % ZC_ELEM_SIZE;
                    for v in [0, 1, ZC_POISON ^ 0x80] {
                        let mut d = data.clone();
                        d[at] = v;
                        let got = normalise(decode_zc_info(e, &d, capacity));
                        let zerocopy =
                            |i: usize| d[ZC_INFO_SIZE + i * ZC_ELEM_SIZE + ZC_ELEM_ZEROCOPY];
                        let want = match (0..capacity).find(|&i| zerocopy(i) > 1) {
                            Some(index) => Err(ZcError::BadElement {
                                index,
                                zerocopy: zerocopy(index),
                            }),
                            None => {
                                assert_eq!((capacity, byte, v <= 1), (1, ZC_ELEM_ZEROCOPY, true));
                                let copied = v == 0;
                                Ok(Decoded::Written(std::vec![ZcRange {
                                    lo: p,
                                    hi: p,
                                    copied
                                }]))
                            }
                        };
                        assert_eq!(got, want, "{e:?} capacity {capacity} byte {at} = {v}");
                    }
                }
            }
        }
    }

    /// `count`, `contains` and `ids` at both edges of ranges that do and do
    /// not wrap, including the two that cover every id.
    #[test]
    fn ranges_count_contain_and_list_their_ids_across_the_wrap() {
        let m = u32::MAX;
        for (lo, hi) in [
            (0, 0),
            (5, 5),
            (m, m),
            (10, 12),
            (m - 1, 1),
            (m, 0),
            (0, m),
            (1, 0),
            (m / 2 + 1, m / 2),
        ] {
            let r = ZcRange {
                lo,
                hi,
                copied: false,
            };
            let wraps = lo > hi;
            let count = if wraps {
                u64::from(m - lo) + 1 + u64::from(hi) + 1
            } else {
                u64::from(hi - lo) + 1
            };
            assert_eq!(r.count(), count, "{r:?}");
            for id in [
                lo.wrapping_sub(1),
                lo,
                lo.wrapping_add(1),
                hi.wrapping_sub(1),
                hi,
                hi.wrapping_add(1),
                0,
                1,
                m - 1,
                m,
            ] {
                let inside = if wraps {
                    id >= lo || id <= hi
                } else {
                    lo <= id && id <= hi
                };
                assert_eq!(r.contains(id), inside, "{r:?} {id}");
            }
            if count <= 8 {
                let ids: Vec<u32> = r.ids().collect();
                let want: Vec<u32> = (0..count).map(|k| lo.wrapping_add(k as u32)).collect();
                assert_eq!(ids, want, "{r:?}");
            }
            assert_eq!(r.ids().next(), Some(lo));
            assert_eq!(r.ids().size_hint().1, usize::try_from(count).ok());
        }
    }
}
