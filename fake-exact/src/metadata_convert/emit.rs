//! The model as OData V2 EDMX documents (CSDL 2.0, `DataServiceVersion` 2.0), one per document.

use super::model::{Document, Entity, KeySource, Model, Origin};
use super::naming::pascal_path;
use super::xml::XmlWriter;
use super::NAMESPACE;

const EDMX_NS: &str = "http://schemas.microsoft.com/ado/2007/06/edmx";
const METADATA_NS: &str = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata";
const EDM_NS: &str = "http://schemas.microsoft.com/ado/2008/09/edm";

fn header_comment(source_label: &str) -> String {
    format!(
        "Derived from Exact Online's REST API reference ({source_label}) by fake-exact's \
exact-metadata converter. This is NOT the service's own $metadata output: Exact does not publish it. \
Keys and Edm types are as documented; nullability: key properties Nullable=\"false\", everything \
else nullable (the reference does not document nullability)."
    )
}

fn qualified(name: &str) -> String {
    format!("{NAMESPACE}.{name}")
}

fn metadata_url(uri: &str) -> String {
    match uri.rfind('/') {
        Some(i) => format!("{}/$metadata", &uri[..i]),
        None => format!("{uri}/$metadata"),
    }
}

fn document_comment(model: &Model, doc: &Document) -> String {
    let mut urls: Vec<String> = doc
        .entities
        .iter()
        .map(|&i| metadata_url(&model.entities[i].uri))
        .collect();
    urls.sort();
    urls.dedup();
    let mut s = format!(
        "Document {}: the entity sets under {}/ (served by Exact as {}). Entity type names are the \
singular of the endpoint name, with a Sync or Bulk suffix under sync/ and bulk/, prefixed with the \
document path where two endpoints would share a name. Navigation properties are emitted only where an \
expanded collection names an EntitySet of this document (Association: one entity to many, no \
referential constraint); the others are listed as omitted navigation comments in their entity type.",
        doc.file_name,
        doc.segments.join("/"),
        urls.join(", ")
    );
    let derived = doc
        .entities
        .iter()
        .filter(|&&i| !matches!(model.entities[i].origin, Origin::Reference))
        .count();
    if derived > 0 {
        s.push_str(&format!(
            " {derived} of the {} entity types are DERIVED by the converter (marked below): the \
scraped reference has no sync/bulk endpoints, see fake-exact's metadata_convert::derived.",
            doc.entities.len()
        ));
    }
    if !doc.not_derived.is_empty() {
        let list: Vec<String> = doc
            .not_derived
            .iter()
            .map(|(p, why)| format!("{p} ({why})"))
            .collect();
        s.push_str(&format!(
            " Known endpoints of this path NOT emitted: {}.",
            list.join("; ")
        ));
    }
    s
}

fn entity_comment(e: &Entity) -> String {
    let mut s = format!("{}: {} {}", e.set_name(), e.methods.join(" "), e.uri);
    match &e.origin {
        Origin::Reference => {
            if let Some(scope) = e.scope.as_deref().filter(|s| !s.is_empty()) {
                s.push_str(&format!("; scope: {scope}"));
            }
            if let Some(doc) = e.documentation.as_deref().filter(|s| !s.is_empty()) {
                s.push_str(&format!("; reference: {doc}"));
            }
        }
        Origin::DerivedBulk { from } => s.push_str(&format!(
            "; DERIVED (not in the scraped reference): bulk endpoint (picqer/exact-php-client \
Bulk*.php), up to 1000 rows per page; properties, key and navigation as the standard endpoint {from}"
        )),
        Origin::DerivedSync { from, lines } => {
            s.push_str(&format!(
                "; DERIVED (not in the scraped reference): sync endpoint (picqer/exact-php-client \
Sync*.php), up to 1000 rows per page; properties: Timestamp (Edm.Int64 row version, the cursor) + \
those of {from}"
            ));
            if let Some(lines) = lines {
                s.push_str(&format!(
                    " + those of {lines} not already present (one row per line, keyed by the line)"
                ));
            }
            s.push_str(
                "; nested collections dropped; keyed like the standard entity (Timestamp is only the cursor)",
            );
        }
        Origin::SyncDeleted => s.push_str(
            "; DERIVED (not in the scraped reference): the deletion log, fields from exact-online.md \
section 1.4 (picqer SyncDeleted.php, Airbyte sync_deleted.json, leapforce sync/Deleted.go); \
filter Timestamp and EntityType",
        ),
    }
    match e.key_source {
        KeySource::Documented => {}
        KeySource::IdFallback => s.push_str(
            "; key: ID by the converter's fallback rule (the reference flags no primary key)",
        ),
        KeySource::Keyless => {
            s.push_str("; NO KEY: the reference flags no primary key and there is no ID property")
        }
    }
    s
}

/// Writes one document.
pub fn document(model: &Model, doc: &Document, source_label: &str) -> String {
    let mut w = XmlWriter::new();
    w.raw_line(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    w.comment(&header_comment(source_label));
    w.open("edmx:Edmx", &[("Version", "1.0"), ("xmlns:edmx", EDMX_NS)]);
    w.open(
        "edmx:DataServices",
        &[("m:DataServiceVersion", "2.0"), ("xmlns:m", METADATA_NS)],
    );
    w.open("Schema", &[("Namespace", NAMESPACE), ("xmlns", EDM_NS)]);
    w.comment(&document_comment(model, doc));

    for &i in &doc.entities {
        let e = &model.entities[i];
        let navs = &model.navs[i];
        w.comment(&entity_comment(e));
        w.open("EntityType", &[("Name", &e.type_name)]);
        if !e.key.is_empty() {
            w.open("Key", &[]);
            for k in &e.key {
                w.empty("PropertyRef", &[("Name", k)]);
            }
            w.close("Key");
        }
        for p in &e.properties {
            let mut attrs: Vec<(&str, &str)> = vec![("Name", &p.name), ("Type", &p.edm_type)];
            if e.key.contains(&p.name) {
                attrs.push(("Nullable", "false"));
            }
            if p.description.trim().is_empty() {
                w.empty("Property", &attrs);
            } else {
                w.open("Property", &attrs);
                w.open("Documentation", &[]);
                w.text_element("Summary", &p.description);
                w.close("Documentation");
                w.close("Property");
            }
        }
        for r in &navs.resolved {
            let rel = qualified(&r.association);
            w.empty(
                "NavigationProperty",
                &[
                    ("Name", &r.name),
                    ("Relationship", &rel),
                    ("FromRole", &r.from_role),
                    ("ToRole", &r.to_role),
                ],
            );
        }
        for o in &navs.omitted {
            w.comment(&format!("omitted navigation: {} ({})", o.name, o.target));
        }
        for o in &e.dropped_navs {
            w.comment(&format!(
                "not carried over from the standard endpoint (sync types have no nested collections): {} ({})",
                o.name, o.target
            ));
        }
        w.close("EntityType");
    }

    for &i in &doc.entities {
        let e = &model.entities[i];
        for r in &model.navs[i].resolved {
            let target = &model.entities[r.target];
            w.open("Association", &[("Name", &r.association)]);
            w.empty(
                "End",
                &[
                    ("Type", &qualified(&e.type_name)),
                    ("Role", &r.from_role),
                    ("Multiplicity", "1"),
                ],
            );
            w.empty(
                "End",
                &[
                    ("Type", &qualified(&target.type_name)),
                    ("Role", &r.to_role),
                    ("Multiplicity", "*"),
                ],
            );
            w.close("Association");
        }
    }

    let container = format!("{}Container", pascal_path(&doc.segments));
    w.open(
        "EntityContainer",
        &[("Name", &container), ("m:IsDefaultEntityContainer", "true")],
    );
    for &i in &doc.entities {
        let e = &model.entities[i];
        w.empty(
            "EntitySet",
            &[
                ("Name", e.set_name()),
                ("EntityType", &qualified(&e.type_name)),
            ],
        );
    }
    for &i in &doc.entities {
        let e = &model.entities[i];
        for r in &model.navs[i].resolved {
            let target = &model.entities[r.target];
            w.open(
                "AssociationSet",
                &[
                    ("Name", &r.association),
                    ("Association", &qualified(&r.association)),
                ],
            );
            w.empty(
                "End",
                &[("Role", &r.from_role), ("EntitySet", e.set_name())],
            );
            w.empty(
                "End",
                &[("Role", &r.to_role), ("EntitySet", target.set_name())],
            );
            w.close("AssociationSet");
        }
    }
    w.close("EntityContainer");
    w.close("Schema");
    w.close("edmx:DataServices");
    w.close("edmx:Edmx");
    w.finish()
}
