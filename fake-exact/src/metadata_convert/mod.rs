//! `exact-metadata`: OData V2 `$metadata` documents for Exact Online, derived from the scraped
//! REST API reference.
//!
//! Exact serves one `$metadata` document per API area (`GET /api/v1/{division}/financial/$metadata`,
//! OData V2, WCF) but only to an authenticated division, and nobody has published one
//! (`shared/corpus/SOURCES.md`, "exact-online/"). The best public substitute is the JSON that
//! `exact-online-meta-data-tool` scraped from Exact's reference pages: per endpoint its `uri`, and
//! per property its name, Edm type, description and `primaryKey` flag. [`convert`] turns that
//! JSON into one EDMX document per area, deterministically (sorted, no timestamps).
//!
//! # Documents and file names
//!
//! An endpoint's path is its `uri` without `/api/v1/{division}/` (or `/api/v1/` for the two
//! endpoints without a division, `current/Me` and, in 2021, `system/Users`). Its `$metadata` is
//! the path with the last segment replaced by `$metadata` (`shared/design/config.md`), so the
//! document is named by **the path without its last segment, lower-cased, `/` → `.`, plus
//! `.xml`**:
//!
//! | endpoint | `$metadata` | file |
//! |---|---|---|
//! | `financial/GLAccounts` | `financial/$metadata` | `financial.xml` |
//! | `current/Me` | `current/$metadata` | `current.xml` |
//! | `read/financial/ReceivablesList` | `read/financial/$metadata` | `read.financial.xml` |
//! | `sync/Financial/TransactionLines` | `sync/Financial/$metadata` | `sync.financial.xml` |
//! | `bulk/CRM/Accounts` | `bulk/CRM/$metadata` | `bulk.crm.xml` |
//! | `sync/Deleted` | `sync/$metadata` | `sync.xml` |
//!
//! Lower-case because Exact matches paths case-insensitively and clients spell them both ways
//! (`crm/Accounts`, `CRM/Accounts`; exact-online.md §1.2). [`document_for_endpoint`] implements
//! the rule for consumers (a `config.json` `endpoint` → file name and EntitySet name).
//! The **EntitySet name is the last path segment** (`TransactionLines` in `sync.financial.xml`),
//! which is what the URL addresses; it is unique within a document because the document is the
//! URL prefix.
//!
//! # Entity types
//!
//! * One namespace for every document, `Exact.Web.Api.Models` (what `__metadata.type` shows for
//!   most entities: `Exact.Web.Api.Models.Account`, `.SalesInvoice`, `.GLAccountSync`; a few areas
//!   use sub-namespaces, e.g. `Exact.Web.Api.Models.System.Me`, `.Webhooks.WebhookSubscription`,
//!   which the reference does not tell for the others, so they are not reproduced). Type names
//!   are therefore unique across all documents, so that a consumer can load them all together.
//! * Name: the singular of the endpoint name ([`naming::singularize`]: `GLAccounts` →
//!   `GLAccount`, `Opportunities` → `Opportunity`, `Me` stays), plus the suffix `Sync` for
//!   endpoints under `sync/` and `Bulk` under `bulk/` (`TransactionLineSync`, `AccountBulk`,
//!   `DeletedSync`). `Sync` is Exact's own convention (`Exact.Web.Api.Models.GLAccountSync` for
//!   `sync/Financial/GLAccounts`, picqer#652); `Bulk` is by analogy (unconfirmed). If two endpoints
//!   still map to one name, each of them is prefixed with its Pascal-cased document path
//!   (`system/Users` → `SystemUser`, `users/Users` → `UsersUser`); a remaining clash is an error.
//! * Properties: every documented property with an `Edm.*` type, in the reference's order, with
//!   its description as `<Documentation><Summary>`. Key properties `Nullable="false"`, the rest
//!   without `Nullable` (nullable; the reference does not document nullability).
//! * Key: the `primaryKey` flags; none flagged → `ID` if present (said in a comment); else no
//!   `<Key>` and the endpoint is listed in the [`Report`] as keyless.
//! * The other "types" (~45: `SalesOrderLines`, `Exact.Web.Api.Models.HRM.DivisionClass`) are
//!   expanded collections / nested types, i.e. navigation properties. One becomes a V2
//!   `NavigationProperty` with an `Association` (entity `1` to set type `*`, no referential
//!   constraint) and an `AssociationSet` when its type names an EntitySet of the same document
//!   (case-insensitively); otherwise it is omitted and listed in a comment inside its entity type:
//!   `<!-- omitted navigation: BankAccounts (BankAccounts) -->`.
//!
//! # Sync and bulk endpoints
//!
//! The scrape has (almost) none: it is keyed by endpoint name, so `sync/CRM/Accounts` collapsed
//! into `crm/Accounts`. [`derived`] lists them (from picqer/exact-php-client's models, the source
//! exact-online.md §1.2 cites) with their standard counterpart, and the converter derives:
//!
//! * bulk (`bulk/CRM/Accounts`): the standard endpoint's properties, key and navigations
//!   (exact-online.md §1.2: same properties, GET only, 1000 rows per page);
//! * sync (`sync/CRM/Accounts`): `Timestamp` `Edm.Int64` first (the row-version cursor, §1.3),
//!   then the standard endpoint's properties; nested collections dropped (§6: sync models have
//!   none); keyed like the standard entity (mostly `ID`, `EntryID` for GoodsDeliveries and
//!   Subscriptions), because rows are one per entity and `Timestamp` is only the cursor (§6:
//!   "FRETJE and DEMO key rows by ID … which is the correct model"; picqer and Airbyte declare
//!   `Timestamp` as key, which would let one entity appear as several rows). The four line-level
//!   syncs (`sync/SalesInvoice/SalesInvoices`, `sync/SalesOrder/SalesOrders`,
//!   `sync/CRM/Quotations`, `sync/PurchaseOrder/PurchaseOrders`) return one row per *line* with the
//!   header fields repeated; they get the header's properties plus the line endpoint's missing
//!   ones, keyed by the line's key (`ID`);
//! * `sync/Deleted` from exact-online.md §1.4 (`ID` key, `Timestamp`, `EntityKey`, `EntityType`, …).
//!
//! A derived entity type is marked `DERIVED` in the comment before it. An endpoint of the
//! tables whose standard counterpart the input lacks is not emitted; it is listed in the
//! document's comment (when the document exists) and in the [`Report`]. If the reference itself
//! documents a sync/bulk endpoint (the 2019 and 2021 scrapes have `bulk/Financial/TransactionLines`),
//! the scraped one is used.
//!
//! # Regenerating the checked-in documents
//!
//! ```text
//! cargo run -p fake-exact --bin exact-metadata -- \
//!     --input ../shared/corpus/exact-online/picqer-generator-2021-06__meta-data.json --out metadata-cache/exact
//! cargo run -p fake-exact --bin exact-metadata -- \
//!     --input ../shared/corpus/exact-online/dev-tools-2019-12__meta-data.json --out tests/fixtures/exact-2019
//! ```
//! The test `checked_in_documents_match_the_converter` fails when they differ from what
//! [`convert`] produces now.

pub mod derived;
mod emit;
pub mod input;
mod model;
pub mod naming;
mod xml;

use std::collections::BTreeMap;
use std::fmt;

/// The one schema namespace of every generated document.
pub const NAMESPACE: &str = "Exact.Web.Api.Models";

/// Something in the input that prevents a faithful document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    EmptyReference,
    BadUri {
        endpoint: String,
        uri: String,
    },
    BadPropertyName {
        endpoint: String,
        property: String,
    },
    DuplicateProperty {
        endpoint: String,
        property: String,
    },
    UnknownEdmType {
        endpoint: String,
        property: String,
        edm_type: String,
    },
    KeyNotPrimitive {
        endpoint: String,
        property: String,
        ty: String,
    },
    DuplicatePath {
        path: String,
        first: String,
        second: String,
    },
    DuplicateTypeName {
        name: String,
        first: String,
        second: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::EmptyReference => write!(f, "the reference has no endpoints"),
            Problem::BadUri { endpoint, uri } => write!(
                f,
                "endpoint '{endpoint}': uri '{uri}' is not /api/v1/[{{division}}/]<service>/<Entity> \
with identifier segments"
            ),
            Problem::BadPropertyName { endpoint, property } => write!(
                f,
                "endpoint '{endpoint}': property name '{property}' is not an OData identifier"
            ),
            Problem::DuplicateProperty { endpoint, property } => {
                write!(f, "endpoint '{endpoint}': property '{property}' is listed twice")
            }
            Problem::UnknownEdmType {
                endpoint,
                property,
                edm_type,
            } => write!(
                f,
                "endpoint '{endpoint}': property '{property}' has type '{edm_type}', not an OData V2 primitive"
            ),
            Problem::KeyNotPrimitive {
                endpoint,
                property,
                ty,
            } => write!(
                f,
                "endpoint '{endpoint}': key property '{property}' has the non-Edm type '{ty}'"
            ),
            Problem::DuplicatePath {
                path,
                first,
                second,
            } => write!(
                f,
                "endpoints '{first}' and '{second}' both have the path '{path}'"
            ),
            Problem::DuplicateTypeName {
                name,
                first,
                second,
            } => write!(
                f,
                "'{first}' and '{second}' both map to the schema name '{name}'; extend the naming rules in metadata_convert::naming"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("the input is not the reference JSON (an object of endpoints): {0}")]
    Json(#[from] serde_json::Error),
    #[error("{} problem(s) in the reference:\n{}", .0.len(), list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a conversion did, for the binary's summary and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Number of documents (areas).
    pub documents: usize,
    pub entity_types: usize,
    /// `Property` elements.
    pub properties: usize,
    /// `NavigationProperty` elements.
    pub navigation_properties: usize,
    /// `file: Type.Property (target)`.
    pub omitted_navigations: Vec<String>,
    /// `file: Type.Property (target)` of standard endpoints, dropped from derived sync types.
    pub sync_dropped_navigations: Vec<String>,
    /// Endpoint paths without a key.
    pub keyless: Vec<String>,
    /// Endpoint paths keyed by the `ID` fallback.
    pub id_key_fallbacks: Vec<String>,
    /// Derived sync endpoint paths (including `sync/Deleted`).
    pub derived_sync: Vec<String>,
    /// Derived bulk endpoint paths.
    pub derived_bulk: Vec<String>,
    /// Sync/bulk endpoint paths of [`derived`] that the reference documents itself.
    pub documented_variants: Vec<String>,
    /// `path: reason` of sync/bulk endpoints that could not be derived.
    pub not_derived: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} documents, {} entity types, {} properties, {} navigation properties",
            self.documents, self.entity_types, self.properties, self.navigation_properties
        )?;
        writeln!(
            f,
            "derived: {} sync, {} bulk; documented by the reference itself: {}",
            self.derived_sync.len(),
            self.derived_bulk.len(),
            if self.documented_variants.is_empty() {
                "none".to_string()
            } else {
                self.documented_variants.join(", ")
            }
        )?;
        let sections: [(&str, &Vec<String>); 5] = [
            ("keyless endpoints (no primaryKey, no ID)", &self.keyless),
            ("keyed by the ID fallback", &self.id_key_fallbacks),
            ("omitted navigations", &self.omitted_navigations),
            (
                "navigations dropped from derived sync types",
                &self.sync_dropped_navigations,
            ),
            ("sync/bulk endpoints not emitted", &self.not_derived),
        ];
        for (title, items) in sections {
            writeln!(f, "{title}: {}", items.len())?;
            for item in items {
                writeln!(f, "  {item}")?;
            }
        }
        Ok(())
    }
}

/// The documents and the report of one conversion.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// File name (`crm.xml`, `sync.financial.xml`) → document.
    pub files: BTreeMap<String, String>,
    pub report: Report,
}

/// Converts the scraped reference JSON into `file name → EDMX document`. `source_label` names
/// the input in each document's header comment (see [`default_source_label`]).
pub fn convert(
    input_json: &str,
    source_label: &str,
) -> Result<BTreeMap<String, String>, ConvertError> {
    convert_with_report(input_json, source_label).map(|c| c.files)
}

/// [`convert`], plus what it did.
pub fn convert_with_report(
    input_json: &str,
    source_label: &str,
) -> Result<Conversion, ConvertError> {
    let reference: input::RawReference = serde_json::from_str(input_json)?;
    let model = model::build(&reference).map_err(ConvertError::Invalid)?;
    let mut files = BTreeMap::new();
    for (name, doc) in &model.documents {
        files.insert(name.clone(), emit::document(&model, doc, source_label));
    }
    Ok(Conversion {
        files,
        report: report(&model),
    })
}

fn report(model: &model::Model) -> Report {
    let mut r = Report {
        documents: model.documents.len(),
        entity_types: model.entities.len(),
        documented_variants: model.documented_variants.clone(),
        not_derived: model
            .not_derived
            .iter()
            .map(|(p, why)| format!("{p}: {why}"))
            .collect(),
        ..Report::default()
    };
    for (e, navs) in model.entities.iter().zip(&model.navs) {
        let file = e.file_name();
        r.properties += e.properties.len();
        r.navigation_properties += navs.resolved.len();
        for o in &navs.omitted {
            r.omitted_navigations
                .push(format!("{file}: {}.{} ({})", e.type_name, o.name, o.target));
        }
        for o in &e.dropped_navs {
            r.sync_dropped_navigations
                .push(format!("{file}: {}.{} ({})", e.type_name, o.name, o.target));
        }
        match e.key_source {
            model::KeySource::Keyless => r.keyless.push(e.path()),
            model::KeySource::IdFallback => r.id_key_fallbacks.push(e.path()),
            model::KeySource::Documented => {}
        }
        match e.origin {
            model::Origin::DerivedSync { .. } | model::Origin::SyncDeleted => {
                r.derived_sync.push(e.path())
            }
            model::Origin::DerivedBulk { .. } => r.derived_bulk.push(e.path()),
            model::Origin::Reference => {}
        }
    }
    for v in [
        &mut r.omitted_navigations,
        &mut r.sync_dropped_navigations,
        &mut r.keyless,
        &mut r.id_key_fallbacks,
        &mut r.derived_sync,
        &mut r.derived_bulk,
    ] {
        v.sort();
    }
    r
}

/// Where a `config.json` `endpoint` is described: `(file name, EntitySet name)`.
/// `"/financial/GLAccounts"` → `("financial.xml", "GLAccounts")`,
/// `"sync/Financial/TransactionLines"` → `("sync.financial.xml", "TransactionLines")`.
/// `None` for fewer than two segments.
pub fn document_for_endpoint(endpoint: &str) -> Option<(String, String)> {
    let segs: Vec<String> = endpoint
        .trim_start_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    if segs.len() < 2 || segs.iter().any(String::is_empty) {
        return None;
    }
    let (last, doc) = segs.split_last()?;
    Some((naming::document_file_name(doc), last.clone()))
}

/// The label for an input file name: `picqer-generator-2021-06__meta-data.json` →
/// `picqer-generator-2021-06__meta-data.json, scraped June 2021` (the corpus names carry the
/// scrape's year and month before `__`); any other name is used as it is.
pub fn default_source_label(file_name: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let stem = file_name.split("__").next().unwrap_or("");
    let parts: Vec<&str> = stem.rsplitn(3, '-').collect();
    if let [month, year, _] = parts.as_slice() {
        if year.len() == 4 && year.chars().all(|c| c.is_ascii_digit()) {
            if let Ok(m) = month.parse::<usize>() {
                if (1..=12).contains(&m) && month.len() == 2 {
                    return format!("{file_name}, scraped {} {year}", MONTHS[m - 1]);
                }
            }
        }
    }
    file_name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(uri: &str, props: &str) -> String {
        format!(
            r#"{{"X": {{"endpoint": "X", "documentation": "https://example/doc?name=X", "scope": "S",
            "uri": "{uri}", "supportedMethods": {{"get": true, "post": false}}, "properties": [{props}]}}}}"#
        )
    }

    fn prop(name: &str, ty: &str, key: bool, desc: &str) -> String {
        serde_json::json!({"name": name, "type": ty, "primaryKey": key, "description": desc})
            .to_string()
    }

    #[test]
    fn descriptions_are_xml_escaped() {
        let json = one(
            "/api/v1/{division}/crm/Things",
            &[
                prop("ID", "Edm.Guid", true, "Primary key"),
                prop(
                    "Notes",
                    "Edm.String",
                    false,
                    r#"Fish & chips <b>bold</b> "quoted" 'single' 10 > 9"#,
                ),
            ]
            .join(","),
        );
        let files = convert(&json, "test").unwrap();
        let xml = &files["crm.xml"];
        assert!(xml.contains(
            "<Summary>Fish &amp; chips &lt;b&gt;bold&lt;/b&gt; \"quoted\" 'single' 10 &gt; 9</Summary>"
        ));
        assert!(!xml.contains("<b>"));
    }

    #[test]
    fn key_fallback_to_id_and_keyless() {
        let json = format!(
            r#"{{"A": {{"uri": "/api/v1/{{division}}/x/As", "properties": [{}, {}]}},
                "B": {{"uri": "/api/v1/{{division}}/x/Bs", "properties": [{}]}}}}"#,
            prop("Code", "Edm.String", false, ""),
            prop("ID", "Edm.Guid", false, ""),
            prop("Amount", "Edm.Double", false, ""),
        );
        let c = convert_with_report(&json, "t").unwrap();
        let xml = &c.files["x.xml"];
        assert!(xml.contains(
            "<EntityType Name=\"A\">\n        <Key>\n          <PropertyRef Name=\"ID\"/>"
        ));
        assert!(xml.contains("<Property Name=\"ID\" Type=\"Edm.Guid\" Nullable=\"false\"/>"));
        assert!(xml.contains("key: ID by the converter's fallback rule"));
        assert!(xml.contains("NO KEY"));
        let b = xml.split("<EntityType Name=\"B\">").nth(1).unwrap();
        let b = b.split("</EntityType>").next().unwrap();
        assert!(!b.contains("<Key>"));
        assert_eq!(c.report.id_key_fallbacks, vec!["x/As"]);
        assert_eq!(c.report.keyless, vec!["x/Bs"]);
    }

    #[test]
    fn documented_keys_win_over_id_and_composite_keys_keep_order() {
        let json = one(
            "/api/v1/{division}/read/financial/RevenueList",
            &[
                prop("Period", "Edm.Int32", true, ""),
                prop("Year", "Edm.Int32", true, ""),
                prop("ID", "Edm.Guid", false, ""),
            ]
            .join(","),
        );
        let files = convert(&json, "t").unwrap();
        let xml = &files["read.financial.xml"];
        assert!(xml.contains(
            "<Key>\n          <PropertyRef Name=\"Period\"/>\n          <PropertyRef Name=\"Year\"/>\n        </Key>"
        ));
        assert!(xml.contains("<Property Name=\"ID\" Type=\"Edm.Guid\"/>"));
        assert!(xml.contains("<EntityContainer Name=\"ReadFinancialContainer\""));
    }

    #[test]
    fn output_is_deterministic() {
        let json = one(
            "/api/v1/{division}/crm/Things",
            &prop("ID", "Edm.Guid", true, "k"),
        );
        assert_eq!(convert(&json, "l").unwrap(), convert(&json, "l").unwrap());
    }

    #[test]
    fn navigation_resolves_within_the_document_only() {
        let json = format!(
            r#"{{"H": {{"uri": "/api/v1/{{division}}/s/Heads", "properties": [{}, {}, {}]}},
                "L": {{"uri": "/api/v1/{{division}}/s/HeadLines", "properties": [{}]}}}}"#,
            prop("ID", "Edm.Guid", true, ""),
            prop("HeadLines", "HeadLines", false, ""),
            prop("Other", "Exact.Web.Api.Models.X.Other", false, ""),
            prop("ID", "Edm.Guid", true, ""),
        );
        let c = convert_with_report(&json, "t").unwrap();
        let xml = &c.files["s.xml"];
        assert!(xml.contains(
            "<NavigationProperty Name=\"HeadLines\" Relationship=\"Exact.Web.Api.Models.Head_HeadLines\" FromRole=\"Head\" ToRole=\"HeadLines\"/>"
        ));
        assert!(xml.contains(
            "<End Type=\"Exact.Web.Api.Models.HeadLine\" Role=\"HeadLines\" Multiplicity=\"*\"/>"
        ));
        assert!(xml.contains("<End Role=\"HeadLines\" EntitySet=\"HeadLines\"/>"));
        assert!(xml.contains("<!-- omitted navigation: Other (Exact.Web.Api.Models.X.Other) -->"));
        assert_eq!(c.report.navigation_properties, 1);
        assert_eq!(c.report.omitted_navigations.len(), 1);
    }

    #[test]
    fn sync_and_bulk_variants_are_derived_from_the_standard_endpoint() {
        let json = format!(
            r#"{{"Accounts": {{"uri": "/api/v1/{{division}}/crm/Accounts", "properties": [{}, {}, {}]}}}}"#,
            prop("ID", "Edm.Guid", true, "Primary key"),
            prop("Name", "Edm.String", false, "Name"),
            prop("BankAccounts", "BankAccounts", false, ""),
        );
        let c = convert_with_report(&json, "t").unwrap();
        let sync = &c.files["sync.crm.xml"];
        assert!(sync.contains("<EntityType Name=\"AccountSync\">"));
        let after_key = sync.split("</Key>").nth(1).unwrap();
        assert!(after_key
            .trim_start()
            .starts_with("<Property Name=\"Timestamp\" Type=\"Edm.Int64\">"));
        assert!(sync.contains("<PropertyRef Name=\"ID\"/>"));
        assert!(sync.contains("DERIVED"));
        assert!(!sync.contains("<NavigationProperty"));
        assert!(sync.contains(
            "<EntitySet Name=\"Accounts\" EntityType=\"Exact.Web.Api.Models.AccountSync\"/>"
        ));
        let bulk = &c.files["bulk.crm.xml"];
        assert!(bulk.contains("<EntityType Name=\"AccountBulk\">"));
        assert!(!bulk.contains("Timestamp"));
        assert!(bulk.contains("<!-- omitted navigation: BankAccounts (BankAccounts) -->"));
        let deleted = &c.files["sync.xml"];
        assert!(deleted.contains("<EntityType Name=\"DeletedSync\">"));
        assert!(deleted.contains("<Property Name=\"EntityKey\" Type=\"Edm.Guid\">"));
        assert_eq!(c.report.derived_bulk, vec!["bulk/CRM/Accounts"]);
        assert_eq!(
            c.report.derived_sync,
            vec!["sync/CRM/Accounts", "sync/Deleted"]
        );
        assert!(c
            .report
            .not_derived
            .iter()
            .any(|s| s.starts_with("sync/Financial/TransactionLines:")));
    }

    #[test]
    fn line_level_sync_merges_header_and_lines_keyed_by_the_line() {
        let json = format!(
            r#"{{"SalesInvoices": {{"uri": "/api/v1/{{division}}/salesinvoice/SalesInvoices", "properties": [{}, {}, {}]}},
                "SalesInvoiceLines": {{"uri": "/api/v1/{{division}}/salesinvoice/SalesInvoiceLines", "properties": [{}, {}, {}]}}}}"#,
            prop("InvoiceID", "Edm.Guid", true, ""),
            prop("InvoiceNumber", "Edm.Int32", false, ""),
            prop("SalesInvoiceLines", "SalesInvoiceLines", false, ""),
            prop("ID", "Edm.Guid", true, ""),
            prop("InvoiceID", "Edm.Guid", false, ""),
            prop("Quantity", "Edm.Double", false, ""),
        );
        let c = convert_with_report(&json, "t").unwrap();
        let sync = &c.files["sync.salesinvoice.xml"];
        let t = sync
            .split("<EntityType Name=\"SalesInvoiceSync\">")
            .nth(1)
            .unwrap()
            .split("</EntityType>")
            .next()
            .unwrap();
        let names: Vec<&str> = t
            .split("<Property Name=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap())
            .collect();
        assert_eq!(
            names,
            ["Timestamp", "InvoiceID", "InvoiceNumber", "ID", "Quantity"]
        );
        assert!(t.contains("<PropertyRef Name=\"ID\"/>"));
        assert!(t.contains("<Property Name=\"InvoiceID\" Type=\"Edm.Guid\"/>"));
        // standard document: the header → lines association
        let std = &c.files["salesinvoice.xml"];
        assert!(
            std.contains("Relationship=\"Exact.Web.Api.Models.SalesInvoice_SalesInvoiceLines\"")
        );
    }

    #[test]
    fn colliding_type_names_are_prefixed_with_the_document_path() {
        let json = format!(
            r#"{{"A": {{"uri": "/api/v1/system/Users", "properties": [{}]}},
                "B": {{"uri": "/api/v1/{{division}}/users/Users", "properties": [{}]}}}}"#,
            prop("UserID", "Edm.Guid", true, ""),
            prop("UserID", "Edm.Guid", true, ""),
        );
        let files = convert(&json, "t").unwrap();
        assert!(files["system.xml"].contains("<EntityType Name=\"SystemUser\">"));
        assert!(files["users.xml"].contains("<EntityType Name=\"UsersUser\">"));
        assert!(files["system.xml"].contains("(served by Exact as /api/v1/system/$metadata)"));
    }

    #[test]
    fn all_problems_are_reported_together() {
        let json = format!(
            r#"{{"A": {{"uri": "/wrong/A", "properties": []}},
                "B": {{"uri": "/api/v1/{{division}}/x/Bs", "properties": [{}, {}, {}]}}}}"#,
            prop("ID", "Edm.Guid", true, ""),
            prop("ID", "Edm.Guid", false, ""),
            prop("Amount", "Edm.Money", false, ""),
        );
        let Err(ConvertError::Invalid(problems)) = convert(&json, "t") else {
            panic!("expected problems");
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(matches!(problems[0], Problem::BadUri { .. }));
        assert!(convert("[]", "t").is_err());
    }

    #[test]
    fn endpoint_to_document_rule() {
        let d = |e: &str| document_for_endpoint(e).map(|(f, s)| format!("{f} {s}"));
        assert_eq!(
            d("/financial/GLAccounts").as_deref(),
            Some("financial.xml GLAccounts")
        );
        assert_eq!(
            d("sync/Financial/TransactionLines").as_deref(),
            Some("sync.financial.xml TransactionLines")
        );
        assert_eq!(d("sync/Deleted").as_deref(), Some("sync.xml Deleted"));
        assert_eq!(d("current/Me").as_deref(), Some("current.xml Me"));
        assert_eq!(d("Me"), None);
        assert_eq!(d("crm//Accounts"), None);
    }

    #[test]
    fn source_labels() {
        assert_eq!(
            default_source_label("picqer-generator-2021-06__meta-data.json"),
            "picqer-generator-2021-06__meta-data.json, scraped June 2021"
        );
        assert_eq!(
            default_source_label("dev-tools-2019-12__meta-data.json"),
            "dev-tools-2019-12__meta-data.json, scraped December 2019"
        );
        assert_eq!(default_source_label("meta-data.json"), "meta-data.json");
    }
}
