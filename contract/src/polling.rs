//! When a waiting-room client polls next: the edge says so in every answer
//! (`poll_after_ms`), and the rehearsal's model paces its fans by the same rule.

/// How long a fan `position` places from the front (`u64::MAX` when there is no place to
/// count, as when the show is sold out) waits before polling again: sooner near the front,
/// later far back, at most about a quarter of the no-show grace (so a polling fan never
/// looks away), spread by ±20% with `jitter` (0 to 1) so that polls do not arrive in waves.
pub fn poll_after_ms(position: u64, grace_ms: i64, jitter: f64) -> i64 {
    let base: i64 = match position {
        0..100 => 2_000,
        100..1_000 => 5_000,
        _ => 15_000,
    };
    let base = base.min(grace_ms / 4).max(1_000);
    (base as f64 * (0.8 + 0.4 * jitter.clamp(0.0, 1.0))) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_spread_and_stay_inside_the_grace() {
        assert_eq!(poll_after_ms(5, 60_000, 0.5), 2_000);
        assert_eq!(poll_after_ms(500, 60_000, 0.0), 4_000);
        assert_eq!(poll_after_ms(50_000, 60_000, 1.0), 18_000);
        assert_eq!(poll_after_ms(u64::MAX, 60_000, 0.5), 15_000);
        assert_eq!(poll_after_ms(50_000, 8_000, 0.5), 2_000);
    }
}
