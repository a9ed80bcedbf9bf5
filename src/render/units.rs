//! Human-readable numbers for titles and the terminal summary.
//!
//! Precision rule: three significant digits (`1.50 KiB`, `12.3 MiB`, `512 KiB`), except
//! that values from 1000 to 1023 of a unit keep all four integer digits (`1000 KiB`)
//! because binary units only roll over at 1024. Exact byte counts belong in the JSON.

const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// Formats a byte count with binary units and three significant digits:
/// `0 B`, `512 B`, `1.50 KiB`, `12.3 MiB`, `2.00 GiB`.
pub fn human_bytes(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    loop {
        // Pick the precision from the *rounded* value so 9.996 becomes `10.0`, not `10.00`,
        // and 1023.7 KiB rolls over to `1.00 MiB` instead of printing `1024 KiB`.
        let text = sig3(value);
        if text.parse::<f64>().unwrap_or(value) < 1024.0 || unit == UNITS.len() - 1 {
            return format!("{text} {}", UNITS[unit]);
        }
        value /= 1024.0;
        unit += 1;
    }
}

/// Three significant digits for values of at least 1; larger values keep every integer
/// digit rather than switching to exponent notation.
fn sig3(value: f64) -> String {
    for decimals in [2usize, 1] {
        let text = format!("{value:.decimals$}");
        let limit = if decimals == 2 { 10.0 } else { 100.0 };
        if text.parse::<f64>().unwrap_or(value) < limit {
            return text;
        }
    }
    format!("{value:.0}")
}

/// Formats a duration in seconds: `400 µs`, `850 ms`, `1.24 s`, `12.3 s`, `3 min 5 s`,
/// `2 h 5 min`. Non-finite input gives `unknown`; negative input is treated as 0.
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "unknown".to_string();
    }
    let secs = secs.max(0.0);
    if secs == 0.0 {
        return "0 s".to_string();
    }
    let micros = (secs * 1e6).round();
    if micros < 1000.0 {
        return format!("{micros:.0} µs");
    }
    let millis = (secs * 1e3).round();
    if millis < 1000.0 {
        return format!("{millis:.0} ms");
    }
    let text = sig3(secs);
    if text.parse::<f64>().unwrap_or(secs) < 60.0 {
        return format!("{text} s");
    }
    let whole = secs.round() as u64;
    if whole < 3600 {
        return format!("{} min {} s", whole / 60, whole % 60);
    }
    let minutes = (secs / 60.0).round() as u64;
    format!("{} h {} min", minutes / 60, minutes % 60)
}

/// Formats an integer with `,` thousands separators (`1,234,567`), for counts shown to
/// people where the exact value matters.
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 allocation`, `2 allocations`, `1,234 allocations`: a count with its noun, digits
/// grouped. `noun` is the singular; the plural adds `s`.
pub fn count_of(n: u64, noun: &str) -> String {
    format!(
        "{} {noun}{}",
        group_digits(n),
        if n == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_a_plural_only_when_not_one() {
        assert_eq!(count_of(1, "allocation"), "1 allocation");
        assert_eq!(count_of(0, "path"), "0 paths");
        assert_eq!(count_of(1234, "allocation"), "1,234 allocations");
    }

    #[test]
    fn bytes() {
        let cases: &[(u64, &str)] = &[
            (0, "0 B"),
            (1, "1 B"),
            (512, "512 B"),
            (1023, "1023 B"),
            (1024, "1.00 KiB"),
            (1536, "1.50 KiB"),
            (10 * 1024 - 1, "10.0 KiB"),
            (12_900_000, "12.3 MiB"),
            (512 * 1024, "512 KiB"),
            (1000 * 1024, "1000 KiB"),
            (1024 * 1024 - 1, "1.00 MiB"),
            (2 << 30, "2.00 GiB"),
            (5 << 40, "5.00 TiB"),
            (u64::MAX, "16.0 EiB"),
        ];
        for &(n, want) in cases {
            assert_eq!(human_bytes(n), want, "human_bytes({n})");
        }
    }

    #[test]
    fn durations() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0 s"),
            (-1.0, "0 s"),
            (f64::NAN, "unknown"),
            (f64::INFINITY, "unknown"),
            (0.0004, "400 µs"),
            (0.0009996, "1 ms"),
            (0.85, "850 ms"),
            (0.9996, "1.00 s"),
            (1.2449, "1.24 s"),
            (12.34, "12.3 s"),
            (59.96, "1 min 0 s"),
            (185.2, "3 min 5 s"),
            (7500.0, "2 h 5 min"),
        ];
        for &(s, want) in cases {
            assert_eq!(human_duration(s), want, "human_duration({s})");
        }
    }

    #[test]
    fn digits() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(1_234_567), "1,234,567");
    }
}
