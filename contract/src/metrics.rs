//! One Prometheus registry per running server (not the process-global one), so several
//! servers can share a process in tests and each `/metrics` shows only its own.

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// A registry whose metric names start with `onsale_<binary>_`.
pub fn registry(binary: &str) -> Registry {
    Registry::new_custom(Some(format!("onsale_{binary}")), None)
        .expect("a binary name is a valid metric prefix")
}

/// Registers a collector built from static names; a clash is a programming error.
pub fn register<C: Collector + Clone + 'static>(registry: &Registry, collector: &C) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("metric names are unique within a binary");
    collector.clone()
}

/// Registers an integer counter with `labels`.
pub fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        &IntCounterVec::new(Opts::new(name, help), labels).expect("static metric"),
    )
}

/// Registers an integer gauge with `labels`.
pub fn int_gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        registry,
        &IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric"),
    )
}

/// Registers a floating-point gauge with `labels`.
pub fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(
        registry,
        &GaugeVec::new(Opts::new(name, help), labels).expect("static metric"),
    )
}

/// Registers a histogram with `labels` and the given bucket upper bounds.
pub fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(
        registry,
        &HistogramVec::new(opts, labels).expect("static metric"),
    )
}

/// The Prometheus text exposition of everything in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .expect("text encoding cannot fail");
    String::from_utf8(buffer).expect("prometheus text is UTF-8")
}

/// The `Content-Type` of a `/metrics` answer: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";
