//! Webhooks (§5): subscriptions per (app, division) with the validation handshake, and
//! deliveries `{"Content":{…},"HashCode":"<UPPER HEX HMAC-SHA256(secret, raw Content)>"}` on
//! test mutations. Callbacks must be plain `http://` URLs (loopback tests).

use super::api::{exact_error, Out, JSON};
use super::gen::{mix4, write_json_str};
use super::App;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub client: String,
    pub division: i32,
    pub callback: String,
    pub topic: String,
    pub description: String,
    /// Local wall-clock ms.
    pub created: i64,
}

#[derive(Debug, Default)]
pub struct Webhooks {
    pub subs: Vec<Subscription>,
    counter: u64,
}

/// `HashCode` of a delivery: upper-case hex HMAC-SHA256 of the raw Content bytes (§5).
pub fn hash_code(secret: &str, content: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(content.as_bytes());
    hex::encode_upper(mac.finalize().into_bytes())
}

/// POSTs `body` to an `http://host:port/path` URL; returns the status code.
pub async fn http_post(url: &str, body: &[u8]) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| "only http:// callback URLs are supported by the fake".to_string())?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(hostport)
            .await
            .map_err(|e| e.to_string())?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(body).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| "no HTTP status line".to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| "timeout".to_string())?
}

fn sub_json(app: &App, s: &Subscription) -> String {
    let uri = format!(
        "{}/api/v1/{}/webhooks/WebhookSubscriptions(guid'{}')",
        app.base_url, s.division, s.id
    );
    let mut o = String::from("{\"__metadata\":{\"uri\":");
    write_json_str(&mut o, &uri);
    o.push_str(",\"type\":\"Exact.Web.Api.Models.WebhookSubscription\"},\"ID\":");
    write_json_str(&mut o, &s.id);
    o.push_str(",\"CallbackURL\":");
    write_json_str(&mut o, &s.callback);
    o.push_str(",\"ClientID\":");
    write_json_str(&mut o, &s.client);
    o.push_str(&format!(
        ",\"Created\":\"/Date({})/\",\"Creator\":\"6a3b1d5e-0000-4000-8000-00000000beef\",\"CreatorFullName\":\"Łukasz Nowak-Müller\",\"Description\":",
        s.created
    ));
    write_json_str(&mut o, &s.description);
    o.push_str(&format!(",\"Division\":{},\"Topic\":", s.division));
    write_json_str(&mut o, &s.topic);
    o.push('}');
    o
}

/// `…/webhooks/WebhookSubscriptions`: GET (this app's subscriptions), POST (with the
/// validation handshake), DELETE by key.
pub(crate) async fn handle(
    app: &Arc<App>,
    client: &str,
    division: i32,
    method: &axum::http::Method,
    key: Option<&str>,
    body: &[u8],
) -> Out {
    let now_local = super::clock::utc_to_dutch_local_ms(app.cfg.clock.now_ms());
    match (method.as_str(), key) {
        ("GET", None) => {
            let w = app.webhooks.lock().unwrap();
            let rows: Vec<String> = w
                .subs
                .iter()
                .filter(|s| s.client == client && s.division == division)
                .map(|s| sub_json(app, s))
                .collect();
            Out::new(
                200,
                JSON,
                format!("{{\"d\":{{\"results\":[{}]}}}}", rows.join(",")),
            )
        }
        ("POST", None) => {
            let v: serde_json::Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(_) => return exact_error(400, "The request body is not valid JSON."),
            };
            let callback = v["CallbackURL"].as_str().unwrap_or("").to_string();
            let topic = v["Topic"].as_str().unwrap_or("").to_string();
            if callback.is_empty() || topic.is_empty() {
                return exact_error(400, "CallbackURL and Topic are required.");
            }
            let dup = app.webhooks.lock().unwrap().subs.iter().any(|s| {
                s.client == client
                    && s.division == division
                    && s.callback == callback
                    && s.topic.eq_ignore_ascii_case(&topic)
            });
            if dup {
                return exact_error(500, "Gegeven bestaat reeds.");
            }
            // validation handshake: an empty POST must be answered with 2xx (§5)
            match http_post(&callback, b"").await {
                Ok(code) if (200..300).contains(&code) => {}
                Ok(code) => {
                    return exact_error(
                        500,
                        &format!("Invalid: Post to callback URL endpoint returns {code} An error occurred while sending the request."),
                    )
                }
                Err(_) => {
                    return exact_error(
                        500,
                        "Invalid: Post to callback URL endpoint returns 500 An error occurred while sending the request.",
                    )
                }
            }
            let mut w = app.webhooks.lock().unwrap();
            w.counter += 1;
            let a = mix4(app.cfg.seed, w.counter, 0x3eb, 1);
            let b = mix4(app.cfg.seed, w.counter, 0x3eb, 2);
            let sub = Subscription {
                id: super::gen::format_guid(a, b),
                client: client.to_string(),
                division,
                callback,
                topic,
                description: v["Description"].as_str().unwrap_or("").to_string(),
                created: now_local,
            };
            let out = format!("{{\"d\":{}}}", sub_json(app, &sub));
            w.subs.push(sub);
            Out::new(201, JSON, out)
        }
        ("DELETE", Some(k)) => {
            let id = k
                .trim()
                .trim_start_matches("guid'")
                .trim_end_matches('\'')
                .to_ascii_lowercase();
            let mut w = app.webhooks.lock().unwrap();
            let before = w.subs.len();
            w.subs
                .retain(|s| !(s.id == id && s.client == client && s.division == division));
            if w.subs.len() == before {
                exact_error(404, "Resource not found")
            } else {
                Out::new(204, JSON, "")
            }
        }
        ("PUT", _) | ("PATCH", _) | ("MERGE", _) => {
            exact_error(400, "You're not allowed to Update() a webhook")
        }
        _ => exact_error(405, "Method not allowed"),
    }
}

/// Sends deliveries for a change of `set_name` in `division` to every matching subscription
/// (in the background; results are counted in the statistics).
pub(crate) fn notify(app: &Arc<App>, division: i32, set_name: &str, action: &str, key: &str) {
    let subs: Vec<Subscription> = app
        .webhooks
        .lock()
        .unwrap()
        .subs
        .iter()
        .filter(|s| s.division == division && s.topic.eq_ignore_ascii_case(set_name))
        .cloned()
        .collect();
    if subs.is_empty() {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    // The regular endpoint of the topic (e.g. crm/Accounts), not bulk/ or sync/.
    let path = app
        .catalog
        .entities
        .values()
        .filter(|e| e.set_name.eq_ignore_ascii_case(set_name))
        .min_by_key(|e| (e.kind != super::catalog::Kind::Regular, e.path.len()))
        .map(|e| {
            let doc = e.doc_file.trim_end_matches(".xml").replace('.', "/");
            format!("{doc}/{}", e.set_name)
        })
        .unwrap_or_else(|| set_name.to_string());
    let local = super::clock::utc_to_dutch_local_ms(app.cfg.clock.now_ms());
    let created = chrono::DateTime::from_timestamp_millis(local)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    for s in subs {
        let mut content = String::from("{\"Topic\":");
        write_json_str(&mut content, &s.topic);
        content.push_str(",\"ClientId\":");
        write_json_str(&mut content, &s.client);
        content.push_str(&format!(",\"Division\":{division},\"Action\":"));
        write_json_str(&mut content, action);
        content.push_str(",\"Key\":");
        write_json_str(&mut content, key);
        content.push_str(",\"ExactOnlineEndpoint\":");
        write_json_str(
            &mut content,
            &format!("{}/api/v1/{division}/{path}(guid'{key}')", app.base_url),
        );
        content.push_str(",\"EventCreatedOn\":");
        write_json_str(&mut content, &created);
        content.push('}');
        let body = format!(
            "{{\"Content\":{content},\"HashCode\":\"{}\"}}",
            hash_code(&app.cfg.webhook_secret, &content)
        );
        let app = app.clone();
        rt.spawn(async move {
            let ok = matches!(http_post(&s.callback, body.as_bytes()).await, Ok(c) if (200..300).contains(&c));
            let mut st = app.stats.lock().unwrap();
            if ok {
                st.webhooks_delivered += 1;
            } else {
                st.webhooks_failed += 1;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_upper_hex_hmac_sha256() {
        // RFC 4231 test case 2
        assert_eq!(
            hash_code("Jefe", "what do ya want for nothing?"),
            "5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843"
        );
    }
}
