//! `webhooks/WebhookSubscriptions` (exact-online.md §5): per division, one subscription per
//! (callback URL, topic) of this app. [`subscribe`] lists the existing ones first and creates
//! only what is missing (Exact answers a duplicate with 500 "Gegeven bestaat reeds", which is
//! taken as "exists" too); [`unsubscribe`] deletes the subscriptions with our callback URL.
//!
//! Listing goes through the runtime client (limits, retries, token refresh); it leaves a valid
//! access token in the store, which the POST and DELETE calls (the client only reads) then use.

use crate::connect::{Connection, ENV_BEARER_TOKEN, ENV_PASSWORD, ENV_USERNAME};
use crate::error::Error;
use futures_util::TryStreamExt;
use odata_runtime::client::TokenStore;

/// The endpoint below a division.
pub const ENDPOINT: &str = "webhooks/WebhookSubscriptions";

/// One subscription of this app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub callback: String,
    pub topic: String,
}

/// What happened to one (division, topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Created,
    Existed,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub division: Option<i32>,
    pub topic: String,
    pub change: Change,
}

/// The subscriptions of this app in `division`.
pub async fn list(conn: &Connection, division: Option<i32>) -> Result<Vec<Subscription>, Error> {
    let rows: Vec<serde_json::Value> = conn
        .client
        .raw_rows(division, ENDPOINT)
        .select(["ID", "CallbackURL", "Topic"])
        .stream()
        .try_collect()
        .await?;
    Ok(rows
        .iter()
        .map(|r| Subscription {
            id: r["ID"].as_str().unwrap_or_default().to_string(),
            callback: r["CallbackURL"].as_str().unwrap_or_default().to_string(),
            topic: r["Topic"].as_str().unwrap_or_default().to_string(),
        })
        .collect())
}

/// The `Authorization` header for a write (the client only reads).
async fn authorization(conn: &Connection) -> Result<Option<String>, Error> {
    if let Some(store) = &conn.store {
        let t = store
            .load()
            .await?
            .ok_or_else(|| Error::Usage("no tokens: run `odatasync auth` first".into()))?;
        return Ok(Some(format!("Bearer {}", t.access_token.expose())));
    }
    if let Ok(t) = std::env::var(ENV_BEARER_TOKEN) {
        return Ok(Some(format!("Bearer {t}")));
    }
    if let (Ok(u), Ok(p)) = (std::env::var(ENV_USERNAME), std::env::var(ENV_PASSWORD)) {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        return Ok(Some(format!("Basic {b}")));
    }
    Ok(None)
}

/// A write (POST / DELETE) below `division`; (status, body).
async fn write(
    conn: &Connection,
    method: reqwest::Method,
    division: Option<i32>,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<(u16, String), Error> {
    let url = conn.client.url(division, path)?;
    // Exact sends the validation handshake to the callback before it answers the POST.
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| Error::Other(format!("HTTP client: {e}")))?;
    let mut rb = http
        .request(method.clone(), url.clone())
        .header("Accept", "application/json");
    if let Some(a) = authorization(conn).await? {
        rb = rb.header("Authorization", a);
    }
    if let Some(b) = body {
        rb = rb
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| Error::Other(format!("{method} {url}: {e}")))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Ok((status, text))
}

/// The service's message in an error body (`error.message.value`), else the body.
fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"]["value"].as_str().map(String::from))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// Subscribes `callback` to every topic in every division; existing subscriptions are kept.
pub async fn subscribe(
    conn: &Connection,
    divisions: &[Option<i32>],
    topics: &[String],
    callback: &str,
) -> Result<Vec<Line>, Error> {
    let mut out = Vec::new();
    for &division in divisions {
        let existing = list(conn, division).await?;
        for topic in topics {
            let has = existing
                .iter()
                .any(|s| s.callback == callback && s.topic.eq_ignore_ascii_case(topic));
            if has {
                out.push(Line {
                    division,
                    topic: topic.clone(),
                    change: Change::Existed,
                });
                continue;
            }
            let body = serde_json::json!({
                "CallbackURL": callback,
                "Topic": topic,
                "Description": "odatasync",
            });
            let (status, text) =
                write(conn, reqwest::Method::POST, division, ENDPOINT, Some(body)).await?;
            let change = match status {
                200..=299 => Change::Created,
                // "Gegeven bestaat reeds." (Record already exists), §5.
                500 if text.contains("bestaat reeds") => Change::Existed,
                _ => {
                    return Err(Error::Other(format!(
                        "subscribing {topic} in division {}: HTTP {status}: {}",
                        division.map_or("-".into(), |d| d.to_string()),
                        message(&text)
                    )))
                }
            };
            out.push(Line {
                division,
                topic: topic.clone(),
                change,
            });
        }
    }
    Ok(out)
}

/// Deletes every subscription of `callback` in every division.
pub async fn unsubscribe(
    conn: &Connection,
    divisions: &[Option<i32>],
    callback: &str,
) -> Result<Vec<Line>, Error> {
    let mut out = Vec::new();
    for &division in divisions {
        for s in list(conn, division).await? {
            if s.callback != callback {
                continue;
            }
            if s.id.is_empty() || !s.id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                return Err(Error::Other(format!(
                    "subscription {:?} has no usable ID",
                    s.id
                )));
            }
            let path = format!("{ENDPOINT}(guid'{}')", s.id);
            let (status, text) =
                write(conn, reqwest::Method::DELETE, division, &path, None).await?;
            if !(200..300).contains(&status) && status != 404 {
                return Err(Error::Other(format!(
                    "deleting subscription {} ({}) in division {}: HTTP {status}: {}",
                    s.id,
                    s.topic,
                    division.map_or("-".into(), |d| d.to_string()),
                    message(&text)
                )));
            }
            out.push(Line {
                division,
                topic: s.topic,
                change: Change::Deleted,
            });
        }
    }
    Ok(out)
}
