//! The seat-map builder: every interval, turns seat states into static, compressed,
//! cacheable documents that the edge (and any CDN) serves, so browsing never touches the
//! origin during an on-sale.
//!
//! [`Builder::build_all`] is one pass (what `seatmap-builder once` runs); [`start`] runs the
//! leased loop with health and metrics endpoints, in-process for tests.
//!
//! - [`config`]: the configuration file.
//! - `sql`: the queries; `builder`: one pass; `documents` and `status_brotli`: rows to bytes;
//!   `publish`: Redis and the directory.
//! - `lease` and `run`: the loop, one leader per interval; `http`: health, readiness, metrics.
//! - [`metrics`]: what the builder exports.

pub mod config;
pub mod metrics;

mod builder;
mod documents;
mod http;
mod lease;
mod publish;
mod run;
mod sql;
mod status_brotli;

pub use builder::{BuildError, Builder, ShowReport, ShowToBuild};
#[cfg(feature = "openapi")]
pub use documents::schemas as document_schemas;
pub use documents::AvailabilityError;

use crate::config::Config;
use crate::metrics::Metrics;
use onsale_contract::clock::Clock;
use onsale_contract::tasks::Tasks;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Why a builder could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `database.url` or `database.replica_url` does not parse.
    #[error("invalid database URL: {0}")]
    Database(sqlx::Error),
    /// `redis.url` does not parse.
    #[error("invalid Redis URL: {0}")]
    Redis(redis::RedisError),
    /// The HTTP listener's address is unavailable.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured `http.listen`.
        addr: SocketAddr,
        /// What binding said.
        source: std::io::Error,
    },
}

/// A builder loop and its HTTP listener running in the background.
pub struct RunningBuilder {
    /// Where the HTTP listener accepts connections.
    pub addr: SocketAddr,
    /// This builder's metrics.
    pub metrics: Arc<Metrics>,
    tasks: Tasks,
    build_loop: run::LoopHandle,
}

impl RunningBuilder {
    /// Stops the loop (releasing the lease if held) and the HTTP listener.
    pub async fn shutdown(self) {
        self.tasks.shutdown().await;
    }

    /// Stops the loop where it waits without releasing its lease, as a crash would, then
    /// the HTTP listener.
    pub async fn crash(self) {
        self.build_loop.abandon();
        self.tasks.shutdown().await;
    }

    /// Waits until the loop has done everything due at its clock's current time: after
    /// moving a manual clock, the point at which the effects of that time can be checked.
    pub async fn settled(&self) {
        self.build_loop.settled().await;
    }
}

/// Starts the leased build loop and its HTTP listener. `holder` names this builder in the
/// lease (hostname + pid in production); `clock` drives the lease, the build schedule and
/// the documents' timestamps.
pub async fn start(
    config: Config,
    holder: String,
    clock: Clock,
) -> Result<RunningBuilder, StartError> {
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let listen = config.http.listen;
    let bind_error = |source| StartError::Bind {
        addr: listen,
        source,
    };
    let listener = std::net::TcpListener::bind(listen).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let builder = Builder::new(config, metrics.clone())?;

    let mut tasks = Tasks::new(&metrics.registry);
    let listener = Arc::new(listener);
    let router = http::router(http::HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    });
    tasks.spawn("http", move |stop| {
        http::serve(listener.clone(), router.clone(), stop)
    });
    let build_loop = run::spawn(&mut tasks, builder, holder, clock, ready);
    tracing::info!(%addr, "seat-map builder running");
    Ok(RunningBuilder {
        addr,
        metrics,
        tasks,
        build_loop,
    })
}
