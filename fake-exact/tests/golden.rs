//! Pins one area document byte for byte: `financial.xml` from the 2021 reference.
//! Update with `UPDATE_GOLDEN=1 cargo test -p fake-exact --test golden`.

mod common;

use std::path::PathBuf;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// The first line where two texts differ, for a readable failure.
fn first_difference(expected: &str, actual: &str) -> String {
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            return format!("line {}:\n  golden: {e}\n  now:    {a}", i + 1);
        }
    }
    format!(
        "one is a prefix of the other ({} vs {} lines)",
        expected.lines().count(),
        actual.lines().count()
    )
}

#[test]
fn financial_2021_matches_golden() {
    let conversion = common::convert_input(common::INPUT_2021);
    let actual = &conversion.files["financial.xml"];
    let path = golden_path("financial.xml");
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with UPDATE_GOLDEN=1 cargo test -p fake-exact --test golden",
            path.display()
        )
    });
    assert!(
        &expected == actual,
        "financial.xml differs from {} at {}\n(if the change is intended: UPDATE_GOLDEN=1 cargo test -p fake-exact --test golden)",
        path.display(),
        first_difference(&expected, actual)
    );
}
