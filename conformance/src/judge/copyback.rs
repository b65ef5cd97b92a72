//! The host's judges of the copy-back cases (`guest/copyback.rs`): where a
//! kernel with `SCM_ZC_NOTIFICATION` writes its answer, and that it loses
//! no completion when the send fails, is restarted, or cannot write.
//!
//! Each judge re-builds with the library the buffers the guest must have
//! sent, reads the buffers it printed afterwards with the target's layout,
//! and requires every completion exactly once. On a kernel without the
//! proposal they end as [`Outcome::KernelUnsupported`] at best, never as a
//! pass.

use super::{call_result, coverage, read_i32, value, Ctx, Judged, Line, Outcome, Raw};
use msgzc_abi::{Endian, Target, SOL_IP};
use msgzc_cmsg::{ControlBuf, ControlBuilder, MsgFlags, ZcOutcome, ZcRange};
use msgzc_conformance_protocol::{
    BAD_CMSG_TYPE, MIXED_SENDS, MIXED_TTL, MMSG_ENTRIES, MMSG_ROUNDS, MSG_EOR, PAYLOAD,
    PROBE_CAPACITY, QUEUED_SENDS,
};

/// `IP_TTL` (the same number on every architecture, checked by
/// `abi_facts`).
const IP_TTL: i32 = 2;

/// A control buffer for `t` as `f` builds it with the library.
pub(super) fn built(t: Target, f: &dyn Fn(&mut ControlBuilder<'_>)) -> Vec<u8> {
    let mut buf = ControlBuf::<256>::new();
    let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).expect("aligned");
    f(&mut b);
    b.finish().as_bytes().to_vec()
}

pub(super) fn placeholder(b: &mut ControlBuilder<'_>) {
    b.zc_placeholder(PROBE_CAPACITY).expect("fits");
}

fn word(t: Target, v: i32) -> [u8; 4] {
    match t.endian {
        Endian::Big => v.to_be_bytes(),
        Endian::Little => v.to_le_bytes(),
    }
}

/// What the library makes of `after`, a buffer that `f` built and a
/// `sendmsg` left behind: the completions written (`None`: unwritten).
pub(super) fn outcome_as(
    t: Target,
    f: &dyn Fn(&mut ControlBuilder<'_>),
    after: &Raw<'_>,
) -> Result<Option<Vec<ZcRange>>, String> {
    let mut buf = ControlBuf::<256>::new();
    let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).expect("aligned");
    f(&mut b);
    let mut c = b.finish();
    let n = after.bytes.len().min(256);
    // SAFETY: the Control's buffer is 256 bytes long and `n <= 256`; this
    // writes what the guest's kernel left in its buffer, as the kernel
    // would have.
    unsafe { core::ptr::copy_nonoverlapping(after.bytes.as_ptr(), c.as_mut_ptr(), n) };
    match c.zc_outcome(after.controllen, MsgFlags::from_bits_retain(after.flags)) {
        Ok(ZcOutcome::Unwritten { .. }) | Ok(ZcOutcome::NotRequested) => Ok(None),
        Ok(ZcOutcome::Written(done)) => Ok(Some(done.iter().collect())),
        // An outcome a newer msgzc-cmsg reports: neither unwritten nor read.
        Ok(other) => Err(format!("unknown placeholder outcome {other:?}")),
        Err(e) => Err(format!("placeholder came back corrupt: {e}")),
    }
}

pub(super) fn dir<'r, 'a>(raws: &'r [Raw<'a>], d: &str) -> Vec<&'r Raw<'a>> {
    raws.iter().filter(|r| r.dir() == d).collect()
}

pub(super) fn calls(lines: &[Line], name: &str) -> Vec<(i64, i64)> {
    lines
        .iter()
        .filter(|l| l.kind == "CALL" && l.get("name") == Some(name))
        .map(|l| (l.num("ret").unwrap_or(-1), l.num("errno").unwrap_or(-1)))
        .collect()
}

pub(super) fn values(lines: &[Line], name: &str) -> Vec<i64> {
    lines
        .iter()
        .filter(|l| l.kind == "VALUE" && l.get("name") == Some(name))
        .filter_map(|l| l.num("v"))
        .collect()
}

/// The `n` zerocopy sends that queue completions before the call under
/// test, each of [`PAYLOAD`] bytes.
fn queued_sends(lines: &[Line], n: u32) -> Result<(), String> {
    let full = i64::try_from(PAYLOAD).expect("small");
    let sends = calls(lines, "send_MSG_ZEROCOPY");
    if sends.len() != n as usize || sends.iter().any(|(r, _)| *r != full) {
        return Err(format!(
            "zerocopy sends {sends:?}, want {n} of {full} bytes"
        ));
    }
    Ok(())
}

/// The one buffer sent, which must be what `f` builds for the target.
pub(super) fn one_sent<'r, 'a>(
    t: Target,
    raws: &'r [Raw<'a>],
    f: &dyn Fn(&mut ControlBuilder<'_>),
    what: &str,
) -> Result<&'r Raw<'a>, String> {
    let [sent] = dir(raws, "send")[..] else {
        return Err("want exactly one buffer sent".into());
    };
    if sent.bytes != built(t, f) {
        return Err(format!(
            "the buffer sent differs from msgzc-cmsg's {what} (decodes as {})",
            sent.host.msgs_field()
        ));
    }
    Ok(sent)
}

fn one_after<'r, 'a>(raws: &'r [Raw<'a>]) -> Result<&'r Raw<'a>, String> {
    match dir(raws, "after")[..] {
        [after] => Ok(after),
        _ => Err("want exactly one buffer after the call".into()),
    }
}

/// The completions read from the error queue; any other item fails.
pub(super) fn queued(recvs: &[&Raw<'_>]) -> Result<Vec<ZcRange>, String> {
    if let Some(r) = recvs.iter().find(|r| !r.host.items.is_empty()) {
        return Err(format!("unexpected error-queue items {:?}", r.host.items));
    }
    Ok(recvs.iter().flat_map(|r| r.host.ranges.clone()).collect())
}

/// Every id of `0..n` exactly once among `inline` and `queued`.
pub(super) fn exactly(n: u32, inline: &[ZcRange], queued: &[ZcRange]) -> Result<(), String> {
    let covered = coverage(inline.iter().chain(queued))?;
    let want: Vec<u32> = (0..n).collect();
    if covered.keys().copied().collect::<Vec<_>>() != want {
        return Err(format!(
            "ids {:?} completed ({} inline, {} on the error queue), want {want:?}",
            covered.keys().collect::<Vec<_>>(),
            inline.iter().map(|r| r.count()).sum::<u64>(),
            queued.iter().map(|r| r.count()).sum::<u64>()
        ));
    }
    Ok(())
}

/// A buffer the patched kernel answered: same length, no flags, written.
pub(super) fn answered_in_place(
    t: Target,
    f: &dyn Fn(&mut ControlBuilder<'_>),
    sent: &Raw<'_>,
    after: &Raw<'_>,
    what: &str,
) -> Result<Vec<ZcRange>, String> {
    if (after.controllen, after.flags) != (sent.controllen, 0) {
        return Err(format!(
            "{what}: msg_controllen {} (sent {}), msg_flags {:#x}: the answer must be \
             written in place, leaving both alone",
            after.controllen, sent.controllen, after.flags
        ));
    }
    outcome_as(t, f, after)?.ok_or_else(|| format!("{what}: the patched kernel left it unwritten"))
}

/// A buffer a kernel without the proposal left: as sent.
pub(super) fn untouched(sent: &Raw<'_>, after: &Raw<'_>, what: &str) -> Result<(), String> {
    if (&after.bytes, after.controllen, after.flags) != (&sent.bytes, sent.controllen, 0) {
        return Err(format!(
            "{what}: a kernel without SCM_ZC_NOTIFICATION changed the buffer \
             (msg_controllen {} of {})",
            after.controllen, sent.controllen
        ));
    }
    Ok(())
}

/// `failed_send`: the `sendmsg` carrying a placeholder and then an invalid
/// message must fail with the target's `EINVAL`. On a kernel with the
/// proposal the placeholder comes back written in place with all
/// [`QUEUED_SENDS`] completions and the error queue is then empty; on one
/// without, the buffer comes back as sent and the queue holds them all.
pub(super) fn failed_send(j: &Judged<'_>) -> Result<Outcome, String> {
    let Judged {
        ctx,
        raws,
        recvs,
        lines,
    } = *j;
    let t = ctx.t();
    let sol_socket = t.family.socket().sol_socket;
    let build = move |b: &mut ControlBuilder<'_>| {
        placeholder(b);
        b.push(sol_socket, BAD_CMSG_TYPE, &[0; 4]).expect("fits");
    };
    queued_sends(lines, QUEUED_SENDS)?;
    let sent = one_sent(t, raws, &build, "placeholder + unknown type")?;
    let (ret, e) = call_result(lines, "sendmsg_invalid_cmsg")?;
    let einval = i64::from(t.family.errno().einval);
    if ret >= 0 || e != einval {
        return Err(format!(
            "sendmsg_invalid_cmsg returned {ret} errno {e}, want EINVAL ({einval})"
        ));
    }
    let after = one_after(raws)?;
    let queued = queued(recvs)?;
    if ctx.zc_kernel {
        let inline = answered_in_place(t, &build, sent, after, "the failed send's buffer")?;
        exactly(QUEUED_SENDS, &inline, &queued)?;
        if !queued.is_empty() {
            return Err(
                "completions left on the error queue after the failed send took them".into(),
            );
        }
        return Ok(Outcome::Pass);
    }
    untouched(sent, after, "the failed send's buffer")?;
    exactly(QUEUED_SENDS, &[], &queued)?;
    Ok(Outcome::KernelUnsupported(format!(
        "placeholder refused, the {QUEUED_SENDS} completions stayed on the error queue"
    )))
}

/// `readonly_control`: the placeholder in a read-only page cannot be
/// answered. A kernel with the proposal must still return the send's
/// byte count (never `EFAULT`) and leave every completion on the error
/// queue; one without refuses the placeholder with `EINVAL`.
pub(super) fn readonly_control(j: &Judged<'_>) -> Result<Outcome, String> {
    let Judged {
        ctx,
        raws,
        recvs,
        lines,
    } = *j;
    let t = ctx.t();
    queued_sends(lines, QUEUED_SENDS)?;
    let sent = one_sent(t, raws, &placeholder, "placeholder")?;
    let (r, e) = call_result(lines, "mprotect_readonly")?;
    if r != 0 {
        return Err(format!("mprotect returned {r} errno {e}"));
    }
    let (ret, e) = call_result(lines, "sendmsg_readonly")?;
    let after = one_after(raws)?;
    untouched(sent, after, "the read-only buffer")?;
    let queued = queued(recvs)?;
    exactly(QUEUED_SENDS, &[], &queued)?;
    let einval = i64::from(t.family.errno().einval);
    match (ret, ctx.zc_kernel) {
        (100, true) => Ok(Outcome::Pass),
        (_, true) => Err(format!(
            "sendmsg returned {ret} errno {e}, want its 100 bytes: an answer that cannot \
             be written must not fail the send"
        )),
        (100, false) => Ok(Outcome::KernelUnsupported(
            "placeholder ignored; the completions stayed queued".into(),
        )),
        (r, false) if r < 0 && e == einval => Ok(Outcome::KernelUnsupported(
            "placeholder refused with EINVAL; the completions stayed queued".into(),
        )),
        (_, false) => Err(format!("sendmsg returned {ret} errno {e}")),
    }
}

/// `restart`: the blocking send, interrupted by a signal once and
/// restarted, must return [`PAYLOAD`] with its placeholder answered in
/// place, and the completions queued before it must turn up exactly once.
pub(super) fn restart(j: &Judged<'_>) -> Result<Outcome, String> {
    let Judged {
        ctx,
        raws,
        recvs,
        lines,
    } = *j;
    let t = ctx.t();
    queued_sends(lines, QUEUED_SENDS)?;
    if value(lines, "filled")? <= 0 {
        return Err("the send buffer was not filled".into());
    }
    let sent = one_sent(t, raws, &placeholder, "placeholder")?;
    let (ret, e) = call_result(lines, "sendmsg_restart")?;
    let signals = value(lines, "signals")?;
    let after = one_after(raws)?;
    let queued = queued(recvs)?;
    let full = i64::try_from(PAYLOAD).expect("small");
    if ctx.zc_kernel {
        if ret != full || signals < 1 {
            return Err(format!(
                "sendmsg returned {ret} errno {e} after {signals} signals; want {full} \
                 bytes after a restart"
            ));
        }
        let inline = answered_in_place(t, &placeholder, sent, after, "the restarted send")?;
        exactly(QUEUED_SENDS, &inline, &queued)?;
        return Ok(Outcome::Pass);
    }
    untouched(sent, after, "the blocking send's buffer")?;
    exactly(QUEUED_SENDS, &[], &queued)?;
    let einval = i64::from(t.family.errno().einval);
    if ret < 0 && e == einval {
        Ok(Outcome::KernelUnsupported(
            "placeholder refused with EINVAL before blocking; nothing lost".into(),
        ))
    } else if ret == full {
        Ok(Outcome::KernelUnsupported(
            "placeholder ignored; nothing lost".into(),
        ))
    } else {
        Err(format!("sendmsg returned {ret} errno {e}"))
    }
}

/// `mixed_cmsgs`: `IP_TTL` and a placeholder in one buffer, one `msghdr`
/// reused for [`MIXED_SENDS`] sends. With the proposal every send goes out,
/// each answer is written in place with `IP_TTL` left as it was, every
/// datagram arrives with [`MIXED_TTL`], and the completions add up.
pub(super) fn mixed_cmsgs(j: &Judged<'_>) -> Result<Outcome, String> {
    let Judged {
        ctx,
        raws,
        recvs,
        lines,
    } = *j;
    let t = ctx.t();
    let ttl = word(t, MIXED_TTL);
    let build = move |b: &mut ControlBuilder<'_>| {
        b.push(SOL_IP, IP_TTL, &ttl).expect("fits");
        placeholder(b);
    };
    let sent = one_sent(t, raws, &build, "IP_TTL + placeholder")?;
    let sends = calls(lines, "sendmsg_mixed");
    let afters = dir(raws, "after");
    if sends.is_empty() || sends.len() != afters.len() {
        return Err(format!(
            "{} sends with {} buffers after",
            sends.len(),
            afters.len()
        ));
    }
    // Received datagrams carry IP_TTL; error-queue reads completions.
    let (grams, errq): (Vec<&Raw<'_>>, Vec<&Raw<'_>>) = recvs
        .iter()
        .copied()
        .partition(|r| r.host.msgs.iter().any(|m| (m.0, m.1) == (SOL_IP, IP_TTL)));
    let queued = queued(&errq)?;
    let einval = i64::from(t.family.errno().einval);
    if !ctx.zc_kernel && sends[0].0 < 0 && sends[0].1 == einval {
        untouched(sent, afters[0], "the refused send's buffer")?;
        if sends.len() != 1 || !grams.is_empty() || !queued.is_empty() {
            return Err("sends after the placeholder was refused".into());
        }
        return Ok(Outcome::KernelUnsupported(
            "placeholder refused with EINVAL".into(),
        ));
    }
    let full = i64::try_from(PAYLOAD).expect("small");
    if sends.len() != MIXED_SENDS as usize || sends.iter().any(|s| s.0 != full) {
        return Err(format!(
            "sends {sends:?}, want {MIXED_SENDS} of {full} bytes"
        ));
    }
    let mut inline = Vec::new();
    for (i, after) in afters.iter().enumerate() {
        let msgs = after.messages(t);
        if msgs.len() != 2 || msgs[0] != (SOL_IP, IP_TTL, ttl.to_vec()) {
            return Err(format!(
                "after send {i} the buffer walks to {} (msg_controllen {}), want IP_TTL \
                 {MIXED_TTL} and the placeholder",
                after.host.msgs_field(),
                after.controllen
            ));
        }
        if ctx.zc_kernel {
            let what = format!("send {i}");
            inline.extend(answered_in_place(t, &build, sent, after, &what)?);
        } else {
            untouched(sent, after, "an ignored placeholder's buffer")?;
        }
    }
    check_ttls(t, &grams, lines)?;
    exactly(MIXED_SENDS, &inline, &queued)?;
    if ctx.zc_kernel {
        Ok(Outcome::Pass)
    } else {
        Ok(Outcome::KernelUnsupported(
            "placeholder ignored; IP_TTL kept".into(),
        ))
    }
}

/// Every datagram of `mixed_cmsgs` arrived with [`MIXED_TTL`], as the
/// guest said.
fn check_ttls(t: Target, grams: &[&Raw<'_>], lines: &[Line]) -> Result<(), String> {
    let said = values(lines, "ttl");
    let seen: Vec<i64> = grams
        .iter()
        .map(|g| match g.messages(t).as_slice() {
            [(SOL_IP, IP_TTL, d)] if d.len() == 4 => read_i32(t.endian, d),
            _ => -1,
        })
        .collect();
    let want = vec![i64::from(MIXED_TTL); MIXED_SENDS as usize];
    if seen != want || said != seen {
        return Err(format!(
            "datagrams arrived with TTLs {seen:?} (guest: {said:?}), want {want:?}"
        ));
    }
    Ok(())
}

/// `sendmmsg_eor`: every entry of every `sendmmsg` call keeps `MSG_EOR` in
/// its `msg_flags`; with the proposal every call sends all
/// [`MMSG_ENTRIES`], each entry's answer is written in place, and the
/// completions add up.
pub(super) fn sendmmsg_eor(j: &Judged<'_>) -> Result<Outcome, String> {
    let Judged {
        ctx,
        raws,
        recvs,
        lines,
    } = *j;
    let t = ctx.t();
    let ph = built(t, &placeholder);
    let sents = dir(raws, "send");
    if sents.len() != MMSG_ENTRIES || sents.iter().any(|s| s.bytes != ph) {
        return Err(format!(
            "{} buffers sent, want {MMSG_ENTRIES} msgzc-cmsg placeholders",
            sents.len()
        ));
    }
    let rounds = calls(lines, "sendmmsg");
    let afters = dir(raws, "after");
    let flags = values(lines, "msg_flags");
    let lens = values(lines, "msg_len");
    let n = rounds.len() * MMSG_ENTRIES;
    if rounds.is_empty() || afters.len() != n || flags.len() != n || lens.len() != n {
        return Err(format!(
            "{} calls with {} buffers, {} msg_flags and {} msg_len after them",
            rounds.len(),
            afters.len(),
            flags.len(),
            lens.len()
        ));
    }
    for (i, (f, after)) in flags.iter().zip(&afters).enumerate() {
        if *f != i64::from(MSG_EOR) || after.flags != MSG_EOR {
            return Err(format!(
                "call {} entry {}: msg_flags {f:#x} (buffer line {:#x}), want MSG_EOR \
                 kept for the next call",
                i / MMSG_ENTRIES,
                i % MMSG_ENTRIES,
                after.flags
            ));
        }
    }
    let queued = queued(recvs)?;
    let einval = i64::from(t.family.errno().einval);
    if !ctx.zc_kernel && rounds[0].0 < 0 && rounds[0].1 == einval {
        for after in &afters {
            // As sent, msg_flags aside (MSG_EOR, checked above).
            if (&after.bytes, after.controllen) != (&ph, ph.len()) {
                return Err("a kernel without SCM_ZC_NOTIFICATION changed a buffer".into());
            }
        }
        if rounds.len() != 1 || !queued.is_empty() {
            return Err("messages sent after the placeholder was refused".into());
        }
        return Ok(Outcome::KernelUnsupported(
            "placeholder refused with EINVAL; msg_flags kept".into(),
        ));
    }
    mmsg_sent(ctx, &rounds, &afters, &lens, &queued)
}

/// The sending half of [`sendmmsg_eor`].
fn mmsg_sent(
    ctx: Ctx,
    rounds: &[(i64, i64)],
    afters: &[&Raw<'_>],
    lens: &[i64],
    queued: &[ZcRange],
) -> Result<Outcome, String> {
    let t = ctx.t();
    let full = i64::try_from(PAYLOAD).expect("small");
    if rounds.len() != MMSG_ROUNDS || rounds.iter().any(|r| r.0 != MMSG_ENTRIES as i64) {
        return Err(format!(
            "sendmmsg returned {rounds:?}, want {MMSG_ROUNDS} calls of {MMSG_ENTRIES}"
        ));
    }
    if lens.iter().any(|l| *l != full) {
        return Err(format!("msg_len {lens:?}, want {full} each"));
    }
    let len = built(t, &placeholder).len();
    let mut inline = Vec::new();
    for (i, after) in afters.iter().enumerate() {
        let done = outcome_as(t, &placeholder, after)?;
        match (done, ctx.zc_kernel) {
            (Some(d), true) if after.controllen == len => inline.extend(d),
            (None, false) => {}
            (d, _) => {
                return Err(format!(
                    "entry {i}: placeholder {} on a kernel {} SCM_ZC_NOTIFICATION \
                     (msg_controllen {})",
                    if d.is_some() { "written" } else { "unwritten" },
                    if ctx.zc_kernel { "with" } else { "without" },
                    after.controllen
                ))
            }
        }
    }
    exactly((MMSG_ENTRIES * MMSG_ROUNDS) as u32, &inline, queued)?;
    if ctx.zc_kernel {
        Ok(Outcome::Pass)
    } else {
        Ok(Outcome::KernelUnsupported(
            "placeholders ignored; msg_flags kept".into(),
        ))
    }
}

#[cfg(test)]
mod tests;
