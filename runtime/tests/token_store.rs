//! `odata_runtime::sync::DbTokenStore` on a SQLite file and a real PostgreSQL: encrypted at
//! rest (no token in the database file, its WAL or `pg_dump`), a wrong key or an altered value
//! is a clear error, divisions, and a refresh lock that excludes other **processes**.
//!
//! Cross-process tests run this test binary again as child processes
//! (`current_exe() --exact child_process --nocapture`, with `TOKEN_STORE_CHILD` saying what to
//! do; without it `child_process` returns at once). The last test is the real thing
//! (exact-online.md §3): 8 processes, each with its own `Client`, share one database token
//! store against the fake Exact Online (in the parent) with its clock sped up, for more than
//! two virtual hours: the fake sees timely refreshes, none early, no rotated refresh token
//! reused and no 401.
#![cfg(feature = "sync")]

mod client_common;

use client_common::{Account, FakeClock, DIV, REDIRECT};
use fake_exact::{Config, FakeExact};
use futures_util::TryStreamExt;
use odata_runtime::client::{
    Auth, Client, ClientOptions, ExactOAuth2, Secret, TokenSet, TokenStore,
};
use odata_runtime::sql::{sqlx, Db};
use odata_runtime::sync::{apply_migrations, DbTokenStore, SecretKey};
use odata_runtime::Dialect;
use odata_test_support::PgServer;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a child process does: `lock`, `hold`, `env` or `client`.
const CHILD_ENV: &str = "TOKEN_STORE_CHILD";
const SERVICE: &str = "exact";
const CLIENT_ID: &str = "b81cc4de-d192-400e-bcb4-09254394c52a";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn system_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child: {name} not set"))
}

fn env_i64(name: &str) -> i64 {
    env(name)
        .parse()
        .unwrap_or_else(|_| panic!("child: {name}"))
}

/// This test binary as a child process running [`child_process`] with `role`.
fn child(role: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("current_exe"));
    c.args([
        "--exact",
        "child_process",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(CHILD_ENV, role)
    .env_remove("ODATASYNC_SECRET_KEY")
    .env_remove("ODATASYNC_SECRET_KEY_FILE")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

/// Waits for a child and returns its stdout; panics with its output when it failed.
fn finish(name: &str, c: Child) -> String {
    let out = c.wait_with_output().expect("wait for child");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{name} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// The entry point of every child process (returns at once in a normal test run).
#[test]
fn child_process() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = rt();
    match role.as_str() {
        "env" => {
            let r = SecretKey::from_env();
            println!(
                "\nENV-RESULT {}",
                match r {
                    Ok(Some(k)) => format!("key {}", k.to_base64()),
                    Ok(None) => "none".into(),
                    Err(e) => format!("error {e}"),
                }
            );
        }
        "lock" => rt.block_on(lock_child()),
        "hold" => rt.block_on(hold_child()),
        "client" => rt.block_on(client_child()),
        other => panic!("unknown child role {other}"),
    }
}

async fn child_store() -> DbTokenStore {
    let db = Db::connect(&env("TS_DB")).await.expect("child: connect");
    let key = SecretKey::from_env()
        .expect("child: key")
        .expect("child: ODATASYNC_SECRET_KEY(_FILE) set");
    DbTokenStore::new(db, SERVICE, CLIENT_ID, key).expect("child: store")
}

/// Takes the lock `TS_ROUNDS` times (from wall-clock `TS_GO_US` on, so that the children
/// contend) and writes `enter PID` / `leave PID` around a short sleep into `TS_LOG`.
async fn lock_child() {
    let store = child_store().await;
    let log = PathBuf::from(env("TS_LOG"));
    let rounds = env_i64("TS_ROUNDS");
    let go = env_i64("TS_GO_US");
    let wait = go - system_us();
    if wait > 0 {
        tokio::time::sleep(Duration::from_micros(wait as u64)).await;
    }
    let pid = std::process::id();
    let append = |line: String| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .expect("log");
        f.write_all(line.as_bytes()).expect("append");
        f.flush().expect("flush");
    };
    for _ in 0..rounds {
        let lock = store.lock().await.expect("child: lock");
        append(format!("enter {pid}\n"));
        tokio::time::sleep(Duration::from_millis(15)).await;
        append(format!("leave {pid}\n"));
        drop(lock);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Takes the lock, says so, and waits to be killed.
async fn hold_child() {
    let store = child_store().await;
    let _lock = store.lock().await.expect("child: lock");
    println!("\nLOCKED");
    std::io::stdout().flush().expect("flush");
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// One client of the 8-process run: pages through `crm/Accounts` every `TS_PAUSE_MS` of
/// virtual time until `TS_END_MS`, with the fake's accelerated clock rebuilt from
/// (`TS_V0_MS` virtual at wall-clock `TS_S0_US`, `TS_SPEED`).
async fn client_child() {
    let speed: f64 = env("TS_SPEED").parse().expect("TS_SPEED");
    let v0 = env_i64("TS_V0_MS");
    let s0 = env_i64("TS_S0_US");
    let clock = fake_exact::Clock::starting_at(
        v0 + ((system_us() - s0) as f64 * speed / 1000.0) as i64,
        speed,
    );
    let min_run = env_i64("TS_MIN_RUN_MS");
    let pause = env_i64("TS_PAUSE_MS");
    let rows_expected = env_i64("TS_ROWS") as usize;
    let base = env("TS_BASE_URL");
    let store = Arc::new(child_store().await);
    let c = Client::builder(format!("{base}/api/v1/{{division}}/"))
        .auth(Auth::ExactOAuth2(ExactOAuth2 {
            client_id: CLIENT_ID.into(),
            client_secret: Secret::new(env("TS_CLIENT_SECRET")),
            token_url: format!("{base}/api/oauth2/token"),
            redirect_uri: REDIRECT.into(),
            store,
        }))
        .dialect(Dialect::V2)
        .clock(Arc::new(FakeClock(clock.clone())))
        .options(ClientOptions {
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
            ..ClientOptions::default()
        })
        .build()
        .expect("child: client");
    let started = clock.now_ms();
    let end = env_i64("TS_END_MS").max(started + min_run);
    let mut runs = 0u64;
    while clock.now_ms() < end {
        let rows: Vec<Account> = c
            .rows::<Account>(DIV)
            .endpoint("crm/Accounts")
            .stream()
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("child: run {runs}: {e}"));
        assert_eq!(rows.len(), rows_expected, "child: run {runs}");
        runs += 1;
        tokio::time::sleep(clock.real_duration(pause)).await;
    }
    println!(
        "\nCHILD-DONE runs={runs} requests={} virtual_ms={}",
        c.requests_sent(),
        clock.now_ms() - started
    );
}

fn tokens(tag: &str) -> TokenSet {
    TokenSet {
        access_token: Secret::new(format!("stampNL001.gAAAA-access-{tag}-0123456789abcdef")),
        refresh_token: Secret::new(format!(
            "stampNL001.jHaG!IAAAA-refresh-{tag}-fedcba9876543210"
        )),
        expires_at_ms: 1_700_000_600_000,
        obtained_at_ms: 1_700_000_000_000,
    }
}

/// The stored (encrypted) value of a token column.
async fn stored(db: &Db, column: &str) -> String {
    let sql = format!(
        "SELECT \"{column}\" FROM \"odata_tokens\" WHERE \"service\" = '{SERVICE}' AND \"client_id\" = '{CLIENT_ID}'"
    );
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(p)
            .await
            .expect("stored"),
        Db::Postgres(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(p)
            .await
            .expect("stored"),
    }
}

async fn set_stored(db: &Db, column: &str, value: &str) {
    db.execute_script(&format!(
        "UPDATE \"odata_tokens\" SET \"{column}\" = '{value}' WHERE \"service\" = '{SERVICE}' AND \"client_id\" = '{CLIENT_ID}'"
    ))
    .await
    .expect("update");
}

/// Round trip, no token in clear (`raw_bytes` reads everything the database wrote), wrong key,
/// altered and swapped values, divisions, status.
async fn check_store(db: Db, raw_bytes: impl Fn() -> Vec<u8>) {
    apply_migrations(&db).await.expect("migrations");
    let key = SecretKey::generate().unwrap();
    let store = DbTokenStore::new(db.clone(), SERVICE, CLIENT_ID, key.clone()).unwrap();
    assert_eq!(store.load().await.unwrap(), None);
    assert_eq!(store.token_status().await.unwrap(), None);
    let mut all = Vec::new();
    for tag in ["first", "second", "third"] {
        let t = tokens(tag);
        store.save(t.clone()).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(t.clone()));
        all.push(t);
    }
    let last = all.last().unwrap().clone();
    // A second store (as another process would open it) reads the same pair.
    let again = DbTokenStore::new(db.clone(), SERVICE, CLIENT_ID, key.clone()).unwrap();
    assert_eq!(again.load().await.unwrap(), Some(last.clone()));
    assert_eq!(
        again.token_status().await.unwrap(),
        Some((last.expires_at_ms, last.obtained_at_ms))
    );
    // Another app's row is separate.
    let other = DbTokenStore::new(db.clone(), SERVICE, "other-app", key.clone()).unwrap();
    assert_eq!(other.load().await.unwrap(), None);

    // No token in clear anywhere in the database.
    let bytes = raw_bytes();
    assert!(!bytes.is_empty());
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        contains("v1:"),
        "the encrypted values are in the bytes read"
    );
    for t in &all {
        for s in [&t.access_token, &t.refresh_token] {
            assert!(!contains(s.expose()), "a token in clear in the database");
        }
        assert!(!contains(&format!("{:?}", t.access_token.expose())));
    }
    for part in ["-access-", "-refresh-"] {
        assert!(!contains(part), "a piece of a token in clear: {part}");
    }

    // Wrong key: a clear error, no garbage.
    let wrong = DbTokenStore::new(
        db.clone(),
        SERVICE,
        CLIENT_ID,
        SecretKey::generate().unwrap(),
    )
    .unwrap();
    let e = wrong.load().await.unwrap_err().to_string();
    for part in [
        "stored tokens of service exact",
        "cannot be decrypted with this key",
        "ODATASYNC_SECRET_KEY",
        "ODATASYNC_SECRET_KEY_FILE",
    ] {
        assert!(e.contains(part), "{part:?} missing in: {e}");
    }
    assert!(
        !e.contains(last.access_token.expose()) && !e.contains("v1:"),
        "{e}"
    );
    // The status needs no key.
    assert!(wrong.token_status().await.unwrap().is_some());

    // An altered ciphertext (one base64 character in the middle flipped).
    let access = stored(&db, "access_token").await;
    let refresh = stored(&db, "refresh_token").await;
    let mut chars: Vec<char> = access.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let altered: String = chars.into_iter().collect();
    set_stored(&db, "access_token", &altered).await;
    let e = store.load().await.unwrap_err().to_string();
    assert!(e.contains("cannot be decrypted with this key"), "{e}");
    // A value moved to the other column (associated data binds it to its column).
    set_stored(&db, "access_token", &refresh).await;
    let e = store.load().await.unwrap_err().to_string();
    assert!(e.contains("cannot be decrypted with this key"), "{e}");
    // Not our format at all.
    set_stored(&db, "access_token", "plain-text-token").await;
    assert!(store.load().await.is_err());
    set_stored(&db, "access_token", &access).await;
    assert_eq!(store.load().await.unwrap(), Some(last));

    // Divisions: replaced as a set, per app.
    store
        .save_divisions(&[(100002, None), (100001, Some("Main B.V.".into()))])
        .await
        .unwrap();
    other.save_divisions(&[(7, None)]).await.unwrap();
    assert_eq!(store.divisions().await.unwrap(), vec![100001, 100002]);
    store
        .save_divisions(&[(100003, Some("Third".into()))])
        .await
        .unwrap();
    assert_eq!(store.divisions().await.unwrap(), vec![100003]);
    assert_eq!(other.divisions().await.unwrap(), vec![7]);
    store.save_divisions(&[]).await.unwrap();
    assert!(store.divisions().await.unwrap().is_empty());
}

fn read_all(paths: &[PathBuf]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in paths {
        if let Ok(b) = std::fs::read(p) {
            v.extend_from_slice(&b);
        }
    }
    v
}

#[test]
fn sqlite_store_is_encrypted_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sync.db");
    let url = format!("sqlite:{}?mode=rwc", file.display());
    rt().block_on(async {
        let db = Db::connect(&url).await.unwrap();
        let store = DbTokenStore::new(
            db.clone(),
            SERVICE,
            CLIENT_ID,
            SecretKey::generate().unwrap(),
        )
        .unwrap();
        assert_eq!(
            store.lock_file(),
            Some(dir.path().join("sync.db.token-lock").as_path())
        );
        let files: Vec<PathBuf> = ["sync.db", "sync.db-wal", "sync.db-journal"]
            .iter()
            .map(|f| dir.path().join(f))
            .collect();
        check_store(db.clone(), || read_all(&files)).await;
        // and in WAL mode, with the tokens still in the WAL
        db.execute_script("PRAGMA journal_mode = WAL")
            .await
            .unwrap();
        check_store_wal(db, &files).await;
    });
}

/// Saves in WAL mode and looks into the `-wal` file too.
async fn check_store_wal(db: Db, files: &[PathBuf]) {
    let store = DbTokenStore::new(db, SERVICE, "wal-app", SecretKey::generate().unwrap()).unwrap();
    let t = tokens("wal");
    store.save(t.clone()).await.unwrap();
    assert!(files[1].exists(), "a WAL file");
    let bytes = read_all(files);
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!contains(t.access_token.expose()) && !contains(t.refresh_token.expose()));
    assert_eq!(store.load().await.unwrap(), Some(t));
}

#[test]
fn postgres_store_is_encrypted_checked_and_locks_across_processes() {
    let pg = PgServer::start().expect("PostgreSQL");
    let url = pg.create_database("tokens").unwrap();
    rt().block_on(async {
        let db = Db::connect(&url).await.unwrap();
        assert_eq!(
            DbTokenStore::new(
                db.clone(),
                SERVICE,
                CLIENT_ID,
                SecretKey::generate().unwrap()
            )
            .unwrap()
            .lock_file(),
            None
        );
        check_store(db, || pg.dump("tokens").expect("pg_dump").into_bytes()).await;
    });
    let url = pg.create_database("locks").unwrap();
    lock_excludes_processes(&url);
    lock_released_when_the_holder_dies(&url);
}

#[test]
fn sqlite_lock_excludes_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("sync.db").display());
    lock_excludes_processes(&url);
    lock_released_when_the_holder_dies(&url);
}

/// 4 processes × 6 rounds: every `enter` is followed by the same process's `leave`.
fn lock_excludes_processes(url: &str) {
    rt().block_on(async {
        let db = Db::connect(url).await.unwrap();
        apply_migrations(&db).await.unwrap();
    });
    let key = SecretKey::generate().unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let go = system_us() + 1_500_000;
    let (children, rounds) = (4, 6);
    let kids: Vec<Child> = (0..children)
        .map(|_| {
            child("lock")
                .env("TS_DB", url)
                .env("ODATASYNC_SECRET_KEY", key.to_base64())
                .env("TS_LOG", log.path())
                .env("TS_ROUNDS", rounds.to_string())
                .env("TS_GO_US", go.to_string())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for (i, k) in kids.into_iter().enumerate() {
        finish(&format!("lock child {i}"), k);
    }
    let text = std::fs::read_to_string(log.path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), children * rounds * 2, "{text}");
    let mut pids = std::collections::BTreeSet::new();
    for pair in lines.chunks(2) {
        let (a, b) = (pair[0], pair[1]);
        let pid = a
            .strip_prefix("enter ")
            .unwrap_or_else(|| panic!("interleaved:\n{text}"));
        assert_eq!(b, format!("leave {pid}"), "interleaved:\n{text}");
        pids.insert(pid.to_string());
    }
    assert_eq!(pids.len(), children);
    // The processes did take turns (not one after the other).
    let switches = lines
        .chunks(2)
        .zip(lines.chunks(2).skip(1))
        .filter(|(a, b)| a[0] != b[0])
        .count();
    assert!(switches >= children, "no contention: {text}");
}

/// A process holding the lock is killed: the lock is free again (the kernel closes the lock
/// file; PostgreSQL ends the dead connection's session).
fn lock_released_when_the_holder_dies(url: &str) {
    let key = SecretKey::generate().unwrap();
    let mut holder = child("hold")
        .env("TS_DB", url)
        .env("ODATASYNC_SECRET_KEY", key.to_base64())
        .spawn()
        .expect("spawn");
    let mut out = std::io::BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "holder ended early");
        if line.trim() == "LOCKED" {
            break;
        }
    }
    rt().block_on(async {
        let db = Db::connect(url).await.unwrap();
        let store = DbTokenStore::new(db, SERVICE, CLIENT_ID, key).unwrap();
        let r = tokio::time::timeout(Duration::from_millis(300), store.lock()).await;
        assert!(r.is_err(), "the lock is held by the other process");
        holder.kill().expect("kill holder");
        holder.wait().expect("wait holder");
        let t = Instant::now();
        let lock = tokio::time::timeout(Duration::from_secs(20), store.lock())
            .await
            .expect("the lock is released when its holder dies")
            .unwrap();
        drop(lock);
        println!("lock free {:?} after the holder died", t.elapsed());
    });
}

#[test]
fn in_memory_sqlite_store_locks_in_process() {
    rt().block_on(async {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        apply_migrations(&db).await.unwrap();
        let store = Arc::new(
            DbTokenStore::new(db, SERVICE, CLIENT_ID, SecretKey::generate().unwrap()).unwrap(),
        );
        assert_eq!(store.lock_file(), None);
        store.save(tokens("mem")).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(tokens("mem")));
        let lock = store.lock().await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(100), store.lock())
                .await
                .is_err(),
            "held"
        );
        drop(lock);
        let _again = store.lock().await.unwrap();
    });
}

#[test]
fn secret_key_from_env_file_and_load_or_create() {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::generate().unwrap();
    let run = |vars: &[(&str, &str)]| {
        let mut c = child("env");
        for (k, v) in vars {
            c.env(k, v);
        }
        let out = finish("env child", c.spawn().expect("spawn"));
        out.lines()
            .find_map(|l| l.strip_prefix("ENV-RESULT "))
            .unwrap_or_else(|| panic!("no result: {out}"))
            .to_string()
    };
    let b64 = key.to_base64();
    assert_eq!(run(&[("ODATASYNC_SECRET_KEY", &b64)]), format!("key {b64}"));
    let file = dir.path().join("key");
    std::fs::write(&file, format!("{b64}\n")).unwrap();
    let f = file.display().to_string();
    assert_eq!(
        run(&[("ODATASYNC_SECRET_KEY_FILE", &f)]),
        format!("key {b64}")
    );
    assert_eq!(run(&[]), "none");
    let e = run(&[("ODATASYNC_SECRET_KEY", "c2hvcnQ=")]);
    assert!(
        e.starts_with("error ODATASYNC_SECRET_KEY") && e.contains("not 32"),
        "{e}"
    );
    let missing = dir.path().join("nope").display().to_string();
    let e = run(&[("ODATASYNC_SECRET_KEY_FILE", &missing)]);
    assert!(e.contains(&missing) && e.contains("cannot be read"), "{e}");

    // load_or_create: a new file (0600) with a random key, the same key the next time.
    let path = dir.path().join("secret.key");
    let k1 = SecretKey::load_or_create(&path).unwrap();
    let k2 = SecretKey::load_or_create(&path).unwrap();
    assert_eq!(k1, k2);
    assert_ne!(k1, key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    assert_eq!(format!("{k1:?}"), "SecretKey(***)");
    // A file that does not hold 32 bytes, and one that cannot be read: errors naming the path.
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "dG9vIHNob3J0").unwrap();
    let e = SecretKey::load_or_create(&bad).unwrap_err().to_string();
    assert!(
        e.contains(&bad.display().to_string()) && e.contains("9 bytes, not 32"),
        "{e}"
    );
    let e = SecretKey::load_or_create(dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains(&dir.path().display().to_string()), "{e}");
}

/// Clock speed of the 8-process run: the refresh window (the last 30 s of a token) is 200 ms
/// of real time; 2 virtual hours take 48 s (both backends run at once).
const SPEED: f64 = 150.0;
const CHILDREN: usize = 8;
const ROWS: u64 = 120;
/// Every child pages for at least this long (virtual time).
const MIN_RUN_MS: i64 = 2 * 3_600_000;

/// Starts a fake, a store holding a fresh pair, and 8 client processes on `db_url`.
fn start_run(db_url: &str, dir: &Path, end_after_ms: i64) -> (fake_exact::Handle, Vec<Child>) {
    let h = FakeExact::start(Config {
        clock: fake_exact::Clock::accelerated(SPEED),
        rows: BTreeMap::from([("Accounts".to_string(), ROWS)]),
        client_id: CLIENT_ID.into(),
        // Token rules are under test here, not the rate limits (8 processes share them).
        minutely_limit: 10_000,
        daily_limit: 1_000_000,
        ..Config::default()
    });
    let key = SecretKey::generate().unwrap();
    rt().block_on(async {
        let db = Db::connect(db_url).await.unwrap();
        apply_migrations(&db).await.unwrap();
        let store = DbTokenStore::new(db, SERVICE, CLIENT_ID, key.clone()).unwrap();
        let (a, r) = h.issue_tokens();
        let now = h.clock().now_ms();
        store
            .save(TokenSet {
                access_token: Secret::new(a),
                refresh_token: Secret::new(r),
                expires_at_ms: now + 600_000,
                obtained_at_ms: now,
            })
            .await
            .unwrap();
    });
    let key_file = dir.join(format!("key-{}", h.addr().port()));
    std::fs::write(&key_file, key.to_base64()).unwrap();
    let s0 = system_us();
    let v0 = h.clock().now_ms();
    let end = v0 + end_after_ms;
    let kids = (0..CHILDREN)
        .map(|i| {
            child("client")
                .env("TS_DB", db_url)
                .env("ODATASYNC_SECRET_KEY_FILE", &key_file)
                .env("TS_BASE_URL", h.base_url())
                .env("TS_CLIENT_SECRET", &h.config().client_secret)
                .env("TS_SPEED", SPEED.to_string())
                .env("TS_V0_MS", v0.to_string())
                .env("TS_S0_US", s0.to_string())
                .env("TS_END_MS", end.to_string())
                .env("TS_MIN_RUN_MS", MIN_RUN_MS.to_string())
                .env("TS_PAUSE_MS", (20_000 + 1_000 * i as i64).to_string())
                .env("TS_ROWS", ROWS.to_string())
                .spawn()
                .expect("spawn client child")
        })
        .collect();
    (h, kids)
}

fn check_run(name: &str, h: &fake_exact::Handle, kids: Vec<Child>, v_start: i64) {
    let mut runs = 0;
    for (i, k) in kids.into_iter().enumerate() {
        let out = finish(&format!("{name} client {i}"), k);
        let line = out
            .lines()
            .find(|l| l.starts_with("CHILD-DONE"))
            .unwrap_or_else(|| panic!("{name} client {i} did not finish: {out}"));
        let field = |f: &str| -> i64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(f))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{f} in {line}"))
        };
        let n = field("runs=") as u64;
        assert!(n > 100, "{name} client {i}: {line}");
        assert!(
            field("virtual_ms=") >= MIN_RUN_MS,
            "{name} client {i}: {line}"
        );
        runs += n;
    }
    let stats = h.stats();
    let refreshes = stats
        .token_grants
        .get("refresh_token")
        .copied()
        .unwrap_or(0);
    let virtual_h = (h.clock().now_ms() - v_start) as f64 / 3_600_000.0;
    println!(
        "{name}: {CHILDREN} processes, {virtual_h:.2} virtual hours, {runs} runs, {} calls, {refreshes} refreshes, errors {:?}, violations {:?}",
        stats.calls_total, stats.errors, stats.violations
    );
    assert!(virtual_h >= 2.0, "{virtual_h}");
    let kind = |k: &str| stats.violations.iter().filter(|v| v.kind == k).count();
    assert_eq!(kind("early_refresh"), 0, "{name}: refreshed before 570 s");
    assert_eq!(
        kind("rotated_refresh_token_reuse"),
        0,
        "{name}: a rotated refresh token was used"
    );
    assert!(
        stats.violations.is_empty(),
        "{name}: {:?}",
        stats.violations
    );
    assert_eq!(
        stats.errors.get(&401),
        None,
        "{name}: 401s: {:?}",
        stats.errors
    );
    // One refresh per token lifetime between all 8 processes (2 h / 600 s = 12), not one per
    // process.
    assert!(
        (11..=14).contains(&refreshes),
        "{name}: {refreshes} refreshes"
    );
}

/// 8 processes, each its own `Client` and token cache, share one `DbTokenStore` (a SQLite
/// file; and, at the same time, a PostgreSQL database), paging through `crm/Accounts` for more
/// than 2 virtual hours.
#[test]
fn eight_processes_share_one_db_token_store() {
    let started = Instant::now();
    let pg = PgServer::start().expect("PostgreSQL");
    let pg_url = pg.create_database("tokens8").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lite_url = format!("sqlite:{}?mode=rwc", dir.path().join("sync.db").display());
    // 2 h and 2 min of virtual time from the start (and at least 2 h from each child's own).
    let run_ms = MIN_RUN_MS + 120_000;
    let (h_lite, lite) = start_run(&lite_url, dir.path(), run_ms);
    let lite_start = h_lite.clock().now_ms();
    let (h_pg, pgk) = start_run(&pg_url, dir.path(), run_ms);
    let pg_start = h_pg.clock().now_ms();
    check_run("SQLite", &h_lite, lite, lite_start);
    check_run("PostgreSQL", &h_pg, pgk, pg_start);
    println!("8-process runs took {:?}", started.elapsed());
}
