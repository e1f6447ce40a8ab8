//! The server's notion of time. Every token lifetime, rate-limit window and error-budget hour
//! reads this clock, so tests can run it faster than real time ([`Clock::accelerated`]) or jump
//! it forward ([`Clock::advance`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug)]
struct Inner {
    /// Virtual UTC epoch milliseconds at `real_start`.
    virtual_start_ms: i64,
    real_start: Instant,
    factor: f64,
    offset_ms: i64,
}

/// A shareable clock: `now = start + (real elapsed × factor) + advanced`.
#[derive(Debug, Clone)]
pub struct Clock(Arc<Mutex<Inner>>);

impl Default for Clock {
    fn default() -> Self {
        Clock::real()
    }
}

fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Clock {
    /// Real time.
    pub fn real() -> Clock {
        Clock::accelerated(1.0)
    }

    /// Starts at the real current time and runs `factor` times faster.
    pub fn accelerated(factor: f64) -> Clock {
        Clock::starting_at(system_now_ms(), factor)
    }

    /// Starts at `utc_ms` (UTC epoch milliseconds) and runs `factor` times faster than real time.
    pub fn starting_at(utc_ms: i64, factor: f64) -> Clock {
        Clock(Arc::new(Mutex::new(Inner {
            virtual_start_ms: utc_ms,
            real_start: Instant::now(),
            factor,
            offset_ms: 0,
        })))
    }

    /// Current virtual time, UTC epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        let g = self.0.lock().unwrap();
        let real = g.real_start.elapsed().as_secs_f64() * 1000.0;
        g.virtual_start_ms + (real * g.factor) as i64 + g.offset_ms
    }

    /// Jumps the clock forward.
    pub fn advance(&self, d: Duration) {
        self.0.lock().unwrap().offset_ms += d.as_millis() as i64;
    }

    /// How long `virtual_ms` of virtual time takes in real time.
    pub fn real_duration(&self, virtual_ms: i64) -> Duration {
        let f = self.0.lock().unwrap().factor;
        Duration::from_secs_f64((virtual_ms.max(0) as f64 / 1000.0) / f.max(1e-9))
    }
}

/// UTC epoch ms → Dutch local wall-clock time encoded as if it were UTC (how Exact writes
/// `/Date(ms)/`, §2.5): +1 h in winter (CET), +2 h in summer (CEST; last Sunday of March 01:00
/// UTC to last Sunday of October 01:00 UTC).
pub fn utc_to_dutch_local_ms(utc_ms: i64) -> i64 {
    use chrono::{DateTime, Datelike};
    let Some(dt) = DateTime::from_timestamp_millis(utc_ms) else {
        return utc_ms + 3_600_000;
    };
    let year = dt.year();
    let start = last_sunday_01utc(year, 3);
    let end = last_sunday_01utc(year, 10);
    if utc_ms >= start && utc_ms < end {
        utc_ms + 7_200_000
    } else {
        utc_ms + 3_600_000
    }
}

fn last_sunday_01utc(year: i32, month: u32) -> i64 {
    use chrono::{Datelike, NaiveDate, Weekday};
    let mut d = NaiveDate::from_ymd_opt(year, month, 31).expect("valid date");
    while d.weekday() != Weekday::Sun {
        d = d.pred_opt().expect("valid date");
    }
    d.and_hms_opt(1, 0, 0)
        .expect("valid time")
        .and_utc()
        .timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dutch_offsets() {
        // 2023-01-01T00:00Z → 01:00 local (CET)
        assert_eq!(utc_to_dutch_local_ms(1_672_531_200_000), 1_672_534_800_000);
        // 2023-07-01T00:00Z → 02:00 local (CEST)
        assert_eq!(utc_to_dutch_local_ms(1_688_169_600_000), 1_688_176_800_000);
    }

    #[test]
    fn advance_and_accelerate() {
        let c = Clock::starting_at(0, 1000.0);
        c.advance(Duration::from_secs(10));
        assert!(c.now_ms() >= 10_000);
    }
}
