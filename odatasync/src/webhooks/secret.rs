//! The webhook secret at rest: `odata_secrets` (service, name `webhook_secret`), sealed by the
//! runtime's secret store ([`odata_runtime::sync::tokens::save_secret`] / `load_secret`: `v1:` +
//! base64(96-bit random nonce ‖ AES-256-GCM ciphertext and tag) with
//! `odata_secrets/<service>/<name>` as associated data, so a value copied to another row does
//! not open). The key is the token store's ([`crate::connect::secret_key`]:
//! `ODATASYNC_SECRET_KEY` / `_FILE`), never in the database.

use crate::error::Error;
use odata_runtime::client::Secret;
use odata_runtime::sql::Db;
use odata_runtime::sync::tokens::{load_secret, save_secret, SecretsError};
use odata_runtime::sync::{SecretKey, SyncError};

/// The environment variable with the app's webhook secret (Exact's app center shows it).
pub const ENV_WEBHOOK_SECRET: &str = "ODATASYNC_WEBHOOK_SECRET";
/// Its name in `odata_secrets`.
pub const WEBHOOK_SECRET: &str = "webhook_secret";

/// A wrong key or an altered value is a usage error (exit 2) that says what to set.
fn secrets_error(e: SecretsError) -> Error {
    match e {
        SecretsError::WrongKey { .. } => Error::Usage(format!(
            "{e}; or set {ENV_WEBHOOK_SECRET} to store the webhook secret again"
        )),
        other => Error::Sync(SyncError::from(other)),
    }
}

/// The webhook secret: `$ODATASYNC_WEBHOOK_SECRET` (then stored, sealed, for later runs),
/// else the stored one. Neither: a usage error saying what to set.
pub async fn webhook_secret(db: &Db, key: &SecretKey, service: &str) -> Result<String, Error> {
    if let Some(s) = std::env::var(ENV_WEBHOOK_SECRET)
        .ok()
        .filter(|s| !s.is_empty())
    {
        save_secret(db, key, service, WEBHOOK_SECRET, &Secret::new(s.clone()))
            .await
            .map_err(secrets_error)?;
        return Ok(s);
    }
    let stored = load_secret(db, key, service, WEBHOOK_SECRET)
        .await
        .map_err(secrets_error)?;
    stored.map(|s| s.expose().to_string()).ok_or_else(|| {
        Error::Usage(format!(
            "no webhook secret for service '{service}': set ${ENV_WEBHOOK_SECRET} (the app's webhook secret) once; it is stored encrypted in the database"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use odata_runtime::sql::sqlx;

    #[tokio::test]
    async fn sealed_round_trip_bound_to_the_row_and_the_key() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        odata_runtime::sync::apply_migrations(&db).await.unwrap();
        let k = SecretKey::generate().unwrap();
        save_secret(&db, &k, "exact", WEBHOOK_SECRET, &Secret::new("hush"))
            .await
            .unwrap();
        let Db::Sqlite(p) = &db else { unreachable!() };
        let stored: String = sqlx::query_scalar("SELECT \"value\" FROM \"odata_secrets\"")
            .fetch_one(p)
            .await
            .unwrap();
        assert!(stored.starts_with("v1:") && !stored.contains("hush"));
        let got = load_secret(&db, &k, "exact", WEBHOOK_SECRET).await.unwrap();
        assert_eq!(got.unwrap().expose(), "hush");
        assert!(load_secret(&db, &k, "other", WEBHOOK_SECRET)
            .await
            .unwrap()
            .is_none());
        let k2 = SecretKey::generate().unwrap();
        let e = load_secret(&db, &k2, "exact", WEBHOOK_SECRET)
            .await
            .unwrap_err();
        assert_eq!(secrets_error(e).exit_code(), 2);
        // A fresh nonce per value.
        save_secret(&db, &k, "exact", WEBHOOK_SECRET, &Secret::new("hush"))
            .await
            .unwrap();
        let again: String = sqlx::query_scalar("SELECT \"value\" FROM \"odata_secrets\"")
            .fetch_one(p)
            .await
            .unwrap();
        assert_ne!(stored, again);
    }
}
