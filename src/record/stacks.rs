//! Interning of call stacks: each distinct sequence of return addresses gets a small id.
//!
//! Frames of all stacks live in one flat arena, and the hash table holds small entries
//! (a part of the hash, the id, where the frames are), so a lookup of a stack that is
//! already known allocates nothing and reads the arena only for a likely match.

/// Identifies an interned stack.
pub type StackId = u32;

/// Deterministic seeds: the hash only has to spread addresses, not resist an attacker, and
/// asking the OS for randomness inside a malloc hook is a risk with no benefit.
static HASHER: ahash::RandomState = ahash::RandomState::with_seeds(
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
);

/// The hash a [`StackTable`] gives `frames`, without the table: a thread can compute it
/// before taking the lock that guards the table.
pub fn stack_hash(frames: &[u64]) -> u64 {
    HASHER.hash_one(frames)
}

/// A slot of the table: everything a lookup needs to reject a stack or confirm it against
/// the arena, in the slot itself. Open addressing with the entries inline, not hashbrown:
/// its control bytes and its buckets are two arrays, two cache misses per lookup in a big
/// table (cc1 interns ~100 k distinct stacks; perf put three quarters of the lookup's
/// time on those two loads).
#[derive(Clone, Copy, Default)]
#[repr(C, align(16))]
struct Entry {
    /// The hash's high half with its low bit set ([`tag_of`]); 0 marks an empty slot. The
    /// low half picks the slot, so the two filter independently.
    tag: u32,
    id: StackId,
    /// `frames[start..start + len]` in the arena; [`FAR`] when the start does not fit.
    start: u32,
    len: u32,
}

/// An entry's `start` for a stack past the first 2^32 arena frames (32 GiB of frames: in
/// practice never); its start is then read from `starts`.
const FAR: u32 = u32::MAX;

/// Slots of the first table.
const MIN_SLOTS: usize = 64;

/// The tag of a stack's hash in its slot: never 0 (empty).
#[inline(always)]
fn tag_of(hash: u64) -> u32 {
    ((hash >> 32) as u32) | 1
}

/// The set of distinct stacks seen so far.
#[derive(Clone)]
pub struct StackTable {
    /// Linear probing from the slot the hash's low bits pick, at most half full (probes
    /// are short and mostly stay in the first slot's cache line); a power of two long.
    slots: Vec<Entry>,
    /// `frames[starts[id]..starts[id + 1]]` are the frames of stack `id`.
    frames: Vec<u64>,
    starts: Vec<usize>,
    hashes: Vec<u64>,
    /// The id [`Self::intern`] returned last: a program often allocates from the same
    /// stack many times in a row (jq: 7 times in 10), and comparing with one stack whose
    /// frames are in cache costs less than hashing and probing.
    last: Option<StackId>,
}

impl Default for StackTable {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for StackTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StackTable")
            .field("len", &self.len())
            .finish()
    }
}

impl StackTable {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            slots: Vec::new(),
            frames: Vec::new(),
            starts: vec![0],
            hashes: Vec::new(),
            last: None,
        }
    }

    /// Number of distinct stacks.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// Whether no stack was interned yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hash under which `frames` is (or would be) stored; callers that cache ids per
    /// thread can use it as their own key.
    pub fn hash_frames(&self, frames: &[u64]) -> u64 {
        stack_hash(frames)
    }

    /// The id of `frames`, interning it if new.
    pub fn intern(&mut self, frames: &[u64]) -> StackId {
        self.intern_maybe_hashed(frames, None)
    }

    /// [`Self::intern`] with `frames`' hash when the caller already has it (from
    /// [`stack_hash`], computed before taking a lock).
    pub fn intern_maybe_hashed(&mut self, frames: &[u64], hash: Option<u64>) -> StackId {
        if let Some(last) = self.last {
            let known = self.frames(last);
            // Length and innermost frame first: they tell most different stacks apart
            // without a call to memcmp.
            if known.len() == frames.len() && known.first() == frames.first() && known == frames {
                return last;
            }
        }
        let hash = hash.unwrap_or_else(|| self.hash_frames(frames));
        let id = self.intern_hashed(hash, frames);
        self.last = Some(id);
        id
    }

    /// [`Self::intern`] with a hash already computed by [`Self::hash_frames`].
    pub fn intern_hashed(&mut self, hash: u64, frames: &[u64]) -> StackId {
        let tag = tag_of(hash);
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = hash as usize & mask;
        while let Some(e) = self.slots.get(i).filter(|e| e.tag != 0) {
            if e.tag == tag && e.len as usize == frames.len() {
                let start = match e.start {
                    FAR => self.starts[e.id as usize],
                    s => s as usize,
                };
                if self.frames[start..][..frames.len()] == *frames {
                    return e.id;
                }
            }
            i = (i + 1) & mask;
        }
        let id = (self.starts.len() - 1) as StackId;
        let start = self.frames.len();
        self.frames.extend_from_slice(frames);
        self.starts.push(self.frames.len());
        self.hashes.push(hash);
        let entry = Entry {
            tag,
            id,
            start: u32::try_from(start).unwrap_or(FAR),
            len: u32::try_from(frames.len()).unwrap_or(u32::MAX),
        };
        // At most half full (an empty table grows too: `len` counts the new stack).
        if self.len() * 2 > self.slots.len() {
            self.grow();
        }
        self.place(hash, entry);
        id
    }

    /// Puts `entry` (of a stack hashing to `hash`) in the first empty slot from its home.
    fn place(&mut self, hash: u64, entry: Entry) {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        while self.slots[i].tag != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = entry;
    }

    /// Doubles the slots (or makes the first ones) and puts every entry back.
    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = core::mem::replace(&mut self.slots, vec![Entry::default(); n]);
        for e in old.into_iter().filter(|e| e.tag != 0) {
            self.place(self.hashes[e.id as usize], e);
        }
    }

    /// The table's address and slot count, from which [`slot_address`] finds where a
    /// lookup starts (for a prefetch made before the table can be read: the preload's
    /// hooks prefetch outside the lock that guards it).
    pub fn slots(&self) -> (usize, usize) {
        (self.slots.as_ptr() as usize, self.slots.len())
    }

    /// The frames of stack `id`, innermost first.
    pub fn frames(&self, id: StackId) -> &[u64] {
        let id = id as usize;
        &self.frames[self.starts[id]..self.starts[id + 1]]
    }

    /// Approximate heap bytes this table uses, for the profiler's own accounting.
    pub fn heap_bytes(&self) -> usize {
        self.frames.capacity() * 8
            + self.starts.capacity() * 8
            + self.hashes.capacity() * 8
            + self.slots.capacity() * core::mem::size_of::<Entry>()
    }
}

/// The address of the slot where a lookup of a stack hashing to `hash` starts, in a table
/// at `base` of `slots` slots (as from [`StackTable::slots`]); `None` for an empty table.
pub fn slot_address(base: usize, slots: usize, hash: u64) -> Option<usize> {
    let i = hash as usize & slots.checked_sub(1)?;
    // Wrapping: the pair may be torn (read without the lock), and a prefetch of any
    // address is harmless.
    Some(base.wrapping_add(i.wrapping_mul(core::mem::size_of::<Entry>())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_frames_same_id_and_frames_round_trip() {
        let mut t = StackTable::new();
        let a = t.intern(&[1, 2, 3]);
        let b = t.intern(&[1, 2]);
        let c = t.intern(&[]);
        assert_eq!(t.intern(&[1, 2, 3]), a);
        assert_ne!(a, b);
        assert_ne!(b, c);
        assert_eq!(t.frames(a), &[1, 2, 3]);
        assert_eq!(t.frames(b), &[1, 2]);
        assert_eq!(t.frames(c), &[] as &[u64]);
        assert_eq!(t.len(), 3);
        // The same stack twice in a row, then a prefix and an extension of it.
        assert_eq!(t.intern(&[1, 2]), b);
        assert_eq!(t.intern(&[1, 2]), b);
        assert_eq!(t.intern(&[1]), t.intern(&[1]));
        assert_ne!(t.intern(&[1]), b);
        assert_eq!(t.intern(&[1, 2, 3]), a);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn many_stacks_keep_distinct_ids() {
        let mut t = StackTable::new();
        let ids: Vec<_> = (0..5000u64).map(|i| t.intern(&[i, i * 7, 42])).collect();
        for (i, &id) in ids.iter().enumerate() {
            let i = i as u64;
            assert_eq!(t.intern(&[i, i * 7, 42]), id);
            assert_eq!(t.frames(id), &[i, i * 7, 42]);
        }
    }

    #[test]
    fn stacks_whose_hashes_collide_stay_apart() {
        let mut t = StackTable::new();
        // One hash for all (same slot, same tag): each lookup probes past the others, and
        // the table grows meanwhile. Then hashes whose home is the last slot, whose probes
        // wrap around to the first.
        let frames = |i: u64| [i, i + 1];
        let ids: Vec<_> = (0..300).map(|i| t.intern_hashed(7, &frames(i))).collect();
        let last = t.slots().1 as u64 - 1;
        let wrapped: Vec<_> = (300..310)
            .map(|i| t.intern_hashed(last, &frames(i)))
            .collect();
        for (i, &id) in (0..).zip(ids.iter().chain(&wrapped)) {
            let hash = if i < 300 { 7 } else { last };
            assert_eq!(t.intern_hashed(hash, &frames(i)), id);
            assert_eq!(t.frames(id), &frames(i));
        }
        assert_eq!(t.len(), 310);
        // The same frames under another tag, or a prefix under the same one: new stacks.
        assert_eq!(t.intern_hashed(7 | 1 << 40, &frames(0)), 310);
        assert_eq!(t.intern_hashed(7, &[0]), 311);
        // At most half full.
        assert!(t.slots().1 >= 2 * t.len());
    }

    #[test]
    fn slot_address_is_where_a_lookup_starts() {
        let mut t = StackTable::new();
        assert_eq!(slot_address(t.slots().0, t.slots().1, 5), None);
        t.intern(&[1]);
        let (base, n) = t.slots();
        assert_eq!(slot_address(base, n, 5), Some(base + 5 * 16));
        assert_eq!(slot_address(base, n, n as u64 + 5), Some(base + 5 * 16));
    }

    #[test]
    fn the_hash_from_outside_is_the_table_s() {
        let mut t = StackTable::default();
        let a = [1u64, 2, 3];
        assert_eq!(stack_hash(&a), t.hash_frames(&a));
        let id = t.intern_maybe_hashed(&a, Some(stack_hash(&a)));
        assert_eq!(t.intern(&[9]), 1);
        assert_eq!(t.intern_maybe_hashed(&a, Some(stack_hash(&a))), id);
        assert_eq!(t.intern(&a), id);
    }
}
