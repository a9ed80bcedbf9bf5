//! Command-line definitions.
//!
//! The doc comments of the arguments are clap's help text, printed as written: a
//! `<program>` there is a placeholder for the user, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exact peak-memory profiler: which call paths held the memory at the moment of the peak.
#[derive(Debug, Parser)]
#[command(name = "peakprof", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a program under the profiler and report what was live at its peak.
    Run(RunArgs),
    /// Render the reports again from the raw profiles of an earlier run.
    Report(ReportArgs),
    /// Compare two runs: how the peak and the call paths holding it changed.
    Diff(DiffArgs),
}

fn size(s: &str) -> Result<u64, String> {
    crate::size::parse_size(s)
}

/// A size that must be above zero: a limit of 0 bytes would mean "no limit" to the
/// profiler, the opposite of what it says.
fn positive_size(s: &str) -> Result<u64, String> {
    match size(s)? {
        0 => Err("must be at least 1 byte".to_string()),
        n => Ok(n),
    }
}

/// What `--limit` does when the tracked heap first exceeds the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LimitAction {
    /// Write the `oom` report and stop the program (exit code 121).
    Stop,
    /// Write the `oom` report and let the program continue.
    Report,
}

/// `peakprof run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Directory for the reports [default: a new ./peakprof-<program>-<n>].
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Profile only the root process, not its children.
    #[arg(long)]
    pub no_children: bool,
    /// Render reports for every process of the tree (by default: the root and the 31
    /// largest peaks; every process is listed in summary.json either way).
    #[arg(long)]
    pub all_processes: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Sample allocations instead of recording each one's stack: on average one stack per
    /// BYTES allocated (Poisson sampling by bytes). Totals stay exact; per-path bytes are
    /// estimates. 0 records every allocation.
    #[arg(long, value_name = "BYTES", value_parser = size, default_value = "0")]
    pub sample_rate: u64,
    /// After writing the report, exit with code 120 if the largest peak of any profiled
    /// process exceeds SIZE (e.g. 512MiB, 2G): a memory budget for CI.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub fail_above: Option<u64>,
    /// Emulate a container memory limit: when the tracked heap first exceeds SIZE, write an
    /// `oom` report of what was live at that moment (see --limit-action).
    #[arg(long, value_name = "SIZE", value_parser = positive_size)]
    pub limit: Option<u64>,
    /// What --limit does when it is hit.
    #[arg(long, value_enum, default_value = "stop", requires = "limit")]
    pub limit_action: LimitAction,
    /// Read system libraries' debug info too, for file:line and inlined frames inside libc
    /// and friends (slower; by default they are named from their symbol tables).
    #[arg(long)]
    pub system_lines: bool,
    /// Open the report page in a browser afterwards (when there is a display).
    #[arg(long)]
    pub open: bool,
    /// The program to run and its arguments. Everything from the program's name on is its
    /// own (`peakprof run ls -l`); before it, an unknown `-x` is a usage error rather than
    /// a program to look for (`--` before a program whose name starts with `-`).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

/// `peakprof report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory (holding `raw/`) or one raw profile file (`.ppf`).
    #[arg(value_name = "DIR_OR_PROFILE")]
    pub input: PathBuf,
    /// Directory for the reports [default: the run directory].
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Read system libraries' debug info too, for file:line and inlined frames inside libc
    /// and friends (slower; by default they are named from their symbol tables).
    #[arg(long)]
    pub system_lines: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Render reports for every process (by default: the root and the 31 largest peaks).
    #[arg(long)]
    pub all_processes: bool,
}

/// `peakprof diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier run (directory or raw profile).
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The later run (directory or raw profile).
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Directory for the differential flamegraph and diff.json [default: ./peakprof-diff-<n>].
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}
