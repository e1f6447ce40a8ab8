//! `odatasync demo`: the whole job on a fresh machine, with nothing but this binary. Starts the
//! bundled fake Exact Online on loopback, logs in through the OAuth2 authorization-code flow,
//! syncs every configured entity of its divisions into a SQLite file, then changes rows on the
//! fake and syncs again to show that only the changes are fetched.

use crate::connect::{self, ConnectOptions, Connection};
use crate::error::Error;
use crate::plan;
use crate::run::{run_batch, BatchReport, RunOptions};
use crate::service::Service;
use fake_exact::{Config, FakeExact, Handle};
use indicatif::MultiProgress;
use odata_runtime::client::Secret;
use odata_runtime::sql::Db;
use odata_runtime::sync::apply_migrations;
use std::path::{Path, PathBuf};

/// Settings of the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The SQLite file to (re)create.
    pub db_path: PathBuf,
    /// Rows per entity and division on the fake (transaction lines: 5×).
    pub rows: u64,
    pub divisions: Vec<i32>,
    pub progress: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            db_path: PathBuf::from("demo.sqlite"),
            rows: 400,
            divisions: vec![100001, 100002, 100003],
            progress: true,
        }
    }
}

/// The two runs of the demo and what was changed in between.
#[derive(Debug)]
pub struct DemoReport {
    pub first: BatchReport,
    pub second: BatchReport,
    /// Changes made on the fake between the runs: (endpoint, op, count).
    pub mutations: Vec<(String, String, u64)>,
}

fn remove_db(path: &Path) -> Result<(), Error> {
    for suffix in ["", "-wal", "-shm", ".token-lock"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(PathBuf::from(&p)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Other(format!(
                    "cannot replace {}: {e}",
                    PathBuf::from(p).display()
                )))
            }
        }
    }
    Ok(())
}

/// The fake the demo runs against.
pub fn start_fake(opts: &DemoOptions) -> Result<Handle, Error> {
    let mut cfg = Config {
        divisions: opts.divisions.clone(),
        rows_per_entity: opts.rows,
        ..Config::default()
    };
    cfg.rows.insert("TransactionLines".into(), opts.rows * 5);
    FakeExact::try_start(cfg).map_err(|e| Error::Other(format!("fake Exact Online: {e}")))
}

/// Runs the demo; `out` receives the text meant for the terminal.
pub async fn demo(
    cache: &Path,
    opts: &DemoOptions,
    out: &mut (dyn FnMut(&str) + Send),
) -> Result<DemoReport, Error> {
    let service = Service::load(cache, "exact")?;
    let fake = start_fake(opts)?;
    out(&format!(
        "fake Exact Online listening on {} ({} divisions, {} rows per entity, limits 60 calls/minute and 5000/day per division)",
        fake.base_url(),
        opts.divisions.len(),
        opts.rows
    ));
    remove_db(&opts.db_path)?;
    let url = format!("sqlite:{}?mode=rwc", opts.db_path.display());
    let db = Db::connect(&url).await?;
    apply_migrations(&db).await?;
    let mut key_file = opts.db_path.as_os_str().to_owned();
    key_file.push(".key");
    let cfg = fake.config();
    let copts = ConnectOptions {
        credentials: Some((
            cfg.client_id.clone(),
            Secret::new(cfg.client_secret.clone()),
        )),
        base_url: Some(format!("{}/api/v1/{{division}}/", fake.base_url())),
        token_url: Some(format!("{}/api/oauth2/token", fake.base_url())),
        redirect_uri: Some("http://127.0.0.1:0/callback".into()),
        secret_key_file: Some(PathBuf::from(key_file)),
        ..ConnectOptions::default()
    };
    // The authorization-code login, with this process playing the browser: it follows the
    // consent redirect to its own loopback listener.
    let conn: Connection = connect::login(&service, &db, &copts, |authorize_url| async move {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| Error::Other(e.to_string()))?;
        let r = http
            .get(&authorize_url)
            .send()
            .await
            .map_err(|e| Error::Other(format!("login: {e}")))?;
        if !r.status().is_success() {
            return Err(Error::Other(format!("login: HTTP {}", r.status())));
        }
        Ok(())
    })
    .await?;
    out("logged in (authorization code → token pair, stored encrypted in the database)");
    let divisions = connect::divisions(&service, &conn, None).await?;
    out(&format!(
        "divisions the token reaches: {}",
        divisions
            .iter()
            .flatten()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let planned = plan::plan(&service, None)?;
    let run_opts = |progress: bool| RunOptions {
        progress: progress.then(MultiProgress::new),
        ..RunOptions::default()
    };
    out(&format!(
        "\nfirst run: every configured entity of every division into {}",
        opts.db_path.display()
    ));
    let first = run_batch(
        &conn.client,
        &db,
        &service,
        &planned,
        &divisions,
        &run_opts(opts.progress),
    )
    .await?;
    out(&first.summary_table());
    out(&format!(
        "{} API calls, {:.1} s",
        first.api_calls(),
        first.elapsed.as_secs_f64()
    ));

    // Changes on the service: updates, inserts and deletes in the first division.
    let d = opts.divisions[0];
    let mut mutations = Vec::new();
    let http = reqwest::Client::new();
    let mut ops = Vec::new();
    for (endpoint, field, updates, inserts, deletes) in [
        ("crm/Accounts", "Name", 3u64, 2u64, 1u64),
        ("financial/GLAccounts", "Description", 1, 0, 1),
        (
            "financialtransaction/TransactionLines",
            "Description",
            2,
            5,
            0,
        ),
    ] {
        for i in 0..updates {
            if let Some(key) = fake.key_literal(endpoint, d, i) {
                ops.push(serde_json::json!({"entity": endpoint, "division": d, "op": "update", "key": key, "fields": {field: format!("changed by the demo {i}")}}));
            }
        }
        if inserts > 0 {
            ops.push(serde_json::json!({"entity": endpoint, "division": d, "op": "insert", "count": inserts}));
        }
        for i in 0..deletes {
            if let Some(key) = fake.key_literal(endpoint, d, 10 + i) {
                ops.push(serde_json::json!({"entity": endpoint, "division": d, "op": "delete", "key": key}));
            }
        }
        mutations.push((endpoint.to_string(), "update".to_string(), updates));
        mutations.push((endpoint.to_string(), "insert".to_string(), inserts));
        mutations.push((endpoint.to_string(), "delete".to_string(), deletes));
    }
    let r = http
        .post(format!("{}/_test/mutate", fake.base_url()))
        .header("content-type", "application/json")
        .body(serde_json::Value::Array(ops).to_string())
        .send()
        .await
        .map_err(|e| Error::Other(format!("changing rows on the fake: {e}")))?;
    if !r.status().is_success() {
        let body = r.text().await.unwrap_or_default();
        return Err(Error::Other(format!("changing rows on the fake: {body}")));
    }
    out(&format!(
        "\nchanged on the service (division {d}): {}",
        mutations
            .iter()
            .filter(|m| m.2 > 0)
            .map(|(e, op, n)| format!("{e} {op} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out("\nsecond run: incremental (Timestamp / Modified cursors, sync/Deleted)");
    let second = run_batch(
        &conn.client,
        &db,
        &service,
        &planned,
        &divisions,
        &run_opts(opts.progress),
    )
    .await?;
    out(&second.summary_table());
    out(&format!(
        "{} API calls, {:.1} s; entities that changed: {}",
        second.api_calls(),
        second.elapsed.as_secs_f64(),
        second.changed_entities().join(", ")
    ));
    out(&format!(
        "\nthe data is in {} (tables exact_*; run records in odata_sync_runs); `odatasync status --service exact --database sqlite:{}` shows the runs",
        opts.db_path.display(),
        opts.db_path.display()
    ));
    drop(fake);
    Ok(DemoReport {
        first,
        second,
        mutations,
    })
}
