//! 8192 datagrams over UDP on the host kernel's loopback with owned
//! buffers; the receiver checks every byte and that each datagram came
//! once.

use msgzc_cmsg::sys::ZcSender;
use msgzc_downstream::fill;
use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const DATAGRAMS: u64 = 8192;
const LEN: usize = 1400;
/// Datagrams ahead of the receiver at most, so none overflows its receive
/// buffer (a zerocopy datagram on loopback is charged its pages, several
/// times its length, until the deferred copy).
const AHEAD: u64 = 16;

fn datagram(seq: u64, buf: &mut Vec<u8>) {
    buf.resize(LEN, 0);
    buf[..8].copy_from_slice(&seq.to_be_bytes());
    fill(&mut buf[8..], seq * LEN as u64);
}

#[test]
fn udp_8192_datagrams_real_kernel_owned_buffers_every_byte_checked() -> io::Result<()> {
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    tx.connect(rx.local_addr()?)?;
    rx.set_read_timeout(Some(Duration::from_secs(10)))?;
    let received = Arc::new(AtomicU64::new(0));
    let reader = {
        let received = received.clone();
        thread::spawn(move || -> io::Result<Vec<bool>> {
            let (mut seen, mut got, mut want) =
                (vec![false; DATAGRAMS as usize], [0u8; 2048], Vec::new());
            for _ in 0..DATAGRAMS {
                let n = rx.recv(&mut got).map_err(|e| {
                    let n = received.load(Ordering::Relaxed);
                    io::Error::new(e.kind(), format!("after {n} datagrams: {e}"))
                })?;
                let seq = u64::from_be_bytes(got[..8].try_into().unwrap());
                assert!(seq < DATAGRAMS, "bad sequence number {seq}");
                datagram(seq, &mut want);
                assert!(n == LEN && got[..n] == want[..], "datagram {seq} differs");
                assert!(!seen[seq as usize], "datagram {seq} twice");
                seen[seq as usize] = true;
                received.fetch_add(1, Ordering::Release);
            }
            Ok(seen)
        })
    };
    let mut zc = ZcSender::<_, Vec<u8>>::new(tx)?;
    let mut pool: Vec<Vec<u8>> = (0..2 * AHEAD).map(|_| Vec::with_capacity(LEN)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seq = 0;
    while seq < DATAGRAMS || zc.in_flight() > 0 {
        assert!(Instant::now() < deadline, "stalled at datagram {seq}");
        zc.drain(|item| panic!("unexpected {item:?}"))?;
        pool.extend(zc.completed());
        let ahead = seq - received.load(Ordering::Acquire);
        if seq == DATAGRAMS || ahead >= AHEAD || pool.is_empty() {
            zc.wait(Some(Duration::from_millis(1)))?;
            continue;
        }
        let mut buf = pool.pop().unwrap_or_default();
        datagram(seq, &mut buf);
        match zc.send(buf) {
            Ok(_) => seq += 1,
            Err(e) if e.is_retryable() => pool.extend(e.token),
            Err(e) => return Err(e.into()),
        }
    }
    pool.extend(zc.completed());
    assert_eq!(pool.len() as u64, 2 * AHEAD, "every buffer came back");
    let seen = reader.join().unwrap()?;
    assert!(seen.iter().all(|&s| s));
    let s = zc.socket().tracker().stats();
    assert_eq!(s.sent + zc.socket().syscalls().copied_sends, DATAGRAMS);
    Ok(())
}
