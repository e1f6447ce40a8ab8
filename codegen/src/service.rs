//! A service folder in `metadata-cache/`: its cached `$metadata` documents, `config.json` and
//! `service.toml` (contract: `shared/design/config.md`), turned into a [`Model`].

use crate::config::{ConfigError, EntitySelection, ServiceToml};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::edm_types::TypeMap;
use crate::model::selection::Selection;
use crate::model::{build_model, BuildOptions, Model};
use std::path::{Path, PathBuf};

/// A loaded service folder.
#[derive(Debug, Clone)]
pub struct ServiceDir {
    pub dir: PathBuf,
    /// Folder name: the service's name.
    pub name: String,
    /// `*.xml` in the folder, sorted by name.
    pub metadata: Vec<PathBuf>,
    pub config: Option<EntitySelection>,
    pub service_toml: Option<ServiceToml>,
}

impl ServiceDir {
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "service".into());
        let mut metadata = Vec::new();
        let rd = std::fs::read_dir(dir).map_err(|source| ConfigError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "xml") && p.is_file() {
                metadata.push(p);
            }
        }
        metadata.sort();
        let cfg = dir.join("config.json");
        let config = if cfg.exists() {
            Some(EntitySelection::load(&cfg)?)
        } else {
            None
        };
        let st = dir.join("service.toml");
        let service_toml = if st.exists() {
            Some(ServiceToml::load(&st)?)
        } else {
            None
        };
        if metadata.is_empty() {
            return Err(ConfigError::Invalid {
                path: dir.to_path_buf(),
                message: "no cached $metadata (*.xml) in this service folder".into(),
            });
        }
        Ok(ServiceDir {
            dir: dir.to_path_buf(),
            name,
            metadata,
            config,
            service_toml,
        })
    }

    /// Build options from the folder: selection from config.json, type overrides from
    /// service.toml.
    pub fn build_options(&self, lenient: bool) -> BuildOptions {
        let selection = match &self.config {
            Some(c) => Selection::Config(
                c.entities
                    .iter()
                    .map(|(n, e)| (n.clone(), e.endpoint.clone()))
                    .collect(),
            ),
            None => Selection::All,
        };
        let type_map = match &self.service_toml {
            Some(st) => TypeMap::default().with_overrides(&st.types, &st.properties),
            None => TypeMap::default(),
        };
        BuildOptions {
            service: self.name.clone(),
            selection,
            lenient,
            type_map,
            renames: self
                .service_toml
                .as_ref()
                .map(|s| s.rename.clone())
                .unwrap_or_default(),
        }
    }

    /// The tables of this service for a model built from it.
    pub fn tables(&self, model: &Model) -> Vec<crate::sql::TableDef> {
        let opts = crate::sql::TableOptions::for_service(
            &self.name,
            self.service_toml.as_ref(),
            self.config.as_ref(),
        );
        crate::sql::tables(model, &opts)
    }

    /// Parses the metadata and builds the model.
    pub fn model(&self, lenient: bool) -> (Option<Model>, Diagnostics) {
        let (docs, mut diags) = crate::load_documents(&self.metadata);
        if diags.has_errors() {
            return (None, diags);
        }
        let (model, d2) = build_model(&docs, &self.build_options(lenient));
        diags.extend(d2);
        (model, diags)
    }
}

/// Every service folder under `metadata-cache/` (folders with at least one `*.xml`), sorted.
pub fn service_dirs(cache: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let rd = std::fs::read_dir(cache).map_err(|e| {
        Diagnostic::error(format!("cannot read the metadata cache: {e}")).at(cache, 0, 0)
    })?;
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && std::fs::read_dir(p)
                    .map(|r| {
                        r.flatten()
                            .any(|e| e.path().extension().is_some_and(|x| x == "xml"))
                    })
                    .unwrap_or(false)
        })
        .collect();
    out.sort();
    Ok(out)
}
