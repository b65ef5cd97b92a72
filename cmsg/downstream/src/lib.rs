//! What a downstream user of `msgzc-cmsg` writes: a pool of owned buffers
//! streamed over a socket with [`ZcSender`], each buffer refilled only
//! after it came back. The tests stream real data through the host
//! kernel and check every byte.

use msgzc_cmsg::sys::{Interest, Progress, ZcSender};
use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// The byte at `offset` of a test stream: never constant, so a reused or
/// misplaced buffer shows.
pub fn byte_at(offset: u64) -> u8 {
    (offset.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (offset >> 20) as u8
}

/// Fills `buf` with the stream's bytes from `offset`.
pub fn fill(buf: &mut [u8], offset: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = byte_at(offset + i as u64);
    }
}

/// Counters of one [`stream`] run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Streamed {
    /// Buffers sent.
    pub buffers: u64,
    /// Sends a stream socket took only in part.
    pub partial: u64,
    /// Times the sender waited for room or completions.
    pub waits: u64,
}

/// Streams `total` bytes of the test stream over `zc` from a pool of
/// `pool` buffers of `size` bytes each, refilling a buffer only once the
/// sender gave it back; waits for every buffer before returning.
pub fn stream<F: AsFd>(
    zc: &mut ZcSender<F, Vec<u8>>,
    total: u64,
    pool: usize,
    size: usize,
) -> io::Result<Streamed> {
    let mut free: Vec<Vec<u8>> = (0..pool).map(|_| vec![0u8; size]).collect();
    let (mut offset, mut n) = (0u64, Streamed::default());
    let deadline = Instant::now() + Duration::from_secs(120);
    while offset < total || zc.in_flight() > 0 {
        if Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "stream stalled"));
        }
        free.extend(zc.completed());
        if zc.flush()? != Progress::Complete || offset >= total || free.is_empty() {
            n.waits += 1;
            let r = zc.wait_for(Interest::WRITABLE, Some(Duration::from_millis(20)))?;
            if r.error_queue || offset >= total || free.is_empty() {
                zc.drain(|item| panic!("unexpected error-queue item {item:?}"))?;
            }
            continue;
        }
        let mut buf = free.pop().unwrap_or_default();
        let len = size.min((total - offset) as usize);
        buf.resize(len, 0);
        fill(&mut buf, offset);
        match zc.send(buf) {
            Ok(p) => {
                offset += len as u64;
                n.buffers += 1;
                n.partial += u64::from(p != Progress::Complete);
            }
            Err(e) if e.is_retryable() => free.extend(e.token),
            Err(e) => return Err(e.into()),
        }
    }
    free.extend(zc.completed());
    assert_eq!(free.len(), pool, "every buffer came back");
    Ok(n)
}
