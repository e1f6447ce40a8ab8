//! A service as `odatasync` sees it: its `metadata-cache/<service>/` folder (`service.toml`,
//! `config.json`) and the tables the `generated` crate was built with.

use crate::error::Error;
use odata_codegen::config::{EntityConfig, EntitySelection, ServiceToml};
use odata_runtime::TableInfo;
use std::path::{Path, PathBuf};

/// Environment variables that override `service.toml` (tests, proxies, other countries).
pub const ENV_BASE_URL: &str = "ODATASYNC_BASE_URL";
pub const ENV_TOKEN_URL: &str = "ODATASYNC_TOKEN_URL";
pub const ENV_METADATA_CACHE: &str = "ODATASYNC_METADATA_CACHE";

/// One service: where it lives, how to log in, which entities to sync, and its tables.
#[derive(Debug, Clone)]
pub struct Service {
    /// Folder name under `metadata-cache/` (`exact`).
    pub name: String,
    pub dir: PathBuf,
    pub toml: ServiceToml,
    pub config: EntitySelection,
    /// The tables of the `generated` crate for this service.
    pub tables: &'static [TableInfo],
}

/// The `metadata-cache/` folder: `--metadata-cache`, else `$ODATASYNC_METADATA_CACHE`, else
/// `./metadata-cache` when it exists, else the one this binary was built from.
pub fn default_cache_dir() -> PathBuf {
    if let Ok(p) = std::env::var(ENV_METADATA_CACHE) {
        return PathBuf::from(p);
    }
    let local = PathBuf::from("metadata-cache");
    if local.join("exact").is_dir() || local.is_dir() && std::fs::read_dir(&local).is_ok() {
        return local;
    }
    let built = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../metadata-cache"));
    built.canonicalize().unwrap_or(built)
}

impl Service {
    /// Loads `cache/<name>/service.toml` and `config.json` and checks them against the tables
    /// this binary was built with.
    pub fn load(cache: &Path, name: &str) -> Result<Service, Error> {
        let dir = cache.join(name);
        if !dir.is_dir() {
            let known = generated::SERVICES.join(", ");
            return Err(Error::Usage(format!(
                "no service '{name}' in {} (services built into this binary: {known})",
                cache.display()
            )));
        }
        let tables = generated::tables(name).ok_or_else(|| {
            Error::Config(format!(
                "{}: this binary was built without the service '{name}'; run `cargo build` so that generated/ picks it up",
                dir.display()
            ))
        })?;
        let toml_path = dir.join("service.toml");
        let toml: ServiceToml = match std::fs::read_to_string(&toml_path) {
            Ok(text) => toml_parse(&toml_path, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ServiceToml::default(),
            Err(e) => return Err(Error::Config(format!("{}: {e}", toml_path.display()))),
        };
        let config_path = dir.join("config.json");
        let config = if config_path.exists() {
            EntitySelection::load(&config_path).map_err(|e| Error::Config(e.to_string()))?
        } else {
            // No config.json: every table of the service, by its entity name.
            let mut sel = EntitySelection::default();
            for t in tables {
                sel.entities.insert(
                    t.entity.to_string(),
                    serde_json::from_value(serde_json::json!({ "endpoint": t.entity_set }))
                        .map_err(|e| Error::Config(e.to_string()))?,
                );
            }
            sel
        };
        let svc = Service {
            name: name.to_string(),
            dir,
            toml,
            config,
            tables,
        };
        for name in svc.config.entities.keys() {
            if svc.table(name).is_none() {
                return Err(Error::Config(format!(
                    "{}: entity '{name}' has no generated table in this binary: config.json changed since the last build; run `cargo build` (it regenerates generated/ and writes a migration)",
                    config_path.display()
                )));
            }
        }
        Ok(svc)
    }

    /// The service root (`$ODATASYNC_BASE_URL` overrides `service.toml`).
    pub fn base_url(&self) -> Result<String, Error> {
        let url = std::env::var(ENV_BASE_URL).unwrap_or_else(|_| self.toml.base_url.clone());
        if url.is_empty() {
            return Err(Error::Config(format!(
                "{}: base_url is not set (set it in service.toml or ${ENV_BASE_URL})",
                self.dir.join("service.toml").display()
            )));
        }
        Ok(url)
    }

    /// Whether the service has divisions (`{division}` in its base URL).
    pub fn has_divisions(&self) -> bool {
        self.base_url()
            .map(|u| u.contains("{division}"))
            .unwrap_or(false)
    }

    /// The OAuth2 token endpoint: `$ODATASYNC_TOKEN_URL`, `service.toml`'s `token_url`, or
    /// `/api/oauth2/token` on the base URL's host (exact-online.md §1.1, §3).
    pub fn token_url(&self) -> Result<String, Error> {
        if let Ok(u) = std::env::var(ENV_TOKEN_URL) {
            return Ok(u);
        }
        if let Some(u) = &self.toml.token_url {
            return Ok(u.clone());
        }
        let base = self.base_url()?;
        let u = url::Url::parse(&base.replace("{division}", "0"))
            .map_err(|e| Error::Config(format!("base_url {base:?}: {e}")))?;
        Ok(format!(
            "{}://{}/api/oauth2/token",
            u.scheme(),
            &u[url::Position::BeforeHost..url::Position::AfterPort]
        ))
    }

    /// The table of a config.json entity (by its selection name).
    pub fn table(&self, entity: &str) -> Option<&'static TableInfo> {
        self.tables.iter().find(|t| t.entity == entity)
    }

    pub fn entity(&self, name: &str) -> Option<&EntityConfig> {
        self.config.entities.get(name)
    }
}

fn toml_parse(path: &Path, text: &str) -> Result<ServiceToml, Error> {
    odata_codegen::config::ServiceToml::parse(path, text).map_err(|e| Error::Config(e.to_string()))
}
