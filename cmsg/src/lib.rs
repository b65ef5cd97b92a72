//! Safe building and walking of Linux control messages for `MSG_ZEROCOPY`.
//!
//! This crate sits between `sendmsg`/`recvmsg` and a buffer pool:
//!
//! - [`ControlBuilder`] writes control messages (raw, `SO_TIMESTAMPING`, the
//!   `SCM_ZC_NOTIFICATION` placeholder of [`proposal v8`](msgzc_abi::proposal::v8))
//!   into a caller's buffer for any [`Target`] layout, and only a finished
//!   [`Control`] can be handed on.
//! - [`Walker`] walks a received control buffer strictly: every malformed
//!   header is a [`WalkError`] with its offset; it never reads out of bounds
//!   and always terminates.
//! - [`decode_errqueue`] and [`Control::zc_outcome`] turn messages into one
//!   completion type, [`ZcRange`]; other error-queue messages become typed
//!   [`ErrqueueItem`]s rather than being dropped; an ICMP error's sender
//!   decodes to an [`Offender`] address.
//! - [`CompletionTracker`] maps the kernel's `u32` send ids to the caller's
//!   tokens and hands each token back exactly once.
//! - [`policy::SendPolicy`] decides per send between `MSG_ZEROCOPY` and a
//!   copy: a size threshold, a fallback when completions come back copied,
//!   and probes that turn zerocopy back on; each decision names its reason.
//!
//! With the `std` feature (default), [`sys`] adds the Linux socket calls. It
//! exists only when building for a Linux kernel (`target_os = "linux"` or
//! `"android"`; Android is type-checked in CI, not run); on every other
//! target (macOS, Windows, the BSDs, bare metal) the crate is
//! the core above whatever its features, so a dependency graph that turns
//! `std` on still builds there.
//!
//! ```
//! use msgzc_cmsg::{ControlBuf, ControlBuilder, Walker, MsgFlags, Target};
//! use msgzc_abi::Arch;
//!
//! // Build for big-endian 32-bit mips on any host, then walk it back.
//! let t = Arch::Mips.target();
//! let mut buf = ControlBuf::<64>::new();
//! let mut b = ControlBuilder::new(t, buf.as_mut_bytes()).unwrap();
//! b.push(0xffff, 37, &2u32.to_be_bytes()).unwrap();
//! let control = b.finish();
//! let msgs: Vec<_> = Walker::new(t, control.as_bytes(), control.len(), MsgFlags::empty())
//!     .collect::<Result<_, _>>()
//!     .unwrap();
//! assert_eq!((msgs[0].level, msgs[0].ty, msgs[0].data), (0xffff, 37, &[0, 0, 0, 2][..]));
//! ```
#![no_std]
#![cfg_attr(not(feature = "std"), forbid(unsafe_code))]
#![cfg_attr(feature = "std", deny(unsafe_code))]
#![deny(missing_docs)]
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

mod apply;
mod build;
mod decode;
mod error;
mod layout;
mod offender;
pub mod policy;
mod tracker;
mod walk;

#[cfg(all(feature = "std", any(target_os = "linux", target_os = "android")))]
#[allow(unsafe_code)]
pub mod sys;

pub use apply::{apply_errqueue, Applied, ApplyError};
pub use build::{zc_placeholder_space, Control, ControlBuf, ControlBuilder, ZcSlot, ZC_POISON};
pub use decode::{
    decode_errqueue, ErrqueueItem, ExtendedErr, Timestamps, ZcCompletions, ZcOutcome, ZcRange,
};
pub use error::{BuildError, DecodeError, WalkError, WalkErrorKind, ZcError};
/// The `msgzc-abi` crate this one is built on (numbers, layouts, [`Target`]),
/// re-exported so users need no matching dependency of their own.
///
/// ```
/// use msgzc_cmsg::abi::{proposal::v8, Arch};
/// assert_eq!(v8::scm_zc_notification(Arch::Sparc64.target().family), 0x57);
/// ```
pub use msgzc_abi as abi;
pub use msgzc_abi::{MsgFlags, Target, TimestampingFlags};
pub use offender::Offender;
#[cfg(feature = "alloc")]
pub use tracker::BoxedTracker;
pub use tracker::{
    Advice, CompletionError, CompletionStats, CompletionTracker, Refusal, Refused, Slots, Tracker,
};
pub use walk::{Cmsg, Walker};

#[cfg(test)]
mod tests;
