//! The live set: which addresses are allocated, how big, and by which stack.
//!
//! Every malloc and free goes through this map, and a big program holds millions of live
//! blocks, so two things matter: one cache miss per operation, and few bytes per block.
//! A general-purpose hash map gives neither (hashbrown keeps its control bytes apart from
//! its 16-byte buckets: two misses, and ~17 bytes per bucket at a load between 44% and 88%).
//!
//! Here each slot is 12 bytes: a 48-bit address, a 24-bit stack id and a 24-bit size, all
//! in one place. Slots live in one array probed linearly with Robin Hood ordering (a key
//! never sits further from its home than the key it displaced), which keeps probes short
//! even at the 90% load this table runs at, and lets a lookup for an absent key stop early.
//! Deletion shifts the following run back by one (no tombstones). The table grows by half
//! its size, so its load stays between 53% and 80%: 15 to 23 bytes per live block.
//!
//! The rare block that does not fit (a size of 16 MiB or more, a stack id past 2^24, an
//! address past 2^48) goes to a side map.

use core::hash::{BuildHasherDefault, Hasher};
use hashbrown::HashMap;

use super::stacks::StackId;

const ADDR_BITS: u32 = 48;
const STACK_BITS: u32 = 24;
const SIZE_BITS: u32 = 24;
const ADDR_LIMIT: u64 = 1 << ADDR_BITS;
const STACK_LIMIT: u64 = 1 << STACK_BITS;
const SIZE_LIMIT: u64 = 1 << SIZE_BITS;

/// Load factor (in 1/1024ths) above which the table grows. Higher saves memory but
/// lengthens probes and the shifts after a removal (churn, sampled: 15% slower at 90%).
const MAX_LOAD_PER_1024: usize = 819;
/// Slots of a table's first allocation.
const MIN_SLOTS: usize = 64;

/// Hashes addresses: a folded 128-bit multiply spreads both the low bits (which malloc
/// aligns to 16) and the high bits (which are nearly constant) over the whole word.
#[derive(Default, Clone, Copy)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = mix(x ^ self.0);
    }
}

#[inline]
fn mix(x: u64) -> u64 {
    let m = u128::from(x).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    (m as u64) ^ ((m >> 64) as u64)
}

type AddrMap<V> = HashMap<u64, V, BuildHasherDefault<AddrHasher>>;

/// One live allocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveAlloc {
    pub size: u64,
    pub stack: StackId,
}

/// One slot: `[addr low 32 | addr high 16 + stack low 16 | stack high 8 + size 24]`.
/// Address 0 marks an empty slot (no allocator returns it for a live block).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Slot([u32; 3]);

impl Slot {
    const EMPTY: Slot = Slot([0; 3]);

    #[inline]
    fn pack(addr: u64, a: LiveAlloc) -> Slot {
        let stack = u64::from(a.stack);
        Slot([
            addr as u32,
            ((addr >> 32) as u32) | ((stack as u32 & 0xffff) << 16),
            ((stack >> 16) as u32) | ((a.size as u32) << 8),
        ])
    }

    #[inline]
    fn addr(self) -> u64 {
        u64::from(self.0[0]) | (u64::from(self.0[1] & 0xffff) << 32)
    }

    #[inline]
    fn is_empty(self) -> bool {
        self.0[0] == 0 && self.0[1] & 0xffff == 0
    }

    #[inline]
    fn alloc(self) -> LiveAlloc {
        LiveAlloc {
            stack: (self.0[1] >> 16) | ((self.0[2] & 0xff) << 16),
            size: u64::from(self.0[2] >> 8),
        }
    }
}

/// Whether `(addr, a)` fits a slot.
#[inline]
fn fits(addr: u64, a: LiveAlloc) -> bool {
    addr != 0 && addr < ADDR_LIMIT && a.size < SIZE_LIMIT && u64::from(a.stack) < STACK_LIMIT
}

/// Address -> live allocation.
#[derive(Default, Clone)]
pub struct LiveHeap {
    slots: Vec<Slot>,
    len: usize,
    wide: AddrMap<LiveAlloc>,
}

impl core::fmt::Debug for LiveHeap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LiveHeap")
            .field("len", &self.len())
            .finish()
    }
}

impl LiveHeap {
    /// An empty live set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of live allocations.
    pub fn len(&self) -> usize {
        self.len + self.wide.len()
    }

    /// Whether nothing is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The home slot of `addr` in a table of `n` slots: Fibonacci hashing (the high half of
    /// `addr * 2^64/phi` spreads both malloc's aligned low bits and its nearly constant high
    /// bits), scaled onto `0..n` by a multiply-shift, so `n` need not be a power of two. Two
    /// 64-bit multiplies: this runs for every slot a probe passes.
    ///
    /// Tried and dropped: placing blocks of one page in nearby slots, for cache locality;
    /// the clusters it makes cost more than the misses it saves (jq: 25% slower).
    #[inline]
    fn home(addr: u64, n: usize) -> usize {
        let h = addr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        ((h * n as u64) >> 32) as usize
    }

    /// How far the slot at index `i` (holding `s`) sits from its home.
    #[inline]
    fn distance(&self, s: Slot, i: usize) -> usize {
        let n = self.slots.len();
        let home = Self::home(s.addr(), n);
        if i >= home {
            i - home
        } else {
            i + n - home
        }
    }

    /// Index of `addr` in the table, if there.
    #[inline]
    fn find(&self, addr: u64) -> Option<usize> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let mut i = Self::home(addr, n);
        let mut dist = 0;
        loop {
            let s = self.slots[i];
            if s.addr() == addr && !s.is_empty() {
                return Some(i);
            }
            // Robin Hood: a key is never further from home than the key after it, so an
            // empty slot or one closer to its home than we are means `addr` is absent.
            if s.is_empty() || self.distance(s, i) < dist {
                return None;
            }
            dist += 1;
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    /// Records a new live allocation, returning the one it replaces at the same address
    /// (only possible when a free was missed).
    #[inline]
    pub fn insert(&mut self, addr: u64, alloc: LiveAlloc) -> Option<LiveAlloc> {
        if !fits(addr, alloc) {
            let old = self.remove_slot(addr);
            return self.wide.insert(addr, alloc).or(old);
        }
        if (self.len + 1) * 1024 > self.slots.len() * MAX_LOAD_PER_1024 {
            self.grow();
        }
        let old = self.insert_slot(Slot::pack(addr, alloc));
        if old.is_some() || self.wide.is_empty() {
            return old;
        }
        self.wide.remove(&addr)
    }

    /// Puts `slot` in the table (which has room), returning what it replaced.
    #[inline]
    fn insert_slot(&mut self, slot: Slot) -> Option<LiveAlloc> {
        let n = self.slots.len();
        let addr = slot.addr();
        let mut i = Self::home(addr, n);
        let mut dist = 0;
        // First pass: find the key or the place it belongs (one probe sequence).
        loop {
            let s = self.slots[i];
            if s.is_empty() {
                self.slots[i] = slot;
                self.len += 1;
                return None;
            }
            if s.addr() == addr {
                self.slots[i] = slot;
                return Some(s.alloc());
            }
            let d = self.distance(s, i);
            if d < dist {
                break;
            }
            dist += 1;
            i += 1;
            if i == n {
                i = 0;
            }
        }
        // `addr` is absent and takes slot `i`; the run from `i` to the next empty slot moves
        // up by one (each of those keys moves one further from home, which keeps the order).
        let mut carry = slot;
        loop {
            let s = core::mem::replace(&mut self.slots[i], carry);
            if s.is_empty() {
                self.len += 1;
                return None;
            }
            carry = s;
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    /// Removes the slot of `addr` from the table, if there.
    #[inline]
    fn remove_slot(&mut self, addr: u64) -> Option<LiveAlloc> {
        let mut i = self.find(addr)?;
        let found = self.slots[i].alloc();
        let n = self.slots.len();
        // Backward shift: pull each following key that is not at its home back by one.
        loop {
            let next = if i + 1 == n { 0 } else { i + 1 };
            let s = self.slots[next];
            if s.is_empty() || self.distance(s, next) == 0 {
                self.slots[i] = Slot::EMPTY;
                break;
            }
            self.slots[i] = s;
            i = next;
        }
        self.len -= 1;
        Some(found)
    }

    #[cold]
    fn grow(&mut self) {
        let n = (self.slots.len() + self.slots.len() / 2).max(MIN_SLOTS);
        let old = core::mem::replace(&mut self.slots, vec![Slot::EMPTY; n]);
        self.len = 0;
        for s in old {
            if !s.is_empty() {
                self.insert_slot(s);
            }
        }
    }

    /// Removes and returns the allocation at `addr`, if it is live.
    #[inline]
    pub fn remove(&mut self, addr: u64) -> Option<LiveAlloc> {
        if let Some(a) = self.remove_slot(addr) {
            return Some(a);
        }
        if self.wide.is_empty() {
            None
        } else {
            self.wide.remove(&addr)
        }
    }

    /// The allocation at `addr`, if live.
    pub fn get(&self, addr: u64) -> Option<LiveAlloc> {
        match self.find(addr) {
            Some(i) => Some(self.slots[i].alloc()),
            None => self.wide.get(&addr).copied(),
        }
    }

    /// Every live allocation, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, LiveAlloc)> + '_ {
        self.slots
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| (s.addr(), s.alloc()))
            .chain(self.wide.iter().map(|(&a, &l)| (a, l)))
    }

    /// Where the slot `addr` would be looked up first: `(table address, slot count)` from
    /// [`Self::table`] and this give a cache line a caller can prefetch before it takes the
    /// lock that guards the map, so the miss overlaps other work (unwinding, the real
    /// allocator). Any answer is harmless: it is only ever a hint.
    #[inline]
    pub fn home_byte_offset(addr: u64, slots: usize) -> usize {
        if slots == 0 {
            0
        } else {
            Self::home(addr, slots) * core::mem::size_of::<Slot>()
        }
    }

    /// The slot array's address and length, for [`Self::home_byte_offset`].
    #[inline]
    pub fn table(&self) -> (usize, usize) {
        (self.slots.as_ptr() as usize, self.slots.len())
    }

    /// Heap bytes the map uses, for the profiler's own accounting.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<Slot>() + self.wide.capacity() * 25
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::map_model::same_entries;
    use proptest::prelude::*;
    use std::collections::HashMap as StdMap;

    #[test]
    fn slots_are_twelve_bytes() {
        assert_eq!(core::mem::size_of::<Slot>(), 12);
        let a = LiveAlloc {
            size: SIZE_LIMIT - 1,
            stack: (STACK_LIMIT - 1) as StackId,
        };
        let s = Slot::pack(ADDR_LIMIT - 16, a);
        assert_eq!(s.addr(), ADDR_LIMIT - 16);
        assert_eq!(s.alloc(), a);
        assert!(!s.is_empty());
    }

    #[test]
    fn packs_and_unpacks_and_spills_wide_entries() {
        let mut h = LiveHeap::new();
        let small = LiveAlloc {
            size: 1000,
            stack: 7,
        };
        let huge = LiveAlloc {
            size: 1 << 45,
            stack: 3,
        };
        let many = LiveAlloc {
            size: 8,
            stack: 1 << 25,
        };
        assert_eq!(h.insert(0x1000, small), None);
        assert_eq!(h.insert(0x2000, huge), None);
        assert_eq!(h.insert(0x3000, many), None);
        assert_eq!(h.insert(1 << 50, small), None);
        assert_eq!(h.len(), 4);
        assert_eq!(h.get(0x2000), Some(huge));
        assert_eq!(h.get(1 << 50), Some(small));
        assert_eq!(h.remove(0x1000), Some(small));
        assert_eq!(h.remove(0x1000), None);
        assert_eq!(h.remove(0x3000), Some(many));
        assert_eq!(h.remove(1 << 50), Some(small));
        // Replacing a wide entry by a packed one at the same address returns the old one,
        // and the other way round.
        assert_eq!(h.insert(0x2000, small), Some(huge));
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![(0x2000, small)]);
        assert_eq!(h.insert(0x2000, huge), Some(small));
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![(0x2000, huge)]);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn bytes_per_live_block_stay_low_while_growing() {
        // The profiler's own memory: at most 23 bytes of table per live block (12-byte
        // slots at a load of at least 53%) once the table is past its first allocation.
        let mut h = LiveHeap::new();
        for i in 1..=200_000u64 {
            h.insert(
                i * 48,
                LiveAlloc {
                    size: i % 4096,
                    stack: (i % 1000) as StackId,
                },
            );
            if i >= 1000 {
                let per_block = h.heap_bytes() as f64 / h.len() as f64;
                assert!(
                    per_block <= 23.0,
                    "{per_block} bytes per block at {i} blocks"
                );
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64, u32),
        Remove(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few distinct addresses so that inserts replace and removes hit; sizes and stacks
        // sometimes past the packed limits; addresses sometimes past 48 bits.
        let addr = prop_oneof![
            8 => (1u64..300).prop_map(|a| a * 16),
            1 => (1u64..4).prop_map(|a| (1 << 50) + a * 16),
        ];
        let size = prop_oneof![9 => 0u64..5000, 1 => SIZE_LIMIT - 2..SIZE_LIMIT + 2];
        let stack =
            prop_oneof![9 => 0u32..100, 1 => (STACK_LIMIT as u32 - 2)..(STACK_LIMIT as u32 + 2)];
        prop_oneof![
            3 => (addr.clone(), size, stack).prop_map(|(a, s, k)| Op::Insert(a, s, k)),
            2 => addr.prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// The table behaves exactly like a standard map under any sequence of operations.
        #[test]
        fn matches_a_plain_map(ops in proptest::collection::vec(op(), 0..2000)) {
            let mut h = LiveHeap::new();
            let mut model: StdMap<u64, LiveAlloc> = StdMap::new();
            for op in ops {
                match op {
                    Op::Insert(a, size, stack) => {
                        let v = LiveAlloc { size, stack };
                        prop_assert_eq!(h.insert(a, v), model.insert(a, v));
                    }
                    Op::Remove(a) => prop_assert_eq!(h.remove(a), model.remove(&a)),
                }
                prop_assert_eq!(h.len(), model.len());
            }
            same_entries(|a| h.get(a), h.iter(), model)?;
        }
    }
}
