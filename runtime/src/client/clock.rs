//! Time for the client: token lifetimes (exact-online.md §3), rate-limit resets (§4.2, epoch
//! milliseconds) and back-off sleeps all go through a [`Clock`], so tests can run against a
//! server whose clock is accelerated without sleeping for real minutes.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A boxed, `Send` future (what the object-safe async traits of this module return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Wall-clock time in UTC epoch milliseconds and a way to wait.
///
/// Implementations must agree with the server's notion of time: rate-limit resets arrive as
/// absolute epoch milliseconds (§4.2) and access tokens expire 600 s after they are granted (§3).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, UTC epoch milliseconds.
    fn now_ms(&self) -> i64;
    /// Waits for `d` of this clock's time.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
}

/// The real clock (`SystemTime` and `tokio::time::sleep`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Waits until `clock.now_ms() >= at_ms`.
pub(crate) async fn sleep_until(clock: &dyn Clock, at_ms: i64) {
    loop {
        let now = clock.now_ms();
        if now >= at_ms {
            return;
        }
        clock
            .sleep(Duration::from_millis((at_ms - now) as u64))
            .await;
    }
}
