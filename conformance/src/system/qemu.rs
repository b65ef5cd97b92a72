//! QEMU: the command line that boots a kernel with an initramfs, and one
//! boot with its console collected.

use super::console::{parse_console, Console};
use super::initramfs::initramfs_with;
use super::{machine, Kernel, KernelKind, Machine};
use msgzc_abi::Arch;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    /// The guest's protocol lines, as [`GuestLog::parse`](crate::judge::GuestLog::parse) takes them.
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

/// Boots `guest` (a static binary that `kernel` can run, see
/// [`can_run`](super::can_run)) as `/init` with `guest_args`, and collects
/// the console until QEMU exits, `timeout` passes, or the machine fails to
/// power off after `DONE` or a panic. `Err` only when nothing could be started.
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
    let end = watch(&mut child, &rx, &mut raw, start, timeout)?;
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
        exit: end.exit,
        timed_out: end.timed_out,
        hung_after_end: end.hung_after_end,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// How a boot ended.
struct End {
    exit: Option<ExitStatus>,
    timed_out: bool,
    hung_after_end: bool,
}

/// Collects the console from `rx` into `raw` until QEMU exits, `timeout`
/// passes since `start`, or the machine fails to power off within
/// [`GRACE`] after `DONE` or a panic (then QEMU is killed).
fn watch(
    child: &mut Child,
    rx: &mpsc::Receiver<Vec<u8>>,
    raw: &mut Vec<u8>,
    start: Instant,
    timeout: Duration,
) -> Result<End, String> {
    let mut ended_at: Option<Instant> = None;
    loop {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(50)) {
            raw.extend_from_slice(&chunk);
            if ended_at.is_none() {
                let text = String::from_utf8_lossy(raw);
                if text.contains("\nDONE\r")
                    || text.contains("\nDONE\n")
                    || text.contains("Kernel panic - not syncing")
                {
                    ended_at = Some(Instant::now());
                }
            }
        }
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(End {
                exit: Some(st),
                timed_out: false,
                hung_after_end: false,
            });
        }
        let hung = ended_at.is_some_and(|t| t.elapsed() > GRACE);
        if hung || start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(End {
                exit: None,
                timed_out: !hung,
                hung_after_end: hung,
            });
        }
    }
}
