//! Rate limits (§4.1–4.3) and the error budget (§4.4), per (client ID, division).

use std::collections::HashMap;

pub const MINUTE_MS: i64 = 60_000;
pub const DAY_MS: i64 = 86_400_000;
pub const HOUR_MS: i64 = 3_600_000;

pub type Headers = Vec<(&'static str, String)>;

#[derive(Debug, Default, Clone, Copy)]
struct Rate {
    minute: i64,
    minute_count: u32,
    day: i64,
    day_count: u32,
    /// Start of the window in which a 429 was last answered (to spot clients that keep calling).
    limited_in: Option<i64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ErrState {
    window_start: i64,
    count: u32,
    blocked_until: i64,
    level: u32,
}

/// Outcome of counting one call.
#[derive(Debug)]
pub enum RateOutcome {
    /// Allowed; all six headers.
    Ok(Headers),
    /// Over the minutely limit: only the minutely headers (§4.2); `true` when a 429 was
    /// already answered in this window (the client ignored the reset time).
    Minutely(Headers, bool),
    /// Over the daily limit: only the daily headers.
    Daily(Headers, bool),
}

#[derive(Debug, Default)]
pub struct Limits {
    rate: HashMap<(String, i32), Rate>,
    errors: HashMap<(String, i32, String), ErrState>,
}

fn minutely(limit: u32, remaining: u32, reset: i64) -> Headers {
    vec![
        ("X-RateLimit-Minutely-Limit", limit.to_string()),
        ("X-RateLimit-Minutely-Remaining", remaining.to_string()),
        ("X-RateLimit-Minutely-Reset", reset.to_string()),
    ]
}

fn daily(limit: u32, remaining: u32, reset: i64) -> Headers {
    vec![
        ("X-RateLimit-Limit", limit.to_string()),
        ("X-RateLimit-Remaining", remaining.to_string()),
        ("X-RateLimit-Reset", reset.to_string()),
    ]
}

impl Limits {
    /// Counts a call at `now` (UTC ms) against fixed clock-minute and UTC-day windows.
    pub fn count(
        &mut self,
        client: &str,
        division: i32,
        now: i64,
        per_minute: u32,
        per_day: u32,
    ) -> RateOutcome {
        let r = self.rate.entry((client.to_string(), division)).or_default();
        let minute = now - now.rem_euclid(MINUTE_MS);
        let day = now - now.rem_euclid(DAY_MS);
        if r.minute != minute {
            r.minute = minute;
            r.minute_count = 0;
        }
        if r.day != day {
            r.day = day;
            r.day_count = 0;
        }
        let m_reset = minute + MINUTE_MS;
        let d_reset = day + DAY_MS;
        if r.day_count >= per_day {
            let again = r.limited_in.replace(day) == Some(day);
            return RateOutcome::Daily(daily(per_day, 0, d_reset), again);
        }
        if r.minute_count >= per_minute {
            let again = r.limited_in.replace(minute) == Some(minute);
            return RateOutcome::Minutely(minutely(per_minute, 0, m_reset), again);
        }
        r.minute_count += 1;
        r.day_count += 1;
        let mut h = daily(per_day, per_day - r.day_count, d_reset);
        h.extend(minutely(per_minute, per_minute - r.minute_count, m_reset));
        RateOutcome::Ok(h)
    }

    /// Until when (UTC ms) the endpoint is blocked for this client and division, if it is.
    pub fn blocked_until(
        &self,
        client: &str,
        division: i32,
        endpoint: &str,
        now: i64,
    ) -> Option<i64> {
        self.errors
            .get(&(client.to_string(), division, endpoint.to_string()))
            .map(|e| e.blocked_until)
            .filter(|&t| t > now)
    }

    /// Records an error response (400/401/403/404); returns `Some(until)` when this error
    /// started a block. The block lasts `block_ms`, doubling with each repeated block.
    pub fn record_error(
        &mut self,
        client: &str,
        division: i32,
        endpoint: &str,
        now: i64,
        limit: u32,
        block_ms: i64,
    ) -> Option<i64> {
        let e = self
            .errors
            .entry((client.to_string(), division, endpoint.to_string()))
            .or_default();
        if now - e.window_start >= HOUR_MS || e.count == 0 {
            e.window_start = now;
            e.count = 0;
        }
        e.count += 1;
        if e.count > limit {
            e.blocked_until = now + block_ms.saturating_mul(1 << e.level.min(16));
            e.level += 1;
            e.count = 0;
            return Some(e.blocked_until);
        }
        None
    }
}
