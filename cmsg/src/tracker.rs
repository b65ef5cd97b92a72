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
    /// released.
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
        // A range longer than the window cannot be valid; this also bounds
        // the checks below by N.
        if range.count() > self.len as u64 {
            // Among any len + 1 distinct ids one lies outside the window.
            let id = range
                .ids()
                .take(self.len + 1)
                .find(|&id| self.slot(id).is_none())
                .unwrap_or(range.lo);
            return Err(CompletionError::NotOutstanding { range, id });
        }
        for id in range.ids() {
            match self.slot(id) {
                None => return Err(CompletionError::NotOutstanding { range, id }),
                Some(i) if self.slots[i].is_none() => {
                    return Err(CompletionError::AlreadyCompleted { range, id })
                }
                Some(_) => {}
            }
        }
        let mut n = 0;
        for id in range.ids() {
            if let Some(token) = self.slot(id).and_then(|i| self.slots[i].take()) {
                release(id, token, range.copied);
                n += 1;
            }
        }
        self.outstanding -= n;
        let count = n as u64;
        self.stats.ranges += 1;
        if range.copied {
            self.stats.copied += count;
            self.stats.copied_streak += count;
        } else {
            self.stats.zerocopy += count;
            self.stats.copied_streak = 0;
        }
        // Slide the window past released ids.
        while self.len > 0 && self.slots[self.head].is_none() {
            self.head = (self.head + 1) % N;
            self.base = self.base.wrapping_add(1);
            self.len -= 1;
        }
        Ok(n)
    }
}
