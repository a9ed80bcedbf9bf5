//! Offline symbolization: raw return addresses from a profile to function, file and line.
//!
//! The target process only records addresses and its module map; everything here runs in the
//! CLI afterwards, opening each module's files lazily and caching per address, since a
//! profile's stacks share most of their frames.

mod debug_files;
mod demangle;
mod frame;
mod loaded;
mod module_index;
mod symtab;

use crate::fast_map::{FastMap, FastSet};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::format::Module;
use crate::report::FrameName;

pub use frame::Frame;
pub(crate) use symtab::symbol_image;

use loaded::LoadedModule;
use module_index::ModuleIndex;
use symtab::SymbolTable;

/// Where distributions install separate debug files.
const DEFAULT_DEBUG_DIR: &str = "/usr/lib/debug";

/// One file, opened once per run, with the frames of every address asked of it (by file
/// address, so they hold whatever the load bias of each process was).
struct OpenedFile {
    loaded: Option<LoadedModule>,
    warnings: Vec<String>,
    frames: RefCell<FastMap<u64, Vec<Frame>>>,
}

/// Opened files shared by the symbolizers of one run: the processes of a run (a shell
/// script's hundred children) load the same libraries, which are then read and resolved
/// once instead of once per process.
#[derive(Default, Clone)]
pub struct SymbolCache(
    Rc<RefCell<FastMap<FileKey, Rc<OpenedFile>>>>,
    Rc<RefCell<FastMap<FileKey, Rc<SymbolTable>>>>,
    /// Read debug info of system libraries too (see [`is_system_library`]).
    bool,
);

/// A file as a module map names it: path and build-id.
type FileKey = (String, Vec<u8>);

impl SymbolCache {
    /// An empty cache; system libraries are named from their symbol tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache that also reads system libraries' debug info (file:line, inlined
    /// frames) when `system_lines`: slower, since their debug sections are large and
    /// compressed.
    pub fn with_system_lines(system_lines: bool) -> Self {
        SymbolCache(Rc::default(), Rc::default(), system_lines)
    }
}

/// Libraries installed by the system (libc, libstdc++, ...): named by function from their
/// symbol tables, without reading their debug info. Inflating libc's compressed DWARF is
/// most of the time spent symbolizing a short run, and the file and line inside libc say
/// little about which of the program's call paths held the memory.
fn is_system_library(path: &str) -> bool {
    [
        "/usr/lib/",
        "/lib/",
        "/lib64/",
        "/usr/lib64/",
        "/usr/libexec/",
    ]
    .iter()
    .any(|d| path.starts_with(d))
}

/// Lazily-opened state of one module.
enum Slot {
    Unopened,
    Open(Rc<OpenedFile>),
    /// Nothing trustworthy to read; its addresses get `module+0xoffset` names.
    Unusable,
}

/// Resolves return addresses of one profiled process to frames.
pub struct Symbolizer {
    modules: Vec<Module>,
    slots: Vec<Slot>,
    index: ModuleIndex,
    debug_dirs: Vec<PathBuf>,
    /// Display names by return address (see [`Self::display_names`]).
    names: FastMap<u64, Vec<FrameName>>,
    files: SymbolCache,
    warnings: Vec<String>,
    warned: FastSet<String>,
}

impl Symbolizer {
    /// Uses the default debug directories (`/usr/lib/debug`).
    pub fn new(modules: &[Module]) -> Self {
        Self::with_debug_dirs(modules, vec![PathBuf::from(DEFAULT_DEBUG_DIR)])
    }

    /// Same with explicit global debug directories (searched as DIR/.build-id/xx/rest.debug
    /// and for .gnu_debuglink targets), for tests.
    pub fn with_debug_dirs(modules: &[Module], debug_dirs: Vec<PathBuf>) -> Self {
        Symbolizer {
            modules: modules.to_vec(),
            slots: modules.iter().map(|_| Slot::Unopened).collect(),
            index: ModuleIndex::new(modules),
            debug_dirs,
            names: FastMap::default(),
            files: SymbolCache::new(),
            warnings: Vec::new(),
            warned: FastSet::default(),
        }
    }

    /// Uses the default debug directories and shares opened files with other symbolizers
    /// of the same run through `files`.
    pub fn with_cache(modules: &[Module], files: &SymbolCache) -> Self {
        let mut s = Self::new(modules);
        s.files = files.clone();
        s
    }

    /// Frames for one *return address* captured in the target (look up `addr - 1`, since a
    /// return address points after the call). Ordered caller first: the outermost function
    /// first, then the functions inlined into it, innermost last. Never empty: when nothing
    /// resolves, one frame named `libfoo.so+0x1a2b` (file name of the module + offset =
    /// addr - bias, hex), or `0x7f..` when no module contains the address. Not cached:
    /// reports go through [`Self::display_names`].
    pub fn symbolize(&mut self, return_address: u64) -> Vec<Frame> {
        self.resolve(return_address)
    }

    /// The display names ([`Frame::display_name`]) of [`Self::symbolize`]'s frames, in the
    /// same order. Cached per address: the same addresses recur in many stacks, and the
    /// names are shared, not copied, by every stack that holds them.
    pub fn display_names(&mut self, return_address: u64) -> &[FrameName] {
        if !self.names.contains_key(&return_address) {
            let names = self
                .resolve(return_address)
                .iter()
                .map(|f| f.display_name().into())
                .collect();
            self.names.insert(return_address, names);
        }
        &self.names[&return_address]
    }

    /// The symbol-table name of the function a *return address* returns into, without
    /// loading debug info (see `symtab`); `None` when unknown. For recognizing frames,
    /// not for showing them: no file, line or inlining.
    pub fn symbol_name(&mut self, return_address: u64) -> Option<String> {
        let idx = self.module_of(return_address)?;
        let module = &self.modules[idx];
        if module.path.is_empty() || return_address == 0 {
            return None;
        }
        let key = (module.path.clone(), module.build_id.clone());
        let cached = self.files.1.borrow().get(&key).cloned();
        let table = cached.unwrap_or_else(|| {
            // The debug file has the full symbol table (local functions included); the
            // module's own file may have only `.dynsym`.
            let located =
                debug_files::locate(Path::new(&module.path), &module.build_id, &self.debug_dirs);
            let path = located
                .source
                .and_then(|s| s.dwarf.or(s.symbols))
                .unwrap_or_else(|| PathBuf::from(&module.path));
            let table = Rc::new(SymbolTable::read(&path));
            self.files.1.borrow_mut().insert(key, Rc::clone(&table));
            table
        });
        let svma = (return_address - 1).wrapping_sub(module.bias);
        table.name_at(svma).map(str::to_string)
    }

    /// Index of the module containing `addr`, if any.
    pub fn module_of(&self, addr: u64) -> Option<usize> {
        self.index.find(addr)
    }

    /// Problems found (file missing, build-id mismatch, no debug info), one line each, each
    /// reported once.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn resolve(&mut self, addr: u64) -> Vec<Frame> {
        let Some(idx) = self.module_of(addr) else {
            return vec![Frame::named(format!("{addr:#x}"))];
        };
        let fallback = fallback_name(&self.modules[idx], addr);
        // Address 0 has no call before it; `addr - 1` would wrap around.
        if addr == 0 {
            return vec![Frame::named(fallback)];
        }
        if !self.files.2 && is_system_library(&self.modules[idx].path) {
            let name = self.symbol_name(addr).map(|n| demangle::demangle(&n));
            return vec![Frame::named(name.unwrap_or(fallback))];
        }
        self.open(idx);
        let Slot::Open(file) = &self.slots[idx] else {
            return vec![Frame::named(fallback)];
        };
        let Some(loaded) = &file.loaded else {
            return vec![Frame::named(fallback)];
        };
        let svma = (addr - 1).wrapping_sub(self.modules[idx].bias);
        if let Some(frames) = file.frames.borrow().get(&svma) {
            return Self::or_fallback(frames.clone(), fallback);
        }
        match loaded.frames(svma) {
            Ok(frames) => {
                file.frames.borrow_mut().insert(svma, frames.clone());
                Self::or_fallback(frames, fallback)
            }
            Err(()) => {
                let msg = format!(
                    "{}: debug info reader crashed; its addresses are left unresolved",
                    self.modules[idx].path
                );
                self.warn(msg);
                self.slots[idx] = Slot::Unusable;
                vec![Frame::named(fallback)]
            }
        }
    }

    /// `frames`, with the fallback name where nothing resolved.
    fn or_fallback(mut frames: Vec<Frame>, fallback: String) -> Vec<Frame> {
        if frames.is_empty() {
            return vec![Frame::named(fallback)];
        }
        if frames[0].function.is_empty() {
            frames[0].function = fallback;
        }
        frames
    }

    /// Opens module `idx` the first time one of its addresses is asked for.
    fn open(&mut self, idx: usize) {
        if !matches!(self.slots[idx], Slot::Unopened) {
            return;
        }
        let module = &self.modules[idx];
        // Objects without a file (vdso, anonymous JIT code) have nothing to read, and saying
        // so for every profile would be noise.
        if module.path.is_empty() {
            self.slots[idx] = Slot::Unusable;
            return;
        }
        let key = (module.path.clone(), module.build_id.clone());
        let cached = self.files.0.borrow().get(&key).cloned();
        let file = cached.unwrap_or_else(|| {
            let located =
                debug_files::locate(Path::new(&module.path), &module.build_id, &self.debug_dirs);
            let mut warnings = located.warnings;
            let loaded = located
                .source
                .and_then(|s| LoadedModule::open(&s, &mut warnings));
            let file = Rc::new(OpenedFile {
                loaded,
                warnings,
                frames: RefCell::new(FastMap::default()),
            });
            self.files.0.borrow_mut().insert(key, Rc::clone(&file));
            file
        });
        for w in file.warnings.clone() {
            self.warn(w);
        }
        self.slots[idx] = if file.loaded.is_some() {
            Slot::Open(file)
        } else {
            Slot::Unusable
        };
    }

    fn warn(&mut self, msg: String) {
        if self.warned.insert(msg.clone()) {
            self.warnings.push(msg);
        }
    }
}

/// `libfoo.so+0x1a2b`: the module's file name and the address relative to its load bias, which
/// is what `addr2line -e libfoo.so` takes, or the bare address for an object with no file.
fn fallback_name(module: &Module, addr: u64) -> String {
    let offset = addr.wrapping_sub(module.bias);
    match Path::new(&module.path).file_name() {
        Some(name) => format!("{}+{offset:#x}", name.to_string_lossy()),
        None => format!("{addr:#x}"),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod system_tests {
    use super::*;

    #[test]
    fn system_libraries_are_recognized_by_their_directory() {
        assert!(is_system_library("/usr/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(is_system_library("/lib/x86_64-linux-gnu/libstdc++.so.6"));
        assert!(!is_system_library("/home/me/proj/target/debug/prog"));
        assert!(!is_system_library("/usr/bin/python3"));
        assert!(!is_system_library(""));
    }
}
