//! One Prometheus registry per running server (not the process-global one), so several
//! servers can share a process in tests and each `/metrics` shows only its own.

use prometheus::core::Collector;
use prometheus::{Encoder, Registry, TextEncoder};

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

/// The Prometheus text exposition of everything in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .expect("text encoding cannot fail");
    String::from_utf8(buffer).expect("prometheus text is UTF-8")
}

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";
