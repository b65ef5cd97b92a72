//! The system tier: a guest agent runs as PID 1 on a real Linux kernel of
//! its architecture under `qemu-system-*` (TCG), so results come from that
//! architecture's own kernel and not from qemu-user's syscall translation.
//!
//! - Kernels and emulators come from `ci/kernels` (Debian's `linux-image`
//!   packages where Debian ships one, self-built 6.1 kernels with the
//!   fragments in `conformance/kernel/` otherwise; Debian's qemu-system-*
//!   7.2 and firmware extracted into the cache). [`Kernel::locate`] asks it
//!   for the directories, fetching or building on demand.
//! - [`initramfs_with`] writes the newc archive without root: `/init` (the
//!   static guest agent), `/dev/console`, `/dev/null`, `/proc`, `/sys`.
//! - [`boot`] runs QEMU with the machine, CPU and console of the kernel's
//!   architecture. The guest's arguments follow `--` on the kernel command
//!   line (the kernel hands them to `/init`; the Rust agent gets `guest`
//!   there). As PID 1 the agents mount `/proc`, silence the kernel's
//!   console messages, print `NOTE kernel=`, and power off after `DONE`
//!   (`-no-reboot`, `panic=-1`: a panic ends QEMU too).
//! - [`parse_console`] separates the protocol lines from the console noise
//!   (firmware, kernel log, terminal escapes, CRs) and recognises the kernel
//!   banner, panics and `DONE`.
//!
//! A kernel runs its own architecture's guest and its 32-bit compat guest
//! ([`can_run`]): x86_64 runs i686, aarch64 armv7, mips64el mipsel. The
//! compat runs hand the 32-bit agent the 32-bit control-buffer layout of a
//! 64-bit kernel, to be judged exactly like the native 32-bit kernel's.
//!
//! `msgzc-conformance system-boot --target ARCH [--guest rust|c]
//! [--kernel-arch ARCH]` builds one agent, boots it, prints its lines and
//! judges them.

use crate::build::{self, Package};
use crate::judge::{judge_guest, Ctx, GuestLog, Outcome};
use msgzc_abi::Arch;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The architectures `ci/kernels` has a stock kernel for.
pub const KERNEL_ARCHS: [Arch; 12] = [
    Arch::X86_64,
    Arch::I686,
    Arch::Aarch64,
    Arch::Armv7,
    Arch::Powerpc64le,
    Arch::S390x,
    Arch::Mips,
    Arch::Mipsel,
    Arch::Mips64el,
    Arch::Sparc64,
    Arch::Alpha,
    Arch::Hppa,
];

/// The architectures `ci/kernels --patched` builds a kernel with
/// `conformance/kernel/*.patch` for: every family of the proposal
/// (generic 64- and 32-bit, mips, sparc, alpha, parisc).
pub const PATCHED_ARCHS: [Arch; 6] = [
    Arch::X86_64,
    Arch::I686,
    Arch::Mips,
    Arch::Sparc64,
    Arch::Alpha,
    Arch::Hppa,
];

/// Which kernel of an architecture: as released, or with the proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KernelKind {
    /// Debian's kernel or a self-built 6.1 without patches.
    Stock,
    /// A self-built 6.1 with `SCM_ZC_NOTIFICATION`
    /// (`conformance/kernel/0001-*.patch`).
    Patched,
    /// The patched kernel with
    /// `conformance/kernel/test-only/loopback-zerocopy.patch` too: loopback
    /// keeps `MSG_ZEROCOPY` pages. For benchmarks only.
    LoopbackZc,
}

impl KernelKind {
    /// `stock` or `patched`.
    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Stock => "stock",
            KernelKind::Patched => "patched",
            KernelKind::LoopbackZc => "loopback-zerocopy",
        }
    }

    /// Parses [`name`](Self::name).
    pub fn from_name(s: &str) -> Option<KernelKind> {
        match s {
            "stock" => Some(KernelKind::Stock),
            "patched" => Some(KernelKind::Patched),
            "loopback-zerocopy" => Some(KernelKind::LoopbackZc),
            _ => None,
        }
    }

    /// The architectures with a kernel of this kind.
    pub fn archs(self) -> &'static [Arch] {
        match self {
            KernelKind::Stock => &KERNEL_ARCHS,
            KernelKind::Patched => &PATCHED_ARCHS,
            KernelKind::LoopbackZc => &[Arch::X86_64],
        }
    }

    /// Whether the kernel implements `SCM_ZC_NOTIFICATION`.
    pub fn has_proposal(self) -> bool {
        self != KernelKind::Stock
    }

    /// `ci/kernels`' options that select this kind.
    fn ci_args(self) -> &'static [&'static str] {
        match self {
            KernelKind::Stock => &[],
            KernelKind::Patched => &["--patched"],
            KernelKind::LoopbackZc => &["--patched", "--variant", "loopback-zerocopy"],
        }
    }

    /// Whether `arch` has a kernel of this kind.
    pub fn has(self, arch: Arch) -> bool {
        self.archs().contains(&arch)
    }
}

/// How QEMU boots a kernel of one architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// `qemu-system-<this>`.
    pub qemu: &'static str,
    /// Machine, CPU and memory options.
    pub args: &'static [&'static str],
    /// The kernel's console device (`console=`).
    pub console: &'static str,
}

/// The QEMU machine of a kernel architecture (verified combinations, see
/// `shared/toolchains.md`).
pub fn machine(kernel: Arch) -> Option<Machine> {
    let (qemu, args, console): (_, &'static [&'static str], _) = match kernel {
        Arch::X86_64 => ("x86_64", &["-M", "pc", "-m", "256"], "ttyS0"),
        Arch::I686 => ("i386", &["-M", "pc", "-m", "256"], "ttyS0"),
        Arch::Aarch64 => (
            "aarch64",
            &["-M", "virt", "-cpu", "cortex-a57", "-m", "512"],
            "ttyAMA0",
        ),
        Arch::Armv7 => (
            "arm",
            &["-M", "virt", "-cpu", "cortex-a15", "-m", "512"],
            "ttyAMA0",
        ),
        Arch::Powerpc64le => (
            "ppc64",
            &["-M", "pseries", "-cpu", "power9", "-m", "1024"],
            "hvc0",
        ),
        Arch::S390x => ("s390x", &["-M", "s390-ccw-virtio", "-m", "512"], "ttysclp0"),
        Arch::Mips => ("mips", &["-M", "malta", "-m", "256"], "ttyS0"),
        Arch::Mipsel => ("mipsel", &["-M", "malta", "-m", "256"], "ttyS0"),
        Arch::Mips64el => (
            "mips64el",
            &["-M", "malta", "-cpu", "5KEc", "-m", "256"],
            "ttyS0",
        ),
        Arch::Sparc64 => ("sparc64", &["-M", "sun4u", "-m", "256"], "ttyS0"),
        Arch::Alpha => ("alpha", &["-M", "clipper", "-m", "256"], "ttyS0"),
        Arch::Hppa => ("hppa", &["-m", "256"], "ttyS0"),
        Arch::Riscv64 | Arch::Powerpc | Arch::Mips64 => return None,
    };
    Some(Machine {
        qemu,
        args,
        console,
    })
}

/// Whether a kernel of `kernel`'s architecture runs `guest` binaries: its
/// own, and its 32-bit compat target's.
pub fn can_run(kernel: Arch, guest: Arch) -> bool {
    machine(kernel).is_some() && (kernel == guest || kernel.compat_guest() == Some(guest))
}

/// The kernels of `kind` that run `guest`: its own architecture's first,
/// then the 64-bit one that runs it in compat mode (i686 on x86_64).
pub fn kernels_for(guest: Arch, kind: KernelKind) -> Vec<Arch> {
    let mut v: Vec<Arch> = kind
        .archs()
        .iter()
        .copied()
        .filter(|&k| can_run(k, guest))
        .collect();
    v.sort_by_key(|&k| k != guest);
    v
}

/// The kernel a guest boots on by default: its own architecture's, else
/// the 64-bit kernel that runs it in compat mode.
pub fn default_kernel(guest: Arch, kind: KernelKind) -> Option<Arch> {
    kernels_for(guest, kind).first().copied()
}

/// A kernel and the emulator that boots it.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// Its architecture.
    pub arch: Arch,
    /// Stock or patched.
    pub kind: KernelKind,
    /// The image `-kernel` takes.
    pub image: PathBuf,
    /// Its release (`uname -r`), from the cache.
    pub release: String,
    /// Its cache directory (`ci/kernels` names it by its inputs).
    pub dir: PathBuf,
    /// The extracted Debian qemu-system tree (`usr/bin`, `usr/share/qemu`).
    pub qemu_root: PathBuf,
    /// QEMU's `-smp`: 1 unless `system-boot --smp` asks for more (for an
    /// SMP kernel such as `ci/kernels --patched --variant smp`; the
    /// tinyconfig kernels use one CPU whatever QEMU offers).
    pub cpus: u32,
}

impl Kernel {
    /// Asks `ci/kernels` for `arch`'s kernel of `kind`; with `fetch`,
    /// downloads or builds what is missing (minutes when cold), else fails
    /// when it is.
    pub fn locate(arch: Arch, kind: KernelKind, fetch: bool) -> Result<Kernel, String> {
        Ok(Kernel::locate_all(&[arch], kind, fetch)?.remove(0))
    }

    /// [`locate`](Self::locate) for several kernels of one kind with one
    /// `ci/kernels` call (it builds them one after another).
    pub fn locate_all(
        archs: &[Arch],
        kind: KernelKind,
        fetch: bool,
    ) -> Result<Vec<Kernel>, String> {
        if let Some(a) = archs
            .iter()
            .find(|&&a| machine(a).is_none() || !kind.has(a))
        {
            return Err(format!("no {} system-tier kernel for {a}", kind.name()));
        }
        let names: Vec<&str> = archs.iter().map(|a| a.name()).collect();
        let script = build::workspace_root().join("ci/kernels");
        let mut cmd = Command::new(&script);
        if !fetch {
            cmd.arg("--print-dir");
        }
        let out = cmd
            .args(kind.ci_args())
            .args(["--arch", &names.join(",")])
            .stdin(Stdio::null())
            .stderr(if fetch {
                Stdio::inherit()
            } else {
                Stdio::piped()
            })
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let find = |key: &str| {
            text.lines()
                .filter_map(|l| l.split_once(' '))
                .find(|(k, _)| *k == key)
                .map(|(_, d)| PathBuf::from(d.trim()))
        };
        let how = format!(
            "run ci/kernels {} --arch {}",
            kind.ci_args().join(" "),
            names.join(",")
        );
        let Some(qemu_root) = find("qemu-system") else {
            return Err(format!(
                "ci/kernels printed no directories ({}); {how}",
                out.status
            ));
        };
        if !qemu_root.join(".complete").is_file() {
            return Err(format!("qemu-system not cached; {how}"));
        }
        let mut kernels = Vec::new();
        for &arch in archs {
            let Some(dir) = find(arch.name()).filter(|d| d.join("kernel").is_file()) else {
                return Err(format!(
                    "{arch}: {} kernel not cached ({}); {how}",
                    kind.name(),
                    out.status
                ));
            };
            let release = std::fs::read_to_string(dir.join("release"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            kernels.push(Kernel {
                arch,
                kind,
                image: dir.join("kernel"),
                release,
                dir,
                qemu_root: qemu_root.clone(),
                cpus: 1,
            });
        }
        Ok(kernels)
    }

    /// Boots the kernel cached in `dir` instead (a `ci/kernels` directory
    /// of the same architecture, e.g. one built from an earlier revision of
    /// a patch), keeping the emulator; fails if it holds no kernel.
    pub fn use_dir(&mut self, dir: &Path) -> Result<(), String> {
        let image = dir.join("kernel");
        if !image.is_file() {
            return Err(format!("{}: no kernel image", dir.display()));
        }
        self.release = std::fs::read_to_string(dir.join("release"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        self.image = image;
        self.dir = dir.to_path_buf();
        Ok(())
    }

    /// The QEMU binary.
    pub fn qemu(&self) -> PathBuf {
        let m = machine(self.arch).expect("located kernels have a machine");
        self.qemu_root
            .join("usr/bin")
            .join(format!("qemu-system-{}", m.qemu))
    }
}

/// One newc (`070701`) entry.
fn newc_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
    let namesize = name.len() + 1;
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        if mode & 0o170000 == 0o040000 { 2 } else { 1 },
        0, // mtime: reproducible archives
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        namesize as u32,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out.extend_from_slice(data);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// An uncompressed newc initramfs holding `init` as `/init` (mode 0755),
/// `/dev/console` (c 5 1), `/dev/null` (c 1 3) and empty `/proc`, `/sys`.
/// Written in memory: no root, no `cpio`.
/// `extra` adds executables (mode 0755) at top-level names after `init`.
pub fn initramfs_with(init: &[u8], extra: &[(&str, &[u8])]) -> Vec<u8> {
    const DIR: u32 = 0o040755;
    const CHR: u32 = 0o020000;
    let size: usize = extra.iter().map(|(_, d)| d.len()).sum();
    let mut out = Vec::with_capacity(init.len() + size + 1024);
    newc_entry(&mut out, 1, "dev", DIR, (0, 0), &[]);
    newc_entry(&mut out, 2, "dev/console", CHR | 0o600, (5, 1), &[]);
    newc_entry(&mut out, 3, "dev/null", CHR | 0o666, (1, 3), &[]);
    newc_entry(&mut out, 4, "proc", DIR, (0, 0), &[]);
    newc_entry(&mut out, 5, "sys", DIR, (0, 0), &[]);
    newc_entry(&mut out, 6, "init", 0o100755, (0, 0), init);
    for (ino, (name, data)) in (7..).zip(extra) {
        newc_entry(&mut out, ino, name, 0o100755, (0, 0), data);
    }
    newc_entry(&mut out, 0, "TRAILER!!!", 0, (0, 0), &[]);
    out
}

/// The kernel command line: console, reboot at once on a panic (QEMU's
/// `-no-reboot` turns that into an exit), and the guest's arguments after
/// `--`, which the kernel hands to `/init`.
pub fn cmdline(m: &Machine, guest_args: &[&str]) -> String {
    let mut s = format!("console={} panic=-1", m.console);
    if !guest_args.is_empty() {
        s.push_str(" --");
        for a in guest_args {
            s.push(' ');
            s.push_str(a);
        }
    }
    s
}

/// The QEMU command that boots `kernel` with `initrd`.
pub fn qemu_command(kernel: &Kernel, initrd: &Path, guest_args: &[&str]) -> Command {
    let m = machine(kernel.arch).expect("located kernels have a machine");
    let share = kernel.qemu_root.join("usr/share");
    let mut c = Command::new(kernel.qemu());
    // Debian builds x86's TCG accelerator as a module (qemu-system-common).
    if let Some(modules) = std::fs::read_dir(kernel.qemu_root.join("usr/lib"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("qemu"))
        .find(|p| p.is_dir())
    {
        c.env("QEMU_MODULE_DIR", modules);
    }
    c.args(m.args)
        .arg("-smp")
        .arg(kernel.cpus.to_string())
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .args(["-vga", "none"])
        .arg("-L")
        .arg(share.join("qemu"))
        .arg("-L")
        .arg(share.join("seabios"))
        .arg("-kernel")
        .arg(&kernel.image)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(cmdline(&m, guest_args));
    c
}

/// What the console showed, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Console {
    /// The guest's protocol lines, in order (for [`GuestLog::parse`]).
    pub lines: Vec<String>,
    /// The release from the kernel's banner (`Linux version X ...`).
    pub banner: Option<String>,
    /// The release the guest printed (`NOTE kernel=X`).
    pub guest_kernel: Option<String>,
    /// `Kernel panic - not syncing: WHY`.
    pub panic: Option<String>,
    /// Whether the guest printed `DONE`.
    pub done: bool,
}

/// The first words of the guest protocol's lines.
const KINDS: [&str; 13] = [
    "GUEST", "CASE", "FACTS", "CALL", "RAW", "VALUE", "PROBE", "MODE", "INLINE", "DATA", "NOTE",
    "END", "DONE",
];

/// Drops terminal escape sequences (firmware clears screens) and control
/// characters other than tab.
fn strip_controls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut it = line.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            // CSI: ESC [ params final-byte; otherwise ESC and one char.
            if it.peek() == Some(&'[') {
                it.next();
                for d in it.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            } else {
                it.next();
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

/// Sorts a console transcript: protocol lines, banner, panic, `DONE`.
pub fn parse_console(raw: &str) -> Console {
    let mut con = Console::default();
    for line in raw.split('\n') {
        let line = strip_controls(line);
        let line = line.trim();
        // The kernel's own lines, with or without a printk timestamp.
        let msg = match line.strip_prefix('[') {
            Some(rest) => rest.split_once(']').map_or(line, |(_, m)| m.trim_start()),
            None => line,
        };
        if let Some(rest) = msg.strip_prefix("Linux version ") {
            con.banner
                .get_or_insert_with(|| rest.split_whitespace().next().unwrap_or("").to_string());
            continue;
        }
        if let Some(i) = msg.find("Kernel panic - not syncing:") {
            con.panic.get_or_insert_with(|| {
                msg[i + "Kernel panic - not syncing:".len()..]
                    .trim()
                    .to_string()
            });
            continue;
        }
        let kind = line.split_whitespace().next().unwrap_or("");
        if !KINDS.contains(&kind) || (kind == "DONE" && line != "DONE") {
            continue;
        }
        if kind == "DONE" {
            con.done = true;
        }
        if let Some(k) = line.strip_prefix("NOTE kernel=") {
            con.guest_kernel = k.split_whitespace().next().map(String::from);
        }
        con.lines.push(line.to_string());
    }
    con
}

/// One boot.
#[derive(Debug)]
pub struct SystemRun {
    /// The kernel's architecture.
    pub kernel_arch: Arch,
    /// Stock or patched.
    pub kernel_kind: KernelKind,
    /// The kernel release: as the guest saw it, else the banner's, else
    /// the cache's.
    pub kernel: String,
    /// The sorted console.
    pub console: Console,
    /// The whole console transcript (CRs removed), for diagnosis.
    pub transcript: String,
    /// QEMU's standard error.
    pub qemu_stderr: String,
    /// QEMU's exit status (`None` if it was killed).
    pub exit: Option<ExitStatus>,
    /// Killed at the time limit.
    pub timed_out: bool,
    /// Killed because it did not power off after `DONE` or a panic.
    pub hung_after_end: bool,
    /// Boot, run and power-off, in seconds.
    pub secs: f64,
}

impl SystemRun {
    /// The guest's protocol lines, as [`GuestLog::parse`] takes them.
    pub fn guest_output(&self) -> String {
        let mut s = self.console.lines.join("\n");
        s.push('\n');
        s
    }

    /// `ok`, or what went wrong: a panic, a timeout, no result at all, no
    /// `DONE`, no power-off, or QEMU failing.
    pub fn status(&self) -> String {
        let c = &self.console;
        let exited_ok = self.exit.is_some_and(|s| s.success());
        if let Some(p) = &c.panic {
            if c.done {
                return format!("kernel panic after DONE: {p}");
            }
            return format!("kernel panic: {p}");
        }
        if self.timed_out {
            let what = if c.lines.is_empty() {
                "no result"
            } else {
                "no DONE"
            };
            return format!("timed out after {:.0}s ({what})", self.secs);
        }
        if c.done && self.hung_after_end {
            return "DONE, but the machine did not power off".into();
        }
        if c.lines.is_empty() {
            let err = self.qemu_stderr.lines().last().unwrap_or("").trim();
            return format!("no result (qemu {}: {err})", describe(self.exit));
        }
        if !c.done {
            return format!("no DONE (qemu {})", describe(self.exit));
        }
        if !exited_ok {
            return format!("qemu {} after DONE", describe(self.exit));
        }
        "ok".into()
    }
}

fn describe(s: Option<ExitStatus>) -> String {
    s.map_or_else(|| "killed".into(), |s| s.to_string())
}

/// Unique scratch files per boot.
fn scratch(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "msgzc-system-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// How long QEMU may take to exit after `DONE` or a panic.
const GRACE: Duration = Duration::from_secs(20);

/// Boots `guest` (a static binary that `kernel` can run, see [`can_run`])
/// as `/init` with `guest_args`, and collects the console until QEMU exits,
/// `timeout` passes, or the machine fails to power off after `DONE` or a
/// panic. `Err` only when nothing could be started.
pub fn boot(
    kernel: &Kernel,
    guest: &Path,
    guest_args: &[&str],
    timeout: Duration,
) -> Result<SystemRun, String> {
    boot_with(kernel, guest, &[], guest_args, timeout)
}

/// [`boot`] with more static binaries in the initramfs: each `(name,
/// path)` becomes `/name`.
pub fn boot_with(
    kernel: &Kernel,
    guest: &Path,
    extra: &[(&str, &Path)],
    guest_args: &[&str],
    timeout: Duration,
) -> Result<SystemRun, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let init = read(guest)?;
    let data = extra
        .iter()
        .map(|(_, p)| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let files: Vec<(&str, &[u8])> = extra
        .iter()
        .map(|(n, _)| *n)
        .zip(data.iter().map(Vec::as_slice))
        .collect();
    let initrd = scratch("initrd.cpio");
    std::fs::write(&initrd, initramfs_with(&init, &files))
        .map_err(|e| format!("{}: {e}", initrd.display()))?;
    let r = boot_initrd(kernel, &initrd, guest_args, timeout);
    let _ = std::fs::remove_file(&initrd);
    r
}

fn boot_initrd(
    kernel: &Kernel,
    initrd: &Path,
    guest_args: &[&str],
    timeout: Duration,
) -> Result<SystemRun, String> {
    let start = Instant::now();
    let mut child = qemu_command(kernel, initrd, guest_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", kernel.qemu().display()))?;
    let mut so = child.stdout.take().expect("piped");
    let mut se = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = so.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let mut raw = Vec::new();
    let mut ended_at: Option<Instant> = None;
    let (mut timed_out, mut hung_after_end) = (false, false);
    let exit = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(chunk) => {
                raw.extend_from_slice(&chunk);
                if ended_at.is_none() {
                    let text = String::from_utf8_lossy(&raw);
                    if text.contains("\nDONE\r")
                        || text.contains("\nDONE\n")
                        || text.contains("Kernel panic - not syncing")
                    {
                        ended_at = Some(Instant::now());
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) | Err(mpsc::RecvTimeoutError::Disconnected) => {}
        }
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(st);
        }
        let hung = ended_at.is_some_and(|t| t.elapsed() > GRACE);
        if hung || start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            hung_after_end = hung;
            timed_out = !hung;
            break None;
        }
    };
    let _ = reader.join();
    while let Ok(chunk) = rx.try_recv() {
        raw.extend_from_slice(&chunk);
    }
    let qemu_stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let transcript = String::from_utf8_lossy(&raw).replace('\r', "");
    let console = parse_console(&transcript);
    let release = console
        .guest_kernel
        .clone()
        .or_else(|| console.banner.clone())
        .unwrap_or_else(|| kernel.release.clone());
    Ok(SystemRun {
        kernel_arch: kernel.arch,
        kernel_kind: kernel.kind,
        kernel: release,
        console,
        transcript,
        qemu_stderr,
        exit,
        timed_out,
        hung_after_end,
        secs: start.elapsed().as_secs_f64(),
    })
}

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
    build::build_rust(arch, &build::cache_dir(), Package::Agent)
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

fn usage() -> ExitCode {
    eprintln!(
        "usage: msgzc-conformance system-boot --target ARCH [--guest rust|c] [--kernel-arch ARCH]\n\
         \x20                                    [--kernel stock|patched] [--timeout SECS]\n\
         \x20                                    [--kernel-dir DIR] [--smp N] [--fetch] [--console]\n\
         \x20                                    [CASE..]\n\
         \n\
         Builds ARCH's guest agent, boots it as PID 1 on a kernel under qemu-system\n\
         (default: ARCH's own, or the 64-bit kernel that runs it in compat mode),\n\
         prints its lines and judges them.\n\
         --kernel   stock (default) or patched: 6.1 with conformance/kernel/*.patch\n\
         --kernel-dir  boot the kernel cached in DIR (e.g. an earlier patch revision's),\n\
         \x20          judged as --kernel says\n\
         --smp N    give QEMU N CPUs (default 1; for an SMP kernel, e.g. ci/kernels\n\
         \x20          --patched --variant smp)\n\
         --fetch    run ci/kernels to fetch or build a missing kernel (else fail)\n\
         --console  print the whole console instead of the guest's lines\n\
         stock kernels: {}\n\
         patched kernels: {}",
        KERNEL_ARCHS.map(Arch::name).join(" "),
        PATCHED_ARCHS.map(Arch::name).join(" ")
    );
    ExitCode::from(2)
}

/// The `system-boot` subcommand.
pub fn main(args: &[String]) -> ExitCode {
    let mut target = None;
    let mut lang = None;
    let mut kernel_arch = None;
    let mut kind = KernelKind::Stock;
    let mut timeout = Duration::from_secs(600);
    let mut kernel_dir: Option<PathBuf> = None;
    let mut cpus = 1u32;
    let (mut fetch, mut show_console) = (false, false);
    let mut cases: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let arch = |v: Option<&String>| v.and_then(|n| Arch::from_name(n));
        match a.as_str() {
            "--target" => match arch(it.next()) {
                Some(t) => target = Some(t),
                None => return usage(),
            },
            "--kernel-arch" => match arch(it.next()) {
                Some(t) => kernel_arch = Some(t),
                None => return usage(),
            },
            "--guest" => match it.next().map(String::as_str) {
                Some(l @ ("rust" | "c")) => lang = Some(l.to_string()),
                _ => return usage(),
            },
            "--kernel" => match it.next().and_then(|k| KernelKind::from_name(k)) {
                Some(k) => kind = k,
                None => return usage(),
            },
            "--timeout" => match it.next().and_then(|s| s.parse::<u64>().ok()) {
                Some(s) => timeout = Duration::from_secs(s),
                None => return usage(),
            },
            "--kernel-dir" => match it.next() {
                Some(d) => kernel_dir = Some(PathBuf::from(d)),
                None => return usage(),
            },
            "--smp" => match it.next().and_then(|s| s.parse::<u32>().ok()) {
                Some(n @ 1..=64) => cpus = n,
                _ => return usage(),
            },
            "--fetch" => fetch = true,
            "--console" => show_console = true,
            c if !c.starts_with('-') => cases.push(c),
            _ => return usage(),
        }
    }
    let Some(target) = target else {
        return usage();
    };
    let lang = lang.unwrap_or_else(|| {
        if target.rust_triple().is_some() {
            "rust".into()
        } else {
            "c".into()
        }
    });
    let Some(karch) = kernel_arch.or_else(|| default_kernel(target, kind)) else {
        eprintln!("system-boot: no {} kernel runs {target}", kind.name());
        return ExitCode::FAILURE;
    };
    if !can_run(karch, target) {
        eprintln!("system-boot: a {karch} kernel does not run {target} binaries");
        return ExitCode::FAILURE;
    }
    let located = Kernel::locate(karch, kind, fetch).and_then(|mut k| {
        if let Some(d) = &kernel_dir {
            k.use_dir(d)?;
        }
        k.cpus = cpus;
        Ok(k)
    });
    let kernel = match located {
        Ok(k) => k,
        Err(e) => {
            eprintln!("system-boot: {e}");
            return ExitCode::FAILURE;
        }
    };
    let t = Instant::now();
    let built = if lang == "rust" {
        build_rust_guest(target)
    } else {
        build_c_guest(target)
    };
    let guest = match built {
        Ok(g) => g,
        Err(e) => {
            eprintln!("system-boot: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "system-boot: {target}/{lang} agent {} (built in {:.1}s) on {} {karch} kernel {} ({}), -smp {}",
        guest.display(),
        t.elapsed().as_secs_f64(),
        kind.name(),
        kernel.release,
        kernel.dir.display(),
        kernel.cpus
    );
    let run = match boot(&kernel, &guest, &guest_args(&lang, &cases), timeout) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("system-boot: {e}");
            return ExitCode::FAILURE;
        }
    };
    if show_console {
        print!("{}", run.transcript);
    } else {
        print!("{}", run.guest_output());
    }
    let results = judge(&run, target, &lang);
    let ran: Vec<_> = if cases.is_empty() {
        results.iter().collect()
    } else {
        results.iter().filter(|c| cases.contains(&c.case)).collect()
    };
    println!(
        "\nsystem: {target}/{lang} on {} {karch} kernel {}: {} in {:.1}s",
        kind.name(),
        run.kernel,
        run.status(),
        run.secs
    );
    let mut failed = run.status() != "ok";
    for c in &ran {
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
        failed |= matches!(c.outcome, Outcome::Fail(_));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The bench's own lines in a console transcript: from its table's
/// header (`msgzc bench: ...`, printed twice: first as the run starts,
/// then above the table) up to `DONE`.
pub fn bench_table(transcript: &str) -> Option<String> {
    let lines: Vec<&str> = transcript.lines().map(str::trim_end).collect();
    let start = lines.iter().rposition(|l| l.starts_with("msgzc bench:"))?;
    let body: Vec<&str> = lines[start..]
        .iter()
        .take_while(|l| **l != "DONE")
        .filter(|l| !l.starts_with("NOTE "))
        .copied()
        .collect();
    body.iter()
        .any(|l| l.starts_with('|'))
        .then(|| body.join("\n").trim_end().to_string() + "\n")
}

/// `system-bench`'s options.
struct BenchArgs {
    target: Arch,
    kind: KernelKind,
    markdown: Option<String>,
    timeout: Duration,
    /// Put the kernel's msg_zerocopy selftest in the initramfs.
    selftest: bool,
    bench: Vec<String>,
}

fn bench_usage() -> ExitCode {
    eprintln!(
        "usage: msgzc-conformance system-bench [--target ARCH] [--kernel stock|patched|loopback-zerocopy]\n\
         \x20                                     [--selftest] [--markdown PATH] [--timeout SECS] [-- BENCH-ARGS]\n\
         defaults: --target x86_64 --kernel patched -- --net loopback --size 8192 --secs 2 --interval 1,32\n\
         --selftest: the kernel's own msg_zerocopy (ci/msg-zerocopy) as /msg_zerocopy, run by bench --selftest"
    );
    ExitCode::from(2)
}

fn parse_bench_args(args: &[String]) -> Option<BenchArgs> {
    let mut o = BenchArgs {
        target: Arch::X86_64,
        kind: KernelKind::Patched,
        markdown: None,
        timeout: Duration::from_secs(1800),
        selftest: false,
        bench: ["--net", "loopback", "--size", "8192", "--secs", "2"]
            .into_iter()
            .chain(["--interval", "1,32"])
            .map(String::from)
            .collect(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--target" => o.target = Arch::from_name(it.next()?)?,
            "--kernel" => o.kind = KernelKind::from_name(it.next()?)?,
            "--markdown" => o.markdown = Some(it.next()?.clone()),
            "--timeout" => o.timeout = Duration::from_secs(it.next()?.parse().ok()?),
            "--selftest" => o.selftest = true,
            "--" => {
                o.bench = it.by_ref().cloned().collect();
                break;
            }
            _ => return None,
        }
    }
    Some(o)
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

/// The `system-bench` subcommand: `msgzc-conformance bench` as PID 1 on a
/// kernel under qemu-system, so that `zc-inline` meets a kernel that
/// implements `SCM_ZC_NOTIFICATION`. Under TCG only the ratios between the
/// modes of one run mean anything.
pub fn bench_main(args: &[String]) -> ExitCode {
    let Some(o) = parse_bench_args(args) else {
        return bench_usage();
    };
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
    if target.rust_triple().is_none() || !kind.has(target) {
        return Err(format!(
            "needs a Rust agent and a {} {target} kernel",
            kind.name()
        ));
    }
    if o.selftest && target != Arch::X86_64 {
        return Err("--selftest: ci/msg-zerocopy builds for x86_64 only".into());
    }
    let kernel = Kernel::locate(target, kind, true)?;
    // The bench's agent side is still in the host crate.
    let guest = build::build_rust(target, &build::cache_dir(), Package::Host)?;
    let mut guest_args = vec!["bench"];
    guest_args.extend(o.bench.iter().map(String::as_str));
    let mut extra = Vec::new();
    let selftest;
    if o.selftest {
        selftest = build_selftest(&kernel)?;
        extra.push(("msg_zerocopy", selftest.as_path()));
        guest_args.extend(["--selftest", "/msg_zerocopy"]);
    }
    eprintln!(
        "system-bench: {} on {} {target} kernel {} (qemu-system, TCG)",
        guest_args.join(" "),
        kind.name(),
        kernel.release
    );
    let run = boot_with(&kernel, &guest, &extra, &guest_args, o.timeout)?;
    let Some(table) = bench_table(&run.transcript) else {
        return Err(format!(
            "no result table ({}); console:\n{}",
            run.status(),
            run.transcript
        ));
    };
    let cmd = format!(
        "msgzc-conformance system-bench --target {target} --kernel {}{} -- {}",
        kind.name(),
        if o.selftest { " --selftest" } else { "" },
        o.bench.join(" ")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry read back: (name, mode, rdev, data).
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// Reads back a newc archive.
    fn read_newc(mut b: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        let total = b.len();
        loop {
            assert_eq!(&b[..6], b"070701");
            let f = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, size, rmaj, rmin, namesize) = (f(1), f(6), f(9), f(10), f(11));
            let name_end = 110 + namesize as usize;
            let name = std::str::from_utf8(&b[110..name_end - 1])
                .unwrap()
                .to_string();
            let data_at = name_end.div_ceil(4) * 4;
            let data = b[data_at..data_at + size as usize].to_vec();
            let next = (data_at + size as usize).div_ceil(4) * 4;
            assert_eq!((total - b.len()) % 4, 0, "entries start 4-aligned");
            b = &b[next..];
            if name == "TRAILER!!!" {
                assert!(b.iter().all(|&x| x == 0));
                return out;
            }
            out.push((name, mode, (rmaj, rmin), data));
        }
    }

    #[test]
    fn initramfs_is_newc_with_init_and_console() {
        let img = initramfs_with(b"\x7fELF-ish payload", &[]);
        assert_eq!(img.len() % 4, 0);
        let e = read_newc(&img);
        let names: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            names,
            ["dev", "dev/console", "dev/null", "proc", "sys", "init"]
        );
        assert_eq!((e[1].1, e[1].2), (0o020600, (5, 1)));
        assert_eq!((e[2].1, e[2].2), (0o020666, (1, 3)));
        assert_eq!(e[5].1, 0o100755);
        assert_eq!(e[5].3, b"\x7fELF-ish payload");
        assert_eq!(e[0].1 & 0o170000, 0o040000);
        let img = initramfs_with(b"init", &[("msg_zerocopy", b"\x7fELF2"), ("x", b"")]);
        let e = read_newc(&img);
        assert_eq!(e.len(), 8);
        assert_eq!((e[6].0.as_str(), e[6].1), ("msg_zerocopy", 0o100755));
        assert_eq!(e[6].3, b"\x7fELF2");
        assert_eq!((e[7].0.as_str(), e[7].3.len()), ("x", 0));
    }

    #[test]
    fn console_separates_guest_lines_from_noise() {
        let raw = "\x1b[2J\x1bcSeaBIOS (version 1.16)\n\
            [    0.000000] Linux version 6.1.0-50-arm64 (debian-kernel@lists) #1 SMP\n\
            Linux version 6.1.176 (root@host) (gcc 12) #1\n\
            NOTE kernel=6.1.0-50-arm64 machine=aarch64\n\
            GUEST target=aarch64 lang=rust pid=1\n\
            CASE name=probe\n\
            random: crng init done\n\
            DATA sock=a len=2 hex=0a0b\n\
            END case=probe status=ok detail=x\n\
            DONE\n\
            reboot: Power down\n";
        let c = parse_console(raw);
        assert_eq!(c.banner.as_deref(), Some("6.1.0-50-arm64"));
        assert_eq!(c.guest_kernel.as_deref(), Some("6.1.0-50-arm64"));
        assert!(c.done);
        assert_eq!(c.panic, None);
        assert_eq!(c.lines.len(), 6);
        assert_eq!(c.lines[1], "GUEST target=aarch64 lang=rust pid=1");
        assert_eq!(c.lines[3], "DATA sock=a len=2 hex=0a0b");
        let log = GuestLog::parse(&(c.lines.join("\n") + "\n"));
        assert!(log.done);
        assert_eq!(log.target.as_deref(), Some("aarch64"));
    }

    #[test]
    fn bench_table_is_cut_from_the_console() {
        let t = "SeaBIOS\nNOTE kernel=6.1.158 machine=x86_64\n\
                 msgzc bench: Linux 6.1.158, 1 CPU(s)\n\
                 loopback tcp4 interval 1 copy 10.0 MB/s\n\n\
                 msgzc bench: Linux 6.1.158, 1 CPU(s).\n\nCommand: x\n\
                 | net | proto |\n|---|---|\n| loopback | tcp4 |\nDONE\nreboot: Power down\n";
        let table = bench_table(t).unwrap();
        assert!(table.starts_with("msgzc bench: Linux 6.1.158, 1 CPU(s).\n"));
        assert!(table.ends_with("| loopback | tcp4 |\n"));
        assert!(!table.contains("DONE"));
        assert_eq!(bench_table("msgzc bench: x\nno table\nDONE\n"), None);
    }

    #[test]
    fn console_recognises_panics() {
        let c = parse_console(
            "GUEST target=mips lang=c pid=1\n\
             [    2.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000004\n",
        );
        assert_eq!(
            c.panic.as_deref(),
            Some("Attempted to kill init! exitcode=0x00000004")
        );
        assert!(!c.done);
    }

    #[test]
    fn kernels_run_their_own_and_compat_guests() {
        assert_eq!(
            default_kernel(Arch::I686, KernelKind::Stock),
            Some(Arch::I686)
        );
        assert_eq!(
            kernels_for(Arch::I686, KernelKind::Patched),
            [Arch::I686, Arch::X86_64]
        );
        assert_eq!(
            kernels_for(Arch::Armv7, KernelKind::Stock),
            [Arch::Armv7, Arch::Aarch64]
        );
        assert!(kernels_for(Arch::Armv7, KernelKind::Patched).is_empty());
        assert_eq!(
            default_kernel(Arch::Hppa, KernelKind::Patched),
            Some(Arch::Hppa)
        );
        assert_eq!(default_kernel(Arch::Riscv64, KernelKind::Stock), None);
        for k in PATCHED_ARCHS {
            assert!(
                KernelKind::Stock.has(k),
                "{k}: every patched kernel has a stock twin"
            );
        }
        assert!(can_run(Arch::Aarch64, Arch::Armv7));
        assert!(can_run(Arch::Mips64el, Arch::Mipsel));
        assert!(!can_run(Arch::Mips64el, Arch::Mips));
        assert!(!can_run(Arch::Mips64, Arch::Mips));
        for k in KERNEL_ARCHS {
            assert!(machine(k).is_some(), "{k}");
        }
        let m = machine(Arch::S390x).unwrap();
        assert_eq!(
            cmdline(&m, &guest_args("rust", &["probe"])),
            "console=ttysclp0 panic=-1 -- guest probe"
        );
        assert_eq!(
            cmdline(&m, &guest_args("c", &[])),
            "console=ttysclp0 panic=-1"
        );
    }
}
