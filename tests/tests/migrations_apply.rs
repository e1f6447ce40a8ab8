//! The generated migrations applied to real databases — a SQLite file and a PostgreSQL server
//! started by the test — with **both** sqlx's `Migrator` and `diesel_migrations`'
//! `FileBasedMigrations`, from the same folder (`<root>/sqlite`, `<root>/postgres`).
//!
//! For each real transition (Northwind 2010 → current, RESO DD 1.7 → 2.0, Exact 2019 → 2021) and
//! a breaking one (tests/fixtures/migrations, with `allow_breaking`): apply the initial
//! migrations, insert rows into every table (plain SQL built from the TableDefs), write the
//! transition's migration, apply it, then check the columns, types and primary keys the database
//! reports against the TableDefs, that every row is still there, that applying again is a no-op,
//! and that a hand-edited applied migration is detected.

use diesel::Connection as _;
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use odata_codegen::service::ServiceDir;
use odata_codegen::sql::ddl::quote;
use odata_codegen::sql::migrations::{read_state, MigrateOptions, Migrations};
use odata_codegen::sql::{Backend, ColumnDef, ColumnKind, TableDef};
use odata_test_support::PgServer;
use sqlx::AssertSqlSafe;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

const ROWS: usize = 3;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus(rel: &str) -> PathBuf {
    repo().join("../shared/corpus/metadata").join(rel)
}

fn xml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    v.sort();
    v
}

fn service(name: &str, metadata: Vec<PathBuf>, exact_config: bool) -> ServiceDir {
    let mut sd = ServiceDir {
        dir: PathBuf::from(name),
        name: name.to_string(),
        metadata,
        config: None,
        service_toml: None,
    };
    if exact_config {
        let ex = ServiceDir::load(&repo().join("metadata-cache/exact")).unwrap();
        sd.config = ex.config;
        sd.service_toml = ex.service_toml;
    }
    sd
}

fn migrate(root: &Path, sd: &ServiceDir, opts: MigrateOptions) -> usize {
    let (m, diags) = sd.model(false);
    let m = m.unwrap_or_else(|| panic!("{}: {diags}", sd.name));
    let tables = sd.tables(&m);
    let out = Migrations::new(root)
        .migrate_service(&sd.name, Some(&m), &tables, opts)
        .unwrap_or_else(|e| panic!("{e}"));
    out.written.len()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A SQL literal for row `row` of a column (distinct per row, so keys stay unique).
fn literal(c: &ColumnDef, b: Backend, row: usize) -> String {
    let r = row + 1;
    let sqlite = b == Backend::Sqlite;
    match c.kind {
        ColumnKind::Text | ColumnKind::Enum | ColumnKind::Duration => format!("'v{r}'"),
        ColumnKind::Bool => (if sqlite { "1" } else { "TRUE" }).to_string(),
        ColumnKind::Int16 | ColumnKind::Int32 | ColumnKind::Int64 | ColumnKind::Division => {
            r.to_string()
        }
        ColumnKind::Float32 | ColumnKind::Float64 => format!("{r}.5"),
        ColumnKind::Decimal => {
            if sqlite {
                format!("'{r}'")
            } else {
                r.to_string()
            }
        }
        ColumnKind::Date => format!("'2024-01-0{r}'"),
        ColumnKind::DateTime => format!("'2024-01-0{r} 10:00:00'"),
        ColumnKind::DateTimeOffset | ColumnKind::SyncedAt | ColumnKind::DeletedAt => {
            format!("'2024-01-0{r}T10:00:00Z'")
        }
        ColumnKind::Time => format!("'10:00:0{r}'"),
        ColumnKind::Uuid => format!("'00000000-0000-0000-0000-00000000000{r}'"),
        ColumnKind::Bytes => {
            if sqlite {
                "X'0102'".to_string()
            } else {
                "'\\x0102'::bytea".to_string()
            }
        }
        ColumnKind::Json => format!("'{{\"v\": {r}}}'"),
    }
}

fn insert_sql(t: &TableDef, b: Backend, row: usize) -> String {
    let cols: Vec<String> = t.columns.iter().map(|c| quote(&c.name)).collect();
    let vals: Vec<String> = t.columns.iter().map(|c| literal(c, b, row)).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote(&t.name),
        cols.join(", "),
        vals.join(", ")
    )
}

/// PostgreSQL's spelling of a declared type (`format_type`).
fn pg_spelling(t: &str) -> String {
    match t {
        "TIMESTAMPTZ" => "timestamp with time zone".into(),
        "TIMESTAMP" => "timestamp without time zone".into(),
        "TIME" => "time without time zone".into(),
        other => other.to_lowercase(),
    }
}

/// A database under test: one backend, applied by one tool.
enum Db {
    Sqlite { url: String, file: PathBuf },
    Postgres { url: String },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tool {
    Sqlx,
    Diesel,
}

impl Db {
    fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres { .. } => Backend::Postgres,
        }
    }

    fn dir(&self, root: &Path) -> PathBuf {
        root.join(self.backend().as_str())
    }

    /// Applies the pending migrations; returns the number applied.
    fn apply(
        &self,
        rt: &tokio::runtime::Runtime,
        tool: Tool,
        root: &Path,
    ) -> Result<usize, String> {
        let dir = self.dir(root);
        match tool {
            Tool::Sqlx => rt.block_on(async {
                let m = sqlx::migrate::Migrator::new(dir.as_path())
                    .await
                    .map_err(|e| e.to_string())?;
                let count = "SELECT COUNT(*) FROM _sqlx_migrations";
                match self {
                    Db::Sqlite { url, .. } => {
                        let pool = sqlx::SqlitePool::connect(url)
                            .await
                            .map_err(|e| e.to_string())?;
                        let before: i64 = sqlx::query_scalar(count)
                            .fetch_one(&pool)
                            .await
                            .unwrap_or(0);
                        m.run(&pool).await.map_err(|e| format!("{e:?}: {e}"))?;
                        let after: i64 = sqlx::query_scalar(count)
                            .fetch_one(&pool)
                            .await
                            .map_err(|e| e.to_string())?;
                        pool.close().await;
                        Ok((after - before) as usize)
                    }
                    Db::Postgres { url } => {
                        let pool = sqlx::PgPool::connect(url)
                            .await
                            .map_err(|e| e.to_string())?;
                        let before: i64 = sqlx::query_scalar(count)
                            .fetch_one(&pool)
                            .await
                            .unwrap_or(0);
                        m.run(&pool).await.map_err(|e| format!("{e:?}: {e}"))?;
                        let after: i64 = sqlx::query_scalar(count)
                            .fetch_one(&pool)
                            .await
                            .map_err(|e| e.to_string())?;
                        pool.close().await;
                        Ok((after - before) as usize)
                    }
                }
            }),
            Tool::Diesel => {
                let source = FileBasedMigrations::from_path(&dir).map_err(|e| e.to_string())?;
                match self {
                    Db::Sqlite { file, .. } => {
                        let mut c =
                            diesel::SqliteConnection::establish(&file.display().to_string())
                                .map_err(|e| e.to_string())?;
                        c.run_pending_migrations(source)
                            .map(|v| v.len())
                            .map_err(|e| e.to_string())
                    }
                    Db::Postgres { url } => {
                        let mut c =
                            diesel::PgConnection::establish(url).map_err(|e| e.to_string())?;
                        c.run_pending_migrations(source)
                            .map(|v| v.len())
                            .map_err(|e| e.to_string())
                    }
                }
            }
        }
    }

    /// Reverts every migration (the down files); returns the number reverted.
    fn revert_all(
        &self,
        rt: &tokio::runtime::Runtime,
        tool: Tool,
        root: &Path,
    ) -> Result<usize, String> {
        let dir = self.dir(root);
        match tool {
            Tool::Sqlx => rt.block_on(async {
                let m = sqlx::migrate::Migrator::new(dir.as_path())
                    .await
                    .map_err(|e| e.to_string())?;
                let count = "SELECT COUNT(*) FROM _sqlx_migrations";
                macro_rules! undo {
                    ($pool:expr) => {{
                        let pool = $pool;
                        let before: i64 = sqlx::query_scalar(count)
                            .fetch_one(&pool)
                            .await
                            .map_err(|e| e.to_string())?;
                        m.undo(&pool, 0).await.map_err(|e| e.to_string())?;
                        let after: i64 = sqlx::query_scalar(count)
                            .fetch_one(&pool)
                            .await
                            .map_err(|e| e.to_string())?;
                        pool.close().await;
                        Ok((before - after) as usize)
                    }};
                }
                match self {
                    Db::Sqlite { url, .. } => undo!(sqlx::SqlitePool::connect(url)
                        .await
                        .map_err(|e| e.to_string())?),
                    Db::Postgres { url } => undo!(sqlx::PgPool::connect(url)
                        .await
                        .map_err(|e| e.to_string())?),
                }
            }),
            Tool::Diesel => {
                let source = FileBasedMigrations::from_path(&dir).map_err(|e| e.to_string())?;
                match self {
                    Db::Sqlite { file, .. } => {
                        let mut c =
                            diesel::SqliteConnection::establish(&file.display().to_string())
                                .map_err(|e| e.to_string())?;
                        c.revert_all_migrations(source)
                            .map(|v| v.len())
                            .map_err(|e| e.to_string())
                    }
                    Db::Postgres { url } => {
                        let mut c =
                            diesel::PgConnection::establish(url).map_err(|e| e.to_string())?;
                        c.revert_all_migrations(source)
                            .map(|v| v.len())
                            .map_err(|e| e.to_string())
                    }
                }
            }
        }
    }

    /// Tables other than the tools' own bookkeeping (`_sqlx_migrations`,
    /// `__diesel_schema_migrations`).
    fn user_tables(&self, rt: &tokio::runtime::Runtime) -> Vec<String> {
        rt.block_on(async {
            let names: Vec<(String,)> = match self {
                Db::Sqlite { url, .. } => {
                    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                    let v = sqlx::query_as(
                        "SELECT name FROM sqlite_master WHERE type = 'table' \
                         AND name NOT LIKE 'sqlite%' ORDER BY name",
                    )
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                    pool.close().await;
                    v
                }
                Db::Postgres { url } => {
                    let pool = sqlx::PgPool::connect(url).await.unwrap();
                    let v = sqlx::query_as(
                        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
                         ORDER BY tablename",
                    )
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                    pool.close().await;
                    v
                }
            };
            names
                .into_iter()
                .map(|r| r.0)
                .filter(|n| n != "_sqlx_migrations" && n != "__diesel_schema_migrations")
                .collect()
        })
    }

    fn exec_all(&self, rt: &tokio::runtime::Runtime, sql: Vec<String>) {
        rt.block_on(async {
            match self {
                Db::Sqlite { url, .. } => {
                    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                    let mut tx = pool.begin().await.unwrap();
                    for s in sql {
                        sqlx::query(AssertSqlSafe(s.clone()))
                            .execute(&mut *tx)
                            .await
                            .unwrap_or_else(|e| panic!("{s}: {e}"));
                    }
                    tx.commit().await.unwrap();
                    pool.close().await;
                }
                Db::Postgres { url } => {
                    let pool = sqlx::PgPool::connect(url).await.unwrap();
                    let mut tx = pool.begin().await.unwrap();
                    for s in sql {
                        sqlx::query(AssertSqlSafe(s.clone()))
                            .execute(&mut *tx)
                            .await
                            .unwrap_or_else(|e| panic!("{s}: {e}"));
                    }
                    tx.commit().await.unwrap();
                    pool.close().await;
                }
            }
        })
    }

    /// (columns: name → (type as the database spells it, not null), primary key columns, rows).
    #[allow(clippy::type_complexity)]
    fn describe(
        &self,
        rt: &tokio::runtime::Runtime,
        table: &str,
    ) -> (BTreeMap<String, (String, bool)>, BTreeSet<String>, i64) {
        let count = format!("SELECT COUNT(*) FROM {}", quote(table));
        rt.block_on(async {
            match self {
                Db::Sqlite { url, .. } => {
                    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
                        "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)",
                    )
                    .bind(table)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                    let n: i64 = sqlx::query_scalar(AssertSqlSafe(count))
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                    pool.close().await;
                    let cols = rows
                        .iter()
                        .map(|(n, t, nn, _)| (n.clone(), (t.clone(), *nn != 0)))
                        .collect();
                    let pk = rows
                        .iter()
                        .filter(|r| r.3 > 0)
                        .map(|r| r.0.clone())
                        .collect();
                    (cols, pk, n)
                }
                Db::Postgres { url } => {
                    let pool = sqlx::PgPool::connect(url).await.unwrap();
                    let rows: Vec<(String, String, bool)> = sqlx::query_as(
                        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull \
                         FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 \
                         AND NOT a.attisdropped ORDER BY a.attnum",
                    )
                    .bind(quote(table))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                    let pk: Vec<(String,)> = sqlx::query_as(
                        "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
                         ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                         WHERE i.indrelid = $1::regclass AND i.indisprimary",
                    )
                    .bind(quote(table))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                    let n: i64 = sqlx::query_scalar(AssertSqlSafe(count))
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                    pool.close().await;
                    let cols = rows
                        .into_iter()
                        .map(|(n, t, nn)| (n, (t, nn)))
                        .collect();
                    (cols, pk.into_iter().map(|r| r.0).collect(), n)
                }
            }
        })
    }
}

fn expected_type(c: &ColumnDef, b: Backend) -> String {
    match b {
        Backend::Sqlite => c.sqlite_type.clone(),
        Backend::Postgres => pg_spelling(&c.postgres_type),
    }
}

struct Case {
    name: &'static str,
    old: ServiceDir,
    new: ServiceDir,
    opts: MigrateOptions,
}

fn run_case(case: Case) {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("migrations");
    assert_eq!(
        migrate(&root, &case.old, MigrateOptions::default()),
        2,
        "runtime + create"
    );
    let old_tables = read_state(&root, &case.old.name).unwrap().unwrap().tables;

    let pg = PgServer::start().expect("PostgreSQL");
    let mut dbs: Vec<(Tool, Db)> = Vec::new();
    for tool in [Tool::Sqlx, Tool::Diesel] {
        let file = tmp.path().join(format!("{tool:?}.db"));
        std::fs::File::create(&file).unwrap();
        dbs.push((
            tool,
            Db::Sqlite {
                url: format!("sqlite://{}", file.display()),
                file,
            },
        ));
        let url = pg
            .create_database(&format!("{}_{tool:?}", case.name).to_lowercase())
            .unwrap();
        dbs.push((tool, Db::Postgres { url }));
    }

    // The initial migrations, then rows in every table.
    for (tool, db) in &dbs {
        let t0 = Instant::now();
        let n = db.apply(&rt, *tool, &root).unwrap();
        eprintln!(
            "{}: initial migrations ({} tables) applied by {tool:?} on {}: {n} in {:.0} ms",
            case.name,
            old_tables.len() + 2,
            db.backend().as_str(),
            t0.elapsed().as_secs_f64() * 1e3
        );
        assert_eq!(n, 2);
        let mut inserts = Vec::new();
        for t in &old_tables {
            for row in 0..ROWS {
                inserts.push(insert_sql(t, db.backend(), row));
            }
        }
        db.exec_all(&rt, inserts);
    }

    // The transition's migration.
    let written = migrate(&root, &case.new, case.opts);
    let new_state = read_state(&root, &case.new.name).unwrap().unwrap().tables;
    let (m, _) = case.new.model(false);
    let new_tables = case.new.tables(&m.unwrap());
    for t in &new_tables {
        let s = new_state.iter().find(|s| s.name == t.name).unwrap();
        for c in &t.columns {
            assert!(
                s.columns.iter().any(|x| x.name == c.name),
                "{}.{}",
                t.name,
                c.name
            );
        }
    }
    for (tool, db) in &dbs {
        let b = db.backend();
        let n = db.apply(&rt, *tool, &root).unwrap();
        assert_eq!(n, written, "{tool:?} {b:?}");
        for t in &new_state {
            let (cols, pk, rows) = db.describe(&rt, &t.name);
            let want: BTreeMap<String, (String, bool)> = t
                .columns
                .iter()
                .map(|c| (c.name.clone(), (expected_type(c, b), !c.nullable)))
                .collect();
            assert_eq!(cols, want, "{} {tool:?} {b:?}", t.name);
            assert_eq!(
                pk,
                t.primary_key.iter().cloned().collect::<BTreeSet<_>>(),
                "{} {tool:?} {b:?}",
                t.name
            );
            let before = if old_tables.iter().any(|o| o.name == t.name) {
                ROWS as i64
            } else {
                0
            };
            assert_eq!(rows, before, "rows of {} {tool:?} {b:?}", t.name);
        }
        // Applying again is a no-op.
        assert_eq!(db.apply(&rt, *tool, &root).unwrap(), 0, "{tool:?} {b:?}");
    }

    // A hand-edited applied migration: sqlx refuses it (checksum); diesel keeps no checksums,
    // so odatagen's own check (history.json) is what catches it for diesel users.
    let create = format!("{:04}_create_{}", 2, case.old.name);
    for (tool, db) in &dbs {
        let b = db.backend().as_str();
        let file = match tool {
            Tool::Sqlx => root.join(format!("{b}/{create}.up.sql")),
            Tool::Diesel => root.join(format!("{b}/{create}/up.sql")),
        };
        let orig = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, format!("{orig}\n-- edited by hand\n")).unwrap();
        let verify = Migrations::new(&root).verify().unwrap_err().to_string();
        assert!(verify.contains("was edited"), "{verify}");
        match tool {
            Tool::Sqlx => {
                let e = db.apply(&rt, *tool, &root).unwrap_err();
                assert!(e.starts_with("VersionMismatch(2)"), "{e}");
            }
            Tool::Diesel => assert_eq!(db.apply(&rt, *tool, &root).unwrap(), 0),
        }
        std::fs::write(&file, orig).unwrap();
    }
    Migrations::new(&root).verify().unwrap();

    // The down files revert everything, rows or not (SQLite rebuilds back, PostgreSQL converts
    // back in place).
    for (tool, db) in &dbs {
        let b = db.backend();
        let n = db
            .revert_all(&rt, *tool, &root)
            .unwrap_or_else(|e| panic!("{} {tool:?} {b:?}: {e}", case.name));
        assert_eq!(n, 2 + written, "{tool:?} {b:?}");
        assert_eq!(db.user_tables(&rt), Vec::<String>::new(), "{tool:?} {b:?}");
    }
}

#[test]
fn northwind_2010_to_current() {
    run_case(Case {
        name: "northwind",
        old: service(
            "northwind",
            vec![corpus("northwind-v2__service.xml")],
            false,
        ),
        new: service(
            "northwind",
            vec![corpus("northwind-v2-current__metadata.xml")],
            false,
        ),
        opts: MigrateOptions::default(),
    });
}

#[test]
fn reso_1_7_to_2_0() {
    run_case(Case {
        name: "reso",
        old: service(
            "reso",
            vec![corpus("reso-dd__RESODataDictionary-1.7.xml")],
            false,
        ),
        new: service(
            "reso",
            vec![corpus("reso-dd__RESODataDictionary-2.0.xml")],
            false,
        ),
        opts: MigrateOptions::default(),
    });
}

#[test]
fn exact_2019_to_2021() {
    run_case(Case {
        name: "exact",
        old: service(
            "exact",
            xml_files(&repo().join("tests/fixtures/exact-2019")),
            true,
        ),
        new: service(
            "exact",
            xml_files(&repo().join("metadata-cache/exact")),
            true,
        ),
        opts: MigrateOptions::default(),
    });
}

/// Type change (Int32 → Int64, Decimal(18,2) → (28,8)), key change, removed and added columns,
/// a new table: PostgreSQL converts in place, SQLite rebuilds; rows survive both.
#[test]
fn breaking_changes_with_allow_breaking() {
    let fx = |f: &str| repo().join("tests/fixtures/migrations").join(f);
    run_case(Case {
        name: "shop",
        old: service("shop", vec![fx("breaking_v1.xml")], false),
        new: service("shop", vec![fx("breaking_v2.xml")], false),
        opts: MigrateOptions {
            allow_breaking: true,
            drop_removed: false,
        },
    });
}

/// The checked-in `generated/migrations` (written by the generated crate's build.rs) embedded
/// at compile time by `sqlx::migrate!` and diesel's `embed_migrations!` — the macros read the
/// same folders as the runtime loaders above — and applied to fresh databases: every table of
/// every stored state exists with its columns.
static SQLX_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../generated/migrations/sqlite");
static SQLX_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("../generated/migrations/postgres");
const DIESEL_SQLITE: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("../generated/migrations/sqlite");
const DIESEL_POSTGRES: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("../generated/migrations/postgres");

#[test]
fn checked_in_migrations_apply_with_sqlx_migrate_and_diesel_embed_migrations() {
    let root = repo().join("generated/migrations");
    let history = Migrations::new(&root).verify().unwrap();
    let mut tables: Vec<TableDef> = Vec::new();
    let mut services: BTreeSet<&str> = BTreeSet::new();
    for m in &history.migrations {
        services.insert(&m.service);
    }
    for s in &services {
        tables.extend(read_state(&root, s).unwrap().unwrap().tables);
    }
    let n = history.migrations.len();
    assert!(n >= 3, "runtime, exact, northwind");
    assert_eq!(
        SQLX_SQLITE
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .count(),
        n
    );

    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let pg = PgServer::start().expect("PostgreSQL");
    let mut dbs = Vec::new();
    for tool in [Tool::Sqlx, Tool::Diesel] {
        let file = tmp.path().join(format!("{tool:?}.db"));
        std::fs::File::create(&file).unwrap();
        dbs.push((
            tool,
            Db::Sqlite {
                url: format!("sqlite://{}", file.display()),
                file,
            },
        ));
        let url = pg
            .create_database(&format!("checked_in_{tool:?}").to_lowercase())
            .unwrap();
        dbs.push((tool, Db::Postgres { url }));
    }
    for (tool, db) in &dbs {
        let t0 = Instant::now();
        let applied = match (tool, db) {
            (Tool::Sqlx, Db::Sqlite { url, .. }) => rt.block_on(async {
                let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                SQLX_SQLITE.run(&pool).await.unwrap();
                let c: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                SQLX_SQLITE.run(&pool).await.unwrap();
                pool.close().await;
                c as usize
            }),
            (Tool::Sqlx, Db::Postgres { url }) => rt.block_on(async {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                SQLX_POSTGRES.run(&pool).await.unwrap();
                let c: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                SQLX_POSTGRES.run(&pool).await.unwrap();
                pool.close().await;
                c as usize
            }),
            (Tool::Diesel, Db::Sqlite { file, .. }) => {
                let mut c =
                    diesel::SqliteConnection::establish(&file.display().to_string()).unwrap();
                let n = c.run_pending_migrations(DIESEL_SQLITE).unwrap().len();
                assert_eq!(c.run_pending_migrations(DIESEL_SQLITE).unwrap().len(), 0);
                n
            }
            (Tool::Diesel, Db::Postgres { url }) => {
                let mut c = diesel::PgConnection::establish(url).unwrap();
                let n = c.run_pending_migrations(DIESEL_POSTGRES).unwrap().len();
                assert_eq!(c.run_pending_migrations(DIESEL_POSTGRES).unwrap().len(), 0);
                n
            }
        };
        eprintln!(
            "generated/migrations ({} tables) embedded and applied by {tool:?} on {}: {applied} migrations in {:.0} ms",
            tables.len(),
            db.backend().as_str(),
            t0.elapsed().as_secs_f64() * 1e3
        );
        assert_eq!(applied, n, "{tool:?} {:?}", db.backend());
        for t in &tables {
            let (cols, pk, rows) = db.describe(&rt, &t.name);
            let want: BTreeMap<String, (String, bool)> = t
                .columns
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        (expected_type(c, db.backend()), !c.nullable),
                    )
                })
                .collect();
            assert_eq!(cols, want, "{} {tool:?}", t.name);
            assert_eq!(pk, t.primary_key.iter().cloned().collect::<BTreeSet<_>>());
            assert_eq!(rows, 0);
        }
    }
}
