//! Section tags and the file header. A file is the header, then tagged, length-prefixed
//! sections, then an END section holding a CRC-32 of everything before it. Readers skip tags
//! they do not know and ignore bytes appended at the end of a section they do know, so new
//! data can be added without breaking older readers.

/// First bytes of every profile.
pub const MAGIC: &[u8; 8] = b"PEAKPROF";
/// Current format version; bumped only for changes older readers would misread.
/// Version 2: timeline points carry the value their interval ended with.
pub const VERSION: u32 = 2;
/// Oldest version this reader understands.
pub const MIN_VERSION: u32 = 2;

pub const TAG_META: u8 = 1;
pub const TAG_MODULES: u8 = 2;
pub const TAG_STACKS: u8 = 3;
pub const TAG_PEAK: u8 = 4;
pub const TAG_EXIT: u8 = 5;
pub const TAG_TIMELINE: u8 = 6;
pub const TAG_ALLOCS: u8 = 7;
pub const TAG_END: u8 = 0xff;
