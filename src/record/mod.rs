//! Pure bookkeeping of a profiled process: the live set, interned stacks, per-stack bytes,
//! the exact snapshot at the peak and a bounded timeline.
//!
//! Takes `(address, size, stack)` events and knows nothing of hooks, threads or files: the
//! preload serializes calls into it, and tests drive it directly.

mod lane;
mod live;
mod maps;
mod peak;
mod queued;
mod size_table;
mod stacks;
mod swar;
mod tag_queue;
mod timeline;

#[cfg(test)]
mod map_model;
#[cfg(test)]
mod proptests;

pub use lane::{Change, Lane, LaneFree, MAX_BUDGET, MIN_BUDGET};
pub use live::{AddrHasher, LiveAlloc, LiveHeap, Release};
pub use maps::{
    mremap_refused, munmap_check, LiveMaps, MunmapCheck, Region, MREMAP_DONTUNMAP, MREMAP_FIXED,
    MREMAP_MAYMOVE,
};
pub use peak::{PeakTracker, Site, SiteStore, Totals, VecStore};
pub use size_table::{pack as pack_size, SizeTable, Taken};
pub use stacks::{slot_address, stack_hash, StackId, StackTable};
pub use timeline::Timeline;

#[cfg(test)]
mod lane_tests;
#[cfg(test)]
mod sampling_tests;

use crate::format::{Meta, Module, Profile, SiteBytes, Stack};
use queued::QueuedHeap;

/// The recorder of one process.
#[derive(Debug, Default)]
pub struct Recorder<S: SiteStore = VecStore> {
    stacks: StackTable,
    heap: QueuedHeap,
    maps: LiveMaps,
    sites: PeakTracker<S>,
    timeline: Timeline,
    total_allocs: u64,
    total_alloc_bytes: u64,
    sampling: Option<Sampling>,
    /// A timeline point was started since the last [`Recorder::take_new_point`].
    new_point: bool,
    /// Threads' lanes may hold changes back (see [`lane`]).
    holding: bool,
    /// The lanes' budgets together: the total plus this stays below the peak.
    budgets: u64,
    /// Which allocations through the recorder look for a stale block in the other live
    /// maps (see [`Self::lane_alloc`]).
    dice: queued::Dice,
}

/// One in this many allocations through the recorder with lanes also looks in the other
/// live maps for a block at the same address (a power of two; see [`Recorder::lane_alloc`]).
pub const OTHER_MAPS_ONE_IN: u32 = 16;

/// The threads' lanes, as the recorder's caller keeps them (one lock each in the preload):
/// the recorder absorbs them and frees their blocks through this.
pub trait Lanes {
    /// Lanes exist at indices below this.
    fn count(&self) -> usize;
    /// Lanes whose thread may hold changes back (the room below the peak is shared among
    /// them).
    fn owned(&self) -> u64;
    /// Runs `f` on lane `i` (with that lane's lock held); `None` when it does not exist.
    fn with<R>(&self, i: usize, f: impl FnOnce(&mut Lane) -> R) -> Option<R>;
    /// Tells the lanes' threads whether they may hold changes back from now on. Stopping
    /// is published before any lane is absorbed, so none holds back more after it.
    fn publish(&self, holding: bool);
    /// Whether a free may have been missed (a block whose free the hooks never saw may
    /// still be counted, in any map): allocations that reach a new peak then look for one
    /// at their address in every map first.
    fn stale_possible(&self) -> bool;
}

/// Sampled mode: which stack stands for "not sampled", and the mean sampling interval.
#[derive(Debug, Clone, Copy)]
struct Sampling {
    rate: u64,
    unsampled: StackId,
}

/// The estimated bytes a sampled block of `size` stands for: it was sampled with
/// probability `1 - exp(-size / rate)`, so it counts `size` divided by that (the
/// Horvitz-Thompson estimate tcmalloc and jemalloc use). Large blocks count about their
/// size; small ones about `rate`.
pub fn sample_weight(size: u64, rate: u64) -> u64 {
    if size == 0 || rate == 0 {
        return size;
    }
    let p = -libm::expm1(-(size as f64) / rate as f64);
    (size as f64 / p).round() as u64
}

impl Recorder<VecStore> {
    /// A recorder with nothing live, counters in ordinary memory.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S: SiteStore> Recorder<S> {
    /// A recorder whose per-stack counters live in `store`.
    pub fn with_store(store: S) -> Self {
        Self {
            stacks: StackTable::new(),
            heap: QueuedHeap::new(),
            maps: LiveMaps::new(),
            sites: PeakTracker::with_store(store),
            timeline: Timeline::default(),
            total_allocs: 0,
            total_alloc_bytes: 0,
            sampling: None,
            new_point: false,
            holding: false,
            budgets: 0,
            dice: queued::Dice::new(0x2545_f491),
        }
    }

    /// Lets the live map's growths hand the old table back as they go: see
    /// [`LiveHeap::set_release`].
    pub fn set_release(&mut self, release: Release) {
        self.heap.set_release(release);
    }

    /// Hands the total, the peak and the timeline to the caller, which sees events this
    /// recorder does not (sampled mode's unsampled blocks, counted in atomics without a
    /// lock). The recorder's [`Self::total`] then counts only its own events; the caller
    /// calls [`Self::mark_peak`] when the whole reaches a new peak, and
    /// [`Self::observe_external`] for the timeline.
    pub fn set_external_peak(&mut self) {
        self.sites.set_external_peak();
    }

    /// With an external peak: the state now is the state at a new peak of `peak` bytes,
    /// reached at `now_ns`.
    pub fn mark_peak(&mut self, peak: u64, now_ns: u64) {
        self.sites.mark_peak(peak, now_ns);
    }

    /// With an external peak: the whole total was at most `max_bytes` since the last
    /// call, and is `bytes` now.
    pub fn observe_external(&mut self, now_ns: u64, max_bytes: u64, bytes: u64) {
        if self.timeline.observe(now_ns, max_bytes, 0) {
            self.new_point = true;
        }
        self.timeline.observe(now_ns, bytes, 0);
    }

    /// Whether a timeline point started since the last call: the caller may then sample
    /// the process's RSS (a system call, so not on every event) and pass it to
    /// [`Self::note_rss`].
    #[inline]
    pub fn take_new_point(&mut self) -> bool {
        core::mem::take(&mut self.new_point)
    }

    /// Records the process's resident set size now: into the timeline and the highest seen
    /// (which survives in the live counters when the process is killed).
    pub fn note_rss(&mut self, rss_bytes: u64) {
        self.timeline.note_rss(rss_bytes);
        let t = self.sites.store_mut().totals_mut();
        t.peak_rss = t.peak_rss.max(rss_bytes);
    }

    /// Switches to sampled mode: heap blocks recorded with the stack `unsampled` count in
    /// the total only, and the others count their estimated weight at their stack.
    pub fn set_sampling(&mut self, rate: u64, unsampled: StackId) {
        self.sampling = (rate > 0).then_some(Sampling { rate, unsampled });
    }

    /// The site share of a heap block: its stack and the bytes it stands for there.
    #[inline]
    fn share(&self, stack: StackId, size: u64) -> Option<(u32, u64)> {
        match self.sampling {
            None => Some((stack, size)),
            Some(s) if s.unsampled == stack => None,
            Some(s) => Some((stack, sample_weight(size, s.rate))),
        }
    }

    /// The id of a stack (return addresses, innermost first).
    pub fn intern(&mut self, frames: &[u64]) -> StackId {
        self.stacks.intern(frames)
    }

    /// The id of a stack, and whether it was seen for the first time.
    pub fn intern_new(&mut self, frames: &[u64]) -> (StackId, bool) {
        self.intern_new_hashed(frames, None)
    }

    /// [`Self::intern_new`] with the stack's hash when the caller has it ([`stack_hash`]).
    pub fn intern_new_hashed(&mut self, frames: &[u64], hash: Option<u64>) -> (StackId, bool) {
        let before = self.stacks.len();
        let id = self.stacks.intern_maybe_hashed(frames, hash);
        (id, self.stacks.len() > before)
    }

    /// The counters (and through them the store).
    pub fn tracker(&self) -> &PeakTracker<S> {
        &self.sites
    }

    /// The counters, for replacing their backing store (fork).
    pub fn tracker_mut(&mut self) -> &mut PeakTracker<S> {
        &mut self.sites
    }

    /// Starts the timeline afresh (a forked child's clock starts at the fork).
    pub fn reset_timeline(&mut self) {
        self.timeline = Timeline::default();
    }

    /// Makes the current state the peak (a forked child starts its own history).
    pub fn restart_peak(&mut self, now_ns: u64) {
        self.sites.restart_peak(now_ns);
    }

    /// The interned stacks.
    pub fn stacks(&self) -> &StackTable {
        &self.stacks
    }

    /// Mutable access to the interned stacks, for callers that hash frames themselves.
    pub fn stacks_mut(&mut self) -> &mut StackTable {
        &mut self.stacks
    }

    /// Tracked bytes live now.
    pub fn total(&self) -> u64 {
        self.sites.total()
    }

    /// The highest total so far.
    pub fn peak(&self) -> u64 {
        self.sites.peak()
    }

    /// When the peak was reached (the `now_ns` of the event that reached it).
    pub fn peak_time_ns(&self) -> u64 {
        self.sites.totals().peak_time_ns
    }

    /// Refines the time of the current peak: events carry a cheap coarse clock, and the
    /// caller may read a precise one only when an event raised the peak.
    pub fn set_peak_time(&mut self, now_ns: u64) {
        self.sites.store_mut().totals_mut().peak_time_ns = now_ns;
    }

    /// The bounded timeline so far.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// Number of live heap blocks and mapping pieces.
    pub fn live_count(&self) -> u64 {
        self.sites.live_count()
    }

    #[inline]
    fn observe(&mut self, now_ns: u64) {
        // With an external peak the caller feeds the timeline (with the whole total).
        if !self.sites.external_peak() && self.timeline.observe(now_ns, self.sites.total(), 0) {
            self.new_point = true;
        }
    }

    /// Inlined: out of line it was a call with a 7-register prologue on every allocation
    /// (inlined, cachegrind: sqlite3 -14 M instructions, cc1 -14 M, jq -9 M).
    #[inline(always)]
    fn allocated(&mut self, share: Option<(u32, u64)>, size: u64, now_ns: u64) {
        self.total_allocs += 1;
        self.total_alloc_bytes += size;
        self.sites.add_allocation(share, size, now_ns);
        self.observe(now_ns);
    }

    #[inline(always)]
    fn drop_block(&mut self, block: LiveAlloc) {
        let share = self.share(block.stack, block.size);
        self.sites.remove_parts(share, block.size, true);
    }

    /// A heap block of `size` bytes was allocated at `addr` by `stack`. Out of line: the
    /// preload's closure around it spilled more with it inlined (sqlite3: +0.4%
    /// instructions).
    #[inline(never)]
    pub fn on_alloc(&mut self, addr: u64, size: u64, stack: StackId, now_ns: u64) {
        // The recorder's own map named directly, not through on_alloc_in's choice of map:
        // that choice kept the map's insert out of line on the single-threaded path
        // (sqlite3: +1.7% instructions).
        let stale = self.heap.insert(addr, LiveAlloc { size, stack });
        self.allocated_at(stale, size, stack, now_ns);
    }

    /// [`Self::on_alloc`] into `lane`'s live map (`None`: the recorder's own), with the
    /// counters changed at once.
    #[inline]
    fn on_alloc_in(
        &mut self,
        lane: Option<&mut Lane>,
        addr: u64,
        size: u64,
        stack: StackId,
        now_ns: u64,
    ) {
        let block = LiveAlloc { size, stack };
        let stale = match lane {
            Some(l) => l.heap.insert(addr, block),
            None => self.heap.insert(addr, block),
        };
        self.allocated_at(stale, size, stack, now_ns);
    }

    /// The counters' side of a new block, once its map handed back `stale`.
    #[inline(always)]
    fn allocated_at(&mut self, stale: Option<LiveAlloc>, size: u64, stack: StackId, now_ns: u64) {
        if let Some(old) = stale {
            // A free we never saw (e.g. an allocator-internal path): drop the stale block
            // so the same bytes are not counted twice (it may be another address's: the
            // map hands stale blocks back when they meet their successor in its table).
            self.drop_block(old);
        }
        let share = self.share(stack, size);
        self.allocated(share, size, now_ns);
    }

    /// Puts back a block whose `realloc` failed: it was removed before the call and is
    /// still live, so it is not a new allocation.
    pub fn restore(&mut self, addr: u64, block: LiveAlloc, now_ns: u64) {
        if let Some(old) = self.heap.insert(addr, block) {
            self.drop_block(old);
        }
        let share = self.share(block.stack, block.size);
        self.sites.add_parts(share, block.size, true, now_ns);
    }

    /// The heap block at `addr` was freed. Returns what it was, or `None` for an address
    /// the recorder never saw (allocated before profiling started, or by another path).
    #[inline]
    pub fn on_free(&mut self, addr: u64, now_ns: u64) -> Option<LiveAlloc> {
        // The recorder's own map named directly, as in on_alloc.
        let removed = self.heap.remove(addr)?;
        Some(self.freed(removed, now_ns))
    }

    /// [`Self::on_free`] from `lane`'s live map (`None`: the recorder's own).
    #[inline]
    fn on_free_in(&mut self, lane: Option<&mut Lane>, addr: u64, now_ns: u64) -> Option<LiveAlloc> {
        let removed = match lane {
            Some(l) => l.heap.remove(addr),
            None => self.heap.remove(addr),
        }?;
        Some(self.freed(removed, now_ns))
    }

    /// The counters' side of a free, once its map handed the block back.
    #[inline(always)]
    fn freed(&mut self, removed: queued::Removed, now_ns: u64) -> LiveAlloc {
        self.drop_block(removed.block);
        if let Some(stale) = removed.stale {
            self.drop_block(stale);
        }
        self.observe(now_ns);
        removed.block
    }

    /// Whether lanes may hold changes back now (the caller publishes it to its threads
    /// through [`Lanes::publish`], which this calls whenever it changes).
    pub fn lanes_holding(&self) -> bool {
        self.holding
    }

    /// Bytes below the peak not yet promised: the total, the lanes' budgets and `extra`
    /// taken away (0 when they reach it).
    fn room(&self, extra: u64) -> u64 {
        let used = self
            .total()
            .saturating_add(self.budgets)
            .saturating_add(extra);
        self.peak().saturating_sub(used)
    }

    /// Applies `lane`'s held-back changes to the counters and takes its budget back (no
    /// peak check: the total plus the budgets does not grow, see [`Lane`]).
    pub fn absorb(&mut self, lane: &mut Lane, now_ns: u64) {
        if self.absorb_quietly(lane) {
            self.observe(now_ns);
        }
    }

    /// [`Self::absorb`] without a timeline observation; whether there was anything.
    fn absorb_quietly(&mut self, lane: &mut Lane) -> bool {
        debug_assert!(lane.budget <= self.budgets, "a budget not counted");
        self.budgets -= lane.budget.min(self.budgets);
        lane.budget = 0;
        if !lane.holds_changes() {
            return false;
        }
        debug_assert!(self.sampling.is_none(), "lanes are for exact mode");
        let (sites, allocs, alloc_bytes) = (
            &mut self.sites,
            &mut self.total_allocs,
            &mut self.total_alloc_bytes,
        );
        lane.drain(|c| {
            *allocs += c.alloc_count;
            *alloc_bytes += c.alloc_bytes;
            sites.apply_change(c);
        });
        true
    }

    /// Stops lanes holding changes back and absorbs them all: from here on every event is
    /// the recorder's, in order, and the counters are current.
    pub fn stop_holding(&mut self, lanes: &impl Lanes, now_ns: u64) {
        if !self.holding {
            return;
        }
        self.holding = false;
        lanes.publish(false);
        // The timeline sees the total once all are in: between two lanes it may be above
        // the true total (a lane not yet in may hold frees).
        for i in 0..lanes.count() {
            lanes.with(i, |l| self.absorb_quietly(l));
        }
        self.observe(now_ns);
    }

    /// Before the recorder adds `extra` bytes itself: stops holding (absorbing every lane)
    /// unless the total, the budgets and `extra` stay below the peak. Until every lane is
    /// absorbed, the true total stays below the peak: each lane adds at most its budget.
    fn keep_room(&mut self, lanes: &impl Lanes, extra: u64, now_ns: u64) {
        if self.holding && self.room(extra) == 0 {
            self.stop_holding(lanes, now_ns);
        }
    }

    /// Lets lanes hold changes back again once the room below the peak is worth sharing
    /// ([`MIN_BUDGET`] four times over per lane, so that holding does not flip at every
    /// event), and grants lane `mine` its budget: a share of the room (half of it, split
    /// among the lanes), at most [`MAX_BUDGET`].
    pub fn maybe_hold(&mut self, lanes: &impl Lanes, mine: Option<usize>) {
        let n = lanes.owned();
        if n == 0 || self.sampling.is_some() || self.sites.external_peak() {
            return;
        }
        if !self.holding && self.room(0) >= n.saturating_mul(4 * MIN_BUDGET) {
            self.holding = true;
            lanes.publish(true);
        }
        let Some(i) = mine.filter(|_| self.holding) else {
            return;
        };
        let share = (self.room(0) / 2 / n).min(MAX_BUDGET);
        if share >= MIN_BUDGET {
            lanes.with(i, |l| {
                if l.budget == 0 {
                    l.budget = share;
                    self.budgets += share;
                }
            });
        }
    }

    /// An allocation a lane could not hold back (or made while lanes do not hold), on the
    /// thread of lane `mine` (`None`: a thread without one): the lane's changes go in
    /// first, then the block, into the lane's live map.
    pub fn lane_alloc(
        &mut self,
        lanes: &impl Lanes,
        mine: Option<usize>,
        addr: u64,
        size: u64,
        stack: StackId,
        now_ns: u64,
    ) {
        if let Some(i) = mine {
            lanes.with(i, |l| self.absorb(l, now_ns));
        }
        // The map the block goes to drops a stale block at its address itself (its insert
        // hands it back); the others are asked now and then, and always before a new peak
        // once a free may have been missed, so that no stale block is in a peak's counters.
        let target = mine.filter(|&i| i < lanes.count());
        let new_peak = self.total().saturating_add(size) > self.peak();
        if self.dice.roll(OTHER_MAPS_ONE_IN - 1) || (new_peak && lanes.stale_possible()) {
            self.drop_elsewhere(lanes, target, addr, now_ns);
        }
        self.keep_room(lanes, size, now_ns);
        let done = target
            .and_then(|i| lanes.with(i, |l| self.on_alloc_in(Some(l), addr, size, stack, now_ns)));
        if done.is_none() {
            self.on_alloc_in(None, addr, size, stack, now_ns);
        }
        self.maybe_hold(lanes, mine);
    }

    /// A block at `addr` is going into lane `mine`'s map (`None`: the recorder's): drops
    /// an older one at the same address from every other map. Each map drops its own stale
    /// blocks when the address comes back to it; one whose free was missed on another
    /// thread than the one that reuses the address sits in another map, and without this
    /// would stay counted (and be the one a later free finds). Asked at random, not on
    /// every allocation: it takes every lane's lock, and missed frees are rare.
    fn drop_elsewhere(&mut self, lanes: &impl Lanes, mine: Option<usize>, addr: u64, now_ns: u64) {
        if mine.is_some() {
            self.on_free_in(None, addr, now_ns);
        }
        for j in (0..lanes.count()).filter(|&j| Some(j) != mine) {
            lanes.with(j, |l| self.take_from_lane(l, addr, now_ns));
        }
    }

    /// Frees the block at `addr` from another thread's lane, if it holds one: the lane is
    /// absorbed first, so its counters never go below what is live.
    fn take_from_lane(&mut self, lane: &mut Lane, addr: u64, now_ns: u64) -> Option<LiveAlloc> {
        lane.heap.get(addr)?;
        self.absorb(lane, now_ns);
        self.on_free_in(Some(lane), addr, now_ns)
    }

    /// A free a lane could not hold back, on the thread of lane `mine`: the block is looked
    /// for in that lane, in the recorder's own map, then in every other lane (a block freed
    /// by another thread than the one that allocated it). A lane is absorbed before a block
    /// leaves it, so the counters never go below what is live (absorbing needs no check of
    /// the room: it moves at most a budget into the total and takes the budget back).
    pub fn lane_free(
        &mut self,
        lanes: &impl Lanes,
        mine: Option<usize>,
        addr: u64,
        now_ns: u64,
    ) -> Option<LiveAlloc> {
        let mut found = None;
        if let Some(i) = mine {
            found = lanes
                .with(i, |l| {
                    self.absorb(l, now_ns);
                    self.on_free_in(Some(l), addr, now_ns)
                })
                .flatten();
        }
        if found.is_none() {
            found = self.on_free_in(None, addr, now_ns);
        }
        if found.is_none() {
            found = (0..lanes.count())
                .filter(|&j| Some(j) != mine)
                .find_map(|j| lanes.with(j, |l| self.take_from_lane(l, addr, now_ns))?);
        }
        self.maybe_hold(lanes, mine);
        found
    }

    /// Absorbs lane `i`, whose thread gives it up (it ends): its budget comes back.
    pub fn release_lane(&mut self, lanes: &impl Lanes, i: usize, now_ns: u64) {
        lanes.with(i, |l| self.absorb(l, now_ns));
    }

    /// The live map's slot array, `(address, slots)`: see [`LiveHeap::home_byte_offset`].
    #[inline]
    pub fn live_table(&self) -> (usize, usize) {
        self.heap.table()
    }

    /// Whether a free's slot in the live table is worth prefetching: whether most recent
    /// frees found their block in the table rather than in the insert queue in front of
    /// it (a count the live map keeps, saturating at 16 either way).
    #[inline]
    pub fn frees_reach_table(&self) -> bool {
        self.heap.frees_reach_table()
    }

    /// The heap block at `addr`, if live.
    pub fn heap_block(&self, addr: u64) -> Option<LiveAlloc> {
        self.heap.get(addr)
    }

    fn account_unmapped(&mut self, removed: &[Region], kept: &[Region], now_ns: u64) {
        // A touched region goes as a whole and the pieces that remain of it come back as
        // allocations of their own. Removals come first so the total never passes through a
        // value it did not really have (and so can never fake a new peak).
        for r in removed {
            self.sites.remove(r.stack, r.len(), true);
        }
        for r in kept {
            self.sites.add(r.stack, r.len(), true, now_ns);
        }
    }

    /// An anonymous mapping `[addr, addr + len)` was made by `stack`.
    pub fn on_mmap(&mut self, addr: u64, len: u64, stack: StackId, now_ns: u64) {
        let end = addr.saturating_add(len);
        let (removed, kept) = self.maps.insert(Region {
            start: addr,
            end,
            stack,
        });
        self.account_unmapped(&removed, &kept, now_ns);
        self.allocated(Some((stack, len)), len, now_ns);
    }

    /// `[addr, addr + len)` was unmapped; only the tracked parts of it count.
    pub fn on_munmap(&mut self, addr: u64, len: u64, now_ns: u64) {
        let (removed, kept) = self.maps.remove_range(addr, addr.saturating_add(len));
        if removed.is_empty() {
            return;
        }
        self.account_unmapped(&removed, &kept, now_ns);
        self.observe(now_ns);
    }

    /// Removes the tracked parts of `[addr, addr + len)` and returns them, cut to the range
    /// (an `mremap` in progress: they come back through [`Self::restore_region`] if it fails).
    pub fn take_range(&mut self, addr: u64, len: u64, now_ns: u64) -> Vec<Region> {
        let end = addr.saturating_add(len);
        let (removed, kept) = self.maps.remove_range(addr, end);
        if removed.is_empty() {
            return removed;
        }
        self.account_unmapped(&removed, &kept, now_ns);
        self.observe(now_ns);
        removed
            .into_iter()
            .map(|r| Region {
                start: r.start.max(addr),
                end: r.end.min(end),
                stack: r.stack,
            })
            .collect()
    }

    /// Puts back a mapping piece taken by [`Self::take_range`]; not a new allocation.
    pub fn restore_region(&mut self, region: Region, now_ns: u64) {
        let (removed, kept) = self.maps.insert(region);
        self.account_unmapped(&removed, &kept, now_ns);
        self.sites.add(region.stack, region.len(), true, now_ns);
    }

    /// Whether `[addr, addr + len)` overlaps a tracked mapping.
    pub fn maps_overlap(&self, addr: u64, len: u64) -> bool {
        let end = addr.saturating_add(len);
        self.maps.iter().any(|r| r.start < end && addr < r.end)
    }

    /// The profile of this process: the peak snapshot, what is live now, and the stacks
    /// they reference (renumbered densely, so unused stacks cost nothing on disk).
    pub fn to_profile(&self, meta: Meta, modules: Vec<Module>) -> Profile {
        let peak: Vec<(u32, u64, u64)> = self.sites.at_peak().collect();
        let now: Vec<(u32, u64, u64)> = self.sites.current().collect();
        let allocated: Vec<(u32, u64, u64)> = self.sites.allocated().collect();
        let mut remap: std::collections::HashMap<u32, u32> = Default::default();
        let mut stacks = Vec::new();
        let mut site = |&(id, bytes, count): &(u32, u64, u64)| {
            let next = remap.len() as u32;
            let stack = *remap.entry(id).or_insert_with(|| {
                stacks.push(Stack {
                    frames: self.stacks.frames(id).to_vec(),
                });
                next
            });
            SiteBytes {
                stack,
                bytes,
                count,
            }
        };
        let peak: Vec<SiteBytes> = peak.iter().map(&mut site).collect();
        let exit: Vec<SiteBytes> = now.iter().map(&mut site).collect();
        let allocs: Vec<SiteBytes> = allocated.iter().map(&mut site).collect();
        let mut meta = meta;
        meta.peak_bytes = self.peak();
        meta.peak_time_ns = self.peak_time_ns();
        meta.final_bytes = self.total();
        meta.total_allocs = self.total_allocs;
        meta.total_alloc_bytes = self.total_alloc_bytes;
        Profile {
            meta,
            modules,
            stacks,
            peak,
            exit,
            allocs,
            timeline: self.timeline.points().to_vec(),
        }
    }

    /// Checks the recorder's invariants: the total equals the sum of live blocks and
    /// mappings, and per-stack counters agree with the live set. Used by stress tests.
    pub fn check_consistency(&self) -> Result<(), String> {
        self.check_consistency_with(&[])
    }

    /// [`Self::check_consistency`] with blocks in `lanes` too: the counters plus the
    /// lanes' held-back changes must agree with every live block.
    pub fn check_consistency_with(&self, lanes: &[&Lane]) -> Result<(), String> {
        let mut per_stack: std::collections::HashMap<u32, (u64, u64)> = Default::default();
        let mut live_total = 0u64;
        let mut held: std::collections::HashMap<u32, (i64, i64)> = Default::default();
        let mut held_total = 0i64;
        for lane in lanes {
            for c in lane.changes() {
                let e = held.entry(c.stack).or_default();
                e.0 += c.bytes;
                e.1 += c.count;
                held_total += c.bytes;
            }
        }
        let blocks = lanes.iter().flat_map(|l| l.blocks());
        for (_, a) in self.heap.iter().chain(blocks) {
            live_total += a.size;
            if let Some((stack, weight)) = self.share(a.stack, a.size) {
                let e = per_stack.entry(stack).or_default();
                e.0 += weight;
                e.1 += 1;
            }
        }
        for r in self.maps.iter() {
            live_total += r.len();
            let e = per_stack.entry(r.stack).or_default();
            e.0 += r.len();
            e.1 += 1;
        }
        let counted = self.total() as i64 + held_total;
        if live_total as i64 != counted {
            return Err(format!(
                "total {} (+ {held_total} held in lanes) != sum of live allocations {}",
                self.total(),
                live_total
            ));
        }
        let counters: std::collections::HashMap<u32, (u64, u64)> = self
            .sites
            .current()
            .map(|(id, bytes, count)| (id, (bytes, count)))
            .collect();
        let mut ids: Vec<u32> = counters.keys().chain(held.keys()).copied().collect();
        ids.extend(per_stack.keys().copied());
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let want = per_stack.get(&id).copied().unwrap_or_default();
            let (bytes, count) = counters.get(&id).copied().unwrap_or_default();
            let h = held.get(&id).copied().unwrap_or_default();
            let with_held = (bytes as i64 + h.0, count as i64 + h.1);
            if with_held != (want.0 as i64, want.1 as i64) {
                return Err(format!(
                    "stack {id}: counters say {bytes} bytes in {count} blocks (lanes hold {h:?} more), live set says {} in {}",
                    want.0, want.1
                ));
            }
        }
        if self.peak() < self.total() {
            return Err(format!("peak {} < total {}", self.peak(), self.total()));
        }
        let granted: u64 = lanes.iter().map(|l| l.budget()).sum();
        if !lanes.is_empty() && granted != self.budgets {
            return Err(format!(
                "lanes hold budgets of {granted} bytes, the recorder counts {}",
                self.budgets
            ));
        }
        if self.holding && self.total().saturating_add(self.budgets) >= self.peak() {
            return Err(format!(
                "lanes hold with total {} + budgets {} at peak {}",
                self.total(),
                self.budgets,
                self.peak()
            ));
        }
        Ok(())
    }
}
