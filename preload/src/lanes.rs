//! Exact mode's lanes: one per thread, so threads record most events without the
//! profiler's lock (the why and the rules that keep the peak exact: `peakprof::record::Lane`
//! and `Recorder::lane_alloc`).
//!
//! Each lane sits behind a spin lock of its own. Its thread takes it on every event it
//! records alone (uncontended: one locked instruction on a line in its own cache); another
//! thread takes it only with the profiler's lock held, to absorb the lane or to free one of
//! its blocks. Lock order: the profiler's, then a lane's; a thread never waits for the
//! profiler's lock while holding its lane's.
//!
//! Whether lanes may hold changes back is [`HOLDING`], written only under the profiler's
//! lock. A thread reads it again after taking its lane's lock: the recorder clears it
//! before absorbing any lane, and absorbs each under that lane's lock, so a thread that
//! saw it set finished its event before its lane was absorbed, and every later one sees
//! it clear.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use peakprof::record::{Lane, LaneFree, Lanes, LiveAlloc};

use crate::lock::{Lock, LockGuard};
use crate::thread::Thread;
use crate::unwind;

/// Lanes at most; threads beyond them record through the profiler's lock as before.
const MAX_LANES: usize = 64;
/// A thread's lane word: no lane, and none to be claimed (its lane ended, or none was free).
const NO_LANE: u32 = u32::MAX;

/// A lane on cache lines of its own (two: the adjacent-line prefetcher pairs them), so that
/// threads recording in their lanes never write a line another thread's lane is on.
#[repr(align(128))]
struct Slot(Lock<Option<Lane>, true>);

static LANES: [Slot; MAX_LANES] = [const { Slot(Lock::new(None)) }; MAX_LANES];
/// Lanes made so far: indices below this exist (a lane, once made, is kept: its blocks
/// stay live after its thread ends, and the next thread takes it over).
static MADE: AtomicUsize = AtomicUsize::new(0);
/// Whether a thread has lane `i` now. Written under the profiler's lock.
static CLAIMED: [AtomicBool; MAX_LANES] = [const { AtomicBool::new(false) }; MAX_LANES];
/// Lanes with a thread: each may hold back up to a budget. Written under the profiler's
/// lock.
static OWNED: AtomicU64 = AtomicU64::new(0);
/// Lanes may hold changes back (see the module comment).
static HOLDING: AtomicBool = AtomicBool::new(false);
/// Lanes are in use in this process: exact mode without `--limit`, and not turned off.
static ENABLED: AtomicBool = AtomicBool::new(false);
/// Stacks interned so far: a stack id the unwinder's memo hands back (it lives in the
/// program's memory) is trusted without the lock only below this.
static STACKS: AtomicU32 = AtomicU32::new(0);
/// The key whose destructor gives a thread's lane back when the thread ends.
static KEY: AtomicU32 = AtomicU32::new(u32::MAX);
/// A free went to the allocator unrecorded while profiling (see
/// `crate::state::passed_through`): a stale block may sit in some map.
static MISSED: AtomicBool = AtomicBool::new(false);

/// The lanes, as the recorder reaches them (with the profiler's lock held).
pub struct LaneSet;

impl Lanes for LaneSet {
    fn count(&self) -> usize {
        MADE.load(Ordering::Acquire)
    }
    fn owned(&self) -> u64 {
        OWNED.load(Ordering::Relaxed)
    }
    fn with<R>(&self, i: usize, f: impl FnOnce(&mut Lane) -> R) -> Option<R> {
        LANES.get(i)?.0.lock().as_mut().map(f)
    }
    fn publish(&self, holding: bool) {
        HOLDING.store(holding, Ordering::SeqCst);
    }
    fn stale_possible(&self) -> bool {
        MISSED.load(Ordering::Relaxed)
    }
}

/// Notes that a free went unrecorded (see [`MISSED`]).
pub fn free_missed() {
    MISSED.store(true, Ordering::Relaxed);
}

/// Turns lanes on for this process (exact mode, no `--limit`, `PEAKPROF_LANES` not `0`):
/// at start-up, before any hook records.
pub fn enable() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: a valid out pointer and a destructor that lives as long as the library.
    if unsafe { libc::pthread_key_create(&mut key, Some(lane_ends)) } == 0 {
        KEY.store(key, Ordering::Relaxed);
        ENABLED.store(true, Ordering::Relaxed);
    }
}

/// Whether events go through the lanes' paths: lanes are on and the process has (or had)
/// threads. Single-threaded, the recorder alone is cheaper.
#[inline(always)]
pub fn active() -> bool {
    active_knowing(crate::threads::single())
}

/// [`active`] for a caller that already asked [`crate::threads::single`]: a
/// single-threaded process that never had lanes pays one load (lanes are made only when
/// they are on).
#[inline(always)]
pub fn active_knowing(single: bool) -> bool {
    if single {
        MADE.load(Ordering::Relaxed) > 0
    } else {
        ENABLED.load(Ordering::Relaxed)
    }
}

/// Records that `count` stacks are interned (under the profiler's lock).
#[inline]
pub fn stacks_known(count: usize) {
    STACKS.store(count.min(u32::MAX as usize) as u32, Ordering::Relaxed);
}

/// The lane thread `t` has, if any.
#[inline(always)]
fn lane_of(t: Thread) -> Option<usize> {
    let w = t.lane();
    (w != 0 && w != NO_LANE).then(|| w as usize - 1)
}

/// Thread `t`'s lane, locked, when it has one and lanes hold. `HOLDING` is read again
/// under the lane's lock (see the module comment).
#[inline(always)]
fn own_lane_holding(t: Thread) -> Option<LockGuard<'static, Option<Lane>, true>> {
    let i = lane_of(t)?;
    if !HOLDING.load(Ordering::Relaxed) {
        return None;
    }
    let g = LANES[i].0.lock_knowing(false);
    (g.is_some() && HOLDING.load(Ordering::Relaxed)).then_some(g)
}

/// An allocation recorded by the thread's lane alone, when lanes hold: false when the
/// profiler must record it (no lane, lanes do not hold now, a stack the lane does not
/// know, or a lane out of budget or room).
#[inline]
pub fn try_alloc(
    t: Thread,
    addr: usize,
    size: usize,
    room: &unwind::Frames,
    hash: Option<u64>,
) -> bool {
    let Some(mut g) = own_lane_holding(t) else {
        return false;
    };
    let Some(lane) = g.as_mut() else { return false };
    // Read only when needed (see `Frames::as_slice`).
    let frames = || room.as_slice();
    let known = room
        .known_stack()
        .filter(|&id| id < STACKS.load(Ordering::Relaxed));
    let id = match known {
        Some(id) if !unwind::checking() => id,
        // Check mode: the profiler compares a remembered id with the frames it names (in
        // the stack table, under its lock); here it must at least be the id this lane has
        // for the frames' hash, else the profiler checks it.
        Some(id) => {
            let h = peakprof::record::stack_hash(frames());
            if lane.cached_stack(h, frames()) != Some(id) {
                return false;
            }
            id
        }
        None => match hash.and_then(|h| lane.cached_stack(h, frames())) {
            // Check mode: a hit found by the frames' hash (with their number and the
            // outermost and innermost frame) is not compared frame for frame here; the
            // profiler interns the frames and compares its id with this one
            // (`check_cached_stack`).
            Some(_) if unwind::checking() => return false,
            Some(id) => id,
            None => return false,
        },
    };
    lane.alloc(addr as u64, size as u64, id)
}

/// A free recorded by the thread's lane alone, when lanes hold and the block is the
/// lane's: its size and stack. `None` when the profiler must record it.
#[inline]
pub fn try_free(t: Thread, addr: usize) -> Option<LiveAlloc> {
    let mut g = own_lane_holding(t)?;
    match g.as_mut()?.free(addr as u64) {
        LaneFree::Freed(block) => Some(block),
        LaneFree::NotHere | LaneFree::Full => None,
    }
}

/// The calling thread's lane, claimed now if it has none yet (under the profiler's lock).
/// `None` when every lane is taken or the thread is ending.
pub fn claim(t: Thread, release: Option<peakprof::record::Release>) -> Option<usize> {
    match t.lane() {
        0 => {}
        NO_LANE => return None,
        w => return Some(w as usize - 1),
    }
    let Some(i) = (0..MAX_LANES).find(|&i| !CLAIMED[i].load(Ordering::Relaxed)) else {
        t.set_lane(NO_LANE);
        return None;
    };
    {
        let mut g = LANES[i].0.lock();
        if g.is_none() {
            let mut lane = Lane::new();
            if let Some(release) = release {
                lane.set_release(release);
            }
            *g = Some(lane);
        }
    }
    if i >= MADE.load(Ordering::Relaxed) {
        MADE.store(i + 1, Ordering::Release);
    }
    CLAIMED[i].store(true, Ordering::Relaxed);
    OWNED.fetch_add(1, Ordering::Relaxed);
    t.set_lane(i as u32 + 1);
    // SAFETY: KEY was made by pthread_key_create (enable ran before any lane is claimed);
    // the value is an index, never dereferenced. May allocate: we are inside a hook, so
    // that goes to the real allocator unrecorded.
    unsafe {
        libc::pthread_setspecific(KEY.load(Ordering::Relaxed), (i + 1) as *const libc::c_void)
    };
    Some(i)
}

/// Remembers in lane `i` that the stack of `frames` (hash `hash`) is `id`, so that its
/// thread finds it without the profiler's lock next time.
pub fn remember_stack(i: usize, hash: u64, frames: &[u64], id: u32) {
    LaneSet.with(i, |l| l.cache_stack(hash, frames, id));
}

/// Check mode: the id lane `i`'s cache holds for `frames` (hash `hash`), if any, must be
/// `id`, the one the profiler's stack table gave them comparing every frame; else the
/// program is stopped with a message. The one place where a stack's id is found by hash
/// alone, so the one that needs its own check.
pub fn check_cached_stack(i: usize, hash: u64, frames: &[u64], id: u32) {
    let cached = LaneSet.with(i, |l| l.cached_stack(hash, frames)).flatten();
    if cached.is_some_and(|c| c != id) {
        unwind::check_failed(b"a lane's stack cache names another stack for these frames");
    }
}

/// Runs `f` on every lane, all locked (consistency checks at the end of a run).
pub fn with_all<R>(f: impl FnOnce(&[&Lane]) -> R) -> R {
    let guards: Vec<_> = LANES[..MADE.load(Ordering::Acquire)]
        .iter()
        .map(|l| l.0.lock())
        .collect();
    let lanes: Vec<&Lane> = guards.iter().filter_map(|g| g.as_ref()).collect();
    f(&lanes)
}

/// Gives the lane back (under the profiler's lock, with its changes absorbed): its blocks
/// stay in it for whoever frees them, and the next thread to claim it.
pub fn unclaim(i: usize) {
    if CLAIMED[i].swap(false, Ordering::Relaxed) {
        OWNED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The key's destructor, as a thread that had lane `value - 1` ends.
extern "C" fn lane_ends(value: *mut libc::c_void) {
    let t = Thread::current();
    // Its events from here on (the rest of its tear-down) go through the profiler's lock.
    t.set_lane(NO_LANE);
    let i = value as usize - 1;
    crate::state::lane_ended(i);
}

/// Fork, with the profiler's lock held and lanes no longer holding (so quiescent): takes
/// every lane's lock, so that the child inherits none half-changed.
pub fn fork_prepare() {
    for lane in &LANES[..MADE.load(Ordering::Relaxed)] {
        core::mem::forget(lane.0.lock());
    }
}

/// Fork, in the parent: releases the lanes' locks.
pub fn fork_parent() {
    for lane in &LANES[..MADE.load(Ordering::Relaxed)] {
        lane.0.force_unlock();
    }
}

/// Fork, in the child: the lanes' locks are free, and only the forking thread (this one)
/// still owns its lane; the others' blocks stay in their lanes, found there when freed.
pub fn fork_child() {
    let mine = lane_of(Thread::current());
    let mut owned = 0;
    for (i, lane) in LANES[..MADE.load(Ordering::Relaxed)].iter().enumerate() {
        lane.0.reset_after_fork();
        let keep = mine == Some(i);
        CLAIMED[i].store(keep, Ordering::Relaxed);
        owned += u64::from(keep);
    }
    OWNED.store(owned, Ordering::Relaxed);
}
