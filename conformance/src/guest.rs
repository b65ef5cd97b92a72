//! The guest agent: performs each case with real system calls on the
//! target and prints one line per step. Lines are `KIND key=value ...`
//! with no spaces inside values; raw buffers are hex. The host judges.
//!
//! It assumes nothing about its environment (it may be PID 1 on a bare
//! kernel): it brings `lo` up itself.

use crate::report::hex;
use msgzc_abi::proposal::v8;
use msgzc_cmsg::sys::{self, Released, SysError, ZcSocket, NATIVE};
use msgzc_cmsg::{
    decode_errqueue, ControlBuf, ControlBuilder, ErrqueueItem, WalkErrorKind, Walker,
};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Sends per zerocopy case.
pub const SENDS: u32 = 16;

/// The cases, in order.
pub const CASES: [&str; 9] = [
    "libc_numbers",
    "zc_tcp4",
    "zc_tcp6",
    "zc_udp4",
    "zc_udp6",
    "probe",
    "ctrunc",
    "icmp",
    "enobufs",
];

enum End {
    Ok(String),
    Unsupported(String),
    Skip(String),
    Fail(String),
}

fn word(s: &str) -> String {
    s.replace(' ', "_")
}

pub fn main() -> ExitCode {
    if let Err(e) = sys::loopback_up() {
        println!("NOTE loopback_up={}", word(&e.to_string()));
    }
    println!("GUEST target={:?} pid={}", NATIVE, std::process::id());
    for case in CASES {
        println!("CASE name={case}");
        let end = match case {
            "libc_numbers" => libc_numbers(),
            "zc_tcp4" => zc_stream(false),
            "zc_tcp6" => zc_stream(true),
            "zc_udp4" => zc_dgram(false, false),
            "zc_udp6" => zc_dgram(true, false),
            "probe" => zc_dgram(false, true),
            "ctrunc" => ctrunc(),
            "icmp" => icmp(),
            "enobufs" => enobufs(),
            _ => End::Fail("unknown case".into()),
        };
        let (status, detail) = match end {
            End::Ok(d) => ("ok", d),
            End::Unsupported(d) => ("unsupported", d),
            End::Skip(d) => ("skip", d),
            End::Fail(d) => ("fail", d),
        };
        println!("END case={case} status={status} detail={}", word(&detail));
    }
    ExitCode::SUCCESS
}

/// The `libc` crate's numbers for this target against msgzc-abi's.
fn libc_numbers() -> End {
    let s = NATIVE.family.socket();
    let e = NATIVE.family.errno();
    let pairs: [(&str, i64, i64); 12] = [
        ("SOL_SOCKET", libc::SOL_SOCKET.into(), s.sol_socket.into()),
        (
            "SO_ZEROCOPY",
            libc::SO_ZEROCOPY.into(),
            s.so_zerocopy.into(),
        ),
        (
            "SO_TIMESTAMPING",
            libc::SO_TIMESTAMPING.into(),
            s.so_timestamping_old.into(),
        ),
        ("SO_TYPE", libc::SO_TYPE.into(), s.so_type.into()),
        (
            "SOCK_STREAM",
            libc::SOCK_STREAM.into(),
            s.sock_stream.into(),
        ),
        ("SOCK_DGRAM", libc::SOCK_DGRAM.into(), s.sock_dgram.into()),
        ("MSG_ZEROCOPY", libc::MSG_ZEROCOPY.into(), 0x400_0000),
        ("MSG_ERRQUEUE", libc::MSG_ERRQUEUE.into(), 0x2000),
        ("ENOBUFS", libc::ENOBUFS.into(), e.enobufs.into()),
        ("EINVAL", libc::EINVAL.into(), e.einval.into()),
        ("EAGAIN", libc::EAGAIN.into(), e.eagain.into()),
        (
            "ENOPROTOOPT",
            libc::ENOPROTOOPT.into(),
            e.enoprotoopt.into(),
        ),
    ];
    let mut findings = 0;
    for (name, theirs, ours) in pairs {
        if theirs != ours {
            findings += 1;
            println!("FINDING libc_crate {name} libc={theirs} msgzc={ours}");
        }
    }
    End::Ok(format!(
        "{} compared, {findings} libc findings",
        pairs.len()
    ))
}

fn addr(v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
    } else {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    }
}

fn unsupported_or_fail(e: &std::io::Error) -> End {
    if sys::errno_of(e) == Some(NATIVE.family.errno().enoprotoopt) {
        End::Unsupported(format!("SO_ZEROCOPY: {e}"))
    } else {
        End::Fail(format!("SO_ZEROCOPY: {e}"))
    }
}

/// Reads the error queue one message at a time, printing each raw buffer
/// with the guest's own decoding, until `done` or 5 s pass.
fn read_errqueue<F: AsFd>(
    zc: &mut ZcSocket<F, u32, 64>,
    released: &mut Vec<u32>,
    case_done: impl Fn(&ZcSocket<F, u32, 64>) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !case_done(zc) {
        if Instant::now() > deadline {
            return Err(format!(
                "timeout with {} outstanding",
                zc.tracker().outstanding()
            ));
        }
        zc.wait(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        loop {
            let mut control = ControlBuf::<256>::new();
            let fd: BorrowedFd<'_> = zc.get_ref().as_fd();
            let (len, flags) = match sys::recv_errqueue(fd, control.as_mut_bytes()) {
                Ok(r) => r,
                Err(SysError { errno, .. }) if errno == NATIVE.family.errno().eagain => break,
                Err(e) => return Err(e.to_string()),
            };
            let bytes = &control.as_bytes()[..len];
            let mut ranges = Vec::new();
            let mut other = Vec::new();
            for m in Walker::new(NATIVE, bytes, len, flags) {
                let m = m.map_err(|e| e.to_string())?;
                match decode_errqueue(NATIVE, &m) {
                    Ok(ErrqueueItem::Zerocopy(r)) => ranges.push(r),
                    Ok(ErrqueueItem::Extended(x)) => other.push(format!(
                        "ext:{}:{}:{}:{}",
                        x.errno, x.origin_raw, x.ty, x.code
                    )),
                    Ok(_) => other.push("other".into()),
                    Err(e) => return Err(e.to_string()),
                }
            }
            let rs: Vec<String> = ranges
                .iter()
                .map(|r| format!("{}-{}-{}", r.lo, r.hi, u8::from(r.copied)))
                .collect();
            println!(
                "RAW dir=recv controllen={len} flags={} hex={} ranges={} items={}",
                flags.bits(),
                hex(bytes),
                if rs.is_empty() {
                    "none".into()
                } else {
                    rs.join(",")
                },
                if other.is_empty() {
                    "none".into()
                } else {
                    other.join(",")
                }
            );
            for r in ranges {
                zc.apply(r, &mut |x: Released<u32>| released.push(x.token))
                    .map_err(|e| e.to_string())?;
            }
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

fn zc_stream(v6: bool) -> End {
    let l = match TcpListener::bind(addr(v6)) {
        Ok(l) => l,
        Err(e) => {
            return End::Skip(format!(
                "no {} loopback: {e}",
                if v6 { "IPv6" } else { "IPv4" }
            ))
        }
    };
    let c = match TcpStream::connect(l.local_addr().unwrap()) {
        Ok(c) => c,
        Err(e) => return End::Fail(format!("connect: {e}")),
    };
    let (mut s, _) = l.accept().unwrap();
    let reader =
        std::thread::spawn(move || std::io::copy(&mut s, &mut std::io::sink()).unwrap_or(0));
    let end = zc_sends(c.try_clone().unwrap(), false);
    drop(c);
    let _ = reader.join();
    end
}

fn zc_dgram(v6: bool, probe: bool) -> End {
    let rx = match UdpSocket::bind(addr(v6)) {
        Ok(s) => s,
        Err(e) => {
            return End::Skip(format!(
                "no {} loopback: {e}",
                if v6 { "IPv6" } else { "IPv4" }
            ))
        }
    };
    let tx = UdpSocket::bind(addr(v6)).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    zc_sends(tx, probe)
}

fn zc_sends<F: AsFd>(sock: F, probe: bool) -> End {
    let mut zc = match ZcSocket::<_, u32, 64>::new(sock) {
        Ok(z) => z,
        Err(e) => return unsupported_or_fail(&e),
    };
    let data = [0x42u8; 1000];
    let mut released = Vec::new();
    if probe {
        // The exact placeholder send_notify passes, for the host to check.
        let mut buf = ControlBuf::<256>::new();
        let mut b = ControlBuilder::new(NATIVE, buf.as_mut_bytes()).unwrap();
        b.zc_placeholder(v8::ZC_NOTIFICATION_MAX as usize).unwrap();
        let c = b.finish();
        println!(
            "RAW dir=send controllen={} flags=0 hex={} ranges=none items=none",
            c.len(),
            hex(c.as_bytes())
        );
    }
    for token in 0..SENDS {
        let res = if probe {
            zc.send_notify(&data, token, v8::ZC_NOTIFICATION_MAX as usize, |r| {
                released.push(r.token)
            })
            .map(|s| {
                if s.inline > 0 || s.rejected.is_some() {
                    println!("NOTE inline={} rejected={:?}", s.inline, s.rejected);
                }
                s.sent
            })
        } else {
            zc.send(&data, token)
        };
        if let Err(e) = res {
            return End::Fail(format!("send {token}: {e}"));
        }
    }
    if probe {
        println!("MODE {:?}", zc.mode());
    }
    if let Err(e) = read_errqueue(&mut zc, &mut released, |z| z.tracker().outstanding() == 0) {
        return End::Fail(e);
    }
    finish(&mut released)
}

fn ctrunc() -> End {
    let rx = UdpSocket::bind(addr(false)).unwrap();
    let tx = UdpSocket::bind(addr(false)).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    let mut zc = match ZcSocket::<_, u32, 4>::new(tx) {
        Ok(z) => z,
        Err(e) => return unsupported_or_fail(&e),
    };
    if let Err(e) = zc.send(&[1u8; 64], 0) {
        return End::Fail(e.to_string());
    }
    let _ = zc.wait(Some(Duration::from_secs(2)));
    let mut control = ControlBuf::<64>::new();
    let small = &mut control.as_mut_bytes()[..NATIVE.cmsg().header_size() + 4];
    match sys::recv_errqueue(zc.get_ref().as_fd(), small) {
        Ok((len, flags)) => {
            println!(
                "RAW dir=recv controllen={len} flags={} hex={} ranges=none items=none",
                flags.bits(),
                hex(&small[..len])
            );
            let last = Walker::new(NATIVE, small, len, flags).last();
            match last {
                Some(Err(e)) if e.kind == WalkErrorKind::Truncated => {
                    End::Ok("MSG_CTRUNC seen".into())
                }
                other => End::Fail(format!("expected Truncated, got {other:?}")),
            }
        }
        Err(e) => End::Fail(e.to_string()),
    }
}

fn icmp() -> End {
    let closed = UdpSocket::bind(addr(false)).unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let tx = UdpSocket::bind(addr(false)).unwrap();
    tx.connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    if let Err(e) = sys::enable_recverr(tx.as_fd(), false) {
        return End::Fail(e.to_string());
    }
    // Plain send: this case does not need SO_ZEROCOPY.
    if let Err(e) = tx.send(&[9u8; 32]) {
        return End::Fail(format!("send: {e}"));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut control = ControlBuf::<256>::new();
        match sys::recv_errqueue(tx.as_fd(), control.as_mut_bytes()) {
            Ok((len, flags)) => {
                let bytes = &control.as_bytes()[..len];
                let mut items = Vec::new();
                for m in Walker::new(NATIVE, bytes, len, flags).flatten() {
                    if let Ok(ErrqueueItem::Extended(x)) = decode_errqueue(NATIVE, &m) {
                        items.push(format!(
                            "ext:{}:{}:{}:{}",
                            x.errno, x.origin_raw, x.ty, x.code
                        ));
                    }
                }
                println!(
                    "RAW dir=recv controllen={len} flags={} hex={} ranges=none items={}",
                    flags.bits(),
                    hex(bytes),
                    if items.is_empty() {
                        "none".into()
                    } else {
                        items.join(",")
                    }
                );
                return End::Ok("ICMP error read from the error queue".into());
            }
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return End::Fail(e.to_string()),
        }
    }
}

fn enobufs() -> End {
    let h = std::thread::spawn(|| {
        // SAFETY: only this thread changes namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return End::Skip(format!(
                "unshare(CLONE_NEWNET): {}",
                std::io::Error::last_os_error()
            ));
        }
        if let Err(e) = sys::loopback_up() {
            return End::Skip(format!("lo in new namespace: {e}"));
        }
        let optmem = "/proc/sys/net/core/optmem_max";
        let Ok(old) = std::fs::read_to_string(optmem) else {
            return End::Skip(format!("{optmem} unreadable"));
        };
        let rx = UdpSocket::bind(addr(false)).unwrap();
        let tx = UdpSocket::bind(addr(false)).unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let mut zc = match ZcSocket::<_, u32, 4>::new(tx) {
            Ok(z) => z,
            Err(e) => return unsupported_or_fail(&e),
        };
        if std::fs::write(optmem, "0").is_err() {
            return End::Skip(format!("{optmem} not writable"));
        }
        let r = zc.send(&[1u8; 128], 7);
        let _ = std::fs::write(optmem, old.trim());
        match r {
            Err(e)
                if e.error.errno == NATIVE.family.errno().enobufs
                    && e.error.is_retryable()
                    && e.token == 7 =>
            {
                println!("ERRNO call=sendmsg errno={}", e.error.errno);
                End::Ok("ENOBUFS, token returned, retryable".into())
            }
            other => End::Fail(format!("expected ENOBUFS, got {other:?}")),
        }
    });
    h.join().unwrap_or_else(|_| End::Fail("panicked".into()))
}
