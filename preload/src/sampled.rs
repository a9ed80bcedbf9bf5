//! Sampled mode's path for the blocks it does not sample: no stack, no profiler lock.
//!
//! Most blocks of a sampled run need only their size, so that their free subtracts exactly
//! what their allocation added. Those sizes live in [`SHARD_COUNT`] tables, each behind its
//! own lock and chosen by the block's address / 64 MiB: glibc gives each thread's arena heaps
//! of 64 MiB, so a thread's blocks mostly share one shard and its lock stays in that core's
//! cache. The process's total and peak are atomics in the live file's header
//! ([`SharedTotals`]), so a killed process still leaves its exact peak behind.
//!
//! The recorder still handles sampled blocks, mappings and blocks that do not pack, under
//! the profiler's lock; it counts its own part of the total and reports each event's change
//! to [`after_locked`], which adds it to the shared total. The peak's per-stack snapshot
//! stays consistent the same way as in exact mode: when the shared total reaches a new peak
//! the recorder's epoch moves on (at once when the lock is held, else at the next locked
//! event, flagged by `peak_pending`). One approximation under threads: a sampled event
//! in flight on another thread while the peak is raised can land on either side of it,
//! which moves one sample's weight at one stack; the peak total itself is exact.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use peakprof::format::live::SharedTotals;
use peakprof::format::Profile;
use peakprof::record::{pack_size, Recorder, SizeTable};

use crate::guard::keep_errno;
use crate::livefile::MappedStore;
use crate::lock::Lock;
use crate::thread::Thread;
use crate::{clock, threads};

/// [`SharedTotals`] as atomics (same layout, checked below).
#[repr(C)]
struct SharedAtomics {
    active: AtomicU64,
    total: AtomicU64,
    peak: AtomicU64,
    peak_time_ns: AtomicU64,
    peak_pending: AtomicU64,
}

const _: () = assert!(
    core::mem::size_of::<SharedAtomics>() == core::mem::size_of::<SharedTotals>()
        && core::mem::align_of::<SharedAtomics>() == core::mem::align_of::<SharedTotals>()
);

impl SharedAtomics {
    const fn new() -> Self {
        Self {
            active: AtomicU64::new(0),
            total: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            peak_time_ns: AtomicU64::new(0),
            peak_pending: AtomicU64::new(0),
        }
    }
}

/// Where the totals go when the live file has no header (it could not be mapped).
static FALLBACK: SharedAtomics = SharedAtomics::new();
/// The shared totals in use; null while sampled mode is off.
static SHARED: AtomicPtr<SharedAtomics> = AtomicPtr::new(core::ptr::null_mut());
/// Monotonic time profiling started (for peak times).
static START_MONO_NS: AtomicU64 = AtomicU64::new(0);
/// Highest total since the last timeline point.
static INTERVAL_MAX: AtomicU64 = AtomicU64::new(0);
/// Time (since start) from which the next timeline point is due.
static NEXT_POINT_NS: AtomicU64 = AtomicU64::new(0);
/// `--limit` in bytes; `u64::MAX` when there is none.
static LIMIT: AtomicU64 = AtomicU64::new(u64::MAX);
/// The recorder's stack id for "not sampled".
static UNSAMPLED: AtomicU32 = AtomicU32::new(0);
/// Sampled mode is on.
static ON: AtomicBool = AtomicBool::new(false);

/// Timeline points come at most this often from here (the timeline merges them further).
const POINT_INTERVAL_NS: u64 = 1_000_000;

/// Number of size tables (a power of two).
const SHARD_COUNT: usize = 64;

struct ShardData {
    table: SizeTable,
    /// Allocations recorded here over the run, and their bytes (for the run totals).
    allocs: u64,
    alloc_bytes: u64,
}

/// One shard on a cache line of its own, so two threads' shards never share one.
#[repr(align(64))]
struct Shard(Lock<ShardData>);

static SHARDS: [Shard; SHARD_COUNT] = [const {
    Shard(Lock::new(ShardData {
        table: SizeTable::new(),
        allocs: 0,
        alloc_bytes: 0,
    }))
}; SHARD_COUNT];

#[inline]
fn shard_index(addr: u64) -> usize {
    ((addr >> 26).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_COUNT.trailing_zeros()))
        as usize
}

#[inline]
fn shard(addr: u64) -> &'static Lock<ShardData> {
    &SHARDS[shard_index(addr)].0
}

#[inline]
fn shared() -> &'static SharedAtomics {
    let p = SHARED.load(Ordering::Relaxed);
    // SAFETY: set (to a header field of a mapping that lives until the process ends, or to
    // FALLBACK) before ON, and only read while ON; SharedAtomics has SharedTotals' layout
    // and the fields are only ever accessed atomically.
    unsafe { &*p }
}

fn bind(header: *mut SharedTotals) {
    let p = if header.is_null() {
        &FALLBACK as *const SharedAtomics as *mut SharedAtomics
    } else {
        header.cast::<SharedAtomics>()
    };
    SHARED.store(p, Ordering::Release);
}

/// Turns sampled mode's lock-free path on (start-up, before any hook records).
pub fn activate(header: *mut SharedTotals, start_mono_ns: u64, limit: Option<u64>, unsampled: u32) {
    bind(header);
    START_MONO_NS.store(start_mono_ns, Ordering::Relaxed);
    LIMIT.store(limit.unwrap_or(u64::MAX), Ordering::Relaxed);
    UNSAMPLED.store(unsampled, Ordering::Relaxed);
    shared().active.store(1, Ordering::Relaxed);
    ON.store(true, Ordering::Release);
}

/// A forked child moved to its own live file: the totals it counted so far (in
/// [`FALLBACK`] since the fork) move there, and its peak history starts from what it holds
/// now. Single-threaded, under the profiler's lock.
pub fn rebind(header: *mut SharedTotals, start_mono_ns: u64, rec: &mut Recorder<MappedStore>) {
    if !on() {
        return;
    }
    let total = shared().total.load(Ordering::Relaxed);
    bind(header);
    START_MONO_NS.store(start_mono_ns, Ordering::Relaxed);
    NEXT_POINT_NS.store(0, Ordering::Relaxed);
    let s = shared();
    s.active.store(1, Ordering::Relaxed);
    s.total.store(total, Ordering::Relaxed);
    s.peak.store(total, Ordering::Relaxed);
    s.peak_time_ns.store(0, Ordering::Relaxed);
    s.peak_pending.store(0, Ordering::Relaxed);
    INTERVAL_MAX.store(total, Ordering::Relaxed);
    rec.mark_peak(total, 0);
}

/// Whether sampled mode's lock-free path is on.
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The stack id standing for "not sampled".
#[inline]
pub fn unsampled_stack() -> u32 {
    UNSAMPLED.load(Ordering::Relaxed)
}

/// Adds `delta` (two's complement) to the shared total; returns the new total. `single`:
/// what [`threads::single`] said during this hook.
#[inline]
fn add_total(s: &SharedAtomics, delta: u64, single: bool) -> u64 {
    if single {
        // No other thread exists: a plain load and store are the same as an atomic add,
        // without the locked instruction.
        let v = s.total.load(Ordering::Relaxed).wrapping_add(delta);
        s.total.store(v, Ordering::Relaxed);
        v
    } else {
        s.total
            .fetch_add(delta, Ordering::Relaxed)
            .wrapping_add(delta)
    }
}

/// Raises the peak to `total` unless it is already at least that; true when it did.
#[inline]
fn raise_peak(s: &SharedAtomics, total: u64) -> bool {
    let mut cur = s.peak.load(Ordering::Relaxed);
    while total > cur {
        match s
            .peak
            .compare_exchange_weak(cur, total, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => return true,
            Err(c) => cur = c,
        }
    }
    false
}

#[inline]
fn since_start(now_mono_ns: u64) -> u64 {
    now_mono_ns.saturating_sub(START_MONO_NS.load(Ordering::Relaxed))
}

/// The total rose to `total`: keeps the interval maximum, the peak and the limit.
///
/// One comparison in the common case. The interval maximum is a total reached since the
/// last timeline point, so it is at most the peak: a total that does not pass it passes
/// neither the peak nor (the first time) the limit, since a first crossing of the limit
/// exceeds every earlier total.
#[inline]
fn rose(s: &SharedAtomics, total: u64) {
    if total > INTERVAL_MAX.load(Ordering::Relaxed) {
        rose_past_interval_max(s, total);
    }
}

#[inline(never)]
fn rose_past_interval_max(s: &SharedAtomics, total: u64) {
    note_interval_max(total);
    if total > s.peak.load(Ordering::Relaxed) && raise_peak(s, total) {
        new_peak(s);
    }
    if total > LIMIT.load(Ordering::Relaxed) {
        keep_errno(|| crate::state::limit_crossed(total));
    }
}

/// Raises the interval maximum to `total` (it is read-mostly: test before writing).
#[inline]
fn note_interval_max(total: u64) {
    if total > INTERVAL_MAX.load(Ordering::Relaxed) {
        INTERVAL_MAX.fetch_max(total, Ordering::Relaxed);
    }
}

/// The peak was raised without the profiler's lock: the sites' epoch moves at the next
/// locked event (or when the profile is written). The precise clock, as in exact mode:
/// the coarse one lags it by up to a few ms, which is all of a short program's run.
#[cold]
fn new_peak(s: &SharedAtomics) {
    let t = since_start(clock::monotonic_ns());
    s.peak_time_ns.store(t, Ordering::Relaxed);
    s.peak_pending.store(1, Ordering::Release);
}

/// Periodic work, every few dozen events of a thread.
#[inline]
fn tick(t: Thread) {
    if t.tick() {
        keep_errno(crate::state::periodic);
    }
}

/// An unsampled block of `size` bytes at `addr`; false when it does not pack into the
/// tables (the caller then hands it to the recorder).
#[inline]
pub fn alloc(addr: u64, size: u64) -> bool {
    insert(addr, size, true)
}

/// Puts back an unsampled block whose realloc failed (not a new allocation); false when
/// it does not pack.
pub fn restore(addr: u64, size: u64) -> bool {
    insert(addr, size, false)
}

/// Enters a block in its table and the total (`new_allocation`: also in the run totals).
#[inline]
fn insert(addr: u64, size: u64, new_allocation: bool) -> bool {
    let Some(entry) = pack_size(addr, size) else {
        return false;
    };
    let single = threads::single();
    let stale = {
        let mut g = shard(addr).lock_knowing(single);
        if new_allocation {
            g.allocs += 1;
            g.alloc_bytes += size;
        }
        g.table.insert(entry).unwrap_or(0)
    };
    let s = shared();
    let total = add_total(s, size.wrapping_sub(stale), single);
    if size > stale {
        rose(s, total);
    }
    true
}

/// A block is being freed: its size when it is an unsampled block of the tables.
///
/// Frees drive the periodic work of threads that record without the lock (timeline
/// points, snapshot requests): allocations need not, as every few hundred KiB of them one
/// is sampled and takes the lock, which does the same work.
#[inline]
pub fn free(t: Thread, addr: u64) -> Option<u64> {
    let single = threads::single();
    let size = shard(addr).lock_knowing(single).table.remove(addr)?;
    add_total(shared(), size.wrapping_neg(), single);
    tick(t);
    Some(size)
}

/// Before a locked event: a peak raised without the lock since the last one makes the
/// sites' current state the peak state.
#[inline]
pub fn before_locked(rec: &mut Recorder<MappedStore>) {
    let s = shared();
    if s.peak_pending.load(Ordering::Relaxed) != 0 && s.peak_pending.swap(0, Ordering::Acquire) != 0
    {
        rec.mark_peak(
            s.peak.load(Ordering::Relaxed),
            s.peak_time_ns.load(Ordering::Relaxed),
        );
    }
}

/// After a locked event that changed the recorder's total by `delta` (two's complement).
#[inline]
pub fn after_locked(rec: &mut Recorder<MappedStore>, delta: u64) {
    if delta == 0 {
        return;
    }
    let s = shared();
    let total = add_total(s, delta, threads::single());
    if (delta as i64) < 0 {
        return;
    }
    note_interval_max(total);
    if raise_peak(s, total) {
        // The lock is held: the sites include this event, so they are the peak state now.
        let t = since_start(clock::monotonic_ns());
        s.peak_time_ns.store(t, Ordering::Relaxed);
        rec.mark_peak(total, t);
    }
}

/// The whole total now.
#[inline]
pub fn total() -> u64 {
    shared().total.load(Ordering::Relaxed)
}

/// Adds a timeline point when one is due (`now_ns` since start); true when one was added
/// (a moment to sample the RSS). Under the profiler's lock.
#[inline]
pub fn maybe_observe(rec: &mut Recorder<MappedStore>, now_ns: u64) -> bool {
    if now_ns < NEXT_POINT_NS.load(Ordering::Relaxed) {
        return false;
    }
    observe(rec, now_ns)
}

/// Adds a timeline point now (see [`maybe_observe`]).
pub fn observe(rec: &mut Recorder<MappedStore>, now_ns: u64) -> bool {
    NEXT_POINT_NS.store(now_ns + POINT_INTERVAL_NS, Ordering::Relaxed);
    let total = total();
    let max = INTERVAL_MAX.swap(total, Ordering::Relaxed).max(total);
    rec.observe_external(now_ns, max, total);
    rec.take_new_point()
}

/// Whether a timeline point is due at `now_mono_ns` (a monotonic clock reading).
#[inline]
pub fn point_due(now_mono_ns: u64) -> bool {
    since_start(now_mono_ns) >= NEXT_POINT_NS.load(Ordering::Relaxed)
}

/// Completes a profile the recorder wrote: the whole total and peak, and the run totals of
/// the unsampled blocks. Under the profiler's lock.
pub fn complete_profile(profile: &mut Profile) {
    let s = shared();
    profile.meta.peak_bytes = s.peak.load(Ordering::Relaxed);
    profile.meta.peak_time_ns = s.peak_time_ns.load(Ordering::Relaxed);
    profile.meta.final_bytes = s.total.load(Ordering::Relaxed);
    for sh in &SHARDS {
        let g = sh.0.lock();
        profile.meta.total_allocs += g.allocs;
        profile.meta.total_alloc_bytes += g.alloc_bytes;
    }
}

/// The recorder's part plus the tables' must be the shared total (stress tests; at exit).
pub fn check_consistency(rec_total: u64) -> Result<(), String> {
    let tables: u64 = SHARDS.iter().map(|sh| sh.0.lock().table.bytes()).sum();
    let total = total();
    if rec_total.wrapping_add(tables) != total {
        return Err(format!(
            "shared total {total} != recorder {rec_total} + unsampled tables {tables}"
        ));
    }
    let peak = shared().peak.load(Ordering::Relaxed);
    if peak < total {
        return Err(format!("shared peak {peak} < total {total}"));
    }
    Ok(())
}

/// Fork: hold every shard's lock across it (after the profiler's: the same order as
/// writing a profile, which reads the shards under the profiler's lock).
pub fn fork_prepare() {
    for sh in &SHARDS {
        core::mem::forget(sh.0.lock());
    }
}

/// Fork, in the parent: release what [`fork_prepare`] took.
pub fn fork_parent() {
    for sh in &SHARDS {
        sh.0.force_unlock();
    }
}

/// Fork, in the child: the thread that held the locks is this one. The live file's
/// mapping is still shared with the parent, so until the child has files of its own
/// ([`rebind`]) its totals go to private memory.
pub fn fork_child() {
    for sh in &SHARDS {
        sh.0.reset_after_fork();
    }
    if on() {
        let s = shared();
        for (to, from) in [
            (&FALLBACK.total, &s.total),
            (&FALLBACK.peak, &s.peak),
            (&FALLBACK.peak_time_ns, &s.peak_time_ns),
            (&FALLBACK.peak_pending, &s.peak_pending),
        ] {
            to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        bind(core::ptr::null_mut());
    }
}
