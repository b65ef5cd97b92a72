//! The host side: runs a guest, re-decodes every raw buffer it printed with
//! the target's layout, and decides each case. A guest's "ok" counts only
//! when the host's own decoding agrees and the case's invariant holds.

use crate::guest::{CASES, SENDS};
use crate::report::{jobj, jstr, unhex};
use msgzc_abi::proposal::v8;
use msgzc_abi::{Arch, Target};
use msgzc_cmsg::{decode_errqueue, ErrqueueItem, MsgFlags, WalkErrorKind, Walker, ZcRange};
use std::collections::BTreeMap;
use std::process::{Command, ExitCode};
use std::time::Instant;

/// How a case ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
    /// The emulator lacks a feature the case needs (stock qemu-user and
    /// SO_ZEROCOPY); never a pass.
    EmulatorUnsupported(String),
    Skip(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "FAIL",
            Outcome::EmulatorUnsupported(_) => "emu-unsupported",
            Outcome::Skip(_) => "skip",
        }
    }
}

#[derive(Default, Debug)]
struct CaseLog {
    raws: Vec<BTreeMap<String, String>>,
    notes: Vec<String>,
    end: Option<BTreeMap<String, String>>,
}

fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Splits guest output into per-case logs.
fn parse(stdout: &str) -> BTreeMap<String, CaseLog> {
    let mut cases: BTreeMap<String, CaseLog> = BTreeMap::new();
    let mut current = String::new();
    for line in stdout.lines() {
        let kind = line.split_whitespace().next().unwrap_or("");
        let f = fields(line);
        match kind {
            "CASE" => current = f.get("name").cloned().unwrap_or_default(),
            "RAW" => cases.entry(current.clone()).or_default().raws.push(f),
            "END" => cases.entry(current.clone()).or_default().end = Some(f),
            "FINDING" | "MODE" | "NOTE" | "ERRNO" => cases
                .entry(current.clone())
                .or_default()
                .notes
                .push(line.to_string()),
            _ => {}
        }
    }
    cases
}

/// The host's decoding of one raw buffer, in the guest's notation.
struct HostView {
    ranges: Vec<ZcRange>,
    items: Vec<String>,
    truncated: bool,
    messages: Vec<(i32, i32, usize)>,
}

fn host_decode(t: Target, raw: &BTreeMap<String, String>) -> Result<HostView, String> {
    let bytes = unhex(raw.get("hex").ok_or("no hex")?)?;
    let len: usize = raw
        .get("controllen")
        .and_then(|v| v.parse().ok())
        .ok_or("bad controllen")?;
    let flags: u32 = raw
        .get("flags")
        .and_then(|v| v.parse().ok())
        .ok_or("bad flags")?;
    let mut v = HostView {
        ranges: Vec::new(),
        items: Vec::new(),
        truncated: false,
        messages: Vec::new(),
    };
    for m in Walker::new(
        t,
        &bytes,
        len.min(bytes.len()),
        MsgFlags::from_bits_retain(flags),
    ) {
        match m {
            Ok(m) => {
                v.messages.push((m.level, m.ty, m.data.len()));
                match decode_errqueue(t, &m) {
                    Ok(ErrqueueItem::Zerocopy(r)) => v.ranges.push(r),
                    Ok(ErrqueueItem::Extended(x)) => v.items.push(format!(
                        "ext:{}:{}:{}:{}",
                        x.errno, x.origin_raw, x.ty, x.code
                    )),
                    Ok(_) => v.items.push("other".into()),
                    Err(_) if flags & MsgFlags::CTRUNC.bits() != 0 => {}
                    Err(e) => return Err(format!("host decode: {e}")),
                }
            }
            Err(e) if e.kind == WalkErrorKind::Truncated => v.truncated = true,
            Err(e) => return Err(format!("host walk: {e}")),
        }
    }
    Ok(v)
}

fn notation(v: &HostView) -> (String, String) {
    let rs: Vec<String> = v
        .ranges
        .iter()
        .map(|r| format!("{}-{}-{}", r.lo, r.hi, u8::from(r.copied)))
        .collect();
    let r = if rs.is_empty() {
        "none".into()
    } else {
        rs.join(",")
    };
    let i = if v.items.is_empty() {
        "none".into()
    } else {
        v.items.join(",")
    };
    (r, i)
}

/// Judges one case from the guest's log.
fn judge(t: Target, case: &str, log: &CaseLog, emulated: bool) -> Outcome {
    let Some(end) = &log.end else {
        return Outcome::Fail("no result from guest".into());
    };
    let status = end.get("status").map(String::as_str).unwrap_or("");
    let detail = end.get("detail").cloned().unwrap_or_default();
    match status {
        "ok" => {}
        "skip" => return Outcome::Skip(detail),
        "unsupported" if emulated => return Outcome::EmulatorUnsupported(detail),
        _ => return Outcome::Fail(format!("guest: {status} {detail}")),
    }
    let mut covered: BTreeMap<u32, usize> = BTreeMap::new();
    let mut all_copied = true;
    let mut host_items = Vec::new();
    let mut truncated = false;
    for raw in &log.raws {
        let v = match host_decode(t, raw) {
            Ok(v) => v,
            Err(e) => return Outcome::Fail(e),
        };
        if raw.get("dir").map(String::as_str) == Some("send") {
            // The placeholder as sent: one SOL_SOCKET message of the
            // family's v8 type and the exact zc_info size.
            let want = (
                t.family.socket().sol_socket,
                v8::scm_zc_notification(t.family),
                v8::zc_info_size(16),
            );
            if v.messages != [want] {
                return Outcome::Fail(format!(
                    "placeholder decodes as {:?}, want {want:?}",
                    v.messages
                ));
            }
            continue;
        }
        let (r, i) = notation(&v);
        if raw.get("ranges") != Some(&r) || raw.get("items") != Some(&i) {
            return Outcome::Fail(format!(
                "host decode {r} {i} differs from guest {:?} {:?}",
                raw.get("ranges"),
                raw.get("items")
            ));
        }
        for range in &v.ranges {
            all_copied &= range.copied;
            for id in range.ids().take(1 << 16) {
                *covered.entry(id).or_default() += 1;
            }
        }
        host_items.extend(v.items);
        truncated |= v.truncated;
    }
    match case {
        c if c.starts_with("zc_") || c == "probe" => {
            let want: BTreeMap<u32, usize> = (0..SENDS).map(|i| (i, 1)).collect();
            if covered != want {
                return Outcome::Fail(format!(
                    "completions do not cover 0..{SENDS} exactly once: {covered:?}"
                ));
            }
            if !all_copied {
                return Outcome::Fail("a loopback completion was not flagged copied".into());
            }
            if c == "probe"
                && !log
                    .notes
                    .iter()
                    .any(|n| n.starts_with("MODE ErrorQueue") || n.starts_with("MODE Inline"))
            {
                return Outcome::Fail("probe reported no mode".into());
            }
            Outcome::Pass
        }
        "ctrunc" if !truncated => Outcome::Fail("host walk saw no MSG_CTRUNC".into()),
        "icmp" => {
            let icmp = host_items.iter().any(|i| {
                let p: Vec<&str> = i.split(':').collect();
                p.len() == 5 && p[1] != "0" && p[2] == "2" && p[3] == "3" && p[4] == "3"
            });
            if icmp {
                Outcome::Pass
            } else {
                Outcome::Fail(format!("no ICMP port-unreachable item in {host_items:?}"))
            }
        }
        _ => Outcome::Pass,
    }
}

pub fn run(args: &[String]) -> ExitCode {
    let mut json = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = it.next().cloned(),
            "--all" | "--target" => {
                if a == "--target" {
                    it.next();
                }
                eprintln!(
                    "run: only the host-native target is implemented so far; the qemu-user tier \
                     for the other {} targets is not built yet (see the conformance issue)",
                    Arch::ALL.len() - 1
                );
                return ExitCode::from(2);
            }
            _ => {
                eprintln!("usage: msgzc-conformance run [--json PATH]");
                return ExitCode::from(2);
            }
        }
    }
    let Some(arch) = Arch::native() else {
        eprintln!("run: this host is not one of the named targets");
        return ExitCode::FAILURE;
    };
    let t = arch.target();
    let start = Instant::now();
    println!("== {arch} (native, kernel {})", kernel_release());
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("current_exe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = match Command::new(exe).arg("guest").output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("guest: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs = parse(&stdout);
    let mut results = Vec::new();
    for case in CASES {
        let empty = CaseLog::default();
        let log = logs.get(case).unwrap_or(&empty);
        let o = judge(t, case, log, false);
        let why = match &o {
            Outcome::Pass => String::new(),
            Outcome::Fail(w) | Outcome::EmulatorUnsupported(w) | Outcome::Skip(w) => {
                format!("  ({w})")
            }
        };
        println!("  {case:<13} {:<16}{why}", o.label());
        for n in log.notes.iter().filter(|n| n.starts_with("FINDING")) {
            println!("    {n}");
        }
        results.push((case, o));
    }
    let count = |l: &str| results.iter().filter(|(_, o)| o.label() == l).count();
    let (pass, fail, emu, skip) = (
        count("pass"),
        count("FAIL"),
        count("emu-unsupported"),
        count("skip"),
    );
    println!("\nmatrix (tier: native)");
    println!("  {:<10} {}", "target", CASES.join(" "));
    let cells: Vec<String> = results
        .iter()
        .map(|(c, o)| format!("{:width$}", o.label(), width = c.len()))
        .collect();
    println!("  {:<10} {}", arch.name(), cells.join(" "));
    println!(
        "\n{pass} pass, {fail} fail, {emu} emulator-unsupported, {skip} skipped in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    if let Some(path) = json {
        let rows: Vec<String> = results
            .iter()
            .map(|(c, o)| {
                let why = match o {
                    Outcome::Pass => String::new(),
                    Outcome::Fail(w) | Outcome::EmulatorUnsupported(w) | Outcome::Skip(w) => {
                        w.clone()
                    }
                };
                jobj(&[
                    ("target", jstr(arch.name())),
                    ("tier", jstr("native")),
                    ("case", jstr(c)),
                    ("outcome", jstr(o.label())),
                    ("detail", jstr(&why)),
                ])
            })
            .collect();
        if let Err(e) = std::fs::write(&path, rows.join("\n") + "\n") {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if !out.status.success() {
        eprintln!("guest exited with {}", out.status);
        return ExitCode::FAILURE;
    }
    if fail > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
