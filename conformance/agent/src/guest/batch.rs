//! The Rust guest's UDP batch cases, through the library's batch API:
//! `sendmmsg_zc` (`ZcSocket::send_batch` and `send_batch_notify`) and
//! `gso_zc` (`ZcSocket::send_gso`). The C guest makes the same calls raw.
//!
//! Both print every error-queue buffer (`RAW dir=recv`) and every datagram
//! received (`DATA sock=a|b len=N hex=HEX`); the host checks the ids and
//! the bytes. A guest's own check here only stops a case that cannot go on.

use super::{call, drain, placeholder, poll_err, raw, udp_pair, zc_socket, End};
use msgzc_cmsg::sys::{BatchSent, BatchStop, Datagram, Sent, NATIVE};
use msgzc_cmsg::{ControlBuf, ControlBuilder};
use msgzc_conformance_protocol::hex;
use msgzc_conformance_protocol::{
    batch_len, pattern, GSO_SEED, GSO_SEGMENT, PAYLOAD, PROBE_CAPACITY, ZC_BATCH,
};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

/// Prints what a batch did: `CALL name=NAME` with the datagrams sent (or
/// -1 and the errno the library reported) and `VALUE name=first_id`.
fn report<T>(name: &str, r: &BatchSent<'_, T>) -> Result<(), End> {
    let errno = match &r.stop {
        None => 0,
        Some(BatchStop::Os(e)) => e.errno,
        Some(BatchStop::InDoubt { error: Some(e), .. }) => e.errno,
        Some(_) => -1,
    };
    let ret = if r.sent == 0 && r.stop.is_some() {
        -1
    } else {
        r.sent as isize
    };
    call(name, ret, errno);
    if let Some(id) = r.first_id {
        println!("VALUE name=first_id v={id}");
    }
    match (&r.stop, r.copied.len(), &r.rejected) {
        (None, 0, None) => Ok(()),
        (Some(stop), _, _) => Err(End::Fail(format!("{name}: {stop}"))),
        (_, n @ 1.., _) => Err(End::Fail(format!("{name}: {n} datagrams sent by copy"))),
        (_, _, Some(e)) => Err(End::Fail(format!("{name}: inline completion refused: {e}"))),
    }
}

/// Receives up to `max` datagrams on `rx` (each within 500 ms), then one
/// more without waiting, which must not be there; prints each as `DATA`.
/// Returns the lengths received.
pub(super) fn receive(rx: &UdpSocket, name: &str, max: usize) -> Vec<usize> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    let _ = rx.set_read_timeout(Some(Duration::from_millis(500)));
    for i in 0..=max {
        if i == max && rx.set_nonblocking(true).is_err() {
            break;
        }
        match rx.recv(&mut buf) {
            Ok(n) => {
                println!("DATA sock={name} len={n} hex={}", hex(&buf[..n]));
                got.push(n);
            }
            Err(_) => break,
        }
    }
    got
}

/// Two receivers and an unconnected sender with `SO_ZEROCOPY`.
fn batch_sockets() -> Result<([UdpSocket; 2], [SocketAddr; 2], UdpSocket), End> {
    let bind = || UdpSocket::bind((Ipv4Addr::LOCALHOST, 0));
    let (Ok(a), Ok(b), Ok(tx)) = (bind(), bind(), bind()) else {
        return Err(End::Fail("udp sockets".into()));
    };
    let (Ok(to_a), Ok(to_b)) = (a.local_addr(), b.local_addr()) else {
        return Err(End::Fail("receiver addresses".into()));
    };
    Ok(([a, b], [to_a, to_b], tx))
}

/// `sendmmsg_zc`: on an unconnected `SO_ZEROCOPY` socket, one batch of
/// [`ZC_BATCH`] datagrams (`send_batch`: one `sendmmsg` with
/// `MSG_ZEROCOPY`, each entry with its own destination, alternating
/// between two receivers), its completions left queued, then a second
/// batch with a placeholder in every entry (`send_batch_notify`, which
/// falls back to the error queue where the kernel refuses them). Every id
/// of `0..2 * ZC_BATCH` must complete once, inline or on the error queue,
/// and every datagram arrive whole at its receiver.
pub(super) fn sendmmsg_zc() -> End {
    let (rxs, to, tx) = match batch_sockets() {
        Ok(s) => s,
        Err(end) => return end,
    };
    let mut zc = match zc_socket(tx, 64) {
        Ok(z) => z,
        Err(end) => return end,
    };
    let data: Vec<Vec<u8>> = (0..2 * ZC_BATCH)
        .map(|i| pattern(i, batch_len(i)))
        .collect();
    let batch = |lo: usize| -> Vec<Datagram<'_, u32>> {
        (lo..lo + ZC_BATCH)
            .map(|i| Datagram::new(&data[i], i as u32).to(to[i % 2]))
            .collect()
    };
    let r = zc.send_batch(batch(0));
    if let Err(end) = report("sendmmsg", &r) {
        return end;
    }
    // Queued before the second batch, whose placeholders can take them.
    poll_err(zc.get_ref().as_fd(), 1000);
    std::thread::sleep(Duration::from_millis(50));
    // The placeholder send_batch_notify builds, for the host to check.
    placeholder(&mut ControlBuf::<256>::new());
    let mut released = Vec::new();
    let r = zc.send_batch_notify(batch(ZC_BATCH), PROBE_CAPACITY, |x| {
        println!("INLINE id={} copied={}", x.id, u8::from(x.copied));
        released.push(x.token);
    });
    let reported = report("sendmmsg_notify", &r);
    println!("MODE {:?}", zc.mode());
    if let Err(end) = reported {
        return end;
    }
    if let Err(e) = drain(&mut zc, &mut released) {
        return End::Fail(e);
    }
    let got: Vec<usize> = ["a", "b"]
        .iter()
        .zip(&rxs)
        .map(|(name, rx)| receive(rx, name, ZC_BATCH).len())
        .collect();
    released.sort_unstable();
    let want: Vec<u32> = (0..2 * ZC_BATCH as u32).collect();
    if released != want {
        return End::Fail(format!("released {released:?}"));
    }
    End::Ok(format!(
        "{} datagrams in 2 sendmmsg, {} and {} received, mode {:?}",
        2 * ZC_BATCH,
        got[0],
        got[1],
        zc.mode()
    ))
}

/// `gso_zc`: one send of [`PAYLOAD`] bytes with `MSG_ZEROCOPY` and a
/// `UDP_SEGMENT` of [`GSO_SEGMENT`] (`send_gso`) on a connected socket:
/// the receiver must get the segments, in order and whole, and the error
/// queue exactly one id for all of them.
pub(super) fn gso_zc() -> End {
    let (tx, rx) = match udp_pair(false) {
        Ok(p) => p,
        Err(e) => return End::Fail(format!("udp pair: {e}")),
    };
    let mut zc = match zc_socket(tx, 64) {
        Ok(z) => z,
        Err(end) => return end,
    };
    // The control buffer send_gso builds, for the host to check.
    let mut buf = ControlBuf::<64>::new();
    let mut b = ControlBuilder::new(NATIVE, buf.as_mut_bytes()).expect("aligned");
    b.udp_segment(GSO_SEGMENT).expect("fits");
    let c = b.finish();
    raw("send", c.as_bytes(), c.len(), 0);
    let data = pattern(GSO_SEED, PAYLOAD);
    match zc.send_gso(&data, GSO_SEGMENT, 0u32) {
        Ok(Sent::Pending { bytes, id }) => {
            call("send_gso", bytes as isize, 0);
            println!("VALUE name=id v={id}");
        }
        Ok(other) => {
            call("send_gso", -1, -1);
            return End::Fail(format!("send_gso: {other:?}, want a zerocopy send"));
        }
        Err(e) => {
            call("send_gso", -1, e.errno().unwrap_or(-1));
            return End::Fail(format!("send_gso: {e}"));
        }
    }
    let mut released = Vec::new();
    if let Err(e) = drain(&mut zc, &mut released) {
        return End::Fail(e);
    }
    let lens = receive(&rx, "a", PAYLOAD.div_ceil(GSO_SEGMENT.into()));
    if released != [0] {
        return End::Fail(format!("released {released:?}, want the one send"));
    }
    End::Ok(format!("one send, one id, datagrams of {lens:?} bytes"))
}
