//! The sync engine (`odata_runtime::sync`) end to end: the fake Exact Online in-process on
//! loopback, a real SQLite file and a real PostgreSQL. For each backend and two divisions:
//! a full sync of `financial/GLAccounts` (standard endpoint, 60 rows a page, `Modified` cursor
//! with ties across page boundaries) and `sync/Financial/TransactionLines` (1000 rows a page,
//! `Timestamp` cursor) stores exactly the fake's rows; a simulated crash in the middle of a tie
//! run loses nothing; mutations (insert, update, delete) are fetched incrementally with few
//! calls and deletions set `deleted_at` through `sync/Deleted`; a run without changes reads one
//! page; a full refresh of one entity leaves the other cursor alone; every run is recorded.

use fake_exact::{Config, FakeExact, Handle};
use futures_util::TryStreamExt;
use generated::exact::{GlAccount, TransactionLineSync};
use odata_runtime::client::{Auth, Client, ExactOAuth2, MemoryTokenStore, Secret, TokenSet};
use odata_runtime::sql::{read_rows, Db};
use odata_runtime::sync::{
    apply_migrations, read_cursor, sync_deleted, sync_entity, CursorKind, RunReport, SyncSpec,
};
use odata_runtime::{Dialect, Entity, Table};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIVS: [i32; 2] = [100001, 100002];
const GL: &str = "financial/GLAccounts";
const TL: &str = "sync/Financial/TransactionLines";
const GL_ROWS: u64 = 500;
const TL_ROWS: u64 = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn fake() -> Handle {
    let mut cfg = Config {
        divisions: DIVS.to_vec(),
        minutely_limit: 100_000,
        daily_limit: 1_000_000,
        ..Config::default()
    };
    cfg.rows.insert("GLAccounts".into(), GL_ROWS);
    cfg.rows.insert("TransactionLines".into(), TL_ROWS);
    FakeExact::start(cfg)
}

fn client(h: &Handle) -> Client {
    let (a, r) = h.issue_tokens();
    let now = h.clock().now_ms();
    let store = Arc::new(MemoryTokenStore::new(Some(TokenSet {
        access_token: Secret::new(a),
        refresh_token: Secret::new(r),
        expires_at_ms: now + 600_000,
        obtained_at_ms: now,
    })));
    let cfg = h.config();
    Client::builder(format!("{}/api/v1/{{division}}/", h.base_url()))
        .auth(Auth::ExactOAuth2(ExactOAuth2 {
            client_id: cfg.client_id.clone(),
            client_secret: Secret::new(cfg.client_secret.clone()),
            token_url: format!("{}/api/oauth2/token", h.base_url()),
            redirect_uri: "https://app.example.nl/callback".into(),
            store,
        }))
        .dialect(Dialect::V2)
        .build()
        .expect("client")
}

/// `POST /_test/mutate` (blocking; call outside the runtime).
fn mutate(h: &Handle, ops: serde_json::Value) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/_test/mutate", h.base_url()))
        .header("content-type", "application/json")
        .body(ops.to_string())
        .send()
        .expect("mutate");
    assert!(r.status().is_success(), "mutate: {}", r.text().unwrap());
}

fn guid(h: &Handle, endpoint: &str, div: i32, i: u64) -> String {
    h.key_literal(endpoint, div, i)
        .unwrap()
        .trim_start_matches("guid'")
        .trim_end_matches('\'')
        .to_lowercase()
}

fn spec(entity: &str, endpoint: &str, div: i32) -> SyncSpec {
    SyncSpec::new("exact", entity, endpoint, Some(div))
}

/// What the fake serves now, and what the table holds (not deleted), both sorted by key.
async fn fake_and_stored<E: Entity + Table>(
    c: &Client,
    db: &Db,
    endpoint: &str,
    div: i32,
) -> (Vec<String>, Vec<String>) {
    let served: Vec<E> = c
        .rows::<E>(div)
        .endpoint(endpoint)
        .stream()
        .try_collect()
        .await
        .expect("fake rows");
    let stored: Vec<E> = read_rows(db, E::TABLE, Some(div), Some("\"deleted_at\" IS NULL"))
        .await
        .expect("read");
    let norm = |v: Vec<E>| {
        let mut s: Vec<String> = v.iter().map(|r| format!("{r:?}")).collect();
        s.sort();
        s
    };
    (norm(served), norm(stored))
}

async fn assert_equal<E: Entity + Table>(c: &Client, db: &Db, endpoint: &str, div: i32) {
    let (served, stored) = fake_and_stored::<E>(c, db, endpoint, div).await;
    assert_eq!(served.len(), stored.len(), "{endpoint} {div}: row count");
    assert!(
        served == stored,
        "{endpoint} {div}: stored rows differ from the fake's"
    );
}

async fn runs(db: &Db) -> Vec<(String, i64)> {
    let sql = "SELECT \"status\", COUNT(*) FROM \"odata_sync_runs\" GROUP BY \"status\" ORDER BY \"status\"";
    match db {
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
    }
}

/// The whole scenario on one database (its own fake server).
fn scenario(rt: &tokio::runtime::Runtime, backend: &str, url: &str) {
    let h = fake();
    let c = client(&h);
    let db = rt.block_on(async {
        let db = Db::connect(url).await.expect("connect");
        apply_migrations(&db).await.expect("migrations");
        apply_migrations(&db)
            .await
            .expect("migrations again (no-op)");
        db
    });

    // 1. Full sync of both entities in both divisions.
    let t0 = Instant::now();
    let mut total = 0;
    let mut nruns = 0;
    rt.block_on(async {
        for d in DIVS {
            let gl: RunReport = sync_entity::<GlAccount>(&c, &db, &spec("GLAccounts", GL, d))
                .await
                .expect("GL sync");
            assert_eq!(gl.rows_inserted, GL_ROWS);
            assert_eq!(gl.cursor_kind, Some(CursorKind::Modified));
            assert!(gl.api_calls <= GL_ROWS.div_ceil(60) + 1, "{gl:?}");
            let tl =
                sync_entity::<TransactionLineSync>(&c, &db, &spec("SyncTransactionLines", TL, d))
                    .await
                    .expect("TL sync");
            assert_eq!(tl.rows_inserted, TL_ROWS);
            assert_eq!(tl.cursor_kind, Some(CursorKind::Timestamp));
            assert!(tl.api_calls <= TL_ROWS.div_ceil(1000) + 1, "{tl:?}");
            total += gl.rows_fetched + tl.rows_fetched;
            nruns += 2;
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{backend}: full sync of {total} rows (GLAccounts {GL_ROWS} + SyncTransactionLines {TL_ROWS}, x{} divisions) in {secs:.2} s = {:.0} rows/s ({} build)",
        DIVS.len(),
        total as f64 / secs,
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    rt.block_on(async {
        for d in DIVS {
            assert_equal::<GlAccount>(&c, &db, GL, d).await;
            assert_equal::<TransactionLineSync>(&c, &db, TL, d).await;
            // Int64 cursor kept as exact text.
            let cur = read_cursor(&db, "exact", Some(d), "SyncTransactionLines")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(cur.kind, CursorKind::Timestamp);
            assert!(cur.value.unwrap().chars().all(|ch| ch.is_ascii_digit()));
        }
    });

    // 2. A crash in the middle of a tie run: rows 60.. of division 1 were never written and the
    //    cursor is the Modified of row 59, which rows 56..=62 share (ties of 7 across the page
    //    boundary at 60). With no overlap at all, the closed bound still brings them back.
    let d = DIVS[0];
    let lost: Vec<String> = (60..GL_ROWS).map(|i| guid(&h, GL, d, i)).collect();
    let row59 = guid(&h, GL, d, 59);
    rt.block_on(async {
        let rows: Vec<GlAccount> = read_rows(&db, GlAccount::TABLE, Some(d), None).await.unwrap();
        let m59 = rows
            .iter()
            .find(|r| r.id.to_string() == row59)
            .and_then(|r| r.modified)
            .unwrap();
        let m60 = rows
            .iter()
            .find(|r| r.id.to_string() == lost[0])
            .and_then(|r| r.modified)
            .unwrap();
        assert_eq!(m59, m60, "the fake's tie run straddles the page boundary");
        let list: Vec<String> = lost.iter().map(|k| format!("'{k}'")).collect();
        db.execute_script(&format!(
            "DELETE FROM \"exact_gl_accounts\" WHERE \"division\" = {d} AND \"id\" IN ({});
             UPDATE \"odata_sync_cursors\" SET \"cursor_value\" = '{}' WHERE \"service\" = 'exact' AND \"division\" = {d} AND \"entity\" = 'GLAccounts';",
            list.join(", "),
            m59.format("%Y-%m-%dT%H:%M:%S%.3f")
        ))
        .await
        .unwrap();
        let mut s = spec("GLAccounts", GL, d);
        s.modified_overlap = Duration::ZERO;
        let r = sync_entity::<GlAccount>(&c, &db, &s).await.unwrap();
        assert_eq!(r.rows_inserted, GL_ROWS - 60, "{r:?}");
        assert!(r.rows_fetched < GL_ROWS, "incremental, not a full fetch: {r:?}");
        assert_equal::<GlAccount>(&c, &db, GL, d).await;
        nruns += 1;
    });

    // 3. Mutations on the fake: insert 2, update 1, delete 1 per entity and division.
    let mut ops = Vec::new();
    for d in DIVS {
        for ep in [GL, TL] {
            ops.push(json!({"entity": ep, "division": d, "op": "insert", "count": 2}));
            ops.push(json!({"entity": ep, "division": d, "op": "update",
                "key": h.key_literal(ep, d, 3).unwrap(), "fields": {"Description": "changed by the test"}}));
            ops.push(json!({"entity": ep, "division": d, "op": "delete", "key": h.key_literal(ep, d, 5).unwrap()}));
        }
    }
    mutate(&h, json!(ops));
    rt.block_on(async {
        for d in DIVS {
            let gl = sync_entity::<GlAccount>(&c, &db, &spec("GLAccounts", GL, d))
                .await
                .unwrap();
            assert_eq!(gl.rows_inserted, 2, "{gl:?}");
            assert!(gl.rows_updated >= 1, "{gl:?}");
            assert!(gl.api_calls <= 2, "only the changes: {gl:?}");
            let tl =
                sync_entity::<TransactionLineSync>(&c, &db, &spec("SyncTransactionLines", TL, d))
                    .await
                    .unwrap();
            assert_eq!(
                (tl.rows_inserted, tl.rows_updated, tl.rows_fetched),
                (2, 1, 3),
                "{tl:?}"
            );
            assert!(tl.api_calls <= 2, "only the changes: {tl:?}");
            let rows: Vec<GlAccount> = read_rows(&db, GlAccount::TABLE, Some(d), None)
                .await
                .unwrap();
            let r3 = guid(&h, GL, d, 3);
            let row = rows.iter().find(|r| r.id.to_string() == r3).unwrap();
            assert_eq!(row.description.as_deref(), Some("changed by the test"));
            // Deleted on the fake, still present here until sync/Deleted is read.
            let del = sync_deleted(&c, &db, "exact", d, generated::exact::TABLES)
                .await
                .unwrap();
            assert_eq!(del.rows_fetched, 2, "{del:?}");
            assert_eq!(
                del.rows_deleted, 2,
                "one GLAccounts row, one TransactionLines row: {del:?}"
            );
            assert_equal::<GlAccount>(&c, &db, GL, d).await;
            assert_equal::<TransactionLineSync>(&c, &db, TL, d).await;
            // Never physically deleted.
            assert_eq!(
                db.count(GlAccount::TABLE, Some(d)).await.unwrap(),
                (GL_ROWS + 2) as i64
            );
            // sync/Deleted again: nothing new, one call.
            let again = sync_deleted(&c, &db, "exact", d, generated::exact::TABLES)
                .await
                .unwrap();
            assert_eq!(
                (again.rows_fetched, again.rows_deleted, again.api_calls),
                (0, 0, 1)
            );
            nruns += 4;
        }
    });

    // 4. No changes: about one page each.
    rt.block_on(async {
        for d in DIVS {
            let gl = sync_entity::<GlAccount>(&c, &db, &spec("GLAccounts", GL, d))
                .await
                .unwrap();
            assert_eq!(gl.rows_inserted, 0);
            assert!(gl.api_calls <= 1, "{gl:?}");
            let tl =
                sync_entity::<TransactionLineSync>(&c, &db, &spec("SyncTransactionLines", TL, d))
                    .await
                    .unwrap();
            assert_eq!((tl.rows_fetched, tl.api_calls), (0, 1), "{tl:?}");
            nruns += 2;
        }
    });

    // 5. Full refresh of GLAccounts in division 1: everything fetched again, the other
    //    entity's cursor (and the other division's) untouched.
    rt.block_on(async {
        let d = DIVS[0];
        let tl_before = read_cursor(&db, "exact", Some(d), "SyncTransactionLines")
            .await
            .unwrap();
        let gl_other = read_cursor(&db, "exact", Some(DIVS[1]), "GLAccounts")
            .await
            .unwrap();
        let gl = sync_entity::<GlAccount>(&c, &db, &spec("GLAccounts", GL, d).full_refresh(true))
            .await
            .unwrap();
        assert_eq!(gl.cursor_before, None);
        assert_eq!(gl.rows_fetched, GL_ROWS + 2 - 1);
        assert_eq!(gl.rows_inserted, 0);
        assert_eq!(
            read_cursor(&db, "exact", Some(d), "SyncTransactionLines")
                .await
                .unwrap(),
            tl_before
        );
        assert_eq!(
            read_cursor(&db, "exact", Some(DIVS[1]), "GLAccounts")
                .await
                .unwrap(),
            gl_other
        );
        assert!(read_cursor(&db, "exact", Some(d), "GLAccounts")
            .await
            .unwrap()
            .is_some());
        assert_equal::<GlAccount>(&c, &db, GL, d).await;
        nruns += 1;
        assert_eq!(runs(&db).await, vec![("succeeded".to_string(), nruns)]);

        // 6. A failing run (an endpoint the service does not have) is recorded as failed, with
        //    the service's message, and touches no cursor.
        let err =
            sync_entity::<GlAccount>(&c, &db, &spec("Missing", "financial/NoSuchEndpoint", d))
                .await
                .expect_err("404");
        assert!(err.to_string().contains("404"), "{err}");
        assert_eq!(
            runs(&db).await,
            vec![("failed".to_string(), 1), ("succeeded".to_string(), nruns)]
        );
        assert_eq!(
            read_cursor(&db, "exact", Some(d), "Missing").await.unwrap(),
            None
        );
        let msg: Option<String> = match &db {
            Db::Sqlite(p) => sqlx::query_scalar(
                "SELECT \"message\" FROM \"odata_sync_runs\" WHERE \"status\" = 'failed'",
            )
            .fetch_one(p)
            .await
            .unwrap(),
            Db::Postgres(p) => sqlx::query_scalar(
                "SELECT \"message\" FROM \"odata_sync_runs\" WHERE \"status\" = 'failed'",
            )
            .fetch_one(p)
            .await
            .unwrap(),
        };
        assert!(msg.is_some_and(|m| m.contains("404")));
    });
}

#[test]
fn sync_glaccounts_and_transaction_lines_sqlite() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("sync.sqlite").display()
    );
    scenario(&rt, "sqlite", &url);
}

#[test]
fn sync_glaccounts_and_transaction_lines_postgres() {
    let rt = runtime();
    let pg = odata_test_support::PgServer::start().expect("PostgreSQL");
    let url = pg.create_database("sync_exact").expect("createdb");
    scenario(&rt, "postgres", &url);
}
