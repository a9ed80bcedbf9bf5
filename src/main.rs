//! The `peakprof` command.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser as _};
use peakprof::cli::{Cli, Command};
use peakprof::{commands, exit_codes};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let result = match &cli.command {
        Command::Run(args) => commands::run(args),
        Command::Report(args) => commands::report(args),
        Command::Diff(args) => commands::diff(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line: the error and its causes, joined (say_line keeps it one line).
            peakprof::stderr::say_line(&format!("peakprof: error: {e:#}"));
            ExitCode::from(exit_codes::code_of(&e))
        }
    }
}

/// `--help` and `--version` as clap prints them; a usage error as one line, exit 125.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => e.exit(),
        // `peakprof` alone: nothing to do, said in one line like any other mistake.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            peakprof::stderr::say_line(
                "peakprof: error: no command given: run, report or diff (see `peakprof --help`)",
            );
            ExitCode::from(exit_codes::TOOL_FAILED)
        }
        _ => {
            let sub = std::env::args_os()
                .nth(1)
                .and_then(|a| a.into_string().ok())
                .filter(|a| Cli::command().find_subcommand(a).is_some());
            let rendered = e.render().to_string();
            let line = peakprof::usage_error::one_line(&rendered, sub.as_deref());
            peakprof::stderr::say_line(&line);
            ExitCode::from(exit_codes::TOOL_FAILED)
        }
    }
}
