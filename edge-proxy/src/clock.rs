//! The edge's one source of time, for rate limits, the micro-cache, token expiry and
//! `Cache-Control` arithmetic. Tests drive a manual clock through the running edge, so
//! time-dependent behaviour is tested without sleeping.

use governor::nanos::Nanos;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Unix time in nanoseconds when manual; `None` follows the system clock.
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    pub fn system() -> Self {
        Clock { manual: None }
    }

    /// A clock that stands still at `unix_ms` until [`Clock::advance`] moves it.
    pub fn manual(unix_ms: i64) -> Self {
        Clock {
            manual: Some(Arc::new(AtomicU64::new(unix_ms as u64 * 1_000_000))),
        }
    }

    /// Moves a manual clock forward; a system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Some(now) = &self.manual {
            now.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
        }
    }

    pub fn unix_nanos(&self) -> u64 {
        match &self.manual {
            Some(now) => now.load(Ordering::SeqCst),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        }
    }

    pub fn now_ms(&self) -> i64 {
        (self.unix_nanos() / 1_000_000) as i64
    }

    pub fn now_s(&self) -> i64 {
        (self.unix_nanos() / 1_000_000_000) as i64
    }
}

impl governor::clock::Clock for Clock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.unix_nanos())
    }
}
