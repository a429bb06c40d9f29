//! A scenario: how many fans come, when, and what they do, with the show's admission
//! settings and seats; read from a TOML file (`config/scenarios/*.toml`). Every value is
//! parsed into a type that can only hold what makes sense, so the model never checks.

use serde::Deserialize;
use std::path::Path;

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not a scenario: the error names the line and the value.
    #[error("{path}: {error}")]
    Parse {
        /// The file.
        path: String,
        /// Why, and where.
        error: Box<toml::de::Error>,
    },
}

/// One rehearsal of an on-sale.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A short name for reports.
    pub name: String,
    /// The show the fans want.
    pub show_id: String,
    /// How many fans come.
    pub fans: Count,
    /// Seeds every random choice: the same seed, the same fans.
    pub seed: u64,
    /// When they come.
    pub arrivals: Arrivals,
    /// What they do.
    pub behaviour: Behaviour,
    /// The show's admission settings and seats, as the edge and the origin hold them.
    pub room: Room,
}

impl Scenario {
    /// Reads and parses the scenario at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|error| ScenarioError::Read {
            path: path.display().to_string(),
            error,
        })?;
        toml::from_str(&text).map_err(|error| ScenarioError::Parse {
            path: path.display().to_string(),
            error: Box::new(error),
        })
    }
}

impl Scenario {
    /// The same night with `1 / divisor` of the fans, seats and open admissions, played
    /// `speed` times as fast: arrivals, thinking, paying and every time limit shortened,
    /// admission and Poisson rates changed to match, so the queue's shape is kept at a
    /// size and length that fit a test. The admission time stays at least what an edge
    /// accepts (10 s), and the no-show grace at least 20 s: the edge asks queued fans to
    /// poll every quarter of it, and a shorter grace would have every fan polling every
    /// second. Both in whole seconds, as the edge's settings take them.
    pub fn scaled(&self, divisor: u32, speed: f64) -> Scenario {
        let fewer = |n: Count| Count((n.0 / divisor).max(1));
        let faster = |x: Positive| Positive(x.0 / speed);
        let whole_s = |x: Positive, least: f64| Positive((x.0 / speed).ceil().max(least));
        let span = |s: Span| Span {
            min: s.min / speed,
            max: s.max / speed,
        };
        let mut scaled = self.clone();
        scaled.fans = fewer(self.fans);
        scaled.arrivals = match self.arrivals.clone() {
            Arrivals::Burst {
                burst_s,
                share,
                over_s,
            } => Arrivals::Burst {
                burst_s: faster(burst_s),
                share,
                over_s: faster(over_s),
            },
            Arrivals::Ramp { over_s } => Arrivals::Ramp {
                over_s: faster(over_s),
            },
            Arrivals::Poisson { per_s } => Arrivals::Poisson {
                per_s: Positive(per_s.0 * speed / f64::from(divisor)),
            },
        };
        let b = &mut scaled.behaviour;
        b.think_s = span(b.think_s);
        b.pay_s = span(b.pay_s);
        let room = &mut scaled.room;
        room.admit_per_minute = Count(
            ((f64::from(room.admit_per_minute.0) * speed / f64::from(divisor)).round() as u32)
                .max(1),
        );
        room.max_active = fewer(room.max_active);
        room.seats = fewer(room.seats);
        room.session_ttl_s = whole_s(room.session_ttl_s, 10.0);
        room.no_show_grace_s = whole_s(room.no_show_grace_s, 20.0);
        room.hold_ttl_s = faster(room.hold_ttl_s);
        room.snapshot_interval_s = faster(room.snapshot_interval_s);
        scaled
    }
}

/// A positive count (of fans, a minute's admissions, seats), at most ten million.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct Count(u32);

impl Count {
    /// How many.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl std::str::FromStr for Count {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let n: u32 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a whole number"))?;
        Count::try_from(n)
    }
}

impl TryFrom<u32> for Count {
    type Error = String;
    fn try_from(n: u32) -> Result<Self, String> {
        match n {
            1..=10_000_000 => Ok(Count(n)),
            _ => Err(format!("{n}: must be 1 to 10,000,000")),
        }
    }
}

/// A probability, 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Deserialize)]
#[serde(try_from = "f64")]
pub struct Probability(f64);

impl Probability {
    /// The probability as a number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Probability {
    type Error = String;
    fn try_from(p: f64) -> Result<Self, String> {
        match (0.0..=1.0).contains(&p) {
            true => Ok(Probability(p)),
            false => Err(format!("{p} is not a probability (0 to 1)")),
        }
    }
}

/// A positive, finite number: seconds, or a rate a second, as its field's name says.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Deserialize)]
#[serde(try_from = "f64")]
pub struct Positive(f64);

impl Positive {
    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Positive {
    type Error = String;
    fn try_from(x: f64) -> Result<Self, String> {
        match x.is_finite() && x > 0.0 {
            true => Ok(Positive(x)),
            false => Err(format!("{x}: must be a positive number")),
        }
    }
}

/// A time drawn uniformly between two bounds, in seconds: `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "[f64; 2]")]
pub struct Span {
    /// The shortest.
    pub min: f64,
    /// The longest.
    pub max: f64,
}

impl TryFrom<[f64; 2]> for Span {
    type Error = String;
    fn try_from([min, max]: [f64; 2]) -> Result<Self, String> {
        match min.is_finite() && max.is_finite() && 0.0 <= min && min <= max {
            true => Ok(Span { min, max }),
            false => Err(format!("[{min}, {max}]: must be 0 <= min <= max seconds")),
        }
    }
}

/// Choices with their weights: `[[choice, weight], ...]`, at least one, every weight
/// positive.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Vec<(T, f64)>")]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Weighted<T> {
    choices: Vec<(T, f64)>,
    total: f64,
}

impl<T> Weighted<T> {
    /// The choice `u` (uniform in 0..1) falls on.
    pub fn pick(&self, u: f64) -> &T {
        let mut left = u * self.total;
        for (choice, weight) in &self.choices {
            if left < *weight {
                return choice;
            }
            left -= weight;
        }
        &self.choices[self.choices.len() - 1].0
    }

    /// Each choice with its share of the whole, 0 to 1.
    pub fn shares(&self) -> impl Iterator<Item = (&T, f64)> {
        self.choices.iter().map(|(c, w)| (c, w / self.total))
    }
}

impl<T> TryFrom<Vec<(T, f64)>> for Weighted<T> {
    type Error = String;
    fn try_from(choices: Vec<(T, f64)>) -> Result<Self, String> {
        if choices.is_empty() || choices.len() > 100 {
            return Err("1 to 100 weighted choices".into());
        }
        if choices.iter().any(|(_, w)| !(w.is_finite() && *w > 0.0)) {
            return Err("every weight must be a positive number".into());
        }
        let total = choices.iter().map(|(_, w)| w).sum();
        Ok(Weighted { choices, total })
    }
}

/// When fans arrive, in seconds from the sale's opening.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "curve", rename_all = "snake_case", deny_unknown_fields)]
pub enum Arrivals {
    /// `share` of the fans arrive within `burst_s` of the opening, the rest over `over_s`,
    /// each uniformly.
    Burst {
        /// The rush's length.
        burst_s: Positive,
        /// The rush's share of the fans.
        share: Probability,
        /// Over how long the others arrive.
        over_s: Positive,
    },
    /// Arrivals grow steadily from none at the opening to their peak at `over_s`.
    Ramp {
        /// When the last fan arrives.
        over_s: Positive,
    },
    /// A Poisson process: `per_s` arrivals a second on average, until every fan came.
    Poisson {
        /// Mean arrivals a second.
        per_s: Positive,
    },
}

/// A sandbox card and what paying with it comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Card {
    /// Paid at once.
    #[serde(rename = "pm_card_ok")]
    Ok,
    /// Declined: the fan's order fails and the seats go back.
    #[serde(rename = "pm_card_declined")]
    Declined,
    /// Paid after the fan passes 3-D Secure.
    #[serde(rename = "pm_card_3ds")]
    ThreeDSecure,
    /// Paid after the provider takes its time (its webhook settles the order).
    #[serde(rename = "pm_card_slow")]
    Slow,
}

impl Card {
    /// The sandbox's name for the card.
    pub fn method(self) -> &'static str {
        match self {
            Card::Ok => "pm_card_ok",
            Card::Declined => "pm_card_declined",
            Card::ThreeDSecure => "pm_card_3ds",
            Card::Slow => "pm_card_slow",
        }
    }

    /// Whether paying with it sells the seats.
    pub fn pays(self) -> bool {
        self != Card::Declined
    }
}

/// What fans do, each choice drawn per fan.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Fans who sign in when they arrive; the others come signed in from before.
    pub sign_in_on_arrival: Probability,
    /// Fans who stop polling before their turn (the tab closed, the phone locked).
    pub stop_polling: Probability,
    /// Seats a fan wants: `[[seats, weight], ...]`.
    pub seats: Weighted<u32>,
    /// Fans who take the best available seats; the others pick theirs on the map.
    pub best_available: Probability,
    /// From admission to holding seats.
    pub think_s: Span,
    /// Fans who hold seats and never order.
    pub abandon_hold: Probability,
    /// From holding seats to paying.
    pub pay_s: Span,
    /// The cards fans pay with: `[["pm_card_ok", weight], ...]`.
    pub cards: Weighted<Card>,
}

/// The show's admission settings and seats, as `config/edge.toml` and the catalog have
/// them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Room {
    /// Fans called per minute.
    pub admit_per_minute: Count,
    /// Most admitted sessions (and calls not yet claimed) at once.
    pub max_active: Count,
    /// How long an admission lasts.
    pub session_ttl_s: Positive,
    /// A fan silent this long is skipped when its turn comes.
    pub no_show_grace_s: Positive,
    /// How long a hold keeps its seats (`config/origin.toml [holds] ttl_s`).
    pub hold_ttl_s: Positive,
    /// Seconds between availability snapshots (`config/seatmap-builder.toml [build]
    /// interval_s`): fans and the edge see seats come and go this late.
    pub snapshot_interval_s: Positive,
    /// Seats on sale.
    pub seats: Count,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_from_text_within_their_bounds() {
        assert_eq!("1200".parse::<Count>().map(Count::get), Ok(1200));
        assert!("0".parse::<Count>().is_err());
        assert!("10000001".parse::<Count>().is_err());
        assert!("-5".parse::<Count>().is_err());
        assert!("twelve".parse::<Count>().is_err());
    }

    #[test]
    fn the_shipped_scenarios_parse() {
        for name in ["stadium", "theatre-presale"] {
            let file = format!(
                "{}/../config/scenarios/{name}.toml",
                env!("CARGO_MANIFEST_DIR")
            );
            Scenario::load(Path::new(&file)).expect(name);
        }
    }

    #[test]
    fn a_scaled_scenario_keeps_the_queues_shape() {
        let file = format!(
            "{}/../config/scenarios/stadium.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        let full = Scenario::load(Path::new(&file)).unwrap();
        let small = full.scaled(100, 40.0);
        assert_eq!(small.fans.get(), 1_000);
        assert_eq!(small.room.seats.get(), 800);
        assert_eq!(small.room.max_active.get(), 20);
        // 600 a minute for 100,000 fans: 240 a minute for 1,000 fans 40 times as fast.
        assert_eq!(small.room.admit_per_minute.get(), 240);
        assert_eq!(small.room.session_ttl_s.get(), 23.0);
        assert_eq!(small.room.no_show_grace_s.get(), 20.0);
        assert_eq!(
            small.behaviour.pay_s,
            Span {
                min: 0.375,
                max: 2.25
            }
        );
        let Arrivals::Burst {
            burst_s, over_s, ..
        } = small.arrivals
        else {
            panic!("a burst");
        };
        assert_eq!((burst_s.get(), over_s.get()), (1.5, 45.0));
    }

    #[test]
    fn nonsense_is_refused_with_the_value_named() {
        let bad = |field: &str, value: &str| {
            let text = std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../config/scenarios/theatre-presale.toml"
            ))
            .unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{field} =")))
                .unwrap()
                .to_owned();
            let changed = text.replace(&line, &format!("{field} = {value}"));
            toml::from_str::<Scenario>(&changed)
                .unwrap_err()
                .to_string()
        };
        assert!(bad("stop_polling", "1.5").contains("not a probability"));
        assert!(bad("per_s", "0").contains("positive"));
        assert!(bad("think_s", "[30, 10]").contains("min <= max"));
        assert!(bad("cards", "[[\"pm_card_stolen\", 1.0]]").contains("pm_card_stolen"));
        assert!(bad("seats", "[]").contains("weighted choices"));
    }
}
