//! Generic OData services on a small axum fixture over loopback: V4 relative
//! `@odata.nextLink`, V2 `__next` naming `localhost`, a next link leaving the service, an empty
//! last page, `$skip` paging, headers (`$select`, `Accept`, `IEEE754Compatible`), basic and
//! bearer auth, and what the errors say (HTML pages, truncated JSON, error bodies).
#![cfg(feature = "client")]

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use odata_runtime::client::{Auth, Client, ClientError, ClientOptions, Secret};
use odata_runtime::{Dialect, Entity, PropertyInfo};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Order {
    #[serde(rename = "OrderID")]
    id: i64,
}

impl Entity for Order {
    const TYPE_NAME: &'static str = "NorthwindModel.Order";
    const ENTITY_SET: &'static str = "Orders";
    const DIALECT: Dialect = Dialect::V4;
    const PROPERTIES: &'static [PropertyInfo] = &[];
    const KEY: &'static [&'static str] = &["OrderID"];
    const SELECT: &'static [&'static str] = &["OrderID"];
    type Key = i64;
    fn key(&self) -> i64 {
        self.id
    }
}

struct Fixture {
    addr: SocketAddr,
    calls: Arc<AtomicU64>,
}

fn query(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn rows(from: i64, to: i64) -> Vec<serde_json::Value> {
    (from..to).map(|i| json!({"OrderID": i})).collect()
}

async fn handle(addr: SocketAddr, calls: Arc<AtomicU64>, uri: Uri, headers: HeaderMap) -> Response {
    calls.fetch_add(1, Ordering::Relaxed);
    let q = query(&uri);
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let skiptoken: i64 = q
        .get("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let path = uri.path().to_string();
    let json_ok = |v: serde_json::Value| (StatusCode::OK, axum::Json(v)).into_response();
    match path.as_str() {
        // V4: relative next links; demands $select and IEEE754Compatible.
        "/v4/Orders" => {
            if q.get("$select").map(String::as_str) != Some("OrderID")
                || !accept.contains("application/json")
                || !accept.contains("IEEE754Compatible=true")
            {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": {"code": "", "message": format!("bad request: accept={accept} query={q:?}")}})),
                )
                    .into_response();
            }
            if skiptoken >= 20 {
                return json_ok(json!({"value": rows(20, 25)}));
            }
            json_ok(json!({
                "@odata.context": "$metadata#Orders",
                "value": rows(skiptoken, skiptoken + 10),
                "@odata.nextLink": format!("Orders?$select=OrderID&$skiptoken={}", skiptoken + 10),
            }))
        }
        // V2: absolute `__next` naming localhost where the client called 127.0.0.1.
        "/v2/Orders" => {
            let next = (skiptoken < 10).then(|| {
                format!(
                    "http://localhost:{}/v2/Orders?$select=OrderID&$skiptoken={}",
                    addr.port(),
                    skiptoken + 5
                )
            });
            let mut d = json!({"results": rows(skiptoken, skiptoken + 5)});
            if let Some(n) = next {
                d["__next"] = json!(n);
            }
            json_ok(json!({ "d": d }))
        }
        // A next link to another host.
        "/v4/Leaky" => json_ok(json!({
            "value": rows(0, 3),
            "@odata.nextLink": "http://evil.example/v4/Leaky?$skiptoken=3",
        })),
        // A next link to another path of the same host.
        "/v4/Escape" => json_ok(json!({
            "value": rows(0, 3),
            "@odata.nextLink": "/elsewhere/Leaky?$skiptoken=3",
        })),
        // An empty last page that still links onwards.
        "/v4/EmptyLast" => {
            if skiptoken == 0 {
                json_ok(json!({"value": rows(0, 4), "@odata.nextLink": "EmptyLast?$skiptoken=4"}))
            } else {
                json_ok(json!({"value": [], "@odata.nextLink": "EmptyLast?$skiptoken=99"}))
            }
        }
        // No links at all: `$top`/`$skip` only.
        "/v4/NoLinks" => {
            let top: i64 = q.get("$top").and_then(|s| s.parse().ok()).unwrap_or(1000);
            let skip: i64 = q.get("$skip").and_then(|s| s.parse().ok()).unwrap_or(0);
            let end = (skip + top).min(25);
            json_ok(json!({"value": rows(skip.min(25), end)}))
        }
        "/v4/Basic" => {
            if auth != "Basic dXNlcjpww6Rzcw==" {
                return (StatusCode::UNAUTHORIZED, "no").into_response();
            }
            json_ok(json!({"value": rows(0, 2)}))
        }
        "/v4/Bearer" => {
            if auth != "Bearer tok-123" {
                return (StatusCode::UNAUTHORIZED, "no").into_response();
            }
            json_ok(json!({"value": rows(0, 2)}))
        }
        "/v4/Html200" => (
            StatusCode::OK,
            [("content-type", "text/html")],
            "<html><head><title>Maintenance window</title></head><body>back soon</body></html>",
        )
            .into_response(),
        "/v4/Html500" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "<!DOCTYPE html><html><head><title>Internal Server Error</title></head></html>",
        )
            .into_response(),
        "/v4/Truncated" => (
            StatusCode::OK,
            [("content-type", "application/json")],
            r#"{"value":[{"OrderID":1},{"OrderID":2},{"Ord"#,
        )
            .into_response(),
        "/v4/Forbidden" => (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": {"code": "", "message": {"lang": "", "value": "Forbidden - Customer's license expired."}}})),
        )
            .into_response(),
        "/v4/Blocked" => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"error": {"code": "", "message": {"lang": "", "value": "API key blocked: more than 10 errors on this endpoint in one hour."}}})),
        )
            .into_response(),
        "/v4/Html404" => (
            StatusCode::NOT_FOUND,
            [("content-type", "text/html")],
            "<html><head><title>Not Found</title></head></html>",
        )
            .into_response(),
        "/v4/NotNumber/$count" => (StatusCode::OK, "many").into_response(),
        "/v4/Orders/$count" => (StatusCode::OK, "25").into_response(),
        _ => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

async fn fixture() -> Fixture {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let c = c.clone();
        async move { handle(addr, c, uri, headers).await }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Fixture { addr, calls }
}

fn quick() -> ClientOptions {
    ClientOptions {
        max_attempts: 3,
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..ClientOptions::default()
    }
}

fn client(f: &Fixture, root: &str, auth: Auth) -> Client {
    Client::builder(format!("http://{}/{root}/", f.addr))
        .auth(auth)
        .options(quick())
        .build()
        .unwrap()
}

#[tokio::test]
async fn v4_relative_next_links_select_and_ieee754() {
    let f = fixture().await;
    let c = client(&f, "v4", Auth::None);
    let ids: Vec<i64> = c
        .rows::<Order>(None)
        .stream()
        .map_ok(|o| o.id)
        .try_collect()
        .await
        .expect("orders");
    assert_eq!(ids, (0..25).collect::<Vec<_>>());
    assert_eq!(f.calls.load(Ordering::Relaxed), 3);
    assert_eq!(c.count(None, "Orders").await.unwrap(), 25);
}

#[tokio::test]
async fn v2_next_link_naming_localhost_is_followed() {
    let f = fixture().await;
    let c = client(&f, "v2", Auth::None);
    let rows: Vec<serde_json::Value> = c
        .raw_rows(None, "Orders")
        .select(["OrderID"])
        .stream()
        .try_collect()
        .await
        .expect("v2 orders");
    assert_eq!(rows.len(), 15);
    assert_eq!(f.calls.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn next_link_leaving_the_service_is_refused_after_the_page() {
    let f = fixture().await;
    for ep in ["Leaky", "Escape"] {
        let c = client(&f, "v4", Auth::None);
        let items: Vec<Result<serde_json::Value, ClientError>> =
            c.raw_rows(None, ep).stream().collect().await;
        assert_eq!(items.len(), 4, "{ep}: three rows, then the error");
        assert!(items[..3].iter().all(|r| r.is_ok()));
        let e = items[3].as_ref().unwrap_err();
        assert!(
            matches!(e, ClientError::NextLinkOutsideService { .. }),
            "{ep}: {e}"
        );
        assert!(e.to_string().contains("leaves the service"), "{e}");
    }
    assert_eq!(
        f.calls.load(Ordering::Relaxed),
        2,
        "the link is never called"
    );
}

#[tokio::test]
async fn empty_last_page_ends_and_skip_paging() {
    let f = fixture().await;
    let c = client(&f, "v4", Auth::None);
    let n = c.raw_rows(None, "EmptyLast").stream().count().await;
    assert_eq!(n, 4);
    assert_eq!(f.calls.load(Ordering::Relaxed), 2);
    let ids: Vec<i64> = c
        .raw_rows(None, "NoLinks")
        .skip_paging(10)
        .stream()
        .map_ok(|v| v["OrderID"].as_i64().unwrap())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids, (0..25).collect::<Vec<_>>());
    assert_eq!(f.calls.load(Ordering::Relaxed), 2 + 3);
}

#[tokio::test]
async fn basic_and_bearer_auth() {
    let f = fixture().await;
    let c = client(&f, "v4", Auth::Basic("user".into(), Secret::new("päss")));
    assert_eq!(c.raw_rows(None, "Basic").stream().count().await, 2);
    let c = client(&f, "v4", Auth::Bearer(Secret::new("tok-123")));
    let rows: Vec<serde_json::Value> = c
        .raw_rows(None, "Bearer")
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let c = client(&f, "v4", Auth::Bearer(Secret::new("wrong")));
    let e = c
        .raw_rows(None, "Bearer")
        .stream()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(!e.to_string().contains("wrong"), "{e}");
    assert!(!format!("{:?}", Secret::new("tok-123")).contains("tok-123"));
}

async fn first_error(c: &Client, ep: &str) -> ClientError {
    c.raw_rows(None, ep)
        .stream()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn error_messages_say_what_happened() {
    let f = fixture().await;
    let c = client(&f, "v4", Auth::None);

    let e = first_error(&c, "Html200").await;
    let s = e.to_string();
    assert!(
        s.contains("the service answered with an HTML page (status 200) where JSON was expected: Maintenance window"),
        "{s}"
    );
    assert!(s.contains("gave up after 3 attempts"), "retried: {s}");

    let s = first_error(&c, "Html500").await.to_string();
    assert!(
        s.contains("HTML page (status 500) where JSON was expected: Internal Server Error"),
        "{s}"
    );

    let e = first_error(&c, "Truncated").await;
    let s = e.to_string();
    assert!(s.contains("truncated") && s.contains("byte 43"), "{s}");

    let e = first_error(&c, "Forbidden").await;
    assert_eq!(e.status(), Some(403));
    assert!(!e.is_retryable());
    assert!(
        e.to_string()
            .contains("HTTP 403: Forbidden - Customer's license expired."),
        "{e}"
    );

    // A 429 that names no reset is not a rate limit (an error-budget block, §4.4): not
    // retried; a 4xx HTML page is an answer, not retried either.
    let before = f.calls.load(Ordering::Relaxed);
    let e = first_error(&c, "Blocked").await;
    assert_eq!(e.status(), Some(429));
    assert!(e.to_string().contains("API key blocked"), "{e}");
    let e = first_error(&c, "Html404").await;
    assert!(
        e.to_string()
            .contains("HTML page (status 404) where JSON was expected: Not Found"),
        "{e}"
    );
    assert_eq!(f.calls.load(Ordering::Relaxed), before + 2, "no retries");

    let e = c.count(None, "NotNumber").await.unwrap_err();
    assert!(
        e.to_string().contains("$count is not a number: \"many\""),
        "{e}"
    );

    // connection refused: a closed port
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let c2 = Client::builder(format!("http://{closed}/v4/"))
        .options(quick())
        .build()
        .unwrap();
    let e = first_error(&c2, "Orders").await;
    assert!(e.to_string().contains("connection error"), "{e}");
    assert!(e.is_retryable() || matches!(e, ClientError::RetriesExhausted { .. }));
}
