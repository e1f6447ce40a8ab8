//! Batched upserts and reads of generated entity rows in SQLite and PostgreSQL (sqlx).
//!
//! One generic path serves every entity type: a row is serialised with serde into a JSON object
//! keyed by wire names, and each column is bound according to its [`ColumnKind`]; reading goes
//! the other way (columns → JSON object → `serde_json::from_value::<E>`). So the generated crate
//! needs no per-entity `FromRow` derive (which would add a proc-macro expansion per entity to the
//! generated crate's compile time) and no sqlx dependency at all.

use super::fields::Fields;
use super::{
    quote_ident, ColumnInfo, ColumnKind, Table, TableInfo, POSTGRES_BIND_LIMIT, STATEMENT_PARAMS,
};
use crate::wire::{Base64, EdmDate, EdmDateTime, EdmDateTimeOffset, EdmTime};
use crate::Entity;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use serde_with::{DeserializeAs, SerializeAs};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnection, PgPool, PgRow};
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{Arguments, AssertSqlSafe, Postgres, Row as _, Sqlite};

/// What went wrong writing or reading rows.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error("{table}: cannot serialise or deserialise a row: {source}")]
    Json {
        table: String,
        source: serde_json::Error,
    },
    #[error("{table}.{column}: {message}")]
    Value {
        table: String,
        column: String,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

pub(super) fn value_error(
    table: &TableInfo,
    col: &ColumnInfo,
    message: impl Into<String>,
) -> SqlError {
    SqlError::Value {
        table: table.name.to_string(),
        column: col.name.to_string(),
        message: message.into(),
    }
}

/// How often [`Db::checkpoint_while_writing`] copies the WAL into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// SQLite's automatic checkpoint runs inside the COMMIT that crosses this many WAL pages, on
/// the writing connection (default 1000 pages = 4 MB). A bulk sync checkpoints in the
/// background instead ([`Db::checkpoint_while_writing`]); this larger threshold is the bound on
/// the WAL's size when nothing does.
const WAL_AUTOCHECKPOINT_PAGES: &str = "10000";

/// Stops [`Db::checkpoint_while_writing`]'s task when dropped.
#[derive(Debug)]
pub struct CheckpointGuard(tokio::task::JoinHandle<()>);

impl Drop for CheckpointGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A connection pool to either backend.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One connection of a [`Db`]'s pool, held for a run of writes ([`Db::acquire`]).
#[derive(Debug)]
pub enum DbConn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// The most connections a [`Db`] opens. A sync holds one while it writes its pages, so
/// this bounds how many syncs one process runs at once ([`MAX_CONCURRENT_WRITERS`]).
pub const MAX_CONNECTIONS: u32 = 16;

/// How many syncs may hold a writer connection at once, leaving the rest of the pool
/// ([`MAX_CONNECTIONS`]) to the token store, run records and checkpoints they wait on.
pub const MAX_CONCURRENT_WRITERS: usize = 12;

impl Db {
    /// Connects by URL: `sqlite:…` (e.g. `sqlite:/path/db.sqlite?mode=rwc`) or `postgres://…`.
    /// sqlx's statement logging is off: its slow-statement warning (WARN after 1 s, e.g. while
    /// waiting for another process's write lock) prints the whole statement, and a batch upsert
    /// is 100 KB of placeholders per line.
    pub async fn connect(url: &str) -> Result<Db, SqlError> {
        if url.starts_with("sqlite:") {
            // WAL: readers never block the writer and a killed process loses no committed
            // transaction; a busy timeout lets several processes share the file.
            use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
            use sqlx::ConnectOptions;
            use std::str::FromStr;
            let opts = SqliteConnectOptions::from_str(url)?
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(60))
                .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
                .disable_statement_logging();
            Ok(Db::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .connect_with(opts)
                    .await?,
            ))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            use sqlx::ConnectOptions;
            use std::str::FromStr;
            let opts = sqlx::postgres::PgConnectOptions::from_str(url)?.disable_statement_logging();
            Ok(Db::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .connect_with(opts)
                    .await?,
            ))
        } else {
            Err(SqlError::Other(format!(
                "unsupported database URL {url:?}: expected sqlite: or postgres://"
            )))
        }
    }

    /// Takes one connection out of the pool until the result is dropped: a sync writes all
    /// its pages on one connection. Each SQLite connection keeps its own page cache (2 MB),
    /// and the pool hands out its idle connections in turn, so page-by-page transactions on
    /// the pool would warm (and hold) the same index pages in every connection's cache.
    pub async fn acquire(&self) -> Result<DbConn, SqlError> {
        Ok(match self {
            Db::Sqlite(p) => DbConn::Sqlite(p.acquire().await?),
            Db::Postgres(p) => DbConn::Postgres(p.acquire().await?),
        })
    }

    /// For a bulk write on SQLite: runs passive WAL checkpoints on another connection of the
    /// pool every 200 ms until the guard is dropped. SQLite's automatic checkpoint runs inside
    /// a COMMIT on the writing connection, which then stops for the copy and its two fsyncs (in
    /// a 200,000-row sync: 207 fsyncs, 0.75 s of the writer's time); a passive checkpoint never
    /// blocks the writer or readers, so the copy overlaps the writes and the WAL stays far
    /// below the automatic threshold (it restarts from its beginning once a checkpoint has
    /// caught up). A busy or failed checkpoint is tried again at the next tick. `None` for
    /// PostgreSQL.
    pub fn checkpoint_while_writing(&self) -> Option<CheckpointGuard> {
        let Db::Sqlite(pool) = self else {
            return None;
        };
        let pool = pool.clone();
        Some(CheckpointGuard(tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            while !pool.is_closed() {
                tick.tick().await;
                let _ = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await;
            }
        })))
    }

    /// Runs SQL without parameters (DDL; several statements are allowed).
    pub async fn execute_script(&self, sql: &str) -> Result<(), SqlError> {
        match self {
            Db::Sqlite(p) => {
                sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                    .execute(p)
                    .await?;
            }
            Db::Postgres(p) => {
                sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                    .execute(p)
                    .await?;
            }
        }
        Ok(())
    }

    /// Number of rows in a table (optionally of one division).
    pub async fn count(&self, table: &TableInfo, division: Option<i32>) -> Result<i64, SqlError> {
        let mut sql = format!("SELECT COUNT(*) FROM {}", quote_ident(table.name));
        if let (true, Some(_)) = (table.division, division) {
            sql.push_str(" WHERE \"division\" = ");
            sql.push_str(if matches!(self, Db::Sqlite(_)) {
                "?"
            } else {
                "$1"
            });
        }
        let division = division.filter(|_| table.division);
        Ok(match self {
            Db::Sqlite(p) => {
                let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
                if let Some(d) = division {
                    q = q.bind(d);
                }
                q.fetch_one(p).await?
            }
            Db::Postgres(p) => {
                let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
                if let Some(d) = division {
                    q = q.bind(d);
                }
                q.fetch_one(p).await?
            }
        })
    }
}

/// The rows of `rows` that one statement takes under `bind_limit` parameters: consecutive
/// chunks of [`TableInfo::rows_per_statement`] rows.
pub fn chunk_rows<'a, T>(
    table: &TableInfo,
    bind_limit: usize,
    rows: &'a [T],
) -> std::slice::Chunks<'a, T> {
    rows.chunks(table.rows_per_statement(bind_limit))
}

/// Upserts `rows` into `table` in one transaction, in statements of as many rows as the
/// backend's bind-parameter cap allows. `division` fills the `division` column (for tables
/// that have one; `None` takes each row's own `Division` property). Returns the number of
/// rows written.
pub async fn upsert_batch<E: Entity>(
    db: &Db,
    table: &TableInfo,
    division: Option<i32>,
    rows: &[E],
    synced_at: DateTime<Utc>,
) -> Result<u64, SqlError> {
    match db {
        Db::Sqlite(p) => {
            let mut tx = p.begin().await?;
            let n = super::sqlite_write::upsert_sqlite(&mut tx, table, division, rows, synced_at)
                .await?;
            tx.commit().await?;
            Ok(n)
        }
        Db::Postgres(p) => {
            let mut tx = p.begin().await?;
            let n = upsert_postgres(&mut tx, table, division, rows, synced_at).await?;
            tx.commit().await?;
            Ok(n)
        }
    }
}

/// [`upsert_batch`] into `E`'s own table ([`Table::TABLE`]).
pub async fn upsert<E: Table>(
    db: &Db,
    division: Option<i32>,
    rows: &[E],
    synced_at: DateTime<Utc>,
) -> Result<u64, SqlError> {
    upsert_batch(db, E::TABLE, division, rows, synced_at).await
}

/// Reads the rows of `table` (of one division, when given; `filter` is an extra SQL condition
/// written by the caller, e.g. `"deleted_at" IS NULL`), ordered by primary key.
pub async fn read_rows<E: Entity>(
    db: &Db,
    table: &TableInfo,
    division: Option<i32>,
    filter: Option<&str>,
) -> Result<Vec<E>, SqlError> {
    match db {
        Db::Sqlite(p) => {
            let mut c = p.acquire().await?;
            read_rows_sqlite(&mut c, table, division, filter).await
        }
        Db::Postgres(p) => {
            let mut c = p.acquire().await?;
            read_rows_postgres(&mut c, table, division, filter).await
        }
    }
}

/// Serialised rows of one statement, deduplicated by primary key (the last occurrence wins:
/// PostgreSQL refuses an `ON CONFLICT DO UPDATE` that touches one row twice in a statement;
/// across the statements of a batch, later ones update what earlier ones wrote).
fn to_objects<E: Entity>(table: &TableInfo, rows: &[E]) -> Result<Vec<Fields>, SqlError> {
    let mut out: Vec<Fields> = Vec::with_capacity(rows.len());
    for r in rows {
        match Fields::of(r) {
            Ok(f) => out.push(f),
            Err(source) => {
                return Err(SqlError::Json {
                    table: table.name.to_string(),
                    source,
                })
            }
        }
    }
    if table.primary_key.is_empty() || out.len() < 2 {
        return Ok(out);
    }
    let key_wires: Vec<Option<&str>> = table
        .primary_key
        .iter()
        .map(|k| table.column(k).and_then(|c| c.wire_name))
        .collect();
    let key_of = |m: &Fields| -> String {
        let parts: Vec<&Value> = key_wires
            .iter()
            .map(|w| w.and_then(|w| m.get(w)).unwrap_or(&Value::Null))
            .collect();
        serde_json::to_string(&parts).unwrap_or_default()
    };
    let mut last = std::collections::HashMap::new();
    for (i, m) in out.iter().enumerate() {
        last.insert(key_of(m), i);
    }
    if last.len() == out.len() {
        return Ok(out);
    }
    Ok(out
        .into_iter()
        .enumerate()
        .filter(|(i, m)| last.get(&key_of(m)) == Some(i))
        .map(|(_, m)| m)
        .collect())
}

/// One column's value, converted from the row's JSON form to what the backend stores.
#[derive(Clone)]
pub(super) enum Bound {
    Null,
    Text(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    Date(NaiveDate),
    DateTime(NaiveDateTime),
    Instant(DateTime<Utc>),
    Time(NaiveTime),
    Uuid(uuid::Uuid),
    Bytes(Vec<u8>),
    Json(Value),
}

fn text_of(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Whether no two insert columns read the same wire name, so [`convert`] may move each value out
/// of a row instead of cloning it.
pub(super) fn wire_names_unique(table: &TableInfo) -> bool {
    let mut seen = std::collections::HashSet::new();
    table
        .insert_columns()
        .filter_map(|c| c.wire_name)
        .all(|w| seen.insert(w))
}

pub(super) fn convert(
    table: &TableInfo,
    col: &ColumnInfo,
    obj: &mut Fields,
    take: bool,
    division: Option<i32>,
    synced_at: &Bound,
) -> Result<Bound, SqlError> {
    match (col.kind, division) {
        (ColumnKind::SyncedAt, _) => return Ok(synced_at.clone()),
        (ColumnKind::DeletedAt, _) => return Ok(Bound::Null),
        (ColumnKind::Division, Some(d)) => return Ok(Bound::Int(d.into())),
        _ => {}
    }
    let v = col.wire_name.and_then(|w| {
        if take {
            obj.take(w)
        } else {
            obj.get(w).cloned()
        }
    });
    convert_value(table, col, v)
}

/// One column's value from the row's JSON form (`None`: the row has no such field). A
/// `division` column read from the row must have a value; system columns are the caller's.
pub(super) fn convert_value(
    table: &TableInfo,
    col: &ColumnInfo,
    v: Option<Value>,
) -> Result<Bound, SqlError> {
    let err = |m: String| value_error(table, col, m);
    if col.kind == ColumnKind::Division {
        return match v.as_ref().and_then(|v| match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }) {
            Some(d) => Ok(Bound::Int(d)),
            None => Err(err(
                "no division given and the row has no Division value".into()
            )),
        };
    }
    let v = match v {
        None | Some(Value::Null) => return Ok(Bound::Null),
        Some(v) => v,
    };
    Ok(match col.kind {
        ColumnKind::Text | ColumnKind::Enum | ColumnKind::Duration => Bound::Text(text_of(v)),
        ColumnKind::Decimal => {
            let t = text_of(v);
            Bound::Text(if t.trim().len() == t.len() {
                t
            } else {
                t.trim().to_string()
            })
        }
        ColumnKind::Bool => Bound::Bool(match v {
            Value::Bool(b) => b,
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| err(format!("not a boolean: {s:?}")))?,
            Value::Number(n) => n.as_i64() != Some(0),
            other => return Err(err(format!("not a boolean: {other}"))),
        }),
        ColumnKind::Int16 | ColumnKind::Int32 | ColumnKind::Int64 | ColumnKind::Division => {
            Bound::Int(match v {
                Value::Number(n) => n
                    .as_i64()
                    .ok_or_else(|| err(format!("not an integer: {n}")))?,
                Value::String(s) => s
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("not an integer: {s:?}")))?,
                other => return Err(err(format!("not an integer: {other}"))),
            })
        }
        ColumnKind::Float32 | ColumnKind::Float64 => Bound::Float(match v {
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| err(format!("not a number: {n}")))?,
            Value::String(s) => match s.trim() {
                "INF" => f64::INFINITY,
                "-INF" => f64::NEG_INFINITY,
                "NaN" => f64::NAN,
                t => t.parse().map_err(|_| err(format!("not a number: {s:?}")))?,
            },
            other => return Err(err(format!("not a number: {other}"))),
        }),
        ColumnKind::Date => {
            Bound::Date(EdmDate::deserialize_as(&v).map_err(|e| err(e.to_string()))?)
        }
        ColumnKind::DateTime => {
            Bound::DateTime(EdmDateTime::deserialize_as(&v).map_err(|e| err(e.to_string()))?)
        }
        ColumnKind::DateTimeOffset => Bound::Instant(
            EdmDateTimeOffset::deserialize_as(&v)
                .map_err(|e| err(e.to_string()))?
                .with_timezone(&Utc),
        ),
        ColumnKind::Time => {
            Bound::Time(EdmTime::deserialize_as(&v).map_err(|e| err(e.to_string()))?)
        }
        ColumnKind::Uuid => {
            Bound::Uuid(uuid::Uuid::parse_str(text_of(v).trim()).map_err(|e| err(e.to_string()))?)
        }
        ColumnKind::Bytes => {
            Bound::Bytes(Base64::deserialize_as(&v).map_err(|e| err(e.to_string()))?)
        }
        ColumnKind::Json => Bound::Json(v),
        ColumnKind::SyncedAt | ColumnKind::DeletedAt => Bound::Null,
    })
}

/// UTC instants as SQLite text: RFC 3339 with `Z`, so text order is time order within a fraction
/// width (the runtime always writes what the service sent, usually milliseconds).
pub(super) fn utc_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn bind_postgres(
    args: &mut PgArguments,
    kind: ColumnKind,
    b: Bound,
) -> Result<(), sqlx::error::BoxDynError> {
    use ColumnKind as K;
    match (kind, b) {
        (K::Bool, Bound::Null) => args.add(Option::<bool>::None),
        (K::Int16, Bound::Null) => args.add(Option::<i16>::None),
        (K::Int32 | K::Division, Bound::Null) => args.add(Option::<i32>::None),
        (K::Int64, Bound::Null) => args.add(Option::<i64>::None),
        (K::Float32, Bound::Null) => args.add(Option::<f32>::None),
        (K::Float64, Bound::Null) => args.add(Option::<f64>::None),
        (K::Date, Bound::Null) => args.add(Option::<NaiveDate>::None),
        (K::DateTime, Bound::Null) => args.add(Option::<NaiveDateTime>::None),
        (K::DateTimeOffset | K::SyncedAt | K::DeletedAt, Bound::Null) => {
            args.add(Option::<DateTime<Utc>>::None)
        }
        (K::Time, Bound::Null) => args.add(Option::<NaiveTime>::None),
        (K::Uuid, Bound::Null) => args.add(Option::<uuid::Uuid>::None),
        (K::Bytes, Bound::Null) => args.add(Option::<Vec<u8>>::None),
        (K::Json, Bound::Null) => args.add(Option::<sqlx::types::Json<Value>>::None),
        (_, Bound::Null) => args.add(Option::<String>::None),
        (K::Int16, Bound::Int(v)) => args.add(i16::try_from(v)?),
        (K::Int32 | K::Division, Bound::Int(v)) => args.add(i32::try_from(v)?),
        (K::Float32, Bound::Float(v)) => args.add(v as f32),
        (_, Bound::Text(s)) => args.add(s),
        (_, Bound::Bool(v)) => args.add(v),
        (_, Bound::Int(v)) => args.add(v),
        (_, Bound::Float(v)) => args.add(v),
        (_, Bound::Date(d)) => args.add(d),
        (_, Bound::DateTime(d)) => args.add(d),
        (_, Bound::Instant(t)) => args.add(t),
        (_, Bound::Time(t)) => args.add(t),
        (_, Bound::Uuid(u)) => args.add(u),
        (_, Bound::Bytes(v)) => args.add(v),
        (_, Bound::Json(v)) => args.add(sqlx::types::Json(v)),
    }
}

/// `INSERT … VALUES ($1…), ($n…) … ON CONFLICT …` for `n` rows (PostgreSQL).
fn batch_sql(table: &TableInfo, n: usize) -> String {
    let cols: Vec<&ColumnInfo> = table.insert_columns().collect();
    let mut sql = String::with_capacity(table.insert_head.len() + n * (cols.len() * 6 + 4));
    sql.push_str(table.insert_head);
    for r in 0..n {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * cols.len() + i + 1).to_string());
            sql.push_str(c.pg_cast);
        }
        sql.push(')');
    }
    sql.push_str(table.upsert_tail);
    sql
}

/// What one statement of [`upsert_postgres`] needs besides its rows.
struct StatementInput<'a> {
    table: &'a TableInfo,
    division: Option<i32>,
    /// The batch's `synced_at`.
    synced_at: Bound,
    /// [`wire_names_unique`] of the table.
    take: bool,
}

/// One statement's SQL and arguments: `rows` converted column by column and bound.
fn postgres_args<E: Entity>(
    input: &StatementInput,
    rows: &[E],
) -> Result<(String, PgArguments), SqlError> {
    let table = input.table;
    let mut args = PgArguments::default();
    let mut objects = to_objects(table, rows)?;
    for obj in &mut objects {
        for col in table.insert_columns() {
            let b = convert(
                table,
                col,
                obj,
                input.take,
                input.division,
                &input.synced_at,
            )?;
            bind_postgres(&mut args, col.kind, b)
                .map_err(|e| value_error(table, col, e.to_string()))?;
        }
    }
    Ok((batch_sql(table, objects.len()), args))
}

/// [`upsert_batch`] on one PostgreSQL connection (or transaction: `&mut *tx`).
///
/// One statement's rows are serialised at a time (memory: a statement, not a page), and the
/// next statement's arguments are built while the server executes the last one.
pub async fn upsert_postgres<E: Entity>(
    conn: &mut PgConnection,
    table: &TableInfo,
    division: Option<i32>,
    rows: &[E],
    synced_at: DateTime<Utc>,
) -> Result<u64, SqlError> {
    let input = StatementInput {
        table,
        division: division.filter(|_| table.division),
        synced_at: Bound::Instant(synced_at),
        take: wire_names_unique(table),
    };
    let mut chunks = chunk_rows(table, POSTGRES_BIND_LIMIT.min(STATEMENT_PARAMS), rows);
    let mut next = chunks
        .next()
        .map(|c| postgres_args(&input, c))
        .transpose()?;
    let mut written = 0;
    while let Some((sql, args)) = next.take() {
        let exec = sqlx::query_with(AssertSqlSafe(sql), args).execute(&mut *conn);
        let build = async { chunks.next().map(|c| postgres_args(&input, c)).transpose() };
        let (done, built) = futures_util::future::join(exec, build).await;
        written += done?.rows_affected();
        next = built?;
    }
    Ok(written)
}

fn read_sql(table: &TableInfo, division: Option<i32>, filter: Option<&str>, pg: bool) -> String {
    let mut sql = String::from(if pg {
        table.select_postgres
    } else {
        table.select_sqlite
    });
    let mut conds = Vec::new();
    if table.division && division.is_some() {
        conds.push(format!("\"division\" = {}", if pg { "$1" } else { "?" }));
    }
    if let Some(f) = filter {
        conds.push(format!("({f})"));
    }
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    if !table.primary_key.is_empty() {
        let pk: Vec<String> = table.primary_key.iter().map(|k| quote_ident(k)).collect();
        sql.push_str(" ORDER BY ");
        sql.push_str(&pk.join(", "));
    }
    sql
}

fn finish<E: Entity>(table: &TableInfo, obj: Map<String, Value>) -> Result<E, SqlError> {
    serde_json::from_value(Value::Object(obj)).map_err(|source| SqlError::Json {
        table: table.name.to_string(),
        source,
    })
}

fn float_json(v: f64) -> Value {
    if v.is_nan() {
        Value::String("NaN".into())
    } else if v.is_infinite() {
        Value::String(if v > 0.0 { "INF" } else { "-INF" }.into())
    } else {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn bytes_json(v: Vec<u8>) -> Value {
    Base64::serialize_as(&v, serde_json::value::Serializer).unwrap_or(Value::Null)
}

/// Where a column's value goes in the row's JSON object (`None`: not a property).
fn target(col: &ColumnInfo) -> Option<&'static str> {
    match col.kind {
        ColumnKind::SyncedAt | ColumnKind::DeletedAt => None,
        _ => col.wire_name,
    }
}

/// One SQLite row of `table` (selected with [`TableInfo::select_sqlite`]) as its JSON object
/// (wire names; what the entity type deserialises from).
pub fn sqlite_object(table: &TableInfo, row: &SqliteRow) -> Result<Map<String, Value>, SqlError> {
    let mut obj = Map::new();
    for (i, col) in table.columns.iter().enumerate() {
        let Some(wire) = target(col) else { continue };
        let v = match col.kind {
            ColumnKind::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
            ColumnKind::Int16 | ColumnKind::Int32 | ColumnKind::Int64 | ColumnKind::Division => {
                row.try_get::<Option<i64>, _>(i)?.map(Value::from)
            }
            ColumnKind::Float32 | ColumnKind::Float64 => {
                row.try_get::<Option<f64>, _>(i)?.map(float_json)
            }
            ColumnKind::Bytes => row.try_get::<Option<Vec<u8>>, _>(i)?.map(bytes_json),
            ColumnKind::Json => match row.try_get::<Option<String>, _>(i)? {
                Some(s) => Some(
                    serde_json::from_str(&s).map_err(|e| value_error(table, col, e.to_string()))?,
                ),
                None => None,
            },
            _ => row.try_get::<Option<String>, _>(i)?.map(Value::String),
        };
        obj.insert(wire.to_string(), v.unwrap_or(Value::Null));
    }
    Ok(obj)
}

/// One PostgreSQL row of `table` (selected with [`TableInfo::select_postgres`]) as its JSON
/// object.
pub fn pg_object(table: &TableInfo, row: &PgRow) -> Result<Map<String, Value>, SqlError> {
    let mut obj = Map::new();
    for (i, col) in table.columns.iter().enumerate() {
        let Some(wire) = target(col) else { continue };
        let v = match col.kind {
            ColumnKind::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
            ColumnKind::Int16 => row.try_get::<Option<i16>, _>(i)?.map(Value::from),
            ColumnKind::Int32 | ColumnKind::Division => {
                row.try_get::<Option<i32>, _>(i)?.map(Value::from)
            }
            ColumnKind::Int64 => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
            ColumnKind::Float32 => row
                .try_get::<Option<f32>, _>(i)?
                .map(|v| float_json(f64::from(v))),
            ColumnKind::Float64 => row.try_get::<Option<f64>, _>(i)?.map(float_json),
            ColumnKind::Date => row
                .try_get::<Option<NaiveDate>, _>(i)?
                .map(|d| Value::String(d.format("%Y-%m-%d").to_string())),
            ColumnKind::DateTime => row
                .try_get::<Option<NaiveDateTime>, _>(i)?
                .map(|d| Value::String(d.format("%Y-%m-%dT%H:%M:%S%.f").to_string())),
            ColumnKind::DateTimeOffset => row
                .try_get::<Option<DateTime<Utc>>, _>(i)?
                .map(|t| Value::String(utc_text(&t))),
            ColumnKind::Time => row
                .try_get::<Option<NaiveTime>, _>(i)?
                .map(|t| Value::String(t.format("%H:%M:%S%.f").to_string())),
            ColumnKind::Uuid => row
                .try_get::<Option<uuid::Uuid>, _>(i)?
                .map(|u| Value::String(u.hyphenated().to_string())),
            ColumnKind::Bytes => row.try_get::<Option<Vec<u8>>, _>(i)?.map(bytes_json),
            ColumnKind::Json => row
                .try_get::<Option<sqlx::types::Json<Value>>, _>(i)?
                .map(|j| j.0),
            _ => row.try_get::<Option<String>, _>(i)?.map(Value::String),
        };
        obj.insert(wire.to_string(), v.unwrap_or(Value::Null));
    }
    Ok(obj)
}

/// [`read_rows`] on one SQLite connection.
pub async fn read_rows_sqlite<E: Entity>(
    conn: &mut SqliteConnection,
    table: &TableInfo,
    division: Option<i32>,
    filter: Option<&str>,
) -> Result<Vec<E>, SqlError> {
    let sql = read_sql(table, division, filter, false);
    let mut q = sqlx::query(AssertSqlSafe(sql));
    if let (true, Some(d)) = (table.division, division) {
        q = q.bind(d);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| finish(table, sqlite_object(table, r)?))
        .collect()
}

/// [`read_rows`] on one PostgreSQL connection.
pub async fn read_rows_postgres<E: Entity>(
    conn: &mut PgConnection,
    table: &TableInfo,
    division: Option<i32>,
    filter: Option<&str>,
) -> Result<Vec<E>, SqlError> {
    let sql = read_sql(table, division, filter, true);
    let mut q = sqlx::query(AssertSqlSafe(sql));
    if let (true, Some(d)) = (table.division, division) {
        q = q.bind(d);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| finish(table, pg_object(table, r)?))
        .collect()
}

/// A generic `FromRow` for every generated entity with a table: `sqlx::query_as::<_, Row<E>>`
/// over `E::TABLE.select_sqlite` / `select_postgres` (columns in table order) yields `Row(e)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<E>(pub E);

impl<E> Row<E> {
    pub fn into_inner(self) -> E {
        self.0
    }
}

fn decode_err(e: SqlError) -> sqlx::Error {
    match e {
        SqlError::Sqlx(e) => e,
        other => sqlx::Error::Decode(Box::new(other)),
    }
}

impl<'r, E: Table> sqlx::FromRow<'r, SqliteRow> for Row<E> {
    fn from_row(row: &'r SqliteRow) -> Result<Self, sqlx::Error> {
        let obj = sqlite_object(E::TABLE, row).map_err(decode_err)?;
        finish(E::TABLE, obj).map(Row).map_err(decode_err)
    }
}

impl<'r, E: Table> sqlx::FromRow<'r, PgRow> for Row<E> {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let obj = pg_object(E::TABLE, row).map_err(decode_err)?;
        finish(E::TABLE, obj).map(Row).map_err(decode_err)
    }
}
