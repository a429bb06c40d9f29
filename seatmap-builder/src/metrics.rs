//! The builder's Prometheus metrics.

use onsale_contract::metrics::{
    counter_vec, gauge_vec, histogram_vec, int_gauge_vec, register, registry,
};
use prometheus::{Gauge, GaugeVec, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Registry};

/// One builder's metrics, in a registry of its own.
pub struct Metrics {
    /// What `/metrics` renders.
    pub registry: Registry,
    /// `build_duration_seconds{show}`: one show's build, query to publish.
    pub build_duration: HistogramVec,
    /// `builds_total{kind, outcome}`: documents built, `changed` or `unchanged`.
    pub builds: IntCounterVec,
    /// `failures_total{stage}`: `build`, `layout_mismatch`, `redis_connect`,
    /// `redis_publish`, `dir_write`.
    pub failures: IntCounterVec,
    /// `document_bytes{show, kind, encoding}`: the latest document's size.
    pub document_bytes: IntGaugeVec,
    /// `snapshot_age_seconds{show}`: time since the show was last built.
    pub snapshot_age: GaugeVec,
    /// `lease_holder`: 1 while this builder holds the build lease.
    pub lease_holder: IntGauge,
    /// `build_interval_seconds`: the configured `build.interval_s`, so an alert can compare
    /// `snapshot_age_seconds` with it.
    pub build_interval: Gauge,
}

impl Metrics {
    /// Registers every metric in a new `seatmap_builder` registry.
    pub fn new() -> Self {
        let registry = registry("seatmap_builder");
        Metrics {
            build_duration: histogram_vec(
                &registry,
                "build_duration_seconds",
                "Availability build time per show: query, encode, compress, publish",
                &["show"],
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            ),
            builds: counter_vec(
                &registry,
                "builds_total",
                "Documents built, by kind and whether the content changed",
                &["kind", "outcome"],
            ),
            failures: counter_vec(
                &registry,
                "failures_total",
                "Failed builds and publishes, by stage",
                &["stage"],
            ),
            document_bytes: int_gauge_vec(
                &registry,
                "document_bytes",
                "Size of the latest document per show, kind and encoding",
                &["show", "kind", "encoding"],
            ),
            snapshot_age: gauge_vec(
                &registry,
                "snapshot_age_seconds",
                "Seconds since the show's availability was last confirmed current",
                &["show"],
            ),
            lease_holder: register(
                &registry,
                &IntGauge::new("lease_holder", "1 while this builder holds the build lease")
                    .expect("static metric"),
            ),
            build_interval: register(
                &registry,
                &Gauge::new(
                    "build_interval_seconds",
                    "The configured build interval (build.interval_s)",
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
