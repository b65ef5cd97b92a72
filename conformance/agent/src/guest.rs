//! The Rust guest agent: performs each case with real system calls on the
//! target it was compiled for and prints one line per step. The host
//! judges; nothing here decides a case on its own.
//!
//! It assumes nothing about its environment: it brings `lo` up itself,
//! and as PID 1 on a bare kernel (the system tier) it
//! also mounts `/proc`, quiets the kernel's console messages so they do
//! not split its lines, prints `NOTE kernel=RELEASE machine=MACHINE` and
//! at the end powers the machine off (`sync`, `reboot(RB_POWER_OFF)`), which
//! makes QEMU exit.
//!
//! # Protocol
//!
//! Shared with the C guest (`guest-c/guest.c`). One line per step,
//! `KIND key=value ...`, values without spaces; numbers are decimal and
//! errno values are the target's own.
//!
//! ```text
//! GUEST target=NAME lang=rust|c pid=N
//! CASE name=CASE
//! FACTS view=msgzc|libc|headers json={...}     numbers as the guest sees them
//! CALL name=WHAT ret=N errno=E                 a system call's result
//! RAW dir=send|after|recv controllen=N flags=N hex=HEX msgs=.. ranges=.. items=.. trunc=0|1
//! VALUE name=NAME v=N                          a value the guest read
//! PROBE outcome=rejected|unwritten|written|corrupt [n=N]   probe, inline_*:
//!                                              the first placeholder
//! MODE NOTIFY-MODE                             hybrid, sendmmsg_zc: how
//!                                              completions came
//! DATA sock=NAME len=N hex=HEX                 sendmmsg_zc, gso_zc: a
//!                                              datagram received
//! INLINE n=N                                   hybrid: tokens released inline;
//!                                              inline_*: ids completed inline
//! INLINE id=N copied=0|1                       sendmmsg_zc (Rust): an id the
//!                                              library released inline
//! NOTE ...
//! END case=CASE status=ok|unsupported|skip|fail detail=WORDS
//! DONE
//! ```
//!
//! `RAW dir=send` is a buffer as passed to `sendmsg`, `dir=after` the same
//! buffer after `sendmsg` returned (with the `msg_controllen` and
//! `msg_flags` the kernel left), `dir=recv` a received one; the last four
//! fields are the guest's own decoding (see [`crate::view`]). In `probe`
//! and `inline_*` every `CALL name=sendmsg_placeholder` is followed by its
//! `RAW dir=after`, also when the call failed (the proposal copies the
//! placeholder back even then).

mod batch;
mod copyback;
mod first_enable;

use crate::pid1;
use crate::view;
use msgzc_abi::proposal::v8;
use msgzc_abi::{Arch, IP_RECVERR, SOL_IP};
use msgzc_cmsg::sys::{self, NewErrorKind, Released, SendErrorKind, ZcSocket, NATIVE};
use msgzc_cmsg::{CompletionTracker, ControlBuf, ControlBuilder, ZcRange, ZC_POISON};
use msgzc_conformance_protocol::{
    hex, jobj, jstr, table_row, word, Case, Record, Status, UnknownCase, BAD_PLACEHOLDERS, PAYLOAD,
    PROBE_CAPACITY, SENDS,
};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Whether this agent has set `SO_ZEROCOPY` on any socket yet: as PID 1,
/// the first enable it makes is the first since boot (`first_enable`).
static ZC_ENABLED: AtomicBool = AtomicBool::new(false);

enum End {
    Ok(String),
    Unsupported(String),
    Skip(String),
    Fail(String),
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn call(name: &str, ret: isize, errno: i32) {
    let e = if ret < 0 { errno } else { 0 };
    println!("CALL name={name} ret={ret} errno={e}");
}

fn raw(dir: &str, bytes: &[u8], controllen: usize, flags: u32) -> view::View {
    let v = view::decode(NATIVE, bytes, controllen, flags);
    let shown = &bytes[..controllen.min(bytes.len())];
    print!(
        "RAW dir={dir} controllen={controllen} flags={flags} hex={} {}",
        hex(shown),
        v.fields()
    );
    match &v.error {
        Some(e) => println!(" error={}", word(e)),
        None => println!(),
    }
    v
}

/// The cases `args` name, in order; all guest cases when none does.
///
/// Words with `=` are kernel parameters, never cases: as PID 1 the agent
/// gets whatever the kernel passes on (hppa's firmware appends
/// `earlycon=pdc` after the `--` that starts the agent's arguments).
/// Returns the cases and the parameters skipped.
pub fn select(args: &[String]) -> Result<(Vec<Case>, Vec<&str>), UnknownCase> {
    let (params, names): (Vec<&str>, Vec<&str>) = args
        .iter()
        .map(String::as_str)
        .partition(|a| a.contains('='));
    let cases = if names.is_empty() {
        Case::guest_cases().collect()
    } else {
        names
            .into_iter()
            .map(str::parse)
            .collect::<Result<Vec<Case>, _>>()?
    };
    Ok((cases, params))
}

/// Runs the named cases (all when `args` names none). An unknown case
/// name, or `abi_facts` (the host's), ends the agent before any case with
/// exit status 2.
pub fn main(args: &[String]) -> ExitCode {
    let init = std::process::id() == 1;
    let cases = match select(args) {
        Ok((cases, _)) if cases.contains(&Case::AbiFacts) => {
            Err("abi_facts is run by the host (a C program), not by the agent".to_string())
        }
        Ok((cases, params)) => Ok((cases, params)),
        Err(e) => Err(e.to_string()),
    };
    let (cases, params) = match cases {
        Ok(c) => c,
        Err(why) => {
            eprintln!("guest: {why}");
            if init {
                // As PID 1 the console is all there is: say it there too.
                println!(
                    "{}",
                    Record::Note {
                        key: "error",
                        value: &why
                    }
                );
                pid1::power_off();
            }
            return ExitCode::from(2);
        }
    };
    let arch = Arch::native().expect("msgzc-cmsg's sys layer only builds for named targets");
    if init {
        pid1::setup();
    }
    if let Err(e) = sys::loopback_up() {
        println!("NOTE loopback_up={}", word(&e.to_string()));
    }
    let pid = std::process::id();
    println!(
        "{}",
        Record::Guest {
            target: arch.name(),
            lang: "rust",
            pid
        }
    );
    for p in params {
        println!(
            "{}",
            Record::Note {
                key: "ignored",
                value: p
            }
        );
    }
    for case in cases {
        println!("{}", Record::Case(case));
        let (status, detail) = match run(case, arch, init) {
            End::Ok(d) => (Status::Ok, d),
            End::Unsupported(d) => (Status::Unsupported, d),
            End::Skip(d) => (Status::Skip, d),
            End::Fail(d) => (Status::Fail, d),
        };
        println!(
            "{}",
            Record::End {
                case,
                status,
                detail: &detail
            }
        );
    }
    println!("{}", Record::Done);
    if init {
        pid1::power_off();
    }
    ExitCode::SUCCESS
}

/// One case, by an exhaustive match: a new [`Case`] must be given here.
fn run(case: Case, arch: Arch, init: bool) -> End {
    match case {
        Case::AbiFacts => End::Fail("abi_facts is the host's".into()),
        Case::NativeFacts => native_facts(arch),
        Case::FirstEnable => first_enable::first_enable(init && !ZC_ENABLED.load(Ordering::SeqCst)),
        Case::ZcTcp4 => zc_stream(false),
        Case::ZcTcp6 => zc_stream(true),
        Case::ZcUdp4 => zc_dgram(false),
        Case::ZcUdp6 => zc_dgram(true),
        Case::Probe => probe(),
        Case::Hybrid => hybrid(),
        Case::InlineTcp4 => inline_case(true, false),
        Case::InlineTcp6 => inline_case(true, true),
        Case::InlineUdp4 => inline_case(false, false),
        Case::InlineUdp6 => inline_case(false, true),
        Case::BadPlaceholder => bad_placeholder(),
        Case::FailedSend => copyback::failed_send(),
        Case::Restart => copyback::restart(),
        Case::MixedCmsgs => copyback::mixed_cmsgs(),
        Case::SendmmsgEor => copyback::sendmmsg_eor(),
        Case::ReadonlyControl => copyback::readonly_control(),
        Case::SendmmsgZc => batch::sendmmsg_zc(),
        Case::GsoZc => batch::gso_zc(),
        Case::CmsgRoundtrip => roundtrip(),
        Case::Ctrunc => icmp_case(true),
        Case::Icmp => icmp_case(false),
        Case::Enobufs => enobufs(),
    }
}

/// The numbers as this guest sees them: msgzc-abi's tables for the target
/// it was compiled for, and the `libc` crate's for the same target (the
/// host reports every difference as a finding).
fn native_facts(arch: Arch) -> End {
    let mut ours = table_row(arch);
    for (k, v) in msgzc_conformance_protocol::extra_row(arch) {
        ours.push((k, v.to_string()));
    }
    println!("FACTS view=msgzc json={}", jobj(&ours));
    println!("FACTS view=libc json={}", jobj(&libc_row(arch)));
    End::Ok("msgzc-abi and libc views printed".into())
}

/// The `libc` crate's values under the table's keys; `null` where the
/// crate has no such item.
fn libc_row(arch: Arch) -> Vec<(&'static str, String)> {
    let n = |v: i64| v.to_string();
    // SAFETY: the CMSG_* size macros are pure arithmetic (the crate marks
    // them unsafe because they are `f!` items).
    let (len0, space1, space16) =
        unsafe { (libc::CMSG_LEN(0), libc::CMSG_SPACE(1), libc::CMSG_SPACE(16)) };
    let null = || "null".to_string();
    vec![
        ("target", jstr(arch.name())),
        ("big_endian", cfg!(target_endian = "big").to_string()),
        ("long_bytes", n(core::mem::size_of::<libc::c_long>() as i64)),
        (
            "cmsghdr_size",
            n(core::mem::size_of::<libc::cmsghdr>() as i64),
        ),
        (
            "cmsghdr_align",
            n(core::mem::align_of::<libc::cmsghdr>() as i64),
        ),
        ("CMSG_LEN_0", n(len0.into())),
        ("CMSG_SPACE_1", n(space1.into())),
        ("CMSG_SPACE_16", n(space16.into())),
        ("SOL_SOCKET", n(libc::SOL_SOCKET.into())),
        ("SO_TYPE", n(libc::SO_TYPE.into())),
        ("SOCK_STREAM", n(libc::SOCK_STREAM.into())),
        ("SOCK_DGRAM", n(libc::SOCK_DGRAM.into())),
        ("SO_ZEROCOPY", n(libc::SO_ZEROCOPY.into())),
        // The crate exports only SO_TIMESTAMPING (OLD unless built for
        // 64-bit time on a 32-bit target).
        ("SO_TIMESTAMPING_OLD", n(libc::SO_TIMESTAMPING.into())),
        ("MSG_ZEROCOPY", n(libc::MSG_ZEROCOPY.into())),
        ("MSG_ERRQUEUE", n(libc::MSG_ERRQUEUE.into())),
        ("MSG_CTRUNC", n(libc::MSG_CTRUNC.into())),
        ("MSG_DONTWAIT", n(libc::MSG_DONTWAIT.into())),
        ("MSG_TRUNC", n(libc::MSG_TRUNC.into())),
        ("SOL_IP", n(libc::SOL_IP.into())),
        ("SOL_IPV6", n(libc::SOL_IPV6.into())),
        ("IP_RECVERR", n(libc::IP_RECVERR.into())),
        ("IPV6_RECVERR", n(libc::IPV6_RECVERR.into())),
        ("SO_EE_ORIGIN_NONE", n(libc::SO_EE_ORIGIN_NONE.into())),
        ("SO_EE_ORIGIN_LOCAL", n(libc::SO_EE_ORIGIN_LOCAL.into())),
        ("SO_EE_ORIGIN_ICMP", n(libc::SO_EE_ORIGIN_ICMP.into())),
        ("SO_EE_ORIGIN_ICMP6", n(libc::SO_EE_ORIGIN_ICMP6.into())),
        (
            "SO_EE_ORIGIN_TXSTATUS",
            n(libc::SO_EE_ORIGIN_TXSTATUS.into()),
        ),
        ("SO_EE_ORIGIN_ZEROCOPY", null()),
        ("SO_EE_ORIGIN_TXTIME", null()),
        ("SO_EE_CODE_ZEROCOPY_COPIED", null()),
        ("ENOBUFS", n(libc::ENOBUFS.into())),
        ("EINVAL", n(libc::EINVAL.into())),
        ("EAGAIN", n(libc::EAGAIN.into())),
        ("ENOPROTOOPT", n(libc::ENOPROTOOPT.into())),
        (
            "sock_extended_err_size",
            n(core::mem::size_of::<libc::sock_extended_err>() as i64),
        ),
        ("SOF_TIMESTAMPING_TX_RECORD_MASK", null()),
        ("AF_UNSPEC", n(libc::AF_UNSPEC.into())),
        ("AF_INET", n(libc::AF_INET.into())),
        ("AF_INET6", n(libc::AF_INET6.into())),
        (
            "sockaddr_in_size",
            n(core::mem::size_of::<libc::sockaddr_in>() as i64),
        ),
        (
            "sockaddr_in6_size",
            n(core::mem::size_of::<libc::sockaddr_in6>() as i64),
        ),
        (
            "sin6_scope_id_offset",
            n(core::mem::offset_of!(libc::sockaddr_in6, sin6_scope_id) as i64),
        ),
        ("ECONNREFUSED", n(libc::ECONNREFUSED.into())),
        ("SCM_RIGHTS", n(libc::SCM_RIGHTS.into())),
        ("IP_TTL", n(libc::IP_TTL.into())),
        ("IP_RECVTTL", n(libc::IP_RECVTTL.into())),
    ]
}

fn addr(v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
    } else {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    }
}

/// `ZcSocket::new` (which sets `SO_ZEROCOPY`), reporting the call.
fn zc_socket<F: AsFd>(sock: F, window: usize) -> Result<ZcSocket<F, u32>, End> {
    match ZcSocket::with_window(sock, window) {
        Ok(z) => {
            ZC_ENABLED.store(true, Ordering::SeqCst);
            call("setsockopt_SO_ZEROCOPY", 0, 0);
            Ok(z)
        }
        Err(e) => {
            let errno = match e.kind {
                NewErrorKind::Sys(s) => s.errno,
                _ => -1,
            };
            call("setsockopt_SO_ZEROCOPY", -1, errno);
            let d = format!("SO_ZEROCOPY: {e}");
            Err(if errno == NATIVE.family.errno().enoprotoopt {
                End::Unsupported(d)
            } else {
                End::Fail(d)
            })
        }
    }
}

/// One non-blocking error-queue read. A one-byte data iovec is passed:
/// qemu-user (7.2) returns 0 without calling the kernel for a `recvmsg`
/// with no iovecs.
fn recv_errq(fd: BorrowedFd<'_>, control: &mut [u8]) -> Result<(usize, u32), i32> {
    let mut dummy = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: dummy.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    let flags = libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT;
    // SAFETY: `msg` points to one writable iovec and a writable control
    // buffer of `control.len()` bytes, both alive for the call.
    let ret = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
    if ret < 0 {
        return Err(errno());
    }
    // msg_controllen is size_t in glibc but socklen_t in musl.
    #[allow(clippy::unnecessary_cast)]
    Ok((msg.msg_controllen as usize, msg.msg_flags as u32))
}

fn poll_err(fd: BorrowedFd<'_>, ms: i32) {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, writable for the call.
    unsafe { libc::poll(&mut p, 1, ms) };
}

/// Reads the error queue until every send is released or 5 s pass,
/// printing each raw buffer and applying its ranges to the tracker.
fn drain<F: AsFd>(zc: &mut ZcSocket<F, u32>, released: &mut Vec<u32>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while zc.tracker().outstanding() > 0 {
        if Instant::now() > deadline {
            return Err(format!(
                "timeout with {} outstanding",
                zc.tracker().outstanding()
            ));
        }
        let mut control = ControlBuf::<256>::new();
        let (len, flags) = match recv_errq(zc.get_ref().as_fd(), control.as_mut_bytes()) {
            Ok(r) => r,
            Err(e) if e == NATIVE.family.errno().eagain => {
                poll_err(zc.get_ref().as_fd(), 50);
                continue;
            }
            Err(e) => {
                call("recvmsg_errqueue", -1, e);
                return Err(format!("recvmsg: errno {e}"));
            }
        };
        let v = raw("recv", control.as_bytes(), len, flags);
        for r in v.ranges {
            zc.apply(r, &mut |x: Released<u32>| released.push(x.token))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// [`drain`] for sends tracked by hand: reads the error queue until
/// nothing is outstanding or 5 s pass.
fn drain_tracker<const N: usize>(
    fd: BorrowedFd<'_>,
    tracker: &mut CompletionTracker<u32, N>,
    released: &mut Vec<u32>,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while tracker.outstanding() > 0 {
        if Instant::now() > deadline {
            return Err(format!(
                "timeout with {} outstanding",
                tracker.outstanding()
            ));
        }
        let mut control = ControlBuf::<256>::new();
        let (len, flags) = match recv_errq(fd, control.as_mut_bytes()) {
            Ok(r) => r,
            Err(e) if e == NATIVE.family.errno().eagain => {
                poll_err(fd, 50);
                continue;
            }
            Err(e) => {
                call("recvmsg_errqueue", -1, e);
                return Err(format!("recvmsg: errno {e}"));
            }
        };
        let v = raw("recv", control.as_bytes(), len, flags);
        for r in v.ranges {
            tracker
                .complete(r, |_, t, _| released.push(t))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn finish(released: &mut [u32]) -> End {
    released.sort_unstable();
    let want: Vec<u32> = (0..SENDS).collect();
    if released == want.as_slice() {
        End::Ok(format!("{SENDS} sends released once each"))
    } else {
        End::Fail(format!("released {released:?}"))
    }
}

fn no_loopback(v6: bool, e: std::io::Error) -> End {
    let fam = if v6 { "IPv6" } else { "IPv4" };
    End::Skip(format!("no {fam} loopback: {e}"))
}

fn zc_stream(v6: bool) -> End {
    let l = match TcpListener::bind(addr(v6)) {
        Ok(l) => l,
        Err(e) => return no_loopback(v6, e),
    };
    let c = match TcpStream::connect(l.local_addr().unwrap()) {
        Ok(c) => c,
        Err(e) => return End::Fail(format!("connect: {e}")),
    };
    let (mut s, _) = l.accept().unwrap();
    let reader =
        std::thread::spawn(move || std::io::copy(&mut s, &mut std::io::sink()).unwrap_or(0));
    let end = zc_sends(c.try_clone().unwrap());
    let _ = c.shutdown(std::net::Shutdown::Both);
    drop(c);
    let _ = reader.join();
    end
}

fn udp_pair(v6: bool) -> Result<(UdpSocket, UdpSocket), std::io::Error> {
    let rx = UdpSocket::bind(addr(v6))?;
    let tx = UdpSocket::bind(addr(v6))?;
    tx.connect(rx.local_addr()?)?;
    Ok((tx, rx))
}

fn zc_dgram(v6: bool) -> End {
    match udp_pair(v6) {
        Ok((tx, _rx)) => zc_sends(tx),
        Err(e) => no_loopback(v6, e),
    }
}

fn zc_sends<F: AsFd>(sock: F) -> End {
    let mut zc = match zc_socket(sock, 64) {
        Ok(z) => z,
        Err(end) => return end,
    };
    let data = [0x42u8; PAYLOAD];
    for token in 0..SENDS {
        if let Err(e) = zc.send(&data, token) {
            call("send_MSG_ZEROCOPY", -1, e.errno().unwrap_or(-1));
            return End::Fail(format!("send {token}: {e}"));
        }
    }
    let mut released = Vec::new();
    if let Err(e) = drain(&mut zc, &mut released) {
        return End::Fail(e);
    }
    finish(&mut released)
}

/// A poisoned placeholder of [`PROBE_CAPACITY`] elements, printed.
fn placeholder(buf: &mut ControlBuf<256>) -> usize {
    let mut b = ControlBuilder::new(NATIVE, buf.as_mut_bytes()).expect("aligned");
    b.zc_placeholder(PROBE_CAPACITY).expect("fits");
    let c = b.finish();
    raw("send", c.as_bytes(), c.len(), 0);
    c.len()
}

/// `sendmsg` of `data` with `control[..controllen]`; returns the result
/// and the `(msg_controllen, msg_flags)` the kernel left.
fn sendmsg_ctl(
    fd: BorrowedFd<'_>,
    data: &[u8],
    control: &mut [u8],
    controllen: usize,
    flags: i32,
) -> (isize, i32, usize, u32) {
    assert!(controllen <= control.len());
    // SAFETY: `control` is writable for `controllen` bytes for the call.
    unsafe { sendmsg_at(fd, data, control.as_mut_ptr(), controllen, flags) }
}

/// [`sendmsg_ctl`] with a control buffer given by pointer (a library
/// [`Control`](msgzc_cmsg::Control), which a kernel with
/// `SCM_ZC_NOTIFICATION` writes back into).
///
/// # Safety
///
/// `control` must be valid for reads and writes of `controllen` bytes for
/// the call.
unsafe fn sendmsg_at(
    fd: BorrowedFd<'_>,
    data: &[u8],
    control: *mut u8,
    controllen: usize,
    flags: i32,
) -> (isize, i32, usize, u32) {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.cast();
    msg.msg_controllen = controllen as _;
    // SAFETY: one iovec over `data` (only read by the kernel) and, by the
    // caller's promise, a control buffer of `controllen` writable bytes;
    // `msg` is passed mutably because the kernel may write it back. All
    // alive for the call.
    let ret = unsafe { libc::sendmsg(fd.as_raw_fd(), core::ptr::addr_of_mut!(msg), flags) };
    let e = errno();
    // msg_controllen is size_t in glibc but socklen_t in musl.
    #[allow(clippy::unnecessary_cast)]
    (
        ret as isize,
        e,
        msg.msg_controllen as usize,
        msg.msg_flags as u32,
    )
}

/// What became of a placeholder: the library's reading of the buffer
/// `sendmsg` left (`None`: unwritten), or why it is corrupt.
type Answer = Result<Option<Vec<ZcRange>>, String>;

/// One `sendmsg` of `data` carrying a fresh poisoned placeholder of
/// [`PROBE_CAPACITY`] elements built by the library: prints the buffer
/// (`RAW dir=send`, when `show`), the call (`CALL name=sendmsg_placeholder`)
/// and, whatever the result (the proposal copies the answer back even when
/// the send fails), the buffer afterwards (`RAW dir=after`).
fn placeholder_send(
    fd: BorrowedFd<'_>,
    data: &[u8],
    flags: i32,
    show: bool,
) -> (isize, i32, Answer) {
    let mut buf = ControlBuf::<256>::new();
    let mut b = ControlBuilder::new(NATIVE, buf.as_mut_bytes()).expect("aligned");
    b.zc_placeholder(PROBE_CAPACITY).expect("fits");
    let mut c = b.finish();
    let len = c.len();
    if show {
        raw("send", c.as_bytes(), len, 0);
    }
    // SAFETY: the Control's buffer (256 bytes) is writable for at least
    // `len` bytes and stays borrowed by `c` for the call.
    let (ret, e, controllen, mflags) = unsafe { sendmsg_at(fd, data, c.as_mut_ptr(), len, flags) };
    call("sendmsg_placeholder", ret, e);
    // The kernel writes back at most the `len` bytes it was given.
    raw("after", c.as_bytes(), controllen.min(len), mflags);
    let answer = copyback::answer(&c, controllen, mflags);
    (ret, e, answer)
}

/// The `PROBE outcome=` word for a placeholder send, printed.
fn probe_line(ret: isize, e: i32, answer: &Answer) -> String {
    let o = match answer {
        Err(_) => "corrupt".to_string(),
        Ok(Some(done)) => format!("written n={}", done.len()),
        Ok(None) if ret < 0 && e == NATIVE.family.errno().einval => "rejected".into(),
        Ok(None) => "unwritten".into(),
    };
    println!("PROBE outcome={o}");
    o
}

/// `send(fd, data, MSG_ZEROCOPY)`, printed as `send_MSG_ZEROCOPY`: what
/// it returned and the errno.
pub(super) fn send_zerocopy(fd: BorrowedFd<'_>, data: &[u8]) -> (isize, i32) {
    // SAFETY: one byte slice, only read by the kernel.
    let r = unsafe {
        libc::send(
            fd.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_ZEROCOPY,
        )
    };
    let e = errno();
    call("send_MSG_ZEROCOPY", r as isize, e);
    (r as isize, e)
}

/// `SO_ZEROCOPY` on `fd`, printed as a call; ENOPROTOOPT (stock
/// qemu-user) ends the case as unsupported.
fn enable_zc(fd: BorrowedFd<'_>) -> Result<(), End> {
    match sys::enable_zerocopy(fd) {
        Ok(()) => {
            ZC_ENABLED.store(true, Ordering::SeqCst);
            call("setsockopt_SO_ZEROCOPY", 0, 0);
            Ok(())
        }
        Err(e) => {
            call("setsockopt_SO_ZEROCOPY", -1, e.errno);
            let d = format!("SO_ZEROCOPY: {e}");
            Err(if e.errno == NATIVE.family.errno().enoprotoopt {
                End::Unsupported(d)
            } else {
                End::Fail(d)
            })
        }
    }
}

/// Fails unless the error queue of `fd` is empty, printing the read.
fn errqueue_empty(fd: BorrowedFd<'_>) -> Result<(), End> {
    poll_err(fd, 100);
    let mut control = ControlBuf::<256>::new();
    match recv_errq(fd, control.as_mut_bytes()) {
        Ok((len, flags)) => {
            call("recvmsg_errqueue", 0, 0);
            raw("recv", control.as_bytes(), len, flags);
            Err(End::Fail("an error-queue item where none was due".into()))
        }
        Err(e) => {
            call("recvmsg_errqueue", -1, e);
            if e == NATIVE.family.errno().eagain {
                Ok(())
            } else {
                Err(End::Fail(format!("error-queue read: errno {e}")))
            }
        }
    }
}

/// The `SCM_ZC_NOTIFICATION` probe: a placeholder on a socket with
/// `SO_ZEROCOPY` (the proposal refuses it otherwise), sent without
/// `MSG_ZEROCOPY`. A kernel with the proposal writes zero completions; one
/// without refuses it or leaves it unwritten. The error queue stays empty.
fn probe() -> End {
    let (tx, _rx) = match udp_pair(false) {
        Ok(p) => p,
        Err(e) => return End::Fail(format!("udp pair: {e}")),
    };
    if let Err(end) = enable_zc(tx.as_fd()) {
        return end;
    }
    let (ret, e, answer) = placeholder_send(tx.as_fd(), &[7u8; 100], 0, true);
    let o = probe_line(ret, e, &answer);
    let outcome = match answer {
        Err(err) => return End::Fail(format!("placeholder came back corrupt: {err}")),
        Ok(Some(done)) if !done.is_empty() => {
            return End::Fail("bogus completions written into the placeholder".into())
        }
        Ok(Some(_)) if ret < 0 => return End::Fail(format!("sendmsg: errno {e}")),
        Ok(Some(_)) => "supported: zero completions written",
        Ok(None) if o == "rejected" => "unsupported: placeholder rejected with EINVAL",
        Ok(None) if ret < 0 => return End::Fail(format!("sendmsg: errno {e}")),
        Ok(None) => "unsupported: placeholder left unwritten",
    };
    match errqueue_empty(tx.as_fd()) {
        Ok(()) => End::Ok(outcome.into()),
        Err(end) => end,
    }
}

/// Both mechanisms through the library: `send_notify` (placeholder, with
/// its fallback) for every send, then the error queue. Before each send
/// after the first it waits (up to 1 s) for the previous completion, so a
/// kernel with the proposal has one to return inline.
fn hybrid() -> End {
    let (tx, _rx) = match udp_pair(false) {
        Ok(p) => p,
        Err(e) => return End::Fail(format!("udp pair: {e}")),
    };
    let mut zc = match zc_socket(tx, 64) {
        Ok(z) => z,
        Err(end) => return end,
    };
    // The placeholder send_notify builds, for the host to check.
    placeholder(&mut ControlBuf::<256>::new());
    let data = [0x42u8; PAYLOAD];
    let mut released = Vec::new();
    let mut inline = 0;
    for token in 0..SENDS {
        if token > 0 {
            let _ = zc.wait(Some(Duration::from_secs(1)));
        }
        match zc.send_notify(&data, token, PROBE_CAPACITY, |r| released.push(r.token)) {
            Ok(s) => {
                inline += s.inline;
                if let Some(r) = s.rejected {
                    return End::Fail(format!("inline completion refused: {r}"));
                }
            }
            Err(e) => {
                call("send_MSG_ZEROCOPY", -1, e.errno().unwrap_or(-1));
                return End::Fail(format!("send {token}: {e}"));
            }
        }
    }
    println!("MODE {:?}", zc.mode());
    println!("INLINE n={inline}");
    if let Err(e) = drain(&mut zc, &mut released) {
        return End::Fail(e);
    }
    finish(&mut released)
}

/// `inline_*`: [`SENDS`] `MSG_ZEROCOPY` sends on an `SO_ZEROCOPY` socket,
/// each carrying a fresh placeholder, each after the first once the
/// previous completion is queued (`POLLERR`, up to 1 s): a kernel with the
/// proposal returns earlier completions inline, and the last one (no send
/// follows it) on the error queue, drained at the end. A kernel without it
/// refuses the first placeholder with `EINVAL` (the sends go on without
/// one, so the error queue is still checked) or leaves every placeholder
/// unwritten.
fn inline_case(tcp: bool, v6: bool) -> End {
    if tcp {
        let l = match TcpListener::bind(addr(v6)) {
            Ok(l) => l,
            Err(e) => return no_loopback(v6, e),
        };
        let c = match TcpStream::connect(l.local_addr().unwrap()) {
            Ok(c) => c,
            Err(e) => return End::Fail(format!("connect: {e}")),
        };
        let (mut s, _) = l.accept().unwrap();
        let reader =
            std::thread::spawn(move || std::io::copy(&mut s, &mut std::io::sink()).unwrap_or(0));
        let end = inline_sends(c.as_fd());
        let _ = c.shutdown(std::net::Shutdown::Both);
        drop(c);
        let _ = reader.join();
        end
    } else {
        match udp_pair(v6) {
            Ok((tx, _rx)) => inline_sends(tx.as_fd()),
            Err(e) => no_loopback(v6, e),
        }
    }
}

fn inline_sends(fd: BorrowedFd<'_>) -> End {
    if let Err(end) = enable_zc(fd) {
        return end;
    }
    let data = [0x42u8; PAYLOAD];
    let mut tracker = CompletionTracker::<u32, 64>::new();
    let mut released = Vec::new();
    let mut inline = 0;
    let mut with_placeholder = true;
    for token in 0..SENDS {
        if token > 0 {
            poll_err(fd, 1000);
        }
        let (mut ret, mut e) = (-1, 0);
        if with_placeholder {
            let (r, err, answer) = placeholder_send(fd, &data, libc::MSG_ZEROCOPY, token == 0);
            (ret, e) = (r, err);
            let o = if token == 0 {
                probe_line(ret, e, &answer)
            } else {
                String::new()
            };
            match answer {
                Err(err) => {
                    return End::Fail(format!("placeholder {token} came back corrupt: {err}"))
                }
                Ok(Some(done)) => {
                    for r in done {
                        inline += r.count();
                        if let Err(err) = tracker.complete(r, |_, t, _| released.push(t)) {
                            return End::Fail(format!("inline completion refused: {err}"));
                        }
                    }
                }
                Ok(None) if o == "rejected" => {
                    // No SCM_ZC_NOTIFICATION: the rest go without it.
                    with_placeholder = false;
                }
                Ok(None) => {}
            }
        }
        if !with_placeholder {
            (ret, e) = send_zerocopy(fd, &data);
        }
        if ret != PAYLOAD as isize {
            return End::Fail(format!("send {token}: returned {ret}, errno {e}"));
        }
        if tracker.register(token).is_err() {
            return End::Fail("tracker full".into());
        }
    }
    println!("INLINE n={inline}");
    if let Err(e) = drain_tracker(fd, &mut tracker, &mut released) {
        return End::Fail(e);
    }
    finish(&mut released)
}

/// `bad_placeholder`: with one completion queued on an `SO_ZEROCOPY`
/// socket, placeholders the proposal refuses with `EINVAL` (capacity 0,
/// capacity `ZC_NOTIFICATION_MAX + 1`, a data length that does not match
/// the capacity, and a well-formed one on a second socket without
/// `SO_ZEROCOPY`), sent without `MSG_ZEROCOPY`; then the completion must
/// still be on the error queue.
fn bad_placeholder() -> End {
    let (tx, _rx) = match udp_pair(false) {
        Ok(p) => p,
        Err(e) => return End::Fail(format!("udp pair: {e}")),
    };
    if let Err(end) = enable_zc(tx.as_fd()) {
        return end;
    }
    let data = [0x42u8; PAYLOAD];
    let (r, _) = send_zerocopy(tx.as_fd(), &data);
    if r != PAYLOAD as isize {
        return End::Fail(format!("send: returned {r}"));
    }
    poll_err(tx.as_fd(), 1000);
    let einval = NATIVE.family.errno().einval;
    let mut wrong = Vec::new();
    for (name, capacity, elems) in BAD_PLACEHOLDERS {
        let mut buf = ControlBuf::<256>::new();
        let len = bad_placeholder_bytes(&mut buf, capacity, elems);
        raw("send", buf.as_bytes(), len, 0);
        let (ret, e, _, _) = sendmsg_ctl(tx.as_fd(), &data[..100], buf.as_mut_bytes(), len, 0);
        call(&format!("sendmsg_{name}"), ret, e);
        if ret >= 0 || e != einval {
            wrong.push(format!("{name}: returned {ret}, errno {e}, want EINVAL"));
        }
    }
    let (tx2, _rx2) = match udp_pair(false) {
        Ok(p) => p,
        Err(e) => return End::Fail(format!("udp pair: {e}")),
    };
    let mut buf = ControlBuf::<256>::new();
    let len = placeholder(&mut buf);
    let (ret, e, _, _) = sendmsg_ctl(tx2.as_fd(), &data[..100], buf.as_mut_bytes(), len, 0);
    call("sendmsg_no_so_zerocopy", ret, e);
    if ret >= 0 || e != einval {
        wrong.push(format!(
            "no_so_zerocopy: returned {ret}, errno {e}, want EINVAL"
        ));
    }
    // The one completion must still be queued: nothing refused took it.
    let mut tracker = CompletionTracker::<u32, 4>::new();
    tracker.register(0).expect("room");
    let mut released = Vec::new();
    if let Err(e) = drain_tracker(tx.as_fd(), &mut tracker, &mut released) {
        wrong.push(format!("the queued completion: {e}"));
    }
    if !wrong.is_empty() {
        return End::Fail(wrong.join("; "));
    }
    End::Ok("every bad placeholder refused with EINVAL, the completion left queued".into())
}

/// A `SCM_ZC_NOTIFICATION` message claiming `capacity` with `elems`
/// poisoned elements, built with the library's generic `push` (its
/// placeholder builder refuses such shapes); returns `msg_controllen`.
fn bad_placeholder_bytes(buf: &mut ControlBuf<256>, capacity: u32, elems: usize) -> usize {
    let mut data = capacity.to_ne_bytes().to_vec();
    data.resize(4 + elems * 12, ZC_POISON);
    let mut b = ControlBuilder::new(NATIVE, buf.as_mut_bytes()).expect("aligned");
    let s = NATIVE.family.socket();
    b.push(s.sol_socket, v8::scm_zc_notification(NATIVE.family), &data)
        .expect("fits");
    b.finish().len()
}

/// Control messages through real `sendmsg`/`recvmsg`: `SCM_RIGHTS` (built
/// with the library) over a Unix socket, and `IP_TTL` received on UDP.
fn roundtrip() -> End {
    let s = NATIVE.family.socket();
    let (a, b) = match (UnixDatagram::pair(), UnixDatagram::pair()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return End::Fail("socketpair".into()),
    };
    // Pass b.0; the receiver checks the descriptor it gets reaches b.1.
    let fd: RawFd = b.0.as_raw_fd();
    let mut sendbuf = ControlBuf::<64>::new();
    let mut builder = ControlBuilder::new(NATIVE, sendbuf.as_mut_bytes()).expect("aligned");
    builder
        .push(s.sol_socket, libc::SCM_RIGHTS, &fd.to_ne_bytes())
        .expect("fits");
    let c = builder.finish();
    let len = c.len();
    raw("send", c.as_bytes(), len, 0);
    let (ret, e, _, _) = sendmsg_ctl(a.0.as_fd(), b"x", sendbuf.as_mut_bytes(), len, 0);
    call("sendmsg_SCM_RIGHTS", ret, e);
    let mut control = ControlBuf::<64>::new();
    let (ret, e, controllen, flags) = recvmsg_ctl(a.1.as_fd(), control.as_mut_bytes());
    call("recvmsg_SCM_RIGHTS", ret, e);
    let mut works = false;
    if ret >= 0 {
        let v = raw("recv", control.as_bytes(), controllen, flags);
        let hdr = NATIVE.cmsg().header_size();
        if v.msgs == [(s.sol_socket, libc::SCM_RIGHTS, 4)] {
            let d = &control.as_bytes()[hdr..hdr + 4];
            let got = i32::from_ne_bytes([d[0], d[1], d[2], d[3]]);
            // SAFETY: the kernel just installed `got` in this process for
            // us; we own it from here on.
            let got = unsafe { OwnedFd::from_raw_fd(got) };
            let passed = UnixDatagram::from(got);
            let mut byte = [0u8; 1];
            works = passed.send(b"k").is_ok() && b.1.recv(&mut byte).is_ok() && byte == *b"k";
        }
    }
    println!("VALUE name=fd_works v={}", u8::from(works));
    // IP_TTL: the kernel reports each received datagram's TTL.
    let (tx, rx) = match udp_pair(false) {
        Ok(p) => p,
        Err(e) => return End::Fail(format!("udp pair: {e}")),
    };
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
    if r != 0 {
        return End::Fail(format!("IP_RECVTTL: errno {}", errno()));
    }
    let _ = tx.send(b"ttl?");
    let (ret, e, controllen, flags) = recvmsg_ctl(rx.as_fd(), control.as_mut_bytes());
    call("recvmsg_IP_TTL", ret, e);
    let mut ttl = -1;
    if ret >= 0 {
        let v = raw("recv", control.as_bytes(), controllen, flags);
        let hdr = NATIVE.cmsg().header_size();
        if v.msgs == [(SOL_IP, libc::IP_TTL, 4)] {
            let d = &control.as_bytes()[hdr..hdr + 4];
            ttl = i32::from_ne_bytes([d[0], d[1], d[2], d[3]]);
        }
    }
    println!("VALUE name=ttl v={ttl}");
    let detail = format!(
        "SCM_RIGHTS fd {}, IP_TTL {ttl}",
        if works { "works" } else { "missing" }
    );
    if works && (1..256).contains(&ttl) {
        End::Ok(detail)
    } else {
        End::Fail(detail)
    }
}

/// A blocking `recvmsg` of one datagram with a control buffer.
fn recvmsg_ctl(fd: BorrowedFd<'_>, control: &mut [u8]) -> (isize, i32, usize, u32) {
    // Cleared before its pointer goes into the header: writing through
    // `control` after taking the pointer would invalidate it.
    control.fill(0);
    let mut data = [0u8; 16];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    // SAFETY: `msg` points to one writable iovec and a writable control
    // buffer, both alive for the call.
    let ret = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, 0) };
    let e = errno();
    // msg_controllen is size_t in glibc but socklen_t in musl.
    #[allow(clippy::unnecessary_cast)]
    (
        ret as isize,
        e,
        msg.msg_controllen as usize,
        msg.msg_flags as u32,
    )
}

/// `icmp`: a UDP datagram to a closed port puts an ICMP port-unreachable
/// error on the sender's error queue (with `IP_RECVERR`); no `SO_ZEROCOPY`
/// needed. `ctrunc`: the same read into a buffer with room for a header
/// and 4 bytes, so the kernel cuts the message and sets `MSG_CTRUNC`.
fn icmp_case(truncate: bool) -> End {
    let closed = UdpSocket::bind(addr(false)).unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let tx = UdpSocket::bind(addr(false)).unwrap();
    tx.connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    if let Err(e) = sys::enable_recverr(tx.as_fd(), false) {
        return End::Fail(e.to_string());
    }
    if let Err(e) = tx.send(&[9u8; 32]) {
        return End::Fail(format!("send: {e}"));
    }
    let cap = if truncate { NATIVE.cmsg().len(4) } else { 256 };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut control = ControlBuf::<256>::new();
    loop {
        match recv_errq(tx.as_fd(), &mut control.as_mut_bytes()[..cap]) {
            Ok((len, flags)) => {
                call("recvmsg_errqueue", 1, 0);
                let v = raw("recv", control.as_bytes(), len, flags);
                return match (truncate, v.trunc) {
                    (true, true) => End::Ok("MSG_CTRUNC seen".into()),
                    (true, false) => End::Fail("no MSG_CTRUNC".into()),
                    (false, _) => {
                        let want = format!("{}:{}", SOL_IP, IP_RECVERR);
                        if v.msgs_field().starts_with(&want) {
                            End::Ok("ICMP error read from the error queue".into())
                        } else {
                            End::Fail(format!("unexpected messages {}", v.msgs_field()))
                        }
                    }
                };
            }
            Err(e) if e == NATIVE.family.errno().eagain && Instant::now() < deadline => {
                poll_err(tx.as_fd(), 50)
            }
            Err(e) => {
                call("recvmsg_errqueue", -1, e);
                return End::Fail("no error-queue item".into());
            }
        }
    }
}

/// `ENOBUFS` from an exhausted optmem budget, in a private network
/// namespace (on a thread of its own, so the other cases keep theirs).
/// As PID 1 the machine is the agent's alone and the case stays in the
/// initial namespace: before Linux 6.9 `net.core.optmem_max` is global and
/// a new namespace has no such file.
fn enobufs() -> End {
    let h = std::thread::spawn(|| {
        if std::process::id() != 1 {
            // SAFETY: unshare affects only this thread, which owns no sockets.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return End::Skip(format!(
                    "unshare(CLONE_NEWNET): {}",
                    std::io::Error::last_os_error()
                ));
            }
            if let Err(e) = sys::loopback_up() {
                return End::Skip(format!("lo in new namespace: {e}"));
            }
        }
        let optmem = "/proc/sys/net/core/optmem_max";
        let Ok(old) = std::fs::read_to_string(optmem) else {
            return End::Skip(format!("{optmem} unreadable"));
        };
        let (tx, _rx) = match udp_pair(false) {
            Ok(p) => p,
            Err(e) => return End::Fail(format!("udp pair: {e}")),
        };
        let mut zc = match zc_socket(tx, 4) {
            Ok(z) => z,
            Err(end) => return end,
        };
        if std::fs::write(optmem, "0").is_err() {
            return End::Skip(format!("{optmem} not writable"));
        }
        let r = zc.send(&[1u8; 128], 7);
        let _ = std::fs::write(optmem, old.trim());
        match r {
            Err(e) => {
                let errno = e.errno().unwrap_or(-1);
                call("send_MSG_ZEROCOPY", -1, errno);
                let doubt = matches!(e.kind, SendErrorKind::InDoubt { id: 0, .. });
                if errno != NATIVE.family.errno().enobufs || !doubt || e.token.is_some() {
                    return End::Fail(format!("expected ENOBUFS in doubt, got {e}"));
                }
                // Nothing else in flight: the next drain settles it as
                // never counted and hands the token back.
                let mut back = Vec::new();
                match zc.drain(|r| back.push((r.token, r.counted)), |_| {}) {
                    Ok(_) if back == [(7, false)] => {
                        End::Ok("ENOBUFS, in doubt, settled: token returned".into())
                    }
                    r => End::Fail(format!("settling the send in doubt: {r:?}, {back:?}")),
                }
            }
            Ok(s) => {
                call("send_MSG_ZEROCOPY", 128, 0);
                End::Fail(format!("expected ENOBUFS, sent: {s:?}"))
            }
        }
    });
    h.join()
        .unwrap_or_else(|_| End::Fail("enobufs thread panicked".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn kernel_parameters_are_no_cases() {
        let a = args("probe earlycon=pdc icmp");
        let (cases, params) = select(&a).unwrap();
        assert_eq!(cases, [Case::Probe, Case::Icmp]);
        assert_eq!(params, ["earlycon=pdc"]);
        // Only a parameter: every guest case, as without arguments.
        let a = args("earlycon=pdc");
        let (cases, _) = select(&a).unwrap();
        assert_eq!(cases, Case::guest_cases().collect::<Vec<_>>());
        assert_eq!(select(&[]).unwrap().0.len(), Case::ALL.len() - 1);
        let e = select(&args("probe nosuchcase")).unwrap_err();
        assert_eq!(e, UnknownCase("nosuchcase".into()));
    }
}
