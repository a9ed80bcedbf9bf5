// Compiles the parts written in C. The per-thread state (tls.c): stable Rust cannot choose
// the initial-exec TLS model, and the general-dynamic model may call malloc on first access
// from a new thread, which inside a malloc hook is a recursion we cannot afford. The
// variadic exec functions (exec.c): stable Rust cannot define a variadic function.
fn main() {
    println!("cargo:rerun-if-changed=src/tls.c");
    println!("cargo:rerun-if-changed=src/exec.c");
    cc::Build::new()
        .file("src/tls.c")
        .file("src/exec.c")
        .flag_if_supported("-fvisibility=hidden")
        // Variable-length arrays (exec.c) probe each page they take, so one on a nearly
        // full stack faults at the guard page instead of jumping it into another mapping.
        .flag_if_supported("-fstack-clash-protection")
        .opt_level(2)
        .compile("peakprof_tls");
}
