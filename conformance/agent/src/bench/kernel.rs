//! The kernel's own `msg_zerocopy` selftest as two bench modes, and the
//! calibration of a system call against the copy of one payload.
//!
//! The selftest runs as two processes, as its authors run it: a receiver
//! (`-r`) and a sender, on loopback, with a fresh port per run. The
//! sender's `msgzc:` line (added by
//! `conformance/kernel/test-only/selftest-inline.patch`) gives the counts;
//! CPU time is both processes' (`RUSAGE_CHILDREN`), as the bench's own
//! modes count their sender and receiver threads.

use msgzc_conformance_protocol::bench::{Calibration, Calls, Measured, Proto};
use std::fmt;
use std::os::unix::fs::FileExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Why a kernel-selftest run has no result.
#[derive(Debug)]
pub enum KernelRunError {
    /// The binary could not be started.
    Spawn(String, std::io::Error),
    /// The receiver did not bind its port in time.
    NotBound(u16),
    /// A process failed; its last line of standard error.
    Failed(&'static str, ExitStatus, String),
    /// The sender printed no complete `msgzc:` line.
    NoSummary,
    /// Sends that got no completion.
    Missing {
        /// Completions the sender read.
        completions: u64,
        /// Sends it made.
        expected: u64,
    },
}

impl fmt::Display for KernelRunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelRunError::Spawn(bin, e) => write!(f, "{bin}: {e}"),
            KernelRunError::NotBound(p) => write!(f, "receiver never bound port {p}"),
            KernelRunError::Failed(who, st, last) => write!(f, "{who} {st}: {last}"),
            KernelRunError::NoSummary => {
                write!(f, "no msgzc: line (selftest-inline.patch missing?)")
            }
            KernelRunError::Missing {
                completions,
                expected,
            } => write!(f, "{completions} of {expected} completions"),
        }
    }
}

/// The sender's `msgzc:` line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    ms: u64,
    bytes: u64,
    sends: u64,
    completions: u64,
    expected: u64,
    copied: u64,
    inline: u64,
    errqueue_msgs: u64,
    sendmsg: u64,
    recvmsg: u64,
    poll: u64,
}

/// The last `msgzc:` line of `stderr`, if every field is there.
pub fn parse_summary(stderr: &str) -> Option<Summary> {
    let line = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("msgzc: "))?;
    let mut s = Summary::default();
    let mut seen = 0u32;
    for kv in line.split_whitespace() {
        let (k, v) = kv.split_once('=')?;
        let v: u64 = v.parse().ok()?;
        let (slot, bit) = match k {
            "ms" => (&mut s.ms, 0),
            "bytes" => (&mut s.bytes, 1),
            "sends" => (&mut s.sends, 2),
            "completions" => (&mut s.completions, 3),
            "expected" => (&mut s.expected, 4),
            "copied" => (&mut s.copied, 5),
            "inline" => (&mut s.inline, 6),
            "errqueue_msgs" => (&mut s.errqueue_msgs, 7),
            "sendmsg" => (&mut s.sendmsg, 8),
            "recvmsg" => (&mut s.recvmsg, 9),
            "poll" => (&mut s.poll, 10),
            _ => continue,
        };
        *slot = v;
        seen |= 1 << bit;
    }
    (seen == (1 << 11) - 1).then_some(s)
}

impl Summary {
    /// The measurement, with `cpu_secs` as its CPU time; sends without a
    /// completion make it an error.
    pub fn measured(&self, cpu_secs: f64) -> Result<Measured, KernelRunError> {
        if self.completions < self.expected {
            return Err(KernelRunError::Missing {
                completions: self.completions,
                expected: self.expected,
            });
        }
        Ok(Measured {
            secs: self.ms.max(1) as f64 / 1e3,
            bytes: self.bytes,
            sends: self.sends,
            notifications: self.errqueue_msgs + self.inline,
            copied: self.copied,
            zerocopy: self.completions - self.copied.min(self.completions),
            calls: Calls {
                send: self.sendmsg,
                errqueue: self.recvmsg,
                poll: self.poll,
            },
            cpu_secs,
            in_doubt: 0,
        })
    }
}

/// Whether a `/proc/net/{tcp,tcp6,udp,udp6}` table has a socket on local
/// `port` in `state` (hex, as the table writes it: `0A` listen, `07` an
/// unconnected UDP socket).
pub(crate) fn table_has(table: &str, port: u16, state: &str) -> bool {
    let want = format!("{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].rsplit(':').next() == Some(want.as_str()) && f[3] == state
    })
}

fn bound(proto: Proto, port: u16) -> bool {
    let (file, state) = match proto {
        Proto::Tcp4 => ("tcp", "0A"),
        Proto::Tcp6 => ("tcp6", "0A"),
        Proto::Udp4 => ("udp", "07"),
        Proto::Udp6 => ("udp6", "07"),
    };
    std::fs::read_to_string(format!("/proc/net/{file}")).is_ok_and(|t| table_has(&t, port, state))
}

/// CPU time of the waited-for children, in seconds.
pub fn children_cpu() -> f64 {
    // SAFETY: an all-zero rusage is valid and getrusage only writes it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is writable for the call.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// One port per run: no run meets the previous one's TIME_WAIT sockets.
static NEXT_PORT: AtomicU16 = AtomicU16::new(8000);

/// The selftest's arguments shared by receiver and sender.
fn common_args(proto: Proto, size: usize, port: u16) -> Vec<String> {
    let (fam, addr) = match proto {
        Proto::Tcp4 | Proto::Udp4 => ("-4", "127.0.0.1"),
        Proto::Tcp6 | Proto::Udp6 => ("-6", "::1"),
    };
    [
        fam,
        "-D",
        addr,
        "-p",
        &port.to_string(),
        "-s",
        &size.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

fn test_name(proto: Proto) -> &'static str {
    match proto {
        Proto::Tcp4 | Proto::Tcp6 => "tcp",
        Proto::Udp4 | Proto::Udp6 => "udp",
    }
}

/// The last line of a process's standard error, without the `error(3)`
/// prefix (the program's path).
fn last_line(bin: &str, b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let l = s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    l.strip_prefix(bin)
        .and_then(|r| r.strip_prefix(": "))
        .unwrap_or(l)
        .to_string()
}

/// The selftest's receiver (`-r`) on a fresh port, bound and listening.
pub struct Receiver {
    child: Child,
    /// Its port on the loopback address of the protocol's family.
    pub port: u16,
}

impl Receiver {
    /// Starts a receiver for `proto` that runs `t + 2` seconds (longer
    /// than any sender it serves), pinned to `cpu` when given.
    pub fn start(
        bin: &str,
        proto: Proto,
        size: usize,
        t: u64,
        cpu: Option<usize>,
    ) -> Result<Receiver, KernelRunError> {
        let port = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let mut cmd = Command::new(bin);
        cmd.args(common_args(proto, size, port));
        if let Some(c) = cpu {
            cmd.args(["-C", &c.to_string()]);
        }
        let mut rx = cmd
            .args(["-r", "-t", &(t + 2).to_string(), test_name(proto)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| KernelRunError::Spawn(bin.into(), e))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !bound(proto, port) {
            let gone = rx.try_wait().ok().flatten();
            if gone.is_some() || Instant::now() > deadline {
                let _ = rx.kill();
                let out = rx.wait_with_output();
                return Err(match (gone, out) {
                    (Some(st), Ok(o)) => {
                        KernelRunError::Failed("receiver", st, last_line(bin, &o.stderr))
                    }
                    _ => KernelRunError::NotBound(port),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Receiver { child: rx, port })
    }

    /// Ends the receiver: it runs longer than the sender and has done its
    /// part once the sender is done.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The measurement in a finished sender's `msgzc:` line; `cpu_secs` is
/// the CPU time to report with it.
pub fn sender_result(
    bin: &str,
    out: std::io::Result<Output>,
    cpu_secs: f64,
) -> Result<Measured, KernelRunError> {
    let out = out.map_err(|e| KernelRunError::Spawn(bin.into(), e))?;
    if !out.status.success() {
        return Err(KernelRunError::Failed(
            "sender",
            out.status,
            last_line(bin, &out.stderr),
        ));
    }
    let summary =
        parse_summary(&String::from_utf8_lossy(&out.stderr)).ok_or(KernelRunError::NoSummary)?;
    summary.measured(cpu_secs)
}

/// The selftest's sender: `-z` (error queue) or `-n` (inline), reading
/// completions every `interval` sends, for `t` seconds (plus the 0.2 its
/// `-t` adds), pinned to `cpu` when given.
pub fn sender(
    bin: &str,
    proto: Proto,
    port: u16,
    (size, interval, t): (usize, usize, u64),
    inline: bool,
    cpu: Option<usize>,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(common_args(proto, size, port));
    if let Some(c) = cpu {
        cmd.args(["-C", &c.to_string()]);
    }
    cmd.args([
        if inline { "-n" } else { "-z" },
        "-l",
        &interval.to_string(),
    ])
    .args(["-t", &t.to_string(), test_name(proto)])
    .stdin(Stdio::null());
    cmd
}

/// Whole seconds for the selftest's `-t`, for a run of about `secs`.
pub fn whole_secs(secs: f64) -> u64 {
    secs.ceil().max(1.0) as u64
}

/// One run of the kernel selftest, unpinned: the error-queue way (`-z`)
/// or inline (`-n`), reading completions every `interval` sends, for
/// about `secs` (the selftest's `-t` takes whole seconds and adds 0.2).
pub fn run(
    bin: &str,
    proto: Proto,
    inline: bool,
    size: usize,
    interval: usize,
    secs: f64,
) -> Result<Measured, KernelRunError> {
    let t = whole_secs(secs);
    let cpu0 = children_cpu();
    let rx = Receiver::start(bin, proto, size, t, None)?;
    let out = sender(bin, proto, rx.port, (size, interval, t), inline, None).output();
    rx.stop();
    sender_result(bin, out, children_cpu() - cpu0)
}

/// Mean µs per call of `f`, run in batches for about `budget`.
fn time_us(budget: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// Times `getppid` and `pread` of 1 and `size` bytes of a file that is in
/// the page cache (written just before; in the guest, the initramfs).
pub fn calibrate(size: usize) -> std::io::Result<Calibration> {
    let dir = std::env::temp_dir();
    let dir = if dir.is_dir() { dir } else { "/".into() };
    let path = dir.join(format!("msgzc-calibrate-{}", std::process::id()));
    std::fs::write(&path, vec![0x5au8; size])?;
    let file = std::fs::File::open(&path);
    let _ = std::fs::remove_file(&path);
    let file = file?;
    let mut buf = vec![0u8; size];
    let budget = Duration::from_millis(300);
    // SAFETY: getppid takes no arguments and cannot fail.
    let syscall_us = time_us(budget, || unsafe {
        libc::syscall(libc::SYS_getppid);
    });
    let mut err = None;
    let mut read = |n: usize| {
        time_us(budget, || {
            if let Err(e) = file.read_at(&mut buf[..n], 0) {
                err.get_or_insert(e);
            }
        })
    };
    let (small_us, big_us) = (read(1), read(size));
    match err {
        Some(e) => Err(e),
        None => Ok(Calibration {
            syscall_us,
            small_us,
            big_us,
            size,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_needs_every_field() {
        let err = "cpu: unable to pin\ntx=10 (0 MB) txc=10 zc=y\n\
                   msgzc: ms=2201 bytes=654350 sends=10 completions=10 expected=10 copied=3 \
                   inline=8 errqueue_msgs=1 sendmsg=11 recvmsg=2 poll=12\n";
        let s = parse_summary(err).unwrap();
        assert_eq!(
            (s.ms, s.bytes, s.copied, s.inline, s.poll),
            (2201, 654350, 3, 8, 12)
        );
        let m = s.measured(0.5).unwrap();
        assert_eq!((m.notifications, m.zerocopy, m.calls.total()), (9, 7, 25));
        assert_eq!(parse_summary(&err.replace(" poll=12", "")), None);
        assert_eq!(parse_summary(&err.replace("ms=2201", "ms=x")), None);
        assert_eq!(parse_summary("tx=10 (0 MB) txc=10 zc=y\n"), None);
        let short = Summary {
            completions: 9,
            expected: 10,
            ..s
        };
        assert!(matches!(
            short.measured(0.1),
            Err(KernelRunError::Missing {
                completions: 9,
                expected: 10
            })
        ));
    }

    #[test]
    fn proc_net_tables_are_read_by_port_and_state() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue\n\
                 \x20  0: 0100007F:1F40 00000000:0000 0A 00000000:00000000\n\
                 \x20  1: 0100007F:1F41 0100007F:9C40 01 00000000:00000000\n";
        assert!(table_has(t, 8000, "0A"));
        assert!(!table_has(t, 8001, "0A"));
        assert!(!table_has(t, 8002, "0A"));
        let t6 = "  sl  local_address                         remote_address  st\n\
                  \x20  0: 00000000000000000000000001000000:1F42 00000000000000000000000000000000:0000 07\n";
        assert!(table_has(t6, 8002, "07"));
    }

    #[test]
    fn calibration_measures_something() {
        let c = calibrate(65_435).unwrap();
        assert!(c.syscall_us > 0.0 && c.small_us > 0.0 && c.big_us > 0.0);
        assert_eq!(c.size, 65_435);
        assert!(c.copy_us() >= 0.0);
    }
}
