//! One opened module: DWARF and symbol tables, queried by file address.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use addr2line::Loader;

use super::debug_files::DebugSource;
use super::demangle::demangle;
use super::frame::Frame;

/// The parsed files of one module. Either part may be missing; with neither, the module is
/// not opened at all.
pub(crate) struct LoadedModule {
    dwarf: Option<Loader>,
    /// The module's own file, when the DWARF came from elsewhere.
    symbols: Option<Loader>,
}

impl LoadedModule {
    /// Opens the files `source` names. Problems become warnings; `None` when nothing usable
    /// could be opened.
    pub(crate) fn open(source: &DebugSource, warnings: &mut Vec<String>) -> Option<Self> {
        let dwarf = source
            .dwarf
            .as_deref()
            .and_then(|p| open_loader(p, source.sup.as_deref(), warnings));
        let symbols = source
            .symbols
            .as_deref()
            .and_then(|p| open_loader(p, None, warnings));
        (dwarf.is_some() || symbols.is_some()).then_some(LoadedModule { dwarf, symbols })
    }

    /// Frames at file address `svma`, caller first; empty when nothing is known there.
    ///
    /// Errs only when a library panicked on this module's data; the caller should then stop
    /// using the module, since its lazily-built state may be half-updated.
    pub(crate) fn frames(&self, svma: u64) -> Result<Vec<Frame>, ()> {
        // gimli and addr2line are not hardened against every corrupt input; a panic there must
        // cost one module's names, not the whole report.
        catch_unwind(AssertUnwindSafe(|| self.frames_inner(svma))).map_err(|_| ())
    }

    fn frames_inner(&self, svma: u64) -> Vec<Frame> {
        let mut frames = self
            .dwarf
            .as_ref()
            .map(|l| dwarf_frames(l, svma))
            .unwrap_or_default();
        // The outermost frame is the only one the symbol table can name: inlined callees
        // have no symbol of their own.
        let needs_symbol = frames.first().is_none_or(|f| f.function.is_empty());
        if needs_symbol {
            if let Some(name) = self.symbol(svma) {
                match frames.first_mut() {
                    Some(f) => f.function = name,
                    None => frames.push(Frame::named(name)),
                }
            }
        } else if let Some(first) = frames.first_mut() {
            // Line-tables-only debug info (Rust's standard library ships so) names functions
            // without their path: `alloc_impl` where the symbol table says
            // `alloc::alloc::Global::alloc_impl`. The qualified name says much more.
            if !first.function.contains("::") {
                if let Some(sym) = self.symbol(svma) {
                    if qualifies(&sym, &first.function) {
                        first.function = sym;
                    }
                }
            }
        }
        frames
    }

    fn symbol(&self, svma: u64) -> Option<String> {
        [self.dwarf.as_ref(), self.symbols.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|l| l.find_symbol(svma))
            .map(demangle)
    }
}

/// Whether the symbol-table name `sym` is the bare DWARF name `bare` with a path in front
/// (`a::b::bare`, `a::b::bare(int)`, `a::b::bare<T>`).
fn qualifies(sym: &str, bare: &str) -> bool {
    !bare.is_empty()
        && [
            format!("::{bare}"),
            format!("::{bare}("),
            format!("::{bare}<"),
        ]
        .iter()
        .enumerate()
        .any(|(i, pat)| {
            if i == 0 {
                sym.ends_with(pat)
            } else {
                sym.contains(pat)
            }
        })
}

/// Opens one file with addr2line's loader, catching its panics like lookups do.
fn open_loader(path: &Path, sup: Option<&Path>, warnings: &mut Vec<String>) -> Option<Loader> {
    match catch_unwind(|| Loader::new_with_sup(path, sup)) {
        Ok(Ok(l)) => Some(l),
        Ok(Err(e)) => {
            warnings.push(format!("{}: cannot read: {e}", path.display()));
            None
        }
        Err(_) => {
            warnings.push(format!("{}: object reader crashed", path.display()));
            None
        }
    }
}

/// DWARF frames, caller first. A function the DWARF does not name gets an empty name, which
/// the caller fills from the symbol table (outermost) or with `??` (inlined).
fn dwarf_frames(loader: &Loader, svma: u64) -> Vec<Frame> {
    let mut out = Vec::new();
    let Ok(mut iter) = loader.find_frames(svma) else {
        return out;
    };
    // addr2line yields the innermost inlined function first.
    loop {
        let f = match iter.next() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            // A chain missing its outer end would file the sample under the wrong caller;
            // the symbol table's single name is better.
            Err(_) => return Vec::new(),
        };
        let function = f
            .function
            .as_ref()
            .and_then(|n| n.raw_name().ok())
            .map(|n| demangle(&n))
            .unwrap_or_default();
        let (file, line) = match &f.location {
            Some(loc) => (loc.file.map(str::to_string), loc.line),
            None => (None, None),
        };
        out.push(Frame {
            function,
            file,
            line,
        });
    }
    out.reverse();
    for f in out.iter_mut().skip(1) {
        if f.function.is_empty() {
            f.function = "??".to_string();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::qualifies;

    #[test]
    fn a_qualified_symbol_name_is_preferred_only_when_it_names_the_same_function() {
        assert!(qualifies("alloc::alloc::Global::alloc_impl", "alloc_impl"));
        assert!(qualifies("ns::Klass::method(int)", "method"));
        assert!(qualifies(
            "std::vector<int>::push_back<int>(int&&)",
            "push_back"
        ));
        assert!(!qualifies("alloc::alloc::Global::alloc_impl", "alloc"));
        assert!(!qualifies("main", "main"));
        assert!(!qualifies("x::y", ""));
    }
}
