//! `bench --sweep SIZES`: where zerocopy starts to pay, the measurement
//! behind `msgzc_cmsg::policy::DEFAULT_THRESHOLD`.
//!
//! For each network, protocol and payload size it runs the `copy` and
//! `zc-drain` modes in `--rounds` interleaved rounds (the mode that goes
//! first alternates, since on a shared machine the second of two runs in a
//! row tends to measure differently) and reports the medians of the
//! within-round ratios zerocopy / copy: throughput (MB/s) and CPU per
//! byte. Ratios are only taken within one round.
//!
//! On loopback and veth Linux completes every `MSG_ZEROCOPY` send with a
//! deferred copy, so there zerocopy does the copy anyway and only adds its
//! own work (pinning, the notification, reading it). That extra CPU per
//! send is what the sweep can measure here; beside it stands the copy a
//! device that keeps the pages would save, timed for the same size
//! (`pread` from the page cache less a one-byte `pread`, as the bench's
//! calibration does). The size from which the saved copy exceeds the
//! added work is printed too; since the added work includes the deferred
//! copy's own (new pages, a copy per fragment), it is a bound, not the
//! break-even on a device that keeps the pages.

use super::rounds::median;
use super::{calibration_line, header, names, Opts};
use msgzc_conformance_agent::bench::engine::{measure, open_net, Network};
use msgzc_conformance_agent::bench::{self as agent, kernel};
use msgzc_conformance_protocol::bench::{Measured, Mode, Proto};
use std::process::ExitCode;

/// One size's rounds on one network and protocol.
struct Point {
    size: usize,
    /// (copy, zerocopy) per round.
    rounds: Vec<(Measured, Measured)>,
    /// The copy of one payload, µs (calibration).
    copy_us: Option<f64>,
}

/// CPU µs per send.
fn cpu_us_per_send(m: &Measured) -> f64 {
    m.cpu_secs * 1e6 / m.sends.max(1) as f64
}

impl Point {
    fn throughput_ratio(&self) -> f64 {
        median(
            self.rounds
                .iter()
                .map(|(c, z)| z.mb_per_s() / c.mb_per_s())
                .collect(),
        )
    }

    fn cpu_ratio(&self) -> f64 {
        median(
            self.rounds
                .iter()
                .map(|(c, z)| z.cpu_ms_per_mb() / c.cpu_ms_per_mb())
                .collect(),
        )
    }

    /// CPU µs per send that zerocopy adds (median over rounds).
    fn added_us(&self) -> f64 {
        median(
            self.rounds
                .iter()
                .map(|(c, z)| cpu_us_per_send(z) - cpu_us_per_send(c))
                .collect(),
        )
    }

    fn copied(&self) -> (u64, u64) {
        self.rounds.iter().fold((0, 0), |(c, n), (_, z)| {
            (c + z.copied, n + z.copied + z.zerocopy)
        })
    }
}

/// One size's interleaved rounds.
fn rounds(
    net: &Network,
    proto: Proto,
    o: &Opts,
    size: usize,
) -> Result<Vec<(Measured, Measured)>, String> {
    let run = |mode| {
        measure(
            net,
            proto,
            mode,
            size,
            o.intervals[0],
            o.common.secs,
            o.common.cpu,
        )
    };
    (0..o.common.rounds)
        .map(|r| {
            if r % 2 == 0 {
                let c = run(Mode::Copy)?;
                Ok((c, run(Mode::Drain)?))
            } else {
                let z = run(Mode::Drain)?;
                Ok((run(Mode::Copy)?, z))
            }
        })
        .collect()
}

/// Runs the sweep for one network and protocol: the sizes measured, and
/// a table line for each that could not be.
fn sweep_one(net: &Network, proto: Proto, o: &Opts, sizes: &[usize]) -> (Vec<Point>, Vec<String>) {
    let (mut points, mut failed) = (Vec::new(), Vec::new());
    for &size in sizes {
        let rounds = match rounds(net, proto, o, size) {
            Ok(r) => r,
            Err(e) => {
                let line = format!(
                    "| {} | {} | {size} | unavailable: {e} | | | | | | |",
                    net.net(),
                    proto.name()
                );
                println!("{line}");
                failed.push(line);
                continue;
            }
        };
        let copy_us = kernel::calibrate(size).ok().map(|c| c.copy_us());
        let p = Point {
            size,
            rounds,
            copy_us,
        };
        println!("{}", row(net.net().name(), proto, &p));
        points.push(p);
    }
    (points, failed)
}

fn row(net: &str, proto: Proto, p: &Point) -> String {
    let (copied, all) = p.copied();
    let last = p.rounds.last().map(|(c, z)| (c.mb_per_s(), z.mb_per_s()));
    let (c_mb, z_mb) = last.unwrap_or((f64::NAN, f64::NAN));
    format!(
        "| {net} | {} | {} | {c_mb:.0} | {z_mb:.0} | {:.2} | {:.2} | {:.2} | {} | {copied}/{all} |",
        proto.name(),
        p.size,
        p.throughput_ratio(),
        p.cpu_ratio(),
        p.added_us(),
        p.copy_us.map_or("-".into(), |u| format!("{u:.2}")),
    )
}

/// The smallest size from which on the timed copy exceeds the CPU that
/// zerocopy adds, at that size and every larger one.
fn break_even(points: &[Point]) -> Option<usize> {
    let pays = |p: &Point| p.copy_us.is_some_and(|c| c > p.added_us());
    let first_failing_from_end = points.iter().rposition(|p| !pays(p));
    match first_failing_from_end {
        None => points.first().map(|p| p.size),
        Some(i) => points.get(i + 1).map(|p| p.size),
    }
}

/// The summary line of one network and protocol.
fn note(net: &str, proto: Proto, points: &[Point]) -> String {
    let pays = points.iter().filter(|p| p.throughput_ratio() >= 1.0);
    let measured = pays.map(|p| p.size.to_string()).collect::<Vec<_>>();
    format!(
        "- {net} {}: zerocopy at least as fast as copy at {}; the copy of the payload exceeds what zerocopy adds from {} on",
        proto.name(),
        if measured.is_empty() { "no size".into() } else { measured.join(", ") + " bytes" },
        break_even(points).map_or("no size".into(), |s| format!("{s} bytes")),
    )
}

/// `bench --sweep`: runs it, prints the table and writes it to
/// `--markdown`; fails when a loopback measurement failed.
pub(super) fn main(o: &Opts, sizes: &[usize]) -> ExitCode {
    agent::loopback_up();
    let (lo, hi) = (sizes.iter().min(), sizes.iter().max());
    let payload = format!("{}..{}", lo.unwrap_or(&0), hi.unwrap_or(&0));
    let header = header(&agent::machine(), &payload, o.common.secs);
    println!("{header}");
    let calibration = calibration_line(&kernel::calibrate(o.size).map_err(|e| e.to_string()));
    println!("{calibration}");
    let (table, ok) = run(o, sizes, &format!("{header}.\n\n{calibration}"));
    println!("\n{table}");
    if let Some(p) = &o.common.markdown {
        if let Err(e) = std::fs::write(p, &table) {
            eprintln!("{p}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs the whole sweep; returns the markdown table and whether every
/// loopback measurement ran.
fn run(o: &Opts, sizes: &[usize], header: &str) -> (String, bool) {
    let mut t = format!(
        "{header}\n\nCommand: `cargo run --release -p msgzc-conformance -- bench --sweep {} --net {} --proto {} --interval {} --secs {} --rounds {}`\n\n",
        sizes.iter().map(usize::to_string).collect::<Vec<_>>().join(","),
        names(&o.nets),
        names(&o.protos),
        o.intervals[0],
        o.common.secs,
        o.common.rounds,
    );
    let head = "| net | proto | bytes | copy MB/s | zc MB/s | zc/copy MB/s | zc/copy CPU per byte | zc adds CPU µs/send | copy of payload µs | copied |\n|---|---|---|---|---|---|---|---|---|---|";
    println!("{head}");
    t.push_str(head);
    t.push('\n');
    let mut ok = true;
    let mut notes = Vec::new();
    for &net_name in &o.nets {
        let (veth, net) = open_net(net_name);
        let net_name = net_name.name();
        for &proto in &o.protos {
            let (points, failed) = match &net {
                Ok(n) => sweep_one(n, proto, o, sizes),
                Err(e) => (
                    Vec::new(),
                    vec![format!(
                        "| {net_name} | {} | unavailable: {e} | | | | | | | |",
                        proto.name()
                    )],
                ),
            };
            for line in points
                .iter()
                .map(|p| row(net_name, proto, p))
                .chain(failed.iter().cloned())
            {
                t.push_str(&line);
                t.push('\n');
            }
            ok &= net_name != "loopback" || failed.is_empty();
            if !points.is_empty() {
                notes.push(note(net_name, proto, &points));
            }
        }
        drop(veth);
    }
    t.push_str(&format!(
        "\nRatios are medians over rounds of zerocopy (`zc-drain`, completions read every {} sends) against copy in the same round. \
         `zc adds`: CPU per send of zerocopy less that of copy (sender and receiver threads). \
         `copy of payload`: the kernel's copy of one payload, timed alone: \
         what a device that keeps the pages saves. What zerocopy adds here includes the deferred copy's own work \
         (new pages, a copy per fragment), so the size from which the saved copy exceeds it bounds from above where zerocopy starts to pay on such a device.\n\n{}\n",
        o.intervals[0],
        notes.join("\n")
    ));
    (t, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(size: usize, copy_us: f64, added_us: f64) -> Point {
        let c = Measured {
            secs: 1.0,
            bytes: 1,
            sends: 1,
            cpu_secs: 1e-6,
            ..Measured::default()
        };
        let z = Measured {
            cpu_secs: (1.0 + added_us) * 1e-6,
            ..c
        };
        Point {
            size,
            rounds: vec![(c, z)],
            copy_us: Some(copy_us),
        }
    }

    #[test]
    fn break_even_is_the_start_of_the_paying_tail() {
        let pts = [
            point(1, 0.1, 1.0),
            point(2, 2.0, 1.0), // pays, but a larger size does not
            point(4, 0.5, 1.0),
            point(8, 3.0, 1.0),
            point(16, 6.0, 1.0),
        ];
        assert_eq!(break_even(&pts), Some(8));
        assert_eq!(break_even(&pts[3..]), Some(8));
        assert_eq!(break_even(&pts[..3]), None);
    }
}
