//! The Rust guest's `first_enable` case: placeholder sends racing the
//! socket's first `SO_ZEROCOPY` enable.
//!
//! The patch's copy-back sits behind a static key that the first enable
//! since boot turns on. Had a placeholder been accepted (the socket's
//! `SOCK_ZEROCOPY` seen) while the key was still off, its completions would
//! have been taken off the error queue and never written back: lost. So
//! [`FIRST_THREADS`] threads send on one UDP socket with a fresh
//! placeholder each time while the main thread sets `SO_ZEROCOPY` on it;
//! until then every placeholder is refused with `EINVAL` and nothing is
//! sent. UDP, because its sends read their control messages without the
//! socket lock that `setsockopt` holds (TCP's are serialised with it).
//!
//! Every send that went out has an id; each must come back exactly once,
//! in a placeholder or on the error queue. As PID 1 with no earlier case
//! having set `SO_ZEROCOPY`, the enable is the first since boot
//! (`VALUE name=first_enable v=1`); otherwise the key may long be on and the
//! race is not exercised, which the host judges accordingly.

use super::copyback::{answer, drain_empty, drain_until, Cover};
use super::{call, enable_zc, placeholder, raw, sendmsg_at, udp_pair, End};
use msgzc_cmsg::sys::NATIVE;
use msgzc_cmsg::{ControlBuf, ControlBuilder, ZcRange};
use msgzc_conformance_protocol::PROBE_CAPACITY;
use msgzc_conformance_protocol::{FIRST_REFUSALS, FIRST_SENDS, FIRST_SPIN, FIRST_THREADS, PAYLOAD};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// What the main thread and the senders share.
#[derive(Default)]
struct Race {
    /// Placeholder sends made so far, by all senders.
    attempts: AtomicU32,
    /// Set once `setsockopt(SO_ZEROCOPY)` has returned.
    enabled: AtomicBool,
    /// Set when the enable failed: the senders stop.
    stop: AtomicBool,
}

/// A placeholder send that was not a plain refusal.
struct Sent {
    ret: isize,
    errno: i32,
    /// The buffer after the call (`controllen` bytes of it are shown).
    after: Vec<u8>,
    controllen: usize,
    flags: u32,
    /// The library's reading of it.
    answer: Result<Option<Vec<ZcRange>>, String>,
    /// Started before the main thread saw `setsockopt` return.
    early: bool,
}

/// One sender's record.
#[derive(Default)]
struct Tally {
    refused_before: u32,
    refused_after: u32,
    sent: Vec<Sent>,
}

/// A sender: placeholder sends (`MSG_ZEROCOPY`) until [`FIRST_SENDS`] went
/// out, [`FIRST_REFUSALS`] were refused after the enable, a send failed
/// otherwise, or the main thread says stop.
fn sender(fd: BorrowedFd<'_>, race: &Race) -> Tally {
    let data = [0x42u8; PAYLOAD];
    let einval = NATIVE.family.errno().einval;
    let mut t = Tally::default();
    let mut went = 0;
    while !race.stop.load(Ordering::SeqCst) {
        let after_enable = race.enabled.load(Ordering::SeqCst);
        let mut buf = ControlBuf::<256>::new();
        let mut b = ControlBuilder::new(NATIVE, buf.as_mut_bytes()).expect("aligned");
        b.zc_placeholder(PROBE_CAPACITY).expect("fits");
        let mut c = b.finish();
        let len = c.len();
        let before = c.as_bytes().to_vec();
        // SAFETY: the Control's buffer (256 bytes) is writable for at least
        // `len` bytes and stays borrowed by `c` for the call.
        let (ret, e, controllen, flags) =
            unsafe { sendmsg_at(fd, &data, c.as_mut_ptr(), len, libc::MSG_ZEROCOPY) };
        race.attempts.fetch_add(1, Ordering::SeqCst);
        let refused = ret < 0 && e == einval && (controllen, flags) == (len, 0);
        if refused && c.as_bytes() == before.as_slice() {
            if !after_enable {
                t.refused_before += 1;
                continue;
            }
            t.refused_after += 1;
            if t.refused_after >= FIRST_REFUSALS {
                break;
            }
            continue;
        }
        t.sent.push(Sent {
            ret,
            errno: e,
            after: c.as_bytes().to_vec(),
            controllen: controllen.min(len),
            flags,
            answer: answer(&c, controllen, flags),
            early: !after_enable,
        });
        if ret != PAYLOAD as isize {
            break;
        }
        went += 1;
        if went == FIRST_SENDS {
            break;
        }
    }
    t
}

/// `first_enable`: see the module. `first`: whether this agent is PID 1
/// and has not set `SO_ZEROCOPY` before.
pub(super) fn first_enable(first: bool) -> End {
    let (tx, _rx) = match udp_pair(false) {
        Ok(p) => p,
        Err(e) => return End::Fail(format!("udp pair: {e}")),
    };
    let fd = tx.as_fd();
    println!("VALUE name=first_enable v={}", u8::from(first));
    if !first {
        println!("NOTE first_enable=no: not PID 1, or SO_ZEROCOPY set earlier in this run");
    }
    // The placeholder each sender builds, for the host to check.
    placeholder(&mut ControlBuf::<256>::new());
    let race = Race::default();
    let (enabled, tallies) = std::thread::scope(|s| {
        let senders: Vec<_> = (0..FIRST_THREADS)
            .map(|_| s.spawn(|| sender(fd, &race)))
            .collect();
        // Enable while they send: after each has had a few refusals.
        let deadline = Instant::now() + Duration::from_secs(10);
        while race.attempts.load(Ordering::SeqCst) < FIRST_THREADS * FIRST_SPIN
            && !senders.iter().all(|h| h.is_finished())
            && Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        let enabled = enable_zc(fd);
        race.enabled.store(true, Ordering::SeqCst);
        race.stop.store(enabled.is_err(), Ordering::SeqCst);
        let tallies: Vec<Option<Tally>> = senders.into_iter().map(|h| h.join().ok()).collect();
        (enabled, tallies)
    });
    if let Err(end) = enabled {
        return end;
    }
    let Some(tallies) = tallies.into_iter().collect::<Option<Vec<Tally>>>() else {
        return End::Fail("a sender thread panicked".into());
    };
    account(fd, &tallies)
}

/// Prints what the senders saw and requires every id exactly once.
fn account(fd: BorrowedFd<'_>, tallies: &[Tally]) -> End {
    let before: u32 = tallies.iter().map(|t| t.refused_before).sum();
    let after: u32 = tallies.iter().map(|t| t.refused_after).sum();
    let sent = || tallies.iter().flat_map(|t| &t.sent);
    let early = sent().filter(|s| s.early && s.ret >= 0).count();
    println!("VALUE name=refused_before v={before}");
    println!("VALUE name=refused_after v={after}");
    println!("VALUE name=sent_early v={early}");
    let mut wrong = Vec::new();
    let (mut went, mut written, mut unwritten) = (0, 0, 0);
    let mut inline = Vec::new();
    for s in sent() {
        call("sendmsg_first", s.ret, s.errno);
        raw("after", &s.after, s.controllen, s.flags);
        if s.ret != PAYLOAD as isize {
            wrong.push(format!(
                "a placeholder send returned {}, errno {}",
                s.ret, s.errno
            ));
            continue;
        }
        went += 1;
        match &s.answer {
            Ok(Some(done)) => {
                written += 1;
                inline.extend(done.iter().copied());
            }
            Ok(None) => unwritten += 1,
            Err(e) => wrong.push(e.clone()),
        }
    }
    if written > 0 && (unwritten > 0 || after > 0) {
        wrong.push(format!(
            "{written} placeholders answered, yet {unwritten} of sends that went out came back \
             unwritten and {after} were refused after the enable"
        ));
    }
    let mut cover = Cover::new(went);
    let n_inline: u64 = inline.iter().map(|r| r.count()).sum();
    inline.into_iter().for_each(|r| cover.add(r));
    if went > 0 {
        drain_until(fd, &mut cover, &mut wrong);
    }
    drain_empty(fd, &mut cover, &mut wrong);
    cover.check(&mut wrong);
    if wrong.is_empty() {
        End::Ok(format!(
            "{went} sends, {n_inline} ids inline, every id once; {before} refusals before \
             the enable, {after} after"
        ))
    } else {
        End::Fail(wrong.join("; "))
    }
}
