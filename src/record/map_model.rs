//! Test support: comparing a live map's contents with a standard map holding what it should.

use std::collections::HashMap;

use proptest::prelude::*;

use super::LiveAlloc;

/// Every entry of `model` is found by `get`, and `entries` (a map's `iter()`) lists exactly
/// the model's entries.
pub fn same_entries(
    get: impl Fn(u64) -> Option<LiveAlloc>,
    entries: impl Iterator<Item = (u64, LiveAlloc)>,
    model: HashMap<u64, LiveAlloc>,
) -> Result<(), TestCaseError> {
    for (a, v) in &model {
        prop_assert_eq!(get(*a), Some(*v));
    }
    let mut all: Vec<_> = entries.collect();
    all.sort_by_key(|e| e.0);
    let mut want: Vec<_> = model.into_iter().collect();
    want.sort_by_key(|e| e.0);
    prop_assert_eq!(all, want);
    Ok(())
}
