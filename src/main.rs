//! The `peakprof` command.

use std::process::ExitCode;

use clap::Parser as _;
use peakprof::cli::{Cli, Command};
use peakprof::{commands, exit_codes};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => commands::run(args),
        Command::Report(args) => commands::report(args),
        Command::Diff(args) => commands::diff(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line: the error and its causes, joined.
            peakprof::stderr::say_line(&format!("peakprof: error: {e:#}"));
            ExitCode::from(exit_codes::code_of(&e))
        }
    }
}
