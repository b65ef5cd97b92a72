//! Walking a received control buffer.
//!
//! # Which `CMSG_NXTHDR` rules this follows
//!
//! The three implementations a Linux program meets disagree at the edges:
//!
//! - **The kernel** (`for_each_cmsghdr`, `CMSG_OK` in `sendmsg`): a header
//!   must fit, and `cmsg_len` must be at least the header and at most what
//!   remains; otherwise `sendmsg` fails with `EINVAL`. When it *writes*
//!   messages (`put_cmsg`) it advances by `CMSG_SPACE` but clamps to the
//!   buffer, so the last message's padding may be missing from
//!   `msg_controllen`; on overflow it sets `MSG_CTRUNC` and may write a
//!   message whose `cmsg_len` covers only the bytes that fit.
//! - **glibc** (`__cmsg_nxthdr`): silently stops after a `cmsg_len`
//!   shorter than the header, and when the next header would pass the end;
//!   `CMSG_FIRSTHDR` does not check the first message's `cmsg_len` at all,
//!   and a next header whose `cmsg_len` runs past the end is still returned.
//!   glibc sources up to 2.36 (2021) also stopped before a next message
//!   whose *aligned* length passes the end, which drops a final message
//!   whose padding `put_cmsg` clamped away; the glibc of Debian 12 does
//!   not (the `cmsg_differential` fuzz target compares this walker with
//!   the glibc it runs on and accepts either rule).
//! - **musl** (`__CMSG_NEXT`/`CMSG_NXTHDR`): stops when the next header
//!   would reach (`>=`) the end, so a final zero-data message that ends
//!   exactly at `msg_controllen` is skipped; it does not check `cmsg_len`
//!   against the end either.
//!
//! This walker follows the kernel, strictly, and never stops silently:
//! every header must fit and carry a `cmsg_len` between the header size and
//! the remaining length, or iteration ends with a [`WalkError`] naming the
//! offset. The last message's padding may be cut (as `put_cmsg` does), a
//! remainder too small for a header is [`TrailingBytes`](WalkErrorKind::TrailingBytes),
//! and `MSG_CTRUNC` yields every complete message and then
//! [`Truncated`](WalkErrorKind::Truncated). After an error the walker is
//! fused.

use crate::error::{WalkError, WalkErrorKind};
use crate::layout::read_header;
use msgzc_abi::{MsgFlags, Target};

/// One control message: `(level, type, data)` and where it sat.
///
/// ```
/// use msgzc_cmsg::{Cmsg, MsgFlags, Walker};
/// use msgzc_abi::Arch;
///
/// // Two 64-bit little-endian messages; the second starts at CMSG_SPACE(1).
/// let mut buf = [0u8; 40];
/// buf[..8].copy_from_slice(&17u64.to_le_bytes());
/// buf[16] = 0xaa;
/// buf[24..32].copy_from_slice(&16u64.to_le_bytes());
/// buf[36] = 7;
/// let msgs: Vec<Cmsg> = Walker::new(Arch::X86_64.target(), &buf, 40, MsgFlags::empty())
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(msgs[0], Cmsg { level: 0, ty: 0, data: &[0xaa], offset: 0 });
/// assert_eq!(msgs[1], Cmsg { level: 0, ty: 7, data: &[], offset: 24 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cmsg<'a> {
    /// `cmsg_level`.
    pub level: i32,
    /// `cmsg_type`.
    pub ty: i32,
    /// The data: `cmsg_len` minus the header.
    pub data: &'a [u8],
    /// Byte offset of the header in the buffer.
    pub offset: usize,
}

/// Iterator over the control messages of a received buffer, for any
/// [`Target`] layout.
///
/// Yields `Ok(Cmsg)` for each well-formed message, then at most one
/// `Err(WalkError)`, then `None` forever. It reads only inside
/// `buf[..controllen]` and does at most one step per header, so it always
/// terminates.
///
/// ```
/// use msgzc_cmsg::{Walker, WalkErrorKind, MsgFlags};
/// use msgzc_abi::Arch;
///
/// // A 32-bit little-endian header claiming 200 bytes in a 16-byte buffer.
/// let buf = [200, 0, 0, 0, 0, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0];
/// let mut w = Walker::new(Arch::I686.target(), &buf, buf.len(), MsgFlags::empty());
/// let e = w.next().unwrap().unwrap_err();
/// assert_eq!(e.offset, 0);
/// assert!(matches!(e.kind, WalkErrorKind::LenPastEnd { len: 200, remaining: 16 }));
/// assert!(w.next().is_none());
/// ```
#[derive(Clone, Debug)]
pub struct Walker<'a> {
    target: Target,
    /// What the walk reads: `buf[..controllen]`, or nothing when
    /// `controllen` is past the buffer, and the walk then ends at once with
    /// [`end`](Self::end) saying why. Chosen without a branch, so that the
    /// first step checks no more than any other: one check fewer on the
    /// error queue's usual single message.
    control: &'a [u8],
    /// `msg_controllen`, as given.
    controllen: usize,
    /// The length of the buffer given.
    buffer: usize,
    /// Where the next header starts. Offsets are sums of `CMSG_SPACE`s,
    /// so multiples of the layout's alignment.
    next: usize,
    truncated: bool,
    /// Set once the walk has ended or failed: the walker is fused.
    done: bool,
}

impl<'a> Walker<'a> {
    /// Walks `buf[..controllen]` (`controllen` is the `msg_controllen` the
    /// kernel returned; `flags` its `msg_flags`) with `target`'s layout.
    ///
    /// ```
    /// use msgzc_cmsg::{MsgFlags, WalkError, WalkErrorKind, Walker};
    /// use msgzc_abi::Arch;
    ///
    /// // MSG_CTRUNC with nothing that fit: no message, then the error.
    /// let mut w = Walker::new(Arch::X86_64.target(), &[], 0, MsgFlags::CTRUNC);
    /// assert_eq!(w.next(), Some(Err(WalkError { kind: WalkErrorKind::Truncated, offset: 0 })));
    /// assert_eq!(w.next(), None);
    /// ```
    #[inline]
    pub fn new(target: Target, buf: &'a [u8], controllen: usize, flags: MsgFlags) -> Self {
        Walker {
            target,
            control: buf.get(..controllen).unwrap_or(&buf[..0]),
            controllen,
            buffer: buf.len(),
            next: 0,
            truncated: flags.contains(MsgFlags::CTRUNC),
            done: false,
        }
    }

    /// The target layout being walked.
    ///
    /// ```
    /// # use msgzc_cmsg::{MsgFlags, Walker};
    /// # use msgzc_abi::Arch;
    /// let w = Walker::new(Arch::Hppa.target(), &[], 0, MsgFlags::empty());
    /// assert_eq!(w.target(), Arch::Hppa.target());
    /// ```
    pub fn target(&self) -> Target {
        self.target
    }

    #[inline]
    fn fail(&mut self, kind: WalkErrorKind, offset: usize) -> Option<Result<Cmsg<'a>, WalkError>> {
        self.done = true;
        Some(Err(WalkError { kind, offset }))
    }

    /// Past the last message: `controllen` past the buffer (then there
    /// was none), `MSG_CTRUNC`'s error, or nothing.
    #[inline]
    fn end(&mut self) -> Option<Result<Cmsg<'a>, WalkError>> {
        self.done = true;
        let (controllen, buffer) = (self.controllen, self.buffer);
        if controllen > buffer {
            let kind = WalkErrorKind::ControlLenPastBuffer { controllen, buffer };
            return Some(Err(WalkError { kind, offset: 0 }));
        }
        self.truncated.then_some(Err(WalkError {
            kind: WalkErrorKind::Truncated,
            offset: controllen,
        }))
    }

    #[inline]
    fn step(&mut self) -> Option<Result<Cmsg<'a>, WalkError>> {
        let layout = self.target.cmsg();
        let hdr_size = layout.header_size();
        let mask = layout.align() - 1;
        let offset = self.next;
        // Nothing left: past the last message, or inside its padding (the
        // kernel may cut the last message's).
        let Some(rest) = self.control.get(offset..).filter(|r| !r.is_empty()) else {
            return self.end();
        };
        let Some(h) = read_header(self.target, rest) else {
            return self.fail(WalkErrorKind::TrailingBytes { len: rest.len() }, offset);
        };
        let Ok(len) = usize::try_from(h.len) else {
            return self.fail(WalkErrorKind::LenOverflow { len: h.len }, offset);
        };
        if len < hdr_size {
            return self.fail(WalkErrorKind::LenTooShort { len: h.len }, offset);
        }
        if len > rest.len() {
            let remaining = rest.len();
            return self.fail(
                WalkErrorKind::LenPastEnd {
                    len: h.len,
                    remaining,
                },
                offset,
            );
        }
        // hdr_size <= len <= rest.len(), checked above.
        let data = &rest[hdr_size..len];
        // The next header is at CMSG_ALIGN(offset + len), that is offset +
        // CMSG_ALIGN(len), offsets being aligned; no overflow, as offset +
        // len <= controllen. (Carrying `offset | mask` instead takes one
        // operation off the path from one `cmsg_len` to the next, but adds
        // a register copy per message: slower in `walk_paired`.)
        self.next = offset + ((len + mask) & !mask);
        Some(Ok(Cmsg {
            level: h.level,
            ty: h.ty,
            data,
            offset,
        }))
    }
}

impl<'a> Iterator for Walker<'a> {
    type Item = Result<Cmsg<'a>, WalkError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.step()
    }
}

impl core::iter::FusedIterator for Walker<'_> {}

#[cfg(test)]
mod tests {
    //! The walker against the straightforward one it replaced (an index
    //! into the whole buffer, re-sliced for every message), kept here as
    //! the specification, on every named target.

    use super::*;
    use crate::{ControlBuf, ControlBuilder};
    use msgzc_abi::Arch;
    use proptest::prelude::*;
    use std::vec::Vec;

    type Walked<'a> = Vec<Result<Cmsg<'a>, WalkError>>;

    fn reference(t: Target, buf: &[u8], controllen: usize, flags: MsgFlags) -> Walked<'_> {
        let mut out = Vec::new();
        let Some(buf) = buf.get(..controllen) else {
            out.push(Err(WalkError {
                kind: WalkErrorKind::ControlLenPastBuffer {
                    controllen,
                    buffer: buf.len(),
                },
                offset: 0,
            }));
            return out;
        };
        let layout = t.cmsg();
        let hdr = layout.header_size();
        let mut offset = 0;
        loop {
            let rest = &buf[offset..];
            let fail = |kind| Err(WalkError { kind, offset });
            if rest.is_empty() {
                if flags.contains(MsgFlags::CTRUNC) {
                    out.push(fail(WalkErrorKind::Truncated));
                }
                return out;
            }
            let Some(h) = read_header(t, rest) else {
                out.push(fail(WalkErrorKind::TrailingBytes { len: rest.len() }));
                return out;
            };
            let Ok(len) = usize::try_from(h.len) else {
                out.push(fail(WalkErrorKind::LenOverflow { len: h.len }));
                return out;
            };
            if len < hdr {
                out.push(fail(WalkErrorKind::LenTooShort { len: h.len }));
                return out;
            }
            if len > rest.len() {
                out.push(fail(WalkErrorKind::LenPastEnd {
                    len: h.len,
                    remaining: rest.len(),
                }));
                return out;
            }
            let Some(space) = layout.checked_align(len) else {
                out.push(fail(WalkErrorKind::LenOverflow { len: h.len }));
                return out;
            };
            out.push(Ok(Cmsg {
                level: h.level,
                ty: h.ty,
                data: &rest[hdr..len],
                offset,
            }));
            offset += space.min(rest.len());
        }
    }

    fn same_as_reference(t: Target, buf: &[u8], controllen: usize, flags: MsgFlags) {
        let expected = reference(t, buf, controllen, flags);
        let mut w = Walker::new(t, buf, controllen, flags);
        // One item more than expected at most: a walker that repeats a
        // header fails here instead of hanging the test.
        let got: Walked<'_> = w.by_ref().take(expected.len() + 1).collect();
        assert_eq!(got, expected, "{t:?}");
        assert_eq!(w.next(), None, "fused");
    }

    #[test]
    fn edges_match_the_reference_on_every_target() {
        // Under Miri (interpreted, ~1000x slower) one target per header
        // layout and byte order, the walker's only inputs from the target.
        let mut seen = Vec::new();
        for arch in Arch::ALL {
            let t = arch.target();
            if cfg!(miri) && seen.contains(&(t.cmsg(), t.endian)) {
                continue;
            }
            seen.push((t.cmsg(), t.endian));
            let hdr = t.cmsg().header_size();
            let mut buf = ControlBuf::<256>::new();
            let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).unwrap();
            b.push(1, 2, &[]).unwrap();
            b.push(0, 11, &[7; 16]).unwrap();
            b.push(41, 25, &[9; 5]).unwrap();
            let len = b.finish().len();
            for controllen in 0..len + 9 {
                for flags in [MsgFlags::empty(), MsgFlags::CTRUNC] {
                    same_as_reference(t, buf.as_bytes(), controllen, flags);
                    same_as_reference(t, &buf.as_bytes()[..len], controllen, flags);
                }
            }
            // Lengths at and around every boundary, in the first header.
            for cmsg_len in [0, 1, hdr - 1, hdr, hdr + 1, len - 1, len, len + 1] {
                let mut bytes = buf.as_bytes()[..len].to_vec();
                bytes[..hdr].fill(0);
                let at = if t.is_big_endian() {
                    t.cmsg().len_field_size() - 4
                } else {
                    0
                };
                let v = u32::try_from(cmsg_len).unwrap();
                bytes[at..at + 4].copy_from_slice(&if t.is_big_endian() {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                });
                same_as_reference(t, &bytes, len, MsgFlags::empty());
            }
        }
    }

    proptest! {
        #![proptest_config(crate::tests::proptest_config())]
        #[test]
        fn arbitrary_bytes_walk_like_the_reference(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            cut in any::<u16>(),
            arch in 0usize..15,
            flags in any::<u32>(),
        ) {
            let t = Arch::ALL[arch].target();
            let controllen = usize::from(cut) % (bytes.len() + 2);
            same_as_reference(t, &bytes, controllen, MsgFlags::from_bits_retain(flags));
        }

        #[test]
        fn damaged_built_buffers_walk_like_the_reference(
            arch in 0usize..15,
            msgs in proptest::collection::vec((any::<i32>(), any::<i32>(), 0usize..40), 0..8),
            damage in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..3),
            extra in 0usize..24,
            ctrunc in any::<bool>(),
        ) {
            let t = Arch::ALL[arch].target();
            let mut buf = ControlBuf::<512>::new();
            let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).unwrap();
            for (level, ty, n) in msgs {
                b.push(level, ty, &[0x5a; 40][..n]).unwrap();
            }
            let len = b.finish().len();
            let bytes = buf.as_mut_bytes();
            for (at, v) in damage {
                let at = usize::from(at) % (len + extra).max(1);
                bytes[at] = v;
            }
            let flags = if ctrunc { MsgFlags::CTRUNC } else { MsgFlags::empty() };
            same_as_reference(t, bytes, len + extra, flags);
            same_as_reference(t, bytes, len, flags);
        }
    }
}
