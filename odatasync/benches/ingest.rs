//! Change files: export and ingest throughput. Syncs sync/Financial/TransactionLines (one
//! division) from the in-process fake Exact Online into a SQLite file, exports the rows as a
//! change file (gzip JSON Lines + message file), then ingests that file into a fresh SQLite file
//! and a fresh PostgreSQL database (new rows), and once more into each (every row an update),
//! one transaction per file, through the same upsert path as a sync.
//!
//! ```sh
//! cargo bench -p odatasync --bench ingest                              # 100,000 rows
//! ODATASYNC_BENCH_ROWS=500000 cargo bench -p odatasync --bench ingest
//! ```
//! Prints figures; asserts only that every row arrived.

#[path = "../tests/common/mod.rs"]
mod common;

use fake_exact::{Config, FakeExact};
use odata_runtime::sql::Db;
use odata_runtime::sync::apply_migrations;
use odatasync::ingest::{dangling_references, ingest_files, IngestOptions};
use odatasync::run::{run_batch, RunOptions};
use odatasync::service::Service;
use std::path::{Path, PathBuf};
use std::time::Instant;

const DIV: i32 = 100001;
const ENTITY: &str = "SyncTransactionLines";

async fn fresh(url: &str) -> Db {
    let db = Db::connect(url).await.expect("database");
    apply_migrations(&db).await.expect("migrations");
    db
}

/// Ingests `message` twice (new rows, then updates) and prints rows per second.
async fn measure(backend: &str, db: &Db, service: &Service, message: &Path, rows: u64) {
    for pass in ["new rows", "updates"] {
        let t = Instant::now();
        let out = ingest_files(
            db,
            service,
            &[message.to_path_buf()],
            &IngestOptions::default(),
        )
        .await;
        let secs = t.elapsed().as_secs_f64();
        assert!(out.iter().all(|f| f.error.is_none()), "{out:?}");
        assert_eq!(out.iter().map(|f| f.rows).sum::<u64>(), rows);
        println!(
            "ingest → {backend} ({pass}): {rows} rows in {secs:.2} s = {:.0} rows/s",
            rows as f64 / secs
        );
    }
    let t = Instant::now();
    let d = dangling_references(db, service).await.expect("dangling");
    println!(
        "dangling-reference report on {backend}: {} references with missing parents, {:.2} s",
        d.len(),
        t.elapsed().as_secs_f64()
    );
}

fn main() {
    let rows: u64 = std::env::var("ODATASYNC_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut cfg = Config {
        divisions: vec![DIV],
        rows_per_entity: 10,
        minutely_limit: 1_000_000,
        daily_limit: 100_000_000,
        ..Config::default()
    };
    cfg.rows.insert("TransactionLines".into(), rows);
    let h = FakeExact::start(cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cache = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../metadata-cache"));
    let service = Service::load(&cache, "exact").expect("service");
    let dir = tempfile::tempdir().unwrap();
    let c = common::verifier(&h);
    let message = rt.block_on(async {
        let src = fresh(&format!(
            "sqlite:{}?mode=rwc",
            dir.path().join("src.sqlite").display()
        ))
        .await;
        let plan = odatasync::plan::plan(&service, Some(&[ENTITY.to_string()])).expect("plan");
        let since = chrono::Utc::now();
        let t = Instant::now();
        let report = run_batch(&c, &src, &service, &plan, &[Some(DIV)], &RunOptions::default())
            .await
            .expect("sync");
        assert_eq!(report.exit_code(), 0);
        println!(
            "source: {rows} rows synced into SQLite in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let files = odatasync::export::export_batch(
            &src,
            &service,
            &plan,
            &report,
            since,
            &dir.path().join("out"),
        )
        .await
        .expect("export");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].rows, rows);
        let size = std::fs::metadata(&files[0].data).map(|m| m.len()).unwrap_or(0);
        println!(
            "export from SQLite: {rows} rows in {secs:.2} s = {:.0} rows/s, {:.1} MiB gzip ({:.0} bytes a row)",
            rows as f64 / secs,
            size as f64 / 1048576.0,
            size as f64 / rows as f64
        );
        files[0].message.clone()
    });

    rt.block_on(async {
        let db = fresh(&format!(
            "sqlite:{}?mode=rwc",
            dir.path().join("copy.sqlite").display()
        ))
        .await;
        measure("SQLite", &db, &service, &message, rows).await;
    });
    match odata_test_support::PgServer::start() {
        Ok(pg) => {
            let url = pg.create_database("ingest_bench").expect("create database");
            rt.block_on(async {
                let db = fresh(&url).await;
                measure("PostgreSQL", &db, &service, &message, rows).await;
            });
        }
        Err(e) => println!("PostgreSQL: skipped ({e})"),
    }
}
