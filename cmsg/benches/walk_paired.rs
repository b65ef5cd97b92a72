//! Walk + decode of an error-queue buffer (and the walk alone), msgzc
//! against the same work in C (`walks`), measured as pairs: every round
//! times a block of calls of each variant, in rotating order, so that what
//! disturbs one round (the machine's load, its clock) disturbs all alike.
//!
//! Each process measures every variant for 1 and 8 notifications: the
//! median of the per-round ratios (msgzc's time over a baseline's in the
//! same round) and each variant's fastest round (noise only ever adds
//! time). A variant's block runs in every copy of the timing loop, each
//! placed differently in the code (see `walks`), so that no figure rests
//! on where one loop happened to land. The same code's speed also differs
//! a little from one process to the next, so the benchmark runs itself in
//! several processes and reports the median over them with their range.
//! `cargo bench -p msgzc-cmsg --bench walk_paired`; run without `--bench`
//! (as `cargo test --benches` does, unoptimized) it makes a few rounds as
//! a smoke test and prints no figures.

mod walks;

use std::time::Duration;
use walks::{
    errqueue_buffer, libc_checked_walk, libc_checked_walk_only, libc_walk, msgzc_walk,
    msgzc_walk_only, time_walk, OFFSETS,
};

/// Calls per copy of the timing loop in a block: long against the clock's
/// resolution, short against the machine's drifts.
const CALLS: u64 = 1000;
/// Calls of a variant in a round: [`CALLS`] in each copy of the loop.
const ROUND_CALLS: u64 = CALLS * OFFSETS as u64;

/// What is measured, and for how many notifications.
const WORKS: [Work; 2] = [Work::WalkDecode, Work::WalkOnly];
const NOTIFICATIONS: [usize; 2] = [1, 8];

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

/// One timed block of `variant` of `work`: [`CALLS`] calls in each copy of
/// the timing loop.
fn time_variant(work: Work, variant: usize, buf: &mut [u8], len: usize) -> Duration {
    let calls = ROUND_CALLS;
    match (work, variant) {
        (Work::WalkDecode, 0) => time_walk(msgzc_walk, buf, len, calls),
        (Work::WalkDecode, 1) => time_walk(libc_walk, buf, len, calls),
        (Work::WalkDecode, _) => time_walk(libc_checked_walk, buf, len, calls),
        (Work::WalkOnly, 0) => time_walk(msgzc_walk_only, buf, len, calls),
        (Work::WalkOnly, _) => time_walk(libc_checked_walk_only, buf, len, calls),
    }
}

/// The `q` quantile of sorted `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// One process's result for one (work, notifications, baseline).
struct Row {
    work: &'static str,
    n: usize,
    baseline: &'static str,
    /// Fastest round per call, msgzc and the baseline, in ns.
    ours: f64,
    theirs: f64,
    /// The median of the per-round ratios.
    median: f64,
}

fn measure(work: Work, n: usize, rounds: usize) -> Vec<Row> {
    let (mut buf, len) = errqueue_buffer(n);
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
    let per_call = |d: Duration| d.as_secs_f64() * 1e9 / ROUND_CALLS as f64;
    let mut rows = Vec::new();
    for (baseline, r) in ratios.iter_mut().enumerate() {
        r.sort_by(f64::total_cmp);
        rows.push(Row {
            work: work.name(),
            n,
            baseline: variants[baseline + 1],
            ours: per_call(fastest[0]),
            theirs: per_call(fastest[baseline + 1]),
            median: quantile(r, 0.5),
        });
    }
    rows
}

/// Every variant's answer for `n` notifications agrees with msgzc's.
fn check_agreement(n: usize) {
    let (mut buf, len) = errqueue_buffer(n);
    let expect = msgzc_walk(buf.as_mut_bytes(), len);
    assert_eq!(libc_walk(buf.as_mut_bytes(), len), expect);
    assert_eq!(libc_checked_walk(buf.as_mut_bytes(), len), expect);
    let walked = msgzc_walk_only(buf.as_mut_bytes(), len);
    assert_eq!(libc_checked_walk_only(buf.as_mut_bytes(), len), walked);
}

fn measure_all(rounds: usize) -> Vec<Row> {
    NOTIFICATIONS.into_iter().for_each(check_agreement);
    let mut rows = Vec::new();
    for work in WORKS {
        for n in NOTIFICATIONS {
            rows.extend(measure(work, n, rounds));
        }
    }
    rows
}

/// Rows per process: one per baseline, work and notification count.
fn rows_per_process() -> usize {
    let baselines: usize = WORKS.iter().map(|w| w.variants().len() - 1).sum();
    baselines * NOTIFICATIONS.len()
}

/// Set in the processes the measurement runs in.
const CHILD: &str = "MSGZC_WALK_PAIRED_CHILD";
/// Processes per measurement: the same loop's speed differs a little from
/// one process to the next (where the loader put the code and the data),
/// so one process is one sample.
const PROCESSES: usize = 6;
const ROUNDS: usize = 1000;

/// Runs the measurement in [`PROCESSES`] fresh processes, one after the
/// other, and reads their rows (tab-separated on stdout).
fn run_processes() -> Vec<Vec<Row>> {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    (0..PROCESSES)
        .map(|_| {
            let out = std::process::Command::new(&exe)
                .arg("--bench")
                .env(CHILD, "1")
                .output()
                .expect("the benchmark runs itself");
            assert!(out.status.success(), "a measuring process failed");
            let text = String::from_utf8(out.stdout).expect("rows are text");
            let rows = measure_rows_from(&text);
            assert_eq!(
                rows.len(),
                rows_per_process(),
                "every process reports every row"
            );
            rows
        })
        .collect()
}

fn measure_rows_from(text: &str) -> Vec<Row> {
    let names = |s: &str| -> &'static str {
        ["walk + decode", "walk alone", "libc", "libc_checked"]
            .into_iter()
            .find(|&k| k == s)
            .expect("a known name")
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("row\t"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let num = |i: usize| f[i].parse::<f64>().expect("a number");
            Row {
                work: names(f[0]),
                n: f[1].parse().expect("a count"),
                baseline: names(f[2]),
                ours: num(3),
                theirs: num(4),
                median: num(5),
            }
        })
        .collect()
}

fn print_summary(processes: &[Vec<Row>]) {
    println!(
        "{} processes, each {ROUNDS} rounds; a round times {CALLS} calls of each variant in each of \
         {OFFSETS} copies of the timing loop; per process, the fastest round of each variant and \
         the median of the per-round ratios; below, the median over the processes and their range",
        processes.len()
    );
    println!();
    println!(
        "| work | notifications | baseline | msgzc, fastest | baseline, fastest | ratio, median (range) |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, row) in processes[0].iter().enumerate() {
        let pick = |f: fn(&Row) -> f64| {
            let mut v: Vec<f64> = processes.iter().map(|p| f(&p[i])).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let (ours, theirs, ratio) = (pick(|r| r.ours), pick(|r| r.theirs), pick(|r| r.median));
        println!(
            "| {} | {} | {} | {:.2} ns | {:.2} ns | {:.3} ({:.3}–{:.3}) |",
            row.work,
            row.n,
            row.baseline,
            quantile(&ours, 0.5),
            quantile(&theirs, 0.5),
            quantile(&ratio, 0.5),
            ratio[0],
            ratio[ratio.len() - 1],
        );
    }
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        for r in measure_all(ROUNDS) {
            let (w, n, b) = (r.work, r.n, r.baseline);
            println!("row\t{w}\t{n}\t{b}\t{}\t{}\t{}", r.ours, r.theirs, r.median);
        }
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        measure_all(10);
        println!("walk_paired: smoke test passed (run with --bench to measure)");
        return;
    }
    print_summary(&run_processes());
}
