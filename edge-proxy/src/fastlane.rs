//! The fast lane: where the public listener's plain HTTP/1.1 connections start. The
//! requests an on-sale repeats most, a seat map or availability snapshot (and its 304), a
//! queue poll and a join, are answered straight off the connection. Every other request,
//! and any request with something unusual about it (a chunked or oversized body, an
//! upgrade, HTTP/1.0, an oversized or malformed head, a show without a snapshot yet), goes
//! to the proxy exactly as it arrived: the bytes read are put back on the stream first.
//! The connection comes back to the fast lane after the proxy's answer. HTTPS and HTTP/2
//! connections go to the proxy whole.
//!
//! The fast lane applies what the proxy would to the routes it answers (header size, the
//! client's address and its rate limits, the same answers, metrics and access log); it
//! skips only the machinery a proxied request needs: a session object per request,
//! downstream modules, the phases, the request and response header models.

use crate::config::LimitsConfig;
use crate::live::Runtime;
use crate::proxy::{self, Access, EdgeProxy};
use crate::routes::{classify, Room, Route, RouteClass};
use crate::{limits, problem, respond, snapshots, Shared};
use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as TcpStream;
use pingora::protocols::{GetSocketDigest, Stream};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Sleep;

/// How long an idle connection, or a request head still arriving, is waited for: Pingora's
/// own keep-alive default.
const KEEPALIVE: Duration = Duration::from_secs(60);

/// Most header fields a request the fast lane answers has; a request with more goes to the
/// proxy, whose limit is the one that counts.
const MAX_FIELDS: usize = 32;

/// Bytes read towards a head beyond the configured header limit (the request line) before
/// the request is given to the proxy to refuse.
const HEAD_SLACK: usize = 1024;

/// The public listener's application: the fast lane in front of the edge's proxy.
pub(crate) struct EdgeApp {
    proxy: Arc<HttpProxy<EdgeProxy>>,
    shared: Arc<Shared>,
}

impl EdgeApp {
    pub(crate) fn new(proxy: HttpProxy<EdgeProxy>, shared: Arc<Shared>) -> Self {
        EdgeApp {
            proxy: Arc::new(proxy),
            shared,
        }
    }
}

#[async_trait]
impl ServerApp for EdgeApp {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if !stream.as_any().is::<TcpStream>() {
            return ServerApp::process_new(&self.proxy, stream, shutdown).await;
        }
        let tcp = stream.into_any().downcast::<TcpStream>().ok()?;
        self.serve(tcp, shutdown).await;
        None
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

/// What became of the bytes at the head of the buffer.
enum Outcome {
    /// A request answered here; it was this many bytes.
    Answered { length: usize, close: bool },
    /// Not a whole request head yet.
    Incomplete,
    /// A request for the proxy.
    Proxy,
}

impl EdgeApp {
    /// One connection's requests, in turn, until it closes.
    async fn serve(self: &Arc<Self>, mut tcp: Box<TcpStream>, shutdown: &ShutdownWatch) {
        let peer = tcp
            .get_socket_digest()
            .and_then(|digest| digest.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut buf = BytesMut::with_capacity(4096);
        let mut out = Vec::with_capacity(4096);
        // Made once per connection: re-arming them per request would take the timer's and
        // the shutdown watch's locks on every request.
        let idle = std::pin::pin!(tokio::time::sleep(KEEPALIVE));
        let stopping = std::pin::pin!(stopping(shutdown));
        let mut waits = Waits { idle, stopping };
        loop {
            let runtime = self.shared.live.load();
            let outcome = match buf.is_empty() {
                true => Outcome::Incomplete,
                false => self.answer(&buf, peer, &runtime, &mut out, shutdown).await,
            };
            let largest =
                runtime.config.limits.max_header_bytes + HEAD_SLACK + proxy::MAX_JOIN_BODY;
            match outcome {
                Outcome::Answered { length, close } => {
                    let written = tcp.write_all(&out).await.and(tcp.flush().await);
                    out.clear();
                    buf.advance(length);
                    if written.is_err() || close {
                        return;
                    }
                }
                Outcome::Incomplete if buf.len() < largest => {
                    if !read_more(&mut tcp, &mut buf, &mut waits).await {
                        return;
                    }
                }
                Outcome::Incomplete | Outcome::Proxy => {
                    tcp.rewind(&buf);
                    buf.clear();
                    match self.proxy_one(tcp, shutdown).await {
                        Some(back) => tcp = back,
                        None => return,
                    }
                    // The proxy's answer may have taken a while: idle time starts now.
                    restart(&mut waits);
                }
            }
        }
    }

    /// Lets the proxy read and answer the next request on `tcp`; the connection back when
    /// it stays open.
    async fn proxy_one(
        self: &Arc<Self>,
        tcp: Box<TcpStream>,
        shutdown: &ShutdownWatch,
    ) -> Option<Box<TcpStream>> {
        let mut session = ServerSession::new_http1(tcp);
        session.set_keepalive((!*shutdown.borrow()).then_some(KEEPALIVE.as_secs()));
        let reused = self.proxy.process_new_http(session, shutdown).await?;
        let (stream, _) = reused.consume();
        stream.into_any().downcast::<TcpStream>().ok()
    }

    /// Answers the request at the start of `buf` into `out`, or leaves it to the proxy.
    async fn answer(
        &self,
        buf: &[u8],
        peer: IpAddr,
        runtime: &Runtime,
        out: &mut Vec<u8>,
        shutdown: &ShutdownWatch,
    ) -> Outcome {
        let started = Instant::now();
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut parsed = httparse::Request::new(&mut fields);
        let head = match parsed.parse(buf) {
            Ok(httparse::Status::Complete(head)) => head,
            Ok(httparse::Status::Partial) => return Outcome::Incomplete,
            Err(_) => return Outcome::Proxy,
        };
        let Some(request) = FastRequest::read(&parsed, head, &runtime.config.limits) else {
            return Outcome::Proxy;
        };
        let Some(body) = buf.get(head..head + request.body) else {
            return Outcome::Incomplete;
        };
        let shared = &self.shared;
        let (path, query) = split_target(request.target);
        let class = request.route.class;
        let snapshot = match class {
            RouteClass::SeatMap(kind) => {
                match shared
                    .snapshots
                    .get(request.route.show(path).unwrap_or_default(), kind)
                {
                    Some(snapshot) => Some(snapshot),
                    // Unknown shows and snapshots still being built are the proxy's (404, 503).
                    None => return Outcome::Proxy,
                }
            }
            _ => None,
        };
        let headers = &request.headers;
        let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let client = limits::client_ip(peer, forwarded, &runtime.config.limits.trusted_proxies);
        let room = match (runtime.limits.check_request(client, class), snapshot) {
            (Err(limited), _) => Err(proxy::refused_by_limit(&shared.metrics, limited)),
            (Ok(()), Some(snapshot)) => {
                let answer = snapshots::respond(&snapshot, headers, shared.clock.now_ms());
                return self.finish(answer, &request, client, started, out, shutdown);
            }
            (Ok(()), None) => match class {
                RouteClass::WaitingRoom(Room::Join) => {
                    proxy::join(shared, runtime, client, headers, body).await
                }
                _ => proxy::poll(shared, runtime, headers, query).await,
            },
        };
        let answer = match room {
            Ok(reply) => {
                let cookies = reply.cookie_headers(runtime.config.listen.https_in_front);
                respond::json_response(reply.status, &reply.body, cookies)
            }
            Err(problem) => respond::problem_response(&problem),
        };
        self.finish(answer, &request, client, started, out, shutdown)
    }

    /// Encodes `answer` into `out`, counts and logs the request.
    fn finish(
        &self,
        answer: pingora::Result<respond::Local>,
        request: &FastRequest<'_>,
        client: IpAddr,
        started: Instant,
        out: &mut Vec<u8>,
        shutdown: &ShutdownWatch,
    ) -> Outcome {
        let answer = answer.or_else(|error| {
            tracing::error!(%error, "cannot build a response");
            respond::problem_response(&problem::internal())
        });
        // The request may have changed something already: it is not handed on, the
        // connection just ends.
        let Ok((header, body)) = answer else {
            return Outcome::Answered {
                length: 0,
                close: true,
            };
        };
        let close = request.close || *shutdown.borrow();
        respond::encode_http1(out, &header, &body, request.method == Method::HEAD, close);
        Access {
            method: request.method.as_str(),
            path: split_target(request.target).0,
            class: request.route.class,
            status: header.status.as_u16(),
            started,
            client: Some(client),
            upstream: None,
            error: None,
        }
        .record(&self.shared.metrics);
        Outcome::Answered {
            length: request.head + request.body,
            close,
        }
    }
}

/// A request the fast lane answers: HTTP/1.1, within the header limit, and either a GET or
/// HEAD of a snapshot or a queue poll, without a body, or a join with a body of at most
/// [`proxy::MAX_JOIN_BODY`] bytes and a declared length.
struct FastRequest<'b> {
    method: Method,
    target: &'b str,
    route: Route,
    headers: HeaderMap,
    /// The head's bytes.
    head: usize,
    body: usize,
    /// The client asked to close the connection after the answer.
    close: bool,
}

impl<'b> FastRequest<'b> {
    fn read(
        request: &httparse::Request<'_, 'b>,
        head: usize,
        limits: &LimitsConfig,
    ) -> Option<Self> {
        if request.version != Some(1) {
            return None;
        }
        let method = match request.method? {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            "POST" => Method::POST,
            _ => return None,
        };
        let target = request.path.filter(|t| t.starts_with('/'))?;
        let route = classify(&method, split_target(target).0);
        let with_body = match route.class {
            RouteClass::SeatMap(_) | RouteClass::WaitingRoom(Room::Poll) => false,
            RouteClass::WaitingRoom(Room::Join) => true,
            _ => return None,
        };
        if !route.method_allowed || with_body != (method == Method::POST) {
            return None;
        }
        let mut body = None;
        let mut close = false;
        let mut headers = HeaderMap::with_capacity(request.headers.len());
        for field in request.headers.iter() {
            let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
            let framing = [header::TRANSFER_ENCODING, header::EXPECT, header::UPGRADE];
            if framing.contains(&name) {
                return None;
            }
            if name == header::CONTENT_LENGTH {
                let length = std::str::from_utf8(field.value)
                    .ok()?
                    .parse::<usize>()
                    .ok()?;
                // A second length, even an equal one, is the proxy's to judge.
                if body.replace(length).is_some() {
                    return None;
                }
            }
            if name == header::CONNECTION {
                for option in std::str::from_utf8(field.value).ok()?.split(',') {
                    match option.trim() {
                        o if o.eq_ignore_ascii_case("close") => close = true,
                        o if o.eq_ignore_ascii_case("keep-alive") => {}
                        _ => return None,
                    }
                }
            }
            headers.append(name, HeaderValue::from_bytes(field.value).ok()?);
        }
        let body = match (with_body, body) {
            (false, None | Some(0)) => 0,
            (true, Some(length)) if length <= proxy::MAX_JOIN_BODY.min(limits.max_body_bytes) => {
                length
            }
            _ => return None,
        };
        if proxy::header_bytes(&headers, target) > limits.max_header_bytes {
            return None;
        }
        Some(FastRequest {
            method,
            target,
            route,
            headers,
            head,
            body,
            close,
        })
    }
}

/// A request target's path and query string.
fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// What a connection waiting for bytes also waits on.
struct Waits<'a, S> {
    /// The connection's deadline: [`KEEPALIVE`] from its start, from the first bytes of
    /// each request and from each answer of the proxy. A request answered here takes
    /// microseconds, or a round trip to Redis for a join, so an idle connection closes
    /// about [`KEEPALIVE`] after its last request, and a head trickled in never holds a
    /// connection longer. One timer move per request, not two.
    idle: Pin<&'a mut Sleep>,
    /// The edge shutting down.
    stopping: Pin<&'a mut S>,
}

/// Reads more of the connection into `buf`; `false` when the client left, missed its
/// deadline, or the edge is shutting down while the connection is idle.
async fn read_more<S: Future<Output = ()>>(
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
    waits: &mut Waits<'_, S>,
) -> bool {
    buf.reserve(2048);
    let idle = buf.is_empty();
    let read = tokio::select! {
        biased;
        read = tcp.read_buf(buf) => read,
        _ = waits.idle.as_mut() => return false,
        _ = waits.stopping.as_mut(), if idle => return false,
    };
    let more = matches!(read, Ok(n) if n > 0);
    if more && idle {
        restart(waits);
    }
    more
}

/// Gives the connection [`KEEPALIVE`] from now. Moving a deadline later is lock-free in
/// Tokio's timer.
fn restart<S>(waits: &mut Waits<'_, S>) {
    waits
        .idle
        .as_mut()
        .reset(tokio::time::Instant::now() + KEEPALIVE);
}

/// Resolves once the edge is shutting down: idle connections close then.
async fn stopping(shutdown: &ShutdownWatch) {
    let mut shutdown = shutdown.clone();
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}
