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
//!
//! With threads, far below the peak, the shared total is *lazy* (see [`LAZY`]): shards
//! hold credit so that most events do not write the shared cache line.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use peakprof::format::live::{SharedTotals, LAZY_TOTAL};
use peakprof::format::Profile;
use peakprof::record::{pack_size, Recorder, SizeTable};

use crate::biased::{self, AllLocked, BiasedLock};
use crate::guard::keep_errno;
use crate::livefile::MappedStore;
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
/// Threads waiting to count a rise exactly: while any is, the total does not go lazy
/// again (a stream of frees elsewhere could otherwise undo each [`make_exact`] before the
/// waiting thread gets to count its rise, forever).
static EXACT_WANTED: AtomicU32 = AtomicU32::new(0);

/// Holds [`EXACT_WANTED`] up while it lives.
struct HoldExact;

impl HoldExact {
    fn new() -> Self {
        EXACT_WANTED.fetch_add(1, Ordering::Relaxed);
        HoldExact
    }
}

impl Drop for HoldExact {
    fn drop(&mut self) {
        EXACT_WANTED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Times the total went from lazy to exact (reported by the consistency check).
static EXACT_SWITCHES: AtomicU64 = AtomicU64::new(0);
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
    /// Bytes the shared total already counts that this shard's events have not used yet
    /// (nonzero only while the total is lazy, see [`LAZY`]).
    credit: u64,
    /// Credit above this goes back to the shared total.
    credit_cap: u64,
    /// Rises of blocks already in this table that wait for [`make_exact`] to be counted.
    owed: u64,
}

/// One shard, on cache lines of its own so two threads' shards never share one. A biased
/// spin lock: a shard is nearly always taken by the one thread whose arena it holds, which
/// then enters without a locked instruction.
type Shard = BiasedLock<ShardData>;

static SHARDS: [Shard; SHARD_COUNT] = [const {
    BiasedLock::new(ShardData {
        table: SizeTable::new(),
        allocs: 0,
        alloc_bytes: 0,
        credit: 0,
        credit_cap: 0,
        owed: 0,
    })
}; SHARD_COUNT];

/// Top bit of the shared total word: the total is *lazy*.
///
/// With threads, one atomic add per event on the shared total moves its cache line between
/// cores on every malloc and free (perf: ~40% of this path's time on 4-thread churn). Far
/// from the peak that exactness is not needed, only the guarantee that no peak goes
/// unseen. So while the flag is set, each shard may hold *credit*: bytes added to the
/// shared total ahead of use. An allocation spends its shard's credit and a free adds to
/// it, under the shard's lock and without touching the shared line; a shard takes more
/// credit (or returns excess) with a compare-and-swap that only succeeds while the total
/// stays *below* the peak. The shared total is then always at least the true one (it
/// includes the unspent credit), and below the peak, so the true total cannot pass the
/// peak unseen. When credit cannot be granted, [`make_exact`] takes every shard's lock,
/// subtracts their credit and clears the flag: from then on each event adds to the total
/// at once and raises the peak as before. An exact event that leaves the total well below
/// the peak sets the flag again, unless a thread is waiting to count a rise exactly
/// ([`EXACT_WANTED`]). Credit changes only under a shard's lock, and the flag is cleared
/// only while all of them are held, so a shard lock holder that sees the flag set knows it
/// stays set until it lets go.
const LAZY: u64 = LAZY_TOTAL;

/// A shard takes at most this much credit at once; it keeps up to twice that before
/// returning the excess (so a thread's idle credit cannot hide much).
const MAX_CREDIT: u64 = 64 << 10;
/// The total goes lazy again when it is at least this far below the peak.
const LAZY_BELOW_PEAK: u64 = 16 << 10;

#[inline]
fn shard_index(addr: u64) -> usize {
    ((addr >> 26).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_COUNT.trailing_zeros()))
        as usize
}

#[inline]
fn shard(addr: u64) -> &'static Shard {
    &SHARDS[shard_index(addr)]
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
    // Credit the child's shards took since the fork is counted in the total: collect it
    // first (and clear the lazy flag, which must not be taken for bytes), and keep every
    // shard locked until the totals have moved: a thread the child started meanwhile
    // could otherwise count into the old place after it was read.
    let _all = make_exact_holding(shared());
    let before = shared();
    let total = before.total.load(Ordering::Relaxed) & !LAZY;
    // The child's peak since the fork ([`fork_child`] started it at what it inherited).
    // Events before this one were all unsampled (a sampled one takes the lock, which
    // rebinds first), so the sites are as they were at that peak: marking it now is right.
    let peak = before.peak.load(Ordering::Relaxed).max(total);
    // When it was reached (since the fork, from which the child's times count; 0 when
    // that is still what it inherited).
    let peak_time = before.peak_time_ns.load(Ordering::Relaxed);
    bind(header);
    START_MONO_NS.store(start_mono_ns, Ordering::Relaxed);
    NEXT_POINT_NS.store(0, Ordering::Relaxed);
    let s = shared();
    s.active.store(1, Ordering::Relaxed);
    s.total.store(total, Ordering::Relaxed);
    s.peak.store(peak, Ordering::Relaxed);
    s.peak_time_ns.store(peak_time, Ordering::Relaxed);
    s.peak_pending.store(0, Ordering::Relaxed);
    // The first timeline interval holds a peak reached before this (at most the peak).
    INTERVAL_MAX.store(peak, Ordering::Relaxed);
    rec.mark_peak(peak, peak_time);
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

/// Whether this hook may count with plain loads and stores: no other thread exists (what
/// [`threads::single`] said) and the total is not lazy (it could be if the process had
/// threads before: glibc does not promise to keep the flag false once they are gone).
#[inline]
fn plain(s: &SharedAtomics, single: bool) -> bool {
    single && s.total.load(Ordering::Relaxed) & LAZY == 0
}

/// Adds `delta` (two's complement) to the total when [`plain`]; returns the new total. No
/// other thread exists: a plain load and store are the same as an atomic add, without the
/// locked instruction.
#[inline]
fn add_plain(s: &SharedAtomics, delta: u64) -> u64 {
    let v = s.total.load(Ordering::Relaxed).wrapping_add(delta);
    s.total.store(v, Ordering::Relaxed);
    v
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

/// Times a new peak (never before the previous one: the coarse clock lags the precise
/// one by up to a tick) and returns its time.
#[inline]
fn set_peak_time(s: &SharedAtomics) -> u64 {
    let start = START_MONO_NS.load(Ordering::Relaxed);
    let coarse = clock::monotonic_coarse_ns().saturating_sub(start);
    let t = clock::peak_time(start, coarse).max(s.peak_time_ns.load(Ordering::Relaxed));
    s.peak_time_ns.store(t, Ordering::Relaxed);
    t
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
/// locked event (or when the profile is written). Timed as in exact mode (see
/// [`clock::peak_time`]).
#[cold]
fn new_peak(s: &SharedAtomics) {
    set_peak_time(s);
    s.peak_pending.store(1, Ordering::Release);
}

/// Periodic work, every few dozen events of a thread.
#[inline]
fn tick(t: Thread) {
    if t.tick() {
        keep_errno(crate::state::periodic);
    }
}

/// Set once some table queues its inserts (big enough for its lookups to miss in cache:
/// [`SizeTable::home_address`] answers): from then on frees prefetch their bucket (see
/// [`free_lookup_address`]). Small tables stay in cache, and asking
/// every free whether its table is big cost churn ~20 instructions per free.
static PREFETCH: AtomicBool = AtomicBool::new(false);

/// Where the free of `addr` will look first, worth prefetching ahead of the real free:
/// only when some table is big, and when the process has one thread (with threads the
/// table could move under a reader, and their frees come before the real free, so there
/// is nothing to overlap the miss with).
#[inline]
pub fn free_lookup_address(addr: u64) -> Option<usize> {
    if !PREFETCH.load(Ordering::Relaxed) || !threads::single() {
        return None;
    }
    shard(addr).lock_alone().table.home_address(addr)
}

/// An unsampled block of `size` bytes at `addr`; false when it does not pack into the
/// tables (the caller then hands it to the recorder).
#[inline]
pub fn alloc(t: Thread, addr: u64, size: u64) -> bool {
    insert(t, addr, size, true)
}

/// Puts back an unsampled block whose realloc failed (not a new allocation); false when
/// it does not pack.
pub fn restore(addr: u64, size: u64) -> bool {
    insert(Thread::current(), addr, size, false)
}

/// Enters a block in its table and the total (`new_allocation`: also in the run totals).
#[inline]
fn insert(t: Thread, addr: u64, size: u64, new_allocation: bool) -> bool {
    let Some(entry) = pack_size(addr, size) else {
        return false;
    };
    let single = threads::single();
    let lock = shard(addr);
    let mut g = lock.lock(t, single);
    if new_allocation {
        g.allocs += 1;
        g.alloc_bytes += size;
    }
    let stale = g.table.insert(entry).unwrap_or(0);
    // Only a table that queues its inserts answers: the block waits in its queue, and the
    // bucket it will enter starts loading.
    if let Some(line) = g.table.home_address(addr) {
        crate::state::prefetch(line);
        if !PREFETCH.load(Ordering::Relaxed) {
            PREFETCH.store(true, Ordering::Relaxed);
        }
    }
    let s = shared();
    if plain(s, single) {
        drop(g);
        let total = add_plain(s, size.wrapping_sub(stale));
        if size > stale {
            rose(s, total);
        }
        return true;
    }
    if size > stale {
        let rise = size - stale;
        let mut step = spend(s, &mut g, rise);
        if let Spent::NeedExact = step {
            // The block is in the table but not yet in the total: say so for a fork that
            // might come before it is (fork_prepare counts what shards owe).
            g.owed += rise;
            drop(g);
            let _hold = HoldExact::new();
            while let Spent::NeedExact = step {
                make_exact(s);
                let mut g = lock.lock(t, false);
                step = spend(s, &mut g, rise);
                if !matches!(step, Spent::NeedExact) {
                    // Saturating: a child forked from a signal handler that interrupted
                    // this loop starts with nothing owed, yet goes on here.
                    g.owed = g.owed.saturating_sub(rise);
                }
            }
        } else {
            drop(g);
        }
        if let Spent::Exact(total) = step {
            rose(s, total);
        }
    } else if stale > size {
        give(s, &mut g, stale - size);
    }
    true
}

/// A block is being freed: its size when it is an unsampled block of the tables.
///
/// Frees drive the periodic work of threads that record without the lock (timeline
/// points, snapshot requests): allocations need not, as every few hundred KiB of them one
/// is sampled and takes the lock, which does the same work.
///
/// Inlined into the `free` hook, table lookup included, so that the hook calls nothing on
/// its common path before its tail call to glibc's free: a call here would be one more
/// return address in the CPU's return stack, which a deep program needs for its own
/// returns (see `hooks::free`; churn_mt, sampled: CPU 1.27x -> 1.20x, churn 1.26x ->
/// 1.16x, every round lower).
#[inline(always)]
pub fn free(t: Thread, addr: u64) -> Option<u64> {
    let single = threads::single();
    let mut g = shard(addr).lock(t, single);
    let taken = g.table.take(addr)?;
    // With it goes any older block the table held at this address (a free we never saw).
    let gone = taken.size + taken.stale;
    let s = shared();
    if plain(s, single) {
        drop(g);
        add_plain(s, gone.wrapping_neg());
    } else {
        give(s, &mut g, gone);
        drop(g);
    }
    tick(t);
    Some(taken.size)
}

/// What [`spend`] did.
enum Spent {
    /// Counted without a new peak being possible.
    Lazily,
    /// Counted exactly: the total is now this.
    Exact(u64),
    /// The rise could pass the peak while shards hold credit: [`make_exact`], then again.
    NeedExact,
}

/// A rise of `rise` bytes in a shard (its lock held, threads exist): spends credit, takes
/// more, or adds to the total exactly (see [`LAZY`]).
#[inline]
fn spend(s: &SharedAtomics, d: &mut ShardData, rise: u64) -> Spent {
    if d.credit >= rise {
        d.credit -= rise;
        return Spent::Lazily;
    }
    // Credit is only ever held while lazy, so an exact total finds none here.
    let (step, credit) = raise_total(s, rise - d.credit, true);
    if let Spent::Lazily = step {
        d.credit = credit;
        d.credit_cap = 2 * credit;
    }
    step
}

/// Raises the total by `need` (threads exist); while lazy, only as long as that keeps it
/// below the peak, and with fresh credit for the caller's shard when `with_credit`
/// (returned with the step).
#[inline]
fn raise_total(s: &SharedAtomics, need: u64, with_credit: bool) -> (Spent, u64) {
    let mut w = s.total.load(Ordering::Relaxed);
    loop {
        if w & LAZY == 0 {
            return (add_exactly(s, need), 0);
        }
        let g = w & !LAZY;
        let peak = s.peak.load(Ordering::Relaxed);
        let Some(room) = peak.checked_sub(g + need).filter(|&r| r > 0) else {
            return (Spent::NeedExact, 0);
        };
        let credit = if with_credit { credit_for(room) } else { 0 };
        match s.total.compare_exchange_weak(
            w,
            w + need + credit,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                note_interval_max(g + need);
                return (Spent::Lazily, credit);
            }
            Err(now) => w = now,
        }
    }
}

/// The credit a shard takes when the total is `room` bytes below the peak: a share of it,
/// as several shards may take some (each grant leaves the rest of the room to the others,
/// so it only ever shrinks). On 4-thread churn, 1/8 makes 1% of events touch the shared
/// total (1/32: 4%, and measurably slower; 1/2: 7 times as many switches to exact).
#[inline]
fn credit_for(room: u64) -> u64 {
    (room / 8).min(MAX_CREDIT)
}

/// Adds `rise` to a total that was exact when last looked at. If it went lazy in the
/// meantime the addition stands when it keeps the total below the peak; otherwise it is
/// taken back (a moment's overstatement, which lazy accounting allows) and the caller
/// goes through [`make_exact`].
#[inline]
fn add_exactly(s: &SharedAtomics, rise: u64) -> Spent {
    let old = s.total.fetch_add(rise, Ordering::Relaxed);
    let total = (old & !LAZY) + rise;
    if old & LAZY == 0 {
        return Spent::Exact(total);
    }
    if total < s.peak.load(Ordering::Relaxed) {
        return Spent::Lazily;
    }
    s.total.fetch_sub(rise, Ordering::Relaxed);
    Spent::NeedExact
}

/// A fall of `fall` bytes in a shard (its lock held, threads exist): more credit while
/// the total is lazy (the excess goes back), else subtracted at once.
#[inline]
fn give(s: &SharedAtomics, d: &mut ShardData, fall: u64) {
    if d.credit == 0 && s.total.load(Ordering::Relaxed) & LAZY == 0 {
        subtract(s, fall);
        return;
    }
    // Lazy, and it stays so while this shard's lock is held.
    d.credit += fall;
    if d.credit > d.credit_cap {
        let w = s.total.load(Ordering::Relaxed);
        let room = s.peak.load(Ordering::Relaxed).saturating_sub(w & !LAZY);
        let keep = credit_for(room);
        d.credit_cap = 2 * keep;
        if d.credit > d.credit_cap {
            s.total.fetch_sub(d.credit - keep, Ordering::Relaxed);
            d.credit = keep;
        }
    }
}

/// Takes `fall` bytes off the total at once (threads exist; right lazy or not), letting
/// it go lazy when that leaves an exact total well below the peak.
#[inline]
fn subtract(s: &SharedAtomics, fall: u64) {
    let old = s.total.fetch_sub(fall, Ordering::Relaxed);
    if old & LAZY == 0 {
        maybe_go_lazy(s, old - fall);
    }
}

/// An exact total of `total` that is well below the peak lets shards take credit again.
#[inline]
fn maybe_go_lazy(s: &SharedAtomics, total: u64) {
    if total.saturating_add(LAZY_BELOW_PEAK) < s.peak.load(Ordering::Relaxed)
        && EXACT_WANTED.load(Ordering::Relaxed) == 0
    {
        // Fails harmlessly when the total moved on meanwhile (the next event retries).
        let _ = s
            .total
            .compare_exchange(total, total | LAZY, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Makes the shared total exact: takes every shard's lock (none may be held by the
/// caller), subtracts their credit and clears [`LAZY`]. Rare: only near the peak.
#[cold]
#[inline(never)]
fn make_exact(s: &SharedAtomics) {
    drop(make_exact_holding(s));
}

/// [`make_exact`], handing back every shard's guard: while they are held, no table event
/// can count, so the caller can read or move the totals whole.
fn make_exact_holding(s: &SharedAtomics) -> AllLocked<'static, ShardData, SHARD_COUNT> {
    let mut all = biased::lock_all(&SHARDS, Thread::current());
    if s.total.load(Ordering::Relaxed) & LAZY != 0 {
        let credit = take_all_credit(all.iter_mut());
        s.total
            .fetch_sub(credit.wrapping_add(LAZY), Ordering::Relaxed);
        EXACT_SWITCHES.fetch_add(1, Ordering::Relaxed);
    }
    all
}

/// Zeroes the shards' credit and returns its sum (every shard's lock held, so that no
/// event is between reading the flag and moving credit).
fn take_all_credit<'a>(shards: impl Iterator<Item = &'a mut ShardData>) -> u64 {
    shards
        .map(|d| {
            d.credit_cap = 0;
            core::mem::take(&mut d.credit)
        })
        .sum()
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
/// Returns the exact total it took the process to, for `--limit` (0 when it did not
/// count exactly: a fall, or a rise far below the peak).
#[inline]
pub fn after_locked(rec: &mut Recorder<MappedStore>, delta: u64) -> u64 {
    if delta == 0 {
        return 0;
    }
    let s = shared();
    let no_threads = plain(s, threads::single());
    if (delta as i64) < 0 {
        if no_threads {
            add_plain(s, delta);
        } else {
            subtract(s, delta.wrapping_neg());
        }
        return 0;
    }
    let total = if no_threads {
        add_plain(s, delta)
    } else {
        let mut hold = None;
        loop {
            match raise_total(s, delta, false).0 {
                Spent::Lazily => return 0,
                Spent::Exact(total) => break total,
                // The profiler's lock comes before the shards' (as in fork and writes).
                Spent::NeedExact => {
                    hold.get_or_insert_with(HoldExact::new);
                    make_exact(s);
                }
            }
        }
    };
    note_interval_max(total);
    if raise_peak(s, total) {
        // The lock is held: the sites include this event, so they are the peak state now.
        let t = set_peak_time(s);
        rec.mark_peak(total, t);
    }
    total
}

/// The whole total now; while lazy, plus the shards' unspent credit (up to 1/4 of the
/// room below the peak per shard in use, and at most 128 KiB each).
#[inline]
pub fn total() -> u64 {
    shared().total.load(Ordering::Relaxed) & !LAZY
}

/// [`total`], but never above the peak, which the true total never passes: the bound to
/// compare with `--limit` and to start a timeline interval from.
#[inline]
pub fn bounded_total() -> u64 {
    total().min(shared().peak.load(Ordering::Relaxed))
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
    // Never above the peak: `rose` skips totals that do not pass the interval maximum, so
    // one above the peak would hide the next peak. (The word can pass it for a moment: a
    // thread between its add and raising the peak, or credit while lazy.)
    let total = bounded_total();
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
    // Exact at this moment, and nothing counts while the shards are read (other threads
    // may make the total lazy again once they are released).
    let all = make_exact_holding(s);
    profile.meta.peak_bytes = s.peak.load(Ordering::Relaxed);
    profile.meta.peak_time_ns = s.peak_time_ns.load(Ordering::Relaxed);
    profile.meta.final_bytes = total();
    for g in all.iter() {
        profile.meta.total_allocs += g.allocs;
        profile.meta.total_alloc_bytes += g.alloc_bytes;
    }
}

/// The recorder's part plus the tables' must be the shared total (stress tests; at exit).
/// Ok: a note on how often the total went from lazy to exact.
pub fn check_consistency(rec_total: u64) -> Result<String, String> {
    let all = make_exact_holding(shared());
    let tables: u64 = all.iter().map(|g| g.table.bytes()).sum();
    let total = total();
    drop(all);
    if rec_total.wrapping_add(tables) != total {
        return Err(format!(
            "shared total {total} != recorder {rec_total} + unsampled tables {tables}"
        ));
    }
    let peak = shared().peak.load(Ordering::Relaxed);
    if peak < total {
        return Err(format!("shared peak {peak} < total {total}"));
    }
    Ok(format!(
        " (lazy total: {} switches to exact)",
        EXACT_SWITCHES.load(Ordering::Relaxed)
    ))
}

/// The total at the moment of a fork, for the child (see [`fork_prepare`]).
static AT_FORK: AtomicU64 = AtomicU64::new(0);

/// Fork: hold every shard's lock across it (after the profiler's: the same order as
/// writing a profile, which reads the shards under the profiler's lock), and note the
/// total, which cannot change while those locks are held: the child cannot read it from
/// the shared mapping after the fork, where the parent goes on counting.
pub fn fork_prepare() {
    let (mut credit, mut owed) = (0, 0);
    let all = biased::lock_all(&SHARDS, Thread::current());
    for g in all.iter() {
        credit += g.credit;
        owed += g.owed;
    }
    core::mem::forget(all);
    if on() {
        let s = shared();
        let total = s.total.load(Ordering::Relaxed) & !LAZY;
        AT_FORK.store(total - credit + owed, Ordering::Relaxed);
    }
}

/// In a forked child that has no files of its own yet: whether its total ever went above
/// what it inherited (its unsampled blocks count without reaching the recorder, so the
/// recorder cannot tell). False when sampled mode is off.
pub fn child_rose_since_fork() -> bool {
    on() && FALLBACK.peak.load(Ordering::Relaxed) > AT_FORK.load(Ordering::Relaxed)
}

/// Fork, in the parent: release what [`fork_prepare`] took.
pub fn fork_parent() {
    AllLocked::release_forgotten(&SHARDS);
}

/// Fork, in the child: the thread that held the locks is this one. The live file's
/// mapping is still shared with the parent, so until the child has files of its own
/// ([`rebind`]) its totals go to private memory. Its total starts exact: the credit the
/// parent's shards held is not in it, and its own shards start with none.
pub fn fork_child(start_mono_ns: u64) {
    for sh in &SHARDS {
        sh.reset_after_fork();
        let mut g = sh.lock_alone();
        g.credit = 0;
        g.credit_cap = 0;
        // Counted in the child's total already (the thread that owed it is not here).
        g.owed = 0;
    }
    // Nor are threads that waited to count a rise exactly: they must not keep the child's
    // total from ever going lazy.
    EXACT_WANTED.store(0, Ordering::Relaxed);
    if on() {
        // Its peak history starts at the fork, from what it holds: not the parent's peak,
        // which would hide the child's own until its first locked event rebinds it (nor
        // the interval maximum, which filters rises, above that).
        let inherited = AT_FORK.load(Ordering::Relaxed);
        FALLBACK.total.store(inherited, Ordering::Relaxed);
        FALLBACK.peak.store(inherited, Ordering::Relaxed);
        FALLBACK.peak_time_ns.store(0, Ordering::Relaxed);
        FALLBACK.peak_pending.store(0, Ordering::Relaxed);
        INTERVAL_MAX.store(inherited, Ordering::Relaxed);
        // Peaks it reaches before it has files of its own are timed from its fork.
        START_MONO_NS.store(start_mono_ns, Ordering::Relaxed);
        bind(core::ptr::null_mut());
    }
}
