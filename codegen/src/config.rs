//! A service's configuration in `metadata-cache/<service>/`: `config.json` (the entity selection,
//! in the format of the production Exact Online integration, accepted verbatim) and `service.toml`
//! (where the service lives, how to log in, and code-generation overrides).
//! The contract is `shared/design/config.md`.

use crate::edm_types::RustType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: error: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: error: entity '{entity}': {message}")]
    Entity {
        path: PathBuf,
        entity: String,
        message: String,
    },
    #[error("{path}: error: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// One entry of `config.json`. Unknown keys are an error naming the key and the entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityConfig {
    /// Path under the service root; a leading `/` is allowed and ignored.
    pub endpoint: String,
    /// Default: true for services with divisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensure_division_column: Option<bool>,
    #[serde(default)]
    pub skip: bool,
    #[serde(default = "yes")]
    pub check_count: bool,
    #[serde(default)]
    pub one_division_only: bool,
    #[serde(default, rename = "webhookTopics")]
    pub webhook_topics: Vec<String>,
    #[serde(default, rename = "dependsOn")]
    pub depends_on: Vec<String>,
    /// Extension: fetch and store only these properties (wire names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Vec<String>>,
    /// Extension: the key properties of an entity whose `$metadata` declares none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Vec<String>>,
    /// Extension: the cursor property for incremental fetching (`Modified`, `Timestamp`), or
    /// `false` to always fetch everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<serde_json::Value>,
    /// Extension: table name override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Extension: page with `$top`/`$skip` (this many rows a page) when the service sends no
    /// next link (servers that cap their answers silently).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_paging: Option<u64>,
    /// Extension: when the scale-out scheduler enqueues this entity (`odatasync schedule --due`,
    /// `odatasync worker --schedule`): a standard 5-field cron expression (minute hour
    /// day-of-month month day-of-week) evaluated in UTC, or `@hourly`, `@daily`, `@weekly`,
    /// `@monthly`, `@yearly`. Checked by [`EntitySelection::parse`]; it changes no generated code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

fn yes() -> bool {
    true
}

impl EntityConfig {
    /// The endpoint without a leading `/`.
    pub fn path(&self) -> &str {
        self.endpoint.trim_start_matches('/')
    }
}

/// The cron dialect of `schedule`: five fields (no seconds, no year), POSIX/Vixie semantics
/// (a day-of-month and a day-of-week both restricted match either), the `@` nicknames.
/// `odatasync` evaluates it with the same parser settings.
fn check_schedule(expr: &str) -> Result<(), String> {
    use croner::parser::{CronParser, Seconds, Year};
    if expr.trim().is_empty() {
        return Err("'schedule' is empty (expected a 5-field cron expression in UTC such as \"*/15 * * * *\", or @hourly / @daily)".into());
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "'schedule' = \"{expr}\" is not a cron expression: {e} (expected 5 fields, minute hour day-of-month month day-of-week, in UTC, e.g. \"*/15 * * * *\" or \"30 2 * * 1-5\"; or @hourly, @daily, @weekly, @monthly, @yearly)"
            )
        })
}

/// `config.json`: entity name → entry, sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntitySelection {
    pub entities: BTreeMap<String, EntityConfig>,
}

const ALLOWED_KEYS: &str = "endpoint, ensure_division_column, skip, check_count, one_division_only, webhookTopics, dependsOn, select, key, incremental, table, skip_paging, schedule";

impl EntitySelection {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
                path: path.to_path_buf(),
                line: e.line(),
                column: e.column(),
                message: format!("{e}; config.json must be an object of entity name → settings"),
            })?;
        let mut entities = BTreeMap::new();
        for (name, v) in raw {
            let cfg: EntityConfig = serde_json::from_value(v).map_err(|e| ConfigError::Entity {
                path: path.to_path_buf(),
                entity: name.clone(),
                message: format!("{e} (allowed keys: {ALLOWED_KEYS})"),
            })?;
            if cfg.path().is_empty() {
                return Err(ConfigError::Entity {
                    path: path.to_path_buf(),
                    entity: name,
                    message: "'endpoint' is empty".into(),
                });
            }
            if let Some(expr) = &cfg.schedule {
                check_schedule(expr).map_err(|message| ConfigError::Entity {
                    path: path.to_path_buf(),
                    entity: name.clone(),
                    message,
                })?;
            }
            entities.insert(name, cfg);
        }
        let sel = EntitySelection { entities };
        sel.run_order().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(sel)
    }

    /// A topological order of `dependsOn` (ties by name). A cycle or an unknown name is an error.
    pub fn run_order(&self) -> Result<Vec<String>, String> {
        for (name, e) in &self.entities {
            for d in &e.depends_on {
                if !self.entities.contains_key(d) {
                    return Err(format!(
                        "entity '{name}': dependsOn names '{d}', which is not an entity of this config.json"
                    ));
                }
            }
        }
        let mut done: Vec<String> = Vec::new();
        let mut remaining: BTreeMap<&String, &EntityConfig> = self.entities.iter().collect();
        while !remaining.is_empty() {
            let ready: Vec<String> = remaining
                .iter()
                .filter(|(_, e)| e.depends_on.iter().all(|d| done.contains(d)))
                .map(|(n, _)| (*n).clone())
                .collect();
            if ready.is_empty() {
                let names: Vec<&str> = remaining.keys().map(|s| s.as_str()).collect();
                return Err(format!("dependsOn has a cycle among: {}", names.join(", ")));
            }
            for r in ready {
                remaining.remove(&r);
                done.push(r);
            }
        }
        Ok(done)
    }
}

/// `service.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceToml {
    /// Service root; `{division}` for services with divisions.
    #[serde(default)]
    pub base_url: String,
    /// `exact-oauth2` | `bearer` | `basic` | `none`.
    #[serde(default = "default_auth")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divisions: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    /// Edm type → Rust type overrides, e.g. `"Edm.Decimal" = { rust = "f64", adapter = "::odata_runtime::wire::Lenient" }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub types: BTreeMap<String, RustType>,
    /// `Namespace.Type/Property` → Rust type overrides.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, RustType>,
    /// SQL type overrides per backend and column kind:
    /// `[sql.postgres]` `Duration = "INTERVAL"`, `[sql.sqlite]` `Decimal = "NUMERIC"`.
    #[serde(default, skip_serializing_if = "SqlOverrides::is_empty")]
    pub sql: SqlOverrides,
    /// Pinned Rust names: `"Namespace.Type" = "RustType"`, `"Namespace.Type/Property" = "field"`.
    /// They replace what the naming pipeline would derive (collisions are still resolved).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rename: BTreeMap<String, String>,
}

/// `[sql.sqlite]` and `[sql.postgres]` of service.toml.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlOverrides {
    #[serde(default)]
    pub sqlite: BTreeMap<crate::sql::ColumnKind, String>,
    #[serde(default)]
    pub postgres: BTreeMap<crate::sql::ColumnKind, String>,
}

impl SqlOverrides {
    pub fn is_empty(&self) -> bool {
        self.sqlite.is_empty() && self.postgres.is_empty()
    }
}

fn default_auth() -> String {
    "none".into()
}

impl ServiceToml {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let st: ServiceToml = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        if !matches!(
            st.auth.as_str(),
            "exact-oauth2" | "bearer" | "basic" | "none"
        ) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "auth = \"{}\" is not one of exact-oauth2, bearer, basic, none",
                    st.auth
                ),
            });
        }
        for (k, v) in st.types.iter().chain(st.properties.iter()) {
            if syn::parse_str::<syn::Type>(&v.rust).is_err() {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "override for '{k}': rust = \"{}\" is not a Rust type",
                        v.rust
                    ),
                });
            }
            if let Some(a) = &v.adapter {
                if syn::parse_str::<syn::Path>(a).is_err() {
                    return Err(ConfigError::Invalid {
                        path: path.to_path_buf(),
                        message: format!(
                            "override for '{k}': adapter = \"{a}\" is not a Rust path"
                        ),
                    });
                }
            }
        }
        for (k, v) in &st.rename {
            if !crate::naming::is_valid_ident(v) {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: format!("[rename] '{k}' = \"{v}\" is not a Rust identifier"),
                });
            }
        }
        Ok(st)
    }

    pub fn has_divisions(&self) -> bool {
        self.base_url.contains("{division}")
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_format_is_accepted_verbatim() {
        let text = r#"{
  "Divisions":  { "endpoint": "system/Divisions", "ensure_division_column": false, "skip": true, "check_count": false },
  "GLAccounts": { "endpoint": "/financial/GLAccounts", "webhookTopics": ["GLAccounts"] },
  "Accounts": { "endpoint": "crm/Accounts" },
  "TransactionLines": { "endpoint": "financialtransaction/TransactionLines", "dependsOn": ["GLAccounts", "Accounts"] }
}"#;
        let s = EntitySelection::parse(Path::new("config.json"), text).unwrap();
        assert_eq!(s.entities["GLAccounts"].path(), "financial/GLAccounts");
        assert!(s.entities["GLAccounts"].check_count);
        assert!(!s.entities["Divisions"].check_count);
        let order = s.run_order().unwrap();
        let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
        assert!(pos("TransactionLines") > pos("GLAccounts"));
        assert!(pos("TransactionLines") > pos("Accounts"));
    }

    #[test]
    fn unknown_keys_cycles_and_unknown_dependencies_are_errors() {
        let e = EntitySelection::parse(
            Path::new("c.json"),
            r#"{"A": {"endpoint": "x/A", "skipp": true}}"#,
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("entity 'A'") && msg.contains("skipp"), "{msg}");
        let e = EntitySelection::parse(Path::new("c.json"), r#"{"A": {"endpoint": "x/A", "dependsOn": ["B"]}, "B": {"endpoint": "x/B", "dependsOn": ["A"]}}"#).unwrap_err();
        assert!(e.to_string().contains("cycle among: A, B"), "{e}");
        let e = EntitySelection::parse(
            Path::new("c.json"),
            r#"{"A": {"endpoint": "x/A", "dependsOn": ["Nope"]}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("'Nope'"), "{e}");
        let e = EntitySelection::parse(Path::new("c.json"), "{\n  \"A\": [1,\n}").unwrap_err();
        assert!(e.to_string().starts_with("c.json:3:1: error:"), "{e}");
    }

    #[test]
    fn schedule_is_a_five_field_cron_expression() {
        let s = EntitySelection::parse(
            Path::new("config.json"),
            r#"{"A": {"endpoint": "x/A", "schedule": "*/15 * * * *"}, "B": {"endpoint": "x/B", "schedule": "@daily"}, "C": {"endpoint": "x/C"}}"#,
        )
        .unwrap();
        assert_eq!(s.entities["A"].schedule.as_deref(), Some("*/15 * * * *"));
        assert_eq!(s.entities["B"].schedule.as_deref(), Some("@daily"));
        assert_eq!(s.entities["C"].schedule, None);
        // No `schedule` key written back for entities without one.
        let v = serde_json::to_value(&s.entities["C"]).unwrap();
        assert!(v.get("schedule").is_none(), "{v}");
        for (bad, what) in [
            ("*/15 * * *", "4 fields"),
            ("0 */15 * * * *", "6 fields (seconds)"),
            ("61 * * * *", "minute out of range"),
            ("0 0 * * * 2027", "a year"),
            ("every hour", "words"),
            ("", "empty"),
        ] {
            let text = format!(r#"{{"Journals": {{"endpoint": "x/J", "schedule": "{bad}"}}}}"#);
            let e =
                EntitySelection::parse(Path::new("meta/exact/config.json"), &text).expect_err(what);
            assert!(
                matches!(&e, ConfigError::Entity { entity, .. } if entity == "Journals"),
                "{what}: {e:?}"
            );
            let msg = e.to_string();
            assert!(
                msg.starts_with("meta/exact/config.json: error: entity 'Journals': 'schedule'")
                    && msg.contains("*/15 * * * *"),
                "{what}: {msg}"
            );
        }
        let e = EntitySelection::parse(
            Path::new("c.json"),
            r#"{"A": {"endpoint": "x/A", "schedule": 15}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("entity 'A'"), "{e}");
    }

    #[test]
    fn service_toml() {
        let s = ServiceToml::parse(
            Path::new("service.toml"),
            "base_url = \"https://start.exactonline.nl/api/v1/{division}/\"\nauth = \"exact-oauth2\"\n[types]\n\"Edm.Decimal\" = { rust = \"f64\", adapter = \"::odata_runtime::wire::Lenient\" }\n",
        )
        .unwrap();
        assert!(s.has_divisions());
        assert_eq!(s.types["Edm.Decimal"].rust, "f64");
        let s = ServiceToml::parse(
            Path::new("service.toml"),
            "[sql.postgres]\nDuration = \"INTERVAL\"\n[sql.sqlite]\nDecimal = \"NUMERIC\"\n",
        )
        .unwrap();
        let t = crate::sql::SqlTypes::default().with_overrides(Some(&s.sql));
        use crate::sql::{Backend, ColumnKind};
        assert_eq!(
            t.column_type(Backend::Postgres, ColumnKind::Duration, None, None),
            "INTERVAL"
        );
        assert_eq!(
            t.column_type(Backend::Sqlite, ColumnKind::Decimal, None, None),
            "NUMERIC"
        );
        let e = ServiceToml::parse(
            Path::new("service.toml"),
            "[sql.postgres]\nMoney = \"MONEY\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("service.toml:2:"), "{e}");
        let e = ServiceToml::parse(Path::new("service.toml"), "auth = \"oauth\"\n").unwrap_err();
        assert!(e.to_string().contains("not one of"), "{e}");
        let e = ServiceToml::parse(Path::new("service.toml"), "base_url = 1\n").unwrap_err();
        assert!(e.to_string().starts_with("service.toml:1:"), "{e}");
        let e = ServiceToml::parse(
            Path::new("service.toml"),
            "[types]\n\"Edm.X\" = { rust = \"not a type!\" }\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a Rust type"), "{e}");
    }
}
