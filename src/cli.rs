//! Command-line definitions.

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
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// The program to run and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
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
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}
