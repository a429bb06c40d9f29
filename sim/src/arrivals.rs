//! When each fan arrives, in seconds from the sale's opening, drawn from a scenario's curve.

use crate::scenario::Arrivals;
use rand::Rng;

/// The arrival times of `fans` fans, earliest first.
pub fn times(curve: &Arrivals, fans: u32, rng: &mut impl Rng) -> Vec<f64> {
    let mut times: Vec<f64> = match curve {
        Arrivals::Burst {
            burst_s,
            share,
            over_s,
        } => (0..fans)
            .map(|_| {
                let within = match rng.random::<f64>() < share.get() {
                    true => burst_s.get(),
                    false => over_s.get(),
                };
                rng.random::<f64>() * within
            })
            .collect(),
        // Density rising linearly to the end: the inverse of its distribution t²/T².
        Arrivals::Ramp { over_s } => (0..fans)
            .map(|_| over_s.get() * rng.random::<f64>().sqrt())
            .collect(),
        Arrivals::Poisson { per_s } => {
            let mut at = 0.0;
            (0..fans)
                .map(|_| {
                    at += -(1.0 - rng.random::<f64>()).ln() / per_s.get();
                    at
                })
                .collect()
        }
    };
    times.sort_by(f64::total_cmp);
    times
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn curve(toml: &str) -> Arrivals {
        toml::from_str(toml).expect("a curve")
    }

    fn share_before(times: &[f64], t: f64) -> f64 {
        times.iter().filter(|&&x| x < t).count() as f64 / times.len() as f64
    }

    #[test]
    fn a_burst_brings_its_share_within_its_length() {
        let burst = curve("curve = 'burst'\nburst_s = 60\nshare = 0.8\nover_s = 600");
        let times = times(&burst, 100_000, &mut StdRng::seed_from_u64(1));
        // 80% in the rush plus a tenth of the other 20% arriving in the same minute.
        assert!((share_before(&times, 60.0) - 0.82).abs() < 0.01);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(*times.last().unwrap() <= 600.0);
    }

    #[test]
    fn a_ramp_brings_a_quarter_in_its_first_half() {
        let ramp = curve("curve = 'ramp'\nover_s = 1000");
        let times = times(&ramp, 100_000, &mut StdRng::seed_from_u64(2));
        assert!((share_before(&times, 500.0) - 0.25).abs() < 0.01);
    }

    #[test]
    fn poisson_arrivals_come_at_their_rate() {
        let poisson = curve("curve = 'poisson'\nper_s = 50");
        let times = times(&poisson, 100_000, &mut StdRng::seed_from_u64(3));
        let rate = times.len() as f64 / times.last().unwrap();
        assert!((rate - 50.0).abs() < 1.0, "{rate} a second");
    }

    #[test]
    fn the_same_seed_brings_the_same_fans() {
        let ramp = curve("curve = 'ramp'\nover_s = 100");
        let draw = |seed| times(&ramp, 1000, &mut StdRng::seed_from_u64(seed));
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
