//! Control-buffer costs of the safe API against the same work written the C
//! way (libc's `CMSG_*` macros and raw pointer reads), measured in the same
//! run. Report ratios (msgzc / libc) from criterion's output.
//!
//! `libc` is the C idiom, which trusts the buffer; `libc_checked` (and the
//! tracker's `c_checked`) is the same C with the checks the safe API must
//! make, so the pair brackets what safety costs. `send_64_datagrams`
//! compares the owned-buffer API (`ZcSender`) with the token API below it
//! (`ZcSocket`), end to end on loopback.
#![allow(missing_docs)] // criterion's macros generate undocumented items

#[allow(dead_code)] // the walk-alone variants are walk_paired's
mod walks;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use msgzc_abi::proposal::v8;
use msgzc_cmsg::sys::{Sent, ZcSender, ZcSocket, NATIVE};
use msgzc_cmsg::{CompletionTracker, ControlBuf, ControlBuilder, MsgFlags, ZcOutcome, ZcRange};
use std::hint::black_box;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use walks::{errqueue_buffer, libc_checked_walk, libc_walk, msgzc_walk, time_walk};

fn bench_walk(c: &mut Criterion) {
    let mut g = c.benchmark_group("errqueue_walk_decode");
    for n in [1usize, 8] {
        let (mut buf, len) = errqueue_buffer(n);
        let expect = msgzc_walk(buf.as_mut_bytes(), len);
        assert_eq!(libc_walk(buf.as_mut_bytes(), len), expect);
        assert_eq!(libc_checked_walk(buf.as_mut_bytes(), len), expect);
        // Timed in every copy of the timing loop (see `walks`), with
        // `buf` and `len` opaque, as a caller gets them from each recvmsg.
        g.bench_with_input(BenchmarkId::new("msgzc", n), &n, |b, _| {
            b.iter_custom(|iters| time_walk(msgzc_walk, buf.as_mut_bytes(), len, iters))
        });
        g.bench_with_input(BenchmarkId::new("libc", n), &n, |b, _| {
            b.iter_custom(|iters| time_walk(libc_walk, buf.as_mut_bytes(), len, iters))
        });
        g.bench_with_input(BenchmarkId::new("libc_checked", n), &n, |b, _| {
            b.iter_custom(|iters| time_walk(libc_checked_walk, buf.as_mut_bytes(), len, iters))
        });
    }
    g.finish();
}

const FULL: usize = v8::ZC_NOTIFICATION_MAX as usize;

/// Writes a kernel-style answer with 16 ranges over a built placeholder.
fn fill_answer(ptr: *mut u8) {
    let hdr = NATIVE.cmsg().header_size();
    // SAFETY: the placeholder (capacity 16) starts at offset 0 and spans
    // hdr + 4 + 16 * 12 bytes of the caller's buffer.
    unsafe {
        let info = ptr.add(hdr);
        std::ptr::write_unaligned(info.cast::<u32>(), FULL as u32);
        for i in 0..FULL {
            let e = info.add(4 + i * 12);
            std::ptr::write_unaligned(e.cast::<u32>(), i as u32 * 4);
            std::ptr::write_unaligned(e.add(4).cast::<u32>(), i as u32 * 4 + 3);
            *e.add(8) = 0;
        }
    }
}

fn libc_zc_decode(buf: &mut [u8], len: usize) -> u64 {
    // SAFETY: msghdr is plain old data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_control = buf.as_mut_ptr().cast();
    msg.msg_controllen = len as _;
    let mut acc = 0u64;
    // SAFETY: one well-formed message built above; zc_info's count is
    // trusted, as C code would.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        let d = libc::CMSG_DATA(c);
        let n = std::ptr::read_unaligned(d.cast::<u32>()) as usize;
        for i in 0..n {
            let e = d.add(4 + i * 12);
            let lo = std::ptr::read_unaligned(e.cast::<u32>());
            let hi = std::ptr::read_unaligned(e.add(4).cast::<u32>());
            acc += u64::from(hi.wrapping_sub(lo)) + 1 + u64::from(*e.add(8) == 0);
        }
    }
    acc
}

/// [`libc_zc_decode`] with the checks the safe API must make on a kernel's
/// answer, in one pass the way C would write them: the length within the
/// placeholder's capacity, an untouched placeholder (length == capacity,
/// elements still poisoned: what a parisc 6.13+ kernel leaves, having taken
/// the number for `SCM_TS_OPT_ID`) not read as completions, `zerocopy`
/// bytes 0 or 1, and the elements past the length still poisoned.
fn libc_checked_zc_decode(buf: &mut [u8], len: usize, capacity: usize) -> u64 {
    // SAFETY: msghdr is plain old data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_control = buf.as_mut_ptr().cast();
    msg.msg_controllen = len as _;
    let mut acc = 0u64;
    // SAFETY: one message built above with room for `capacity` elements;
    // no element past them is read.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        let d = libc::CMSG_DATA(c);
        let n = std::ptr::read_unaligned(d.cast::<u32>()) as usize;
        if n > capacity {
            return 0;
        }
        let elem = |i: usize| d.add(4 + i * 12);
        let poisoned = |i: usize| (0..12).all(|k| *elem(i).add(k) == 0xa5);
        if n == capacity && (0..n).all(poisoned) {
            return 0; // unwritten
        }
        for i in 0..n {
            let e = elem(i);
            let zerocopy = *e.add(8);
            if zerocopy > 1 {
                return 0;
            }
            let lo = std::ptr::read_unaligned(e.cast::<u32>());
            let hi = std::ptr::read_unaligned(e.add(4).cast::<u32>());
            acc += u64::from(hi.wrapping_sub(lo)) + 1 + u64::from(zerocopy == 0);
        }
        if !(n..capacity).all(poisoned) {
            return 0;
        }
    }
    acc
}

fn bench_zc_info(c: &mut Criterion) {
    let mut g = c.benchmark_group("zc_info_decode_16");
    let mut buf = ControlBuf::<512>::new();
    let mut b = ControlBuilder::new(NATIVE, buf.as_mut_bytes()).unwrap();
    b.zc_placeholder(FULL).unwrap();
    let mut control = b.finish();
    let len = control.len();
    fill_answer(control.as_mut_ptr());
    let msgzc = |c: &msgzc_cmsg::Control<'_>| -> u64 {
        match c.zc_outcome(len, MsgFlags::empty()) {
            Ok(ZcOutcome::Written(done)) => {
                done.iter().map(|r| r.count() + u64::from(r.copied)).sum()
            }
            _ => 0,
        }
    };
    let expect = msgzc(&control);
    assert_eq!(expect, 16 * 5);
    g.bench_function("msgzc", |b| b.iter(|| msgzc(black_box(&control))));
    let _ = control;
    assert_eq!(libc_zc_decode(buf.as_mut_bytes(), len), expect);
    assert_eq!(
        libc_checked_zc_decode(buf.as_mut_bytes(), len, FULL),
        expect
    );
    g.bench_function("libc", |b| {
        b.iter(|| libc_zc_decode(black_box(buf.as_mut_bytes()), len))
    });
    g.bench_function("libc_checked", |b| {
        b.iter(|| libc_checked_zc_decode(black_box(buf.as_mut_bytes()), len, black_box(FULL)))
    });
    g.finish();
}

fn libc_build(buf: &mut [u8]) -> usize {
    let data_len = v8::zc_info_size(FULL);
    // SAFETY: msghdr is plain old data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_control = buf.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = unsafe { libc::CMSG_SPACE(data_len as u32) } as usize;
    assert!(space <= buf.len());
    msg.msg_controllen = space as _;
    // SAFETY: the buffer is aligned and holds `space` bytes, checked above.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = 78;
        let d = libc::CMSG_DATA(c);
        std::ptr::write_unaligned(d.cast::<u32>(), FULL as u32);
        std::ptr::write_bytes(d.add(4), 0xa5, data_len - 4);
    }
    space
}

fn bench_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("build_placeholder_16");
    let mut buf = ControlBuf::<512>::new();
    g.bench_function("msgzc", |b| {
        b.iter(|| {
            let mut bld = ControlBuilder::new(NATIVE, black_box(buf.as_mut_bytes())).unwrap();
            bld.zc_placeholder(FULL).unwrap();
            bld.finish().len()
        })
    });
    let mut buf2 = ControlBuf::<512>::new();
    g.bench_function("libc", |b| {
        b.iter(|| libc_build(black_box(buf2.as_mut_bytes())))
    });
    g.finish();
}

const RANGES: usize = 1_000_000;
const WINDOW: usize = 256;

/// A fixed permutation of 0..WINDOW (xorshift-driven Fisher-Yates).
fn shuffled() -> Vec<u32> {
    let mut v: Vec<u32> = (0..WINDOW as u32).collect();
    let mut x = 0x9e37_79b9u32;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.swap(i, x as usize % (i + 1));
    }
    v
}

fn msgzc_tracker(order: &[u32]) -> u64 {
    let mut t = CompletionTracker::<u64, WINDOW>::new();
    let mut acc = 0u64;
    for round in 0..RANGES / WINDOW {
        let base = t.next_id();
        for k in 0..WINDOW as u64 {
            t.register(round as u64 * WINDOW as u64 + k).unwrap();
        }
        for &o in order {
            let id = base.wrapping_add(o);
            t.complete(
                ZcRange {
                    lo: id,
                    hi: id,
                    copied: true,
                },
                |_, tok, _| acc += tok,
            )
            .unwrap();
        }
    }
    acc
}

/// The careful C way: a ring of `{token, live}` slots indexed by id; a
/// range is checked (inside the window, every id live) before anything is
/// released, and the window slides past released ids. The same work as
/// the tracker, without its generic token type and statistics.
fn c_checked_tracker(order: &[u32]) -> u64 {
    #[derive(Clone, Copy)]
    struct Slot {
        token: u64,
        live: bool,
    }
    let mut slots = [Slot {
        token: 0,
        live: false,
    }; WINDOW];
    let (mut base, mut next) = (0u32, 0u32);
    let mut acc = 0u64;
    for round in 0..RANGES / WINDOW {
        let first = next;
        for k in 0..WINDOW as u64 {
            assert!(next.wrapping_sub(base) < WINDOW as u32, "window full");
            slots[next as usize % WINDOW] = Slot {
                token: round as u64 * WINDOW as u64 + k,
                live: true,
            };
            next = next.wrapping_add(1);
        }
        for &o in order {
            let (lo, hi) = (first.wrapping_add(o), first.wrapping_add(o));
            let count = hi.wrapping_sub(lo);
            let ok = lo.wrapping_sub(base) < next.wrapping_sub(base)
                && count < next.wrapping_sub(lo)
                && (0..=count).all(|i| slots[lo.wrapping_add(i) as usize % WINDOW].live);
            assert!(ok, "bad range");
            for i in 0..=count {
                let s = &mut slots[lo.wrapping_add(i) as usize % WINDOW];
                s.live = false;
                acc += s.token;
            }
            while base != next && !slots[base as usize % WINDOW].live {
                base = base.wrapping_add(1);
            }
        }
    }
    acc
}

/// The C way at its barest: a ring of tokens indexed by id, no validation
/// (a lower bound, not the same work).
fn c_style_tracker(order: &[u32]) -> u64 {
    let mut slots = [0u64; WINDOW];
    let mut next: u32 = 0;
    let mut acc = 0u64;
    for round in 0..RANGES / WINDOW {
        let base = next;
        for k in 0..WINDOW as u64 {
            slots[next as usize % WINDOW] = round as u64 * WINDOW as u64 + k;
            next = next.wrapping_add(1);
        }
        for &o in order {
            let id = base.wrapping_add(o);
            acc += slots[id as usize % WINDOW];
        }
    }
    acc
}

fn bench_tracker(c: &mut Criterion) {
    let mut g = c.benchmark_group("tracker_1M_ranges");
    g.sample_size(10);
    let in_order: Vec<u32> = (0..WINDOW as u32).collect();
    let shuffled = shuffled();
    for (name, order) in [("in_order", &in_order), ("shuffled", &shuffled)] {
        assert_eq!(msgzc_tracker(order), c_style_tracker(order));
        assert_eq!(msgzc_tracker(order), c_checked_tracker(order));
        g.bench_function(BenchmarkId::new("msgzc", name), |b| {
            b.iter(|| msgzc_tracker(black_box(order)))
        });
        g.bench_function(BenchmarkId::new("c_checked", name), |b| {
            b.iter(|| c_checked_tracker(black_box(order)))
        });
        g.bench_function(BenchmarkId::new("c_style", name), |b| {
            b.iter(|| c_style_tracker(black_box(order)))
        });
    }
    g.finish();
}

/// Datagrams per round of the send benchmarks.
const BATCH: usize = 64;
const DATAGRAM: usize = 1024;

/// A connected UDP socket on loopback whose peer is read by a thread
/// until the returned flag is set.
fn udp_sender() -> (UdpSocket, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !flag.load(Ordering::Relaxed) {
            let _ = rx.recv(&mut buf);
        }
    });
    (tx, stop, reader)
}

/// One round through the token API: BATCH sends of borrowed buffers, each
/// token an index the caller marks free again when it comes back.
fn token_round(zc: &mut ZcSocket<UdpSocket, usize>, bufs: &[Vec<u8>], free: &mut Vec<usize>) {
    while let Some(i) = free.pop() {
        match zc.send(&bufs[i], i) {
            Ok(Sent::Pending { .. }) => {}
            Ok(_) => free.push(i),
            Err(e) => panic!("{e}"),
        }
    }
    while zc.tracker().outstanding() > 0 {
        zc.drain(|r| free.push(r.token), |_| {}).unwrap();
        if zc.tracker().outstanding() > 0 {
            zc.wait(Some(Duration::from_millis(1))).unwrap();
        }
    }
}

/// The same round through the owned API: the buffers themselves go to the
/// sender and come back.
fn owned_round(zc: &mut ZcSender<UdpSocket, Vec<u8>>, pool: &mut Vec<Vec<u8>>) {
    while let Some(buf) = pool.pop() {
        zc.send(buf).unwrap();
    }
    while zc.in_flight() > 0 {
        zc.drain(|_| {}).unwrap();
        pool.extend(zc.completed());
        if zc.in_flight() > 0 {
            zc.wait(Some(Duration::from_millis(1))).unwrap();
        }
    }
    pool.extend(zc.completed());
}

fn bench_send(c: &mut Criterion) {
    let mut g = c.benchmark_group("send_64_datagrams");
    let (tx, stop_t, reader_t) = udp_sender();
    let mut token = ZcSocket::<_, usize>::new(tx).unwrap();
    let bufs = vec![vec![7u8; DATAGRAM]; BATCH];
    let mut free: Vec<usize> = (0..BATCH).collect();
    let (tx, stop_o, reader_o) = udp_sender();
    let mut owned = ZcSender::<_, Vec<u8>>::new(tx).unwrap();
    let mut pool = vec![vec![7u8; DATAGRAM]; BATCH];
    // Interleaved: each timed round follows an untimed round of the other
    // API, so neither is measured in the other's wake (run one after the
    // other, whichever went second came out 8 to 18% slower, either way).
    g.bench_function("token", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                owned_round(&mut owned, &mut pool);
                let start = Instant::now();
                token_round(&mut token, &bufs, &mut free);
                spent += start.elapsed();
            }
            spent
        })
    });
    g.bench_function("owned", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                token_round(&mut token, &bufs, &mut free);
                let start = Instant::now();
                owned_round(&mut owned, &mut pool);
                spent += start.elapsed();
            }
            spent
        })
    });
    g.finish();
    assert_eq!((free.len(), pool.len()), (BATCH, BATCH));
    for (stop, reader) in [(stop_t, reader_t), (stop_o, reader_o)] {
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap();
    }
}

criterion_group!(
    benches,
    bench_walk,
    bench_zc_info,
    bench_build,
    bench_tracker,
    bench_send
);
criterion_main!(benches);
