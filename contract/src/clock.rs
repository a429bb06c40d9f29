//! One source of wall-clock time for every binary. Production runs on the system clock;
//! tests hand a manual clock to a running server and move it, so rate limits, expiries,
//! leases and build intervals are tested by advancing time, never by sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The system clock, or a manual one shared by clones.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

#[derive(Debug)]
struct Manual {
    /// Unix time in nanoseconds: read on hot paths without a lock.
    nanos: AtomicU64,
    /// Bumped on every move, so sleepers on the manual clock wake and look again.
    moved: watch::Sender<u64>,
}

impl Clock {
    /// Follows the operating system's wall clock.
    pub fn system() -> Self {
        Clock { manual: None }
    }

    /// A clock that stands still at `unix_ms` until [`Clock::advance`] moves it.
    pub fn manual(unix_ms: i64) -> Self {
        let nanos = unix_ms.max(0) as u64 * 1_000_000;
        Clock {
            manual: Some(Arc::new(Manual {
                nanos: AtomicU64::new(nanos),
                moved: watch::Sender::new(nanos),
            })),
        }
    }

    /// Whether this clock only moves when told to.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Moves a manual clock forward and wakes its sleepers; a system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Some(manual) = &self.manual {
            let now = manual
                .nanos
                .fetch_add(by.as_nanos() as u64, Ordering::SeqCst)
                + by.as_nanos() as u64;
            manual.moved.send_replace(now);
        }
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self) -> u64 {
        match &self.manual {
            Some(manual) => manual.nanos.load(Ordering::SeqCst),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        (self.unix_nanos() / 1_000_000) as i64
    }

    /// Seconds since the Unix epoch.
    pub fn now_s(&self) -> i64 {
        (self.unix_nanos() / 1_000_000_000) as i64
    }

    /// Waits until this clock reads `deadline_ms` or later: a timer on the system clock,
    /// the next sufficient [`Clock::advance`] on a manual one.
    pub async fn sleep_until_ms(&self, deadline_ms: i64) {
        match &self.manual {
            None => {
                let wait = deadline_ms.saturating_sub(self.now_ms()).max(0) as u64;
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            Some(manual) => {
                let deadline = deadline_ms.max(0) as u64 * 1_000_000;
                let mut moved = manual.moved.subscribe();
                // The sender lives in `manual`, which this clock keeps alive: never closed.
                let _ = moved.wait_for(|now| *now >= deadline).await;
            }
        }
    }

    /// Waits for `duration` of this clock's time.
    pub async fn sleep(&self, duration: Duration) {
        self.sleep_until_ms(self.now_ms().saturating_add(duration.as_millis() as i64))
            .await;
    }
}

/// Wall-clock milliseconds since the Unix epoch, for code that has no injected clock
/// (`server_time_ms` in responses).
pub fn now_ms() -> i64 {
    Clock::system().now_ms()
}

#[cfg(feature = "governor")]
impl governor::clock::Clock for Clock {
    type Instant = governor::nanos::Nanos;

    fn now(&self) -> governor::nanos::Nanos {
        governor::nanos::Nanos::from(self.unix_nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleeper_wakes_only_when_the_clock_passes_its_deadline() {
        let clock = Clock::manual(1_000);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until_ms(1_500).await }
        });
        clock.advance(Duration::from_millis(499));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before its deadline");
        clock.advance(Duration::from_millis(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woke at its deadline")
            .expect("the sleeper ran");
        assert_eq!(clock.now_ms(), 1_500);
    }
}
