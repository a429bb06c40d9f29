//! Retry timing shared by every worker that retries: a base delay doubling per attempt up
//! to a cap, optionally spread by jitter so many retriers do not move in step.

use rand::Rng;
use std::time::Duration;

/// Doubling delays from `base` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub base: Duration,
    /// No delay is longer than this.
    pub max: Duration,
}

impl Backoff {
    /// Doubling from `base` to `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max }
    }

    /// The delay after failure number `attempt` (1 = the first failure; 0 counts as 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// [`Backoff::delay`] spread uniformly over ±25%.
    pub fn jittered(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        self.delay(attempt).mul_f64(rng.random_range(0.75..1.25))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn doubles_from_the_base_up_to_the_cap() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff.delay(0), Duration::from_secs(1));
        assert_eq!(backoff.delay(1), Duration::from_secs(1));
        assert_eq!(backoff.delay(2), Duration::from_secs(2));
        assert_eq!(backoff.delay(5), Duration::from_secs(16));
        assert_eq!(backoff.delay(7), Duration::from_secs(60));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_a_quarter_of_the_delay() {
        let backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 1..12 {
            let exact = backoff.delay(attempt);
            let spread = backoff.jittered(attempt, &mut rng);
            assert!(spread >= exact.mul_f64(0.75) && spread <= exact.mul_f64(1.25));
        }
    }
}
