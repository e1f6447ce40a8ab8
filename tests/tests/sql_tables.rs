//! The generated table constants and their SQL: golden snapshots for Northwind (the service in
//! `metadata-cache/`) and the SQL-keyword fixture, the generated SQL executed on SQLite and
//! PostgreSQL for the keyword fixture (every identifier quoted), and a standalone crate with
//! tables that compiles. Update with `INSTA_UPDATE=always cargo test -p odata-tests --test sql_tables`.

mod common;

use common::*;
use odata_codegen::emit::rust::{emit_crate, CrateOptions, Layout};
use odata_codegen::emit::sql_tables::{table_sql, tables_source};
use odata_codegen::model::selection::Selection;
use odata_codegen::service::ServiceDir;
use odata_codegen::sql::{tables, ColumnKind, TableDef, TableOptions};
use odata_runtime::sql::sqlx;
use odata_runtime::sql::sqlx::AssertSqlSafe;
use odata_runtime::sql::Db;
use std::fmt::Write as _;

fn northwind() -> (odata_codegen::Model, Vec<TableDef>) {
    let sd = ServiceDir::load(&repo().join("metadata-cache/northwind")).expect("service");
    let (m, d) = sd.model(false);
    let m = m.unwrap_or_else(|| panic!("northwind: {d}"));
    let t = sd.tables(&m);
    (m, t)
}

fn keywords() -> (odata_codegen::Model, Vec<TableDef>) {
    let f = fixtures().join("adversarial/sql_keywords.xml");
    let (m, d) = model(&[f], Selection::All, false);
    let m = m.unwrap_or_else(|| panic!("sql_keywords: {d}"));
    let opts = TableOptions {
        prefix: "sql".into(),
        has_divisions: true,
        ..Default::default()
    };
    let t = tables(&m, &opts);
    (m, t)
}

/// Tables and their SQL as review-friendly text.
fn render(tables: &[TableDef]) -> String {
    let mut out = String::new();
    for t in tables {
        let _ = writeln!(
            out,
            "== {} (entity {}, set {}, type {}, division {})",
            t.name, t.entity, t.entity_set, t.entity_type, t.division
        );
        for c in &t.columns {
            let _ = writeln!(
                out,
                "  {} {} wire={} nullable={} sqlite={} postgres={}",
                c.name,
                c.kind.as_str(),
                c.wire_name.as_deref().unwrap_or("-"),
                c.nullable,
                c.sqlite_type,
                c.postgres_type
            );
        }
        let _ = writeln!(out, "  primary key: {:?}", t.primary_key);
        let s = table_sql(t);
        let _ = writeln!(out, "  upsert sqlite:   {}", s.upsert_sqlite);
        let _ = writeln!(out, "  upsert postgres: {}", s.upsert_postgres);
        let _ = writeln!(out, "  select sqlite:   {}", s.select_sqlite);
        let _ = writeln!(out, "  select postgres: {}", s.select_postgres);
    }
    out
}

fn snap(name: &str, text: String) {
    insta::with_settings!({ snapshot_path => "snapshots/sql_tables", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn northwind_tables_and_sql() {
    let (_, t) = northwind();
    snap("northwind_tables_sql", render(&t));
}

#[test]
fn sql_keyword_tables_and_sql() {
    let (m, t) = keywords();
    snap("sql_keywords_tables_sql", render(&t));
    let code = tables_source(
        &m,
        &Layout {
            root: "crate".into(),
        },
        &t,
    )
    .expect("tables source");
    snap("sql_keywords_tables_rust", code);
    let diesel = odata_codegen::emit::diesel::diesel_source(
        &m,
        &Layout {
            root: "crate::sql".into(),
        },
        &t,
    )
    .expect("diesel source");
    snap("sql_keywords_diesel_rust", diesel);
}

#[test]
fn batch_pieces_compose_the_one_row_statement() {
    for t in northwind().1.iter().chain(keywords().1.iter()) {
        let s = table_sql(t);
        assert_eq!(
            s.upsert_sqlite,
            format!("{}{}{}", s.insert_head, s.values_sqlite, s.upsert_tail)
        );
        assert_eq!(
            s.upsert_postgres,
            format!("{}{}{}", s.insert_head, s.values_postgres, s.upsert_tail)
        );
        let inserted = t
            .columns
            .iter()
            .filter(|c| c.kind != ColumnKind::DeletedAt)
            .count();
        assert_eq!(s.values_sqlite.matches('?').count(), inserted, "{}", t.name);
        assert!(
            s.values_postgres.contains(&format!("${inserted}"))
                && !s.values_postgres.contains(&format!("${}", inserted + 1)),
            "{}",
            t.name
        );
        if t.primary_key.is_empty() {
            assert!(s.upsert_tail.is_empty());
        } else {
            // Every non-key column is updated; deleted_at is reset.
            for c in &t.columns {
                let set = format!("\"{}\" = ", c.name);
                assert_eq!(
                    s.upsert_tail.contains(&set),
                    !t.primary_key.contains(&c.name),
                    "{}.{}",
                    t.name,
                    c.name
                );
            }
            assert!(s.upsert_tail.ends_with("\"deleted_at\" = NULL"));
        }
    }
}

fn create_table(t: &TableDef, pg: bool) -> String {
    let mut parts: Vec<String> = t
        .columns
        .iter()
        .map(|c| {
            let ty = if pg { &c.postgres_type } else { &c.sqlite_type };
            let nn = if c.nullable { "" } else { " NOT NULL" };
            format!("\"{}\" {ty}{nn}", c.name)
        })
        .collect();
    parts.push(format!(
        "PRIMARY KEY ({})",
        t.primary_key
            .iter()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    format!("CREATE TABLE \"{}\" ({})", t.name, parts.join(", "))
}

/// The keyword fixture's statements run as generated: columns named `order`, `group`, `key`,
/// `select`, … and tables named after keywords.
#[test]
fn sql_keyword_statements_execute_on_sqlite_and_postgres() {
    let (_, tables) = keywords();
    let pg = odata_test_support::PgServer::start().expect("PostgreSQL");
    let url = pg.create_database("keywords").expect("createdb");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sqlite = Db::connect("sqlite::memory:").await.unwrap();
        let postgres = Db::connect(&url).await.unwrap();
        for db in [&sqlite, &postgres] {
            let is_pg = matches!(db, Db::Postgres(_));
            for t in &tables {
                db.execute_script(&create_table(t, is_pg)).await.unwrap();
                let s = table_sql(t);
                for round in 0..2i64 {
                    // Key columns (division, id) bound; every other column text or NULL.
                    let cols: Vec<_> = t
                        .columns
                        .iter()
                        .filter(|c| c.kind != ColumnKind::DeletedAt)
                        .collect();
                    match db {
                        Db::Sqlite(p) => {
                            let mut q = sqlx::query(AssertSqlSafe(s.upsert_sqlite.clone()));
                            for c in &cols {
                                q = match c.kind {
                                    ColumnKind::Division | ColumnKind::Int32 => q.bind(1i32),
                                    ColumnKind::Text => q.bind(format!("v{round}")),
                                    ColumnKind::SyncedAt => q.bind("2025-01-01T00:00:00Z"),
                                    _ => q.bind(Option::<i64>::None),
                                };
                            }
                            q.execute(p).await.unwrap();
                        }
                        Db::Postgres(p) => {
                            let mut q = sqlx::query(AssertSqlSafe(s.upsert_postgres.clone()));
                            for c in &cols {
                                q = match c.kind {
                                    ColumnKind::Division | ColumnKind::Int32 => q.bind(1i32),
                                    ColumnKind::Text => q.bind(format!("v{round}")),
                                    ColumnKind::SyncedAt => q.bind(chrono::Utc::now()),
                                    ColumnKind::Int64 => q.bind(Option::<i64>::None),
                                    _ => q.bind(Option::<String>::None),
                                };
                            }
                            q.execute(p).await.unwrap();
                        }
                    }
                }
                let n = match db {
                    Db::Sqlite(p) => sqlx::query(AssertSqlSafe(s.select_sqlite.clone()))
                        .fetch_all(p)
                        .await
                        .unwrap()
                        .len(),
                    Db::Postgres(p) => sqlx::query(AssertSqlSafe(s.select_postgres.clone()))
                        .fetch_all(p)
                        .await
                        .unwrap()
                        .len(),
                };
                assert_eq!(n, 1, "{}: one row after two upserts", t.name);
            }
        }
    });
}

/// A standalone crate with its tables (`src/odata_tables.rs`) compiles with `-D warnings`,
/// including entity types with two entity sets (two tables, one `Table` impl).
#[test]
fn standalone_crate_with_tables_compiles() {
    let (m, t) = keywords();
    let root = repo().join("target/tmp/sql-tables-crate");
    let _ = std::fs::remove_dir_all(&root);
    let runtime = repo().join("runtime").canonicalize().unwrap();
    let opts = CrateOptions {
        name: "sql_keywords_tables".into(),
        runtime_dependency: format!(
            "{{ path = \"{}\", default-features = false }}",
            runtime.display()
        ),
        standalone: false,
        tables: t,
    };
    let files = emit_crate(&m, &opts).expect("emit");
    assert!(files.contains_key("src/odata_tables.rs"));
    odata_codegen::write::write_files(&root.join("sql_keywords_tables"), &files).unwrap();
    cargo_check_workspace(&root, &["sql_keywords_tables".to_string()])
        .unwrap_or_else(|e| panic!("does not compile:\n{e}"));
}
