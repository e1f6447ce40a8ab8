//! Tables derived from the model: one per selected entity set, with the entity's properties, the
//! system columns (`synced_at`, `deleted_at`, and `division` for services with divisions), the
//! primary key (the entity key, with `division` first when the service has divisions) and indexes
//! on the incremental cursor columns (`Modified`, `Timestamp`). Plus the runtime's own state
//! tables. Every emitter of SQL (DDL, migrations, the sqlx and diesel code) reads these.

use crate::config::{EntitySelection, ServiceToml};
use crate::edm_types::Prim;
use crate::model::{Model, PropertyDef, TypeKind, TypeRef};
use crate::naming;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a column holds: decides its SQL type per backend and how the runtime binds and reads it.
/// The runtime has the same enum (`odata_runtime::sql::ColumnKind`); names must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ColumnKind {
    Text,
    Bool,
    /// Edm.Byte, Edm.SByte, Edm.Int16.
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// Edm.Decimal: exact. PostgreSQL `NUMERIC`; SQLite `TEXT` holding the decimal string.
    Decimal,
    Date,
    /// Edm.DateTime (no zone).
    DateTime,
    /// Edm.DateTimeOffset: stored in UTC.
    DateTimeOffset,
    /// Edm.TimeOfDay, Edm.Time.
    Time,
    /// Edm.Duration (ISO 8601 text).
    Duration,
    Uuid,
    Bytes,
    /// Complex types, collections, geography, untyped: the JSON value.
    Json,
    /// Enum member name(s) as text.
    Enum,
    /// System column: the division a row belongs to.
    Division,
    /// System column: when a sync last wrote the row.
    SyncedAt,
    /// System column: when the row was seen deleted at the source.
    DeletedAt,
}

impl ColumnKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnKind::Text => "Text",
            ColumnKind::Bool => "Bool",
            ColumnKind::Int16 => "Int16",
            ColumnKind::Int32 => "Int32",
            ColumnKind::Int64 => "Int64",
            ColumnKind::Float32 => "Float32",
            ColumnKind::Float64 => "Float64",
            ColumnKind::Decimal => "Decimal",
            ColumnKind::Date => "Date",
            ColumnKind::DateTime => "DateTime",
            ColumnKind::DateTimeOffset => "DateTimeOffset",
            ColumnKind::Time => "Time",
            ColumnKind::Duration => "Duration",
            ColumnKind::Uuid => "Uuid",
            ColumnKind::Bytes => "Bytes",
            ColumnKind::Json => "Json",
            ColumnKind::Enum => "Enum",
            ColumnKind::Division => "Division",
            ColumnKind::SyncedAt => "SyncedAt",
            ColumnKind::DeletedAt => "DeletedAt",
        }
    }

    /// The kind of a property.
    pub fn of(p: &PropertyDef) -> ColumnKind {
        match &p.ty {
            TypeRef::Collection(_)
            | TypeRef::Complex(_)
            | TypeRef::Entity(_)
            | TypeRef::Unresolved(_) => ColumnKind::Json,
            TypeRef::Enum { .. } => ColumnKind::Enum,
            TypeRef::Primitive(prim) => match prim {
                Prim::String => ColumnKind::Text,
                Prim::Boolean => ColumnKind::Bool,
                Prim::Byte | Prim::SByte | Prim::Int16 => ColumnKind::Int16,
                Prim::Int32 => ColumnKind::Int32,
                Prim::Int64 => ColumnKind::Int64,
                Prim::Single => ColumnKind::Float32,
                Prim::Double => ColumnKind::Float64,
                Prim::Decimal => ColumnKind::Decimal,
                Prim::Date => ColumnKind::Date,
                Prim::DateTime => ColumnKind::DateTime,
                Prim::DateTimeOffset => ColumnKind::DateTimeOffset,
                Prim::TimeOfDay | Prim::Time => ColumnKind::Time,
                Prim::Duration => ColumnKind::Duration,
                Prim::Guid => ColumnKind::Uuid,
                Prim::Binary => ColumnKind::Bytes,
                Prim::Stream
                | Prim::Geography
                | Prim::Geometry
                | Prim::Untyped
                | Prim::PrimitiveType => ColumnKind::Json,
            },
        }
    }
}

/// A database backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The Edm → SQL type table of one backend: by [`ColumnKind`], with the decimal facets applied
/// by [`SqlTypes::column_type`]. Overridable per kind in `service.toml` (`[sql.sqlite]`,
/// `[sql.postgres]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlTypes {
    pub sqlite: BTreeMap<ColumnKind, String>,
    pub postgres: BTreeMap<ColumnKind, String>,
}

impl Default for SqlTypes {
    fn default() -> Self {
        use ColumnKind::*;
        // SQLite has no decimal, date or uuid types: decimals are stored as their exact text
        // (never a lossy REAL), times as ISO 8601 text (DateTimeOffset normalised to UTC, so text
        // order is time order), uuids as lower-case hyphenated text.
        let sqlite = [
            (Text, "TEXT"),
            (Bool, "INTEGER"),
            (Int16, "INTEGER"),
            (Int32, "INTEGER"),
            (Int64, "INTEGER"),
            (Float32, "REAL"),
            (Float64, "REAL"),
            (Decimal, "TEXT"),
            (Date, "TEXT"),
            (DateTime, "TEXT"),
            (DateTimeOffset, "TEXT"),
            (Time, "TEXT"),
            (Duration, "TEXT"),
            (Uuid, "TEXT"),
            (Bytes, "BLOB"),
            (Json, "TEXT"),
            (Enum, "TEXT"),
            (Division, "INTEGER"),
            (SyncedAt, "TEXT"),
            (DeletedAt, "TEXT"),
        ];
        let postgres = [
            (Text, "TEXT"),
            (Bool, "BOOLEAN"),
            (Int16, "SMALLINT"),
            (Int32, "INTEGER"),
            (Int64, "BIGINT"),
            (Float32, "REAL"),
            (Float64, "DOUBLE PRECISION"),
            (Decimal, "NUMERIC"),
            (Date, "DATE"),
            (DateTime, "TIMESTAMP"),
            (DateTimeOffset, "TIMESTAMPTZ"),
            (Time, "TIME"),
            (Duration, "TEXT"),
            (Uuid, "UUID"),
            (Bytes, "BYTEA"),
            (Json, "JSONB"),
            (Enum, "TEXT"),
            (Division, "INTEGER"),
            (SyncedAt, "TIMESTAMPTZ"),
            (DeletedAt, "TIMESTAMPTZ"),
        ];
        SqlTypes {
            sqlite: sqlite.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            postgres: postgres.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }
}

impl SqlTypes {
    /// The defaults with a service's `[sql.sqlite]`/`[sql.postgres]` overrides applied.
    pub fn with_overrides(mut self, o: Option<&crate::config::SqlOverrides>) -> Self {
        if let Some(o) = o {
            self.sqlite
                .extend(o.sqlite.iter().map(|(k, v)| (*k, v.clone())));
            self.postgres
                .extend(o.postgres.iter().map(|(k, v)| (*k, v.clone())));
        }
        self
    }

    /// The SQL type of a column. PostgreSQL decimals get `NUMERIC(p,s)` only when the scale is a
    /// number (an absent or `variable` scale must not become `NUMERIC(p,0)`, which would round
    /// 19.99 to 20) and the precision fits PostgreSQL (≤ 1000).
    pub fn column_type(
        &self,
        backend: Backend,
        kind: ColumnKind,
        precision: Option<u32>,
        scale: Option<u32>,
    ) -> String {
        let table = match backend {
            Backend::Sqlite => &self.sqlite,
            Backend::Postgres => &self.postgres,
        };
        let base = table.get(&kind).cloned().unwrap_or_else(|| "TEXT".into());
        if backend == Backend::Postgres && kind == ColumnKind::Decimal && base == "NUMERIC" {
            if let (Some(p), Some(s)) = (precision, scale) {
                if (1..=1000).contains(&p) && s <= p {
                    return format!("NUMERIC({p},{s})");
                }
            }
        }
        base
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Column name (quoted in every statement).
    pub name: String,
    /// The property's wire name; `None` for system columns.
    pub wire_name: Option<String>,
    pub kind: ColumnKind,
    pub nullable: bool,
    /// Edm type as declared (for messages and the runtime's checks).
    pub edm_type: String,
    pub sqlite_type: String,
    pub postgres_type: String,
}

impl ColumnDef {
    /// A column that is not an entity property (system and runtime-state columns): no wire name,
    /// typed by `types` without facets.
    pub fn system(
        types: &SqlTypes,
        name: &str,
        kind: ColumnKind,
        nullable: bool,
        edm_type: &str,
    ) -> ColumnDef {
        ColumnDef {
            name: name.to_string(),
            wire_name: None,
            kind,
            nullable,
            edm_type: edm_type.to_string(),
            sqlite_type: types.column_type(Backend::Sqlite, kind, None, None),
            postgres_type: types.column_type(Backend::Postgres, kind, None, None),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDef {
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    /// Table name (≤ 63 bytes, unique case-insensitively).
    pub name: String,
    /// The selection name (config.json entity name, or the entity set's name).
    pub entity: String,
    /// The entity set's wire name.
    pub entity_set: String,
    /// Qualified entity type name.
    pub entity_type: String,
    /// Rust type name of the entity (in the service module).
    pub rust_type: String,
    /// Whether rows carry a `division` column (part of the primary key).
    pub division: bool,
    pub columns: Vec<ColumnDef>,
    /// Column names of the primary key (empty for keyless entities).
    pub primary_key: Vec<String>,
    pub indexes: Vec<IndexDef>,
}

/// Properties whose values drive incremental fetching get an index.
pub const CURSOR_PROPERTIES: &[&str] = &["Modified", "Timestamp"];

/// Column names of the system columns.
pub const DIVISION_COLUMN: &str = "division";
pub const SYNCED_AT_COLUMN: &str = "synced_at";
pub const DELETED_AT_COLUMN: &str = "deleted_at";

/// Everything that decides the tables of one service besides the model.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    /// Prefix of every table name (the service name): tables of several services share one
    /// database and one migration history.
    pub prefix: String,
    /// Whether the service has divisions (`{division}` in `base_url`).
    pub has_divisions: bool,
    pub config: Option<EntitySelection>,
    pub sql_types: SqlTypes,
}

impl TableOptions {
    pub fn for_service(
        name: &str,
        service: Option<&ServiceToml>,
        config: Option<&EntitySelection>,
    ) -> Self {
        TableOptions {
            prefix: naming::sql_base_name(name),
            has_divisions: service.is_some_and(ServiceToml::has_divisions),
            config: config.cloned(),
            sql_types: SqlTypes::default().with_overrides(service.map(|s| &s.sql)),
        }
    }
}

/// One table per selected entity set, sorted by table name.
pub fn tables(model: &Model, opts: &TableOptions) -> Vec<TableDef> {
    let mut out = Vec::new();
    for (sel_name, set) in &model.entity_sets {
        let Some(t) = model.types.get(&set.entity_type) else {
            continue;
        };
        let TypeKind::Entity(s) = &t.kind else {
            continue;
        };
        let cfg = opts.config.as_ref().and_then(|c| c.entities.get(sel_name));
        let division =
            opts.has_divisions && cfg.and_then(|c| c.ensure_division_column).unwrap_or(true);
        let name = match cfg.and_then(|c| c.table.clone()) {
            Some(t) => t,
            None => {
                let full = if opts.prefix.is_empty() {
                    set.sql_name.clone()
                } else {
                    format!("{}_{}", opts.prefix, set.sql_name)
                };
                naming::shorten_sql(&full, &format!("{}.{sel_name}", opts.prefix))
            }
        };
        let mut columns = Vec::new();
        let sys = |n: &str, kind: ColumnKind, nullable: bool, edm: &str| {
            ColumnDef::system(&opts.sql_types, n, kind, nullable, edm)
        };
        // An entity whose payload has a `Division` property stores it in the division column.
        let division_prop = s
            .properties
            .iter()
            .find(|p| p.sql_name == DIVISION_COLUMN && !p.ty.is_collection());
        if division {
            columns.push(sys(
                DIVISION_COLUMN,
                ColumnKind::Division,
                false,
                "Edm.Int32",
            ));
        }
        let selected: Option<&Vec<String>> = cfg.and_then(|c| c.select.as_ref());
        for p in &s.properties {
            if p.ty.is_stream() {
                continue;
            }
            if division && division_prop.is_some_and(|d| d.wire_name == p.wire_name) {
                continue;
            }
            if let Some(sel) = selected {
                if !p.is_key && !sel.contains(&p.wire_name) {
                    continue;
                }
            }
            let kind = ColumnKind::of(p);
            columns.push(ColumnDef {
                name: p.sql_name.clone(),
                wire_name: Some(p.wire_name.clone()),
                kind,
                nullable: !p.is_key,
                edm_type: p.edm_type.clone(),
                sqlite_type: opts.sql_types.column_type(
                    Backend::Sqlite,
                    kind,
                    p.facets.precision,
                    p.facets.scale,
                ),
                postgres_type: opts.sql_types.column_type(
                    Backend::Postgres,
                    kind,
                    p.facets.precision,
                    p.facets.scale,
                ),
            });
        }
        columns.push(sys(
            SYNCED_AT_COLUMN,
            ColumnKind::SyncedAt,
            false,
            "Edm.DateTimeOffset",
        ));
        columns.push(sys(
            DELETED_AT_COLUMN,
            ColumnKind::DeletedAt,
            true,
            "Edm.DateTimeOffset",
        ));

        let key_wires: Vec<String> = match cfg.and_then(|c| c.key.clone()) {
            Some(k) => k,
            None => s.key.clone(),
        };
        let mut primary_key = Vec::new();
        if !key_wires.is_empty() {
            if division {
                primary_key.push(DIVISION_COLUMN.to_string());
            }
            for k in &key_wires {
                if let Some(p) = s.properties.iter().find(|p| &p.wire_name == k) {
                    if !primary_key.contains(&p.sql_name) {
                        primary_key.push(p.sql_name.clone());
                    }
                }
            }
        }
        for c in columns.iter_mut() {
            if primary_key.contains(&c.name) {
                c.nullable = false;
            }
        }
        let mut indexes = Vec::new();
        for cursor in CURSOR_PROPERTIES {
            if let Some(p) = s.properties.iter().find(|p| p.wire_name == *cursor) {
                if columns.iter().any(|c| c.name == p.sql_name) {
                    let mut cols = Vec::new();
                    if division {
                        cols.push(DIVISION_COLUMN.to_string());
                    }
                    cols.push(p.sql_name.clone());
                    let iname = naming::shorten_sql(
                        &format!("{name}_{}_idx", p.sql_name),
                        &format!("{name}/{cursor}"),
                    );
                    indexes.push(IndexDef {
                        name: iname,
                        columns: cols,
                    });
                }
            }
        }
        out.push(TableDef {
            name,
            entity: sel_name.clone(),
            entity_set: set.wire_name.clone(),
            entity_type: t.qname.clone(),
            rust_type: t.rust_name.clone(),
            division,
            columns,
            primary_key,
            indexes,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The runtime's own tables (one migration story covers them too): the incremental cursor per
/// (service, division, entity), a record per sync run of a (division, entity), and the
/// encrypted OAuth2 tokens and granted divisions per (service, client_id).
pub fn runtime_tables() -> Vec<TableDef> {
    let t = SqlTypes::default();
    let col = |name: &str, kind: ColumnKind, nullable: bool| {
        ColumnDef::system(&t, name, kind, nullable, "")
    };
    vec![
        TableDef {
            name: "odata_sync_cursors".into(),
            entity: String::new(),
            entity_set: String::new(),
            entity_type: String::new(),
            rust_type: String::new(),
            division: false,
            columns: vec![
                col("service", ColumnKind::Text, false),
                // 0 for services without divisions (primary key columns cannot be NULL).
                col("division", ColumnKind::Int64, false),
                col("entity", ColumnKind::Text, false),
                // `Timestamp` (Int64 as text) or `Modified` (ISO 8601 UTC).
                col("cursor_kind", ColumnKind::Text, false),
                col("cursor_value", ColumnKind::Text, true),
                col("updated_at", ColumnKind::SyncedAt, false),
            ],
            primary_key: vec!["service".into(), "division".into(), "entity".into()],
            indexes: vec![],
        },
        TableDef {
            name: "odata_sync_runs".into(),
            entity: String::new(),
            entity_set: String::new(),
            entity_type: String::new(),
            rust_type: String::new(),
            division: false,
            columns: vec![
                // A text id (uuid) keeps the DDL identical on both backends.
                col("id", ColumnKind::Text, false),
                col("batch_id", ColumnKind::Text, true),
                col("service", ColumnKind::Text, false),
                col("division", ColumnKind::Int64, false),
                col("entity", ColumnKind::Text, false),
                // queued | running | succeeded | failed
                col("status", ColumnKind::Text, false),
                col("full_refresh", ColumnKind::Bool, false),
                col("rows_inserted", ColumnKind::Int64, false),
                col("rows_updated", ColumnKind::Int64, false),
                col("rows_deleted", ColumnKind::Int64, false),
                col("api_calls", ColumnKind::Int64, false),
                col("errors", ColumnKind::Int64, false),
                col("message", ColumnKind::Text, true),
                col("queued_at", ColumnKind::SyncedAt, false),
                col("started_at", ColumnKind::DeletedAt, true),
                col("finished_at", ColumnKind::DeletedAt, true),
            ],
            primary_key: vec!["id".into()],
            indexes: vec![IndexDef {
                name: "odata_sync_runs_entity_idx".into(),
                columns: vec![
                    "service".into(),
                    "division".into(),
                    "entity".into(),
                    "queued_at".into(),
                ],
            }],
        },
        // The Exact OAuth2 token pair of one app (client_id) per service, for
        // `odata_runtime::sync::DbTokenStore`. Both tokens are stored encrypted (AES-256-GCM,
        // `v1:` + base64 of nonce and ciphertext), never in clear.
        TableDef {
            name: "odata_tokens".into(),
            entity: String::new(),
            entity_set: String::new(),
            entity_type: String::new(),
            rust_type: String::new(),
            division: false,
            columns: vec![
                col("service", ColumnKind::Text, false),
                col("client_id", ColumnKind::Text, false),
                col("access_token", ColumnKind::Text, false),
                col("refresh_token", ColumnKind::Text, false),
                // UTC epoch milliseconds (exact-online.md §3: the 570-second rule counts from
                // obtained_at_ms).
                col("expires_at_ms", ColumnKind::Int64, false),
                col("obtained_at_ms", ColumnKind::Int64, false),
                col("updated_at", ColumnKind::SyncedAt, false),
            ],
            primary_key: vec!["service".into(), "client_id".into()],
            indexes: vec![],
        },
        // The divisions the consenting user gave the app (replaced as a set).
        TableDef {
            name: "odata_token_divisions".into(),
            entity: String::new(),
            entity_set: String::new(),
            entity_type: String::new(),
            rust_type: String::new(),
            division: false,
            columns: vec![
                col("service", ColumnKind::Text, false),
                col("client_id", ColumnKind::Text, false),
                col("division", ColumnKind::Int64, false),
                col("name", ColumnKind::Text, true),
                col("updated_at", ColumnKind::SyncedAt, false),
            ],
            primary_key: vec!["service".into(), "client_id".into(), "division".into()],
            indexes: vec![],
        },
        // Webhook events as received (written before the receiver answers 200), then applied.
        TableDef {
            name: "odata_webhook_events".into(),
            entity: String::new(),
            entity_set: String::new(),
            entity_type: String::new(),
            rust_type: String::new(),
            division: false,
            columns: vec![
                // SHA-256 (hex) of the raw bytes of the event's Content: a duplicate delivery
                // is the same row.
                col("id", ColumnKind::Text, false),
                col("service", ColumnKind::Text, false),
                col("topic", ColumnKind::Text, false),
                // Create | Update | Delete
                col("action", ColumnKind::Text, false),
                col("division", ColumnKind::Int64, false),
                col("entity_key", ColumnKind::Text, false),
                col("endpoint", ColumnKind::Text, true),
                // The raw Content JSON.
                col("content", ColumnKind::Text, false),
                // received | applied | ignored | failed
                col("status", ColumnKind::Text, false),
                col("attempts", ColumnKind::Int64, false),
                col("message", ColumnKind::Text, true),
                col("received_at", ColumnKind::SyncedAt, false),
                col("applied_at", ColumnKind::DeletedAt, true),
            ],
            primary_key: vec!["id".into()],
            indexes: vec![IndexDef {
                name: "odata_webhook_events_status_idx".into(),
                columns: vec!["status".into(), "received_at".into()],
            }],
        },
        // Other secrets of a service (webhook secret, ...), encrypted like the tokens.
        TableDef {
            name: "odata_secrets".into(),
            entity: String::new(),
            entity_set: String::new(),
            entity_type: String::new(),
            rust_type: String::new(),
            division: false,
            columns: vec![
                col("service", ColumnKind::Text, false),
                col("name", ColumnKind::Text, false),
                col("value", ColumnKind::Text, false),
                col("updated_at", ColumnKind::SyncedAt, false),
            ],
            primary_key: vec!["service".into(), "name".into()],
            indexes: vec![],
        },
        // A requested sync of a service (status API, schedules): its runs carry its id as
        // odata_sync_runs.batch_id.
        TableDef {
            name: "odata_sync_batches".into(),
            entity: String::new(),
            entity_set: String::new(),
            entity_type: String::new(),
            rust_type: String::new(),
            division: false,
            columns: vec![
                col("id", ColumnKind::Text, false),
                col("service", ColumnKind::Text, false),
                // Comma-separated config.json names; NULL: the default plan.
                col("entities", ColumnKind::Text, true),
                col("division", ColumnKind::Int64, true),
                col("full_refresh", ColumnKind::Bool, false),
                // queued | running | succeeded | failed
                col("status", ColumnKind::Text, false),
                // The process running it (host:pid), to fail or resume it after a crash.
                col("owner", ColumnKind::Text, true),
                col("callback_url", ColumnKind::Text, true),
                // pending | delivered | failed
                col("callback_status", ColumnKind::Text, true),
                col("callback_attempts", ColumnKind::Int64, false),
                col("message", ColumnKind::Text, true),
                col("created_at", ColumnKind::SyncedAt, false),
                col("started_at", ColumnKind::DeletedAt, true),
                col("finished_at", ColumnKind::DeletedAt, true),
            ],
            primary_key: vec!["id".into()],
            indexes: vec![IndexDef {
                name: "odata_sync_batches_status_idx".into(),
                columns: vec!["status".into(), "created_at".into()],
            }],
        },
        // The job queue of scale-out workers: one (division, entity) of a batch, leased with
        // `FOR UPDATE SKIP LOCKED`; a lease that is not renewed expires.
        TableDef {
            name: "odata_jobs".into(),
            entity: String::new(),
            entity_set: String::new(),
            entity_type: String::new(),
            rust_type: String::new(),
            division: false,
            columns: vec![
                col("id", ColumnKind::Text, false),
                col("batch_id", ColumnKind::Text, false),
                col("service", ColumnKind::Text, false),
                col("division", ColumnKind::Int64, false),
                col("entity", ColumnKind::Text, false),
                // Comma-separated entities of the same batch and division that must succeed first.
                col("depends_on", ColumnKind::Text, false),
                // queued | running | succeeded | failed
                col("status", ColumnKind::Text, false),
                col("lease_owner", ColumnKind::Text, true),
                col("lease_expires_at", ColumnKind::DeletedAt, true),
                col("attempts", ColumnKind::Int64, false),
                col("run_id", ColumnKind::Text, true),
                col("message", ColumnKind::Text, true),
                col("created_at", ColumnKind::SyncedAt, false),
                col("finished_at", ColumnKind::DeletedAt, true),
            ],
            primary_key: vec!["id".into()],
            indexes: vec![IndexDef {
                name: "odata_jobs_status_idx".into(),
                columns: vec!["status".into(), "batch_id".into(), "division".into()],
            }],
        },
        // Workers alive (heartbeats).
        TableDef {
            name: "odata_workers".into(),
            entity: String::new(),
            entity_set: String::new(),
            entity_type: String::new(),
            rust_type: String::new(),
            division: false,
            columns: vec![
                col("id", ColumnKind::Text, false),
                col("host", ColumnKind::Text, false),
                col("pid", ColumnKind::Int64, false),
                // running | stopped
                col("status", ColumnKind::Text, false),
                col("started_at", ColumnKind::SyncedAt, false),
                col("heartbeat_at", ColumnKind::SyncedAt, false),
            ],
            primary_key: vec!["id".into()],
            indexes: vec![],
        },
        // The cron slots (config.json `schedule`) already enqueued: `odatasync schedule --due`
        // and `worker --schedule` insert the slot in the transaction that inserts its jobs, so
        // two schedulers never enqueue one slot twice.
        TableDef {
            name: "odata_schedule_slots".into(),
            entity: String::new(),
            entity_set: String::new(),
            entity_type: String::new(),
            rust_type: String::new(),
            division: false,
            columns: vec![
                col("service", ColumnKind::Text, false),
                col("entity", ColumnKind::Text, false),
                // The slot's time, UTC epoch ms.
                col("slot_at_ms", ColumnKind::Int64, false),
                // The odata_jobs batch that runs it.
                col("batch_id", ColumnKind::Text, false),
                col("created_at", ColumnKind::SyncedAt, false),
            ],
            primary_key: vec!["service".into(), "entity".into(), "slot_at_ms".into()],
            indexes: vec![],
        },
        // The API call budget shared by every process of an app: calls reserved per
        // (app, division) and window (`minute`, `day`), and the service's last word on it
        // (X-RateLimit-* headers).
        TableDef {
            name: "odata_rate_budget".into(),
            entity: String::new(),
            entity_set: String::new(),
            entity_type: String::new(),
            rust_type: String::new(),
            division: false,
            columns: vec![
                col("service", ColumnKind::Text, false),
                col("client_id", ColumnKind::Text, false),
                col("division", ColumnKind::Int64, false),
                // minute | day
                col("window_kind", ColumnKind::Text, false),
                // Start of the current window, UTC epoch ms.
                col("window_start_ms", ColumnKind::Int64, false),
                col("used", ColumnKind::Int64, false),
                col("limit_value", ColumnKind::Int64, true),
                col("remaining_reported", ColumnKind::Int64, true),
                col("reset_at_ms", ColumnKind::Int64, true),
                col("updated_at", ColumnKind::SyncedAt, false),
            ],
            primary_key: vec![
                "service".into(),
                "client_id".into(),
                "division".into(),
                "window_kind".into(),
            ],
            indexes: vec![],
        },
    ]
}
