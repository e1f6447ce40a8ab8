//! `odatasync demo` (the README's main job) end to end: the bundled fake on loopback, the
//! authorization-code login, a full sync of 3 divisions into a fresh SQLite file, changes on
//! the fake, an incremental second run that fetches only the changes.

use std::process::Command;

/// Rows fetched by the incremental run per sync entity and division.
fn sync_rows_check(entity: &str, division: &str, rows: &str) {
    let expected = match (entity, division) {
        ("SyncAccounts", "100001") => "5",
        ("SyncGLAccounts", "100001") => "1",
        ("SyncTransactionLines", "100001") => "7",
        ("SyncDeleted", "100001") => "2",
        _ => "0",
    };
    assert_eq!(rows, expected, "{entity} {division}");
}

fn calls_line(out: &str, nth: usize) -> u64 {
    out.lines()
        .filter(|l| l.contains(" API calls, "))
        .nth(nth)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no API-calls line {nth} in:\n{out}"))
}

#[test]
fn demo_syncs_three_divisions_then_only_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.sqlite");
    let out = Command::new(env!("CARGO_BIN_EXE_odatasync"))
        .args(["demo", "--no-progress", "--rows", "300", "--db"])
        .arg(&db)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("logged in"), "{stdout}");
    assert!(
        stdout.contains("divisions the token reaches: 100001, 100002, 100003"),
        "{stdout}"
    );
    assert!(!stdout.contains("failed"), "{stdout}");
    let first = calls_line(&stdout, 0);
    let second = calls_line(&stdout, 1);
    assert!(second < first, "incremental run: {second} calls vs {first}");
    // Entities with a cursor (sync endpoints: Timestamp) read one page in the second run.
    let second_table = stdout.split("second run:").nth(1).unwrap();
    let mut sync_rows = 0;
    for l in second_table.lines() {
        let c: Vec<&str> = l.split_whitespace().collect();
        if c.len() == 9 && c[0].starts_with("Sync") {
            assert_eq!(c[7], "1", "one call: {l}");
            sync_rows += c[3].parse::<u64>().unwrap();
            sync_rows_check(c[0], c[1], c[3]);
        }
    }
    // Only the changes: 5 accounts (3 updated, 2 new), 1 GL account, 7 transaction lines,
    // 2 deletions.
    assert_eq!(sync_rows, 15, "{second_table}");
    // Changed entities of the second run: the mutated ones (and the deletion log).
    let changed = stdout
        .lines()
        .find(|l| l.contains("entities that changed:"))
        .unwrap();
    for e in [
        "SyncAccounts",
        "SyncGLAccounts",
        "SyncTransactionLines",
        "SyncDeleted",
    ] {
        assert!(changed.contains(e), "{changed}");
    }
    assert!(!changed.contains("SyncContacts"), "{changed}");

    // The database: rows of every division, the deletions marked, runs recorded.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("sqlite:{}", db.display());
        let db = odata_runtime::sql::Db::connect(&url).await.unwrap();
        let odata_runtime::sql::Db::Sqlite(p) = &db else { unreachable!() };
        let per_div: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT division, COUNT(*) FROM exact_sync_accounts GROUP BY division ORDER BY division",
        )
        .fetch_all(p)
        .await
        .unwrap();
        assert_eq!(per_div, vec![(100001, 302), (100002, 300), (100003, 300)]);
        let deleted: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM exact_sync_accounts WHERE deleted_at IS NOT NULL",
        )
        .fetch_one(p)
        .await
        .unwrap();
        assert_eq!(deleted, 1);
        let statuses: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM odata_sync_runs GROUP BY status",
        )
        .fetch_all(p)
        .await
        .unwrap();
        assert_eq!(statuses.len(), 1, "{statuses:?}");
        assert_eq!(statuses[0].0, "succeeded");
        // The token pair is stored encrypted.
        let toks: Vec<(String, String)> =
            sqlx::query_as("SELECT access_token, refresh_token FROM odata_tokens")
                .fetch_all(p)
                .await
                .unwrap();
        assert_eq!(toks.len(), 1);
        assert!(toks[0].0.starts_with("v1:") && toks[0].1.starts_with("v1:"), "{toks:?}");
    });
}
