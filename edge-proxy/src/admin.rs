//! The operations listener: `/healthz` (the process answers), `/readyz` (an origin passes
//! its health check, so proxied routes can work), `/metrics`, and `/admin/config` (the
//! effective configuration and its version), and the waiting room's
//! `/admin/shows/{id}/queue` (this node's view of a show's queue, the seed's commitment and,
//! after the draw, the seed), `PUT` of the same path (a show's admission numbers changed on
//! every node at its next step, audited), `POST /admin/shows/{id}/pause` and `/resume`
//! (every node stops or resumes admitting at its next step). `/admin/*` is behind the admin
//! token when one is set.

use crate::config::QueueTuning;
use crate::problem::{self, Code};
use crate::waiting_room::{Operator, TuneError};
use crate::Shared;
use async_trait::async_trait;
use http::{header, HeaderValue, Response, StatusCode};
use onsale_contract::problem::{Problem, CONTENT_TYPE as PROBLEM_JSON};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Serialize;
use std::sync::Arc;

/// The largest admin request body read.
const MAX_ADMIN_BODY: usize = 4096;

/// The header naming who makes a change through the admin API.
const OPERATOR: &str = "onsale-operator";

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
    let mut response = reply(status, PROBLEM_JSON, problem.to_json());
    for (name, value) in problem::headers(problem) {
        if let Ok(value) = HeaderValue::try_from(value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
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

/// A request body of at most [`MAX_ADMIN_BODY`] bytes.
async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, Problem> {
    let mut body = Vec::new();
    while let Some(chunk) = session
        .read_request_body()
        .await
        .map_err(|_| problem::invalid_body("the request body could not be read"))?
    {
        if body.len() + chunk.len() > MAX_ADMIN_BODY {
            return Err(problem::body_too_large(MAX_ADMIN_BODY));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
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

    /// `PUT /admin/shows/{show}/queue`: the body's numbers in force on every node, by the
    /// operator the `onsale-operator` header names.
    async fn tune(&self, session: &mut ServerSession, show: &str) -> Response<Vec<u8>> {
        let name = session
            .req_header()
            .headers
            .get(OPERATOR)
            .and_then(|v| v.to_str().ok())
            .filter(|v| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_owned);
        let Some(name) = name else {
            return problem_reply(
                &Problem::new(Code::OperatorRequired, "Operator required").with_detail(
                    "name who makes the change in the onsale-operator header (1-64 printable characters)",
                ),
            );
        };
        let body = match read_body(session).await {
            Ok(body) => body,
            Err(problem) => return problem_reply(&problem),
        };
        let tuning: QueueTuning = match serde_json::from_slice(&body) {
            Ok(tuning) => tuning,
            Err(error) => return problem_reply(&problem::invalid_body(error.to_string())),
        };
        let operator = Operator {
            name: &name,
            client: session
                .client_addr()
                .map_or_else(|| "unknown".to_owned(), ToString::to_string),
            at_ms: self.shared.clock.now_ms(),
        };
        let prefix = self.shared.live.load().config.redis.key_prefix.clone();
        let room = &self.shared.waiting_room;
        match room.tune(&prefix, show, &tuning, &operator).await {
            Ok(tuned) => json_reply(serde_json::to_vec(&tuned)),
            Err(TuneError::Invalid(detail)) => problem_reply(
                &Problem::new(Code::InvalidSettings, "Invalid settings").with_detail(detail),
            ),
            Err(error @ TuneError::Contended) => problem_reply(
                &Problem::new(Code::SettingsContended, "Settings changing")
                    .with_detail(error.to_string()),
            ),
            Err(error @ (TuneError::Unpublished | TuneError::State(_))) => problem_reply(
                &Problem::new(Code::QueueUnavailable, "Waiting room unavailable")
                    .with_detail(error.to_string()),
            ),
        }
    }

    async fn show(&self, session: &mut ServerSession, path: &str) -> Response<Vec<u8>> {
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
            ("PUT", "queue") => self.tune(session, show).await,
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
                        &Problem::new(Code::QueueUnavailable, "Waiting room unavailable")
                            .with_detail(error.to_string()),
                    ),
                }
            }
            (_, "queue") => problem_reply(&problem::method_not_allowed("GET, PUT")),
            (_, "pause" | "resume") => problem_reply(&problem::method_not_allowed("POST")),
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
                &Problem::new(Code::NotReady, "Not ready")
                    .with_detail("no origin passes its health check"),
            ),
            "/metrics" => self.metrics(),
            p if p.starts_with("/admin/") && !self.authorized(session) => problem_reply(
                &Problem::new(Code::Unauthorized, "Unauthorized")
                    .with_detail("the admin API needs the admin bearer token"),
            ),
            "/admin/config" => self.config(),
            p if p.starts_with("/admin/shows/") => self.show(session, &path).await,
            _ => problem_reply(&problem::route_not_found()),
        }
    }
}
