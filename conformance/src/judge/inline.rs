//! `inline_tcp4` .. `inline_udp6`: completions read back from the
//! placeholders a kernel with the proposal writes, the rest from the error
//! queue.

use super::{
    check_placeholder, check_probe_line, coverage, first, seen, Ctx, Judged, Line, Outcome, Raw,
    Seen,
};
use msgzc_abi::Target;
use msgzc_cmsg::ZcRange;
use msgzc_conformance_protocol::{PAYLOAD, SENDS};

/// `inline_*`: every placeholder re-decoded; inline and error-queue
/// completions together cover every send exactly once; on a kernel with
/// the proposal both halves must have carried some, on one without the
/// placeholder must have been refused or ignored (kernel-unsupported).
pub(super) fn inline(j: &Judged<'_>) -> Result<Outcome, String> {
    let Judged {
        ctx,
        raws,
        recvs,
        lines,
    } = *j;
    let t = ctx.t();
    check_placeholder(t, raws)?;
    if let Some(r) = recvs.iter().find(|r| !r.host.items.is_empty()) {
        return Err(format!("unexpected error-queue items {:?}", r.host.items));
    }
    let seens = placements(t, raws, lines)?;
    let inline: Vec<ZcRange> = seens
        .iter()
        .flat_map(|s| match s {
            Seen::Written(done) => done.clone(),
            _ => Vec::new(),
        })
        .collect();
    let queued: Vec<ZcRange> = recvs.iter().flat_map(|r| r.host.ranges.clone()).collect();
    let covered = coverage(inline.iter().chain(&queued))?;
    if covered.len() != SENDS as usize {
        return Err(format!(
            "{} of {SENDS} sends completed ({} inline, {} on the error queue)",
            covered.len(),
            inline.iter().map(|r| r.count()).sum::<u64>(),
            queued.iter().map(|r| r.count()).sum::<u64>()
        ));
    }
    let n_inline: u64 = inline.iter().map(|r| r.count()).sum();
    let said = first(lines, "INLINE", None).and_then(|l| l.num("n"));
    if said != Some(n_inline as i64) {
        return Err(format!(
            "guest counted {said:?} completions inline, host {n_inline}"
        ));
    }
    verdict(ctx, &seens, n_inline, &queued)
}

/// The host's reading of every placeholder send, after checking that the
/// sends went out as the first one's fate calls for.
fn placements(t: Target, raws: &[Raw<'_>], lines: &[Line]) -> Result<Vec<Seen>, String> {
    let calls = |name: &str| -> Vec<&Line> {
        lines
            .iter()
            .filter(|l| l.kind == "CALL" && l.get("name") == Some(name))
            .collect()
    };
    let placed = calls("sendmsg_placeholder");
    let plain = calls("send_MSG_ZEROCOPY");
    let afters: Vec<&Raw<'_>> = raws.iter().filter(|r| r.dir() == "after").collect();
    if placed.is_empty() || placed.len() != afters.len() {
        return Err(format!(
            "{} placeholder sends with {} buffers after them",
            placed.len(),
            afters.len()
        ));
    }
    let result = |l: &Line| (l.num("ret").unwrap_or(-1), l.num("errno").unwrap_or(-1));
    let mut seens = Vec::new();
    for (l, after) in placed.iter().zip(&afters) {
        let (ret, e) = result(l);
        seens.push(seen(t, ret, e, after)?);
    }
    check_probe_line(lines, &seens[0])?;
    // After a refused first placeholder the guest sends the rest (and that
    // one again) without one.
    let refused = matches!(seens[0], Seen::Rejected);
    if refused && placed.len() != 1 {
        return Err("placeholder sends after the first was refused".into());
    }
    if !refused && !plain.is_empty() {
        return Err("sends without a placeholder, though the first was not refused".into());
    }
    let full = i64::try_from(PAYLOAD).expect("small");
    for (i, l) in placed.iter().chain(&plain).enumerate() {
        let (ret, e) = result(l);
        if ret != full && !(refused && i == 0) {
            return Err(format!("send {i} returned {ret} errno {e}, want {full}"));
        }
    }
    let sent = if refused { plain.len() } else { placed.len() };
    if sent != SENDS as usize {
        return Err(format!("{sent} sends went out, want {SENDS}"));
    }
    Ok(seens)
}

/// The outcome once every send is accounted for: kernel-unsupported
/// without the proposal, else every placeholder written, some completions
/// inline and the last send's on the error queue.
fn verdict(ctx: Ctx, seens: &[Seen], n_inline: u64, queued: &[ZcRange]) -> Result<Outcome, String> {
    if !ctx.zc_kernel {
        if n_inline > 0 {
            return Err(format!(
                "{n_inline} completions inline from a kernel without SCM_ZC_NOTIFICATION"
            ));
        }
        if let Some(i) = seens.iter().position(|s| matches!(s, Seen::Written(_))) {
            return Err(format!(
                "placeholder {i} written by a kernel without SCM_ZC_NOTIFICATION"
            ));
        }
        return Ok(Outcome::KernelUnsupported(format!(
            "placeholder {}; all {SENDS} sends completed once on the error queue",
            seens[0].what()
        )));
    }
    if let Some((i, s)) = seens
        .iter()
        .enumerate()
        .find(|(_, s)| !matches!(s, Seen::Written(_)))
    {
        return Err(format!("the patched kernel {} placeholder {i}", s.what()));
    }
    if n_inline == 0 {
        return Err("no completion came back inline".into());
    }
    let last = SENDS - 1;
    if !queued.iter().any(|r| r.contains(last)) {
        return Err(format!(
            "the last send's completion (id {last}) was not on the error queue"
        ));
    }
    Ok(Outcome::Pass)
}
