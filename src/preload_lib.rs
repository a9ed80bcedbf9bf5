//! The preload library embedded in this binary, and where it is unpacked for `LD_PRELOAD`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The library, built by `build.rs`.
static PRELOAD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libpeakprof_preload.so"));

fn content_key() -> String {
    format!(
        "{}-{:08x}-{}",
        env!("CARGO_PKG_VERSION"),
        crc32fast::hash(PRELOAD),
        PRELOAD.len()
    )
}

fn cache_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        roots.push(PathBuf::from(x).join("peakprof"));
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        roots.push(PathBuf::from(h).join(".cache/peakprof"));
    }
    // Last resort when there is no writable home: keyed by content like the others.
    roots.push(std::env::temp_dir().join("peakprof-cache"));
    roots
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
        return Ok(std::fs::canonicalize(&p)?);
    }
    let key = content_key();
    let mut last_err = None;
    for root in cache_roots() {
        let dir = root.join(&key);
        let file = dir.join("libpeakprof_preload.so");
        if std::fs::metadata(&file).is_ok_and(|m| m.len() == PRELOAD.len() as u64) {
            return Ok(file);
        }
        match unpack(&dir, &file) {
            Ok(()) => return Ok(file),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err
        .unwrap_or_else(|| anyhow::anyhow!("no cache directory"))
        .context("cannot unpack the preload library"))
}

fn unpack(dir: &Path, file: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Unique temporary name, then rename: concurrent runs never see a half-written library.
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(PRELOAD)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, file)?;
    Ok(())
}
