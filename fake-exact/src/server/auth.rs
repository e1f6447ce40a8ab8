//! OAuth2 as Exact runs it (§3): authorization-code grant, 10-minute access tokens,
//! single-use rotating refresh tokens, the 570-second rule and 30-day refresh lifetime.

use super::gen::mix4;
use std::collections::HashMap;

#[derive(Debug, Clone)]
struct Code {
    redirect_uri: String,
    issued: i64,
    used: bool,
}

#[derive(Debug, Clone)]
pub struct Access {
    pub client: String,
    pub expires: i64,
}

#[derive(Debug, Clone)]
struct Refresh {
    client: String,
    chain: u64,
    issued: i64,
    rotated_at: Option<i64>,
}

/// What a token request produced.
#[derive(Debug)]
pub enum TokenResult {
    Ok {
        access: String,
        refresh: String,
        expires_in: i64,
    },
    /// status, OAuth error code, description, optional `Reason` header, violation kind.
    Err {
        status: u16,
        error: &'static str,
        description: String,
        reason: Option<String>,
        violation: Option<&'static str>,
    },
}

fn err(status: u16, error: &'static str, description: impl Into<String>) -> TokenResult {
    TokenResult::Err {
        status,
        error,
        description: description.into(),
        reason: None,
        violation: None,
    }
}

/// Token lifetimes (ms of the server clock).
#[derive(Debug, Clone)]
pub struct AuthTimes {
    pub access_ttl: i64,
    pub refresh_min_age: i64,
    pub refresh_ttl: i64,
    pub code_ttl: i64,
    pub reuse_grace: i64,
}

#[derive(Debug, Default)]
pub struct AuthState {
    seed: u64,
    counter: u64,
    codes: HashMap<String, Code>,
    pub access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    /// Chain → when its last access token was issued.
    chains: HashMap<u64, i64>,
}

/// `10/11/2022 9:18:20 PM`, as in Exact's refresh-expiry message (§3).
fn us_time(utc_ms: i64) -> String {
    use chrono::{DateTime, Datelike, Timelike};
    let Some(d) = DateTime::from_timestamp_millis(utc_ms) else {
        return utc_ms.to_string();
    };
    let (pm, h) = d.hour12();
    format!(
        "{}/{}/{} {}:{:02}:{:02} {}",
        d.month(),
        d.day(),
        d.year(),
        h,
        d.minute(),
        d.second(),
        if pm { "PM" } else { "AM" }
    )
}

impl AuthState {
    pub fn new(seed: u64) -> AuthState {
        AuthState {
            seed,
            ..Default::default()
        }
    }

    fn token(&mut self, prefix: &str) -> String {
        self.counter += 1;
        let a = mix4(self.seed, self.counter, 0x70c, 1);
        let b = mix4(self.seed, self.counter, 0x70c, 2);
        format!("stampNL001.{prefix}{a:016x}{b:016x}")
    }

    /// Issues an authorization code (`!` inside, as Exact's codes have, §3).
    pub fn issue_code(&mut self, redirect_uri: &str, now: i64) -> String {
        let c = self.token("7Aao!IAAAA");
        self.codes.insert(
            c.clone(),
            Code {
                redirect_uri: redirect_uri.to_string(),
                issued: now,
                used: false,
            },
        );
        c
    }

    /// A fresh token pair as if the user had just consented (no HTTP round trip).
    pub fn grant(&mut self, client: &str, now: i64, t: &AuthTimes) -> Option<(String, String)> {
        match self.issue_pair(client, None, now, t) {
            TokenResult::Ok {
                access, refresh, ..
            } => Some((access, refresh)),
            TokenResult::Err { .. } => None,
        }
    }

    fn issue_pair(
        &mut self,
        client: &str,
        chain: Option<u64>,
        now: i64,
        t: &AuthTimes,
    ) -> TokenResult {
        let chain = chain.unwrap_or_else(|| {
            self.counter += 1;
            self.counter
        });
        let access = self.token("gAAAA");
        let refresh = self.token("jHaG!IAAAA");
        self.access.insert(
            access.clone(),
            Access {
                client: client.to_string(),
                expires: now + t.access_ttl,
            },
        );
        self.refresh.insert(
            refresh.clone(),
            Refresh {
                client: client.to_string(),
                chain,
                issued: now,
                rotated_at: None,
            },
        );
        self.chains.insert(chain, now);
        TokenResult::Ok {
            access,
            refresh,
            expires_in: t.access_ttl / 1000,
        }
    }

    pub fn exchange_code(
        &mut self,
        client: &str,
        code: &str,
        redirect_uri: Option<&str>,
        now: i64,
        t: &AuthTimes,
    ) -> TokenResult {
        let Some(c) = self.codes.get_mut(code) else {
            return err(400, "invalid_grant", "The authorization code is invalid.");
        };
        if c.used {
            return TokenResult::Err {
                status: 400,
                error: "invalid_grant",
                description: "The authorization code has already been used.".into(),
                reason: None,
                violation: Some("authorization_code_reuse"),
            };
        }
        if now - c.issued > t.code_ttl {
            return err(400, "invalid_grant", "The authorization code has expired.");
        }
        if redirect_uri.is_some_and(|r| r != c.redirect_uri) {
            return err(
                400,
                "invalid_grant",
                "The redirect_uri does not match the one of the authorization request.",
            );
        }
        c.used = true;
        self.issue_pair(client, None, now, t)
    }

    pub fn refresh(&mut self, client: &str, token: &str, now: i64, t: &AuthTimes) -> TokenResult {
        let Some(r) = self.refresh.get(token).cloned() else {
            return err(400, "invalid_grant", "The refresh token is invalid.");
        };
        if r.client != client {
            return err(
                400,
                "invalid_grant",
                "The refresh token was issued to another client.",
            );
        }
        if let Some(at) = r.rotated_at {
            if now - at > t.reuse_grace {
                return TokenResult::Err {
                    status: 401,
                    error: "unauthorized_client",
                    description: "Old refresh token used.".into(),
                    reason: None,
                    violation: Some("rotated_refresh_token_reuse"),
                };
            }
        }
        if now - r.issued > t.refresh_ttl {
            return TokenResult::Err {
                status: 400,
                error: "invalid_request",
                description: format!(
                    "The refresh token expired at {} and it is now {}.",
                    us_time(r.issued + t.refresh_ttl),
                    us_time(now)
                ),
                reason: None,
                violation: Some("expired_refresh_token"),
            };
        }
        let last = self.chains.get(&r.chain).copied().unwrap_or(i64::MIN / 2);
        if now - last < t.refresh_min_age {
            // §3: 400 access_denied, refresh token not consumed
            return TokenResult::Err {
                status: 400,
                error: "access_denied",
                description: "Rate limit exceeded: access_token not expired".into(),
                reason: Some(
                    "TooEarlyToRefreshTokens: Rate limit exceeded: access_token not expired".into(),
                ),
                violation: Some("early_refresh"),
            };
        }
        if let Some(old) = self.refresh.get_mut(token) {
            old.rotated_at.get_or_insert(now);
        }
        self.issue_pair(client, Some(r.chain), now, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_time_format() {
        assert_eq!(us_time(1_665_522_000_000), "10/11/2022 9:00:00 PM");
    }
}
