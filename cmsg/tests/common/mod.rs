//! Helpers shared by the real-kernel tests.

use msgzc_cmsg::sys::{Released, ZcSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Waits and drains until nothing is outstanding, handing each released
/// token to `record`; fails after 10 s, or on any error-queue item that is
/// not a zerocopy completion.
pub fn drain_all<F: AsFd, T>(zc: &mut ZcSocket<F, T>, mut record: impl FnMut(Released<T>)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while zc.tracker().outstanding() > 0 {
        assert!(
            Instant::now() < deadline,
            "completions missing after 10 s: {:?}",
            zc.tracker().stats()
        );
        zc.wait(Some(Duration::from_millis(100))).unwrap();
        zc.drain(&mut record, |item| {
            panic!("unexpected error-queue item {item:?}")
        })
        .unwrap();
    }
}
