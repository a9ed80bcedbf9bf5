//! The live set: which addresses are allocated, how big, and by which stack.
//!
//! Every malloc and free goes through this map, and a big program holds millions of live
//! blocks, so two things matter: one cache miss per operation, and few bytes per block
//! (at most 16 is the goal). A general-purpose hash map gives neither (hashbrown keeps its
//! control bytes apart from its 16-byte buckets: two misses, and ~17 bytes per bucket at a
//! load between 44% and 88%).
//!
//! Here each block is a 10-byte slot in one array probed linearly with Robin Hood ordering
//! (a key never sits further from its home than the key it displaced), which keeps probes
//! short and lets a lookup for an absent key stop early; deletion shifts the following run
//! back by one (no tombstones). The table grows by a quarter at 80% load, so it stays
//! 64-80% full: 12.5 to 15.6 bytes per block. (Growing by half, as a 12-byte layout did
//! before, left it 53-80% full: 15 to 23 bytes.) Blocks of one home are kept in the order
//! of their hashes, so the whole table is in hash order, and a growth is one front-to-back
//! pass that writes the new table in order ([`LiveHeap::refill`]). A block is still moved
//! about four times over the table's life instead of twice, and the growths take ~3.5
//! times the instructions they took with 12-byte slots (jq, 15k records: 165 M against
//! 46 M), but they run in order and jq's wall time did not move measurably.
//!
//! The slot does not hold the address, only what its position does not tell (quotienting,
//! as in quotient filters): an address is a 44-bit key (8-aligned, below 2^47), an
//! invertible mix (multiply, fold, multiply) turns it into a 44-bit hash, and the hash's
//! top `q` bits (`q` = log2 of the slot count, rounded down) pick the home slot. The slot
//! keeps the other `44 - q` bits and how far it sits from home (7 bits); from those and its
//! position the key, and so the address, comes back. The rest of the 80 bits holds a 24-bit stack id
//! and the size: `5 + q` bits (19 bits, 512 KiB, in the first table of 16384 slots; 26 bits,
//! 64 MiB, from a million slots on). Probing compares one word per slot, with no hashing.
//! A table stops growing at 2^31 slots (1.7 billion live blocks, 20 GiB): a home's
//! multiply would overflow past 2^32. Blocks past that go to the side map, slower but
//! exact.
//!
//! The rare block that does not fit (an address not 8-aligned or past 2^47, a stack id
//! past 2^24, a size past the slot's field, or a block more than 126 slots from home) goes
//! to a side map; blocks there that fit a grown table move back into it.

use core::hash::{BuildHasherDefault, Hasher};
use hashbrown::HashMap;

use super::stacks::StackId;

/// Bits of the key: an 8-aligned address below 2^47, shifted right by 3.
const KEY_BITS: u32 = 44;
const KEY_MASK: u64 = (1 << KEY_BITS) - 1;
const ADDR_LIMIT: u64 = 1 << (KEY_BITS + 3);
const STACK_BITS: u32 = 24;
const STACK_LIMIT: u64 = 1 << STACK_BITS;
/// A slot's low bits: its distance from home plus one; 0 marks an empty slot.
const DIST_BITS: u32 = 7;
const DIST_MASK: u64 = (1 << DIST_BITS) - 1;
/// The stored distance-plus-one of a block as far from home as a slot can say.
const FARTHEST: u64 = DIST_MASK;
const SLOT_BYTES: usize = 10;

/// Fibonacci hashing in 44 bits: 2^44 / phi, made odd so that the multiply is invertible.
const MUL: u64 = (0x9E37_79B9_7F4A_7C15 >> (64 - KEY_BITS)) | 1;
/// The inverse of [`MUL`] modulo 2^44: turns a hash back into its key.
const MUL_INV: u64 = inverse(MUL) & KEY_MASK;

/// Multiplicative inverse of an odd number modulo 2^64 (Newton's iteration: each step
/// doubles the correct low bits, from 3).
const fn inverse(a: u64) -> u64 {
    let mut x = a;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

/// Load factor (in 1/1024ths) above which the table grows. Higher saves memory but
/// lengthens probes and the shifts after a removal (churn, sampled: 15% slower at 90%).
const MAX_LOAD_PER_1024: usize = 819;
/// The table grows to this many slots per old slot: a quarter more, so it is 64% full
/// right after. A smaller step keeps it fuller but moves more blocks (over the table's
/// life, `1 / (step - 1)` times its final size: 4x here).
const GROWTH: (usize, usize) = (5, 4);
/// Slots of a table's first allocation (160 KiB, mapped by the allocator and paid for only
/// where touched). A live set of up to ~13,000 blocks then sits in a table that is mostly
/// empty: its probes and the shifts after a removal are a slot or two, and their loop
/// branches predictable. At 64-80% load they vary in length and mispredict: with a first
/// table of 1024 slots, `churn`'s ~1000 live blocks kept it that full and the table took
/// ~12% of exact churn's time (interleaved A/B: 3.97x with 1024 slots, 3.52x with 4096,
/// 3.46x with 32768). With 4 threads (~4000 live blocks) 4096 slots filled up again and
/// 16384 took `churn_mt` from 5.51x to 4.77x (5.14x with 1024). Past this first table
/// the load is 64-80% as before (see the module comment): 160 KiB is what a small live
/// set costs, and big ones are unchanged.
const MIN_SLOTS: usize = 16384;
/// Slots a table grows to at most (see the module comment).
const MAX_SLOTS: usize = 1 << 31;

/// Hashes addresses (for the side map): a folded 128-bit multiply spreads both the low
/// bits (which malloc aligns to 16) and the high bits (which are nearly constant) over the
/// whole word.
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

/// The 44-bit hash of an address's key (for an address that fits: see [`Shape::fits`]).
///
/// Multiply, fold the top half into the bottom, multiply again. One multiply (Fibonacci
/// hashing) spreads consecutive addresses perfectly, but blocks at some fixed strides
/// (3904 bytes: glibc's chunks for 3.8 KiB requests, one after another) land on a few
/// homes, and in this table a block more than 126 slots from home goes to the side map:
/// 35% of a million such blocks did. The fold and second multiply break up those strides
/// (none sends a block to the side map) and stay invertible.
#[inline]
fn hash(addr: u64) -> u64 {
    let h = (addr >> 3).wrapping_mul(MUL) & KEY_MASK;
    (h ^ (h >> (KEY_BITS / 2))).wrapping_mul(MUL) & KEY_MASK
}

/// One slot, as two words: `lo` holds `[distance + 1: 7 | hash remainder: 44 - q |
/// size: 5 + q | stack bits 0-7: 8]` from its low bit up, `hi` the stack's bits 8-23. Every
/// field is read with 64-bit shifts, and the stack stays where it is when a growth moves
/// the other fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slot {
    lo: u64,
    hi: u16,
}

impl Slot {
    const EMPTY: Slot = Slot { lo: 0, hi: 0 };

    /// Distance from home plus one: 0 for an empty slot.
    #[inline]
    fn dist1(self) -> u64 {
        self.lo & DIST_MASK
    }

    /// The same block one slot further from home (`delta` 1) or nearer (`u64::MAX`).
    #[inline]
    fn moved(self, delta: u64) -> Slot {
        Slot {
            lo: self.lo.wrapping_add(delta),
            hi: self.hi,
        }
    }
}

/// Where the stack's low bits start in [`Slot::lo`].
const STACK_LO_SHIFT: u32 = 56;

/// A table's size and what follows from it: where a hash's home is, and where a slot's
/// fields are.
#[derive(Clone, Copy, Debug, Default)]
struct Shape {
    /// Slots.
    n: usize,
    /// log2(n) rounded down: the hash's top `q` bits pick the home, `n / 2^q` in [1, 2)
    /// slots apart, so no two of them share one.
    q: u32,
    /// `floor((2^64 - 1) / n)`, to find which top bits a home came from without dividing.
    reciprocal: u64,
    // What follows from `q`, worked out once: every malloc and free would otherwise
    // compute them again (cc1: ~20 instructions an insert).
    /// Bits of the hash a slot keeps: `44 - q`.
    rem_bits: u32,
    /// Where the size starts in [`Slot::lo`].
    size_shift: u32,
    /// `2^rem_bits - 1`.
    rem_mask: u64,
    /// Sizes below this fit a slot.
    size_limit: u64,
}

impl Shape {
    fn new(n: usize) -> Shape {
        debug_assert!(n > 0 && n <= MAX_SLOTS);
        let q = n.ilog2();
        let rem_bits = KEY_BITS - q;
        let size_shift = DIST_BITS + rem_bits;
        Shape {
            n,
            q,
            reciprocal: u64::MAX / n as u64,
            rem_bits,
            size_shift,
            rem_mask: (1 << rem_bits) - 1,
            size_limit: 1 << (STACK_LO_SHIFT - size_shift),
        }
    }

    /// Whether `(addr, a)` fits a slot of this table.
    #[inline]
    fn fits(self, addr: u64, a: LiveAlloc) -> bool {
        has_key(addr) && a.size < self.size_limit && u64::from(a.stack) < STACK_LIMIT
    }

    /// Home slot and remainder of a hash.
    #[inline]
    fn split(self, h: u64) -> (usize, u64) {
        (home_of(h, self.n, self.q), h & self.rem_mask)
    }

    /// The hash's top bits that have `home` as their home (which must be one).
    #[inline]
    fn top_of(self, home: usize) -> u64 {
        let shifted = (home as u64) << self.q;
        // At most two below ceil(shifted / n); the home of top bits only grows with them.
        let mut top = ((u128::from(shifted) * u128::from(self.reciprocal)) >> 64) as u64;
        while ((top * self.n as u64) >> self.q) < home as u64 {
            top += 1;
        }
        top
    }

    /// The home of the block in slot `s` at index `i`.
    #[inline]
    fn home_at(self, s: Slot, i: usize) -> usize {
        let dist = s.dist1() as usize - 1;
        if i >= dist {
            i - dist
        } else {
            i + self.n - dist
        }
    }

    /// The hash of the block in slot `s` at index `i`.
    #[inline]
    fn hash_at(self, s: Slot, i: usize) -> u64 {
        (self.top_of(self.home_at(s, i)) << self.rem_bits) | self.rem(s)
    }

    /// The hash remainder a slot keeps.
    #[inline]
    fn rem(self, s: Slot) -> u64 {
        (s.lo >> DIST_BITS) & self.rem_mask
    }

    /// The low bits of a slot that identify its block at a given distance from home.
    #[inline]
    fn key_mask(self) -> u64 {
        (self.rem_mask << DIST_BITS) | DIST_MASK
    }

    /// A block's slot (its size below [`Self::size_limit`], its stack below 2^24).
    #[inline]
    fn pack(self, dist1: u64, rem: u64, a: LiveAlloc) -> Slot {
        let stack = u64::from(a.stack);
        Slot {
            lo: dist1
                | (rem << DIST_BITS)
                | (a.size << self.size_shift)
                | (stack << STACK_LO_SHIFT),
            hi: (stack >> (64 - STACK_LO_SHIFT)) as u16,
        }
    }

    #[inline]
    fn alloc(self, s: Slot) -> LiveAlloc {
        LiveAlloc {
            stack: ((s.lo >> STACK_LO_SHIFT) | (u64::from(s.hi) << (64 - STACK_LO_SHIFT)))
                as StackId,
            size: (s.lo & ((1 << STACK_LO_SHIFT) - 1)) >> self.size_shift,
        }
    }

    #[inline]
    fn next(self, i: usize) -> usize {
        if i + 1 == self.n {
            0
        } else {
            i + 1
        }
    }
}

/// The home slot of hash `h` in a table of `n` slots, `q` = log2(n) rounded down: its top
/// `q` bits scaled onto the slots (a multiply and a shift; `n` need not be a power of two).
#[inline]
fn home_of(h: u64, n: usize, q: u32) -> usize {
    (((h >> (KEY_BITS - q)) * n as u64) >> q) as usize
}

/// Whether `addr` has a key: 8-aligned and below 2^47.
#[inline]
fn has_key(addr: u64) -> bool {
    addr & 7 == 0 && addr < ADDR_LIMIT
}

/// The address of a key's hash.
#[inline]
fn addr_of(h: u64) -> u64 {
    // The fold undoes itself: its top half is unchanged, so folding again cancels it.
    let h = h.wrapping_mul(MUL_INV) & KEY_MASK;
    ((h ^ (h >> (KEY_BITS / 2))).wrapping_mul(MUL_INV) & KEY_MASK) << 3
}

/// (Through fixed-size arrays: one load each. Built byte by byte, the compiler kept the
/// eight loads and shifts.)
#[inline]
fn low_of(s: &[u8; SLOT_BYTES]) -> u64 {
    let (lo, _) = s.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
    u64::from_le_bytes(*lo)
}

#[inline]
fn read_slot(s: &[u8; SLOT_BYTES]) -> Slot {
    let (_, hi) = s.split_last_chunk::<2>().unwrap_or((&[], &[0; 2]));
    Slot {
        lo: low_of(s),
        hi: u16::from_le_bytes(*hi),
    }
}

#[inline]
fn write_slot(bytes: &mut [u8; SLOT_BYTES], s: Slot) {
    bytes[..8].copy_from_slice(&s.lo.to_le_bytes());
    bytes[8..].copy_from_slice(&s.hi.to_le_bytes());
}

/// What [`LiveHeap::insert_hashed`] did.
enum Placed {
    New,
    Replaced(LiveAlloc),
    /// The block would sit too far from home: it is not in the table.
    TooFar,
}

/// Address -> live allocation.
#[derive(Clone)]
pub struct LiveHeap {
    /// `shape.n` slots of [`SLOT_BYTES`].
    slots: Vec<[u8; SLOT_BYTES]>,
    shape: Shape,
    len: usize,
    wide: AddrMap<LiveAlloc>,
    /// The most slots the table may grow to: [`MAX_SLOTS`] (tests set less).
    max_slots: usize,
    /// The slots of its first allocation: [`MIN_SLOTS`] (tests set less, so that a few
    /// thousand blocks take it through growths and past its smaller size fields).
    min_slots: usize,
    /// Gives the memory of old slots a growth has moved back to the system before the
    /// growth ends (see [`Self::set_release`]).
    release: Option<Release>,
}

/// A function that may hand the pages inside `bytes` back to the system (their contents
/// are not read again; they may read as zeros afterwards).
pub type Release = fn(bytes: &mut [u8]);

/// Old slots a growth moves between two calls of its [`Release`] (640 KiB).
const RELEASE_SLOTS: usize = 1 << 16;

impl Default for LiveHeap {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            shape: Shape::default(),
            len: 0,
            wide: AddrMap::default(),
            max_slots: MAX_SLOTS,
            min_slots: MIN_SLOTS,
            release: None,
        }
    }
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

    /// The slot's `lo` word: what a probe compares.
    #[inline]
    fn low(&self, i: usize) -> u64 {
        low_of(&self.slots[i])
    }

    #[inline]
    fn read(&self, i: usize) -> Slot {
        read_slot(&self.slots[i])
    }

    #[inline]
    fn write(&mut self, i: usize, s: Slot) {
        write_slot(&mut self.slots[i], s);
    }

    /// Index of `addr` in the table, if there.
    #[inline]
    fn find(&self, addr: u64) -> Option<usize> {
        let shape = self.shape;
        if shape.n == 0 || !has_key(addr) {
            return None;
        }
        let (mut i, rem) = shape.split(hash(addr));
        let mask = shape.key_mask();
        let mut want = (rem << DIST_BITS) | 1;
        loop {
            let s = self.low(i);
            if s & mask == want {
                return Some(i);
            }
            // Robin Hood: a key is never further from home than the key after it, so an
            // empty slot (0) or one closer to its home than we are means `addr` is absent;
            // and no block sits further than a slot can say.
            if s & DIST_MASK < want & DIST_MASK || want & DIST_MASK == FARTHEST {
                return None;
            }
            want += 1;
            i = shape.next(i);
        }
    }

    /// Records a new live allocation, returning the one it replaces at the same address
    /// (only possible when a free was missed).
    #[inline]
    pub fn insert(&mut self, addr: u64, alloc: LiveAlloc) -> Option<LiveAlloc> {
        let full = (self.len + 1) * 1024 > self.shape.n * MAX_LOAD_PER_1024 && !self.grow();
        if full || !self.shape.fits(addr, alloc) {
            let old = self.remove_slot(addr);
            return self.wide.insert(addr, alloc).or(old);
        }
        match self.insert_hashed(hash(addr), alloc) {
            Placed::Replaced(old) => Some(old),
            Placed::New if self.wide.is_empty() => None,
            Placed::New => self.wide.remove(&addr),
            Placed::TooFar => self.wide.insert(addr, alloc),
        }
    }

    /// Puts the block with hash `h` in the table (which has room), unless it would sit too
    /// far from home. A block the shift pushes too far moves to the side map.
    #[inline]
    fn insert_hashed(&mut self, h: u64, alloc: LiveAlloc) -> Placed {
        let shape = self.shape;
        let (mut i, rem) = shape.split(h);
        let mask = shape.key_mask();
        let mut dist1 = 1;
        // First pass: find the key or the place it belongs (one probe sequence).
        loop {
            let s = self.low(i);
            let here = s & DIST_MASK;
            if here == 0 {
                self.write(i, shape.pack(dist1, rem, alloc));
                self.len += 1;
                return Placed::New;
            }
            let key = s & mask;
            let want = (rem << DIST_BITS) | dist1;
            if key == want {
                let old = shape.alloc(self.read(i));
                self.write(i, shape.pack(dist1, rem, alloc));
                return Placed::Replaced(old);
            }
            // Robin Hood: before the first block homed later; and blocks of one home in
            // the order of their remainders, so that the whole table is in hash order
            // (which a growth relies on).
            if here < dist1 || (here == dist1 && key > want) {
                break;
            }
            if dist1 == FARTHEST {
                return Placed::TooFar;
            }
            dist1 += 1;
            i = shape.next(i);
        }
        // `h` is absent and takes slot `i`; the run from `i` to the next empty slot moves
        // up by one (each of those keys moves one further from home, which keeps the order).
        let mut carry = shape.pack(dist1, rem, alloc);
        loop {
            let s = self.read(i);
            self.write(i, carry);
            if s == Slot::EMPTY {
                self.len += 1;
                return Placed::New;
            }
            if s.dist1() == FARTHEST {
                // One further than a slot can say: out to the side map.
                self.wide
                    .insert(addr_of(shape.hash_at(s, i)), shape.alloc(s));
                return Placed::New;
            }
            carry = s.moved(1);
            i = shape.next(i);
        }
    }

    /// Removes the block in slot `i`.
    #[inline]
    fn remove_at(&mut self, mut i: usize) {
        let shape = self.shape;
        // Backward shift: pull each following key that is not at its home back by one.
        loop {
            let next = shape.next(i);
            let s = self.read(next);
            if s.dist1() <= 1 {
                self.write(i, Slot::EMPTY);
                break;
            }
            self.write(i, s.moved(u64::MAX));
            i = next;
        }
        self.len -= 1;
    }

    /// Removes the slot of `addr` from the table, if there.
    #[inline]
    fn remove_slot(&mut self, addr: u64) -> Option<LiveAlloc> {
        let i = self.find(addr)?;
        let found = self.shape.alloc(self.read(i));
        self.remove_at(i);
        Some(found)
    }

    /// Grows the table by a step, up to its largest size; returns whether it grew.
    #[cold]
    fn grow(&mut self) -> bool {
        let n = (self.shape.n * GROWTH.0 / GROWTH.1)
            .max(self.min_slots)
            .min(self.max_slots);
        if n <= self.shape.n {
            return false;
        }
        self.resize(n);
        true
    }

    /// Lets growths hand the old table's memory back as they go: the pass that moves the
    /// blocks calls `release` on each stretch of old slots it is done with. Without it,
    /// the old and the new table are both resident until the pass ends: 2.25 times the
    /// old table, which is the process's peak memory when a growth falls on the program's
    /// own peak (jq at 150k records: +78 MiB where the table alone is 43 MiB). With it,
    /// the new table fills as the old one empties: at most the new table and one stretch.
    pub fn set_release(&mut self, release: Release) {
        self.release = Some(release);
    }

    /// Moves every block into a table of `n` slots (which must have room for them all);
    /// returns how many the one pass of [`Self::refill`] left to probing.
    fn resize(&mut self, n: usize) -> usize {
        let old_shape = self.shape;
        let mut old = core::mem::replace(&mut self.slots, vec![[0; SLOT_BYTES]; n]);
        self.shape = Shape::new(n);
        self.len = 0;
        let probed = if old.is_empty() {
            0
        } else {
            self.refill(&mut old, old_shape)
        };
        drop(old);
        // The grown slots take bigger sizes: blocks set aside that fit now move in.
        if self.wide.is_empty() {
            return probed;
        }
        let shape = self.shape;
        let fitting: Vec<(u64, LiveAlloc)> = self
            .wide
            .iter()
            .filter(|&(&a, &l)| shape.fits(a, l))
            .map(|(&a, &l)| (a, l))
            .collect();
        for (a, l) in fitting {
            if self.len * 1024 >= self.shape.n * MAX_LOAD_PER_1024 {
                break;
            }
            if let Placed::New = self.insert_hashed(hash(a), l) {
                self.wide.remove(&a);
            }
        }
        probed
    }

    /// Puts the blocks of `old` (a full table of shape `old_shape`) into this table, just
    /// grown and empty. Inserting them one by one probed through the runs of an 80%-full
    /// table for each: ~180 instructions a block, and growing by a quarter moves every
    /// block about four times over the table's life (jq: 10% slower in interleaved runs).
    /// But the table is kept in hash order, and homes only grow with the hash, so one pass
    /// writes the new table front to back, each block at its new home or right after the
    /// one before: ~85 instructions a block, in order (jq: as fast as before, within noise).
    /// Returns how many blocks were left to probing: those that came around the table
    /// into the first ones placed (only seen when shrinking, which tests do), and those
    /// the pass would put more than 126 slots from home (crowded hashes), which probing
    /// may place nearer by shifting others.
    fn refill(&mut self, old: &mut [[u8; SLOT_BYTES]], old_shape: Shape) -> usize {
        let shape = self.shape;
        let n = shape.n;
        // Start after an empty slot: no run crosses one, so from there on, around the end
        // and back, hashes only grow, from the top bits `first_top` on.
        let start = (0..old_shape.n)
            .find(|&i| low_of(&old[i]) == 0)
            .unwrap_or(0);
        let first = old_shape.next(start);
        let first_top = old_shape.top_of(first);
        let c0 = shape.split(first_top << old_shape.rem_bits).0;
        // Positions are counted from `c0`, in the pass's order: where the next block goes
        // at the earliest, and where a block would come around into the first one.
        let mut next = 0;
        let mut limit = usize::MAX;
        // Blocks too far from home, too big for a shrunk table's slots, or come around:
        // rare, handled after the pass, which keeps the loop's values in registers.
        let mut set_aside: Vec<(u64, LiveAlloc)> = Vec::new();
        // The fields of a slot move as whole bit ranges; the stack's stay where they are.
        let (old_n, old_q, old_rem_bits) = (old_shape.n, old_shape.q, old_shape.rem_bits);
        let old_size_shift = old_shape.size_shift;
        let (rem_mask, size_shift, size_limit) =
            (shape.rem_mask, shape.size_shift, shape.size_limit);
        // The old hash's top bits, walked up with the homes (which only grow, but for one
        // turn back to 0 past the end): `home` is theirs, `scaled` is `top * old_n`.
        let mut top = first_top as usize;
        let mut scaled = top * old_n;
        let mut home = scaled >> old_q;
        // Added to a new home to count it from `c0`: past the turn, one table further.
        let mut offset = 0usize.wrapping_sub(c0);
        let slots = &mut self.slots[..];
        let release = self.release;
        // Old slots `done..i` are moved and not yet released (the pass goes from `first`
        // to the end, then from 0 to `first`).
        let mut done = first;
        let mut placed = 0;
        let mut i = first;
        for _ in 0..old_n {
            let s = read_slot(&old[i]);
            let at = i;
            i = old_shape.next(i);
            if let Some(release) = release {
                if i == 0 || i - done >= RELEASE_SLOTS {
                    release(old[done..at + 1].as_flattened_mut());
                    done = i;
                }
            }
            if s == Slot::EMPTY {
                continue;
            }
            let at_home = old_shape.home_at(s, at);
            if at_home < home {
                (top, scaled, home) = (0, 0, 0);
                offset = n.wrapping_sub(c0);
            }
            while home < at_home {
                top += 1;
                scaled += old_n;
                home = scaled >> old_q;
            }
            let h = ((top as u64) << old_rem_bits) | old_shape.rem(s);
            let from = home_of(h, n, shape.q).wrapping_add(offset);
            let pos = from.max(next);
            let size = (s.lo & ((1 << STACK_LO_SHIFT) - 1)) >> old_size_shift;
            if pos - from >= FARTHEST as usize || size >= size_limit || pos >= limit {
                set_aside.push((h, old_shape.alloc(s)));
                continue;
            }
            let mut to = c0 + pos;
            while to >= n {
                to -= n;
            }
            let lo = (pos - from + 1) as u64
                | ((h & rem_mask) << DIST_BITS)
                | (size << size_shift)
                | (s.lo & !((1 << STACK_LO_SHIFT) - 1));
            write_slot(&mut slots[to], Slot { lo, hi: s.hi });
            placed += 1;
            if limit == usize::MAX {
                limit = pos + n;
            }
            next = pos + 1;
        }
        // The pass came around to `first`: what it moved since the last release.
        if let (Some(release), true) = (release, done < i) {
            release(old[done..i].as_flattened_mut());
        }
        self.len += placed;
        let mut probed = 0;
        for (h, a) in set_aside {
            if !shape.fits(addr_of(h), a) {
                self.wide.insert(addr_of(h), a);
                continue;
            }
            probed += 1;
            if let Placed::TooFar = self.insert_hashed(h, a) {
                self.wide.insert(addr_of(h), a);
            }
        }
        probed
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
            Some(i) => Some(self.shape.alloc(self.read(i))),
            None => self.wide.get(&addr).copied(),
        }
    }

    /// Every live allocation, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, LiveAlloc)> + '_ {
        let shape = self.shape;
        (0..self.slots.len())
            .map(|i| (i, self.read(i)))
            .filter(|&(_, s)| s != Slot::EMPTY)
            .map(move |(i, s)| (addr_of(shape.hash_at(s, i)), shape.alloc(s)))
            .chain(self.wide.iter().map(|(&a, &l)| (a, l)))
    }

    /// Where the slot `addr` would be looked up first: `(table address, slot count)` from
    /// [`Self::table`] and this give a cache line a caller can prefetch before it takes the
    /// lock that guards the map, so the miss overlaps other work (unwinding, the real
    /// allocator). Any answer is harmless: it is only ever a hint.
    #[inline]
    pub fn home_byte_offset(addr: u64, slots: usize) -> usize {
        if slots == 0 || slots > MAX_SLOTS {
            0
        } else {
            home_of(hash(addr), slots, slots.ilog2()) * SLOT_BYTES
        }
    }

    /// The slot array's address and length, for [`Self::home_byte_offset`].
    #[inline]
    pub fn table(&self) -> (usize, usize) {
        (self.slots.as_ptr() as usize, self.slots.len())
    }

    /// Heap bytes the map uses, for the profiler's own accounting.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * SLOT_BYTES + self.wide.capacity() * 25
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::map_model::same_entries;
    use proptest::prelude::*;
    use std::collections::HashMap as StdMap;

    fn block(size: u64, stack: u32) -> LiveAlloc {
        LiveAlloc { size, stack }
    }

    /// A table that has allocated its first slots (and holds nothing).
    fn allocated() -> LiveHeap {
        let mut h = LiveHeap::new();
        h.insert(16, block(1, 1));
        h.remove(16);
        h
    }

    /// `count` addresses whose hashes have the top bits `top` in `h`'s table: they all
    /// share one home slot.
    fn homed_at(h: &LiveHeap, top: u64, count: u64) -> Vec<u64> {
        let r = h.shape.rem_bits;
        (0..count).map(|rem| addr_of((top << r) | rem)).collect()
    }

    #[test]
    fn slots_are_ten_bytes_and_hold_the_largest_fields() {
        assert_eq!(core::mem::size_of::<[u8; SLOT_BYTES]>(), 10);
        for n in [1024, 1025, 5000, (1 << 20) + 3, (1 << 30) - 1] {
            let shape = Shape::new(n);
            let a = block(shape.size_limit - 1, (STACK_LIMIT - 1) as StackId);
            let rem = (1 << shape.rem_bits) - 1;
            let s = shape.pack(FARTHEST, rem, a);
            assert_eq!(shape.alloc(s), a, "{n} slots");
            assert_eq!(s.lo & shape.key_mask(), (rem << DIST_BITS) | FARTHEST);
            assert_eq!(shape.rem(s), rem);
            // Fields side by side, none over another: all ones in the largest values.
            assert_eq!((s.lo, s.hi), (u64::MAX, u16::MAX), "{n} slots");
            // A block at the last slot, as far from home as can be, wraps back.
            let top = shape.top_of(n - 1 - (FARTHEST as usize - 1));
            assert_eq!(shape.hash_at(s, n - 1) >> shape.rem_bits, top);
        }
        // 512 KiB in the first table, 64 MiB from 2^20 slots on.
        assert_eq!(Shape::new(MIN_SLOTS).size_limit, 1 << 19);
        assert_eq!(Shape::new(1024).size_limit, 1 << 15);
        assert_eq!(Shape::new(1 << 20).size_limit, 1 << 25);
        assert_eq!(Shape::new((1 << 21) - 1).size_limit, 1 << 25);
    }

    #[test]
    fn packs_and_unpacks_and_spills_wide_entries() {
        let mut h = LiveHeap::new();
        let small = block(1000, 7);
        let huge = block(1 << 45, 3);
        let many = block(8, 1 << 25);
        assert_eq!(h.insert(0x1000, small), None);
        assert_eq!(h.insert(0x2000, huge), None);
        assert_eq!(h.insert(0x3000, many), None);
        assert_eq!(h.insert(1 << 50, small), None);
        assert_eq!(h.insert(0x4004, small), None, "not 8-aligned");
        assert_eq!(h.insert(0x5008, small), None, "8-aligned");
        assert_eq!(h.wide.len(), 4);
        assert_eq!(h.len(), 6);
        assert_eq!(h.get(0x2000), Some(huge));
        assert_eq!(h.get(1 << 50), Some(small));
        assert_eq!(h.get(0x4004), Some(small));
        assert_eq!(h.get(0x5008), Some(small));
        assert_eq!(h.get(0x5000), None);
        assert_eq!(h.remove(0x1000), Some(small));
        assert_eq!(h.remove(0x1000), None);
        assert_eq!(h.remove(0x3000), Some(many));
        assert_eq!(h.remove(1 << 50), Some(small));
        assert_eq!(h.remove(0x4004), Some(small));
        assert_eq!(h.remove(0x5008), Some(small));
        // Replacing a wide entry by a packed one at the same address returns the old one,
        // and the other way round.
        assert_eq!(h.insert(0x2000, small), Some(huge));
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![(0x2000, small)]);
        assert_eq!(h.insert(0x2000, huge), Some(small));
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![(0x2000, huge)]);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn at_most_16_bytes_per_live_block_while_growing() {
        // The profiler's own memory: slots of 10 bytes at a load of at least 64% once the
        // table is past its first allocation (160 KiB): at most 15.7 bytes per block.
        let mut h = LiveHeap::new();
        let mut growths = 0;
        for i in 1..=300_000u64 {
            let before = h.slots.len();
            h.insert(
                0x5555_0000_0000 + i * 48,
                block(i % 4096, (i % 1000) as StackId),
            );
            growths += usize::from(h.slots.len() != before);
            if i >= 10_500 {
                let per_block = h.heap_bytes() as f64 / h.len() as f64;
                assert!(
                    per_block <= 15.7,
                    "{per_block} bytes per block at {i} blocks"
                );
            }
        }
        assert!(h.wide.is_empty());
        check_slots(&h);
        // The first 16384 slots, then a quarter more each time to hold 300k blocks at 80%:
        // 15 growths (from 1024 slots, 27; growing by half, from 64 slots, 22).
        assert_eq!(growths, 1 + 15, "{} slots", h.slots.len());
    }

    thread_local! {
        /// Bytes handed to [`scribble`] by this thread's growths, and how many calls.
        static RELEASED: core::cell::Cell<(usize, usize)> = const { core::cell::Cell::new((0, 0)) };
    }

    /// A [`Release`] that writes over what it is given (as if the pages came back zeroed,
    /// or worse): a growth that read those slots again would lose or invent blocks.
    fn scribble(bytes: &mut [u8]) {
        bytes.fill(0xA5);
        RELEASED.with(|r| {
            let (n, calls) = r.get();
            r.set((n + bytes.len(), calls + 1));
        });
    }

    #[test]
    fn growths_release_old_slots_as_they_go_and_never_read_them_again() {
        let mut h = LiveHeap::new();
        h.set_release(scribble);
        let addr = |i: u64| 0x5555_0000_0000 + i * 48;
        let mut old_bytes = 0;
        for i in 0..1_000_000u64 {
            let before = h.slots.len();
            h.insert(addr(i), block(i % 5000, (i % 777) as StackId));
            if h.slots.len() != before {
                old_bytes += before * SLOT_BYTES;
            }
        }
        check_slots(&h);
        assert!(h.wide.is_empty());
        for i in (0..1_000_000u64).step_by(7) {
            assert_eq!(h.get(addr(i)), Some(block(i % 5000, (i % 777) as StackId)));
        }
        // Every old slot of every growth went back, in stretches of RELEASE_SLOTS or less
        // (one more per growth where the pass comes around the end).
        let (released, calls) = RELEASED.with(|r| r.get());
        assert_eq!(released, old_bytes);
        assert!(
            calls >= old_bytes / (RELEASE_SLOTS * SLOT_BYTES),
            "{calls} calls"
        );
        // Without a release nothing is scribbled: a second heap does not count.
        let mut quiet = LiveHeap::new();
        for i in 0..100_000u64 {
            quiet.insert(addr(i), block(1, 1));
        }
        assert_eq!(RELEASED.with(|r| r.get()).0, released);
    }

    #[test]
    fn a_table_at_its_largest_size_sends_the_rest_to_the_side_map() {
        let mut h = LiveHeap {
            max_slots: MIN_SLOTS * 5 / 4,
            ..LiveHeap::new()
        };
        let addr = |i: u64| 0x7000_0000 + i * 16;
        for i in 0..20_000 {
            assert_eq!(h.insert(addr(i), block(i, 7)), None);
        }
        // One growth from the first table, then no more: the table stays at most 80% full
        // and the rest waits in the side map.
        assert_eq!(h.slots.len(), MIN_SLOTS * 5 / 4);
        assert!(
            h.len * 1024 <= MIN_SLOTS * 5 / 4 * MAX_LOAD_PER_1024,
            "{} in the table",
            h.len
        );
        assert_eq!(h.len(), 20_000);
        check_slots(&h);
        for i in 0..20_000 {
            assert_eq!(h.get(addr(i)), Some(block(i, 7)), "block {i}");
        }
        // Replacing a block that is in the table while it is full moves it out.
        let in_table = (0..20_000).find(|&i| h.find(addr(i)).is_some()).unwrap();
        assert_eq!(
            h.insert(addr(in_table), block(1, 2)),
            Some(block(in_table, 7))
        );
        assert_eq!(h.get(addr(in_table)), Some(block(1, 2)));
        assert_eq!(h.len(), 20_000);
        for i in 0..20_000 {
            assert!(h.remove(addr(i)).is_some(), "block {i}");
        }
        assert!(h.is_empty());
    }

    /// The table's own rules: every block sits at most as far from home as a slot says,
    /// with every slot from its home to it taken, and no block further from home than the
    /// one after it plus one (Robin Hood order), blocks of one home in hash order; `len`
    /// counts the blocks.
    fn check_slots(h: &LiveHeap) {
        let n = h.shape.n;
        let dist = |i: usize| h.read(i).dist1() as usize;
        let mut count = 0;
        for i in 0..n {
            if dist(i) == 0 {
                continue;
            }
            count += 1;
            for back in 1..dist(i) {
                assert_ne!(dist((i + n - back) % n), 0, "hole before slot {i}");
            }
            let next = dist((i + 1) % n);
            assert!(next == 0 || next <= dist(i) + 1, "order at slot {i}");
            // Blocks of one home in hash order.
            if next == dist(i) + 1 {
                let (a, b) = (h.read(i), h.read((i + 1) % n));
                assert!(h.shape.rem(a) < h.shape.rem(b), "hash order at slot {i}");
            }
        }
        assert_eq!(count, h.len);
    }

    /// Blocks homed at the table's end run around into its first slots; moved into a
    /// smaller table, that run comes around into the blocks the pass placed first, which
    /// are then put in by probing. Everything is still found, the slots keep their rules.
    #[test]
    fn a_run_around_the_end_survives_resizing() {
        let mut h = allocated();
        while h.shape.n < 2048 {
            h.grow();
        }
        let n = h.shape.n;
        let last_top = (1 << h.shape.q) - 1;
        let mut blocks = homed_at(&h, last_top, 60);
        blocks.extend(homed_at(&h, h.shape.top_of(70), 3));
        blocks.extend(homed_at(&h, h.shape.top_of(n / 2), 3));
        for (i, &a) in blocks.iter().enumerate() {
            h.insert(a, block(i as u64, 4));
        }
        check_slots(&h);
        assert_ne!(h.read(0), Slot::EMPTY, "the run came around");
        let probed = h.resize(n / 2);
        assert!(probed > 0, "nothing left to probing");
        check_slots(&h);
        for (i, &a) in blocks.iter().enumerate() {
            assert_eq!(h.get(a), Some(block(i as u64, 4)), "block {i}");
        }
        assert_eq!(h.len(), blocks.len());
        assert_eq!(h.resize(n * 3), 0);
        check_slots(&h);
        for (i, &a) in blocks.iter().enumerate() {
            assert_eq!(h.remove(a), Some(block(i as u64, 4)), "block {i}");
        }
        assert!(h.is_empty());
    }

    /// Blocks one after another at a fixed stride, as an allocator hands out same-size
    /// chunks: with a single multiply, some strides (0xd28, 0xf40) crowded a few homes and
    /// sent thousands of blocks to the side map; none may go there now.
    #[test]
    fn fixed_strides_stay_in_the_table() {
        for stride in [0x40u64, 0x1010, 0xaa8, 0xd28, 0xdc0, 0xf40] {
            let mut h = LiveHeap::new();
            for i in 0..50_000u64 {
                h.insert(0x5555_5555_0000 + i * stride, block(i, 3));
            }
            assert_eq!(h.wide.len(), 0, "stride {stride:#x}");
            assert!(h.heap_bytes() as f64 / h.len() as f64 <= 15.7);
        }
    }

    /// Blocks whose hashes are consecutive crowd one stretch of the table at every size:
    /// their runs pass 126 slots, so growths move blocks out to the side map and back,
    /// mixed with spread-out blocks that make the table grow.
    #[test]
    fn crowded_hashes_survive_growths() {
        let mut h = LiveHeap::new();
        let mut model = StdMap::new();
        let crowded = (0..3000u64).map(|j| addr_of((1 << 40) + j));
        let spread = (1..=30_000u64).map(|i| 0x7000_0000_0000 + i * 0x70);
        for (i, a) in crowded
            .zip(spread.clone().step_by(10))
            .flat_map(|(c, s)| [c, s])
            .chain(spread)
            .enumerate()
        {
            let v = block(i as u64, (i % 7) as StackId);
            assert_eq!(h.insert(a, v), model.insert(a, v));
            if i % 997 == 0 {
                check_slots(&h);
            }
        }
        assert!(!h.wide.is_empty(), "no block went too far from home");
        check_slots(&h);
        for (a, v) in &model {
            assert_eq!(h.get(*a), Some(*v));
        }
        let keys: Vec<u64> = model.keys().copied().collect();
        for a in keys.iter().step_by(2) {
            assert_eq!(h.remove(*a), model.remove(a));
        }
        check_slots(&h);
        assert_eq!(h.len(), model.len());
        same_entries(|a| h.get(a), h.iter(), model).unwrap();
    }

    /// The prefetch hint names the slot a lookup starts at.
    #[test]
    fn the_prefetch_hint_is_the_home_slot() {
        let mut h = LiveHeap::new();
        for i in 1..=5000u64 {
            let a = 0x5555_0000_0000 + i * 48;
            h.insert(a, block(i, 1));
            let (_, n) = h.table();
            assert_eq!(
                LiveHeap::home_byte_offset(a, n),
                h.shape.split(hash(a)).0 * SLOT_BYTES
            );
        }
        assert_eq!(LiveHeap::home_byte_offset(16, 0), 0);
    }

    #[test]
    fn keys_and_homes_come_back_from_slots() {
        for a in [8, 16, 0x5555_5555_5550, ADDR_LIMIT - 8] {
            assert_eq!(addr_of(hash(a)), a);
        }
        assert_eq!(MUL.wrapping_mul(MUL_INV) & KEY_MASK, 1);
    }

    /// 127 blocks fill the slots from their shared home on, as far as a slot can say; a
    /// 128th goes to the side map; and a block homed one slot earlier pushes the farthest
    /// of them out there too. All stay findable, and leave in any order.
    #[test]
    fn blocks_too_far_from_home_go_to_the_side_map() {
        let mut h = allocated();
        let top = 100;
        let same = homed_at(&h, top, FARTHEST + 1);
        let first = h.shape.split(hash(same[0])).0;
        for (i, &a) in same.iter().enumerate() {
            assert_eq!(h.insert(a, block(i as u64, 1)), None);
        }
        assert_eq!((h.len, h.wide.len()), (FARTHEST as usize, 1));
        assert!(h.wide.contains_key(same.last().unwrap()));
        let before = homed_at(&h, top - 1, 2);
        assert_eq!(h.shape.split(hash(before[0])).0, first - 1);
        h.insert(before[0], block(1000, 2));
        assert_eq!(h.wide.len(), 1, "the slot before was empty: no shift");
        h.insert(before[1], block(1001, 2));
        assert_eq!(h.wide.len(), 2, "the shift pushed one block out");
        assert_eq!(h.len(), same.len() + 2);
        for (i, &a) in same.iter().enumerate() {
            assert_eq!(h.get(a), Some(block(i as u64, 1)), "block {i}");
        }
        for (i, &a) in same.iter().enumerate().rev().step_by(3) {
            assert_eq!(h.remove(a), Some(block(i as u64, 1)), "block {i}");
        }
        assert_eq!(h.remove(before[1]), Some(block(1001, 2)));
        for (i, &a) in same.iter().enumerate() {
            let want = (!(same.len() - 1 - i).is_multiple_of(3)).then(|| block(i as u64, 1));
            assert_eq!(h.remove(a), want, "block {i}");
        }
        assert_eq!(h.remove(before[0]), Some(block(1000, 2)));
        assert!(h.is_empty());
        assert!(h.slots.iter().all(|s| *s == [0; SLOT_BYTES]));
    }

    /// A block too big for the first table's slots (512 KiB or more) waits in the side map
    /// until the table has grown past 32768 slots, which take 1 MiB.
    #[test]
    fn side_map_blocks_that_fit_a_grown_table_move_into_it() {
        let mut h = LiveHeap::new();
        let big = block(640 << 10, 9);
        h.insert(0x7000_0000, big);
        assert_eq!(h.wide.len(), 1);
        let mut i = 0u64;
        while h.slots.len() < 32768 {
            i += 1;
            h.insert(0x5555_0000_0000 + i * 32, block(i, 1));
        }
        assert!(h.wide.is_empty());
        assert_eq!(h.get(0x7000_0000), Some(big));
        assert_eq!(h.len(), i as usize + 1);
        assert_eq!(h.remove(0x7000_0000), Some(big));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64, u32),
        Remove(u64),
    }

    fn op(addresses: u64) -> impl Strategy<Value = Op> {
        // Few distinct addresses so that inserts replace and removes hit; sizes and stacks
        // sometimes past the slot's fields; addresses sometimes past 47 bits, 8-aligned
        // but not 16, or not aligned.
        let addr = prop_oneof![
            8 => (1u64..addresses).prop_map(|a| a * 16),
            1 => (1u64..addresses).prop_map(|a| a * 16 + 8),
            1 => (1u64..4).prop_map(|a| (1 << 50) + a * 16),
            1 => (1u64..4).prop_map(|a| a * 16 + 4),
        ];
        let size = prop_oneof![
            9 => 0u64..5000,
            1 => (1u64 << 15) - 2..(1 << 15) + 2,
            1 => (1u64 << 25) - 2..(1 << 25) + 2,
        ];
        let stack =
            prop_oneof![9 => 0u32..100, 1 => (STACK_LIMIT as u32 - 2)..(STACK_LIMIT as u32 + 2)];
        prop_oneof![
            3 => (addr.clone(), size, stack).prop_map(|(a, s, k)| Op::Insert(a, s, k)),
            2 => addr.prop_map(Op::Remove),
        ]
    }

    /// `ops` on a table whose first size is the old default, 1024 slots: 3000 addresses
    /// take it through growths, and sizes about 2^15 meet its first size field's limit.
    fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
        let mut h = LiveHeap {
            min_slots: 1024,
            ..LiveHeap::new()
        };
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
        check_slots(&h);
        same_entries(|a| h.get(a), h.iter(), model)
    }

    proptest! {
        /// The table behaves exactly like a standard map under any sequence of operations.
        #[test]
        fn matches_a_plain_map(ops in proptest::collection::vec(op(300), 0..2000)) {
            run(ops)?;
        }

        /// The same through growths, with wide blocks moving into grown tables.
        #[test]
        fn matches_a_plain_map_while_growing(ops in proptest::collection::vec(op(3000), 4000..8000)) {
            run(ops)?;
        }

        /// Any 8-aligned user address comes back from its hash, and any hash's top bits
        /// from its home, in tables of any size.
        #[test]
        fn addresses_and_top_bits_come_back(a in 1u64..ADDR_LIMIT / 8, n in 1024..=MAX_SLOTS, h in 0..KEY_MASK) {
            prop_assert_eq!(addr_of(hash(a * 8)), a * 8);
            let shape = Shape::new(n);
            let (home, _) = shape.split(h);
            prop_assert!(home < n);
            prop_assert_eq!(shape.top_of(home), h >> shape.rem_bits);
        }
    }
}
