//! A thread's lane: its own live blocks, and changes to the counters it holds back while
//! the process is far below its peak.
//!
//! With one recorder behind one lock, four threads that allocate at once spend more time
//! handing the lock and the recorder's cache lines to each other than recording (4-thread
//! churn: 4.6x with the lock, 3.2x with a recorder per thread). A lane lets a thread record
//! most events alone: the blocks it allocates go into its own live map, and what they do to
//! the per-stack counters waits in a small table until the lane is *absorbed* into the
//! recorder, a few hundred events later, under the lock.
//!
//! What keeps the peak exact: a lane's held-back changes may add at most its *budget* to
//! the total, a share of the room below the peak that the recorder grants it when it
//! absorbs the lane (up to [`MAX_BUDGET`]; a lane starts with none). The recorder keeps
//! its total plus every lane's budget below the peak, so the true total, at most that sum,
//! never reaches the peak while lanes hold. Absorbing a lane moves up to its budget into the
//! total and takes the budget back: the sum does not grow. Nearer the peak than the
//! budgets allow, every event goes straight to the recorder, in order, and a new peak finds
//! every lane absorbed. The counters at the peak, and every test of the first slice, come
//! out as without lanes.
//!
//! What lanes give up: the counters of *now* lag by what lanes hold (at most a budget per
//! lane in the total, and a few hundred per-stack changes each). A process killed
//! with SIGKILL (the OOM killer) leaves its live counters so: its peak and the counters at
//! the peak are exact (a peak finds every lane absorbed), its state at the kill is off by
//! what its lanes held; so is the timeline (which never passes the peak). And a block
//! whose free the hooks missed is dropped when its address comes back to the same map, as
//! before; when it comes back on another thread, by an allocation through the recorder
//! that looks in the other maps (one in [`super::OTHER_MAPS_ONE_IN`], and every one that
//! reaches a new peak once a free may have been missed: no peak counts it).
//!
//! Nothing here is shared: the preload keeps one lane per thread behind a lock of its own
//! (taken by its thread on every event, by others only to absorb it or to free one of its
//! blocks), and these functions are the single-threaded logic.

use super::live::{LiveAlloc, Release};
use super::queued::QueuedHeap;
use super::stacks::StackId;

/// The most a lane's held-back changes may add to the total: what the live counters of
/// a killed process can lag by, per lane. Blocks above it always go through the recorder.
pub const MAX_BUDGET: u64 = 64 << 10;
/// A smaller share of the room is not granted (the lane would refuse nearly every block).
pub const MIN_BUDGET: u64 = 256;

/// Slots of the table of held-back changes: a power of two.
const CHANGE_SLOTS: usize = 512;
/// Changes held back before the lane must be absorbed: the table stays at most 3/4 full
/// (short probes), with room for the two entries one event can add (a block and a stale
/// one at its address).
const CHANGES_MAX: usize = CHANGE_SLOTS * 3 / 4 - 2;
/// Entries of the cache of stack ids: a power of two, in sets of two (a stack may sit in
/// either entry of its set: direct-mapped, a third of 4-thread churn's 352 stacks shared
/// an entry with another and missed).
const CACHE_SLOTS: usize = 2048;
/// Marks an empty change slot.
const EMPTY: StackId = StackId::MAX;

/// Held-back changes to one stack's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The stack.
    pub stack: StackId,
    /// Change of its live bytes.
    pub bytes: i64,
    /// Change of its live blocks.
    pub count: i64,
    /// Bytes it allocated (run totals).
    pub alloc_bytes: u64,
    /// Blocks it allocated.
    pub alloc_count: u64,
}

const NO_CHANGE: Change = Change {
    stack: EMPTY,
    bytes: 0,
    count: 0,
    alloc_bytes: 0,
    alloc_count: 0,
};

/// A remembered stack id: the hash of its frames, with its length and outermost frames as
/// a further check (a 64-bit hash collision among a thread's recent stacks is ~2^-50 at
/// worst; the frame checks cost one compare each).
#[derive(Clone, Copy, Debug, Default)]
struct Cached {
    hash: u64,
    first: u64,
    last: u64,
    /// `len + 1`; 0 marks an empty entry.
    len_plus_one: u32,
    id: StackId,
}

/// What [`Lane::free`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaneFree {
    /// The block was this lane's; it is gone and its change is held back.
    Freed(LiveAlloc),
    /// No block of this lane lives at the address.
    NotHere,
    /// The lane must be absorbed first (its table of changes is full).
    Full,
}

/// One thread's live blocks and held-back counter changes. Its thread records into it
/// alone while the recorder lets lanes hold ([`super::Recorder::lanes_holding`]); the held
/// changes may add at most the lane's budget to the total, which the recorder grants from
/// the room below the peak and takes back when it absorbs the lane
/// ([`super::Recorder::absorb`]), so no event held in a lane can be a peak.
#[derive(Clone, Debug, Default)]
pub struct Lane {
    pub(super) heap: QueuedHeap,
    /// Open addressing by stack id; allocated on first use.
    changes: Vec<Change>,
    /// Slots of `changes` in use, in the order they were taken.
    used: Vec<u16>,
    /// What the held-back changes add to the total (negative when they free more).
    net: i64,
    cache: Vec<Cached>,
    /// Events this lane held back over its life (for checks and tests).
    held: u64,
    /// What its held-back changes may add to the total (granted by the recorder).
    pub(super) budget: u64,
}

impl Lane {
    /// An empty lane; its tables are allocated on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`super::LiveHeap::set_release`].
    pub fn set_release(&mut self, release: Release) {
        self.heap.set_release(release);
    }

    /// Whether changes are held back (the lane needs absorbing before the recorder's
    /// counters are current).
    pub fn holds_changes(&self) -> bool {
        !self.used.is_empty()
    }

    /// Bytes the held-back changes add to the total.
    pub fn net(&self) -> i64 {
        self.net
    }

    /// What the held-back changes may add to the total.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Records a block of `size` bytes at `addr` by `stack`, holding its change back.
    /// False, with nothing done, when the lane cannot take it: it would pass the budget, or
    /// the table of changes is full. The caller then absorbs the lane and records the
    /// block through the recorder.
    #[inline]
    pub fn alloc(&mut self, addr: u64, size: u64, stack: StackId) -> bool {
        if self.used.len() >= CHANGES_MAX
            || size > self.budget
            || self.net + size as i64 > self.budget as i64
        {
            return false;
        }
        let block = LiveAlloc { size, stack };
        if let Some(stale) = self.heap.insert(addr, block) {
            self.gone(stale);
        }
        let c = self.change(stack, size as i64, 1);
        c.alloc_bytes += size;
        c.alloc_count += 1;
        self.held += 1;
        true
    }

    /// Frees the block at `addr` if it is this lane's, holding the change back.
    #[inline]
    pub fn free(&mut self, addr: u64) -> LaneFree {
        if self.used.len() >= CHANGES_MAX {
            return LaneFree::Full;
        }
        let Some(removed) = self.heap.remove(addr) else {
            return LaneFree::NotHere;
        };
        let block = removed.block;
        self.gone(block);
        if let Some(stale) = removed.stale {
            self.gone(stale);
        }
        self.held += 1;
        LaneFree::Freed(block)
    }

    /// Holds back what `block` leaving the live set does to its stack's counters.
    #[inline]
    fn gone(&mut self, block: LiveAlloc) {
        self.change(block.stack, -(block.size as i64), -1);
    }

    /// The entry of `stack` in the table of changes (made if new); counts `bytes` and
    /// `count` into it and into the net.
    #[inline]
    fn change(&mut self, stack: StackId, bytes: i64, count: i64) -> &mut Change {
        if self.changes.is_empty() {
            self.changes = vec![NO_CHANGE; CHANGE_SLOTS];
            self.used = Vec::with_capacity(CHANGES_MAX + 2);
        }
        self.net += bytes;
        let mask = CHANGE_SLOTS - 1;
        let mut i = (stack.wrapping_mul(0x9e37_79b9) >> 23) as usize & mask;
        loop {
            let s = self.changes[i].stack;
            if s == stack {
                break;
            }
            if s == EMPTY {
                self.changes[i].stack = stack;
                self.used.push(i as u16);
                break;
            }
            i = (i + 1) & mask;
        }
        let c = &mut self.changes[i];
        c.bytes += bytes;
        c.count += count;
        c
    }

    /// Hands over the held-back changes (in the order their stacks were first changed)
    /// and forgets them.
    pub(super) fn drain(&mut self, mut f: impl FnMut(&Change)) {
        for &i in &self.used {
            let c = &mut self.changes[i as usize];
            f(c);
            *c = NO_CHANGE;
        }
        self.used.clear();
        self.net = 0;
    }

    /// The id this lane remembers for a stack of `frames` with hash `hash`.
    #[inline]
    pub fn cached_stack(&self, hash: u64, frames: &[u64]) -> Option<StackId> {
        let set = hash as usize & (CACHE_SLOTS - 2);
        let hit = |c: &Cached| {
            c.hash == hash
                && c.len_plus_one as usize == frames.len() + 1
                && frames.first().is_none_or(|&f| f == c.first)
                && frames.last().is_none_or(|&f| f == c.last)
        };
        let ways = self.cache.get(set..set + 2)?;
        ways.iter().find(|c| hit(c)).map(|c| c.id)
    }

    /// Remembers that the stack of `frames` (hash `hash`) is `id`.
    pub fn cache_stack(&mut self, hash: u64, frames: &[u64], id: StackId) {
        let Ok(len) = u32::try_from(frames.len()) else {
            return;
        };
        if self.cache.is_empty() {
            self.cache = vec![Cached::default(); CACHE_SLOTS];
        }
        // The newest in the set's first entry; the one it replaces moves to the second.
        let set = hash as usize & (CACHE_SLOTS - 2);
        self.cache[set + 1] = self.cache[set];
        self.cache[set] = Cached {
            hash,
            first: frames.first().copied().unwrap_or(0),
            last: frames.last().copied().unwrap_or(0),
            len_plus_one: len.saturating_add(1),
            id,
        };
    }

    /// Every live block of this lane, in no particular order.
    pub fn blocks(&self) -> impl Iterator<Item = (u64, LiveAlloc)> + '_ {
        self.heap.iter()
    }

    /// Events this lane held back over its life.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Held-back changes, for checks.
    pub fn changes(&self) -> impl Iterator<Item = &Change> + '_ {
        self.used.iter().map(|&i| &self.changes[i as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_freed_in_its_lane_leaves_only_its_allocation_held_back() {
        let mut lane = Lane::new();
        lane.budget = 1024;
        assert!(lane.alloc(0x1000, 100, 7));
        assert_eq!(lane.net(), 100);
        assert_eq!(
            lane.free(0x1000),
            LaneFree::Freed(LiveAlloc {
                size: 100,
                stack: 7
            })
        );
        assert_eq!(lane.net(), 0);
        let changes: Vec<Change> = lane.changes().copied().collect();
        assert_eq!(
            changes,
            vec![Change {
                stack: 7,
                bytes: 0,
                count: 0,
                alloc_bytes: 100,
                alloc_count: 1
            }]
        );
        assert_eq!(lane.free(0x1000), LaneFree::NotHere);
    }

    #[test]
    fn the_budget_bounds_what_held_back_changes_add() {
        let mut lane = Lane::new();
        assert!(!lane.alloc(0x10, 1, 1), "no budget yet");
        lane.budget = 1024;
        assert!(!lane.alloc(0x10, 1025, 1));
        assert!(lane.alloc(0x10, 1014, 1));
        assert!(!lane.alloc(0x20, 11, 1));
        assert!(lane.alloc(0x20, 10, 1));
        assert_eq!(lane.net(), 1024);
        // A free makes room again.
        assert!(matches!(lane.free(0x10), LaneFree::Freed(_)));
        assert!(lane.alloc(0x30, 1000, 2));
        assert!(lane.net() <= 1024);
    }

    #[test]
    fn a_full_table_of_changes_refuses_until_drained() {
        let mut lane = Lane::new();
        lane.budget = MAX_BUDGET;
        let mut stack = 0;
        while lane.alloc(0x1000 + 16 * stack as u64, 1, stack) {
            stack += 1;
        }
        assert_eq!(stack as usize, CHANGES_MAX);
        assert_eq!(lane.free(0x1000), LaneFree::Full);
        let mut seen = 0;
        lane.drain(|c| {
            assert_eq!((c.bytes, c.count, c.alloc_count), (1, 1, 1));
            seen += 1;
        });
        assert_eq!(seen, CHANGES_MAX);
        assert!(!lane.holds_changes());
        assert!(matches!(lane.free(0x1000), LaneFree::Freed(_)));
    }

    #[test]
    fn a_stack_id_is_remembered_by_hash_and_outer_frames() {
        let mut lane = Lane::new();
        assert_eq!(lane.cached_stack(5, &[1, 2, 3]), None);
        lane.cache_stack(5, &[1, 2, 3], 9);
        assert_eq!(lane.cached_stack(5, &[1, 2, 3]), Some(9));
        assert_eq!(lane.cached_stack(5, &[1, 2, 4]), None);
        assert_eq!(lane.cached_stack(5, &[0, 2, 3]), None);
        assert_eq!(lane.cached_stack(5, &[1, 3]), None);
        assert_eq!(lane.cached_stack(5 + CACHE_SLOTS as u64, &[1, 2, 3]), None);
        // Two stacks of one set are both kept; a third pushes out the older.
        let (a, b, c) = (4, 4 + CACHE_SLOTS as u64, 4 + 2 * CACHE_SLOTS as u64);
        lane.cache_stack(a, &[7], 1);
        lane.cache_stack(b, &[8], 2);
        assert_eq!(
            (lane.cached_stack(a, &[7]), lane.cached_stack(b, &[8])),
            (Some(1), Some(2))
        );
        lane.cache_stack(c, &[9], 3);
        assert_eq!(lane.cached_stack(a, &[7]), None);
        assert_eq!(
            (lane.cached_stack(b, &[8]), lane.cached_stack(c, &[9])),
            (Some(2), Some(3))
        );
    }
}
