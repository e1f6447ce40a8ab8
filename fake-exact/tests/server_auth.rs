//! OAuth2 as Exact runs it (§3, §8), over real HTTP.

mod server_common;

use fake_exact::{Clock, Config, FakeExact};
use serde_json::Value;
use server_common::{auth_code, http, login, start, token_request, Api, JsonText, REDIRECT};
use std::time::Duration;

fn refresh(api: &Api, token: &str) -> reqwest::blocking::Response {
    token_request(
        &api.h,
        &api.http,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
}

/// §3: the token response has `expires_in` as the string "600", `token_type` bearer, and
/// tokens with Exact's country prefix; the code arrives URL-encoded (`%21`) in the redirect.
#[test]
fn authorization_code_grant_and_token_shape() {
    let h = FakeExact::start(Config::default());
    let c = http();
    let r = c
        .get(format!("{}/api/oauth2/auth", h.base_url()))
        .query(&[
            ("client_id", h.config().client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(
        loc.contains("code=stampNL001.") && loc.contains("%21"),
        "{loc}"
    );
    let code = auth_code(&h, &c);
    let r = token_request(
        &h,
        &c,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    );
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json_text();
    assert_eq!(v["expires_in"], "600");
    assert_eq!(v["token_type"], "bearer");
    assert!(v["access_token"]
        .as_str()
        .unwrap()
        .starts_with("stampNL001."));
    assert!(v["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("stampNL001."));
    assert_eq!(h.stats().token_grants["authorization_code"], 1);
}

/// §3: authorization codes are single use (reuse → 400) and valid for 3 minutes.
#[test]
fn codes_are_single_use_and_expire_after_3_minutes() {
    let h = FakeExact::start(Config::default());
    let c = http();
    let code = auth_code(&h, &c);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    assert_eq!(token_request(&h, &c, &form).status().as_u16(), 200);
    let r = token_request(&h, &c, &form);
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json_text()["error"], "invalid_grant");
    let code = auth_code(&h, &c);
    h.clock().advance(Duration::from_secs(181));
    let r = token_request(
        &h,
        &c,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    );
    assert_eq!(r.status().as_u16(), 400);
    let r = token_request(
        &h,
        &c,
        &[
            ("grant_type", "authorization_code"),
            ("code", "stampNL001.bogus"),
            ("redirect_uri", REDIRECT),
        ],
    );
    assert_eq!(r.status().as_u16(), 400);
}

/// §3: every data call needs `Authorization: Bearer <valid token>`; missing/unknown → 401.
#[test]
fn data_calls_need_a_bearer_token() {
    let api = start(Config::default());
    let r = api
        .http
        .get(api.url("crm/Accounts?$select=ID"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    Api::error_text(&r.json_text());
    let r = api
        .http
        .get(api.url("crm/Accounts?$select=ID"))
        .bearer_auth("stampNL001.nope")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    api.get_json("crm/Accounts?$select=ID", 200);
}

/// §3, §2.6: access tokens live 600 s of server time regardless of use; afterwards a call gets
/// 401 with "access token expired" in `WWW-Authenticate`, recorded as a client violation.
/// Runs on an accelerated clock (300×: 600 s pass in 2 s).
#[test]
fn access_token_expires_after_600s_on_an_accelerated_clock() {
    let api = start(Config {
        clock: Clock::accelerated(300.0),
        ..Config::default()
    });
    api.get_json("crm/Accounts?$select=ID", 200);
    std::thread::sleep(Duration::from_millis(2200));
    let r = api.get("crm/Accounts?$select=ID");
    assert_eq!(r.status().as_u16(), 401);
    let www = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(www.contains("access token expired"), "{www}");
    let stats = api.h.stats();
    assert!(
        stats
            .violations
            .iter()
            .any(|v| v.kind == "expired_access_token"),
        "{stats:?}"
    );
    // a refresh after expiry is fine and gives a working token
    let r = refresh(&api, &api.refresh);
    assert_eq!(r.status().as_u16(), 200);
    let v = r.json_text();
    let ok = api
        .http
        .get(api.url("crm/Accounts?$select=ID"))
        .bearer_auth(v["access_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}

/// §3 (570-second rule): refreshing within 570 s of the previous grant → 400 `access_denied`
/// "Rate limit exceeded: access_token not expired" with header
/// `Reason: TooEarlyToRefreshTokens: …`; the refresh token is not consumed.
#[test]
fn refresh_too_early_is_rejected_and_does_not_consume_the_token() {
    let api = start(Config::default());
    api.h.clock().advance(Duration::from_secs(500));
    let r = refresh(&api, &api.refresh);
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.headers()["reason"].to_str().unwrap(),
        "TooEarlyToRefreshTokens: Rate limit exceeded: access_token not expired"
    );
    let v = r.json_text();
    assert_eq!(v["error"], "access_denied");
    assert_eq!(
        v["error_description"],
        "Rate limit exceeded: access_token not expired"
    );
    assert!(api
        .h
        .stats()
        .violations
        .iter()
        .any(|v| v.kind == "early_refresh"));
    api.h.clock().advance(Duration::from_secs(71));
    let r = refresh(&api, &api.refresh);
    assert_eq!(
        r.status().as_u16(),
        200,
        "the same refresh token still works after 570 s"
    );
}

/// §3, §7.2 #1: refresh tokens rotate on every use; reusing the old one → 401
/// `unauthorized_client` "Old refresh token used." (recorded as a violation), and the new
/// one keeps working.
#[test]
fn rotated_refresh_token_reuse_fails() {
    let api = start(Config::default());
    api.h.clock().advance(Duration::from_secs(571));
    let r = refresh(&api, &api.refresh);
    assert_eq!(r.status().as_u16(), 200);
    let v = r.json_text();
    let new_refresh = v["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(new_refresh, api.refresh, "rotated");
    api.h.clock().advance(Duration::from_secs(571));
    let r = refresh(&api, &api.refresh);
    assert_eq!(r.status().as_u16(), 401);
    let v = r.json_text();
    assert_eq!(v["error"], "unauthorized_client");
    assert_eq!(v["error_description"], "Old refresh token used.");
    assert!(api
        .h
        .stats()
        .violations
        .iter()
        .any(|v| v.kind == "rotated_refresh_token_reuse"));
    assert_eq!(refresh(&api, &new_refresh).status().as_u16(), 200);
    assert_eq!(api.h.stats().token_grants["refresh_token"], 2);
}

/// §3: a refresh token unused for 30 days → 400 `invalid_request` "The refresh token expired
/// at … and it is now …."
#[test]
fn refresh_token_expires_after_30_idle_days() {
    let api = start(Config::default());
    api.h.clock().advance(Duration::from_secs(31 * 86_400));
    let r = refresh(&api, &api.refresh);
    assert_eq!(r.status().as_u16(), 400);
    let v = r.json_text();
    assert_eq!(v["error"], "invalid_request");
    let d = v["error_description"].as_str().unwrap();
    assert!(
        d.starts_with("The refresh token expired at ") && d.contains(" and it is now "),
        "{d}"
    );
}

/// §8: the reuse grace is configurable (some apps keep the previous refresh token briefly).
#[test]
fn reuse_grace_is_configurable() {
    let api = start(Config {
        refresh_reuse_grace_ms: 60_000,
        ..Config::default()
    });
    api.h.clock().advance(Duration::from_secs(571));
    assert_eq!(refresh(&api, &api.refresh).status().as_u16(), 200);
    api.h.clock().advance(Duration::from_secs(571));
    // grace over (571 s > 60 s)
    assert_eq!(refresh(&api, &api.refresh).status().as_u16(), 401);
}

/// §3: wrong client credentials are rejected.
#[test]
fn wrong_client_secret_is_rejected() {
    let h = FakeExact::start(Config::default());
    let c = http();
    let code = auth_code(&h, &c);
    let r = c
        .post(format!("{}/api/oauth2/token", h.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("client_id", h.config().client_id.as_str()),
                ("client_secret", "wrong"),
            ])
            .unwrap(),
        )
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (_a, _r) = login(&h, &c);
}

/// `Handle::issue_tokens` gives a working pair without the consent round trip (for runtime
/// tests); the pair follows the same rules (§3: refresh only after 570 s).
#[test]
fn issued_tokens_work_and_follow_the_rules() {
    let h = FakeExact::start(Config::default());
    let (access, refresh_token) = h.issue_tokens();
    let c = http();
    let r = c
        .get(format!(
            "{}/api/v1/100001/crm/Accounts?$select=ID",
            h.base_url()
        ))
        .bearer_auth(&access)
        .header("accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = token_request(
        &h,
        &c,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ],
    );
    assert_eq!(r.status().as_u16(), 400);
}

/// §3, §4.4: too-early refreshes count towards the hourly error limit (picqer#475): after more
/// than 10 of them the token endpoint is blocked, even for a refresh that would now be allowed.
#[test]
fn early_refreshes_count_towards_the_error_limit() {
    let api = start(Config::default());
    for _ in 0..11 {
        assert_eq!(refresh(&api, &api.refresh).status().as_u16(), 400);
    }
    api.h.clock().advance(Duration::from_secs(600));
    let r = refresh(&api, &api.refresh);
    assert_eq!(r.status().as_u16(), 429);
    assert!(api
        .h
        .stats()
        .violations
        .iter()
        .any(|v| v.kind == "call_while_blocked"));
    api.h.clock().advance(Duration::from_secs(3600));
    assert_eq!(refresh(&api, &api.refresh).status().as_u16(), 200);
}
