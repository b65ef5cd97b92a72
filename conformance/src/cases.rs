//! The cases both guests perform, and the few numbers they use beyond the
//! `msgzc-abi` tables.

use msgzc_abi::{Arch, Family};

/// Sends per zerocopy case.
pub const SENDS: u32 = 16;

/// Payload bytes per zerocopy send.
pub const PAYLOAD: usize = 1000;

/// Capacity of the `SCM_ZC_NOTIFICATION` placeholders the guests build
/// (`ZC_NOTIFICATION_MAX`).
pub const PROBE_CAPACITY: usize = 16;

/// Every case, in matrix order. `abi_facts` is run by the host runner (a C
/// program built with the target's own toolchain); the others by the guest.
pub const CASES: [&str; 12] = [
    "abi_facts",
    "native_facts",
    "zc_tcp4",
    "zc_tcp6",
    "zc_udp4",
    "zc_udp6",
    "probe",
    "hybrid",
    "cmsg_roundtrip",
    "ctrunc",
    "icmp",
    "enobufs",
];

/// The cases the guest agent runs, in order.
pub fn guest_cases() -> impl Iterator<Item = &'static str> {
    CASES.iter().copied().filter(|c| *c != "abi_facts")
}

/// Whether a case needs `SO_ZEROCOPY`: only these may end as
/// "emulator-unsupported" (stock qemu-user refuses the option).
pub fn needs_zerocopy(case: &str) -> bool {
    matches!(
        case,
        "zc_tcp4" | "zc_tcp6" | "zc_udp4" | "zc_udp6" | "hybrid" | "enobufs"
    )
}

/// Numbers the cases use that `msgzc-abi` does not describe, per family;
/// `abi_facts` checks them against every toolchain's headers like the
/// tables. Sources: `asm-generic/errno.h` and `arch/{alpha,mips,parisc,
/// sparc}/include/uapi/asm/errno.h` (`ECONNREFUSED`); `linux/socket.h`
/// (`SCM_RIGHTS`); `linux/in.h` (`IP_TTL`, `IP_RECVTTL`).
pub fn extra_row(arch: Arch) -> Vec<(&'static str, i64)> {
    let econnrefused = match arch.target().family {
        Family::Generic => 111,
        Family::Alpha | Family::Sparc => 61,
        Family::Mips => 146,
        Family::Parisc => 239,
    };
    vec![
        ("ECONNREFUSED", econnrefused),
        ("SCM_RIGHTS", 1),
        ("IP_TTL", 2),
        ("IP_RECVTTL", 12),
    ]
}

/// One value of [`extra_row`].
pub fn extra(arch: Arch, key: &str) -> i64 {
    extra_row(arch)
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no extra number {key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_lists_are_consistent() {
        assert_eq!(guest_cases().count(), CASES.len() - 1);
        assert!(CASES.iter().filter(|c| needs_zerocopy(c)).count() == 6);
        assert_eq!(extra(Arch::Hppa, "ECONNREFUSED"), 239);
        assert_eq!(extra(Arch::Sparc64, "ECONNREFUSED"), 61);
    }
}
