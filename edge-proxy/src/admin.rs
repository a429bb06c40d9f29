//! The operations listener: `/healthz` (the process answers), `/readyz` (an origin passes
//! its health check, so proxied routes can work), `/metrics`, and `/admin/config` (the
//! effective configuration and its version), and the waiting room's
//! `/admin/shows/{id}/queue` (this node's view of a show's queue, the seed's commitment and,
//! after the draw, the seed), `POST /admin/shows/{id}/pause` and `/resume` (every node stops
//! or resumes admitting at its next step). `/admin/*` is behind the admin token when one is
//! set.

use crate::problem::{self, Code};
use crate::Shared;
use async_trait::async_trait;
use http::{header, HeaderValue, Response, StatusCode};
use onsale_contract::problem::{Problem, CONTENT_TYPE as PROBLEM_JSON};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Serialize;
use std::sync::Arc;

/// The operations listener's application.
pub(crate) struct AdminApp {
    pub(crate) shared: Arc<Shared>,
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Vec<u8>> {
    let length = body.len();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn problem_reply(problem: &Problem) -> Response<Vec<u8>> {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply(status, PROBLEM_JSON, problem.to_json())
}

/// A serialized value as a 200 JSON answer; a value that did not serialize is a 500.
fn json_reply(serialized: serde_json::Result<Vec<u8>>) -> Response<Vec<u8>> {
    match serialized {
        Ok(body) => reply(StatusCode::OK, "application/json", body),
        Err(error) => {
            tracing::error!(%error, "cannot serialize an admin answer");
            problem_reply(&problem::internal())
        }
    }
}

/// The answer to pausing or resuming a show's admission.
#[derive(Serialize)]
struct Paused<'a> {
    paused: bool,
    settings_version: u64,
    show_id: &'a str,
}

/// `/admin/config`.
#[derive(Serialize)]
struct EffectiveConfig<'a> {
    config: &'a crate::config::Config,
    version: u64,
}

impl AdminApp {
    fn authorized(&self, session: &ServerSession) -> bool {
        let runtime = self.shared.live.load();
        let Some(token) = &runtime.config.admin.token else {
            return true;
        };
        let presented = session
            .req_header()
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        token.matches(presented.as_bytes())
    }

    fn metrics(&self) -> Response<Vec<u8>> {
        let metrics = &self.shared.metrics;
        let now_ms = self.shared.clock.now_ms();
        metrics.snapshot_age.reset();
        for ((show, kind), snapshot) in self.shared.snapshots.all() {
            metrics
                .snapshot_age
                .with_label_values(&[&show, kind.name()])
                .set((now_ms - snapshot.built_at_ms).max(0) as f64 / 1000.0);
        }
        metrics
            .config_version
            .set(self.shared.live.load().version as i64);
        reply(
            StatusCode::OK,
            onsale_contract::metrics::CONTENT_TYPE,
            onsale_contract::metrics::render(&metrics.registry).into_bytes(),
        )
    }

    fn config(&self) -> Response<Vec<u8>> {
        let runtime = self.shared.live.load();
        json_reply(serde_json::to_vec_pretty(&EffectiveConfig {
            config: &runtime.config,
            version: runtime.version,
        }))
    }

    async fn show(&self, session: &ServerSession, path: &str) -> Response<Vec<u8>> {
        let rest = path.trim_start_matches("/admin/shows/");
        let Some((show, action)) = rest.split_once('/') else {
            return problem_reply(&problem::route_not_found());
        };
        let room = &self.shared.waiting_room;
        let Some(report) = room.admin_view(show, self.shared.clock.now_ms()) else {
            return problem_reply(&problem::show_not_found(
                "there is no waiting room for this show",
            ));
        };
        match (session.req_header().method.as_str(), action) {
            ("GET", "queue") => json_reply(serde_json::to_vec(&report)),
            ("POST", "pause" | "resume") => {
                let paused = action == "pause";
                let prefix = self.shared.live.load().config.redis.key_prefix.clone();
                match room.set_paused(&prefix, show, paused).await {
                    Ok(version) => {
                        tracing::info!(%show, paused, version, "waiting-room admission paused/resumed");
                        json_reply(serde_json::to_vec(&Paused {
                            paused,
                            settings_version: version,
                            show_id: show,
                        }))
                    }
                    Err(error) => problem_reply(
                        &Problem::new(503, Code::QueueUnavailable, "Waiting room unavailable")
                            .with_detail(error.to_string()),
                    ),
                }
            }
            (_, "queue" | "pause" | "resume") => problem_reply(&problem::method_not_allowed()),
            _ => problem_reply(&problem::route_not_found()),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_owned();
        match path.as_str() {
            "/healthz" => reply(StatusCode::OK, "text/plain", b"ok".to_vec()),
            "/readyz" if self.shared.pool_keeper.any_healthy() => {
                reply(StatusCode::OK, "text/plain", b"ready".to_vec())
            }
            "/readyz" => problem_reply(
                &Problem::new(503, Code::NotReady, "Not ready")
                    .with_detail("no origin passes its health check"),
            ),
            "/metrics" => self.metrics(),
            p if p.starts_with("/admin/") && !self.authorized(session) => problem_reply(
                &Problem::new(401, Code::Unauthorized, "Unauthorized")
                    .with_detail("the admin API needs the admin bearer token"),
            ),
            "/admin/config" => self.config(),
            p if p.starts_with("/admin/shows/") => self.show(session, p).await,
            _ => problem_reply(&problem::route_not_found()),
        }
    }
}
