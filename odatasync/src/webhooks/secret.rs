//! The webhook secret at rest: `odata_secrets` (service, name `webhook_secret`), sealed the way
//! the token store seals tokens (runtime `sync::tokens`): `v1:` + base64(96-bit random nonce ‖
//! AES-256-GCM ciphertext and tag) with `odata_secrets/<service>/<name>` as associated data, so
//! a value copied to another row does not open. The key is the token store's
//! ([`crate::connect::secret_key`]: `ODATASYNC_SECRET_KEY` / `_FILE`), never in the database.

use crate::error::Error;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{SecondsFormat, Utc};
use odata_runtime::sql::{sqlx, Db};
use odata_runtime::sync::SecretKey;

/// The environment variable with the app's webhook secret (Exact's app center shows it).
pub const ENV_WEBHOOK_SECRET: &str = "ODATASYNC_WEBHOOK_SECRET";
/// Its name in `odata_secrets`.
pub const WEBHOOK_SECRET: &str = "webhook_secret";

const V1: &str = "v1:";
const NONCE_LEN: usize = 12;

fn cipher(key: &SecretKey) -> Result<Aes256Gcm, Error> {
    let raw = B64
        .decode(key.to_base64())
        .map_err(|e| Error::Other(format!("secret key: {e}")))?;
    let bytes: [u8; 32] = raw
        .try_into()
        .map_err(|_| Error::Other("secret key: not 32 bytes".into()))?;
    Ok(Aes256Gcm::new(&bytes.into()))
}

fn aad(service: &str, name: &str) -> Vec<u8> {
    format!("odata_secrets/{service}/{name}").into_bytes()
}

/// `v1:` + base64(nonce ‖ ciphertext).
pub fn seal(key: &SecretKey, service: &str, name: &str, plain: &str) -> Result<String, Error> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| Error::Other(format!("no random nonce: {e}")))?;
    let ct = cipher(key)?
        .encrypt(
            &nonce.into(),
            Payload {
                msg: plain.as_bytes(),
                aad: &aad(service, name),
            },
        )
        .map_err(|_| Error::Other("encryption failed".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(format!("{V1}{}", B64.encode(out)))
}

/// Opens a value written by [`seal`]; a wrong key or an altered or moved value is an error
/// that says so (never garbage).
pub fn open(key: &SecretKey, service: &str, name: &str, stored: &str) -> Result<String, Error> {
    let fail = || {
        Error::Usage(format!(
            "the stored {name} of service '{service}' does not decrypt with this key: \
             ODATASYNC_SECRET_KEY / ODATASYNC_SECRET_KEY_FILE is not the key it was stored with, \
             or the value was altered; set {ENV_WEBHOOK_SECRET} to store it again"
        ))
    };
    let raw = stored
        .strip_prefix(V1)
        .and_then(|b| B64.decode(b).ok())
        .filter(|r| r.len() >= NONCE_LEN + 16)
        .ok_or_else(fail)?;
    let (nonce, ct) = raw.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| fail())?;
    let plain = cipher(key)?
        .decrypt(
            &nonce.into(),
            Payload {
                msg: ct,
                aad: &aad(service, name),
            },
        )
        .map_err(|_| fail())?;
    String::from_utf8(plain).map_err(|_| fail())
}

/// Stores (replaces) a secret of `service`, sealed.
pub async fn store(
    db: &Db,
    key: &SecretKey,
    service: &str,
    name: &str,
    plain: &str,
) -> Result<(), Error> {
    let value = seal(key, service, name, plain)?;
    let now = Utc::now();
    const SQL: &str =
        "INSERT INTO \"odata_secrets\" (\"service\", \"name\", \"value\", \"updated_at\") VALUES ";
    const TAIL: &str = " ON CONFLICT (\"service\", \"name\") DO UPDATE SET \"value\" = excluded.\"value\", \"updated_at\" = excluded.\"updated_at\"";
    match db {
        Db::Sqlite(p) => {
            sqlx::query(sqlx::AssertSqlSafe(format!("{SQL}(?, ?, ?, ?){TAIL}")))
                .bind(service)
                .bind(name)
                .bind(value)
                .bind(now.to_rfc3339_opts(SecondsFormat::Micros, true))
                .execute(p)
                .await?;
        }
        Db::Postgres(p) => {
            sqlx::query(sqlx::AssertSqlSafe(format!("{SQL}($1, $2, $3, $4){TAIL}")))
                .bind(service)
                .bind(name)
                .bind(value)
                .bind(now)
                .execute(p)
                .await?;
        }
    }
    Ok(())
}

/// A stored secret of `service`, opened; `None` when there is none.
pub async fn load(
    db: &Db,
    key: &SecretKey,
    service: &str,
    name: &str,
) -> Result<Option<String>, Error> {
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
    stored.map(|s| open(key, service, name, &s)).transpose()
}

/// The webhook secret: `$ODATASYNC_WEBHOOK_SECRET` (then stored, sealed, for later runs),
/// else the stored one. Neither: a usage error saying what to set.
pub async fn webhook_secret(db: &Db, key: &SecretKey, service: &str) -> Result<String, Error> {
    if let Some(s) = std::env::var(ENV_WEBHOOK_SECRET)
        .ok()
        .filter(|s| !s.is_empty())
    {
        store(db, key, service, WEBHOOK_SECRET, &s).await?;
        return Ok(s);
    }
    load(db, key, service, WEBHOOK_SECRET).await?.ok_or_else(|| {
        Error::Usage(format!(
            "no webhook secret for service '{service}': set ${ENV_WEBHOOK_SECRET} (the app's webhook secret) once; it is stored encrypted in the database"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_bound_to_the_row() {
        let k = SecretKey::generate().unwrap();
        let s = seal(&k, "exact", WEBHOOK_SECRET, "hush").unwrap();
        assert!(s.starts_with("v1:") && !s.contains("hush"));
        assert_eq!(open(&k, "exact", WEBHOOK_SECRET, &s).unwrap(), "hush");
        assert!(open(&k, "other", WEBHOOK_SECRET, &s).is_err());
        let k2 = SecretKey::generate().unwrap();
        assert!(open(&k2, "exact", WEBHOOK_SECRET, &s).is_err());
        // A fresh nonce per value.
        assert_ne!(s, seal(&k, "exact", WEBHOOK_SECRET, "hush").unwrap());
    }
}
