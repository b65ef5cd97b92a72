//! Typed errors. Each says what was wrong and, for buffers, at which byte
//! offset, so a captured buffer can be diagnosed from the error alone.

use core::fmt;

/// Why a [`ControlBuilder`](crate::ControlBuilder) refused a buffer or a
/// message. Nothing was written when this is returned.
///
/// ```
/// use msgzc_cmsg::{BuildError, ControlBuf, ControlBuilder};
/// use msgzc_abi::Arch;
///
/// let mut buf = ControlBuf::<16>::new();
/// let mut b = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap();
/// let e = b.push(1, 1, &[0; 4]).unwrap_err();
/// assert_eq!(e, BuildError::TooSmall { needed: 24, available: 16 });
/// assert_eq!(e.to_string(), "control buffer too small: 24 bytes needed, 16 available");
/// ```
///
/// Non-exhaustive, like every error enum here: new checks add variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The buffer cannot hold the message: `needed` bytes in all (from the
    /// start of the buffer), `available` in the buffer.
    TooSmall {
        /// Bytes the buffer would need from its start.
        needed: usize,
        /// Bytes it has.
        available: usize,
    },
    /// The buffer does not start on the layout's `CMSG_ALIGN` boundary, which
    /// the C API requires of `msg_control` (use [`ControlBuf`](crate::ControlBuf)).
    Misaligned {
        /// Required alignment in bytes.
        align: usize,
        /// The buffer's start address modulo `align`.
        offset: usize,
    },
    /// The message length does not fit the layout's `cmsg_len` field or the
    /// host's `usize`.
    TooLong {
        /// Data length requested.
        data_len: usize,
    },
    /// An `SO_TIMESTAMPING` request with flags the kernel refuses per send
    /// (outside `SOF_TIMESTAMPING_TX_RECORD_MASK`).
    TimestampingFlags {
        /// The refused bits.
        invalid: u32,
    },
    /// An `SCM_ZC_NOTIFICATION` placeholder capacity outside `1..=16`.
    /// Zero is refused on purpose: a 4-byte placeholder is accepted by
    /// mainline parisc kernels as `SCM_TS_OPT_ID` and is indistinguishable
    /// from "no completions".
    ZcCapacity {
        /// The refused capacity.
        capacity: usize,
    },
    /// A second `SCM_ZC_NOTIFICATION` placeholder in one buffer (the kernel
    /// would copy both back to the same place).
    ZcTwice,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BuildError::TooSmall { needed, available } => write!(
                f,
                "control buffer too small: {needed} bytes needed, {available} available"
            ),
            BuildError::Misaligned { align, offset } => write!(
                f,
                "control buffer misaligned: starts {offset} bytes past a {align}-byte boundary"
            ),
            BuildError::TooLong { data_len } => {
                write!(
                    f,
                    "control message data of {data_len} bytes does not fit cmsg_len"
                )
            }
            BuildError::TimestampingFlags { invalid } => write!(
                f,
                "SO_TIMESTAMPING flags {invalid:#x} are not per-send flags (TX_RECORD_MASK)"
            ),
            BuildError::ZcCapacity { capacity } => {
                write!(f, "SCM_ZC_NOTIFICATION capacity {capacity} outside 1..=16")
            }
            BuildError::ZcTwice => f.write_str("a second SCM_ZC_NOTIFICATION placeholder"),
        }
    }
}

/// What was malformed in a received control buffer.
///
/// ```
/// use msgzc_cmsg::{MsgFlags, WalkErrorKind, Walker};
/// use msgzc_abi::Arch;
///
/// // A 64-bit header whose cmsg_len (4) is shorter than the header (16).
/// let mut buf = [0u8; 16];
/// buf[0] = 4;
/// let e = Walker::new(Arch::X86_64.target(), &buf, 16, MsgFlags::empty())
///     .find_map(Result::err)
///     .unwrap();
/// assert_eq!(e.kind, WalkErrorKind::LenTooShort { len: 4 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WalkErrorKind {
    /// `msg_controllen` is larger than the buffer it describes.
    ControlLenPastBuffer {
        /// `msg_controllen`.
        controllen: usize,
        /// Buffer length.
        buffer: usize,
    },
    /// `cmsg_len` is smaller than the header itself.
    LenTooShort {
        /// The `cmsg_len` read.
        len: u64,
    },
    /// `cmsg_len` runs past `msg_controllen`.
    LenPastEnd {
        /// The `cmsg_len` read.
        len: u64,
        /// Bytes left from this header to `msg_controllen`.
        remaining: usize,
    },
    /// `cmsg_len` does not fit this host's `usize` (a 64-bit layout walked
    /// on a 32-bit host).
    LenOverflow {
        /// The `cmsg_len` read.
        len: u64,
    },
    /// Bytes after the last message that are too few to be a header.
    TrailingBytes {
        /// How many.
        len: usize,
    },
    /// The kernel set `MSG_CTRUNC`: messages after this offset were dropped
    /// (and the one before it may be cut short).
    Truncated,
}

/// A malformed received control buffer: what, and where.
///
/// ```
/// use msgzc_cmsg::{MsgFlags, Walker};
/// use msgzc_abi::Arch;
///
/// // One complete 32-bit message, then 3 stray bytes.
/// let buf = [12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3];
/// let mut w = Walker::new(Arch::I686.target(), &buf, buf.len(), MsgFlags::empty());
/// assert!(w.next().unwrap().is_ok());
/// let e = w.next().unwrap().unwrap_err();
/// assert_eq!(e.to_string(), "3 trailing bytes at offset 12, too few for a header");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkError {
    /// What was wrong.
    pub kind: WalkErrorKind,
    /// Byte offset of the offending header (or of the end, for
    /// [`Truncated`](WalkErrorKind::Truncated)).
    pub offset: usize,
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.offset;
        match self.kind {
            WalkErrorKind::ControlLenPastBuffer { controllen, buffer } => write!(
                f,
                "msg_controllen {controllen} exceeds the {buffer}-byte buffer"
            ),
            WalkErrorKind::LenTooShort { len } => {
                write!(f, "cmsg_len {len} at offset {o} is shorter than the header")
            }
            WalkErrorKind::LenPastEnd { len, remaining } => write!(
                f,
                "cmsg_len {len} at offset {o} runs past the end ({remaining} bytes left)"
            ),
            WalkErrorKind::LenOverflow { len } => {
                write!(
                    f,
                    "cmsg_len {len} at offset {o} overflows this host's usize"
                )
            }
            WalkErrorKind::TrailingBytes { len } => {
                write!(
                    f,
                    "{len} trailing bytes at offset {o}, too few for a header"
                )
            }
            WalkErrorKind::Truncated => {
                write!(f, "MSG_CTRUNC: control messages cut at offset {o}")
            }
        }
    }
}

/// A control message with the right level and type but a payload that does
/// not match its layout.
///
/// ```
/// use msgzc_cmsg::{decode_errqueue, Cmsg, DecodeError};
/// use msgzc_abi::Arch;
///
/// // IP_RECVERR with 8 bytes: too short for a sock_extended_err.
/// let m = Cmsg { level: 0, ty: 11, data: &[0; 8], offset: 0 };
/// assert_eq!(
///     decode_errqueue(Arch::X86_64.target(), &m),
///     Err(DecodeError::Short { message: (0, 11), needed: 16, got: 8 })
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Payload shorter than its structure.
    Short {
        /// `(level, type)` of the message.
        message: (i32, i32),
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The `SO_EE_OFFENDER` address after a `sock_extended_err` is shorter
    /// than the structure its family calls for (see
    /// [`ExtendedErr::offender_addr`](crate::ExtendedErr::offender_addr)).
    ShortOffender {
        /// The address family, or `None` when not even `sa_family_t` fits.
        family: Option<u16>,
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::Short {
                message,
                needed,
                got,
            } => write!(
                f,
                "control message level {} type {}: {got} data bytes, {needed} needed",
                message.0, message.1
            ),
            DecodeError::ShortOffender {
                family: Some(family),
                needed,
                got,
            } => write!(
                f,
                "offender address of family {family}: {got} bytes, {needed} needed"
            ),
            DecodeError::ShortOffender {
                family: None,
                needed,
                got,
            } => write!(f, "offender address: {got} bytes, {needed} needed"),
        }
    }
}

/// An `SCM_ZC_NOTIFICATION` result that no correct kernel can produce.
///
/// ```
/// use msgzc_cmsg::{ControlBuf, ControlBuilder, MsgFlags, ZcError};
/// use msgzc_abi::Arch;
///
/// let mut buf = ControlBuf::<64>::new();
/// let mut b = ControlBuilder::new(Arch::X86_64.target(), buf.as_mut_bytes()).unwrap();
/// b.zc_placeholder(2).unwrap();
/// let mut c = b.finish();
/// // Something wrote zc_info.length = 3 into a 2-element placeholder.
/// // SAFETY: bytes 16..20 lie inside the message.
/// unsafe { c.as_mut_ptr().add(16).copy_from(3u32.to_le_bytes().as_ptr(), 4) };
/// assert_eq!(
///     c.zc_outcome(c.len(), MsgFlags::empty()),
///     Err(ZcError::LengthOverCapacity { length: 3, capacity: 2 })
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ZcError {
    /// The returned buffer could not be walked.
    Walk(WalkError),
    /// The kernel reported more elements than the placeholder holds.
    LengthOverCapacity {
        /// Reported length.
        length: u32,
        /// Placeholder capacity.
        capacity: usize,
    },
    /// An element the kernel claims to have written has a `zerocopy` byte
    /// other than 0 or 1.
    BadElement {
        /// Element index.
        index: usize,
        /// The byte found.
        zerocopy: u8,
    },
    /// An element beyond the reported length no longer holds the poison the
    /// builder wrote: something other than the v8 kernel logic wrote it.
    PoisonDisturbed {
        /// Element index.
        index: usize,
    },
    /// The returned buffer holds an `SCM_ZC_NOTIFICATION` message whose size
    /// differs from the placeholder's.
    SizeChanged {
        /// Data bytes of the placeholder.
        expected: usize,
        /// Data bytes found.
        found: usize,
    },
    /// The kernel shortened `msg_controllen` but wrote no placeholder back.
    Missing,
}

impl fmt::Display for ZcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ZcError::Walk(e) => write!(f, "returned control buffer: {e}"),
            ZcError::LengthOverCapacity { length, capacity } => write!(
                f,
                "zc_info length {length} exceeds the placeholder's capacity {capacity}"
            ),
            ZcError::BadElement { index, zerocopy } => write!(
                f,
                "zc_info element {index} has zerocopy byte {zerocopy:#x} (only 0 or 1 are valid)"
            ),
            ZcError::PoisonDisturbed { index } => write!(
                f,
                "zc_info element {index} lies past the reported length but was overwritten"
            ),
            ZcError::SizeChanged { expected, found } => write!(
                f,
                "SCM_ZC_NOTIFICATION came back with {found} data bytes instead of {expected}"
            ),
            ZcError::Missing => {
                f.write_str("msg_controllen changed but no SCM_ZC_NOTIFICATION came back")
            }
        }
    }
}

impl From<WalkError> for ZcError {
    fn from(e: WalkError) -> Self {
        ZcError::Walk(e)
    }
}

impl core::error::Error for BuildError {}
impl core::error::Error for WalkError {}
impl core::error::Error for DecodeError {}
impl core::error::Error for ZcError {}

#[cfg(test)]
mod tests {
    //! Every variant's message, with its numbers in place: these strings
    //! are what a log of a failed run shows.

    use super::*;
    use std::string::ToString;

    #[test]
    fn build_errors_say_what_and_how_much() {
        for (e, text) in [
            (
                BuildError::TooSmall {
                    needed: 24,
                    available: 16,
                },
                "control buffer too small: 24 bytes needed, 16 available",
            ),
            (
                BuildError::Misaligned {
                    align: 8,
                    offset: 4,
                },
                "control buffer misaligned: starts 4 bytes past a 8-byte boundary",
            ),
            (
                BuildError::TooLong { data_len: 7 },
                "control message data of 7 bytes does not fit cmsg_len",
            ),
            (
                BuildError::TimestampingFlags { invalid: 0x80 },
                "SO_TIMESTAMPING flags 0x80 are not per-send flags (TX_RECORD_MASK)",
            ),
            (
                BuildError::ZcCapacity { capacity: 17 },
                "SCM_ZC_NOTIFICATION capacity 17 outside 1..=16",
            ),
            (
                BuildError::ZcTwice,
                "a second SCM_ZC_NOTIFICATION placeholder",
            ),
        ] {
            assert_eq!(e.to_string(), text);
        }
    }

    #[test]
    fn walk_errors_say_what_and_where() {
        let at = |kind, offset| WalkError { kind, offset };
        for (e, text) in [
            (
                at(
                    WalkErrorKind::ControlLenPastBuffer {
                        controllen: 64,
                        buffer: 48,
                    },
                    0,
                ),
                "msg_controllen 64 exceeds the 48-byte buffer",
            ),
            (
                at(WalkErrorKind::LenTooShort { len: 4 }, 16),
                "cmsg_len 4 at offset 16 is shorter than the header",
            ),
            (
                at(
                    WalkErrorKind::LenPastEnd {
                        len: 40,
                        remaining: 24,
                    },
                    8,
                ),
                "cmsg_len 40 at offset 8 runs past the end (24 bytes left)",
            ),
            (
                at(WalkErrorKind::LenOverflow { len: u64::MAX }, 0),
                "cmsg_len 18446744073709551615 at offset 0 overflows this host's usize",
            ),
            (
                at(WalkErrorKind::TrailingBytes { len: 3 }, 12),
                "3 trailing bytes at offset 12, too few for a header",
            ),
            (
                at(WalkErrorKind::Truncated, 32),
                "MSG_CTRUNC: control messages cut at offset 32",
            ),
        ] {
            assert_eq!(e.to_string(), text);
        }
    }

    #[test]
    fn decode_and_zc_errors_say_what_and_which() {
        let short = DecodeError::Short {
            message: (41, 25),
            needed: 16,
            got: 15,
        };
        assert_eq!(
            short.to_string(),
            "control message level 41 type 25: 15 data bytes, 16 needed"
        );
        let walk = WalkError {
            kind: WalkErrorKind::Truncated,
            offset: 8,
        };
        for (e, text) in [
            (
                ZcError::from(walk),
                "returned control buffer: MSG_CTRUNC: control messages cut at offset 8",
            ),
            (
                ZcError::LengthOverCapacity {
                    length: 3,
                    capacity: 2,
                },
                "zc_info length 3 exceeds the placeholder's capacity 2",
            ),
            (
                ZcError::BadElement {
                    index: 9,
                    zerocopy: 0xa5,
                },
                "zc_info element 9 has zerocopy byte 0xa5 (only 0 or 1 are valid)",
            ),
            (
                ZcError::PoisonDisturbed { index: 1 },
                "zc_info element 1 lies past the reported length but was overwritten",
            ),
            (
                ZcError::SizeChanged {
                    expected: 28,
                    found: 16,
                },
                "SCM_ZC_NOTIFICATION came back with 16 data bytes instead of 28",
            ),
            (
                ZcError::Missing,
                "msg_controllen changed but no SCM_ZC_NOTIFICATION came back",
            ),
        ] {
            assert_eq!(e.to_string(), text);
        }
    }
}
