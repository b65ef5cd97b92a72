//! The error-queue cases: `zc_*` (every send completed there), `ctrunc`
//! and `icmp` (an ICMP error, cut and whole), `enobufs`.

use super::{call_result, check_ee_errno, coverage, Ctx, Line, Outcome, Raw};
use msgzc_abi::{IP_RECVERR, SOL_IP};
use msgzc_cmsg::{decode_errqueue, ErrqueueItem, MsgFlags, Offender};
use msgzc_conformance_protocol::SENDS;
use std::net::Ipv4Addr;

/// `zc_tcp4` .. `zc_udp6`: every send completed once on the error queue,
/// nothing else there.
pub(super) fn zc_sends(recvs: &[&Raw<'_>]) -> Result<Outcome, String> {
    if let Some(r) = recvs.iter().find(|r| !r.host.items.is_empty()) {
        return Err(format!("unexpected error-queue items {:?}", r.host.items));
    }
    let covered = coverage(recvs.iter().flat_map(|r| &r.host.ranges))?;
    if covered.len() != SENDS as usize {
        return Err(format!(
            "{} of {SENDS} sends completed on the error queue",
            covered.len()
        ));
    }
    Ok(Outcome::Pass)
}

/// `ctrunc`: one read, cut by `MSG_CTRUNC`, with at most the start of an
/// `IP_RECVERR` message.
pub(super) fn ctrunc(
    ctx: Ctx,
    recvs: &[&Raw<'_>],
    findings: &mut Vec<String>,
) -> Result<Outcome, String> {
    let [r] = recvs else {
        return Err(format!("{} error-queue reads, want 1", recvs.len()));
    };
    if !r.host.trunc || r.flags & MsgFlags::CTRUNC.bits() == 0 {
        return Err("the host walk saw no MSG_CTRUNC".into());
    }
    let msgs = r.messages(ctx.t());
    match msgs.as_slice() {
        [] => {}
        [(level, ty, data)] if (*level, *ty) == (SOL_IP, IP_RECVERR) && data.len() < 16 => {
            if data.len() >= 4 {
                check_ee_errno(ctx, &data[..4], "a truncated", findings)?;
            }
        }
        _ => return Err(format!("unexpected messages {}", r.host.msgs_field())),
    }
    Ok(Outcome::Pass)
}

/// `icmp`: one `IP_RECVERR` message, ICMP port unreachable from
/// 127.0.0.1.
pub(super) fn icmp(
    ctx: Ctx,
    recvs: &[&Raw<'_>],
    findings: &mut Vec<String>,
) -> Result<Outcome, String> {
    let t = ctx.t();
    let [r] = recvs else {
        return Err(format!("{} error-queue reads, want 1", recvs.len()));
    };
    let msgs = r.messages(t);
    let [(level, ty, data)] = msgs.as_slice() else {
        return Err(format!("messages {}, want one", r.host.msgs_field()));
    };
    if (*level, *ty, data.len()) != (SOL_IP, IP_RECVERR, 32) {
        return Err(format!(
            "message {level}:{ty}:{}, want IP_RECVERR with 32 bytes",
            data.len()
        ));
    }
    let m = msgzc_cmsg::Cmsg {
        level: *level,
        ty: *ty,
        data,
        offset: 0,
    };
    let Ok(ErrqueueItem::Extended(x)) = decode_errqueue(t, &m) else {
        return Err("not an extended error".into());
    };
    if (x.origin_raw, x.ty, x.code) != (2, 3, 3) {
        return Err(format!(
            "origin/type/code {}/{}/{}, want ICMP port unreachable 2/3/3",
            x.origin_raw, x.ty, x.code
        ));
    }
    check_ee_errno(ctx, &data[..4], "an", findings)?;
    // SO_EE_OFFENDER: a sockaddr_in, family in the target's order.
    let offender = x.offender_addr(t);
    let localhost = |o: &Offender| matches!(o, Offender::V4(a) if *a.ip() == Ipv4Addr::LOCALHOST);
    if offender.is_ok_and(|o| o.as_ref().is_some_and(localhost)) {
        Ok(Outcome::Pass)
    } else if ctx.stock_emulator() && x.offender.iter().all(|b| *b == 0) {
        // The offender goes to the guest address equal to the
        // host address of the buffer: guest_base bytes further on.
        findings.push(
            "qemu-user leaves SO_EE_OFFENDER (the sockaddr after \
             sock_extended_err) zeroed for this guest, writing it \
             guest_base bytes past the buffer instead \
             (conformance/qemu/0002 fixes it)"
                .into(),
        );
        Ok(Outcome::Pass)
    } else {
        Err(format!("offender {offender:?}, want AF_INET 127.0.0.1"))
    }
}

/// `enobufs`: the send past the notification limit fails with `ENOBUFS`.
pub(super) fn enobufs(ctx: Ctx, lines: &[Line]) -> Result<Outcome, String> {
    let (ret, e) = call_result(lines, "send_MSG_ZEROCOPY")?;
    if ret < 0 && e == i64::from(ctx.t().family.errno().enobufs) {
        Ok(Outcome::Pass)
    } else {
        Err(format!("send returned {ret} errno {e}, want ENOBUFS"))
    }
}
