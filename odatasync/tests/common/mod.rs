//! What the `odatasync` acceptance tests share: the fake Exact Online started in the test
//! process, the real binary run as a subprocess with the environment pointing at it, and the
//! checks made on the database directly (sqlx) against what the fake serves.
#![allow(dead_code)]

use fake_exact::{Clock, Config, FakeExact, Handle, Stats};
use futures_util::future::BoxFuture;
use futures_util::TryStreamExt;
use odata_runtime::client::{Auth, Client, ExactOAuth2, MemoryTokenStore, Secret, TokenSet};
use odata_runtime::sql::{read_rows, sqlx, Db};
use odata_runtime::{Dialect, Entity, TableInfo, TableVisitor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const SERVICE: &str = "exact";

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub fn metadata_cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata-cache")
}

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One `config.json` entity (read here, independently of `odatasync`'s planner).
#[derive(Debug, Clone)]
pub struct ConfigEntity {
    pub name: String,
    pub endpoint: String,
    pub table: &'static TableInfo,
    pub one_division_only: bool,
    pub skip: bool,
    /// `sync/Deleted`: fills no table of its own that the tests compare.
    pub deletion_log: bool,
}

impl ConfigEntity {
    pub fn is_bulk_or_sync(&self) -> bool {
        let e = self.endpoint.to_ascii_lowercase();
        e.starts_with("bulk/") || e.starts_with("sync/")
    }
}

/// Every entity of `metadata-cache/exact/config.json`.
pub fn config_entities() -> Vec<ConfigEntity> {
    let path = metadata_cache().join(SERVICE).join("config.json");
    let text = std::fs::read_to_string(&path).expect("config.json");
    let v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("config.json is JSON");
    let tables = generated::tables(SERVICE).expect("exact tables");
    v.into_iter()
        .map(|(name, c)| {
            let endpoint = c["endpoint"].as_str().expect("endpoint").to_string();
            let table = tables
                .iter()
                .find(|t| t.entity == name)
                .unwrap_or_else(|| panic!("no table for {name}"));
            ConfigEntity {
                deletion_log: endpoint.eq_ignore_ascii_case("sync/Deleted"),
                one_division_only: c["one_division_only"].as_bool().unwrap_or(false),
                skip: c["skip"].as_bool().unwrap_or(false),
                name,
                endpoint,
                table,
            }
        })
        .collect()
}

/// The entities a default `odatasync sync` runs (not skipped).
pub fn default_entities() -> Vec<ConfigEntity> {
    config_entities().into_iter().filter(|e| !e.skip).collect()
}

pub fn entity(name: &str) -> ConfigEntity {
    config_entities()
        .into_iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no entity {name} in config.json"))
}

/// Starts the fake with a clock that agrees with the subprocess's system clock, and returns
/// it with a refresh token whose chain is old enough (> 570 s, exact-online.md §3) to be
/// refreshed at once: the fake's clock starts 600 s in the past, the pair is issued, then the
/// clock jumps to now.
pub fn start_fake(mut cfg: Config) -> (Handle, String) {
    let clock = Clock::starting_at(system_ms() - 600_000, 1.0);
    cfg.clock = clock.clone();
    // The metadata this workspace's binary was built from (fake-exact's default is its own
    // crate folder at build time).
    cfg.metadata_dir = metadata_cache().join(SERVICE);
    let h = FakeExact::start(cfg);
    let (_access, refresh) = h.issue_tokens();
    clock.advance(Duration::from_millis(600_000));
    (h, refresh)
}

/// A fake with high rate limits.
pub fn roomy_config(divisions: &[i32], rows: u64) -> Config {
    Config {
        divisions: divisions.to_vec(),
        rows_per_entity: rows,
        minutely_limit: 1_000_000,
        daily_limit: 10_000_000,
        ..Config::default()
    }
}

/// A client of the test process itself (its own token chain) for reading what the fake
/// serves.
pub fn verifier(h: &Handle) -> Client {
    verifier_with_clock(h, Arc::new(odata_runtime::client::SystemClock))
}

/// [`verifier`] on a given clock.
pub fn verifier_with_clock(h: &Handle, clock: Arc<dyn odata_runtime::client::Clock>) -> Client {
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
        .clock(clock)
        .build()
        .expect("verifier client")
}

/// What a finished `odatasync` process left.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Out {
    pub fn assert_code(&self, code: i32, what: &str) {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
    }

    /// The summary table: (entity, division) → (status, rows, new, updated, deleted, calls).
    pub fn summary(&self) -> BTreeMap<(String, String), SummaryRow> {
        let mut out = BTreeMap::new();
        let mut in_table = false;
        for line in self.stdout.lines() {
            if line.starts_with("entity ") && line.contains("calls") {
                in_table = true;
                continue;
            }
            if !in_table || line.starts_with("---") {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 9 {
                in_table = false;
                continue;
            }
            let n = |i: usize| f[i].parse::<u64>().unwrap_or(u64::MAX);
            out.insert(
                (f[0].to_string(), f[1].to_string()),
                SummaryRow {
                    status: f[2].to_string(),
                    rows: n(3),
                    new: n(4),
                    updated: n(5),
                    deleted: n(6),
                    calls: n(7),
                },
            );
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    pub status: String,
    pub rows: u64,
    pub new: u64,
    pub updated: u64,
    pub deleted: u64,
    pub calls: u64,
}

/// The environment of one `odatasync` installation: a temp folder (key file, SQLite file,
/// hook output), the database URL and the fake's coordinates.
pub struct Cli {
    pub dir: tempfile::TempDir,
    pub key_file: PathBuf,
    pub db_url: String,
    pub base_url: String,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
}

impl Cli {
    /// `db_url`: `None` for a SQLite file in the temp folder.
    pub fn new(h: &Handle, refresh_token: &str, db_url: Option<String>) -> Cli {
        let dir = tempfile::tempdir().expect("temp dir");
        let key_file = dir.path().join("secret.key");
        let db_url =
            db_url.unwrap_or_else(|| format!("sqlite:{}", dir.path().join("x.sqlite").display()));
        Cli {
            key_file,
            db_url,
            base_url: format!("{}/api/v1/{{division}}/", h.base_url()),
            token_url: format!("{}/api/oauth2/token", h.base_url()),
            client_id: h.config().client_id.clone(),
            client_secret: h.config().client_secret.clone(),
            refresh_token: refresh_token.to_string(),
            dir,
        }
    }

    /// The URL the test opens the database with.
    pub fn open_url(&self) -> String {
        if self.db_url.starts_with("sqlite:") {
            format!("{}?mode=rwc", self.db_url)
        } else {
            self.db_url.clone()
        }
    }

    /// `odatasync ARGS` with the environment set (nothing inherited that could change it).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_odatasync"));
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("ODATASYNC_SECRET_KEY")
            .env_remove("ODATASYNC_DATABASE")
            .env_remove("ODATASYNC_REDIRECT_URI")
            .env_remove("RUST_LOG")
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("ODATASYNC_METADATA_CACHE", metadata_cache())
            .env("ODATASYNC_BASE_URL", &self.base_url)
            .env("ODATASYNC_TOKEN_URL", &self.token_url)
            .env("ODATASYNC_CLIENT_ID", &self.client_id)
            .env("ODATASYNC_CLIENT_SECRET", &self.client_secret)
            .env("ODATASYNC_REFRESH_TOKEN", &self.refresh_token)
            .env("ODATASYNC_SECRET_KEY_FILE", &self.key_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// `odatasync sync --service exact --database URL --no-progress EXTRA...`
    pub fn sync_command(&self, extra: &[&str]) -> Command {
        let mut args = vec![
            "sync",
            "--service",
            SERVICE,
            "--database",
            &self.db_url,
            "--no-progress",
        ];
        args.extend_from_slice(extra);
        self.command(&args)
    }

    pub fn run(&self, args: &[&str]) -> Out {
        output(self.command(args))
    }

    pub fn sync(&self, extra: &[&str]) -> Out {
        output(self.sync_command(extra))
    }
}

pub fn output(mut c: Command) -> Out {
    let started = Instant::now();
    let o = c.output().expect("run odatasync");
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// `POST /_test/mutate` with an array of operations.
pub async fn mutate(h: &Handle, ops: serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/_test/mutate", h.base_url()))
        .header("content-type", "application/json")
        .body(ops.to_string())
        .send()
        .await
        .expect("mutate");
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert!(status.is_success(), "mutate: {body}");
}

/// `POST /_test/faults`.
pub async fn set_faults(h: &Handle, faults: &fake_exact::Faults) {
    let r = reqwest::Client::new()
        .post(format!("{}/_test/faults", h.base_url()))
        .header("content-type", "application/json")
        .body(serde_json::to_string(faults).expect("faults"))
        .send()
        .await
        .expect("faults");
    assert!(r.status().is_success());
}

/// The key (without `guid'…'`, lower case) of generated row `i`.
pub fn guid(h: &Handle, endpoint: &str, div: i32, i: u64) -> String {
    h.key_literal(endpoint, div, i)
        .expect("key")
        .trim_start_matches("guid'")
        .trim_end_matches('\'')
        .to_lowercase()
}

/// Stored (not deleted) rows of a table against what the fake serves at `endpoint`.
#[derive(Debug, Clone)]
pub struct Compared {
    pub served: usize,
    pub stored: usize,
    /// The first differing rows (served, stored), when any.
    pub diff: Option<(String, String)>,
}

impl Compared {
    pub fn equal(&self) -> bool {
        self.served == self.stored && self.diff.is_none()
    }
}

async fn compare_as<E: Entity>(
    c: Client,
    db: Db,
    table: &'static TableInfo,
    endpoint: String,
    div: i32,
) -> Compared {
    let served: Vec<E> = c
        .rows::<E>(div)
        .endpoint(&endpoint)
        .stream()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("fake rows of {endpoint} {div}: {e}"));
    let stored: Vec<E> = read_rows(&db, table, Some(div), Some("\"deleted_at\" IS NULL"))
        .await
        .unwrap_or_else(|e| panic!("read {}: {e}", table.name));
    let norm = |v: &[E]| {
        let mut s: Vec<String> = v.iter().map(|r| format!("{r:?}")).collect();
        s.sort();
        s
    };
    let (a, b) = (norm(&served), norm(&stored));
    let diff = if a == b {
        None
    } else {
        let first = a
            .iter()
            .zip(b.iter())
            .find(|(x, y)| x != y)
            .map(|(x, y)| (x.clone(), y.clone()))
            .unwrap_or_else(|| {
                (
                    a.get(b.len()).cloned().unwrap_or_default(),
                    b.get(a.len()).cloned().unwrap_or_default(),
                )
            });
        Some(first)
    };
    Compared {
        served: served.len(),
        stored: stored.len(),
        diff,
    }
}

struct CompareVisitor {
    target: &'static str,
    client: Client,
    db: Db,
    endpoint: String,
    div: i32,
    fut: Option<BoxFuture<'static, Compared>>,
}

impl TableVisitor for CompareVisitor {
    fn visit<E: Entity + PartialEq>(&mut self, table: &'static TableInfo) {
        if self.fut.is_none() && table.name == self.target {
            self.fut = Some(Box::pin(compare_as::<E>(
                self.client.clone(),
                self.db.clone(),
                table,
                self.endpoint.clone(),
                self.div,
            )));
        }
    }
}

/// Compares one entity's table in one division with the fake (every property, every row).
pub async fn compare(c: &Client, db: &Db, e: &ConfigEntity, div: i32) -> Compared {
    let mut v = CompareVisitor {
        target: e.table.name,
        client: c.clone(),
        db: db.clone(),
        endpoint: e.endpoint.clone(),
        div,
        fut: None,
    };
    generated::visit_tables(SERVICE, &mut v);
    v.fut.expect("a generated type for the table").await
}

/// Asserts that every table of `entities` equals what the fake serves, in every division
/// (`one_division_only`: the first division only, the others empty). Returns the rows
/// compared per (entity, division).
pub async fn assert_all_equal(
    c: &Client,
    db: &Db,
    entities: &[ConfigEntity],
    divisions: &[i32],
    what: &str,
) -> BTreeMap<(String, i32), usize> {
    let mut out = BTreeMap::new();
    for e in entities.iter().filter(|e| !e.deletion_log) {
        for (i, &d) in divisions.iter().enumerate() {
            if e.one_division_only && i > 0 {
                let n = count_rows(db, e.table, Some(d), false).await;
                assert_eq!(
                    n, 0,
                    "{what}: {} is one_division_only: {d} has rows",
                    e.name
                );
                continue;
            }
            let r = compare(c, db, e, d).await;
            assert!(
                r.equal(),
                "{what}: {} [{d}]: {} served, {} stored; first difference:\n served: {:?}\n stored: {:?}",
                e.name,
                r.served,
                r.stored,
                r.diff.as_ref().map(|x| &x.0),
                r.diff.as_ref().map(|x| &x.1)
            );
            out.insert((e.name.clone(), d), r.served);
        }
    }
    out
}

/// Rows of a table (in a division), all or only those not marked deleted.
pub async fn count_rows(db: &Db, t: &TableInfo, div: Option<i32>, live_only: bool) -> i64 {
    let mut sql = format!("SELECT COUNT(*) FROM \"{}\" WHERE 1 = 1", t.name);
    if let Some(d) = div {
        sql.push_str(&format!(" AND \"division\" = {d}"));
    }
    if live_only {
        sql.push_str(" AND \"deleted_at\" IS NULL");
    }
    scalar_i64(db, &sql).await
}

pub async fn scalar_i64(db: &Db, sql: &str) -> i64 {
    let q = sqlx::AssertSqlSafe(sql.to_string());
    match db {
        Db::Sqlite(p) => sqlx::query_scalar::<_, i64>(q).fetch_one(p).await,
        Db::Postgres(p) => sqlx::query_scalar::<_, i64>(q).fetch_one(p).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Rows of `SELECT` with text columns only (cast in the query where needed).
pub async fn text_rows(db: &Db, sql: &str) -> Vec<Vec<Option<String>>> {
    use sqlx::Row;
    let q = sqlx::AssertSqlSafe(sql.to_string());
    match db {
        Db::Sqlite(p) => sqlx::query(q)
            .fetch_all(p)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<Option<String>, _>(i).expect("text column"))
                    .collect()
            })
            .collect(),
        Db::Postgres(p) => sqlx::query(q)
            .fetch_all(p)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<Option<String>, _>(i).expect("text column"))
                    .collect()
            })
            .collect(),
    }
}

/// One row of `odata_sync_runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub batch_id: String,
    pub entity: String,
    pub division: i64,
    pub status: String,
    pub full_refresh: bool,
    pub api_calls: i64,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_deleted: i64,
    pub message: Option<String>,
}

pub async fn runs(db: &Db) -> Vec<RunRow> {
    const SQL: &str = "SELECT COALESCE(\"batch_id\", ''), \"entity\", CAST(\"division\" AS TEXT), \"status\", CAST(\"full_refresh\" AS TEXT), CAST(\"api_calls\" AS TEXT), CAST(\"rows_inserted\" AS TEXT), CAST(\"rows_updated\" AS TEXT), CAST(\"rows_deleted\" AS TEXT), \"message\" FROM \"odata_sync_runs\" ORDER BY \"queued_at\", \"id\"";
    text_rows(db, SQL)
        .await
        .into_iter()
        .map(|r| {
            let s = |i: usize| r[i].clone().unwrap_or_default();
            let n = |i: usize| s(i).parse::<i64>().expect("number");
            RunRow {
                batch_id: s(0),
                entity: s(1),
                division: n(2),
                status: s(3),
                full_refresh: matches!(s(4).as_str(), "1" | "true"),
                api_calls: n(5),
                rows_inserted: n(6),
                rows_updated: n(7),
                rows_deleted: n(8),
                message: r[9].clone(),
            }
        })
        .collect()
}

/// The runs of the latest batch.
pub async fn last_batch(db: &Db) -> Vec<RunRow> {
    let all = runs(db).await;
    let Some(last) = all.last().map(|r| r.batch_id.clone()) else {
        return Vec::new();
    };
    all.into_iter().filter(|r| r.batch_id == last).collect()
}

/// (division, entity) → (kind, value, updated_at) of every cursor.
pub type Cursors = BTreeMap<(i64, String), (String, Option<String>, String)>;

pub async fn cursors(db: &Db) -> Cursors {
    const SQL: &str = "SELECT CAST(\"division\" AS TEXT), \"entity\", \"cursor_kind\", \"cursor_value\", CAST(\"updated_at\" AS TEXT) FROM \"odata_sync_cursors\"";
    text_rows(db, SQL)
        .await
        .into_iter()
        .map(|r| {
            (
                (
                    r[0].clone().unwrap_or_default().parse().expect("division"),
                    r[1].clone().unwrap_or_default(),
                ),
                (
                    r[2].clone().unwrap_or_default(),
                    r[3].clone(),
                    r[4].clone().unwrap_or_default(),
                ),
            )
        })
        .collect()
}

/// Fake statistics: violations, as `kind: detail` lines.
pub fn violations(s: &Stats) -> Vec<String> {
    s.violations
        .iter()
        .map(|v| format!("{}: {}", v.kind, v.detail))
        .collect()
}

/// A small deterministic generator (xorshift64*), so random choices can be logged and replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
