//! File capabilities (`setcap`): a program that gains capabilities when it starts runs in
//! the dynamic loader's secure mode, which ignores `LD_PRELOAD`, like a set-user-ID one.
//! It would run unprofiled, so it is refused before it starts (see `target.rs`).
//!
//! Whether it gains any follows the kernel's `cap_bprm_creds_from_file`
//! (security/commoncap.c): never when the real user is root; otherwise when the file's
//! effective bit is set, or when the capabilities it would be permitted are not empty.

use std::os::fd::AsFd;

/// The extended attribute holding a file's capabilities.
const XATTR: &str = "security.capability";

/// `VFS_CAP_FLAGS_EFFECTIVE`: the permitted capabilities become effective at exec.
const FLAGS_EFFECTIVE: u32 = 0x0000_0001;
const REVISION_MASK: u32 = 0xff00_0000;
/// Revision 1: one 32-bit word per set. Revisions 2 and 3 (3 adds the namespace's root
/// uid after them): two words per set, for 64 capabilities.
const REVISION_1: u32 = 0x0100_0000;
const REVISION_2: u32 = 0x0200_0000;
const REVISION_3: u32 = 0x0300_0000;

/// The capabilities a file carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileCaps {
    pub permitted: u64,
    pub inheritable: u64,
    pub effective: bool,
}

/// Parses a `security.capability` value (`struct vfs_ns_cap_data`, little-endian).
pub fn parse(value: &[u8]) -> Option<FileCaps> {
    let word = |i: usize| -> Option<u32> {
        let bytes = value.get(4 * i..4 * i + 4)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    };
    let magic = word(0)?;
    let sets = match magic & REVISION_MASK {
        REVISION_1 => 1,
        REVISION_2 | REVISION_3 => 2,
        _ => return None,
    };
    // Words after the magic: permitted, inheritable, for each 32 capabilities.
    let (mut permitted, mut inheritable) = (0u64, 0u64);
    for set in 0..sets {
        permitted |= u64::from(word(1 + 2 * set)?) << (32 * set);
        inheritable |= u64::from(word(2 + 2 * set)?) << (32 * set);
    }
    Some(FileCaps {
        permitted,
        inheritable,
        effective: magic & FLAGS_EFFECTIVE != 0,
    })
}

/// What of the process that runs the program decides what file capabilities give it.
#[derive(Debug, Clone, Copy)]
pub struct Runner {
    pub real_uid_is_root: bool,
    /// `no_new_privs` (`NoNewPrivs` in /proc/self/status): no capability beyond those
    /// already permitted is gained.
    pub no_new_privs: bool,
    /// The permitted, inheritable and bounding sets (`CapPrm`, `CapInh`, `CapBnd`).
    pub permitted: u64,
    pub inheritable: u64,
    pub bounding: u64,
}

impl Runner {
    /// This process, from /proc/self/status; when that cannot be read, a runner that
    /// gains whatever a file grants (a refusal is better than a run without a profile).
    pub fn this_process() -> Runner {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let hex = |field: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        };
        Runner {
            real_uid_is_root: rustix::process::getuid().is_root(),
            no_new_privs: hex("NoNewPrivs").is_some_and(|v| v != 0),
            permitted: hex("CapPrm").unwrap_or(0),
            inheritable: hex("CapInh").unwrap_or(0),
            bounding: hex("CapBnd").unwrap_or(u64::MAX),
        }
    }
}

/// Whether a program with `caps` runs in secure mode when `runner` starts it (the kernel
/// sets AT_SECURE, and the loader then ignores `LD_PRELOAD`).
pub fn secure_exec(caps: &FileCaps, runner: &Runner) -> bool {
    if runner.real_uid_is_root {
        return false;
    }
    let mut granted = (caps.inheritable & runner.inheritable) | (caps.permitted & runner.bounding);
    if runner.no_new_privs {
        granted &= runner.permitted;
    }
    caps.effective || granted != 0
}

/// The capabilities of the open file `f`; `None` when it has none (or the file system
/// keeps no extended attributes).
pub fn of_file(f: impl AsFd) -> Option<FileCaps> {
    // 24 bytes at most (revision 3).
    let mut buf = [0u8; 64];
    let n = rustix::fs::fgetxattr(f, XATTR, &mut buf[..]).ok()?;
    parse(&buf[..n])
}

/// Whether the file system of `f` is mounted `nosuid`, where the kernel ignores file
/// capabilities (and set-user-ID bits).
pub fn on_nosuid_mount(f: impl AsFd) -> bool {
    rustix::fs::fstatvfs(f).is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::NOSUID))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `setcap cap_net_raw+ep` (capability 13) as the kernel writes it (revision 2).
    const NET_RAW_EP: [u8; 20] = [
        0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    const USER: Runner = Runner {
        real_uid_is_root: false,
        no_new_privs: false,
        permitted: 0,
        inheritable: 0,
        bounding: (1 << 41) - 1,
    };

    #[test]
    fn capability_attributes_are_parsed() {
        let caps = parse(&NET_RAW_EP).unwrap();
        assert_eq!(
            caps,
            FileCaps {
                permitted: 1 << 13,
                inheritable: 0,
                effective: true
            }
        );
        // Revision 3 (a user namespace's root uid after the sets), the upper word used,
        // no effective bit.
        let mut v3 = vec![0x00, 0x00, 0x00, 0x03];
        for w in [0u32, 1 << 2, 1 << 8, 0, 1000] {
            v3.extend(w.to_le_bytes());
        }
        assert_eq!(
            parse(&v3),
            Some(FileCaps {
                permitted: 1 << 40,
                inheritable: 1 << 2,
                effective: false
            })
        );
        // Revision 1: 32 capabilities.
        let mut v1 = vec![0x01, 0x00, 0x00, 0x01];
        v1.extend(5u32.to_le_bytes());
        v1.extend(0u32.to_le_bytes());
        assert_eq!(parse(&v1).map(|c| c.permitted), Some(5));
        assert_eq!(parse(&NET_RAW_EP[..12]), None, "truncated");
        assert_eq!(
            parse(&[0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0]),
            None,
            "revision"
        );
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn only_a_gain_of_privileges_is_secure_mode() {
        let caps = parse(&NET_RAW_EP).unwrap();
        assert!(secure_exec(&caps, &USER));
        // Root gains nothing it did not have: LD_PRELOAD works.
        let root = Runner {
            real_uid_is_root: true,
            ..USER
        };
        assert!(!secure_exec(&caps, &root));
        // Without the effective bit, the permitted set decides: granted through the
        // bounding set, or not at all when the bounding set dropped it.
        let permitted_only = FileCaps {
            effective: false,
            ..caps
        };
        assert!(secure_exec(&permitted_only, &USER));
        let bounded = Runner {
            bounding: !(1 << 13),
            ..USER
        };
        assert!(!secure_exec(&permitted_only, &bounded));
        // Inheritable capabilities count only when the runner has them inheritable too.
        let inheritable_only = FileCaps {
            permitted: 0,
            inheritable: 1 << 13,
            effective: false,
        };
        assert!(!secure_exec(&inheritable_only, &USER));
        let inheriting = Runner {
            inheritable: 1 << 13,
            ..USER
        };
        assert!(secure_exec(&inheritable_only, &inheriting));
        // no_new_privs: nothing beyond what is permitted already, but the effective bit
        // still makes it secure.
        let nnp = Runner {
            no_new_privs: true,
            ..USER
        };
        assert!(!secure_exec(&permitted_only, &nnp));
        assert!(secure_exec(&caps, &nnp));
    }

    /// The attribute as `setcap` writes it on a real file (needs root and setcap: skipped
    /// with a note otherwise).
    #[test]
    fn capabilities_set_with_setcap_are_read() {
        let dir = std::env::temp_dir().join(format!("peakprof-caps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("prog");
        std::fs::write(&file, b"not really a program").unwrap();
        let plain = std::fs::File::open(&file).unwrap();
        assert_eq!(of_file(&plain), None, "no capabilities yet");
        let set = std::process::Command::new("setcap")
            .arg("cap_net_raw+ep")
            .arg(&file)
            .output();
        match set {
            Ok(out) if out.status.success() => {
                let f = std::fs::File::open(&file).unwrap();
                assert_eq!(
                    of_file(&f),
                    Some(FileCaps {
                        permitted: 1 << 13,
                        inheritable: 0,
                        effective: true
                    })
                );
            }
            other => {
                eprintln!("SKIPPED: setcap cap_net_raw+ep failed (not root? no setcap?): {other:?}")
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
