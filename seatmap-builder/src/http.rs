//! The operations listener: `/healthz` (the process runs), `/readyz` (a build has
//! completed, or, on a standby, another builder's lease was seen: it can take over) and
//! `/metrics` (this builder's registry).

use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use onsale_contract::tasks::StopSignal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the endpoints read.
#[derive(Clone)]
pub(crate) struct HttpState {
    pub(crate) metrics: Arc<Metrics>,
    /// Set once the first build pass has completed.
    pub(crate) ready: Arc<AtomicBool>,
}

pub(crate) fn router(state: HttpState) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(state): State<HttpState>| async move {
                match state.ready.load(Ordering::Relaxed) {
                    true => (StatusCode::OK, "ready"),
                    false => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no build has completed yet",
                    ),
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(state): State<HttpState>| async move {
                (
                    [(header::CONTENT_TYPE, onsale_contract::metrics::CONTENT_TYPE)],
                    onsale_contract::metrics::render(&state.metrics.registry),
                )
                    .into_response()
            }),
        )
        .with_state(state)
}

/// Serves `router` on `listener` until `stop`. The listener is shared with earlier runs of
/// this task, so a restart after a panic keeps the port.
pub(crate) async fn serve(
    listener: Arc<std::net::TcpListener>,
    router: axum::Router,
    mut stop: StopSignal,
) {
    let listener = match listener
        .try_clone()
        .and_then(tokio::net::TcpListener::from_std)
    {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "builder HTTP listener unusable");
            return;
        }
    };
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!(%error, "builder HTTP listener failed");
    }
}
