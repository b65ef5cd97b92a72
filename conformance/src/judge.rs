//! The host side of every case: parses a guest's output and decides each
//! case from the raw buffers it printed, re-decoded here with the target's
//! layout. A guest's "ok" counts only when the host's own decoding agrees
//! with the guest's and the case's invariant holds on the host's view.

use crate::table::parse_flat;
use crate::view::{self, View};
use msgzc_abi::{Arch, Endian, Target, SOL_IP};
use msgzc_cmsg::{ControlBuf, ControlBuilder, MsgFlags, Walker};
use msgzc_conformance_protocol::unhex;
use msgzc_conformance_protocol::{
    extra, extra_row, table_row, Case, Status, BAD_PLACEHOLDERS, PAYLOAD, PROBE_CAPACITY, SENDS,
};
pub use msgzc_conformance_protocol::{GuestLog, Line};
use std::collections::BTreeMap;

mod batch;
mod copyback;
mod errqueue;
mod first_enable;
mod inline;
#[cfg(test)]
mod kernel_buffers;
mod probe;

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
    /// The kernel does not implement `SCM_ZC_NOTIFICATION` and the guest
    /// saw exactly what such a kernel must do (the placeholder refused or
    /// left as written); never a pass, and a failure on a patched kernel.
    KernelUnsupported(String),
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
            Outcome::KernelUnsupported(_) => "kern-unsup",
            Outcome::Skip(_) => "skip",
        }
    }

    /// The JSON name.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "fail",
            Outcome::EmulatorUnsupported(_) => "emulator-unsupported",
            Outcome::KernelUnsupported(_) => "kernel-unsupported",
            Outcome::Skip(_) => "skip",
        }
    }

    /// Why, or an empty string for a pass.
    pub fn detail(&self) -> &str {
        match self {
            Outcome::Pass => "",
            Outcome::Fail(w)
            | Outcome::EmulatorUnsupported(w)
            | Outcome::KernelUnsupported(w)
            | Outcome::Skip(w) => w,
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
    /// Whether the kernel implements `SCM_ZC_NOTIFICATION`
    /// (`conformance/kernel/0001-*.patch`). The proposal's cases must
    /// then show it working; on a stock kernel they end as
    /// [`Outcome::KernelUnsupported`].
    pub zc_kernel: bool,
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
    Case::guest_cases()
        .map(|case| match &identity {
            Some(why) => CaseResult {
                case: case.name(),
                outcome: Outcome::Fail(why.clone()),
                findings: Vec::new(),
            },
            None => judge_case(ctx, case, log.lines(case)),
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
    copyback::outcome_as(
        t,
        &|b| {
            b.zc_placeholder(PROBE_CAPACITY).expect("fits");
        },
        after,
    )
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

fn judge_case(ctx: Ctx, case: Case, lines: Option<&[Line]>) -> CaseResult {
    let mut findings = Vec::new();
    let outcome = match lines {
        None => Outcome::Fail("the guest never started this case".into()),
        Some(lines) => match judge_lines(ctx, case, lines, &mut findings) {
            Ok(Outcome::KernelUnsupported(why)) if ctx.zc_kernel || !case.proposal() => {
                Outcome::Fail(format!("kernel-unsupported is no outcome here: {why}"))
            }
            Ok(o) => o,
            Err(e) => Outcome::Fail(e),
        },
    };
    CaseResult {
        case: case.name(),
        outcome,
        findings,
    }
}

/// Judges one case from its lines: every buffer re-decoded, then the
/// guest's verdict, then the case's own checks.
fn judge_lines(
    ctx: Ctx,
    case: Case,
    lines: &[Line],
    findings: &mut Vec<String>,
) -> Result<Outcome, String> {
    let end = first(lines, "END", None).ok_or("the guest stopped during this case")?;
    // Every buffer is re-decoded first: a disagreement fails the case
    // whatever the guest concluded.
    let raws = raws(ctx.t(), lines)?;
    if let Some(decided) = guest_verdict(ctx, case, end, lines)? {
        return Ok(decided);
    }
    let recvs: Vec<&Raw<'_>> = raws.iter().filter(|r| r.dir() == "recv").collect();
    let j = Judged {
        ctx,
        raws: &raws,
        recvs: &recvs,
        lines,
    };
    dispatch(case, &j, findings)
}

/// The guest's `END` status: `None` when it says ok (the host's checks
/// follow), else the outcome it stands for.
fn guest_verdict(
    ctx: Ctx,
    case: Case,
    end: &Line,
    lines: &[Line],
) -> Result<Option<Outcome>, String> {
    let t = ctx.t();
    let detail = end.get("detail").unwrap_or("").replace('_', " ");
    match end.status() {
        Some(Status::Ok) => Ok(None),
        Some(Status::Skip) => Ok(Some(Outcome::Skip(detail))),
        Some(Status::Unsupported) => {
            let (ret, errno) = call_result(lines, "setsockopt_SO_ZEROCOPY")?;
            let enoprotoopt = i64::from(t.family.errno().enoprotoopt);
            let refused = case.needs_zerocopy() && ret < 0 && errno == enoprotoopt;
            if refused && ctx.stock_emulator() {
                Ok(Some(Outcome::EmulatorUnsupported(format!(
                    "SO_ZEROCOPY refused with ENOPROTOOPT ({errno})"
                ))))
            } else if refused && ctx.patched {
                Err(format!(
                    "the patched emulator refused SO_ZEROCOPY with ENOPROTOOPT ({errno})"
                ))
            } else {
                Err(format!("unsupported without cause: {detail}"))
            }
        }
        Some(Status::Fail) | None => Err(format!(
            "guest: {} {detail}",
            end.get("status").unwrap_or("?")
        )),
    }
}

/// What every case's judge reads: the run, the re-decoded buffers (and
/// those read from the error queue), the lines.
#[derive(Clone, Copy)]
struct Judged<'a> {
    ctx: Ctx,
    raws: &'a [Raw<'a>],
    recvs: &'a [&'a Raw<'a>],
    lines: &'a [Line],
}

/// One case's checks, by an exhaustive match: a new [`Case`] must be
/// given a judge here.
fn dispatch(case: Case, j: &Judged<'_>, findings: &mut Vec<String>) -> Result<Outcome, String> {
    let (ctx, raws, recvs, lines) = (j.ctx, j.raws, j.recvs, j.lines);
    match case {
        Case::AbiFacts => Err("abi_facts is judged from its own program's output".into()),
        Case::NativeFacts => native_facts(ctx.arch, lines, findings),
        Case::FirstEnable => first_enable::first_enable(j),
        Case::ZcTcp4 | Case::ZcTcp6 | Case::ZcUdp4 | Case::ZcUdp6 => errqueue::zc_sends(recvs),
        Case::Probe => probe::probe(j),
        Case::Hybrid => probe::hybrid(j),
        Case::InlineTcp4 | Case::InlineTcp6 | Case::InlineUdp4 | Case::InlineUdp6 => {
            inline::inline(j)
        }
        Case::BadPlaceholder => bad_placeholder(j),
        Case::FailedSend => copyback::failed_send(j),
        Case::Restart => copyback::restart(j),
        Case::MixedCmsgs => copyback::mixed_cmsgs(j),
        Case::SendmmsgEor => copyback::sendmmsg_eor(j),
        Case::ReadonlyControl => copyback::readonly_control(j),
        Case::SendmmsgZc => batch::sendmmsg_zc(j),
        Case::GsoZc => batch::gso_zc(j),
        Case::CmsgRoundtrip => roundtrip(ctx, raws, lines),
        Case::Ctrunc => errqueue::ctrunc(ctx, recvs, findings),
        Case::Icmp => errqueue::icmp(ctx, recvs, findings),
        Case::Enobufs => errqueue::enobufs(ctx, lines),
    }
}

/// The host's reading of one placeholder send: its call's result and the
/// buffer it left.
#[derive(Debug)]
enum Seen {
    /// Failed with `EINVAL` and left unwritten: the kernel refused it.
    Rejected,
    /// Left unwritten by a send that succeeded.
    Unwritten,
    /// Written, with these completions (whether or not the send failed).
    Written(Vec<msgzc_cmsg::ZcRange>),
}

impl Seen {
    fn what(&self) -> &'static str {
        match self {
            Seen::Rejected => "refused with EINVAL",
            Seen::Unwritten => "left unwritten",
            Seen::Written(_) => "written",
        }
    }
}

fn seen(t: Target, ret: i64, e: i64, after: &Raw<'_>) -> Result<Seen, String> {
    match host_outcome(t, after)? {
        Some(done) => Ok(Seen::Written(done)),
        None if ret < 0 && e == i64::from(t.family.errno().einval) => Ok(Seen::Rejected),
        None if ret < 0 => Err(format!(
            "placeholder send failed with errno {e}, not EINVAL"
        )),
        None => Ok(Seen::Unwritten),
    }
}

/// The guest's `PROBE` line must say what the host sees.
fn check_probe_line(lines: &[Line], seen: &Seen) -> Result<(), String> {
    let host = match seen {
        Seen::Rejected => "rejected".to_string(),
        Seen::Unwritten => "unwritten".to_string(),
        Seen::Written(done) => format!("written n={}", done.len()),
    };
    let guest = first(lines, "PROBE", None).map(|l| {
        let o = l.get("outcome").unwrap_or("?");
        match l.get("n") {
            Some(n) => format!("{o} n={n}"),
            None => o.to_string(),
        }
    });
    if guest.as_deref() != Some(host.as_str()) {
        return Err(format!("guest says {guest:?}, host sees {host}"));
    }
    Ok(())
}

/// The malformed placeholder `bad_placeholder` must have sent, built here
/// with the library's generic `push` (its placeholder builder refuses
/// these shapes).
fn host_bad_placeholder(t: Target, capacity: u32, elems: usize) -> Vec<u8> {
    let mut data = match t.endian {
        Endian::Big => capacity.to_be_bytes(),
        Endian::Little => capacity.to_le_bytes(),
    }
    .to_vec();
    data.resize(4 + elems * 12, msgzc_cmsg::ZC_POISON);
    let mut buf = ControlBuf::<256>::new();
    let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).expect("aligned");
    let ty = msgzc_abi::proposal::v8::scm_zc_notification(t.family);
    b.push(t.family.socket().sol_socket, ty, &data)
        .expect("fits");
    b.finish().as_bytes().to_vec()
}

/// `bad_placeholder`: each malformed placeholder (and a good one on a
/// socket without `SO_ZEROCOPY`) refused with the target's `EINVAL`, and
/// the one completion still on the error queue afterwards.
fn bad_placeholder(j: &Judged<'_>) -> Result<Outcome, String> {
    let Judged {
        ctx,
        raws,
        recvs,
        lines,
    } = *j;
    let t = ctx.t();
    let einval = i64::from(t.family.errno().einval);
    let (ret, e) = call_result(lines, "send_MSG_ZEROCOPY")?;
    if ret != i64::try_from(PAYLOAD).expect("small") {
        return Err(format!("the zerocopy send returned {ret} errno {e}"));
    }
    let sends: Vec<&Raw<'_>> = raws.iter().filter(|r| r.dir() == "send").collect();
    let mut want: Vec<(String, Vec<u8>)> = BAD_PLACEHOLDERS
        .iter()
        .map(|(name, cap, elems)| {
            (
                format!("sendmsg_{name}"),
                host_bad_placeholder(t, *cap, *elems),
            )
        })
        .collect();
    want.push(("sendmsg_no_so_zerocopy".into(), host_placeholder(t)));
    if sends.len() != want.len() {
        return Err(format!("{} buffers sent, want {}", sends.len(), want.len()));
    }
    for (sent, (name, bytes)) in sends.iter().zip(&want) {
        if sent.bytes != *bytes {
            return Err(format!(
                "{name}: buffer differs from msgzc-cmsg's (decodes as {})",
                sent.host.msgs_field()
            ));
        }
        let (ret, e) = call_result(lines, name)?;
        if ret >= 0 || e != einval {
            return Err(format!(
                "{name} returned {ret} errno {e}, want EINVAL ({einval})"
            ));
        }
    }
    if let Some(r) = recvs.iter().find(|r| !r.host.items.is_empty()) {
        return Err(format!("unexpected error-queue items {:?}", r.host.items));
    }
    let covered = coverage(recvs.iter().flat_map(|r| &r.host.ranges))?;
    if covered.keys().copied().collect::<Vec<_>>() != [0] {
        return Err(format!(
            "error queue held ids {:?} afterwards, want the one completion (0)",
            covered.keys().collect::<Vec<_>>()
        ));
    }
    if ctx.zc_kernel {
        Ok(Outcome::Pass)
    } else {
        Ok(Outcome::KernelUnsupported(
            "every placeholder refused with EINVAL, as a kernel without \
             SCM_ZC_NOTIFICATION refuses any"
                .into(),
        ))
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

    pub(super) fn ctx(arch: Arch, emulated: bool) -> Ctx {
        Ctx {
            arch,
            host: Arch::X86_64,
            emulated,
            patched: false,
            zc_kernel: false,
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
    fn judge_text(ctx: Ctx, case: &str, text: &str) -> CaseResult {
        let log = GuestLog::parse(text);
        let case: Case = case.parse().expect("a case");
        judge_case(ctx, case, log.lines(case))
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
CASE name=icmp
CALL name=setsockopt_SO_ZEROCOPY ret=-1 errno=220
END case=icmp status=unsupported detail=x
";
        let r = judge_text(ctx(Arch::Hppa, true), "zc_udp4", text);
        assert!(matches!(r.outcome, Outcome::EmulatorUnsupported(_)));
        let r = judge_text(ctx(Arch::Hppa, false), "zc_udp4", text);
        assert!(matches!(r.outcome, Outcome::Fail(_)));
        // The probe needs SO_ZEROCOPY (the proposal refuses a placeholder
        // without it); icmp does not.
        let r = judge_text(ctx(Arch::Hppa, true), "probe", text);
        assert!(matches!(r.outcome, Outcome::EmulatorUnsupported(_)));
        let r = judge_text(ctx(Arch::Hppa, true), "icmp", text);
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

    // ---- SCM_ZC_NOTIFICATION cases: transcripts built with msgzc-cmsg ----

    pub(super) fn kernel(arch: Arch) -> Ctx {
        Ctx {
            zc_kernel: true,
            ..ctx(arch, false)
        }
    }

    pub(super) fn word(t: Target, v: u32) -> [u8; 4] {
        match t.endian {
            Endian::Big => v.to_be_bytes(),
            Endian::Little => v.to_le_bytes(),
        }
    }

    /// A `RAW` line as a guest for `t` prints it (its own decoding being
    /// the library's).
    pub(super) fn raw_line(t: Target, dir: &str, bytes: &[u8], flags: u32) -> String {
        let v = view::decode(t, bytes, bytes.len(), flags);
        format!(
            "RAW dir={dir} controllen={} flags={flags} hex={} {}",
            bytes.len(),
            msgzc_conformance_protocol::hex(bytes),
            v.fields()
        )
    }

    /// One message built with the library.
    pub(super) fn cmsg(t: Target, level: i32, ty: i32, data: &[u8]) -> Vec<u8> {
        let mut buf = ControlBuf::<512>::new();
        let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).unwrap();
        b.push(level, ty, data).unwrap();
        b.finish().as_bytes().to_vec()
    }

    /// The placeholder as a kernel with the proposal leaves it: `ranges`
    /// written (copied, reserved bytes zero), the other elements poisoned.
    pub(super) fn answered(t: Target, ranges: &[(u32, u32)]) -> Vec<u8> {
        let mut data = word(t, ranges.len() as u32).to_vec();
        for &(lo, hi) in ranges {
            data.extend(word(t, lo));
            data.extend(word(t, hi));
            data.extend([0, 0, 0, 0]);
        }
        data.resize(
            msgzc_abi::proposal::v8::zc_info_size(PROBE_CAPACITY),
            msgzc_cmsg::ZC_POISON,
        );
        let ty = msgzc_abi::proposal::v8::scm_zc_notification(t.family);
        let answer = cmsg(t, t.family.socket().sol_socket, ty, &data);
        assert_eq!(answer.len(), host_placeholder(t).len());
        answer
    }

    /// An error-queue read holding the zerocopy completion `lo..=hi`
    /// (copied), as `IP_RECVERR` with a zeroed offender.
    pub(super) fn completion(t: Target, lo: u32, hi: u32) -> String {
        let mut ee = word(t, 0).to_vec();
        ee.extend([5, 0, 1, 0]); // SO_EE_ORIGIN_ZEROCOPY, copied
        ee.extend(word(t, lo));
        ee.extend(word(t, hi));
        ee.resize(32, 0);
        let flags = MsgFlags::ERRQUEUE.bits();
        raw_line(
            t,
            "recv",
            &cmsg(t, SOL_IP, msgzc_abi::IP_RECVERR, &ee),
            flags,
        )
    }

    /// How one placeholder send of an `inline_*` transcript went.
    #[derive(Clone)]
    enum Sent {
        /// Sent; the placeholder came back with these completions.
        Written(Vec<(u32, u32)>),
        /// Sent; the placeholder came back as built.
        Unwritten,
        /// Refused with this errno; the placeholder came back as built.
        Refused(i64),
    }

    /// An `inline_*` transcript: the placeholder sends, then (after a
    /// refusal) `plain` sends without one, then the error-queue reads.
    fn inline_text(
        arch: Arch,
        case: &str,
        placed: &[Sent],
        plain: usize,
        queued: &[(u32, u32)],
    ) -> String {
        let t = arch.target();
        let ph = host_placeholder(t);
        let mut out = vec![
            format!("GUEST target={} lang=rust pid=1", arch.name()),
            format!("CASE name={case}"),
            "CALL name=setsockopt_SO_ZEROCOPY ret=0 errno=0".into(),
            raw_line(t, "send", &ph, 0),
        ];
        let mut n_inline = 0;
        for (i, s) in placed.iter().enumerate() {
            let (ret, e, after, probe) = match s {
                Sent::Written(r) => {
                    n_inline += r.iter().map(|(lo, hi)| hi - lo + 1).sum::<u32>();
                    (1000, 0, answered(t, r), format!("written n={}", r.len()))
                }
                Sent::Unwritten => (1000, 0, ph.clone(), "unwritten".into()),
                Sent::Refused(e) => (-1, *e, ph.clone(), "rejected".into()),
            };
            out.push(format!("CALL name=sendmsg_placeholder ret={ret} errno={e}"));
            out.push(raw_line(t, "after", &after, 0));
            if i == 0 {
                out.push(format!("PROBE outcome={probe}"));
            }
        }
        for _ in 0..plain {
            out.push("CALL name=send_MSG_ZEROCOPY ret=1000 errno=0".into());
        }
        out.push(format!("INLINE n={n_inline}"));
        out.extend(queued.iter().map(|&(lo, hi)| completion(t, lo, hi)));
        out.push(format!("END case={case} status=ok detail=x"));
        out.join("\n") + "\n"
    }

    /// A kernel with the proposal: send i returns send i-1's completion.
    fn inline_patched() -> Vec<Sent> {
        (0..SENDS)
            .map(|i| Sent::Written(if i == 0 { vec![] } else { vec![(i - 1, i - 1)] }))
            .collect()
    }

    pub(super) fn outcome_of(c: Ctx, case: &'static str, text: &str) -> Outcome {
        judge_text(c, case, text).outcome
    }

    pub(super) fn fails_with(o: &Outcome, what: &str) -> bool {
        matches!(o, Outcome::Fail(w) if w.contains(what))
    }

    #[test]
    fn inline_cases_pass_on_a_patched_kernel_only() {
        for arch in [Arch::X86_64, Arch::Mips, Arch::I686] {
            let text = inline_text(arch, "inline_udp4", &inline_patched(), 0, &[(15, 15)]);
            let o = outcome_of(kernel(arch), "inline_udp4", &text);
            assert_eq!(o, Outcome::Pass, "{arch:?}: {o:?}");
            // The same on a kernel said to be stock: impossible, so a failure.
            let o = outcome_of(ctx(arch, false), "inline_udp4", &text);
            assert!(fails_with(&o, "without SCM_ZC_NOTIFICATION"), "{o:?}");
        }
        // Completions coalesced into fewer ranges, some left for the queue.
        let mut placed = vec![Sent::Written(vec![]); SENDS as usize];
        placed[8] = Sent::Written(vec![(0, 3), (4, 6)]);
        let text = inline_text(Arch::X86_64, "inline_tcp6", &placed, 0, &[(7, 15)]);
        assert_eq!(
            outcome_of(kernel(Arch::X86_64), "inline_tcp6", &text),
            Outcome::Pass
        );
    }

    #[test]
    fn inline_cases_are_kernel_unsupported_on_a_stock_kernel() {
        // EINVAL on the first placeholder, the rest sent without one.
        let text = inline_text(
            Arch::X86_64,
            "inline_tcp4",
            &[Sent::Refused(22)],
            SENDS as usize,
            &[(0, 15)],
        );
        let o = outcome_of(ctx(Arch::X86_64, false), "inline_tcp4", &text);
        assert!(
            matches!(&o, Outcome::KernelUnsupported(w) if w.contains("EINVAL")),
            "{o:?}"
        );
        assert!(fails_with(
            &outcome_of(kernel(Arch::X86_64), "inline_tcp4", &text),
            "refused with EINVAL"
        ));
        // Every placeholder ignored (the parisc 6.13+ shape of the problem).
        let text = inline_text(
            Arch::Hppa,
            "inline_udp6",
            &vec![Sent::Unwritten; 16],
            0,
            &[(0, 7), (8, 15)],
        );
        let o = outcome_of(ctx(Arch::Hppa, true), "inline_udp6", &text);
        assert!(matches!(o, Outcome::KernelUnsupported(_)), "{o:?}");
        // Stock, but a completion lost: coverage is still required.
        let text = inline_text(
            Arch::X86_64,
            "inline_tcp4",
            &[Sent::Refused(22)],
            SENDS as usize,
            &[(0, 14)],
        );
        let o = outcome_of(ctx(Arch::X86_64, false), "inline_tcp4", &text);
        assert!(fails_with(&o, "15 of 16 sends completed"), "{o:?}");
    }

    #[test]
    fn inline_cases_fail_on_what_no_kernel_may_do() {
        let x = Arch::X86_64;
        // An id completed twice: inline and again on the error queue.
        let text = inline_text(x, "inline_udp4", &inline_patched(), 0, &[(14, 15)]);
        assert!(fails_with(
            &outcome_of(kernel(x), "inline_udp4", &text),
            "id 14 completed 2 times"
        ));
        // The last completion inline (it cannot be: no send followed it),
        // nothing on the error queue.
        let mut placed = inline_patched();
        placed[15] = Sent::Written(vec![(14, 15)]);
        let text = inline_text(x, "inline_udp4", &placed, 0, &[]);
        let o = outcome_of(kernel(x), "inline_udp4", &text);
        assert!(fails_with(&o, "was not on the error queue"), "{o:?}");
        // A patched kernel that returned nothing inline.
        let text = inline_text(
            x,
            "inline_udp4",
            &vec![Sent::Written(vec![]); 16],
            0,
            &[(0, 15)],
        );
        assert!(fails_with(
            &outcome_of(kernel(x), "inline_udp4", &text),
            "no completion came back inline"
        ));
        // Refused with something other than EINVAL (EOPNOTSUPP).
        let text = inline_text(
            x,
            "inline_tcp4",
            &[Sent::Refused(95)],
            SENDS as usize,
            &[(0, 15)],
        );
        for c in [ctx(x, false), kernel(x)] {
            assert!(fails_with(
                &outcome_of(c, "inline_tcp4", &text),
                "not EINVAL"
            ));
        }
        // A guest whose INLINE count disagrees with the buffers.
        let text = inline_text(x, "inline_udp4", &inline_patched(), 0, &[(15, 15)])
            .replace("INLINE n=15", "INLINE n=16");
        assert!(fails_with(
            &outcome_of(kernel(x), "inline_udp4", &text),
            "guest counted"
        ));
    }

    /// A `bad_placeholder` transcript: each refusal's errno (a negative
    /// value: the call succeeded), and the completions read afterwards.
    fn bad_text(arch: Arch, errnos: [i64; 4], queued: &[(u32, u32)]) -> String {
        let t = arch.target();
        let mut out = vec![
            format!("GUEST target={} lang=c pid=1", arch.name()),
            "CASE name=bad_placeholder".into(),
            "CALL name=setsockopt_SO_ZEROCOPY ret=0 errno=0".into(),
            "CALL name=send_MSG_ZEROCOPY ret=1000 errno=0".into(),
        ];
        let mut bufs: Vec<(String, Vec<u8>)> = BAD_PLACEHOLDERS
            .iter()
            .map(|(n, cap, elems)| {
                (
                    format!("sendmsg_{n}"),
                    host_bad_placeholder(t, *cap, *elems),
                )
            })
            .collect();
        bufs.push(("sendmsg_no_so_zerocopy".into(), host_placeholder(t)));
        for ((name, buf), e) in bufs.iter().zip(errnos) {
            out.push(raw_line(t, "send", buf, 0));
            let ret = if e < 0 { 100 } else { -1 };
            out.push(format!("CALL name={name} ret={ret} errno={}", e.max(0)));
        }
        out.extend(queued.iter().map(|&(lo, hi)| completion(t, lo, hi)));
        out.push("END case=bad_placeholder status=ok detail=x".into());
        out.join("\n") + "\n"
    }

    #[test]
    fn bad_placeholders_must_all_be_refused_with_einval() {
        for arch in [Arch::X86_64, Arch::Sparc64, Arch::Armv7] {
            let einval = i64::from(arch.target().family.errno().einval);
            let good = bad_text(arch, [einval; 4], &[(0, 0)]);
            assert_eq!(
                outcome_of(kernel(arch), "bad_placeholder", &good),
                Outcome::Pass
            );
            let o = outcome_of(ctx(arch, false), "bad_placeholder", &good);
            assert!(matches!(o, Outcome::KernelUnsupported(_)), "{o:?}");
        }
        let x = Arch::X86_64;
        // Capacity 0 accepted; capacity 17 refused with EOPNOTSUPP.
        for errnos in [[-1, 22, 22, 22], [22, 95, 22, 22]] {
            let text = bad_text(x, errnos, &[(0, 0)]);
            for c in [ctx(x, false), kernel(x)] {
                let o = outcome_of(c, "bad_placeholder", &text);
                assert!(fails_with(&o, "want EINVAL"), "{o:?}");
            }
        }
        // The queued completion consumed by a refused call.
        let text = bad_text(x, [22; 4], &[]);
        for c in [ctx(x, false), kernel(x)] {
            let o = outcome_of(c, "bad_placeholder", &text);
            assert!(fails_with(&o, "want the one completion"), "{o:?}");
        }
        // A buffer that is not the malformed placeholder claimed.
        let text = bad_text(x, [22; 4], &[(0, 0)]).replacen("hex=1400", "hex=1800", 1);
        assert!(matches!(
            outcome_of(kernel(x), "bad_placeholder", &text),
            Outcome::Fail(_)
        ));
    }

    fn probe_text(arch: Arch, sent: Sent) -> String {
        let t = arch.target();
        let ph = host_placeholder(t);
        let (ret, e, after, probe) = match sent {
            Sent::Written(r) => (100, 0, answered(t, &r), format!("written n={}", r.len())),
            Sent::Unwritten => (100, 0, ph.clone(), "unwritten".into()),
            Sent::Refused(e) => (-1, e, ph.clone(), "rejected".into()),
        };
        [
            format!("GUEST target={} lang=rust pid=1", arch.name()),
            "CASE name=probe".into(),
            "CALL name=setsockopt_SO_ZEROCOPY ret=0 errno=0".into(),
            raw_line(t, "send", &ph, 0),
            format!("CALL name=sendmsg_placeholder ret={ret} errno={e}"),
            raw_line(t, "after", &after, 0),
            format!("PROBE outcome={probe}"),
            "CALL name=recvmsg_errqueue ret=-1 errno=11".into(),
            "END case=probe status=ok detail=x".into(),
        ]
        .join("\n")
            + "\n"
    }

    #[test]
    fn the_probe_passes_only_where_the_kernel_writes_zero_completions() {
        let a = Arch::Aarch64;
        let written = probe_text(a, Sent::Written(vec![]));
        assert_eq!(outcome_of(kernel(a), "probe", &written), Outcome::Pass);
        assert!(fails_with(
            &outcome_of(ctx(a, false), "probe", &written),
            "wrote the placeholder"
        ));
        for stock in [Sent::Refused(22), Sent::Unwritten] {
            let text = probe_text(a, stock);
            let o = outcome_of(ctx(a, false), "probe", &text);
            assert!(matches!(o, Outcome::KernelUnsupported(_)), "{o:?}");
            assert!(fails_with(
                &outcome_of(kernel(a), "probe", &text),
                "the patched kernel"
            ));
        }
        let bogus = probe_text(a, Sent::Written(vec![(0, 0)]));
        assert!(fails_with(
            &outcome_of(kernel(a), "probe", &bogus),
            "bogus completions"
        ));
        let wrong = probe_text(a, Sent::Refused(95));
        assert!(fails_with(
            &outcome_of(ctx(a, false), "probe", &wrong),
            "not EINVAL"
        ));
    }

    fn hybrid_text(mode: &str, inline: u32, queued: &[(u32, u32)]) -> String {
        let t = Arch::X86_64.target();
        let mut out = vec![
            "GUEST target=x86_64 lang=rust pid=1".to_string(),
            "CASE name=hybrid".into(),
            "CALL name=setsockopt_SO_ZEROCOPY ret=0 errno=0".into(),
            raw_line(t, "send", &host_placeholder(t), 0),
            format!("MODE {mode}"),
            format!("INLINE n={inline}"),
        ];
        out.extend(queued.iter().map(|&(lo, hi)| completion(t, lo, hi)));
        out.push("END case=hybrid status=ok detail=x".into());
        out.join("\n") + "\n"
    }

    #[test]
    fn hybrid_requires_inline_delivery_exactly_where_the_kernel_has_it() {
        let x = Arch::X86_64;
        let inline = hybrid_text("Inline", 15, &[(15, 15)]);
        assert_eq!(outcome_of(kernel(x), "hybrid", &inline), Outcome::Pass);
        assert!(fails_with(
            &outcome_of(ctx(x, false), "hybrid", &inline),
            "want the fallback"
        ));
        let fallback = hybrid_text("ErrorQueue(Rejected)", 0, &[(0, 15)]);
        assert_eq!(
            outcome_of(ctx(x, false), "hybrid", &fallback),
            Outcome::Pass
        );
        assert!(fails_with(
            &outcome_of(kernel(x), "hybrid", &fallback),
            "want Inline"
        ));
        let none_inline = hybrid_text("Inline", 0, &[(0, 15)]);
        assert!(fails_with(
            &outcome_of(kernel(x), "hybrid", &none_inline),
            "at least one"
        ));
    }
}
