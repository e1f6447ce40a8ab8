//! The receiver (`odatasync webhooks serve`): an axum server that takes Exact's deliveries on
//! any path (the callback URL is the operator's choice).
//!
//! * An empty POST (`content-length: 0`) is Exact's validation handshake after a subscription
//!   is created: 200 (§5).
//! * Bodies over [`MAX_BODY`] bytes: 413. A body that is not a delivery, or whose HashCode is
//!   not the HMAC of its Content with the webhook secret: 401, nothing recorded.
//! * A signed delivery is stored in `odata_webhook_events` and committed before the answer
//!   (200); a repeated delivery is the same row. Topics no config.json entity lists are stored
//!   as `ignored` and acknowledged (Exact would otherwise retry them).
//! * A background task ([`Applier`]) applies stored events in order; on start it applies what
//!   an earlier process stored but did not apply.

use super::apply::{Applier, MAX_ATTEMPTS};
use super::events::{self, NewEvent, IGNORED, RECEIVED};
use super::signature::{event_id, parse_content, verify};
use super::topics::Topics;
use crate::error::Error;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::Router;
use odata_runtime::sql::Db;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The largest body accepted (a delivery is well under 1 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// Test aid: the applier waits this many milliseconds before each pass (events stay
/// `received`, so a restart can be shown to apply them).
pub const ENV_APPLY_DELAY_MS: &str = "ODATASYNC_WEBHOOK_APPLY_DELAY_MS";

/// What the HTTP side needs.
pub struct Receiver {
    pub db: Db,
    pub service: String,
    pub topics: Arc<Topics>,
    pub secret: Vec<u8>,
    /// Wakes the applier after a new event was stored.
    pub wake: Arc<Notify>,
}

/// The axum router of a receiver (every path, POST only).
pub fn router(receiver: Arc<Receiver>) -> Router {
    Router::new()
        .fallback(receive)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(receiver)
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    if method != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
    }
    if body.is_empty() {
        // The validation handshake (an empty POST after a subscription is created).
        tracing::info!("webhook validation handshake answered");
        return (StatusCode::OK, "");
    }
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n != body.len()) {
        return (
            StatusCode::BAD_REQUEST,
            "body length differs from Content-Length\n",
        );
    }
    let content = match verify(&r.secret, &body) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("webhook delivery refused (401): {e}");
            return (StatusCode::UNAUTHORIZED, "bad or missing HashCode\n");
        }
    };
    let parsed = match parse_content(content) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("signed webhook delivery not understood (400): {e}");
            return (StatusCode::BAD_REQUEST, "Content not understood\n");
        }
    };
    let Ok(content_text) = std::str::from_utf8(content) else {
        return (StatusCode::BAD_REQUEST, "Content is not UTF-8\n");
    };
    let known = r.topics.get(&parsed.topic).is_some();
    let unknown_msg;
    let (status, message) = if known {
        (RECEIVED, None)
    } else {
        tracing::warn!(topic = %parsed.topic, "webhook event for a topic no config.json entity lists: acknowledged, ignored");
        unknown_msg = format!("topic {} is not in config.json webhookTopics", parsed.topic);
        (IGNORED, Some(unknown_msg.as_str()))
    };
    let id = event_id(content);
    let ev = NewEvent {
        id: &id,
        service: &r.service,
        topic: &parsed.topic,
        action: &parsed.action,
        division: parsed.division,
        entity_key: &parsed.key,
        endpoint: parsed.endpoint.as_deref(),
        content: content_text,
        status,
        message,
    };
    match events::insert(&r.db, &ev).await {
        Ok(true) => {
            tracing::info!(event = %id, topic = %parsed.topic, action = %parsed.action, key = %parsed.key, division = parsed.division, "webhook event stored");
            if known {
                r.wake.notify_one();
            }
            (StatusCode::OK, "")
        }
        Ok(false) => {
            tracing::info!(event = %id, "repeated webhook delivery: already stored");
            (StatusCode::OK, "")
        }
        Err(e) => {
            // Not stored: Exact may deliver it again.
            tracing::error!(event = %id, "storing a webhook event failed: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "not stored\n")
        }
    }
}

/// The applier's loop: everything pending at start, then every time the receiver stores an
/// event. Failed events (up to [`MAX_ATTEMPTS`] attempts) are tried again at start and once a
/// minute, not at every new event.
pub async fn apply_loop(applier: Applier, wake: Arc<Notify>, delay: Duration) {
    let mut retry_failed = true;
    loop {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let retry = if retry_failed { MAX_ATTEMPTS } else { 0 };
        match applier.apply_pending(retry).await {
            Ok(a) if a != Default::default() => tracing::info!(
                applied = a.applied,
                failed = a.failed,
                ignored = a.ignored,
                "webhook events applied"
            ),
            Ok(_) => {}
            Err(e) => {
                // The database is away: try again shortly.
                tracing::error!("applying webhook events: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        let woken = tokio::time::timeout(Duration::from_secs(60), wake.notified()).await;
        retry_failed = woken.is_err();
    }
}

/// Serves `receiver` on `listener` and applies events in the background until the process
/// ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    receiver: Receiver,
    applier: Applier,
    apply_delay: Duration,
) -> Result<(), Error> {
    let wake = receiver.wake.clone();
    let task = tokio::spawn(apply_loop(applier, wake, apply_delay));
    let r = axum::serve(listener, router(Arc::new(receiver)))
        .await
        .map_err(|e| Error::Other(format!("webhook receiver: {e}")));
    task.abort();
    r
}

/// `$ODATASYNC_WEBHOOK_APPLY_DELAY_MS` (0 when unset).
pub fn apply_delay_from_env() -> Duration {
    std::env::var(ENV_APPLY_DELAY_MS)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or_default()
}
