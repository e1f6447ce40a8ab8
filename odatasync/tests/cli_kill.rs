//! `odatasync sync` killed with SIGKILL at random points, then run to completion: nothing lost,
//! nothing duplicated, cursors consistent.
//!
//! Each trial starts the binary (every configured entity of 2 divisions; transaction lines
//! 5,000 a division, the others 200: a whole run takes a few seconds in a debug build), kills it after a random delay (seeded; set
//! `ODATASYNC_KILL_SEED` to replay, every trial is logged), sometimes with `--full-refresh`,
//! and between trials changes rows on the fake (inserts, updates, deletes). A final run must
//! exit 0 and leave every table equal to what the fake serves (every row once: the primary
//! key; live = generated + inserted − deleted; no deleted row live), every `Timestamp` cursor
//! equal to the largest `Timestamp` stored. SQLite: 20 trials; PostgreSQL: 6.

mod common;

use common::*;
use fake_exact::Handle;
use odata_runtime::sql::Db;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const DIVS: [i32; 2] = [100001, 100002];
const TL_ROWS: u64 = 5_000;
const OTHER_ROWS: u64 = 200;
const TL: &str = "financialtransaction/TransactionLines";
const ACC: &str = "crm/Accounts";

fn seed() -> u64 {
    std::env::var("ODATASYNC_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b11_5eed)
}

/// Changes made on the fake, to know what the tables must hold.
#[derive(Default)]
struct Changes {
    /// (endpoint, division) → generated row indexes deleted.
    deleted: BTreeMap<(&'static str, i32), BTreeSet<u64>>,
    /// (endpoint, division) → rows inserted.
    inserted: BTreeMap<(&'static str, i32), u64>,
    updates: u64,
}

/// A few random inserts, updates and deletes.
async fn change_some(h: &Handle, rng: &mut Rng, ch: &mut Changes, trial: usize) -> String {
    let mut ops = Vec::new();
    let mut log = Vec::new();
    for (ep, rows) in [(TL, TL_ROWS), (ACC, OTHER_ROWS)] {
        let d = DIVS[rng.below(DIVS.len() as u64) as usize];
        let ins = rng.below(4);
        if ins > 0 {
            ops.push(json!({"entity": ep, "division": d, "op": "insert", "count": ins}));
            *ch.inserted.entry((ep, d)).or_default() += ins;
        }
        for _ in 0..rng.below(3) {
            let i = rng.below(rows);
            if ch.deleted.get(&(ep, d)).is_some_and(|s| s.contains(&i)) {
                continue;
            }
            let field = if ep == TL { "Description" } else { "Name" };
            ops.push(json!({"entity": ep, "division": d, "op": "update", "key": h.key_literal(ep, d, i).expect("key"), "fields": {field: format!("trial {trial} row {i}")}}));
            ch.updates += 1;
        }
        if rng.below(2) == 0 {
            let i = rng.below(rows);
            if ch.deleted.entry((ep, d)).or_default().insert(i) {
                ops.push(json!({"entity": ep, "division": d, "op": "delete", "key": h.key_literal(ep, d, i).expect("key")}));
                log.push(format!("delete {ep}[{d}] #{i}"));
            }
        }
        log.push(format!("{ep}[{d}] +{ins}"));
    }
    if !ops.is_empty() {
        mutate(h, serde_json::Value::Array(ops)).await;
    }
    log.join(", ")
}

fn kill_trials(backend: &str, db_url: Option<String>, trials: usize, seed: u64) {
    let t0 = Instant::now();
    let rt = runtime();
    let mut cfg = roomy_config(&DIVS, OTHER_ROWS);
    cfg.rows.insert("TransactionLines".into(), TL_ROWS);
    let (h, refresh) = start_fake(cfg);
    let cli = Cli::new(&h, &refresh, db_url);
    let mut rng = Rng::new(seed);
    let mut ch = Changes::default();
    let (mut killed, mut completed) = (0, 0);
    println!("{backend}: seed {seed}");
    for trial in 0..trials {
        // The first run and full refreshes take seconds, incremental runs a fraction of one.
        let full = trial > 0 && rng.below(2) == 0;
        let delay = if trial == 0 || full {
            Duration::from_millis(50 + rng.below(3500))
        } else {
            Duration::from_millis(20 + rng.below(400))
        };
        let args: &[&str] = if full { &["--full-refresh"] } else { &[] };
        let mut child = cli.sync_command(args).spawn().expect("spawn odatasync");
        let started = Instant::now();
        let mut outcome = None;
        while started.elapsed() < delay {
            if let Some(s) = child.try_wait().expect("try_wait") {
                outcome = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let what = match outcome {
            Some(s) => {
                assert!(s.success(), "{backend}: trial {trial} exited with {s}");
                completed += 1;
                format!("completed in {} ms", started.elapsed().as_millis())
            }
            None => {
                // SIGKILL on Unix.
                child.kill().expect("kill");
                let s = child.wait().expect("wait");
                if s.success() {
                    completed += 1;
                    format!("completed just before the kill at {} ms", delay.as_millis())
                } else {
                    killed += 1;
                    format!("killed at {} ms", delay.as_millis())
                }
            }
        };
        // Where the kill landed: the run that was going on.
        let db = rt.block_on(Db::connect(&cli.open_url())).expect("db");
        let running: Vec<String> = rt
            .block_on(last_batch(&db))
            .iter()
            .filter(|r| r.status == "running")
            .map(|r| format!("{} [{}]", r.entity, r.division))
            .collect();
        drop(db);
        let what = if running.is_empty() {
            what
        } else {
            format!("{what} in {}", running.join(", "))
        };
        let changes = if rng.below(2) == 0 {
            rt.block_on(change_some(&h, &mut rng, &mut ch, trial))
        } else {
            "no changes".to_string()
        };
        println!(
            "{backend}: trial {trial}{}: {what}; then {changes}",
            if full { " (--full-refresh)" } else { "" }
        );
    }
    let last = cli.sync(&[]);
    last.assert_code(0, &format!("{backend}: final run"));
    let stats = h.stats();
    assert!(
        stats.violations.is_empty(),
        "{backend}: violations {:?}",
        violations(&stats)
    );
    let db = rt.block_on(Db::connect(&cli.open_url())).expect("db");
    let batch = rt.block_on(last_batch(&db));
    assert!(
        batch.iter().all(|r| r.status == "succeeded"),
        "{backend}: final batch {batch:?}"
    );
    let entities = default_entities();
    let c = verifier(&h);
    let compared = rt.block_on(assert_all_equal(&c, &db, &entities, &DIVS, backend));
    // Every row once and deletions marked: the live rows are the generated and inserted ones
    // less the deleted ones; a deleted row is stored (marked) unless it was deleted before a
    // run reached it; no deleted generated row is live.
    for (e, ep, generated) in [
        ("SyncTransactionLines", TL, TL_ROWS),
        ("SyncAccounts", ACC, OTHER_ROWS),
    ] {
        let t = entity(e).table;
        for d in DIVS {
            let inserted = ch.inserted.get(&(ep, d)).copied().unwrap_or(0);
            let gone = ch.deleted.get(&(ep, d)).cloned().unwrap_or_default();
            let all = rt.block_on(count_rows(&db, t, Some(d), false));
            let live = rt.block_on(count_rows(&db, t, Some(d), true));
            assert_eq!(
                live,
                (generated + inserted) as i64 - gone.len() as i64,
                "{backend}: {e} [{d}]: live rows"
            );
            assert!(
                all - live <= gone.len() as i64,
                "{backend}: {e} [{d}]: {} rows marked deleted, {} deleted on the fake",
                all - live,
                gone.len()
            );
            for i in gone {
                let id = guid(&h, ep, d, i);
                let n = rt.block_on(scalar_i64(
                    &db,
                    &format!("SELECT COUNT(*) FROM \"{}\" WHERE \"division\" = {d} AND \"id\" = '{id}' AND \"deleted_at\" IS NULL", t.name),
                ));
                assert_eq!(n, 0, "{backend}: {e} [{d}]: deleted row #{i} is live");
            }
        }
    }
    // Timestamp cursors: the largest Timestamp stored (never ahead of the rows, never behind).
    let cur = rt.block_on(cursors(&db));
    let mut checked = 0;
    for e in entities.iter().filter(|e| !e.deletion_log) {
        for d in DIVS {
            let Some((kind, value, _)) = cur.get(&(i64::from(d), e.name.clone())) else {
                continue;
            };
            if kind != "timestamp" {
                continue;
            }
            let max = rt.block_on(text_rows(
                &db,
                &format!(
                    "SELECT CAST(MAX(\"timestamp\") AS TEXT) FROM \"{}\" WHERE \"division\" = {d}",
                    e.table.name
                ),
            ));
            assert_eq!(
                value.as_deref(),
                max[0][0].as_deref(),
                "{backend}: {} [{d}]: cursor against the largest Timestamp stored",
                e.name
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 2 * 6,
        "{backend}: Timestamp cursors checked: {checked}"
    );
    println!(
        "{backend}: {trials} trials ({killed} killed, {completed} completed), {} updates, inserts {:?}, deletes {}; final run {:.1} s; {} rows equal the fake; {checked} cursors consistent; {:.1} s in all",
        ch.updates,
        ch.inserted,
        ch.deleted.values().map(|s| s.len()).sum::<usize>(),
        last.elapsed.as_secs_f64(),
        compared.values().sum::<usize>(),
        t0.elapsed().as_secs_f64()
    );
    assert!(
        killed >= trials / 3,
        "{backend}: only {killed} of {trials} trials were killed"
    );
}

#[test]
fn kill_sqlite() {
    kill_trials("sqlite", None, 20, seed());
}

#[test]
fn kill_postgres() {
    let pg = odata_test_support::PgServer::start().expect("PostgreSQL");
    let url = pg.create_database("cli_kill").expect("create database");
    kill_trials("postgres", Some(url), 6, seed() ^ 0x9e37_79b9);
}
