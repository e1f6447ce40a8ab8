//! `odatasync webhooks` end to end (exact-online.md §5): the real binary as subprocesses, the
//! fake Exact Online in this process delivering signed events over loopback HTTP, SQLite and a
//! real PostgreSQL checked directly with sqlx.
//!
//! One scenario per backend:
//! 1. `sync --entities GLAccounts,Accounts` fills the tables the config.json `webhookTopics`
//!    entities use;
//! 2. `webhooks serve` (with `ODATASYNC_WEBHOOK_SECRET`, stored encrypted) answers the
//!    handshake; `webhooks subscribe` twice: 2 topics × 2 divisions created once, then all
//!    "already subscribed", the fake holds no duplicate;
//! 3. an update, an insert of GLAccounts, an update and a delete of Accounts on the fake reach
//!    the tables (new values, new row, `deleted_at`);
//! 4. forged HashCode, missing HashCode, truncated body → 401, oversized → 413, nothing stored
//!    and the row untouched; a replayed delivery → 200, one event row, applied once; an
//!    unknown topic → 200, stored `ignored`; a key that is not a GUID → `failed` with the reason;
//!    an update of a row the service no longer has → the row stays marked deleted;
//! 5. a receiver that stored an event but was killed before applying it (test delay) leaves it
//!    `received`; restarted without the secret in the environment (the stored one is used), it
//!    applies it;
//! 6. `webhooks unsubscribe` deletes our subscriptions.

mod common;

use fake_exact::{Clock, Config, FakeExact, Handle};
use futures_util::TryStreamExt;
use odata_runtime::client::Client;
use odata_runtime::sql::{sqlx, Db};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SERVICE: &str = "exact";
const DIVS: [i32; 2] = [100001, 100002];
const GL: &str = "financial/GLAccounts";
const ACC: &str = "crm/Accounts";

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The fake with a clock that agrees with the subprocesses' and a refresh token old enough to
/// be refreshed at once (exact-online.md §3: not within 570 s).
fn start_fake() -> (Handle, String) {
    let clock = Clock::starting_at(system_ms() - 600_000, 1.0);
    let h = FakeExact::start(Config {
        divisions: DIVS.to_vec(),
        rows_per_entity: 30,
        minutely_limit: 1_000_000,
        daily_limit: 10_000_000,
        clock: clock.clone(),
        metadata_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata-cache/exact"),
        ..Config::default()
    });
    let (_access, refresh) = h.issue_tokens();
    clock.advance(Duration::from_millis(600_000));
    (h, refresh)
}

/// One installation: a temp folder (key file, SQLite file, logs), the database, the fake.
struct Env {
    dir: tempfile::TempDir,
    db_url: String,
    base_url: String,
    token_url: String,
    client_id: String,
    client_secret: String,
    refresh_token: String,
}

impl Env {
    fn new(h: &Handle, refresh: &str, db_url: Option<String>) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_url =
            db_url.unwrap_or_else(|| format!("sqlite:{}", dir.path().join("w.sqlite").display()));
        Env {
            db_url,
            base_url: format!("{}/api/v1/{{division}}/", h.base_url()),
            token_url: format!("{}/api/oauth2/token", h.base_url()),
            client_id: h.config().client_id.clone(),
            client_secret: h.config().client_secret.clone(),
            refresh_token: refresh.to_string(),
            dir,
        }
    }

    fn open_url(&self) -> String {
        if self.db_url.starts_with("sqlite:") {
            format!("{}?mode=rwc", self.db_url)
        } else {
            self.db_url.clone()
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_odatasync"));
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("ODATASYNC_SECRET_KEY")
            .env_remove("ODATASYNC_DATABASE")
            .env_remove("ODATASYNC_WEBHOOK_SECRET")
            .env_remove("ODATASYNC_WEBHOOK_APPLY_DELAY_MS")
            .env("RUST_LOG", "odatasync=info")
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env(
                "ODATASYNC_METADATA_CACHE",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata-cache"),
            )
            .env("ODATASYNC_BASE_URL", &self.base_url)
            .env("ODATASYNC_TOKEN_URL", &self.token_url)
            .env("ODATASYNC_CLIENT_ID", &self.client_id)
            .env("ODATASYNC_CLIENT_SECRET", &self.client_secret)
            .env("ODATASYNC_REFRESH_TOKEN", &self.refresh_token)
            .env(
                "ODATASYNC_SECRET_KEY_FILE",
                self.dir.path().join("secret.key"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs to the end: (exit code, stdout, stderr).
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().expect("run odatasync");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// `webhooks serve` in the background (stderr to a log file in the temp folder); waits
    /// until it answers the handshake.
    fn serve(&self, port: u16, env: &[(&str, &str)], log: &str) -> Receiver {
        let listen = format!("127.0.0.1:{port}");
        let log_path = self.dir.path().join(log);
        let mut c = self.command(&[
            "webhooks",
            "serve",
            "--service",
            SERVICE,
            "--listen",
            &listen,
            "--database",
            &self.db_url,
        ]);
        c.stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).expect("log file"));
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().expect("start webhooks serve");
        let r = Receiver {
            child,
            log: log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(200) = post_blocking(&callback(port), b"") {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "webhooks serve did not come up:\n{}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A running `webhooks serve`; killed (SIGKILL, like a crash) when dropped.
struct Receiver {
    child: Child,
    log: PathBuf,
}

impl Receiver {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn callback(port: u16) -> String {
    format!("http://127.0.0.1:{port}/hooks/exact")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// POSTs raw bytes (a plain socket, so truncated and oversized bodies go out as they are).
fn post_blocking(url: &str, body: &[u8]) -> Result<u16, String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").ok_or("http only")?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = std::net::TcpStream::connect(hostport).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    // An oversized body may be refused before it is all sent.
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))
}

/// A Content object as the fake (and Exact) writes it.
fn content(h: &Handle, topic: &str, division: i32, action: &str, key: &str) -> String {
    format!(
        "{{\"Topic\":\"{topic}\",\"ClientId\":\"{}\",\"Division\":{division},\"Action\":\"{action}\",\"Key\":\"{key}\",\"ExactOnlineEndpoint\":\"{}/api/v1/{division}/financial/{topic}(guid'{key}')\",\"EventCreatedOn\":\"2026-01-17T22:56:23.087\"}}",
        h.config().client_id,
        h.base_url()
    )
}

/// A delivery signed with `secret` by the fake's own HashCode function.
fn delivery(secret: &str, content: &str) -> String {
    format!(
        "{{\"Content\":{content},\"HashCode\":\"{}\"}}",
        fake_exact::server::webhooks::hash_code(secret, content)
    )
}

/// The key (lower case, without `guid'…'`) of generated row `i`.
fn guid(h: &Handle, endpoint: &str, div: i32, i: u64) -> String {
    h.key_literal(endpoint, div, i)
        .expect("key")
        .trim_start_matches("guid'")
        .trim_end_matches('\'')
        .to_lowercase()
}

/// `POST /_test/mutate`; the results (with the keys of inserted rows).
fn mutate(h: &Handle, ops: serde_json::Value) -> Vec<serde_json::Value> {
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/_test/mutate", h.base_url()))
        .header("content-type", "application/json")
        .body(ops.to_string())
        .send()
        .expect("mutate");
    let status = r.status();
    let v: serde_json::Value =
        serde_json::from_str(&r.text().expect("mutate answer")).expect("mutate JSON");
    assert!(status.is_success(), "mutate: {v}");
    v["results"].as_array().cloned().unwrap_or_default()
}

async fn text_rows(db: &Db, sql: &str) -> Vec<Vec<Option<String>>> {
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
                    .map(|i| r.get::<Option<String>, _>(i))
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
                    .map(|i| r.get::<Option<String>, _>(i))
                    .collect()
            })
            .collect(),
    }
}

async fn execute(db: &Db, sql: &str) -> u64 {
    let q = sqlx::AssertSqlSafe(sql.to_string());
    match db {
        Db::Sqlite(p) => sqlx::query(q).execute(p).await.map(|r| r.rows_affected()),
        Db::Postgres(p) => sqlx::query(q).execute(p).await.map(|r| r.rows_affected()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// (column value, deleted_at) of the row with `key` in `table`.
async fn row(
    db: &Db,
    table: &str,
    column: &str,
    div: i32,
    key: &str,
) -> Option<(Option<String>, Option<String>)> {
    let sql = format!(
        "SELECT CAST(\"{column}\" AS TEXT), CAST(\"deleted_at\" AS TEXT) FROM \"{table}\" WHERE \"division\" = {div} AND CAST(\"id\" AS TEXT) = '{key}'"
    );
    let rows = text_rows(db, &sql).await;
    assert!(rows.len() <= 1, "{sql}: {rows:?}");
    rows.into_iter()
        .next()
        .map(|r| (r[0].clone(), r[1].clone()))
}

/// (status, attempts, message) of every event, by entity key.
async fn events(db: &Db) -> Vec<(String, String, String, String, Option<String>)> {
    text_rows(
        db,
        "SELECT \"entity_key\", \"action\", \"status\", CAST(\"attempts\" AS TEXT), \"message\" FROM \"odata_webhook_events\" ORDER BY \"received_at\", \"id\"",
    )
    .await
    .into_iter()
    .map(|r| {
        (
            r[0].clone().unwrap_or_default(),
            r[1].clone().unwrap_or_default(),
            r[2].clone().unwrap_or_default(),
            r[3].clone().unwrap_or_default(),
            r[4].clone(),
        )
    })
    .collect()
}

/// Polls until `ok(events)` or fails with the receiver's log.
async fn wait_events(
    db: &Db,
    what: &str,
    log: &dyn Fn() -> String,
    ok: impl Fn(&[(String, String, String, String, Option<String>)]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ev = events(db).await;
        if ok(&ev) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: events {ev:#?}\n--- receiver log\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn subscriptions(c: &Client, div: i32) -> Vec<(String, String)> {
    let rows: Vec<serde_json::Value> = c
        .raw_rows(div, "webhooks/WebhookSubscriptions")
        .select(["ID", "CallbackURL", "Topic"])
        .stream()
        .try_collect()
        .await
        .expect("list subscriptions");
    let mut v: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["Topic"].as_str().unwrap_or_default().to_string(),
                r["CallbackURL"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn scenario(db_url: Option<String>) {
    let t0 = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (h, refresh) = start_fake();
    let env = Env::new(&h, &refresh, db_url);
    let secret = h.config().webhook_secret.clone();
    let port = free_port();
    let cb = callback(port);

    // 1. The tables of the webhookTopics entities.
    let (code, out, err) = env.run(
        &[
            "sync",
            "--service",
            SERVICE,
            "--database",
            &env.db_url,
            "--no-progress",
            "--entities",
            "GLAccounts,Accounts",
        ],
        &[],
    );
    assert_eq!(code, 0, "sync:\n{out}\n{err}");
    let db = rt.block_on(Db::connect(&env.open_url())).expect("open db");

    // Without a webhook secret anywhere, serve refuses to start (2), naming the variable.
    let (code, _, err) = env.run(
        &[
            "webhooks",
            "serve",
            "--service",
            SERVICE,
            "--listen",
            "127.0.0.1:0",
            "--database",
            &env.db_url,
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ODATASYNC_WEBHOOK_SECRET"), "{err}");

    // 2. The receiver, then subscriptions (Exact validates the callback with an empty POST).
    let with_secret = [("ODATASYNC_WEBHOOK_SECRET", secret.as_str())];
    let receiver = env.serve(port, &with_secret, "serve1.log");
    let subscribe = [
        "webhooks",
        "subscribe",
        "--service",
        SERVICE,
        "--callback",
        &cb,
        "--database",
        &env.db_url,
    ];
    let (code, out, err) = env.run(&subscribe, &with_secret);
    assert_eq!(code, 0, "subscribe:\n{out}\n{err}");
    assert!(
        out.contains("4 subscriptions created, 0 already there"),
        "{out}"
    );
    let (code, out, err) = env.run(&subscribe, &[]);
    assert_eq!(code, 0, "subscribe again:\n{out}\n{err}");
    assert!(
        out.contains("0 subscriptions created, 4 already there"),
        "{out}"
    );
    let verify = common::verifier(&h);
    for d in DIVS {
        let subs = rt.block_on(subscriptions(&verify, d));
        assert_eq!(
            subs,
            vec![
                ("Accounts".to_string(), cb.clone()),
                ("GLAccounts".to_string(), cb.clone())
            ],
            "division {d}"
        );
    }
    // The secret is stored encrypted, never in clear.
    let stored = rt.block_on(text_rows(
        &db,
        "SELECT \"name\", \"value\" FROM \"odata_secrets\" WHERE \"service\" = 'exact' AND \"name\" = 'webhook_secret'",
    ));
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0][0].as_deref(), Some("webhook_secret"));
    let sealed = stored[0][1].clone().unwrap_or_default();
    assert!(
        sealed.starts_with("v1:") && !sealed.contains(&secret),
        "{sealed}"
    );

    // 3. Changes on the fake reach the tables.
    let gl3 = guid(&h, GL, 100001, 3);
    let acc5 = guid(&h, ACC, 100002, 5);
    let acc7 = guid(&h, ACC, 100001, 7);
    assert!(rt
        .block_on(row(&db, "exact_accounts", "name", 100001, &acc7))
        .is_some());
    let res = mutate(
        &h,
        serde_json::json!([
            {"entity": GL, "division": 100001, "op": "update", "key": format!("guid'{gl3}'"), "fields": {"Description": "Webhook: updated"}},
            {"entity": GL, "division": 100001, "op": "insert", "fields": {"Code": "9999", "Description": "Webhook: new"}},
            {"entity": ACC, "division": 100002, "op": "update", "key": format!("guid'{acc5}'"), "fields": {"Name": "Łódź Webhook B.V."}},
            {"entity": ACC, "division": 100001, "op": "delete", "key": format!("guid'{acc7}'")},
        ]),
    );
    let new_gl = res[1]["key"]
        .as_str()
        .expect("inserted key")
        .trim_start_matches("guid'")
        .trim_end_matches('\'')
        .to_lowercase();
    let log1 = || receiver.log();
    rt.block_on(wait_events(&db, "4 events applied", &log1, |ev| {
        ev.len() == 4 && ev.iter().all(|e| e.2 == "applied")
    }));
    rt.block_on(async {
        assert_eq!(
            row(&db, "exact_gl_accounts", "description", 100001, &gl3).await,
            Some((Some("Webhook: updated".into()), None))
        );
        assert_eq!(
            row(&db, "exact_gl_accounts", "description", 100001, &new_gl).await,
            Some((Some("Webhook: new".into()), None))
        );
        assert_eq!(
            row(&db, "exact_accounts", "name", 100002, &acc5).await,
            Some((Some("Łódź Webhook B.V.".into()), None))
        );
        let (_, deleted_at) = row(&db, "exact_accounts", "name", 100001, &acc7)
            .await
            .expect("the deleted row is kept");
        assert!(deleted_at.is_some(), "deleted_at not set");
        // Same key in the other division: untouched.
        let other = guid(&h, ACC, 100002, 7);
        assert_eq!(
            row(&db, "exact_accounts", "name", 100002, &other)
                .await
                .map(|r| r.1),
            Some(None)
        );
    });
    assert_eq!(h.stats().webhooks_failed, 0);

    // 4. Forged, truncated, oversized, replayed, unknown topic.
    let gl4 = guid(&h, GL, 100001, 4);
    rt.block_on(execute(
        &db,
        &format!("UPDATE \"exact_gl_accounts\" SET \"description\" = 'local' WHERE \"division\" = 100001 AND CAST(\"id\" AS TEXT) = '{gl4}'"),
    ));
    let c4 = content(&h, "GLAccounts", 100001, "Update", &gl4);
    let good = delivery(&secret, &c4);
    let forged = delivery("not-the-secret", &c4);
    let missing = format!("{{\"Content\":{c4}}}");
    let truncated = &good.as_bytes()[..good.len() - 7];
    // A Content changed after signing (another key, the same HashCode).
    let tampered = good.replace(&gl4, &gl3);
    for (what, body) in [
        ("forged", forged.as_bytes()),
        ("no HashCode", missing.as_bytes()),
        ("truncated", truncated),
        ("tampered", tampered.as_bytes()),
    ] {
        assert_eq!(post_blocking(&cb, body), Ok(401), "{what}");
    }
    let big = format!(
        "{{\"Content\":{},\"HashCode\":\"\"}}",
        " ".repeat(70 * 1024)
    );
    assert_eq!(post_blocking(&cb, big.as_bytes()), Ok(413), "oversized");
    std::thread::sleep(Duration::from_millis(300));
    rt.block_on(async {
        assert_eq!(events(&db).await.len(), 4, "refused deliveries were stored");
        assert_eq!(
            row(&db, "exact_gl_accounts", "description", 100001, &gl4)
                .await
                .and_then(|r| r.0),
            Some("local".into())
        );
    });
    // The genuine delivery is applied once; its replay is acknowledged and changes nothing.
    assert_eq!(post_blocking(&cb, good.as_bytes()), Ok(200));
    rt.block_on(wait_events(&db, "the signed event applied", &log1, |ev| {
        ev.len() == 5 && ev.iter().all(|e| e.2 == "applied")
    }));
    rt.block_on(async {
        let served = row(&db, "exact_gl_accounts", "description", 100001, &gl4)
            .await
            .and_then(|r| r.0);
        assert_ne!(served.as_deref(), Some("local"), "the row was not fetched");
        execute(
            &db,
            &format!("UPDATE \"exact_gl_accounts\" SET \"description\" = 'local again' WHERE \"division\" = 100001 AND CAST(\"id\" AS TEXT) = '{gl4}'"),
        )
        .await;
    });
    assert_eq!(post_blocking(&cb, good.as_bytes()), Ok(200), "replay");
    let unknown = delivery(&secret, &content(&h, "Items", 100001, "Update", &gl4));
    assert_eq!(
        post_blocking(&cb, unknown.as_bytes()),
        Ok(200),
        "unknown topic"
    );
    rt.block_on(wait_events(&db, "unknown topic stored", &log1, |ev| {
        ev.len() == 6
    }));
    std::thread::sleep(Duration::from_millis(500));
    rt.block_on(async {
        let ev = events(&db).await;
        let of_gl4: Vec<_> = ev.iter().filter(|e| e.0 == gl4).collect();
        assert_eq!(of_gl4.len(), 2, "{ev:#?}");
        let applied: Vec<_> = of_gl4.iter().filter(|e| e.2 == "applied").collect();
        assert_eq!(applied.len(), 1, "{ev:#?}");
        assert_eq!(applied[0].3, "1", "applied once: {ev:#?}");
        let ignored: Vec<_> = of_gl4.iter().filter(|e| e.2 == "ignored").collect();
        assert_eq!(ignored.len(), 1, "{ev:#?}");
        assert!(
            ignored[0].4.as_deref().unwrap_or("").contains("Items"),
            "{ev:#?}"
        );
        assert_eq!(
            row(&db, "exact_gl_accounts", "description", 100001, &gl4)
                .await
                .and_then(|r| r.0),
            Some("local again".into()),
            "the replay was applied again"
        );
    });
    // A key that is not a GUID cannot be fetched: failed, with the reason and one attempt.
    // An update of a row the service no longer has marks it deleted (it already is).
    let bad = delivery(
        &secret,
        &content(&h, "GLAccounts", 100001, "Update", "not-a-guid"),
    );
    assert_eq!(post_blocking(&cb, bad.as_bytes()), Ok(200), "bad key");
    let gone = delivery(&secret, &content(&h, "Accounts", 100001, "Update", &acc7));
    assert_eq!(post_blocking(&cb, gone.as_bytes()), Ok(200), "gone row");
    rt.block_on(wait_events(&db, "failed and gone", &log1, |ev| {
        ev.iter()
            .any(|e| e.0 == "not-a-guid" && e.2 == "failed" && e.3 == "1")
            && ev
                .iter()
                .any(|e| e.0 == acc7 && e.1 == "Update" && e.2 == "applied")
    }));
    rt.block_on(async {
        let ev = events(&db).await;
        let failed = ev
            .iter()
            .find(|e| e.0 == "not-a-guid")
            .expect("failed event");
        assert!(
            failed.4.as_deref().unwrap_or("").contains("not a GUID"),
            "{failed:?}"
        );
        let gone = ev
            .iter()
            .find(|e| e.0 == acc7 && e.1 == "Update")
            .expect("gone event");
        assert!(
            gone.4
                .as_deref()
                .unwrap_or("")
                .contains("not served any more"),
            "{gone:?}"
        );
        let (_, deleted_at) = row(&db, "exact_accounts", "name", 100001, &acc7)
            .await
            .expect("kept");
        assert!(deleted_at.is_some());
    });
    let log = receiver.kill();
    assert!(log.contains("401"), "refusals are logged:\n{log}");

    // 5. Stored but not applied when the receiver dies; a restart applies it. No secret in
    // the environment from here on: the stored one is used.
    let slow = env.serve(
        port,
        &[("ODATASYNC_WEBHOOK_APPLY_DELAY_MS", "3600000")],
        "serve2.log",
    );
    let gl6 = guid(&h, GL, 100001, 6);
    let before6 = rt.block_on(row(&db, "exact_gl_accounts", "description", 100001, &gl6));
    mutate(
        &h,
        serde_json::json!([{"entity": GL, "division": 100001, "op": "update", "key": format!("guid'{gl6}'"), "fields": {"Description": "Webhook: after restart"}}]),
    );
    let log2 = || slow.log();
    rt.block_on(wait_events(&db, "stored, not applied", &log2, |ev| {
        ev.iter().any(|e| e.0 == gl6 && e.2 == "received")
    }));
    slow.kill();
    assert_eq!(
        rt.block_on(row(&db, "exact_gl_accounts", "description", 100001, &gl6)),
        before6
    );
    let again = env.serve(port, &[], "serve3.log");
    let log3 = || again.log();
    rt.block_on(wait_events(&db, "applied after the restart", &log3, |ev| {
        ev.iter().any(|e| e.0 == gl6 && e.2 == "applied")
    }));
    assert_eq!(
        rt.block_on(row(&db, "exact_gl_accounts", "description", 100001, &gl6)),
        Some((Some("Webhook: after restart".into()), None))
    );

    // 6. Unsubscribe.
    let (code, out, err) = env.run(
        &[
            "webhooks",
            "unsubscribe",
            "--service",
            SERVICE,
            "--callback",
            &cb,
            "--database",
            &env.db_url,
        ],
        &[],
    );
    assert_eq!(code, 0, "unsubscribe:\n{out}\n{err}");
    assert!(out.contains("4 subscriptions deleted"), "{out}");
    for d in DIVS {
        assert!(rt.block_on(subscriptions(&verify, d)).is_empty());
    }
    again.kill();
    let stats = h.stats();
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    eprintln!(
        "webhooks scenario: {:.1} s, {} deliveries",
        t0.elapsed().as_secs_f64(),
        stats.webhooks_delivered
    );
}

#[test]
fn webhooks_sqlite() {
    scenario(None);
}

#[test]
fn webhooks_postgres() {
    let pg = odata_test_support::PgServer::start().expect("PostgreSQL");
    let url = pg.create_database("cli_webhooks").expect("create database");
    scenario(Some(url));
}
