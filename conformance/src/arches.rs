//! The registry of architectures: the one table that says, per
//! [`msgzc_abi::Arch`], which cross gcc, Debian packages, qemu-user and
//! qemu-system binaries, machine, console and kernel the conformance
//! machine uses. The runner, the system tier and the bash in `ci/` (through
//! `msgzc-conformance arches`) all read it; adding a target means adding a
//! row here (and, for a self-built kernel, `conformance/kernel/ARCH.config`).
//!
//! ```text
//! msgzc-conformance arches [--json | --field NAME[,NAME..] | --github-matrix cross|debian]
//! ```
//!
//! Without options: a table for people. `--json`: one object per row.
//! `--field`: those columns, space-separated, one line per architecture in
//! [`Arch::ALL`] order, `-` where a row has no value, lists joined by `;`
//! (flags hold commas): for `while read` in bash. `--github-matrix`: the
//! targets of one of the GitHub workflow's conformance jobs (Cross.toml,
//! which `cross` reads and cannot derive, is checked against this table by
//! a test).

use msgzc_abi::Arch;
use serde::Serialize;
use std::process::ExitCode;

/// Where a system-tier kernel comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelSource {
    /// Debian's `linux-image-FLAVOUR` package (only `./boot` is used).
    Debian {
        /// The metapackage's flavour (`4kc-malta`, `arm64`).
        flavour: &'static str,
    },
    /// Built by `ci/kernels` from Debian's `linux-source-6.1`: tinyconfig,
    /// `conformance/kernel/common.config` and `ARCH.config`; also built
    /// with `conformance/kernel/*.patch` (`--patched`).
    Built {
        /// The kernel's `ARCH=` (`i386`, `parisc`).
        make_arch: &'static str,
        /// The architecture whose cross gcc compiles it (`CROSS_COMPILE=`).
        cc: Arch,
        /// The make target (`bzImage`, `vmlinux`).
        make_target: &'static str,
        /// The image `-kernel` takes, relative to the build tree.
        image: &'static str,
    },
}

/// How QEMU boots a kernel of one architecture (verified combinations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// `qemu-system-<this>`.
    pub qemu: &'static str,
    /// Machine, CPU and memory options.
    pub args: &'static [&'static str],
    /// The kernel's console device (`console=`).
    pub console: &'static str,
    /// Where the kernel comes from.
    pub kernel: KernelSource,
}

/// The Rust target of an architecture that has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RustTarget {
    /// The target triple (`riscv64gc-unknown-linux-gnu`).
    pub triple: &'static str,
    /// Whether rustup ships a prebuilt std for it (a tier-2 target), so
    /// that `cross` and the GitHub cross jobs can build for it. The
    /// project's own builds always use Debian's rustc with `-Zbuild-std`.
    pub prebuilt_std: bool,
}

/// A tier-2 target: rustup ships its std.
const fn prebuilt(triple: &'static str) -> Option<RustTarget> {
    Some(RustTarget {
        triple,
        prebuilt_std: true,
    })
}

/// A tier-3 target: std is built from source (`-Zbuild-std`).
const fn build_std(triple: &'static str) -> Option<RustTarget> {
    Some(RustTarget {
        triple,
        prebuilt_std: false,
    })
}

/// One row of the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchInfo {
    /// The architecture.
    pub arch: Arch,
    /// Its Rust target, or `None` where Rust has no backend (alpha and
    /// hppa: their guests are written in C).
    pub rust: Option<RustTarget>,
    /// The GNU triple of its cross toolchain (`mips64-linux-gnuabi64`).
    pub gnu: &'static str,
    /// `<gnu>-gcc`.
    pub gcc: &'static str,
    /// Extra flags for every static C program.
    pub cflags: &'static [&'static str],
    /// Extra `rustc` flags of its Rust builds (the agent, the crates'
    /// tests), beside `+crt-static`.
    pub rustflags: &'static [&'static str],
    /// Debian's name for the architecture (`armhf`, `ppc64el`).
    pub debian: &'static str,
    /// The Debian packages of the cross gcc and its libc.
    pub packages: &'static [&'static str],
    /// qemu's name for the target (`ppc`): `<this>-linux-user` when
    /// building qemu, `qemu-<this>` for the patched binaries.
    pub qemu_user: &'static str,
    /// Debian's stock qemu-user binary, `qemu-<qemu_user>-static`.
    pub qemu_static: &'static str,
    /// The system tier's machine, if a kernel of this architecture boots.
    pub machine: Option<Machine>,
}

/// One row; the macro writes the derived names once (`concat!`).
macro_rules! row {
    ($arch:ident, $rust:expr, $gnu:literal, $debian:literal, $qemu:literal,
     cflags: $cflags:expr, rustflags: $rustflags:expr, packages: $pkgs:expr, machine: $m:expr) => {
        ArchInfo {
            arch: Arch::$arch,
            rust: $rust,
            gnu: $gnu,
            gcc: concat!($gnu, "-gcc"),
            cflags: $cflags,
            rustflags: $rustflags,
            debian: $debian,
            packages: $pkgs,
            qemu_user: $qemu,
            qemu_static: concat!("qemu-", $qemu, "-static"),
            machine: $m,
        }
    };
    ($arch:ident, $rust:expr, $gnu:literal, $debian:literal, $qemu:literal, machine: $m:expr) => {
        row!($arch, $rust, $gnu, $debian, $qemu, cflags: &[], rustflags: &[],
             packages: &[concat!("gcc-", $gnu), concat!("libc6-dev-", $debian, "-cross")],
             machine: $m)
    };
}

const fn debian(flavour: &'static str) -> KernelSource {
    KernelSource::Debian { flavour }
}

const fn built(
    make_arch: &'static str,
    cc: Arch,
    make_target: &'static str,
    image: &'static str,
) -> KernelSource {
    KernelSource::Built {
        make_arch,
        cc,
        make_target,
        image,
    }
}

const fn vmlinux(make_arch: &'static str, cc: Arch) -> KernelSource {
    built(make_arch, cc, "vmlinux", "vmlinux")
}

const fn bzimage(make_arch: &'static str) -> KernelSource {
    // Both x86 kernels: the host's own gcc (-m32 for ARCH=i386).
    built(make_arch, Arch::X86_64, "bzImage", "arch/x86/boot/bzImage")
}

const fn riscv_image() -> KernelSource {
    // QEMU's virt board hands OpenSBI's next stage a flat Image, not an ELF.
    built("riscv", Arch::Riscv64, "Image", "arch/riscv/boot/Image")
}

const fn machine(
    qemu: &'static str,
    args: &'static [&'static str],
    console: &'static str,
    kernel: KernelSource,
) -> Option<Machine> {
    Some(Machine {
        qemu,
        args,
        console,
        kernel,
    })
}

/// Every architecture, in [`Arch::ALL`] order (a test checks it).
pub const ARCHES: [ArchInfo; Arch::ALL.len()] = [
    // The host: its gcc is Debian's native one.
    row!(X86_64, prebuilt("x86_64-unknown-linux-gnu"),
         "x86_64-linux-gnu", "amd64", "x86_64", cflags: &[], rustflags: &[],
         packages: &["gcc"],
         machine: machine("x86_64", &["-M", "pc", "-m", "256"], "ttyS0", bzimage("x86_64"))),
    row!(I686, prebuilt("i686-unknown-linux-gnu"),
         "i686-linux-gnu", "i386", "i386",
         machine: machine("i386", &["-M", "pc", "-m", "256"], "ttyS0", bzimage("i386"))),
    row!(Aarch64, prebuilt("aarch64-unknown-linux-gnu"),
         "aarch64-linux-gnu", "arm64", "aarch64",
         machine: machine("aarch64", &["-M", "virt", "-cpu", "cortex-a57", "-m", "512"],
                          "ttyAMA0", debian("arm64"))),
    row!(Armv7, prebuilt("armv7-unknown-linux-gnueabihf"),
         "arm-linux-gnueabihf", "armhf", "arm",
         machine: machine("arm", &["-M", "virt", "-cpu", "cortex-a15", "-m", "512"],
                          "ttyAMA0", debian("armmp"))),
    // virt's default -bios is OpenSBI, found under -L (qemu-system-data).
    row!(Riscv64, prebuilt("riscv64gc-unknown-linux-gnu"),
         "riscv64-linux-gnu", "riscv64", "riscv64",
         machine: machine("riscv64", &["-M", "virt", "-m", "256"], "ttyS0", riscv_image())),
    // ppce500 boots the ELF vmlinux itself (no firmware); e500mc has the
    // classic FPU that powerpc-linux-gnu code uses (e500v2 has only SPE).
    row!(Powerpc, prebuilt("powerpc-unknown-linux-gnu"),
         "powerpc-linux-gnu", "powerpc", "ppc",
         machine: machine("ppc", &["-M", "ppce500", "-cpu", "e500mc", "-m", "256"], "ttyS0",
                          vmlinux("powerpc", Arch::Powerpc))),
    row!(Powerpc64le, prebuilt("powerpc64le-unknown-linux-gnu"),
         "powerpc64le-linux-gnu", "ppc64el", "ppc64le",
         machine: machine("ppc64", &["-M", "pseries", "-cpu", "power9", "-m", "1024"],
                          "hvc0", debian("powerpc64le"))),
    row!(S390x, prebuilt("s390x-unknown-linux-gnu"),
         "s390x-linux-gnu", "s390x", "s390x",
         machine: machine("s390x", &["-M", "s390-ccw-virtio", "-m", "512"], "ttysclp0",
                          debian("s390x"))),
    row!(Mips, build_std("mips-unknown-linux-gnu"),
         "mips-linux-gnu", "mips", "mips",
         machine: machine("mips", &["-M", "malta", "-m", "256"], "ttyS0",
                          vmlinux("mips", Arch::Mips))),
    row!(Mipsel, build_std("mipsel-unknown-linux-gnu"),
         "mipsel-linux-gnu", "mipsel", "mipsel",
         machine: machine("mipsel", &["-M", "malta", "-m", "256"], "ttyS0",
                          debian("4kc-malta"))),
    row!(Mips64, build_std("mips64-unknown-linux-gnuabi64"),
         "mips64-linux-gnuabi64", "mips64", "mips64",
         machine: machine("mips64", &["-M", "malta", "-cpu", "5KEc", "-m", "256"], "ttyS0",
                          vmlinux("mips", Arch::Mips64))),
    row!(Mips64el, build_std("mips64el-unknown-linux-gnuabi64"),
         "mips64el-linux-gnuabi64", "mips64el", "mips64el",
         machine: machine("mips64el", &["-M", "malta", "-cpu", "5KEc", "-m", "256"], "ttyS0",
                          debian("5kc-malta"))),
    row!(Sparc64, prebuilt("sparc64-unknown-linux-gnu"),
         "sparc64-linux-gnu", "sparc64", "sparc64",
         machine: machine("sparc64", &["-M", "sun4u", "-m", "256"], "ttyS0",
                          vmlinux("sparc64", Arch::Sparc64))),
    // Static alpha binaries crash at start (TLS setup) unless linked
    // without relaxation; its glibc package carries its soname.
    row!(Alpha, None,
         "alpha-linux-gnu", "alpha", "alpha", cflags: &["-Wl,--no-relax"], rustflags: &[],
         packages: &["gcc-alpha-linux-gnu", "libc6.1-dev-alpha-cross"],
         machine: machine("alpha", &["-M", "clipper", "-m", "256"], "ttyS0",
                          vmlinux("alpha", Arch::Alpha))),
    row!(Hppa, None,
         "hppa-linux-gnu", "hppa", "hppa",
         machine: machine("hppa", &["-m", "256"], "ttyS0", vmlinux("parisc", Arch::Hppa))),
    // Debian has no 32-bit SPARC gcc: the sparc64 one builds V8+ code with
    // its multilib, which only qemu's sparc32plus runs (and the sparc64
    // kernel, through compat). Rust 1.96's symbols.o lacks the V8+ ELF flag
    // (fixed upstream after 1.96), which ld refuses unless told not to.
    row!(Sparc, build_std("sparc-unknown-linux-gnu"),
         "sparc64-linux-gnu", "sparc", "sparc32plus", cflags: &["-m32"],
         rustflags: &["-C", "link-arg=-Wl,--no-warn-mismatch"],
         packages: &["gcc-sparc64-linux-gnu", "gcc-multilib-sparc64-linux-gnu",
                     "libc6-dev-sparc-sparc64-cross"],
         machine: None),
];

/// The Rust target triple of `arch`, if Rust has a backend for it.
pub fn rust_triple(arch: Arch) -> Option<&'static str> {
    info(arch).rust.map(|r| r.triple)
}

/// A `--target` value that must have a Rust target (clap's value parser).
pub fn parse_rust_arch(name: &str) -> Result<Arch, String> {
    let arch = crate::table::parse_arch(name)?;
    match rust_triple(arch) {
        Some(_) => Ok(arch),
        None => Err(format!("{arch} has no Rust target (no LLVM backend)")),
    }
}

/// The row of `arch`.
pub fn info(arch: Arch) -> &'static ArchInfo {
    // ARCHES follows Arch::ALL, the enum's declaration order (a test
    // checks both), so the discriminant is the index.
    &ARCHES[arch as usize]
}

/// Whether `r` has a system-tier kernel, or (`built`) a self-built one.
const fn has_kernel(r: &ArchInfo, built: bool) -> bool {
    match r.machine {
        Some(Machine {
            kernel: KernelSource::Built { .. },
            ..
        }) => true,
        Some(_) => !built,
        None => false,
    }
}

/// How many rows [`has_kernel`].
const fn count(built: bool) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < ARCHES.len() {
        if has_kernel(&ARCHES[i], built) {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The architectures of the rows that [`has_kernel`], in table order.
const fn select<const N: usize>(built: bool) -> [Arch; N] {
    let mut out = [Arch::X86_64; N];
    let (mut i, mut n) = (0, 0);
    while i < ARCHES.len() {
        if has_kernel(&ARCHES[i], built) {
            out[n] = ARCHES[i].arch;
            n += 1;
        }
        i += 1;
    }
    out
}

/// The architectures with a system-tier kernel (`ci/kernels`).
pub const KERNEL_ARCHS: [Arch; count(false)] = select(false);

/// The architectures whose kernel `ci/kernels` builds, and so can patch
/// with `conformance/kernel/*.patch` (`--patched`): every family of the
/// proposal (generic 64- and 32-bit, mips, sparc, alpha, parisc).
pub const PATCHED_ARCHS: [Arch; count(true)] = select(true);

/// The make facts of a self-built kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Build {
    /// `ARCH=`.
    pub make_arch: &'static str,
    /// `CROSS_COMPILE=` (`<gnu>-`).
    pub cross: &'static str,
    /// The Debian package of that compiler.
    pub cross_package: &'static str,
    /// The make target.
    pub make_target: &'static str,
    /// The image, relative to the build tree.
    pub image: &'static str,
}

impl ArchInfo {
    /// The Debian kernel flavour, for a Debian kernel.
    pub fn flavour(&self) -> Option<&'static str> {
        match self.machine?.kernel {
            KernelSource::Debian { flavour } => Some(flavour),
            KernelSource::Built { .. } => None,
        }
    }

    /// The build facts, for a self-built kernel.
    pub fn built(&self) -> Option<Build> {
        match self.machine?.kernel {
            KernelSource::Debian { .. } => None,
            KernelSource::Built {
                make_arch,
                cc,
                make_target,
                image,
            } => {
                let cc = info(cc);
                Some(Build {
                    make_arch,
                    cross: cc.gnu,
                    cross_package: cc.packages[0],
                    make_target,
                    image,
                })
            }
        }
    }

    /// `-` and `;`-joined columns for `--field`; `None` for an unknown name.
    fn field(&self, name: &str) -> Option<String> {
        let m = self.machine;
        let b = self.built();
        let opt = |v: Option<&str>| v.unwrap_or("-").to_string();
        Some(match name {
            "name" => self.arch.name().to_string(),
            "triple" => opt(self.rust.map(|r| r.triple)),
            "gnu" => self.gnu.to_string(),
            "gcc" => self.gcc.to_string(),
            "cflags" if self.cflags.is_empty() => "-".to_string(),
            "cflags" => self.cflags.join(";"),
            "rustflags" if self.rustflags.is_empty() => "-".to_string(),
            "rustflags" => self.rustflags.join(";"),
            "debian" => self.debian.to_string(),
            "packages" => self.packages.join(";"),
            "qemu-user" => self.qemu_user.to_string(),
            "qemu-static" => self.qemu_static.to_string(),
            "qemu-system" => opt(m.map(|m| m.qemu)),
            "console" => opt(m.map(|m| m.console)),
            "kernel" => opt(m.map(|m| match m.kernel {
                KernelSource::Debian { .. } => "debian",
                KernelSource::Built { .. } => "built",
            })),
            "flavour" => opt(self.flavour()),
            "make-arch" => opt(b.map(|b| b.make_arch)),
            "cross" => opt(b.map(|b| b.cross)),
            "cross-package" => opt(b.map(|b| b.cross_package)),
            "make-target" => opt(b.map(|b| b.make_target)),
            "image" => opt(b.map(|b| b.image)),
            "patched" => (if b.is_some() { "yes" } else { "no" }).to_string(),
            _ => return None,
        })
    }
}

/// `--field`'s names.
const FIELDS: [&str; 20] = [
    "name",
    "triple",
    "gnu",
    "gcc",
    "cflags",
    "rustflags",
    "debian",
    "packages",
    "qemu-user",
    "qemu-static",
    "qemu-system",
    "console",
    "kernel",
    "flavour",
    "make-arch",
    "cross",
    "cross-package",
    "make-target",
    "image",
    "patched",
];

/// A row as JSON: the table's facts plus the derived ones.
#[derive(Serialize)]
struct JsonRow {
    name: &'static str,
    triple: Option<&'static str>,
    gnu: &'static str,
    gcc: &'static str,
    cflags: &'static [&'static str],
    rustflags: &'static [&'static str],
    debian: &'static str,
    packages: &'static [&'static str],
    qemu_user: &'static str,
    qemu_static: &'static str,
    machine: Option<JsonMachine>,
}

#[derive(Serialize)]
struct JsonMachine {
    qemu_system: String,
    args: &'static [&'static str],
    console: &'static str,
    kernel: &'static str,
    flavour: Option<&'static str>,
    make_arch: Option<&'static str>,
    cross: Option<&'static str>,
    cross_package: Option<&'static str>,
    make_target: Option<&'static str>,
    image: Option<&'static str>,
    patched: bool,
}

fn json_row(r: &ArchInfo) -> JsonRow {
    let b = r.built();
    JsonRow {
        name: r.arch.name(),
        triple: r.rust.map(|r| r.triple),
        gnu: r.gnu,
        gcc: r.gcc,
        cflags: r.cflags,
        rustflags: r.rustflags,
        debian: r.debian,
        packages: r.packages,
        qemu_user: r.qemu_user,
        qemu_static: r.qemu_static,
        machine: r.machine.map(|m| JsonMachine {
            qemu_system: format!("qemu-system-{}", m.qemu),
            args: m.args,
            console: m.console,
            kernel: if b.is_some() { "built" } else { "debian" },
            flavour: r.flavour(),
            make_arch: b.map(|b| b.make_arch),
            cross: b.map(|b| b.cross),
            cross_package: b.map(|b| b.cross_package),
            make_target: b.map(|b| b.make_target),
            image: b.map(|b| b.image),
            patched: b.is_some(),
        }),
    }
}

/// `msgzc-conformance arches`: without options, a table for people.
#[derive(Debug, clap::Args)]
pub struct ArchesArgs {
    /// Every row as JSON, derived facts included.
    #[arg(long, conflicts_with_all = ["field", "github_matrix"])]
    json: bool,
    /// These columns (comma-separated), one line per architecture, `-`
    /// where a row has none, lists joined by `;`.
    #[arg(long, value_delimiter = ',', value_name = "NAME[,NAME..]",
          value_parser = clap::builder::PossibleValuesParser::new(FIELDS),
          conflicts_with = "github_matrix")]
    field: Vec<String>,
    /// One of the GitHub workflow's conformance matrices, as the compact
    /// JSON that `strategy.matrix` takes through `fromJSON`.
    #[arg(long, value_enum)]
    github_matrix: Option<GithubJob>,
}

/// `msgzc-conformance arches`.
pub fn main(a: ArchesArgs) -> ExitCode {
    let out = if a.json {
        let rows: Vec<JsonRow> = ARCHES.iter().map(json_row).collect();
        serde_json::to_string_pretty(&rows).map(|s| s + "\n")
    } else if let Some(job) = a.github_matrix {
        serde_json::to_string(&github_matrix(job)).map(|s| s + "\n")
    } else if !a.field.is_empty() {
        Ok(columns(&a.field))
    } else {
        Ok(listing())
    };
    match out {
        Ok(s) => {
            print!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("arches: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The GitHub workflow's conformance jobs (`.github/workflows/ci.yml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GithubJob {
    /// `cross` with rustup's prebuilt std, under cross's stock qemu-user:
    /// the foreign targets that have one.
    Cross,
    /// Debian's toolchains in a bookworm container, stock and patched
    /// qemu-user: the rest, and the x86 rows the runner runs natively.
    Debian,
}

/// One entry of a job's matrix.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct MatrixEntry {
    target: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    triple: Option<&'static str>,
}

/// `{"include": [...]}` for `job`.
#[derive(Debug, Serialize)]
struct Matrix {
    include: Vec<MatrixEntry>,
}

/// Which job runs `r`: GitHub's runners are x86_64, which runs the x86
/// rows without qemu (natively and in compat).
fn github_job(r: &ArchInfo) -> GithubJob {
    let on_runner = r.arch == Arch::X86_64 || Arch::X86_64.compat_guest() == Some(r.arch);
    match r.rust {
        Some(t) if t.prebuilt_std && !on_runner => GithubJob::Cross,
        _ => GithubJob::Debian,
    }
}

fn github_matrix(job: GithubJob) -> Matrix {
    let include = ARCHES
        .iter()
        .filter(|r| github_job(r) == job)
        .map(|r| MatrixEntry {
            target: r.arch.name(),
            triple: (job == GithubJob::Cross)
                .then(|| r.rust.map(|t| t.triple))
                .flatten(),
        })
        .collect();
    Matrix { include }
}

/// The `--field` output (names checked by clap).
fn columns(names: &[String]) -> String {
    let mut out = String::new();
    for r in &ARCHES {
        let cols: Vec<String> = names
            .iter()
            .map(|n| r.field(n).unwrap_or_else(|| "-".to_string()))
            .collect();
        out.push_str(&cols.join(" "));
        out.push('\n');
    }
    out
}

/// The plain listing.
fn listing() -> String {
    let cols = [
        "name",
        "gcc",
        "qemu-static",
        "qemu-system",
        "console",
        "kernel",
    ];
    let mut out = format!(
        "{:<12} {:<28} {:<22} {:<12} {:<8} kernel\n",
        "arch", "gcc", "qemu-user", "qemu-system", "console"
    );
    for r in &ARCHES {
        let v: Vec<String> = cols.iter().filter_map(|c| r.field(c)).collect();
        let kernel = match (r.flavour(), r.built()) {
            (Some(f), _) => format!("debian linux-image-{f}"),
            (None, Some(b)) => format!("built ARCH={} (patched too)", b.make_arch),
            (None, None) => "-".to_string(),
        };
        out.push_str(&format!(
            "{:<12} {:<28} {:<22} {:<12} {:<8} {kernel}\n",
            v[0], v[1], v[2], v[3], v[4]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_arch_has_its_row_in_order() {
        for (i, (a, r)) in Arch::ALL.iter().zip(&ARCHES).enumerate() {
            assert_eq!(*a, r.arch);
            assert_eq!(*a as usize, i);
            assert_eq!(info(*a).arch, *a);
        }
    }

    #[test]
    fn names_are_unique() {
        for f in ["debian", "qemu-user", "qemu-static"] {
            let v: Vec<String> = ARCHES.iter().filter_map(|r| r.field(f)).collect();
            let set: HashSet<&String> = v.iter().collect();
            assert_eq!(set.len(), v.len(), "{f}: {v:?}");
        }
        // A toolchain serves two rows only through its multilib flags
        // (sparc64's gcc with -m32).
        let v: Vec<(&str, &[&str])> = ARCHES.iter().map(|r| (r.gcc, r.cflags)).collect();
        let set: HashSet<&(&str, &[&str])> = v.iter().collect();
        assert_eq!(set.len(), v.len(), "{v:?}");
    }

    #[test]
    fn derived_names_follow_their_parts() {
        for r in &ARCHES {
            assert_eq!(r.gcc, format!("{}-gcc", r.gnu));
            assert_eq!(r.qemu_static, format!("qemu-{}-static", r.qemu_user));
            assert!(
                r.packages.iter().any(|p| p.starts_with("gcc")),
                "{}",
                r.arch
            );
            // Rust triples name the same CPU as the GNU one (riscv64gc,
            // armv7 and i686 spell it their own way).
            if let Some(t) = r.rust.map(|r| r.triple) {
                let cpu = |s: &str| s.split('-').next().unwrap_or_default().to_string();
                let g = cpu(r.gnu);
                // A multilib row names the 64-bit toolchain (sparc64 -m32).
                let multilib = r.cflags.contains(&"-m32") && g.starts_with(&cpu(t));
                assert!(
                    cpu(t).starts_with(&g) || r.arch == Arch::Armv7 || multilib,
                    "{t} vs {}",
                    r.gnu
                );
            }
        }
    }

    #[test]
    fn kernels_have_machines_and_builds_have_compilers() {
        // Every architecture but 32-bit sparc (which runs on sparc64's
        // kernel).
        assert_eq!(KERNEL_ARCHS.len(), Arch::ALL.len() - 1);
        assert!(!KERNEL_ARCHS.contains(&Arch::Sparc));
        assert_eq!(
            PATCHED_ARCHS,
            [
                Arch::X86_64,
                Arch::I686,
                Arch::Riscv64,
                Arch::Powerpc,
                Arch::Mips,
                Arch::Mips64,
                Arch::Sparc64,
                Arch::Alpha,
                Arch::Hppa
            ]
        );
        for r in &ARCHES {
            assert_eq!(r.machine.is_some(), KERNEL_ARCHS.contains(&r.arch));
            assert_eq!(r.built().is_some(), PATCHED_ARCHS.contains(&r.arch));
            let Some(m) = r.machine else { continue };
            assert!(!m.console.is_empty() && !m.qemu.is_empty(), "{}", r.arch);
            assert!(m.args.contains(&"-m"), "{}: memory", r.arch);
            match (r.flavour(), r.built()) {
                (Some(f), None) => assert!(!f.is_empty()),
                (None, Some(b)) => {
                    assert!(b.image.ends_with(b.make_target) || b.make_target == "bzImage");
                    assert!(b.cross_package.starts_with("gcc"));
                }
                _ => panic!("{}: one kernel source", r.arch),
            }
        }
    }

    fn parse(args: &[&str]) -> Result<ArchesArgs, clap::Error> {
        crate::parse_args(args)
    }

    #[test]
    fn fields_print_one_line_per_arch_and_reject_unknown_names() {
        let a = parse(&["--field", "name,qemu-user,patched"]).unwrap();
        let out = columns(&a.field);
        assert_eq!(out.lines().count(), Arch::ALL.len());
        assert!(out.lines().any(|l| l == "powerpc ppc yes"));
        assert!(out.lines().any(|l| l == "aarch64 aarch64 no"));
        assert!(out.lines().any(|l| l == "sparc sparc32plus no"));
        assert!(out.lines().any(|l| l == "hppa hppa yes"));
        assert!(parse(&["--field", "name,nosuch"]).is_err());
        assert!(parse(&["--field", ""]).is_err());
        assert!(parse(&["--json", "--field", "name"]).is_err());
        assert!(parse(&["--nosuch"]).is_err());
        // Every name clap accepts has a column (none falls back to `-`
        // for every row).
        for f in FIELDS {
            assert!(ARCHES.iter().all(|r| r.field(f).is_some()), "{f}");
        }
    }

    /// The targets of Cross.toml's `[target.TRIPLE]` tables.
    fn cross_toml_targets() -> Vec<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cross.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let t: Vec<String> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("[target."))
            .filter_map(|l| l.strip_suffix(']'))
            .map(str::to_string)
            .collect();
        assert!(!t.is_empty(), "{path}");
        t
    }

    #[test]
    fn cross_toml_and_the_cross_job_follow_the_registry() {
        let a = parse(&["--github-matrix", "cross"]).unwrap();
        let cross = github_matrix(a.github_matrix.unwrap()).include;
        for e in &cross {
            let r = info(Arch::from_name(e.target).unwrap());
            assert!(r.rust.unwrap().prebuilt_std, "{}", e.target);
            assert_eq!(e.triple, rust_triple(r.arch));
        }
        let debian = github_matrix(GithubJob::Debian).include;
        assert_eq!(cross.len() + debian.len(), Arch::ALL.len());
        assert!(debian.iter().all(|e| e.triple.is_none()));
        assert!(debian.iter().any(|e| e.target == "i686"));
        // Cross.toml, for users' `cross`: every target rustup ships a std
        // for, but the host's own.
        let mut want: Vec<&str> = ARCHES
            .iter()
            .filter(|r| r.arch != Arch::X86_64)
            .filter_map(|r| r.rust.filter(|t| t.prebuilt_std))
            .map(|t| t.triple)
            .collect();
        let mut got = cross_toml_targets();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn json_names_every_row() {
        let rows: Vec<JsonRow> = ARCHES.iter().map(json_row).collect();
        let v: serde_json::Value = serde_json::to_value(&rows).unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(a.len(), Arch::ALL.len());
        assert_eq!(a[Arch::Powerpc as usize]["qemu_user"], "ppc");
        assert_eq!(a[Arch::Hppa as usize]["machine"]["make_arch"], "parisc");
        assert_eq!(
            a[Arch::I686 as usize]["machine"]["cross"],
            "x86_64-linux-gnu"
        );
        assert_eq!(a[Arch::Sparc as usize]["cflags"][0], "-m32");
    }
}
