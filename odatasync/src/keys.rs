//! `odatasync keys`: the AES-256 key that encrypts tokens and secrets at rest.
//!
//! * `keys generate --out PATH`: a fresh random key in a new file with mode 0600 (an existing
//!   file is never overwritten: it may be the only copy of a key that data is encrypted with);
//! * `keys rotate --database URL --new-key-file PATH | --new-key-env VAR`: every encrypted
//!   value of the database (`odata_tokens` access and refresh tokens, `odata_secrets` values)
//!   is decrypted with the current key (`$ODATASYNC_SECRET_KEY`, `$ODATASYNC_SECRET_KEY_FILE`
//!   or the default key file, see [`crate::connect::secret_key`]) and encrypted with the new
//!   one in one transaction ([`odata_runtime::sync::tokens::rotate_secret_key`]); a value the
//!   current key does not decrypt aborts it and nothing changes.

use crate::connect;
use crate::error::Error;
use odata_runtime::sql::Db;
use odata_runtime::sync::tokens::{rotate_secret_key, Rotated, SecretsError};
use odata_runtime::sync::SecretKey;
use std::path::{Path, PathBuf};

/// `odatasync keys ...`.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Write a fresh random key (base64 of 32 bytes) to a new file with mode 0600.
    Generate {
        /// The key file to create (refused when it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-encrypt every stored token and secret with a new key, in one transaction.
    Rotate {
        /// `sqlite:PATH`, a file path, or `postgres://...` (default: $ODATASYNC_DATABASE, else
        /// odatasync.sqlite).
        #[arg(long)]
        database: Option<String>,
        /// The file holding the new key (e.g. from `odatasync keys generate`).
        #[arg(
            long,
            conflicts_with = "new_key_env",
            required_unless_present = "new_key_env"
        )]
        new_key_file: Option<PathBuf>,
        /// The environment variable holding the new key (base64 of 32 bytes).
        #[arg(long)]
        new_key_env: Option<String>,
    },
}

/// Writes a new random key to `out` (mode 0600 on Unix; parent folders are created). Refuses
/// to overwrite: an existing file is a usage error.
pub fn generate(out: &Path) -> Result<String, Error> {
    let key = SecretKey::generate().map_err(|e| Error::Other(e.to_string()))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Other(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = match opts.open(out) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Usage(format!(
                "{} exists; not overwritten (it may be the only copy of a key your data is encrypted with). Choose another --out",
                out.display()
            )))
        }
        Err(e) => return Err(Error::Other(format!("cannot create {}: {e}", out.display()))),
    };
    use std::io::Write;
    f.write_all(format!("{}\n", key.to_base64()).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::Other(format!("cannot write {}: {e}", out.display())))?;
    Ok(format!(
        "wrote a new key to {} (mode 0600); use it with `odatasync keys rotate --new-key-file {}`, then set {}={}",
        out.display(),
        out.display(),
        odata_runtime::sync::tokens::SECRET_KEY_FILE_ENV,
        out.display()
    ))
}

/// Where the new key of a rotation comes from.
#[derive(Debug, Clone)]
pub enum NewKey {
    File(PathBuf),
    Env(String),
}

impl NewKey {
    pub fn from_args(file: Option<PathBuf>, env: Option<String>) -> Result<NewKey, Error> {
        match (file, env) {
            (Some(f), None) => Ok(NewKey::File(f)),
            (None, Some(v)) => Ok(NewKey::Env(v)),
            _ => Err(Error::Usage(
                "give the new key with exactly one of --new-key-file PATH and --new-key-env VAR"
                    .into(),
            )),
        }
    }

    /// Reads the key (never creates one: a rotation to a key nobody keeps would lose the data).
    pub fn read(&self) -> Result<SecretKey, Error> {
        match self {
            NewKey::File(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    Error::Usage(format!(
                        "new key file {}: cannot be read: {e} (create one with `odatasync keys generate --out {}`)",
                        p.display(),
                        p.display()
                    ))
                })?;
                SecretKey::from_base64(&text)
                    .map_err(|e| Error::Usage(format!("new key file {}: {e}", p.display())))
            }
            NewKey::Env(v) => {
                let text = std::env::var(v).map_err(|_| {
                    Error::Usage(format!("--new-key-env {v}: ${v} is not set (or not UTF-8)"))
                })?;
                SecretKey::from_base64(&text).map_err(|e| Error::Usage(format!("${v}: {e}")))
            }
        }
    }

    /// What to set so that processes use the new key.
    fn switch_advice(&self) -> String {
        match self {
            NewKey::File(p) => {
                let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
                format!(
                    "{}={} (and unset {})",
                    odata_runtime::sync::tokens::SECRET_KEY_FILE_ENV,
                    abs.display(),
                    odata_runtime::sync::tokens::SECRET_KEY_ENV
                )
            }
            NewKey::Env(v) => format!(
                "{} to the value of ${v}",
                odata_runtime::sync::tokens::SECRET_KEY_ENV
            ),
        }
    }
}

/// A wrong key (a value that does not decrypt) is a configuration error (exit 2) naming the
/// variables; the rest are failures.
pub fn secrets_error(e: SecretsError) -> Error {
    match e {
        SecretsError::WrongKey { .. } => Error::Usage(e.to_string()),
        SecretsError::Sql(e) => Error::from(e),
        other => Error::Other(other.to_string()),
    }
}

/// `keys rotate` on an open database: the current key from the environment (not created when
/// missing), the new key from `new`; one transaction. Returns the report to print.
pub async fn rotate(db: &Db, db_name: &str, new: &NewKey) -> Result<String, Error> {
    let (current, source) = connect::existing_secret_key()?;
    let new_key = new.read()?;
    if new_key == current {
        return Err(Error::Usage(format!(
            "the new key is the current key ({source}); generate another with `odatasync keys generate --out PATH`"
        )));
    }
    let rotated = rotate_secret_key(db, &current, &new_key)
        .await
        .map_err(|e| match e {
            SecretsError::WrongKey { .. } => Error::Usage(format!(
                "{e}. The current key comes from {source}. Nothing was changed"
            )),
            other => secrets_error(other),
        })?;
    Ok(render(&rotated, db_name, &source, &new.switch_advice()))
}

fn render(r: &Rotated, db: &str, source: &str, advice: &str) -> String {
    let mut s = format!(
        "re-encrypted {} values in {db} with the new key in one transaction ({} token rows: access and refresh tokens; {} secrets)\n",
        r.values(),
        r.token_rows,
        r.secrets
    );
    s.push_str(&format!(
        "the old key ({source}) no longer decrypts them: give every odatasync process the new key now: {advice}\n"
    ));
    s
}
