//! `bench`: end-to-end `MSG_ZEROCOPY` throughput, modelled on the kernel's
//! `msg_zerocopy` selftest, comparing ways of reading completions in one
//! run.
//!
//! A sender streams `--size`-byte payloads from one buffer to a receiver
//! thread for `--secs` per mode and reads completions every `--interval`
//! sends:
//!
//! - `copy`: plain `send`, no `MSG_ZEROCOPY` (the baseline for CPU cost);
//! - `zc-selftest`: `MSG_ZEROCOPY`, then the selftest's way: one
//!   `recvmsg(MSG_ERRQUEUE)` per notification until the queue is empty;
//! - `zc-drain`: `MSG_ZEROCOPY`, then `ZcSocket::drain` (`recvmmsg`,
//!   16 notifications per call);
//! - `zc-inline`: `MSG_ZEROCOPY` with an `SCM_ZC_NOTIFICATION` placeholder
//!   every `interval` sends (proposal v8); reported as unsupported when the
//!   kernel refuses or ignores the placeholder.
//!
//! `--selftest PATH` adds, on loopback, the kernel's own
//! `tools/testing/selftests/net/msg_zerocopy` (built by `ci/msg-zerocopy`
//! with `conformance/kernel/test-only/selftest-inline.patch`) as two more
//! modes, receiver and sender as separate processes:
//!
//! - `kernel-selftest`: its error-queue way (`-z -l INTERVAL`);
//! - `kernel-selftest-inline`: its `-n` way, an `SCM_ZC_NOTIFICATION`
//!   placeholder every `interval` sends (the v8 cover letter's "new").
//!
//! `--connect ADDR:PORT` runs the sender alone against a receiver that
//! runs elsewhere (`bench/connect.rs`); `--cpu N` pins the sender; and
//! `--same-receiver --selftest PATH` runs `zc-drain` that way against the
//! selftest's own receiver, beside the selftest's sender against another
//! instance of it, in interleaved rounds (`bench/versus.rs`).
//!
//! `--udp-batch` compares `sendmmsg` and GSO, with and without zerocopy
//! (`bench/udp_batch.rs`); `--async-tcp` the tokio sender against tokio's
//! `write_all` and the blocking socket (`bench/async_tcp.rs`, feature
//! `async-bench`).
//!
//! Every run also times one system call and the kernel's copy of one
//! payload (`--calibrate-only` prints just that), to tell how much of a
//! send is copying on this machine.
//!
//! `--net loopback,veth`: the same on the loopback device, and between two
//! network namespaces joined by a veth pair that the benchmark creates with
//! `ip` and removes afterwards (needs root; otherwise reported as
//! unavailable). On both, Linux completes every `MSG_ZEROCOPY` send with a
//! deferred copy (unless the kernel is `ci/kernels`' `loopback-zerocopy`
//! variant), so the numbers compare notification paths, not copy
//! avoidance. Ratios are taken between modes of the same run only.
//!
//! The measuring is the agent crate's (`msgzc_conformance_agent::bench`):
//! the main matrix is a typed request ([`Request`]) that the agent runs
//! in-process here, and as PID 1 under qemu-system for `system-bench`
//! ([`Matrix`]), its records the same either way. This module keeps the
//! options, the progress lines and the tables (markdown, JSON). The other
//! benches are the host's alone (`bench/`): `--async-tcp` needs tokio,
//! and `--connect`, `--same-receiver`, `--sweep` and `--udp-batch` run
//! their own rounds or processes on the host; they use the agent's engine
//! (senders, receiver, selftest processes, calibration) where they share
//! it.

mod async_tcp;
mod connect;
mod rounds;
mod sweep;
mod udp_batch;
mod versus;

use msgzc_conformance_agent::bench as agent;
use msgzc_conformance_protocol::bench::{
    Calibration, Machine, Measured, Mode, Net, Proto, Record, Request, Sample, MAX_SIZE, WINDOW,
};
use std::net::SocketAddr;
use std::process::ExitCode;

/// `msgzc-conformance bench`: end-to-end throughput (the module's doc
/// says what each mode measures).
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_value_name = "ROUNDS"
)]
pub struct BenchArgs {
    /// Interleaved rounds of their own modes instead (`--udp-batch`,
    /// `--async-tcp`, each with its own options).
    #[command(subcommand)]
    rounds: Option<RoundsBench>,
    #[command(flatten)]
    opts: Opts,
}

/// The round-based benches, as flags: `bench --udp-batch [OPTIONS]`.
#[derive(Debug, clap::Subcommand)]
enum RoundsBench {
    /// `sendmmsg` and GSO, zerocopy and copy.
    #[command(long_flag = "udp-batch")]
    UdpBatch(udp_batch::Opts),
    /// tokio's zerocopy sender (feature async-bench).
    #[command(long_flag = "async-tcp")]
    AsyncTcp(async_tcp::Opts),
}

#[derive(Clone, Debug, clap::Args)]
struct Opts {
    #[command(flatten)]
    common: rounds::Common,
    /// The networks: loopback, veth (a namespace pair; needs root).
    #[arg(long = "net", value_name = "NET,..", value_delimiter = ',',
          default_value = "loopback,veth", value_parser = net_arg)]
    nets: Vec<Net>,
    /// The protocols: tcp4, tcp6, udp4, udp6.
    #[arg(long = "proto", value_name = "P,..", value_delimiter = ',',
          default_value = "tcp4,tcp6,udp4,udp6", value_parser = proto_arg)]
    protos: Vec<Proto>,
    /// Sends between completion reads.
    #[arg(long = "interval", value_name = "N,..", value_delimiter = ',',
          default_value = "1,32", value_parser = rounds::number_in(1, WINDOW))]
    intervals: Vec<usize>,
    /// Payload bytes (at most the kernel selftest's largest, which fits
    /// one UDP datagram).
    #[arg(long, value_name = "BYTES", default_value_t = 8192,
          value_parser = rounds::number_in(1, MAX_SIZE))]
    size: usize,
    /// Write the samples as JSON here.
    #[arg(long, value_name = "PATH")]
    json: Option<String>,
    /// The kernel's msg_zerocopy binary: two more modes on loopback.
    #[arg(long, value_name = "MSG_ZEROCOPY")]
    selftest: Option<String>,
    /// Only time one system call and the kernel's copy of one payload.
    #[arg(long)]
    calibrate_only: bool,
    /// Sender only, to a receiver at this address.
    #[arg(long, value_name = "ADDR:PORT")]
    connect: Option<SocketAddr>,
    /// The mode of --connect: copy, zc-selftest, zc-drain, zc-inline.
    #[arg(long, default_value = "zc-drain", value_parser = mode_arg)]
    mode: Mode,
    /// The CPU the selftest's receiver is pinned to (--same-receiver).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = cpu_arg)]
    receiver_cpu: usize,
    /// Ours against the selftest's sender, one receiver for both (needs
    /// --selftest), in --rounds interleaved rounds.
    #[arg(long, requires = "selftest")]
    same_receiver: bool,
    /// The threshold sweep: copy against zerocopy at these payload sizes,
    /// --rounds rounds each.
    #[arg(long, value_name = "BYTES,..", value_delimiter = ',',
          value_parser = rounds::number_in(1, MAX_SIZE))]
    sweep: Option<Vec<usize>>,
}

fn net_arg(v: &str) -> Result<Net, String> {
    Net::from_name(v).ok_or_else(|| format!("{v:?}: loopback or veth"))
}

fn proto_arg(v: &str) -> Result<Proto, String> {
    Proto::from_name(v).ok_or_else(|| format!("{v:?}: tcp4, tcp6, udp4 or udp6"))
}

fn mode_arg(v: &str) -> Result<Mode, String> {
    Mode::from_name(v)
        .filter(|m| Mode::ALL.contains(m))
        .ok_or_else(|| format!("{v:?}: copy, zc-selftest, zc-drain or zc-inline"))
}

/// A CPU number for `sched_setaffinity`.
fn cpu_arg(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n < libc::CPU_SETSIZE as usize => Ok(n),
        _ => Err(format!("CPU {v:?}: 0..{}", libc::CPU_SETSIZE)),
    }
}

/// Names, comma-separated.
fn names<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

impl Opts {
    /// The main matrix's request for the agent.
    fn request(&self) -> Request {
        Request {
            nets: self.nets.clone(),
            protos: self.protos.clone(),
            intervals: self.intervals.clone(),
            size: self.size,
            secs: self.common.secs,
            cpu: self.common.cpu,
            selftest: self.selftest.clone(),
            calibrate_only: self.calibrate_only,
        }
    }

    /// What the options ask for besides the main matrix, if anything
    /// (`system-bench` runs only that in the guest).
    fn beyond_matrix(&self) -> Option<&'static str> {
        [
            (self.connect.is_some(), "--connect"),
            (self.same_receiver, "--same-receiver"),
            (self.sweep.is_some(), "--sweep"),
        ]
        .into_iter()
        .find_map(|(on, name)| on.then_some(name))
    }
}

/// The table's header line: the machine, the payload, the seconds.
fn header(m: &Machine, payload: &str, secs: f64) -> String {
    format!(
        "msgzc bench: Linux {}, {} CPU(s) ({}), payload {payload} bytes, {secs} s per mode",
        m.kernel, m.cpus, m.model
    )
}

/// The calibration's line in a table's header.
fn calibration_line(c: &Result<Calibration, String>) -> String {
    match c {
        Ok(c) => format!(
            "Calibration: system call {:.3} µs; copy of one {}-byte payload {:.3} µs \
             (pread of {} B {:.3} µs less pread of 1 B {:.3} µs); copy / system call {:.1}",
            c.syscall_us,
            c.size,
            c.copy_us(),
            c.size,
            c.big_us,
            c.small_us,
            c.copy_us() / c.syscall_us.max(1e-9)
        ),
        Err(e) => format!("Calibration: unavailable ({e})"),
    }
}

/// The send count, with the sends that failed in doubt.
fn sends_text(m: &Measured) -> String {
    match m.in_doubt {
        0 => m.sends.to_string(),
        n => format!("{} ({n} failed in doubt)", m.sends),
    }
}

/// The `bench` subcommand.
pub fn main(a: BenchArgs) -> ExitCode {
    // Interleaved rounds of their own modes (`bench/rounds.rs`).
    let o = match a.rounds {
        Some(RoundsBench::AsyncTcp(o)) => return async_tcp::main(&o),
        Some(RoundsBench::UdpBatch(o)) => return udp_batch::main(&o),
        None => a.opts,
    };
    if o.connect.is_some() {
        return connect::main(&o);
    }
    if o.same_receiver {
        return versus::main(&o);
    }
    if let Some(sizes) = &o.sweep {
        return sweep::main(&o, sizes);
    }
    // The agent measures, in-process; each record prints as it comes.
    let mut report = Report::default();
    agent::run(&o.request(), &mut |r| println!("{}", report.add(&o, r)));
    if o.calibrate_only {
        return ExitCode::SUCCESS;
    }
    let table = report.markdown(&o);
    println!("\n{table}");
    if let Err(e) = report.write(&o, &table) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The main matrix's options, for `system-bench`: what its agent is asked
/// and how its records are formatted (as a local `bench` formats them).
pub(crate) struct Matrix(Opts);

impl Matrix {
    /// `bench`'s words (options of the main matrix only).
    pub(crate) fn parse(words: &[String]) -> Result<Matrix, String> {
        let a: BenchArgs = crate::parse_args(words).map_err(|e| e.to_string())?;
        if a.rounds.is_some() {
            return Err("--udp-batch and --async-tcp run on the host only".into());
        }
        match a.opts.beyond_matrix() {
            Some(o) => Err(format!("{o} runs on the host only")),
            None => Ok(Matrix(a.opts)),
        }
    }

    /// The agent's words, with `selftest` as `--selftest` when given.
    pub(crate) fn words(&self, selftest: Option<&str>) -> Result<Vec<String>, String> {
        let mut req = self.0.request();
        if let Some(p) = selftest {
            req.selftest = Some(p.to_string());
        }
        req.words().map_err(|e| e.to_string())
    }

    /// The markdown table of the agent's records (`selftest` as in
    /// [`Matrix::words`]), written to `--markdown` and `--json` too.
    pub(crate) fn table(
        &self,
        records: Vec<Record>,
        selftest: Option<&str>,
    ) -> Result<String, String> {
        let mut o = self.0.clone();
        if let Some(p) = selftest {
            o.selftest = Some(p.to_string());
        }
        let mut report = Report::default();
        for r in records {
            report.add(&o, r);
        }
        let table = report.markdown(&o);
        report.write(&o, &table)?;
        Ok(table)
    }
}

/// The records of one run, as they came.
#[derive(Default)]
struct Report {
    /// The header line (from the machine).
    header: String,
    calibration: String,
    samples: Vec<Sample>,
}

impl Report {
    /// Takes one record; returns its line for the progress output.
    fn add(&mut self, o: &Opts, r: Record) -> String {
        match r {
            Record::Machine(m) => {
                self.header = header(&m, &o.size.to_string(), o.common.secs);
                self.header.clone()
            }
            Record::Calibration(c) => {
                self.calibration = calibration_line(&c);
                self.calibration.clone()
            }
            Record::Sample(s) => {
                let l = line(&s, &self.samples);
                self.samples.push(s);
                l
            }
        }
    }

    fn markdown(&self, o: &Opts) -> String {
        markdown(
            &format!("{}.\n\n{}", self.header, self.calibration),
            o,
            &self.samples,
        )
    }

    /// Writes `table` to `--markdown` and the samples to `--json`.
    fn write(&self, o: &Opts, table: &str) -> Result<(), String> {
        if let Some(p) = &o.common.markdown {
            std::fs::write(p, table).map_err(|e| format!("{p}: {e}"))?;
        }
        if let Some(p) = &o.json {
            std::fs::write(p, json(&self.header, &self.samples) + "\n")
                .map_err(|e| format!("{p}: {e}"))?;
        }
        Ok(())
    }

    /// Whether a sample failed that should not have: the inline modes
    /// need a patched kernel and veth needs root and iproute2, so theirs
    /// are reported as unavailable, not failures.
    fn failed(&self) -> bool {
        self.samples
            .iter()
            .any(|s| !s.mode.inline() && s.net == Net::Loopback && s.result.is_err())
    }
}

/// The sample of the same protocol and interval in the mode's baseline
/// mode ([`Mode::baseline`]).
fn baseline<'a>(s: &Sample, all: &'a [Sample]) -> Option<&'a Measured> {
    let mode = s.mode.baseline()?;
    all.iter()
        .find(|b| {
            b.net == s.net && b.proto == s.proto && b.interval == s.interval && b.mode == mode
        })
        .and_then(|b| b.result.as_ref().ok())
}

fn line(s: &Sample, before: &[Sample]) -> String {
    let head = format!(
        "{:<8} {:<5} interval {:<3} {:<12}",
        s.net,
        s.proto.name(),
        s.interval,
        s.mode.name()
    );
    match &s.result {
        Ok(m) => {
            let ratio = baseline(s, before)
                .filter(|_| s.mode.baseline() != Some(s.mode))
                .map(|b| format!("  {:.2}x baseline", m.mb_per_s() / b.mb_per_s()))
                .unwrap_or_default();
            format!(
                "{head} {:>9.1} MB/s  {:>8} sends  {:>7} notif  {:.3} syscalls/send  {:.2} CPU ms/MB  copied {}/{}{ratio}",
                m.mb_per_s(),
                m.sends,
                m.notifications,
                m.syscalls_per_send(),
                m.cpu_ms_per_mb(),
                m.copied,
                m.copied + m.zerocopy
            )
        }
        Err(e) => format!("{head} unavailable: {e}"),
    }
}

fn markdown(header: &str, o: &Opts, samples: &[Sample]) -> String {
    let mut t = String::new();
    t.push_str(&format!("{header}\n\n"));
    t.push_str(&format!(
        "Command: `cargo run --release -p msgzc-conformance -- bench --net {} --size {} --secs {} --interval {}{}`\n\n",
        names(&o.nets),
        o.size,
        o.common.secs,
        o.intervals.iter().map(usize::to_string).collect::<Vec<_>>().join(","),
        o.selftest.as_ref().map_or(String::new(), |p| format!(" --selftest {p}"))
    ));
    t.push_str("| net | proto | interval | mode | MB/s | vs baseline | sends | notifications | syscalls/send | CPU ms/MB | copied |\n");
    t.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for s in samples {
        match &s.result {
            Ok(m) => {
                let ratio = baseline(s, samples)
                    .map_or("".into(), |b| format!("{:.2}", m.mb_per_s() / b.mb_per_s()));
                t.push_str(&format!(
                    "| {} | {} | {} | {} | {:.1} | {ratio} | {} | {} | {:.3} | {:.2} | {}/{} |\n",
                    s.net,
                    s.proto.name(),
                    if s.mode == Mode::Copy {
                        "-".to_string()
                    } else {
                        s.interval.to_string()
                    },
                    s.mode.name(),
                    m.mb_per_s(),
                    sends_text(m),
                    m.notifications,
                    m.syscalls_per_send(),
                    m.cpu_ms_per_mb(),
                    m.copied,
                    m.copied + m.zerocopy
                ));
            }
            Err(e) => t.push_str(&format!(
                "| {} | {} | {} | {} | unavailable: {e} | | | | | | |\n",
                s.net,
                s.proto.name(),
                s.interval,
                s.mode.name()
            )),
        }
    }
    t.push_str(
        "\n`vs baseline`: MB/s against the same program's error-queue way in this run \
         (zc-selftest for zc-*, kernel-selftest for kernel-selftest-*). `notifications`: \
         error-queue messages read (each a range of sends), plus, for the inline modes, \
         the sends released through the placeholders. `copied`: completions that were \
         deferred copies, of all completions.\n",
    );
    t
}

fn json(header: &str, samples: &[Sample]) -> String {
    // Seconds to the millisecond, as before: more digits are noise.
    let ms = |s: f64| (s * 1000.0).round() / 1000.0;
    let rows: Vec<serde_json::Value> = samples
        .iter()
        .map(|s| {
            let mut f = serde_json::json!({
                "net": s.net.name(),
                "proto": s.proto.name(),
                "interval": s.interval,
                "mode": s.mode.name(),
            });
            let more = match &s.result {
                Ok(m) => serde_json::json!({
                    "seconds": ms(m.secs),
                    "bytes": m.bytes,
                    "sends": m.sends,
                    "in_doubt": m.in_doubt,
                    "notifications": m.notifications,
                    "copied": m.copied,
                    "zerocopy": m.zerocopy,
                    "syscalls": m.calls.total(),
                    "cpu_seconds": ms(m.cpu_secs),
                }),
                Err(e) => serde_json::json!({ "unavailable": e }),
            };
            if let (Some(f), serde_json::Value::Object(more)) = (f.as_object_mut(), more) {
                f.extend(more);
            }
            f
        })
        .collect();
    serde_json::json!({ "machine": header, "samples": rows }).to_string()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `bench`'s words as the binary parses them.
    pub(in crate::bench) fn parse(s: &str) -> Result<BenchArgs, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        crate::parse_args(&words).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_lists_and_ranges() {
        let o = parse("").unwrap().opts;
        assert_eq!(o.nets, [Net::Loopback, Net::Veth]);
        assert_eq!(o.protos, Proto::EVERY);
        // clap's defaults are the request's.
        assert_eq!(o.request(), Request::default());
        assert_eq!(
            (o.intervals, o.size, o.mode),
            (vec![1, 32], 8192, Mode::Drain)
        );
        assert_eq!(
            (o.common.secs, o.common.rounds, o.receiver_cpu),
            (1.0, 5, 1)
        );
        let o = parse("--net veth --proto udp6,tcp4 --interval 7 --sweep 1024,4096 --secs 0.5")
            .unwrap()
            .opts;
        assert_eq!(
            (o.nets, o.protos),
            (vec![Net::Veth], vec![Proto::Udp6, Proto::Tcp4])
        );
        assert_eq!((o.sweep, o.common.secs), (Some(vec![1024, 4096]), 0.5));
        let o = parse("--connect [::1]:4000 --mode zc-inline --cpu 0")
            .unwrap()
            .opts;
        assert_eq!(o.connect, Some("[::1]:4000".parse().unwrap()));
        assert_eq!((o.mode, o.common.cpu), (Mode::Inline, Some(0)));
    }

    #[test]
    fn bad_options_are_refused() {
        for bad in [
            "--net wifi",
            "--proto sctp",
            "--interval 0",
            "--interval 1,,2",
            "--size 65536",
            "--secs 0",
            "--mode kernel-selftest",
            "--connect nowhere",
            "--cpu 99999",
            "--same-receiver",
            "--udp-batch --net veth",
            "--net veth --udp-batch",
            "--async-tcp --batch 3",
            "--bogus",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("--same-receiver --selftest /x").is_ok());
    }
}
