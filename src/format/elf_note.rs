//! Finding the GNU build-id in the bytes of an ELF note segment (PT_NOTE), as the preload
//! sees them in memory. Pure parsing over a byte slice.

/// `NT_GNU_BUILD_ID`.
const NT_GNU_BUILD_ID: u32 = 3;

/// The build-id in a PT_NOTE segment's bytes (native-endian ELF notes), if any.
pub fn build_id_from_notes(mut notes: &[u8]) -> Option<&[u8]> {
    let align4 = |n: usize| n.checked_add(3).map(|v| v & !3);
    while notes.len() >= 12 {
        let word = |i: usize| u32::from_ne_bytes(notes[i..i + 4].try_into().expect("4 bytes"));
        let namesz = word(0) as usize;
        let descsz = word(4) as usize;
        let ntype = word(8);
        let name_end = 12usize.checked_add(align4(namesz)?)?;
        let desc_end = name_end.checked_add(align4(descsz)?)?;
        if desc_end > notes.len() || name_end - 12 < namesz {
            return None;
        }
        let name = &notes[12..12 + namesz];
        if ntype == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return Some(&notes[name_end..name_end + descsz]);
        }
        notes = &notes[desc_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], ntype: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_ne_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_ne_bytes());
        v.extend_from_slice(&ntype.to_ne_bytes());
        v.extend_from_slice(name);
        v.resize(v.len().next_multiple_of(4), 0);
        v.extend_from_slice(desc);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    #[test]
    fn finds_the_build_id_after_other_notes() {
        let mut notes = note(b"GNU\0", 1, &[0; 16]); // ABI tag
        notes.extend(note(b"GNU\0", 3, &[0xde, 0xad, 0xbe, 0xef, 1]));
        assert_eq!(
            build_id_from_notes(&notes),
            Some(&[0xde, 0xad, 0xbe, 0xef, 1][..])
        );
    }

    #[test]
    fn malformed_notes_are_none_not_a_panic() {
        assert_eq!(build_id_from_notes(&[]), None);
        assert_eq!(build_id_from_notes(&[0xff; 12]), None);
        let mut bad = note(b"GNU\0", 3, &[1, 2, 3]);
        bad.truncate(17);
        assert_eq!(build_id_from_notes(&bad), None);
    }
}
