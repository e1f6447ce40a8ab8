//! The `fake-exact` binary serves on the given loopback address (for the README demo and the
//! sync runtime), with the `/_test/clock` control to move its clock.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// §1.2: `current/Me` and a data page from the binary; `--no-auth` for manual exploration.
#[test]
fn binary_serves_on_a_loopback_address() {
    let child = Command::new(env!("CARGO_BIN_EXE_fake-exact"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--no-auth",
            "--rows",
            "5",
            "--divisions",
            "7,8",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut child = Kill(child);
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    let c = reqwest::blocking::Client::new();
    let get = |u: &str| {
        let t = c
            .get(format!("{base}{u}"))
            .header("accept", "application/json")
            .send()
            .unwrap()
            .text()
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&t).unwrap()
    };
    let me = get("/api/v1/current/Me");
    assert_eq!(me["d"]["results"][0]["CurrentDivision"], 7);
    let page = get("/api/v1/8/crm/Accounts?$select=ID");
    assert_eq!(page["d"]["results"].as_array().unwrap().len(), 5);
    let before = c
        .post(format!("{base}/_test/clock"))
        .body(r#"{"advance_ms": 0}"#)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let after = c
        .post(format!("{base}/_test/clock"))
        .body(r#"{"advance_ms": 3600000}"#)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let ms = |t: &str| {
        serde_json::from_str::<serde_json::Value>(t).unwrap()["now_ms"]
            .as_i64()
            .unwrap()
    };
    assert!(ms(&after) - ms(&before) >= 3_600_000);
}
