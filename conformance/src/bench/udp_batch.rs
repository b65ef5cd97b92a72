//! `bench --udp-batch`: UDP datagrams per second and system calls per
//! datagram, sending `--batch` datagrams of `--size` bytes at a time to a
//! loopback receiver, in interleaved rounds:
//!
//! - `sendmmsg-copy`: `sendmmsg` of the batch without `MSG_ZEROCOPY` (the
//!   baseline every ratio divides by);
//! - `sendmmsg-zc`: [`ZcSocket::send_batch`], one id per datagram, the
//!   error queue drained after every batch;
//! - `gso-zc`: [`ZcSocket::send_gso`], the batch as one send of
//!   `size × batch` bytes cut into `size`-byte datagrams (`UDP_SEGMENT`),
//!   one id per send, drained after every send;
//! - references: `gso-copy` (the same with `UDP_SEGMENT` set on a socket
//!   without `MSG_ZEROCOPY`), `send-zc` ([`ZcSocket::send`] per datagram,
//!   drained every `batch` sends) and `send-copy` (`send` per datagram).
//!
//! Datagrams per second count the datagrams the kernel took (a GSO send
//! counts its segments); the receiver reads what it can, and what it
//! drops does not slow the sender.

use super::rounds::{self, Common, Rounds, Run, Spread};
use msgzc_cmsg::sys::{self, BatchStop, Datagram, SendErrorKind, Sent, ZcSocket};
use msgzc_conformance_agent::bench::engine;
use msgzc_conformance_protocol::bench::Proto;
use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The largest UDP payload over IPv4 (a GSO send is one such payload).
const MAX_PAYLOAD: usize = 65_507;
/// `UDP_MAX_SEGMENTS` of kernels before 6.9 (128 since).
const MAX_SEGMENTS: usize = 64;
/// Send ids outstanding before the sender must read completions.
const WINDOW: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    SendmmsgCopy,
    SendmmsgZc,
    GsoZc,
    GsoCopy,
    SendZc,
    SendCopy,
}

impl Mode {
    const ALL: [Mode; 6] = [
        Mode::SendmmsgCopy,
        Mode::SendmmsgZc,
        Mode::GsoZc,
        Mode::GsoCopy,
        Mode::SendZc,
        Mode::SendCopy,
    ];

    fn name(self) -> &'static str {
        match self {
            Mode::SendmmsgCopy => "sendmmsg-copy",
            Mode::SendmmsgZc => "sendmmsg-zc",
            Mode::GsoZc => "gso-zc",
            Mode::GsoCopy => "gso-copy",
            Mode::SendZc => "send-zc",
            Mode::SendCopy => "send-copy",
        }
    }
}

/// `bench --udp-batch`: `sendmmsg` and GSO, with and without zerocopy,
/// in interleaved rounds.
#[derive(Clone, Debug, clap::Args)]
pub(super) struct Opts {
    #[command(flatten)]
    common: Common,
    /// udp4 or udp6.
    #[arg(long, default_value = "udp4", value_parser = udp_proto)]
    proto: Proto,
    /// Bytes per datagram.
    #[arg(long, default_value_t = 1400, value_parser = rounds::number_in(1, MAX_PAYLOAD))]
    size: usize,
    /// Datagrams per batch (a GSO send carries them all).
    #[arg(long, default_value_t = 32, value_parser = rounds::number_in(1, MAX_SEGMENTS))]
    batch: usize,
}

fn udp_proto(v: &str) -> Result<Proto, String> {
    match super::proto_arg(v)? {
        p @ (Proto::Udp4 | Proto::Udp6) => Ok(p),
        _ => Err(format!("{v:?}: udp4 or udp6")),
    }
}

impl Opts {
    /// What clap cannot check alone: one GSO send carries the whole batch.
    fn check(&self) -> Result<(), String> {
        if self.size * self.batch > MAX_PAYLOAD {
            return Err(format!(
                "--size {} × --batch {} is more than one UDP payload ({MAX_PAYLOAD})",
                self.size, self.batch
            ));
        }
        Ok(())
    }
}

/// What one zerocopy run counted besides its datagrams.
#[derive(Default)]
struct Tally {
    run: Run,
    in_doubt: u64,
}

impl Tally {
    fn sent(&mut self, datagrams: usize, bytes: usize) {
        self.run.sends += u64::from(datagrams > 0);
        self.run.units += datagrams as u64;
        self.run.bytes += bytes as u64;
    }
}

/// Reads completions, waiting for them first when `wait`.
fn drain<F: AsFd>(zc: &mut ZcSocket<F, ()>, wait: bool) -> Result<(), String> {
    if wait {
        zc.wait(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
    }
    zc.drain(|_| {}, |_| {})
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Whether a failed send only asks to wait (a full buffer or option
/// memory).
fn transient(errno: i32) -> bool {
    errno == libc::ENOBUFS || errno == libc::EAGAIN
}

/// One zerocopy mode's loop for `secs`; the sender's CPU and calls.
fn run_zc(s: UdpSocket, mode: Mode, payload: &[u8], o: &Opts) -> Result<Run, String> {
    let mut zc = ZcSocket::<_, ()>::with_window(s, WINDOW).map_err(|e| e.to_string())?;
    let mut t = Tally::default();
    let (start, cpu0) = (Instant::now(), rounds::thread_cpu());
    let one = &payload[..o.size];
    let mut since = 0;
    while start.elapsed().as_secs_f64() < o.common.secs {
        let wait = match mode {
            Mode::SendmmsgZc => {
                let batch = (0..o.batch).map(|_| Datagram::new(one, ())).collect();
                let r = zc.send_batch(batch);
                t.sent(r.sent, r.bytes);
                match r.stop {
                    None => false,
                    Some(BatchStop::TrackerFull | BatchStop::WouldBlock) => true,
                    Some(BatchStop::InDoubt { .. }) => {
                        t.in_doubt += 1;
                        false
                    }
                    Some(BatchStop::Os(e)) if transient(e.errno) => true,
                    Some(stop) => return Err(stop.to_string()),
                }
            }
            Mode::GsoZc | Mode::SendZc => {
                let (data, seg) = match mode {
                    Mode::GsoZc => (payload, o.size),
                    _ => (one, 0),
                };
                let r = if seg > 0 {
                    zc.send_gso(data, seg as u16, ())
                } else {
                    zc.send(data, ())
                };
                match r {
                    Ok(Sent::Pending { bytes, .. } | Sent::Copied { bytes, .. }) => {
                        t.sent(bytes.div_ceil(o.size), bytes)
                    }
                    Ok(_) => {}
                    Err(e) if matches!(e.kind, SendErrorKind::InDoubt { .. }) => t.in_doubt += 1,
                    Err(e) if e.is_retryable() => {
                        drain(&mut zc, true)?;
                        continue;
                    }
                    Err(e) => return Err(e.kind.to_string()),
                }
                since += 1;
                // Single sends read completions once per batch's worth.
                if mode == Mode::SendZc && since < o.batch {
                    continue;
                }
                since = 0;
                false
            }
            _ => unreachable!("copy modes run in run_copy"),
        };
        drain(&mut zc, wait)?;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while zc.tracker().outstanding() > 0 && Instant::now() < deadline {
        drain(&mut zc, true)?;
    }
    if zc.tracker().outstanding() > 0 {
        return Err(format!(
            "{} sends never completed",
            zc.tracker().outstanding()
        ));
    }
    t.run.secs = start.elapsed().as_secs_f64();
    t.run.cpu = rounds::thread_cpu() - cpu0;
    let c = zc.syscalls();
    t.run.calls = Some(c.sendmsg + c.sendmmsg + c.recvmmsg + c.poll);
    let s = zc.tracker().stats();
    (t.run.copied, t.run.completions) = (s.copied, s.copied + s.zerocopy);
    if t.in_doubt > 0 {
        eprintln!("bench: {}: {} sends in doubt", mode.name(), t.in_doubt);
    }
    Ok(t.run)
}

/// `sendmmsg(2)` of `n` entries of `data` on a connected socket, by copy.
fn sendmmsg_copy(fd: &UdpSocket, data: &[u8], n: usize) -> std::io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: an all-zero mmsghdr is valid (no name, no control).
    let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
    hdr.msg_hdr.msg_iov = &mut iov;
    hdr.msg_hdr.msg_iovlen = 1;
    let mut hdrs = vec![hdr; n];
    // SAFETY: every entry points to `iov`, which points to `data`; both
    // outlive the call, which only reads them (and writes `msg_len`).
    let r = unsafe { libc::sendmmsg(fd.as_raw_fd(), hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r as usize)
}

/// `send(2)` of `data`, by copy.
fn send_copy(fd: &UdpSocket, data: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `data` is readable for its length during the call.
    let r = unsafe { libc::send(fd.as_raw_fd(), data.as_ptr().cast(), data.len(), 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r as usize)
}

/// One copying mode's loop for `secs`.
fn run_copy(s: UdpSocket, mode: Mode, payload: &[u8], o: &Opts) -> Result<Run, String> {
    if mode == Mode::GsoCopy {
        sys::set_udp_segment(s.as_fd(), o.size as u16).map_err(|e| e.to_string())?;
    }
    let mut run = Run::default();
    let mut calls = 0u64;
    let (start, cpu0) = (Instant::now(), rounds::thread_cpu());
    let one = &payload[..o.size];
    while start.elapsed().as_secs_f64() < o.common.secs {
        calls += 1;
        let r = match mode {
            Mode::SendmmsgCopy => sendmmsg_copy(&s, one, o.batch).map(|n| (n, n * o.size)),
            Mode::GsoCopy => send_copy(&s, payload).map(|b| (b.div_ceil(o.size), b)),
            _ => send_copy(&s, one).map(|b| (1, b)),
        };
        match r {
            Ok((n, bytes)) => {
                run.sends += 1;
                run.units += n as u64;
                run.bytes += bytes as u64;
            }
            Err(e) if e.raw_os_error().is_some_and(transient) => {}
            Err(e) => return Err(format!("{}: {e}", mode.name())),
        }
    }
    run.secs = start.elapsed().as_secs_f64();
    run.cpu = rounds::thread_cpu() - cpu0;
    run.calls = Some(calls);
    Ok(run)
}

fn one(o: &Opts, mode: Mode) -> Result<Run, String> {
    let (proto, opts) = (o.proto, o.clone());
    rounds::with_receiver(proto, o.common.cpu, move |to: SocketAddr| {
        let s = UdpSocket::bind(engine::loopback(proto)).map_err(|e| e.to_string())?;
        s.connect(to).map_err(|e| e.to_string())?;
        let payload = vec![0x5au8; opts.size * opts.batch];
        match mode {
            Mode::SendmmsgZc | Mode::GsoZc | Mode::SendZc => run_zc(s, mode, &payload, &opts),
            _ => run_copy(s, mode, &payload, &opts),
        }
    })
}

fn calls_per(t: &Run) -> String {
    t.calls.map_or("-".into(), |c| {
        format!("{:.4}", c as f64 / t.units.max(1) as f64)
    })
}

fn markdown(o: &Opts, r: &Rounds, load: (&str, &str)) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "{}\n", rounds::machine(load));
    let _ = writeln!(
        t,
        "Command: `cargo run --release -p msgzc-conformance -- bench --udp-batch --proto {} --size {} --batch {} {}`\n",
        o.proto.name(),
        o.size,
        o.batch,
        o.common.args()
    );
    t.push_str(
        "| mode | datagrams/s, median (range) | vs sendmmsg-copy, median (range) | syscalls/datagram | \
         sender CPU µs/datagram, median (range) | CPU vs sendmmsg-copy | copied completions |\n",
    );
    t.push_str("|---|---|---|---|---|---|---|\n");
    let per_dgram = |m: &Run| m.cpu * 1e6 / m.units.max(1) as f64;
    for (i, mode) in Mode::ALL.iter().enumerate() {
        let total = r.total(i);
        let failed = r.failures(i).map_or(String::new(), |e| format!(" ({e})"));
        let copied = match total.completions {
            0 => "-".into(),
            n => format!("{}/{n}", total.copied),
        };
        let _ = writeln!(
            t,
            "| {}{failed} | {} | {} | {} | {} | {} | {copied} |",
            mode.name(),
            Spread::text(r.each(i, Run::rate), 0),
            if i == 0 {
                "1".into()
            } else {
                Spread::text(r.ratio(i, 0, Run::rate), 2)
            },
            calls_per(&total),
            Spread::text(r.each(i, per_dgram), 3),
            if i == 0 {
                "1".into()
            } else {
                Spread::text(r.ratio(i, 0, per_dgram), 2)
            },
        );
    }
    // GSO's own baseline: the same send by copy.
    let (zc, copy) = (2, 3);
    debug_assert_eq!(
        (Mode::ALL[zc], Mode::ALL[copy]),
        (Mode::GsoZc, Mode::GsoCopy)
    );
    let _ = writeln!(
        t,
        "\ngso-zc over gso-copy, same round: datagrams/s {}, CPU µs/datagram {}.",
        Spread::text(r.ratio(zc, copy, Run::rate), 2),
        Spread::text(r.ratio(zc, copy, per_dgram), 2)
    );
    let _ = writeln!(
        t,
        "\nEach of {} rounds runs every mode for {} s, in an order rotated each round, each against a \
         fresh receiver thread on loopback; ratios divide two modes of the same round. A batch is {} \
         datagrams of {} bytes: one `sendmmsg`, or one `UDP_SEGMENT` send of {} bytes (a GSO send counts \
         its segments as datagrams). System calls: sends, error-queue reads and polls over all rounds. \
         Sender CPU: the sending thread's user and system time, which includes loopback's receive path \
         (and, for zerocopy, the deferred copy that completes every send on loopback).",
        o.common.rounds,
        o.common.secs,
        o.batch,
        o.size,
        o.size * o.batch
    );
    t
}

/// The `--udp-batch` bench.
pub(super) fn main(o: &Opts) -> ExitCode {
    if let Err(e) = o.check() {
        eprintln!("bench --udp-batch: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = sys::loopback_up() {
        eprintln!("bench: note: could not bring lo up: {e}");
    }
    let before = rounds::loadavg();
    println!(
        "msgzc bench --udp-batch: {} × {} bytes, {} s per run, {} rounds, load {before}",
        o.batch, o.size, o.common.secs, o.common.rounds
    );
    let r = rounds::interleave(
        o.common.rounds,
        Mode::ALL.len(),
        |i| one(o, Mode::ALL[i]),
        |i, r| match r {
            Ok(m) => format!(
                "{:<14} {:>10.0} datagrams/s  {} syscalls/datagram  {:.3} CPU µs/datagram",
                Mode::ALL[i].name(),
                m.rate(),
                calls_per(m),
                m.cpu * 1e6 / m.units.max(1) as f64
            ),
            Err(e) => format!("{:<14} failed: {e}", Mode::ALL[i].name()),
        },
    );
    let table = markdown(o, &r, (&before, &rounds::loadavg()));
    println!("\n{table}");
    if let Err(e) = rounds::write_markdown(&o.common, &table) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    if (0..Mode::ALL.len()).any(|i| r.failures(i).is_some()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the binary parses and checks them.
    fn parse(s: &str) -> Result<Opts, String> {
        let o = super::super::tests::parse(&format!("--udp-batch {s}"))?;
        match o.rounds {
            Some(super::super::RoundsBench::UdpBatch(o)) => o.check().map(|()| o),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn parses_and_refuses_a_batch_larger_than_a_payload() {
        let o = parse("--proto udp6 --size 1200 --batch 48 --rounds 3").unwrap();
        assert_eq!(
            (o.proto, o.size, o.batch, o.common.rounds),
            (Proto::Udp6, 1200, 48, 3)
        );
        let d = parse("").unwrap();
        assert_eq!((d.proto, d.size, d.batch), (Proto::Udp4, 1400, 32));
        assert!(parse("--size 2048 --batch 64").is_err());
        assert!(parse("--batch 65").is_err());
        assert!(parse("--proto tcp4").is_err());
        assert!(parse("--size 1,2").is_err());
        assert!(parse("--size").is_err());
    }

    #[test]
    fn calls_per_datagram() {
        let r = Run {
            units: 64,
            calls: Some(4),
            ..Run::default()
        };
        assert_eq!(calls_per(&r), "0.0625");
        assert_eq!(calls_per(&Run::default()), "-");
    }
}
