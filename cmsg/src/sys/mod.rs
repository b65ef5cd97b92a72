//! The Linux socket layer (Linux only): `SO_ZEROCOPY`,
//! `MSG_ZEROCOPY` sends whose buffers come back exactly once when the
//! kernel is done with them, batched error-queue draining, waiting, and
//! `SCM_ZC_NOTIFICATION` with a per-socket probe.
//!
//! - [`ZcSender`] is the way to send: it takes ownership of each buffer
//!   (`Vec<u8>`, `Box<[u8]>`, a pool slot: any `AsRef<[u8]>`) and gives it
//!   back only when every send id covering it has completed, across TCP
//!   partial sends, failed sends and closing.
//! - [`ZcSocket`] is the layer below, for callers that manage memory
//!   themselves: it sends borrowed bytes and keeps a token per send id.
//! - Both send UDP batches: [`ZcSocket::send_batch`] and
//!   [`ZcSender::send_batch`] put many datagrams in one `sendmmsg`, each
//!   with its own id, destination and `UDP_SEGMENT` size;
//!   [`ZcSocket::send_gso`] is one send cut into many datagrams under one
//!   id.
//! - The free functions are the individual socket options and calls.
//!
//! `unsafe` code lives only in the private `raw` module, one system call
//! per block with a `SAFETY:` line. Arch-dependent numbers (`SOL_SOCKET`,
//! `SO_ZEROCOPY`, errno values) come from `msgzc-abi`, never from `libc`.
//!
//! Kernel behaviour worth knowing (Documentation/networking/msg_zerocopy.rst
//! and the 6.1 and 6.18 sources):
//! - the kernel counts only `MSG_ZEROCOPY` sends that succeed with a
//!   nonzero length (on datagram sockets an empty payload counts too);
//! - completions are coalesced ranges that may arrive out of order;
//! - on loopback and veth every completion is a deferred copy (`copied`);
//! - a *failed* send normally gives its id back (`msg_zerocopy_put_abort`)
//!   — always so on TCP, where a partial send returns the bytes taken —
//!   but a datagram that fails after it was built keeps its id and is
//!   completed later: `UDP_SEGMENT` size checks (`EINVAL`), qdisc or
//!   netfilter drops reported through `IP_RECVERR` (`ENOBUFS`, `EPERM`),
//!   neighbour or fragmentation failures. The errno does not say which, so
//!   such a failure leaves the send *in doubt* (see
//!   [`SendErrorKind::InDoubt`]);
//! - `sendmmsg` counts each entry as its own send, stops at the first that
//!   fails and, when earlier ones went out, drops that entry's error: the
//!   entry is then in doubt whatever the error was ([`BatchStop::InDoubt`]);
//! - a send the kernel dropped after counting it completes as *not*
//!   copied, and a range coalesced onto an earlier one keeps the earlier
//!   one's copied bit: the bit describes the first send of a range only.

mod owned;
mod raw;
mod socket;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;

pub use owned::{Closed, OwnedBatch, OwnedDatagram, Progress, ZcSender};
pub use raw::DRAIN_BATCH;
pub use socket::{
    BatchSent, BatchStop, Datagram, DrainError, DrainReport, Fallback, Interest, NewError,
    NewErrorKind, NotifyMode, Readiness, Released, SendError, SendErrorKind, Sent, SentNotify,
    SyscallCounts, Unconfirmed, ZcSocket, DEFAULT_LINGER, DEFAULT_WINDOW,
};

use core::fmt;
use msgzc_abi::{MsgFlags, Target};
use std::io;
use std::os::fd::BorrowedFd;

/// The running target. Building the socket layer for an architecture that
/// is not one of the named Linux targets is a compile-time error rather
/// than a guess at its numbers.
///
/// ```
/// use msgzc_cmsg::sys::NATIVE;
/// use msgzc_abi::Arch;
///
/// assert_eq!(Some(NATIVE), Arch::native().map(Arch::target));
/// ```
pub const NATIVE: Target = match Target::native() {
    Some(t) => t,
    None => panic!("msgzc-cmsg's `std` feature needs one of the named Linux targets"),
};

/// A failed system call: which one, and its errno.
///
/// ```
/// use msgzc_cmsg::sys::SysError;
///
/// let e = SysError { call: "sendmsg", errno: libc::EPIPE };
/// assert!(e.to_string().starts_with("sendmsg: "));
/// let io: std::io::Error = e.into(); // keeps the errno
/// assert_eq!(msgzc_cmsg::sys::errno_of(&io), Some(libc::EPIPE));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysError {
    /// The call (`"sendmsg"`, `"recvmmsg"`, ...).
    pub call: &'static str,
    /// `errno`.
    pub errno: i32,
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let os = io::Error::from_raw_os_error(self.errno);
        write!(f, "{}: {os}", self.call)
    }
}

impl std::error::Error for SysError {}

impl SysError {
    fn last(call: &'static str) -> SysError {
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        SysError { call, errno }
    }

    /// Whether this is `EINTR` (retried by this module's calls).
    fn interrupted(&self) -> bool {
        self.errno == libc::EINTR
    }

    /// Whether this is `EAGAIN` (`EWOULDBLOCK`).
    fn would_block(&self) -> bool {
        self.errno == NATIVE.family.errno().eagain
    }
}

impl From<SysError> for io::Error {
    fn from(e: SysError) -> io::Error {
        let kind = io::Error::from_raw_os_error(e.errno).kind();
        io::Error::new(kind, e)
    }
}

/// The errno of an error from this module (or of a raw OS error).
///
/// ```
/// use msgzc_cmsg::sys::errno_of;
/// use std::io;
///
/// assert_eq!(errno_of(&io::Error::from_raw_os_error(libc::EINVAL)), Some(libc::EINVAL));
/// assert_eq!(errno_of(&io::Error::other("not a system call")), None);
/// ```
pub fn errno_of(e: &io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|x| x.downcast_ref::<SysError>())
            .map(|s| s.errno)
    })
}

/// Sets `SO_ZEROCOPY` (required before any `MSG_ZEROCOPY` send; `ENOPROTOOPT`
/// on kernels before 4.14 and under stock qemu-user, `EOPNOTSUPP` on
/// sockets other than TCP and UDP).
///
/// ```
/// use msgzc_cmsg::sys::{enable_zerocopy, zerocopy_enabled};
/// use std::os::fd::AsFd;
/// # use std::net::{TcpListener, TcpStream};
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let stream = TcpStream::connect(listener.local_addr()?)?;
/// # let (_peer, _) = listener.accept()?;
/// assert!(!zerocopy_enabled(stream.as_fd())?);
/// enable_zerocopy(stream.as_fd())?;
/// assert!(zerocopy_enabled(stream.as_fd())?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn enable_zerocopy(fd: BorrowedFd<'_>) -> Result<(), SysError> {
    let s = NATIVE.family.socket();
    raw::set_int_opt(fd, s.sol_socket, s.so_zerocopy, 1)
}

/// Reads `SO_ZEROCOPY` (see [`enable_zerocopy`]).
pub fn zerocopy_enabled(fd: BorrowedFd<'_>) -> Result<bool, SysError> {
    let s = NATIVE.family.socket();
    raw::get_int_opt(fd, s.sol_socket, s.so_zerocopy).map(|v| v != 0)
}

/// Sets `IP_RECVERR` (or `IPV6_RECVERR` when `ipv6`), so ICMP errors are
/// queued on the error queue as extended errors. Zerocopy completions need
/// no option. Note that with it a UDP send whose packet is dropped below
/// the socket fails (`ENOBUFS`) although it kept its send id.
///
/// ```
/// use msgzc_cmsg::sys::{enable_recverr, recv_errqueue};
/// use msgzc_cmsg::{decode_errqueue, ControlBuf, ErrqueueItem, Walker};
/// use msgzc_cmsg::sys::NATIVE;
/// use std::net::UdpSocket;
/// use std::os::fd::AsFd;
///
/// // A datagram to a port nobody listens on draws ICMP port unreachable.
/// let closed = UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
/// let sock = UdpSocket::bind("127.0.0.1:0")?;
/// enable_recverr(sock.as_fd(), false)?;
/// sock.send_to(b"hello", closed)?;
/// let mut control = ControlBuf::<128>::new();
/// let (len, flags) = loop {
///     match recv_errqueue(sock.as_fd(), control.as_mut_bytes()) {
///         Ok(got) => break got,
///         Err(e) if e.errno == libc::EAGAIN => std::thread::sleep(std::time::Duration::from_millis(1)),
///         Err(e) => return Err(e.into()),
///     }
/// };
/// let m = Walker::new(NATIVE, control.as_bytes(), len, flags).next().unwrap().unwrap();
/// let Ok(ErrqueueItem::Extended(e)) = decode_errqueue(NATIVE, &m) else { panic!() };
/// assert_eq!(e.errno as i32, libc::ECONNREFUSED);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn enable_recverr(fd: BorrowedFd<'_>, ipv6: bool) -> Result<(), SysError> {
    let n = NATIVE.numbers();
    if ipv6 {
        raw::set_int_opt(fd, n.sol_ipv6, n.ipv6_recverr, 1)
    } else {
        raw::set_int_opt(fd, n.sol_ip, n.ip_recverr, 1)
    }
}

/// Sets the `UDP_SEGMENT` socket option (`SOL_UDP`): every later send on
/// the socket is cut into datagrams of `size` payload bytes, one send id
/// each send (0 turns it off). The same, per send, as a control message:
/// [`ZcSocket::send_gso`], [`Datagram::segment`].
///
/// ```
/// use msgzc_cmsg::sys::{set_udp_segment, Sent, ZcSocket};
/// use std::net::UdpSocket;
/// use std::os::fd::AsFd;
///
/// let rx = UdpSocket::bind("127.0.0.1:0")?;
/// let tx = UdpSocket::bind("127.0.0.1:0")?;
/// tx.connect(rx.local_addr()?)?;
/// set_udp_segment(tx.as_fd(), 500)?;
/// let mut zc = ZcSocket::<_, ()>::new(tx)?;
/// assert_eq!(zc.send(&[1u8; 1200], ()).unwrap(), Sent::Pending { bytes: 1200, id: 0 });
/// let mut got = [0u8; 1200];
/// for want in [500, 500, 200] {
///     assert_eq!(rx.recv(&mut got)?, want);
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_udp_segment(fd: BorrowedFd<'_>, size: u16) -> Result<(), SysError> {
    let n = NATIVE.numbers();
    raw::set_int_opt(fd, n.sol_udp, n.udp_segment, size.into())
}

/// Reads one message from the error queue without blocking into `control`
/// (no payload), returning the `msg_controllen` and `msg_flags` the kernel
/// set: feed them to a [`Walker`](crate::Walker). For callers that want raw
/// buffers (and to see `MSG_CTRUNC` with a small `control`). See
/// [`enable_recverr`] for an example.
pub fn recv_errqueue(
    fd: BorrowedFd<'_>,
    control: &mut [u8],
) -> Result<(usize, MsgFlags), SysError> {
    raw::recv_errqueue(fd, control)
}

/// Brings the loopback interface `lo` up in the caller's network namespace
/// (a fresh namespace, or an init process on a bare kernel, starts with it
/// down; the kernel adds 127.0.0.1 and ::1 itself once it is up).
/// Needs `CAP_NET_ADMIN` unless `lo` is already up.
///
/// ```no_run
/// // As PID 1 of a test kernel, before any loopback traffic:
/// msgzc_cmsg::sys::loopback_up()?;
/// # Ok::<(), msgzc_cmsg::sys::SysError>(())
/// ```
pub fn loopback_up() -> Result<(), SysError> {
    raw::loopback_up()
}
