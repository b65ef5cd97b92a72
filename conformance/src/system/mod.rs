//! The system tier: a guest agent runs as PID 1 on a real Linux kernel of
//! its architecture under `qemu-system-*` (TCG), so results come from that
//! architecture's own kernel and not from qemu-user's syscall translation.
//!
//! - Kernels and emulators come from `ci/kernels` (Debian's `linux-image`
//!   packages where Debian ships one, self-built 6.1 kernels with the
//!   fragments in `conformance/kernel/` otherwise; Debian's qemu-system-*
//!   7.2 and firmware extracted into the cache). [`Kernel::locate`] asks it
//!   for the directories, fetching or building on demand.
//! - [`initramfs_with`](initramfs::initramfs_with) writes the newc archive
//!   without root: `/init` (the static guest agent), `/dev/console`,
//!   `/dev/null`, `/proc`, `/sys`.
//! - [`boot`] runs QEMU with the machine, CPU and console of the kernel's
//!   architecture. The guest's arguments follow `--` on the kernel command
//!   line (the kernel hands them to `/init`; the Rust agent gets `guest`
//!   there). As PID 1 the agents mount `/proc`, silence the kernel's
//!   console messages, print `NOTE kernel=`, and power off after `DONE`
//!   (`-no-reboot`, `panic=-1`: a panic ends QEMU too).
//! - [`parse_console`](console::parse_console) separates the protocol lines
//!   from the console noise (firmware, kernel log, terminal escapes, CRs)
//!   and recognises the kernel banner, panics and `DONE`.
//!
//! A kernel runs its own architecture's guest and its 32-bit compat guest
//! ([`can_run`]): x86_64 runs i686, aarch64 armv7, mips64el mipsel. The
//! compat runs hand the 32-bit agent the 32-bit control-buffer layout of a
//! 64-bit kernel, to be judged exactly like the native 32-bit kernel's.
//!
//! `msgzc-conformance system-boot --target ARCH [--guest rust|c]
//! [--kernel-arch ARCH]` builds one agent, boots it, prints its lines and
//! judges them.
//!
//! - `kernel`: which kernels exist, which guests each runs, `ci/kernels`.
//! - `initramfs`: the newc archive.
//! - `qemu`: the QEMU command line and one boot.
//! - `console`: the console transcript, sorted.
//! - here: judging a boot, and the `system-boot` and `system-bench`
//!   subcommands.

mod console;
mod initramfs;
mod kernel;
mod qemu;

use crate::arches;
use crate::bench::Matrix;
use crate::build;
use crate::judge::{judge_guest, Ctx, GuestLog, Outcome};
use msgzc_abi::Arch;
use msgzc_conformance_protocol::bench::Record;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

pub use crate::arches::{Machine, KERNEL_ARCHS, PATCHED_ARCHS};
pub use kernel::{can_run, default_kernel, kernels_for, machine, Kernel, KernelKind};
pub use qemu::{boot, boot_with, SystemRun};

/// Judges a system run's guest output like the user tier's (no emulator
/// between the guest and the kernel; the proposal's cases must work on a
/// patched kernel). A run that did not end cleanly appends its status to
/// every failure.
pub fn judge(run: &SystemRun, guest: Arch, lang: &str) -> Vec<crate::judge::CaseResult> {
    let ctx = Ctx {
        arch: guest,
        host: run.kernel_arch,
        emulated: false,
        patched: false,
        zc_kernel: run.kernel_kind.has_proposal(),
    };
    let log = GuestLog::parse(&run.guest_output());
    let mut cases = judge_guest(ctx, lang, &log);
    let status = run.status();
    if status != "ok" {
        for c in &mut cases {
            if let Outcome::Fail(w) = &mut c.outcome {
                w.push_str(&format!(" [system: {status}]"));
            }
        }
    }
    cases
}

// --- building the agents: the runner's own builds ---

/// The C agent for `arch`, built as `run` builds it (renamed into place).
fn build_c_guest(arch: Arch) -> Result<PathBuf, String> {
    let host = Arch::native().ok_or("the host is not a named target")?;
    let out = build::cache_dir().join("c").join(arch.name()).join("guest");
    let src = build::workspace_root().join("conformance/guest-c/guest.c");
    build::build_c(arch, host, &src, &out).map(|()| out)
}

/// The Rust agent for `arch`, built as `run` builds it.
fn build_rust_guest(arch: Arch) -> Result<PathBuf, String> {
    build::build_rust(arch, &build::cache_dir())
}

/// The agent's `/init` arguments: the Rust binary needs its `guest`
/// subcommand, the C agent takes only cases.
pub fn guest_args<'a>(lang: &str, cases: &[&'a str]) -> Vec<&'a str> {
    let mut v = if lang == "rust" {
        vec!["guest"]
    } else {
        vec![]
    };
    v.extend_from_slice(cases);
    v
}

/// `--kernel`'s value (clap's value parser).
fn parse_kind(name: &str) -> Result<KernelKind, String> {
    KernelKind::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = KernelKind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown kernel {name:?} ({})", names.join(", "))
    })
}

/// `system-boot`: builds ARCH's guest agent, boots it as PID 1 on a
/// kernel under qemu-system (default: ARCH's own, or the 64-bit kernel
/// that runs it in compat mode), prints its lines and judges them.
#[derive(Debug, clap::Args)]
#[command(after_help = boot_kernels_help())]
pub struct BootArgs {
    /// The guest's architecture.
    #[arg(long, value_name = "ARCH", value_parser = crate::table::parse_arch)]
    target: Arch,
    /// The agent [default: rust where Rust has a backend, else c].
    #[arg(long = "guest", value_parser = ["rust", "c"])]
    lang: Option<String>,
    /// The kernel's architecture (another than ARCH runs it in compat).
    #[arg(long, value_name = "ARCH", value_parser = crate::table::parse_arch)]
    kernel_arch: Option<Arch>,
    /// stock, or patched (6.1 with conformance/kernel/*.patch).
    #[arg(long = "kernel", value_name = "KIND", default_value = "stock", value_parser = parse_kind)]
    kind: KernelKind,
    /// Give up on the boot after this many seconds.
    #[arg(long = "timeout", value_name = "SECS", default_value_t = 600)]
    timeout_secs: u64,
    /// Boot the kernel cached in DIR (e.g. an earlier patch revision's),
    /// judged as --kernel says.
    #[arg(long, value_name = "DIR")]
    kernel_dir: Option<PathBuf>,
    /// QEMU's CPUs (for an SMP kernel: ci/kernels --patched --variant smp).
    #[arg(long = "smp", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    cpus: u32,
    /// Run ci/kernels to fetch or build a missing kernel (else fail).
    #[arg(long)]
    fetch: bool,
    /// Print the whole console instead of the guest's lines.
    #[arg(long = "console")]
    show_console: bool,
    /// Only these cases (default: all).
    #[arg(value_name = "CASE")]
    cases: Vec<msgzc_conformance_protocol::Case>,
}

/// Which kernels exist, for `--help`.
fn boot_kernels_help() -> String {
    format!(
        "stock kernels: {}\npatched kernels: {}",
        KERNEL_ARCHS.map(Arch::name).join(" "),
        PATCHED_ARCHS.map(Arch::name).join(" ")
    )
}

impl BootArgs {
    /// The agent: as asked, else Rust where Rust has a backend.
    fn lang(&self) -> &str {
        match &self.lang {
            Some(l) => l,
            None if arches::rust_triple(self.target).is_some() => "rust",
            None => "c",
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// The `system-boot` subcommand.
pub fn main(o: BootArgs) -> ExitCode {
    match system_boot(&o) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("system-boot: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The kernel `o` asks for, located.
fn boot_kernel(o: &BootArgs) -> Result<Kernel, String> {
    let (target, kind) = (o.target, o.kind);
    let karch = o
        .kernel_arch
        .or_else(|| default_kernel(target, kind))
        .ok_or_else(|| format!("no {} kernel runs {target}", kind.name()))?;
    if !can_run(karch, target) {
        return Err(format!("a {karch} kernel does not run {target} binaries"));
    }
    let mut k = Kernel::locate(karch, kind, o.fetch)?;
    if let Some(d) = &o.kernel_dir {
        k.use_dir(d)?;
    }
    k.cpus = o.cpus;
    Ok(k)
}

/// Builds the agent, boots it and prints its lines and verdicts;
/// `Ok(false)` when the boot or a case failed.
fn system_boot(o: &BootArgs) -> Result<bool, String> {
    let (target, lang) = (o.target, o.lang());
    let kernel = boot_kernel(o)?;
    let t = Instant::now();
    let guest = if lang == "rust" {
        build_rust_guest(target)
    } else {
        build_c_guest(target)
    }?;
    eprintln!(
        "system-boot: {target}/{lang} agent {} (built in {:.1}s) on {} {} kernel {} ({}), -smp {}",
        guest.display(),
        t.elapsed().as_secs_f64(),
        o.kind.name(),
        kernel.arch,
        kernel.release,
        kernel.dir.display(),
        kernel.cpus
    );
    let cases: Vec<&str> = o.cases.iter().map(|c| c.name()).collect();
    let run = boot(&kernel, &guest, &guest_args(lang, &cases), o.timeout())?;
    if o.show_console {
        print!("{}", run.transcript);
    } else {
        print!("{}", run.guest_output());
    }
    Ok(print_verdicts(o, &run, &cases))
}

/// Prints the judged cases (only those asked for, if any); whether all
/// passed and the boot ended cleanly.
fn print_verdicts(o: &BootArgs, run: &SystemRun, cases: &[&str]) -> bool {
    let (target, lang) = (o.target, o.lang());
    let results = judge(run, target, lang);
    println!(
        "\nsystem: {target}/{lang} on {} {} kernel {}: {} in {:.1}s",
        o.kind.name(),
        run.kernel_arch,
        run.kernel,
        run.status(),
        run.secs
    );
    let mut ok = run.status() == "ok";
    for c in results
        .iter()
        .filter(|c| cases.is_empty() || cases.contains(&c.case))
    {
        let d = c.outcome.detail();
        println!(
            "  {:<15} {}{}",
            c.case,
            c.outcome.label(),
            if d.is_empty() {
                String::new()
            } else {
                format!(": {d}")
            }
        );
        for f in &c.findings {
            println!("      finding: {f}");
        }
        ok &= !matches!(c.outcome, Outcome::Fail(_));
    }
    ok
}

/// `system-bench`: the bench agent as PID 1 on a kernel under qemu-system.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The architecture (a Rust agent and a kernel of the kind asked).
    #[arg(long, value_name = "ARCH", default_value = "x86_64",
          value_parser = arches::parse_rust_arch)]
    target: Arch,
    /// stock, patched or loopback-zerocopy (the patched kernel whose
    /// loopback keeps MSG_ZEROCOPY pages).
    #[arg(long = "kernel", value_name = "KIND", default_value = "patched", value_parser = parse_kind)]
    kind: KernelKind,
    /// Write the bench's table here too.
    #[arg(long, value_name = "PATH")]
    markdown: Option<String>,
    /// Give up on the boot after this many seconds.
    #[arg(long = "timeout", value_name = "SECS", default_value_t = 1800)]
    timeout_secs: u64,
    /// Put the kernel's msg_zerocopy selftest (ci/msg-zerocopy) in the
    /// initramfs as /msg_zerocopy, for `bench --selftest`.
    #[arg(long)]
    selftest: bool,
    /// `bench`'s own options, of its main matrix only [default: --net
    /// loopback --size 8192 --secs 2 --interval 1,32].
    #[arg(last = true, value_name = "BENCH-ARGS")]
    bench: Vec<String>,
}

impl BenchArgs {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// The bench's arguments: as given, or the default run.
    fn bench_args(&self) -> Vec<String> {
        if !self.bench.is_empty() {
            return self.bench.clone();
        }
        [
            "--net",
            "loopback",
            "--size",
            "8192",
            "--secs",
            "2",
            "--interval",
            "1,32",
        ]
        .map(String::from)
        .to_vec()
    }
}

/// `ci/msg-zerocopy`: the kernel selftest built from `kernel`'s source.
fn build_selftest(kernel: &Kernel) -> Result<PathBuf, String> {
    let script = build::workspace_root().join("ci/msg-zerocopy");
    let out = Command::new(&script)
        .arg(&kernel.dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || path.is_empty() {
        return Err(format!(
            "ci/msg-zerocopy {}: {}",
            kernel.dir.display(),
            out.status
        ));
    }
    Ok(PathBuf::from(path))
}

/// The `system-bench` subcommand: the bench's main matrix with the agent
/// (`msgzc-conformance-agent bench WORDS`) as PID 1 on a kernel under
/// qemu-system, so that `zc-inline` meets a kernel that implements
/// `SCM_ZC_NOTIFICATION`; its `SAMPLE` lines, read from the console, make
/// the table a local `bench` makes. Under TCG only the ratios between the
/// modes of one run mean anything.
pub fn bench_main(o: BenchArgs) -> ExitCode {
    match system_bench(&o) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("system-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Boots the bench; `Ok(false)` when it ran but did not end cleanly.
fn system_bench(o: &BenchArgs) -> Result<bool, String> {
    let (target, kind) = (o.target, o.kind);
    // A Rust agent is there: --target takes only targets that have one.
    if !kind.has(target) {
        return Err(format!("needs a {} {target} kernel", kind.name()));
    }
    if o.selftest && target != Arch::X86_64 {
        return Err("--selftest: ci/msg-zerocopy builds for x86_64 only".into());
    }
    let kernel = Kernel::locate(target, kind, true)?;
    // The options are the host's (clap); the agent gets the typed request.
    let bench_args = o.bench_args();
    let matrix = Matrix::parse(&bench_args)?;
    let selftest_path = o.selftest.then_some("/msg_zerocopy");
    let words = matrix.words(selftest_path)?;
    let t = Instant::now();
    let guest = build::build_rust(target, &build::cache_dir())?;
    let built = t.elapsed().as_secs_f64();
    let mut guest_args = vec!["bench"];
    guest_args.extend(words.iter().map(String::as_str));
    let mut extra = Vec::new();
    let selftest;
    if o.selftest {
        selftest = build_selftest(&kernel)?;
        extra.push(("msg_zerocopy", selftest.as_path()));
    }
    eprintln!(
        "system-bench: {} (agent built in {built:.1}s) on {} {target} kernel {} (qemu-system, TCG)",
        guest_args.join(" "),
        kind.name(),
        kernel.release
    );
    let run = boot_with(&kernel, &guest, &extra, &guest_args, o.timeout())?;
    let table = bench_records(&run.guest_output())
        .and_then(|records| matrix.table(records, selftest_path))
        .map_err(|e| format!("{e} ({}); console:\n{}", run.status(), run.transcript))?;
    let cmd = format!(
        "msgzc-conformance system-bench --target {target} --kernel {}{} -- {}",
        kind.name(),
        if o.selftest { " --selftest" } else { "" },
        bench_args.join(" ")
    );
    let doc = format!(
        "Under `qemu-system-{}` (TCG, one vCPU) on the {} {target} kernel {}, \
         the agent as PID 1: `{cmd}`. ({:.0} s in all.)\n\n{table}",
        machine(target).map_or("?", |m| m.qemu),
        kind.name(),
        run.kernel,
        run.secs
    );
    print!("{doc}");
    if let Some(p) = &o.markdown {
        std::fs::write(p, &doc).map_err(|e| format!("{p}: {e}"))?;
    }
    if run.status() != "ok" {
        eprintln!("system-bench: {}", run.status());
    }
    Ok(run.status() == "ok")
}

/// The bench agent's records in a run's console; none is an error, as is
/// a line that does not read back.
fn bench_records(guest_output: &str) -> Result<Vec<Record>, String> {
    let records = Record::parse_all(guest_output).map_err(|e| e.to_string())?;
    if records.iter().any(|r| matches!(r, Record::Sample(_))) {
        Ok(records)
    } else {
        Err("no sample".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// The agent's records survive the console (kernel noise between
    /// them) and make the table a local run makes.
    #[test]
    fn bench_records_come_from_the_console() {
        use msgzc_conformance_protocol::bench::{Machine, Mode, Net, Proto, Sample};
        let matrix = Matrix::parse(
            &["--net", "loopback", "--proto", "udp4", "--interval", "1"].map(String::from),
        )
        .unwrap();
        let sample = |mode, result| {
            Record::Sample(Sample {
                net: Net::Loopback,
                proto: Proto::Udp4,
                interval: 1,
                mode,
                result,
            })
        };
        let records = [
            Record::Machine(Machine {
                kernel: "6.1.158".into(),
                cpus: 1,
                model: "QEMU TCG".into(),
            }),
            Record::Calibration(Err("no /tmp".into())),
            sample(Mode::Copy, Ok(Default::default())),
            sample(
                Mode::Inline,
                Err("kernel ignores SCM_ZC_NOTIFICATION".into()),
            ),
        ];
        let mut raw = String::from("SeaBIOS\r\nNOTE kernel=6.1.158 machine=x86_64\n");
        for r in &records {
            raw.push_str(&format!("{r}\r\n[    3.1] random: crng init done\n"));
        }
        raw.push_str("DONE\nreboot: Power down\n");
        let lines = console::parse_console(&raw).lines.join("\n");
        let got = bench_records(&lines).unwrap();
        assert_eq!(got, records);
        let table = matrix.table(got, None).unwrap();
        assert!(table.starts_with("msgzc bench: Linux 6.1.158, 1 CPU(s) (QEMU TCG), payload 8192 bytes, 1 s per mode.\n\nCalibration: unavailable (no /tmp)\n"));
        assert!(table.contains(
            "| loopback | udp4 | 1 | zc-inline | unavailable: kernel ignores SCM_ZC_NOTIFICATION |"
        ));
        assert_eq!(bench_records("NOTE x=1\nDONE\n").unwrap_err(), "no sample");
        assert!(bench_records("SAMPLE net=loopback\n").is_err());
        for bad in [
            "--udp-batch",
            "--sweep 1024",
            "--connect 127.0.0.1:9",
            "--net wifi",
        ] {
            let words: Vec<String> = bad.split(' ').map(String::from).collect();
            assert!(Matrix::parse(&words).is_err(), "{bad}");
        }
    }
}
