//! The C agent (`conformance/guest-c/guest.c`) answers its command line as
//! the Rust one does: an unknown case ends it with status 2 before anything
//! runs, kernel parameters are noted and skipped, and its list of cases is
//! the protocol's.

use msgzc_conformance_protocol::Case;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/guest-c/guest.c");

/// The C agent built once for this test binary with the host's `cc`.
fn agent() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c-agent-cli");
        let st = Command::new("cc")
            .args(["-O1", "-Wall", "-Werror", "-DTARGET_NAME=\"host\"", "-o"])
            .arg(&out)
            .arg(SRC)
            .status()
            .expect("cc runs (the C agent needs the host's C compiler)");
        assert!(st.success(), "cc {SRC}: {st}");
        out
    })
}

fn run(args: &[&str]) -> Output {
    Command::new(agent())
        .args(args)
        .output()
        .expect("the C agent runs")
}

#[test]
fn an_unknown_case_ends_the_c_agent_with_status_2() {
    for args in [
        &["nosuchcase"][..],
        &["native_facts", "nosuchcase"],
        &["abi_facts"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("unknown case"), "{err}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing ran");
    }
}

#[test]
fn kernel_parameters_are_noted_and_skipped() {
    let out = run(&["native_facts", "earlycon=pdc"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let cases: Vec<&str> = text.lines().filter(|l| l.starts_with("CASE ")).collect();
    assert_eq!(cases, ["CASE name=native_facts"]);
    assert!(text.contains("NOTE ignored=earlycon=pdc"), "{text}");
    assert!(text.ends_with("DONE\n"), "{text}");
}

/// The names between `all_cases[] = {` and `};` in the C source.
fn c_case_list() -> Vec<String> {
    let src = std::fs::read_to_string(SRC).unwrap();
    let start = src
        .find("all_cases[] = {")
        .expect("the C agent's case list");
    let body = &src[start..];
    let body = &body[..body.find("};").unwrap()];
    body.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn the_c_agents_cases_are_the_protocols() {
    let want: Vec<&str> = Case::guest_cases().map(|c| c.name()).collect();
    assert_eq!(c_case_list(), want);
}
