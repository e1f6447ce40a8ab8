//! One migration history for the whole database (the runtime's tables and every service's) per
//! backend, under `<root>/{sqlite,postgres}/`, written so that **both** sqlx and diesel apply the
//! folder unchanged. Every migration is written twice from one SQL text:
//!
//! ```text
//! sqlite/0002_create_northwind.up.sql     sqlx (`<VERSION>_<DESC>.up.sql`; sqlx skips directories)
//! sqlite/0002_create_northwind.down.sql
//! sqlite/0002_create_northwind/up.sql     diesel (`<version>_<name>/up.sql`; diesel skips files)
//! sqlite/0002_create_northwind/down.sql
//! ```
//!
//! Next to them: `<root>/state/<service>.json` (the model and tables of the service's last
//! generation, from which the next migration is diffed) and `<root>/history.json` (every
//! migration written, with the SHA-256 of each of its files, so an edited or missing migration
//! is an error here too — diesel keeps no checksums). Versions are a 4-digit sequence; no file
//! holds a timestamp, so the same inputs always give the same bytes.
//!
//! Policy: a new entity is a `CREATE TABLE` (+ indexes), a new property an `ADD COLUMN`
//! (nullable). A removed property, entity or index is kept and reported (dropped only with
//! `drop_removed`). A type, nullability or key change is breaking: refused unless
//! `allow_breaking` (PostgreSQL: `ALTER COLUMN … TYPE … USING`; SQLite: the table is rebuilt).

use super::ddl;
use super::diff::{diff_models, diff_tables, ModelDiff, Severity, TableChange};
use super::schema::{runtime_tables, Backend, TableDef};
use crate::model::Model;
use crate::write::write_if_changed;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The history of written migrations.
pub const HISTORY_FILE: &str = "history.json";
/// Folder of the per-service state files.
pub const STATE_DIR: &str = "state";
/// State name of the runtime's own tables.
pub const RUNTIME_STATE: &str = "_runtime";

/// The last generation of one service: what its next migration is diffed against. `tables` is
/// what the database has after the last migration (removed columns that were kept stay in).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceState {
    /// What wrote the file and from which metadata (JSON has no comments).
    #[serde(default, rename = "@generated")]
    pub generated: String,
    pub model: Option<Model>,
    pub tables: Vec<TableDef>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct History {
    /// What wrote the file (JSON has no comments).
    #[serde(default, rename = "@generated")]
    pub generated: String,
    pub migrations: Vec<HistoryEntry>,
}

const HISTORY_HEADER: &str = "by odatagen (odata-codegen): every migration written, with the SHA-256 of each file; do not edit";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryEntry {
    pub version: u32,
    /// `<VERSION>_<name>` without the version: `create_northwind`.
    pub name: String,
    /// The service (or [`RUNTIME_STATE`]).
    pub service: String,
    /// SHA-256 (hex) of the service's `tables` after this migration.
    pub tables_sha256: String,
    /// Every file of the migration (relative to the root) and its SHA-256 (hex).
    pub files: BTreeMap<String, String>,
}

/// What the next migration may do.
#[derive(Debug, Clone, Copy, Default)]
pub struct MigrateOptions {
    /// Write type, nullability and key changes (otherwise they are an error).
    pub allow_breaking: bool,
    /// Drop removed columns, tables and indexes (otherwise they are kept and reported).
    pub drop_removed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("the migrations in {root} disagree with {HISTORY_FILE}/state: {message}")]
    Inconsistent { root: PathBuf, message: String },
    #[error("{report}")]
    Breaking { service: String, report: String },
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> MigrateError {
    MigrateError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Hash of what the database has: table, column and index names, column types, nullability and
/// keys (not the wire names or Edm types, which may change without a migration).
fn tables_hash(tables: &[TableDef]) -> String {
    let mut s = String::new();
    let mut sorted: Vec<&TableDef> = tables.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for t in sorted {
        let _ = writeln!(s, "table {:?} key {:?}", t.name, t.primary_key);
        let mut cols: Vec<_> = t.columns.iter().collect();
        cols.sort_by(|a, b| a.name.cmp(&b.name));
        for c in cols {
            let _ = writeln!(
                s,
                "  {:?} {:?} {:?} {}",
                c.name, c.sqlite_type, c.postgres_type, c.nullable
            );
        }
        let mut idx: Vec<_> = t.indexes.iter().collect();
        idx.sort_by(|a, b| a.name.cmp(&b.name));
        for i in idx {
            let _ = writeln!(s, "  index {:?} {:?}", i.name, i.columns);
        }
    }
    sha256_hex(s.as_bytes())
}

/// The plan of one service's next migration.
#[derive(Debug, Clone)]
pub struct Plan {
    pub service: String,
    /// Model changes (when both generations have a model).
    pub model_diff: Option<ModelDiff>,
    /// Table changes the migration makes.
    pub changes: Vec<TableChange>,
    /// Removals that are kept (not dropped): reported only.
    pub kept: Vec<TableChange>,
    /// Breaking changes refused (without `allow_breaking`).
    pub refused: Vec<TableChange>,
    /// The tables the database has after the migration (the next state).
    pub tables: Vec<TableDef>,
}

impl Plan {
    /// Human-readable: the table changes and refused changes (kept removals are in
    /// [`Outcome::summary`]).
    pub fn report(&self) -> String {
        let mut s = String::new();
        for c in &self.changes {
            let _ = writeln!(s, "  {c}");
        }
        for c in &self.refused {
            let _ = writeln!(s, "  BREAKING {c}");
        }
        s
    }
}

/// Plans the migration from `old` (the stored tables; empty for a new service) to `new`.
pub fn plan(service: &str, old: &[TableDef], new: &[TableDef], opts: MigrateOptions) -> Plan {
    let raw = diff_tables(old, new);
    let mut target: Vec<TableDef> = new.to_vec();
    // A key with the same columns in another order is the key the database has.
    for t in target.iter_mut() {
        if let Some(o) = old.iter().find(|o| o.name == t.name) {
            if o.primary_key != t.primary_key
                && super::diff::same_set(&o.primary_key, &t.primary_key)
            {
                t.primary_key = o.primary_key.clone();
            }
        }
    }
    let mut kept = Vec::new();
    let mut refused = Vec::new();
    if !opts.drop_removed {
        for c in &raw {
            match c {
                TableChange::RemovedTable(t) => {
                    target.push(t.clone());
                    kept.push(c.clone());
                }
                TableChange::RemovedColumn { table, column } => {
                    if let Some(t) = target.iter_mut().find(|t| &t.name == table) {
                        t.columns.push(column.clone());
                    }
                    kept.push(c.clone());
                }
                TableChange::RemovedIndex { table, index } => {
                    if let Some(t) = target.iter_mut().find(|t| &t.name == table) {
                        t.indexes.push(index.clone());
                    }
                    kept.push(c.clone());
                }
                _ => {}
            }
        }
        target.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let changes = diff_tables(old, &target);
    if !opts.allow_breaking {
        for c in &changes {
            if c.severity() == Severity::Breaking && !c.is_removal() {
                refused.push(c.clone());
            }
        }
    }
    Plan {
        service: service.to_string(),
        model_diff: None,
        changes,
        kept,
        refused,
        tables: target,
    }
}

/// The up and down SQL statements of a plan on one backend.
pub fn statements(old: &[TableDef], plan: &Plan, backend: Backend) -> (Vec<String>, Vec<String>) {
    let mut up: Vec<String> = Vec::new();
    // Down statements in the order they must run (the reverse of up).
    let mut down_rev: Vec<Vec<String>> = Vec::new();
    let mut push = |u: Vec<String>, d: Vec<String>, up: &mut Vec<String>| {
        up.extend(u);
        down_rev.push(d);
    };
    let old_t = |name: &str| old.iter().find(|t| t.name == name);
    let new_t = |name: &str| plan.tables.iter().find(|t| t.name == name);
    // SQLite rebuilds a table whose key or column types/nullability change; the rebuild covers
    // every other change of that table.
    let rebuilt: Vec<&str> = if backend == Backend::Sqlite {
        let mut v: Vec<&str> = plan
            .changes
            .iter()
            .filter(|c| match c {
                TableChange::ChangedKey { .. } => true,
                TableChange::ChangedColumn { old, new, .. } => {
                    old.sqlite_type != new.sqlite_type || old.nullable != new.nullable
                }
                _ => false,
            })
            .map(|c| c.table())
            .collect();
        v.dedup();
        v
    } else {
        Vec::new()
    };
    for name in &rebuilt {
        if let (Some(o), Some(n)) = (old_t(name), new_t(name)) {
            let (u, d) = ddl::sqlite_rebuild(o, n);
            push(u, d, &mut up);
        }
    }
    let skip = |c: &TableChange| rebuilt.contains(&c.table());
    // 1. Removed indexes (before columns they cover are dropped).
    for c in plan.changes.iter().filter(|c| !skip(c)) {
        if let TableChange::RemovedIndex { table, index } = c {
            push(
                vec![ddl::drop_index(index, backend)],
                vec![ddl::create_index(table, index, backend)],
                &mut up,
            );
        }
    }
    // 2. Changed columns and keys (PostgreSQL in place).
    if backend == Backend::Postgres {
        for c in &plan.changes {
            if let TableChange::ChangedColumn { table, old, new } = c {
                let (u, d) = ddl::pg_alter_column(table, old, new);
                push(u, d, &mut up);
            }
        }
    }
    // 3. New and removed columns.
    for c in plan.changes.iter().filter(|c| !skip(c)) {
        match c {
            TableChange::NewColumn { table, column } => {
                let mut u = vec![ddl::add_column(table, column, backend)];
                if !column.nullable && backend == Backend::Postgres {
                    let mut nullable = column.clone();
                    nullable.nullable = true;
                    u.extend(ddl::pg_alter_column(table, &nullable, column).0);
                }
                push(
                    u,
                    vec![ddl::drop_column(table, &column.name, backend)],
                    &mut up,
                );
            }
            TableChange::RemovedColumn { table, column } => push(
                vec![ddl::drop_column(table, &column.name, backend)],
                vec![ddl::add_column(table, column, backend)],
                &mut up,
            ),
            _ => {}
        }
    }
    if backend == Backend::Postgres {
        for c in &plan.changes {
            if let TableChange::ChangedKey { table, .. } = c {
                if let (Some(o), Some(n)) = (old_t(table), new_t(table)) {
                    let (u, d) = ddl::pg_change_key(o, n);
                    push(u, d, &mut up);
                }
            }
        }
    }
    // 4. New indexes, new tables, removed tables.
    for c in plan.changes.iter().filter(|c| !skip(c)) {
        match c {
            TableChange::NewIndex { table, index } => push(
                vec![ddl::create_index(table, index, backend)],
                vec![ddl::drop_index(index, backend)],
                &mut up,
            ),
            TableChange::NewTable(t) => {
                let (u, d) = ddl::create_table_with_indexes(t, backend);
                push(u, d, &mut up);
            }
            TableChange::RemovedTable(t) => {
                let (d, u) = ddl::create_table_with_indexes(t, backend);
                push(u, d, &mut up);
            }
            _ => {}
        }
    }
    let down: Vec<String> = down_rev.into_iter().rev().flatten().collect();
    (up, down)
}

/// The migration root (`generated/migrations`).
#[derive(Debug, Clone)]
pub struct Migrations {
    pub root: PathBuf,
}

/// What one call wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub version: u32,
    pub name: String,
    pub service: String,
    /// Files written (relative to the root), migrations first.
    pub files: Vec<String>,
    /// The report of the changes.
    pub report: String,
}

/// The result of bringing one service up to date.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Migrations written (the runtime's first, then the service's), empty when up to date.
    pub written: Vec<Written>,
    /// Removals kept (reported, nothing written for them).
    pub kept: Vec<TableChange>,
    /// Model changes since the stored generation.
    pub model_diff: Option<ModelDiff>,
    /// The stored state was rewritten without a migration (the model changed in ways the tables
    /// do not show: documentation, Edm facets, names of types).
    pub state_updated: bool,
}

impl Outcome {
    /// A one-line summary per migration written, or "up to date".
    pub fn summary(&self, service: &str) -> String {
        let mut s = String::new();
        for w in &self.written {
            let _ = writeln!(
                s,
                "{service}: wrote migration {:04}_{} ({} files)\n{}",
                w.version,
                w.name,
                w.files.len(),
                w.report.trim_end()
            );
        }
        if self.written.is_empty() {
            if self.state_updated {
                let _ = writeln!(
                    s,
                    "{service}: migrations are up to date; no migration written (the stored model in state/{service}.json was updated)"
                );
            } else {
                let _ = writeln!(s, "{service}: migrations are up to date; nothing written");
            }
        }
        for k in &self.kept {
            let _ = writeln!(
                s,
                "{service}: {k} (kept in the database; drop with --drop-removed)"
            );
        }
        s
    }
}

/// Where `service`'s state lives.
pub fn state_path(root: &Path, service: &str) -> PathBuf {
    root.join(STATE_DIR).join(format!("{service}.json"))
}

/// Reads a service's stored state (`None` when the service has none yet).
///
/// The stored model is read leniently: a model written by an older generator whose model format
/// has changed since is dropped (`model: None`: no model diff), never an error; the tables must
/// parse.
pub fn read_state(root: &Path, service: &str) -> Result<Option<ServiceState>, MigrateError> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default, rename = "@generated")]
        generated: String,
        #[serde(default)]
        model: Option<serde_json::Value>,
        tables: Vec<serde_json::Value>,
    }
    let p = state_path(root, service);
    match std::fs::read_to_string(&p) {
        Ok(text) => {
            let raw: Raw = serde_json::from_str(&text)
                .map_err(|e| io_err(&p, format!("not a state file: {e}")))?;
            let tables = raw
                .tables
                .into_iter()
                .map(table_from_json)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| io_err(&p, format!("not a state file: {e}")))?;
            Ok(Some(ServiceState {
                generated: raw.generated,
                model: raw.model.and_then(|m| serde_json::from_value(m).ok()),
                tables,
            }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&p, e)),
    }
}

/// A stored table; when [`TableDef`] gained fields since it was written, the missing fields take
/// the values of an empty table/column (what a migration needs — names, types, nullability,
/// keys, indexes — was there from the start).
fn table_from_json(v: serde_json::Value) -> Result<TableDef, serde_json::Error> {
    if let Ok(t) = serde_json::from_value::<TableDef>(v.clone()) {
        return Ok(t);
    }
    fn merge(template: &serde_json::Value, stored: &serde_json::Value) -> serde_json::Value {
        match (template, stored) {
            (serde_json::Value::Object(t), serde_json::Value::Object(s)) => {
                let mut out = t.clone();
                for (k, v) in s {
                    out.insert(k.clone(), v.clone());
                }
                serde_json::Value::Object(out)
            }
            (_, s) => s.clone(),
        }
    }
    let column = super::schema::ColumnDef {
        name: String::new(),
        wire_name: None,
        kind: super::schema::ColumnKind::Text,
        nullable: true,
        edm_type: String::new(),
        sqlite_type: String::new(),
        postgres_type: String::new(),
    };
    let table = TableDef {
        name: String::new(),
        entity: String::new(),
        entity_set: String::new(),
        entity_type: String::new(),
        rust_type: String::new(),
        division: false,
        columns: Vec::new(),
        primary_key: Vec::new(),
        indexes: Vec::new(),
    };
    let ct = serde_json::to_value(&column)?;
    let mut merged = merge(&serde_json::to_value(&table)?, &v);
    if let Some(cols) = merged.get_mut("columns").and_then(|c| c.as_array_mut()) {
        for c in cols.iter_mut() {
            *c = merge(&ct, c);
        }
    }
    serde_json::from_value(merged)
}

/// The model as stored: source paths reduced to file names, so the state does not depend on
/// where the generator was run from.
fn stored_model(model: &Model) -> Model {
    let mut m = model.clone();
    m.sources = m
        .sources
        .iter()
        .map(|s| {
            Path::new(s)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| s.clone())
        })
        .collect();
    m
}

impl Migrations {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Migrations { root: root.into() }
    }

    fn inconsistent(&self, message: impl Into<String>) -> MigrateError {
        MigrateError::Inconsistent {
            root: self.root.clone(),
            message: message.into(),
        }
    }

    /// Reads `history.json` and checks it against the files: every recorded file exists with its
    /// recorded checksum, every migration file in the backend folders is recorded, and every
    /// service with migrations has a state file whose tables match the last one.
    pub fn verify(&self) -> Result<History, MigrateError> {
        let hp = self.root.join(HISTORY_FILE);
        let history: History = match std::fs::read_to_string(&hp) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| io_err(&hp, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => History::default(),
            Err(e) => return Err(io_err(&hp, e)),
        };
        let mut recorded = std::collections::BTreeSet::new();
        for (i, m) in history.migrations.iter().enumerate() {
            if m.version as usize != i + 1 {
                return Err(self.inconsistent(format!(
                    "{HISTORY_FILE}: migration {:04}_{} is number {} in the list",
                    m.version,
                    m.name,
                    i + 1
                )));
            }
            for (rel, sum) in &m.files {
                let p = self.root.join(rel);
                let bytes = std::fs::read(&p).map_err(|_| {
                    self.inconsistent(format!(
                        "{rel} (migration {:04}_{}) is missing; applied migrations must not be deleted — restore it from version control",
                        m.version, m.name
                    ))
                })?;
                if &sha256_hex(&bytes) != sum {
                    return Err(self.inconsistent(format!(
                        "{rel} (migration {:04}_{}) was edited after it was written; applied migrations must never change (sqlx would refuse it) — restore it and regenerate to get a new migration",
                        m.version, m.name
                    )));
                }
                recorded.insert(rel.clone());
            }
        }
        for b in Backend::ALL {
            let dir = self.root.join(b.as_str());
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name.contains(".tmp") {
                    continue;
                }
                let rels: Vec<String> = if e.path().is_dir() {
                    ["up.sql", "down.sql"]
                        .iter()
                        .filter(|f| e.path().join(f).exists())
                        .map(|f| format!("{}/{name}/{f}", b.as_str()))
                        .collect()
                } else {
                    vec![format!("{}/{name}", b.as_str())]
                };
                for rel in rels {
                    if !recorded.contains(&rel) {
                        return Err(self.inconsistent(format!(
                            "{rel} is not in {HISTORY_FILE}: it was not written by odatagen (or {HISTORY_FILE} was reverted)"
                        )));
                    }
                }
            }
        }
        let mut last: BTreeMap<&str, &HistoryEntry> = BTreeMap::new();
        for m in &history.migrations {
            last.insert(&m.service, m);
        }
        for (service, m) in &last {
            let Some(state) = read_state(&self.root, service)? else {
                return Err(self.inconsistent(format!(
                    "{} is missing but migration {:04}_{} is for service {service}",
                    state_path(&self.root, service).display(),
                    m.version,
                    m.name
                )));
            };
            if tables_hash(&state.tables) != m.tables_sha256 {
                return Err(self.inconsistent(format!(
                    "the tables in {} are not those of migration {:04}_{} (the state file was edited or restored from elsewhere)",
                    state_path(&self.root, service).display(),
                    m.version,
                    m.name
                )));
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.root.join(STATE_DIR)) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "json") {
                    let stem = p
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if !last.contains_key(stem.as_str()) {
                        return Err(self.inconsistent(format!(
                            "{} has no migration in {HISTORY_FILE} (migrations deleted?)",
                            p.display()
                        )));
                    }
                }
            }
        }
        Ok(history)
    }

    /// Brings the runtime's tables and one service's tables up to date: writes the next
    /// migration(s) and the state, or nothing when nothing changed. `model` is stored as the
    /// service's last generation; `tables` are its tables ([`crate::sql::tables`]).
    pub fn migrate_service(
        &self,
        service: &str,
        model: Option<&Model>,
        tables: &[TableDef],
        opts: MigrateOptions,
    ) -> Result<Outcome, MigrateError> {
        // Two builds (say `cargo clippy` and `cargo test`) may run the generated crate's build
        // script at once: one writer at a time.
        let _lock = RootLock::acquire(&self.root)?;
        let mut history = self.verify()?;
        let mut outcome = Outcome::default();
        // The runtime's tables come first (migration 0001 on a new history).
        let rt = runtime_tables();
        let rt_old = read_state(&self.root, RUNTIME_STATE)?;
        let rt_plan = plan(
            RUNTIME_STATE,
            rt_old.as_ref().map(|s| s.tables.as_slice()).unwrap_or(&[]),
            &rt,
            opts,
        );
        if !rt_plan.refused.is_empty() {
            return Err(breaking_error(RUNTIME_STATE, &rt_plan));
        }
        if !rt_plan.changes.is_empty() {
            let name = if rt_old.is_none() {
                "odata_runtime".to_string()
            } else {
                "update_odata_runtime".to_string()
            };
            let old = rt_old.map(|s| s.tables).unwrap_or_default();
            let w = self.write(
                &mut history,
                &name,
                &old,
                &rt_plan,
                None,
                "the odata-sync runtime's state tables",
            )?;
            outcome.written.push(w);
        }

        let old = read_state(&self.root, service)?;
        let old_tables = old.as_ref().map(|s| s.tables.clone()).unwrap_or_default();
        let mut p = plan(service, &old_tables, tables, opts);
        if let (Some(o), Some(n)) = (old.as_ref().and_then(|s| s.model.as_ref()), model) {
            let d = diff_models(o, n);
            if !d.is_empty() {
                p.model_diff = Some(d);
            }
        }
        outcome.model_diff = p.model_diff.clone();
        outcome.kept = p.kept.clone();
        if !p.refused.is_empty() {
            return Err(breaking_error(service, &p));
        }
        let sources = model
            .map(|m| stored_model(m).sources.join(", "))
            .unwrap_or_default();
        if p.changes.is_empty() {
            // Nothing for the database; keep the stored model current (write-if-changed).
            if old.is_some() {
                outcome.state_updated = self.write_state(service, model, &p.tables)?;
            }
            return Ok(outcome);
        }
        let name = if old.is_none() {
            format!("create_{service}")
        } else {
            format!("update_{service}")
        };
        let w = self.write(
            &mut history,
            &name,
            &old_tables,
            &p,
            model,
            &format!("service {service}, metadata {sources}"),
        )?;
        outcome.written.push(w);
        Ok(outcome)
    }

    fn write_state(
        &self,
        service: &str,
        model: Option<&Model>,
        tables: &[TableDef],
    ) -> Result<bool, MigrateError> {
        let generated = match model {
            Some(m) => format!(
                "by odatagen (odata-codegen) from service {service}, metadata {}; the base of the next migration; do not edit",
                stored_model(m).sources.join(", ")
            ),
            None => "by odatagen (odata-codegen): the runtime's state tables; the base of the next migration; do not edit".to_string(),
        };
        let state = ServiceState {
            generated,
            model: model.map(stored_model),
            tables: tables.to_vec(),
        };
        let p = state_path(&self.root, service);
        let text = serde_json::to_string_pretty(&state).map_err(|e| io_err(&p, e))? + "\n";
        write_if_changed(&p, &text).map_err(|e| io_err(&p, e))
    }

    fn write(
        &self,
        history: &mut History,
        name: &str,
        old: &[TableDef],
        plan: &Plan,
        model: Option<&Model>,
        from: &str,
    ) -> Result<Written, MigrateError> {
        let version = history.migrations.len() as u32 + 1;
        let id = format!("{version:04}_{name}");
        let mut files = BTreeMap::new();
        let mut order = Vec::new();
        for b in Backend::ALL {
            let (up, down) = statements(old, plan, b);
            let up_text = migration_text(&id, b, from, plan, &up, "up");
            let down_text = migration_text(&id, b, from, plan, &down, "down");
            for (rel, text) in [
                (format!("{}/{id}.up.sql", b.as_str()), &up_text),
                (format!("{}/{id}.down.sql", b.as_str()), &down_text),
                (format!("{}/{id}/up.sql", b.as_str()), &up_text),
                (format!("{}/{id}/down.sql", b.as_str()), &down_text),
            ] {
                let p = self.root.join(&rel);
                if p.exists() && std::fs::read_to_string(&p).ok().as_deref() != Some(text) {
                    return Err(self.inconsistent(format!(
                        "{rel} exists but is not in {HISTORY_FILE}; it would be overwritten"
                    )));
                }
                write_if_changed(&p, text).map_err(|e| io_err(&p, e))?;
                files.insert(rel.clone(), sha256_hex(text.as_bytes()));
                order.push(rel);
            }
        }
        self.write_state(&plan.service, model, &plan.tables)?;
        order.push(format!("{STATE_DIR}/{}.json", plan.service));
        history.migrations.push(HistoryEntry {
            version,
            name: name.to_string(),
            service: plan.service.clone(),
            tables_sha256: tables_hash(&plan.tables),
            files,
        });
        let hp = self.root.join(HISTORY_FILE);
        history.generated = HISTORY_HEADER.to_string();
        let text = serde_json::to_string_pretty(history).map_err(|e| io_err(&hp, e))? + "\n";
        write_if_changed(&hp, &text).map_err(|e| io_err(&hp, e))?;
        order.push(HISTORY_FILE.to_string());
        Ok(Written {
            version,
            name: name.to_string(),
            service: plan.service.clone(),
            files: order,
            report: plan.report(),
        })
    }
}

/// A lock file per migrations folder, created exclusively in the temporary directory (not in
/// the folder: build.rs watches it, and a file coming and going there would rerun every build);
/// removed on drop. A lock older than two minutes is left over from a killed process.
struct RootLock(PathBuf);

impl RootLock {
    fn acquire(root: &Path) -> Result<RootLock, MigrateError> {
        std::fs::create_dir_all(root).map_err(|e| io_err(root, e))?;
        let canonical = root.canonicalize().map_err(|e| io_err(root, e))?;
        let path = std::env::temp_dir().join(format!(
            "odatagen-migrations-{:08x}.lock",
            crate::naming::fnv1a32(canonical.to_string_lossy().as_bytes())
        ));
        let start = std::time::Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok(RootLock(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > std::time::Duration::from_secs(120));
                    if stale {
                        let _ = std::fs::remove_file(&path);
                    } else if start.elapsed() > std::time::Duration::from_secs(300) {
                        return Err(io_err(
                            &path,
                            "another odatagen holds this lock (remove the file if no build is running)",
                        ));
                    } else {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                }
                Err(e) => return Err(io_err(&path, e)),
            }
        }
    }
}

impl Drop for RootLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn breaking_error(service: &str, p: &Plan) -> MigrateError {
    let mut report = format!(
        "service {service}: breaking changes need an explicit migration; nothing was written:\n"
    );
    for c in &p.refused {
        let _ = writeln!(report, "  BREAKING {c}");
    }
    let _ = write!(
        report,
        "review them, then run `odatagen migrate --service metadata-cache/{service} --allow-breaking` (PostgreSQL converts in place with ALTER COLUMN … USING; SQLite rebuilds the table)"
    );
    MigrateError::Breaking {
        service: service.to_string(),
        report,
    }
}

/// The text of one migration file: a header saying it is generated and from what, the changes,
/// then the statements.
pub fn migration_text(
    id: &str,
    backend: Backend,
    from: &str,
    plan: &Plan,
    statements: &[String],
    direction: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "-- @generated by odatagen (odata-codegen): migration {id} ({direction}), {}.",
        backend.as_str()
    );
    let _ = writeln!(s, "-- From {from}.");
    let _ = writeln!(
        s,
        "-- Do not edit: applied migrations are checksummed. Change the metadata and regenerate."
    );
    for c in &plan.changes {
        let _ = writeln!(s, "--   {c}");
    }
    for c in &plan.kept {
        let _ = writeln!(s, "--   {c} (kept)");
    }
    s.push('\n');
    if statements.is_empty() {
        // Some tools reject an empty migration; this one does nothing on this backend.
        s.push_str("SELECT 1;\n");
    }
    for st in statements {
        s.push_str(st);
        s.push('\n');
    }
    s
}
