//! Human documentation and vocabulary annotations: `<Documentation>` (CSDL 1.0–3.0),
//! `sap:label`/`sap:quickinfo`/`sap:heading` (SAP Gateway V2), inline `<Annotation>` (V4; V3
//! `<ValueAnnotation>` is read the same way) and out-of-line `<Annotations Target="..">` blocks.
//! Only string values are kept; records, collections and nested annotations are skipped.

use super::reader::{attrs, Attr, Node, PResult, Parser, Tag};
use crate::csdl::{Annotation, AnnotationBlock, Docs};

/// Local names of inline annotation elements (V4 `Annotation`, V3 `ValueAnnotation`).
pub(super) const ANNOTATION: &str = "Annotation";
pub(super) const VALUE_ANNOTATION: &str = "ValueAnnotation";

impl<'a> Parser<'a> {
    /// Reads `sap:label`, `sap:quickinfo` and `sap:heading` into `docs`; returns whether `a` was
    /// one of them. `Docs` has no heading: a non-empty heading is used as the label when the
    /// element has no label.
    pub(super) fn doc_attr(&mut self, docs: &mut Docs, a: &Attr<'_>) -> PResult<bool> {
        match a.key {
            "sap:label" => {
                if let Some(v) = non_empty(self.value(a)?) {
                    docs.sap_label = Some(v);
                }
            }
            "sap:quickinfo" => docs.sap_quickinfo = non_empty(self.value(a)?),
            "sap:heading" => {
                if docs.sap_label.is_none() {
                    docs.sap_label = non_empty(self.value(a)?);
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `<Documentation><Summary>..</Summary><LongDescription>..</LongDescription></Documentation>`;
    /// anything else inside (SuccessFactors' `<sap:tagcollection>`) is skipped.
    pub(super) fn documentation(&mut self, tag: &Tag<'a>, docs: &mut Docs) -> PResult<()> {
        if tag.empty {
            return Ok(());
        }
        while let Some(node) = self.child()? {
            let Node::Open(c) = node else { continue };
            match self.classify(&c, &["Summary", "LongDescription"]) {
                Some("Summary") => {
                    let text = self.text_content(&c)?;
                    if docs.summary.is_none() {
                        docs.summary = text;
                    }
                }
                Some("LongDescription") => {
                    let text = self.text_content(&c)?;
                    if docs.long_description.is_none() {
                        docs.long_description = text;
                    }
                }
                _ => self.skip(&c)?,
            }
        }
        Ok(())
    }

    /// If `c` is `Documentation` or an inline annotation, reads it into `docs`/`annotations` and
    /// returns true; otherwise leaves it for the caller.
    pub(super) fn docs_or_annotation(
        &mut self,
        c: &Tag<'a>,
        name: Option<&'static str>,
        docs: &mut Docs,
        annotations: &mut Vec<Annotation>,
    ) -> PResult<bool> {
        match name {
            Some("Documentation") => self.documentation(c, docs)?,
            Some(ANNOTATION | VALUE_ANNOTATION) => annotations.extend(self.annotation(c)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `<Annotation Term=".." Qualifier=".." String=".."/>` or with a `<String>` child. Without a
    /// `Term` it means nothing (a RESO server writes `<Annotation/>`): a warning, and `None`.
    pub(super) fn annotation(&mut self, tag: &Tag<'a>) -> PResult<Option<Annotation>> {
        let pos = self.pos(tag.offset);
        let mut term = None;
        let mut qualifier = None;
        let mut value = None;
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Term" => term = Some(self.value(&a)?),
                "Qualifier" => qualifier = Some(self.value(&a)?),
                "String" => value = Some(self.value(&a)?),
                _ => {}
            }
        }
        if !tag.empty {
            while let Some(node) = self.child()? {
                let Node::Open(c) = node else { continue };
                match self.classify(&c, &["String"]) {
                    Some("String") if value.is_none() => {
                        value = Some(self.text_content(&c)?.unwrap_or_default());
                    }
                    _ => self.skip(&c)?,
                }
            }
        }
        let Some(term) = term else {
            let message = format!("<{}> has no 'Term' attribute; it is ignored", tag.qname());
            self.warn(tag.offset, message);
            return Ok(None);
        };
        Ok(Some(Annotation {
            term,
            qualifier,
            value,
            pos,
        }))
    }

    /// `<Annotations Target=".." Qualifier="..">` with annotation children.
    pub(super) fn annotation_block(&mut self, tag: &Tag<'a>) -> PResult<AnnotationBlock> {
        let pos = self.pos(tag.offset);
        let mut target = None;
        let mut qualifier = None;
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "Target" => target = Some(self.value(&a)?),
                "Qualifier" => qualifier = Some(self.value(&a)?),
                _ => {}
            }
        }
        let mut annotations = Vec::new();
        if !tag.empty {
            while let Some(node) = self.child()? {
                let Node::Open(c) = node else { continue };
                match self.classify(&c, &[ANNOTATION, VALUE_ANNOTATION]) {
                    Some(_) => annotations.extend(self.annotation(&c)?),
                    None => self.skip(&c)?,
                }
            }
        }
        let target = self.required(target, tag, "Target");
        Ok(AnnotationBlock {
            target,
            qualifier,
            annotations,
            pos,
        })
    }

    /// A required attribute: when absent, an error at the element and an empty string.
    pub(super) fn required(&mut self, v: Option<String>, tag: &Tag<'a>, attr: &str) -> String {
        match v {
            Some(v) => v,
            None => {
                let message = format!("<{}> has no '{attr}' attribute", tag.qname());
                self.error(tag.offset, message);
                String::new()
            }
        }
    }
}

fn non_empty(s: String) -> Option<String> {
    if s.trim().is_empty() {
        None
    } else {
        Some(s)
    }
}
