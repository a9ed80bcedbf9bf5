//! The profile file: the contract between the preloaded library and the CLI.
//!
//! One file per profiled process, self-describing and versioned: raw return addresses, the
//! module map, per-stack bytes and counts at the peak and at exit, and the timeline.

mod elf_note;
mod error;
pub mod live;
mod model;
mod read;
mod sections;
mod wire;
mod write;

pub use elf_note::build_id_from_notes;
pub use error::FormatError;
pub use model::*;
pub use read::decode;
pub use sections::{MAGIC, VERSION};
pub use write::encode;

/// File name suffix of raw profiles.
pub const EXTENSION: &str = "ppf";
/// File name suffix of the profile written when `--limit` is first exceeded.
pub const OOM_EXTENSION: &str = "oom";
/// Suffix added to a profile's file name while it is written (then renamed into place).
pub const TEMP_EXTENSION: &str = "tmp";

#[cfg(test)]
mod tests;
