//! `MSG_ZEROCOPY` from tokio tasks (feature `tokio`): [`AsyncZcSender`]
//! sends owned buffers and hands each back once the kernel is done with
//! it, waiting for room to send and for completions without blocking the
//! runtime or spinning.
//!
//! # Why not the socket's own tokio readiness
//!
//! A zerocopy completion is reported by `epoll` as `EPOLLERR` (the error
//! queue is not empty). mio reads `EPOLLERR` together with `EPOLLOUT`, or
//! alone, as "write closed", and tokio never clears a closed state: after
//! the first completion, `TcpStream::writable()` (and tokio's own
//! `write_all`) no longer wait, so a full send buffer turns every wait
//! into `EAGAIN` at once. Measured on Linux 6.18 with tokio 1.54: one
//! completion, then `write_all` to a peer that does not read made 43,645
//! failed `sendto` calls in 2 s instead of sleeping. So a socket with
//! `SO_ZEROCOPY` should not be written through tokio's `AsyncWrite`, and
//! this sender does not wait on the socket's registration: it watches the
//! socket with a private, edge-triggered `epoll` instance registered with
//! tokio, and reads the events itself (`EPOLLOUT`: room to send;
//! `EPOLLERR`: completions or a socket error). Each flag is cleared by the
//! operation that finds it stale (`EAGAIN` on send, an empty error queue
//! on drain), so every wait ends on a real event.
//!
//! Reading from the same socket through tokio (`TcpStream::read`,
//! `UdpSocket::recv_from`) is unaffected: mio never takes `EPOLLERR` for
//! "read closed".

use super::owned::{Closed, Progress, ZcSender};
use super::raw::{self, Epoll};
use super::socket::{DrainError, NewError, NewErrorKind, SendError, SendErrorKind};
use super::SysError;
use crate::decode::ErrqueueItem;
use core::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// What a wait is for.
#[derive(Clone, Copy)]
struct Want {
    writable: bool,
    error: bool,
}

/// Why an [`AsyncZcSender`] call failed. Each variant carries the caller's
/// buffer when the kernel holds none of it (never a buffer it may read).
#[derive(Debug)]
#[non_exhaustive]
pub enum AsyncError<B> {
    /// The send failed (see [`SendError`]; its `token` is the buffer).
    Send(SendError<B>),
    /// Reading the error queue failed (a malformed message, a refused
    /// completion, or a pending socket error such as `ECONNRESET`).
    Drain {
        /// What failed.
        error: DrainError,
        /// The buffer the call was given, not sent.
        buf: Option<B>,
    },
    /// Waiting for the socket failed: its `epoll` instance, or the tokio
    /// reactor (which is shutting down).
    Wait {
        /// What failed.
        error: io::Error,
        /// The buffer the call was given, not sent.
        buf: Option<B>,
    },
}

impl<B> AsyncError<B> {
    /// The caller's buffer, when the error carries it back.
    pub fn into_buf(self) -> Option<B> {
        match self {
            Self::Send(e) => e.token,
            Self::Drain { buf, .. } | Self::Wait { buf, .. } => buf,
        }
    }

    /// The same error with `buf` as its buffer.
    fn with_buf<C>(self, buf: Option<C>) -> AsyncError<C> {
        match self {
            Self::Send(e) => AsyncError::Send(match buf {
                Some(b) => e.with_token(b),
                None => e.without_token(),
            }),
            Self::Drain { error, .. } => AsyncError::Drain { error, buf },
            Self::Wait { error, .. } => AsyncError::Wait { error, buf },
        }
    }
}

impl<B> fmt::Display for AsyncError<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Send(e) => e.fmt(f),
            Self::Drain { error, .. } => error.fmt(f),
            Self::Wait { error, .. } => write!(f, "waiting for the socket: {error}"),
        }
    }
}

impl<B: fmt::Debug> std::error::Error for AsyncError<B> {}

/// The error without its buffer, keeping the errno.
impl<B> From<AsyncError<B>> for io::Error {
    fn from(e: AsyncError<B>) -> io::Error {
        match e {
            AsyncError::Send(e) => e.into(),
            AsyncError::Drain { error, .. } => error.into(),
            AsyncError::Wait { error, .. } => error,
        }
    }
}

/// Counters of an [`AsyncZcSender`]'s waiting, to tell a quiet sender from
/// a spinning one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WaitCounts {
    /// Times the task was woken by the reactor for the socket.
    pub wakeups: u64,
    /// Wakeups that found no new event (the reactor's readiness was stale).
    pub empty: u64,
}

/// A [`ZcSender`] for tokio: `send(buf).await` returns once the kernel has
/// taken the whole buffer, and buffers come back through
/// [`next_completed`](Self::next_completed) (waiting) or
/// [`completed`](Self::completed) (not waiting) once their completions
/// arrived.
///
/// It takes any socket that is a file descriptor: tokio's `TcpStream` or
/// `UdpSocket` (still usable for reading through
/// [`get_ref`](Self::get_ref)) or a std socket, which it makes
/// non-blocking. Write to the socket only through this sender (see the
/// [module docs](self) for why tokio's own writes would spin).
///
/// ```
/// use msgzc_cmsg::sys::tokio::AsyncZcSender;
/// use tokio::io::AsyncReadExt;
///
/// # tokio::runtime::Builder::new_current_thread().enable_io().build()?.block_on(async {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let stream = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
/// let (mut peer, _) = listener.accept().await?;
/// let reader = tokio::spawn(async move {
///     let mut got = Vec::new();
///     peer.read_to_end(&mut got).await.map(|_| got)
/// });
/// let mut zc = AsyncZcSender::new(stream)?;
/// let mut pool = vec![vec![1u8; 65536], vec![2u8; 65536]];
/// while let Some(buf) = pool.pop() {
///     zc.send(buf).await?;
/// }
/// while let Some(buf) = zc.next_completed().await? {
///     pool.push(buf); // ours again
/// }
/// assert_eq!(pool.len(), 2);
/// drop(zc.close(std::time::Duration::from_secs(1)).await);
/// assert_eq!(reader.await??.len(), 2 * 65536);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).map_err(|e| e.to_string())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropping it never blocks: it drains what has completed and leaks the
/// buffers still in flight (the kernel may read them);
/// [`close`](Self::close) waits for them first.
pub struct AsyncZcSender<F: AsFd, B: AsRef<[u8]>> {
    inner: ZcSender<F, B>,
    events: AsyncFd<Epoll>,
    /// The last event said there was room, and no send has found none
    /// since.
    writable: bool,
    /// The last event said `EPOLLERR`, and no drain has read the error
    /// queue empty since.
    error: bool,
    counts: WaitCounts,
}

impl<F: AsFd, B: AsRef<[u8]>> AsyncZcSender<F, B> {
    /// Enables `SO_ZEROCOPY` on `fd` (see [`ZcSender::new`]), makes it
    /// non-blocking and registers its watcher with the current tokio
    /// runtime. Outside a runtime with I/O enabled the socket comes back
    /// in the error.
    pub fn new(fd: F) -> Result<Self, NewError<F>> {
        match Self::watch(fd.as_fd()) {
            Ok(events) => Ok(Self::from_sender(ZcSender::new(fd)?, events)),
            Err(kind) => Err(NewError { fd, kind }),
        }
    }

    /// [`new`](Self::new) with room for `ids` outstanding send ids.
    pub fn with_window(fd: F, ids: usize) -> Result<Self, NewError<F>> {
        match Self::watch(fd.as_fd()) {
            Ok(events) => Ok(Self::from_sender(ZcSender::with_window(fd, ids)?, events)),
            Err(kind) => Err(NewError { fd, kind }),
        }
    }

    fn from_sender(mut inner: ZcSender<F, B>, events: AsyncFd<Epoll>) -> Self {
        // Dropping must not block a runtime thread.
        inner.socket_mut().set_linger(Duration::ZERO);
        AsyncZcSender {
            inner,
            events,
            writable: false,
            error: false,
            counts: WaitCounts::default(),
        }
    }

    /// Makes `fd` non-blocking and registers a watcher of it with the
    /// current runtime.
    fn watch(fd: BorrowedFd<'_>) -> Result<AsyncFd<Epoll>, NewErrorKind> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(NewErrorKind::NoRuntime);
        }
        raw::set_nonblocking(fd).map_err(NewErrorKind::Sys)?;
        let ep = Epoll::watching(fd).map_err(NewErrorKind::Sys)?;
        // `new` is deprecated in recent tokio for its unchecked promise
        // that the descriptor stays open while registered: `Epoll` owns
        // it and closes it only when dropped, after the registration.
        #[allow(deprecated)]
        let registered = AsyncFd::new(ep);
        registered.map_err(|e| {
            let errno = e.raw_os_error().unwrap_or(0);
            NewErrorKind::Sys(SysError {
                call: "epoll_ctl",
                errno,
            })
        })
    }

    /// The socket (for reading from it, or its options).
    pub fn get_ref(&self) -> &F {
        self.inner.socket().get_ref()
    }

    /// The blocking sender below (statistics, mode, system call counts).
    pub fn sender(&self) -> &ZcSender<F, B> {
        &self.inner
    }

    /// Buffers held: in flight, in doubt or partly sent.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    /// How often the task was woken for the socket.
    pub fn wait_counts(&self) -> WaitCounts {
        self.counts
    }

    /// Sends `buf` with `MSG_ZEROCOPY` and returns once the kernel has
    /// taken all of it, waiting for room to send (and, when the window of
    /// ids is full or option memory ran out, for completions) in between.
    /// The buffer comes back through [`completed`](Self::completed) or
    /// [`next_completed`](Self::next_completed).
    ///
    /// Cancel-safe in the sense that matters: dropping the future never
    /// leaves a buffer half sent. If part of it went out, the sender keeps
    /// the rest and sends it first on the next call; if none did, the
    /// buffer is dropped with the future and the stream has none of it.
    pub async fn send(&mut self, buf: B) -> Result<(), AsyncError<B>> {
        let mut buf = buf;
        loop {
            if let Err(e) = self.drain_if_signalled(&mut |_| {}) {
                return Err(e.with_buf(Some(buf)));
            }
            match self.inner.send(buf) {
                Ok(Progress::Complete) => return Ok(()),
                Ok(_) => break,
                Err(e) if e.is_retryable() && e.token.is_some() => {
                    let want = self.blocked(e.kind);
                    buf = e.token.unwrap_or_else(|| unreachable!("checked above"));
                    if let Err(e) = self.wait_and_drain(want).await {
                        return Err(e.with_buf(Some(buf)));
                    }
                }
                Err(e) => return Err(AsyncError::Send(e)),
            }
        }
        // The sender holds the buffer now: send the rest of it.
        self.flush().await.map_err(|e| e.with_buf(None))
    }

    /// Sends the rest of a partly sent buffer (after a [`send`](Self::send)
    /// future was dropped), if any.
    pub async fn flush(&mut self) -> Result<(), AsyncError<()>> {
        loop {
            self.drain_if_signalled(&mut |_| {})?;
            match self.inner.flush() {
                Ok(Progress::Complete) => return Ok(()),
                Ok(_) => {
                    let kind = self.inner.blocked_on();
                    let want = self.blocked(kind.unwrap_or(SendErrorKind::WouldBlock));
                    self.wait_and_drain(want).await?;
                }
                Err(e) => return Err(AsyncError::Send(e)),
            }
        }
    }

    /// The buffers the kernel is done with, without waiting (drains the
    /// error queue first if an event said it has something).
    pub fn completed(&mut self) -> Result<impl Iterator<Item = B> + '_, AsyncError<()>> {
        self.drain_if_signalled(&mut |_| {})?;
        Ok(self.inner.completed())
    }

    /// The next buffer the kernel is done with, waiting for its
    /// completion; `None` once no buffer is held. A partly sent buffer's
    /// rest is sent first. Other error-queue items are dropped: use
    /// [`next_completed_with`](Self::next_completed_with) to see them.
    pub async fn next_completed(&mut self) -> Result<Option<B>, AsyncError<()>> {
        self.next_completed_with(|_| {}).await
    }

    /// [`next_completed`](Self::next_completed), passing every other
    /// error-queue item (ICMP errors with `IP_RECVERR`, timestamps) to
    /// `other`.
    pub async fn next_completed_with(
        &mut self,
        mut other: impl FnMut(ErrqueueItem<'_>),
    ) -> Result<Option<B>, AsyncError<()>> {
        loop {
            self.drain_if_signalled(&mut other)?;
            if let Some(buf) = self.inner.completed().next() {
                return Ok(Some(buf));
            }
            if self.inner.in_flight() == 0 {
                return Ok(None);
            }
            if self.inner.blocked_on().is_some() {
                self.flush().await?;
                continue;
            }
            let want = Want {
                writable: false,
                error: true,
            };
            self.wait(want).await?;
        }
    }

    /// Waits up to `timeout` for every buffer's completions, then closes
    /// the socket: see [`ZcSender::close`].
    pub async fn close(mut self, timeout: Duration) -> Closed<B> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.inner.in_flight() > 0 {
            let want = Want {
                writable: false,
                error: true,
            };
            match tokio::time::timeout_at(deadline, self.wait_and_drain(want)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        self.inner.close(Duration::ZERO)
    }

    /// What to wait for after a send stopped for `kind`.
    fn blocked(&mut self, kind: SendErrorKind) -> Want {
        match kind {
            SendErrorKind::WouldBlock => {
                // EAGAIN: the last report of room is stale.
                self.writable = false;
                Want {
                    writable: true,
                    error: true,
                }
            }
            _ => Want {
                writable: false,
                error: true,
            },
        }
    }

    async fn wait_and_drain(&mut self, want: Want) -> Result<(), AsyncError<()>> {
        self.wait(want).await?;
        self.drain_if_signalled(&mut |_| {})
    }

    /// Drains the error queue if an event said it has something; the flag
    /// stays set when the drain fails, so the error is not lost.
    fn drain_if_signalled(
        &mut self,
        other: &mut impl FnMut(ErrqueueItem<'_>),
    ) -> Result<(), AsyncError<()>> {
        if !self.error {
            return Ok(());
        }
        self.inner.saw_error_readiness();
        match self.inner.drain(other) {
            Ok(_) => {
                self.error = false;
                Ok(())
            }
            Err(error) => Err(AsyncError::Drain { error, buf: None }),
        }
    }

    /// Waits until an event satisfies `want` (a flag already set does).
    async fn wait(&mut self, want: Want) -> Result<(), AsyncError<()>> {
        let wait_err = |error| AsyncError::Wait { error, buf: None };
        while !(want.writable && self.writable || want.error && self.error) {
            let mut guard = self.events.readable().await.map_err(wait_err)?;
            self.counts.wakeups += 1;
            // Zero events: the readiness was stale; clear it and wait.
            let events = guard.try_io(|ep| match ep.get_ref().take_events() {
                Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
                Ok(ev) => Ok(ev),
                Err(e) => Err(e.into()),
            });
            match events {
                Ok(Ok(ev)) => self.note(ev),
                Ok(Err(e)) => return Err(wait_err(e)),
                Err(_cleared) => self.counts.empty += 1,
            }
        }
        Ok(())
    }

    /// Takes an `epoll` report: `EPOLLHUP` sets both flags, so that the
    /// next send or drain meets the real error.
    fn note(&mut self, events: u32) {
        let has = |bit: libc::c_int| events & bit as u32 != 0;
        self.writable |= has(libc::EPOLLOUT) || has(libc::EPOLLHUP);
        self.error |= has(libc::EPOLLERR) || has(libc::EPOLLHUP);
    }
}

impl<F: AsFd, B: AsRef<[u8]>> AsFd for AsyncZcSender<F, B> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}
