//! Folded-stack output: a golden file for a realistic profile, and properties that must
//! hold for any frame names a hostile or odd program could produce.
#![cfg(feature = "cli")]

#[path = "render_common.rs"]
mod common;

use common::{check_golden, st};
use peakprof::render::{bound_stacks, folded};
use peakprof::report::SymStack;
use proptest::prelude::*;

#[test]
fn golden_folded() {
    let stacks = vec![
        st(
            &[
                "main (src/main.rs:40)",
                "build_index (src/index.rs:88)",
                "alloc_big (src/main.rs:12)",
            ],
            2 << 20,
            1,
        ),
        st(
            &[
                "main (src/main.rs:40)",
                "build_index (src/index.rs:88)",
                "<alloc::vec::Vec<T>>::reserve (alloc/vec.rs:101)",
            ],
            512 << 10,
            3,
        ),
        st(
            &["main (src/main.rs:41)", "load_config (src/config.rs:7)"],
            4096,
            12,
        ),
        st(
            &["main (src/main.rs:41)", "load_config (src/config.rs:7)"],
            100,
            1,
        ),
        st(&["_start", "[u8; 8]::clone", "libfoo.so+0x1a2b"], 64, 1),
        st(&["main (src/main.rs:42)", "freed"], 0, 0),
        st(&[], 16, 1),
    ];
    check_golden("folded_small.txt", folded(&stacks).as_bytes());
}

/// Frame names mixing arbitrary Unicode with the characters that matter to the format.
fn frame_name() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z #;.0-9\n\r\t\u{0}\u{1b}\u{85}]{0,10}"]
}

fn stacks_strategy() -> impl Strategy<Value = Vec<SymStack>> {
    prop::collection::vec(
        (
            prop::collection::vec(frame_name(), 0..6),
            0u64..=u32::MAX as u64,
            0u64..1000,
        )
            .prop_map(|(frames, bytes, count)| SymStack {
                frames: frames.into_iter().map(Into::into).collect(),
                bytes,
                count,
            }),
        0..24,
    )
}

/// Whether inferno would read the end of `frames` as one more sample count.
fn ends_with_count(frames: &str) -> bool {
    match frames.rfind(' ') {
        Some(i) => frames[i + 1..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.'),
        None => false,
    }
}

proptest! {
    #[test]
    fn every_line_has_exactly_one_count_and_bytes_add_up(stacks in stacks_strategy()) {
        let out = folded(&stacks);
        prop_assert!(out.is_empty() || out.ends_with('\n'));
        let mut sum: u128 = 0;
        let mut previous: Option<&str> = None;
        for line in out.lines() {
            prop_assert!(!line.chars().any(|c| c.is_control()), "control char in {line:?}");
            prop_assert!(!line.starts_with("# "), "comment-like line {line:?}");
            let (frames, count) = line.rsplit_once(' ').expect("a count");
            prop_assert!(!count.is_empty() && count.chars().all(|c| c.is_ascii_digit()));
            prop_assert!(!frames.is_empty());
            prop_assert!(!ends_with_count(frames), "second count in {line:?}");
            prop_assert!(frames.split(';').all(|f| !f.is_empty() && f.trim() == f));
            let count: u64 = count.parse().unwrap();
            prop_assert!(count > 0);
            sum += count as u128;
            if let Some(p) = previous {
                prop_assert!(p < line, "not sorted: {p:?} then {line:?}");
            }
            previous = Some(line);
        }
        let expected: u128 = stacks.iter().map(|s| s.bytes as u128).sum();
        prop_assert_eq!(sum, expected);
    }

    #[test]
    fn bounding_keeps_every_byte_and_every_large_path(
        stacks in stacks_strategy(),
        threshold in 1u64..=u32::MAX as u64,
    ) {
        let (bounded, _) = bound_stacks(&stacks, threshold);
        let before: u128 = stacks.iter().map(|s| s.bytes as u128).sum();
        let after: u128 = bounded.iter().map(|s| s.bytes as u128).sum();
        prop_assert_eq!(before, after);
        for s in stacks.iter().filter(|s| s.bytes >= threshold) {
            prop_assert!(bounded.iter().any(|b| b.frames == s.frames));
        }
    }
}
