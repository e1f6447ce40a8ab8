//! EDMX/CSDL `$metadata` → [`csdl::Document`](crate::csdl::Document), in one streaming pass.
//!
//! One forward pass of quick-xml's pull reader over the text as read (no DOM); every element we
//! keep records the position of its start tag. Elements and attributes are matched by **local
//! name**: prefixes and namespace URIs differ between CSDL 1.0 (2006/04), 2.0 (2008/09), 3.0
//! (2009/11) and 4.0 (OASIS) and between services (`edm:Schema`, `edmx:Edmx`), while the local
//! names are what the specs define. Attributes with a prefix are ignored, except `m:`/`metadata:`
//! ones (`m:DataServiceVersion`, `m:IsDefaultEntityContainer`, `m:HttpMethod`, `m:HasStream`) and
//! `sap:label`/`sap:quickinfo`/`sap:heading`. Unknown elements are skipped with their subtree.
//!
//! What is reported:
//! - not well-formed XML (mismatched or missing end tag, bad `&` reference, unclosed tag...):
//!   one `malformed XML: ...` error at the position quick-xml reports, and `None`;
//! - non-whitespace text directly inside `edmx:Edmx`, `edmx:DataServices` or `Schema`: an error,
//!   parsing goes on;
//! - an element name that matches a known one only up to ASCII case (`edmx:Dataservices`): a
//!   warning, and it is read as the known one;
//! - a missing required attribute (`Name`, `Type`, `Namespace`, `Term`...) or a non-integer enum
//!   member `Value`: an error; an unreadable facet or boolean: a warning, and the value is dropped.

mod annotations;
mod container;
mod facets;
mod reader;
mod schema;
mod version;

#[cfg(test)]
mod tests;

use crate::csdl::{Document, Include};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::source::SourceFile;
use reader::{attrs, Fatal, Node, PResult, Parser, Tag};
use version::VersionHints;

/// Parses one `$metadata` document. `file` is the index stored in every `Pos`.
/// Returns `None` only when the XML is not well-formed (then an error diagnostic with line:col is pushed).
pub fn parse_document(source: &SourceFile, file: u32, diags: &mut Diagnostics) -> Option<Document> {
    let mut parser = Parser::new(source, file);
    match parser.document() {
        Ok(doc) => {
            diags.0.append(&mut parser.diags);
            Some(doc)
        }
        Err(Fatal { offset, message }) => {
            // A document that is not XML has one problem to fix first: report only that one.
            let pos = source.pos(file, offset);
            diags.push(Diagnostic::error(format!("malformed XML: {message}")).at(
                source.path.clone(),
                pos.line,
                pos.column,
            ));
            None
        }
    }
}

/// What was read from the wrapper for the version decision (see [`version`]).
#[derive(Default)]
struct Hints {
    edmx_namespace: Option<String>,
    csdl_namespace: Option<String>,
}

impl<'a> Parser<'a> {
    fn document(&mut self) -> PResult<Document> {
        let mut doc = Document::default();
        let mut hints = Hints::default();
        let mut root_seen = false;
        while let Some(node) = self.top_level()? {
            match node {
                Node::Text { text, offset, raw } => {
                    if let Some(i) = text.find(|c: char| !c.is_whitespace()) {
                        let at = if raw { offset + i } else { offset };
                        return Err(Fatal::new(at, "text outside the root element"));
                    }
                }
                Node::Open(tag) => {
                    if root_seen {
                        return Err(Fatal::new(
                            tag.offset,
                            format!("element <{}> after the root element", tag.qname()),
                        ));
                    }
                    root_seen = true;
                    match self.classify(&tag, &["Edmx", "Schema"]) {
                        Some("Edmx") => self.edmx(&tag, &mut doc, &mut hints)?,
                        Some(_) => {
                            // A bare CSDL document (`<Schema>` root), as files on disk sometimes are.
                            let (schema, ns) = self.schema(&tag)?;
                            hints.csdl_namespace = hints.csdl_namespace.or(ns);
                            doc.schemas.push(schema);
                        }
                        None => {
                            let message = format!(
                                "expected <edmx:Edmx> as the root element, found <{}>",
                                tag.qname()
                            );
                            self.error(tag.offset, message);
                            self.skip(&tag)?;
                        }
                    }
                }
            }
        }
        if !root_seen {
            return Err(Fatal::new(self.end_offset(), "no root element"));
        }
        doc.odata_version = version::decide(&VersionHints {
            edmx_version: &doc.edmx_version,
            edmx_namespace: hints.edmx_namespace.as_deref(),
            data_service_version: doc.data_service_version.as_deref(),
            max_data_service_version: doc.max_data_service_version.as_deref(),
            csdl_namespace: hints.csdl_namespace.as_deref(),
        });
        Ok(doc)
    }

    /// `<edmx:Edmx Version="..">` with `edmx:Reference`s and `edmx:DataServices`.
    fn edmx(&mut self, tag: &Tag<'a>, doc: &mut Document, hints: &mut Hints) -> PResult<()> {
        let own_prefix = tag.qname().split_once(':').map(|(p, _)| p);
        for a in tag.start.attributes().flatten() {
            let key = a.key.0;
            let declares_own = match own_prefix {
                None => key == "xmlns",
                Some(p) => key.strip_prefix("xmlns:") == Some(p),
            };
            if declares_own {
                hints.edmx_namespace = Some(a.value.into_owned());
            }
        }
        for a in attrs(tag) {
            let a = a?;
            if a.key == "Version" {
                doc.edmx_version = self.value(&a)?;
            }
        }
        if tag.empty {
            return Ok(());
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
            match self.classify(&c, &["Reference", "DataServices", "Schema"]) {
                Some("Reference") => self.reference(&c, &mut doc.references)?,
                Some("DataServices") => self.data_services(&c, doc, hints)?,
                Some(_) => {
                    let message = format!(
                        "<{}> directly inside <{}>; expected inside <edmx:DataServices>",
                        c.qname(),
                        tag.qname()
                    );
                    self.warn(c.offset, message);
                    let (schema, ns) = self.schema(&c)?;
                    hints.csdl_namespace = hints.csdl_namespace.take().or(ns);
                    doc.schemas.push(schema);
                }
                None => self.skip(&c)?,
            }
        }
        self.flush_stray(&mut stray, tag);
        Ok(())
    }

    /// `<edmx:Reference Uri="..">` with `<edmx:Include Namespace=".." Alias=".."/>`s.
    fn reference(&mut self, tag: &Tag<'a>, out: &mut Vec<Include>) -> PResult<()> {
        if tag.empty {
            return Ok(());
        }
        while let Some(node) = self.child()? {
            let Node::Open(c) = node else { continue };
            if self.classify(&c, &["Include"]).is_none() {
                self.skip(&c)?;
                continue;
            }
            let pos = self.pos(c.offset);
            let (mut namespace, mut alias) = (None, None);
            for a in attrs(&c) {
                let a = a?;
                match a.key {
                    "Namespace" => namespace = Some(self.value(&a)?),
                    "Alias" => alias = Some(self.value(&a)?),
                    _ => {}
                }
            }
            self.skip(&c)?;
            let namespace = self.required(namespace, &c, "Namespace");
            out.push(Include {
                namespace,
                alias,
                pos,
            });
        }
        Ok(())
    }

    /// `<edmx:DataServices m:DataServiceVersion=".." m:MaxDataServiceVersion="..">` with schemas.
    fn data_services(
        &mut self,
        tag: &Tag<'a>,
        doc: &mut Document,
        hints: &mut Hints,
    ) -> PResult<()> {
        for a in attrs(tag) {
            let a = a?;
            match a.key {
                "DataServiceVersion" => doc.data_service_version = Some(self.value(&a)?),
                "MaxDataServiceVersion" => doc.max_data_service_version = Some(self.value(&a)?),
                _ => {}
            }
        }
        if tag.empty {
            return Ok(());
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
            if self.classify(&c, &["Schema"]).is_some() {
                let (schema, ns) = self.schema(&c)?;
                hints.csdl_namespace = hints.csdl_namespace.take().or(ns);
                doc.schemas.push(schema);
            } else {
                self.skip(&c)?;
            }
        }
        self.flush_stray(&mut stray, tag);
        Ok(())
    }

    /// Reports the stray text gathered so far (if any) as inside `container`.
    fn flush_stray(&mut self, stray: &mut StrayText, container: &Tag<'a>) {
        if let Some((offset, snippet)) = stray.take() {
            let message = format!("unexpected text '{snippet}' inside <{}>", container.qname());
            self.error(offset, message);
        }
    }
}

/// Non-whitespace character data met directly inside a container element, gathered across
/// text runs and references until the next element so that it is reported once.
#[derive(Default)]
struct StrayText {
    /// File offset of the first non-whitespace character.
    start: Option<usize>,
    /// The text from there on, whitespace runs collapsed, at most `MAX + 1` characters.
    snippet: String,
    chars: usize,
}

impl StrayText {
    /// Characters of stray text quoted in the message.
    const MAX: usize = 40;

    fn add(&mut self, text: &str, offset: usize, raw: bool) {
        let text = if self.start.is_none() {
            let Some(i) = text.find(|c: char| !c.is_whitespace()) else {
                return;
            };
            self.start = Some(if raw { offset + i } else { offset });
            text.get(i..).unwrap_or("")
        } else {
            text
        };
        for c in text.chars() {
            if self.chars > Self::MAX {
                break;
            }
            if c.is_whitespace() {
                if !self.snippet.ends_with(' ') {
                    self.snippet.push(' ');
                    self.chars += 1;
                }
            } else {
                self.snippet.push(c);
                self.chars += 1;
            }
        }
    }

    /// The offset and the quoted snippet (trimmed, at most `MAX` characters then `…`).
    fn take(&mut self) -> Option<(usize, String)> {
        let start = self.start.take()?;
        let mut snippet = std::mem::take(&mut self.snippet);
        let truncated = self.chars > Self::MAX;
        self.chars = 0;
        if truncated {
            let cut = snippet
                .char_indices()
                .nth(Self::MAX)
                .map_or(snippet.len(), |(i, _)| i);
            snippet.truncate(cut);
        }
        let mut snippet = snippet.trim_end().to_string();
        if truncated {
            snippet.push('…');
        }
        Some((start, snippet))
    }
}
