//! The onsale origin: the system of record behind the edge.
//!
//! [`start`] binds the listener, connects and migrates the database, and serves until the
//! returned [`RunningOrigin`] is shut down. `main.rs` is a thin CLI over this, so tests start
//! real origins in-process on ephemeral ports.

pub mod accounts;
pub mod admin;
mod auth;
mod cancellation;
mod catalog;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
mod holds;
mod http;
pub mod idempotency;
mod json;
pub mod metrics;
mod openapi;
mod orders;
pub mod outbox;
mod payments;
mod presale;
pub mod provider;
pub mod reconcile;
mod refunds;
pub mod seed;
mod staff;
mod status;
pub mod sweeper;
pub mod tickets;
mod transfers;
mod waitlist;
mod webhooks;
mod workers;

use crate::config::{Config, ProviderKind};
use crate::error::{problem_response, ApiError, Code};
use crate::metrics::Metrics;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use onsale_contract::clock::Clock;
use onsale_contract::problem::Problem;
use onsale_contract::tasks::Tasks;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What every handler and worker of one origin shares.
#[derive(Clone)]
pub struct AppState {
    /// The database pool.
    pub pool: PgPool,
    /// The configuration the origin started with.
    pub config: Arc<Config>,
    /// The origin's metrics.
    pub metrics: Arc<Metrics>,
    pub(crate) tokens: Arc<onsale_contract::tokens::VerifiedCache>,
    pub(crate) passwords: Arc<accounts::passwords::Passwords>,
    pub(crate) tickets: Arc<tickets::TicketSigner>,
    pub(crate) provider: Arc<dyn provider::PaymentProvider>,
    pub(crate) workers: Arc<workers::Workers>,
    /// This process's name on the idempotency keys it holds in flight: the node's hostname
    /// and the listen address, the same when the origin starts again there.
    pub(crate) instance: Arc<str>,
    /// The time rotating QR codes are checked against: the system's, or a test's.
    pub(crate) clock: Clock,
}

/// Why the origin could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from `http.listen`.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The database cannot be reached.
    #[error("cannot connect to the database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A key of `tokens.verify_keys` cannot be loaded.
    #[error("cannot load the token verify keys: {0}")]
    Keys(#[from] onsale_contract::tokens::KeyError),
    /// The ticket signing key cannot be loaded.
    #[error(transparent)]
    TicketKey(#[from] tickets::TicketKeyError),
    /// The argon2 parameters of `[accounts]` cannot make a hasher.
    #[error(transparent)]
    Passwords(#[from] accounts::passwords::PasswordsError),
    /// The sandbox is the provider but has no settings.
    #[error("payments.provider is \"sandbox\" but [payments.sandbox] is missing")]
    SandboxUnconfigured,
}

/// The fans' routes (public, account and purchase), each registered with its documentation.
fn fan_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(accounts::post_account))
        .routes(routes!(accounts::post_session))
        .routes(routes!(accounts::delete_current_session))
        .routes(routes!(accounts::get_me))
        .routes(routes!(accounts::post_password))
        .routes(routes!(tickets::list_mine))
        .routes(routes!(accounts::resets::post_reset))
        .routes(routes!(accounts::resets::post_confirm))
        .routes(routes!(catalog::list_events))
        .routes(routes!(catalog::get_event))
        .routes(routes!(catalog::list_event_shows))
        .routes(routes!(catalog::get_show))
        .routes(routes!(presale::post_access))
        .routes(routes!(
            waitlist::post_waitlist,
            waitlist::get_waitlist,
            waitlist::delete_waitlist
        ))
        .routes(routes!(holds::post_hold))
        .routes(routes!(holds::get_hold, holds::delete_hold))
        .routes(routes!(orders::list_orders, orders::post_order))
        .routes(routes!(orders::get_order))
        .routes(routes!(payments::post_cancel))
        .routes(routes!(payments::post_confirm))
        .routes(routes!(tickets::get_qr))
        .routes(routes!(tickets::get_ticket_keys))
        .routes(routes!(
            transfers::post_transfer,
            transfers::delete_transfer
        ))
        .routes(routes!(tickets::post_verify))
        .routes(routes!(tickets::post_scans))
        .routes(routes!(tickets::get_revocations))
        .routes(routes!(webhooks::post_payment_webhook))
}

/// The organizer's routes, behind the admin token.
fn organizer_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(admin::post_venue))
        .routes(routes!(admin::post_event))
        .routes(routes!(admin::post_show))
        .routes(routes!(payments::post_forced_cancel))
        .routes(routes!(cancellation::post_cancel_show))
        .routes(routes!(cancellation::get_cancellation))
        .routes(routes!(presale::post_access_codes))
        .routes(routes!(staff::post_staff))
        .routes(routes!(staff::get_entry))
}

/// Health, readiness, metrics and the OpenAPI document.
fn operations_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text))
        .routes(routes!(get_openapi))
}

/// The origin's OpenAPI document: every route it serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi::complete(
        fan_routes()
            .merge(organizer_routes())
            .merge(operations_routes())
            .into_openapi(),
    )
}

/// Every route of the origin, with its body limits, admin guard, metrics and panic guard.
fn router(state: AppState) -> Router {
    let config = &state.config.http;
    let fans = fan_routes().layer(DefaultBodyLimit::max(config.body_limit_bytes));
    let organizer = organizer_routes()
        .layer(DefaultBodyLimit::max(config.admin_body_limit_bytes))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            admin::require_admin,
        ));
    let (router, _) = fans
        .merge(organizer)
        .merge(operations_routes())
        .split_for_parts();
    router
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(run_to_completion))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(|_| {
            problem_response(&Problem::new(Code::Internal, "Internal server error"))
        }))
        .with_state(state)
}

/// The name an origin listening on `addr` holds idempotency keys under: the machine's
/// hostname (`localhost` where it cannot be read) and the address.
pub fn instance_name(addr: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    format!("{host}:{addr}")
}

/// Whether the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Up.", body = String, content_type = "text/plain"))
)]
async fn healthz() -> &'static str {
    "ok"
}

onsale_contract::problems!(ReadinessProblems = [openapi::ANY]);

/// Whether the origin can serve: its database answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready.", body = String, content_type = "text/plain"),
        ReadinessProblems,
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    sqlx::query_scalar!(r#"SELECT 1 AS "ready!""#)
        .fetch_one(&state.pool)
        .await?;
    Ok("ready")
}

/// The origin's metrics, in Prometheus' text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((
        status = 200,
        description = "Every metric of the origin.",
        body = String,
        content_type = "text/plain; version=0.0.4",
    ))
)]
async fn metrics_text(State(state): State<AppState>) -> Response {
    let pool = &state.pool;
    let idle = pool.num_idle() as i64;
    let gauge = &state.metrics.db_pool;
    gauge.with_label_values(&["idle"]).set(idle);
    gauge
        .with_label_values(&["in_use"])
        .set(i64::from(pool.size()) - idle);
    gauge
        .with_label_values(&["max"])
        .set(i64::from(state.config.database.max_connections));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(onsale_contract::metrics::CONTENT_TYPE),
        )],
        onsale_contract::metrics::render(&state.metrics.registry),
    )
        .into_response()
}

/// This document: every route of the origin, its parameters, bodies, answers and problem
/// codes.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object))
)]
async fn get_openapi() -> Response {
    static DOCUMENT: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        serde_json::to_vec(&openapi())
            .expect("an OpenAPI document always serializes")
            .into()
    });
    ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response()
}

async fn route_not_found() -> Response {
    problem_response(&Problem::new(Code::RouteNotFound, "No such route"))
}

async fn method_not_allowed() -> Response {
    problem_response(&Problem::new(Code::MethodNotAllowed, "Method not allowed"))
}

/// Counts and times every request by its route template, never by raw path, so ids do not
/// explode the label space.
/// A write runs to its end even when its caller hangs up (an edge timing out on a stalled
/// database, a fan's connection lost): dropped halfway, it would leave its idempotency key
/// in flight until `idempotency.in_flight_timeout_s`, where finishing stores the answer that
/// the caller's retry then replays.
async fn run_to_completion(request: Request, next: Next) -> Response {
    if request.method().is_safe() {
        return next.run(request).await;
    }
    // The task keeps the request's span, so its logs still name the request.
    match tokio::spawn(tracing::Instrument::in_current_span(next.run(request))).await {
        Ok(response) => response,
        // A panic stays a panic, for the panic guard outside.
        Err(failed) => std::panic::resume_unwind(failed.into_panic()),
    }
}

async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .http_duration
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .with_label_values(&[&route, method.as_str(), response.status().as_str()])
        .inc();
    response
}

/// A running origin. Dropping it does not stop it; call [`RunningOrigin::shutdown`].
pub struct RunningOrigin {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    tasks: Tasks,
    /// The origin's shared state, for tests that reach past HTTP.
    pub state: AppState,
}

impl RunningOrigin {
    /// The address the origin listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, drains in-flight requests, stops every background task, and waits
    /// for all of it to finish.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        let served = self
            .task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        self.tasks.shutdown().await;
        served
    }

    /// Stops listening and stops every background task where it stands, as a crash would:
    /// a transaction in flight rolls back, nothing is drained or released.
    pub async fn crash(self) {
        self.task.abort();
        self.tasks.abort().await;
    }

    /// Resolves when the server has stopped on its own (it does not, short of an I/O error).
    pub async fn wait(&mut self) -> std::io::Result<()> {
        (&mut self.task)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Connects to the database, migrates it when configured to, and starts serving.
pub async fn start(config: Config) -> Result<RunningOrigin, StartError> {
    start_on_clock(config, Clock::system()).await
}

/// [`start`], with the time rotating QR codes are checked against read from `clock`.
pub async fn start_on_clock(config: Config, clock: Clock) -> Result<RunningOrigin, StartError> {
    let pool = db::connect(&config.database).await?;
    if config.database.migrate_on_start {
        let mut conn = pool.acquire().await?;
        db::migrate(&mut conn, db::wants_sandbox(&config)).await?;
    }
    let addr = config.http.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    let metrics = Arc::new(Metrics::new());
    let tokens = &config.tokens;
    let counters = onsale_contract::tokens::CacheCounters::register(&metrics.registry);
    let cache = |typ| -> Result<_, StartError> {
        let verifier = onsale_contract::tokens::Verifier::from_files(
            &tokens.verify_keys,
            &tokens.issuer,
            tokens.leeway_s,
        )?;
        Ok(Arc::new(onsale_contract::tokens::VerifiedCache::new(
            verifier,
            typ,
            tokens.cache_entries,
            &counters,
        )))
    };
    let admit_tokens = cache(onsale_contract::tokens::TokenType::Admit)?;
    let passwords = Arc::new(
        accounts::passwords::Passwords::new(&config.accounts, metrics.password_hashes.clone())
            .await?,
    );
    let tickets = Arc::new(tickets::TicketSigner::from_files(
        &config.tickets.signing_key,
        &config.tickets.previous_keys,
    )?);
    let payments = &config.payments;
    let sandbox = match (payments.provider, &payments.sandbox) {
        (ProviderKind::Sandbox, Some(settings)) => Arc::new(provider::sandbox::Sandbox::new(
            pool.clone(),
            settings.clone(),
            payments.webhook_secret.expose().as_bytes(),
            payments.webhook_tolerance_s,
        )),
        (ProviderKind::Sandbox, None) => return Err(StartError::SandboxUnconfigured),
    };
    let webhook_url = payments
        .sandbox
        .as_ref()
        .and_then(|settings| settings.webhook_url.clone())
        .unwrap_or_else(|| format!("http://{addr}/v1/webhooks/payments"));
    let instance: Arc<str> = instance_name(addr).into();
    let released = idempotency::release_claims_of(&pool, &instance)
        .await
        .map_err(StartError::Database)?;
    if released > 0 {
        tracing::warn!(
            released,
            "released idempotency keys a previous run left in flight"
        );
    }
    let state = AppState {
        clock,
        instance,
        pool,
        config: Arc::new(config),
        metrics,
        tokens: admit_tokens,
        passwords,
        tickets,
        provider: sandbox.clone(),
        workers: Arc::default(),
    };
    let app = router(state.clone());
    let tasks = spawn_workers(&state, sandbox, webhook_url);
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        // The peer address is the client's for throttling when no edge set X-Forwarded-For.
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await
    });
    tracing::info!(%addr, tasks = ?tasks.names(), "origin listening");
    Ok(RunningOrigin {
        addr,
        stop,
        task,
        tasks,
        state,
    })
}

/// Every background worker of the origin, named and supervised: a panic is logged, counted
/// (`onsale_origin_task_restarts_total`) and the worker restarted; shutdown stops them all.
fn spawn_workers(
    state: &AppState,
    sandbox: Arc<provider::sandbox::Sandbox>,
    webhook_url: String,
) -> Tasks {
    let mut tasks = Tasks::new(&state.metrics.registry);
    let config = &state.config;
    let holds = &config.holds;
    let (interval, batch) = (
        Duration::from_millis(holds.sweep_interval_ms),
        holds.sweep_batch,
    );
    let (pool, metrics) = (state.pool.clone(), state.metrics.clone());
    tasks.spawn("hold-sweeper", move |stop| {
        sweeper::run(pool.clone(), metrics.clone(), interval, batch, stop)
    });
    let (pool, ttl_h) = (state.pool.clone(), config.idempotency.ttl_h);
    tasks.spawn("idempotency-purge", move |stop| {
        idempotency::run_purge(pool.clone(), ttl_h, stop)
    });
    let (pool, window_s) = (state.pool.clone(), config.accounts.failure_window_s);
    tasks.spawn("accounts-purge", move |stop| {
        accounts::run_purge(pool.clone(), window_s, stop)
    });
    let metrics = state.metrics.clone();
    tasks.spawn("sandbox-webhooks", move |stop| {
        sandbox
            .clone()
            .run_deliveries(webhook_url.clone(), metrics.clone(), stop)
    });
    let worker_state = state.clone();
    tasks.spawn("refunds", move |stop| {
        refunds::run(worker_state.clone(), stop)
    });
    let worker_state = state.clone();
    tasks.spawn("show-cancellations", move |stop| {
        cancellation::run(worker_state.clone(), stop)
    });
    if config.waitlist.enabled {
        let worker_state = state.clone();
        tasks.spawn("waitlist-offers", move |stop| {
            waitlist::offers::run(worker_state.clone(), stop)
        });
    }
    let worker_state = state.clone();
    tasks.spawn("reconciliation", move |stop| {
        reconcile::run(worker_state.clone(), stop)
    });
    let notifications = &config.notifications;
    if notifications.relay {
        let (pool, settings, metrics) = (
            state.pool.clone(),
            notifications.clone(),
            state.metrics.clone(),
        );
        tasks.spawn("outbox-relay", move |stop| {
            outbox::run_relay(pool.clone(), settings.clone(), metrics.clone(), stop)
        });
    }
    if notifications.consumer {
        let sink = Arc::new(outbox::JsonLinesSink::new(notifications.sink_path.clone()));
        let consumer = Arc::new(outbox::Consumer::new(
            notifications.clone(),
            sink,
            state.metrics.clone(),
        ));
        tasks.spawn("notification-consumer", move |stop| {
            consumer.clone().run(stop)
        });
    }
    tasks
}
