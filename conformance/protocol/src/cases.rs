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

/// Declares [`Case`] from one table: variant, name, whether it needs
/// `SO_ZEROCOPY`, whether it tests the proposal. Order is matrix order.
macro_rules! cases {
    ($($(#[$doc:meta])* $v:ident = $name:literal, zc: $zc:literal, proposal: $p:literal;)*) => {
        /// One conformance case. `AbiFacts` is run by the host runner (a C
        /// program built with the target's own toolchain); the others by
        /// the guests, `FirstEnable` first among those that set
        /// `SO_ZEROCOPY`: as PID 1 its enable is the first since boot.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Case {
            $($(#[$doc])* $v,)*
        }

        impl Case {
            /// Every case, in matrix order.
            pub const ALL: [Case; [$($name),*].len()] = [$(Case::$v),*];

            /// Every case's name, in matrix order.
            pub const NAMES: [&'static str; [$($name),*].len()] = [$($name),*];

            /// The name the guests print and take as an argument.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Case::$v => $name,)*
                }
            }

            /// Whether the case needs `SO_ZEROCOPY`: only these may end as
            /// "emulator-unsupported" (stock qemu-user refuses the option).
            /// Every `SCM_ZC_NOTIFICATION` case does: the proposal refuses a
            /// placeholder on a socket without it.
            pub const fn needs_zerocopy(self) -> bool {
                match self {
                    $(Case::$v => $zc,)*
                }
            }

            /// Whether the case tests the `SCM_ZC_NOTIFICATION` proposal
            /// itself: on a kernel without it these end as
            /// "kernel-unsupported" (`hybrid`, which checks the library's
            /// fallback, passes there).
            pub const fn proposal(self) -> bool {
                match self {
                    $(Case::$v => $p,)*
                }
            }
        }
    };
}

cases! {
    /// The toolchain's header numbers against the tables (host-run C).
    AbiFacts = "abi_facts", zc: false, proposal: false;
    /// The numbers as the guest sees them (tables and `libc`).
    NativeFacts = "native_facts", zc: false, proposal: false;
    /// Placeholders sent while another thread first enables `SO_ZEROCOPY`.
    FirstEnable = "first_enable", zc: true, proposal: true;
    /// `MSG_ZEROCOPY` over TCP/IPv4, completions from the error queue.
    ZcTcp4 = "zc_tcp4", zc: true, proposal: false;
    /// The same over TCP/IPv6.
    ZcTcp6 = "zc_tcp6", zc: true, proposal: false;
    /// The same over UDP/IPv4.
    ZcUdp4 = "zc_udp4", zc: true, proposal: false;
    /// The same over UDP/IPv6.
    ZcUdp6 = "zc_udp6", zc: true, proposal: false;
    /// One placeholder without `MSG_ZEROCOPY`: refused, ignored or written.
    Probe = "probe", zc: true, proposal: true;
    /// The library's inline-or-error-queue sender.
    Hybrid = "hybrid", zc: true, proposal: false;
    /// Completions read inline (TCP/IPv4).
    InlineTcp4 = "inline_tcp4", zc: true, proposal: true;
    /// Completions read inline (TCP/IPv6).
    InlineTcp6 = "inline_tcp6", zc: true, proposal: true;
    /// Completions read inline (UDP/IPv4).
    InlineUdp4 = "inline_udp4", zc: true, proposal: true;
    /// Completions read inline (UDP/IPv6).
    InlineUdp6 = "inline_udp6", zc: true, proposal: true;
    /// Malformed placeholders, each refused with `EINVAL`.
    BadPlaceholder = "bad_placeholder", zc: true, proposal: true;
    /// A send failing after its placeholder was processed.
    FailedSend = "failed_send", zc: true, proposal: true;
    /// A send interrupted and restarted.
    Restart = "restart", zc: true, proposal: true;
    /// A placeholder among other control messages, buffer reused.
    MixedCmsgs = "mixed_cmsgs", zc: true, proposal: true;
    /// `sendmmsg` with `MSG_EOR` and placeholders.
    SendmmsgEor = "sendmmsg_eor", zc: true, proposal: true;
    /// A placeholder in read-only memory.
    ReadonlyControl = "readonly_control", zc: true, proposal: true;
    /// Zerocopy `sendmmsg` to two receivers.
    SendmmsgZc = "sendmmsg_zc", zc: true, proposal: false;
    /// Zerocopy with `UDP_SEGMENT`.
    GsoZc = "gso_zc", zc: true, proposal: false;
    /// `SCM_RIGHTS` and `IP_TTL` through the library's builder and walker.
    CmsgRoundtrip = "cmsg_roundtrip", zc: false, proposal: false;
    /// An ICMP error read into a control buffer too small for it.
    Ctrunc = "ctrunc", zc: false, proposal: false;
    /// An ICMP port unreachable on the error queue.
    Icmp = "icmp", zc: false, proposal: false;
    /// `ENOBUFS` once the notification limit is reached.
    Enobufs = "enobufs", zc: true, proposal: false;
}

impl Case {
    /// The cases the guest agents run, in order (all but `abi_facts`).
    pub fn guest_cases() -> impl Iterator<Item = Case> {
        Case::ALL.into_iter().filter(|c| *c != Case::AbiFacts)
    }
}

impl core::fmt::Display for Case {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownCase(pub String);

impl core::fmt::Display for UnknownCase {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown case {:?} (cases:", self.0)?;
        for c in Case::ALL {
            write!(f, " {c}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for UnknownCase {}

impl core::str::FromStr for Case {
    type Err = UnknownCase;

    fn from_str(s: &str) -> Result<Case, UnknownCase> {
        Case::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownCase(s.to_string()))
    }
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
        assert_eq!(Case::guest_cases().count(), Case::ALL.len() - 1);
        let zc = Case::ALL.iter().filter(|c| c.needs_zerocopy()).count();
        assert_eq!(zc, 20);
        // Every proposal case needs SO_ZEROCOPY (stock qemu-user: emu-unsup).
        assert_eq!(Case::ALL.iter().filter(|c| c.proposal()).count(), 12);
        assert!(Case::ALL
            .iter()
            .all(|c| !c.proposal() || c.needs_zerocopy()));
        let at = |c| Case::ALL.iter().position(|x| *x == c).unwrap();
        assert_eq!(at(Case::InlineTcp4), at(Case::Hybrid) + 1);
        assert_eq!(at(Case::FailedSend), at(Case::BadPlaceholder) + 1);
        // first_enable is the first guest case to set SO_ZEROCOPY.
        let first_zc = Case::guest_cases().find(|c| c.needs_zerocopy());
        assert_eq!(first_zc, Some(Case::FirstEnable));
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

    #[test]
    fn names_parse_back_and_strangers_are_refused() {
        assert_eq!(Case::ALL.map(Case::name), Case::NAMES);
        for c in Case::ALL {
            assert_eq!(c.name().parse::<Case>(), Ok(c));
            assert_eq!(c.to_string(), c.name());
        }
        let names: std::collections::BTreeSet<_> = Case::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), Case::ALL.len());
        let e = "earlycon=pdc".parse::<Case>().unwrap_err();
        assert_eq!(e, UnknownCase("earlycon=pdc".into()));
        assert!(e.to_string().starts_with("unknown case \"earlycon=pdc\""));
        assert!("".parse::<Case>().is_err());
        assert!("PROBE".parse::<Case>().is_err());
    }
}
