//! A `ZcSender` in a mio event loop: which events to register, when to
//! drain and when to send. The same applies to a hand-written `epoll`
//! loop. Streams 16 MiB over loopback TCP to a thread that checks every
//! byte, reusing eight 64 KiB buffers.
//!
//! - Register the socket for `WRITABLE` only: `epoll` reports the error
//!   queue (`EPOLLERR`) whatever the interest.
//! - On an event with `is_error()`, drain. Ignore `is_write_closed()` on a
//!   zerocopy socket: mio also reports `EPOLLERR` with `EPOLLOUT` that way,
//!   and here it means completions, not a closed socket (a real error
//!   comes out of the drain, or of the next send).
//! - On `is_writable()`, send until the sender says `WouldBlock` (or hands
//!   back `Progress::Partial`); then wait for the next event. mio is
//!   edge-triggered, so never wait without having seen `EAGAIN` first.
//! - When the window of ids is full or option memory ran out
//!   (`TrackerFull`, `NoBuffers`), wait for completions instead.
//!
//! `cargo run --example mio_loop`
//!
//! Linux (and Android) only: elsewhere `msgzc_cmsg::sys` does not exist.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use msgzc_cmsg::sys::{Progress, SendErrorKind, ZcSender};
    use std::error::Error;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    const POOL: usize = 8;
    const CHUNK: usize = 64 << 10;
    const SOCKET: Token = Token(0);

    /// The byte at stream offset `at`.
    fn byte_at(at: u64) -> u8 {
        (at.wrapping_mul(0x9e37_79b9) >> 13) as u8 ^ (at >> 16) as u8
    }

    /// What the loop did.
    #[derive(Debug)]
    pub struct Looped {
        /// Bytes the reader received, each checked.
        pub bytes: u64,
        /// `poll` wakeups of the loop.
        pub wakeups: u64,
        /// Buffers sent.
        pub sends: u64,
    }

    /// Streams `total` bytes (a multiple of 64 KiB) through a mio loop.
    pub fn run(total: u64) -> Result<Looped, Box<dyn Error>> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let stream = TcpStream::connect(listener.local_addr()?)?;
        let (mut peer, _) = listener.accept()?;
        let reader = std::thread::spawn(move || -> std::io::Result<u64> {
            let (mut buf, mut at) = (vec![0u8; 256 << 10], 0u64);
            loop {
                let n = peer.read(&mut buf)?;
                if n == 0 {
                    return Ok(at);
                }
                if (0..n).any(|i| buf[i] != byte_at(at + i as u64)) {
                    return Err(std::io::Error::other("a byte is wrong"));
                }
                at += n as u64;
            }
        });

        stream.set_nonblocking(true)?;
        let mut zc = ZcSender::new(stream)?;
        let mut poll = Poll::new()?;
        let fd = zc.as_raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), SOCKET, Interest::WRITABLE)?;
        let mut events = Events::with_capacity(8);
        let mut pool: Vec<Vec<u8>> = (0..POOL).map(|_| vec![0; CHUNK]).collect();
        let (mut at, mut sends, mut wakeups) = (0u64, 0u64, 0u64);
        let mut writable = false;
        while at < total || zc.in_flight() > 0 {
            if writable && at < total {
                writable = send_some(&mut zc, &mut pool, &mut at, &mut sends, total)?;
            }
            if at >= total && zc.flush()? == Progress::Complete && zc.in_flight() == 0 {
                break;
            }
            poll.poll(&mut events, Some(Duration::from_secs(10)))?;
            wakeups += 1;
            if events.is_empty() {
                return Err("no event for 10 s".into());
            }
            for ev in events.iter() {
                if ev.is_error() {
                    zc.drain(|other| eprintln!("error queue: {other:?}"))?;
                    pool.extend(zc.completed());
                }
                writable |= ev.is_writable();
            }
        }
        poll.registry().deregister(&mut SourceFd(&fd))?;
        let closed = zc.close(Duration::from_secs(5));
        pool.extend(closed.completed);
        if pool.len() != POOL || !closed.unconfirmed.is_empty() {
            return Err(format!("{} of {POOL} buffers came back", pool.len()).into());
        }
        let bytes = reader.join().map_err(|_| "reader panicked")??;
        Ok(Looped {
            bytes,
            wakeups,
            sends,
        })
    }

    /// Sends from the pool until the socket would block or the pool is empty;
    /// returns whether the socket may still have room.
    fn send_some(
        zc: &mut ZcSender<TcpStream, Vec<u8>>,
        pool: &mut Vec<Vec<u8>>,
        at: &mut u64,
        sends: &mut u64,
        total: u64,
    ) -> Result<bool, Box<dyn Error>> {
        while *at < total {
            let Some(mut buf) = pool.pop() else {
                return Ok(true); // wait for completions to refill the pool
            };
            for (i, b) in buf.iter_mut().enumerate() {
                *b = byte_at(*at + i as u64);
            }
            match zc.send(buf) {
                Ok(progress) => {
                    *at += CHUNK as u64;
                    *sends += 1;
                    if progress != Progress::Complete {
                        return Ok(false); // the rest goes on the next event
                    }
                }
                Err(e) if e.is_retryable() => {
                    pool.extend(e.token);
                    // EAGAIN: wait for room; otherwise for completions.
                    return Ok(e.kind != SendErrorKind::WouldBlock);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    #[allow(dead_code)]
    /// Streams 16 MiB and prints what the loop did.
    pub fn main() -> Result<(), Box<dyn Error>> {
        let r = run(16 << 20)?;
        println!(
            "{} bytes checked; {} sends in {} wakeups",
            r.bytes, r.sends, r.wakeups
        );
        Ok(())
    }
}
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unused_imports)]
pub use imp::*;

#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[allow(dead_code)]
fn main() {
    eprintln!("this example needs Linux");
}
