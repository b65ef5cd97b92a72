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
//! - `zc-drain`: `MSG_ZEROCOPY`, then [`ZcSocket::drain`] (`recvmmsg`,
//!   16 notifications per call);
//! - `zc-inline`: `MSG_ZEROCOPY` with an `SCM_ZC_NOTIFICATION` placeholder
//!   every `interval` sends (proposal v8); reported as unsupported when the
//!   kernel refuses or ignores the placeholder.
//!
//! Ratios are taken between modes of the same run only.

use crate::report::{jarr, jobj, jstr};
use msgzc_cmsg::sys::{self, Fallback, NotifyMode, SendError, Sent, ZcSocket};
use msgzc_cmsg::{decode_errqueue, ControlBuf, ErrqueueItem, Walker};
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Completions the sender may have outstanding before it must read some.
const WINDOW: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Tcp4,
    Tcp6,
    Udp4,
    Udp6,
}

impl Proto {
    const ALL: [Proto; 4] = [Proto::Tcp4, Proto::Tcp6, Proto::Udp4, Proto::Udp6];

    fn name(self) -> &'static str {
        match self {
            Proto::Tcp4 => "tcp4",
            Proto::Tcp6 => "tcp6",
            Proto::Udp4 => "udp4",
            Proto::Udp6 => "udp6",
        }
    }

    fn addr(self) -> SocketAddr {
        match self {
            Proto::Tcp4 | Proto::Udp4 => (Ipv4Addr::LOCALHOST, 0).into(),
            Proto::Tcp6 | Proto::Udp6 => (Ipv6Addr::LOCALHOST, 0).into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Copy,
    Selftest,
    Drain,
    Inline,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Copy, Mode::Selftest, Mode::Drain, Mode::Inline];

    fn name(self) -> &'static str {
        match self {
            Mode::Copy => "copy",
            Mode::Selftest => "zc-selftest",
            Mode::Drain => "zc-drain",
            Mode::Inline => "zc-inline",
        }
    }
}

struct Opts {
    protos: Vec<Proto>,
    intervals: Vec<usize>,
    size: usize,
    secs: f64,
    json: Option<String>,
    markdown: Option<String>,
}

/// One measured (protocol, interval, mode).
struct Sample {
    proto: Proto,
    interval: usize,
    mode: Mode,
    /// `None` with the reason when the mode cannot run here.
    result: Result<Measured, String>,
}

#[derive(Default, Clone, Copy)]
struct Measured {
    secs: f64,
    bytes: u64,
    sends: u64,
    notifications: u64,
    copied: u64,
    zerocopy: u64,
    syscalls: u64,
    cpu_secs: f64,
}

impl Measured {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }
    fn syscalls_per_send(&self) -> f64 {
        self.syscalls as f64 / self.sends.max(1) as f64
    }
    fn cpu_ms_per_mb(&self) -> f64 {
        self.cpu_secs * 1e3 / (self.bytes as f64 / 1e6).max(1e-9)
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: msgzc-conformance bench [--proto tcp4,tcp6,udp4,udp6] [--interval 1,32]\n\
         \x20                              [--size BYTES] [--secs S] [--json PATH] [--markdown PATH]"
    );
    ExitCode::from(2)
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        protos: Proto::ALL.to_vec(),
        intervals: vec![1, 32],
        size: 8192,
        secs: 1.0,
        json: None,
        markdown: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--proto" => {
                o.protos = val()?
                    .split(',')
                    .map(|p| {
                        Proto::ALL
                            .into_iter()
                            .find(|x| x.name() == p)
                            .ok_or(format!("unknown protocol {p:?}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--interval" => {
                o.intervals = val()?
                    .split(',')
                    .map(|n| match n.parse::<usize>() {
                        Ok(n) if (1..=WINDOW).contains(&n) => Ok(n),
                        _ => Err(format!("--interval {n}: 1..={WINDOW}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--size" => {
                o.size = match val()?.parse::<usize>() {
                    // UDP payloads must fit one datagram.
                    Ok(n) if (1..=65_000).contains(&n) => n,
                    _ => return Err("--size: 1..=65000".into()),
                }
            }
            "--secs" => {
                o.secs = match val()?.parse::<f64>() {
                    Ok(s) if s > 0.0 && s <= 60.0 => s,
                    _ => return Err("--secs: (0, 60]".into()),
                }
            }
            "--json" => o.json = Some(val()?),
            "--markdown" => o.markdown = Some(val()?),
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    Ok(o)
}

/// Process CPU time (all threads: sender, receiver, and the kernel work
/// done in their context), in seconds.
fn cpu_now() -> f64 {
    // SAFETY: an all-zero rusage is valid and getrusage only writes it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is writable for the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// A connected sender socket and a receiver thread that consumes
/// everything until `stop` is set (UDP) or the sender closes (TCP).
enum Link {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

fn connect(
    proto: Proto,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(Link, thread::JoinHandle<u64>)> {
    match proto {
        Proto::Tcp4 | Proto::Tcp6 => {
            let l = TcpListener::bind(proto.addr())?;
            let tx = TcpStream::connect(l.local_addr()?)?;
            let (mut rx, _) = l.accept()?;
            let h = thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 18];
                let mut n = 0u64;
                while let Ok(k) = rx.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    n += k as u64;
                }
                n
            });
            Ok((Link::Tcp(tx), h))
        }
        Proto::Udp4 | Proto::Udp6 => {
            let rx = UdpSocket::bind(proto.addr())?;
            let tx = UdpSocket::bind(proto.addr())?;
            tx.connect(rx.local_addr()?)?;
            rx.set_read_timeout(Some(Duration::from_millis(50)))?;
            let h = thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(k) = rx.recv(&mut buf) {
                        n += k as u64;
                    }
                }
                n
            });
            Ok((Link::Udp(tx), h))
        }
    }
}

/// The selftest's completion read: one `recvmsg(MSG_ERRQUEUE)` per
/// notification until the queue is empty. Returns notifications read and
/// system calls made.
fn selftest_read<F: AsFd>(
    zc: &mut ZcSocket<F, (), WINDOW>,
    m: &mut Measured,
) -> Result<(), String> {
    let mut control = ControlBuf::<128>::new();
    loop {
        m.syscalls += 1;
        let fd = zc.get_ref().as_fd();
        let (len, flags) = match sys::recv_errqueue(fd, control.as_mut_bytes()) {
            Ok(r) => r,
            Err(e) if e.is_retryable() => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        for msg in Walker::new(sys::NATIVE, control.as_bytes(), len, flags) {
            let msg = msg.map_err(|e| e.to_string())?;
            if let Ok(ErrqueueItem::Zerocopy(r)) = decode_errqueue(sys::NATIVE, &msg) {
                m.notifications += 1;
                zc.apply(r, &mut |_| {}).map_err(|e| e.to_string())?;
            }
        }
    }
}

/// Reads completions the mode's way.
fn read_completions<F: AsFd>(
    zc: &mut ZcSocket<F, (), WINDOW>,
    mode: Mode,
    m: &mut Measured,
) -> Result<(), String> {
    match mode {
        Mode::Selftest => selftest_read(zc, m),
        _ => {
            let r = zc.drain(|_| {}, |_| {}).map_err(|e| e.to_string())?;
            m.notifications += r.ranges as u64;
            Ok(())
        }
    }
}

/// Sends for `secs` with MSG_ZEROCOPY, reading completions every
/// `interval` sends the `mode`'s way.
fn run_zc<F: AsFd>(
    fd: F,
    mode: Mode,
    payload: &[u8],
    interval: usize,
    secs: f64,
) -> Result<Measured, String> {
    let mut zc = ZcSocket::<F, (), WINDOW>::new(fd).map_err(|e| format!("SO_ZEROCOPY: {e}"))?;
    let mut m = Measured::default();
    let start = Instant::now();
    let cpu0 = cpu_now();
    let mut since = 0usize;
    while start.elapsed().as_secs_f64() < secs {
        let res = if mode == Mode::Inline && since + 1 >= interval {
            zc.send_notify(payload, (), 16, |_| {}).map(|r| {
                m.notifications += r.inline as u64;
                r.sent
            })
        } else {
            zc.send(payload, ())
        };
        match res {
            Ok(Sent::Pending { bytes, .. }) => {
                m.bytes += bytes as u64;
                m.sends += 1;
            }
            Ok(Sent::NotCounted(())) => m.sends += 1,
            Err(SendError { error, .. }) if error.is_retryable() => {
                // Tracker full or optmem exhausted: wait for completions.
                let _ = zc.wait(Some(Duration::from_millis(100)));
                read_completions(&mut zc, mode, &mut m)?;
                continue;
            }
            Err(e) => return Err(e.to_string()),
        }
        since += 1;
        if mode == Mode::Inline {
            if let NotifyMode::ErrorQueue(why) = zc.mode() {
                return Err(match why {
                    Fallback::Rejected => "kernel refuses SCM_ZC_NOTIFICATION (EINVAL)".into(),
                    Fallback::Unwritten => "kernel ignores SCM_ZC_NOTIFICATION".into(),
                    Fallback::Corrupt(e) => format!("kernel wrote a corrupt answer: {e}"),
                });
            }
            if since >= interval {
                since = 0;
            }
        } else if since >= interval {
            since = 0;
            read_completions(&mut zc, mode, &mut m)?;
        }
    }
    // Collect what is still outstanding (bounded: loopback completes fast).
    let deadline = Instant::now() + Duration::from_secs(5);
    while zc.tracker().outstanding() > 0 && Instant::now() < deadline {
        let _ = zc.wait(Some(Duration::from_millis(100)));
        read_completions(&mut zc, mode, &mut m)?;
    }
    m.secs = start.elapsed().as_secs_f64();
    m.cpu_secs = cpu_now() - cpu0;
    // The selftest mode counted its own recvmsg calls.
    let c = zc.syscalls();
    m.syscalls += c.sendmsg + c.recvmmsg + c.poll;
    if zc.tracker().outstanding() > 0 {
        return Err(format!(
            "{} sends never completed",
            zc.tracker().outstanding()
        ));
    }
    let s = zc.tracker().stats();
    m.copied = s.copied;
    m.zerocopy = s.zerocopy;
    Ok(m)
}

fn run_copy<F: AsFd>(fd: F, payload: &[u8], secs: f64) -> Result<Measured, String> {
    let mut m = Measured::default();
    let start = Instant::now();
    let cpu0 = cpu_now();
    let raw = fd.as_fd();
    while start.elapsed().as_secs_f64() < secs {
        // SAFETY: `payload` is readable for its length during the call.
        let n = unsafe {
            libc::send(
                std::os::fd::AsRawFd::as_raw_fd(&raw),
                payload.as_ptr().cast(),
                payload.len(),
                0,
            )
        };
        m.syscalls += 1;
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOBUFS) || e.raw_os_error() == Some(libc::EAGAIN) {
                continue;
            }
            return Err(format!("send: {e}"));
        }
        m.bytes += n as u64;
        m.sends += 1;
    }
    m.secs = start.elapsed().as_secs_f64();
    m.cpu_secs = cpu_now() - cpu0;
    Ok(m)
}

fn measure(
    proto: Proto,
    mode: Mode,
    size: usize,
    interval: usize,
    secs: f64,
) -> Result<Measured, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let (link, rx) = connect(proto, stop.clone()).map_err(|e| format!("{}: {e}", proto.name()))?;
    let payload = vec![0x5au8; size];
    let res = match &link {
        Link::Tcp(s) => match mode {
            Mode::Copy => run_copy(s, &payload, secs),
            _ => run_zc(s, mode, &payload, interval, secs),
        },
        Link::Udp(s) => match mode {
            Mode::Copy => run_copy(s, &payload, secs),
            _ => run_zc(s, mode, &payload, interval, secs),
        },
    };
    drop(link);
    stop.store(true, Ordering::Relaxed);
    let _ = rx.join();
    res
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

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

/// The `bench` subcommand.
pub fn main(args: &[String]) -> ExitCode {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench: {e}");
            return usage();
        }
    };
    if let Err(e) = sys::loopback_up() {
        eprintln!("bench: note: could not bring lo up: {e}");
    }
    let header = format!(
        "msgzc bench: Linux {}, {} CPU(s) ({}), payload {} bytes, {} s per mode",
        kernel(),
        thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        o.size,
        o.secs
    );
    println!("{header}");
    let mut samples = Vec::new();
    for &proto in &o.protos {
        for &interval in &o.intervals {
            for mode in Mode::ALL {
                // The copy baseline does not depend on the interval.
                if mode == Mode::Copy && interval != o.intervals[0] {
                    continue;
                }
                let result = measure(proto, mode, o.size, interval, o.secs);
                let s = Sample {
                    proto,
                    interval,
                    mode,
                    result,
                };
                println!("{}", line(&s, &samples));
                samples.push(s);
            }
        }
    }
    let table = markdown(&header, &o, &samples);
    println!("\n{table}");
    if let Some(p) = &o.markdown {
        if let Err(e) = std::fs::write(p, &table) {
            eprintln!("{p}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(p) = &o.json {
        if let Err(e) = std::fs::write(p, json(&header, &samples) + "\n") {
            eprintln!("{p}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let failed = samples
        .iter()
        .any(|s| s.mode != Mode::Inline && s.result.is_err());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The `zc-selftest` sample of the same protocol and interval, the baseline
/// for the other completion modes.
fn baseline<'a>(s: &Sample, all: &'a [Sample]) -> Option<&'a Measured> {
    all.iter()
        .find(|b| b.proto == s.proto && b.interval == s.interval && b.mode == Mode::Selftest)
        .and_then(|b| b.result.as_ref().ok())
}

fn line(s: &Sample, before: &[Sample]) -> String {
    let head = format!(
        "{:<5} interval {:<3} {:<12}",
        s.proto.name(),
        s.interval,
        s.mode.name()
    );
    match &s.result {
        Ok(m) => {
            let ratio = baseline(s, before)
                .filter(|_| matches!(s.mode, Mode::Drain | Mode::Inline))
                .map(|b| format!("  {:.2}x zc-selftest", m.mb_per_s() / b.mb_per_s()))
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
    t.push_str(&format!("{header}.\n\n"));
    t.push_str(&format!(
        "Command: `cargo run --release -p msgzc-conformance -- bench --size {} --secs {} --interval {}`\n\n",
        o.size,
        o.secs,
        o.intervals.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
    ));
    t.push_str("| proto | interval | mode | MB/s | vs zc-selftest | sends | notifications | syscalls/send | CPU ms/MB | copied |\n");
    t.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for s in samples {
        match &s.result {
            Ok(m) => {
                let ratio = baseline(s, samples)
                    .filter(|_| s.mode != Mode::Copy)
                    .map_or("".into(), |b| format!("{:.2}", m.mb_per_s() / b.mb_per_s()));
                t.push_str(&format!(
                    "| {} | {} | {} | {:.1} | {ratio} | {} | {} | {:.3} | {:.2} | {}/{} |\n",
                    s.proto.name(),
                    if s.mode == Mode::Copy {
                        "-".to_string()
                    } else {
                        s.interval.to_string()
                    },
                    s.mode.name(),
                    m.mb_per_s(),
                    m.sends,
                    m.notifications,
                    m.syscalls_per_send(),
                    m.cpu_ms_per_mb(),
                    m.copied,
                    m.copied + m.zerocopy
                ));
            }
            Err(e) => t.push_str(&format!(
                "| {} | {} | {} | unavailable: {e} | | | | | | |\n",
                s.proto.name(),
                s.interval,
                s.mode.name()
            )),
        }
    }
    t
}

fn json(header: &str, samples: &[Sample]) -> String {
    let rows: Vec<String> = samples
        .iter()
        .map(|s| {
            let mut f = vec![
                ("proto", jstr(s.proto.name())),
                ("interval", s.interval.to_string()),
                ("mode", jstr(s.mode.name())),
            ];
            match &s.result {
                Ok(m) => f.extend([
                    ("seconds", format!("{:.3}", m.secs)),
                    ("bytes", m.bytes.to_string()),
                    ("sends", m.sends.to_string()),
                    ("notifications", m.notifications.to_string()),
                    ("copied", m.copied.to_string()),
                    ("zerocopy", m.zerocopy.to_string()),
                    ("syscalls", m.syscalls.to_string()),
                    ("cpu_seconds", format!("{:.3}", m.cpu_secs)),
                ]),
                Err(e) => f.push(("unavailable", jstr(e))),
            }
            jobj(&f)
        })
        .collect();
    jobj(&[("machine", jstr(header)), ("samples", jarr(&rows))])
}
