//! Every generated document is well-formed XML and a consistent OData V2 EDMX document, and it
//! says what the reference says: every documented property, in order, with its Edm type and
//! description.

mod common;

use common::{parse_xml, schema, Node};
use fake_exact::metadata_convert::{document_for_endpoint, NAMESPACE};
use std::collections::{BTreeMap, BTreeSet};

const EDMX_NS: &str = "http://schemas.microsoft.com/ado/2007/06/edmx";
const EDM_NS: &str = "http://schemas.microsoft.com/ado/2008/09/edm";

fn unqualify(name: &str) -> &str {
    name.strip_prefix(NAMESPACE)
        .and_then(|n| n.strip_prefix('.'))
        .unwrap_or_else(|| panic!("{name} is not in {NAMESPACE}"))
}

/// Checks one document; returns its entity type names.
fn check_document(file: &str, xml: &str) -> Vec<String> {
    let root = parse_xml(xml).unwrap_or_else(|e| panic!("{file}: not well-formed: {e}"));
    assert_eq!(root.attr("Version"), Some("1.0"), "{file}");
    assert_eq!(root.attr("xmlns:edmx"), Some(EDMX_NS), "{file}");
    let ds = root.child("edmx:DataServices").unwrap();
    assert_eq!(ds.attr("m:DataServiceVersion"), Some("2.0"), "{file}");
    let schema = schema(&root);
    assert_eq!(schema.attr("Namespace"), Some(NAMESPACE), "{file}");
    assert_eq!(schema.attr("xmlns"), Some(EDM_NS), "{file}");

    let types: BTreeMap<&str, &Node> = schema
        .children_named("EntityType")
        .map(|t| (t.attr("Name").unwrap(), t))
        .collect();
    assert_eq!(
        types.len(),
        schema.children_named("EntityType").count(),
        "{file}: duplicate EntityType names"
    );
    let associations: BTreeMap<&str, &Node> = schema
        .children_named("Association")
        .map(|a| (a.attr("Name").unwrap(), a))
        .collect();

    for (name, t) in &types {
        let ctx = format!("{file}: EntityType {name}");
        // element order: Key?, Property*, NavigationProperty*
        let order: Vec<&str> = t.children.iter().map(|c| c.name.as_str()).collect();
        let rank = |n: &str| match n {
            "Key" => 0,
            "Property" => 1,
            "NavigationProperty" => 2,
            other => panic!("{ctx}: unexpected child {other}"),
        };
        assert!(
            order.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
            "{ctx}: child order {order:?}"
        );
        let props: BTreeMap<&str, &Node> = t
            .children_named("Property")
            .map(|p| (p.attr("Name").unwrap(), p))
            .collect();
        assert_eq!(
            props.len(),
            t.children_named("Property").count(),
            "{ctx}: duplicate property"
        );
        let key: Vec<&str> = t
            .child("Key")
            .map(|k| {
                k.children_named("PropertyRef")
                    .map(|r| r.attr("Name").unwrap())
                    .collect()
            })
            .unwrap_or_default();
        for k in &key {
            let p = props
                .get(k)
                .unwrap_or_else(|| panic!("{ctx}: key {k} is not a property"));
            assert_eq!(p.attr("Nullable"), Some("false"), "{ctx}: key {k}");
        }
        for (pname, p) in &props {
            assert!(p.attr("Type").unwrap().starts_with("Edm."), "{ctx}.{pname}");
            if !key.contains(pname) {
                assert_eq!(
                    p.attr("Nullable"),
                    None,
                    "{ctx}.{pname}: non-key is nullable"
                );
            }
            // Documentation, if any, is the only child and holds one Summary
            for c in &p.children {
                assert_eq!(c.name, "Documentation", "{ctx}.{pname}");
                assert_eq!(c.children.len(), 1, "{ctx}.{pname}");
                assert_eq!(c.children[0].name, "Summary", "{ctx}.{pname}");
            }
        }
        for nav in t.children_named("NavigationProperty") {
            let rel = unqualify(nav.attr("Relationship").unwrap());
            let a = associations
                .get(rel)
                .unwrap_or_else(|| panic!("{ctx}: no Association {rel}"));
            let roles: Vec<&str> = a
                .children_named("End")
                .map(|e| e.attr("Role").unwrap())
                .collect();
            assert_eq!(roles.len(), 2, "{ctx}: {rel}");
            assert!(
                roles.contains(&nav.attr("FromRole").unwrap()),
                "{ctx}: {rel}"
            );
            assert!(roles.contains(&nav.attr("ToRole").unwrap()), "{ctx}: {rel}");
            assert!(!props.contains_key(nav.attr("Name").unwrap()), "{ctx}");
        }
    }
    for (name, a) in &associations {
        for end in a.children_named("End") {
            let t = unqualify(end.attr("Type").unwrap());
            assert!(
                types.contains_key(t),
                "{file}: Association {name} end type {t}"
            );
        }
    }

    let containers: Vec<&Node> = schema.children_named("EntityContainer").collect();
    assert_eq!(containers.len(), 1, "{file}");
    let c = containers[0];
    assert_eq!(c.attr("m:IsDefaultEntityContainer"), Some("true"), "{file}");
    let mut sets = BTreeMap::new();
    for s in c.children_named("EntitySet") {
        let t = unqualify(s.attr("EntityType").unwrap());
        assert!(types.contains_key(t), "{file}: EntitySet type {t}");
        assert!(
            sets.insert(s.attr("Name").unwrap(), t).is_none(),
            "{file}: duplicate set"
        );
    }
    assert_eq!(sets.len(), types.len(), "{file}: one set per type");
    for aset in c.children_named("AssociationSet") {
        let a = associations
            .get(unqualify(aset.attr("Association").unwrap()))
            .expect("AssociationSet names an Association");
        for end in aset.children_named("End") {
            let set = end.attr("EntitySet").unwrap();
            let role = end.attr("Role").unwrap();
            let assoc_end = a
                .children_named("End")
                .find(|e| e.attr("Role") == Some(role))
                .unwrap_or_else(|| panic!("{file}: role {role}"));
            assert_eq!(
                sets.get(set).copied(),
                Some(unqualify(assoc_end.attr("Type").unwrap())),
                "{file}: AssociationSet end {set}"
            );
        }
    }
    assert_eq!(
        c.children_named("AssociationSet").count(),
        associations.len(),
        "{file}"
    );
    types.keys().map(|t| t.to_string()).collect()
}

fn check_set(input: &str) {
    let conversion = common::convert_input(input);
    assert!(!conversion.files.is_empty());
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (file, xml) in &conversion.files {
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!-- Derived from Exact Online's REST API reference ("));
        for t in check_document(file, xml) {
            if let Some(other) = seen.insert(t.clone(), file.clone()) {
                panic!("{input}: EntityType {t} is in both {other} and {file} (one namespace)");
            }
        }
    }
}

#[test]
fn documents_2021_are_well_formed_and_consistent() {
    check_set(common::INPUT_2021);
}

#[test]
fn documents_2019_are_well_formed_and_consistent() {
    check_set(common::INPUT_2019);
}

#[test]
fn malformed_xml_is_detected() {
    assert!(parse_xml("<a><b></a></b>").is_err());
    assert!(parse_xml("<a>").is_err());
    assert!(parse_xml("<a>&nope;</a>").is_err());
    assert!(parse_xml("<a/><b/>").is_err());
    assert!(parse_xml("<a x=\"1\">t &amp; &#13;</a>").is_ok());
}

/// Finds the entity type behind an EntitySet of a parsed document.
fn entity_type<'a>(schema: &'a Node, set: &str) -> Option<&'a Node> {
    let container = schema.child("EntityContainer")?;
    let s = container
        .children_named("EntitySet")
        .find(|s| s.attr("Name") == Some(set))?;
    let t = unqualify(s.attr("EntityType")?);
    schema
        .children_named("EntityType")
        .find(|e| e.attr("Name") == Some(t))
}

fn check_faithful(input: &str) {
    let json: serde_json::Value = serde_json::from_str(&common::read_input(input)).unwrap();
    let conversion = common::convert_input(input);
    let mut parsed = BTreeMap::new();
    for (file, xml) in &conversion.files {
        parsed.insert(file.clone(), parse_xml(xml).unwrap());
    }
    let endpoints = json.as_object().unwrap();
    let mut checked = 0;
    for (name, ep) in endpoints {
        let uri = ep["uri"].as_str().unwrap();
        let path = uri
            .strip_prefix("/api/v1/{division}/")
            .or_else(|| uri.strip_prefix("/api/v1/"))
            .unwrap();
        let (file, set) = document_for_endpoint(path).unwrap();
        let root = parsed
            .get(&file)
            .unwrap_or_else(|| panic!("{name}: no {file}"));
        let t = entity_type(schema(root), &set)
            .unwrap_or_else(|| panic!("{name}: no EntitySet {set} in {file}"));
        let tname = t.attr("Name").unwrap();
        let block = {
            let xml = &conversion.files[&file];
            let start = xml.find(&format!("<EntityType Name=\"{tname}\">")).unwrap();
            let end = start + xml[start..].find("</EntityType>").unwrap();
            xml[start..end].to_string()
        };
        let mut expected = Vec::new();
        let mut flagged_key = Vec::new();
        for p in ep["properties"].as_array().unwrap() {
            let pname = p["name"].as_str().unwrap();
            let ty = p["type"].as_str().unwrap();
            let desc = p["description"].as_str().unwrap_or("");
            if ty.starts_with("Edm.") {
                expected.push((pname.to_string(), ty.to_string(), desc.to_string()));
                if p["primaryKey"].as_bool() == Some(true) {
                    flagged_key.push(pname.to_string());
                }
            } else {
                let as_nav = t
                    .children_named("NavigationProperty")
                    .any(|n| n.attr("Name") == Some(pname));
                let as_comment =
                    block.contains(&format!("<!-- omitted navigation: {pname} ({ty}) -->"));
                assert!(
                    as_nav ^ as_comment,
                    "{name}.{pname}: navigation neither emitted nor listed"
                );
            }
        }
        let actual: Vec<(String, String, String)> = t
            .children_named("Property")
            .map(|p| {
                let summary = p
                    .child("Documentation")
                    .and_then(|d| d.child("Summary"))
                    .map(|s| s.text.clone())
                    .unwrap_or_default();
                (
                    p.attr("Name").unwrap().to_string(),
                    p.attr("Type").unwrap().to_string(),
                    summary,
                )
            })
            .collect();
        let expected: Vec<(String, String, String)> = expected
            .into_iter()
            .map(|(n, t, d)| {
                (
                    n,
                    t,
                    if d.trim().is_empty() {
                        String::new()
                    } else {
                        d
                    },
                )
            })
            .collect();
        assert_eq!(actual, expected, "{input}: {name}");
        let key: Vec<&str> = t
            .child("Key")
            .map(|k| {
                k.children_named("PropertyRef")
                    .map(|r| r.attr("Name").unwrap())
                    .collect()
            })
            .unwrap_or_default();
        if !flagged_key.is_empty() {
            assert_eq!(key, flagged_key, "{input}: {name} key");
        }
        checked += 1;
    }
    assert_eq!(checked, endpoints.len());
}

#[test]
fn every_documented_property_is_emitted_in_order_2021() {
    check_faithful(common::INPUT_2021);
}

#[test]
fn every_documented_property_is_emitted_in_order_2019() {
    check_faithful(common::INPUT_2019);
}

/// Sync types: `Timestamp` Edm.Int64 first, a key, no navigation; bulk types: the standard
/// endpoint's properties.
#[test]
fn sync_and_bulk_documents_2021() {
    let conversion = common::convert_input(common::INPUT_2021);
    let mut sync_types = BTreeSet::new();
    for (file, xml) in &conversion.files {
        let root = parse_xml(xml).unwrap();
        let schema = schema(&root);
        if file.starts_with("sync.") {
            for t in schema.children_named("EntityType") {
                let name = t.attr("Name").unwrap();
                assert!(name.ends_with("Sync"), "{file}: {name}");
                let first = t.child("Property").unwrap();
                assert_eq!(first.attr("Name"), Some("Timestamp"), "{file}: {name}");
                assert_eq!(first.attr("Type"), Some("Edm.Int64"), "{file}: {name}");
                assert!(t.child("Key").is_some(), "{file}: {name}");
                assert!(t.child("NavigationProperty").is_none(), "{file}: {name}");
                sync_types.insert(name.to_string());
            }
        }
        if file.starts_with("bulk.") {
            for t in schema.children_named("EntityType") {
                assert!(t.attr("Name").unwrap().ends_with("Bulk"), "{file}");
            }
        }
    }
    for t in [
        "DeletedSync",
        "TransactionLineSync",
        "AccountSync",
        "GLAccountSync",
        "SalesInvoiceSync",
    ] {
        assert!(sync_types.contains(t), "{t}");
    }
    // bulk/CRM/Accounts has exactly crm/Accounts' properties
    let props = |file: &str, set: &str| -> Vec<(String, String)> {
        let root = parse_xml(&conversion.files[file]).unwrap();
        entity_type(schema(&root), set)
            .unwrap()
            .children_named("Property")
            .map(|p| {
                (
                    p.attr("Name").unwrap().to_string(),
                    p.attr("Type").unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        props("bulk.crm.xml", "Accounts"),
        props("crm.xml", "Accounts")
    );
    let mut sync_accounts = props("sync.crm.xml", "Accounts");
    assert_eq!(
        sync_accounts.remove(0),
        ("Timestamp".into(), "Edm.Int64".into())
    );
    assert_eq!(sync_accounts, props("crm.xml", "Accounts"));
    // the deletion log (exact-online.md §1.4)
    let deleted = props("sync.xml", "Deleted");
    let names: Vec<&str> = deleted.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Timestamp",
            "DeletedBy",
            "DeletedDate",
            "Division",
            "EntityKey",
            "EntityType",
            "ID"
        ]
    );
}
