//! Every entity set of every cached `$metadata` document (metadata-cache/exact/*.xml), read with
//! `odata-codegen`'s parser: what the server can serve, with keys and property types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Kind of endpoint (§1.2): regular, `bulk/…` or `sync/…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Regular,
    Bulk,
    Sync,
}

/// The Edm types the generator knows; anything else is served as `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edm {
    Guid,
    String,
    DateTime,
    Int64,
    Int32,
    Int16,
    Byte,
    Double,
    Decimal,
    Boolean,
    Binary,
    Other,
}

impl Edm {
    /// The `Edm.*` name (as used in Atom `m:type`).
    pub fn name(self) -> &'static str {
        match self {
            Edm::Guid => "Edm.Guid",
            Edm::String => "Edm.String",
            Edm::DateTime => "Edm.DateTime",
            Edm::Int64 => "Edm.Int64",
            Edm::Int32 => "Edm.Int32",
            Edm::Int16 => "Edm.Int16",
            Edm::Byte => "Edm.Byte",
            Edm::Double => "Edm.Double",
            Edm::Decimal => "Edm.Decimal",
            Edm::Boolean => "Edm.Boolean",
            Edm::Binary => "Edm.Binary",
            Edm::Other => "Edm.String",
        }
    }

    fn parse(s: &str) -> Edm {
        match s {
            "Edm.Guid" => Edm::Guid,
            "Edm.String" => Edm::String,
            "Edm.DateTime" | "Edm.DateTimeOffset" => Edm::DateTime,
            "Edm.Int64" => Edm::Int64,
            "Edm.Int32" => Edm::Int32,
            "Edm.Int16" => Edm::Int16,
            "Edm.Byte" | "Edm.SByte" => Edm::Byte,
            "Edm.Double" | "Edm.Single" => Edm::Double,
            "Edm.Decimal" => Edm::Decimal,
            "Edm.Boolean" => Edm::Boolean,
            "Edm.Binary" => Edm::Binary,
            _ => Edm::Other,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Prop {
    pub name: String,
    pub edm: Edm,
    pub nullable: bool,
    pub is_key: bool,
    /// FNV-1a of the name, mixed into generated values.
    pub hash: u64,
    /// The name, lower-cased.
    pub lname: String,
}

/// One servable entity set.
#[derive(Debug, Clone)]
pub struct Entity {
    /// Lower-cased path after `/api/v1/{division}/`, e.g. `sync/crm/accounts`.
    pub path: String,
    /// The `$metadata` document file, e.g. `sync.crm.xml`.
    pub doc_file: String,
    pub set_name: String,
    /// Qualified entity type name, e.g. `Exact.Web.Api.Models.AccountSync`.
    pub type_name: String,
    pub kind: Kind,
    pub props: Vec<Prop>,
    /// Indexes into `props` of the key properties, in key order.
    pub keys: Vec<usize>,
    pub nav_props: Vec<String>,
    pub modified: Option<usize>,
    pub timestamp: Option<usize>,
    pub division: Option<usize>,
    /// FNV-1a of `path`.
    pub hash: u64,
}

impl Entity {
    pub fn prop(&self, name: &str) -> Option<usize> {
        self.props.iter().position(|p| p.name == name)
    }
    pub fn page_size(&self, standard: usize, bulk: usize) -> usize {
        match self.kind {
            Kind::Regular => standard,
            Kind::Bulk | Kind::Sync => bulk,
        }
    }
    /// `sync/Deleted`.
    pub fn is_deleted_log(&self) -> bool {
        self.path == "sync/deleted"
    }
}

pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// All entity sets, keyed by lower-cased path; plus the raw XML per document file.
#[derive(Debug, Default)]
pub struct Catalog {
    pub entities: BTreeMap<String, Entity>,
    /// Document file name (e.g. `crm.xml`) → its text.
    pub documents: BTreeMap<String, String>,
}

impl Catalog {
    /// Reads every `*.xml` in `dir`.
    pub fn load(dir: &Path) -> Result<Catalog, String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        paths.sort();
        let (docs, diags) = odata_codegen::load_documents(&paths);
        if docs.len() != paths.len() {
            return Err(format!("metadata documents failed to parse: {diags:?}"));
        }
        let mut cat = Catalog::default();
        for (src, doc) in docs {
            let file = src
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let prefix = file.trim_end_matches(".xml").replace('.', "/");
            let kind = if prefix == "sync" || prefix.starts_with("sync/") {
                Kind::Sync
            } else if prefix.starts_with("bulk/") {
                Kind::Bulk
            } else {
                Kind::Regular
            };
            for schema in &doc.schemas {
                for container in &schema.entity_containers {
                    for set in &container.entity_sets {
                        let short = set
                            .entity_type
                            .rsplit('.')
                            .next()
                            .unwrap_or(&set.entity_type);
                        let Some(et) = schema.entity_types.iter().find(|t| t.name == short) else {
                            continue;
                        };
                        let key_names: Vec<String> = et
                            .key
                            .as_ref()
                            .map(|k| k.iter().map(|r| r.name.clone()).collect())
                            .unwrap_or_default();
                        let props: Vec<Prop> = et
                            .properties
                            .iter()
                            .map(|p| Prop {
                                name: p.name.clone(),
                                edm: Edm::parse(&p.type_name),
                                nullable: p.facets.nullable.unwrap_or(true)
                                    && !key_names.contains(&p.name),
                                is_key: key_names.contains(&p.name),
                                hash: fnv1a(&p.name),
                                lname: p.name.to_ascii_lowercase(),
                            })
                            .collect();
                        let keys = key_names
                            .iter()
                            .filter_map(|k| props.iter().position(|p| &p.name == k))
                            .collect();
                        let find = |name: &str, edm: Edm| {
                            props.iter().position(|p| p.name == name && p.edm == edm)
                        };
                        let path = format!("{prefix}/{}", set.name.to_lowercase());
                        let entity = Entity {
                            hash: fnv1a(&path),
                            doc_file: file.clone(),
                            set_name: set.name.clone(),
                            type_name: format!("{}.{}", schema.namespace, et.name),
                            kind,
                            modified: find("Modified", Edm::DateTime),
                            timestamp: find("Timestamp", Edm::Int64),
                            division: find("Division", Edm::Int32),
                            nav_props: et
                                .navigation_properties
                                .iter()
                                .map(|n| n.name.clone())
                                .collect(),
                            keys,
                            props,
                            path: path.clone(),
                        };
                        cat.entities.insert(path, entity);
                    }
                }
            }
            cat.documents.insert(file, src.text.clone());
        }
        Ok(cat)
    }

    /// Looks up an entity by its path after the division, case-insensitively
    /// (`sync/CRM/Accounts`, `crm/accounts`).
    pub fn entity(&self, path: &str) -> Option<&Entity> {
        self.entities.get(&path.trim_matches('/').to_lowercase())
    }
}
