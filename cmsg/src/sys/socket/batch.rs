//! Batches of datagrams: one `sendmmsg` for many `MSG_ZEROCOPY` sends,
//! each with its own destination, `UDP_SEGMENT` size and placeholder.
//!
//! How Linux counts them (`__sys_sendmmsg` in `net/socket.c`, 6.1 and
//! 6.18): every entry is a `sendmsg` of its own, so each datagram takes
//! one id exactly as [`ZcSocket::send`] would (a `UDP_SEGMENT` datagram
//! one id for all its segments). The call stops at the first entry that
//! fails and, when earlier entries went out, returns their number and
//! drops that entry's error. Whether the failed entry kept an id depends
//! on where it failed (see [`BatchStop::InDoubt`]), so after a short batch
//! that entry is in doubt. Entries after it were never tried.

use super::{NotifyMode, Probe, Released, SendError, SendErrorKind, Sent, ZcSocket};
use crate::sys::raw::{self, MmsgEntry, MmsgOut, RawAddr};
use crate::sys::SysError;
use crate::tracker::CompletionError;
use crate::{Control, ControlBuf, ControlBuilder};
use core::fmt;
use msgzc_abi::{CmsgLayout, MsgFlags};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::vec::Vec;

/// Control bytes per entry: a placeholder of the largest capacity and a
/// `UDP_SEGMENT` message.
const ENTRY_CONTROL: usize = crate::zc_placeholder_space(16) + CmsgLayout::NATIVE.space(2);

/// Stands for the error `sendmmsg` dropped: that of the entry after the
/// last one sent, when some were.
const UNREPORTED: SysError = SysError {
    call: "sendmmsg",
    errno: 0,
};

/// One datagram of a batch (see [`ZcSocket::send_batch`]): its payload, the
/// caller's token for it, and optionally a destination (for an unconnected
/// socket) and a `UDP_SEGMENT` size.
///
/// ```
/// use msgzc_cmsg::sys::Datagram;
///
/// let to = "127.0.0.1:9000".parse().unwrap();
/// let d = Datagram::new(b"payload", 7u32).to(to).segment(1200);
/// assert_eq!((d.data(), d.destination(), d.segment_size()), (&b"payload"[..], Some(to), Some(1200)));
/// assert_eq!(d.into_token(), 7);
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct Datagram<'a, T> {
    data: &'a [u8],
    to: Option<SocketAddr>,
    segment: Option<u16>,
    token: T,
}

impl<'a, T> Datagram<'a, T> {
    /// A datagram of `data` for the socket's connected peer, keeping
    /// `token` while the kernel holds `data`.
    pub fn new(data: &'a [u8], token: T) -> Self {
        Datagram {
            data,
            to: None,
            segment: None,
            token,
        }
    }

    /// Sends it to `addr` (`msg_name`) instead of the connected peer.
    pub fn to(self, addr: SocketAddr) -> Self {
        Datagram {
            to: Some(addr),
            ..self
        }
    }

    /// Asks the kernel to cut the payload into datagrams of `size` bytes
    /// (a `UDP_SEGMENT` control message: UDP GSO). It is still one send
    /// and one id. See [`ZcSocket::send_gso`] for what the kernel refuses.
    pub fn segment(self, size: u16) -> Self {
        Datagram {
            segment: Some(size),
            ..self
        }
    }

    /// The payload.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The destination set with [`to`](Self::to).
    pub fn destination(&self) -> Option<SocketAddr> {
        self.to
    }

    /// The segment size set with [`segment`](Self::segment).
    pub fn segment_size(&self) -> Option<u16> {
        self.segment
    }

    /// The token.
    pub fn token(&self) -> &T {
        &self.token
    }

    /// The token, giving up the datagram.
    pub fn into_token(self) -> T {
        self.token
    }
}

/// Why a batch stopped before its last datagram (see [`BatchSent::stop`]).
/// The datagrams not sent are in [`BatchSent::unsent`], first the one that
/// stopped it (except when it is in doubt).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchStop {
    /// The tracker's window has no room for the next datagram's id: drain
    /// completions, then send the rest.
    TrackerFull,
    /// `EAGAIN` on the first datagram of a `sendmmsg`: the socket's send
    /// buffer is full. Wait for [`Interest::WRITABLE`](super::Interest),
    /// then send the rest.
    WouldBlock,
    /// A datagram failed after the kernel may have counted it. The socket
    /// keeps its token (it is *not* in `unsent`) and hands it back through
    /// [`drain`](ZcSocket::drain) once that is settled, as for
    /// [`SendErrorKind::InDoubt`]; until then sends go by copy.
    ///
    /// `error` is `None` when earlier datagrams of the same `sendmmsg`
    /// went out: the kernel then returns their number and drops the
    /// error, which may have been one that gives the id back (`EAGAIN`,
    /// `ENOBUFS` from option memory) or one that keeps it (a
    /// `UDP_SEGMENT` check, a qdisc or netfilter drop), so the datagram is
    /// in doubt whatever it was.
    InDoubt {
        /// The id the datagram holds if the kernel kept it.
        id: u32,
        /// Its error, when the kernel reported it.
        error: Option<SysError>,
    },
    /// A batch sent by copy (no id at stake) stopped short: the kernel sent
    /// the datagrams before `unsent[0]` and dropped that one's error.
    /// Sending the rest again reports it if it recurs.
    Unreported,
    /// The first datagram of a `sendmmsg` failed with this error and
    /// nothing of it is held (a batch by copy).
    Os(SysError),
    /// A placeholder capacity outside `1..=16`; nothing was sent.
    Capacity {
        /// The capacity asked for.
        capacity: usize,
    },
    /// The socket is a stream socket: batches are for datagram sockets
    /// (`sendmmsg` may send part of a stream entry); nothing was sent.
    Stream,
}

impl fmt::Display for BatchStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TrackerFull => f.write_str("send window full: drain completions first"),
            Self::WouldBlock => f.write_str("send buffer full (EAGAIN)"),
            Self::InDoubt { id, error: Some(e) } => {
                write!(f, "{e}; the kernel may have kept send id {id}")
            }
            Self::InDoubt { id, error: None } => write!(
                f,
                "sendmmsg stopped at a datagram whose error it did not report; the kernel may have kept send id {id}"
            ),
            Self::Unreported => f.write_str("sendmmsg stopped at a datagram whose error it did not report"),
            Self::Os(e) => e.fmt(f),
            Self::Capacity { capacity } => {
                write!(f, "SCM_ZC_NOTIFICATION capacity {capacity} outside 1..=16")
            }
            Self::Stream => f.write_str("sendmmsg batches need a datagram socket"),
        }
    }
}

impl std::error::Error for BatchStop {}

/// What [`ZcSocket::send_batch`] did. The datagrams sent are the first
/// `sent` of the batch; the ones never handed to the kernel come back in
/// [`unsent`](Self::unsent), tokens included, in order.
#[derive(Debug)]
#[must_use = "unsent datagrams and copied tokens come back in it"]
#[non_exhaustive]
pub struct BatchSent<'a, T> {
    /// Datagrams sent, from the front of the batch.
    pub sent: usize,
    /// Their payload bytes.
    pub bytes: usize,
    /// With `MSG_ZEROCOPY`: the id of the first datagram sent; the `k`-th
    /// got `first_id + k` (wrapping), and the socket keeps every token
    /// until its id completes. `None` when nothing was sent with zerocopy.
    pub first_id: Option<u32>,
    /// Tokens of the datagrams sent by copy (while a send is in doubt, or
    /// after `ENOBUFS` with nothing outstanding), in order: free at once.
    pub copied: Vec<T>,
    /// The datagrams not sent, in order.
    pub unsent: Vec<Datagram<'a, T>>,
    /// Why the batch stopped early; `None` when every datagram was sent.
    pub stop: Option<BatchStop>,
    /// Tokens released from completions the kernel returned in
    /// placeholders ([`send_batch_notify`](ZcSocket::send_batch_notify)).
    pub inline: usize,
    /// The first inline completion range the tracker refused.
    pub rejected: Option<CompletionError>,
}

impl<T> BatchSent<'_, T> {
    fn empty() -> Self {
        BatchSent {
            sent: 0,
            bytes: 0,
            first_id: None,
            copied: Vec::new(),
            unsent: Vec::new(),
            stop: None,
            inline: 0,
            rejected: None,
        }
    }
}

/// How one `sendmmsg` of a batch goes out.
#[derive(Clone, Copy)]
/// What follows one `sendmmsg`.
enum After {
    /// Send the same chunk again (`EINTR`, or without placeholders).
    Again,
    /// The chunk is booked; why the batch stops, if it does.
    Done(Option<BatchStop>),
}

struct Shape {
    flags: MsgFlags,
    /// With `MSG_ZEROCOPY` (else by copy).
    zc: bool,
    /// A placeholder of this capacity in every entry.
    capacity: Option<usize>,
}

impl<F: AsFd, T> ZcSocket<F, T> {
    /// Sends a batch of datagrams with `MSG_ZEROCOPY`, up to
    /// `UIO_MAXIOV` (1024) per `sendmmsg`, keeping each datagram's token
    /// under its own send id. A datagram may carry a destination (for an
    /// unconnected socket) and a `UDP_SEGMENT` size.
    ///
    /// The batch stops early, with the reason in [`BatchSent::stop`] and
    /// the rest in [`BatchSent::unsent`], when the window has no room left
    /// ([`BatchStop::TrackerFull`]: a batch never sends more than fits),
    /// when the kernel sends fewer than asked, or on an error. A datagram
    /// that failed after the kernel may have counted it is held in doubt
    /// ([`BatchStop::InDoubt`]); while one is, a batch goes by copy and
    /// its tokens come back in [`BatchSent::copied`]. `EINTR` is retried.
    ///
    /// A batch the kernel cuts short leaves its next datagram in doubt
    /// even when the cause gave the id back, because `sendmmsg` does not
    /// say what it was: on a non-blocking socket, a batch that fills the
    /// send buffer midway (`EAGAIN`), on a blocking one a signal while it
    /// waits for room. The socket then sends by copy until the doubt is
    /// settled, which [`drain`](Self::drain) does once every other send
    /// completed and nothing is left below the socket. Batches that fit in
    /// the send buffer (wait for [`Interest::WRITABLE`](super::Interest)
    /// first) avoid it.
    ///
    /// ```
    /// use msgzc_cmsg::sys::{Datagram, ZcSocket};
    /// use std::net::UdpSocket;
    /// use std::time::Duration;
    ///
    /// let (a, b) = (UdpSocket::bind("127.0.0.1:0")?, UdpSocket::bind("127.0.0.1:0")?);
    /// let tx = UdpSocket::bind("127.0.0.1:0")?;
    /// let mut zc = ZcSocket::<_, usize>::new(tx)?;
    /// let bufs = [[1u8; 100], [2; 100], [3; 100]];
    /// let batch = bufs
    ///     .iter()
    ///     .enumerate()
    ///     .map(|(i, buf)| {
    ///         let to = if i % 2 == 0 { a.local_addr() } else { b.local_addr() };
    ///         Ok(Datagram::new(&buf[..], i).to(to?))
    ///     })
    ///     .collect::<std::io::Result<Vec<_>>>()?;
    /// let r = zc.send_batch(batch);
    /// assert_eq!((r.sent, r.first_id, r.stop), (3, Some(0), None));
    /// assert_eq!(zc.syscalls().sendmmsg, 1);
    /// let mut back = Vec::new();
    /// while zc.tracker().outstanding() > 0 {
    ///     zc.wait(Some(Duration::from_secs(5)))?;
    ///     zc.drain(|done| back.push((done.id, done.token)), |_| {})?;
    /// }
    /// assert_eq!(back, [(0, 0), (1, 1), (2, 2)]);
    /// let mut got = [0u8; 200];
    /// assert_eq!(a.recv(&mut got)?, 100);
    /// assert_eq!(b.recv(&mut got)?, 100);
    /// assert_eq!(got[..100], [2; 100]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_batch<'a>(&mut self, batch: Vec<Datagram<'a, T>>) -> BatchSent<'a, T> {
        self.send_batch_flags(batch, MsgFlags::empty())
    }

    /// [`send_batch`](Self::send_batch) with extra `MSG_*` flags for every
    /// datagram.
    ///
    /// ```
    /// # use msgzc_cmsg::sys::{BatchStop, Datagram, ZcSocket};
    /// # use msgzc_cmsg::MsgFlags;
    /// # use std::net::UdpSocket;
    /// # let rx = UdpSocket::bind("127.0.0.1:0")?;
    /// # let tx = UdpSocket::bind("127.0.0.1:0")?;
    /// # tx.connect(rx.local_addr()?)?;
    /// let mut zc = ZcSocket::<_, u8>::with_window(tx, 2)?;
    /// let batch = (0..3).map(|i| Datagram::new(b"x", i)).collect();
    /// let r = zc.send_batch_flags(batch, MsgFlags::DONTWAIT);
    /// // The window holds two ids: the third datagram comes back unsent.
    /// assert_eq!((r.sent, r.stop), (2, Some(BatchStop::TrackerFull)));
    /// assert_eq!(r.unsent, [Datagram::new(b"x", 2)]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_batch_flags<'a>(
        &mut self,
        batch: Vec<Datagram<'a, T>>,
        flags: MsgFlags,
    ) -> BatchSent<'a, T> {
        self.batch(batch, flags, None, &mut |_| {})
    }

    /// [`send_batch`](Self::send_batch) with an `SCM_ZC_NOTIFICATION`
    /// placeholder for up to `capacity` completions in *every* entry, each
    /// in its own control buffer (one buffer shared by the entries would
    /// be read by the second as its capacity: see `docs/proposal.md`),
    /// releasing through `release` the completions the kernel returns in
    /// them, also in the placeholder of the entry that failed.
    ///
    /// The probe and the fallback are [`send_notify`](Self::send_notify)'s:
    /// when the first entry fails with `EINVAL` and its placeholder
    /// unwritten on an unprobed socket, the batch is sent again without
    /// placeholders and the socket reads the error queue from then on.
    ///
    /// ```
    /// use msgzc_cmsg::sys::{Datagram, NotifyMode, ZcSocket};
    /// # use std::net::UdpSocket;
    /// # let rx = UdpSocket::bind("127.0.0.1:0")?;
    /// # let tx = UdpSocket::bind("127.0.0.1:0")?;
    /// # tx.connect(rx.local_addr()?)?;
    /// let mut zc = ZcSocket::<_, u8>::new(tx)?;
    /// let batch = (0..4).map(|i| Datagram::new(b"four", i)).collect();
    /// let r = zc.send_batch_notify(batch, 16, |_| {});
    /// assert_eq!((r.sent, r.first_id), (4, Some(0)));
    /// // Mainline kernels refuse the placeholder: sent again without it.
    /// assert_ne!(zc.mode(), NotifyMode::Unprobed);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_batch_notify<'a>(
        &mut self,
        batch: Vec<Datagram<'a, T>>,
        capacity: usize,
        mut release: impl FnMut(Released<T>),
    ) -> BatchSent<'a, T> {
        self.batch(batch, MsgFlags::empty(), Some(capacity), &mut release)
    }

    /// Sends `data` with `MSG_ZEROCOPY` and a `UDP_SEGMENT` of `segment`
    /// bytes on a connected UDP socket: the kernel cuts it into datagrams
    /// of `segment` bytes (the last one shorter), which the receiver gets
    /// one by one, and counts one send id for all of them.
    ///
    /// The kernel checks the segmentation only once the send is built and
    /// its id taken, so these refusals come back as
    /// [`SendErrorKind::InDoubt`], settled by the completion the kernel
    /// then queues: `EMSGSIZE` (a segment and its headers larger than the
    /// route's MTU, on kernels with that check, 6.1.176 among them),
    /// `EINVAL` (more segments than the kernel allows, `UDP_MAX_SEGMENTS`:
    /// 64, 128 in later kernels; or `UDP_NO_CHECK6_TX`/`SO_NO_CHECK` set)
    /// and `EIO` (no checksum offload on the route's device, UDP-Lite, or
    /// IPsec). Loopback and veth offload checksums. A `segment` of 0
    /// sends one plain datagram.
    ///
    /// ```
    /// use msgzc_cmsg::sys::{Sent, ZcSocket};
    /// use std::net::UdpSocket;
    ///
    /// let rx = UdpSocket::bind("127.0.0.1:0")?;
    /// let tx = UdpSocket::bind("127.0.0.1:0")?;
    /// tx.connect(rx.local_addr()?)?;
    /// let mut zc = ZcSocket::<_, ()>::new(tx)?;
    /// let data = [9u8; 2500];
    /// assert_eq!(zc.send_gso(&data, 1000, ()).unwrap(), Sent::Pending { bytes: 2500, id: 0 });
    /// let mut got = [0u8; 2500];
    /// for want in [1000, 1000, 500] {
    ///     assert_eq!(rx.recv(&mut got)?, want);
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_gso(
        &mut self,
        data: &[u8],
        segment: u16,
        token: T,
    ) -> Result<Sent<T>, SendError<T>> {
        let mut r = self.send_batch(std::vec![Datagram::new(data, token).segment(segment)]);
        if let Some(token) = r.copied.pop() {
            let bytes = r.bytes;
            return Ok(Sent::Copied { bytes, token });
        }
        if let (Some(id), 1) = (r.first_id, r.sent) {
            let bytes = r.bytes;
            return Ok(Sent::Pending { bytes, id });
        }
        let kind = match r.stop {
            Some(BatchStop::InDoubt { id, error }) => {
                let error = error.unwrap_or(UNREPORTED);
                let kind = SendErrorKind::InDoubt { id, error };
                return Err(SendError::new(kind, ()).without_token());
            }
            Some(BatchStop::TrackerFull) => SendErrorKind::TrackerFull,
            Some(BatchStop::WouldBlock) => SendErrorKind::WouldBlock,
            Some(BatchStop::Os(e)) => SendErrorKind::Os(e),
            Some(BatchStop::Stream) => SendErrorKind::Os(SysError {
                call: "sendmsg",
                errno: libc::EOPNOTSUPP,
            }),
            _ => SendErrorKind::Os(UNREPORTED),
        };
        match r.unsent.pop() {
            Some(d) => Err(SendError::new(kind, d.into_token())),
            None => Err(SendError::new(kind, ()).without_token()),
        }
    }

    /// The batch, in `sendmmsg` calls of what the window and `UIO_MAXIOV`
    /// allow, until it is sent or one stops short.
    fn batch<'a>(
        &mut self,
        batch: Vec<Datagram<'a, T>>,
        flags: MsgFlags,
        capacity: Option<usize>,
        release: &mut impl FnMut(Released<T>),
    ) -> BatchSent<'a, T> {
        let mut r = BatchSent::empty();
        let refuse = match capacity {
            _ if !self.datagram => Some(BatchStop::Stream),
            Some(c) if c == 0 || c > msgzc_abi::proposal::v8::ZC_NOTIFICATION_MAX as usize => {
                Some(BatchStop::Capacity { capacity: c })
            }
            _ => None,
        };
        if refuse.is_some() {
            (r.stop, r.unsent) = (refuse, batch);
            return r;
        }
        let zc = !self.must_copy();
        let inline = zc && !matches!(self.mode(), NotifyMode::ErrorQueue(_));
        let mut shape = Shape {
            flags: if zc {
                flags | MsgFlags::ZEROCOPY
            } else {
                flags - MsgFlags::ZEROCOPY
            },
            zc,
            capacity: capacity.filter(|_| inline),
        };
        let max = crate::sys::NATIVE.numbers().uio_maxiov as usize;
        let mut rest = batch.into_iter();
        let mut chunk = Vec::new();
        while rest.len() > 0 {
            let room = if zc { self.tracker.room() } else { usize::MAX };
            let take = rest.len().min(max).min(room);
            if take == 0 {
                r.stop = Some(BatchStop::TrackerFull);
                break;
            }
            chunk.extend(rest.by_ref().take(take));
            r.stop = self.chunk(&mut chunk, &mut shape, &mut r, release);
            if r.stop.is_some() {
                break;
            }
        }
        r.unsent = chunk;
        r.unsent.extend(rest);
        r
    }

    /// One `sendmmsg` of `chunk` (`EINTR` retried, and once more without
    /// placeholders when the probe says so); leaves in `chunk` the
    /// datagrams not sent.
    fn chunk<'a>(
        &mut self,
        chunk: &mut Vec<Datagram<'a, T>>,
        shape: &mut Shape,
        r: &mut BatchSent<'a, T>,
        release: &mut impl FnMut(Released<T>),
    ) -> Option<BatchStop> {
        let addrs: Vec<Option<RawAddr>> = chunk
            .iter()
            .map(|d| d.to.as_ref().map(RawAddr::new))
            .collect();
        let mut out = Vec::with_capacity(chunk.len());
        let mut resent = false;
        loop {
            let needs_control =
                shape.capacity.is_some() || chunk.iter().any(|d| d.segment.is_some());
            let mut bufs: Vec<ControlBuf<ENTRY_CONTROL>> = match needs_control {
                true => chunk.iter().map(|_| ControlBuf::new()).collect(),
                false => Vec::new(),
            };
            let mut controls = Vec::with_capacity(bufs.len());
            for (buf, d) in bufs.iter_mut().zip(chunk.iter()) {
                match entry_control(buf, d.segment, shape.capacity) {
                    Some(c) => controls.push(c),
                    None => unreachable!("ENTRY_CONTROL holds a placeholder and a segment size"),
                }
            }
            self.calls.sendmmsg += 1;
            let res = {
                let mut entries: Vec<MmsgEntry<'_>> = Vec::with_capacity(chunk.len());
                let mut ctl = controls.iter_mut();
                for (d, a) in chunk.iter().zip(addrs.iter()) {
                    let control = ctl.next().filter(|c| !c.is_empty()).map(|c| {
                        let len = c.len();
                        (c.buffer_mut(), len)
                    });
                    entries.push(MmsgEntry {
                        data: d.data,
                        addr: a.as_ref(),
                        control,
                    });
                }
                raw::sendmmsg(self.fd(), &mut entries, &mut out, shape.flags)
            };
            match self.after_sendmmsg(chunk, res, &controls, &out, shape, &mut resent, r, release) {
                After::Again => continue,
                After::Done(stop) => return stop,
            }
        }
    }

    /// Books one `sendmmsg`'s result `res`. Datagrams that went out are
    /// registered before their placeholders' answers are applied: the
    /// kernel sends the entries in turn, so a later entry's placeholder
    /// may already complete an earlier entry of the same call.
    #[allow(clippy::too_many_arguments)]
    fn after_sendmmsg<'a>(
        &mut self,
        chunk: &mut Vec<Datagram<'a, T>>,
        res: Result<usize, SysError>,
        controls: &[Control<'_>],
        out: &[MmsgOut],
        shape: &mut Shape,
        resent: &mut bool,
        r: &mut BatchSent<'a, T>,
        release: &mut impl FnMut(Released<T>),
    ) -> After {
        let inline = shape.capacity.is_some();
        let e = match res {
            Ok(n) => {
                let stop = self.account(chunk, n, None, out, shape.zc, r);
                if inline {
                    self.take_batch_inline(&res, controls, out, release, r);
                }
                return After::Done(stop);
            }
            Err(e) => e,
        };
        // Nothing went out; the first entry's answer may still hold
        // earlier sends' completions, and decides the probe.
        let resend = inline && self.take_batch_inline(&res, controls, out, release, r);
        if e.interrupted() {
            return After::Again;
        }
        if resend {
            // The placeholder's EINVAL: again without it.
            (shape.capacity, *resent) = (None, true);
            return After::Again;
        }
        if *resent && e.errno == crate::sys::NATIVE.family.errno().einval {
            // The same EINVAL without it: not the placeholder's.
            self.probe = Probe::UNPROBED;
        }
        After::Done(self.account(chunk, 0, Some(e), out, shape.zc, r))
    }

    /// Applies what the kernel left in the placeholders of the entries it
    /// tried (those sent and the one that failed); says whether to send
    /// again without placeholders (the probe's `EINVAL`).
    fn take_batch_inline(
        &mut self,
        res: &Result<usize, SysError>,
        controls: &[Control<'_>],
        out: &[MmsgOut],
        release: &mut impl FnMut(Released<T>),
        r: &mut BatchSent<'_, T>,
    ) -> bool {
        let tried = match res {
            Ok(n) => (n + 1).min(controls.len()),
            Err(_) => 1.min(controls.len()),
        };
        let mut resend = false;
        for (k, (c, o)) in controls.iter().zip(out.iter()).take(tried).enumerate() {
            let entry = match res {
                Ok(n) if k < *n => Ok(o.len),
                Ok(_) => Err(UNREPORTED),
                Err(e) => Err(*e),
            };
            let outcome = c.zc_outcome(o.controllen, o.flags);
            resend |= self.take_inline(&entry, outcome, release, &mut r.inline, &mut r.rejected);
        }
        resend
    }

    /// Books one `sendmmsg` that sent the first `n` datagrams of `chunk`
    /// and then failed with `err` (`None`: not reported, or nothing
    /// failed): their tokens go to the tracker (`zc`) or to
    /// [`BatchSent::copied`]; `chunk` keeps the datagrams not sent. Returns
    /// why the batch stops, if it does.
    fn account<'a>(
        &mut self,
        chunk: &mut Vec<Datagram<'a, T>>,
        n: usize,
        err: Option<SysError>,
        out: &[MmsgOut],
        zc: bool,
        r: &mut BatchSent<'a, T>,
    ) -> Option<BatchStop> {
        let n = n.min(chunk.len());
        for (d, o) in chunk.drain(..n).zip(out.iter()) {
            r.sent += 1;
            r.bytes += o.len;
            if !zc {
                r.copied.push(d.token);
                continue;
            }
            match self.tracker.register(d.token) {
                Ok(id) => {
                    r.first_id.get_or_insert(id);
                }
                // Not reached: the chunk was cut to the window's room. The
                // kernel holds the data: never free what the token owns.
                Err(refused) => core::mem::forget(refused.token),
            }
        }
        if !zc {
            self.calls.copied_sends += n as u64;
            self.copies_left = self
                .copies_left
                .saturating_sub(n.try_into().unwrap_or(u32::MAX));
        }
        if chunk.is_empty() {
            return None;
        }
        match err {
            Some(e) if e.would_block() => Some(BatchStop::WouldBlock),
            Some(e) if !zc => Some(BatchStop::Os(e)),
            None if !zc => Some(BatchStop::Unreported),
            error => {
                let Datagram {
                    data,
                    to,
                    segment,
                    token,
                } = chunk.remove(0);
                match self.tracker.register_in_doubt(token) {
                    Ok(id) => Some(BatchStop::InDoubt { id, error }),
                    Err(refused) => {
                        let token = refused.token;
                        chunk.insert(
                            0,
                            Datagram {
                                data,
                                to,
                                segment,
                                token,
                            },
                        );
                        Some(error.map_or(BatchStop::Unreported, BatchStop::Os))
                    }
                }
            }
        }
    }
}

/// The control messages of one entry in `buf`: the placeholder first (where
/// the kernel writes its answer), then the segment size.
fn entry_control(
    buf: &mut ControlBuf<ENTRY_CONTROL>,
    segment: Option<u16>,
    capacity: Option<usize>,
) -> Option<Control<'_>> {
    let mut b = ControlBuilder::new(crate::sys::NATIVE, buf.as_mut_bytes()).ok()?;
    if let Some(c) = capacity {
        b.zc_placeholder(c).ok()?;
    }
    if let Some(s) = segment {
        b.udp_segment(s).ok()?;
    }
    Some(b.finish())
}

#[cfg(test)]
mod tests {
    //! The bookkeeping after a `sendmmsg`, with the kernel's answers
    //! simulated: nothing here sends.

    use super::*;
    use crate::decode::ZcRange;
    use crate::sys::socket::Fallback;
    use crate::sys::NATIVE;
    use crate::tests::kernel_writes;
    use std::net::UdpSocket;

    fn udp() -> (ZcSocket<UdpSocket, u32>, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        (ZcSocket::with_window(tx, 8).unwrap(), rx)
    }

    fn outs(n: usize, len: usize) -> Vec<MmsgOut> {
        let flags = MsgFlags::empty();
        let out = MmsgOut {
            len,
            controllen: 0,
            flags,
        };
        std::vec![out; n]
    }

    fn chunk(tokens: core::ops::Range<u32>) -> Vec<Datagram<'static, u32>> {
        tokens.map(|t| Datagram::new(b"abc", t)).collect()
    }

    fn tokens(c: &[Datagram<'_, u32>]) -> Vec<u32> {
        c.iter().map(|d| d.token).collect()
    }

    fn sys(errno: i32) -> SysError {
        SysError {
            call: "sendmmsg",
            errno,
        }
    }

    #[test]
    fn a_short_zerocopy_batch_holds_the_failed_entry_in_doubt_and_returns_the_rest() {
        let (mut zc, _rx) = udp();
        let (mut c, mut r) = (chunk(0..5), BatchSent::empty());
        let stop = zc.account(&mut c, 2, None, &outs(5, 3), true, &mut r);
        assert_eq!(stop, Some(BatchStop::InDoubt { id: 2, error: None }));
        assert_eq!((r.sent, r.bytes, r.first_id), (2, 6, Some(0)));
        assert!(r.copied.is_empty());
        assert_eq!(tokens(&c), [3, 4]);
        let t = zc.tracker();
        assert_eq!((t.in_doubt(), t.outstanding(), t.room()), (Some(2), 3, 0));
        // A completion reaching id 2 settles it as counted: every token
        // once, the doubtful one included.
        let mut back = Vec::new();
        let all = ZcRange {
            lo: 0,
            hi: 2,
            copied: true,
        };
        assert_eq!(
            zc.apply(all, &mut |r| back.push((r.token, r.counted))),
            Ok(3)
        );
        assert_eq!(back, [(0, true), (1, true), (2, true)]);
        assert_eq!((zc.tracker().in_doubt(), zc.tracker().next_id()), (None, 3));
    }

    #[test]
    fn the_first_entry_failing_keeps_its_error() {
        let (mut zc, _rx) = udp();
        let errno = NATIVE.family.errno();
        // EAGAIN gives the id back: nothing held, everything returned.
        let (mut c, mut r) = (chunk(0..5), BatchSent::empty());
        let stop = zc.account(
            &mut c,
            0,
            Some(sys(errno.eagain)),
            &outs(5, 3),
            true,
            &mut r,
        );
        assert_eq!(stop, Some(BatchStop::WouldBlock));
        assert_eq!((r.sent, tokens(&c)), (0, std::vec![0, 1, 2, 3, 4]));
        assert_eq!(zc.tracker().outstanding(), 0);
        // Any other error of a datagram may have kept it.
        let e = sys(errno.enobufs);
        let stop = zc.account(&mut c, 0, Some(e), &outs(5, 3), true, &mut r);
        assert_eq!(
            stop,
            Some(BatchStop::InDoubt {
                id: 0,
                error: Some(e)
            })
        );
        assert_eq!((r.sent, r.first_id), (0, None));
        assert_eq!(tokens(&c), [1, 2, 3, 4]);
        // While in doubt nothing more can be registered: the socket copies.
        assert!(zc.must_copy());
        let stop = zc.account(&mut c, 0, Some(e), &outs(4, 3), true, &mut r);
        assert_eq!(stop, Some(BatchStop::Os(e)));
        assert_eq!(
            tokens(&c),
            [1, 2, 3, 4],
            "the refused token is back in place"
        );
    }

    #[test]
    fn a_batch_by_copy_returns_every_token() {
        let (mut zc, _rx) = udp();
        let (mut c, mut r) = (chunk(0..5), BatchSent::empty());
        let stop = zc.account(&mut c, 2, None, &outs(5, 3), false, &mut r);
        assert_eq!(stop, Some(BatchStop::Unreported));
        assert_eq!((r.sent, r.first_id, &r.copied[..]), (2, None, &[0, 1][..]));
        assert_eq!(tokens(&c), [2, 3, 4]);
        assert_eq!(zc.syscalls().copied_sends, 2);
        let e = sys(libc::EPERM);
        let stop = zc.account(&mut c, 0, Some(e), &outs(3, 3), false, &mut r);
        assert_eq!(
            (stop, tokens(&c)),
            (Some(BatchStop::Os(e)), std::vec![2, 3, 4])
        );
        let stop = zc.account(&mut c, 3, None, &outs(3, 3), false, &mut r);
        assert_eq!(
            (stop, c.len(), &r.copied[..]),
            (None, 0, &[0, 1, 2, 3, 4][..])
        );
        assert_eq!(zc.tracker().stats().sent, 0);
    }

    #[test]
    fn a_whole_chunk_registers_consecutive_ids() {
        let (mut zc, _rx) = udp();
        zc.tracker.register(100).unwrap();
        let (mut c, mut r) = (chunk(0..4), BatchSent::empty());
        assert_eq!(zc.account(&mut c, 4, None, &outs(4, 3), true, &mut r), None);
        assert_eq!((r.sent, r.first_id, c.len()), (4, Some(1), 0));
        assert_eq!((zc.tracker().next_id(), zc.tracker().room()), (5, 3));
    }

    /// What the kernel wrote in one placeholder (`None`: nothing).
    type Written<'r> = Option<&'r [(u32, u32, u8)]>;

    /// Placeholders of `n` entries, answered as `written` says (entry by
    /// entry; `None`: left as built), and the headers the kernel left.
    fn answered<'b>(
        bufs: &'b mut [ControlBuf<ENTRY_CONTROL>],
        written: &[Written<'_>],
    ) -> (Vec<Control<'b>>, Vec<MmsgOut>) {
        let mut controls = Vec::new();
        let mut out = Vec::new();
        for (buf, w) in bufs.iter_mut().zip(written) {
            let mut c = entry_control(buf, Some(1200), Some(16)).unwrap();
            let controllen = match w {
                Some(ranges) => kernel_writes(&mut c, ranges),
                None => c.len(),
            };
            let flags = MsgFlags::empty();
            out.push(MmsgOut {
                len: 3,
                controllen,
                flags,
            });
            controls.push(c);
        }
        (controls, out)
    }

    #[test]
    fn each_tried_entry_answers_in_its_own_placeholder() {
        let (mut zc, _rx) = udp();
        for t in 100..105 {
            zc.tracker.register(t).unwrap();
        }
        let mut bufs: [ControlBuf<ENTRY_CONTROL>; 4] = core::array::from_fn(|_| ControlBuf::new());
        // Entries 0 and 1 sent, entry 2 failed (its answer counts too),
        // entry 3 never tried (whatever it holds is not read).
        let written: [Written<'_>; 4] = [
            Some(&[(0, 1, 0)]),
            Some(&[]),
            Some(&[(2, 3, 1)]),
            Some(&[(4, 4, 0)]),
        ];
        let (controls, out) = answered(&mut bufs, &written);
        let (mut r, mut back) = (BatchSent::empty(), Vec::new());
        let resend =
            zc.take_batch_inline(&Ok(2), &controls, &out, &mut |x| back.push(x.token), &mut r);
        assert!(!resend);
        assert_eq!(back, [100, 101, 102, 103]);
        assert_eq!((r.inline, r.rejected), (4, None));
        assert_eq!(zc.mode(), NotifyMode::Inline);
        assert_eq!(zc.tracker().outstanding(), 1);
        // A range never sent is refused, not released.
        let written: [Written<'_>; 1] = [Some(&[(7, 7, 0)])];
        let (controls, out) = answered(&mut bufs[..1], &written);
        let resend =
            zc.take_batch_inline(&Ok(1), &controls, &out, &mut |x| back.push(x.token), &mut r);
        assert!(!resend);
        assert!(matches!(
            r.rejected,
            Some(CompletionError::NotOutstanding { id: 7, .. })
        ));
        assert_eq!(back.len(), 4);
    }

    /// The patched kernel sends entry 0, then reads entry 2's placeholder
    /// after entry 0's completion arrived: the answer names an id of the
    /// same call, which must be registered by then (found by the
    /// `sendmmsg_zc` conformance case on the patched x86_64 kernel).
    #[test]
    fn a_later_entry_may_complete_an_earlier_entry_of_the_same_call() {
        let (mut zc, _rx) = udp();
        let mut bufs: [ControlBuf<ENTRY_CONTROL>; 3] = core::array::from_fn(|_| ControlBuf::new());
        let written: [Written<'_>; 3] = [Some(&[]), Some(&[]), Some(&[(0, 0, 1)])];
        let (controls, out) = answered(&mut bufs, &written);
        let mut shape = Shape {
            flags: MsgFlags::ZEROCOPY,
            zc: true,
            capacity: Some(16),
        };
        let (mut c, mut r, mut back) = (chunk(10..13), BatchSent::empty(), Vec::new());
        let mut resent = false;
        let after = zc.after_sendmmsg(
            &mut c,
            Ok(3),
            &controls,
            &out,
            &mut shape,
            &mut resent,
            &mut r,
            &mut |x| back.push(x.token),
        );
        assert!(matches!(after, After::Done(None)));
        assert_eq!(
            (r.sent, r.first_id, r.inline, r.rejected),
            (3, Some(0), 1, None)
        );
        assert_eq!(back, [10]);
        assert_eq!(zc.tracker().outstanding(), 2);
    }

    #[test]
    fn the_first_entrys_einval_with_its_placeholder_unwritten_resends_without() {
        let (mut zc, _rx) = udp();
        let mut bufs: [ControlBuf<ENTRY_CONTROL>; 2] = core::array::from_fn(|_| ControlBuf::new());
        let (controls, out) = answered(&mut bufs, &[None, None]);
        let mut r = BatchSent::empty();
        let einval = sys(NATIVE.family.errno().einval);
        let resend = zc.take_batch_inline(&Err(einval), &controls, &out, &mut |_| {}, &mut r);
        assert!(resend);
        assert_eq!(zc.mode(), NotifyMode::ErrorQueue(Fallback::Rejected));
        // A short batch's unreported error proves nothing about support.
        let (mut zc, _rx) = udp();
        let resend = zc.take_batch_inline(&Ok(1), &controls, &out, &mut |_| {}, &mut r);
        assert!(!resend);
        assert_eq!(zc.mode(), NotifyMode::Unprobed);
    }
}
