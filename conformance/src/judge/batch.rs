//! The host's judges of the UDP batch cases (`guest/batch.rs` and the C
//! guest): `sendmmsg_zc` and `gso_zc`. The ids come from the error-queue
//! buffers and placeholders the guest printed, re-decoded here with the
//! target's layout; the datagrams from the bytes it received, compared
//! with the payloads rebuilt here.

use super::copyback::{
    answered_in_place, built, calls, dir, exactly, one_sent, placeholder, queued, untouched, values,
};
use super::{call_result, first, Ctx, Judged, Line, Outcome, Raw};
use msgzc_abi::Target;
use msgzc_cmsg::ZcRange;
use msgzc_conformance_protocol::unhex;
use msgzc_conformance_protocol::{batch_len, pattern, GSO_SEED, GSO_SEGMENT, PAYLOAD, ZC_BATCH};
use std::collections::BTreeMap;

/// The datagrams received, per receiver, in order (`DATA` lines).
fn datagrams(lines: &[Line]) -> Result<BTreeMap<String, Vec<Vec<u8>>>, String> {
    let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l.kind == "DATA") {
        let bytes = unhex(l.get("hex").ok_or("DATA without hex")?)?;
        if l.num("len") != Some(bytes.len() as i64) {
            return Err(format!(
                "DATA: len={} with {} bytes of hex",
                l.get("len").unwrap_or("?"),
                bytes.len()
            ));
        }
        let sock = l.get("sock").ok_or("DATA without sock")?;
        out.entry(sock.to_string()).or_default().push(bytes);
    }
    Ok(out)
}

fn lens(grams: &[Vec<u8>]) -> Vec<usize> {
    grams.iter().map(Vec::len).collect()
}

/// The ids the Rust guest's library released inline (`INLINE id=`).
fn inline_ids(lines: &[Line]) -> Result<Vec<ZcRange>, String> {
    lines
        .iter()
        .filter(|l| l.kind == "INLINE" && l.get("id").is_some())
        .map(|l| match (l.num("id"), l.num("copied")) {
            (Some(id), Some(c @ 0..=1)) => {
                let id = u32::try_from(id).map_err(|_| format!("INLINE id={id}"))?;
                Ok(ZcRange {
                    lo: id,
                    hi: id,
                    copied: c == 1,
                })
            }
            _ => Err(format!("malformed line: {}", l.text)),
        })
        .collect()
}

/// `sendmmsg_zc`: the first `sendmmsg` sent all [`ZC_BATCH`] datagrams;
/// the second, with a placeholder in every entry, did too (again without
/// them where the kernel refused the first one with `EINVAL`). On a kernel
/// with `SCM_ZC_NOTIFICATION` every entry's placeholder is answered in
/// place and some ids come back in them; on one without, none is written.
/// Every id of `0..2 * ZC_BATCH` completes exactly once (placeholders and
/// error queue together), and receiver `a` gets the even datagrams, `b`
/// the odd ones, in order, each with its own bytes.
pub(super) fn sendmmsg_zc(j: &Judged<'_>) -> Result<Outcome, String> {
    let Judged {
        ctx,
        raws,
        recvs,
        lines,
    } = *j;
    let n = ZC_BATCH as i64;
    let rounds = [calls(lines, "sendmmsg"), calls(lines, "sendmmsg_notify")];
    if rounds.iter().any(|r| r[..] != [(n, 0)]) {
        return Err(format!(
            "sendmmsg returned {:?}, then {:?} with placeholders; want {n} each",
            rounds[0], rounds[1]
        ));
    }
    let first_ids = values(lines, "first_id");
    if !first_ids.is_empty() && first_ids != [0, n] {
        return Err(format!(
            "the library gave first ids {first_ids:?}, want [0, {n}]"
        ));
    }
    let msg_lens = values(lines, "msg_len");
    let want_lens: Vec<i64> = (0..2 * ZC_BATCH).map(|i| batch_len(i) as i64).collect();
    if !msg_lens.is_empty() && msg_lens != want_lens {
        return Err(format!("msg_len {msg_lens:?}, want {want_lens:?}"));
    }
    let mut inline = inline_ids(lines)?;
    inline.extend(entries(ctx, raws, lines)?);
    let mode = first(lines, "MODE", None)
        .and_then(|l| l.text.split_whitespace().nth(1))
        .ok_or("no MODE line")?;
    match (ctx.zc_kernel, mode) {
        (true, "Inline") if !inline.is_empty() => {}
        (false, "ErrorQueue(Rejected)" | "ErrorQueue(Unwritten)") if inline.is_empty() => {}
        _ => {
            return Err(format!(
                "mode {mode} with {} ids inline on a kernel {} SCM_ZC_NOTIFICATION",
                inline.len(),
                if ctx.zc_kernel { "with" } else { "without" }
            ))
        }
    }
    exactly(2 * ZC_BATCH as u32, &inline, &queued(recvs)?)?;
    let grams = datagrams(lines)?;
    for (k, sock) in ["a", "b"].into_iter().enumerate() {
        let want: Vec<Vec<u8>> = (k..2 * ZC_BATCH)
            .step_by(2)
            .map(|i| pattern(i, batch_len(i)))
            .collect();
        let got = grams.get(sock).cloned().unwrap_or_default();
        if got != want {
            return Err(format!(
                "receiver {sock} got datagrams of {:?} bytes, want {:?} with their bytes",
                lens(&got),
                lens(&want)
            ));
        }
    }
    if grams.len() != 2 {
        return Err(format!("datagrams on {} receivers, want 2", grams.len()));
    }
    Ok(Outcome::Pass)
}

/// The placeholders of the second `sendmmsg`: every one sent as the
/// library builds it, and, where the guest printed each entry's buffer
/// afterwards (the C guest), each answered in place on a kernel with the
/// proposal, or left as sent (the attempt refused with `EINVAL`, or sent
/// with every placeholder ignored) on one without. Returns the ids
/// answered.
fn entries(ctx: Ctx, raws: &[Raw<'_>], lines: &[Line]) -> Result<Vec<ZcRange>, String> {
    let t = ctx.t();
    let ph = built(t, &placeholder);
    let sents = dir(raws, "send");
    if sents.is_empty() || sents.iter().any(|s| s.bytes != ph) {
        return Err(format!(
            "{} placeholders sent, want msgzc-cmsg's for {}",
            sents.len(),
            t.family.name()
        ));
    }
    let afters = dir(raws, "after");
    if afters.is_empty() {
        return Ok(Vec::new());
    }
    if afters.len() != ZC_BATCH || sents.len() != ZC_BATCH {
        return Err(format!(
            "{} placeholders sent and {} buffers after, want {ZC_BATCH} each",
            sents.len(),
            afters.len()
        ));
    }
    let attempt = call_result(lines, "sendmmsg_placeholders")?;
    let einval = i64::from(t.family.errno().einval);
    let mut inline = Vec::new();
    for (k, (sent, after)) in sents.iter().zip(&afters).enumerate() {
        let what = format!("entry {k}");
        if ctx.zc_kernel {
            inline.extend(answered_in_place(t, &placeholder, sent, after, &what)?);
        } else {
            untouched(sent, after, &what)?;
        }
    }
    let n = ZC_BATCH as i64;
    let ok = match ctx.zc_kernel {
        true => attempt == (n, 0),
        false => attempt == (n, 0) || attempt == (-1, einval),
    };
    if !ok {
        return Err(format!("sendmmsg with placeholders returned {attempt:?}"));
    }
    Ok(inline)
}

/// `gso_zc`: the `UDP_SEGMENT` message as the library builds it, one send
/// of [`PAYLOAD`] bytes, exactly one id completed (id 0), and the payload
/// received cut into [`GSO_SEGMENT`]-byte datagrams, in order.
///
/// Under stock qemu-user on a host of the other byte order, which copies
/// the message's `u16` unconverted, the host kernel reads a segment size
/// larger than the payload and sends it whole: one datagram, one id. That,
/// and only that, is [`Outcome::EmulatorUnsupported`]; the patched
/// qemu-user converts it (`conformance/qemu/0003-*.patch`) and must pass.
pub(super) fn gso_zc(j: &Judged<'_>) -> Result<Outcome, String> {
    let Judged {
        ctx,
        raws,
        recvs,
        lines,
    } = *j;
    let t = ctx.t();
    let segment = |b: &mut msgzc_cmsg::ControlBuilder<'_>| {
        b.udp_segment(GSO_SEGMENT).expect("fits");
    };
    one_sent(t, raws, &segment, "UDP_SEGMENT message")?;
    let (ret, e) = call_result(lines, "send_gso")?;
    if ret != PAYLOAD as i64 {
        return Err(format!("send_gso returned {ret} errno {e}, want {PAYLOAD}"));
    }
    let ids = values(lines, "id");
    if !ids.is_empty() && ids != [0] {
        return Err(format!("the library gave the send id {ids:?}, want 0"));
    }
    exactly(1, &[], &queued(recvs)?)?;
    let data = pattern(GSO_SEED, PAYLOAD);
    let want: Vec<Vec<u8>> = data
        .chunks(GSO_SEGMENT.into())
        .map(<[u8]>::to_vec)
        .collect();
    let grams = datagrams(lines)?;
    if grams.keys().any(|k| k != "a") {
        return Err("datagrams on a receiver other than a".into());
    }
    let got = grams.get("a").cloned().unwrap_or_default();
    if got == want {
        return Ok(Outcome::Pass);
    }
    if got == [data] && unswapped(ctx, t) {
        return Ok(Outcome::EmulatorUnsupported(format!(
            "qemu-user copies the UDP_SEGMENT message's u16 without converting its byte \
             order: the host kernel read {} and sent the {PAYLOAD} bytes as one datagram \
             (one id, every byte)",
            GSO_SEGMENT.swap_bytes()
        )));
    }
    Err(format!(
        "datagrams of {:?} bytes received, want {:?} with the payload's bytes",
        lens(&got),
        lens(&want)
    ))
}

/// Whether a `UDP_SEGMENT` `u16` the guest wrote reaches the kernel
/// byte-swapped: under stock qemu-user (the patched one converts it), on a
/// host of the other byte order.
fn unswapped(ctx: Ctx, t: Target) -> bool {
    ctx.emulated && !ctx.patched && ctx.host.target().endian != t.endian
}

#[cfg(test)]
mod tests;
