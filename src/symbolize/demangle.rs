//! Turning linkage names into readable ones.

/// Demangles Rust (legacy and v0) and C++ (Itanium) names; anything else comes back as is.
///
/// The scheme is guessed from the name rather than taken from the DWARF language, because
/// symbol-table names carry no language and mixed-language objects are common (Rust
/// programs link C++ libraries and the other way round).
pub(crate) fn demangle(name: &str) -> String {
    // Rust first: a legacy Rust name is also well-formed Itanium, and the C++ demangler would
    // keep the `h0123...` hash as a path component.
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        // `{:#}` drops the legacy hash suffix: two builds of the same function should look
        // the same in a report.
        return format!("{d:#}");
    }
    if name.starts_with("_Z") || name.starts_with("__Z") {
        if let Ok(sym) = cpp_demangle::Symbol::new(name) {
            if let Ok(s) = sym.demangle() {
                return s;
            }
        }
    }
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::demangle;

    #[test]
    fn rust_legacy_loses_hash() {
        assert_eq!(
            demangle("_ZN4core3ptr13drop_in_place17h0123456789abcdefE"),
            "core::ptr::drop_in_place"
        );
    }

    #[test]
    fn rust_v0() {
        assert_eq!(demangle("_RNvCs1234_7mycrate3foo"), "mycrate::foo");
    }

    #[test]
    fn cpp_itanium() {
        assert_eq!(demangle("_ZN2ns5Klass6methodEi"), "ns::Klass::method(int)");
    }

    #[test]
    fn plain_and_garbage_unchanged() {
        assert_eq!(demangle("main"), "main");
        assert_eq!(demangle("_Z"), "_Z");
        assert_eq!(demangle("_ZN"), "_ZN");
        assert_eq!(demangle(""), "");
    }
}
