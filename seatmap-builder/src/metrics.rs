//! The builder's Prometheus metrics.

use onsale_contract::metrics::{register, registry};
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

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
        let build_duration = register(
            &registry,
            &HistogramVec::new(
                HistogramOpts::new(
                    "build_duration_seconds",
                    "Availability build time per show: query, encode, compress, publish",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["show"],
            )
            .expect("static metric"),
        );
        let builds = register(
            &registry,
            &IntCounterVec::new(
                Opts::new(
                    "builds_total",
                    "Documents built, by kind and whether the content changed",
                ),
                &["kind", "outcome"],
            )
            .expect("static metric"),
        );
        let failures = register(
            &registry,
            &IntCounterVec::new(
                Opts::new("failures_total", "Failed builds and publishes, by stage"),
                &["stage"],
            )
            .expect("static metric"),
        );
        let document_bytes = register(
            &registry,
            &IntGaugeVec::new(
                Opts::new(
                    "document_bytes",
                    "Size of the latest document per show, kind and encoding",
                ),
                &["show", "kind", "encoding"],
            )
            .expect("static metric"),
        );
        let snapshot_age = register(
            &registry,
            &GaugeVec::new(
                Opts::new(
                    "snapshot_age_seconds",
                    "Seconds since the show's availability was last confirmed current",
                ),
                &["show"],
            )
            .expect("static metric"),
        );
        let lease_holder = register(
            &registry,
            &IntGauge::new("lease_holder", "1 while this builder holds the build lease")
                .expect("static metric"),
        );
        Metrics {
            registry,
            build_duration,
            builds,
            failures,
            document_bytes,
            snapshot_age,
            lease_holder,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
