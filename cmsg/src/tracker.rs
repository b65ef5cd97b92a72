//! Mapping the kernel's `MSG_ZEROCOPY` send ids to the caller's tokens.

use crate::decode::ZcRange;
use core::fmt;

/// Why [`register`](Tracker::register) refused a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The window of ids is full: wait for completions (the oldest
    /// outstanding id holds the window).
    Full,
    /// The last send is in doubt (see
    /// [`register_in_doubt`](Tracker::register_in_doubt)): until it is
    /// settled the next id is unknown, so nothing may be registered.
    InDoubt {
        /// The id the doubtful send holds if the kernel kept it.
        id: u32,
    },
}

/// A token the tracker refused: it comes back untouched, with the reason.
///
/// ```
/// use msgzc_cmsg::{CompletionTracker, Refusal, Refused};
///
/// let mut t = CompletionTracker::<Vec<u8>, 1>::new();
/// t.register(vec![1]).unwrap();
/// let Err(Refused { token, reason }) = t.register(vec![2; 3]) else { panic!() };
/// assert_eq!((token, reason), (vec![2, 2, 2], Refusal::Full)); // yours again
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct Refused<T> {
    /// The token, never stored.
    pub token: T,
    /// Why.
    pub reason: Refusal,
}

impl<T> fmt::Display for Refused<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            Refusal::Full => {
                f.write_str("completion tracker full: wait for completions before sending more")
            }
            Refusal::InDoubt { id } => write!(
                f,
                "send id {id} is in doubt: settle it before registering more sends"
            ),
        }
    }
}

impl<T: fmt::Debug> core::error::Error for Refused<T> {}

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
/// It never turns back: once the streak is long enough it stays
/// [`PreferCopy`](Advice::PreferCopy) until a completion is not copied,
/// and a socket that stopped sending with `MSG_ZEROCOPY` sees no more
/// completions. [`SendPolicy`](crate::policy::SendPolicy) probes again
/// (and adds a size threshold).
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

/// Storage for a [`Tracker`]'s window: one slot per id.
///
/// Implemented for arrays (`[Option<T>; N]`, no allocation: see
/// [`CompletionTracker`]) and, with the `alloc` feature, for boxed slices
/// sized at run time (see [`BoxedTracker`]). Sealed.
pub trait Slots<T>: AsRef<[Option<T>]> + AsMut<[Option<T>]> + sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
    impl<T, const N: usize> Sealed for [Option<T>; N] {}
    #[cfg(feature = "alloc")]
    impl<T> Sealed for alloc::boxed::Box<[Option<T>]> {}
}

impl<T, const N: usize> Slots<T> for [Option<T>; N] {}
#[cfg(feature = "alloc")]
impl<T> Slots<T> for alloc::boxed::Box<[Option<T>]> {}

/// A tracker whose window of `N` ids lives inline: no allocation, usable
/// without `alloc`. `N` is the number of ids that may be outstanding at
/// once, counted from the oldest unreleased one; it should be a power of
/// two. For large windows use [`BoxedTracker`] (an array of a million
/// slots does not fit on a stack, even on its way into a `Box`).
pub type CompletionTracker<T, const N: usize> = Tracker<T, [Option<T>; N]>;

/// A tracker whose window is sized at run time, on the heap (`alloc`
/// feature).
///
/// ```
/// use msgzc_cmsg::{BoxedTracker, ZcRange};
///
/// let mut t = BoxedTracker::<u32>::with_window(1 << 20);
/// assert_eq!(t.window(), 1 << 20);
/// for i in 0..1000 {
///     t.register(i).unwrap();
/// }
/// let n = t.complete(ZcRange { lo: 0, hi: 999, copied: false }, |_, _, _| {});
/// assert_eq!(n, Ok(1000));
/// ```
#[cfg(feature = "alloc")]
pub type BoxedTracker<T> = Tracker<T, alloc::boxed::Box<[Option<T>]>>;

/// Tracks outstanding `MSG_ZEROCOPY` sends and hands each caller token back
/// exactly once, when the kernel completes its id.
///
/// The kernel numbers a socket's successful, non-empty `MSG_ZEROCOPY` sends
/// 0, 1, 2, ... (a `u32`, wrapping). [`register`](Self::register) assigns
/// the next id; [`complete`](Self::complete) applies a [`ZcRange`] in any
/// order, coalesced or wrapping. At most [`window`](Self::window) sends
/// may be outstanding. The storage `S` is an array
/// ([`CompletionTracker`]) or a boxed slice ([`BoxedTracker`]).
///
/// A send that failed after the kernel may have taken an id (some
/// datagram paths do, see [`register_in_doubt`](Self::register_in_doubt))
/// leaves the tracker *in doubt* until a completion or the caller settles
/// it.
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
pub struct Tracker<T, S> {
    /// Token of id `base + i` at `slots[(head + i) % window]`, `None` once
    /// released; never `None` at `head` while `len > 0`.
    slots: S,
    head: usize,
    /// Oldest id not yet released (or `next` when none is outstanding).
    base: u32,
    /// Ids `base..next` are the window; `len <= window`.
    len: usize,
    /// Outstanding (unreleased) tokens in the window.
    outstanding: usize,
    /// The last id of the window belongs to a send that may not have been
    /// counted by the kernel.
    in_doubt: bool,
    stats: CompletionStats,
    marker: core::marker::PhantomData<T>,
}

impl<T, const N: usize> Default for Tracker<T, [Option<T>; N]> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> Tracker<T, [Option<T>; N]> {
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
        Self::with_slots(core::array::from_fn(|_| None), next)
    }
}

#[cfg(feature = "alloc")]
impl<T> Tracker<T, alloc::boxed::Box<[Option<T>]>> {
    /// A tracker for a fresh socket with room for `ids` outstanding ids
    /// (at least 1), allocated on the heap.
    pub fn with_window(ids: usize) -> Self {
        Self::with_window_starting_at(ids, 0)
    }

    /// [`with_window`](Self::with_window) for a socket whose next send
    /// gets id `next`.
    pub fn with_window_starting_at(ids: usize, next: u32) -> Self {
        let slots = (0..ids.max(1)).map(|_| None).collect();
        Self::with_slots(slots, next)
    }
}

impl<T, S: Slots<T>> Tracker<T, S> {
    /// Completions in a row that must all be copied before
    /// [`advice`](Self::advice) says [`Advice::PreferCopy`] (see [`Advice`]).
    pub const PREFER_COPY_AFTER: u64 = 64;

    /// A tracker over `slots` (all of them `None`; any token in them is
    /// dropped) whose next send gets id `next`.
    fn with_slots(mut slots: S, next: u32) -> Self {
        slots.as_mut().iter_mut().for_each(|s| *s = None);
        Tracker {
            slots,
            head: 0,
            base: next,
            len: 0,
            outstanding: 0,
            in_doubt: false,
            stats: CompletionStats::default(),
            marker: core::marker::PhantomData,
        }
    }

    /// How many ids may be outstanding at once, from the oldest unreleased.
    pub fn window(&self) -> usize {
        self.slots.as_ref().len()
    }

    /// `i` modulo the window; a mask for the usual power-of-two windows
    /// (and a constant for arrays).
    #[inline]
    fn wrap(&self, i: usize) -> usize {
        let n = self.window();
        if n.is_power_of_two() {
            i & (n - 1)
        } else {
            i % n
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
        // len <= window; ids wrap like the kernel's counter.
        self.base.wrapping_add(self.len as u32)
    }

    /// Sends registered and not yet completed, a send in doubt included.
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

    /// The id of the send in doubt, if any (see
    /// [`register_in_doubt`](Self::register_in_doubt)).
    pub fn in_doubt(&self) -> Option<u32> {
        self.in_doubt.then(|| self.next_id().wrapping_sub(1))
    }

    /// Whether [`register`](Self::register) would refuse because the
    /// window is full.
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
        self.len == self.window()
    }

    /// How many sends [`register`](Self::register) would accept now, one
    /// after another: the ids left in the window, or 0 while a send is in
    /// doubt.
    ///
    /// ```
    /// # use msgzc_cmsg::CompletionTracker;
    /// let mut t = CompletionTracker::<(), 4>::new();
    /// t.register(()).unwrap();
    /// assert_eq!(t.room(), 3);
    /// t.register_in_doubt(()).unwrap();
    /// assert_eq!(t.room(), 0);
    /// ```
    pub fn room(&self) -> usize {
        if self.in_doubt {
            0
        } else {
            self.window() - self.len
        }
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
    /// The window of ids from the oldest unreleased one holds at most
    /// [`window`](Self::window); when it is full, or while a send is in
    /// doubt, the token comes back in [`Refused`].
    ///
    /// ```
    /// # use msgzc_cmsg::CompletionTracker;
    /// let mut t = CompletionTracker::<&[u8], 8>::new();
    /// let buf = [0u8; 4096];
    /// // After sendmsg(MSG_ZEROCOPY) returned > 0:
    /// assert_eq!(t.register(&buf), Ok(0));
    /// ```
    #[inline]
    pub fn register(&mut self, token: T) -> Result<u32, Refused<T>> {
        if let Some(id) = self.in_doubt() {
            let reason = Refusal::InDoubt { id };
            return Err(Refused { token, reason });
        }
        if self.is_full() {
            let reason = Refusal::Full;
            return Err(Refused { token, reason });
        }
        let id = self.next_id();
        let i = self.wrap(self.head + self.len);
        self.slots.as_mut()[i] = Some(token);
        self.len += 1;
        self.outstanding += 1;
        self.stats.sent += 1;
        Ok(id)
    }

    /// Records a `MSG_ZEROCOPY` send that *failed* after the kernel may
    /// have taken its id, and keeps `token` under the id it would hold.
    ///
    /// Linux gives the id back when a send fails while the packet is being
    /// built (`msg_zerocopy_put_abort`), but a datagram that fails later
    /// (`UDP_SEGMENT` size checks, a qdisc or netfilter drop reported with
    /// `IP_RECVERR`, a failed fragment) keeps it, and its completion comes
    /// like any other. The errno does not tell which. Until this is
    /// settled nothing else may be registered; it is settled by a
    /// completion covering the id (the kernel kept it: the token is
    /// released like any other) or by
    /// [`settle_unconsumed`](Self::settle_unconsumed) (it did not).
    ///
    /// ```
    /// use msgzc_cmsg::{CompletionTracker, Refusal, ZcRange};
    ///
    /// let mut t = CompletionTracker::<&str, 8>::new();
    /// t.register("a").unwrap();
    /// assert_eq!(t.register_in_doubt("b"), Ok(1));
    /// assert_eq!(t.register("c").unwrap_err().reason, Refusal::InDoubt { id: 1 });
    /// // The kernel reports 0..=1: it had counted the failed send.
    /// let mut got = Vec::new();
    /// t.complete(ZcRange { lo: 0, hi: 1, copied: true }, |_, tok, _| got.push(tok)).unwrap();
    /// assert_eq!((got, t.in_doubt(), t.next_id()), (vec!["a", "b"], None, 2));
    /// ```
    pub fn register_in_doubt(&mut self, token: T) -> Result<u32, Refused<T>> {
        let id = self.register(token)?;
        self.in_doubt = true;
        Ok(id)
    }

    /// Settles a send in doubt as *not* counted by the kernel: its token
    /// comes back and its id will be the next send's. Call it only with
    /// proof that no completion for the id can come (the socket layer
    /// waits until every other send completed, the socket's send queue is
    /// empty and the error queue was read empty). `None` when nothing is
    /// in doubt.
    ///
    /// ```
    /// use msgzc_cmsg::CompletionTracker;
    ///
    /// let mut t = CompletionTracker::<&str, 8>::new();
    /// t.register_in_doubt("b").unwrap();
    /// assert_eq!(t.settle_unconsumed(), Some("b"));
    /// assert_eq!((t.next_id(), t.outstanding()), (0, 0));
    /// assert_eq!(t.register("c"), Ok(0));
    /// ```
    pub fn settle_unconsumed(&mut self) -> Option<T> {
        if !self.in_doubt {
            return None;
        }
        self.in_doubt = false;
        // The doubtful id is the last of the window and still outstanding.
        let i = self.wrap(self.head + self.len - 1);
        let token = self.slots.as_mut()[i].take();
        self.len -= 1;
        self.outstanding -= 1;
        self.stats.sent -= 1;
        token
    }

    /// Hands out every outstanding token without completing it, as
    /// `(id, token)` in id order: for a socket that is closed with sends in
    /// flight (Linux reports no completions for a closed socket). The
    /// tracker is empty afterwards, its next id unchanged.
    ///
    /// ```
    /// use msgzc_cmsg::CompletionTracker;
    ///
    /// let mut t = CompletionTracker::<&str, 4>::new();
    /// t.register("a").unwrap();
    /// t.register("b").unwrap();
    /// let mut left = Vec::new();
    /// t.take_outstanding(|id, tok| left.push((id, tok)));
    /// assert_eq!(left, [(0, "a"), (1, "b")]);
    /// assert_eq!((t.outstanding(), t.next_id()), (0, 2));
    /// ```
    pub fn take_outstanding(&mut self, mut f: impl FnMut(u32, T)) {
        for k in 0..self.len {
            let i = self.wrap(self.head + k);
            if let Some(token) = self.slots.as_mut()[i].take() {
                f(self.base.wrapping_add(k as u32), token);
            }
        }
        self.base = self.next_id();
        (self.head, self.len, self.outstanding, self.in_doubt) = (0, 0, 0, false);
    }

    /// Forgets every outstanding token without dropping it (see
    /// [`take_outstanding`](Self::take_outstanding)), so memory the kernel
    /// may still read is never freed or reused. Returns how many.
    ///
    /// ```
    /// use msgzc_cmsg::CompletionTracker;
    ///
    /// let mut t = CompletionTracker::<Vec<u8>, 4>::new();
    /// t.register(vec![0; 4096]).unwrap();
    /// assert_eq!(t.leak_outstanding(), 1);
    /// assert_eq!((t.outstanding(), t.next_id()), (0, 1));
    /// ```
    pub fn leak_outstanding(&mut self) -> usize {
        let mut n = 0;
        self.take_outstanding(|_, token| {
            core::mem::forget(token);
            n += 1;
        });
        n
    }

    /// Slot index of an id inside the window.
    #[inline]
    fn slot(&self, id: u32) -> Option<usize> {
        let off = id.wrapping_sub(self.base) as usize;
        (off < self.len).then(|| self.wrap(self.head + off))
    }

    /// The error for a range that does not lie inside the window: the
    /// first id, in range order, that is not outstanding or already
    /// completed.
    #[inline]
    fn refuse(&self, range: ZcRange) -> CompletionError {
        // A range longer than the window cannot be valid; this also bounds
        // the search below by the window.
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
                Some(i) if self.slots.as_ref()[i].is_none() => {
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
    /// in id order, and the number released is returned. A range covering
    /// the id in doubt settles it as counted.
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
        // (mod window), `count <= len <= window` of them.
        let off = range.lo.wrapping_sub(self.base) as usize;
        let inside = off < self.len && range.count() <= (self.len - off) as u64;
        if !inside {
            return Err(self.refuse(range));
        }
        let (start, count) = (self.head + off, range.count() as usize);
        if let Some(k) = (0..count).find(|&k| self.slots.as_ref()[self.wrap(start + k)].is_none()) {
            return Err(CompletionError::AlreadyCompleted {
                range,
                id: range.lo.wrapping_add(k as u32),
            });
        }
        if self.in_doubt && off + count == self.len {
            // The range reaches the last id: the one in doubt was counted.
            self.in_doubt = false;
        }
        let mut n = 0;
        for k in 0..count {
            let i = self.wrap(start + k);
            if let Some(token) = self.slots.as_mut()[i].take() {
                release(range.lo.wrapping_add(k as u32), token, range.copied);
                n += 1;
            }
        }
        self.outstanding -= n;
        self.count_completed(n as u64, range.copied);
        // Slide the window past released ids. The oldest id is always
        // outstanding, so only a range that starts the window moves it: at
        // once past the range (completions mostly come in order), then past
        // ids completed earlier out of order.
        if off == 0 {
            self.head = self.wrap(self.head + n);
            self.base = self.base.wrapping_add(n as u32);
            self.len -= n;
            while self.len > 0 && self.slots.as_ref()[self.head].is_none() {
                self.head = self.wrap(self.head + 1);
                self.base = self.base.wrapping_add(1);
                self.len -= 1;
            }
        }
        Ok(n)
    }

    fn count_completed(&mut self, released: u64, copied: bool) {
        self.stats.ranges += 1;
        if copied {
            self.stats.copied += released;
            self.stats.copied_streak += released;
        } else {
            self.stats.zerocopy += released;
            self.stats.copied_streak = 0;
        }
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
        if t.in_doubt && range.contains(t.next_id().wrapping_sub(1)) {
            t.in_doubt = false;
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

    type State<const N: usize> = (
        [Option<u64>; N],
        usize,
        u32,
        usize,
        usize,
        bool,
        CompletionStats,
    );

    fn state<const N: usize>(t: &CompletionTracker<u64, N>) -> State<N> {
        (
            t.slots,
            t.head,
            t.base,
            t.len,
            t.outstanding,
            t.in_doubt,
            t.stats,
        )
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
            } else if op == 4 {
                assert_eq!(a.register_in_doubt(k as u64), b.register_in_doubt(k as u64));
            } else if op == 5 {
                let doubt = a.in_doubt();
                let back = a.settle_unconsumed();
                assert_eq!(back, b.settle_unconsumed());
                // Only a send in doubt comes back, and its id is reused.
                assert_eq!(back.is_some(), doubt.is_some());
                if let Some(id) = doubt {
                    assert_eq!(a.next_id(), id);
                }
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
            ops in proptest::collection::vec((0u8..6, any::<u8>(), any::<u8>(), any::<bool>()), 0..120),
        ) {
            same_as_reference::<8>(start, &ops);
            same_as_reference::<5>(start, &ops);
            same_as_reference::<1>(start, &ops);
        }
    }
}
