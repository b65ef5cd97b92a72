//! The host side of every case: parses a guest's output and decides each
//! case from the raw buffers it printed, re-decoded here with the target's
//! layout. A guest's "ok" counts only when the host's own decoding agrees
//! with the guest's and the case's invariant holds on the host's view.

use crate::cases::{extra, extra_row, needs_zerocopy, PROBE_CAPACITY, SENDS};
use crate::report::unhex;
use crate::table::{parse_flat, table_row};
use crate::view::{self, View};
use msgzc_abi::{Arch, Endian, Target, IP_RECVERR, SOL_IP};
use msgzc_cmsg::{
    decode_errqueue, ControlBuf, ControlBuilder, ErrqueueItem, MsgFlags, Walker, ZcOutcome,
};
use std::collections::BTreeMap;

/// How a case ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The host's checks passed.
    Pass,
    /// A check failed (or the guest failed), with why.
    Fail(String),
    /// The emulator lacks a feature the case needs (stock qemu-user and
    /// `SO_ZEROCOPY`); never a pass, and never allowed under the patched
    /// emulator.
    EmulatorUnsupported(String),
    /// The case could not run here (a missing tool, no IPv6, no namespace
    /// permission), with why.
    Skip(String),
}

impl Outcome {
    /// The matrix label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "FAIL",
            Outcome::EmulatorUnsupported(_) => "emu-unsup",
            Outcome::Skip(_) => "skip",
        }
    }

    /// The JSON name.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "fail",
            Outcome::EmulatorUnsupported(_) => "emulator-unsupported",
            Outcome::Skip(_) => "skip",
        }
    }

    /// Why, or an empty string for a pass.
    pub fn detail(&self) -> &str {
        match self {
            Outcome::Pass => "",
            Outcome::Fail(w) | Outcome::EmulatorUnsupported(w) | Outcome::Skip(w) => w,
        }
    }
}

/// One judged case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case.
    pub case: &'static str,
    /// Its outcome.
    pub outcome: Outcome,
    /// Things worth reporting that are not failures: `libc` crate numbers
    /// that differ from the tables, emulator deviations from the kernel.
    pub findings: Vec<String>,
}

/// One output line: its kind, its `key=value` fields, the text.
#[derive(Clone, Debug)]
pub struct Line {
    kind: String,
    fields: BTreeMap<String, String>,
    text: String,
}

impl Line {
    fn parse(text: &str) -> Line {
        let mut words = text.split_whitespace();
        let kind = words.next().unwrap_or("").to_string();
        let fields = words
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        Line {
            kind,
            fields,
            text: text.to_string(),
        }
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.fields.get(k).map(String::as_str)
    }

    fn num(&self, k: &str) -> Option<i64> {
        self.get(k).and_then(|v| v.parse().ok())
    }
}

/// A guest's output, split by case.
#[derive(Debug, Default)]
pub struct GuestLog {
    /// `GUEST target=`.
    pub target: Option<String>,
    /// `GUEST lang=`.
    pub lang: Option<String>,
    /// Whether `DONE` was printed.
    pub done: bool,
    cases: BTreeMap<String, Vec<Line>>,
}

impl GuestLog {
    /// Parses a guest's standard output.
    pub fn parse(stdout: &str) -> GuestLog {
        let mut log = GuestLog::default();
        let mut current = None;
        for text in stdout.lines() {
            let line = Line::parse(text);
            match line.kind.as_str() {
                "GUEST" => {
                    log.target = line.get("target").map(String::from);
                    log.lang = line.get("lang").map(String::from);
                }
                "DONE" => log.done = true,
                "CASE" => {
                    let name = line.get("name").unwrap_or("").to_string();
                    log.cases.entry(name.clone()).or_default();
                    current = Some(name);
                }
                _ => {
                    if let Some(c) = &current {
                        log.cases.entry(c.clone()).or_default().push(line);
                    }
                }
            }
        }
        log
    }

    /// The lines of one case, as printed.
    pub fn case_text(&self, case: &str) -> Vec<&str> {
        self.cases
            .get(case)
            .map(|ls| ls.iter().map(|l| l.text.as_str()).collect())
            .unwrap_or_default()
    }
}

/// What the judge knows about a run.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    /// The target the guest was built for.
    pub arch: Arch,
    /// The architecture the runner (and the kernel) is on.
    pub host: Arch,
    /// Whether the guest ran under an emulator (qemu-user).
    pub emulated: bool,
    /// Whether that emulator is qemu-user with `conformance/qemu/*.patch`
    /// (`SO_ZEROCOPY`, `MSG_ZEROCOPY`, translated `ee_errno`, offender and
    /// truncated `IP_RECVERR`): it must behave like the target's kernel, so
    /// stock qemu-user's known deviations are failures there.
    pub patched: bool,
}

impl Ctx {
    fn t(&self) -> Target {
        self.arch.target()
    }

    /// Stock qemu-user, whose known deviations are findings, not failures.
    fn stock_emulator(&self) -> bool {
        self.emulated && !self.patched
    }
}

/// Judges every guest case of one run.
pub fn judge_guest(ctx: Ctx, lang: &str, log: &GuestLog) -> Vec<CaseResult> {
    let identity = match (&log.target, &log.lang) {
        (Some(t), Some(l)) if t == ctx.arch.name() && l == lang => None,
        (t, l) => Some(format!(
            "guest says target={t:?} lang={l:?}, expected {} {lang}",
            ctx.arch.name()
        )),
    };
    crate::cases::guest_cases()
        .map(|case| match &identity {
            Some(why) => CaseResult {
                case,
                outcome: Outcome::Fail(why.clone()),
                findings: Vec::new(),
            },
            None => judge_case(ctx, case, log.cases.get(case).map(Vec::as_slice)),
        })
        .collect()
}

/// Differences between a facts object (JSON from a guest or from
/// `abi_facts.c`) and the tables: `(key, theirs, ours)`. Keys the facts
/// lack are compared as `null`, except the unmerged
/// `SCM_ZC_NOTIFICATION`, which no header defines.
pub fn facts_diff(arch: Arch, json: &str) -> Result<Vec<(String, String, String)>, String> {
    let facts = parse_flat(json)?;
    let mut ours: Vec<(String, String)> = table_row(arch)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    ours.extend(
        extra_row(arch)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let mut diffs = Vec::new();
    for (k, v) in ours {
        let theirs = facts.get(&k).cloned();
        if k == "SCM_ZC_NOTIFICATION" && theirs.is_none() {
            continue;
        }
        let theirs = theirs.unwrap_or_else(|| "null".into());
        if theirs != v {
            diffs.push((k, theirs, v));
        }
    }
    Ok(diffs)
}

fn diff_text(diffs: &[(String, String, String)]) -> String {
    diffs
        .iter()
        .map(|(k, theirs, ours)| format!("{k}: {theirs} vs msgzc {ours}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Judges `abi_facts`: the output of `abi_facts.c` built with the target's
/// own toolchain, compared key by key with the tables.
pub fn judge_abi_facts(arch: Arch, stdout: &str) -> Outcome {
    let Some(line) = stdout.lines().find(|l| l.starts_with('{')) else {
        return Outcome::Fail("abi_facts printed no JSON".into());
    };
    match facts_diff(arch, line) {
        Ok(d) if d.is_empty() => Outcome::Pass,
        Ok(d) => Outcome::Fail(format!("headers differ: {}", diff_text(&d))),
        Err(e) => Outcome::Fail(format!("abi_facts output: {e}")),
    }
}

/// A raw buffer as printed, with the host's decoding.
struct Raw<'a> {
    line: &'a Line,
    bytes: Vec<u8>,
    controllen: usize,
    flags: u32,
    host: View,
}

impl Raw<'_> {
    fn dir(&self) -> &str {
        self.line.get("dir").unwrap_or("")
    }

    /// The complete messages as `(level, type, data)`.
    fn messages(&self, t: Target) -> Vec<(i32, i32, Vec<u8>)> {
        Walker::new(
            t,
            &self.bytes,
            self.controllen,
            MsgFlags::from_bits_retain(self.flags),
        )
        .filter_map(Result::ok)
        .map(|m| (m.level, m.ty, m.data.to_vec()))
        .collect()
    }
}

/// Re-decodes every `RAW` line and requires the guest's notation.
fn raws(t: Target, lines: &[Line]) -> Result<Vec<Raw<'_>>, String> {
    let mut out = Vec::new();
    for line in lines.iter().filter(|l| l.kind == "RAW") {
        let bytes = unhex(line.get("hex").ok_or("RAW without hex")?)?;
        let controllen = line.num("controllen").ok_or("RAW without controllen")? as usize;
        let flags = line.num("flags").ok_or("RAW without flags")? as u32;
        if bytes.len() != controllen {
            return Err(format!(
                "RAW {}: {} bytes of hex for controllen {controllen}",
                line.get("dir").unwrap_or("?"),
                bytes.len()
            ));
        }
        let host = view::decode(t, &bytes, controllen, flags);
        if let Some(e) = &host.error {
            return Err(format!("host: malformed buffer: {e}"));
        }
        let dir = line.get("dir").unwrap_or("?");
        for (key, ours) in [
            ("msgs", host.msgs_field()),
            ("ranges", host.ranges_field()),
            ("items", host.items_field()),
            ("trunc", u8::from(host.trunc).to_string()),
        ] {
            let theirs = line.get(key).unwrap_or("(missing)");
            if theirs != ours {
                return Err(format!(
                    "RAW {dir}: host decodes {key}={ours}, guest said {key}={theirs}"
                ));
            }
        }
        out.push(Raw {
            line,
            bytes,
            controllen,
            flags,
            host,
        });
    }
    Ok(out)
}

fn first<'a>(lines: &'a [Line], kind: &str, name: Option<&str>) -> Option<&'a Line> {
    lines
        .iter()
        .find(|l| l.kind == kind && name.map_or(true, |n| l.get("name") == Some(n)))
}

fn call_result(lines: &[Line], name: &str) -> Result<(i64, i64), String> {
    let l = first(lines, "CALL", Some(name)).ok_or(format!("guest printed no CALL {name}"))?;
    Ok((l.num("ret").unwrap_or(-1), l.num("errno").unwrap_or(-1)))
}

fn value(lines: &[Line], name: &str) -> Result<i64, String> {
    first(lines, "VALUE", Some(name))
        .and_then(|l| l.num("v"))
        .ok_or(format!("guest printed no VALUE {name}"))
}

fn read_i32(e: Endian, b: &[u8]) -> i64 {
    let a = [b[0], b[1], b[2], b[3]];
    i64::from(match e {
        Endian::Big => i32::from_be_bytes(a),
        Endian::Little => i32::from_le_bytes(a),
    })
}

/// The placeholder a guest must have built for `t`, built here.
fn host_placeholder(t: Target) -> Vec<u8> {
    let mut buf = ControlBuf::<256>::new();
    let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).expect("aligned");
    b.zc_placeholder(PROBE_CAPACITY).expect("fits");
    b.finish().as_bytes().to_vec()
}

fn check_placeholder(t: Target, raws: &[Raw<'_>]) -> Result<(), String> {
    let sent = raws
        .iter()
        .find(|r| r.dir() == "send")
        .ok_or("guest printed no placeholder")?;
    let want = host_placeholder(t);
    if sent.bytes != want {
        return Err(format!(
            "placeholder bytes differ from msgzc-cmsg's for {}: decodes as {}",
            t.family.name(),
            sent.host.msgs_field()
        ));
    }
    Ok(())
}

/// What the host makes of a buffer a `sendmsg` left behind.
fn host_outcome(t: Target, after: &Raw<'_>) -> Result<Option<Vec<msgzc_cmsg::ZcRange>>, String> {
    let mut buf = ControlBuf::<256>::new();
    let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).expect("aligned");
    b.zc_placeholder(PROBE_CAPACITY).expect("fits");
    let mut c = b.finish();
    let n = after.bytes.len().min(256);
    // SAFETY: the Control's buffer is 256 bytes long and `n <= 256`; this
    // writes what the guest's kernel left in its buffer, as the kernel
    // would have.
    unsafe { core::ptr::copy_nonoverlapping(after.bytes.as_ptr(), c.as_mut_ptr(), n) };
    match c.zc_outcome(after.controllen, MsgFlags::from_bits_retain(after.flags)) {
        Ok(ZcOutcome::Unwritten { .. }) | Ok(ZcOutcome::NotRequested) => Ok(None),
        Ok(ZcOutcome::Written(done)) => Ok(Some(done.iter().collect())),
        Err(e) => Err(format!("placeholder came back corrupt: {e}")),
    }
}

/// Counts the ids the ranges cover; fails on foreign ids, repeats and
/// uncopied completions (every loopback completion is a copy).
fn coverage<'a>(
    ranges: impl IntoIterator<Item = &'a msgzc_cmsg::ZcRange>,
) -> Result<BTreeMap<u32, usize>, String> {
    let mut covered = BTreeMap::new();
    for r in ranges {
        if !r.copied {
            return Err(format!(
                "completion {}..={} lacks the copied bit on loopback",
                r.lo, r.hi
            ));
        }
        if r.count() > u64::from(SENDS) {
            return Err(format!("completion {}..={} covers too much", r.lo, r.hi));
        }
        for id in r.ids() {
            *covered.entry(id).or_default() += 1;
        }
    }
    if let Some((id, n)) = covered.iter().find(|(id, n)| **id >= SENDS || **n > 1) {
        return Err(format!("id {id} completed {n} times (sent: 0..{SENDS})"));
    }
    Ok(covered)
}

fn judge_case(ctx: Ctx, case: &'static str, lines: Option<&[Line]>) -> CaseResult {
    let mut findings = Vec::new();
    let outcome = match lines {
        None => Outcome::Fail("the guest never started this case".into()),
        Some(lines) => match judge_lines(ctx, case, lines, &mut findings) {
            Ok(o) => o,
            Err(e) => Outcome::Fail(e),
        },
    };
    CaseResult {
        case,
        outcome,
        findings,
    }
}

fn judge_lines(
    ctx: Ctx,
    case: &str,
    lines: &[Line],
    findings: &mut Vec<String>,
) -> Result<Outcome, String> {
    let t = ctx.t();
    let end = first(lines, "END", None).ok_or("the guest stopped during this case")?;
    // Every buffer is re-decoded first: a disagreement fails the case
    // whatever the guest concluded.
    let raws = raws(t, lines)?;
    let detail = end.get("detail").unwrap_or("").replace('_', " ");
    match end.get("status") {
        Some("ok") => {}
        Some("skip") => return Ok(Outcome::Skip(detail)),
        Some("unsupported") => {
            let (ret, errno) = call_result(lines, "setsockopt_SO_ZEROCOPY")?;
            let enoprotoopt = i64::from(t.family.errno().enoprotoopt);
            let refused = needs_zerocopy(case) && ret < 0 && errno == enoprotoopt;
            return if refused && ctx.stock_emulator() {
                Ok(Outcome::EmulatorUnsupported(format!(
                    "SO_ZEROCOPY refused with ENOPROTOOPT ({errno})"
                )))
            } else if refused && ctx.patched {
                Err(format!(
                    "the patched emulator refused SO_ZEROCOPY with ENOPROTOOPT ({errno})"
                ))
            } else {
                Err(format!("unsupported without cause: {detail}"))
            };
        }
        other => return Err(format!("guest: {} {detail}", other.unwrap_or("?"))),
    }
    let recvs: Vec<&Raw<'_>> = raws.iter().filter(|r| r.dir() == "recv").collect();
    let errno = t.family.errno();
    match case {
        "native_facts" => native_facts(ctx.arch, lines, findings),
        "zc_tcp4" | "zc_tcp6" | "zc_udp4" | "zc_udp6" => {
            if let Some(r) = recvs.iter().find(|r| !r.host.items.is_empty()) {
                return Err(format!("unexpected error-queue items {:?}", r.host.items));
            }
            let covered = coverage(recvs.iter().flat_map(|r| &r.host.ranges))?;
            if covered.len() != SENDS as usize {
                return Err(format!(
                    "{} of {SENDS} sends completed on the error queue",
                    covered.len()
                ));
            }
            Ok(Outcome::Pass)
        }
        "probe" => {
            check_placeholder(t, &raws)?;
            let (ret, e) = call_result(lines, "sendmsg_placeholder")?;
            let host = if ret < 0 {
                if e != i64::from(errno.einval) {
                    return Err(format!("placeholder refused with errno {e}, not EINVAL"));
                }
                "rejected".to_string()
            } else {
                let after = raws
                    .iter()
                    .find(|r| r.dir() == "after")
                    .ok_or("no buffer after sendmsg")?;
                match host_outcome(t, after)? {
                    None => "unwritten".into(),
                    Some(done) if done.is_empty() => "written".into(),
                    Some(done) => {
                        return Err(format!(
                            "{} bogus completions written without any zerocopy send",
                            done.len()
                        ))
                    }
                }
            };
            let guest = first(lines, "PROBE", None).and_then(|l| l.get("outcome"));
            if guest != Some(host.as_str()) {
                return Err(format!("guest says {guest:?}, host sees {host}"));
            }
            if !recvs.is_empty() {
                return Err("error-queue items after a probe without MSG_ZEROCOPY".into());
            }
            let (ret, e) = call_result(lines, "recvmsg_errqueue")?;
            if ret >= 0 || e != i64::from(errno.eagain) {
                return Err(format!("error queue not empty (ret {ret}, errno {e})"));
            }
            Ok(Outcome::Pass)
        }
        "hybrid" => {
            check_placeholder(t, &raws)?;
            if first(lines, "MODE", None).is_none() {
                return Err("no MODE line".into());
            }
            let mut inline = Vec::new();
            for after in raws.iter().filter(|r| r.dir() == "after") {
                inline.extend(host_outcome(t, after)?.unwrap_or_default());
            }
            let unseen = first(lines, "INLINE", None)
                .and_then(|l| l.num("n"))
                .unwrap_or(0);
            let covered = coverage(
                recvs
                    .iter()
                    .flat_map(|r| &r.host.ranges)
                    .chain(inline.iter()),
            )?;
            // Tokens the Rust library released inline are counted but their
            // ids are not printed; stock kernels release none.
            if covered.len() as i64 + unseen != i64::from(SENDS) {
                return Err(format!(
                    "{} sends completed ({} inline unseen), want {SENDS}",
                    covered.len(),
                    unseen
                ));
            }
            Ok(Outcome::Pass)
        }
        "cmsg_roundtrip" => roundtrip(ctx, &raws, lines),
        "ctrunc" => {
            let [r] = recvs.as_slice() else {
                return Err(format!("{} error-queue reads, want 1", recvs.len()));
            };
            if !r.host.trunc || r.flags & MsgFlags::CTRUNC.bits() == 0 {
                return Err("the host walk saw no MSG_CTRUNC".into());
            }
            let msgs = r.messages(t);
            match msgs.as_slice() {
                [] => {}
                [(level, ty, data)] if (*level, *ty) == (SOL_IP, IP_RECVERR) && data.len() < 16 => {
                    if data.len() >= 4 {
                        check_ee_errno(ctx, &data[..4], "a truncated", findings)?;
                    }
                }
                _ => return Err(format!("unexpected messages {}", r.host.msgs_field())),
            }
            Ok(Outcome::Pass)
        }
        "icmp" => {
            let [r] = recvs.as_slice() else {
                return Err(format!("{} error-queue reads, want 1", recvs.len()));
            };
            let msgs = r.messages(t);
            let [(level, ty, data)] = msgs.as_slice() else {
                return Err(format!("messages {}, want one", r.host.msgs_field()));
            };
            if (*level, *ty, data.len()) != (SOL_IP, IP_RECVERR, 32) {
                return Err(format!(
                    "message {level}:{ty}:{}, want IP_RECVERR with 32 bytes",
                    data.len()
                ));
            }
            let m = msgzc_cmsg::Cmsg {
                level: *level,
                ty: *ty,
                data,
                offset: 0,
            };
            let Ok(ErrqueueItem::Extended(x)) = decode_errqueue(t, &m) else {
                return Err("not an extended error".into());
            };
            if (x.origin_raw, x.ty, x.code) != (2, 3, 3) {
                return Err(format!(
                    "origin/type/code {}/{}/{}, want ICMP port unreachable 2/3/3",
                    x.origin_raw, x.ty, x.code
                ));
            }
            check_ee_errno(ctx, &data[..4], "an", findings)?;
            // SO_EE_OFFENDER: a sockaddr_in, family in the target's order.
            let off = x.offender;
            let family = match t.endian {
                Endian::Big => u16::from_be_bytes([off[0], off[1]]),
                Endian::Little => u16::from_le_bytes([off[0], off[1]]),
            };
            if family == 2 && off[4..8] == [127, 0, 0, 1] {
                Ok(Outcome::Pass)
            } else if ctx.stock_emulator() && off.iter().all(|b| *b == 0) {
                // The offender goes to the guest address equal to the
                // host address of the buffer: guest_base bytes further on.
                findings.push(
                    "qemu-user leaves SO_EE_OFFENDER (the sockaddr after \
                     sock_extended_err) zeroed for this guest, writing it \
                     guest_base bytes past the buffer instead \
                     (conformance/qemu/0002 fixes it)"
                        .into(),
                );
                Ok(Outcome::Pass)
            } else {
                Err(format!(
                    "offender family {family} address {:?}, want AF_INET 127.0.0.1",
                    &off[4..8]
                ))
            }
        }
        "enobufs" => {
            let (ret, e) = call_result(lines, "send_MSG_ZEROCOPY")?;
            if ret < 0 && e == i64::from(errno.enobufs) {
                Ok(Outcome::Pass)
            } else {
                Err(format!("send returned {ret} errno {e}, want ENOBUFS"))
            }
        }
        _ => Err(format!("no judge for case {case}")),
    }
}

/// `ee_errno` of the ICMP error: the target's `ECONNREFUSED`. Under stock
/// qemu-user, which passes the host's value through untranslated, a
/// finding; the patched emulator must translate it.
fn check_ee_errno(
    ctx: Ctx,
    first4: &[u8],
    what: &str,
    findings: &mut Vec<String>,
) -> Result<(), String> {
    let want = extra(ctx.arch, "ECONNREFUSED");
    let got = read_i32(ctx.t().endian, first4);
    if got == want {
        return Ok(());
    }
    let host_value = extra(ctx.host, "ECONNREFUSED");
    if ctx.stock_emulator() && got == host_value {
        findings.push(format!(
            "qemu-user passes ee_errno of {what} IP_RECVERR message untranslated: \
             the host's ECONNREFUSED {host_value} where the target's is {want}"
        ));
        return Ok(());
    }
    if ctx.stock_emulator() && first4 == (host_value as i32).to_ne_bytes() {
        findings.push(format!(
            "qemu-user copies {what} IP_RECVERR message unconverted: ee_errno is the \
             host's ECONNREFUSED {host_value} in the host's byte order, where the \
             target's is {want}"
        ));
        return Ok(());
    }
    Err(format!("ee_errno {got}, want ECONNREFUSED {want}"))
}

fn native_facts(arch: Arch, lines: &[Line], findings: &mut Vec<String>) -> Result<Outcome, String> {
    let facts = |view: &str| {
        lines
            .iter()
            .find(|l| l.kind == "FACTS" && l.get("view") == Some(view))
            .and_then(|l| l.text.split_once(" json=").map(|(_, j)| j.to_string()))
    };
    let own = facts("msgzc").or_else(|| facts("headers"));
    let Some(own) = own else {
        return Err("no FACTS view=msgzc|headers line".into());
    };
    let d = facts_diff(arch, &own)?;
    if !d.is_empty() {
        return Err(format!("guest's numbers differ: {}", diff_text(&d)));
    }
    if let Some(libc) = facts("libc") {
        let theirs = parse_flat(&libc)?;
        for (k, ours, theirs) in facts_diff(arch, &libc)?
            .into_iter()
            .filter(|(k, _, _)| theirs.contains_key(k))
            .map(|(k, t, o)| (k, o, t))
        {
            findings.push(if theirs == "null" {
                format!("libc crate: no {k} (msgzc-abi: {ours})")
            } else {
                format!("libc crate: {k} = {theirs}, msgzc-abi and headers: {ours}")
            });
        }
    }
    Ok(Outcome::Pass)
}

fn roundtrip(ctx: Ctx, raws: &[Raw<'_>], lines: &[Line]) -> Result<Outcome, String> {
    let t = ctx.t();
    let sol_socket = t.family.socket().sol_socket;
    let scm_rights = extra(ctx.arch, "SCM_RIGHTS") as i32;
    let ip_ttl = extra(ctx.arch, "IP_TTL") as i32;
    let [send, recv_fd, recv_ttl] = raws else {
        return Err(format!("{} buffers, want send, recv, recv", raws.len()));
    };
    // The guest's SCM_RIGHTS buffer must be what msgzc-cmsg builds for
    // this target around the same descriptor.
    let msgs = send.messages(t);
    let [(level, ty, fd)] = msgs.as_slice() else {
        return Err(format!("sent {}, want one message", send.host.msgs_field()));
    };
    if (*level, *ty, fd.len()) != (sol_socket, scm_rights, 4) {
        return Err(format!("sent {level}:{ty}, want SOL_SOCKET:SCM_RIGHTS"));
    }
    let mut buf = ControlBuf::<64>::new();
    let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).expect("aligned");
    b.push(sol_socket, scm_rights, fd)
        .map_err(|e| e.to_string())?;
    if b.finish().as_bytes() != send.bytes.as_slice() {
        return Err("SCM_RIGHTS buffer differs from msgzc-cmsg's".into());
    }
    if recv_fd.host.msgs != [(sol_socket, scm_rights, 4)] {
        return Err(format!(
            "received {}, want SOL_SOCKET:SCM_RIGHTS:4",
            recv_fd.host.msgs_field()
        ));
    }
    if value(lines, "fd_works")? != 1 {
        return Err("the passed descriptor did not work".into());
    }
    let msgs = recv_ttl.messages(t);
    let [(level, ty, data)] = msgs.as_slice() else {
        return Err(format!("received {}", recv_ttl.host.msgs_field()));
    };
    if (*level, *ty, data.len()) != (SOL_IP, ip_ttl, 4) {
        return Err(format!("received {level}:{ty}, want SOL_IP:IP_TTL:4"));
    }
    let ttl = read_i32(t.endian, data);
    let said = value(lines, "ttl")?;
    if ttl != said || !(1..256).contains(&ttl) {
        return Err(format!("host reads TTL {ttl}, guest {said}"));
    }
    Ok(Outcome::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(arch: Arch, emulated: bool) -> Ctx {
        Ctx {
            arch,
            host: Arch::X86_64,
            emulated,
            patched: false,
        }
    }

    fn patched(arch: Arch) -> Ctx {
        Ctx {
            patched: true,
            ..ctx(arch, true)
        }
    }

    const MIPS_ICMP: &str = "GUEST target=mips lang=c pid=1
CASE name=icmp
CALL name=recvmsg_errqueue ret=1 errno=0
RAW dir=recv controllen=44 flags=8224 hex=0000002c000000000000000b0000006f02030300000000000000000000000000000000000000000000000000 msgs=0:11:32 ranges=none items=ext:111:2:3:3 trunc=0
END case=icmp status=ok detail=x
DONE
";

    /// Judges `case` of a guest's output `text`.
    fn judge_text(ctx: Ctx, case: &'static str, text: &str) -> CaseResult {
        let log = GuestLog::parse(text);
        judge_case(ctx, case, log.cases.get(case).map(|v| &v[..]))
    }

    #[test]
    fn qemu_quirks_are_findings_under_emulation_only() {
        let r = judge_text(ctx(Arch::Mips, true), "icmp", MIPS_ICMP);
        assert_eq!(r.outcome, Outcome::Pass, "{r:?}");
        assert_eq!(r.findings.len(), 2);
        let r = judge_text(ctx(Arch::Mips, false), "icmp", MIPS_ICMP);
        assert!(matches!(r.outcome, Outcome::Fail(_)), "{r:?}");
    }

    #[test]
    fn a_guest_that_decodes_differently_fails() {
        let lied = MIPS_ICMP.replace("ranges=none items=ext", "ranges=0-0-1 items=ext");
        let r = judge_text(ctx(Arch::Mips, true), "icmp", &lied);
        assert!(
            matches!(&r.outcome, Outcome::Fail(w) if w.contains("host decodes ranges=none")),
            "{r:?}"
        );
    }

    #[test]
    fn unsupported_counts_only_for_zerocopy_cases_under_emulation() {
        let text = "GUEST target=hppa lang=c pid=1
CASE name=zc_udp4
CALL name=setsockopt_SO_ZEROCOPY ret=-1 errno=220
END case=zc_udp4 status=unsupported detail=x
CASE name=probe
CALL name=setsockopt_SO_ZEROCOPY ret=-1 errno=220
END case=probe status=unsupported detail=x
";
        let r = judge_text(ctx(Arch::Hppa, true), "zc_udp4", text);
        assert!(matches!(r.outcome, Outcome::EmulatorUnsupported(_)));
        let r = judge_text(ctx(Arch::Hppa, false), "zc_udp4", text);
        assert!(matches!(r.outcome, Outcome::Fail(_)));
        let r = judge_text(ctx(Arch::Hppa, true), "probe", text);
        assert!(matches!(r.outcome, Outcome::Fail(_)));
        // A wrong errno (the host's 92 instead of parisc's 220) is no excuse.
        let wrong = text.replace("errno=220", "errno=92");
        let r = judge_text(ctx(Arch::Hppa, true), "zc_udp4", &wrong);
        assert!(matches!(r.outcome, Outcome::Fail(_)));
    }

    /// The same ICMP error as the patched emulator (or a mips kernel)
    /// reports it: mips's ECONNREFUSED (146), the offender filled in.
    const MIPS_ICMP_PATCHED: &str = "GUEST target=mips lang=c pid=1
CASE name=icmp
CALL name=recvmsg_errqueue ret=1 errno=0
RAW dir=recv controllen=44 flags=8224 hex=0000002c000000000000000b00000092020303000000000000000000000200007f0000010000000000000000 msgs=0:11:32 ranges=none items=ext:146:2:3:3 trunc=0
END case=icmp status=ok detail=x
DONE
";

    fn icmp(ctx: Ctx, text: &str) -> CaseResult {
        judge_text(ctx, "icmp", text)
    }

    #[test]
    fn the_patched_emulator_gets_no_allowance_for_qemu_quirks() {
        let r = icmp(patched(Arch::Mips), MIPS_ICMP);
        assert!(matches!(r.outcome, Outcome::Fail(_)), "{r:?}");
        assert!(r.findings.is_empty(), "{r:?}");
        for c in [patched(Arch::Mips), ctx(Arch::Mips, true)] {
            let r = icmp(c, MIPS_ICMP_PATCHED);
            assert_eq!(r.outcome, Outcome::Pass, "{r:?}");
            assert!(r.findings.is_empty(), "{r:?}");
        }
    }

    #[test]
    fn a_truncated_error_must_be_converted_under_the_patched_emulator() {
        // mips, a header and 4 bytes of sock_extended_err: ee_errno.
        let text = |errno_hex: &str| {
            format!(
                "GUEST target=mips lang=c pid=1
CASE name=ctrunc
CALL name=recvmsg_errqueue ret=1 errno=0
RAW dir=recv controllen=16 flags=8232 hex=00000010000000000000000b{errno_hex} msgs=0:11:4 ranges=none items=none trunc=1
END case=ctrunc status=ok detail=x
"
            )
        };
        let judge = |c: Ctx, t: &str| judge_text(c, "ctrunc", t);
        // Stock qemu-user: the host's 111 in the host's byte order.
        let raw = text("6f000000");
        let r = judge(ctx(Arch::Mips, true), &raw);
        assert_eq!(r.outcome, Outcome::Pass, "{r:?}");
        assert_eq!(r.findings.len(), 1, "{r:?}");
        assert!(matches!(
            judge(patched(Arch::Mips), &raw).outcome,
            Outcome::Fail(_)
        ));
        // Translated and swapped: mips's 146, big-endian.
        let r = judge(patched(Arch::Mips), &text("00000092"));
        assert_eq!(r.outcome, Outcome::Pass, "{r:?}");
        assert!(r.findings.is_empty(), "{r:?}");
    }

    #[test]
    fn the_patched_emulator_must_support_so_zerocopy() {
        let text = "GUEST target=hppa lang=c pid=1
CASE name=enobufs
CALL name=setsockopt_SO_ZEROCOPY ret=-1 errno=220
END case=enobufs status=unsupported detail=x
";
        let r = judge_text(ctx(Arch::Hppa, true), "enobufs", text);
        assert!(
            matches!(r.outcome, Outcome::EmulatorUnsupported(_)),
            "{r:?}"
        );
        let r = judge_text(patched(Arch::Hppa), "enobufs", text);
        assert!(
            matches!(&r.outcome, Outcome::Fail(w) if w.contains("patched emulator refused")),
            "{r:?}"
        );
    }

    #[test]
    fn placeholder_must_match_the_library_byte_for_byte() {
        let good = host_placeholder(Arch::Sparc64.target());
        assert_eq!(&good[..8], &[0, 0, 0, 0, 0, 0, 0, 0xd4]);
        assert_eq!(&good[8..16], &[0, 0, 0xff, 0xff, 0, 0, 0, 0x57]);
    }
}
