//! `bench --same-receiver --selftest PATH`: our `zc-drain` sender against
//! the kernel selftest's own sender (`msg_zerocopy -z`), each run against
//! a fresh instance of the same receiver, the selftest's `-r`, so that only
//! the senders differ.
//!
//! Both senders are separate processes pinned to `--cpu` (default 0), the
//! receiver to `--receiver-cpu` (default 1), as the selftest pins itself
//! (`-C`). Ours is this binary's sender-only mode (`bench --connect`).
//! Rounds interleave the two, alternating which goes first, so that a
//! change in the machine's load hits both; each round gives one ratio
//! (our MB/s over the selftest's), and the table gives their median and
//! range, with the load average before and after.

use super::rounds::{loadavg, median};
use super::Opts;
use msgzc_conformance_agent::bench::kernel::{self, children_cpu, Receiver};
use msgzc_conformance_protocol::bench::{Measured, Proto};
use std::fmt::Write as _;
use std::process::{Command, ExitCode, Stdio};

/// One protocol and interval: every round's measurement of each sender.
struct Cell {
    proto: Proto,
    interval: usize,
    ours: Vec<Measured>,
    theirs: Vec<Measured>,
    /// Runs that failed, with why.
    failed: Vec<String>,
}

/// One run of one sender against a fresh, pinned receiver.
fn one(o: &Opts, bin: &str, proto: Proto, interval: usize, ours: bool) -> Result<Measured, String> {
    let t = kernel::whole_secs(o.common.secs);
    let cpu = o.common.cpu.unwrap_or(0);
    let cpu0 = children_cpu();
    let rx =
        Receiver::start(bin, proto, o.size, t, Some(o.receiver_cpu)).map_err(|e| e.to_string())?;
    let (name, out) = if ours {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let to = if proto.is_ipv4() {
            format!("127.0.0.1:{}", rx.port)
        } else {
            format!("[::1]:{}", rx.port)
        };
        let out = Command::new(&exe)
            .args(["bench", "--connect", &to, "--proto", proto.name()])
            .args(["--mode", "zc-drain", "--cpu", &cpu.to_string()])
            .args(["--interval", &interval.to_string()])
            .args(["--size", &o.size.to_string()])
            // The selftest's `-t` adds 0.2 s to its whole seconds.
            .args(["--secs", &format!("{:.1}", t as f64 + 0.2)])
            .stdin(Stdio::null())
            .output();
        (exe.display().to_string(), out)
    } else {
        let mut cmd = kernel::sender(bin, proto, rx.port, (o.size, interval, t), false, Some(cpu));
        (bin.to_string(), cmd.output())
    };
    // The sender has been waited for, the receiver not yet: this is the
    // sender's CPU time alone.
    let sender_cpu = children_cpu() - cpu0;
    rx.stop();
    kernel::sender_result(&name, out, sender_cpu).map_err(|e| e.to_string())
}

/// Runs every round; prints one line per run.
fn measure(o: &Opts, bin: &str) -> Vec<Cell> {
    let mut cells: Vec<Cell> = o
        .protos
        .iter()
        .flat_map(|&proto| {
            o.intervals.iter().map(move |&interval| Cell {
                proto,
                interval,
                ours: Vec::new(),
                theirs: Vec::new(),
                failed: Vec::new(),
            })
        })
        .collect();
    for round in 0..o.common.rounds {
        for (i, c) in cells.iter_mut().enumerate() {
            // Alternate who goes first, across cells and rounds.
            let first_ours = (round + i) % 2 == 0;
            for ours in [first_ours, !first_ours] {
                let who = if ours { "zc-drain" } else { "kernel-selftest" };
                let r = one(o, bin, c.proto, c.interval, ours);
                let head = format!(
                    "round {} {:<5} interval {:<3} {who:<16}",
                    round + 1,
                    c.proto.name(),
                    c.interval
                );
                match r {
                    Ok(m) => {
                        println!(
                            "{head} {:>8.1} MB/s  {:.3} syscalls/send",
                            m.mb_per_s(),
                            m.syscalls_per_send()
                        );
                        if ours { &mut c.ours } else { &mut c.theirs }.push(m);
                    }
                    Err(e) => {
                        println!("{head} failed: {e}");
                        c.failed.push(format!("{who}: {e}"));
                    }
                }
            }
        }
    }
    cells
}

/// Calls per send over every round, with its parts (send + error-queue
/// reads + poll).
fn calls_text(runs: &[Measured]) -> String {
    let sends = runs.iter().map(|m| m.sends).sum::<u64>().max(1) as f64;
    let sum = |f: fn(&Measured) -> u64| runs.iter().map(f).sum::<u64>() as f64 / sends;
    format!(
        "{:.3} ({:.3} + {:.3} + {:.3})",
        sum(|m| m.calls.total()),
        sum(|m| m.calls.send),
        sum(|m| m.calls.errqueue),
        sum(|m| m.calls.poll)
    )
}

fn row(c: &Cell) -> String {
    // Pair the rounds in which both ran.
    let ratios: Vec<f64> = c
        .ours
        .iter()
        .zip(&c.theirs)
        .map(|(a, b)| a.mb_per_s() / b.mb_per_s())
        .collect();
    let mbs = |v: &[Measured]| median(v.iter().map(Measured::mb_per_s).collect());
    // Sender CPU per send: unlike MB/s, hardly moved by other load on the
    // machine (which delays a sender more than it makes it work).
    let cpu = |v: &[Measured]| {
        median(
            v.iter()
                .map(|m| m.cpu_secs * 1e6 / m.sends.max(1) as f64)
                .collect(),
        )
    };
    let (lo, hi) = ratios
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &r| {
            (l.min(r), h.max(r))
        });
    let failed = match c.failed.first() {
        None => String::new(),
        Some(e) => format!(" ({} runs failed: {e})", c.failed.len()),
    };
    format!(
        "| {} | {} | {:.1} | {:.1} | **{:.2}** | {lo:.2}–{hi:.2} ({} rounds){failed} | {} | {} | {:.2} / {:.2} ({:.2}) |",
        c.proto.name(),
        c.interval,
        mbs(&c.ours),
        mbs(&c.theirs),
        median(ratios.clone()),
        ratios.len(),
        calls_text(&c.ours),
        calls_text(&c.theirs),
        cpu(&c.ours),
        cpu(&c.theirs),
        cpu(&c.ours) / cpu(&c.theirs)
    )
}

fn markdown(o: &Opts, bin: &str, cells: &[Cell], load: (&str, &str)) -> String {
    let mut t = String::new();
    // The cache directory's name (version and inputs' hash), not the
    // machine's path.
    let shown = std::path::Path::new(bin)
        .parent()
        .and_then(|d| d.file_name())
        .map_or(bin.into(), |d| d.to_string_lossy());
    let m = msgzc_conformance_agent::bench::machine();
    let _ = writeln!(
        t,
        "Linux {}, {} CPU(s) ({}), msg_zerocopy from `ci/msg-zerocopy` ({shown}).\n",
        m.kernel, m.cpus, m.model
    );
    let ivs: Vec<String> = o.intervals.iter().map(usize::to_string).collect();
    let protos: Vec<&str> = o.protos.iter().map(|p| p.name()).collect();
    let _ = writeln!(
        t,
        "Command: `cargo run --release -p msgzc-conformance -- bench --same-receiver --selftest MSG_ZEROCOPY \
         --proto {} --interval {} --size {} --secs {} --rounds {} --cpu {} --receiver-cpu {}`\n",
        protos.join(","),
        ivs.join(","),
        o.size,
        o.common.secs,
        o.common.rounds,
        o.common.cpu.unwrap_or(0),
        o.receiver_cpu
    );
    let _ = writeln!(
        t,
        "Load average (1, 5, 15 min): {} before, {} after.\n",
        load.0, load.1
    );
    t.push_str(
        "| proto | interval | zc-drain MB/s | selftest MB/s | ratio (median) | ratio range | \
         syscalls/send, zc-drain (send + errqueue + poll) | syscalls/send, selftest | sender CPU µs/send, zc-drain / selftest |\n",
    );
    t.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for c in cells {
        t.push_str(&row(c));
        t.push('\n');
    }
    t.push_str(
        "\nEach round runs both senders, one after the other in alternating order, each against a \
         fresh `msg_zerocopy -r` (the same receiver program, pinned to the receiver CPU), each \
         sender pinned to the sender CPU. MB/s: bytes sent over the sender's run, its final wait \
         for completions included (the selftest's own `ms`). Ratio: zc-drain over the selftest in \
         the same round; median and range over the rounds. Syscalls per send: over all rounds; \
         `errqueue` counts every read of the error queue (the selftest: one `recvmsg` per \
         notification plus the empty one; zc-drain: `recvmmsg` of up to 16); the selftest sends \
         with `MSG_DONTWAIT` and polls for `POLLOUT` after every send. Sender CPU: the sender \
         process's user and system time (its start included, and loopback's receive path, which \
         runs in the sender's context) over its sends, median over the rounds, and in brackets \
         zc-drain's over the selftest's: less moved by other load than MB/s.\n",
    );
    t
}

/// The `--same-receiver` comparison.
pub(super) fn main(o: &Opts) -> ExitCode {
    let Some(bin) = o.selftest.as_deref() else {
        eprintln!("bench: --same-receiver needs --selftest MSG_ZEROCOPY");
        return ExitCode::from(2);
    };
    let before = loadavg();
    println!(
        "msgzc bench --same-receiver: payload {} bytes, {} s per run, {} rounds, load {before}",
        o.size, o.common.secs, o.common.rounds
    );
    let cells = measure(o, bin);
    let table = markdown(o, bin, &cells, (&before, &loadavg()));
    println!("\n{table}");
    if let Some(p) = &o.common.markdown {
        if let Err(e) = std::fs::write(p, &table) {
            eprintln!("{p}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if cells.iter().any(|c| !c.failed.is_empty()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
