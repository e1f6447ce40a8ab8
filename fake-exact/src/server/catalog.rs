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

#[derive(Debug, Clone, PartialEq)]
pub struct Prop {
    pub name: String,
    pub edm: Edm,
    pub nullable: bool,
    pub is_key: bool,
    /// FNV-1a of the name, mixed into generated values.
    pub hash: u64,
    /// The name, lower-cased.
    pub lname: String,
    /// What generated text a String property holds (decided once from the name).
    pub text: TextKind,
}

/// The kind of generated text of a String property, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// `Code`, `…Account…Code`: right-aligned fixed-width codes (§2.5).
    Code,
    /// `…Name…`, `…Description…`: names with Unicode, quotes and ampersands.
    Name,
    Email,
    /// `Country`: padded `"NL "`.
    Country,
    Currency,
    Word,
}

impl TextKind {
    pub fn of(name: &str, lname: &str) -> TextKind {
        if name == "Code" || lname.ends_with("code") && lname.contains("account") {
            TextKind::Code
        } else if lname.contains("name") || lname.contains("description") {
            TextKind::Name
        } else if lname.contains("email") {
            TextKind::Email
        } else if lname == "country" {
            TextKind::Country
        } else if lname.contains("currency") {
            TextKind::Currency
        } else {
            TextKind::Word
        }
    }
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
    /// Per property (parallel to `props`): how its value is derived from a row of this or
    /// another entity set, if it is (see [`Catalog::link`]); `None` = generated from the hash.
    pub derived: Vec<Option<Derived>>,
}

/// A property whose value follows from another row (referential integrity of the generated
/// data, see [`Catalog::link`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Derived {
    /// The row's own key: the property is named like the key of another variant of the same
    /// entity set (e.g. `InvoiceID` in `sync/SalesInvoice/SalesInvoices`, keyed by `ID`).
    OwnKey,
    /// The key of an existing generated row of entity set `table` (lower-cased set name) in
    /// the same division; `rows` is that set's generated row count (set by the server).
    Ref {
        table: String,
        table_hash: u64,
        rows: u64,
    },
    /// A code reference (a String `XCode` without a Guid `X`): the `prop` (`Code`) of an
    /// existing generated row of entity set `table`, chosen with `hash` (of `X`).
    CodeRef {
        table: String,
        table_hash: u64,
        rows: u64,
        hash: u64,
        prop: Prop,
    },
    /// The value of `prop` of the row that the reference property `via` (an index into
    /// `props`, a [`Derived::Ref`] or [`Derived::CodeRef`]) points at, e.g. `GLAccountCode` =
    /// the GLAccount's `Code`.
    Copy { via: usize, prop: Prop },
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
                                text: TextKind::of(&p.name, &p.name.to_ascii_lowercase()),
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
                            derived: vec![None; props.len()],
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
        cat.link();
        Ok(cat)
    }

    /// Decides which properties refer to other rows ([`Entity::derived`]). The rule, from names
    /// only (Exact's `$metadata` has no associations for these):
    ///
    /// 1. a non-key Guid property named like the single key of *another variant* of the same
    ///    entity set is the row's own key ([`Derived::OwnKey`]), so `crm/Quotations` (key
    ///    `QuotationID`) and `sync/CRM/Quotations` (key `ID`, property `QuotationID`) agree;
    /// 2. a non-key Guid property `X` or `XID` refers to entity set `Xs` (also `Xes`, and
    ///    `Xies` for `X` ending in `y`) when that set exists in the catalog and every variant of
    ///    it has a single Guid key: `TransactionLines.GLAccount` → `GLAccounts`,
    ///    `.Account` → `Accounts`, `Contacts.Account` → `Accounts`, `.Item` → `Items`,
    ///    `PurchaseOrderLines.PurchaseOrderID` → `PurchaseOrders`;
    /// 3. in a set `HLines`, a non-key Guid property named like the key of the header set
    ///    `Hs` (`Hes`, `Hies`) refers to it: `SalesInvoiceLines.InvoiceID` → `SalesInvoices`,
    ///    `SalesOrderLines.OrderID` → `SalesOrders`, `TransactionLines.EntryID` → `Transactions`;
    /// 4. a String property `XCode` of an entity without a Guid `X`/`XID` is a code reference:
    ///    the `Code` of a row of `Xs` (`Xes`, `Xies`) when that set qualifies as in 2 and has a
    ///    non-key String `Code`: `TransactionLines.JournalCode` = a Journal's `Code`,
    ///    `UnitCode` = a Unit's `Code`;
    /// 5. a non-Guid property `B` + `S` of an entity with a reference `B` or `BID`, or a code
    ///    reference `BCode` (longest `B` wins), copies the target's property `S` (or, failing that, the target's property
    ///    named `B` + `S`) when it has the same Edm type and is plain (not a key, `Modified`,
    ///    `Timestamp`, `Division`, `Created` or itself derived): `GLAccountCode` = the
    ///    GLAccount's `Code`, `AccountName` = the Account's `Name`, `ItemDescription` = the
    ///    Item's `Description`, `InvoiceNumber` of a line = its invoice's `InvoiceNumber`,
    ///    `JournalDescription` = the Journal's `Description` (the row of `JournalCode`).
    ///
    /// The referenced row is generated row `mix(seed, table, division, i, property) % rows`
    /// of the target in the same division (a test mutation may delete it later, as a user
    /// could in Exact). A nullable reference is `null` as often as any nullable property
    /// (1 in 10); its copies are then `null` too. Rows of a code reference are chosen with
    /// the hash of `X` instead of the property's.
    pub fn link(&mut self) {
        let single_guid_key = |e: &Entity| {
            (e.keys.len() == 1 && e.props[e.keys[0]].edm == Edm::Guid)
                .then(|| e.props[e.keys[0]].name.clone())
        };
        // set name → the key name of each variant (None: not a single Guid key)
        let mut sets: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
        for e in self.entities.values() {
            sets.entry(e.set_name.clone())
                .or_default()
                .push(single_guid_key(e));
        }
        let targetable = |set: &str| {
            sets.get(set)
                .is_some_and(|ks| ks.iter().all(|k| k.is_some()))
        };
        let plurals = |x: &str| {
            let mut v = vec![format!("{x}s"), format!("{x}es")];
            if let Some(stem) = x.strip_suffix('y') {
                v.push(format!("{stem}ies"));
            }
            v
        };
        let mut all: BTreeMap<String, Vec<Option<Derived>>> = BTreeMap::new();
        for (path, e) in &self.entities {
            let mut derived: Vec<Option<Derived>> = vec![None; e.props.len()];
            let own_key = single_guid_key(e);
            for (pi, p) in e.props.iter().enumerate() {
                if p.is_key || p.edm != Edm::Guid || Some(pi) == e.division {
                    continue;
                }
                // 1. own key under another variant's key name
                if own_key.is_some()
                    && sets
                        .get(&e.set_name)
                        .is_some_and(|ks| ks.iter().any(|k| k.as_deref() == Some(p.name.as_str())))
                {
                    derived[pi] = Some(Derived::OwnKey);
                    continue;
                }
                // 2. `X` / `XID` → `Xs`
                let base = match p.name.strip_suffix("ID") {
                    Some(b) if !b.is_empty() => b,
                    _ => p.name.as_str(),
                };
                let mut target = plurals(base).into_iter().find(|s| targetable(s));
                // 3. `HLines.{key of Hs}` → `Hs`
                if target.is_none() {
                    if let Some(h) = e.set_name.strip_suffix("Lines") {
                        target = plurals(h).into_iter().find(|s| {
                            targetable(s)
                                && sets[s]
                                    .iter()
                                    .any(|k| k.as_deref() == Some(p.name.as_str()))
                        });
                    }
                }
                if let Some(t) = target {
                    let table = t.to_lowercase();
                    derived[pi] = Some(Derived::Ref {
                        table_hash: fnv1a(&table),
                        table,
                        rows: 0,
                    });
                }
            }
            // 4. `XCode` (String) without a Guid reference `X`/`XID` → the `Code` of a row of `Xs`
            for (pi, p) in e.props.iter().enumerate() {
                let Some(x) = p.name.strip_suffix("Code") else {
                    continue;
                };
                if x.is_empty() || p.is_key || p.edm != Edm::String {
                    continue;
                }
                let guid_ref = [x.to_string(), format!("{x}ID")]
                    .iter()
                    .any(|n| e.prop(n).is_some_and(|g| e.props[g].edm == Edm::Guid));
                if guid_ref {
                    continue;
                }
                let Some(t) = plurals(x).into_iter().find(|s| targetable(s)) else {
                    continue;
                };
                let code = self
                    .entities
                    .values()
                    .filter(|v| v.set_name == t)
                    .find_map(|v| {
                        let ci = v.prop("Code")?;
                        let c = &v.props[ci];
                        (c.edm == Edm::String && !c.is_key).then(|| c.clone())
                    });
                if let Some(prop) = code {
                    let table = t.to_lowercase();
                    derived[pi] = Some(Derived::CodeRef {
                        table_hash: fnv1a(&table),
                        table,
                        rows: 0,
                        hash: fnv1a(x),
                        prop,
                    });
                }
            }
            all.insert(path.clone(), derived);
        }
        // 4. copies of the target's plain properties
        let mut copies: Vec<(String, usize, Derived)> = Vec::new();
        for (path, e) in &self.entities {
            let derived = &all[path];
            for (qi, q) in e.props.iter().enumerate() {
                if derived[qi].is_some()
                    || q.is_key
                    || q.edm == Edm::Guid
                    || [e.modified, e.timestamp, e.division].contains(&Some(qi))
                {
                    continue;
                }
                let mut best: Option<(usize, &str, &str)> = None; // (via, base, table)
                for (pi, d) in derived.iter().enumerate() {
                    let name = &e.props[pi].name;
                    let (table, base) = match d {
                        Some(Derived::Ref { table, .. }) => match name.strip_suffix("ID") {
                            Some(b) if !b.is_empty() => (table, b),
                            _ => (table, name.as_str()),
                        },
                        Some(Derived::CodeRef { table, .. }) => {
                            (table, name.strip_suffix("Code").unwrap_or(name))
                        }
                        _ => continue,
                    };
                    if q.name.len() > base.len()
                        && q.name.starts_with(base)
                        && best.is_none_or(|(_, b, _)| base.len() > b.len())
                    {
                        best = Some((pi, base, table));
                    }
                }
                let Some((via, base, table)) = best else {
                    continue;
                };
                let suffix = &q.name[base.len()..];
                let find = |name: &str| {
                    self.entities
                        .iter()
                        .filter(|(_, t)| t.set_name.to_lowercase() == table)
                        .find_map(|(tpath, t)| {
                            let ti = t.prop(name)?;
                            let tp = &t.props[ti];
                            let plain = !tp.is_key
                                && tp.edm == q.edm
                                && tp.name != "Created"
                                && ![t.modified, t.timestamp, t.division].contains(&Some(ti))
                                && all[tpath][ti].is_none();
                            plain.then(|| tp.clone())
                        })
                };
                if let Some(prop) = find(suffix).or_else(|| find(&q.name)) {
                    copies.push((path.clone(), qi, Derived::Copy { via, prop }));
                }
            }
        }
        for (path, qi, d) in copies {
            if let Some(v) = all.get_mut(&path) {
                v[qi] = Some(d);
            }
        }
        for (path, derived) in all {
            if let Some(e) = self.entities.get_mut(&path) {
                e.derived = derived;
            }
        }
    }

    /// Fills in the row count of every [`Derived::Ref`] target (`rows` of an entity, as the
    /// server configures it; the first variant of the target set decides).
    pub fn set_ref_rows(&mut self, rows: impl Fn(&Entity) -> u64) {
        let mut by_table: BTreeMap<String, u64> = BTreeMap::new();
        for e in self.entities.values() {
            by_table
                .entry(e.set_name.to_lowercase())
                .or_insert_with(|| rows(e));
        }
        for e in self.entities.values_mut() {
            for d in e.derived.iter_mut().flatten() {
                if let Derived::Ref { table, rows, .. } | Derived::CodeRef { table, rows, .. } = d {
                    *rows = by_table.get(table.as_str()).copied().unwrap_or(0);
                }
            }
        }
    }

    /// Looks up an entity by its path after the division, case-insensitively
    /// (`sync/CRM/Accounts`, `crm/accounts`).
    pub fn entity(&self, path: &str) -> Option<&Entity> {
        self.entities.get(&path.trim_matches('/').to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalog {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../metadata-cache/exact");
        Catalog::load(Path::new(dir)).unwrap()
    }

    fn derived<'a>(c: &'a Catalog, path: &str, prop: &str) -> Option<&'a Derived> {
        let e = c.entity(path).unwrap();
        e.derived[e.prop(prop).unwrap()].as_ref()
    }

    fn target(c: &Catalog, path: &str, prop: &str) -> Option<String> {
        match derived(c, path, prop)? {
            Derived::Ref { table, .. } => Some(table.clone()),
            _ => None,
        }
    }

    #[test]
    fn references_follow_the_naming_rule() {
        let c = cat();
        for (path, prop, table) in [
            (
                "financialtransaction/TransactionLines",
                "GLAccount",
                "glaccounts",
            ),
            (
                "financialtransaction/TransactionLines",
                "Account",
                "accounts",
            ),
            (
                "financialtransaction/TransactionLines",
                "EntryID",
                "transactions",
            ),
            ("financialtransaction/TransactionLines", "Item", "items"),
            ("bulk/Financial/TransactionLines", "GLAccount", "glaccounts"),
            ("sync/Financial/TransactionLines", "Account", "accounts"),
            (
                "salesinvoice/SalesInvoiceLines",
                "InvoiceID",
                "salesinvoices",
            ),
            ("crm/Contacts", "Account", "accounts"),
            ("salesorder/SalesOrderLines", "OrderID", "salesorders"),
            (
                "purchaseorder/PurchaseOrderLines",
                "PurchaseOrderID",
                "purchaseorders",
            ),
        ] {
            assert_eq!(
                target(&c, path, prop).as_deref(),
                Some(table),
                "{path}.{prop}"
            );
        }
        // not references: Creator has no `Creators` set; keys are keys
        assert_eq!(derived(&c, "crm/Accounts", "Creator"), None);
        assert_eq!(derived(&c, "crm/Accounts", "ID"), None);
        // the own key under another variant's key name
        assert_eq!(
            derived(&c, "sync/CRM/Quotations", "QuotationID"),
            Some(&Derived::OwnKey)
        );
        // code references
        match derived(&c, "financialtransaction/TransactionLines", "JournalCode") {
            Some(Derived::CodeRef { table, prop, .. }) => {
                assert_eq!((table.as_str(), prop.name.as_str()), ("journals", "Code"))
            }
            other => panic!("JournalCode: {other:?}"),
        }
        // copies of the target's plain properties
        let e = c.entity("financialtransaction/TransactionLines").unwrap();
        for (prop, via, from) in [
            ("GLAccountCode", "GLAccount", "Code"),
            ("GLAccountDescription", "GLAccount", "Description"),
            ("AccountCode", "Account", "Code"),
            ("AccountName", "Account", "Name"),
            ("ItemDescription", "Item", "Description"),
            ("JournalDescription", "JournalCode", "Description"),
        ] {
            match derived(&c, &e.path, prop) {
                Some(Derived::Copy { via: v, prop: p }) => {
                    assert_eq!(e.props[*v].name, via, "{prop}");
                    assert_eq!(p.name, from, "{prop}");
                }
                other => panic!("{prop}: {other:?}"),
            }
        }
    }
}
