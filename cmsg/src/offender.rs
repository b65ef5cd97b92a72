//! The `SO_EE_OFFENDER` address of an extended error, typed.

use crate::decode::ExtendedErr;
use crate::error::DecodeError;
use crate::layout::{
    read_sa_family, read_sockaddr_in, read_sockaddr_in6, SA_FAMILY_SIZE, SOCKADDR_IN6_SIZE,
    SOCKADDR_IN_SIZE,
};
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use msgzc_abi::Target;

/// The address the kernel puts after a `struct sock_extended_err`
/// (`SO_EE_OFFENDER`): for ICMP errors, the host that sent the ICMP
/// message.
///
/// The kernel zeroes it, so leaves it [`Unspecified`](Self::Unspecified),
/// for zerocopy, timestamp and local error reports. An IPv6 socket gets
/// IPv4 offenders as v4-mapped [`V6`](Self::V6) addresses
/// (`::ffff:a.b.c.d`; see [`Ipv6Addr::to_ipv4_mapped`]).
///
/// `V6`'s flow information is the number in the `__be32` `sin6_flowinfo`
/// (traffic class and flow label), read in network byte order; the scope
/// id is the `__u32` `sin6_scope_id`, read in the target's. (The standard
/// library's own socket calls copy `sin6_flowinfo` without swapping it, so
/// on little-endian hosts their `flowinfo()` is this value byte-swapped:
/// rust-lang/rust#101605.)
///
/// Non-exhaustive: families this crate learns to decode get variants of
/// their own instead of [`Other`](Self::Other).
///
/// ```
/// use msgzc_cmsg::Offender;
/// use msgzc_abi::Arch;
///
/// // mips64 (big-endian): AF_INET6 (10), port 0, 2001:db8::1, scope id 0.
/// let mut raw = [0u8; 28];
/// raw[1] = 10;
/// raw[8..10].copy_from_slice(&[0x20, 0x01]);
/// raw[10..12].copy_from_slice(&[0x0d, 0xb8]);
/// raw[23] = 1;
/// let o = Offender::decode(Arch::Mips64.target(), &raw).unwrap().unwrap();
/// assert_eq!(o.to_string(), "[2001:db8::1]:0");
/// assert_eq!(o.socket_addr(), Some("[2001:db8::1]:0".parse().unwrap()));
/// // The same bytes on a little-endian target: family 0x0a00, not AF_INET6.
/// let o = Offender::decode(Arch::Mips64el.target(), &raw).unwrap().unwrap();
/// assert_eq!(o, Offender::Other { family: 0x0a00 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Offender {
    /// `AF_UNSPEC`: no address.
    Unspecified,
    /// `AF_INET`: a `struct sockaddr_in`.
    V4(SocketAddrV4),
    /// `AF_INET6`: a `struct sockaddr_in6`.
    V6(SocketAddrV6),
    /// Another address family; the bytes are left undecoded.
    Other {
        /// The family number, in host order.
        family: u16,
    },
}

impl Offender {
    /// Decodes the `sockaddr` at the start of `bytes`, in `target`'s
    /// layout: `Ok(None)` when `bytes` is empty (no address follows), a
    /// [`DecodeError::ShortOffender`] when it is shorter than `sa_family_t`
    /// or than its family's structure. Bytes past the structure are
    /// ignored.
    ///
    /// ```
    /// use msgzc_cmsg::{DecodeError, Offender};
    /// use msgzc_abi::Arch;
    ///
    /// let t = Arch::X86_64.target();
    /// assert_eq!(Offender::decode(t, &[]), Ok(None));
    /// assert_eq!(Offender::decode(t, &[0; 16]), Ok(Some(Offender::Unspecified)));
    /// assert_eq!(
    ///     Offender::decode(t, &[2, 0, 0, 0, 127, 0, 0, 1]),
    ///     Err(DecodeError::ShortOffender { family: Some(2), needed: 16, got: 8 })
    /// );
    /// ```
    pub fn decode(target: Target, bytes: &[u8]) -> Result<Option<Offender>, DecodeError> {
        if bytes.is_empty() {
            return Ok(None);
        }
        let (e, n) = (target.endian, target.numbers());
        let short = |family, needed| DecodeError::ShortOffender {
            family,
            needed,
            got: bytes.len(),
        };
        let family = read_sa_family(e, bytes).ok_or(short(None, SA_FAMILY_SIZE))?;
        let addr = if family == n.af_unspec {
            Offender::Unspecified
        } else if family == n.af_inet {
            let (port, ip) =
                read_sockaddr_in(e, bytes).ok_or(short(Some(family), SOCKADDR_IN_SIZE))?;
            Offender::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))
        } else if family == n.af_inet6 {
            let (port, flowinfo, ip, scope_id) =
                read_sockaddr_in6(e, bytes).ok_or(short(Some(family), SOCKADDR_IN6_SIZE))?;
            Offender::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flowinfo,
                scope_id,
            ))
        } else {
            Offender::Other { family }
        };
        Ok(Some(addr))
    }

    /// The address as a [`SocketAddr`], if it is an IPv4 or IPv6 one.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match *self {
            Offender::V4(a) => Some(SocketAddr::V4(a)),
            Offender::V6(a) => Some(SocketAddr::V6(a)),
            Offender::Unspecified | Offender::Other { .. } => None,
        }
    }
}

/// IP addresses as [`SocketAddr`] shows them; `unspecified` and
/// `family N` otherwise.
impl fmt::Display for Offender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Offender::Unspecified => f.write_str("unspecified"),
            Offender::V4(a) => fmt::Display::fmt(a, f),
            Offender::V6(a) => fmt::Display::fmt(a, f),
            Offender::Other { family } => write!(f, "family {family}"),
        }
    }
}

impl ExtendedErr<'_> {
    /// The offender address, decoded in `target`'s layout (the target the
    /// message was decoded for): see [`Offender::decode`].
    ///
    /// ```
    /// use msgzc_cmsg::{decode_errqueue, Cmsg, ErrqueueItem, Offender};
    /// use msgzc_abi::Arch;
    ///
    /// // hppa (big-endian), as a 6.1 kernel wrote it: ICMP port unreachable
    /// // (ECONNREFUSED 239) from 127.0.0.1.
    /// let mut data = [0u8; 32];
    /// data[..8].copy_from_slice(&[0, 0, 0, 239, 2, 3, 3, 0]);
    /// data[16..24].copy_from_slice(&[0, 2, 0, 0, 127, 0, 0, 1]);
    /// let t = Arch::Hppa.target();
    /// let m = Cmsg { level: 0, ty: 11, data: &data, offset: 0 };
    /// let Ok(ErrqueueItem::Extended(e)) = decode_errqueue(t, &m) else { panic!() };
    /// let Ok(Some(Offender::V4(a))) = e.offender_addr(t) else { panic!() };
    /// assert_eq!(a.to_string(), "127.0.0.1:0");
    /// ```
    pub fn offender_addr(&self, target: Target) -> Result<Option<Offender>, DecodeError> {
        Offender::decode(target, self.offender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_errqueue, ControlBuf, ControlBuilder, ErrqueueItem, MsgFlags, Walker};
    use msgzc_abi::{Arch, Endian, IPV6_RECVERR, IP_RECVERR, SOL_IP, SOL_IPV6};
    use proptest::prelude::*;
    use std::vec::Vec;

    fn u16_in(e: Endian, v: u16) -> [u8; 2] {
        match e {
            Endian::Big => v.to_be_bytes(),
            Endian::Little => v.to_le_bytes(),
        }
    }

    fn u32_in(e: Endian, v: u32) -> [u8; 4] {
        match e {
            Endian::Big => v.to_be_bytes(),
            Endian::Little => v.to_le_bytes(),
        }
    }

    fn other(e: Endian) -> Endian {
        match e {
            Endian::Big => Endian::Little,
            Endian::Little => Endian::Big,
        }
    }

    /// A `sock_extended_err` for ICMP port unreachable, then `offender`.
    fn icmp_payload(e: Endian, offender: &[u8]) -> Vec<u8> {
        let mut d = Vec::from(u32_in(e, 111));
        d.extend([2, 3, 3, 0]);
        d.extend(u32_in(e, 0));
        d.extend(u32_in(e, 0));
        d.extend_from_slice(offender);
        d
    }

    /// Builds one message for `t` with the crate's builder, walks it back
    /// and returns its decoded offender: the whole path a received buffer
    /// takes, with `t`'s header size and byte order.
    fn through_a_buffer(t: Target, level: i32, ty: i32, data: &[u8]) -> Option<Offender> {
        let mut buf = ControlBuf::<128>::new();
        let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).unwrap();
        b.push(level, ty, data).unwrap();
        let c = b.finish();
        let msgs: Vec<_> = Walker::new(t, c.as_bytes(), c.len(), MsgFlags::empty())
            .collect::<Result<_, _>>()
            .unwrap();
        let [m] = msgs.as_slice() else {
            panic!("{msgs:?}")
        };
        match decode_errqueue(t, m) {
            Ok(ErrqueueItem::Extended(x)) => x.offender_addr(t).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ipv4_offenders_on_every_target() {
        let want = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 0x1234);
        for arch in Arch::ALL {
            let t = arch.target();
            let e = t.endian;
            let mut sin = Vec::from(u16_in(e, 2));
            sin.extend([0x12, 0x34, 192, 0, 2, 1]);
            sin.extend([0; 8]);
            let data = icmp_payload(e, &sin);
            let got = through_a_buffer(t, SOL_IP, IP_RECVERR, &data);
            assert_eq!(got, Some(Offender::V4(want)), "{arch}");
            // Read in the other byte order the family is 0x0200.
            let swapped = Target {
                endian: other(e),
                ..t
            };
            assert_eq!(
                Offender::decode(swapped, &sin),
                Ok(Some(Offender::Other { family: 0x0200 })),
                "{arch}"
            );
        }
    }

    #[test]
    fn ipv6_offenders_on_every_target() {
        let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let want = SocketAddrV6::new(ip, 443, 0x000a_bcde, 7);
        for arch in Arch::ALL {
            let t = arch.target();
            let e = t.endian;
            let mut sin6 = Vec::from(u16_in(e, 10));
            sin6.extend(443u16.to_be_bytes());
            sin6.extend(0x000a_bcdeu32.to_be_bytes());
            sin6.extend(ip.octets());
            sin6.extend(u32_in(e, 7));
            let data = icmp_payload(e, &sin6);
            let got = through_a_buffer(t, SOL_IPV6, IPV6_RECVERR, &data);
            assert_eq!(got, Some(Offender::V6(want)), "{arch}");
            assert_eq!(
                got.and_then(|o| o.socket_addr()),
                Some(SocketAddr::V6(want))
            );
        }
    }

    /// `SO_EE_OFFENDER` as 6.1 kernels wrote it (ICMP port unreachable from
    /// 127.0.0.1 to a UDP socket), from `conformance/facts/kernel-buffers.txt`:
    /// big- and little-endian, 32- and 64-bit.
    #[test]
    fn offenders_of_real_kernel_buffers() {
        let buffers = [
            (Arch::Hppa, "0000002c000000000000000b000000ef020303000000000000000000000200007f0000010000000000000000"),
            (Arch::S390x, "0000000000000030000000000000000b0000006f020303000000000000000000000200007f0000010000000000000000"),
            (Arch::Armv7, "2c000000000000000b0000006f000000020303000000000000000000020000007f0000010000000000000000"),
            (Arch::Aarch64, "3000000000000000000000000b0000006f000000020303000000000000000000020000007f0000010000000000000000"),
        ];
        for (arch, hex) in buffers {
            let t = arch.target();
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let msgs: Vec<_> = Walker::new(t, &bytes, bytes.len(), MsgFlags::empty())
                .collect::<Result<_, _>>()
                .unwrap();
            let Ok(ErrqueueItem::Extended(x)) = decode_errqueue(t, &msgs[0]) else {
                panic!("{arch}: {msgs:?}");
            };
            let localhost = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
            assert_eq!(
                x.offender_addr(t),
                Ok(Some(Offender::V4(localhost))),
                "{arch}"
            );
        }
    }

    #[test]
    fn zeroed_short_and_foreign_offenders() {
        for arch in Arch::ALL {
            let t = arch.target();
            let e = t.endian;
            let dec = |b: &[u8]| Offender::decode(t, b);
            assert_eq!(dec(&[]), Ok(None));
            assert_eq!(dec(&[0; 28]), Ok(Some(Offender::Unspecified)));
            assert_eq!(dec(&[0; 2]), Ok(Some(Offender::Unspecified)));
            let unix = u16_in(e, 1);
            assert_eq!(dec(&unix), Ok(Some(Offender::Other { family: 1 })));
            let short = |family, needed, got| {
                Err(DecodeError::ShortOffender {
                    family,
                    needed,
                    got,
                })
            };
            assert_eq!(dec(&[0]), short(None, 2, 1));
            let mut sin = [0u8; 16];
            sin[..2].copy_from_slice(&u16_in(e, 2));
            assert_eq!(dec(&sin[..15]), short(Some(2), 16, 15));
            let mut sin6 = [0u8; 28];
            sin6[..2].copy_from_slice(&u16_in(e, 10));
            assert_eq!(dec(&sin6[..16]), short(Some(10), 28, 16));
            assert_eq!(
                dec(&sin6),
                Ok(Some(Offender::V6(SocketAddrV6::new(
                    Ipv6Addr::UNSPECIFIED,
                    0,
                    0,
                    0
                ))))
            );
        }
    }

    #[test]
    fn display_names_every_kind() {
        let v4 = Offender::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 0));
        let v6 = Offender::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 53, 0, 3));
        assert_eq!(std::format!("{v4}"), "192.0.2.1:0");
        assert_eq!(std::format!("{v6}"), "[::1%3]:53");
        assert_eq!(std::format!("{}", Offender::Unspecified), "unspecified");
        assert_eq!(
            std::format!("{}", Offender::Other { family: 17 }),
            "family 17"
        );
        assert_eq!(Offender::Unspecified.socket_addr(), None);
    }

    /// The straightforward decoder: byte slices and `from_*_bytes`.
    fn reference(t: Target, b: &[u8]) -> Result<Option<Offender>, DecodeError> {
        let big = t.is_big_endian();
        let u16_at = |i: usize| {
            let a = [b[i], b[i + 1]];
            if big {
                u16::from_be_bytes(a)
            } else {
                u16::from_le_bytes(a)
            }
        };
        let short = |family, needed| DecodeError::ShortOffender {
            family,
            needed,
            got: b.len(),
        };
        match b.len() {
            0 => return Ok(None),
            1 => return Err(short(None, 2)),
            _ => {}
        }
        let family = u16_at(0);
        let port = || u16::from_be_bytes([b[2], b[3]]);
        Ok(Some(match family {
            0 => Offender::Unspecified,
            2 if b.len() < 16 => return Err(short(Some(2), 16)),
            2 => Offender::V4(SocketAddrV4::new(
                Ipv4Addr::new(b[4], b[5], b[6], b[7]),
                port(),
            )),
            10 if b.len() < 28 => return Err(short(Some(10), 28)),
            10 => {
                let flow = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                let mut ip = [0u8; 16];
                ip.copy_from_slice(&b[8..24]);
                let s = [b[24], b[25], b[26], b[27]];
                let scope = if big {
                    u32::from_be_bytes(s)
                } else {
                    u32::from_le_bytes(s)
                };
                Offender::V6(SocketAddrV6::new(ip.into(), port(), flow, scope))
            }
            family => Offender::Other { family },
        }))
    }

    proptest! {
        #![proptest_config(crate::tests::proptest_config())]
        #[test]
        fn offender_decodes_like_the_reference(
            arch in 0usize..15,
            family in prop_oneof![Just(0u16), Just(2), Just(10), any::<u16>()],
            rest in proptest::collection::vec(any::<u8>(), 0..40),
            cut in any::<bool>(),
        ) {
            let t = Arch::ALL[arch].target();
            let mut b = Vec::from(u16_in(t.endian, family));
            b.extend(rest);
            if cut {
                b.truncate(1);
            }
            prop_assert_eq!(Offender::decode(t, &b), reference(t, &b));
        }
    }
}
