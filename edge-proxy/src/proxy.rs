//! The public listener: classify, answer locally what the edge owns, proxy the rest to the
//! origin pool.

use crate::config::OriginConfig;
use crate::metrics::Metrics;
use crate::respond;
use crate::routes::{classify, Route, RouteClass};
use async_trait::async_trait;
use onsale_contract::problem::Problem;
use pingora::lb::selection::RoundRobin;
use pingora::lb::LoadBalancer;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct EdgeProxy {
    pub upstreams: Arc<LoadBalancer<RoundRobin>>,
    pub origin: OriginConfig,
    pub metrics: Arc<Metrics>,
}

pub struct RequestCtx {
    route: Route,
    started: Instant,
}

fn no_origin() -> Problem {
    Problem::new(503, "no_healthy_origin", "Service unavailable")
        .with_detail("no origin is available right now; retry shortly")
        .with("retry_after_s", 2)
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            route: Route {
                class: RouteClass::Unknown,
                method_allowed: true,
            },
            started: Instant::now(),
        }
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let header = session.req_header();
        ctx.route = classify(&header.method, header.uri.path());
        let refusal = match ctx.route {
            Route {
                class: RouteClass::Unknown,
                ..
            } => Some(Problem::new(404, "route_not_found", "No such route")),
            Route {
                method_allowed: false,
                ..
            } => Some(Problem::new(
                405,
                "method_not_allowed",
                "Method not allowed",
            )),
            _ => None,
        };
        match refusal {
            Some(problem) => {
                respond::problem(session, &problem).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let backend = self
            .upstreams
            .select(b"", 256)
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(503), "no healthy origin"))?;
        let mut peer = HttpPeer::new(backend.addr, false, String::new());
        peer.options.connection_timeout =
            Some(Duration::from_millis(self.origin.connect_timeout_ms));
        peer.options.read_timeout = Some(Duration::from_millis(self.origin.read_timeout_ms));
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let problem = match e.etype() {
            ErrorType::HTTPStatus(503) => no_origin(),
            ErrorType::ConnectTimedout | ErrorType::ConnectRefused | ErrorType::ConnectError => {
                no_origin()
            }
            _ => Problem::new(502, "upstream_failed", "Bad gateway")
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
        self.metrics
            .requests
            .with_label_values(&[class, &status.to_string()])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[class])
            .observe(elapsed.as_secs_f64());
        let header = session.req_header();
        tracing::info!(
            target: "edge::access",
            method = %header.method,
            path = header.uri.path(),
            status,
            class,
            micros = elapsed.as_micros() as u64,
            client = ?session.client_addr().map(|a| a.to_string()),
            error = error.map(|e| e.to_string()),
        );
    }
}
