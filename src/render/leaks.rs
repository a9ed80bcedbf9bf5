//! The graph of what was still allocated when the process ended (leaks), drawn with the
//! peak flame graph's renderer and its own wording.

use super::flamegraph::{empty_svg, flamegraph_svg, FlameOptions};
use super::shell::shell_quote_command;
use super::stacks::total_bytes;
use super::text::truncate_chars;
use super::units::{human_bytes, human_duration};
use crate::report::Report;

/// `Left allocated at exit: 4.00 KiB in 12 allocations — ./prog args`, the command cut
/// like the peak graph's title.
pub fn leaks_title(report: &Report) -> String {
    let count = super::stacks::total_count(&report.at_exit);
    let mut title = format!(
        "Left allocated at exit: {} in {}",
        human_bytes(total_bytes(&report.at_exit)),
        super::units::count_of(count, "allocation")
    );
    let command = truncate_chars(&shell_quote_command(&report.argv), 100);
    if !command.is_empty() {
        title.push_str(" — ");
        title.push_str(&command);
    }
    title
}

/// Draws `report.at_exit` like [`flamegraph_svg`] does the peak, titled with
/// [`leaks_title`] and a subtitle about the end of the run instead of the peak (the
/// generated one would call these paths "live heap at the peak"). Nothing left at exit
/// gives a small SVG that says so.
pub fn leaks_svg(report: &Report, reversed: bool) -> anyhow::Result<Vec<u8>> {
    let title = leaks_title(report);
    if total_bytes(&report.at_exit) == 0 {
        return Ok(empty_svg(&title, "Nothing was left allocated at exit."));
    }
    let opts = FlameOptions {
        reversed,
        title: Some(title),
        subtitle: Some(format!(
            "still allocated when the process ended, after {} · freeing them at exit is optional, growing them over time is a leak",
            human_duration(report.duration_s)
        )),
        ..FlameOptions::default()
    };
    flamegraph_svg(report, &report.at_exit, &opts)
}
