//! Kernels: which architecture has which (stock, patched), which guests a
//! kernel runs, and where `ci/kernels` keeps them.

use super::Machine;
use super::{KERNEL_ARCHS, PATCHED_ARCHS};
use msgzc_abi::Arch;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

    /// Every kind.
    pub const ALL: [KernelKind; 3] = [
        KernelKind::Stock,
        KernelKind::Patched,
        KernelKind::LoopbackZc,
    ];

    /// Parses [`name`](Self::name).
    pub fn from_name(s: &str) -> Option<KernelKind> {
        KernelKind::ALL.into_iter().find(|k| k.name() == s)
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

/// The QEMU machine of a kernel architecture (from the registry).
pub fn machine(kernel: Arch) -> Option<Machine> {
    crate::arches::info(kernel).machine
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
        let script = crate::build::workspace_root().join("ci/kernels");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::guest_args;
    use crate::system::qemu::cmdline;

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
        assert_eq!(
            default_kernel(Arch::Riscv64, KernelKind::Patched),
            Some(Arch::Riscv64)
        );
        assert_eq!(kernels_for(Arch::Sparc, KernelKind::Stock), [Arch::Sparc64]);
        for k in PATCHED_ARCHS {
            assert!(
                KernelKind::Stock.has(k),
                "{k}: every patched kernel has a stock twin"
            );
        }
        assert!(can_run(Arch::Aarch64, Arch::Armv7));
        assert!(can_run(Arch::Mips64el, Arch::Mipsel));
        assert!(!can_run(Arch::Mips64el, Arch::Mips));
        assert!(can_run(Arch::Mips64, Arch::Mips));
        assert!(!can_run(Arch::Mips64, Arch::Mipsel));
        // 32-bit powerpc has its own kernel; powerpc64le runs no
        // big-endian compat guest.
        assert_eq!(
            kernels_for(Arch::Powerpc, KernelKind::Patched),
            [Arch::Powerpc]
        );
        assert!(!can_run(Arch::Powerpc64le, Arch::Powerpc));
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
