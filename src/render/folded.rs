//! The folded-stack text format read by flame graph tools (inferno, Brendan Gregg's
//! `flamegraph.pl`, speedscope): `root;caller;...;leaf BYTES`, one line per call path.

use crate::fast_map::FastMap;

use crate::report::{FrameName, SymStack};

/// The name shown for a stack with no frames at all, or a frame with no visible name.
pub(crate) const UNKNOWN_FRAME: &str = "[unknown]";

/// Renders stacks as folded lines `frame;frame;...;frame BYTES\n`, root first.
///
/// Lines are sorted lexicographically so the output is deterministic; stacks whose
/// (sanitized) frames are identical are merged with their bytes summed (saturating);
/// stacks holding 0 bytes are dropped; a stack with no frames renders as `[unknown]`.
///
/// Frame names come from the profiled program and are untrusted, so each is made safe
/// for the format (see [`sanitize_frame`]) — the output always has exactly one count per
/// line, parsed from the last space.
pub fn folded(stacks: &[SymStack]) -> String {
    let mut merged: FastMap<String, u64> = FastMap::default();
    for s in stacks.iter().filter(|s| s.bytes > 0) {
        let bytes = merged.entry(folded_frames(&s.frames)).or_insert(0);
        *bytes = bytes.saturating_add(s.bytes);
    }
    // Sort whole lines, not frame keys: `. 1` sorts after `. # 1` although `.` < `. #`.
    let mut lines: Vec<String> = merged
        .into_iter()
        .map(|(frames, bytes)| format!("{frames} {bytes}\n"))
        .collect();
    lines.sort_unstable();
    lines.concat()
}

/// The `;`-joined, sanitized frame list of one stack (the part of a line before the count).
pub(crate) fn folded_frames(frames: &[FrameName]) -> String {
    if frames.is_empty() {
        return UNKNOWN_FRAME.to_string();
    }
    frames
        .iter()
        .map(|f| sanitize_frame(f))
        .collect::<Vec<_>>()
        .join(";")
}

/// Makes one frame name safe inside a folded line:
///
/// * `;` becomes `:` (it separates frames) and control characters become a space (a
///   newline would end the line; see [`crate::render::text`]);
/// * surrounding whitespace is trimmed, and a name left empty becomes `[unknown]`;
/// * a name whose last space-separated word is only digits and dots (`foo 12`) gets that
///   space replaced by a no-break space (U+00A0), because flame graph tools would read the
///   word as a second (differential) count;
/// * likewise a name starting with `# ` gets a no-break space after the `#`, and a name
///   that is just `#` becomes `[#]`, because inferno skips lines starting with `# ` as
///   comments (and `#` alone as a root frame makes the line `# BYTES`).
///
/// The replacements are applied wherever the frame appears, so one function always has
/// one name.
pub fn sanitize_frame(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            ';' => ':',
            c if super::text::is_unsafe(c) => ' ',
            c => c,
        })
        .collect();
    let mut name = cleaned.trim().to_string();
    if name.is_empty() {
        return UNKNOWN_FRAME.to_string();
    }
    if let Some(space) = name.rfind(' ') {
        let word = &name[space + 1..];
        if word.chars().all(|c| c.is_ascii_digit() || c == '.') {
            name.replace_range(space..=space, "\u{a0}");
        }
    }
    if name.starts_with("# ") {
        name.replace_range(1..2, "\u{a0}");
    } else if name == "#" {
        name = "[#]".to_string();
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(frames: &[&str], bytes: u64) -> SymStack {
        SymStack {
            frames: frames.iter().map(|&s| s.into()).collect(),
            bytes,
            count: 1,
        }
    }

    #[test]
    fn sorted_merged_and_zero_dropped() {
        let got = folded(&[
            st(&["main", "b (src/b.rs:2)"], 5),
            st(&["main", "a (src/a.rs:1)"], 7),
            st(&["main", "zero"], 0),
            st(&["main", "b (src/b.rs:2)"], 10),
            st(&["main"], 1),
            st(&[], 3),
        ]);
        assert_eq!(
            got,
            "[unknown] 3\nmain 1\nmain;a (src/a.rs:1) 7\nmain;b (src/b.rs:2) 15\n"
        );
    }

    #[test]
    fn empty_input_is_empty_output() {
        assert_eq!(folded(&[]), "");
        assert_eq!(folded(&[st(&["a"], 0)]), "");
    }

    #[test]
    fn hostile_frame_names_cannot_break_lines_or_frames() {
        let got = folded(&[st(&["ma;in", "evil\nname 99", "tab\there\u{1b}[1m"], 4)]);
        assert_eq!(got, "ma:in;evil name\u{a0}99;tab here [1m 4\n");
    }

    #[test]
    fn sanitize_frame_rules() {
        assert_eq!(
            sanitize_frame("alloc (src/main.rs:12)"),
            "alloc (src/main.rs:12)"
        );
        assert_eq!(sanitize_frame("[u8; 8]"), "[u8: 8]");
        assert_eq!(sanitize_frame("  padded  "), "padded");
        assert_eq!(sanitize_frame(""), "[unknown]");
        assert_eq!(sanitize_frame("\n\t"), "[unknown]");
        assert_eq!(sanitize_frame("f 1.5"), "f\u{a0}1.5");
        assert_eq!(sanitize_frame("f v1.5"), "f v1.5");
        assert_eq!(sanitize_frame("# comment"), "#\u{a0}comment");
        assert_eq!(sanitize_frame("#hash"), "#hash");
        assert_eq!(sanitize_frame("#"), "[#]");
        assert_eq!(sanitize_frame("# 12"), "#\u{a0}12");
    }

    #[test]
    fn counts_saturate_instead_of_wrapping() {
        let got = folded(&[st(&["a"], u64::MAX), st(&["a"], 5)]);
        assert_eq!(got, format!("a {}\n", u64::MAX));
    }
}
