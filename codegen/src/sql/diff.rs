//! What changed between two generations: of the model (entities and properties, for people and
//! for `odatagen diff`) and of the tables (what a migration has to do).
//!
//! Classification: an added entity or property is *additive*; a removed one, a changed type
//! (Edm type, precision or scale), a nullability narrowing (nullable → not nullable) or a changed
//! key is *breaking*. For tables, a removed table or column is reported separately: the migration
//! keeps it unless asked to drop it.

use super::schema::{ColumnDef, IndexDef, TableDef};
use crate::model::{Model, PropertyDef, StructDef, TypeKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// How serious a change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    None,
    Additive,
    Breaking,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "no change",
            Severity::Additive => "additive",
            Severity::Breaking => "breaking",
        }
    }
}

/// One change of the model, per entity (selection name of the entity set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChange {
    EntityAdded {
        entity: String,
        entity_type: String,
    },
    EntityRemoved {
        entity: String,
        entity_type: String,
    },
    PropertyAdded {
        entity: String,
        property: String,
        edm_type: String,
    },
    PropertyRemoved {
        entity: String,
        property: String,
        edm_type: String,
    },
    PropertyRetyped {
        entity: String,
        property: String,
        old: String,
        new: String,
        /// Breaking unless only the nullability widened.
        breaking: bool,
    },
    KeyChanged {
        entity: String,
        old: Vec<String>,
        new: Vec<String>,
    },
    /// Members of an enum type added or removed (the generated enums keep unknown values, so
    /// neither breaks a sync).
    EnumMembersChanged {
        enum_type: String,
        added: Vec<String>,
        removed: Vec<String>,
    },
}

impl ModelChange {
    pub fn severity(&self) -> Severity {
        match self {
            ModelChange::EntityAdded { .. }
            | ModelChange::PropertyAdded { .. }
            | ModelChange::EnumMembersChanged { .. } => Severity::Additive,
            ModelChange::PropertyRetyped { breaking, .. } => {
                if *breaking {
                    Severity::Breaking
                } else {
                    Severity::Additive
                }
            }
            _ => Severity::Breaking,
        }
    }
}

impl fmt::Display for ModelChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelChange::EntityAdded {
                entity,
                entity_type,
            } => write!(f, "+ entity {entity} ({entity_type})"),
            ModelChange::EntityRemoved {
                entity,
                entity_type,
            } => write!(f, "- entity {entity} ({entity_type})"),
            ModelChange::PropertyAdded {
                entity,
                property,
                edm_type,
            } => write!(f, "+ {entity}.{property}: {edm_type}"),
            ModelChange::PropertyRemoved {
                entity,
                property,
                edm_type,
            } => write!(f, "- {entity}.{property}: {edm_type}"),
            ModelChange::PropertyRetyped {
                entity,
                property,
                old,
                new,
                ..
            } => write!(f, "~ {entity}.{property}: {old} → {new}"),
            ModelChange::KeyChanged { entity, old, new } => write!(
                f,
                "~ {entity} key: ({}) → ({})",
                old.join(", "),
                new.join(", ")
            ),
            ModelChange::EnumMembersChanged {
                enum_type,
                added,
                removed,
            } => {
                write!(f, "~ enum {enum_type}:")?;
                if !added.is_empty() {
                    write!(f, " +{}", added.join(" +"))?;
                }
                if !removed.is_empty() {
                    write!(f, " -{}", removed.join(" -"))?;
                }
                Ok(())
            }
        }
    }
}

/// Every change between two models, in a stable order (by entity, then kind, then property).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelDiff {
    pub changes: Vec<ModelChange>,
}

impl ModelDiff {
    pub fn severity(&self) -> Severity {
        self.changes
            .iter()
            .map(ModelChange::severity)
            .max()
            .unwrap_or(Severity::None)
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Human-readable report: a summary line, then one line per change marked with its severity.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let count = |sev| self.changes.iter().filter(|c| c.severity() == sev).count();
        let _ = writeln!(
            s,
            "{}: {} changes ({} additive, {} breaking)",
            self.severity().as_str(),
            self.changes.len(),
            count(Severity::Additive),
            count(Severity::Breaking)
        );
        for c in &self.changes {
            let mark = if c.severity() == Severity::Breaking {
                "  BREAKING "
            } else {
                "           "
            };
            let _ = writeln!(s, "{mark}{c}");
        }
        s
    }
}

fn entity_struct<'m>(m: &'m Model, set_type: &str) -> Option<&'m StructDef> {
    match &m.types.get(set_type)?.kind {
        TypeKind::Entity(s) => Some(s),
        _ => None,
    }
}

fn type_label(p: &PropertyDef) -> String {
    let mut s = p.edm_type.clone();
    match (p.facets.precision, p.facets.scale) {
        (Some(pr), Some(sc)) => {
            let _ = write!(s, "({pr},{sc})");
        }
        (Some(pr), None) => {
            let _ = write!(s, "({pr})");
        }
        _ => {}
    }
    if !p.nullable {
        s.push_str(" not null");
    }
    s
}

/// Compares two models entity set by entity set (by selection name) and property by property
/// (by wire name).
pub fn diff_models(old: &Model, new: &Model) -> ModelDiff {
    let mut changes = Vec::new();
    let names: std::collections::BTreeSet<&String> = old
        .entity_sets
        .keys()
        .chain(new.entity_sets.keys())
        .collect();
    for name in names {
        let o = old.entity_sets.get(name);
        let n = new.entity_sets.get(name);
        match (o, n) {
            (None, Some(n)) => changes.push(ModelChange::EntityAdded {
                entity: name.clone(),
                entity_type: n.entity_type.clone(),
            }),
            (Some(o), None) => changes.push(ModelChange::EntityRemoved {
                entity: name.clone(),
                entity_type: o.entity_type.clone(),
            }),
            (Some(o), Some(n)) => {
                let (Some(os), Some(ns)) = (
                    entity_struct(old, &o.entity_type),
                    entity_struct(new, &n.entity_type),
                ) else {
                    continue;
                };
                diff_struct(name, os, ns, &mut changes);
            }
            (None, None) => {}
        }
    }
    // Complex types and enums both generations have (properties of complex types are JSON
    // columns, but a watcher wants to know).
    for (q, o) in &old.types {
        let Some(n) = new.types.get(q) else { continue };
        match (&o.kind, &n.kind) {
            (TypeKind::Complex(os), TypeKind::Complex(ns)) => {
                diff_struct(&format!("complex {q}"), os, ns, &mut changes);
            }
            (TypeKind::Enum(oe), TypeKind::Enum(ne)) => {
                let om: std::collections::BTreeSet<&str> =
                    oe.members.iter().map(|m| m.wire_name.as_str()).collect();
                let nm: std::collections::BTreeSet<&str> =
                    ne.members.iter().map(|m| m.wire_name.as_str()).collect();
                let added: Vec<String> = nm.difference(&om).map(|s| s.to_string()).collect();
                let removed: Vec<String> = om.difference(&nm).map(|s| s.to_string()).collect();
                if !added.is_empty() || !removed.is_empty() {
                    changes.push(ModelChange::EnumMembersChanged {
                        enum_type: q.clone(),
                        added,
                        removed,
                    });
                }
            }
            _ => {}
        }
    }
    ModelDiff { changes }
}

fn diff_struct(entity: &str, o: &StructDef, n: &StructDef, out: &mut Vec<ModelChange>) {
    let op: BTreeMap<&str, &PropertyDef> = o
        .properties
        .iter()
        .map(|p| (p.wire_name.as_str(), p))
        .collect();
    let np: BTreeMap<&str, &PropertyDef> = n
        .properties
        .iter()
        .map(|p| (p.wire_name.as_str(), p))
        .collect();
    if !same_set(&o.key, &n.key) {
        out.push(ModelChange::KeyChanged {
            entity: entity.to_string(),
            old: o.key.clone(),
            new: n.key.clone(),
        });
    }
    for (w, p) in &np {
        match op.get(w) {
            None => out.push(ModelChange::PropertyAdded {
                entity: entity.to_string(),
                property: w.to_string(),
                edm_type: type_label(p),
            }),
            Some(q) => {
                let facets_changed =
                    q.facets.precision != p.facets.precision || q.facets.scale != p.facets.scale;
                // Precision and scale decide a decimal's SQL type; elsewhere (the fractional
                // seconds of a DateTime) they are reported, not breaking.
                let type_changed =
                    q.edm_type != p.edm_type || (facets_changed && p.edm_type == "Edm.Decimal");
                if facets_changed || type_changed || q.nullable != p.nullable {
                    let narrowed = q.nullable && !p.nullable;
                    out.push(ModelChange::PropertyRetyped {
                        entity: entity.to_string(),
                        property: w.to_string(),
                        old: type_label(q),
                        new: type_label(p),
                        breaking: type_changed || narrowed,
                    });
                }
            }
        }
    }
    for (w, q) in &op {
        if !np.contains_key(w) {
            out.push(ModelChange::PropertyRemoved {
                entity: entity.to_string(),
                property: w.to_string(),
                edm_type: type_label(q),
            });
        }
    }
}

/// The same names, in any order (the order of a key's columns is not a change of the key).
pub fn same_set(a: &[String], b: &[String]) -> bool {
    let mut a: Vec<&String> = a.iter().collect();
    let mut b: Vec<&String> = b.iter().collect();
    a.sort();
    b.sort();
    a == b
}

/// One change of the tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableChange {
    NewTable(TableDef),
    RemovedTable(TableDef),
    NewColumn {
        table: String,
        column: ColumnDef,
    },
    RemovedColumn {
        table: String,
        column: ColumnDef,
    },
    /// The SQL type on either backend, or the nullability, changed.
    ChangedColumn {
        table: String,
        old: ColumnDef,
        new: ColumnDef,
    },
    ChangedKey {
        table: String,
        old: Vec<String>,
        new: Vec<String>,
    },
    NewIndex {
        table: String,
        index: IndexDef,
    },
    RemovedIndex {
        table: String,
        index: IndexDef,
    },
}

impl TableChange {
    pub fn table(&self) -> &str {
        match self {
            TableChange::NewTable(t) | TableChange::RemovedTable(t) => &t.name,
            TableChange::NewColumn { table, .. }
            | TableChange::RemovedColumn { table, .. }
            | TableChange::ChangedColumn { table, .. }
            | TableChange::ChangedKey { table, .. }
            | TableChange::NewIndex { table, .. }
            | TableChange::RemovedIndex { table, .. } => table,
        }
    }

    /// A removed table, column or index: kept unless dropping was asked for.
    pub fn is_removal(&self) -> bool {
        matches!(
            self,
            TableChange::RemovedTable(_)
                | TableChange::RemovedColumn { .. }
                | TableChange::RemovedIndex { .. }
        )
    }

    pub fn severity(&self) -> Severity {
        match self {
            TableChange::NewTable(_)
            | TableChange::NewColumn { .. }
            | TableChange::NewIndex { .. } => Severity::Additive,
            TableChange::ChangedColumn { old, new, .. } => {
                if old.sqlite_type == new.sqlite_type
                    && old.postgres_type == new.postgres_type
                    && (new.nullable || !old.nullable)
                {
                    Severity::Additive
                } else {
                    Severity::Breaking
                }
            }
            _ => Severity::Breaking,
        }
    }
}

impl fmt::Display for TableChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let col = |c: &ColumnDef| {
            format!(
                "{} {}/{}{}",
                c.name,
                c.sqlite_type,
                c.postgres_type,
                if c.nullable { "" } else { " not null" }
            )
        };
        match self {
            TableChange::NewTable(t) => {
                write!(f, "new table {} ({} columns)", t.name, t.columns.len())
            }
            TableChange::RemovedTable(t) => write!(f, "removed table {}", t.name),
            TableChange::NewColumn { table, column } => {
                write!(f, "new column {table}.{}", col(column))
            }
            TableChange::RemovedColumn { table, column } => {
                write!(f, "removed column {table}.{}", column.name)
            }
            TableChange::ChangedColumn { table, old, new } => {
                write!(f, "changed column {table}.{} → {}", col(old), col(new))
            }
            TableChange::ChangedKey { table, old, new } => write!(
                f,
                "changed key of {table}: ({}) → ({})",
                old.join(", "),
                new.join(", ")
            ),
            TableChange::NewIndex { table, index } => {
                write!(f, "new index {} on {table}", index.name)
            }
            TableChange::RemovedIndex { table, index } => {
                write!(f, "removed index {} on {table}", index.name)
            }
        }
    }
}

/// Severity of a list of table changes (removals count as breaking).
pub fn severity(changes: &[TableChange]) -> Severity {
    changes
        .iter()
        .map(TableChange::severity)
        .max()
        .unwrap_or(Severity::None)
}

/// Compares two table lists by table name, then column by column name. Order: tables by name;
/// within a table: key, changed, new and removed columns, then indexes.
pub fn diff_tables(old: &[TableDef], new: &[TableDef]) -> Vec<TableChange> {
    let om: BTreeMap<&str, &TableDef> = old.iter().map(|t| (t.name.as_str(), t)).collect();
    let nm: BTreeMap<&str, &TableDef> = new.iter().map(|t| (t.name.as_str(), t)).collect();
    let names: std::collections::BTreeSet<&str> = om.keys().chain(nm.keys()).copied().collect();
    let mut out = Vec::new();
    for name in names {
        match (om.get(name), nm.get(name)) {
            (None, Some(n)) => out.push(TableChange::NewTable((*n).clone())),
            (Some(o), None) => out.push(TableChange::RemovedTable((*o).clone())),
            (Some(o), Some(n)) => diff_table(o, n, &mut out),
            (None, None) => {}
        }
    }
    out
}

fn diff_table(o: &TableDef, n: &TableDef, out: &mut Vec<TableChange>) {
    let table = n.name.clone();
    if !same_set(&o.primary_key, &n.primary_key) {
        out.push(TableChange::ChangedKey {
            table: table.clone(),
            old: o.primary_key.clone(),
            new: n.primary_key.clone(),
        });
    }
    for c in &n.columns {
        if let Some(p) = o.columns.iter().find(|p| p.name == c.name) {
            if p.sqlite_type != c.sqlite_type
                || p.postgres_type != c.postgres_type
                || p.nullable != c.nullable
            {
                out.push(TableChange::ChangedColumn {
                    table: table.clone(),
                    old: p.clone(),
                    new: c.clone(),
                });
            }
        }
    }
    for c in &n.columns {
        if !o.columns.iter().any(|p| p.name == c.name) {
            out.push(TableChange::NewColumn {
                table: table.clone(),
                column: c.clone(),
            });
        }
    }
    for p in &o.columns {
        if !n.columns.iter().any(|c| c.name == p.name) {
            out.push(TableChange::RemovedColumn {
                table: table.clone(),
                column: p.clone(),
            });
        }
    }
    for i in &n.indexes {
        if !o.indexes.contains(i) {
            out.push(TableChange::NewIndex {
                table: table.clone(),
                index: i.clone(),
            });
        }
    }
    for i in &o.indexes {
        if !n.indexes.contains(i) {
            out.push(TableChange::RemovedIndex {
                table: table.clone(),
                index: i.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::schema::{ColumnKind, SqlTypes};

    fn col(name: &str, kind: ColumnKind, nullable: bool) -> ColumnDef {
        ColumnDef {
            wire_name: Some(name.into()),
            ..ColumnDef::system(&SqlTypes::default(), name, kind, nullable, "")
        }
    }

    fn table(name: &str, cols: Vec<ColumnDef>, pk: &[&str]) -> TableDef {
        TableDef {
            name: name.into(),
            entity: name.into(),
            entity_set: name.into(),
            entity_type: name.into(),
            rust_type: name.into(),
            division: false,
            columns: cols,
            primary_key: pk.iter().map(|s| s.to_string()).collect(),
            indexes: vec![],
        }
    }

    #[test]
    fn table_changes_are_classified() {
        let a = table(
            "a",
            vec![
                col("id", ColumnKind::Int32, false),
                col("x", ColumnKind::Text, true),
                col("y", ColumnKind::Int32, true),
            ],
            &["id"],
        );
        let mut a2 = a.clone();
        a2.columns.push(col("z", ColumnKind::Text, true));
        let b = table("b", vec![col("id", ColumnKind::Text, false)], &["id"]);
        let d = diff_tables(std::slice::from_ref(&a), &[a2.clone(), b]);
        assert_eq!(d.len(), 2);
        assert_eq!(severity(&d), Severity::Additive);
        let one = std::slice::from_ref(&a);
        assert_eq!(diff_tables(one, one), vec![]);

        let mut a3 = a.clone();
        a3.columns[2] = col("y", ColumnKind::Int64, true);
        let d = diff_tables(std::slice::from_ref(&a), &[a3]);
        assert_eq!(severity(&d), Severity::Breaking);
        assert!(matches!(d[0], TableChange::ChangedColumn { .. }));

        let mut a4 = a.clone();
        a4.columns.remove(1);
        a4.primary_key = vec!["id".into(), "y".into()];
        let d = diff_tables(&[a], &[a4]);
        assert!(matches!(d[0], TableChange::ChangedKey { .. }));
        assert!(d.iter().any(TableChange::is_removal));
        assert_eq!(severity(&d), Severity::Breaking);
    }
}
