//! The generated tables against real databases: for every table of `generated::northwind` and
//! `generated::exact` (regenerated from `metadata-cache/` by the generated crate's build.rs), one
//! deterministic row per entity is written into a SQLite file (upsert) and a PostgreSQL server
//! (started by the test; `COPY`, as a sync's first pages), upserted again with changed values
//! (updated, not duplicated) and read back equal. A batch of 5,000 rows of Exact's widest table is chunked under both bind caps.

mod common;

use chrono::{TimeZone, Utc};
use common::repo;
use odata_codegen::service::ServiceDir;
use odata_codegen::sql::{ColumnKind as DefKind, TableDef};
use odata_runtime::serde_with::SerializeAs;
use odata_runtime::sql::{self as rsql, Db, POSTGRES_BIND_LIMIT, SQLITE_BIND_LIMIT};
use odata_runtime::{ColumnKind, Entity, TableInfo, TableVisitor};
use serde_json::{Map, Value};

const DIVISION: i32 = 7;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The tables the generator derives now from `metadata-cache/<service>` (the same input the
/// generated crate was built from).
fn table_defs(service: &str) -> Vec<TableDef> {
    let sd = ServiceDir::load(&repo().join("metadata-cache").join(service)).expect("service");
    let (m, d) = sd.model(false);
    let m = m.unwrap_or_else(|| panic!("{service}: model failed:\n{d}"));
    sd.tables(&m)
}

fn q(name: &str) -> String {
    rsql::quote_ident(name)
}

/// A plain `CREATE TABLE` from a table definition (the migrations are tested elsewhere).
fn create_table(t: &TableDef, pg: bool) -> String {
    let mut parts: Vec<String> = t
        .columns
        .iter()
        .map(|c| {
            let ty = if pg { &c.postgres_type } else { &c.sqlite_type };
            let nn = if c.nullable { "" } else { " NOT NULL" };
            format!("{} {ty}{nn}", q(&c.name))
        })
        .collect();
    if !t.primary_key.is_empty() {
        let pk: Vec<String> = t.primary_key.iter().map(|k| q(k)).collect();
        parts.push(format!("PRIMARY KEY ({})", pk.join(", ")));
    }
    format!("CREATE TABLE {} ({})", q(&t.name), parts.join(", "))
}

fn same_kind(a: ColumnKind, b: DefKind) -> bool {
    format!("{a:?}") == b.as_str()
}

/// A value of a column's kind, different per seed.
fn sample(kind: ColumnKind, edm: &str, wire: &str, seed: u32, is_key: bool) -> Value {
    let s = i64::from(seed);
    match kind {
        ColumnKind::Text => Value::String(if is_key {
            format!("K{seed}")
        } else {
            format!("{wire} 'é\" ✓ {seed}")
        }),
        ColumnKind::Enum => Value::String(format!("Member{seed}")),
        ColumnKind::Bool => Value::Bool(seed % 2 == 1),
        ColumnKind::Int16 => {
            if edm == "Edm.Byte" || edm == "Edm.SByte" {
                Value::from(s % 100 + 1)
            } else {
                Value::from(s % 30_000 + 1)
            }
        }
        ColumnKind::Int32 | ColumnKind::Division => Value::from(100_000 + s),
        // Beyond 2^53: must survive as an exact integer.
        ColumnKind::Int64 => Value::from(9_007_199_254_740_993_i64 + s),
        ColumnKind::Float32 => Value::from(f64::from(seed) + 1.5),
        ColumnKind::Float64 => Value::from(f64::from(seed) + 0.1),
        ColumnKind::Decimal => Value::String(format!("{}.25", 1000 + seed)),
        ColumnKind::Date => Value::String(format!("2024-02-{:02}", seed % 28 + 1)),
        ColumnKind::DateTime => Value::String(format!("2024-02-29T13:{:02}:30.123", seed % 60)),
        // Stored in UTC; read back equal as an instant.
        ColumnKind::DateTimeOffset => {
            Value::String(format!("2024-02-29T13:{:02}:30.123+02:00", seed % 60))
        }
        ColumnKind::Time => Value::String(format!("13:{:02}:30", seed % 60)),
        ColumnKind::Duration => Value::String(format!("P1DT2H{}M4S", seed % 60)),
        ColumnKind::Uuid => Value::String(format!("00000000-0000-4000-8000-{:012x}", seed)),
        ColumnKind::Bytes => {
            let bytes = vec![1, 2, 3, (seed % 256) as u8];
            odata_runtime::wire::Base64::serialize_as(&bytes, serde_json::value::Serializer)
                .expect("base64")
        }
        ColumnKind::Json => Value::Null,
        ColumnKind::SyncedAt | ColumnKind::DeletedAt => Value::Null,
    }
}

/// One row of `table` as `E`: keys from `key_seed`, every other stored property from
/// `value_seed`.
fn make_row<E: Entity>(table: &TableInfo, key_seed: u32, value_seed: u32) -> E {
    let mut obj = Map::new();
    for col in table.columns {
        let Some(wire) = col.wire_name else { continue };
        if col.kind == ColumnKind::Division {
            obj.insert(wire.into(), Value::from(DIVISION));
            continue;
        }
        let is_key = table.primary_key.contains(&col.name);
        let seed = if is_key { key_seed } else { value_seed };
        let edm = E::PROPERTIES
            .iter()
            .find(|p| p.wire_name == wire)
            .map(|p| p.edm_type)
            .unwrap_or("");
        obj.insert(wire.into(), sample(col.kind, edm, wire, seed, is_key));
    }
    serde_json::from_value(Value::Object(obj))
        .unwrap_or_else(|e| panic!("{}: sample row does not deserialise: {e}", table.name))
}

fn division_of(table: &TableInfo) -> Option<i32> {
    table.division.then_some(DIVISION)
}

async fn round_trip<E: Entity + PartialEq>(db: &Db, table: &TableInfo) -> Result<(), String> {
    let t0 = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
    let t1 = Utc.with_ymd_and_hms(2025, 1, 3, 3, 4, 5).unwrap();
    let division = division_of(table);
    let first: E = make_row(table, 1, 1);
    let changed: E = make_row(table, 1, 2);
    let e = |what: &str, err: rsql::SqlError| format!("{what}: {err}");
    // PostgreSQL: the first row goes in by COPY, as a sync's first pages do (the second one,
    // below, by upsert); both must read back as written.
    match db {
        Db::Postgres(pool) => {
            let mut c = pool.acquire().await.map_err(|x| e("acquire", x.into()))?;
            rsql::insert_postgres(&mut c, table, division, std::slice::from_ref(&first), t0)
                .await
                .map_err(|x| e("first insert (COPY)", x))?;
        }
        Db::Sqlite(_) => {
            rsql::upsert_batch(db, table, division, std::slice::from_ref(&first), t0)
                .await
                .map_err(|x| e("first upsert", x))?;
        }
    }
    let back: Vec<E> = rsql::read_rows(db, table, division, None)
        .await
        .map_err(|x| e("first read", x))?;
    if back != vec![first.clone()] {
        return Err(format!(
            "first read differs:\n wrote {first:?}\n read  {back:?}"
        ));
    }
    rsql::upsert_batch(db, table, division, std::slice::from_ref(&changed), t1)
        .await
        .map_err(|x| e("second upsert", x))?;
    let count = db.count(table, division).await.map_err(|x| e("count", x))?;
    let back: Vec<E> = rsql::read_rows(db, table, division, None)
        .await
        .map_err(|x| e("second read", x))?;
    if table.primary_key.is_empty() {
        // Keyless: plain inserts.
        if count != 2 {
            return Err(format!("keyless table: {count} rows after two inserts"));
        }
    } else {
        if count != 1 {
            return Err(format!("{count} rows after upserting one key twice"));
        }
        if back != vec![changed.clone()] {
            return Err(format!(
                "second read differs:\n wrote {changed:?}\n read  {back:?}"
            ));
        }
    }
    Ok(())
}

struct Visitor<'a> {
    rt: &'a tokio::runtime::Runtime,
    dbs: &'a [(&'static str, Db)],
    defs: &'a [TableDef],
    visited: Vec<String>,
    failures: Vec<String>,
}

impl TableVisitor for Visitor<'_> {
    fn visit<E: Entity + PartialEq>(&mut self, table: &'static TableInfo) {
        self.visited.push(table.name.to_string());
        // The generated constants agree with what the generator derives from the cache now.
        let Some(def) = self.defs.iter().find(|d| d.name == table.name) else {
            self.failures
                .push(format!("{}: no table definition", table.name));
            return;
        };
        let cols: Vec<(&str, ColumnKind)> =
            table.columns.iter().map(|c| (c.name, c.kind)).collect();
        let def_cols: Vec<&str> = def.columns.iter().map(|c| c.name.as_str()).collect();
        if cols.iter().map(|c| c.0).collect::<Vec<_>>() != def_cols
            || !table
                .columns
                .iter()
                .zip(&def.columns)
                .all(|(a, b)| same_kind(a.kind, b.kind) && a.nullable == b.nullable)
            || table.primary_key
                != def
                    .primary_key
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
        {
            self.failures.push(format!(
                "{}: generated TableInfo differs from the table definition",
                table.name
            ));
            return;
        }
        for (backend, db) in self.dbs {
            let pg = matches!(db, Db::Postgres(_));
            let ddl = create_table(def, pg);
            let r = self.rt.block_on(async {
                db.execute_script(&ddl)
                    .await
                    .map_err(|e| format!("create table: {e}\n{ddl}"))?;
                round_trip::<E>(db, table).await
            });
            if let Err(e) = r {
                self.failures.push(format!("{backend} {}: {e}", table.name));
            }
        }
    }
}

/// A service module's generated `visit_tables`.
type VisitFn = fn(&mut Visitor<'_>);

struct Dbs {
    _pg: odata_test_support::PgServer,
    _dir: std::path::PathBuf,
    sqlite_file: std::path::PathBuf,
    pg_url: String,
    dbs: Vec<(&'static str, Db)>,
}

fn databases(rt: &tokio::runtime::Runtime, name: &str) -> Dbs {
    let pg = odata_test_support::PgServer::start().expect("PostgreSQL");
    let url = pg.create_database(name).expect("createdb");
    let dir = std::env::temp_dir().join(format!("odata-sql-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("db.sqlite");
    let dbs = rt.block_on(async {
        let sqlite = Db::connect(&format!("sqlite:{}?mode=rwc", file.display()))
            .await
            .expect("sqlite");
        let postgres = Db::connect(&url).await.expect("postgres");
        vec![("sqlite", sqlite), ("postgres", postgres)]
    });
    Dbs {
        _pg: pg,
        _dir: dir,
        sqlite_file: file,
        pg_url: url,
        dbs,
    }
}

#[test]
fn every_table_of_northwind_and_exact_round_trips_on_sqlite_and_postgres() {
    let rt = runtime();
    let dbs = databases(&rt, "roundtrip");
    let mut failures = Vec::new();
    let mut total = 0;
    let services: [(&str, VisitFn); 2] = [
        ("northwind", |v| generated::northwind::visit_tables(v)),
        ("exact", |v| generated::exact::visit_tables(v)),
    ];
    for (service, visit) in services {
        let defs = table_defs(service);
        let mut v = Visitor {
            rt: &rt,
            dbs: &dbs.dbs,
            defs: &defs,
            visited: Vec::new(),
            failures: Vec::new(),
        };
        visit(&mut v);
        // Every table the generator derives has a generated entry, and was visited.
        let mut expected: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        expected.sort();
        let mut visited: Vec<&str> = v.visited.iter().map(String::as_str).collect();
        visited.sort();
        assert_eq!(visited, expected, "{service}: tables visited");
        total += visited.len();
        failures.extend(v.failures);
    }
    assert!(total > 40, "only {total} tables");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every table now holds one row written by the sqlx runtime: diesel reads it, deletes it,
    // inserts it back (Insertable), updates it (AsChangeset) and reads it back equal.
    let (sqlite_tables, pg_tables) = diesel_round_trips(&dbs.sqlite_file, &dbs.pg_url);
    println!("diesel round trips: {sqlite_tables} SQLite tables, {pg_tables} PostgreSQL tables");
    assert!(sqlite_tables >= 30 && pg_tables >= 30);
}

/// The diesel round trip of every table the generated diesel modules cover; returns how many
/// tables each backend checked. Panics listing every failure.
fn diesel_round_trips(sqlite_file: &std::path::Path, pg_url: &str) -> (usize, usize) {
    use diesel::prelude::*;
    let mut failures: Vec<String> = Vec::new();
    let mut counts = (0, 0);
    let mut sqlite =
        diesel::sqlite::SqliteConnection::establish(&sqlite_file.display().to_string())
            .expect("diesel sqlite");
    let mut pg = diesel::pg::PgConnection::establish(pg_url).expect("diesel postgres");
    macro_rules! check {
        ($conn:ident, $count:expr, $table:path, $row:ty, $name:literal) => {{
            let conn = &mut $conn;
            let r: Result<(), String> = (|| {
                let e = |what: &str, err: diesel::result::Error| format!("{what}: {err}");
                let loaded: Vec<$row> = $table
                    .select(<$row>::as_select())
                    .load(conn)
                    .map_err(|x| e("load", x))?;
                if loaded.len() != 1 {
                    return Err(format!("{} rows written by the runtime", loaded.len()));
                }
                let row = loaded[0].clone();
                diesel::delete($table)
                    .execute(conn)
                    .map_err(|x| e("delete", x))?;
                diesel::insert_into($table)
                    .values(&row)
                    .execute(conn)
                    .map_err(|x| e("insert", x))?;
                let again: Vec<$row> = $table
                    .select(<$row>::as_select())
                    .load(conn)
                    .map_err(|x| e("reload", x))?;
                if again != vec![row.clone()] {
                    return Err(format!("insert/load differs:\n {row:?}\n {again:?}"));
                }
                let n = diesel::update($table)
                    .set(&row)
                    .execute(conn)
                    .map_err(|x| e("update", x))?;
                let again: Vec<$row> = $table
                    .select(<$row>::as_select())
                    .load(conn)
                    .map_err(|x| e("reload", x))?;
                if n != 1 || again != vec![row.clone()] {
                    return Err(format!("update/load differs ({n} rows updated)"));
                }
                Ok(())
            })();
            if let Err(err) = r {
                failures.push(format!("diesel {} {}: {err}", stringify!($conn), $name));
            }
            $count += 1;
        }};
    }
    macro_rules! on_sqlite {
        ($table:path, $row:ty, $name:literal) => {
            check!(sqlite, counts.0, $table, $row, $name)
        };
    }
    macro_rules! on_pg {
        ($table:path, $row:ty, $name:literal) => {
            check!(pg, counts.1, $table, $row, $name)
        };
    }
    generated::northwind_diesel_sqlite_tables!(on_sqlite);
    generated::exact_diesel_sqlite_tables!(on_sqlite);
    generated::northwind_diesel_pg_tables!(on_pg);
    generated::exact_diesel_pg_tables!(on_pg);
    assert!(
        failures.is_empty(),
        "{} diesel failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    counts
}

#[test]
fn five_thousand_rows_of_a_151_column_table_are_chunked_under_the_bind_caps() {
    use generated::exact::Account;
    use odata_runtime::Table;
    let table = <Account as Table>::TABLE;
    let params = table.params_per_row();
    assert!(
        table.columns.len() >= 150,
        "{} has {} columns",
        table.name,
        table.columns.len()
    );
    let sqlite_rows = table.rows_per_statement(SQLITE_BIND_LIMIT);
    let pg_rows = table.rows_per_statement(POSTGRES_BIND_LIMIT);
    assert!(sqlite_rows * params <= SQLITE_BIND_LIMIT);
    assert!(pg_rows * params <= POSTGRES_BIND_LIMIT);
    assert!((sqlite_rows + 1) * params > SQLITE_BIND_LIMIT);
    assert!((pg_rows + 1) * params > POSTGRES_BIND_LIMIT);
    let rows: Vec<Account> = (1..=5000).map(|i| make_row(table, i, i)).collect();
    assert_eq!(
        rsql::chunk_rows(table, SQLITE_BIND_LIMIT, &rows).count(),
        5000usize.div_ceil(sqlite_rows)
    );
    println!(
        "{}: {} columns, {params} parameters per row; SQLite {sqlite_rows} rows per statement ({} statements), PostgreSQL {pg_rows} ({} statements)",
        table.name,
        table.columns.len(),
        5000usize.div_ceil(sqlite_rows),
        5000usize.div_ceil(pg_rows)
    );
    let def = table_defs("exact")
        .into_iter()
        .find(|d| d.name == table.name)
        .expect("definition");
    let rt = runtime();
    let dbs = databases(&rt, "batch");
    let synced = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
    for (backend, db) in &dbs.dbs {
        let pg = matches!(db, Db::Postgres(_));
        rt.block_on(async {
            db.execute_script(&create_table(&def, pg)).await.unwrap();
            let start = std::time::Instant::now();
            let n = rsql::upsert_batch(db, table, Some(DIVISION), &rows, synced)
                .await
                .unwrap_or_else(|e| panic!("{backend}: {e}"));
            let took = start.elapsed();
            assert!(n >= 5000, "{backend}: {n} rows written");
            // Again: all updates, still 5,000 rows.
            rsql::upsert_batch(db, table, Some(DIVISION), &rows, synced)
                .await
                .unwrap_or_else(|e| panic!("{backend}: {e}"));
            assert_eq!(db.count(table, Some(DIVISION)).await.unwrap(), 5000);
            let back: Vec<Account> = rsql::read_rows(db, table, Some(DIVISION), None)
                .await
                .unwrap();
            let mut want = rows.clone();
            want.sort_by_key(|a| a.id);
            assert_eq!(back.len(), 5000);
            assert!(back == want, "{backend}: rows read back differ");
            println!("{backend}: 5,000 rows × {params} parameters upserted in {took:?}");
        });
    }
}

#[test]
fn upsert_resets_deleted_at_and_row_wrapper_reads_rows() {
    use generated::northwind::Order;
    use odata_runtime::sql::Row;
    use odata_runtime::Table;
    let table = <Order as Table>::TABLE;
    let def = table_defs("northwind")
        .into_iter()
        .find(|d| d.name == table.name)
        .expect("definition");
    let rt = runtime();
    let dbs = databases(&rt, "wrapper");
    let order: Order = make_row(table, 5, 5);
    let synced = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
    for (backend, db) in &dbs.dbs {
        let pg = matches!(db, Db::Postgres(_));
        rt.block_on(async {
            db.execute_script(&create_table(&def, pg)).await.unwrap();
            rsql::upsert::<Order>(db, None, std::slice::from_ref(&order), synced)
                .await
                .unwrap();
            db.execute_script(&format!(
                "UPDATE {} SET \"deleted_at\" = {}",
                q(table.name),
                if pg {
                    "now()"
                } else {
                    "'2025-01-05T00:00:00Z'"
                }
            ))
            .await
            .unwrap();
            let live = rsql::read_rows::<Order>(db, table, None, Some("\"deleted_at\" IS NULL"))
                .await
                .unwrap();
            assert!(live.is_empty(), "{backend}: row not marked deleted");
            rsql::upsert::<Order>(db, None, std::slice::from_ref(&order), synced)
                .await
                .unwrap();
            let live = rsql::read_rows::<Order>(db, table, None, Some("\"deleted_at\" IS NULL"))
                .await
                .unwrap();
            assert_eq!(live, vec![order.clone()], "{backend}: deleted_at not reset");
            // The generic FromRow wrapper over the generated SELECT.
            let read: Vec<Order> = match db {
                Db::Sqlite(p) => sqlx_query_sqlite(p, table.select_sqlite).await,
                Db::Postgres(p) => sqlx_query_pg(p, table.select_postgres).await,
            }
            .into_iter()
            .map(Row::into_inner)
            .collect();
            assert_eq!(read, vec![order.clone()], "{backend}: Row<Order>");
        });
    }
}

async fn sqlx_query_sqlite(
    p: &odata_runtime::sql::sqlx::SqlitePool,
    sql: &'static str,
) -> Vec<odata_runtime::sql::Row<generated::northwind::Order>> {
    odata_runtime::sql::sqlx::query_as(sql)
        .fetch_all(p)
        .await
        .unwrap()
}

async fn sqlx_query_pg(
    p: &odata_runtime::sql::sqlx::PgPool,
    sql: &'static str,
) -> Vec<odata_runtime::sql::Row<generated::northwind::Order>> {
    odata_runtime::sql::sqlx::query_as(sql)
        .fetch_all(p)
        .await
        .unwrap()
}

#[test]
fn repeated_keys_in_a_batch_and_the_division_of_the_row_itself() {
    use generated::exact::{GlTransactionType, Item};
    use odata_runtime::Table;
    let items = <Item as Table>::TABLE;
    let types = <GlTransactionType as Table>::TABLE;
    // Items stores its own `Division` property in the division column.
    assert_eq!(items.columns[0].wire_name, Some("Division"));
    assert_eq!(types.columns[0].wire_name, None);
    let defs = table_defs("exact");
    let rt = runtime();
    let dbs = databases(&rt, "keys");
    let synced = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
    for (backend, db) in &dbs.dbs {
        let pg = matches!(db, Db::Postgres(_));
        rt.block_on(async {
            for t in [items, types] {
                let def = defs.iter().find(|d| d.name == t.name).unwrap();
                db.execute_script(&create_table(def, pg)).await.unwrap();
            }
            // The same key twice in one batch: written once, the last wins (PostgreSQL refuses
            // to update one row twice in a statement).
            let batch: Vec<Item> = vec![make_row(items, 1, 1), make_row(items, 1, 2)];
            rsql::upsert::<Item>(db, None, &batch, synced)
                .await
                .unwrap_or_else(|e| panic!("{backend}: {e}"));
            assert_eq!(db.count(items, Some(DIVISION)).await.unwrap(), 1);
            assert_eq!(db.count(items, Some(DIVISION + 1)).await.unwrap(), 0);
            let back: Vec<Item> = rsql::read_rows(db, items, Some(DIVISION), None)
                .await
                .unwrap();
            assert_eq!(back, vec![batch[1].clone()], "{backend}");
            // No division given and none in the row: a clear error, nothing written.
            let row: GlTransactionType = make_row(types, 1, 1);
            let err = rsql::upsert::<GlTransactionType>(db, None, &[row], synced)
                .await
                .expect_err("no division");
            assert!(
                err.to_string().contains("no division given"),
                "{backend}: {err}"
            );
            assert_eq!(db.count(types, None).await.unwrap(), 0);
        });
    }
}
