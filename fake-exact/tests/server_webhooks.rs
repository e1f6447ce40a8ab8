//! Webhooks (§5): subscription with the validation handshake, duplicates, failing callbacks,
//! deliveries with `HashCode` = upper-case hex HMAC-SHA256 of the raw Content.

mod server_common;

use fake_exact::Config;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use server_common::{results, start, Api, DIV};
use sha2::Sha256;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

/// A callback receiver on loopback: answers `status` and forwards each request body.
fn receiver(status: u16) -> (String, Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/exact", l.local_addr().unwrap());
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break String::new();
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some(h) = text.find("\r\n\r\n") {
                    let len: usize = text[..h]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= h + 4 + len {
                        break String::from_utf8_lossy(&buf[h + 4..h + 4 + len]).into_owned();
                    }
                }
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if tx.send(body).is_err() {
                break;
            }
        }
    });
    (url, rx)
}

fn subscribe(api: &Api, callback: &str, topic: &str) -> (u16, Value) {
    let r = api
        .http
        .post(api.url("webhooks/WebhookSubscriptions"))
        .bearer_auth(&api.access)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .body(json!({"CallbackURL": callback, "Topic": topic}).to_string())
        .send()
        .unwrap();
    let s = r.status().as_u16();
    (
        s,
        serde_json::from_str(&r.text().unwrap()).unwrap_or(Value::Null),
    )
}

/// §5: subscribing sends an empty validation POST; a duplicate subscription → 500
/// "Gegeven bestaat reeds."; a callback that does not answer 2xx makes creation fail with 500.
#[test]
fn subscription_handshake_duplicates_and_failing_callbacks() {
    let api = start(Config::default());
    let (url, rx) = receiver(200);
    let (s, v) = subscribe(&api, &url, "Accounts");
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        "",
        "empty validation POST"
    );
    assert_eq!(v["d"]["Topic"], "Accounts");
    let (s, v) = subscribe(&api, &url, "Accounts");
    assert_eq!(s, 500);
    assert_eq!(Api::error_text(&v), "Gegeven bestaat reeds.");
    let (bad, _rx2) = receiver(500);
    let (s, v) = subscribe(&api, &bad, "Items");
    assert_eq!(s, 500);
    assert!(Api::error_text(&v).starts_with("Invalid: Post to callback URL endpoint returns 500"));
    let (s, _) = subscribe(&api, "http://127.0.0.1:9/closed", "Items");
    assert_eq!(s, 500);
    let list = api.get_json("webhooks/WebhookSubscriptions", 200);
    assert_eq!(results(&list).len(), 1);
    // delete
    let id = v_id(&list);
    let r = api
        .http
        .delete(api.url(&format!("webhooks/WebhookSubscriptions(guid'{id}')")))
        .bearer_auth(&api.access)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(
        results(&api.get_json("webhooks/WebhookSubscriptions", 200)).len(),
        0
    );
}

fn v_id(list: &Value) -> String {
    results(list)[0]["ID"].as_str().unwrap().to_string()
}

/// §5: a change delivers `{"Content":{Topic, ClientId, Division, Action, Key,
/// ExactOnlineEndpoint, EventCreatedOn},"HashCode":…}` where HashCode is the upper-case hex
/// HMAC-SHA256 (webhook secret) of the raw Content text; deletions send Action "Delete".
#[test]
fn deliveries_carry_content_and_hmac_hashcode() {
    let api = start(Config::default());
    let (url, rx) = receiver(200);
    assert_eq!(subscribe(&api, &url, "Accounts").0, 201);
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let key = api.h.key_literal("crm/Accounts", DIV, 2).unwrap();
    let guid = key
        .trim_start_matches("guid'")
        .trim_end_matches('\'')
        .to_string();
    api.control("POST", "mutate", Some(json!({"entity": "crm/Accounts", "division": DIV, "op": "update", "key": key, "fields": {"Name": "x"}})));
    let body = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let inner = body
        .strip_prefix("{\"Content\":")
        .and_then(|r| r.rsplit_once(",\"HashCode\":\""))
        .map(|(c, h)| (c.to_string(), h.trim_end_matches("\"}").to_string()))
        .expect("raw shape");
    let mut mac = Hmac::<Sha256>::new_from_slice(api.h.config().webhook_secret.as_bytes()).unwrap();
    mac.update(inner.0.as_bytes());
    assert_eq!(inner.1, hex::encode_upper(mac.finalize().into_bytes()));
    let v: Value = serde_json::from_str(&body).unwrap();
    let c = &v["Content"];
    assert_eq!(c["Topic"], "Accounts");
    assert_eq!(c["Division"], DIV);
    assert_eq!(c["Action"], "Update");
    assert_eq!(c["Key"], guid.as_str());
    assert_eq!(c["ClientId"], api.h.config().client_id.as_str());
    let ep = c["ExactOnlineEndpoint"].as_str().unwrap();
    assert!(
        ep.ends_with(&format!("/api/v1/{DIV}/crm/Accounts(guid'{guid}')")),
        "{ep}"
    );
    assert!(!c["EventCreatedOn"].as_str().unwrap().ends_with('Z'));
    let order: Vec<usize> = [
        "Topic",
        "ClientId",
        "Division",
        "Action",
        "Key",
        "ExactOnlineEndpoint",
        "EventCreatedOn",
    ]
    .iter()
    .map(|k| inner.0.find(&format!("\"{k}\"")).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "field order");
    // the endpoint in the message is fetchable
    let got = api.get_json(ep, 200);
    assert_eq!(got["d"]["Name"], "x");
    api.control(
        "POST",
        "mutate",
        Some(json!({"entity": "crm/Accounts", "division": DIV, "op": "delete", "key": key})),
    );
    let body = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Content"]["Action"], "Delete");
    // other topics and divisions do not deliver
    api.control(
        "POST",
        "mutate",
        Some(json!({"entity": "crm/Contacts", "division": DIV, "op": "insert"})),
    );
    api.control(
        "POST",
        "mutate",
        Some(json!({"entity": "crm/Accounts", "division": 100002, "op": "insert"})),
    );
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    assert_eq!(api.h.stats().webhooks_delivered, 2);
}
