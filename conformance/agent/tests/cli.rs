//! The agent binary refuses what is no case before running anything.

use std::process::Command;

fn agent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_msgzc-conformance-agent"))
        .args(args)
        .output()
        .expect("the agent runs")
}

#[test]
fn an_unknown_case_ends_the_agent_with_status_2() {
    for args in [&["nosuchcase"][..], &["guest", "probe", "nosuchcase"]] {
        let out = agent(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("unknown case \"nosuchcase\""), "{err}");
        // Nothing ran: not even the GUEST line.
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn abi_facts_is_refused_as_the_hosts() {
    let out = agent(&["guest", "abi_facts"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("abi_facts is run by the host"));
}

#[test]
fn kernel_parameters_are_skipped_not_run() {
    // native_facts needs no network: a quick real run.
    let out = agent(&["guest", "native_facts", "earlycon=pdc"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let cases: Vec<&str> = text.lines().filter(|l| l.starts_with("CASE ")).collect();
    assert_eq!(cases, ["CASE name=native_facts"]);
    assert!(text.contains("NOTE ignored=earlycon=pdc"), "{text}");
    assert!(text
        .lines()
        .any(|l| l.starts_with("END case=native_facts status=ok")));
    assert!(text.ends_with("DONE\n"));
}
