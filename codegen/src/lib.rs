//! `odata-codegen`: OData `$metadata` (V2, V3, V4) → one model → typed Rust entity crates.
//!
//! The pipeline is [`parse`] (XML → [`csdl::Document`]; V2/V3/V4 differences end in [`model`]) →
//! [`model`] (names, types, keys and selection resolved once) → [`emit`] (pure functions of the
//! model). The same engine serves three front ends: the `odatagen` CLI, the `generated` crate's
//! build.rs ([`build_support`]) and library users.

pub mod build_support;
pub mod config;
pub mod csdl;
pub mod diagnostics;
pub mod edm_types;
pub mod emit;
pub mod model;
pub mod naming;
pub mod parse;
pub mod service;
pub mod source;
pub mod sql;
pub mod write;

pub use diagnostics::{Diagnostic, Diagnostics, Severity};
pub use model::{build_model, BuildOptions, Model};

use std::path::{Path, PathBuf};

/// Reads and parses metadata files. Every file is read and parsed even when an earlier one fails,
/// so all problems are reported at once. Documents that are not well-formed XML are left out of
/// the result (their error is in the diagnostics).
pub fn load_documents(
    paths: &[PathBuf],
) -> (Vec<(source::SourceFile, csdl::Document)>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let mut out = Vec::new();
    for path in paths {
        let text = match read_text(path) {
            Ok(t) => t,
            Err(msg) => {
                diags.push(Diagnostic::error(msg).at(path, 0, 0));
                continue;
            }
        };
        let src = source::SourceFile::new(path.clone(), text);
        let idx = out.len() as u32;
        if let Some(doc) = parse::parse_document(&src, idx, &mut diags) {
            out.push((src, doc));
        }
    }
    (out, diags)
}

/// Reads a file as UTF-8 (a UTF-8 BOM is kept; the parser skips it).
fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 (invalid byte at offset {}); $metadata documents are UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}
