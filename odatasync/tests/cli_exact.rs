//! `odatasync sync` end to end: the real binary as a subprocess, the fake Exact Online in this
//! process, a SQLite file and a real PostgreSQL, checked directly with sqlx.
//!
//! * `full_and_incremental_sqlite` / `_postgres`: every configured entity of 3 divisions (1,200
//!   rows each on bulk and sync endpoints, 300 on standard ones): exit 0, every table equals what the fake serves, every run `succeeded`,
//!   `check_count` asked the standard endpoint's `$count`, calls per (entity, division) within
//!   ceil(rows / page) + 2; then inserts, updates and deletes on the fake and a second run
//!   fetches only those (one call per cursor entity), sets `deleted_at`, stores the updates and
//!   runs `--hook` with the changed entities (for entities without a cursor: by their content
//!   fingerprint); a run without changes does not run the hook;
//!   `--full-refresh --entities X` leaves the other cursors alone; `odatasync status` shows
//!   runs, cursors and the token expiry but never a token.
//! * `exit_codes`: an unknown entity and a missing `ODATASYNC_CLIENT_ID` → 2 naming the problem;
//!   an entity the service refuses → 1, the others committed and succeeded, the failed run
//!   recorded with the service's message.

mod common;

use common::*;
use odata_runtime::client::{Secret, TokenStore};
use odata_runtime::sql::Db;
use odata_runtime::sync::{DbTokenStore, SecretKey};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Instant;

const DIVS: [i32; 3] = [100001, 100002, 100003];
const ROWS: u64 = 1200;
/// Entities read from standard endpoints (60 rows a call) get fewer rows.
const STANDARD_ROWS: u64 = 300;

/// Rows per division the fake serves for a config.json entity.
fn rows_of(e: &ConfigEntity) -> u64 {
    if e.is_bulk_or_sync() {
        ROWS
    } else {
        STANDARD_ROWS
    }
}

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

/// The standard endpoint of the same entity set (where `check_count` asks `$count`).
fn count_endpoint(e: &ConfigEntity, all: &[ConfigEntity]) -> String {
    if !e.is_bulk_or_sync() {
        return e.endpoint.clone();
    }
    all.iter()
        .find(|o| {
            !o.is_bulk_or_sync() && o.table.entity_set.eq_ignore_ascii_case(e.table.entity_set)
        })
        .map(|o| o.endpoint.clone())
        .unwrap_or_else(|| e.endpoint.clone())
}

fn scenario(backend: &str, db_url: Option<String>) {
    let t0 = Instant::now();
    let rt = runtime();
    let all = config_entities();
    let entities = default_entities();
    let mut cfg = roomy_config(&DIVS, ROWS);
    for e in entities.iter().filter(|e| !e.is_bulk_or_sync()) {
        cfg.rows
            .insert(e.table.entity_set.to_string(), STANDARD_ROWS);
    }
    let (h, refresh) = start_fake(cfg);
    let cli = Cli::new(&h, &refresh, db_url);

    // 1. The first, full sync.
    let first = cli.sync(&[]);
    first.assert_code(0, "first sync");
    let stats = h.stats();
    assert!(
        stats.violations.is_empty(),
        "violations: {:?}",
        violations(&stats)
    );
    let db = rt.block_on(Db::connect(&cli.open_url())).expect("open db");
    let batch = rt.block_on(last_batch(&db));
    let expected_runs: usize = entities
        .iter()
        .map(|e| if e.one_division_only { 1 } else { DIVS.len() })
        .sum();
    assert_eq!(batch.len(), expected_runs, "runs of the first batch");
    for r in &batch {
        assert_eq!(
            (r.status.as_str(), r.message.as_deref()),
            ("succeeded", None),
            "{} [{}]",
            r.entity,
            r.division
        );
        assert!(!r.full_refresh);
    }
    let summary = first.summary();
    assert_eq!(
        summary.len(),
        expected_runs,
        "summary table:\n{}",
        first.stdout
    );
    let mut calls_report = Vec::new();
    for e in entities.iter().filter(|e| !e.deletion_log) {
        let count_ep = count_endpoint(e, &all).to_lowercase();
        for (i, d) in DIVS.iter().enumerate() {
            if e.one_division_only && i > 0 {
                continue;
            }
            let run = batch
                .iter()
                .find(|r| r.entity == e.name && r.division == i64::from(*d))
                .unwrap_or_else(|| panic!("no run of {} [{d}]", e.name));
            let page = if e.is_bulk_or_sync() { 1000 } else { 60 };
            let rows = rows_of(e);
            let bound = ceil_div(rows, page) + 2;
            assert!(
                run.api_calls as u64 <= bound,
                "{} [{d}]: {} calls for {rows} rows (bound {bound})",
                e.name,
                run.api_calls
            );
            assert_eq!(run.rows_inserted as u64, rows, "{} [{d}] inserted", e.name);
            let row = &summary[&(e.name.clone(), d.to_string())];
            assert_eq!(row.rows, rows, "{} [{d}] fetched", e.name);
            assert_eq!(row.calls, run.api_calls as u64);
            // check_count: the standard endpoint was asked for its $count (for bulk and sync
            // endpoints it serves no data in this plan, so any call there is the count).
            if e.is_bulk_or_sync() {
                let n = stats
                    .calls
                    .get(&format!("{d} {count_ep}"))
                    .copied()
                    .unwrap_or(0);
                assert_eq!(n, 1, "{} [{d}]: $count calls on {count_ep}", e.name);
            }
            calls_report.push(format!("{}[{d}]={}", e.name, run.api_calls));
        }
    }
    println!(
        "{backend}: first sync {:.1} s, {} calls in total; calls per (entity, division): {}",
        first.elapsed.as_secs_f64(),
        stats.calls_total,
        calls_report.join(" ")
    );
    let c = verifier(&h);
    let compared = rt.block_on(assert_all_equal(&c, &db, &entities, &DIVS, "first sync"));
    println!(
        "{backend}: {} (entity, division) tables equal the fake, {} rows",
        compared.len(),
        compared.values().sum::<usize>()
    );

    // 2. Changes on the service, then an incremental run with a hook.
    let acc: Vec<String> = (0..5)
        .map(|i| guid(&h, "crm/Accounts", DIVS[0], i))
        .collect();
    let gl_deleted = guid(&h, "financial/GLAccounts", DIVS[0], 7);
    let tl_deleted = guid(&h, "financialtransaction/TransactionLines", DIVS[1], 9);
    let sil_deleted = guid(&h, "salesinvoice/SalesInvoiceLines", DIVS[2], 11);
    let lit = |ep: &str, d: i32, i: u64| h.key_literal(ep, d, i).expect("key");
    let mut ops = vec![
        json!({"entity": "crm/Accounts", "division": DIVS[0], "op": "insert", "count": 2}),
        json!({"entity": "crm/Accounts", "division": DIVS[0], "op": "delete", "key": lit("crm/Accounts", DIVS[0], 3)}),
        json!({"entity": "crm/Accounts", "division": DIVS[0], "op": "delete", "key": lit("crm/Accounts", DIVS[0], 4)}),
        json!({"entity": "financial/GLAccounts", "division": DIVS[0], "op": "update", "key": lit("financial/GLAccounts", DIVS[0], 6), "fields": {"Description": "changed GL"}}),
        json!({"entity": "financial/GLAccounts", "division": DIVS[0], "op": "delete", "key": lit("financial/GLAccounts", DIVS[0], 7)}),
        json!({"entity": "financialtransaction/TransactionLines", "division": DIVS[1], "op": "insert", "count": 5}),
        json!({"entity": "financialtransaction/TransactionLines", "division": DIVS[1], "op": "update", "key": lit("financialtransaction/TransactionLines", DIVS[1], 1), "fields": {"Description": "changed TL 1"}}),
        json!({"entity": "financialtransaction/TransactionLines", "division": DIVS[1], "op": "update", "key": lit("financialtransaction/TransactionLines", DIVS[1], 2), "fields": {"Description": "changed TL 2"}}),
        json!({"entity": "financialtransaction/TransactionLines", "division": DIVS[1], "op": "delete", "key": lit("financialtransaction/TransactionLines", DIVS[1], 9)}),
        json!({"entity": "salesinvoice/SalesInvoiceLines", "division": DIVS[2], "op": "update", "key": lit("salesinvoice/SalesInvoiceLines", DIVS[2], 10), "fields": {"Description": "changed SIL"}}),
        json!({"entity": "salesinvoice/SalesInvoiceLines", "division": DIVS[2], "op": "delete", "key": lit("salesinvoice/SalesInvoiceLines", DIVS[2], 11)}),
        json!({"entity": "logistics/Items", "division": DIVS[2], "op": "insert", "count": 1}),
    ];
    for (i, a) in acc.iter().take(3).enumerate() {
        ops.push(json!({"entity": "crm/Accounts", "division": DIVS[0], "op": "update", "key": format!("guid'{a}'"), "fields": {"Name": format!("changed account {i}")}}));
    }
    rt.block_on(mutate(&h, serde_json::Value::Array(ops)));
    let calls_before = h.stats().calls_total;
    let second = cli.sync(&["--hook", "echo \"$ODATASYNC_CHANGED\" > hook.txt"]);
    second.assert_code(0, "incremental sync");
    let stats2 = h.stats();
    assert!(stats2.violations.is_empty(), "{:?}", violations(&stats2));
    let batch2 = rt.block_on(last_batch(&db));
    assert_eq!(batch2.len(), expected_runs);
    assert!(batch2.iter().all(|r| r.status == "succeeded"), "{batch2:?}");
    let s2 = second.summary();
    let expect_rows = |name: &str, d: i32, rows: u64| {
        let r = &s2[&(name.to_string(), d.to_string())];
        assert_eq!(r.rows, rows, "incremental {name} [{d}]: rows fetched");
        assert_eq!(r.calls, 1, "incremental {name} [{d}]: calls");
    };
    expect_rows("SyncAccounts", DIVS[0], 5);
    expect_rows("SyncGLAccounts", DIVS[0], 1);
    expect_rows("SyncTransactionLines", DIVS[1], 7);
    expect_rows("SyncItems", DIVS[2], 1);
    expect_rows("SyncDeleted", DIVS[0], 3);
    expect_rows("SyncDeleted", DIVS[1], 1);
    let mut incr_calls = 0;
    for ((name, _), r) in &s2 {
        let e = entity(name);
        if e.is_bulk_or_sync() && name.starts_with("Sync") {
            assert_eq!(r.calls, 1, "incremental {name}: one call");
            assert!(r.rows <= 7, "incremental {name}: {} rows", r.rows);
        }
        incr_calls += r.calls;
    }
    println!(
        "{backend}: incremental sync {:.1} s, {} calls ({} seen by the fake), rows per cursor entity <= 7",
        second.elapsed.as_secs_f64(),
        incr_calls,
        stats2.calls_total - calls_before
    );
    // Deletions: by sync/Deleted (Accounts, GLAccounts, TransactionLines) and by absence after
    // a complete fetch (SalesInvoiceLines through the bulk endpoint).
    let deleted = |table: &str, d: i32, id: &str| {
        rt.block_on(scalar_i64(
            &db,
            &format!("SELECT COUNT(*) FROM \"{table}\" WHERE \"division\" = {d} AND \"id\" = '{id}' AND \"deleted_at\" IS NOT NULL"),
        ))
    };
    assert_eq!(deleted("exact_sync_accounts", DIVS[0], &acc[3]), 1);
    assert_eq!(deleted("exact_sync_accounts", DIVS[0], &acc[4]), 1);
    assert_eq!(deleted("exact_sync_gl_accounts", DIVS[0], &gl_deleted), 1);
    assert_eq!(
        deleted("exact_sync_transaction_lines", DIVS[1], &tl_deleted),
        1
    );
    assert_eq!(
        deleted("exact_bulk_sales_invoice_lines", DIVS[2], &sil_deleted),
        1
    );
    let name_of = rt.block_on(text_rows(
        &db,
        &format!(
            "SELECT \"name\" FROM \"exact_sync_accounts\" WHERE \"division\" = {} AND \"id\" = '{}'",
            DIVS[0], acc[1]
        ),
    ));
    assert_eq!(name_of, vec![vec![Some("changed account 1".to_string())]]);
    rt.block_on(assert_all_equal(
        &c,
        &db,
        &entities,
        &DIVS,
        "incremental sync",
    ));
    let hook = std::fs::read_to_string(cli.dir.path().join("hook.txt")).expect("hook ran");
    let changed: BTreeSet<&str> = hook.trim().split(',').collect();
    for must in [
        "SyncAccounts",
        "SyncGLAccounts",
        "SyncTransactionLines",
        "SyncItems",
        "SyncDeleted",
        "BulkSalesInvoiceLines",
    ] {
        assert!(changed.contains(must), "hook: {hook:?} lacks {must}");
    }
    // GLTransactionTypes has no cursor (fetched completely every run) and was not changed: its
    // content fingerprint says so.
    for unchanged in [
        "SyncContacts",
        "SyncSalesInvoices",
        "Journals",
        "GLTransactionTypes",
    ] {
        assert!(
            !changed.contains(unchanged),
            "hook: {hook:?} names {unchanged}"
        );
    }

    // 3. Nothing changed: the hook does not run (entities with cursors, and ones without whose
    // content fingerprint is unchanged).
    let quiet = cli.sync(&[
        "--entities",
        "SyncAccounts,SyncContacts,SyncTransactionLines,SyncDeleted,GLTransactionTypes,BulkSalesInvoiceLines",
        "--hook",
        "echo \"$ODATASYNC_CHANGED\" > hook2.txt",
    ]);
    quiet.assert_code(0, "sync without changes");
    assert!(
        !cli.dir.path().join("hook2.txt").exists(),
        "the hook ran although nothing changed: {:?}\n{}",
        std::fs::read_to_string(cli.dir.path().join("hook2.txt")),
        quiet.stdout
    );
    assert!(
        quiet.stdout.contains("changed: nothing"),
        "{}",
        quiet.stdout
    );

    // 4. --full-refresh of one entity leaves the other cursors alone.
    let before = rt.block_on(cursors(&db));
    assert!(
        before.len() >= 3 * 7,
        "cursors after the first runs: {before:?}"
    );
    let full = cli.sync(&["--full-refresh", "--entities", "SyncAccounts"]);
    full.assert_code(0, "full refresh");
    let after = rt.block_on(cursors(&db));
    for (k, v) in &before {
        if k.1 == "SyncAccounts" {
            assert_eq!(
                after[k].1, v.1,
                "SyncAccounts cursor value after a full refresh"
            );
        } else {
            assert_eq!(
                after.get(k),
                Some(v),
                "cursor {k:?} touched by a full refresh of SyncAccounts"
            );
        }
    }
    let fb = rt.block_on(last_batch(&db));
    assert_eq!(fb.len(), DIVS.len());
    assert!(fb
        .iter()
        .all(|r| r.entity == "SyncAccounts" && r.full_refresh && r.status == "succeeded"));
    let fs = full.summary();
    // Division 1: 2 inserted, 2 deleted.
    assert_eq!(
        fs[&("SyncAccounts".to_string(), DIVS[0].to_string())].rows,
        ROWS
    );
    assert_eq!(
        fs[&("SyncAccounts".to_string(), DIVS[1].to_string())].rows,
        ROWS
    );
    assert_eq!(deleted("exact_sync_accounts", DIVS[0], &acc[3]), 1);
    rt.block_on(assert_all_equal(
        &c,
        &db,
        &[entity("SyncAccounts")],
        &DIVS,
        "full refresh",
    ));

    // 5. status: runs, cursors, token expiry; never a token.
    let status = cli.run(&["status", "--service", SERVICE, "--database", &cli.db_url]);
    status.assert_code(0, "status");
    let key = SecretKey::load_or_create(&cli.key_file).expect("key file");
    let store = DbTokenStore::new(db.clone(), SERVICE, &cli.client_id, key).expect("store");
    let tokens = rt
        .block_on(store.load())
        .expect("load tokens")
        .expect("tokens stored");
    let secrets: [&Secret; 2] = [&tokens.access_token, &tokens.refresh_token];
    let text = format!("{}{}", status.stdout, status.stderr);
    for s in secrets {
        assert!(s.expose().len() > 8);
        assert!(!text.contains(s.expose()), "status shows a token");
    }
    assert!(
        !text.contains(&refresh),
        "status shows the seed refresh token"
    );
    assert!(
        text.contains("last runs:") && text.contains("cursors:"),
        "{text}"
    );
    assert!(text.contains("access token valid for"), "{text}");
    assert!(
        text.contains("SyncTransactionLines") && text.contains("succeeded"),
        "{text}"
    );
    let stats = h.stats();
    assert!(stats.violations.is_empty(), "{:?}", violations(&stats));
    assert_eq!(
        stats.token_grants.get("refresh_token").copied(),
        Some(1),
        "one refresh for all the runs: {:?}",
        stats.token_grants
    );
    println!("{backend}: scenario {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn full_and_incremental_sqlite() {
    scenario("sqlite", None);
}

#[test]
fn full_and_incremental_postgres() {
    let pg = odata_test_support::PgServer::start().expect("PostgreSQL");
    let url = pg.create_database("cli_exact").expect("create database");
    scenario("postgres", Some(url));
}

#[test]
fn exit_codes() {
    let rt = runtime();
    let mut cfg = roomy_config(&[100001, 100002], 120);
    cfg.filter_required
        .insert("sync/CRM/Contacts".into(), "Timestamp, Modified".into());
    let (h, refresh) = start_fake(cfg);
    let cli = Cli::new(&h, &refresh, None);

    let unknown = cli.sync(&["--entities", "SyncAccounts,NoSuchEntity"]);
    unknown.assert_code(2, "unknown entity");
    assert!(
        unknown.stderr.contains("NoSuchEntity"),
        "{}",
        unknown.stderr
    );

    let mut no_id = cli.sync_command(&["--entities", "SyncAccounts"]);
    no_id.env_remove("ODATASYNC_CLIENT_ID");
    let no_id = output(no_id);
    no_id.assert_code(2, "missing ODATASYNC_CLIENT_ID");
    assert!(
        no_id.stderr.contains("ODATASYNC_CLIENT_ID"),
        "{}",
        no_id.stderr
    );

    // SyncContacts: the service wants a $filter the first (full) run does not send.
    let failing = cli.sync(&[]);
    failing.assert_code(1, "one entity refused");
    assert!(
        failing.stderr.contains("SyncContacts"),
        "{}",
        failing.stderr
    );
    let db = rt.block_on(Db::connect(&cli.open_url())).expect("db");
    let batch = rt.block_on(last_batch(&db));
    let entities = default_entities();
    for r in &batch {
        if r.entity == "SyncContacts" {
            assert_eq!(r.status, "failed", "{r:?}");
            let m = r.message.as_deref().unwrap_or_default();
            assert!(
                m.contains("must have a $filter parameter"),
                "failed run message: {m:?}"
            );
        } else {
            assert_eq!(r.status, "succeeded", "{r:?}");
        }
    }
    assert_eq!(
        batch.iter().filter(|r| r.entity == "SyncContacts").count(),
        2
    );
    let c = verifier(&h);
    let others: Vec<ConfigEntity> = entities
        .into_iter()
        .filter(|e| e.name != "SyncContacts")
        .collect();
    rt.block_on(assert_all_equal(
        &c,
        &db,
        &others,
        &[100001, 100002],
        "others committed",
    ));
    assert_eq!(
        rt.block_on(count_rows(&db, entity("SyncContacts").table, None, false)),
        0
    );
    let stats = h.stats();
    assert!(stats.violations.is_empty(), "{:?}", violations(&stats));
}
