//! The edge's Prometheus metrics, served on the admin listener.

use onsale_contract::metrics::{counter_vec, histogram_vec, registry};
use prometheus::{HistogramVec, IntCounterVec, Registry};

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
}

const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = registry("edge");
        Metrics {
            requests: counter_vec(
                &registry,
                "http_requests_total",
                "Requests by route class and status",
                &["class", "status"],
            ),
            duration: histogram_vec(
                &registry,
                "http_request_duration_seconds",
                "Request latency by route class",
                &["class"],
                &LATENCY_BUCKETS,
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
