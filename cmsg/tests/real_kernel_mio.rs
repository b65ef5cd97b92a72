//! The mio example on the running kernel's loopback (needs `MSG_ZEROCOPY`,
//! Linux 4.14 or later): every byte checked, every buffer back, and a
//! loop that wakes only for events.

#![cfg(all(feature = "std", target_os = "linux"))]

#[path = "../examples/mio_loop.rs"]
mod example;

#[test]
fn mio_loop_streams_16_mib_with_every_byte_checked() {
    let r = example::run(16 << 20).unwrap();
    assert_eq!((r.bytes, r.sends), (16 << 20, 256));
    // A loop that spun on a stale event would wake thousands of times.
    assert!(r.wakeups < 4 * r.sends, "{r:?}");
}
