//! The preload library embedded in this binary, and where it is unpacked for `LD_PRELOAD`.
//!
//! The unpacked file is loaded into every program peakprof runs, so it is trusted only
//! where nobody else can have put it or change it: every directory peakprof makes or uses
//! below a cache root (`$XDG_CACHE_HOME`, `$HOME`, the temporary directory) must be owned
//! by this user (or root), writable by its owner only, and not a symbolic link, and the
//! root itself must not let others rename those (this user's or root's, and writable by
//! others only with the sticky bit); a file found there is used only if it holds exactly
//! the embedded bytes. Its path must also survive `LD_PRELOAD` whole.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The library, built by `build.rs`.
static PRELOAD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libpeakprof_preload.so"));

const FILE_NAME: &str = "libpeakprof_preload.so";

fn content_key(bytes: &[u8]) -> String {
    format!(
        "{}-{:08x}-{}",
        env!("CARGO_PKG_VERSION"),
        crc32fast::hash(bytes),
        bytes.len()
    )
}

/// A character of `path` that would make the dynamic loader read an `LD_PRELOAD` entry
/// as something else: glibc splits the list on spaces and colons (musl on any white
/// space and colons), and expands `$ORIGIN`, `$LIB` and `$PLATFORM` in it. The program
/// would then run without the library, unprofiled.
pub fn ld_preload_breaker(path: &Path) -> Option<char> {
    path.as_os_str()
        .as_encoded_bytes()
        .iter()
        .find(|&&b| b == b':' || b == b'$' || b.is_ascii_whitespace())
        .map(|&b| b as char)
}

/// `breaker` as the error says it.
fn shown_char(breaker: char) -> String {
    match breaker {
        ' ' => "a space".to_string(),
        '\t' => "a tab".to_string(),
        '\n' => "a newline".to_string(),
        c if c.is_ascii_whitespace() => "white space".to_string(),
        c => format!("'{c}'"),
    }
}

/// A directory the library may be unpacked below: `base` is the user's, `below` the
/// directories peakprof makes in it (each checked to be private, see [`private_dir`]).
#[derive(Debug, PartialEq, Eq)]
struct Root {
    base: PathBuf,
    below: Vec<String>,
    /// `$XDG_CACHE_HOME` may not exist yet: the XDG specification asks for it to be
    /// created (mode 0700). A home or a temporary directory is never created.
    create_base: bool,
}

/// The roots, in order of preference: `$XDG_CACHE_HOME/peakprof`, `~/.cache/peakprof`,
/// then `$TMPDIR/peakprof-cache-<euid>` (in a directory shared by all users: the name is
/// this user's, but another may have made it first, which the checks catch).
fn cache_roots(
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
    tmp: PathBuf,
    euid: u32,
) -> Vec<Root> {
    let mut roots = Vec::new();
    if let Some(x) = xdg_cache_home.filter(|v| !v.is_empty()) {
        roots.push(Root {
            base: PathBuf::from(x),
            below: vec!["peakprof".into()],
            create_base: true,
        });
    }
    if let Some(h) = home.filter(|v| !v.is_empty()) {
        roots.push(Root {
            base: PathBuf::from(h),
            below: vec![".cache".into(), "peakprof".into()],
            create_base: false,
        });
    }
    roots.push(Root {
        base: tmp,
        below: vec![format!("peakprof-cache-{euid}")],
        create_base: false,
    });
    roots
}

/// The temporary directory: `TMPDIR` when it is an absolute path, else `/tmp` (an empty or
/// relative `TMPDIR` names no fixed place).
fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir();
    if dir.is_absolute() {
        dir
    } else {
        PathBuf::from("/tmp")
    }
}

/// The path of the preload library on disk: `PEAKPROF_PRELOAD` when set (for development),
/// else the embedded copy unpacked once into a cache directory keyed by its content.
pub fn path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PEAKPROF_PRELOAD") {
        let p = PathBuf::from(p);
        anyhow::ensure!(
            p.is_file(),
            "PEAKPROF_PRELOAD={} is not a file",
            p.display()
        );
        let p = std::fs::canonicalize(&p)?;
        if let Some(c) = ld_preload_breaker(&p) {
            anyhow::bail!(
                "PEAKPROF_PRELOAD={}: the path holds {}, which LD_PRELOAD cannot carry",
                p.display(),
                shown_char(c)
            );
        }
        return Ok(p);
    }
    let euid = rustix::process::geteuid().as_raw();
    let roots = cache_roots(
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
        temp_dir(),
        euid,
    );
    unpacked(&roots, PRELOAD, euid)
}

/// The library (`bytes`) in the first of `roots` where it is, or can be put, safely; the
/// error names why each root could not be used.
fn unpacked(roots: &[Root], bytes: &[u8], euid: u32) -> Result<PathBuf> {
    let key = content_key(bytes);
    let mut why_not = Vec::new();
    for root in roots {
        match unpacked_in(root, &key, bytes, euid) {
            Ok(file) => return Ok(file),
            Err(e) => why_not.push(format!("{e:#}")),
        }
    }
    anyhow::bail!(
        "cannot unpack the preload library: {} (XDG_CACHE_HOME may name a directory of yours whose path has no space, ':' or '$')",
        why_not.join("; ")
    )
}

fn unpacked_in(root: &Root, key: &str, bytes: &[u8], euid: u32) -> Result<PathBuf> {
    let base = &root.base;
    // A relative path would be looked up from the program's working directory, which
    // may change under it.
    anyhow::ensure!(
        base.is_absolute(),
        "{} is not an absolute path",
        base.display()
    );
    let file_under = |base: &Path| -> Result<(PathBuf, PathBuf)> {
        let mut dir = base.to_path_buf();
        dir.extend(&root.below);
        dir.push(key);
        let file = dir.join(FILE_NAME);
        if let Some(c) = ld_preload_breaker(&file) {
            anyhow::bail!(
                "{} holds {}, which LD_PRELOAD cannot carry",
                file.display(),
                shown_char(c)
            );
        }
        Ok((dir, file))
    };
    // Before anything is created there.
    file_under(base)?;
    if root.create_base {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(base)
            .with_context(|| format!("creating {}", base.display()))?;
    }
    // From here on the real path: the loader must not go through a symbolic link someone
    // else could point elsewhere after these checks (one in /tmp, say).
    let base = trusted_base(base, euid)?;
    let (dir, file) = file_under(&base)?;
    let mut made = base.clone();
    for part in root.below.iter().map(String::as_str).chain([key]) {
        made.push(part);
        private_dir(&made, euid)?;
    }
    // Marked as in use before anything else: a pruning run of a newer build leaves it.
    touch(&dir);
    // Nobody else can add, replace or change a file in `dir` now: what is read here is
    // what the loader will load.
    if holds(&file, bytes, euid) {
        return Ok(file);
    }
    unpack(&dir, &file, bytes)?;
    // A build's first run: the place to drop the copies of builds long unused.
    if let Some(versions) = dir.parent() {
        prune(versions, key, euid, std::time::SystemTime::now());
    }
    Ok(file)
}

/// A copy of the library unused this long is removed by the next new build's first run,
/// so that the cache holds a few builds, not every build ever run (a developer's rebuilds
/// added one each: ~0.5 MiB, 170 of them here).
const UNUSED_FOR: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Sets `dir`'s modification time to now: when this build's copy was last used.
fn touch(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.set_modified(std::time::SystemTime::now());
    }
}

/// Whether `name` is a directory name [`content_key`] makes: `VERSION-XXXXXXXX-LEN`.
fn is_content_key(name: &str) -> bool {
    let mut parts = name.rsplitn(3, '-');
    let (Some(len), Some(crc), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !version.is_empty()
        && crc.len() == 8
        && crc.bytes().all(|b| b.is_ascii_hexdigit())
        && !len.is_empty()
        && len.bytes().all(|b| b.is_ascii_digit())
}

/// Removes from `versions` (a private cache directory) the other builds' copies that were
/// not used within [`UNUSED_FOR`] of `now`: directories named as a content key, this
/// user's, that are not `keep`. Failures are ignored (another run may be removing the same).
fn prune(versions: &Path, keep: &str, euid: u32, now: std::time::SystemTime) {
    let Ok(entries) = std::fs::read_dir(versions) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        let unused = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > UNUSED_FOR);
        if name != keep && is_content_key(name) && meta.is_dir() && meta.uid() == euid && unused {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Checks that no other user can rename what peakprof makes in `base`: it and every
/// directory above it (the real path: a symbolic link is followed to what it names) are
/// this user's or root's, and writable by others only with the sticky bit (as `/tmp` is:
/// there only an entry's owner may rename it). A base inside another user's directory
/// could be moved away and replaced, library and all, whatever the base's own owner.
/// Returns the real path.
fn trusted_base(base: &Path, euid: u32) -> Result<PathBuf> {
    let real =
        std::fs::canonicalize(base).with_context(|| format!("reading {}", base.display()))?;
    anyhow::ensure!(real.is_dir(), "{} is not a directory", base.display());
    for dir in real.ancestors() {
        let meta = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
        if let Some(why) = others_can_change(&meta, euid, true) {
            anyhow::bail!("{} {why}", dir.display());
        }
    }
    Ok(real)
}

/// Why a file or directory with `meta` could be changed by someone else than this user
/// (`euid`) and root, if it could.
fn not_private(meta: &std::fs::Metadata, euid: u32) -> Option<&'static str> {
    if meta.file_type().is_symlink() {
        Some("is a symbolic link")
    } else {
        others_can_change(meta, euid, false)
    }
}

/// Why someone else than this user (`euid`) and root could change what is in a directory
/// (or a file) with `meta`, if they could: they own it, or may write to it. With
/// `sticky_protects`, writable by others is fine under the sticky bit (as `/tmp` is: there
/// only an entry's owner may rename or remove it).
fn others_can_change(
    meta: &std::fs::Metadata,
    euid: u32,
    sticky_protects: bool,
) -> Option<&'static str> {
    let sticky = sticky_protects && meta.mode() & 0o1000 != 0;
    if meta.uid() != euid && meta.uid() != 0 {
        Some("is owned by another user")
    } else if meta.mode() & 0o022 != 0 && !sticky {
        Some("is writable by other users")
    } else {
        None
    }
}

/// Makes `dir` (mode 0700) unless it exists, and checks that only this user (or root) can
/// change what is in it.
fn private_dir(dir: &Path, euid: u32) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if let Some(why) = not_private(&meta, euid) {
        anyhow::bail!("{} {why}", dir.display());
    }
    anyhow::ensure!(meta.is_dir(), "{} is not a directory", dir.display());
    Ok(())
}

/// Whether `file` is a regular file that only this user (or root) can change, holding
/// exactly `bytes`.
fn holds(file: &Path, bytes: &[u8], euid: u32) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(file) else {
        return false;
    };
    meta.is_file()
        && not_private(&meta, euid).is_none()
        && meta.len() == bytes.len() as u64
        && std::fs::read(file).is_ok_and(|on_disk| on_disk == bytes)
}

fn unpack(dir: &Path, file: &Path, bytes: &[u8]) -> Result<()> {
    // Unique temporary name, then rename: concurrent runs never see a half-written library.
    // Read-only to others whatever the umask, so a later run can trust it.
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, file).with_context(|| format!("writing {}", file.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// A fresh directory for one test, removed at the end when the test passes.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "peakprof-preload-lib-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    fn root_at(base: &Path, below: &str) -> Root {
        Root {
            base: base.to_path_buf(),
            below: vec![below.to_string()],
            create_base: false,
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    const LIB: &[u8] = b"\x7fELF pretend library";

    fn euid() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    #[test]
    fn roots_come_in_order_of_preference() {
        let roots = cache_roots(Some("/x".into()), Some("/h".into()), "/t".into(), 1000);
        let paths: Vec<PathBuf> = roots
            .iter()
            .map(|r| r.base.join(r.below.join("/")))
            .collect();
        assert_eq!(
            paths,
            [
                PathBuf::from("/x/peakprof"),
                "/h/.cache/peakprof".into(),
                "/t/peakprof-cache-1000".into()
            ]
        );
        // Unset or empty variables give no root; the temporary directory is always last.
        let roots = cache_roots(Some("".into()), None, "/t".into(), 0);
        assert_eq!(roots, [root_at(Path::new("/t"), "peakprof-cache-0")]);
    }

    #[test]
    fn separators_of_ld_preload_are_found() {
        assert_eq!(ld_preload_breaker(Path::new("/home/a/.cache/x.so")), None);
        assert_eq!(
            ld_preload_breaker(Path::new("/home/my home/x.so")),
            Some(' ')
        );
        assert_eq!(ld_preload_breaker(Path::new("/home/a:b/x.so")), Some(':'));
        assert_eq!(ld_preload_breaker(Path::new("/home/a\tb/x.so")), Some('\t'));
        assert_eq!(ld_preload_breaker(Path::new("/home/$LIB/x.so")), Some('$'));
        assert_eq!(ld_preload_breaker(Path::new("/home/é/x.so")), None);
    }

    #[test]
    fn the_library_is_unpacked_into_private_directories_and_reused() {
        let base = scratch("fresh");
        let file = unpacked(&[root_at(&base, "cache")], LIB, euid()).unwrap();
        let key_dir = base.join("cache").join(content_key(LIB));
        assert_eq!(file, key_dir.join(FILE_NAME));
        assert_eq!(std::fs::read(&file).unwrap(), LIB);
        assert_eq!(mode(&base.join("cache")), 0o700);
        assert_eq!(mode(&key_dir), 0o700);
        assert_eq!(mode(&file) & 0o022, 0, "not writable by others");
        // A second run finds it.
        assert_eq!(
            unpacked(&[root_at(&base, "cache")], LIB, euid()).unwrap(),
            file
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// The libraries the embedded preload makes the dynamic loader load into every profiled
    /// process: each one costs every process start (libm did, ~0.1 ms, until its two
    /// functions came from the `libm` crate). libgcc_s stays: Rust's standard library needs
    /// its unwinder.
    #[test]
    fn the_preload_needs_only_libc_the_loader_and_libgcc() {
        use object::read::elf::{Dyn as _, ElfFile64, FileHeader as _, SectionHeader as _};
        let elf = ElfFile64::<object::Endianness>::parse(PRELOAD).unwrap();
        let (header, endian) = (elf.elf_header(), elf.endian());
        let sections = header.sections(endian, PRELOAD).unwrap();
        let mut needed = Vec::new();
        for section in sections.iter() {
            let Some((entries, link)) = section.dynamic(endian, PRELOAD).unwrap() else {
                continue;
            };
            let strings = sections.strings(endian, PRELOAD, link).unwrap();
            for d in entries {
                if d.d_tag(endian) == object::elf::DT_NEEDED {
                    let name = d.string(endian, strings).unwrap();
                    needed.push(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
        needed.sort();
        assert_eq!(
            needed,
            ["ld-linux-x86-64.so.2", "libc.so.6", "libgcc_s.so.1"],
            "DT_NEEDED of the preload"
        );
    }

    #[test]
    fn content_keys_are_told_apart() {
        assert!(is_content_key(&content_key(LIB)));
        assert!(is_content_key("0.1.0-03a8e35a-561368"));
        assert!(is_content_key("1.2.3-rc1-0123abcd-7"));
        for no in [
            "0.1.0-03a8e35-561368",
            "0.1.0-03a8e35g-561368",
            "-03a8e35a-1",
            "notes",
            "0.1.0-03a8e35a-",
        ] {
            assert!(!is_content_key(no), "{no}");
        }
    }

    /// A new build's first run removes the copies of builds unused for a week; a recent
    /// one, its own, and anything not named as a copy stay; a build that is used again is
    /// marked as recent.
    #[test]
    fn copies_of_builds_long_unused_are_pruned() {
        let base = scratch("prune");
        let versions = base.join("cache");
        let old_time =
            std::time::SystemTime::now() - UNUSED_FOR - std::time::Duration::from_secs(60);
        // A copy of `library` under `name`, last used a week ago when `old`.
        let mk = |name: &str, library: &[u8], old: bool| {
            let d = versions.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(FILE_NAME), library).unwrap();
            if old {
                std::fs::File::open(&d)
                    .unwrap()
                    .set_modified(old_time)
                    .unwrap();
            }
            d
        };
        let old = mk("0.0.9-0000abcd-100", b"x", true);
        let recent = mk("0.0.9-0000abce-100", b"x", false);
        let not_a_copy = mk("notes", b"x", true);
        let used_again = mk(&content_key(b"another build"), b"another build", true);
        // The old build runs again: its copy is marked as used (not pruned by itself).
        unpacked(&[root_at(&base, "cache")], b"another build", euid()).unwrap();
        assert!(old.exists(), "a build already unpacked does not prune");
        // A new build's first run.
        let file = unpacked(&[root_at(&base, "cache")], LIB, euid()).unwrap();
        assert!(file.exists());
        assert!(!old.exists());
        assert!(recent.exists() && not_a_copy.exists() && used_again.exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_file_of_the_same_length_but_other_bytes_is_replaced() {
        let base = scratch("same-length");
        let roots = [root_at(&base, "cache")];
        let file = unpacked(&roots, LIB, euid()).unwrap();
        let mut other = LIB.to_vec();
        other[1] ^= 0xff;
        std::fs::write(&file, &other).unwrap();
        assert_eq!(unpacked(&roots, LIB, euid()).unwrap(), file);
        assert_eq!(std::fs::read(&file).unwrap(), LIB);
        // Writable by others: not trusted either, even with the right bytes.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(!holds(&file, LIB, euid()));
        assert_eq!(unpacked(&roots, LIB, euid()).unwrap(), file);
        assert_eq!(mode(&file) & 0o022, 0);
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// The error for `roots`, checked to be one line.
    fn refusal(roots: &[Root], euid: u32) -> String {
        let e = format!("{:#}", unpacked(roots, LIB, euid).unwrap_err());
        assert!(!e.contains('\n'), "{e}");
        e
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Every way another user could have a say in the directory: each is refused, with
    /// the reason, and the next root is used.
    #[test]
    fn directories_others_can_change_are_passed_over() {
        let base = scratch("others-say");
        let good = || root_at(&base, "good");

        // Writable by others.
        std::fs::create_dir(base.join("open")).unwrap();
        chmod(&base.join("open"), 0o777);
        let e = refusal(&[root_at(&base, "open")], euid());
        assert!(e.contains("open is writable by other users"), "{e}");
        let used = unpacked(&[root_at(&base, "open"), good()], LIB, euid()).unwrap();
        assert!(used.starts_with(base.join("good")), "{}", used.display());
        assert!(!base.join("open").join(content_key(LIB)).exists());

        // A symbolic link (to a directory that would pass).
        std::os::unix::fs::symlink(base.join("good"), base.join("link")).unwrap();
        let e = refusal(&[root_at(&base, "link")], euid());
        assert!(e.contains("link is a symbolic link"), "{e}");

        // The key directory too, not only the first one below the base.
        let inner = base.join("inner");
        std::fs::create_dir(&inner).unwrap();
        chmod(&inner, 0o700);
        std::fs::create_dir(inner.join(content_key(LIB))).unwrap();
        chmod(&inner.join(content_key(LIB)), 0o775);
        let e = refusal(&[root_at(&base, "inner")], euid());
        assert!(e.contains("writable by other users"), "{e}");

        // A base others may write to without the sticky bit: they could rename what
        // peakprof makes there. With the sticky bit (as /tmp), only its owner may.
        let shared = base.join("shared");
        std::fs::create_dir(&shared).unwrap();
        chmod(&shared, 0o777);
        let e = refusal(&[root_at(&shared, "c")], euid());
        assert!(e.contains("shared is writable by other users"), "{e}");
        chmod(&shared, 0o1777);
        unpacked(&[root_at(&shared, "c")], LIB, euid()).unwrap();

        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A directory made by another user (here: owned by someone who is neither this user
    /// nor root) with a library in it, as another user of a shared /tmp could plant it.
    #[test]
    fn a_directory_of_another_user_is_passed_over() {
        let base = scratch("owner");
        let planted = base.join("planted");
        let key_dir = planted.join(content_key(LIB));
        std::fs::create_dir_all(&key_dir).unwrap();
        chmod(&planted, 0o755);
        chmod(&key_dir, 0o755);
        std::fs::write(key_dir.join(FILE_NAME), LIB).unwrap();
        // As root, the directory goes to nobody; as another user, peakprof is told it runs
        // as a third one (root-owned directories are trusted: root can change anything).
        let me = if euid() == 0 {
            std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
            0
        } else {
            euid() + 1
        };
        let e = refusal(&[root_at(&base, "planted")], me);
        assert!(e.contains("planted is owned by another user"), "{e}");
        let used = unpacked(
            &[root_at(&base, "planted"), root_at(&base, "mine")],
            LIB,
            me,
        );
        if euid() == 0 {
            assert!(used.unwrap().starts_with(base.join("mine")));
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A base of this user's inside a directory of another user's: that user could move the
    /// base away and put another in its place, library and all, so it is passed over too.
    #[test]
    fn a_base_inside_another_users_directory_is_passed_over() {
        let base = scratch("ancestor");
        let theirs = base.join("theirs");
        let inner = theirs.join("inner");
        std::fs::create_dir_all(&inner).unwrap();
        chmod(&theirs, 0o755);
        chmod(&inner, 0o700);
        let me = if euid() == 0 {
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            0
        } else {
            // As another user: peakprof is told it runs as the owner of `inner` (us), and
            // `theirs` belongs to us too, so nothing to check here without root.
            std::fs::remove_dir_all(&base).unwrap();
            return;
        };
        let e = refusal(&[root_at(&inner, "c")], me);
        assert!(e.contains("theirs is owned by another user"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A base named through a symbolic link: the library's path (what LD_PRELOAD carries)
    /// is the real one, so a link someone could point elsewhere later is not on it.
    #[test]
    fn the_path_handed_out_has_no_symbolic_link() {
        let base = scratch("through-link");
        let real = base.join("real");
        std::fs::create_dir(&real).unwrap();
        chmod(&real, 0o700);
        let link = base.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let file = unpacked(&[root_at(&link, "c")], LIB, euid()).unwrap();
        let real = std::fs::canonicalize(&real).unwrap();
        assert!(file.starts_with(&real), "{}", file.display());
        assert_eq!(std::fs::canonicalize(&file).unwrap(), file);
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A home whose path LD_PRELOAD would split, or a relative one: the next root.
    #[test]
    fn paths_ld_preload_cannot_carry_are_passed_over() {
        let base = scratch("separators");
        let spaced = base.join("my home");
        std::fs::create_dir(&spaced).unwrap();
        let e = refusal(&[root_at(&spaced, "c")], euid());
        assert!(
            e.contains("holds a space, which LD_PRELOAD cannot carry"),
            "{e}"
        );
        assert!(!spaced.join("c").exists(), "nothing made there");
        let colon = base.join("a:b");
        std::fs::create_dir(&colon).unwrap();
        let e = refusal(&[root_at(&colon, "c")], euid());
        assert!(e.contains("holds ':'"), "{e}");
        let e = refusal(&[root_at(Path::new("relative/dir"), "c")], euid());
        assert!(e.contains("relative/dir is not an absolute path"), "{e}");
        // Each reason is told when no root is left.
        let e = refusal(
            &[root_at(&spaced, "c"), root_at(Path::new("rel"), "c")],
            euid(),
        );
        assert!(
            e.starts_with("cannot unpack the preload library: ")
                && e.contains("a space")
                && e.contains("; rel is not an absolute path"),
            "{e}"
        );
        let used = unpacked(&[root_at(&spaced, "c"), root_at(&base, "c")], LIB, euid());
        assert_eq!(
            used.unwrap(),
            base.join("c").join(content_key(LIB)).join(FILE_NAME)
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
