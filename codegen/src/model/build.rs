//! `csdl::Document`s → [`Model`]: resolve aliases and type references, flatten inheritance, find
//! keys, select, name. All problems are collected as diagnostics with positions.

use super::selection::Selection;
use super::*;
use crate::csdl::{self, Annotation, Docs};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::edm_types::{Prim, TypeMap};
use crate::naming::{self, Compare, NameItem};
use crate::source::SourceFile;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

/// Options of one model build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Service name (module name; snake_case is applied).
    pub service: String,
    pub selection: Selection,
    /// Unknown types and dangling references become warnings and raw JSON instead of errors.
    pub lenient: bool,
    /// The Edm → Rust table (defaults plus the service's overrides).
    pub type_map: TypeMap,
    /// Pinned Rust names (`service.toml` `[rename]`): `NS.Type` → type name,
    /// `NS.Type/Property` → field name.
    pub renames: BTreeMap<String, String>,
}

/// SQL names the runtime adds to every table.
pub const SYSTEM_COLUMNS: &[&str] = &["synced_at", "deleted_at"];

enum RawType<'a> {
    Entity(&'a csdl::EntityType),
    Complex(&'a csdl::ComplexType),
    Enum(&'a csdl::EnumType),
    Def(&'a csdl::TypeDefinition),
}

struct RawEntry<'a> {
    ns: String,
    raw: RawType<'a>,
}

struct Ctx<'a> {
    docs: &'a [(SourceFile, csdl::Document)],
    opts: &'a BuildOptions,
    diags: Diagnostics,
    /// alias → namespace (schemas and edmx:Include)
    aliases: BTreeMap<String, String>,
    types: BTreeMap<QName, RawEntry<'a>>,
    associations: BTreeMap<QName, &'a csdl::Association>,
    /// "Target" (namespace-qualified) → description
    descriptions: BTreeMap<String, String>,
}

impl<'a> Ctx<'a> {
    fn path(&self, file: u32) -> PathBuf {
        self.docs
            .get(file as usize)
            .map(|(s, _)| s.path.clone())
            .unwrap_or_default()
    }

    fn err(&mut self, pos: Pos, msg: String) {
        let p = self.path(pos.file);
        self.diags
            .push(Diagnostic::error(msg).at(p, pos.line, pos.column));
    }

    fn warn(&mut self, pos: Pos, msg: String) {
        let p = self.path(pos.file);
        self.diags
            .push(Diagnostic::warning(msg).at(p, pos.line, pos.column));
    }

    /// An error, or a warning with `--lenient`.
    fn strict(&mut self, pos: Pos, msg: String) {
        if self.opts.lenient {
            self.warn(pos, msg);
        } else {
            self.err(pos, format!("{msg} (use --lenient to generate anyway)"));
        }
    }

    /// `Alias.Name` / `Namespace.Name` → `Namespace.Name`.
    fn qualify(&self, name: &str) -> String {
        if let Some(idx) = name.rfind('.') {
            let (prefix, rest) = name.split_at(idx);
            if let Some(ns) = self.aliases.get(prefix) {
                return format!("{ns}{rest}");
            }
        }
        name.to_string()
    }
}

fn strip_collection(t: &str) -> Option<&str> {
    t.strip_prefix("Collection(")
        .and_then(|r| r.strip_suffix(')'))
}

/// Builds the model from parsed documents. Returns `None` when there are errors (all of them are
/// in the diagnostics).
pub fn build_model(
    docs: &[(SourceFile, csdl::Document)],
    opts: &BuildOptions,
) -> (Option<Model>, Diagnostics) {
    let mut cx = Ctx {
        docs,
        opts,
        diags: Diagnostics::default(),
        aliases: BTreeMap::new(),
        types: BTreeMap::new(),
        associations: BTreeMap::new(),
        descriptions: BTreeMap::new(),
    };
    index(&mut cx);
    let (roots, sets) = select_roots(&mut cx);
    let (selected, reasons) = closure(&mut cx, &roots);
    let mut model = Model {
        service: naming::rust_field_name(&opts.service),
        odata_version: docs
            .iter()
            .filter_map(|(_, d)| d.odata_version)
            .max()
            .unwrap_or(ODataVersion::V4),
        sources: docs
            .iter()
            .map(|(s, _)| s.path.display().to_string())
            .collect(),
        namespaces: BTreeMap::new(),
        types: BTreeMap::new(),
        entity_sets: BTreeMap::new(),
        operations: Vec::new(),
        type_map: opts.type_map.clone(),
        reasons,
    };
    for q in &selected {
        if let Some(t) = resolve_type(&mut cx, q, &selected) {
            model.types.insert(q.clone(), t);
        }
    }
    model.entity_sets = sets;
    mark_boxed(&mut model);
    record_operations(&cx, &mut model);
    name_everything(&mut cx, &mut model);
    check_keys(&mut cx, &model);
    let diags = cx.diags;
    if diags.has_errors() {
        (None, diags)
    } else {
        (Some(model), diags)
    }
}

fn term_is_core_description(cx: &Ctx, term: &str) -> bool {
    let Some((prefix, name)) = term.rsplit_once('.') else {
        return false;
    };
    if name != "Description" {
        return false;
    }
    let ns = cx.aliases.get(prefix).map(String::as_str).unwrap_or(prefix);
    ns == "Org.OData.Core.V1" || prefix == "Core"
}

fn description_of(cx: &Ctx, annotations: &[Annotation]) -> Option<String> {
    annotations
        .iter()
        .find(|a| a.qualifier.is_none() && term_is_core_description(cx, &a.term))
        .and_then(|a| a.value.clone())
}

/// Documentation text from every source, de-duplicated, in a fixed order.
fn doc_text(cx: &Ctx, docs: &Docs, annotations: &[Annotation], target: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut add = |s: Option<&String>| {
        if let Some(s) = s {
            let t = s.trim();
            if !t.is_empty() && !parts.iter().any(|p| p == t) {
                parts.push(t.to_string());
            }
        }
    };
    add(description_of(cx, annotations).as_ref());
    add(cx.descriptions.get(target));
    add(docs.summary.as_ref());
    add(docs.long_description.as_ref());
    add(docs.sap_label.as_ref());
    add(docs.sap_quickinfo.as_ref());
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("\n\n"))
    }
}

fn index<'a>(cx: &mut Ctx<'a>) {
    let docs: &'a [(SourceFile, csdl::Document)] = cx.docs;
    for (_, doc) in docs {
        for inc in &doc.references {
            if let Some(a) = &inc.alias {
                cx.aliases.insert(a.clone(), inc.namespace.clone());
            }
        }
        for s in &doc.schemas {
            if let Some(a) = &s.alias {
                cx.aliases.insert(a.clone(), s.namespace.clone());
            }
        }
    }
    let mut dups: Vec<(Pos, String)> = Vec::new();
    for (_, doc) in docs {
        for s in &doc.schemas {
            let ns = s.namespace.clone();
            let mut put = |name: &str, pos: Pos, raw: RawType<'a>| {
                let q = format!("{ns}.{name}");
                match cx.types.entry(q) {
                    std::collections::btree_map::Entry::Occupied(o) => {
                        dups.push((pos, o.key().clone()))
                    }
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(RawEntry {
                            ns: ns.clone(),
                            raw,
                        });
                    }
                }
            };
            for t in &s.entity_types {
                put(&t.name, t.pos, RawType::Entity(t));
            }
            for t in &s.complex_types {
                put(&t.name, t.pos, RawType::Complex(t));
            }
            for t in &s.enum_types {
                put(&t.name, t.pos, RawType::Enum(t));
            }
            for t in &s.type_definitions {
                put(&t.name, t.pos, RawType::Def(t));
            }
            for a in &s.associations {
                cx.associations.insert(format!("{ns}.{}", a.name), a);
            }
        }
    }
    for (pos, q) in dups {
        let first = type_pos(cx, &q);
        if first.file == pos.file {
            let msg = format!(
                "type '{q}' is defined twice in this document (first at {}:{})",
                first.line, first.column
            );
            cx.strict(pos, msg);
        } else {
            // The same namespace in several documents (Exact publishes one $metadata per API
            // area) repeats types; the first definition wins.
            let msg = format!(
                "type '{q}' is also defined in {}; that first definition is used",
                cx.path(first.file).display()
            );
            cx.warn(pos, msg);
        }
    }
    let mut descs = BTreeMap::new();
    for (_, doc) in docs {
        for s in &doc.schemas {
            for b in &s.annotation_blocks {
                if b.qualifier.is_some() {
                    continue;
                }
                if let Some(d) = description_of(cx, &b.annotations) {
                    descs.insert(cx.qualify_target(&b.target), d);
                }
            }
        }
    }
    cx.descriptions = descs;
}

impl Ctx<'_> {
    /// `Alias.Type/Prop` → `Namespace.Type/Prop`.
    fn qualify_target(&self, target: &str) -> String {
        match target.split_once('/') {
            Some((head, rest)) => format!("{}/{rest}", self.qualify(head)),
            None => self.qualify(target),
        }
    }
}

/// Chooses the root entity sets/singletons and returns (root entity type qnames with reasons,
/// entity set defs keyed by selection name).
fn select_roots(cx: &mut Ctx) -> (Vec<(QName, String)>, BTreeMap<String, EntitySetDef>) {
    struct SetRef {
        name: String,
        ty: String,
        singleton: bool,
        container: String,
        doc: usize,
        pos: Pos,
        docs: Option<String>,
    }
    let mut all: Vec<SetRef> = Vec::new();
    let docs = cx.docs;
    for (di, (_, doc)) in docs.iter().enumerate() {
        for s in &doc.schemas {
            for c in &s.entity_containers {
                for es in &c.entity_sets {
                    let target = format!("{}.{}/{}", s.namespace, c.name, es.name);
                    all.push(SetRef {
                        name: es.name.clone(),
                        ty: cx.qualify(&es.entity_type),
                        singleton: false,
                        container: c.name.clone(),
                        doc: di,
                        pos: es.pos,
                        docs: doc_text(cx, &es.docs, &es.annotations, &target),
                    });
                }
                for sg in &c.singletons {
                    let target = format!("{}.{}/{}", s.namespace, c.name, sg.name);
                    all.push(SetRef {
                        name: sg.name.clone(),
                        ty: cx.qualify(&sg.type_name),
                        singleton: true,
                        container: c.name.clone(),
                        doc: di,
                        pos: sg.pos,
                        docs: doc_text(cx, &sg.docs, &sg.annotations, &target),
                    });
                }
            }
        }
    }
    // Check navigation property bindings point at something that exists.
    let set_names: BTreeSet<String> = all.iter().map(|s| s.name.clone()).collect();
    for (_, doc) in docs {
        for s in &doc.schemas {
            for c in &s.entity_containers {
                let bindings = c
                    .entity_sets
                    .iter()
                    .flat_map(|e| {
                        e.navigation_property_bindings
                            .iter()
                            .map(move |b| (&e.name, b))
                    })
                    .chain(c.singletons.iter().flat_map(|e| {
                        e.navigation_property_bindings
                            .iter()
                            .map(move |b| (&e.name, b))
                    }));
                for (owner, b) in bindings {
                    // Target: `SetName`, `Container/SetName` or `NS.Container/SetName`.
                    // Target: `Set`, `Set/containment/path` (through a singleton), optionally
                    // qualified with the container: `NS.Container/Set/...`. Bindings are not used
                    // for code, so a wrong target is a warning.
                    let mut segs = b.target.split('/');
                    let mut first = segs.next().unwrap_or("");
                    if first.contains('.') {
                        first = segs.next().unwrap_or("");
                    }
                    if !set_names.contains(first) {
                        let msg = format!(
                            "navigation property binding '{}' of '{owner}' targets '{}', which does not start at an entity set or singleton of this service",
                            b.path, b.target
                        );
                        cx.warn(b.pos, msg);
                    }
                }
            }
        }
    }

    let mut chosen: Vec<(String, &SetRef, String)> = Vec::new(); // (selection name, set, reason)
    let mut extra_roots: Vec<(QName, String)> = Vec::new();
    if matches!(cx.opts.selection, Selection::AllTypes) {
        for (q, e) in &cx.types {
            if !matches!(e.raw, RawType::Def(_)) {
                extra_roots.push((q.clone(), "every type (--all-types)".to_string()));
            }
        }
    }
    match &cx.opts.selection {
        Selection::All | Selection::AllTypes => {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for s in &all {
                if let Some(&prev) = seen.get(&s.name) {
                    if all[prev].ty == s.ty {
                        continue; // the same set described by two documents
                    }
                    let name = format!("{}_{}", s.name, s.doc);
                    chosen.push((name, s, format!("entity set '{}'", s.name)));
                    continue;
                }
                seen.insert(s.name.clone(), chosen.len());
                let what = if s.singleton {
                    "singleton"
                } else {
                    "entity set"
                };
                chosen.push((s.name.clone(), s, format!("{what} '{}'", s.name)));
            }
        }
        Selection::Names(names) => {
            for n in names {
                if let Some(s) = all.iter().find(|s| &s.name == n) {
                    chosen.push((n.clone(), s, format!("selected entity set '{n}'")));
                } else if let Some(s) = all
                    .iter()
                    .find(|s| s.ty == *n || s.ty.rsplit('.').next() == Some(n.as_str()))
                {
                    chosen.push((s.name.clone(), s, format!("selected entity type '{n}'")));
                } else if let Some(q) = type_named(cx, n) {
                    // An entity or complex type with no entity set (Graph: reachable only through
                    // navigation or containment): generate the type, no table.
                    extra_roots.push((q, format!("selected type '{n}'")));
                } else {
                    let mut known: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
                    known.sort_unstable();
                    known.truncate(20);
                    cx.diags.push(Diagnostic::error(format!(
                        "--entities: '{n}' is neither an entity set, a singleton nor an entity type of this service (entity sets: {}{})",
                        known.join(", "),
                        if all.len() > 20 { ", …" } else { "" }
                    )));
                }
            }
        }
        Selection::Config(entries) => {
            for (entity, endpoint) in entries {
                let path = endpoint.trim_start_matches('/');
                let (prefix, set) = match path.rsplit_once('/') {
                    Some((p, s)) => (p.to_string(), s.to_string()),
                    None => (String::new(), path.to_string()),
                };
                let candidates: Vec<&SetRef> = all.iter().filter(|s| s.name == set).collect();
                let stem_full = prefix.replace('/', ".").to_lowercase();
                let stem_first = prefix.split('/').next().unwrap_or("").to_lowercase();
                let pick = if candidates.len() <= 1 {
                    candidates.first().copied()
                } else {
                    let stem = |s: &SetRef| {
                        docs[s.doc]
                            .0
                            .path
                            .file_stem()
                            .map(|x| x.to_string_lossy().to_lowercase())
                            .unwrap_or_default()
                    };
                    candidates
                        .iter()
                        .find(|s| stem(s) == stem_full)
                        .or_else(|| candidates.iter().find(|s| stem(s) == stem_first))
                        .or(candidates.first())
                        .copied()
                };
                match pick {
                    Some(s) => chosen.push((entity.clone(), s, format!("config.json entity '{entity}'"))),
                    None => cx.diags.push(Diagnostic::error(format!(
                        "config.json: entity '{entity}': endpoint '{endpoint}' names entity set '{set}', which no cached $metadata document defines"
                    ))),
                }
            }
        }
    }
    let mut roots = extra_roots;
    let mut sets = BTreeMap::new();
    for (name, s, reason) in chosen {
        if !cx.types.contains_key(&s.ty) {
            let msg = format!(
                "{} '{}' has type '{}', which is not defined",
                if s.singleton {
                    "singleton"
                } else {
                    "entity set"
                },
                s.name,
                s.ty
            );
            cx.strict(s.pos, msg);
            continue;
        }
        if !matches!(cx.types[&s.ty].raw, RawType::Entity(_)) {
            let msg = format!(
                "entity set '{}' has type '{}', which is not an entity type",
                s.name, s.ty
            );
            cx.strict(s.pos, msg);
            continue;
        }
        roots.push((s.ty.clone(), reason));
        sets.insert(
            name.clone(),
            EntitySetDef {
                wire_name: s.name.clone(),
                entity_type: s.ty.clone(),
                is_singleton: s.singleton,
                sql_name: String::new(),
                container: s.container.clone(),
                docs: s.docs.clone(),
                pos: s.pos,
            },
        );
    }
    (roots, sets)
}

/// A type given by qualified name (or alias) or by a short name that only one namespace defines.
fn type_named(cx: &Ctx, n: &str) -> Option<QName> {
    let q = cx.qualify(n);
    if cx.types.contains_key(&q) {
        return Some(q);
    }
    let mut hits = cx
        .types
        .keys()
        .filter(|k| k.rsplit_once('.').map(|(_, s)| s) == Some(n));
    match (hits.next(), hits.next()) {
        (Some(one), None) => Some(one.clone()),
        _ => None,
    }
}

/// The type a property's type string refers to (after `Collection(...)`).
enum Target {
    Prim(Prim),
    Named(QName),
    Missing(String),
}

fn target_of(cx: &Ctx, type_name: &str) -> Target {
    let t = strip_collection(type_name).unwrap_or(type_name);
    if let Some(p) = Prim::from_edm(t) {
        return Target::Prim(p);
    }
    let q = cx.qualify(t);
    if cx.types.contains_key(&q) {
        Target::Named(q)
    } else {
        Target::Missing(t.to_string())
    }
}

fn base_of(cx: &Ctx, q: &str) -> Option<String> {
    match &cx.types.get(q)?.raw {
        RawType::Entity(e) => e.base_type.as_deref().map(|b| cx.qualify(b)),
        RawType::Complex(c) => c.base_type.as_deref().map(|b| cx.qualify(b)),
        _ => None,
    }
}

fn closure(
    cx: &mut Ctx,
    roots: &[(QName, String)],
) -> (BTreeSet<QName>, BTreeMap<QName, Vec<String>>) {
    let mut selected = BTreeSet::new();
    let mut reasons: BTreeMap<QName, Vec<String>> = BTreeMap::new();
    let mut queue: VecDeque<QName> = VecDeque::new();
    let mut add =
        |q: &str, why: String, selected: &mut BTreeSet<QName>, queue: &mut VecDeque<QName>| {
            let r = reasons.entry(q.to_string()).or_default();
            if r.len() < 5 && !r.contains(&why) {
                r.push(why);
            }
            if selected.insert(q.to_string()) {
                queue.push_back(q.to_string());
            }
        };
    for (q, why) in roots {
        add(q, why.clone(), &mut selected, &mut queue);
    }
    while let Some(q) = queue.pop_front() {
        let Some(entry) = cx.types.get(&q) else {
            continue;
        };
        let (props, base, pos): (Vec<&csdl::Property>, Option<&str>, Pos) = match &entry.raw {
            RawType::Entity(e) => (e.properties.iter().collect(), e.base_type.as_deref(), e.pos),
            RawType::Complex(c) => (c.properties.iter().collect(), c.base_type.as_deref(), c.pos),
            RawType::Def(_) | RawType::Enum(_) => continue,
        };
        if let Some(b) = base {
            let bq = cx.qualify(b);
            if cx.types.contains_key(&bq) {
                add(&bq, format!("base type of {q}"), &mut selected, &mut queue);
            } else {
                let msg = format!("base type '{b}' of '{q}' is not defined");
                cx.strict(pos, msg);
            }
        }
        for p in props {
            match target_of(cx, &p.type_name) {
                Target::Named(t) => {
                    if !matches!(cx.types[&t].raw, RawType::Def(_)) {
                        add(
                            &t,
                            format!("type of property {q}/{}", p.name),
                            &mut selected,
                            &mut queue,
                        );
                    }
                }
                Target::Prim(_) => {}
                Target::Missing(t) => {
                    let msg = format!("unknown type '{t}' of property '{}' in '{q}'", p.name);
                    cx.strict(p.pos, msg);
                }
            }
        }
    }
    (selected, reasons)
}

/// Facets from CSDL to the model's form.
fn model_facets(f: &csdl::Facets) -> Facets {
    Facets {
        max_length: match f.max_length {
            Some(csdl::MaxLength::Length(n)) => Some(n),
            _ => None,
        },
        max_length_max: matches!(f.max_length, Some(csdl::MaxLength::Max)),
        precision: f.precision,
        scale: match f.scale {
            Some(csdl::Scale::Number(n)) => Some(n),
            _ => None,
        },
        scale_variable: matches!(f.scale, Some(csdl::Scale::Variable | csdl::Scale::Floating)),
        srid: f.srid.clone(),
        default_value: f.default_value.clone(),
    }
}

/// Resolves a property's type string into a [`TypeRef`] and its Rust mapping.
fn property_type(
    cx: &mut Ctx,
    owner: &str,
    p: &csdl::Property,
) -> (TypeRef, String, Facets, Option<crate::edm_types::RustType>) {
    let is_coll = strip_collection(&p.type_name).is_some();
    let mut facets = model_facets(&p.facets);
    let wrap = |t: TypeRef| {
        if is_coll {
            TypeRef::Collection(Box::new(t))
        } else {
            t
        }
    };
    let edm_inner;
    let (inner, prim) = match target_of(cx, &p.type_name) {
        Target::Prim(pr) => {
            edm_inner = pr.edm_name().to_string();
            (TypeRef::Primitive(pr), Some(pr))
        }
        Target::Named(q) => {
            edm_inner = q.clone();
            match &cx.types[&q].raw {
                RawType::Entity(_) => (TypeRef::Entity(q), None),
                RawType::Complex(_) => (TypeRef::Complex(q), None),
                RawType::Enum(e) => (
                    TypeRef::Enum {
                        qname: q.clone(),
                        flags: e.is_flags,
                    },
                    None,
                ),
                RawType::Def(d) => {
                    // A type definition is its underlying primitive with its facets.
                    let td = model_facets(&d.facets);
                    if facets.precision.is_none() {
                        facets.precision = td.precision;
                    }
                    if facets.scale.is_none() && !facets.scale_variable {
                        facets.scale = td.scale;
                        facets.scale_variable = td.scale_variable;
                    }
                    if facets.max_length.is_none() {
                        facets.max_length = td.max_length;
                    }
                    match Prim::from_edm(&d.underlying_type) {
                        Some(pr) => (TypeRef::Primitive(pr), Some(pr)),
                        None => {
                            let msg = format!(
                                "type definition '{q}' has underlying type '{}', which is not an Edm primitive type",
                                d.underlying_type
                            );
                            let pos = d.pos;
                            cx.strict(pos, msg);
                            (TypeRef::Unresolved(q.clone()), None)
                        }
                    }
                }
            }
        }
        Target::Missing(t) => {
            edm_inner = t.clone();
            (TypeRef::Unresolved(t), None)
        }
    };
    let edm = if is_coll {
        format!("Collection({edm_inner})")
    } else {
        edm_inner
    };
    let override_key = format!("{owner}/{}", p.name);
    let rust = if let Some(o) = cx.opts.type_map.properties.get(&override_key) {
        Some(o.clone())
    } else if let Some(pr) = prim {
        cx.opts
            .type_map
            .for_prim(pr, facets.precision, facets.scale.is_some())
            .cloned()
    } else if matches!(inner, TypeRef::Unresolved(_)) {
        cx.opts.type_map.types.get("Edm.Untyped").cloned()
    } else {
        None
    };
    (wrap(inner), edm, facets, rust)
}

fn resolve_type(cx: &mut Ctx, q: &str, selected: &BTreeSet<QName>) -> Option<TypeDef> {
    let entry = cx.types.get(q)?;
    let ns = entry.ns.clone();
    let wire_name = q.rsplit('.').next().unwrap_or(q).to_string();
    match entry.raw {
        RawType::Enum(e) => {
            let mut next = 0i64;
            let members = e
                .members
                .iter()
                .map(|m| {
                    let v = m.value.unwrap_or(next);
                    next = v + 1;
                    let target = format!("{q}/{}", m.name);
                    EnumMemberDef {
                        wire_name: m.name.clone(),
                        rust_name: String::new(),
                        value: v,
                        docs: doc_text(cx, &m.docs, &m.annotations, &target),
                        pos: m.pos,
                    }
                })
                .collect();
            Some(TypeDef {
                qname: q.to_string(),
                namespace: ns,
                wire_name,
                rust_name: String::new(),
                docs: doc_text(cx, &e.docs, &e.annotations, q),
                pos: e.pos,
                kind: TypeKind::Enum(EnumDef {
                    underlying: e
                        .underlying_type
                        .clone()
                        .unwrap_or_else(|| "Edm.Int32".into()),
                    is_flags: e.is_flags,
                    members,
                    fallback_variant: String::new(),
                }),
            })
        }
        RawType::Def(_) => None,
        RawType::Entity(_) | RawType::Complex(_) => {
            // Inheritance chain, base-most first; a cycle is an error.
            let mut chain = vec![q.to_string()];
            let mut cur = q.to_string();
            while let Some(b) = base_of(cx, &cur) {
                if chain.contains(&b) {
                    // SharePoint's `CardDesigns` names itself as its base type: the cycle is cut
                    // where it closes.
                    let pos = type_pos(cx, &cur);
                    cx.warn(pos, format!("base type cycle {} → {b} is ignored: '{cur}' is generated without that base type", chain.join(" → ")));
                    break;
                }
                if !cx.types.contains_key(&b) {
                    break;
                }
                chain.push(b.clone());
                cur = b;
            }
            chain.reverse();
            let mut properties = Vec::new();
            let mut navigations = Vec::new();
            let mut key: Option<Vec<String>> = None;
            let mut open_type = false;
            let mut has_stream = false;
            for t in &chain {
                let raw_props: Vec<&csdl::Property>;
                let raw_navs: Vec<&csdl::NavigationProperty>;
                match &cx.types[t].raw {
                    RawType::Entity(e) => {
                        raw_props = e.properties.iter().collect();
                        raw_navs = e.navigation_properties.iter().collect();
                        if let Some(k) = &e.key {
                            key = Some(k.iter().map(|r| r.name.clone()).collect());
                        }
                        open_type |= e.open_type;
                        has_stream |= e.has_stream;
                    }
                    RawType::Complex(c) => {
                        raw_props = c.properties.iter().collect();
                        raw_navs = c.navigation_properties.iter().collect();
                        open_type |= c.open_type;
                    }
                    _ => continue,
                }
                for p in raw_props {
                    if let Some(prev) = properties
                        .iter()
                        .find(|x: &&PropertyDef| x.wire_name == p.name)
                    {
                        let msg = format!(
                            "property '{}' of '{q}' is declared twice (first in '{}' at {}:{}); JSON cannot tell the two apart",
                            p.name, prev.declared_in, prev.pos.line, prev.pos.column
                        );
                        cx.strict(p.pos, msg);
                        continue;
                    }
                    let (ty, edm_type, facets, rust) = property_type(cx, t, p);
                    let target = format!("{t}/{}", p.name);
                    properties.push(PropertyDef {
                        wire_name: p.name.clone(),
                        rust_name: String::new(),
                        sql_name: String::new(),
                        ty,
                        edm_type,
                        nullable: p.facets.nullable.unwrap_or(true),
                        facets,
                        docs: doc_text(cx, &p.docs, &p.annotations, &target),
                        declared_in: t.clone(),
                        is_key: false,
                        boxed: false,
                        rust,
                        pos: p.pos,
                    });
                }
                for n in raw_navs {
                    if let Some(nav) = resolve_nav(cx, t, n) {
                        if selected.contains(&nav.target)
                            && matches!(
                                cx.types.get(&nav.target).map(|e| &e.raw),
                                Some(RawType::Entity(_))
                            )
                        {
                            navigations.push(nav);
                        }
                    }
                }
            }
            let (is_abstract, base_type, docs, pos, is_entity) = match &cx.types[q].raw {
                RawType::Entity(e) => (
                    e.is_abstract,
                    e.base_type.as_deref().map(|b| cx.qualify(b)),
                    doc_text(cx, &e.docs, &e.annotations, q),
                    e.pos,
                    true,
                ),
                RawType::Complex(c) => (
                    c.is_abstract,
                    c.base_type.as_deref().map(|b| cx.qualify(b)),
                    doc_text(cx, &c.docs, &c.annotations, q),
                    c.pos,
                    false,
                ),
                _ => return None,
            };
            let key = if is_entity {
                key.unwrap_or_default()
            } else {
                Vec::new()
            };
            for k in &key {
                match properties.iter_mut().find(|p| &p.wire_name == k) {
                    Some(p) => p.is_key = true,
                    None => {
                        let msg =
                            format!("key property '{k}' of '{q}' is not a property of the type");
                        cx.strict(pos, msg);
                    }
                }
            }
            let key: Vec<String> = key
                .into_iter()
                .filter(|k| properties.iter().any(|p| &p.wire_name == k))
                .collect();
            // Key properties first, in key order; then the rest in declaration order.
            let mut ordered: Vec<PropertyDef> = Vec::with_capacity(properties.len());
            for k in &key {
                if let Some(i) = properties.iter().position(|p| &p.wire_name == k) {
                    ordered.push(properties.remove(i));
                }
            }
            ordered.extend(properties);
            let sd = StructDef {
                base_type,
                is_abstract,
                open_type,
                has_stream,
                properties: ordered,
                navigations,
                key,
                key_rust_name: None,
                extra_field: None,
            };
            Some(TypeDef {
                qname: q.to_string(),
                namespace: ns,
                wire_name,
                rust_name: String::new(),
                docs,
                pos,
                kind: if is_entity {
                    TypeKind::Entity(sd)
                } else {
                    TypeKind::Complex(sd)
                },
            })
        }
    }
}

fn type_pos(cx: &Ctx, q: &str) -> Pos {
    match cx.types.get(q).map(|e| &e.raw) {
        Some(RawType::Entity(e)) => e.pos,
        Some(RawType::Complex(c)) => c.pos,
        Some(RawType::Enum(e)) => e.pos,
        Some(RawType::Def(d)) => d.pos,
        None => Pos::default(),
    }
}

fn resolve_nav(cx: &mut Ctx, owner: &str, n: &csdl::NavigationProperty) -> Option<NavigationDef> {
    let (target, many, nullable, constraints) = if let Some(t) = &n.type_name {
        let many = strip_collection(t).is_some();
        let inner = strip_collection(t).unwrap_or(t);
        let constraints = n
            .referential_constraints
            .iter()
            .map(|c| (c.property.clone(), c.referenced_property.clone()))
            .collect();
        (
            cx.qualify(inner),
            many,
            n.nullable.unwrap_or(true),
            constraints,
        )
    } else {
        let rel = cx.qualify(n.relationship.as_deref()?);
        let Some(assoc) = cx.associations.get(&rel).copied() else {
            let msg = format!(
                "navigation property '{}' of '{owner}' names association '{rel}', which is not defined",
                n.name
            );
            cx.strict(n.pos, msg);
            return None;
        };
        let to = n.to_role.as_deref()?;
        let Some(end) = assoc.ends.iter().find(|e| e.role == to) else {
            let msg = format!(
                "navigation property '{}' of '{owner}': association '{rel}' has no end with role '{to}'",
                n.name
            );
            cx.strict(n.pos, msg);
            return None;
        };
        let mut constraints = Vec::new();
        if let Some(rc) = &assoc.referential_constraint {
            if rc.principal_role == to {
                for (d, p) in rc.dependent_properties.iter().zip(&rc.principal_properties) {
                    constraints.push((d.clone(), p.clone()));
                }
            }
        }
        (
            cx.qualify(&end.type_name),
            end.multiplicity == "*",
            end.multiplicity != "1",
            constraints,
        )
    };
    if !cx.types.contains_key(&target) {
        let msg = format!(
            "navigation property '{}' of '{owner}' targets '{target}', which is not defined",
            n.name
        );
        cx.strict(n.pos, msg);
        return None;
    }
    Some(NavigationDef {
        wire_name: n.name.clone(),
        rust_name: String::new(),
        target,
        many,
        nullable,
        contains_target: n.contains_target,
        partner: n.partner.clone(),
        constraints,
        pos: n.pos,
    })
}

/// Box non-collection struct-typed properties that close a cycle (a type containing itself
/// directly or through other structs would have infinite size): a property is boxed when its type
/// is in the same strongly connected component of the "contains" graph as its owner.
fn mark_boxed(model: &mut Model) {
    let names: Vec<&str> = model.types.keys().map(String::as_str).collect();
    let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (i, q) in names.iter().enumerate() {
        if let Some(s) = model.types[*q].as_struct() {
            for p in &s.properties {
                if let TypeRef::Complex(x) | TypeRef::Entity(x) = &p.ty {
                    if let Some(&j) = index.get(x.as_str()) {
                        edges[i].push(j);
                    }
                }
            }
        }
    }
    let scc = strongly_connected(&edges);
    let mut to_box: Vec<(String, usize)> = Vec::new();
    for (i, q) in names.iter().enumerate() {
        if let Some(s) = model.types[*q].as_struct() {
            for (pi, p) in s.properties.iter().enumerate() {
                if let TypeRef::Complex(x) | TypeRef::Entity(x) = &p.ty {
                    if let Some(&j) = index.get(x.as_str()) {
                        if scc[i] == scc[j] {
                            to_box.push((q.to_string(), pi));
                        }
                    }
                }
            }
        }
    }
    for (q, i) in to_box {
        if let Some(TypeKind::Entity(s) | TypeKind::Complex(s)) =
            model.types.get_mut(&q).map(|t| &mut t.kind)
        {
            s.properties[i].boxed = true;
        }
    }
}

/// Tarjan's algorithm, iterative: the component id of every node.
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<usize> {
    let n = edges.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut comp = vec![usize::MAX; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut next = 0;
    let mut ncomp = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        // (node, next edge position)
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut ei)) = work.last_mut() {
            if *ei < edges[v].len() {
                let w = edges[v][*ei];
                *ei += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp[w] = ncomp;
                        if w == v {
                            break;
                        }
                    }
                    ncomp += 1;
                }
            }
        }
    }
    comp
}

fn record_operations(cx: &Ctx, model: &mut Model) {
    for (_, doc) in cx.docs {
        for s in &doc.schemas {
            for o in &s.operations {
                model.operations.push(OperationDef {
                    kind: format!("{:?}", o.kind),
                    name: o.name.clone(),
                    namespace: Some(s.namespace.clone()),
                    is_bound: o.is_bound,
                    import: false,
                    parameters: o
                        .parameters
                        .iter()
                        .map(|p| (p.name.clone(), p.type_name.clone()))
                        .collect(),
                    return_type: o.return_type.clone(),
                });
            }
            for c in &s.entity_containers {
                for i in &c.operation_imports {
                    model.operations.push(OperationDef {
                        kind: format!("{:?}Import", i.kind),
                        name: i.name.clone(),
                        namespace: None,
                        is_bound: i.is_bindable,
                        import: true,
                        parameters: i
                            .parameters
                            .iter()
                            .map(|p| (p.name.clone(), p.type_name.clone()))
                            .collect(),
                        return_type: i.return_type.clone().or_else(|| i.operation.clone()),
                    });
                }
            }
        }
    }
}

/// Runs the naming pipeline over every scope.
fn name_everything(cx: &mut Ctx, model: &mut Model) {
    let file_of = |f: u32| -> PathBuf {
        cx.docs
            .get(f as usize)
            .map(|(s, _)| s.path.clone())
            .unwrap_or_default()
    };
    let mut diags = Diagnostics::default();
    // Namespaces → modules.
    let nss: BTreeSet<String> = model.types.values().map(|t| t.namespace.clone()).collect();
    let ns_items: Vec<NameItem> = nss
        .iter()
        .map(|n| NameItem {
            original: n.clone(),
            candidate: naming::module_name(n),
            pos: Pos::default(),
        })
        .collect();
    let mods = naming::make_unique(
        "namespaces",
        &ns_items,
        Compare::Exact,
        &[],
        &file_of,
        &mut diags,
    );
    for (n, m) in nss.iter().zip(mods) {
        let alias = cx
            .aliases
            .iter()
            .find(|(_, v)| *v == n)
            .map(|(k, _)| k.clone());
        model.namespaces.insert(
            n.clone(),
            NamespaceDef {
                namespace: n.clone(),
                alias,
                module: m,
            },
        );
    }

    // Types (and the key structs derived from entity names) share one scope: the service module
    // re-exports every namespace's types. Cross-namespace duplicates get their namespace as
    // prefix; case-only duplicates a number.
    let qnames: Vec<QName> = model.types.keys().cloned().collect();
    let mut items: Vec<NameItem> = Vec::new();
    for q in &qnames {
        let t = &model.types[q];
        items.push(NameItem {
            original: q.clone(),
            candidate: cx
                .opts
                .renames
                .get(q)
                .cloned()
                .unwrap_or_else(|| naming::rust_type_name(&t.wire_name)),
            pos: t.pos,
        });
    }
    let mut names = unique_type_names(&items, &file_of, &mut diags);
    for (q, n) in qnames.iter().zip(names.drain(..)) {
        if let Some(t) = model.types.get_mut(q) {
            t.rust_name = n;
        }
    }
    // Key structs: `<Entity>Key`, unless taken.
    let mut taken: BTreeSet<String> = model.types.values().map(|t| t.rust_name.clone()).collect();
    for q in &qnames {
        let Some(t) = model.types.get_mut(q) else {
            continue;
        };
        let rust_name = t.rust_name.clone();
        if let TypeKind::Entity(s) = &mut t.kind {
            if !s.key.is_empty() {
                // `Self_` + `Key` would not be UpperCamelCase.
                let stem = rust_name.trim_start_matches("r#").trim_end_matches('_');
                let mut cand = format!("{stem}Key");
                let mut n = 2;
                while taken.contains(&cand) {
                    cand = format!("{stem}Key{n}");
                    n += 1;
                }
                taken.insert(cand.clone());
                s.key_rust_name = Some(cand);
            }
        }
    }

    // Members of each type.
    for q in &qnames {
        let Some(t) = model.types.get_mut(q) else {
            continue;
        };
        let scope_rust = format!("fields of {q}");
        match &mut t.kind {
            TypeKind::Enum(e) => {
                let items: Vec<NameItem> = e
                    .members
                    .iter()
                    .map(|m| NameItem {
                        original: m.wire_name.clone(),
                        candidate: naming::rust_type_name(&m.wire_name),
                        pos: m.pos,
                    })
                    .collect();
                let names = unique_type_names_reserved(
                    &items,
                    &["UnknownValue"],
                    &file_of,
                    &mut diags,
                    &format!("members of {q}"),
                );
                for (m, n) in e.members.iter_mut().zip(names) {
                    m.rust_name = n;
                }
                e.fallback_variant = "UnknownValue".to_string();
            }
            TypeKind::Entity(s) | TypeKind::Complex(s) => {
                let renames = &cx.opts.renames;
                let mut items: Vec<NameItem> = s
                    .properties
                    .iter()
                    .map(|p| NameItem {
                        original: p.wire_name.clone(),
                        candidate: renames
                            .get(&format!("{q}/{}", p.wire_name))
                            .or_else(|| renames.get(&format!("{}/{}", p.declared_in, p.wire_name)))
                            .cloned()
                            .unwrap_or_else(|| naming::rust_field_name(&p.wire_name)),
                        pos: p.pos,
                    })
                    .collect();
                items.extend(s.navigations.iter().map(|n| NameItem {
                    original: n.wire_name.clone(),
                    candidate: naming::rust_field_name(&n.wire_name),
                    pos: n.pos,
                }));
                if s.open_type {
                    items.push(NameItem {
                        original: "\u{10FFFF}additional_properties".into(),
                        candidate: "additional_properties".into(),
                        pos: t.pos,
                    });
                }
                let names = naming::make_unique(
                    &scope_rust,
                    &items,
                    Compare::Exact,
                    &[],
                    &file_of,
                    &mut diags,
                );
                let np = s.properties.len();
                let nn = s.navigations.len();
                for (p, n) in s.properties.iter_mut().zip(&names[..np]) {
                    p.rust_name = n.clone();
                }
                for (nav, n) in s.navigations.iter_mut().zip(&names[np..np + nn]) {
                    nav.rust_name = n.clone();
                }
                if s.open_type {
                    s.extra_field = names.last().cloned();
                }
                let sql_items: Vec<NameItem> = s
                    .properties
                    .iter()
                    .map(|p| NameItem {
                        original: p.wire_name.clone(),
                        candidate: naming::sql_base_name(&p.wire_name),
                        pos: p.pos,
                    })
                    .collect();
                // A collision the Rust scope already reported (same originals) is not reported
                // again for SQL; SQL-only ones (case-insensitive, shortened names) are.
                let mut sql_diags = Diagnostics::default();
                let sql = naming::make_unique(
                    &format!("columns of {q}"),
                    &sql_items,
                    Compare::Sql,
                    SYSTEM_COLUMNS,
                    &file_of,
                    &mut sql_diags,
                );
                let renamed_in_rust: BTreeSet<&str> = s
                    .properties
                    .iter()
                    .filter(|p| p.rust_name != naming::rust_field_name(&p.wire_name))
                    .map(|p| p.wire_name.as_str())
                    .collect();
                for d in sql_diags.0 {
                    let quoted = d.message.split('\'').nth(1).unwrap_or("");
                    if !renamed_in_rust.contains(quoted) {
                        diags.push(d);
                    }
                }
                for (p, n) in s.properties.iter_mut().zip(sql) {
                    p.sql_name = n;
                }
            }
        }
    }

    // Tables: one per selected entity set, named after the selection name.
    let set_names: Vec<String> = model.entity_sets.keys().cloned().collect();
    let items: Vec<NameItem> = set_names
        .iter()
        .map(|n| NameItem {
            original: n.clone(),
            candidate: naming::sql_base_name(n),
            pos: model.entity_sets[n].pos,
        })
        .collect();
    let table_rules = naming::Scope {
        name: "tables",
        cmp: Compare::Sql,
        reserved: &[],
        camel_suffix: false,
        hint: "set \"table\" for the entity in config.json",
    };
    let tables = naming::make_unique_in(&table_rules, &items, &file_of, &mut diags);
    for (n, t) in set_names.iter().zip(tables) {
        if let Some(s) = model.entity_sets.get_mut(n) {
            s.sql_name = t;
        }
    }
    // Last line of defence: every identifier must be valid Rust.
    for t in model.types.values() {
        let mut check = |name: &str, what: &str| {
            if !naming::is_valid_ident(name) {
                diags.push(Diagnostic::error(format!(
                    "internal naming error: {what} of '{}' became '{name}', which is not a Rust identifier",
                    t.qname
                )));
            }
        };
        check(&t.rust_name, "type name");
        if let Some(s) = t.as_struct() {
            for p in &s.properties {
                check(&p.rust_name, "field");
            }
        }
    }
    cx.diags.extend(diags);
}

/// Type-name uniqueness: first by namespace prefix for cross-namespace duplicates, then by a
/// numeric suffix (no underscore: `non_camel_case_types` would reject `Name_2`).
fn unique_type_names(
    items: &[NameItem],
    file_of: &dyn Fn(u32) -> PathBuf,
    diags: &mut Diagnostics,
) -> Vec<String> {
    // Group by candidate; members after the first (by qualified name) get their namespace prefix.
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        groups.entry(it.candidate.as_str()).or_default().push(i);
    }
    let mut cands: Vec<NameItem> = items.to_vec();
    for members in groups.values() {
        if members.len() < 2 {
            continue;
        }
        let mut ms = members.clone();
        ms.sort_by(|a, b| {
            items[*a]
                .original
                .as_bytes()
                .cmp(items[*b].original.as_bytes())
        });
        let first_ns = ns_of(&items[ms[0]].original);
        for &m in &ms[1..] {
            let ns = ns_of(&items[m].original);
            if ns != first_ns {
                let prefix = naming::rust_type_name(ns);
                let new = format!(
                    "{}{}",
                    prefix.trim_start_matches("r#"),
                    items[m].candidate.trim_start_matches("r#")
                );
                diags.push(
                    Diagnostic::warning(format!(
                        "types: '{}' and '{}' both become '{}'; '{}' is named '{new}' (pin another name under [rename] in service.toml)",
                        items[m].original, items[ms[0]].original, items[m].candidate, items[m].original
                    ))
                    .at(file_of(items[m].pos.file), items[m].pos.line, items[m].pos.column),
                );
                cands[m].candidate = new;
            }
        }
    }
    unique_type_names_reserved(&cands, &[], file_of, diags, "types")
}

fn ns_of(q: &str) -> &str {
    q.rsplit_once('.').map(|(n, _)| n).unwrap_or("")
}

/// Like [`naming::make_unique`] but with CamelCase suffixes (`Name2`: `Name_2` would not be
/// UpperCamelCase).
fn unique_type_names_reserved(
    items: &[NameItem],
    reserved: &[&str],
    file_of: &dyn Fn(u32) -> PathBuf,
    diags: &mut Diagnostics,
    scope: &str,
) -> Vec<String> {
    let rules = naming::Scope {
        name: scope,
        cmp: Compare::Exact,
        reserved,
        camel_suffix: true,
        hint: naming::RENAME_HINT,
    };
    naming::make_unique_in(&rules, items, file_of, diags)
}

fn check_keys(cx: &mut Ctx, model: &Model) {
    for s in model.entity_sets.values() {
        if s.is_singleton {
            continue;
        }
        if let Some(t) = model.types.get(&s.entity_type) {
            if let TypeKind::Entity(sd) = &t.kind {
                if sd.key.is_empty() {
                    let msg = format!(
                        "entity type '{}' of entity set '{}' has no key: rows cannot be upserted; name the key properties with \"key\" for this entity in config.json",
                        t.qname, s.wire_name
                    );
                    cx.warn(t.pos, msg);
                }
            }
        }
    }
}
