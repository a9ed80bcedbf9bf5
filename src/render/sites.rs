//! Which frame of a path is its allocation site. The frames below it are the allocation
//! machinery the program called into (Rust's `alloc` crate and its `__rust_alloc` shims, C++
//! `operator new`): true, and kept in flamegraphs, but a summary that names `alloc` as the
//! site of every path tells nothing.

use super::terminal::strip_location;

/// Functions that only pass an allocation on to `malloc`.
const SHIM_PREFIXES: &[&str] = &[
    "__rust_alloc",
    "__rust_realloc",
    "__rdl_alloc",
    "__rdl_realloc",
    "__rg_alloc",
    "__rg_realloc",
    "alloc::",
    "<alloc::",
    "core::alloc",
    "std::alloc",
    "operator new",
];

/// Source directories of the Rust standard library's allocation code, as
/// [`crate::symbolize::Frame::display_name`] shortens them.
const SHIM_FILES: &[&str] = &["(alloc/src/", "(core/src/alloc/", "(std/src/alloc"];

/// Whether a display name is allocation machinery rather than the program's own code.
pub(crate) fn is_allocator_frame(frame: &str) -> bool {
    let function = strip_location(frame);
    SHIM_PREFIXES.iter().any(|p| function.starts_with(p))
        || SHIM_FILES.iter().any(|f| frame.contains(f))
}

/// `frames` (root first) without the allocation machinery at the leaf end; at least one
/// frame stays, so a path made only of machinery still shows something.
pub(crate) fn up_to_site<S: AsRef<str>>(frames: &[S]) -> &[S] {
    let keep = frames.len()
        - frames
            .iter()
            .rev()
            .take_while(|f| is_allocator_frame(f.as_ref()))
            .count();
    &frames[..keep.max(1).min(frames.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(frames: &[&str]) -> Vec<String> {
        frames.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rust_and_cpp_allocation_machinery_is_not_the_site() {
        let rust = v(&[
            "peak_rust::main (examples/peak_rust.rs:90)",
            "peak_rust::hold_vec_a (examples/peak_rust.rs:40)",
            "alloc::raw_vec::RawVecInner<A>::try_allocate_in (alloc/src/raw_vec/mod.rs:470)",
            "allocate (alloc/src/alloc.rs:256)",
            "alloc (alloc/src/alloc.rs:95)",
        ]);
        assert_eq!(up_to_site(&rust), &rust[..2]);
        let cpp = v(&[
            "main (a.cc:3)",
            "peak::hold_array (a.cc:9)",
            "operator new(unsigned long)",
        ]);
        assert_eq!(up_to_site(&cpp), &cpp[..2]);
        let c = v(&["main (a.c:3)", "hold_a (a.c:9)"]);
        assert_eq!(up_to_site(&c), &c[..]);
        let only = v(&["__rust_alloc"]);
        assert_eq!(up_to_site(&only), &only[..]);
        assert!(up_to_site::<&str>(&[]).is_empty());
        // A user's own function that happens to be called `alloc` is not machinery.
        assert!(!is_allocator_frame("alloc (src/arena.rs:12)"));
    }
}
