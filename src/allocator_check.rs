//! Programs that carry their own allocator inside the executable (a Rust program with a
//! statically linked jemalloc or mimalloc, a C++ program built with `-ltcmalloc_minimal`
//! statically) never call `malloc`: the profile then shows only their anonymous mmaps. That
//! must be said, not left as a silently small report.

use object::{Object, ObjectSymbol};

/// Symbols that betray an allocator built into the executable, and its name.
const MARKERS: &[(&str, &str)] = &[
    ("_rjem_malloc", "jemalloc (tikv-jemallocator)"),
    ("_rjem_mallocx", "jemalloc (tikv-jemallocator)"),
    ("je_malloc", "jemalloc"),
    ("je_mallocx", "jemalloc"),
    ("mi_malloc", "mimalloc"),
    ("mi_heap_malloc", "mimalloc"),
    ("tc_malloc", "tcmalloc"),
    ("rpmalloc", "rpmalloc"),
    ("snmalloc_malloc", "snmalloc"),
];

/// The name of an allocator defined inside the ELF file `data`, if any. Only symbols the
/// file defines count: an executable that merely links the shared library (and so still
/// goes through `malloc`) is fine.
pub fn builtin_allocator(data: &[u8]) -> Option<&'static str> {
    let file = object::File::parse(data).ok()?;
    file.symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.is_definition())
        .find_map(|s| {
            let name = s.name().ok()?;
            MARKERS
                .iter()
                .find(|(m, _)| *m == name)
                .map(|(_, what)| *what)
        })
}

/// A warning for the report when the executable at `path` has its own allocator.
pub fn warning_for(path: &str) -> Option<String> {
    // Only its symbol tables: a big executable (cc1: 35 MB) is not read whole for this.
    let data = crate::symbolize::symbol_image(std::path::Path::new(path))
        .or_else(|| std::fs::read(path).ok())?;
    let what = builtin_allocator(&data)?;
    Some(format!(
        "{path} contains its own allocator ({what}) instead of calling malloc: only the memory it maps with mmap is visible to peakprof"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_has_no_builtin_allocator() {
        let data = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(builtin_allocator(&data), None);
    }

    #[test]
    fn a_c_program_defining_mi_malloc_is_recognized() {
        let dir = std::env::temp_dir().join(format!("peakprof-alloc-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("own.c");
        std::fs::write(
            &src,
            "#include <stddef.h>\nvoid *mi_malloc(size_t n) { static char b[64]; (void)n; return b; }\nint main(void) { return mi_malloc(1) == 0; }\n",
        )
        .unwrap();
        let exe = dir.join("own");
        let ok = std::process::Command::new("cc")
            .arg("-o")
            .arg(&exe)
            .arg(&src)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: no C compiler");
            return;
        }
        let data = std::fs::read(&exe).unwrap();
        assert_eq!(builtin_allocator(&data), Some("mimalloc"));
        let w = warning_for(exe.to_str().unwrap()).unwrap();
        assert!(w.contains("only the memory it maps with mmap"), "{w}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
