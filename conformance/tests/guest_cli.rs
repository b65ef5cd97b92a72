//! `msgzc-conformance guest` is the agent crate's guest: it refuses a
//! name that is no case before running anything.

use std::process::Command;

#[test]
fn guest_with_an_unknown_case_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_msgzc-conformance"))
        .args(["guest", "nosuchcase"])
        .output()
        .expect("the runner runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown case \"nosuchcase\""), "{err}");
    assert!(out.stdout.is_empty());
}
