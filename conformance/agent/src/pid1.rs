//! PID-1 duty on a bare kernel (the system tier): `/proc`, a quiet
//! console, the kernel named on a `NOTE` line, and power-off at the end,
//! which makes QEMU exit.

use msgzc_conformance_protocol::word;

/// PID 1 on a bare kernel: `/proc` for the sysctls `enobufs` writes, the
/// console kept for this agent's lines (only emergencies such as a panic
/// still print), and the kernel named.
pub fn setup() {
    // SAFETY: NUL-terminated strings and no mount data; a failure (already
    // mounted) is reported and harmless.
    let r = unsafe {
        libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            0,
            core::ptr::null(),
        )
    };
    if r != 0 {
        println!(
            "NOTE mount_proc={}",
            word(&std::io::Error::last_os_error().to_string())
        );
    }
    // SYSLOG_ACTION_CONSOLE_LEVEL (8): console messages of level < 1 only.
    // SAFETY: this action reads no buffer.
    unsafe { libc::klogctl(8, core::ptr::null_mut(), 1) };
    // SAFETY: utsname is plain old data, written by the call.
    let mut u: libc::utsname = unsafe { core::mem::zeroed() };
    // SAFETY: `u` is writable for the call.
    if unsafe { libc::uname(&mut u) } == 0 {
        let field = |f: &[libc::c_char]| {
            let b: Vec<u8> = f
                .iter()
                .take_while(|c| **c != 0)
                .map(|c| *c as u8)
                .collect();
            word(&String::from_utf8_lossy(&b))
        };
        println!(
            "NOTE kernel={} machine={}",
            field(&u.release),
            field(&u.machine)
        );
    }
}

/// PID 1's exit: returning would panic the kernel, so flush, sync and
/// power off (QEMU exits). Should that fail, the return that follows
/// still ends the run, through the panic.
pub fn power_off() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: plain system calls without pointers.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    println!(
        "NOTE reboot={}",
        word(&std::io::Error::last_os_error().to_string())
    );
}
