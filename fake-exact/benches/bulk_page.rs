//! Server-side cost of one 1000-row bulk page (issue 5: "a 1000-row page in under 20 ms").
//!
//! `cargo bench -p fake-exact --bench bulk_page` (release). A blocking client on loopback asks
//! for 1000-row pages at different `$skiptoken`s and only reads the body bytes (no JSON
//! parsing), so the figures are the server's generation + serialisation + loopback transfer.
//! Prints min / median per page, rows per second and the body size; no assertions on time.
//!
//! Medians on the 2-core dev machine (2026-11-23), 1M generated rows per entity:
//!
//! | page | before (`Val` per value, serde_json string escaping) | after (direct JSON writer) |
//! |---|---|---|
//! | Accounts, all 149 fields (5.0 MB) | 26.7 ms | 6.5 ms |
//! | Accounts, 10 fields (0.4 MB) | 2.15 ms | 0.50 ms |
//! | TransactionLines, all fields (2.3 MB) | 13.2 ms | 3.5 ms |

use fake_exact::{Config, FakeExact};
use std::time::{Duration, Instant};

const DIV: i32 = 100001;
const ROWS: u64 = 1_000_000;
const PAGES: u64 = 40;

fn main() {
    let h = FakeExact::start(Config {
        rows_per_entity: ROWS,
        minutely_limit: u32::MAX,
        daily_limit: u32::MAX,
        ..Config::default()
    });
    let (access, _) = h.issue_tokens();
    let http = reqwest::blocking::Client::new();
    let ten = "ID,Code,Name,Modified,Division,CreditLinePurchase,Blocked,Email,City,Country";
    let cases = [
        ("bulk/CRM/Accounts", "*", "Accounts, all fields"),
        ("bulk/CRM/Accounts", ten, "Accounts, 10 fields"),
        (
            "bulk/Financial/TransactionLines",
            "*",
            "TransactionLines, all fields",
        ),
    ];
    println!("1000-row bulk pages, {PAGES} pages each, client reads bytes only (release)");
    for (endpoint, select, label) in cases {
        let mut times: Vec<Duration> = Vec::new();
        let mut bytes = 0usize;
        for k in 0..PAGES + 3 {
            // pages spread over the million rows; the first 3 are warm-up
            let after = (k * 24_989 + 999) % (ROWS - 1000);
            let key = h.key_literal(endpoint, DIV, after).expect("endpoint");
            let url = format!(
                "{}/api/v1/{DIV}/{endpoint}?$select={select}&$skiptoken={key}",
                h.base_url()
            );
            let t = Instant::now();
            let r = http
                .get(&url)
                .header("accept", "application/json")
                .bearer_auth(&access)
                .send()
                .expect("GET");
            assert_eq!(r.status().as_u16(), 200);
            let body = r.bytes().expect("body");
            let d = t.elapsed();
            if k >= 3 {
                times.push(d);
                bytes = body.len();
            }
        }
        times.sort();
        let med = times[times.len() / 2];
        println!(
            "{label:<30} min {:>7.2} ms  median {:>7.2} ms  {:>9.0} rows/s  {:>6} KiB/page",
            times[0].as_secs_f64() * 1e3,
            med.as_secs_f64() * 1e3,
            1000.0 / med.as_secs_f64(),
            bytes / 1024
        );
    }
}
