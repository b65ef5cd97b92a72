//! `msgzc-conformance-agent [guest] [CASE..]`: the guest agent alone, as
//! the runner cross-builds it for foreign targets.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    msgzc_conformance_agent::main(&args)
}
