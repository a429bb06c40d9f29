//! The origin's Prometheus metrics.

use onsale_contract::metrics::{counter_vec, histogram_vec, int_gauge_vec, register, registry};
use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Registry,
};

pub struct Metrics {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub db_pool: IntGaugeVec,
    pub holds: IntCounterVec,
    pub hold_duration: Histogram,
    pub holds_ended: IntCounterVec,
    pub sweep_lag: Gauge,
}

const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = registry("origin");
        Metrics {
            http_requests: counter_vec(
                &registry,
                "http_requests_total",
                "HTTP requests by route, method and status",
                &["route", "method", "status"],
            ),
            http_duration: histogram_vec(
                &registry,
                "http_request_duration_seconds",
                "HTTP request latency by route",
                &["route"],
                &LATENCY_BUCKETS,
            ),
            db_pool: int_gauge_vec(
                &registry,
                "db_pool_connections",
                "Database pool connections by state",
                &["state"],
            ),
            holds: counter_vec(
                &registry,
                "holds_total",
                "Hold attempts by outcome: created, conflict (seats taken), rejected (bad input or limit), error",
                &["outcome"],
            ),
            hold_duration: register(
                &registry,
                &Histogram::with_opts(
                    HistogramOpts::new("hold_duration_seconds", "Time to answer a hold attempt")
                        .buckets(LATENCY_BUCKETS.to_vec()),
                )
                .expect("static metric"),
            ),
            holds_ended: counter_vec(
                &registry,
                "holds_ended_total",
                "Holds ended, by reason: released, expired_swept, expired_lazily",
                &["reason"],
            ),
            sweep_lag: register(
                &registry,
                &Gauge::new(
                    "hold_sweep_lag_seconds",
                    "How long after expiry the sweeper's latest batch freed its oldest seat",
                )
                .expect("static metric"),
            ),
            registry,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
