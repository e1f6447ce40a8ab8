//! Shared helpers of the workspace tests: where the corpus is, generating crates through the
//! library, and compiling them with cargo.
#![allow(dead_code)]

use odata_codegen::edm_types::TypeMap;
use odata_codegen::emit::rust::{emit_crate, CrateOptions};
use odata_codegen::model::selection::Selection;
use odata_codegen::{build_model, load_documents, BuildOptions, Diagnostics, Model};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn corpus() -> PathBuf {
    repo().join("../shared/corpus")
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every `*.xml` in a corpus folder, sorted.
pub fn xml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    v.sort();
    v
}

/// Corpus files whose references are genuinely broken (types or namespaces that do not exist):
/// they generate only with `--lenient`.
pub const NEEDS_LENIENT: &[&str] = &[
    "reso-mls-mlsgrid__Metadata.xml",
    "reso-mls-rapattoni__Metadata_Formatted.xml",
    "odata-connectedservice__Multiplicity.xml",
    "olingo__fromdoc1-metadata.xml",
];

pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn crate_name_for(p: &Path) -> String {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let s: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut out = String::from("g");
    for part in s.split('-').filter(|p| !p.is_empty()) {
        out.push('-');
        out.push_str(part);
    }
    out
}

pub fn model(
    files: &[PathBuf],
    selection: Selection,
    lenient: bool,
) -> (Option<Model>, Diagnostics) {
    let (docs, mut diags) = load_documents(files);
    if diags.has_errors() {
        return (None, diags);
    }
    let service = files
        .first()
        .and_then(|f| f.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let opts = BuildOptions {
        service,
        selection,
        lenient,
        type_map: TypeMap::default(),
        renames: Default::default(),
    };
    let (m, d) = build_model(&docs, &opts);
    diags.extend(d);
    (m, diags)
}

/// Generates a crate (as a workspace member) into `out/<crate name>`; panics with the
/// diagnostics when the model has errors.
pub fn generate_member(
    files: &[PathBuf],
    selection: Selection,
    lenient: bool,
    out: &Path,
    name: &str,
) -> PathBuf {
    let (m, diags) = model(files, selection, lenient);
    let m = m.unwrap_or_else(|| panic!("{name}: model failed:\n{diags}"));
    let runtime = repo()
        .join("runtime")
        .canonicalize()
        .expect("runtime/ exists");
    let opts = CrateOptions {
        name: name.to_string(),
        runtime_dependency: format!(
            "{{ path = \"{}\", default-features = false }}",
            runtime.display()
        ),
        standalone: false,
        tables: Vec::new(),
    };
    let files = emit_crate(&m, &opts).unwrap_or_else(|e| panic!("{name}: emit failed: {e}"));
    let dir = out.join(name);
    odata_codegen::write::write_files(&dir, &files).expect("write crate");
    dir
}

/// Writes a workspace over `members` (folder names under `root`) and runs `cargo check` on it
/// with `-D warnings`. Returns cargo's stderr on failure.
pub fn cargo_check_workspace(root: &Path, members: &[String]) -> Result<(), String> {
    let list: Vec<String> = members.iter().map(|m| format!("    \"{m}\",")).collect();
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"2\"\nmembers = [\n{}\n]\n",
            list.join("\n")
        ),
    )
    .expect("write workspace");
    // The main workspace's lock file pins the same dependency versions it already built.
    let _ = std::fs::copy(repo().join("Cargo.lock"), root.join("Cargo.lock"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = repo().join("target").join("corpus-check");
    let out = Command::new(cargo)
        .args([
            "check",
            "--workspace",
            "--keep-going",
            "--quiet",
            "--message-format",
            "short",
        ])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTFLAGS", "-D warnings")
        .output()
        .expect("run cargo");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
