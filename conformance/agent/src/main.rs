//! `msgzc-conformance-agent [guest] [CASE..]` or `msgzc-conformance-agent
//! bench WORDS`: the agent alone, as the runner and the system tier
//! cross-build it for foreign targets.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    msgzc_conformance_agent::main(&args)
}
