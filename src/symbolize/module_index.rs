//! Which module an address belongs to.

use crate::format::Module;

/// Segment ranges of all modules, sorted by start, for a binary search per address.
#[derive(Debug, Default)]
pub(crate) struct ModuleIndex {
    /// `(start, end, module index)`.
    ranges: Vec<(u64, u64, usize)>,
}

impl ModuleIndex {
    pub(crate) fn new(modules: &[Module]) -> Self {
        let mut ranges: Vec<(u64, u64, usize)> = modules
            .iter()
            .enumerate()
            .flat_map(|(i, m)| m.ranges.iter().map(move |&(s, e)| (s, e, i)))
            .filter(|&(s, e, _)| s < e)
            .collect();
        ranges.sort_unstable();
        ModuleIndex { ranges }
    }

    pub(crate) fn find(&self, addr: u64) -> Option<usize> {
        let after = self.ranges.partition_point(|&(s, _, _)| s <= addr);
        let hit = after
            .checked_sub(1)
            .map(|i| self.ranges[i])
            .filter(|&(_, e, _)| addr < e);
        // A well-formed map has no overlaps; if a profile has them anyway, an earlier, longer
        // range may still cover the address.
        hit.or_else(|| {
            self.ranges[..after]
                .iter()
                .rev()
                .find(|&&(s, e, _)| s <= addr && addr < e)
                .copied()
        })
        .map(|(_, _, i)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(ranges: &[(u64, u64)]) -> Module {
        Module {
            ranges: ranges.to_vec(),
            ..Module::default()
        }
    }

    #[test]
    fn finds_containing_module() {
        let idx = ModuleIndex::new(&[
            module(&[(0x1000, 0x2000), (0x5000, 0x6000)]),
            module(&[(0x3000, 0x4000)]),
        ]);
        assert_eq!(idx.find(0x1000), Some(0));
        assert_eq!(idx.find(0x1fff), Some(0));
        assert_eq!(idx.find(0x2000), None);
        assert_eq!(idx.find(0x3800), Some(1));
        assert_eq!(idx.find(0x5000), Some(0));
        assert_eq!(idx.find(0), None);
        assert_eq!(idx.find(u64::MAX), None);
    }

    #[test]
    fn overlapping_ranges_still_found() {
        let idx = ModuleIndex::new(&[module(&[(0x1000, 0x9000)]), module(&[(0x2000, 0x3000)])]);
        assert_eq!(idx.find(0x5000), Some(0));
        assert_eq!(idx.find(0x2500), Some(1));
    }
}
