//! Every corpus file generates, with the default selection (every entity set and singleton), a
//! crate that compiles with `-D warnings`. One workspace per test so cargo builds the
//! dependencies once and the crates in parallel.

mod common;

use common::*;
use odata_codegen::model::selection::Selection;
use std::path::PathBuf;

const LARGE_BYTES: u64 = 1_000_000;

fn corpus_files() -> Vec<PathBuf> {
    let mut v = xml_files(&corpus().join("metadata"));
    v.extend(xml_files(&corpus().join("metadata-synthetic")));
    v
}

fn compile(files: Vec<PathBuf>, ws: &str) {
    assert!(!files.is_empty());
    let root = repo().join("target").join(ws);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let mut members = Vec::new();
    for f in &files {
        let lenient = NEEDS_LENIENT.contains(&file_name(f).as_str());
        let name = crate_name_for(f);
        generate_member(
            std::slice::from_ref(f),
            Selection::All,
            lenient,
            &root,
            &name,
        );
        members.push(name);
    }
    if let Err(e) = cargo_check_workspace(&root, &members) {
        panic!(
            "generated crates in {} do not compile:\n{e}",
            root.display()
        );
    }
    eprintln!("{} crates compiled: {}", members.len(), members.join(", "));
}

#[test]
fn corpus_below_1mb_compiles() {
    let files: Vec<PathBuf> = corpus_files()
        .into_iter()
        .filter(|f| {
            std::fs::metadata(f)
                .map(|m| m.len() < LARGE_BYTES)
                .unwrap_or(false)
        })
        .collect();
    assert!(files.len() >= 50, "{}", files.len());
    compile(files, "corpus-small");
}

#[test]
fn corpus_above_1mb_compiles() {
    let files: Vec<PathBuf> = corpus_files()
        .into_iter()
        .filter(|f| {
            std::fs::metadata(f)
                .map(|m| m.len() >= LARGE_BYTES)
                .unwrap_or(false)
        })
        .collect();
    assert!(files.len() >= 6, "{}", files.len());
    compile(files, "corpus-large");
}

#[test]
fn broken_references_need_lenient_and_say_so() {
    for name in NEEDS_LENIENT {
        let f = [
            corpus().join("metadata"),
            corpus().join("metadata-synthetic"),
        ]
        .iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} not in the corpus"));
        let (m, diags) = model(std::slice::from_ref(&f), Selection::All, false);
        assert!(m.is_none(), "{name} should not generate without --lenient");
        let first = diags.errors().next().expect("an error").to_string();
        assert!(
            first.contains(name) && first.contains("--lenient"),
            "{first}"
        );
        let (m, diags) = model(&[f], Selection::All, true);
        assert!(
            m.is_some(),
            "{name} should generate with --lenient:\n{diags}"
        );
    }
}
