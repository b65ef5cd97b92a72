//! Integration tests against the kernel of the machine running them
//! (loopback only). Every test name says `real_kernel`.
//!
//! Loopback completes every `MSG_ZEROCOPY` send by a deferred copy, so all
//! completions here must carry the copied flag.
#![cfg(all(feature = "std", target_os = "linux"))]

mod common;

use msgzc_abi::ErrOrigin;
use msgzc_cmsg::sys::{
    self, Fallback, NotifyMode, Released, SendErrorKind, Sent, ZcSocket, NATIVE,
};
use msgzc_cmsg::{decode_errqueue, Advice, ErrqueueItem, MsgFlags, WalkErrorKind, Walker};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::thread;
use std::time::{Duration, Instant};

const SENDS: u32 = 200;

fn loopback(v6: bool) -> Option<SocketAddr> {
    let addr = if v6 {
        SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
    } else {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    };
    match UdpSocket::bind(addr) {
        Ok(_) => Some(addr),
        Err(e) => {
            println!("SKIP: {addr} unavailable on this machine: {e}");
            None
        }
    }
}

/// A connected TCP pair whose receiving end is drained by a thread.
fn tcp_pair(addr: SocketAddr) -> (TcpStream, thread::JoinHandle<usize>) {
    let l = TcpListener::bind(addr).unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut s, _) = l.accept().unwrap();
    let reader = thread::spawn(move || {
        let mut total = 0;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    });
    (c, reader)
}

fn udp_pair(addr: SocketAddr) -> (UdpSocket, UdpSocket) {
    let rx = UdpSocket::bind(addr).unwrap();
    let tx = UdpSocket::bind(addr).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    (tx, rx)
}

fn record(released: &mut BTreeMap<u32, (u32, bool)>, r: Released<u32>) {
    assert!(
        released.insert(r.token, (r.id, r.copied)).is_none(),
        "token {} released twice",
        r.token
    );
}

/// Sends `SENDS` buffers, then checks every token came back once, in id
/// order, copied. An empty send first: TCP does not count it, UDP does (a
/// zero-payload datagram is still a datagram).
fn every_send_completed_once<F: AsFd>(sock: F, stream: bool) {
    let mut zc = ZcSocket::<_, u32>::new(sock).unwrap_or_else(|e| panic!("{e}"));
    let data = vec![0x5au8; 4096];
    let mut released = BTreeMap::new();
    let first = if stream {
        assert_eq!(zc.send(&[], 9999).unwrap(), Sent::NotCounted(9999));
        0
    } else {
        assert_eq!(zc.send(&[], 0).unwrap(), Sent::Pending { bytes: 0, id: 0 });
        1
    };
    for token in first..SENDS {
        let len = 1 + (token as usize * 37) % data.len();
        match zc.send(&data[..len], token) {
            Ok(Sent::Pending { bytes, id }) => {
                assert_eq!(bytes, len);
                assert_eq!(id, token, "the kernel's counter and ours agree");
            }
            other => panic!("send {token}: {other:?}"),
        }
        if token % 50 == 49 {
            zc.drain(|r| record(&mut released, r), |i| panic!("{i:?}"))
                .unwrap();
        }
    }
    common::drain_all(&mut zc, |r| record(&mut released, r));
    assert_eq!(released.len(), SENDS as usize);
    for (token, (id, copied)) in &released {
        assert_eq!(token, id);
        assert!(copied, "loopback completions are deferred copies");
    }
    let s = zc.tracker().stats();
    assert_eq!(
        (s.sent, s.copied, s.zerocopy),
        (u64::from(SENDS), u64::from(SENDS), 0)
    );
    assert_eq!(zc.tracker().advice(), Advice::PreferCopy);
    assert!(zc.syscalls().sendmsg >= u64::from(SENDS));
}

#[test]
fn tcp_ipv4_real_kernel_every_send_completed_once() {
    let (c, reader) = tcp_pair(loopback(false).unwrap());
    every_send_completed_once(c.try_clone().unwrap(), true);
    drop(c);
    assert!(reader.join().unwrap() > 0);
}

#[test]
fn tcp_ipv6_real_kernel_every_send_completed_once() {
    let Some(addr) = loopback(true) else { return };
    let (c, reader) = tcp_pair(addr);
    every_send_completed_once(c.try_clone().unwrap(), true);
    drop(c);
    assert!(reader.join().unwrap() > 0);
}

#[test]
fn udp_ipv4_real_kernel_every_send_completed_once() {
    let (tx, _rx) = udp_pair(loopback(false).unwrap());
    every_send_completed_once(tx, false);
}

#[test]
fn udp_ipv6_real_kernel_every_send_completed_once() {
    let Some(addr) = loopback(true) else { return };
    let (tx, _rx) = udp_pair(addr);
    every_send_completed_once(tx, false);
}

/// This kernel has no `SCM_ZC_NOTIFICATION`: the probe must fall back to
/// the error queue, still send the data, and produce no bogus completion.
/// Mixing `send_notify` and `send` on one socket (hybrid) stays exact.
#[test]
fn scm_zc_notification_probe_real_kernel_unsupported_and_hybrid() {
    for v6 in [false, true] {
        let Some(addr) = loopback(v6) else { continue };
        let (tx, rx) = udp_pair(addr);
        let mut zc = ZcSocket::<_, u32>::new(tx).unwrap();
        assert_eq!(zc.mode(), NotifyMode::Unprobed);
        let mut released = BTreeMap::new();
        let data = [1u8; 512];
        for token in 0..40u32 {
            let out = if token % 2 == 0 {
                zc.send_notify(&data, token, 16, |r| record(&mut released, r))
                    .unwrap()
            } else {
                let sent = zc.send(&data, token).unwrap();
                sys::SentNotify {
                    sent,
                    inline: 0,
                    rejected: None,
                }
            };
            assert_eq!(
                out.sent,
                Sent::Pending {
                    bytes: data.len(),
                    id: token
                }
            );
            assert_eq!(
                (out.inline, out.rejected),
                (0, None),
                "no inline completions without kernel support"
            );
        }
        assert_eq!(zc.mode(), NotifyMode::ErrorQueue(Fallback::Rejected));
        common::drain_all(&mut zc, |r| record(&mut released, r));
        assert_eq!(released.len(), 40);
        // Every datagram arrived once (the placeholder send was retried
        // without the placeholder, not duplicated).
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 1024];
        for _ in 0..40 {
            assert_eq!(rx.recv(&mut buf).unwrap(), data.len());
        }
        rx.set_nonblocking(true).unwrap();
        assert!(rx.recv(&mut buf).is_err(), "no duplicate datagram");
    }
}

/// A `send_notify` that fails before the kernel reads its control messages
/// (a datagram over 64 KiB: `EMSGSIZE`) keeps its token, releases nothing
/// and leaves the socket unprobed; the next one probes as usual, and every
/// send that did go out completes once, inline or on the error queue.
#[test]
fn failed_send_notify_real_kernel_keeps_the_socket_unprobed() {
    let (tx, _rx) = udp_pair(loopback(false).unwrap());
    let mut zc = ZcSocket::<_, u32>::new(tx).unwrap();
    let mut released = BTreeMap::new();
    let big = vec![0u8; 70_000];
    let e = zc
        .send_notify(&big, 99, 16, |r| record(&mut released, r))
        .unwrap_err();
    // A failed datagram send is in doubt until settled; with nothing else
    // in flight the next drain settles it as never counted.
    assert!(
        matches!(e.kind, SendErrorKind::InDoubt { id: 0, .. }),
        "{e}"
    );
    assert_eq!(
        (e.errno(), e.token, e.inline),
        (Some(libc::EMSGSIZE), None, 0)
    );
    assert_eq!(zc.mode(), NotifyMode::Unprobed);
    let mut back = Vec::new();
    zc.drain(|r| back.push((r.token, r.counted)), |i| panic!("{i:?}"))
        .unwrap();
    assert_eq!(back, [(99, false)]);
    let data = [3u8; 256];
    for token in 0..8u32 {
        let out = zc
            .send_notify(&data, token, 16, |r| record(&mut released, r))
            .unwrap();
        assert_eq!(
            out.sent,
            Sent::Pending {
                bytes: 256,
                id: token
            }
        );
        assert_eq!(out.rejected, None);
    }
    assert!(matches!(
        zc.mode(),
        NotifyMode::Inline | NotifyMode::ErrorQueue(Fallback::Rejected)
    ));
    common::drain_all(&mut zc, |r| record(&mut released, r));
    assert_eq!(released.len(), 8);
    assert!(released.iter().all(|(t, (id, _))| t == id));
}

/// A `send_notify` that fails after the kernel read its control messages
/// (`EAGAIN`: a non-blocking TCP socket whose send buffer is full). A
/// kernel with `SCM_ZC_NOTIFICATION` has then taken the queued completions
/// and copied them back anyway: they are released although the call
/// fails. One without refuses the placeholder, and the data sent again
/// without it meets the same `EAGAIN`. Either way the failed send's token
/// comes back and takes no id.
#[test]
fn send_notify_failing_after_the_control_messages_real_kernel_loses_no_completion() {
    let l = TcpListener::bind(loopback(false).unwrap()).unwrap();
    let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (_unread, _) = l.accept().unwrap();
    let mut zc = ZcSocket::<_, u32>::new(c.try_clone().unwrap()).unwrap();
    let mut released = BTreeMap::new();
    for token in 0..4 {
        zc.send(&[1u8; 100], token).unwrap();
    }
    // At least one completion queued (loopback: on ACK), none taken.
    assert!(zc.wait(Some(Duration::from_secs(5))).unwrap().error_queue);
    c.set_nonblocking(true).unwrap();
    let chunk = vec![0u8; 1 << 16];
    while c.write(&chunk).is_ok() {}
    let e = zc
        .send_notify(&[2u8; 100], 99, 16, |r| record(&mut released, r))
        .unwrap_err();
    assert_eq!((e.kind, e.token), (SendErrorKind::WouldBlock, Some(99)));
    assert_eq!(e.rejected, None);
    assert_eq!(zc.tracker().next_id(), 4, "the failed send took no id");
    match zc.mode() {
        NotifyMode::Inline => {
            assert_eq!(e.inline, released.len());
            assert!(e.inline > 0, "a written placeholder returned nothing");
        }
        mode => {
            assert_eq!(mode, NotifyMode::ErrorQueue(Fallback::Rejected));
            assert_eq!(e.inline, 0);
            assert!(released.is_empty());
        }
    }
    common::drain_all(&mut zc, |r| record(&mut released, r));
    assert_eq!(released.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 3]);
}

/// A control buffer too small for the error-queue message: the kernel sets
/// `MSG_CTRUNC`, and the walker ends with `Truncated`.
#[test]
fn truncated_errqueue_control_real_kernel_reports_ctrunc() {
    let (tx, _rx) = udp_pair(loopback(false).unwrap());
    let mut zc = ZcSocket::<_, u32>::with_window(tx, 4).unwrap();
    zc.send(&[7u8; 100], 0).unwrap();
    let fd = zc.get_ref().as_fd();
    let l = NATIVE.cmsg();
    let mut control = msgzc_cmsg::ControlBuf::<64>::new();
    let small = &mut control.as_mut_bytes()[..l.header_size() + 4];
    let deadline = Instant::now() + Duration::from_secs(5);
    let (len, flags) = loop {
        match sys::recv_errqueue(fd, small) {
            Ok(r) => break r,
            Err(e) if e.errno == libc::EAGAIN && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(flags.contains(MsgFlags::CTRUNC), "flags {flags:?}");
    let items: Vec<_> = Walker::new(NATIVE, small, len, flags).collect();
    let last = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(last.kind, WalkErrorKind::Truncated);
    // The cut message, if the kernel wrote one, does not decode as a
    // completion.
    for m in items.iter().filter_map(|m| m.as_ref().ok()) {
        assert!(decode_errqueue(NATIVE, m).is_err());
    }
}

/// An ICMP port-unreachable lands on the error queue beside the completion
/// and reaches the caller as a typed item.
#[test]
fn icmp_error_real_kernel_is_a_typed_item() {
    let closed = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    tx.connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    sys::enable_recverr(tx.as_fd(), false).unwrap();
    let mut zc = ZcSocket::<_, u32>::with_window(tx, 4).unwrap();
    zc.send(&[3u8; 64], 0).unwrap();
    let mut icmp = Vec::new();
    let mut released = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while icmp.is_empty() || zc.tracker().outstanding() > 0 {
        assert!(Instant::now() < deadline, "no ICMP error or completion");
        zc.wait(Some(Duration::from_millis(100))).unwrap();
        zc.drain(
            |r| record(&mut released, r),
            |item| match item {
                ErrqueueItem::Extended(e) => icmp.push((e.errno, e.origin(), e.ty, e.code)),
                other => panic!("{other:?}"),
            },
        )
        .unwrap();
    }
    // The target's own number (146 on mips, 239 on parisc), checked
    // against the generic family's where that is the target's.
    let econnrefused = libc::ECONNREFUSED as u32;
    if NATIVE.family == msgzc_abi::Family::Generic {
        assert_eq!(econnrefused, 111);
    }
    // ICMP destination unreachable (3), port unreachable (3).
    assert_eq!(icmp, [(econnrefused, Some(ErrOrigin::Icmp), 3, 3)]);
    assert_eq!(released.len(), 1);
}

/// `ENOBUFS` when the socket's option-memory budget is exhausted: on a
/// datagram socket the errno cannot tell this (the kernel gave the id
/// back) from a dropped packet (it kept it), so the send is in doubt and
/// the socket keeps the token; the next drain, with nothing else in flight
/// and nothing queued, settles it as never counted and hands the token
/// back, and the id goes to the next send. `net.core.optmem_max` is per
/// network namespace on current kernels, so the test makes its own
/// namespace (root only).
#[test]
fn enobufs_real_kernel_udp_send_in_doubt_is_settled_by_the_next_drain() {
    let outcome = thread::spawn(|| {
        // SAFETY: unshare affects only this thread, which owns nothing
        // that depends on the old namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(format!(
                "unshare(CLONE_NEWNET): {}",
                std::io::Error::last_os_error()
            ));
        }
        sys::loopback_up().map_err(|e| e.to_string())?;
        let optmem = "/proc/sys/net/core/optmem_max";
        let old = std::fs::read_to_string(optmem).map_err(|e| format!("{optmem}: {e}"))?;
        let (tx, _rx) = udp_pair(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let mut zc = ZcSocket::<_, u32>::with_window(tx, 8).unwrap();
        std::fs::write(optmem, "0").unwrap();
        let err = zc.send(&[1u8; 256], 42).unwrap_err();
        std::fs::write(optmem, old.trim()).unwrap();
        assert_eq!(err.errno(), Some(NATIVE.family.errno().enobufs), "{err}");
        assert!(matches!(err.kind, SendErrorKind::InDoubt { id: 0, .. }));
        assert_eq!((err.token, zc.tracker().in_doubt()), (None, Some(0)));
        // While in doubt the data goes by copy, and the token comes back.
        assert!(matches!(
            zc.send(&[2u8; 256], 7),
            Ok(Sent::Copied {
                bytes: 256,
                token: 7
            })
        ));
        let mut back = Vec::new();
        zc.drain(|r| back.push((r.token, r.counted)), |i| panic!("{i:?}"))
            .unwrap();
        assert_eq!(back, [(42, false)]);
        assert_eq!(zc.tracker().next_id(), 0, "the id went back");
        assert_eq!(
            zc.send(&[1u8; 256], 43).unwrap(),
            Sent::Pending { bytes: 256, id: 0 }
        );
        let mut released = BTreeMap::new();
        common::drain_all(&mut zc, |r| record(&mut released, r));
        assert_eq!(released.keys().copied().collect::<Vec<_>>(), [43]);
        Ok(())
    })
    .join()
    .unwrap();
    if let Err(why) = outcome {
        println!("SKIP: ENOBUFS test needs a private network namespace: {why}");
    }
}
