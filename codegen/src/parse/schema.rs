//! `<Schema>` and what it declares: entity, complex, enum and type-definition types, V2/V3
//! associations, V4 functions/actions, entity containers and annotations.

use super::annotations::{ANNOTATION, VALUE_ANNOTATION};
use super::facets::parse_enum_value;
use super::reader::{attrs, Node, PResult, Parser, Tag};
use super::StrayText;
use crate::csdl::{
    Annotation, AnnotationBlock, Association, AssociationEnd, ComplexType, Docs, EntityType,
    EnumMember, EnumType, Facets, NavigationProperty, Operation, OperationKind, Parameter,
    Property, PropertyRef, ReferentialConstraintV2, ReferentialConstraintV4, Schema,
    TypeDefinition,
};

const SCHEMA_CHILDREN: &[&str] = &[
    "EntityType",
    "ComplexType",
    "EnumType",
    "TypeDefinition",
    "Association",
    "EntityContainer",
    "Function",
    "Action",
    "Annotations",
    ANNOTATION,
    VALUE_ANNOTATION,
];

impl<'a> Parser<'a> {
    /// `<Schema Namespace=".." Alias="..">`. Returns the schema and its namespace URI (`xmlns`).
    pub(super) fn schema(&mut self, tag: &Tag<'a>) -> PResult<(Schema, Option<String>)> {
        let pos = self.pos(tag.offset);
        let mut namespace = None;
        let mut alias = None;
        let mut xmlns = None;
        let own_prefix = tag.qname().split_once(':').map(|(p, _)| p);
        for a in tag.start.attributes().flatten() {
            // Namespace declarations are not returned by `attrs`; read the one that applies.
            let key = a.key.0;
            let declares_own = match own_prefix {
                None => key == "xmlns",
                Some(p) => key.strip_prefix("xmlns:") == Some(p),
            };
            if declares_own {
                xmlns = Some(a.value.into_owned());
            }
        }
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Namespace" => namespace = Some(self.value(&a)?),
                "Alias" => alias = Some(self.value(&a)?),
                _ => {}
            }
        }
        let namespace = self.required(namespace, tag, "Namespace");
        let mut schema = Schema {
            namespace,
            alias,
            pos,
            ..Schema::default()
        };
        if tag.empty {
            return Ok((schema, xmlns));
        }
        let mut stray = StrayText::default();
        while let Some(node) = self.child()? {
            let c = match node {
                Node::Text { text, offset, raw } => {
                    stray.add(&text, offset, raw);
                    continue;
                }
                Node::Open(c) => c,
            };
            self.flush_stray(&mut stray, tag);
            match self.classify(&c, SCHEMA_CHILDREN) {
                Some("EntityType") => schema.entity_types.push(self.entity_type(&c)?),
                Some("ComplexType") => schema.complex_types.push(self.complex_type(&c)?),
                Some("EnumType") => schema.enum_types.push(self.enum_type(&c)?),
                Some("TypeDefinition") => schema.type_definitions.push(self.type_definition(&c)?),
                Some("Association") => schema.associations.push(self.association(&c)?),
                Some("EntityContainer") => {
                    schema.entity_containers.push(self.entity_container(&c)?)
                }
                Some("Function") => {
                    schema
                        .operations
                        .push(self.operation(&c, OperationKind::Function)?);
                }
                Some("Action") => {
                    schema
                        .operations
                        .push(self.operation(&c, OperationKind::Action)?);
                }
                Some("Annotations") => schema.annotation_blocks.push(self.annotation_block(&c)?),
                Some(_) => {
                    // An annotation of the schema itself: the same as an `<Annotations>` block
                    // whose target is the schema's namespace (`Schema` has no annotation list).
                    let Some(annotation) = self.annotation(&c)? else {
                        continue;
                    };
                    schema.annotation_blocks.push(AnnotationBlock {
                        target: schema.namespace.clone(),
                        qualifier: None,
                        pos: annotation.pos,
                        annotations: vec![annotation],
                    });
                }
                None => self.skip(&c)?,
            }
        }
        self.flush_stray(&mut stray, tag);
        Ok((schema, xmlns))
    }

    fn entity_type(&mut self, tag: &Tag<'a>) -> PResult<EntityType> {
        let pos = self.pos(tag.offset);
        let mut name = None;
        let mut base_type = None;
        let mut is_abstract = false;
        let mut open_type = false;
        let mut has_stream = false;
        let mut docs = Docs::default();
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Name" => name = Some(self.value(&a)?),
                "BaseType" => base_type = Some(self.value(&a)?),
                "Abstract" => is_abstract = self.flag(&a)?,
                "OpenType" => open_type = self.flag(&a)?,
                // V4 `HasStream`, V2/V3 `m:HasStream`.
                "HasStream" => has_stream = self.flag(&a)?,
                _ => {
                    self.doc_attr(&mut docs, &a)?;
                }
            }
        }
        let name = self.required(name, tag, "Name");
        let mut t = EntityType {
            name,
            base_type,
            is_abstract,
            open_type,
            has_stream,
            key: None,
            properties: Vec::new(),
            navigation_properties: Vec::new(),
            docs,
            annotations: Vec::new(),
            pos,
        };
        if tag.empty {
            return Ok(t);
        }
        while let Some(node) = self.child()? {
            let Node::Open(c) = node else { continue };
            let kind = self.classify(&c, STRUCTURED_CHILDREN);
            match kind {
                Some("Key") => {
                    let refs = self.key(&c)?;
                    t.key.get_or_insert_with(Vec::new).extend(refs);
                }
                Some("Property") => t.properties.push(self.property(&c)?),
                Some("NavigationProperty") => {
                    t.navigation_properties.push(self.navigation_property(&c)?)
                }
                _ => {
                    if !self.docs_or_annotation(&c, kind, &mut t.docs, &mut t.annotations)? {
                        self.skip(&c)?;
                    }
                }
            }
        }
        Ok(t)
    }

    fn complex_type(&mut self, tag: &Tag<'a>) -> PResult<ComplexType> {
        let pos = self.pos(tag.offset);
        let mut name = None;
        let mut base_type = None;
        let mut is_abstract = false;
        let mut open_type = false;
        let mut docs = Docs::default();
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Name" => name = Some(self.value(&a)?),
                "BaseType" => base_type = Some(self.value(&a)?),
                "Abstract" => is_abstract = self.flag(&a)?,
                "OpenType" => open_type = self.flag(&a)?,
                _ => {
                    self.doc_attr(&mut docs, &a)?;
                }
            }
        }
        let name = self.required(name, tag, "Name");
        let mut t = ComplexType {
            name,
            base_type,
            is_abstract,
            open_type,
            properties: Vec::new(),
            navigation_properties: Vec::new(),
            docs,
            annotations: Vec::new(),
            pos,
        };
        if tag.empty {
            return Ok(t);
        }
        while let Some(node) = self.child()? {
            let Node::Open(c) = node else { continue };
            let kind = self.classify(&c, STRUCTURED_CHILDREN);
            match kind {
                Some("Property") => t.properties.push(self.property(&c)?),
                Some("NavigationProperty") => {
                    t.navigation_properties.push(self.navigation_property(&c)?)
                }
                _ => {
                    if !self.docs_or_annotation(&c, kind, &mut t.docs, &mut t.annotations)? {
                        self.skip(&c)?;
                    }
                }
            }
        }
        Ok(t)
    }

    /// `<Key><PropertyRef Name=".." Alias=".."/>...</Key>`.
    fn key(&mut self, tag: &Tag<'a>) -> PResult<Vec<PropertyRef>> {
        let mut refs = Vec::new();
        if tag.empty {
            return Ok(refs);
        }
        while let Some(node) = self.child()? {
            let Node::Open(c) = node else { continue };
            if self.classify(&c, &["PropertyRef"]).is_none() {
                self.skip(&c)?;
                continue;
            }
            let pos = self.pos(c.offset);
            let mut name = None;
            let mut alias = None;
            for a in attrs(&c) {
                let a = a?;
                match a.key {
                    "Name" => name = Some(self.value(&a)?),
                    "Alias" => alias = Some(self.value(&a)?),
                    _ => {}
                }
            }
            self.skip(&c)?;
            let name = self.required(name, &c, "Name");
            refs.push(PropertyRef { name, alias, pos });
        }
        Ok(refs)
    }

    /// The shape `Property` and `TypeDefinition` share: `Name`, a type attribute, facets,
    /// documentation and inline annotations.
    fn typed_element(&mut self, tag: &Tag<'a>, type_attr: &str) -> PResult<TypedElement> {
        let pos = self.pos(tag.offset);
        let mut name = None;
        let mut type_name = None;
        let mut facets = Facets::default();
        let mut docs = Docs::default();
        for a in attrs(tag) {
            let a = a?;
            if a.key == "Name" {
                name = Some(self.value(&a)?);
            } else if a.key == type_attr {
                type_name = Some(self.value(&a)?);
            } else if !self.facet(&mut facets, &a)? {
                self.doc_attr(&mut docs, &a)?;
            }
        }
        let name = self.required(name, tag, "Name");
        let type_name = self.required(type_name, tag, type_attr);
        let mut annotations = Vec::new();
        self.docs_and_annotations(tag, &mut docs, &mut annotations)?;
        Ok(TypedElement {
            name,
            type_name,
            facets,
            docs,
            annotations,
            pos,
        })
    }

    fn property(&mut self, tag: &Tag<'a>) -> PResult<Property> {
        let t = self.typed_element(tag, "Type")?;
        Ok(Property {
            name: t.name,
            type_name: t.type_name,
            facets: t.facets,
            docs: t.docs,
            annotations: t.annotations,
            pos: t.pos,
        })
    }

    /// The children of an element that has only documentation and annotations.
    pub(super) fn docs_and_annotations(
        &mut self,
        tag: &Tag<'a>,
        docs: &mut Docs,
        annotations: &mut Vec<Annotation>,
    ) -> PResult<()> {
        if tag.empty {
            return Ok(());
        }
        while let Some(node) = self.child()? {
            let Node::Open(c) = node else { continue };
            let kind = self.classify(&c, DOCS_CHILDREN);
            if !self.docs_or_annotation(&c, kind, docs, annotations)? {
                self.skip(&c)?;
            }
        }
        Ok(())
    }

    /// V4 (`Type`, `Nullable`, `Partner`, `ContainsTarget`, `<ReferentialConstraint>`) and
    /// V2/V3 (`Relationship`, `FromRole`, `ToRole`) navigation properties.
    fn navigation_property(&mut self, tag: &Tag<'a>) -> PResult<NavigationProperty> {
        let pos = self.pos(tag.offset);
        let mut name = None;
        let mut nav = NavigationProperty {
            name: String::new(),
            type_name: None,
            nullable: None,
            partner: None,
            contains_target: false,
            referential_constraints: Vec::new(),
            relationship: None,
            from_role: None,
            to_role: None,
            docs: Docs::default(),
            annotations: Vec::new(),
            pos,
        };
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Name" => name = Some(self.value(&a)?),
                "Type" => nav.type_name = Some(self.value(&a)?),
                "Nullable" => nav.nullable = self.bool_value(&a, "'true' or 'false'")?,
                "Partner" => nav.partner = Some(self.value(&a)?),
                "ContainsTarget" => nav.contains_target = self.flag(&a)?,
                "Relationship" => nav.relationship = Some(self.value(&a)?),
                "FromRole" => nav.from_role = Some(self.value(&a)?),
                "ToRole" => nav.to_role = Some(self.value(&a)?),
                _ => {
                    self.doc_attr(&mut nav.docs, &a)?;
                }
            }
        }
        nav.name = self.required(name, tag, "Name");
        if tag.empty {
            return Ok(nav);
        }
        while let Some(node) = self.child()? {
            let Node::Open(c) = node else { continue };
            let kind = self.classify(&c, NAV_CHILDREN);
            if kind == Some("ReferentialConstraint") {
                let pos = self.pos(c.offset);
                let mut property = None;
                let mut referenced = None;
                for a in attrs(&c) {
                    let a = a?;
                    match a.key {
                        "Property" => property = Some(self.value(&a)?),
                        "ReferencedProperty" => referenced = Some(self.value(&a)?),
                        _ => {}
                    }
                }
                self.skip(&c)?;
                let property = self.required(property, &c, "Property");
                let referenced_property = self.required(referenced, &c, "ReferencedProperty");
                nav.referential_constraints.push(ReferentialConstraintV4 {
                    property,
                    referenced_property,
                    pos,
                });
            } else if !self.docs_or_annotation(&c, kind, &mut nav.docs, &mut nav.annotations)? {
                self.skip(&c)?;
            }
        }
        Ok(nav)
    }

    fn enum_type(&mut self, tag: &Tag<'a>) -> PResult<EnumType> {
        let pos = self.pos(tag.offset);
        let mut name = None;
        let mut underlying_type = None;
        let mut is_flags = false;
        let mut docs = Docs::default();
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Name" => name = Some(self.value(&a)?),
                "UnderlyingType" => underlying_type = Some(self.value(&a)?),
                "IsFlags" => is_flags = self.flag(&a)?,
                _ => {
                    self.doc_attr(&mut docs, &a)?;
                }
            }
        }
        let name = self.required(name, tag, "Name");
        let mut t = EnumType {
            name,
            underlying_type,
            is_flags,
            members: Vec::new(),
            docs,
            annotations: Vec::new(),
            pos,
        };
        if tag.empty {
            return Ok(t);
        }
        while let Some(node) = self.child()? {
            let Node::Open(c) = node else { continue };
            let kind = self.classify(&c, ENUM_CHILDREN);
            if kind == Some("Member") {
                t.members.push(self.enum_member(&c)?);
            } else if !self.docs_or_annotation(&c, kind, &mut t.docs, &mut t.annotations)? {
                self.skip(&c)?;
            }
        }
        Ok(t)
    }

    fn enum_member(&mut self, tag: &Tag<'a>) -> PResult<EnumMember> {
        let pos = self.pos(tag.offset);
        let mut name = None;
        let mut value = None;
        let mut docs = Docs::default();
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Name" => name = Some(self.value(&a)?),
                "Value" => {
                    let v = self.value(&a)?;
                    value = parse_enum_value(&v);
                    if value.is_none() {
                        let at = self.value_offset(&a);
                        self.error(
                            at,
                            format!("invalid enum member value '{v}': expected an integer"),
                        );
                    }
                }
                _ => {
                    self.doc_attr(&mut docs, &a)?;
                }
            }
        }
        let name = self.required(name, tag, "Name");
        let mut annotations = Vec::new();
        self.docs_and_annotations(tag, &mut docs, &mut annotations)?;
        Ok(EnumMember {
            name,
            value,
            docs,
            annotations,
            pos,
        })
    }

    fn type_definition(&mut self, tag: &Tag<'a>) -> PResult<TypeDefinition> {
        let t = self.typed_element(tag, "UnderlyingType")?;
        Ok(TypeDefinition {
            name: t.name,
            underlying_type: t.type_name,
            facets: t.facets,
            docs: t.docs,
            annotations: t.annotations,
            pos: t.pos,
        })
    }

    /// V2/V3 `<Association>` with its `<End>`s and `<ReferentialConstraint>`.
    fn association(&mut self, tag: &Tag<'a>) -> PResult<Association> {
        let pos = self.pos(tag.offset);
        let mut name = None;
        for a in attrs(tag) {
            let a = a?;
            if a.key == "Name" {
                name = Some(self.value(&a)?);
            }
        }
        let name = self.required(name, tag, "Name");
        let mut assoc = Association {
            name,
            ends: Vec::new(),
            referential_constraint: None,
            pos,
        };
        if tag.empty {
            return Ok(assoc);
        }
        while let Some(node) = self.child()? {
            let Node::Open(c) = node else { continue };
            match self.classify(&c, &["End", "ReferentialConstraint"]) {
                Some("End") => {
                    let pos = self.pos(c.offset);
                    let (mut role, mut type_name, mut multiplicity) = (None, None, None);
                    for a in attrs(&c) {
                        let a = a?;
                        match a.key {
                            "Role" => role = Some(self.value(&a)?),
                            "Type" => type_name = Some(self.value(&a)?),
                            "Multiplicity" => multiplicity = Some(self.value(&a)?),
                            _ => {}
                        }
                    }
                    self.skip(&c)?;
                    let role = self.required(role, &c, "Role");
                    let type_name = self.required(type_name, &c, "Type");
                    let multiplicity = self.required(multiplicity, &c, "Multiplicity");
                    assoc.ends.push(AssociationEnd {
                        role,
                        type_name,
                        multiplicity,
                        pos,
                    });
                }
                Some("ReferentialConstraint") => {
                    let rc = self.referential_constraint_v2(&c)?;
                    if assoc.referential_constraint.is_some() {
                        self.warn(
                            c.offset,
                            "second <ReferentialConstraint> in an association; only the first is used",
                        );
                    } else {
                        assoc.referential_constraint = Some(rc);
                    }
                }
                _ => self.skip(&c)?,
            }
        }
        Ok(assoc)
    }

    /// `<ReferentialConstraint><Principal Role=".."><PropertyRef Name=".."/></Principal>
    /// <Dependent Role="..">...</Dependent></ReferentialConstraint>`.
    fn referential_constraint_v2(&mut self, tag: &Tag<'a>) -> PResult<ReferentialConstraintV2> {
        let pos = self.pos(tag.offset);
        let mut rc = ReferentialConstraintV2 {
            principal_role: String::new(),
            principal_properties: Vec::new(),
            dependent_role: String::new(),
            dependent_properties: Vec::new(),
            pos,
        };
        let (mut principal, mut dependent) = (false, false);
        if !tag.empty {
            while let Some(node) = self.child()? {
                let Node::Open(c) = node else { continue };
                let side = self.classify(&c, &["Principal", "Dependent"]);
                let Some(side) = side else {
                    self.skip(&c)?;
                    continue;
                };
                let mut role = None;
                for a in attrs(&c) {
                    let a = a?;
                    if a.key == "Role" {
                        role = Some(self.value(&a)?);
                    }
                }
                let role = self.required(role, &c, "Role");
                let props = self.property_ref_names(&c)?;
                if side == "Principal" {
                    principal = true;
                    rc.principal_role = role;
                    rc.principal_properties = props;
                } else {
                    dependent = true;
                    rc.dependent_role = role;
                    rc.dependent_properties = props;
                }
            }
        }
        if !principal || !dependent {
            let missing = if principal { "Dependent" } else { "Principal" };
            self.error(
                tag.offset,
                format!("<ReferentialConstraint> has no <{missing}> element"),
            );
        }
        Ok(rc)
    }

    /// The `Name`s of the `<PropertyRef>` children of an element.
    fn property_ref_names(&mut self, tag: &Tag<'a>) -> PResult<Vec<String>> {
        let mut names = Vec::new();
        if tag.empty {
            return Ok(names);
        }
        while let Some(node) = self.child()? {
            let Node::Open(c) = node else { continue };
            if self.classify(&c, &["PropertyRef"]).is_some() {
                let mut name = None;
                for a in attrs(&c) {
                    let a = a?;
                    if a.key == "Name" {
                        name = Some(self.value(&a)?);
                    }
                }
                names.push(self.required(name, &c, "Name"));
            }
            self.skip(&c)?;
        }
        Ok(names)
    }

    /// V4 `<Function>` / `<Action>`.
    fn operation(&mut self, tag: &Tag<'a>, kind: OperationKind) -> PResult<Operation> {
        let pos = self.pos(tag.offset);
        let mut name = None;
        let mut op = Operation {
            kind,
            name: String::new(),
            is_bound: false,
            is_composable: false,
            entity_set_path: None,
            parameters: Vec::new(),
            return_type: None,
            return_facets: Facets::default(),
            docs: Docs::default(),
            annotations: Vec::new(),
            pos,
        };
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Name" => name = Some(self.value(&a)?),
                "IsBound" => op.is_bound = self.flag(&a)?,
                "IsComposable" => op.is_composable = self.flag(&a)?,
                "EntitySetPath" => op.entity_set_path = Some(self.value(&a)?),
                _ => {
                    self.doc_attr(&mut op.docs, &a)?;
                }
            }
        }
        op.name = self.required(name, tag, "Name");
        if tag.empty {
            return Ok(op);
        }
        while let Some(node) = self.child()? {
            let Node::Open(c) = node else { continue };
            let kind = self.classify(&c, OPERATION_CHILDREN);
            match kind {
                Some("Parameter") => op.parameters.push(self.parameter(&c)?),
                Some("ReturnType") => {
                    let (type_name, facets) = self.return_type(&c)?;
                    op.return_type = type_name;
                    op.return_facets = facets;
                }
                _ => {
                    if !self.docs_or_annotation(&c, kind, &mut op.docs, &mut op.annotations)? {
                        self.skip(&c)?;
                    }
                }
            }
        }
        Ok(op)
    }

    /// `<Parameter Name=".." Type=".." Mode=".." [facets]/>` (V2/V3 function imports and V4
    /// operations). Its documentation and annotations have no place in the model and are skipped.
    pub(super) fn parameter(&mut self, tag: &Tag<'a>) -> PResult<Parameter> {
        let pos = self.pos(tag.offset);
        let mut name = None;
        let mut type_name = None;
        let mut mode = None;
        let mut facets = Facets::default();
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Name" => name = Some(self.value(&a)?),
                "Type" => type_name = Some(self.value(&a)?),
                "Mode" => mode = Some(self.value(&a)?),
                _ => {
                    self.facet(&mut facets, &a)?;
                }
            }
        }
        self.skip(tag)?;
        let name = self.required(name, tag, "Name");
        let type_name = self.required(type_name, tag, "Type");
        Ok(Parameter {
            name,
            type_name,
            facets,
            mode,
            pos,
        })
    }

    /// `<ReturnType Type=".." [facets]/>`.
    pub(super) fn return_type(&mut self, tag: &Tag<'a>) -> PResult<(Option<String>, Facets)> {
        let mut type_name = None;
        let mut facets = Facets::default();
        for a in attrs(tag) {
            let a = a?;
            if a.key == "Type" {
                type_name = Some(self.value(&a)?);
            } else {
                self.facet(&mut facets, &a)?;
            }
        }
        self.skip(tag)?;
        if type_name.is_none() {
            self.error(
                tag.offset,
                format!("<{}> has no 'Type' attribute", tag.qname()),
            );
        }
        Ok((type_name, facets))
    }
}

/// Children of `EntityType`/`ComplexType` that are read.
const STRUCTURED_CHILDREN: &[&str] = &[
    "Key",
    "Property",
    "NavigationProperty",
    "Documentation",
    ANNOTATION,
    VALUE_ANNOTATION,
];

const DOCS_CHILDREN: &[&str] = &["Documentation", ANNOTATION, VALUE_ANNOTATION];

const NAV_CHILDREN: &[&str] = &[
    "ReferentialConstraint",
    "Documentation",
    ANNOTATION,
    VALUE_ANNOTATION,
];

const ENUM_CHILDREN: &[&str] = &["Member", "Documentation", ANNOTATION, VALUE_ANNOTATION];

const OPERATION_CHILDREN: &[&str] = &[
    "Parameter",
    "ReturnType",
    "Documentation",
    ANNOTATION,
    VALUE_ANNOTATION,
];

/// What `Parser::typed_element` reads.
struct TypedElement {
    name: String,
    type_name: String,
    facets: Facets,
    docs: Docs,
    annotations: Vec<crate::csdl::Annotation>,
    pos: crate::source::Pos,
}
