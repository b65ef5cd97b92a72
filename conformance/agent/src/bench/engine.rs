//! The measurement engine: a receiver thread, the senders of every mode
//! (plain `send`, and `MSG_ZEROCOPY` with completions read the selftest's
//! way, drained, or inline), the networks they run on (loopback, or a
//! veth pair between two network namespaces) and the CPU clocks.

use msgzc_cmsg::sys::{self, Fallback, NotifyMode, SendErrorKind, Sent, ZcSocket};
use msgzc_cmsg::{decode_errqueue, ControlBuf, ErrqueueItem, Walker};
use msgzc_conformance_protocol::bench::{Measured, Mode, Net, Proto, WINDOW};
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// Process CPU time (all threads: sender, receiver, and the kernel work
/// done in their context), in seconds.
pub fn cpu_now() -> f64 {
    // SAFETY: an all-zero rusage is valid and getrusage only writes it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is writable for the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Where sender and receiver run, once set up.
#[derive(Clone, Debug)]
pub enum Network {
    /// Both on the caller's loopback.
    Loopback,
    /// Sender in one network namespace, receiver in another, joined by a
    /// veth pair (paths of the namespaces' handles under `/run/netns`).
    Veth {
        /// The sender's namespace.
        a: String,
        /// The receiver's namespace.
        b: String,
    },
}

impl Network {
    /// Which network it is.
    pub fn net(&self) -> Net {
        match self {
            Network::Loopback => Net::Loopback,
            Network::Veth { .. } => Net::Veth,
        }
    }

    /// Moves the calling thread into the sender's (`a`) or receiver's
    /// namespace.
    fn enter(&self, receiver: bool) -> Result<(), String> {
        let Network::Veth { a, b } = self else {
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
            (Network::Loopback, _) => loopback(proto),
            (Network::Veth { .. }, p) if p.is_ipv4() => (VETH_B4, 0).into(),
            (Network::Veth { .. }, _) => (VETH_B6, 0).into(),
        }
    }
}

const VETH_A4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const VETH_B4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const VETH_A6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1);
const VETH_B6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2);

/// Two network namespaces joined by a veth pair, removed on drop.
pub struct VethPair {
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

    fn network(&self) -> Network {
        Network::Veth {
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

/// The loopback address of `proto`'s family, any port.
pub fn loopback(proto: Proto) -> SocketAddr {
    if proto.is_ipv4() {
        (Ipv4Addr::LOCALHOST, 0).into()
    } else {
        (Ipv6Addr::LOCALHOST, 0).into()
    }
}

/// Sets up `net`: a veth pair lives as long as the returned guard; a pair
/// that cannot be made is the error.
pub fn open_net(net: Net) -> (Option<VethPair>, Result<Network, String>) {
    match net {
        Net::Veth => match VethPair::create() {
            Ok(v) => {
                let n = v.network();
                (Some(v), Ok(n))
            }
            Err(e) => (None, Err(format!("no veth pair: {e}"))),
        },
        Net::Loopback => (None, Ok(Network::Loopback)),
    }
}

/// The receiver: binds in its namespace, reports its address (or why it
/// has none) on `addr`, then consumes everything until the sender closes
/// (TCP) or `stop` (UDP). Returns the bytes received.
pub fn receiver(
    net: Network,
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
    if proto.is_tcp() {
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
    } else {
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
pub fn run_zc<F: AsFd>(
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
    finish(zc, mode, m, (start, cpu0))
}

/// Collects what is still outstanding (bounded: loopback completes fast)
/// and completes `m` with the times since `start` and the socket's
/// counts; sends that never completed fail the run.
fn finish<F: AsFd>(
    mut zc: ZcSocket<F, ()>,
    mode: Mode,
    mut m: Measured,
    (start, cpu0): (Instant, f64),
) -> Result<Measured, String> {
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

/// Sends for `secs` with plain `send` (no `MSG_ZEROCOPY`).
pub fn run_copy<F: AsFd>(fd: F, payload: &[u8], secs: f64) -> Result<Measured, String> {
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

/// One run of `mode` on `net`: a receiver thread and a sender thread
/// (pinned to `cpu` when given).
pub fn measure(
    net: &Network,
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
                cpu.map_or(Ok(()), pin)?;
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
    net: &Network,
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
        (Network::Veth { .. }, SocketAddr::V4(_)) => (VETH_A4, 0).into(),
        (Network::Veth { .. }, SocketAddr::V6(_)) => (VETH_A6, 0).into(),
        _ => loopback(proto),
    };
    send_on(proto, from, to, mode, &payload, interval, secs)
}

/// Connects a `proto` socket from `from` to `to` and runs the mode on it.
pub fn send_on(
    proto: Proto,
    from: SocketAddr,
    to: SocketAddr,
    mode: Mode,
    payload: &[u8],
    interval: usize,
    secs: f64,
) -> Result<Measured, String> {
    let err = |e: std::io::Error| format!("{} to {to}: {e}", proto.name());
    if proto.is_tcp() {
        let s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).map_err(err)?;
        match mode {
            Mode::Copy => run_copy(&s, payload, secs),
            _ => run_zc(&s, mode, payload, interval, secs),
        }
    } else {
        let s = UdpSocket::bind(from).map_err(err)?;
        s.connect(to).map_err(err)?;
        match mode {
            Mode::Copy => run_copy(&s, payload, secs),
            _ => run_zc(&s, mode, payload, interval, secs),
        }
    }
}

/// Pins the calling thread to `cpu`, as the selftest's `-C` does.
pub fn pin(cpu: usize) -> Result<(), String> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(format!("CPU {cpu}: 0..{}", libc::CPU_SETSIZE));
    }
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` < CPU_SETSIZE (checked above), inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is
    // the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if r < 0 {
        return Err(format!(
            "pin to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The calling thread's CPU time (user and system), in seconds.
pub fn thread_cpu() -> f64 {
    // SAFETY: an all-zero rusage is valid and getrusage only writes it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is writable for the call.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}
