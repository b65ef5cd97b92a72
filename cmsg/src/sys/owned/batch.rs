//! [`ZcSender::send_batch`]: owned buffers in one `sendmmsg`.

use super::{ZcSender, ZcSocket};
use crate::sys::socket::{BatchStop, Datagram};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::vec::Vec;

/// One owned datagram of a [`ZcSender::send_batch`]: the buffer, and
/// optionally a destination and a `UDP_SEGMENT` size (see [`Datagram`]).
///
/// ```
/// use msgzc_cmsg::sys::OwnedDatagram;
///
/// let d = OwnedDatagram::new(vec![0u8; 3000]).segment(1000);
/// assert_eq!((d.buf.len(), d.to, d.segment), (3000, None, Some(1000)));
/// ```
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OwnedDatagram<B> {
    /// The payload.
    pub buf: B,
    /// The destination, for an unconnected socket.
    pub to: Option<SocketAddr>,
    /// The `UDP_SEGMENT` size, if the kernel is to cut it.
    pub segment: Option<u16>,
}

impl<B> OwnedDatagram<B> {
    /// A datagram for the connected peer.
    pub fn new(buf: B) -> Self {
        OwnedDatagram {
            buf,
            to: None,
            segment: None,
        }
    }

    /// Sends it to `addr` instead of the connected peer.
    pub fn to(self, addr: SocketAddr) -> Self {
        OwnedDatagram {
            to: Some(addr),
            ..self
        }
    }

    /// Has the kernel cut it into datagrams of `size` bytes (one id).
    pub fn segment(self, size: u16) -> Self {
        OwnedDatagram {
            segment: Some(size),
            ..self
        }
    }
}

/// What [`ZcSender::send_batch`] did.
#[derive(Debug)]
#[must_use = "unsent buffers come back in it"]
#[non_exhaustive]
pub struct OwnedBatch<B> {
    /// Datagrams sent, from the front of the batch; their buffers come
    /// back through [`completed`](ZcSender::completed).
    pub sent: usize,
    /// The datagrams not sent, buffers included, in order.
    pub unsent: Vec<OwnedDatagram<B>>,
    /// Why the batch stopped early (see [`ZcSocket::send_batch`]); with
    /// [`BatchStop::InDoubt`] the sender holds that datagram's buffer
    /// until the doubt is settled.
    pub stop: Option<BatchStop>,
}

impl<F: AsFd, B: AsRef<[u8]>> ZcSender<F, B> {
    /// Sends owned datagrams in batches of `sendmmsg` with `MSG_ZEROCOPY`
    /// (see [`ZcSocket::send_batch`]), keeping each buffer until its send
    /// completed; buffers sent by copy are free at once. Those never handed
    /// to the kernel come back in [`OwnedBatch::unsent`].
    ///
    /// ```
    /// use msgzc_cmsg::sys::{OwnedDatagram, ZcSender};
    /// use std::net::UdpSocket;
    /// use std::time::Duration;
    ///
    /// let rx = UdpSocket::bind("127.0.0.1:0")?;
    /// let mut zc = ZcSender::new(UdpSocket::bind("127.0.0.1:0")?)?;
    /// let to = rx.local_addr()?;
    /// let batch = (0..8u8).map(|i| OwnedDatagram::new(vec![i; 512]).to(to)).collect();
    /// let r = zc.send_batch(batch);
    /// assert_eq!((r.sent, r.stop), (8, None));
    /// let mut pool = Vec::new();
    /// while zc.in_flight() > 0 {
    ///     zc.wait(Some(Duration::from_secs(5)))?;
    ///     zc.drain(|_| {})?;
    ///     pool.extend(zc.completed());
    /// }
    /// assert_eq!(pool.len(), 8);
    /// let mut got = [0u8; 512];
    /// assert_eq!(rx.recv(&mut got)?, 512);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_batch(&mut self, batch: Vec<OwnedDatagram<B>>) -> OwnedBatch<B> {
        let keys: Vec<Keyed> = batch
            .into_iter()
            .map(|d| (self.held.insert(d.buf), d.to, d.segment))
            .collect();
        let (r, unsent) = {
            let Self { sock, held, .. } = self;
            send_keys(sock, held, &keys)
        };
        let doubt = match r.stop {
            Some(BatchStop::InDoubt { .. }) => Some(r.sent),
            _ => None,
        };
        for &(key, _, _) in keys.iter().take(r.sent) {
            let e = self.held.entry_mut(key);
            e.ids += u32::from(!r.copied);
            e.sent = e.buf.as_ref().as_ref().map_or(0, |b| b.as_ref().len());
            e.done = true;
            self.held.settle(key);
        }
        if let Some(k) = doubt {
            // The socket keeps the key until the doubt is settled.
            let e = self.held.entry_mut(keys[k].0);
            (e.ids, e.done) = (e.ids + 1, true);
        }
        let unsent = unsent
            .into_iter()
            .filter_map(|(key, to, segment)| {
                let buf = self.held.remove(key)?;
                Some(OwnedDatagram { buf, to, segment })
            })
            .collect();
        OwnedBatch {
            sent: r.sent,
            unsent,
            stop: r.stop,
        }
    }
}

/// A held buffer's key, destination and segment size.
type Keyed = (usize, Option<SocketAddr>, Option<u16>);

/// The socket's answer to a batch of held buffers, as plain values.
struct Outcome {
    sent: usize,
    /// Sent by copy (no ids held).
    copied: bool,
    stop: Option<BatchStop>,
}

/// Sends the held buffers `keys` name; returns what happened and the keys
/// not sent (with their destination and segment size).
fn send_keys<F: AsFd, B: AsRef<[u8]>>(
    sock: &mut ZcSocket<F, usize>,
    held: &super::Held<B>,
    keys: &[Keyed],
) -> (Outcome, Vec<Keyed>) {
    let batch = keys
        .iter()
        .filter_map(|&(key, to, segment)| {
            let buf = held.entries.get(key)?.as_ref()?.buf.as_ref().as_ref()?;
            let d = Datagram::new(buf.as_ref(), key);
            let d = match to {
                Some(a) => d.to(a),
                None => d,
            };
            Some(match segment {
                Some(s) => d.segment(s),
                None => d,
            })
        })
        .collect();
    let r = sock.send_batch(batch);
    let unsent = r
        .unsent
        .iter()
        .map(|d| (*d.token(), d.destination(), d.segment_size()))
        .collect();
    let outcome = Outcome {
        sent: r.sent,
        copied: !r.copied.is_empty(),
        stop: r.stop,
    };
    (outcome, unsent)
}
