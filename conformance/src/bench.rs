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

mod async_tcp;
mod connect;
mod kernel;
mod rounds;
mod sweep;
mod udp_batch;
mod versus;

use msgzc_cmsg::sys::{self, Fallback, NotifyMode, SendErrorKind, Sent, ZcSocket};
use msgzc_cmsg::{decode_errqueue, ControlBuf, ErrqueueItem, Walker};
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// Completions the sender may have outstanding before it must read some.
const WINDOW: usize = 1024;

/// The largest `--size`: msg_zerocopy.c's default payload.
const MAX_SIZE: usize = 65_535 - 40 - 20 - 40;

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
    /// The kernel's msg_zerocopy selftest, error queue.
    Kernel,
    /// The kernel's msg_zerocopy selftest, `-n` (SCM_ZC_NOTIFICATION).
    KernelInline,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Copy, Mode::Selftest, Mode::Drain, Mode::Inline];
    const KERNEL: [Mode; 2] = [Mode::Kernel, Mode::KernelInline];

    fn name(self) -> &'static str {
        match self {
            Mode::Copy => "copy",
            Mode::Selftest => "zc-selftest",
            Mode::Drain => "zc-drain",
            Mode::Inline => "zc-inline",
            Mode::Kernel => "kernel-selftest",
            Mode::KernelInline => "kernel-selftest-inline",
        }
    }

    /// The mode its ratio is taken against: the error-queue way of the
    /// same program.
    fn baseline(self) -> Option<Mode> {
        match self {
            Mode::Copy => None,
            Mode::Selftest | Mode::Drain | Mode::Inline => Some(Mode::Selftest),
            Mode::Kernel | Mode::KernelInline => Some(Mode::Kernel),
        }
    }

    /// Whether the mode needs SCM_ZC_NOTIFICATION (unavailable, not
    /// failed, on other kernels).
    fn inline(self) -> bool {
        matches!(self, Mode::Inline | Mode::KernelInline)
    }
}

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

#[derive(Debug, clap::Args)]
struct Opts {
    #[command(flatten)]
    common: rounds::Common,
    /// The networks: loopback, veth (a namespace pair; needs root).
    #[arg(long = "net", value_name = "NET,..", value_delimiter = ',',
          default_value = "loopback,veth", value_parser = net_arg)]
    nets: Vec<&'static str>,
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

fn net_arg(v: &str) -> Result<&'static str, String> {
    ["loopback", "veth"]
        .into_iter()
        .find(|n| *n == v)
        .ok_or_else(|| format!("{v:?}: loopback or veth"))
}

fn proto_arg(v: &str) -> Result<Proto, String> {
    Proto::ALL
        .into_iter()
        .find(|p| p.name() == v)
        .ok_or_else(|| format!("{v:?}: tcp4, tcp6, udp4 or udp6"))
}

fn mode_arg(v: &str) -> Result<Mode, String> {
    Mode::ALL
        .into_iter()
        .find(|m| m.name() == v)
        .ok_or_else(|| format!("{v:?}: copy, zc-selftest, zc-drain or zc-inline"))
}

/// The sender's system calls, by kind.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Calls {
    /// `send`/`sendmsg`, failed ones included.
    send: u64,
    /// Reads of the error queue (`recvmsg` or `recvmmsg`), the empty
    /// read that ends each drain included.
    errqueue: u64,
    /// `poll`.
    poll: u64,
}

impl Calls {
    fn total(&self) -> u64 {
        self.send + self.errqueue + self.poll
    }
}

/// One measured (network, protocol, interval, mode).
struct Sample {
    net: &'static str,
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
    calls: Calls,
    cpu_secs: f64,
    /// Datagram sends that failed in doubt (see `SendErrorKind::InDoubt`).
    in_doubt: u64,
}

impl Measured {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }
    fn syscalls_per_send(&self) -> f64 {
        self.calls.total() as f64 / self.sends.max(1) as f64
    }
    fn cpu_ms_per_mb(&self) -> f64 {
        self.cpu_secs * 1e3 / (self.bytes as f64 / 1e6).max(1e-9)
    }
    /// The send count, with the sends that failed in doubt.
    fn sends_text(&self) -> String {
        match self.in_doubt {
            0 => self.sends.to_string(),
            n => format!("{} ({n} failed in doubt)", self.sends),
        }
    }
}

/// A CPU number for `sched_setaffinity`.
fn cpu_arg(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n < libc::CPU_SETSIZE as usize => Ok(n),
        _ => Err(format!("CPU {v:?}: 0..{}", libc::CPU_SETSIZE)),
    }
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

/// Where sender and receiver run.
#[derive(Clone, Debug)]
enum Net {
    /// Both on the caller's loopback.
    Loopback,
    /// Sender in one network namespace, receiver in another, joined by a
    /// veth pair (paths of the namespaces' handles under `/run/netns`).
    Veth { a: String, b: String },
}

impl Net {
    fn name(&self) -> &'static str {
        match self {
            Net::Loopback => "loopback",
            Net::Veth { .. } => "veth",
        }
    }

    /// Moves the calling thread into the sender's (`a`) or receiver's
    /// namespace.
    fn enter(&self, receiver: bool) -> Result<(), String> {
        let Net::Veth { a, b } = self else {
            return Ok(());
        };
        let path = if receiver { b } else { a };
        let f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
        // SAFETY: `f` is an open namespace handle; setns affects only the
        // calling thread's network namespace.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
        if r < 0 {
            return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// The receiver's address for `proto`.
    fn receiver(&self, proto: Proto) -> SocketAddr {
        match (self, proto) {
            (Net::Loopback, _) => proto.addr(),
            (Net::Veth { .. }, Proto::Tcp4 | Proto::Udp4) => (VETH_B4, 0).into(),
            (Net::Veth { .. }, Proto::Tcp6 | Proto::Udp6) => (VETH_B6, 0).into(),
        }
    }
}

const VETH_A4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const VETH_B4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const VETH_A6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1);
const VETH_B6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2);

/// Two network namespaces joined by a veth pair, removed on drop.
struct VethPair {
    names: [String; 2],
}

impl VethPair {
    fn create() -> Result<VethPair, String> {
        let id = std::process::id();
        let names = [format!("msgzc-a-{id}"), format!("msgzc-b-{id}")];
        let pair = VethPair { names };
        let [na, nb] = &pair.names;
        let (va, vb) = (format!("mza{id}"), format!("mzb{id}"));
        let (a4, b4) = (format!("{VETH_A4}/24"), format!("{VETH_B4}/24"));
        let (a6, b6) = (format!("{VETH_A6}/64"), format!("{VETH_B6}/64"));
        let steps: [&[&str]; 12] = [
            &["netns", "add", na],
            &["netns", "add", nb],
            &[
                "link", "add", &va, "netns", na, "type", "veth", "peer", "name", &vb, "netns", nb,
            ],
            &["-n", na, "addr", "add", &a4, "dev", &va],
            &["-n", nb, "addr", "add", &b4, "dev", &vb],
            &["-n", na, "addr", "add", &a6, "dev", &va, "nodad"],
            &["-n", nb, "addr", "add", &b6, "dev", &vb, "nodad"],
            &["-n", na, "link", "set", &va, "up"],
            &["-n", nb, "link", "set", &vb, "up"],
            &["-n", na, "link", "set", "lo", "up"],
            &["-n", nb, "link", "set", "lo", "up"],
            &["-n", na, "route", "show"],
        ];
        for args in steps {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("ip: {e} (iproute2 needed)"))?;
            if !out.status.success() {
                return Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(pair)
    }

    fn net(&self) -> Net {
        Net::Veth {
            a: format!("/run/netns/{}", self.names[0]),
            b: format!("/run/netns/{}", self.names[1]),
        }
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting the namespaces removes the veth pair with them.
        for n in &self.names {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .output();
        }
    }
}

/// The receiver: binds in its namespace, reports its address, then
/// consumes everything until the sender closes (TCP) or `stop` (UDP).
/// The network named `--net` (`veth` or loopback): a veth pair lives as
/// long as the returned guard; a pair that cannot be made is the error.
fn open_net(name: &str) -> (Option<VethPair>, Result<Net, String>) {
    match name {
        "veth" => match VethPair::create() {
            Ok(v) => {
                let n = v.net();
                (Some(v), Ok(n))
            }
            Err(e) => (None, Err(format!("no veth pair: {e}"))),
        },
        _ => (None, Ok(Net::Loopback)),
    }
}

fn receiver(
    net: Net,
    proto: Proto,
    stop: Arc<AtomicBool>,
    addr: mpsc::Sender<Result<SocketAddr, String>>,
) -> u64 {
    let fail = |e: String| {
        let _ = addr.send(Err(e));
        0
    };
    if let Err(e) = net.enter(true) {
        return fail(e);
    }
    let mut buf = vec![0u8; 1 << 18];
    let mut n = 0u64;
    match proto {
        Proto::Tcp4 | Proto::Tcp6 => {
            let l = match TcpListener::bind(net.receiver(proto)) {
                Ok(l) => l,
                Err(e) => return fail(format!("bind: {e}")),
            };
            let _ = addr.send(l.local_addr().map_err(|e| e.to_string()));
            let Ok((mut rx, _)) = l.accept() else {
                return 0;
            };
            while let Ok(k) = rx.read(&mut buf) {
                if k == 0 {
                    break;
                }
                n += k as u64;
            }
        }
        Proto::Udp4 | Proto::Udp6 => {
            let rx = match UdpSocket::bind(net.receiver(proto)) {
                Ok(s) => s,
                Err(e) => return fail(format!("bind: {e}")),
            };
            let _ = rx.set_read_timeout(Some(Duration::from_millis(50)));
            let _ = addr.send(rx.local_addr().map_err(|e| e.to_string()));
            while !stop.load(Ordering::Relaxed) {
                if let Ok(k) = rx.recv(&mut buf) {
                    n += k as u64;
                }
            }
        }
    }
    n
}

/// The selftest's completion read: one `recvmsg(MSG_ERRQUEUE)` per
/// notification until the queue is empty. Returns notifications read and
/// system calls made.
fn selftest_read<F: AsFd>(zc: &mut ZcSocket<F, ()>, m: &mut Measured) -> Result<(), String> {
    let mut control = ControlBuf::<128>::new();
    loop {
        m.calls.errqueue += 1;
        let fd = zc.get_ref().as_fd();
        let (len, flags) = match sys::recv_errqueue(fd, control.as_mut_bytes()) {
            Ok(r) => r,
            Err(e) if e.errno == sys::NATIVE.family.errno().eagain => return Ok(()),
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
    zc: &mut ZcSocket<F, ()>,
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
    let mut zc =
        ZcSocket::<F, ()>::with_window(fd, WINDOW).map_err(|e| format!("SO_ZEROCOPY: {e}"))?;
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
            // A send in doubt or an exhausted optmem: the data went by copy.
            Ok(Sent::Copied { bytes, .. }) => {
                m.bytes += bytes as u64;
                m.sends += 1;
            }
            Ok(_) => m.sends += 1,
            // A datagram that failed after it may have been counted (on a
            // one-CPU guest, ENOBUFS from a full option-memory budget): the
            // data did not go; the socket settles the id through the
            // completions read below.
            Err(e) if matches!(e.kind, SendErrorKind::InDoubt { .. }) => {
                m.sends += 1;
                m.in_doubt += 1;
                let _ = zc.wait(Some(Duration::from_millis(100)));
                read_completions(&mut zc, mode, &mut m)?;
                continue;
            }
            Err(e) if e.is_retryable() => {
                // Tracker full or optmem exhausted: wait for completions.
                let _ = zc.wait(Some(Duration::from_millis(100)));
                read_completions(&mut zc, mode, &mut m)?;
                continue;
            }
            Err(e) => return Err(e.kind.to_string()),
        }
        since += 1;
        if mode == Mode::Inline {
            if let NotifyMode::ErrorQueue(why) = zc.mode() {
                return Err(match why {
                    Fallback::Rejected => "kernel refuses SCM_ZC_NOTIFICATION (EINVAL)".into(),
                    Fallback::Unwritten => "kernel ignores SCM_ZC_NOTIFICATION".into(),
                    Fallback::Corrupt(e) => format!("kernel wrote a corrupt answer: {e}"),
                    other => format!("error queue only: {other:?}"),
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
    m.calls.send += c.sendmsg;
    m.calls.errqueue += c.recvmmsg;
    m.calls.poll += c.poll;
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
        m.calls.send += 1;
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
    net: &Net,
    proto: Proto,
    mode: Mode,
    size: usize,
    interval: usize,
    secs: f64,
    cpu: Option<usize>,
) -> Result<Measured, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let rx_thread = {
        let (net, stop) = (net.clone(), stop.clone());
        thread::spawn(move || receiver(net, proto, stop, tx))
    };
    let res = rx
        .recv()
        .map_err(|_| "receiver died".to_string())
        .and_then(|a| a)
        .and_then(|to| {
            let net = net.clone();
            thread::spawn(move || {
                cpu.map_or(Ok(()), connect::pin)?;
                send_side(&net, proto, to, mode, size, interval, secs)
            })
            .join()
            .map_err(|_| "sender panicked".to_string())?
        });
    stop.store(true, Ordering::Relaxed);
    let _ = rx_thread.join();
    res
}

/// The sender: connects from its namespace and runs the mode.
fn send_side(
    net: &Net,
    proto: Proto,
    to: SocketAddr,
    mode: Mode,
    size: usize,
    interval: usize,
    secs: f64,
) -> Result<Measured, String> {
    net.enter(false)?;
    let payload = vec![0x5au8; size];
    let from = match (net, to) {
        (Net::Veth { .. }, SocketAddr::V4(_)) => (VETH_A4, 0).into(),
        (Net::Veth { .. }, SocketAddr::V6(_)) => (VETH_A6, 0).into(),
        _ => proto.addr(),
    };
    send_on(proto, from, to, mode, &payload, interval, secs)
}

/// Connects a `proto` socket from `from` to `to` and runs the mode on it.
fn send_on(
    proto: Proto,
    from: SocketAddr,
    to: SocketAddr,
    mode: Mode,
    payload: &[u8],
    interval: usize,
    secs: f64,
) -> Result<Measured, String> {
    let err = |e: std::io::Error| format!("{} to {to}: {e}", proto.name());
    match proto {
        Proto::Tcp4 | Proto::Tcp6 => {
            let s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).map_err(err)?;
            match mode {
                Mode::Copy => run_copy(&s, payload, secs),
                _ => run_zc(&s, mode, payload, interval, secs),
            }
        }
        Proto::Udp4 | Proto::Udp6 => {
            let s = UdpSocket::bind(from).map_err(err)?;
            s.connect(to).map_err(err)?;
            match mode {
                Mode::Copy => run_copy(&s, payload, secs),
                _ => run_zc(&s, mode, payload, interval, secs),
            }
        }
    }
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
    if let Err(e) = sys::loopback_up() {
        eprintln!("bench: note: could not bring lo up: {e}");
    }
    let header = format!(
        "msgzc bench: Linux {}, {} CPU(s) ({}), payload {} bytes, {} s per mode",
        kernel(),
        thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        match &o.sweep {
            Some(s) => format!(
                "{}..{}",
                s.iter().min().unwrap_or(&0),
                s.iter().max().unwrap_or(&0)
            ),
            None => o.size.to_string(),
        },
        o.common.secs
    );
    println!("{header}");
    let calibration = match kernel::calibrate(o.size) {
        Ok(c) => c.line(),
        Err(e) => format!("Calibration: unavailable ({e})"),
    };
    println!("{calibration}");
    if o.calibrate_only {
        return ExitCode::SUCCESS;
    }
    if let Some(sizes) = &o.sweep {
        return sweep::main(&o, sizes, &format!("{header}.\n\n{calibration}"));
    }
    let mut samples = Vec::new();
    for &net_name in &o.nets {
        // The veth pair lives for this network's samples only.
        let (veth, net) = open_net(net_name);
        for &proto in &o.protos {
            for &interval in &o.intervals {
                let kernel_modes = match (&o.selftest, net_name) {
                    (Some(_), "loopback") => &Mode::KERNEL[..],
                    _ => &[],
                };
                for &mode in Mode::ALL.iter().chain(kernel_modes) {
                    // The copy baseline does not depend on the interval.
                    if mode == Mode::Copy && interval != o.intervals[0] {
                        continue;
                    }
                    let result = net.clone().and_then(|n| {
                        debug_assert_eq!(n.name(), net_name);
                        match (mode, &o.selftest) {
                            (Mode::Kernel | Mode::KernelInline, Some(bin)) => {
                                let inline = mode == Mode::KernelInline;
                                kernel::run(bin, proto, inline, o.size, interval, o.common.secs)
                                    .map_err(|e| e.to_string())
                            }
                            _ => measure(
                                &n,
                                proto,
                                mode,
                                o.size,
                                interval,
                                o.common.secs,
                                o.common.cpu,
                            ),
                        }
                    });
                    let s = Sample {
                        net: net_name,
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
        drop(veth);
    }
    let table = markdown(&format!("{header}.\n\n{calibration}"), &o, &samples);
    println!("\n{table}");
    if let Some(p) = &o.common.markdown {
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
    // The inline modes need a patched kernel and veth needs root and
    // iproute2: reported as unavailable, not failures.
    let failed = samples
        .iter()
        .any(|s| !s.mode.inline() && s.net == "loopback" && s.result.is_err());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
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
        o.nets.join(","),
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
                    m.sends_text(),
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
                "net": s.net,
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
        assert_eq!(o.nets, ["loopback", "veth"]);
        assert_eq!(o.protos, Proto::ALL);
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
            (vec!["veth"], vec![Proto::Udp6, Proto::Tcp4])
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
