//! `Db::checkpoint_while_writing`: while the guard lives, committed WAL frames are copied into
//! the database file in the background (SQLite's own checkpoint would only run inside a COMMIT
//! once the WAL holds 10,000 pages); after it is dropped, nothing copies them any more.

use odata_runtime::sql::{sqlx, Db};
use std::path::Path;
use std::time::{Duration, Instant};

/// Writes `n` transactions of ~400 KB each into table `t`.
async fn write(db: &Db, n: usize) {
    let Db::Sqlite(pool) = db else { unreachable!() };
    let blob = "x".repeat(4000);
    for _ in 0..n {
        let mut tx = pool.begin().await.unwrap();
        for _ in 0..100 {
            sqlx::query("INSERT INTO t (v) VALUES (?)")
                .bind(&blob)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Waits up to 5 s for the database file to reach `min` bytes.
async fn main_file_reaches(p: &Path, min: u64) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if size(p) >= min {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn the_wal_is_checkpointed_in_the_background_only_while_the_guard_lives() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.sqlite");
    let db = Db::connect(&format!("sqlite:{}?mode=rwc", file.display()))
        .await
        .unwrap();
    db.execute_script("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .await
        .unwrap();
    // Settle what the schema change wrote.
    db.execute_script("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .unwrap();
    let empty = size(&file);

    // Without the guard, 4 MB of commits stay in the WAL (below the automatic threshold).
    write(&db, 10).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        size(&file) < empty + 1_000_000,
        "nothing should checkpoint without the guard: {} → {} bytes",
        empty,
        size(&file)
    );

    // With it, they reach the database file without anyone committing again.
    let guard = db
        .checkpoint_while_writing()
        .expect("SQLite has a checkpointer");
    write(&db, 10).await;
    assert!(
        main_file_reaches(&file, empty + 7_000_000).await,
        "the background checkpoint did not copy the WAL: database file {} bytes, WAL {} bytes",
        size(&file),
        size(&dir.path().join("c.sqlite-wal"))
    );

    // Dropped: the task stops.
    drop(guard);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = size(&file);
    write(&db, 10).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        size(&file) < before + 1_000_000,
        "checkpoints went on after the guard was dropped: {} → {} bytes",
        before,
        size(&file)
    );
}
