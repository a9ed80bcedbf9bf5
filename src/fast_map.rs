//! Hash maps for the CLI's hot paths: reports build maps keyed by stacks and frame names.
//!
//! std's SipHash was a tenth of a multi-process report's time; ahash is several times
//! faster. The keys come from the profiled program (its function names), so the seeds are
//! drawn once per process from std's own random keys rather than fixed: a program cannot
//! choose names that all collide. No output depends on a map's order (results are sorted).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// A `HashMap` with ahash and per-process seeds.
pub type FastMap<K, V> = HashMap<K, V, Seeded>;
/// A `HashSet` with ahash and per-process seeds.
pub type FastSet<K> = HashSet<K, Seeded>;

/// ahash's state with this process's seeds.
#[derive(Clone)]
pub struct Seeded(ahash::RandomState);

impl Default for Seeded {
    fn default() -> Self {
        static SEEDS: OnceLock<[u64; 4]> = OnceLock::new();
        let s = SEEDS.get_or_init(|| {
            let std_keys = RandomState::new();
            [1u64, 2, 3, 4].map(|i| std_keys.hash_one(i))
        });
        Seeded(ahash::RandomState::with_seeds(s[0], s[1], s[2], s[3]))
    }
}

impl BuildHasher for Seeded {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        self.0.build_hasher()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_in_one_process_agree_and_work() {
        let mut m: FastMap<&str, u32> = FastMap::default();
        m.insert("a", 1);
        *m.entry("a").or_default() += 1;
        assert_eq!(m["a"], 2);
        let (x, y) = (Seeded::default(), Seeded::default());
        assert_eq!(x.hash_one("frame"), y.hash_one("frame"));
        let set: FastSet<u32> = [3, 3, 4].into_iter().collect();
        assert_eq!(set.len(), 2);
    }
}
