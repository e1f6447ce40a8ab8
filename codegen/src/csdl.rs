//! The raw CSDL document as the parser reads it: one struct per EDMX/CSDL element we care about,
//! with names and type references kept exactly as written (unresolved). OData V2/V3/V4 differences
//! are recorded here (`Association`, `FunctionImport` flavours, `NavigationProperty` shapes) and
//! end in `model::build`, which resolves references, aliases, inheritance and names.
//!
//! Every element carries the [`Pos`] of its start tag so that any later error can point at
//! `file:line:column`.

use crate::source::Pos;

/// OData protocol version of a document, read from `edmx:Edmx/@Version`,
/// `m:DataServiceVersion`/`m:MaxDataServiceVersion` and the CSDL namespace URI.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ODataVersion {
    V2,
    V3,
    V4,
}

impl ODataVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ODataVersion::V2 => "V2",
            ODataVersion::V3 => "V3",
            ODataVersion::V4 => "V4",
        }
    }
}

/// One parsed `$metadata` document.
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// `edmx:Edmx/@Version` as written ("1.0", "4.0", "4.01").
    pub edmx_version: String,
    /// `m:DataServiceVersion` on `edmx:DataServices`, if any.
    pub data_service_version: Option<String>,
    /// `m:MaxDataServiceVersion` on `edmx:DataServices`, if any.
    pub max_data_service_version: Option<String>,
    /// Decided from the above (see [`ODataVersion`]); `None` only when nothing says.
    pub odata_version: Option<ODataVersion>,
    /// `edmx:Reference/edmx:Include` (vocabularies and referenced schemas): namespace and alias.
    pub references: Vec<Include>,
    pub schemas: Vec<Schema>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Include {
    pub namespace: String,
    pub alias: Option<String>,
    pub pos: Pos,
}

#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub namespace: String,
    pub alias: Option<String>,
    pub pos: Pos,
    pub entity_types: Vec<EntityType>,
    pub complex_types: Vec<ComplexType>,
    pub enum_types: Vec<EnumType>,
    pub type_definitions: Vec<TypeDefinition>,
    /// V2/V3 only.
    pub associations: Vec<Association>,
    pub entity_containers: Vec<EntityContainer>,
    /// V4 `Function` and `Action` elements (schema-level operations).
    pub operations: Vec<Operation>,
    /// Out-of-line `<Annotations Target="...">` blocks.
    pub annotation_blocks: Vec<AnnotationBlock>,
}

/// A `<Annotation Term=".." [Qualifier=".."] String=".."/>` (or with a nested `<String>` element).
/// Only the string value is kept; other value kinds are recorded with `value: None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// The term as written, e.g. `Core.Description`, `Org.OData.Core.V1.Description`, `SAP__core.Description`.
    pub term: String,
    pub qualifier: Option<String>,
    pub value: Option<String>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnnotationBlock {
    /// `Target` as written, e.g. `NS.Product`, `NS.Product/Name`, `Alias.Container/Set`.
    pub target: String,
    pub qualifier: Option<String>,
    pub annotations: Vec<Annotation>,
    pub pos: Pos,
}

/// Human documentation gathered from one element: `<Documentation><Summary>/<LongDescription>`,
/// `sap:label`, `sap:quickinfo`, `sap:heading`. (`Core.Description` arrives as an [`Annotation`].)
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Docs {
    pub summary: Option<String>,
    pub long_description: Option<String>,
    pub sap_label: Option<String>,
    pub sap_quickinfo: Option<String>,
}

impl Docs {
    pub fn is_empty(&self) -> bool {
        self.summary.is_none()
            && self.long_description.is_none()
            && self.sap_label.is_none()
            && self.sap_quickinfo.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxLength {
    Max,
    Length(u64),
}

/// `Scale`: a number, or `variable`/`Variable` (V4: `variable`; also seen capitalised), or `floating`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Number(u32),
    Variable,
    Floating,
}

/// Facets as written on a `Property`, `TypeDefinition`, `Parameter` or `ReturnType`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facets {
    /// `Nullable` as written; `None` = absent (the model applies the default, true for properties).
    pub nullable: Option<bool>,
    pub max_length: Option<MaxLength>,
    pub precision: Option<u32>,
    pub scale: Option<Scale>,
    /// `SRID` as written (a number or `variable`).
    pub srid: Option<String>,
    pub default_value: Option<String>,
    pub fixed_length: Option<bool>,
    pub unicode: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub name: String,
    /// The type as written: `Edm.String`, `Collection(NS.Address)`, `Alias.Color`, `Self.Thing`.
    pub type_name: String,
    pub facets: Facets,
    pub docs: Docs,
    /// Inline `<Annotation>` children.
    pub annotations: Vec<Annotation>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReferentialConstraintV4 {
    pub property: String,
    pub referenced_property: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NavigationProperty {
    pub name: String,
    /// V4: `Type` as written (`NS.Order` or `Collection(NS.Order)`); V2/V3: `None`.
    pub type_name: Option<String>,
    /// V4 `Nullable`.
    pub nullable: Option<bool>,
    /// V4 `Partner`.
    pub partner: Option<String>,
    /// V4 `ContainsTarget`.
    pub contains_target: bool,
    /// V4 nested `<ReferentialConstraint Property=".." ReferencedProperty=".."/>`.
    pub referential_constraints: Vec<ReferentialConstraintV4>,
    /// V2/V3 `Relationship` (qualified association name), `FromRole`, `ToRole`.
    pub relationship: Option<String>,
    pub from_role: Option<String>,
    pub to_role: Option<String>,
    pub docs: Docs,
    pub annotations: Vec<Annotation>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PropertyRef {
    pub name: String,
    /// V4 `Alias` on a key property ref (key properties of complex-typed paths).
    pub alias: Option<String>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EntityType {
    pub name: String,
    pub base_type: Option<String>,
    pub is_abstract: bool,
    pub open_type: bool,
    pub has_stream: bool,
    /// `None` when there is no `<Key>` element (keys may come from a base type).
    pub key: Option<Vec<PropertyRef>>,
    pub properties: Vec<Property>,
    pub navigation_properties: Vec<NavigationProperty>,
    pub docs: Docs,
    pub annotations: Vec<Annotation>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComplexType {
    pub name: String,
    pub base_type: Option<String>,
    pub is_abstract: bool,
    pub open_type: bool,
    pub properties: Vec<Property>,
    pub navigation_properties: Vec<NavigationProperty>,
    pub docs: Docs,
    pub annotations: Vec<Annotation>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnumMember {
    pub name: String,
    /// `Value` as written and parsed; `None` when absent (the model numbers them 0, 1, 2...).
    pub value: Option<i64>,
    pub docs: Docs,
    pub annotations: Vec<Annotation>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnumType {
    pub name: String,
    /// `UnderlyingType` as written (default `Edm.Int32`).
    pub underlying_type: Option<String>,
    pub is_flags: bool,
    pub members: Vec<EnumMember>,
    pub docs: Docs,
    pub annotations: Vec<Annotation>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TypeDefinition {
    pub name: String,
    pub underlying_type: String,
    pub facets: Facets,
    pub docs: Docs,
    pub annotations: Vec<Annotation>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AssociationEnd {
    pub role: String,
    pub type_name: String,
    /// `1`, `0..1` or `*`.
    pub multiplicity: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReferentialConstraintV2 {
    pub principal_role: String,
    pub principal_properties: Vec<String>,
    pub dependent_role: String,
    pub dependent_properties: Vec<String>,
    pub pos: Pos,
}

/// V2/V3 `<Association>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Association {
    pub name: String,
    pub ends: Vec<AssociationEnd>,
    pub referential_constraint: Option<ReferentialConstraintV2>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NavigationPropertyBinding {
    pub path: String,
    pub target: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EntitySet {
    pub name: String,
    pub entity_type: String,
    pub navigation_property_bindings: Vec<NavigationPropertyBinding>,
    pub docs: Docs,
    pub annotations: Vec<Annotation>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Singleton {
    pub name: String,
    pub type_name: String,
    pub navigation_property_bindings: Vec<NavigationPropertyBinding>,
    pub docs: Docs,
    pub annotations: Vec<Annotation>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AssociationSetEnd {
    pub role: String,
    pub entity_set: String,
    pub pos: Pos,
}

/// V2/V3 `<AssociationSet>`.
#[derive(Debug, Clone, PartialEq)]
pub struct AssociationSet {
    pub name: String,
    pub association: String,
    pub ends: Vec<AssociationSetEnd>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub type_name: String,
    pub facets: Facets,
    /// V2/V3 `Mode` (In/Out/InOut).
    pub mode: Option<String>,
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    Function,
    Action,
}

/// V4 schema-level `<Function>` / `<Action>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub kind: OperationKind,
    pub name: String,
    pub is_bound: bool,
    pub is_composable: bool,
    pub entity_set_path: Option<String>,
    pub parameters: Vec<Parameter>,
    /// `<ReturnType Type="..">` as written.
    pub return_type: Option<String>,
    pub return_facets: Facets,
    pub docs: Docs,
    pub annotations: Vec<Annotation>,
    pub pos: Pos,
}

/// `<FunctionImport>` (V2/V3: the operation itself, with parameters and `ReturnType` attribute;
/// V4: a reference to a `Function`) or V4 `<ActionImport>`.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationImport {
    pub kind: OperationKind,
    pub name: String,
    /// V4: the `Function`/`Action` attribute (qualified operation name).
    pub operation: Option<String>,
    /// `EntitySet` attribute as written.
    pub entity_set: Option<String>,
    /// V2/V3: `ReturnType` attribute.
    pub return_type: Option<String>,
    /// V2/V3: `m:HttpMethod`.
    pub http_method: Option<String>,
    /// V3: `IsBindable`, `IsSideEffecting`.
    pub is_bindable: bool,
    pub is_side_effecting: Option<bool>,
    /// V2/V3: nested parameters.
    pub parameters: Vec<Parameter>,
    pub docs: Docs,
    pub annotations: Vec<Annotation>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EntityContainer {
    pub name: String,
    /// V2/V3 `m:IsDefaultEntityContainer`.
    pub is_default: bool,
    /// `Extends` as written.
    pub extends: Option<String>,
    pub entity_sets: Vec<EntitySet>,
    pub singletons: Vec<Singleton>,
    pub association_sets: Vec<AssociationSet>,
    pub operation_imports: Vec<OperationImport>,
    pub docs: Docs,
    pub annotations: Vec<Annotation>,
    pub pos: Pos,
}
