//! What `bench --async-tcp` and `bench --udp-batch` share: their common
//! options, interleaved rounds of several modes against one loopback
//! receiver per run, the sender thread's CPU time, and medians with their
//! spread.
//!
//! Rounds rotate which mode goes first, so that a change in the machine's
//! load (it is shared) hits every mode alike; every ratio divides two
//! modes of the same round, and the tables give the median and range of
//! those per-round ratios.

use msgzc_conformance_agent::bench::engine::{self, Network};
use msgzc_conformance_protocol::bench::Proto;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

/// Options every round-based bench takes (and the main bench: the same
/// names and meanings).
#[derive(Clone, Debug, clap::Args)]
pub(super) struct Common {
    /// Seconds per run, in (0, 60].
    #[arg(long, value_name = "S", default_value_t = 1.0, value_parser = secs_arg)]
    pub secs: f64,
    /// Rounds, each running every mode once.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = number_in(1, 99))]
    pub rounds: usize,
    /// Where to write the markdown table.
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<String>,
    /// The CPU the sender thread is pinned to.
    #[arg(long, value_name = "N", value_parser = super::cpu_arg)]
    pub cpu: Option<usize>,
}

impl Common {
    /// The options as given again on a command line.
    pub fn args(&self) -> String {
        let cpu = self.cpu.map_or(String::new(), |c| format!(" --cpu {c}"));
        format!("--secs {} --rounds {}{cpu}", self.secs, self.rounds)
    }
}

/// `--secs`: seconds in (0, 60].
fn secs_arg(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 60.0 => Ok(s),
        _ => Err(format!("{v:?}: seconds in (0, 60]")),
    }
}

/// A value parser for a whole number in `lo..=hi` (each item of a list
/// where the option takes one).
pub(super) fn number_in(
    lo: usize,
    hi: usize,
) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |v| match v.parse::<usize>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("{v:?}: a number in {lo}..={hi}")),
    }
}

/// One sender run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Run {
    /// What the mode counts (bytes for TCP, datagrams for UDP).
    pub units: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Send calls that sent something (a `sendmmsg` or GSO send is one).
    pub sends: u64,
    /// Wall time, the final wait for completions included.
    pub secs: f64,
    /// The sender thread's CPU time (user and system, loopback's receive
    /// path in its context included).
    pub cpu: f64,
    /// The sender's system calls (sends, error-queue reads, polls); `None`
    /// where the mode cannot count them.
    pub calls: Option<u64>,
    /// Completions that were deferred copies, and all completions.
    pub copied: u64,
    pub completions: u64,
}

impl Run {
    /// Units per second.
    pub fn rate(&self) -> f64 {
        self.units as f64 / self.secs
    }
}

/// The median of `v` (the mean of the middle two for an even count; NaN
/// for none).
pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    median_sorted(&v)
}

fn median_sorted(v: &[f64]) -> f64 {
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The median, smallest and largest of some per-round values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Spread {
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
    /// How many values.
    pub n: usize,
}

impl Spread {
    /// `None` for no values (and NaNs are left out).
    pub fn of(v: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = v.into_iter().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return None;
        }
        Some(Spread {
            median: median_sorted(&v),
            lo: v[0],
            hi: v[n - 1],
            n,
        })
    }

    /// `median (lo–hi)`, with `digits` decimals; `-` when there is nothing.
    pub fn text(s: Option<Spread>, digits: usize) -> String {
        match s {
            Some(s) => format!("{:.d$} ({:.d$}–{:.d$})", s.median, s.lo, s.hi, d = digits),
            None => "-".into(),
        }
    }
}

/// Every mode's runs, round by round (`runs[mode][round]`).
pub(super) struct Rounds {
    pub runs: Vec<Vec<Result<Run, String>>>,
}

impl Rounds {
    /// Per-round `f(a) / f(b)` of modes `a` and `b`, over the rounds in
    /// which both ran.
    pub fn ratio(&self, a: usize, b: usize, f: impl Fn(&Run) -> f64) -> Option<Spread> {
        Spread::of(
            self.runs[a]
                .iter()
                .zip(&self.runs[b])
                .filter_map(|(x, y)| Some(f(x.as_ref().ok()?) / f(y.as_ref().ok()?))),
        )
    }

    /// `f` over the mode's successful runs.
    pub fn each(&self, mode: usize, f: impl Fn(&Run) -> f64) -> Option<Spread> {
        Spread::of(
            self.runs[mode]
                .iter()
                .filter_map(|r| r.as_ref().ok().map(&f)),
        )
    }

    /// The mode's runs summed (for counts such as system calls per unit).
    pub fn total(&self, mode: usize) -> Run {
        let mut t = Run::default();
        for r in self.runs[mode].iter().flatten() {
            t.units += r.units;
            t.bytes += r.bytes;
            t.sends += r.sends;
            t.secs += r.secs;
            t.cpu += r.cpu;
            t.calls = r.calls.map(|c| c + t.calls.unwrap_or(0));
            t.copied += r.copied;
            t.completions += r.completions;
        }
        t
    }

    /// The first failure of the mode, with how many runs failed.
    pub fn failures(&self, mode: usize) -> Option<String> {
        let failed: Vec<&String> = self.runs[mode]
            .iter()
            .filter_map(|r| r.as_ref().err())
            .collect();
        failed
            .first()
            .map(|e| format!("{} failed: {e}", failed.len()))
    }
}

/// The order of `modes` modes in `round`: rotated by one each round, so
/// that each mode goes first (and last) equally often.
pub(super) fn order(round: usize, modes: usize) -> impl Iterator<Item = usize> {
    (0..modes).map(move |i| (round + i) % modes)
}

/// Runs `run(mode)` for every round and mode in rotating order, printing
/// a line per run (`label(mode, run)`).
pub(super) fn interleave(
    rounds: usize,
    modes: usize,
    mut run: impl FnMut(usize) -> Result<Run, String>,
    label: impl Fn(usize, &Result<Run, String>) -> String,
) -> Rounds {
    let mut runs: Vec<Vec<Result<Run, String>>> = (0..modes).map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for mode in order(round, modes) {
            let r = run(mode);
            println!("round {} {}", round + 1, label(mode, &r));
            runs[mode].push(r);
        }
    }
    Rounds { runs }
}

pub(super) use engine::thread_cpu;

/// Runs `send(receiver's address)` on a new thread (pinned to `cpu`)
/// against a receiver thread on loopback that reads everything.
pub(super) fn with_receiver(
    proto: Proto,
    cpu: Option<usize>,
    send: impl FnOnce(SocketAddr) -> Result<Run, String> + Send + 'static,
) -> Result<Run, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let rx_thread = {
        let stop = stop.clone();
        thread::spawn(move || engine::receiver(Network::Loopback, proto, stop, tx))
    };
    let res = rx
        .recv()
        .map_err(|_| "receiver died".to_string())
        .and_then(|a| a)
        .and_then(|to| {
            thread::spawn(move || {
                cpu.map_or(Ok(()), engine::pin)?;
                send(to)
            })
            .join()
            .map_err(|_| "sender panicked".to_string())?
        });
    stop.store(true, Ordering::Relaxed);
    let _ = rx_thread.join();
    res
}

/// The load average (1, 5 and 15 minutes).
pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The machine line of a table.
pub(super) fn machine(load: (&str, &str)) -> String {
    let mut t = String::new();
    let m = msgzc_conformance_agent::bench::machine();
    let _ = write!(
        t,
        "Linux {}, {} CPU(s) ({}); load average (1, 5, 15 min) {} before, {} after.",
        m.kernel, m.cpus, m.model, load.0, load.1
    );
    t
}

/// Writes `table` to the `--markdown` path, if any.
pub(super) fn write_markdown(c: &Common, table: &str) -> Result<(), String> {
    match &c.markdown {
        Some(p) => std::fs::write(p, table).map_err(|e| format!("{p}: {e}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn spread_of_odd_even_and_empty() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.lo, s.hi, s.n), (2.0, 1.0, 3.0, 3));
        let s = Spread::of([4.0, 1.0, 3.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.median, s.lo, s.hi, s.n), (2.5, 1.0, 4.0, 4));
        assert_eq!(Spread::of([]), None);
        assert_eq!(Spread::text(Some(s), 1), "2.5 (1.0–4.0)");
        assert_eq!(Spread::text(None, 1), "-");
    }

    #[test]
    fn every_mode_once_per_round_and_first_in_turn() {
        for round in 0..7 {
            let mut o: Vec<usize> = order(round, 4).collect();
            assert_eq!(o[0], round % 4);
            o.sort_unstable();
            assert_eq!(o, [0, 1, 2, 3]);
        }
    }

    fn run(units: u64, secs: f64, cpu: f64) -> Result<Run, String> {
        Ok(Run {
            units,
            secs,
            cpu,
            calls: Some(units / 2),
            ..Run::default()
        })
    }

    #[test]
    fn ratios_pair_rounds_and_skip_failures() {
        let r = Rounds {
            runs: vec![
                vec![run(200, 1.0, 0.5), run(300, 1.0, 0.5), run(100, 1.0, 0.1)],
                vec![run(100, 1.0, 1.0), Err("no".into()), run(100, 2.0, 0.1)],
            ],
        };
        // Rounds 1 and 3: 2.0 and 2.0 (100/s against 50/s).
        let s = r.ratio(0, 1, Run::rate).unwrap();
        assert_eq!((s.median, s.n), (2.0, 2));
        let cpu = r.ratio(0, 1, |m| m.cpu / m.units as f64).unwrap();
        assert_eq!((cpu.lo, cpu.hi), (0.25, 1.0));
        assert_eq!(r.each(1, Run::rate).unwrap().n, 2);
        let t = r.total(1);
        assert_eq!((t.units, t.calls), (200, Some(100)));
        assert_eq!(r.failures(1).as_deref(), Some("1 failed: no"));
        assert_eq!(r.failures(0), None);
    }

    #[test]
    fn common_options_and_numbers() {
        let parse = |args: &[&str]| crate::parse_args::<Common, _>(args);
        let c = parse(&["--secs", "2.5", "--cpu", "3"]).unwrap();
        assert_eq!((c.secs, c.rounds, c.cpu), (2.5, 5, Some(3)));
        assert_eq!(c.args(), "--secs 2.5 --rounds 5 --cpu 3");
        for bad in [
            &["--rounds", "0"][..],
            &["--secs", "0"],
            &["--secs", "61"],
            &["--size", "1"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let n = number_in(1, 65536);
        assert_eq!(n("8192"), Ok(8192));
        assert!(n("0").is_err() && n("x").is_err() && n("65537").is_err());
    }
}
