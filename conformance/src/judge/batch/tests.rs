//! The batch judges against transcripts built here with the library: what
//! each guest prints on a kernel with and without the proposal, under an
//! emulator that passes `UDP_SEGMENT` through unconverted, and the
//! mistakes each must catch.

use super::super::tests::{answered, completion, ctx, fails_with, kernel, outcome_of, raw_line};
use super::*;
use msgzc_abi::Arch;
use msgzc_conformance_protocol::hex;

const ARCHS: [Arch; 4] = [Arch::X86_64, Arch::I686, Arch::Mips, Arch::Sparc64];

fn head(arch: Arch, case: &str, lang: &str) -> Vec<String> {
    vec![
        format!("GUEST target={} lang={lang} pid=1", arch.name()),
        format!("CASE name={case}"),
        "CALL name=setsockopt_SO_ZEROCOPY ret=0 errno=0".into(),
    ]
}

fn data_line(sock: &str, bytes: &[u8]) -> String {
    format!("DATA sock={sock} len={} hex={}", bytes.len(), hex(bytes))
}

/// How the second `sendmmsg` of a `sendmmsg_zc` transcript went.
#[derive(Clone)]
enum Second {
    /// The C guest: the attempt with placeholders (its result, each
    /// entry's buffer after it) and the mode it printed.
    C(i64, Vec<Vec<u8>>, &'static str),
    /// The Rust guest: the ids its library released inline and its mode.
    Rust(Vec<u32>, &'static str),
}

/// A `sendmmsg_zc` transcript: the two calls, the completions read from
/// the error queue, and the datagrams each receiver got (by seed).
fn zc_text(arch: Arch, second: &Second, queued: &[(u32, u32)], got: [&[usize]; 2]) -> String {
    let t = arch.target();
    let ph = built(t, &placeholder);
    let rust = matches!(second, Second::Rust(..));
    let mut out = head(arch, "sendmmsg_zc", if rust { "rust" } else { "c" });
    out.push("CALL name=sendmmsg ret=4 errno=0".into());
    let lens =
        |lo: usize| (lo..lo + ZC_BATCH).map(|i| format!("VALUE name=msg_len v={}", batch_len(i)));
    match second {
        Second::Rust(inline, mode) => {
            out.push("VALUE name=first_id v=0".into());
            out.push(raw_line(t, "send", &ph, 0));
            out.extend(inline.iter().map(|id| format!("INLINE id={id} copied=1")));
            out.push("CALL name=sendmmsg_notify ret=4 errno=0".into());
            out.push("VALUE name=first_id v=4".into());
            out.push(format!("MODE {mode}"));
        }
        Second::C(ret, afters, mode) => {
            out.extend(lens(0));
            out.extend((0..ZC_BATCH).map(|_| raw_line(t, "send", &ph, 0)));
            let e = if *ret < 0 { einval(arch) } else { 0 };
            out.push(format!(
                "CALL name=sendmmsg_placeholders ret={ret} errno={e}"
            ));
            out.extend(afters.iter().map(|a| raw_line(t, "after", a, 0)));
            out.push(format!("MODE {mode}"));
            out.push("CALL name=sendmmsg_notify ret=4 errno=0".into());
            out.extend(lens(ZC_BATCH));
        }
    }
    out.extend(queued.iter().map(|&(lo, hi)| completion(t, lo, hi)));
    for (sock, seeds) in ["a", "b"].into_iter().zip(got) {
        out.extend(
            seeds
                .iter()
                .map(|&i| data_line(sock, &pattern(i, batch_len(i)))),
        );
    }
    out.push("END case=sendmmsg_zc status=ok detail=x".into());
    out.join("\n") + "\n"
}

fn einval(arch: Arch) -> i64 {
    i64::from(arch.target().family.errno().einval)
}

const EVEN: &[usize] = &[0, 2, 4, 6];
const ODD: &[usize] = &[1, 3, 5, 7];

/// What each guest prints on a kernel without the proposal.
fn stock(arch: Arch) -> [(Second, Vec<(u32, u32)>); 2] {
    let ph = built(arch.target(), &placeholder);
    [
        (
            Second::C(-1, vec![ph; ZC_BATCH], "ErrorQueue(Rejected)"),
            vec![(0, 7)],
        ),
        (
            Second::Rust(vec![], "ErrorQueue(Rejected)"),
            vec![(0, 3), (4, 7)],
        ),
    ]
}

/// What each guest prints on a kernel with it: the first entry takes the
/// four queued completions, the third the second call's first.
fn patched(arch: Arch) -> [(Second, Vec<(u32, u32)>); 2] {
    let t = arch.target();
    let afters = vec![
        answered(t, &[(0, 3)]),
        answered(t, &[]),
        answered(t, &[(4, 4)]),
        answered(t, &[]),
    ];
    [
        (Second::C(4, afters, "Inline"), vec![(5, 7)]),
        (Second::Rust(vec![0, 1, 2, 3], "Inline"), vec![(4, 7)]),
    ]
}

#[test]
fn sendmmsg_zc_passes_each_kernel_only_as_it_is() {
    for arch in ARCHS {
        for (second, queued) in stock(arch) {
            let text = zc_text(arch, &second, &queued, [EVEN, ODD]);
            let o = outcome_of(ctx(arch, false), "sendmmsg_zc", &text);
            assert_eq!(o, Outcome::Pass, "{arch:?}");
            let o = outcome_of(kernel(arch), "sendmmsg_zc", &text);
            assert!(matches!(o, Outcome::Fail(_)), "{arch:?} {o:?}");
        }
        for (second, queued) in patched(arch) {
            let text = zc_text(arch, &second, &queued, [EVEN, ODD]);
            let o = outcome_of(kernel(arch), "sendmmsg_zc", &text);
            assert_eq!(o, Outcome::Pass, "{arch:?}");
            let o = outcome_of(ctx(arch, false), "sendmmsg_zc", &text);
            assert!(matches!(o, Outcome::Fail(_)), "{arch:?} {o:?}");
        }
        // A kernel that ignores the placeholders (parisc's 0x404C on 6.13+).
        let ph = built(arch.target(), &placeholder);
        let ignored = Second::C(4, vec![ph; ZC_BATCH], "ErrorQueue(Unwritten)");
        let text = zc_text(arch, &ignored, &[(0, 7)], [EVEN, ODD]);
        assert_eq!(
            outcome_of(ctx(arch, false), "sendmmsg_zc", &text),
            Outcome::Pass
        );
    }
}

#[test]
fn sendmmsg_zc_accounts_for_every_id_once() {
    for arch in ARCHS {
        let [(c, _), (rust, _)] = stock(arch);
        let on = ctx(arch, false);
        for queued in [&[(0, 6)][..], &[(0, 7), (7, 7)], &[(0, 8)], &[(1, 7)]] {
            for second in [&c, &rust] {
                let text = zc_text(arch, second, queued, [EVEN, ODD]);
                let o = outcome_of(on, "sendmmsg_zc", &text);
                assert!(matches!(o, Outcome::Fail(_)), "{queued:?} {o:?}");
            }
        }
        // An id both inline and queued.
        let [(c, _), (rust, _)] = patched(arch);
        for second in [&c, &rust] {
            let text = zc_text(arch, second, &[(3, 7)], [EVEN, ODD]);
            assert!(fails_with(
                &outcome_of(kernel(arch), "sendmmsg_zc", &text),
                "completed 2 times"
            ));
        }
        // The patched kernel left an entry unwritten.
        let Second::C(r, mut afters, m) = c else {
            unreachable!()
        };
        afters[3] = built(arch.target(), &placeholder);
        let text = zc_text(arch, &Second::C(r, afters, m), &[(5, 7)], [EVEN, ODD]);
        assert!(fails_with(
            &outcome_of(kernel(arch), "sendmmsg_zc", &text),
            "entry 3"
        ));
    }
}

#[test]
fn sendmmsg_zc_checks_every_datagram_and_call() {
    let arch = Arch::Mips;
    let on = ctx(arch, false);
    let [(c, q), _] = stock(arch);
    for (got, what) in [
        ([&[0, 2, 4][..], ODD], "receiver a got"),
        ([&[0, 2, 4, 6, 6], ODD], "receiver a got"),
        ([&[0, 2, 6, 4], ODD], "receiver a got"),
        ([&[0, 2, 4, 7], &[1, 3, 5, 6]], "receiver a got"),
        ([EVEN, &[]], "receiver b got"),
    ] {
        let text = zc_text(arch, &c, &q, got);
        assert!(
            fails_with(&outcome_of(on, "sendmmsg_zc", &text), what),
            "{got:?}"
        );
    }
    let good = zc_text(arch, &c, &q, [EVEN, ODD]);
    // One byte changed in transit, a datagram's length misreported.
    let i = good.find("DATA sock=b len=120 hex=44").unwrap() + 25;
    let mut bad = good.clone();
    bad.replace_range(i..i + 1, "5");
    assert!(fails_with(
        &outcome_of(on, "sendmmsg_zc", &bad),
        "receiver b got"
    ));
    let bad = good.replacen("DATA sock=b len=120", "DATA sock=b len=121", 1);
    assert!(fails_with(
        &outcome_of(on, "sendmmsg_zc", &bad),
        "DATA: len=121"
    ));
    // A short first call; an entry's length; the library's first ids.
    let bad = good.replacen("CALL name=sendmmsg ret=4", "CALL name=sendmmsg ret=3", 1);
    assert!(fails_with(
        &outcome_of(on, "sendmmsg_zc", &bad),
        "want 4 each"
    ));
    let bad = good.replacen("msg_len v=140", "msg_len v=139", 1);
    assert!(fails_with(&outcome_of(on, "sendmmsg_zc", &bad), "msg_len"));
    let [_, (rust, q)] = stock(arch);
    let good = zc_text(arch, &rust, &q, [EVEN, ODD]);
    assert_eq!(outcome_of(on, "sendmmsg_zc", &good), Outcome::Pass);
    let bad = good.replacen("first_id v=4", "first_id v=3", 1);
    assert!(fails_with(
        &outcome_of(on, "sendmmsg_zc", &bad),
        "first ids"
    ));
    // A placeholder other than the library's (capacity 8).
    let t = arch.target();
    let small = built(t, &|b| b.zc_placeholder(8).map(drop).unwrap());
    let good_ph = raw_line(t, "send", &built(t, &placeholder), 0);
    let bad = good.replacen(&good_ph, &raw_line(t, "send", &small, 0), 1);
    assert!(fails_with(
        &outcome_of(on, "sendmmsg_zc", &bad),
        "placeholders sent"
    ));
}

/// A `gso_zc` transcript: the send's control buffer, the completions
/// read, the datagrams received.
fn gso_text(arch: Arch, segment: u16, queued: &[(u32, u32)], got: &[Vec<u8>]) -> String {
    let t = arch.target();
    let mut out = head(arch, "gso_zc", "c");
    out.push(raw_line(
        t,
        "send",
        &built(t, &|b| b.udp_segment(segment).unwrap()),
        0,
    ));
    out.push("CALL name=send_gso ret=1000 errno=0".into());
    out.extend(queued.iter().map(|&(lo, hi)| completion(t, lo, hi)));
    out.extend(got.iter().map(|g| data_line("a", g)));
    out.push("END case=gso_zc status=ok detail=x".into());
    out.join("\n") + "\n"
}

fn segments() -> Vec<Vec<u8>> {
    pattern(GSO_SEED, PAYLOAD)
        .chunks(GSO_SEGMENT.into())
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn gso_zc_wants_every_segment_and_one_id() {
    for arch in ARCHS {
        let good = gso_text(arch, GSO_SEGMENT, &[(0, 0)], &segments());
        for c in [ctx(arch, false), kernel(arch), ctx(arch, true)] {
            assert_eq!(outcome_of(c, "gso_zc", &good), Outcome::Pass, "{arch:?}");
        }
        let rust = good.replacen(
            "CALL name=send_gso ret=1000 errno=0",
            "CALL name=send_gso ret=1000 errno=0\nVALUE name=id v=0",
            1,
        );
        assert_eq!(outcome_of(kernel(arch), "gso_zc", &rust), Outcome::Pass);
        let on = ctx(arch, false);
        let bad = rust.replacen("name=id v=0", "name=id v=1", 1);
        assert!(fails_with(&outcome_of(on, "gso_zc", &bad), "send id"));
        // One id per segment, or none.
        for queued in [&[(0, 3)][..], &[(0, 0), (1, 1)], &[]] {
            let text = gso_text(arch, GSO_SEGMENT, queued, &segments());
            assert!(
                fails_with(&outcome_of(on, "gso_zc", &text), "ids"),
                "{queued:?}"
            );
        }
        // A lost, repeated or altered segment.
        let mut lost = segments();
        lost.pop();
        let mut again = segments();
        again.push(again[0].clone());
        let mut altered = segments();
        altered[1][7] ^= 1;
        for got in [lost, again, altered] {
            let text = gso_text(arch, GSO_SEGMENT, &[(0, 0)], &got);
            assert!(fails_with(&outcome_of(on, "gso_zc", &text), "datagrams of"));
        }
        // Another segment size than the library's.
        let text = gso_text(arch, 301, &[(0, 0)], &segments());
        assert!(fails_with(&outcome_of(on, "gso_zc", &text), "UDP_SEGMENT"));
        let bad = good.replacen("ret=1000", "ret=-1", 1);
        assert!(fails_with(&outcome_of(on, "gso_zc", &bad), "want 1000"));
    }
}

#[test]
fn an_unsegmented_send_is_unsupported_only_where_stock_qemu_swaps() {
    let whole = vec![pattern(GSO_SEED, PAYLOAD)];
    // Big-endian guests on the little-endian host: the u16 arrives swapped.
    for arch in [Arch::Mips, Arch::Sparc64, Arch::Powerpc, Arch::Hppa] {
        let text = gso_text(arch, GSO_SEGMENT, &[(0, 0)], &whole);
        let o = outcome_of(ctx(arch, true), "gso_zc", &text);
        assert!(
            matches!(o, Outcome::EmulatorUnsupported(_)),
            "{arch:?} {o:?}"
        );
        // The patched qemu-user converts the u16: no excuse there either.
        let patched = Ctx {
            patched: true,
            ..ctx(arch, true)
        };
        for c in [ctx(arch, false), kernel(arch), patched] {
            assert!(fails_with(&outcome_of(c, "gso_zc", &text), "datagrams of"));
        }
        // Even so, one id and every byte.
        let text = gso_text(arch, GSO_SEGMENT, &[(0, 1)], &whole);
        assert!(matches!(
            outcome_of(ctx(arch, true), "gso_zc", &text),
            Outcome::Fail(_)
        ));
        let mut cut = whole.clone();
        cut[0].pop();
        let text = gso_text(arch, GSO_SEGMENT, &[(0, 0)], &cut);
        assert!(matches!(
            outcome_of(ctx(arch, true), "gso_zc", &text),
            Outcome::Fail(_)
        ));
    }
    // Little-endian guests get the u16 right: no excuse.
    for arch in [Arch::Armv7, Arch::Alpha, Arch::Aarch64] {
        let text = gso_text(arch, GSO_SEGMENT, &[(0, 0)], &whole);
        assert!(fails_with(
            &outcome_of(ctx(arch, true), "gso_zc", &text),
            "datagrams of"
        ));
    }
    // A guest that never set SO_ZEROCOPY under stock qemu-user: emu-unsup
    // as every zerocopy case; a refusal for another reason fails.
    let refused = "GUEST target=mips lang=c pid=1\nCASE name=gso_zc\n\
        CALL name=setsockopt_SO_ZEROCOPY ret=-1 errno=99\n\
        END case=gso_zc status=unsupported detail=x\n";
    let o = outcome_of(ctx(Arch::Mips, true), "gso_zc", refused);
    assert!(matches!(o, Outcome::EmulatorUnsupported(_)), "{o:?}");
    let o = outcome_of(ctx(Arch::Mips, false), "gso_zc", refused);
    assert!(matches!(o, Outcome::Fail(_)), "{o:?}");
}
