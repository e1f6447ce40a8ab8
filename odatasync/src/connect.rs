//! From a [`Service`] and the environment to a [`Client`]: credentials (never from files in
//! the repository), the encrypted token store in the target database, the first login
//! (authorization code over a loopback redirect, or a refresh token from the environment),
//! and the divisions the token can reach.

use crate::error::Error;
use crate::service::Service;
use odata_runtime::client::{
    Auth, Client, ClientOptions, Clock, ExactOAuth2, Secret, TokenSet, TokenStore,
};
use odata_runtime::sql::Db;
use odata_runtime::sync::tokens::{check_secret_key, load_secret, save_secret};
use odata_runtime::sync::{DbTokenStore, SecretKey};
use odata_runtime::Dialect;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const ENV_CLIENT_ID: &str = "ODATASYNC_CLIENT_ID";
pub const ENV_CLIENT_SECRET: &str = "ODATASYNC_CLIENT_SECRET";
pub const ENV_REDIRECT_URI: &str = "ODATASYNC_REDIRECT_URI";
pub const ENV_REFRESH_TOKEN: &str = "ODATASYNC_REFRESH_TOKEN";
pub const ENV_BEARER_TOKEN: &str = "ODATASYNC_BEARER_TOKEN";
pub const ENV_USERNAME: &str = "ODATASYNC_USERNAME";
pub const ENV_PASSWORD: &str = "ODATASYNC_PASSWORD";
/// The redirect URI registered for the app when `$ODATASYNC_REDIRECT_URI` is not set.
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8765/callback";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn require(name: &str, why: &str) -> Result<String, Error> {
    env(name).ok_or_else(|| Error::Usage(format!("${name} is not set ({why})")))
}

/// The key that encrypts tokens at rest: `$ODATASYNC_SECRET_KEY` (base64 of 32 bytes), else
/// the file `$ODATASYNC_SECRET_KEY_FILE`, else `~/.config/odatasync/secret.key` (created with
/// mode 0600 on first use). Never stored in the database.
pub fn secret_key() -> Result<SecretKey, Error> {
    secret_key_with_source().map(|(k, _)| k)
}

/// [`secret_key`] and where it came from (for messages: the variable or the file, never the key).
pub fn secret_key_with_source() -> Result<(SecretKey, String), Error> {
    // A key file named in the environment is created on first use, like the default one.
    if std::env::var_os("ODATASYNC_SECRET_KEY").is_none() {
        if let Some(p) = std::env::var_os("ODATASYNC_SECRET_KEY_FILE") {
            let p = PathBuf::from(p);
            return SecretKey::load_or_create(&p)
                .map(|k| (k, format!("$ODATASYNC_SECRET_KEY_FILE ({})", p.display())))
                .map_err(|e| Error::Usage(e.to_string()));
        }
    }
    if let Some(k) = SecretKey::from_env().map_err(|e| Error::Usage(e.to_string()))? {
        return Ok((k, "$ODATASYNC_SECRET_KEY".into()));
    }
    let path = default_key_file()?;
    SecretKey::load_or_create(&path)
        .map(|k| (k, format!("the default key file {}", path.display())))
        .map_err(|e| Error::Usage(e.to_string()))
}

/// `$XDG_CONFIG_HOME/odatasync/secret.key`, else `~/.config/odatasync/secret.key`.
fn default_key_file() -> Result<PathBuf, Error> {
    let dir = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| {
            Error::Usage(
                "no secret key: set $ODATASYNC_SECRET_KEY or $ODATASYNC_SECRET_KEY_FILE".into(),
            )
        })?;
    Ok(dir.join("odatasync").join("secret.key"))
}

/// The key in use, as [`secret_key_with_source`] finds it, but never created: for
/// `keys rotate`, where a new random "current" key could decrypt nothing.
pub fn existing_secret_key() -> Result<(SecretKey, String), Error> {
    if let Some(k) = SecretKey::from_env().map_err(|e| Error::Usage(e.to_string()))? {
        let source = if std::env::var("ODATASYNC_SECRET_KEY").is_ok_and(|v| !v.trim().is_empty()) {
            "$ODATASYNC_SECRET_KEY".to_string()
        } else {
            format!(
                "$ODATASYNC_SECRET_KEY_FILE ({})",
                std::env::var("ODATASYNC_SECRET_KEY_FILE").unwrap_or_default()
            )
        };
        return Ok((k, source));
    }
    let path = default_key_file()?;
    if !path.exists() {
        return Err(Error::Usage(format!(
            "no current key: $ODATASYNC_SECRET_KEY and $ODATASYNC_SECRET_KEY_FILE are not set and {} does not exist",
            path.display()
        )));
    }
    SecretKey::load_or_create(&path)
        .map(|k| (k, format!("the default key file {}", path.display())))
        .map_err(|e| Error::Usage(e.to_string()))
}

/// The name of the app's client secret in `odata_secrets`.
pub const CLIENT_SECRET_NAME: &str = "client_secret";

/// The client secret of an `exact-oauth2` service: `$ODATASYNC_CLIENT_SECRET`, stored
/// encrypted in `odata_secrets` (name `client_secret`) when it differs from the stored one;
/// without the variable, the stored one. So scheduled syncs need no secret in their
/// environment once `odatasync auth` (or a sync) ran with it.
async fn client_secret(db: &Db, key: &SecretKey, service: &str) -> Result<Secret, Error> {
    let stored = load_secret(db, key, service, CLIENT_SECRET_NAME)
        .await
        .map_err(crate::keys::secrets_error)?;
    match (env(ENV_CLIENT_SECRET), stored) {
        (Some(s), stored) => {
            let s = Secret::new(s);
            if stored.as_ref() != Some(&s) {
                save_secret(db, key, service, CLIENT_SECRET_NAME, &s)
                    .await
                    .map_err(crate::keys::secrets_error)?;
                tracing::info!("client secret of service {service} stored encrypted in odata_secrets");
            }
            Ok(s)
        }
        (None, Some(s)) => {
            tracing::debug!("client secret of service {service} from odata_secrets");
            Ok(s)
        }
        (None, None) => Err(Error::Usage(format!(
            "${ENV_CLIENT_SECRET} is not set and no client secret of service '{service}' is stored in the database (the app registration, auth = \"exact-oauth2\"; it is stored encrypted after the first `odatasync auth` or sync with ${ENV_CLIENT_SECRET} set)"
        ))),
    }
}

/// What [`connect`] builds.
pub struct Connection {
    pub client: Client,
    /// Whether the base URL has a `{division}` segment.
    pub has_divisions: bool,
    /// The token store (Exact OAuth2 only).
    pub store: Option<Arc<DbTokenStore>>,
}

/// Client settings that are not the service's (tests speed up the clock).
#[derive(Default, Clone)]
pub struct ConnectOptions {
    pub clock: Option<Arc<dyn Clock>>,
    pub client: Option<ClientOptions>,
    /// The redirect URI sent with the code exchange (default `$ODATASYNC_REDIRECT_URI`).
    pub redirect_uri: Option<String>,
    /// The app's client id and secret (default `$ODATASYNC_CLIENT_ID`, `$ODATASYNC_CLIENT_SECRET`).
    pub credentials: Option<(String, Secret)>,
    /// The service root (default: `$ODATASYNC_BASE_URL`, then `service.toml`).
    pub base_url: Option<String>,
    /// The token endpoint (default: [`Service::token_url`]).
    pub token_url: Option<String>,
    /// The key file that encrypts the tokens (default: [`secret_key`]).
    pub secret_key_file: Option<PathBuf>,
}

impl ConnectOptions {
    fn base_url(&self, service: &Service) -> Result<String, Error> {
        match &self.base_url {
            Some(u) => Ok(u.clone()),
            None => service.base_url(),
        }
    }
    fn token_url(&self, service: &Service) -> Result<String, Error> {
        match &self.token_url {
            Some(u) => Ok(u.clone()),
            None => service.token_url(),
        }
    }
}

/// Builds the client of `service`. For `exact-oauth2` the tokens live (encrypted) in `db`; when
/// the store is empty, `$ODATASYNC_REFRESH_TOKEN` seeds it (the headless first login).
pub async fn connect(
    service: &Service,
    db: &Db,
    opts: &ConnectOptions,
) -> Result<Connection, Error> {
    let base = opts.base_url(service)?;
    let mut store_out = None;
    let auth = match service.toml.auth.as_str() {
        "none" => Auth::None,
        "bearer" => Auth::Bearer(Secret::new(require(
            ENV_BEARER_TOKEN,
            "the service uses auth = \"bearer\"",
        )?)),
        "basic" => Auth::Basic(
            require(ENV_USERNAME, "the service uses auth = \"basic\"")?,
            Secret::new(require(ENV_PASSWORD, "the service uses auth = \"basic\"")?),
        ),
        _ => {
            let why = "the app registration of the service (auth = \"exact-oauth2\")";
            let client_id = match &opts.credentials {
                Some((id, _)) => id.clone(),
                None => require(ENV_CLIENT_ID, why)?,
            };
            let (key, key_source) = match &opts.secret_key_file {
                Some(p) => (
                    SecretKey::load_or_create(p).map_err(|e| Error::Usage(e.to_string()))?,
                    format!("the key file {}", p.display()),
                ),
                None => secret_key_with_source()?,
            };
            // A wrong key stops here (exit 2), before anything is sent or stored.
            check_secret_key(db, &key, &service.name, Some(&client_id))
                .await
                .map_err(|e| match crate::keys::secrets_error(e) {
                    Error::Usage(m) => {
                        Error::Usage(format!("{m}. The key in use comes from {key_source}"))
                    }
                    other => other,
                })?;
            let client_secret = match &opts.credentials {
                Some((_, secret)) => secret.clone(),
                None => client_secret(db, &key, &service.name).await?,
            };
            let store = Arc::new(DbTokenStore::new(
                db.clone(),
                &service.name,
                &client_id,
                key,
            )?);
            if store.load().await?.is_none() {
                if let Some(rt) = env(ENV_REFRESH_TOKEN) {
                    // An expired access token makes the client refresh before the first call.
                    store
                        .save(TokenSet {
                            access_token: Secret::new(String::new()),
                            refresh_token: Secret::new(rt),
                            expires_at_ms: 0,
                            obtained_at_ms: 0,
                        })
                        .await?;
                    tracing::info!("token store seeded from ${ENV_REFRESH_TOKEN}");
                }
            }
            store_out = Some(store.clone());
            Auth::ExactOAuth2(ExactOAuth2 {
                client_id,
                client_secret,
                token_url: opts.token_url(service)?,
                redirect_uri: opts
                    .redirect_uri
                    .clone()
                    .or_else(|| env(ENV_REDIRECT_URI))
                    .unwrap_or_else(|| DEFAULT_REDIRECT_URI.into()),
                store,
            })
        }
    };
    let dialect = service
        .tables
        .first()
        .map(|_| dialect_of(service))
        .unwrap_or(Dialect::V4);
    let mut b = Client::builder(base).auth(auth).dialect(dialect);
    if let Some(c) = &opts.clock {
        b = b.clock(c.clone());
    }
    if let Some(o) = &opts.client {
        b = b.options(o.clone());
    }
    Ok(Connection {
        has_divisions: opts.base_url(service)?.contains("{division}"),
        client: b.build()?,
        store: store_out,
    })
}

/// The JSON dialect of the service's generated types.
fn dialect_of(service: &Service) -> Dialect {
    let mut d = Dialect::V4;
    struct V<'a>(&'a mut Dialect, bool);
    impl odata_runtime::TableVisitor for V<'_> {
        fn visit<E: odata_runtime::Entity + PartialEq>(
            &mut self,
            _t: &'static odata_runtime::TableInfo,
        ) {
            if !self.1 {
                *self.0 = E::DIALECT;
                self.1 = true;
            }
        }
    }
    generated::visit_tables(&service.name, &mut V(&mut d, false));
    d
}

/// Whether the store holds tokens (else `odatasync auth` is needed).
pub async fn has_tokens(conn: &Connection) -> Result<bool, Error> {
    match &conn.store {
        Some(s) => Ok(s.load().await?.is_some()),
        None => Ok(true),
    }
}

/// The divisions to sync: `--division`, else `service.toml`'s `divisions`, else every
/// division the token can reach (`system/Divisions`, stored with the tokens). Services without
/// divisions: one run with `None`.
pub async fn divisions(
    service: &Service,
    conn: &Connection,
    only: Option<i32>,
) -> Result<Vec<Option<i32>>, Error> {
    if !conn.has_divisions {
        return Ok(vec![None]);
    }
    if let Some(d) = only {
        return Ok(vec![Some(d)]);
    }
    if let Some(ds) = &service.toml.divisions {
        return ds
            .iter()
            .map(|d| {
                i32::try_from(*d).map(Some).map_err(|_| {
                    Error::Config(format!("service.toml: division {d} is out of range"))
                })
            })
            .collect();
    }
    let ds = conn.client.divisions().await?;
    if let Some(store) = &conn.store {
        let named: Vec<(i32, Option<String>)> = ds.iter().map(|d| (*d, None)).collect();
        store.save_divisions(&named).await?;
    }
    if ds.is_empty() {
        return Err(Error::Other(
            "the token reaches no division (system/Divisions is empty)".into(),
        ));
    }
    Ok(ds.into_iter().map(Some).collect())
}

/// A one-shot loopback HTTP listener for the OAuth2 redirect.
pub struct RedirectListener {
    listener: tokio::net::TcpListener,
    pub redirect_uri: String,
}

impl RedirectListener {
    /// Listens where `redirect_uri` points (it must be `http://127.0.0.1:PORT/...` or
    /// `http://localhost:PORT/...`; port 0 picks a free port and rewrites the URI).
    pub async fn bind(redirect_uri: &str) -> Result<RedirectListener, Error> {
        let u = url::Url::parse(redirect_uri)
            .map_err(|e| Error::Usage(format!("redirect URI {redirect_uri:?}: {e}")))?;
        let host = u.host_str().unwrap_or_default();
        if u.scheme() != "http" || !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(Error::Usage(format!(
                "redirect URI {redirect_uri:?} is not a loopback http:// address; the login needs one it can listen on (set ${ENV_REDIRECT_URI}, e.g. {DEFAULT_REDIRECT_URI}, and register it with the app)"
            )));
        }
        let port = u.port().unwrap_or(80);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| Error::Other(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
        let mut u2 = u.clone();
        if port == 0 {
            let actual = listener
                .local_addr()
                .map_err(|e| Error::Other(e.to_string()))?
                .port();
            let _ = u2.set_port(Some(actual));
        }
        Ok(RedirectListener {
            listener,
            redirect_uri: u2.to_string(),
        })
    }

    /// Waits for the redirect; returns the `code` after checking `state`.
    pub async fn code(self, state: &str) -> Result<String, Error> {
        loop {
            let (mut sock, _) = self
                .listener
                .accept()
                .await
                .map_err(|e| Error::Other(e.to_string()))?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 2048];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                let n = sock
                    .read(&mut chunk)
                    .await
                    .map_err(|e| Error::Other(e.to_string()))?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf);
            let target = head
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("/");
            let u = url::Url::parse(&format!("http://127.0.0.1{target}"))
                .map_err(|e| Error::Other(e.to_string()))?;
            let get = |k: &str| {
                u.query_pairs()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.into_owned())
            };
            let (status, body, result) = match (get("code"), get("state"), get("error")) {
                (_, _, Some(err)) => (
                    "400 Bad Request",
                    "Login failed; see the terminal.",
                    Some(Err(Error::Other(format!("the login was refused: {err}")))),
                ),
                (Some(code), Some(s), None) if s == state => (
                    "200 OK",
                    "Logged in. You can close this window.",
                    Some(Ok(code)),
                ),
                (Some(_), _, None) => (
                    "400 Bad Request",
                    "State mismatch.",
                    Some(Err(Error::Other(
                        "the redirect's state does not match this login (a stale or forged redirect); run the login again".into(),
                    ))),
                ),
                _ => ("404 Not Found", "Not the login redirect.", None),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
            if let Some(r) = result {
                return r;
            }
        }
    }
}

/// A random `state` for the authorization request.
pub fn new_state() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// The authorization-code login of an Exact OAuth2 service. `open` receives the URL the user
/// must visit (the CLI prints it; the demo fetches it itself); the redirect comes back to a
/// loopback listener; the code is exchanged and the pair saved in the store.
pub async fn login<F, Fut>(
    service: &Service,
    db: &Db,
    opts: &ConnectOptions,
    open: F,
) -> Result<Connection, Error>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let wanted = opts
        .redirect_uri
        .clone()
        .or_else(|| env(ENV_REDIRECT_URI))
        .unwrap_or_else(|| DEFAULT_REDIRECT_URI.into());
    let listener = RedirectListener::bind(&wanted).await?;
    let redirect = listener.redirect_uri.clone();
    // The code exchange must send the same redirect URI as the authorization request.
    let mut opts = opts.clone();
    opts.redirect_uri = Some(redirect.clone());
    let conn = connect(service, db, &opts).await?;
    if conn.store.is_none() {
        return Err(Error::Usage(format!(
            "service '{}' does not use exact-oauth2; nothing to log in to",
            service.name
        )));
    }
    let state = new_state();
    let client_id = match &opts.credentials {
        Some((id, _)) => id.clone(),
        None => require(ENV_CLIENT_ID, "the app registration")?,
    };
    let url = authorize_url(
        service,
        &opts.token_url(service)?,
        &client_id,
        &redirect,
        &state,
    )?;
    let wait = tokio::spawn(listener.code_owned(state));
    open(url).await?;
    let code = wait
        .await
        .map_err(|e| Error::Other(format!("login listener: {e}")))??;
    conn.client.exchange_authorization_code(&code).await?;
    Ok(conn)
}

impl RedirectListener {
    async fn code_owned(self, state: String) -> Result<String, Error> {
        self.code(&state).await
    }
}

fn authorize_url(
    service: &Service,
    token_url: &str,
    client_id: &str,
    redirect: &str,
    state: &str,
) -> Result<String, Error> {
    let base = token_url
        .strip_suffix("/token")
        .ok_or_else(|| Error::Config(format!("token URL {token_url:?} does not end in /token")))?;
    let auth_url = service
        .toml
        .authorize_url
        .clone()
        .unwrap_or_else(|| format!("{base}/auth"));
    let mut u = url::Url::parse(&auth_url)
        .map_err(|e| Error::Config(format!("authorize URL {auth_url:?}: {e}")))?;
    u.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("response_type", "code")
        .append_pair("state", state)
        .append_pair("force_login", "0");
    Ok(u.to_string())
}
