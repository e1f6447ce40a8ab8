//! Change files in (`odatasync ingest`): loads data files (gzip-compressed or plain JSON
//! Lines, one entity row a line in wire names; ours from `sync --export`, or a producer's of the
//! same shape) into the generated tables through the same upsert path as a sync.
//!
//! * One transaction per file: a corrupt gzip stream, a line that is not JSON or not a row of
//!   the entity, or an unknown entity stops that file with an error naming the file and the
//!   line, and nothing of it is committed; the other files go on.
//! * Related entities may arrive in any order (a line before its header, a price before its
//!   item): the tables have no foreign keys, so loading never fails on a missing parent.
//!   [`dangling_references`] lists the references whose parent row is not (yet) there; they
//!   resolve when the parent's file is loaded.
//! * A row with `"@removed"` (see [`crate::export`]) is stored and marked `deleted_at`.

use crate::error::Error;
use crate::export::{Message, DATA_SUFFIX, MESSAGE_SUFFIX, REMOVED};
use crate::service::Service;
use chrono::{DateTime, SecondsFormat, Utc};
use flate2::read::MultiGzDecoder;
use futures_util::future::BoxFuture;
use odata_runtime::sql::sqlx::{self, AssertSqlSafe};
use odata_runtime::sql::{quote_ident, upsert_postgres, upsert_sqlite, Db};
use odata_runtime::{ColumnKind, Entity, TableInfo, TableVisitor};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Rows handed to one upsert call (the upsert splits them under the backend's bind cap).
const ROWS_PER_UPSERT: usize = 2000;

/// How files are read.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// The entity of the files (config.json name, entity set or table name); overrides a
    /// message's `blobType`; needed for data files that come without a message file.
    pub entity: Option<String>,
    /// The division of the rows (overrides the message's `properties.division`; without
    /// either, each row's own `Division`).
    pub division: Option<i32>,
}

/// What became of one file.
#[derive(Debug, Clone)]
pub struct FileOutcome {
    /// The data file (or the argument, when it could not be resolved to one).
    pub file: PathBuf,
    pub entity: Option<String>,
    pub division: Option<i32>,
    /// Rows committed (deleted ones included).
    pub rows: u64,
    pub deleted: u64,
    /// Why nothing of the file was committed.
    pub error: Option<String>,
    pub elapsed: Duration,
}

/// References of one (table, property) whose parent row is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dangling {
    pub table: &'static str,
    pub entity: &'static str,
    pub property: &'static str,
    /// The entity set the property refers to.
    pub target: &'static str,
    /// Rows (not deleted) whose reference has no parent row.
    pub rows: i64,
    /// One of the missing keys.
    pub example: Option<String>,
}

/// Everything an ingest did.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub files: Vec<FileOutcome>,
    /// After loading: the dangling references of the service's tables.
    pub dangling: Vec<Dangling>,
}

impl IngestReport {
    /// 0: every file committed; 1: some file failed.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.files.iter().any(|f| f.error.is_some()))
    }

    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    /// The report for the terminal: a line per file, then the dangling references.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for f in &self.files {
            let div = f.division.map(|d| format!(" [{d}]")).unwrap_or_default();
            match &f.error {
                None => s.push_str(&format!(
                    "{}: {}{div}: {} rows ({} deleted) committed in {:.2} s\n",
                    f.file.display(),
                    f.entity.as_deref().unwrap_or("?"),
                    f.rows,
                    f.deleted,
                    f.elapsed.as_secs_f64()
                )),
                Some(e) => s.push_str(&format!("FAILED (nothing committed): {e}\n")),
            }
        }
        let ok = self.files.iter().filter(|f| f.error.is_none()).count();
        s.push_str(&format!(
            "{} files: {ok} committed, {} failed; {} rows\n",
            self.files.len(),
            self.files.len() - ok,
            self.rows()
        ));
        if self.dangling.is_empty() {
            s.push_str("dangling references: none\n");
        } else {
            let total: i64 = self.dangling.iter().map(|d| d.rows).sum();
            s.push_str(&format!(
                "dangling references: {total} (rows whose parent is not loaded yet; they resolve when it arrives)\n"
            ));
            for d in &self.dangling {
                s.push_str(&format!(
                    "  {}.{} -> {}: {} rows{}\n",
                    d.entity,
                    d.property,
                    d.target,
                    d.rows,
                    d.example
                        .as_deref()
                        .map(|e| format!(" (e.g. {e})"))
                        .unwrap_or_default()
                ));
            }
        }
        s
    }
}

/// One file to load.
struct Job {
    data: PathBuf,
    message: Option<(PathBuf, String, Message)>,
}

/// The table of an entity name: config.json name, else entity set, else table name.
pub fn table_of(service: &Service, name: &str) -> Option<&'static TableInfo> {
    service
        .table(name)
        .or_else(|| service.tables.iter().find(|t| t.entity_set == name))
        .or_else(|| service.tables.iter().find(|t| t.name == name))
}

/// The 1-based line of the first occurrence of `needle` in `text` (1 when absent).
fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map(|i| text[..i].matches('\n').count() + 1)
        .unwrap_or(1)
}

fn read_message(path: &Path) -> Result<(String, Message), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let m: Message = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}:{}:{}: not a change-file message: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    Ok((text, m))
}

/// The data file a message points at: its `uri` (a `file://` URL or a path relative to the
/// message file); when that is not here (files copied elsewhere, or a blob URL), the file of
/// the same name beside the message file.
fn data_of(message_path: &Path, m: &Message) -> Result<PathBuf, String> {
    let here = message_path.parent().unwrap_or(Path::new("."));
    let (direct, name) = match url::Url::parse(&m.uri) {
        Ok(u) => {
            let name = u
                .path_segments()
                .and_then(|mut s| s.next_back())
                .map(str::to_string);
            let direct = if u.scheme() == "file" {
                u.to_file_path().ok()
            } else {
                None
            };
            (direct, name)
        }
        Err(_) => {
            let p = here.join(&m.uri);
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            (Some(p), name)
        }
    };
    if let Some(p) = direct.filter(|p| p.is_file()) {
        return Ok(p);
    }
    if let Some(p) = name.map(|n| here.join(n)).filter(|p| p.is_file()) {
        return Ok(p);
    }
    Err(format!(
        "{}:{}: the data file {:?} (uri) is not there",
        message_path.display(),
        line_of(
            &std::fs::read_to_string(message_path).unwrap_or_default(),
            "\"uri\""
        ),
        m.uri
    ))
}

/// The message file beside a data file (`X.jsonl.gz` → `X.message.json`), when there is one.
fn message_beside(data: &Path) -> Option<PathBuf> {
    let name = data.file_name()?.to_string_lossy().into_owned();
    let base = name
        .strip_suffix(DATA_SUFFIX)
        .or_else(|| name.strip_suffix(".jsonl"))
        .or_else(|| name.strip_suffix(".json.gz"))?;
    let p = data.with_file_name(format!("{base}{MESSAGE_SUFFIX}"));
    p.is_file().then_some(p)
}

fn is_message(path: &Path) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy().ends_with(MESSAGE_SUFFIX))
        .unwrap_or(false)
}

/// Arguments → files to load: a message file (its data file), a data file (with the message
/// file beside it, if any), or a folder (its message files, in name order).
fn jobs(inputs: &[PathBuf]) -> (Vec<Job>, Vec<FileOutcome>) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut failed = Vec::new();
    let fail = |file: &Path, e: String| FileOutcome {
        file: file.to_path_buf(),
        entity: None,
        division: None,
        rows: 0,
        deleted: 0,
        error: Some(e),
        elapsed: Duration::ZERO,
    };
    let mut args: Vec<PathBuf> = Vec::new();
    for p in inputs {
        if p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(rd) => {
                    let mut ms: Vec<PathBuf> = rd
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|x| is_message(x))
                        .collect();
                    ms.sort();
                    args.extend(ms);
                }
                Err(e) => failed.push(fail(p, format!("{}: {e}", p.display()))),
            }
        } else {
            args.push(p.clone());
        }
    }
    for p in args {
        let job = if is_message(&p) {
            read_message(&p).and_then(|(text, m)| {
                Ok(Job {
                    data: data_of(&p, &m)?,
                    message: Some((p.clone(), text, m)),
                })
            })
        } else if !p.is_file() {
            Err(format!("{}: no such file", p.display()))
        } else {
            match message_beside(&p) {
                Some(mp) => read_message(&mp).map(|(text, m)| Job {
                    data: p.clone(),
                    message: Some((mp, text, m)),
                }),
                None => Ok(Job {
                    data: p.clone(),
                    message: None,
                }),
            }
        };
        match job {
            Ok(j) => {
                let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
                if !jobs.iter().any(|x| canon(&x.data) == canon(&j.data)) {
                    jobs.push(j);
                }
            }
            Err(e) => failed.push(fail(&p, e)),
        }
    }
    (jobs, failed)
}

/// Loads `inputs` (message files, data files, folders) into the service's tables, one
/// transaction per file, then lists the dangling references.
pub async fn ingest(
    db: &Db,
    service: &Service,
    inputs: &[PathBuf],
    opts: &IngestOptions,
) -> Result<IngestReport, Error> {
    let mut report = IngestReport {
        files: ingest_files(db, service, inputs, opts).await,
        dangling: Vec::new(),
    };
    report.dangling = dangling_references(db, service).await?;
    Ok(report)
}

/// [`ingest`] without the dangling-reference report.
pub async fn ingest_files(
    db: &Db,
    service: &Service,
    inputs: &[PathBuf],
    opts: &IngestOptions,
) -> Vec<FileOutcome> {
    let (jobs, mut out) = jobs(inputs);
    for job in jobs {
        out.push(ingest_job(db, service, &job, opts).await);
    }
    out
}

async fn ingest_job(db: &Db, service: &Service, job: &Job, opts: &IngestOptions) -> FileOutcome {
    let started = Instant::now();
    let mut outcome = FileOutcome {
        file: job.data.clone(),
        entity: None,
        division: None,
        rows: 0,
        deleted: 0,
        error: None,
        elapsed: Duration::ZERO,
    };
    let name = match (&opts.entity, &job.message) {
        (Some(e), _) => Ok(e.clone()),
        (None, Some((_, _, m))) => Ok(m.blob_type.clone()),
        (None, None) => Err(format!(
            "{}:1: unknown entity: no message file beside it ({}); name it with --entity",
            job.data.display(),
            MESSAGE_SUFFIX
        )),
    };
    let table = name.and_then(|n| {
        table_of(service, &n).ok_or_else(|| {
            let known: Vec<&str> = service.tables.iter().map(|t| t.entity).collect();
            let place = match (&opts.entity, &job.message) {
                (None, Some((mp, text, _))) => {
                    format!("{}:{}", mp.display(), line_of(text, "\"blobType\""))
                }
                _ => format!("{} (--entity)", job.data.display()),
            };
            format!(
                "{place}: unknown entity {n:?} of service {} (entities: {})",
                service.name,
                known.join(", ")
            )
        })
    });
    let table = match table {
        Ok(t) => t,
        Err(e) => {
            outcome.error = Some(e);
            return outcome;
        }
    };
    outcome.entity = Some(table.entity.to_string());
    let division = opts
        .division
        .or_else(|| job.message.as_ref().and_then(|(_, _, m)| m.division()))
        .filter(|_| table.division);
    outcome.division = division;
    let gzip = job
        .message
        .as_ref()
        .and_then(|(_, _, m)| m.content_encoding.as_deref())
        .is_some_and(|e| e.eq_ignore_ascii_case("gzip"))
        || job.data.to_string_lossy().ends_with(".gz");
    let file = FileJob {
        db,
        table,
        path: &job.data,
        division,
        gzip,
        synced_at: Utc::now(),
    };
    let mut v = LoadVisitor {
        file: &file,
        fut: None,
    };
    generated::visit_tables(&service.name, &mut v);
    let res = match v.fut {
        Some(f) => f.await,
        None => Err(format!(
            "{}: no generated type for table {}",
            job.data.display(),
            table.name
        )),
    };
    match res {
        Ok((rows, deleted)) => {
            outcome.rows = rows;
            outcome.deleted = deleted;
        }
        Err(e) => outcome.error = Some(e),
    }
    outcome.elapsed = started.elapsed();
    outcome
}

/// One data file to load into one table.
struct FileJob<'a> {
    db: &'a Db,
    table: &'static TableInfo,
    path: &'a Path,
    division: Option<i32>,
    gzip: bool,
    synced_at: DateTime<Utc>,
}

struct LoadVisitor<'a> {
    file: &'a FileJob<'a>,
    fut: Option<BoxFuture<'a, Result<(u64, u64), String>>>,
}

impl<'a> TableVisitor for LoadVisitor<'a> {
    fn visit<E: Entity + PartialEq>(&mut self, table: &'static TableInfo) {
        if self.fut.is_none() && table.name == self.file.table.name {
            self.fut = Some(Box::pin(load_file::<E>(self.file)));
        }
    }
}

/// An open transaction on either backend.
enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Rows read but not yet written, with where they came from.
struct Pending<E> {
    rows: Vec<E>,
    first_line: usize,
    last_line: usize,
    /// Key (as JSON text) → (key values, deleted at) of rows marked `@removed`; a later live
    /// row with the same key removes its entry.
    removed: HashMap<String, (Vec<Value>, String)>,
}

/// Reads the file line by line into a transaction; commits only when every line loaded.
async fn load_file<E: Entity>(f: &FileJob<'_>) -> Result<(u64, u64), String> {
    let shown = f.path.display().to_string();
    let raw = std::fs::File::open(f.path).map_err(|e| format!("{shown}: {e}"))?;
    let mut raw = BufReader::with_capacity(256 * 1024, raw);
    let magic = raw.fill_buf().map_err(|e| format!("{shown}: {e}"))?;
    let gzip = f.gzip || magic.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn BufRead + Send> = if gzip {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            MultiGzDecoder::new(raw),
        ))
    } else {
        Box::new(raw)
    };
    let table = f.table;
    let key_cols: Vec<(&'static str, ColumnKind, Option<&'static str>)> = table
        .primary_key
        .iter()
        .filter_map(|k| table.column(k))
        .map(|c| (c.name, c.kind, c.wire_name))
        .collect();
    let mut tx = match f.db {
        Db::Sqlite(p) => Tx::Sqlite(p.begin().await.map_err(|e| format!("{shown}: {e}"))?),
        Db::Postgres(p) => Tx::Postgres(p.begin().await.map_err(|e| format!("{shown}: {e}"))?),
    };
    let mut pending = Pending::<E> {
        rows: Vec::with_capacity(ROWS_PER_UPSERT),
        first_line: 1,
        last_line: 0,
        removed: HashMap::new(),
    };
    let (mut rows, mut deleted) = (0u64, 0u64);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut line = 0usize;
    loop {
        buf.clear();
        line += 1;
        let n = reader.read_until(b'\n', &mut buf).map_err(|e| {
            if gzip {
                format!("{shown}:{line}: corrupt gzip data: {e}")
            } else {
                format!("{shown}:{line}: {e}")
            }
        })?;
        if n == 0 {
            break;
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value = serde_json::from_slice(&buf)
            .map_err(|e| format!("{shown}:{line}:{}: bad JSON line: {e}", e.column()))?;
        let Value::Object(mut obj) = v else {
            return Err(format!("{shown}:{line}: not a JSON object"));
        };
        let removed = obj.remove(REMOVED).or_else(|| obj.remove("@odata.removed"));
        let key = key_values(&key_cols, &obj, f.division);
        let key_text = serde_json::to_string(&key).unwrap_or_default();
        let row: E = serde_json::from_value(Value::Object(obj)).map_err(|e| {
            format!(
                "{shown}:{line}: not a row of {} ({}): {e}",
                table.entity, table.entity_type
            )
        })?;
        match removed {
            Some(r) => {
                let at = r
                    .get("deletedAt")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| f.synced_at.to_rfc3339_opts(SecondsFormat::Micros, true));
                pending.removed.insert(key_text, (key, at));
            }
            None => {
                pending.removed.remove(&key_text);
            }
        }
        if pending.rows.is_empty() {
            pending.first_line = line;
        }
        pending.last_line = line;
        pending.rows.push(row);
        rows += 1;
        if pending.rows.len() >= ROWS_PER_UPSERT {
            deleted += flush(&mut tx, f, &key_cols, &mut pending, &shown).await?;
        }
    }
    deleted += flush(&mut tx, f, &key_cols, &mut pending, &shown).await?;
    match tx {
        Tx::Sqlite(t) => t.commit().await,
        Tx::Postgres(t) => t.commit().await,
    }
    .map_err(|e| format!("{shown}: commit: {e}"))?;
    Ok((rows, deleted))
}

/// The key values of a row, in primary-key order (the division column: the file's division,
/// else the row's `Division`).
fn key_values(
    key_cols: &[(&'static str, ColumnKind, Option<&'static str>)],
    obj: &Map<String, Value>,
    division: Option<i32>,
) -> Vec<Value> {
    key_cols
        .iter()
        .map(|(_, kind, wire)| match (kind, division) {
            (ColumnKind::Division, Some(d)) => Value::from(d),
            _ => wire
                .and_then(|w| obj.get(w))
                .cloned()
                .unwrap_or(Value::Null),
        })
        .collect()
}

/// Writes the pending rows into the transaction, then marks the removed ones deleted.
/// Returns the rows marked.
async fn flush<E: Entity>(
    tx: &mut Tx,
    f: &FileJob<'_>,
    key_cols: &[(&'static str, ColumnKind, Option<&'static str>)],
    pending: &mut Pending<E>,
    shown: &str,
) -> Result<u64, String> {
    if pending.rows.is_empty() {
        return Ok(0);
    }
    let lines = format!("{shown}:{}-{}", pending.first_line, pending.last_line);
    let res = match tx {
        Tx::Sqlite(t) => upsert_sqlite(t, f.table, f.division, &pending.rows, f.synced_at).await,
        Tx::Postgres(t) => {
            upsert_postgres(t, f.table, f.division, &pending.rows, f.synced_at).await
        }
    };
    res.map_err(|e| format!("{lines}: {e}"))?;
    pending.rows.clear();
    let mut marked = 0;
    for (key, at) in std::mem::take(&mut pending.removed).into_values() {
        mark_deleted(tx, f.table, key_cols, &key, &at)
            .await
            .map_err(|e| format!("{lines}: marking a removed row deleted: {e}"))?;
        marked += 1;
    }
    Ok(marked)
}

/// The PostgreSQL type a text parameter is cast to for a key column of `kind`.
fn pg_type(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Bool => "::boolean",
        ColumnKind::Int16 => "::smallint",
        ColumnKind::Int32 | ColumnKind::Division => "::integer",
        ColumnKind::Int64 => "::bigint",
        ColumnKind::Float32 => "::real",
        ColumnKind::Float64 => "::double precision",
        ColumnKind::Decimal => "::numeric",
        ColumnKind::Date => "::date",
        ColumnKind::DateTime => "::timestamp",
        ColumnKind::DateTimeOffset | ColumnKind::SyncedAt | ColumnKind::DeletedAt => {
            "::timestamptz"
        }
        ColumnKind::Time => "::time",
        ColumnKind::Uuid => "::uuid",
        ColumnKind::Json => "::jsonb",
        _ => "",
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `UPDATE … SET deleted_at WHERE key = …` for one row (keyless tables: nothing to mark).
async fn mark_deleted(
    tx: &mut Tx,
    table: &TableInfo,
    key_cols: &[(&'static str, ColumnKind, Option<&'static str>)],
    key: &[Value],
    at: &str,
) -> Result<(), sqlx::Error> {
    if key_cols.is_empty() {
        return Ok(());
    }
    let at = DateTime::parse_from_rfc3339(at)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now());
    let t = quote_ident(table.name);
    match tx {
        Tx::Sqlite(c) => {
            let conds: Vec<String> = key_cols
                .iter()
                .map(|(n, _, _)| format!("{} = ?", quote_ident(n)))
                .collect();
            let sql = format!(
                "UPDATE {t} SET \"deleted_at\" = ? WHERE {}",
                conds.join(" AND ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(at.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            for ((_, kind, _), v) in key_cols.iter().zip(key) {
                q = match (kind, v) {
                    (_, Value::Null) => q.bind(Option::<String>::None),
                    (
                        ColumnKind::Int16
                        | ColumnKind::Int32
                        | ColumnKind::Int64
                        | ColumnKind::Division,
                        v,
                    ) => q.bind(text_of(v).trim().parse::<i64>().unwrap_or_default()),
                    (ColumnKind::Uuid, v) => q.bind(text_of(v).trim().to_lowercase()),
                    (ColumnKind::Bool, Value::Bool(b)) => q.bind(*b),
                    (_, v) => q.bind(text_of(v)),
                };
            }
            q.execute(&mut **c).await?;
        }
        Tx::Postgres(c) => {
            let conds: Vec<String> = key_cols
                .iter()
                .enumerate()
                .map(|(i, (n, kind, _))| {
                    format!("{} = ${}{}", quote_ident(n), i + 2, pg_type(*kind))
                })
                .collect();
            let sql = format!(
                "UPDATE {t} SET \"deleted_at\" = $1 WHERE {}",
                conds.join(" AND ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(at);
            for v in key {
                q = match v {
                    Value::Null => q.bind(Option::<String>::None),
                    v => q.bind(text_of(v)),
                };
            }
            q.execute(&mut **c).await?;
        }
    }
    Ok(())
}

/// A property that refers to a row of another entity set of the service (no `$metadata`
/// navigation is at hand at run time, so by name): a Guid property `X` or `XID` (not part of
/// its own key) and an entity set `Xs`/`Xes` in the service (`Account` → `Accounts`,
/// `GLAccount` → `GLAccounts`, `Item` → `Items`), or a header whose set ends in `Xs` and whose
/// name the line's set starts with (`SalesInvoiceLines.InvoiceID` → `SalesInvoices`). The parent
/// tables are those of that set keyed by one Guid (with the division, when both have one).
#[derive(Debug, Clone)]
pub struct Reference {
    pub table: &'static TableInfo,
    pub column: &'static str,
    pub property: &'static str,
    pub target: &'static str,
    /// (parent table, its key column).
    pub parents: Vec<(&'static TableInfo, &'static str)>,
}

/// Every [`Reference`] between the tables of `service`.
pub fn references(service: &Service) -> Vec<Reference> {
    let mut sets: Vec<&'static str> = service.tables.iter().map(|t| t.entity_set).collect();
    sets.sort_unstable();
    sets.dedup();
    let mut out = Vec::new();
    for t in service.tables {
        for c in t.columns {
            let (ColumnKind::Uuid, Some(prop)) = (c.kind, c.wire_name) else {
                continue;
            };
            if t.primary_key.contains(&c.name) {
                continue;
            }
            let stem = prop
                .strip_suffix("ID")
                .or_else(|| prop.strip_suffix("Id"))
                .filter(|s| !s.is_empty())
                .unwrap_or(prop);
            let plural = format!("{stem}s");
            let target = sets.iter().copied().find(|s| {
                *s != t.entity_set
                    && (*s == plural
                        || *s == format!("{stem}es")
                        || (s.len() > plural.len()
                            && s.ends_with(&plural)
                            && t.entity_set.starts_with(&s[..s.len() - 1])))
            });
            let Some(target) = target else { continue };
            let parents: Vec<(&'static TableInfo, &'static str)> = service
                .tables
                .iter()
                .filter(|p| p.entity_set == target)
                .filter_map(|p| {
                    let keys: Vec<&&str> = p
                        .primary_key
                        .iter()
                        .filter(|k| p.column(k).is_some_and(|c| c.kind != ColumnKind::Division))
                        .collect();
                    match keys.as_slice() {
                        [k] if p.column(k).is_some_and(|c| c.kind == ColumnKind::Uuid) => {
                            Some((p, **k))
                        }
                        _ => None,
                    }
                })
                .collect();
            if !parents.is_empty() {
                out.push(Reference {
                    table: t,
                    column: c.name,
                    property: prop,
                    target,
                    parents,
                });
            }
        }
    }
    out
}

/// The references (see [`references`]) of rows not deleted whose parent row is in none of the
/// parent tables; only those with at least one such row.
pub async fn dangling_references(db: &Db, service: &Service) -> Result<Vec<Dangling>, Error> {
    let pg = matches!(db, Db::Postgres(_));
    let mut out = Vec::new();
    for r in references(service) {
        let col = quote_ident(r.column);
        let mut sql = format!(
            "SELECT COUNT(*), MIN(c.{col}{}) FROM {} c WHERE c.{col} IS NOT NULL AND c.\"deleted_at\" IS NULL",
            if pg { "::text" } else { "" },
            quote_ident(r.table.name)
        );
        for (p, key) in &r.parents {
            let div = if p.division && r.table.division {
                " AND p.\"division\" = c.\"division\""
            } else {
                ""
            };
            sql.push_str(&format!(
                " AND NOT EXISTS (SELECT 1 FROM {} p WHERE p.{} = c.{col}{div})",
                quote_ident(p.name),
                quote_ident(key)
            ));
        }
        let (n, example): (i64, Option<String>) = match db {
            Db::Sqlite(p) => sqlx::query_as(AssertSqlSafe(sql)).fetch_one(p).await?,
            Db::Postgres(p) => sqlx::query_as(AssertSqlSafe(sql)).fetch_one(p).await?,
        };
        if n > 0 {
            out.push(Dangling {
                table: r.table.name,
                entity: r.table.entity,
                property: r.property,
                target: r.target,
                rows: n,
                example,
            });
        }
    }
    Ok(out)
}

/// Decompresses a gzip data file (for tests and tools): its lines.
pub fn read_lines(path: &Path) -> std::io::Result<Vec<String>> {
    let f = std::fs::File::open(path)?;
    let mut s = String::new();
    MultiGzDecoder::new(f).read_to_string(&mut s)?;
    Ok(s.lines().map(str::to_string).collect())
}
