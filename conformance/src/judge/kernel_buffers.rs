//! The control buffers of `conformance/facts/kernel-buffers.txt` against
//! the agent's decoder (`msgzc_conformance_agent::view`); here, not in the
//! agent, because it needs the system tier's list of kernels.

use crate::view::decode;
use msgzc_abi::Arch;

/// The control buffers real kernels handed the agents on the system
/// tier (`conformance/facts/kernel-buffers.txt`, harvested by
/// `fuzz/seeds.py --buffers`): each must decode on the host exactly as
/// the agent on that kernel decoded it, and every other target's
/// layout must decode it without a panic (a typed error is fine).
#[test]
fn real_kernel_buffers_decode_as_on_their_kernels() {
    use std::collections::BTreeSet;
    let text = include_str!("../../facts/kernel-buffers.txt");
    let (mut n, mut targets, mut after) = (0, BTreeSet::new(), 0);
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut words = line.splitn(3, ' ');
        let (Some(target), Some(_kernel), Some(raw)) = (words.next(), words.next(), words.next())
        else {
            panic!("malformed line {line:?}");
        };
        let arch = Arch::from_name(target).unwrap_or_else(|| panic!("{target}"));
        let field = |k: &str| {
            raw.split_whitespace()
                .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("no {k} in {line:?}"))
        };
        let bytes = msgzc_conformance_protocol::unhex(field("hex")).unwrap();
        let controllen: usize = field("controllen").parse().unwrap();
        let flags: u32 = field("flags").parse().unwrap();
        let want = format!(
            "msgs={} ranges={} items={} trunc={}",
            field("msgs"),
            field("ranges"),
            field("items"),
            field("trunc")
        );
        let v = decode(arch.target(), &bytes, controllen, flags);
        assert_eq!(v.error, None, "{line}");
        assert_eq!(v.fields(), want, "{line}");
        for other in Arch::ALL {
            let _ = decode(other.target(), &bytes, controllen, flags);
        }
        n += 1;
        targets.insert(arch);
        after += usize::from(field("dir") == "after" && field("msgs") != "none");
    }
    // Every target with a kernel, and sendmsg's copy-back from the
    // patched kernels.
    for k in crate::system::KERNEL_ARCHS {
        assert!(targets.contains(&k), "no buffer from a {k} kernel");
    }
    assert!(after > 0, "no SCM_ZC_NOTIFICATION copy-back");
    assert!(n >= 2 * targets.len(), "{n} buffers");
}
