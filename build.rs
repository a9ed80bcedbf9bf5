//! Builds the preload library and embeds it in the `peakprof` binary, so that after
//! `cargo install --path .` the tool works from any directory with nothing beside it.
//!
//! The preload is built by a nested `cargo build` of the `peakprof-preload` package in
//! release mode with `panic = "abort"`, into a target directory of its own (a nested cargo
//! must not wait on the lock of the outer build's directory). The preload depends on this
//! crate without the `cli` feature, and this script does nothing without that feature, so
//! the nesting stops there.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    if env::var_os("CARGO_FEATURE_CLI").is_none() {
        return;
    }
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
    // The preload's sources: its crate, and the modules of this one it compiles (those
    // `src/lib.rs` has without the `cli` feature).
    for p in [
        "preload",
        "src/record",
        "src/format",
        "src/child_env.rs",
        "src/ignored_signals.rs",
        "src/unwind.rs",
        "src/lib.rs",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", manifest_dir.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=PEAKPROF_PRELOAD_PATH");
    link_sigpipe_note(&manifest_dir);

    // Escape hatch for packagers and for builds without a nested cargo: a prebuilt library.
    let built = if let Some(prebuilt) = env::var_os("PEAKPROF_PRELOAD_PATH") {
        PathBuf::from(prebuilt)
    } else {
        build_preload(&manifest_dir, &out_dir)
    };
    let dest = out_dir.join("libpeakprof_preload.so");
    std::fs::copy(&built, &dest)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", built.display(), dest.display()));
}

/// Links `src/sigpipe_at_start.c` (a constructor) into the `peakprof` binary: as an object
/// file on the link line, not an archive member, which the linker would drop since nothing
/// refers to it; and into the binary only, not the library's users (tests, the preload).
fn link_sigpipe_note(manifest_dir: &Path) {
    let src = manifest_dir.join("src/sigpipe_at_start.c");
    println!("cargo:rerun-if-changed={}", src.display());
    for obj in cc::Build::new()
        .file(&src)
        .opt_level(2)
        .compile_intermediates()
    {
        println!("cargo:rustc-link-arg-bins={}", obj.display());
    }
}

/// `<target>/peakprof-preload`, shared by debug, release and clippy builds of the CLI.
fn preload_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out (or with a triple level more).
    out_dir
        .ancestors()
        .find(|a| a.join("CACHEDIR.TAG").exists())
        .map(|t| t.join("peakprof-preload"))
        .unwrap_or_else(|| out_dir.join("preload-target"))
}

fn build_preload(manifest_dir: &Path, out_dir: &Path) -> PathBuf {
    let target_dir = preload_target_dir(out_dir);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--manifest-path")
        .arg(manifest_dir.join("preload/Cargo.toml"))
        .arg("-p")
        .arg("peakprof-preload")
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--config")
        .arg("profile.release.panic=\"abort\"")
        .arg("--config")
        .arg("profile.release.strip=true");
    // Cargo passes this script's environment on to the nested cargo, and from there to the
    // nested build scripts: without this cleanup the nested `peakprof` would see this
    // script's CARGO_FEATURE_CLI and recurse. The outer wrappers (clippy's driver, coverage
    // tools) are not for this build either; the jobserver is shared through MAKEFLAGS.
    for (var, _) in env::vars_os() {
        let name = var.to_string_lossy();
        let outer_only = [
            "CARGO_FEATURE_",
            "CARGO_CFG_",
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
        ]
        .iter()
        .any(|p| name.starts_with(p))
            || [
                "RUSTC_WORKSPACE_WRAPPER",
                "CARGO_TARGET_DIR",
                "CARGO_BUILD_TARGET_DIR",
                "CARGO_ENCODED_RUSTFLAGS",
                "CARGO_PRIMARY_PACKAGE",
                "CLIPPY_ARGS",
                "OUT_DIR",
                "TARGET",
                "HOST",
                "NUM_JOBS",
                "OPT_LEVEL",
                "PROFILE",
                "DEBUG",
            ]
            .contains(&name.as_ref());
        if outer_only {
            cmd.env_remove(&var);
        }
    }
    if let Some(flags) = env::var_os("CARGO_MAKEFLAGS") {
        cmd.env("MAKEFLAGS", flags);
    }
    let status = cmd
        .status()
        .expect("running cargo to build the preload library");
    assert!(status.success(), "building the preload library failed");
    target_dir.join("release/libpeakprof_preload.so")
}
