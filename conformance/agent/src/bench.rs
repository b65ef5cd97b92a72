//! The benchmark's agent side: end-to-end `MSG_ZEROCOPY` throughput,
//! modelled on the kernel's `msg_zerocopy` selftest, comparing ways of
//! reading completions in one run.
//!
//! A sender streams `size`-byte payloads from one buffer to a receiver
//! thread for `secs` per mode and reads completions every `interval`
//! sends ([`Mode`] names each way). With a selftest binary, its two ways
//! run too, on loopback, receiver and sender as separate processes
//! ([`kernel`]). Every run first names the machine and times one system
//! call against the kernel's copy of one payload ([`kernel::calibrate`]).
//!
//! [`run`] measures a [`Request`] and hands each [`Record`] over as it is
//! made; the host's `bench` calls it in-process and formats the tables.
//! `msgzc-conformance-agent bench WORDS` ([`main`]) prints the records as
//! lines instead, which is how the system tier's `system-bench` runs it as
//! PID 1 on a bare kernel: the host reads the lines from the console.
//!
//! ```no_run
//! use msgzc_conformance_agent::bench;
//! use msgzc_conformance_protocol::bench::{Net, Request};
//!
//! let req = Request { nets: vec![Net::Loopback], secs: 0.2, ..Request::default() };
//! bench::run(&req, &mut |record| println!("{record}"));
//! ```

pub mod engine;
pub mod kernel;

use crate::pid1;
use msgzc_cmsg::sys;
use msgzc_conformance_protocol::bench::{
    Machine, Measured, Mode, Net, Proto, Record, Request, Sample,
};
use msgzc_conformance_protocol::Record as GuestRecord;
use std::process::ExitCode;

/// The kernel's release, from `/proc`.
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The CPU's model name, from `/proc/cpuinfo`.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The machine this runs on.
pub fn machine() -> Machine {
    Machine {
        kernel: kernel_release(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        model: cpu_model(),
    }
}

/// Brings `lo` up (a fresh network namespace or a bare kernel has it
/// down); a failure is noted on standard error, and the samples tell.
pub fn loopback_up() {
    if let Err(e) = sys::loopback_up() {
        eprintln!("bench: note: could not bring lo up: {e}");
    }
}

/// Measures `req`: the machine, the calibration, then (unless
/// `calibrate_only`) every network × protocol × interval × mode, each
/// record handed to `out` as soon as it is made. The copy baseline runs
/// once per protocol (it does not depend on the interval); the selftest's
/// modes run on loopback only.
pub fn run(req: &Request, out: &mut dyn FnMut(Record)) {
    loopback_up();
    out(Record::Machine(machine()));
    out(Record::Calibration(
        kernel::calibrate(req.size).map_err(|e| e.to_string()),
    ));
    if req.calibrate_only {
        return;
    }
    for &net in &req.nets {
        // The veth pair lives for this network's samples only.
        let (veth, network) = engine::open_net(net);
        for &proto in &req.protos {
            for &interval in &req.intervals {
                for mode in modes(req, net) {
                    // The copy baseline does not depend on the interval.
                    if mode == Mode::Copy && Some(&interval) != req.intervals.first() {
                        continue;
                    }
                    let result = network
                        .as_ref()
                        .map_err(String::clone)
                        .and_then(|n| measure(req, n, proto, mode, interval));
                    out(Record::Sample(Sample {
                        net,
                        proto,
                        interval,
                        mode,
                        result,
                    }));
                }
            }
        }
        drop(veth);
    }
}

/// The modes run on `net`.
fn modes(req: &Request, net: Net) -> Vec<Mode> {
    let mut v = Mode::ALL.to_vec();
    if req.selftest.is_some() && net == Net::Loopback {
        v.extend(Mode::KERNEL);
    }
    v
}

/// One sample's measurement: the kernel selftest's modes run its binary,
/// the others this crate's engine.
fn measure(
    req: &Request,
    network: &engine::Network,
    proto: Proto,
    mode: Mode,
    interval: usize,
) -> Result<Measured, String> {
    match (mode, &req.selftest) {
        (Mode::Kernel | Mode::KernelInline, Some(bin)) => {
            let inline = mode == Mode::KernelInline;
            kernel::run(bin, proto, inline, req.size, interval, req.secs).map_err(|e| e.to_string())
        }
        (Mode::Kernel | Mode::KernelInline, None) => Err("no selftest binary".into()),
        _ => engine::measure(network, proto, mode, req.size, interval, req.secs, req.cpu),
    }
}

/// `msgzc-conformance-agent bench WORDS`: reads the request
/// ([`Request::parse`]), runs it and prints one line per [`Record`], then
/// `DONE`. As PID 1 it sets the machine up first and powers it off at the
/// end. A request it cannot read ends it with exit status 2 (as PID 1,
/// after a `NOTE error=` line).
pub fn main(args: &[String]) -> ExitCode {
    let init = std::process::id() == 1;
    let req = match Request::parse(args) {
        Ok(r) => r,
        Err(e) => {
            let why = format!("bench: {e}");
            eprintln!("{why}");
            if init {
                println!(
                    "{}",
                    GuestRecord::Note {
                        key: "error",
                        value: &why
                    }
                );
                pid1::power_off();
            }
            return ExitCode::from(2);
        }
    };
    if init {
        pid1::setup();
    }
    run(&req, &mut |r| println!("{r}"));
    println!("{}", GuestRecord::Done);
    if init {
        pid1::power_off();
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(req: &Request) -> Vec<Record> {
        let mut v = Vec::new();
        run(req, &mut |r| v.push(r));
        v
    }

    #[test]
    fn calibrate_only_names_the_machine_and_times_nothing_else() {
        let req = Request {
            calibrate_only: true,
            size: 4096,
            ..Request::default()
        };
        match &records(&req)[..] {
            [Record::Machine(m), Record::Calibration(Ok(c))] => {
                assert!(m.cpus > 0 && !m.kernel.is_empty());
                assert_eq!(c.size, 4096);
            }
            other => panic!("{other:?}"),
        }
    }

    /// A short real run: every mode once per interval, the copy baseline
    /// once per protocol, in order, and loopback copy measured.
    #[test]
    fn the_matrix_runs_in_order() {
        let req = Request {
            nets: vec![Net::Loopback],
            protos: vec![Proto::Udp4],
            intervals: vec![1, 4],
            secs: 0.05,
            ..Request::default()
        };
        let got: Vec<(usize, Mode)> = records(&req)
            .iter()
            .filter_map(|r| match r {
                Record::Sample(s) => Some((s.interval, s.mode)),
                _ => None,
            })
            .collect();
        let want: Vec<(usize, Mode)> = [(1, Mode::Copy)]
            .into_iter()
            .chain(
                [1, 4]
                    .into_iter()
                    .flat_map(|i| [Mode::Selftest, Mode::Drain, Mode::Inline].map(move |m| (i, m))),
            )
            .collect();
        assert_eq!(got, want);
        let copy = records(&Request {
            intervals: vec![1],
            ..req
        });
        match &copy[2] {
            Record::Sample(s) => {
                let m = s.result.as_ref().unwrap();
                assert!(m.sends > 0 && m.bytes == m.sends * 8192);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unreadable_request_is_status_2() {
        assert_eq!(main(&["net=wifi".to_string()]), ExitCode::from(2));
    }
}
