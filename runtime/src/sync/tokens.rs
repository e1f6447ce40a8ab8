//! A [`TokenStore`] in the sync database: the Exact OAuth2 pair (exact-online.md §3) of one
//! app (`client_id`) per service, shared by every process that syncs into that database.
//!
//! * **Encrypted at rest.** The access and refresh tokens are stored as
//!   `v1:` + base64(96-bit nonce ‖ AES-256-GCM ciphertext and tag), a fresh random nonce per
//!   value, with `service/client_id/column` as associated data: a value copied into another
//!   row or column does not decrypt. The key is a [`SecretKey`] (32 bytes) from
//!   `ODATASYNC_SECRET_KEY` / `ODATASYNC_SECRET_KEY_FILE` ([`SecretKey::from_env`]) or a key
//!   file ([`SecretKey::load_or_create`]). A wrong key or an altered value is an error that
//!   says so; garbage is never returned as a token.
//! * **One refresher across processes.** Refresh tokens rotate and a reused one is refused
//!   for good (§3), so [`TokenStore::lock`] excludes other processes, not only other tasks:
//!   SQLite takes an exclusive file lock on `<database file>.token-lock` (an in-memory
//!   database has no other process: an in-process mutex); PostgreSQL takes
//!   `pg_advisory_lock` on a dedicated connection (not one of the pool's, which would go back
//!   to the pool still holding the lock). The [`RefreshLock`] owns the file or the connection,
//!   so dropping it releases the lock, also when the process dies (the kernel closes the file;
//!   the server ends the session).
//! * `save` is one autocommitted upsert, durable before the client uses the new pair (on SQLite
//!   with `synchronous = FULL` for that statement, so the commit survives a power loss too).

use super::SyncError;
use crate::client::{BoxFuture, RefreshLock, Secret, TokenSet, TokenStore, TokenStoreError};
use crate::sql::Db;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::Connection as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The environment variable holding the key (base64 of 32 bytes).
pub const SECRET_KEY_ENV: &str = "ODATASYNC_SECRET_KEY";
/// The environment variable naming a file that holds the key (base64 of 32 bytes).
pub const SECRET_KEY_FILE_ENV: &str = "ODATASYNC_SECRET_KEY_FILE";

/// Prefix of an encrypted value (the format version).
const V1: &str = "v1:";
const NONCE_LEN: usize = 12;

/// What went wrong reading or making a [`SecretKey`].
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    /// `ODATASYNC_SECRET_KEY` is set but is not base64 of 32 bytes.
    #[error(
        "{var}: {detail} (expected the base64 of 32 random bytes, e.g. `openssl rand -base64 32`)"
    )]
    Env { var: &'static str, detail: String },
    /// The key file cannot be read, written or does not hold a key.
    #[error("secret key file {}: {detail}", path.display())]
    File { path: PathBuf, detail: String },
    /// Text that is not base64 of 32 bytes.
    #[error("secret key: {0} (expected the base64 of 32 random bytes)")]
    Invalid(String),
    /// The operating system's random number generator failed.
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
}

/// The 32-byte AES-256 key that encrypts the stored tokens. `Debug` prints `SecretKey(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    /// A new random key (from the operating system).
    pub fn generate() -> Result<SecretKey, SecretKeyError> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| SecretKeyError::Random(e.to_string()))?;
        Ok(SecretKey(k))
    }

    /// The key from its base64 text (standard alphabet, padding optional; surrounding
    /// whitespace ignored).
    pub fn from_base64(text: &str) -> Result<SecretKey, SecretKeyError> {
        let t = text.trim();
        let bytes = B64
            .decode(t)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
            .map_err(|_| SecretKeyError::Invalid("not base64".into()))?;
        let n = bytes.len();
        let k: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SecretKeyError::Invalid(format!("{n} bytes, not 32")))?;
        Ok(SecretKey(k))
    }

    /// The key as base64 text (what the environment variable and the key file hold).
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// `ODATASYNC_SECRET_KEY` (base64 of 32 bytes), else the file named by
    /// `ODATASYNC_SECRET_KEY_FILE`, else `Ok(None)`. A variable that is set but wrong is an
    /// error naming it.
    pub fn from_env() -> Result<Option<SecretKey>, SecretKeyError> {
        if let Some(v) = std::env::var_os(SECRET_KEY_ENV) {
            let v = v.into_string().map_err(|_| SecretKeyError::Env {
                var: SECRET_KEY_ENV,
                detail: "not UTF-8".into(),
            })?;
            if !v.trim().is_empty() {
                return Self::from_base64(&v)
                    .map(Some)
                    .map_err(|e| SecretKeyError::Env {
                        var: SECRET_KEY_ENV,
                        detail: match e {
                            SecretKeyError::Invalid(d) => d,
                            other => other.to_string(),
                        },
                    });
            }
        }
        if let Some(p) = std::env::var_os(SECRET_KEY_FILE_ENV) {
            if !p.is_empty() {
                return Self::read_file(Path::new(&p)).map(Some);
            }
        }
        Ok(None)
    }

    fn read_file(path: &Path) -> Result<SecretKey, SecretKeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| SecretKeyError::File {
            path: path.to_path_buf(),
            detail: format!("cannot be read: {e}"),
        })?;
        Self::from_base64(&text).map_err(|e| SecretKeyError::File {
            path: path.to_path_buf(),
            detail: match e {
                SecretKeyError::Invalid(d) => {
                    format!("does not hold a key: {d} (expected the base64 of 32 random bytes)")
                }
                other => other.to_string(),
            },
        })
    }

    /// The key in `path`; when the file does not exist, a new random key is written there
    /// (mode 0600 on Unix) and returned. An unreadable file or one that does not hold the
    /// base64 of 32 bytes is an error naming the path.
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<SecretKey, SecretKeyError> {
        let path = path.as_ref();
        match std::fs::symlink_metadata(path) {
            Ok(_) => return Self::read_file(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(SecretKeyError::File {
                    path: path.to_path_buf(),
                    detail: format!("cannot be read: {e}"),
                })
            }
        }
        let key = Self::generate()?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file_err = |detail: String| SecretKeyError::File {
            path: path.to_path_buf(),
            detail,
        };
        match opts.open(path) {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(format!("{}\n", key.to_base64()).as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| file_err(format!("cannot be written: {e}")))?;
                Ok(key)
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::read_file(path),
            Err(e) => Err(file_err(format!("cannot be created: {e}"))),
        }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }
}

/// What a stored value is bound to (associated data): `service/client_id/column`.
fn aad(service: &str, client_id: &str, column: &str) -> Vec<u8> {
    format!("{service}/{client_id}/{column}").into_bytes()
}

/// Encrypts one token: `v1:` + base64(nonce ‖ ciphertext).
fn seal(cipher: &Aes256Gcm, aad: &[u8], plain: &str) -> Result<String, String> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| format!("no random nonce: {e}"))?;
    let ct = cipher
        .encrypt(
            &nonce.into(),
            Payload {
                msg: plain.as_bytes(),
                aad,
            },
        )
        .map_err(|_| "encryption failed".to_string())?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(format!("{V1}{}", B64.encode(out)))
}

/// Decrypts one value written by [`seal`]; `None` when it is not ours (wrong key, altered,
/// moved to another row or column, or not in the `v1:` format).
fn open(cipher: &Aes256Gcm, aad: &[u8], stored: &str) -> Option<String> {
    let raw = B64.decode(stored.strip_prefix(V1)?).ok()?;
    if raw.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, ct) = raw.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    let plain = cipher
        .decrypt(&nonce.into(), Payload { msg: ct, aad })
        .ok()?;
    String::from_utf8(plain).ok()
}

/// How the refresh lock is taken.
#[derive(Debug)]
enum Locking {
    /// An exclusive lock on this file (next to the SQLite database file).
    File(PathBuf),
    /// `pg_advisory_lock(key)` on a dedicated connection.
    Advisory(i64),
    /// An in-memory SQLite database: no other process can see it.
    InProcess,
}

/// A [`TokenStore`] in the `odata_tokens` / `odata_token_divisions` tables of the sync
/// database (see the module docs). Apply the migrations first
/// ([`apply_migrations`](super::apply_migrations)).
pub struct DbTokenStore {
    db: Db,
    service: String,
    client_id: String,
    cipher: Aes256Gcm,
    locking: Locking,
    /// Tasks of this process queue here before the cross-process lock (so that waiting
    /// tasks do not each hold a blocking thread or a connection).
    local: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for DbTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbTokenStore")
            .field("service", &self.service)
            .field("client_id", &self.client_id)
            .field("locking", &self.locking)
            .finish_non_exhaustive()
    }
}

/// A stable advisory-lock key of (service, client_id): 64-bit FNV-1a of both (with a prefix
/// and separators, so that other users of advisory locks are unlikely to collide).
fn advisory_key(service: &str, client_id: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in ["odata_tokens", service, client_id] {
        for b in part.bytes().chain(std::iter::once(0u8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h as i64
}

/// `<db file><suffix>` (`.token-lock`, `.migrate-lock`), or `None` for an in-memory database.
fn sqlite_lock_path(
    opts: &sqlx::sqlite::SqliteConnectOptions,
    suffix: &str,
) -> Result<Option<PathBuf>, String> {
    let file = opts.get_filename();
    let name = file.to_string_lossy();
    // sqlx names `sqlite::memory:` databases `file:sqlx-in-memory-N`; `?mode=memory` keeps
    // the name and is visible only in the options' Debug form (no getter).
    let in_memory = name.is_empty()
        || name == ":memory:"
        || name.starts_with("file:sqlx-in-memory-")
        || format!("{opts:?}").contains("in_memory: true");
    if in_memory {
        return Ok(None);
    }
    let abs = std::path::absolute(file)
        .map_err(|e| format!("the SQLite database path {}: {e}", file.display()))?;
    let mut lock = abs.into_os_string();
    lock.push(suffix);
    Ok(Some(PathBuf::from(lock)))
}

/// Blocks until this process holds the exclusive lock of `<db file>.migrate-lock` (`None` for
/// an in-memory database); released when the file is dropped. sqlx's migrator serialises
/// concurrent runs on PostgreSQL with an advisory lock but takes no lock on SQLite, so two
/// processes starting on a fresh file would both apply the first migration and one would fail
/// with "table … already exists".
pub(crate) async fn sqlite_migrate_lock(
    opts: &sqlx::sqlite::SqliteConnectOptions,
) -> Result<Option<std::fs::File>, String> {
    let Some(path) = sqlite_lock_path(opts, ".migrate-lock")? else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
        file.lock()
            .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
        Ok(Some(file))
    })
    .await
    .map_err(|e| format!("migration lock task: {e}"))?
}

fn utc_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn sql_err(what: &str, e: impl std::fmt::Display) -> TokenStoreError {
    TokenStoreError(format!("token store: {what}: {e}"))
}

impl DbTokenStore {
    /// The store of `service`'s tokens for the app `client_id` in `db`.
    pub fn new(
        db: Db,
        service: impl Into<String>,
        client_id: impl Into<String>,
        key: SecretKey,
    ) -> Result<DbTokenStore, TokenStoreError> {
        let service = service.into();
        let client_id = client_id.into();
        let locking = match &db {
            Db::Sqlite(p) => match sqlite_lock_path(&p.connect_options(), ".token-lock") {
                Ok(Some(path)) => Locking::File(path),
                Ok(None) => Locking::InProcess,
                Err(e) => return Err(TokenStoreError(format!("token store: {e}"))),
            },
            Db::Postgres(_) => Locking::Advisory(advisory_key(&service, &client_id)),
        };
        Ok(DbTokenStore {
            db,
            service,
            client_id,
            cipher: key.cipher(),
            locking,
            local: Arc::default(),
        })
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The lock file of a SQLite database (`None`: PostgreSQL or in-memory).
    pub fn lock_file(&self) -> Option<&Path> {
        match &self.locking {
            Locking::File(p) => Some(p),
            _ => None,
        }
    }

    fn undecryptable(&self) -> TokenStoreError {
        TokenStoreError(format!(
            "the stored tokens of service {} (client_id {}) cannot be decrypted with this key: \
             they were saved with another key or were altered. Set {SECRET_KEY_ENV} (or \
             {SECRET_KEY_FILE_ENV}) to the key they were saved with, or log in again to \
             replace them",
            self.service, self.client_id
        ))
    }

    async fn read(&self) -> Result<Option<TokenSet>, TokenStoreError> {
        type Row = (String, String, i64, i64);
        const LITE: &str = "SELECT \"access_token\", \"refresh_token\", \"expires_at_ms\", \"obtained_at_ms\" FROM \"odata_tokens\" WHERE \"service\" = ? AND \"client_id\" = ?";
        const PG: &str = "SELECT \"access_token\", \"refresh_token\", \"expires_at_ms\", \"obtained_at_ms\" FROM \"odata_tokens\" WHERE \"service\" = $1 AND \"client_id\" = $2";
        let row: Option<Row> = match &self.db {
            Db::Sqlite(p) => {
                sqlx::query_as(LITE)
                    .bind(&self.service)
                    .bind(&self.client_id)
                    .fetch_optional(p)
                    .await
            }
            Db::Postgres(p) => {
                sqlx::query_as(PG)
                    .bind(&self.service)
                    .bind(&self.client_id)
                    .fetch_optional(p)
                    .await
            }
        }
        .map_err(|e| sql_err("reading odata_tokens", e))?;
        let Some((access, refresh, expires_at_ms, obtained_at_ms)) = row else {
            return Ok(None);
        };
        let open_col = |col: &str, v: &str| {
            open(&self.cipher, &aad(&self.service, &self.client_id, col), v)
                .ok_or_else(|| self.undecryptable())
        };
        Ok(Some(TokenSet {
            access_token: Secret::new(open_col("access_token", &access)?),
            refresh_token: Secret::new(open_col("refresh_token", &refresh)?),
            expires_at_ms,
            obtained_at_ms,
        }))
    }

    async fn write(&self, t: &TokenSet) -> Result<(), TokenStoreError> {
        let seal_col = |col: &str, v: &Secret| {
            seal(
                &self.cipher,
                &aad(&self.service, &self.client_id, col),
                v.expose(),
            )
            .map_err(|e| TokenStoreError(format!("token store: {e}")))
        };
        let access = seal_col("access_token", &t.access_token)?;
        let refresh = seal_col("refresh_token", &t.refresh_token)?;
        const TAIL: &str = " ON CONFLICT (\"service\", \"client_id\") DO UPDATE SET \"access_token\" = excluded.\"access_token\", \"refresh_token\" = excluded.\"refresh_token\", \"expires_at_ms\" = excluded.\"expires_at_ms\", \"obtained_at_ms\" = excluded.\"obtained_at_ms\", \"updated_at\" = excluded.\"updated_at\"";
        const COLS: &str = "INSERT INTO \"odata_tokens\" (\"service\", \"client_id\", \"access_token\", \"refresh_token\", \"expires_at_ms\", \"obtained_at_ms\", \"updated_at\")";
        let now = Utc::now();
        match &self.db {
            Db::Sqlite(p) => {
                let sql = format!("{COLS} VALUES (?, ?, ?, ?, ?, ?, ?){TAIL}");
                async {
                    let mut conn = p.acquire().await?;
                    // The old refresh token is dead once the new pair is issued: this commit
                    // must survive a power loss too, so it is synced even where the pool runs
                    // WAL with `synchronous = NORMAL` (which may lose the last commits then).
                    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                        .fetch_one(&mut *conn)
                        .await?;
                    if sync < 2 {
                        sqlx::query("PRAGMA synchronous = FULL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(&self.service)
                        .bind(&self.client_id)
                        .bind(access)
                        .bind(refresh)
                        .bind(t.expires_at_ms)
                        .bind(t.obtained_at_ms)
                        .bind(utc_text(&now))
                        .execute(&mut *conn)
                        .await;
                    if sync < 2 {
                        let restore = format!("PRAGMA synchronous = {sync}");
                        sqlx::query(sqlx::AssertSqlSafe(restore))
                            .execute(&mut *conn)
                            .await?;
                    }
                    r.map(|_| ())
                }
                .await
            }
            Db::Postgres(p) => {
                let sql = format!("{COLS} VALUES ($1, $2, $3, $4, $5, $6, $7){TAIL}");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&self.service)
                    .bind(&self.client_id)
                    .bind(access)
                    .bind(refresh)
                    .bind(t.expires_at_ms)
                    .bind(t.obtained_at_ms)
                    .bind(now)
                    .execute(p)
                    .await
                    .map(|_| ())
            }
        }
        .map_err(|e| sql_err("writing odata_tokens", e))?;
        Ok(())
    }

    async fn take_lock(&self) -> Result<RefreshLock, TokenStoreError> {
        let local = self.local.clone().lock_owned().await;
        match &self.locking {
            Locking::InProcess => Ok(RefreshLock::new(local)),
            Locking::File(path) => {
                let path = path.clone();
                let file = tokio::task::spawn_blocking(move || lock_file(&path))
                    .await
                    .map_err(|e| TokenStoreError(format!("token store: lock task: {e}")))??;
                Ok(RefreshLock::new(FileLockGuard {
                    file: Some(file),
                    _local: local,
                }))
            }
            Locking::Advisory(key) => {
                let Db::Postgres(pool) = &self.db else {
                    unreachable!("advisory locks are only chosen for PostgreSQL")
                };
                let opts = pool.connect_options();
                let mut conn = sqlx::PgConnection::connect_with(&opts)
                    .await
                    .map_err(|e| sql_err("connecting for the refresh lock", e))?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(key)
                    .execute(&mut conn)
                    .await
                    .map_err(|e| sql_err("pg_advisory_lock", e))?;
                Ok(RefreshLock::new(AdvisoryLockGuard {
                    conn: Some(conn),
                    key: *key,
                    _local: local,
                }))
            }
        }
    }

    /// Replaces the divisions stored for this service and app (one transaction).
    pub async fn save_divisions(
        &self,
        divisions: &[(i32, Option<String>)],
    ) -> Result<(), SyncError> {
        let now = Utc::now();
        match &self.db {
            Db::Sqlite(p) => {
                let mut tx = p.begin().await?;
                sqlx::query("DELETE FROM \"odata_token_divisions\" WHERE \"service\" = ? AND \"client_id\" = ?")
                    .bind(&self.service)
                    .bind(&self.client_id)
                    .execute(&mut *tx)
                    .await?;
                for (d, name) in divisions {
                    sqlx::query("INSERT INTO \"odata_token_divisions\" (\"service\", \"client_id\", \"division\", \"name\", \"updated_at\") VALUES (?, ?, ?, ?, ?) ON CONFLICT (\"service\", \"client_id\", \"division\") DO UPDATE SET \"name\" = excluded.\"name\"")
                        .bind(&self.service)
                        .bind(&self.client_id)
                        .bind(i64::from(*d))
                        .bind(name)
                        .bind(utc_text(&now))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                sqlx::query("DELETE FROM \"odata_token_divisions\" WHERE \"service\" = $1 AND \"client_id\" = $2")
                    .bind(&self.service)
                    .bind(&self.client_id)
                    .execute(&mut *tx)
                    .await?;
                for (d, name) in divisions {
                    sqlx::query("INSERT INTO \"odata_token_divisions\" (\"service\", \"client_id\", \"division\", \"name\", \"updated_at\") VALUES ($1, $2, $3, $4, $5) ON CONFLICT (\"service\", \"client_id\", \"division\") DO UPDATE SET \"name\" = excluded.\"name\"")
                        .bind(&self.service)
                        .bind(&self.client_id)
                        .bind(i64::from(*d))
                        .bind(name)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// The stored divisions of this service and app, ascending.
    pub async fn divisions(&self) -> Result<Vec<i32>, SyncError> {
        let rows: Vec<i64> = match &self.db {
            Db::Sqlite(p) => sqlx::query_scalar("SELECT \"division\" FROM \"odata_token_divisions\" WHERE \"service\" = ? AND \"client_id\" = ? ORDER BY \"division\"")
                .bind(&self.service)
                .bind(&self.client_id)
                .fetch_all(p)
                .await?,
            Db::Postgres(p) => sqlx::query_scalar("SELECT \"division\" FROM \"odata_token_divisions\" WHERE \"service\" = $1 AND \"client_id\" = $2 ORDER BY \"division\"")
                .bind(&self.service)
                .bind(&self.client_id)
                .fetch_all(p)
                .await?,
        };
        rows.into_iter()
            .map(|d| {
                i32::try_from(d).map_err(|_| {
                    SyncError::Other(format!(
                        "odata_token_divisions: division {d} is not an Int32"
                    ))
                })
            })
            .collect()
    }

    /// `(expires_at_ms, obtained_at_ms)` of the stored pair, for status output; never the
    /// tokens (nothing is decrypted).
    pub async fn token_status(&self) -> Result<Option<(i64, i64)>, SyncError> {
        Ok(match &self.db {
            Db::Sqlite(p) => sqlx::query_as("SELECT \"expires_at_ms\", \"obtained_at_ms\" FROM \"odata_tokens\" WHERE \"service\" = ? AND \"client_id\" = ?")
                .bind(&self.service)
                .bind(&self.client_id)
                .fetch_optional(p)
                .await?,
            Db::Postgres(p) => sqlx::query_as("SELECT \"expires_at_ms\", \"obtained_at_ms\" FROM \"odata_tokens\" WHERE \"service\" = $1 AND \"client_id\" = $2")
                .bind(&self.service)
                .bind(&self.client_id)
                .fetch_optional(p)
                .await?,
        })
    }
}

/// Opens (creating) the lock file and blocks until this process holds its exclusive lock.
// `File::lock` (std, Rust 1.89: the workspace's rust-version).
fn lock_file(path: &Path) -> Result<std::fs::File, TokenStoreError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| {
            TokenStoreError(format!(
                "token store: cannot open the lock file {}: {e}",
                path.display()
            ))
        })?;
    file.lock().map_err(|e| {
        TokenStoreError(format!("token store: cannot lock {}: {e}", path.display()))
    })?;
    Ok(file)
}

/// Holds the lock file's exclusive lock (and this process's queue); released on drop.
struct FileLockGuard {
    file: Option<std::fs::File>,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for FileLockGuard {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            // Closing the file releases the lock too; unlocking first is explicit.
            let _ = f.unlock();
        }
    }
}

/// Holds `pg_advisory_lock(key)` on its own connection; released on drop.
struct AdvisoryLockGuard {
    conn: Option<sqlx::PgConnection>,
    key: i64,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for AdvisoryLockGuard {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let key = self.key;
        // Unlock and close on the runtime; without one (or if the task never runs) the
        // connection is dropped, which ends the session and so releases the lock.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(key)
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            });
        }
    }
}

impl TokenStore for DbTokenStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, TokenStoreError>> {
        Box::pin(self.read())
    }

    fn save(&self, tokens: TokenSet) -> BoxFuture<'_, Result<(), TokenStoreError>> {
        Box::pin(async move { self.write(&tokens).await })
    }

    fn lock(&self) -> BoxFuture<'_, Result<RefreshLock, TokenStoreError>> {
        Box::pin(self.take_lock())
    }
}

// ---------------------------------------------------------------------------------------------
// Other secrets (`odata_secrets`) and key rotation.

/// What went wrong storing, reading or re-encrypting secrets with a [`SecretKey`].
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Stored values that do not decrypt with the key given: saved with another key, or altered.
    /// Names where they are (table, service, client id or name, column), never a value.
    #[error(
        "{} cannot be decrypted with this key: saved with another key or altered. Set \
         {SECRET_KEY_ENV} (base64) or {SECRET_KEY_FILE_ENV} (a file holding it) to the key \
         they were saved with (after `odatasync keys rotate`: the new key)",
        describe_values(.values)
    )]
    WrongKey { values: Vec<String> },
    /// No random nonce, or the cipher refused.
    #[error("encrypting a secret: {0}")]
    Encrypt(String),
    #[error("secrets in the database: {0}")]
    Sql(#[from] sqlx::Error),
}

fn describe_values(v: &[String]) -> String {
    match v {
        [one] => format!("the stored value {one}"),
        _ if v.len() <= 6 => format!("{} stored values ({})", v.len(), v.join(", ")),
        _ => format!("{} stored values ({}, ...)", v.len(), v[..6].join(", ")),
    }
}

impl From<SecretsError> for SyncError {
    fn from(e: SecretsError) -> Self {
        match e {
            SecretsError::Sql(e) => SyncError::from(e),
            other => SyncError::Other(other.to_string()),
        }
    }
}

/// What an `odata_secrets` value is bound to (associated data): `odata_secrets/service/name`
/// (a value copied to another service or name, or into `odata_tokens`, does not decrypt).
fn secret_aad(service: &str, name: &str) -> Vec<u8> {
    format!("odata_secrets/{service}/{name}").into_bytes()
}

/// Stores `value` as `service`'s secret `name` in `odata_secrets` (one upsert), encrypted like
/// the tokens: `v1:` + base64(nonce ‖ AES-256-GCM ciphertext), a fresh nonce per value,
/// `odata_secrets/service/name` as associated data. For the app's client secret
/// (`client_secret`), the webhook secret (`webhook_secret`), ...
pub async fn save_secret(
    db: &Db,
    key: &SecretKey,
    service: &str,
    name: &str,
    value: &Secret,
) -> Result<(), SecretsError> {
    let sealed = seal(&key.cipher(), &secret_aad(service, name), value.expose())
        .map_err(SecretsError::Encrypt)?;
    const UPSERT: &str = " ON CONFLICT (\"service\", \"name\") DO UPDATE SET \"value\" = excluded.\"value\", \"updated_at\" = excluded.\"updated_at\"";
    let now = Utc::now();
    match db {
        Db::Sqlite(p) => {
            let sql = format!("INSERT INTO \"odata_secrets\" (\"service\", \"name\", \"value\", \"updated_at\") VALUES (?, ?, ?, ?){UPSERT}");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(service)
                .bind(name)
                .bind(sealed)
                .bind(utc_text(&now))
                .execute(p)
                .await?;
        }
        Db::Postgres(p) => {
            let sql = format!("INSERT INTO \"odata_secrets\" (\"service\", \"name\", \"value\", \"updated_at\") VALUES ($1, $2, $3, $4){UPSERT}");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(service)
                .bind(name)
                .bind(sealed)
                .bind(now)
                .execute(p)
                .await?;
        }
    }
    Ok(())
}

/// `service`'s secret `name` from `odata_secrets`, decrypted; `Ok(None)` when none is stored.
/// A value that does not decrypt with `key` is [`SecretsError::WrongKey`], never garbage.
pub async fn load_secret(
    db: &Db,
    key: &SecretKey,
    service: &str,
    name: &str,
) -> Result<Option<Secret>, SecretsError> {
    let stored: Option<String> =
        match db {
            Db::Sqlite(p) => sqlx::query_scalar(
                "SELECT \"value\" FROM \"odata_secrets\" WHERE \"service\" = ? AND \"name\" = ?",
            )
            .bind(service)
            .bind(name)
            .fetch_optional(p)
            .await?,
            Db::Postgres(p) => sqlx::query_scalar(
                "SELECT \"value\" FROM \"odata_secrets\" WHERE \"service\" = $1 AND \"name\" = $2",
            )
            .bind(service)
            .bind(name)
            .fetch_optional(p)
            .await?,
        };
    let Some(stored) = stored else {
        return Ok(None);
    };
    match open(&key.cipher(), &secret_aad(service, name), &stored) {
        Some(v) => Ok(Some(Secret::new(v))),
        None => Err(SecretsError::WrongKey {
            values: vec![format!("odata_secrets {service}/{name}")],
        }),
    }
}

/// One encrypted value in the database: where it is and what it is bound to.
struct SealedValue {
    /// `odata_tokens` or `odata_secrets`.
    table: &'static str,
    service: String,
    /// `client_id` (odata_tokens) or `name` (odata_secrets).
    id: String,
    /// `access_token` / `refresh_token` (odata_tokens) or `value` (odata_secrets).
    column: &'static str,
    stored: String,
}

impl SealedValue {
    fn aad(&self) -> Vec<u8> {
        match self.table {
            "odata_tokens" => aad(&self.service, &self.id, self.column),
            _ => secret_aad(&self.service, &self.id),
        }
    }
    fn describe(&self) -> String {
        match self.table {
            "odata_tokens" => format!("odata_tokens {}/{}/{}", self.service, self.id, self.column),
            _ => format!("odata_secrets {}/{}", self.service, self.id),
        }
    }
}

type TokenRow = (String, String, String, String);
type SecretRow = (String, String, String);

fn sealed_values(tokens: Vec<TokenRow>, secrets: Vec<SecretRow>) -> Vec<SealedValue> {
    let mut out = Vec::with_capacity(tokens.len() * 2 + secrets.len());
    for (service, client_id, access, refresh) in tokens {
        for (column, stored) in [("access_token", access), ("refresh_token", refresh)] {
            out.push(SealedValue {
                table: "odata_tokens",
                service: service.clone(),
                id: client_id.clone(),
                column,
                stored,
            });
        }
    }
    for (service, name, stored) in secrets {
        out.push(SealedValue {
            table: "odata_secrets",
            service,
            id: name,
            column: "value",
            stored,
        });
    }
    out
}

/// Decrypts every value with `current`; all that do not decrypt are named in one error.
fn open_all(values: &[SealedValue], current: &SecretKey) -> Result<Vec<String>, SecretsError> {
    let cipher = current.cipher();
    let mut plain = Vec::with_capacity(values.len());
    let mut failed = Vec::new();
    for v in values {
        match open(&cipher, &v.aad(), &v.stored) {
            Some(p) => plain.push(p),
            None => failed.push(v.describe()),
        }
    }
    if failed.is_empty() {
        Ok(plain)
    } else {
        Err(SecretsError::WrongKey { values: failed })
    }
}

/// Checks that every encrypted value of `service` (its tokens, of `client_id` only when given,
/// and its `odata_secrets`) decrypts with `key`; returns how many there are. Nothing is
/// returned decrypted. Use it before a run to fail early and clearly on a wrong key.
pub async fn check_secret_key(
    db: &Db,
    key: &SecretKey,
    service: &str,
    client_id: Option<&str>,
) -> Result<usize, SecretsError> {
    const T: &str = "SELECT \"service\", \"client_id\", \"access_token\", \"refresh_token\" FROM \"odata_tokens\"";
    const S: &str = "SELECT \"service\", \"name\", \"value\" FROM \"odata_secrets\"";
    let (tokens, secrets): (Vec<TokenRow>, Vec<SecretRow>) = match db {
        Db::Sqlite(p) => (
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{T} WHERE \"service\" = ? AND (? IS NULL OR \"client_id\" = ?)"
            )))
            .bind(service)
            .bind(client_id)
            .bind(client_id)
            .fetch_all(p)
            .await?,
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{S} WHERE \"service\" = ?")))
                .bind(service)
                .fetch_all(p)
                .await?,
        ),
        Db::Postgres(p) => (
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{T} WHERE \"service\" = $1 AND ($2::text IS NULL OR \"client_id\" = $2)"
            )))
            .bind(service)
            .bind(client_id)
            .fetch_all(p)
            .await?,
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{S} WHERE \"service\" = $1")))
                .bind(service)
                .fetch_all(p)
                .await?,
        ),
    };
    let values = sealed_values(tokens, secrets);
    open_all(&values, key).map(|p| p.len())
}

/// What [`rotate_secret_key`] re-encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotated {
    /// `odata_tokens` rows (two values each).
    pub token_rows: usize,
    /// `odata_secrets` values.
    pub secrets: usize,
}

impl Rotated {
    /// Every value re-encrypted.
    pub fn values(&self) -> usize {
        self.token_rows * 2 + self.secrets
    }
}

/// Key rotation: decrypts every encrypted value of the database (`odata_tokens` access and
/// refresh tokens of every service and app, every `odata_secrets` value) with `current` and
/// stores it encrypted with `new` (fresh nonces), in one transaction that also keeps other
/// writers out (SQLite `BEGIN IMMEDIATE`; PostgreSQL `LOCK TABLE … IN SHARE ROW EXCLUSIVE
/// MODE`, readers go on). A value that does not decrypt with `current` aborts it:
/// [`SecretsError::WrongKey`] naming every such value, and nothing is changed.
pub async fn rotate_secret_key(
    db: &Db,
    current: &SecretKey,
    new: &SecretKey,
) -> Result<Rotated, SecretsError> {
    const T: &str = "SELECT \"service\", \"client_id\", \"access_token\", \"refresh_token\" FROM \"odata_tokens\" ORDER BY \"service\", \"client_id\"";
    const S: &str =
        "SELECT \"service\", \"name\", \"value\" FROM \"odata_secrets\" ORDER BY \"service\", \"name\"";
    match db {
        Db::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            let tokens: Vec<TokenRow> = sqlx::query_as(T).fetch_all(&mut *tx).await?;
            let secrets: Vec<SecretRow> = sqlx::query_as(S).fetch_all(&mut *tx).await?;
            let (rotated, values, resealed) = reseal(tokens, secrets, current, new)?;
            for (v, sealed) in values.iter().zip(&resealed) {
                let sql = match v.table {
                    "odata_tokens" => format!("UPDATE \"odata_tokens\" SET \"{}\" = ? WHERE \"service\" = ? AND \"client_id\" = ?", v.column),
                    _ => "UPDATE \"odata_secrets\" SET \"value\" = ? WHERE \"service\" = ? AND \"name\" = ?".to_string(),
                };
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(sealed)
                    .bind(&v.service)
                    .bind(&v.id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(rotated)
        }
        Db::Postgres(p) => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "LOCK TABLE \"odata_tokens\", \"odata_secrets\" IN SHARE ROW EXCLUSIVE MODE",
            )
            .execute(&mut *tx)
            .await?;
            let tokens: Vec<TokenRow> = sqlx::query_as(T).fetch_all(&mut *tx).await?;
            let secrets: Vec<SecretRow> = sqlx::query_as(S).fetch_all(&mut *tx).await?;
            let (rotated, values, resealed) = reseal(tokens, secrets, current, new)?;
            for (v, sealed) in values.iter().zip(&resealed) {
                let sql = match v.table {
                    "odata_tokens" => format!("UPDATE \"odata_tokens\" SET \"{}\" = $1 WHERE \"service\" = $2 AND \"client_id\" = $3", v.column),
                    _ => "UPDATE \"odata_secrets\" SET \"value\" = $1 WHERE \"service\" = $2 AND \"name\" = $3".to_string(),
                };
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(sealed)
                    .bind(&v.service)
                    .bind(&v.id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(rotated)
        }
    }
}

/// The values of the rows read, each re-encrypted with `new` (or the error naming every value
/// `current` does not open).
fn reseal(
    tokens: Vec<TokenRow>,
    secrets: Vec<SecretRow>,
    current: &SecretKey,
    new: &SecretKey,
) -> Result<(Rotated, Vec<SealedValue>, Vec<String>), SecretsError> {
    let rotated = Rotated {
        token_rows: tokens.len(),
        secrets: secrets.len(),
    };
    let values = sealed_values(tokens, secrets);
    let plain = open_all(&values, current)?;
    let cipher = new.cipher();
    let resealed = values
        .iter()
        .zip(&plain)
        .map(|(v, p)| seal(&cipher, &v.aad(), p).map_err(SecretsError::Encrypt))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((rotated, values, resealed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_row_and_column() {
        let k = SecretKey::generate().unwrap();
        let c = k.cipher();
        let a = aad("exact", "app", "access_token");
        let s1 = seal(&c, &a, "tok").unwrap();
        let s2 = seal(&c, &a, "tok").unwrap();
        assert!(s1.starts_with("v1:"));
        assert_ne!(s1, s2, "a fresh nonce per value");
        assert_eq!(open(&c, &a, &s1).as_deref(), Some("tok"));
        assert_eq!(open(&c, &aad("exact", "app", "refresh_token"), &s1), None);
        assert_eq!(open(&c, &aad("exact", "other", "access_token"), &s1), None);
        let other = SecretKey::generate().unwrap().cipher();
        assert_eq!(open(&other, &a, &s1), None);
        assert_eq!(open(&c, &a, "tok"), None);
        assert_eq!(open(&c, &a, "v1:AAAA"), None);
    }

    #[test]
    fn key_text_and_debug() {
        let k = SecretKey::generate().unwrap();
        assert_eq!(SecretKey::from_base64(&k.to_base64()).unwrap(), k);
        assert_eq!(format!("{k:?}"), "SecretKey(***)");
        let e = SecretKey::from_base64("c2hvcnQ=").unwrap_err();
        assert!(e.to_string().contains("5 bytes, not 32"), "{e}");
        assert!(SecretKey::from_base64("not base64!").is_err());
    }

    #[test]
    fn advisory_key_is_stable() {
        // Every process and every version must agree on the key: pinned.
        assert_eq!(advisory_key("exact", "app"), 6431694662550426311);
        assert_ne!(advisory_key("exact", "app"), advisory_key("exac", "tapp"));
    }
}
