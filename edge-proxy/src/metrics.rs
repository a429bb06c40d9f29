//! The edge's Prometheus metrics, served on the admin listener.

use crate::routes::RouteClass;
use onsale_contract::metrics::{counter_vec, gauge_vec, histogram_vec, int_gauge_vec, registry};
use prometheus::{GaugeVec, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};
use std::time::Duration;

/// Every metric of one edge, in its own registry.
pub(crate) struct Metrics {
    pub(crate) registry: Registry,
    requests: IntCounterVec,
    /// Per route class: the latency histogram and the counters of [`COMMON_STATUSES`],
    /// resolved once so a request's accounting is two atomic adds, no label lookup.
    classes: Vec<(Histogram, Vec<IntCounter>)>,
    pub(crate) upstream_healthy: IntGaugeVec,
    pub(crate) rate_limited: IntCounterVec,
    pub(crate) ratelimit_keys: IntGaugeVec,
    pub(crate) snapshot_age: GaugeVec,
    pub(crate) redis_up: IntGauge,
    pub(crate) config_version: IntGauge,
    pub(crate) catalog_cache: IntCounterVec,
    pub(crate) retries: IntCounterVec,
    /// Background tasks restarted after a panic, by task.
    pub(crate) task_restarts: IntCounterVec,
    /// TLS certificate reloads, by outcome (`applied`, `refused`).
    pub(crate) tls_reloads: IntCounterVec,
}

/// Statuses the edge answers often; others are counted through a label lookup.
const COMMON_STATUSES: [u16; 17] = [
    200, 201, 204, 304, 400, 401, 403, 404, 405, 409, 413, 429, 431, 500, 502, 503, 504,
];

const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Metrics {
    /// Registers every edge metric in a fresh registry.
    pub(crate) fn new() -> Self {
        let registry = registry("edge");
        let gauge = |name: &str, help: &str| {
            onsale_contract::metrics::register(
                &registry,
                &IntGauge::new(name, help).expect("a static metric is valid"),
            )
        };
        let requests = counter_vec(
            &registry,
            "http_requests_total",
            "Requests by route class and status",
            &["class", "status"],
        );
        let duration = histogram_vec(
            &registry,
            "http_request_duration_seconds",
            "Request latency by route class",
            &["class"],
            &LATENCY_BUCKETS,
        );
        let classes = RouteClass::ALL
            .iter()
            .map(|class| {
                let label = class.label();
                let statuses = COMMON_STATUSES
                    .iter()
                    .map(|status| requests.with_label_values(&[label, &status.to_string()]))
                    .collect();
                (duration.with_label_values(&[label]), statuses)
            })
            .collect();
        Metrics {
            requests,
            classes,
            upstream_healthy: int_gauge_vec(
                &registry,
                "upstream_healthy",
                "1 while an origin passes its health check",
                &["upstream"],
            ),
            rate_limited: counter_vec(
                &registry,
                "rate_limited_total",
                "Requests refused with 429, by the limit that refused them",
                &["limiter"],
            ),
            ratelimit_keys: int_gauge_vec(
                &registry,
                "ratelimit_keys",
                "Keys held by each keyed rate limiter",
                &["limiter"],
            ),
            snapshot_age: gauge_vec(
                &registry,
                "snapshot_age_seconds",
                "Age of the snapshot served, from its build time",
                &["show", "kind"],
            ),
            redis_up: gauge(
                "snapshot_feed_up",
                "1 while the snapshot feed from Redis is connected",
            ),
            config_version: gauge("config_version", "Version of the running configuration"),
            catalog_cache: counter_vec(
                &registry,
                "catalog_cache_total",
                "Catalog reads by micro-cache outcome",
                &["outcome"],
            ),
            retries: counter_vec(
                &registry,
                "upstream_retries_total",
                "Requests retried on another origin, by cause",
                &["cause"],
            ),
            task_restarts: counter_vec(
                &registry,
                "task_restarts_total",
                "Background tasks restarted after a panic, by task",
                &["task"],
            ),
            tls_reloads: counter_vec(
                &registry,
                "tls_certificate_reloads_total",
                "TLS certificate and key files read again after a change, by outcome",
                &["outcome"],
            ),
            registry,
        }
    }
}

impl Metrics {
    /// Counts one answered request and its latency.
    pub(crate) fn record(&self, class: RouteClass, status: u16, elapsed: Duration) {
        let (duration, statuses) = &self.classes[class.index()];
        duration.observe(elapsed.as_secs_f64());
        match COMMON_STATUSES.iter().position(|&s| s == status) {
            Some(i) => statuses[i].inc(),
            None => self
                .requests
                .with_label_values(&[class.label(), &status.to_string()])
                .inc(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
