//! Sizes on the command line: `512MiB`, `2G`, `1.5GiB`, `100000`.

/// Parses a size in bytes. Binary suffixes `KiB`/`MiB`/`GiB`/`TiB` and the short forms
/// `K`/`M`/`G`/`T` (as `ulimit`, `docker -m` and `sort -S` read them) are powers of 1024;
/// `KB`/`MB`/`GB`/`TB` are powers of 1000; `B` or no suffix is bytes. Case-insensitive.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "unknown size unit in {text:?} (use e.g. 512MiB, 2G, 1500MB)"
            ))
        }
    };
    let not_a_size = || format!("not a size: {text:?} (use e.g. 512MiB, 2G, 1500MB)");
    let out_of_range = || format!("size out of range: {text:?}");
    // Whole numbers exactly (an f64 rounds past 2^53).
    if !num.contains('.') {
        let value: u64 = num.parse().map_err(|e: std::num::ParseIntError| {
            if *e.kind() == std::num::IntErrorKind::PosOverflow {
                out_of_range()
            } else {
                not_a_size()
            }
        })?;
        return value.checked_mul(mult).ok_or_else(out_of_range);
    }
    let value: f64 = num.parse().map_err(|_| not_a_size())?;
    let bytes = (value * mult as f64).round();
    // "1.0" is a whole number; "0.4" or "0.0001K" would round to a size nobody wrote (0
    // meaning "exact mode" to --sample-rate).
    if (mult == 1 && value.fract() != 0.0) || (value > 0.0 && bytes == 0.0) {
        return Err(format!("not a whole number of bytes: {text:?}"));
    }
    // 2^64 itself is out of range (u64::MAX as f64 rounds up to it).
    if !bytes.is_finite() || bytes >= 18_446_744_073_709_551_616.0 {
        return Err(out_of_range());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("1500MB"), Ok(1_500_000_000));
        assert_eq!(parse_size("100000"), Ok(100_000));
        assert_eq!(parse_size(" 64 KiB "), Ok(64 << 10));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("-1G").is_err());
        // Exact past 2^53, refused past 2^64 (not clamped), no fractions of a byte.
        assert_eq!(parse_size("9007199254740993"), Ok(9_007_199_254_740_993));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        for bad in [
            "18446744073709551616",
            "16777216TiB",
            "18446744074GB",
            "1e3",
            "1..5G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("0.4").unwrap_err().contains("whole number"));
        assert!(parse_size("1.5").is_err());
        assert!(parse_size("0.0001K").unwrap_err().contains("whole number"));
        assert_eq!(parse_size("1.0"), Ok(1));
        assert_eq!(parse_size("0.0"), Ok(0));
        assert_eq!(parse_size("0.5K"), Ok(512));
    }
}
