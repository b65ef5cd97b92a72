//! Streams a file over TCP with MSG_ZEROCOPY from a fixed pool of buffers,
//! reusing a buffer only after the kernel has completed every send from it,
//! and switching to plain copying sends when the kernel keeps copying
//! anyway (always the case on loopback).
//!
//! `cargo run -p msgzc-cmsg --example zerocopy_file [PATH]` (default: a
//! generated 8 MiB file). The receiver is a thread on loopback that checks
//! the bytes.
//!
//! Linux only, like `msgzc_cmsg::sys`; elsewhere it says so and exits.

#[cfg(target_os = "linux")]
use msgzc_cmsg::sys::{Sent, ZcSocket};
#[cfg(target_os = "linux")]
use msgzc_cmsg::Advice;
#[cfg(target_os = "linux")]
use std::io::{Read, Write};
#[cfg(target_os = "linux")]
use std::net::{TcpListener, TcpStream};
#[cfg(target_os = "linux")]
use std::time::Duration;

#[cfg(target_os = "linux")]
const BUFS: usize = 8;
#[cfg(target_os = "linux")]
const BUF_SIZE: usize = 64 * 1024;

#[cfg(target_os = "linux")]
fn checksum(acc: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(acc, |a, &b| a.wrapping_mul(31).wrapping_add(u64::from(b)))
}

#[cfg(target_os = "linux")]
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

    // Buffer i is free when pending[i] == 0; each send from it holds one
    // count (a partial TCP send leads to several sends from one buffer).
    let mut pool = vec![vec![0u8; BUF_SIZE]; BUFS];
    let mut pending = [0usize; BUFS];
    let mut plain = peer.try_clone()?;
    let mut zc = ZcSocket::<_, usize, 256>::new(peer)?;
    let (mut offset, mut zc_sends, mut copy_sends, mut switched) = (0, 0u64, 0u64, false);
    while offset < data.len() {
        let Some(i) = (0..BUFS).find(|&i| pending[i] == 0) else {
            zc.wait(Some(Duration::from_secs(1)))?;
            zc.drain(
                |done| pending[done.token] -= 1,
                |item| eprintln!("error queue: {item:?}"),
            )?;
            continue;
        };
        let n = BUF_SIZE.min(data.len() - offset);
        pool[i][..n].copy_from_slice(&data[offset..offset + n]);
        offset += n;
        if zc.tracker().advice() == Advice::PreferCopy {
            if !switched {
                println!(
                    "kernel keeps copying ({} copied completions): switching to plain sends",
                    zc.tracker().stats().copied
                );
                switched = true;
            }
            plain.write_all(&pool[i][..n])?;
            copy_sends += 1;
            continue;
        }
        let mut sent = 0;
        while sent < n {
            match zc.send(&pool[i][sent..n], i) {
                Ok(Sent::Pending { bytes, .. }) => {
                    pending[i] += 1;
                    sent += bytes;
                    zc_sends += 1;
                }
                Ok(Sent::NotCounted(_)) => {}
                Err(e) if e.error.is_retryable() => {
                    zc.wait(Some(Duration::from_millis(10)))?;
                    zc.drain(|done| pending[done.token] -= 1, |_| {})?;
                }
                Err(e) => return Err(e.error.into()),
            }
        }
    }
    while zc.tracker().outstanding() > 0 {
        zc.wait(Some(Duration::from_secs(1)))?;
        zc.drain(|done| pending[done.token] -= 1, |_| {})?;
    }
    assert!(pending.iter().all(|&p| p == 0), "every buffer released");
    let stats = zc.tracker().stats();
    let calls = zc.syscalls();
    drop(plain);
    drop(zc);
    let (sum, total) = receiver.join().expect("receiver");
    assert_eq!(
        (sum, total),
        (checksum(0, &data), data.len()),
        "receiver got the exact bytes"
    );
    println!(
        "{} bytes: {zc_sends} zerocopy sends, {copy_sends} copying sends; completions: {} copied, {} zero-copied in {} ranges; syscalls: {} sendmsg, {} recvmmsg, {} poll",
        data.len(), stats.copied, stats.zerocopy, stats.ranges, calls.sendmsg, calls.recvmmsg, calls.poll
    );
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("zerocopy_file needs Linux: msgzc_cmsg::sys exists only there");
    std::process::exit(1);
}
