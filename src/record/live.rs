//! The live set: which addresses are allocated, how big, and by which stack.
//!
//! Every malloc and free goes through this map, so it is kept small and cheap: one `u64`
//! key and one packed `u64` value per live allocation. The rare allocation whose size or
//! stack id does not fit the packing goes to a side map.

use core::hash::{BuildHasherDefault, Hasher};
use hashbrown::HashMap;

use super::stacks::StackId;

const STACK_BITS: u32 = 24;
const SIZE_BITS: u32 = 64 - STACK_BITS;
const STACK_MASK: u64 = (1 << STACK_BITS) - 1;

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
        let m = u128::from(x ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
}

type AddrMap<V> = HashMap<u64, V, BuildHasherDefault<AddrHasher>>;

fn unpack(v: u64) -> LiveAlloc {
    LiveAlloc {
        size: v >> STACK_BITS,
        stack: (v & STACK_MASK) as StackId,
    }
}

/// One live allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveAlloc {
    pub size: u64,
    pub stack: StackId,
}

/// Address -> live allocation.
#[derive(Default, Clone)]
pub struct LiveHeap {
    packed: AddrMap<u64>,
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
        self.packed.len() + self.wide.len()
    }

    /// Whether nothing is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a new live allocation, returning the one it replaces at the same address
    /// (only possible when a free was missed).
    #[inline]
    pub fn insert(&mut self, addr: u64, alloc: LiveAlloc) -> Option<LiveAlloc> {
        if alloc.size >> SIZE_BITS == 0 && u64::from(alloc.stack) <= STACK_MASK {
            // One probe on the hot path: the insert itself reports what it replaced.
            let old = self
                .packed
                .insert(addr, (alloc.size << STACK_BITS) | u64::from(alloc.stack))
                .map(unpack);
            if old.is_some() || self.wide.is_empty() {
                return old;
            }
            self.wide.remove(&addr)
        } else {
            let old = self.packed.remove(&addr).map(unpack);
            self.wide.insert(addr, alloc).or(old)
        }
    }

    /// Removes and returns the allocation at `addr`, if it is live.
    #[inline]
    pub fn remove(&mut self, addr: u64) -> Option<LiveAlloc> {
        if let Some(v) = self.packed.remove(&addr) {
            return Some(unpack(v));
        }
        if self.wide.is_empty() {
            None
        } else {
            self.wide.remove(&addr)
        }
    }

    /// The allocation at `addr`, if live.
    pub fn get(&self, addr: u64) -> Option<LiveAlloc> {
        self.packed
            .get(&addr)
            .map(|&v| LiveAlloc {
                size: v >> STACK_BITS,
                stack: (v & STACK_MASK) as StackId,
            })
            .or_else(|| self.wide.get(&addr).copied())
    }

    /// Every live allocation, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, LiveAlloc)> + '_ {
        self.packed
            .iter()
            .map(|(&a, &v)| {
                (
                    a,
                    LiveAlloc {
                        size: v >> STACK_BITS,
                        stack: (v & STACK_MASK) as StackId,
                    },
                )
            })
            .chain(self.wide.iter().map(|(&a, &l)| (a, l)))
    }

    /// Approximate heap bytes the map uses, for the profiler's own accounting.
    pub fn heap_bytes(&self) -> usize {
        self.packed.capacity() * 17 + self.wide.capacity() * 25
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(h.len(), 3);
        assert_eq!(h.get(0x2000), Some(huge));
        assert_eq!(h.remove(0x1000), Some(small));
        assert_eq!(h.remove(0x1000), None);
        assert_eq!(h.remove(0x3000), Some(many));
        // Replacing a wide entry by a packed one at the same address returns the old one.
        assert_eq!(h.insert(0x2000, small), Some(huge));
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![(0x2000, small)]);
    }
}
