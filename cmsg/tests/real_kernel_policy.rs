//! The send policy on the kernel of the machine running the tests
//! (loopback, where every `MSG_ZEROCOPY` completion is a deferred copy):
//! it falls back to copy after copied completions, probes again, and every
//! buffer comes back exactly once with every byte received intact. Every
//! test name says `real_kernel`.
#![cfg(all(feature = "std", target_os = "linux"))]

use msgzc_cmsg::policy::{PolicyConfig, PolicyStats, SendPolicy};
use msgzc_cmsg::sys::{Progress, ZcSender};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

const THRESHOLD: usize = 4096;
const COPIED_IN_A_ROW: u32 = 4;
const PROBE_AFTER_SENDS: u32 = 8;
const BUFFERS: u32 = 160;

/// A buffer that knows which it is.
#[derive(Debug)]
struct Buf {
    idx: u32,
    data: Vec<u8>,
}

impl AsRef<[u8]> for Buf {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// Buffer `idx`: every third one below the threshold, the others above;
/// bytes that differ per buffer and position.
fn buffer(idx: u32) -> Buf {
    let len = if idx % 3 == 0 {
        100 + (idx as usize * 37) % (THRESHOLD - 100)
    } else {
        THRESHOLD + (idx as usize * 997) % 12_000
    };
    let data = (0..len)
        .map(|i| (idx as usize * 31 + i * 7 + i / 251) as u8)
        .collect();
    Buf { idx, data }
}

fn policy() -> SendPolicy {
    SendPolicy::new(PolicyConfig {
        threshold: THRESHOLD,
        copied_in_a_row: COPIED_IN_A_ROW,
        probe_after_sends: PROBE_AFTER_SENDS,
        // Probes by count only, so the counts below are exact.
        probe_after: Duration::from_secs(3600),
    })
}

/// Sends every buffer through `zc`, `receive` checking each one's bytes
/// as the peer got them; waits for every completion after each send, so
/// that the policy sees each send's outcome before the next decision.
/// Returns how often each buffer came back.
fn run<F: AsFd>(zc: &mut ZcSender<F, Buf>, mut receive: impl FnMut(&Buf)) -> Vec<u32> {
    let mut back = vec![0u32; BUFFERS as usize];
    for idx in 0..BUFFERS {
        let buf = buffer(idx);
        let expected = buf.data.clone();
        let before = stats(zc);
        assert_eq!(zc.send(buf).unwrap(), Progress::Complete);
        let after = stats(zc);
        receive(&Buf {
            idx,
            data: expected,
        });
        let copied_now = after.below_threshold + after.copied_fallback
            > before.below_threshold + before.copied_fallback;
        if copied_now {
            // Sent by copy: ours again at once, no completion needed.
            let now: Vec<u32> = zc.completed().map(|b| b.idx).collect();
            assert_eq!(now, [idx], "a copied buffer comes back at once");
            back[idx as usize] += 1;
        }
        while zc.in_flight() > 0 {
            zc.wait(Some(Duration::from_secs(5))).unwrap();
            zc.drain(|other| panic!("unexpected {other:?}")).unwrap();
        }
        for b in zc.completed() {
            back[b.idx as usize] += 1;
        }
    }
    back
}

fn stats<F: AsFd>(zc: &ZcSender<F, Buf>) -> PolicyStats {
    zc.policy().expect("a policy was set").stats()
}

/// What the policy must have done, given that loopback copies every
/// completion and each send's completion arrived before the next send.
fn check(s: PolicyStats, copied_sends: u64, back: &[u32]) {
    assert!(
        back.iter().all(|&n| n == 1),
        "each buffer back once: {back:?}"
    );
    let small = (0..BUFFERS).filter(|i| i % 3 == 0).count() as u64;
    let big = u64::from(BUFFERS) - small;
    assert_eq!(s.below_threshold, small);
    assert_eq!(s.completions_zerocopy, 0, "loopback completions are copied");
    // Zerocopy until COPIED_IN_A_ROW copied completions, then by copy
    // with one probe per PROBE_AFTER_SENDS copies; no probe brings it back.
    assert_eq!(s.zerocopy, u64::from(COPIED_IN_A_ROW));
    assert_eq!((s.to_copy, s.to_zerocopy), (1, 0));
    let after_fallback = big - s.zerocopy;
    let per_probe = u64::from(PROBE_AFTER_SENDS) + 1;
    assert_eq!(s.probe, after_fallback / per_probe);
    assert!(s.probe >= 2, "probed more than once: {s:?}");
    assert_eq!(s.copied_fallback, after_fallback - s.probe);
    assert_eq!(s.completions_copied, s.zerocopy + s.probe);
    assert_eq!(copied_sends, s.below_threshold + s.copied_fallback);
}

#[test]
fn tcp_real_kernel_policy_falls_back_probes_and_returns_every_buffer_once() {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let stream = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut peer, _) = l.accept().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut zc = ZcSender::new(stream).unwrap().with_policy(policy());
    let back = run(&mut zc, |b| {
        let mut got = vec![0u8; b.data.len()];
        peer.read_exact(&mut got).unwrap();
        assert!(got == b.data, "buffer {} arrived intact", b.idx);
    });
    check(stats(&zc), zc.socket().syscalls().copied_sends, &back);
}

#[test]
fn udp_real_kernel_policy_falls_back_probes_and_returns_every_buffer_once() {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let rx = UdpSocket::bind(addr).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let tx = UdpSocket::bind(addr).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    let mut zc = ZcSender::new(tx).unwrap().with_policy(policy());
    let mut got = vec![0u8; 1 << 16];
    let back = run(&mut zc, |b| {
        let n = rx.recv(&mut got).unwrap();
        assert!(got[..n] == b.data[..], "datagram {} arrived intact", b.idx);
    });
    check(stats(&zc), zc.socket().syscalls().copied_sends, &back);
}

#[test]
fn tcp_real_kernel_policy_copy_taken_in_parts_comes_back_once_when_all_is_sent() {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let stream = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut peer, _) = l.accept().unwrap();
    stream.set_nonblocking(true).unwrap();
    // Far more than the socket buffers hold, and below the threshold: by
    // copy, and in parts while nobody reads.
    let len = 16 << 20;
    let mut zc = ZcSender::new(stream)
        .unwrap()
        .with_policy(SendPolicy::new(PolicyConfig {
            threshold: len + 1,
            ..PolicyConfig::DEFAULT
        }));
    let buf = Buf {
        idx: 7,
        data: (0..len).map(|i| (i % 251) as u8).collect(),
    };
    let expected = buf.data.clone();
    let Progress::Partial { sent } = zc.send(buf).unwrap() else {
        panic!("16 MiB taken at once by a socket nobody reads")
    };
    assert!(sent > 0 && sent < len);
    assert_eq!((zc.in_flight(), zc.completed().count()), (1, 0));
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; len];
        peer.read_exact(&mut got).map(|()| got)
    });
    while zc.flush().unwrap() != Progress::Complete {
        zc.wait_for(
            msgzc_cmsg::sys::Interest::WRITABLE,
            Some(Duration::from_secs(5)),
        )
        .unwrap();
    }
    let back: Vec<u32> = zc.completed().map(|b| b.idx).collect();
    assert_eq!(back, [7], "back once, without a completion");
    assert_eq!(zc.in_flight(), 0);
    assert!(
        reader.join().unwrap().unwrap() == expected,
        "every byte intact"
    );
    let s = stats(&zc);
    assert_eq!(
        (s.below_threshold, s.zerocopy, s.completions_copied),
        (1, 0, 0)
    );
    assert_eq!(zc.socket().tracker().next_id(), 0, "no MSG_ZEROCOPY send");
}
