//! `odatasync`: sync OData services (Exact Online first) into SQLite or PostgreSQL.
//! Exit codes: 0 all succeeded, 1 some entity failed (the others are committed), 2 usage or
//! configuration error.

use clap::{Parser, Subcommand};
use indicatif::MultiProgress;
use odata_runtime::sql::Db;
use odata_runtime::sync::apply_migrations;
use odatasync::connect::{self, ConnectOptions};
use odatasync::demo::{demo, DemoOptions};
use odatasync::run::{run_batch, RunOptions};
use odatasync::service::{default_cache_dir, Service};
use odatasync::{plan, status, Error};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// The database when `--database` and `$ODATASYNC_DATABASE` are not given.
const DEFAULT_DATABASE: &str = "odatasync.sqlite";

#[derive(Parser)]
#[command(
    name = "odatasync",
    version,
    about = "Sync OData services (Exact Online, ...) into SQLite or PostgreSQL, incrementally"
)]
struct Cli {
    /// The metadata-cache folder (default: $ODATASYNC_METADATA_CACHE, ./metadata-cache, or the
    /// one this binary was built from).
    #[arg(long, global = true)]
    metadata_cache: Option<PathBuf>,
    /// More log output (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress bars.
    #[arg(long, global = true)]
    no_progress: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the bundled fake Exact Online, log in, sync every configured entity of its
    /// divisions into a SQLite file, change rows and sync again incrementally.
    Demo {
        /// The SQLite file (replaced).
        #[arg(long, default_value = "demo.sqlite")]
        db: PathBuf,
        /// Rows per entity and division on the fake.
        #[arg(long, default_value_t = 400)]
        rows: u64,
    },
    /// Sync a service's entities into the database.
    Sync {
        #[arg(long)]
        service: String,
        /// `sqlite:PATH`, a file path, or `postgres://...` (default: $ODATASYNC_DATABASE, else
        /// odatasync.sqlite).
        #[arg(long)]
        database: Option<String>,
        /// Only these config.json entities (comma-separated; skipped ones may be named).
        #[arg(long, value_delimiter = ',')]
        entities: Option<Vec<String>>,
        /// Only this division.
        #[arg(long)]
        division: Option<i32>,
        /// Ignore the cursors of the synced entities and fetch everything (the other
        /// entities' cursors are untouched); rows no longer served get deleted_at.
        #[arg(long)]
        full_refresh: bool,
        /// A command run (by `sh -c`) after the run when some entity changed, with
        /// $ODATASYNC_CHANGED (comma-separated entities), $ODATASYNC_SERVICE, $ODATASYNC_BATCH_ID.
        #[arg(long)]
        hook: Option<String>,
        /// Write the rows each run changed to DIR as change files (gzip JSON Lines, one per
        /// entity and division, each with a message file; see `ingest`).
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
    },
    /// First login (OAuth2 authorization code through a loopback redirect).
    Auth {
        #[arg(long)]
        service: String,
        #[arg(long)]
        database: Option<String>,
    },
    /// Download the service's `$metadata` documents again, print what changes for its tables
    /// (additive or breaking) and rewrite the cached files that changed (then `cargo build`).
    RefreshMetadata {
        #[arg(long)]
        service: String,
        /// Report only; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// The division to read the documents in (services with divisions; default: the
        /// first of service.toml's divisions, else the current division).
        #[arg(long)]
        division: Option<i32>,
        /// The database with the tokens (exact-oauth2 services; as for `sync`).
        #[arg(long)]
        database: Option<String>,
    },
    /// Exact Online webhooks: subscribe the config.json `webhookTopics`, receive and apply
    /// the events.
    Webhooks {
        #[command(subcommand)]
        command: odatasync::webhooks::WebhooksCommand,
    },
    /// Enqueue a batch for the workers: one job per (division, entity) (PostgreSQL).
    Schedule(odatasync::worker::ScheduleArgs),
    /// Take jobs from the queue and run them, sharing leases, tokens and the API call budget
    /// with every other worker on the database (PostgreSQL).
    Worker(odatasync::worker::WorkerArgs),
    /// Load change files (gzip JSON Lines with their message files, ours from `sync --export`
    /// or a producer's of the same shape) into the tables, one transaction per file; lists
    /// dangling references (rows whose parent has not arrived yet).
    Ingest {
        #[arg(long)]
        service: String,
        #[arg(long)]
        database: Option<String>,
        /// The entity of data files without a message file (config.json name or entity set).
        #[arg(long)]
        entity: Option<String>,
        /// The division of the rows (default: the message's, else each row's Division).
        #[arg(long)]
        division: Option<i32>,
        /// Message files, data files or folders (their message files, in name order).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The key that encrypts tokens and secrets in the database: `generate` a key file,
    /// `rotate` every stored value to a new key (one transaction).
    Keys {
        #[command(subcommand)]
        command: odatasync::keys::KeysCommand,
    },
    /// Last runs, cursors and token expiry (never the tokens).
    Status {
        #[arg(long)]
        service: String,
        #[arg(long)]
        database: Option<String>,
    },
    /// The sync status API: POST /syncs starts a batch in the background, GET /syncs/{id}
    /// polls it, a callback URL gets its final status ($ODATASYNC_API_TOKEN required).
    Serve(odatasync::serve::ServeArgs),
}

/// `--database` → a database URL.
fn database_url(arg: Option<String>) -> String {
    let raw = arg
        .or_else(|| std::env::var("ODATASYNC_DATABASE").ok())
        .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
    if raw.starts_with("sqlite:") || raw.starts_with("postgres:") || raw.starts_with("postgresql:")
    {
        if raw.starts_with("sqlite:") && !raw.contains("mode=") && !raw.contains(":memory:") {
            let sep = if raw.contains('?') { '&' } else { '?' };
            return format!("{raw}{sep}mode=rwc");
        }
        raw
    } else {
        format!("sqlite:{raw}?mode=rwc")
    }
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

async fn open_db(url: &str) -> Result<Db, Error> {
    let db = Db::connect(url)
        .await
        .map_err(|e| Error::Other(format!("database {}: {e}", redact(url))))?;
    apply_migrations(&db).await?;
    Ok(db)
}

fn init_logs(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// glibc's malloc serves a block of 128 KiB or more with its own mmap, returned to the system
/// when freed, but after the first such free it raises that threshold up to 32 MiB, so response
/// bodies and pages of rows (1–3 MB each) end up in the heap arenas of the threads that handled
/// them, which keep them resident. Fixing the threshold (which stops the adjustment) lowered
/// the peak RSS of a 200,000-row sync by about 12 MB for about 0.1 s of CPU. A threshold the
/// user sets (`MALLOC_MMAP_THRESHOLD_`) is left alone.
fn limit_heap_growth() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only sets a parameter of the allocator; it is called before any
        // other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}

fn main() -> ExitCode {
    limit_heap_growth();
    let cli = Cli::parse();
    init_logs(cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("odatasync: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("odatasync: error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

async fn run(cli: Cli) -> Result<u8, Error> {
    let cache = cli.metadata_cache.clone().unwrap_or_else(default_cache_dir);
    let progress = !cli.no_progress && std::io::stderr().is_terminal();
    match cli.command {
        Command::Demo { db, rows } => {
            let opts = DemoOptions {
                db_path: db,
                rows,
                progress,
                ..DemoOptions::default()
            };
            let report = demo(&cache, &opts, &mut |s: &str| println!("{s}")).await?;
            Ok(u8::from(
                report.first.exit_code() != 0 || report.second.exit_code() != 0,
            ))
        }
        Command::Sync {
            service,
            database,
            entities,
            division,
            full_refresh,
            hook,
            export,
        } => {
            let service = Service::load(&cache, &service)?;
            let planned = plan::plan(&service, entities.as_deref())?;
            for a in plan::advice(&service, &planned) {
                tracing::warn!("{a}");
            }
            let url = database_url(database);
            let db = open_db(&url).await?;
            let conn = connect::connect(&service, &db, &ConnectOptions::default()).await?;
            if !connect::has_tokens(&conn).await? {
                return Err(Error::Usage(format!(
                    "no tokens for service '{}' in {}: run `odatasync auth --service {}` once, or set ODATASYNC_REFRESH_TOKEN",
                    service.name,
                    redact(&url),
                    service.name
                )));
            }
            let divisions = connect::divisions(&service, &conn, division).await?;
            let opts = RunOptions {
                full_refresh,
                progress: progress.then(MultiProgress::new),
                ..RunOptions::default()
            };
            let export_since = chrono::Utc::now();
            let report =
                run_batch(&conn.client, &db, &service, &planned, &divisions, &opts).await?;
            print!("{}", report.summary_table());
            let changed = report.changed_entities();
            println!(
                "batch {}: {} runs, {} failed, {} API calls, {:.1} s; changed: {}",
                report.batch_id,
                report.outcomes.len(),
                report.failures().count(),
                report.api_calls(),
                report.elapsed.as_secs_f64(),
                if changed.is_empty() {
                    "nothing".to_string()
                } else {
                    changed.join(",")
                }
            );
            for f in report.failures() {
                eprintln!(
                    "odatasync: {} [{}] failed: {}",
                    f.entity,
                    f.division
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "-".into()),
                    f.error.as_deref().unwrap_or("?")
                );
            }
            let mut code = report.exit_code() as u8;
            if let Some(dir) = &export {
                let exported = odatasync::export::export_batch(
                    &db,
                    &service,
                    &planned,
                    &report,
                    export_since,
                    dir,
                )
                .await;
                match exported {
                    Ok(files) => {
                        for f in &files {
                            println!("exported {}", f.summary());
                        }
                    }
                    Err(e) => {
                        eprintln!("odatasync: export: {e}");
                        code = 1;
                    }
                }
            }
            if let (Some(cmd), false) = (hook, changed.is_empty()) {
                let status = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(&cmd)
                    .env("ODATASYNC_CHANGED", changed.join(","))
                    .env("ODATASYNC_SERVICE", &service.name)
                    .env("ODATASYNC_BATCH_ID", &report.batch_id)
                    .status()
                    .await
                    .map_err(|e| Error::Other(format!("hook {cmd:?}: {e}")))?;
                if !status.success() {
                    eprintln!("odatasync: hook {cmd:?} failed: {status}");
                    code = 1;
                }
            }
            Ok(code)
        }
        Command::Auth { service, database } => {
            let service = Service::load(&cache, &service)?;
            let url = database_url(database);
            let db = open_db(&url).await?;
            let conn = connect::login(&service, &db, &ConnectOptions::default(), |u| async move {
                eprintln!("Open this URL in a browser and log in to Exact Online:\n\n  {u}\n\nWaiting for the redirect...");
                Ok(())
            })
            .await?;
            let divisions = connect::divisions(&service, &conn, None).await?;
            println!(
                "logged in; tokens stored encrypted in {}; divisions: {}",
                redact(&url),
                divisions
                    .iter()
                    .flatten()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(0)
        }
        Command::RefreshMetadata {
            service,
            dry_run,
            division,
            database,
        } => {
            let opts = odatasync::refresh::RefreshOptions {
                database: Some(database_url(database)),
                division,
                dry_run,
            };
            let report = odatasync::refresh::refresh_metadata(&cache, &service, &opts).await?;
            print!("{}", report.render());
            Ok(0)
        }
        Command::Webhooks { command } => {
            let db = open_db(&database_url(command.database())).await?;
            odatasync::webhooks::run(&cache, &db, command).await
        }
        Command::Ingest {
            service,
            database,
            entity,
            division,
            files,
        } => {
            let service = Service::load(&cache, &service)?;
            let db = open_db(&database_url(database)).await?;
            let opts = odatasync::ingest::IngestOptions { entity, division };
            let report = odatasync::ingest::ingest(&db, &service, &files, &opts).await?;
            print!("{}", report.render());
            for e in report.files.iter().filter_map(|f| f.error.as_deref()) {
                eprintln!("odatasync: error: {e}");
            }
            Ok(report.exit_code())
        }
        Command::Keys { command } => match command {
            odatasync::keys::KeysCommand::Generate { out } => {
                println!("{}", odatasync::keys::generate(&out)?);
                Ok(0)
            }
            odatasync::keys::KeysCommand::Rotate {
                database,
                new_key_file,
                new_key_env,
            } => {
                let new = odatasync::keys::NewKey::from_args(new_key_file, new_key_env)?;
                let url = database_url(database);
                let db = open_db(&url).await?;
                print!(
                    "{}",
                    odatasync::keys::rotate(&db, &redact(&url), &new).await?
                );
                Ok(0)
            }
        },
        Command::Status { service, database } => {
            let url = database_url(database);
            let db = open_db(&url).await?;
            let now = chrono::Utc::now().timestamp_millis();
            print!("{}", status::report(&db, &service, now).await?);
            print!(
                "{}",
                odatasync::worker::status_section(&db, &service, now).await?
            );
            // config.json `schedule`s (when the service's folder loads; status works without).
            if let (Ok(svc), Some(now)) = (
                Service::load(&cache, &service),
                chrono::DateTime::from_timestamp_millis(now),
            ) {
                print!(
                    "{}",
                    odatasync::schedules::status_section(&db, &svc, now).await?
                );
            }
            Ok(0)
        }
        Command::Schedule(args) => {
            let db = open_db(&database_url(args.database.clone())).await?;
            odatasync::worker::cli_schedule(&cache, &db, &args).await
        }
        Command::Worker(args) => {
            let db = open_db(&database_url(args.database.clone())).await?;
            odatasync::worker::cli_worker(&cache, &db, &args).await
        }
        Command::Serve(args) => {
            let token = odatasync::serve::ApiToken::from_env()?;
            let db = open_db(&database_url(args.database.clone())).await?;
            odatasync::serve::serve(db, cache, token, &args).await?;
            Ok(0)
        }
    }
}
