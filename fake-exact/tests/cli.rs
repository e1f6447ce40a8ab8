//! The `exact-metadata` binary: writes the documents, rewrites only what changed, reports stale
//! files, and prints the summary.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn run(input: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_exact-metadata"))
        .arg("--input")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn binary_writes_only_changed_files_and_reports() {
    let out: PathBuf =
        std::env::temp_dir().join(format!("exact-metadata-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let input = common::corpus_dir().join(common::INPUT_2021);
    let expected = common::convert_input(common::INPUT_2021).files;

    let (ok, err) = run(&input, &out, &[]);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("{} written, 0 unchanged", expected.len())),
        "{err}"
    );
    assert!(
        err.contains("keyless endpoints (no primaryKey, no ID): 1"),
        "{err}"
    );
    assert_eq!(common::xml_files_in(&out), expected);

    // a second run rewrites nothing; a stale file is reported, then pruned
    std::fs::write(out.join("old.xml"), "<x/>").unwrap();
    let (ok, err) = run(&input, &out, &[]);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("0 written, {} unchanged", expected.len())),
        "{err}"
    );
    assert!(err.contains("old.xml is not produced"), "{err}");
    let (ok, err) = run(&input, &out, &["--prune"]);
    assert!(ok, "{err}");
    assert!(!out.join("old.xml").exists());

    // one changed file is rewritten
    std::fs::write(out.join("crm.xml"), "changed").unwrap();
    let (ok, err) = run(&input, &out, &[]);
    assert!(ok, "{err}");
    assert!(err.contains("1 written"), "{err}");
    assert_eq!(common::xml_files_in(&out), expected);

    // bad input is an error naming the file
    let bad = out.join("bad.json");
    std::fs::write(&bad, "[1]").unwrap();
    let (ok, err) = run(&bad, &out, &[]);
    assert!(!ok);
    assert!(err.contains("bad.json"), "{err}");

    std::fs::remove_dir_all(&out).unwrap();
}
