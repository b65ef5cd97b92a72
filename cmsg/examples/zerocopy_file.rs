//! Streams a file over TCP with MSG_ZEROCOPY from a fixed pool of owned
//! buffers: each buffer goes to the sender and comes back only when the
//! kernel has completed every send from it, then is refilled. When the
//! kernel keeps copying anyway (always the case on loopback) it switches
//! to plain copying sends; when the option memory for zerocopy runs out
//! with nothing in flight (`optmem_max` 0) the sender copies by itself.
//!
//! `cargo run -p msgzc-cmsg --example zerocopy_file [PATH]` (default: a
//! generated 8 MiB file). The receiver is a thread on loopback that checks
//! the bytes.
//!
//! Linux only, like `msgzc_cmsg::sys`; elsewhere it says so and exits.

#[cfg(any(target_os = "linux", target_os = "android"))]
use msgzc_cmsg::sys::{Progress, ZcSender};
#[cfg(any(target_os = "linux", target_os = "android"))]
use msgzc_cmsg::Advice;
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::io::Read;
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::net::{TcpListener, TcpStream};
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::time::Duration;

#[cfg(any(target_os = "linux", target_os = "android"))]
const BUFS: usize = 8;
#[cfg(any(target_os = "linux", target_os = "android"))]
const BUF_SIZE: usize = 64 * 1024;

#[cfg(any(target_os = "linux", target_os = "android"))]
fn checksum(acc: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(acc, |a, &b| a.wrapping_mul(31).wrapping_add(u64::from(b)))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn main() -> std::io::Result<()> {
    let data = match std::env::args().nth(1) {
        Some(path) => std::fs::read(path)?,
        None => (0..8 << 20)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect(),
    };
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let peer = TcpStream::connect(listener.local_addr()?)?;
    let (mut rx, _) = listener.accept()?;
    let receiver = std::thread::spawn(move || {
        let (mut sum, mut total, mut buf) = (0u64, 0usize, vec![0u8; BUF_SIZE]);
        loop {
            match rx.read(&mut buf) {
                Ok(0) | Err(_) => return (sum, total),
                Ok(n) => {
                    sum = checksum(sum, &buf[..n]);
                    total += n;
                }
            }
        }
    });

    let mut pool: Vec<Vec<u8>> = (0..BUFS).map(|_| Vec::with_capacity(BUF_SIZE)).collect();
    let mut zc = ZcSender::<_, Vec<u8>>::new(peer)?;
    let (mut offset, mut switched) = (0, false);
    while offset < data.len() {
        let Some(mut buf) = pool.pop() else {
            // Every buffer is in flight: wait for completions.
            zc.wait(Some(Duration::from_secs(1)))?;
            zc.drain(|item| eprintln!("error queue: {item:?}"))?;
            pool.extend(zc.completed());
            continue;
        };
        let n = BUF_SIZE.min(data.len() - offset);
        buf.clear();
        buf.extend_from_slice(&data[offset..offset + n]);
        offset += n;
        if zc.socket().tracker().advice() == Advice::PreferCopy {
            if !switched {
                let copied = zc.socket().tracker().stats().copied;
                println!("kernel keeps copying ({copied} copied completions): plain sends");
                switched = true;
            }
            zc.send_copy(&buf)?;
            pool.push(buf);
            continue;
        }
        let mut next = Some(buf);
        while let Some(buf) = next.take() {
            match zc.send(buf) {
                Ok(Progress::Complete) => {}
                // Stream order: the rest goes out before anything else.
                Ok(_) => {
                    while zc.flush()? != Progress::Complete {
                        zc.wait(Some(Duration::from_millis(10)))?;
                        zc.drain(|_| {})?;
                    }
                }
                Err(e) if e.is_retryable() => {
                    zc.wait(Some(Duration::from_millis(10)))?;
                    zc.drain(|_| {})?;
                    next = e.token;
                }
                Err(e) => return Err(e.into()),
            }
        }
        pool.extend(zc.completed());
    }
    while zc.in_flight() > 0 {
        zc.wait(Some(Duration::from_secs(1)))?;
        zc.drain(|_| {})?;
    }
    pool.extend(zc.completed());
    assert_eq!(pool.len(), BUFS, "every buffer came back");
    let stats = zc.socket().tracker().stats();
    let calls = zc.socket().syscalls();
    drop(zc);
    let (sum, total) = receiver.join().expect("receiver");
    assert_eq!(
        (sum, total),
        (checksum(0, &data), data.len()),
        "receiver got the exact bytes"
    );
    println!(
        "{} bytes: {} zerocopy sends, {} copying sends; completions: {} copied, {} zero-copied in {} ranges; syscalls: {} sendmsg, {} recvmmsg, {} poll",
        data.len(), stats.sent, calls.copied_sends, stats.copied, stats.zerocopy, stats.ranges, calls.sendmsg, calls.recvmmsg, calls.poll
    );
    Ok(())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn main() {
    eprintln!("zerocopy_file needs Linux: msgzc_cmsg::sys exists only there");
    std::process::exit(1);
}
