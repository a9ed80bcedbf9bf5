//! What the reports say when no call path is left to show at the peak. In sampled mode that
//! does not mean nothing was live: the peak can be smaller than the sampling interval, and
//! saying "no allocations" there would be a silently empty report.

use crate::report::Report;

/// A sampling rate that expects about a thousand samples at a peak of `peak_bytes` (a power
/// of two, at least 1): the relative error of a path holding a tenth of the peak is then
/// about 10%.
pub(crate) fn suggested_rate(peak_bytes: u64) -> u64 {
    let r = (peak_bytes / 1000).max(1);
    1 << (63 - r.leading_zeros())
}

/// The sentence for a snapshot of `report` with no call path to show. A sampled run's
/// has two clauses, joined by `break_at` (a space, or a line break where lines are short).
pub(crate) fn empty_peak_message(report: &Report, break_at: &str) -> String {
    if report.sample_rate != 0 && report.peak_bytes > 0 {
        format!(
            "No sampled allocation was live at the peak:{break_at}run with a smaller \
             --sample-rate (e.g. {}) or without it to see the call paths.",
            suggested_rate(report.peak_bytes)
        )
    } else {
        "No heap allocations were live at the peak.".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_and_exact_runs_say_different_things() {
        let exact = Report::default();
        assert_eq!(
            empty_peak_message(&exact, " "),
            "No heap allocations were live at the peak."
        );
        let sampled = Report {
            peak_bytes: 278 * 1024,
            sample_rate: 512 * 1024,
            ..Report::default()
        };
        assert!(empty_peak_message(&sampled, " ").contains("--sample-rate (e.g. 256)"));
        assert!(empty_peak_message(&sampled, "\n")
            .starts_with("No sampled allocation was live at the peak:\nrun"));
        assert_eq!(suggested_rate(5_000_000), 4096);
        assert_eq!(suggested_rate(10), 1);
    }
}
