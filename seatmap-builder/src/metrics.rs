//! The builder's Prometheus metrics.

use onsale_contract::metrics::{
    counter_vec, gauge_vec, histogram_vec, int_gauge_vec, register, registry,
};
use prometheus::{GaugeVec, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Registry};

pub struct Metrics {
    pub registry: Registry,
    pub build_duration: HistogramVec,
    pub builds: IntCounterVec,
    pub failures: IntCounterVec,
    pub document_bytes: IntGaugeVec,
    pub snapshot_age: GaugeVec,
    pub lease_holder: IntGauge,
}

impl Metrics {
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
            registry,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
