//! One page of a collection response and the links between pages (exact-online.md §2.2–2.3;
//! OData V4 JSON Format §4.5.5 / §11.3 `@odata.nextLink`).
//!
//! The envelope is deserialized straight into `Vec<T>`: a page costs its body plus its rows,
//! both dropped before the next page is requested.

use super::error::ClientError;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

#[derive(Deserialize)]
#[serde(untagged)]
enum CountValue {
    N(u64),
    S(String),
}

impl CountValue {
    fn get(&self) -> Option<u64> {
        match self {
            CountValue::N(n) => Some(*n),
            CountValue::S(s) => s.trim().parse().ok(),
        }
    }
}

/// V2 (and V3 verbose): `{"d": {"results": [...], "__next": "...", "__count": "N"}}`.
#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct VerboseBody<T> {
    results: Vec<T>,
    #[serde(rename = "__next")]
    next: Option<String>,
    #[serde(rename = "__count")]
    count: Option<CountValue>,
}

#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct Envelope<T> {
    d: Option<VerboseBody<T>>,
    /// V4 and V3 JSON light.
    value: Option<Vec<T>>,
    #[serde(rename = "@odata.nextLink")]
    next_v4: Option<String>,
    #[serde(rename = "odata.nextLink")]
    next_v3: Option<String>,
    #[serde(rename = "@odata.count")]
    count_v4: Option<CountValue>,
    #[serde(rename = "odata.count")]
    count_v3: Option<CountValue>,
}

/// The rows of one page, its next link as written and the total count if asked for.
pub(crate) struct Page<T> {
    pub rows: Vec<T>,
    pub next: Option<String>,
    pub count: Option<u64>,
}

pub(crate) fn parse_page<T: DeserializeOwned>(
    url: &str,
    body: &[u8],
) -> Result<Page<T>, ClientError> {
    // UTF-8 checked once for the whole body, instead of string by string (serde_json's byte
    // reader checks every string it reads); a body that is not UTF-8 (or ends inside a
    // character) goes to the byte reader, which reports where.
    let env: Envelope<T> = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
    .map_err(|e| super::error::json_error(url, body, &e))?;
    if let Some(d) = env.d {
        return Ok(Page {
            rows: d.results,
            next: d.next,
            count: d.count.and_then(|c| c.get()),
        });
    }
    if let Some(v) = env.value {
        return Ok(Page {
            rows: v,
            next: env.next_v4.or(env.next_v3),
            count: env.count_v4.or(env.count_v3).and_then(|c| c.get()),
        });
    }
    Err(ClientError::InvalidJson {
        url: url.to_string(),
        offset: 0,
        detail: "neither `d.results` (OData V2) nor `value` (OData V4) in the response".into(),
        syntax: false,
    })
}

fn is_loopback(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Resolves a next link against the request URL and checks it stays in the service: same
/// scheme and port, same host (or both loopback: a server that calls itself `localhost` where
/// we called `127.0.0.1`; the link is then rewritten to our host), and a path below the
/// service root.
pub(crate) fn resolve_next(
    request: &Url,
    link: &str,
    service_root: &Url,
) -> Result<Url, ClientError> {
    let outside = || ClientError::NextLinkOutsideService {
        link: link.to_string(),
        service: service_root.to_string(),
    };
    let mut next = request.join(link).map_err(|_| outside())?;
    if next.scheme() != service_root.scheme()
        || next.port_or_known_default() != service_root.port_or_known_default()
    {
        return Err(outside());
    }
    let same_host = next.host_str().map(str::to_ascii_lowercase)
        == service_root.host_str().map(str::to_ascii_lowercase);
    if !same_host {
        if is_loopback(next.host()) && is_loopback(service_root.host()) {
            next.set_host(service_root.host_str())
                .map_err(|_| outside())?;
        } else {
            return Err(outside());
        }
    }
    let root = service_root.path();
    let root_dir = if root.ends_with('/') {
        root.to_string()
    } else {
        format!("{root}/")
    };
    if !(next.path() == root || next.path().starts_with(&root_dir)) || next.path().contains("/../")
    {
        return Err(outside());
    }
    next.set_fragment(None);
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        let p: Page<serde_json::Value> = parse_page(
            "u",
            br#"{"d":{"results":[{"a":1}],"__next":"http://x/n","__count":"7"}}"#,
        )
        .unwrap();
        assert_eq!(
            (p.rows.len(), p.next.as_deref(), p.count),
            (1, Some("http://x/n"), Some(7))
        );
        let p: Page<serde_json::Value> = parse_page(
            "u",
            br#"{"@odata.count":3,"value":[],"@odata.nextLink":"Orders?$skiptoken=2"}"#,
        )
        .unwrap();
        assert_eq!(
            (p.rows.len(), p.next.as_deref(), p.count),
            (0, Some("Orders?$skiptoken=2"), Some(3))
        );
        assert!(parse_page::<serde_json::Value>("u", b"{}").is_err());
    }

    #[test]
    fn next_links() {
        let root = Url::parse("http://127.0.0.1:8080/api/v1/").unwrap();
        let req = Url::parse("http://127.0.0.1:8080/api/v1/1/crm/Accounts?$select=ID").unwrap();
        let n = resolve_next(
            &req,
            "http://localhost:8080/api/v1/1/crm/Accounts?$skiptoken=x",
            &root,
        )
        .unwrap();
        assert_eq!(
            n.as_str(),
            "http://127.0.0.1:8080/api/v1/1/crm/Accounts?$skiptoken=x"
        );
        assert!(resolve_next(
            &req,
            "http://evil.example:8080/api/v1/1/crm/Accounts",
            &root
        )
        .is_err());
        assert!(resolve_next(&req, "http://127.0.0.1:8081/api/v1/1/crm/Accounts", &root).is_err());
        assert!(resolve_next(&req, "/other/path", &root).is_err());
        assert_eq!(
            resolve_next(&req, "Accounts?$skiptoken=2", &root)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/api/v1/1/crm/Accounts?$skiptoken=2"
        );
    }
}
