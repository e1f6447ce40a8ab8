//! The messages users see for broken metadata: `FILE:LINE:COL: error|warning: message`, pinned as
//! snapshots for the RESO negative inputs and our own broken fixtures.

mod common;

use common::*;
use odata_codegen::model::selection::Selection;
use std::path::Path;

fn messages(f: &Path) -> String {
    let (_, diags) = model(&[f.to_path_buf()], Selection::All, false);
    let dir = f.parent().unwrap().display().to_string();
    diags
        .0
        .iter()
        .map(|d| d.to_string().replace(&format!("{dir}/"), ""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn invalid_corpus_and_broken_fixtures() {
    let mut files = xml_files(&corpus().join("metadata-invalid"));
    files.extend(xml_files(&fixtures().join("broken")));
    assert!(files.len() >= 10);
    for f in files {
        let text = messages(&f);
        assert!(!text.is_empty(), "{} gives no diagnostic", f.display());
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        insta::with_settings!({ snapshot_path => "snapshots/diagnostics", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name, text);
        });
    }
}

#[test]
fn positions_count_characters_on_cyrillic_lines() {
    let f = fixtures()
        .join("broken")
        .join("unknown_type_cyrillic_columns.xml");
    let text = messages(&f);
    // `        <Property Name="Сумма" Type="Edm.Деньги"/>` is line 8; the element starts at column 9.
    assert!(
        text.contains("unknown_type_cyrillic_columns.xml:8:9: error: unknown type 'Edm.Деньги'"),
        "{text}"
    );
}
