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

/// Highest address a task's mappings may end at on x86-64 with 4-level page tables (the
/// kernel's `TASK_SIZE`: 2^47 less one guard page), and with 5-level ones (2^56 less one).
/// A process cannot tell which one its kernel uses without side effects, so a range ending
/// between the two is of unknown validity.
pub const TASK_SIZE_4_LEVEL: u64 = (1 << 47) - 4096;
pub const TASK_SIZE_5_LEVEL: u64 = (1 << 56) - 4096;

/// How a hook must handle `munmap(addr, len)`, from the kernel's own argument checks
/// (`do_vmi_munmap`): reject a start that is not page-aligned, a length that rounds to zero
/// pages, and a range past the task size, with `EINVAL` and nothing unmapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MunmapCheck {
    /// The kernel refuses the call without touching any mapping: forward it, record nothing.
    Invalid,
    /// A valid range of `len` bytes (whole pages): remove it from the records before the
    /// real call, so that no other thread can map the freed range and record it first; put
    /// it back should the call still fail (a split past the map count limit, a sealed
    /// mapping).
    RecordFirst { len: u64 },
    /// A range of `len` bytes ending above the 4-level task size: valid only under 5-level
    /// paging, so the real call decides, and the records follow only its success.
    CallFirst { len: u64 },
}

/// Classifies `munmap(addr, len)` with pages of `page` bytes (see [`MunmapCheck`]).
pub fn munmap_check(addr: u64, len: u64, page: u64) -> MunmapCheck {
    let page = page.max(1);
    // As the kernel: the unrounded length against the room above `addr`; rounding it up
    // then never passes the (page-aligned) task size.
    if !addr.is_multiple_of(page)
        || len == 0
        || addr > TASK_SIZE_5_LEVEL
        || len > TASK_SIZE_5_LEVEL - addr
    {
        return MunmapCheck::Invalid;
    }
    let len = len.div_ceil(page) * page;
    if addr + len <= TASK_SIZE_4_LEVEL {
        MunmapCheck::RecordFirst { len }
    } else {
        MunmapCheck::CallFirst { len }
    }
}

/// mremap's flags (Linux's numbers; the preload checks them against libc's).
pub const MREMAP_MAYMOVE: i32 = 1;
pub const MREMAP_FIXED: i32 = 2;
pub const MREMAP_DONTUNMAP: i32 = 4;

/// Whether the kernel refuses `mremap(old, old_len, new_len, flags)` (EINVAL) before it
/// looks at any mapping, with pages of `page` bytes. Its order: unknown flags,
/// MREMAP_FIXED without MREMAP_MAYMOVE, MREMAP_DONTUNMAP without MREMAP_MAYMOVE or with a
/// change of length, then the addresses: an unaligned `old`, a new length that rounds to
/// zero pages or past the end of the address space. A hook forwards such a call untouched:
/// taking the range and putting it back would cut the tracked mapping into pieces, each
/// then counted as a block of its own.
pub fn mremap_refused(old: u64, old_len: u64, new_len: u64, flags: i32, page: u64) -> bool {
    let page = page.max(1);
    let known = MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP;
    let may_move = flags & MREMAP_MAYMOVE != 0;
    flags & !known != 0
        || (flags & MREMAP_FIXED != 0 && !may_move)
        || (flags & MREMAP_DONTUNMAP != 0 && (!may_move || old_len != new_len))
        || !old.is_multiple_of(page)
        || new_len == 0
        || new_len.checked_next_multiple_of(page).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mremap_calls_the_kernel_refuses_are_told_apart() {
        let (page, p) = (4096, 0x7f00_0000_0000);
        let ok = |old, old_len, new_len, flags| !mremap_refused(old, old_len, new_len, flags, page);
        assert!(ok(p, 4096, 8192, MREMAP_MAYMOVE));
        assert!(ok(p, 4096, 8192, 0));
        assert!(ok(p, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED));
        assert!(ok(p, 4096, 4096, MREMAP_MAYMOVE | MREMAP_DONTUNMAP));
        assert!(ok(p, 4096, 1, 0), "a length rounding to one page");
        // Flags.
        assert!(!ok(p, 4096, 4096, 0x40), "unknown flag");
        assert!(!ok(p, 4096, 4096, MREMAP_FIXED), "FIXED without MAYMOVE");
        assert!(
            !ok(p, 4096, 4096, MREMAP_DONTUNMAP),
            "DONTUNMAP without MAYMOVE"
        );
        assert!(
            !ok(p, 4096, 8192, MREMAP_MAYMOVE | MREMAP_DONTUNMAP),
            "DONTUNMAP resizing"
        );
        // Addresses and lengths.
        assert!(!ok(p + 1, 4096, 8192, MREMAP_MAYMOVE), "unaligned");
        assert!(!ok(p, 4096, 0, MREMAP_MAYMOVE), "empty");
        assert!(!ok(p, 4096, u64::MAX, MREMAP_MAYMOVE), "rounding overflows");
    }

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

    #[test]
    fn munmap_calls_the_kernel_refuses_are_told_apart() {
        use MunmapCheck::*;
        let page = 4096;
        let p = 0x7f00_0000_0000;
        assert_eq!(munmap_check(p, 4096, page), RecordFirst { len: 4096 });
        assert_eq!(munmap_check(p, 1, page), RecordFirst { len: 4096 });
        assert_eq!(munmap_check(p, 4097, page), RecordFirst { len: 8192 });
        // Unaligned start, empty length.
        assert_eq!(munmap_check(p + 1, 4096, page), Invalid);
        assert_eq!(munmap_check(p, 0, page), Invalid);
        // Lengths whose rounding would overflow, or that pass every task size.
        assert_eq!(munmap_check(p, u64::MAX, page), Invalid);
        assert_eq!(munmap_check(p, u64::MAX - 4095, page), Invalid);
        assert_eq!(munmap_check(p + 4096, 1 << 62, page), Invalid);
        assert_eq!(munmap_check(TASK_SIZE_5_LEVEL + 4096, 4096, page), Invalid);
        assert_eq!(munmap_check(0, TASK_SIZE_5_LEVEL + 1, page), Invalid);
        // The whole 4-level address space is valid everywhere; beyond it, only the kernel
        // knows.
        assert_eq!(
            munmap_check(0, TASK_SIZE_4_LEVEL, page),
            RecordFirst {
                len: TASK_SIZE_4_LEVEL
            }
        );
        assert_eq!(
            munmap_check(TASK_SIZE_4_LEVEL, 1, page),
            CallFirst { len: 4096 }
        );
        assert_eq!(
            munmap_check(0, TASK_SIZE_5_LEVEL, page),
            CallFirst {
                len: TASK_SIZE_5_LEVEL
            }
        );
    }
}
