//! `msgzc-conformance`: runs the send/notify cases on a target and judges
//! every raw control buffer on the host.
//!
//! ```text
//! msgzc-conformance run [--json PATH]       host-native target
//! msgzc-conformance abi-table [--json]      msgzc-abi's numbers per target
//! msgzc-conformance decode --target NAME [--flags N] < hex
//! msgzc-conformance guest                   the guest agent (used by run)
//! ```
//!
//! The guest agent performs real system calls and prints one line per
//! step, with the raw bytes of every control buffer; the runner re-decodes
//! each buffer with the target's layout and requires the guest's own
//! answer, so a guest's "ok" is never trusted alone.

mod guest;
mod judge;
mod report;
mod table;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage:\n  msgzc-conformance run [--target NAME[,NAME..] | --all] [--json PATH]\n  \
         msgzc-conformance abi-table [--json]\n  \
         msgzc-conformance decode --target NAME [--flags N]   (hex on stdin)\n  \
         msgzc-conformance guest"
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
        "run" => judge::run(rest),
        "abi-table" => table::abi_table(rest),
        "abi-check" => table::abi_check(rest),
        "decode" => table::decode(rest),
        "guest" => guest::main(),
        _ => usage(),
    }
}
