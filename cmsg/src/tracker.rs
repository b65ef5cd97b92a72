//! Mapping the kernel's `MSG_ZEROCOPY` send ids to the caller's tokens.

use crate::decode::ZcRange;
use core::fmt;

/// The tracker is full: the token comes back untouched.
///
/// ```
/// use msgzc_cmsg::{CompletionTracker, TrackerFull};
///
/// let mut t = CompletionTracker::<Vec<u8>, 1>::new();
/// t.register(vec![1]).unwrap();
/// let Err(TrackerFull(buf)) = t.register(vec![2; 3]) else { panic!() };
/// assert_eq!(buf, [2, 2, 2]); // yours again: nothing lost
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct TrackerFull<T>(pub T);

impl<T> fmt::Display for TrackerFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("completion tracker full: wait for completions before sending more")
    }
}

impl<T: fmt::Debug> core::error::Error for TrackerFull<T> {}

/// A completion range the tracker refused. Nothing was released.
///
/// ```
/// use msgzc_cmsg::{CompletionError, CompletionTracker, ZcRange};
///
/// let mut t = CompletionTracker::<u8, 8>::new();
/// t.register(0).unwrap();
/// t.register(1).unwrap();
/// let bogus = ZcRange { lo: 1, hi: 2, copied: false };
/// assert_eq!(
///     t.complete(bogus, |_, _, _| unreachable!()),
///     Err(CompletionError::NotOutstanding { range: bogus, id: 2 }),
/// );
/// assert_eq!(t.outstanding(), 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionError {
    /// The range covers an id that is not outstanding: never sent, or sent
    /// so long ago that it was already released and its slot reused.
    NotOutstanding {
        /// The range.
        range: ZcRange,
        /// The first offending id.
        id: u32,
    },
    /// The range covers an outstanding id that was already completed.
    AlreadyCompleted {
        /// The range.
        range: ZcRange,
        /// The first offending id.
        id: u32,
    },
}

impl fmt::Display for CompletionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompletionError::NotOutstanding { range, id } => write!(
                f,
                "completion {}..={} covers id {id}, which is not outstanding",
                range.lo, range.hi
            ),
            CompletionError::AlreadyCompleted { range, id } => write!(
                f,
                "completion {}..={} completes id {id} a second time",
                range.lo, range.hi
            ),
        }
    }
}

impl core::error::Error for CompletionError {}

/// Counters of applied completions, by id.
///
/// ```
/// use msgzc_cmsg::{CompletionStats, CompletionTracker, ZcRange};
///
/// let mut t = CompletionTracker::<(), 4>::new();
/// for _ in 0..3 {
///     t.register(()).unwrap();
/// }
/// t.complete(ZcRange { lo: 0, hi: 0, copied: false }, |_, _, _| {}).unwrap();
/// t.complete(ZcRange { lo: 1, hi: 2, copied: true }, |_, _, _| {}).unwrap();
/// assert_eq!(
///     t.stats(),
///     CompletionStats { sent: 3, zerocopy: 1, copied: 2, ranges: 2, copied_streak: 2 }
/// );
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompletionStats {
    /// Sends registered.
    pub sent: u64,
    /// Ids completed without copying.
    pub zerocopy: u64,
    /// Ids completed by a (deferred) copy.
    pub copied: u64,
    /// Ranges applied.
    pub ranges: u64,
    /// Ids completed copied since the last zero-copied one.
    pub copied_streak: u64,
}

/// What the completions so far suggest for this socket.
///
/// ```
/// use msgzc_cmsg::{Advice, CompletionTracker, ZcRange};
///
/// type Tracker = CompletionTracker<(), 128>;
/// let mut t = Tracker::new();
/// for _ in 0..Tracker::PREFER_COPY_AFTER {
///     t.register(()).unwrap();
/// }
/// assert_eq!(t.advice(), Advice::KeepZerocopy);
/// let all = ZcRange { lo: 0, hi: Tracker::PREFER_COPY_AFTER as u32 - 1, copied: true };
/// t.complete(all, |_, _, _| {}).unwrap();
/// assert_eq!(t.advice(), Advice::PreferCopy); // e.g. on loopback
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    /// Not enough evidence yet, or zerocopy works: keep `MSG_ZEROCOPY`.
    KeepZerocopy,
    /// The kernel keeps copying (loopback, packet taps, devices without
    /// scatter-gather): `MSG_ZEROCOPY` only adds page pinning and
    /// notifications, so the kernel documentation recommends sending
    /// without it.
    PreferCopy,
}

/// Tracks outstanding `MSG_ZEROCOPY` sends and hands each caller token back
/// exactly once, when the kernel completes its id.
///
/// The kernel numbers a socket's successful, non-empty `MSG_ZEROCOPY` sends
/// 0, 1, 2, ... (a `u32`, wrapping). [`register`](Self::register) assigns
/// the next id; [`complete`](Self::complete) applies a [`ZcRange`] in any
/// order, coalesced or wrapping. At most `N` sends may be outstanding; no
/// allocation.
///
/// ```
/// use msgzc_cmsg::{CompletionTracker, ZcRange};
///
/// let mut t = CompletionTracker::<&str, 4>::new();
/// assert_eq!(t.register("a"), Ok(0));
/// assert_eq!(t.register("b"), Ok(1));
/// let mut released = Vec::new();
/// t.complete(ZcRange { lo: 1, hi: 1, copied: true }, |id, tok, _| released.push((id, tok))).unwrap();
/// t.complete(ZcRange { lo: 0, hi: 0, copied: true }, |id, tok, _| released.push((id, tok))).unwrap();
/// assert_eq!(released, [(1, "b"), (0, "a")]);
/// // Completing 0 again is refused and releases nothing.
/// assert!(t.complete(ZcRange { lo: 0, hi: 0, copied: true }, |_, _, _| unreachable!()).is_err());
/// ```
#[derive(Debug)]
pub struct CompletionTracker<T, const N: usize> {
    /// Token of id `base + i` at `slots[(head + i) % N]`, `None` once
    /// released; never `None` at `head` while `len > 0`.
    slots: [Option<T>; N],
    head: usize,
    /// Oldest id not yet released (or `next` when none is outstanding).
    base: u32,
    /// Ids `base..next` are the window; `len <= N`.
    len: usize,
    /// Outstanding (unreleased) tokens in the window.
    outstanding: usize,
    stats: CompletionStats,
}

impl<T, const N: usize> Default for CompletionTracker<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> CompletionTracker<T, N> {
    /// Completions in a row that must all be copied before
    /// [`advice`](Self::advice) says [`Advice::PreferCopy`] (see [`Advice`]).
    pub const PREFER_COPY_AFTER: u64 = 64;

    /// A tracker for a fresh socket (first id 0).
    ///
    /// ```
    /// # use msgzc_cmsg::CompletionTracker;
    /// let t = CompletionTracker::<u32, 16>::new();
    /// assert_eq!((t.next_id(), t.outstanding(), t.is_full()), (0, 0, false));
    /// ```
    pub fn new() -> Self {
        Self::starting_at(0)
    }

    /// A tracker whose next send gets id `next` (for a socket that already
    /// sent with `MSG_ZEROCOPY`).
    ///
    /// ```
    /// # use msgzc_cmsg::{CompletionTracker, ZcRange};
    /// // Ids wrap like the kernel's counter.
    /// let mut t = CompletionTracker::<char, 4>::starting_at(u32::MAX);
    /// assert_eq!(t.register('x'), Ok(u32::MAX));
    /// assert_eq!(t.register('y'), Ok(0));
    /// let mut got = Vec::new();
    /// t.complete(ZcRange { lo: u32::MAX, hi: 0, copied: false }, |_, c, _| got.push(c)).unwrap();
    /// assert_eq!(got, ['x', 'y']);
    /// ```
    pub fn starting_at(next: u32) -> Self {
        CompletionTracker {
            slots: core::array::from_fn(|_| None),
            head: 0,
            base: next,
            len: 0,
            outstanding: 0,
            stats: CompletionStats::default(),
        }
    }

    /// The id the next registered send gets.
    ///
    /// ```
    /// # use msgzc_cmsg::CompletionTracker;
    /// let mut t = CompletionTracker::<(), 4>::starting_at(41);
    /// t.register(()).unwrap();
    /// assert_eq!(t.next_id(), 42);
    /// ```
    pub fn next_id(&self) -> u32 {
        // len <= N; ids wrap like the kernel's counter.
        self.base.wrapping_add(self.len as u32)
    }

    /// Sends registered and not yet completed.
    ///
    /// ```
    /// # use msgzc_cmsg::{CompletionTracker, ZcRange};
    /// let mut t = CompletionTracker::<(), 4>::new();
    /// t.register(()).unwrap();
    /// t.register(()).unwrap();
    /// t.complete(ZcRange { lo: 1, hi: 1, copied: false }, |_, _, _| {}).unwrap();
    /// assert_eq!(t.outstanding(), 1);
    /// ```
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Whether [`register`](Self::register) would refuse.
    ///
    /// The window runs from the oldest unreleased id, so a completed id
    /// behind an outstanding one still occupies its slot:
    ///
    /// ```
    /// # use msgzc_cmsg::{CompletionTracker, ZcRange};
    /// let mut t = CompletionTracker::<(), 2>::new();
    /// t.register(()).unwrap();
    /// t.register(()).unwrap();
    /// t.complete(ZcRange { lo: 1, hi: 1, copied: false }, |_, _, _| {}).unwrap();
    /// assert!(t.is_full()); // id 0 still holds the window
    /// t.complete(ZcRange { lo: 0, hi: 0, copied: false }, |_, _, _| {}).unwrap();
    /// assert!(!t.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Counters so far (see [`CompletionStats`]).
    pub fn stats(&self) -> CompletionStats {
        self.stats
    }

    /// Whether to keep using `MSG_ZEROCOPY`, from the completions so far
    /// (see [`Advice`]).
    pub fn advice(&self) -> Advice {
        if self.stats.copied_streak >= Self::PREFER_COPY_AFTER {
            Advice::PreferCopy
        } else {
            Advice::KeepZerocopy
        }
    }

    /// Records a send the kernel counted, i.e. a `MSG_ZEROCOPY` send that
    /// succeeded with a nonzero length, and keeps `token` until its id
    /// completes. Returns the id.
    ///
    /// The window of ids from the oldest unreleased one holds at most `N`;
    /// when it is full the token comes back in [`TrackerFull`].
    ///
    /// ```
    /// # use msgzc_cmsg::CompletionTracker;
    /// let mut t = CompletionTracker::<&[u8], 8>::new();
    /// let buf = [0u8; 4096];
    /// // After sendmsg(MSG_ZEROCOPY) returned > 0:
    /// assert_eq!(t.register(&buf), Ok(0));
    /// ```
    #[inline]
    pub fn register(&mut self, token: T) -> Result<u32, TrackerFull<T>> {
        if self.len == N {
            return Err(TrackerFull(token));
        }
        let id = self.next_id();
        let i = (self.head + self.len) % N;
        self.slots[i] = Some(token);
        self.len += 1;
        self.outstanding += 1;
        self.stats.sent += 1;
        Ok(id)
    }

    /// Slot index of an id inside the window.
    #[inline]
    fn slot(&self, id: u32) -> Option<usize> {
        let off = id.wrapping_sub(self.base) as usize;
        (off < self.len).then(|| (self.head + off) % N)
    }

    /// The error for a range that does not lie inside the window: the
    /// first id, in range order, that is not outstanding or already
    /// completed.
    #[inline]
    fn refuse(&self, range: ZcRange) -> CompletionError {
        // A range longer than the window cannot be valid; this also bounds
        // the search below by N.
        if range.count() > self.len as u64 {
            // Among any len + 1 distinct ids one lies outside the window.
            let id = range
                .ids()
                .take(self.len + 1)
                .find(|&id| self.slot(id).is_none())
                .unwrap_or(range.lo);
            return CompletionError::NotOutstanding { range, id };
        }
        for id in range.ids() {
            match self.slot(id) {
                None => return CompletionError::NotOutstanding { range, id },
                Some(i) if self.slots[i].is_none() => {
                    return CompletionError::AlreadyCompleted { range, id }
                }
                Some(_) => {}
            }
        }
        // Not reached: some id of a range outside the window is outside.
        CompletionError::NotOutstanding {
            range,
            id: range.lo,
        }
    }

    /// Applies one completion range: every id in it must be outstanding and
    /// not yet completed, or nothing happens and the error names the first
    /// bad id. Otherwise `release(id, token, copied)` is called once per id,
    /// in id order, and the number released is returned.
    ///
    /// ```
    /// # use msgzc_cmsg::{CompletionError, CompletionTracker, ZcRange};
    /// let mut t = CompletionTracker::<u16, 8>::new();
    /// for port in [80, 443, 8080] {
    ///     t.register(port).unwrap();
    /// }
    /// // The kernel coalesced all three into one notification.
    /// let mut freed = Vec::new();
    /// let n = t.complete(ZcRange { lo: 0, hi: 2, copied: false }, |id, p, _| freed.push((id, p)));
    /// assert_eq!(n, Ok(3));
    /// assert_eq!(freed, [(0, 80), (1, 443), (2, 8080)]);
    /// ```
    #[inline]
    pub fn complete(
        &mut self,
        range: ZcRange,
        mut release: impl FnMut(u32, T, bool),
    ) -> Result<usize, CompletionError> {
        // The range lies inside the window: ids lo.. at slots start..
        // (mod N), `count <= len <= N` of them.
        let off = range.lo.wrapping_sub(self.base) as usize;
        let inside = off < self.len && range.count() <= (self.len - off) as u64;
        if !inside {
            return Err(self.refuse(range));
        }
        let (start, count) = (self.head + off, range.count() as usize);
        if let Some(k) = (0..count).find(|&k| self.slots[(start + k) % N].is_none()) {
            return Err(CompletionError::AlreadyCompleted {
                range,
                id: range.lo.wrapping_add(k as u32),
            });
        }
        let mut n = 0;
        for k in 0..count {
            if let Some(token) = self.slots[(start + k) % N].take() {
                release(range.lo.wrapping_add(k as u32), token, range.copied);
                n += 1;
            }
        }
        self.outstanding -= n;
        let released = n as u64;
        self.stats.ranges += 1;
        if range.copied {
            self.stats.copied += released;
            self.stats.copied_streak += released;
        } else {
            self.stats.zerocopy += released;
            self.stats.copied_streak = 0;
        }
        // Slide the window past released ids. The oldest id is always
        // outstanding, so only a range that starts the window moves it: at
        // once past the range (completions mostly come in order), then past
        // ids completed earlier out of order.
        if off == 0 {
            self.head = (self.head + n) % N;
            self.base = self.base.wrapping_add(n as u32);
            self.len -= n;
            while self.len > 0 && matches!(self.slots.get(self.head), Some(None)) {
                self.head = (self.head + 1) % N;
                self.base = self.base.wrapping_add(1);
                self.len -= 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    //! `complete` against the straightforward one it replaced (every id
    //! looked up twice, the window slid one id at a time), kept here as the
    //! specification.

    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn reference<T, const N: usize>(
        t: &mut CompletionTracker<T, N>,
        range: ZcRange,
        mut release: impl FnMut(u32, T, bool),
    ) -> Result<usize, CompletionError> {
        if range.count() > t.len as u64 {
            let id = range
                .ids()
                .take(t.len + 1)
                .find(|&id| t.slot(id).is_none())
                .unwrap_or(range.lo);
            return Err(CompletionError::NotOutstanding { range, id });
        }
        for id in range.ids() {
            match t.slot(id) {
                None => return Err(CompletionError::NotOutstanding { range, id }),
                Some(i) if t.slots[i].is_none() => {
                    return Err(CompletionError::AlreadyCompleted { range, id })
                }
                Some(_) => {}
            }
        }
        let mut n = 0;
        for id in range.ids() {
            if let Some(token) = t.slot(id).and_then(|i| t.slots[i].take()) {
                release(id, token, range.copied);
                n += 1;
            }
        }
        t.outstanding -= n;
        let count = n as u64;
        t.stats.ranges += 1;
        if range.copied {
            t.stats.copied += count;
            t.stats.copied_streak += count;
        } else {
            t.stats.zerocopy += count;
            t.stats.copied_streak = 0;
        }
        while t.len > 0 && t.slots[t.head].is_none() {
            t.head = (t.head + 1) % N;
            t.base = t.base.wrapping_add(1);
            t.len -= 1;
        }
        Ok(n)
    }

    type State<const N: usize> = ([Option<u64>; N], usize, u32, usize, usize, CompletionStats);

    fn state<const N: usize>(t: &CompletionTracker<u64, N>) -> State<N> {
        (t.slots, t.head, t.base, t.len, t.outstanding, t.stats)
    }

    /// Runs `ops` on two trackers, one completing through `complete`, the
    /// other through the reference; results, releases and every field
    /// must agree after each step.
    fn same_as_reference<const N: usize>(start: u32, ops: &[(u8, u8, u8, bool)]) {
        let mut a = CompletionTracker::<u64, N>::starting_at(start);
        let mut b = CompletionTracker::<u64, N>::starting_at(start);
        for (k, &(op, at, len, copied)) in ops.iter().enumerate() {
            if op == 0 {
                assert_eq!(a.register(k as u64), b.register(k as u64));
            } else {
                // Around the window, now and then a huge or wrapping range.
                let lo = a
                    .base
                    .wrapping_add(u32::from(at) % (N as u32 + 6))
                    .wrapping_sub(3);
                let hi = match op {
                    1 | 2 => lo.wrapping_add(u32::from(len) % (N as u32 + 3)),
                    _ => lo.wrapping_add(u32::from(len) << 24),
                };
                let range = ZcRange { lo, hi, copied };
                let (mut got, mut want) = (Vec::new(), Vec::new());
                let r = a.complete(range, |id, tok, c| got.push((id, tok, c)));
                let s = reference(&mut b, range, |id, tok, c| want.push((id, tok, c)));
                assert_eq!((r, got), (s, want), "{range:?}");
            }
            assert_eq!(state(&a), state(&b));
            // What lets `complete` slide only from the head.
            assert!(a.len == 0 || a.slots[a.head].is_some());
        }
    }

    #[test]
    fn in_order_and_reversed_completions_match_the_reference() {
        let mut ops = Vec::new();
        for _ in 0..3 {
            ops.extend((0..8).map(|_| (0, 0, 0, false)));
            ops.extend((0..8).map(|i| (1, 3 + i, 0, true)));
            ops.extend((0..8).map(|_| (0, 0, 0, false)));
            ops.extend((0..8).rev().map(|i| (1, 3 + i, 0, false)));
        }
        same_as_reference::<8>(u32::MAX - 20, &ops);
        same_as_reference::<5>(7, &ops);
    }

    proptest! {
        #![proptest_config(crate::tests::proptest_config())]
        #[test]
        fn arbitrary_completions_match_the_reference(
            start in prop_oneof![any::<u32>(), Just(u32::MAX - 4)],
            ops in proptest::collection::vec((0u8..4, any::<u8>(), any::<u8>(), any::<bool>()), 0..120),
        ) {
            same_as_reference::<8>(start, &ops);
            same_as_reference::<5>(start, &ops);
            same_as_reference::<1>(start, &ops);
        }
    }
}
