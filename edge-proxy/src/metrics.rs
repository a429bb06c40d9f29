//! The edge's Prometheus metrics, served on the admin listener.

use onsale_contract::metrics::{register, registry};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = registry("edge");
        let requests = register(
            &registry,
            &IntCounterVec::new(
                Opts::new("http_requests_total", "Requests by route class and status"),
                &["class", "status"],
            )
            .expect("static metric"),
        );
        let duration = register(
            &registry,
            &HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "Request latency by route class",
                )
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5,
                ]),
                &["class"],
            )
            .expect("static metric"),
        );
        Metrics {
            registry,
            requests,
            duration,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
