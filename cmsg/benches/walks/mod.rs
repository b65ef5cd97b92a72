//! The error-queue walk and decode three ways (msgzc, C trusting the
//! buffer, careful C) and the walk alone two ways, shared by the criterion
//! benchmark (`cmsg.rs`) and the paired one (`walk_paired.rs`).

use msgzc_cmsg::sys::NATIVE;
use msgzc_cmsg::{decode_errqueue, ControlBuf, ControlBuilder, ErrqueueItem, MsgFlags, Walker};

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

pub fn msgzc_walk(buf: &[u8], len: usize) -> u64 {
    let mut acc = 0u64;
    for m in Walker::new(NATIVE, buf, len, MsgFlags::ERRQUEUE) {
        let Ok(m) = m else { break };
        if let Ok(ErrqueueItem::Zerocopy(r)) = decode_errqueue(NATIVE, &m) {
            acc += r.count() + u64::from(r.copied);
        }
    }
    acc
}

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
pub fn msgzc_walk_only(buf: &[u8], len: usize) -> u64 {
    let mut acc = 0u64;
    for m in Walker::new(NATIVE, buf, len, MsgFlags::ERRQUEUE) {
        let Ok(m) = m else { break };
        acc += m.data.len() as u64;
    }
    acc
}

/// The walk alone, as [`libc_checked_walk`] does it.
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
