//! End-to-end tests against real objects: small C/C++ programs compiled here, and this test
//! binary itself. Tests that need gcc/g++/objcopy skip (with a message) when they are missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use object::{Object, ObjectSymbol};

use super::demangle::demangle;
use super::*;

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("peakprof-sym-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Canonical, so paths compare equal to what DWARF records.
        TempDir(dir.canonicalize().unwrap())
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping: {tool} not available");
    }
    ok
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `src` to `dir/name` and compiles it to `dir/out`.
fn compile(
    dir: &Path,
    compiler: &str,
    name: &str,
    src: &str,
    out: &str,
    extra: &[&str],
) -> PathBuf {
    let src_path = dir.join(name);
    std::fs::write(&src_path, src).unwrap();
    let out_path = dir.join(out);
    run(Command::new(compiler)
        .args(["-g", "-O2", "-fPIE", "-pie"])
        .args(extra)
        .arg("-o")
        .arg(&out_path)
        .arg(&src_path));
    out_path
}

/// Module for a file's own addresses: with bias 0, file addresses are runtime addresses.
fn module_for(path: &Path) -> Module {
    let data = std::fs::read(path).unwrap();
    let obj = object::File::parse(&*data).unwrap();
    Module {
        path: path.to_string_lossy().into_owned(),
        build_id: obj
            .build_id()
            .unwrap()
            .map(<[u8]>::to_vec)
            .unwrap_or_default(),
        bias: 0,
        ranges: vec![(0, u64::MAX / 2)],
    }
}

/// Address and size of the symbol whose demangled name is `name`.
fn symbol(path: &Path, name: &str) -> (u64, u64) {
    let data = std::fs::read(path).unwrap();
    let obj = object::File::parse(&*data).unwrap();
    obj.symbols()
        .find(|s| s.name().is_ok_and(|n| demangle(n) == name))
        .map(|s| (s.address(), s.size()))
        .unwrap_or_else(|| panic!("no symbol {name} in {}", path.display()))
}

/// 1-based line of the only line containing `marker`.
fn line_of(src: &str, marker: &str) -> u32 {
    let lines: Vec<usize> = src
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(marker))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 1, "marker {marker}");
    lines[0] as u32
}

const INLINE_C: &str = r#"volatile int sink;

static inline __attribute__((always_inline)) int inner(int x) {
    return sink * x + 7; /* INNER_BODY */
}

__attribute__((noinline)) int outer(int x) {
    int r = inner(x); /* CALL_INNER */
    return r + sink;
}

int main(int argc, char **argv) {
    (void)argv;
    return outer(argc);
}
"#;

/// Compiles the inline test program into `dir/prog`.
fn inline_prog(dir: &Path, extra: &[&str]) -> PathBuf {
    compile(dir, "gcc", "prog.c", INLINE_C, "prog", extra)
}

/// Symbolizes every address of `outer` and returns the distinct two-frame (inlined) results.
fn inlined_results(sym: &mut Symbolizer, prog_for_symbols: &Path) -> Vec<Vec<Frame>> {
    let (start, size) = symbol(prog_for_symbols, "outer");
    assert!(size > 0);
    let mut out: Vec<Vec<Frame>> = Vec::new();
    for a in start..start + size {
        // `symbolize` takes return addresses and looks up the byte before.
        let frames = sym.symbolize(a + 1);
        assert!(!frames.is_empty());
        assert_eq!(frames[0].function, "outer", "at {a:#x}: {frames:?}");
        if frames.len() == 2 && !out.contains(&frames) {
            out.push(frames);
        }
    }
    out
}

/// The inlined call resolves to `outer` at the call line, then `inner` at its body line.
fn assert_inlined(results: &[Vec<Frame>], src_path: &Path) {
    let file = Some(src_path.to_string_lossy().into_owned());
    let expected = vec![
        Frame {
            function: "outer".into(),
            file: file.clone(),
            line: Some(line_of(INLINE_C, "CALL_INNER")),
        },
        Frame {
            function: "inner".into(),
            file,
            line: Some(line_of(INLINE_C, "INNER_BODY")),
        },
    ];
    assert_eq!(results, &[expected][..]);
}

#[test]
fn inlined_call_gives_outer_then_inner() {
    if !have("gcc") {
        return;
    }
    let dir = TempDir::new("inline");
    let prog = inline_prog(dir.path(), &[]);
    let mut sym = Symbolizer::with_debug_dirs(&[module_for(&prog)], vec![]);
    let results = inlined_results(&mut sym, &prog);
    assert_inlined(&results, &dir.path().join("prog.c"));
    assert_eq!(sym.warnings(), &[] as &[String]);

    let f = &results[0];
    assert_eq!(
        f[1].display_name(),
        format!(
            "inner ({}/prog.c:{})",
            dir.path().file_name().unwrap().to_string_lossy(),
            line_of(INLINE_C, "INNER_BODY")
        )
    );
}

#[test]
fn main_calls_outer_at_its_line() {
    if !have("gcc") {
        return;
    }
    let dir = TempDir::new("main");
    let prog = inline_prog(dir.path(), &[]);
    let (start, size) = symbol(&prog, "main");
    let mut sym = Symbolizer::with_debug_dirs(&[module_for(&prog)], vec![]);
    let want_line = line_of(INLINE_C, "return outer(argc);");
    // Some address in main belongs to the line of the call (a tail call at -O2, so no
    // return address; this checks line lookup on an outer function).
    let lines: Vec<Option<u32>> = (start..start + size)
        .map(|a| {
            let f = sym.symbolize(a + 1);
            assert_eq!(f.len(), 1);
            assert_eq!(f[0].function, "main");
            f[0].line
        })
        .collect();
    assert!(lines.contains(&Some(want_line)), "{lines:?}");
}

#[test]
fn cpp_method_is_demangled_from_dwarf_and_symtab() {
    if !have("g++") || !have("objcopy") {
        return;
    }
    let src = r#"namespace ns {
struct Klass {
    int v;
    __attribute__((noinline)) int method(int x);
};
int Klass::method(int x) { return v * x + 3; } // METHOD
}
volatile int g;
int main() { ns::Klass k{g}; return k.method(g); }
"#;
    let dir = TempDir::new("cpp");
    let prog = compile(dir.path(), "g++", "k.cpp", src, "k", &[]);
    let name = "ns::Klass::method(int)";
    let (addr, _) = symbol(&prog, name);

    let mut sym = Symbolizer::with_debug_dirs(&[module_for(&prog)], vec![]);
    let frames = sym.symbolize(addr + 1);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].function, name);
    assert_eq!(frames[0].line, Some(line_of(src, "METHOD")));
    assert!(sym.warnings().is_empty(), "{:?}", sym.warnings());

    // Without DWARF the symbol table still names it, demangled, with a warning saying why
    // there is no line.
    let stripped = dir.path().join("k.stripped");
    run(Command::new("objcopy")
        .arg("--strip-debug")
        .arg(&prog)
        .arg(&stripped));
    let mut sym = Symbolizer::with_debug_dirs(&[module_for(&stripped)], vec![]);
    assert_eq!(
        sym.symbolize(addr + 1),
        vec![Frame::named(name.to_string())]
    );
    assert_eq!(sym.warnings().len(), 1);
    assert!(
        sym.warnings()[0].contains("no debug info"),
        "{:?}",
        sym.warnings()
    );
}

#[inline(never)]
fn rust_helper_marker(x: u64) -> u64 {
    std::hint::black_box(x).wrapping_mul(31) ^ 7
}

#[test]
fn rust_function_of_this_binary_is_demangled_without_hash() {
    assert_eq!(std::hint::black_box(rust_helper_marker)(1), 24);
    let exe = std::env::current_exe().unwrap();
    let name = "peakprof::symbolize::tests::rust_helper_marker";
    let (addr, _) = symbol(&exe, name);
    let mut sym = Symbolizer::with_debug_dirs(&[module_for(&exe)], vec![]);
    let frames = sym.symbolize(addr + 1);
    assert_eq!(frames[0].function, name, "{frames:?}");
    let file = frames[0].file.as_deref().unwrap_or_default();
    assert!(file.ends_with("src/symbolize/tests.rs"), "{frames:?}");
    assert!(frames[0].line.is_some());
}

#[test]
fn stripped_file_uses_build_id_debug_dir() {
    if !have("gcc") || !have("objcopy") {
        return;
    }
    let dir = TempDir::new("buildid");
    let prog = inline_prog(dir.path(), &["-Wl,--build-id"]);
    let module = module_for(&prog);
    assert!(!module.build_id.is_empty());

    let debug_dir = dir.path().join("debug");
    let target = debug_files::build_id_path(&debug_dir, &module.build_id).unwrap();
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&prog)
        .arg(&target));
    let stripped = dir.path().join("prog.stripped");
    run(Command::new("objcopy")
        .arg("--strip-debug")
        .arg(&prog)
        .arg(&stripped));

    let module = Module {
        path: stripped.to_string_lossy().into_owned(),
        ..module
    };
    let mut sym = Symbolizer::with_debug_dirs(&[module], vec![debug_dir]);
    let results = inlined_results(&mut sym, &stripped);
    assert_inlined(&results, &dir.path().join("prog.c"));
    assert!(sym.warnings().is_empty(), "{:?}", sym.warnings());
}

/// Builds `prog.stripped` with a debuglink to `prog.debug`, created next to it.
fn debuglinked(dir: &Path, extra: &[&str]) -> (PathBuf, PathBuf) {
    let prog = inline_prog(dir, extra);
    let debug = dir.join("prog.debug");
    run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&prog)
        .arg(&debug));
    let stripped = dir.join("prog.stripped");
    run(Command::new("objcopy")
        .current_dir(dir)
        .arg("--strip-debug")
        .arg("--add-gnu-debuglink=prog.debug")
        .arg(&prog)
        .arg(&stripped));
    (stripped, debug)
}

#[test]
fn stripped_file_uses_debuglink_in_each_location() {
    if !have("gcc") || !have("objcopy") {
        return;
    }
    let dir = TempDir::new("debuglink");
    let (stripped, debug) = debuglinked(dir.path(), &["-Wl,--build-id"]);
    let src = dir.path().join("prog.c");
    let module = module_for(&stripped);
    let no_dirs = vec![dir.path().join("empty")];

    // Next to the file.
    let mut sym = Symbolizer::with_debug_dirs(std::slice::from_ref(&module), no_dirs.clone());
    assert_inlined(&inlined_results(&mut sym, &stripped), &src);
    assert!(sym.warnings().is_empty(), "{:?}", sym.warnings());

    // In the `.debug/` subdirectory.
    std::fs::create_dir(dir.path().join(".debug")).unwrap();
    let moved = dir.path().join(".debug/prog.debug");
    std::fs::rename(&debug, &moved).unwrap();
    let mut sym = Symbolizer::with_debug_dirs(std::slice::from_ref(&module), no_dirs);
    assert_inlined(&inlined_results(&mut sym, &stripped), &src);
    assert!(sym.warnings().is_empty(), "{:?}", sym.warnings());

    // Under a global debug dir, mirrored by the file's directory.
    let global = dir.path().join("global");
    let mirrored = global.join(dir.path().strip_prefix("/").unwrap());
    std::fs::create_dir_all(&mirrored).unwrap();
    std::fs::rename(&moved, mirrored.join("prog.debug")).unwrap();
    let mut sym = Symbolizer::with_debug_dirs(std::slice::from_ref(&module), vec![global]);
    assert_inlined(&inlined_results(&mut sym, &stripped), &src);
    assert!(sym.warnings().is_empty(), "{:?}", sym.warnings());
}

#[test]
fn debuglink_without_build_id_checks_crc() {
    if !have("gcc") || !have("objcopy") {
        return;
    }
    let dir = TempDir::new("crc");
    let (stripped, debug) = debuglinked(dir.path(), &["-Wl,--build-id=none"]);
    let module = module_for(&stripped);
    assert!(module.build_id.is_empty());
    let mut sym = Symbolizer::with_debug_dirs(std::slice::from_ref(&module), vec![]);
    assert_inlined(
        &inlined_results(&mut sym, &stripped),
        &dir.path().join("prog.c"),
    );

    // A debug file with the right name but other contents must not be used.
    let other = TempDir::new("crc-other");
    let other_prog = compile(
        other.path(),
        "gcc",
        "prog.c",
        &INLINE_C.replace("+ 7", "+ 9"),
        "prog",
        &["-Wl,--build-id=none"],
    );
    run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&other_prog)
        .arg(&debug));
    let mut sym = Symbolizer::with_debug_dirs(std::slice::from_ref(&module), vec![]);
    let (start, _) = symbol(&stripped, "outer");
    assert_eq!(sym.symbolize(start + 1), vec![Frame::named("outer".into())]);
    assert_eq!(sym.warnings().len(), 1, "{:?}", sym.warnings());
    assert!(sym.warnings()[0].contains("no debug info"));
}

#[test]
fn build_id_mismatch_gives_fallback_and_one_warning() {
    if !have("gcc") {
        return;
    }
    let dir = TempDir::new("mismatch");
    let prog = inline_prog(dir.path(), &["-Wl,--build-id"]);
    let (start, _) = symbol(&prog, "outer");
    let module = Module {
        build_id: vec![0xde, 0xad, 0xbe, 0xef],
        ..module_for(&prog)
    };
    let mut sym = Symbolizer::with_debug_dirs(&[module], vec![]);
    assert_eq!(
        sym.symbolize(start + 1),
        vec![Frame::named(format!("prog+{:#x}", start + 1))]
    );
    assert_eq!(
        sym.symbolize(start + 2),
        vec![Frame::named(format!("prog+{:#x}", start + 2))]
    );
    assert_eq!(sym.warnings().len(), 1, "{:?}", sym.warnings());
    assert!(sym.warnings()[0].contains("build-id mismatch"));
    assert!(sym.warnings()[0].contains("deadbeef"));
}

#[test]
fn build_id_mismatch_recovers_from_debug_dir() {
    if !have("gcc") || !have("objcopy") {
        return;
    }
    // The profiled build is kept only as a debug file; the path now holds a rebuilt binary.
    let dir = TempDir::new("rebuilt");
    let old = inline_prog(dir.path(), &["-Wl,--build-id"]);
    let old_module = module_for(&old);
    let debug_dir = dir.path().join("debug");
    let target = debug_files::build_id_path(&debug_dir, &old_module.build_id).unwrap();
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&old)
        .arg(&target));
    let results_src = dir.path().join("prog.c");
    let new_src = format!("int unrelated(void) {{ return 1; }}\n{INLINE_C}");
    compile(
        dir.path(),
        "gcc",
        "prog2.c",
        &new_src,
        "prog",
        &["-Wl,--build-id"],
    );
    assert_ne!(module_for(&old).build_id, old_module.build_id);

    let mut sym = Symbolizer::with_debug_dirs(&[old_module], vec![debug_dir]);
    assert_inlined(&inlined_results(&mut sym, &target), &results_src);
    assert!(sym.warnings().is_empty(), "{:?}", sym.warnings());
}

#[test]
fn unknown_address_is_hex() {
    let module = Module {
        path: "/nonexistent/libfoo.so".into(),
        build_id: vec![],
        bias: 0x1000,
        ranges: vec![(0x1000, 0x3000)],
    };
    let mut sym = Symbolizer::with_debug_dirs(&[module], vec![]);
    assert_eq!(
        sym.symbolize(0x7f00_0000_1234),
        vec![Frame::named("0x7f0000001234".into())]
    );
    assert_eq!(sym.module_of(0x7f00_0000_1234), None);
    assert_eq!(sym.module_of(0x1800), Some(0));
    // Unknown addresses open nothing, so there is nothing to warn about.
    assert!(sym.warnings().is_empty());

    assert_eq!(
        sym.symbolize(0x1a2b + 0x1000),
        vec![Frame::named("libfoo.so+0x1a2b".into())]
    );
    assert_eq!(sym.warnings().len(), 1);
    assert!(sym.warnings()[0].contains("/nonexistent/libfoo.so"));
}

/// Deterministic junk; no dependency needed.
fn junk(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn unusable_files_fall_back_without_panicking() {
    let dir = TempDir::new("corrupt");
    let mut files: Vec<PathBuf> = Vec::new();
    let random = dir.path().join("random.so");
    std::fs::write(&random, junk(8192, 0x9e37_79b9_7f4a_7c15)).unwrap();
    files.push(random);
    let elfish = dir.path().join("elfish.so");
    let mut bytes = b"\x7fELF\x02\x01\x01\0".to_vec();
    bytes.extend(junk(4096, 42));
    std::fs::write(&elfish, bytes).unwrap();
    files.push(elfish);
    let empty = dir.path().join("empty.so");
    std::fs::write(&empty, b"").unwrap();
    files.push(empty);
    files.push(dir.path().to_path_buf());
    let fifo = dir.path().join("fifo.so");
    if Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        files.push(fifo);
    }
    if have("gcc") {
        // Real headers whose sections point past the end of the file.
        let prog = inline_prog(dir.path(), &[]);
        let data = std::fs::read(&prog).unwrap();
        let truncated = dir.path().join("truncated.so");
        std::fs::write(&truncated, &data[..data.len() / 3]).unwrap();
        files.push(truncated);
    }

    for (i, file) in files.iter().enumerate() {
        let base = 0x10_0000 * (i as u64 + 1);
        let module = Module {
            path: file.to_string_lossy().into_owned(),
            build_id: vec![1, 2, 3, 4],
            bias: base,
            ranges: vec![(base, base + 0x10_0000)],
        };
        let mut sym = Symbolizer::with_debug_dirs(&[module], vec![dir.path().to_path_buf()]);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for off in [0x10, 0x1000, 0xf_ffff] {
            let frames = sym.symbolize(base + off);
            assert_eq!(frames, vec![Frame::named(format!("{name}+{off:#x}"))]);
        }
        assert_eq!(sym.warnings().len(), 1, "{file:?}: {:?}", sym.warnings());
    }
}

#[test]
fn address_zero_and_fileless_modules() {
    let modules = [
        Module {
            path: "/nonexistent/a.so".into(),
            build_id: vec![],
            bias: 0,
            ranges: vec![(0, 0x1000)],
        },
        Module {
            path: String::new(),
            build_id: vec![],
            bias: 0x7000,
            ranges: vec![(0x7000, 0x8000)],
        },
    ];
    let mut sym = Symbolizer::with_debug_dirs(&modules, vec![]);
    assert_eq!(sym.symbolize(0), vec![Frame::named("a.so+0x0".into())]);
    assert_eq!(sym.symbolize(0x7010), vec![Frame::named("0x7010".into())]);
    assert!(sym.warnings().is_empty());
    // The cache answers the same way twice.
    assert_eq!(sym.symbolize(0x7010), vec![Frame::named("0x7010".into())]);
}
