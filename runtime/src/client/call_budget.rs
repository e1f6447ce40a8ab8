//! A call budget shared with other processes of the same app (exact-online.md §4.1, §4.3):
//! Exact's limits are per app (client ID) and division, so every process of the app draws from
//! one counter, and a process counting only its own calls overruns it. A [`CallBudget`] is
//! asked before every request that names a division and told the `X-RateLimit-*` headers of
//! every answer; `odata_runtime::sync::budget::PgCallBudget` keeps the counter in PostgreSQL.
//! The client's own pacing ([`super::limits`]) and 429 handling stay in place underneath.

use super::clock::BoxFuture;
use reqwest::header::HeaderMap;

/// The answer of [`CallBudget::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// One call is reserved: send now.
    Go,
    /// No call left in the current window: ask again at this time (UTC epoch ms, the client's
    /// clock).
    WaitUntil(i64),
}

/// The rate-limit headers of one answer (§4.2), each when present. Resets are UTC epoch ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub minutely_limit: Option<i64>,
    pub minutely_remaining: Option<i64>,
    pub minutely_reset_ms: Option<i64>,
    pub daily_limit: Option<i64>,
    pub daily_remaining: Option<i64>,
    pub daily_reset_ms: Option<i64>,
}

fn header_i64(h: &HeaderMap, k: &str) -> Option<i64> {
    h.get(k)?.to_str().ok()?.trim().parse().ok()
}

impl RateLimitHeaders {
    pub fn from_headers(h: &HeaderMap) -> RateLimitHeaders {
        RateLimitHeaders {
            minutely_limit: header_i64(h, "x-ratelimit-minutely-limit"),
            minutely_remaining: header_i64(h, "x-ratelimit-minutely-remaining"),
            minutely_reset_ms: header_i64(h, "x-ratelimit-minutely-reset"),
            daily_limit: header_i64(h, "x-ratelimit-limit"),
            daily_remaining: header_i64(h, "x-ratelimit-remaining"),
            daily_reset_ms: header_i64(h, "x-ratelimit-reset"),
        }
    }

    /// No rate-limit header at all (a service without limits, a call without a division).
    pub fn is_empty(&self) -> bool {
        *self == RateLimitHeaders::default()
    }
}

/// A budget of calls per division shared beyond this client (set with
/// [`super::ClientBuilder::call_budget`] or [`super::ClientOptions::call_budget`]).
///
/// The client calls [`CallBudget::reserve`] right before sending a request with a division
/// (after its own pacing, so a reservation is not held across a wait) and
/// [`CallBudget::observe`] with the headers of every answer in that division, 429s included.
/// Calls without a division (`current/Me`) do not count towards Exact's limits (§4.1) and are
/// not budgeted. An `Err` from `reserve` fails the request ([`super::ClientError::RateLimited`]).
pub trait CallBudget: Send + Sync + std::fmt::Debug {
    /// Reserves one call in `division` at `now_ms` (the client's clock).
    fn reserve(&self, division: i32, now_ms: i64) -> BoxFuture<'_, Result<Reservation, String>>;
    /// The service's own count after an answer (corrects the shared counter).
    fn observe(&self, division: i32, headers: RateLimitHeaders, now_ms: i64) -> BoxFuture<'_, ()>;
}
