//! `odatasync refresh-metadata` against the fake Exact Online (served without tokens): an
//! unchanged service leaves the cache alone; a property added on the service rewrites the
//! cached document and the report names the new column (a dry run only reports); a broken
//! document fails naming its URL and leaves the cache untouched.

use fake_exact::{Config, FakeExact};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REPO_CACHE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../metadata-cache/exact");

/// Copies every file of the repository's `metadata-cache/exact` into `dst` (writable).
fn copy_exact(dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(REPO_CACHE).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let to = dst.join(p.file_name().unwrap());
            std::fs::write(&to, std::fs::read(&p).unwrap()).unwrap();
        }
    }
}

/// A temp metadata cache holding `exact` with `auth = "none"`.
fn temp_cache(root: &Path) -> PathBuf {
    let cache = root.join("cache");
    let svc = cache.join("exact");
    copy_exact(&svc);
    std::fs::write(
        svc.join("service.toml"),
        "base_url = \"https://start.exactonline.nl/api/v1/{division}/\"\nauth = \"none\"\n",
    )
    .unwrap();
    cache
}

/// Every `*.xml` of a folder with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn refresh(cache: &Path, base: &str, extra: &[&str]) -> (Output, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_odatasync"))
        .arg("--metadata-cache")
        .arg(cache)
        .args(["--no-progress", "refresh-metadata", "--service", "exact"])
        .args(extra)
        .env("ODATASYNC_BASE_URL", format!("{base}/api/v1/{{division}}/"))
        .env_remove("ODATASYNC_METADATA_CACHE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

fn fake(metadata_dir: &Path) -> fake_exact::Handle {
    FakeExact::start(Config {
        require_auth: false,
        metadata_dir: metadata_dir.to_path_buf(),
        // Every run reads all 55 documents; the client would (rightly) sit out the
        // minutely limit of 60 calls between runs.
        minutely_limit: 10_000,
        ..Config::default()
    })
}

/// The fake's `financial.xml` with a new property on `GLAccount`.
fn with_new_property(dir: &Path) {
    let p = dir.join("financial.xml");
    let text = std::fs::read_to_string(&p).unwrap();
    let anchor = "<EntityType Name=\"GLAccount\">\n        <Key>\n          <PropertyRef Name=\"ID\"/>\n        </Key>\n";
    assert!(
        text.contains(anchor),
        "GLAccount not found in {}",
        p.display()
    );
    let text = text.replacen(
        anchor,
        &format!("{anchor}        <Property Name=\"RefreshProbe\" Type=\"Edm.String\"/>\n"),
        1,
    );
    std::fs::write(&p, text).unwrap();
}

#[test]
fn unchanged_then_added_property_then_dry_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = temp_cache(tmp.path());
    let svc = cache.join("exact");
    let before = snapshot(&svc);

    // 1. The service serves what is cached: no changes, nothing rewritten.
    let mtime = std::fs::metadata(svc.join("financial.xml"))
        .unwrap()
        .modified()
        .unwrap();
    let server = fake(Path::new(REPO_CACHE));
    let (out, stdout, stderr) = refresh(&cache, server.base_url(), &[]);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("no changes"), "{stdout}");
    assert_eq!(snapshot(&svc), before);
    assert_eq!(
        std::fs::metadata(svc.join("financial.xml"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
    drop(server);

    // 2. A property added on the service.
    let served = tmp.path().join("served");
    copy_exact(&served);
    with_new_property(&served);
    let server = fake(&served);

    // A dry run reports and writes nothing.
    let (out, stdout, stderr) = refresh(&cache, server.base_url(), &["--dry-run"]);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("+ GLAccounts.RefreshProbe: Edm.String"),
        "{stdout}"
    );
    assert!(stdout.contains("dry run"), "{stdout}");
    assert_eq!(snapshot(&svc), before);

    let (out, stdout, stderr) = refresh(&cache, server.base_url(), &[]);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("financial.xml"), "{stdout}");
    assert!(stdout.contains("/financial/$metadata"), "{stdout}");
    assert!(
        stdout.contains("+ GLAccounts.RefreshProbe: Edm.String"),
        "{stdout}"
    );
    assert!(stdout.contains("additive"), "{stdout}");
    assert!(
        stdout.contains("new column exact_gl_accounts.refresh_probe"),
        "{stdout}"
    );
    assert!(stdout.contains("cargo build"), "{stdout}");
    let after = snapshot(&svc);
    assert_eq!(
        after["financial.xml"],
        std::fs::read(served.join("financial.xml")).unwrap()
    );
    for (name, bytes) in &before {
        if name != "financial.xml" {
            assert_eq!(&after[name], bytes, "{name} rewritten");
        }
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&svc)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The same again: now up to date.
    let (out, stdout, _) = refresh(&cache, server.base_url(), &[]);
    assert!(out.status.success());
    assert!(stdout.contains("no changes"), "{stdout}");
}

/// A stand-in service: every `$metadata` as cached, except `financial/$metadata`, which
/// answers `broken` (an XML document that does not parse, or a JSON body).
async fn broken_server(broken: &'static str) -> String {
    use axum::extract::Request;
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(move |req: Request| async move {
        let path = req.uri().path().to_string();
        let Some(rest) = path
            .strip_prefix("/api/v1/100001/")
            .and_then(|p| p.strip_suffix("/$metadata"))
        else {
            return (StatusCode::NOT_FOUND, "not found").into_response();
        };
        let file = format!("{}.xml", rest.to_lowercase().replace('/', "."));
        if file == "financial.xml" {
            return ([(header::CONTENT_TYPE, "application/xml")], broken).into_response();
        }
        match std::fs::read(Path::new(REPO_CACHE).join(&file)) {
            Ok(b) => ([(header::CONTENT_TYPE, "application/xml")], b).into_response(),
            Err(_) => (StatusCode::NOT_FOUND, "not found").into_response(),
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_document_names_its_url_and_leaves_the_cache_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = temp_cache(tmp.path());
    let svc = cache.join("exact");
    let before = snapshot(&svc);
    for (broken, what) in [
        (
            "<?xml version=\"1.0\"?>\n<edmx:Edmx Version=\"1.0\" xmlns:edmx=\"http://schemas.microsoft.com/ado/2007/06/edmx\">\n  <edmx:DataServices>\n    <Schema",
            "does not parse",
        ),
        ("{\"error\": \"nope\"}", "not XML"),
    ] {
        let base = broken_server(broken).await;
        let cache2 = cache.clone();
        let base2 = base.clone();
        let (out, stdout, stderr) =
            tokio::task::spawn_blocking(move || refresh(&cache2, &base2, &["--division", "100001"]))
                .await
                .unwrap();
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
        let url = format!("{base}/api/v1/100001/financial/$metadata");
        assert!(stderr.contains(&url), "{url} not named:\n{stderr}");
        assert!(stderr.contains(what), "{stderr}");
        assert_eq!(snapshot(&svc), before, "the cache changed");
    }
}

#[test]
fn an_unknown_service_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = temp_cache(tmp.path());
    let out = Command::new(env!("CARGO_BIN_EXE_odatasync"))
        .arg("--metadata-cache")
        .arg(&cache)
        .args(["refresh-metadata", "--service", "nosuch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A service with one document and no divisions (Northwind, V4, no auth): its `$metadata` at
/// the service root is the cached `northwind.xml`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_document_service_refreshes_from_the_root_metadata() {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let repo = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../metadata-cache/northwind"
    ));
    let tmp = tempfile::tempdir().unwrap();
    let svc = tmp.path().join("cache").join("northwind");
    std::fs::create_dir_all(&svc).unwrap();
    for f in ["northwind.xml", "service.toml"] {
        std::fs::write(svc.join(f), std::fs::read(repo.join(f)).unwrap()).unwrap();
    }
    let anchor = "<Property Name=\"Phone\" Type=\"Edm.String\" MaxLength=\"24\" />\n";
    let text = std::fs::read_to_string(repo.join("northwind.xml")).unwrap();
    let shipper = text.find("<EntityType Name=\"Shipper\">").unwrap();
    let at = shipper + text[shipper..].find(anchor).unwrap() + anchor.len();
    let served = format!(
        "{}        <Property Name=\"Website\" Type=\"Edm.String\" />\n{}",
        &text[..at],
        &text[at..]
    );
    let served2 = served.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let served = served2.clone();
        async move {
            if req.uri().path() == "/svc/$metadata" {
                ([(header::CONTENT_TYPE, "application/xml")], served).into_response()
            } else {
                (StatusCode::NOT_FOUND, "not found").into_response()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let cache = tmp.path().join("cache");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_odatasync"))
            .arg("--metadata-cache")
            .arg(&cache)
            .args(["refresh-metadata", "--service", "northwind"])
            .env("ODATASYNC_BASE_URL", format!("http://{addr}/svc/"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("http://{addr}/svc/$metadata")),
        "{stdout}"
    );
    assert!(
        stdout.contains("+ Shippers.Website: Edm.String"),
        "{stdout}"
    );
    assert!(
        stdout.contains("new column northwind_shippers.website"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(svc.join("northwind.xml")).unwrap(),
        served
    );
}
