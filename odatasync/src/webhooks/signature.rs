//! Exact's delivery format and its signature (exact-online.md §5):
//! `{"Content":{…},"HashCode":"<64 upper-case hex>"}` where the HashCode is
//! HMAC-SHA256(key = the app's webhook secret, message = the raw bytes of the Content value,
//! i.e. the substring between `{"Content":` and `,"HashCode":"`). The signature is checked on
//! the bytes as received, never on re-serialised JSON, and compared in constant time
//! (`hmac`'s `verify_slice`).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Why a body is not a correctly signed delivery (the receiver answers 401 to each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// Not `{"Content":…,"HashCode":"…"}` (a truncated body, another format).
    NotADelivery,
    /// The HashCode is not 64 upper-case hex digits.
    BadHashCode,
    /// The HashCode is not the HMAC of the Content with our secret (forged, altered, or
    /// signed with another secret).
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureError::NotADelivery => {
                "the body is not {\"Content\":…,\"HashCode\":\"…\"} (truncated or not a webhook delivery)"
            }
            SignatureError::BadHashCode => "the HashCode is not 64 upper-case hex digits",
            SignatureError::Mismatch => {
                "the HashCode does not match the Content (forged, altered, or another webhook secret)"
            }
        })
    }
}

const HEAD: &[u8] = b"{\"Content\":";
const MID: &[u8] = b",\"HashCode\":\"";
const TAIL: &[u8] = b"\"}";

/// Splits a raw delivery into (Content bytes, HashCode bytes), as PICQER's
/// `^{"Content":(.*),"HashCode":"(.*)"}$` does (the last `,"HashCode":"` ends the Content).
pub fn split(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let body = body.trim_ascii();
    let rest = body.strip_prefix(HEAD)?.strip_suffix(TAIL)?;
    let at = rest.windows(MID.len()).rposition(|w| w == MID)?;
    Some((&rest[..at], &rest[at + MID.len()..]))
}

/// The Content bytes of a delivery whose HashCode is right for `secret`.
pub fn verify<'a>(secret: &[u8], body: &'a [u8]) -> Result<&'a [u8], SignatureError> {
    let (content, hash) = split(body).ok_or(SignatureError::NotADelivery)?;
    if hash.len() != 64 || !hash.iter().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')) {
        return Err(SignatureError::BadHashCode);
    }
    let expected = hex::decode(hash).map_err(|_| SignatureError::BadHashCode)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(content);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)?;
    Ok(content)
}

/// The HashCode Exact sends for `content` (upper-case hex HMAC-SHA256).
pub fn hash_code(secret: &[u8], content: &[u8]) -> String {
    // HMAC takes keys of any length; new_from_slice cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(content);
    hex::encode_upper(mac.finalize().into_bytes())
}

/// A delivery as Exact sends it: `{"Content":<content>,"HashCode":"<hash_code>"}`.
pub fn delivery(secret: &[u8], content: &str) -> String {
    format!(
        "{{\"Content\":{content},\"HashCode\":\"{}\"}}",
        hash_code(secret, content.as_bytes())
    )
}

/// The id of an event: SHA-256 (lower-case hex) of its raw Content bytes, so a repeated
/// delivery of the same event is the same row.
pub fn event_id(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

/// What the receiver needs from a Content object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub topic: String,
    pub division: i64,
    /// `Create`, `Update` or `Delete` (any value is accepted and stored, §5).
    pub action: String,
    pub key: String,
    pub endpoint: Option<String>,
}

/// Reads the fields of a Content object (`Division` as a number or a numeric string).
pub fn parse_content(content: &[u8]) -> Result<Content, String> {
    let v: serde_json::Value =
        serde_json::from_slice(content).map_err(|e| format!("Content is not JSON: {e}"))?;
    let text = |name: &str| -> Result<String, String> {
        v.get(name)
            .and_then(|x| x.as_str())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("Content has no {name}"))
    };
    let division = match v.get("Division") {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| "Content has no numeric Division".to_string())?;
    Ok(Content {
        topic: text("Topic")?,
        division,
        action: text("Action")?,
        key: text("Key")?,
        endpoint: text("ExactOnlineEndpoint").ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real message quoted in exact-online.md §5 (Zorgportal), re-signed with a known key.
    const CONTENT: &str = r#"{"Topic":"BankEntries","ClientId":"2781096d-a179-445f-bbf3-7b7e8bf244ae","Division":3114772,"Action":"Update","Key":"a79d86b2-69c6-4ca7-a537-d9d27afcdaf5","ExactOnlineEndpoint":"https://start.exactonline.nl/api/v1/3114772/financialtransaction/BankEntries(guid'a79d86b2-69c6-4ca7-a537-d9d27afcdaf5')","EventCreatedOn":"2023-01-17T22:56:23.087"}"#;

    #[test]
    fn rfc4231_case_2_upper_hex() {
        assert_eq!(
            hash_code(b"Jefe", b"what do ya want for nothing?"),
            "5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843"
        );
    }

    #[test]
    fn verifies_the_raw_content_only() {
        let body = delivery(b"s3cret", CONTENT);
        assert_eq!(verify(b"s3cret", body.as_bytes()), Ok(CONTENT.as_bytes()));
        assert_eq!(
            verify(b"other", body.as_bytes()),
            Err(SignatureError::Mismatch)
        );
        // Re-serialised JSON (a space after a colon) no longer matches.
        let altered = body.replacen("\"Division\":3114772", "\"Division\": 3114772", 1);
        assert_eq!(
            verify(b"s3cret", altered.as_bytes()),
            Err(SignatureError::Mismatch)
        );
        // Lower-case hex is not what Exact sends.
        let lower = format!(
            "{{\"Content\":{CONTENT},\"HashCode\":\"{}\"}}",
            hash_code(b"s3cret", CONTENT.as_bytes()).to_lowercase()
        );
        assert_eq!(
            verify(b"s3cret", lower.as_bytes()),
            Err(SignatureError::BadHashCode)
        );
        assert_eq!(
            verify(b"s3cret", &body.as_bytes()[..body.len() - 10]),
            Err(SignatureError::NotADelivery)
        );
        assert_eq!(verify(b"s3cret", b""), Err(SignatureError::NotADelivery));
    }

    #[test]
    fn parses_the_fields() {
        let c = parse_content(CONTENT.as_bytes()).unwrap();
        assert_eq!(c.topic, "BankEntries");
        assert_eq!(c.division, 3114772);
        assert_eq!(c.action, "Update");
        assert_eq!(c.key, "a79d86b2-69c6-4ca7-a537-d9d27afcdaf5");
        assert_eq!(event_id(CONTENT.as_bytes()).len(), 64);
    }
}
