//! The routes of `odatasync serve` and the JSON documents they answer with.

use super::store::{self, Batch, NewBatch};
use super::Shared;
use crate::error::Error;
use crate::plan;
use crate::service::Service;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;

/// Entries kept by the poll limiter before old ones are dropped.
const POLL_TABLE_PRUNE_AT: usize = 4096;
/// `GET /syncs`: default and largest page.
const LIST_DEFAULT: i64 = 50;
const LIST_MAX: i64 = 500;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/syncs", get(list_syncs).post(create_sync))
        .route("/syncs/{id}", get(get_sync))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ))
        .layer(DefaultBodyLimit::max(shared.opts.max_body_bytes))
        .with_state(shared)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `Authorization: Bearer <token>` on every route, else 401 (nothing else is looked at).
async fn require_token(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match presented {
        Some(t) if shared.token.matches(t) => next.run(req).await,
        _ => {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong API token (Authorization: Bearer $ODATASYNC_API_TOKEN)",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"odatasync\""),
            );
            r
        }
    }
}

/// The body of `POST /syncs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSync {
    service: String,
    entities: Option<Vec<String>>,
    division: Option<i32>,
    #[serde(default)]
    full_refresh: bool,
    callback_url: Option<String>,
}

/// A new batch id: time (sorts like creation) and 64 random bits.
fn new_batch_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        crate::connect::new_state()
    )
}

async fn create_sync(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<CreateSync>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        // A body that is JSON but not a request (axum: 422) is a bad request like any other;
        // 413 (too large) and 415 (not JSON) stay.
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            return error(StatusCode::BAD_REQUEST, e.body_text())
        }
        Err(e) => return error(e.status(), e.body_text()),
    };
    // The same checks as `odatasync sync`: the service folder and the plan.
    let service = match Service::load(&shared.cache, &req.service) {
        Ok(s) => s,
        Err(e) => return usage_or_500(e),
    };
    if let Some(names) = &req.entities {
        if names.is_empty() {
            return error(
                StatusCode::BAD_REQUEST,
                "entities: an empty list (leave it out for every configured entity)",
            );
        }
    }
    if let Err(e) = plan::plan(&service, req.entities.as_deref()) {
        return usage_or_500(e);
    }
    if let Some(u) = &req.callback_url {
        match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") => {}
            Ok(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("callback_url {u:?}: not an http(s) URL"),
                )
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("callback_url {u:?}: {e}")),
        }
    }
    let batch = NewBatch {
        id: new_batch_id(),
        service: service.name.clone(),
        entities: req.entities,
        division: req.division,
        full_refresh: req.full_refresh,
        callback_url: req.callback_url,
    };
    if let Err(e) = store::insert(&shared.db, &batch).await {
        return internal(e);
    }
    shared.wake.notify_one();
    let location = format!("/syncs/{}", batch.id);
    let mut r = (
        StatusCode::ACCEPTED,
        Json(json!({ "id": batch.id, "status": "queued", "location": location })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A usage or configuration error (unknown service or entity) is the client's: 400.
fn usage_or_500(e: Error) -> Response {
    match e {
        Error::Usage(m) | Error::Config(m) => error(StatusCode::BAD_REQUEST, m),
        other => internal(other),
    }
}

fn internal(e: Error) -> Response {
    tracing::error!("{e}");
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// The digest of the presented token (the poll limiter's key; the route ran past
/// [`require_token`], so it is there).
fn token_key(headers: &HeaderMap) -> [u8; 32] {
    let t = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    Sha256::digest(t.as_bytes()).into()
}

async fn get_sync(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    // At most one poll per (token, id) every `min_poll_interval` (seed 003: "at least a 200ms
    // pause between requests").
    let key = (token_key(&headers), id.clone());
    let now = Instant::now();
    let min = shared.opts.min_poll_interval;
    {
        let mut polls = shared.polls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(last) = polls.get(&key) {
            let since = now.duration_since(*last);
            if since < min {
                let wait = min - since;
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "poll a batch at most every {} ms (retry in {} ms), or pass a callback_url",
                        min.as_millis(),
                        wait.as_millis().max(1)
                    ),
                );
                // Retry-After counts whole seconds: round up.
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return r;
            }
        }
        if polls.len() >= POLL_TABLE_PRUNE_AT {
            polls.retain(|_, t| now.duration_since(*t) < min);
        }
        polls.insert(key, now);
    }
    match store::get(&shared.db, &id).await {
        Ok(Some(b)) => match batch_document(&shared.db, &b).await {
            Ok(doc) => Json(doc).into_response(),
            Err(e) => internal(e),
        },
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no batch {id:?}")),
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<i64>,
    offset: Option<i64>,
    service: Option<String>,
    status: Option<String>,
}

async fn list_syncs(
    State(shared): State<Arc<Shared>>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let limit = p.limit.unwrap_or(LIST_DEFAULT);
    let offset = p.offset.unwrap_or(0);
    if !(1..=LIST_MAX).contains(&limit) || offset < 0 {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1..={LIST_MAX}, offset >= 0"),
        );
    }
    match store::list(
        &shared.db,
        p.service.as_deref(),
        p.status.as_deref(),
        limit,
        offset,
    )
    .await
    {
        Ok(batches) => Json(json!({
            "syncs": batches.iter().map(batch_summary).collect::<Vec<_>>(),
            "limit": limit,
            "offset": offset,
        }))
        .into_response(),
        Err(e) => internal(e),
    }
}

/// A batch without its runs (`GET /syncs`).
fn batch_summary(b: &Batch) -> Value {
    json!({
        "id": b.id,
        "service": b.service,
        "status": b.status,
        "requested_entities": b.entity_names(),
        "division": b.division,
        "full_refresh": b.full_refresh,
        "message": b.message,
        "created_at": store::rfc3339(b.created_at.as_deref()),
        "started_at": store::rfc3339(b.started_at.as_deref()),
        "finished_at": store::rfc3339(b.finished_at.as_deref()),
        "callback": callback_doc(b),
    })
}

fn callback_doc(b: &Batch) -> Value {
    match &b.callback_url {
        Some(url) => json!({
            "url": url,
            "status": b.callback_status,
            "attempts": b.callback_attempts,
        }),
        None => Value::Null,
    }
}

/// The status document of a batch (`GET /syncs/{id}`, and the body of its callback): the
/// batch, and per (division, entity) its status, figures and errors.
pub(super) async fn batch_document(db: &odata_runtime::sql::Db, b: &Batch) -> Result<Value, Error> {
    let runs = store::runs(db, &b.id).await?;
    let entities: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({
                "entity": r.entity,
                // Services without divisions record division 0.
                "division": (r.division != 0).then_some(r.division),
                "status": r.status,
                "rows_inserted": r.rows_inserted,
                "rows_updated": r.rows_updated,
                "rows_deleted": r.rows_deleted,
                "api_calls": r.api_calls,
                "errors": r.errors,
                "message": r.message,
                "started_at": store::rfc3339(r.started_at.as_deref()),
                "finished_at": store::rfc3339(r.finished_at.as_deref()),
            })
        })
        .collect();
    let mut doc = batch_summary(b);
    doc["entities"] = Value::Array(entities);
    Ok(doc)
}
