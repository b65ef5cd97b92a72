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

/// The malformed placeholders of `bad_placeholder`, each refused with
/// `EINVAL` by a kernel with the proposal: the call's name (after
/// `sendmsg_`), the capacity written into `zc_info`, and the number of
/// poisoned elements that follow (`ZC_NOTIFICATION_MAX + 1` is 17).
pub const BAD_PLACEHOLDERS: [(&str, u32, usize); 3] =
    [("cap0", 0, 0), ("cap17", 17, 17), ("len_mismatch", 2, 3)];

/// Zerocopy sends whose completions `failed_send`, `restart` and
/// `readonly_control` queue before the call under test, which must leave
/// every one of them accounted for.
pub const QUEUED_SENDS: u32 = 3;

/// The `SOL_SOCKET` control-message type `failed_send` puts after its
/// placeholder: unknown to every kernel, so the send fails with `EINVAL`
/// once the placeholder has been processed. Its data is 4 zero bytes.
pub const BAD_CMSG_TYPE: i32 = 0x7fff;

/// Sends of `mixed_cmsgs`, all through one reused buffer and `msghdr`.
pub const MIXED_SENDS: u32 = 4;

/// The `IP_TTL` `mixed_cmsgs` sends with (not the default 64), which the
/// receiver must see on every datagram.
pub const MIXED_TTL: i32 = 7;

/// Messages per `sendmmsg` call of `sendmmsg_eor`, and calls.
pub const MMSG_ENTRIES: usize = 3;
/// See [`MMSG_ENTRIES`].
pub const MMSG_ROUNDS: usize = 2;

/// Datagrams per `sendmmsg` of `sendmmsg_zc`; the case makes two such
/// calls (the second with a placeholder in every entry), so its ids are
/// `0..2 * ZC_BATCH`. Datagram `i` (seed `i`) goes to receiver `i % 2`.
pub const ZC_BATCH: usize = 4;

/// Payload bytes of `sendmmsg_zc`'s datagram `i`: all different, so a
/// datagram delivered to the wrong entry's receiver or cut shows.
pub fn batch_len(i: usize) -> usize {
    100 + 20 * i
}

/// Byte `j` of the payload with seed `seed` (`sendmmsg_zc`'s datagram
/// `seed`, `gso_zc`'s [`GSO_SEED`]): a pattern both guests compute.
pub fn pattern_byte(seed: usize, j: usize) -> u8 {
    (seed * 67 + j * 13 + 1) as u8
}

/// The payload with seed `seed`, `len` bytes of [`pattern_byte`].
pub fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| pattern_byte(seed, j)).collect()
}

/// The `UDP_SEGMENT` size of `gso_zc`'s one send of [`PAYLOAD`] bytes:
/// segments of 300, 300, 300 and 100 bytes. Byte-swapped (0x2C01) it is
/// larger than the payload, so a `u16` that reaches the kernel in the
/// wrong byte order gives one datagram, which the judge recognises.
pub const GSO_SEGMENT: u16 = 300;

/// The payload seed of `gso_zc`.
pub const GSO_SEED: usize = 9;

/// `MSG_EOR`, the same on every Linux architecture
/// (`include/linux/socket.h`).
pub const MSG_EOR: u32 = 0x80;

/// Threads of `first_enable` that send with placeholders while the main
/// thread turns `SO_ZEROCOPY` on.
pub const FIRST_THREADS: u32 = 2;

/// Sends each `first_enable` sender makes once its placeholders are
/// accepted; all of them together are at most [`SENDS`] ids.
pub const FIRST_SENDS: u32 = SENDS / FIRST_THREADS;

/// Attempts every `first_enable` sender makes (each refused while the
/// socket has no `SO_ZEROCOPY`) before the main thread enables it, so that
/// the enable lands while they are sending.
pub const FIRST_SPIN: u32 = 4;

/// Refusals after the enable at which a `first_enable` sender gives up (a
/// kernel without the proposal refuses every placeholder).
pub const FIRST_REFUSALS: u32 = 8;

/// Every case, in matrix order. `abi_facts` is run by the host runner (a C
/// program built with the target's own toolchain); the others by the guest,
/// `first_enable` first among those that set `SO_ZEROCOPY`: as PID 1 its
/// enable is the first since boot.
pub const CASES: [&str; 25] = [
    "abi_facts",
    "native_facts",
    "first_enable",
    "zc_tcp4",
    "zc_tcp6",
    "zc_udp4",
    "zc_udp6",
    "probe",
    "hybrid",
    "inline_tcp4",
    "inline_tcp6",
    "inline_udp4",
    "inline_udp6",
    "bad_placeholder",
    "failed_send",
    "restart",
    "mixed_cmsgs",
    "sendmmsg_eor",
    "readonly_control",
    "sendmmsg_zc",
    "gso_zc",
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
/// "emulator-unsupported" (stock qemu-user refuses the option). Every
/// `SCM_ZC_NOTIFICATION` case does: the proposal refuses a placeholder on a
/// socket without it.
pub fn needs_zerocopy(case: &str) -> bool {
    matches!(
        case,
        "first_enable"
            | "zc_tcp4"
            | "zc_tcp6"
            | "zc_udp4"
            | "zc_udp6"
            | "probe"
            | "hybrid"
            | "inline_tcp4"
            | "inline_tcp6"
            | "inline_udp4"
            | "inline_udp6"
            | "bad_placeholder"
            | "failed_send"
            | "restart"
            | "mixed_cmsgs"
            | "sendmmsg_eor"
            | "readonly_control"
            | "sendmmsg_zc"
            | "gso_zc"
            | "enobufs"
    )
}

/// Whether a case tests the `SCM_ZC_NOTIFICATION` proposal itself: on a
/// kernel without it these end as "kernel-unsupported" (`hybrid`, which
/// checks the library's fallback, passes there).
pub fn proposal_case(case: &str) -> bool {
    matches!(
        case,
        "first_enable"
            | "probe"
            | "inline_tcp4"
            | "inline_tcp6"
            | "inline_udp4"
            | "inline_udp6"
            | "bad_placeholder"
            | "failed_send"
            | "restart"
            | "mixed_cmsgs"
            | "sendmmsg_eor"
            | "readonly_control"
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
        assert_eq!(CASES.iter().filter(|c| needs_zerocopy(c)).count(), 20);
        // Every proposal case needs SO_ZEROCOPY (stock qemu-user: emu-unsup).
        assert_eq!(CASES.iter().filter(|c| proposal_case(c)).count(), 12);
        assert!(CASES.iter().all(|c| !proposal_case(c) || needs_zerocopy(c)));
        let at = |name| CASES.iter().position(|c| *c == name).unwrap();
        assert_eq!(at("inline_tcp4"), at("hybrid") + 1);
        assert_eq!(at("failed_send"), at("bad_placeholder") + 1);
        // first_enable is the first guest case to set SO_ZEROCOPY.
        let first_zc = guest_cases().find(|c| needs_zerocopy(c));
        assert_eq!(first_zc, Some("first_enable"));
        const { assert!(FIRST_THREADS * FIRST_SENDS <= SENDS && FIRST_SENDS > 0) };
        const { assert!(QUEUED_SENDS < SENDS && MIXED_SENDS <= SENDS) };
        const { assert!((MMSG_ENTRIES * MMSG_ROUNDS) as u32 <= SENDS) };
        const { assert!(2 * ZC_BATCH <= SENDS as usize) };
        // gso_zc: several segments, the last one shorter.
        assert_eq!(PAYLOAD.div_ceil(GSO_SEGMENT.into()), 4);
        assert!(usize::from(GSO_SEGMENT.swap_bytes()) > PAYLOAD);
        let max = msgzc_abi::proposal::v8::ZC_NOTIFICATION_MAX;
        assert_eq!(BAD_PLACEHOLDERS[1], ("cap17", max + 1, max as usize + 1));
        assert_eq!(extra(Arch::Hppa, "ECONNREFUSED"), 239);
        assert_eq!(extra(Arch::Sparc64, "ECONNREFUSED"), 61);
    }
}
