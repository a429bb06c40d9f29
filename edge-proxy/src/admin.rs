//! The operations listener: `/healthz` (the process answers), `/readyz` (an origin passes
//! its health check, so proxied routes can work), `/metrics`, and `/admin/config` (the
//! effective configuration and its version), and the waiting room's
//! `/admin/shows/{id}/queue` (this node's view of a show's queue, the seed's commitment and,
//! after the draw, the seed), `PUT` of the same path (a show's admission numbers changed on
//! every node at its next step, audited), `POST /admin/shows/{id}/pause` and `/resume`
//! (every node stops or resumes admitting at its next step), and `/openapi.json`, the
//! document of all of these, made from the functions below. `/admin/*` is behind the admin
//! token when one is set; each route answers its methods only (405 with `Allow`).

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
#[derive(Serialize, utoipa::ToSchema)]
struct Paused<'a> {
    /// Whether admission is paused now.
    paused: bool,
    /// The settings version every node's next step reads.
    settings_version: u64,
    /// The show.
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
}

/// The listener's routes, parsed from a path.
enum Route<'p> {
    Health,
    Ready,
    Metrics,
    Document,
    Config,
    Queue(&'p str),
    Pause(&'p str),
    Resume(&'p str),
}

impl<'p> Route<'p> {
    fn parse(path: &'p str) -> Option<Self> {
        Some(match path {
            "/healthz" => Route::Health,
            "/readyz" => Route::Ready,
            "/metrics" => Route::Metrics,
            "/openapi.json" => Route::Document,
            "/admin/config" => Route::Config,
            _ => {
                let (show, action) = path.strip_prefix("/admin/shows/")?.split_once('/')?;
                match action {
                    "queue" => Route::Queue(show),
                    "pause" => Route::Pause(show),
                    "resume" => Route::Resume(show),
                    _ => return None,
                }
            }
        })
    }

    /// The methods the route answers, as `Allow` lists them.
    fn allow(&self) -> &'static str {
        match self {
            Route::Queue(_) => "GET, PUT",
            Route::Pause(_) | Route::Resume(_) => "POST",
            _ => "GET",
        }
    }
}

/// Problems of every route of this listener.
const ANY: &[Code] = &[Code::Internal];
/// Problems of the `/admin/` routes: the admin token.
const ADMIN: &[Code] = &[Code::Unauthorized];
/// Problems of a show's routes: a show without a waiting room.
const SHOW: &[Code] = &[Code::ShowNotFound];

/// Whether the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Up.", body = String, content_type = "text/plain")),
)]
fn healthz() -> Response<Vec<u8>> {
    reply(StatusCode::OK, "text/plain", b"ok".to_vec())
}

onsale_contract::problems!(ReadyProblems = [ANY, &[Code::NotReady]]);

/// Whether proxied routes can work: an origin passes its health check.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready.", body = String, content_type = "text/plain"),
        ReadyProblems,
    ),
)]
fn readyz(shared: &Shared) -> Response<Vec<u8>> {
    match shared.pool_keeper.any_healthy() {
        true => reply(StatusCode::OK, "text/plain", b"ready".to_vec()),
        false => problem_reply(
            &Problem::new(Code::NotReady, "Not ready")
                .with_detail("no origin passes its health check"),
        ),
    }
}

/// The edge's metrics, in Prometheus' text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((
        status = 200,
        description = "Every metric of the edge.",
        body = String,
        content_type = "text/plain; version=0.0.4",
    )),
)]
fn metrics(shared: &Shared) -> Response<Vec<u8>> {
    let metrics = &shared.metrics;
    let now_ms = shared.clock.now_ms();
    metrics.snapshot_age.reset();
    for ((show, kind), snapshot) in shared.snapshots.all() {
        metrics
            .snapshot_age
            .with_label_values(&[&show, kind.name()])
            .set((now_ms - snapshot.built_at_ms).max(0) as f64 / 1000.0);
    }
    metrics
        .config_version
        .set(shared.live.load().version as i64);
    reply(
        StatusCode::OK,
        onsale_contract::metrics::CONTENT_TYPE,
        onsale_contract::metrics::render(&metrics.registry).into_bytes(),
    )
}

/// This document: the operations listener's routes.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object)),
)]
fn document() -> Response<Vec<u8>> {
    json_reply(serde_json::to_vec(&*crate::openapi::OPERATIONS))
}

onsale_contract::problems!(ConfigProblems = [ANY, ADMIN]);

/// The effective configuration (secrets redacted) and its version.
#[utoipa::path(
    get,
    path = "/admin/config",
    tag = "admin",
    responses(
        (
            status = 200,
            description = "`{\"config\": <the configuration as loaded>, \"version\": <its version>}`.",
            body = Object,
        ),
        ConfigProblems,
    ),
    security(("admin" = [])),
)]
fn config(shared: &Shared) -> Response<Vec<u8>> {
    let runtime = shared.live.load();
    json_reply(serde_json::to_vec_pretty(&EffectiveConfig {
        config: &runtime.config,
        version: runtime.version,
    }))
}

/// The show's queue as this node last stepped it, if the show has a waiting room.
fn report(shared: &Shared, show: &str) -> Option<crate::waiting_room::QueueReport> {
    shared.waiting_room.admin_view(show, shared.clock.now_ms())
}

/// 404 for a show without a waiting room.
fn no_room() -> Response<Vec<u8>> {
    problem_reply(&problem::show_not_found(
        "there is no waiting room for this show",
    ))
}

onsale_contract::problems!(QueueProblems = [ANY, ADMIN, SHOW]);

/// A show's queue as this node last stepped it: settings, counters, the draw's seed
/// commitment and, after the draw, the seed.
#[utoipa::path(
    get,
    path = "/admin/shows/{id}/queue",
    tag = "admin",
    params(("id" = String, Path, description = "The show.")),
    responses(
        (status = 200, description = "The queue.", body = crate::waiting_room::QueueReport),
        QueueProblems,
    ),
    security(("admin" = [])),
)]
fn queue(shared: &Shared, show: &str) -> Response<Vec<u8>> {
    match report(shared, show) {
        Some(report) => json_reply(serde_json::to_vec(&report)),
        None => no_room(),
    }
}

onsale_contract::problems!(
    TuneProblems = [
        ANY,
        ADMIN,
        SHOW,
        &[
            Code::OperatorRequired,
            Code::InvalidBody,
            Code::BodyTooLarge,
            Code::InvalidSettings,
            Code::SettingsContended,
            Code::QueueUnavailable,
        ],
    ]
);

/// Changes a show's admission numbers on every node at its next step, audited under the
/// operator the `onsale-operator` header names. Fields left out keep their values; the
/// schedule and the pre-queue's order stay the configuration file's.
#[utoipa::path(
    put,
    path = "/admin/shows/{id}/queue",
    tag = "admin",
    params(
        ("id" = String, Path, description = "The show."),
        (
            "onsale-operator" = String,
            Header,
            description = "Who makes the change: 1 to 64 printable characters.",
            pattern = "^[!-~]{1,64}$",
        ),
    ),
    request_body = QueueTuning,
    responses(
        (status = 200, description = "The settings before and after.", body = crate::waiting_room::Tuned),
        TuneProblems,
    ),
    security(("admin" = [])),
)]
async fn tune(shared: &Shared, session: &mut ServerSession, show: &str) -> Response<Vec<u8>> {
    if report(shared, show).is_none() {
        return no_room();
    }
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
        at_ms: shared.clock.now_ms(),
    };
    let prefix = shared.live.load().config.redis.key_prefix.clone();
    match shared
        .waiting_room
        .tune(&prefix, show, &tuning, &operator)
        .await
    {
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

onsale_contract::problems!(PauseProblems = [ANY, ADMIN, SHOW, &[Code::QueueUnavailable]]);

/// Stops admission for the show on every node at its next step.
#[utoipa::path(
    post,
    path = "/admin/shows/{id}/pause",
    tag = "admin",
    params(("id" = String, Path, description = "The show.")),
    responses((status = 200, description = "Paused.", body = Paused), PauseProblems),
    security(("admin" = [])),
)]
async fn pause(shared: &Shared, show: &str) -> Response<Vec<u8>> {
    set_paused(shared, show, true).await
}

/// Resumes admission for the show on every node at its next step.
#[utoipa::path(
    post,
    path = "/admin/shows/{id}/resume",
    tag = "admin",
    params(("id" = String, Path, description = "The show.")),
    responses((status = 200, description = "Resumed.", body = Paused), PauseProblems),
    security(("admin" = [])),
)]
async fn resume(shared: &Shared, show: &str) -> Response<Vec<u8>> {
    set_paused(shared, show, false).await
}

async fn set_paused(shared: &Shared, show: &str, paused: bool) -> Response<Vec<u8>> {
    if report(shared, show).is_none() {
        return no_room();
    }
    let prefix = shared.live.load().config.redis.key_prefix.clone();
    match shared.waiting_room.set_paused(&prefix, show, paused).await {
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

/// The operations listener's document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, metrics, document, config, queue, tune, pause, resume))]
pub(crate) struct OperationsApi;

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_owned();
        // The admin token first: without it, nothing under /admin/ is told apart.
        if path.starts_with("/admin/") && !self.authorized(session) {
            return problem_reply(
                &Problem::new(Code::Unauthorized, "Unauthorized")
                    .with_detail("the admin API needs the admin bearer token"),
            );
        }
        let Some(route) = Route::parse(&path) else {
            return problem_reply(&problem::route_not_found());
        };
        let method = session.req_header().method.clone();
        if !route
            .allow()
            .split(", ")
            .any(|allowed| allowed == method.as_str())
        {
            return problem_reply(&problem::method_not_allowed(route.allow()));
        }
        let shared = &self.shared;
        match route {
            Route::Health => healthz(),
            Route::Ready => readyz(shared),
            Route::Metrics => metrics(shared),
            Route::Document => document(),
            Route::Config => config(shared),
            Route::Queue(show) if method == http::Method::GET => queue(shared, show),
            Route::Queue(show) => tune(shared, session, show).await,
            Route::Pause(show) => pause(shared, show).await,
            Route::Resume(show) => resume(shared, show).await,
        }
    }
}
