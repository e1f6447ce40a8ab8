//! From the scraped reference to a small model: entities (scraped or derived), grouped into
//! documents, with type names assigned and navigation properties resolved. The XML writer
//! ([`super::emit`]) only reads this model.

use super::derived::{
    DerivedEndpoint, BULK_ENDPOINTS, SYNC_DELETED_PATH, SYNC_DELETED_PROPERTIES, SYNC_ENDPOINTS,
    SYNC_TIMESTAMP_DESCRIPTION,
};
use super::input::{RawEndpoint, RawReference};
use super::naming::{document_file_name, is_simple_identifier, pascal_path, singularize};
use super::Problem;
use std::collections::{BTreeMap, BTreeSet};

/// OData V2 primitive types (CSDL 2.0). Anything else starting with `Edm.` is an error.
const EDM_PRIMITIVES: &[&str] = &[
    "Edm.Binary",
    "Edm.Boolean",
    "Edm.Byte",
    "Edm.DateTime",
    "Edm.DateTimeOffset",
    "Edm.Decimal",
    "Edm.Double",
    "Edm.Guid",
    "Edm.Int16",
    "Edm.Int32",
    "Edm.Int64",
    "Edm.SByte",
    "Edm.Single",
    "Edm.String",
    "Edm.Time",
];

#[derive(Debug, Clone)]
pub struct Prop {
    pub name: String,
    pub edm_type: String,
    pub description: String,
}

/// A documented property whose "type" is not an Edm type: the name of an expanded collection
/// (`SalesInvoiceLines`) or of a nested type (`Exact.Web.Api.Models.HRM.DivisionClass`).
#[derive(Debug, Clone)]
pub struct NavCandidate {
    pub name: String,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `primaryKey: true` in the reference.
    Documented,
    /// Nothing flagged; the property `ID` is used.
    IdFallback,
    /// Nothing flagged and no `ID`.
    Keyless,
}

#[derive(Debug, Clone)]
pub enum Origin {
    /// In the scraped reference.
    Reference,
    /// A bulk endpoint from [`BULK_ENDPOINTS`], copied from its standard endpoint (uri).
    DerivedBulk { from: String },
    /// A sync endpoint from [`SYNC_ENDPOINTS`], from its standard endpoint (uri) and, for
    /// line-level syncs, the line endpoint (uri).
    DerivedSync { from: String, lines: Option<String> },
    /// `sync/Deleted` from exact-online.md §1.4.
    SyncDeleted,
}

#[derive(Debug, Clone)]
pub struct Entity {
    /// Path segments under `/api/v1/{division}/` (or `/api/v1/`): `["sync", "CRM", "Accounts"]`.
    pub segments: Vec<String>,
    pub uri: String,
    pub documentation: Option<String>,
    pub scope: Option<String>,
    pub methods: Vec<String>,
    pub properties: Vec<Prop>,
    pub navs: Vec<NavCandidate>,
    /// Sync types: the standard endpoint's nested collections, not carried over.
    pub dropped_navs: Vec<NavCandidate>,
    pub key: Vec<String>,
    pub key_source: KeySource,
    pub origin: Origin,
    /// Assigned by [`assign_type_names`].
    pub type_name: String,
}

impl Entity {
    pub fn set_name(&self) -> &str {
        self.segments.last().map(String::as_str).unwrap_or("")
    }

    pub fn doc_segments(&self) -> &[String] {
        &self.segments[..self.segments.len().saturating_sub(1)]
    }

    pub fn path(&self) -> String {
        self.segments.join("/")
    }

    fn path_key(&self) -> String {
        self.path().to_ascii_lowercase()
    }

    pub fn file_name(&self) -> String {
        document_file_name(self.doc_segments())
    }
}

/// The endpoint path of a reference `uri`: `/api/v1/{division}/crm/Accounts` →
/// `["crm", "Accounts"]`, `/api/v1/current/Me` → `["current", "Me"]`. At least two segments,
/// each a simple identifier.
pub fn uri_segments(uri: &str) -> Option<Vec<String>> {
    let rest = uri.strip_prefix("/api/v1/")?;
    let rest = rest.strip_prefix("{division}/").unwrap_or(rest);
    let segs: Vec<String> = rest.split('/').map(str::to_string).collect();
    if segs.len() < 2 || !segs.iter().all(|s| is_simple_identifier(s)) {
        return None;
    }
    Some(segs)
}

/// One scraped endpoint as an [`Entity`], or the problems that prevent it.
fn reference_entity(name: &str, raw: &RawEndpoint, problems: &mut Vec<Problem>) -> Option<Entity> {
    let Some(segments) = uri_segments(&raw.uri) else {
        problems.push(Problem::BadUri {
            endpoint: name.to_string(),
            uri: raw.uri.clone(),
        });
        return None;
    };
    let before = problems.len();
    let mut seen = BTreeSet::new();
    let mut properties = Vec::new();
    let mut navs = Vec::new();
    let mut key = Vec::new();
    for p in &raw.properties {
        if !is_simple_identifier(&p.name) {
            problems.push(Problem::BadPropertyName {
                endpoint: name.to_string(),
                property: p.name.clone(),
            });
            continue;
        }
        if !seen.insert(p.name.clone()) {
            problems.push(Problem::DuplicateProperty {
                endpoint: name.to_string(),
                property: p.name.clone(),
            });
            continue;
        }
        let ty = p.ty.trim();
        if ty.starts_with("Edm.") {
            if !EDM_PRIMITIVES.contains(&ty) {
                problems.push(Problem::UnknownEdmType {
                    endpoint: name.to_string(),
                    property: p.name.clone(),
                    edm_type: ty.to_string(),
                });
                continue;
            }
            if p.primary_key {
                key.push(p.name.clone());
            }
            properties.push(Prop {
                name: p.name.clone(),
                edm_type: ty.to_string(),
                description: p.description.clone().unwrap_or_default(),
            });
        } else {
            if p.primary_key {
                problems.push(Problem::KeyNotPrimitive {
                    endpoint: name.to_string(),
                    property: p.name.clone(),
                    ty: ty.to_string(),
                });
            }
            navs.push(NavCandidate {
                name: p.name.clone(),
                target: ty.to_string(),
            });
        }
    }
    if problems.len() > before {
        return None;
    }
    let key_source = if !key.is_empty() {
        KeySource::Documented
    } else if properties.iter().any(|p| p.name == "ID") {
        key.push("ID".to_string());
        KeySource::IdFallback
    } else {
        KeySource::Keyless
    };
    Some(Entity {
        segments,
        uri: raw.uri.clone(),
        documentation: raw.documentation.clone(),
        scope: raw.scope.clone(),
        methods: raw.methods(),
        properties,
        navs,
        dropped_navs: Vec::new(),
        key,
        key_source,
        origin: Origin::Reference,
        type_name: String::new(),
    })
}

fn derived_uri(path: &str) -> String {
    format!("/api/v1/{{division}}/{path}")
}

fn derive_bulk(spec: &DerivedEndpoint, standard: &Entity) -> Entity {
    Entity {
        segments: spec.path.split('/').map(str::to_string).collect(),
        uri: derived_uri(spec.path),
        documentation: None,
        methods: vec!["GET".to_string()],
        origin: Origin::DerivedBulk {
            from: standard.uri.clone(),
        },
        type_name: String::new(),
        ..standard.clone()
    }
}

fn derive_sync(spec: &DerivedEndpoint, standard: &Entity, lines: Option<&Entity>) -> Entity {
    let mut properties = vec![Prop {
        name: "Timestamp".to_string(),
        edm_type: "Edm.Int64".to_string(),
        description: SYNC_TIMESTAMP_DESCRIPTION.to_string(),
    }];
    let mut names: BTreeSet<String> = BTreeSet::from(["Timestamp".to_string()]);
    let mut dropped_navs = standard.navs.clone();
    let sources = std::iter::once(standard).chain(lines);
    for source in sources {
        for p in &source.properties {
            if names.insert(p.name.clone()) {
                properties.push(p.clone());
            }
        }
    }
    let (key, key_source) = match lines {
        Some(l) => {
            dropped_navs.extend(l.navs.iter().cloned());
            (l.key.clone(), l.key_source.clone())
        }
        None => (standard.key.clone(), standard.key_source.clone()),
    };
    Entity {
        segments: spec.path.split('/').map(str::to_string).collect(),
        uri: derived_uri(spec.path),
        documentation: None,
        scope: standard.scope.clone(),
        methods: vec!["GET".to_string()],
        properties,
        navs: Vec::new(),
        dropped_navs,
        key,
        key_source,
        origin: Origin::DerivedSync {
            from: standard.uri.clone(),
            lines: lines.map(|l| l.uri.clone()),
        },
        type_name: String::new(),
    }
}

fn sync_deleted() -> Entity {
    Entity {
        segments: SYNC_DELETED_PATH.split('/').map(str::to_string).collect(),
        uri: derived_uri(SYNC_DELETED_PATH),
        documentation: None,
        scope: None,
        methods: vec!["GET".to_string()],
        properties: SYNC_DELETED_PROPERTIES
            .iter()
            .map(|(name, ty, doc)| Prop {
                name: name.to_string(),
                edm_type: ty.to_string(),
                description: doc.to_string(),
            })
            .collect(),
        navs: Vec::new(),
        dropped_navs: Vec::new(),
        key: vec!["ID".to_string()],
        key_source: KeySource::Documented,
        origin: Origin::SyncDeleted,
        type_name: String::new(),
    }
}

/// A navigation property that could be resolved inside its document.
#[derive(Debug, Clone)]
pub struct ResolvedNav {
    pub name: String,
    /// Index (into [`Model::entities`]) of the target entity.
    pub target: usize,
    pub association: String,
    pub from_role: String,
    pub to_role: String,
}

/// The navigation properties of one entity after resolution.
#[derive(Debug, Clone, Default)]
pub struct EntityNavs {
    pub resolved: Vec<ResolvedNav>,
    pub omitted: Vec<NavCandidate>,
}

#[derive(Debug, Clone)]
pub struct Document {
    pub file_name: String,
    /// Segments of the document path, as the first endpoint (by set name) spells them.
    pub segments: Vec<String>,
    /// Entity indices, sorted by EntitySet name.
    pub entities: Vec<usize>,
    /// Sync/bulk endpoints that belong here but could not be derived: (path, reason).
    pub not_derived: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub entities: Vec<Entity>,
    /// Parallel to `entities`.
    pub navs: Vec<EntityNavs>,
    pub documents: BTreeMap<String, Document>,
    /// Sync/bulk endpoints not emitted: (path, reason), sorted.
    pub not_derived: Vec<(String, String)>,
    /// Sync/bulk endpoints of the tables that the reference itself documents (kept as scraped).
    pub documented_variants: Vec<String>,
}

/// Builds the model, or every problem found.
pub fn build(reference: &RawReference) -> Result<Model, Vec<Problem>> {
    let mut problems = Vec::new();
    if reference.is_empty() {
        problems.push(Problem::EmptyReference);
    }
    let mut entities: Vec<Entity> = Vec::new();
    let mut by_path: BTreeMap<String, usize> = BTreeMap::new();
    let mut names_by_path: BTreeMap<String, String> = BTreeMap::new();
    for (name, raw) in reference {
        if let Some(e) = reference_entity(name, raw, &mut problems) {
            let key = e.path_key();
            if let Some(first) = names_by_path.get(&key) {
                problems.push(Problem::DuplicatePath {
                    path: e.path(),
                    first: first.clone(),
                    second: name.clone(),
                });
                continue;
            }
            names_by_path.insert(key.clone(), name.clone());
            by_path.insert(key, entities.len());
            entities.push(e);
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    // Sync and bulk endpoints.
    let mut not_derived = Vec::new();
    let mut documented_variants = Vec::new();
    let lookup = |path: &str| by_path.get(&path.to_ascii_lowercase()).copied();
    let mut derived = Vec::new();
    for (spec, is_sync) in BULK_ENDPOINTS
        .iter()
        .map(|s| (s, false))
        .chain(SYNC_ENDPOINTS.iter().map(|s| (s, true)))
    {
        if lookup(spec.path).is_some() {
            documented_variants.push(spec.path.to_string());
            continue;
        }
        let Some(std_idx) = lookup(spec.standard) else {
            not_derived.push((
                spec.path.to_string(),
                format!("the reference has no {} to derive it from", spec.standard),
            ));
            continue;
        };
        let standard = &entities[std_idx];
        if !is_sync {
            derived.push(derive_bulk(spec, standard));
            continue;
        }
        match spec.lines {
            Some(lines_path) => match lookup(lines_path) {
                Some(l) => derived.push(derive_sync(spec, standard, Some(&entities[l]))),
                None => not_derived.push((
                    spec.path.to_string(),
                    format!("the reference has no {lines_path} (its rows are lines)"),
                )),
            },
            None => derived.push(derive_sync(spec, standard, None)),
        }
    }
    if lookup(SYNC_DELETED_PATH).is_some() {
        documented_variants.push(SYNC_DELETED_PATH.to_string());
    } else {
        derived.push(sync_deleted());
    }
    for e in derived {
        by_path.insert(e.path_key(), entities.len());
        entities.push(e);
    }
    not_derived.sort();
    documented_variants.sort();

    // Documents.
    let mut documents: BTreeMap<String, Document> = BTreeMap::new();
    let mut order: Vec<usize> = (0..entities.len()).collect();
    order.sort_by(|&a, &b| {
        (entities[a].file_name(), entities[a].set_name())
            .cmp(&(entities[b].file_name(), entities[b].set_name()))
    });
    for i in order {
        let e = &entities[i];
        documents
            .entry(e.file_name())
            .or_insert_with(|| Document {
                file_name: e.file_name(),
                segments: e.doc_segments().to_vec(),
                entities: Vec::new(),
                not_derived: Vec::new(),
            })
            .entities
            .push(i);
    }
    for (path, reason) in &not_derived {
        let segs: Vec<String> = path.split('/').map(str::to_string).collect();
        let file = document_file_name(&segs[..segs.len() - 1]);
        if let Some(doc) = documents.get_mut(&file) {
            doc.not_derived.push((path.clone(), reason.clone()));
        }
    }

    assign_type_names(&mut entities, &mut problems);
    let navs = resolve_navigation(&entities, &documents);
    check_schema_names(&entities, &navs, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Model {
        entities,
        navs,
        documents,
        not_derived,
        documented_variants,
    })
}

/// Type names, unique across all documents (they share one namespace):
/// singular of the endpoint name, plus `Sync` / `Bulk` for endpoints under `sync/` / `bulk/`
/// (Exact's own sync type for `sync/Financial/GLAccounts` is `GLAccountSync`, picqer#652).
/// When several endpoints get the same name, each of them is prefixed with its Pascal-cased
/// document path (`system/Users` → `SystemUser`, `users/Users` → `UsersUser`).
fn assign_type_names(entities: &mut [Entity], problems: &mut Vec<Problem>) {
    let base: Vec<String> = entities
        .iter()
        .map(|e| {
            let suffix = match e.segments[0].to_ascii_lowercase().as_str() {
                "sync" => "Sync",
                "bulk" => "Bulk",
                _ => "",
            };
            format!("{}{suffix}", singularize(e.set_name()))
        })
        .collect();
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, b) in base.iter().enumerate() {
        groups.entry(b.as_str()).or_default().push(i);
    }
    let mut names = vec![String::new(); entities.len()];
    for (b, members) in &groups {
        for &i in members {
            names[i] = if members.len() == 1 {
                b.to_string()
            } else {
                format!("{}{b}", pascal_path(entities[i].doc_segments()))
            };
        }
    }
    let mut first: BTreeMap<String, usize> = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        if let Some(&j) = first.get(n) {
            problems.push(Problem::DuplicateTypeName {
                name: n.clone(),
                first: entities[j].path(),
                second: entities[i].path(),
            });
        } else {
            first.insert(n.clone(), i);
        }
    }
    for (e, n) in entities.iter_mut().zip(names) {
        e.type_name = n;
    }
}

/// A navigation candidate becomes a NavigationProperty when its type names an EntitySet of the
/// same document (case-insensitively: `VATPercentages` ↔ `VatPercentages`); Exact returns such
/// properties as `{"results": [...]}` collections, so the association is one (the entity) to
/// many (the set's type). Everything else (a set in another document, a nested type name) is
/// omitted: an Association must name both end types in this document's schema.
fn resolve_navigation(
    entities: &[Entity],
    documents: &BTreeMap<String, Document>,
) -> Vec<EntityNavs> {
    let mut out = vec![EntityNavs::default(); entities.len()];
    for doc in documents.values() {
        for &i in &doc.entities {
            let e = &entities[i];
            for nav in &e.navs {
                let target = doc
                    .entities
                    .iter()
                    .copied()
                    .find(|&t| entities[t].set_name().eq_ignore_ascii_case(&nav.target));
                match target {
                    Some(t) => {
                        let from_role = e.type_name.clone();
                        let to_role = if nav.name == from_role {
                            format!("{}_Target", nav.name)
                        } else {
                            nav.name.clone()
                        };
                        out[i].resolved.push(ResolvedNav {
                            name: nav.name.clone(),
                            target: t,
                            association: format!("{}_{}", e.type_name, nav.name),
                            from_role,
                            to_role,
                        });
                    }
                    None => out[i].omitted.push(nav.clone()),
                }
            }
        }
    }
    out
}

/// Entity type and association names share the schema's namespace, across all documents.
fn check_schema_names(entities: &[Entity], navs: &[EntityNavs], problems: &mut Vec<Problem>) {
    let types: BTreeSet<&str> = entities.iter().map(|e| e.type_name.as_str()).collect();
    let mut assocs = BTreeSet::new();
    for (e, n) in entities.iter().zip(navs) {
        for r in &n.resolved {
            if types.contains(r.association.as_str()) || !assocs.insert(r.association.clone()) {
                problems.push(Problem::DuplicateTypeName {
                    name: r.association.clone(),
                    first: e.path(),
                    second: format!("{}.{}", e.path(), r.name),
                });
            }
        }
    }
}
