//! Test controls under `/_test/` (mutations, checksum, statistics, faults) and what mutations
//! do to the served data: Modified/Timestamp bumps (§1.3, §2.5, §6) and `sync/Deleted` (§1.4).

mod server_common;

use fake_exact::{Clock, Config};
use serde_json::{json, Value};
use server_common::{results, start, Api, DIV};

fn checksum(api: &Api, entity: &str) -> Value {
    api.control(
        "GET",
        &format!("checksum?entity={entity}&division={DIV}"),
        None,
    )
}

fn max_ts(api: &Api) -> i64 {
    let v = api.get_json("sync/CRM/Accounts?$select=ID,Timestamp", 200);
    results(&v)
        .iter()
        .map(|r| r["Timestamp"].as_str().unwrap().parse::<i64>().unwrap())
        .max()
        .unwrap()
}

/// Checksum = row count + order-independent hash of the rows held; it changes after an
/// update, insert or delete and comes back to the same value for the same content.
#[test]
fn checksum_changes_after_mutate() {
    let api = start(Config::default());
    let c0 = checksum(&api, "crm/Accounts");
    assert_eq!(c0["count"], 10);
    assert_eq!(c0, checksum(&api, "crm/Accounts"), "stable");
    let key = api.h.key_literal("crm/Accounts", DIV, 3).unwrap();
    api.control("POST", "mutate", Some(json!({"entity": "crm/Accounts", "division": DIV, "op": "update", "key": key, "fields": {"Name": "Nieuwe naam & Zoon"}})));
    let c1 = checksum(&api, "crm/Accounts");
    assert_eq!(c1["count"], 10);
    assert_ne!(c1["hash"], c0["hash"]);
    assert_eq!(c1["keys_hash"], c0["keys_hash"], "same keys");
    api.control(
        "POST",
        "mutate",
        Some(json!({"entity": "crm/Accounts", "division": DIV, "op": "insert", "count": 2})),
    );
    let c2 = checksum(&api, "crm/Accounts");
    assert_eq!(c2["count"], 12);
    assert_ne!(c2["keys_hash"], c1["keys_hash"]);
    api.control(
        "POST",
        "mutate",
        Some(json!({"entity": "crm/Accounts", "division": DIV, "op": "delete", "key": key})),
    );
    assert_eq!(checksum(&api, "crm/Accounts")["count"], 11);
    // a subset of fields, as a client that synced only some columns would compare
    let sub = api.control(
        "GET",
        &format!("checksum?entity=crm/Accounts&division={DIV}&fields=Name,ID"),
        None,
    );
    assert_eq!(sub["fields"], json!(["ID", "Name"]));
    // other divisions are untouched
    let other = api.control("GET", "checksum?entity=crm/Accounts&division=100002", None);
    assert_eq!(other["count"], 10);
}

/// §1.3, §2.5: an updated row gets a new Timestamp above every earlier one of its division and
/// `Modified` = now in Dutch local time; bulk, sync and regular endpoints of one entity set
/// share the rows, so an incremental `Timestamp gt {max}L` sync sees exactly the change.
#[test]
fn mutations_bump_timestamp_and_modified() {
    // 2026-07-01T12:00:00Z = 14:00 CEST
    let api = start(Config {
        clock: Clock::starting_at(1_782_907_200_000, 1.0),
        ..Config::default()
    });
    let before = max_ts(&api);
    let key = api.h.key_literal("crm/Accounts", DIV, 5).unwrap();
    let r = api.control("POST", "mutate", Some(json!({"entity": "sync/CRM/Accounts", "division": DIV, "op": "update", "key": key, "fields": {"Name": "Łukasz & Co"}})));
    let ts = r["results"][0]["timestamp"].as_i64().unwrap();
    assert!(ts > before);
    let v = api.get_json(
        &format!("sync/CRM/Accounts?$select=ID,Name,Timestamp&$filter=Timestamp gt {before}L"),
        200,
    );
    assert_eq!(results(&v).len(), 1);
    assert_eq!(results(&v)[0]["Name"], "Łukasz & Co");
    assert_eq!(results(&v)[0]["Timestamp"], ts.to_string());
    let single = api.get_json(&format!("crm/Accounts({key})?$select=Name,Modified"), 200);
    assert_eq!(single["d"]["Name"], "Łukasz & Co");
    let m: i64 = single["d"]["Modified"].as_str().unwrap()[6..19]
        .parse()
        .unwrap();
    let local = 1_782_907_200_000 + 7_200_000;
    assert!(
        (local..local + 10_000).contains(&m),
        "Modified {m} is Dutch local time"
    );
    // the changed row now sorts last by Modified, and Modified filters find it
    let v = api.get_json("crm/Accounts?$select=ID&$orderby=Modified", 200);
    assert_eq!(
        results(&v).last().unwrap()["ID"]
            .as_str()
            .map(|s| format!("guid'{s}'")),
        Some(key.clone())
    );
    let v = api.get_json(
        "crm/Accounts?$select=ID&$filter=Modified ge datetime'2026-07-01T14:00:00'",
        200,
    );
    assert_eq!(results(&v).len(), 1);
    // a second change on another division keeps that division's own counter
    let k2 = api.h.key_literal("crm/Accounts", 100002, 1).unwrap();
    api.control(
        "POST",
        "mutate",
        Some(json!({"entity": "crm/Accounts", "division": 100002, "op": "update", "key": k2})),
    );
    let r = api.control(
        "POST",
        "mutate",
        Some(json!({"entity": "crm/Accounts", "division": DIV, "op": "insert"})),
    );
    assert!(
        r["results"][0]["timestamp"].as_i64().unwrap() > ts,
        "Timestamp only grows"
    );
}

/// §1.4: deletions appear in `sync/Deleted` with EntityKey, EntityType (2 = Accounts),
/// Division and a growing Timestamp; `EntityType eq N` filters them; the row is gone (404).
#[test]
fn deletions_are_logged_in_sync_deleted() {
    let api = start(Config::default());
    let key = api.h.key_literal("crm/Accounts", DIV, 7).unwrap();
    let guid = key.trim_start_matches("guid'").trim_end_matches('\'');
    api.control("POST", "mutate", Some(json!([
        {"entity": "crm/Accounts", "division": DIV, "op": "delete", "key": key},
        {"entity": "crm/Contacts", "division": DIV, "op": "delete", "key": api.h.key_literal("crm/Contacts", DIV, 1).unwrap()},
    ])));
    let v = api.get_json("sync/Deleted?$select=ID,EntityKey,EntityType,Division,Timestamp,DeletedDate&$filter=Timestamp gt 0L", 200);
    let rows = results(&v);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["EntityKey"], guid);
    assert_eq!(rows[0]["EntityType"], 2);
    assert_eq!(rows[0]["Division"], DIV);
    assert_eq!(rows[1]["EntityType"], 5);
    let t0: i64 = rows[0]["Timestamp"].as_str().unwrap().parse().unwrap();
    let t1: i64 = rows[1]["Timestamp"].as_str().unwrap().parse().unwrap();
    assert!(t1 > t0);
    let v = api.get_json(
        "sync/Deleted?$select=EntityKey&$filter=Timestamp gt 0L and EntityType eq 2",
        200,
    );
    assert_eq!(results(&v).len(), 1);
    api.get_json(&format!("crm/Accounts({key})"), 404);
    let v = api.get_json("bulk/CRM/Accounts?$select=ID", 200);
    assert_eq!(results(&v).len(), 9);
    assert!(results(&v).iter().all(|r| r["ID"] != guid));
}

/// `/_test/stats` counts calls per endpoint and division, token grants and errors.
#[test]
fn stats_count_calls_grants_and_errors() {
    let api = start(Config::default());
    api.get_json("crm/Accounts?$select=ID", 200);
    api.get_json("crm/Accounts?$select=ID", 200);
    api.get_json("crm/Accounts?$select=Nope", 400);
    let s = api.control("GET", "stats", None);
    assert_eq!(s["calls"][format!("{DIV} crm/accounts")], 3);
    assert_eq!(s["token_grants"]["authorization_code"], 1);
    assert_eq!(s["errors"]["400"], 1);
}

/// §2.6, §8: injected faults: 500/503/408/599, HTML error pages with 200 or 500, truncated
/// bodies and dropped connections; rates are set through `/_test/faults`.
#[test]
fn faults_can_be_injected() {
    let api = start(Config::default());
    let set = |f: Value| {
        api.control("POST", "faults", Some(f));
    };
    set(json!({"http_503": 1.0}));
    let r = api.get("crm/Accounts?$select=ID");
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    set(json!({"html_200": 1.0}));
    let r = api.get("crm/Accounts?$select=ID");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().unwrap().starts_with("<!DOCTYPE html>"));
    set(json!({"html_500": 1.0}));
    assert_eq!(api.get("crm/Accounts?$select=ID").status().as_u16(), 500);
    set(json!({"http_500": 1.0}));
    let r = api.get("crm/Accounts?$select=ID");
    assert_eq!(r.status().as_u16(), 500);
    Api::error_text(&serde_json::from_str(&r.text().unwrap()).unwrap());
    set(json!({"http_408": 1.0}));
    assert_eq!(api.get("crm/Accounts?$select=ID").status().as_u16(), 408);
    set(json!({"http_599": 1.0}));
    assert_eq!(api.get("crm/Accounts?$select=ID").status().as_u16(), 599);
    set(json!({"truncated": 1.0}));
    let r = api
        .http
        .get(api.url("crm/Accounts?$select=ID"))
        .bearer_auth(&api.access)
        .send();
    assert!(
        r.and_then(|r| r.text()).is_err(),
        "truncated body is an error"
    );
    set(json!({"drop_connection": 1.0}));
    let r = api
        .http
        .get(api.url("crm/Accounts?$select=ID"))
        .bearer_auth(&api.access)
        .send();
    assert!(
        r.and_then(|r| r.text()).is_err(),
        "dropped connection is an error"
    );
    set(json!({"slow": 1.0, "slow_ms": 50}));
    let t = std::time::Instant::now();
    api.get_json("crm/Accounts?$select=ID", 200);
    assert!(t.elapsed().as_millis() >= 50);
    set(json!({"http_503": 0.5}));
    let codes: Vec<u16> = (0..40)
        .map(|_| api.get("crm/Accounts?$select=ID").status().as_u16())
        .collect();
    let n503 = codes.iter().filter(|c| **c == 503).count();
    assert!((5..=35).contains(&n503), "about half: {n503}/40");
    let s = api.control("GET", "stats", None);
    assert!(s["faults"]["http_503"].as_u64().unwrap() >= 6);
    set(json!({}));
    api.get_json("crm/Accounts?$select=ID", 200);
}

/// Bad mutations are rejected with Exact-shaped errors (unknown property, key fields, no row).
#[test]
fn bad_mutations_are_rejected() {
    let api = start(Config::default());
    let post = |b: Value| {
        api.http
            .post(format!("{}/_test/mutate", api.h.base_url()))
            .body(b.to_string())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        post(
            json!({"entity": "crm/Accounts", "division": DIV, "op": "update", "key": "guid'00000000-0000-4000-8000-000000000000'"})
        ),
        404
    );
    assert_eq!(
        post(
            json!({"entity": "crm/Accounts", "division": DIV, "op": "insert", "fields": {"Nope": 1}})
        ),
        400
    );
    assert_eq!(
        post(
            json!({"entity": "crm/Accounts", "division": DIV, "op": "insert", "fields": {"ID": "x"}})
        ),
        400
    );
    assert_eq!(
        post(json!({"entity": "crm/Nope", "division": DIV, "op": "insert"})),
        404
    );
    assert_eq!(
        post(json!({"entity": "crm/Accounts", "division": 1, "op": "insert"})),
        400
    );
}

/// §2.6, §8: more faults: a spurious 401 "access token expired", 403 license expired,
/// duplicate rows within a sync page (§1.3), and an empty token-endpoint body.
#[test]
fn more_faults_401_403_duplicates_empty_token_body() {
    let mut api = start(Config::default());
    let set = |api: &Api, f: Value| {
        api.control("POST", "faults", Some(f));
    };
    set(&api, json!({"http_401_expired": 1.0}));
    let r = api.get("crm/Accounts?$select=ID");
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("access token expired"));
    set(&api, json!({"http_403_license": 1.0}));
    let v = api.get_json("crm/Accounts?$select=ID", 403);
    assert_eq!(
        Api::error_text(&v),
        "Forbidden - Customer's license expired."
    );
    set(&api, json!({"duplicate_rows": 1.0}));
    let v = api.get_json("sync/CRM/Accounts?$select=ID,Timestamp", 200);
    let ids: Vec<&str> = results(&v)
        .iter()
        .map(|r| r["ID"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 11);
    assert_eq!(unique.len(), 10);
    set(&api, json!({"empty_token_body": 1.0}));
    api.h.clock().advance(std::time::Duration::from_secs(600));
    let r = server_common::token_request(
        &api.h,
        &api.http,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &api.refresh),
        ],
    );
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().unwrap(), "");
    set(&api, json!({}));
    api.renew();
    api.get_json("crm/Accounts?$select=ID", 200);
}

/// §1.2: `read/sync/Sync/SyncTimestamp` gives the Timestamp to start a sync from a Modified
/// date: `Timestamp gt {TimeStampAsBigInt}L` returns the rows modified at or after it.
#[test]
fn sync_timestamp_lookup() {
    let api = start(Config::default());
    // rows 0..6 share Modified 2021-01-04T08:00, rows 7..9 have 08:01
    let v = api.get_json(
        "read/sync/Sync/SyncTimestamp?modified=datetime'2021-01-04T08:01:00'&endPoint='Accounts'",
        200,
    );
    let row = &results(&v)[0];
    assert_eq!(row["API"], "Accounts");
    let ts: i64 = row["TimeStampAsBigInt"].as_str().unwrap().parse().unwrap();
    let v = api.get_json(
        &format!("sync/CRM/Accounts?$select=ID,Timestamp&$filter=Timestamp gt {ts}L"),
        200,
    );
    assert_eq!(results(&v).len(), 3);
    api.get_json(
        "read/sync/Sync/SyncTimestamp?modified=yesterday&endPoint='Accounts'",
        400,
    );
}

/// §1.3: mandatory filtering can be switched on per endpoint (400 with Exact's text).
#[test]
fn mandatory_filter_is_configurable() {
    let mut cfg = Config::default();
    cfg.filter_required
        .insert("bulk/CRM/Accounts".into(), "ID,Modified".into());
    let api = start(cfg);
    let v = api.get_json("bulk/CRM/Accounts?$select=ID", 400);
    assert_eq!(
        Api::error_text(&v),
        "A GET request for this endpoint must have a $filter parameter with one of the following fields in the url:ID,Modified"
    );
    api.get_json(
        "bulk/CRM/Accounts?$select=ID&$filter=Modified ge datetime'2020-01-01T00:00'",
        200,
    );
}

/// §1.3, §2.3: a sync run pages by Timestamp (`$skiptoken={Timestamp}L`, format unconfirmed
/// §9); a row changed between two pages comes again at the end (a duplicate within the run,
/// newest Timestamp wins) and no row is lost.
#[test]
fn sync_paging_survives_changes_during_the_run() {
    let mut cfg = Config::default();
    cfg.rows.insert("Accounts".into(), 1500);
    let api = start(cfg);
    let p1 = api.get_json(
        "sync/CRM/Accounts?$select=ID,Timestamp&$filter=Timestamp gt 0L",
        200,
    );
    let rows1 = results(&p1);
    assert_eq!(rows1.len(), 1000);
    let next = p1["d"]["__next"].as_str().unwrap().to_string();
    let last_ts = rows1[999]["Timestamp"].as_str().unwrap();
    assert!(next.ends_with(&format!("$skiptoken={last_ts}L")), "{next}");
    assert!(next.contains("$filter=Timestamp%20gt%200L"), "{next}");
    // change the last row of page 1 and one row of page 2
    for i in [999u64, 1200] {
        let key = api.h.key_literal("sync/CRM/Accounts", DIV, i).unwrap();
        api.control(
            "POST",
            "mutate",
            Some(
                json!({"entity": "sync/CRM/Accounts", "division": DIV, "op": "update", "key": key}),
            ),
        );
    }
    let p2 = api.get_json(&next, 200);
    let rows2 = results(&p2);
    assert!(p2["d"].get("__next").is_none());
    let mut ids: Vec<&str> = rows1
        .iter()
        .chain(rows2.iter())
        .map(|r| r["ID"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1501, "499 unchanged + 2 changed on page 2");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1500, "every row seen");
    let ts: Vec<i64> = rows2
        .iter()
        .map(|r| r["Timestamp"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "Timestamp order");
}

/// §2.4, §6: `$orderby=Modified` paging continues after the last row's (Modified, key)
/// (`$skiptoken=datetime'…',guid'…'`, format unconfirmed): a row changed between two pages
/// comes again at the end and no row is lost.
#[test]
fn modified_order_paging_survives_changes_during_the_run() {
    let mut cfg = Config::default();
    cfg.rows.insert("Accounts".into(), 150);
    let api = start(cfg);
    let q = "crm/Accounts?$select=ID,Modified&$filter=Modified ge datetime'2021-01-01T00:00:00'&$orderby=Modified";
    let p1 = api.get_json(q, 200);
    let rows1 = results(&p1).clone();
    assert_eq!(rows1.len(), 60);
    let next = p1["d"]["__next"].as_str().unwrap().to_string();
    assert!(
        next.contains("$skiptoken=datetime'2021-01-04T08:08:00.000',guid'"),
        "{next}"
    );
    for i in [59u64, 100] {
        let key = api.h.key_literal("crm/Accounts", DIV, i).unwrap();
        api.control(
            "POST",
            "mutate",
            Some(json!({"entity": "crm/Accounts", "division": DIV, "op": "update", "key": key})),
        );
    }
    let mut all = rows1;
    let mut url = Some(next);
    while let Some(u) = url {
        let p = api.get_json(&u, 200);
        all.extend(results(&p).iter().cloned());
        url = p["d"]["__next"].as_str().map(String::from);
    }
    assert_eq!(all.len(), 151, "row 59 served twice (old and new position)");
    let mut ids: Vec<&str> = all.iter().map(|r| r["ID"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 150);
    let ms: Vec<i64> = all[60..]
        .iter()
        .map(|r| r["Modified"].as_str().unwrap()[6..19].parse().unwrap())
        .collect();
    assert!(ms.windows(2).all(|w| w[0] <= w[1]), "Modified order");
}
