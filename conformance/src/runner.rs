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

use crate::build::{
    build_c, build_rust, c_compiler, cache_dir, first_line, toolchain, which, workspace_root,
    Package, DEBIAN_CARGO, DEBIAN_RUSTC, DEBIAN_RUST_SRC,
};
use crate::judge::{judge_abi_facts, judge_guest, CaseResult, Ctx, GuestLog, Outcome};
use crate::report::{jarr, jobj, jstr};
use crate::system::{self, Kernel, KernelKind};
use msgzc_abi::Arch;
use msgzc_conformance_protocol::Case;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

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

/// qemu's name for a target (`ppc`), from the registry.
pub(crate) fn qemu_target(arch: Arch) -> &'static str {
    crate::arches::info(arch).qemu_user
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
            (Tier::QemuPatched, Ok(dir)) => dir.join(format!("qemu-{}", qemu_target(arch))),
            (Tier::QemuPatched, Err(_)) => PathBuf::from(format!("qemu-{}", qemu_target(arch))),
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

/// Runs `ci/qemu --targets ...` (instant when cached; otherwise it builds,
/// showing its progress on stderr) and returns the bin dir it prints.
pub(crate) fn patched_qemu(archs: &[Arch]) -> Result<PathBuf, String> {
    let mut names: Vec<&str> = archs.iter().map(|&a| qemu_target(a)).collect();
    names.sort_unstable();
    names.dedup();
    let script = workspace_root().join("ci/qemu");
    let out = Command::new(&script)
        .arg("--targets")
        .arg(names.join(","))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(|l| PathBuf::from(l.trim()));
    match dir {
        Some(d) if out.status.success() && d.is_dir() => Ok(d),
        _ => Err(format!(
            "ci/qemu --targets {} failed ({})",
            names.join(","),
            out.status
        )),
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
            Lang::C if self.arch.rust_triple().is_some() => format!("{}/c", self.arch),
            _ => self.arch.name().to_string(),
        }
    }
}

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
    json: Option<String>,
    require_all: bool,
    install: bool,
    verbose: bool,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: msgzc-conformance run [--all | --target NAME[,NAME..]] [--guest auto|rust|c|both]\n\
         \x20                            [--qemu stock|patched|both] [--tier user|system|all]\n\
         \x20                            [--kernel stock|patched|both] [--kernel-arch A,B]\n\
         \x20                            [--json PATH] [--require-all] [--install] [-v]\n\
         \n\
         Without --all/--target only the host's own target runs (nothing to install).\n\
         --guest      auto: Rust where Rust can build (C for alpha, hppa); both: two rows\n\
         --qemu       stock: Debian's qemu-user (default); patched: qemu-user with\n\
         \x20            conformance/qemu/*.patch, built and cached by ci/qemu; both: two rows\n\
         --tier       user: native/compat/qemu-user with --qemu both; system: only the\n\
         \x20            agents as PID 1 on real kernels under qemu-system (ci/kernels\n\
         \x20            fetches and builds them, cached); all: both, side by side\n\
         --kernel     the system tier's kernels: stock (default), patched (6.1 with\n\
         \x20            conformance/kernel/*.patch: SCM_ZC_NOTIFICATION), or both\n\
         --kernel-arch  only the system-tier kernels of these architectures\n\
         --require-all  a missing tool fails instead of skipping (also MSGZC_REQUIRE_ALL=1)\n\
         --install    run `{BOOTSTRAP}` first when tools are missing (needs root)\n\
         targets: {}",
        Arch::ALL.map(Arch::name).join(" ")
    );
    ExitCode::from(2)
}

fn parse_opts(args: &[String], host: Arch) -> Result<Opts, String> {
    let mut o = Opts {
        archs: vec![host],
        guest: "auto".into(),
        qemu: QemuSel::Stock,
        user: true,
        kernels: Vec::new(),
        kernel_archs: None,
        json: None,
        require_all: std::env::var("MSGZC_REQUIRE_ALL").is_ok_and(|v| v == "1"),
        install: false,
        verbose: false,
    };
    let mut kernel_sel = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        let archs = |v: String| -> Result<Vec<Arch>, String> {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(|n| Arch::from_name(n).ok_or(format!("unknown target {n:?}")))
                .collect()
        };
        match a.as_str() {
            "--all" => o.archs = Arch::ALL.to_vec(),
            "--target" => o.archs = archs(val()?)?,
            "--kernel-arch" => o.kernel_archs = Some(archs(val()?)?),
            "--guest" => {
                o.guest = val()?;
                if !["auto", "rust", "c", "both"].contains(&o.guest.as_str()) {
                    return Err(format!("--guest {}: auto, rust, c or both", o.guest));
                }
            }
            "--qemu" => {
                o.qemu = match val()?.as_str() {
                    "stock" => QemuSel::Stock,
                    "patched" => QemuSel::Patched,
                    "both" => QemuSel::Both,
                    v => return Err(format!("--qemu {v}: stock, patched or both")),
                }
            }
            // The user tier as a whole is stock and patched qemu-user.
            "--tier" => {
                let v = val()?;
                if v == "user" || v == "all" {
                    o.qemu = QemuSel::Both;
                }
                (o.user, o.kernels) = match v.as_str() {
                    "user" => (true, Vec::new()),
                    "system" => (false, vec![KernelKind::Stock]),
                    "all" => (true, vec![KernelKind::Stock]),
                    _ => return Err(format!("--tier {v}: user, system or all")),
                };
            }
            "--kernel" => {
                kernel_sel = Some(match val()?.as_str() {
                    "stock" => vec![KernelKind::Stock],
                    "patched" => vec![KernelKind::Patched],
                    "both" => vec![KernelKind::Stock, KernelKind::Patched],
                    v => return Err(format!("--kernel {v}: stock, patched or both")),
                })
            }
            "--json" => o.json = Some(val()?),
            "--require-all" => o.require_all = true,
            "--install" => o.install = true,
            "-v" | "--verbose" => o.verbose = true,
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    if let Some(k) = kernel_sel {
        if o.kernels.is_empty() {
            return Err("--kernel selects the system tier's kernels: add --tier system|all".into());
        }
        o.kernels = k;
    }
    Ok(o)
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
        let has_rust = arch.rust_triple().is_some();
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

/// Tools a row needs that are missing.
fn missing_tools(row: Row, host: Arch, emu: &Emulators) -> Vec<String> {
    let tc = toolchain(row.arch);
    let mut m = Vec::new();
    if c_compiler(row.arch, host).is_none() {
        m.push(tc.gcc.to_string());
    }
    // The system tier runs abi_facts on the user tiers.
    let stock_qemu = row.tier == Tier::QemuUser
        || (matches!(row.tier, Tier::System(_))
            && facts_tier(row.arch, host, emu) == Tier::QemuUser);
    if stock_qemu && which(tc.qemu).is_none() {
        m.push(tc.qemu.to_string());
    }
    if row.tier == Tier::QemuPatched && !emu.has_patched(row.arch) {
        m.push(format!("patched qemu-{}", qemu_target(row.arch)));
    }
    if row.lang == Lang::Rust && row.tier != Tier::Native {
        for (path, what) in [
            (DEBIAN_CARGO, "/usr/bin/cargo (cargo-web)"),
            (DEBIAN_RUSTC, "/usr/bin/rustc (rustc-web)"),
            (DEBIAN_RUST_SRC, "the std sources (rust-web-src)"),
        ] {
            if !Path::new(path).exists() {
                m.push(what.to_string());
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
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
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
        (Lang::Rust, _) => build_rust(row.arch, cache, Package::Agent),
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

/// Days since 1970-01-01 → (year, month, day) (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn now_utc() -> String {
    let s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d) = civil(s.div_euclid(86_400));
    let t = s.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// The `run` subcommand.
pub fn run(args: &[String]) -> ExitCode {
    let Some(host) = Arch::native() else {
        eprintln!("run: this host is not one of the named targets");
        return ExitCode::FAILURE;
    };
    let o = match parse_opts(args, host) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("run: {e}");
            return usage();
        }
    };
    let wall = Instant::now();
    let (rows, no_kernel) = plan(&o, host);
    let cache = cache_dir();
    let no_emu = Emulators {
        sel: o.qemu,
        patched: Err("not needed".into()),
    };
    // `ci/qemu` installs what the patched emulator needs itself.
    let needs = |r: &Row| {
        missing_tools(*r, host, &no_emu)
            .iter()
            .any(|m| !m.starts_with("patched "))
    };
    if o.install && rows.iter().any(needs) {
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
    // The patched emulator: `ci/qemu` for the targets of its rows.
    let patched_archs: Vec<Arch> = rows
        .iter()
        .filter(|r| r.tier == Tier::QemuPatched)
        .map(|r| r.arch)
        .collect();
    let emu = Emulators {
        sel: o.qemu,
        patched: if patched_archs.is_empty() {
            Err("not needed".into())
        } else {
            let t = Instant::now();
            let r = patched_qemu(&patched_archs);
            match &r {
                Ok(d) => println!(
                    "patched qemu-user: {} ({:.1}s)",
                    d.display(),
                    secs(t.elapsed())
                ),
                Err(e) => println!("patched qemu-user: {e}"),
            }
            r
        },
    };
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
    // The system tier's kernels: `ci/kernels` fetches or builds what is
    // not cached (minutes per self-built kernel when cold).
    let mut kernels: BTreeMap<(KernelKind, Arch), Result<Kernel, String>> = BTreeMap::new();
    for r in &rows {
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
    println!(
        "msgzc conformance: {} row(s); host {host}, Linux {}",
        rows.len(),
        kernel_release()
    );
    if !no_kernel.is_empty() {
        let kinds: Vec<&str> = o.kernels.iter().map(|k| k.name()).collect();
        println!(
            "system tier: no {} kernel runs {} ({} target(s) without system rows)",
            kinds.join("/"),
            no_kernel
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(" "),
            no_kernel.len()
        );
    }
    if let Some(q) = &qemu_version {
        println!("emulator: {q}");
    }
    if let Some(q) = &patched_version {
        println!("patched emulator: {q}");
    }
    if let Some(r) = &rustc {
        println!("guest compiler: {r}; cache: {}", cache.display());
    }
    let mut results = Vec::new();
    let mut facts_cache: BTreeMap<Arch, Outcome> = BTreeMap::new();
    let mut any_missing = false;
    let mut any_missing_patched = false;
    let mut shown_missing = false;
    for (i, &row) in rows.iter().enumerate() {
        print!(
            "[{:>2}/{}] {:<13} {:<14} {:<4} ",
            i + 1,
            rows.len(),
            row.label(),
            row.tier.name(),
            row.lang.name()
        );
        let _ = std::io::stdout().flush();
        let mut missing = missing_tools(row, host, &emu);
        let kernel = match (row.tier, row.kernel) {
            (Tier::System(kind), Some(k)) => match &kernels[&(kind, k)] {
                Ok(kn) => Some(kn),
                Err(e) => {
                    missing.push(format!("kernel: {e}"));
                    None
                }
            },
            _ => None,
        };
        let r = if missing.is_empty() {
            let tier = match row.tier {
                Tier::System(_) => facts_tier(row.arch, host, &emu),
                t => t,
            };
            let facts = facts_cache
                .entry(row.arch)
                .or_insert_with(|| abi_facts(row.arch, tier, host, &cache, &emu))
                .clone();
            match kernel {
                Some(kn) => run_system_row(row, host, &cache, &facts, kn),
                None => run_row(row, host, &cache, &facts, &emu),
            }
        } else {
            let patched_only = missing.iter().all(|m| m.starts_with("patched "));
            let kernel_only = missing.iter().all(|m| m.starts_with("kernel: "));
            any_missing |= !patched_only && !kernel_only;
            any_missing_patched |= patched_only;
            let how = if patched_only {
                format!(
                    "build: ci/qemu --targets {} (root for its packages)",
                    qemu_target(row.arch)
                )
            } else if kernel_only {
                "ci/kernels needs root the first time".to_string()
            } else {
                format!("install: {BOOTSTRAP} (root)")
            };
            let why = format!("missing {}; {how}", missing.join(", "));
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
                status: "not run".into(),
                output: String::new(),
            }
        };
        let count = |l: &str| r.cases.iter().filter(|c| c.outcome.label() == l).count();
        let missing_line = r.cases.iter().find_map(|c| match &c.outcome {
            Outcome::Skip(w) | Outcome::Fail(w) if w.starts_with("missing") => Some(w.clone()),
            _ => None,
        });
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
        for c in &r.cases {
            match &c.outcome {
                Outcome::Fail(w) if !w.starts_with("missing") => {
                    println!("      FAIL {}: {w}", c.case);
                    let log = GuestLog::parse(&r.output);
                    for l in log.case_text(c.case).iter().take(12) {
                        let l: String = l.chars().take(160).collect();
                        println!("        | {l}");
                    }
                }
                Outcome::Skip(w) if !w.starts_with("missing") => {
                    println!("      skip {}: {w}", c.case)
                }
                _ => {}
            }
        }
        if let Some(w) = missing_line {
            if o.verbose || !shown_missing {
                println!("      {w}");
            }
            shown_missing = true;
        }
        if o.verbose {
            for l in r.output.lines() {
                let l: String = l.chars().take(200).collect();
                println!("      > {l}");
            }
        }
        results.push(r);
    }
    print_matrix(&results);
    print_findings(&results);
    let total = |l: &str| {
        results
            .iter()
            .flat_map(|r| &r.cases)
            .filter(|c| c.outcome.label() == l)
            .count()
    };
    let (pass, fail, unsup, kunsup, skip) = (
        total("pass"),
        total("FAIL"),
        total("emu-unsup"),
        total("kern-unsup"),
        total("skip"),
    );
    let wall_secs = secs(wall.elapsed());
    println!(
        "\n{pass} pass, {fail} fail, {unsup} emulator-unsupported, {kunsup} kernel-unsupported, \
         {skip} skipped ({} rows × {} cases) in {wall_secs:.1}s",
        results.len(),
        CASES.len()
    );
    if any_missing {
        println!("some tools are missing; install them with: sudo {BOOTSTRAP}");
    }
    if any_missing_patched {
        println!("the patched qemu-user is missing; build it with: sudo ci/qemu");
    }
    if let Some(path) = &o.json {
        let doc = json_doc(
            &results,
            host,
            [qemu_version, patched_version],
            &emu,
            rustc,
            wall_secs,
            [pass, fail, unsup, kunsup, skip],
        );
        if let Err(e) = std::fs::write(path, doc + "\n") {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
        println!("results: {path}");
    }
    if fail > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
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

fn json_doc(
    results: &[RowResult],
    host: Arch,
    [qemu, qemu_patched]: [Option<String>; 2],
    emulators: &Emulators,
    rustc: Option<String>,
    wall_secs: f64,
    [pass, fail, emu, kernel, skip]: [usize; 5],
) -> String {
    let opt = |s: Option<String>| s.map_or("null".into(), |s| jstr(&s));
    let rows: Vec<String> = results
        .iter()
        .map(|r| {
            let cases: Vec<String> = r
                .cases
                .iter()
                .map(|c| {
                    jobj(&[
                        ("case", jstr(c.case)),
                        ("outcome", jstr(c.outcome.name())),
                        ("detail", jstr(c.outcome.detail())),
                        (
                            "findings",
                            jarr(&c.findings.iter().map(|f| jstr(f)).collect::<Vec<_>>()),
                        ),
                    ])
                })
                .collect();
            let output: Vec<String> = r.output.lines().map(jstr).collect();
            jobj(&[
                ("target", jstr(r.row.arch.name())),
                ("guest", jstr(r.row.lang.name())),
                ("tier", jstr(r.row.tier.name())),
                ("kernel", jstr(&r.kernel)),
                (
                    "emulator",
                    if r.row.tier.emulated() {
                        jstr(&emulators.program(r.row.tier, r.row.arch).to_string_lossy())
                    } else {
                        "null".into()
                    },
                ),
                ("build_seconds", r.build_secs.to_string()),
                ("run_seconds", r.run_secs.to_string()),
                ("guest_status", jstr(&r.status)),
                ("cases", jarr(&cases)),
                ("guest_output", jarr(&output)),
            ])
        })
        .collect();
    jobj(&[
        ("date", jstr(&now_utc())),
        (
            "host",
            jobj(&[
                ("arch", jstr(host.name())),
                ("kernel", jstr(&kernel_release())),
            ]),
        ),
        ("qemu", opt(qemu)),
        ("qemu_patched", opt(qemu_patched)),
        ("guest_rustc", opt(rustc)),
        ("wall_seconds", wall_secs.to_string()),
        (
            "totals",
            jobj(&[
                ("pass", pass.to_string()),
                ("fail", fail.to_string()),
                ("emulator_unsupported", emu.to_string()),
                ("kernel_unsupported", kernel.to_string()),
                ("skip", skip.to_string()),
            ]),
        ),
        ("cases", jarr(&CASES.map(jstr))),
        ("rows", jarr(&rows)),
    ])
}

/// The `judge` subcommand: judges a guest's output produced elsewhere (by
/// `cross run … -- guest` in CI, or on a board) exactly as `run` would.
///
/// ```text
/// msgzc-conformance judge --target NAME [--lang rust|c] [--tier native|emulated|patched] < OUTPUT
/// ```
pub fn judge_saved(args: &[String]) -> ExitCode {
    let usage = || {
        eprintln!(
            "usage: msgzc-conformance judge --target NAME [--lang rust|c] \
             [--tier native|emulated|patched] < GUEST-OUTPUT"
        );
        ExitCode::from(2)
    };
    let (mut arch, mut lang, mut tier) = (None, "rust".to_string(), "emulated".to_string());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(v) = it.next() else {
            return usage();
        };
        match a.as_str() {
            "--target" => arch = Arch::from_name(v),
            "--lang" if v == "rust" || v == "c" => lang = v.clone(),
            "--tier" if ["native", "emulated", "patched"].contains(&v.as_str()) => tier = v.clone(),
            _ => return usage(),
        }
    }
    let (Some(arch), Some(host)) = (arch, Arch::native()) else {
        return usage();
    };
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
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_723), (2024, 1, 1));
        assert_eq!(civil(20_416), (2025, 11, 24));
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
        assert_eq!(rows.len(), 13 * 2 + 2);
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
        assert_eq!(none, [Arch::Riscv64, Arch::Powerpc, Arch::Mips64]);
        // i686: its own kernel and x86_64's compat layer; armv7 and mipsel
        // likewise on aarch64 and mips64el.
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
        assert_eq!(rows.len(), 12 + 3);
        let (patched, none) = plan_of("--all --tier system --kernel patched --guest both");
        assert_eq!(none.len(), 15 - 6);
        assert!(patched
            .iter()
            .all(|r| r.tier == Tier::System(KernelKind::Patched)));
        // x86_64, i686 (own + compat), mips, sparc64: two agents; alpha,
        // hppa: C only.
        assert_eq!(patched.len(), 2 * 5 + 2);
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
        assert_eq!(qemu_target(Arch::Powerpc), "ppc");
        assert_eq!(qemu_target(Arch::I686), "i386");
        assert_eq!(qemu_target(Arch::Armv7), "arm");
        assert_eq!(qemu_target(Arch::Powerpc64le), "ppc64le");
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
