//! Command-line mistakes as one line. clap explains a usage error over several lines (the
//! error, a tip, the usage, a pointer to `--help`) and exits 2; peakprof's errors are one
//! line starting `peakprof: error:`, and its own failures exit 125, which a script can
//! tell from the program's own statuses (2 is a common one) as with `env` and `timeout`.

/// The one line for clap's rendering of a usage error: the error and any tip, then where
/// help is (`subcommand`'s, when the command line named one).
pub fn one_line(rendered: &str, subcommand: Option<&str>) -> String {
    let mut text = String::new();
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // clap's tips point at `-- VALUE`, which for `run` would make the value the
        // program to run: left out.
        if line.starts_with("Usage:")
            || line.starts_with("For more information")
            || line.starts_with("tip:")
        {
            continue;
        }
        if !text.is_empty() {
            // A line ending in ':' introduces the next one ("not provided:" then the list).
            text.push_str(if text.ends_with(':') { " " } else { "; " });
        }
        text.push_str(line.strip_prefix("error:").unwrap_or(line).trim());
    }
    let help = match subcommand {
        Some(sub) => format!("peakprof {sub} --help"),
        None => "peakprof --help".to_string(),
    };
    format!("peakprof: error: {text} (see `{help}`)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_become_one_line_naming_the_subcommand_help() {
        let unexpected = "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' \
                          as a value, use '-- --bogus'\n\nUsage: peakprof run [OPTIONS] <CMD>...\n\n\
                          For more information, try '--help'.\n";
        assert_eq!(
            one_line(unexpected, Some("run")),
            "peakprof: error: unexpected argument '--bogus' found (see `peakprof run --help`)"
        );
        let missing = "error: the following required arguments were not provided:\n  \
                       <DIR_OR_PROFILE>\n\nUsage: peakprof report <DIR_OR_PROFILE>\n\nFor more \
                       information, try '--help'.\n";
        assert_eq!(
            one_line(missing, Some("report")),
            "peakprof: error: the following required arguments were not provided: \
             <DIR_OR_PROFILE> (see `peakprof report --help`)"
        );
        let no_usage = "error: invalid value '0' for '--limit <SIZE>': must be at least 1 byte\n\n\
                        For more information, try '--help'.\n";
        assert_eq!(
            one_line(no_usage, None),
            "peakprof: error: invalid value '0' for '--limit <SIZE>': must be at least 1 byte \
             (see `peakprof --help`)"
        );
    }
}
