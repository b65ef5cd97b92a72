//! Streams 64 MiB over loopback TCP from a tokio task with
//! `AsyncZcSender`, reusing a pool of eight 64 KiB buffers as they come
//! back, while another task reads and checks every byte.
//!
//! `cargo run --example tokio_stream --features tokio`
//!
//! Linux (and Android) only: elsewhere `msgzc_cmsg::sys` does not exist.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use msgzc_cmsg::sys::tokio::{AsyncZcSender, WaitCounts};
    use msgzc_cmsg::sys::SyscallCounts;
    use std::error::Error;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// Buffers in the pool, and bytes in each.
    const POOL: usize = 8;
    const CHUNK: usize = 64 << 10;

    /// The byte at stream offset `at`: a pattern that catches reordered,
    /// repeated or dropped chunks (it does not repeat every `CHUNK` bytes).
    pub fn byte_at(at: u64) -> u8 {
        (at.wrapping_mul(0x9e37_79b9) >> 13) as u8 ^ (at >> 16) as u8
    }

    /// What one run did.
    #[derive(Debug)]
    pub struct Streamed {
        /// Bytes the reader received, each checked.
        pub bytes: u64,
        /// Buffers sent.
        pub sends: u64,
        /// The sender's system calls.
        pub syscalls: SyscallCounts,
        /// The sender's wakeups.
        pub waits: WaitCounts,
    }

    /// Streams `total` bytes (a multiple of 64 KiB) and checks them.
    pub async fn stream(total: u64) -> Result<Streamed, Box<dyn Error + Send + Sync>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let stream = TcpStream::connect(listener.local_addr()?).await?;
        let (peer, _) = listener.accept().await?;
        let reader = tokio::spawn(check_all(peer));

        let mut zc = AsyncZcSender::new(stream)?;
        let mut pool: Vec<Vec<u8>> = (0..POOL).map(|_| vec![0; CHUNK]).collect();
        let (mut at, mut sends) = (0u64, 0u64);
        while at < total {
            let mut buf = match pool.pop() {
                Some(buf) => buf,
                // Every buffer is in flight: wait for one to come back.
                None => zc.next_completed().await?.ok_or("no buffer in flight")?,
            };
            for (i, b) in buf.iter_mut().enumerate() {
                *b = byte_at(at + i as u64);
            }
            zc.send(buf).await?;
            at += CHUNK as u64;
            sends += 1;
            pool.extend(zc.completed()?);
        }
        while let Some(buf) = zc.next_completed().await? {
            pool.push(buf);
        }
        let (syscalls, waits) = (zc.sender().socket().syscalls(), zc.wait_counts());
        let closed = zc.close(std::time::Duration::from_secs(5)).await;
        if pool.len() != POOL || !closed.unconfirmed.is_empty() {
            return Err(format!("{} of {POOL} buffers came back", pool.len()).into());
        }
        let bytes = reader.await??;
        Ok(Streamed {
            bytes,
            sends,
            syscalls,
            waits,
        })
    }

    /// Reads to the end, checking every byte against [`byte_at`].
    async fn check_all(mut peer: TcpStream) -> Result<u64, Box<dyn Error + Send + Sync>> {
        let mut buf = vec![0u8; 256 << 10];
        let mut at = 0u64;
        loop {
            let n = peer.read(&mut buf).await?;
            if n == 0 {
                return Ok(at);
            }
            if let Some(i) = (0..n).find(|&i| buf[i] != byte_at(at + i as u64)) {
                return Err(format!("byte {} is wrong", at + i as u64).into());
            }
            at += n as u64;
        }
    }

    #[allow(dead_code)]
    #[tokio::main]
    /// Streams 64 MiB and prints what the sender did.
    pub async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
        let s = stream(64 << 20).await?;
        println!(
            "{} bytes checked; {} sends, {} sendmsg, {} recvmmsg, {} wakeups ({} stale)",
            s.bytes,
            s.sends,
            s.syscalls.sendmsg,
            s.syscalls.recvmmsg,
            s.waits.wakeups,
            s.waits.empty
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
