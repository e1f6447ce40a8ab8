//! The `odatagen` binary: exit codes, summary lines, diagnostics format, byte-identical and
//! write-if-changed generation, explain.

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

fn corpus(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus")
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
fn check_prints_a_summary_per_file_and_exits_by_errors() {
    let nw = corpus("metadata/northwind-v2__service.xml");
    let (code, out, _) = odatagen(&["check", &nw]);
    assert_eq!(code, 0);
    assert!(out.contains("northwind-v2__service.xml: OData V2, 2 schemas, 26 entity types, 26 entity sets, 182 properties; 0 errors, 0 warnings"), "{out}");

    let bad = corpus("metadata-invalid/reso-commander__bad-edmx-unparsable-xml.xml");
    let (code, out, err) = odatagen(&["check", &nw, &bad]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("reso-commander__bad-edmx-unparsable-xml.xml:19:47: error: unexpected text"),
        "{err}"
    );
}

#[test]
fn check_needs_lenient_for_broken_references() {
    let f = corpus("metadata/reso-mls-rapattoni__Metadata_Formatted.xml");
    let (code, _, err) = odatagen(&["check", &f]);
    assert_eq!(code, 1);
    assert!(
        err.contains("error: unknown type 'PropertyEnums.Region'"),
        "{err}"
    );
    let (code, _, err) = odatagen(&["check", "--lenient", &f]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: unknown type 'PropertyEnums.Region'"),
        "{err}"
    );
}

#[test]
fn generate_is_byte_identical_and_rewrites_nothing_when_nothing_changed() {
    let out = tmp("gen-nw");
    let nw = corpus("metadata/northwind-v4__northwind-metadata.xml");
    let o = out.display().to_string();
    let (code, stdout, err) =
        odatagen(&["generate", "--metadata", &nw, "--out", &o, "--name", "nw"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        // Including src/odata_tables.rs: generate passes the service's tables to the emitter.
        stdout.contains("30 files (30 written, 0 unchanged)"),
        "{stdout}"
    );
    let order = out.join("src/northwind_model/order.rs");
    let before = std::fs::metadata(&order).unwrap().modified().unwrap();
    let text = std::fs::read_to_string(&order).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (code, stdout, _) = odatagen(&["generate", "--metadata", &nw, "--out", &o, "--name", "nw"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("(0 written, 30 unchanged)"), "{stdout}");
    assert!(out.join("src/odata_tables.rs").exists());
    assert_eq!(
        std::fs::metadata(&order).unwrap().modified().unwrap(),
        before
    );
    assert_eq!(std::fs::read_to_string(&order).unwrap(), text);
    let cargo = std::fs::read_to_string(out.join("Cargo.toml")).unwrap();
    assert!(
        cargo.contains("rust_decimal") && cargo.contains("chrono") && !cargo.contains("uuid"),
        "{cargo}"
    );
}

#[test]
fn generate_selects_entities_and_explain_says_why() {
    let out = tmp("gen-trippin");
    let f = corpus("metadata/trippin-v4__TripPinServiceRW.xml");
    let o = out.display().to_string();
    let (code, stdout, err) = odatagen(&[
        "generate",
        "--metadata",
        &f,
        "--out",
        &o,
        "--entities",
        "Airports",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("1 entity types, 3 complex types, 0 enum types, 1 entity sets"),
        "{stdout}"
    );
    let (code, stdout, _) = odatagen(&["explain", "--metadata", &f, "--entities", "Airports"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("Microsoft.OData.SampleService.Models.TripPin.Airport (entity): selected entity set 'Airports'"), "{stdout}");
}

#[test]
fn generate_from_a_service_folder_uses_config_json() {
    let out = tmp("gen-exact");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../metadata-cache/exact")
        .display()
        .to_string();
    let (code, stdout, err) = odatagen(&[
        "generate",
        "--service",
        &dir,
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.join("src/exact_web_api_models/gl_account.rs").exists(),
        "{stdout}"
    );
    let (code, _, err) = odatagen(&[
        "generate",
        "--service",
        "/nonexistent/svc",
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/svc"), "{err}");
}
