//! Change files out (`odatasync sync --export DIR`): after a batch, the rows each run changed,
//! per entity and division, as gzip-compressed JSON Lines plus a message file in the shape of
//! the file-export feed (seed 004: `blobType`, `correlationId`, `uri`, `contentType`,
//! `contentEncoding`, `properties`), so that a subscriber (or `odatasync ingest`) can load them.
//!
//! * A data file holds one JSON object per row, keyed by the service's wire names (the form
//!   the runtime reads rows back into entity types), so a producer's files of the same shape
//!   ingest too. A row the source deleted carries `"@removed": {"reason": "deleted",
//!   "deletedAt": ...}` (OData 4.01 JSON §15's delta annotation) besides its last values.
//! * "Changed in this run" is read from the tables, not kept in memory: rows of the (table,
//!   division) whose `synced_at` or `deleted_at` is at or after the batch's start. Rows are
//!   streamed from the database through the gzip encoder: never the whole table in memory.
//! * Files appear atomically: each is written under a hidden temporary name (`.NAME.tmp`) in
//!   DIR, fsynced, renamed, and the directory fsynced; the data file first, its message file
//!   last. A consumer that polls DIR for `*.message.json` therefore never sees half a file
//!   and always finds the data file a message points at.

use crate::error::Error;
use crate::plan::PlannedEntity;
use crate::run::BatchReport;
use crate::service::Service;
use chrono::{DateTime, SecondsFormat, Utc};
use flate2::write::GzEncoder;
use flate2::Compression;
use futures_util::TryStreamExt;
use odata_runtime::sql::sqlx::{self, AssertSqlSafe, Row as _};
use odata_runtime::sql::{pg_object, sqlite_object, Db};
use odata_runtime::{ColumnKind, TableInfo};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// `contentType` of a data file.
pub const CONTENT_TYPE: &str = "application/jsonl";
/// `contentEncoding` of a data file.
pub const CONTENT_ENCODING: &str = "gzip";
/// Name ending of a data file.
pub const DATA_SUFFIX: &str = ".jsonl.gz";
/// Name ending of a message file.
pub const MESSAGE_SUFFIX: &str = ".message.json";
/// The annotation that marks a deleted row in a data file.
pub const REMOVED: &str = "@removed";

/// A message file: the file-export feed's metadata of one data file (seed 004).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The entity (config.json name, or entity set) whose rows the file holds.
    pub blob_type: String,
    /// The batch the file belongs to.
    pub correlation_id: String,
    /// Where the data file is (`file://` URL, or a name relative to the message file).
    pub uri: String,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// Ours: `service`, `entitySet`, `table`, `division`, `rows`, `deleted`, `since`.
    #[serde(default)]
    pub properties: Map<String, Value>,
}

impl Message {
    /// `properties.division`, when the file is of one division.
    pub fn division(&self) -> Option<i32> {
        self.properties
            .get("division")
            .and_then(Value::as_i64)
            .and_then(|d| i32::try_from(d).ok())
    }

    /// `properties.rows`.
    pub fn rows(&self) -> Option<u64> {
        self.properties.get("rows").and_then(Value::as_u64)
    }

    /// `properties.deleted`.
    pub fn deleted(&self) -> Option<u64> {
        self.properties.get("deleted").and_then(Value::as_u64)
    }
}

/// One data file written, with its message file.
#[derive(Debug, Clone)]
pub struct ExportedFile {
    pub entity: String,
    pub table: &'static str,
    pub division: Option<i32>,
    pub data: PathBuf,
    pub message: PathBuf,
    /// Rows in the file (deleted ones included).
    pub rows: u64,
    /// Rows marked deleted.
    pub deleted: u64,
}

impl ExportedFile {
    /// `ENTITY [DIVISION]: N rows (M deleted) → FILE`.
    pub fn summary(&self) -> String {
        format!(
            "{} [{}]: {} rows ({} deleted) -> {}",
            self.entity,
            self.division
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            self.rows,
            self.deleted,
            self.data.display()
        )
    }
}

/// Writes the change files of a finished batch: for every (table, division) the batch ran
/// (failed runs too: their committed pages are changes), the rows written or deleted since
/// `since` (the time the batch started). A deletion-log run (`sync/Deleted`) adds every table of
/// its division (it sets `deleted_at` elsewhere). Files without rows are not written.
pub async fn export_batch(
    db: &Db,
    service: &Service,
    plan: &[PlannedEntity],
    report: &BatchReport,
    since: DateTime<Utc>,
    dir: &Path,
) -> Result<Vec<ExportedFile>, Error> {
    let mut targets: Vec<(&'static TableInfo, Option<i32>)> = Vec::new();
    let mut add = |t: &'static TableInfo, d: Option<i32>| {
        let d = d.filter(|_| t.division);
        if !targets.iter().any(|(x, y)| x.name == t.name && *y == d) {
            targets.push((t, d));
        }
    };
    for o in &report.outcomes {
        let Some(p) = plan.iter().find(|p| p.name == o.entity) else {
            continue;
        };
        if p.is_deletion_log {
            for t in service.tables.iter().filter(|t| t.division) {
                add(t, o.division);
            }
        } else {
            add(p.table, o.division);
        }
    }
    let mut out = Vec::new();
    for (t, d) in targets {
        if let Some(f) =
            export_changes(db, &service.name, t, d, since, &report.batch_id, dir).await?
        {
            out.push(f);
        }
    }
    Ok(out)
}

/// A name safe in any file system (letters, digits, `-`, `_`, `.`; others become `_`).
fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes the rows of `table` (in `division`) written or deleted at or after `since` as one data
/// file and its message file in `dir` (created when missing). `None`: no such rows, nothing
/// written.
pub async fn export_changes(
    db: &Db,
    service: &str,
    table: &'static TableInfo,
    division: Option<i32>,
    since: DateTime<Utc>,
    correlation_id: &str,
    dir: &Path,
) -> Result<Option<ExportedFile>, Error> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        Error::Other(format!("export: {what} {}: {e}", p.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
    let dir = dir.canonicalize().map_err(|e| io("cannot open", dir, e))?;
    let division = division.filter(|_| table.division);
    let base = match division {
        Some(d) => format!(
            "{}_{}_{d}",
            safe_name(correlation_id),
            safe_name(table.entity)
        ),
        None => format!("{}_{}", safe_name(correlation_id), safe_name(table.entity)),
    };
    let data_name = format!("{base}{DATA_SUFFIX}");
    let data_path = dir.join(&data_name);
    let tmp_path = dir.join(format!(".{data_name}.tmp"));
    let file = std::fs::File::create(&tmp_path).map_err(|e| io("cannot create", &tmp_path, e))?;
    let mut enc = GzEncoder::new(BufWriter::new(file), Compression::default());
    let written = write_rows(db, table, division, since, &mut enc).await;
    let (rows, deleted) = match written {
        Ok(n) => n,
        Err(e) => {
            drop(enc);
            let _ = std::fs::remove_file(&tmp_path);
            return Err(e);
        }
    };
    let finish = enc
        .finish()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()));
    let file = match finish {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp_path);
            return Err(io("cannot write", &tmp_path, e));
        }
    };
    if rows == 0 {
        drop(file);
        let _ = std::fs::remove_file(&tmp_path);
        return Ok(None);
    }
    file.sync_all()
        .map_err(|e| io("cannot sync", &tmp_path, e))?;
    drop(file);
    publish(&tmp_path, &data_path, &dir)?;

    let uri = url::Url::from_file_path(&data_path)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| data_name.clone());
    let mut properties = Map::new();
    properties.insert("service".into(), json!(service));
    properties.insert("entitySet".into(), json!(table.entity_set));
    properties.insert("table".into(), json!(table.name));
    if let Some(d) = division {
        properties.insert("division".into(), json!(d));
    }
    properties.insert("rows".into(), json!(rows));
    properties.insert("deleted".into(), json!(deleted));
    properties.insert(
        "since".into(),
        json!(since.to_rfc3339_opts(SecondsFormat::Micros, true)),
    );
    let message = Message {
        blob_type: table.entity.to_string(),
        correlation_id: correlation_id.to_string(),
        uri,
        content_type: CONTENT_TYPE.to_string(),
        content_encoding: Some(CONTENT_ENCODING.to_string()),
        properties,
    };
    let message_path = dir.join(format!("{base}{MESSAGE_SUFFIX}"));
    let tmp_message = dir.join(format!(".{base}{MESSAGE_SUFFIX}.tmp"));
    let text = serde_json::to_vec_pretty(&message)
        .map_err(|e| Error::Other(format!("export: message: {e}")))?;
    {
        let mut f = std::fs::File::create(&tmp_message)
            .map_err(|e| io("cannot create", &tmp_message, e))?;
        f.write_all(&text)
            .and_then(|_| f.write_all(b"\n"))
            .and_then(|_| f.sync_all())
            .map_err(|e| io("cannot write", &tmp_message, e))?;
    }
    publish(&tmp_message, &message_path, &dir)?;
    Ok(Some(ExportedFile {
        entity: table.entity.to_string(),
        table: table.name,
        division,
        data: data_path,
        message: message_path,
        rows,
        deleted,
    }))
}

/// Renames a complete, fsynced temporary file to its name and fsyncs the directory, so the
/// name never points at a partial file, even after a crash.
fn publish(tmp: &Path, to: &Path, dir: &Path) -> Result<(), Error> {
    std::fs::rename(tmp, to).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        Error::Other(format!(
            "export: cannot rename {} to {}: {e}",
            tmp.display(),
            to.display()
        ))
    })?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The `SELECT` of the rows changed since `since` (parameters: division when given, then
/// `since`).
fn changed_sql(table: &TableInfo, division: Option<i32>, pg: bool) -> String {
    let mut sql = String::from(if pg {
        table.select_postgres
    } else {
        table.select_sqlite
    });
    let mut n = 0;
    let mut param = || {
        n += 1;
        if pg {
            format!("${n}")
        } else {
            "?".to_string()
        }
    };
    sql.push_str(" WHERE ");
    if division.is_some() {
        sql.push_str(&format!("\"division\" = {} AND ", param()));
    }
    if pg {
        let p = param();
        sql.push_str(&format!("(\"synced_at\" >= {p} OR \"deleted_at\" >= {p})"));
    } else {
        // Text instants of varying fraction widths: compare as Julian days.
        let p = param();
        let q = param();
        sql.push_str(&format!(
            "(julianday(\"synced_at\") >= julianday({p}) OR julianday(\"deleted_at\") >= julianday({q}))"
        ));
    }
    if !table.primary_key.is_empty() {
        let pk: Vec<String> = table
            .primary_key
            .iter()
            .map(|k| odata_runtime::sql::quote_ident(k))
            .collect();
        sql.push_str(" ORDER BY ");
        sql.push_str(&pk.join(", "));
    }
    sql
}

/// Streams the changed rows into `out`, one JSON object a line. Returns (rows, deleted).
async fn write_rows(
    db: &Db,
    table: &'static TableInfo,
    division: Option<i32>,
    since: DateTime<Utc>,
    out: &mut impl Write,
) -> Result<(u64, u64), Error> {
    if table.column("synced_at").is_none() || table.column("deleted_at").is_none() {
        return Ok((0, 0));
    }
    let mut rows = 0u64;
    let mut deleted = 0u64;
    // One write a row: the gzip encoder is slow on serde_json's many small writes.
    let mut line: Vec<u8> = Vec::with_capacity(4096);
    let mut emit = |mut obj: Map<String, Value>, deleted_at: Option<String>| {
        if let Some(at) = deleted_at {
            deleted += 1;
            obj.insert(
                REMOVED.to_string(),
                json!({"reason": "deleted", "deletedAt": at}),
            );
        }
        rows += 1;
        line.clear();
        serde_json::to_writer(&mut line, &obj)
            .map_err(std::io::Error::other)
            .and_then(|_| {
                line.push(b'\n');
                out.write_all(&line)
            })
            .map_err(|e| Error::Other(format!("export {}: {e}", table.name)))
    };
    let del_idx = table
        .columns
        .iter()
        .position(|c| c.kind == ColumnKind::DeletedAt);
    match db {
        Db::Sqlite(p) => {
            let sql = changed_sql(table, division, false);
            let since = since.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            let mut q = sqlx::query(AssertSqlSafe(sql));
            if let Some(d) = division {
                q = q.bind(d);
            }
            q = q.bind(since.clone()).bind(since);
            let mut conn = p.acquire().await?;
            let mut stream = q.fetch(&mut *conn);
            while let Some(row) = stream.try_next().await? {
                let obj = sqlite_object(table, &row)?;
                let del = match del_idx {
                    Some(i) => row.try_get::<Option<String>, _>(i)?,
                    None => None,
                };
                emit(obj, del)?;
            }
        }
        Db::Postgres(p) => {
            let sql = changed_sql(table, division, true);
            let mut q = sqlx::query(AssertSqlSafe(sql));
            if let Some(d) = division {
                q = q.bind(d);
            }
            q = q.bind(since);
            let mut conn = p.acquire().await?;
            let mut stream = q.fetch(&mut *conn);
            while let Some(row) = stream.try_next().await? {
                let obj = pg_object(table, &row)?;
                let del = match del_idx {
                    Some(i) => row
                        .try_get::<Option<DateTime<Utc>>, _>(i)?
                        .map(|t| utc_text(&t)),
                    None => None,
                };
                emit(obj, del)?;
            }
        }
    }
    Ok((rows, deleted))
}

fn utc_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
