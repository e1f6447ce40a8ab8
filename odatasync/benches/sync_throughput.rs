//! Sync throughput and memory: `odatasync sync` of one entity (sync/Financial/TransactionLines,
//! 1000 rows a page) from the in-process fake Exact Online into SQLite and PostgreSQL, against a
//! bare page-through of the same rows with the typed client (the floor: HTTP + JSON parsing,
//! nothing written). Peak RSS is the `odatasync` process's VmHWM (polled from /proc), printed
//! with its sampled anonymous and file-backed parts and the process's CPU time.
//!
//! ```sh
//! cargo bench -p odatasync --bench sync_throughput                          # 200,000 rows
//! ODATASYNC_BENCH_ROWS=1000000 cargo bench -p odatasync --bench sync_throughput
//! ```
//! Prints figures; asserts nothing about time.

#[path = "../tests/common/mod.rs"]
mod common;

use fake_exact::{Config, FakeExact, Handle};
use futures_util::TryStreamExt;
use std::process::Command;
use std::time::{Duration, Instant};

const DIV: i32 = 100001;
const ENDPOINT: &str = "sync/Financial/TransactionLines";

/// Runs the CLI; returns what it took and its stdout.
fn run_cli(h: &Handle, database: &str, dir: &std::path::Path) -> (Measured, String) {
    // A refresh token as a user would hand it over: its access token is past the 570-second
    // mark (Exact refuses earlier refreshes), so move the fake's clock on by 10 minutes.
    let (_, refresh) = h.issue_tokens();
    reqwest::blocking::Client::new()
        .post(format!("{}/_test/clock", h.base_url()))
        .header("content-type", "application/json")
        .body(r#"{"advance_ms": 600000}"#)
        .send()
        .expect("advance the fake's clock");
    let cfg = h.config();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_odatasync"))
        .args([
            "sync",
            "--no-progress",
            "--service",
            "exact",
            "--entities",
            "SyncTransactionLines",
            "--division",
            &DIV.to_string(),
            "--database",
            database,
        ])
        .env(
            "ODATASYNC_BASE_URL",
            format!("{}/api/v1/{{division}}/", h.base_url()),
        )
        .env(
            "ODATASYNC_TOKEN_URL",
            format!("{}/api/oauth2/token", h.base_url()),
        )
        .env("ODATASYNC_CLIENT_ID", &cfg.client_id)
        .env("ODATASYNC_CLIENT_SECRET", &cfg.client_secret)
        .env("ODATASYNC_REFRESH_TOKEN", refresh)
        .env("ODATASYNC_SECRET_KEY_FILE", dir.join("key"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("odatasync");
    let status_path = format!("/proc/{}/status", child.id());
    let stat_path = format!("/proc/{}/stat", child.id());
    let mut m = Measured::default();
    let kib = |s: &str, key: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            m.peak_kib = m.peak_kib.max(kib(&s, "VmHWM:").unwrap_or(0));
            m.anon_kib = m.anon_kib.max(kib(&s, "RssAnon:").unwrap_or(0));
            m.file_kib = m.file_kib.max(kib(&s, "RssFile:").unwrap_or(0));
        }
        // utime + stime (fields 14 and 15, clock ticks of 1/100 s), the last sample before exit.
        if let Ok(s) = std::fs::read_to_string(&stat_path) {
            if let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if let (Some(u), Some(k)) = (f.get(11), f.get(12)) {
                    let ticks = u.parse::<u64>().unwrap_or(0) + k.parse::<u64>().unwrap_or(0);
                    m.cpu_s = ticks as f64 / 100.0;
                }
            }
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    m.elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "odatasync failed:\n{stdout}");
    (m, stdout)
}

/// What one `odatasync` run took. Memory figures are sampled every 20 ms (the peak RSS is the
/// kernel's own high-water mark, VmHWM).
#[derive(Default)]
struct Measured {
    elapsed: Duration,
    peak_kib: u64,
    /// Largest sampled anonymous RSS (heap, stacks) and file-backed RSS (mostly the binary's
    /// code pages).
    anon_kib: u64,
    file_kib: u64,
    /// CPU time (user + system) of the process.
    cpu_s: f64,
}

impl Measured {
    fn report(&self, target: &str, rows: u64, bare: Duration) {
        let t = self.elapsed.as_secs_f64();
        println!(
            "odatasync sync → {target}: {rows} rows in {t:.2} s = {:.0} rows/s ({:.2}× the bare page-through), CPU {:.2} s, peak RSS {:.1} MiB (sampled: anonymous ≤ {:.1} MiB, file-backed ≤ {:.1} MiB)",
            rows as f64 / t,
            t / bare.as_secs_f64(),
            self.cpu_s,
            self.peak_kib as f64 / 1024.0,
            self.anon_kib as f64 / 1024.0,
            self.file_kib as f64 / 1024.0,
        );
    }
}

/// This process's CPU time (user + system) so far.
fn self_cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn main() {
    let rows: u64 = std::env::var("ODATASYNC_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
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

    // The floor: typed rows paged through and dropped.
    let c = common::verifier(&h);
    let cpu0 = self_cpu_s();
    let t = Instant::now();
    let n = rt.block_on(async {
        let s = c
            .rows::<generated::exact::TransactionLineSync>(DIV)
            .endpoint(ENDPOINT)
            .stream();
        futures_util::pin_mut!(s);
        let mut n = 0u64;
        while let Some(r) = s.try_next().await.expect("row") {
            std::hint::black_box(&r);
            n += 1;
        }
        n
    });
    let bare = t.elapsed();
    let bare_cpu = self_cpu_s() - cpu0;
    assert_eq!(n, rows);
    println!(
        "bare page-through: {rows} rows in {:.2} s = {:.0} rows/s ({} calls), CPU {:.2} s (client and the in-process fake together)",
        bare.as_secs_f64(),
        rows as f64 / bare.as_secs_f64(),
        c.requests_sent(),
        bare_cpu
    );

    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("bench.sqlite").display()
    );
    let (m, out) = run_cli(&h, &sqlite, dir.path());
    m.report("SQLite", rows, bare);
    print!("{out}");

    match odata_test_support::PgServer::start() {
        Ok(pg) => {
            let url = pg.create_database("bench").expect("create database");
            let (m, out) = run_cli(&h, &url, dir.path());
            m.report("PostgreSQL", rows, bare);
            print!("{out}");
        }
        Err(e) => println!("PostgreSQL: skipped ({e})"),
    }
}
