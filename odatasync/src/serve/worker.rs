//! Runs the queued batches: one running batch per service at a time (others of that service
//! wait `queued`), each with [`run_batch`] and the batch id, so its runs are the rows of
//! `odata_sync_runs` with that `batch_id`. Also the recovery after a crash.

use super::store::{self, Batch};
use super::{callback, Shared};
use crate::connect::{self, ConnectOptions};
use crate::error::Error;
use crate::plan;
use crate::run::{run_batch, BatchReport, RunOptions};
use crate::service::Service;
use std::sync::Arc;
use std::time::Duration;

/// How often the queue is looked at without a wake-up (batches queued by another server on the
/// same database, a batch of another server that ended).
const POLL: Duration = Duration::from_secs(1);

/// The scheduler: claims the oldest queued batch of every service that has none running and
/// runs it in its own task. Woken by new batches and by batches that end.
///
/// Runs inside a [`tokio::task::LocalSet`] on the server's runtime: a batch's future is not
/// `Send` (the generated table visitors), so batches are `spawn_local` tasks, which keeps them
/// on the runtime that owns the database connections.
pub async fn scheduler(shared: Arc<Shared>) {
    loop {
        match store::queued_services(&shared.db).await {
            Ok(services) => {
                for service in services {
                    match store::claim(&shared.db, &service, &shared.owner).await {
                        Ok(Some(batch)) => {
                            tracing::info!(batch = %batch.id, service = %service, "batch started");
                            tokio::task::spawn_local(run_one(shared.clone(), batch));
                        }
                        Ok(None) => {}
                        Err(e) => tracing::error!(service = %service, "claiming a batch: {e}"),
                    }
                }
            }
            Err(e) => tracing::error!("reading the queue: {e}"),
        }
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Runs one claimed batch to its end, records the end, wakes the scheduler (the next batch of
/// the service may start) and delivers the callback.
async fn run_one(shared: Arc<Shared>, batch: Batch) {
    let id = batch.id.clone();
    // In a task of its own, so that a panic ends the batch as failed instead of leaving it
    // running.
    let inner = tokio::task::spawn_local(execute(shared.clone(), batch));
    let (status, message) = match inner.await {
        Ok(Ok(report)) => {
            let failed: Vec<String> = report
                .failures()
                .map(|o| match o.division {
                    Some(d) => format!("{} [{d}]", o.entity),
                    None => o.entity.clone(),
                })
                .collect();
            if failed.is_empty() {
                ("succeeded", None)
            } else {
                (
                    "failed",
                    Some(format!(
                        "{} of {} runs failed: {}",
                        failed.len(),
                        report.outcomes.len(),
                        failed.join(", ")
                    )),
                )
            }
        }
        Ok(Err(e)) => ("failed", Some(e.to_string())),
        Err(e) => ("failed", Some(format!("the batch task stopped: {e}"))),
    };
    if let Err(e) = store::finish(&shared.db, &id, status, message.as_deref()).await {
        tracing::error!(batch = %id, "recording the end of the batch: {e}");
    }
    tracing::info!(batch = %id, "batch {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default());
    shared.wake.notify_one();
    callback::deliver(shared, id).await;
}

async fn execute(shared: Arc<Shared>, batch: Batch) -> Result<BatchReport, Error> {
    let service = Service::load(&shared.cache, &batch.service)?;
    let names = batch.entity_names();
    let planned = plan::plan(&service, names.as_deref())?;
    let conn = connect::connect(&service, &shared.db, &ConnectOptions::default()).await?;
    if !connect::has_tokens(&conn).await? {
        return Err(Error::Usage(format!(
            "no tokens for service '{}' in the database: run `odatasync auth --service {}` once, or set ODATASYNC_REFRESH_TOKEN for the server",
            service.name, service.name
        )));
    }
    let division = batch
        .division
        .map(|d| {
            i32::try_from(d).map_err(|_| Error::Usage(format!("division {d} is out of range")))
        })
        .transpose()?;
    let divisions = connect::divisions(&service, &conn, division).await?;
    let opts = RunOptions {
        full_refresh: batch.full_refresh,
        batch_id: Some(batch.id.clone()),
        ..RunOptions::default()
    };
    run_batch(
        &conn.client,
        &shared.db,
        &service,
        &planned,
        &divisions,
        &opts,
    )
    .await
}

/// After a start: batches `running` under a process that is gone are marked failed (their
/// unfinished runs too) and their callbacks delivered; finished batches whose callback was
/// still pending under a process that is gone get it delivered. Queued batches need nothing:
/// the scheduler picks them up.
///
/// Gone: the owner is this server's own `host:pid` (a previous process with the same pid), or
/// runs on this host and its pid is not alive, or any owner with `--single-node`. A batch of a
/// live process, or of another host without `--single-node`, is left alone.
pub async fn recover(shared: &Arc<Shared>) -> Result<(), Error> {
    for b in store::in_status(&shared.db, "running", false).await? {
        let owner = b.owner.clone().unwrap_or_default();
        if !shared.owner_is_gone(&owner) {
            tracing::warn!(batch = %b.id, owner = %owner, "running under another live server; left alone");
            continue;
        }
        if !store::take_over(&shared.db, &b.id, b.owner.as_deref(), &shared.owner).await? {
            continue;
        }
        let msg = format!(
            "interrupted: the server process {owner} stopped while the batch ran; marked failed by {} on start (run it again with a new POST /syncs)",
            shared.owner
        );
        store::finish(&shared.db, &b.id, "failed", Some(&msg)).await?;
        tracing::warn!(batch = %b.id, "{msg}");
    }
    // Callbacks still pending: those of the batches just failed, and those a dead process did
    // not get to deliver.
    for status in ["succeeded", "failed"] {
        for b in store::in_status(&shared.db, status, true).await? {
            if !shared.owner_is_gone(b.owner.as_deref().unwrap_or_default()) {
                continue;
            }
            if store::take_over(&shared.db, &b.id, b.owner.as_deref(), &shared.owner).await? {
                tokio::spawn(callback::deliver(shared.clone(), b.id.clone()));
            }
        }
    }
    Ok(())
}
