//! `odatagen diff` (exit 0 = no change, 1 = additive only, 2 = breaking, 3 = usage or input
//! error) on real metadata pairs, and `odatagen migrate`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn odatagen(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_odatagen"))
        .args(args)
        .output()
        .expect("run odatagen");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus(rel: &str) -> String {
    repo()
        .join("../shared/corpus/metadata")
        .join(rel)
        .display()
        .to_string()
}

fn tmp(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&p);
    p
}

#[test]
fn diff_exit_codes_on_real_pairs() {
    // No change.
    let nw = corpus("northwind-v2-current__metadata.xml");
    let (code, out, err) = odatagen(&["diff", &nw, &nw]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no change: 0 changes"), "{out}");

    // Additive only: Northwind 2010 → current (DateTime precision added).
    let (code, out, err) = odatagen(&[
        "diff",
        &corpus("northwind-v2__service.xml"),
        &corpus("northwind-v2-current__metadata.xml"),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("~ Orders.OrderDate: Edm.DateTime → Edm.DateTime(3)"),
        "{out}"
    );

    // Additive only: Exact 2019 → 2021 (folders of *.xml with Exact's config.json).
    let config = repo().join("metadata-cache/exact/config.json");
    let (code, out, err) = odatagen(&[
        "diff",
        &repo()
            .join("tests/fixtures/exact-2019")
            .display()
            .to_string(),
        &repo().join("metadata-cache/exact").display().to_string(),
        "--config",
        &config.display().to_string(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("+ Accounts.BSN: Edm.String"), "{out}");

    // Breaking: RESO DD 1.7 → 2.0 removes and retypes properties.
    let (code, out, err) = odatagen(&[
        "diff",
        &corpus("reso-dd__RESODataDictionary-1.7.xml"),
        &corpus("reso-dd__RESODataDictionary-2.0.xml"),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("BREAKING - Property.BuyerAgencyCompensation: Edm.String"),
        "{out}"
    );
    assert!(out.contains("+ entity Caravan"), "{out}");
    assert!(
        out.contains("~ enum org.reso.metadata.enums.BuyerFinancing: +Fha +Fha203b"),
        "{out}"
    );

    // Usage and input errors are 3, never 1 or 2.
    let (code, _, _) = odatagen(&["diff"]);
    assert_eq!(code, 3);
    let (code, _, err) = odatagen(&["diff", "/nonexistent.xml", &nw]);
    assert_eq!(code, 3, "{err}");
    let (code, _, _) = odatagen(&["diff", "--bogus", &nw, &nw]);
    assert_eq!(code, 3);
}

#[test]
fn migrate_writes_the_next_migration_and_diff_compares_with_the_state() {
    let base = tmp("cli-migrate");
    let svc = base.join("northwind");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::copy(
        corpus("northwind-v2__service.xml"),
        svc.join("northwind.xml"),
    )
    .unwrap();
    let migrations = base.join("migrations");
    let (s, m) = (svc.display().to_string(), migrations.display().to_string());

    // diff DIR without a stored state is an input error.
    let (code, _, err) = odatagen(&["diff", &s, "--migrations", &m]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no stored state"), "{err}");

    let (code, out, err) = odatagen(&["migrate", "--service", &s, "--migrations", &m]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("northwind: wrote migration 0001_odata_runtime"),
        "{out}"
    );
    assert!(
        out.contains("northwind: wrote migration 0002_create_northwind (10 files)"),
        "{out}"
    );
    assert!(
        out.contains("new table northwind_orders (16 columns)"),
        "{out}"
    );
    assert!(migrations
        .join("sqlite/0002_create_northwind.up.sql")
        .exists());
    assert!(migrations
        .join("postgres/0002_create_northwind/up.sql")
        .exists());

    let (code, out, _) = odatagen(&["migrate", "--service", &s, "--migrations", &m]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "northwind: migrations are up to date; nothing written\n"
    );
    let (code, out, _) = odatagen(&["diff", &s, "--migrations", &m]);
    assert_eq!(code, 0, "{out}");

    // A new property: diff says additive (1), migrate writes 0003 with ADD COLUMN.
    let text = std::fs::read_to_string(svc.join("northwind.xml")).unwrap();
    let added = text.replacen(
        "<Property Name=\"CategoryName\"",
        "<Property Name=\"Slogan\" Type=\"Edm.String\" Nullable=\"true\" /><Property Name=\"CategoryName\"",
        1,
    );
    std::fs::write(svc.join("northwind.xml"), &added).unwrap();
    let (code, out, _) = odatagen(&["diff", &s, "--migrations", &m]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("+ Categories.Slogan: Edm.String"), "{out}");
    let (code, out, err) = odatagen(&["migrate", "--service", &s, "--migrations", &m]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("wrote migration 0003_update_northwind")
            && out.contains("new column northwind_categories.slogan TEXT/TEXT"),
        "{out}"
    );

    // A retyped property: diff says breaking (2); migrate refuses (1) until --allow-breaking.
    std::fs::write(
        svc.join("northwind.xml"),
        added.replacen(
            "Name=\"Slogan\" Type=\"Edm.String\"",
            "Name=\"Slogan\" Type=\"Edm.Int32\"",
            1,
        ),
    )
    .unwrap();
    let (code, out, _) = odatagen(&["diff", &s, "--migrations", &m]);
    assert_eq!(code, 2, "{out}");
    let (code, _, err) = odatagen(&["migrate", "--service", &s, "--migrations", &m]);
    assert_eq!(code, 1);
    assert!(
        err.contains("BREAKING changed column northwind_categories.slogan"),
        "{err}"
    );
    assert!(!migrations
        .join("sqlite/0004_update_northwind.up.sql")
        .exists());
    let (code, out, err) = odatagen(&[
        "migrate",
        "--service",
        &s,
        "--migrations",
        &m,
        "--allow-breaking",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0004_update_northwind"), "{out}");
    let pg =
        std::fs::read_to_string(migrations.join("postgres/0004_update_northwind.up.sql")).unwrap();
    assert!(
        pg.contains("ALTER TABLE \"northwind_categories\" ALTER COLUMN \"slogan\" TYPE INTEGER USING \"slogan\"::INTEGER;"),
        "{pg}"
    );
}
