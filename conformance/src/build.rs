//! Building what the runner and the system tier run: the cross
//! toolchains of every target, the C programs, the Rust agent (or the host,
//! for `system-bench`) cross-built with Debian's Rust, and the cache they go
//! in. `runner` and `system` both use this; neither imports the other's
//! build code.

use crate::arches;
use msgzc_abi::Arch;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// Cross tools of one target.
pub(crate) struct Toolchain {
    /// The cross gcc (C guests, `abi_facts.c`, and the Rust linker).
    pub(crate) gcc: &'static str,
    /// The qemu-user binary.
    pub(crate) qemu: &'static str,
    /// Extra gcc flags.
    pub(crate) cflags: &'static [&'static str],
}

/// The cross tools of `arch`, from the registry.
pub(crate) fn toolchain(arch: Arch) -> Toolchain {
    let r = arches::info(arch);
    Toolchain {
        gcc: r.gcc,
        qemu: r.qemu_static,
        cflags: r.cflags,
    }
}

/// The `rustc` flags of every Rust build for `arch`: a static binary
/// (qemu-user and the system tier's initramfs have no sysroot), and the
/// registry's extra flags.
pub(crate) fn rustflags(arch: Arch) -> String {
    let mut flags = vec!["-C", "target-feature=+crt-static"];
    flags.extend(arches::info(arch).rustflags);
    flags.join(" ")
}

/// Debian's Rust (`rustc-web`, `cargo-web`, `rust-web-src`): its cargo,
pub(crate) const DEBIAN_CARGO: &str = "/usr/bin/cargo";
/// its rustc,
pub(crate) const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
/// and the std sources `-Zbuild-std` compiles.
pub(crate) const DEBIAN_RUST_SRC: &str = "/usr/lib/rustlib/src/rust/library";

/// `$PATH` lookup (or the path itself, if it has a slash).
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// The C compiler for `arch`: its cross gcc, or for the host also `gcc`/`cc`.
pub(crate) fn c_compiler(arch: Arch, host: Arch) -> Option<PathBuf> {
    let tc = toolchain(arch);
    which(tc.gcc).or_else(|| {
        if arch == host {
            which("gcc").or_else(|| which("cc"))
        } else {
            None
        }
    })
}

/// `~/.cache/msgzc/conformance` (or `$MSGZC_CACHE/conformance`): every
/// build the runner and the system tier make.
pub(crate) fn cache_dir() -> PathBuf {
    std::env::var_os("MSGZC_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/msgzc")))
        .unwrap_or_else(|| PathBuf::from("/tmp/msgzc-cache"))
        .join("conformance")
}

/// The workspace root (`ci/`, `conformance/guest-c/` live there).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("conformance/ sits in the workspace")
        .to_path_buf()
}

/// The first line `cmd args` prints, trimmed.
pub(crate) fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|s| s.trim().to_string())
}

/// `rustc 1.96.0 (ac68faa20 2026-05-25)` → `rustc-1.96.0-ac68faa20`.
pub(crate) fn rustc_key() -> String {
    let v = first_line(DEBIAN_RUSTC, &["-V"]).unwrap_or_default();
    let parts: Vec<&str> = v
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|s| !s.is_empty())
        .collect();
    match parts.as_slice() {
        [_, ver, hash, ..] => format!("rustc-{ver}-{hash}"),
        [_, ver] => format!("rustc-{ver}"),
        _ => "rustc-unknown".into(),
    }
}

/// Builds a C program for `arch` into `out`.
pub(crate) fn build_c(arch: Arch, host: Arch, src: &Path, out: &Path) -> Result<(), String> {
    let cc = c_compiler(arch, host).ok_or("no C compiler")?;
    if let Some(d) = out.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    // Built beside and renamed into place: another run sharing the cache
    // may be executing the old binary, and qemu-user maps it rather than
    // exec'ing it, so rewriting it in place would crash that guest.
    let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
    let res = Command::new(&cc)
        .args(["-O1", "-Wall", "-Werror", "-static"])
        .args(toolchain(arch).cflags)
        .arg(format!("-DTARGET_NAME=\"{}\"", arch.name()))
        .arg("-o")
        .arg(&tmp)
        .arg(src)
        .output()
        .map_err(|e| format!("{}: {e}", cc.display()))?;
    if res.status.success() {
        std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))
    } else {
        let _ = std::fs::remove_file(&tmp);
        Err(format!(
            "{} failed: {}",
            cc.display(),
            String::from_utf8_lossy(&res.stderr)
                .lines()
                .find(|l| l.contains("error"))
                .unwrap_or("")
        ))
    }
}

/// Sets the modification time of every file under `dir` to now.
pub(crate) fn touch_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            touch_tree(&p);
        } else if let Ok(f) = std::fs::File::options().append(true).open(&p) {
            let _ = f.set_modified(SystemTime::now());
        }
    }
}

/// What [`build_rust`] cross-builds, package and binary:
/// `msgzc-conformance-agent`, the guest and the bench's agent side (the
/// runner's rows, the system tier's boots and benches).
const AGENT: &str = "msgzc-conformance-agent";

/// The workspace's sources a cross-build of the agent reads.
const SOURCES: [&str; 4] = [
    "abi/src",
    "cmsg/src",
    "conformance/protocol/src",
    "conformance/agent/src",
];

/// `CARGO_TARGET_<T>_...`'s `<T>` for a triple.
pub(crate) fn target_env(triple: &str) -> String {
    triple.to_uppercase().replace('-', "_")
}

/// Sets `cmd` (Debian's cargo, or a wrapper that runs it) up for a
/// `-Zbuild-std` build for `arch` into `target_dir`: Debian's rustc, the
/// target's linker and flags, in the workspace, and none of the caller's
/// overrides (a stray `RUSTFLAGS` would rebuild std, a wrapper or
/// toolchain override would pick another compiler).
pub(crate) fn cross_env(cmd: &mut Command, arch: Arch, target_dir: &Path) {
    let up = target_env(arches::rust_triple(arch).unwrap_or_default());
    cmd.current_dir(workspace_root())
        .env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTC", DEBIAN_RUSTC)
        .env("CARGO_TARGET_DIR", target_dir)
        .env(format!("CARGO_TARGET_{up}_LINKER"), toolchain(arch).gcc)
        .env(format!("CARGO_TARGET_{up}_RUSTFLAGS"), rustflags(arch));
    for v in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
    ] {
        cmd.env_remove(v);
    }
}

/// Cross-builds the agent ([`AGENT`]) for `arch` with Debian's Rust and
/// `-Zbuild-std`; returns the binary.
pub(crate) fn build_rust(arch: Arch, cache: &Path) -> Result<PathBuf, String> {
    let triple = arches::rust_triple(arch).ok_or("no Rust target")?;
    let target_dir = cache.join(rustc_key());
    let logs = cache.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let log = logs.join(format!("build-{triple}.log"));
    let mut cmd = Command::new(DEBIAN_CARGO);
    cmd.args(["build", "--locked", "--release", "-p", AGENT])
        .args(["--bin", AGENT, "--target", triple])
        .arg("-Zbuild-std=std,panic_abort");
    cross_env(&mut cmd, arch, &target_dir);
    // Cargo fingerprints workspace crates by workspace-relative paths and
    // file times, so two checkouts sharing this target dir can each take
    // the other's build as fresh (a stale agent). When the checkout
    // changes, touch this one's sources: its crates rebuild, std stays.
    let marker = target_dir.join("last-checkout");
    let here = workspace_root().to_string_lossy().into_owned();
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(here.as_str()) {
        for d in SOURCES {
            touch_tree(&workspace_root().join(d));
        }
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{DEBIAN_CARGO}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::write(
        &log,
        format!("{}{stderr}", String::from_utf8_lossy(&out.stdout)),
    );
    if out.status.success() {
        let _ = std::fs::write(&marker, &here);
        Ok(target_dir.join(triple).join("release").join(AGENT))
    } else {
        let why = stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("cargo failed");
        Err(format!("build failed: {why} (log: {})", log.display()))
    }
}

/// Runs `ci/qemu --targets ...` (instant when cached; otherwise it builds,
/// showing its progress on stderr) and returns the bin dir it prints.
pub(crate) fn patched_qemu(archs: &[Arch]) -> Result<PathBuf, String> {
    let mut names: Vec<&str> = archs.iter().map(|&a| arches::info(a).qemu_user).collect();
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

/// The patched qemu-user binary for `arch` in `ci/qemu`'s bin dir.
pub(crate) fn patched_qemu_binary(dir: &Path, arch: Arch) -> PathBuf {
    dir.join(format!("qemu-{}", arches::info(arch).qemu_user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_builds_are_static_and_take_the_registry_s_extra_flags() {
        assert_eq!(rustflags(Arch::Mips64), "-C target-feature=+crt-static");
        assert_eq!(
            rustflags(Arch::Sparc),
            "-C target-feature=+crt-static -C link-arg=-Wl,--no-warn-mismatch"
        );
    }
}
