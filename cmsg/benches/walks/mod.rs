//! The error-queue walk and decode three ways (msgzc, C trusting the
//! buffer, careful C) and the walk alone two ways, shared by the criterion
//! benchmark (`cmsg.rs`) and the paired one (`walk_paired.rs`), and the
//! timing loop both measure them with.
//!
//! At a few nanoseconds a call, where the compiler happens to place a
//! walk's loop moves its time by as much as any change to the walk itself:
//! the same C loop measured 2.7 ns in one build and 4.3 ns in another that
//! differed only in msgzc's code. So [`time_walk`] runs a walk in
//! [`OFFSETS`] copies of its timing loop, each placed at a different
//! offset inside a 64-byte line, and a figure is their average rather
//! than one placement's luck. The walks are `#[inline(always)]` so that
//! each copy holds its own.

use msgzc_cmsg::sys::NATIVE;
use msgzc_cmsg::{decode_errqueue, ControlBuf, ControlBuilder, ErrqueueItem, MsgFlags, Walker};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Copies of the timing loop: the compiler starts a loop on a 16-byte
/// boundary, so copies 16, 32, 48 and 64 bytes of no-ops further in put
/// it at every such boundary of a 64-byte line.
pub const OFFSETS: usize = 4;

/// Defines a copy of the timing loop with `$pad` bytes of no-ops first.
macro_rules! timing_loop_at {
    ($name:ident, $pad:literal) => {
        #[inline(never)]
        fn $name<F: Fn(&mut [u8], usize) -> u64>(
            walk: &F,
            buf: &mut [u8],
            len: usize,
            calls: u64,
        ) -> Duration {
            // Only on x86_64, where the benchmarks are run; elsewhere the
            // copies are alike.
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the template is no-ops only: no register, flag,
            // memory or stack changes.
            unsafe {
                std::arch::asm!(
                    concat!(".nops ", $pad),
                    options(nomem, nostack, preserves_flags)
                )
            };
            timing_loop(walk, buf, len, calls)
        }
    };
}
timing_loop_at!(timing_loop_16, 16);
timing_loop_at!(timing_loop_32, 32);
timing_loop_at!(timing_loop_48, 48);
timing_loop_at!(timing_loop_64, 64);

/// `calls` calls of `walk`; `buf` and `len` are opaque to the compiler, as
/// a caller gets them from each `recvmsg`.
#[inline(always)]
fn timing_loop<F: Fn(&mut [u8], usize) -> u64>(
    walk: &F,
    buf: &mut [u8],
    len: usize,
    calls: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..calls {
        black_box(walk(black_box(&mut *buf), black_box(len)));
    }
    start.elapsed()
}

/// The time of `calls` calls of `walk`, spread evenly over the [`OFFSETS`]
/// copies of the timing loop.
pub fn time_walk<F: Fn(&mut [u8], usize) -> u64>(
    walk: F,
    buf: &mut [u8],
    len: usize,
    calls: u64,
) -> Duration {
    let share =
        |k: usize| calls / OFFSETS as u64 + u64::from(k < (calls % OFFSETS as u64) as usize);
    (0..OFFSETS)
        .map(|k| match k {
            0 => timing_loop_16(&walk, buf, len, share(k)),
            1 => timing_loop_32(&walk, buf, len, share(k)),
            2 => timing_loop_48(&walk, buf, len, share(k)),
            _ => timing_loop_64(&walk, buf, len, share(k)),
        })
        .sum()
}

/// A native-layout error-queue buffer with `n` zerocopy notifications.
pub fn errqueue_buffer(n: usize) -> (ControlBuf<1024>, usize) {
    let mut buf = ControlBuf::<1024>::new();
    let mut b = ControlBuilder::new(NATIVE, buf.as_mut_bytes()).unwrap();
    for i in 0..n as u32 {
        let mut ee = [0u8; 16];
        ee[4] = 5; // SO_EE_ORIGIN_ZEROCOPY
        ee[6] = 1; // copied
        ee[8..12].copy_from_slice(&(i * 10).to_ne_bytes());
        ee[12..16].copy_from_slice(&(i * 10 + 9).to_ne_bytes());
        b.push(0, 11, &ee).unwrap();
    }
    let len = b.finish().len();
    (buf, len)
}

/// The walk and decode as a drain does them. (The buffer is lent
/// mutably only because the C walks need it so, for `msghdr`.)
#[inline(always)]
pub fn msgzc_walk(buf: &mut [u8], len: usize) -> u64 {
    let mut acc = 0u64;
    for m in Walker::new(NATIVE, &*buf, len, MsgFlags::ERRQUEUE) {
        let Ok(m) = m else { break };
        if let Ok(ErrqueueItem::Zerocopy(r)) = decode_errqueue(NATIVE, &m) {
            acc += r.count() + u64::from(r.copied);
        }
    }
    acc
}

#[inline(always)]
pub fn libc_walk(buf: &mut [u8], len: usize) -> u64 {
    // SAFETY: msghdr is plain old data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_control = buf.as_mut_ptr().cast();
    msg.msg_controllen = len as _;
    let mut acc = 0u64;
    // SAFETY: the C idiom: the buffer is aligned and well formed (built
    // above), and CMSG_NXTHDR bounds each step by msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_IP && (*c).cmsg_type == libc::IP_RECVERR {
                let ee =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::sock_extended_err>());
                if ee.ee_errno == 0 && ee.ee_origin == 5 {
                    let count = u64::from(ee.ee_data.wrapping_sub(ee.ee_info)) + 1;
                    acc += count + u64::from(ee.ee_code & 1);
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    acc
}

/// [`libc_walk`] with the checks the safe walker and decoder must make, as
/// a careful C reader adds them: `msg_controllen` within the buffer it was
/// given (the safe API takes both, so it must), each `cmsg_len` at least a
/// header and inside `msg_controllen` (`CMSG_FIRSTHDR` checks neither,
/// `CMSG_NXTHDR` only that the *next* header starts inside), a message long
/// enough for a `sock_extended_err` before reading one, and the IPv6 form
/// of the error message too, which the kernel sends on IPv6 sockets (the
/// kernel's `msg_zerocopy` selftest accepts both).
#[inline(always)]
pub fn libc_checked_walk(buf: &mut [u8], len: usize) -> u64 {
    let mut acc = 0u64;
    // SAFETY: CMSG_LEN is arithmetic.
    let ee_len = unsafe { libc::CMSG_LEN(std::mem::size_of::<libc::sock_extended_err>() as u32) };
    libc_checked_each(buf, len, |c, clen| {
        // SAFETY: `c` is a header inside the buffer whose `cmsg_len`
        // (`clen`) was checked to lie inside it too; the error is read
        // only when that length covers one.
        unsafe {
            let (level, ty) = ((*c).cmsg_level, (*c).cmsg_type);
            let recverr = (level == libc::SOL_IP && ty == libc::IP_RECVERR)
                || (level == libc::SOL_IPV6 && ty == libc::IPV6_RECVERR);
            if recverr && clen >= ee_len as usize {
                let ee =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::sock_extended_err>());
                if ee.ee_errno == 0 && ee.ee_origin == 5 {
                    let count = u64::from(ee.ee_data.wrapping_sub(ee.ee_info)) + 1;
                    acc += count + u64::from(ee.ee_code & 1);
                }
            }
        }
    });
    acc
}

/// The walk alone, as [`msgzc_walk`] does it: the sum of the data lengths.
#[inline(always)]
pub fn msgzc_walk_only(buf: &mut [u8], len: usize) -> u64 {
    let mut acc = 0u64;
    for m in Walker::new(NATIVE, &*buf, len, MsgFlags::ERRQUEUE) {
        let Ok(m) = m else { break };
        acc += m.data.len() as u64;
    }
    acc
}

/// The walk alone, as [`libc_checked_walk`] does it.
#[inline(always)]
pub fn libc_checked_walk_only(buf: &mut [u8], len: usize) -> u64 {
    let mut acc = 0u64;
    // SAFETY: CMSG_LEN is arithmetic.
    let hdr = unsafe { libc::CMSG_LEN(0) } as usize;
    libc_checked_each(buf, len, |_, clen| acc += (clen - hdr) as u64);
    acc
}

/// [`libc_checked_walk`]'s walk: `each` gets every header that passed the
/// checks, with its `cmsg_len`.
#[inline(always)]
fn libc_checked_each(
    buf: &mut [u8],
    len: usize,
    mut each: impl FnMut(*const libc::cmsghdr, usize),
) {
    if len > buf.len() {
        return;
    }
    // SAFETY: msghdr is plain old data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_control = buf.as_mut_ptr().cast();
    msg.msg_controllen = len as _;
    let end = buf.as_ptr() as usize + len;
    // SAFETY: the buffer is aligned; every header CMSG_* returns lies
    // inside msg_controllen, and `each` gets it only when its cmsg_len is
    // at least a header and inside too.
    unsafe {
        let hdr = libc::CMSG_LEN(0) as usize;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let clen = (*c).cmsg_len as usize;
            if clen < hdr || clen > end - c as usize {
                break;
            }
            each(c, clen);
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
}
