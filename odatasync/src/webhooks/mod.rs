//! Exact Online webhooks (exact-online.md §5, config.json `webhookTopics`):
//!
//! * [`subscriptions`]: `odatasync webhooks subscribe` / `unsubscribe`, per division, idempotent;
//! * [`receiver`]: `odatasync webhooks serve`, the axum receiver (handshake, bounded bodies,
//!   HashCode check, events committed before 200) and the background [`apply::Applier`];
//! * [`signature`]: the delivery format and its HMAC; [`events`]: `odata_webhook_events`;
//!   [`topics`]: topic → tables; [`secret`]: the webhook secret sealed in `odata_secrets`.

pub mod apply;
pub mod events;
pub mod receiver;
pub mod secret;
pub mod signature;
pub mod subscriptions;
pub mod topics;

use crate::connect::{self, ConnectOptions, Connection};
use crate::error::Error;
use crate::service::Service;
use odata_runtime::sql::Db;
use std::path::Path;
use std::sync::Arc;

/// `odatasync webhooks …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum WebhooksCommand {
    /// Subscribe a callback URL to every config.json `webhookTopics` topic in every division
    /// (existing subscriptions are kept, never duplicated). Stores $ODATASYNC_WEBHOOK_SECRET
    /// encrypted for `serve`. The receiver must already answer at the URL (Exact validates it).
    Subscribe {
        /// The service folder under metadata-cache/ (its config.json lists the topics).
        #[arg(long)]
        service: String,
        /// The receiver's public URL (https:// for Exact).
        #[arg(long)]
        callback: String,
        /// Only this division.
        #[arg(long)]
        division: Option<i32>,
        /// `sqlite:PATH`, a file path, or `postgres://...` (as for `sync`).
        #[arg(long)]
        database: Option<String>,
    },
    /// Delete this app's subscriptions with that callback URL in every division.
    Unsubscribe {
        /// The service folder under metadata-cache/ (its config.json lists the topics).
        #[arg(long)]
        service: String,
        /// The callback URL the subscriptions were made with.
        #[arg(long)]
        callback: String,
        /// Only this division.
        #[arg(long)]
        division: Option<i32>,
        /// `sqlite:PATH`, a file path, or `postgres://...` (as for `sync`).
        #[arg(long)]
        database: Option<String>,
    },
    /// Receive deliveries on ADDR (e.g. 0.0.0.0:8080), store them, apply them to the tables.
    Serve {
        /// The service folder under metadata-cache/ (its config.json lists the topics).
        #[arg(long)]
        service: String,
        /// The address to listen on (`0.0.0.0:8080`; port 0 picks a free port).
        #[arg(long)]
        listen: String,
        /// `sqlite:PATH`, a file path, or `postgres://...` (as for `sync`).
        #[arg(long)]
        database: Option<String>,
    },
}

impl WebhooksCommand {
    /// The `--database` argument.
    pub fn database(&self) -> Option<String> {
        match self {
            WebhooksCommand::Subscribe { database, .. }
            | WebhooksCommand::Unsubscribe { database, .. }
            | WebhooksCommand::Serve { database, .. } => database.clone(),
        }
    }
}

async fn connected(service: &Service, db: &Db) -> Result<Connection, Error> {
    let conn = connect::connect(service, db, &ConnectOptions::default()).await?;
    if !connect::has_tokens(&conn).await? {
        return Err(Error::Usage(format!(
            "no tokens for service '{}': run `odatasync auth --service {}` once, or set ODATASYNC_REFRESH_TOKEN",
            service.name, service.name
        )));
    }
    Ok(conn)
}

fn check_callback(url: &str) -> Result<(), Error> {
    let u = url::Url::parse(url)
        .map_err(|e| Error::Usage(format!("--callback {url:?} is not a URL: {e}")))?;
    match u.scheme() {
        "https" => Ok(()),
        "http" => {
            tracing::warn!("--callback {url} is http://: Exact Online only calls https:// URLs");
            Ok(())
        }
        s => Err(Error::Usage(format!(
            "--callback {url:?}: scheme {s} is not http(s)"
        ))),
    }
}

/// Runs one `webhooks` command on an opened (migrated) database; the exit code.
pub async fn run(cache: &Path, db: &Db, cmd: WebhooksCommand) -> Result<u8, Error> {
    match cmd {
        WebhooksCommand::Subscribe {
            service,
            callback,
            division,
            ..
        } => {
            check_callback(&callback)?;
            let service = Service::load(cache, &service)?;
            let topics = topics::Topics::of(&service).names();
            if topics.is_empty() {
                return Err(Error::Config(format!(
                    "{}: no entity lists webhookTopics",
                    service.dir.join("config.json").display()
                )));
            }
            let key = connect::secret_key()?;
            let _ = secret::webhook_secret(db, &key, &service.name).await?;
            let conn = connected(&service, db).await?;
            let divisions = connect::divisions(&service, &conn, division).await?;
            let lines = subscriptions::subscribe(&conn, &divisions, &topics, &callback).await?;
            let created = lines
                .iter()
                .filter(|l| l.change == subscriptions::Change::Created)
                .count();
            for l in &lines {
                println!(
                    "{} {}: {}",
                    l.division.map_or("-".into(), |d| d.to_string()),
                    l.topic,
                    match l.change {
                        subscriptions::Change::Created => "subscribed",
                        _ => "already subscribed",
                    }
                );
            }
            println!(
                "{created} subscriptions created, {} already there ({callback})",
                lines.len() - created
            );
            Ok(0)
        }
        WebhooksCommand::Unsubscribe {
            service,
            callback,
            division,
            ..
        } => {
            let service = Service::load(cache, &service)?;
            let conn = connected(&service, db).await?;
            let divisions = connect::divisions(&service, &conn, division).await?;
            let lines = subscriptions::unsubscribe(&conn, &divisions, &callback).await?;
            for l in &lines {
                println!(
                    "{} {}: unsubscribed",
                    l.division.map_or("-".into(), |d| d.to_string()),
                    l.topic
                );
            }
            println!("{} subscriptions deleted ({callback})", lines.len());
            Ok(0)
        }
        WebhooksCommand::Serve {
            service, listen, ..
        } => {
            let service = Service::load(cache, &service)?;
            let topics = Arc::new(topics::Topics::of(&service));
            let key = connect::secret_key()?;
            let secret = secret::webhook_secret(db, &key, &service.name).await?;
            let conn = connected(&service, db).await?;
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| Error::Usage(format!("cannot listen on {listen}: {e}")))?;
            let addr = listener
                .local_addr()
                .map_err(|e| Error::Other(e.to_string()))?;
            println!(
                "listening on http://{addr} (topics: {})",
                topics.names().join(", ")
            );
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            let wake = Arc::new(tokio::sync::Notify::new());
            let receiver = receiver::Receiver {
                db: db.clone(),
                service: service.name.clone(),
                topics: topics.clone(),
                secret: secret.into_bytes(),
                wake,
            };
            let applier = apply::Applier {
                db: db.clone(),
                client: conn.client.clone(),
                service: service.name.clone(),
                topics,
            };
            receiver::serve(
                listener,
                receiver,
                applier,
                receiver::apply_delay_from_env(),
            )
            .await?;
            Ok(0)
        }
    }
}
