//! The command line on bad input and misuse: the built binary, run as a
//! user would.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_msgzc-conformance"))
}

/// Runs `args` with `input` on stdin.
fn run(args: &[&str], input: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The child may exit before reading (usage errors): ignore EPIPE.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every stdout line as JSON.
fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// One x86_64 zerocopy notification (IP_RECVERR, origin 5, range 1..=2).
fn notification_hex() -> String {
    let mut b = Vec::new();
    b.extend(32u64.to_le_bytes()); // cmsg_len
    b.extend(0i32.to_le_bytes()); // SOL_IP
    b.extend(11i32.to_le_bytes()); // IP_RECVERR
    b.extend(0u32.to_le_bytes()); // ee_errno
    b.extend([5, 0, 0, 0]); // origin, type, code, pad
    b.extend(1u32.to_le_bytes()); // ee_info: lo
    b.extend(2u32.to_le_bytes()); // ee_data: hi
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn decode_prints_a_notification() {
    let o = run(
        &["decode", "--target", "x86_64"],
        notification_hex().as_bytes(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["kind"], "zerocopy");
    assert_eq!(
        (lines[0]["lo"].as_u64(), lines[0]["hi"].as_u64()),
        (Some(1), Some(2))
    );
}

/// `decode | head`: the reader is gone before the first line.
#[test]
fn decode_into_a_closed_pipe_ends_quietly() {
    let mut child = bin()
        .args(["decode", "--target", "x86_64"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let hex = notification_hex().repeat(1000);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(hex.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
}

#[test]
fn a_malformed_message_exits_1() {
    // IP_RECVERR with 4 bytes: too short for sock_extended_err.
    let hex = "1400000000000000000000000b00000000000000";
    let o = run(&["decode", "--target", "x86_64"], hex.as_bytes());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        json_lines(&o)[0].get("decode_error").is_some(),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn input_that_is_not_a_buffer_gets_a_json_error_line() {
    for (input, kind) in [
        (&b"+0+b"[..], "hex"),
        (b"0x14", "hex"),
        (b"abc", "hex"),
        (b"\xff\xfe00", "utf8"),
        (b"", "empty"),
        (b" \n\t", "empty"),
    ] {
        let o = run(&["decode", "--target", "x86_64"], input);
        assert_eq!(o.status.code(), Some(1), "{input:?}");
        let lines = json_lines(&o);
        assert_eq!(lines.len(), 1, "{input:?}");
        assert_eq!(lines[0]["error"], kind, "{input:?}");
    }
}

#[test]
fn decode_targets_are_checked() {
    let o = run(&["decode", "--target", "nosuch", "--target", "x86_64"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("invalid value 'nosuch' for '--target <NAME>'"),
        "{}",
        text(&o.stderr)
    );
    assert!(o.stdout.is_empty());
    let o = run(&["decode", "--target", "x86_64", "--target", "x86_64"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("cannot be used multiple times"));
    let o = run(&["decode"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--target <NAME>"));
}

#[test]
fn help_and_unknown_subcommands() {
    let o = run(&["decode", "--help"], b"");
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("--flags <N>"));
    let o = run(&["--help"], b"");
    assert_eq!(o.status.code(), Some(0));
    for sub in ["run", "decode", "abi-check", "system-bench"] {
        assert!(text(&o.stdout).contains(sub), "{sub}");
    }
    let o = run(&["frobnicate"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unrecognized subcommand 'frobnicate'"));
}

fn scratch(name: &str, text: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("msgzc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn abi_check_reads_a_bounded_amount() {
    let t = Instant::now();
    let o = run(&["abi-check", "/dev/zero"], b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("longer than 1048576 bytes"),
        "{}",
        text(&o.stderr)
    );
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[test]
fn abi_check_json_errors_are_exact() {
    let comma = scratch("comma.jsonl", b"{\"target\":\"x86_64\" \"SO_TYPE\":3}\n");
    let o = run(&["abi-check", comma.to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(
        e.contains(":1: expected `,` or `}` at line 1 column 20"),
        "{e}"
    );
    let quote = scratch("quote.jsonl", b"{\"SO_TYPE\":3,\"target\":\"x\\\"86\"}\n");
    let o = run(&["abi-check", quote.to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(e.contains(":1: unknown target \"x\\\"86\""), "{e}");
}

/// The facts `ci/abi-facts` last printed agree with the tables.
#[test]
fn abi_check_passes_on_the_recorded_facts() {
    let facts = concat!(env!("CARGO_MANIFEST_DIR"), "/facts/headers.jsonl");
    let o = run(&["abi-check", facts], b"");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains(" 0 differ"));
}

#[test]
fn abi_table_is_one_json_object_per_target() {
    let o = run(&["abi-table", "--json"], b"");
    assert_eq!(o.status.code(), Some(0));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), msgzc_abi::Arch::ALL.len());
    assert_eq!(
        lines[0].as_object().unwrap().keys().next().unwrap(),
        "target"
    );
    assert!(lines
        .iter()
        .any(|l| l["target"] == "mips" && l["SO_ZEROCOPY"] == 60));
}

#[test]
fn run_checks_its_arguments_before_running() {
    let t = Instant::now();
    let o = run(&["run", "--json", "/nonexistent/dir/x.json"], b"");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("no directory /nonexistent/dir"));
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
    assert!(t.elapsed() < Duration::from_secs(30));
    for bad in [
        &["run", "--target", ""][..],
        &["run", "--target", "vax"],
        &["run", "--tier", "user", "--kernel", "both"],
    ] {
        let o = run(bad, b"");
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(o.stdout.is_empty(), "{bad:?}: {}", text(&o.stdout));
    }
}
