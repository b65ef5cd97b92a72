//! The `first_enable` judge against transcripts built with the library:
//! what a kernel with the fixed patch prints at the first enable and at a
//! later one, what the first revision's race would print (each variant must
//! fail), and what stock kernels and qemu-user print.

use super::super::host_placeholder;
use super::super::tests::{answered, completion, ctx, fails_with, kernel, outcome_of, raw_line};
use super::*;
use msgzc_abi::Arch;

const ARCHS: [Arch; 4] = [Arch::X86_64, Arch::I686, Arch::Mips, Arch::Sparc64];

/// How the placeholder of one send that went out came back.
#[derive(Clone)]
enum Back {
    /// Answered in place with these completions.
    Written(Vec<(u32, u32)>),
    /// As built: never written back.
    AsSent,
}

/// What the senders saw: refusals before and after the enable, and each
/// send that went out.
struct Run {
    first: bool,
    before: u32,
    after: u32,
    sends: Vec<Back>,
    queued: Vec<(u32, u32)>,
}

/// The fixed patch at the first enable: 16 sends, each answering the one
/// before (two threads interleave, which changes nothing here), the last
/// completion left on the error queue.
fn fixed() -> Run {
    let sends = (0..FIRST_THREADS * FIRST_SENDS)
        .map(|i| Back::Written(if i == 0 { vec![] } else { vec![(i - 1, i - 1)] }))
        .collect();
    Run {
        first: true,
        before: 9,
        after: 0,
        sends,
        queued: vec![(15, 15)],
    }
}

/// A kernel without the proposal: every placeholder refused.
fn stock() -> Run {
    Run {
        first: false,
        before: 40,
        after: 16,
        sends: vec![],
        queued: vec![],
    }
}

fn text(arch: Arch, run: &Run) -> String {
    let t = arch.target();
    let ph = host_placeholder(t);
    let mut out = vec![
        format!("GUEST target={} lang=rust pid=1", arch.name()),
        "CASE name=first_enable".into(),
        format!("VALUE name=first_enable v={}", u8::from(run.first)),
        raw_line(t, "send", &ph, 0),
        "CALL name=setsockopt_SO_ZEROCOPY ret=0 errno=0".into(),
        format!("VALUE name=refused_before v={}", run.before),
        format!("VALUE name=refused_after v={}", run.after),
        "VALUE name=sent_early v=1".into(),
    ];
    for s in &run.sends {
        let after = match s {
            Back::Written(r) => answered(t, r),
            Back::AsSent => ph.clone(),
        };
        out.push("CALL name=sendmsg_first ret=1000 errno=0".into());
        out.push(raw_line(t, "after", &after, 0));
    }
    out.extend(run.queued.iter().map(|&(lo, hi)| completion(t, lo, hi)));
    out.push("CALL name=recvmsg_errqueue ret=-1 errno=11".into());
    out.push("END case=first_enable status=ok detail=x".into());
    out.join("\n") + "\n"
}

fn judged(c: Ctx, run: &Run) -> Outcome {
    outcome_of(c, "first_enable", &text(c.arch, run))
}

#[test]
fn only_the_first_enable_on_a_patched_kernel_passes() {
    for arch in ARCHS {
        assert_eq!(judged(kernel(arch), &fixed()), Outcome::Pass, "{arch:?}");
        // A later enable: the key may have been on; checked, never a pass.
        let later = Run {
            first: false,
            ..fixed()
        };
        let o = judged(kernel(arch), &later);
        assert!(
            matches!(&o, Outcome::Skip(w) if w.contains("not the first enable")),
            "{arch:?}: {o:?}"
        );
        assert!(fails_with(
            &judged(ctx(arch, false), &fixed()),
            "without SCM_ZC_NOTIFICATION wrote"
        ));
    }
}

#[test]
fn a_placeholder_accepted_with_the_copy_back_off_fails() {
    for arch in ARCHS {
        // The first revision: send 3 took id 2 into the kernel's copy and
        // nothing wrote it back.
        let mut lost = fixed();
        lost.sends[3] = Back::AsSent;
        let o = judged(kernel(arch), &lost);
        assert!(fails_with(&o, "static-key race"), "{arch:?}: {o:?}");
        assert!(fails_with(&o, "want [0, 1, 2,"), "{arch:?}: {o:?}");
        // The same at a later enable is no skip.
        let later = Run {
            first: false,
            ..lost
        };
        assert!(fails_with(&judged(kernel(arch), &later), "static-key race"));
        // Accepted in the window with nothing to take: nothing lost, but
        // the copy-back was off all the same.
        let mut empty = fixed();
        empty.sends[0] = Back::AsSent;
        let o = judged(kernel(arch), &empty);
        assert!(fails_with(&o, "1 of 16 placeholders"), "{o:?}");
        assert!(fails_with(&o, "none lost"), "{o:?}");
    }
}

#[test]
fn every_id_must_come_back_exactly_once() {
    let x = Arch::X86_64;
    let lost = Run {
        queued: vec![],
        ..fixed()
    };
    assert!(fails_with(&judged(kernel(x), &lost), "want [0, 1,"));
    let twice = Run {
        queued: vec![(14, 15)],
        ..fixed()
    };
    assert!(fails_with(&judged(kernel(x), &twice), "completed 2 times"));
    let later = Run {
        first: false,
        ..twice
    };
    assert!(fails_with(&judged(kernel(x), &later), "completed 2 times"));
}

#[test]
fn the_senders_must_straddle_the_enable_and_never_be_refused_after_it() {
    let x = Arch::X86_64;
    let refused = Run {
        after: 1,
        ..fixed()
    };
    assert!(fails_with(&judged(kernel(x), &refused), "refused after"));
    let late = Run {
        before: 0,
        ..fixed()
    };
    assert!(fails_with(&judged(kernel(x), &late), "did not overlap"));
    let mut short = fixed();
    short.sends.pop();
    short.queued = vec![(14, 14)];
    assert!(fails_with(&judged(kernel(x), &short), "want 16"));
}

#[test]
fn stock_kernels_end_kern_unsup_and_never_pass() {
    for arch in ARCHS {
        for emulated in [false, true] {
            let o = judged(ctx(arch, emulated), &stock());
            assert!(
                matches!(&o, Outcome::KernelUnsupported(w) if w.contains("refused with EINVAL")),
                "{arch:?}: {o:?}"
            );
        }
        assert!(fails_with(&judged(kernel(arch), &stock()), "want 16"));
        // The senders stopped at the enable: nothing was tried after it.
        let stopped = Run {
            after: 0,
            ..stock()
        };
        let o = judged(ctx(arch, false), &stopped);
        assert!(fails_with(&o, "no placeholder send after"), "{o:?}");
        // Refused, yet something on the error queue: an id never sent.
        let stray = Run {
            queued: vec![(0, 0)],
            ..stock()
        };
        assert!(fails_with(&judged(ctx(arch, false), &stray), "want []"));
        // A kernel that ignores the placeholder (parisc 6.13+ takes 0x404C
        // as SCM_TS_OPT_ID): every completion on the error queue.
        let ignored = Run {
            after: 0,
            sends: vec![Back::AsSent; 16],
            queued: vec![(0, 15)],
            ..stock()
        };
        let o = judged(ctx(arch, false), &ignored);
        assert!(
            matches!(&o, Outcome::KernelUnsupported(w) if w.contains("ignored")),
            "{o:?}"
        );
        assert!(fails_with(&judged(kernel(arch), &ignored), "unwritten"));
    }
}

#[test]
fn stock_qemu_user_refusing_so_zerocopy_is_emu_unsup() {
    let t = Arch::Hppa.target();
    let text = format!(
        "GUEST target=hppa lang=c pid=7
CASE name=first_enable
VALUE name=first_enable v=0
{}
CALL name=setsockopt_SO_ZEROCOPY ret=-1 errno=220
END case=first_enable status=unsupported detail=x
",
        raw_line(t, "send", &host_placeholder(t), 0)
    );
    let o = outcome_of(ctx(Arch::Hppa, true), "first_enable", &text);
    assert!(matches!(o, Outcome::EmulatorUnsupported(_)), "{o:?}");
    let o = outcome_of(ctx(Arch::Hppa, false), "first_enable", &text);
    assert!(fails_with(&o, "unsupported without cause"), "{o:?}");
}
