//! Shaping the list of call paths before drawing: merging duplicates and folding the long
//! tail of tiny paths so a profile with 100k distinct stacks still renders small.

use crate::fast_map::FastMap;

use crate::report::{FrameName, SymStack};

/// Merges stacks with identical frames (summing bytes and counts) and drops the ones that
/// hold no bytes. The result is ordered by bytes, largest first, then by frames, so every
/// renderer that shows "the top N" agrees on ties.
pub(crate) fn merge_identical(stacks: &[SymStack]) -> Vec<SymStack> {
    let mut index: FastMap<&[FrameName], usize> = FastMap::default();
    let mut out: Vec<SymStack> = Vec::new();
    for s in stacks.iter().filter(|s| s.bytes > 0) {
        match index.get(s.frames.as_slice()) {
            Some(&i) => {
                out[i].bytes = out[i].bytes.saturating_add(s.bytes);
                out[i].count = out[i].count.saturating_add(s.count);
            }
            None => {
                index.insert(&s.frames, out.len());
                out.push(s.clone());
            }
        }
    }
    sort_largest_first(&mut out);
    out
}

fn sort_largest_first(stacks: &mut [SymStack]) {
    stacks.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.frames.cmp(&b.frames)));
}

/// Total bytes over all stacks, saturating rather than wrapping on absurd input.
pub(crate) fn total_bytes(stacks: &[SymStack]) -> u64 {
    stacks
        .iter()
        .fold(0u64, |acc, s| acc.saturating_add(s.bytes))
}

/// Total allocations over `stacks`, saturating.
pub(crate) fn total_count(stacks: &[SymStack]) -> u64 {
    stacks
        .iter()
        .fold(0u64, |acc, s| acc.saturating_add(s.count))
}

/// The display name of the frame that stands for `n` folded paths.
pub(crate) fn small_paths_frame(n: usize) -> String {
    format!("[{n} small allocation paths]")
}

/// Folds every stack holding fewer than `threshold` bytes into one synthetic stack per
/// group, so the number of stacks is bounded by the number of call-tree nodes that hold at
/// least `threshold` bytes (at most `total / threshold` per depth level).
///
/// A small stack belongs to the group of its deepest ancestor path that itself holds at
/// least `threshold` bytes (summed over every stack below it). A group of several stacks
/// becomes one stack: their longest common frame prefix plus a final frame
/// `[N small allocation paths]`, with bytes and counts summed; a group of one stays as it
/// is, since folding it would not shrink anything. Duplicates are merged and zero-byte
/// stacks dropped first. Returns the stacks (largest first) and how many original stacks
/// were folded away into synthetic frames.
pub fn bound_stacks(stacks: &[SymStack], threshold: u64) -> (Vec<SymStack>, usize) {
    let stacks = merge_identical(stacks);
    if stacks.iter().all(|s| s.bytes >= threshold) {
        return (stacks, 0);
    }

    // A call tree keyed by (parent node, frame name); node 0 is the root.
    let mut children: FastMap<(usize, &str), usize> = FastMap::default();
    let mut inclusive: Vec<u64> = vec![0];
    for s in &stacks {
        let mut node = 0;
        inclusive[0] = inclusive[0].saturating_add(s.bytes);
        for frame in &s.frames {
            let next = inclusive.len();
            node = *children.entry((node, &**frame)).or_insert(next);
            if node == next {
                inclusive.push(0);
            }
            inclusive[node] = inclusive[node].saturating_add(s.bytes);
        }
    }

    let mut out: Vec<SymStack> = Vec::new();
    // Keyed by the deepest ancestor node that is large enough; values index into `stacks`.
    let mut groups: FastMap<usize, Vec<usize>> = FastMap::default();
    for (i, s) in stacks.iter().enumerate() {
        if s.bytes >= threshold {
            out.push(s.clone());
            continue;
        }
        let mut node = 0;
        for frame in &s.frames {
            let child = children[&(node, &**frame)];
            if inclusive[child] < threshold {
                break;
            }
            node = child;
        }
        groups.entry(node).or_default().push(i);
    }

    let mut folded_away = 0;
    for members in groups.into_values() {
        if let [only] = members[..] {
            out.push(stacks[only].clone());
            continue;
        }
        folded_away += members.len();
        let first = &stacks[members[0]].frames;
        let common = members[1..].iter().fold(first.len(), |len, &m| {
            first
                .iter()
                .zip(&stacks[m].frames)
                .take(len)
                .take_while(|(a, b)| a == b)
                .count()
        });
        let mut frames = first[..common].to_vec();
        frames.push(small_paths_frame(members.len()).into());
        out.push(SymStack {
            frames,
            bytes: members
                .iter()
                .fold(0u64, |acc, &m| acc.saturating_add(stacks[m].bytes)),
            count: members
                .iter()
                .fold(0u64, |acc, &m| acc.saturating_add(stacks[m].count)),
        });
    }
    sort_largest_first(&mut out);
    (out, folded_away)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::st;

    #[test]
    fn merge_sums_duplicates_drops_zero_and_orders() {
        let got = merge_identical(&[
            st(&["main", "a"], 10, 1),
            st(&["main", "b"], 0, 3),
            st(&["main", "c"], 30, 1),
            st(&["main", "a"], 25, 2),
            st(&["main", "d"], 30, 1),
        ]);
        assert_eq!(
            got,
            vec![
                st(&["main", "a"], 35, 3),
                st(&["main", "c"], 30, 1),
                st(&["main", "d"], 30, 1),
            ]
        );
    }

    #[test]
    fn small_stacks_fold_into_longest_common_prefix() {
        let input = [
            st(&["main", "big"], 1000, 1),
            st(&["main", "work", "x", "leaf1"], 3, 1),
            st(&["main", "work", "x", "leaf2"], 4, 2),
            st(&["main", "work", "y"], 2, 1),
            st(&["main", "lonely"], 5, 1),
        ];
        // Neither `main;work` (9 bytes) nor `main;lonely` reaches 10, so all four small
        // stacks hang off `main` and fold together there.
        let (got, folded) = bound_stacks(&input, 10);
        assert_eq!(
            got,
            vec![
                st(&["main", "big"], 1000, 1),
                st(&["main", "[4 small allocation paths]"], 14, 5),
            ]
        );
        assert_eq!(folded, 4);

        // With a threshold of 8, `main;work` (9 bytes) is kept, so its stacks fold below
        // it and `main;lonely` stays alone.
        let (got, folded) = bound_stacks(&input, 8);
        assert_eq!(
            got,
            vec![
                st(&["main", "big"], 1000, 1),
                st(&["main", "work", "[3 small allocation paths]"], 9, 4),
                st(&["main", "lonely"], 5, 1),
            ]
        );
        assert_eq!(folded, 3);
    }

    #[test]
    fn group_prefix_can_be_deeper_than_the_kept_ancestor() {
        let input = [
            st(&["main", "big"], 100, 1),
            st(&["main", "w", "x", "a"], 1, 1),
            st(&["main", "w", "x", "b"], 1, 1),
        ];
        let (got, _) = bound_stacks(&input, 10);
        assert_eq!(
            got[1],
            st(&["main", "w", "x", "[2 small allocation paths]"], 2, 2)
        );
    }

    #[test]
    fn nothing_small_means_nothing_changes() {
        let input = [st(&["a"], 5, 1), st(&[], 7, 1)];
        let (got, folded) = bound_stacks(&input, 5);
        assert_eq!(got, vec![st(&[], 7, 1), st(&["a"], 5, 1)]);
        assert_eq!(folded, 0);
    }

    #[test]
    fn a_hundred_thousand_paths_shrink_to_a_bounded_few() {
        let input: Vec<SymStack> = (0..100_000u64)
            .map(|i| {
                let a = format!("mod{}", i % 100);
                let b = format!("leaf{i}");
                st(&["main", &a, &b], 1 + i % 7, 1)
            })
            .collect();
        let total = total_bytes(&input);
        let (got, folded) = bound_stacks(&input, total / 1000);
        assert!(got.len() <= 200, "{} stacks left", got.len());
        assert_eq!(folded, 100_000);
        assert_eq!(total_bytes(&got), total);
        assert_eq!(got.iter().map(|s| s.count).sum::<u64>(), 100_000);
    }
}
