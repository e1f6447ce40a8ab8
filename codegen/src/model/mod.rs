//! The one model between the parser and every emitter.
//!
//! Everything an emitter needs is decided here, once: which types are selected (and why), each
//! type's and property's wire, Rust and SQL name, the Rust type of every property (from the
//! [`TypeMap`]), keys (including keys declared in a base type), inheritance flattened into each
//! struct, and which crates the generated code uses. Maps are `BTreeMap`s so output is
//! byte-identical for identical input. Emitters never look at XML; the parser never decides a name.

mod build;
pub mod selection;

pub use build::{build_model, BuildOptions};

use crate::csdl::ODataVersion;
use crate::edm_types::{Prim, RustType, TypeMap};
use crate::source::Pos;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A qualified type name with the namespace (never the alias): `NorthwindModel.Order`.
pub type QName = String;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    /// Service name (module name in the `generated` crate, e.g. `northwind`).
    pub service: String,
    /// The highest OData version among the documents.
    pub odata_version: ODataVersion,
    /// The metadata files, in the order they were given (positions refer to them by index).
    pub sources: Vec<String>,
    /// Namespaces that hold at least one selected type, keyed by namespace.
    pub namespaces: BTreeMap<String, NamespaceDef>,
    /// Selected types, keyed by qualified name.
    pub types: BTreeMap<QName, TypeDef>,
    /// Selected entity sets and singletons, keyed by wire name.
    pub entity_sets: BTreeMap<String, EntitySetDef>,
    /// Functions, actions and their imports, recorded (not emitted).
    pub operations: Vec<OperationDef>,
    /// The Edm → Rust mapping in force (defaults plus overrides).
    pub type_map: TypeMap,
    /// Why each selected type is in the model (`odatagen explain`).
    pub reasons: BTreeMap<QName, Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceDef {
    pub namespace: String,
    pub alias: Option<String>,
    /// Rust module name.
    pub module: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TypeDef {
    pub qname: QName,
    pub namespace: String,
    pub wire_name: String,
    pub rust_name: String,
    pub docs: Option<String>,
    #[serde(skip)]
    pub pos: Pos,
    pub kind: TypeKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TypeKind {
    Entity(StructDef),
    Complex(StructDef),
    Enum(EnumDef),
}

impl TypeDef {
    pub fn as_struct(&self) -> Option<&StructDef> {
        match &self.kind {
            TypeKind::Entity(s) | TypeKind::Complex(s) => Some(s),
            TypeKind::Enum(_) => None,
        }
    }
    pub fn is_entity(&self) -> bool {
        matches!(self.kind, TypeKind::Entity(_))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StructDef {
    pub base_type: Option<QName>,
    pub is_abstract: bool,
    pub open_type: bool,
    pub has_stream: bool,
    /// Every structural property, inherited ones first (base-most type first), then declared.
    pub properties: Vec<PropertyDef>,
    /// Navigation properties whose target is selected (others are left out; their foreign-key
    /// properties stay).
    pub navigations: Vec<NavigationDef>,
    /// Wire names of the key properties (entity types; empty when the type has no key).
    pub key: Vec<String>,
    /// Rust name of the generated key struct (entities with a key).
    pub key_rust_name: Option<String>,
    /// Rust field name for the catch-all map of an open type's dynamic properties.
    pub extra_field: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PropertyDef {
    pub wire_name: String,
    pub rust_name: String,
    pub sql_name: String,
    pub ty: TypeRef,
    /// The type as declared, resolved to a qualified name (`Edm.String`, `Collection(NS.Address)`).
    pub edm_type: String,
    pub nullable: bool,
    pub facets: Facets,
    pub docs: Option<String>,
    /// The type that declares it (a base type for inherited properties).
    pub declared_in: QName,
    pub is_key: bool,
    /// Boxed to break a cycle of complex types containing each other.
    pub boxed: bool,
    /// The Rust mapping for this property (primitives and collections of primitives).
    pub rust: Option<RustType>,
    #[serde(skip)]
    pub pos: Pos,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facets {
    pub max_length: Option<u64>,
    pub max_length_max: bool,
    pub precision: Option<u32>,
    /// `Some(n)` when Scale is a number; `None` when absent, `variable` or `floating`.
    pub scale: Option<u32>,
    pub scale_variable: bool,
    pub srid: Option<String>,
    pub default_value: Option<String>,
}

/// What a property holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TypeRef {
    Primitive(Prim),
    Complex(QName),
    Enum {
        qname: QName,
        flags: bool,
    },
    /// A structural property typed by an entity type (allowed in V4, seen in odata2ts fixtures).
    Entity(QName),
    Collection(Box<TypeRef>),
    /// A type the metadata names but does not define (only with `--lenient`): raw JSON.
    Unresolved(String),
}

impl TypeRef {
    pub fn is_collection(&self) -> bool {
        matches!(self, TypeRef::Collection(_))
    }
    pub fn element(&self) -> &TypeRef {
        match self {
            TypeRef::Collection(inner) => inner.element(),
            other => other,
        }
    }
    /// The named type this refers to (through collections), if any.
    pub fn named(&self) -> Option<&QName> {
        match self.element() {
            TypeRef::Complex(q) | TypeRef::Enum { qname: q, .. } | TypeRef::Entity(q) => Some(q),
            _ => None,
        }
    }
    pub fn is_stream(&self) -> bool {
        matches!(self, TypeRef::Primitive(Prim::Stream))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NavigationDef {
    pub wire_name: String,
    pub rust_name: String,
    pub target: QName,
    pub many: bool,
    pub nullable: bool,
    pub contains_target: bool,
    pub partner: Option<String>,
    /// (dependent property, principal property) pairs, when the metadata says.
    pub constraints: Vec<(String, String)>,
    #[serde(skip)]
    pub pos: Pos,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnumDef {
    /// Underlying integer type (`Edm.Int32` by default).
    pub underlying: String,
    pub is_flags: bool,
    pub members: Vec<EnumMemberDef>,
    /// Name of the variant that holds a value this code does not know.
    pub fallback_variant: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnumMemberDef {
    pub wire_name: String,
    pub rust_name: String,
    pub value: i64,
    pub docs: Option<String>,
    #[serde(skip)]
    pub pos: Pos,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntitySetDef {
    pub wire_name: String,
    pub entity_type: QName,
    pub is_singleton: bool,
    /// Table name (snake_case, ≤ 63 bytes, unique in the service).
    pub sql_name: String,
    pub container: String,
    pub docs: Option<String>,
    #[serde(skip)]
    pub pos: Pos,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperationDef {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub is_bound: bool,
    pub import: bool,
    pub parameters: Vec<(String, String)>,
    pub return_type: Option<String>,
}

impl Model {
    pub fn entity_types(&self) -> impl Iterator<Item = &TypeDef> {
        self.types.values().filter(|t| t.is_entity())
    }

    /// The entity set that names a type (the first by wire name), if any.
    pub fn sets_of(&self, qname: &str) -> Vec<&EntitySetDef> {
        self.entity_sets
            .values()
            .filter(|s| s.entity_type == qname)
            .collect()
    }

    /// Crates the generated code uses besides `serde` and `odata-runtime`.
    pub fn used_crates(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for t in self.types.values() {
            if let Some(s) = t.as_struct() {
                if s.open_type {
                    out.insert("serde_json".to_string());
                }
                for p in &s.properties {
                    if let Some(rt) = &p.rust {
                        out.extend(rt.crates.iter().cloned());
                    }
                }
            }
        }
        out
    }

    /// Counts for summaries: (entity types, complex types, enum types, entity sets, properties).
    pub fn counts(&self) -> (usize, usize, usize, usize, usize) {
        let mut e = 0;
        let mut c = 0;
        let mut n = 0;
        let mut p = 0;
        for t in self.types.values() {
            match &t.kind {
                TypeKind::Entity(s) => {
                    e += 1;
                    p += s.properties.len();
                }
                TypeKind::Complex(s) => {
                    c += 1;
                    p += s.properties.len();
                }
                TypeKind::Enum(_) => n += 1,
            }
        }
        (e, c, n, self.entity_sets.len(), p)
    }
}
