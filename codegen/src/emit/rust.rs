//! Model → Rust source (syn + quote + prettyplease). A pure function of the model.
//!
//! Per entity and complex type a struct (`Option` for nullable properties, `#[serde(rename)]` only
//! where the Rust name differs from the wire name, doc comments from the metadata), per enum type an
//! enum with a fallback variant for values added to the service later, per keyed entity a key
//! struct and an `odata_runtime::Entity` implementation. Every path is absolute
//! (`::std::option::Option`) so that services with types named `Option`, `Result` or `String`
//! compile.

use crate::edm_types::RustType;
use crate::model::{
    EnumDef, Model, NavigationDef, PropertyDef, StructDef, TypeDef, TypeKind, TypeRef,
};
use crate::naming::{self, Compare, NameItem};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use std::collections::BTreeMap;

/// Errors that mean the model (or a user override) produced something that is not Rust.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("type override for {what}: '{text}' is not a Rust type")]
    BadType { what: String, text: String },
    #[error("generated code for {what} does not parse: {message}")]
    Unparsable { what: String, message: String },
}

/// Where the generated module sits, so types can refer to each other as `<root>::Type`.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `crate` for a standalone crate; `crate::northwind` inside the `generated` crate.
    pub root: String,
}

impl Layout {
    fn root_tokens(&self) -> TokenStream {
        let segs = self.root.split("::").map(ident);
        quote! { #(#segs)::* }
    }
}

pub(crate) fn ident(name: &str) -> syn::Ident {
    // Names come from the naming pipeline, which guarantees valid identifiers (checked in
    // `model::build`); raw identifiers keep their `r#`.
    match name.strip_prefix("r#") {
        Some(raw) => syn::Ident::new_raw(raw, proc_macro2::Span::call_site()),
        None => format_ident!("{}", name),
    }
}

fn unraw(name: &str) -> &str {
    name.strip_prefix("r#").unwrap_or(name)
}

thread_local! {
    /// Parsed Rust types by their text: the type table has a few dozen entries, used by hundreds
    /// of thousands of properties in the largest services.
    static TYPE_CACHE: std::cell::RefCell<std::collections::HashMap<String, Option<TokenStream>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn parse_type(text: &str, what: &str) -> Result<TokenStream, EmitError> {
    let parsed = TYPE_CACHE.with(|c| {
        c.borrow_mut()
            .entry(text.to_string())
            .or_insert_with(|| {
                syn::parse_str::<syn::Type>(text)
                    .ok()
                    .map(|t| quote! { #t })
            })
            .clone()
    });
    parsed.ok_or_else(|| EmitError::BadType {
        what: what.to_string(),
        text: text.to_string(),
    })
}

fn valid_path(text: &str) -> bool {
    TYPE_CACHE.with(|c| {
        c.borrow_mut()
            .entry(format!("path:{text}"))
            .or_insert_with(|| {
                syn::parse_str::<syn::Path>(text)
                    .ok()
                    .map(|p| quote! { #p })
            })
            .is_some()
    })
}

fn docs_attrs(docs: Option<&str>, lead: Option<String>) -> TokenStream {
    let mut lines: Vec<String> = Vec::new();
    if let Some(l) = lead {
        lines.push(format!(" {l}"));
    }
    if let Some(d) = docs {
        if !lines.is_empty() {
            lines.push(String::new());
        }
        for l in d.lines() {
            // Keep doc comments from turning into code blocks or HTML by accident.
            let l = l.trim_end().replace('\t', "    ");
            lines.push(if l.is_empty() {
                String::new()
            } else {
                format!(" {}", l.trim_start())
            });
        }
    }
    quote! { #( #[doc = #lines] )* }
}

/// The Rust type and serde attributes of one structural property.
struct FieldShape {
    ty: TokenStream,
    serde: Vec<TokenStream>,
}

fn adapter_attr(adapter: &str) -> TokenStream {
    let s = format!("::odata_runtime::serde_with::As::<{adapter}>");
    quote! { with = #s }
}

fn type_path(model: &Model, layout: &Layout, q: &str) -> TokenStream {
    let root = layout.root_tokens();
    match model.types.get(q) {
        Some(t) => {
            let id = ident(&t.rust_name);
            quote! { #root::#id }
        }
        None => quote! { ::serde_json::Value },
    }
}

fn field_shape(
    model: &Model,
    layout: &Layout,
    owner: &str,
    p: &PropertyDef,
) -> Result<FieldShape, EmitError> {
    let what = format!("{owner}/{}", p.wire_name);
    let nullable = p.nullable && !p.ty.is_collection();
    let elem = p.ty.element();
    // (element type, element adapter)
    let (et, adapter): (TokenStream, Option<String>) = match elem {
        TypeRef::Primitive(_) | TypeRef::Unresolved(_) => {
            let rt: RustType = p.rust.clone().unwrap_or(RustType {
                rust: "::serde_json::Value".into(),
                adapter: None,
                crates: vec!["serde_json".into()],
            });
            let t = parse_type(&rt.rust, &what)?;
            if let Some(a) = &rt.adapter {
                // Validated here so a bad override is an error, not unparsable output.
                if !valid_path(a) {
                    return Err(EmitError::BadType {
                        what: what.clone(),
                        text: a.clone(),
                    });
                }
            }
            (t, rt.adapter.clone())
        }
        TypeRef::Complex(q) | TypeRef::Entity(q) => {
            let t = type_path(model, layout, q);
            if p.boxed {
                (quote! { ::std::boxed::Box<#t> }, None)
            } else {
                (t, None)
            }
        }
        TypeRef::Enum { qname, flags } => {
            let t = type_path(model, layout, qname);
            if *flags {
                (quote! { ::odata_runtime::types::Flags<#t> }, None)
            } else {
                (t, None)
            }
        }
        // `element()` strips collections; a nested collection is raw JSON.
        TypeRef::Collection(_) => (quote! { ::serde_json::Value }, None),
    };
    let mut serde = Vec::new();
    let ty = if p.ty.is_collection() {
        serde.push(quote! { default });
        if let Some(a) = adapter {
            serde.push(adapter_attr(&format!("::std::vec::Vec<{a}>")));
        }
        quote! { ::std::vec::Vec<#et> }
    } else if nullable {
        serde.push(quote! { default });
        if let Some(a) = adapter {
            serde.push(adapter_attr(&format!("::std::option::Option<{a}>")));
        }
        quote! { ::std::option::Option<#et> }
    } else {
        if let Some(a) = adapter {
            serde.push(adapter_attr(&a));
        }
        et
    };
    Ok(FieldShape { ty, serde })
}

fn rename_attr(wire: &str, rust: &str) -> Option<TokenStream> {
    if unraw(rust) == wire {
        None
    } else {
        Some(quote! { rename = #wire })
    }
}

fn serde_attr(parts: Vec<TokenStream>) -> TokenStream {
    if parts.is_empty() {
        quote! {}
    } else {
        quote! { #[serde( #(#parts),* )] }
    }
}

fn emitted_properties(s: &StructDef) -> impl Iterator<Item = &PropertyDef> {
    s.properties.iter().filter(|p| !p.ty.is_stream())
}

fn nav_field(model: &Model, layout: &Layout, n: &NavigationDef) -> TokenStream {
    let t = type_path(model, layout, &n.target);
    let ty = if n.many {
        quote! { ::std::option::Option<::std::vec::Vec<#t>> }
    } else {
        quote! { ::std::option::Option<::std::boxed::Box<#t>> }
    };
    let mut parts: Vec<TokenStream> = rename_attr(&n.wire_name, &n.rust_name)
        .into_iter()
        .collect();
    parts.push(quote! { default });
    parts.push(quote! { skip_serializing_if = "::std::option::Option::is_none" });
    parts.push(quote! { with = "::odata_runtime::wire::nav" });
    let attr = serde_attr(parts);
    let name = ident(&n.rust_name);
    let doc = format!(
        " Navigation to `{}` ({}); filled only when the request expands it.",
        n.target,
        if n.many { "many" } else { "one" }
    );
    quote! {
        #[doc = #doc]
        #attr
        pub #name: #ty,
    }
}

fn emit_struct(
    model: &Model,
    layout: &Layout,
    t: &TypeDef,
    s: &StructDef,
) -> Result<TokenStream, EmitError> {
    let name = ident(&t.rust_name);
    let kind = if t.is_entity() {
        "Entity type"
    } else {
        "Complex type"
    };
    let mut lead = format!("{kind} `{}`", t.qname);
    if let Some(b) = &s.base_type {
        lead.push_str(&format!(
            " (derived from `{b}`; inherited properties included)"
        ));
    }
    lead.push('.');
    let doc = docs_attrs(t.docs.as_deref(), Some(lead));
    let mut fields = Vec::new();
    for p in emitted_properties(s) {
        let shape = field_shape(model, layout, &t.qname, p)?;
        let mut parts: Vec<TokenStream> = rename_attr(&p.wire_name, &p.rust_name)
            .into_iter()
            .collect();
        parts.extend(shape.serde);
        let attr = serde_attr(parts);
        let fname = ident(&p.rust_name);
        let ty = shape.ty;
        let mut lead = format!("`{}`: `{}`", p.wire_name, p.edm_type);
        if p.is_key {
            lead.push_str(", key");
        }
        if let Some(n) = p.facets.max_length {
            lead.push_str(&format!(", max length {n}"));
        }
        if let Some(pr) = p.facets.precision {
            match p.facets.scale {
                Some(sc) => lead.push_str(&format!(", precision {pr}, scale {sc}")),
                None => lead.push_str(&format!(", precision {pr}")),
            }
        }
        if p.declared_in != t.qname {
            lead.push_str(&format!(" (from `{}`)", p.declared_in));
        }
        lead.push('.');
        let fdoc = docs_attrs(p.docs.as_deref(), Some(lead));
        fields.push(quote! {
            #fdoc
            #attr
            pub #fname: #ty,
        });
    }
    for n in &s.navigations {
        fields.push(nav_field(model, layout, n));
    }
    if let Some(extra) = &s.extra_field {
        let f = ident(extra);
        fields.push(quote! {
            /// Dynamic properties of this open type (and any other member the service sends).
            #[serde(flatten)]
            pub #f: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
        });
    }
    let mut out = quote! {
        #doc
        #[derive(::std::fmt::Debug, ::std::clone::Clone, ::std::cmp::PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        pub struct #name {
            #(#fields)*
        }
    };
    if let TypeKind::Entity(_) = &t.kind {
        out.extend(emit_entity_impl(model, layout, t, s)?);
    }
    Ok(out)
}

fn emit_entity_impl(
    model: &Model,
    layout: &Layout,
    t: &TypeDef,
    s: &StructDef,
) -> Result<TokenStream, EmitError> {
    let sets = model.sets_of(&t.qname);
    let Some(set) = sets.first() else {
        return Ok(quote! {});
    };
    let name = ident(&t.rust_name);
    let type_name = &t.qname;
    let set_name = &set.wire_name;
    let dialect = format_ident!("{}", model.odata_version.as_str());
    let props: Vec<&PropertyDef> = emitted_properties(s).collect();
    let infos = props.iter().map(|p| {
        let wire = &p.wire_name;
        let rust = unraw(&p.rust_name);
        let sql = &p.sql_name;
        let edm = &p.edm_type;
        let nullable = p.nullable;
        let is_key = p.is_key;
        quote! {
            ::odata_runtime::PropertyInfo { wire_name: #wire, rust_name: #rust, sql_name: #sql, edm_type: #edm, nullable: #nullable, is_key: #is_key }
        }
    });
    let key_wires = s.key.iter();
    let select = props
        .iter()
        .map(|p| p.wire_name.as_str())
        .collect::<Vec<_>>();
    let (key_ty, key_struct, key_body) = match &s.key_rust_name {
        Some(k) if !s.key.is_empty() => {
            let kid = ident(k);
            let key_props: Vec<&PropertyDef> = s
                .key
                .iter()
                .filter_map(|w| props.iter().copied().find(|p| &p.wire_name == w))
                .collect();
            let mut kfields = Vec::new();
            let mut inits = Vec::new();
            for p in &key_props {
                let shape = field_shape(model, layout, &t.qname, p)?;
                let f = ident(&p.rust_name);
                let ty = shape.ty;
                let doc = format!(" `{}`", p.wire_name);
                kfields.push(quote! { #[doc = #doc] pub #f: #ty, });
                inits.push(quote! { #f: ::std::clone::Clone::clone(&self.#f), });
            }
            let kdoc = format!(" Key of `{}`.", t.qname);
            (
                quote! { #kid },
                quote! {
                    #[doc = #kdoc]
                    #[derive(::std::fmt::Debug, ::std::clone::Clone, ::std::cmp::PartialEq)]
                    pub struct #kid { #(#kfields)* }
                },
                quote! { #kid { #(#inits)* } },
            )
        }
        _ => (quote! { () }, quote! {}, quote! {}),
    };
    Ok(quote! {
        #key_struct
        impl ::odata_runtime::Entity for #name {
            const TYPE_NAME: &'static str = #type_name;
            const ENTITY_SET: &'static str = #set_name;
            const DIALECT: ::odata_runtime::Dialect = ::odata_runtime::Dialect::#dialect;
            const PROPERTIES: &'static [::odata_runtime::PropertyInfo] = &[ #(#infos),* ];
            const KEY: &'static [&'static str] = &[ #(#key_wires),* ];
            const SELECT: &'static [&'static str] = &[ #(#select),* ];
            type Key = #key_ty;
            fn key(&self) -> Self::Key { #key_body }
        }
    })
}

fn emit_enum(t: &TypeDef, e: &EnumDef) -> TokenStream {
    let name = ident(&t.rust_name);
    let lead = format!(
        "Enum type `{}`{}.",
        t.qname,
        if e.is_flags {
            " (flags: used as `odata_runtime::types::Flags<Self>`)"
        } else {
            ""
        }
    );
    let doc = docs_attrs(t.docs.as_deref(), Some(lead));
    let fallback = ident(&e.fallback_variant);
    let variants = e.members.iter().map(|m| {
        let v = ident(&m.rust_name);
        let d = docs_attrs(
            m.docs.as_deref(),
            Some(format!("`{}` = {}", m.wire_name, m.value)),
        );
        quote! { #d #v, }
    });
    let members = e.members.iter().map(|m| {
        let w = &m.wire_name;
        let v = m.value;
        quote! { (#w, #v) }
    });
    // A member name the metadata repeats maps to its first member.
    let mut seen = std::collections::BTreeSet::new();
    let from_arms = e
        .members
        .iter()
        .filter(|m| seen.insert(m.wire_name.as_str()))
        .map(|m| {
            let w = &m.wire_name;
            let v = ident(&m.rust_name);
            quote! { #w => Self::#v, }
        });
    let to_arms = e.members.iter().map(|m| {
        let w = &m.wire_name;
        let v = ident(&m.rust_name);
        quote! { Self::#v => #w, }
    });
    quote! {
        #doc
        #[derive(::std::fmt::Debug, ::std::clone::Clone, ::std::cmp::PartialEq, ::std::cmp::Eq, ::std::hash::Hash)]
        pub enum #name {
            #(#variants)*
            /// A value this generated code does not know (added to the service later).
            #fallback(::std::string::String),
        }
        impl ::odata_runtime::ODataEnum for #name {
            const MEMBERS: &'static [(&'static str, i64)] = &[ #(#members),* ];
            fn from_wire(name: &str) -> Self {
                match name {
                    #(#from_arms)*
                    other => Self::#fallback(::std::string::ToString::to_string(other)),
                }
            }
            fn wire_name(&self) -> &str {
                match self {
                    #(#to_arms)*
                    Self::#fallback(value) => value.as_str(),
                }
            }
        }
        impl ::serde::Serialize for #name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error> {
                ::odata_runtime::serialize_enum(self, serializer)
            }
        }
        impl<'de> ::serde::Deserialize<'de> for #name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {
                ::odata_runtime::deserialize_enum(deserializer)
            }
        }
    }
}

/// The items of one type (struct or enum, plus key struct and trait impls).
pub fn emit_type(model: &Model, layout: &Layout, t: &TypeDef) -> Result<TokenStream, EmitError> {
    match &t.kind {
        TypeKind::Entity(s) | TypeKind::Complex(s) => emit_struct(model, layout, t, s),
        TypeKind::Enum(e) => Ok(emit_enum(t, e)),
    }
}

fn header(model: &Model) -> String {
    let files: Vec<String> = model
        .sources
        .iter()
        .map(|s| {
            std::path::Path::new(s)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| s.clone())
        })
        .collect();
    format!(
        "// @generated by odatagen from {} (OData {}). Do not edit: change the metadata or the service's\n// configuration and regenerate.\n",
        files.join(", "),
        model.odata_version.as_str()
    )
}

/// Lints the generated code allows: non-ASCII identifiers (1C's Cyrillic names) are kept as they
/// are, and clippy's style lints do not apply to generated code.
const CRATE_ALLOWS: &str = "#![allow(uncommon_codepoints, mixed_script_confusables, confusable_idents, clippy::all, clippy::pedantic)]\n";

fn unparse(tokens: TokenStream, what: &str) -> Result<String, EmitError> {
    let file: syn::File = syn::parse2(tokens).map_err(|e| EmitError::Unparsable {
        what: what.to_string(),
        message: e.to_string(),
    })?;
    Ok(prettyplease::unparse(&file))
}

/// Types grouped by namespace module, with a file-module name per type (unique in its namespace).
fn grouped(model: &Model) -> BTreeMap<String, Vec<(&TypeDef, String)>> {
    let mut by_ns: BTreeMap<String, Vec<&TypeDef>> = BTreeMap::new();
    for t in model.types.values() {
        let m = model
            .namespaces
            .get(&t.namespace)
            .map(|n| n.module.clone())
            .unwrap_or_else(|| naming::module_name(&t.namespace));
        by_ns.entry(m).or_default().push(t);
    }
    let mut out = BTreeMap::new();
    for (m, types) in by_ns {
        let items: Vec<NameItem> = types
            .iter()
            .map(|t| NameItem {
                original: t.qname.clone(),
                candidate: naming::rust_field_name(unraw(&t.rust_name)),
                pos: t.pos,
            })
            .collect();
        let mut sink = crate::diagnostics::Diagnostics::default();
        // File names are case-insensitive on some systems: compare like SQL names.
        let names = naming::make_unique(
            "files",
            &items,
            Compare::Sql,
            &["mod"],
            &|_| Default::default(),
            &mut sink,
        );
        // Modules that load a file must have ASCII names (E0754); these modules are private and
        // glob re-exported, so their names are free to choose.
        let names = names
            .into_iter()
            .zip(&types)
            .map(|(n, t)| ascii_module_name(&n, &t.qname))
            .collect::<Vec<_>>();
        out.insert(m, types.into_iter().zip(names).collect());
    }
    out
}

/// `name` if it is ASCII; otherwise its ASCII characters plus a hash of `original`, so the file
/// name is stable and unique.
fn ascii_module_name(name: &str, original: &str) -> String {
    if name.is_ascii() {
        return name.to_string();
    }
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut squeezed = String::new();
    for part in ascii.split('_').filter(|p| !p.is_empty()) {
        if !squeezed.is_empty() {
            squeezed.push('_');
        }
        squeezed.push_str(part);
    }
    if squeezed.is_empty() || squeezed.starts_with(|c: char| c.is_ascii_digit()) {
        squeezed.insert(0, 't');
    }
    format!("{squeezed}_{:08x}", naming::fnv1a32(original.as_bytes()))
}

/// One Rust file for the whole service, for `include!` inside `pub mod <service> { … }` (the
/// `generated` crate's build.rs). `root` is that module's path (`crate::<service>`).
/// `tables` are the service's tables (see [`crate::sql::tables`]); the SQL emitters add their
/// items for them to the same module.
pub fn emit_module_file(
    model: &Model,
    layout: &Layout,
    tables: &[crate::sql::TableDef],
) -> Result<String, EmitError> {
    let mut items = Vec::new();
    let mut uses = Vec::new();
    for (m, types) in grouped(model) {
        let mid = ident(&m);
        let mut inner = Vec::new();
        for (t, _) in &types {
            inner.push(emit_type(model, layout, t)?);
        }
        items.push(quote! { pub mod #mid { #(#inner)* } });
        uses.push(quote! { pub use self::#mid::*; });
    }
    items.push(super::sql_tables::emit_tables(model, layout, tables));
    items.push(super::diesel::emit_diesel(model, layout, tables));
    let text = unparse(quote! { #(#uses)* #(#items)* }, &model.service)?;
    Ok(format!("{}\n{text}", header(model)))
}

/// Options for writing a standalone crate.
#[derive(Debug, Clone)]
pub struct CrateOptions {
    /// Package name.
    pub name: String,
    /// How the crate depends on odata-runtime (a Cargo.toml dependency value).
    pub runtime_dependency: String,
    /// Write an empty `[workspace]` table so the crate builds on its own even inside another
    /// workspace's folder. Off when the crate is meant to be a member of a workspace.
    pub standalone: bool,
    /// The service's tables (see [`crate::sql::tables`]), for the SQL emitters.
    pub tables: Vec<crate::sql::TableDef>,
}

/// Emits and formats one file per type, spread over the machine's cores (each type's code is a
/// pure function of the model). Results come back in job order.
fn emit_files_parallel(
    model: &Model,
    layout: &Layout,
    jobs: &[(&TypeDef, String)],
) -> Result<Vec<(String, String)>, EmitError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let work = |chunk: &[(&TypeDef, String)]| -> Result<Vec<(String, String)>, EmitError> {
        chunk
            .iter()
            .map(|(t, path)| {
                Ok((
                    path.clone(),
                    unparse(emit_type(model, layout, t)?, &t.qname)?,
                ))
            })
            .collect()
    };
    if threads < 2 || jobs.len() < 64 {
        return work(jobs);
    }
    let size = jobs.len().div_ceil(threads);
    let results: Vec<Result<Vec<(String, String)>, EmitError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(size)
            .map(|chunk| scope.spawn(move || work(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(EmitError::Unparsable {
                        what: "a type".into(),
                        message: "emitter thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut out = Vec::with_capacity(jobs.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// Versions the generated Cargo.toml asks for; they match the runtime's own dependencies.
fn dependency_line(krate: &str) -> Option<&'static str> {
    Some(match krate {
        "chrono" => "chrono = { version = \"0.4\", default-features = false, features = [\"std\", \"serde\"] }",
        "uuid" => "uuid = { version = \"1\", features = [\"serde\"] }",
        "rust_decimal" => "rust_decimal = { version = \"1\", default-features = false, features = [\"std\", \"serde-str\"] }",
        "bigdecimal" => "bigdecimal = { version = \"0.4\", features = [\"serde\"] }",
        "serde_json" => "serde_json = \"1\"",
        _ => return None,
    })
}

/// A standalone crate: `Cargo.toml` (exactly the dependencies the code uses), `src/lib.rs`, a
/// module per namespace and a file per type. Paths are relative to the crate root.
pub fn emit_crate(
    model: &Model,
    opts: &CrateOptions,
) -> Result<BTreeMap<String, String>, EmitError> {
    let layout = Layout {
        root: "crate".to_string(),
    };
    let mut files = BTreeMap::new();
    let head = header(model);
    let mut lib_items = Vec::new();
    for (m, types) in grouped(model) {
        let mid = ident(&m);
        let dir = ascii_module_name(unraw(&m), &m);
        if dir == unraw(&m) {
            lib_items.push(quote! { pub mod #mid; pub use self::#mid::*; });
        } else {
            let path = format!("{dir}/mod.rs");
            lib_items.push(quote! { #[path = #path] pub mod #mid; pub use self::#mid::*; });
        }
        let mut mod_items = Vec::new();
        let mut jobs = Vec::new();
        for (t, file) in &types {
            let fid = ident(file);
            mod_items.push(quote! { mod #fid; pub use self::#fid::*; });
            jobs.push((*t, format!("src/{dir}/{}.rs", unraw(file))));
        }
        for (path, code) in emit_files_parallel(model, &layout, &jobs)? {
            files.insert(path, format!("{head}\n{code}"));
        }
        let code = unparse(quote! { #(#mod_items)* }, &m)?;
        files.insert(
            format!("src/{dir}/mod.rs"),
            format!(
                "{head}//! Namespace `{}`.\n\n{code}",
                model
                    .namespaces
                    .values()
                    .find(|n| n.module == m)
                    .map(|n| n.namespace.as_str())
                    .unwrap_or("")
            ),
        );
    }
    if !opts.tables.is_empty() {
        let code = unparse(
            super::sql_tables::emit_tables(model, &layout, &opts.tables),
            "odata_tables.rs",
        )?;
        files.insert(
            "src/odata_tables.rs".into(),
            format!(
                "{head}//! The service's tables (`odata_runtime::TableInfo`).

{code}"
            ),
        );
        lib_items
            .push(quote! { mod odata_tables; pub use self::odata_tables::{visit_tables, TABLES}; });
    }
    let lib = unparse(quote! { #(#lib_items)* }, "lib.rs")?;
    let (e, c, n, s, _) = model.counts();
    files.insert(
        "src/lib.rs".into(),
        format!("{head}//! Entity types of the `{}` service: {e} entity types, {c} complex types, {n} enum types, {s} entity sets.\n{CRATE_ALLOWS}\n{lib}", model.service),
    );
    let mut deps = vec![
        format!("odata-runtime = {}", opts.runtime_dependency),
        "serde = { version = \"1\", features = [\"derive\"] }".to_string(),
    ];
    for c in used_crates(model) {
        if let Some(line) = dependency_line(&c) {
            deps.push(line.to_string());
        }
    }
    let mut cargo = format!(
        "# @generated by odatagen. Do not edit: regenerate instead.\n[package]\nname = \"{}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{}\n",
        opts.name,
        deps.join("\n")
    );
    if opts.standalone {
        cargo.push_str(
            "\n# A crate of its own, not a member of a surrounding workspace.\n[workspace]\n",
        );
    }
    files.insert("Cargo.toml".into(), cargo);
    Ok(files)
}

/// Crates the emitted code names (stream properties are not emitted).
pub fn used_crates(model: &Model) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for t in model.types.values() {
        if let Some(s) = t.as_struct() {
            if s.open_type {
                out.insert("serde_json".to_string());
            }
            for p in emitted_properties(s) {
                match &p.rust {
                    Some(rt) => out.extend(rt.crates.iter().cloned()),
                    None => {
                        if matches!(p.ty.element(), TypeRef::Unresolved(_)) {
                            out.insert("serde_json".to_string());
                        }
                    }
                }
            }
        }
    }
    out
}
