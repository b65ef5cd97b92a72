//! The Linux socket layer: `SO_ZEROCOPY`, `MSG_ZEROCOPY` sends registered in
//! a [`CompletionTracker`], batched error-queue draining, waiting, and
//! `SCM_ZC_NOTIFICATION` with a per-socket probe.
//!
//! This is the only module with `unsafe` code: each call into `libc` has a
//! `SAFETY:` line. Arch-dependent numbers (`SOL_SOCKET`, `SO_ZEROCOPY`,
//! errno values) come from `msgzc-abi`, never from `libc`.
//!
//! Kernel behaviour worth knowing (Documentation/networking/msg_zerocopy.rst):
//! the kernel counts only `MSG_ZEROCOPY` sends that succeed with a nonzero
//! length; completions are coalesced ranges that may arrive out of order;
//! on loopback and veth every completion is a deferred copy (`copied`).

use crate::decode::{decode_errqueue, ErrqueueItem, ZcOutcome, ZcRange};
use crate::error::ZcError;
use crate::tracker::{CompletionError, CompletionTracker};
use crate::walk::Walker;
use crate::{ControlBuf, ControlBuilder};
use core::fmt;
use msgzc_abi::{MsgFlags, Target};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

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
/// let e = SysError { call: "sendmsg", errno: libc::ENOBUFS };
/// assert!(e.to_string().starts_with("sendmsg: "));
/// assert!(e.is_retryable());
/// let io: std::io::Error = e.into(); // keeps the errno
/// assert_eq!(msgzc_cmsg::sys::errno_of(&io), Some(libc::ENOBUFS));
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
        write!(
            f,
            "{}: {}",
            self.call,
            io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for SysError {}

impl SysError {
    fn last(call: &'static str) -> SysError {
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        SysError { call, errno }
    }

    /// Whether retrying later can succeed: `ENOBUFS` (optmem or locked-page
    /// limit: drain completions first), `EAGAIN`, `EINTR`.
    ///
    /// ```
    /// # use msgzc_cmsg::sys::SysError;
    /// assert!(SysError { call: "sendmsg", errno: libc::EAGAIN }.is_retryable());
    /// assert!(!SysError { call: "sendmsg", errno: libc::EPIPE }.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        let e = NATIVE.family.errno();
        self.errno == e.enobufs || self.errno == e.eagain || self.errno == libc::EINTR
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

/// A malformed or refused error-queue message as an `io::Error`.
fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn check(call: &'static str, ret: libc::c_int) -> Result<libc::c_int, SysError> {
    if ret < 0 {
        Err(SysError::last(call))
    } else {
        Ok(ret)
    }
}

fn set_int_opt(
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    value: libc::c_int,
) -> Result<(), SysError> {
    // SAFETY: `fd` is a live descriptor for the borrow; the option value
    // points to a c_int that outlives the call, and its size is passed.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check("setsockopt", ret).map(drop)
}

fn get_int_opt(fd: BorrowedFd<'_>, level: i32, name: i32) -> Result<libc::c_int, SysError> {
    let mut value: libc::c_int = 0;
    let mut len = core::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes for the call and `len`
    // holds the size of `value`.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    check("getsockopt", ret).map(|_| value)
}

/// Sets `SO_ZEROCOPY` (required before any `MSG_ZEROCOPY` send; `ENOPROTOOPT`
/// on kernels before 4.14 and under stock qemu-user).
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
    set_int_opt(fd, s.sol_socket, s.so_zerocopy, 1)
}

/// Reads `SO_ZEROCOPY` (see [`enable_zerocopy`]).
pub fn zerocopy_enabled(fd: BorrowedFd<'_>) -> Result<bool, SysError> {
    let s = NATIVE.family.socket();
    get_int_opt(fd, s.sol_socket, s.so_zerocopy).map(|v| v != 0)
}

/// Sets `IP_RECVERR` (or `IPV6_RECVERR` when `ipv6`), so ICMP errors are
/// queued on the error queue as extended errors. Zerocopy completions need
/// no option.
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
///         Err(e) if e.is_retryable() => std::thread::sleep(std::time::Duration::from_millis(1)),
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
        set_int_opt(fd, n.sol_ipv6, n.ipv6_recverr, 1)
    } else {
        set_int_opt(fd, n.sol_ip, n.ip_recverr, 1)
    }
}

/// Reads one message from the error queue without blocking into `control`
/// (no payload), returning the `msg_controllen` and `msg_flags` the kernel
/// set: feed them to a [`Walker`]. For callers that want raw buffers (and
/// to see `MSG_CTRUNC` with a small `control`). See [`enable_recverr`] for
/// an example.
pub fn recv_errqueue(
    fd: BorrowedFd<'_>,
    control: &mut [u8],
) -> Result<(usize, MsgFlags), SysError> {
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    let flags = (MsgFlags::ERRQUEUE | MsgFlags::DONTWAIT).bits() as libc::c_int;
    // SAFETY: `msg` points to `control`, writable for `control.len()` bytes
    // for the call; no iovecs.
    let ret = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
    if ret < 0 {
        return Err(SysError::last("recvmsg"));
    }
    // msg_controllen is size_t in glibc but socklen_t in musl.
    #[allow(clippy::unnecessary_cast)]
    Ok((
        msg.msg_controllen as usize,
        MsgFlags::from_bits_retain(msg.msg_flags as u32),
    ))
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
    // SAFETY: plain socket(2) call; the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check("socket", fd)?;
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { core::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // The request's C type is unsigned long in glibc but int in musl.
    #[allow(clippy::unnecessary_cast)]
    let (get, set) = (
        libc::SIOCGIFFLAGS as libc::Ioctl,
        libc::SIOCSIFFLAGS as libc::Ioctl,
    );
    // SAFETY: `req` names a NUL-terminated interface and is writable; the
    // ioctls read and write only `req`.
    let r = unsafe {
        let got = libc::ioctl(fd, get, &mut req);
        if got == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, set, &req)
        } else {
            got
        }
    };
    let r = check("ioctl(SIOCSIFFLAGS)", r);
    // SAFETY: `fd` is ours and not used after this.
    unsafe { libc::close(fd) };
    r.map(drop)
}

/// One `sendmsg` with an optional control buffer. Returns its result and
/// the `(msg_controllen, msg_flags)` the kernel left in the header, also
/// when the call failed: a kernel with `SCM_ZC_NOTIFICATION` copies the
/// placeholder back even then (a kernel that wrote nothing leaves both as
/// passed: `controllen` and no flags).
fn sendmsg_raw(
    fd: BorrowedFd<'_>,
    data: &[u8],
    control: Option<&mut [u8]>,
    controllen: usize,
    flags: MsgFlags,
) -> (Result<usize, SysError>, usize, MsgFlags) {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(buf) = control {
        debug_assert!(controllen <= buf.len());
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = controllen as _;
    }
    // SAFETY: `msg` points to one iovec over `data` (read-only for the
    // kernel on send) and, if present, to a control buffer of at least
    // `controllen` bytes that is writable for the call (a kernel with
    // SCM_ZC_NOTIFICATION writes back into it, and into `msg`). All
    // pointers outlive the call.
    #[cfg(not(all(target_env = "musl", target_pointer_width = "64")))]
    let ret = unsafe {
        libc::sendmsg(
            fd.as_raw_fd(),
            core::ptr::addr_of_mut!(msg),
            flags.bits() as libc::c_int,
        )
    };
    // 64-bit musl's sendmsg sends a copy of the header and of the control
    // buffer (to clear their padding), so whatever the kernel writes back
    // would land in musl's copies and be lost, with the completions in
    // them. Our header is zeroed and our messages use the kernel's own
    // layout, which is all that copy is for: make the system call directly.
    #[cfg(all(target_env = "musl", target_pointer_width = "64"))]
    // SAFETY: as for `sendmsg` above; the kernel reads the same header.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sendmsg,
            fd.as_raw_fd(),
            core::ptr::addr_of_mut!(msg),
            flags.bits() as libc::c_int,
        )
    } as isize;
    let res = if ret < 0 {
        Err(SysError::last("sendmsg"))
    } else {
        Ok(ret as usize)
    };
    // msg_controllen is size_t in glibc but socklen_t in musl.
    #[allow(clippy::unnecessary_cast)]
    (
        res,
        msg.msg_controllen as usize,
        MsgFlags::from_bits_retain(msg.msg_flags as u32),
    )
}

/// A token handed back because its send completed.
///
/// ```
/// use msgzc_cmsg::sys::{Released, ZcSocket};
/// use std::time::Duration;
/// # use std::net::{TcpListener, TcpStream};
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let stream = TcpStream::connect(listener.local_addr()?)?;
/// # let (_peer, _) = listener.accept()?;
/// let mut zc = ZcSocket::<_, &str, 4>::new(stream)?;
/// zc.send(b"ping", "first buffer").unwrap();
/// let mut done = Vec::new();
/// while zc.tracker().outstanding() > 0 {
///     zc.wait(Some(Duration::from_secs(5)))?;
///     zc.drain(|r| done.push(r), |_| {})?;
/// }
/// // Loopback always completes by copying.
/// assert_eq!(done, [Released { id: 0, token: "first buffer", copied: true }]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct Released<T> {
    /// The send id.
    pub id: u32,
    /// The caller's token.
    pub token: T,
    /// Whether the kernel copied instead of sending the pages.
    pub copied: bool,
}

/// A send that did not take the token.
///
/// ```
/// use msgzc_cmsg::sys::ZcSocket;
/// # use std::net::{TcpListener, TcpStream};
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let stream = TcpStream::connect(listener.local_addr()?)?;
/// # let (_peer, _) = listener.accept()?;
/// let mut zc = ZcSocket::<_, Vec<u8>, 1>::new(stream)?;
/// zc.send(b"a", vec![1]).unwrap();
/// // One outstanding send fills this tracker: the token comes back.
/// let e = zc.send(b"b", vec![2]).unwrap_err();
/// assert!(e.error.is_retryable());
/// assert_eq!(e.token, [2]);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct SendError<T> {
    /// The failed call.
    pub error: SysError,
    /// The token, returned unused: the kernel holds no reference to the
    /// data.
    pub token: T,
    /// Tokens of earlier sends released anyway, from completions a kernel
    /// with `SCM_ZC_NOTIFICATION` returned in the placeholder of the failed
    /// [`send_notify`](ZcSocket::send_notify) (it copies them back even
    /// when the send fails). Always 0 for the other sends.
    pub inline: usize,
    /// The first of those inline completion ranges the tracker refused (see
    /// [`SentNotify::rejected`]).
    pub rejected: Option<CompletionError>,
}

impl<T> SendError<T> {
    /// A failure that released nothing.
    fn new(error: SysError, token: T) -> Self {
        SendError {
            error,
            token,
            inline: 0,
            rejected: None,
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<T: fmt::Debug> std::error::Error for SendError<T> {}

/// What a successful `sendmsg` did with the token.
///
/// ```
/// use msgzc_cmsg::sys::{Sent, ZcSocket};
/// # use std::net::{TcpListener, TcpStream};
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let stream = TcpStream::connect(listener.local_addr()?)?;
/// # let (_peer, _) = listener.accept()?;
/// let mut zc = ZcSocket::<_, u32, 8>::new(stream)?;
/// assert_eq!(zc.send(b"", 7).unwrap(), Sent::NotCounted(7)); // TCP: no id for 0 bytes
/// assert_eq!(zc.send(b"data", 8).unwrap(), Sent::Pending { bytes: 4, id: 0 });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, PartialEq, Eq)]
pub enum Sent<T> {
    /// The kernel counted the send under `id` and holds the data until the
    /// id completes; the tracker keeps the token.
    Pending {
        /// Bytes sent (a TCP send may be partial).
        bytes: usize,
        /// The kernel's id for this send.
        id: u32,
    },
    /// Nothing was sent (zero bytes on a stream socket), so the kernel
    /// counted nothing: the token comes back.
    NotCounted(T),
}

/// What [`ZcSocket::send_notify`] did (see there for an example).
#[derive(Debug, PartialEq, Eq)]
pub struct SentNotify<T> {
    /// The send itself.
    pub sent: Sent<T>,
    /// Tokens released from completions returned inline.
    pub inline: usize,
    /// The first inline completion range the tracker refused (ids never
    /// sent or completed twice); such ranges release nothing.
    pub rejected: Option<CompletionError>,
}

impl<T> SentNotify<T> {
    /// A send without inline completions.
    fn plain(sent: Sent<T>) -> Self {
        SentNotify {
            sent,
            inline: 0,
            rejected: None,
        }
    }
}

/// What a placeholder came back as, its completions aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// Written (possibly with no completion): the kernel implements it.
    Written,
    /// As built, or no placeholder at all.
    Unwritten,
    /// Something no v8 kernel writes.
    Corrupt(ZcError),
}

/// The mode after a placeholder send that left `answer` (`failed`: the
/// errno, if `sendmsg` failed), and whether to send the data again without
/// the placeholder. A failed send that left the placeholder unwritten
/// proves nothing, except the probe's `EINVAL`; anything the kernel wrote
/// counts whether or not the send failed.
fn next_mode(mode: NotifyMode, failed: Option<i32>, answer: Answer) -> (NotifyMode, bool) {
    match (answer, failed) {
        (Answer::Written, _) => (NotifyMode::Inline, false),
        (Answer::Corrupt(e), _) => (NotifyMode::ErrorQueue(Fallback::Corrupt(e)), false),
        (Answer::Unwritten, None) => (NotifyMode::ErrorQueue(Fallback::Unwritten), false),
        (Answer::Unwritten, Some(e))
            if e == NATIVE.family.errno().einval && mode == NotifyMode::Unprobed =>
        {
            (NotifyMode::ErrorQueue(Fallback::Rejected), true)
        }
        (Answer::Unwritten, Some(_)) => (mode, false),
    }
}

/// Why a socket reads completions from the error queue only (see
/// [`ZcSocket::send_notify`] for an example).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// `sendmsg` with the placeholder failed with `EINVAL` (the kernel does
    /// not know the type, or, on 6.12+, it means `SCM_DEVMEM_LINEAR`).
    Rejected,
    /// `sendmsg` succeeded but left the placeholder unwritten (e.g. parisc
    /// 6.13+ taking the number as `SCM_TS_OPT_ID`).
    Unwritten,
    /// The kernel wrote something no v8 kernel writes.
    Corrupt(ZcError),
}

/// How a [`ZcSocket`] receives completions (see
/// [`ZcSocket::send_notify`] for an example).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyMode {
    /// No `SCM_ZC_NOTIFICATION` send yet: support unknown.
    Unprobed,
    /// The kernel fills the placeholder: completions come back inside
    /// `sendmsg` (and whatever is left stays on the error queue).
    Inline,
    /// Error queue only, permanently for this socket, and why.
    ErrorQueue(Fallback),
}

/// System calls made, for measuring syscalls per send.
///
/// ```
/// use msgzc_cmsg::sys::{SyscallCounts, ZcSocket};
/// # use std::net::{TcpListener, TcpStream};
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let stream = TcpStream::connect(listener.local_addr()?)?;
/// # let (_peer, _) = listener.accept()?;
/// let mut zc = ZcSocket::<_, (), 8>::new(stream)?;
/// zc.send(b"x", ()).unwrap();
/// zc.drain(|_| {}, |_| {})?;
/// let n = zc.syscalls();
/// assert_eq!((n.sendmsg, n.poll), (1, 0));
/// assert!(n.recvmmsg >= 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallCounts {
    /// `sendmsg` calls.
    pub sendmsg: u64,
    /// `recvmmsg` calls on the error queue.
    pub recvmmsg: u64,
    /// `poll` calls.
    pub poll: u64,
}

/// What one [`ZcSocket::drain`] found (see there for an example).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Error-queue messages read.
    pub messages: usize,
    /// Zerocopy ranges applied.
    pub ranges: usize,
    /// Tokens released.
    pub released: usize,
    /// Non-zerocopy items passed to the caller.
    pub other: usize,
}

/// Error-queue messages fetched per `recvmmsg` by [`ZcSocket::drain`]:
/// with `N` sends completing separately, a drain costs
/// `N / DRAIN_BATCH + 1` system calls.
///
/// ```
/// assert_eq!(msgzc_cmsg::sys::DRAIN_BATCH, 16);
/// ```
pub const DRAIN_BATCH: usize = 16;
/// Control bytes per error-queue message: room for `IP_RECVERR` with an
/// IPv6 offender and a timestamp report.
const ERRQUEUE_CONTROL: usize = 256;

/// A socket sending with `MSG_ZEROCOPY`, its [`CompletionTracker`] and its
/// notification mode.
///
/// ```no_run
/// use msgzc_cmsg::sys::{Sent, ZcSocket};
/// use std::net::TcpStream;
///
/// let stream = TcpStream::connect("127.0.0.1:9000")?;
/// let mut zc = ZcSocket::<_, Vec<u8>, 64>::new(stream)?;
/// let buf = vec![7u8; 65536];
/// let data = buf.clone();
/// match zc.send(&data, buf) {
///     Ok(Sent::Pending { bytes, id }) => println!("{bytes} bytes pending as id {id}"),
///     Ok(Sent::NotCounted(_buf)) => {}
///     Err(e) => return Err(e.error.into()),
/// }
/// while zc.tracker().outstanding() > 0 {
///     zc.wait(None)?;
///     zc.drain(|r| drop(r.token), |_other| {})?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ZcSocket<F: AsFd, T, const N: usize> {
    fd: F,
    /// Whether a send of zero bytes still takes an id (datagram sockets).
    counts_empty: bool,
    tracker: CompletionTracker<T, N>,
    mode: NotifyMode,
    calls: SyscallCounts,
}

impl<F: AsFd, T, const N: usize> ZcSocket<F, T, N> {
    /// Enables `SO_ZEROCOPY` on `fd` and starts tracking from id 0 (the
    /// socket must not have sent with `MSG_ZEROCOPY` before).
    ///
    /// ```
    /// use msgzc_cmsg::sys::{NotifyMode, ZcSocket};
    /// use std::net::UdpSocket;
    ///
    /// let zc = ZcSocket::<_, Box<[u8]>, 256>::new(UdpSocket::bind("[::1]:0")?)?;
    /// assert_eq!(zc.mode(), NotifyMode::Unprobed);
    /// assert_eq!(zc.tracker().next_id(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(fd: F) -> io::Result<Self> {
        enable_zerocopy(fd.as_fd())?;
        let s = NATIVE.family.socket();
        let counts_empty = get_int_opt(fd.as_fd(), s.sol_socket, s.so_type)? != s.sock_stream;
        Ok(ZcSocket {
            fd,
            counts_empty,
            tracker: CompletionTracker::new(),
            mode: NotifyMode::Unprobed,
            calls: SyscallCounts::default(),
        })
    }

    /// The socket.
    ///
    /// ```
    /// # use msgzc_cmsg::sys::ZcSocket;
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let zc = ZcSocket::<_, (), 4>::new(stream)?;
    /// assert!(zc.get_ref().peer_addr().is_ok());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get_ref(&self) -> &F {
        &self.fd
    }

    /// The tracker (outstanding sends, statistics, advice).
    ///
    /// ```
    /// # use msgzc_cmsg::sys::ZcSocket;
    /// # use msgzc_cmsg::Advice;
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, (), 4>::new(stream)?;
    /// zc.send(b"x", ()).unwrap();
    /// assert_eq!(zc.tracker().outstanding(), 1);
    /// assert_eq!(zc.tracker().advice(), Advice::KeepZerocopy);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn tracker(&self) -> &CompletionTracker<T, N> {
        &self.tracker
    }

    /// How completions are received (see [`send_notify`](Self::send_notify)).
    pub fn mode(&self) -> NotifyMode {
        self.mode
    }

    /// System calls made so far (see [`SyscallCounts`]).
    pub fn syscalls(&self) -> SyscallCounts {
        self.calls
    }

    /// Gives the socket back. Tokens still outstanding are returned too:
    /// their data may still be referenced by the kernel until their
    /// completions arrive on the socket's error queue.
    ///
    /// ```
    /// # use msgzc_cmsg::sys::ZcSocket;
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, String, 4>::new(stream)?;
    /// zc.send(b"x", "kept".to_string()).unwrap();
    /// let (_stream, tracker) = zc.into_parts();
    /// assert_eq!(tracker.outstanding(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_parts(self) -> (F, CompletionTracker<T, N>) {
        (self.fd, self.tracker)
    }

    fn register(&mut self, bytes: usize, token: T) -> Result<Sent<T>, SendError<T>> {
        if bytes == 0 && !self.counts_empty {
            return Ok(Sent::NotCounted(token));
        }
        match self.tracker.register(token) {
            Ok(id) => Ok(Sent::Pending { bytes, id }),
            // Unreachable: the window was checked before sending.
            Err(full) => Err(SendError::new(
                SysError {
                    call: "register",
                    errno: libc::ENOBUFS,
                },
                full.0,
            )),
        }
    }

    fn full(&self, token: T) -> Result<Sent<T>, SendError<T>> {
        // Sending now would hand the kernel data we could not track.
        Err(SendError::new(
            SysError {
                call: "sendmsg",
                errno: NATIVE.family.errno().enobufs,
            },
            token,
        ))
    }

    /// Sends `data` with `MSG_ZEROCOPY` and keeps `token` (which should own
    /// or lease `data`'s memory) until the kernel completes the send.
    ///
    /// When the tracker is full the send is not attempted and fails with
    /// `ENOBUFS`, retryable after a [`drain`](Self::drain).
    ///
    /// ```
    /// # use msgzc_cmsg::sys::{Sent, ZcSocket};
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let pool = vec![vec![1u8; 4096]; 2];
    /// let mut zc = ZcSocket::<_, usize, 2>::new(stream)?;
    /// for (i, buf) in pool.iter().enumerate() {
    ///     let Ok(Sent::Pending { id, .. }) = zc.send(buf, i) else { panic!() };
    ///     assert_eq!(id as usize, i);
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send(&mut self, data: &[u8], token: T) -> Result<Sent<T>, SendError<T>> {
        self.send_flags(data, MsgFlags::empty(), token)
    }

    /// [`send`](Self::send) with extra `MSG_*` flags.
    ///
    /// ```
    /// # use msgzc_cmsg::sys::ZcSocket;
    /// # use msgzc_cmsg::MsgFlags;
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, (), 2>::new(stream)?;
    /// zc.send_flags(b"x", MsgFlags::DONTWAIT, ()).unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_flags(
        &mut self,
        data: &[u8],
        flags: MsgFlags,
        token: T,
    ) -> Result<Sent<T>, SendError<T>> {
        if self.tracker.is_full() {
            return self.full(token);
        }
        self.calls.sendmsg += 1;
        match sendmsg_raw(self.fd.as_fd(), data, None, 0, flags | MsgFlags::ZEROCOPY).0 {
            Ok(n) => self.register(n, token),
            Err(error) => Err(SendError::new(error, token)),
        }
    }

    /// Sends like [`send`](Self::send) with an `SCM_ZC_NOTIFICATION`
    /// placeholder for up to `capacity` completions, releasing those the
    /// kernel returns inline through `release`.
    ///
    /// The first such send probes the kernel: when it fails with `EINVAL`
    /// and the placeholder unwritten, the data is sent again without the
    /// placeholder, and on that `EINVAL` or an unwritten placeholder after a
    /// successful send the socket switches to the error queue for good
    /// ([`mode`](Self::mode) says why). Should the data alone fail with
    /// `EINVAL` too, that was not the placeholder's doing: the socket stays
    /// unprobed and the error is returned. Either way, call
    /// [`drain`](Self::drain) too: completions that arrive after the last
    /// send are only on the error queue.
    ///
    /// # When the send fails
    ///
    /// A kernel with `SCM_ZC_NOTIFICATION` fills the placeholder before it
    /// looks at the data, and copies it back even when the send then fails
    /// (returning the send's error), so that completions it took off the
    /// error queue are never lost. **`release` may therefore run even when
    /// this returns `Err`**: the completions are applied first, releasing
    /// tokens of earlier sends (counted in [`SendError::inline`]), while
    /// the token of the failed send itself comes back unreleased in
    /// [`SendError::token`]. A failed send that left the placeholder
    /// unwritten says nothing about support (it may have failed before the
    /// kernel read the control messages): the mode stays as it was, except
    /// for the probe's `EINVAL` above. A placeholder that comes back
    /// corrupt switches to the error queue whether or not the send failed.
    ///
    /// ```
    /// use msgzc_cmsg::sys::{Fallback, NotifyMode, Sent, ZcSocket};
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, u8, 8>::new(stream)?;
    /// let r = zc.send_notify(b"x", 1, 16, |_| {}).unwrap();
    /// assert_eq!(r.sent, Sent::Pending { bytes: 1, id: 0 });
    /// // Mainline kernels do not implement the proposal (6.12+ even reject
    /// // its number as SCM_DEVMEM_LINEAR): the data went out without it.
    /// if zc.mode() == NotifyMode::ErrorQueue(Fallback::Rejected) {
    ///     assert_eq!((r.inline, r.rejected), (0, None));
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// A failed send keeps its token and leaves an unprobed socket
    /// unprobed:
    ///
    /// ```
    /// use msgzc_cmsg::sys::{NotifyMode, ZcSocket};
    /// use std::net::UdpSocket;
    ///
    /// let rx = UdpSocket::bind("127.0.0.1:0")?;
    /// let tx = UdpSocket::bind("127.0.0.1:0")?;
    /// tx.connect(rx.local_addr()?)?;
    /// let mut zc = ZcSocket::<_, &str, 8>::new(tx)?;
    /// // Too long for one UDP datagram: refused before any control message
    /// // is read.
    /// let big = vec![0u8; 70_000];
    /// let mut released = Vec::new();
    /// let e = zc.send_notify(&big, "big", 16, |r| released.push(r.token)).unwrap_err();
    /// assert_eq!((e.error.errno, e.token, e.inline), (libc::EMSGSIZE, "big", 0));
    /// assert!(released.is_empty());
    /// assert_eq!(zc.mode(), NotifyMode::Unprobed);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_notify(
        &mut self,
        data: &[u8],
        token: T,
        capacity: usize,
        mut release: impl FnMut(Released<T>),
    ) -> Result<SentNotify<T>, SendError<T>> {
        if let NotifyMode::ErrorQueue(_) = self.mode {
            return self.send(data, token).map(SentNotify::plain);
        }
        if self.tracker.is_full() {
            return self.full(token).map(SentNotify::plain);
        }
        let mut buf = ControlBuf::<{ crate::zc_placeholder_space(16) }>::new();
        let mut b = match ControlBuilder::new(NATIVE, buf.as_mut_bytes()) {
            Ok(b) => b,
            Err(_) => unreachable!("ControlBuf is aligned for every layout"),
        };
        if b.zc_placeholder(capacity).is_err() {
            // Capacity outside 1..=ZC_NOTIFICATION_MAX: what the kernel
            // would answer, without a system call.
            let error = SysError {
                call: "sendmsg",
                errno: NATIVE.family.errno().einval,
            };
            return Err(SendError::new(error, token));
        }
        let mut control = b.finish();
        let len = control.len();
        self.calls.sendmsg += 1;
        let (res, controllen, flags) = sendmsg_raw(
            self.fd.as_fd(),
            data,
            Some(control.buffer_mut()),
            len,
            MsgFlags::ZEROCOPY,
        );
        let outcome = control.zc_outcome(controllen, flags);
        self.finish_notify(res, outcome, data, token, &mut release)
    }

    /// The rest of [`send_notify`](Self::send_notify), once `sendmsg`
    /// returned `res` and left the placeholder as `outcome` says.
    fn finish_notify(
        &mut self,
        res: Result<usize, SysError>,
        outcome: Result<ZcOutcome<'_>, ZcError>,
        data: &[u8],
        token: T,
        release: &mut impl FnMut(Released<T>),
    ) -> Result<SentNotify<T>, SendError<T>> {
        let answer = match outcome {
            Ok(ZcOutcome::Written(_)) => Answer::Written,
            Ok(ZcOutcome::Unwritten { .. }) | Ok(ZcOutcome::NotRequested) => Answer::Unwritten,
            Err(e) => Answer::Corrupt(e),
        };
        let before = self.mode;
        let (mode, resend) = next_mode(before, res.as_ref().err().map(|e| e.errno), answer);
        self.mode = mode;
        if resend {
            return match self.send(data, token) {
                // The same EINVAL without the placeholder: it was not the
                // placeholder's, so support is still unknown.
                Err(e) if e.error.errno == NATIVE.family.errno().einval => {
                    self.mode = before;
                    Err(e)
                }
                r => r.map(SentNotify::plain),
            };
        }
        // Completions first: they are for earlier sends (the kernel reads
        // the control messages before it queues any data), and they must
        // reach the tracker whatever became of this send.
        let (mut inline, mut rejected) = (0, None);
        if let Ok(ZcOutcome::Written(done)) = outcome {
            for range in done.iter() {
                match self.apply(range, release) {
                    Ok(k) => inline += k,
                    Err(e) => {
                        rejected.get_or_insert(e);
                    }
                }
            }
        }
        match res {
            Ok(n) => match self.register(n, token) {
                Ok(sent) => Ok(SentNotify {
                    sent,
                    inline,
                    rejected,
                }),
                Err(e) => Err(SendError {
                    inline,
                    rejected,
                    ..e
                }),
            },
            Err(error) => Err(SendError {
                error,
                token,
                inline,
                rejected,
            }),
        }
    }

    /// Applies a completion range the caller read itself (e.g. with
    /// [`recv_errqueue`] or through io_uring), releasing tokens as
    /// [`drain`](Self::drain) would.
    ///
    /// ```
    /// # use msgzc_cmsg::sys::ZcSocket;
    /// # use msgzc_cmsg::{CompletionError, ZcRange};
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, char, 4>::new(stream)?;
    /// zc.send(b"x", 'x').unwrap();
    /// let bogus = ZcRange { lo: 1, hi: 1, copied: false };
    /// assert!(matches!(
    ///     zc.apply(bogus, &mut |_| {}),
    ///     Err(CompletionError::NotOutstanding { id: 1, .. })
    /// ));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn apply(
        &mut self,
        range: ZcRange,
        release: &mut impl FnMut(Released<T>),
    ) -> Result<usize, CompletionError> {
        self.tracker.complete(range, |id, token, copied| {
            release(Released { id, token, copied })
        })
    }

    /// Waits until the error queue has something (`poll` reporting
    /// `POLLERR`) or `timeout` passes (`None`: forever). Returns whether it
    /// is readable.
    ///
    /// ```
    /// # use msgzc_cmsg::sys::ZcSocket;
    /// # use std::time::Duration;
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, (), 4>::new(stream)?;
    /// assert!(!zc.wait(Some(Duration::ZERO))?); // nothing sent, nothing queued
    /// zc.send(b"x", ()).unwrap();
    /// assert!(zc.wait(Some(Duration::from_secs(5)))?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        let ms = match timeout {
            None => -1,
            Some(d) => libc::c_int::try_from(d.as_millis()).unwrap_or(libc::c_int::MAX),
        };
        let mut pfd = libc::pollfd {
            fd: self.fd.as_fd().as_raw_fd(),
            events: 0,
            revents: 0,
        };
        self.calls.poll += 1;
        // SAFETY: one valid pollfd, writable for the call.
        let ret = unsafe { libc::poll(&mut pfd, 1, ms) };
        check("poll", ret)?;
        Ok(pfd.revents & libc::POLLERR != 0)
    }

    /// Reads the error queue without blocking, [`DRAIN_BATCH`] messages per
    /// `recvmmsg`, until it is empty. Each completed token goes to
    /// `release`; every other error-queue item (ICMP errors, timestamps) to
    /// `other`.
    ///
    /// A completion the tracker refuses (ids never sent, or completed twice)
    /// or a malformed message stops the drain with an `InvalidData` error
    /// carrying the [`CompletionError`], [`WalkError`](crate::WalkError) or
    /// [`DecodeError`](crate::DecodeError) (the first of its batch). The
    /// rest of that batch is still applied, since it is already off the
    /// queue: every valid completion is handed over exactly once.
    ///
    /// ```
    /// # use msgzc_cmsg::sys::{DrainReport, ZcSocket};
    /// # use std::time::Duration;
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, u32, 64>::new(stream)?;
    /// for i in 0..40 {
    ///     zc.send(b"chunk", i).unwrap();
    /// }
    /// let mut total = DrainReport::default();
    /// while zc.tracker().outstanding() > 0 {
    ///     zc.wait(Some(Duration::from_secs(5)))?;
    ///     let r = zc.drain(|_| {}, |item| panic!("unexpected {item:?}"))?;
    ///     total.released += r.released;
    ///     total.ranges += r.ranges;
    /// }
    /// // The kernel coalesces adjacent ids, so usually fewer ranges than sends.
    /// assert_eq!(total.released, 40);
    /// assert!(total.ranges <= 40);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn drain(
        &mut self,
        mut release: impl FnMut(Released<T>),
        mut other: impl FnMut(ErrqueueItem<'_>),
    ) -> io::Result<DrainReport> {
        let mut report = DrainReport::default();
        let mut controls = [(); DRAIN_BATCH].map(|_| ControlBuf::<ERRQUEUE_CONTROL>::new());
        loop {
            // SAFETY: mmsghdr is plain old data; all-zero is valid.
            let mut hdrs: [libc::mmsghdr; DRAIN_BATCH] = unsafe { core::mem::zeroed() };
            for (h, c) in hdrs.iter_mut().zip(controls.iter_mut()) {
                h.msg_hdr.msg_control = c.as_mut_bytes().as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = ERRQUEUE_CONTROL as _;
            }
            self.calls.recvmmsg += 1;
            let flags = (MsgFlags::ERRQUEUE | MsgFlags::DONTWAIT).bits() as libc::c_int;
            // SAFETY: `hdrs` holds DRAIN_BATCH headers, each pointing to its
            // own writable control buffer of ERRQUEUE_CONTROL bytes; no data
            // iovecs (error-queue payloads are not needed and are truncated).
            // The buffers outlive the call; no timeout pointer.
            let ret = unsafe {
                libc::recvmmsg(
                    self.fd.as_fd().as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    DRAIN_BATCH as _,
                    flags as _,
                    core::ptr::null_mut(),
                )
            };
            if ret < 0 {
                let e = SysError::last("recvmmsg");
                if e.errno == NATIVE.family.errno().eagain {
                    return Ok(report);
                }
                return Err(e.into());
            }
            let got = ret as usize;
            // The batch is already off the queue: finish it even after a bad
            // message, so no completion behind that one is lost.
            let mut first_bad: Option<io::Error> = None;
            let mut bad = |e: io::Error| {
                first_bad.get_or_insert(e);
            };
            for (h, c) in hdrs.iter().zip(controls.iter()).take(got) {
                report.messages += 1;
                let mflags = MsgFlags::from_bits_retain(h.msg_hdr.msg_flags as u32);
                // msg_controllen is size_t in glibc but socklen_t in musl.
                #[allow(clippy::unnecessary_cast)]
                let controllen = h.msg_hdr.msg_controllen as usize;
                for m in Walker::new(NATIVE, c.as_bytes(), controllen, mflags) {
                    let m = match m {
                        Ok(m) => m,
                        Err(e) => {
                            bad(invalid(e));
                            continue;
                        }
                    };
                    match decode_errqueue(NATIVE, &m) {
                        Ok(ErrqueueItem::Zerocopy(range)) => {
                            report.ranges += 1;
                            match self.apply(range, &mut release) {
                                Ok(n) => report.released += n,
                                Err(e) => bad(invalid(e)),
                            }
                        }
                        Ok(item) => {
                            report.other += 1;
                            other(item);
                        }
                        Err(e) => bad(invalid(e)),
                    }
                }
            }
            if let Some(e) = first_bad {
                return Err(e);
            }
            if got < DRAIN_BATCH {
                return Ok(report);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::kernel_writes;
    use std::net::UdpSocket;
    use std::vec::Vec;

    fn einval() -> i32 {
        NATIVE.family.errno().einval
    }

    #[test]
    fn only_what_the_kernel_wrote_decides_the_mode_after_a_failed_send() {
        use Answer::*;
        use NotifyMode::*;
        let corrupt = ZcError::Missing;
        let enobufs = NATIVE.family.errno().enobufs;
        for mode in [Unprobed, Inline] {
            // Written, even by a failed send: the kernel implements it.
            for failed in [None, Some(enobufs), Some(einval())] {
                assert_eq!(next_mode(mode, failed, Written), (Inline, false));
                assert_eq!(
                    next_mode(mode, failed, Corrupt(corrupt)),
                    (ErrorQueue(Fallback::Corrupt(corrupt)), false)
                );
            }
            // Unwritten by a successful send: not implemented.
            assert_eq!(
                next_mode(mode, None, Unwritten),
                (ErrorQueue(Fallback::Unwritten), false)
            );
            // Unwritten by a send that failed otherwise: nothing learnt.
            assert_eq!(next_mode(mode, Some(enobufs), Unwritten), (mode, false));
        }
        // The probe: EINVAL and unwritten on the first placeholder.
        assert_eq!(
            next_mode(Unprobed, Some(einval()), Unwritten),
            (ErrorQueue(Fallback::Rejected), true)
        );
        assert_eq!(
            next_mode(Inline, Some(einval()), Unwritten),
            (Inline, false)
        );
    }

    fn udp() -> (ZcSocket<UdpSocket, u32, 8>, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        (ZcSocket::new(tx).unwrap(), rx)
    }

    /// `send_notify` after its `sendmsg`, with the kernel's answer
    /// simulated: `written` ranges copied back (None: left unwritten).
    fn after_sendmsg(
        zc: &mut ZcSocket<UdpSocket, u32, 8>,
        res: Result<usize, SysError>,
        written: Option<&[(u32, u32, u8)]>,
        token: u32,
    ) -> (Result<SentNotify<u32>, SendError<u32>>, Vec<u32>) {
        let mut buf = ControlBuf::<512>::new();
        let mut b = ControlBuilder::new(NATIVE, buf.as_mut_bytes()).unwrap();
        b.zc_placeholder(16).unwrap();
        let mut c = b.finish();
        let controllen = match written {
            Some(ranges) => kernel_writes(&mut c, ranges),
            None => c.len(),
        };
        let outcome = c.zc_outcome(controllen, MsgFlags::empty());
        let mut released = Vec::new();
        let r = zc.finish_notify(res, outcome, b"data", token, &mut |r: Released<u32>| {
            released.push(r.token)
        });
        (r, released)
    }

    #[test]
    fn completions_copied_back_by_a_failed_send_are_released() {
        let (mut zc, _rx) = udp();
        for token in 0..3 {
            zc.send(b"earlier", token).unwrap();
        }
        let enobufs = SysError {
            call: "sendmsg",
            errno: NATIVE.family.errno().enobufs,
        };
        // Ids 0..=1 came back in the placeholder of a send that failed.
        let (r, released) = after_sendmsg(&mut zc, Err(enobufs), Some(&[(0, 1, 0)]), 7);
        let e = r.unwrap_err();
        assert_eq!(
            (e.error, e.token, e.inline, e.rejected),
            (enobufs, 7, 2, None)
        );
        assert_eq!(released, [0, 1]);
        assert_eq!(zc.mode(), NotifyMode::Inline);
        // The failed send took no id: the next one is still 3.
        assert_eq!((zc.tracker().outstanding(), zc.tracker().next_id()), (1, 3));
        // A bogus range (never sent) is reported, not released.
        let (r, released) = after_sendmsg(&mut zc, Err(enobufs), Some(&[(2, 2, 0), (5, 5, 0)]), 8);
        let e = r.unwrap_err();
        assert_eq!((e.token, e.inline), (8, 1));
        assert!(matches!(
            e.rejected,
            Some(CompletionError::NotOutstanding { id: 5, .. })
        ));
        assert_eq!(released, [2]);
    }

    #[test]
    fn an_unwritten_placeholder_after_a_failed_send_proves_nothing() {
        let (mut zc, _rx) = udp();
        let e = SysError {
            call: "sendmsg",
            errno: libc::EMSGSIZE,
        };
        let (r, released) = after_sendmsg(&mut zc, Err(e), None, 1);
        let err = r.unwrap_err();
        assert_eq!((err.error, err.token, err.inline), (e, 1, 0));
        assert!(released.is_empty());
        assert_eq!(zc.mode(), NotifyMode::Unprobed);
        // Written by a successful send: the send is registered too.
        let (r, released) = after_sendmsg(&mut zc, Ok(4), Some(&[]), 2);
        assert_eq!(r.unwrap().sent, Sent::Pending { bytes: 4, id: 0 });
        assert!(released.is_empty());
        assert_eq!(zc.mode(), NotifyMode::Inline);
    }

    #[test]
    fn the_probes_einval_resends_without_the_placeholder() {
        let (mut zc, rx) = udp();
        let e = SysError {
            call: "sendmsg",
            errno: einval(),
        };
        let (r, _) = after_sendmsg(&mut zc, Err(e), None, 1);
        assert_eq!(r.unwrap().sent, Sent::Pending { bytes: 4, id: 0 });
        assert_eq!(zc.mode(), NotifyMode::ErrorQueue(Fallback::Rejected));
        let mut got = [0u8; 8];
        assert_eq!(rx.recv(&mut got).unwrap(), 4);
        // EINVAL with the placeholder written: a supporting kernel's error
        // for the send itself, no resend.
        let (mut zc, _rx) = udp();
        let (r, _) = after_sendmsg(&mut zc, Err(e), Some(&[]), 1);
        assert_eq!(r.unwrap_err().token, 1);
        assert_eq!(zc.mode(), NotifyMode::Inline);
    }
}
