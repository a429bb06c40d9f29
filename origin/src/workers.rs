//! What the origin's background workers share: wake-ups and retry timing.

use std::time::Duration;
use tokio::sync::Notify;

/// Wakes a worker as soon as there is work for it, rather than at its next poll.
#[derive(Default)]
pub struct Workers {
    pub refunds: Notify,
}

/// How long after attempt number `attempts` (1 = the first) the next one is due: `base_ms`
/// doubling per attempt, capped at `max_ms`.
pub fn backoff(attempts: i32, base_ms: u64, max_ms: u64) -> Duration {
    let factor = 1u64 << (attempts - 1).clamp(0, 20);
    Duration::from_millis(base_ms.saturating_mul(factor).min(max_ms))
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let ms = |attempts| backoff(attempts, 1_000, 60_000);
        assert_eq!(ms(1), Duration::from_secs(1));
        assert_eq!(ms(2), Duration::from_secs(2));
        assert_eq!(ms(5), Duration::from_secs(16));
        assert_eq!(ms(7), Duration::from_secs(60));
        assert_eq!(ms(1_000), Duration::from_secs(60));
    }
}
