//! Each fan's plan, drawn from a scenario with its seed: when it arrives and what it will
//! do. The model and a run draw the same plans, so a run's fans are the model's fans.

use crate::arrivals;
use crate::scenario::{Card, Scenario, Span};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What one fan will do.
#[derive(Debug, Clone, PartialEq)]
pub struct FanPlan {
    /// When it joins, in ms from the opening.
    pub arrives_ms: i64,
    /// It signs in when it arrives (the others come signed in).
    pub signs_in: bool,
    /// It stops polling right after joining.
    pub stops_polling: bool,
    /// Seats it wants.
    pub seats: u32,
    /// It takes the best available seats (else it picks them on the map).
    pub best_available: bool,
    /// From admission to holding, in ms.
    pub think_ms: i64,
    /// It holds and never orders.
    pub abandons: bool,
    /// From holding to paying, in ms.
    pub pay_ms: i64,
    /// The card it pays with.
    pub card: Card,
    /// Seeds the spread the edge gives each of the fan's polls (the model's; a run's edge
    /// draws its own).
    pub poll_seed: u64,
}

/// The plans of every fan in `scenario`, in arrival order.
pub fn draw(scenario: &Scenario) -> Vec<FanPlan> {
    let mut rng = StdRng::seed_from_u64(scenario.seed);
    let times = arrivals::times(&scenario.arrivals, scenario.fans.get(), &mut rng);
    let b = &scenario.behaviour;
    let span = |s: Span, rng: &mut StdRng| {
        ((s.min + rng.random::<f64>() * (s.max - s.min)) * 1000.0) as i64
    };
    times
        .into_iter()
        .map(|t| FanPlan {
            arrives_ms: (t * 1000.0) as i64,
            signs_in: rng.random::<f64>() < b.sign_in_on_arrival.get(),
            stops_polling: rng.random::<f64>() < b.stop_polling.get(),
            seats: *b.seats.pick(rng.random()),
            best_available: rng.random::<f64>() < b.best_available.get(),
            think_ms: span(b.think_s, &mut rng),
            abandons: rng.random::<f64>() < b.abandon_hold.get(),
            pay_ms: span(b.pay_s, &mut rng),
            card: *b.cards.pick(rng.random()),
            poll_seed: rng.random(),
        })
        .collect()
}
