//! `run`: builds the guest agents, runs them natively, through the 32-bit
//! compat layer or under qemu-user, judges every case on the host and
//! prints a matrix.
//!
//! Tiers, per target:
//! - `native`: the host's own target; the guest is this very binary.
//! - `compat`: the host kernel's 32-bit compat target (i686 on x86_64),
//!   built with Debian's Rust and run directly on the real kernel.
//! - `qemu-user`: everything else, under `qemu-<arch>-static` (stock
//!   Debian qemu-user, which refuses `SO_ZEROCOPY`).
//! - `qemu-patched`: the same targets under qemu-user built by `ci/qemu`
//!   with the patches in `conformance/qemu/` (`SO_ZEROCOPY`, `MSG_ZEROCOPY`,
//!   error-queue translation), selected with `--qemu patched|both`. The
//!   runner calls `ci/qemu --targets ...`, which returns at once when the
//!   binaries are cached and builds the missing ones otherwise.
//! - `system` and `system-patched` (`--tier system|all`, `--kernel
//!   stock|patched|both`): the agent as PID 1 on a real kernel under
//!   qemu-system ([`crate::system`]); one row per kernel that runs the
//!   target, its own and the 64-bit one that runs it in compat mode.
//!   `system-patched` kernels implement `SCM_ZC_NOTIFICATION`
//!   (`conformance/kernel/`), so the proposal's cases must pass there and
//!   read "kern-unsup" everywhere else.
//!
//! Rust guests are built with Debian's `/usr/bin/cargo` and
//! `/usr/bin/rustc` (`RUSTC_BOOTSTRAP=1`, `-Zbuild-std=std,panic_abort`,
//! static, the cross gcc as linker) into a target directory under
//! `$MSGZC_CACHE` (default `~/.cache/msgzc`), keyed by the compiler version
//! and not by the checkout, so fresh clones reuse the expensive std builds.
//! C guests (alpha, hppa, and any target with `--guest c`) and the
//! `abi_facts.c` program are built with the target's cross gcc.

use crate::arches;
use crate::build::{
    build_c, build_rust, c_compiler, cache_dir, first_line, patched_qemu, patched_qemu_binary,
    toolchain, which, workspace_root, DEBIAN_CARGO, DEBIAN_RUSTC, DEBIAN_RUST_SRC,
};
use crate::judge::{judge_abi_facts, judge_guest, CaseResult, Ctx, GuestLog, Outcome};
use crate::system::{self, Kernel, KernelKind};
use crate::table;
use msgzc_abi::Arch;
use msgzc_conformance_protocol::Case;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use wait_timeout::ChildExt;

/// The matrix's columns.
const CASES: [&str; Case::ALL.len()] = Case::NAMES;

/// How long one guest or facts program may run.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// How long one system-tier boot may take (TCG; hppa and sparc64 need the
/// most, about 15 s when idle).
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// The command that installs every tool the runner uses.
const BOOTSTRAP: &str = "ci/bootstrap --cross";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Lang {
    Rust,
    C,
}

impl Lang {
    fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::C => "c",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tier {
    Native,
    Compat,
    /// Stock qemu-user from `$PATH`.
    QemuUser,
    /// qemu-user built by `ci/qemu` with the project's patches.
    QemuPatched,
    /// PID 1 on a real kernel under qemu-system.
    System(KernelKind),
}

impl Tier {
    fn name(self) -> &'static str {
        match self {
            Tier::Native => "native",
            Tier::Compat => "compat",
            Tier::QemuUser => "qemu-user",
            Tier::QemuPatched => "qemu-patched",
            Tier::System(KernelKind::Stock) => "system",
            Tier::System(KernelKind::Patched) => "system-patched",
            Tier::System(KernelKind::LoopbackZc) => "system-loopback-zerocopy",
        }
    }

    fn emulated(self) -> bool {
        matches!(self, Tier::QemuUser | Tier::QemuPatched)
    }
}

/// Which qemu-user the emulated targets run under (`--qemu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QemuSel {
    Stock,
    Patched,
    Both,
}

impl QemuSel {
    fn tiers(self) -> &'static [Tier] {
        match self {
            QemuSel::Stock => &[Tier::QemuUser],
            QemuSel::Patched => &[Tier::QemuPatched],
            QemuSel::Both => &[Tier::QemuUser, Tier::QemuPatched],
        }
    }
}

/// The emulators of a run.
struct Emulators {
    /// `--qemu`.
    sel: QemuSel,
    /// The bin dir of the patched qemu-user (`ci/qemu`'s last line), or why
    /// there is none.
    patched: Result<PathBuf, String>,
}

impl Emulators {
    /// The program that runs `arch` on an emulated tier.
    fn program(&self, tier: Tier, arch: Arch) -> PathBuf {
        match (tier, &self.patched) {
            (Tier::QemuPatched, Ok(dir)) => patched_qemu_binary(dir, arch),
            (Tier::QemuPatched, Err(_)) => patched_qemu_binary(Path::new(""), arch),
            _ => PathBuf::from(toolchain(arch).qemu),
        }
    }

    /// Whether the patched binary for `arch` is there.
    fn has_patched(&self, arch: Arch) -> bool {
        self.patched.is_ok() && self.program(Tier::QemuPatched, arch).is_file()
    }

    /// The tier a compat row falls back to when the kernel cannot run it:
    /// the patched emulator under `--qemu patched` if it is there (nothing
    /// builds it for this rare case), else stock qemu-user.
    fn fallback(&self, arch: Arch) -> Tier {
        if self.sel == QemuSel::Patched && self.has_patched(arch) {
            Tier::QemuPatched
        } else {
            Tier::QemuUser
        }
    }
}

/// One row of the matrix: a target and the guest that runs on it.
#[derive(Clone, Copy, Debug)]
struct Row {
    arch: Arch,
    lang: Lang,
    tier: Tier,
    /// The system tier's kernel architecture (the target's, or the 64-bit
    /// one that runs it in compat mode).
    kernel: Option<Arch>,
}

impl Row {
    fn label(&self) -> String {
        match self.lang {
            Lang::C if arches::rust_triple(self.arch).is_some() => format!("{}/c", self.arch),
            _ => self.arch.name().to_string(),
        }
    }
}

/// The status of a row not run for want of a tool or kernel (its cases all
/// say which).
const MISSING: &str = "missing tools";

struct RowResult {
    row: Row,
    /// The kernel the guest ran on: `ARCH RELEASE` on the system tier,
    /// the host's release otherwise.
    kernel: String,
    cases: Vec<CaseResult>,
    build_secs: f64,
    run_secs: f64,
    status: String,
    output: String,
}

/// `run`'s command line.
#[derive(Debug, clap::Args)]
#[command(after_help = RUN_HELP)]
pub struct RunArgs {
    /// Every target (default: only the host's own, nothing to install).
    #[arg(long, conflicts_with = "target")]
    all: bool,
    /// These targets.
    #[arg(long, value_name = "NAME,..", value_delimiter = ',', value_parser = table::parse_arch)]
    target: Vec<Arch>,
    /// auto: Rust where Rust can build (C for alpha, hppa); both: two rows.
    #[arg(long, default_value = "auto", value_parser = ["auto", "rust", "c", "both"])]
    guest: String,
    /// stock: Debian's qemu-user (default; both with --tier user|all);
    /// patched: qemu-user with conformance/qemu/*.patch, built and cached by
    /// ci/qemu; both: two rows.
    #[arg(long, value_parser = ["stock", "patched", "both"])]
    qemu: Option<String>,
    /// user: native/compat/qemu-user with --qemu both; system: only the
    /// agents as PID 1 on real kernels under qemu-system (ci/kernels fetches
    /// and builds them, cached); all: both, side by side.
    #[arg(long, value_parser = ["user", "system", "all"])]
    tier: Option<String>,
    /// The system tier's kernels: stock (default), patched (6.1 with
    /// conformance/kernel/*.patch: SCM_ZC_NOTIFICATION), or both.
    #[arg(long, value_parser = ["stock", "patched", "both"])]
    kernel: Option<String>,
    /// Only the system-tier kernels of these architectures.
    #[arg(long, value_name = "A,..", value_delimiter = ',', value_parser = table::parse_arch)]
    kernel_arch: Option<Vec<Arch>>,
    /// Write the results as JSON here (checked before anything runs).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// A missing tool fails instead of skipping (also MSGZC_REQUIRE_ALL=1).
    #[arg(long)]
    require_all: bool,
    /// Run `ci/bootstrap --cross` first when tools are missing (needs root).
    #[arg(long)]
    install: bool,
    /// Every guest's output.
    #[arg(short, long)]
    verbose: bool,
}

const RUN_HELP: &str = "Progress: a bar with an ETA on stderr when it is a terminal; \
                        plain lines otherwise.";

struct Opts {
    archs: Vec<Arch>,
    guest: String,
    qemu: QemuSel,
    /// The user tiers (native, compat, qemu-user).
    user: bool,
    /// The system tier's kernels (empty: no system tier).
    kernels: Vec<KernelKind>,
    /// `--kernel-arch`: only these system-tier kernels.
    kernel_archs: Option<Vec<Arch>>,
    json: Option<PathBuf>,
    require_all: bool,
    install: bool,
    verbose: bool,
}

impl Opts {
    /// The options a command line means; `Err`: a combination clap cannot
    /// see is wrong.
    fn new(a: RunArgs, host: Arch) -> Result<Opts, String> {
        let (user, kernels) = match a.tier.as_deref() {
            None | Some("user") => (true, Vec::new()),
            Some("system") => (false, vec![KernelKind::Stock]),
            _ => (true, vec![KernelKind::Stock]),
        };
        // The user tier as a whole is stock and patched qemu-user.
        let qemu = match (a.qemu.as_deref(), a.tier.as_deref()) {
            (Some("patched"), _) => QemuSel::Patched,
            (Some("both"), _) | (None, Some("user" | "all")) => QemuSel::Both,
            _ => QemuSel::Stock,
        };
        let kernels = match a.kernel.as_deref() {
            None => kernels,
            Some(_) if kernels.is_empty() => {
                return Err(
                    "--kernel selects the system tier's kernels: add --tier system|all".into(),
                )
            }
            Some("stock") => vec![KernelKind::Stock],
            Some("patched") => vec![KernelKind::Patched],
            Some(_) => vec![KernelKind::Stock, KernelKind::Patched],
        };
        let archs = match (a.all, a.target.is_empty()) {
            (true, _) => Arch::ALL.to_vec(),
            (false, true) => vec![host],
            (false, false) => a.target,
        };
        Ok(Opts {
            archs,
            guest: a.guest,
            qemu,
            user,
            kernels,
            kernel_archs: a.kernel_arch,
            json: a.json,
            require_all: a.require_all
                || std::env::var("MSGZC_REQUIRE_ALL").is_ok_and(|v| v == "1"),
            install: a.install,
            verbose: a.verbose,
        })
    }
}

/// Whether `path` can take `--json`'s output: its directory exists and
/// takes a new file (tried with a probe, removed again), and it is not a
/// directory itself. Checked before the matrix runs, which takes minutes.
fn check_output(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!("no directory {}", dir.display()));
    }
    if path.is_dir() {
        return Err("is a directory".into());
    }
    let probe = dir.join(format!(".msgzc-conformance-probe-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The rows of a run, grouped by target (user tiers, then the system
/// tier), and the targets the system tier has no kernel for.
fn plan(o: &Opts, host: Arch) -> (Vec<Row>, Vec<Arch>) {
    let mut rows = Vec::new();
    let mut no_kernel = Vec::new();
    for &arch in &o.archs {
        let tiers: &[Tier] = if arch == host {
            &[Tier::Native]
        } else if host.compat_guest() == Some(arch) {
            &[Tier::Compat]
        } else {
            o.qemu.tiers()
        };
        let has_rust = arches::rust_triple(arch).is_some();
        let langs: &[Lang] = match (o.guest.as_str(), has_rust) {
            ("c", _) | (_, false) => &[Lang::C],
            ("both", true) => &[Lang::Rust, Lang::C],
            _ => &[Lang::Rust],
        };
        if o.user {
            for &tier in tiers {
                rows.extend(langs.iter().map(|&lang| Row {
                    arch,
                    lang,
                    tier,
                    kernel: None,
                }));
            }
        }
        let before = rows.len();
        for &kind in &o.kernels {
            for k in system::kernels_for(arch, kind) {
                if o.kernel_archs.as_ref().is_some_and(|ks| !ks.contains(&k)) {
                    continue;
                }
                rows.extend(langs.iter().map(|&lang| Row {
                    arch,
                    lang,
                    tier: Tier::System(kind),
                    kernel: Some(k),
                }));
            }
        }
        if !o.kernels.is_empty() && rows.len() == before {
            no_kernel.push(arch);
        }
    }
    (rows, no_kernel)
}

/// Something a row needs that is not there.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Need {
    /// A program or package `ci/bootstrap --cross` installs.
    Tool(String),
    /// The patched qemu-user of `ci/qemu` for this target.
    PatchedQemu(Arch),
    /// The system tier's kernel (why `ci/kernels` gave none).
    Kernel(String),
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Need::Tool(t) => f.write_str(t),
            Need::PatchedQemu(a) => write!(f, "patched qemu-{}", arches::info(*a).qemu_user),
            Need::Kernel(e) => write!(f, "kernel: {e}"),
        }
    }
}

/// Tools a row needs that are missing.
fn missing_tools(row: Row, host: Arch, emu: &Emulators) -> Vec<Need> {
    let tc = toolchain(row.arch);
    let mut m = Vec::new();
    if c_compiler(row.arch, host).is_none() {
        m.push(Need::Tool(tc.gcc.to_string()));
    }
    // The system tier runs abi_facts on the user tiers.
    let stock_qemu = row.tier == Tier::QemuUser
        || (matches!(row.tier, Tier::System(_))
            && facts_tier(row.arch, host, emu) == Tier::QemuUser);
    if stock_qemu && which(tc.qemu).is_none() {
        m.push(Need::Tool(tc.qemu.to_string()));
    }
    if row.tier == Tier::QemuPatched && !emu.has_patched(row.arch) {
        m.push(Need::PatchedQemu(row.arch));
    }
    if row.lang == Lang::Rust && row.tier != Tier::Native {
        for (path, what) in [
            (DEBIAN_CARGO, "/usr/bin/cargo (cargo-web)"),
            (DEBIAN_RUSTC, "/usr/bin/rustc (rustc-web)"),
            (DEBIAN_RUST_SRC, "the std sources (rust-web-src)"),
        ] {
            if !Path::new(path).exists() {
                m.push(Need::Tool(what.to_string()));
            }
        }
    }
    m
}

struct RunOut {
    stdout: String,
    stderr: String,
    status: Option<ExitStatus>,
    timed_out: bool,
}

/// Runs `cmd` with a time limit, collecting its output.
fn run_limited(mut cmd: Command, limit: Duration) -> std::io::Result<RunOut> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut so = child.stdout.take().expect("piped");
    let mut se = child.stderr.take().expect("piped");
    let t1 = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    // On time-out the child is killed and reaped; the readers then see
    // end of file and return what it wrote.
    let (status, timed_out) = match child.wait_timeout(limit)? {
        Some(st) => (Some(st), false),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            (None, true)
        }
    };
    let stdout = String::from_utf8_lossy(&t1.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t2.join().unwrap_or_default()).into_owned();
    Ok(RunOut {
        stdout,
        stderr,
        status,
        timed_out,
    })
}

/// A command that runs `exe` on `row`'s tier.
fn launcher(row: Row, exe: &Path, emu: &Emulators) -> Command {
    match row.tier {
        Tier::QemuUser | Tier::QemuPatched => {
            let mut c = Command::new(emu.program(row.tier, row.arch));
            c.arg(exe);
            c
        }
        Tier::Native | Tier::Compat => Command::new(exe),
        Tier::System(_) => unreachable!("system-tier rows boot a kernel (run_system_row)"),
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// Where `abi_facts` (a user program printing its toolchain's numbers)
/// runs for `arch`: natively, through compat, else under qemu-user.
fn facts_tier(arch: Arch, host: Arch, emu: &Emulators) -> Tier {
    if arch == host {
        Tier::Native
    } else if host.compat_guest() == Some(arch) {
        Tier::Compat
    } else {
        emu.fallback(arch)
    }
}

/// Builds a row's guest agent: this binary for the native Rust row, else
/// the cached static build.
fn build_guest(row: Row, host: Arch, cache: &Path) -> Result<PathBuf, String> {
    match (row.lang, row.tier) {
        (Lang::Rust, Tier::Native) => std::env::current_exe().map_err(|e| e.to_string()),
        (Lang::Rust, _) => build_rust(row.arch, cache),
        (Lang::C, _) => {
            let out = cache.join("c").join(row.arch.name()).join("guest");
            let src = workspace_root().join("conformance/guest-c/guest.c");
            build_c(row.arch, host, &src, &out).map(|()| out)
        }
    }
}

/// Every guest case failed (or skipped) for one reason.
fn all_cases(row: Row, kernel: String, outcome: Outcome, build_secs: f64) -> RowResult {
    RowResult {
        row,
        kernel,
        cases: Case::guest_cases()
            .map(|case| CaseResult {
                case: case.name(),
                outcome: outcome.clone(),
                findings: Vec::new(),
            })
            .collect(),
        build_secs,
        run_secs: 0.0,
        status: "not run".into(),
        output: String::new(),
    }
}

/// Boots one system-tier row's agent on `kernel` and judges it.
fn run_system_row(
    row: Row,
    host: Arch,
    cache: &Path,
    facts: &Outcome,
    kernel: &Kernel,
) -> RowResult {
    let label = format!("{} {}", kernel.arch, kernel.release);
    let start = Instant::now();
    let built = build_guest(row, host, cache);
    let build_secs = secs(start.elapsed());
    let exe = match built {
        Ok(e) => e,
        Err(why) => {
            return with_facts(all_cases(row, label, Outcome::Fail(why), build_secs), facts)
        }
    };
    let run = match system::boot(
        kernel,
        &exe,
        &system::guest_args(row.lang.name(), &[]),
        BOOT_TIMEOUT,
    ) {
        Ok(r) => r,
        Err(e) => {
            let why = format!("cannot boot: {e}");
            return with_facts(all_cases(row, label, Outcome::Fail(why), build_secs), facts);
        }
    };
    let cases = system::judge(&run, row.arch, row.lang.name());
    with_facts(
        RowResult {
            row,
            kernel: format!("{} {}", kernel.arch, run.kernel),
            cases,
            build_secs,
            run_secs: secs(Duration::from_secs_f64(run.secs)),
            status: run.status(),
            output: run.guest_output(),
        },
        facts,
    )
}

/// Builds and runs one row's guest and judges it.
fn run_row(row: Row, host: Arch, cache: &Path, facts: &Outcome, emu: &Emulators) -> RowResult {
    let fail_all =
        |why: String, build_secs| all_cases(row, kernel_release(), Outcome::Fail(why), build_secs);
    let start = Instant::now();
    let built = build_guest(row, host, cache);
    let build_secs = secs(start.elapsed());
    let exe = match built {
        Ok(e) => e,
        Err(why) => return with_facts(fail_all(why, build_secs), facts),
    };
    let start = Instant::now();
    let mut row = row;
    let mut cmd = launcher(row, &exe, emu);
    if row.lang == Lang::Rust {
        cmd.arg("guest");
    }
    let mut out = run_limited(cmd, RUN_TIMEOUT);
    // A kernel without 32-bit compat cannot exec the guest: emulate it.
    let fallback = emu.fallback(row.arch);
    if row.tier == Tier::Compat
        && out.is_err()
        && which(&emu.program(fallback, row.arch).to_string_lossy()).is_some()
    {
        row.tier = fallback;
        let mut cmd = launcher(row, &exe, emu);
        if row.lang == Lang::Rust {
            cmd.arg("guest");
        }
        out = run_limited(cmd, RUN_TIMEOUT);
    }
    let run_secs = secs(start.elapsed());
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            return with_facts(
                fail_all(format!("cannot run guest: {e}"), build_secs),
                facts,
            )
        }
    };
    let ctx = Ctx {
        arch: row.arch,
        host,
        emulated: row.tier.emulated(),
        patched: row.tier == Tier::QemuPatched,
        // The host's kernel: no released kernel has the proposal.
        zc_kernel: false,
    };
    let log = GuestLog::parse(&out.stdout);
    let mut cases = judge_guest(ctx, row.lang.name(), &log);
    let status = if out.timed_out {
        format!("killed after {}s", RUN_TIMEOUT.as_secs())
    } else {
        match out.status {
            Some(s) if s.success() && log.done => "ok".to_string(),
            Some(s) => format!("{s}{}", if log.done { "" } else { ", no DONE" }),
            None => "unknown".into(),
        }
    };
    if status != "ok" {
        let tail = out.stderr.lines().last().unwrap_or("").to_string();
        for c in &mut cases {
            if let Outcome::Fail(w) = &mut c.outcome {
                w.push_str(&format!(" [guest {status}: {tail}]"));
            }
        }
    }
    with_facts(
        RowResult {
            row,
            kernel: kernel_release(),
            cases,
            build_secs,
            run_secs,
            status,
            output: out.stdout,
        },
        facts,
    )
}

fn with_facts(mut r: RowResult, facts: &Outcome) -> RowResult {
    r.cases.insert(
        0,
        CaseResult {
            case: Case::AbiFacts.name(),
            outcome: facts.clone(),
            findings: Vec::new(),
        },
    );
    r
}

/// `abi_facts`: `abi_facts.c` built with `arch`'s toolchain, run on its
/// tier, compared with the tables.
fn abi_facts(arch: Arch, tier: Tier, host: Arch, cache: &Path, emu: &Emulators) -> Outcome {
    let out = cache.join("c").join(arch.name()).join("abi_facts");
    let src = workspace_root().join("conformance/guest-c/abi_facts.c");
    if let Err(e) = build_c(arch, host, &src, &out) {
        return Outcome::Fail(e);
    }
    let row = Row {
        arch,
        lang: Lang::C,
        tier,
        kernel: None,
    };
    match run_limited(launcher(row, &out, emu), RUN_TIMEOUT) {
        Ok(o) if o.status.is_some_and(|s| s.success()) => judge_abi_facts(arch, &o.stdout),
        Ok(o) => Outcome::Fail(format!(
            "abi_facts exited {:?}: {}",
            o.status,
            o.stderr.trim()
        )),
        // No compat layer: under the emulator instead.
        Err(_) if tier == Tier::Compat => abi_facts(arch, emu.fallback(arch), host, cache, emu),
        Err(e) => Outcome::Fail(format!("cannot run abi_facts: {e}")),
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// `ts` as `YYYY-MM-DDTHH:MM:SSZ` (the JSON's `date`: whole seconds).
fn utc(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// What a run found out before its first row: the tools, emulators and
/// kernels its rows need.
struct Setup {
    host: Arch,
    rows: Vec<Row>,
    no_kernel: Vec<Arch>,
    cache: PathBuf,
    emu: Emulators,
    qemu_version: Option<String>,
    patched_version: Option<String>,
    rustc: Option<String>,
    kernels: BTreeMap<(KernelKind, Arch), Result<Kernel, String>>,
}

/// The `run` subcommand.
pub fn run(args: RunArgs) -> ExitCode {
    let Some(host) = Arch::native() else {
        eprintln!("run: this host is not one of the named targets");
        return ExitCode::FAILURE;
    };
    let o = match Opts::new(args, host) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &o.json {
        if let Err(e) = check_output(path) {
            eprintln!("error: --json {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    let wall = Instant::now();
    let setup = prepare(&o, host);
    print_header(&o, &setup);
    let (results, missing) = run_rows(&o, &setup);
    print_matrix(&results);
    print_findings(&results);
    let totals = Totals::of(&results);
    let wall_secs = secs(wall.elapsed());
    println!(
        "\n{} pass, {} fail, {} emulator-unsupported, {} kernel-unsupported, \
         {} skipped ({} rows × {} cases) in {wall_secs:.1}s",
        totals.pass,
        totals.fail,
        totals.emulator_unsupported,
        totals.kernel_unsupported,
        totals.skip,
        results.len(),
        CASES.len()
    );
    if missing.tools {
        println!("some tools are missing; install them with: sudo {BOOTSTRAP}");
    }
    if missing.patched {
        println!("the patched qemu-user is missing; build it with: sudo ci/qemu");
    }
    if let Some(path) = &o.json {
        let doc = json_doc(&results, &setup, wall_secs, totals);
        if let Err(e) = std::fs::write(path, doc + "\n") {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("results: {}", path.display());
    }
    if totals.fail > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Installs missing tools (`--install`), finds the emulators, compilers
/// and kernels of the rows.
fn prepare(o: &Opts, host: Arch) -> Setup {
    let (rows, no_kernel) = plan(o, host);
    if o.install {
        install_missing(&rows, host, o.qemu);
    }
    let emu = emulators(o.qemu, &rows);
    let qemu_version = rows
        .iter()
        .find(|r| r.tier == Tier::QemuUser)
        .and_then(|r| first_line(toolchain(r.arch).qemu, &["--version"]));
    let patched_version = rows
        .iter()
        .find(|r| r.tier == Tier::QemuPatched && emu.has_patched(r.arch))
        .and_then(|r| {
            first_line(
                &emu.program(Tier::QemuPatched, r.arch).to_string_lossy(),
                &["--version"],
            )
        });
    let rustc = rows
        .iter()
        .any(|r| r.lang == Lang::Rust && r.tier != Tier::Native)
        .then(|| first_line(DEBIAN_RUSTC, &["-V"]))
        .flatten();
    let kernels = locate_kernels(&rows);
    Setup {
        host,
        rows,
        no_kernel,
        cache: cache_dir(),
        emu,
        qemu_version,
        patched_version,
        rustc,
        kernels,
    }
}

/// `--install`: `ci/bootstrap --cross` when a row misses a tool it
/// installs (`ci/qemu` installs what the patched emulator needs itself).
fn install_missing(rows: &[Row], host: Arch, sel: QemuSel) {
    let no_emu = Emulators {
        sel,
        patched: Err("not needed".into()),
    };
    let needs = |r: &Row| {
        missing_tools(*r, host, &no_emu)
            .iter()
            .any(|m| !matches!(m, Need::PatchedQemu(_)))
    };
    if !rows.iter().any(needs) {
        return;
    }
    let script = workspace_root().join("ci/bootstrap");
    println!("installing missing tools: {} --cross", script.display());
    let ok = Command::new(&script)
        .arg("--cross")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("run: {BOOTSTRAP} failed");
    }
}

/// The emulators of the rows: the patched one from `ci/qemu`, for the
/// targets of its rows.
fn emulators(sel: QemuSel, rows: &[Row]) -> Emulators {
    let patched_archs: Vec<Arch> = rows
        .iter()
        .filter(|r| r.tier == Tier::QemuPatched)
        .map(|r| r.arch)
        .collect();
    if patched_archs.is_empty() {
        return Emulators {
            sel,
            patched: Err("not needed".into()),
        };
    }
    let t = Instant::now();
    let patched = patched_qemu(&patched_archs);
    match &patched {
        Ok(d) => println!(
            "patched qemu-user: {} ({:.1}s)",
            d.display(),
            secs(t.elapsed())
        ),
        Err(e) => println!("patched qemu-user: {e}"),
    }
    Emulators { sel, patched }
}

/// The system tier's kernels: `ci/kernels` fetches or builds what is not
/// cached (minutes per self-built kernel when cold).
fn locate_kernels(rows: &[Row]) -> BTreeMap<(KernelKind, Arch), Result<Kernel, String>> {
    let mut kernels = BTreeMap::new();
    for r in rows {
        let (Tier::System(kind), Some(k)) = (r.tier, r.kernel) else {
            continue;
        };
        kernels.entry((kind, k)).or_insert_with(|| {
            let t = Instant::now();
            let found = Kernel::locate(k, kind, true);
            match &found {
                Ok(kn) => println!(
                    "{} {k} kernel: {} ({:.1}s) {}",
                    kind.name(),
                    kn.release,
                    secs(t.elapsed()),
                    kn.dir.display()
                ),
                Err(e) => println!("{} {k} kernel: {e}", kind.name()),
            }
            found
        });
    }
    kernels
}

fn print_header(o: &Opts, s: &Setup) {
    println!(
        "msgzc conformance: {} row(s); host {}, Linux {}",
        s.rows.len(),
        s.host,
        kernel_release()
    );
    if !s.no_kernel.is_empty() {
        let kinds: Vec<&str> = o.kernels.iter().map(|k| k.name()).collect();
        let names: Vec<&str> = s.no_kernel.iter().map(|a| a.name()).collect();
        println!(
            "system tier: no {} kernel runs {} ({} target(s) without system rows)",
            kinds.join("/"),
            names.join(" "),
            s.no_kernel.len()
        );
    }
    if let Some(q) = &s.qemu_version {
        println!("emulator: {q}");
    }
    if let Some(q) = &s.patched_version {
        println!("patched emulator: {q}");
    }
    if let Some(r) = &s.rustc {
        println!("guest compiler: {r}; cache: {}", s.cache.display());
    }
}

/// Which kinds of tools rows missed (for the closing hints).
#[derive(Default)]
struct Missing {
    tools: bool,
    patched: bool,
}

/// A progress bar with an ETA on stderr when it is a terminal; `None`
/// otherwise (CI logs keep their plain lines).
fn progress(rows: usize) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(rows as u64);
    let style = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} rows, ETA {eta}: {msg}",
    );
    if let Ok(style) = style {
        bar.set_style(style.progress_chars("=> "));
    }
    // A row can build for minutes: keep the clock moving meanwhile.
    bar.enable_steady_tick(Duration::from_secs(1));
    Some(bar)
}

/// Runs every row, printing one line (and details) per row.
fn run_rows(o: &Opts, s: &Setup) -> (Vec<RowResult>, Missing) {
    let mut results = Vec::new();
    let mut facts_cache: BTreeMap<Arch, Outcome> = BTreeMap::new();
    let mut missing = Missing::default();
    let mut shown_missing = false;
    let bar = progress(s.rows.len());
    for (i, &row) in s.rows.iter().enumerate() {
        let head = format!(
            "[{:>2}/{}] {:<13} {:<14} {:<4} ",
            i + 1,
            s.rows.len(),
            row.label(),
            row.tier.name(),
            row.lang.name()
        );
        match &bar {
            Some(b) => b.set_message(head.trim_end().to_string()),
            None => {
                print!("{head}");
                let _ = std::io::stdout().flush();
            }
        }
        let r = run_one(o, s, row, &mut facts_cache, &mut missing);
        let mut show = || {
            if bar.is_some() {
                print!("{head}");
            }
            print_row(o, &r, &mut shown_missing);
        };
        match &bar {
            Some(b) => {
                b.suspend(&mut show);
                b.inc(1);
            }
            None => show(),
        }
        results.push(r);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    (results, missing)
}

/// One row: judged, or skipped (failed with `--require-all`) when a tool
/// or its kernel is missing.
fn run_one(
    o: &Opts,
    s: &Setup,
    row: Row,
    facts_cache: &mut BTreeMap<Arch, Outcome>,
    any: &mut Missing,
) -> RowResult {
    let mut missing = missing_tools(row, s.host, &s.emu);
    let kernel = match (row.tier, row.kernel) {
        (Tier::System(kind), Some(k)) => match &s.kernels[&(kind, k)] {
            Ok(kn) => Some(kn),
            Err(e) => {
                missing.push(Need::Kernel(e.clone()));
                None
            }
        },
        _ => None,
    };
    if !missing.is_empty() {
        return not_run(o, row, &missing, kernel, any);
    }
    let tier = match row.tier {
        Tier::System(_) => facts_tier(row.arch, s.host, &s.emu),
        t => t,
    };
    let facts = facts_cache
        .entry(row.arch)
        .or_insert_with(|| abi_facts(row.arch, tier, s.host, &s.cache, &s.emu))
        .clone();
    match kernel {
        Some(kn) => run_system_row(row, s.host, &s.cache, &facts, kn),
        None => run_row(row, s.host, &s.cache, &facts, &s.emu),
    }
}

/// A row whose tools are `missing`: every case skipped, or failed with
/// `--require-all`.
fn not_run(
    o: &Opts,
    row: Row,
    missing: &[Need],
    kernel: Option<&Kernel>,
    any: &mut Missing,
) -> RowResult {
    let patched_only = missing.iter().all(|m| matches!(m, Need::PatchedQemu(_)));
    let kernel_only = missing.iter().all(|m| matches!(m, Need::Kernel(_)));
    any.tools |= !patched_only && !kernel_only;
    any.patched |= patched_only;
    let how = if patched_only {
        format!(
            "build: ci/qemu --targets {} (root for its packages)",
            arches::info(row.arch).qemu_user
        )
    } else if kernel_only {
        "ci/kernels needs root the first time".to_string()
    } else {
        format!("install: {BOOTSTRAP} (root)")
    };
    let names: Vec<String> = missing.iter().map(Need::to_string).collect();
    let why = format!("missing {}; {how}", names.join(", "));
    let outcome = if o.require_all {
        Outcome::Fail(why)
    } else {
        Outcome::Skip(why)
    };
    RowResult {
        row,
        kernel: kernel.map_or_else(kernel_release, |k| format!("{} {}", k.arch, k.release)),
        cases: CASES
            .iter()
            .map(|&case| CaseResult {
                case,
                outcome: outcome.clone(),
                findings: Vec::new(),
            })
            .collect(),
        build_secs: 0.0,
        run_secs: 0.0,
        status: MISSING.into(),
        output: String::new(),
    }
}

/// The rest of a row's line (after its `[i/n] label tier lang` head):
/// times and counts, then failures, skips and (`-v`) the guest's output.
fn print_row(o: &Opts, r: &RowResult, shown_missing: &mut bool) {
    let count = |l: &str| r.cases.iter().filter(|c| c.outcome.label() == l).count();
    println!(
        "build {:>5.1}s run {:>4.1}s  {} pass, {} FAIL, {} emu-unsup, {} kern-unsup, {} skip",
        r.build_secs,
        r.run_secs,
        count("pass"),
        count("FAIL"),
        count("emu-unsup"),
        count("kern-unsup"),
        count("skip")
    );
    let missing = r.status == MISSING;
    for c in r.cases.iter().filter(|_| !missing) {
        match &c.outcome {
            Outcome::Fail(w) => {
                println!("      FAIL {}: {w}", c.case);
                let log = GuestLog::parse(&r.output);
                for l in log.case_text(c.case).iter().take(12) {
                    let l: String = l.chars().take(160).collect();
                    println!("        | {l}");
                }
            }
            Outcome::Skip(w) => println!("      skip {}: {w}", c.case),
            _ => {}
        }
    }
    let missing_line = r
        .cases
        .iter()
        .filter(|_| missing)
        .find_map(|c| match &c.outcome {
            Outcome::Skip(w) | Outcome::Fail(w) => Some(w),
            _ => None,
        });
    if let Some(w) = missing_line {
        if o.verbose || !*shown_missing {
            println!("      {w}");
        }
        *shown_missing = true;
    }
    if o.verbose {
        for l in r.output.lines() {
            let l: String = l.chars().take(200).collect();
            println!("      > {l}");
        }
    }
}

fn print_matrix(results: &[RowResult]) {
    let w = |c: &str| c.len().max(10);
    println!("\nmatrix ({} rows × {} cases)", results.len(), CASES.len());
    let head: Vec<String> = CASES.iter().map(|c| format!("{c:<0$}", w(c))).collect();
    let kw = results
        .iter()
        .map(|r| r.kernel.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "  {:<13} {:<14} {:<5} {:<kw$} {}",
        "target",
        "tier",
        "guest",
        "kernel",
        head.join(" ").trim_end()
    );
    for r in results {
        let cells: Vec<String> = CASES
            .iter()
            .map(|c| {
                let label = r
                    .cases
                    .iter()
                    .find(|x| x.case == *c)
                    .map_or("-", |x| x.outcome.label());
                format!("{label:<0$}", w(c))
            })
            .collect();
        println!(
            "  {:<13} {:<14} {:<5} {:<kw$} {}",
            r.row.label(),
            r.row.tier.name(),
            r.row.lang.name(),
            r.kernel,
            cells.join(" ").trim_end()
        );
    }
}

fn print_findings(results: &[RowResult]) {
    let mut by_text: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in results {
        for c in &r.cases {
            for f in &c.findings {
                let who = by_text.entry(f).or_default();
                let label = r.row.label();
                if !who.contains(&label) {
                    who.push(label);
                }
            }
        }
    }
    if by_text.is_empty() {
        return;
    }
    println!("\nfindings (not failures):");
    for (text, who) in by_text {
        println!("  - {text} [{}]", who.join(", "));
    }
}

/// Case counts by outcome (the JSON's `totals`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
struct Totals {
    pass: usize,
    fail: usize,
    emulator_unsupported: usize,
    kernel_unsupported: usize,
    skip: usize,
}

impl Totals {
    fn of(results: &[RowResult]) -> Totals {
        let n = |l: &str| {
            results
                .iter()
                .flat_map(|r| &r.cases)
                .filter(|c| c.outcome.label() == l)
                .count()
        };
        Totals {
            pass: n("pass"),
            fail: n("FAIL"),
            emulator_unsupported: n("emu-unsup"),
            kernel_unsupported: n("kern-unsup"),
            skip: n("skip"),
        }
    }
}

/// `--json`'s document (`fuzz/seeds.py` and CI's artifacts read it).
#[derive(Serialize)]
struct Doc<'a> {
    date: String,
    host: HostDoc,
    qemu: Option<&'a str>,
    qemu_patched: Option<&'a str>,
    guest_rustc: Option<&'a str>,
    wall_seconds: f64,
    totals: Totals,
    cases: &'a [&'a str],
    rows: Vec<RowDoc<'a>>,
}

#[derive(Serialize)]
struct HostDoc {
    arch: &'static str,
    kernel: String,
}

#[derive(Serialize)]
struct RowDoc<'a> {
    target: &'static str,
    guest: &'static str,
    tier: &'static str,
    kernel: &'a str,
    /// The qemu-user binary on emulated tiers, else null.
    emulator: Option<String>,
    build_seconds: f64,
    run_seconds: f64,
    guest_status: &'a str,
    cases: Vec<CaseDoc<'a>>,
    guest_output: Vec<&'a str>,
}

#[derive(Serialize)]
struct CaseDoc<'a> {
    case: &'a str,
    outcome: &'a str,
    detail: &'a str,
    findings: &'a [String],
}

fn row_doc<'a>(r: &'a RowResult, emulators: &Emulators) -> RowDoc<'a> {
    RowDoc {
        target: r.row.arch.name(),
        guest: r.row.lang.name(),
        tier: r.row.tier.name(),
        kernel: &r.kernel,
        emulator: r.row.tier.emulated().then(|| {
            emulators
                .program(r.row.tier, r.row.arch)
                .to_string_lossy()
                .into_owned()
        }),
        build_seconds: r.build_secs,
        run_seconds: r.run_secs,
        guest_status: &r.status,
        cases: r
            .cases
            .iter()
            .map(|c| CaseDoc {
                case: c.case,
                outcome: c.outcome.name(),
                detail: c.outcome.detail(),
                findings: &c.findings,
            })
            .collect(),
        guest_output: r.output.lines().collect(),
    }
}

fn json_doc(results: &[RowResult], s: &Setup, wall_secs: f64, totals: Totals) -> String {
    let doc = Doc {
        date: utc(jiff::Timestamp::now()),
        host: HostDoc {
            arch: s.host.name(),
            kernel: kernel_release(),
        },
        qemu: s.qemu_version.as_deref(),
        qemu_patched: s.patched_version.as_deref(),
        guest_rustc: s.rustc.as_deref(),
        wall_seconds: wall_secs,
        totals,
        cases: &CASES,
        rows: results.iter().map(|r| row_doc(r, &s.emu)).collect(),
    };
    // Only strings, numbers and lists of them: serializing cannot fail.
    serde_json::to_string(&doc).unwrap_or_default()
}

/// `judge`'s command line.
#[derive(Debug, clap::Args)]
pub struct JudgeArgs {
    /// The target the guest ran on.
    #[arg(long, value_name = "NAME", value_parser = table::parse_arch)]
    target: Arch,
    /// The guest's language.
    #[arg(long, default_value = "rust", value_parser = ["rust", "c"])]
    lang: String,
    /// Where it ran: natively, under stock qemu-user, or the patched one.
    #[arg(long, default_value = "emulated", value_parser = ["native", "emulated", "patched"])]
    tier: String,
}

/// The `judge` subcommand: judges a guest's output produced elsewhere (by
/// `cross run … -- guest` in CI, or on a board) exactly as `run` would.
///
/// ```text
/// msgzc-conformance judge --target NAME [--lang rust|c] [--tier native|emulated|patched] < OUTPUT
/// ```
pub fn judge_saved(a: JudgeArgs) -> ExitCode {
    let Some(host) = Arch::native() else {
        eprintln!("judge: this host is not one of the named targets");
        return ExitCode::FAILURE;
    };
    let (arch, lang, tier) = (a.target, a.lang, a.tier);
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("judge: stdin: {e}");
        return ExitCode::FAILURE;
    }
    let ctx = Ctx {
        arch,
        host,
        emulated: tier != "native",
        patched: tier == "patched",
        zc_kernel: false,
    };
    let cases = judge_guest(ctx, &lang, &GuestLog::parse(&text));
    let mut fails = 0;
    for c in &cases {
        println!(
            "{:<16} {:<10} {}",
            c.case,
            c.outcome.label(),
            c.outcome.detail()
        );
        for f in &c.findings {
            println!("{:<16} finding    {f}", "");
        }
        fails += usize::from(matches!(c.outcome, Outcome::Fail(_)));
    }
    let count = |l: &str| cases.iter().filter(|c| c.outcome.label() == l).count();
    println!(
        "{arch} ({lang}, {tier}): {} pass, {fails} fail, {} emulator-unsupported, {} skipped",
        count("pass"),
        count("emu-unsup"),
        count("skip")
    );
    if fails > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_whole_seconds() {
        let at = |s: i64| utc(jiff::Timestamp::from_second(s).unwrap());
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(19_723 * 86_400), "2024-01-01T00:00:00Z");
        assert_eq!(at(20_416 * 86_400 + 3_723), "2025-11-24T01:02:03Z");
        let now = utc(jiff::Timestamp::now());
        assert_eq!(now.len(), 20, "{now}");
    }

    /// `run`'s options from words, as main.rs parses them.
    fn parse_opts(args: &[String], host: Arch) -> Result<Opts, String> {
        #[derive(clap::Parser)]
        struct Run {
            #[command(flatten)]
            a: RunArgs,
        }
        let words = std::iter::once("run".to_string()).chain(args.iter().cloned());
        let run = <Run as clap::Parser>::try_parse_from(words).map_err(|e| e.to_string())?;
        Opts::new(run.a, host)
    }

    #[test]
    fn bad_targets_are_usage_errors() {
        for bad in [
            "--target=",
            "--target=x86_64,",
            "--target=vax",
            "--all --target=mips",
        ] {
            let e = parse_opts(&args(bad), Arch::X86_64).err();
            assert!(e.is_some(), "{bad}");
        }
        let o = parse_opts(&args("--target mips,x86_64"), Arch::X86_64).unwrap();
        assert_eq!(o.archs, [Arch::Mips, Arch::X86_64]);
        // --tier user means both qemu-users unless --qemu says otherwise.
        let o = parse_opts(&args("--tier user --qemu stock"), Arch::X86_64).unwrap();
        assert_eq!(o.qemu, QemuSel::Stock);
        let o = parse_opts(&args("--tier user"), Arch::X86_64).unwrap();
        assert_eq!(o.qemu, QemuSel::Both);
    }

    #[test]
    fn the_json_path_is_checked_first() {
        assert!(check_output(Path::new("/nonexistent/dir/x.json")).is_err());
        assert!(check_output(&std::env::temp_dir()).is_err());
        let ok = std::env::temp_dir().join("msgzc-check-output.json");
        assert_eq!(check_output(&ok), Ok(()));
        assert!(!ok.exists(), "the check leaves no file behind");
    }

    #[test]
    fn plan_picks_tiers_and_guests() {
        let o = parse_opts(
            &["--all".into(), "--guest".into(), "both".into()],
            Arch::X86_64,
        )
        .unwrap();
        let (rows, no_kernel) = plan(&o, Arch::X86_64);
        assert!(no_kernel.is_empty());
        // 14 Rust targets with both guests, alpha and hppa with C only.
        assert_eq!(rows.len(), 14 * 2 + 2);
        assert_eq!(rows[0].tier, Tier::Native);
        assert!(rows
            .iter()
            .any(|r| r.arch == Arch::I686 && r.tier == Tier::Compat));
        assert!(rows
            .iter()
            .filter(|r| r.arch == Arch::Hppa)
            .all(|r| r.lang == Lang::C && r.tier == Tier::QemuUser));
        let o = parse_opts(&[], Arch::X86_64).unwrap();
        assert_eq!(plan(&o, Arch::X86_64).0.len(), 1);
        assert!(parse_opts(&["--target".into(), "vax".into()], Arch::X86_64).is_err());
    }

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn qemu_selects_the_emulated_tiers_only() {
        let rows = |a: &str| plan(&parse_opts(&args(a), Arch::X86_64).unwrap(), Arch::X86_64).0;
        let stock = rows("--all --guest both");
        assert!(stock.iter().all(|r| r.tier != Tier::QemuPatched));
        let patched = rows("--all --guest both --qemu patched");
        assert_eq!(patched.len(), stock.len());
        assert!(patched.iter().all(|r| r.tier != Tier::QemuUser));
        assert_eq!(patched[0].tier, Tier::Native);
        assert!(patched
            .iter()
            .any(|r| r.arch == Arch::I686 && r.tier == Tier::Compat));
        let both = rows("--all --guest both --qemu both");
        assert_eq!(both.len(), 2 * stock.len() - 2 - 2);
        let hppa: Vec<Tier> = both
            .iter()
            .filter(|r| r.arch == Arch::Hppa)
            .map(|r| r.tier)
            .collect();
        assert_eq!(hppa, [Tier::QemuUser, Tier::QemuPatched]);
        assert!(parse_opts(&args("--qemu newest"), Arch::X86_64).is_err());
    }

    #[test]
    fn system_tier_rows_follow_the_kernels() {
        let plan_of = |a: &str| plan(&parse_opts(&args(a), Arch::X86_64).unwrap(), Arch::X86_64);
        let (rows, none) = plan_of("--all --tier system");
        assert!(rows
            .iter()
            .all(|r| r.tier == Tier::System(KernelKind::Stock)));
        assert!(none.is_empty(), "{none:?}");
        // i686: its own kernel and x86_64's compat layer; armv7, mipsel and
        // mips likewise on aarch64, mips64el and mips64.
        let kernels = |arch: Arch, rows: &[Row]| -> Vec<Option<Arch>> {
            rows.iter()
                .filter(|r| r.arch == arch)
                .map(|r| r.kernel)
                .collect()
        };
        assert_eq!(
            kernels(Arch::I686, &rows),
            [Some(Arch::I686), Some(Arch::X86_64)]
        );
        assert_eq!(
            kernels(Arch::Mipsel, &rows),
            [Some(Arch::Mipsel), Some(Arch::Mips64el)]
        );
        assert_eq!(
            kernels(Arch::Mips, &rows),
            [Some(Arch::Mips), Some(Arch::Mips64)]
        );
        // Every kernel's own guest, and i686, armv7, mipsel, mips and sparc
        // again in compat.
        assert_eq!(rows.len(), 15 + 5);
        let (patched, none) = plan_of("--all --tier system --kernel patched --guest both");
        assert_eq!(none.len(), Arch::ALL.len() - 10);
        assert!(patched
            .iter()
            .all(|r| r.tier == Tier::System(KernelKind::Patched)));
        // x86_64, i686 (own + compat), riscv64, powerpc, mips (own +
        // compat), mips64, sparc64, sparc (compat): two agents; alpha,
        // hppa: C only.
        assert_eq!(patched.len(), 2 * 10 + 2);
        let (side, _) = plan_of("--target aarch64 --tier all --kernel both");
        let tiers: Vec<Tier> = side.iter().map(|r| r.tier).collect();
        assert_eq!(
            tiers,
            [
                Tier::QemuUser,
                Tier::QemuPatched,
                Tier::System(KernelKind::Stock)
            ]
        );
        let (only, _) = plan_of("--target i686 --tier system --kernel-arch x86_64");
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].kernel, Some(Arch::X86_64));
        assert!(parse_opts(&args("--kernel patched"), Arch::X86_64).is_err());
        assert!(parse_opts(&args("--tier kernel"), Arch::X86_64).is_err());
    }

    #[test]
    fn patched_binaries_are_found_by_qemu_name() {
        let dir = Path::new("/q");
        for (arch, bin) in [
            (Arch::Powerpc, "/q/qemu-ppc"),
            (Arch::I686, "/q/qemu-i386"),
            (Arch::Armv7, "/q/qemu-arm"),
            (Arch::Powerpc64le, "/q/qemu-ppc64le"),
        ] {
            assert_eq!(patched_qemu_binary(dir, arch), Path::new(bin));
        }
        let emu = Emulators {
            sel: QemuSel::Patched,
            patched: Ok(PathBuf::from("/cache/bin")),
        };
        assert_eq!(
            emu.program(Tier::QemuPatched, Arch::Hppa),
            Path::new("/cache/bin/qemu-hppa")
        );
        assert_eq!(
            emu.program(Tier::QemuUser, Arch::Hppa),
            Path::new("qemu-hppa-static")
        );
        assert!(!emu.has_patched(Arch::Hppa));
        // Without the binary a compat row falls back to stock qemu-user.
        assert_eq!(emu.fallback(Arch::I686), Tier::QemuUser);
    }
}
