//! `bench --connect ADDR`: the sender alone, against a receiver that runs
//! elsewhere (the kernel selftest's `msg_zerocopy -r`, say), and CPU
//! pinning (`--cpu N`) for any sender.
//!
//! Each interval prints one line in the format of the selftest's own
//! `msgzc:` summary (`conformance/kernel/test-only/selftest-inline.patch`),
//! so that one parser reads both senders ([`msgzc_conformance_agent::bench::kernel::parse_summary`]).

use super::Opts;
use msgzc_conformance_agent::bench::engine::{pin, send_on};
use msgzc_conformance_protocol::bench::{Measured, Proto};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

/// The selftest's payload, `'a' + i % 26`: its UDP receiver compares the
/// first bytes of every datagram with it and exits on a mismatch.
pub(super) fn selftest_payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The `msgzc:` line for one sender run. `expected` is every completion
/// counted: `run_zc` fails a run in which any send never completed.
pub(super) fn summary_line(m: &Measured) -> String {
    let done = m.copied + m.zerocopy;
    format!(
        "msgzc: ms={} bytes={} sends={} completions={done} expected={done} copied={} inline=0 \
         errqueue_msgs={} sendmsg={} recvmsg={} poll={}",
        (m.secs * 1e3).round() as u64,
        m.bytes,
        m.sends,
        m.copied,
        m.notifications,
        m.calls.send,
        m.calls.errqueue,
        m.calls.poll
    )
}

/// The one protocol of `--proto` that matches the address's family.
fn protocol(o: &Opts, to: SocketAddr) -> Result<Proto, String> {
    let fits: Vec<Proto> = o
        .protos
        .iter()
        .copied()
        .filter(|p| p.is_ipv4() == to.is_ipv4())
        .collect();
    match fits[..] {
        [p] => Ok(p),
        [] => Err(format!("--connect {to}: no --proto of its family")),
        _ => Err(format!(
            "--connect {to}: name one protocol (--proto tcp4, udp6, ..)"
        )),
    }
}

/// The sender-only bench: one run per interval, each a summary line.
pub(super) fn main(o: &Opts) -> ExitCode {
    let Some(to) = o.connect else {
        return ExitCode::from(2);
    };
    let run = || -> Result<(), String> {
        let proto = protocol(o, to)?;
        if let Some(cpu) = o.common.cpu {
            pin(cpu)?;
        }
        let from: SocketAddr = match to {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let payload = selftest_payload(o.size);
        for &interval in &o.intervals {
            let m = send_on(proto, from, to, o.mode, &payload, interval, o.common.secs)
                .map_err(|e| format!("{} interval {interval}: {e}", o.mode.name()))?;
            eprintln!("{}", summary_line(&m));
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench --connect: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use msgzc_conformance_agent::bench::kernel::parse_summary;
    use msgzc_conformance_protocol::bench::Calls;

    #[test]
    fn summary_reads_back_with_the_selftests_parser() {
        let m = Measured {
            secs: 2.2004,
            bytes: 8192 * 70,
            sends: 70,
            notifications: 3,
            copied: 60,
            zerocopy: 10,
            calls: Calls {
                send: 71,
                errqueue: 5,
                poll: 2,
            },
            ..Measured::default()
        };
        let line = summary_line(&m);
        let back = parse_summary(&format!("noise\n{line}\n"))
            .unwrap()
            .measured(0.0)
            .unwrap();
        assert_eq!(
            (back.bytes, back.sends, back.notifications, back.copied),
            (8192 * 70, 70, 3, 60)
        );
        assert_eq!((back.zerocopy, back.calls), (10, m.calls));
        assert!((back.secs - 2.2).abs() < 1e-9);
    }

    #[test]
    fn payload_is_the_selftests() {
        let p = selftest_payload(60);
        assert_eq!(&p[..3], b"abc");
        assert_eq!((p[25], p[26], p[59]), (b'z', b'a', b'h'));
    }

    /// The CPUs the calling thread may run on.
    fn allowed() -> Vec<usize> {
        // SAFETY: an all-zero cpu_set_t is valid; the call only writes it.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is writable and of the size passed.
        let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        assert_eq!(r, 0);
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `c` < CPU_SETSIZE, inside `set`.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    }

    #[test]
    fn pinning_to_a_cpu_we_have_works_and_one_we_lack_fails() {
        // Pin a scratch thread, not the test harness's.
        let (cpu, after, bad) = std::thread::spawn(|| {
            let cpu = *allowed().last().unwrap();
            let ok = pin(cpu);
            (
                ok.map(|_| cpu),
                allowed(),
                pin(libc::CPU_SETSIZE as usize - 1),
            )
        })
        .join()
        .unwrap();
        assert_eq!(after, vec![cpu.unwrap()]);
        assert!(bad.unwrap_err().contains("pin to CPU"));
    }
}
