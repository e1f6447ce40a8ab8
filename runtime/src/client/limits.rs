//! Rate limits and the error budget (exact-online.md §4).
//!
//! * Rate limits (§4.1, §4.2): every response with a division carries `X-RateLimit-*` (daily)
//!   and `X-RateLimit-Minutely-*` headers; the resets are UTC epoch **milliseconds**. The client
//!   keeps the last known remaining counts per division, counts its own calls down between
//!   responses and does not send while a count is 0 before its reset. A 429 (§4.3) blocks the
//!   division until the reset it names.
//! * Error budget (§4.4): Exact blocks an app for an hour after more than 10 answers with
//!   status 400, 401, 403 or 404 per (endpoint, division) per hour. The client counts them in a
//!   sliding hour and refuses to call an endpoint that reached its own, lower budget.

use reqwest::header::HeaderMap;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// One hour in milliseconds.
pub(crate) const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Default, Clone)]
struct RateState {
    minutely_remaining: Option<u64>,
    minutely_reset: Option<i64>,
    daily_remaining: Option<u64>,
    daily_reset: Option<i64>,
    /// Set by a 429: nothing is sent before this time.
    blocked_until: Option<i64>,
}

/// The last known rate-limit headers of one division (for callers that want to show them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitInfo {
    pub minutely_remaining: Option<u64>,
    pub minutely_reset_ms: Option<i64>,
    pub daily_remaining: Option<u64>,
    pub daily_reset_ms: Option<i64>,
}

/// (endpoint, division) of the error budget.
type ErrorKey = (String, Option<i32>);

/// Errors of the last hour and calls in flight of one [`ErrorKey`].
#[derive(Debug, Default)]
struct Budget {
    errors: VecDeque<i64>,
    in_flight: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Limits {
    rate: Mutex<HashMap<Option<i32>, RateState>>,
    errors: Mutex<HashMap<ErrorKey, Budget>>,
}

fn header_i64(h: &HeaderMap, k: &str) -> Option<i64> {
    h.get(k)?.to_str().ok()?.trim().parse().ok()
}

impl Limits {
    /// Reserves one call for `division`, or returns the time (epoch ms) to wait for. A count
    /// at or below `reserve` counts as exhausted (calls left for other processes of the app,
    /// which draw from the same counters, §4.3).
    pub(crate) fn try_acquire(
        &self,
        division: Option<i32>,
        now: i64,
        reserve: u64,
    ) -> Result<(), i64> {
        let mut map = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.entry(division).or_default();
        if let Some(until) = s.blocked_until {
            if now < until {
                return Err(until);
            }
            s.blocked_until = None;
        }
        if s.daily_reset.is_some_and(|r| now >= r) {
            s.daily_remaining = None;
            s.daily_reset = None;
        }
        if s.minutely_reset.is_some_and(|r| now >= r) {
            s.minutely_remaining = None;
            s.minutely_reset = None;
        }
        if s.daily_remaining.is_some_and(|r| r <= reserve) {
            return Err(s.daily_reset.unwrap_or(now + 60_000));
        }
        if s.minutely_remaining.is_some_and(|r| r <= reserve) {
            return Err(s.minutely_reset.unwrap_or(now + 60_000));
        }
        if let Some(r) = &mut s.minutely_remaining {
            *r = r.saturating_sub(1);
        }
        if let Some(r) = &mut s.daily_remaining {
            *r = r.saturating_sub(1);
        }
        Ok(())
    }

    /// Takes the rate-limit headers of a response into account. Within one window the lower
    /// of the local count and the header wins (other calls may be in flight); a new window
    /// (another reset time) takes the header.
    pub(crate) fn update(&self, division: Option<i32>, h: &HeaderMap) {
        let mut map = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.entry(division).or_default();
        fn merge(
            rem: &mut Option<u64>,
            reset: &mut Option<i64>,
            new_rem: Option<i64>,
            new_reset: Option<i64>,
        ) {
            let Some(n) = new_rem else { return };
            let n = n.max(0) as u64;
            match (*reset, new_reset) {
                (Some(a), Some(b)) if a == b => *rem = Some(rem.map_or(n, |r| r.min(n))),
                (Some(a), Some(b)) if b < a => {} // a stale answer from the previous window
                _ => {
                    *rem = Some(n);
                    *reset = new_reset;
                }
            }
        }
        merge(
            &mut s.minutely_remaining,
            &mut s.minutely_reset,
            header_i64(h, "x-ratelimit-minutely-remaining"),
            header_i64(h, "x-ratelimit-minutely-reset"),
        );
        merge(
            &mut s.daily_remaining,
            &mut s.daily_reset,
            header_i64(h, "x-ratelimit-remaining"),
            header_i64(h, "x-ratelimit-reset"),
        );
    }

    /// After a 429: the time to wait for (the reset the answer names: the minutely one when
    /// the minutely count is exhausted, else the daily one, else `Retry-After`). `None` when
    /// the answer names no reset at all: not a rate limit (§4.3 always sends the headers of
    /// the exhausted limit) but e.g. an error-budget block (§4.4), which must not be retried.
    pub(crate) fn on_429(&self, division: Option<i32>, h: &HeaderMap, now: i64) -> Option<i64> {
        let minutely = (header_i64(h, "x-ratelimit-minutely-remaining") == Some(0))
            .then(|| header_i64(h, "x-ratelimit-minutely-reset"))
            .flatten();
        let daily = (header_i64(h, "x-ratelimit-remaining") == Some(0))
            .then(|| header_i64(h, "x-ratelimit-reset"))
            .flatten();
        let retry_after = header_i64(h, "retry-after").map(|s| now + s * 1000);
        let named = minutely
            .or(daily)
            .or(header_i64(h, "x-ratelimit-minutely-reset"))
            .or(header_i64(h, "x-ratelimit-reset"))
            .or(retry_after)?;
        // A reset already past (clock skew): wait a second rather than call at once.
        let until = named.max(now + 1_000);
        let mut map = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.entry(division).or_default();
        s.blocked_until = Some(s.blocked_until.map_or(until, |b| b.max(until)));
        Some(until)
    }

    pub(crate) fn info(&self, division: Option<i32>) -> RateLimitInfo {
        let map = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.get(&division).cloned().unwrap_or_default();
        RateLimitInfo {
            minutely_remaining: s.minutely_remaining,
            minutely_reset_ms: s.minutely_reset,
            daily_remaining: s.daily_remaining,
            daily_reset_ms: s.daily_reset,
        }
    }

    /// Takes a slot to call `endpoint` in `division`: `Ok(Some(slot))` to go (the slot is
    /// released when dropped, after the answer was recorded); `Ok(None)` to wait because the
    /// errors of the last hour plus the calls in flight (each may still fail) reach `budget`;
    /// `Err((errors, retry_at_ms))` when the errors alone reach it.
    pub(crate) fn check_budget(
        &self,
        endpoint: &str,
        division: Option<i32>,
        now: i64,
        budget: usize,
    ) -> Result<Option<InFlight<'_>>, (usize, i64)> {
        let key = (endpoint.to_string(), division);
        let mut map = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let b = map.entry(key.clone()).or_default();
        while b.errors.front().is_some_and(|t| *t <= now - HOUR_MS) {
            b.errors.pop_front();
        }
        if b.errors.len() >= budget {
            let retry_at = b.errors.front().copied().unwrap_or(now) + HOUR_MS;
            return Err((b.errors.len(), retry_at));
        }
        if b.errors.len() + b.in_flight >= budget {
            return Ok(None);
        }
        b.in_flight += 1;
        Ok(Some(InFlight { limits: self, key }))
    }

    pub(crate) fn record_error(&self, endpoint: &str, division: Option<i32>, now: i64) {
        let mut map = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((endpoint.to_string(), division))
            .or_default()
            .errors
            .push_back(now);
    }
}

/// A call in flight on an (endpoint, division) of the error budget; released on drop.
pub(crate) struct InFlight<'a> {
    limits: &'a Limits,
    key: ErrorKey,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self.limits.errors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get_mut(&self.key) {
            b.in_flight = b.in_flight.saturating_sub(1);
        }
    }
}

/// The endpoint an error counts against: the path below the division, lower-cased, without a
/// key predicate or `/$count` (`crm/Accounts(guid'…')` → `crm/accounts`).
pub(crate) fn endpoint_key(endpoint: &str) -> String {
    let e = endpoint.split('?').next().unwrap_or("");
    let e = e.trim_matches('/');
    let e = e.strip_suffix("/$count").unwrap_or(e);
    let e = match e.find('(') {
        Some(i) => &e[..i],
        None => e,
    };
    e.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn paces_and_budgets() {
        let l = Limits::default();
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-minutely-remaining",
            HeaderValue::from_static("1"),
        );
        h.insert(
            "x-ratelimit-minutely-reset",
            HeaderValue::from_static("60000"),
        );
        assert!(l.try_acquire(Some(1), 0, 0).is_ok());
        l.update(Some(1), &h);
        assert!(l.try_acquire(Some(1), 10, 0).is_ok());
        assert_eq!(l.try_acquire(Some(1), 20, 0), Err(60_000));
        assert!(l.try_acquire(Some(2), 20, 0).is_ok());
        assert!(l.try_acquire(Some(1), 60_000, 0).is_ok());
        // a reserve of 1: the last call of a window is left alone
        l.update(Some(3), &h);
        assert_eq!(l.try_acquire(Some(3), 0, 1), Err(60_000));
        for t in 0..3 {
            l.record_error("crm/accounts", Some(1), t);
        }
        assert_eq!(
            l.check_budget("crm/accounts", Some(1), 5, 3).err(),
            Some((3, HOUR_MS))
        );
        {
            // after the hour: 1 error left (t=2), so two calls may be in flight, not three
            let a = l.check_budget("crm/accounts", Some(1), HOUR_MS + 1, 3);
            let b = l.check_budget("crm/accounts", Some(1), HOUR_MS + 1, 3);
            assert!(matches!((&a, &b), (Ok(Some(_)), Ok(Some(_)))));
            assert!(matches!(
                l.check_budget("crm/accounts", Some(1), HOUR_MS + 1, 3),
                Ok(None)
            ));
        }
        assert!(matches!(
            l.check_budget("crm/accounts", Some(1), HOUR_MS + 1, 3),
            Ok(Some(_))
        ));
        assert_eq!(endpoint_key("/CRM/Accounts(guid'x')"), "crm/accounts");
        assert_eq!(endpoint_key("crm/Accounts/$count"), "crm/accounts");
    }
}
