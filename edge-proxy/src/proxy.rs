//! The public listener: classify, limit, answer locally what the edge owns (snapshots,
//! cached catalog reads, refusals), gate the purchase path, proxy the rest to the pool.

use crate::limits::{client_ip, Limited};
use crate::live::Runtime;
use crate::microcache::{Capture, MicroCache};
use crate::problem::{self, Code};
use crate::routes::{classify, is_id, Room, Route, RouteClass};
use crate::waiting_room::{JoinRequest, Reply};
use crate::{respond, snapshots, Shared};
use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Method};
use onsale_contract::problem::Problem;
use onsale_contract::snapshot::Kind;
use onsale_contract::tokens::{self, Claims, TokenType, WAITING_ROOM_PATH};
use pingora::lb::Backend;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType};
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct EdgeProxy {
    pub shared: Arc<Shared>,
}

pub struct RequestCtx {
    route: Route,
    started: Instant,
    runtime: Option<Arc<Runtime>>,
    client: Option<IpAddr>,
    /// Origins tried so far for this request.
    tried: Vec<Backend>,
    /// Whether a failure after sending may be retried on another origin.
    replayable: bool,
    body_bytes: usize,
    cache_key: Option<String>,
    capture: Option<Capture>,
    /// The admission behind a purchase-path request, once the gate let it through.
    admission: Option<Arc<Claims>>,
}

impl RequestCtx {
    /// The configuration version this request runs under, loaded in `request_filter`.
    fn runtime(&self) -> &Runtime {
        self.runtime.as_deref().expect("set in request_filter")
    }
}

/// What the edge does with a request after looking at it.
enum Decision {
    Proxy,
    /// Answered locally already.
    Served,
    Refuse(Problem),
}

impl From<Problem> for Decision {
    fn from(problem: Problem) -> Self {
        Decision::Refuse(problem)
    }
}

/// Longest join body read: `{"show_id", "pow"}` fits in far less.
const MAX_JOIN_BODY: usize = 2048;

async fn join_request(session: &mut Session) -> Result<JoinRequest, Box<Problem>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_JOIN_BODY {
                    return Err(problem::body_too_large(MAX_JOIN_BODY).into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => {
                return Err(problem::invalid_body("the request body could not be read").into())
            }
        }
    }
    let request: JoinRequest = serde_json::from_slice(&body)
        .map_err(|e| problem::invalid_body(format!("expected {{\"show_id\": \"...\"}}: {e}")))?;
    if !is_id(&request.show_id) {
        return Err(problem::invalid_body("show_id must be 1-64 URL-safe characters").into());
    }
    if let Some(pow) = &request.pow {
        if pow.challenge.len() > 256 || pow.solution.len() > 64 {
            return Err(problem::invalid_body("pow.challenge or pow.solution is too long").into());
        }
    }
    Ok(request)
}

/// `show_id` from a query string, if present; `Err` if it cannot be an id.
fn show_param(query: Option<&str>) -> Result<Option<&str>, ()> {
    let Some(value) = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("show_id="))
    else {
        return Ok(None);
    };
    match is_id(value) {
        true => Ok(Some(value)),
        false => Err(()),
    }
}

/// Writes a waiting-room answer; the request is served whether or not the client stayed.
async fn write<B: Serialize>(session: &mut Session, reply: Reply<B>) -> Decision {
    if let Err(error) = respond::json(session, reply.status, &reply.body, reply.cookies).await {
        tracing::debug!(%error, "client went away");
    }
    Decision::Served
}

fn header_bytes(session: &Session) -> usize {
    let header = session.req_header();
    let fields: usize = header
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    fields + header.uri.path_and_query().map_or(0, |p| p.as_str().len())
}

impl EdgeProxy {
    /// A 429 for `limited`, counted by the limit that refused.
    fn limited(&self, limited: Limited) -> Decision {
        self.shared
            .metrics
            .rate_limited
            .with_label_values(&[limited.limiter])
            .inc();
        problem::rate_limited(limited).into()
    }

    async fn decide(&self, session: &mut Session, ctx: &mut RequestCtx) -> Decision {
        let runtime = ctx.runtime.clone().expect("set in request_filter");
        let limits = &runtime.config.limits;
        if header_bytes(session) > limits.max_header_bytes {
            return Problem::new(431, Code::HeadersTooLarge, "Request headers too large")
                .with_detail(format!(
                    "headers are limited to {} bytes",
                    limits.max_header_bytes
                ))
                .into();
        }
        let header = session.req_header();
        ctx.route = classify(&header.method, header.uri.path());
        match &ctx.route {
            Route {
                class: RouteClass::Unknown,
                ..
            } => return problem::route_not_found().into(),
            Route {
                method_allowed: false,
                ..
            } => return problem::method_not_allowed().into(),
            _ => {}
        }
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        let forwarded = header
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let client = client_ip(peer, forwarded, &limits.trusted_proxies);
        ctx.client = Some(client);
        if let Err(limited) = runtime.limits.check_request(client, ctx.route.class) {
            return self.limited(limited);
        }
        let declared = header
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limits.max_body_bytes) {
            return problem::body_too_large(limits.max_body_bytes).into();
        }
        ctx.replayable =
            header.method.is_idempotent() || header.headers.contains_key("idempotency-key");
        if ctx.replayable {
            session.enable_retry_buffering();
        }
        match ctx.route.class {
            RouteClass::SeatMap(kind) => self.snapshot(session, ctx, kind).await,
            RouteClass::Catalog => self.catalog(session, ctx, &runtime).await,
            RouteClass::Purchase => self.gate(session, ctx, &runtime),
            RouteClass::WaitingRoom(room) => {
                self.waiting_room(session, client, room, &runtime).await
            }
            RouteClass::Ticket => self.ticket_gate(session, ctx, &runtime),
            RouteClass::Partner => Decision::Proxy,
            RouteClass::Unknown => unreachable!("refused above"),
        }
    }

    /// Seat map or availability from memory.
    async fn snapshot(&self, session: &mut Session, ctx: &mut RequestCtx, kind: Kind) -> Decision {
        let shared = &self.shared;
        let header = session.req_header();
        let show = ctx.route.show(header.uri.path()).unwrap_or_default();
        let now_ms = shared.clock.now_ms();
        if let Some(snapshot) = shared.snapshots.get(show, kind) {
            return match snapshots::respond(&snapshot, session.req_header(), now_ms) {
                Ok((header, body)) => {
                    if let Err(error) = respond::body(session, header, body).await {
                        tracing::debug!(%error, "client went away");
                    }
                    Decision::Served
                }
                Err(error) => {
                    tracing::error!(%error, "cannot build a snapshot response");
                    problem::internal().into()
                }
            };
        }
        let show = show.to_owned();
        let origin = shared
            .pool
            .select(b"", 256)
            .and_then(|b| b.addr.as_inet().copied());
        match shared.shows.exists(&show, origin, now_ms).await {
            Some(false) => problem::show_not_found("there is no show with this id").into(),
            _ => {
                let retry = ctx.runtime().config.snapshots.retry_after_s;
                Problem::new(503, Code::SnapshotNotReady, "Seat map not ready")
                    .with_detail("the first snapshot of this show is still being built")
                    .with("retry_after_s", retry)
                    .into()
            }
        }
    }

    /// A fresh micro-cached answer, or marks the request for capture.
    async fn catalog(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        runtime: &Runtime,
    ) -> Decision {
        let origin = &runtime.config.origin;
        if origin.catalog_cache_ms == 0 {
            return Decision::Proxy;
        }
        let key = session
            .req_header()
            .uri
            .path_and_query()
            .map_or_else(String::new, |p| p.as_str().to_owned());
        let now_ms = self.shared.clock.now_ms();
        let metrics = &self.shared.metrics;
        let Some(cached) = self
            .shared
            .catalog_cache
            .fresh(&key, now_ms, origin.catalog_cache_ms)
        else {
            metrics.catalog_cache.with_label_values(&["miss"]).inc();
            if session.req_header().method == Method::GET {
                ctx.cache_key = Some(key);
            }
            return Decision::Proxy;
        };
        metrics.catalog_cache.with_label_values(&["hit"]).inc();
        let mut header = cached.header.clone();
        let age = ((now_ms - cached.stored_ms).max(0) / 1000).to_string();
        if header.insert_header(header::AGE, age).is_err() {
            return Decision::Proxy;
        }
        if let Err(error) = respond::body(session, header, cached.body.clone()).await {
            tracing::debug!(%error, "client went away");
        }
        Decision::Served
    }

    /// The admission gate: a valid admission token for the show in the path, within the
    /// fan's purchase rate.
    fn gate(&self, session: &Session, ctx: &mut RequestCtx, runtime: &Runtime) -> Decision {
        let header = session.req_header();
        let show = ctx.route.show(header.uri.path());
        let Some(token) = tokens::presented(&header.headers, tokens::ADMIT_COOKIE) else {
            return problem::admission_required("no admission token", show).into();
        };
        let claims = match runtime.tokens.verify(token, self.shared.clock.now_s()) {
            Ok(claims) => claims,
            Err(error) => {
                return problem::admission_required(error.fan_detail(TokenType::Admit), show).into()
            }
        };
        if show.is_some_and(|s| s != claims.show) {
            return Problem::new(403, Code::WrongShow, "Admission is for another show")
                .with_detail("join the waiting room of this show")
                .with("join", WAITING_ROOM_PATH)
                .with("show_id", show.unwrap_or_default())
                .into();
        }
        if let Err(limited) = runtime.limits.check_fan(&claims.sub, &claims.show) {
            return self.limited(limited);
        }
        ctx.admission = Some(claims);
        Decision::Proxy
    }

    /// A ticket's owner: an admission token, else the queue token of the same join (the
    /// origin checks that the ticket is theirs).
    fn ticket_gate(&self, session: &Session, ctx: &mut RequestCtx, runtime: &Runtime) -> Decision {
        let headers = &session.req_header().headers;
        let now_s = self.shared.clock.now_s();
        let admitted = tokens::presented(headers, tokens::ADMIT_COOKIE)
            .and_then(|token| runtime.tokens.verify(token, now_s).ok());
        let queued = || {
            tokens::presented(headers, tokens::QUEUE_COOKIE)
                .and_then(|token| runtime.queue_tokens.verify(token, now_s).ok())
        };
        let Some(claims) = admitted.or_else(queued) else {
            return problem::admission_required("an admission or queue token is required", None)
                .into();
        };
        if let Err(limited) = runtime.limits.check_fan(&claims.sub, &claims.show) {
            return self.limited(limited);
        }
        ctx.admission = Some(claims);
        Decision::Proxy
    }

    /// Joins, polls and challenges, answered from this node's view of the queue; a join
    /// also spends the client's join rate (429).
    async fn waiting_room(
        &self,
        session: &mut Session,
        client: IpAddr,
        room: Room,
        runtime: &Runtime,
    ) -> Decision {
        let now_ms = self.shared.clock.now_ms();
        let header = session.req_header();
        let Ok(show_param) = show_param(header.uri.query()) else {
            return problem::invalid_query("show_id must be 1-64 URL-safe characters").into();
        };
        let show_param = show_param.map(str::to_owned);
        let presented = tokens::presented(&header.headers, tokens::QUEUE_COOKIE).map(str::to_owned);
        let wr = &self.shared.waiting_room;
        let refusal = match room {
            Room::Challenge => match wr.challenge(runtime, show_param.as_deref(), now_ms) {
                Ok(reply) => return write(session, reply).await,
                Err(refusal) => refusal,
            },
            Room::Poll => {
                let polled = wr
                    .poll(runtime, presented.as_deref(), show_param.as_deref(), now_ms)
                    .await;
                match polled {
                    Ok(reply) => return write(session, reply).await,
                    Err(refusal) => refusal,
                }
            }
            Room::Join => {
                if let Err(limited) = runtime.limits.check_join(client) {
                    return self.limited(limited);
                }
                let request = match join_request(session).await {
                    Ok(request) => request,
                    Err(problem) => return (*problem).into(),
                };
                match wr
                    .join(runtime, request, presented.as_deref(), now_ms)
                    .await
                {
                    Ok(reply) => return write(session, reply).await,
                    Err(refusal) => refusal,
                }
            }
        };
        Problem::from(&refusal).into()
    }
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            route: Route::UNKNOWN,
            started: Instant::now(),
            runtime: None,
            client: None,
            tried: Vec::new(),
            replayable: false,
            body_bytes: 0,
            cache_key: None,
            capture: None,
            admission: None,
        }
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        ctx.runtime = Some(self.shared.live.load());
        match self.decide(session, ctx).await {
            Decision::Proxy => Ok(false),
            Decision::Served => Ok(true),
            Decision::Refuse(problem) => {
                respond::problem(session, &problem).await?;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        ctx.body_bytes += body.as_ref().map_or(0, Bytes::len);
        let max = ctx
            .runtime
            .as_ref()
            .map_or(usize::MAX, |r| r.config.limits.max_body_bytes);
        if ctx.body_bytes > max {
            return Err(Error::explain(
                ErrorType::HTTPStatus(413),
                "request body too large",
            ));
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let tried = &ctx.tried;
        let backend = self
            .shared
            .pool
            .select_with(b"", 256, |b, healthy| healthy && !tried.contains(b))
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(503), "no healthy origin"))?;
        let origin = &ctx.runtime().config.origin;
        let mut peer = HttpPeer::new(backend.addr.clone(), false, String::new());
        peer.options.connection_timeout = Some(Duration::from_millis(origin.connect_timeout_ms));
        peer.options.read_timeout = Some(Duration::from_millis(origin.read_timeout_ms));
        peer.options.idle_timeout = Some(Duration::from_secs(origin.idle_timeout_s));
        ctx.tried.push(backend);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        // Headers the origin trusts come from the edge only.
        let is_internal = |name: &header::HeaderName| name.as_str().starts_with("x-onsale-");
        while let Some(name) = upstream_request.headers.keys().find(|n| is_internal(n)) {
            let name = name.clone();
            upstream_request.remove_header(&name);
        }
        if let Some(client) = ctx.client {
            upstream_request.insert_header("x-forwarded-for", client.to_string())?;
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing was sent: any request may go to another origin, once.
        if ctx.tried.len() < 2 {
            self.shared
                .metrics
                .retries
                .with_label_values(&["connect"])
                .inc();
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("origin {peer}"));
        let retry =
            ctx.replayable && ctx.tried.len() < 2 && !session.as_ref().retry_buffer_truncated();
        if retry {
            self.shared
                .metrics
                .retries
                .with_label_values(&["proxy"])
                .inc();
        }
        e.set_retry(retry);
        e
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let Some(key) = ctx.cache_key.take() {
            ctx.capture = MicroCache::capture(key, upstream_response);
        }
        // A confirmed order ends the fan's admission, freeing its place for the next fan.
        let spent = upstream_response
            .remove_header(tokens::ADMISSION_SPENT_HEADER)
            .is_some();
        if let (true, Some(claims)) = (spent, ctx.admission.take()) {
            let shared = self.shared.clone();
            let prefix = ctx.runtime().config.redis.key_prefix.clone();
            tokio::spawn(async move { shared.waiting_room.end_session(&prefix, &claims).await });
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Option<Duration>> {
        if let Some(capture) = ctx.capture.as_mut() {
            if !MicroCache::append(capture, body.as_deref().unwrap_or_default()) {
                ctx.capture = None;
            } else if end_of_stream {
                let capture = ctx.capture.take().expect("checked above");
                let origin = &ctx.runtime().config.origin;
                self.shared.catalog_cache.store(
                    capture,
                    self.shared.clock.now_ms(),
                    origin.catalog_cache_ms,
                    origin.catalog_cache_entries,
                );
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let problem = match e.etype() {
            ErrorType::HTTPStatus(413) => problem::body_too_large(
                ctx.runtime
                    .as_ref()
                    .map_or(0, |r| r.config.limits.max_body_bytes),
            ),
            ErrorType::HTTPStatus(503)
            | ErrorType::ConnectTimedout
            | ErrorType::ConnectRefused
            | ErrorType::ConnectError => problem::no_origin(),
            _ => Problem::new(502, Code::UpstreamFailed, "Bad gateway")
                .with_detail("the origin did not answer properly"),
        };
        let status = problem.status;
        if let Err(error) = respond::problem(session, &problem).await {
            tracing::debug!(%error, "could not write the error response");
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let class = ctx.route.class.label();
        let elapsed = ctx.started.elapsed();
        self.shared.metrics.record(ctx.route.class, status, elapsed);
        // The path only: no query string, no headers, so no tokens in the log.
        let header = session.req_header();
        tracing::info!(
            target: "edge::access",
            method = %header.method,
            path = header.uri.path(),
            status,
            class,
            micros = elapsed.as_micros() as u64,
            client = ?ctx.client,
            upstream = ?ctx.tried.last().map(|b| b.addr.to_string()),
            error = error.map(|e| e.to_string()),
        );
    }
}
