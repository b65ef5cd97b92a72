//! The placeholder probes: `probe` (one placeholder without
//! `MSG_ZEROCOPY`: refused, ignored or written) and `hybrid` (the
//! library's sender, inline where the kernel writes placeholders, else
//! from the error queue).

use super::{
    call_result, check_placeholder, check_probe_line, coverage, first, host_outcome, seen, Judged,
    Outcome, Seen,
};
use msgzc_conformance_protocol::SENDS;

/// `probe`: what the kernel did with one placeholder, and no completion
/// for a send that was no zerocopy send.
pub(super) fn probe(j: &Judged<'_>) -> Result<Outcome, String> {
    let Judged {
        ctx,
        raws,
        recvs,
        lines,
    } = *j;
    let t = ctx.t();
    check_placeholder(t, raws)?;
    let (ret, e) = call_result(lines, "sendmsg_placeholder")?;
    let after = raws
        .iter()
        .find(|r| r.dir() == "after")
        .ok_or("no buffer after sendmsg")?;
    let seen = seen(t, ret, e, after)?;
    check_probe_line(lines, &seen)?;
    if !recvs.is_empty() {
        return Err("error-queue items after a probe without MSG_ZEROCOPY".into());
    }
    let (r, eq) = call_result(lines, "recvmsg_errqueue")?;
    if r >= 0 || eq != i64::from(t.family.errno().eagain) {
        return Err(format!("error queue not empty (ret {r}, errno {eq})"));
    }
    match (&seen, ctx.zc_kernel) {
        (Seen::Written(done), _) if !done.is_empty() => Err(format!(
            "{} bogus completions written without any zerocopy send",
            done.len()
        )),
        (Seen::Written(_), _) if ret < 0 => Err(format!("the probe's send failed with errno {e}")),
        (Seen::Written(_), true) => Ok(Outcome::Pass),
        (Seen::Written(_), false) => {
            Err("a kernel without SCM_ZC_NOTIFICATION wrote the placeholder".into())
        }
        (s, true) => Err(format!("the patched kernel {} the placeholder", s.what())),
        (s, false) => Ok(Outcome::KernelUnsupported(format!(
            "placeholder {}",
            s.what()
        ))),
    }
}

/// `hybrid`: every send completed once, inline or on the error queue, in
/// the mode the kernel calls for.
pub(super) fn hybrid(j: &Judged<'_>) -> Result<Outcome, String> {
    let Judged {
        ctx,
        raws,
        recvs,
        lines,
    } = *j;
    let t = ctx.t();
    check_placeholder(t, raws)?;
    let mode = first(lines, "MODE", None)
        .and_then(|l| l.text.split_whitespace().nth(1))
        .ok_or("no MODE line")?;
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
    let n_inline = unseen + inline.iter().map(|r| r.count() as i64).sum::<i64>();
    if ctx.zc_kernel {
        if mode != "Inline" || n_inline < 1 {
            return Err(format!(
                "mode {mode} with {n_inline} completions inline on a kernel with \
                 SCM_ZC_NOTIFICATION, want Inline and at least one"
            ));
        }
    } else if mode != "ErrorQueue(Rejected)" || n_inline != 0 {
        return Err(format!(
            "mode {mode} with {n_inline} completions inline on a kernel without \
             SCM_ZC_NOTIFICATION, want the fallback ErrorQueue(Rejected) and none"
        ));
    }
    Ok(Outcome::Pass)
}
