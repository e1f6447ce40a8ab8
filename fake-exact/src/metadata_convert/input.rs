//! The scraped reference JSON (`exact-online-meta-data-tool` format): an object keyed by endpoint
//! name; each value has `endpoint`, `documentation` (URL), `scope`, `uri`, `supportedMethods`,
//! `example` and `properties[]` (`name`, `type`, `description`, `primaryKey`, `supportedMethods`).
//! Unknown fields are ignored so that later scrapes with extra fields still load.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole file. `BTreeMap`: endpoints are processed in a fixed order whatever the file order.
pub type RawReference = BTreeMap<String, RawEndpoint>;

#[derive(Debug, Clone, Deserialize)]
pub struct RawEndpoint {
    /// The endpoint name as the reference shows it (`GLAccounts`, `Financial/TransactionLines`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// URL of the reference page.
    #[serde(default)]
    pub documentation: Option<String>,
    /// OAuth scope text, e.g. `Financial generalledgers`.
    #[serde(default)]
    pub scope: Option<String>,
    /// `/api/v1/{division}/<service>/<Entity>` (or `/api/v1/current/Me`, `/api/v1/system/Users`).
    pub uri: String,
    /// HTTP methods: `get`, `post`, `put`, `delete` → supported.
    #[serde(default, rename = "supportedMethods")]
    pub supported_methods: BTreeMap<String, bool>,
    pub properties: Vec<RawProperty>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RawProperty {
    pub name: String,
    /// `Edm.*`, or the name of an expanded collection / nested type (a navigation property).
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, rename = "primaryKey")]
    pub primary_key: bool,
}

impl RawEndpoint {
    /// Supported methods in the conventional order, upper-case (`GET POST PUT DELETE`).
    pub fn methods(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in ["get", "post", "put", "delete"] {
            if self.supported_methods.get(m).copied().unwrap_or(false) {
                out.push(m.to_ascii_uppercase());
            }
        }
        for (m, on) in &self.supported_methods {
            if *on && !["get", "post", "put", "delete"].contains(&m.as_str()) {
                out.push(m.to_ascii_uppercase());
            }
        }
        out
    }
}
