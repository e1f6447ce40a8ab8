//! The checked-in documents are exactly what the converter produces now: nobody edits them by
//! hand, and a converter change that alters them must come with the regenerated files
//! (commands in the `fake_exact::metadata_convert` docs).

mod common;

use std::collections::BTreeMap;

fn assert_same_files(dir: &str, expected: &BTreeMap<String, String>, regenerate: &str) {
    let actual = common::xml_files_in(&common::repo_root().join(dir));
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<&String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let differing: Vec<&String> = expected
        .iter()
        .filter(|(k, v)| actual.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differing.is_empty(),
        "{dir} is out of date: missing {missing:?}, not produced by the converter {extra:?}, differing {differing:?}\n\
regenerate with: cargo run -p fake-exact --bin exact-metadata -- --input ../shared/corpus/exact-online/{regenerate} --out {dir} --prune"
    );
}

#[test]
fn checked_in_documents_match_the_converter() {
    let c = common::convert_input(common::INPUT_2021);
    assert_same_files("metadata-cache/exact", &c.files, common::INPUT_2021);
}

#[test]
fn fixtures_2019_match_the_converter() {
    let c = common::convert_input(common::INPUT_2019);
    assert_same_files("tests/fixtures/exact-2019", &c.files, common::INPUT_2019);
}

#[test]
fn conversion_summary_2021() {
    let r = common::convert_input(common::INPUT_2021).report;
    assert_eq!(r.keyless, ["read/logistics/StockPosition"]);
    assert_eq!(
        r.id_key_fallbacks,
        ["read/payroll/EmploymentEndReasonsOnFocusDate"]
    );
    assert_eq!(r.documented_variants, ["bulk/Financial/TransactionLines"]);
    // 161 scraped endpoints + derived sync (incl. sync/Deleted) and bulk endpoints
    assert_eq!(
        r.entity_types,
        161 + r.derived_sync.len() + r.derived_bulk.len()
    );
    for path in [
        "sync/Deleted",
        "sync/Financial/TransactionLines",
        "sync/Financial/GLAccounts",
        "sync/CRM/Accounts",
        "sync/SalesInvoice/SalesInvoices",
    ] {
        assert!(r.derived_sync.iter().any(|p| p == path), "{path}");
    }
    for path in [
        "bulk/CRM/Accounts",
        "bulk/Financial/GLAccounts",
        "bulk/SalesInvoice/SalesInvoiceLines",
    ] {
        assert!(r.derived_bulk.iter().any(|p| p == path), "{path}");
    }
    // every omitted navigation is explained in its document
    assert!(r.omitted_navigations.iter().all(|o| o.contains(".xml: ")));
}

#[test]
fn conversion_summary_2019() {
    let r = common::convert_input(common::INPUT_2019).report;
    assert_eq!(r.keyless, ["read/logistics/StockPosition"]);
    assert!(r.id_key_fallbacks.is_empty());
    assert_eq!(
        r.entity_types,
        156 + r.derived_sync.len() + r.derived_bulk.len()
    );
}
