//! The host's judge of `first_enable` (`guest/first_enable.rs`): placeholder
//! sends racing the first `SO_ZEROCOPY` enable since boot.
//!
//! The patch's copy-back is gated by a static key that the first enable
//! turns on; a placeholder accepted while it was off would be answered in
//! the kernel's copy only, its completions lost. The judge requires, on a
//! kernel with the proposal:
//!
//! - every placeholder of a send that went out written back in place: one
//!   left as built is the race's mark even when it carried nothing;
//! - every id of the sends that went out exactly once, in a placeholder or
//!   on the error queue;
//! - no placeholder refused once `setsockopt` had returned, and some
//!   refused before it (the senders overlapped the enable).
//!
//! Only when the guest says the enable was the first since boot (PID 1,
//! no `SO_ZEROCOPY` before in its run) is that a pass. Otherwise the static
//! key may have been on all along: the same checks still fail the case, but
//! holding them is a skip that says so, not a pass of a race that was not
//! run. On a kernel without the proposal the case ends `kern-unsup` at best.

use super::copyback::{calls, dir, exactly, one_sent, outcome_as, placeholder, queued, untouched};
use super::{call_result, value, Ctx, Judged, Line, Outcome, Raw};
use msgzc_conformance_protocol::{FIRST_SENDS, FIRST_THREADS, PAYLOAD};

/// What the placeholder sends that went out left behind.
struct Answers {
    /// Sends that went out.
    went: u32,
    /// Of those, placeholders left as built.
    unwritten: u32,
    /// The completions the others carried.
    inline: Vec<msgzc_cmsg::ZcRange>,
}

/// Reads every buffer after a send that went out: written in place, or
/// left exactly as sent.
fn answers(ctx: Ctx, raws: &[Raw<'_>], lines: &[Line]) -> Result<Answers, String> {
    let t = ctx.t();
    let sent = one_sent(t, raws, &placeholder, "placeholder")?;
    let sends = calls(lines, "sendmsg_first");
    let afters = dir(raws, "after");
    if sends.len() != afters.len() {
        return Err(format!(
            "{} placeholder sends with {} buffers after them",
            sends.len(),
            afters.len()
        ));
    }
    let full = i64::try_from(PAYLOAD).expect("small");
    if let Some((r, e)) = sends.iter().find(|s| s.0 != full) {
        return Err(format!(
            "a placeholder send returned {r} errno {e}, want {full} bytes or a refusal"
        ));
    }
    let mut a = Answers {
        went: u32::try_from(sends.len()).map_err(|_| "too many sends")?,
        unwritten: 0,
        inline: Vec::new(),
    };
    for (i, after) in afters.iter().enumerate() {
        match outcome_as(t, &placeholder, after)? {
            Some(done) if (after.controllen, after.flags) == (sent.controllen, 0) => {
                a.inline.extend(done)
            }
            Some(_) => {
                return Err(format!(
                    "send {i}: msg_controllen {} (sent {}), msg_flags {:#x}: the answer \
                     must be written in place",
                    after.controllen, sent.controllen, after.flags
                ))
            }
            None => {
                untouched(sent, after, &format!("send {i}"))?;
                a.unwritten += 1;
            }
        }
    }
    Ok(a)
}

/// `first_enable`: see the module.
pub(super) fn first_enable(j: &Judged<'_>) -> Result<Outcome, String> {
    let Judged {
        ctx,
        raws,
        recvs,
        lines,
    } = *j;
    let first = match value(lines, "first_enable")? {
        0 => false,
        1 => true,
        v => return Err(format!("first_enable {v}, want 0 or 1")),
    };
    let (r, e) = call_result(lines, "setsockopt_SO_ZEROCOPY")?;
    if r != 0 {
        return Err(format!("setsockopt(SO_ZEROCOPY) returned {r} errno {e}"));
    }
    let before = value(lines, "refused_before")?;
    let after = value(lines, "refused_after")?;
    let a = answers(ctx, raws, lines)?;
    let queued = queued(recvs)?;
    let accounted = exactly(a.went, &a.inline, &queued);
    let key = if first {
        "the first enable since boot"
    } else {
        "not the first enable since boot"
    };
    if !ctx.zc_kernel {
        accounted?;
        return match (a.went, a.inline.is_empty()) {
            (0, _) if after > 0 => Ok(Outcome::KernelUnsupported(format!(
                "every placeholder refused with EINVAL ({before} before the enable, {after} \
                 after; {key}), nothing sent or queued"
            ))),
            (0, _) => Err("no placeholder send after the enable".into()),
            (n, true) => Ok(Outcome::KernelUnsupported(format!(
                "placeholders ignored; the {n} completions all on the error queue ({key})"
            ))),
            (_, false) => Err("a kernel without SCM_ZC_NOTIFICATION wrote a placeholder".into()),
        };
    }
    if a.unwritten > 0 {
        let lost = accounted.err().unwrap_or_else(|| "none lost".into());
        return Err(format!(
            "{} of {} placeholders of sends that went out came back unwritten: accepted \
             while the copy-back was off (the static-key race; {key}); completions: {lost}",
            a.unwritten, a.went
        ));
    }
    accounted?;
    let want = FIRST_THREADS * FIRST_SENDS;
    if a.went != want || after != 0 {
        return Err(format!(
            "{} sends went out and {after} placeholders were refused after setsockopt \
             returned; want {want} and none",
            a.went
        ));
    }
    if before == 0 {
        return Err(
            "no placeholder refused before the enable: the senders did not overlap it".into(),
        );
    }
    if first {
        Ok(Outcome::Pass)
    } else {
        Ok(Outcome::Skip(format!(
            "{key} (not PID 1, or SO_ZEROCOPY set earlier): every id accounted for, but the \
             static key may have been on already, so the race was not exercised"
        )))
    }
}

#[cfg(test)]
mod tests;
