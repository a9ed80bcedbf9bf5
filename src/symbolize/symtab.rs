//! Function names from symbol tables alone, without loading any DWARF: enough to recognize
//! the start-up frames at the root of every stack (`_start`, `__libc_start_main`, ...) that
//! reports drop anyway, so a library whose only frames are those (libc, in most programs)
//! never has its compressed debug sections inflated.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use object::elf::{FileHeader64, SHT_DYNSYM, SHT_SYMTAB, SHT_SYMTAB_SHNDX};
use object::read::elf::{FileHeader, SectionHeader};
use object::{Endianness, Object, ObjectSymbol, ReadCache, SymbolKind};

/// Text symbols of one file: `(start, end, name)`, sorted by start.
pub(crate) struct SymbolTable(Vec<(u64, u64, String)>);

impl SymbolTable {
    /// Reads the symbol tables (`.symtab` and `.dynsym`) of the file at `path`; empty when it
    /// cannot be read.
    pub(crate) fn read(path: &Path) -> SymbolTable {
        let Some(data) = symbol_image(path).or_else(|| std::fs::read(path).ok()) else {
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

/// The bytes of the ELF file at `path` that its symbol tables need (headers, section
/// table, symbol and string tables), each at its own offset in a zeroed buffer the size of
/// the file, whose other pages are never touched (so never backed by memory). Reading all
/// of a 35 MB cc1 for its symbol table was 1/6 of a gcc run's report time. `None` for
/// anything that is not a 64-bit ELF file (the caller then reads the whole file).
pub(crate) fn symbol_image(path: &Path) -> Option<Vec<u8>> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let cache = ReadCache::new(file);
    let header = FileHeader64::<Endianness>::parse(&cache).ok()?;
    let endian = header.endian().ok()?;
    let sections = header.section_headers(endian, &cache).ok()?;
    let shdr_size = core::mem::size_of_val(sections) as u64;
    let phdr_size = u64::from(header.e_phnum(endian)) * u64::from(header.e_phentsize(endian));
    let mut ranges: Vec<(u64, u64)> = vec![
        (0, core::mem::size_of_val(header) as u64),
        (header.e_phoff(endian), phdr_size),
        (header.e_shoff(endian), shdr_size),
    ];
    let mut wanted = |index: usize| {
        if let Some((off, size)) = sections.get(index).and_then(|s| s.file_range(endian)) {
            ranges.push((off, size));
        }
    };
    if let Ok(i) = header.shstrndx(endian, &cache) {
        wanted(i as usize);
    }
    for (i, s) in sections.iter().enumerate() {
        match s.sh_type(endian) {
            SHT_SYMTAB | SHT_DYNSYM => {
                wanted(i);
                wanted(s.sh_link(endian) as usize);
            }
            // Section indexes of symbols in files with very many sections.
            SHT_SYMTAB_SHNDX => wanted(i),
            _ => {}
        }
    }
    let file = cache.into_inner();
    let mut image = vec![0u8; usize::try_from(len).ok()?];
    for (off, size) in ranges {
        let end = off.checked_add(size).filter(|&e| e <= len)?;
        file.read_exact_at(&mut image[off as usize..end as usize], off)
            .ok()?;
    }
    Some(image)
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
