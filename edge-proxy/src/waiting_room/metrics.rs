//! The waiting room's metrics: per-show gauges from each step, joins, the ETA's measured
//! error, and failed steps.

use onsale_contract::metrics::{counter_vec, histogram_vec, int_gauge_vec, register};
use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Registry};

/// Per-show waiting-room metrics, in the edge's registry.
pub(crate) struct RoomMetrics {
    pub(crate) queue_length: IntGaugeVec,
    pub(crate) admitted_last_minute: IntGaugeVec,
    pub(crate) active: IntGaugeVec,
    pub(crate) no_shows_skipped: IntGaugeVec,
    pub(crate) admit_per_minute: IntGaugeVec,
    pub(crate) max_active: IntGaugeVec,
    pub(crate) called_last_minute: IntGaugeVec,
    pub(crate) admitting: IntGaugeVec,
    pub(crate) joins: IntCounterVec,
    pub(crate) eta_error: HistogramVec,
    pub(crate) step_failures: IntCounter,
    pub(crate) places_restored: IntCounterVec,
}

impl RoomMetrics {
    /// Registers every waiting-room metric in `registry`.
    pub(crate) fn new(registry: &Registry) -> Self {
        let show = &["show"];
        RoomMetrics {
            queue_length: int_gauge_vec(
                registry,
                "waiting_room_queue_length",
                "Fans present in the queue behind the serving counter",
                show,
            ),
            admitted_last_minute: int_gauge_vec(
                registry,
                "waiting_room_admitted_last_minute",
                "Admission tokens issued in the last minute, all nodes",
                show,
            ),
            active: int_gauge_vec(
                registry,
                "waiting_room_active",
                "Admitted sessions and unclaimed calls open, all nodes",
                show,
            ),
            no_shows_skipped: int_gauge_vec(
                registry,
                "waiting_room_no_shows_skipped",
                "Places skipped because their fan was away, all nodes",
                show,
            ),
            admit_per_minute: int_gauge_vec(
                registry,
                "waiting_room_admit_per_minute",
                "The admit_per_minute setting the nodes run on (Redis's, once published)",
                show,
            ),
            max_active: int_gauge_vec(
                registry,
                "waiting_room_max_active",
                "The max_active setting the nodes run on (Redis's, once published)",
                show,
            ),
            called_last_minute: int_gauge_vec(
                registry,
                "waiting_room_called_last_minute",
                "Places called by the serving counter in the last minute, all nodes",
                show,
            ),
            admitting: int_gauge_vec(
                registry,
                "waiting_room_admitting",
                "1 while the queue calls fans: the sale is open, not paused, not sold out",
                show,
            ),
            joins: counter_vec(
                registry,
                "waiting_room_joins_total",
                "Joins on this node by lane",
                &["show", "lane"],
            ),
            eta_error: histogram_vec(
                registry,
                "waiting_room_eta_error_seconds",
                "Absolute error of sampled estimated waits, when the fan's turn came",
                show,
                &[1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0],
            ),
            places_restored: counter_vec(
                registry,
                "waiting_room_places_restored_total",
                "Queue places restored from fans' queue tokens after Redis came back without them",
                show,
            ),
            step_failures: register(
                registry,
                &IntCounter::new(
                    "waiting_room_step_failures_total",
                    "Admission steps that failed (Redis away)",
                )
                .expect("a static metric is valid"),
            ),
        }
    }
}
