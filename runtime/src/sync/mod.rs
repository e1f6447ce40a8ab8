//! The sync engine (cargo feature `sync`): replicate one entity of a service into the database,
//! incrementally, one transaction per page together with the cursor that page advances.
//!
//! * [`apply_migrations`]: the checked-in `generated/migrations/<backend>` (embedded).
//! * [`sync_entity`]: rows of one (service, division, entity) into `E`'s table. The cursor is
//!   chosen from the entity's properties: `Timestamp` (Int64, sync endpoints: `Timestamp gt NL`,
//!   kept as decimal text, never a float), else `Modified` (a closed lower bound with an
//!   overlap: `Modified ge datetime'<cursor − overlap>'`, so rows sharing one Modified value
//!   across a page boundary are fetched again and upserted idempotently), else a full fetch.
//!   Rows are requested in cursor order (`$orderby`), so after each page every row up to the
//!   largest cursor value seen is stored: the cursor row of (service, division, entity) is
//!   written in the page's own transaction, and a killed process never skips rows.
//! * [`sync_deleted`]: `sync/Deleted` (its own Timestamp cursor) sets `deleted_at` on the
//!   matching rows of every table of the deleted entity set; rows are never physically deleted.
//! * Every run is a row of `odata_sync_runs` (queued → running → succeeded / failed).

pub mod budget;
mod state;
pub mod tokens;

use crate::client::{Client, ClientError};
use crate::sql::{quote_ident, ColumnKind, Db, SqlError, Table, TableInfo};
use crate::wire::EdmDateTime;
use crate::Entity;
use chrono::{DateTime, NaiveDateTime, Utc};
use futures_util::StreamExt;
use serde_json::Value;
use serde_with::DeserializeAs;
use std::time::{Duration, Instant};

pub use state::{queue_run, read_cursor, Cursor, CursorKind};
pub use tokens::{DbTokenStore, SecretKey};

/// The sqlx migrators of the checked-in migrations (`generated/migrations/{sqlite,postgres}`).
pub static MIGRATOR_SQLITE: sqlx::migrate::Migrator =
    sqlx::migrate!("../generated/migrations/sqlite");
pub static MIGRATOR_POSTGRES: sqlx::migrate::Migrator =
    sqlx::migrate!("../generated/migrations/postgres");

/// What went wrong in a sync run.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Other(String),
}

impl From<sqlx::Error> for SyncError {
    fn from(e: sqlx::Error) -> Self {
        SyncError::Sql(SqlError::Sqlx(e))
    }
}

/// Applies the checked-in migrations for the database's backend (a no-op when applied).
/// Processes starting at once on one database apply them once: PostgreSQL through sqlx's
/// advisory lock, a SQLite file through an exclusive lock on `<db file>.migrate-lock`.
pub async fn apply_migrations(db: &Db) -> Result<(), SyncError> {
    match db {
        Db::Sqlite(p) => {
            let _lock = tokens::sqlite_migrate_lock(&p.connect_options())
                .await
                .map_err(|e| SyncError::Other(format!("migrations: {e}")))?;
            MIGRATOR_SQLITE.run(p).await?
        }
        Db::Postgres(p) => MIGRATOR_POSTGRES.run(p).await?,
    }
    Ok(())
}

/// One (service, division, entity) to sync.
#[derive(Debug, Clone)]
pub struct SyncSpec {
    /// Service name (`exact`), the first part of the cursor's and run's key.
    pub service: String,
    /// Entity name (config.json name, e.g. `GLAccounts`); defaults to the table's.
    pub entity: String,
    /// Path below the service (`financial/GLAccounts`, `sync/Financial/TransactionLines`).
    pub endpoint: String,
    pub division: Option<i32>,
    /// Ignore this entity's cursor (and replace it); other cursors are untouched.
    pub full_refresh: bool,
    /// Overlap subtracted from a `Modified` cursor (Exact's Modified has second precision and
    /// commits late; rows re-read are upserted again).
    pub modified_overlap: Duration,
    /// Ask for rows in cursor order (`$orderby`), so that the cursor can advance with every
    /// page. Without it the cursor is written only after the last page.
    pub order_by_cursor: bool,
    /// Groups of runs started together (`odata_sync_runs.batch_id`).
    pub batch_id: Option<String>,
    /// A run record already inserted as `queued` by [`queue_run`]; the run takes it over
    /// (`None`: a new record is inserted).
    pub run_id: Option<String>,
    /// Called after every page is committed (progress bars).
    pub progress: Option<Progress>,
    /// Page with `$top`/`$skip` (this many rows a page) when the service sends no next link.
    pub skip_paging: Option<u64>,
}

/// What a progress callback sees after each committed page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageProgress {
    /// Rows received so far in this run.
    pub rows: u64,
    /// Pages committed so far.
    pub pages: u64,
}

/// A progress callback ([`SyncSpec::progress`]).
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn Fn(PageProgress) + Send + Sync>);

impl Progress {
    pub fn new(f: impl Fn(PageProgress) + Send + Sync + 'static) -> Self {
        Progress(std::sync::Arc::new(f))
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

impl SyncSpec {
    pub fn new(
        service: impl Into<String>,
        entity: impl Into<String>,
        endpoint: impl Into<String>,
        division: Option<i32>,
    ) -> SyncSpec {
        SyncSpec {
            service: service.into(),
            entity: entity.into(),
            endpoint: endpoint.into(),
            division,
            full_refresh: false,
            modified_overlap: Duration::from_secs(300),
            order_by_cursor: true,
            batch_id: None,
            run_id: None,
            progress: None,
            skip_paging: None,
        }
    }
    pub fn full_refresh(mut self, yes: bool) -> Self {
        self.full_refresh = yes;
        self
    }
}

/// The figures of one run (also stored in `odata_sync_runs`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    pub run_id: String,
    pub entity: String,
    pub division: Option<i32>,
    /// Rows received (duplicates included).
    pub rows_fetched: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    /// Rows marked deleted (only [`sync_deleted`]).
    pub rows_deleted: u64,
    /// HTTP requests sent by the client during the run (retries included).
    pub api_calls: u64,
    /// Pages (transactions) written.
    pub pages: u64,
    pub cursor_kind: Option<CursorKind>,
    /// The cursor the run started from (`None`: a full fetch).
    pub cursor_before: Option<String>,
    pub cursor_after: Option<String>,
    /// For an entity without a cursor (fetched completely every run): whether the rows differ
    /// from the previous complete fetch's, by a fingerprint of their content kept in
    /// `odata_sync_cursors` (cursor kind `fingerprint`). Updates of such entities change no
    /// count, so this is what tells a changed table from an unchanged one. `None` when the
    /// entity has a cursor.
    pub content_changed: Option<bool>,
    pub elapsed: Duration,
}

/// An order-independent fingerprint of rows: the count and the wrapping sum of the first 128
/// bits of each row's SHA-256 over its JSON serialisation (the generated struct's field order,
/// so the same content gives the same bytes whatever order the service sends rows in).
#[derive(Debug, Default)]
struct Fingerprint {
    rows: u64,
    sum: u128,
}

impl Fingerprint {
    fn add<E: serde::Serialize>(&mut self, row: &E) -> Result<(), serde_json::Error> {
        use sha2::Digest;
        // The hasher is an `io::Write`: the row is hashed as it is serialised.
        let mut h = sha2::Sha256::new();
        serde_json::to_writer(&mut h, row)?;
        let digest = h.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        self.rows += 1;
        self.sum = self.sum.wrapping_add(u128::from_be_bytes(first));
        Ok(())
    }

    fn text(&self) -> String {
        format!("{}:{:032x}", self.rows, self.sum)
    }
}

/// The cursor property of `E`: `Timestamp` (Int64) first, then `Modified` (DateTime).
pub fn cursor_kind_of<E: Entity>() -> Option<CursorKind> {
    let has = |name: &str, types: &[&str]| {
        E::PROPERTIES
            .iter()
            .any(|p| p.wire_name == name && types.contains(&p.edm_type))
    };
    if has("Timestamp", &["Edm.Int64"]) {
        Some(CursorKind::Timestamp)
    } else if has("Modified", &["Edm.DateTime", "Edm.DateTimeOffset"]) {
        Some(CursorKind::Modified)
    } else {
        None
    }
}

fn modified_text(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

/// The `$filter` for a stored cursor.
fn cursor_filter(kind: CursorKind, value: &str, overlap: Duration) -> Result<String, SyncError> {
    match kind {
        CursorKind::Timestamp => {
            let n: i64 = value.trim().parse().map_err(|_| {
                SyncError::Other(format!("stored Timestamp cursor {value:?} is not an Int64"))
            })?;
            Ok(format!("Timestamp gt {n}L"))
        }
        CursorKind::Modified => {
            let t = NaiveDateTime::parse_from_str(value.trim(), "%Y-%m-%dT%H:%M:%S%.f").map_err(
                |_| {
                    SyncError::Other(format!(
                        "stored Modified cursor {value:?} is not a datetime"
                    ))
                },
            )?;
            let from = t - chrono::Duration::from_std(overlap).unwrap_or_default();
            // Floored to whole seconds: a lower bound, so never later than intended.
            Ok(format!(
                "Modified ge datetime'{}'",
                from.format("%Y-%m-%dT%H:%M:%S")
            ))
        }
    }
}

/// The cursor value of one row (serialised to JSON first: wire names).
fn row_cursor(kind: CursorKind, obj: &Value) -> Option<CursorValue> {
    match kind {
        CursorKind::Timestamp => match obj.get("Timestamp")? {
            Value::Number(n) => n.as_i64().map(CursorValue::Ts),
            Value::String(s) => s.trim().parse().ok().map(CursorValue::Ts),
            _ => None,
        },
        CursorKind::Modified => {
            let v = obj.get("Modified")?;
            if v.is_null() {
                return None;
            }
            EdmDateTime::deserialize_as(v)
                .ok()
                .map(CursorValue::Modified)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum CursorValue {
    Ts(i64),
    Modified(NaiveDateTime),
}

impl CursorValue {
    fn text(&self) -> String {
        match self {
            CursorValue::Ts(n) => n.to_string(),
            CursorValue::Modified(t) => modified_text(t),
        }
    }
}

/// Syncs one entity of one division into `E`'s table ([`Table::TABLE`]).
///
/// Pages are written one transaction each, with the cursor row; see the module docs. On error
/// the run record says `failed` with the message, and what was committed stays.
pub async fn sync_entity<E: Entity + Table>(
    client: &Client,
    db: &Db,
    spec: &SyncSpec,
) -> Result<RunReport, SyncError> {
    sync_table::<E>(client, db, spec, E::TABLE).await
}

/// [`sync_entity`] into a given table of `E` (for code that reaches entity types through
/// `visit_tables`, where only `TableInfo` is at hand).
pub async fn sync_table<E: Entity>(
    client: &Client,
    db: &Db,
    spec: &SyncSpec,
    table: &'static TableInfo,
) -> Result<RunReport, SyncError> {
    let run = state::start_run(db, spec, table).await?;
    let result = run_entity::<E>(client, db, spec, table, &run).await;
    match result {
        Ok(report) => {
            state::finish_run(db, &run, &report, "succeeded", None).await?;
            Ok(report)
        }
        Err((e, report)) => {
            let msg = e.to_string();
            // The failure is the error to return; a failing run-record write is secondary.
            let _ = state::finish_run(db, &run, &report, "failed", Some(&msg)).await;
            Err(e)
        }
    }
}

async fn run_entity<E: Entity>(
    client: &Client,
    db: &Db,
    spec: &SyncSpec,
    table: &'static TableInfo,
    run: &state::Run,
) -> Result<RunReport, (SyncError, RunReport)> {
    let started = Instant::now();
    let calls0 = client.requests_sent();
    let mut report = RunReport {
        run_id: run.id.clone(),
        entity: spec.entity.clone(),
        division: spec.division,
        ..RunReport::default()
    };
    macro_rules! tri {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => {
                    report.api_calls = client.requests_sent() - calls0;
                    report.elapsed = started.elapsed();
                    return Err((SyncError::from(e), report));
                }
            }
        };
    }
    let kind = cursor_kind_of::<E>();
    report.cursor_kind = kind;
    let stored = if spec.full_refresh {
        None
    } else {
        tri!(read_cursor(db, &spec.service, spec.division, &spec.entity).await)
    };
    let stored = stored.filter(|c| Some(c.kind) == kind);
    report.cursor_before = stored.as_ref().and_then(|c| c.value.clone());
    let count_before = tri!(db.count(table, spec.division).await);
    // Nothing stored yet (the first sync, or a new division): every row is new, and
    // PostgreSQL inserts the pages with COPY until a key turns out to be stored after all.
    let mut all_new = count_before == 0;

    let mut query = client.rows::<E>(spec.division).endpoint(&spec.endpoint);
    if let Some(n) = spec.skip_paging {
        query = query.skip_paging(n);
    }
    if let (Some(k), Some(v)) = (kind, report.cursor_before.as_deref()) {
        query = query.filter(tri!(cursor_filter(k, v, spec.modified_overlap)));
    }
    if let (Some(k), true) = (kind, spec.order_by_cursor) {
        query = query.order_by(match k {
            CursorKind::Timestamp => "Timestamp",
            CursorKind::Modified => "Modified",
        });
    }
    // Entities without a cursor: the previous complete fetch's fingerprint.
    let mut fingerprint = match kind {
        None => Some((
            tri!(state::read_fingerprint(db, &spec.service, spec.division, &spec.entity).await),
            Fingerprint::default(),
        )),
        Some(_) => None,
    };
    let mut pages = read_ahead(query.pages());
    // Every page on one connection (see `Db::acquire`).
    let mut writer = tri!(db.acquire().await);
    let _checkpoints = db.checkpoint_while_writing();
    let mut max: Option<CursorValue> = None;
    while let Some(page) = pages.recv().await {
        let batch: Vec<E> = match page {
            Ok(b) => b,
            Err(e) => {
                report.api_calls = client.requests_sent() - calls0;
                report.elapsed = started.elapsed();
                return Err((SyncError::Client(e), report));
            }
        };
        if let Some(k) = kind {
            // Rows come in cursor order ($orderby): the page's largest value is its last
            // row's, so only that row is serialised. Otherwise every row is looked at.
            let look: &[E] = match (spec.order_by_cursor, batch.last()) {
                (true, Some(_)) => &batch[batch.len() - 1..],
                _ => &batch,
            };
            for r in look {
                let obj = tri!(serde_json::to_value(r)
                    .map_err(|e| SyncError::Other(format!("{}: {e}", table.name))));
                if let Some(v) = row_cursor(k, &obj) {
                    if max.is_none_or(|m| v > m) {
                        max = Some(v);
                    }
                }
            }
        }
        if let Some((_, f)) = &mut fingerprint {
            for r in &batch {
                tri!(f
                    .add(r)
                    .map_err(|e| SyncError::Other(format!("{}: {e}", table.name))));
            }
        }
        // The cursor advances with the page only when rows come in cursor order.
        let cursor = match (kind, max, spec.order_by_cursor) {
            (Some(k), Some(m), true) => Some((k, m.text())),
            _ => None,
        };
        report.rows_fetched += batch.len() as u64;
        report.pages += 1;
        tri!(
            state::write_page(
                &mut writer,
                spec,
                table,
                &batch,
                cursor.as_ref(),
                Utc::now(),
                &mut all_new
            )
            .await
        );
        if let Some(p) = &spec.progress {
            (p.0)(PageProgress {
                rows: report.rows_fetched,
                pages: report.pages,
            });
        }
    }
    if let (Some(k), Some(m), false) = (kind, max, spec.order_by_cursor) {
        tri!(
            state::write_page::<E>(
                &mut writer,
                spec,
                table,
                &[],
                Some(&(k, m.text())),
                Utc::now(),
                &mut all_new
            )
            .await
        );
    }
    drop(writer);
    if let Some((before, f)) = &fingerprint {
        let now = f.text();
        report.content_changed = Some(match before {
            Some(b) => *b != now,
            None => f.rows > 0,
        });
        if before.as_deref() != Some(now.as_str()) {
            tri!(state::write_fingerprint(db, spec, &now).await);
        }
    }
    let count_after = tri!(db.count(table, spec.division).await);
    report.rows_inserted = count_after.saturating_sub(count_before) as u64;
    report.rows_updated = report.rows_fetched.saturating_sub(report.rows_inserted);
    report.cursor_after = max.map(|m| m.text()).or(report.cursor_before.clone());
    report.api_calls = client.requests_sent() - calls0;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// `sync/Deleted` `EntityType` codes (exact-online.md §1.4) → entity set name.
pub const DELETED_ENTITY_TYPES: &[(i64, &str)] = &[
    (1, "TransactionLines"),
    (2, "Accounts"),
    (3, "Addresses"),
    (4, "Attachments"),
    (5, "Contacts"),
    (6, "Documents"),
    (7, "GLAccounts"),
    (8, "ItemPrices"),
    (9, "Items"),
    (10, "PaymentTerms"),
    (11, "Quotations"),
    (12, "SalesOrders"),
    (13, "SalesInvoices"),
    (14, "TimeCostTransactions"),
    (15, "StockPositions"),
    (16, "GoodsDeliveries"),
    (17, "GoodsDeliveryLines"),
    (18, "GLClassifications"),
    (19, "ItemWarehouses"),
    (20, "StorageLocationStockPositions"),
    (21, "Projects"),
    (22, "PurchaseOrders"),
    (23, "Subscriptions"),
    (24, "SubscriptionLines"),
    (25, "ProjectWBS"),
    (26, "ProjectPlanning"),
    (27, "LeaveAbsenceHoursByDay"),
    (28, "SerialBatchNumbers"),
    (29, "StockSerialBatchNumbers"),
    (30, "ItemAccounts"),
    (31, "DiscountTables"),
    (32, "SalesOrderHeaders"),
    (33, "SalesOrderLines"),
    (34, "QuotationHeaders"),
    (35, "QuotationLines"),
    (36, "ShopOrders"),
    (37, "ShopOrderMaterialPlans"),
    (38, "ShopOrderRoutingStepPlans"),
    (39, "Schedules"),
    (40, "ScheduleEntries"),
    (41, "ItemStorageLocations"),
    (42, "Employees"),
    (43, "Employments"),
    (44, "EmploymentContracts"),
    (45, "EmploymentOrganizations"),
    (46, "EmploymentCLAs"),
    (47, "EmploymentSalaries"),
    (48, "BankAccounts"),
    (49, "EmploymentTaxAuthoritiesGeneral"),
    (50, "ShopOrderPurchasePlanning"),
    (51, "ShopOrderSubOrders"),
    (53, "RequirementIssues"),
    (54, "BillOfMaterialMaterials"),
    (55, "BillOfMaterialVersions"),
];

/// The entity set a `sync/Deleted` `EntityType` code is for (unknown codes: `None`).
pub fn deleted_entity_set(code: i64) -> Option<&'static str> {
    DELETED_ENTITY_TYPES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, s)| *s)
}

/// The tables a deletion of `entity_set` applies to: every table of that entity set whose key
/// is one column besides `division`.
fn deletion_targets<'a>(tables: &'a [TableInfo], entity_set: &str) -> Vec<&'a TableInfo> {
    tables
        .iter()
        .filter(|t| t.entity_set.eq_ignore_ascii_case(entity_set))
        .filter(|t| t.primary_key.iter().filter(|k| **k != "division").count() == 1)
        .collect()
}

/// Reads `sync/Deleted` of a division incrementally (its own Timestamp cursor, entity
/// `"SyncDeleted"`) and sets `deleted_at` on the rows (by key) of every table in `tables`
/// (e.g. `generated::exact::TABLES`) of the entity set each deletion is for (§1.4), unless the
/// stored row's own `timestamp` is newer than the deletion. Rows are never deleted. Each page is
/// one transaction with the cursor.
pub async fn sync_deleted(
    client: &Client,
    db: &Db,
    service: &str,
    division: i32,
    tables: &[TableInfo],
) -> Result<RunReport, SyncError> {
    let spec = SyncSpec::new(service, "SyncDeleted", "sync/Deleted", Some(division));
    sync_deleted_spec(client, db, &spec, tables).await
}

/// [`sync_deleted`] with a full [`SyncSpec`] (entity name, endpoint, division, queued run id,
/// progress callback, full refresh).
pub async fn sync_deleted_spec(
    client: &Client,
    db: &Db,
    spec: &SyncSpec,
    tables: &[TableInfo],
) -> Result<RunReport, SyncError> {
    let spec = spec.clone();
    let pseudo = deleted_pseudo_table();
    let run = state::start_run(db, &spec, pseudo).await?;
    let res = run_deleted(client, db, &spec, tables, &run).await;
    match res {
        Ok(report) => {
            state::finish_run(db, &run, &report, "succeeded", None).await?;
            Ok(report)
        }
        Err((e, report)) => {
            let _ = state::finish_run(db, &run, &report, "failed", Some(&e.to_string())).await;
            Err(e)
        }
    }
}

fn deleted_pseudo_table() -> &'static TableInfo {
    static T: TableInfo = TableInfo {
        name: "sync/Deleted",
        entity: "SyncDeleted",
        entity_set: "Deleted",
        entity_type: "Exact.Web.Api.Models.DeletedSync",
        division: true,
        columns: &[],
        primary_key: &[],
        upsert_sqlite: "",
        upsert_postgres: "",
        insert_head: "",
        values_sqlite: "",
        upsert_tail: "",
        select_sqlite: "",
        select_postgres: "",
    };
    &T
}

/// One deletion of `sync/Deleted`.
#[derive(Debug, Clone)]
pub(crate) struct Deletion {
    pub key: String,
    pub entity_set: &'static str,
    pub timestamp: i64,
    pub deleted_at: DateTime<Utc>,
}

async fn run_deleted(
    client: &Client,
    db: &Db,
    spec: &SyncSpec,
    tables: &[TableInfo],
    run: &state::Run,
) -> Result<RunReport, (SyncError, RunReport)> {
    let started = Instant::now();
    let calls0 = client.requests_sent();
    let mut report = RunReport {
        run_id: run.id.clone(),
        entity: spec.entity.clone(),
        division: spec.division,
        cursor_kind: Some(CursorKind::Timestamp),
        ..RunReport::default()
    };
    macro_rules! tri {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => {
                    report.api_calls = client.requests_sent() - calls0;
                    report.elapsed = started.elapsed();
                    return Err((SyncError::from(e), report));
                }
            }
        };
    }
    let stored = tri!(read_cursor(db, &spec.service, spec.division, &spec.entity).await)
        .filter(|c| c.kind == CursorKind::Timestamp);
    report.cursor_before = stored.and_then(|c| c.value);
    let mut query = client
        .raw_rows(spec.division, &spec.endpoint)
        .select(["ID", "EntityKey", "EntityType", "Timestamp", "DeletedDate"])
        .order_by("Timestamp");
    if let Some(v) = report.cursor_before.as_deref() {
        query = query.filter(tri!(cursor_filter(
            CursorKind::Timestamp,
            v,
            Duration::ZERO
        )));
    }
    let mut pages = read_ahead(query.pages());
    let mut max: Option<i64> = None;
    while let Some(page) = pages.recv().await {
        let batch: Vec<Value> = match page {
            Ok(b) => b,
            Err(e) => {
                report.api_calls = client.requests_sent() - calls0;
                report.elapsed = started.elapsed();
                return Err((SyncError::Client(e), report));
            }
        };
        if !batch.is_empty() {
            let now = Utc::now();
            let mut dels = Vec::new();
            for r in &batch {
                let Some(CursorValue::Ts(ts)) = row_cursor(CursorKind::Timestamp, r) else {
                    continue;
                };
                max = Some(max.map_or(ts, |m| m.max(ts)));
                let code = match &r["EntityType"] {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                let (Some(set), Some(key)) = (
                    code.and_then(deleted_entity_set),
                    r["EntityKey"].as_str().map(|s| s.trim().to_lowercase()),
                ) else {
                    continue; // unknown codes are data, not errors (§1.4)
                };
                dels.push(Deletion {
                    key,
                    entity_set: set,
                    timestamp: ts,
                    deleted_at: now,
                });
            }
            report.rows_fetched += batch.len() as u64;
            report.pages += 1;
            let cursor = max.map(|m| (CursorKind::Timestamp, m.to_string()));
            let targets = |set: &str| deletion_targets(tables, set);
            report.rows_deleted +=
                tri!(state::write_deletions(db, spec, &dels, &targets, cursor.as_ref()).await);
        }
    }
    report.cursor_after = max.map(|m| m.to_string()).or(report.cursor_before.clone());
    report.api_calls = client.requests_sent() - calls0;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Reads one page ahead: a task requests the next page while the caller writes the last one.
/// It takes the channel's single slot before it requests a page, so at most two pages are in
/// memory, the one being written and the one being fetched; the next request waits until the
/// caller has taken the page before. An error ends the pages.
fn read_ahead<T: Send + 'static>(
    pages: impl futures_util::Stream<Item = Result<Vec<T>, ClientError>> + Send + 'static,
) -> tokio::sync::mpsc::Receiver<Result<Vec<T>, ClientError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        futures_util::pin_mut!(pages);
        loop {
            let Ok(slot) = tx.reserve().await else {
                return; // the sync stopped (a database error)
            };
            match pages.next().await {
                None => return,
                Some(page) => {
                    let failed = page.is_err();
                    slot.send(page);
                    if failed {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// `UPDATE … SET deleted_at` for one deletion target (parameters: deleted_at, division, key,
/// deletion timestamp when the table has a `timestamp` column).
fn deletion_sql(t: &TableInfo, pg: bool) -> (String, bool) {
    let key = t
        .primary_key
        .iter()
        .find(|k| **k != "division")
        .copied()
        .unwrap_or("id");
    let key_col = t.column(key);
    let has_ts = t
        .column("timestamp")
        .is_some_and(|c| c.kind == ColumnKind::Int64);
    let p = |i: usize| if pg { format!("${i}") } else { "?".to_string() };
    let key_cast = match (pg, key_col.map(|c| c.kind)) {
        (true, Some(ColumnKind::Uuid)) => "::uuid",
        _ => "",
    };
    let mut sql = format!(
        "UPDATE {} SET \"deleted_at\" = {} WHERE {} = {}{key_cast} AND \"deleted_at\" IS NULL",
        quote_ident(t.name),
        p(1),
        quote_ident(key),
        p(2),
    );
    let mut n = 3;
    if t.division {
        sql.push_str(&format!(" AND \"division\" = {}", p(n)));
        n += 1;
    }
    if has_ts {
        sql.push_str(&format!(
            " AND (\"timestamp\" IS NULL OR \"timestamp\" <= {})",
            p(n)
        ));
    }
    (sql, has_ts)
}

/// After a complete (unfiltered) fetch that started at `fetch_started`: marks `deleted_at` on
/// the rows of `table` (in `division`) that the fetch did not write, i.e. rows the service no
/// longer has. Rows are never physically deleted. Returns the number of rows marked.
pub async fn mark_unseen_deleted(
    db: &Db,
    table: &TableInfo,
    division: Option<i32>,
    fetch_started: DateTime<Utc>,
) -> Result<u64, SyncError> {
    if table.column("synced_at").is_none() || table.column("deleted_at").is_none() {
        return Ok(0);
    }
    let t = quote_ident(table.name);
    let by_division = table.division && division.is_some();
    let now = Utc::now();
    let n = match db {
        Db::Sqlite(p) => {
            let mut sql = format!("UPDATE {t} SET \"deleted_at\" = ? WHERE \"deleted_at\" IS NULL AND julianday(\"synced_at\") < julianday(?)");
            if by_division {
                sql.push_str(" AND \"division\" = ?");
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                .bind(fetch_started.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
            if by_division {
                q = q.bind(division);
            }
            q.execute(p).await?.rows_affected()
        }
        Db::Postgres(p) => {
            let mut sql = format!(
                "UPDATE {t} SET \"deleted_at\" = $1 WHERE \"deleted_at\" IS NULL AND \"synced_at\" < $2"
            );
            if by_division {
                sql.push_str(" AND \"division\" = $3");
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(fetch_started);
            if by_division {
                q = q.bind(division);
            }
            q.execute(p).await?.rows_affected()
        }
    };
    Ok(n)
}

/// Rows of `table` (in `division`) not marked deleted.
pub async fn count_live(
    db: &Db,
    table: &TableInfo,
    division: Option<i32>,
) -> Result<i64, SyncError> {
    let t = quote_ident(table.name);
    let by_division = table.division && division.is_some();
    let has_deleted = table.column("deleted_at").is_some();
    let mut sql = format!("SELECT COUNT(*) FROM {t} WHERE 1 = 1");
    if has_deleted {
        sql.push_str(" AND \"deleted_at\" IS NULL");
    }
    Ok(match db {
        Db::Sqlite(p) => {
            if by_division {
                sql.push_str(" AND \"division\" = ?");
            }
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
            if by_division {
                q = q.bind(division);
            }
            q.fetch_one(p).await?
        }
        Db::Postgres(p) => {
            if by_division {
                sql.push_str(" AND \"division\" = $1");
            }
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
            if by_division {
                q = q.bind(division);
            }
            q.fetch_one(p).await?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_filter_is_an_exact_int64_literal() {
        // Above 2^53: a float would round it.
        let f = cursor_filter(CursorKind::Timestamp, "9007199254740993", Duration::ZERO).unwrap();
        assert_eq!(f, "Timestamp gt 9007199254740993L");
        assert!(cursor_filter(CursorKind::Timestamp, "1.5e3", Duration::ZERO).is_err());
        let row = serde_json::json!({"Timestamp": "9007199254740993"});
        assert_eq!(
            row_cursor(CursorKind::Timestamp, &row).map(|v| v.text()),
            Some("9007199254740993".to_string())
        );
    }

    #[test]
    fn modified_filter_is_a_closed_bound_with_the_overlap_floored_to_seconds() {
        let f = cursor_filter(
            CursorKind::Modified,
            "2021-01-04T08:08:00.250",
            Duration::from_secs(120),
        )
        .unwrap();
        assert_eq!(f, "Modified ge datetime'2021-01-04T08:06:00'");
        let row = serde_json::json!({"Modified": "/Date(1609747680000)/"});
        assert_eq!(
            row_cursor(CursorKind::Modified, &row).map(|v| v.text()),
            Some("2021-01-04T08:08:00.000".to_string())
        );
    }

    #[test]
    fn deletion_entity_type_codes() {
        assert_eq!(deleted_entity_set(7), Some("GLAccounts"));
        assert_eq!(deleted_entity_set(1), Some("TransactionLines"));
        assert_eq!(deleted_entity_set(52), None);
    }
}
