//! Migrations: snapshots of the real transitions (Northwind 2010 → current, RESO DD 1.7 → 2.0,
//! Exact 2019 → 2021) per backend, the breaking/removal policy, the sqlx + diesel layout, the
//! consistency checks (edited, missing, unknown files), the no-op build, and the SQL names
//! golden.

use odata_codegen::service::ServiceDir;
use odata_codegen::sql::diff::diff_models;
use odata_codegen::sql::migrations::{
    read_state, MigrateError, MigrateOptions, Migrations, Outcome,
};
use odata_codegen::sql::{Backend, TableDef};
use odata_codegen::Model;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus(rel: &str) -> PathBuf {
    repo().join("../shared/corpus/metadata").join(rel)
}

fn xml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    v.sort();
    v
}

/// A service made of these metadata files (and optionally Exact's config.json and service.toml).
fn service(name: &str, metadata: Vec<PathBuf>, exact_config: bool) -> ServiceDir {
    let mut sd = ServiceDir {
        dir: PathBuf::from(name),
        name: name.to_string(),
        metadata,
        config: None,
        service_toml: None,
    };
    if exact_config {
        let ex = ServiceDir::load(&repo().join("metadata-cache/exact")).unwrap();
        sd.config = ex.config;
        sd.service_toml = ex.service_toml;
    }
    sd
}

fn model_tables(sd: &ServiceDir) -> (Model, Vec<TableDef>) {
    let (m, diags) = sd.model(false);
    let m = m.unwrap_or_else(|| panic!("{}: {:?}", sd.name, diags.errors().collect::<Vec<_>>()));
    let t = sd.tables(&m);
    (m, t)
}

struct Transition {
    old: ServiceDir,
    new: ServiceDir,
}

fn transition(name: &str) -> Transition {
    match name {
        "northwind" => Transition {
            old: service(
                "northwind",
                vec![corpus("northwind-v2__service.xml")],
                false,
            ),
            new: service(
                "northwind",
                vec![corpus("northwind-v2-current__metadata.xml")],
                false,
            ),
        },
        "reso" => Transition {
            old: service(
                "reso",
                vec![corpus("reso-dd__RESODataDictionary-1.7.xml")],
                false,
            ),
            new: service(
                "reso",
                vec![corpus("reso-dd__RESODataDictionary-2.0.xml")],
                false,
            ),
        },
        "exact" => Transition {
            old: service(
                "exact",
                xml_files(&repo().join("tests/fixtures/exact-2019")),
                true,
            ),
            new: service(
                "exact",
                xml_files(&repo().join("metadata-cache/exact")),
                true,
            ),
        },
        _ => unreachable!(),
    }
}

fn tmp(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn migrate(root: &Path, sd: &ServiceDir, opts: MigrateOptions) -> Result<Outcome, MigrateError> {
    let (m, t) = model_tables(sd);
    Migrations::new(root).migrate_service(&sd.name, Some(&m), &t, opts)
}

/// Every file under `root` with its bytes.
fn snapshot_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap()
}

/// Runs a transition: the old generation's migrations, then the new one's; snapshots the model
/// diff, what was written and the transition's migration per backend.
fn check_transition(name: &str) {
    let t = transition(name);
    let root = tmp(&format!("transition-{name}"));
    let first = migrate(&root, &t.old, MigrateOptions::default()).unwrap();
    assert_eq!(first.written.len(), 2, "runtime + create");
    assert_eq!(first.written[0].name, "odata_runtime");
    assert_eq!(first.written[1].name, format!("create_{name}"));
    let before = snapshot_files(&root);
    let second = migrate(&root, &t.new, MigrateOptions::default()).unwrap();
    // Regenerating again writes nothing.
    let after = snapshot_files(&root);
    let third = migrate(&root, &t.new, MigrateOptions::default()).unwrap();
    assert!(third.written.is_empty());
    assert_eq!(
        after,
        snapshot_files(&root),
        "a no-op regeneration touched files"
    );

    let (om, _) = model_tables(&t.old);
    let (nm, _) = model_tables(&t.new);
    let report = diff_models(&om, &nm).report();
    for b in Backend::ALL {
        let mut s = format!("== odatagen diff\n{report}\n== odatagen migrate\n");
        s.push_str(&second.summary(name));
        match second.written.first() {
            Some(w) => {
                let id = format!("{:04}_{}", w.version, w.name);
                let up = read(&root, &format!("{}/{id}.up.sql", b.as_str()));
                let down = read(&root, &format!("{}/{id}.down.sql", b.as_str()));
                // The diesel form is the same text.
                assert_eq!(up, read(&root, &format!("{}/{id}/up.sql", b.as_str())));
                assert_eq!(down, read(&root, &format!("{}/{id}/down.sql", b.as_str())));
                s.push_str(&format!("\n== {id}.up.sql\n{up}\n== {id}.down.sql\n{down}"));
            }
            None => {
                // No migration; only the stored model (state/) follows the metadata.
                let migrations_only = |m: &BTreeMap<String, Vec<u8>>| {
                    m.iter()
                        .filter(|(k, _)| !k.starts_with("state/"))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<BTreeMap<_, _>>()
                };
                assert_eq!(migrations_only(&before), migrations_only(&after));
                s.push_str("\n(no migration: the tables did not change)\n");
            }
        }
        insta::assert_snapshot!(format!("{name}_{}", b.as_str()), s);
    }
}

#[test]
fn transition_northwind_2010_to_current() {
    check_transition("northwind");
}

#[test]
fn transition_reso_1_7_to_2_0() {
    check_transition("reso");
}

#[test]
fn transition_exact_2019_to_2021() {
    check_transition("exact");
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/migrations").join(name)
}

#[test]
fn breaking_changes_are_refused_then_written_with_the_flag() {
    let root = tmp("breaking");
    let v1 = service("shop", vec![fixture("breaking_v1.xml")], false);
    let v2 = service("shop", vec![fixture("breaking_v2.xml")], false);
    migrate(&root, &v1, MigrateOptions::default()).unwrap();
    let before = snapshot_files(&root);
    let err = migrate(&root, &v2, MigrateOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, MigrateError::Breaking { .. }));
    assert!(msg.contains("service shop"), "{msg}");
    assert!(
        msg.contains("BREAKING changed column shop_items.qty"),
        "{msg}"
    );
    assert!(msg.contains("BREAKING changed key of shop_orders"), "{msg}");
    assert!(msg.contains("--allow-breaking"), "{msg}");
    assert_eq!(
        before,
        snapshot_files(&root),
        "a refused migration writes nothing"
    );

    let out = migrate(
        &root,
        &v2,
        MigrateOptions {
            allow_breaking: true,
            drop_removed: false,
        },
    )
    .unwrap();
    assert_eq!(out.written.len(), 1);
    assert_eq!(out.kept.len(), 1, "{:?}", out.kept);
    let id = "0003_update_shop";
    let pg = read(&root, &format!("postgres/{id}.up.sql"));
    assert!(
        pg.contains(
            "ALTER TABLE \"shop_items\" ALTER COLUMN \"qty\" TYPE BIGINT USING \"qty\"::BIGINT;"
        ),
        "{pg}"
    );
    assert!(pg.contains("DROP CONSTRAINT \"shop_orders_pkey\""), "{pg}");
    let sqlite = read(&root, &format!("sqlite/{id}.up.sql"));
    assert!(
        sqlite.contains("ALTER TABLE \"shop_orders__odatagen_new\" RENAME TO \"shop_orders\";"),
        "{sqlite}"
    );
    assert!(
        !sqlite.contains("DROP COLUMN"),
        "removed columns are kept: {sqlite}"
    );
    insta::assert_snapshot!("breaking_sqlite", sqlite);
    insta::assert_snapshot!("breaking_postgres", pg);

    // The removed column is kept in the state: it is not "new" when it comes back.
    let state = read_state(&root, "shop").unwrap().unwrap();
    let items = state
        .tables
        .iter()
        .find(|t| t.name == "shop_items")
        .unwrap();
    assert!(items.columns.iter().any(|c| c.name == "old"));
    let back = migrate(&root, &v1, MigrateOptions::default()).unwrap_err();
    assert!(
        !back.to_string().contains("new column shop_items.old"),
        "{back}"
    );
}

#[test]
fn removed_columns_are_dropped_only_with_the_flag() {
    let root = tmp("drop-removed");
    let v1 = service("shop", vec![fixture("breaking_v1.xml")], false);
    let v2 = service("shop", vec![fixture("breaking_v2.xml")], false);
    migrate(&root, &v1, MigrateOptions::default()).unwrap();
    let out = migrate(
        &root,
        &v2,
        MigrateOptions {
            allow_breaking: true,
            drop_removed: true,
        },
    )
    .unwrap();
    assert!(out.kept.is_empty());
    let pg = read(&root, "postgres/0003_update_shop.up.sql");
    assert!(
        pg.contains("ALTER TABLE \"shop_items\" DROP COLUMN \"old\";"),
        "{pg}"
    );
    let down = read(&root, "postgres/0003_update_shop.down.sql");
    assert!(
        down.contains("ALTER TABLE \"shop_items\" ADD COLUMN \"old\" TEXT;"),
        "{down}"
    );
}

#[test]
fn edited_missing_and_unknown_migrations_are_errors() {
    let root = tmp("consistency");
    let nw = service(
        "northwind",
        vec![corpus("northwind-v2__service.xml")],
        false,
    );
    let nw2 = service(
        "northwind",
        vec![corpus("northwind-v2-current__metadata.xml")],
        false,
    );
    migrate(&root, &nw, MigrateOptions::default()).unwrap();
    let m = Migrations::new(&root);
    m.verify().unwrap();

    // Edited.
    let f = root.join("sqlite/0002_create_northwind.up.sql");
    let orig = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, orig.replace("CREATE TABLE", "create table")).unwrap();
    let e = migrate(&root, &nw2, MigrateOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("sqlite/0002_create_northwind.up.sql"), "{e}");
    assert!(e.contains("was edited"), "{e}");
    std::fs::write(&f, &orig).unwrap();
    m.verify().unwrap();

    // Missing (the diesel form).
    let f = root.join("postgres/0001_odata_runtime/up.sql");
    let orig = std::fs::read_to_string(&f).unwrap();
    std::fs::remove_file(&f).unwrap();
    let e = m.verify().unwrap_err().to_string();
    assert!(
        e.contains("postgres/0001_odata_runtime/up.sql") && e.contains("is missing"),
        "{e}"
    );
    std::fs::write(&f, &orig).unwrap();

    // Unknown (written by hand).
    let f = root.join("sqlite/0003_by_hand.up.sql");
    std::fs::write(&f, "SELECT 1;").unwrap();
    let e = m.verify().unwrap_err().to_string();
    assert!(
        e.contains("sqlite/0003_by_hand.up.sql is not in history.json"),
        "{e}"
    );
    std::fs::remove_file(&f).unwrap();

    // State file missing or edited.
    let s = root.join("state/northwind.json");
    let orig = std::fs::read_to_string(&s).unwrap();
    std::fs::remove_file(&s).unwrap();
    let e = m.verify().unwrap_err().to_string();
    assert!(
        e.contains("northwind.json is missing") && e.contains("0002_create_northwind"),
        "{e}"
    );
    std::fs::write(&s, orig.replace("\"order_id\"", "\"order_no\"")).unwrap();
    let e = m.verify().unwrap_err().to_string();
    assert!(e.contains("state file was edited"), "{e}");
    std::fs::write(&s, &orig).unwrap();
    m.verify().unwrap();

    // A stored model in an older format is dropped, not an error: the tables decide.
    let mut v: serde_json::Value = serde_json::from_str(&orig).unwrap();
    v["model"] = serde_json::json!({ "format": "from an older generator" });
    std::fs::write(&s, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    assert!(read_state(&root, "northwind")
        .unwrap()
        .unwrap()
        .model
        .is_none());
    let out = migrate(&root, &nw, MigrateOptions::default()).unwrap();
    assert!(out.written.is_empty() && out.state_updated);
    assert!(read_state(&root, "northwind")
        .unwrap()
        .unwrap()
        .model
        .is_some());

    // Tables written before TableDef/ColumnDef gained a field still read (missing fields take
    // empty values).
    let text = std::fs::read_to_string(&s).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let t0 = v["tables"][0].as_object_mut().unwrap();
    t0.remove("rust_type");
    t0["columns"][0].as_object_mut().unwrap().remove("edm_type");
    std::fs::write(&s, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let st = read_state(&root, "northwind").unwrap().unwrap();
    assert_eq!(st.tables[0].rust_type, "");
    assert_eq!(st.tables[0].columns[0].edm_type, "");
    m.verify().unwrap();
    assert!(migrate(&root, &nw, MigrateOptions::default())
        .unwrap()
        .written
        .is_empty());
}

#[test]
fn build_support_writes_migrations_and_a_no_op_build_touches_nothing() {
    let base = tmp("build-noop");
    let cache = base.join("metadata-cache");
    for svc in ["northwind", "exact"] {
        let from = repo().join("metadata-cache").join(svc);
        let to = cache.join(svc);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(&from).unwrap().flatten() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    let out = base.join("out");
    let migrations = base.join("migrations");
    let r = odata_codegen::build_support::generate_into_with_migrations(
        &cache,
        &out,
        Some(&migrations),
    )
    .unwrap();
    assert_eq!(r.services, vec!["exact", "northwind"]);
    assert_eq!(r.written.len(), 3, "{:?}", r.written);

    // The checked-in generated/migrations is up to date with metadata-cache/ (the build writes
    // nothing more into a copy of it), and its tables are those a fresh history ends with.
    let copy = base.join("checked-in");
    for (rel, bytes) in snapshot_files(&repo().join("generated/migrations")) {
        let p = copy.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let r = odata_codegen::build_support::generate_into_with_migrations(
        &cache,
        &base.join("out-checked-in"),
        Some(&copy),
    )
    .unwrap();
    assert!(
        r.written.is_empty(),
        "generated/migrations is not up to date: run `cargo build -p generated` and commit generated/migrations ({:?})",
        r.written
    );
    for svc in ["_runtime", "exact", "northwind"] {
        let fresh = read_state(&migrations, svc).unwrap().unwrap().tables;
        let checked_in = read_state(&copy, svc).unwrap().unwrap().tables;
        let d: Vec<_> = odata_codegen::sql::diff::diff_tables(&checked_in, &fresh)
            .into_iter()
            .filter(|c| !c.is_removal())
            .collect();
        assert!(d.is_empty(), "{svc}: {d:?}");
    }

    let mtimes = |dirs: &[&Path]| {
        let mut m = BTreeMap::new();
        for d in dirs {
            for rel in snapshot_files(d).keys() {
                let p = d.join(rel);
                m.insert(
                    p.clone(),
                    std::fs::metadata(&p).unwrap().modified().unwrap(),
                );
            }
        }
        m
    };
    let t1 = mtimes(&[&out, &migrations]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let r = odata_codegen::build_support::generate_into_with_migrations(
        &cache,
        &out,
        Some(&migrations),
    )
    .unwrap();
    assert!(r.written.is_empty(), "{:?}", r.written);
    assert_eq!(
        t1,
        mtimes(&[&out, &migrations]),
        "a no-op build touched files"
    );

    // An additive change is written by the build; a breaking one fails it.
    let nw = cache.join("northwind/northwind.xml");
    let text = std::fs::read_to_string(&nw).unwrap();
    let added = text.replacen(
        "<Property Name=\"CategoryName\"",
        "<Property Name=\"Slogan\" Type=\"Edm.String\" Nullable=\"true\" /><Property Name=\"CategoryName\"",
        1,
    );
    assert_ne!(added, text);
    std::fs::write(&nw, &added).unwrap();
    let r = odata_codegen::build_support::generate_into_with_migrations(
        &cache,
        &out,
        Some(&migrations),
    )
    .unwrap();
    assert_eq!(
        r.written,
        vec![format!(
            "odatagen: wrote migration 0004_update_northwind for northwind in {}",
            migrations.display()
        )]
    );
    let up = read(&migrations, "sqlite/0004_update_northwind.up.sql");
    assert!(
        up.contains("ALTER TABLE \"northwind_categories\" ADD COLUMN \"slogan\" TEXT;"),
        "{up}"
    );
    let retyped = added.replacen(
        "<Property Name=\"Slogan\" Type=\"Edm.String\"",
        "<Property Name=\"Slogan\" Type=\"Edm.Int32\"",
        1,
    );
    std::fs::write(&nw, &retyped).unwrap();
    let e = odata_codegen::build_support::generate_into_with_migrations(
        &cache,
        &out,
        Some(&migrations),
    )
    .unwrap_err();
    assert!(e.contains("service northwind"), "{e}");
    assert!(
        e.contains("changed column northwind_categories.slogan TEXT/TEXT → slogan INTEGER/INTEGER"),
        "{e}"
    );
    assert!(
        e.contains("odatagen migrate --service metadata-cache/northwind --allow-breaking"),
        "{e}"
    );
}

/// Table and column names of every table, with their byte lengths; checks the PostgreSQL limit and
/// case-insensitive uniqueness (SQLite folds case even in quoted names).
fn names_report(tables: &[TableDef]) -> String {
    let mut s = String::new();
    let mut seen_tables = std::collections::BTreeSet::new();
    for t in tables {
        assert!(t.name.len() <= 63, "{}", t.name);
        assert!(seen_tables.insert(t.name.to_lowercase()), "{}", t.name);
        s.push_str(&format!("{} ({} bytes)\n", t.name, t.name.len()));
        let mut seen = std::collections::BTreeSet::new();
        for c in &t.columns {
            assert!(c.name.len() <= 63, "{}.{}", t.name, c.name);
            assert!(seen.insert(c.name.to_lowercase()), "{}.{}", t.name, c.name);
            let wire = c.wire_name.as_deref().unwrap_or("(system)");
            s.push_str(&format!(
                "  {} ({} bytes) <- {wire}: sqlite {}, postgres {}\n",
                c.name,
                c.name.len(),
                c.sqlite_type,
                c.postgres_type
            ));
        }
        for i in &t.indexes {
            assert!(i.name.len() <= 63, "{}", i.name);
            s.push_str(&format!("  index {} ({})\n", i.name, i.columns.join(", ")));
        }
        let pkey = odata_codegen::sql::ddl::primary_key_name(&t.name);
        assert!(pkey.len() <= 63, "{pkey}");
    }
    s
}

#[test]
fn sql_names_golden() {
    let files = [
        ("1c", corpus("1c-enterprise__StandardODATA_Russian.xml")),
        (
            "sql_keywords",
            repo().join("tests/fixtures/adversarial/sql_keywords.xml"),
        ),
        (
            "case_only_duplicates",
            repo().join("tests/fixtures/adversarial/case_only_duplicates.xml"),
        ),
        (
            "cyrillic_144_bytes",
            repo().join("tests/fixtures/adversarial/cyrillic_144_bytes.xml"),
        ),
    ];
    for (name, file) in files {
        let sd = service(name, vec![file], false);
        let (m, diags) = sd.model(true);
        let m = m.unwrap_or_else(|| panic!("{name}: {:?}", diags.errors().collect::<Vec<_>>()));
        let tables = sd.tables(&m);
        assert!(!tables.is_empty(), "{name}");
        insta::assert_snapshot!(format!("sql_names_{name}"), names_report(&tables));
    }
}

#[test]
fn concurrent_builds_write_one_history() {
    let root = tmp("concurrent");
    let nw = service(
        "northwind",
        vec![corpus("northwind-v2__service.xml")],
        false,
    );
    let (m, t) = model_tables(&nw);
    let written: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    Migrations::new(&root)
                        .migrate_service("northwind", Some(&m), &t, MigrateOptions::default())
                        .unwrap()
                        .written
                        .len()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(written, 2, "runtime + create, once");
    assert_eq!(Migrations::new(&root).verify().unwrap().migrations.len(), 2);
}
