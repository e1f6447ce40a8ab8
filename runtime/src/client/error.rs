//! [`ClientError`]: everything a request can end in, with messages that say what happened
//! and where (exact-online.md §2.6 for the service's error shapes). Messages never contain a
//! token: URLs carry none (tokens travel in the `Authorization` header) and token-endpoint
//! bodies are reduced to their `error`/`error_description` fields.

/// An error of the HTTP client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The service answered with an error status; `message` is the service's own text
    /// (Exact: `error.message.value`, §2.6; V4: `error.message`; OAuth2: `error_description`)
    /// followed by the `Reason` header when there is one.
    #[error("{url}: HTTP {status}: {message}")]
    Http {
        status: u16,
        url: String,
        message: String,
    },
    /// An HTML page where JSON was expected (Akamai edge pages, maintenance pages, §2.6).
    #[error("{url}: the service answered with an HTML page (status {status}) where JSON was expected: {title}")]
    Html {
        status: u16,
        url: String,
        title: String,
    },
    /// The body ended before the JSON did (a cut connection).
    #[error("{url}: the JSON response is truncated: it ends at byte {offset} ({detail})")]
    Truncated {
        url: String,
        offset: usize,
        detail: String,
    },
    /// The body is not valid JSON, or not the expected shape.
    #[error("{url}: invalid JSON at byte {offset}: {detail}")]
    InvalidJson {
        url: String,
        offset: usize,
        detail: String,
        /// A syntax error (retried) rather than a well-formed document of the wrong shape.
        syntax: bool,
    },
    /// Connecting, sending or reading the body failed (reset, refused, timeout).
    #[error("{url}: connection error: {detail}")]
    Connection { url: String, detail: String },
    /// A next link that points outside the service (another host, scheme, port or path).
    #[error("the next link {link} leaves the service {service}; refusing to follow it")]
    NextLinkOutsideService { link: String, service: String },
    /// The rate limit (§4) cannot be waited out within the configured bound.
    #[error("{url}: rate limit: {detail}")]
    RateLimited { url: String, detail: String },
    /// The endpoint has had too many 400/401/403/404 answers this hour (§4.4).
    #[error("error budget: {errors} errors (HTTP 400/401/403/404) on {endpoint} in division {division} within the last hour; stopping this endpoint before it reaches the service's limit of 10 errors per hour, which blocks the app for an hour (exact-online.md §4.4); it may be called again in {retry_in_s} s")]
    ErrorBudget {
        endpoint: String,
        division: String,
        errors: usize,
        retry_in_s: i64,
    },
    /// Authentication failed (no tokens, rejected refresh, rotated refresh token, §3).
    #[error("authentication: {0}")]
    Auth(String),
    /// The token store failed.
    #[error("token store: {0}")]
    TokenStore(String),
    /// A URL could not be built.
    #[error("invalid URL {url}: {detail}")]
    Url { url: String, detail: String },
    /// A retryable error persisted through every attempt.
    #[error("{last} (gave up after {attempts} attempts)")]
    RetriesExhausted {
        attempts: u32,
        last: Box<ClientError>,
    },
    /// A response the client cannot use (e.g. a `$count` that is not a number).
    #[error("{url}: unexpected response: {detail}")]
    Unexpected { url: String, detail: String },
}

impl ClientError {
    /// The HTTP status, where the error is an answer of the service.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } | ClientError::Html { status, .. } => Some(*status),
            ClientError::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    /// Whether another attempt may succeed: 5xx, 408, HTML pages, truncated or garbled bodies
    /// and connection errors (§4.5: "retry with exponentially growing intervals and a maximum
    /// number of retries").
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Http { status, .. } => *status >= 500 || *status == 408,
            // An HTML page instead of JSON: edge/maintenance pages (2xx, 5xx, 408) are
            // retried; a 4xx page is an answer (and counts against the error budget, §4.4).
            ClientError::Html { status, .. } => {
                *status >= 500 || *status == 408 || (200..300).contains(status)
            }
            ClientError::Truncated { .. } | ClientError::Connection { .. } => true,
            ClientError::InvalidJson { syntax, .. } => *syntax,
            _ => false,
        }
    }
}

/// Byte offset of a serde_json error position (1-based line and column) in `body`.
pub(crate) fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    if line == 0 {
        return 0;
    }
    let mut start = 0;
    let mut l = 1;
    while l < line {
        match body[start..].iter().position(|&b| b == b'\n') {
            Some(p) => start += p + 1,
            None => break,
        }
        l += 1;
    }
    (start + column).min(body.len())
}

/// Turns a serde_json error on `body` into a [`ClientError`].
pub(crate) fn json_error(url: &str, body: &[u8], e: &serde_json::Error) -> ClientError {
    let offset = byte_offset(body, e.line(), e.column());
    let detail = e.to_string();
    match e.classify() {
        serde_json::error::Category::Eof => ClientError::Truncated {
            url: url.to_string(),
            offset,
            detail,
        },
        serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
            ClientError::InvalidJson {
                url: url.to_string(),
                offset,
                detail,
                syntax: true,
            }
        }
        serde_json::error::Category::Data => ClientError::InvalidJson {
            url: url.to_string(),
            offset,
            detail,
            syntax: false,
        },
    }
}

/// Whether a response is an HTML page (by content type or by its first bytes).
pub(crate) fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
    if content_type.is_some_and(|c| c.to_ascii_lowercase().contains("html")) {
        return true;
    }
    let start: Vec<u8> = body
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(15)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    start.starts_with(b"<!doctype html") || start.starts_with(b"<html")
}

/// The `<title>` (or first `<h1>`) of an HTML page, whitespace collapsed, at most 200 chars.
pub(crate) fn html_title(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]);
    let lower = text.to_ascii_lowercase();
    for (open, close) in [("<title", "</title>"), ("<h1", "</h1>")] {
        if let Some(i) = lower.find(open) {
            if let Some(gt) = lower[i..].find('>') {
                let from = i + gt + 1;
                if let Some(end) = lower[from..].find(close) {
                    let t = collapse(&text[from..from + end]);
                    if !t.is_empty() {
                        return t;
                    }
                }
            }
        }
    }
    "(no title)".to_string()
}

fn collapse(s: &str) -> String {
    let t: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    t.chars().take(200).collect()
}

/// The service's error text from a JSON error body: Exact/V2 `{"error":{"message":{"value"}}}`,
/// V4 `{"error":{"message":"…"}}`, OAuth2 `{"error":"…","error_description":"…"}`; otherwise
/// the start of the body as text.
pub(crate) fn service_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let e = &v["error"];
        if let Some(s) = e["message"]["value"].as_str() {
            return collapse(s);
        }
        if let Some(s) = e["message"].as_str() {
            return collapse(s);
        }
        if let Some(d) = v["error_description"].as_str() {
            let code = e.as_str().unwrap_or("");
            return collapse(&format!("{code}: {d}"));
        }
        if let Some(s) = e.as_str() {
            return collapse(s);
        }
    }
    let t = collapse(&String::from_utf8_lossy(&body[..body.len().min(1024)]));
    if t.is_empty() {
        "(empty body)".into()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_titles_messages() {
        assert_eq!(byte_offset(b"ab\ncd", 2, 1), 4);
        assert_eq!(byte_offset(b"abc", 1, 3), 3);
        assert_eq!(
            html_title(b"<html><head><TITLE>\n Service  Unavailable </TITLE>"),
            "Service Unavailable"
        );
        assert_eq!(html_title(b"<html><body><h1>408</h1>"), "408");
        assert!(is_html(None, b"  <!DOCTYPE html><html>"));
        assert!(!is_html(Some("application/json"), b"{}"));
        assert_eq!(
            service_message(br#"{"error":{"code":"","message":{"lang":"","value":"Forbidden"}}}"#),
            "Forbidden"
        );
        assert_eq!(
            service_message(
                br#"{"error":"unauthorized_client","error_description":"Old refresh token used."}"#
            ),
            "unauthorized_client: Old refresh token used."
        );
        let e =
            serde_json::from_slice::<serde_json::Value>(b"{\"d\":{\"results\":[1,").unwrap_err();
        assert!(matches!(
            json_error("u", b"{\"d\":{\"results\":[1,", &e),
            ClientError::Truncated { offset: 19, .. }
        ));
    }
}
