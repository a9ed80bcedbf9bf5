//! The symbolizer's output unit and how it is labelled in reports.

/// One resolved frame (an inlined call yields several).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Demangled function name, or `module+0xoffset` / `0x...` when nothing resolved.
    pub function: String,
    /// Source file as the debug info names it (compilation directory already joined).
    pub file: Option<String>,
    /// Line in `file`: for an outer frame, the line of the call into the next frame.
    pub line: Option<u32>,
}

impl Frame {
    /// A frame known only by name, with no source position.
    pub(crate) fn named(function: String) -> Self {
        Frame {
            function,
            file: None,
            line: None,
        }
    }

    /// `function (file:line)`, or `function` when no line is known. `file` is shortened to its
    /// last two path components (`src/main.rs`) so flamegraph labels stay readable.
    pub fn display_name(&self) -> String {
        match (self.line, &self.file) {
            (Some(line), Some(file)) => format!("{} ({}:{line})", self.function, short_path(file)),
            (Some(line), None) => format!("{} (??:{line})", self.function),
            (None, _) => self.function.clone(),
        }
    }
}

/// The last two components of `path`; DWARF paths may come from Windows hosts, so both
/// separators count. Rust standard library sources (`/rustc/<hash>/library/alloc/src/...`)
/// keep their crate name instead (`alloc/src/raw_vec/mod.rs`), which says whose code it is.
fn short_path(path: &str) -> String {
    if let Some(rest) = path
        .strip_prefix("/rustc/")
        .and_then(|p| p.split_once("/library/"))
        .map(|(_, rest)| rest)
    {
        return rest.to_string();
    }
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    match parts.len() {
        0 => path.to_string(),
        n => parts[n.saturating_sub(2)..].join("/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(file: Option<&str>, line: Option<u32>) -> Frame {
        Frame {
            function: "f".into(),
            file: file.map(str::to_string),
            line,
        }
    }

    #[test]
    fn rust_standard_library_paths_keep_their_crate() {
        let f = frame(
            Some(
                "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/alloc/src/raw_vec/mod.rs",
            ),
            Some(470),
        );
        assert_eq!(f.display_name(), "f (alloc/src/raw_vec/mod.rs:470)");
    }

    #[test]
    fn display_with_file_and_line_keeps_two_components() {
        let f = frame(Some("/home/u/proj/src/main.rs"), Some(12));
        assert_eq!(f.display_name(), "f (src/main.rs:12)");
    }

    #[test]
    fn display_short_paths_unchanged() {
        assert_eq!(
            frame(Some("main.c"), Some(3)).display_name(),
            "f (main.c:3)"
        );
        assert_eq!(
            frame(Some("/main.c"), Some(3)).display_name(),
            "f (main.c:3)"
        );
        assert_eq!(frame(Some("a/b.c"), Some(3)).display_name(), "f (a/b.c:3)");
        assert_eq!(
            frame(Some("C:\\src\\x\\y.cpp"), Some(1)).display_name(),
            "f (x/y.cpp:1)"
        );
    }

    #[test]
    fn display_without_line_is_just_the_name() {
        assert_eq!(frame(Some("/a/b/c.rs"), None).display_name(), "f");
        assert_eq!(frame(None, None).display_name(), "f");
    }

    #[test]
    fn display_line_without_file() {
        assert_eq!(frame(None, Some(7)).display_name(), "f (??:7)");
    }
}
