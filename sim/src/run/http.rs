//! One request of one fan: a connection from the fan's own loopback address to the edge,
//! one HTTP/1.1 exchange, closed. A fan holds no connection between requests, so 100,000
//! queued fans cost the machine no sockets, and the edge's per-IP limits see each fan as
//! the client it would be.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, COOKIE, HOST, RETRY_AFTER};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpSocket;

/// A request with no answer after this long has failed.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// Answers larger than this are cut off as broken: the largest a run reads is a stadium's
/// seat map, 4.5 MB for 80,000 seats.
const MAX_ANSWER_BYTES: usize = 32 << 20;

/// The loopback address fan `index` sends from: 127.1.0.0 onwards, one per fan, up to
/// 16 million fans.
pub fn fan_address(index: u32) -> IpAddr {
    let n = index + (1 << 16);
    IpAddr::V4(Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8))
}

/// A request as a fan's client sends it.
pub struct Call<'a> {
    /// GET, POST, DELETE.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// `Authorization: Bearer`.
    pub bearer: Option<&'a str>,
    /// The session, as the `onsale_session` cookie.
    pub session_cookie: Option<&'a str>,
    /// `Idempotency-Key`.
    pub key: Option<&'a str>,
    /// A JSON body.
    pub body: Option<Value>,
}

impl<'a> Call<'a> {
    /// `method path` with nothing else.
    pub fn new(method: Method, path: impl Into<String>) -> Call<'a> {
        Call {
            method,
            path: path.into(),
            bearer: None,
            session_cookie: None,
            key: None,
            body: None,
        }
    }
}

/// What came back.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After`, in seconds.
    pub retry_after_s: Option<u64>,
    /// The body as JSON (`Null` when it is not).
    pub body: Value,
}

impl Answer {
    /// A problem's `code`, if the body has one.
    pub fn code(&self) -> Option<&str> {
        self.body["code"].as_str()
    }

    /// `417 code` or `417`: how errors are counted.
    pub fn label(&self) -> String {
        match self.code() {
            Some(code) => format!("{} {code}", self.status),
            None => self.status.to_string(),
        }
    }
}

/// No answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing listens.
    Refused,
    /// The connection broke before a whole answer came.
    Broken,
    /// No answer within [`TIMEOUT`].
    TimedOut,
}

impl Failure {
    /// How errors are counted.
    pub fn label(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Broken => "broken",
            Failure::TimedOut => "timed_out",
        }
    }
}

/// Sends `call` from `from` to the edge at `edge`.
pub async fn send(edge: SocketAddr, from: IpAddr, call: &Call<'_>) -> Result<Answer, Failure> {
    match tokio::time::timeout(TIMEOUT, exchange(edge, from, call)).await {
        Ok(answer) => answer,
        Err(_) => Err(Failure::TimedOut),
    }
}

async fn exchange(edge: SocketAddr, from: IpAddr, call: &Call<'_>) -> Result<Answer, Failure> {
    let socket = TcpSocket::new_v4().map_err(|_| Failure::Broken)?;
    socket
        .bind(SocketAddr::new(from, 0))
        .map_err(|_| Failure::Broken)?;
    let stream = socket.connect(edge).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Failure::Refused,
        _ => Failure::Broken,
    })?;
    stream.set_nodelay(true).map_err(|_| Failure::Broken)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::Broken)?;
    let connection = tokio::spawn(connection);

    let mut request = Request::builder()
        .method(call.method.clone())
        .uri(&call.path)
        .header(HOST, edge.to_string())
        .header(CONNECTION, "close");
    if let Some(bearer) = call.bearer {
        request = request.header(AUTHORIZATION, format!("Bearer {bearer}"));
    }
    if let Some(session) = call.session_cookie {
        request = request.header(
            COOKIE,
            format!("{}={session}", onsale_contract::tokens::SESSION_COOKIE),
        );
    }
    if let Some(key) = call.key {
        request = request.header("idempotency-key", key);
    }
    let body = match &call.body {
        Some(json) => {
            request = request.header(CONTENT_TYPE, "application/json");
            Bytes::from(json.to_string())
        }
        None => Bytes::new(),
    };
    let request = request.body(Full::new(body)).map_err(|_| Failure::Broken)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| Failure::Broken)?;
    let status = response.status().as_u16();
    let retry_after_s = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let limited = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES);
    let bytes = limited
        .collect()
        .await
        .map_err(|_| Failure::Broken)?
        .to_bytes();
    connection.abort();
    Ok(Answer {
        status,
        retry_after_s,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fan_has_its_own_loopback_address() {
        assert_eq!(fan_address(0).to_string(), "127.1.0.0");
        assert_eq!(fan_address(99_999).to_string(), "127.2.134.159");
        let addresses: std::collections::HashSet<IpAddr> = (0..100_000).map(fan_address).collect();
        assert_eq!(addresses.len(), 100_000);
        assert!(addresses.iter().all(IpAddr::is_loopback));
    }
}
