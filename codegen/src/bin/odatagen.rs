//! `odatagen`: check OData `$metadata`, generate typed Rust crates, explain the selection.

use clap::{Args, Parser, Subcommand};
use odata_codegen::config::{EntitySelection, ServiceToml};
use odata_codegen::diagnostics::Diagnostics;
use odata_codegen::edm_types::TypeMap;
use odata_codegen::emit::rust::{emit_crate, CrateOptions};
use odata_codegen::model::selection::{explain, Selection};
use odata_codegen::service::ServiceDir;
use odata_codegen::sql::diff::{diff_models, Severity};
use odata_codegen::sql::migrations::{read_state, MigrateError, MigrateOptions, Migrations};
use odata_codegen::sql::{tables, TableOptions};
use odata_codegen::{build_model, load_documents, BuildOptions, Model};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "odatagen",
    version,
    about = "OData $metadata (V2, V3, V4) → typed Rust entity crates"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and model metadata files; print a summary per file and every diagnostic
    /// as FILE:LINE:COL: error|warning: message. Exit 1 on errors.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Unknown types and dangling references are warnings.
        #[arg(long)]
        lenient: bool,
    },
    /// Write a standalone crate (Cargo.toml + src/) for the selected entity sets.
    Generate {
        #[command(flatten)]
        input: Input,
        /// Output folder (created if missing). Only files whose bytes changed are rewritten.
        #[arg(long)]
        out: PathBuf,
        /// Package name of the crate (default: the service name).
        #[arg(long)]
        name: Option<String>,
        /// Path of the odata-runtime crate for the generated Cargo.toml (default: this
        /// repository's runtime/, written relative to --out when possible).
        #[arg(long)]
        runtime_path: Option<PathBuf>,
        /// Leave out the empty [workspace] table (for a crate that is a member of your workspace).
        #[arg(long)]
        workspace_member: bool,
    },
    /// Compare two generations: `diff OLD NEW` (each a metadata file or a folder of *.xml, with
    /// its config.json and service.toml when the folder has them), or `diff DIR` (a service folder
    /// against its stored state in --migrations). Prints a report of entities and properties
    /// added, removed, retyped and re-keyed. Exit 0 = no change, 1 = additive only,
    /// 2 = breaking, 3 = usage or input error.
    Diff {
        /// The old metadata (file or folder), or the service folder when NEW is omitted.
        old: PathBuf,
        /// The new metadata (file or folder).
        new: Option<PathBuf>,
        /// Folder of the migrations and their stored state (for `diff DIR`).
        #[arg(long, default_value = "generated/migrations")]
        migrations: PathBuf,
        /// A config.json selecting the entities on both sides (overrides the folders' own).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Unknown types and dangling references become warnings.
        #[arg(long)]
        lenient: bool,
    },
    /// Write the next migration (SQLite and PostgreSQL) and the stored state for a service
    /// folder; prints what it wrote, or says that nothing changed and writes nothing.
    /// New entities and properties are written; removed ones are kept (and reported) unless
    /// --drop-removed; type, nullability and key changes need --allow-breaking.
    Migrate {
        /// The service folder (metadata-cache/<name>).
        #[arg(long)]
        service: PathBuf,
        /// Folder of the migrations (sqlite/, postgres/, state/, history.json).
        #[arg(long, default_value = "generated/migrations")]
        migrations: PathBuf,
        /// Write type, nullability and key changes.
        #[arg(long)]
        allow_breaking: bool,
        /// Drop columns, tables and indexes whose properties and entities were removed.
        #[arg(long)]
        drop_removed: bool,
        /// Unknown types and dangling references become warnings.
        #[arg(long)]
        lenient: bool,
    },
    /// Print why each type is in the model.
    Explain {
        #[command(flatten)]
        input: Input,
    },
    /// Parse, model and emit every file given (or the whole corpus) and print times and memory.
    Bench {
        /// Metadata files or folders of *.xml.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Repetitions per file (the minimum time is reported).
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Generate every type each file defines, not only what its entity sets reach.
        #[arg(long)]
        all_types: bool,
    },
}

#[derive(Args)]
struct Input {
    /// Metadata files of one service.
    #[arg(long, num_args = 1.., required_unless_present = "service")]
    metadata: Vec<PathBuf>,
    /// A service folder of metadata-cache/ (its *.xml, config.json and service.toml).
    #[arg(long, conflicts_with = "metadata")]
    service: Option<PathBuf>,
    /// Select these entity sets (or entity types) and what they need.
    #[arg(long, value_delimiter = ',')]
    entities: Vec<String>,
    /// A config.json whose entities select the entity sets.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A service.toml with [types]/[properties] overrides.
    #[arg(long)]
    service_toml: Option<PathBuf>,
    /// Service name (default: the first metadata file's stem or the service folder's name).
    #[arg(long = "service-name")]
    service_name: Option<String>,
    /// Unknown types and dangling references become warnings and raw JSON values.
    #[arg(long)]
    lenient: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            let code = if !e.use_stderr() {
                0
            } else if std::env::args().nth(1).as_deref() == Some("diff") {
                // `diff` uses 1 and 2 for its findings.
                3
            } else {
                2
            };
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
    }
}

fn print_diags(d: &Diagnostics) {
    for x in &d.0 {
        eprintln!("{x}");
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Check { files, lenient } => check(&files, lenient),
        Command::Generate {
            input,
            out,
            name,
            runtime_path,
            workspace_member,
        } => {
            let (model, diags, table_opts) = model_of(&input)?;
            print_diags(&diags);
            let Some(model) = model else {
                return Ok(ExitCode::from(1));
            };
            let tables = tables(&model, &table_opts);
            let runtime = runtime_path.unwrap_or_else(default_runtime_path);
            let runtime_dep = format!(
                "{{ path = \"{}\", default-features = false }}",
                relative_to(&runtime, &out)
                    .display()
                    .to_string()
                    .replace('\\', "/")
            );
            let opts = CrateOptions {
                name: name.unwrap_or_else(|| model.service.replace('_', "-")),
                runtime_dependency: runtime_dep,
                standalone: !workspace_member,
                tables,
            };
            let files = emit_crate(&model, &opts).map_err(|e| e.to_string())?;
            let stats = odata_codegen::write::write_files(&out, &files)
                .map_err(|e| format!("{}: {e}", out.display()))?;
            let (e, c, n, s, p) = model.counts();
            println!(
                "{}: {e} entity types, {c} complex types, {n} enum types, {s} entity sets, {p} properties → {} files ({} written, {} unchanged)",
                out.display(),
                files.len(),
                stats.written.len(),
                stats.unchanged
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff {
            old,
            new,
            migrations,
            config,
            lenient,
        } => Ok(diff(
            &old,
            new.as_deref(),
            &migrations,
            config.as_deref(),
            lenient,
        )),
        Command::Migrate {
            service,
            migrations,
            allow_breaking,
            drop_removed,
            lenient,
        } => migrate(
            &service,
            &migrations,
            MigrateOptions {
                allow_breaking,
                drop_removed,
            },
            lenient,
        ),
        Command::Explain { input } => {
            let (model, diags, _) = model_of(&input)?;
            print_diags(&diags);
            match model {
                Some(m) => {
                    print!("{}", explain(&m));
                    Ok(ExitCode::SUCCESS)
                }
                None => Ok(ExitCode::from(1)),
            }
        }
        Command::Bench {
            paths,
            runs,
            all_types,
        } => bench(&paths, runs, all_types),
    }
}

fn check(files: &[PathBuf], lenient: bool) -> Result<ExitCode, String> {
    let mut failed = false;
    for f in files {
        let (docs, mut diags) = load_documents(std::slice::from_ref(f));
        let mut summary = format!("{}: not parsed", f.display());
        if let Some((_, doc)) = docs.first() {
            let ets: usize = doc.schemas.iter().map(|s| s.entity_types.len()).sum();
            let sets: usize = doc
                .schemas
                .iter()
                .flat_map(|s| &s.entity_containers)
                .map(|c| c.entity_sets.len())
                .sum();
            let props: usize = doc
                .schemas
                .iter()
                .map(|s| {
                    s.entity_types
                        .iter()
                        .map(|t| t.properties.len())
                        .sum::<usize>()
                        + s.complex_types
                            .iter()
                            .map(|t| t.properties.len())
                            .sum::<usize>()
                })
                .sum();
            summary = format!(
                "{}: OData {}, {} schemas, {ets} entity types, {sets} entity sets, {props} properties",
                f.display(),
                doc.odata_version.map(|v| v.as_str()).unwrap_or("?"),
                doc.schemas.len()
            );
            let opts = BuildOptions {
                service: stem(f),
                selection: Selection::All,
                lenient,
                type_map: TypeMap::default(),
                renames: Default::default(),
            };
            let (_, d2) = build_model(&docs, &opts);
            diags.extend(d2);
        }
        let errors = diags.errors().count();
        let warnings = diags.warnings().count();
        println!("{summary}; {errors} errors, {warnings} warnings");
        print_diags(&diags);
        failed |= errors > 0;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "service".into())
}

/// Builds the model from the command line's input options.
fn model_of(input: &Input) -> Result<(Option<Model>, Diagnostics, TableOptions), String> {
    if let Some(dir) = &input.service {
        let sd = ServiceDir::load(dir).map_err(|e| e.to_string())?;
        let (docs, mut diags) = load_documents(&sd.metadata);
        if diags.has_errors() {
            let table_opts =
                TableOptions::for_service(&sd.name, sd.service_toml.as_ref(), sd.config.as_ref());
            return Ok((None, diags, table_opts));
        }
        let mut opts = sd.build_options(input.lenient);
        if !input.entities.is_empty() {
            opts.selection = Selection::Names(input.entities.clone());
        }
        if let Some(n) = &input.service_name {
            opts.service = n.clone();
        }
        let table_opts =
            TableOptions::for_service(&opts.service, sd.service_toml.as_ref(), sd.config.as_ref());
        let (m, d2) = build_model(&docs, &opts);
        diags.extend(d2);
        return Ok((m, diags, table_opts));
    }
    let (docs, mut diags) = load_documents(&input.metadata);
    let config = match &input.config {
        Some(c) => Some(EntitySelection::load(c).map_err(|e| e.to_string())?),
        None => None,
    };
    let service_toml = match &input.service_toml {
        Some(p) => Some(ServiceToml::load(p).map_err(|e| e.to_string())?),
        None => None,
    };
    let service = input
        .service_name
        .clone()
        .unwrap_or_else(|| input.metadata.first().map(|p| stem(p)).unwrap_or_default());
    let table_opts = TableOptions::for_service(&service, service_toml.as_ref(), config.as_ref());
    if diags.has_errors() {
        return Ok((None, diags, table_opts));
    }
    let selection = if !input.entities.is_empty() {
        Selection::Names(input.entities.clone())
    } else if let Some(cfg) = &config {
        Selection::Config(
            cfg.entities
                .iter()
                .map(|(n, e)| (n.clone(), e.endpoint.clone()))
                .collect(),
        )
    } else {
        Selection::All
    };
    let (type_map, renames) = match &service_toml {
        Some(st) => (
            TypeMap::default().with_overrides(&st.types, &st.properties),
            st.rename.clone(),
        ),
        None => (TypeMap::default(), Default::default()),
    };
    let opts = BuildOptions {
        service,
        selection,
        lenient: input.lenient,
        type_map,
        renames,
    };
    let (m, d2) = build_model(&docs, &opts);
    diags.extend(d2);
    Ok((m, diags, table_opts))
}

/// The model of one side of `diff`: a metadata file, or a folder of `*.xml` (with its own
/// config.json and service.toml when present; `config` overrides).
fn model_of_path(path: &Path, config: Option<&Path>, lenient: bool) -> Result<Model, String> {
    let (sd, name) = if path.is_dir() {
        let sd = ServiceDir::load(path).map_err(|e| e.to_string())?;
        let name = sd.name.clone();
        (sd, name)
    } else {
        let name = stem(path);
        (
            ServiceDir {
                dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
                name: name.clone(),
                metadata: vec![path.to_path_buf()],
                config: None,
                service_toml: None,
            },
            name,
        )
    };
    let mut sd = sd;
    if let Some(c) = config {
        sd.config = Some(EntitySelection::load(c).map_err(|e| e.to_string())?);
    }
    let (model, diags) = sd.model(lenient);
    for d in diags.errors() {
        eprintln!("{d}");
    }
    model.ok_or_else(|| {
        format!(
            "{}: the metadata does not build a model ({name})",
            path.display()
        )
    })
}

fn diff(
    old: &Path,
    new: Option<&Path>,
    migrations: &Path,
    config: Option<&Path>,
    lenient: bool,
) -> ExitCode {
    let result = (|| -> Result<Severity, String> {
        let (old_model, new_model, label) = match new {
            Some(new) => (
                model_of_path(old, config, lenient)?,
                model_of_path(new, config, lenient)?,
                format!("{} → {}", old.display(), new.display()),
            ),
            None => {
                let sd = ServiceDir::load(old).map_err(|e| e.to_string())?;
                let state = read_state(migrations, &sd.name)
                    .map_err(|e| e.to_string())?
                    .and_then(|s| s.model)
                    .ok_or_else(|| {
                        format!(
                            "{}: no stored state for service {} in {} (run `odatagen migrate --service {}` first)",
                            old.display(),
                            sd.name,
                            migrations.display(),
                            old.display()
                        )
                    })?;
                (
                    state,
                    model_of_path(old, config, lenient)?,
                    format!("{} (stored state → current metadata)", old.display()),
                )
            }
        };
        let d = diff_models(&old_model, &new_model);
        println!("{label}");
        print!("{}", d.report());
        Ok(d.severity())
    })();
    match result {
        Ok(Severity::None) => ExitCode::SUCCESS,
        Ok(Severity::Additive) => ExitCode::from(1),
        Ok(Severity::Breaking) => ExitCode::from(2),
        Err(e) => {
            eprintln!("odatagen diff: {e}");
            ExitCode::from(3)
        }
    }
}

fn migrate(
    service: &Path,
    migrations: &Path,
    opts: MigrateOptions,
    lenient: bool,
) -> Result<ExitCode, String> {
    let sd = ServiceDir::load(service).map_err(|e| e.to_string())?;
    let (model, diags) = sd.model(lenient);
    print_diags(&diags);
    let Some(model) = model else {
        return Ok(ExitCode::from(1));
    };
    let tables = sd.tables(&model);
    match Migrations::new(migrations).migrate_service(&sd.name, Some(&model), &tables, opts) {
        Ok(outcome) => {
            print!("{}", outcome.summary(&sd.name));
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ MigrateError::Breaking { .. }) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn default_runtime_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("runtime")
}

/// `target` written relative to `base` when both can be made absolute; otherwise absolute.
fn relative_to(target: &Path, base: &Path) -> PathBuf {
    let abs = |p: &Path| -> Option<PathBuf> {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().ok()?.join(p)
        };
        // Normalise `..` without touching the file system (base may not exist yet).
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        Some(out)
    };
    let (Some(t), Some(b)) = (abs(target), abs(base)) else {
        return target.to_path_buf();
    };
    let tc: Vec<_> = t.components().collect();
    let bc: Vec<_> = b.components().collect();
    let common = tc.iter().zip(&bc).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return t;
    }
    let mut rel = PathBuf::new();
    for _ in common..bc.len() {
        rel.push("..");
    }
    for c in &tc[common..] {
        rel.push(c);
    }
    rel
}

/// Peak resident memory of this process (Linux `VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

fn bench(paths: &[PathBuf], runs: u32, all_types: bool) -> Result<ExitCode, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|x| x.extension().is_some_and(|e| e == "xml"))
                .collect();
            v.sort();
            files.extend(v);
        } else {
            files.push(p.clone());
        }
    }
    println!(
        "{:<58} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "file", "KiB", "parse ms", "model ms", "emit ms", "total ms", "lines"
    );
    let (mut tp, mut tm, mut te) = (0.0, 0.0, 0.0);
    let mut failed = 0;
    for f in &files {
        let (mut bp, mut bm, mut be) = (f64::MAX, f64::MAX, f64::MAX);
        let mut lines = 0;
        let mut ok = true;
        for _ in 0..runs.max(1) {
            let t0 = Instant::now();
            let (docs, diags) = load_documents(std::slice::from_ref(f));
            let t1 = Instant::now();
            if diags.has_errors() {
                ok = false;
                break;
            }
            let opts = BuildOptions {
                service: stem(f),
                selection: if all_types {
                    Selection::AllTypes
                } else {
                    Selection::All
                },
                lenient: true,
                type_map: TypeMap::default(),
                renames: Default::default(),
            };
            let (m, _) = build_model(&docs, &opts);
            let t2 = Instant::now();
            let Some(m) = m else {
                ok = false;
                break;
            };
            let files = emit_crate(
                &m,
                &CrateOptions {
                    name: "bench".into(),
                    runtime_dependency: "\"*\"".into(),
                    standalone: true,
                    tables: Vec::new(),
                },
            )
            .map_err(|e| e.to_string())?;
            let t3 = Instant::now();
            lines = files.values().map(|s| s.lines().count()).sum::<usize>();
            bp = bp.min((t1 - t0).as_secs_f64() * 1e3);
            bm = bm.min((t2 - t1).as_secs_f64() * 1e3);
            be = be.min((t3 - t2).as_secs_f64() * 1e3);
        }
        let kib = std::fs::metadata(f).map(|m| m.len() / 1024).unwrap_or(0);
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !ok {
            failed += 1;
            println!("{name:<58} {kib:>9} failed");
            continue;
        }
        tp += bp;
        tm += bm;
        te += be;
        println!(
            "{name:<58} {kib:>9} {bp:>9.1} {bm:>9.1} {be:>9.1} {:>9.1} {lines:>8}",
            bp + bm + be
        );
    }
    println!(
        "{:<58} {:>9} {tp:>9.1} {tm:>9.1} {te:>9.1} {:>9.1}",
        format!("TOTAL ({} files, {failed} failed)", files.len()),
        "",
        tp + tm + te
    );
    if let Some(kib) = peak_rss_kib() {
        println!("peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }
    Ok(ExitCode::SUCCESS)
}
