//! `onsale-sim model`: the on-sale a scenario describes, predicted without a stack.
//!
//! A discrete-time model of the waiting room as the edge runs it and of the fans the
//! scenario draws. Every `STEP_MS` (the shipped edge's `refresh_ms`) the serving counter
//! calls the next places at `admit_per_minute` (the rate accrues with time, at most one
//! second's worth banked), never past `max_active` open admissions and calls, and not while
//! no seat is free; it steps over fans who stopped polling once they have been silent for
//! `no_show_grace_s` to twice that, as the edge does, without spending the rate on them. A
//! call a fan never claims holds its capacity for the grace. A called fan learns of its
//! turn at its next poll, and polls as the edge asks: its join's answer and each poll's say
//! when to come back by where the fan then stood (2 s within 100 places of the front, 5 s
//! within 1,000, 15 s further back or while no seat is left, at most a quarter of
//! `no_show_grace_s`, each spread by ±20%). It thinks, holds the seats it wants
//! (or what is left), and pays, abandons its hold (the seats come back when the hold
//! expires) or is declined (they come back at once). An admission ends when its order is
//! paid or after `session_ttl_s`. Fans and the serving counter see seats as the last
//! availability snapshot had them (`snapshot_interval_s`): a fan who finds none free there
//! leaves, its admission running its course, and the counter calls fans while it shows any
//! seat not sold, held ones included (they may come back); the hold itself takes what is
//! really left.
//!
//! Simplifications, each small against a queue's wait: a fan who stops polling does so as
//! soon as it joins; every fan joins after the opening, in arrival order (no pre-queue
//! draw).

use crate::plan::{self, FanPlan};
use crate::scenario::{Card, Scenario};
use onsale_contract::polling::poll_after_ms;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The model's time step: the edge's admission step as shipped (`refresh_ms`).
pub const STEP_MS: i64 = 200;

/// When a fan last seen at `seen_ms` counts as absent: the edge records presence in
/// buckets `grace_ms` wide and looks at the current and the previous one, so between one
/// and two graces later (buckets counted from the opening here; a real edge's from 1970).
fn absent_from(seen_ms: i64, grace_ms: i64) -> i64 {
    (seen_ms.div_euclid(grace_ms) + 2) * grace_ms
}

/// What a poll between two admission steps is told: how many places have been called or
/// stepped over, and whether the last snapshot showed no seat left to sell.
#[derive(Clone, Copy)]
struct Counter {
    next: usize,
    sold_out: bool,
}

impl Counter {
    /// Fan `place`'s position as the edge counts it for `poll_after_ms` (`u64::MAX`: none,
    /// sold out).
    fn position(self, place: usize) -> u64 {
        match self.sold_out {
            true => u64::MAX,
            false => place.saturating_sub(self.next) as u64,
        }
    }
}

/// When fan `place`, called at `called_ms`, learns of it: at its first poll since, its
/// polls paced from its join by what the counter (`history`, one entry per step; `now`
/// for the step under way) told each of them.
fn learns_at(
    place: usize,
    fan: &FanPlan,
    called_ms: i64,
    history: &[Counter],
    now: Counter,
    grace_ms: i64,
) -> i64 {
    let mut jitter = StdRng::seed_from_u64(fan.poll_seed);
    let mut at = fan.arrives_ms;
    loop {
        let told = history.get((at / STEP_MS) as usize).copied().unwrap_or(now);
        at += poll_after_ms(told.position(place), grace_ms, jitter.random());
        if at >= called_ms {
            return at;
        }
    }
}

/// What the model predicts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// When the last seat was sold, in seconds from the opening; `None` if seats were left.
    pub sellout_s: Option<f64>,
    /// When 95% of the seats had sold: the last few seats of a small show sell as
    /// abandoned holds run out, a hold's length apart, so this moves less from night to
    /// night than the sell-out itself.
    pub sold_95_s: Option<f64>,
    /// Seats sold.
    pub seats_sold: u64,
    /// Fans admitted to the purchase path.
    pub fans_admitted: u64,
    /// Fans who bought.
    pub fans_bought: u64,
    /// Places stepped over because their fan had stopped polling.
    pub no_shows_skipped: u64,
    /// How long admitted fans waited, from joining to admission.
    pub wait_s: Percentiles,
    /// Most admissions open at once.
    pub peak_active: u64,
    /// Requests to the origin in the busiest second (holds, orders, payments).
    pub peak_origin_per_s: u64,
    /// Every minute from the opening.
    pub minutes: Vec<Minute>,
}

/// Percentiles of a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// The median.
    pub p50: f64,
    /// 90% are at most this.
    pub p90: f64,
    /// 99% are at most this.
    pub p99: f64,
}

impl Percentiles {
    /// Of `values` (reordered); zeros when there are none.
    pub fn of(values: &mut [f64]) -> Percentiles {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| match values.len() {
            0 => 0.0,
            n => values[((n as f64 * q).ceil() as usize).clamp(1, n) - 1],
        };
        Percentiles {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
        }
    }
}

/// The state at the end of one minute.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Minute {
    /// Minutes from the opening at this minute's end.
    pub minute: u32,
    /// Fans who joined, still poll, and have not been called.
    pub queued: u64,
    /// Fans admitted during the minute.
    pub admitted: u64,
    /// Admissions open.
    pub active: u64,
    /// Seats neither held nor sold.
    pub seats_left: u64,
    /// Seats sold so far.
    pub sold: u64,
    /// Requests to the origin during the minute.
    pub origin_requests: u64,
}

/// Something that happens to the seats or an admission at a set time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Fan `fan`, admitted at `admitted_ms`, holds its seats.
    Hold { fan: usize, admitted_ms: i64 },
    /// Fan `fan`, admitted at `admitted_ms`, pays for the `seats` it holds.
    Pay {
        fan: usize,
        seats: u64,
        admitted_ms: i64,
    },
    /// An abandoned or unpaid hold of `seats` ends.
    HoldExpires { seats: u64 },
    /// An admission ends unused.
    SessionEnds,
}

/// The seats and admissions as the night goes.
#[derive(Default)]
struct Night {
    available: u64,
    /// Seats free at the last snapshot, as fans see them.
    visible: u64,
    /// Seats not sold (free or held) at the last snapshot: the edge calls fans while any
    /// are, since held seats may come back.
    visible_unsold: u64,
    seats: u64,
    /// When the next snapshot is taken.
    next_snapshot_ms: i64,
    snapshot_interval_ms: i64,
    sold: u64,
    active: u64,
    peak_active: u64,
    bought: u64,
    /// Each sale: when, and how many seats.
    sales: Vec<(i64, u64)>,
    origin_requests: Vec<u64>,
    events: BinaryHeap<Reverse<(i64, u64, Event)>>,
    scheduled: u64,
}

impl Night {
    /// Takes the snapshots due by `ms`: the seats then were as they are now, no event having
    /// come between.
    fn look(&mut self, ms: i64) {
        if ms >= self.next_snapshot_ms {
            self.visible = self.available;
            self.visible_unsold = self.seats - self.sold;
            self.next_snapshot_ms =
                (ms / self.snapshot_interval_ms + 1) * self.snapshot_interval_ms;
        }
    }

    /// What polls are told once `next` places have been called or stepped over.
    fn counter(&self, next: usize) -> Counter {
        Counter {
            next,
            sold_out: self.visible_unsold == 0,
        }
    }

    fn at(&mut self, ms: i64, event: Event) {
        self.scheduled += 1;
        self.events.push(Reverse((ms, self.scheduled, event)));
    }

    fn request(&mut self, ms: i64, count: u64) {
        let second = (ms / 1000) as usize;
        if self.origin_requests.len() <= second {
            self.origin_requests.resize(second + 1, 0);
        }
        self.origin_requests[second] += count;
    }
}

/// When `share` of `seats` had sold, in seconds from the opening, given each sale's time (ms,
/// in order) and seats.
pub fn when_sold(sales: &[(i64, u64)], seats: u64, share: f64) -> Option<f64> {
    let goal = (seats as f64 * share).ceil() as u64;
    let mut sold = 0;
    sales.iter().find_map(|&(at, count)| {
        sold += count;
        (sold >= goal).then_some(at as f64 / 1000.0)
    })
}

/// Predicts the night `scenario` describes.
pub fn predict(scenario: &Scenario) -> Prediction {
    let fans = plan::draw(scenario);
    // Fans before each index who stop polling: the queue's length counts fans still there.
    let stopping_before: Vec<usize> = std::iter::once(0)
        .chain(fans.iter().scan(0, |n, f| {
            *n += usize::from(f.stops_polling);
            Some(*n)
        }))
        .collect();
    let room = &scenario.room;
    let ttl_ms = (room.session_ttl_s.get() * 1000.0) as i64;
    let hold_ttl_ms = (room.hold_ttl_s.get() * 1000.0) as i64;
    let grace_ms = (room.no_show_grace_s.get() * 1000.0) as i64;
    let per_second = f64::from(room.admit_per_minute.get()) / 60.0;
    let per_step = per_second * STEP_MS as f64 / 1000.0;
    let max_active = u64::from(room.max_active.get());
    let seats = u64::from(room.seats.get());

    let mut night = Night {
        available: seats,
        visible: seats,
        visible_unsold: seats,
        seats,
        snapshot_interval_ms: ((room.snapshot_interval_s.get() * 1000.0) as i64).max(1),
        ..Night::default()
    };
    let (mut next, mut allowance, mut skipped) = (0usize, 0.0f64, 0u64);
    let mut waits = Vec::new();
    let mut minutes = Vec::new();
    let mut minute = Minute {
        minute: 1,
        queued: 0,
        admitted: 0,
        active: 0,
        seats_left: seats,
        sold: 0,
        origin_requests: 0,
    };
    let mut history: Vec<Counter> = Vec::new();
    let mut now = 0i64;
    loop {
        while let Some(&Reverse((at, _, event))) = night.events.peek() {
            if at > now {
                break;
            }
            night.events.pop();
            night.look(at);
            apply(&mut night, &fans, event, at, ttl_ms, hold_ttl_ms);
        }

        // The admission step: the rate accrues with time, at most one second's worth banked.
        night.look(now);
        allowance = (allowance + per_step).min(per_second.max(1.0));
        while next < fans.len() && fans[next].arrives_ms <= now && night.visible_unsold > 0 {
            let fan = &fans[next];
            if fan.stops_polling && now >= absent_from(fan.arrives_ms, grace_ms) {
                skipped += 1;
                next += 1;
                continue;
            }
            if allowance < 1.0 || night.active >= max_active {
                break;
            }
            allowance -= 1.0;
            night.active += 1;
            night.peak_active = night.peak_active.max(night.active);
            if fan.stops_polling {
                // Gone, but not yet silent for long enough to be stepped over: called, and
                // the call lapses unclaimed after the grace.
                night.at(now + grace_ms, Event::SessionEnds);
                next += 1;
                continue;
            }
            let learns = learns_at(next, fan, now, &history, night.counter(next), grace_ms);
            waits.push((learns - fan.arrives_ms) as f64 / 1000.0);
            minute.admitted += 1;
            night.at(
                learns + fan.think_ms,
                Event::Hold {
                    fan: next,
                    admitted_ms: learns,
                },
            );
            next += 1;
        }

        history.push(night.counter(next));
        now += STEP_MS;
        if now % 60_000 == 0 {
            let arrived = fans.partition_point(|f| f.arrives_ms <= now);
            let requests: u64 = night
                .origin_requests
                .iter()
                .skip(((now - 60_000) / 1000) as usize)
                .take(60)
                .sum();
            minutes.push(Minute {
                queued: (arrived - next - (stopping_before[arrived] - stopping_before[next]))
                    as u64,
                active: night.active,
                seats_left: night.available,
                sold: night.sold,
                origin_requests: requests,
                ..minute
            });
            minute = Minute {
                minute: minute.minute + 1,
                admitted: 0,
                ..minute
            };
        }
        let queue_done = next == fans.len() || night.available == 0;
        if queue_done && night.events.is_empty() {
            break;
        }
    }

    Prediction {
        sellout_s: when_sold(&night.sales, seats, 1.0),
        sold_95_s: when_sold(&night.sales, seats, 0.95),
        seats_sold: night.sold,
        fans_admitted: waits.len() as u64,
        fans_bought: night.bought,
        no_shows_skipped: skipped,
        wait_s: Percentiles::of(&mut waits),
        peak_active: night.peak_active,
        peak_origin_per_s: night.origin_requests.iter().copied().max().unwrap_or(0),
        minutes,
    }
}

/// What `event` at `at` does to the night.
fn apply(
    night: &mut Night,
    fans: &[FanPlan],
    event: Event,
    at: i64,
    ttl_ms: i64,
    hold_ttl_ms: i64,
) {
    match event {
        Event::Hold { fan, admitted_ms } => {
            let plan = &fans[fan];
            let session_ends = admitted_ms + ttl_ms;
            // None on the map, none left to hold, or the admission ran out while the fan
            // thought: it leaves.
            if night.visible == 0 || night.available == 0 || at >= session_ends {
                night.at(session_ends.max(at), Event::SessionEnds);
                return;
            }
            let held = u64::from(plan.seats).min(night.available);
            night.available -= held;
            // The hold, and the order checkout makes at once unless the fan walks away.
            night.request(at, if plan.abandons { 1 } else { 2 });
            let pays_at = at + plan.pay_ms;
            if plan.abandons || pays_at >= at + hold_ttl_ms || pays_at >= session_ends {
                night.at(at + hold_ttl_ms, Event::HoldExpires { seats: held });
                night.at(session_ends, Event::SessionEnds);
            } else {
                night.at(
                    pays_at,
                    Event::Pay {
                        fan,
                        seats: held,
                        admitted_ms,
                    },
                );
            }
        }
        Event::Pay {
            fan,
            seats: held,
            admitted_ms,
        } => {
            let card = fans[fan].card;
            // A confirmation; 3-D Secure confirms a second time.
            night.request(at, if card == Card::ThreeDSecure { 2 } else { 1 });
            if card.pays() {
                night.sold += held;
                night.bought += 1;
                night.active -= 1;
                night.sales.push((at, held));
            } else {
                // Declined: the seats go back at once, the unused admission runs its course.
                night.available += held;
                night.at(admitted_ms + ttl_ms, Event::SessionEnds);
            }
        }
        Event::HoldExpires { seats: held } => night.available += held,
        Event::SessionEnds => night.active -= 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scenario of `fans` fans all there at the opening, each buying one seat with a
    /// card that pays, holding 0.5 s after admission and paying 0.5 s later; `behaviour`
    /// and `room` (TOML) replace or add values of those tables.
    fn scenario(fans: u32, behaviour: &str, room: &str) -> Scenario {
        let base = format!(
            r#"
            name = "test"
            show_id = "s"
            fans = {fans}
            seed = 1
            [arrivals]
            curve = "burst"
            burst_s = 0.001
            share = 1.0
            over_s = 1
            [behaviour]
            sign_in_on_arrival = 0.0
            stop_polling = 0.0
            seats = [[1, 1.0]]
            best_available = 1.0
            think_s = [0.5, 0.5]
            abandon_hold = 0.0
            pay_s = [0.5, 0.5]
            cards = [["pm_card_ok", 1.0]]
            [room]
            session_ttl_s = 900
            no_show_grace_s = 60
            hold_ttl_s = 480
            snapshot_interval_s = 0.2
            "#
        );
        let mut table: toml::Table = toml::from_str(&base).expect("the base scenario");
        for (name, changes) in [("behaviour", behaviour), ("room", room)] {
            let changes: toml::Table = toml::from_str(changes).expect("changes");
            let section = table[name].as_table_mut().expect("a table");
            section.extend(changes);
        }
        table.try_into().expect("a scenario")
    }

    #[test]
    fn fans_are_admitted_at_the_rate_and_the_seats_sell_out_on_time() {
        let s = scenario(
            10_000,
            "",
            "admit_per_minute = 600\nmax_active = 100000\nseats = 3000",
        );
        let p = predict(&s);
        assert_eq!(p.seats_sold, 3000);
        assert_eq!(p.fans_bought, 3000);
        // 3,000 buyers at 10 a second, each paying a second after its call.
        let sellout = p.sellout_s.expect("sold out");
        assert!((sellout - 300.0).abs() < 2.0, "sold out at {sellout} s");
        assert!(p.minutes[..4].iter().all(|m| m.admitted == 600));
        // The last buyer waited five minutes, the median two and a half, each fan learning
        // of its turn at its next poll (2 s apart near the front, give or take 20%).
        assert!((p.wait_s.p50 - 151.0).abs() < 1.0, "{:?}", p.wait_s);
    }

    #[test]
    fn a_called_fan_learns_at_the_poll_its_place_asked_for() {
        let room = "admit_per_minute = 60\nmax_active = 10\nseats = 10";
        let fan = FanPlan {
            arrives_ms: 0,
            ..plan::draw(&scenario(1, "", room))[0].clone()
        };
        let queued = Counter {
            next: 0,
            sold_out: false,
        };
        let sold_out = Counter {
            next: 0,
            sold_out: true,
        };
        let until = |counter, ms: i64| vec![counter; (ms / STEP_MS) as usize];
        let learns = |place, called_ms, counter, grace_ms| {
            learns_at(
                place,
                &fan,
                called_ms,
                &until(counter, called_ms),
                counter,
                grace_ms,
            ) - called_ms
        };
        // At the front the join's answer says 2 s; with no seat left, 15 s whatever the
        // place.
        assert!((1_400..2_400).contains(&learns(0, 200, queued, 60_000)));
        assert!((11_800..18_000).contains(&learns(0, 200, sold_out, 60_000)));
        // Called at any second of a minute, a fan at the front learns of it a second later on
        // average, one 5,000 places back (polling every 15 s) seven and a half; never more
        // than a quarter of the grace later.
        let mean = |place, grace_ms| {
            (30..90)
                .map(|s| learns(place, s * 1000, queued, grace_ms))
                .sum::<i64>()
                / 60
        };
        assert!(
            (700..1_300).contains(&mean(0, 60_000)),
            "{}",
            mean(0, 60_000)
        );
        assert!(
            (6_000..9_000).contains(&mean(5_000, 60_000)),
            "{}",
            mean(5_000, 60_000)
        );
        assert!(mean(5_000, 8_000) < 1_300);
    }

    #[test]
    fn max_active_holds_admission_back() {
        // Each admission lasts 30 s (think and pay), so 100 at once admit 200 a minute.
        let b = "think_s = [15, 15]\npay_s = [15, 15]";
        let s = scenario(
            5_000,
            b,
            "admit_per_minute = 6000\nmax_active = 100\nseats = 1000",
        );
        let p = predict(&s);
        assert_eq!(p.peak_active, 100);
        let admitted: Vec<u64> = p.minutes[1..4].iter().map(|m| m.admitted).collect();
        assert!(
            admitted.iter().all(|&a| (195..=205).contains(&a)),
            "{admitted:?}"
        );
    }

    #[test]
    fn fans_who_stopped_polling_do_not_eat_the_rate() {
        let b = "stop_polling = 0.5";
        let s = scenario(
            20_000,
            b,
            "admit_per_minute = 600\nmax_active = 100000\nseats = 100000",
        );
        let p = predict(&s);
        // Within the grace every place is called; after it, absent fans are stepped over
        // and the present ones come at the full rate.
        assert!(p.minutes[3..8].iter().all(|m| m.admitted == 600));
        assert!(p.no_shows_skipped > 0);
    }

    #[test]
    fn seats_of_declined_and_abandoned_holds_are_sold_again() {
        let b = "abandon_hold = 0.2\ncards = [[\"pm_card_ok\", 0.8], [\"pm_card_declined\", 0.2]]";
        // The edge calls fans while seats are held, and those called before the holds run
        // out find none: enough fans must still be queued when the seats come back.
        let s = scenario(
            30_000,
            b,
            "admit_per_minute = 600\nmax_active = 100000\nseats = 2000",
        );
        let p = predict(&s);
        assert_eq!(p.seats_sold, 2000);
        // About 0.8 x 0.8 of the admitted fans buy; the rest give their seats back.
        assert!(p.fans_admitted > 3000, "{}", p.fans_admitted);
        let sellout = p.sellout_s.expect("sold out");
        // The abandoned holds' seats return after the hold's 480 s.
        assert!(sellout > 480.0, "{sellout}");
    }

    #[test]
    fn seats_left_over_mean_no_sell_out() {
        let s = scenario(
            100,
            "",
            "admit_per_minute = 600\nmax_active = 100000\nseats = 1000",
        );
        let p = predict(&s);
        assert_eq!((p.seats_sold, p.sellout_s), (100, None));
    }

    #[test]
    fn the_same_scenario_gives_the_same_prediction() {
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/scenarios/stadium.toml"
        );
        let s = Scenario::load(std::path::Path::new(file)).expect("the stadium scenario");
        assert_eq!(predict(&s), predict(&s));
    }

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&mut values);
        assert_eq!((p.p50, p.p90, p.p99), (50.0, 90.0, 99.0));
        assert_eq!(Percentiles::of(&mut []).p50, 0.0);
    }
}
