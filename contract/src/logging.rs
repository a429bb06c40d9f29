//! One log setup for every binary: `RUST_LOG` when set, else the binary's default filter.
//! `ONSALE_LOG_FORMAT=json` switches to JSON lines for log shippers.

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber; `default_filter` applies when `RUST_LOG` is unset.
/// Call once, at the start of `main`.
pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if std::env::var("ONSALE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
