//! Shared by the integration tests: where the inputs and outputs live, and a minimal XML tree
//! built from quick-xml events (well-formedness: balanced, matching end tags, valid references).
#![allow(dead_code)]

use fake_exact::metadata_convert::{convert_with_report, default_source_label, Conversion};
use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const INPUT_2021: &str = "picqer-generator-2021-06__meta-data.json";
pub const INPUT_2019: &str = "dev-tools-2019-12__meta-data.json";

/// The workspace root (`fake-exact/..`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The scraped references: `$EXACT_CORPUS_DIR`, else `shared/corpus/exact-online/` beside the
/// repository (where CI and the developers have `shared/`).
pub fn corpus_dir() -> PathBuf {
    match std::env::var_os("EXACT_CORPUS_DIR") {
        Some(d) => PathBuf::from(d),
        None => repo_root().join("../shared/corpus/exact-online"),
    }
}

pub fn read_input(name: &str) -> String {
    let path = corpus_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the scraped Exact reference lives in shared/corpus/exact-online/ beside the \
repository; set EXACT_CORPUS_DIR to point elsewhere)",
            path.display()
        )
    })
}

/// What the converter makes of a corpus file, with the binary's default label.
pub fn convert_input(name: &str) -> Conversion {
    convert_with_report(&read_input(name), &default_source_label(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `*.xml` files of a folder, by file name.
pub fn xml_files_in(dir: &std::path::Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".xml") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            out.insert(name, text);
        }
    }
    out
}

#[derive(Debug, Clone, Default)]
pub struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    pub text: String,
}

impl Node {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
}

fn node_from(e: &quick_xml::events::BytesStart<'_>) -> Result<Node, String> {
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| format!("attribute: {e}"))?;
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| format!("attribute value: {e}"))?;
        attrs.push((a.key.as_ref().to_string(), value.into_owned()));
    }
    Ok(Node {
        name: e.name().as_ref().to_string(),
        attrs,
        ..Node::default()
    })
}

/// Parses a whole document into a tree; any well-formedness error (unbalanced or mismatched
/// tags, bad references, text outside the root, two roots) is an `Err`.
pub fn parse_xml(xml: &str) -> Result<Node, String> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| format!("at byte {}: {e}", reader.error_position()))?;
        match ev {
            Event::Start(e) => {
                if root.is_some() {
                    return Err("content after the root element".into());
                }
                stack.push(node_from(&e)?);
            }
            Event::Empty(e) => {
                let node = node_from(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None if root.is_none() => root = Some(node),
                    None => return Err("second root element".into()),
                }
            }
            Event::End(e) => {
                let node = stack.pop().ok_or("end tag without start tag")?;
                if node.name != e.name().as_ref() {
                    return Err(format!("</{}> closes <{}>", e.name().as_ref(), node.name));
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                let text = t.xml10_content();
                match stack.last_mut() {
                    Some(n) => n.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(format!("text outside the root: {text:?}")),
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c,
                    None => match r.xml10_content().as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(format!("undefined entity &{other};")),
                    },
                };
                let n = stack.last_mut().ok_or("reference outside the root")?;
                n.text.push(resolved);
            }
            Event::CData(_) | Event::PI(_) | Event::DocType(_) => {
                return Err("unexpected CDATA, processing instruction or DOCTYPE".into())
            }
            Event::Decl(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed <{}>", stack.last().unwrap().name));
    }
    root.ok_or_else(|| "no root element".to_string())
}

/// The `Schema` element of an EDMX document.
pub fn schema(root: &Node) -> &Node {
    assert_eq!(root.name, "edmx:Edmx");
    root.child("edmx:DataServices")
        .and_then(|d| d.child("Schema"))
        .expect("edmx:Edmx/edmx:DataServices/Schema")
}
