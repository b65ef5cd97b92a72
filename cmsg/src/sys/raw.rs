//! The system calls, each a thin safe wrapper: the only `unsafe` code of
//! the crate. The socket-layer numbers this crate is about (`SOL_SOCKET`,
//! `SO_ZEROCOPY`, `MSG_*`, errno values) come from `msgzc-abi`, never from
//! `libc`; `libc` provides the calls, the C structures and the generic
//! constants of `poll`, `epoll`, `fcntl` and `ioctl`, defined per target.

use super::SysError;
use crate::ControlBuf;
use msgzc_abi::MsgFlags;
use std::os::fd::{AsRawFd, BorrowedFd};

pub(crate) fn check(call: &'static str, ret: libc::c_int) -> Result<libc::c_int, SysError> {
    if ret < 0 {
        Err(SysError::last(call))
    } else {
        Ok(ret)
    }
}

pub(crate) fn set_int_opt(
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    value: libc::c_int,
) -> Result<(), SysError> {
    let len = core::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let ptr = (&value as *const libc::c_int).cast();
    // SAFETY: `fd` is a live descriptor for the borrow; the option value
    // points to a c_int that outlives the call, and its size is passed.
    let ret = unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, ptr, len) };
    check("setsockopt", ret).map(drop)
}

pub(crate) fn get_int_opt(
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
) -> Result<libc::c_int, SysError> {
    let mut value: libc::c_int = 0;
    let mut len = core::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let ptr = (&mut value as *mut libc::c_int).cast();
    // SAFETY: `value` and `len` are valid for writes for the call and `len`
    // holds the size of `value`.
    let ret = unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, ptr, &mut len) };
    check("getsockopt", ret).map(|_| value)
}

/// Bytes queued in the socket's send path and not yet freed by the kernel
/// (`SIOCOUTQ`: unsent bytes for TCP, and for UDP the memory of packets
/// still referenced anywhere below the socket).
pub(crate) fn outq(fd: BorrowedFd<'_>) -> Result<usize, SysError> {
    let mut n: libc::c_int = 0;
    // The request's C type is unsigned long in glibc but int in musl.
    #[allow(clippy::unnecessary_cast)]
    let req = libc::TIOCOUTQ as libc::Ioctl;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) writes one int through the pointer,
    // which is valid for the call.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), req, &mut n as *mut libc::c_int) };
    check("ioctl(SIOCOUTQ)", ret).map(|_| n.max(0) as usize)
}

/// `poll` on one descriptor: the returned events (0 on timeout).
pub(crate) fn poll(fd: BorrowedFd<'_>, events: i16, timeout_ms: i32) -> Result<i16, SysError> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, writable for the call.
    let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    check("poll", ret).map(|_| pfd.revents)
}

/// One `sendmsg` with an optional control buffer of which `controllen`
/// bytes are sent. Returns its result and the `(msg_controllen,
/// msg_flags)` the kernel left in the header, also when the call failed: a
/// kernel with `SCM_ZC_NOTIFICATION` copies the placeholder back even then
/// (a kernel that wrote nothing leaves both as passed: `controllen` and no
/// flags).
pub(crate) fn sendmsg(
    fd: BorrowedFd<'_>,
    data: &[u8],
    control: Option<(&mut [u8], usize)>,
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
    if let Some((buf, controllen)) = control {
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = controllen.min(buf.len()) as _;
    }
    let ret = sendmsg_call(fd, &mut msg, flags);
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

/// The `sendmsg` system call on a header built by [`sendmsg`].
#[cfg(not(all(target_env = "musl", target_pointer_width = "64")))]
fn sendmsg_call(fd: BorrowedFd<'_>, msg: &mut libc::msghdr, flags: MsgFlags) -> isize {
    // SAFETY: `msg` points to one iovec over data that is read-only for
    // the kernel on send and, if present, to a control buffer of at least
    // `msg_controllen` bytes that is writable for the call (a kernel with
    // SCM_ZC_NOTIFICATION writes back into it, and into `msg`). All
    // pointers outlive the call.
    unsafe { libc::sendmsg(fd.as_raw_fd(), msg, flags.bits() as libc::c_int) }
}

/// 64-bit musl's `sendmsg` sends a copy of the header and of the control
/// buffer (to clear their padding), so whatever the kernel writes back
/// would land in musl's copies and be lost, with the completions in them.
/// Our header is zeroed and our messages use the kernel's own layout,
/// which is all that copy is for: make the system call directly.
#[cfg(all(target_env = "musl", target_pointer_width = "64"))]
fn sendmsg_call(fd: BorrowedFd<'_>, msg: &mut libc::msghdr, flags: MsgFlags) -> isize {
    let msg: *mut libc::msghdr = msg;
    // SAFETY: as for glibc's `sendmsg` above; the kernel reads the same
    // header.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sendmsg,
            fd.as_raw_fd(),
            msg,
            flags.bits() as libc::c_int,
        )
    };
    ret as isize
}

/// A destination address in the kernel's `sockaddr_in`/`sockaddr_in6`
/// layout (native byte order), built without `unsafe` from the `abi`
/// crate's layouts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawAddr {
    bytes: [u8; 28],
    len: usize,
}

impl RawAddr {
    pub(crate) fn new(addr: &std::net::SocketAddr) -> RawAddr {
        use msgzc_abi::{IntoBytes, NativeEndian, SockaddrIn, SockaddrIn6};
        let n = super::NATIVE.numbers();
        let mut bytes = [0u8; 28];
        let len = match addr {
            std::net::SocketAddr::V4(a) => {
                let s = SockaddrIn::<NativeEndian> {
                    sin_family: n.af_inet.into(),
                    sin_port: a.port().into(),
                    sin_addr: a.ip().octets(),
                    sin_zero: [0; 8],
                };
                bytes[..16].copy_from_slice(s.as_bytes());
                16
            }
            std::net::SocketAddr::V6(a) => {
                let s = SockaddrIn6::<NativeEndian> {
                    sin6_family: n.af_inet6.into(),
                    sin6_port: a.port().into(),
                    sin6_flowinfo: a.flowinfo().into(),
                    sin6_addr: a.ip().octets(),
                    sin6_scope_id: a.scope_id().into(),
                };
                bytes.copy_from_slice(s.as_bytes());
                28
            }
        };
        RawAddr { bytes, len }
    }
}

/// One message of a [`sendmmsg`]: its payload, destination and control
/// buffer (and the bytes of it to send).
pub(crate) struct MmsgEntry<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) addr: Option<&'a RawAddr>,
    pub(crate) control: Option<(&'a mut [u8], usize)>,
}

/// What the kernel left in one `mmsghdr` after a [`sendmmsg`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MmsgOut {
    /// `msg_len`: bytes sent (meaningful for the messages sent).
    pub(crate) len: usize,
    /// `msg_controllen`.
    pub(crate) controllen: usize,
    /// `msg_hdr.msg_flags`.
    pub(crate) flags: MsgFlags,
}

/// One `sendmmsg` of at most `UIO_MAXIOV` messages (more are not
/// passed: the kernel would drop them silently). Returns the number sent
/// (an error only when none was) and fills `out` with what the kernel left
/// in every header, the unsent ones included: a kernel with
/// `SCM_ZC_NOTIFICATION` answers the placeholder of the message that
/// failed too.
pub(crate) fn sendmmsg(
    fd: BorrowedFd<'_>,
    entries: &mut [MmsgEntry<'_>],
    out: &mut std::vec::Vec<MmsgOut>,
    flags: MsgFlags,
) -> Result<usize, SysError> {
    let max = super::NATIVE.numbers().uio_maxiov as usize;
    let n = entries.len().min(max);
    let entries = &mut entries[..n];
    let mut iovs: std::vec::Vec<libc::iovec> = entries
        .iter()
        .map(|e| libc::iovec {
            iov_base: e.data.as_ptr() as *mut libc::c_void,
            iov_len: e.data.len(),
        })
        .collect();
    let mut hdrs: std::vec::Vec<libc::mmsghdr> = std::vec::Vec::with_capacity(entries.len());
    for (e, iov) in entries.iter_mut().zip(iovs.iter_mut()) {
        // SAFETY: mmsghdr is plain old data; all-zero is a valid empty header.
        let mut h: libc::mmsghdr = unsafe { core::mem::zeroed() };
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        if let Some(a) = e.addr {
            h.msg_hdr.msg_name = a.bytes.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = a.len as libc::socklen_t;
        }
        if let Some((buf, controllen)) = e.control.as_mut() {
            h.msg_hdr.msg_control = buf.as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = (*controllen).min(buf.len()) as _;
        }
        hdrs.push(h);
    }
    let ret = sendmmsg_call(fd, &mut hdrs, flags);
    out.clear();
    // msg_controllen is size_t in glibc but socklen_t in musl.
    #[allow(clippy::unnecessary_cast)]
    out.extend(hdrs.iter().map(|h| MmsgOut {
        len: h.msg_len as usize,
        controllen: h.msg_hdr.msg_controllen as usize,
        flags: MsgFlags::from_bits_retain(h.msg_hdr.msg_flags as u32),
    }));
    check("sendmmsg", ret).map(|n| n as usize)
}

/// The `sendmmsg` system call on headers built by [`sendmmsg`].
#[cfg(not(all(target_env = "musl", target_pointer_width = "64")))]
fn sendmmsg_call(fd: BorrowedFd<'_>, hdrs: &mut [libc::mmsghdr], flags: MsgFlags) -> libc::c_int {
    let (ptr, n) = (hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint);
    // SAFETY: `hdrs` holds `n` headers, each pointing to one iovec over
    // data that is read-only for the kernel, to an address of
    // `msg_namelen` bytes or none, and to a control buffer of at least
    // `msg_controllen` bytes that is writable (a kernel with
    // SCM_ZC_NOTIFICATION writes back into it) or none; the kernel writes
    // `msg_len` of each header. Everything outlives the call.
    unsafe { libc::sendmmsg(fd.as_raw_fd(), ptr, n, flags.bits() as _) }
}

/// 64-bit musl's `sendmmsg` loops over its own `sendmsg`, which sends a
/// copy of each header and control buffer (see `sendmsg_call`): one
/// system call per message, and whatever the kernel writes back lost.
/// Make the system call directly.
#[cfg(all(target_env = "musl", target_pointer_width = "64"))]
fn sendmmsg_call(fd: BorrowedFd<'_>, hdrs: &mut [libc::mmsghdr], flags: MsgFlags) -> libc::c_int {
    let (ptr, n) = (hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint);
    // SAFETY: as for glibc's `sendmmsg` above; the kernel reads the same
    // headers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sendmmsg,
            fd.as_raw_fd(),
            ptr,
            n,
            flags.bits() as libc::c_uint,
        )
    };
    ret as libc::c_int
}

/// Reads one message from the error queue without blocking into `control`
/// (no payload), returning the `msg_controllen` and `msg_flags` the kernel
/// set.
pub(crate) fn recv_errqueue(
    fd: BorrowedFd<'_>,
    control: &mut [u8],
) -> Result<(usize, MsgFlags), SysError> {
    // A one-byte data iovec, as in `recv_errqueue_batch`: qemu-user
    // answers a `recvmsg` without iovecs with 0 and no control data or
    // flags, without asking the kernel.
    let mut payload = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    let flags = (MsgFlags::ERRQUEUE | MsgFlags::DONTWAIT).bits() as libc::c_int;
    // SAFETY: `msg` points to `iov` (one writable byte, `payload`) and to
    // `control`, writable for `control.len()` bytes, all outliving the call.
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

/// Error-queue messages fetched per `recvmmsg`.
pub const DRAIN_BATCH: usize = 16;
/// Control bytes per error-queue message: room for `IP_RECVERR` with an
/// IPv6 offender and a timestamp report.
pub(crate) const ERRQUEUE_CONTROL: usize = 256;

/// Control buffers for one `recvmmsg` on the error queue.
pub(crate) type ErrqueueBatch = [ControlBuf<ERRQUEUE_CONTROL>; DRAIN_BATCH];

/// One `recvmmsg` of up to [`DRAIN_BATCH`] error-queue messages without
/// blocking, into `controls`. Returns each message's `(msg_controllen,
/// msg_flags)`; an empty queue is `EAGAIN`.
///
/// Each message gets a one-byte data iovec (the payload is not needed and
/// is truncated): qemu-user 7.2 answers a `recvmsg` without iovecs with
/// success and no data, without asking the kernel, so a batch of empty
/// messages would come back forever.
pub(crate) fn recv_errqueue_batch(
    fd: BorrowedFd<'_>,
    controls: &mut ErrqueueBatch,
    out: &mut [(usize, MsgFlags); DRAIN_BATCH],
) -> Result<usize, SysError> {
    let mut payload = [[0u8; 1]; DRAIN_BATCH];
    let mut iovs: [libc::iovec; DRAIN_BATCH] = core::array::from_fn(|_| libc::iovec {
        iov_base: core::ptr::null_mut(),
        iov_len: 0,
    });
    // SAFETY: mmsghdr is plain old data; all-zero is valid.
    let mut hdrs: [libc::mmsghdr; DRAIN_BATCH] = unsafe { core::mem::zeroed() };
    for (((h, c), iov), p) in hdrs
        .iter_mut()
        .zip(controls.iter_mut())
        .zip(iovs.iter_mut())
        .zip(payload.iter_mut())
    {
        *iov = libc::iovec {
            iov_base: p.as_mut_ptr().cast(),
            iov_len: 1,
        };
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_control = c.as_mut_bytes().as_mut_ptr().cast();
        h.msg_hdr.msg_controllen = ERRQUEUE_CONTROL as _;
    }
    let flags = (MsgFlags::ERRQUEUE | MsgFlags::DONTWAIT).bits() as libc::c_int;
    let (ptr, n) = (hdrs.as_mut_ptr(), DRAIN_BATCH as _);
    // SAFETY: `hdrs` holds DRAIN_BATCH headers, each pointing to its own
    // one-byte data buffer and its own writable control buffer of
    // ERRQUEUE_CONTROL bytes, all of which outlive the call; no timeout
    // pointer.
    let ret = unsafe { libc::recvmmsg(fd.as_raw_fd(), ptr, n, flags as _, core::ptr::null_mut()) };
    let got = check("recvmmsg", ret)? as usize;
    for (o, h) in out.iter_mut().zip(hdrs.iter()).take(got) {
        // msg_controllen is size_t in glibc but socklen_t in musl.
        #[allow(clippy::unnecessary_cast)]
        let len = h.msg_hdr.msg_controllen as usize;
        *o = (len, MsgFlags::from_bits_retain(h.msg_hdr.msg_flags as u32));
    }
    Ok(got)
}

/// Brings `lo` up (see [`super::loopback_up`]).
pub(crate) fn loopback_up() -> Result<(), SysError> {
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
    // ioctl reads and writes only `req`.
    let got = unsafe { libc::ioctl(fd, get, &mut req) };
    let r = if got == 0 {
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
        unsafe { libc::ioctl(fd, set, &req) }
    } else {
        got
    };
    let r = check("ioctl(SIOCSIFFLAGS)", r);
    // SAFETY: `fd` is ours and not used after this.
    unsafe { libc::close(fd) };
    r.map(drop)
}

/// A private epoll instance watching one socket, edge-triggered, for an
/// event loop to wait on in its place (see `super::tokio`): its readiness
/// says exactly what the socket reported, without the loop's own
/// interpretation of `EPOLLERR`.
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub(crate) struct Epoll(std::os::fd::OwnedFd);

#[cfg(feature = "tokio")]
impl Epoll {
    /// An epoll instance watching `fd` for `EPOLLOUT` (and, as always,
    /// `EPOLLERR` and `EPOLLHUP`), edge-triggered.
    pub(crate) fn watching(fd: BorrowedFd<'_>) -> Result<Epoll, SysError> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain epoll_create1(2) call with a valid flag.
        let ep = check("epoll_create1", unsafe {
            libc::epoll_create1(libc::EPOLL_CLOEXEC)
        })?;
        // SAFETY: `ep` was just returned open and nothing else owns it.
        let ep = Epoll(unsafe { std::os::fd::OwnedFd::from_raw_fd(ep) });
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLOUT | libc::EPOLLET) as u32,
            u64: 0,
        };
        let (epfd, op) = (ep.0.as_raw_fd(), libc::EPOLL_CTL_ADD);
        // SAFETY: both descriptors are open for the call; `ev` is a valid
        // event read by the kernel during the call only.
        let ret = unsafe { libc::epoll_ctl(epfd, op, fd.as_raw_fd(), &mut ev) };
        check("epoll_ctl", ret).map(|_| ep)
    }

    /// The socket's events reported since the last call (0: none), without
    /// blocking.
    pub(crate) fn take_events(&self) -> Result<u32, SysError> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        loop {
            // SAFETY: room for one event, writable for the call; no wait.
            let ret = unsafe { libc::epoll_wait(self.0.as_raw_fd(), &mut ev, 1, 0) };
            match check("epoll_wait", ret) {
                Ok(0) => return Ok(0),
                Ok(_) => return Ok(ev.events),
                Err(e) if e.interrupted() => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(feature = "tokio")]
impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// Sets `O_NONBLOCK` on `fd`'s file description.
#[cfg(feature = "tokio")]
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<(), SysError> {
    // SAFETY: F_GETFL reads the descriptor's flags; no pointers.
    let flags = check("fcntl", unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_GETFL)
    })?;
    if flags & libc::O_NONBLOCK != 0 {
        return Ok(());
    }
    // SAFETY: F_SETFL with an int argument; no pointers.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    check("fcntl", ret).map(drop)
}
