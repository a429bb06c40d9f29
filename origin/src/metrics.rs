//! The origin's Prometheus metrics.

use onsale_contract::metrics::{counter_vec, histogram_vec, int_gauge_vec, registry};
use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Registry};

pub struct Metrics {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub db_pool: IntGaugeVec,
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
            registry,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
