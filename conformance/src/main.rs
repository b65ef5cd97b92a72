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
//! msgzc-conformance guest [CASE..]          the Rust guest agent (the agent crate's)
//! msgzc-conformance arches [--json | --field a,b | --github-matrix JOB]
//!                                           the registry of architectures
//! msgzc-conformance crate-tests [--target A,B] [--no-doc]   the crates' tests under qemu-user
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
//!                                  the same matrix, the agent as PID 1
//!                                  under qemu-system
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

use clap::{Parser, Subcommand};
use msgzc_conformance_agent::{guest, view};
use std::process::ExitCode;

/// Runs the send/notify cases on every target and judges each raw control
/// buffer on the host.
#[derive(Debug, Parser)]
#[command(name = "msgzc-conformance", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build, run and judge the guests of the matrix.
    Run(runner::RunArgs),
    /// msgzc-abi's numbers per target, one JSON line each.
    AbiTable(table::AbiTableArgs),
    /// Header facts (JSON lines from guest-c/abi_facts.c) against the tables.
    AbiCheck(table::AbiCheckArgs),
    /// One captured control buffer (hex on stdin), one JSON line per message.
    Decode(table::DecodeArgs),
    /// Judge a guest's output captured elsewhere (on stdin), as `run` would.
    Judge(runner::JudgeArgs),
    /// The Rust guest agent (used by `run`): runs the named cases, or all.
    #[command(disable_help_flag = true)]
    Guest(Raw),
    /// End-to-end throughput of the ways of reading completions.
    Bench(bench::BenchArgs),
    /// One agent as PID 1 on a real kernel under qemu-system.
    SystemBoot(system::BootArgs),
    /// `bench` as PID 1 under qemu-system.
    SystemBench(system::BenchArgs),
    /// The registry of architectures: a table, or `--json`, `--field`.
    Arches(arches::ArchesArgs),
    /// msgzc-abi's and msgzc-cmsg's own tests on foreign targets under
    /// qemu-user.
    CrateTests(crate_tests::CrateTestsArgs),
}

/// The arguments of the agent, which parses its own (it is the agent
/// crate's, built for every target without clap).
#[derive(Debug, clap::Args)]
struct Raw {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<String>,
}

/// The agent's words exactly as given (clap would drop a leading `--`,
/// and the agent answers for every word it gets). Clap has parsed them
/// (UTF-8 checked) and the subcommand is always the first word.
fn raw(_: Raw) -> Vec<String> {
    std::env::args().skip(2).collect()
}

/// Parses `args` (the words after the subcommand) into one subcommand's
/// options, as the binary would: for words that come from elsewhere than
/// the command line (`system-bench` passing its options on to `bench`'s
/// matrix) and for the subcommands' unit tests.
pub(crate) fn parse_args<A: clap::Args, S: AsRef<str>>(args: &[S]) -> Result<A, clap::Error> {
    #[derive(Parser)]
    struct One<A: clap::Args> {
        #[command(flatten)]
        a: A,
    }
    let argv = std::iter::once("msgzc-conformance").chain(args.iter().map(AsRef::as_ref));
    One::<A>::try_parse_from(argv).map(|o| o.a)
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Run(a) => runner::run(a),
        Cmd::AbiTable(a) => table::abi_table(a),
        Cmd::AbiCheck(a) => table::abi_check(a),
        Cmd::Decode(a) => table::decode(a),
        Cmd::Judge(a) => runner::judge_saved(a),
        Cmd::Guest(r) => guest::main(&raw(r)),
        Cmd::Bench(a) => bench::main(a),
        Cmd::SystemBoot(a) => system::main(a),
        Cmd::SystemBench(a) => system::bench_main(a),
        Cmd::Arches(a) => arches::main(a),
        Cmd::CrateTests(a) => crate_tests::main(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The agent's own words reach it unparsed, options included.
    #[test]
    fn the_guest_gets_every_word() {
        let cli = Cli::try_parse_from(["m", "guest", "zc_tcp4", "--help", "-x"]).unwrap();
        match cli.cmd {
            Cmd::Guest(r) => assert_eq!(r.args, ["zc_tcp4", "--help", "-x"]),
            other => panic!("{other:?}"),
        }
    }
}
