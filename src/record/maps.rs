//! Anonymous memory mappings, tracked as address ranges so that a partial `munmap` or an
//! `mremap` removes exactly the pages it covers.

use std::collections::BTreeMap;

use super::stacks::StackId;

/// One tracked mapping piece `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub stack: StackId,
}

impl Region {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Live anonymous mappings, keyed by start address; regions never overlap.
#[derive(Debug, Default, Clone)]
pub struct LiveMaps {
    regions: BTreeMap<u64, (u64, StackId)>,
}

impl LiveMaps {
    /// No mappings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of tracked pieces.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Whether nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// Removes `[start, end)` from the tracked set. Returns every region the range touched,
    /// whole, and the pieces of them that remain (a region cut in the middle leaves two), so
    /// the caller can account for each: the touched regions go, the pieces come back.
    pub fn remove_range(&mut self, start: u64, end: u64) -> (Vec<Region>, Vec<Region>) {
        let mut removed = Vec::new();
        let mut kept = Vec::new();
        if start >= end {
            return (removed, kept);
        }
        // The first region that could overlap starts before `start`; the rest start inside.
        let first = self
            .regions
            .range(..start)
            .next_back()
            .filter(|(_, &(e, _))| e > start)
            .map(|(&s, _)| s);
        let mut keys: Vec<u64> = first.into_iter().collect();
        keys.extend(self.regions.range(start..end).map(|(&s, _)| s));
        for s in keys {
            let Some((e, stack)) = self.regions.remove(&s) else {
                continue;
            };
            let cut_start = s.max(start);
            let cut_end = e.min(end);
            removed.push(Region {
                start: s,
                end: e,
                stack,
            });
            if s < cut_start {
                self.regions.insert(s, (cut_start, stack));
                kept.push(Region {
                    start: s,
                    end: cut_start,
                    stack,
                });
            }
            if cut_end < e {
                self.regions.insert(cut_end, (e, stack));
                kept.push(Region {
                    start: cut_end,
                    end: e,
                    stack,
                });
            }
        }
        (removed, kept)
    }

    /// Adds a region; whatever it overlaps is removed first and returned (a `MAP_FIXED`
    /// mapping replaces what was there).
    pub fn insert(&mut self, region: Region) -> (Vec<Region>, Vec<Region>) {
        let out = self.remove_range(region.start, region.end);
        if !region.is_empty() {
            self.regions
                .insert(region.start, (region.end, region.stack));
        }
        out
    }

    /// Every tracked region in address order.
    pub fn iter(&self) -> impl Iterator<Item = Region> + '_ {
        self.regions
            .iter()
            .map(|(&start, &(end, stack))| Region { start, end, stack })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64, stack: StackId) -> Region {
        Region { start, end, stack }
    }

    #[test]
    fn partial_unmap_in_the_middle_splits_the_region() {
        let mut m = LiveMaps::new();
        m.insert(r(0x1000, 0x5000, 1));
        let (removed, kept) = m.remove_range(0x2000, 0x3000);
        assert_eq!(removed, vec![r(0x1000, 0x5000, 1)]);
        assert_eq!(kept, vec![r(0x1000, 0x2000, 1), r(0x3000, 0x5000, 1)]);
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            vec![r(0x1000, 0x2000, 1), r(0x3000, 0x5000, 1)]
        );
    }

    #[test]
    fn unmap_across_several_regions_and_untracked_gaps() {
        let mut m = LiveMaps::new();
        m.insert(r(0x1000, 0x2000, 1));
        m.insert(r(0x3000, 0x4000, 2));
        m.insert(r(0x6000, 0x8000, 3));
        let (removed, kept) = m.remove_range(0x1800, 0x7000);
        assert_eq!(
            removed,
            vec![
                r(0x1000, 0x2000, 1),
                r(0x3000, 0x4000, 2),
                r(0x6000, 0x8000, 3)
            ]
        );
        assert_eq!(kept, vec![r(0x1000, 0x1800, 1), r(0x7000, 0x8000, 3)]);
        let total: u64 = m.iter().map(|x| x.len()).sum();
        assert_eq!(total, 0x800 + 0x1000);
    }

    #[test]
    fn fixed_mapping_replaces_what_it_overlaps() {
        let mut m = LiveMaps::new();
        m.insert(r(0x1000, 0x4000, 1));
        let (removed, _) = m.insert(r(0x2000, 0x3000, 9));
        assert_eq!(removed, vec![r(0x1000, 0x4000, 1)]);
        assert_eq!(m.len(), 3);
    }
}
