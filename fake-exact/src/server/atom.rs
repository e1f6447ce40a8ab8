//! Atom XML, Exact's default format when the request does not ask for JSON (§2.1): a feed of
//! entries with `m:properties`, `m:type` / `m:null` attributes and `link rel="next"`.

use super::gen::Val;

pub const ATOM: &str = "application/atom+xml;type=feed;charset=utf-8";
pub const ATOM_ENTRY: &str = "application/atom+xml;type=entry;charset=utf-8";
const NS: &str = "xmlns=\"http://www.w3.org/2005/Atom\" xmlns:d=\"http://schemas.microsoft.com/ado/2007/08/dataservices\" xmlns:m=\"http://schemas.microsoft.com/ado/2007/08/dataservices/metadata\"";

pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

fn updated(now_utc: i64) -> String {
    format!("{}Z", iso(now_utc))
}

pub fn feed_start(set_uri: &str, set_name: &str, now: i64) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><feed {NS}><title type=\"text\">{}</title><id>{}</id><updated>{}</updated><link rel=\"self\" title=\"{}\" href=\"{}\" />",
        escape(set_name),
        escape(set_uri),
        updated(now),
        escape(set_name),
        escape(set_name)
    )
}

/// Start of a single-entry document (the entry written next carries the namespaces).
pub fn entry_doc_start(_set_uri: &str) -> String {
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>".to_string()
}

/// Text and `m:null` of a value.
fn text(v: &Val) -> Option<String> {
    match v {
        Val::Null => None,
        Val::Str(s) => Some(escape(s)),
        Val::Int(n) | Val::Int64(n) => Some(n.to_string()),
        Val::Dbl(d) => Some(d.to_string()),
        Val::Bool(b) => Some(b.to_string()),
        Val::Date(ms) => Some(iso(*ms)),
        Val::Json(j) => match j {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => {
                if let Some(ms) = s
                    .strip_prefix("/Date(")
                    .and_then(|r| r.strip_suffix(")/"))
                    .and_then(|n| n.parse::<i64>().ok())
                {
                    Some(iso(ms))
                } else {
                    Some(escape(s))
                }
            }
            other => Some(escape(&other.to_string())),
        },
    }
}

pub fn entry(
    out: &mut String,
    uri: &str,
    type_name: &str,
    props: &[(&str, &str, Val)],
    navs: &[String],
    now: i64,
) {
    out.push_str(&format!(
        "<entry {NS}><id>{}</id><title type=\"text\" /><updated>{}</updated><author><name /></author><link rel=\"edit\" href=\"{}\" />",
        escape(uri),
        updated(now),
        escape(uri)
    ));
    for n in navs {
        out.push_str(&format!(
            "<link rel=\"http://schemas.microsoft.com/ado/2007/08/dataservices/related/{n}\" type=\"application/atom+xml;type=feed\" title=\"{n}\" href=\"{}/{n}\" />",
            escape(uri)
        ));
    }
    out.push_str(&format!(
        "<category term=\"{}\" scheme=\"http://schemas.microsoft.com/ado/2007/08/dataservices/scheme\" /><content type=\"application/xml\"><m:properties>",
        escape(type_name)
    ));
    for (name, edm, v) in props {
        let ty = if *edm == "Edm.String" {
            String::new()
        } else {
            format!(" m:type=\"{edm}\"")
        };
        match text(v) {
            None => out.push_str(&format!("<d:{name}{ty} m:null=\"true\" />")),
            Some(t) => out.push_str(&format!("<d:{name}{ty}>{t}</d:{name}>")),
        }
    }
    out.push_str("</m:properties></content></entry>");
}
