//! Rate limits and the error budget (§4), over real HTTP.

mod server_common;

use fake_exact::{Clock, Config};
use server_common::{start, Api, DIV};
use std::time::Duration;

/// 2026-11-23T10:00:00Z: tests start at a minute boundary so 60 calls stay in one window.
const T0: i64 = 1_795_428_000_000;

fn cfg() -> Config {
    Config {
        clock: Clock::starting_at(T0, 1.0),
        ..Config::default()
    }
}

fn header(r: &reqwest::blocking::Response, k: &str) -> Option<String> {
    r.headers().get(k).map(|v| v.to_str().unwrap().to_string())
}

/// §4.1–4.3: 60 calls per (client, division) per clock minute; the six `X-RateLimit-*`
/// headers (resets in epoch ms: next minute boundary, next 00:00 UTC) on every response; the
/// 61st call → 429 carrying only the minutely headers; the next minute allows calls again.
#[test]
fn the_61st_call_in_a_minute_is_429_with_minutely_headers_only() {
    let api = start(cfg());
    for i in 1..=60u32 {
        let r = api.get("crm/Accounts?$select=ID");
        assert_eq!(r.status().as_u16(), 200, "call {i}");
        assert_eq!(header(&r, "x-ratelimit-minutely-limit").unwrap(), "60");
        assert_eq!(
            header(&r, "x-ratelimit-minutely-remaining").unwrap(),
            (60 - i).to_string()
        );
        assert_eq!(
            header(&r, "x-ratelimit-minutely-reset").unwrap(),
            (T0 + 60_000).to_string()
        );
        assert_eq!(header(&r, "x-ratelimit-limit").unwrap(), "5000");
        assert_eq!(
            header(&r, "x-ratelimit-remaining").unwrap(),
            (5000 - i).to_string()
        );
        assert_eq!(
            header(&r, "x-ratelimit-reset").unwrap(),
            "1795478400000",
            "next 00:00 UTC"
        );
    }
    let r = api.get("crm/Accounts?$select=ID");
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(header(&r, "x-ratelimit-minutely-remaining").unwrap(), "0");
    assert_eq!(
        header(&r, "x-ratelimit-minutely-reset").unwrap(),
        (T0 + 60_000).to_string()
    );
    assert!(
        header(&r, "x-ratelimit-limit").is_none(),
        "daily headers omitted on a minutely 429"
    );
    assert!(header(&r, "x-ratelimit-remaining").is_none());
    assert!(
        api.h.stats().violations.is_empty(),
        "one 429 is not a violation"
    );
    assert_eq!(api.get("crm/Accounts?$select=ID").status().as_u16(), 429);
    let v = api.h.stats().violations;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].kind, "call_while_rate_limited");
    // another division has its own counter (§4.1 "per company")
    let other = api
        .http
        .get(format!(
            "{}/api/v1/100002/crm/Accounts?$select=ID",
            api.h.base_url()
        ))
        .bearer_auth(&api.access)
        .send()
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);
    // current/Me has no division: not counted and no headers (§4.1)
    let me = api.get(&format!("{}/api/v1/current/Me", api.h.base_url()));
    assert_eq!(me.status().as_u16(), 200);
    assert!(header(&me, "x-ratelimit-minutely-remaining").is_none());
    api.h.clock().advance(Duration::from_secs(60));
    let r = api.get("crm/Accounts?$select=ID");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "x-ratelimit-minutely-remaining").unwrap(), "59");
    assert_eq!(header(&r, "x-ratelimit-remaining").unwrap(), "4939");
    assert_eq!(api.h.stats().rate_limited, 2);
}

/// §4.1–4.2: the daily limit (configurable, 5000 by default) resets at 00:00 UTC; a daily
/// 429 carries only the daily headers.
#[test]
fn daily_limit_429_carries_daily_headers_and_resets_at_midnight_utc() {
    let mut api = start(Config {
        daily_limit: 5,
        ..cfg()
    });
    for _ in 0..5 {
        assert_eq!(api.get("crm/Accounts?$select=ID").status().as_u16(), 200);
    }
    let r = api.get("crm/Accounts?$select=ID");
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(header(&r, "x-ratelimit-limit").unwrap(), "5");
    assert_eq!(header(&r, "x-ratelimit-remaining").unwrap(), "0");
    assert_eq!(header(&r, "x-ratelimit-reset").unwrap(), "1795478400000");
    assert!(header(&r, "x-ratelimit-minutely-remaining").is_none());
    api.h
        .clock()
        .advance(Duration::from_millis((1_795_478_400_000 - T0) as u64));
    api.renew();
    let r = api.get("crm/Accounts?$select=ID");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "x-ratelimit-remaining").unwrap(), "4");
    Api::error_text(&api.get_json("crm/Accounts?$select=Nope", 400));
}

/// §4.4: more than 10 errors (400/401/403/404) per (client, division, endpoint) in an hour
/// block that endpoint for an hour (status configurable, 429 by default); calls while blocked
/// are recorded as violations; other endpoints still work; the block is lifted after an hour
/// and the next block lasts longer.
#[test]
fn error_budget_blocks_after_10_errors_per_endpoint_per_hour() {
    let mut api = start(cfg());
    for i in 0..11 {
        let v = api.get_json("crm/Accounts?$select=NoSuchField", 400);
        assert!(
            Api::error_text(&v).contains("does not have a property"),
            "error {i}"
        );
    }
    // blocked now, even for a valid query on the same endpoint
    let r = api.get("crm/Accounts?$select=ID");
    assert_eq!(r.status().as_u16(), 429);
    let v: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert!(Api::error_text(&v).contains("blocked"));
    assert!(api
        .h
        .stats()
        .violations
        .iter()
        .any(|v| v.kind == "call_while_blocked"));
    // another endpoint is not blocked
    api.get_json("crm/Contacts?$select=ID", 200);
    // lifted after an hour
    api.h.clock().advance(Duration::from_secs(3601));
    api.renew();
    api.get_json("crm/Accounts?$select=ID", 200);
    // a second block lasts two hours
    for _ in 0..11 {
        api.get_json(
            "crm/Accounts(guid'00000000-0000-4000-8000-000000000000')",
            404,
        );
    }
    api.h.clock().advance(Duration::from_secs(3601));
    api.renew();
    assert_eq!(api.get("crm/Accounts?$select=ID").status().as_u16(), 429);
    api.h.clock().advance(Duration::from_secs(3600));
    api.renew();
    api.get_json("crm/Accounts?$select=ID", 200);
}

/// §4.4: errors spread over more than an hour do not add up; the block status is configurable.
#[test]
fn error_window_is_one_hour_and_block_status_configurable() {
    let mut api = start(Config {
        block_status: 403,
        ..cfg()
    });
    for _ in 0..10 {
        api.get_json("crm/Accounts?$select=Bad", 400);
    }
    api.h.clock().advance(Duration::from_secs(3601));
    api.renew();
    for _ in 0..10 {
        api.get_json("crm/Accounts?$select=Bad", 400);
    }
    api.get_json("crm/Accounts?$select=ID", 200);
    api.get_json("crm/Accounts?$select=Bad", 400);
    assert_eq!(api.get("crm/Accounts?$select=ID").status().as_u16(), 403);
    let _ = DIV;
}

/// `latency_ms`: every API answer takes that many clock milliseconds (real time divided by the
/// clock's speed-up); 0 answers at once.
#[test]
fn api_answers_take_the_configured_latency() {
    let api = start(Config {
        clock: Clock::starting_at(T0, 10.0),
        latency_ms: 2_000,
        ..Config::default()
    });
    let t = std::time::Instant::now();
    for _ in 0..3 {
        let r = api.get("crm/Accounts?$select=ID");
        assert_eq!(r.status().as_u16(), 200);
    }
    // 3 answers × 2 s of a clock 10× faster than real time: at least 0.6 s.
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
}
