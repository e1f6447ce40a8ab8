//! `odatasync serve` (the sync status API) end to end: the real binary as a subprocess on a
//! loopback port, the fake Exact Online in the test process, real HTTP, SQLite and PostgreSQL.
//! The token, the 202 + polling until the batch ends with per-entity figures, 429 on fast
//! polling, a callback receiver that fails twice before it takes the status, kill -9 of the
//! server in the middle of a batch and a restart, validation errors.

use fake_exact::{Clock, Config, FakeExact, Faults, Handle};
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TOKEN: &str = "test-api-token-7f3a";
const DIVISIONS: [i32; 2] = [100001, 100002];
const ROWS: u64 = 40;

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

/// The fake, with a refresh token the server can use at once: Exact refuses a refresh within
/// 570 s of the previous grant, so the pair is issued on a clock 600 s in the past, which then
/// jumps to now (agreeing with the subprocess's clock).
fn start_fake(faults: Faults) -> (Handle, String) {
    let clock = Clock::starting_at(system_ms() - 600_000, 1.0);
    let h = FakeExact::start(Config {
        divisions: DIVISIONS.to_vec(),
        rows_per_entity: ROWS,
        minutely_limit: 1_000_000,
        daily_limit: 10_000_000,
        clock: clock.clone(),
        faults,
        ..Config::default()
    });
    let (_access, refresh) = h.issue_tokens();
    clock.advance(Duration::from_millis(600_000));
    (h, refresh)
}

/// One installation: a temp folder (key file, logs, SQLite file) and the database URL.
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
            db_url.unwrap_or_else(|| format!("sqlite:{}", dir.path().join("x.sqlite").display()));
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

    /// `odatasync serve --listen 127.0.0.1:0 --database URL EXTRA...` with the environment
    /// for the fake; stdout and stderr go to files in the temp folder (named after `tag`).
    fn command(&self, tag: &str, token: Option<&str>, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_odatasync"));
        c.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &self.db_url,
        ])
        .args(extra)
        .current_dir(self.dir.path())
        .env_remove("ODATASYNC_SECRET_KEY")
        .env_remove("ODATASYNC_DATABASE")
        .env_remove("ODATASYNC_API_TOKEN")
        .env("RUST_LOG", "info")
        .env("HOME", self.dir.path())
        .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
        .env("ODATASYNC_METADATA_CACHE", metadata_cache())
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
        .stdout(self.log(tag, "out"))
        .stderr(self.log(tag, "err"));
        if let Some(t) = token {
            c.env("ODATASYNC_API_TOKEN", t);
        }
        c
    }

    fn log_path(&self, tag: &str, kind: &str) -> PathBuf {
        self.dir.path().join(format!("serve-{tag}.{kind}"))
    }

    fn log(&self, tag: &str, kind: &str) -> Stdio {
        Stdio::from(std::fs::File::create(self.log_path(tag, kind)).expect("log file"))
    }

    fn read_log(&self, tag: &str, kind: &str) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path(tag, kind)) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Starts the server and waits for its `listening on http://ADDR` line.
    fn serve(&self, tag: &str, extra: &[&str]) -> Server {
        let child = self
            .command(tag, Some(TOKEN), extra)
            .spawn()
            .expect("start odatasync serve");
        let mut server = Server {
            child,
            url: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.read_log(tag, "out");
            if let Some(l) = out.lines().find(|l| l.contains("listening on http://")) {
                let at = l.find("http://").expect("url");
                server.url = l[at..].trim().to_string();
                return server;
            }
            if let Ok(Some(st)) = server.child.try_wait() {
                panic!(
                    "odatasync serve exited ({st}) before listening:\n{}",
                    self.read_log(tag, "err")
                );
            }
            assert!(
                Instant::now() < deadline,
                "odatasync serve did not start:\n{}",
                self.read_log(tag, "err")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A running `odatasync serve`; killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// `kill -9` and reap it (so its pid is really gone).
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// (status, Retry-After, Location, JSON body).
async fn call(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Option<String>, Option<String>, Value) {
    let mut rb = client().request(method, url);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = rb.send().await.expect("request");
    let status = r.status().as_u16();
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let (retry, location) = (header("retry-after"), header("location"));
    let text = r.text().await.unwrap_or_default();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, retry, location, v)
}

async fn post_sync(s: &Server, body: Value) -> (u16, Option<String>, Value) {
    let (st, _, loc, v) = call(
        reqwest::Method::POST,
        &format!("{}/syncs", s.url),
        Some(TOKEN),
        Some(body),
    )
    .await;
    (st, loc, v)
}

async fn get_sync(s: &Server, id: &str) -> (u16, Option<String>, Value) {
    let (st, retry, _, v) = call(
        reqwest::Method::GET,
        &format!("{}/syncs/{id}", s.url),
        Some(TOKEN),
        None,
    )
    .await;
    (st, retry, v)
}

/// Polls (politely, every 250 ms) until `done` holds for the batch document.
async fn poll_until(s: &Server, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (st, _, v) = get_sync(s, id).await;
        assert_eq!(st, 200, "GET /syncs/{id}: {v}");
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: still {v:#}");
    }
}

fn finished(v: &Value) -> bool {
    matches!(v["status"].as_str(), Some("succeeded" | "failed"))
}

/// A callback receiver: answers 500 to the first `failures` requests, then 200; keeps every
/// body it got.
async fn callback_receiver(failures: usize) -> (String, Arc<Mutex<Vec<Value>>>) {
    use axum::http::StatusCode;
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let got2 = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let got = got2.clone();
            async move {
                let mut g = got.lock().unwrap();
                g.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                if g.len() <= failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, got)
}

#[test]
fn refuses_to_start_without_a_token_and_every_route_needs_it() {
    let (h, refresh) = start_fake(Faults::default());
    let env = Env::new(&h, &refresh, None);
    let out = env
        .command("notoken", None, &[])
        .status()
        .expect("run odatasync serve");
    assert_eq!(out.code(), Some(2), "{}", env.read_log("notoken", "err"));
    assert!(
        env.read_log("notoken", "err")
            .contains("ODATASYNC_API_TOKEN"),
        "{}",
        env.read_log("notoken", "err")
    );
    let empty = env
        .command("emptytoken", Some(""), &[])
        .status()
        .expect("run odatasync serve");
    assert_eq!(empty.code(), Some(2));

    let s = env.serve("auth", &[]);
    runtime().block_on(async {
        let get = reqwest::Method::GET;
        for path in ["/syncs", "/syncs/x", "/nothing"] {
            let url = format!("{}{path}", s.url);
            let (st, ..) = call(get.clone(), &url, None, None).await;
            assert_eq!(st, 401, "{path} without a token");
            let (st, ..) = call(get.clone(), &url, Some("wrong"), None).await;
            assert_eq!(st, 401, "{path} with a wrong token");
            let (st, ..) = call(get.clone(), &url, Some(&format!("{TOKEN}x")), None).await;
            assert_eq!(st, 401, "{path} with a longer token");
        }
        let basic = client()
            .get(format!("{}/syncs", s.url))
            .basic_auth("user", Some(TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status().as_u16(), 401);
        // Nothing was recorded by refused requests.
        let r = client()
            .post(format!("{}/syncs", s.url))
            .header("content-type", "application/json")
            .body(json!({"service": "exact"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        assert!(r.headers().contains_key("www-authenticate"));
        let (st, _, _, v) = call(get.clone(), &format!("{}/syncs", s.url), Some(TOKEN), None).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["syncs"], json!([]), "{v}");
        let (st, ..) = call(get, &format!("{}/nothing", s.url), Some(TOKEN), None).await;
        assert_eq!(st, 404);
    });
}

#[test]
fn bad_requests_are_400_and_record_nothing() {
    let (h, refresh) = start_fake(Faults::default());
    let env = Env::new(&h, &refresh, None);
    let s = env.serve("bad", &[]);
    runtime().block_on(async {
        let (st, _, v) = post_sync(
            &s,
            json!({"service": "exact", "entities": ["SyncAccounts", "NoSuchEntity"]}),
        )
        .await;
        assert_eq!(st, 400, "{v}");
        let m = v["error"].as_str().unwrap_or_default();
        assert!(
            m.contains("'NoSuchEntity'") && m.contains("SyncGLAccounts"),
            "the planner's message lists the entities: {m}"
        );
        let (st, _, v) = post_sync(&s, json!({"service": "nosuchservice"})).await;
        assert_eq!(st, 400, "{v}");
        assert!(
            v["error"].as_str().unwrap().contains("nosuchservice"),
            "{v}"
        );
        let (st, _, v) = post_sync(&s, json!({"service": "exact", "entities": []})).await;
        assert_eq!(st, 400, "{v}");
        let (st, _, v) =
            post_sync(&s, json!({"service": "exact", "callback_url": "ftp://x/"})).await;
        assert_eq!(st, 400, "{v}");
        let (st, _, v) = post_sync(&s, json!({"service": "exact", "colour": "blue"})).await;
        assert_eq!(st, 400, "unknown field: {v}");
        let (st, _, v) = post_sync(&s, json!({"entities": ["SyncAccounts"]})).await;
        assert_eq!(st, 400, "no service: {v}");
        let r = client()
            .post(format!("{}/syncs", s.url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        // Bounded body: 1 MiB is refused before it is parsed.
        let big = format!(
            "{{\"service\": \"exact\", \"entities\": [\"{}\"]}}",
            "A".repeat(1 << 20)
        );
        let r = client()
            .post(format!("{}/syncs", s.url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 413);
        let (st, _, _, v) = call(
            reqwest::Method::GET,
            &format!("{}/syncs", s.url),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(v["syncs"], json!([]), "{v}");
        let (st, _, v) = get_sync(&s, "no-such-batch").await;
        assert_eq!(st, 404, "{v}");
    });
}

/// POST → 202, fast polling → 429, polling until succeeded with per-entity figures, the
/// callback delivered on the 3rd attempt, the list.
fn sync_poll_and_callback(db_url: Option<String>) {
    let (h, refresh) = start_fake(Faults::default());
    let env = Env::new(&h, &refresh, db_url);
    let s = env.serve("main", &["--callback-retry-ms", "100"]);
    runtime().block_on(async {
        let (hook, got) = callback_receiver(2).await;
        let (st, loc, v) = post_sync(
            &s,
            json!({
                "service": "exact",
                "entities": ["SyncAccounts", "SyncGLAccounts"],
                "callback_url": hook,
            }),
        )
        .await;
        assert_eq!(st, 202, "{v}");
        assert_eq!(v["status"], "queued");
        let id = v["id"].as_str().expect("id").to_string();
        assert_eq!(loc.as_deref(), Some(format!("/syncs/{id}").as_str()));

        // Two polls in a row: the second is too fast.
        let (st1, _, _) = get_sync(&s, &id).await;
        let (st2, retry, v2) = get_sync(&s, &id).await;
        assert_eq!(st1, 200);
        assert_eq!(st2, 429, "{v2}");
        assert_eq!(retry.as_deref(), Some("1"), "Retry-After");
        // After 200 ms it answers again.
        tokio::time::sleep(Duration::from_millis(220)).await;
        let (st3, _, _) = get_sync(&s, &id).await;
        assert_eq!(st3, 200);

        let v = poll_until(&s, &id, "the batch", finished).await;
        assert_eq!(
            v["status"],
            "succeeded",
            "{v:#}\n{}",
            env.read_log("main", "err")
        );
        assert_eq!(v["service"], "exact");
        assert!(
            v["created_at"].is_string()
                && v["started_at"].is_string()
                && v["finished_at"].is_string(),
            "{v:#}"
        );
        let entities = v["entities"].as_array().expect("entities");
        assert_eq!(entities.len(), 4, "2 entities x 2 divisions: {v:#}");
        for e in entities {
            assert_eq!(e["status"], "succeeded", "{e}");
            assert_eq!(e["rows_inserted"], json!(ROWS), "{e}");
            assert_eq!(e["rows_updated"], 0, "{e}");
            assert_eq!(e["errors"], 0, "{e}");
            assert!(e["api_calls"].as_i64().unwrap() >= 1, "{e}");
            assert!(DIVISIONS.iter().any(|d| e["division"] == json!(d)), "{e}");
        }

        // The callback: 2 failures, delivered on the 3rd attempt, every attempt counted.
        let v = poll_until(&s, &id, "the callback", |v| {
            v["callback"]["status"] != "pending"
        })
        .await;
        assert_eq!(v["callback"]["status"], "delivered", "{v:#}");
        assert_eq!(v["callback"]["attempts"], 3, "{v:#}");
        assert_eq!(v["callback"]["url"], json!(hook));
        let bodies = got.lock().unwrap().clone();
        assert_eq!(bodies.len(), 3);
        for b in &bodies {
            assert_eq!(b["id"], json!(id));
            assert_eq!(b["status"], "succeeded");
            assert_eq!(b["entities"].as_array().map(Vec::len), Some(4), "{b}");
        }

        // A second batch of the same service (incremental: nothing new) and the list.
        let (st, _, v) = post_sync(
            &s,
            json!({"service": "exact", "entities": ["SyncAccounts"]}),
        )
        .await;
        assert_eq!(st, 202, "{v}");
        let id2 = v["id"].as_str().unwrap().to_string();
        let v = poll_until(&s, &id2, "the second batch", finished).await;
        assert_eq!(v["status"], "succeeded", "{v:#}");
        assert!(v["callback"].is_null(), "{v}");
        for e in v["entities"].as_array().unwrap() {
            assert_eq!(e["rows_inserted"], 0, "{e}");
        }
        let (st, _, _, list) = call(
            reqwest::Method::GET,
            &format!("{}/syncs?limit=10", s.url),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(st, 200);
        let ids: Vec<&str> = list["syncs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [id2.as_str(), id.as_str()], "newest first: {list:#}");
        let (_, _, _, page) = call(
            reqwest::Method::GET,
            &format!("{}/syncs?limit=1&offset=1", s.url),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(page["syncs"][0]["id"], json!(id), "{page:#}");
        let (st, ..) = call(
            reqwest::Method::GET,
            &format!("{}/syncs?limit=0", s.url),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(st, 400);
    });
}

#[test]
fn sync_poll_and_callback_sqlite() {
    sync_poll_and_callback(None);
}

#[test]
fn sync_poll_and_callback_postgres() {
    let pg = odata_test_support::PgServer::start().expect("PostgreSQL");
    let url = pg.create_database("cli_serve").expect("create database");
    sync_poll_and_callback(Some(url));
}

/// kill -9 in the middle of a batch, with a second batch of the same service waiting: after
/// the restart the interrupted batch is failed (its unfinished runs too) and its callback is
/// delivered, the waiting one runs, and a new POST works.
fn interrupted_by_kill_9(db_url: Option<String>) {
    // Every API call takes 250 ms: the batch runs for seconds.
    let (h, refresh) = start_fake(Faults {
        slow: 1.0,
        slow_ms: 250,
        ..Faults::default()
    });
    let env = Env::new(&h, &refresh, db_url);
    let mut s = env.serve("first", &["--callback-retry-ms", "100"]);
    runtime().block_on(async {
        let (hook, got) = callback_receiver(0).await;
        let (st, _, v) = post_sync(
            &s,
            json!({
                "service": "exact",
                "entities": ["SyncAccounts", "SyncGLAccounts", "SyncContacts", "SyncItems"],
                "callback_url": hook,
            }),
        )
        .await;
        assert_eq!(st, 202, "{v}");
        let first = v["id"].as_str().unwrap().to_string();
        let (st, _, v) =
            post_sync(&s, json!({"service": "exact", "entities": ["SyncGLAccounts"]})).await;
        assert_eq!(st, 202, "{v}");
        let second = v["id"].as_str().unwrap().to_string();

        // The first runs (one run done), the second waits: one running batch per service.
        let v = poll_until(&s, &first, "a run of the first batch", |v| {
            v["status"] == "running"
                && v["entities"]
                    .as_array()
                    .is_some_and(|es| es.iter().any(|e| e["status"] == "succeeded"))
        })
        .await;
        assert!(
            v["entities"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["status"] != "succeeded"),
            "the batch is not over yet: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (_, _, w) = get_sync(&s, &second).await;
        assert_eq!(w["status"], "queued", "{w:#}");

        s.kill9();
        // Faster service for the rest.
        let r = client()
            .post(format!("{}/_test/faults", h.base_url()))
            .header("content-type", "application/json")
            .body(serde_json::to_string(&Faults::default()).unwrap())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());

        let s2 = env.serve("second", &["--callback-retry-ms", "100"]);
        let (st, _, v) = get_sync(&s2, &first).await;
        assert_eq!(st, 200);
        assert_eq!(v["status"], "failed", "{v:#}");
        assert!(
            v["message"].as_str().unwrap_or_default().contains("interrupted"),
            "{v:#}"
        );
        assert!(v["finished_at"].is_string(), "{v:#}");
        let entities = v["entities"].as_array().unwrap();
        assert_eq!(entities.len(), 8, "{v:#}");
        assert!(entities.iter().any(|e| e["status"] == "succeeded"), "{v:#}");
        for e in entities {
            assert!(
                e["status"] == "succeeded" || e["status"] == "failed",
                "no run is left queued or running: {e}"
            );
            if e["status"] == "failed" {
                assert!(e["finished_at"].is_string(), "{e}");
            }
        }
        // Its callback reports the failure.
        let v = poll_until(&s2, &first, "the callback", |v| {
            v["callback"]["status"] != "pending"
        })
        .await;
        assert_eq!(v["callback"]["status"], "delivered", "{v:#}");
        assert_eq!(v["callback"]["attempts"], 1, "{v:#}");
        assert_eq!(got.lock().unwrap()[0]["status"], "failed");

        // The waiting batch runs after the restart.
        let w = poll_until(&s2, &second, "the queued batch", finished).await;
        assert_eq!(w["status"], "succeeded", "{w:#}\n{}", env.read_log("second", "err"));

        // A new POST works (the interrupted entities sync again).
        let (st, _, v) = post_sync(
            &s2,
            json!({"service": "exact", "entities": ["SyncAccounts", "SyncGLAccounts", "SyncContacts", "SyncItems"]}),
        )
        .await;
        assert_eq!(st, 202, "{v}");
        let third = v["id"].as_str().unwrap().to_string();
        let v = poll_until(&s2, &third, "the new batch", finished).await;
        assert_eq!(v["status"], "succeeded", "{v:#}\n{}", env.read_log("second", "err"));
        assert_eq!(v["entities"].as_array().unwrap().len(), 8);
    });
}

#[test]
fn a_batch_interrupted_by_kill_9_is_failed_on_restart_and_the_queue_goes_on_sqlite() {
    interrupted_by_kill_9(None);
}

#[test]
fn a_batch_interrupted_by_kill_9_is_failed_on_restart_and_the_queue_goes_on_postgres() {
    let pg = odata_test_support::PgServer::start().expect("PostgreSQL");
    let url = pg
        .create_database("cli_serve_kill")
        .expect("create database");
    interrupted_by_kill_9(Some(url));
}

/// A callback that never succeeds: bounded attempts, then `failed`; the batch itself stays
/// succeeded.
#[test]
fn a_callback_that_keeps_failing_ends_failed_after_the_last_attempt() {
    let (h, refresh) = start_fake(Faults::default());
    let env = Env::new(&h, &refresh, None);
    let s = env.serve(
        "cbfail",
        &["--callback-attempts", "3", "--callback-retry-ms", "50"],
    );
    runtime().block_on(async {
        let (hook, got) = callback_receiver(usize::MAX).await;
        let (st, _, v) = post_sync(
            &s,
            json!({"service": "exact", "entities": ["SyncGLAccounts"], "callback_url": hook}),
        )
        .await;
        assert_eq!(st, 202, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        let v = poll_until(&s, &id, "the callback", |v| {
            finished(v) && v["callback"]["status"] != "pending"
        })
        .await;
        assert_eq!(v["status"], "succeeded", "{v:#}");
        assert_eq!(v["callback"]["status"], "failed", "{v:#}");
        assert_eq!(v["callback"]["attempts"], 3, "{v:#}");
        assert_eq!(got.lock().unwrap().len(), 3);
    });
}
