//! Socket addresses as the kernel writes them after a
//! `struct sock_extended_err` (`SO_EE_OFFENDER`).
//!
//! Ports, IPv4 addresses, IPv6 addresses and `sin6_flowinfo` are in network
//! byte order on every target (`__be16`/`__be32` in the kernel's
//! `include/uapi/linux/in.h` and `in6.h`); the family (`sa_family_t`, an
//! `unsigned short`) and `sin6_scope_id` (`__u32`) are in the target's.

use zerocopy::byteorder::{BigEndian, ByteOrder, U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `struct sockaddr_in` (`include/uapi/linux/in.h`), the family in byte
/// order `O`: 16 bytes on every target.
///
/// ```
/// use msgzc_abi::{SockaddrIn, AF_INET};
/// use zerocopy::{BigEndian, FromBytes};
///
/// // hppa (big-endian): AF_INET, port 0, 127.0.0.1.
/// let raw = [0, 2, 0, 0, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
/// let a = SockaddrIn::<BigEndian>::read_from_bytes(&raw).unwrap();
/// assert_eq!((a.sin_family.get(), a.sin_port.get(), a.sin_addr), (AF_INET, 0, [127, 0, 0, 1]));
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct SockaddrIn<O: ByteOrder> {
    /// `AF_INET`, in the target's byte order.
    pub sin_family: U16<O>,
    /// Port, network byte order.
    pub sin_port: U16<BigEndian>,
    /// IPv4 address, network byte order.
    pub sin_addr: [u8; 4],
    /// Padding to the size of `struct sockaddr`.
    pub sin_zero: [u8; 8],
}

/// `struct sockaddr_in6` (`include/uapi/linux/in6.h`), the family and scope
/// id in byte order `O`: 28 bytes on every target.
///
/// ```
/// use msgzc_abi::{SockaddrIn6, AF_INET6};
/// use zerocopy::{FromBytes, LittleEndian};
///
/// // x86_64: AF_INET6, port 443, flow label 5, ::1, scope id 2.
/// let mut raw = [0u8; 28];
/// raw[..2].copy_from_slice(&AF_INET6.to_le_bytes());
/// raw[2..4].copy_from_slice(&443u16.to_be_bytes());
/// raw[4..8].copy_from_slice(&5u32.to_be_bytes());
/// raw[23] = 1;
/// raw[24..].copy_from_slice(&2u32.to_le_bytes());
/// let a = SockaddrIn6::<LittleEndian>::read_from_bytes(&raw).unwrap();
/// assert_eq!((a.sin6_port.get(), a.sin6_flowinfo.get(), a.sin6_scope_id.get()), (443, 5, 2));
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct SockaddrIn6<O: ByteOrder> {
    /// `AF_INET6`, in the target's byte order.
    pub sin6_family: U16<O>,
    /// Port, network byte order.
    pub sin6_port: U16<BigEndian>,
    /// Traffic class and flow label (`__be32`), network byte order.
    pub sin6_flowinfo: U32<BigEndian>,
    /// IPv6 address, network byte order.
    pub sin6_addr: [u8; 16],
    /// Interface index of a link-local address (`__u32`), in the target's
    /// byte order.
    pub sin6_scope_id: U32<O>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::LittleEndian;

    #[test]
    fn sizes_and_offsets_are_pinned() {
        assert_eq!(core::mem::size_of::<SockaddrIn<BigEndian>>(), 16);
        assert_eq!(core::mem::size_of::<SockaddrIn6<LittleEndian>>(), 28);
        assert_eq!(core::mem::offset_of!(SockaddrIn<BigEndian>, sin_addr), 4);
        assert_eq!(
            core::mem::offset_of!(SockaddrIn6<LittleEndian>, sin6_flowinfo),
            4
        );
        assert_eq!(
            core::mem::offset_of!(SockaddrIn6<LittleEndian>, sin6_addr),
            8
        );
        assert_eq!(
            core::mem::offset_of!(SockaddrIn6<LittleEndian>, sin6_scope_id),
            24
        );
    }

    #[test]
    fn only_family_and_scope_follow_the_target() {
        let mut raw = [0u8; 28];
        raw[..8].copy_from_slice(&[0, 10, 1, 2, 0, 0, 0, 7]);
        raw[24..].copy_from_slice(&[0, 0, 0, 3]);
        let be = SockaddrIn6::<BigEndian>::read_from_bytes(&raw).unwrap();
        let le = SockaddrIn6::<LittleEndian>::read_from_bytes(&raw).unwrap();
        assert_eq!((be.sin6_family.get(), be.sin6_scope_id.get()), (10, 3));
        assert_eq!(
            (le.sin6_family.get(), le.sin6_scope_id.get()),
            (10 << 8, 3 << 24)
        );
        for a in [be.sin6_port.get(), le.sin6_port.get()] {
            assert_eq!(a, 0x0102);
        }
        assert_eq!(le.sin6_flowinfo.get(), 7);
    }
}
