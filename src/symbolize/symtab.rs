//! Function names from symbol tables alone, without loading any DWARF: enough to recognize
//! the start-up frames at the root of every stack (`_start`, `__libc_start_main`, ...) that
//! reports drop anyway, so a library whose only frames are those (libc, in most programs)
//! never has its compressed debug sections inflated.

use std::path::Path;

use object::{Object, ObjectSymbol, SymbolKind};

/// Text symbols of one file: `(start, end, name)`, sorted by start.
pub(crate) struct SymbolTable(Vec<(u64, u64, String)>);

impl SymbolTable {
    /// Reads the symbol tables (`.symtab` and `.dynsym`) of the file at `path`; empty when it
    /// cannot be read.
    pub(crate) fn read(path: &Path) -> SymbolTable {
        let Ok(data) = std::fs::read(path) else {
            return SymbolTable(Vec::new());
        };
        let Ok(file) = object::File::parse(&*data) else {
            return SymbolTable(Vec::new());
        };
        let mut syms: Vec<(u64, u64, String)> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| {
                let name = s.name().ok()?;
                Some((s.address(), s.address() + s.size().max(1), name.to_string()))
            })
            .collect();
        syms.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        syms.dedup_by(|b, a| a.0 == b.0);
        SymbolTable(syms)
    }

    /// The name of the function containing file address `svma`.
    pub(crate) fn name_at(&self, svma: u64) -> Option<&str> {
        let i = self.0.partition_point(|s| s.0 <= svma).checked_sub(1)?;
        let (start, end, name) = &self.0[i];
        (*start <= svma && svma < *end).then_some(name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn symtab_probe() -> u32 {
        std::hint::black_box(7)
    }

    #[test]
    fn names_a_function_of_this_test_binary_from_its_symbol_table() {
        std::hint::black_box(symtab_probe());
        let exe = std::env::current_exe().unwrap();
        let table = SymbolTable::read(&exe);
        let data = std::fs::read(&exe).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let probe = file
            .symbols()
            .find(|s| s.name().is_ok_and(|n| n.contains("symtab_probe")))
            .unwrap();
        let name = table.name_at(probe.address() + 1).unwrap();
        assert!(name.contains("symtab_probe"), "{name}");
        assert_eq!(table.name_at(0), None);
        assert!(SymbolTable::read(Path::new("/nonexistent"))
            .name_at(1)
            .is_none());
    }
}
