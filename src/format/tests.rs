//! Round-trip and damage tests of the profile format.

use proptest::prelude::*;

use super::*;

fn sample() -> Profile {
    Profile {
        meta: Meta {
            pid: 4242,
            ppid: 1,
            argv: vec!["./prog".into(), "ärg with space".into()],
            exe: "/tmp/prog".into(),
            start_unix_ns: 1_700_000_000_000_000_000,
            duration_ns: 5_000_000,
            peak_bytes: 123_456,
            peak_time_ns: 1_000_000,
            peak_rss_bytes: 9 << 20,
            final_bytes: 100,
            total_allocs: 77,
            total_alloc_bytes: 999_999,
            sample_rate: 0,
            reason: WriteReason::Signal(9),
            truncated_stacks: 2,
            exit_code: Some(3),
        },
        modules: vec![Module {
            path: "/usr/lib/libc.so.6".into(),
            build_id: vec![1, 2, 3, 4],
            bias: 0x7f00_0000_0000,
            ranges: vec![(0x7f00_0000_0000, 0x7f00_0010_0000)],
        }],
        stacks: vec![
            Stack {
                frames: vec![0x7f00_0000_1234, 0x5555_0000_0010, TRUNCATED_FRAME],
            },
            Stack { frames: vec![] },
        ],
        peak: vec![SiteBytes {
            stack: 0,
            bytes: 123_456,
            count: 3,
        }],
        exit: vec![SiteBytes {
            stack: 1,
            bytes: 100,
            count: 1,
        }],
        allocs: vec![SiteBytes {
            stack: 0,
            bytes: 999_999,
            count: 70,
        }],
        timeline: vec![
            TimelinePoint {
                time_ns: 1_000_000,
                bytes: 123_456,
                rss_bytes: 1 << 20,
                last_bytes: 120_000,
            },
            TimelinePoint {
                time_ns: 2_000_000,
                bytes: 100,
                rss_bytes: 2 << 20,
                last_bytes: 100,
            },
        ],
    }
}

#[test]
fn argv_keeps_empty_arguments_and_ends_at_the_last_nul() {
    let argv = |b: &[u8]| argv_from_cmdline(b);
    assert_eq!(argv(b"./t_ok\x000\x00\x00x\x00"), ["./t_ok", "0", "", "x"]);
    assert_eq!(argv(b"prog\x00"), ["prog"]);
    assert_eq!(argv(b"\x00"), [""]);
    // A title set over the old argument area, padded with NULs: no trailing empties.
    assert_eq!(
        argv(b"worker: idle\x00\x00\x00\x00\x00\x00\x00"),
        ["worker: idle"]
    );
    assert_eq!(argv(b"a\x00\x00b\x00\x00\x00"), ["a", "", "b"]);
    assert!(argv(b"").is_empty());
    // Rewritten without a final NUL: the last piece is an argument all the same.
    assert_eq!(argv(b"daemon: worker"), ["daemon: worker"]);
    assert_eq!(argv(b"caf\xe9\x00"), ["caf\u{FFFD}"]);
}

#[test]
fn round_trips() {
    let p = sample();
    assert_eq!(decode(&encode(&p)).unwrap(), p);
}

#[test]
fn every_end_reason_round_trips() {
    for reason in [
        WriteReason::Exit,
        WriteReason::Signal(11),
        WriteReason::Snapshot,
        WriteReason::FastExit,
        WriteReason::Exec,
        WriteReason::Killed,
        WriteReason::LimitStop,
        WriteReason::Running,
    ] {
        let mut p = sample();
        p.meta.reason = reason;
        assert_eq!(decode(&encode(&p)).unwrap().meta.reason, reason);
    }
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    let bytes = encode(&sample());
    for len in 0..bytes.len() {
        let err = decode(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, FormatError::Truncated | FormatError::Corrupt(_)),
            "cut at {len}: {err:?}"
        );
    }
}

#[test]
fn every_single_bit_flip_is_detected() {
    let bytes = encode(&sample());
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            assert!(
                decode(&b).is_err(),
                "flip of bit {bit} in byte {i} went unnoticed"
            );
        }
    }
}

#[test]
fn other_files_and_newer_versions_are_refused_by_name() {
    assert_eq!(
        decode(b"\x7fELF\x02\x01\x01\0\0\0"),
        Err(FormatError::NotAProfile)
    );
    let mut b = encode(&sample());
    b[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
    assert_eq!(
        decode(&b),
        Err(FormatError::UnsupportedVersion(VERSION + 1))
    );
    b[8..12].copy_from_slice(&1u32.to_le_bytes());
    let old = decode(&b).unwrap_err();
    assert_eq!(old, FormatError::UnsupportedVersion(1));
    assert!(old.to_string().contains("older peakprof"), "{old}");
    assert!(FormatError::Truncated.to_string().contains("truncated"));
}

/// Files written before `exit_code` was appended to the meta section still read (without
/// an exit code); a corrupt value reads as none.
#[test]
fn meta_without_the_exit_code_reads_as_unknown() {
    let mut m = sample().meta;
    let mut with = Vec::new();
    write::meta(&mut with, &m);
    m.exit_code = None;
    let mut without = Vec::new();
    write::meta(&mut without, &m);
    without.pop(); // the exit code (-1) is the last field, one byte long
    let read = |b: &[u8]| read::meta(&mut wire::Cursor::new(b));
    assert_eq!(read(&without), Ok(m.clone()));
    assert_eq!(read(&with).map(|m| m.exit_code), Ok(Some(3)));
    m.exit_code = Some(70_000);
    let mut bad = Vec::new();
    write::meta(&mut bad, &m);
    assert_eq!(read(&bad).map(|m| m.exit_code), Ok(None));
}

#[test]
fn unknown_sections_are_skipped() {
    let p = sample();
    let mut b = encode(&p);
    // Insert an unknown section right after the header and recompute the checksum.
    let end = b.len() - 6; // END tag, length byte, 4 checksum bytes
    b.truncate(end);
    let mut extra = vec![0x42, 3, 9, 9, 9];
    b.splice(12..12, extra.drain(..));
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&[0xff, 4]);
    b.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(decode(&b).unwrap(), p);
}

#[test]
fn snapshot_pointing_past_the_stacks_is_corrupt() {
    let mut p = sample();
    p.peak[0].stack = 7;
    assert!(matches!(decode(&encode(&p)), Err(FormatError::Corrupt(_))));
}

fn arb_profile() -> impl Strategy<Value = Profile> {
    let stack = prop::collection::vec(any::<u64>(), 0..40).prop_map(|frames| Stack { frames });
    (
        prop::collection::vec(stack, 1..20),
        prop::collection::vec((any::<u64>(), any::<u64>()), 0..20),
        prop::collection::vec(".*", 0..4),
        any::<u64>(),
        prop::collection::vec((any::<u32>(), any::<u64>(), any::<u64>()), 0..5),
    )
        .prop_map(|(stacks, sites, argv, peak, points)| {
            let n = stacks.len() as u32;
            let peak_sites = sites
                .iter()
                .enumerate()
                .map(|(i, &(b, c))| SiteBytes {
                    stack: i as u32 % n,
                    bytes: b,
                    count: c,
                })
                .collect::<Vec<_>>();
            let mut t = 0u64;
            let timeline = points
                .iter()
                .map(|&(dt, bytes, rss)| {
                    t = t.saturating_add(u64::from(dt));
                    TimelinePoint {
                        time_ns: t,
                        bytes,
                        rss_bytes: rss,
                        last_bytes: bytes / 2,
                    }
                })
                .collect();
            Profile {
                meta: Meta {
                    argv,
                    peak_bytes: peak,
                    reason: WriteReason::Snapshot,
                    ..Meta::default()
                },
                modules: vec![Module {
                    path: "x".into(),
                    build_id: vec![],
                    bias: peak,
                    ranges: vec![(1, peak.max(1))],
                }],
                stacks,
                exit: peak_sites.iter().rev().copied().collect(),
                allocs: peak_sites.clone(),
                peak: peak_sites,
                timeline,
            }
        })
}

proptest! {
    #[test]
    fn arbitrary_profiles_round_trip(p in arb_profile()) {
        prop_assert_eq!(decode(&encode(&p)).unwrap(), p);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut with_magic = MAGIC.to_vec();
        with_magic.extend_from_slice(&1u32.to_le_bytes());
        with_magic.extend_from_slice(&bytes);
        let _ = decode(&bytes);
        let _ = decode(&with_magic);
    }
}
