//! Every no_std path of the crate runs without touching the heap: a
//! counting global allocator watches builder, walker, decoders and tracker
//! (the same work the micro-benchmarks time).

use msgzc_abi::Arch;
use msgzc_cmsg::{
    decode_errqueue, CompletionTracker, ControlBuf, ControlBuilder, MsgFlags, TimestampingFlags,
    Walker, ZcRange,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // Per thread: the test harness's other threads (output capture, the
    // main thread waiting) allocate at any moment. A const-initialised
    // thread local never allocates itself.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: never panic inside the allocator (TLS being torn down).
    let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: defers to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns how many allocations this thread made meanwhile.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

#[test]
fn builder_walker_decoders_and_tracker_never_allocate() {
    // First prove the counter sees allocations at all.
    let v = allocations(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(8))));
    assert_eq!(v, 1);
    for arch in Arch::ALL {
        let t = arch.target();
        let mut buf = ControlBuf::<1024>::new();
        let mut tracker = CompletionTracker::<u64, 64>::new();
        let n = allocations(|| {
            let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).unwrap();
            b.timestamping(TimestampingFlags::TX_SOFTWARE).unwrap();
            let mut ee = [0u8; 16];
            ee[4] = 5;
            for _ in 0..8 {
                b.push(0, 11, &ee).unwrap();
            }
            b.zc_placeholder(16).unwrap();
            assert!(b.push(1, 1, &[0; 2048]).is_err());
            let c = b.finish();
            let mut seen = 0;
            for m in Walker::new(t, c.as_bytes(), c.len(), MsgFlags::CTRUNC).flatten() {
                let _ = decode_errqueue(t, &m);
                seen += 1;
            }
            assert_eq!(seen, 10);
            let _ = c.zc_outcome(c.len(), MsgFlags::empty());
            let _ = c.zc_outcome(1, MsgFlags::empty());
            for k in 0..64 {
                tracker.register(k).unwrap();
            }
            let r = |lo, hi| ZcRange {
                lo,
                hi,
                copied: true,
            };
            tracker.complete(r(10, 63), |_, _, _| ()).unwrap();
            assert!(tracker.complete(r(10, 12), |_, _, _| ()).is_err());
            tracker.complete(r(0, 9), |_, _, _| ()).unwrap();
        });
        assert_eq!(n, 0, "{arch}: heap allocations on a no_std path");
    }
}
