//! Where a fan stands, by arithmetic alone: its place from the token's lane and number (the
//! [draw](super::draw) for the pre-queue), its position from the last step's presence
//! blocks, its ETA from the measured outflow, and when to poll next. No I/O and no clock:
//! every input is a [`ShowView`] and `now_ms`.

use super::draw;
use super::store::Advanced;
use crate::config::{PrequeueOrder, QueueSettings};
use onsale_contract::polling::poll_after_ms;
use onsale_contract::tokens::Lane;

/// Seconds of call history before the measured outflow is trusted over the configured rate.
const MIN_MEASURED_S: f64 = 5.0;
/// How far apart two nodes' clocks may be when one reads the other's token times.
const CLOCK_MARGIN_MS: i64 = 2_000;

/// One show's queue as this node last saw it.
#[derive(Debug, Clone)]
pub struct ShowView {
    /// The settings every node runs on (Redis's, once published).
    pub(crate) settings: QueueSettings,
    /// What the last admission step left.
    pub(crate) state: Advanced,
    /// The pre-queue draw's seed, once the first join set it.
    pub(crate) seed: Option<draw::Seed>,
    /// Whether the availability snapshot says nothing is left.
    pub(crate) sold_out: bool,
    /// When the step behind this view ran.
    pub(crate) as_of_ms: i64,
}

/// Where a fan stands by the numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Standing {
    /// Joined before the opening; placed by the draw when the sale opens.
    PreQueue,
    /// Waiting: `position` fans present ahead, about `eta_s` seconds (`None` while
    /// admission is stopped).
    Queued {
        place: u64,
        position: u64,
        eta_s: Option<u64>,
    },
    /// The serving counter has passed the fan's place.
    Called { place: u64 },
    /// Nothing left to sell; nobody is called.
    SoldOut,
}

/// A show's queue as the admin view reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueStatus {
    /// Before `queue_opens_at`.
    Closed,
    /// The availability snapshot says nothing is left.
    SoldOut,
    /// Open for joins; the sale has not opened, so nobody is placed yet.
    PreQueue,
    /// Admission paused by an operator.
    Paused,
    /// Calling fans.
    Open,
}

impl ShowView {
    /// The fan's place, once known.
    pub(crate) fn place(&self, lane: Lane, number: u64) -> Option<u64> {
        match lane {
            Lane::Open => Some(number),
            Lane::PreQueue => {
                let n = self.state.frozen?;
                let join = number.min(n.saturating_sub(1));
                match (self.settings.prequeue_order, &self.seed) {
                    (PrequeueOrder::Random, Some(seed)) if n > 0 => {
                        Some(draw::place(seed, n, join))
                    }
                    (PrequeueOrder::Random, _) => None,
                    (PrequeueOrder::JoinOrder, _) => Some(join),
                }
            }
        }
    }

    /// Whether (`lane`, `number`), from a queue token signed at `issued_s`, is a place the
    /// queue's state does not have although its join was written before the step behind this
    /// view: Redis came back without it. A token is signed after its join is written, so
    /// only a token older than the step (clocks apart allowed for) can tell.
    pub(crate) fn lost(&self, lane: Lane, number: u64, issued_s: i64) -> bool {
        // `iat` is in whole seconds: the join may have been written up to a second after it.
        if (issued_s + 1) * 1000 + CLOCK_MARGIN_MS > self.as_of_ms {
            return false;
        }
        match lane {
            Lane::Open => self.state.frozen.is_some() && number >= self.state.total,
            Lane::PreQueue => self.state.frozen.is_none() && number >= self.state.pre_count,
        }
    }

    /// Fans still present between the serving counter and `place`, from the step's block
    /// counts, interpolated within a block.
    pub(crate) fn position(&self, place: u64) -> u64 {
        let serving = self.state.serving;
        let mut start = serving;
        let mut before = 0;
        for &(end, cumulative) in &self.state.blocks {
            if place < end {
                let in_block = cumulative - before;
                let into = place.saturating_sub(start);
                return before + in_block * into / (end - start).max(1);
            }
            start = end;
            before = cumulative;
        }
        match self.state.blocks.last() {
            Some(_) => before + place.saturating_sub(start),
            None => place.saturating_sub(serving),
        }
    }

    /// Fans called per second: measured over the last minute once there are a few seconds
    /// of calls, the configured rate before that; `None` while admission is stopped.
    pub(crate) fn outflow_per_s(&self, now_ms: i64) -> Option<f64> {
        if self.state.paused || self.sold_out {
            return None;
        }
        let configured = f64::from(self.settings.admit_per_minute) / 60.0;
        let measured = self.state.first_call_ms.and_then(|first| {
            let window_s = ((now_ms - first) as f64 / 1000.0).min(60.0);
            (window_s >= MIN_MEASURED_S).then(|| self.state.called_last_minute as f64 / window_s)
        });
        match measured {
            Some(rate) if rate > 0.0 => Some(rate),
            Some(_) => None,
            None => Some(configured),
        }
    }

    /// Where the fan holding (`lane`, `number`) stands at `now_ms`.
    pub(crate) fn standing(&self, lane: Lane, number: u64, now_ms: i64) -> Standing {
        let Some(place) = self.place(lane, number) else {
            return Standing::PreQueue;
        };
        if place < self.state.serving {
            return Standing::Called { place };
        }
        if self.sold_out {
            return Standing::SoldOut;
        }
        let position = self.position(place);
        let eta_s = self
            .outflow_per_s(now_ms)
            .map(|rate| (position as f64 / rate).ceil() as u64);
        Standing::Queued {
            place,
            position,
            eta_s,
        }
    }

    /// The queue's status at `now_ms`.
    pub(crate) fn status(&self, now_ms: i64) -> QueueStatus {
        if now_ms < self.settings.queue_opens_ms() {
            QueueStatus::Closed
        } else if self.sold_out {
            QueueStatus::SoldOut
        } else if self.state.frozen.is_none() {
            QueueStatus::PreQueue
        } else if self.state.paused {
            QueueStatus::Paused
        } else {
            QueueStatus::Open
        }
    }
}

/// A pre-queued fan polls at the opening, or sooner if the grace asks for it.
pub(crate) fn pre_queue_poll_after_ms(
    sale_opens_ms: i64,
    now_ms: i64,
    grace_ms: i64,
    jitter: f64,
) -> i64 {
    let until_open = (sale_opens_ms - now_ms).max(1_000);
    until_open.min(poll_after_ms(u64::MAX, grace_ms, jitter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn settings() -> QueueSettings {
        QueueSettings {
            admit_per_minute: 600,
            max_active: 100,
            session_ttl_s: 600,
            queue_opens_at: Utc.timestamp_millis_opt(0).unwrap(),
            sale_opens_at: Utc.timestamp_millis_opt(1_000).unwrap(),
            prequeue_order: PrequeueOrder::Random,
            no_show_grace_s: 60,
            pow_difficulty: 0,
            paused: false,
        }
    }

    fn view(state: Advanced) -> ShowView {
        ShowView {
            settings: settings(),
            state,
            seed: Some([3; 32]),
            sold_out: false,
            as_of_ms: 0,
        }
    }

    #[test]
    fn a_place_is_lost_only_when_its_token_predates_the_step_that_misses_it() {
        let mut open = view(Advanced {
            total: 10,
            frozen: Some(4),
            pre_count: 4,
            ..Default::default()
        });
        open.as_of_ms = 100_000;
        // Signed well before the step: the state should have it.
        assert!(open.lost(Lane::Open, 10, 90));
        assert!(open.lost(Lane::Open, 25, 96));
        assert!(!open.lost(Lane::Open, 9, 90), "within the queue's count");
        // Signed within the margin of the step: its join may have come after it.
        assert!(!open.lost(Lane::Open, 10, 98));
        assert!(!open.lost(Lane::Open, 10, 100));
        assert!(!open.lost(Lane::PreQueue, 7, 90), "the draw is done");

        let mut before_opening = view(Advanced {
            pre_count: 5,
            ..Default::default()
        });
        before_opening.as_of_ms = 100_000;
        assert!(before_opening.lost(Lane::PreQueue, 5, 90));
        assert!(!before_opening.lost(Lane::PreQueue, 4, 90));
        assert!(
            !before_opening.lost(Lane::Open, 5, 90),
            "no open place before the pre-queue is frozen"
        );
    }

    #[test]
    fn positions_leave_out_absent_fans() {
        // Counter at 100; places 100..200 hold 10 present fans, 200..300 hold 50.
        let v = view(Advanced {
            serving: 100,
            total: 300,
            frozen: Some(0),
            blocks: vec![(200, 10), (300, 60)],
            ..Default::default()
        });
        assert_eq!(v.position(100), 0);
        assert_eq!(v.position(150), 5);
        assert_eq!(v.position(200), 10);
        assert_eq!(v.position(250), 35);
        assert_eq!(v.position(400), 160);
    }

    #[test]
    fn without_presence_blocks_everyone_between_counts() {
        let v = view(Advanced {
            serving: 40,
            frozen: Some(0),
            ..Default::default()
        });
        assert_eq!(v.position(40), 0);
        assert_eq!(v.position(100), 60);
    }

    #[test]
    fn pre_queue_places_come_from_the_draw_once_frozen() {
        let mut v = view(Advanced::default());
        assert_eq!(v.standing(Lane::PreQueue, 3, 0), Standing::PreQueue);
        v.state.frozen = Some(10);
        v.state.total = 10;
        let place = draw::place(&[3; 32], 10, 3);
        assert_eq!(v.place(Lane::PreQueue, 3), Some(place));
        v.state.serving = place + 1;
        assert_eq!(v.standing(Lane::PreQueue, 3, 0), Standing::Called { place });
        v.settings.prequeue_order = PrequeueOrder::JoinOrder;
        assert_eq!(v.place(Lane::PreQueue, 3), Some(3));
    }

    #[test]
    fn the_eta_follows_measured_outflow() {
        let mut v = view(Advanced {
            serving: 0,
            total: 1_000,
            frozen: Some(0),
            first_call_ms: Some(0),
            called_last_minute: 300,
            ..Default::default()
        });
        // 300 calls in the last 60 s: 5/s, not the configured 10/s.
        assert_eq!(v.outflow_per_s(120_000), Some(5.0));
        match v.standing(Lane::Open, 100, 120_000) {
            Standing::Queued { eta_s, .. } => assert_eq!(eta_s, Some(20)),
            other => panic!("{other:?}"),
        }
        // Before five seconds of calls, the configured rate.
        assert_eq!(v.outflow_per_s(2_000), Some(10.0));
        v.state.paused = true;
        assert_eq!(v.outflow_per_s(120_000), None);
    }

    #[test]
    fn sold_out_holds_the_queue_but_not_the_called() {
        let mut v = view(Advanced {
            serving: 5,
            frozen: Some(0),
            ..Default::default()
        });
        v.sold_out = true;
        assert_eq!(v.standing(Lane::Open, 9, 0), Standing::SoldOut);
        assert_eq!(v.standing(Lane::Open, 4, 0), Standing::Called { place: 4 });
        assert_eq!(v.outflow_per_s(0), None);
    }

    #[test]
    fn the_queue_status_goes_closed_pre_queue_open() {
        let mut v = view(Advanced::default());
        v.settings.queue_opens_at = Utc.timestamp_millis_opt(500).unwrap();
        assert_eq!(v.status(499), QueueStatus::Closed);
        assert_eq!(v.status(500), QueueStatus::PreQueue);
        v.state.frozen = Some(0);
        assert_eq!(v.status(500), QueueStatus::Open);
        v.state.paused = true;
        assert_eq!(v.status(500), QueueStatus::Paused);
        v.sold_out = true;
        assert_eq!(v.status(500), QueueStatus::SoldOut);
    }

    #[test]
    fn a_pre_queued_fan_polls_at_the_opening() {
        // At the opening, at least a second from now, and no later than far back in the queue.
        assert_eq!(pre_queue_poll_after_ms(10_000, 7_000, 60_000, 0.5), 3_000);
        assert_eq!(pre_queue_poll_after_ms(10_000, 9_900, 60_000, 0.5), 1_000);
        assert_eq!(pre_queue_poll_after_ms(900_000, 0, 60_000, 0.5), 15_000);
    }
}
