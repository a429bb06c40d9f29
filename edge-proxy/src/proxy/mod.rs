//! The public listener: classify, limit, answer locally what the edge owns (snapshots,
//! cached catalog reads, the waiting room, refusals), gate the purchase path, proxy the rest
//! to the pool.
//!
//! This file is the Pingora side, one method per phase of a request; what a request is
//! allowed is decided in `decide` (checks every request passes) and `gate` (admission), and
//! what the edge answers itself is written by `local` (snapshots, the catalog cache) and
//! `room` (the waiting room's routes).

mod decide;
mod gate;
mod local;
pub(crate) mod room;

pub(crate) use decide::{header_bytes, refused_by_limit};
pub(crate) use room::{join, poll, MAX_JOIN_BODY};

use crate::live::Runtime;
use crate::metrics::Metrics;
use crate::microcache::{Capture, MicroCache};
use crate::problem::{self, Code};
use crate::routes::{Route, RouteClass};
use crate::{respond, Shared};
use async_trait::async_trait;
use bytes::Bytes;
use decide::Decision;
use http::header;
use onsale_contract::problem::Problem;
use onsale_contract::tokens::{self, Claims};
use pingora::lb::Backend;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether the fan reached the edge over HTTPS: this edge's TLS listener, or a terminator
/// in front of it (`listen.https_in_front`).
pub(crate) fn over_https(session: &Session, runtime: &Runtime) -> bool {
    runtime.config.listen.https_in_front
        || session
            .digest()
            .is_some_and(|digest| digest.ssl_digest.is_some())
}

/// The edge's `ProxyHttp`.
pub(crate) struct EdgeProxy {
    pub(crate) shared: Arc<Shared>,
}

/// What the edge knows about one request as it moves through the phases.
pub(crate) struct RequestCtx {
    route: Route,
    started: Instant,
    /// The configuration version this request runs under, loaded once when it arrives.
    runtime: Arc<Runtime>,
    /// The client the limits and `X-Forwarded-For` go by, once decided.
    client: Option<IpAddr>,
    /// Origins tried so far for this request.
    tried: Vec<Backend>,
    /// Whether a failure after sending may be retried on another origin.
    replayable: bool,
    body_bytes: usize,
    /// The micro-cache key of a catalog read that missed.
    cache_key: Option<String>,
    capture: Option<Capture>,
    /// The admission behind a purchase-path request, once the gate let it through.
    admission: Option<Arc<Claims>>,
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    /// A fresh context holding the running configuration, so every phase of the request
    /// sees one version even if a reload lands meanwhile.
    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            route: Route::UNKNOWN,
            started: Instant::now(),
            runtime: self.shared.live.load(),
            client: None,
            tried: Vec::new(),
            replayable: false,
            body_bytes: 0,
            cache_key: None,
            capture: None,
            admission: None,
        }
    }

    /// Decides the request before any I/O upstream (see `decide`): refuses what is not in
    /// the public contract or over a limit (431, 404, 405, 429, 413), answers snapshots,
    /// fresh catalog reads and the waiting room itself, and lets the purchase path and
    /// ticket routes through only with a valid token (401, 403). `Ok(true)`: answered here.
    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        match self.decide(session, ctx).await {
            Decision::Proxy => Ok(false),
            Decision::Served => Ok(true),
            Decision::Refuse(problem) => {
                respond::problem(session, &problem).await?;
                Ok(true)
            }
        }
    }

    /// Counts the body as it streams: a body over `limits.max_body_bytes` (one that
    /// declared no length, or lied about it) fails with 413.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        ctx.body_bytes += body.as_ref().map_or(0, Bytes::len);
        if ctx.body_bytes > ctx.runtime.config.limits.max_body_bytes {
            return Err(Error::explain(
                ErrorType::HTTPStatus(413),
                "request body too large",
            ));
        }
        Ok(())
    }

    /// Picks a healthy origin this request has not tried yet, round-robin, with the
    /// configured timeouts; none left fails with 503 `no_healthy_origin`.
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
        let origin = &ctx.runtime.config.origin;
        let mut peer = HttpPeer::new(backend.addr.clone(), false, String::new());
        peer.options.connection_timeout = Some(Duration::from_millis(origin.connect_timeout_ms));
        peer.options.read_timeout = Some(Duration::from_millis(origin.read_timeout_ms));
        peer.options.idle_timeout = Some(Duration::from_secs(origin.idle_timeout_s));
        ctx.tried.push(backend);
        Ok(Box::new(peer))
    }

    /// Strips client-sent `x-onsale-*` headers (the origin trusts those from the edge
    /// only), sets `X-Forwarded-For` to the client the edge decided on and
    /// `X-Forwarded-Proto` to how the fan reached the edge.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let is_internal = |name: &header::HeaderName| name.as_str().starts_with("x-onsale-");
        while let Some(name) = upstream_request.headers.keys().find(|n| is_internal(n)) {
            let name = name.clone();
            upstream_request.remove_header(&name);
        }
        if let Some(client) = ctx.client {
            upstream_request.insert_header("x-forwarded-for", client.to_string())?;
        }
        let proto = match over_https(session, &ctx.runtime) {
            true => "https",
            false => "http",
        };
        upstream_request.insert_header("x-forwarded-proto", proto)?;
        Ok(())
    }

    /// Nothing was sent: any request may go to another origin, once.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
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

    /// The origin failed mid-request: retried once elsewhere only when replaying cannot
    /// apply an effect twice (an idempotent method, or an `Idempotency-Key`) and the body
    /// is still buffered.
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

    /// Starts capturing a catalog answer for the micro-cache, and when the origin says
    /// the fan's order is confirmed (`onsale-admission-spent`, stripped here) spends the
    /// fan's admission: refused here at once, at every node after its next step, and its
    /// session ended, freeing its place for the next fan.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let Some(key) = ctx.cache_key.take() {
            ctx.capture = MicroCache::capture(key, upstream_response);
        }
        let spent = upstream_response
            .remove_header(tokens::ADMISSION_SPENT_HEADER)
            .is_some();
        if let (true, Some(claims)) = (spent, ctx.admission.take()) {
            self.shared.waiting_room.spend(&claims);
            let shared = self.shared.clone();
            let prefix = ctx.runtime.config.redis.key_prefix.clone();
            let now_ms = shared.clock.now_ms();
            tokio::spawn(async move {
                let room = &shared.waiting_room;
                room.record_spent(&prefix, &claims, now_ms).await
            });
        }
        Ok(())
    }

    /// Feeds a captured catalog answer to the micro-cache as it streams; an answer too
    /// large to keep is let go.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Option<Duration>> {
        let Some(mut capture) = ctx.capture.take() else {
            return Ok(None);
        };
        if !MicroCache::append(&mut capture, body.as_deref().unwrap_or_default()) {
            return Ok(None);
        }
        if end_of_stream {
            let origin = &ctx.runtime.config.origin;
            self.shared.catalog_cache.store(
                capture,
                self.shared.clock.now_ms(),
                origin.catalog_cache_ms,
                origin.catalog_cache_entries,
            );
        } else {
            ctx.capture = Some(capture);
        }
        Ok(None)
    }

    /// Answers a request that could not be proxied with problem+json: 413
    /// `body_too_large`, 503 `no_healthy_origin` when no origin could be reached, else 502
    /// `upstream_failed`.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let problem = match e.etype() {
            ErrorType::HTTPStatus(413) => {
                problem::body_too_large(ctx.runtime.config.limits.max_body_bytes)
            }
            ErrorType::HTTPStatus(503)
            | ErrorType::ConnectTimedout
            | ErrorType::ConnectRefused
            | ErrorType::ConnectError => problem::no_origin(),
            _ => Problem::new(Code::UpstreamFailed, "Bad gateway")
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

    /// Counts the request and writes its access log line (see [`Access`]).
    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        let header = session.req_header();
        Access {
            method: header.method.as_str(),
            path: header.uri.path(),
            class: ctx.route.class,
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            started: ctx.started,
            client: ctx.client,
            upstream: ctx.tried.last(),
            error,
        }
        .record(&self.shared.metrics);
    }
}

/// One finished request, as it is counted and logged.
pub(crate) struct Access<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) class: RouteClass,
    /// 0 when no response was written.
    pub(crate) status: u16,
    pub(crate) started: Instant,
    pub(crate) client: Option<IpAddr>,
    pub(crate) upstream: Option<&'a Backend>,
    pub(crate) error: Option<&'a Error>,
}

impl Access<'_> {
    /// Counts the request by route class and status, with its latency, and writes the
    /// access log line: the path only, no query string or headers, so no tokens.
    pub(crate) fn record(self, metrics: &Metrics) {
        let elapsed = self.started.elapsed();
        metrics.record(self.class, self.status, elapsed);
        tracing::info!(
            target: "edge::access",
            method = self.method,
            path = self.path,
            status = self.status,
            class = self.class.label(),
            micros = elapsed.as_micros() as u64,
            client = ?self.client,
            upstream = ?self.upstream.map(|b| b.addr.to_string()),
            error = self.error.map(|e| e.to_string()),
        );
    }
}
