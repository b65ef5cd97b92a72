//! [`ZcSender`]: `MSG_ZEROCOPY` with owned buffers, each handed back only
//! when the kernel has completed every send id that covers it.

use super::socket::{
    DrainError, Interest, NewError, Readiness, Released, SendError, SendErrorKind, Sent,
    Unconfirmed, ZcSocket,
};
use super::SysError;
use crate::decode::ErrqueueItem;
use std::boxed::Box;
use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;
use std::vec::Vec;

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
    /// Buffers held, by key; the socket's tokens are these keys.
    entries: Vec<Option<Entry<B>>>,
    free: Vec<usize>,
    /// Empty boxes to put the next buffers in.
    spare: Vec<Slot<B>>,
    /// The stream buffer whose rest must go out before anything else.
    partial: Option<usize>,
    ready: VecDeque<B>,
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
            entries: Vec::new(),
            free: Vec::new(),
            spare: Vec::new(),
            partial: None,
            ready: VecDeque::new(),
        }
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
        self.entries.len() - self.free.len()
    }

    fn insert(&mut self, buf: B) -> usize {
        let mut slot = self.spare.pop().unwrap_or_default();
        *slot = Some(buf);
        let entry = Entry {
            buf: slot,
            ids: 0,
            sent: 0,
            done: false,
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

    /// Takes the entry out, for a buffer the kernel is done with.
    fn remove(&mut self, key: usize) -> Option<B> {
        let entry = self.entries.get_mut(key)?.take()?;
        self.free.push(key);
        take_buf(&mut self.spare, entry.buf)
    }

    /// Moves the buffer to the completed queue if nothing holds it.
    fn settle(&mut self, key: usize) {
        let idle = matches!(&self.entries[key], Some(e) if e.done && e.ids == 0);
        if idle {
            if let Some(buf) = self.remove(key) {
                self.ready.push_back(buf);
            }
        }
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
        let key = self.insert(buf);
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
        self.sock.send_copy(data).map_err(|e| {
            let kind = if e.errno == crate::sys::NATIVE.family.errno().eagain {
                SendErrorKind::WouldBlock
            } else {
                SendErrorKind::Os(e)
            };
            SendError::new(kind, ())
        })
    }

    /// Sends from the buffer `key` until all of it is sent, the socket
    /// would block, or a send fails.
    fn push(&mut self, key: usize) -> Result<Progress, SendError<B>> {
        loop {
            let Self { sock, entries, .. } = self;
            let Some(entry) = entries.get_mut(key).and_then(Option::as_mut) else {
                unreachable!("a key in use")
            };
            let Some(buf) = entry.buf.as_ref() else {
                unreachable!("an entry holds its buffer")
            };
            let all: &[u8] = buf.as_ref();
            let (len, before) = (all.len(), entry.sent);
            let r = sock.send(&all[before.min(len)..], key);
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
                self.settle(key);
                return Ok(Progress::Complete);
            }
            if entry.sent == before {
                // No progress (not seen from Linux): wait rather than spin.
                self.partial = Some(key);
                return Ok(Progress::Partial { sent: before });
            }
        }
    }

    /// A send from buffer `key` failed with `e`.
    fn push_failed(&mut self, key: usize, e: SendError<usize>) -> Result<Progress, SendError<B>> {
        let Some(entry) = self.entries.get_mut(key).and_then(Option::as_mut) else {
            unreachable!("a key in use")
        };
        let untouched = entry.sent == 0 && entry.ids == 0;
        if let SendErrorKind::InDoubt { .. } = e.kind {
            // The socket keeps the key until the doubt is settled.
            entry.ids += 1;
            entry.done = true;
        } else if untouched {
            self.partial = None;
            return match self.remove(key) {
                Some(buf) => Err(e.with_token(buf)),
                None => Err(e.without_token()),
            };
        } else if e.is_retryable() {
            self.partial = Some(key);
            return Ok(Progress::Partial { sent: entry.sent });
        } else {
            // Part of it went out and the socket failed: stop sending it.
            entry.done = true;
        }
        self.partial = None;
        self.settle(key);
        Err(e.without_token())
    }

    /// Reads the error queue (see [`ZcSocket::drain`]): buffers whose
    /// sends all completed move to [`completed`](Self::completed); other
    /// error-queue items go to `other`. Returns how many buffers became
    /// free.
    pub fn drain(&mut self, other: impl FnMut(ErrqueueItem<'_>)) -> Result<usize, DrainError> {
        let before = self.ready.len();
        let Self {
            sock,
            entries,
            free,
            spare,
            ready,
            ..
        } = self;
        let mut release = |r: Released<usize>| on_release(entries, free, spare, ready, r.token);
        sock.drain(&mut release, other)?;
        Ok(self.ready.len() - before)
    }

    /// The buffers the kernel is done with, in the order they became free.
    pub fn completed(&mut self) -> impl Iterator<Item = B> + '_ {
        self.ready.drain(..)
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
        let Self {
            sock,
            entries,
            free,
            spare,
            ready,
            ..
        } = &mut self;
        sock.linger(timeout, &mut |r| {
            on_release(entries, free, spare, ready, r.token)
        });
        let mut unconfirmed = Vec::new();
        for (key, slot) in entries.iter_mut().enumerate() {
            if let Some(e) = slot.take() {
                free.push(key);
                if e.ids > 0 {
                    // The kernel may read the box: leak it, hand out its
                    // contents (the same heap bytes for a Vec or a Box).
                    unconfirmed.extend(Box::leak(e.buf).take().map(Unconfirmed::new));
                } else {
                    ready.extend(take_buf(spare, e.buf));
                }
            }
        }
        sock.abandon();
        let completed = ready.drain(..).collect();
        Closed {
            completed,
            unconfirmed,
        }
    }
}

/// The buffer out of its box, the box kept for reuse.
fn take_buf<B>(spare: &mut Vec<Slot<B>>, mut slot: Slot<B>) -> Option<B> {
    let buf = slot.take();
    spare.push(slot);
    buf
}

/// One send id of buffer `key` completed.
fn on_release<B>(
    entries: &mut [Option<Entry<B>>],
    free: &mut Vec<usize>,
    spare: &mut Vec<Slot<B>>,
    ready: &mut VecDeque<B>,
    key: usize,
) {
    let Some(slot) = entries.get_mut(key) else {
        return;
    };
    if let Some(e) = slot.as_mut() {
        e.ids = e.ids.saturating_sub(1);
        if e.ids == 0 && e.done {
            if let Some(e) = slot.take() {
                free.push(key);
                ready.extend(take_buf(spare, e.buf));
            }
        }
    }
}

impl<F: AsFd, B: AsRef<[u8]>> Drop for ZcSender<F, B> {
    fn drop(&mut self) {
        let Self {
            sock,
            entries,
            free,
            spare,
            ready,
            ..
        } = self;
        if sock.tracker().outstanding() > 0 {
            let timeout = sock.linger_time();
            sock.linger(timeout, &mut |r| {
                on_release(entries, free, spare, ready, r.token)
            });
        }
        for e in entries.iter_mut().filter_map(Option::take) {
            if e.ids > 0 {
                // The kernel may still read it: never free or reuse it.
                core::mem::forget(e.buf);
            }
        }
        sock.abandon();
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
