//! [`SendPolicy`]: whether the next send should use `MSG_ZEROCOPY`, a pure
//! state machine (no system calls, no clock of its own) that recovers.
//!
//! Zerocopy does not always pay:
//!
//! - **Small payloads.** Pinning pages and reading a notification cost more
//!   than copying a few kilobytes. Sends shorter than
//!   [`PolicyConfig::threshold`] go by copy.
//! - **Paths that copy anyway.** On loopback, veth, through packet taps or
//!   to devices without scatter-gather, the kernel completes every send
//!   with a deferred copy (`SO_EE_CODE_ZEROCOPY_COPIED`): zerocopy then
//!   does the copy *and* its own work. After
//!   [`PolicyConfig::copied_in_a_row`] copied completions in a row the
//!   policy falls back to copy.
//! - **But paths change** (routes, bonding, a tap detached), so a policy
//!   that fell back sends one *probe* with `MSG_ZEROCOPY` after
//!   [`PolicyConfig::probe_after_sends`] copied sends or
//!   [`PolicyConfig::probe_after`] of the caller's clock, whichever comes
//!   first. A probe whose completion is not copied (or any completion that
//!   is not) turns zerocopy back on.
//!
//! Every [`decide`](SendPolicy::decide) returns a [`Decision`] that names
//! its reason, and [`PolicyStats`] counts them.
//!
//! The caller supplies time as a [`Duration`] since any fixed start (with
//! `std`, `Instant::elapsed` of one `Instant`); a clock that goes back is
//! treated as standing still.
//!
//! ## Where [`DEFAULT_THRESHOLD`] comes from
//!
//! The kernel's documentation (`Documentation/networking/msg_zerocopy.rst`)
//! says zerocopy is generally only effective above about 10 KB.
//! `ci/bench-threshold` (`msgzc-conformance bench --sweep`; the table is in
//! `docs/benchmarks.md`, "Send policy threshold") measured copy against
//! zerocopy from 1 KiB to 64 KiB on this project's host (Linux 6.18, two
//! shared AMD EPYC vCPUs), in interleaved rounds, ratios within a round.
//! Loopback and veth are the paths it has, and on both every completion is
//! a deferred copy:
//!
//! - Zerocopy did not pay there. On loopback (TCP and UDP) and veth TCP
//!   its CPU per byte was 1.24x to 2.43x copy's and its throughput 0.39x
//!   to 0.84x; veth UDP (fragmented datagrams, slow either way) stayed
//!   near parity, 0.95x to 1.53x CPU per byte and 0.44x to 1.07x
//!   throughput. No threshold helps on such paths: the copied fallback
//!   does.
//! - Its fixed cost per send (pinning, the notification, reading it)
//!   dominates below 8 KiB: on TCP its CPU per byte against copy falls
//!   from 2.3x (loopback) and 2.4x (veth) at 1 KiB to 1.4x at 8 KiB, and
//!   hardly lower at larger sizes (1.3x to 1.9x, where the deferred
//!   copy's own per-byte work remains).
//!
//! A path that keeps the pages saves the copy, which this host cannot
//! show (the kernel variant that keeps them on loopback runs only under
//! emulation here, where copies cost several times more than on hardware);
//! in the loopback TCP rows the timed copy of one payload grew from
//! 0.6 µs at 8 KiB to 1.2 µs at 16 KiB, against 2.4 µs and 5.2 µs that
//! zerocopy added per send (an upper bound: that includes the deferred
//! copy's own work). The
//! default, 16 KiB, is the first power of two above both the kernel's
//! 10 KB and the sizes where the fixed cost dominates; set
//! [`PolicyConfig::threshold`] from a measurement of the real path.
#![forbid(unsafe_code)]

use core::time::Duration;

/// The default [`PolicyConfig::threshold`]: sends shorter than this are
/// copied. See the [module documentation](self) for the measurement.
///
/// ```
/// assert_eq!(msgzc_cmsg::policy::DEFAULT_THRESHOLD, 16 * 1024);
/// ```
pub const DEFAULT_THRESHOLD: usize = 16 * 1024;

/// How a [`SendPolicy`] decides (see the [module documentation](self)).
///
/// ```
/// use msgzc_cmsg::policy::PolicyConfig;
/// use std::time::Duration;
///
/// let c = PolicyConfig { threshold: 4096, probe_after: Duration::from_millis(100), ..PolicyConfig::DEFAULT };
/// assert_eq!(c.copied_in_a_row, PolicyConfig::DEFAULT.copied_in_a_row);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Sends shorter than this many bytes go by copy (0: none).
    pub threshold: usize,
    /// Copied completions in a row, with none zero-copied between them,
    /// after which sends go by copy (at least 1).
    pub copied_in_a_row: u32,
    /// Sends by copy (of at least `threshold` bytes) after which the next
    /// such send is a probe (at least 1).
    pub probe_after_sends: u32,
    /// Time after falling back, or after the last probe, when the next
    /// send of at least `threshold` bytes is a probe.
    pub probe_after: Duration,
}

impl PolicyConfig {
    /// [`DEFAULT_THRESHOLD`]; fall back after 64 copied completions in a
    /// row (as [`Advice`](crate::Advice) does); probe every 1024 copied
    /// sends or every second.
    pub const DEFAULT: PolicyConfig = PolicyConfig {
        threshold: DEFAULT_THRESHOLD,
        copied_in_a_row: 64,
        probe_after_sends: 1024,
        probe_after: Duration::from_secs(1),
    };
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How to send one payload, and why (see [`SendPolicy::decide`]).
///
/// ```
/// use msgzc_cmsg::policy::Decision;
///
/// assert!(Decision::Probe.zerocopy());
/// assert!(!Decision::BelowThreshold.zerocopy());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Copy: shorter than [`PolicyConfig::threshold`].
    BelowThreshold,
    /// Copy: completions kept coming back copied.
    CopiedFallback,
    /// `MSG_ZEROCOPY`, once, while falling back: to see whether the path
    /// still copies.
    Probe,
    /// `MSG_ZEROCOPY`.
    Zerocopy,
}

impl Decision {
    /// Whether to send with `MSG_ZEROCOPY`.
    pub fn zerocopy(self) -> bool {
        matches!(self, Decision::Probe | Decision::Zerocopy)
    }
}

/// What a [`SendPolicy`] did: decisions by reason, and its switches.
///
/// ```
/// use msgzc_cmsg::policy::{PolicyStats, SendPolicy};
/// use std::time::Duration;
///
/// let mut p = SendPolicy::default();
/// p.decide(100, Duration::ZERO);
/// p.decide(65536, Duration::ZERO);
/// let s = p.stats();
/// assert_eq!((s.below_threshold, s.zerocopy, s.to_copy), (1, 1, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyStats {
    /// Copied because shorter than the threshold.
    pub below_threshold: u64,
    /// Copied because completions came back copied.
    pub copied_fallback: u64,
    /// Probes sent with `MSG_ZEROCOPY` while falling back.
    pub probe: u64,
    /// Sent with `MSG_ZEROCOPY` as usual.
    pub zerocopy: u64,
    /// Completions reported, copied.
    pub completions_copied: u64,
    /// Completions reported, not copied.
    pub completions_zerocopy: u64,
    /// Switches to copy (fallbacks).
    pub to_copy: u64,
    /// Switches back to zerocopy (a completion that was not copied).
    pub to_zerocopy: u64,
}

/// Where the policy stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Zerocopy; `copied` completions in a row so far.
    Zerocopy { copied: u32 },
    /// Falling back: `copies` sends by copy (of at least the threshold)
    /// since `since`, the fallback or the last probe.
    Copy { copies: u32, since: Duration },
}

/// Whether to send with `MSG_ZEROCOPY`: a size threshold, a fallback to
/// copy when completions come back copied, and probes that turn zerocopy
/// back on when the path changes (see the [module documentation](self)).
///
/// Call [`decide`](Self::decide) before each send and
/// [`completed`](Self::completed) for each zerocopy send id the kernel
/// completes.
///
/// ```
/// use msgzc_cmsg::policy::{Decision, PolicyConfig, SendPolicy};
/// use std::time::Duration;
///
/// let config = PolicyConfig { copied_in_a_row: 2, probe_after_sends: 3, ..PolicyConfig::DEFAULT };
/// let mut p = SendPolicy::new(config);
/// let (big, t) = (65536, Duration::ZERO);
/// assert_eq!(p.decide(512, t), Decision::BelowThreshold);
/// assert_eq!(p.decide(big, t), Decision::Zerocopy);
/// // Loopback: completions come back copied.
/// p.completed(true, t);
/// p.completed(true, t);
/// assert_eq!(p.decide(big, t), Decision::CopiedFallback);
/// assert_eq!(p.decide(big, t), Decision::CopiedFallback);
/// assert_eq!(p.decide(big, t), Decision::CopiedFallback);
/// assert_eq!(p.decide(big, t), Decision::Probe);
/// // The route changed: the probe went without a copy.
/// p.completed(false, t);
/// assert_eq!(p.decide(big, t), Decision::Zerocopy);
/// assert_eq!((p.stats().to_copy, p.stats().to_zerocopy), (1, 1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendPolicy {
    config: PolicyConfig,
    state: State,
    stats: PolicyStats,
}

impl Default for SendPolicy {
    fn default() -> Self {
        Self::new(PolicyConfig::DEFAULT)
    }
}

impl SendPolicy {
    /// A policy that starts with zerocopy. Counts of 0 in `config` are
    /// taken as 1.
    pub const fn new(config: PolicyConfig) -> Self {
        let mut config = config;
        if config.copied_in_a_row == 0 {
            config.copied_in_a_row = 1;
        }
        if config.probe_after_sends == 0 {
            config.probe_after_sends = 1;
        }
        SendPolicy {
            config,
            state: State::Zerocopy { copied: 0 },
            stats: PolicyStats {
                below_threshold: 0,
                copied_fallback: 0,
                probe: 0,
                zerocopy: 0,
                completions_copied: 0,
                completions_zerocopy: 0,
                to_copy: 0,
                to_zerocopy: 0,
            },
        }
    }

    /// The configuration (counts of 0 raised to 1).
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> PolicyStats {
        self.stats
    }

    /// Whether the policy has fallen back to copy (probes aside).
    ///
    /// ```
    /// # use msgzc_cmsg::policy::{PolicyConfig, SendPolicy};
    /// # use std::time::Duration;
    /// let mut p = SendPolicy::new(PolicyConfig { copied_in_a_row: 1, ..PolicyConfig::DEFAULT });
    /// assert!(!p.falling_back());
    /// p.completed(true, Duration::ZERO);
    /// assert!(p.falling_back());
    /// ```
    pub fn falling_back(&self) -> bool {
        matches!(self.state, State::Copy { .. })
    }

    /// How to send `len` bytes at time `now`; counted in
    /// [`stats`](Self::stats). A send decided [`Decision::Probe`] restarts
    /// the wait for the next probe.
    pub fn decide(&mut self, len: usize, now: Duration) -> Decision {
        let d = if len < self.config.threshold {
            Decision::BelowThreshold
        } else {
            match &mut self.state {
                State::Zerocopy { .. } => Decision::Zerocopy,
                State::Copy { copies, since } => {
                    let waited = now.checked_sub(*since).unwrap_or(Duration::ZERO);
                    if *copies >= self.config.probe_after_sends || waited >= self.config.probe_after
                    {
                        (*copies, *since) = (0, now);
                        Decision::Probe
                    } else {
                        *copies += 1;
                        Decision::CopiedFallback
                    }
                }
            }
        };
        let s = &mut self.stats;
        let n = match d {
            Decision::BelowThreshold => &mut s.below_threshold,
            Decision::CopiedFallback => &mut s.copied_fallback,
            Decision::Probe => &mut s.probe,
            Decision::Zerocopy => &mut s.zerocopy,
        };
        *n += 1;
        d
    }

    /// The kernel completed one `MSG_ZEROCOPY` send id at time `now`,
    /// `copied` or not (a range of ids: once per id). A completion that
    /// was not copied turns zerocopy (back) on; enough copied ones in a
    /// row turn it off.
    pub fn completed(&mut self, copied: bool, now: Duration) {
        if !copied {
            self.stats.completions_zerocopy += 1;
            if self.falling_back() {
                self.stats.to_zerocopy += 1;
            }
            self.state = State::Zerocopy { copied: 0 };
            return;
        }
        self.stats.completions_copied += 1;
        if let State::Zerocopy { copied } = &mut self.state {
            *copied += 1;
            if *copied >= self.config.copied_in_a_row {
                self.stats.to_copy += 1;
                self.state = State::Copy {
                    copies: 0,
                    since: now,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    const BIG: usize = 1 << 16;
    const T0: Duration = Duration::ZERO;
    /// Steps per generated run: fewer under Miri, which interprets each
    /// (ci/miri), than natively.
    const STEPS: usize = if cfg!(miri) { 40 } else { 300 };

    #[test]
    fn the_default_copies_below_16_kib_and_names_each_decision() {
        let mut p = SendPolicy::default();
        assert_eq!(p.decide(16 * 1024 - 1, T0), Decision::BelowThreshold);
        assert_eq!(p.decide(16 * 1024, T0), Decision::Zerocopy);
        let zerocopy: Vec<bool> = [
            Decision::BelowThreshold,
            Decision::CopiedFallback,
            Decision::Probe,
            Decision::Zerocopy,
        ]
        .into_iter()
        .map(Decision::zerocopy)
        .collect();
        assert_eq!(zerocopy, [false, false, true, true]);
    }

    #[test]
    fn completions_are_counted_by_kind() {
        let mut p = SendPolicy::default();
        for copied in [true, true, false, true] {
            p.completed(copied, T0);
        }
        let s = p.stats();
        assert_eq!((s.completions_copied, s.completions_zerocopy), (3, 1));
    }

    fn policy(copied_in_a_row: u32, probe_after_sends: u32, probe_after_ms: u64) -> SendPolicy {
        SendPolicy::new(PolicyConfig {
            threshold: 1000,
            copied_in_a_row,
            probe_after_sends,
            probe_after: Duration::from_millis(probe_after_ms),
        })
    }

    #[test]
    fn threshold_is_exclusive_and_zero_means_none() {
        let mut p = policy(1, 1, 1000);
        assert_eq!(p.decide(999, T0), Decision::BelowThreshold);
        assert_eq!(p.decide(1000, T0), Decision::Zerocopy);
        let mut none = SendPolicy::new(PolicyConfig {
            threshold: 0,
            ..PolicyConfig::DEFAULT
        });
        assert_eq!(none.decide(0, T0), Decision::Zerocopy);
    }

    #[test]
    fn below_threshold_wins_while_falling_back_and_does_not_count_toward_a_probe() {
        let mut p = policy(1, 2, 1000);
        p.completed(true, T0);
        assert!(p.falling_back());
        for _ in 0..10 {
            assert_eq!(p.decide(10, T0), Decision::BelowThreshold);
        }
        assert_eq!(p.decide(BIG, T0), Decision::CopiedFallback);
        assert_eq!(p.decide(BIG, T0), Decision::CopiedFallback);
        assert_eq!(p.decide(BIG, T0), Decision::Probe);
    }

    #[test]
    fn a_zero_copied_completion_resets_the_streak() {
        let mut p = policy(3, 1, 1000);
        p.completed(true, T0);
        p.completed(true, T0);
        p.completed(false, T0);
        p.completed(true, T0);
        p.completed(true, T0);
        assert!(!p.falling_back());
        p.completed(true, T0);
        assert!(p.falling_back());
        assert_eq!(p.stats().to_zerocopy, 0, "never fell back before");
    }

    #[test]
    fn probes_by_time_and_clock_going_back_stands_still() {
        let mut p = policy(1, u32::MAX, 50);
        p.completed(true, Duration::from_millis(100));
        let at = Duration::from_millis;
        assert_eq!(p.decide(BIG, at(120)), Decision::CopiedFallback);
        assert_eq!(p.decide(BIG, at(10)), Decision::CopiedFallback);
        assert_eq!(p.decide(BIG, at(150)), Decision::Probe);
        assert_eq!(p.decide(BIG, at(160)), Decision::CopiedFallback);
        assert_eq!(p.decide(BIG, at(200)), Decision::Probe);
    }

    #[test]
    fn a_copied_probe_stays_in_fallback_and_counts_are_raised_to_one() {
        let mut p = policy(0, 0, 1000);
        assert_eq!(p.config().copied_in_a_row, 1);
        p.completed(true, T0);
        assert_eq!(p.decide(BIG, T0), Decision::CopiedFallback);
        assert_eq!(p.decide(BIG, T0), Decision::Probe);
        p.completed(true, T0);
        assert!(p.falling_back());
        assert_eq!(p.decide(BIG, T0), Decision::CopiedFallback);
        let s = p.stats();
        assert_eq!((s.copied_fallback, s.probe, s.to_copy), (2, 1, 1));
        assert_eq!(s.completions_copied, 2);
    }

    /// One step of a run: a send of some size, or a completion.
    #[derive(Clone, Debug)]
    enum Step {
        Send(usize),
        Complete(bool),
        Tick(u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0usize..3000).prop_map(Step::Send),
            any::<bool>().prop_map(Step::Complete),
            (0u16..200).prop_map(Step::Tick),
        ]
    }

    /// Runs `steps`, returning every decision with the time it was made.
    fn run(p: &mut SendPolicy, steps: &[Step]) -> Vec<(Decision, Duration)> {
        let mut now = T0;
        let mut out = Vec::new();
        for s in steps {
            match *s {
                Step::Send(len) => out.push((p.decide(len, now), now)),
                Step::Complete(copied) => p.completed(copied, now),
                Step::Tick(ms) => now += Duration::from_millis(ms.into()),
            }
        }
        out
    }

    proptest! {
        #![proptest_config(crate::tests::proptest_config())]
        /// The stats count every decision under its reason.
        #[test]
        fn stats_count_every_decision(steps in proptest::collection::vec(step(), 0..STEPS)) {
            let mut p = policy(4, 8, 300);
            let ds = run(&mut p, &steps);
            let s = p.stats();
            let count = |d| ds.iter().filter(|(x, _)| *x == d).count() as u64;
            prop_assert_eq!(s.below_threshold, count(Decision::BelowThreshold));
            prop_assert_eq!(s.copied_fallback, count(Decision::CopiedFallback));
            prop_assert_eq!(s.probe, count(Decision::Probe));
            prop_assert_eq!(s.zerocopy, count(Decision::Zerocopy));
            // Each switch back needs one before it.
            prop_assert!(s.to_zerocopy <= s.to_copy && s.to_copy <= s.to_zerocopy + 1);
        }

        /// However sends and completions interleave, and whatever the
        /// clock does, while falling back a send of at least the threshold
        /// is a probe at least every `probe_after_sends + 1` such sends.
        #[test]
        fn always_probes_again(
            steps in proptest::collection::vec(step(), 0..STEPS),
            n in 1u32..10,
        ) {
            let mut p = policy(2, n, 1_000_000);
            let (mut run_of_copies, mut fallbacks) = (0u32, 0);
            let mut now = T0;
            for s in &steps {
                if p.stats().to_copy != fallbacks {
                    // A new fallback starts its own count.
                    (run_of_copies, fallbacks) = (0, p.stats().to_copy);
                }
                match *s {
                    Step::Send(len) => match p.decide(len, now) {
                        Decision::CopiedFallback => {
                            run_of_copies += 1;
                            prop_assert!(run_of_copies <= n);
                        }
                        Decision::BelowThreshold => {}
                        _ => run_of_copies = 0,
                    },
                    Step::Complete(copied) => p.completed(copied, now),
                    Step::Tick(ms) => now += Duration::from_millis(ms.into()),
                }
            }
            // And with nothing but copied completions, it still probes.
            for _ in 0..2 { p.completed(true, now); }
            let probes = (0..=n).filter(|_| p.decide(BIG, now) == Decision::Probe).count();
            prop_assert_eq!(probes, 1);
        }

        /// A path that always copies: after the fallback, at most one
        /// zerocopy send (a probe) per `probe_after_sends + 1` sends or per
        /// `probe_after`, however completions of probes interleave.
        #[test]
        fn never_oscillates_per_send(
            lens in proptest::collection::vec(1000usize..3000, 1..STEPS),
            ticks in proptest::collection::vec(0u16..40, 1..STEPS),
            complete_every in 1usize..5,
        ) {
            let (n, every) = (16u32, Duration::from_millis(100));
            let mut p = policy(4, n, 100);
            let mut now = T0;
            let mut outstanding = 0u32;
            let mut probes: Vec<(usize, Duration)> = Vec::new();
            for (i, &len) in lens.iter().enumerate() {
                now += Duration::from_millis(ticks[i % ticks.len()].into());
                let d = p.decide(len, now);
                if d.zerocopy() { outstanding += 1; }
                if d == Decision::Probe { probes.push((i, now)); }
                if i % complete_every == 0 {
                    for _ in 0..outstanding { p.completed(true, now); }
                    outstanding = 0;
                }
            }
            prop_assert!(p.stats().to_copy <= 1);
            for w in probes.windows(2) {
                let ((i, t), (j, u)) = (w[0], w[1]);
                prop_assert!(j - i > n as usize || u - t >= every, "{:?}", w);
            }
        }
    }
}
