//! Walk + decode of an error-queue buffer (and the walk alone), msgzc
//! against the same work in C (`walks`), measured as pairs: every round times a block of calls of
//! each variant, in rotating order, so that what disturbs one round (the
//! machine's load, its clock) disturbs all three alike.
//!
//! Prints, for 1 and 8 notifications, the ratio of the fastest blocks
//! (noise on a shared machine only ever adds time, so the fastest block is
//! the closest to a variant's cost) and the median and spread of the
//! per-round ratios. `cargo bench -p msgzc-cmsg --bench walk_paired`; run
//! without `--bench` (as `cargo test --benches` does, unoptimized) it makes
//! a few rounds as a smoke test and prints no figures.
//!
//! What it cannot remove: at a few nanoseconds a call, where the compiler
//! places each loop moves all three by up to a third from one build to the
//! next (the same C loop measured 2.7 and 4.3 ns in two builds that
//! differed only in msgzc's code). Compare ratios within one build.

mod walks;

use std::hint::black_box;
use std::time::{Duration, Instant};
use walks::{
    errqueue_buffer, libc_checked_walk, libc_checked_walk_only, libc_walk, msgzc_walk,
    msgzc_walk_only,
};

/// Calls per timed block: long against the clock's resolution, short
/// against the machine's drifts.
const CALLS: u32 = 1000;

/// What is measured: the walk and the decode, as a drain does them, or
/// the walk alone (its chain from one `cmsg_len` to the next header).
#[derive(Clone, Copy)]
enum Work {
    WalkDecode,
    WalkOnly,
}

impl Work {
    /// The variants, msgzc first, in the order of [`time_variant`]'s arms.
    fn variants(self) -> &'static [&'static str] {
        match self {
            Work::WalkDecode => &["msgzc", "libc", "libc_checked"],
            Work::WalkOnly => &["msgzc", "libc_checked"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Work::WalkDecode => "walk + decode",
            Work::WalkOnly => "walk alone",
        }
    }
}

/// One timed block of `walk`; `len` is opaque, as a caller gets it from
/// each `recvmsg`.
#[inline(never)]
fn time_block<F: Fn(&mut [u8], usize) -> u64>(walk: F, buf: &mut [u8], len: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..CALLS {
        black_box(walk(black_box(&mut *buf), black_box(len)));
    }
    start.elapsed()
}

fn time_variant(work: Work, variant: usize, buf: &mut [u8], len: usize) -> Duration {
    match (work, variant) {
        (Work::WalkDecode, 0) => time_block(|b: &mut [u8], l| msgzc_walk(b, l), buf, len),
        (Work::WalkDecode, 1) => time_block(libc_walk, buf, len),
        (Work::WalkDecode, _) => time_block(libc_checked_walk, buf, len),
        (Work::WalkOnly, 0) => time_block(|b: &mut [u8], l| msgzc_walk_only(b, l), buf, len),
        (Work::WalkOnly, _) => time_block(libc_checked_walk_only, buf, len),
    }
}

/// The `q` quantile of sorted `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn measure(work: Work, n: usize, rounds: usize, print: bool) {
    let (mut buf, len) = errqueue_buffer(n);
    let expect = msgzc_walk(buf.as_bytes(), len);
    assert_eq!(libc_walk(buf.as_mut_bytes(), len), expect);
    assert_eq!(libc_checked_walk(buf.as_mut_bytes(), len), expect);
    let walked = msgzc_walk_only(buf.as_bytes(), len);
    assert_eq!(libc_checked_walk_only(buf.as_mut_bytes(), len), walked);
    let variants = work.variants();
    let mut fastest = vec![Duration::MAX; variants.len()];
    let mut ratios = vec![Vec::with_capacity(rounds); variants.len() - 1];
    let mut t = vec![Duration::ZERO; variants.len()];
    for round in 0..rounds {
        for k in 0..variants.len() {
            let v = (round + k) % variants.len();
            t[v] = time_variant(work, v, buf.as_mut_bytes(), len);
        }
        for (best, t) in fastest.iter_mut().zip(&t) {
            *best = (*best).min(*t);
        }
        for (baseline, r) in ratios.iter_mut().enumerate() {
            r.push(t[0].as_secs_f64() / t[baseline + 1].as_secs_f64());
        }
    }
    if !print {
        return;
    }
    let per_call = |d: Duration| d.as_secs_f64() * 1e9 / f64::from(CALLS);
    for (baseline, r) in ratios.iter_mut().enumerate() {
        r.sort_by(f64::total_cmp);
        let (ours, theirs) = (per_call(fastest[0]), per_call(fastest[baseline + 1]));
        println!(
            "| {} | {n} | {ours:.2} ns | {} | {theirs:.2} ns | {:.3} | {:.3} ({:.3}–{:.3}) |",
            work.name(),
            variants[baseline + 1],
            ours / theirs,
            quantile(r, 0.5),
            quantile(r, 0.1),
            quantile(r, 0.9),
        );
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if !full {
        for work in [Work::WalkDecode, Work::WalkOnly] {
            for n in [1, 8] {
                measure(work, n, 10, false);
            }
        }
        println!("walk_paired: smoke test passed (run with --bench to measure)");
        return;
    }
    let rounds = 4000;
    println!("{rounds} rounds of {CALLS} calls per variant");
    println!();
    println!("| work | notifications | msgzc (fastest) | baseline | baseline (fastest) | ratio | per-round ratio, median (p10–p90) |");
    println!("|---|---|---|---|---|---|---|");
    for work in [Work::WalkDecode, Work::WalkOnly] {
        for n in [1, 8] {
            measure(work, n, rounds, true);
        }
    }
}
