//! Property tests: the recorder against a brute-force replay that copies the whole state at
//! every new peak (the slow, obviously right algorithm).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::Recorder;
use crate::format::Meta;

#[derive(Debug, Clone)]
enum Event {
    Alloc { slot: u8, size: u32, stack: u8 },
    Free { slot: u8 },
    Map { page: u8, pages: u8, stack: u8 },
    Unmap { page: u8, pages: u8 },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (any::<u8>(), 0u32..100_000, 0u8..6).prop_map(|(slot, size, stack)| Event::Alloc { slot, size, stack }),
        3 => any::<u8>().prop_map(|slot| Event::Free { slot }),
        1 => (0u8..64, 1u8..8, 0u8..6).prop_map(|(page, pages, stack)| Event::Map { page, pages, stack }),
        1 => (0u8..64, 1u8..8).prop_map(|(page, pages)| Event::Unmap { page, pages }),
    ]
}

const PAGE: u64 = 4096;
const HEAP_BASE: u64 = 0x10_0000;
const MAP_BASE: u64 = 0x7000_0000;

/// The model: per-address blocks and per-page owners; bytes per stack recomputed from them.
#[derive(Default, Clone)]
struct Model {
    heap: BTreeMap<u64, (u64, u32)>,
    pages: BTreeMap<u64, u32>,
}

impl Model {
    fn per_stack(&self) -> BTreeMap<u32, u64> {
        let mut m = BTreeMap::new();
        for &(size, stack) in self.heap.values() {
            *m.entry(stack).or_default() += size;
        }
        for &stack in self.pages.values() {
            *m.entry(stack).or_default() += PAGE;
        }
        m.retain(|_, v| *v > 0);
        m
    }
    fn total(&self) -> u64 {
        self.per_stack().values().sum()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn snapshot_matches_brute_force_replay(events in prop::collection::vec(event(), 0..300)) {
        let mut rec = Recorder::new();
        let mut model = Model::default();
        let stack_ids: Vec<u32> = (0..6u64).map(|i| rec.intern(&[0x400000 + i, 0x500000])).collect();
        let mut peak = 0u64;
        let mut at_peak: BTreeMap<u32, u64> = BTreeMap::new();
        for (t, e) in events.iter().enumerate() {
            let now = t as u64;
            match *e {
                Event::Alloc { slot, size, stack } => {
                    let addr = HEAP_BASE + u64::from(slot) * 16;
                    if model.heap.contains_key(&addr) {
                        continue; // a real allocator never hands out a live address
                    }
                    let id = stack_ids[stack as usize];
                    rec.on_alloc(addr, u64::from(size), id, now);
                    model.heap.insert(addr, (u64::from(size), id));
                }
                Event::Free { slot } => {
                    let addr = HEAP_BASE + u64::from(slot) * 16;
                    let was = rec.on_free(addr, now);
                    let model_was = model.heap.remove(&addr);
                    prop_assert_eq!(was.map(|a| a.size), model_was.map(|m| m.0));
                }
                Event::Map { page, pages, stack } => {
                    let id = stack_ids[stack as usize];
                    let start = MAP_BASE + u64::from(page) * PAGE;
                    rec.on_mmap(start, u64::from(pages) * PAGE, id, now);
                    for p in 0..u64::from(pages) {
                        model.pages.insert(start + p * PAGE, id);
                    }
                }
                Event::Unmap { page, pages } => {
                    let start = MAP_BASE + u64::from(page) * PAGE;
                    rec.on_munmap(start, u64::from(pages) * PAGE, now);
                    for p in 0..u64::from(pages) {
                        model.pages.remove(&(start + p * PAGE));
                    }
                }
            }
            let total = model.total();
            prop_assert_eq!(rec.total(), total);
            if total > peak {
                peak = total;
                at_peak = model.per_stack();
            }
            prop_assert_eq!(rec.peak(), peak);
            if let Err(e) = rec.check_consistency() {
                return Err(TestCaseError::fail(e));
            }
        }
        let profile = rec.to_profile(Meta::default(), Vec::new());
        prop_assert_eq!(profile.meta.peak_bytes, peak);
        let mut got: BTreeMap<u32, u64> = BTreeMap::new();
        for s in profile.peak.iter().filter(|s| s.bytes > 0) {
            let frames = &profile.stacks[s.stack as usize].frames;
            let id = rec.stacks().frames(0).len(); // all test stacks have two frames
            prop_assert_eq!(frames.len(), id);
            let orig = stack_ids.iter().position(|&i| rec.stacks().frames(i) == frames.as_slice()).unwrap();
            *got.entry(stack_ids[orig]).or_default() += s.bytes;
        }
        prop_assert_eq!(got, at_peak);
        let exit_total: u64 = profile.exit.iter().map(|s| s.bytes).sum();
        prop_assert_eq!(exit_total, model.total());
    }
}

/// A free the hooks never saw (the address comes back from the allocator while the
/// recorder still holds it) must not leave its block counted for good, even when every
/// later block at that address is freed while still in the live map's insert queue.
#[test]
fn a_missed_free_stops_counting_after_short_lived_reuse() {
    let mut rec = Recorder::new();
    let stack = rec.intern(&[0x1000]);
    rec.on_alloc(HEAP_BASE, 1000, stack, 1);
    // Enough other blocks to push the first one out of the queue into the table.
    for i in 1..=16 {
        rec.on_alloc(HEAP_BASE + i * 0x100, 10, stack, 1);
    }
    let others = 16 * 10;
    assert_eq!(rec.total(), 1000 + others);
    // Its free is missed; the address is handed out again and again, each block freed
    // at once.
    let mut reuses = 0;
    while rec.total() != others && reuses < 1000 {
        rec.on_alloc(HEAP_BASE, 7, stack, 2);
        assert!(rec.on_free(HEAP_BASE, 2).is_some());
        reuses += 1;
    }
    assert_eq!(rec.total(), others, "still counted after {reuses} reuses");
    assert_eq!(rec.peak(), 1000 + others + 7);
    assert_eq!(rec.live_count(), 16);
    rec.check_consistency().unwrap();
}
