//! End-to-end: run the example programs of `examples/` under `peakprof run` and compare what
//! it reports with their ground truth, which is stated (with how it was verified) at the top of
//! each example. Every expected number here is exact; a mismatch is a finding, not noise.
//!
//! The ground truth assumes x86_64, 4096-byte pages, glibc 2.36, GCC/libstdc++ 12 and
//! rustc 1.95 (see the examples for which numbers depend on what).

mod common;

use common::*;
use std::sync::OnceLock;

/// A run shared by the tests of one example: profiling once keeps the suite fast, and every
/// test then checks one property of the same profile.
macro_rules! shared_run {
    ($name:ident, $make:expr) => {
        fn $name() -> &'static Run {
            static RUN: OnceLock<Result<Run, String>> = OnceLock::new();
            shared(&RUN, || $make)
        }
    };
}

/// Asserts the inclusive bytes at the peak of each named function.
fn assert_functions(
    folded: &Folded,
    expected: &[(&str, u64)],
    bytes_of: impl Fn(&Folded, &str) -> u64,
) {
    assert_functions_by(folded, expected, bytes_of, "");
}

/// The functions of a ground-truth table that hold something at the peak.
fn held_at_peak<'a>(functions: &[(&'a str, u64)]) -> Vec<&'a str> {
    functions
        .iter()
        .filter(|(_, b)| *b > 0)
        .map(|(n, _)| *n)
        .collect()
}

fn assert_exit(run: &Run, code: i32, summary_code: Option<i64>, summary_signal: Option<i64>) {
    assert_eq!(
        run.code(),
        Some(code),
        "peakprof's exit status\n{}",
        run.describe()
    );
    let summary = run.summary();
    assert_eq!(
        json_opt_i64(&summary, "exit_code"),
        summary_code,
        "summary.json exit_code: {summary}"
    );
    assert_eq!(
        json_opt_i64(&summary, "signal"),
        summary_signal,
        "summary.json signal: {summary}"
    );
}

/// The program's stdout reaches peakprof's stdout byte for byte, and only there: peakprof's
/// own messages go to stderr.
fn assert_stdout_exactly(run: &Run, line: &str) {
    assert_eq!(
        run.stdout_str(),
        line,
        "peakprof's stdout must be exactly the program's\n{}",
        run.describe()
    );
    assert!(
        !run.stderr_str().contains(line.trim_end()),
        "the program's stdout line leaked to stderr\n{}",
        run.describe()
    );
}

fn assert_svgs_name(run: &Run, names: &[&str], matches: impl Fn(&[String], &str) -> bool) {
    for file in ["peak.svg", "peak-reversed.svg"] {
        let svg = std::fs::read_to_string(run.path(file))
            .unwrap_or_else(|e| panic!("cannot read {file}: {e}\n{}", run.describe()));
        let titles = svg_titles(&svg);
        let missing: Vec<_> = names.iter().filter(|n| !matches(&titles, n)).collect();
        assert!(
            missing.is_empty(),
            "{file} has no <title> for {missing:?}; first titles: {:?}",
            &titles[..titles.len().min(30)]
        );
    }
}

// =======================================================================================
// peak_c.c
// =======================================================================================

const PEAK_C_BYTES: u64 = 399_152;

/// Inclusive bytes at the peak (examples/peak_c.c). Zero means the function must hold nothing
/// at the peak (its allocations were freed or moved before it).
const PEAK_C_FUNCTIONS: &[(&str, u64)] = &[
    ("main", 369_152),
    ("hold_a", 100_000),
    ("hold_b", 60_000),
    ("hold_c", 50_000),
    ("hold_d", 40_000),
    ("buf_grow", 70_000),
    ("buf_start", 0),
    ("map_pages", 49_152),
    ("punch_hole", 0),
    ("worker_thread", 30_000),
    ("thread_alloc", 30_000),
    ("make_temporary", 0),
    ("run_thread", 0),
    ("release_all", 0),
];

shared_run!(peak_c, peakprof_run(&c_example("peak_c.c"), &[]));
shared_run!(
    peak_c_o2,
    peakprof_run(&c_example_with("peak_c.c", &["-g", "-O2", "-pthread"]), &[])
);

#[test]
fn peak_c_exit_code_passes_through() {
    assert_exit(peak_c(), 3, Some(3), None);
}

#[test]
fn peak_c_stdout_passed_through_untouched() {
    assert_stdout_exactly(peak_c(), "peak_c: done\n");
}

#[test]
fn peak_c_outputs_consistent() {
    check_outputs_consistent(peak_c());
}

#[test]
fn peak_c_peak_bytes_exact() {
    assert_peak_bytes(peak_c(), PEAK_C_BYTES);
}

#[test]
fn peak_c_bytes_per_function_at_peak() {
    assert_functions(&peak_c().folded(), PEAK_C_FUNCTIONS, function_bytes);
}

#[test]
fn peak_c_temporary_absent_from_peak() {
    // make_temporary's 200000 bytes are more than any single held block, but were freed
    // before the peak: the function must not appear in the peak at all.
    let folded = peak_c().folded();
    assert!(
        !mentions_function(&folded, "make_temporary"),
        "make_temporary appears in the peak\n{}",
        show_folded(&folded, 40)
    );
}

#[test]
fn peak_c_realloc_attributed_to_last_realloc() {
    let run = peak_c();
    let folded = run.folded();
    assert_eq!(
        function_bytes(&folded, "buf_grow"),
        70_000,
        "{}",
        show_folded(&folded, 40)
    );
    assert!(
        !mentions_function(&folded, "buf_start"),
        "buf_start's malloc(1000) was moved by buf_grow's reallocs; it must not be in the peak\n{}",
        show_folded(&folded, 40)
    );
    // One live block, not the sum of the intermediate sizes.
    let top = summary_top(&run.summary());
    let entry = top
        .iter()
        .find(|t| t.frames.iter().any(|f| function_name(f) == "buf_grow"))
        .unwrap_or_else(|| panic!("no `top` entry through buf_grow: {top:?}"));
    assert_eq!((entry.bytes, entry.count), (70_000, 1), "{entry:?}");
}

#[test]
fn peak_c_mmap_counts_only_remaining_pages() {
    let folded = peak_c().folded();
    // 16 pages mapped, 4 unmapped from the middle: 12 pages remain.
    assert_eq!(
        function_bytes(&folded, "map_pages"),
        12 * PAGE,
        "{}",
        show_folded(&folded, 40)
    );
    assert!(
        !mentions_function(&folded, "punch_hole"),
        "munmap holds nothing\n{}",
        show_folded(&folded, 40)
    );
}

#[test]
fn peak_c_thread_block_held_by_thread_function() {
    let folded = peak_c().folded();
    assert_eq!(
        function_bytes(&folded, "thread_alloc"),
        30_000,
        "{}",
        show_folded(&folded, 40)
    );
    assert_eq!(
        function_bytes(&folded, "worker_thread"),
        30_000,
        "{}",
        show_folded(&folded, 40)
    );
    // The block was allocated on the second thread, whose stack does not go through main.
    for (frames, bytes) in &folded {
        if frames.iter().any(|f| function_name(f) == "thread_alloc") {
            assert!(
                !frames.iter().any(|f| function_name(f) == "main"),
                "the thread's stack goes through main: {} {bytes}",
                frames.join(";")
            );
        }
    }
}

#[test]
fn peak_c_leaf_is_the_allocating_function() {
    // The profiler's own frames are not shown: for plain malloc-family calls from C, the leaf
    // frame is the function that called malloc.
    let folded = peak_c().folded();
    for name in [
        "hold_a",
        "hold_b",
        "hold_c",
        "hold_d",
        "buf_grow",
        "map_pages",
        "thread_alloc",
    ] {
        let stacks: Vec<_> = folded
            .iter()
            .filter(|(f, _)| f.iter().any(|x| function_name(x) == name))
            .collect();
        assert!(
            !stacks.is_empty(),
            "no stack through {name}\n{}",
            show_folded(&folded, 40)
        );
        for (frames, _) in stacks {
            assert_eq!(
                function_name(frames.last().unwrap()),
                name,
                "leaf of a stack through {name}: {}",
                frames.join(";")
            );
        }
    }
}

#[test]
fn peak_c_frames_carry_source_locations() {
    // Built with -g: our functions resolve to `function (file:line)` with the example's file.
    let folded = peak_c().folded();
    let frame = folded
        .iter()
        .flat_map(|(f, _)| f.iter())
        .find(|f| function_name(f) == "hold_a")
        .unwrap_or_else(|| panic!("no hold_a frame\n{}", show_folded(&folded, 40)));
    assert!(
        frame.contains("peak_c.c:"),
        "hold_a frame without its location: {frame}"
    );
}

#[test]
fn peak_c_flamegraphs_name_functions() {
    assert_svgs_name(
        peak_c(),
        &[
            "main",
            "hold_a",
            "hold_b",
            "hold_c",
            "hold_d",
            "buf_grow",
            "map_pages",
            "worker_thread",
            "thread_alloc",
        ],
        svg_names_function,
    );
    for file in ["peak.svg", "peak-reversed.svg"] {
        let titles = svg_titles(&std::fs::read_to_string(peak_c().path(file)).unwrap());
        assert!(
            !svg_names_function(&titles, "make_temporary"),
            "{file} shows make_temporary"
        );
    }
}

#[test]
fn peak_c_summary_functions_and_top() {
    let run = peak_c();
    let summary = run.summary();
    for &(name, want) in PEAK_C_FUNCTIONS {
        let entries = summary_function_entries(&summary, name);
        let ok = if want == 0 {
            entries.iter().all(|(_, b)| *b == 0)
        } else {
            entries.len() == 1 && entries[0].1 == want
        };
        assert!(
            ok,
            "summary.json `functions` should list {name} once with its {want} inclusive bytes at the \
             peak; its entries: {entries:?}"
        );
    }

    let top = summary_top(&summary);
    assert!(!top.is_empty(), "empty `top`");
    assert!(
        top.windows(2).all(|w| w[0].bytes >= w[1].bytes),
        "`top` not largest first: {top:?}"
    );
    assert!(
        top.iter()
            .all(|t| t.bytes > 0 && t.count > 0 && !t.frames.is_empty()),
        "{top:?}"
    );
    assert!(
        top.iter().map(|t| t.bytes).sum::<u64>() <= PEAK_C_BYTES,
        "{top:?}"
    );
    // The largest single stack is hold_a's one malloc(100000); frames are root..leaf.
    assert_eq!((top[0].bytes, top[0].count), (100_000, 1), "{:?}", top[0]);
    assert_eq!(
        function_name(top[0].frames.last().unwrap()),
        "hold_a",
        "{:?}",
        top[0]
    );
    // The mapping split by punch_hole is still one call path.
    let mapped = top
        .iter()
        .find(|t| t.frames.iter().any(|f| function_name(f) == "map_pages"))
        .unwrap_or_else(|| panic!("no `top` entry through map_pages: {top:?}"));
    assert_eq!(mapped.bytes, 12 * PAGE, "{mapped:?}");
}

#[test]
fn peak_c_summary_describes_the_run() {
    let run = peak_c();
    let summary = run.summary();
    let argv: Vec<&str> = summary
        .get("argv")
        .and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
        .unwrap_or_else(|| panic!("summary.json `argv` is not an array of strings: {summary}"));
    assert_eq!(argv.len(), 1, "argv: {argv:?}");
    assert!(argv[0].ends_with("peak_c.g_O0_pthread"), "argv: {argv:?}");
    let command = summary
        .get("command")
        .and_then(|c| c.as_str())
        .unwrap_or_else(|| panic!("`command`: {summary}"));
    assert!(
        command.contains("peak_c.g_O0_pthread"),
        "command: {command}"
    );
    let t = summary
        .get("peak_time_s")
        .and_then(|t| t.as_f64())
        .unwrap_or_else(|| panic!("`peak_time_s`: {summary}"));
    assert!(
        t.is_finite() && t >= 0.0 && t < RUN_TIMEOUT.as_secs_f64(),
        "peak_time_s {t}"
    );
    // Every held byte but calloc's was written, so the resident high-water mark is above the
    // tracked peak (it also counts code and libraries).
    assert!(
        json_u64(&summary, "peak_rss_bytes") >= PEAK_C_BYTES,
        "{summary}"
    );
}

#[test]
fn peak_c_o2_same_ground_truth() {
    let run = peak_c_o2();
    assert_exit(run, 3, Some(3), None);
    check_outputs_consistent(run);
    assert_peak_bytes(run, PEAK_C_BYTES);
    assert_functions(&run.folded(), PEAK_C_FUNCTIONS, function_bytes);
}

// =======================================================================================
// peak_cpp.cpp
// =======================================================================================

const PEAK_CPP_BYTES: u64 = 261_712;
/// libstdc++'s exception emergency pool, malloc'ed by its static initializer before main
/// (GCC 12's libstdc++; newer versions size it differently).
const LIBSTDCXX_EMERGENCY_POOL: u64 = 72_704;

const PEAK_CPP_FUNCTIONS: &[(&str, u64)] = &[
    ("peak::hold_array", 100_000),
    ("peak::make_widget", 5_000),
    ("peak::hold_gadgets", 4_008),
    ("peak::fill_vector", 80_000),
    ("peak::release_all", 0),
];

shared_run!(peak_cpp, peakprof_run(&cpp_example("peak_cpp.cpp"), &[]));

#[test]
fn peak_cpp_exit_code_and_stdout() {
    let run = peak_cpp();
    assert_exit(run, 0, Some(0), None);
    assert_stdout_exactly(run, "peak_cpp: done\n");
}

#[test]
fn peak_cpp_outputs_consistent() {
    check_outputs_consistent(peak_cpp());
}

#[test]
fn peak_cpp_peak_bytes_exact() {
    assert_peak_bytes(peak_cpp(), PEAK_CPP_BYTES);
}

#[test]
fn peak_cpp_bytes_per_function_at_peak() {
    let folded = peak_cpp().folded();
    assert_functions(&folded, PEAK_CPP_FUNCTIONS, cpp_function_bytes);
    assert_functions(
        &folded,
        &[("main", PEAK_CPP_BYTES - LIBSTDCXX_EMERGENCY_POOL)],
        function_bytes,
    );
}

#[test]
fn peak_cpp_startup_allocation_counted() {
    // The emergency pool is allocated before main, by the dynamic loader's init calls: a
    // profiler that starts recording late, or only under main, misses it.
    let folded = peak_cpp().folded();
    let outside_main: u64 = folded
        .iter()
        .filter(|(frames, _)| !frames.iter().any(|f| function_name(f) == "main"))
        .map(|(_, b)| b)
        .sum();
    assert_eq!(
        outside_main,
        LIBSTDCXX_EMERGENCY_POOL,
        "{}",
        show_folded(&folded, 40)
    );
}

#[test]
fn peak_cpp_flamegraphs_name_functions() {
    let names = held_at_peak(PEAK_CPP_FUNCTIONS);
    assert_svgs_name(peak_cpp(), &names, |titles, name| {
        let (with_params, with_loc) = (format!("{name}("), format!("{name} ("));
        titles
            .iter()
            .any(|t| t == name || t.starts_with(&with_params) || t.starts_with(&with_loc))
    });
}

// =======================================================================================
// peak_rust.rs (cargo example)
// =======================================================================================

/// Bytes of our own functions at the peak (examples/peak_rust.rs).
const PEAK_RUST_FUNCTIONS: &[(&str, u64)] = &[
    ("peak_rust::main", 216_800),
    ("peak_rust::hold_vec_a", 120_000),
    ("peak_rust::hold_vec_b", 64_000),
    ("peak_rust::hold_box", 32_768),
    ("peak_rust::thread_alloc", 45_000),
    ("peak_rust::spawn_worker", 32),
    ("peak_rust::make_temporary", 0),
];
/// hold_vec_a + hold_vec_b + hold_box + thread_alloc + the 32-byte TLS-destructor record.
const PEAK_RUST_USER_BYTES: u64 = 261_800;
/// std's own heap blocks live at the peak when it sets up its stack-overflow handler: the
/// thread-info BTreeMap leaf (544) and the Box<str> name "main" (4), both made before main.
const RUST_RUNTIME_HEAP_BYTES: u64 = 548;

/// std's alternate signal stack for the main thread: an anonymous mmap64 of
/// max(SIGSTKSZ = 8192, getauxval(AT_MINSIGSTKSZ)) plus one guard page, made before main.
fn rust_main_altstack_bytes() -> u64 {
    const AT_MINSIGSTKSZ: u64 = 51;
    let min = auxv(AT_MINSIGSTKSZ).unwrap_or(0);
    page_up(min.max(8192) + PAGE)
}

/// Whether, under `peakprof run`, SIGSEGV or SIGBUS still has its default action when main
/// starts. Rust's std sets up its stack-overflow handler (and allocates for it) only then;
/// a preload that installs crash handlers first makes it skip that.
fn std_sets_up_stack_overflow_handler() -> bool {
    static ANSWER: OnceLock<Result<bool, String>> = OnceLock::new();
    *shared(&ANSWER, || {
        let run = peakprof_run(&c_example("signal_dispositions.c"), &[]);
        let out = run.stdout_str();
        let default = |sig: &str| match out.lines().find(|l| l.starts_with(&format!("{sig} "))) {
            Some(l) => l.ends_with(" default"),
            None => panic!(
                "signal_dispositions printed no {sig} line\n{}",
                run.describe()
            ),
        };
        default("SIGSEGV") || default("SIGBUS")
    })
}

/// What std itself still holds at the peak: 12836 bytes with its stack-overflow handler set up
/// (on the machine the ground truth was taken on), 0 without.
fn rust_runtime_bytes() -> u64 {
    if std_sets_up_stack_overflow_handler() {
        RUST_RUNTIME_HEAP_BYTES + rust_main_altstack_bytes()
    } else {
        0
    }
}

shared_run!(peak_rust, peakprof_run(&rust_example("peak_rust"), &[]));

#[test]
fn peak_rust_exit_code_and_stdout() {
    let run = peak_rust();
    assert_exit(run, 0, Some(0), None);
    assert_stdout_exactly(run, "peak_rust: done\n");
}

#[test]
fn peak_rust_outputs_consistent() {
    check_outputs_consistent(peak_rust());
}

#[test]
fn peak_rust_peak_bytes_exact() {
    // 261800 under a preload that installs SIGSEGV/SIGBUS handlers before main (peakprof
    // does); 274636 otherwise (12288-byte altstack on the machine the ground truth was taken on).
    assert_peak_bytes(peak_rust(), PEAK_RUST_USER_BYTES + rust_runtime_bytes());
}

#[test]
fn peak_rust_bytes_per_function_at_peak() {
    assert_functions(&peak_rust().folded(), PEAK_RUST_FUNCTIONS, function_bytes);
}

#[test]
fn peak_rust_runtime_blocks_counted() {
    // What std allocated on its own before main and still holds (under std::rt::init, which
    // may be inlined): everything neither under peak_rust::main nor on the spawned thread.
    let folded = peak_rust().folded();
    let runtime: u64 = folded
        .iter()
        .filter(|(frames, _)| {
            !frames.iter().any(|f| {
                matches!(
                    function_name(f),
                    "peak_rust::main" | "peak_rust::thread_alloc"
                )
            })
        })
        .map(|(_, b)| b)
        .sum();
    assert_eq!(
        runtime,
        rust_runtime_bytes(),
        "std's own blocks at the peak (stack-overflow handler set up: {})\n{}",
        std_sets_up_stack_overflow_handler(),
        show_folded(&folded, 40)
    );
}

#[test]
fn peak_rust_flamegraphs_name_functions() {
    let names = held_at_peak(PEAK_RUST_FUNCTIONS);
    assert_svgs_name(peak_rust(), &names, svg_names_function);
}

// =======================================================================================
// exit_with.c
// =======================================================================================

/// exit_with.c run with `args`: peakprof and summary.json report exit code `code`, and the
/// profile is complete and exact.
fn check_exit_with(args: &[&str], code: i32) {
    let run = peakprof_run(&c_example("exit_with.c"), args);
    assert_exit(&run, code, Some(i64::from(code)), None);
    check_outputs_consistent(&run);
    assert_peak_bytes(&run, 4242);
    assert_functions(
        &run.folded(),
        &[("main", 4242), ("exit_hold", 4242)],
        function_bytes,
    );
    assert!(
        run.stdout.is_empty(),
        "exit_with prints nothing\n{}",
        run.describe()
    );
}

#[test]
fn exit_with_42() {
    check_exit_with(&["42"], 42);
}

#[test]
fn exit_with_0() {
    check_exit_with(&["0"], 0);
}

#[test]
fn exit_with_255() {
    check_exit_with(&["255"], 255);
}

#[test]
fn exit_with_42_via_exit() {
    check_exit_with(&["42", "exit"], 42);
}

#[test]
fn exit_with_42_via_underscore_exit() {
    // _exit skips atexit handlers and destructors: the profile must still be written.
    check_exit_with(&["42", "_exit"], 42);
}

// =======================================================================================
// die_by_signal.c
// =======================================================================================

fn die_by(signal: &str) -> Run {
    peakprof_run(&c_example("die_by_signal.c"), &[signal])
}

fn assert_died_with_profile(run: &Run, signo: i32) {
    assert_exit(run, 128 + signo, None, Some(signo as i64));
    assert_stdout_exactly(run, "die_by_signal: dying\n");
    check_outputs_consistent(run);
    assert_peak_bytes(run, 250_000);
    assert_functions(
        &run.folded(),
        &[("main", 250_000), ("doomed_alloc", 250_000), ("die_now", 0)],
        function_bytes,
    );
}

#[test]
fn die_by_sigsegv() {
    // A real null-pointer write: exit status 139, signal 11, and the profile still written.
    assert_died_with_profile(&die_by("SIGSEGV"), 11);
}

#[test]
fn die_by_sigabrt() {
    assert_died_with_profile(&die_by("SIGABRT"), 6);
}

#[test]
fn die_by_sigfpe() {
    // A real integer division by zero.
    assert_died_with_profile(&die_by("SIGFPE"), 8);
}

#[test]
fn die_by_sigterm() {
    let run = die_by("SIGTERM");
    assert_eq!(run.code(), Some(143), "{}", run.describe());
    // Whether a profile is written for a terminating (not crashing) signal is peakprof's
    // choice; when it is, it must say so and be exact.
    if run.path("summary.json").exists() {
        assert_died_with_profile(&run, 15);
    }
}

#[test]
fn die_by_sigkill() {
    // SIGKILL cannot be caught: no profile is required, only the exit status.
    let run = die_by("SIGKILL");
    assert_eq!(run.code(), Some(137), "{}", run.describe());
    assert_eq!(
        run.stdout_str(),
        "die_by_signal: dying\n",
        "{}",
        run.describe()
    );
    if run.path("summary.json").exists() {
        assert_eq!(
            json_opt_i64(&run.summary(), "signal"),
            Some(9),
            "{}",
            run.describe()
        );
    }
}

// =======================================================================================
// many_stacks.c
// =======================================================================================

const MANY_STACKS_BYTES: u64 = 1_081_344;
const MANY_STACKS_PATHS: usize = 8192;

shared_run!(many_stacks, peakprof_run(&c_example("many_stacks.c"), &[]));

#[test]
fn many_stacks_peak_exact_and_consistent() {
    let run = many_stacks();
    assert_exit(run, 0, Some(0), None);
    check_outputs_consistent(run);
    assert_peak_bytes(run, MANY_STACKS_BYTES);
}

#[test]
fn many_stacks_every_path_at_peak() {
    let folded = many_stacks().folded();
    assert_functions(
        &folded,
        &[
            ("main", MANY_STACKS_BYTES),
            ("step", MANY_STACKS_BYTES),
            ("leaf_hold", MANY_STACKS_BYTES),
            ("go_left", MANY_STACKS_BYTES - 256), // all paths but the all-right one
            ("go_right", MANY_STACKS_BYTES - 8),  // all paths but the all-left one
        ],
        function_bytes,
    );
    // Each path is its own sequence of go_left/go_right frames.
    let paths: std::collections::HashSet<Vec<&str>> = folded
        .iter()
        .map(|(frames, _)| {
            frames
                .iter()
                .map(|f| function_name(f))
                .filter(|f| *f == "go_left" || *f == "go_right")
                .collect()
        })
        .collect();
    assert_eq!(
        paths.len(),
        MANY_STACKS_PATHS,
        "distinct go_left/go_right sequences at the peak"
    );
}

#[test]
fn many_stacks_largest_stacks_first_in_top() {
    let top = summary_top(&many_stacks().summary());
    assert!(!top.is_empty());
    assert!(
        top.windows(2).all(|w| w[0].bytes >= w[1].bytes),
        "`top` not largest first"
    );
    // The largest single stacks are the 256 paths holding 8 * 32 bytes each.
    assert_eq!((top[0].bytes, top[0].count), (256, 1), "{:?}", top[0]);
    assert!(top.len() <= MANY_STACKS_PATHS);
}

// ---------------------------------------------------------------------------------------
// Crossing from one thread to two (examples/single_to_multi.c)

const SINGLE_TO_MULTI_FUNCTIONS: &[(&str, u64)] = &[
    ("main", 3000),
    ("st_keep", 2000),
    ("after_join", 1000),
    ("worker", 3000),
    ("mt_alloc", 3000),
    ("st_given", 0),
    ("st_short", 0),
    ("mt_short", 0),
];

/// A realloc that fails: its block is still live, still its first caller's, in both modes
/// (exact single-threaded mode records a realloc after the real call, as one event; sampled
/// mode takes the block out before the call and puts it back). A realloc to size 0 that
/// glibc answers with NULL freed its block (examples/failed_realloc.c).
#[test]
fn failed_realloc_puts_the_block_back() {
    for options in [&[][..], &["--sample-rate", "1"][..]] {
        let run = peakprof_run_with(&c_example("failed_realloc.c"), &[], options);
        assert_exit(&run, 0, Some(0), None);
        assert_peak_bytes(&run, 60_000);
        let expected = [
            ("zero_realloc_frees", 0),
            ("keep_block", 40_000),
            ("after_fail", 20_000),
        ];
        assert_functions(&run.folded(), &expected, function_bytes);
    }
}

#[test]
fn single_to_multi_thread_peak_exact() {
    // Blocks made while single-threaded (queued, recorded without the lock) are freed by a
    // second thread, and the second thread's block is kept by the first: the peak and its
    // owners are exact across the switch.
    let run = peakprof_run(&c_example("single_to_multi.c"), &[]);
    assert_exit(&run, 0, Some(0), None);
    check_outputs_consistent(&run);
    assert_peak_bytes(&run, 6000);
    assert_functions(&run.folded(), SINGLE_TO_MULTI_FUNCTIONS, function_bytes);
}

// ---------------------------------------------------------------------------------------
// Stacks repeated from a few sites in turn (examples/rotating_sites.c)

/// Four sites allocating in turn, rbp junk at every call: each capture repeats the walk
/// made four allocations before, whole (frames and stack id checked against full walks by
/// PEAKPROF_CHECK_UNWIND), in both modes (a sampled capture uses the same walks), and the
/// peak and its owners stay exact.
#[test]
fn rotating_sites_repeat_earlier_walks_whole() {
    for options in [&[][..], &["--sample-rate", "1"][..]] {
        // All but the first visit of each site (and of each phase's first round).
        run_rotating_sites(&[], options, 99);
    }
}

/// Runs `rotating_sites` with `args` under peakprof with `options`: it exits 0, at least
/// `min_percent` of its captures repeated an earlier walk whole, and its peak and the bytes
/// each of its functions held there are exact.
fn run_rotating_sites(args: &[&str], options: &[&str], min_percent: u64) {
    let run = peakprof_run_with(&c_example("rotating_sites.c"), args, options);
    assert_exit(&run, 0, Some(0), None);
    let out = run.stdout_str();
    let counts: Vec<u64> = out
        .trim()
        .strip_prefix("repeated ")
        .and_then(|rest| rest.split_once(" of "))
        .map(|(n, m)| [n, m].iter().filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    let [repeated, made] = counts[..] else {
        panic!(
            "{args:?} {options:?}: unexpected output {out:?}\n{}",
            run.describe()
        );
    };
    assert!(
        repeated * 100 >= made * min_percent,
        "{args:?} {options:?}: only {repeated} of {made} captures repeated an earlier walk whole"
    );
    assert_peak_bytes(&run, 10_000_000);
    let expected = [
        ("site_a", 1_000_000),
        ("site_b", 2_000_000),
        ("site_c", 3_000_000),
        ("site_d", 4_000_000),
        ("junk_rbp_alloc", 10_000_000),
        ("alloc_inner", 10_000_000),
    ];
    assert_functions(&run.folded(), &expected, function_bytes);
}

/// The same program writing lengths past the end (and zero) over the thread's memos while
/// it runs, as a program writing over the profiler's memory might: no capture reads past a
/// memo or takes a wrong stack from one (PEAKPROF_CHECK_UNWIND compares them with full
/// walks), the peak and its owners stay exact, and the memos recover (most captures still
/// repeat an earlier walk whole).
#[test]
fn rotating_sites_survive_memo_lengths_written_over() {
    run_rotating_sites(&["overwrite"], &[], 90);
}

// ---------------------------------------------------------------------------------------
// Failed munmap and mremap calls (examples/failed_unmaps.c)

/// Whether the CPU can run 5-level page tables: the kernel may then accept ranges above
/// 2^47, and `failed_unmaps high` would unmap its own stack.
fn cpu_has_la57() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").map_or(true, |info| {
        info.lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "la57"))
    })
}

/// A munmap or mremap the kernel refuses leaves the mapping counted: the peak holds both
/// mappings whole, each to its own function.
#[test]
fn failed_unmaps_leave_the_mapping_counted() {
    let program = c_example("failed_unmaps.c");
    for mode in ["einval", "high", "sealed", "mremap"] {
        if mode == "high" && cpu_has_la57() {
            eprintln!("note: failed_unmaps high skipped: the CPU has 5-level paging");
            continue;
        }
        let run = peakprof_run(&program, &[mode]);
        if mode == "sealed" && run.code() == Some(77) {
            eprintln!("note: failed_unmaps sealed skipped: no mseal in this kernel");
            continue;
        }
        assert_exit(&run, 0, Some(0), None);
        assert_peak_bytes(&run, 32768);
        let folded = run.folded();
        for (function, bytes) in [("map_first", 16384), ("map_second", 16384)] {
            assert_eq!(
                function_bytes(&folded, function),
                bytes,
                "{mode}: {function}\n{}",
                show_folded(&folded, 20)
            );
        }
        // Each mapping whole: one live block each, not pieces of one.
        assert_eq!(
            json_u64(&run.summary(), "live_allocations"),
            2,
            "{mode}\n{}",
            run.describe()
        );
    }
}

/// mremap with MREMAP_DONTUNMAP moves the pages and leaves the old range mapped: both
/// count, the old one still to the function that mapped it.
#[test]
fn mremap_dontunmap_leaves_the_old_range_counted() {
    let run = peakprof_run(&c_example("failed_unmaps.c"), &["dontunmap"]);
    if run.code() == Some(77) {
        eprintln!("note: failed_unmaps dontunmap skipped: no MREMAP_DONTUNMAP in this kernel");
        return;
    }
    assert_exit(&run, 0, Some(0), None);
    assert_peak_bytes(&run, 49152);
    let folded = run.folded();
    for (function, bytes) in [("map_first", 16384), ("map_second", 16384), ("main", 49152)] {
        assert_eq!(
            function_bytes(&folded, function),
            bytes,
            "{function}\n{}",
            show_folded(&folded, 20)
        );
    }
}
