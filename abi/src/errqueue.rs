//! Error-queue payloads: `struct sock_extended_err` and the timestamp
//! structures that travel beside it.

use zerocopy::byteorder::{ByteOrder, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `struct sock_extended_err` (`include/uapi/linux/errqueue.h`), in byte
/// order `O`. Fixed-width fields only, so it is 16 bytes on every target.
///
/// For a zerocopy notification (`ee_origin == SO_EE_ORIGIN_ZEROCOPY`,
/// `ee_errno == 0`), `ee_info` is the first and `ee_data` the last send id of
/// the completed range, both inclusive, and bit
/// [`SO_EE_CODE_ZEROCOPY_COPIED`](crate::SO_EE_CODE_ZEROCOPY_COPIED) of
/// `ee_code` says the kernel copied instead.
///
/// For ICMP errors the offending address (`SO_EE_OFFENDER`, a
/// [`SockaddrIn`](crate::SockaddrIn) or [`SockaddrIn6`](crate::SockaddrIn6))
/// follows the struct in the same control message.
///
/// ```
/// use msgzc_abi::SockExtendedErr;
/// use zerocopy::{BigEndian, FromBytes};
///
/// // A big-endian (mips, sparc, s390x) completion of sends 3..=7, copied.
/// let raw = [0, 0, 0, 0, 5, 0, 1, 0, 0, 0, 0, 3, 0, 0, 0, 7];
/// let e = SockExtendedErr::<BigEndian>::read_from_bytes(&raw).unwrap();
/// assert_eq!((e.ee_origin, e.ee_code, e.ee_info.get(), e.ee_data.get()), (5, 1, 3, 7));
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct SockExtendedErr<O: ByteOrder> {
    /// Error number (0 for zerocopy and timestamp reports).
    pub ee_errno: U32<O>,
    /// `SO_EE_ORIGIN_*`.
    pub ee_origin: u8,
    /// ICMP type, or for timestamps `SCM_TSTAMP_*`.
    pub ee_type: u8,
    /// ICMP code, or zerocopy flags.
    pub ee_code: u8,
    /// Padding, zero.
    pub ee_pad: u8,
    /// Extra information: MTU for `EMSGSIZE`, first id of a zerocopy range,
    /// `OPT_ID` key of a timestamp.
    pub ee_info: U32<O>,
    /// Extra data: last id of a zerocopy range.
    pub ee_data: U32<O>,
}

/// `struct __kernel_timespec` (`include/uapi/linux/time_types.h`): 64-bit
/// seconds and nanoseconds on every target. Three of them form
/// `struct scm_timestamping64`, the payload of `SO_TIMESTAMPING_NEW`, and of
/// `SO_TIMESTAMPING_OLD` on 64-bit targets (where `long` is 64 bits).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct Timespec64<O: ByteOrder> {
    /// Seconds.
    pub tv_sec: I64<O>,
    /// Nanoseconds.
    pub tv_nsec: I64<O>,
}

/// A 32-bit `struct timespec` (`long` fields on ILP32): three of them form
/// `struct scm_timestamping`, the payload of `SO_TIMESTAMPING_OLD` on 32-bit
/// targets.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct Timespec32<O: ByteOrder> {
    /// Seconds.
    pub tv_sec: I32<O>,
    /// Nanoseconds.
    pub tv_nsec: I32<O>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::{BigEndian, LittleEndian};

    #[test]
    fn sizes_and_offsets_are_pinned() {
        assert_eq!(core::mem::size_of::<SockExtendedErr<LittleEndian>>(), 16);
        assert_eq!(core::mem::size_of::<Timespec64<BigEndian>>(), 16);
        assert_eq!(core::mem::size_of::<Timespec32<BigEndian>>(), 8);
        assert_eq!(
            core::mem::offset_of!(SockExtendedErr<LittleEndian>, ee_origin),
            4
        );
        assert_eq!(
            core::mem::offset_of!(SockExtendedErr<LittleEndian>, ee_code),
            6
        );
        assert_eq!(
            core::mem::offset_of!(SockExtendedErr<LittleEndian>, ee_info),
            8
        );
        assert_eq!(
            core::mem::offset_of!(SockExtendedErr<LittleEndian>, ee_data),
            12
        );
    }

    #[test]
    fn byte_order_is_respected() {
        let raw = [1, 0, 0, 0, 2, 3, 4, 0, 5, 0, 0, 0, 6, 0, 0, 0];
        let le = SockExtendedErr::<LittleEndian>::read_from_bytes(&raw).unwrap();
        let be = SockExtendedErr::<BigEndian>::read_from_bytes(&raw).unwrap();
        assert_eq!(
            (le.ee_errno.get(), le.ee_info.get(), le.ee_data.get()),
            (1, 5, 6)
        );
        assert_eq!(be.ee_errno.get(), 1 << 24);
        assert_eq!(be.as_bytes(), &raw);
    }
}
