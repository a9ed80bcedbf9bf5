//! The graph of what was still allocated when the process ended (leaks), drawn with the
//! peak flame graph's renderer and its own wording.

use super::flamegraph::{empty_svg, flamegraph_svg, FlameOptions};
use super::shell::shell_quote_command;
use super::stacks::total_bytes;
use super::text::truncate_chars;
use super::units::{human_bytes, human_duration};
use crate::report::Report;

/// When the process's last profile was taken, for an end that was not an exit: the blocks
/// live then are what it held when it was stopped, killed or replaced, not leaks. `None`
/// for an exit (`exit`, a return from main, `_exit`).
pub fn not_an_exit(report: &Report) -> Option<&'static str> {
    Some(match report.end.as_str() {
        "signal" => "when a signal ended it",
        "killed" => "when it was killed",
        "limit-stop" => "when it was stopped at the --limit",
        "exec" => "when it called exec",
        "snapshot" => "at the snapshot",
        "running" => "when the report was made (still running)",
        _ => return None,
    })
}

/// The sentence for nothing live at the end: `Nothing was left allocated at exit.`, or
/// `Nothing was live when it was killed.` for an end that was not an exit.
pub fn nothing_left(report: &Report) -> String {
    // Sampled mode: bytes were left, none of them in a sampled block.
    let nothing = if report.leaked_bytes() > 0 {
        "No sampled allocation was"
    } else {
        "Nothing was"
    };
    match not_an_exit(report) {
        Some(when) => format!("{nothing} live {when}."),
        None => format!("{nothing} left allocated at exit."),
    }
}

/// What the blocks left at the end are called: `exit_label` after an exit, else `Live`
/// with how the process ended (`Live when it was killed`).
pub fn end_label(report: &Report, exit_label: &str) -> String {
    match not_an_exit(report) {
        Some(when) => format!("Live {when}"),
        None => exit_label.to_string(),
    }
}

/// `Left allocated at exit: 4.00 KiB in 12 allocations — ./prog args`, the command cut
/// like the peak graph's title (`Live when it was killed: …` for an end that was not an
/// exit).
pub fn leaks_title(report: &Report) -> String {
    let what = end_label(report, "Left allocated at exit");
    let mut title = format!(
        "{what}: {} {}",
        human_bytes(report.leaked_bytes()),
        leaked_count_text(report)
    );
    let command = truncate_chars(&shell_quote_command(&report.argv), 100);
    if !command.is_empty() {
        title.push_str(" — ");
        title.push_str(&command);
    }
    title
}

/// How many allocations the leaked bytes are in (`12 allocations`), or, in sampled mode
/// where only sampled blocks are counted, that the paths are estimates (`paths sampled`).
pub fn leaked_count_words(report: &Report) -> String {
    match report.leaked_count() {
        Some(n) => super::units::count_of(n, "allocation"),
        None => "paths sampled".to_string(),
    }
}

/// [`leaked_count_words`] after a size: `in 12 allocations`, or `(paths sampled)`.
pub fn leaked_count_text(report: &Report) -> String {
    let words = leaked_count_words(report);
    match report.leaked_count() {
        Some(_) => format!("in {words}"),
        None => format!("({words})"),
    }
}

/// Draws `report.at_exit` like [`flamegraph_svg`] does the peak, titled with
/// [`leaks_title`] and a subtitle about the end of the run instead of the peak (the
/// generated one would call these paths "live heap at the peak"). Nothing left at exit
/// gives a small SVG that says so.
pub fn leaks_svg(report: &Report, reversed: bool) -> anyhow::Result<Vec<u8>> {
    let title = leaks_title(report);
    if total_bytes(&report.at_exit) == 0 {
        return Ok(empty_svg(&title, &nothing_left(report)));
    }
    let after = human_duration(report.duration_s);
    let subtitle = match not_an_exit(report) {
        // Not leaks: the program never reached the point where it would free them.
        Some(when) => format!("still allocated {when}, after {after}"),
        None => format!(
            "still allocated when the process ended, after {after} · freeing them at exit is optional, growing them over time is a leak"
        ),
    };
    let opts = FlameOptions {
        reversed,
        title: Some(title),
        subtitle: Some(subtitle),
        ..FlameOptions::default()
    };
    flamegraph_svg(report, &report.at_exit, &opts)
}
