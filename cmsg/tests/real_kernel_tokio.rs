//! `AsyncZcSender` on the running kernel's loopback (needs a Linux kernel
//! with `MSG_ZEROCOPY`, 4.14 or later): every byte checked, every buffer
//! back, and no busy waiting.

#![cfg(all(feature = "std", target_os = "linux"))]

#[path = "../examples/tokio_stream.rs"]
mod example;

use msgzc_cmsg::sys::tokio::AsyncZcSender;
use msgzc_cmsg::sys::NewErrorKind;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The example's 64 MiB stream: each 64 KiB buffer is one send, so a
/// sender that waited only on real events makes a few system calls and
/// wakeups per buffer; one that spun would make thousands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_64_mib_with_every_byte_checked_and_no_busy_loop() -> Result {
    let s = example::stream(64 << 20).await?;
    assert_eq!(s.bytes, 64 << 20);
    assert_eq!(s.sends, 1024);
    let per_send = |n: u64| n as f64 / s.sends as f64;
    eprintln!("{s:?}");
    assert!(per_send(s.syscalls.sendmsg) < 4.0, "{s:?}");
    assert!(per_send(s.syscalls.recvmmsg) < 4.0, "{s:?}");
    assert!(per_send(s.waits.wakeups) < 4.0, "{s:?}");
    Ok(())
}

/// A connected pair whose receiver does not read yet.
async fn tcp_pair() -> Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let stream = TcpStream::connect(listener.local_addr()?).await?;
    let (peer, _) = listener.accept().await?;
    Ok((stream, peer))
}

/// With the peer not reading, the send buffer fills: the send that finds
/// it full must sleep, not spin (the socket's own tokio readiness would
/// report "write closed" after the first completion and never wait
/// again), and dropping it (after 300 ms) loses nothing. The kernel may have taken part of that buffer (the sender
/// then keeps the rest and `flush` sends it) or none of it (it is dropped
/// with the future); which depends on the kernel's buffer sizes, and a
/// kernel may also take the rest later without ever reporting the socket
/// writable (Linux 6.18 does), so the test accepts both and checks that
/// the peer gets every earlier chunk whole, in order, then that one whole
/// or not at all, and that every chunk sent comes back once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_send_sleeps_and_survives_cancellation() -> Result {
    let (stream, mut peer) = tcp_pair().await?;
    let mut zc = AsyncZcSender::new(stream)?;
    let chunk = 256 << 10;
    let mut blocked = None;
    for k in 0..64u8 {
        let before = (zc.wait_counts(), zc.sender().socket().syscalls());
        let send = zc.send(vec![k; chunk]);
        if tokio::time::timeout(Duration::from_millis(300), send)
            .await
            .is_err()
        {
            blocked = Some((k, before));
            break;
        }
    }
    let Some((k, before)) = blocked else {
        panic!("the send buffer never filled");
    };
    // Blocked for 300 ms with completions pending: a few system calls
    // before it blocked, then a few wakeups at most, not thousands.
    let after = (zc.wait_counts(), zc.sender().socket().syscalls());
    let wakeups = after.0.wakeups - before.0.wakeups;
    let sendmsg = after.1.sendmsg - before.1.sendmsg;
    assert!(
        wakeups <= 4 && sendmsg <= 8,
        "{wakeups} wakeups, {sendmsg} sendmsg in a blocked send"
    );

    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.map(|_| got)
    });
    zc.flush().await?;
    let mut back = 0;
    while zc.next_completed().await?.is_some() {
        back += 1;
    }
    drop(zc.close(Duration::from_secs(5)).await);
    let got = reader.await??;
    let whole = usize::from(k) + usize::from(got.len() > usize::from(k) * chunk);
    assert_eq!(got.len(), whole * chunk, "chunk {k} arrived in part");
    assert_eq!(back, whole, "buffers back");
    for (i, part) in got.chunks(chunk).enumerate() {
        assert!(part.iter().all(|&b| usize::from(b) == i), "chunk {i}");
    }
    Ok(())
}

/// Datagrams on tokio's `UdpSocket`: each one sent, received intact, and
/// its buffer back once. Received eight at a time as they are sent: a
/// zerocopy datagram is charged its pages in the receiver's buffer, and
/// loopback drops what does not fit.
#[tokio::test]
async fn udp_datagrams_arrive_and_every_buffer_comes_back() -> Result {
    let rx = UdpSocket::bind("127.0.0.1:0").await?;
    let tx = UdpSocket::bind("127.0.0.1:0").await?;
    tx.connect(rx.local_addr()?).await?;
    let mut zc = AsyncZcSender::new(tx)?;
    let mut got = vec![0u8; 2048];
    let mut back = Vec::new();
    for k in 0..200u16 {
        let mut buf = vec![0u8; 1200];
        buf[..2].copy_from_slice(&k.to_be_bytes());
        zc.send(buf).await?;
        if k % 8 == 7 {
            for j in k - 7..=k {
                let n = rx.recv(&mut got).await?;
                assert_eq!((n, &got[..2]), (1200, &j.to_be_bytes()[..]));
            }
            back.extend(zc.completed()?.map(|b| u16::from_be_bytes([b[0], b[1]])));
        }
    }
    while let Some(buf) = zc.next_completed().await? {
        back.push(u16::from_be_bytes([buf[0], buf[1]]));
    }
    back.sort_unstable();
    assert_eq!(back, (0..200).collect::<Vec<_>>());
    Ok(())
}

/// Outside a runtime the socket comes back with a typed error, rather than
/// tokio's panic.
#[test]
fn outside_a_runtime_the_socket_comes_back() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let e = AsyncZcSender::<_, Vec<u8>>::new(sock).err().unwrap();
    assert_eq!(e.kind, NewErrorKind::NoRuntime);
    assert!(e.fd.local_addr().is_ok());
}

/// The futures can be spawned on a multi-threaded runtime.
#[tokio::test]
async fn the_futures_are_send() -> Result {
    fn spawnable<T: Send>(_: &T) {}
    let (stream, _peer) = tcp_pair().await?;
    let mut zc = AsyncZcSender::<_, Vec<u8>>::new(stream)?;
    spawnable(&zc.send(vec![1]));
    spawnable(&zc.flush());
    spawnable(&zc.next_completed());
    spawnable(&zc.close(Duration::ZERO));
    Ok(())
}
