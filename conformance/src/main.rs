//! `msgzc-conformance`: runs the send/notify cases on a target and judges
//! every raw control buffer on the host.
//!
//! ```text
//! msgzc-conformance run [--all | --target A,B] [--guest auto|rust|c|both]
//!                       [--qemu stock|patched|both | --tier user]
//!                       [--json PATH] [--require-all] [--install] [-v]
//! msgzc-conformance abi-table [--json]      msgzc-abi's numbers per target
//! msgzc-conformance abi-check FACTS.jsonl   header facts against the tables
//! msgzc-conformance decode --target NAME [--flags N] < hex
//! msgzc-conformance guest [CASE..]          the Rust guest agent (used by run)
//! msgzc-conformance judge --target NAME [--lang rust|c] [--tier native|emulated|patched] < OUTPUT
//!                                           judges a guest's output captured elsewhere
//! msgzc-conformance system-boot --target ARCH [--guest rust|c] [--kernel-arch ARCH]
//!                         one agent as PID 1 on a real kernel under qemu-system
//! msgzc-conformance bench [--proto ..] [--interval 1,32] [--size N] [--secs S]
//!                         [--json PATH] [--markdown PATH]   end-to-end throughput
//!                         [--selftest MSG_ZEROCOPY] [--calibrate-only] [--cpu N]
//! msgzc-conformance bench --connect ADDR:PORT --proto P [--mode M] [--cpu N] ..
//!                         the sender alone, against a receiver elsewhere
//! msgzc-conformance bench --same-receiver --selftest MSG_ZEROCOPY [--rounds N] ..
//!                         ours against the selftest's sender, one receiver
//! msgzc-conformance bench --udp-batch [--size N] [--batch N] [--rounds N] ..
//!                         sendmmsg and GSO, zerocopy and copy, in rounds
//! msgzc-conformance bench --async-tcp [--size 8192,65536] [--rounds N] ..
//!                         tokio's zerocopy sender (feature async-bench)
//! msgzc-conformance bench --sweep SIZES [--rounds N] ..
//!                         copy against zerocopy by payload size
//! msgzc-conformance system-bench [--target ARCH] [--kernel stock|patched|loopback-zerocopy]
//!                         [--selftest] [--markdown PATH] [-- BENCH-ARGS]
//!                                  the same, as PID 1 under qemu-system
//! ```
//!
//! The guest agent performs real system calls and prints one line per
//! step, with the raw bytes of every control buffer; the runner re-decodes
//! each buffer with the target's layout and requires the guest's own
//! answer, so a guest's "ok" is never trusted alone.

mod arches;
mod bench;
mod build;
mod crate_tests;
mod judge;
mod report;
mod runner;
mod system;
mod table;

use msgzc_conformance_agent::{guest, pid1, view};
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage:\n  msgzc-conformance run [--all | --target NAME[,NAME..]] [--guest auto|rust|c|both] \
         [--json PATH] [--require-all] [--install] [-v]\n  \
         msgzc-conformance abi-table [--json]\n  \
         msgzc-conformance decode --target NAME [--flags N]   (hex on stdin)\n  \
         msgzc-conformance abi-check FACTS.jsonl\n  \
         msgzc-conformance guest [CASE..]\n  \
         msgzc-conformance judge --target NAME [--lang rust|c] [--tier native|emulated|patched] < OUTPUT\n  \
         msgzc-conformance system-boot --target ARCH [--guest rust|c] [--kernel-arch ARCH] [--kernel stock|patched] [--fetch]\n  \
         msgzc-conformance bench [--proto tcp4,..] [--interval 1,32] [--size N] [--secs S] [--json P] [--markdown P] \
         [--selftest MSG_ZEROCOPY] [--calibrate-only] [--cpu N]\n  \
         msgzc-conformance bench --connect ADDR:PORT --proto P [--mode M] [--cpu N] [--interval N] [--size N] [--secs S]\n  \
         msgzc-conformance bench --same-receiver --selftest MSG_ZEROCOPY [--rounds N] [--cpu 0] [--receiver-cpu 1] \
         [--proto ..] [--interval ..] [--markdown P]\n  \
         msgzc-conformance bench --udp-batch [--size N] [--batch N] [--rounds N] [--secs S] [--markdown P]\n  \
         msgzc-conformance bench --async-tcp [--size 8192,65536] [--rounds N] [--secs S] [--markdown P]\n  \
         msgzc-conformance bench --sweep SIZES [--rounds N] [--net ..] [--proto ..] [--interval N] [--secs S]
  \
         msgzc-conformance system-bench [--target ARCH] [--kernel stock|patched|loopback-zerocopy] [--selftest] \
         [--markdown P] [-- BENCH-ARGS]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        return usage();
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "run" => runner::run(rest),
        "arches" => arches::main(rest),
        "abi-table" => table::abi_table(rest),
        "abi-check" => table::abi_check(rest),
        "decode" => table::decode(rest),
        "guest" => guest::main(rest),
        "judge" => runner::judge_saved(rest),
        // As PID 1 on a bare kernel (the system tier's bench): the agent's
        // setup, then power off instead of returning.
        "bench" if std::process::id() == 1 => {
            pid1::setup();
            let code = bench::main(rest);
            println!("DONE");
            pid1::power_off();
            code
        }
        "bench" => bench::main(rest),
        "system-boot" => system::main(rest),
        "system-bench" => system::bench_main(rest),
        "crate-tests" => crate_tests::main(rest),
        _ => usage(),
    }
}
