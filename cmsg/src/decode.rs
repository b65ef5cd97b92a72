//! Typed decoding of error-queue messages and of `SCM_ZC_NOTIFICATION`
//! answers, both into [`ZcRange`].

use crate::error::{DecodeError, ZcError};
use crate::layout::{
    read_ee, read_elem, read_zc_length, EE_SIZE, ZC_ELEM_SIZE, ZC_ELEM_ZEROCOPY, ZC_INFO_SIZE,
};
use crate::walk::Cmsg;
use crate::ZC_POISON;
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
/// use msgzc_cmsg::{decode_errqueue, Cmsg, ErrqueueItem};
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
    /// `SO_EE_OFFENDER`: the raw `sockaddr` after the struct, if any.
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    let is_recverr =
        (m.level == SOL_IP && m.ty == IP_RECVERR) || (m.level == SOL_IPV6 && m.ty == IPV6_RECVERR);
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
        let needed = 6 * field;
        let d = m.data.get(..needed).ok_or(short(needed))?;
        let read = |i: usize| read_signed(target.endian, &d[i * field..(i + 1) * field]);
        let ts = [(read(0), read(1)), (read(2), read(3)), (read(4), read(5))];
        return Ok(ErrqueueItem::Timestamps(Timestamps { ts, new }));
    }
    Ok(ErrqueueItem::Other(*m))
}

/// A signed 4- or 8-byte field.
fn read_signed(e: Endian, b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    let n = b.len();
    match e {
        Endian::Little => {
            a[..n].copy_from_slice(b);
            let v = i64::from_le_bytes(a);
            // Sign-extend a 4-byte field.
            if n == 4 {
                i64::from(v as i32)
            } else {
                v
            }
        }
        Endian::Big => {
            a[8 - n..].copy_from_slice(b);
            let v = i64::from_be_bytes(a);
            if n == 4 {
                i64::from(v as i32)
            } else {
                v
            }
        }
    }
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    elems: &'a [u8],
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
        self.elems.len() / ZC_ELEM_SIZE
    }

    /// Whether the kernel wrote no range (see [`len`](Self::len)).
    pub fn is_empty(&self) -> bool {
        self.elems.is_empty()
    }

    /// The ranges, in the order the kernel wrote them (see [`ZcOutcome`]).
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = ZcRange> + 'a {
        let e = self.endian;
        self.elems.chunks_exact(ZC_ELEM_SIZE).filter_map(move |c| {
            read_elem(e, c).map(|(lo, hi, zerocopy, _)| ZcRange {
                lo,
                hi,
                copied: zerocopy == 0,
            })
        })
    }
}

/// Validates and decodes the data of a returned placeholder.
#[inline]
pub(crate) fn decode_zc_info(
    e: Endian,
    data: &[u8],
    capacity: usize,
) -> Result<ZcOutcome<'_>, ZcError> {
    let expected = ZC_INFO_SIZE + capacity * ZC_ELEM_SIZE;
    if data.len() != expected {
        return Err(ZcError::SizeChanged {
            expected,
            found: data.len(),
        });
    }
    let length = read_zc_length(e, data).ok_or(ZcError::SizeChanged {
        expected,
        found: data.len(),
    })?;
    let elems = &data[ZC_INFO_SIZE..];
    // Indexing is in bounds: data.len() was checked against capacity.
    let zc_byte = |i: usize| elems[i * ZC_ELEM_SIZE + ZC_ELEM_ZEROCOPY];
    let poisoned = |i: usize| {
        elems[i * ZC_ELEM_SIZE..(i + 1) * ZC_ELEM_SIZE]
            .iter()
            .all(|&b| b == ZC_POISON)
    };
    if length as usize == capacity && (0..capacity).all(poisoned) {
        return Ok(ZcOutcome::Unwritten { capacity });
    }
    let Some(n) = usize::try_from(length).ok().filter(|&n| n <= capacity) else {
        return Err(ZcError::LengthOverCapacity { length, capacity });
    };
    if let Some(index) = (0..n).find(|&i| zc_byte(i) > 1) {
        return Err(ZcError::BadElement {
            index,
            zerocopy: zc_byte(index),
        });
    }
    if let Some(index) = (n..capacity).find(|&i| !poisoned(i)) {
        return Err(ZcError::PoisonDisturbed { index });
    }
    Ok(ZcOutcome::Written(ZcCompletions {
        endian: e,
        elems: &elems[..n * ZC_ELEM_SIZE],
    }))
}
