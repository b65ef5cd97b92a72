//! The walker against the C library's own iteration on the native layout:
//! the `libc` crate's `CMSG_FIRSTHDR`/`CMSG_NXTHDR` and glibc's exported
//! `__cmsg_nxthdr`, on every buffer where their rules are well-defined.
//!
//! Where they deliberately differ (see `cmsg/src/walk.rs`):
//! - C yields a header whose `cmsg_len` is shorter than the header or runs
//!   past `msg_controllen` as a message (and stops after it); the walker
//!   reports it as an error at that offset instead.
//! - Older glibc also stopped before a message whose *aligned* length
//!   passes the end, i.e. a final message whose padding the kernel's
//!   `put_cmsg` clamped away; the `libc` crate, Debian 12's glibc and the
//!   walker yield it. Either glibc rule is accepted here.
//! - Bytes after the last message too few for a header end C's iteration
//!   silently; the walker reports `TrailingBytes`.
//!
//! Not well-defined in C, so not compared: `msg_controllen` beyond the
//! buffer, and any visited `cmsg_len` larger than `msg_controllen` (C's
//! pointer arithmetic may overflow). MSG_CTRUNC plays no part in C's rules.
#![no_main]

mod input;

use input::Input;
use libfuzzer_sys::fuzz_target;
use msgzc_abi::Target;
use msgzc_cmsg::{ControlBuf, MsgFlags, WalkErrorKind, Walker};

extern "C" {
    /// glibc's out-of-line `CMSG_NXTHDR` (exported since glibc 2.2.5).
    fn __cmsg_nxthdr(mhdr: *mut libc::msghdr, cmsg: *mut libc::cmsghdr) -> *mut libc::cmsghdr;
}

const HDR: usize = core::mem::size_of::<libc::cmsghdr>();

/// `(offset, level, type, data length or None when cmsg_len < header)`.
type Entry = (usize, i32, i32, Option<usize>);

/// Iterates like C, with `next` as `CMSG_NXTHDR`. `None` when a visited
/// header leaves the well-defined domain.
fn c_walk(
    buf: &mut [u8],
    controllen: usize,
    next: impl Fn(*mut libc::msghdr, *mut libc::cmsghdr) -> *mut libc::cmsghdr,
) -> Option<Vec<Entry>> {
    let base = buf.as_mut_ptr();
    let len_at = |off: usize, buf: &[u8]| {
        usize::from_ne_bytes(buf[off..off + 8].try_into().expect("8 bytes"))
    };
    // SAFETY: an all-zero msghdr is valid; only msg_control/msg_controllen
    // are read by the macros.
    let mut mhdr: libc::msghdr = unsafe { core::mem::zeroed() };
    mhdr.msg_control = base.cast();
    mhdr.msg_controllen = controllen;
    // SAFETY: mhdr is a valid msghdr describing `buf[..controllen]`.
    let mut cur = unsafe { libc::CMSG_FIRSTHDR(&mhdr) };
    let mut out = Vec::new();
    while !cur.is_null() {
        let off = cur as usize - base as usize;
        // The macros returned a header that fits: off + HDR <= controllen.
        assert!(off + HDR <= controllen, "C returned a header past the end");
        let len = len_at(off, buf);
        if len > controllen {
            return None;
        }
        let next_off = off + ((len + 7) & !7);
        if len >= HDR && next_off + HDR <= controllen && len_at(next_off, buf) > controllen {
            return None;
        }
        let level = i32::from_ne_bytes(buf[off + 8..off + 12].try_into().expect("4"));
        let ty = i32::from_ne_bytes(buf[off + 12..off + 16].try_into().expect("4"));
        out.push((off, level, ty, len.checked_sub(HDR)));
        if out.len() > controllen / HDR + 1 {
            panic!("C iteration does not terminate");
        }
        cur = next(&mut mhdr, cur);
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let native = Target::native().expect("a named target");
    assert_eq!(
        native.cmsg().header_size(),
        HDR,
        "this target is for 64-bit glibc hosts"
    );
    let mut input = Input::new(data);
    let cut = usize::from(input.u16());
    let bytes = input.rest();
    let mut storage = ControlBuf::<4096>::new();
    let n = bytes.len().min(4096);
    storage.as_mut_bytes()[..n].copy_from_slice(&bytes[..n]);
    // msg_controllen within the buffer (beyond it, C reads out of bounds).
    let controllen = if cut == 0 { n } else { cut % (n + 1) };
    let buf = &mut storage.as_mut_bytes()[..n];

    let mut ours = Vec::new();
    let mut error = None;
    for m in Walker::new(native, buf, controllen, MsgFlags::empty()) {
        match m {
            Ok(m) => ours.push((m.offset, m.level, m.ty, Some(m.data.len()))),
            Err(e) => error = Some(e),
        }
    }
    // SAFETY (both closures): mhdr and cmsg come from c_walk, which only
    // passes headers lying inside buf[..controllen].
    let Some(crate_walk) = c_walk(buf, controllen, |m, c| unsafe { libc::CMSG_NXTHDR(m, c) })
    else {
        return;
    };
    let Some(glibc_walk) = c_walk(buf, controllen, |m, c| unsafe { __cmsg_nxthdr(m, c) }) else {
        return;
    };

    // The libc crate: the walker's messages, then the malformed header the
    // walker stopped at, if any.
    let k = ours.len();
    assert_eq!(
        &crate_walk[..k.min(crate_walk.len())],
        &ours[..k.min(crate_walk.len())]
    );
    match error.map(|e| (e.kind, e.offset)) {
        None | Some((WalkErrorKind::TrailingBytes { .. }, _)) => assert_eq!(crate_walk, ours),
        Some((WalkErrorKind::LenTooShort { .. } | WalkErrorKind::LenPastEnd { .. }, at)) => {
            assert_eq!(
                crate_walk.len(),
                k + 1,
                "libc crate: {crate_walk:?}, walker: {ours:?}"
            );
            assert_eq!(crate_walk[k].0, at);
        }
        Some((kind, _)) => panic!("unexpected walk error {kind:?} on the native layout"),
    }

    // glibc: a prefix of the libc crate's walk, short of the walker's by at
    // most a final message whose padding is cut.
    assert_eq!(
        &crate_walk[..glibc_walk.len().min(crate_walk.len())],
        &glibc_walk[..]
    );
    if glibc_walk.len() < k {
        assert_eq!(
            glibc_walk.len(),
            k - 1,
            "glibc: {glibc_walk:?}, walker: {ours:?}"
        );
        let (off, _, _, data) = ours[k - 1];
        let len = HDR + data.expect("walker messages have data");
        assert!(
            off + ((len + 7) & !7) > controllen,
            "glibc dropped a message with its padding"
        );
    }
});
