//! The conformance runner's Rust guest agent: performs each case with real
//! system calls on the target it was compiled for and prints one line per
//! step ([`msgzc_conformance_protocol`]'s format); the host judges.
//!
//! It also holds the benchmark's measurement side ([`mod@bench`]), which the
//! host's `bench` calls in-process and `system-bench` boots as PID 1.
//!
//! It is its own crate so that a foreign agent build (`-Zbuild-std`, one
//! per target) compiles only this, `msgzc-abi`, `msgzc-cmsg`, `libc` and
//! the protocol crate, not the host runner.
//!
//! ```no_run
//! // What `msgzc-conformance-agent guest probe` does.
//! let code = msgzc_conformance_agent::guest::main(&["probe".to_string()]);
//! # let _ = code;
//! ```

pub mod bench;
pub mod guest;
pub mod pid1;
pub mod view;

use std::process::ExitCode;

/// The agent's command line: `bench WORDS` ([`bench::main`]), or
/// `[guest] [CASE..]` (the word `guest` is optional, so the runner's and
/// the system tier's `guest CASE..` work as they did with the host
/// binary). A first word that is neither
/// `guest` nor a case (nor a kernel parameter) is refused by
/// [`guest::main`] with exit status 2.
pub fn main(args: &[String]) -> ExitCode {
    match args.split_first() {
        Some((first, rest)) if first == "guest" => guest::main(rest),
        Some((first, rest)) if first == "bench" => bench::main(rest),
        _ => guest::main(args),
    }
}
