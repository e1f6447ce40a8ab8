//! `odatasync serve`: the sync status API (an asynchronous sync with a callback or polling).
//!
//! * `POST /syncs` `{service, entities?, division?, full_refresh?, callback_url?}` validates the
//!   request like `odatasync sync` (an unknown service or entity is a 400 with the planner's
//!   message), records a `queued` batch and answers 202 with its id and a `Location`;
//! * a scheduler runs the queued batches, one running batch per service at a time;
//! * `GET /syncs/{id}`: status, times, per-entity figures and errors, the callback's state;
//!   polling one id faster than every 200 ms gets 429 with `Retry-After`;
//! * `GET /syncs?limit=&offset=&service=&status=`: the newest batches;
//! * when a batch ends its final status document is POSTed to `callback_url`, retried with
//!   exponential backoff, every attempt counted.
//!
//! Every route needs `Authorization: Bearer $ODATASYNC_API_TOKEN`. Every status lives in the
//! database (`odata_sync_batches`, `odata_sync_runs`): a restarted server loses nothing, fails
//! the batches a dead process was running (see [`worker::recover`]) and picks up the queued
//! ones.

mod api;
mod callback;
mod store;
mod worker;

pub use store::{Batch, BatchRun};

use crate::error::Error;
use odata_runtime::sql::Db;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The environment variable with the API token every request must present.
pub const ENV_API_TOKEN: &str = "ODATASYNC_API_TOKEN";

/// The options of `odatasync serve` (besides `--database`, which the CLI resolves).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Where to listen, e.g. 127.0.0.1:8080 (port 0: a free port; the address is printed).
    #[arg(long)]
    pub listen: SocketAddr,
    /// `sqlite:PATH`, a file path, or `postgres://...` (default: $ODATASYNC_DATABASE, else
    /// odatasync.sqlite).
    #[arg(long)]
    pub database: Option<String>,
    /// This is the only server on the database: on start, every batch still `running` was
    /// interrupted (without it only those of dead processes on this host are).
    #[arg(long)]
    pub single_node: bool,
    /// Attempts to deliver a callback (the first and the retries).
    #[arg(long, default_value_t = 6)]
    pub callback_attempts: u32,
    /// Wait before the first retry of a callback, doubled for each further one (jittered).
    #[arg(long, default_value_t = 1000)]
    pub callback_retry_ms: u64,
}

/// What the server runs with.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub single_node: bool,
    pub callback_attempts: u32,
    pub callback_min_delay: Duration,
    /// The shortest interval between two polls of one batch (per token and id).
    pub min_poll_interval: Duration,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
}

impl From<&ServeArgs> for ServeOptions {
    fn from(a: &ServeArgs) -> Self {
        ServeOptions {
            single_node: a.single_node,
            callback_attempts: a.callback_attempts.max(1),
            callback_min_delay: Duration::from_millis(a.callback_retry_ms),
            min_poll_interval: Duration::from_millis(200),
            max_body_bytes: 64 * 1024,
        }
    }
}

/// The API token, as a SHA-256 digest (compared in constant time with the digest of what a
/// request presents; the token itself is not kept).
#[derive(Clone)]
pub struct ApiToken([u8; 32]);

impl ApiToken {
    pub fn new(token: &str) -> ApiToken {
        ApiToken(Sha256::digest(token.as_bytes()).into())
    }

    /// From `$ODATASYNC_API_TOKEN`; a missing or empty variable is a usage error (exit 2):
    /// the server never runs without one.
    pub fn from_env() -> Result<ApiToken, Error> {
        match std::env::var(ENV_API_TOKEN) {
            Ok(t) if !t.trim().is_empty() => Ok(ApiToken::new(&t)),
            _ => Err(Error::Usage(format!(
                "${ENV_API_TOKEN} is not set: `odatasync serve` requires it on every request (Authorization: Bearer <token>)"
            ))),
        }
    }

    /// Whether `presented` is the token (constant time over the digests).
    pub fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(self.0.ct_eq(&d))
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

/// State shared by the routes, the scheduler and the callbacks.
pub(crate) struct Shared {
    db: Db,
    cache: PathBuf,
    token: ApiToken,
    opts: ServeOptions,
    /// `host:pid` of this process (`odata_sync_batches.owner`).
    owner: String,
    host: String,
    /// Wakes the scheduler (a new batch, a batch that ended).
    wake: Notify,
    http: reqwest::Client,
    /// The last accepted poll per (token digest, batch id).
    polls: Mutex<HashMap<([u8; 32], String), Instant>>,
}

impl Shared {
    /// Whether the process that owned a batch is gone (only meaningful at start, when nothing
    /// runs under this process yet): this very `host:pid` (an earlier process with the same
    /// pid), or this host and a pid that is not alive, or anything with `--single-node`.
    fn owner_is_gone(&self, owner: &str) -> bool {
        if self.opts.single_node || owner.is_empty() || owner == self.owner {
            return true;
        }
        match owner.rsplit_once(':') {
            Some((host, pid)) if host == self.host => match pid.parse::<u32>() {
                Ok(pid) => !pid_alive(pid),
                Err(_) => true,
            },
            _ => false,
        }
    }
}

/// This machine's name (for `host:pid` owners).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a process with this pid runs (a zombie does not).
fn pid_alive(pid: u32) -> bool {
    if std::path::Path::new("/proc/self").exists() {
        return match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // `pid (comm) S ...`: the state follows the last ')'.
            Ok(stat) => !matches!(
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next()),
                Some("Z" | "X") | None
            ),
            Err(_) => false,
        };
    }
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Serves until the process is stopped: recovers what a previous process left, starts the
/// scheduler, prints `listening on http://ADDR` on stdout, answers requests.
pub async fn serve(db: Db, cache: PathBuf, token: ApiToken, args: &ServeArgs) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Error::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Other(e.to_string()))?;
    let host = host_name();
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| Error::Other(format!("HTTP client: {e}")))?;
    let shared = Arc::new(Shared {
        db,
        cache,
        token,
        opts: ServeOptions::from(args),
        owner: format!("{host}:{}", std::process::id()),
        host,
        wake: Notify::new(),
        http,
        polls: Mutex::new(HashMap::new()),
    });
    worker::recover(&shared).await?;
    let app = api::router(shared.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("odatasync serve: listening on http://{addr}");
    tracing::info!(owner = %shared.owner, "listening on http://{addr}");
    // The batches run on this task's thread (see `worker::scheduler`), the routes on the
    // runtime's workers.
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            tokio::select! {
                _ = worker::scheduler(shared) => Ok(()),
                r = server => match r {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(Error::Other(format!("server: {e}"))),
                    Err(e) => Err(Error::Other(format!("server task: {e}"))),
                },
            }
        })
        .await
}
