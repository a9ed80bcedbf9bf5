//! Neutralising untrusted text (frame names, argv) before it reaches an output format.
//!
//! The profiled program chooses its own symbol names and arguments, so they may contain
//! anything a Rust `String` can hold. Rules shared by the renderers:
//!
//! * control characters (C0, DEL, C1 — including `\n`, `\r`, `\t`, `ESC`) become a space:
//!   they would break line-oriented formats, inject terminal escape sequences, or make XML
//!   ill-formed (XML 1.0 forbids most of them even when escaped);
//! * the noncharacters U+FFFE and U+FFFF become a space too, because XML 1.0 forbids them.
//!
//! Format-specific rules (e.g. `;` in folded stacks) live with the format.

/// Replaces every character that is unsafe in a single line of terminal or XML text
/// with a space (see the module documentation for which ones and why).
pub fn sanitize_line(s: &str) -> String {
    s.chars()
        .map(|c| if is_unsafe(c) { ' ' } else { c })
        .collect()
}

/// Whether `c` must not appear verbatim in a single line of terminal or XML output.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}'
}

/// Shortens `s` to at most `max` characters, marking the cut with `…`, so a long command
/// line or frame name cannot blow up a title or a terminal line.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_replaces_controls_and_xml_noncharacters() {
        assert_eq!(
            sanitize_line("a\nb\r\tc\u{1b}[31md\u{85}e\u{FFFE}f\u{FFFF}"),
            "a b  c [31md e f "
        );
        assert_eq!(sanitize_line("naïve <ok> & fine"), "naïve <ok> & fine");
    }

    #[test]
    fn truncate_counts_chars_not_bytes() {
        assert_eq!(truncate_chars("héllo", 5), "héllo");
        assert_eq!(truncate_chars("héllo world", 5), "héll…");
        assert_eq!(truncate_chars("abc", 1), "…");
        assert_eq!(truncate_chars("abc", 0), "");
    }
}
