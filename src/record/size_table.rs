//! Address -> size, in one `u64` per block: the live set of sampled mode's unsampled blocks.
//!
//! In sampled mode most blocks need no stack, only their size, so that a free subtracts
//! exactly what the allocation added. Such a block is packed into a single word: the
//! address without its 4 alignment bits (43 bits cover the 47-bit user address space of
//! x86-64) and a size below 2 MiB (21 bits). Blocks that do not pack (unaligned, huge) stay
//! in the recorder's general map.
//!
//! The table is made of cache-line buckets of 7 words and a control word, as in folly's
//! F14: a one-byte tag per word (7 bits of the key's hash) and an overflow count (how many
//! entries that probed past this bucket are still held). A lookup reads its home bucket,
//! compares the 7 tags at once with a few word operations, reads a word only when its tag
//! matches, and goes on to the next bucket only when the count is not 0 (comparing the 7
//! words themselves took ~140 instructions per insert, the tags ~30). At most 80% full, the home bucket almost always
//! decides, so a hook pays one cache line and one predictable branch; deletion just clears
//! the word (no tombstones, no shifting). Measured against linear probing with
//! backward-shift deletion, whose loops mispredict on every free: 21 -> 11 ns per free on
//! `churn`.
//!
//! The table grows by a third at 80% full (a bucket count that is not a power of two: the
//! home bucket scales the hash onto it), so it stays 60-80% full: 11.4-15.3 bytes per
//! block. Doubling, as it did before, left it 40-80% full: up to 23 bytes per block.
//!
//! Once the table is too big to stay in a core's cache, the bucket a new block goes to is
//! a cache miss on every allocation, with nothing to overlap it: the address is known only
//! when the real allocator returns. So, as the exact live map does (`queued.rs`), a new
//! block waits in a [`TagQueue`] of eight, its caller prefetches its home bucket
//! ([`SizeTable::home_address`]), and it enters the buckets eight allocations later,
//! when the line is in cache; a block freed while queued costs no miss. A
//! block at an address the buckets still hold (a free that was never seen) is handed back
//! when the new one enters the buckets, or, if the new one is freed while queued, by that
//! free ([`Taken::stale`]; the home bucket was prefetched, so looking there costs little):
//! not at once, as without the queue, but never left behind. Until then a caller's total
//! counts both blocks, so a peak reached in that window (at most eight allocations)
//! can read high by the old block's size; only a free that bypassed the hooks leads there.

use super::swar::{bytes_equal, first_marked};
use super::tag_queue::TagQueue;

/// Bits of the packed size.
const SIZE_BITS: u32 = 21;
/// Sizes below this pack.
pub const MAX_PACKED_SIZE: u64 = 1 << SIZE_BITS;
/// Addresses below this pack (and must be 16-aligned).
const ADDR_LIMIT: u64 = 1 << 47;
const SIZE_MASK: u64 = MAX_PACKED_SIZE - 1;
/// Words of a bucket.
const WAYS: usize = 7;
/// Buckets of a table's first allocation (32 KiB). A few thousand blocks then sit in a
/// table that is mostly empty, where lookups end in the home bucket and their branches
/// are predictable; 128 buckets (8 KiB) kept `churn`'s ~1000 live blocks at 60-80% load
/// (interleaved A/B, sampled: churn 1.34x -> 1.27x, 4 threads 1.40x -> 1.33x; 1024
/// buckets measured no better). Only the shards a process uses get a table.
const INITIAL_BUCKETS: usize = 512;
/// The table grows at this load (entries per word of all buckets)...
const MAX_LOAD: (usize, usize) = (4, 5);
/// ...to this many buckets per old bucket: a third more, so right after a growth it is
/// 60% full. A smaller step keeps the table fuller but rehashes more often (the entries
/// moved over the table's life are `1 / (step - 1)` times its final size: 3x here).
const GROWTH: (usize, usize) = (4, 3);

/// The packed form of `(addr, size)`, or `None` when it does not fit. Never 0 (the empty
/// word): a packable address is at least 16.
#[inline]
pub fn pack(addr: u64, size: u64) -> Option<u64> {
    let fits = addr & 15 == 0 && addr != 0 && addr < ADDR_LIMIT && size < MAX_PACKED_SIZE;
    fits.then_some(joined(addr, size))
}

/// The packed form of `(addr, size)`, known to fit.
#[inline]
fn joined(addr: u64, size: u64) -> u64 {
    ((addr >> 4) << SIZE_BITS) | size
}

/// `(address, size)` of a packed entry.
#[inline]
fn unpack(entry: u64) -> (u64, u64) {
    (key_of(entry) << 4, entry & SIZE_MASK)
}

#[inline]
fn key_of(entry: u64) -> u64 {
    entry >> SIZE_BITS
}

/// `ctrl`'s bytes 0..7 (one per word): 0 when the word is empty, else the word's tag,
/// whose top bit is set.
const TAG_BYTES: u64 = 0x0080_8080_8080_8080;
/// `ctrl`'s top byte: the overflow count, which stays at this once it gets there.
const OVERFLOW_STUCK: u64 = 0xFF;
const OVERFLOW_ONE: u64 = 1 << 56;

/// One cache line: 7 packed entries (0 = empty) and a control word: a one-byte tag per
/// entry (7 bits of its hash, so a lookup compares all 7 with a few word operations and
/// reads an entry only when its tag matches) and the overflow count.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    words: [u64; WAYS],
    ctrl: u64,
}

impl Bucket {
    /// The top bit of byte i set when word i's tag is `tag`: a candidate, whose word may
    /// still hold another key (1 in 128 per occupied word).
    #[inline]
    fn tag_matches(&self, tag: u8) -> u64 {
        // The top byte is the overflow count, not a tag.
        bytes_equal(self.ctrl, tag) & TAG_BYTES
    }

    /// The top bit of byte i set when word i is empty.
    #[inline]
    fn empty(&self) -> u64 {
        !self.ctrl & TAG_BYTES
    }

    /// Entries held in later buckets whose probe passed this one (at least that many once
    /// it reaches [`OVERFLOW_STUCK`]).
    #[inline]
    fn overflow(&self) -> u64 {
        self.ctrl >> 56
    }

    #[inline]
    fn add_overflow(&mut self) {
        if self.overflow() != OVERFLOW_STUCK {
            self.ctrl += OVERFLOW_ONE;
        }
    }

    #[inline]
    fn sub_overflow(&mut self) {
        if self.overflow() != OVERFLOW_STUCK {
            self.ctrl -= OVERFLOW_ONE;
        }
    }

    /// The word holding `key` (whose tag is `tag`).
    #[inline]
    fn find(&self, key: u64, tag: u8) -> Option<usize> {
        first_marked(self.tag_matches(tag), |i| key_of(self.words[i]) == key)
    }

    /// Fills the empty word `i`.
    #[inline]
    fn put(&mut self, i: usize, entry: u64, tag: u8) {
        self.words[i] = entry;
        self.ctrl |= u64::from(tag) << (8 * i);
    }

    /// Empties word `i`; returns what it held.
    #[inline]
    fn take(&mut self, i: usize) -> u64 {
        self.ctrl &= !(0xFF << (8 * i));
        core::mem::take(&mut self.words[i])
    }
}

/// The first empty word of a [`Bucket::empty`] mask.
#[inline]
fn first(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// Tables of at least this many buckets (256 KiB) are worth prefetching from, and queue
/// their inserts.
const PREFETCH_FROM_BUCKETS: usize = 4096;

/// A table that held this many blocks has at least [`PREFETCH_FROM_BUCKETS`] buckets (it
/// grows at 80% load and never shrinks).
#[cfg(test)]
const PREFETCH_FROM_LEN: usize = PREFETCH_FROM_BUCKETS * WAYS * MAX_LOAD.0 / MAX_LOAD.1;

/// What [`SizeTable::take`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// The size of the block freed.
    pub size: u64,
    /// The size of an older block at the same address that the table still held (its free
    /// was never seen) and removed with it; 0 when none. Only a block freed while queued
    /// can have one: otherwise the insert of the newer block handed the older one back.
    pub stale: u64,
}

/// Address -> size of the blocks that pack (see [`pack`]).
#[derive(Debug, Clone)]
pub struct SizeTable {
    buckets: Vec<Bucket>,
    /// Buckets of the first allocation: [`INITIAL_BUCKETS`] (tests set less, so that a few
    /// thousand blocks take it through growths).
    first_buckets: usize,
    /// Blocks in the buckets.
    len: usize,
    /// The buckets grow before they hold more blocks than this ([`MAX_LOAD`]), kept so
    /// that an insert compares instead of multiplying.
    max_len: usize,
    /// Address -> size of the blocks waiting to enter the buckets. Used only once the
    /// table has [`PREFETCH_FROM_BUCKETS`] buckets, which it never loses.
    queue: TagQueue<u64>,
}

impl Default for SizeTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SizeTable {
    /// An empty table; it allocates on its first insert.
    pub const fn new() -> Self {
        Self {
            buckets: Vec::new(),
            first_buckets: INITIAL_BUCKETS,
            len: 0,
            max_len: 0,
            queue: TagQueue::new(0),
        }
    }

    /// Number of blocks held (walks the queue: for checks, not for hooks).
    pub fn len(&self) -> usize {
        self.len + self.queue.len()
    }

    /// Whether the table holds no block.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sum of the sizes held (walks the table: for checks, not for hooks).
    pub fn bytes(&self) -> u64 {
        self.iter().map(|(_, size)| size).sum()
    }

    /// Bytes of memory the table itself uses.
    pub fn footprint(&self) -> usize {
        self.buckets.capacity() * core::mem::size_of::<Bucket>()
    }

    /// Address of the bucket where a lookup of `addr` starts, for a caller to prefetch
    /// ahead of [`Self::remove`]; `None` when the table is small enough to stay in a
    /// core's cache (prefetching there only costs: churn's tables) or `addr` does not pack.
    #[inline]
    pub fn home_address(&self, addr: u64) -> Option<usize> {
        if !self.queues() {
            return None;
        }
        let (b, _) = self.slot(key_of(pack(addr, 0)?));
        Some(self.buckets.as_ptr() as usize + b * core::mem::size_of::<Bucket>())
    }

    /// Home bucket and tag of a key. Fibonacci hashing, twice: the multiply spreads the
    /// address bits into the high ones, and folding those back and multiplying again
    /// breaks up the fixed strides that one multiply crowds onto a few homes (see
    /// `fixed_strides_stay_near_home`). The home bucket is the top 32 bits scaled onto the
    /// bucket count (a multiply and a shift), the tag 7 bits from below them, which the
    /// home hardly depends on.
    #[inline]
    fn slot(&self, key: u64) -> (usize, u8) {
        let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let h = (h ^ (h >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let home = ((h >> 32) * self.buckets.len() as u64) >> 32;
        (home as usize, (h >> 24) as u8 | 0x80)
    }

    #[inline]
    fn next(&self, b: usize) -> usize {
        if b + 1 == self.buckets.len() {
            0
        } else {
            b + 1
        }
    }

    /// Where `key` is held: (bucket, word).
    #[inline]
    fn find(&self, key: u64) -> Option<(usize, usize)> {
        if self.buckets.is_empty() {
            return None;
        }
        let (home, tag) = self.slot(key);
        self.find_from(home, key, tag)
    }

    /// [`Self::find`] from `key`'s home bucket and tag (see [`Self::slot`]).
    #[inline]
    fn find_from(&self, mut b: usize, key: u64, tag: u8) -> Option<(usize, usize)> {
        // At most once around: counts stuck at 255 never come down, so in principle every
        // bucket could end up claiming an overflow.
        for _ in 0..self.buckets.len() {
            let bucket = &self.buckets[b];
            if let Some(i) = bucket.find(key, tag) {
                return Some((b, i));
            }
            if bucket.overflow() == 0 {
                return None;
            }
            b = self.next(b);
        }
        None
    }

    /// Puts a new entry in the first bucket with room from its home, counting it in the
    /// overflow of every bucket it passes.
    #[inline]
    fn place(&mut self, entry: u64) {
        let (mut b, tag) = self.slot(key_of(entry));
        loop {
            let e = self.buckets[b].empty();
            if e != 0 {
                self.buckets[b].put(first(e), entry, tag);
                return;
            }
            self.buckets[b].add_overflow();
            b = self.next(b);
        }
    }

    /// Whether new blocks wait in the queue: the table is too big to stay in a core's
    /// cache, and lookups are worth prefetching ([`Self::home_address`]). Once true, true
    /// for good (a table never shrinks).
    #[inline]
    fn queues(&self) -> bool {
        self.buckets.len() >= PREFETCH_FROM_BUCKETS
    }

    /// Records the packed `entry` (from [`pack`]). Returns the size of a block the table
    /// held at an address that was allocated again (its free was never seen), which is no
    /// longer live: at once, or, for a block in the buckets while the table queues, when
    /// the new one enters them ([`Self::take`] hands it back if the new one is freed
    /// first; see the module comment). A caller that queued `entry`
    /// should prefetch [`Self::home_address`] for it.
    #[inline]
    pub fn insert(&mut self, entry: u64) -> Option<u64> {
        debug_assert!(entry != 0);
        if self.queues() {
            self.insert_queued(entry)
        } else {
            self.insert_in_buckets(entry)
        }
    }

    /// [`Self::insert`] in a table that queues. Out of line: it keeps the small tables'
    /// path short (churn), and here the bucket miss it saves is worth far more than a call.
    #[inline(never)]
    fn insert_queued(&mut self, entry: u64) -> Option<u64> {
        let (addr, size) = unpack(entry);
        if let Some(i) = self.queue.position(addr) {
            return Some(self.queue.replace(i, size));
        }
        let (oldest, oldest_size) = self.queue.push(addr, size)?;
        self.insert_in_buckets(joined(oldest, oldest_size))
    }

    /// Puts `entry` in the buckets; returns the size of a block held there at the same
    /// address, which it replaces.
    #[inline]
    fn insert_in_buckets(&mut self, entry: u64) -> Option<u64> {
        if self.len >= self.max_len {
            self.grow();
        }
        let key = key_of(entry);
        let (home, tag) = self.slot(key);
        // The common case from the home bucket's control word alone: no word there has
        // the tag and nothing overflowed from it, so the address is not held and the entry
        // takes a free word of it.
        let bucket = &mut self.buckets[home];
        let e = bucket.empty();
        if bucket.tag_matches(tag) == 0 && bucket.overflow() == 0 && e != 0 {
            bucket.put(first(e), entry, tag);
            self.len += 1;
            return None;
        }
        if let Some((b, i)) = self.find(key) {
            let old = core::mem::replace(&mut self.buckets[b].words[i], entry) & SIZE_MASK;
            return Some(old);
        }
        self.place(entry);
        self.len += 1;
        None
    }

    /// Removes the block at `addr` and returns its size, if the table holds it.
    #[inline]
    pub fn remove(&mut self, addr: u64) -> Option<u64> {
        self.take(addr).map(|t| t.size)
    }

    /// [`Self::remove`], also saying what an older block at the same address weighed if
    /// this removed it too (see [`Taken::stale`]). Always inlined: the profiler's `free`
    /// hook must make no call on its common path (see `sampled::free` in the preload).
    #[inline(always)]
    pub fn take(&mut self, addr: u64) -> Option<Taken> {
        let key = key_of(pack(addr, 0)?);
        if self.queues() {
            return self.take_queued(addr, key);
        }
        let size = self.take_from_buckets(key)?;
        Some(Taken { size, stale: 0 })
    }

    /// [`Self::take`] in a table that queues (out of line, as [`Self::insert_queued`]).
    #[inline(never)]
    fn take_queued(&mut self, addr: u64, key: u64) -> Option<Taken> {
        if let Some(i) = self.queue.position(addr) {
            let size = self.queue.take(i);
            // A block the buckets hold at this address was freed without our seeing
            // it: it goes too, or nothing would ever take it out.
            let stale = self.take_from_buckets(key).unwrap_or(0);
            return Some(Taken { size, stale });
        }
        let size = self.take_from_buckets(key)?;
        Some(Taken { size, stale: 0 })
    }

    /// Removes `key` from the buckets; returns its size. Hashes once, and a block in its
    /// home bucket (nearly all, at 60-80% load) touches no overflow count: the walk that
    /// updates them is out of line. With the kept growth limit, sampled 4-thread churn
    /// went from 434 to 390 profiler instructions per malloc/free pair.
    #[inline(always)]
    fn take_from_buckets(&mut self, key: u64) -> Option<u64> {
        if self.buckets.is_empty() {
            return None;
        }
        let (home, tag) = self.slot(key);
        // The common case: the block is in its home bucket, and no overflow count changes.
        let bucket = &mut self.buckets[home];
        if let Some(i) = bucket.find(key, tag) {
            self.len -= 1;
            return Some(bucket.take(i) & SIZE_MASK);
        }
        if bucket.overflow() == 0 {
            return None;
        }
        self.take_overflowed(home, key, tag)
    }

    /// [`Self::take_from_buckets`] for a key not in its home bucket, which overflowed.
    #[inline(never)]
    fn take_overflowed(&mut self, home: usize, key: u64, tag: u8) -> Option<u64> {
        let (b, i) = self.find_from(home, key, tag)?;
        let size = self.buckets[b].take(i) & SIZE_MASK;
        self.len -= 1;
        // The buckets its insert passed no longer have it beyond them.
        let mut c = home;
        while c != b {
            self.buckets[c].sub_overflow();
            c = self.next(c);
        }
        Some(size)
    }

    #[cold]
    fn grow(&mut self) {
        let n = (self.buckets.len() * GROWTH.0 / GROWTH.1).max(self.first_buckets);
        let old = core::mem::replace(&mut self.buckets, vec![Bucket::default(); n]);
        self.max_len = n * WAYS * MAX_LOAD.0 / MAX_LOAD.1;
        for e in old.iter().flat_map(|b| b.words).filter(|&e| e != 0) {
            self.place(e);
        }
    }

    /// `(address, size)` of every block held, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.buckets
            .iter()
            .flat_map(|b| b.words)
            .filter(|&e| e != 0)
            .map(unpack)
            .chain(self.queue.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tag_queue::QUEUED;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn lookups_start_at_the_bucket_offered_for_prefetching_once_the_table_is_big() {
        let mut t = SizeTable::new();
        let addr = |i: u64| 0x5555_0000_0000 + i * 48;
        for i in 0..PREFETCH_FROM_LEN as u64 {
            let small = t.buckets.len() < PREFETCH_FROM_BUCKETS;
            assert_eq!(t.home_address(addr(0)).is_none(), small, "at {i} blocks");
            t.insert(pack(addr(i), 32).unwrap());
        }
        // By the length that tells a caller prefetching pays, it does.
        assert!(t.buckets.len() >= PREFETCH_FROM_BUCKETS);
        let base = t.buckets.as_ptr() as usize;
        let mut queued = 0;
        for i in 0..PREFETCH_FROM_LEN as u64 {
            let line = t.home_address(addr(i)).unwrap();
            let key = key_of(pack(addr(i), 0).unwrap());
            if t.queue.position(addr(i)).is_some() {
                queued += 1; // not in the buckets yet
                continue;
            }
            let (b, _) = t.find(key).unwrap();
            let (home, _) = t.slot(key_of(pack(addr(i), 0).unwrap()));
            assert_eq!(line, base + home * core::mem::size_of::<Bucket>());
            // The lookup reads that line first, and mostly finds the block right there.
            assert!(b == home || t.buckets[home].overflow() > 0);
        }
        assert_eq!(queued, QUEUED);
        assert_eq!(t.home_address(0x1008), None, "does not pack");
    }

    #[test]
    fn packing_takes_aligned_user_addresses_and_sizes_below_2_mib() {
        assert!(pack(0x7fff_ffff_fff0, MAX_PACKED_SIZE - 1).is_some());
        assert_eq!(pack(0, 8), None, "null");
        assert_eq!(pack(0x1008, 8), None, "8-aligned only");
        assert_eq!(pack(1 << 47, 8), None, "kernel half");
        assert_eq!(pack(0x1000, MAX_PACKED_SIZE), None, "2 MiB");
        let e = pack(0x5555_0000_1230, 77).unwrap();
        let mut t = SizeTable::new();
        assert_eq!(t.insert(e), None);
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![(0x5555_0000_1230, 77)]);
    }

    #[test]
    fn a_second_insert_at_an_address_hands_back_the_stale_size() {
        let mut t = SizeTable::new();
        t.insert(pack(0x1000, 10).unwrap());
        assert_eq!(t.insert(pack(0x1000, 30).unwrap()), Some(10));
        assert_eq!((t.len(), t.bytes()), (1, 30));
        assert_eq!(t.remove(0x1000), Some(30));
        assert_eq!(t.remove(0x1000), None);
        assert!(t.is_empty());
    }

    #[test]
    fn unpackable_addresses_are_never_found() {
        let mut t = SizeTable::new();
        t.insert(pack(0x2000, 1).unwrap());
        assert_eq!(t.remove(0x2008), None);
        assert_eq!(t.remove(0), None);
        assert_eq!(t.remove(!15), None);
    }

    #[test]
    fn growing_keeps_every_block_and_at_most_16_bytes_per_block() {
        let mut t = SizeTable::new();
        let mut growths = 0;
        for i in 1..=100_000u64 {
            let before = t.buckets.len();
            t.insert(pack(i * 16, i % 1000).unwrap());
            growths += usize::from(t.buckets.len() != before);
            // Past the first allocation (32 KiB, which a few thousand blocks do not
            // fill), the table is at least 60% full: at most 15.3 bytes per block.
            if i >= 2200 {
                let per_block = t.footprint() as f64 / t.len() as f64;
                assert!(per_block <= 15.3, "{per_block} bytes per block at {i}");
            }
        }
        assert_eq!(t.len(), 100_000);
        // The first 512 buckets, then grown by a third each time to hold 100k blocks at
        // 80%: 13 growths (from 128 buckets, 18; doubling took 8).
        assert_eq!(growths, 1 + 13, "{} buckets", t.buckets.len());
        for i in 1..=100_000u64 {
            assert_eq!(t.remove(i * 16), Some(i % 1000), "block {i}");
        }
        assert_eq!((t.len(), t.bytes()), (0, 0));
    }

    /// How many buckets past its home the farthest entry sits.
    fn farthest_from_home(t: &SizeTable) -> usize {
        let n = t.buckets.len();
        (0..n)
            .flat_map(|b| t.buckets[b].words.map(|e| (b, e)))
            .filter(|&(_, e)| e != 0)
            .map(|(b, e)| (b + n - t.slot(key_of(e)).0) % n)
            .max()
            .unwrap_or(0)
    }

    /// Blocks one after another at a fixed stride (glibc hands out chunks of one size in
    /// order) spread over the homes as random addresses do. With a single Fibonacci
    /// multiply some strides crowded a few homes: of the 1024 strides from 16 to 16 KiB,
    /// 100k blocks each, these sent entries 27 to 61 buckets past their home (and 3968,
    /// glibc's chunks for 3.9 KiB requests, 42 at a million blocks), every lookup walking
    /// those buckets. Folding the product and multiplying again, the worst of all 1024 is
    /// 15, as for random addresses (7-13).
    #[test]
    fn fixed_strides_stay_near_home() {
        for stride in [3728, 8336, 13488, 14416] {
            let mut t = SizeTable::new();
            for i in 0..100_000u64 {
                t.insert(pack(0x5555_0000_0000 + i * stride, 1).unwrap());
            }
            let far = farthest_from_home(&t);
            assert!(far <= 20, "stride {stride}: {far} buckets from home");
        }
    }

    /// An empty table with its first buckets allocated, and the first `n` addresses whose
    /// home is bucket `home` in it.
    fn table_and_addresses_homed_at(home: usize, n: usize) -> (SizeTable, Vec<u64>) {
        let mut t = SizeTable::new();
        t.insert(pack(16, 1).unwrap()); // allocates the first buckets
        t.remove(16);
        let addrs = (1..)
            .map(|k: u64| k * 16)
            .filter(|&a| t.slot(a >> 4).0 == home)
            .take(n)
            .collect();
        (t, addrs)
    }

    /// Twenty blocks with the same home bucket spill into the next ones; removing them in
    /// any order keeps the rest findable and the overflow counts back at zero.
    #[test]
    fn blocks_sharing_a_home_bucket_overflow_and_come_back() {
        let (mut t, home0) = table_and_addresses_homed_at(5, 20);
        for (i, &a) in home0.iter().enumerate() {
            assert_eq!(t.insert(pack(a, i as u64).unwrap()), None);
        }
        assert!(t.buckets[5].overflow() > 0 && t.buckets[6].overflow() > 0);
        for (i, &a) in home0.iter().enumerate().rev().step_by(2) {
            assert_eq!(t.remove(a), Some(i as u64));
        }
        for (i, &a) in home0.iter().enumerate() {
            let want = (i % 2 == 0).then_some(i as u64);
            assert_eq!(t.insert(pack(a, i as u64).unwrap()), want, "block {i}");
        }
        for (i, &a) in home0.iter().enumerate() {
            assert_eq!(t.remove(a), Some(i as u64));
        }
        assert!(t.is_empty());
        assert!(t
            .buckets
            .iter()
            .all(|b| b.ctrl == 0 && b.words == [0; WAYS]));
    }

    /// An overflow count that reaches 255 stays there (it can no longer be kept exact):
    /// lookups then always probe on, and every block is still found.
    #[test]
    fn a_saturated_overflow_count_stays_correct() {
        let (mut t, same_home) = table_and_addresses_homed_at(9, 300);
        for (i, &a) in same_home.iter().enumerate() {
            assert_eq!(t.insert(pack(a, i as u64).unwrap()), None);
        }
        assert_eq!(t.buckets.len(), INITIAL_BUCKETS, "no growth in this test");
        assert_eq!(t.buckets[9].overflow(), OVERFLOW_STUCK);
        for (i, &a) in same_home.iter().enumerate().rev() {
            assert_eq!(t.remove(a), Some(i as u64), "block {i}");
        }
        assert_eq!(
            t.buckets[9].overflow(),
            OVERFLOW_STUCK,
            "stuck, not wrapped"
        );
        assert!(t.is_empty());
        t.insert(pack(same_home[0], 5).unwrap());
        assert_eq!(t.remove(same_home[0]), Some(5));
    }

    /// Where [`queueing_table`] puts its blocks.
    fn filler(i: u64) -> u64 {
        0x6000_0000_0000 + 16 * i
    }

    /// A table big enough to queue its inserts, holding `PREFETCH_FROM_LEN` blocks of 8
    /// bytes at [`filler`] addresses, all in the buckets (built once, then cloned: the
    /// proptest below starts every case from it).
    fn queueing_table() -> SizeTable {
        static BUILT: std::sync::LazyLock<SizeTable> = std::sync::LazyLock::new(|| {
            let mut t = SizeTable::new();
            for i in 0..PREFETCH_FROM_LEN as u64 {
                t.insert(pack(filler(i), 8).unwrap());
            }
            assert!(t.queues());
            // Move what the filler left queued into the buckets.
            let queued: Vec<_> = t.queue.iter().collect();
            t.queue = TagQueue::new(0);
            for (a, size) in queued {
                assert_eq!(t.insert_in_buckets(joined(a, size)), None);
            }
            assert_eq!((t.len(), t.queue.len()), (PREFETCH_FROM_LEN, 0));
            t
        });
        BUILT.clone()
    }

    #[test]
    fn a_block_freed_while_queued_never_reaches_the_buckets() {
        let mut t = queueing_table();
        let n = PREFETCH_FROM_LEN;
        for i in 1..=QUEUED as u64 {
            assert_eq!(t.insert(pack(i * 16, i).unwrap()), None);
        }
        assert_eq!((t.len(), t.queue.len()), (n + QUEUED, QUEUED));
        assert_eq!(t.remove(16), Some(1));
        assert_eq!((t.len(), t.queue.len()), (n + QUEUED - 1, QUEUED - 1));
        // The freed entry is taken again: still nothing new in the buckets.
        assert_eq!(t.insert(pack(0x1000, 99).unwrap()), None);
        assert_eq!((t.len(), t.queue.len()), (n + QUEUED, QUEUED));
        // One more moves the oldest queued block (address 32) into the buckets.
        assert_eq!(t.insert(pack(0x2000, 100).unwrap()), None);
        assert_eq!((t.len(), t.queue.len()), (n + QUEUED + 1, QUEUED));
        assert!(t.queue.position(32).is_none() && t.find(2).is_some());
        assert_eq!(t.remove(32), Some(2));
        assert_eq!(
            t.bytes(),
            8 * n as u64 + (3..=QUEUED as u64).sum::<u64>() + 99 + 100
        );
    }

    #[test]
    fn while_queueing_a_missed_free_still_hands_the_stale_size_back() {
        let mut t = queueing_table();
        let n = PREFETCH_FROM_LEN;
        // Queued: replaced at once.
        t.insert(pack(0x10, 1).unwrap());
        assert_eq!(t.insert(pack(0x10, 2).unwrap()), Some(1));
        // In the buckets: handed back when the new block enters them.
        assert_eq!(t.insert(pack(filler(5), 3).unwrap()), None);
        let mut stale = Vec::new();
        for i in 1..=QUEUED as u64 {
            stale.extend(t.insert(pack(0x1000 * i, 10).unwrap()));
        }
        assert_eq!(stale, vec![8]);
        assert_eq!(t.len(), n + 1 + QUEUED);
        assert_eq!(t.remove(filler(5)), Some(3));
        assert_eq!(t.remove(filler(5)), None);
        // In the buckets, and the new block freed while still queued: that free hands the
        // old one back and takes it out.
        assert_eq!(t.insert(pack(filler(6), 4).unwrap()), None);
        assert_eq!(t.take(filler(6)), Some(Taken { size: 4, stale: 8 }));
        assert_eq!(t.take(filler(6)), None);
        assert_eq!(t.len(), n + QUEUED - 1);
    }

    /// Addresses drawn from a small range so that probe runs collide and wrap.
    fn op() -> impl Strategy<Value = (bool, u64, u64)> {
        (any::<bool>(), 1u64..3000, 0u64..5000)
    }

    proptest! {
        /// The word-at-once tag comparison finds exactly the bytes a byte loop finds.
        #[test]
        fn tag_matches_are_exact(tags in proptest::array::uniform7(prop_oneof![Just(0u8), 0x80u8..=0xFF]), overflow: u8, tag in 0x80u8..=0xFF) {
            let mut b = Bucket::default();
            for (i, &t) in tags.iter().enumerate() {
                b.ctrl |= u64::from(t) << (8 * i);
            }
            b.ctrl |= u64::from(overflow) << 56;
            let bit = |i: usize| 0x80u64 << (8 * i);
            let want_match: u64 = (0..WAYS).filter(|&i| tags[i] == tag).map(bit).sum();
            let want_empty: u64 = (0..WAYS).filter(|&i| tags[i] == 0).map(bit).sum();
            prop_assert_eq!(b.tag_matches(tag), want_match);
            prop_assert_eq!(b.empty(), want_empty);
            prop_assert_eq!(b.overflow(), u64::from(overflow));
        }

        #[test]
        fn agrees_with_a_hash_map(ops in proptest::collection::vec(op(), 1..3000)) {
            // The old first size, 128 buckets: up to 3000 blocks take it through growths.
            let mut t = SizeTable {
                first_buckets: 128,
                ..SizeTable::new()
            };
            let mut model: HashMap<u64, u64> = HashMap::new();
            for (ins, slot, size) in ops {
                // Spread addresses the way allocators do: 16-aligned, clustered.
                let addr = slot * 16 + (slot / 7) * 4096;
                if ins {
                    let got = t.insert(pack(addr, size).unwrap());
                    prop_assert_eq!(got, model.insert(addr, size));
                } else {
                    prop_assert_eq!(t.remove(addr), model.remove(&addr));
                }
                prop_assert_eq!(t.len(), model.len());
                prop_assert_eq!(t.bytes(), model.values().sum::<u64>());
            }
            let mut all: Vec<_> = t.iter().collect();
            all.sort_unstable();
            let mut want: Vec<_> = model.into_iter().collect();
            want.sort_unstable();
            prop_assert_eq!(all, want);
        }

        /// The same in a table that queues its inserts, and with missed frees (an address
        /// allocated again while live), whose stale sizes come back later there: a caller
        /// that adds what it inserts and takes off what comes back ends with the exact
        /// total once the queue has moved on.
        #[test]
        fn agrees_with_a_hash_map_while_queueing(ops in proptest::collection::vec(op(), 1..2000)) {
            let mut t = queueing_table();
            let mut model: HashMap<u64, u64> = HashMap::new();
            let base = t.bytes();
            // What a caller keeps: the sum of sizes inserted, less what comes back.
            let mut total = base;
            for (ins, slot, size) in ops {
                // Few addresses, so that blocks are often freed while queued.
                let addr = (slot % 40 + 1) * 16 + (slot % 3) * 4096;
                if ins {
                    // What comes back may be another address's: the block that just
                    // left the queue.
                    let stale = t.insert(pack(addr, size).unwrap());
                    model.insert(addr, size);
                    total = total + size - stale.unwrap_or(0);
                } else {
                    let taken = t.take(addr);
                    prop_assert_eq!(taken.map(|t| t.size), model.remove(&addr));
                    total -= taken.map_or(0, |t| t.size + t.stale);
                }
                prop_assert!(t.len() >= PREFETCH_FROM_LEN + model.len());
            }
            // Fresh blocks push every queued one into the buckets.
            for i in 0..QUEUED as u64 {
                let fresh = 0x7000_0000 + 16 * i;
                total = total + 1 - t.insert(pack(fresh, 1).unwrap()).unwrap_or(0);
                model.insert(fresh, 1);
            }
            let live: u64 = model.values().sum();
            prop_assert_eq!(t.bytes(), base + live);
            prop_assert_eq!(total, base + live);
            prop_assert_eq!(t.len(), PREFETCH_FROM_LEN + model.len());
            let mut mine: Vec<_> = t.iter().filter(|&(a, _)| a < 1 << 32).collect();
            mine.sort_unstable();
            let mut want: Vec<_> = model.into_iter().collect();
            want.sort_unstable();
            prop_assert_eq!(mine, want);
        }
    }
}
