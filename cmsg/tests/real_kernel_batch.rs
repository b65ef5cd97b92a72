//! `sendmmsg` and `UDP_SEGMENT` with `MSG_ZEROCOPY` against the kernel of
//! the machine running them (loopback only): every byte each receiver gets
//! and every completion, id by id. Every test name says `real_kernel`.
//!
//! Receivers get a large buffer (`SO_RCVBUFFORCE`, root) so that no
//! datagram of a batch is dropped before it is read; without root the
//! tests that need one say SKIP.
#![cfg(all(feature = "std", target_os = "linux"))]

mod common;

use msgzc_cmsg::sys::{
    BatchStop, Datagram, Fallback, NotifyMode, OwnedDatagram, Released, SendErrorKind, Sent,
    ZcSender, ZcSocket, NATIVE,
};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// What came back for one token: `(id, copied, counted)`.
type Back = BTreeMap<u32, (u32, bool, bool)>;

fn record(back: &mut Back, r: Released<u32>) {
    let prev = back.insert(r.token, (r.id, r.copied, r.counted));
    assert!(prev.is_none(), "token {} released twice", r.token);
}

fn loopback(v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
    } else {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    }
}

/// A receiver with a 64 MiB buffer, or `None` (said) without root.
fn receiver(addr: SocketAddr) -> Option<UdpSocket> {
    let rx = UdpSocket::bind(addr).unwrap();
    let size: libc::c_int = 64 << 20;
    // SAFETY: setsockopt reads one c_int that outlives the call.
    let r = unsafe {
        libc::setsockopt(
            rx.as_raw_fd(),
            // Not libc's: 0.2.190 and later give mips64 the generic
            // SOL_SOCKET. SO_RCVBUFFORCE is 33 in every family.
            msgzc_cmsg::sys::NATIVE.family.socket().sol_socket,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        println!("SKIP: SO_RCVBUFFORCE needs CAP_NET_ADMIN: {e}");
        return None;
    }
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    Some(rx)
}

/// Datagram `i`'s payload: its length varies (0 for `i = 0`), its bytes
/// say which datagram and which offset they are.
fn payload(i: usize) -> Vec<u8> {
    let len = (i * 37) % 1400;
    (0..len)
        .map(|j| (i * 7 + j * 13 + (j >> 8)) as u8)
        .collect()
}

/// Reads one datagram and requires exactly `want`.
fn expect(rx: &UdpSocket, want: &[u8], what: &str) {
    let mut buf = vec![0u8; 65536];
    let n = rx.recv(&mut buf).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(&buf[..n], want, "{what}");
}

/// Nothing more to read.
fn expect_nothing(rx: &UdpSocket) {
    rx.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    let r = rx.recv(&mut buf);
    assert!(r.is_err(), "unexpected datagram of {:?} bytes", r.ok());
    rx.set_nonblocking(false).unwrap();
}

/// Batches of several sizes on a connected socket, beyond `UIO_MAXIOV`:
/// each datagram arrives intact and in order, and each token comes back
/// once under the id the kernel gave its datagram (`first_id + k`).
fn connected_batches(v6: bool) {
    let Some(rx) = receiver(loopback(v6)) else {
        return;
    };
    let tx = UdpSocket::bind(loopback(v6)).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    let mut zc = ZcSocket::<_, u32>::with_window(tx, 4096).unwrap();
    let max = NATIVE.numbers().uio_maxiov as usize;
    let mut next = 0u32;
    for size in [1, 2, 31, 64, max, max + 1, 2 * max + 452] {
        let data: Vec<Vec<u8>> = (0..size).map(payload).collect();
        let batch = data
            .iter()
            .enumerate()
            .map(|(i, d)| Datagram::new(&d[..], next + i as u32))
            .collect();
        let calls = zc.syscalls().sendmmsg;
        let r = zc.send_batch(batch);
        assert_eq!(
            (r.sent, r.stop, r.unsent.len()),
            (size, None, 0),
            "size {size}"
        );
        assert_eq!(r.first_id, Some(next));
        assert_eq!(r.bytes, data.iter().map(Vec::len).sum::<usize>());
        assert!(r.copied.is_empty());
        assert_eq!(zc.syscalls().sendmmsg - calls, size.div_ceil(max) as u64);
        for (i, d) in data.iter().enumerate() {
            expect(&rx, d, &format!("size {size}, datagram {i}"));
        }
        let mut back = Back::new();
        common::drain_all(&mut zc, |r| record(&mut back, r));
        assert_eq!(back.len(), size);
        for (token, (id, copied, counted)) in back {
            assert_eq!(token, id, "the kernel's ids and ours agree");
            assert!(
                copied && counted,
                "loopback completions are deferred copies"
            );
        }
        next += size as u32;
    }
    expect_nothing(&rx);
    assert_eq!(zc.tracker().next_id(), next);
}

#[test]
fn sendmmsg_ipv4_real_kernel_connected_batches_every_byte_and_id() {
    connected_batches(false);
}

#[test]
fn sendmmsg_ipv6_real_kernel_connected_batches_every_byte_and_id() {
    connected_batches(true);
}

/// An unconnected socket sending one batch to three receivers in turn,
/// some datagrams cut by `UDP_SEGMENT`: each receiver gets its own
/// datagrams (a segmented one as several), every byte, in order; one id
/// per entry, segmented or not.
fn mixed_destinations(v6: bool) {
    let rxs: Vec<UdpSocket> = match (0..3).map(|_| receiver(loopback(v6))).collect() {
        Some(r) => r,
        None => return,
    };
    let to: Vec<SocketAddr> = rxs.iter().map(|r| r.local_addr().unwrap()).collect();
    let tx = UdpSocket::bind(loopback(v6)).unwrap();
    let mut zc = ZcSocket::<_, u32>::new(tx).unwrap();
    const N: usize = 90;
    // Every fifth entry is 3.5 segments of 400 bytes.
    let gso = |i: usize| i % 5 == 4;
    let data: Vec<Vec<u8>> = (0..N)
        .map(|i| match gso(i) {
            true => (0..1400).map(|j| (i + j * 3) as u8).collect(),
            false => payload(i),
        })
        .collect();
    let batch = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let g = Datagram::new(&d[..], i as u32).to(to[i % 3]);
            if gso(i) {
                g.segment(400)
            } else {
                g
            }
        })
        .collect();
    let r = zc.send_batch(batch);
    assert_eq!((r.sent, r.first_id, r.stop), (N, Some(0), None));
    assert_eq!(zc.syscalls().sendmmsg, 1);
    for (k, rx) in rxs.iter().enumerate() {
        for (i, d) in data.iter().enumerate().filter(|(i, _)| i % 3 == k) {
            let what = format!("receiver {k}, entry {i}");
            if gso(i) {
                for (s, seg) in d.chunks(400).enumerate() {
                    expect(rx, seg, &format!("{what}, segment {s}"));
                }
            } else {
                expect(rx, d, &what);
            }
        }
        expect_nothing(rx);
    }
    let mut back = Back::new();
    common::drain_all(&mut zc, |r| record(&mut back, r));
    let want: Back = (0..N as u32).map(|i| (i, (i, true, true))).collect();
    assert_eq!(back, want);
}

#[test]
fn sendmmsg_ipv4_real_kernel_mixed_destinations_and_segments() {
    mixed_destinations(false);
}

#[test]
fn sendmmsg_ipv6_real_kernel_mixed_destinations_and_segments() {
    mixed_destinations(true);
}

/// `UDP_SEGMENT` on a connected socket: one send, one id, and the
/// receiver sees each segment as a datagram of its own.
#[test]
fn gso_real_kernel_one_send_one_id_many_datagrams() {
    for v6 in [false, true] {
        let Some(rx) = receiver(loopback(v6)) else {
            return;
        };
        let tx = UdpSocket::bind(loopback(v6)).unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let mut zc = ZcSocket::<_, u32>::new(tx).unwrap();
        let mut back = Back::new();
        for (k, (len, seg)) in [(10_500, 1000), (1000, 1000), (64_000, 1400), (7, 3)]
            .into_iter()
            .enumerate()
        {
            let data: Vec<u8> = (0..len).map(|j| (j * 31 + k) as u8).collect();
            let sent = zc.send_gso(&data, seg, k as u32).unwrap();
            assert_eq!(
                sent,
                Sent::Pending {
                    bytes: len,
                    id: k as u32
                }
            );
            for (s, want) in data.chunks(seg as usize).enumerate() {
                expect(&rx, want, &format!("send {k}, segment {s}"));
            }
            expect_nothing(&rx);
        }
        common::drain_all(&mut zc, |r| record(&mut back, r));
        let want: Back = (0..4).map(|i| (i, (i, true, true))).collect();
        assert_eq!(back, want);
        assert_eq!(zc.tracker().stats().sent, 4);
    }
}

/// A batch whose third entry fails after the kernel took its id (more
/// segments than `UDP_MAX_SEGMENTS`: `EINVAL` from `udp_send_skb`, after
/// `__ip_append_data` counted it): `sendmmsg` returns 2 and drops the
/// error. The entry is in doubt; its completion settles it as counted,
/// and the entries after it come back unsent, to be sent with the next
/// ids.
#[test]
fn sendmmsg_real_kernel_short_batch_failed_entry_kept_its_id() {
    let Some(rx) = receiver(loopback(false)) else {
        return;
    };
    let tx = UdpSocket::bind(loopback(false)).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    let mut zc = ZcSocket::<_, u32>::new(tx).unwrap();
    let data: Vec<Vec<u8>> = (0..5).map(|i| payload(i + 1)).collect();
    let bad = vec![0xeeu8; 2000];
    let mut batch: Vec<_> = data
        .iter()
        .enumerate()
        .map(|(i, d)| Datagram::new(&d[..], i as u32))
        .collect();
    batch[2] = Datagram::new(&bad[..], 2).segment(1);
    let r = zc.send_batch(batch);
    assert_eq!((r.sent, r.first_id), (2, Some(0)));
    assert_eq!(r.stop, Some(BatchStop::InDoubt { id: 2, error: None }));
    let unsent: Vec<u32> = r.unsent.iter().map(|d| *d.token()).collect();
    assert_eq!(unsent, [3, 4]);
    assert_eq!(zc.tracker().in_doubt(), Some(2));
    expect(&rx, &data[0], "entry 0");
    expect(&rx, &data[1], "entry 1");
    expect_nothing(&rx);
    let mut back = Back::new();
    common::drain_all(&mut zc, |r| record(&mut back, r));
    // The dropped entry's own completion says "not copied" (the kernel
    // freed its pages unread), unless it was coalesced into the range of
    // entries 0 and 1, whose copied bit the kernel keeps for the whole
    // range: its bit is not checked.
    let (id, _, counted) = back[&2];
    assert_eq!(
        (id, counted),
        (2, true),
        "the failed entry's id was counted"
    );
    assert_eq!((back[&0], back[&1]), ((0, true, true), (1, true, true)));
    let r = zc.send_batch(r.unsent);
    assert_eq!((r.sent, r.first_id, r.stop), (2, Some(3), None));
    expect(&rx, &data[3], "entry 3");
    expect(&rx, &data[4], "entry 4");
    common::drain_all(&mut zc, |r| record(&mut back, r));
    assert_eq!(back.len(), 5);
    assert!(back.iter().all(|(t, (id, _, _))| t == id));
}

/// A batch whose third entry fails before the kernel took an id (larger
/// than a UDP datagram can be: `EMSGSIZE` at the top of `udp_sendmsg`):
/// in doubt again, since `sendmmsg` does not say which. While it is, the
/// next batch goes by copy and its tokens come back at once; once every
/// other send completed with nothing left below the socket, the doubt is
/// settled as not counted and its id goes to the next send.
#[test]
fn sendmmsg_real_kernel_short_batch_failed_entry_gave_its_id_back() {
    let Some(rx) = receiver(loopback(false)) else {
        return;
    };
    let tx = UdpSocket::bind(loopback(false)).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    let mut zc = ZcSocket::<_, u32>::new(tx).unwrap();
    let data: Vec<Vec<u8>> = (0..4).map(|i| payload(i + 1)).collect();
    let huge = vec![1u8; 70_000];
    let batch = vec![
        Datagram::new(&data[0][..], 0),
        Datagram::new(&data[1][..], 1),
        Datagram::new(&huge[..], 2),
        Datagram::new(&data[3][..], 3),
    ];
    let r = zc.send_batch(batch);
    assert_eq!(r.stop, Some(BatchStop::InDoubt { id: 2, error: None }));
    assert_eq!(r.sent, 2);
    // In doubt: the rest goes by copy, tokens back at once.
    let copy = zc.send_batch(r.unsent);
    assert_eq!((copy.sent, copy.first_id, copy.stop), (1, None, None));
    assert_eq!(copy.copied, [3]);
    for i in [0, 1, 3] {
        expect(&rx, &data[i], &format!("entry {i}"));
    }
    expect_nothing(&rx);
    let mut back = Back::new();
    common::drain_all(&mut zc, |r| record(&mut back, r));
    let want: Back = [
        (0, (0, true, true)),
        (1, (1, true, true)),
        (2, (2, false, false)),
    ]
    .into_iter()
    .collect();
    assert_eq!(back, want, "not counted: the id went back");
    assert_eq!(zc.tracker().next_id(), 2);
    // The first entry failing reports its error (and is in doubt too).
    let batch = vec![
        Datagram::new(&huge[..], 10),
        Datagram::new(&data[0][..], 11),
    ];
    let r = zc.send_batch(batch);
    let Some(BatchStop::InDoubt {
        id: 2,
        error: Some(e),
    }) = r.stop
    else {
        panic!("{:?}", r.stop)
    };
    assert_eq!(e.errno, libc::EMSGSIZE);
    assert_eq!(r.unsent.len(), 1);
    common::drain_all(&mut zc, |r| record(&mut back, r));
    assert_eq!(back[&10], (2, false, false));
    let r = zc.send_batch(r.unsent);
    assert_eq!((r.sent, r.first_id), (1, Some(2)));
    expect(&rx, &data[0], "resent");
    common::drain_all(&mut zc, |r| record(&mut back, r));
    assert_eq!(back[&11], (2, true, true));
}

/// A window smaller than the batch: the batch stops where the window is
/// full and hands the rest back in order, tokens included.
#[test]
fn sendmmsg_real_kernel_window_cuts_the_batch() {
    let Some(rx) = receiver(loopback(false)) else {
        return;
    };
    let tx = UdpSocket::bind(loopback(false)).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    let mut zc = ZcSocket::<_, u32>::with_window(tx, 8).unwrap();
    let data: Vec<Vec<u8>> = (0..20).map(payload).collect();
    let mut batch: Vec<_> = data
        .iter()
        .enumerate()
        .map(|(i, d)| Datagram::new(&d[..], i as u32))
        .collect();
    let mut back = Back::new();
    let mut sent = 0;
    while !batch.is_empty() {
        let r = zc.send_batch(batch);
        assert_eq!(r.first_id, Some(sent as u32));
        sent += r.sent;
        assert_eq!(r.sent, 8.min(20 - (sent - r.sent)));
        if sent < 20 {
            assert_eq!(r.stop, Some(BatchStop::TrackerFull));
        }
        let tokens: Vec<u32> = r.unsent.iter().map(|d| *d.token()).collect();
        assert_eq!(tokens, (sent as u32..20).collect::<Vec<_>>());
        common::drain_all(&mut zc, |r| record(&mut back, r));
        batch = r.unsent;
    }
    for (i, d) in data.iter().enumerate() {
        expect(&rx, d, &format!("datagram {i}"));
    }
    assert_eq!(back.len(), 20);
}

/// Placeholders in every entry on a kernel without the proposal: the
/// probe's `EINVAL` sends the batch again without them, every datagram
/// once. (On a kernel with it, inline completions and the error queue
/// together cover every id once.)
#[test]
fn sendmmsg_notify_real_kernel_every_id_once_inline_or_not() {
    let Some(rx) = receiver(loopback(false)) else {
        return;
    };
    let tx = UdpSocket::bind(loopback(false)).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    let mut zc = ZcSocket::<_, u32>::new(tx).unwrap();
    let data: Vec<Vec<u8>> = (0..40).map(payload).collect();
    let mut back = Back::new();
    for half in [0..20u32, 20..40] {
        let batch = half
            .clone()
            .map(|i| Datagram::new(&data[i as usize][..], i))
            .collect();
        let r = zc.send_batch_notify(batch, 16, |r| record(&mut back, r));
        assert_eq!((r.sent, r.first_id, r.stop), (20, Some(half.start), None));
    }
    match zc.mode() {
        NotifyMode::Inline => {}
        NotifyMode::ErrorQueue(Fallback::Rejected) => {
            assert!(back.is_empty());
            // The refused call and the one without placeholders, then one.
            assert_eq!(zc.syscalls().sendmmsg, 3);
        }
        other => panic!("mode {other:?}"),
    }
    for (i, d) in data.iter().enumerate() {
        expect(&rx, d, &format!("datagram {i}"));
    }
    expect_nothing(&rx);
    common::drain_all(&mut zc, |r| record(&mut back, r));
    let want: Back = (0..40).map(|i| (i, (i, true, true))).collect();
    assert_eq!(back, want);
}

/// `UDP_SEGMENT` refused after the id was taken (too many segments): the
/// send is in doubt with the kernel's `EINVAL`, and its completion comes.
#[test]
fn gso_real_kernel_too_many_segments_is_in_doubt_then_completed() {
    let tx = UdpSocket::bind(loopback(false)).unwrap();
    let rx = UdpSocket::bind(loopback(false)).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    let mut zc = ZcSocket::<_, u32>::new(tx).unwrap();
    let e = zc.send_gso(&[3u8; 2000], 1, 5).unwrap_err();
    let SendErrorKind::InDoubt { id: 0, error } = e.kind else {
        panic!("{e}")
    };
    assert_eq!((error.errno, e.token), (libc::EINVAL, None));
    let mut back = Back::new();
    common::drain_all(&mut zc, |r| record(&mut back, r));
    // Freed unread, so "not copied", though nothing went out.
    assert_eq!(back[&5], (0, false, true));
    assert_eq!(zc.tracker().next_id(), 1);
}

/// A stream socket is refused whole.
#[test]
fn sendmmsg_real_kernel_stream_socket_refused() {
    let l = TcpListener::bind(loopback(false)).unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let mut zc = ZcSocket::<_, u8>::new(c).unwrap();
    let r = zc.send_batch(vec![Datagram::new(b"a", 1), Datagram::new(b"b", 2)]);
    assert_eq!((r.sent, r.stop), (0, Some(BatchStop::Stream)));
    assert_eq!(r.unsent, [Datagram::new(b"a", 1), Datagram::new(b"b", 2)]);
    assert_eq!(zc.syscalls().sendmmsg, 0);
}

/// Owned buffers: a batch past `UIO_MAXIOV` to two destinations, every
/// buffer back exactly once (and overwritten at once: the receivers must
/// still get the original bytes), then a short batch whose failed entry's
/// buffer is held until its completion and whose rest comes back unsent.
#[test]
fn zcsender_batch_real_kernel_every_buffer_back_once() {
    let (Some(a), Some(b)) = (receiver(loopback(false)), receiver(loopback(false))) else {
        return;
    };
    let to = [a.local_addr().unwrap(), b.local_addr().unwrap()];
    let mut zc = ZcSender::with_window(UdpSocket::bind(loopback(false)).unwrap(), 4096).unwrap();
    const N: usize = 1500;
    let batch = (0..N)
        .map(|i| {
            let mut buf = payload(i + 1);
            buf.splice(0..0, (i as u32).to_le_bytes());
            OwnedDatagram::new(buf).to(to[i % 2])
        })
        .collect();
    let r = zc.send_batch(batch);
    assert_eq!((r.sent, r.stop, r.unsent.len()), (N, None, 0));
    let mut seen = vec![false; N];
    let deadline = Instant::now() + Duration::from_secs(10);
    while zc.in_flight() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} buffers missing",
            zc.in_flight()
        );
        zc.wait(Some(Duration::from_millis(100))).unwrap();
        zc.drain(|i| panic!("unexpected {i:?}")).unwrap();
        for mut buf in zc.completed() {
            let i = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
            assert!(
                !std::mem::replace(&mut seen[i], true),
                "buffer {i} back twice"
            );
            buf.fill(0xff);
        }
    }
    assert!(seen.iter().all(|&s| s));
    for i in 0..N {
        let mut want = payload(i + 1);
        want.splice(0..0, (i as u32).to_le_bytes());
        expect(
            if i % 2 == 0 { &a } else { &b },
            &want,
            &format!("datagram {i}"),
        );
    }
    // A short batch: the third entry kept its id and failed.
    let batch = vec![
        OwnedDatagram::new(vec![1u8; 100]).to(to[0]),
        OwnedDatagram::new(vec![2u8; 100]).to(to[0]),
        OwnedDatagram::new(vec![3u8; 2000]).to(to[0]).segment(1),
        OwnedDatagram::new(vec![4u8; 100]).to(to[0]),
    ];
    let r = zc.send_batch(batch);
    let id = N as u32 + 2;
    assert_eq!(
        (r.sent, r.stop),
        (2, Some(BatchStop::InDoubt { id, error: None }))
    );
    assert_eq!(r.unsent, [OwnedDatagram::new(vec![4u8; 100]).to(to[0])]);
    assert_eq!(zc.in_flight(), 3);
    let mut back = Vec::new();
    while zc.in_flight() > 0 {
        assert!(Instant::now() < deadline + Duration::from_secs(10));
        zc.wait(Some(Duration::from_millis(100))).unwrap();
        zc.drain(|i| panic!("unexpected {i:?}")).unwrap();
        back.extend(zc.completed().map(|b| b[0]));
    }
    back.sort_unstable();
    assert_eq!(back, [1, 2, 3]);
    expect(&a, &[1u8; 100], "short batch 0");
    expect(&a, &[2u8; 100], "short batch 1");
    expect_nothing(&a);
    expect_nothing(&b);
}
