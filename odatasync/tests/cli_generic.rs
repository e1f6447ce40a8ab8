//! `odatasync sync` against services that are not Exact Online's OAuth2 API:
//!
//! * an OData V4 service without auth (an axum stand-in for the Northwind service of
//!   `metadata-cache/northwind`): relative `@odata.nextLink`s, an empty last page, `$count`;
//!   every run is a full fetch (Northwind has no cursor property), and a row the service no
//!   longer has gets `deleted_at` after the next complete fetch; into SQLite and PostgreSQL;
//! * an OData V2 service without auth: the fake Exact Online with `require_auth: false` and a
//!   metadata cache whose `service.toml` says `auth = "none"` (absolute `__next` links).

use odata_runtime::sql::{sqlx, Db};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// Rows per page of the V4 stand-in.
const PAGE: usize = 2;

/// The entity sets of the stand-in (every other set of the service is served empty).
#[derive(Default)]
struct Northwind {
    sets: BTreeMap<String, Vec<Value>>,
    /// Every request: path and query.
    log: Vec<String>,
    /// Server-driven paging without next links (a server that truncates silently).
    no_next_links: bool,
}

fn customer(id: &str, name: &str, city: Option<&str>) -> Value {
    json!({
        "CustomerID": id, "CompanyName": name, "ContactName": "Maria Anders",
        "ContactTitle": null, "Address": "Obere Str. 57", "City": city, "Region": null,
        "PostalCode": "12209", "Country": "Germany", "Phone": "030-0074321", "Fax": null
    })
}

fn northwind_data() -> Northwind {
    let mut sets = BTreeMap::new();
    sets.insert(
        "Customers".to_string(),
        vec![
            customer("ALFKI", "Alfreds Futterkiste", Some("Berlin")),
            customer(
                "ANATR",
                "Ana Trujillo Emparedados y helados",
                Some("México D.F."),
            ),
            customer("ANTON", "Antonio Moreno Taquería", None),
            customer("AROUT", "Around the Horn", Some("London")),
            customer("BERGS", "Berglunds snabbköp", Some("Luleå")),
        ],
    );
    sets.insert(
        "Shippers".to_string(),
        vec![
            json!({"ShipperID": 1, "CompanyName": "Speedy Express", "Phone": "(503) 555-9831"}),
            json!({"ShipperID": 2, "CompanyName": "United Package", "Phone": null}),
            json!({"ShipperID": 3, "CompanyName": "Federal Shipping", "Phone": "(503) 555-9931"}),
        ],
    );
    sets.insert(
        "Categories".to_string(),
        vec![
            json!({"CategoryID": 1, "CategoryName": "Beverages", "Description": "Soft drinks", "Picture": "AQID"}),
            json!({"CategoryID": 2, "CategoryName": "Condiments", "Description": null, "Picture": null}),
        ],
    );
    Northwind {
        sets,
        log: Vec::new(),
        no_next_links: false,
    }
}

/// Serves `/svc/<Set>` (pages of [`PAGE`] rows; each non-empty page links to the next with a
/// relative `@odata.nextLink`, so the last page is empty) and `/svc/<Set>/$count`.
async fn northwind_server(state: Arc<Mutex<Northwind>>) -> String {
    use axum::extract::Request;
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(move |req: Request| {
        let state = state.clone();
        async move {
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            let mut st = state.lock().unwrap();
            st.log.push(format!("{path}?{query}"));
            let Some(rest) = path.strip_prefix("/svc/") else {
                return (StatusCode::NOT_FOUND, "not found").into_response();
            };
            if let Some(set) = rest.strip_suffix("/$count") {
                let n = st.sets.get(set).map_or(0, Vec::len);
                return ([(header::CONTENT_TYPE, "text/plain")], n.to_string()).into_response();
            }
            let set = rest.to_string();
            // `$skiptoken` (our next links) or a client's `$skip` (no next links); the page
            // is capped at PAGE rows whatever `$top` asks for.
            let skip: usize = query
                .split('&')
                .find_map(|kv| {
                    kv.strip_prefix("$skiptoken=")
                        .or_else(|| kv.strip_prefix("$skip="))
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let rows = st.sets.get(&set).cloned().unwrap_or_default();
            let page: Vec<Value> = rows.iter().skip(skip).take(PAGE).cloned().collect();
            let mut body = json!({
                "@odata.context": format!("$metadata#{set}"),
                "value": page,
            });
            if !page.is_empty() && !st.no_next_links {
                body["@odata.nextLink"] = json!(format!("{set}?$skiptoken={}", skip + PAGE));
            }
            (
                [(
                    header::CONTENT_TYPE,
                    "application/json;odata.metadata=minimal;IEEE754Compatible=true",
                )],
                body.to_string(),
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/svc/")
}

/// Runs the binary (off the test's runtime, which serves the fixture).
async fn odatasync(args: Vec<String>, envs: Vec<(String, String)>, home: &Path) -> Output {
    let home = home.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_odatasync"));
        c.args(&args)
            .env("HOME", &home)
            .env_remove("ODATASYNC_BASE_URL")
            .env_remove("ODATASYNC_METADATA_CACHE")
            .env_remove("ODATASYNC_DATABASE");
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().unwrap()
    })
    .await
    .unwrap()
}

fn check(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status.code()
    );
    stdout
}

/// `(key, name, deleted)` of every stored row of a table, by key.
async fn stored(db: &Db, sql: &str) -> Vec<(String, Option<String>, i32)> {
    match db {
        Db::Sqlite(p) => {
            sqlx::query_as::<_, (String, Option<String>, i32)>(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_all(p)
                .await
                .unwrap()
        }
        Db::Postgres(p) => {
            sqlx::query_as::<_, (String, Option<String>, i32)>(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_all(p)
                .await
                .unwrap()
        }
    }
}

const CUSTOMERS: &str = "SELECT customer_id, company_name, CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END FROM northwind_customers ORDER BY customer_id";
const SHIPPERS: &str = "SELECT CAST(shipper_id AS TEXT), phone, CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END FROM northwind_shippers ORDER BY shipper_id";
const CATEGORIES: &str = "SELECT CAST(category_id AS TEXT), description, CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END FROM northwind_categories ORDER BY category_id";

fn expected(rows: &[Value], key: &str, col: &str) -> Vec<(String, Option<String>, i32)> {
    let mut v: Vec<(String, Option<String>, i32)> = rows
        .iter()
        .map(|r| {
            let k = match &r[key] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k, r[col].as_str().map(String::from), 0)
        })
        .collect();
    v.sort();
    v
}

/// Full syncs of the V4 stand-in into `database`: rows equal the service's, a second run
/// works, a removed row gets `deleted_at`.
async fn v4_scenario(database: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let state = Arc::new(Mutex::new(northwind_data()));
    let base = northwind_server(state.clone()).await;
    let args: Vec<String> = [
        "--no-progress",
        "sync",
        "--service",
        "northwind",
        "--database",
        database,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let envs = vec![("ODATASYNC_BASE_URL".to_string(), base.clone())];

    // 1. Every entity set of the service (no config.json: all of them).
    let out = check(&odatasync(args.clone(), envs.clone(), tmp.path()).await);
    assert!(out.contains("Customers"), "{out}");
    assert!(!out.contains("failed "), "{out}");
    let db = Db::connect(database).await.unwrap();
    let data = northwind_data();
    assert_eq!(
        stored(&db, CUSTOMERS).await,
        expected(&data.sets["Customers"], "CustomerID", "CompanyName")
    );
    assert_eq!(
        stored(&db, SHIPPERS).await,
        expected(&data.sets["Shippers"], "ShipperID", "Phone")
    );
    assert_eq!(
        stored(&db, CATEGORIES).await,
        expected(&data.sets["Categories"], "CategoryID", "Description")
    );
    {
        let st = state.lock().unwrap();
        // The relative next links were followed up to the empty last page (5 rows: pages at
        // 0, 2, 4 and the empty one at 6).
        for skip in [2, 4, 6] {
            assert!(
                st.log.iter().any(|l| l.starts_with("/svc/Customers?")
                    && l.contains(&format!("$skiptoken={skip}"))),
                "no request for skiptoken {skip}: {:?}",
                st.log
            );
        }
        assert!(st
            .log
            .iter()
            .any(|l| l.starts_with("/svc/Customers/$count")));
    }

    // 2. Again: a full fetch again (no cursor property), nothing changes.
    let calls_before = state.lock().unwrap().log.len();
    let out = check(&odatasync(args.clone(), envs.clone(), tmp.path()).await);
    assert!(out.contains("changed: "), "{out}");
    let customers_requests = state.lock().unwrap().log[calls_before..]
        .iter()
        .filter(|l| l.starts_with("/svc/Customers?"))
        .count();
    assert_eq!(
        customers_requests, 4,
        "a full fetch of 5 rows in pages of 2 plus the empty page"
    );
    assert_eq!(
        stored(&db, CUSTOMERS).await,
        expected(&data.sets["Customers"], "CustomerID", "CompanyName")
    );

    // 3. A customer removed at the source: deleted_at after the next complete fetch.
    state
        .lock()
        .unwrap()
        .sets
        .get_mut("Customers")
        .unwrap()
        .retain(|c| c["CustomerID"] != "ANTON");
    let out = check(&odatasync(args.clone(), envs.clone(), tmp.path()).await);
    assert!(out.contains("Customers"), "{out}");
    let rows = stored(&db, CUSTOMERS).await;
    let deleted: Vec<&str> = rows
        .iter()
        .filter(|r| r.2 == 1)
        .map(|r| r.0.as_str())
        .collect();
    assert_eq!(deleted, ["ANTON"], "{rows:?}");
    assert_eq!(rows.len(), 5, "rows are never physically deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_without_auth_into_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", tmp.path().join("nw.sqlite").display());
    v4_scenario(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_without_auth_into_postgres() {
    let pg = match odata_test_support::PgServer::start() {
        Ok(pg) => pg,
        Err(e) => panic!("PostgreSQL (run scripts/test once to install it): {e}"),
    };
    let url = pg.create_database("northwind_sync").unwrap();
    v4_scenario(&url).await;
}

/// A copy of `metadata-cache/exact` whose service.toml logs in with nothing.
fn exact_cache_without_auth(root: &Path, base_url: &str) -> std::path::PathBuf {
    let src = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../metadata-cache/exact"
    ));
    let cache = root.join("cache");
    let dst = cache.join("exact");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::write(dst.join(p.file_name().unwrap()), std::fs::read(&p).unwrap()).unwrap();
        }
    }
    std::fs::write(
        dst.join("service.toml"),
        format!("base_url = \"{base_url}/api/v1/{{division}}/\"\nauth = \"none\"\n"),
    )
    .unwrap();
    cache
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_without_auth_fake_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_exact::FakeExact::start(fake_exact::Config {
        require_auth: false,
        rows: BTreeMap::from([("GLAccounts".to_string(), 25), ("Journals".to_string(), 7)]),
        // Small pages: several absolute `__next` links per entity.
        page_size: 3,
        bulk_page_size: 10,
        minutely_limit: 10_000,
        ..fake_exact::Config::default()
    });
    let cache = exact_cache_without_auth(tmp.path(), fake.base_url());
    let db_url = format!(
        "sqlite:{}?mode=rwc",
        tmp.path().join("exact.sqlite").display()
    );
    let args: Vec<String> = vec![
        "--metadata-cache".into(),
        cache.display().to_string(),
        "--no-progress".into(),
        "sync".into(),
        "--service".into(),
        "exact".into(),
        "--division".into(),
        "100001".into(),
        "--entities".into(),
        "SyncGLAccounts,Journals".into(),
        "--database".into(),
        db_url.clone(),
    ];
    let out = check(&odatasync(args.clone(), vec![], tmp.path()).await);
    assert!(out.contains("SyncGLAccounts"), "{out}");
    assert!(out.contains("Journals"), "{out}");
    let db = Db::connect(&db_url).await.unwrap();
    let Db::Sqlite(p) = &db else { unreachable!() };
    let count = |table: &'static str| {
        let p = p.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM {table} WHERE division = 100001 AND deleted_at IS NULL"
            )))
            .fetch_one(&p)
            .await
            .unwrap()
        }
    };
    assert_eq!(count("exact_sync_gl_accounts").await, 25);
    assert_eq!(count("exact_journals").await, 7);
    // A second run is incremental for the sync endpoint and complete for Journals.
    let out = check(&odatasync(args, vec![], tmp.path()).await);
    assert!(!out.contains("failed "), "{out}");
    assert_eq!(count("exact_sync_gl_accounts").await, 25);
    assert_eq!(count("exact_journals").await, 7);
}

/// A server that pages without next links: the client has `$skip` paging
/// (`Query::skip_paging`), but the sync does not turn it on, so only the first page arrives;
/// `check_count` (the default) catches the truncation instead of reporting success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_paging_without_next_links_fails_the_count_check() {
    let tmp = tempfile::tempdir().unwrap();
    let mut data = northwind_data();
    data.no_next_links = true;
    let state = Arc::new(Mutex::new(data));
    let base = northwind_server(state.clone()).await;
    let db = format!("sqlite:{}?mode=rwc", tmp.path().join("nw.sqlite").display());
    let args: Vec<String> = [
        "--no-progress",
        "sync",
        "--service",
        "northwind",
        "--entities",
        "Customers",
        "--database",
        &db,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = odatasync(args, vec![("ODATASYNC_BASE_URL".into(), base)], tmp.path()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("check_count: 2 rows stored, the service counts 5"),
        "{stderr}"
    );
}

/// The same server with `"skip_paging": 2` in config.json (an extension): the sync pages with
/// `$top=2&$skip=N` and stores every row; check_count passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_paging_without_next_links_works_with_skip_paging() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let nw = cache.join("northwind");
    std::fs::create_dir_all(&nw).unwrap();
    let src = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../metadata-cache/northwind"
    ));
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), nw.join(e.file_name())).unwrap();
    }
    std::fs::write(
        nw.join("config.json"),
        r#"{"Customers": {"endpoint": "Customers", "skip_paging": 2}}"#,
    )
    .unwrap();
    let mut data = northwind_data();
    data.no_next_links = true;
    let state = Arc::new(Mutex::new(data));
    let base = northwind_server(state.clone()).await;
    let db = format!("sqlite:{}?mode=rwc", tmp.path().join("nw.sqlite").display());
    let args: Vec<String> = [
        "--no-progress",
        "--metadata-cache",
        cache.to_str().unwrap(),
        "sync",
        "--service",
        "northwind",
        "--entities",
        "Customers",
        "--database",
        &db,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = odatasync(args, vec![("ODATASYNC_BASE_URL".into(), base)], tmp.path()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let log = state.lock().unwrap().log.clone();
    assert!(
        log.iter()
            .any(|l| l.contains("$skip=4") && l.contains("$top=2")),
        "{log:?}"
    );
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM northwind_customers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 5);
}
