//! [`ZcSocket`]: `MSG_ZEROCOPY` sends of borrowed bytes, each counted send
//! keeping a caller token in a [`BoxedTracker`] until the kernel completes
//! it; the error queue, waiting, closing, and `SCM_ZC_NOTIFICATION`.

use super::raw::{self, ErrqueueBatch, DRAIN_BATCH};
use super::{SysError, NATIVE};
use crate::apply::{apply_errqueue, ApplyError};
use crate::decode::{ErrqueueItem, ZcOutcome, ZcRange};
use crate::error::{DecodeError, WalkError, ZcError};
use crate::tracker::{BoxedTracker, CompletionError};
use crate::{ControlBuf, ControlBuilder};
use core::fmt;
use core::mem::ManuallyDrop;
use msgzc_abi::MsgFlags;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::string::ToString;
use std::time::{Duration, Instant};
use std::vec::Vec;

mod batch;
pub use batch::{BatchSent, BatchStop, Datagram};

/// A token handed back because the kernel is done with its send.
///
/// ```
/// use msgzc_cmsg::sys::{Released, ZcSocket};
/// use std::time::Duration;
/// # use std::net::{TcpListener, TcpStream};
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let stream = TcpStream::connect(listener.local_addr()?)?;
/// # let (_peer, _) = listener.accept()?;
/// let mut zc = ZcSocket::<_, &str>::new(stream)?;
/// zc.send(b"ping", "first buffer").unwrap();
/// let mut done = Vec::new();
/// while zc.tracker().outstanding() > 0 {
///     zc.wait(Some(Duration::from_secs(5)))?;
///     zc.drain(|r| done.push(r), |_| {})?;
/// }
/// // Loopback always completes by copying.
/// assert_eq!(done, [Released { id: 0, token: "first buffer", copied: true, counted: true }]);
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
    /// `false` for a failed send that was in doubt and turned out not to
    /// have been counted (see [`SendErrorKind::InDoubt`]): the kernel never
    /// held its data, and `id` went to a later send.
    pub counted: bool,
}

/// Why a send failed (see [`SendError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendErrorKind {
    /// The tracker's window of ids is full; nothing was sent. Drain
    /// completions, then retry.
    TrackerFull,
    /// `EAGAIN`: a non-blocking socket's send buffer is full; nothing was
    /// sent. Wait for [`Interest::WRITABLE`], then retry.
    WouldBlock,
    /// `ENOBUFS` while `outstanding` sends hold option memory or locked
    /// pages; nothing was sent. Drain completions, then retry. (With
    /// nothing outstanding a stream socket sends by copy instead.)
    NoBuffers {
        /// Sends still waiting for their completions.
        outstanding: usize,
    },
    /// A datagram send failed in a way that may have kept its send id (see
    /// [`Tracker::register_in_doubt`](crate::Tracker::register_in_doubt)):
    /// the data was not sent, but the kernel may still hold it. The socket
    /// keeps the token and hands it back through
    /// [`drain`](ZcSocket::drain) once that is settled; until then it sends
    /// by copy.
    InDoubt {
        /// The id the send holds if the kernel kept it.
        id: u32,
        /// The failed call.
        error: SysError,
    },
    /// A placeholder capacity outside `1..=16`; nothing was sent.
    Capacity {
        /// The capacity asked for.
        capacity: usize,
    },
    /// Any other failure of the system call; nothing was sent.
    Os(SysError),
}

impl fmt::Display for SendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TrackerFull => f.write_str("send window full: drain completions first"),
            Self::WouldBlock => f.write_str("send buffer full (EAGAIN)"),
            Self::NoBuffers { outstanding } => write!(
                f,
                "no buffers (ENOBUFS) with {outstanding} sends outstanding: drain completions first"
            ),
            Self::InDoubt { id, error } => write!(
                f,
                "{error}; the kernel may have kept send id {id}: the buffer is held until that is settled"
            ),
            Self::Capacity { capacity } => {
                write!(f, "SCM_ZC_NOTIFICATION capacity {capacity} outside 1..=16")
            }
            Self::Os(e) => e.fmt(f),
        }
    }
}

/// A failed send.
///
/// ```
/// use msgzc_cmsg::sys::{SendErrorKind, ZcSocket};
/// # use std::net::{TcpListener, TcpStream};
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let stream = TcpStream::connect(listener.local_addr()?)?;
/// # let (_peer, _) = listener.accept()?;
/// let mut zc = ZcSocket::<_, Vec<u8>>::with_window(stream, 1)?;
/// zc.send(b"a", vec![1]).unwrap();
/// // One outstanding send fills this window: the token comes back.
/// let e = zc.send(b"b", vec![2]).unwrap_err();
/// assert_eq!(e.kind, SendErrorKind::TrackerFull);
/// assert!(e.is_retryable());
/// assert_eq!(e.token, Some(vec![2]));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct SendError<T> {
    /// What went wrong.
    pub kind: SendErrorKind,
    /// The token, returned unused because the kernel holds no reference to
    /// the data. `None` only for [`SendErrorKind::InDoubt`], where the
    /// socket keeps it until the kernel has settled.
    pub token: Option<T>,
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
    pub(crate) fn new(kind: SendErrorKind, token: T) -> Self {
        SendError {
            kind,
            token: Some(token),
            inline: 0,
            rejected: None,
        }
    }

    /// Whether the same send can succeed later, after a drain or once the
    /// socket is writable: [`TrackerFull`](SendErrorKind::TrackerFull),
    /// [`WouldBlock`](SendErrorKind::WouldBlock) and
    /// [`NoBuffers`](SendErrorKind::NoBuffers).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            SendErrorKind::TrackerFull
                | SendErrorKind::WouldBlock
                | SendErrorKind::NoBuffers { .. }
        )
    }

    /// The errno behind the failure (`EAGAIN`, `ENOBUFS`, the call's).
    pub fn errno(&self) -> Option<i32> {
        let e = NATIVE.family.errno();
        match self.kind {
            SendErrorKind::WouldBlock => Some(e.eagain),
            SendErrorKind::NoBuffers { .. } => Some(e.enobufs),
            SendErrorKind::InDoubt { error, .. } | SendErrorKind::Os(error) => Some(error.errno),
            SendErrorKind::Capacity { .. } => Some(e.einval),
            SendErrorKind::TrackerFull => None,
        }
    }

    /// The same error carrying `token` instead.
    pub(crate) fn with_token<U>(self, token: U) -> SendError<U> {
        SendError {
            token: Some(token),
            ..self.without_token()
        }
    }

    /// The same error without a token.
    pub(crate) fn without_token<U>(self) -> SendError<U> {
        SendError {
            kind: self.kind,
            token: None,
            inline: self.inline,
            rejected: self.rejected,
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl<T: fmt::Debug> std::error::Error for SendError<T> {}

/// The error without its token, keeping the errno (the token, if any, is
/// dropped: convert only errors whose token is not memory in flight).
impl<T> From<SendError<T>> for io::Error {
    fn from(e: SendError<T>) -> io::Error {
        let kind = match (e.kind, e.errno()) {
            (SendErrorKind::TrackerFull, _) => io::ErrorKind::WouldBlock,
            (_, Some(errno)) => io::Error::from_raw_os_error(errno).kind(),
            (_, None) => io::ErrorKind::Other,
        };
        io::Error::new(kind, e.kind.to_string())
    }
}

/// What a successful send did with the token.
///
/// ```
/// use msgzc_cmsg::sys::{Sent, ZcSocket};
/// # use std::net::{TcpListener, TcpStream};
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let stream = TcpStream::connect(listener.local_addr()?)?;
/// # let (_peer, _) = listener.accept()?;
/// let mut zc = ZcSocket::<_, u32>::new(stream)?;
/// assert_eq!(zc.send(b"", 7).unwrap(), Sent::NotCounted(7)); // TCP: no id for 0 bytes
/// assert_eq!(zc.send(b"data", 8).unwrap(), Sent::Pending { bytes: 4, id: 0 });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sent<T> {
    /// The kernel counted the send under `id` and holds the data until the
    /// id completes; the tracker keeps the token.
    Pending {
        /// Bytes sent (a TCP send may be partial).
        bytes: usize,
        /// The kernel's id for this send.
        id: u32,
    },
    /// Sent without `MSG_ZEROCOPY` (the kernel copied the data before
    /// returning): while a send is in doubt, or after `ENOBUFS` with
    /// nothing outstanding. The token comes back.
    Copied {
        /// Bytes sent.
        bytes: usize,
        /// The caller's token.
        token: T,
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

/// Successful sends in a row that must leave the placeholder unwritten
/// before an unprobed socket gives up on the proposal. One is not enough:
/// some paths of a kernel that implements it never parse `SOL_SOCKET`
/// control messages (TCP Fast Open data sent with the SYN, appends to a
/// corked UDP datagram, kTLS, RDS), and the next send may well take one
/// that does.
const UNWRITTEN_BEFORE_FALLBACK: u8 = 8;

/// Where the kernel's support for the proposal stands on a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Probe {
    mode: NotifyMode,
    /// Successful sends in a row that left the placeholder unwritten while
    /// unprobed.
    unwritten: u8,
}

impl Probe {
    const UNPROBED: Probe = Probe {
        mode: NotifyMode::Unprobed,
        unwritten: 0,
    };

    /// The probe after a placeholder send that left `answer` (`failed`:
    /// the errno, if `sendmsg` failed), and whether to send the data again
    /// without the placeholder. A failed send that left the placeholder
    /// unwritten proves nothing, except the first probe's `EINVAL`;
    /// anything the kernel wrote counts whether or not the send failed. An
    /// unwritten answer after a written one only means that this send took
    /// a path that does not parse control messages: the socket stays
    /// inline, and the completions it did not take stay on the error
    /// queue.
    fn after(self, failed: Option<i32>, answer: Answer) -> (Probe, bool) {
        let mode = |mode| Probe { mode, unwritten: 0 };
        match (answer, failed, self.mode) {
            (Answer::Written, _, _) => (mode(NotifyMode::Inline), false),
            (Answer::Corrupt(e), _, _) => {
                (mode(NotifyMode::ErrorQueue(Fallback::Corrupt(e))), false)
            }
            (Answer::Unwritten, None, NotifyMode::Unprobed) => {
                let unwritten = self.unwritten.saturating_add(1);
                if unwritten >= UNWRITTEN_BEFORE_FALLBACK {
                    (mode(NotifyMode::ErrorQueue(Fallback::Unwritten)), false)
                } else {
                    let probe = Probe { unwritten, ..self };
                    (probe, false)
                }
            }
            (Answer::Unwritten, Some(e), NotifyMode::Unprobed)
                if e == NATIVE.family.errno().einval =>
            {
                (mode(NotifyMode::ErrorQueue(Fallback::Rejected)), true)
            }
            (Answer::Unwritten, _, _) => (self, false),
        }
    }
}

/// Why a socket reads completions from the error queue only (see
/// [`ZcSocket::send_notify`] for an example).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fallback {
    /// `sendmsg` with the placeholder failed with `EINVAL` (the kernel does
    /// not know the type, or, on 6.12+, it means `SCM_DEVMEM_LINEAR`).
    Rejected,
    /// Successful sends left the placeholder unwritten, several in a row
    /// and none ever written (a kernel that accepts the number for
    /// something else, or never parses control messages on this socket's
    /// path).
    Unwritten,
    /// The kernel wrote something no v8 kernel writes.
    Corrupt(ZcError),
}

/// How a [`ZcSocket`] receives completions (see
/// [`ZcSocket::send_notify`] for an example).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
/// let mut zc = ZcSocket::<_, ()>::new(stream)?;
/// zc.send(b"x", ()).unwrap();
/// zc.drain(|_| {}, |_| {})?;
/// let n = zc.syscalls();
/// assert_eq!((n.sendmsg, n.poll), (1, 0));
/// assert!(n.recvmmsg >= 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyscallCounts {
    /// `sendmsg` calls (zerocopy and copying).
    pub sendmsg: u64,
    /// `recvmmsg` calls on the error queue.
    pub recvmmsg: u64,
    /// `poll` calls.
    pub poll: u64,
    /// Sends made by copy ([`Sent::Copied`], [`ZcSocket::send_copy`]);
    /// each datagram of a batch sent by copy counts.
    pub copied_sends: u64,
    /// `sendmmsg` calls ([`ZcSocket::send_batch`]).
    pub sendmmsg: u64,
}

/// What one [`ZcSocket::drain`] found (see there for an example).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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

/// Why [`ZcSocket::drain`] stopped.
///
/// A malformed or refused message does not lose the rest of its batch:
/// every valid completion read is applied before the first such error is
/// returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DrainError {
    /// `recvmmsg` (or `ioctl`) failed.
    Sys(SysError),
    /// A control buffer from the error queue could not be walked.
    Walk(WalkError),
    /// An error-queue message did not match its layout.
    Decode(DecodeError),
    /// A completion the tracker refused (ids never sent, or completed
    /// twice): nothing was released for it.
    Completion(CompletionError),
    /// The error queue was empty but the socket had a pending error, which
    /// keeps `poll` reporting `POLLERR` (read and cleared with
    /// `SO_ERROR`): e.g. `ECONNRESET`.
    Socket(SysError),
}

impl fmt::Display for DrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sys(e) => e.fmt(f),
            Self::Walk(e) => write!(f, "error queue: {e}"),
            Self::Decode(e) => write!(f, "error queue: {e}"),
            Self::Completion(e) => write!(f, "error queue: {e}"),
            Self::Socket(e) => write!(f, "pending socket error: {e}"),
        }
    }
}

impl std::error::Error for DrainError {}

impl From<ApplyError> for DrainError {
    fn from(e: ApplyError) -> DrainError {
        match e {
            ApplyError::Walk(e) => DrainError::Walk(e),
            ApplyError::Decode(e) => DrainError::Decode(e),
            ApplyError::Completion(e) => DrainError::Completion(e),
        }
    }
}

impl From<DrainError> for io::Error {
    fn from(e: DrainError) -> io::Error {
        match e {
            DrainError::Sys(s) | DrainError::Socket(s) => s.into(),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Events to wait for besides the error queue, which is always watched
/// (`POLLERR` cannot be masked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest(i16);

impl Interest {
    /// The error queue only.
    pub const ERROR: Interest = Interest(0);
    /// Room to send (`POLLOUT`).
    pub const WRITABLE: Interest = Interest(libc::POLLOUT);
    /// Data to receive (`POLLIN`).
    pub const READABLE: Interest = Interest(libc::POLLIN);
}

impl core::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        Interest(self.0 | rhs.0)
    }
}

/// What [`ZcSocket::wait_for`] saw. All `false`: the timeout passed.
///
/// When `error_queue` is set, call [`drain`](ZcSocket::drain): until the
/// queue is read, every wait returns at once, whatever else it waits for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Readiness {
    /// `POLLERR`: completions (or errors) on the error queue, or a pending
    /// socket error.
    pub error_queue: bool,
    /// `POLLOUT`.
    pub writable: bool,
    /// `POLLIN`.
    pub readable: bool,
    /// `POLLHUP`: the connection is shut down both ways.
    pub hangup: bool,
}

impl Readiness {
    fn from_revents(r: i16) -> Readiness {
        Readiness {
            error_queue: r & libc::POLLERR != 0,
            writable: r & libc::POLLOUT != 0,
            readable: r & libc::POLLIN != 0,
            hangup: r & libc::POLLHUP != 0,
        }
    }
}

/// Why [`ZcSocket::new`] refused a socket, which comes back in
/// [`NewError::fd`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NewErrorKind {
    /// `SO_ZEROCOPY` is already set: the socket may have sent with
    /// `MSG_ZEROCOPY`, and its ids would not start at 0. Use
    /// [`ZcSocket::from_parts`] with the tracker it had.
    AlreadyZerocopy,
    /// A socket option call failed (e.g. `EOPNOTSUPP` for a Unix socket,
    /// `ENOPROTOOPT` before Linux 4.14).
    Sys(SysError),
    /// No tokio runtime with I/O enabled is current (the
    /// [`tokio`](super::tokio) sender only).
    #[cfg(feature = "tokio")]
    NoRuntime,
}

/// A socket [`ZcSocket::new`] refused, given back with the reason.
///
/// ```
/// use msgzc_cmsg::sys::{NewErrorKind, ZcSocket};
/// use std::os::unix::net::UnixDatagram;
///
/// let (a, _b) = UnixDatagram::pair()?;
/// let e = ZcSocket::<_, ()>::new(a).unwrap_err();
/// assert!(matches!(e.kind, NewErrorKind::Sys(_)));
/// let a: UnixDatagram = e.fd; // still yours
/// # drop(a);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct NewError<F> {
    /// The socket, untouched except for `SO_ZEROCOPY` having been set.
    pub fd: F,
    /// Why.
    pub kind: NewErrorKind,
}

impl<F> fmt::Display for NewError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            NewErrorKind::AlreadyZerocopy => f.write_str(
                "SO_ZEROCOPY already set: the socket's send ids may not start at 0 (use from_parts)",
            ),
            NewErrorKind::Sys(e) => e.fmt(f),
            #[cfg(feature = "tokio")]
            NewErrorKind::NoRuntime => {
                f.write_str("no tokio runtime with I/O enabled is current")
            }
        }
    }
}

impl<F: fmt::Debug> std::error::Error for NewError<F> {}

impl<F> From<NewError<F>> for io::Error {
    fn from(e: NewError<F>) -> io::Error {
        match e.kind {
            NewErrorKind::Sys(s) => s.into(),
            NewErrorKind::AlreadyZerocopy => {
                io::Error::new(io::ErrorKind::AlreadyExists, e.to_string())
            }
            #[cfg(feature = "tokio")]
            NewErrorKind::NoRuntime => io::Error::other(e.to_string()),
        }
    }
}

/// A token whose send was never confirmed complete when its socket was
/// closed ([`ZcSocket::close`]): the kernel may still read its memory, for
/// as long as the closed connection keeps transmitting. Dropping it leaks
/// the token; [`assume_released`](Self::assume_released) takes it back for
/// a caller that knows better (e.g. the peer acknowledged every byte).
#[derive(Debug)]
pub struct Unconfirmed<T> {
    token: ManuallyDrop<T>,
}

impl<T> Unconfirmed<T> {
    pub(crate) fn new(token: T) -> Self {
        let token = ManuallyDrop::new(token);
        Unconfirmed { token }
    }

    /// The token, to look at.
    pub fn token(&self) -> &T {
        &self.token
    }

    /// The token, on the caller's word that the kernel no longer reads its
    /// memory.
    pub fn assume_released(self) -> T {
        ManuallyDrop::into_inner(self.token)
    }
}

/// Ids a [`ZcSocket`] may have outstanding by default.
pub const DEFAULT_WINDOW: usize = 1024;
/// How long dropping a [`ZcSocket`] with sends in flight waits for their
/// completions by default before leaking what is left.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(1);
/// Sends made by copy after `ENOBUFS` with nothing outstanding, before
/// `MSG_ZEROCOPY` is tried again: at most one failed call per this many.
const COPIES_AFTER_ENOBUFS: u32 = 64;

/// A socket sending with `MSG_ZEROCOPY` borrowed bytes, one caller token
/// kept per counted send in a [`BoxedTracker`] until the kernel completes
/// it. For owned buffers use [`ZcSender`](super::ZcSender), built on this.
///
/// Dropping it with sends in flight waits up to
/// [`linger`](Self::set_linger) for their completions, then *leaks* the
/// tokens still outstanding rather than drop them: Linux keeps
/// transmitting after `close` and reports no completions for a closed
/// socket. [`close`](Self::close) hands them back as [`Unconfirmed`].
///
/// ```no_run
/// use msgzc_cmsg::sys::{Sent, ZcSocket};
/// use std::net::TcpStream;
///
/// let stream = TcpStream::connect("127.0.0.1:9000")?;
/// let mut zc = ZcSocket::<_, usize>::new(stream)?;
/// let pool = vec![vec![7u8; 65536]; 4];
/// match zc.send(&pool[0], 0) {
///     Ok(Sent::Pending { bytes, id }) => println!("{bytes} bytes of buffer 0 pending as id {id}"),
///     Ok(_) => println!("buffer 0 is free again"),
///     Err(e) => return Err(e.into()),
/// }
/// while zc.tracker().outstanding() > 0 {
///     zc.wait(None)?;
///     zc.drain(|done| println!("buffer {} free", done.token), |_other| {})?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ZcSocket<F: AsFd, T> {
    /// `None` only once [`into_parts`](Self::into_parts) or
    /// [`close`](Self::close) took it.
    fd: Option<F>,
    /// Whether a send of zero bytes still takes an id, and a failed send
    /// may keep one (datagram sockets).
    datagram: bool,
    tracker: BoxedTracker<T>,
    probe: Probe,
    calls: SyscallCounts,
    /// Sends left to make by copy after ENOBUFS with nothing outstanding.
    copies_left: u32,
    /// `poll` saw `POLLERR`: if the queue then reads empty, a socket error
    /// is pending.
    saw_pollerr: bool,
    linger: Duration,
}

impl<F: AsFd, T> ZcSocket<F, T> {
    /// Enables `SO_ZEROCOPY` on `fd` and starts tracking from id 0 with a
    /// window of [`DEFAULT_WINDOW`] ids. A socket that already has
    /// `SO_ZEROCOPY` set is refused (its ids may not start at 0), and so is
    /// one that does not support it; either way it comes back in the
    /// error.
    ///
    /// ```
    /// use msgzc_cmsg::sys::{NewErrorKind, NotifyMode, ZcSocket};
    /// use std::net::UdpSocket;
    ///
    /// let zc = ZcSocket::<_, Box<[u8]>>::new(UdpSocket::bind("[::1]:0")?)?;
    /// assert_eq!(zc.mode(), NotifyMode::Unprobed);
    /// assert_eq!(zc.tracker().next_id(), 0);
    /// // Wrapping the same socket again would restart its ids at 0.
    /// let (sock, _tracker) = zc.into_parts();
    /// let e = ZcSocket::<_, Box<[u8]>>::new(sock).unwrap_err();
    /// assert_eq!(e.kind, NewErrorKind::AlreadyZerocopy);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(fd: F) -> Result<Self, NewError<F>> {
        Self::with_window(fd, DEFAULT_WINDOW)
    }

    /// [`new`](Self::new) with room for `ids` outstanding send ids.
    pub fn with_window(fd: F, ids: usize) -> Result<Self, NewError<F>> {
        match super::zerocopy_enabled(fd.as_fd()) {
            Ok(true) => Err(NewError {
                fd,
                kind: NewErrorKind::AlreadyZerocopy,
            }),
            Ok(false) => Self::from_parts(fd, BoxedTracker::with_window(ids)),
            Err(e) => Err(NewError {
                fd,
                kind: NewErrorKind::Sys(e),
            }),
        }
    }

    /// Wraps a socket whose `MSG_ZEROCOPY` ids `tracker` already follows:
    /// one taken apart with [`into_parts`](Self::into_parts), or a tracker
    /// started at the id the caller knows comes next. Sets `SO_ZEROCOPY`.
    ///
    /// ```
    /// # use msgzc_cmsg::sys::ZcSocket;
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, u8>::new(stream)?;
    /// zc.send(b"x", 1).unwrap();
    /// let (stream, tracker) = zc.into_parts();
    /// let zc = ZcSocket::from_parts(stream, tracker)?;
    /// assert_eq!((zc.tracker().next_id(), zc.tracker().outstanding()), (1, 1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_parts(fd: F, tracker: BoxedTracker<T>) -> Result<Self, NewError<F>> {
        let s = NATIVE.family.socket();
        let ty = super::enable_zerocopy(fd.as_fd())
            .and_then(|()| raw::get_int_opt(fd.as_fd(), s.sol_socket, s.so_type));
        match ty {
            Ok(ty) => Ok(ZcSocket {
                fd: Some(fd),
                datagram: ty != s.sock_stream,
                tracker,
                probe: Probe::UNPROBED,
                calls: SyscallCounts::default(),
                copies_left: 0,
                saw_pollerr: false,
                linger: DEFAULT_LINGER,
            }),
            Err(e) => Err(NewError {
                fd,
                kind: NewErrorKind::Sys(e),
            }),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match &self.fd {
            Some(fd) => fd.as_fd(),
            // Only `into_parts` and `close` take it, and they consume self.
            None => unreachable!("ZcSocket used after into_parts"),
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &F {
        match &self.fd {
            Some(fd) => fd,
            None => unreachable!("ZcSocket used after into_parts"),
        }
    }

    /// The tracker (outstanding sends, the send in doubt, statistics,
    /// advice).
    ///
    /// ```
    /// # use msgzc_cmsg::sys::ZcSocket;
    /// # use msgzc_cmsg::Advice;
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, ()>::new(stream)?;
    /// zc.send(b"x", ()).unwrap();
    /// assert_eq!(zc.tracker().outstanding(), 1);
    /// assert_eq!(zc.tracker().advice(), Advice::KeepZerocopy);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn tracker(&self) -> &BoxedTracker<T> {
        &self.tracker
    }

    /// How completions are received (see [`send_notify`](Self::send_notify)).
    pub fn mode(&self) -> NotifyMode {
        self.probe.mode
    }

    /// System calls made so far (see [`SyscallCounts`]).
    pub fn syscalls(&self) -> SyscallCounts {
        self.calls
    }

    /// How long dropping the socket waits for outstanding completions
    /// before leaking their tokens (default [`DEFAULT_LINGER`]).
    pub fn set_linger(&mut self, linger: Duration) {
        self.linger = linger;
    }

    /// Gives the socket and the tracker back, outstanding tokens and all:
    /// their data may still be read by the kernel until their completions
    /// arrive on the socket's error queue. [`from_parts`](Self::from_parts)
    /// puts them together again.
    pub fn into_parts(mut self) -> (F, BoxedTracker<T>) {
        let tracker = core::mem::replace(&mut self.tracker, BoxedTracker::with_window(1));
        match self.fd.take() {
            Some(fd) => (fd, tracker),
            None => unreachable!("ZcSocket used after into_parts"),
        }
    }

    fn register(&mut self, bytes: usize, token: T) -> Result<Sent<T>, SendError<T>> {
        if bytes == 0 && !self.datagram {
            return Ok(Sent::NotCounted(token));
        }
        match self.tracker.register(token) {
            Ok(id) => Ok(Sent::Pending { bytes, id }),
            // Not reached: the window and doubt were checked before sending.
            Err(r) => Err(SendError::new(SendErrorKind::TrackerFull, r.token)),
        }
    }

    /// `sendmsg` of `data`, `EINTR` retried.
    fn sendmsg(&mut self, data: &[u8], flags: MsgFlags) -> Result<usize, SysError> {
        loop {
            self.calls.sendmsg += 1;
            match raw::sendmsg(self.fd(), data, None, flags).0 {
                Err(e) if e.interrupted() => continue,
                r => return r,
            }
        }
    }

    /// Sends `data` without `MSG_ZEROCOPY`: the kernel copies it before
    /// returning, so nothing needs to be kept. `EINTR` is retried.
    ///
    /// ```
    /// # use msgzc_cmsg::sys::ZcSocket;
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, ()>::new(stream)?;
    /// assert_eq!(zc.send_copy(b"small")?, 5);
    /// assert_eq!(zc.tracker().next_id(), 0); // no id taken
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_copy(&mut self, data: &[u8]) -> Result<usize, SysError> {
        self.send_copy_flags(data, MsgFlags::empty())
    }

    /// [`send_copy`](Self::send_copy) with extra `MSG_*` flags.
    pub fn send_copy_flags(&mut self, data: &[u8], flags: MsgFlags) -> Result<usize, SysError> {
        let n = self.sendmsg(data, flags - MsgFlags::ZEROCOPY)?;
        self.calls.copied_sends += 1;
        Ok(n)
    }

    fn copy_instead(
        &mut self,
        data: &[u8],
        flags: MsgFlags,
        token: T,
    ) -> Result<Sent<T>, SendError<T>> {
        match self.send_copy_flags(data, flags) {
            Ok(bytes) => {
                self.copies_left = self.copies_left.saturating_sub(1);
                Ok(Sent::Copied { bytes, token })
            }
            Err(e) if e.would_block() => Err(SendError::new(SendErrorKind::WouldBlock, token)),
            Err(e) => Err(SendError::new(SendErrorKind::Os(e), token)),
        }
    }

    /// Whether the next send must go by copy: a send is in doubt, or
    /// `ENOBUFS` with nothing outstanding was seen lately.
    fn must_copy(&self) -> bool {
        self.tracker.in_doubt().is_some() || self.copies_left > 0
    }

    /// Sends `data` with `MSG_ZEROCOPY` and keeps `token` (which should own
    /// or lease `data`'s memory) until the kernel completes the send.
    ///
    /// When the window is full the send is not attempted
    /// ([`SendErrorKind::TrackerFull`]). While a send is in doubt, or after
    /// `ENOBUFS` on a stream socket with nothing outstanding (the option
    /// memory limit, e.g. `optmem_max` 0: waiting cannot help), the data
    /// goes by copy and the token comes back at once in [`Sent::Copied`].
    /// `EINTR` is retried.
    ///
    /// ```
    /// # use msgzc_cmsg::sys::{Sent, ZcSocket};
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let pool = vec![vec![1u8; 4096]; 2];
    /// let mut zc = ZcSocket::<_, usize>::with_window(stream, 2)?;
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
    /// let mut zc = ZcSocket::<_, ()>::new(stream)?;
    /// zc.send_flags(b"x", MsgFlags::DONTWAIT, ()).unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_flags(
        &mut self,
        data: &[u8],
        flags: MsgFlags,
        token: T,
    ) -> Result<Sent<T>, SendError<T>> {
        if self.must_copy() {
            return self.copy_instead(data, flags, token);
        }
        if self.tracker.is_full() {
            return Err(SendError::new(SendErrorKind::TrackerFull, token));
        }
        match self.sendmsg(data, flags | MsgFlags::ZEROCOPY) {
            Ok(n) => self.register(n, token),
            Err(e) => self.failed(e, data, flags, token),
        }
    }

    /// A `MSG_ZEROCOPY` `sendmsg` failed with `e` (not `EINTR`).
    fn failed(
        &mut self,
        e: SysError,
        data: &[u8],
        flags: MsgFlags,
        token: T,
    ) -> Result<Sent<T>, SendError<T>> {
        if e.would_block() {
            // Only raised while allocating the packet, before any id is
            // kept (the kernel aborts the id), on every socket type.
            return Err(SendError::new(SendErrorKind::WouldBlock, token));
        }
        if self.datagram {
            return match self.tracker.register_in_doubt(token) {
                Ok(id) => Err(SendError {
                    kind: SendErrorKind::InDoubt { id, error: e },
                    token: None,
                    inline: 0,
                    rejected: None,
                }),
                Err(r) => Err(SendError::new(SendErrorKind::Os(e), r.token)),
            };
        }
        // TCP gives the id back on every failure (it returns the bytes
        // taken instead of an error once any were).
        if e.errno == NATIVE.family.errno().enobufs {
            let outstanding = self.tracker.outstanding();
            if outstanding == 0 {
                self.copies_left = COPIES_AFTER_ENOBUFS;
                return self.copy_instead(data, flags, token);
            }
            return Err(SendError::new(
                SendErrorKind::NoBuffers { outstanding },
                token,
            ));
        }
        Err(SendError::new(SendErrorKind::Os(e), token))
    }

    /// Sends like [`send`](Self::send) with an `SCM_ZC_NOTIFICATION`
    /// placeholder for up to `capacity` completions, releasing those the
    /// kernel returns inline through `release`.
    ///
    /// The first such send probes the kernel: when it fails with `EINVAL`
    /// and the placeholder unwritten, the data is sent again without the
    /// placeholder, and the socket switches to the error queue for good
    /// ([`mode`](Self::mode) says why). So it does after eight successful
    /// sends in a row that left the placeholder unwritten with none ever
    /// written: a single one proves nothing, since a kernel with the
    /// proposal never parses control messages on some paths (TCP Fast Open
    /// data sent with the SYN, appends to a corked UDP datagram, kTLS,
    /// RDS). Once a placeholder came back written the socket stays inline,
    /// and a later unwritten one only leaves its completions on the error
    /// queue. Should the data alone fail with
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
    /// the failed send is handled as by [`send`](Self::send). A failed send
    /// that left the placeholder unwritten says nothing about support (it
    /// may have failed before the kernel read the control messages): the
    /// mode stays as it was, except for the probe's `EINVAL` above. A
    /// placeholder that comes back corrupt switches to the error queue
    /// whether or not the send failed. `EINTR` is retried with a fresh
    /// placeholder, after applying what the interrupted call returned.
    ///
    /// ```
    /// use msgzc_cmsg::sys::{Fallback, NotifyMode, Sent, ZcSocket};
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, u8>::new(stream)?;
    /// let r = zc.send_notify(b"x", 1, 16, |_| {}).unwrap();
    /// assert_eq!(r.sent, Sent::Pending { bytes: 1, id: 0 });
    /// // Mainline kernels do not implement the proposal (6.12+ even reject
    /// // its number as SCM_DEVMEM_LINEAR): the data went out without it.
    /// if zc.mode() == NotifyMode::ErrorQueue(Fallback::Rejected) {
    ///     assert_eq!((r.inline, r.rejected), (0, None));
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_notify(
        &mut self,
        data: &[u8],
        token: T,
        capacity: usize,
        mut release: impl FnMut(Released<T>),
    ) -> Result<SentNotify<T>, SendError<T>> {
        if matches!(self.mode(), NotifyMode::ErrorQueue(_)) || self.must_copy() {
            return self.send(data, token).map(SentNotify::plain);
        }
        if self.tracker.is_full() {
            return Err(SendError::new(SendErrorKind::TrackerFull, token));
        }
        let mut buf = ControlBuf::<{ crate::zc_placeholder_space(16) }>::new();
        let (mut inline, mut rejected) = (0, None);
        loop {
            let Ok(mut b) = ControlBuilder::new(NATIVE, buf.as_mut_bytes()) else {
                unreachable!("ControlBuf is aligned for every layout")
            };
            if b.zc_placeholder(capacity).is_err() {
                let kind = SendErrorKind::Capacity { capacity };
                return Err(SendError::new(kind, token));
            }
            let mut control = b.finish();
            let len = control.len();
            self.calls.sendmsg += 1;
            let flags = MsgFlags::ZEROCOPY;
            let (res, controllen, mflags) =
                raw::sendmsg(self.fd(), data, Some((control.buffer_mut(), len)), flags);
            let outcome = control.zc_outcome(controllen, mflags);
            if matches!(&res, Err(e) if e.interrupted()) {
                // Keep what the interrupted call returned; send again.
                self.take_inline(&res, outcome, &mut release, &mut inline, &mut rejected);
                continue;
            }
            let mut r = self.finish_notify(res, outcome, data, token, &mut release);
            let (inl, rej) = match &mut r {
                Ok(s) => (&mut s.inline, &mut s.rejected),
                Err(e) => (&mut e.inline, &mut e.rejected),
            };
            *inl += inline;
            *rej = rejected.or(*rej);
            return r;
        }
    }

    /// The rest of [`send_notify`](Self::send_notify), once `sendmsg`
    /// returned `res` (not `EINTR`) and left the placeholder as `outcome`
    /// says.
    fn finish_notify(
        &mut self,
        res: Result<usize, SysError>,
        outcome: Result<ZcOutcome<'_>, ZcError>,
        data: &[u8],
        token: T,
        release: &mut impl FnMut(Released<T>),
    ) -> Result<SentNotify<T>, SendError<T>> {
        let (mut inline, mut rejected) = (0, None);
        let resend = self.take_inline(&res, outcome, release, &mut inline, &mut rejected);
        let r = match res {
            Err(_) if resend => {
                let r = self.send(data, token);
                // The same EINVAL without the placeholder: it was not the
                // placeholder's, so support is still unknown.
                if matches!(&r, Err(e) if e.errno() == Some(NATIVE.family.errno().einval)) {
                    self.probe = Probe::UNPROBED;
                }
                r
            }
            Ok(n) => self.register(n, token),
            Err(e) => self.failed(e, data, MsgFlags::empty(), token),
        };
        match r {
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
        }
    }

    /// After a placeholder `sendmsg` that returned `res` and left the
    /// placeholder as `outcome`: updates the mode, applies the completions
    /// it carries (they are for earlier sends, whatever became of this
    /// one), and says whether to send the data again without it.
    fn take_inline(
        &mut self,
        res: &Result<usize, SysError>,
        outcome: Result<ZcOutcome<'_>, ZcError>,
        release: &mut impl FnMut(Released<T>),
        inline: &mut usize,
        rejected: &mut Option<CompletionError>,
    ) -> bool {
        let answer = match outcome {
            Ok(ZcOutcome::Written(_)) => Answer::Written,
            Ok(_) => Answer::Unwritten,
            Err(e) => Answer::Corrupt(e),
        };
        let (probe, resend) = self
            .probe
            .after(res.as_ref().err().map(|e| e.errno), answer);
        self.probe = probe;
        if let Ok(ZcOutcome::Written(done)) = outcome {
            for range in done.iter() {
                match self.apply(range, release) {
                    Ok(k) => *inline += k,
                    Err(e) => {
                        rejected.get_or_insert(e);
                    }
                }
            }
        }
        resend
    }

    /// Applies a completion range the caller read itself (e.g. with
    /// [`recv_errqueue`](super::recv_errqueue) or through io_uring),
    /// releasing tokens as [`drain`](Self::drain) would.
    ///
    /// ```
    /// # use msgzc_cmsg::sys::ZcSocket;
    /// # use msgzc_cmsg::{CompletionError, ZcRange};
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, char>::new(stream)?;
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
            let counted = true;
            release(Released {
                id,
                token,
                copied,
                counted,
            })
        })
    }

    /// Waits until the error queue has something (`POLLERR`), the
    /// connection hangs up, or `timeout` passes (`None`: forever). See
    /// [`wait_for`](Self::wait_for).
    ///
    /// ```
    /// # use msgzc_cmsg::sys::ZcSocket;
    /// # use std::time::Duration;
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, ()>::new(stream)?;
    /// assert!(!zc.wait(Some(Duration::ZERO))?.error_queue); // nothing sent
    /// zc.send(b"x", ()).unwrap();
    /// assert!(zc.wait(Some(Duration::from_secs(5)))?.error_queue);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Readiness, SysError> {
        self.wait_for(Interest::ERROR, timeout)
    }

    /// Waits for the error queue and `interest`, or until `timeout` passes
    /// (`None`: forever), and says which fired. `EINTR` is retried with
    /// the time left; a timeout under a millisecond waits a millisecond
    /// rather than not at all; `POLLNVAL` is an `EBADF` error.
    ///
    /// ```
    /// # use msgzc_cmsg::sys::{Interest, ZcSocket};
    /// # use std::time::Duration;
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, ()>::new(stream)?;
    /// let r = zc.wait_for(Interest::WRITABLE, Some(Duration::from_secs(1)))?;
    /// assert!(r.writable && !r.error_queue);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait_for(
        &mut self,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> Result<Readiness, SysError> {
        let deadline = timeout.map(|d| Instant::now() + d);
        loop {
            let ms = deadline.map_or(-1, |d| poll_ms(d.saturating_duration_since(Instant::now())));
            self.calls.poll += 1;
            match raw::poll(self.fd(), interest.0, ms) {
                Err(e) if e.interrupted() => continue,
                Err(e) => return Err(e),
                Ok(r) if r & libc::POLLNVAL != 0 => {
                    let errno = libc::EBADF;
                    return Err(SysError {
                        call: "poll",
                        errno,
                    });
                }
                Ok(r) => {
                    let ready = Readiness::from_revents(r);
                    self.saw_pollerr |= ready.error_queue;
                    return Ok(ready);
                }
            }
        }
    }

    /// Reads the error queue without blocking, [`DRAIN_BATCH`] messages per
    /// `recvmmsg`, until it is empty. Each completed token goes to
    /// `release`; every other error-queue item (ICMP errors, timestamps) to
    /// `other`. A send in doubt is settled here: by its completion, or,
    /// once every other send has completed and nothing of the socket's is
    /// left below it (`SIOCOUTQ` 0), as never counted (its token comes back
    /// with [`Released::counted`] `false`).
    ///
    /// A completion the tracker refuses, or a malformed message, stops the
    /// drain with the [`DrainError`] (the first of its batch); the rest of
    /// that batch is still applied, since it is already off the queue, so
    /// every valid completion is handed over exactly once. When `poll`
    /// reported `POLLERR` but the queue was empty, the socket's pending
    /// error is read (which clears it, so waits stop returning at once)
    /// and returned as [`DrainError::Socket`].
    ///
    /// ```
    /// # use msgzc_cmsg::sys::{DrainReport, ZcSocket};
    /// # use std::time::Duration;
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, u32>::new(stream)?;
    /// for i in 0..40 {
    ///     zc.send(b"chunk", i).unwrap();
    /// }
    /// let (mut released, mut ranges) = (0, 0);
    /// while zc.tracker().outstanding() > 0 {
    ///     zc.wait(Some(Duration::from_secs(5)))?;
    ///     let r = zc.drain(|_| {}, |item| panic!("unexpected {item:?}"))?;
    ///     released += r.released;
    ///     ranges += r.ranges;
    /// }
    /// // The kernel coalesces adjacent ids, so usually fewer ranges than sends.
    /// assert_eq!(released, 40);
    /// assert!(ranges <= 40);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn drain(
        &mut self,
        mut release: impl FnMut(Released<T>),
        mut other: impl FnMut(ErrqueueItem<'_>),
    ) -> Result<DrainReport, DrainError> {
        let mut report = DrainReport::default();
        let mut first_bad = None;
        self.read_errqueue(&mut report, &mut first_bad, &mut release, &mut other)?;
        if first_bad.is_none() {
            self.settle_doubt(&mut report, &mut first_bad, &mut release, &mut other)?;
        }
        if let Some(e) = first_bad {
            return Err(e);
        }
        if core::mem::take(&mut self.saw_pollerr) && report.messages == 0 {
            let s = NATIVE.family.socket();
            let errno =
                raw::get_int_opt(self.fd(), s.sol_socket, s.so_error).map_err(DrainError::Sys)?;
            if errno != 0 {
                return Err(DrainError::Socket(SysError {
                    call: "sendmsg",
                    errno,
                }));
            }
        }
        Ok(report)
    }

    /// `recvmmsg` batches until the queue reads empty, each message applied.
    fn read_errqueue(
        &mut self,
        report: &mut DrainReport,
        first_bad: &mut Option<DrainError>,
        release: &mut impl FnMut(Released<T>),
        other: &mut impl FnMut(ErrqueueItem<'_>),
    ) -> Result<(), DrainError> {
        // Built in place: `array::from_fn` built the 4 KiB array aside and
        // copied it, which cost more than the recvmmsg of one completion.
        let mut controls: ErrqueueBatch = [const { ControlBuf::new() }; DRAIN_BATCH];
        let mut got = [(0, MsgFlags::empty()); DRAIN_BATCH];
        loop {
            self.calls.recvmmsg += 1;
            let n = match raw::recv_errqueue_batch(self.fd(), &mut controls, &mut got) {
                Ok(n) => n,
                Err(e) if e.interrupted() => continue,
                Err(e) if e.would_block() => 0,
                Err(e) => return Err(first_bad.take().unwrap_or(DrainError::Sys(e))),
            };
            for (c, &(len, flags)) in controls.iter().zip(got.iter()).take(n) {
                report.messages += 1;
                let a = apply_errqueue(
                    &mut self.tracker,
                    NATIVE,
                    c.as_bytes(),
                    len,
                    flags,
                    |id, token, copied| {
                        let counted = true;
                        release(Released {
                            id,
                            token,
                            copied,
                            counted,
                        })
                    },
                    &mut *other,
                );
                (report.ranges, report.released) =
                    (report.ranges + a.ranges, report.released + a.released);
                report.other += a.other;
                if let Some(e) = a.error {
                    first_bad.get_or_insert(e.into());
                }
            }
            // A full batch may leave more behind; but after a bad message
            // stop, so that no input, however broken, keeps this looping.
            if n < DRAIN_BATCH || first_bad.is_some() {
                return Ok(());
            }
        }
    }

    /// Settles a send in doubt as never counted once that is certain:
    /// every other send completed, nothing of the socket's left below it
    /// (`SIOCOUTQ`: a packet that kept the id would still be charged to
    /// the socket until freed, and its completion is queued as it is
    /// freed), and the error queue read empty after that.
    fn settle_doubt(
        &mut self,
        report: &mut DrainReport,
        first_bad: &mut Option<DrainError>,
        release: &mut impl FnMut(Released<T>),
        other: &mut impl FnMut(ErrqueueItem<'_>),
    ) -> Result<(), DrainError> {
        let Some(id) = self.tracker.in_doubt() else {
            return Ok(());
        };
        if self.tracker.outstanding() > 1 || raw::outq(self.fd()).map_err(DrainError::Sys)? > 0 {
            return Ok(());
        }
        self.read_errqueue(report, first_bad, release, other)?;
        if first_bad.is_none() && self.tracker.in_doubt() == Some(id) {
            if let Some(token) = self.tracker.settle_unconsumed() {
                report.released += 1;
                let (copied, counted) = (false, false);
                release(Released {
                    id,
                    token,
                    copied,
                    counted,
                });
            }
        }
        Ok(())
    }

    /// Waits and drains until nothing is outstanding or `timeout` passed;
    /// returns the number still outstanding. Errors end it early.
    fn linger_for(&mut self, timeout: Duration, release: &mut impl FnMut(Released<T>)) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if self.drain(&mut *release, |_| {}).is_err() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if self.tracker.outstanding() == 0 || left.is_zero() {
                break;
            }
            match self.wait(Some(left)) {
                Ok(r) if r.error_queue => {}
                _ => break,
            }
        }
        self.tracker.outstanding()
    }

    /// Waits up to `timeout` for the outstanding sends to complete
    /// (releasing their tokens through `release`), then closes the socket
    /// and returns the tokens whose completions never came, as
    /// [`Unconfirmed`]: the closed connection may still transmit them.
    ///
    /// ```
    /// use msgzc_cmsg::sys::ZcSocket;
    /// use std::time::Duration;
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    /// let mut zc = ZcSocket::<_, Vec<u8>>::new(stream)?;
    /// zc.send(b"bye", b"bye".to_vec()).unwrap();
    /// let mut back = Vec::new();
    /// let unconfirmed = zc.close(Duration::from_secs(5), |r| back.push(r.token));
    /// // Loopback completes at once.
    /// assert!(unconfirmed.is_empty());
    /// assert_eq!(back, [b"bye".to_vec()]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(
        mut self,
        timeout: Duration,
        mut release: impl FnMut(Released<T>),
    ) -> Vec<Unconfirmed<T>> {
        self.linger_for(timeout, &mut release);
        let mut left = Vec::new();
        self.tracker
            .take_outstanding(|_, token| left.push(Unconfirmed::new(token)));
        drop(self.fd.take());
        left
    }

    /// Leaks every outstanding token (for [`ZcSender`](super::ZcSender),
    /// whose tokens are keys to buffers it leaks itself).
    pub(crate) fn abandon(&mut self) {
        self.tracker.leak_outstanding();
    }

    /// Waits up to `timeout` for outstanding completions, releasing their
    /// tokens through `release`; returns how many are still outstanding.
    pub(crate) fn linger(
        &mut self,
        timeout: Duration,
        release: &mut impl FnMut(Released<T>),
    ) -> usize {
        self.linger_for(timeout, release)
    }

    /// The linger time set with [`set_linger`](Self::set_linger).
    pub(crate) fn linger_time(&self) -> Duration {
        self.linger
    }

    #[cfg(feature = "tokio")]
    /// An event loop saw error readiness (`EPOLLERR`), as [`wait`](Self::wait)
    /// sees `POLLERR`: if the next drain reads the queue empty, a socket
    /// error is pending and the drain reads it.
    pub(crate) fn saw_error_readiness(&mut self) {
        self.saw_pollerr = true;
    }
}

/// Milliseconds for `poll`, rounded up so that a timeout under a
/// millisecond still waits instead of polling busily.
fn poll_ms(d: Duration) -> i32 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

impl<F: AsFd, T> Drop for ZcSocket<F, T> {
    fn drop(&mut self) {
        if self.fd.is_none() {
            return;
        }
        if self.tracker.outstanding() > 0 {
            self.linger_for(self.linger, &mut |r: Released<T>| drop(r));
        }
        // The kernel may still read what these tokens own.
        self.tracker.leak_outstanding();
    }
}

impl<F: AsFd, T> AsFd for ZcSocket<F, T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
}

impl<F: AsFd, T> AsRawFd for ZcSocket<F, T> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd().as_raw_fd()
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

    /// `Probe::after` from a probe in `mode` (no unwritten streak).
    fn next_mode(mode: NotifyMode, failed: Option<i32>, answer: Answer) -> (NotifyMode, bool) {
        let (probe, resend) = Probe { mode, unwritten: 0 }.after(failed, answer);
        (probe.mode, resend)
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

    #[test]
    fn one_path_that_never_parses_control_messages_is_no_reason_to_fall_back() {
        use Answer::*;
        // Inline: an unwritten answer on success (a corked append, Fast
        // Open data) leaves the socket inline, however many in a row.
        let mut p = Probe {
            mode: NotifyMode::Inline,
            unwritten: 0,
        };
        for _ in 0..2 * UNWRITTEN_BEFORE_FALLBACK {
            p = p.after(None, Unwritten).0;
        }
        assert_eq!(p.mode, NotifyMode::Inline);
        // Unprobed: only a run of them gives up, and a written answer or
        // a failed send in between does not count towards it.
        let mut p = Probe::UNPROBED;
        for _ in 1..UNWRITTEN_BEFORE_FALLBACK {
            p = p.after(None, Unwritten).0;
            p = p.after(Some(libc::EAGAIN), Unwritten).0;
        }
        assert_eq!(p.mode, NotifyMode::Unprobed);
        let fallen = p.after(None, Unwritten).0.mode;
        assert_eq!(fallen, NotifyMode::ErrorQueue(Fallback::Unwritten));
        let again = p.after(None, Written).0;
        assert_eq!(
            again,
            Probe {
                mode: NotifyMode::Inline,
                unwritten: 0
            }
        );
        // A written answer resets the count for good: inline from then on.
        let mut p = again;
        for _ in 0..UNWRITTEN_BEFORE_FALLBACK {
            p = p.after(None, Unwritten).0;
        }
        assert_eq!(p.mode, NotifyMode::Inline);
    }

    fn udp() -> (ZcSocket<UdpSocket, u32>, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        (ZcSocket::with_window(tx, 8).unwrap(), rx)
    }

    /// `send_notify` after its `sendmsg`, with the kernel's answer
    /// simulated: `written` ranges copied back (None: left unwritten).
    fn after_sendmsg(
        zc: &mut ZcSocket<UdpSocket, u32>,
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
        // A failed datagram send may have kept its id: in doubt, held.
        let doubt = SendErrorKind::InDoubt {
            id: 3,
            error: enobufs,
        };
        assert_eq!(
            (e.kind, e.token, e.inline, e.rejected),
            (doubt, None, 2, None)
        );
        assert_eq!(released, [0, 1]);
        assert_eq!(zc.mode(), NotifyMode::Inline);
        assert_eq!(zc.tracker().in_doubt(), Some(3));
        assert_eq!((zc.tracker().outstanding(), zc.tracker().next_id()), (2, 4));
        // A bogus range (never sent) is reported, not released.
        let (r, released) = after_sendmsg(&mut zc, Err(enobufs), Some(&[(2, 2, 0), (5, 5, 0)]), 8);
        let e = r.unwrap_err();
        assert_eq!((e.token, e.inline), (Some(8), 1));
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
        let doubt = SendErrorKind::InDoubt { id: 0, error: e };
        assert_eq!((err.kind, err.token, err.inline), (doubt, None, 0));
        assert!(released.is_empty());
        assert_eq!(zc.mode(), NotifyMode::Unprobed);
        // Nothing else outstanding and nothing queued: settled as never
        // counted, the token comes back and id 0 is free again.
        let mut back = Vec::new();
        zc.drain(|r| back.push((r.token, r.counted)), |_| {})
            .unwrap();
        assert_eq!(back, [(1, false)]);
        assert_eq!((zc.tracker().in_doubt(), zc.tracker().next_id()), (None, 0));
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
        assert!(matches!(
            r.unwrap_err().kind,
            SendErrorKind::InDoubt { id: 0, .. }
        ));
        assert_eq!(zc.mode(), NotifyMode::Inline);
    }
}
