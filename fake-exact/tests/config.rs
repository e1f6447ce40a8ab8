//! `metadata-cache/exact/config.json` and `service.toml` follow `shared/design/config.md`, and
//! every entity's endpoint names an EntitySet of the document its path maps to.

mod common;

use fake_exact::metadata_convert::document_for_endpoint;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The keys config.md allows in an entry (extensions must be documented first).
const ALLOWED_KEYS: &[&str] = &[
    "endpoint",
    "ensure_division_column",
    "skip",
    "check_count",
    "one_division_only",
    "webhookTopics",
    "dependsOn",
];

/// The top-level object as a list, so that a duplicated entity name is visible (a map would
/// keep only the last one).
struct Entries(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of entities")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn config_text() -> String {
    std::fs::read_to_string(common::repo_root().join("metadata-cache/exact/config.json")).unwrap()
}

fn entries() -> Vec<(String, Value)> {
    serde_json::from_str::<Entries>(&config_text()).unwrap().0
}

fn config() -> BTreeMap<String, Value> {
    entries().into_iter().collect()
}

#[test]
fn config_json_has_only_documented_keys_with_the_right_types() {
    let entries = entries();
    let mut names = BTreeSet::new();
    for (name, entry) in &entries {
        assert!(names.insert(name.clone()), "entity {name} is listed twice");
        let obj = entry
            .as_object()
            .unwrap_or_else(|| panic!("{name}: not an object"));
        for (k, v) in obj {
            assert!(
                ALLOWED_KEYS.contains(&k.as_str()),
                "{name}: key {k} is not in config.md"
            );
            match k.as_str() {
                "endpoint" => assert!(v.is_string(), "{name}.{k}"),
                "webhookTopics" | "dependsOn" => assert!(
                    v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
                    "{name}.{k}: array of strings"
                ),
                _ => assert!(v.is_boolean(), "{name}.{k}: boolean"),
            }
        }
        assert!(obj.contains_key("endpoint"), "{name}: endpoint is required");
    }
}

#[test]
fn config_endpoints_name_entity_sets_of_their_documents() {
    let dir = common::repo_root().join("metadata-cache/exact");
    let files = common::xml_files_in(&dir);
    for (name, entry) in config() {
        let endpoint = entry["endpoint"].as_str().unwrap();
        let (file, set) = document_for_endpoint(endpoint)
            .unwrap_or_else(|| panic!("{name}: endpoint {endpoint} has no service segment"));
        let xml = files
            .get(&file)
            .unwrap_or_else(|| panic!("{name}: {endpoint} → {file}, which does not exist"));
        let root = common::parse_xml(xml).unwrap();
        let container = common::schema(&root).child("EntityContainer").unwrap();
        assert!(
            container
                .children_named("EntitySet")
                .any(|s| s.attr("Name") == Some(set.as_str())),
            "{name}: {endpoint} → no EntitySet {set} in {file}"
        );
    }
}

#[test]
fn config_dependencies_exist_and_have_no_cycle() {
    let cfg = config();
    let deps: BTreeMap<&str, Vec<&str>> = cfg
        .iter()
        .map(|(n, e)| {
            let d = e
                .get("dependsOn")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|v| v.as_str().unwrap()).collect())
                .unwrap_or_default();
            (n.as_str(), d)
        })
        .collect();
    for (n, ds) in &deps {
        for d in ds {
            assert!(deps.contains_key(d), "{n} depends on unknown {d}");
        }
    }
    // Kahn: every entity can be ordered.
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while done.len() < deps.len() {
        let ready: Vec<&str> = deps
            .iter()
            .filter(|(n, ds)| !done.contains(*n) && ds.iter().all(|d| done.contains(d)))
            .map(|(n, _)| *n)
            .collect();
        assert!(
            !ready.is_empty(),
            "dependency cycle among {:?}",
            deps.keys()
                .filter(|n| !done.contains(*n))
                .collect::<Vec<_>>()
        );
        done.extend(ready);
    }
}

#[test]
fn config_has_the_seed_entities() {
    let cfg = config();
    let flag = |n: &str, k: &str| cfg[n].get(k).cloned();
    for n in ["Divisions", "Me"] {
        assert_eq!(flag(n, "skip"), Some(Value::Bool(true)), "{n}");
        assert_eq!(
            flag(n, "ensure_division_column"),
            Some(Value::Bool(false)),
            "{n}"
        );
        assert_eq!(flag(n, "check_count"), Some(Value::Bool(false)), "{n}");
    }
    assert_eq!(cfg["Divisions"]["endpoint"], "system/Divisions");
    assert_eq!(cfg["Me"]["endpoint"], "current/Me");
    assert_eq!(
        cfg["GLAccounts"]["webhookTopics"],
        serde_json::json!(["GLAccounts"])
    );
    assert_eq!(
        cfg["Accounts"]["webhookTopics"],
        serde_json::json!(["Accounts"])
    );
    assert_eq!(
        flag("GLTransactionTypes", "one_division_only"),
        Some(Value::Bool(true))
    );
    assert_eq!(
        cfg["TransactionLines"]["dependsOn"],
        serde_json::json!(["GLAccounts", "Accounts"])
    );
    assert_eq!(
        cfg["SalesInvoiceLines"]["dependsOn"],
        serde_json::json!(["SalesInvoices"])
    );
    for n in [
        "Contacts",
        "Items",
        "Journals",
        "SalesInvoices",
        "SyncTransactionLines",
        "SyncAccounts",
        "BulkTransactionLines",
        "SyncDeleted",
    ] {
        assert!(cfg.contains_key(n), "{n}");
    }
    assert_eq!(
        cfg["SyncTransactionLines"]["endpoint"],
        "sync/Financial/TransactionLines"
    );
    assert_eq!(cfg["SyncDeleted"]["endpoint"], "sync/Deleted");
}

#[test]
fn service_toml_names_base_url_and_auth() {
    let text =
        std::fs::read_to_string(common::repo_root().join("metadata-cache/exact/service.toml"))
            .unwrap();
    let mut values = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').expect("key = value");
        values.insert(k.trim().to_string(), v.trim().to_string());
    }
    assert_eq!(
        values.get("base_url").map(String::as_str),
        Some("\"https://start.exactonline.nl/api/v1/{division}/\"")
    );
    assert_eq!(
        values.get("auth").map(String::as_str),
        Some("\"exact-oauth2\"")
    );
    assert_eq!(values.len(), 2, "{values:?}");
}
