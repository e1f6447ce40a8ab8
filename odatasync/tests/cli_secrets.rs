//! Secrets at rest (issue 7): the real `odatasync` binary against the fake Exact Online in
//! this process, a SQLite file and a real PostgreSQL.
//!
//! * `secrets_at_rest_sqlite` / `_postgres`: after syncs through the CLI (the first with the
//!   client secret and a handed-over refresh token in the environment, the second without the
//!   client secret: the stored one is used), the SQLite file and its WAL, or the `pg_dump` text,
//!   hold none of: the refresh token handed over, the access and refresh tokens the fake issued
//!   afterwards (learned by decrypting with the test's key through `DbTokenStore::load`), any
//!   token of the fake at all (they all start `stampNL001.`), the client secret, the webhook
//!   secret. No token or secret in stdout/stderr of runs with `RUST_LOG=trace -vv`.
//!   `keys generate` writes a 0600 file and refuses to overwrite; `keys rotate` with a wrong
//!   current key, or with one altered value, exits 2 and changes nothing; a real rotation
//!   re-encrypts every value; then a sync with the old key exits 2 naming the variables and a
//!   sync with the new key (and no client secret in the environment) works.
//! * `library_logs_have_no_tokens`: a subscriber capturing every event of every level and
//!   target (the global default of this test binary) around `connect`, a sync, wrong-key
//!   errors and the secret API: no token or secret in a log line or an error message.

use fake_exact::{Clock, Config, FakeExact, Handle};
use odata_runtime::client::{Secret, TokenSet, TokenStore};
use odata_runtime::sql::{sqlx, Db};
use odata_runtime::sync::tokens::{load_secret, save_secret};
use odata_runtime::sync::{apply_migrations, DbTokenStore, SecretKey};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SERVICE: &str = "exact";
const DIV: i32 = 100001;
const CLIENT_SECRET: &str = "cs-9f2c7e1a-SECRET-client-4b8d";
const WEBHOOK_SECRET: &str = "wh-51d0c3aa-SECRET-webhook-77e2";
/// Every token and code the fake issues starts with this.
const FAKE_TOKEN_PREFIX: &str = "stampNL001.";
/// A few entities (the rest add nothing here, only time and log volume).
const ENTITIES: &str = "SyncAccounts,SyncGLAccounts";

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

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

/// The fake (one division, few rows, no rate-limit waits) with our client and webhook
/// secrets, and a refresh token old enough (> 570 s) to be refreshed at once.
fn start_fake() -> (Handle, String) {
    let clock = Clock::starting_at(system_ms() - 600_000, 1.0);
    let h = FakeExact::start(Config {
        divisions: vec![DIV],
        rows_per_entity: 30,
        minutely_limit: 1_000_000,
        daily_limit: 10_000_000,
        client_secret: CLIENT_SECRET.into(),
        webhook_secret: WEBHOOK_SECRET.into(),
        clock: clock.clone(),
        ..Config::default()
    });
    let (_access, refresh) = h.issue_tokens();
    clock.advance(Duration::from_millis(600_000));
    (h, refresh)
}

/// One `odatasync` installation: a temp folder (key files, SQLite file), the database URL.
struct Setup {
    dir: tempfile::TempDir,
    key_file: PathBuf,
    db_url: String,
    base_url: String,
    token_url: String,
    client_id: String,
    refresh_token: String,
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
            "{what}: exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
    }
    fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl Setup {
    fn new(h: &Handle, refresh_token: &str, db_url: Option<String>) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_url = db_url
            .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("sync.sqlite").display()));
        Setup {
            key_file: dir.path().join("secret.key"),
            db_url,
            base_url: format!("{}/api/v1/{{division}}/", h.base_url()),
            token_url: format!("{}/api/oauth2/token", h.base_url()),
            client_id: h.config().client_id.clone(),
            refresh_token: refresh_token.to_string(),
            dir,
        }
    }

    fn sqlite_file(&self) -> Option<PathBuf> {
        self.db_url.strip_prefix("sqlite:").map(PathBuf::from)
    }

    fn open_url(&self) -> String {
        if self.db_url.starts_with("sqlite:") {
            format!("{}?mode=rwc", self.db_url)
        } else {
            self.db_url.clone()
        }
    }

    /// `odatasync ARGS` with the whole environment set here (nothing inherited that could
    /// change it): client id and secret, the handed-over refresh token, the key file.
    fn command(&self, args: &[&str]) -> Command {
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
            .env("ODATASYNC_CLIENT_SECRET", CLIENT_SECRET)
            .env("ODATASYNC_REFRESH_TOKEN", &self.refresh_token)
            .env("ODATASYNC_SECRET_KEY_FILE", &self.key_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// `odatasync -vv sync ...` with `RUST_LOG=trace` (every log line of every crate).
    fn sync_command(&self) -> Command {
        let mut c = self.command(&[
            "-vv",
            "sync",
            "--service",
            SERVICE,
            "--database",
            &self.db_url,
            "--no-progress",
            "--entities",
            ENTITIES,
        ]);
        c.env("RUST_LOG", "trace");
        c
    }
}

fn output(mut c: Command) -> Out {
    let o = c.output().expect("run odatasync");
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Asserts that none of `secrets` (nor any token of the fake) occurs in `text`.
fn assert_none_in(text: &str, secrets: &[String], what: &str) {
    assert!(
        !text.contains(FAKE_TOKEN_PREFIX),
        "{what}: a token of the fake ({FAKE_TOKEN_PREFIX}...) in clear"
    );
    for s in secrets {
        assert!(s.len() >= 8, "a secret to look for: {s:?}");
        assert!(!text.contains(s.as_str()), "{what}: a secret in clear");
    }
}

fn assert_none_in_bytes(bytes: &[u8], secrets: &[String], what: &str) {
    let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        !find(FAKE_TOKEN_PREFIX.as_bytes()),
        "{what}: a token of the fake ({FAKE_TOKEN_PREFIX}...) in clear"
    );
    for s in secrets {
        assert!(!find(s.as_bytes()), "{what}: a secret in clear");
    }
}

/// Every encrypted value as stored: (table, row key, column, value), in a stable order.
async fn stored_values(db: &Db) -> Vec<(String, String, String, String)> {
    const T: &str = "SELECT \"service\" || '/' || \"client_id\", \"access_token\", \"refresh_token\" FROM \"odata_tokens\" ORDER BY 1";
    const S: &str =
        "SELECT \"service\" || '/' || \"name\", \"value\" FROM \"odata_secrets\" ORDER BY 1";
    type Rows = (Vec<(String, String, String)>, Vec<(String, String)>);
    let (tokens, secrets): Rows = match db {
        Db::Sqlite(p) => (
            sqlx::query_as(T).fetch_all(p).await.unwrap(),
            sqlx::query_as(S).fetch_all(p).await.unwrap(),
        ),
        Db::Postgres(p) => (
            sqlx::query_as(T).fetch_all(p).await.unwrap(),
            sqlx::query_as(S).fetch_all(p).await.unwrap(),
        ),
    };
    let mut out = Vec::new();
    for (k, a, r) in tokens {
        out.push(("odata_tokens".into(), k.clone(), "access_token".into(), a));
        out.push(("odata_tokens".into(), k, "refresh_token".into(), r));
    }
    for (k, v) in secrets {
        out.push(("odata_secrets".into(), k, "value".into(), v));
    }
    out
}

async fn exec(db: &Db, sql: &str) {
    let q = sqlx::AssertSqlSafe(sql.to_string());
    match db {
        Db::Sqlite(p) => sqlx::query(q).execute(p).await.map(|_| ()),
        Db::Postgres(p) => sqlx::query(q).execute(p).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn read_key(path: &Path) -> SecretKey {
    SecretKey::from_base64(&std::fs::read_to_string(path).expect("key file")).expect("a key")
}

/// The stored pair, decrypted with `key`.
async fn tokens(db: &Db, client_id: &str, key: &SecretKey) -> TokenSet {
    DbTokenStore::new(db.clone(), SERVICE, client_id, key.clone())
        .expect("store")
        .load()
        .await
        .expect("tokens decrypt")
        .expect("tokens stored")
}

/// What the database holds in its files: the SQLite file and its WAL (and shm), or the
/// `pg_dump` text.
fn database_bytes(s: &Setup, pg: Option<(&odata_test_support::PgServer, &str)>) -> Vec<u8> {
    match pg {
        Some((pg, name)) => pg.dump(name).expect("pg_dump").into_bytes(),
        None => {
            // Read by another process: closing a descriptor of the database file (or its
            // -shm) in this process would drop the POSIX locks this process's SQLite
            // connections hold on it, and the next process would reset the WAL under them
            // (https://www.sqlite.org/howtocorrupt.html, section 2.2).
            let file = s.sqlite_file().expect("a SQLite file");
            let mut bytes = Vec::new();
            for suffix in ["", "-wal", "-journal"] {
                let mut p = file.clone().into_os_string();
                p.push(suffix);
                let p = PathBuf::from(p);
                if suffix.is_empty() || p.exists() {
                    let o = Command::new("cat").arg(&p).output().expect("cat");
                    assert!(o.status.success(), "cat {}", p.display());
                    bytes.extend_from_slice(&o.stdout);
                }
            }
            bytes
        }
    }
}

fn scenario(backend: &str, pg: Option<(&odata_test_support::PgServer, String)>) {
    let rt = runtime();
    let (h, handed_over) = start_fake();
    let s = Setup::new(&h, &handed_over, pg.as_ref().map(|(_, url)| url.clone()));
    let pg_name = pg.as_ref().map(|(pg, url)| {
        let name = url.rsplit('/').next().unwrap().to_string();
        (*pg, name)
    });
    let pg_ref = pg_name.as_ref().map(|(pg, n)| (*pg, n.as_str()));
    let mut secrets = vec![
        handed_over.clone(),
        CLIENT_SECRET.to_string(),
        WEBHOOK_SECRET.to_string(),
    ];

    // 1. The first sync: client secret and refresh token from the environment.
    let first = output(s.sync_command());
    first.assert_code(0, "first sync");
    assert!(
        first.stderr.contains("TRACE") || first.stderr.contains("DEBUG"),
        "the run logged at trace level:\n{}",
        first.stderr
    );
    let db = rt.block_on(Db::connect(&s.open_url())).expect("open db");
    let key = read_key(&s.key_file);
    let pair = rt.block_on(tokens(&db, &s.client_id, &key));
    assert_ne!(
        pair.refresh_token.expose(),
        handed_over,
        "the token rotated"
    );
    assert!(pair.access_token.expose().starts_with(FAKE_TOKEN_PREFIX));
    secrets.push(pair.access_token.expose().to_string());
    secrets.push(pair.refresh_token.expose().to_string());
    assert_none_in(&first.text(), &secrets, "first sync output");
    // The client secret is stored encrypted.
    let stored = rt
        .block_on(load_secret(&db, &key, SERVICE, "client_secret"))
        .expect("decrypts")
        .expect("the client secret is stored");
    assert_eq!(stored.expose(), CLIENT_SECRET);
    // The webhook secret, stored as `odatasync webhooks` stores it.
    rt.block_on(save_secret(
        &db,
        &key,
        SERVICE,
        "webhook_secret",
        &Secret::new(WEBHOOK_SECRET),
    ))
    .expect("save webhook secret");

    // 2. A later sync without the client secret in the environment uses the stored one.
    let mut c = s.sync_command();
    c.env_remove("ODATASYNC_CLIENT_SECRET");
    let second = output(c);
    second.assert_code(0, "sync without ODATASYNC_CLIENT_SECRET");
    let pair2 = rt.block_on(tokens(&db, &s.client_id, &key));
    secrets.push(pair2.access_token.expose().to_string());
    secrets.push(pair2.refresh_token.expose().to_string());
    assert_none_in(&first.text(), &secrets, "first sync output");
    assert_none_in(&second.text(), &secrets, "second sync output");

    // 3. Nothing in clear in the database files / dump; the values are there, encrypted.
    let values = rt.block_on(stored_values(&db));
    assert_eq!(values.len(), 4, "{values:?}");
    assert!(values.iter().all(|v| v.3.starts_with("v1:")), "{values:?}");
    let bytes = database_bytes(&s, pg_ref);
    assert_none_in_bytes(&bytes, &secrets, &format!("{backend} database"));
    let find = |b: &[u8], n: &str| b.windows(n.len()).any(|w| w == n.as_bytes());
    assert!(
        find(&bytes, &values[0].3),
        "{backend}: the encrypted token is in the dump"
    );
    println!(
        "{backend}: {} bytes of database checked for {} secrets and the prefix {FAKE_TOKEN_PREFIX}",
        bytes.len(),
        secrets.len()
    );

    // 4. keys generate: a 0600 file; never overwritten.
    let new_key_file = s.dir.path().join("keys/new.key");
    let new_key_arg = new_key_file.display().to_string();
    let g = output(s.command(&["keys", "generate", "--out", &new_key_arg]));
    g.assert_code(0, "keys generate");
    let new_key = read_key(&new_key_file);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&new_key_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    }
    let again = output(s.command(&["keys", "generate", "--out", &new_key_arg]));
    again.assert_code(2, "keys generate over an existing file");
    assert!(again.stderr.contains("not overwritten"), "{}", again.stderr);
    assert_eq!(
        read_key(&new_key_file),
        new_key,
        "the key file is unchanged"
    );

    // 5. Rotation with a wrong current key: exit 2, nothing changed.
    let before = rt.block_on(stored_values(&db));
    let wrong = SecretKey::generate().unwrap();
    let mut c = s.command(&[
        "keys",
        "rotate",
        "--database",
        &s.db_url,
        "--new-key-file",
        &new_key_arg,
    ]);
    c.env("ODATASYNC_SECRET_KEY", wrong.to_base64());
    let bad = output(c);
    bad.assert_code(2, "rotate with a wrong current key");
    for needle in [
        "cannot be decrypted",
        "ODATASYNC_SECRET_KEY",
        "ODATASYNC_SECRET_KEY_FILE",
        "Nothing was changed",
    ] {
        assert!(bad.stderr.contains(needle), "{needle}: {}", bad.stderr);
    }
    assert!(!bad.text().contains("panicked"), "{}", bad.stderr);
    assert_none_in(&bad.text(), &secrets, "rotate with a wrong key");
    assert_eq!(rt.block_on(stored_values(&db)), before, "nothing changed");

    // 6. One value that does not decrypt (altered) aborts the whole rotation.
    rt.block_on(save_secret(
        &db,
        &wrong,
        "other",
        "api_token",
        &Secret::new("saved-with-another-key"),
    ))
    .unwrap();
    let before_altered = rt.block_on(stored_values(&db));
    assert_eq!(before_altered.len(), 5, "{before_altered:?}");
    let altered = output(s.command(&[
        "keys",
        "rotate",
        "--database",
        &s.db_url,
        "--new-key-file",
        &new_key_arg,
    ]));
    altered.assert_code(2, "rotate with one value saved with another key");
    assert!(
        altered.stderr.contains("odata_secrets other/api_token"),
        "names the value: {}",
        altered.stderr
    );
    assert_eq!(
        rt.block_on(stored_values(&db)),
        before_altered,
        "nothing changed"
    );
    rt.block_on(exec(
        &db,
        "DELETE FROM \"odata_secrets\" WHERE \"service\" = 'other'",
    ));

    // 7. The rotation: every value re-encrypted, in one transaction.
    let rot = output(s.command(&[
        "keys",
        "rotate",
        "--database",
        &s.db_url,
        "--new-key-file",
        &new_key_arg,
    ]));
    rot.assert_code(0, "keys rotate");
    assert!(
        rot.stdout.contains("re-encrypted 4 values"),
        "{}",
        rot.stdout
    );
    assert!(
        rot.stdout.contains("ODATASYNC_SECRET_KEY_FILE="),
        "tells what to set: {}",
        rot.stdout
    );
    assert_none_in(&rot.text(), &secrets, "rotate output");
    let after = rt.block_on(stored_values(&db));
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        assert_eq!((&a.0, &a.1, &a.2), (&b.0, &b.1, &b.2));
        assert_ne!(a.3, b.3, "{} {} {} re-encrypted", a.0, a.1, a.2);
    }
    let rotated_pair = rt.block_on(tokens(&db, &s.client_id, &new_key));
    assert_eq!(rotated_pair.refresh_token, pair2.refresh_token);
    assert_eq!(rotated_pair.access_token, pair2.access_token);
    for (name, value) in [
        ("client_secret", CLIENT_SECRET),
        ("webhook_secret", WEBHOOK_SECRET),
    ] {
        let v = rt
            .block_on(load_secret(&db, &new_key, SERVICE, name))
            .unwrap()
            .unwrap();
        assert_eq!(v.expose(), value, "{name} after rotation");
        let e = rt
            .block_on(load_secret(&db, &key, SERVICE, name))
            .expect_err("the old key no longer decrypts");
        assert!(e.to_string().contains("ODATASYNC_SECRET_KEY"), "{e}");
    }

    // 8. A sync with the old key: exit 2 naming the variables, no garbage, nothing written.
    for (what, env_key) in [
        ("old key file", None),
        ("wrong ODATASYNC_SECRET_KEY", Some(wrong.to_base64())),
    ] {
        let mut c = s.sync_command();
        if let Some(k) = &env_key {
            c.env("ODATASYNC_SECRET_KEY", k);
        }
        let old = output(c);
        old.assert_code(2, &format!("sync with the {what}"));
        for needle in [
            "cannot be decrypted",
            "ODATASYNC_SECRET_KEY",
            "ODATASYNC_SECRET_KEY_FILE",
        ] {
            assert!(
                old.stderr.contains(needle),
                "{what}: {needle}: {}",
                old.stderr
            );
        }
        assert!(!old.text().contains("panicked"), "{}", old.stderr);
        assert_none_in(&old.text(), &secrets, &format!("sync with the {what}"));
        assert_eq!(
            rt.block_on(stored_values(&db)),
            after,
            "{what}: nothing written"
        );
    }

    // 9. A sync with the new key (and no client secret in the environment) works.
    let mut c = s.sync_command();
    c.env_remove("ODATASYNC_CLIENT_SECRET")
        .env("ODATASYNC_SECRET_KEY_FILE", &new_key_file);
    let third = output(c);
    third.assert_code(0, "sync with the new key");
    let pair3 = rt.block_on(tokens(&db, &s.client_id, &new_key));
    secrets.push(pair3.access_token.expose().to_string());
    secrets.push(pair3.refresh_token.expose().to_string());
    assert_none_in(&third.text(), &secrets, "sync with the new key");
    rt.block_on(async {
        match &db {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    });
    let bytes = database_bytes(&s, pg_ref);
    assert_none_in_bytes(
        &bytes,
        &secrets,
        &format!("{backend} database after rotation"),
    );
    let stats = h.stats();
    assert!(
        stats.violations.is_empty(),
        "violations: {:?}",
        stats
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.kind, v.detail))
            .collect::<Vec<_>>()
    );
    println!(
        "{backend}: {} token grants by the fake; {} secrets never in clear",
        stats.token_grants.values().sum::<u64>(),
        secrets.len()
    );
}

#[test]
fn secrets_at_rest_sqlite() {
    scenario("sqlite", None);
}

#[test]
fn secrets_at_rest_postgres() {
    let pg = odata_test_support::PgServer::start().expect("PostgreSQL");
    let url = pg.create_database("secrets").expect("createdb");
    scenario("postgres", Some((&pg, url)));
}

/// Every event of every level and target, formatted, in a buffer.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The global subscriber of this test binary (set once): every thread, every callsite.
fn global_logs() -> LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let me = logs.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || me.clone())
            .finish();
        tracing::subscriber::set_global_default(sub).expect("the only global subscriber");
        logs
    })
    .clone()
}

/// The library (what the CLI runs) under a subscriber capturing everything: `connect`, a
/// sync with a refresh, wrong keys, the secret API. No token or secret in any log line or
/// error message.
#[test]
fn library_logs_have_no_tokens() {
    use odatasync::connect::{connect, divisions, ConnectOptions};
    use odatasync::run::{run_batch, RunOptions};
    use odatasync::service::Service;

    let logs = global_logs();
    let rt = runtime();
    let (h, handed_over) = start_fake();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("secret.key");
    let wrong_key_file = dir.path().join("wrong.key");
    let url = format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("lib.sqlite").display()
    );
    let client_id = h.config().client_id.clone();
    let mut secrets = vec![
        handed_over.clone(),
        CLIENT_SECRET.to_string(),
        WEBHOOK_SECRET.to_string(),
    ];
    let mut errors: Vec<String> = Vec::new();
    rt.block_on(async {
        let db = Db::connect(&url).await.unwrap();
        apply_migrations(&db).await.unwrap();
        let key = SecretKey::load_or_create(&key_file).unwrap();
        // The headless first login: the store seeded with the handed-over refresh token.
        let store = DbTokenStore::new(db.clone(), SERVICE, &client_id, key.clone()).unwrap();
        store
            .save(TokenSet {
                access_token: Secret::new(String::new()),
                refresh_token: Secret::new(handed_over.clone()),
                expires_at_ms: 0,
                obtained_at_ms: 0,
            })
            .await
            .unwrap();
        save_secret(
            &db,
            &key,
            SERVICE,
            "webhook_secret",
            &Secret::new(WEBHOOK_SECRET),
        )
        .await
        .unwrap();
        let service = Service::load(&metadata_cache(), SERVICE).unwrap();
        let opts = ConnectOptions {
            credentials: Some((client_id.clone(), Secret::new(CLIENT_SECRET))),
            base_url: Some(format!("{}/api/v1/{{division}}/", h.base_url())),
            token_url: Some(format!("{}/api/oauth2/token", h.base_url())),
            secret_key_file: Some(key_file.clone()),
            ..ConnectOptions::default()
        };
        let conn = connect(&service, &db, &opts).await.expect("connect");
        let divs = divisions(&service, &conn, None).await.expect("divisions");
        assert_eq!(divs, vec![Some(DIV)]);
        let names: Vec<String> = ENTITIES.split(',').map(String::from).collect();
        let planned = odatasync::plan::plan(&service, Some(&names)).unwrap();
        let report = run_batch(
            &conn.client,
            &db,
            &service,
            &planned,
            &divs,
            &RunOptions::default(),
        )
        .await
        .expect("sync");
        assert_eq!(report.exit_code(), 0, "{}", report.summary_table());
        let pair = store.load().await.unwrap().unwrap();
        secrets.push(pair.access_token.expose().to_string());
        secrets.push(pair.refresh_token.expose().to_string());

        // Wrong keys: errors, never tokens.
        SecretKey::load_or_create(&wrong_key_file).unwrap();
        let wrong_opts = ConnectOptions {
            secret_key_file: Some(wrong_key_file.clone()),
            ..opts.clone()
        };
        match connect(&service, &db, &wrong_opts).await {
            Ok(_) => panic!("connect with a wrong key succeeded"),
            Err(e) => {
                assert_eq!(e.exit_code(), 2, "{e}");
                errors.push(format!("{e} / {e:?}"));
            }
        }
        let wrong = SecretKey::load_or_create(&wrong_key_file).unwrap();
        let e = load_secret(&db, &wrong, SERVICE, "webhook_secret")
            .await
            .unwrap_err();
        errors.push(format!("{e} / {e:?}"));
        let wrong_store = DbTokenStore::new(db.clone(), SERVICE, &client_id, wrong).unwrap();
        let e = wrong_store.load().await.unwrap_err();
        errors.push(format!("{e} / {e:?}"));
        let e = odata_runtime::sync::tokens::rotate_secret_key(
            &db,
            &SecretKey::generate().unwrap(),
            &key,
        )
        .await
        .unwrap_err();
        errors.push(format!("{e} / {e:?}"));
        // A refresh token the fake refuses: the error names no token.
        let dead = DbTokenStore::new(db.clone(), SERVICE, "some-other-app", key.clone()).unwrap();
        dead.save(TokenSet {
            access_token: Secret::new("expired-access-SECRET-3f9a1c"),
            refresh_token: Secret::new("refused-refresh-SECRET-7b2e4d"),
            expires_at_ms: 0,
            obtained_at_ms: 0,
        })
        .await
        .unwrap();
        secrets.push("expired-access-SECRET-3f9a1c".into());
        secrets.push("refused-refresh-SECRET-7b2e4d".into());
        let other_opts = ConnectOptions {
            credentials: Some(("some-other-app".into(), Secret::new(CLIENT_SECRET))),
            ..opts.clone()
        };
        let other = connect(&service, &db, &other_opts).await.unwrap();
        match other.client.divisions().await {
            Ok(_) => panic!("a refused refresh token worked"),
            Err(e) => errors.push(format!("{e} / {e:?}")),
        }
    });
    let text = logs.text();
    for needle in ["access token refreshed", "TRACE hyper"] {
        assert!(
            text.contains(needle),
            "the subscriber captured {needle:?}:\n{}",
            &text[..text.len().min(4000)]
        );
    }
    assert!(errors.len() >= 5, "{errors:?}");
    for e in &errors {
        assert!(
            e.contains("ODATASYNC_SECRET_KEY") || !e.contains("decrypt"),
            "a wrong key names the variables: {e}"
        );
        assert_none_in(e, &secrets, "an error message");
    }
    assert_none_in(&text, &secrets, "the captured logs");
    println!(
        "{} log bytes and {} errors checked for {} secrets",
        text.len(),
        errors.len(),
        secrets.len()
    );
}
