//! Serves the fake Exact Online on a loopback address until killed.
//!
//! `fake-exact --addr 127.0.0.1:8080 --divisions 100001,100002 --rows 1000`

use clap::Parser;
use fake_exact::{Clock, Config, FakeExact};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "A local fake of the Exact Online REST API (OData V2, OAuth2, rate limits)")]
struct Args {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Comma-separated division codes.
    #[arg(long, value_delimiter = ',', default_value = "100001,100002,100003")]
    divisions: Vec<i32>,
    /// Generated rows per entity per division.
    #[arg(long, default_value_t = 10)]
    rows: u64,
    /// Per-entity row counts, e.g. `--entity-rows Accounts=1000000` (repeatable).
    #[arg(long = "entity-rows")]
    entity_rows: Vec<String>,
    #[arg(long, default_value = "b81cc4de-d192-400e-bcb4-09254394c52a")]
    client_id: String,
    #[arg(long, default_value = "fake-secret")]
    client_secret: String,
    /// Registered redirect URI (any is accepted when absent).
    #[arg(long)]
    redirect_uri: Option<String>,
    /// Clock speed-up factor.
    #[arg(long, default_value_t = 1.0)]
    clock_factor: f64,
    #[arg(long, default_value_t = 60)]
    minutely_limit: u32,
    #[arg(long, default_value_t = 5000)]
    daily_limit: u32,
    /// Directory with the cached `$metadata` documents.
    #[arg(long)]
    metadata_dir: Option<PathBuf>,
    /// Serve data without bearer tokens.
    #[arg(long)]
    no_auth: bool,
    /// Clock milliseconds every API answer takes (the real service's round trip).
    #[arg(long, default_value_t = 0)]
    latency_ms: i64,
}

fn main() {
    let a = Args::parse();
    let mut cfg = Config {
        addr: a.addr,
        seed: a.seed,
        divisions: a.divisions,
        rows_per_entity: a.rows,
        client_id: a.client_id,
        client_secret: a.client_secret,
        redirect_uri: a.redirect_uri,
        clock: Clock::accelerated(a.clock_factor),
        minutely_limit: a.minutely_limit,
        daily_limit: a.daily_limit,
        require_auth: !a.no_auth,
        latency_ms: a.latency_ms,
        ..Config::default()
    };
    if let Some(d) = a.metadata_dir {
        cfg.metadata_dir = d;
    }
    for er in a.entity_rows {
        let Some((k, v)) = er.split_once('=') else {
            eprintln!("--entity-rows expects NAME=COUNT, got {er}");
            std::process::exit(2);
        };
        let Ok(v) = v.parse() else {
            eprintln!("--entity-rows: bad count in {er}");
            std::process::exit(2);
        };
        cfg.rows.insert(k.to_string(), v);
    }
    let h = match FakeExact::try_start(cfg) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("fake-exact: {e}");
            std::process::exit(1);
        }
    };
    println!("fake Exact Online listening on {}", h.base_url());
    h.wait();
}
