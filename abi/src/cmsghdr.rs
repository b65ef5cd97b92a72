//! Control-message (`struct cmsghdr`) layouts and the `CMSG_*` arithmetic.
//!
//! Linux has exactly two user-visible layouts, decided by the width of
//! `size_t` in the process (`include/linux/socket.h`, `struct cmsghdr`;
//! `include/net/compat.h`, `struct compat_cmsghdr`):
//!
//! | layout | `cmsg_len` | header | `CMSG_ALIGN` |
//! |--------|------------|--------|--------------|
//! | 64-bit | `u64`      | 16     | 8            |
//! | 32-bit | `u32`      | 12     | 4            |
//!
//! A 32-bit task on a 64-bit kernel sees the 32-bit layout: the kernel's
//! compat path (`put_cmsg_compat`, `cmsghdr_from_user_compat_to_kern`)
//! translates. So [`CmsgLayout::Bits32`] is also the "compat view" a 64-bit
//! tool uses to decode buffers captured from such a task.

use zerocopy::byteorder::{ByteOrder, I32, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// One of the two control-message header layouts.
///
/// All methods are `const fn`, so sizes can be array lengths:
///
/// ```
/// use msgzc_abi::CmsgLayout;
///
/// const L: CmsgLayout = CmsgLayout::Bits32;
/// let buf = [0u8; L.space(4) + L.space(16)];
/// assert_eq!(buf.len(), 16 + 28);
/// assert_eq!(CmsgLayout::Bits64.len(4), 20);
/// assert_eq!(CmsgLayout::Bits64.space(4), 24);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmsgLayout {
    /// `cmsg_len` is a `u32`; 12-byte header, 4-byte alignment.
    Bits32,
    /// `cmsg_len` is a `u64`; 16-byte header, 8-byte alignment.
    Bits64,
}

impl CmsgLayout {
    /// The layout of the process this code runs in (derived from the width of
    /// `usize`, which equals that of `size_t` on every named Linux target).
    pub const NATIVE: CmsgLayout = if core::mem::size_of::<usize>() == 8 {
        CmsgLayout::Bits64
    } else {
        CmsgLayout::Bits32
    };

    /// `CMSG_ALIGN` unit: `sizeof(long)`.
    pub const fn align(self) -> usize {
        match self {
            CmsgLayout::Bits32 => 4,
            CmsgLayout::Bits64 => 8,
        }
    }

    /// `sizeof(struct cmsghdr)`; already a multiple of [`align`](Self::align),
    /// so it is also `CMSG_ALIGN(sizeof(struct cmsghdr))`.
    pub const fn header_size(self) -> usize {
        match self {
            CmsgLayout::Bits32 => core::mem::size_of::<CmsgHdr32<zerocopy::NativeEndian>>(),
            CmsgLayout::Bits64 => core::mem::size_of::<CmsgHdr64<zerocopy::NativeEndian>>(),
        }
    }

    /// Width of the `cmsg_len` field in bytes.
    pub const fn len_field_size(self) -> usize {
        match self {
            CmsgLayout::Bits32 => 4,
            CmsgLayout::Bits64 => 8,
        }
    }

    /// `CMSG_ALIGN(n)`, saturating to the largest aligned `usize` for `n`
    /// within `align()` of `usize::MAX`; use
    /// [`checked_align`](Self::checked_align) for untrusted lengths.
    pub const fn align_up(self, n: usize) -> usize {
        match self.checked_align(n) {
            Some(v) => v,
            None => usize::MAX & !(self.align() - 1),
        }
    }

    /// `CMSG_ALIGN(n)`, or `None` if it overflows `usize`.
    pub const fn checked_align(self, n: usize) -> Option<usize> {
        let mask = self.align() - 1;
        match n.checked_add(mask) {
            Some(v) => Some(v & !mask),
            None => None,
        }
    }

    /// `CMSG_LEN(data_len)`: header plus data, without trailing padding. This
    /// is the value the kernel writes into `cmsg_len`.
    ///
    /// Meant for sizes known to be small (array lengths); a `data_len` near
    /// `usize::MAX` fails const evaluation. Untrusted sizes go through
    /// [`checked_len`](Self::checked_len).
    pub const fn len(self, data_len: usize) -> usize {
        self.header_size() + data_len
    }

    /// `CMSG_LEN(data_len)`, or `None` on overflow.
    pub const fn checked_len(self, data_len: usize) -> Option<usize> {
        data_len.checked_add(self.header_size())
    }

    /// `CMSG_SPACE(data_len)`: header plus data, padded to the alignment. This
    /// is what one message occupies in a buffer. Same caveat as
    /// [`len`](Self::len); see [`checked_space`](Self::checked_space).
    pub const fn space(self, data_len: usize) -> usize {
        self.header_size() + self.align_up(data_len)
    }

    /// `CMSG_SPACE(data_len)`, or `None` on overflow.
    pub const fn checked_space(self, data_len: usize) -> Option<usize> {
        match self.checked_align(data_len) {
            Some(a) => a.checked_add(self.header_size()),
            None => None,
        }
    }
}

/// `struct cmsghdr` of a 64-bit process, in byte order `O`.
///
/// ```
/// use msgzc_abi::CmsgHdr64;
/// use zerocopy::{BigEndian, FromBytes};
///
/// let raw = [0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0xff, 0xff, 0, 0, 0, 0x3e];
/// let h = CmsgHdr64::<BigEndian>::read_from_bytes(&raw).unwrap();
/// assert_eq!(h.cmsg_len.get(), 20);
/// assert_eq!(h.cmsg_level.get(), 0xffff); // sparc SOL_SOCKET
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct CmsgHdr64<O: ByteOrder> {
    /// Header plus data length in bytes (`CMSG_LEN`), a `size_t`.
    pub cmsg_len: U64<O>,
    /// Originating protocol (`SOL_SOCKET`, `SOL_IP`, ...).
    pub cmsg_level: I32<O>,
    /// Protocol-specific type.
    pub cmsg_type: I32<O>,
}

/// `struct cmsghdr` of a 32-bit process (and `struct compat_cmsghdr`), in
/// byte order `O`.
///
/// ```
/// use msgzc_abi::CmsgHdr32;
/// use zerocopy::{FromBytes, LittleEndian};
///
/// assert_eq!(core::mem::size_of::<CmsgHdr32<LittleEndian>>(), 12);
/// let h = CmsgHdr32::<LittleEndian>::read_from_bytes(&[28, 0, 0, 0, 0, 0, 0, 0, 11, 0, 0, 0]);
/// assert_eq!(h.unwrap().cmsg_type.get(), 11); // IP_RECVERR
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct CmsgHdr32<O: ByteOrder> {
    /// Header plus data length in bytes (`CMSG_LEN`), a 32-bit `size_t`.
    pub cmsg_len: U32<O>,
    /// Originating protocol.
    pub cmsg_level: I32<O>,
    /// Protocol-specific type.
    pub cmsg_type: I32<O>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::{BigEndian, LittleEndian};

    #[test]
    fn header_sizes_are_pinned() {
        assert_eq!(core::mem::size_of::<CmsgHdr64<BigEndian>>(), 16);
        assert_eq!(core::mem::size_of::<CmsgHdr64<LittleEndian>>(), 16);
        assert_eq!(core::mem::size_of::<CmsgHdr32<BigEndian>>(), 12);
        assert_eq!(core::mem::size_of::<CmsgHdr32<LittleEndian>>(), 12);
        assert_eq!(CmsgLayout::Bits64.header_size(), 16);
        assert_eq!(CmsgLayout::Bits32.header_size(), 12);
        for l in [CmsgLayout::Bits32, CmsgLayout::Bits64] {
            assert_eq!(l.header_size() % l.align(), 0);
            assert_eq!(l.len_field_size(), l.align());
        }
    }

    #[test]
    fn cmsg_macros_match_glibc_definitions() {
        // glibc: CMSG_LEN(n) = CMSG_ALIGN(sizeof(cmsghdr)) + n,
        // CMSG_SPACE(n) = CMSG_ALIGN(n) + CMSG_ALIGN(sizeof(cmsghdr)).
        let l = CmsgLayout::Bits64;
        assert_eq!(
            (l.len(0), l.space(0), l.space(1), l.space(16)),
            (16, 16, 24, 32)
        );
        let l = CmsgLayout::Bits32;
        assert_eq!(
            (l.len(0), l.space(0), l.space(1), l.space(16)),
            (12, 12, 16, 28)
        );
        assert_eq!(l.space(5), 20);
        assert_eq!(l.len(5), 17);
    }

    #[test]
    fn alignment_never_overflows_silently() {
        assert_eq!(CmsgLayout::Bits64.checked_align(usize::MAX), None);
        assert_eq!(CmsgLayout::Bits32.checked_align(usize::MAX - 2), None);
        assert_eq!(
            CmsgLayout::Bits32.checked_align(usize::MAX - 3),
            Some(usize::MAX - 3)
        );
        assert_eq!(CmsgLayout::Bits64.checked_align(9), Some(16));
    }

    #[test]
    fn native_layout_matches_pointer_width() {
        assert_eq!(CmsgLayout::NATIVE.align(), core::mem::size_of::<usize>());
    }
}
