//! Applying a received error-queue control buffer to a tracker: the loop
//! every user of the error queue writes, in one place (the socket layer's
//! drain uses it too).

use crate::decode::{decode_errqueue, ErrqueueItem};
use crate::error::{DecodeError, WalkError};
use crate::tracker::{CompletionError, Slots, Tracker};
use crate::walk::Walker;
use core::fmt;
use msgzc_abi::{MsgFlags, Target};

/// A message [`apply_errqueue`] could not use; the messages after it in
/// the same buffer were still applied where the walk could go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApplyError {
    /// The buffer could not be walked (nothing after this offset was read).
    Walk(WalkError),
    /// A message did not match its layout.
    Decode(DecodeError),
    /// A completion the tracker refused: nothing was released for it.
    Completion(CompletionError),
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Walk(e) => e.fmt(f),
            Self::Decode(e) => e.fmt(f),
            Self::Completion(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for ApplyError {}

/// What [`apply_errqueue`] did with one control buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// Zerocopy completion ranges found.
    pub ranges: usize,
    /// Tokens released.
    pub released: usize,
    /// Other error-queue items passed on.
    pub other: usize,
    /// The first message that could not be used, if any.
    pub error: Option<ApplyError>,
}

/// Walks one control buffer received from the error queue (`controllen`
/// and `flags` as `recvmsg` set them) for `target`, applies every zerocopy
/// completion to `tracker` (each released token goes to `release(id,
/// token, copied)`) and passes every other item (ICMP errors, timestamps)
/// to `other`. A bad message does not stop the rest: the first one is
/// reported in [`Applied::error`].
///
/// For `no_std` users and anyone reading the error queue their own way
/// (io_uring, an event loop's `recvmsg`).
///
/// ```
/// use msgzc_cmsg::{apply_errqueue, CompletionTracker, MsgFlags};
/// use msgzc_abi::Arch;
///
/// let t = Arch::X86_64.target();
/// let mut tracker = CompletionTracker::<&str, 8>::new();
/// tracker.register("a").unwrap();
/// tracker.register("b").unwrap();
/// // IP_RECVERR, origin SO_EE_ORIGIN_ZEROCOPY, ids 0..=1, copied.
/// let mut msg = [0u8; 32];
/// msg[0] = 32; // cmsg_len
/// msg[12] = 11; // IP_RECVERR (level SOL_IP = 0)
/// msg[20] = 5; // ee_origin
/// msg[22] = 1; // ee_code: SO_EE_CODE_ZEROCOPY_COPIED
/// msg[24] = 0; // ee_info: lo
/// msg[28] = 1; // ee_data: hi
/// let mut freed = Vec::new();
/// let r = apply_errqueue(&mut tracker, t, &msg, 32, MsgFlags::empty(), |_, tok, _| freed.push(tok), |_| {});
/// assert_eq!((r.ranges, r.released, r.error), (1, 2, None));
/// assert_eq!(freed, ["a", "b"]);
/// ```
pub fn apply_errqueue<'a, T, S: Slots<T>>(
    tracker: &mut Tracker<T, S>,
    target: Target,
    control: &'a [u8],
    controllen: usize,
    flags: MsgFlags,
    mut release: impl FnMut(u32, T, bool),
    mut other: impl FnMut(ErrqueueItem<'a>),
) -> Applied {
    let mut r = Applied::default();
    for m in Walker::new(target, control, controllen, flags) {
        let bad = match m.map(|m| decode_errqueue(target, &m)) {
            Err(e) => Some(ApplyError::Walk(e)),
            Ok(Err(e)) => Some(ApplyError::Decode(e)),
            Ok(Ok(ErrqueueItem::Zerocopy(range))) => {
                r.ranges += 1;
                match tracker.complete(range, &mut release) {
                    Ok(n) => (r.released += n, None).1,
                    Err(e) => Some(ApplyError::Completion(e)),
                }
            }
            Ok(Ok(item)) => (r.other += 1, other(item), None).2,
        };
        if r.error.is_none() {
            r.error = bad;
        }
    }
    r
}
