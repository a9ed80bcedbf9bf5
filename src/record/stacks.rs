//! Interning of call stacks: each distinct sequence of return addresses gets a small id.
//!
//! Frames of all stacks live in one flat arena, and the hash table holds small entries
//! (a part of the hash, the id, where the frames are), so a lookup of a stack that is
//! already known allocates nothing and reads the arena only for a likely match.

use hashbrown::HashTable;

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

/// A hash table entry: everything a lookup needs to reject a stack or confirm it against
/// the arena, in one place. With only the id in the table, a lookup went table -> hashes ->
/// starts -> arena, each a cache miss in a big table.
#[derive(Clone, Copy)]
struct Entry {
    /// Low half of the stack's hash: the table's control bytes hold its top 7 bits, so the
    /// other half filters 32 bits more.
    hash_lo: u32,
    id: StackId,
    /// `frames[start..start + len]` in the arena; [`FAR`] when the start does not fit.
    start: u32,
    len: u32,
}

/// An entry's `start` for a stack past the first 2^32 arena frames (32 GiB of frames: in
/// practice never); its start is then read from `starts`.
const FAR: u32 = u32::MAX;

/// The set of distinct stacks seen so far.
#[derive(Clone)]
pub struct StackTable {
    table: HashTable<Entry>,
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
            table: HashTable::new(),
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
        let Self {
            table,
            frames: arena,
            starts,
            hashes,
            ..
        } = self;
        let hash_lo = hash as u32;
        let found = table.find(hash, |e| {
            if e.hash_lo != hash_lo || e.len as usize != frames.len() {
                return false;
            }
            let start = match e.start {
                FAR => starts[e.id as usize],
                s => s as usize,
            };
            arena[start..][..frames.len()] == *frames
        });
        if let Some(e) = found {
            return e.id;
        }
        let id = (starts.len() - 1) as StackId;
        let start = arena.len();
        arena.extend_from_slice(frames);
        starts.push(arena.len());
        hashes.push(hash);
        let entry = Entry {
            hash_lo,
            id,
            start: u32::try_from(start).unwrap_or(FAR),
            len: u32::try_from(frames.len()).unwrap_or(u32::MAX),
        };
        table.insert_unique(hash, entry, |e| hashes[e.id as usize]);
        id
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
            + self.table.capacity() * (core::mem::size_of::<Entry>() + 1)
    }
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
