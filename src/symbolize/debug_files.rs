//! Finding the file that holds a module's debug info.
//!
//! addr2line's `Loader` reads DWARF from the path it is given (plus DWO/DWP and Mach-O dSYM)
//! but follows neither build-id directories nor `.gnu_debuglink`, and it never checks that a
//! file is the one that was loaded. That is what this file adds: pick the right files, then
//! hand their paths to the `Loader`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use object::{Object, ReadCache};

/// What we need to know about one ELF file before trusting it.
#[derive(Debug, Default)]
pub(crate) struct ObjectFacts {
    pub build_id: Option<Vec<u8>>,
    /// `.gnu_debuglink`: file name of the separate debug file and CRC32 of its contents.
    pub debuglink: Option<(Vec<u8>, u32)>,
    /// `.gnu_debugaltlink` (dwz): supplementary file name and its build-id.
    pub altlink: Option<(Vec<u8>, Vec<u8>)>,
    pub has_dwarf: bool,
}

/// Reads the facts through a read cache: only headers and notes are read, not the whole
/// file, which matters for multi-hundred-megabyte libraries.
pub(crate) fn read_facts(path: &Path) -> Result<ObjectFacts, String> {
    // Opening a FIFO or a device would block or read forever; only regular files can be
    // objects.
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot open: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let cache = ReadCache::new(file);
    let obj =
        object::File::parse(&cache).map_err(|e| format!("not a readable object file: {e}"))?;
    // A malformed note or section only costs us that piece of information.
    Ok(ObjectFacts {
        build_id: obj.build_id().ok().flatten().map(<[u8]>::to_vec),
        debuglink: obj
            .gnu_debuglink()
            .ok()
            .flatten()
            .map(|(name, crc)| (name.to_vec(), crc)),
        altlink: obj
            .gnu_debugaltlink()
            .ok()
            .flatten()
            .map(|(name, id)| (name.to_vec(), id.to_vec())),
        has_dwarf: obj.has_debug_symbols(),
    })
}

/// The files to read for one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DebugSource {
    /// File with the DWARF (and usually a full symbol table); `None` when there is none.
    pub dwarf: Option<PathBuf>,
    /// dwz supplementary file referenced by `dwarf`.
    pub sup: Option<PathBuf>,
    /// The module's own file when it is not `dwarf`: its symbol table (often only `.dynsym`)
    /// names functions the debug file does not.
    pub symbols: Option<PathBuf>,
}

/// Outcome of the search: what to read (if anything trustworthy was found) and what to tell
/// the user.
#[derive(Debug, Default)]
pub(crate) struct Located {
    pub source: Option<DebugSource>,
    pub warnings: Vec<String>,
}

/// Decides which files describe the module at `path` with the recorded `build_id` (empty
/// when unknown). A file whose build-id differs from the recorded one is never used: it was
/// rebuilt since the run, and wrong names are worse than none.
pub(crate) fn locate(path: &Path, build_id: &[u8], debug_dirs: &[PathBuf]) -> Located {
    let mut out = Located::default();
    let shown = path.display();
    let recorded = (!build_id.is_empty()).then_some(build_id);

    let facts = match read_facts(path) {
        Ok(f) => f,
        Err(e) => {
            // The file may be gone (uninstalled, temp build) while its debug file is kept.
            if let Some((dbg, facts)) = recorded.and_then(|id| by_build_id(debug_dirs, id)) {
                out.source = Some(with_sup(dbg, None, &facts, debug_dirs, &mut out.warnings));
            } else {
                out.warnings.push(format!("{shown}: {e}"));
            }
            return out;
        }
    };

    if let (Some(want), Some(have)) = (recorded, facts.build_id.as_deref()) {
        if want != have {
            if let Some((dbg, facts)) = by_build_id(debug_dirs, want) {
                out.source = Some(with_sup(dbg, None, &facts, debug_dirs, &mut out.warnings));
            } else {
                out.warnings.push(format!(
                    "{shown}: build-id mismatch (file {}, profile {}): the file changed since \
                     the run; its addresses are left unresolved",
                    hex(have),
                    hex(want)
                ));
            }
            return out;
        }
    }

    if facts.has_dwarf {
        out.source = Some(with_sup(
            path.to_path_buf(),
            None,
            &facts,
            debug_dirs,
            &mut out.warnings,
        ));
        return out;
    }

    let id = recorded.or(facts.build_id.as_deref());
    let separate = id
        .and_then(|id| by_build_id(debug_dirs, id))
        .or_else(|| by_debuglink(path, &facts, id, debug_dirs));
    match separate {
        Some((dbg, dbg_facts)) => {
            out.source = Some(with_sup(
                dbg,
                Some(path.to_path_buf()),
                &dbg_facts,
                debug_dirs,
                &mut out.warnings,
            ));
        }
        None => {
            out.warnings.push(format!(
                "{shown}: no debug info found (searched build-id and debuglink locations); \
                 using its symbol table only"
            ));
            out.source = Some(DebugSource {
                dwarf: None,
                sup: None,
                symbols: Some(path.to_path_buf()),
            });
        }
    }
    out
}

/// Completes a source with the dwz supplementary file its DWARF refers to, if it has one.
fn with_sup(
    dwarf: PathBuf,
    symbols: Option<PathBuf>,
    facts: &ObjectFacts,
    debug_dirs: &[PathBuf],
    warnings: &mut Vec<String>,
) -> DebugSource {
    let sup = facts.altlink.as_ref().and_then(|(name, id)| {
        match find_sup(&dwarf, name, id, debug_dirs) {
            Some(p) => Some(p),
            None => {
                warnings.push(format!(
                    "{}: supplementary debug file {} not found; some names may be missing",
                    dwarf.display(),
                    String::from_utf8_lossy(name)
                ));
                None
            }
        }
    });
    DebugSource {
        dwarf: Some(dwarf),
        sup,
        symbols,
    }
}

/// The dwz file is named relative to the debug file's directory, and is also filed under
/// its build-id.
fn find_sup(dwarf: &Path, name: &[u8], id: &[u8], debug_dirs: &[PathBuf]) -> Option<PathBuf> {
    let rel = path_from_bytes(name)?;
    let direct = match dwarf.parent() {
        Some(dir) => dir.join(&rel),
        None => rel,
    };
    let id_ok = |p: &Path| {
        read_facts(p)
            .ok()
            .is_some_and(|f| id.is_empty() || f.build_id.as_deref().is_none_or(|b| b == id))
    };
    if id_ok(&direct) {
        return Some(direct);
    }
    debug_dirs
        .iter()
        .filter_map(|d| build_id_path(d, id))
        .find(|p| id_ok(p))
}

/// `DIR/.build-id/ab/cdef....debug`, the layout distributions and `debuginfod` caches use.
pub(crate) fn build_id_path(dir: &Path, id: &[u8]) -> Option<PathBuf> {
    if id.len() < 2 {
        return None;
    }
    let h = hex(id);
    Some(
        dir.join(".build-id")
            .join(&h[..2])
            .join(format!("{}.debug", &h[2..])),
    )
}

/// A debug file filed under `id` in one of the debug dirs, checked to really carry that id.
fn by_build_id(debug_dirs: &[PathBuf], id: &[u8]) -> Option<(PathBuf, ObjectFacts)> {
    debug_dirs
        .iter()
        .filter_map(|d| build_id_path(d, id))
        .find_map(|p| {
            let facts = read_facts(&p).ok()?;
            let id_ok = facts.build_id.as_deref().is_none_or(|b| b == id);
            (id_ok && facts.has_dwarf).then_some((p, facts))
        })
}

/// Follows `.gnu_debuglink` the way GDB does: next to the file, in its `.debug/` subdirectory,
/// and under each debug dir mirrored by the file's directory.
fn by_debuglink(
    path: &Path,
    facts: &ObjectFacts,
    id: Option<&[u8]>,
    debug_dirs: &[PathBuf],
) -> Option<(PathBuf, ObjectFacts)> {
    let (name, crc) = facts.debuglink.as_ref()?;
    let name = path_from_bytes(name)?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    // The loader's path may be a symlink (`libfoo.so.1`); the debug file sits next to the
    // real file.
    let real = std::fs::canonicalize(path).ok();
    for p in std::iter::once(path).chain(real.as_deref()) {
        let Some(dir) = p.parent() else { continue };
        dirs.push(dir.to_path_buf());
        dirs.push(dir.join(".debug"));
        for d in debug_dirs {
            // `Path::join` with an absolute path would replace the debug dir.
            dirs.push(d.join(dir.strip_prefix("/").unwrap_or(dir)));
        }
    }
    let own = real.unwrap_or_else(|| path.to_path_buf());
    let mut seen = Vec::new();
    for dir in dirs {
        let cand = dir.join(&name);
        if seen.contains(&cand) {
            continue;
        }
        seen.push(cand.clone());
        // The link may name the file itself (`objcopy --add-gnu-debuglink` on a copy).
        if std::fs::canonicalize(&cand).is_ok_and(|c| c == own) {
            continue;
        }
        let Ok(cand_facts) = read_facts(&cand) else {
            continue;
        };
        if !cand_facts.has_dwarf {
            continue;
        }
        let matches = match (id, cand_facts.build_id.as_deref()) {
            (Some(want), Some(have)) => want == have,
            // Without build-ids the CRC is the only evidence the file belongs to this one.
            _ => crc32_of(&cand) == Some(*crc),
        };
        if matches {
            return Some((cand, cand_facts));
        }
    }
    None
}

fn crc32_of(path: &Path) -> Option<u32> {
    let mut file = File::open(path).ok()?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Some(hasher.finalize()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Names stored in ELF sections are raw bytes; an empty or NUL-carrying name cannot be a
/// file we should open.
fn path_from_bytes(bytes: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if bytes.is_empty() || bytes.contains(&0) {
        return None;
    }
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_id_layout() {
        let p = build_id_path(Path::new("/usr/lib/debug"), &[0xab, 0xcd, 0xef, 0x01]);
        assert_eq!(
            p,
            Some(PathBuf::from("/usr/lib/debug/.build-id/ab/cdef01.debug"))
        );
        assert_eq!(build_id_path(Path::new("/d"), &[0xab]), None);
    }

    #[test]
    fn missing_file_warns() {
        let located = locate(Path::new("/nonexistent/peakprof/libx.so"), &[1, 2, 3], &[]);
        assert!(located.source.is_none());
        assert_eq!(located.warnings.len(), 1);
        assert!(located.warnings[0].contains("/nonexistent/peakprof/libx.so"));
    }

    #[test]
    fn path_bytes_rejects_nul_and_empty() {
        assert!(path_from_bytes(b"").is_none());
        assert!(path_from_bytes(b"a\0b").is_none());
        assert_eq!(path_from_bytes(b"x.debug"), Some(PathBuf::from("x.debug")));
    }
}
