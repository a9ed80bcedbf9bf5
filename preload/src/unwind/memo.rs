//! The previous capture of this thread, so the next one can stop unwinding where the two
//! stacks meet.
//!
//! Consecutive allocations of a thread usually share the outer part of their stacks (the
//! same `main`, the same request loop, the same interpreter frames). Unwinding is a
//! dependent chain (rule lookup, then a stack load, then the next lookup), ~7 ns a frame.
//! But one unwinding step is a pure function of the register state `(pc, sp, bp)`, the
//! stack words it reads and the rule cache: so when the walk reaches a state the previous
//! capture also passed through, and every stack word that capture read from there on still
//! holds the value it read, the rest of the walk would repeat the previous one frame for
//! frame. Checking those words is a set of independent loads, several times cheaper than
//! the steps they replace.
//!
//! The memo records, per level: the state on entering it, and the address of the saved
//! frame pointer the step read (the return address is always read at the next level's
//! `sp - 8`). It is kept only for walks that ended cleanly (a frame without unwind info, or
//! a zero return address), and a generation counter drops every memo when the rule cache
//! is cleared (a module was unloaded).

use core::sync::atomic::{AtomicU64, Ordering};

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
    /// Where this level's step read the caller's frame pointer (0 when it kept `bp`; always
    /// 8-aligned, as reads are), with bit 0 set when the walk was still inside this library's
    /// frames on entering the level, and bit 1 when a walk started here from the registers
    /// (its `pc` is the current instruction, not a return address: see [`Level::at_start`]).
    read_at: u64,
}

impl Level {
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

    /// Notes where the step read the caller's frame pointer (an 8-aligned address).
    #[inline(always)]
    pub fn set_bp_slot(&mut self, slot: u64) {
        self.read_at = slot | (self.read_at & FLAGS);
    }
}

/// The flag bits of [`Level::read_at`].
const IN_SELF: u64 = 1;
const AT_START: u64 = 2;
const FLAGS: u64 = IN_SELF | AT_START;

/// One capture's walk, as laid out by `struct peakprof_memo` in `tls.c`.
#[repr(C)]
pub struct Memo {
    pub generation: u64,
    pub len: u32,
    pub valid: u32,
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

    /// Marks this memo as a complete walk of `len` levels.
    #[inline]
    pub fn finish(&mut self, len: usize, generation: u64) {
        self.len = len as u32;
        self.generation = generation;
        self.valid = 1;
    }
}

extern "C" {
    fn peakprof_memos(previous: *mut *mut Memo, next: *mut *mut Memo) -> core::ffi::c_int;
    fn peakprof_memo_swap();
    fn peakprof_memo_policy() -> *mut [u32; 2];
    fn peakprof_memo_fork_prepare();
    fn peakprof_memo_fork_parent();
    fn peakprof_memo_fork_child();
    fn peakprof_memo_free_pairs() -> core::ffi::c_int;
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
    unsafe { peakprof_memo_free_pairs() as usize }
}

/// Captures in a row that copied less than half their frames before the memo is set aside.
const UNPROFITABLE_LIMIT: u32 = 16;
/// Captures that then skip it (no recording, no matching) before it is tried again.
const SKIP_FOR: u32 = 1024;

/// Whether this capture should use (and record) the memo. Recording costs a few stores
/// per frame, which only pays when later captures copy frames.
#[inline(always)]
pub fn wanted() -> bool {
    // SAFETY: an initial-exec thread-local of this thread, touched only by its captures.
    let policy = unsafe { &mut *peakprof_memo_policy() };
    if policy[0] > 0 {
        policy[0] -= 1;
        return false;
    }
    true
}

/// Reports how much a memo-using capture copied: `copied` of `total` frames.
#[inline(always)]
pub fn account(copied: usize, total: usize) {
    // SAFETY: as in `wanted`.
    let policy = unsafe { &mut *peakprof_memo_policy() };
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

/// This thread's memos: the previous capture's (read) and the one being written; `None`
/// when the thread has none and cannot get one (the capture then goes without).
#[inline(always)]
pub fn buffers() -> Option<(&'static Memo, &'static mut Memo)> {
    let (mut prev, mut next) = (core::ptr::null_mut(), core::ptr::null_mut());
    // SAFETY: valid out-pointers. On success the C side hands out the two distinct halves
    // of a mapping owned by this thread until it ends (its pthread key's destructor, which
    // runs after the thread's last capture can use them, gives it back), which only this
    // thread's capture (never reentered: the hook guard is held) touches.
    unsafe {
        if peakprof_memos(&mut prev, &mut next) == 0 {
            return None;
        }
        Some((&*prev, &mut *next))
    }
}

/// Makes the memo just written the previous one.
#[inline(always)]
pub fn swap() {
    // SAFETY: flips a thread-local index; no preconditions.
    unsafe { peakprof_memo_swap() }
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
