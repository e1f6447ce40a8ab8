//! The event layer under the CSDL parser: one forward pass of quick-xml's pull reader over the
//! borrowed text (no DOM, no copies of element names), plus what every element parser needs:
//! byte offsets of start tags turned into [`Pos`], attribute lookup by local name, text content,
//! skipping of unknown subtrees, and well-formedness errors turned into one readable [`Fatal`].

use std::borrow::Cow;

use quick_xml::errors::{Error as XmlError, IllFormedError};
use quick_xml::escape::{resolve_predefined_entity, EscapeError};
use quick_xml::events::attributes::{AttrError, Attribute, Attributes};
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::diagnostics::Diagnostic;
use crate::source::{Pos, SourceFile};

/// The document is not well-formed XML: parsing stops, and exactly this one error is reported.
#[derive(Debug)]
pub(super) struct Fatal {
    /// Byte offset in the file (BOM included).
    pub offset: usize,
    pub message: String,
}

impl Fatal {
    pub fn new(offset: usize, message: impl Into<String>) -> Self {
        Fatal {
            offset,
            message: message.into(),
        }
    }
}

pub(super) type PResult<T> = Result<T, Fatal>;

/// A start tag (`<Name ...>` or `<Name .../>`) and where it starts.
pub(super) struct Tag<'a> {
    pub start: BytesStart<'a>,
    /// Byte offset of the `<` in the file.
    pub offset: usize,
    /// `<Name/>`: there are no children and no end tag to read.
    pub empty: bool,
}

impl Tag<'_> {
    /// The name as written, with its prefix (`edmx:DataServices`).
    pub fn qname(&self) -> &str {
        self.start.name().0
    }

    /// The name without its prefix (`DataServices`).
    pub fn local(&self) -> &str {
        local_part(self.qname())
    }
}

fn local_part(qname: &str) -> &str {
    match qname.rfind(':') {
        Some(i) => qname.get(i + 1..).unwrap_or(""),
        None => qname,
    }
}

/// What the element parsers see inside an element.
pub(super) enum Node<'a> {
    Open(Tag<'a>),
    /// Character data: a text run, a CDATA section or one resolved entity/character reference.
    Text {
        text: Cow<'a, str>,
        /// Byte offset in the file of the first byte of the text (or of the `&`, `<![CDATA[`).
        offset: usize,
        /// The text is the raw source (so `offset + i` is the file offset of byte `i`, and line
        /// ends still need XML normalisation); false for CDATA and references.
        raw: bool,
    },
}

enum Item<'a> {
    Node(Node<'a>),
    Close,
    Eof,
}

/// Incremental offset → line:column conversion. Offsets of start tags only grow during the
/// pass, so counting forward from the previous one keeps the whole pass linear even for
/// documents on one 900 KB line, where [`SourceFile::pos`] would rescan the line each time.
/// Counts exactly like [`SourceFile::pos`] (columns in characters).
struct Cursor {
    offset: usize,
    line: u32,
    column: u32,
}

pub(super) struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    /// The text handed to quick-xml: the file without its UTF-8 BOM.
    input: &'a str,
    /// Bytes cut from the front of the file (3 with a BOM, else 0); added to every offset
    /// quick-xml reports so that positions count the file as stored.
    base: usize,
    pub source: &'a SourceFile,
    pub file: u32,
    pub diags: Vec<Diagnostic>,
    cursor: Cursor,
    /// File offsets of the start tags that are open, innermost last.
    open: Vec<usize>,
}

impl<'a> Parser<'a> {
    pub fn new(source: &'a SourceFile, file: u32) -> Self {
        let text = source.text.as_str();
        let (input, base) = match text.strip_prefix('\u{FEFF}') {
            Some(rest) => (rest, text.len() - rest.len()),
            None => (text, 0),
        };
        // Default configuration: end tag names are checked, text is not trimmed (so the offset
        // before each event is exactly where that event starts), comments are not checked.
        let reader = Reader::from_str(input);
        Parser {
            reader,
            input,
            base,
            source,
            file,
            diags: Vec::new(),
            cursor: Cursor {
                offset: 0,
                line: 1,
                column: 1,
            },
            open: Vec::new(),
        }
    }

    // ---------------------------------------------------------------- positions, diagnostics

    /// Position of a file byte offset; linear over the pass (see [`Cursor`]).
    pub fn pos(&mut self, offset: usize) -> Pos {
        let text = self.source.text.as_bytes();
        let offset = offset.min(text.len());
        if offset < self.cursor.offset {
            return self.source.pos(self.file, offset);
        }
        let Cursor {
            mut line,
            mut column,
            ..
        } = self.cursor;
        for &b in text.get(self.cursor.offset..offset).unwrap_or(&[]) {
            if b == b'\n' {
                line += 1;
                column = 1;
            } else if b & 0xC0 != 0x80 {
                column += 1;
            }
        }
        self.cursor = Cursor {
            offset,
            line,
            column,
        };
        Pos {
            file: self.file,
            line,
            column,
            offset: offset as u64,
        }
    }

    fn diagnostic(&mut self, d: Diagnostic, offset: usize) {
        let pos = self.pos(offset);
        let d = d.at(self.source.path.clone(), pos.line, pos.column);
        self.diags.push(d);
    }

    pub fn warn(&mut self, offset: usize, message: impl Into<String>) {
        self.diagnostic(Diagnostic::warning(message), offset);
    }

    pub fn error(&mut self, offset: usize, message: impl Into<String>) {
        self.diagnostic(Diagnostic::error(message), offset);
    }

    /// File offset of a string slice that borrows from the input (an attribute value), if it does.
    pub fn offset_of(&self, s: &str) -> Option<usize> {
        let start = self.input.as_ptr() as usize;
        let p = s.as_ptr() as usize;
        if p >= start && p + s.len() <= start + self.input.len() {
            Some(self.base + (p - start))
        } else {
            None
        }
    }

    pub fn end_offset(&self) -> usize {
        self.base + self.input.len()
    }

    // ---------------------------------------------------------------- events

    fn item(&mut self) -> PResult<Item<'a>> {
        loop {
            let offset = self.base + self.reader.buffer_position() as usize;
            let event = match self.reader.read_event() {
                Ok(event) => event,
                Err(e) => {
                    let at = self.base + self.reader.error_position() as usize;
                    return Err(Fatal::new(at, describe_xml_error(&e)));
                }
            };
            return Ok(match event {
                Event::Start(start) => {
                    self.open.push(offset);
                    Item::Node(Node::Open(Tag {
                        start,
                        offset,
                        empty: false,
                    }))
                }
                Event::Empty(start) => Item::Node(Node::Open(Tag {
                    start,
                    offset,
                    empty: true,
                })),
                Event::End(_) => {
                    self.open.pop();
                    Item::Close
                }
                Event::Text(t) => Item::Node(Node::Text {
                    text: t.into_inner(),
                    offset,
                    raw: true,
                }),
                Event::CData(t) => Item::Node(Node::Text {
                    text: t.into_inner(),
                    offset,
                    raw: false,
                }),
                Event::GeneralRef(r) => {
                    let text = if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) => Cow::Owned(c.to_string()),
                            _ => {
                                return Err(Fatal::new(
                                    offset,
                                    format!("invalid character reference '&{};'", &*r),
                                ))
                            }
                        }
                    } else {
                        match resolve_predefined_entity(&r) {
                            Some(s) => Cow::Borrowed(s),
                            None => {
                                return Err(Fatal::new(offset, unknown_entity(&r)));
                            }
                        }
                    };
                    Item::Node(Node::Text {
                        text,
                        offset,
                        raw: false,
                    })
                }
                Event::Eof => Item::Eof,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => continue,
            });
        }
    }

    /// The next node at the top level of the document; `None` at the end of input.
    pub fn top_level(&mut self) -> PResult<Option<Node<'a>>> {
        match self.item()? {
            Item::Node(node) => Ok(Some(node)),
            Item::Eof => Ok(None),
            // quick-xml reports an end tag without start tag itself; keep a message anyway.
            Item::Close => Err(Fatal::new(
                self.end_offset(),
                "end tag does not match any open element",
            )),
        }
    }

    /// The next child node of the element being read; `None` at its end tag. The end of input
    /// inside an element is a fatal error.
    pub fn child(&mut self) -> PResult<Option<Node<'a>>> {
        match self.item()? {
            Item::Node(node) => Ok(Some(node)),
            Item::Close => Ok(None),
            Item::Eof => Err(self.unclosed()),
        }
    }

    fn unclosed(&mut self) -> Fatal {
        let end = self.end_offset();
        let Some(&open) = self.open.last() else {
            return Fatal::new(end, "unexpected end of input");
        };
        let name = self
            .source
            .text
            .get(open + 1..)
            .map(|rest| {
                let len = rest
                    .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                    .unwrap_or(rest.len());
                rest.get(..len).unwrap_or("")
            })
            .unwrap_or("")
            .to_string();
        let at = self.pos(open);
        Fatal::new(
            end,
            format!(
                "unexpected end of input: expected '</{name}>' to close '<{name}>' opened at {}:{}",
                at.line, at.column
            ),
        )
    }

    /// Skips the whole subtree of an element we do not read (after its start tag).
    pub fn skip(&mut self, tag: &Tag<'a>) -> PResult<()> {
        if tag.empty {
            return Ok(());
        }
        let mut depth = 1usize;
        loop {
            match self.item()? {
                Item::Node(Node::Open(t)) if !t.empty => depth += 1,
                Item::Node(_) => {}
                Item::Close => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Item::Eof => return Err(self.unclosed()),
            }
        }
    }

    /// The character data of an element (`<Summary>text</Summary>`), line ends normalised and
    /// trimmed; child elements are skipped. `None` when empty.
    pub fn text_content(&mut self, tag: &Tag<'a>) -> PResult<Option<String>> {
        let mut out = String::new();
        if !tag.empty {
            while let Some(node) = self.child()? {
                match node {
                    Node::Text { text, raw, .. } => {
                        if raw && text.contains('\r') {
                            out.push_str(&text.replace("\r\n", "\n").replace('\r', "\n"));
                        } else {
                            out.push_str(&text);
                        }
                    }
                    Node::Open(child) => self.skip(&child)?,
                }
            }
        }
        let trimmed = out.trim();
        Ok(if trimmed.is_empty() {
            None
        } else if trimmed.len() == out.len() {
            Some(out)
        } else {
            Some(trimmed.to_string())
        })
    }

    /// Matches an element's local name against the names the caller reads. An exact match wins;
    /// a match that differs only in ASCII case is accepted with a warning (a production RESO
    /// service writes `edmx:Dataservices`).
    pub fn classify(&mut self, tag: &Tag<'a>, names: &[&'static str]) -> Option<&'static str> {
        let local = tag.local();
        if let Some(n) = names.iter().find(|n| **n == local) {
            return Some(n);
        }
        let n = names.iter().find(|n| n.eq_ignore_ascii_case(local))?;
        let qname = tag.qname();
        let prefix = qname.get(..qname.len() - local.len()).unwrap_or("");
        let message = format!("misspelled element '{qname}' read as '{prefix}{n}'");
        self.warn(tag.offset, message);
        Some(n)
    }

    // ---------------------------------------------------------------- attributes

    /// The value of an attribute, XML-unescaped and normalised (tabs/newlines → spaces).
    pub fn value(&self, a: &Attr<'_>) -> PResult<String> {
        match a.attr.normalized_value(XmlVersion::Implicit1_0) {
            Ok(v) => Ok(v.into_owned()),
            Err(e) => {
                let base = self.offset_of(&a.attr.value).unwrap_or(a.tag_offset);
                let (rel, message) = match &e {
                    XmlError::Escape(esc) => describe_escape_error(esc),
                    other => (0, describe_xml_error(other)),
                };
                Err(Fatal::new(base + rel, message))
            }
        }
    }

    /// File offset of an attribute's value (for diagnostics about it).
    pub fn value_offset(&self, a: &Attr<'_>) -> usize {
        self.offset_of(&a.attr.value).unwrap_or(a.tag_offset)
    }
}

/// One attribute we may read: `key` is its local name for unprefixed and `m:`/`metadata:`
/// attributes, and `sap:label`/`sap:quickinfo`/`sap:heading` for those three SAP ones.
pub(super) struct Attr<'t> {
    pub key: &'t str,
    pub attr: Attribute<'t>,
    tag_offset: usize,
}

/// Iterates the attributes of a start tag that the parser may read, skipping namespace
/// declarations and attributes of foreign namespaces (`p8:StoreGeneratedPattern`,
/// `sap:creatable`, `xml:lang`). Syntax errors in the attribute list are fatal.
pub(super) struct AttrIter<'t> {
    inner: Attributes<'t>,
    tag_offset: usize,
    failed: bool,
}

pub(super) fn attrs<'t>(tag: &'t Tag<'_>) -> AttrIter<'t> {
    AttrIter {
        inner: tag.start.attributes(),
        tag_offset: tag.offset,
        failed: false,
    }
}

impl<'t> Iterator for AttrIter<'t> {
    type Item = PResult<Attr<'t>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            match self.inner.next()? {
                Ok(attr) => {
                    if let Some(key) = attr_key(attr.key.0) {
                        return Some(Ok(Attr {
                            key,
                            attr,
                            tag_offset: self.tag_offset,
                        }));
                    }
                }
                Err(e) => {
                    self.failed = true;
                    // Attribute error positions count from the byte after `<`.
                    let (rel, message) = describe_attr_error(&e);
                    return Some(Err(Fatal::new(self.tag_offset + 1 + rel, message)));
                }
            }
        }
    }
}

/// See [`Attr::key`].
fn attr_key(qname: &str) -> Option<&str> {
    match qname.split_once(':') {
        None if qname == "xmlns" => None,
        None => Some(qname),
        Some(("m" | "metadata", local)) => Some(local),
        Some(("sap", "label" | "quickinfo" | "heading")) => Some(qname),
        Some(_) => None,
    }
}

// -------------------------------------------------------------------- error messages

/// quick-xml's error, reworded for people: quotes instead of backticks, no "ill-formed document"
/// preamble. The caller prefixes `malformed XML: `.
pub(super) fn describe_xml_error(e: &XmlError) -> String {
    match e {
        XmlError::IllFormed(IllFormedError::MismatchedEndTag { expected, found }) => {
            format!("expected '</{expected}>', found '</{found}>'")
        }
        XmlError::IllFormed(IllFormedError::UnmatchedEndTag(name)) => {
            format!("end tag '</{name}>' does not match any open element")
        }
        XmlError::IllFormed(IllFormedError::UnclosedReference) => {
            "'&' does not start an entity or character reference ending in ';' (write '&amp;' for a literal '&')".to_string()
        }
        XmlError::IllFormed(other) => backticks_to_quotes(&other.to_string()),
        XmlError::Syntax(s) => backticks_to_quotes(&s.to_string()),
        XmlError::InvalidAttr(a) => describe_attr_error(a).1,
        XmlError::Escape(esc) => describe_escape_error(esc).1,
        other => backticks_to_quotes(&other.to_string()),
    }
}

fn backticks_to_quotes(s: &str) -> String {
    s.replace('`', "'")
}

/// Message and position (relative to the byte after `<`) of an attribute syntax error.
fn describe_attr_error(e: &AttrError) -> (usize, String) {
    match e {
        AttrError::ExpectedEq(p) => (*p, "attribute name must be followed by '='".to_string()),
        AttrError::ExpectedValue(p) => (
            *p,
            "'=' must be followed by a quoted attribute value".to_string(),
        ),
        AttrError::UnquotedValue(p) => (
            *p,
            "attribute value must be enclosed in '\"' or '''".to_string(),
        ),
        AttrError::ExpectedQuote(p, q) => (
            *p,
            format!(
                "attribute value is not closed: missing '{}'",
                char::from(*q)
            ),
        ),
        AttrError::Duplicated(p, _) => (*p, "duplicate attribute".to_string()),
    }
}

/// Message and position (relative to the start of the value) of a bad reference in an attribute.
fn describe_escape_error(e: &EscapeError) -> (usize, String) {
    match e {
        EscapeError::UnrecognizedEntity(range, name) => (range.start.saturating_sub(1), unknown_entity(name)),
        EscapeError::UnterminatedEntity(range) => (
            range.start,
            "'&' does not start an entity or character reference ending in ';' (write '&amp;' for a literal '&')".to_string(),
        ),
        EscapeError::InvalidCharRef(c) => (0, format!("invalid character reference: {c}")),
        other => (0, backticks_to_quotes(&other.to_string())),
    }
}

fn unknown_entity(name: &str) -> String {
    format!(
        "unknown entity '&{name};' (only &lt; &gt; &amp; &apos; &quot; and character references are defined)"
    )
}
