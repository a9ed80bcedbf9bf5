//! The live map with a short queue of inserts in front of it.
//!
//! In a big live set, the table slot a new block goes to is a cache miss (one per
//! allocation, ~100 ns), and there is nothing to overlap it with: the address is known only
//! once the real allocator has returned. So a new block waits in a queue of eight
//! entries ([`TagQueue`]) and enters the table eight allocations later; the hook
//! prefetches its slot when it is queued, and by the time it is inserted the line is in
//! cache. A block freed while still queued (most short-lived blocks) never touches the
//! table at all.
//!
//! Only the address index is deferred: the byte counters, the total and the peak are
//! updated at once by the recorder, so peaks, live files and a killed process's profile are
//! exactly what they would be without the queue.
//!
//! Same answers as the plain map as long as an address is freed before it is allocated
//! again (the allocator's contract). When a free was missed (the address is in the table
//! and allocated again), the stale block is handed back later than a plain map would: by
//! the insert that moves a new block at its address from the queue into the table, or by
//! a free of such a block while it is queued, when that free also asks the table. Only one
//! in [`CHECK_ONE_IN`] frees of queued blocks asks, at random: asking on every one cost
//! sqlite3 2.7% more instructions and ~2% wall time (a miss in a Robin Hood table at its
//! load walks ~90 instructions). So if every new block at the address is freed while
//! queued, the stale one goes after [`CHECK_ONE_IN`] of those frees on average, instead of
//! staying counted for good; a plain map drops it at the first one.

use super::live::{LiveAlloc, LiveHeap};
use super::tag_queue::TagQueue;

/// What a free took from the live set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Removed {
    /// The block freed.
    pub block: LiveAlloc,
    /// An older block at the same address whose free was missed.
    pub stale: Option<LiveAlloc>,
}

/// One in this many frees of a queued block also looks for a stale block at its address
/// in the table (see the module comment). A power of two.
pub const CHECK_ONE_IN: u32 = 16;

/// Decides which of many calls do a rare extra check: at random rather than every n-th,
/// so that no pattern of calls keeps a stale block from being looked for. A linear
/// congruential generator, because it is two instructions (its top bits, the ones used,
/// are the random-looking ones).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Dice(u32);

impl Dice {
    pub(super) const fn new(seed: u32) -> Self {
        Self(seed)
    }

    /// True about once in `mask + 1` rolls (`mask` one less than a power of two; 0: every
    /// time).
    #[inline(always)]
    pub(super) fn roll(&mut self, mask: u32) -> bool {
        // Numerical Recipes' constants (full period modulo 2^32).
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (self.0 >> 24) & mask == 0
    }
}

/// Bound of [`QueuedHeap::table_frees`] either way: how many frees of one kind in a row
/// turn the answer of [`QueuedHeap::frees_reach_table`] from any state.
const TABLE_FREES_LIMIT: i8 = 16;

/// Address -> live allocation, inserts queued.
#[derive(Clone, Debug)]
pub struct QueuedHeap {
    table: LiveHeap,
    queue: TagQueue<LiveAlloc>,
    /// Recent frees, counted up (to [`TABLE_FREES_LIMIT`]) for each that went to the
    /// table and down (to its negative) for each that found its block queued: see
    /// [`Self::frees_reach_table`].
    table_frees: i8,
    /// Which frees of queued blocks ask the table.
    dice: Dice,
    /// `CHECK_ONE_IN - 1` (tests set 0: every such free asks).
    check_mask: u32,
}

impl Default for QueuedHeap {
    fn default() -> Self {
        Self {
            table: LiveHeap::default(),
            queue: TagQueue::default(),
            table_frees: 0,
            dice: Dice::new(0x9e37_79b9),
            check_mask: CHECK_ONE_IN - 1,
        }
    }
}

impl QueuedHeap {
    /// An empty live set.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`LiveHeap::set_release`].
    pub fn set_release(&mut self, release: super::live::Release) {
        self.table.set_release(release);
    }

    /// Number of live allocations (for tests: nothing else needs it).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.len() + self.queue.len()
    }

    /// Records a new live allocation. Returns a block that is no longer live because its
    /// address was handed out again without a free we saw (see the module comment).
    #[inline(always)]
    pub fn insert(&mut self, addr: u64, alloc: LiveAlloc) -> Option<LiveAlloc> {
        if addr == 0 {
            return self.table.insert(addr, alloc);
        }
        if let Some(i) = self.queue.position(addr) {
            return Some(self.queue.replace(i, alloc));
        }
        let (oldest, oldest_alloc) = self.queue.push(addr, alloc)?;
        self.table.insert(oldest, oldest_alloc)
    }

    /// Removes the allocation at `addr`, if it is live: returns it, and a stale block at
    /// the same address that a missed free left in the table (see the module comment).
    #[inline]
    pub fn remove(&mut self, addr: u64) -> Option<Removed> {
        if let Some(i) = self.queue.position(addr) {
            self.table_frees = (self.table_frees - 1).max(-TABLE_FREES_LIMIT);
            let block = self.queue.take(i);
            // Without this, a stale block would stay in the table for as long as each new
            // block at its address is freed while queued: counted live, possibly for good.
            let stale = if self.roll() {
                self.table.remove(addr)
            } else {
                None
            };
            return Some(Removed { block, stale });
        }
        self.table_frees = (self.table_frees + 1).min(TABLE_FREES_LIMIT);
        let block = self.table.remove(addr)?;
        Some(Removed { block, stale: None })
    }

    /// Whether most recent frees went to the table rather than finding their block queued
    /// (the caller prefetches a free's table slot only then: for a program whose blocks
    /// mostly die young, as sqlite3's do, that line is seldom read, and fetching it on
    /// every free cost more than it saved).
    #[inline]
    pub fn frees_reach_table(&self) -> bool {
        self.table_frees > 0
    }

    /// Whether this free of a queued block asks the table (one in [`CHECK_ONE_IN`]).
    #[inline(always)]
    fn roll(&mut self) -> bool {
        self.dice.roll(self.check_mask)
    }

    /// The allocation at `addr`, if live.
    pub fn get(&self, addr: u64) -> Option<LiveAlloc> {
        match self.queue.position(addr) {
            Some(i) => Some(self.queue.value(i)),
            None => self.table.get(addr),
        }
    }

    /// Every live allocation, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, LiveAlloc)> + '_ {
        self.table.iter().chain(self.queue.iter())
    }

    /// The table's slot array, for prefetching: see [`LiveHeap::home_byte_offset`].
    #[inline]
    pub fn table(&self) -> (usize, usize) {
        self.table.table()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::map_model::same_entries;
    use crate::record::tag_queue::{tag, QUEUED};
    use proptest::prelude::*;
    use std::collections::HashMap as StdMap;

    fn block(size: u64) -> LiveAlloc {
        LiveAlloc { size, stack: 1 }
    }

    #[test]
    fn frees_reach_table_follows_where_recent_frees_found_their_blocks() {
        let mut h = QueuedHeap::new();
        let addr = |i: u64| 0x10_0000 + i * 64;
        // Blocks freed young, while queued.
        for i in 0..40 {
            h.insert(addr(i), block(8));
            assert!(h.remove(addr(i)).is_some());
        }
        assert!(!h.frees_reach_table());
        // Blocks freed old, from the table: all but the last QUEUED of 100 are there.
        for i in 0..100 {
            h.insert(addr(i), block(8));
        }
        for i in 0..(100 - QUEUED as u64) {
            assert!(h.remove(addr(i)).is_some());
            if i == 0 {
                assert!(!h.frees_reach_table(), "one free does not turn it");
            }
        }
        assert!(h.frees_reach_table());
        // And back.
        for i in (100 - QUEUED as u64)..100 {
            assert!(h.remove(addr(i)).is_some());
        }
        for i in 0..40 {
            h.insert(addr(i), block(8));
            assert!(h.remove(addr(i)).is_some());
        }
        assert!(!h.frees_reach_table());
    }

    #[test]
    fn a_block_freed_while_queued_never_reaches_the_table() {
        let mut h = QueuedHeap::new();
        for i in 1..=QUEUED as u64 {
            assert_eq!(h.insert(i * 16, block(i)), None);
        }
        assert_eq!(h.table.len(), 0);
        assert_eq!(h.remove(16).map(|r| r.block), Some(block(1)));
        // The freed entry is reused: still nothing in the table.
        assert_eq!(h.insert(0x1000, block(99)), None);
        assert_eq!(h.table.len(), 0);
        assert_eq!(h.len(), QUEUED);
        // One more pushes the oldest queued block (address 32) into the table.
        assert_eq!(h.insert(0x2000, block(100)), None);
        assert_eq!(h.table.len(), 1);
        assert_eq!(h.table.get(32), Some(block(2)));
        assert_eq!(h.len(), QUEUED + 1);
    }

    #[test]
    fn addresses_sharing_a_tag_are_told_apart() {
        let mut h = QueuedHeap::new();
        // Differing only above bit 19, so the same tag; queued in an order where a false
        // candidate comes before the true one.
        let same_tag = [0x1010u64, 0x10_1010, 0x20_1010, 0x1000_1010];
        assert!(same_tag.iter().all(|&a| tag(a) == tag(same_tag[0])));
        for (i, &a) in same_tag.iter().enumerate() {
            assert_eq!(h.insert(a, block(i as u64 + 1)), None);
        }
        for (i, &a) in same_tag.iter().enumerate().rev() {
            assert_eq!(h.get(a), Some(block(i as u64 + 1)));
        }
        assert_eq!(h.get(0x30_1010), None);
        assert_eq!(h.remove(0x10_1010).map(|r| r.block), Some(block(2)));
        assert_eq!(h.get(0x10_1010), None);
        assert_eq!(h.get(0x20_1010), Some(block(3)));
        // A freed entry keeps its stale tag: it must not be taken for the address.
        assert_eq!(h.remove(0x10_1010), None);
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn a_missed_free_hands_the_stale_block_back() {
        let mut h = QueuedHeap::new();
        // Still queued: replaced at once.
        h.insert(0x10, block(1));
        assert_eq!(h.insert(0x10, block(2)), Some(block(1)));
        // Already in the table: handed back when the new block enters the table.
        let mut dropped = Vec::new();
        for i in 1..=QUEUED as u64 {
            dropped.extend(h.insert(0x1000 * i, block(10 + i)));
        }
        assert_eq!(h.table.get(0x10), Some(block(2)));
        dropped.extend(h.insert(0x10, block(3)));
        for i in 1..=QUEUED as u64 {
            dropped.extend(h.insert(0x100_000 * i, block(100 + i)));
        }
        assert_eq!(dropped, vec![block(2)]);
        assert_eq!(h.get(0x10), Some(block(3)));
    }

    /// A heap whose every free of a queued block asks the table.
    fn always_checking() -> QueuedHeap {
        QueuedHeap {
            check_mask: 0,
            ..QueuedHeap::new()
        }
    }

    /// `h` with 0x10 in the table, then allocated again without a free (a missed free).
    fn with_stale_block_at_0x10(mut h: QueuedHeap) -> QueuedHeap {
        h.insert(0x10, block(1));
        for i in 1..=QUEUED as u64 {
            assert_eq!(h.insert(0x1000 * i, block(10 + i)), None);
        }
        assert_eq!(h.table.get(0x10), Some(block(1)));
        h
    }

    #[test]
    fn freeing_the_new_block_while_queued_takes_the_stale_one_too() {
        let mut h = with_stale_block_at_0x10(always_checking());
        assert_eq!(h.insert(0x10, block(2)), None);
        // Freed while queued: the table's stale block goes with it.
        let removed = h.remove(0x10);
        assert_eq!(
            removed,
            Some(Removed {
                block: block(2),
                stale: Some(block(1))
            })
        );
        assert_eq!(h.get(0x10), None);
        assert_eq!(h.len(), QUEUED);
        // A block that was never stale comes back alone.
        assert_eq!(
            h.remove(0x8000),
            Some(Removed {
                block: block(18),
                stale: None
            })
        );
    }

    #[test]
    fn a_stale_block_goes_after_a_few_frees_of_queued_blocks() {
        let mut h = with_stale_block_at_0x10(QueuedHeap::new());
        // Each new block at the address is freed while queued; one in CHECK_ONE_IN of those
        // frees asks the table, at random.
        let mut stale = Vec::new();
        let mut frees = 0;
        while stale.is_empty() && frees < 50 * CHECK_ONE_IN {
            h.insert(0x10, block(2));
            let r = h.remove(0x10).unwrap();
            assert_eq!(r.block, block(2));
            stale.extend(r.stale);
            frees += 1;
        }
        assert_eq!(stale, vec![block(1)], "after {frees} frees");
        assert_eq!(h.get(0x10), None);
        assert_eq!(h.len(), QUEUED);
    }

    #[test]
    fn about_one_in_check_one_in_frees_of_queued_blocks_asks() {
        let mut h = QueuedHeap::new();
        let n = 1000 * CHECK_ONE_IN;
        let asked = (0..n).filter(|_| h.roll()).count() as u32;
        assert!((800..1200).contains(&asked), "{asked} of {n}");
        let mut every = always_checking();
        assert!((0..n).all(|_| every.roll()));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64),
        Remove(u64),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        // Few addresses, so queue hits, table hits and replacements all happen; three share
        // each tag (they differ only above bit 19), so tag matches that are not the
        // address happen too.
        let addr = (1u64..40, 0u64..3).prop_map(|(a, k)| a * 16 + (k << 20));
        let op = prop_oneof![
            3 => (addr.clone(), 0u64..5000).prop_map(|(a, s)| Op::Insert(a, s)),
            2 => addr.prop_map(Op::Remove),
        ];
        proptest::collection::vec(op, 0..1500)
    }

    proptest! {
        /// When every address is freed before it is allocated again, the queue is invisible:
        /// the same answers as a plain map.
        #[test]
        fn matches_a_plain_map_under_the_allocator_contract(ops in ops()) {
            let mut h = QueuedHeap::new();
            let mut model: StdMap<u64, LiveAlloc> = StdMap::new();
            for op in ops {
                match op {
                    Op::Insert(a, size) if !model.contains_key(&a) => {
                        prop_assert_eq!(h.insert(a, block(size)), None);
                        model.insert(a, block(size));
                    }
                    Op::Insert(..) => {}
                    Op::Remove(a) => prop_assert_eq!(
                        h.remove(a),
                        model.remove(&a).map(|block| Removed { block, stale: None })
                    ),
                }
                prop_assert_eq!(h.len(), model.len());
            }
            same_entries(|a| h.get(a), h.iter(), model)?;
        }

        /// With missed frees too, no byte is lost or counted twice: every inserted block is
        /// live, removed, or handed back as stale exactly once.
        #[test]
        fn conserves_blocks_with_missed_frees(ops in ops(), every_time in any::<bool>()) {
            let mut h = if every_time { always_checking() } else { QueuedHeap::new() };
            let (mut inserted, mut gone) = (0u64, 0u64);
            for op in ops {
                match op {
                    Op::Insert(a, size) => {
                        inserted += size + 1;
                        gone += h.insert(a, block(size + 1)).map_or(0, |b| b.size);
                    }
                    Op::Remove(a) => {
                        if let Some(r) = h.remove(a) {
                            gone += r.block.size + r.stale.map_or(0, |b| b.size);
                        }
                        // When every free asks the table, nothing at a freed address is
                        // left behind: a stale block in the table went with the free.
                        if every_time {
                            prop_assert_eq!(h.get(a), None);
                        }
                    }
                }
                prop_assert_eq!(h.len(), h.iter().count());
            }
            let live: u64 = h.iter().map(|(_, b)| b.size).sum();
            prop_assert_eq!(inserted, gone + live);
        }
    }
}
