//! The Rust guest's copy-back cases: how a kernel with `SCM_ZC_NOTIFICATION`
//! writes the answer back when the call fails, is restarted, shares its
//! buffer with other control messages, is one entry of a `sendmmsg`, or
//! cannot write at all. Raw `libc` calls throughout, so each case controls
//! exactly which `msghdr` the kernel sees and what it may write.
//!
//! Each prints the protocol lines of the guest (see the parent module) and
//! decides nothing the host does not check again.

use super::{
    call, enable_zc, errno, poll_err, raw, recv_errq, recvmsg_ctl, send_zerocopy, sendmsg_at,
    udp_pair, End,
};
use msgzc_abi::proposal::v8;
use msgzc_abi::SOL_IP;
use msgzc_cmsg::sys::NATIVE;
use msgzc_cmsg::{Control, ControlBuf, ControlBuilder, MsgFlags, ZcOutcome, ZcRange, ZC_POISON};
use msgzc_conformance_protocol::{
    BAD_CMSG_TYPE, MIXED_SENDS, MIXED_TTL, MMSG_ENTRIES, MMSG_ROUNDS, PAYLOAD, PROBE_CAPACITY,
    QUEUED_SENDS,
};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often each of the ids `0..n` was completed, and what was wrong.
pub(super) struct Cover {
    seen: Vec<u32>,
    wrong: Vec<String>,
}

impl Cover {
    pub(super) fn new(n: u32) -> Cover {
        Cover {
            seen: vec![0; n as usize],
            wrong: Vec::new(),
        }
    }

    pub(super) fn add(&mut self, r: ZcRange) {
        if !r.copied {
            self.wrong
                .push(format!("{}..={} without the copied bit", r.lo, r.hi));
        }
        for id in r.ids() {
            match self.seen.get_mut(id as usize) {
                Some(n) => *n += 1,
                None => {
                    self.wrong.push(format!("id {id} never sent"));
                    break;
                }
            }
        }
    }

    fn complete(&self) -> bool {
        self.seen.iter().all(|n| *n >= 1)
    }

    /// Every id exactly once, nothing foreign.
    pub(super) fn check(&self, wrong: &mut Vec<String>) {
        wrong.extend(self.wrong.iter().cloned());
        if let Some((id, n)) = self.seen.iter().enumerate().find(|(_, n)| **n != 1) {
            wrong.push(format!("id {id} completed {n} times"));
        }
    }
}

/// What the library makes of the placeholder in `c` after `sendmsg` left
/// `controllen` and `flags`: its completions (`None`: unwritten), or why
/// it is corrupt.
pub(super) fn answer(
    c: &Control<'_>,
    controllen: usize,
    flags: u32,
) -> Result<Option<Vec<ZcRange>>, String> {
    match c.zc_outcome(controllen, MsgFlags::from_bits_retain(flags)) {
        Ok(ZcOutcome::Written(done)) => Ok(Some(done.iter().collect())),
        Ok(ZcOutcome::Unwritten { .. }) | Ok(ZcOutcome::NotRequested) => Ok(None),
        // An outcome a newer msgzc-cmsg reports: neither unwritten nor read.
        Ok(other) => Err(format!("unknown placeholder outcome {other:?}")),
        Err(e) => Err(format!("placeholder came back corrupt: {e}")),
    }
}

/// A connected IPv4 UDP pair with `SO_ZEROCOPY` on the sender and
/// [`QUEUED_SENDS`] completions waiting on its error queue.
fn queued_udp_pair() -> Result<(UdpSocket, UdpSocket), End> {
    let (tx, rx) = udp_pair(false).map_err(|e| End::Fail(format!("udp pair: {e}")))?;
    enable_zc(tx.as_fd())?;
    queue_completions(tx.as_fd(), QUEUED_SENDS)?;
    Ok((tx, rx))
}

/// `n` zerocopy sends of [`PAYLOAD`] bytes on `fd`, each printed; then
/// waits for the completions to be queued (and coalesce).
fn queue_completions(fd: BorrowedFd<'_>, n: u32) -> Result<(), End> {
    let data = [0x42u8; PAYLOAD];
    for i in 0..n {
        let (r, _) = send_zerocopy(fd, &data);
        if r != PAYLOAD as isize {
            return Err(End::Fail(format!("zerocopy send {i}: returned {r}")));
        }
    }
    poll_err(fd, 1000);
    std::thread::sleep(Duration::from_millis(50));
    Ok(())
}

/// Reads the error queue of `fd` until it is empty (nothing within
/// 200 ms), printing each buffer and counting its completions.
pub(super) fn drain_empty(fd: BorrowedFd<'_>, cover: &mut Cover, wrong: &mut Vec<String>) {
    for _ in 0..64 {
        poll_err(fd, 200);
        let mut control = ControlBuf::<256>::new();
        match recv_errq(fd, control.as_mut_bytes()) {
            Ok((n, flags)) => {
                for r in raw("recv", control.as_bytes(), n, flags).ranges {
                    cover.add(r);
                }
            }
            Err(e) => {
                call("recvmsg_errqueue", -1, e);
                if e != NATIVE.family.errno().eagain {
                    wrong.push(format!("error-queue read: errno {e}"));
                }
                return;
            }
        }
    }
}

/// Reads the error queue of `fd` until every id of `cover` was seen or
/// 5 s pass.
pub(super) fn drain_until(fd: BorrowedFd<'_>, cover: &mut Cover, wrong: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cover.complete() && Instant::now() < deadline {
        let mut control = ControlBuf::<256>::new();
        match recv_errq(fd, control.as_mut_bytes()) {
            Ok((n, flags)) => {
                for r in raw("recv", control.as_bytes(), n, flags).ranges {
                    cover.add(r);
                }
            }
            Err(e) if e == NATIVE.family.errno().eagain => poll_err(fd, 50),
            Err(e) => {
                call("recvmsg_errqueue", -1, e);
                wrong.push(format!("error-queue read: errno {e}"));
                return;
            }
        }
    }
}

fn verdict(wrong: Vec<String>, ok: String) -> End {
    if wrong.is_empty() {
        End::Ok(ok)
    } else {
        End::Fail(wrong.join("; "))
    }
}

/// `failed_send`: with [`QUEUED_SENDS`] completions queued on an
/// `SO_ZEROCOPY` socket, one `sendmsg` (no `MSG_ZEROCOPY`) whose control
/// buffer is a fresh poisoned placeholder followed by an unknown
/// `SOL_SOCKET` message ([`BAD_CMSG_TYPE`]), so the send fails with `EINVAL`
/// after the placeholder was processed. A kernel with the proposal hands the
/// completions back in the placeholder anyway; one without refuses the
/// placeholder and leaves them queued. Either way every id must turn up
/// exactly once, in the buffer or on the error queue (read until empty).
pub(super) fn failed_send() -> End {
    let (tx, _rx) = match queued_udp_pair() {
        Ok(p) => p,
        Err(end) => return end,
    };
    let fd = tx.as_fd();
    let mut buf = ControlBuf::<256>::new();
    let mut b = ControlBuilder::new(NATIVE, buf.as_mut_bytes()).expect("aligned");
    b.zc_placeholder(PROBE_CAPACITY).expect("fits");
    b.push(NATIVE.family.socket().sol_socket, BAD_CMSG_TYPE, &[0u8; 4])
        .expect("fits");
    let mut c = b.finish();
    let len = c.len();
    raw("send", c.as_bytes(), len, 0);
    // SAFETY: the Control's buffer (256 bytes) is writable for at least
    // `len` bytes and stays borrowed by `c` for the call.
    let (ret, e, controllen, mflags) =
        unsafe { sendmsg_at(fd, &[0x42u8; 100], c.as_mut_ptr(), len, 0) };
    call("sendmsg_invalid_cmsg", ret, e);
    raw("after", c.as_bytes(), controllen.min(len), mflags);
    let mut cover = Cover::new(QUEUED_SENDS);
    let mut wrong = Vec::new();
    let inline = match answer(&c, controllen, mflags) {
        Ok(done) => done.unwrap_or_default(),
        Err(err) => return End::Fail(err),
    };
    for r in &inline {
        cover.add(*r);
    }
    if ret >= 0 || e != NATIVE.family.errno().einval {
        wrong.push(format!("sendmsg returned {ret}, errno {e}, want EINVAL"));
    }
    drain_empty(fd, &mut cover, &mut wrong);
    cover.check(&mut wrong);
    let n: u64 = inline.iter().map(|r| r.count()).sum();
    verdict(
        wrong,
        format!("EINVAL; {n} of {QUEUED_SENDS} completions in the placeholder, the rest queued"),
    )
}

/// `readonly_control`: with [`QUEUED_SENDS`] completions queued, one
/// `sendmsg` of 100 bytes (no `MSG_ZEROCOPY`) whose placeholder lies in a
/// page made read-only, so the kernel cannot write its answer. The send
/// must still return its byte count, and every completion must then be on
/// the error queue (a kernel without the proposal refuses the placeholder
/// with `EINVAL`, leaving them there too).
pub(super) fn readonly_control() -> End {
    let (tx, _rx) = match queued_udp_pair() {
        Ok(p) => p,
        Err(end) => return end,
    };
    let fd = tx.as_fd();
    let page = match Page::new() {
        Ok(p) => p,
        Err(e) => return End::Fail(format!("mmap: errno {e}")),
    };
    // SAFETY: the mapping is ours, writable and `page.len` bytes long until
    // `protect` below; nothing else refers to it.
    let bytes = unsafe { core::slice::from_raw_parts_mut(page.ptr, page.len) };
    let Ok(mut b) = ControlBuilder::new(NATIVE, bytes) else {
        return End::Fail("page not aligned for control messages".into());
    };
    b.zc_placeholder(PROBE_CAPACITY).expect("fits");
    let c = b.finish();
    let len = c.len();
    raw("send", c.as_bytes(), len, 0);
    let r = page.protect(libc::PROT_READ);
    call("mprotect_readonly", r as isize, errno());
    if r != 0 {
        return End::Fail(format!("mprotect: errno {}", errno()));
    }
    // SAFETY: the page stays mapped (read-only) for the call; the kernel
    // may only read `len` bytes of it, and writing fails with a fault that
    // the kernel handles.
    let (ret, e, controllen, mflags) = unsafe { sendmsg_at(fd, &[0x42u8; 100], page.ptr, len, 0) };
    call("sendmsg_readonly", ret, e);
    raw("after", c.as_bytes(), controllen.min(len), mflags);
    let mut wrong = Vec::new();
    match answer(&c, controllen, mflags) {
        Ok(None) => {}
        Ok(Some(_)) => wrong.push("a read-only placeholder came back written".into()),
        Err(err) => wrong.push(err),
    }
    let einval = NATIVE.family.errno().einval;
    if ret != 100 && !(ret < 0 && e == einval) {
        wrong.push(format!(
            "sendmsg returned {ret}, errno {e}; want 100 (or EINVAL without the proposal)"
        ));
    }
    let mut cover = Cover::new(QUEUED_SENDS);
    drain_empty(fd, &mut cover, &mut wrong);
    cover.check(&mut wrong);
    let what = if ret < 0 { "refused" } else { "sent" };
    verdict(
        wrong,
        format!("{what}; all {QUEUED_SENDS} completions left on the error queue"),
    )
}

/// One anonymous page, unmapped on drop.
struct Page {
    ptr: *mut u8,
    len: usize,
}

impl Page {
    fn new() -> Result<Page, i32> {
        // SAFETY: sysconf reads a constant.
        let len = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        // SAFETY: a fresh private anonymous mapping; no address hint.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(errno());
        }
        Ok(Page { ptr: p.cast(), len })
    }

    fn protect(&self, prot: i32) -> i32 {
        // SAFETY: the whole mapping, which this Page owns.
        unsafe { libc::mprotect(self.ptr.cast(), self.len, prot) }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: the mapping this Page made; nothing borrows it any more.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Re-arms the placeholder of `c` in place for the next call: the count set
/// to the capacity again and the elements poisoned, nothing else of the
/// buffer touched (what an application reusing its `msghdr` does).
fn rearm(c: &mut Control<'_>) {
    let Some(slot) = c.zc_slot() else { return };
    let start = slot.offset + NATIVE.cmsg().header_size();
    let mut data = (slot.capacity as u32).to_ne_bytes().to_vec();
    data.resize(v8::zc_info_size(slot.capacity), ZC_POISON);
    // SAFETY: the builder reserved `zc_info_size(capacity)` bytes of data
    // after the slot's header, inside the Control's buffer.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), c.as_mut_ptr().add(start), data.len()) };
}

/// A `msghdr` over one data buffer and a control buffer, kept across calls
/// the way an application reuses it: the kernel's changes to
/// `msg_controllen` and `msg_flags` stay for the next call.
struct Hdr {
    iov: libc::iovec,
    msg: libc::msghdr,
}

impl Hdr {
    /// # Safety
    ///
    /// `data` and `control[..controllen]` must stay valid (the latter
    /// writable) while the header is used.
    unsafe fn new(data: &[u8], control: *mut u8, controllen: usize) -> Box<Hdr> {
        let mut h = Box::new(Hdr {
            iov: libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            },
            // SAFETY: msghdr is plain old data; all-zero is an empty header.
            msg: unsafe { core::mem::zeroed() },
        });
        h.msg.msg_iov = &mut h.iov;
        h.msg.msg_iovlen = 1;
        h.msg.msg_control = control.cast();
        h.msg.msg_controllen = controllen as _;
        h
    }

    // msg_controllen is size_t in glibc but socklen_t in musl.
    #[allow(clippy::unnecessary_cast)]
    fn controllen(&self) -> usize {
        self.msg.msg_controllen as usize
    }

    fn flags(&self) -> u32 {
        self.msg.msg_flags as u32
    }
}

/// `mixed_cmsgs`: one buffer holding `IP_TTL` ([`MIXED_TTL`]) and then a
/// placeholder, and one `msghdr` over it, reused for [`MIXED_SENDS`]
/// zerocopy UDP sends; between sends only the placeholder is re-armed. After
/// each send the buffer, walked with the `msg_controllen` the kernel left,
/// must still hold both messages, and the receiver (`IP_RECVTTL`) must see
/// the TTL on every datagram. A kernel without the proposal refuses the
/// first send with `EINVAL`.
pub(super) fn mixed_cmsgs() -> End {
    let (tx, rx) = match udp_pair(false) {
        Ok(p) => p,
        Err(e) => return End::Fail(format!("udp pair: {e}")),
    };
    let fd = tx.as_fd();
    if let Err(end) = enable_zc(fd) {
        return end;
    }
    if let Err(e) = recv_ttl_on(&rx) {
        return End::Fail(format!("IP_RECVTTL: errno {e}"));
    }
    let mut buf = ControlBuf::<256>::new();
    let mut b = ControlBuilder::new(NATIVE, buf.as_mut_bytes()).expect("aligned");
    b.push(SOL_IP, libc::IP_TTL, &MIXED_TTL.to_ne_bytes())
        .expect("fits");
    b.zc_placeholder(PROBE_CAPACITY).expect("fits");
    let mut c = b.finish();
    let len = c.len();
    raw("send", c.as_bytes(), len, 0);
    let data = [0x42u8; PAYLOAD];
    // SAFETY: `data` and the Control's buffer outlive `h`.
    let mut h = unsafe { Hdr::new(&data, c.as_mut_ptr(), len) };
    let mut cover = Cover::new(MIXED_SENDS);
    let mut wrong = Vec::new();
    let mut sent = 0;
    for i in 0..MIXED_SENDS {
        if i > 0 {
            poll_err(fd, 1000);
            rearm(&mut c);
        }
        // SAFETY: `h` describes live buffers (above); passed mutably, as
        // the kernel may write the header back.
        let ret = unsafe {
            libc::sendmsg(
                fd.as_raw_fd(),
                core::ptr::addr_of_mut!(h.msg),
                libc::MSG_ZEROCOPY,
            )
        };
        let e = errno();
        call("sendmsg_mixed", ret as isize, e);
        check_both_kept(i, &h, &c, len, &mut wrong);
        let done = match answer(&c, h.controllen(), h.flags()) {
            Ok(d) => d,
            Err(err) => {
                wrong.push(format!("send {i}: {err}"));
                break;
            }
        };
        if ret < 0 && i == 0 && e == NATIVE.family.errno().einval && done.is_none() {
            break; // No SCM_ZC_NOTIFICATION: refused, nothing sent.
        }
        if ret != PAYLOAD as isize {
            wrong.push(format!("send {i}: returned {ret}, errno {e}"));
            break;
        }
        sent += 1;
        for r in done.unwrap_or_default() {
            cover.add(r);
        }
        let ttl = recv_ttl(&rx);
        println!("VALUE name=ttl v={ttl}");
        if ttl != MIXED_TTL {
            wrong.push(format!("datagram {i} arrived with TTL {ttl}"));
        }
    }
    if sent > 0 {
        drain_until(fd, &mut cover, &mut wrong);
        cover.check(&mut wrong);
    }
    verdict(
        wrong,
        format!("{sent} sends, the TTL on each, both messages kept"),
    )
}

/// After `mixed_cmsgs`' send `i`: the kernel left `msg_controllen` and
/// `msg_flags` as given, and the buffer still walks as both messages.
fn check_both_kept(i: u32, h: &Hdr, c: &Control<'_>, len: usize, wrong: &mut Vec<String>) {
    let v = raw("after", c.as_bytes(), h.controllen().min(len), h.flags());
    if (h.controllen(), h.flags()) != (len, 0) || v.msgs.len() != 2 {
        wrong.push(format!(
            "send {i}: msg_controllen {} of {len}, msg_flags {:#x}, messages {}",
            h.controllen(),
            h.flags(),
            v.msgs_field()
        ));
    }
}

fn recv_ttl_on(rx: &UdpSocket) -> Result<(), i32> {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option value alive for the call.
    let r = unsafe {
        libc::setsockopt(
            rx.as_raw_fd(),
            SOL_IP,
            libc::IP_RECVTTL,
            (&one as *const libc::c_int).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// Receives one datagram and prints its control buffer; its `IP_TTL`, or
/// -1.
fn recv_ttl(rx: &UdpSocket) -> i32 {
    let mut control = ControlBuf::<64>::new();
    let (ret, e, controllen, flags) = recvmsg_ctl(rx.as_fd(), control.as_mut_bytes());
    call("recvmsg_IP_TTL", ret, e);
    if ret < 0 {
        return -1;
    }
    let v = raw("recv", control.as_bytes(), controllen, flags);
    let hdr = NATIVE.cmsg().header_size();
    if v.msgs == [(SOL_IP, libc::IP_TTL, 4)] {
        let d = &control.as_bytes()[hdr..hdr + 4];
        i32::from_ne_bytes([d[0], d[1], d[2], d[3]])
    } else {
        -1
    }
}

/// `sendmmsg_eor`: [`MMSG_ROUNDS`] `sendmmsg` calls (`MSG_ZEROCOPY`) of the
/// same array of [`MMSG_ENTRIES`] UDP messages to one address, each with
/// `MSG_EOR` in its `msg_flags` and a placeholder of its own; between calls
/// only the placeholders are re-armed. Each entry's `msg_flags` must still
/// be `MSG_EOR` afterwards. A kernel without the proposal refuses the first
/// entry with `EINVAL`.
pub(super) fn sendmmsg_eor() -> End {
    let (tx, rx) = match (
        UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)),
        UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)),
    ) {
        (Ok(t), Ok(r)) => (t, r),
        _ => return End::Fail("udp sockets".into()),
    };
    let fd = tx.as_fd();
    if let Err(end) = enable_zc(fd) {
        return end;
    }
    let Ok(SocketAddr::V4(to)) = rx.local_addr() else {
        return End::Fail("receiver address".into());
    };
    // SAFETY: sockaddr_in is plain old data.
    let mut name: libc::sockaddr_in = unsafe { core::mem::zeroed() };
    name.sin_family = libc::AF_INET as _;
    name.sin_port = to.port().to_be();
    name.sin_addr.s_addr = u32::from(*to.ip()).to_be();
    let mut bufs: Vec<ControlBuf<256>> = (0..MMSG_ENTRIES).map(|_| ControlBuf::new()).collect();
    let mut controls: Vec<Control<'_>> = bufs
        .iter_mut()
        .map(|buf| {
            let mut b = ControlBuilder::new(NATIVE, buf.as_mut_bytes()).expect("aligned");
            b.zc_placeholder(PROBE_CAPACITY).expect("fits");
            b.finish()
        })
        .collect();
    for c in &controls {
        raw("send", c.as_bytes(), c.len(), 0);
    }
    let data = [0x42u8; PAYLOAD];
    let mut iovs: Vec<libc::iovec> = (0..MMSG_ENTRIES)
        .map(|_| libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain old data; all-zero is an empty entry.
    let mut msgs: Vec<libc::mmsghdr> = (0..MMSG_ENTRIES)
        .map(|_| unsafe { core::mem::zeroed() })
        .collect();
    let name_ptr = core::ptr::addr_of_mut!(name);
    for ((m, iov), c) in msgs.iter_mut().zip(&mut iovs).zip(&mut controls) {
        m.msg_hdr.msg_name = name_ptr.cast();
        m.msg_hdr.msg_namelen = core::mem::size_of::<libc::sockaddr_in>() as _;
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
        m.msg_hdr.msg_control = c.as_mut_ptr().cast();
        m.msg_hdr.msg_controllen = c.len() as _;
        m.msg_hdr.msg_flags = libc::MSG_EOR as _;
    }
    mmsg_rounds(fd, &mut msgs, &mut controls)
}

/// The rounds of [`sendmmsg_eor`] over the prepared array.
fn mmsg_rounds(
    fd: BorrowedFd<'_>,
    msgs: &mut [libc::mmsghdr],
    controls: &mut [Control<'_>],
) -> End {
    let mut cover = Cover::new((MMSG_ENTRIES * MMSG_ROUNDS) as u32);
    let mut wrong = Vec::new();
    let mut sent = 0;
    for round in 0..MMSG_ROUNDS {
        if round > 0 {
            poll_err(fd, 1000);
            controls.iter_mut().for_each(rearm);
        }
        // SAFETY: every entry points to live buffers: the name, one iovec
        // over `data` and its own writable control buffer.
        let ret = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                msgs.len() as _,
                libc::MSG_ZEROCOPY as _,
            )
        };
        let e = errno();
        call("sendmmsg", ret as isize, e);
        let mut refused = ret < 0 && round == 0 && e == NATIVE.family.errno().einval;
        for (i, (m, c)) in msgs.iter().zip(controls.iter()).enumerate() {
            // msg_controllen is size_t in glibc but socklen_t in musl.
            #[allow(clippy::unnecessary_cast)]
            let (controllen, flags) = (
                m.msg_hdr.msg_controllen as usize,
                m.msg_hdr.msg_flags as u32,
            );
            println!("VALUE name=msg_len v={}", m.msg_len);
            println!("VALUE name=msg_flags v={flags}");
            raw("after", c.as_bytes(), controllen.min(c.len()), flags);
            if flags != libc::MSG_EOR as u32 {
                wrong.push(format!(
                    "round {round} entry {i}: msg_flags {flags:#x}, want MSG_EOR"
                ));
            }
            match answer(c, controllen, flags) {
                Ok(Some(done)) => {
                    refused = false;
                    done.into_iter().for_each(|r| cover.add(r));
                }
                Ok(None) => {}
                Err(err) => wrong.push(format!("round {round} entry {i}: {err}")),
            }
        }
        if refused {
            break; // No SCM_ZC_NOTIFICATION: the first entry refused.
        }
        if ret != MMSG_ENTRIES as i32 {
            wrong.push(format!("round {round}: sendmmsg returned {ret}, errno {e}"));
            break;
        }
        sent += MMSG_ENTRIES;
    }
    if sent > 0 {
        drain_until(fd, &mut cover, &mut wrong);
        cover.check(&mut wrong);
    }
    verdict(wrong, format!("{sent} messages sent, MSG_EOR kept"))
}

/// This target's socket-level numbers, from msgzc-abi's table (the libc
/// crate's are mips64's generic ones since 0.2.190).
const SOCKET: msgzc_abi::SocketNumbers = NATIVE.family.socket();

/// Signals the `restart` case's handler has taken.
static SIGNALS: AtomicU32 = AtomicU32::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// The signal `restart` sends itself. SIGALRM is 14 on every Linux
/// architecture, so the libc crate's number is right everywhere (its
/// SIGUSR1 for mips64 is not since 0.2.190: the generic 10, SIGBUS there).
const RESTART_SIGNAL: libc::c_int = libc::SIGALRM;

/// [`RESTART_SIGNAL`] handled by [`count_signal`], restarting interrupted
/// calls: glibc's `signal()` installs BSD semantics (`SA_RESTART`), and
/// avoids the libc crate's `struct sigaction`, whose mips64 layout is wrong
/// since 0.2.190. Returns the previous handler.
fn catch_restart_signal() -> Result<libc::sighandler_t, i32> {
    let handler = count_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler is async-signal-safe (one atomic add).
    let old = unsafe { libc::signal(RESTART_SIGNAL, handler) };
    if old == libc::SIG_ERR {
        return Err(errno());
    }
    Ok(old)
}

/// Sets an `int` socket option.
fn set_int(fd: BorrowedFd<'_>, level: i32, opt: i32, v: i32) -> Result<(), i32> {
    // SAFETY: a valid socket and a c_int option value alive for the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// Non-blocking sends until the send buffer is full, the window closed
/// (the receiver does not read) and acknowledgements done: a round after a
/// pause must not get a byte in. Returns the bytes queued.
fn fill(fd: BorrowedFd<'_>) -> Result<usize, String> {
    let chunk = [0x33u8; 4096];
    let mut total = 0;
    for _ in 0..50 {
        let mut round = 0;
        loop {
            // SAFETY: one byte slice, only read by the kernel.
            let r = unsafe {
                libc::send(
                    fd.as_raw_fd(),
                    chunk.as_ptr().cast(),
                    chunk.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                round += r as usize;
                continue;
            }
            let e = errno();
            if r < 0 && e == NATIVE.family.errno().eagain {
                break;
            }
            return Err(format!("filling: returned {r}, errno {e}"));
        }
        total += round;
        if round == 0 && total > 0 {
            return Ok(total);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("the send buffer never stayed full ({total} bytes)"))
}

/// `restart`: [`QUEUED_SENDS`] completions queued on a TCP socket, its send
/// buffer filled (the receiver reads nothing), then a blocking `sendmsg` of
/// [`PAYLOAD`] bytes with a placeholder. Once it blocks another thread
/// signals this one ([`RESTART_SIGNAL`], handled with `SA_RESTART`), so the call
/// returns `ERESTARTSYS` inside the kernel and is restarted with the same
/// arguments; later that thread drains the receiver and the send completes.
/// The restarted call must not fail, and every completion must show up once,
/// in the placeholder or on the error queue.
pub(super) fn restart() -> End {
    let pair = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| {
        // Inherited by the accepted socket: a small window fills fast.
        let _ = set_int(l.as_fd(), SOCKET.sol_socket, SOCKET.so_rcvbuf, 4096);
        let c = TcpStream::connect(l.local_addr()?)?;
        let (s, _) = l.accept()?;
        Ok((c, s))
    });
    let (c, s) = match pair {
        Ok(p) => p,
        Err(e) => return End::Fail(format!("tcp pair: {e}")),
    };
    let fd = c.as_fd();
    if let Err(end) = enable_zc(fd).and_then(|()| queue_completions(fd, QUEUED_SENDS)) {
        return end;
    }
    // Received, so sent whole and soon acknowledged: every completion
    // queued before the fill, whose data would share their last segment.
    let mut got = vec![0u8; QUEUED_SENDS as usize * PAYLOAD];
    if let Err(e) = (&s).read_exact(&mut got) {
        return End::Fail(format!("receiving the zerocopy sends: {e}"));
    }
    poll_err(fd, 1000);
    std::thread::sleep(Duration::from_millis(100));
    let old = match catch_restart_signal() {
        Ok(o) => o,
        Err(e) => return End::Fail(format!("signal: errno {e}")),
    };
    let (end, helper) = restart_send(fd, s);
    // The helper reads until this end is shut down.
    let _ = c.shutdown(std::net::Shutdown::Both);
    if let Some(h) = helper {
        let _ = h.join();
    }
    // SAFETY: the handler saved above.
    unsafe { libc::signal(RESTART_SIGNAL, old) };
    end
}

/// The blocking send of [`restart`] and what follows; the thread that
/// signals and then drains the receiver, to be joined once the sender is
/// shut down.
fn restart_send(fd: BorrowedFd<'_>, s: TcpStream) -> (End, Option<JoinHandle<u64>>) {
    let _ = set_int(fd, SOCKET.sol_socket, SOCKET.so_sndbuf, 4096);
    match fill(fd) {
        Ok(n) => println!("VALUE name=filled v={n}"),
        Err(e) => return (End::Fail(e), None),
    }
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let (go, ready) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || {
        let mut s = s;
        if ready.recv().is_ok() {
            std::thread::sleep(Duration::from_millis(300));
            // SAFETY: `me` is the live thread blocked in sendmsg below.
            unsafe { libc::pthread_kill(me, RESTART_SIGNAL) };
            std::thread::sleep(Duration::from_millis(300));
        }
        std::io::copy(&mut s, &mut std::io::sink()).unwrap_or(0)
    });
    let mut buf = ControlBuf::<256>::new();
    let mut b = ControlBuilder::new(NATIVE, buf.as_mut_bytes()).expect("aligned");
    b.zc_placeholder(PROBE_CAPACITY).expect("fits");
    let mut c = b.finish();
    let len = c.len();
    raw("send", c.as_bytes(), len, 0);
    let before = SIGNALS.load(Ordering::SeqCst);
    let _ = go.send(());
    // SAFETY: the Control's buffer (256 bytes) is writable for at least
    // `len` bytes and stays borrowed by `c` for the call.
    let (ret, e, controllen, mflags) =
        unsafe { sendmsg_at(fd, &[0x42u8; PAYLOAD], c.as_mut_ptr(), len, 0) };
    let signals = SIGNALS.load(Ordering::SeqCst) - before;
    call("sendmsg_restart", ret, e);
    println!("VALUE name=signals v={signals}");
    raw("after", c.as_bytes(), controllen.min(len), mflags);
    let mut wrong = Vec::new();
    let mut cover = Cover::new(QUEUED_SENDS);
    let refused = ret < 0 && e == NATIVE.family.errno().einval;
    match answer(&c, controllen, mflags) {
        Ok(Some(done)) => done.into_iter().for_each(|r| cover.add(r)),
        Ok(None) if refused => {}
        Ok(None) => wrong.push("placeholder left unwritten by a send that went out".into()),
        Err(err) => wrong.push(err),
    }
    if !refused && (ret != PAYLOAD as isize || signals == 0) {
        wrong.push(format!(
            "sendmsg returned {ret}, errno {e}, after {signals} signals; want {PAYLOAD} after one"
        ));
    }
    drain_empty(fd, &mut cover, &mut wrong);
    cover.check(&mut wrong);
    let what = if refused {
        "refused"
    } else {
        "restarted and sent"
    };
    (
        verdict(wrong, format!("{what}; every completion once")),
        Some(helper),
    )
}
