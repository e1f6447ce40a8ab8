//! The `/api/...` surface: OAuth2 (§3), data endpoints (§1, §2), limits (§4) and faults.

use super::catalog::{Entity, Kind};
use super::gen::{write_json_str, Gen, Val};
use super::limits::{Headers, RateOutcome};
use super::query::{parse_filter, Op};
use super::store::{row_val, Order, Scan};
use super::{auth::TokenResult, clock::utc_to_dutch_local_ms, App};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A response before it becomes an HTTP one.
pub(crate) struct Out {
    pub status: u16,
    pub ctype: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Out {
    pub fn new(status: u16, ctype: &'static str, body: impl Into<Vec<u8>>) -> Out {
        Out {
            status,
            ctype,
            body: body.into(),
            headers: Vec::new(),
        }
    }
    pub fn json(status: u16, v: &serde_json::Value) -> Out {
        Out::new(status, JSON, v.to_string())
    }
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Out {
        self.headers.push((k.to_string(), v.into()));
        self
    }
    fn into_response(self, cut: Option<Cut>) -> Response {
        let mut b = Response::builder()
            .status(StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header("content-type", self.ctype);
        for (k, v) in &self.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let body = match cut {
            None => Body::from(self.body),
            Some(Cut::Half) => {
                let half = self.body.len() / 2;
                Body::new(CutBody {
                    data: Some(Bytes::from(self.body[..half].to_vec())),
                })
            }
            Some(Cut::All) => Body::new(CutBody { data: None }),
        };
        b.body(body)
            .unwrap_or_else(|_| Response::new(Body::from("bad response")))
    }
}

enum Cut {
    Half,
    All,
}

/// A body that sends `data` (if any) and then fails, so the connection is closed mid-response.
struct CutBody {
    data: Option<Bytes>,
}

impl http_body::Body for CutBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        match self.data.take() {
            Some(d) if !d.is_empty() => Poll::Ready(Some(Ok(http_body::Frame::data(d)))),
            _ => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "fault injection: connection dropped",
            )))),
        }
    }
}

pub const JSON: &str = "application/json;charset=utf-8";
const HTML_PAGE: &str = "<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your request. Reference&#32;#18.a1b2c3d4</p></body></html>";

/// Exact's error body (§2.6).
pub fn exact_error(status: u16, msg: &str) -> Out {
    Out::json(
        status,
        &serde_json::json!({"error": {"code": "", "message": {"lang": "", "value": msg}}}),
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query component, keeping the characters OData URLs show literally.
pub fn encode_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~$,'():*/!".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = percent_decode(req.uri().path());
    let query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let lower = path.to_ascii_lowercase();
    if lower == "/api/oauth2/auth" {
        return authorize(&app, &query).into_response(None);
    }
    if lower == "/api/oauth2/token" {
        if method != Method::POST {
            return Out::json(405, &serde_json::json!({"error": "invalid_request"}))
                .into_response(None);
        }
        return token(&app, &body).into_response(None);
    }
    if let Some(rest) = path.strip_prefix("/_test/") {
        return super::control::handle(&app, &method, rest, &query, &body).into_response(None);
    }
    if lower.starts_with("/api/v1/") {
        return api_call(
            &app,
            &method,
            &path["/api/v1/".len()..],
            &query,
            &headers,
            &body,
        )
        .await;
    }
    exact_error(404, "Resource not found").into_response(None)
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// `GET /api/oauth2/auth` (§3): consent is implicit; redirects with a single-use code.
fn authorize(app: &App, query: &str) -> Out {
    let q = form(query.as_bytes());
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != app.cfg.client_id {
        return Out::new(400, "text/plain;charset=utf-8", "invalid client_id");
    }
    if get("response_type") != "code" {
        return Out::new(
            400,
            "text/plain;charset=utf-8",
            "unsupported response_type (only code)",
        );
    }
    let redirect = get("redirect_uri");
    if redirect.is_empty()
        || app
            .cfg
            .redirect_uri
            .as_deref()
            .is_some_and(|r| r != redirect)
    {
        return Out::new(
            400,
            "text/plain;charset=utf-8",
            "redirect_uri does not match the registered one",
        );
    }
    let now = app.cfg.clock.now_ms();
    let code = app.auth.lock().unwrap().issue_code(redirect, now);
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let mut loc = format!(
        "{redirect}{sep}code={}",
        encode_component(&code).replace('!', "%21")
    );
    if !get("state").is_empty() {
        loc.push_str(&format!("&state={}", encode_component(get("state"))));
    }
    Out::new(302, "text/html;charset=utf-8", "").header("location", loc)
}

const TOKEN_ENDPOINT: &str = "oauth2/token";

/// `POST /api/oauth2/token` (§3).
fn token(app: &App, body: &[u8]) -> Out {
    let rate = app.faults.lock().unwrap().empty_token_body;
    if rate > 0.0 {
        let n = app.fault_counter.fetch_add(1, Ordering::Relaxed);
        let r = (super::gen::mix4(app.cfg.seed, n, 0x70ce, 0) >> 11) as f64 / (1u64 << 53) as f64;
        if r < rate {
            *app.stats
                .lock()
                .unwrap()
                .faults
                .entry("empty_token_body".into())
                .or_default() += 1;
            return Out::new(200, JSON, "");
        }
    }
    let f = form(body);
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let client = get("client_id").to_string();
    let grant = get("grant_type").to_string();
    let now = app.cfg.clock.now_ms();
    let t = app.times();
    // §3, §4.4: token-endpoint errors (e.g. too-early refreshes) count towards the hourly
    // error limit of the app; the budget key is (client, division 0, "oauth2/token").
    let known = client == app.cfg.client_id;
    if known {
        let blocked = app
            .limits
            .lock()
            .unwrap()
            .blocked_until(&client, 0, TOKEN_ENDPOINT, now);
        if let Some(until) = blocked {
            app.violation(
                "call_while_blocked",
                &client,
                format!("POST {TOKEN_ENDPOINT} (blocked until {until})"),
            );
            return Out::json(
                app.cfg.block_status,
                &serde_json::json!({
                    "error": "access_denied",
                    "error_description": format!("API key blocked: more than {} errors in one hour. The block is lifted at {until} (epoch ms).", app.cfg.error_limit),
                }),
            );
        }
    }
    let result = if client != app.cfg.client_id || get("client_secret") != app.cfg.client_secret {
        TokenResult::Err {
            status: 400,
            error: "invalid_client",
            description: "Invalid client credentials.".into(),
            reason: None,
            violation: None,
        }
    } else {
        let mut auth = app.auth.lock().unwrap();
        match grant.as_str() {
            "authorization_code" => {
                let redirect = f.get("redirect_uri").map(String::as_str);
                auth.exchange_code(&client, get("code"), redirect, now, &t)
            }
            "refresh_token" => auth.refresh(&client, get("refresh_token"), now, &t),
            _ => TokenResult::Err {
                status: 400,
                error: "unsupported_grant_type",
                description: "The grant type is not supported.".into(),
                reason: None,
                violation: None,
            },
        }
    };
    match result {
        TokenResult::Ok {
            access,
            refresh,
            expires_in,
        } => {
            *app.stats
                .lock()
                .unwrap()
                .token_grants
                .entry(grant)
                .or_default() += 1;
            Out::json(
                200,
                &serde_json::json!({
                    "access_token": access,
                    "token_type": "bearer",
                    "expires_in": expires_in.to_string(),
                    "refresh_token": refresh,
                }),
            )
        }
        TokenResult::Err {
            status,
            error,
            description,
            reason,
            violation,
        } => {
            *app.stats.lock().unwrap().errors.entry(status).or_default() += 1;
            if known && matches!(status, 400 | 401 | 403 | 404) {
                app.limits.lock().unwrap().record_error(
                    &client,
                    0,
                    TOKEN_ENDPOINT,
                    now,
                    app.cfg.error_limit,
                    app.cfg.block_ms,
                );
            }
            if let Some(v) = violation {
                app.violation(v, &client, description.clone());
            }
            let mut out = Out::json(
                status,
                &serde_json::json!({"error": error, "error_description": description}),
            );
            if let Some(r) = reason {
                out = out.header("Reason", r);
            }
            out
        }
    }
}

/// What the URL addresses.
enum Target {
    Metadata(String),
    Collection(String),
    Count(String),
    Single(String, String),
}

fn target(segs: &[&str]) -> Option<(Target, Vec<String>)> {
    let (last, svc) = segs.split_last()?;
    let svc_v: Vec<String> = svc.iter().map(|s| s.to_string()).collect();
    let join = |v: &[String], x: &str| {
        let mut p = v.join("/");
        if !p.is_empty() {
            p.push('/');
        }
        p.push_str(x);
        p
    };
    if *last == "$metadata" {
        if svc.is_empty() {
            return None;
        }
        return Some((
            Target::Metadata(format!("{}.xml", svc.join(".").to_lowercase())),
            svc_v,
        ));
    }
    if *last == "$count" {
        let (set, svc2) = svc.split_last()?;
        let v: Vec<String> = svc2.iter().map(|s| s.to_string()).collect();
        return Some((Target::Count(join(&v, set)), v));
    }
    if let Some(open) = last.find('(') {
        if last.ends_with(')') {
            let set = &last[..open];
            let key = &last[open + 1..last.len() - 1];
            return Some((Target::Single(join(&svc_v, set), key.to_string()), svc_v));
        }
    }
    Some((Target::Collection(join(&svc_v, last)), svc_v))
}

/// The endpoint name used for statistics and the error budget: lower-cased path without key.
fn endpoint_name(t: &Target) -> String {
    match t {
        Target::Metadata(d) => {
            format!("{}/$metadata", d.trim_end_matches(".xml").replace('.', "/"))
        }
        Target::Collection(p) | Target::Count(p) | Target::Single(p, _) => p.to_lowercase(),
    }
}

async fn api_call(
    app: &Arc<App>,
    method: &Method,
    rest: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if app.cfg.latency_ms > 0 {
        tokio::time::sleep(app.cfg.clock.real_duration(app.cfg.latency_ms)).await;
    }
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let (division, res) = match segs.first().and_then(|s| s.parse::<i32>().ok()) {
        Some(d) => (Some(d), &segs[1..]),
        None => (None, &segs[..]),
    };
    let Some((tgt, svc)) = target(res) else {
        return exact_error(404, "Resource not found").into_response(None);
    };
    let endpoint = endpoint_name(&tgt);
    let now = app.cfg.clock.now_ms();

    // Authentication (§3).
    let client = if app.cfg.require_auth {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .unwrap_or("")
            .trim()
            .to_string();
        let found = app.auth.lock().unwrap().access.get(&bearer).cloned();
        match found {
            None => {
                *app.stats.lock().unwrap().errors.entry(401).or_default() += 1;
                return exact_error(401, "Unauthorized")
                    .header("WWW-Authenticate", "Bearer error=\"invalid_token\", error_description=\"invalid access token\"")
                    .into_response(None);
            }
            Some(a) if a.expires <= now => {
                app.violation(
                    "expired_access_token",
                    &a.client,
                    format!("{method} {endpoint}"),
                );
                let out = exact_error(401, "Unauthorized: access token expired").header(
                    "WWW-Authenticate",
                    "Bearer error=\"invalid_token\", error_description=\"access token expired\"",
                );
                return finish(
                    app,
                    &a.client,
                    division,
                    &endpoint,
                    now,
                    out,
                    Vec::new(),
                    None,
                );
            }
            Some(a) => a.client,
        }
    } else {
        app.cfg.client_id.clone()
    };

    // Error-budget block (§4.4) and rate limits (§4.1) apply to calls with a division.
    let mut rate_headers: Headers = Vec::new();
    if let Some(d) = division {
        let blocked = app
            .limits
            .lock()
            .unwrap()
            .blocked_until(&client, d, &endpoint, now);
        if let Some(until) = blocked {
            app.violation(
                "call_while_blocked",
                &client,
                format!("{method} {endpoint} (blocked until {until})"),
            );
            let out = exact_error(
                app.cfg.block_status,
                &format!("API key blocked: more than {} errors on this endpoint in one hour. The block is lifted at {until} (epoch ms).", app.cfg.error_limit),
            );
            app.stats.lock().unwrap().calls_total += 1;
            return out.into_response(None);
        }
        let outcome = app.limits.lock().unwrap().count(
            &client,
            d,
            now,
            app.cfg.minutely_limit,
            app.cfg.daily_limit,
        );
        match outcome {
            RateOutcome::Ok(h) => rate_headers = h,
            RateOutcome::Minutely(h, again) | RateOutcome::Daily(h, again) => {
                if again {
                    app.violation(
                        "call_while_rate_limited",
                        &client,
                        format!("{method} {endpoint}: called again before the rate-limit reset"),
                    );
                }
                {
                    let mut s = app.stats.lock().unwrap();
                    s.rate_limited += 1;
                    s.calls_total += 1;
                }
                let mut out = exact_error(429, "Too many requests: API rate limit exceeded.");
                for (k, v) in h {
                    out = out.header(k, v);
                }
                return out.into_response(None);
            }
        }
    }

    // Fault injection (§8).
    let faults = app.faults.lock().unwrap().clone();
    let n = app.fault_counter.fetch_add(1, Ordering::Relaxed);
    let r = (super::gen::mix4(app.cfg.seed, n, 0xfa17, 0) >> 11) as f64 / (1u64 << 53) as f64;
    let mut acc = 0.0;
    let mut pick = |rate: f64| {
        let hit = r >= acc && r < acc + rate;
        acc += rate;
        hit
    };
    let mut cut = None;
    let mut dup = false;
    let mut fault: Option<(&str, Out)> = None;
    if pick(faults.http_500) {
        fault = Some(("http_500", exact_error(500, "An error has occurred.")));
    } else if pick(faults.http_503) {
        fault = Some(("http_503", Out::new(503, "text/html", HTML_PAGE)));
    } else if pick(faults.http_408) {
        fault = Some((
            "http_408",
            Out::new(
                408,
                "text/html",
                "<html><body><h1>408 Request Timeout</h1></body></html>",
            ),
        ));
    } else if pick(faults.http_599) {
        fault = Some(("http_599", Out::new(599, "text/plain", "")));
    } else if pick(faults.http_401_expired) {
        fault = Some((
            "http_401_expired",
            exact_error(401, "Unauthorized: access token expired").header(
                "WWW-Authenticate",
                "Bearer error=\"invalid_token\", error_description=\"access token expired\"",
            ),
        ));
    } else if pick(faults.http_403_license) {
        fault = Some((
            "http_403_license",
            exact_error(403, "Forbidden - Customer's license expired."),
        ));
    } else if pick(faults.html_200) {
        fault = Some(("html_200", Out::new(200, "text/html", HTML_PAGE)));
    } else if pick(faults.html_500) {
        fault = Some(("html_500", Out::new(500, "text/html", HTML_PAGE)));
    } else if pick(faults.truncated) {
        cut = Some(Cut::Half);
    } else if pick(faults.drop_connection) {
        cut = Some(Cut::All);
    } else if pick(faults.duplicate_rows) {
        dup = true;
    } else if pick(faults.slow) {
        *app.stats
            .lock()
            .unwrap()
            .faults
            .entry("slow".into())
            .or_default() += 1;
        tokio::time::sleep(std::time::Duration::from_millis(faults.slow_ms)).await;
    }
    if let Some(c) = &cut {
        let kind = match c {
            Cut::Half => "truncated",
            Cut::All => "drop_connection",
        };
        *app.stats
            .lock()
            .unwrap()
            .faults
            .entry(kind.into())
            .or_default() += 1;
    }
    let out = if let Some((kind, out)) = fault {
        *app.stats
            .lock()
            .unwrap()
            .faults
            .entry(kind.into())
            .or_default() += 1;
        out
    } else if endpoint == "webhooks/webhooksubscriptions" && division.is_some() {
        let key = match &tgt {
            Target::Single(_, k) => Some(k.as_str()),
            _ => None,
        };
        super::webhooks::handle(app, &client, division.unwrap_or(0), method, key, body).await
    } else if method != Method::GET {
        exact_error(
            405,
            "Only GET is supported by this fake server on data endpoints",
        )
    } else {
        // §2.1: JSON needs `Accept: application/json` (or `$format=json`); Atom otherwise.
        let accept = headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let atom = !accept.contains("json") && !query.contains("$format=json");
        serve(app, division, &tgt, &svc, query, now, dup, atom)
    };
    finish(
        app,
        &client,
        division,
        &endpoint,
        now,
        out,
        rate_headers,
        cut,
    )
}

/// Records statistics and the error budget, adds the rate-limit headers.
#[allow(clippy::too_many_arguments)]
fn finish(
    app: &App,
    client: &str,
    division: Option<i32>,
    endpoint: &str,
    now: i64,
    mut out: Out,
    rate: Headers,
    cut: Option<Cut>,
) -> Response {
    {
        let mut s = app.stats.lock().unwrap();
        s.calls_total += 1;
        *s.calls
            .entry(format!(
                "{} {endpoint}",
                division.map_or("-".to_string(), |d| d.to_string())
            ))
            .or_default() += 1;
        if out.status >= 400 {
            *s.errors.entry(out.status).or_default() += 1;
        }
    }
    if let Some(d) = division {
        if matches!(out.status, 400 | 401 | 403 | 404) {
            app.limits.lock().unwrap().record_error(
                client,
                d,
                endpoint,
                now,
                app.cfg.error_limit,
                app.cfg.block_ms,
            );
        }
    }
    for (k, v) in rate {
        out = out.header(k, v);
    }
    out.into_response(cut)
}

/// Whether [`special`] gives any value for this entity (Divisions, Me); rows of the other
/// entities are plain generated rows, written by the direct JSON writer.
pub(crate) fn has_special(entity: &Entity) -> bool {
    matches!(entity.path.as_str(), "system/divisions" | "current/me")
}

/// Divisions are keyed by their code; Me and Divisions get realistic fixed values.
pub(crate) fn special<'a>(
    app: &'a App,
    entity: &'a Entity,
    now: i64,
) -> impl Fn(usize, u64) -> Option<Val> + 'a {
    move |pi: usize, i: u64| {
        let name = entity.props[pi].name.as_str();
        match entity.path.as_str() {
            "system/divisions" => {
                let code = *app.cfg.divisions.get(i as usize)?;
                match name {
                    "Code" => Some(Val::Int(i64::from(code))),
                    "Description" => Some(Val::Str(format!("Demo Bäckerei & Co {code}"))),
                    "Hid" | "HID" => Some(Val::Int64(i as i64 + 1)),
                    _ => None,
                }
            }
            "current/me" => {
                let first = i64::from(*app.cfg.divisions.first().unwrap_or(&0));
                match name {
                    "CurrentDivision" | "AccountingDivision" => Some(Val::Int(first)),
                    "FullName" => Some(Val::Str("Łukasz Nowak-Müller".into())),
                    "FirstName" => Some(Val::Str("Łukasz".into())),
                    "LastName" => Some(Val::Str("Nowak-Müller".into())),
                    "Email" | "UserName" => Some(Val::Str("lukasz@voorbeeld.nl".into())),
                    "LanguageCode" => Some(Val::Str("nl-NL".into())),
                    "Legislation" => Some(Val::Int64(1)),
                    "ServerTime" => {
                        let local = utc_to_dutch_local_ms(now);
                        let dt = chrono::DateTime::from_timestamp_millis(local)?;
                        Some(Val::Str(dt.format("%Y-%m-%dT%H:%M:%S").to_string()))
                    }
                    "ServerUtcOffset" => {
                        Some(Val::Dbl(((utc_to_dutch_local_ms(now) - now) / 1000) as f64))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

pub(crate) fn decode_key(app: &App, entity: &Entity, gen: &Gen, lit: &str) -> Option<u64> {
    if entity.path == "system/divisions" {
        let code: i32 = lit.trim().parse().ok()?;
        return app
            .cfg
            .divisions
            .iter()
            .position(|d| *d == code)
            .map(|p| p as u64);
    }
    gen.index_of_literal(lit)
}

struct RowCtx<'a> {
    app: &'a App,
    entity: &'a Entity,
    gen: Gen<'a>,
    /// `{base}/api/v1/{division}/{service as requested}/{Set}`.
    set_uri: String,
    sel: Vec<usize>,
    navs: bool,
    /// Precomputed JSON pieces of the fast path ([`RowCtx::write`]): `set_uri` escaped,
    /// `","type":"…"}` and `,"Name":` per selected property.
    set_uri_json: String,
    type_tail: String,
    heads: Vec<String>,
    /// Rows are plain generated rows (no values from [`special`]).
    plain: bool,
}

impl<'a> RowCtx<'a> {
    fn new(
        app: &'a App,
        entity: &'a Entity,
        gen: Gen<'a>,
        set_uri: String,
        sel: Vec<usize>,
        navs: bool,
    ) -> RowCtx<'a> {
        let mut set_uri_json = String::new();
        super::gen::push_escaped(&mut set_uri_json, &set_uri);
        let mut type_tail = String::from("\",\"type\":");
        write_json_str(&mut type_tail, &entity.type_name);
        type_tail.push('}');
        let heads = sel
            .iter()
            .map(|&pi| {
                let mut h = String::from(",");
                write_json_str(&mut h, &entity.props[pi].name);
                h.push(':');
                h
            })
            .collect();
        RowCtx {
            app,
            entity,
            gen,
            set_uri,
            sel,
            navs,
            set_uri_json,
            type_tail,
            heads,
            plain: !has_special(entity),
        }
    }

    /// One JSON row of a generated, unchanged row written straight into `out` (no `Val`s, no
    /// per-value allocations); the same text as [`RowCtx::write`]'s general path.
    fn write_plain(&self, out: &mut String, i: u64) {
        out.push_str("{\"__metadata\":{\"uri\":\"");
        let uri_start = out.len();
        out.push_str(&self.set_uri_json);
        if !self.entity.keys.is_empty() {
            out.push('(');
            self.gen.write_key_literal(i, out);
            out.push(')');
        }
        let uri_end = out.len();
        out.push_str(&self.type_tail);
        for (k, &pi) in self.sel.iter().enumerate() {
            out.push_str(&self.heads[k]);
            self.gen.write_json(pi, i, out);
        }
        if self.navs && !self.entity.nav_props.is_empty() {
            let uri = out[uri_start..uri_end].to_string();
            for n in &self.entity.nav_props {
                out.push_str(",\"");
                super::gen::push_escaped(out, n);
                out.push_str("\":{\"__deferred\":{\"uri\":\"");
                out.push_str(&uri);
                out.push('/');
                super::gen::push_escaped(out, n);
                out.push_str("\"}}");
            }
        }
        out.push('}');
    }
    fn uri(&self, i: u64) -> String {
        let key = if self.entity.path == "system/divisions" {
            self.app
                .cfg
                .divisions
                .get(i as usize)
                .map(|d| d.to_string())
                .unwrap_or_default()
        } else {
            self.gen.key_literal(i)
        };
        if self.entity.keys.is_empty() {
            self.set_uri.clone()
        } else {
            format!("{}({key})", self.set_uri)
        }
    }

    /// One `<entry>` of an Atom feed (§2.1).
    fn write_atom(
        &self,
        out: &mut String,
        i: u64,
        change: Option<&super::store::Change>,
        spec: &dyn Fn(usize, u64) -> Option<Val>,
        now: i64,
    ) {
        let uri = self.uri(i);
        let props: Vec<(&str, &str, Val)> = self
            .sel
            .iter()
            .map(|&pi| {
                let p = &self.entity.props[pi];
                (
                    p.name.as_str(),
                    p.edm.name(),
                    row_val(&self.gen, pi, i, change, spec),
                )
            })
            .collect();
        let navs: &[String] = if self.navs {
            &self.entity.nav_props
        } else {
            &[]
        };
        super::atom::entry(out, &uri, &self.entity.type_name, &props, navs, now);
    }

    fn write(
        &self,
        out: &mut String,
        i: u64,
        change: Option<&super::store::Change>,
        spec: &dyn Fn(usize, u64) -> Option<Val>,
    ) {
        if self.plain && change.is_none() {
            return self.write_plain(out, i);
        }
        let key = if self.entity.path == "system/divisions" {
            self.app
                .cfg
                .divisions
                .get(i as usize)
                .map(|d| d.to_string())
                .unwrap_or_default()
        } else {
            self.gen.key_literal(i)
        };
        let uri = if self.entity.keys.is_empty() {
            self.set_uri.clone()
        } else {
            format!("{}({key})", self.set_uri)
        };
        out.push_str("{\"__metadata\":{\"uri\":");
        write_json_str(out, &uri);
        out.push_str(",\"type\":");
        write_json_str(out, &self.entity.type_name);
        out.push('}');
        for &pi in &self.sel {
            out.push_str(",\"");
            out.push_str(&self.entity.props[pi].name);
            out.push_str("\":");
            row_val(&self.gen, pi, i, change, spec).write_json(out);
        }
        if self.navs {
            for n in &self.entity.nav_props {
                out.push_str(",\"");
                out.push_str(n);
                out.push_str("\":{\"__deferred\":{\"uri\":");
                write_json_str(out, &format!("{uri}/{n}"));
                out.push_str("}}");
            }
        }
        out.push('}');
    }
}

#[allow(clippy::too_many_arguments)]
fn serve(
    app: &App,
    division: Option<i32>,
    tgt: &Target,
    svc: &[String],
    query: &str,
    now: i64,
    dup: bool,
    atom: bool,
) -> Out {
    let (path, single, count) = match tgt {
        Target::Metadata(doc) => {
            return match app.catalog.documents.get(doc) {
                Some(x) => Out::new(200, "application/xml;charset=utf-8", x.clone()),
                None => exact_error(404, "Resource not found"),
            };
        }
        Target::Collection(p) => (p, None, false),
        Target::Count(p) => (p, None, true),
        Target::Single(p, k) => (p, Some(k.as_str()), false),
    };
    if path.eq_ignore_ascii_case("read/sync/Sync/SyncTimestamp") {
        return match division {
            Some(d) => sync_timestamp(app, d, query),
            None => exact_error(404, "Resource not found"),
        };
    }
    let Some(entity) = app.catalog.entity(path) else {
        return exact_error(404, "Resource not found");
    };
    let div = match (division, entity.path.as_str()) {
        (None, "current/me" | "system/users") => *app.cfg.divisions.first().unwrap_or(&0),
        (None, _) => {
            return exact_error(
                404,
                "Resource not found: this endpoint needs a division in the URL",
            )
        }
        (Some(d), "system/divisions") => d,
        (Some(d), _) if app.cfg.divisions.contains(&d) => d,
        (Some(_), _) => return exact_error(403, "Forbidden - WrongDivision"),
    };
    let q: Vec<(String, String)> = match serde_urlencoded::from_str(query) {
        Ok(q) => q,
        Err(_) => return exact_error(400, "The query string is malformed."),
    };
    let opt = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    for (k, _) in &q {
        if k.starts_with('$')
            && !matches!(
                k.as_str(),
                "$select"
                    | "$filter"
                    | "$top"
                    | "$skip"
                    | "$skiptoken"
                    | "$orderby"
                    | "$inlinecount"
                    | "$format"
                    | "$expand"
            )
        {
            return exact_error(400, &format!("The query parameter '{k}' is not supported."));
        }
    }
    let gen = app.gen(entity, div);
    let n = app.rows(entity);
    let spec = special(app, entity, now);

    // $select (§2.4)
    let select = opt("$select").map(str::trim).filter(|s| !s.is_empty());
    let top: Option<u64> = match opt("$top").map(|t| t.trim().parse::<u64>()) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return exact_error(400, "Invalid $top value."),
    };
    let mut sel: Vec<usize> = Vec::new();
    let mut navs = false;
    match select {
        None => {
            let needs = entity.kind != Kind::Regular
                || app
                    .cfg
                    .select_required
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(&entity.path));
            let top1_ok = entity.kind == Kind::Regular;
            if needs && !(top1_ok && top == Some(1)) && single.is_none() && !count {
                return exact_error(
                    400,
                    "Please add a $select or a $top=1 statement to the query string.",
                );
            }
            sel = (0..entity.props.len()).collect();
            navs = true;
        }
        Some(s) => {
            for f in s.split(',').map(str::trim) {
                if f == "*" {
                    sel = (0..entity.props.len()).collect();
                    navs = true;
                    continue;
                }
                let head = f.split('/').next().unwrap_or(f);
                if let Some(pi) = entity.prop(head) {
                    if !sel.contains(&pi) {
                        sel.push(pi);
                    }
                } else if entity.nav_props.iter().any(|n| n == head) {
                    // navigation paths ($expand) are served deferred
                } else {
                    return exact_error(
                        400,
                        &format!(
                            "Type '{}' does not have a property named '{}'",
                            entity.type_name, head
                        ),
                    );
                }
            }
        }
    }

    // $filter
    let cmps = match opt("$filter") {
        Some(f) if !f.trim().is_empty() => match parse_filter(f) {
            Ok(c) => c,
            Err(e) => return exact_error(400, &format!("Invalid $filter: {e}")),
        },
        _ => Vec::new(),
    };
    if cmps.is_empty() && single.is_none() {
        if let Some((_, fields)) = app
            .cfg
            .filter_required
            .iter()
            .find(|(p, _)| p.eq_ignore_ascii_case(&entity.path))
        {
            return exact_error(
                400,
                &format!("A GET request for this endpoint must have a $filter parameter with one of the following fields in the url:{fields}"),
            );
        }
    }
    let dk = |lit: &str| decode_key(app, entity, &gen, lit);
    let plan = match super::store::plan(entity, &gen, &cmps, Some(&dk)) {
        Ok(p) => p,
        Err(e) => return exact_error(400, &e),
    };

    let store = app.store.lock().unwrap();
    let table = App::table(entity);
    let overlay = store.overlay(&table, div);
    let scan = Scan {
        gen,
        n,
        overlay,
        plan: &plan,
        division: div,
    };
    let mut set_uri = format!("{}/api/v1/", app.base_url);
    if let Some(d) = division {
        set_uri.push_str(&format!("{d}/"));
    }
    for s in svc {
        set_uri.push_str(s);
        set_uri.push('/');
    }
    set_uri.push_str(&entity.set_name);
    let ctx = RowCtx::new(app, entity, gen, set_uri, sel, navs);

    if let Some(key) = single {
        let Some(i) = decode_key(app, entity, &gen, key) else {
            return exact_error(404, "Resource not found");
        };
        let exists = i < n + overlay.map_or(0, |o| o.inserted)
            && !overlay.is_some_and(|o| o.deleted.contains(&i));
        if !exists {
            return exact_error(404, "Resource not found");
        }
        let change = overlay.and_then(|o| o.changed.get(&i));
        if atom {
            let mut out = super::atom::entry_doc_start(&ctx.set_uri);
            ctx.write_atom(&mut out, i, change, &spec, now);
            return Out::new(200, super::atom::ATOM_ENTRY, out);
        }
        let mut out = String::from("{\"d\":");
        ctx.write(&mut out, i, change, &spec);
        out.push('}');
        return Out::new(200, JSON, out);
    }
    if count {
        return Out::new(200, "text/plain;charset=utf-8", scan.count().to_string());
    }

    // $skip (§2.3), $orderby, $skiptoken, $inlinecount
    let skip: u64 = match opt("$skip") {
        None => 0,
        Some(s) => {
            if entity.kind != Kind::Regular
                || app
                    .cfg
                    .skip_rejected
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(&entity.path))
            {
                return exact_error(400, "The $skip option is not supported for this endpoint; use $skiptoken (the __next link) instead.");
            }
            match s.trim().parse() {
                Ok(v) => v,
                Err(_) => return exact_error(400, "Invalid $skip value."),
            }
        }
    };
    let mut order = if entity.kind == Kind::Sync {
        Order::Change
    } else {
        Order::Key
    };
    if let Some(ob) = opt("$orderby").map(str::trim).filter(|s| !s.is_empty()) {
        let mut parts = ob.split_whitespace();
        let field = parts.next().unwrap_or("");
        let dir = parts.next().unwrap_or("asc");
        if dir != "asc" || parts.next().is_some() || ob.contains(',') {
            return exact_error(
                400,
                "Only a single ascending $orderby on the key, Modified or Timestamp is supported.",
            );
        }
        let is = |i: Option<usize>| i.is_some_and(|i| entity.props[i].name == field);
        if is(entity.modified) || is(entity.timestamp) {
            order = Order::Change;
        } else if entity.keys.len() == 1 && entity.props[entity.keys[0]].name == field {
            order = Order::Key;
        } else if entity.prop(field).is_some() {
            return exact_error(
                400,
                "Only a single ascending $orderby on the key, Modified or Timestamp is supported.",
            );
        } else {
            return exact_error(
                400,
                &format!(
                    "Type '{}' does not have a property named '{}'",
                    entity.type_name, field
                ),
            );
        }
    }
    // On sync endpoints in Timestamp order the skiptoken is the last row's Timestamp (`123L`;
    // Exact's format there is unconfirmed, §9): rows changed during a paging run then move
    // behind the cursor instead of making the run skip rows. Elsewhere it is the last key (§2.3).
    let ts_cursor =
        entity.kind == Kind::Sync && order == Order::Change && entity.timestamp.is_some();
    // In Modified order (not sync) it is `datetime'…',{key}` of the last row, for the same
    // reason (format unconfirmed).
    let mod_cursor =
        entity.kind != Kind::Sync && order == Order::Change && entity.modified.is_some();
    let mut after = None;
    let mut after_mod = None;
    let mut page_plan = plan.clone();
    if let Some(t) = opt("$skiptoken").map(str::trim) {
        let dated = t
            .strip_prefix("datetime'")
            .and_then(|r| r.split_once("',"))
            .and_then(|(d, k)| {
                Some((
                    super::query::parse_datetime(d)?,
                    decode_key(app, entity, &gen, k)?,
                ))
            });
        match (
            t.strip_suffix('L').and_then(|n| n.parse::<i64>().ok()),
            dated,
        ) {
            (Some(ts), _) if ts_cursor => page_plan.timestamp.push((Op::Gt, ts)),
            (_, Some(pos)) if mod_cursor => after_mod = Some(pos),
            _ => match decode_key(app, entity, &gen, t) {
                Some(i) => after = Some(i),
                None => return exact_error(400, "Invalid $skiptoken."),
            },
        }
    }
    let page_scan = Scan {
        gen,
        n,
        overlay,
        plan: &page_plan,
        division: div,
    };
    let inline = match opt("$inlinecount") {
        None | Some("none") => false,
        Some("allpages") => true,
        Some(_) => return exact_error(400, "Invalid $inlinecount value."),
    };
    let page = entity.page_size(app.cfg.page_size, app.cfg.bulk_page_size);
    let limit = top.map_or(page, |t| (t.min(page as u64)) as usize);
    let (rows, more) = if mod_cursor && after.is_none() {
        page_scan.page_by_modified(after_mod, skip, limit)
    } else {
        page_scan.page(order, after, skip, limit)
    };
    let more_top = top.is_none_or(|t| t > rows.len() as u64);
    let mut next_link = None;
    if more && more_top {
        if let Some(&last) = rows.last() {
            let lit = if entity.path == "system/divisions" {
                app.cfg.divisions[last as usize].to_string()
            } else if mod_cursor {
                let mi = entity.modified.unwrap_or(0);
                let change = overlay.and_then(|o| o.changed.get(&last));
                let m = row_val(&gen, mi, last, change, &spec).as_i64().unwrap_or(0);
                let dt = chrono::DateTime::from_timestamp_millis(m)
                    .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
                    .unwrap_or_default();
                format!("datetime'{dt}',{}", gen.key_literal(last))
            } else if ts_cursor {
                let ti = entity.timestamp.unwrap_or(0);
                let change = overlay.and_then(|o| o.changed.get(&last));
                let ts = row_val(&gen, ti, last, change, &spec).as_i64().unwrap_or(0);
                format!("{ts}L")
            } else {
                gen.key_literal(last)
            };
            let mut next = ctx.set_uri.clone();
            let mut sep = '?';
            for (k, v) in &q {
                if k == "$skiptoken" || k == "$skip" || k == "$top" {
                    continue;
                }
                next.push(sep);
                sep = '&';
                next.push_str(&encode_component(k));
                next.push('=');
                next.push_str(&encode_component(v));
            }
            if let Some(t) = top {
                next.push_str(&format!("{sep}$top={}", t - rows.len() as u64));
                sep = '&';
            }
            next.push_str(&format!("{sep}$skiptoken={}", encode_component(&lit)));
            next_link = Some(next);
        }
    }
    let mut rows = rows;
    let duplicated = dup && entity.kind == Kind::Sync && !rows.is_empty();
    if duplicated {
        rows.push(rows[rows.len() / 2]);
    }
    let total = inline.then(|| scan.count());
    let out = if atom {
        let mut out = super::atom::feed_start(&ctx.set_uri, &entity.set_name, now);
        if let Some(c) = total {
            out.push_str(&format!("<m:count>{c}</m:count>"));
        }
        for &i in &rows {
            let change = overlay.and_then(|o| o.changed.get(&i));
            ctx.write_atom(&mut out, i, change, &spec, now);
        }
        if let Some(n) = &next_link {
            out.push_str("<link rel=\"next\" href=\"");
            out.push_str(&super::atom::escape(n));
            out.push_str("\" />");
        }
        out.push_str("</feed>");
        Out::new(200, super::atom::ATOM, out)
    } else {
        let mut out = String::with_capacity(rows.len() * 512 + 64);
        out.push_str("{\"d\":{\"results\":[");
        for (k, &i) in rows.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            let change = overlay.and_then(|o| o.changed.get(&i));
            ctx.write(&mut out, i, change, &spec);
            if k == 0 {
                // size the buffer from the first row (avoids reallocations of a 5 MB page)
                out.reserve((out.len() + 1) * (rows.len() - 1) * 9 / 8);
            }
        }
        out.push(']');
        if let Some(c) = total {
            out.push_str(&format!(",\"__count\":\"{c}\""));
        }
        if let Some(n) = &next_link {
            out.push_str(",\"__next\":");
            write_json_str(&mut out, n);
        }
        out.push_str("}}");
        Out::new(200, JSON, out)
    };
    drop(store);
    if duplicated {
        *app.stats
            .lock()
            .unwrap()
            .faults
            .entry("duplicate_rows".into())
            .or_default() += 1;
    }
    out
}

/// `GET read/sync/Sync/SyncTimestamp?modified=datetime'…'&endPoint='TransactionLines'`
/// (§1.2): a Timestamp to start a sync from, so that `Timestamp gt {it}L` returns the rows of
/// the entity modified at or after `modified` (Dutch local time).
fn sync_timestamp(app: &App, division: i32, query: &str) -> Out {
    let q: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.trim().to_string())
    };
    let Some(modified) = get("modified").and_then(|m| {
        let inner = m.strip_prefix("datetime'")?.strip_suffix('\'')?.to_string();
        super::query::parse_datetime(&inner)
    }) else {
        return exact_error(
            400,
            "The parameter 'modified' must be a datetime'yyyy-mm-ddThh:mm:ss' literal.",
        );
    };
    let ep = get("endPoint").unwrap_or_default();
    let ep = ep.trim_matches('\'');
    let Some(entity) = app.catalog.entities.values().find(|e| {
        e.kind == Kind::Sync && e.timestamp.is_some() && e.set_name.eq_ignore_ascii_case(ep)
    }) else {
        return exact_error(400, &format!("Unknown endPoint '{ep}'."));
    };
    if !app.cfg.divisions.contains(&division) {
        return exact_error(403, "Forbidden - WrongDivision");
    }
    let n = app.rows(entity);
    let store = app.store.lock().unwrap();
    let overlay = store.overlay(&App::table(entity), division);
    let first = {
        let (mut a, mut b) = (0u64, n);
        while a < b {
            let m = a + (b - a) / 2;
            if super::gen::modified_local_ms(m) >= modified {
                b = m;
            } else {
                a = m + 1;
            }
        }
        a
    };
    let mut candidates: Vec<i64> = Vec::new();
    if first < n {
        candidates.push(super::gen::generated_timestamp(first) - 1);
    }
    let mut max_ts = if n > 0 {
        super::gen::generated_timestamp(n - 1)
    } else {
        0
    };
    if let Some(o) = overlay {
        for c in o.changed.values() {
            max_ts = max_ts.max(c.timestamp);
            if c.modified >= modified {
                candidates.push(c.timestamp - 1);
            }
        }
    }
    let ts = candidates.into_iter().min().unwrap_or(max_ts);
    let mut out = String::from("{\"d\":{\"results\":[{\"__metadata\":{\"uri\":");
    write_json_str(
        &mut out,
        &format!(
            "{}/api/v1/{division}/read/sync/Sync/SyncTimestamp",
            app.base_url
        ),
    );
    out.push_str(",\"type\":\"Exact.Web.Api.Models.Sync.SyncTimestamp\"},\"API\":");
    write_json_str(&mut out, &entity.set_name);
    out.push_str(&format!(
        ",\"Modified\":\"/Date({modified})/\",\"TimeStampAsBigInt\":\"{ts}\"}}]}}}}"
    ));
    Out::new(200, JSON, out)
}
