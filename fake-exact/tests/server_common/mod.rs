//! Helpers shared by the `server_*` tests: start a server, log in over real HTTP, GET JSON.
#![allow(dead_code)]

use fake_exact::{Config, FakeExact, Handle};
use reqwest::blocking::{Client, Response};
use serde_json::Value;

pub const DIV: i32 = 100001;
pub const REDIRECT: &str = "https://app.example.nl/callback";

pub fn http() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub struct Api {
    pub h: Handle,
    pub http: Client,
    pub access: String,
    pub refresh: String,
}

/// Starts the server and logs in with the authorization-code grant (§3).
pub fn start(cfg: Config) -> Api {
    let h = FakeExact::start(cfg);
    let http = http();
    let (access, refresh) = login(&h, &http);
    Api {
        h,
        http,
        access,
        refresh,
    }
}

/// Authorization code from `/api/oauth2/auth` (decoded from the redirect).
pub fn auth_code(h: &Handle, http: &Client) -> String {
    let cfg = h.config();
    let r = http
        .get(format!("{}/api/oauth2/auth", h.base_url()))
        .query(&[
            ("client_id", cfg.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("state", "xyz"),
        ])
        .send()
        .expect("auth");
    assert_eq!(r.status().as_u16(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    let url = reqwest::Url::parse(&loc).unwrap();
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    assert!(url.query_pairs().any(|(k, v)| k == "state" && v == "xyz"));
    code
}

pub fn token_request(h: &Handle, http: &Client, form: &[(&str, &str)]) -> Response {
    let cfg = h.config();
    let mut f: Vec<(&str, &str)> = form.to_vec();
    f.push(("client_id", cfg.client_id.as_str()));
    f.push(("client_secret", cfg.client_secret.as_str()));
    let body = serde_urlencoded::to_string(&f).unwrap();
    http.post(format!("{}/api/oauth2/token", h.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .expect("token")
}

pub fn login(h: &Handle, http: &Client) -> (String, String) {
    let code = auth_code(h, http);
    let r = token_request(
        h,
        http,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    );
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json_text();
    (
        v["access_token"].as_str().unwrap().to_string(),
        v["refresh_token"].as_str().unwrap().to_string(),
    )
}

pub trait JsonText {
    fn json_text(self) -> Value;
}

impl JsonText for Response {
    fn json_text(self) -> Value {
        let t = self.text().expect("body");
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
    }
}

impl Api {
    /// Refreshes the token pair (§3), e.g. after moving the clock past the access-token life.
    pub fn renew(&mut self) {
        let r = token_request(
            &self.h,
            &self.http,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &self.refresh),
            ],
        );
        assert_eq!(r.status().as_u16(), 200);
        let v = r.json_text();
        self.access = v["access_token"].as_str().unwrap().to_string();
        self.refresh = v["refresh_token"].as_str().unwrap().to_string();
    }

    /// `{base}/api/v1/{division}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1/{}/{}", self.h.base_url(), DIV, path)
    }

    /// GET with the bearer token; `url` absolute or relative to `/api/v1/{DIV}/`.
    pub fn get(&self, url: &str) -> Response {
        let u = if url.starts_with("http") {
            url.to_string()
        } else {
            self.url(url)
        };
        self.http
            .get(u)
            .header("accept", "application/json")
            .bearer_auth(&self.access)
            .send()
            .expect("GET")
    }

    /// GET expecting `status`, returning the JSON body.
    pub fn get_json(&self, url: &str, status: u16) -> Value {
        let r = self.get(url);
        let s = r.status().as_u16();
        let t = r.text().unwrap();
        assert_eq!(s, status, "GET {url}: {t}");
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
    }

    /// The error text of an Exact error body (§2.6), checking the shape.
    pub fn error_text(v: &Value) -> String {
        assert_eq!(v["error"]["code"], "", "{v}");
        assert_eq!(v["error"]["message"]["lang"], "", "{v}");
        v["error"]["message"]["value"]
            .as_str()
            .expect("message")
            .to_string()
    }

    pub fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let u = format!("{}/_test/{path}", self.h.base_url());
        let r = match method {
            "GET" => self.http.get(u),
            _ => self
                .http
                .post(u)
                .header("content-type", "application/json")
                .body(body.unwrap_or_default().to_string()),
        }
        .send()
        .expect("control");
        let s = r.status().as_u16();
        let t = r.text().unwrap();
        assert_eq!(s, 200, "{path}: {t}");
        serde_json::from_str(&t).unwrap()
    }
}

/// Resident set size of this process in kB (Linux), for printed figures.
pub fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Rows of a `{"d": {"results": [...]}}` page.
pub fn results(v: &Value) -> &Vec<Value> {
    v["d"]["results"].as_array().expect("d.results")
}
