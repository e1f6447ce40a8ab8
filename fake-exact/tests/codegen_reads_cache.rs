//! The cached Exact `$metadata` documents (metadata-cache/exact, written by the converter)
//! are read by our own generator (issue 5: "The converter's output parses with our generator
//! for every area"): every document parses without an error, and an area's model builds.

use odata_codegen::csdl::ODataVersion;
use odata_codegen::service::ServiceDir;
use std::path::{Path, PathBuf};

const CACHE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../metadata-cache/exact");

fn xml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_cached_document_parses_without_errors() {
    let paths = xml_files(Path::new(CACHE));
    assert!(paths.len() >= 50, "{} documents", paths.len());
    let (docs, diags) = odata_codegen::load_documents(&paths);
    assert!(!diags.has_errors(), "{diags}");
    assert_eq!(docs.len(), paths.len(), "{diags}");
    for (src, doc) in &docs {
        assert_eq!(
            doc.odata_version,
            Some(ODataVersion::V2),
            "{}",
            src.path.display()
        );
        let sets: usize = doc
            .schemas
            .iter()
            .flat_map(|s| &s.entity_containers)
            .map(|c| c.entity_sets.len())
            .sum();
        assert!(sets > 0, "{}: no entity set", src.path.display());
    }
}

/// One area on its own (`financialtransaction.xml`, with the service's `service.toml`) builds a
/// model with its entity sets; so does the whole service folder with its `config.json`.
#[test]
fn an_area_model_and_the_service_model_build() {
    let dir = std::env::temp_dir().join(format!("fake-exact-area-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["financialtransaction.xml", "service.toml"] {
        std::fs::copy(Path::new(CACHE).join(f), dir.join(f)).unwrap();
    }
    let area = ServiceDir::load(&dir).unwrap();
    let (model, diags) = area.model(false);
    std::fs::remove_dir_all(&dir).ok();
    assert!(!diags.has_errors(), "{diags}");
    let model = model.expect("model");
    for set in [
        "TransactionLines",
        "Transactions",
        "BankEntries",
        "CashEntries",
    ] {
        assert!(model.entity_sets.contains_key(set), "{set}");
    }
    let line = &model.entity_sets["TransactionLines"];
    assert!(model.types.contains_key(&line.entity_type));

    let service = ServiceDir::load(Path::new(CACHE)).unwrap();
    let (model, diags) = service.model(false);
    assert!(!diags.has_errors(), "{diags}");
    let model = model.expect("model");
    for set in [
        "GLAccounts",
        "Accounts",
        "TransactionLines",
        "SalesInvoiceLines",
    ] {
        assert!(model.entity_sets.contains_key(set), "{set}");
    }
}
