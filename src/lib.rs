//! peakprof: an exact peak-memory profiler for native Linux programs.
//!
//! The crate holds the pure core shared by the CLI and the preloaded library:
//! [`record`] (the live-set bookkeeping and the exact peak snapshot) and [`mod@format`]
//! (the on-disk profile). With the `cli` feature it also holds the symbolizer, the
//! renderers and the command-line tool.
#![forbid(unsafe_code)]

pub mod child_env;
pub mod format;
pub mod ignored_signals;
pub mod record;
pub mod unwind;

#[cfg(feature = "cli")]
pub mod allocator_check;
#[cfg(feature = "cli")]
pub mod analyze;
#[cfg(feature = "cli")]
pub mod cgroup;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod commands;
#[cfg(feature = "cli")]
pub mod early_render;
#[cfg(feature = "cli")]
pub mod exit_codes;
#[cfg(feature = "cli")]
pub mod fast_map;
#[cfg(feature = "cli")]
pub mod file_caps;
#[cfg(feature = "cli")]
pub mod launch;
#[cfg(feature = "cli")]
pub mod outputs;
#[cfg(feature = "cli")]
pub mod preload_lib;
#[cfg(feature = "cli")]
pub mod proc_stat;
#[cfg(feature = "cli")]
pub mod progress;
#[cfg(feature = "cli")]
pub mod render;
#[cfg(feature = "cli")]
pub mod report;
#[cfg(feature = "cli")]
pub mod size;
#[cfg(feature = "cli")]
pub mod stale_outputs;
#[cfg(feature = "cli")]
pub mod stderr;
#[cfg(feature = "cli")]
pub mod still_running;
#[cfg(feature = "cli")]
pub mod symbolize;
#[cfg(feature = "cli")]
pub mod target;
#[cfg(feature = "cli")]
pub mod usage_error;

#[cfg(test)]
mod tests {
    /// `build.rs` rebuilds the embedded preload library when its sources change, from a
    /// list: every module compiled without the `cli` feature (the preload's part of this
    /// crate) must be on it, or a change to it ships a stale library.
    #[test]
    fn the_build_script_watches_every_module_the_preload_compiles() {
        let build = include_str!("../build.rs");
        let mut cli_only = false;
        let mut checked = 0;
        for line in include_str!("lib.rs").lines() {
            if line == "#[cfg(feature = \"cli\")]" {
                cli_only = true;
            } else if let Some(name) = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "))
                .and_then(|r| r.strip_suffix(';'))
            {
                if !cli_only {
                    let listed = [format!("\"src/{name}.rs\""), format!("\"src/{name}\"")];
                    assert!(
                        listed.iter().any(|l| build.contains(l.as_str())),
                        "build.rs does not watch src/{name}"
                    );
                    checked += 1;
                }
                cli_only = false;
            }
        }
        assert!(checked >= 5, "found {checked} modules the preload compiles");
    }
}
