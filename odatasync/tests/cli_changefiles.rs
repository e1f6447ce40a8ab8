//! Change files out and in (issue 7, seed 004), end to end: the real `odatasync` binary as a
//! subprocess, the fake Exact Online in this process, SQLite files and a real PostgreSQL.
//!
//! * `sync --export DIR`: a data file (gzip JSON Lines) and a message file per (entity,
//!   division) with rows; the gzip decodes, the message carries the seed's metadata and the
//!   counts, which match the run's summary; a second, incremental run after changes on the fake
//!   exports only the changed rows (deletions from `sync/Deleted` marked `@removed`). A thread
//!   polls DIR during both runs and checks every visible file completely: none is ever partial,
//!   and a message's data file is always there.
//! * `ingest` of both batches' files into a fresh database: the tables equal the synced ones
//!   (rows, values, deletions).
//! * Any order: lines before their headers load (no foreign keys), the dangling-reference report
//!   lists them, and after the headers' files it shows fewer (those references: none).
//! * Bad files: a truncated gzip, a bad JSON line after 2,500 good ones (past one upsert chunk)
//!   and an unknown entity each fail naming the file and line, commit nothing, and do not stop
//!   the good file of the same call (exit 1). A producer's plain JSON Lines file without a
//!   message file loads with `--entity`/`--division`, V2 `/Date(ms)/` values included.

use fake_exact::{Clock, Config, FakeExact, Handle};
use futures_util::future::BoxFuture;
use odata_runtime::sql::{read_rows, sqlx, Db};
use odata_runtime::{Entity, TableInfo, TableVisitor};
use odatasync::export::{Message, DATA_SUFFIX, MESSAGE_SUFFIX, REMOVED};
use odatasync::ingest::read_lines;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SERVICE: &str = "exact";
const DIVS: [i32; 2] = [100001, 100002];
const FIRST: &str = "SyncGLAccounts,SyncAccounts,SyncTransactionLines,BulkSalesInvoices,BulkSalesInvoiceLines,SyncDeleted";
/// The second run: sync endpoints only (their `Timestamp` cursor fetches exactly the changes).
const SECOND: &str = "SyncGLAccounts,SyncAccounts,SyncTransactionLines,SyncDeleted";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn metadata_cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata-cache")
}

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The fake, with a refresh token old enough to be refreshed at once (exact-online.md §3).
fn start_fake() -> (Handle, String) {
    let clock = Clock::starting_at(system_ms() - 600_000, 1.0);
    let mut cfg = Config {
        divisions: DIVS.to_vec(),
        rows_per_entity: 300,
        minutely_limit: 1_000_000,
        daily_limit: 10_000_000,
        clock: clock.clone(),
        ..Config::default()
    };
    cfg.rows.insert("TransactionLines".into(), 900);
    let h = FakeExact::start(cfg);
    let (_access, refresh) = h.issue_tokens();
    clock.advance(Duration::from_millis(600_000));
    (h, refresh)
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn assert_code(&self, code: i32, what: &str) {
        assert_eq!(
            self.code,
            Some(code),
            "{what}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
    }

    /// Summary table: (entity, division) → rows fetched.
    fn fetched(&self) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for line in self.stdout.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 9 && (f[2] == "succeeded" || f[2] == "failed") {
                out.insert((f[0].to_string(), f[1].to_string()), f[3].parse().unwrap());
            }
        }
        out
    }
}

/// One `odatasync` installation: a temp folder, the key file, the fake's coordinates.
struct Cli {
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
}

impl Cli {
    fn new(h: &Handle, refresh: &str) -> Cli {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = vec![
            ("HOME", dir.path().display().to_string()),
            (
                "ODATASYNC_METADATA_CACHE",
                metadata_cache().display().to_string(),
            ),
            (
                "ODATASYNC_BASE_URL",
                format!("{}/api/v1/{{division}}/", h.base_url()),
            ),
            (
                "ODATASYNC_TOKEN_URL",
                format!("{}/api/oauth2/token", h.base_url()),
            ),
            ("ODATASYNC_CLIENT_ID", h.config().client_id.clone()),
            ("ODATASYNC_CLIENT_SECRET", h.config().client_secret.clone()),
            ("ODATASYNC_REFRESH_TOKEN", refresh.to_string()),
            (
                "ODATASYNC_SECRET_KEY_FILE",
                dir.path().join("secret.key").display().to_string(),
            ),
        ];
        Cli { dir, env }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Out {
        let mut c = Command::new(env!("CARGO_BIN_EXE_odatasync"));
        c.args(args)
            .arg("--no-progress")
            .current_dir(self.dir.path())
            .env_remove("ODATASYNC_SECRET_KEY")
            .env_remove("ODATASYNC_DATABASE")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let o = c.output().expect("run odatasync");
        Out {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn ingest(&self, db: &str, files: &[PathBuf], extra: &[&str]) -> Out {
        let mut args: Vec<String> = vec![
            "ingest".into(),
            "--service".into(),
            SERVICE.into(),
            "--database".into(),
            db.into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(files.iter().map(|f| f.display().to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&refs)
    }
}

/// `POST /_test/mutate`.
async fn mutate(h: &Handle, ops: Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/_test/mutate", h.base_url()))
        .header("content-type", "application/json")
        .body(ops.to_string())
        .send()
        .await
        .expect("mutate");
    assert!(r.status().is_success(), "mutate: {:?}", r.text().await);
}

/// Watches folders the way a consumer would: every file that is visible under its final name
/// (not a hidden temporary) is read completely; a data file must decode to the end, a message
/// file must parse and its data file must already be there and decode.
struct Poller {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeSet<PathBuf>>>,
    problems: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Poller {
    fn start(dirs: Vec<PathBuf>) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let (s, se, pr) = (stop.clone(), seen.clone(), problems.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: at most 10 minutes of polling.
            let until = std::time::Instant::now() + Duration::from_secs(600);
            while !s.load(Ordering::SeqCst) && std::time::Instant::now() < until {
                for d in &dirs {
                    let Ok(rd) = std::fs::read_dir(d) else {
                        continue;
                    };
                    for e in rd.flatten() {
                        let p = e.path();
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name.starts_with('.') || se.lock().unwrap().contains(&p) {
                            continue;
                        }
                        let problem = check_visible(&p, &name);
                        if let Some(x) = problem {
                            pr.lock().unwrap().push(x);
                        }
                        se.lock().unwrap().insert(p);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Poller {
            stop,
            seen,
            problems,
            thread: Some(thread),
        }
    }

    /// Stops; returns (files checked, problems).
    fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("poller");
        }
        let n = self.seen.lock().unwrap().len();
        let p = self.problems.lock().unwrap().clone();
        (n, p)
    }
}

fn check_visible(p: &Path, name: &str) -> Option<String> {
    if name.ends_with(DATA_SUFFIX) {
        if let Err(e) = read_lines(p) {
            return Some(format!("{name}: visible but does not decode: {e}"));
        }
    } else if name.ends_with(MESSAGE_SUFFIX) {
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => return Some(format!("{name}: {e}")),
        };
        let m: Message = match serde_json::from_str(&text) {
            Ok(m) => m,
            Err(e) => return Some(format!("{name}: visible but not a complete message: {e}")),
        };
        let data = data_file(p, &m);
        if !data.is_file() {
            return Some(format!("{name}: its data file {} is not there", m.uri));
        }
        if let Err(e) = read_lines(&data) {
            return Some(format!("{name}: its data file does not decode: {e}"));
        }
    } else {
        return Some(format!("{name}: an unexpected visible file"));
    }
    None
}

fn data_file(message: &Path, m: &Message) -> PathBuf {
    let u = url::Url::parse(&m.uri).expect("uri is a URL");
    assert_eq!(u.scheme(), "file", "{}", m.uri);
    let p = u.to_file_path().expect("file URL");
    assert_eq!(p.parent(), message.parent(), "data beside its message");
    p
}

/// The message files of a folder, by (entity, division).
fn messages(dir: &Path) -> BTreeMap<(String, String), (PathBuf, Message)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("export dir").flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "temporary file left: {name}");
        if !name.ends_with(MESSAGE_SUFFIX) {
            continue;
        }
        let m: Message = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let div = m
            .division()
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into());
        out.insert((m.blob_type.clone(), div), (p, m));
    }
    out
}

/// Checks one message and its data file; returns the data file's lines.
fn check_message(p: &Path, m: &Message, batch: &str) -> Vec<Value> {
    assert_eq!(m.correlation_id, batch, "{}", p.display());
    assert_eq!(m.content_type, "application/jsonl");
    assert_eq!(m.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(m.properties["service"], json!("exact"));
    let data = data_file(p, m);
    let lines: Vec<Value> = read_lines(&data)
        .unwrap_or_else(|e| panic!("{}: {e}", data.display()))
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(m.rows(), Some(lines.len() as u64), "{}", p.display());
    let removed = lines.iter().filter(|l| l.get(REMOVED).is_some()).count();
    assert_eq!(m.deleted(), Some(removed as u64), "{}", p.display());
    lines
}

fn batch_id(out: &Out) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("batch "))
        .and_then(|l| l.split(':').next())
        .expect("batch line")
        .to_string()
}

/// A table's rows in one division: live rows (Debug, sorted) and the number marked deleted.
async fn rows_as<E: Entity>(db: Db, t: &'static TableInfo, div: i32) -> (Vec<String>, usize) {
    let live: Vec<E> = read_rows(&db, t, Some(div), Some("\"deleted_at\" IS NULL"))
        .await
        .unwrap_or_else(|e| panic!("read {}: {e}", t.name));
    let dead: Vec<E> = read_rows(&db, t, Some(div), Some("\"deleted_at\" IS NOT NULL"))
        .await
        .unwrap_or_else(|e| panic!("read {}: {e}", t.name));
    let mut s: Vec<String> = live.iter().map(|r| format!("{r:?}")).collect();
    s.sort();
    (s, dead.len())
}

struct RowsVisitor {
    target: &'static str,
    db: Db,
    div: i32,
    fut: Option<BoxFuture<'static, (Vec<String>, usize)>>,
}

impl TableVisitor for RowsVisitor {
    fn visit<E: Entity + PartialEq>(&mut self, table: &'static TableInfo) {
        if self.fut.is_none() && table.name == self.target {
            self.fut = Some(Box::pin(rows_as::<E>(self.db.clone(), table, self.div)));
        }
    }
}

async fn table_rows(db: &Db, entity: &str, div: i32) -> (Vec<String>, usize) {
    let t = table(entity);
    let mut v = RowsVisitor {
        target: t.name,
        db: db.clone(),
        div,
        fut: None,
    };
    generated::visit_tables(SERVICE, &mut v);
    v.fut.expect("generated type").await
}

fn table(entity: &str) -> &'static TableInfo {
    generated::tables(SERVICE)
        .unwrap()
        .iter()
        .find(|t| t.entity == entity)
        .unwrap_or_else(|| panic!("no table {entity}"))
}

async fn scalar(db: &Db, sql: &str) -> i64 {
    let q = sqlx::AssertSqlSafe(sql.to_string());
    match db {
        Db::Sqlite(p) => sqlx::query_scalar::<_, i64>(q).fetch_one(p).await,
        Db::Postgres(p) => sqlx::query_scalar::<_, i64>(q).fetch_one(p).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn count(db: &Db, entity: &str) -> i64 {
    scalar(
        db,
        &format!("SELECT COUNT(*) FROM \"{}\"", table(entity).name),
    )
    .await
}

/// No table of the database has a foreign key (loading in any order relies on it).
async fn assert_no_foreign_keys(db: &Db) {
    let n = match db {
        Db::Sqlite(_) => {
            let mut n = 0;
            for t in generated::tables(SERVICE).unwrap() {
                n += scalar(
                    db,
                    &format!("SELECT COUNT(*) FROM pragma_foreign_key_list('{}')", t.name),
                )
                .await;
            }
            n
        }
        Db::Postgres(_) => {
            scalar(
                db,
                "SELECT COUNT(*) FROM information_schema.table_constraints WHERE constraint_type = 'FOREIGN KEY'",
            )
            .await
        }
    };
    assert_eq!(n, 0, "foreign keys in the database");
}

/// `dangling references` lines of an ingest: "Entity.Property -> Set" → rows.
fn dangling(out: &Out) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    let mut on = false;
    for l in out.stdout.lines() {
        if l.starts_with("dangling references:") {
            on = true;
            continue;
        }
        if on {
            if let Some((name, rest)) = l.trim().split_once(": ") {
                let n = rest.split_whitespace().next().unwrap().parse().unwrap();
                m.insert(name.to_string(), n);
            }
        }
    }
    m
}

fn open(rt: &tokio::runtime::Runtime, url: &str) -> Db {
    let url = if url.starts_with("sqlite:") {
        format!("{url}?mode=rwc")
    } else {
        url.to_string()
    };
    rt.block_on(Db::connect(&url)).expect("open database")
}

/// Writes `lines` gzip-compressed.
fn write_gz(path: &Path, lines: &[String]) {
    let f = std::fs::File::create(path).unwrap();
    let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    for l in lines {
        enc.write_all(l.as_bytes()).unwrap();
        enc.write_all(b"\n").unwrap();
    }
    enc.finish().unwrap();
}

fn write_message(path: &Path, blob_type: &str, uri: &str, division: i32) {
    let m = json!({
        "blobType": blob_type,
        "correlationId": "producer-1",
        "contentType": "application/jsonl",
        "contentEncoding": "gzip",
        "uri": uri,
        "properties": {"division": division}
    });
    std::fs::write(path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
}

/// `db(name)`: the URL of a fresh database.
fn scenario(backend: &str, db: &dyn Fn(&str) -> String) {
    let rt = runtime();
    let (h, refresh) = start_fake();
    let cli = Cli::new(&h, &refresh);
    let src = db("cf_src");
    let (dir1, dir2) = (cli.path("export1"), cli.path("export2"));
    let poller = Poller::start(vec![dir1.clone(), dir2.clone()]);

    // 1. Full sync with --export.
    let first = cli.run(&[
        "sync",
        "--service",
        SERVICE,
        "--database",
        &src,
        "--entities",
        FIRST,
        "--export",
        dir1.to_str().unwrap(),
    ]);
    first.assert_code(0, "first sync --export");
    let batch1 = batch_id(&first);
    let fetched1 = first.fetched();
    let m1 = messages(&dir1);
    let mut rows1 = 0;
    for e in FIRST.split(',').filter(|e| *e != "SyncDeleted") {
        for d in DIVS {
            let key = (e.to_string(), d.to_string());
            let (p, m) = m1
                .get(&key)
                .unwrap_or_else(|| panic!("{backend}: no change file for {key:?}: {m1:?}"));
            let lines = check_message(p, m, &batch1);
            assert_eq!(
                lines.len() as u64,
                fetched1[&key],
                "{backend}: {key:?}: file rows vs rows fetched"
            );
            assert!(lines
                .iter()
                .all(|l| l["ID"].is_string() || l["InvoiceID"].is_string()));
            rows1 += lines.len();
        }
    }
    assert_eq!(m1.len(), 10, "{backend}: {:?}", m1.keys());
    println!(
        "{backend}: first run exported {} files, {rows1} rows",
        m1.len()
    );

    // 2. Changes on the fake, then an incremental run: only the changes are exported.
    let d0 = DIVS[0];
    let lit = |ep: &str, i: u64| h.key_literal(ep, d0, i).expect("key");
    let mut ops = vec![
        json!({"entity": "crm/Accounts", "division": d0, "op": "insert", "count": 2}),
        json!({"entity": "crm/Accounts", "division": d0, "op": "delete", "key": lit("crm/Accounts", 4)}),
        json!({"entity": "financial/GLAccounts", "division": d0, "op": "update", "key": lit("financial/GLAccounts", 6), "fields": {"Description": "changed GL"}}),
        json!({"entity": "financialtransaction/TransactionLines", "division": d0, "op": "update", "key": lit("financialtransaction/TransactionLines", 1), "fields": {"Description": "changed TL 1"}}),
        json!({"entity": "financialtransaction/TransactionLines", "division": d0, "op": "delete", "key": lit("financialtransaction/TransactionLines", 9)}),
    ];
    for i in 0..3u64 {
        ops.push(json!({"entity": "crm/Accounts", "division": d0, "op": "update", "key": lit("crm/Accounts", i), "fields": {"Name": format!("changed account {i}")}}));
    }
    rt.block_on(mutate(&h, Value::Array(ops)));
    let second = cli.run(&[
        "sync",
        "--service",
        SERVICE,
        "--database",
        &src,
        "--entities",
        SECOND,
        "--export",
        dir2.to_str().unwrap(),
    ]);
    second.assert_code(0, "incremental sync --export");
    let batch2 = batch_id(&second);
    let fetched2 = second.fetched();
    let m2 = messages(&dir2);
    let expect: BTreeMap<(String, String), (u64, u64)> = [
        (("SyncAccounts", d0), 1),
        (("SyncGLAccounts", d0), 0),
        (("SyncTransactionLines", d0), 1),
    ]
    .into_iter()
    .map(|((e, d), deleted)| {
        let key = (e.to_string(), d.to_string());
        let live = fetched2[&key];
        (key, (live + deleted, deleted))
    })
    .collect();
    let got: BTreeMap<(String, String), (u64, u64)> = m2
        .iter()
        .map(|(k, (p, m))| {
            check_message(p, m, &batch2);
            (k.clone(), (m.rows().unwrap(), m.deleted().unwrap()))
        })
        .collect();
    assert_eq!(
        got, expect,
        "{backend}: second run's change files\n{}",
        second.stdout
    );
    assert!(fetched2[&("SyncAccounts".into(), d0.to_string())] >= 5);
    let (p, m) = &m2[&("SyncAccounts".to_string(), d0.to_string())];
    let lines = check_message(p, m, &batch2);
    let names: BTreeSet<&str> = lines.iter().filter_map(|l| l["Name"].as_str()).collect();
    for i in 0..3 {
        assert!(
            names.contains(format!("changed account {i}").as_str()),
            "{names:?}"
        );
    }
    let (checked, problems) = poller.finish();
    assert!(
        problems.is_empty(),
        "{backend}: consumer saw: {problems:#?}"
    );
    assert_eq!(
        checked,
        2 * (m1.len() + m2.len()),
        "{backend}: files polled"
    );
    println!(
        "{backend}: second run exported {} files, {} rows; the poller checked {checked} visible files, none partial",
        m2.len(),
        got.values().map(|v| v.0).sum::<u64>()
    );

    // 3. Both batches into a fresh database: equal tables.
    let copy = db("cf_copy");
    let out = cli.ingest(&copy, &[dir1.clone(), dir2.clone()], &[]);
    out.assert_code(0, "ingest of both batches");
    let (sdb, cdb) = (open(&rt, &src), open(&rt, &copy));
    rt.block_on(assert_no_foreign_keys(&cdb));
    for e in FIRST.split(',').filter(|e| *e != "SyncDeleted") {
        for d in DIVS {
            let a = rt.block_on(table_rows(&sdb, e, d));
            let b = rt.block_on(table_rows(&cdb, e, d));
            assert_eq!(a.0.len(), b.0.len(), "{backend}: {e} [{d}] live rows");
            assert!(a.0 == b.0, "{backend}: {e} [{d}]: rows differ");
            assert_eq!(a.1, b.1, "{backend}: {e} [{d}] deleted rows");
        }
    }
    assert_eq!(
        rt.block_on(table_rows(&cdb, "SyncAccounts", d0)).1,
        1,
        "{backend}: the deleted account is marked"
    );

    // 4. Lines before their headers.
    let order = db("cf_order");
    let pick = |entities: &[&str]| -> Vec<PathBuf> {
        m1.iter()
            .filter(|((e, _), _)| entities.contains(&e.as_str()))
            .map(|(_, (p, _))| p.clone())
            .collect()
    };
    let lines_out = cli.ingest(
        &order,
        &pick(&["SyncTransactionLines", "BulkSalesInvoiceLines"]),
        &[],
    );
    lines_out.assert_code(0, "lines before headers");
    let before = dangling(&lines_out);
    for r in [
        "SyncTransactionLines.Account -> Accounts",
        "SyncTransactionLines.GLAccount -> GLAccounts",
        "BulkSalesInvoiceLines.InvoiceID -> SalesInvoices",
    ] {
        assert!(
            before.get(r).is_some_and(|n| *n > 0),
            "{backend}: {r}: {before:?}\n{}",
            lines_out.stdout
        );
    }
    let headers_out = cli.ingest(
        &order,
        &pick(&["SyncAccounts", "SyncGLAccounts", "BulkSalesInvoices"]),
        &[],
    );
    headers_out.assert_code(0, "headers after lines");
    let after = dangling(&headers_out);
    for r in [
        "SyncTransactionLines.Account -> Accounts",
        "SyncTransactionLines.GLAccount -> GLAccounts",
        "BulkSalesInvoiceLines.InvoiceID -> SalesInvoices",
    ] {
        assert_eq!(after.get(r), None, "{backend}: {r} resolved: {after:?}");
    }
    let (nb, na): (i64, i64) = (before.values().sum(), after.values().sum());
    assert!(na < nb, "{backend}: dangling {nb} → {na}");
    println!("{backend}: dangling references {nb} after the lines, {na} after the headers");

    // 5. Bad files commit nothing; the good one of the same call does.
    let bad = cli.path("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let (acc_msg, acc) = &m1[&("SyncAccounts".to_string(), d0.to_string())];
    let acc_data = data_file(acc_msg, acc);
    let bytes = std::fs::read(&acc_data).unwrap();
    std::fs::write(
        bad.join("truncated.jsonl.gz"),
        &bytes[..bytes.len() * 2 / 3],
    )
    .unwrap();
    write_message(
        &bad.join("truncated.message.json"),
        "SyncAccounts",
        "truncated.jsonl.gz",
        d0,
    );
    let (tl_msg, tl) = &m1[&("SyncTransactionLines".to_string(), d0.to_string())];
    let tl_lines = read_lines(&data_file(tl_msg, tl)).unwrap();
    let mut many: Vec<String> = tl_lines.iter().cycle().take(2500).cloned().collect();
    many.push("{\"ID\": \"broken".into());
    write_gz(&bad.join("badline.jsonl.gz"), &many);
    write_message(
        &bad.join("badline.message.json"),
        "SyncTransactionLines",
        "badline.jsonl.gz",
        d0,
    );
    std::fs::copy(data_file(tl_msg, tl), bad.join("unknown.jsonl.gz")).unwrap();
    write_message(
        &bad.join("unknown.message.json"),
        "NoSuchEntity",
        "unknown.jsonl.gz",
        d0,
    );
    let (gl_msg, _) = &m1[&("SyncGLAccounts".to_string(), d0.to_string())];
    let target = db("cf_bad");
    let out = cli.ingest(
        &target,
        &[
            bad.join("truncated.message.json"),
            bad.join("badline.message.json"),
            bad.join("unknown.message.json"),
            gl_msg.clone(),
        ],
        &[],
    );
    out.assert_code(1, "bad files");
    let err = &out.stderr;
    assert!(
        err.contains("truncated.jsonl.gz:") && err.contains("corrupt gzip"),
        "{err}"
    );
    assert!(
        err.contains("badline.jsonl.gz:2501:") && err.contains("bad JSON line"),
        "{err}"
    );
    assert!(
        err.contains("unknown.message.json:2:") && err.contains("unknown entity \"NoSuchEntity\""),
        "{err}"
    );
    let tdb = open(&rt, &target);
    assert_eq!(
        rt.block_on(count(&tdb, "SyncAccounts")),
        0,
        "{backend}: truncated file committed rows"
    );
    assert_eq!(
        rt.block_on(count(&tdb, "SyncTransactionLines")),
        0,
        "{backend}: a file with a bad line committed rows"
    );
    assert_eq!(
        rt.block_on(count(&tdb, "SyncGLAccounts")),
        fetched1[&("SyncGLAccounts".to_string(), d0.to_string())] as i64,
        "{backend}: the good file"
    );
    let out = cli.ingest(
        &target,
        &[bad.join("unknown.jsonl.gz")],
        &["--entity", "NoSuchEntity"],
    );
    out.assert_code(1, "--entity of no table");
    assert!(
        out.stderr.contains("unknown entity \"NoSuchEntity\""),
        "{}",
        out.stderr
    );

    // 6. A producer's plain JSON Lines file, no message file, V2 date forms.
    let gl_lines = read_lines(&data_file(
        gl_msg,
        &m1[&("SyncGLAccounts".to_string(), d0.to_string())].1,
    ))
    .unwrap();
    let mut plain: Vec<String> = Vec::new();
    for (i, l) in gl_lines.iter().enumerate() {
        let mut v: Value = serde_json::from_str(l).unwrap();
        v.as_object_mut().unwrap().remove("Division");
        if i == 0 {
            v["Modified"] = json!("/Date(1700000000000)/");
        }
        plain.push(v.to_string());
    }
    let producer = bad.join("producer.jsonl");
    std::fs::write(&producer, plain.join("\n") + "\n").unwrap();
    let out = cli.ingest(
        &target,
        &[producer],
        &[
            "--entity",
            "SyncGLAccounts",
            "--division",
            &DIVS[1].to_string(),
        ],
    );
    out.assert_code(0, "a producer's file with --entity");
    let (rows, _) = rt.block_on(table_rows(&tdb, "SyncGLAccounts", DIVS[1]));
    assert_eq!(rows.len(), gl_lines.len(), "{backend}");
    assert!(
        rows.iter().any(|r| r.contains("2023-11-14T22:13:20")),
        "{backend}: the /Date()/ value"
    );
    println!("{backend}: bad files refused with file:line, nothing of them committed");
}

#[test]
fn change_files_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    scenario("sqlite", &|name| {
        format!("sqlite:{}", root.join(format!("{name}.sqlite")).display())
    });
}

#[test]
fn change_files_postgres() {
    let pg = odata_test_support::PgServer::start().expect("PostgreSQL");
    scenario("postgres", &|name| {
        pg.create_database(name).expect("create database")
    });
}
