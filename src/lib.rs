//! peakprof: an exact peak-memory profiler for native Linux programs.
//!
//! The crate holds the pure core shared by the CLI and the preloaded library:
//! [`record`] (the live-set bookkeeping and the exact peak snapshot) and [`mod@format`]
//! (the on-disk profile). With the `cli` feature it also holds the symbolizer, the
//! renderers and the command-line tool.
#![forbid(unsafe_code)]

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
