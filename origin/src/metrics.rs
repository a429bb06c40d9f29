//! The origin's Prometheus metrics.

use onsale_contract::metrics::{register, registry};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub db_pool: IntGaugeVec,
}

pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = registry("origin");
        let http_requests = register(
            &registry,
            &IntCounterVec::new(
                Opts::new(
                    "http_requests_total",
                    "HTTP requests by route, method and status",
                ),
                &["route", "method", "status"],
            )
            .expect("static metric"),
        );
        let http_duration = register(
            &registry,
            &HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "HTTP request latency by route",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            )
            .expect("static metric"),
        );
        let db_pool = register(
            &registry,
            &IntGaugeVec::new(
                Opts::new("db_pool_connections", "Database pool connections by state"),
                &["state"],
            )
            .expect("static metric"),
        );
        Metrics {
            registry,
            http_requests,
            http_duration,
            db_pool,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
