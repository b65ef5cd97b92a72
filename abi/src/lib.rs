//! Numbers and byte layouts of the Linux `MSG_ZEROCOPY` completion ABI, for
//! every architecture family, usable from any host.
//!
//! `MSG_ZEROCOPY` sends report, on the socket error queue, which sends the
//! kernel has released: a `struct sock_extended_err` with origin
//! `SO_EE_ORIGIN_ZEROCOPY` carrying an inclusive `u32` range of send ids.
//! Reading those messages right means knowing, per target:
//!
//! - the socket numbers (`SOL_SOCKET`, `SO_ZEROCOPY`, ...), which differ
//!   between the generic, alpha, mips, parisc and sparc families
//!   ([`Family::socket`]), and the errno values ([`Family::errno`]);
//! - the control-message header layout, which differs between 32-bit and
//!   64-bit processes ([`CmsgLayout`]), and the byte order ([`Endian`]).
//!
//! Each number is written once, in a table, with its kernel header as the
//! source; [`Target`] ties a family, word size and byte order together and
//! [`Arch`] names the sixteen Linux targets this project tests.
//!
//! The unmerged `SCM_ZC_NOTIFICATION` proposal lives apart, under
//! [`proposal::v8`], with the merged options that later took its numbers.
//!
//! ```
//! use msgzc_abi::{proposal::v8, Arch, CmsgLayout};
//!
//! let t = Arch::Sparc64.target();
//! assert_eq!(t.numbers().socket.so_zerocopy, 0x3e);
//! assert_eq!(t.cmsg(), CmsgLayout::Bits64);
//! assert_eq!(v8::scm_zc_notification(t.family), 0x57);
//! ```
//!
//! The crate is `no_std`, allocates nothing and contains no `unsafe` code;
//! layouts are [`zerocopy`] types generic over byte order, so a big-endian
//! mips buffer decodes the same on an x86_64 host.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cmsghdr;
mod consts;
mod errqueue;
pub mod proposal;
mod sockaddr;
mod target;

pub use cmsghdr::{CmsgHdr32, CmsgHdr64, CmsgLayout};
pub use consts::{
    ErrOrigin, ErrnoNumbers, MsgFlags, Numbers, SocketNumbers, TimestampingFlags, AF_INET,
    AF_INET6, AF_UNSPEC, IPV6_RECVERR, IP_RECVERR, SOL_IP, SOL_IPV6, SOL_UDP,
    SO_EE_CODE_ZEROCOPY_COPIED, UDP_SEGMENT, UIO_MAXIOV,
};
pub use errqueue::{SockExtendedErr, Timespec32, Timespec64};
pub use sockaddr::{SockaddrIn, SockaddrIn6};
pub use target::{Arch, Endian, Family, Target, WordSize};
/// Byte-order markers and the `zerocopy` traits the layouts implement,
/// re-exported so users need not depend on a matching `zerocopy` version.
pub use zerocopy::{
    BigEndian, ByteOrder, FromBytes, Immutable, IntoBytes, KnownLayout, LittleEndian, NativeEndian,
};
