//! Golden snapshots (insta) of the generated code for a representative set of services and for
//! every synthetic and adversarial fixture; the adversarial ones and the Graph subset are also
//! compiled. Update with `cargo insta review` or `INSTA_UPDATE=always cargo test -p odata-tests --test golden`.

mod common;

use common::*;
use odata_codegen::emit::rust::{emit_crate, CrateOptions};
use odata_codegen::model::selection::Selection;
use std::path::PathBuf;

/// The generated crate as one text: every file with a header line, in path order.
fn crate_text(files: &[PathBuf], selection: Selection, lenient: bool) -> String {
    let (m, diags) = model(files, selection, lenient);
    let m = m.unwrap_or_else(|| panic!("model failed:\n{diags}"));
    let opts = CrateOptions {
        name: "golden".into(),
        runtime_dependency: "{ path = \"../runtime\", default-features = false }".into(),
        standalone: true,
        tables: Vec::new(),
    };
    let out = emit_crate(&m, &opts).expect("emit");
    let mut text = String::new();
    for (path, body) in out {
        text.push_str(&format!("=== {path} ===\n{body}\n"));
    }
    text
}

fn snap(name: &str, files: &[PathBuf], selection: Selection, lenient: bool) {
    let text = crate_text(files, selection.clone(), lenient);
    // Same input, same bytes.
    assert_eq!(
        text,
        crate_text(files, selection, lenient),
        "{name}: output is not deterministic"
    );
    insta::with_settings!({ snapshot_path => "snapshots/golden", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(name, text);
    });
}

fn meta(name: &str) -> PathBuf {
    corpus().join("metadata").join(name)
}

#[test]
fn northwind_v2() {
    snap(
        "northwind_v2",
        &[meta("northwind-v2__service.xml")],
        Selection::All,
        false,
    );
}

#[test]
fn northwind_v4() {
    snap(
        "northwind_v4",
        &[meta("northwind-v4__northwind-metadata.xml")],
        Selection::All,
        false,
    );
}

#[test]
fn trippin() {
    snap(
        "trippin",
        &[meta("trippin-v4__TripPinServiceRW.xml")],
        Selection::All,
        false,
    );
}

#[test]
fn gwsample_basic() {
    snap(
        "gwsample_basic",
        &[meta("sap-gateway-demo__GWSAMPLE_BASIC.xml")],
        Selection::All,
        false,
    );
}

#[test]
fn api_business_partner() {
    snap(
        "api_business_partner",
        &[meta("sap-s4hana__API_BUSINESS_PARTNER.xml")],
        Selection::All,
        false,
    );
}

#[test]
fn one_c_cyrillic() {
    snap(
        "1c_cyrillic",
        &[meta("1c-enterprise__StandardODATA_Russian.xml")],
        Selection::All,
        false,
    );
}

#[test]
fn graph_subset() {
    snap(
        "graph_subset",
        &[meta("msgraph__v1.0-Prod.csdl.xml")],
        graph_selection(),
        false,
    );
}

fn graph_selection() -> Selection {
    Selection::Names(vec!["drives".into(), "places".into(), "invitations".into()])
}

#[test]
fn every_synthetic_file() {
    for f in xml_files(&corpus().join("metadata-synthetic")) {
        let lenient = NEEDS_LENIENT.contains(&file_name(&f).as_str());
        let name = format!("synthetic__{}", f.file_stem().unwrap().to_string_lossy());
        snap(&name, &[f], Selection::All, lenient);
    }
}

#[test]
fn every_adversarial_fixture() {
    for f in xml_files(&fixtures().join("adversarial")) {
        let name = format!("adversarial__{}", f.file_stem().unwrap().to_string_lossy());
        snap(&name, &[f], Selection::All, false);
    }
}

#[test]
fn adversarial_fixtures_and_graph_subset_compile() {
    let root = repo().join("target").join("golden-compile");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let mut members = Vec::new();
    for f in xml_files(&fixtures().join("adversarial")) {
        let name = crate_name_for(&f);
        generate_member(
            std::slice::from_ref(&f),
            Selection::All,
            false,
            &root,
            &name,
        );
        members.push(name);
    }
    generate_member(
        &[meta("msgraph__v1.0-Prod.csdl.xml")],
        graph_selection(),
        false,
        &root,
        "g-graph-subset",
    );
    members.push("g-graph-subset".into());
    if let Err(e) = cargo_check_workspace(&root, &members) {
        panic!("adversarial crates do not compile:\n{e}");
    }
}
