//! `<EntityContainer>`: entity sets, singletons, V2/V3 association sets, function imports (V2/V3
//! operations with their parameters, or V4 references to a `Function`) and V4 action imports.

use super::annotations::{ANNOTATION, VALUE_ANNOTATION};
use super::reader::{attrs, Node, PResult, Parser, Tag};
use crate::csdl::{
    AssociationSet, AssociationSetEnd, Docs, EntityContainer, EntitySet, NavigationPropertyBinding,
    OperationImport, OperationKind, Singleton,
};

const CONTAINER_CHILDREN: &[&str] = &[
    "EntitySet",
    "Singleton",
    "AssociationSet",
    "FunctionImport",
    "ActionImport",
    "Documentation",
    ANNOTATION,
    VALUE_ANNOTATION,
];

const SET_CHILDREN: &[&str] = &[
    "NavigationPropertyBinding",
    "Documentation",
    ANNOTATION,
    VALUE_ANNOTATION,
];

const IMPORT_CHILDREN: &[&str] = &[
    "Parameter",
    "ReturnType",
    "Documentation",
    ANNOTATION,
    VALUE_ANNOTATION,
];

impl<'a> Parser<'a> {
    pub(super) fn entity_container(&mut self, tag: &Tag<'a>) -> PResult<EntityContainer> {
        let pos = self.pos(tag.offset);
        let mut name = None;
        let mut c = EntityContainer {
            name: String::new(),
            is_default: false,
            extends: None,
            entity_sets: Vec::new(),
            singletons: Vec::new(),
            association_sets: Vec::new(),
            operation_imports: Vec::new(),
            docs: Docs::default(),
            annotations: Vec::new(),
            pos,
        };
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Name" => name = Some(self.value(&a)?),
                "IsDefaultEntityContainer" => c.is_default = self.flag(&a)?,
                "Extends" => c.extends = Some(self.value(&a)?),
                _ => {
                    self.doc_attr(&mut c.docs, &a)?;
                }
            }
        }
        c.name = self.required(name, tag, "Name");
        if tag.empty {
            return Ok(c);
        }
        while let Some(node) = self.child()? {
            let Node::Open(child) = node else { continue };
            let kind = self.classify(&child, CONTAINER_CHILDREN);
            match kind {
                Some("EntitySet") => c.entity_sets.push(self.entity_set(&child)?),
                Some("Singleton") => c.singletons.push(self.singleton(&child)?),
                Some("AssociationSet") => c.association_sets.push(self.association_set(&child)?),
                Some("FunctionImport") => c
                    .operation_imports
                    .push(self.operation_import(&child, OperationKind::Function)?),
                Some("ActionImport") => c
                    .operation_imports
                    .push(self.operation_import(&child, OperationKind::Action)?),
                _ => {
                    if !self.docs_or_annotation(&child, kind, &mut c.docs, &mut c.annotations)? {
                        self.skip(&child)?;
                    }
                }
            }
        }
        Ok(c)
    }

    fn entity_set(&mut self, tag: &Tag<'a>) -> PResult<EntitySet> {
        let pos = self.pos(tag.offset);
        let (mut name, mut entity_type) = (None, None);
        let mut docs = Docs::default();
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Name" => name = Some(self.value(&a)?),
                "EntityType" => entity_type = Some(self.value(&a)?),
                _ => {
                    self.doc_attr(&mut docs, &a)?;
                }
            }
        }
        let name = self.required(name, tag, "Name");
        let entity_type = self.required(entity_type, tag, "EntityType");
        let mut set = EntitySet {
            name,
            entity_type,
            navigation_property_bindings: Vec::new(),
            docs,
            annotations: Vec::new(),
            pos,
        };
        self.set_children(
            tag,
            &mut set.navigation_property_bindings,
            &mut set.docs,
            &mut set.annotations,
        )?;
        Ok(set)
    }

    fn singleton(&mut self, tag: &Tag<'a>) -> PResult<Singleton> {
        let pos = self.pos(tag.offset);
        let (mut name, mut type_name) = (None, None);
        let mut docs = Docs::default();
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Name" => name = Some(self.value(&a)?),
                "Type" => type_name = Some(self.value(&a)?),
                _ => {
                    self.doc_attr(&mut docs, &a)?;
                }
            }
        }
        let name = self.required(name, tag, "Name");
        let type_name = self.required(type_name, tag, "Type");
        let mut s = Singleton {
            name,
            type_name,
            navigation_property_bindings: Vec::new(),
            docs,
            annotations: Vec::new(),
            pos,
        };
        self.set_children(
            tag,
            &mut s.navigation_property_bindings,
            &mut s.docs,
            &mut s.annotations,
        )?;
        Ok(s)
    }

    /// Children of `EntitySet`/`Singleton`: `<NavigationPropertyBinding Path=".." Target=".."/>`,
    /// documentation and annotations.
    fn set_children(
        &mut self,
        tag: &Tag<'a>,
        bindings: &mut Vec<NavigationPropertyBinding>,
        docs: &mut Docs,
        annotations: &mut Vec<crate::csdl::Annotation>,
    ) -> PResult<()> {
        if tag.empty {
            return Ok(());
        }
        while let Some(node) = self.child()? {
            let Node::Open(c) = node else { continue };
            let kind = self.classify(&c, SET_CHILDREN);
            if kind == Some("NavigationPropertyBinding") {
                let pos = self.pos(c.offset);
                let (mut path, mut target) = (None, None);
                for a in attrs(&c) {
                    let a = a?;
                    match a.key {
                        "Path" => path = Some(self.value(&a)?),
                        "Target" => target = Some(self.value(&a)?),
                        _ => {}
                    }
                }
                self.skip(&c)?;
                let path = self.required(path, &c, "Path");
                let target = self.required(target, &c, "Target");
                bindings.push(NavigationPropertyBinding { path, target, pos });
            } else if !self.docs_or_annotation(&c, kind, docs, annotations)? {
                self.skip(&c)?;
            }
        }
        Ok(())
    }

    fn association_set(&mut self, tag: &Tag<'a>) -> PResult<AssociationSet> {
        let pos = self.pos(tag.offset);
        let (mut name, mut association) = (None, None);
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Name" => name = Some(self.value(&a)?),
                "Association" => association = Some(self.value(&a)?),
                _ => {}
            }
        }
        let name = self.required(name, tag, "Name");
        let association = self.required(association, tag, "Association");
        let mut set = AssociationSet {
            name,
            association,
            ends: Vec::new(),
            pos,
        };
        if tag.empty {
            return Ok(set);
        }
        while let Some(node) = self.child()? {
            let Node::Open(c) = node else { continue };
            if self.classify(&c, &["End"]).is_none() {
                self.skip(&c)?;
                continue;
            }
            let pos = self.pos(c.offset);
            let (mut role, mut entity_set) = (None, None);
            for a in attrs(&c) {
                let a = a?;
                match a.key {
                    "Role" => role = Some(self.value(&a)?),
                    "EntitySet" => entity_set = Some(self.value(&a)?),
                    _ => {}
                }
            }
            self.skip(&c)?;
            let role = self.required(role, &c, "Role");
            let entity_set = self.required(entity_set, &c, "EntitySet");
            set.ends.push(AssociationSetEnd {
                role,
                entity_set,
                pos,
            });
        }
        Ok(set)
    }

    /// `<FunctionImport>` (V2/V3 with `ReturnType`, `m:HttpMethod`, `IsBindable`,
    /// `IsSideEffecting` and `<Parameter>`s; V4 with `Function`) or V4 `<ActionImport Action="..">`.
    fn operation_import(&mut self, tag: &Tag<'a>, kind: OperationKind) -> PResult<OperationImport> {
        let pos = self.pos(tag.offset);
        let mut name = None;
        let mut imp = OperationImport {
            kind,
            name: String::new(),
            operation: None,
            entity_set: None,
            return_type: None,
            http_method: None,
            is_bindable: false,
            is_side_effecting: None,
            parameters: Vec::new(),
            docs: Docs::default(),
            annotations: Vec::new(),
            pos,
        };
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Name" => name = Some(self.value(&a)?),
                "Function" if kind == OperationKind::Function => {
                    imp.operation = Some(self.value(&a)?)
                }
                "Action" if kind == OperationKind::Action => imp.operation = Some(self.value(&a)?),
                "EntitySet" => imp.entity_set = Some(self.value(&a)?),
                "ReturnType" => imp.return_type = Some(self.value(&a)?),
                "HttpMethod" => imp.http_method = Some(self.value(&a)?),
                "IsBindable" => imp.is_bindable = self.flag(&a)?,
                "IsSideEffecting" => {
                    imp.is_side_effecting = self.bool_value(&a, "'true' or 'false'")?
                }
                _ => {
                    self.doc_attr(&mut imp.docs, &a)?;
                }
            }
        }
        imp.name = self.required(name, tag, "Name");
        if kind == OperationKind::Action && imp.operation.is_none() {
            self.error(
                tag.offset,
                format!("<{}> has no 'Action' attribute", tag.qname()),
            );
        }
        if tag.empty {
            return Ok(imp);
        }
        while let Some(node) = self.child()? {
            let Node::Open(c) = node else { continue };
            let child = self.classify(&c, IMPORT_CHILDREN);
            match child {
                Some("Parameter") => imp.parameters.push(self.parameter(&c)?),
                // V3 allows the return type as a child element (`<ReturnType Type=".."/>`).
                Some("ReturnType") => {
                    let (type_name, _) = self.return_type(&c)?;
                    if imp.return_type.is_none() {
                        imp.return_type = type_name;
                    }
                }
                _ => {
                    if !self.docs_or_annotation(&c, child, &mut imp.docs, &mut imp.annotations)? {
                        self.skip(&c)?;
                    }
                }
            }
        }
        Ok(imp)
    }
}
