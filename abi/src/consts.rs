//! Numbers of the merged (mainline) ABI, per family where they differ.
//!
//! Every number is written once. Those that differ per family sit in the
//! [`SocketNumbers`] and [`ErrnoNumbers`] tables below; those that are the
//! same on every architecture (they come from arch-independent headers) are
//! single constants. [`Target::numbers`] assembles the full per-target view,
//! which the conformance runner compares field by field with what each
//! cross toolchain's own headers say.

use crate::target::{Family, Target};

/// The `SOL_SOCKET`-level numbers that differ between families.
///
/// Non-exhaustive: the table grows as the crate describes more options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SocketNumbers {
    /// `SOL_SOCKET`.
    pub sol_socket: i32,
    /// `SO_ZEROCOPY` (socket option enabling `MSG_ZEROCOPY`, Linux 4.14).
    pub so_zerocopy: i32,
    /// `SO_TIMESTAMPING_OLD`: option and cmsg type with `long`-based
    /// timespecs (what `SO_TIMESTAMPING` means on 64-bit user space).
    pub so_timestamping_old: i32,
    /// `SO_TIMESTAMPING_NEW`: the y2038-safe variant (Linux 5.1).
    pub so_timestamping_new: i32,
    /// `SO_TYPE`: read-only option giving the socket type.
    pub so_type: i32,
    /// `SO_ERROR`: read-only option that returns and clears the socket's
    /// pending error (which keeps `poll` reporting `POLLERR`).
    pub so_error: i32,
    /// `SO_SNDBUF`: the send buffer's size.
    pub so_sndbuf: i32,
    /// `SO_RCVBUF`: the receive buffer's size.
    pub so_rcvbuf: i32,
    /// `SOCK_STREAM` (mips swaps it with `SOCK_DGRAM`).
    pub sock_stream: i32,
    /// `SOCK_DGRAM`.
    pub sock_dgram: i32,
}

/// `arch/*/include/uapi/asm/socket.h` (and `asm-generic/socket.h`) numbers.
///
/// Sources, by family and macro:
/// - generic: `include/uapi/asm-generic/socket.h`: `SOL_SOCKET 1`,
///   `SO_ZEROCOPY 60`, `SO_TIMESTAMPING_OLD 37`, `SO_TIMESTAMPING_NEW 65`.
/// - alpha: `arch/alpha/include/uapi/asm/socket.h`: `SOL_SOCKET 0xffff`,
///   `SO_ZEROCOPY 60`, `SO_TIMESTAMPING_OLD 37`, `SO_TIMESTAMPING_NEW 65`.
/// - mips: `arch/mips/include/uapi/asm/socket.h`: `SOL_SOCKET 0xffff`,
///   `SO_ZEROCOPY 60`, `SO_TIMESTAMPING_OLD 37`, `SO_TIMESTAMPING_NEW 65`.
/// - parisc: `arch/parisc/include/uapi/asm/socket.h`: `SOL_SOCKET 0xffff`,
///   `SO_ZEROCOPY 0x4035`, `SO_TIMESTAMPING_OLD 0x4020`,
///   `SO_TIMESTAMPING_NEW 0x403A`.
/// - sparc: `arch/sparc/include/uapi/asm/socket.h`: `SOL_SOCKET 0xffff`,
///   `SO_ZEROCOPY 0x003e`, `SO_TIMESTAMPING_OLD 0x0023`,
///   `SO_TIMESTAMPING_NEW 0x0043`.
///
/// `SO_TYPE` is 3 in `asm-generic/socket.h` and 0x1008 in the alpha, mips,
/// parisc and sparc headers; `SO_ERROR` is 4 and 0x1007, `SO_SNDBUF` 7 and
/// 0x1001, `SO_RCVBUF` 8 and 0x1002. `SOCK_STREAM 1`/`SOCK_DGRAM 2` come from
/// `include/linux/net.h` (`enum sock_type`), except mips
/// (`arch/mips/include/asm/socket.h`: `SOCK_DGRAM 1`, `SOCK_STREAM 2`,
/// mirrored by glibc's mips `bits/socket_type.h`).
///
/// Checked against the Debian cross toolchains' `linux-libc-dev` (6.1)
/// headers by `msgzc-conformance`'s ABI-facts case on every named target.
const SOCKET: [SocketNumbers; 5] = [
    // generic
    SocketNumbers {
        sol_socket: 1,
        so_zerocopy: 60,
        so_timestamping_old: 37,
        so_timestamping_new: 65,
        so_type: 3,
        so_error: 4,
        so_sndbuf: 7,
        so_rcvbuf: 8,
        sock_stream: 1,
        sock_dgram: 2,
    },
    // alpha
    SocketNumbers {
        sol_socket: 0xffff,
        so_zerocopy: 60,
        so_timestamping_old: 37,
        so_timestamping_new: 65,
        so_type: 0x1008,
        so_error: 0x1007,
        so_sndbuf: 0x1001,
        so_rcvbuf: 0x1002,
        sock_stream: 1,
        sock_dgram: 2,
    },
    // mips
    SocketNumbers {
        sol_socket: 0xffff,
        so_zerocopy: 60,
        so_timestamping_old: 37,
        so_timestamping_new: 65,
        so_type: 0x1008,
        so_error: 0x1007,
        so_sndbuf: 0x1001,
        so_rcvbuf: 0x1002,
        sock_stream: 2,
        sock_dgram: 1,
    },
    // parisc
    SocketNumbers {
        sol_socket: 0xffff,
        so_zerocopy: 0x4035,
        so_timestamping_old: 0x4020,
        so_timestamping_new: 0x403a,
        so_type: 0x1008,
        so_error: 0x1007,
        so_sndbuf: 0x1001,
        so_rcvbuf: 0x1002,
        sock_stream: 1,
        sock_dgram: 2,
    },
    // sparc
    SocketNumbers {
        sol_socket: 0xffff,
        so_zerocopy: 0x003e,
        so_timestamping_old: 0x0023,
        so_timestamping_new: 0x0043,
        so_type: 0x1008,
        so_error: 0x1007,
        so_sndbuf: 0x1001,
        so_rcvbuf: 0x1002,
        sock_stream: 1,
        sock_dgram: 2,
    },
];

/// The `errno` values this ABI reports, which differ between families.
///
/// Non-exhaustive, like [`SocketNumbers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ErrnoNumbers {
    /// `ENOBUFS`: optmem or locked-page budget exhausted by a zerocopy send.
    pub enobufs: i32,
    /// `EINVAL`: malformed or unknown control message.
    pub einval: i32,
    /// `EAGAIN`: nothing on the error queue (non-blocking read).
    pub eagain: i32,
    /// `ENOPROTOOPT`: socket option unknown (old kernel, or an emulator).
    pub enoprotoopt: i32,
}

/// errno tables. Sources:
/// - generic: `include/uapi/asm-generic/errno-base.h` (`EAGAIN 11`,
///   `EINVAL 22`) and `include/uapi/asm-generic/errno.h` (`ENOPROTOOPT 92`,
///   `ENOBUFS 105`); powerpc's `errno.h` only overrides `EDEADLOCK`.
/// - alpha: `arch/alpha/include/uapi/asm/errno.h`: `EAGAIN 35`,
///   `ENOPROTOOPT 42`, `ENOBUFS 55`; `EINVAL 22` from `errno-base.h`.
/// - mips: `arch/mips/include/uapi/asm/errno.h`: `ENOPROTOOPT 99`,
///   `ENOBUFS 132`; `EAGAIN 11`, `EINVAL 22` from `errno-base.h`.
/// - parisc: `arch/parisc/include/uapi/asm/errno.h`: `ENOPROTOOPT 220`,
///   `ENOBUFS 233`; `EAGAIN 11`, `EINVAL 22` from `errno-base.h`.
/// - sparc: `arch/sparc/include/uapi/asm/errno.h`: `ENOPROTOOPT 42`,
///   `ENOBUFS 55`; `EAGAIN 11`, `EINVAL 22` from `errno-base.h`.
const ERRNO: [ErrnoNumbers; 5] = [
    // generic
    ErrnoNumbers {
        enobufs: 105,
        einval: 22,
        eagain: 11,
        enoprotoopt: 92,
    },
    // alpha
    ErrnoNumbers {
        enobufs: 55,
        einval: 22,
        eagain: 35,
        enoprotoopt: 42,
    },
    // mips
    ErrnoNumbers {
        enobufs: 132,
        einval: 22,
        eagain: 11,
        enoprotoopt: 99,
    },
    // parisc
    ErrnoNumbers {
        enobufs: 233,
        einval: 22,
        eagain: 11,
        enoprotoopt: 220,
    },
    // sparc
    ErrnoNumbers {
        enobufs: 55,
        einval: 22,
        eagain: 11,
        enoprotoopt: 42,
    },
];

impl Family {
    const fn index(self) -> usize {
        match self {
            Family::Generic => 0,
            Family::Alpha => 1,
            Family::Mips => 2,
            Family::Parisc => 3,
            Family::Sparc => 4,
        }
    }

    /// This family's socket-level numbers.
    ///
    /// ```
    /// use msgzc_abi::Family;
    /// assert_eq!(Family::Generic.socket().so_zerocopy, 60);
    /// assert_eq!(Family::Sparc.socket().sol_socket, 0xffff);
    /// ```
    pub const fn socket(self) -> SocketNumbers {
        SOCKET[self.index()]
    }

    /// This family's errno numbers.
    ///
    /// ```
    /// use msgzc_abi::Family;
    /// assert_eq!(Family::Alpha.errno().eagain, 35);
    /// ```
    pub const fn errno(self) -> ErrnoNumbers {
        ERRNO[self.index()]
    }
}

/// `SOL_IP` (glibc `bits/socket.h`; the kernel's `IPPROTO_IP`).
pub const SOL_IP: i32 = 0;
/// `SOL_IPV6` (glibc `bits/socket.h`; `include/linux/socket.h`).
pub const SOL_IPV6: i32 = 41;
/// `IP_RECVERR` (`include/uapi/linux/in.h`): option and cmsg type of IPv4
/// error-queue messages.
pub const IP_RECVERR: i32 = 11;
/// `IPV6_RECVERR` (`include/uapi/linux/in6.h`).
pub const IPV6_RECVERR: i32 = 25;
/// `SOL_UDP` (`include/linux/socket.h`; glibc `netinet/udp.h`): the level
/// of UDP's socket options and control messages.
pub const SOL_UDP: i32 = 17;
/// `UDP_SEGMENT` (`include/uapi/linux/udp.h`, Linux 4.18): socket option
/// and, at level `SOL_UDP`, control message (a `u16`) asking the kernel to
/// cut one send into datagrams of this many payload bytes (UDP GSO).
pub const UDP_SEGMENT: i32 = 103;
/// `UIO_MAXIOV` (`include/uapi/linux/uio.h`): the most `iovec`s per
/// message, and the most messages one `sendmmsg` sends (it silently
/// handles only the first `UIO_MAXIOV` entries of a longer array).
pub const UIO_MAXIOV: u32 = 1024;

/// `AF_UNSPEC` (`include/linux/socket.h`): the family of the zeroed
/// `SO_EE_OFFENDER` of zerocopy, timestamp and local error reports.
///
/// Address families are `sa_family_t` (`unsigned short`) in a `sockaddr`,
/// hence `u16`; they are the same on every architecture.
pub const AF_UNSPEC: u16 = 0;
/// `AF_INET` (`include/linux/socket.h`).
pub const AF_INET: u16 = 2;
/// `AF_INET6` (`include/linux/socket.h`).
pub const AF_INET6: u16 = 10;

/// `SO_EE_CODE_ZEROCOPY_COPIED` (`include/uapi/linux/errqueue.h`): set in
/// `ee_code` of a zerocopy notification when the kernel fell back to copying
/// (always, on loopback).
pub const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;

bitflags::bitflags! {
    /// `MSG_*` flags of `send`/`recv` (`include/linux/socket.h`; the same on
    /// every architecture). Unknown bits are kept, so a received
    /// `msg_flags` round-trips.
    ///
    /// ```
    /// use msgzc_abi::MsgFlags;
    /// let f = MsgFlags::from_bits_retain(0x2048);
    /// assert!(f.contains(MsgFlags::ERRQUEUE | MsgFlags::CTRUNC | MsgFlags::DONTWAIT));
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct MsgFlags: u32 {
        /// `MSG_CTRUNC`: the control buffer was too small; messages were cut.
        const CTRUNC = 0x8;
        /// `MSG_TRUNC`: datagram or error-queue payload was truncated.
        const TRUNC = 0x20;
        /// `MSG_DONTWAIT`: do not block.
        const DONTWAIT = 0x40;
        /// `MSG_ERRQUEUE`: read from the socket error queue.
        const ERRQUEUE = 0x2000;
        /// `MSG_ZEROCOPY`: pin the user pages instead of copying (Linux 4.14).
        const ZEROCOPY = 0x400_0000;
        const _ = !0;
    }
}

bitflags::bitflags! {
    /// `SOF_TIMESTAMPING_*` request flags carried by an `SO_TIMESTAMPING`
    /// control message on send (`include/uapi/linux/net_tstamp.h`; the same
    /// on every architecture).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct TimestampingFlags: u32 {
        /// `SOF_TIMESTAMPING_TX_HARDWARE`.
        const TX_HARDWARE = 1 << 0;
        /// `SOF_TIMESTAMPING_TX_SOFTWARE`.
        const TX_SOFTWARE = 1 << 1;
        /// `SOF_TIMESTAMPING_SOFTWARE`: report software timestamps.
        const SOFTWARE = 1 << 4;
        /// `SOF_TIMESTAMPING_OPT_ID`: tag each send with a counter.
        const OPT_ID = 1 << 7;
        /// `SOF_TIMESTAMPING_TX_SCHED`.
        const TX_SCHED = 1 << 8;
        /// `SOF_TIMESTAMPING_TX_ACK`.
        const TX_ACK = 1 << 9;
        /// `SOF_TIMESTAMPING_OPT_TSONLY`: no payload copy on the error queue.
        const OPT_TSONLY = 1 << 11;
    }
}

impl TimestampingFlags {
    /// The flags the kernel accepts per send (`SOF_TIMESTAMPING_TX_RECORD_MASK`
    /// in `net_tstamp.h`); others make `sendmsg` fail with `EINVAL`.
    pub const TX_RECORD_MASK: TimestampingFlags = TimestampingFlags::TX_HARDWARE
        .union(TimestampingFlags::TX_SOFTWARE)
        .union(TimestampingFlags::TX_SCHED)
        .union(TimestampingFlags::TX_ACK);
}

/// `ee_origin` of a `struct sock_extended_err`
/// (`SO_EE_ORIGIN_*`, `include/uapi/linux/errqueue.h`).
///
/// Non-exhaustive: a kernel may add origins (`TXTIME` came in 4.19).
/// [`from_raw`](Self::from_raw) returns `None` for one this crate does not
/// know yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum ErrOrigin {
    /// `SO_EE_ORIGIN_NONE`.
    None = 0,
    /// `SO_EE_ORIGIN_LOCAL`: generated locally (e.g. `EMSGSIZE` on PMTU).
    Local = 1,
    /// `SO_EE_ORIGIN_ICMP`: an ICMPv4 error.
    Icmp = 2,
    /// `SO_EE_ORIGIN_ICMP6`: an ICMPv6 error.
    Icmp6 = 3,
    /// `SO_EE_ORIGIN_TXSTATUS`, alias `SO_EE_ORIGIN_TIMESTAMPING`: a transmit
    /// timestamp report.
    Timestamping = 4,
    /// `SO_EE_ORIGIN_ZEROCOPY`: a zerocopy completion range.
    Zerocopy = 5,
    /// `SO_EE_ORIGIN_TXTIME`: an `SO_TXTIME` drop report.
    Txtime = 6,
}

impl ErrOrigin {
    /// Every known origin.
    pub const ALL: [ErrOrigin; 7] = [
        ErrOrigin::None,
        ErrOrigin::Local,
        ErrOrigin::Icmp,
        ErrOrigin::Icmp6,
        ErrOrigin::Timestamping,
        ErrOrigin::Zerocopy,
        ErrOrigin::Txtime,
    ];

    /// The origin with this raw value, if it is a known one.
    ///
    /// ```
    /// use msgzc_abi::ErrOrigin;
    /// assert_eq!(ErrOrigin::from_raw(5), Some(ErrOrigin::Zerocopy));
    /// assert_eq!(ErrOrigin::from_raw(200), None);
    /// ```
    pub const fn from_raw(raw: u8) -> Option<ErrOrigin> {
        match raw {
            0 => Some(ErrOrigin::None),
            1 => Some(ErrOrigin::Local),
            2 => Some(ErrOrigin::Icmp),
            3 => Some(ErrOrigin::Icmp6),
            4 => Some(ErrOrigin::Timestamping),
            5 => Some(ErrOrigin::Zerocopy),
            6 => Some(ErrOrigin::Txtime),
            _ => None,
        }
    }

    /// The raw `ee_origin` value.
    pub const fn raw(self) -> u8 {
        self as u8
    }

    /// The kernel macro name.
    pub const fn macro_name(self) -> &'static str {
        match self {
            ErrOrigin::None => "SO_EE_ORIGIN_NONE",
            ErrOrigin::Local => "SO_EE_ORIGIN_LOCAL",
            ErrOrigin::Icmp => "SO_EE_ORIGIN_ICMP",
            ErrOrigin::Icmp6 => "SO_EE_ORIGIN_ICMP6",
            ErrOrigin::Timestamping => "SO_EE_ORIGIN_TXSTATUS",
            ErrOrigin::Zerocopy => "SO_EE_ORIGIN_ZEROCOPY",
            ErrOrigin::Txtime => "SO_EE_ORIGIN_TXTIME",
        }
    }
}

/// All numbers of the merged ABI for one target, assembled from the tables
/// above. The proposal's numbers are not here: see [`crate::proposal`].
///
/// Non-exhaustive: fields are added as the crate describes more numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Numbers {
    /// Family-specific socket numbers.
    pub socket: SocketNumbers,
    /// Family-specific errno numbers.
    pub errno: ErrnoNumbers,
    /// `SOL_IP`.
    pub sol_ip: i32,
    /// `SOL_IPV6`.
    pub sol_ipv6: i32,
    /// `IP_RECVERR`.
    pub ip_recverr: i32,
    /// `IPV6_RECVERR`.
    pub ipv6_recverr: i32,
    /// `SOL_UDP`.
    pub sol_udp: i32,
    /// `UDP_SEGMENT`.
    pub udp_segment: i32,
    /// `UIO_MAXIOV`.
    pub uio_maxiov: u32,
    /// `AF_UNSPEC`.
    pub af_unspec: u16,
    /// `AF_INET`.
    pub af_inet: u16,
    /// `AF_INET6`.
    pub af_inet6: u16,
}

impl Target {
    /// The merged ABI's numbers for this target.
    ///
    /// ```
    /// use msgzc_abi::Arch;
    /// let n = Arch::Hppa.target().numbers();
    /// assert_eq!(n.socket.so_zerocopy, 0x4035);
    /// assert_eq!(n.errno.enobufs, 233);
    /// assert_eq!(n.ip_recverr, 11);
    /// assert_eq!((n.sol_udp, n.udp_segment, n.uio_maxiov), (17, 103, 1024));
    /// assert_eq!(n.af_inet6, 10);
    /// ```
    pub const fn numbers(self) -> Numbers {
        Numbers {
            socket: self.family.socket(),
            errno: self.family.errno(),
            sol_ip: SOL_IP,
            sol_ipv6: SOL_IPV6,
            ip_recverr: IP_RECVERR,
            ipv6_recverr: IPV6_RECVERR,
            sol_udp: SOL_UDP,
            udp_segment: UDP_SEGMENT,
            uio_maxiov: UIO_MAXIOV,
            af_unspec: AF_UNSPEC,
            af_inet: AF_INET,
            af_inet6: AF_INET6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // These pin the tables: a change to any number must change a test too.
    #[test]
    fn socket_table_is_pinned() {
        let t: [(i32, i32, i32, i32); 5] = Family::ALL.map(|f| {
            let s = f.socket();
            (
                s.sol_socket,
                s.so_zerocopy,
                s.so_timestamping_old,
                s.so_timestamping_new,
            )
        });
        assert_eq!(
            t,
            [
                (1, 60, 37, 65),
                (0xffff, 60, 37, 65),
                (0xffff, 60, 37, 65),
                (0xffff, 0x4035, 0x4020, 0x403a),
                (0xffff, 0x3e, 0x23, 0x43),
            ]
        );
        let types = Family::ALL.map(|f| {
            let s = f.socket();
            (s.so_type, s.so_error, s.sock_stream, s.sock_dgram)
        });
        let buffers = Family::ALL.map(|f| (f.socket().so_sndbuf, f.socket().so_rcvbuf));
        assert_eq!(
            buffers,
            [
                (7, 8),
                (0x1001, 0x1002),
                (0x1001, 0x1002),
                (0x1001, 0x1002),
                (0x1001, 0x1002)
            ]
        );
        assert_eq!(
            types,
            [
                (3, 4, 1, 2),
                (0x1008, 0x1007, 1, 2),
                (0x1008, 0x1007, 2, 1),
                (0x1008, 0x1007, 1, 2),
                (0x1008, 0x1007, 1, 2)
            ]
        );
    }

    #[test]
    fn errno_table_is_pinned() {
        let t = Family::ALL.map(|f| {
            let e = f.errno();
            (e.enobufs, e.einval, e.eagain, e.enoprotoopt)
        });
        assert_eq!(
            t,
            [
                (105, 22, 11, 92),
                (55, 22, 35, 42),
                (132, 22, 11, 99),
                (233, 22, 11, 220),
                (55, 22, 11, 42),
            ]
        );
    }

    #[test]
    fn common_numbers_are_pinned() {
        assert_eq!(
            (SOL_IP, SOL_IPV6, IP_RECVERR, IPV6_RECVERR),
            (0, 41, 11, 25)
        );
        assert_eq!((SOL_UDP, UDP_SEGMENT, UIO_MAXIOV), (17, 103, 1024));
        assert_eq!(SO_EE_CODE_ZEROCOPY_COPIED, 1);
        assert_eq!((AF_UNSPEC, AF_INET, AF_INET6), (0, 2, 10));
        assert_eq!(MsgFlags::ZEROCOPY.bits(), 0x0400_0000);
        assert_eq!(MsgFlags::ERRQUEUE.bits(), 0x2000);
        assert_eq!(MsgFlags::CTRUNC.bits(), 8);
        assert_eq!(MsgFlags::DONTWAIT.bits(), 0x40);
        assert_eq!(TimestampingFlags::TX_RECORD_MASK.bits(), 0x303);
    }

    #[test]
    fn origins_round_trip() {
        for (i, o) in ErrOrigin::ALL.iter().enumerate() {
            assert_eq!(o.raw() as usize, i);
            assert_eq!(ErrOrigin::from_raw(o.raw()), Some(*o));
        }
        assert_eq!(ErrOrigin::from_raw(7), None);
        assert_eq!(ErrOrigin::Zerocopy.raw(), 5);
    }
}
