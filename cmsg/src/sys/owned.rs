//! [`ZcSender`]: `MSG_ZEROCOPY` with owned buffers, each handed back only
//! when the kernel has completed every send id that covers it.

use super::socket::{
    DrainError, Interest, NewError, Readiness, SendError, SendErrorKind, Sent, Unconfirmed,
    ZcSocket,
};
use super::SysError;
use crate::decode::ErrqueueItem;
use crate::policy::SendPolicy;
use std::boxed::Box;
use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};
use std::vec::Vec;

mod batch;
pub use batch::{OwnedBatch, OwnedDatagram};

/// A box for a buffer, `Some` while the sender holds one in it. Boxed, so
/// that a buffer whose bytes live inline (an array) keeps its address
/// while the kernel may read it; empty boxes are reused, so a send
/// allocates nothing once the sender is warm.
type Slot<B> = Box<Option<B>>;

/// A buffer the sender holds.
struct Entry<B> {
    buf: Slot<B>,
    /// Send ids covering the buffer that have not completed (a send in
    /// doubt included).
    ids: u32,
    /// Bytes handed to the kernel so far.
    sent: usize,
    /// No more bytes of it will be sent (all were, or sending stopped).
    done: bool,
    /// Sent by copy (the policy said so): no ids, back once sent.
    copy: bool,
}

/// How far [`ZcSender::send`] (or [`flush`](ZcSender::flush)) got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// The whole buffer was handed to the kernel; it comes back through
    /// [`completed`](ZcSender::completed) once its completions arrived.
    Complete,
    /// A stream socket took only `sent` bytes and then would block (or the
    /// window filled): the sender keeps the buffer and sends the rest
    /// first, on [`flush`](ZcSender::flush) or the next send.
    Partial {
        /// Bytes of the buffer handed to the kernel so far.
        sent: usize,
    },
}

/// What [`ZcSender::close`] leaves.
#[derive(Debug)]
pub struct Closed<B> {
    /// Buffers the kernel is done with, completions arrived.
    pub completed: Vec<B>,
    /// Buffers whose completions never came before the socket was closed:
    /// the connection may still transmit from them (see [`Unconfirmed`]).
    pub unconfirmed: Vec<Unconfirmed<B>>,
}

/// A socket that sends owned buffers with `MSG_ZEROCOPY` and gives each
/// back only when the kernel no longer reads it: every send id covering it
/// completed (a TCP buffer taken in parts spans several), its send in doubt
/// settled, or it went by copy.
///
/// ```
/// use msgzc_cmsg::sys::{Progress, ZcSender};
/// use std::io::Read;
/// use std::net::{TcpListener, TcpStream};
/// use std::time::Duration;
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let stream = TcpStream::connect(listener.local_addr()?)?;
/// let (mut peer, _) = listener.accept()?;
/// let reader = std::thread::spawn(move || {
///     let mut got = Vec::new();
///     peer.read_to_end(&mut got).map(|_| got)
/// });
/// let mut zc = ZcSender::new(stream)?;
/// let mut pool = vec![vec![1u8; 65536], vec![2u8; 65536]];
/// while let Some(buf) = pool.pop() {
///     assert_eq!(zc.send(buf)?, Progress::Complete);
/// }
/// while zc.in_flight() > 0 {
///     zc.wait(Some(Duration::from_secs(5)))?;
///     zc.drain(|other| eprintln!("error queue: {other:?}"))?;
///     pool.extend(zc.completed()); // ours again, free to refill
/// }
/// assert_eq!(pool.len(), 2);
/// drop(zc);
/// assert_eq!(reader.join().unwrap()?.len(), 2 * 65536);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Dropping it with buffers in flight waits up to the socket's linger
/// time (see [`ZcSocket::set_linger`]) for their completions, then *leaks*
/// those still held; [`close`](Self::close) returns them as
/// [`Unconfirmed`].
pub struct ZcSender<F: AsFd, B: AsRef<[u8]>> {
    sock: ZcSocket<F, usize>,
    held: Held<B>,
    /// The stream buffer whose rest must go out before anything else.
    partial: Option<usize>,
    /// Why the last [`Progress::Partial`] stopped: what to wait for.
    blocked: Option<SendErrorKind>,
    /// Decides zerocopy or copy per buffer, if set; its clock starts at
    /// `epoch`.
    policy: Option<(SendPolicy, Instant)>,
}

/// The buffers a sender holds, by key (the socket's tokens are these
/// keys), and those it is ready to give back.
struct Held<B> {
    entries: Vec<Option<Entry<B>>>,
    free: Vec<usize>,
    /// Empty boxes to put the next buffers in.
    spare: Vec<Slot<B>>,
    ready: VecDeque<B>,
}

impl<B> Held<B> {
    fn insert(&mut self, buf: B) -> usize {
        let mut slot = self.spare.pop().unwrap_or_default();
        *slot = Some(buf);
        let entry = Entry {
            buf: slot,
            ids: 0,
            sent: 0,
            done: false,
            copy: false,
        };
        match self.free.pop() {
            Some(key) => {
                self.entries[key] = Some(entry);
                key
            }
            None => {
                self.entries.push(Some(entry));
                self.entries.len() - 1
            }
        }
    }

    fn entry_mut(&mut self, key: usize) -> &mut Entry<B> {
        match self.entries.get_mut(key).and_then(Option::as_mut) {
            Some(e) => e,
            None => unreachable!("a key in use"),
        }
    }

    /// Takes the entry out, for a buffer the kernel is done with.
    fn remove(&mut self, key: usize) -> Option<B> {
        let entry = self.entries.get_mut(key)?.take()?;
        self.free.push(key);
        self.unbox(entry.buf)
    }

    /// The buffer out of its box, the box kept for reuse.
    fn unbox(&mut self, mut slot: Slot<B>) -> Option<B> {
        let buf = slot.take();
        self.spare.push(slot);
        buf
    }

    /// Moves the buffer to the ready queue if nothing holds it.
    fn settle(&mut self, key: usize) {
        let idle = matches!(self.entries.get(key), Some(Some(e)) if e.done && e.ids == 0);
        if idle {
            if let Some(buf) = self.remove(key) {
                self.ready.push_back(buf);
            }
        }
    }

    /// One send id of buffer `key` completed.
    fn release(&mut self, key: usize) {
        if let Some(Some(e)) = self.entries.get_mut(key) {
            e.ids = e.ids.saturating_sub(1);
            self.settle(key);
        }
    }

    /// Every buffer out: to `idle` those the kernel no longer holds, to
    /// `held` (boxed) the others.
    fn take_all(&mut self, mut idle: impl FnMut(B), mut held: impl FnMut(Slot<B>)) {
        for key in 0..self.entries.len() {
            if let Some(e) = self.entries[key].take() {
                self.free.push(key);
                if e.ids > 0 {
                    held(e.buf);
                } else if let Some(buf) = self.unbox(e.buf) {
                    idle(buf);
                }
            }
        }
    }
}

impl<F: AsFd, B: AsRef<[u8]>> ZcSender<F, B> {
    /// Enables `SO_ZEROCOPY` on `fd` (see [`ZcSocket::new`]; a refused
    /// socket comes back in the error).
    pub fn new(fd: F) -> Result<Self, NewError<F>> {
        ZcSocket::new(fd).map(Self::from_socket)
    }

    /// [`new`](Self::new) with room for `ids` outstanding send ids.
    pub fn with_window(fd: F, ids: usize) -> Result<Self, NewError<F>> {
        ZcSocket::with_window(fd, ids).map(Self::from_socket)
    }

    fn from_socket(sock: ZcSocket<F, usize>) -> Self {
        ZcSender {
            sock,
            held: Held {
                entries: Vec::new(),
                free: Vec::new(),
                spare: Vec::new(),
                ready: VecDeque::new(),
            },
            partial: None,
            blocked: None,
            policy: None,
        }
    }

    /// Decides per buffer with `policy` whether to send it with
    /// `MSG_ZEROCOPY` or by copy: buffers shorter than its threshold, and
    /// all while completions keep coming back copied, go by copy and come
    /// back through [`completed`](Self::completed) as soon as they are
    /// sent; now and then one goes as a probe (see
    /// [`policy`](crate::policy)). [`drain`](Self::drain) reports every
    /// completion to it. A send that comes back in its error untouched
    /// (window full, would block) was decided and counted all the same,
    /// so its retry is decided again (a probe refused that way leaves the
    /// next one a probe period later).
    ///
    /// ```
    /// use msgzc_cmsg::policy::{PolicyConfig, SendPolicy};
    /// use msgzc_cmsg::sys::ZcSender;
    /// # use std::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (_peer, _) = listener.accept()?;
    ///
    /// let policy = SendPolicy::new(PolicyConfig { threshold: 4096, ..PolicyConfig::DEFAULT });
    /// let mut zc = ZcSender::new(stream)?.with_policy(policy);
    /// zc.send(vec![0u8; 100]).unwrap();
    /// // Below the threshold: copied, and ours again at once.
    /// assert_eq!(zc.completed().count(), 1);
    /// assert_eq!(zc.policy().map(|p| p.stats().below_threshold), Some(1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_policy(mut self, policy: SendPolicy) -> Self {
        self.policy = Some((policy, Instant::now()));
        self
    }

    /// The send policy, if one was set with
    /// [`with_policy`](Self::with_policy) (its decisions and their
    /// reasons in [`SendPolicy::stats`]).
    pub fn policy(&self) -> Option<&SendPolicy> {
        self.policy.as_ref().map(|(p, _)| p)
    }

    /// The socket layer below (statistics, mode, system call counts,
    /// linger time).
    pub fn socket(&self) -> &ZcSocket<F, usize> {
        &self.sock
    }

    /// The socket layer below, mutably (for [`ZcSocket::set_linger`]).
    /// Sending or draining through it directly would bypass the sender's
    /// bookkeeping: use the sender's methods for those.
    pub fn socket_mut(&mut self) -> &mut ZcSocket<F, usize> {
        &mut self.sock
    }

    /// Buffers held: in flight, in doubt or partly sent.
    pub fn in_flight(&self) -> usize {
        self.held.entries.len() - self.held.free.len()
    }

    /// Sends `buf` with `MSG_ZEROCOPY`, taking ownership of it until the
    /// kernel is done (see [`completed`](Self::completed)).
    ///
    /// A stream socket may take it in parts: the sender goes on sending
    /// the rest while the socket takes more, and when it would block (or
    /// the window fills) returns [`Progress::Partial`] and keeps the rest
    /// for [`flush`](Self::flush), which the next `send` calls first. The
    /// buffer comes back in the error only when none of it was sent and
    /// the kernel holds nothing of it; otherwise the sender keeps it until
    /// that is so.
    pub fn send(&mut self, buf: B) -> Result<Progress, SendError<B>> {
        if self.partial.is_some() {
            match self.flush() {
                Ok(Progress::Complete) => {}
                Ok(_) => return Err(SendError::new(SendErrorKind::WouldBlock, buf)),
                Err(e) => return Err(e.with_token(buf)),
            }
        }
        let copy = match &mut self.policy {
            Some((p, epoch)) => !p.decide(buf.as_ref().len(), epoch.elapsed()).zerocopy(),
            None => false,
        };
        let key = self.held.insert(buf);
        self.held.entry_mut(key).copy = copy;
        self.push(key)
    }

    /// Sends the rest of a partly sent buffer, if any.
    pub fn flush(&mut self) -> Result<Progress, SendError<()>> {
        match self.partial {
            // A partly sent buffer is never handed back in an error.
            Some(key) => self.push(key).map_err(SendError::without_token),
            None => Ok(Progress::Complete),
        }
    }

    /// Sends `data` by copy (no buffer is kept: for payloads too small for
    /// zerocopy to pay), after the rest of a partly sent buffer.
    pub fn send_copy(&mut self, data: &[u8]) -> Result<usize, SendError<()>> {
        if self.flush()? != Progress::Complete {
            return Err(SendError::new(SendErrorKind::WouldBlock, ()));
        }
        self.sock
            .send_copy(data)
            .map_err(|e| SendError::new(copy_failed(e), ()))
    }

    /// Sends from the buffer `key` until all of it is sent, the socket
    /// would block, or a send fails.
    fn push(&mut self, key: usize) -> Result<Progress, SendError<B>> {
        loop {
            let Self { sock, held, .. } = self;
            let entry = held.entry_mut(key);
            let Some(buf) = entry.buf.as_ref() else {
                unreachable!("an entry holds its buffer")
            };
            let all: &[u8] = buf.as_ref();
            let (len, before) = (all.len(), entry.sent);
            let rest = &all[before.min(len)..];
            let r = if entry.copy {
                sock.send_copy(rest)
                    .map(|bytes| Sent::Copied { bytes, token: key })
                    .map_err(|e| SendError::new(copy_failed(e), key))
            } else {
                sock.send(rest, key)
            };
            match r {
                Ok(Sent::Pending { bytes, .. }) => {
                    entry.ids += 1;
                    entry.sent += bytes;
                }
                Ok(Sent::Copied { bytes, .. }) => entry.sent += bytes,
                // Zero bytes on a stream: nothing to send, nothing held.
                Ok(_) => entry.sent = len,
                Err(e) => return self.push_failed(key, e),
            }
            if entry.sent >= len {
                entry.done = true;
                self.partial = None;
                self.held.settle(key);
                return Ok(Progress::Complete);
            }
            if entry.sent == before {
                // No progress (not seen from Linux): wait rather than spin.
                self.partial = Some(key);
                self.blocked = Some(SendErrorKind::WouldBlock);
                return Ok(Progress::Partial { sent: before });
            }
        }
    }

    /// A send from buffer `key` failed with `e`.
    fn push_failed(&mut self, key: usize, e: SendError<usize>) -> Result<Progress, SendError<B>> {
        let entry = self.held.entry_mut(key);
        let untouched = entry.sent == 0 && entry.ids == 0;
        if let SendErrorKind::InDoubt { .. } = e.kind {
            // The socket keeps the key until the doubt is settled.
            entry.ids += 1;
            entry.done = true;
        } else if untouched {
            self.partial = None;
            return match self.held.remove(key) {
                Some(buf) => Err(e.with_token(buf)),
                None => Err(e.without_token()),
            };
        } else if e.is_retryable() {
            self.partial = Some(key);
            self.blocked = Some(e.kind);
            return Ok(Progress::Partial { sent: entry.sent });
        } else {
            // Part of it went out and the socket failed: stop sending it.
            entry.done = true;
        }
        self.partial = None;
        self.held.settle(key);
        Err(e.without_token())
    }

    #[cfg(feature = "tokio")]
    /// Why the last [`Progress::Partial`] stopped (`WouldBlock`: wait to
    /// be writable; `TrackerFull` or `NoBuffers`: wait for completions).
    pub(crate) fn blocked_on(&self) -> Option<SendErrorKind> {
        self.partial.and(self.blocked)
    }

    #[cfg(feature = "tokio")]
    /// Marks error readiness seen by an event loop (see
    /// [`ZcSocket::saw_error_readiness`]).
    pub(crate) fn saw_error_readiness(&mut self) {
        self.sock.saw_error_readiness();
    }

    /// Reads the error queue (see [`ZcSocket::drain`]): buffers whose
    /// sends all completed move to [`completed`](Self::completed); other
    /// error-queue items go to `other`. Returns how many buffers became
    /// free.
    pub fn drain(&mut self, other: impl FnMut(ErrqueueItem<'_>)) -> Result<usize, DrainError> {
        let before = self.held.ready.len();
        let Self {
            sock, held, policy, ..
        } = self;
        sock.drain(
            |r| {
                if let Some((p, epoch)) = policy.as_mut().filter(|_| r.counted) {
                    p.completed(r.copied, epoch.elapsed());
                }
                held.release(r.token)
            },
            other,
        )?;
        Ok(self.held.ready.len() - before)
    }

    /// The buffers the kernel is done with, in the order they became free.
    /// Each is taken as the iterator yields it: those not taken stay for
    /// the next call.
    ///
    /// ```
    /// # use msgzc_cmsg::sys::ZcSender;
    /// # use std::net::UdpSocket;
    /// # use std::time::Duration;
    /// # let rx = UdpSocket::bind("127.0.0.1:0")?;
    /// # let tx = UdpSocket::bind("127.0.0.1:0")?;
    /// # tx.connect(rx.local_addr()?)?;
    /// let mut zc = ZcSender::new(tx)?;
    /// zc.send(vec![1u8]).unwrap();
    /// zc.send(vec![2u8]).unwrap();
    /// while zc.in_flight() > 0 {
    ///     zc.wait(Some(Duration::from_secs(5)))?;
    ///     zc.drain(|_| {})?;
    /// }
    /// assert_eq!(zc.completed().next(), Some(vec![1])); // one taken...
    /// assert_eq!(zc.completed().collect::<Vec<_>>(), [vec![2]]); // ...one left
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn completed(&mut self) -> impl Iterator<Item = B> + '_ {
        core::iter::from_fn(|| self.held.ready.pop_front())
    }

    /// Waits until `timeout` for the outstanding completions; returns how
    /// many sends are still outstanding.
    fn linger(&mut self, timeout: Duration) -> usize {
        let Self { sock, held, .. } = self;
        sock.linger(timeout, &mut |r| held.release(r.token))
    }

    /// Waits for the error queue (see [`ZcSocket::wait`]).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Readiness, SysError> {
        self.sock.wait(timeout)
    }

    /// Waits for the error queue and `interest` (see
    /// [`ZcSocket::wait_for`]).
    pub fn wait_for(
        &mut self,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> Result<Readiness, SysError> {
        self.sock.wait_for(interest, timeout)
    }

    /// Waits up to `timeout` for every buffer's completions, then closes
    /// the socket: buffers the kernel finished with come back in
    /// [`Closed::completed`], the others as [`Unconfirmed`].
    pub fn close(mut self, timeout: Duration) -> Closed<B> {
        self.linger(timeout);
        let (mut completed, mut unconfirmed) = (Vec::new(), Vec::new());
        completed.extend(self.held.ready.drain(..));
        // The kernel may read a held box: leak it, hand out its contents
        // (the same heap bytes for a Vec or a Box).
        self.held.take_all(
            |buf| completed.push(buf),
            |slot| unconfirmed.extend(Box::leak(slot).take().map(Unconfirmed::new)),
        );
        self.sock.abandon();
        Closed {
            completed,
            unconfirmed,
        }
    }
}

impl<F: AsFd, B: AsRef<[u8]>> Drop for ZcSender<F, B> {
    fn drop(&mut self) {
        if self.sock.tracker().outstanding() > 0 {
            self.linger(self.sock.linger_time());
        }
        // The kernel may still read these: never free or reuse them.
        self.held.take_all(drop, core::mem::forget);
        self.sock.abandon();
    }
}

impl<F: AsFd, B: AsRef<[u8]>> AsFd for ZcSender<F, B> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl<F: AsFd, B: AsRef<[u8]>> AsRawFd for ZcSender<F, B> {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// Why a send by copy failed.
fn copy_failed(e: SysError) -> SendErrorKind {
    if e.errno == crate::sys::NATIVE.family.errno().eagain {
        SendErrorKind::WouldBlock
    } else {
        SendErrorKind::Os(e)
    }
}
