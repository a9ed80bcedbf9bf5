//! Why a profile could not be read.

use core::fmt;

/// A profile file that cannot be read, with a reason fit for a one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The file does not start with the profile magic.
    NotAProfile,
    /// Written by a newer peakprof.
    UnsupportedVersion(u32),
    /// The file ends early (the process died while writing, or the file was cut).
    Truncated,
    /// The bytes are inconsistent (checksum mismatch, impossible values).
    Corrupt(&'static str),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAProfile => write!(f, "not a peakprof profile (bad magic)"),
            Self::UnsupportedVersion(v) if *v > super::VERSION => write!(
                f,
                "profile format version {v} is newer than this peakprof understands (max {})",
                super::VERSION
            ),
            Self::UnsupportedVersion(v) => write!(
                f,
                "profile format version {v} was written by an older peakprof; run the program again"
            ),
            Self::Truncated => write!(f, "profile is truncated"),
            Self::Corrupt(why) => write!(f, "profile is corrupt: {why}"),
        }
    }
}

impl std::error::Error for FormatError {}
