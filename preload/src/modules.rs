//! The module map: every loaded ELF object with its path, build-id and address ranges, read
//! from the loader's own list (`dl_iterate_phdr`).

use core::ffi::{c_int, c_void, CStr};

use peakprof::format::{build_id_from_notes, Module};

use crate::procfs;

unsafe extern "C" fn visit(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: `data` is the Vec passed by `loaded_modules`, exclusively borrowed for the
    // iteration; `info` is valid for the duration of this callback.
    let (out, info) = unsafe { (&mut *(data as *mut Vec<Module>), &*info) };
    let bias = info.dlpi_addr;
    let name = if info.dlpi_name.is_null() {
        &[][..]
    } else {
        // SAFETY: the loader gives a NUL-terminated name.
        unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes()
    };
    let path = if name.is_empty() && out.is_empty() {
        // The first object without a name is the executable itself.
        procfs::self_exe()
    } else {
        String::from_utf8_lossy(name).into_owned()
    };
    let mut module = Module {
        path,
        bias,
        ..Module::default()
    };
    let phdrs = if info.dlpi_phdr.is_null() {
        &[][..]
    } else {
        // SAFETY: the loader guarantees `dlpi_phnum` headers at `dlpi_phdr`.
        unsafe { core::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
    };
    for ph in phdrs {
        let start = bias.wrapping_add(ph.p_vaddr);
        match ph.p_type {
            libc::PT_LOAD => module.ranges.push((start, start.wrapping_add(ph.p_memsz))),
            libc::PT_NOTE if module.build_id.is_empty() => {
                // SAFETY: a PT_NOTE segment is part of a loaded PT_LOAD segment, so its
                // bytes are mapped and readable for as long as the object is loaded.
                let notes =
                    unsafe { core::slice::from_raw_parts(start as *const u8, ph.p_memsz as usize) };
                if let Some(id) = build_id_from_notes(notes) {
                    module.build_id = id.to_vec();
                }
            }
            _ => {}
        }
    }
    if !module.ranges.is_empty() {
        out.push(module);
    }
    0
}

/// Every object loaded right now.
pub fn loaded_modules() -> Vec<Module> {
    let mut out: Vec<Module> = Vec::new();
    // SAFETY: `visit` matches the callback ABI and only uses `out` during the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut out as *mut Vec<Module>).cast()) };
    out
}

/// The address range covered by the module that contains `addr`.
pub fn range_of(modules: &[Module], addr: u64) -> Option<(u64, u64)> {
    let m = modules.iter().find(|m| m.contains(addr))?;
    let lo = m.ranges.iter().map(|r| r.0).min()?;
    let hi = m.ranges.iter().map(|r| r.1).max()?;
    Some((lo, hi))
}
