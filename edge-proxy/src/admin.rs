//! The operations listener: `/healthz` (the process answers), `/readyz` (an origin accepts
//! connections, so proxied routes can work), `/metrics`.

use crate::config::OriginConfig;
use crate::metrics::Metrics;
use async_trait::async_trait;
use http::{Response, StatusCode};
use onsale_contract::problem::{self, Problem};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;
use std::time::Duration;

pub struct AdminApp {
    pub origin: OriginConfig,
    pub metrics: Arc<Metrics>,
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .expect("static response parts are valid")
}

fn problem_reply(problem: &Problem) -> Response<Vec<u8>> {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply(status, problem::CONTENT_TYPE, problem.to_json())
}

impl AdminApp {
    async fn any_origin_accepts(&self) -> bool {
        for addr in &self.origin.upstreams {
            let connect = tokio::net::TcpStream::connect(addr);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(250), connect).await {
                return true;
            }
        }
        false
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/healthz" => reply(StatusCode::OK, "text/plain", b"ok".to_vec()),
            "/readyz" if self.any_origin_accepts().await => {
                reply(StatusCode::OK, "text/plain", b"ready".to_vec())
            }
            "/readyz" => problem_reply(
                &Problem::new(503, "not_ready", "Not ready")
                    .with_detail("no origin accepts connections"),
            ),
            "/metrics" => reply(
                StatusCode::OK,
                onsale_contract::metrics::CONTENT_TYPE,
                onsale_contract::metrics::render(&self.metrics.registry).into_bytes(),
            ),
            _ => problem_reply(&Problem::new(404, "route_not_found", "No such route")),
        }
    }
}
