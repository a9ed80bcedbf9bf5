//! Resolves an XML entity or character reference met while reading a rendered SVG/HTML
//! file. Shared by `common/reports.rs` and `render_common.rs`, each including it with
//! `#[path]`.

use quick_xml::events::BytesRef;

/// The text `r` stands for. Only the five predefined entities exist in peakprof's output;
/// anything else fails the test (`what` names the file in the message).
pub fn resolve(r: &BytesRef<'_>, what: &str) -> String {
    match r
        .resolve_char_ref()
        .unwrap_or_else(|e| panic!("{what}: bad character reference: {e}"))
    {
        Some(c) => c.to_string(),
        None => match &*r.decode().unwrap() {
            "amp" => "&".to_string(),
            "lt" => "<".to_string(),
            "gt" => ">".to_string(),
            "quot" => "\"".to_string(),
            "apos" => "'".to_string(),
            other => panic!("{what}: undefined entity &{other};"),
        },
    }
}
