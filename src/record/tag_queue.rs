//! The last few inserts, held back in front of a table whose slots miss in cache.
//!
//! When a table is too big for the caches, the slot a new block goes to is a cache miss on
//! every allocation, and there is nothing to overlap it with: the address is known only
//! once the real allocator has returned. So a new block waits here for [`QUEUED`] more
//! allocations while its caller prefetches its slot, and enters the table when the line is
//! in cache; a block freed while queued never needs the table at all. Both the exact live
//! map (`queued.rs`) and sampled mode's size tables (`size_table.rs`) put one in front.

use super::swar::{bytes_equal, first_marked};

/// Inserts held back. Enough allocations for a prefetch to land (a few hundred ns of the
/// program's own work), few enough that a lookup compares all their tags in one word.
pub const QUEUED: usize = 8;

/// Up to [`QUEUED`] addresses, each with a value, the oldest pushed out by a new one.
#[derive(Clone, Copy, Debug)]
pub struct TagQueue<V> {
    /// Queued addresses; 0 is a free entry (no allocator hands out address 0).
    addr: [u64; QUEUED],
    /// One byte of each queued address ([`tag`]), so a lookup compares all eight in one
    /// word before it compares any address. A freed entry keeps its tag: its address, 0,
    /// never matches.
    tags: [u8; QUEUED],
    values: [V; QUEUED],
    /// The entry the next push takes (the oldest, when all are in use).
    next: usize,
}

/// The byte of an address a queue entry is tagged with: bits 4-11 (the low bits that vary
/// between heap blocks, which allocators align to 16 bytes) folded with bits 12-19, so that
/// page-aligned blocks differ too.
#[inline(always)]
pub fn tag(addr: u64) -> u8 {
    ((addr >> 4) ^ (addr >> 12)) as u8
}

impl<V: Copy + Default> Default for TagQueue<V> {
    fn default() -> Self {
        Self::new(V::default())
    }
}

impl<V: Copy> TagQueue<V> {
    /// An empty queue (`empty` fills the values of free entries).
    pub const fn new(empty: V) -> Self {
        Self {
            addr: [0; QUEUED],
            tags: [0; QUEUED],
            values: [empty; QUEUED],
            next: 0,
        }
    }

    /// The entry holding `addr` (never one for address 0, the free-entry mark). Every
    /// malloc and free asks, so it is kept short: the eight tags are compared at once in
    /// one word ([`bytes_equal`]), and only the candidates' addresses are compared. Eight
    /// 64-bit compares took ~34 instructions: the baseline x86-64 vector set has no 64-bit
    /// compare, so they did not vectorize.
    #[inline(always)]
    pub fn position(&self, addr: u64) -> Option<usize> {
        if addr == 0 {
            return None;
        }
        let candidates = bytes_equal(u64::from_le_bytes(self.tags), tag(addr));
        first_marked(candidates, |i| self.addr[i] == addr)
    }

    /// The value of entry `i` (from [`Self::position`]).
    #[inline(always)]
    pub fn value(&self, i: usize) -> V {
        self.values[i]
    }

    /// Gives entry `i` (from [`Self::position`]) a new value; returns the old one.
    #[inline(always)]
    pub fn replace(&mut self, i: usize, value: V) -> V {
        core::mem::replace(&mut self.values[i], value)
    }

    /// Frees entry `i` (from [`Self::position`]); returns its value.
    #[inline(always)]
    pub fn take(&mut self, i: usize) -> V {
        self.addr[i] = 0;
        self.values[i]
    }

    /// Queues `addr` (not queued already, not 0) in the oldest entry; returns what that
    /// entry held, if anything, for the caller to put in its table.
    #[inline(always)]
    pub fn push(&mut self, addr: u64, value: V) -> Option<(u64, V)> {
        let i = self.next;
        self.next = (i + 1) % QUEUED;
        self.tags[i] = tag(addr);
        let oldest = core::mem::replace(&mut self.addr[i], addr);
        let oldest_value = core::mem::replace(&mut self.values[i], value);
        (oldest != 0).then_some((oldest, oldest_value))
    }

    /// Number of queued entries (walks them: not for hooks).
    pub fn len(&self) -> usize {
        self.addr.iter().filter(|&&a| a != 0).count()
    }

    /// Every queued `(address, value)`, oldest first from the next push's entry on.
    pub fn iter(&self) -> impl Iterator<Item = (u64, V)> + '_ {
        self.addr
            .iter()
            .zip(&self.values)
            .filter(|(&a, _)| a != 0)
            .map(|(&a, &v)| (a, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_out_the_oldest_and_reuses_freed_entries() {
        let mut q = TagQueue::new(0u32);
        for i in 1..=QUEUED as u64 {
            assert_eq!(q.push(i * 16, i as u32), None);
        }
        assert_eq!(q.len(), QUEUED);
        let at = q.position(16).unwrap();
        assert_eq!(q.take(at), 1);
        assert_eq!((q.position(16), q.len()), (None, QUEUED - 1));
        // The freed entry is the next one pushed into: nothing comes out.
        assert_eq!(q.push(0x1000, 99), None);
        // Then the oldest left (address 32) does.
        assert_eq!(q.push(0x2000, 100), Some((32, 2)));
        assert_eq!(q.replace(q.position(0x1000).unwrap(), 7), 99);
        assert_eq!(q.value(q.position(0x1000).unwrap()), 7);
        let mut all: Vec<_> = q.iter().collect();
        all.sort_unstable();
        assert_eq!(all[..2], [(48, 3), (64, 4)]);
        assert_eq!(all.len(), QUEUED);
        assert_eq!(q.position(0), None);
    }
}
