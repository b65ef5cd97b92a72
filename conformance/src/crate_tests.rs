//! `crate-tests`: the library crates' own test suites (unit, property and
//! real-kernel integration tests of `msgzc-abi` and `msgzc-cmsg`) on
//! foreign targets.
//!
//! Each target is cross-built with Debian's Rust (`-Zbuild-std`, static,
//! the cross gcc as linker) and every test binary runs under the patched
//! qemu-user of `ci/qemu` through `CARGO_TARGET_<T>_RUNNER`, the way
//! rust-lang/libc's `ci/` runs its foreign targets. The patched emulator
//! passes `SO_ZEROCOPY` and `MSG_ZEROCOPY` through to the host kernel, so
//! the real-kernel tests exercise the target's byte order and word size
//! against a real kernel. The runner sets `MSGZC_UNDER_QEMU_USER=1`; a test
//! that cannot work under an emulator prints `SKIP: <why>` and returns,
//! and every such skip is counted and shown here, never taken as a pass.
//!
//! The target directory lives under `$MSGZC_CACHE/crate-tests/<rustc>/<triple>`, so
//! a warm run only rebuilds what changed.

use crate::arches;
use crate::build::{
    cross_env, patched_qemu, patched_qemu_binary, rustc_key, rustflags, target_env, toolchain,
    touch_tree, which,
};
use msgzc_abi::Arch;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// The default targets: 64-bit big-endian, 32-bit big-endian, 32-bit
/// little-endian, and big-endian s390x.
const DEFAULT: &[Arch] = &[Arch::Mips64, Arch::Powerpc, Arch::Armv7, Arch::S390x];

/// The longest one test binary may run under the emulator (seconds);
/// `timeout` ends a hung one so the run fails instead of hanging.
const BINARY_LIMIT_SECS: u32 = 900;

/// The environment variable a test reads to know it runs under qemu-user.
const UNDER_QEMU: &str = "MSGZC_UNDER_QEMU_USER";

/// Cases per property test unless `PROPTEST_CASES` says otherwise: the
/// default 256 take minutes per test in an unoptimised build under TCG, and
/// a byte-order or word-size slip shows in nearly every case.
const PROPTEST_CASES: &str = "32";

fn proptest_cases() -> String {
    std::env::var("PROPTEST_CASES").unwrap_or_else(|_| PROPTEST_CASES.to_string())
}

const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_RUSTDOC: &str = "/usr/bin/rustdoc";
const DEBIAN_RUST_SRC: &str = "/usr/lib/rustlib/src/rust/library";

/// `msgzc-conformance crate-tests`.
#[derive(Debug, clap::Args)]
pub struct CrateTestsArgs {
    /// The targets [default: mips64,powerpc,armv7,s390x].
    #[arg(long = "target", value_name = "NAME,..", value_delimiter = ',',
          value_parser = arches::parse_rust_arch)]
    archs: Vec<Arch>,
    /// Missing tools fail instead of skipping.
    #[arg(long)]
    require_all: bool,
    /// Unit and integration tests only (the doc tests, each its own
    /// binary, take the longest under the emulator).
    #[arg(long)]
    no_doc: bool,
    /// Passed to every test binary (a name filter, `--test-threads`, ...).
    #[arg(last = true, value_name = "TEST-ARGS")]
    test_args: Vec<String>,
}

/// What one target's run gave.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    /// Tests that printed `SKIP:` and passed: `(test, reason)`.
    skipped: Vec<(String, String)>,
    /// `#[ignore]`d tests.
    ignored: usize,
    /// Test binaries started (`Running ...`, `Doc-tests ...`).
    binaries: usize,
    /// Test binaries that ended with a `test result:` line.
    results: usize,
}

impl Tally {
    /// Binaries that died (signal, emulator crash, timeout) before libtest
    /// could print its result.
    fn crashed(&self) -> usize {
        self.binaries.saturating_sub(self.results)
    }
}

/// Reads cargo's and libtest's merged output line by line.
#[derive(Default)]
struct Parser {
    tally: Tally,
    /// Inside the `successes:` section (`--show-output`).
    in_successes: bool,
    /// The test whose captured output follows (`---- NAME stdout ----`).
    current: Option<String>,
    /// Skips of the current binary, counted when its result line comes.
    seen: BTreeSet<String>,
}

impl Parser {
    /// Takes one line; returns what to show of it, if anything.
    fn line(&mut self, l: &str) -> Option<String> {
        let t = l.trim_start();
        if t.starts_with("Running ") || t.starts_with("Doc-tests ") {
            self.tally.binaries += 1;
            self.in_successes = false;
            self.current = None;
            self.seen.clear();
        } else if l == "successes:" {
            self.in_successes = true;
        } else if l == "failures:" {
            self.in_successes = false;
            self.current = None;
        } else if let Some(name) = l
            .strip_prefix("---- ")
            .and_then(|r| r.strip_suffix(" stdout ----"))
        {
            self.current = Some(name.to_string());
            return None;
        } else if let Some(why) = l.strip_prefix("SKIP: ") {
            if let (true, Some(name)) = (self.in_successes, &self.current) {
                if self.seen.insert(name.clone()) {
                    self.tally.skipped.push((name.clone(), why.to_string()));
                }
                return Some(format!("skipped {name}: {why}"));
            }
        } else if let Some(r) = t.strip_prefix("test result: ") {
            self.result(r);
        }
        // The per-test "ok" lines and build progress would drown the rest;
        // the log keeps them.
        let noise = (t.starts_with("test ") && t.ends_with(" ... ok"))
            || t.starts_with("Compiling ")
            || t.starts_with("Downloaded ")
            || t.starts_with("Downloading ");
        let captured = self.in_successes && self.current.is_some();
        (!noise && !captured).then(|| shorten(l))
    }

    /// `ok. 45 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ...`
    fn result(&mut self, r: &str) {
        self.tally.results += 1;
        for part in r.split(['.', ';']) {
            let mut w = part.split_whitespace();
            let (Some(n), Some(what)) = (w.next(), w.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<usize>() else { continue };
            match what {
                "passed" => self.tally.passed += n,
                "failed" => self.tally.failed += n,
                "ignored" => self.tally.ignored += n,
                _ => {}
            }
        }
        // A skipped test passed in libtest's eyes; here it is a skip.
        self.tally.passed = self.tally.passed.saturating_sub(self.seen.len());
        self.seen.clear();
        self.current = None;
        self.in_successes = false;
    }
}

/// `l`, cut to a screen's worth (an assertion may print a whole buffer;
/// the log keeps it).
fn shorten(l: &str) -> String {
    const MAX: usize = 400;
    match l.char_indices().nth(MAX) {
        Some((i, _)) => format!("{} [.. {} bytes more]", &l[..i], l.len() - i),
        None => l.to_string(),
    }
}

/// Tools missing for `arch`, given the patched emulators' bin dir.
fn missing_tools(arch: Arch, qemu: &Result<PathBuf, String>) -> Vec<String> {
    let mut m = Vec::new();
    for (path, what) in [
        (DEBIAN_CARGO, "/usr/bin/cargo (cargo-web)"),
        (DEBIAN_RUSTC, "/usr/bin/rustc (rustc-web)"),
        (DEBIAN_RUSTDOC, "/usr/bin/rustdoc (rustc-web)"),
        (DEBIAN_RUST_SRC, "the std sources (rust-web-src)"),
    ] {
        if !Path::new(path).exists() {
            m.push(what.to_string());
        }
    }
    let gcc = toolchain(arch).gcc;
    if which(gcc).is_none() {
        m.push(gcc.to_string());
    }
    if which("timeout").is_none() {
        m.push("timeout (coreutils)".to_string());
    }
    match qemu {
        Ok(dir) if patched_qemu_binary(dir, arch).is_file() => {}
        Ok(_) => m.push(format!("patched qemu-{}", arches::info(arch).qemu_user)),
        Err(e) => m.push(format!(
            "patched qemu-{} ({e})",
            arches::info(arch).qemu_user
        )),
    }
    m
}

/// The cache's target directory, keyed by the compiler and the target
/// (one per target: a warm run of one target never waits for another's
/// artifacts); cargo's own fingerprints key everything else.
fn target_dir(triple: &str) -> PathBuf {
    crate::build::cache_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
        .join("crate-tests")
        .join(rustc_key())
        .join(triple)
}

/// Cargo fingerprints workspace crates by workspace-relative path and file
/// time, so a target dir shared by two checkouts can take the other one's
/// build as fresh. When the checkout changes, touch this one's crates.
fn claim_target_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let marker = dir.join("last-checkout");
    let root = crate::build::workspace_root();
    let here = root.to_string_lossy().into_owned();
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(here.as_str()) {
        for d in ["abi", "cmsg"] {
            touch_tree(&root.join(d));
        }
        std::fs::write(&marker, &here).map_err(|e| format!("{}: {e}", marker.display()))?;
    }
    Ok(())
}

/// `cargo test` for `arch`, its output merged into one stream (so the
/// order of `Running` and `test result` lines survives).
fn cargo_test(
    arch: Arch,
    triple: &str,
    qemu: &Path,
    o: &CrateTestsArgs,
) -> Result<Command, String> {
    let qemu = patched_qemu_binary(qemu, arch);
    let runner = format!(
        "timeout --kill-after=10 {BINARY_LIMIT_SECS} {}",
        qemu.display()
    );
    if qemu.to_string_lossy().contains(char::is_whitespace) {
        return Err(format!(
            "{}: a runner path may not hold spaces",
            qemu.display()
        ));
    }
    let up = target_env(triple);
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "exec \"$@\" 2>&1",
        "sh",
        DEBIAN_CARGO,
        "test",
        "--locked",
    ])
    .args(["-p", "msgzc-abi", "-p", "msgzc-cmsg", "--target", triple])
    .args(["-Zbuild-std=std,panic_abort", "--no-fail-fast"])
    .args(if o.no_doc {
        &["--lib", "--tests"][..]
    } else {
        &[]
    })
    .args(["--", "--show-output"])
    .args(&o.test_args)
    // The doc tests run on the target too, so they need the rustdoc that
    // matches the compiler (not rustup's, first on PATH).
    .env("RUSTDOC", DEBIAN_RUSTDOC)
    .env("RUSTDOCFLAGS", rustflags(arch))
    .env(format!("CARGO_TARGET_{up}_RUNNER"), runner)
    .env(UNDER_QEMU, "1")
    .env("PROPTEST_CASES", proptest_cases())
    .stdin(Stdio::null())
    .stdout(Stdio::piped());
    cross_env(&mut cmd, arch, &target_dir(triple));
    Ok(cmd)
}

/// Builds and runs one target's tests, showing the interesting lines and
/// logging all of them. `Ok(tally)` when cargo ran; its exit status is
/// folded into the verdict by the caller.
fn run_target(arch: Arch, qemu: &Path, o: &CrateTestsArgs) -> Result<(Tally, bool), String> {
    let triple = arches::rust_triple(arch).ok_or("no Rust target")?;
    let dir = target_dir(triple);
    claim_target_dir(&dir)?;
    let log_path = dir.join(format!("test-{triple}.log"));
    let mut log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut child = cargo_test(arch, triple, qemu, o)?
        .spawn()
        .map_err(|e| format!("{DEBIAN_CARGO}: {e}"))?;
    let out = child.stdout.take().ok_or("no stdout pipe")?;
    let mut p = Parser::default();
    for l in BufReader::new(out).lines() {
        let l = l.map_err(|e| format!("reading cargo's output: {e}"))?;
        let _ = writeln!(log, "{l}");
        if let Some(show) = p.line(&l) {
            println!("  [{arch}] {show}");
        }
    }
    let ok = child
        .wait()
        .map_err(|e| format!("{DEBIAN_CARGO}: {e}"))?
        .success();
    println!("  [{arch}] full log: {}", log_path.display());
    Ok((p.tally, ok))
}

/// One target's line in the summary; whether it passed.
fn report(arch: Arch, tally: &Tally, cargo_ok: bool, secs: f64) -> bool {
    let good = cargo_ok && tally.failed == 0 && tally.crashed() == 0 && tally.results > 0;
    println!(
        "{:<8} {:<5} {:>4} passed {:>3} failed {:>3} skipped {:>3} ignored {:>2} crashed  ({} binaries, {secs:.0} s)",
        arch.name(),
        if good { "ok" } else { "FAIL" },
        tally.passed,
        tally.failed,
        tally.skipped.len(),
        tally.ignored,
        tally.crashed(),
        tally.binaries,
    );
    for (name, why) in &tally.skipped {
        println!("           skipped under qemu-user: {name}: {why}");
    }
    if !cargo_ok && tally.failed == 0 && tally.crashed() == 0 {
        println!("           cargo failed before or between the tests (see the log)");
    }
    good
}

/// `msgzc-conformance crate-tests`.
pub fn main(mut o: CrateTestsArgs) -> ExitCode {
    if o.archs.is_empty() {
        o.archs = DEFAULT.to_vec();
    }
    let qemu = patched_qemu(&o.archs);
    let mut rows = Vec::new();
    let mut bad = 0;
    for &arch in &o.archs {
        let missing = missing_tools(arch, &qemu);
        if !missing.is_empty() {
            // The SKIP prefix is what ci/test counts.
            println!(
                "SKIP: crate tests on {arch}: missing {} (run: ci/bootstrap --cross)",
                missing.join(", ")
            );
            bad += usize::from(o.require_all);
            continue;
        }
        let Ok(dir) = &qemu else { continue };
        println!(
            "==> crate tests on {arch} ({})",
            arches::rust_triple(arch).unwrap_or("?")
        );
        let start = Instant::now();
        match run_target(arch, dir, &o) {
            Ok((tally, ok)) => rows.push((arch, tally, ok, start.elapsed().as_secs_f64())),
            Err(e) => {
                println!("{arch}: {e}");
                bad += 1;
            }
        }
    }
    println!("\ncrate tests (msgzc-abi, msgzc-cmsg) under patched qemu-user:");
    for (arch, tally, ok, secs) in &rows {
        bad += usize::from(!report(*arch, tally, *ok, *secs));
    }
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &str) -> Tally {
        let mut p = Parser::default();
        for l in lines.lines() {
            p.line(l);
        }
        p.tally
    }

    #[test]
    fn skips_are_taken_out_of_the_passes() {
        let t = feed(
            "     Running tests/real_kernel.rs (x)\n\
             \n\
             successes:\n\
             \n\
             ---- a stdout ----\n\
             SKIP: no SO_ZEROCOPY\n\
             SKIP: said twice\n\
             \n\
             ---- b stdout ----\n\
             fine\n\
             \n\
             successes:\n\
             \x20   a\n\
             \x20   b\n\
             \n\
             test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.1s\n",
        );
        assert_eq!((t.passed, t.failed, t.ignored), (2, 0, 1));
        assert_eq!(t.skipped, vec![("a".into(), "no SO_ZEROCOPY".into())]);
        assert_eq!(t.crashed(), 0);
    }

    #[test]
    fn a_binary_without_a_result_crashed_and_failures_count() {
        let t = feed(
            "     Running unittests src/lib.rs (x)\n\
             test result: FAILED. 4 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out\n\
             \x20    Running tests/real_kernel_batch.rs (y)\n\
             \x20  Doc-tests msgzc_abi\n\
             test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n\
             failures:\n\
             ---- c stdout ----\n\
             SKIP: not a skip, it failed\n",
        );
        assert_eq!((t.passed, t.failed, t.binaries, t.crashed()), (7, 2, 3, 1));
        assert!(t.skipped.is_empty());
    }

    fn parse(args: &[&str]) -> Result<CrateTestsArgs, clap::Error> {
        crate::parse_args(args)
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&["--target", "nosuch"]).is_err());
        assert!(parse(&["--target"]).is_err());
        assert!(parse(&["--target", ""]).is_err());
        assert!(parse(&["--target", "hppa"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["real_kernel"]).is_err(), "test args only after --");
        let o = parse(&["--target", "s390x,mips64", "--", "real_kernel"]).unwrap();
        assert_eq!(o.archs, vec![Arch::S390x, Arch::Mips64]);
        assert_eq!(o.test_args, vec!["real_kernel".to_string()]);
        assert!(!o.no_doc && parse(&["--no-doc"]).unwrap().no_doc);
    }
}
