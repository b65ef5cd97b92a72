//! The copy-back judges against transcripts built with the library: what a
//! kernel with the fixed patch prints, what the earlier revision of the
//! patch printed (each must fail), and what stock kernels print.

use super::super::tests::{
    answered, cmsg, completion, ctx, fails_with, kernel, outcome_of, raw_line, word,
};
use super::*;
use msgzc_abi::Arch;

const ARCHS: [Arch; 4] = [Arch::X86_64, Arch::I686, Arch::Mips, Arch::Sparc64];

fn einval(arch: Arch) -> i64 {
    i64::from(arch.target().family.errno().einval)
}

fn head(arch: Arch, case: &str) -> Vec<String> {
    vec![
        format!("GUEST target={} lang=c pid=1", arch.name()),
        format!("CASE name={case}"),
        "CALL name=setsockopt_SO_ZEROCOPY ret=0 errno=0".into(),
    ]
}

fn queued_head(arch: Arch, case: &str) -> Vec<String> {
    let mut out = head(arch, case);
    for _ in 0..QUEUED_SENDS {
        out.push("CALL name=send_MSG_ZEROCOPY ret=1000 errno=0".into());
    }
    out
}

fn finish(mut out: Vec<String>, case: &str, queued: &[(u32, u32)], t: Target) -> String {
    out.extend(queued.iter().map(|&(lo, hi)| completion(t, lo, hi)));
    out.push("CALL name=recvmsg_errqueue ret=-1 errno=11".into());
    out.push(format!("END case={case} status=ok detail=x"));
    out.join("\n") + "\n"
}

/// The bad message `failed_send` puts after its placeholder.
fn bad(t: Target) -> Vec<u8> {
    cmsg(t, t.family.socket().sol_socket, BAD_CMSG_TYPE, &[0; 4])
}

/// A `failed_send` transcript: the buffer after the call (`None`: as sent)
/// and the completions read from the error queue afterwards.
fn failed_text(arch: Arch, after: Option<Vec<u8>>, queued: &[(u32, u32)]) -> String {
    let t = arch.target();
    let sent = built(t, &|b| {
        placeholder(b);
        b.push(t.family.socket().sol_socket, BAD_CMSG_TYPE, &[0; 4])
            .unwrap();
    });
    assert_eq!(sent.len(), answered(t, &[]).len() + bad(t).len());
    let mut out = queued_head(arch, "failed_send");
    out.push(raw_line(t, "send", &sent, 0));
    out.push(format!(
        "CALL name=sendmsg_invalid_cmsg ret=-1 errno={}",
        einval(arch)
    ));
    out.push(raw_line(t, "after", &after.unwrap_or(sent), 0));
    finish(out, "failed_send", queued, t)
}

#[test]
fn failed_send_passes_only_with_the_answer_in_place() {
    for arch in ARCHS {
        let t = arch.target();
        for inline in [&[(0, 2)][..], &[(0, 0), (1, 2)]] {
            let after = [answered(t, inline), bad(t)].concat();
            let text = failed_text(arch, Some(after), &[]);
            assert_eq!(
                outcome_of(kernel(arch), "failed_send", &text),
                Outcome::Pass,
                "{arch:?}"
            );
            assert!(fails_with(
                &outcome_of(ctx(arch, false), "failed_send", &text),
                "changed the buffer"
            ));
        }
        // The earlier patch: the placeholder copied to the start, the bad
        // message cut off by a shorter msg_controllen.
        let text = failed_text(arch, Some(answered(t, &[(0, 2)])), &[]);
        assert!(fails_with(
            &outcome_of(kernel(arch), "failed_send", &text),
            "msg_controllen"
        ));
        // Stock: untouched, all queued.
        let stock = failed_text(arch, None, &[(0, 2)]);
        let o = outcome_of(ctx(arch, false), "failed_send", &stock);
        assert!(
            matches!(o, Outcome::KernelUnsupported(_)),
            "{arch:?}: {o:?}"
        );
        assert!(fails_with(
            &outcome_of(kernel(arch), "failed_send", &stock),
            "left it unwritten"
        ));
    }
}

#[test]
fn failed_send_may_lose_or_repeat_nothing() {
    let x = Arch::X86_64;
    let t = x.target();
    let after = |r: &[(u32, u32)]| Some([answered(t, r), bad(t)].concat());
    let text = failed_text(x, after(&[(0, 1)]), &[]);
    assert!(fails_with(
        &outcome_of(kernel(x), "failed_send", &text),
        "want [0, 1, 2]"
    ));
    let text = failed_text(x, after(&[(0, 2)]), &[(2, 2)]);
    assert!(fails_with(
        &outcome_of(kernel(x), "failed_send", &text),
        "completed 2 times"
    ));
    let text = failed_text(x, after(&[(0, 1)]), &[(2, 2)]);
    assert!(fails_with(
        &outcome_of(kernel(x), "failed_send", &text),
        "left on the error queue"
    ));
    let text = failed_text(x, None, &[(0, 0), (2, 2)]);
    assert!(fails_with(
        &outcome_of(ctx(x, false), "failed_send", &text),
        "want [0, 1, 2]"
    ));
}

fn readonly_text(arch: Arch, ret: i64, errno: i64, queued: &[(u32, u32)]) -> String {
    let t = arch.target();
    let ph = built(t, &placeholder);
    let mut out = queued_head(arch, "readonly_control");
    out.push(raw_line(t, "send", &ph, 0));
    out.push("CALL name=mprotect_readonly ret=0 errno=0".into());
    out.push(format!(
        "CALL name=sendmsg_readonly ret={ret} errno={errno}"
    ));
    out.push(raw_line(t, "after", &ph, 0));
    finish(out, "readonly_control", queued, t)
}

#[test]
fn a_readonly_answer_never_fails_the_send_nor_loses_completions() {
    for arch in ARCHS {
        let text = readonly_text(arch, 100, 0, &[(0, 2)]);
        assert_eq!(
            outcome_of(kernel(arch), "readonly_control", &text),
            Outcome::Pass
        );
        // The earlier patch: EFAULT instead of the count, completions gone.
        let old = readonly_text(arch, -1, 14, &[]);
        assert!(fails_with(
            &outcome_of(kernel(arch), "readonly_control", &old),
            "want [0, 1, 2]"
        ));
        let efault = readonly_text(arch, -1, 14, &[(0, 2)]);
        assert!(fails_with(
            &outcome_of(kernel(arch), "readonly_control", &efault),
            "want its 100 bytes"
        ));
        let stock = readonly_text(arch, -1, einval(arch), &[(0, 0), (1, 2)]);
        let o = outcome_of(ctx(arch, false), "readonly_control", &stock);
        assert!(matches!(o, Outcome::KernelUnsupported(_)), "{o:?}");
        assert!(fails_with(
            &outcome_of(kernel(arch), "readonly_control", &stock),
            "want its 100 bytes"
        ));
    }
}

fn restart_text(
    arch: Arch,
    ret: i64,
    errno: i64,
    signals: u32,
    after: &[u8],
    queued: &[(u32, u32)],
) -> String {
    let t = arch.target();
    let mut out = queued_head(arch, "restart");
    out.push("VALUE name=filled v=9000".into());
    out.push(raw_line(t, "send", &built(t, &placeholder), 0));
    out.push(format!("CALL name=sendmsg_restart ret={ret} errno={errno}"));
    out.push(format!("VALUE name=signals v={signals}"));
    out.push(raw_line(t, "after", after, 0));
    finish(out, "restart", queued, t)
}

#[test]
fn a_restarted_send_succeeds_and_keeps_every_completion() {
    for arch in ARCHS {
        let t = arch.target();
        let ph = built(t, &placeholder);
        let good = restart_text(arch, 1000, 0, 1, &answered(t, &[(0, 2)]), &[]);
        assert_eq!(outcome_of(kernel(arch), "restart", &good), Outcome::Pass);
        let split = restart_text(arch, 1000, 0, 1, &answered(t, &[(0, 1)]), &[(2, 2)]);
        assert_eq!(outcome_of(kernel(arch), "restart", &split), Outcome::Pass);
        // The earlier patch: the restarted call read the count as its
        // capacity and failed with EINVAL.
        let old = restart_text(arch, -1, einval(arch), 1, &answered(t, &[(0, 2)]), &[]);
        assert!(fails_with(
            &outcome_of(kernel(arch), "restart", &old),
            "after a restart"
        ));
        // The send never blocked: no signal arrived during it.
        let unblocked = restart_text(arch, 1000, 0, 0, &answered(t, &[(0, 2)]), &[]);
        assert!(fails_with(
            &outcome_of(kernel(arch), "restart", &unblocked),
            "after 0 signals"
        ));
        // A completion lost across the restart.
        let lost = restart_text(arch, 1000, 0, 1, &answered(t, &[(1, 2)]), &[]);
        assert!(fails_with(
            &outcome_of(kernel(arch), "restart", &lost),
            "want [0, 1, 2]"
        ));
        let stock = restart_text(arch, -1, einval(arch), 0, &ph, &[(0, 2)]);
        let o = outcome_of(ctx(arch, false), "restart", &stock);
        assert!(matches!(o, Outcome::KernelUnsupported(_)), "{o:?}");
        assert!(fails_with(
            &outcome_of(kernel(arch), "restart", &stock),
            "after 0 signals"
        ));
    }
}

/// The `IP_TTL` message of `mixed_cmsgs`.
fn ttl_msg(t: Target) -> Vec<u8> {
    cmsg(t, SOL_IP, IP_TTL, &word(t, MIXED_TTL as u32))
}

/// A received datagram's control buffer carrying TTL `ttl`.
fn gram(t: Target, ttl: u32) -> String {
    raw_line(t, "recv", &cmsg(t, SOL_IP, IP_TTL, &word(t, ttl)), 0)
}

/// A `mixed_cmsgs` transcript: each send's result and buffer afterwards,
/// the TTLs received, then the completions read from the error queue.
fn mixed_text(arch: Arch, sends: &[(i64, Vec<u8>)], ttls: &[u32], queued: &[(u32, u32)]) -> String {
    let t = arch.target();
    let sent = [ttl_msg(t), built(t, &placeholder)].concat();
    assert_eq!(
        sent,
        built(t, &|b| {
            b.push(SOL_IP, IP_TTL, &word(t, MIXED_TTL as u32)).unwrap();
            placeholder(b);
        })
    );
    let mut out = head(arch, "mixed_cmsgs");
    out.push(raw_line(t, "send", &sent, 0));
    for (i, (ret, after)) in sends.iter().enumerate() {
        let e = if *ret < 0 { einval(arch) } else { 0 };
        out.push(format!("CALL name=sendmsg_mixed ret={ret} errno={e}"));
        out.push(raw_line(t, "after", after, 0));
        if let Some(ttl) = ttls.get(i) {
            out.push("CALL name=recvmsg_IP_TTL ret=1000 errno=0".into());
            out.push(gram(t, *ttl));
            out.push(format!("VALUE name=ttl v={ttl}"));
        }
    }
    finish(out, "mixed_cmsgs", queued, t)
}

#[test]
fn mixed_cmsgs_keeps_ip_ttl_and_the_buffer_walkable() {
    for arch in ARCHS {
        let t = arch.target();
        let after = |r: &[(u32, u32)]| (1000, [ttl_msg(t), answered(t, r)].concat());
        let good = [
            after(&[]),
            after(&[(0, 0)]),
            after(&[(1, 1)]),
            after(&[(2, 2)]),
        ];
        let text = mixed_text(arch, &good, &[7; 4], &[(3, 3)]);
        assert_eq!(
            outcome_of(kernel(arch), "mixed_cmsgs", &text),
            Outcome::Pass
        );
        // The earlier patch: the placeholder copied over IP_TTL at the
        // start, msg_controllen cut to it.
        let mut old = good.clone();
        old[0] = (1000, answered(t, &[]));
        let text = mixed_text(arch, &old, &[7; 4], &[(3, 3)]);
        assert!(fails_with(
            &outcome_of(kernel(arch), "mixed_cmsgs", &text),
            "walks to"
        ));
        // A datagram without the TTL asked for.
        let text = mixed_text(arch, &good, &[7, 64, 7, 7], &[(3, 3)]);
        assert!(fails_with(
            &outcome_of(kernel(arch), "mixed_cmsgs", &text),
            "arrived with TTLs"
        ));
        let sent = [ttl_msg(t), built(t, &placeholder)].concat();
        let stock = mixed_text(arch, &[(-1, sent.clone())], &[], &[]);
        let o = outcome_of(ctx(arch, false), "mixed_cmsgs", &stock);
        assert!(matches!(o, Outcome::KernelUnsupported(_)), "{o:?}");
        assert!(fails_with(
            &outcome_of(kernel(arch), "mixed_cmsgs", &stock),
            "want 4 of 1000 bytes"
        ));
    }
}

/// One `sendmmsg` call of a transcript: its result and, per entry, the
/// `msg_flags` and buffer left.
type Call = (i64, Vec<(u32, Vec<u8>)>);

/// A `sendmmsg_eor` transcript.
fn mmsg_text(arch: Arch, calls: &[Call], queued: &[(u32, u32)]) -> String {
    let t = arch.target();
    let ph = built(t, &placeholder);
    let mut out = head(arch, "sendmmsg_eor");
    for _ in 0..MMSG_ENTRIES {
        out.push(raw_line(t, "send", &ph, 0));
    }
    for (ret, entries) in calls {
        let e = if *ret < 0 { einval(arch) } else { 0 };
        out.push(format!("CALL name=sendmmsg ret={ret} errno={e}"));
        for (flags, after) in entries {
            let len = if *ret < 0 { 0 } else { 1000 };
            out.push(format!("VALUE name=msg_len v={len}"));
            out.push(format!("VALUE name=msg_flags v={flags}"));
            out.push(raw_line(t, "after", after, *flags));
        }
    }
    finish(out, "sendmmsg_eor", queued, t)
}

#[test]
fn sendmmsg_keeps_msg_eor_in_every_entry() {
    for arch in ARCHS {
        let t = arch.target();
        let entry = |flags: u32, r: &[(u32, u32)]| (flags, answered(t, r));
        let round = |flags: u32, base: u32| {
            (
                3,
                vec![
                    entry(flags, &[]),
                    entry(flags, &[(base, base)]),
                    entry(flags, &[]),
                ],
            )
        };
        // Call 1 returns id 0 in entry 1; call 2 returns 1..3; 4 and 5 queued.
        let mut calls = vec![round(MSG_EOR, 0), round(MSG_EOR, 1)];
        calls[1].1[0] = entry(MSG_EOR, &[(2, 3)]);
        let text = mmsg_text(arch, &calls, &[(4, 5)]);
        assert_eq!(
            outcome_of(kernel(arch), "sendmmsg_eor", &text),
            Outcome::Pass
        );
        // The earlier patch: msg_flags written as 0.
        let mut old = calls.clone();
        old[0].1[2].0 = 0;
        let text = mmsg_text(arch, &old, &[(4, 5)]);
        assert!(fails_with(
            &outcome_of(kernel(arch), "sendmmsg_eor", &text),
            "want MSG_EOR"
        ));
        // Stock: the first entry refused, nothing written.
        let ph = built(t, &placeholder);
        let refused = vec![(-1, vec![(MSG_EOR, ph.clone()); 3])];
        let text = mmsg_text(arch, &refused, &[]);
        let o = outcome_of(ctx(arch, false), "sendmmsg_eor", &text);
        assert!(matches!(o, Outcome::KernelUnsupported(_)), "{o:?}");
        assert!(fails_with(
            &outcome_of(kernel(arch), "sendmmsg_eor", &text),
            "want 2 calls of 3"
        ));
    }
}
