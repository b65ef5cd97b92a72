//! The benchmark's side of the protocol: what to measure (a [`Request`],
//! written as `key=value` words on the agent's command line) and what was
//! measured (a [`Record`] per line: `MACHINE`, `CALIBRATION`, `SAMPLE`).
//!
//! The agent runs the request and prints the records; the host reads them
//! back (from the console under qemu-system, or straight from the agent
//! library in a local run) and formats every table. A line's last field
//! may be free text (`model=`, `unavailable=`): it runs to the end of the
//! line.
//!
//! ```
//! use msgzc_conformance_protocol::bench::{Mode, Net, Proto, Record, Request, Sample};
//!
//! let req = Request {
//!     nets: vec![Net::Loopback],
//!     protos: vec![Proto::Tcp4, Proto::Udp6],
//!     intervals: vec![1, 32],
//!     ..Request::default()
//! };
//! let words = req.words().unwrap();
//! assert_eq!(Request::parse(&words).unwrap(), req);
//!
//! let s = Record::Sample(Sample {
//!     net: Net::Loopback,
//!     proto: Proto::Tcp4,
//!     interval: 32,
//!     mode: Mode::Inline,
//!     result: Err("kernel ignores SCM_ZC_NOTIFICATION".into()),
//! });
//! assert_eq!(Record::parse(&s.to_string()).unwrap(), s);
//! ```

use std::collections::BTreeMap;
use std::fmt;

/// Completions the sender may have outstanding before it must read some
/// (and so the largest `interval`).
pub const WINDOW: usize = 1024;

/// The largest payload: msg_zerocopy.c's default, which fits one UDP
/// datagram.
pub const MAX_SIZE: usize = 65_535 - 40 - 20 - 40;

/// The longest run of one mode, in seconds.
pub const MAX_SECS: f64 = 60.0;

/// Names a value of a small closed set, for the line format and the
/// host's options alike.
macro_rules! named {
    ($(#[$m:meta])* $t:ident { $($(#[$vm:meta])* $v:ident = $n:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $t { $($(#[$vm])* $v),+ }

        impl $t {
            /// Every value, in the order tables list them.
            pub const EVERY: &'static [$t] = &[$($t::$v),+];

            /// The word for it.
            pub const fn name(self) -> &'static str {
                match self { $($t::$v => $n),+ }
            }

            /// The value named `s`.
            pub fn from_name(s: &str) -> Option<$t> {
                $t::EVERY.iter().copied().find(|v| v.name() == s)
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named! {
    /// Where sender and receiver run.
    Net {
        /// Both on the loopback device.
        Loopback = "loopback",
        /// Two network namespaces joined by a veth pair (needs root).
        Veth = "veth",
    }
}

named! {
    /// The socket's protocol and family.
    Proto {
        /// TCP over IPv4.
        Tcp4 = "tcp4",
        /// TCP over IPv6.
        Tcp6 = "tcp6",
        /// UDP over IPv4.
        Udp4 = "udp4",
        /// UDP over IPv6.
        Udp6 = "udp6",
    }
}

impl Proto {
    /// Whether it is TCP (a stream).
    pub const fn is_tcp(self) -> bool {
        matches!(self, Proto::Tcp4 | Proto::Tcp6)
    }

    /// Whether it is IPv4.
    pub const fn is_ipv4(self) -> bool {
        matches!(self, Proto::Tcp4 | Proto::Udp4)
    }
}

named! {
    /// A way of sending and reading completions.
    Mode {
        /// Plain `send`, no `MSG_ZEROCOPY` (the baseline for CPU cost).
        Copy = "copy",
        /// `MSG_ZEROCOPY`, one `recvmsg(MSG_ERRQUEUE)` per notification.
        Selftest = "zc-selftest",
        /// `MSG_ZEROCOPY`, `ZcSocket::drain` (`recvmmsg`).
        Drain = "zc-drain",
        /// `MSG_ZEROCOPY` with an `SCM_ZC_NOTIFICATION` placeholder.
        Inline = "zc-inline",
        /// The kernel's msg_zerocopy selftest, error queue.
        Kernel = "kernel-selftest",
        /// The kernel's msg_zerocopy selftest, `-n` (SCM_ZC_NOTIFICATION).
        KernelInline = "kernel-selftest-inline",
    }
}

impl Mode {
    /// The bench's own modes, in the order it runs them.
    pub const ALL: [Mode; 4] = [Mode::Copy, Mode::Selftest, Mode::Drain, Mode::Inline];
    /// The kernel selftest's modes (`--selftest`, on loopback).
    pub const KERNEL: [Mode; 2] = [Mode::Kernel, Mode::KernelInline];

    /// The mode its ratio is taken against: the error-queue way of the
    /// same program.
    pub const fn baseline(self) -> Option<Mode> {
        match self {
            Mode::Copy => None,
            Mode::Selftest | Mode::Drain | Mode::Inline => Some(Mode::Selftest),
            Mode::Kernel | Mode::KernelInline => Some(Mode::Kernel),
        }
    }

    /// Whether the mode needs SCM_ZC_NOTIFICATION (unavailable, not
    /// failed, on other kernels).
    pub const fn inline(self) -> bool {
        matches!(self, Mode::Inline | Mode::KernelInline)
    }
}

/// Why a request or a record line cannot be read or written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BenchLineError {
    /// The line is not one of the bench's kinds.
    NotBench(String),
    /// A word that is not `key=value`, or a key this kind has not.
    UnknownKey(String),
    /// A key given twice.
    Duplicate(String),
    /// A required key is missing.
    Missing(&'static str),
    /// A value out of its range or not of its type.
    BadValue {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// What the key takes.
        want: &'static str,
    },
}

impl fmt::Display for BenchLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchLineError::NotBench(l) => write!(f, "not a bench line: {l:?}"),
            BenchLineError::UnknownKey(k) => write!(f, "unknown word {k:?}"),
            BenchLineError::Duplicate(k) => write!(f, "{k}= given twice"),
            BenchLineError::Missing(k) => write!(f, "{k}= missing"),
            BenchLineError::BadValue { key, value, want } => {
                write!(f, "{key}={value}: {want}")
            }
        }
    }
}

impl std::error::Error for BenchLineError {}

/// `key=value` words, each key once.
struct Fields(BTreeMap<String, String>);

impl Fields {
    fn parse<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Fields, BenchLineError> {
        let mut m = BTreeMap::new();
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| BenchLineError::UnknownKey(w.to_string()))?;
            if m.insert(k.to_string(), v.to_string()).is_some() {
                return Err(BenchLineError::Duplicate(k.to_string()));
            }
        }
        Ok(Fields(m))
    }

    /// Takes `key`'s value, read by `read` (which says what it wants).
    fn take<T>(
        &mut self,
        key: &'static str,
        want: &'static str,
        read: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, BenchLineError> {
        match self.0.remove(key) {
            None => Ok(None),
            Some(v) => read(&v).map(Some).ok_or(BenchLineError::BadValue {
                key: key.into(),
                value: v,
                want,
            }),
        }
    }

    fn need<T>(
        &mut self,
        key: &'static str,
        want: &'static str,
        read: impl Fn(&str) -> Option<T>,
    ) -> Result<T, BenchLineError> {
        self.take(key, want, read)?
            .ok_or(BenchLineError::Missing(key))
    }

    /// Fails on a key nobody took.
    fn done(self) -> Result<(), BenchLineError> {
        match self.0.into_keys().next() {
            Some(k) => Err(BenchLineError::UnknownKey(k)),
            None => Ok(()),
        }
    }
}

fn u64_of(v: &str) -> Option<u64> {
    v.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| v.parse().ok())?
}

fn usize_in(lo: usize, hi: usize) -> impl Fn(&str) -> Option<usize> {
    move |v| {
        u64_of(v)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (lo..=hi).contains(n))
    }
}

/// A finite, non-negative number of seconds or µs.
fn amount(v: &str) -> Option<f64> {
    v.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0)
}

/// A non-empty comma-separated list, each item read by `one`.
fn list<T>(one: impl Fn(&str) -> Option<T>) -> impl Fn(&str) -> Option<Vec<T>> {
    move |v| {
        v.split(',')
            .map(&one)
            .collect::<Option<Vec<T>>>()
            .filter(|l| !l.is_empty())
    }
}

fn join<T: fmt::Display>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

/// What the bench measures: every network × protocol × interval × mode,
/// `--selftest`'s modes on loopback when a selftest is named.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The networks.
    pub nets: Vec<Net>,
    /// The protocols.
    pub protos: Vec<Proto>,
    /// Sends between completion reads, each in `1..=WINDOW`.
    pub intervals: Vec<usize>,
    /// Payload bytes, in `1..=MAX_SIZE`.
    pub size: usize,
    /// Seconds per mode, in `(0, MAX_SECS]`.
    pub secs: f64,
    /// The CPU the sender thread is pinned to.
    pub cpu: Option<usize>,
    /// The kernel's msg_zerocopy binary (two more modes on loopback).
    pub selftest: Option<String>,
    /// Only the machine and the calibration, no samples.
    pub calibrate_only: bool,
}

impl Default for Request {
    /// The bench's defaults: both networks, every protocol, intervals 1
    /// and 32, 8192 bytes, one second.
    fn default() -> Request {
        Request {
            nets: Net::EVERY.to_vec(),
            protos: Proto::EVERY.to_vec(),
            intervals: vec![1, 32],
            size: 8192,
            secs: 1.0,
            cpu: None,
            selftest: None,
            calibrate_only: false,
        }
    }
}

const SECS_WANT: &str = "seconds in (0, 60]";

fn secs_of(v: &str) -> Option<f64> {
    amount(v).filter(|s| *s > 0.0 && *s <= MAX_SECS)
}

impl Request {
    /// The request as the agent's words (`net=loopback,veth proto=..
    /// interval=.. size=.. secs=.. [cpu=N] [selftest=PATH]
    /// [calibrate_only=yes]`); a selftest path with whitespace in it
    /// cannot be one word.
    pub fn words(&self) -> Result<Vec<String>, BenchLineError> {
        let mut w = vec![
            format!("net={}", join(&self.nets)),
            format!("proto={}", join(&self.protos)),
            format!("interval={}", join(&self.intervals)),
            format!("size={}", self.size),
            format!("secs={}", self.secs),
        ];
        if let Some(c) = self.cpu {
            w.push(format!("cpu={c}"));
        }
        if let Some(p) = &self.selftest {
            if p.is_empty() || p.contains(char::is_whitespace) {
                return Err(BenchLineError::BadValue {
                    key: "selftest".into(),
                    value: p.clone(),
                    want: "a path without whitespace",
                });
            }
            w.push(format!("selftest={p}"));
        }
        if self.calibrate_only {
            w.push("calibrate_only=yes".into());
        }
        Ok(w)
    }

    /// Reads [`Request::words`] back, checking every range.
    pub fn parse<S: AsRef<str>>(words: &[S]) -> Result<Request, BenchLineError> {
        let mut f = Fields::parse(words.iter().map(AsRef::as_ref))?;
        let r = Request {
            nets: f.need("net", "loopback,veth", list(Net::from_name))?,
            protos: f.need("proto", "tcp4,tcp6,udp4,udp6", list(Proto::from_name))?,
            intervals: f.need("interval", "numbers in 1..=1024", list(usize_in(1, WINDOW)))?,
            size: f.need("size", "a number in 1..=65435", usize_in(1, MAX_SIZE))?,
            secs: f.need("secs", SECS_WANT, secs_of)?,
            cpu: f.take("cpu", "a CPU number", usize_in(0, usize::MAX))?,
            selftest: f.take("selftest", "a path", |v| {
                (!v.is_empty()).then(|| v.to_string())
            })?,
            calibrate_only: f
                .take("calibrate_only", "yes", |v| (v == "yes").then_some(true))?
                .unwrap_or(false),
        };
        f.done()?;
        Ok(r)
    }
}

/// The sender's system calls, by kind.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calls {
    /// `send`/`sendmsg`, failed ones included.
    pub send: u64,
    /// Reads of the error queue (`recvmsg` or `recvmmsg`), the empty read
    /// that ends each drain included.
    pub errqueue: u64,
    /// `poll`.
    pub poll: u64,
}

impl Calls {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.send + self.errqueue + self.poll
    }
}

/// One mode's run.
#[derive(Default, Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    /// Wall time, the final wait for completions included.
    pub secs: f64,
    /// Payload bytes sent.
    pub bytes: u64,
    /// Sends.
    pub sends: u64,
    /// Error-queue messages read, plus sends released inline.
    pub notifications: u64,
    /// Completions that were deferred copies.
    pub copied: u64,
    /// Completions that were zerocopy.
    pub zerocopy: u64,
    /// The sender's system calls.
    pub calls: Calls,
    /// Process CPU time (sender and receiver), in seconds.
    pub cpu_secs: f64,
    /// Datagram sends that failed in doubt (`SendErrorKind::InDoubt`).
    pub in_doubt: u64,
}

impl Measured {
    /// Payload MB per second.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }

    /// System calls per send.
    pub fn syscalls_per_send(&self) -> f64 {
        self.calls.total() as f64 / self.sends.max(1) as f64
    }

    /// CPU ms per payload MB.
    pub fn cpu_ms_per_mb(&self) -> f64 {
        self.cpu_secs * 1e3 / (self.bytes as f64 / 1e6).max(1e-9)
    }
}

/// One measured (network, protocol, interval, mode).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The network.
    pub net: Net,
    /// The protocol.
    pub proto: Proto,
    /// Sends between completion reads.
    pub interval: usize,
    /// The mode.
    pub mode: Mode,
    /// The measurement, or why the mode cannot run here.
    pub result: Result<Measured, String>,
}

/// The machine the bench ran on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// The kernel's release.
    pub kernel: String,
    /// CPUs available.
    pub cpus: usize,
    /// The CPU's model name.
    pub model: String,
}

/// What one system call and the kernel's copy of one payload cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// `getppid`, in µs.
    pub syscall_us: f64,
    /// `pread` of one byte from the page cache, in µs.
    pub small_us: f64,
    /// `pread` of `size` bytes from the page cache, in µs.
    pub big_us: f64,
    /// The payload size.
    pub size: usize,
}

impl Calibration {
    /// The copy's share: the large read less the one-byte read.
    pub fn copy_us(&self) -> f64 {
        (self.big_us - self.small_us).max(0.0)
    }
}

/// A line the bench agent prints; `Display` gives the text without the
/// newline, [`Record::parse`] reads it back.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// `MACHINE kernel=R cpus=N model=TEXT`.
    Machine(Machine),
    /// `CALIBRATION syscall_us=.. small_us=.. big_us=.. size=..`, or
    /// `CALIBRATION unavailable=TEXT`.
    Calibration(Result<Calibration, String>),
    /// `SAMPLE net=.. proto=.. interval=.. mode=..` and the measurement's
    /// fields, or `unavailable=TEXT`.
    Sample(Sample),
}

/// The first words of [`Record`] lines.
pub const KINDS: [&str; 3] = ["MACHINE", "CALIBRATION", "SAMPLE"];

/// Free text as the last field: one line.
fn text(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Record::Machine(m) => write!(
                f,
                "MACHINE kernel={} cpus={} model={}",
                crate::word(&m.kernel),
                m.cpus,
                text(&m.model)
            ),
            Record::Calibration(Ok(c)) => write!(
                f,
                "CALIBRATION syscall_us={} small_us={} big_us={} size={}",
                c.syscall_us, c.small_us, c.big_us, c.size
            ),
            Record::Calibration(Err(e)) => write!(f, "CALIBRATION unavailable={}", text(e)),
            Record::Sample(s) => {
                write!(
                    f,
                    "SAMPLE net={} proto={} interval={} mode={}",
                    s.net, s.proto, s.interval, s.mode
                )?;
                match &s.result {
                    Ok(m) => write!(
                        f,
                        " secs={} bytes={} sends={} notifications={} copied={} zerocopy={} \
                         send_calls={} errqueue_calls={} poll_calls={} cpu_secs={} in_doubt={}",
                        m.secs,
                        m.bytes,
                        m.sends,
                        m.notifications,
                        m.copied,
                        m.zerocopy,
                        m.calls.send,
                        m.calls.errqueue,
                        m.calls.poll,
                        m.cpu_secs,
                        m.in_doubt
                    ),
                    Err(e) => write!(f, " unavailable={}", text(e)),
                }
            }
        }
    }
}

/// Splits `rest` at its free-text field `key=`, which runs to the end.
fn split_text<'a>(rest: &'a str, key: &str) -> (&'a str, Option<&'a str>) {
    let at = format!("{key}=");
    let mut from = 0;
    for w in rest.split(' ') {
        if w.starts_with(&at) {
            return (&rest[..from], Some(&rest[from + at.len()..]));
        }
        from += w.len() + 1;
    }
    (rest, None)
}

impl Record {
    /// Reads one line (trailing whitespace ignored).
    pub fn parse(line: &str) -> Result<Record, BenchLineError> {
        let line = line.trim_end();
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "MACHINE" => parse_machine(rest),
            "CALIBRATION" => parse_calibration(rest),
            "SAMPLE" => parse_sample(rest),
            _ => Err(BenchLineError::NotBench(line.to_string())),
        }
    }

    /// The records among `text`'s lines (other lines are skipped).
    pub fn parse_all(text: &str) -> Result<Vec<Record>, BenchLineError> {
        text.lines()
            .filter(|l| KINDS.contains(&l.split_whitespace().next().unwrap_or("")))
            .map(Record::parse)
            .collect()
    }
}

fn parse_machine(rest: &str) -> Result<Record, BenchLineError> {
    let (head, model) = split_text(rest, "model");
    let mut f = Fields::parse(head.split_whitespace())?;
    let m = Machine {
        kernel: f.need("kernel", "a word", |v| Some(v.to_string()))?,
        cpus: f.need("cpus", "a number", usize_in(0, usize::MAX))?,
        model: model.ok_or(BenchLineError::Missing("model"))?.to_string(),
    };
    f.done()?;
    Ok(Record::Machine(m))
}

fn parse_calibration(rest: &str) -> Result<Record, BenchLineError> {
    let (head, why) = split_text(rest, "unavailable");
    let mut f = Fields::parse(head.split_whitespace())?;
    let c = match why {
        Some(w) => Err(w.to_string()),
        None => Ok(Calibration {
            syscall_us: f.need("syscall_us", "µs", amount)?,
            small_us: f.need("small_us", "µs", amount)?,
            big_us: f.need("big_us", "µs", amount)?,
            size: f.need("size", "bytes", usize_in(1, MAX_SIZE))?,
        }),
    };
    f.done()?;
    Ok(Record::Calibration(c))
}

fn parse_measured(f: &mut Fields) -> Result<Measured, BenchLineError> {
    let n = |f: &mut Fields, k| f.need(k, "a count", u64_of);
    Ok(Measured {
        secs: f.need("secs", "seconds", amount)?,
        bytes: n(f, "bytes")?,
        sends: n(f, "sends")?,
        notifications: n(f, "notifications")?,
        copied: n(f, "copied")?,
        zerocopy: n(f, "zerocopy")?,
        calls: Calls {
            send: n(f, "send_calls")?,
            errqueue: n(f, "errqueue_calls")?,
            poll: n(f, "poll_calls")?,
        },
        cpu_secs: f.need("cpu_secs", "seconds", amount)?,
        in_doubt: n(f, "in_doubt")?,
    })
}

fn parse_sample(rest: &str) -> Result<Record, BenchLineError> {
    let (head, why) = split_text(rest, "unavailable");
    let mut f = Fields::parse(head.split_whitespace())?;
    let net = f.need("net", "loopback or veth", Net::from_name)?;
    let proto = f.need("proto", "tcp4, tcp6, udp4 or udp6", Proto::from_name)?;
    let interval = f.need("interval", "a number in 1..=1024", usize_in(1, WINDOW))?;
    let mode = f.need("mode", "a bench mode", Mode::from_name)?;
    let result = match why {
        Some(w) => Err(w.to_string()),
        None => Ok(parse_measured(&mut f)?),
    };
    f.done()?;
    Ok(Record::Sample(Sample {
        net,
        proto,
        interval,
        mode,
        result,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured() -> Measured {
        Measured {
            secs: 0.500_123_4,
            bytes: 8192 * 70,
            sends: 70,
            notifications: 3,
            copied: 60,
            zerocopy: 10,
            calls: Calls {
                send: 71,
                errqueue: 5,
                poll: 2,
            },
            cpu_secs: 0.1 + 0.2,
            in_doubt: 4,
        }
    }

    #[test]
    fn requests_round_trip() {
        let full = Request {
            nets: vec![Net::Veth, Net::Loopback],
            protos: vec![Proto::Udp6],
            intervals: vec![7, 1024, 1],
            size: MAX_SIZE,
            secs: 0.1 + 0.2,
            cpu: Some(3),
            selftest: Some("/msg_zerocopy".into()),
            calibrate_only: true,
        };
        for r in [Request::default(), full] {
            let w = r.words().unwrap();
            assert_eq!(Request::parse(&w), Ok(r));
        }
        let w = Request::default().words().unwrap();
        assert_eq!(
            w.join(" "),
            "net=loopback,veth proto=tcp4,tcp6,udp4,udp6 interval=1,32 size=8192 secs=1"
        );
    }

    #[test]
    fn bad_requests_are_refused_by_name() {
        let ok = Request::default().words().unwrap();
        let with = |extra: &[&str]| {
            let mut w: Vec<String> = ok.clone();
            for e in extra {
                let k = e.split('=').next().unwrap();
                w.retain(|x| !x.starts_with(&format!("{k}=")));
                w.push(e.to_string());
            }
            Request::parse(&w)
        };
        for (bad, key) in [
            ("net=wifi", "net"),
            ("net=", "net"),
            ("proto=sctp", "proto"),
            ("interval=0", "interval"),
            ("interval=1,,2", "interval"),
            ("interval=1025", "interval"),
            ("size=65436", "size"),
            ("size=+5", "size"),
            ("secs=0", "secs"),
            ("secs=61", "secs"),
            ("secs=NaN", "secs"),
            ("cpu=-1", "cpu"),
            ("calibrate_only=no", "calibrate_only"),
        ] {
            match with(&[bad]) {
                Err(BenchLineError::BadValue { key: k, .. }) => assert_eq!(k, key, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(
            with(&["earlycon=pdc"]),
            Err(BenchLineError::UnknownKey("earlycon".into()))
        );
        assert!(matches!(
            Request::parse(&["bench"]),
            Err(BenchLineError::UnknownKey(_))
        ));
        let mut twice = ok.clone();
        twice.push("size=1".into());
        assert_eq!(
            Request::parse(&twice),
            Err(BenchLineError::Duplicate("size".into()))
        );
        assert_eq!(
            Request::parse(&ok[1..]),
            Err(BenchLineError::Missing("net"))
        );
        let spaced = Request {
            selftest: Some("/a b".into()),
            ..Request::default()
        };
        assert!(spaced.words().is_err());
    }

    #[test]
    fn records_round_trip() {
        let sample = |mode, result| {
            Record::Sample(Sample {
                net: Net::Veth,
                proto: Proto::Tcp6,
                interval: 32,
                mode,
                result,
            })
        };
        let records = [
            Record::Machine(Machine {
                kernel: "6.1.158".into(),
                cpus: 2,
                model: "QEMU Virtual CPU version 2.5+ unavailable=x".into(),
            }),
            Record::Calibration(Ok(Calibration {
                syscall_us: 0.061_234,
                small_us: 0.2,
                big_us: 1.0 / 3.0,
                size: 8192,
            })),
            Record::Calibration(Err("/tmp: read-only file system".into())),
            sample(Mode::KernelInline, Ok(measured())),
            sample(
                Mode::Inline,
                Err("kernel refuses SCM_ZC_NOTIFICATION (EINVAL)".into()),
            ),
            sample(Mode::Copy, Err(String::new())),
        ];
        let text = records.iter().map(|r| format!("{r}\n")).collect::<String>();
        let noisy = format!("NOTE kernel=6.1\n{text}random: crng init done\nDONE\n");
        assert_eq!(Record::parse_all(&noisy).unwrap(), records);
        let multi = Record::Calibration(Err("a\nb".into()));
        assert_eq!(
            Record::parse(&multi.to_string()),
            Ok(Record::Calibration(Err("a b".into())))
        );
    }

    #[test]
    fn bad_records_are_refused() {
        let good = Record::Sample(Sample {
            net: Net::Loopback,
            proto: Proto::Udp4,
            interval: 1,
            mode: Mode::Drain,
            result: Ok(measured()),
        })
        .to_string();
        assert!(Record::parse(&good).is_ok());
        for (from, to) in [
            ("bytes=573440", "bytes=-1"),
            ("mode=zc-drain", "mode=zc-fast"),
            ("secs=0.5001234", "secs=inf"),
            (" in_doubt=4", ""),
            (" in_doubt=4", " in_doubt=4 extra=1"),
            (" in_doubt=4", " in_doubt=4 in_doubt=4"),
            ("SAMPLE", "SAMPLES"),
        ] {
            let bad = good.replace(from, to);
            assert_ne!(bad, good, "{from}");
            assert!(Record::parse(&bad).is_err(), "{bad}");
        }
        assert!(Record::parse("MACHINE kernel=6.1 cpus=1").is_err());
        assert!(Record::parse("CALIBRATION size=8192").is_err());
        assert!(Record::parse_all("SAMPLE net=loopback\n").is_err());
    }
}
