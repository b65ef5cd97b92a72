//! Fault injection against the kernel of the machine running the tests:
//! the promise that a buffer comes back only when the kernel no longer
//! reads it, under the failures that break naive id accounting.
//!
//! Each test runs in a private network namespace (root: `unshare`, `tc`)
//! whose loopback is slowed down by a token-bucket qdisc, so that sent data
//! stays referenced by the kernel for a while. Every buffer the library
//! releases is overwritten at once, and the receiver checks that it got
//! the original bytes: a buffer released early shows up as garbage on the
//! wire. Without root, or without `tc`, each test prints a `SKIP:` line
//! with the reason.
#![cfg(all(feature = "std", target_os = "linux"))]

use msgzc_cmsg::sys::{
    self, BatchStop, Datagram, Progress, SendErrorKind, Sent, ZcSender, ZcSocket,
};
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Runs `test` on a thread of its own in a new network namespace with `lo`
/// up, its MTU at 1500 and `qdisc` installed on it; prints `SKIP:` when the
/// namespace or the qdisc cannot be had.
fn in_netns(name: &str, qdisc: &[&str], test: impl FnOnce() + Send + 'static) {
    let qdisc: Vec<String> = qdisc.iter().map(|s| s.to_string()).collect();
    let setup = thread::spawn(move || {
        // SAFETY: unshare affects only this thread, which owns nothing
        // that depends on the old namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(format!("unshare(CLONE_NEWNET): {e}"));
        }
        sys::loopback_up().map_err(|e| e.to_string())?;
        tc(&["link", "set", "lo", "mtu", "1500"], "ip")?;
        if !qdisc.is_empty() {
            set_qdisc(&qdisc.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        test();
        Ok(())
    });
    match setup.join() {
        Ok(Ok(())) => {}
        Ok(Err(why)) => println!("SKIP: {name}: needs a private network namespace and tc: {why}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `ip` or `tc` (from this thread, so in its namespace).
fn tc(args: &[&str], tool: &str) -> Result<(), String> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!("{tool} {}: {}", args.join(" "), err.trim()))
    }
}

/// Replaces the root qdisc of `lo`.
fn set_qdisc(spec: &[&str]) -> Result<(), String> {
    let mut args = vec!["qdisc", "replace", "dev", "lo", "root"];
    args.extend_from_slice(spec);
    tc(&args, "tc")
}

/// About 2 Mbit/s: a 64 KiB send stays in the qdisc for a quarter second.
const SLOW: &[&str] = &["tbf", "rate", "2mbit", "burst", "16kb", "limit", "8mb"];
/// One packet at a time at 200 kbit/s: each 1200-byte datagram after the
/// first waits about 50 ms in the qdisc, its buffer still referenced.
const TRICKLE: &[&str] = &["tbf", "rate", "200kbit", "burst", "1600", "limit", "1mb"];

/// The bytes buffer `i` must carry: its index first, then a pattern.
fn pattern(i: usize, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len).map(|j| (i * 31 + j * 7 + 1) as u8).collect();
    v[..4].copy_from_slice(&(i as u32).to_be_bytes());
    v
}

/// What a released buffer is overwritten with.
const REUSED: u8 = 0xee;

/// A pool of buffers whose released ones are overwritten at once.
struct Pool {
    bufs: Vec<Vec<u8>>,
    released: Vec<usize>,
}

impl Pool {
    fn new(n: usize, len: usize) -> Pool {
        let bufs = (0..n).map(|i| pattern(i, len)).collect();
        Pool {
            bufs,
            released: Vec::new(),
        }
    }

    fn release(&mut self, i: usize) {
        self.bufs[i].fill(REUSED);
        self.released.push(i);
    }
}

/// Receives `n` datagrams of `len` bytes and checks each against its
/// pattern; returns the indices seen.
fn check_datagrams(rx: &UdpSocket, n: usize, len: usize) -> Vec<usize> {
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0u8; len + 1];
    let mut seen = Vec::new();
    for _ in 0..n {
        let got = rx.recv(&mut buf).expect("a datagram within 10 s");
        let i = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        assert!(
            got == len && i < 1 << 16 && buf[..got] == pattern(i, len)[..],
            "datagram {} arrived with bytes of a reused buffer",
            seen.len()
        );
        seen.push(i);
    }
    seen
}

fn udp_pair() -> (UdpSocket, UdpSocket) {
    let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    (tx, rx)
}

/// Drains `zc` until nothing is outstanding (10 s at most), overwriting
/// every released buffer.
fn drain_all(zc: &mut ZcSocket<UdpSocket, usize>, pool: &mut Pool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while zc.tracker().outstanding() > 0 {
        assert!(Instant::now() < deadline, "completions missing after 10 s");
        zc.wait(Some(Duration::from_millis(50))).unwrap();
        zc.drain(|r| pool.release(r.token), |_| {}).unwrap();
    }
}

/// Sends buffer 0 so that it fails after the kernel took its id (`fail`
/// sets that up, `recover` undoes it), then more buffers through a qdisc
/// that keeps each queued a while, overwriting every buffer the library
/// releases; the receiver must see every later datagram intact. While
/// the failed send is in doubt the socket copies; once it is settled,
/// zerocopy sends resume with the tracker in step with the kernel.
fn failed_send_then_more(
    zc: &mut ZcSocket<UdpSocket, usize>,
    rx: &UdpSocket,
    fail: impl FnOnce(),
    recover: impl FnOnce(),
) {
    const N: usize = 12;
    const LEN: usize = 1200;
    let mut pool = Pool::new(N, LEN);
    fail();
    let e = zc.send(&pool.bufs[0], 0).unwrap_err();
    assert!(
        matches!(e.kind, SendErrorKind::InDoubt { id: 0, .. }),
        "{e}"
    );
    assert_eq!(e.token, None, "a send in doubt keeps its buffer");
    recover();
    set_qdisc(TRICKLE).unwrap();
    let (mut copied, mut pending) = (0, 0);
    for i in 1..N {
        match zc.send(&pool.bufs[i], i) {
            // Copied: the kernel holds nothing of it.
            Ok(Sent::Copied { token, .. }) => (pool.release(token), copied += 1).1,
            Ok(Sent::Pending { .. }) => pending += 1,
            other => panic!("send {i}: {other:?}"),
        }
        // Completions settle the doubt meanwhile: apply them.
        zc.drain(|r| pool.release(r.token), |_| {}).unwrap();
    }
    assert!(
        copied > 0 && pending > 0,
        "{copied} copied, {pending} zerocopy"
    );
    drain_all(zc, &mut pool);
    let mut seen = check_datagrams(rx, N - 1, LEN);
    seen.sort();
    assert_eq!(seen, (1..N).collect::<Vec<_>>());
    pool.released.sort();
    assert_eq!(pool.released, (0..N).collect::<Vec<_>>(), "each once");
    // The kernel kept id 0, and the tracker is in step with it.
    assert_eq!(zc.tracker().in_doubt(), None);
    assert_eq!(zc.tracker().next_id(), pending + 1);
}

/// `UDP_SEGMENT` with too many segments: `EINVAL` after the packet was
/// built (`udp_send_skb`), and the kernel completes the id anyway.
#[test]
fn gso_failure_real_kernel_never_releases_a_buffer_early() {
    in_netns("GSO failure", &[], || {
        let (tx, rx) = udp_pair();
        let mut zc = ZcSocket::<_, usize>::new(tx).unwrap();
        let fd = zc.as_raw_fd();
        // 1200 bytes in segments of 4: over UDP_MAX_SEGMENTS (64 in
        // 6.1, 128 since 6.11).
        let fail = || udp_segment(fd, 4).unwrap();
        let recover = || udp_segment(fd, 0).unwrap();
        failed_send_then_more(&mut zc, &rx, fail, recover);
    });
}

/// A qdisc that drops the packet, with `IP_RECVERR` on: `ENOBUFS`, and the
/// dropped packet's id completes.
#[test]
fn qdisc_drop_real_kernel_never_releases_a_buffer_early() {
    in_netns("qdisc drop", &[], || {
        let (tx, rx) = udp_pair();
        sys::enable_recverr(tx.as_fd(), false).unwrap();
        let mut zc = ZcSocket::<_, usize>::new(tx).unwrap();
        let fail = || set_qdisc(&["pfifo", "limit", "0"]).unwrap();
        failed_send_then_more(&mut zc, &rx, fail, || {});
    });
}

/// Sets `UDP_SEGMENT` (0: off) on a UDP socket.
fn udp_segment(fd: RawFd, size: libc::c_int) -> Result<(), String> {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let ptr = (&size as *const libc::c_int).cast();
    // SAFETY: setsockopt reads one c_int from a live local.
    let r = unsafe { libc::setsockopt(fd, libc::SOL_UDP, libc::UDP_SEGMENT, ptr, len) };
    if r == 0 {
        Ok(())
    } else {
        Err(format!("UDP_SEGMENT: {}", std::io::Error::last_os_error()))
    }
}

/// A TCP connection in the namespace whose receiving side collects every
/// byte until the sender closes.
fn tcp_pair() -> (TcpStream, thread::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut s, _) = l.accept().unwrap();
    let reader = thread::spawn(move || {
        let mut all = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.read_to_end(&mut all);
        all
    });
    (c, reader)
}

/// A buffer owned by a send: dropping it overwrites its bytes, as freeing
/// and reusing the memory would.
#[derive(Debug)]
struct Lease(Arc<Mutex<Vec<u8>>>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.lock().unwrap().fill(REUSED);
    }
}

type Shared = Arc<Mutex<Vec<u8>>>;

/// `n` buffers of `len` bytes, and their concatenation, which the
/// receiver must see.
fn leases(n: usize, len: usize) -> (Vec<Shared>, Vec<u8>) {
    let bufs: Vec<Shared> = (0..n)
        .map(|i| Arc::new(Mutex::new(pattern(i, len))))
        .collect();
    let expected = bufs
        .iter()
        .flat_map(|b| b.lock().unwrap().clone())
        .collect();
    (bufs, expected)
}

/// Sends every buffer whole with `MSG_ZEROCOPY` (looping on partial
/// sends), each send holding a lease on it.
fn send_leases(zc: &mut ZcSocket<TcpStream, Lease>, bufs: &[Shared]) {
    for b in bufs {
        let len = b.lock().unwrap().len();
        let mut off = 0;
        while off < len {
            let guard = b.lock().unwrap();
            let r = zc.send(&guard[off..], Lease(b.clone()));
            drop(guard);
            match r {
                Ok(Sent::Pending { bytes, .. }) => off += bytes,
                other => panic!("{other:?}"),
            }
        }
    }
}

/// Dropping the socket while the kernel still transmits from the buffers:
/// Linux sends what was queued after `close` and reports no completions,
/// so the leases must never be dropped.
#[test]
fn drop_with_sends_in_flight_real_kernel_never_frees_their_memory() {
    in_netns("drop with sends in flight", SLOW, || {
        let (c, reader) = tcp_pair();
        let (bufs, expected) = leases(8, 64 * 1024);
        let mut zc = ZcSocket::<_, Lease>::new(c).unwrap();
        zc.set_linger(Duration::from_millis(100));
        send_leases(&mut zc, &bufs);
        assert!(zc.tracker().outstanding() > 0, "nothing in flight to test");
        drop(zc);
        let got = reader.join().unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the peer received bytes of a freed buffer");
    });
}

/// `close` hands back what never completed as `Unconfirmed`, which leaks
/// its lease unless the caller takes it explicitly.
#[test]
fn close_with_sends_in_flight_real_kernel_returns_them_unconfirmed() {
    in_netns("close with sends in flight", SLOW, || {
        let (c, reader) = tcp_pair();
        let (bufs, expected) = leases(8, 64 * 1024);
        let mut zc = ZcSocket::<_, Lease>::new(c).unwrap();
        send_leases(&mut zc, &bufs);
        let mut completed = 0;
        let unconfirmed = zc.close(Duration::from_millis(100), |r| {
            completed += 1;
            drop(r)
        });
        assert!(!unconfirmed.is_empty(), "nothing in flight to test");
        drop(unconfirmed);
        let got = reader.join().unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the peer received bytes of a freed buffer");
    });
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// The signal [`Pest`] sends: SIGALRM is 14 on every Linux architecture,
/// so the libc crate's number is right everywhere (its SIGUSR1 for mips64
/// is not since 0.2.190: the generic 10, which is SIGBUS there).
const PEST_SIGNAL: libc::c_int = libc::SIGALRM;

extern "C" {
    // glibc's; the libc crate does not declare it. With `flag` 1 the
    // signal interrupts blocking calls (no SA_RESTART), set through glibc's
    // own `struct sigaction` rather than the libc crate's, whose mips64
    // layout is wrong since 0.2.190.
    fn siginterrupt(sig: libc::c_int, flag: libc::c_int) -> libc::c_int;
}

/// A thread sending [`PEST_SIGNAL`] (without `SA_RESTART`, handled by doing
/// nothing) to the thread that started it every 2 ms, so that its blocking
/// calls fail with `EINTR`, until [`stop`](Self::stop).
struct Pest {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<usize>,
}

impl Pest {
    fn start() -> Pest {
        // SAFETY: the handler does nothing, and the signal is not used by
        // anything else in the tests.
        unsafe {
            let handler = ignore_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            assert_ne!(libc::signal(PEST_SIGNAL, handler), libc::SIG_ERR);
            assert_eq!(siginterrupt(PEST_SIGNAL, 1), 0);
        }
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut sent = 0;
            while !flag.load(Ordering::Relaxed) {
                // SAFETY: `me` is alive until `stop` is set.
                unsafe { libc::pthread_kill(me, PEST_SIGNAL) };
                sent += 1;
                thread::sleep(Duration::from_millis(2));
            }
            sent
        });
        Pest { stop, thread }
    }

    /// Stops it; returns how many signals it sent.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Signals (without `SA_RESTART`) hit the thread blocked in `wait`: each
/// `EINTR` is retried, so the README's `zc.wait(None)?` loop never bails
/// out and drops the socket with sends in flight.
#[test]
fn signals_during_wait_real_kernel_are_retried() {
    in_netns("signals during wait", SLOW, || {
        let (c, reader) = tcp_pair();
        let (bufs, expected) = leases(4, 64 * 1024);
        let mut zc = ZcSocket::<_, Lease>::new(c).unwrap();
        send_leases(&mut zc, &bufs);
        let pest = Pest::start();
        let mut wait_all = || -> std::io::Result<()> {
            while zc.tracker().outstanding() > 0 {
                zc.wait(None)?;
                zc.drain(drop, |_| {})?;
            }
            Ok(())
        };
        let r = wait_all();
        let signals = pest.stop();
        r.unwrap();
        assert!(signals > 10, "only {signals} signals");
        drop(zc);
        assert!(
            reader.join().unwrap() == expected,
            "bytes of a freed buffer"
        );
    });
}

/// `optmem_max` 0: every `MSG_ZEROCOPY` send fails with `ENOBUFS`, and
/// with nothing outstanding waiting cannot help. The sender goes by copy,
/// trying zerocopy again only now and then: every byte arrives, in a
/// bounded number of system calls.
#[test]
fn optmem_exhausted_real_kernel_delivers_every_byte_in_bounded_calls() {
    in_netns("optmem_max 0", &[], || {
        const N: usize = 256;
        const LEN: usize = 16 * 1024;
        let (c, reader) = tcp_pair();
        let mut zc = ZcSender::<_, Vec<u8>>::new(c).unwrap();
        let optmem = "/proc/sys/net/core/optmem_max";
        let old = std::fs::read_to_string(optmem).unwrap();
        std::fs::write(optmem, "0").unwrap();
        let mut expected = Vec::new();
        for i in 0..N {
            let buf = pattern(i, LEN);
            expected.extend_from_slice(&buf);
            assert_eq!(zc.send(buf).unwrap(), Progress::Complete);
            assert_eq!(
                zc.completed().count(),
                1,
                "a copied buffer comes back at once"
            );
        }
        std::fs::write(optmem, old.trim()).unwrap();
        let calls = zc.socket().syscalls();
        assert_eq!(zc.in_flight(), 0);
        // One failed zerocopy attempt per 64 copies at most.
        assert!(calls.sendmsg <= (N + N / 64 + 1) as u64, "{calls:?}");
        assert!(calls.copied_sends >= N as u64, "{calls:?}");
        drop(zc);
        assert!(reader.join().unwrap() == expected);
    });
}

/// Owned buffers through `ZcSender` under a failed datagram send: the
/// buffer in doubt comes back only once settled, and later ones are never
/// handed back while queued.
#[test]
fn owned_buffers_real_kernel_survive_a_send_in_doubt() {
    in_netns("owned buffers in doubt", &[], || {
        const N: usize = 6;
        const LEN: usize = 1200;
        let (tx, rx) = udp_pair();
        sys::enable_recverr(tx.as_fd(), false).unwrap();
        let mut zc = ZcSender::<_, Vec<u8>>::new(tx).unwrap();
        set_qdisc(&["pfifo", "limit", "0"]).unwrap();
        let e = zc.send(pattern(0, LEN)).unwrap_err();
        assert!(matches!(e.kind, SendErrorKind::InDoubt { .. }), "{e}");
        assert!(e.token.is_none());
        assert_eq!(zc.in_flight(), 1);
        set_qdisc(TRICKLE).unwrap();
        let mut back = Vec::new();
        for i in 1..N {
            zc.send(pattern(i, LEN)).unwrap();
            zc.drain(|_| {}).unwrap();
            for mut b in zc.completed() {
                b.fill(REUSED);
                back.push(b);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while zc.in_flight() > 0 {
            assert!(Instant::now() < deadline, "buffers never came back");
            zc.wait(Some(Duration::from_millis(50))).unwrap();
            zc.drain(|_| {}).unwrap();
            back.extend(zc.completed().map(|mut b| (b.fill(REUSED), b).1));
        }
        assert_eq!(back.len(), N, "every buffer back once");
        let mut seen = check_datagrams(&rx, N - 1, LEN);
        seen.sort();
        assert_eq!(seen, (1..N).collect::<Vec<_>>());
    });
}

/// `sendmmsg` batches on a blocking socket whose small send buffer the
/// qdisc keeps full, while signals (without `SA_RESTART`) keep hitting the
/// sending thread: a call interrupted before its first datagram is
/// retried (`EINTR`), one interrupted later returns the count sent and
/// leaves the next datagram in doubt. Every datagram must still arrive
/// exactly once with its original bytes (failed ones are sent again once
/// their token is back), and every token come back exactly once.
#[test]
fn signals_during_sendmmsg_real_kernel_lose_and_repeat_nothing() {
    in_netns("signals during sendmmsg", TRICKLE, || {
        const N: usize = 40;
        const LEN: usize = 1200;
        let (tx, rx) = udp_pair();
        let small: libc::c_int = 4096;
        // msgzc-abi's numbers, not libc's: 0.2.190 and later give mips64
        // the generic ones.
        let socket = msgzc_cmsg::sys::NATIVE.family.socket();
        let (sol_socket, so_sndbuf) = (socket.sol_socket, socket.so_sndbuf);
        // SAFETY: setsockopt reads one c_int that outlives the call.
        let r = unsafe {
            libc::setsockopt(
                tx.as_raw_fd(),
                sol_socket,
                so_sndbuf,
                (&small as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
        let mut zc = ZcSocket::<_, usize>::new(tx).unwrap();
        let mut pool = Pool::new(N, LEN);
        let pest = Pest::start();
        let (mut todo, mut doubt, mut back) = ((0..N).collect::<Vec<_>>(), Vec::new(), vec![0; N]);
        let (mut batches, mut doubts) = (0, 0);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !todo.is_empty() || zc.tracker().outstanding() > 0 {
            assert!(
                Instant::now() < deadline,
                "{} unsent after 30 s",
                todo.len()
            );
            if !todo.is_empty() {
                let batch = todo
                    .iter()
                    .map(|&i| Datagram::new(&pool.bufs[i][..], i))
                    .collect();
                let r = zc.send_batch(batch);
                batches += 1;
                if let Some(BatchStop::InDoubt { .. }) = r.stop {
                    doubt.push(todo[r.sent]);
                    doubts += 1;
                }
                let copied = r.copied;
                todo = r.unsent.iter().map(|d| *d.token()).collect();
                for i in copied {
                    back[i] += 1;
                    pool.release(i);
                }
            }
            zc.wait(Some(Duration::from_millis(5))).unwrap();
            let mut again = Vec::new();
            zc.drain(
                |r| {
                    pool.release(r.token);
                    match doubt.iter().position(|&i| i == r.token) {
                        // A failed datagram: its buffer is ours, send it again.
                        Some(k) => again.push(doubt.swap_remove(k)),
                        None => back[r.token] += 1,
                    }
                },
                |_| {},
            )
            .unwrap();
            for i in again {
                pool.bufs[i] = pattern(i, LEN);
                todo.push(i);
            }
        }
        let signals = pest.stop();
        assert!(signals > 10, "only {signals} signals");
        assert!(doubt.is_empty());
        assert_eq!(back, vec![1; N], "every datagram's token back once");
        let mut seen = check_datagrams(&rx, N, LEN);
        seen.sort_unstable();
        assert_eq!(seen, (0..N).collect::<Vec<_>>(), "each datagram once");
        rx.set_nonblocking(true).unwrap();
        assert!(rx.recv(&mut [0u8; 8]).is_err(), "a datagram too many");
        let retries = zc.syscalls().sendmmsg - batches;
        println!(
            "{signals} signals: {batches} batches, {retries} EINTR retries, {doubts} in doubt"
        );
    });
}
