//! `odatasync refresh-metadata`: download the `$metadata` documents of a service again, show
//! what changed for its tables (the codegen's model diff: entities and properties added,
//! removed, retyped, re-keyed; additive or breaking) and rewrite the cached files that changed,
//! byte for byte. `cargo build` then regenerates the entity types and writes the migration.
//!
//! Which URL a cached document comes from (`shared/design/config.md`, "Layout"):
//!
//! 1. `<area>.xml` whose name is the area of a `config.json` endpoint (the endpoint without
//!    its last segment, lower-cased, `/` → `.`) comes from `<area>/$metadata`, with the area
//!    spelled as in the endpoint (`sync/Financial/GLAccounts` → `sync/Financial/$metadata`,
//!    cached as `sync.financial.xml`);
//! 2. else, when the folder has exactly one document and the service has no divisions, that
//!    document is the service's `$metadata` at the root (Northwind: `northwind.xml`);
//! 3. else the file name is the area: `bulk.crm.xml` → `bulk/crm/$metadata`.
//!
//! Services with divisions (Exact Online) are read in `--division`, else the first of
//! `service.toml`'s `divisions`, else the user's current division (`current/Me`).
//!
//! Nothing is written unless every document was downloaded and parses with the codegen parser
//! and the new documents build a model; each changed file is written to a temporary file in
//! the same folder and renamed over the old one, so a reader sees the old or the new bytes.

use crate::connect::{self, ConnectOptions};
use crate::error::Error;
use crate::service::Service;
use odata_codegen::config::EntitySelection;
use odata_codegen::model::build_model;
use odata_codegen::service::ServiceDir;
use odata_codegen::source::SourceFile;
use odata_codegen::sql::diff::{diff_models, diff_tables, ModelDiff, Severity, TableChange};
use odata_codegen::Diagnostics;
use odata_runtime::client::Client;
use odata_runtime::sql::Db;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// What `refresh-metadata` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RefreshOptions {
    /// The database holding the tokens (`exact-oauth2` services only; a database URL).
    pub database: Option<String>,
    /// The division to read the documents in (services with divisions).
    pub division: Option<i32>,
    /// Report only; write nothing.
    pub dry_run: bool,
}

/// One cached `$metadata` document and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedDocument {
    /// The file in `metadata-cache/<service>/`.
    pub file: PathBuf,
    /// The path below the service root: `financial/$metadata`, or `$metadata`.
    pub path: String,
}

/// What happened to one document.
#[derive(Debug, Clone)]
pub struct DocumentOutcome {
    pub file: PathBuf,
    pub url: String,
    pub old_len: usize,
    pub new_len: usize,
    pub changed: bool,
}

/// The result of a refresh.
#[derive(Debug, Clone)]
pub struct RefreshReport {
    pub service: String,
    pub documents: Vec<DocumentOutcome>,
    /// Old → new model of the selected entities; `None` when the cached documents do not
    /// build a model (nothing to compare with).
    pub diff: Option<ModelDiff>,
    /// What the next migration will do to the tables (new columns with their SQL names and
    /// types, ...); empty without an old model.
    pub table_changes: Vec<TableChange>,
    pub dry_run: bool,
    /// Files rewritten (none on a dry run).
    pub written: Vec<PathBuf>,
}

impl RefreshReport {
    pub fn changed(&self) -> impl Iterator<Item = &DocumentOutcome> {
        self.documents.iter().filter(|d| d.changed)
    }

    /// The text the CLI prints.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let changed: Vec<&DocumentOutcome> = self.changed().collect();
        if changed.is_empty() {
            let _ = writeln!(
                s,
                "{}: no changes: the {} cached $metadata documents are up to date",
                self.service,
                self.documents.len()
            );
            return s;
        }
        let _ = writeln!(
            s,
            "{}: {} of {} $metadata documents changed{}:",
            self.service,
            changed.len(),
            self.documents.len(),
            if self.dry_run {
                " (dry run: nothing written)"
            } else {
                ""
            }
        );
        for d in &changed {
            let _ = writeln!(
                s,
                "  {} ({} → {} bytes) from {}",
                d.file.display(),
                d.old_len,
                d.new_len,
                d.url
            );
        }
        match &self.diff {
            Some(diff) if diff.is_empty() => {
                let _ = writeln!(
                    s,
                    "the tables of the selected entities do not change (the documents changed elsewhere)"
                );
            }
            Some(diff) => {
                s.push_str(&diff.report());
                if !self.table_changes.is_empty() {
                    let _ = writeln!(s, "tables:");
                    for c in &self.table_changes {
                        let mark = match (c.is_removal(), c.severity()) {
                            (true, _) => "  kept     ",
                            (false, Severity::Breaking) => "  BREAKING ",
                            _ => "           ",
                        };
                        let _ = writeln!(s, "{mark}{c}");
                    }
                }
                let blocking = self
                    .table_changes
                    .iter()
                    .any(|c| !c.is_removal() && c.severity() == Severity::Breaking);
                if blocking {
                    let _ = writeln!(
                        s,
                        "breaking changes (types, nullability or keys): `cargo build` will stop and name them; write the migration with `odatagen migrate --service {} --allow-breaking`",
                        self.written_dir()
                    );
                }
                if self.table_changes.iter().any(TableChange::is_removal) {
                    let _ = writeln!(
                        s,
                        "removed columns and tables are kept (`cargo build` warns); drop them with `odatagen migrate --service {} --drop-removed`",
                        self.written_dir()
                    );
                }
            }
            None => {
                let _ = writeln!(
                    s,
                    "the previously cached documents did not build a model: no table diff"
                );
            }
        }
        if self.dry_run {
            let _ = writeln!(s, "dry run: the cache was not changed");
        } else {
            let migration =
                self.diff.is_none() || self.table_changes.iter().any(|c| !c.is_removal());
            let _ = writeln!(
                s,
                "wrote {} file{}; `cargo build` will regenerate the entity types{}",
                self.written.len(),
                if self.written.len() == 1 { "" } else { "s" },
                if migration {
                    " and write a new migration"
                } else {
                    ""
                }
            );
        }
        s
    }

    fn written_dir(&self) -> String {
        self.documents
            .first()
            .and_then(|d| d.file.parent())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("metadata-cache/{}", self.service))
    }
}

/// Loads the service folder without requiring that this binary was built with it (refreshing
/// comes before the build that picks the new documents up).
pub fn load_service(cache: &Path, name: &str) -> Result<Service, Error> {
    let dir = cache.join(name);
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "no service '{name}' in {}",
            cache.display()
        )));
    }
    let sd = ServiceDir::load(&dir).map_err(|e| Error::Config(e.to_string()))?;
    Ok(Service {
        name: name.to_string(),
        dir,
        toml: sd.service_toml.unwrap_or_default(),
        config: sd.config.unwrap_or_default(),
        tables: generated::tables(name).unwrap_or(&[]),
    })
}

/// The cached documents of a service folder and their paths below the service root (rules in
/// the module docs).
pub fn cached_documents(
    dir: &Path,
    config: &EntitySelection,
    has_divisions: bool,
) -> Result<Vec<CachedDocument>, Error> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Config(format!(
            "{}: no cached $metadata (*.xml) to refresh",
            dir.display()
        )));
    }
    // Areas of the config.json endpoints, by cache file stem, spelled as in the endpoint.
    let mut areas: BTreeMap<String, String> = BTreeMap::new();
    for e in config.entities.values() {
        if let Some((area, _)) = e.path().trim_end_matches('/').rsplit_once('/') {
            areas
                .entry(area.to_lowercase().replace('/', "."))
                .or_insert_with(|| area.to_string());
        }
    }
    let single = files.len() == 1 && !has_divisions;
    Ok(files
        .into_iter()
        .map(|file| {
            let stem = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let path = match areas.get(&stem.to_lowercase()) {
                Some(area) => format!("{area}/$metadata"),
                None if single => "$metadata".to_string(),
                None => format!("{}/$metadata", stem.replace('.', "/")),
            };
            CachedDocument { file, path }
        })
        .collect())
}

/// `odatasync refresh-metadata`: connects (credentials as for `sync`), downloads, compares,
/// writes.
pub async fn refresh_metadata(
    cache: &Path,
    name: &str,
    opts: &RefreshOptions,
) -> Result<RefreshReport, Error> {
    let service = load_service(cache, name)?;
    // The token store lives in the target database; other kinds of auth need none.
    let db_url = if service.toml.auth == "exact-oauth2" {
        opts.database
            .clone()
            .unwrap_or_else(|| "sqlite:odatasync.sqlite?mode=rwc".into())
    } else {
        "sqlite::memory:".to_string()
    };
    let db = Db::connect(&db_url)
        .await
        .map_err(|e| Error::Other(format!("database {}: {e}", redact(&db_url))))?;
    if service.toml.auth == "exact-oauth2" {
        odata_runtime::sync::apply_migrations(&db).await?;
    }
    let conn = connect::connect(&service, &db, &ConnectOptions::default()).await?;
    if !connect::has_tokens(&conn).await? {
        return Err(Error::Usage(format!(
            "no tokens for service '{}' in {}: run `odatasync auth --service {}` once, or set ODATASYNC_REFRESH_TOKEN",
            service.name,
            redact(&db_url),
            service.name
        )));
    }
    let division = if conn.has_divisions {
        match (opts.division, service.toml.divisions.as_deref()) {
            (Some(d), _) => Some(d),
            (None, Some([d, ..])) => Some(i32::try_from(*d).map_err(|_| {
                Error::Config(format!("service.toml: division {d} is out of range"))
            })?),
            _ => Some(conn.client.current_division().await?),
        }
    } else {
        None
    };
    refresh_with(&service, &conn.client, division, opts.dry_run).await
}

/// The refresh itself, with a given client (tests and library users).
pub async fn refresh_with(
    service: &Service,
    client: &Client,
    division: Option<i32>,
    dry_run: bool,
) -> Result<RefreshReport, Error> {
    let docs = cached_documents(&service.dir, &service.config, service.has_divisions())?;
    // 1. Download everything; stop at the first failure, before anything is written.
    let mut fetched: Vec<(CachedDocument, String, String, Vec<u8>)> = Vec::new();
    for d in docs {
        let url = client.url(division, &d.path)?.to_string();
        let text = client.get_text(division, &d.path).await.map_err(|e| {
            let msg = e.to_string();
            if msg.contains(&url) {
                Error::Other(format!("{msg}; the cache is unchanged"))
            } else {
                Error::Other(format!("{url}: {msg}; the cache is unchanged"))
            }
        })?;
        let old = std::fs::read(&d.file)
            .map_err(|e| Error::Config(format!("{}: {e}", d.file.display())))?;
        fetched.push((d, url, text, old));
    }
    // 2. Every new document must parse, and together they must build a model.
    let mut new_docs = Vec::new();
    for (d, url, text, _) in &fetched {
        let start = text.trim_start_matches('\u{feff}').trim_start();
        if !start.starts_with('<') {
            return Err(Error::Other(format!(
                "{url}: the answer is not XML (it starts with {:?}); the cache of {} is unchanged",
                start.chars().take(40).collect::<String>(),
                d.file.display()
            )));
        }
        // Parsed as the cache file it will become (the selection finds an endpoint's
        // document by its file name); errors name the URL instead.
        let src = SourceFile::new(d.file.clone(), text.clone());
        let idx = u32::try_from(new_docs.len()).unwrap_or(u32::MAX);
        let mut one = Diagnostics::default();
        match odata_codegen::parse::parse_document(&src, idx, &mut one) {
            Some(doc) if !one.has_errors() => new_docs.push((src, doc)),
            _ => {
                let src = SourceFile::new(PathBuf::from(url.as_str()), text.clone());
                let mut one = Diagnostics::default();
                let _ = odata_codegen::parse::parse_document(&src, idx, &mut one);
                let errs: Vec<String> = one.errors().map(|e| e.to_string()).collect();
                return Err(Error::Other(format!(
                    "{url}: the $metadata document does not parse; the cache of {} is unchanged:\n  {}",
                    d.file.display(),
                    errs.join("\n  ")
                )));
            }
        }
    }
    let sd = ServiceDir::load(&service.dir).map_err(|e| Error::Config(e.to_string()))?;
    let build = sd.build_options(false);
    let (new_model, model_diags) = build_model(&new_docs, &build);
    let Some(new_model) = new_model else {
        let errs: Vec<String> = model_diags.errors().map(|e| e.to_string()).collect();
        return Err(Error::Other(format!(
            "the downloaded $metadata of {} does not build a model; the cache is unchanged:\n  {}",
            service.name,
            errs.join("\n  ")
        )));
    };
    let (old_model, _) = sd.model(false);
    let (diff, table_changes) = match old_model {
        Some(old) => (
            Some(diff_models(&old, &new_model)),
            diff_tables(&sd.tables(&old), &sd.tables(&new_model)),
        ),
        None => (None, Vec::new()),
    };
    // 3. Write what changed.
    let mut documents = Vec::new();
    let mut written = Vec::new();
    for (d, url, text, old) in &fetched {
        let changed = old.as_slice() != text.as_bytes();
        if changed && !dry_run {
            write_atomically(&d.file, text.as_bytes())
                .map_err(|e| Error::Other(format!("{}: {e}", d.file.display())))?;
            written.push(d.file.clone());
        }
        documents.push(DocumentOutcome {
            file: d.file.clone(),
            url: url.clone(),
            old_len: old.len(),
            new_len: text.len(),
            changed,
        });
    }
    Ok(RefreshReport {
        service: service.name.clone(),
        documents,
        diff,
        table_changes,
        dry_run,
        written,
    })
}

/// Writes `bytes` to a temporary file beside `path`, flushes it to disk, and renames it over
/// `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The URL without a password (for messages).
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(json: &str) -> EntitySelection {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, json).unwrap();
        EntitySelection::load(&p).unwrap()
    }

    #[test]
    fn document_urls_follow_the_endpoints_then_the_file_names() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["financial.xml", "sync.financial.xml", "bulk.crm.xml"] {
            std::fs::write(dir.path().join(f), "<x/>").unwrap();
        }
        let cfg = selection(
            r#"{"A": {"endpoint": "/financial/GLAccounts"}, "B": {"endpoint": "sync/Financial/GLAccounts"}}"#,
        );
        let docs = cached_documents(dir.path(), &cfg, true).unwrap();
        let paths: Vec<&str> = docs.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "bulk/crm/$metadata",
                "financial/$metadata",
                "sync/Financial/$metadata"
            ]
        );
    }

    #[test]
    fn a_single_document_without_divisions_is_the_root_metadata() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("northwind.xml"), "<x/>").unwrap();
        let docs = cached_documents(dir.path(), &EntitySelection::default(), false).unwrap();
        assert_eq!(docs[0].path, "$metadata");
        // With divisions the file name is the area.
        let docs = cached_documents(dir.path(), &EntitySelection::default(), true).unwrap();
        assert_eq!(docs[0].path, "northwind/$metadata");
    }
}
