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
use http::{Response, StatusCode};
use onsale_contract::problem::{Problem, CONTENT_TYPE as PROBLEM_JSON};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

pub struct AdminApp {
    pub shared: Arc<Shared>,
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .expect("static response parts are valid")
}

fn problem_reply(problem: &Problem) -> Response<Vec<u8>> {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply(status, PROBLEM_JSON, problem.to_json())
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
            .get(http::header::AUTHORIZATION)
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
        let body = serde_json::json!({
            "version": runtime.version,
            "config": runtime.config,
        });
        reply(
            StatusCode::OK,
            "application/json",
            serde_json::to_vec_pretty(&body).expect("config serializes"),
        )
    }
}

impl AdminApp {
    async fn show(&self, session: &ServerSession, path: &str) -> Response<Vec<u8>> {
        let rest = path.trim_start_matches("/admin/shows/");
        let Some((show, action)) = rest.split_once('/') else {
            return problem_reply(&problem::route_not_found());
        };
        let room = &self.shared.waiting_room;
        let method = &session.req_header().method;
        let not_found = || {
            problem_reply(&problem::show_not_found(
                "there is no waiting room for this show",
            ))
        };
        let Some(_) = room.view(show) else {
            return not_found();
        };
        match (method.as_str(), action) {
            ("GET", "queue") => {
                let view = room.admin_view(show, self.shared.clock.now_ms());
                reply(
                    StatusCode::OK,
                    "application/json",
                    serde_json::to_vec(&view).expect("JSON"),
                )
            }
            ("POST", "pause" | "resume") => {
                let paused = action == "pause";
                let prefix = self.shared.live.load().config.redis.key_prefix.clone();
                match room.set_paused(&prefix, show, paused).await {
                    Ok(version) => {
                        tracing::info!(%show, paused, version, "waiting-room admission paused/resumed");
                        let body = serde_json::json!({
                            "show_id": show,
                            "paused": paused,
                            "settings_version": version,
                        });
                        reply(
                            StatusCode::OK,
                            "application/json",
                            serde_json::to_vec(&body).expect("JSON"),
                        )
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
