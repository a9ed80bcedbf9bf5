//! This thread's recent captures, so the next one can stop unwinding where its stack meets
//! one of theirs.
//!
//! Consecutive allocations of a thread usually share the outer part of their stacks (the
//! same `main`, the same request loop, the same interpreter frames). Unwinding is a
//! dependent chain (rule lookup, then a stack load, then the next lookup), ~7 ns a frame.
//! But one unwinding step is a pure function of the register state `(pc, sp, bp)`, the
//! stack words it reads and the rule cache: so when the walk reaches a state an earlier
//! capture also passed through, and every stack word that capture read from there on still
//! holds the value it read, the rest of the walk would repeat the earlier one frame for
//! frame. Checking those words is a set of independent loads, several times cheaper than
//! the steps they replace.
//!
//! Several walks are kept, not only the last: a program often allocates from a few sites
//! in turn (sqlite3 cycles through four stacks, jq through three), and each then meets its
//! own earlier walk at its first frame instead of the previous site's somewhere outside.
//! A walk that repeated an earlier one from its first frame repeated its whole stack, so it
//! also repeats the id that stack was interned as ([`Memo::stack`]): no hash, no table.
//!
//! A memo records, per level: the state on entering it, and the address of the saved
//! frame pointer the step read (the return address is always read at the next level's
//! `sp - 8`). It is kept only for walks that ended cleanly (a frame without unwind info, or
//! a zero return address), and a generation counter drops every memo when the rule cache
//! is cleared (a module was unloaded).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::thread::Thread;

/// Levels a memo holds (the deepest kept stack plus this library's own frames).
pub const LEVELS: usize = 136;

/// One level of a walk, as laid out by `struct peakprof_memo_level` in `tls.c`. One record
/// per level (not one array per field): reusing a walk copies its outer levels in one block,
/// and checking them reads one stream.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Level {
    pub pc: u64,
    pub sp: u64,
    pub bp: u64,
    /// Where this level's step read the caller's frame pointer (0 when it kept `bp`, and,
    /// once the level is worked out, when the value read is never used: see
    /// [`Memo::work_out_from`]; always 8-aligned, as reads are, and a stack address, below
    /// 2^63), with bit 0 set when the walk was still inside this library's frames on
    /// entering the level, bit 1 when a walk started here from the registers (its `pc` is
    /// the current instruction, not a return address: see [`Level::at_start`]), bit 2 when
    /// the step found the caller's frame from `bp`, and bit 63 when the `bp` entering the
    /// level is live (see [`Memo::bp_live`]; set by [`Memo::work_out_from`]).
    read_at: u64,
}

impl Level {
    /// A level entered at `sp` (whose return address the walk read at `sp - 8`) with `pc`,
    /// for tests of the checks.
    #[cfg(test)]
    pub fn returning_to(pc: u64, sp: u64) -> Level {
        Level {
            pc,
            sp,
            bp: 0,
            read_at: 0,
        }
    }

    /// Where the step read the caller's frame pointer, 0 when it kept `bp`.
    #[inline(always)]
    pub fn bp_slot(&self) -> u64 {
        self.read_at & !FLAGS
    }

    /// Whether the walk was inside this library's frames on entering the level.
    #[inline(always)]
    pub fn in_self(&self) -> bool {
        self.read_at & IN_SELF != 0
    }

    /// Whether a walk started here from the registers (see `read_at`).
    #[inline(always)]
    pub fn at_start(&self) -> bool {
        self.read_at & AT_START != 0
    }

    /// Whether the step found the caller's frame from `bp`.
    #[inline(always)]
    fn uses_bp(&self) -> bool {
        self.read_at & USES_BP != 0
    }

    /// Takes `other`'s step (where it read `bp`, whether it used it), keeping this level's
    /// own flags: a walk that met `other`'s at this level steps on as it did.
    #[inline(always)]
    pub fn take_step_of(&mut self, other: &Level) {
        let own = IN_SELF | AT_START;
        self.read_at = (self.read_at & own) | (other.read_at & !own);
    }

    /// Whether the `bp` entering this level is live (see [`Memo::bp_live`]).
    #[inline(always)]
    fn bp_live(&self) -> bool {
        self.read_at & BP_LIVE != 0
    }

    /// Notes that the step found the caller's frame from `bp`.
    #[inline(always)]
    pub fn set_uses_bp(&mut self) {
        self.read_at |= USES_BP;
    }

    /// Notes where the step read the caller's frame pointer (an 8-aligned address).
    #[inline(always)]
    pub fn set_bp_slot(&mut self, slot: u64) {
        self.read_at = slot | (self.read_at & FLAGS);
    }
}

/// The flag bits of [`Level::read_at`].
const IN_SELF: u64 = 1;
const AT_START: u64 = 2;
const USES_BP: u64 = 4;
const BP_LIVE: u64 = 1 << 63;
const FLAGS: u64 = IN_SELF | AT_START | USES_BP | BP_LIVE;

/// One capture's walk, as laid out by `struct peakprof_memo` in `tls.c`.
#[repr(C)]
pub struct Memo {
    pub generation: u64,
    pub len: u32,
    pub valid: u32,
    /// The id this walk's stack was interned as, plus one; 0 when not known.
    stack_plus_one: u32,
    /// One past the outermost level whose step found its caller's frame from `bp` (0: no
    /// step did, as in most code built without frame pointers). Only the levels below it
    /// can enter with a live `bp`, so only their reloads are worked out and checked.
    bp_until: u16,
    /// The levels from here to `bp_until` are worked out ([`Memo::work_out_from`]).
    worked_from: u16,
    pub level: [Level; LEVELS],
}

impl Memo {
    /// Records the state on entering `level` (`at_start`: see [`Level::at_start`]); false
    /// when the memo has no room for it.
    #[inline(always)]
    pub fn enter(
        &mut self,
        level: usize,
        (pc, sp, bp): (u64, u64, u64),
        in_self: bool,
        at_start: bool,
    ) -> bool {
        if level >= LEVELS {
            return false;
        }
        self.level[level] = Level {
            pc,
            sp,
            bp,
            read_at: if in_self { IN_SELF } else { 0 } | if at_start { AT_START } else { 0 },
        };
        true
    }

    /// Marks this memo as a complete walk of `len` levels (whose stack has no id yet), in
    /// which no step at or past level `bp_until` found its caller's frame from `bp`. Where
    /// its `bp` is live is worked out later, by the checks that need it
    /// ([`Memo::work_out_from`]).
    #[inline]
    pub fn finish(&mut self, len: usize, generation: u64, bp_until: usize) {
        // The last level has no step: nothing uses its `bp`.
        let until = len.saturating_sub(1).min(LEVELS).min(bp_until) as u16;
        self.bp_until = until;
        self.worked_from = until;
        self.len = len as u32;
        self.generation = generation;
        self.valid = 1;
        self.stack_plus_one = 0;
    }

    /// Works out where `bp` is live from `level` on (see [`Memo::bp_live`]), once per level
    /// of the walk: a check of the walk's words from `level` would otherwise ask at every
    /// reloaded `bp` that differs (a scan outward, every time the walk is checked; a third
    /// of the check's instructions on sqlite3, whose `rbp` is an ordinary register). Below
    /// `bp_until`, a level's `BP_LIVE` flag is set when a step from there on finds its
    /// caller's frame from `bp` before one reloads it, and a reload whose value is not live
    /// is forgotten (its slot set to 0), so the check skips it. Forgetting it changes no
    /// later answer: a dead reload ends liveness, and so does the dead value after it;
    /// working levels out again (copied into a later walk) gives the same. Done outward
    /// in, from where it stopped, for walks that pay it back (see `fast::reuse`): done for
    /// every walk as it was finished, it cost cc1 170 M instructions (deep stacks with an
    /// `rbp`-framed function near their outer end, most walks checked once if at all).
    #[inline]
    pub fn work_out_from(&mut self, level: usize) {
        let (until, from) = (usize::from(self.bp_until), usize::from(self.worked_from));
        if level >= from.min(until) {
            return;
        }
        let mut live = self.worked_live(from);
        // Clamped: fields the program wrote over must not index past the levels.
        let Some(levels) = self.level.get_mut(level..from.min(LEVELS)) else {
            return;
        };
        for l in levels.iter_mut().rev() {
            let slot = l.bp_slot();
            if slot != 0 && !live {
                l.read_at &= FLAGS;
            }
            live = l.uses_bp() || (slot == 0 && live);
            l.read_at = (l.read_at & !BP_LIVE) | if live { BP_LIVE } else { 0 };
        }
        self.worked_from = level as u16;
    }

    /// Whether the rest of the walk from `level` depends on the `bp` it enters there with:
    /// a later step finds its caller's frame from `bp` before one reloads it from the stack
    /// (a step that does both uses it first). In code built without frame pointers `rbp`
    /// is an ordinary register holding whatever the caller left there: a level where it is
    /// dead matches another walk's whatever its value (the same call path entered with
    /// another `rbp` is the same walk), and a reload of a dead `bp` need not read the same
    /// word again. Read from the levels worked out ([`Memo::work_out_from`]); for levels
    /// not worked out, found by a scan outward to the first that is (asked only when the
    /// values differ).
    #[inline]
    pub fn bp_live(&self, level: usize) -> bool {
        let (until, from) = (usize::from(self.bp_until), usize::from(self.worked_from));
        if level >= until {
            return false;
        }
        if level >= from {
            return self.worked_live(level);
        }
        for l in self.level.get(level..from.min(LEVELS)).unwrap_or_default() {
            if l.uses_bp() {
                return true;
            }
            if l.bp_slot() != 0 {
                return false;
            }
        }
        self.worked_live(from)
    }

    /// Whether the `bp` entering `level`, a level worked out or at or past `bp_until`, is
    /// live: its flag below `bp_until`, never from there on.
    #[inline(always)]
    fn worked_live(&self, level: usize) -> bool {
        level < usize::from(self.bp_until) && self.level.get(level).is_some_and(Level::bp_live)
    }

    /// Whether the levels from `level` on are worked out ([`Memo::work_out_from`]; those
    /// at or past `bp_until` need not be).
    #[inline(always)]
    pub fn worked_out_from(&self, level: usize) -> bool {
        usize::from(self.worked_from.min(self.bp_until)) <= level
    }

    /// See `bp_until`: levels from here on never enter with a live `bp`, and their reloads
    /// of it are never checked.
    #[inline(always)]
    pub fn bp_until(&self) -> usize {
        usize::from(self.bp_until)
    }

    /// Whether this is a complete walk made under the rules of `generation`.
    #[inline(always)]
    pub fn usable(&self, generation: u64) -> bool {
        self.valid != 0 && self.generation == generation
    }

    /// The id this walk's stack was interned as, if known.
    #[inline(always)]
    pub fn stack(&self) -> Option<u32> {
        self.stack_plus_one.checked_sub(1)
    }
}

/// Earlier walks a capture can meet.
pub const EARLIER: usize = 4;
const MEMOS: usize = EARLIER + 1;

/// A thread's memos, as laid out by `struct memo_set` in `tls.c` (its list links after
/// these fields are the C side's alone).
#[repr(C)]
pub struct MemoSet {
    /// Per memo: the stack pointer its walk started at (0: none), so a capture looks at the
    /// few whose first level could be its own in one cache line.
    first_sp: [u64; MEMOS],
    /// Captures that repeated an earlier walk whole (for tests: [`repeated_walks`]).
    repeated: u64,
    /// Indices into `memo`: the earlier walks, newest first, then the one to write next.
    order: [u8; MEMOS],
    memo: [Memo; MEMOS],
}

/// Whether `tls.c`'s `struct memo_set` is laid out as [`MemoSet`] assumes, in every field
/// the C side writes: where `repeated`, `order` and the memos start, a memo's size and where
/// its `valid` flag is, how many memos. The two are written twice (C and Rust), so the C
/// side asks once per process before handing out a set, and hands out none on a mismatch: a
/// one-sided edit then costs speed (no memos; the tests that count repeated walks fail)
/// instead of walks read at the wrong offsets.
#[no_mangle]
pub extern "C" fn peakprof_memo_layout_agrees(
    repeated_offset: u64,
    order_offset: u64,
    memo_offset: u64,
    memo_size: u64,
    valid_offset: u64,
    memos: u64,
) -> bool {
    use core::mem::{offset_of, size_of};
    [
        (repeated_offset, offset_of!(MemoSet, repeated)),
        (order_offset, offset_of!(MemoSet, order)),
        (memo_offset, offset_of!(MemoSet, memo)),
        (memo_size, size_of::<Memo>()),
        (valid_offset, offset_of!(Memo, valid)),
        (memos, MEMOS),
    ]
    .iter()
    .all(|&(c, rust)| c == rust as u64)
}

/// The walks a capture reads and the one it writes: a [`MemoSet`] whose order was checked
/// to be a permutation.
pub struct Walks<'a> {
    memo: &'a mut [Memo; MEMOS],
    order: &'a mut [u8; MEMOS],
    first_sp: &'a mut [u64; MEMOS],
    repeated: &'a mut u64,
}

/// The order of a [`MemoSet`]'s memos, to update once a walk is written.
pub struct Order<'a> {
    order: &'a mut [u8; MEMOS],
    first_sp: &'a mut [u64; MEMOS],
}

impl<'a> Walks<'a> {
    /// Earlier walk `k` (0: the newest) if it started at stack pointer `sp`.
    #[inline(always)]
    pub fn earlier_from(&mut self, k: usize, sp: u64) -> Option<&mut Memo> {
        let i = usize::from(*self.order.get(k)?);
        if *self.first_sp.get(i)? != sp {
            return None;
        }
        self.memo.get_mut(i)
    }

    /// The capture repeated earlier walk `k` from its first level, so its stack is that
    /// walk's: `k` becomes the newest, nothing is written (a walk kept twice would push out
    /// a distinct one).
    #[inline(always)]
    pub fn promote(self, k: usize) {
        *self.repeated += 1;
        to_front(self.order, k);
    }

    /// For a walk of its own: the newest earlier walk (to meet further out), the walk to
    /// write, and the order to update once it is written.
    #[inline(always)]
    pub fn into_parts(self) -> Option<(&'a mut Memo, &'a mut Memo, Order<'a>)> {
        if !is_permutation(self.order) {
            return None;
        }
        let (e, n) = (usize::from(self.order[0]), usize::from(self.order[EARLIER]));
        let (newest, next) = if e < n {
            let (low, high) = self.memo.split_at_mut(n);
            (low.get_mut(e)?, high.first_mut()?)
        } else if n < e {
            let (low, high) = self.memo.split_at_mut(e);
            (high.first_mut()?, low.get_mut(n)?)
        } else {
            return None;
        };
        let order = Order {
            order: self.order,
            first_sp: self.first_sp,
        };
        Some((newest, next, order))
    }
}

impl Order<'_> {
    /// The walk just written (which started at stack pointer `first_sp`) becomes the
    /// newest; the oldest is the next to write.
    #[inline(always)]
    pub fn push_next(self, first_sp: u64) {
        let written = self.order[EARLIER];
        if let Some(sp) = self.first_sp.get_mut(usize::from(written)) {
            *sp = first_sp;
        }
        to_front(self.order, EARLIER);
    }
}

/// Moves `order[k]` to the front, the entries before it one place back (`k` past the end:
/// nothing). By hand: `rotate_right` on a few bytes is a call and ~50 instructions.
#[inline(always)]
fn to_front(order: &mut [u8; MEMOS], k: usize) {
    if k < MEMOS {
        // In one word: as a loop of byte moves it still became a call to memmove.
        let mut bytes = [0u8; 8];
        bytes[..MEMOS].copy_from_slice(order);
        let w = u64::from_le_bytes(bytes);
        let below = (1u64 << (8 * k)) - 1; // bytes 0..k
        let moved = (w >> (8 * k)) & 0xff;
        let above = w & !((below << 8) | 0xff); // bytes k+1..
        let w = above | ((w & below) << 8) | moved;
        order.copy_from_slice(&w.to_le_bytes()[..MEMOS]);
    }
}

/// The `n` levels at address `addr`, which a capture took from a memo of this thread's set
/// (see `Frames::pending`), reached afresh from the set's own pointer rather than through
/// the capture's references (which later captures' writes to the set outlive); `None` when
/// they do not lie inside the set.
pub fn levels_at(addr: usize, n: usize) -> Option<&'static [Level]> {
    // SAFETY: returns this thread's set, or null; no reference to it is made here.
    let set = unsafe { peakprof_memos() };
    if set.is_null() {
        return None;
    }
    let base = set as usize;
    let end = n
        .checked_mul(core::mem::size_of::<Level>())
        .and_then(|bytes| addr.checked_add(bytes))?;
    if addr < base
        || end > base + core::mem::size_of::<MemoSet>()
        || !addr.is_multiple_of(core::mem::align_of::<Level>())
    {
        return None;
    }
    // SAFETY: inside the set's mapping (checked), aligned, derived from the set's pointer;
    // levels are plain words (any bits are a value), and only this thread's captures write
    // them, none of which runs while this one reads them.
    Some(unsafe { core::slice::from_raw_parts(set.cast::<u8>().add(addr - base).cast(), n) })
}

/// Names the stack of the newest walk (the one the capture just made or repeated).
pub fn remember_stack(id: u32) {
    let Some(set) = set(Thread::current()) else {
        return;
    };
    if let Some(newest) = set.memo.get_mut(usize::from(set.order[0])) {
        // The last id has no "plus one": that stack is simply not remembered.
        newest.stack_plus_one = id.checked_add(1).unwrap_or(0);
    }
}

extern "C" {
    fn peakprof_memos() -> *mut MemoSet;
    fn peakprof_memo_fork_prepare();
    fn peakprof_memo_fork_parent();
    fn peakprof_memo_fork_child();
    fn peakprof_memo_free_sets() -> core::ffi::c_int;
}

/// Before fork: holds the lock of the memo buffers' free list, so the child cannot inherit
/// it held by a thread that is not there (its first new thread would wait forever).
pub fn fork_prepare() {
    // SAFETY: takes a spin lock that only list operations hold, briefly.
    unsafe { peakprof_memo_fork_prepare() }
}

/// After fork, in the parent: releases the lock [`fork_prepare`] took.
pub fn fork_parent() {
    // SAFETY: the lock is held by this thread, since `fork_prepare`.
    unsafe { peakprof_memo_fork_parent() }
}

/// After fork, in the child: the buffers of the threads that did not come along are free
/// again (they were lost to the child before), and the lock is released.
pub fn fork_child() {
    // SAFETY: only the forking thread runs in the child, and it holds the lock since
    // `fork_prepare`: no buffer is in use by anyone but it.
    unsafe { peakprof_memo_fork_child() }
}

/// Memo buffers waiting on the free list for a new thread (for tests, through
/// [`crate::peakprof_debug_free_memo_buffers`]).
pub fn free_buffers() -> usize {
    // SAFETY: counts the list under its lock.
    unsafe { peakprof_memo_free_sets() as usize }
}

/// Captures in a row that copied less than half their frames before the memo is set aside.
const UNPROFITABLE_LIMIT: u32 = 16;
/// Captures that then skip it (no recording, no matching) before it is tried again.
const SKIP_FOR: u32 = 1024;

/// Whether this capture should use (and record) the memo. Recording costs a few stores
/// per frame, which only pays when later captures copy frames.
#[inline(always)]
pub fn wanted(t: Thread) -> bool {
    // SAFETY: this thread's state, whose policy words only its captures touch, one at a
    // time (no reference to them outlives the call).
    let policy = unsafe { &mut *t.memo_policy() };
    if policy[0] > 0 {
        policy[0] -= 1;
        return false;
    }
    true
}

/// Reports how much a memo-using capture copied: `copied` of `total` frames.
#[inline(always)]
pub fn account(t: Thread, copied: usize, total: usize) {
    // SAFETY: as in `wanted`.
    let policy = unsafe { &mut *t.memo_policy() };
    if copied * 2 >= total {
        policy[1] = 0;
    } else {
        policy[1] += 1;
        if policy[1] >= UNPROFITABLE_LIMIT {
            policy[1] = 0;
            policy[0] = SKIP_FOR;
        }
    }
}

/// This thread's memo set; `None` when the thread has none and cannot get one (the
/// capture then goes without).
#[inline(always)]
fn set(t: Thread) -> Option<&'static mut MemoSet> {
    let mut p = t.memo_set();
    if p.is_null() {
        p = first_set();
    }
    // SAFETY: the C side hands out a mapping of `struct memo_set` (whose leading fields
    // `MemoSet` mirrors) owned by this thread until it ends (its pthread key's destructor,
    // which runs after the thread's last capture can use it, gives it back), which only
    // this thread's captures and the interning right after one (never reentered: the hook
    // guard is held) touch, one at a time.
    unsafe { p.as_mut() }
}

/// [`set`] for a thread that has none yet: tls.c maps or takes one (or says it cannot).
#[cold]
#[inline(never)]
fn first_set() -> *mut MemoSet {
    // SAFETY: returns this thread's set (making it if it can), or null.
    unsafe { peakprof_memos() }
}

/// This thread's walks for a capture; `None` when it has no memo set. Reading an earlier
/// walk needs no more of the order than in-range indices (each is checked where used);
/// writing one needs it to be a permutation, which [`Walks::into_parts`] asks.
#[inline(always)]
pub fn walks(t: Thread) -> Option<Walks<'static>> {
    let MemoSet {
        first_sp,
        repeated,
        order,
        memo,
    } = set(t)?;
    Some(Walks {
        memo,
        order,
        first_sp,
        repeated,
    })
}

/// Whether `order` names every memo once (a program writing over it could make it name
/// one twice, and a walk could then be written over the one being read).
fn is_permutation(order: &[u8; MEMOS]) -> bool {
    let seen = order.iter().fold(0u32, |m, &i| {
        m | 1u32.checked_shl(u32::from(i)).unwrap_or(0)
    });
    seen == (1 << MEMOS) - 1
}

/// How many captures of this thread repeated an earlier walk whole (for tests, through
/// [`crate::peakprof_debug_repeated_walks`]).
pub fn repeated_walks() -> u64 {
    set(Thread::current()).map_or(0, |s| s.repeated)
}

/// Writes `len` over the length of every memo of this thread, as a program writing over
/// the profiler's memory might (for tests, through
/// [`crate::peakprof_debug_overwrite_memo_lengths`]): a capture must not index past a
/// memo's levels whatever its length says.
pub fn overwrite_lengths(len: u32) {
    if let Some(set) = set(Thread::current()) {
        for memo in &mut set.memo {
            memo.len = len;
        }
    }
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The current generation; memos of another are ignored.
#[inline(always)]
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Drops every thread's memo (the rules they relied on may have changed).
pub fn invalidate_all() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_front_moves_one_entry_and_keeps_the_others_in_order() {
        for k in 0..=MEMOS {
            let mut order = [3u8, 0, 4, 1, 2];
            let mut want = order;
            if k < MEMOS {
                want[..=k].rotate_right(1);
            }
            to_front(&mut order, k);
            assert_eq!(order, want, "k = {k}");
        }
    }

    #[test]
    fn only_a_permutation_lets_a_walk_be_written() {
        assert!(is_permutation(&[4, 2, 0, 1, 3]));
        assert!(!is_permutation(&[4, 2, 0, 1, 1]));
        assert!(!is_permutation(&[4, 2, 0, 1, 200]));
    }

    /// What a step did with `bp`, per level of a test walk.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        Keeps,
        Reloads,
        Uses,
        UsesThenReloads,
    }

    const STEPS: [Step; 4] = [
        Step::Keeps,
        Step::Reloads,
        Step::Uses,
        Step::UsesThenReloads,
    ];

    fn walk(steps: &[Step]) -> Memo {
        let blank = Level {
            pc: 0,
            sp: 0,
            bp: 0,
            read_at: 0,
        };
        let mut m = Memo {
            generation: 0,
            len: 0,
            valid: 0,
            stack_plus_one: 0,
            bp_until: 0,
            worked_from: 0,
            level: [blank; LEVELS],
        };
        for (i, step) in steps.iter().enumerate() {
            assert!(m.enter(
                i,
                (0x1000 + i as u64, 0x7000 + 16 * i as u64, 0),
                false,
                false
            ));
            if matches!(step, Step::Uses | Step::UsesThenReloads) {
                m.level[i].set_uses_bp();
            }
            if matches!(step, Step::Reloads | Step::UsesThenReloads) {
                m.level[i].set_bp_slot(0x7000 + 16 * i as u64 + 8);
            }
        }
        // The last level, which has no step.
        assert!(m.enter(
            steps.len(),
            (0, 0x7000 + 16 * steps.len() as u64, 0),
            false,
            false
        ));
        m
    }

    /// The definition: from `level` on, a step uses `bp` before one reloads it.
    fn live_by_scan(steps: &[Step], level: usize) -> bool {
        for step in &steps[level.min(steps.len())..] {
            match step {
                Step::Uses | Step::UsesThenReloads => return true,
                Step::Reloads => return false,
                Step::Keeps => {}
            }
        }
        false
    }

    /// Every walk of 6 steps, finished as a capture does (with one past its outermost step
    /// that used `bp`), then worked out from a middle level and from its first: `bp_live`
    /// answers as the definition says before, between and after (a scan where not worked
    /// out yet, the flags where worked out); working out keeps exactly the reloads whose
    /// value is live (and their slots unchanged) below that limit, leaves the levels past
    /// it and the ones not reached alone, keeps every other flag, and doing it again (as
    /// for a walk whose outer levels were copied from a worked-out one) changes nothing.
    #[test]
    fn liveness_is_worked_out_as_the_scan_defines_it() {
        const N: usize = 6;
        for code in 0..STEPS.len().pow(N as u32) {
            let steps: Vec<Step> = (0..N)
                .map(|i| STEPS[code / STEPS.len().pow(i as u32) % STEPS.len()])
                .collect();
            let mut m = walk(&steps);
            let before: Vec<Level> = m.level[..=N].to_vec();
            let until = steps
                .iter()
                .rposition(|s| matches!(s, Step::Uses | Step::UsesThenReloads))
                .map_or(0, |i| i + 1);
            m.finish(N + 1, 7, until);
            assert_eq!(m.bp_until(), until, "{steps:?}");
            assert!(m.usable(7) && m.len == N as u32 + 1);
            for from in [N + 1, 3, 0] {
                m.work_out_from(from);
                for (level, b) in before.iter().enumerate() {
                    let what = format!("{steps:?}, worked out from {from}, level {level}");
                    assert_eq!(m.bp_live(level), live_by_scan(&steps, level), "{what}");
                    let l = &m.level[level];
                    let reload_kept =
                        level < from || level >= until || live_by_scan(&steps, level + 1);
                    let slot = if reload_kept { b.bp_slot() } else { 0 };
                    assert_eq!(l.bp_slot(), slot, "{what}");
                    assert_eq!((l.pc, l.sp, l.bp), (b.pc, b.sp, b.bp), "{what}");
                    assert_eq!(l.uses_bp(), b.uses_bp(), "{what}");
                    assert_eq!((l.in_self(), l.at_start()), (b.in_self(), b.at_start()));
                }
            }
            let once: Vec<u64> = m.level[..=N].iter().map(|l| l.read_at).collect();
            m.finish(N + 1, 7, until);
            m.work_out_from(0);
            let twice: Vec<u64> = m.level[..=N].iter().map(|l| l.read_at).collect();
            assert_eq!(once, twice, "{steps:?}");
        }
    }

    /// A memo the program wrote over (any length, limits and flags, as `rotating_sites
    /// overwrite` does for lengths end to end): asking where `bp` is live, working it out
    /// from any level and finishing again never index past the levels (a panic would abort
    /// the program), and what was worked out reads back consistently: a level past
    /// `bp_until` is never live.
    #[test]
    fn memos_written_over_never_index_past_their_levels() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut m = walk(&[Step::Keeps; 4]);
        for _ in 0..20_000 {
            m.len = next() as u32;
            m.bp_until = next() as u16;
            m.worked_from = next() as u16;
            for _ in 0..4 {
                let i = next() as usize % LEVELS;
                m.level[i].read_at = next();
            }
            let level = next() as usize % (LEVELS + 8);
            let _ = m.bp_live(level);
            let _ = m.worked_out_from(level);
            m.work_out_from(level);
            for l in [0, level, LEVELS - 1, LEVELS, LEVELS + 7, usize::MAX] {
                if m.bp_live(l) {
                    assert!(l < m.bp_until(), "level {l} live past {}", m.bp_until());
                }
            }
            m.finish(next() as usize, 1, next() as usize);
            assert!(m.bp_until() <= LEVELS);
        }
    }
}
