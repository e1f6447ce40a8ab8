//! The callback of a finished batch: its final status document is POSTed to `callback_url`,
//! retried with exponential backoff (and jitter) for a bounded number of attempts. Every attempt
//! is counted in `callback_attempts` before it is sent; the outcome is `callback_status`
//! `delivered` (a 2xx answer) or `failed` (attempts used up).

use super::store;
use super::Shared;
use crate::error::Error;
use backon::{ExponentialBuilder, Retryable};
use std::sync::Arc;
use std::time::Duration;

/// How long one attempt may take (connect, send, answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Delivers the callback of batch `id` (no-op without a callback URL or once it is no longer
/// `pending`). Attempts already made (before a restart) count against the bound.
pub async fn deliver(shared: Arc<Shared>, id: String) {
    if let Err(e) = try_deliver(&shared, &id).await {
        tracing::error!(batch = %id, "callback: {e}");
    }
}

async fn try_deliver(shared: &Shared, id: &str) -> Result<(), Error> {
    let Some(batch) = store::get(&shared.db, id).await? else {
        return Ok(());
    };
    let (Some(url), Some("pending")) =
        (batch.callback_url.clone(), batch.callback_status.as_deref())
    else {
        return Ok(());
    };
    let max = u64::from(shared.opts.callback_attempts.max(1));
    let made = u64::try_from(batch.callback_attempts).unwrap_or(0);
    if made >= max {
        store::set_callback_status(&shared.db, id, "failed").await?;
        return Ok(());
    }
    let body = super::api::batch_document(&shared.db, &batch).await?;
    let retries = usize::try_from(max - made - 1).unwrap_or(0);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(shared.opts.callback_min_delay)
        .with_max_delay(Duration::from_secs(300))
        .with_max_times(retries)
        .with_jitter();
    let attempt = || async {
        let n = store::count_callback_attempt(&shared.db, id)
            .await
            .map_err(|e| e.to_string())?;
        let r = shared
            .http
            .post(&url)
            .timeout(ATTEMPT_TIMEOUT)
            .header("content-type", "application/json")
            .header("x-odatasync-batch", id)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("attempt {n}: {e}"))?;
        if r.status().is_success() {
            Ok(n)
        } else {
            Err(format!("attempt {n}: HTTP {}", r.status()))
        }
    };
    let result = attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .notify(|e: &String, after: Duration| {
            tracing::warn!(batch = %id, "callback {e}; next attempt in {after:?}");
        })
        .await;
    match result {
        Ok(n) => {
            tracing::info!(batch = %id, "callback delivered (attempt {n})");
            store::set_callback_status(&shared.db, id, "delivered").await
        }
        Err(e) => {
            tracing::error!(batch = %id, "callback failed after the last attempt: {e}");
            store::set_callback_status(&shared.db, id, "failed").await
        }
    }
}
