//! Local responses written by the edge itself, through a Pingora session or straight onto a
//! connection of the fast lane. Pingora needs an explicit Content-Length on them, and a HEAD
//! request gets the headers without the body.

use crate::problem;
use bytes::Bytes;
use http::{HeaderValue, Method};
use onsale_contract::problem::{Problem, CONTENT_TYPE as PROBLEM_JSON};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde::Serialize;
use std::io::Write;

// Static values are neither checked nor copied again for every answer.
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const PROBLEM_CONTENT_TYPE: HeaderValue = HeaderValue::from_static(PROBLEM_JSON);

/// A response the edge makes itself: its header and its whole body.
pub(crate) type Local = (ResponseHeader, Bytes);

/// `problem` as problem+json, with the headers its members call for
/// ([`problem::headers`]).
pub(crate) fn problem_response(problem: &Problem) -> pingora::Result<Local> {
    let mut header = ResponseHeader::build_no_case(problem.status, Some(4))?;
    header.insert_header(http::header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE)?;
    header.insert_header(http::header::CACHE_CONTROL, NO_STORE)?;
    for (name, value) in problem::headers(problem) {
        header.insert_header(name, value)?;
    }
    Ok((header, Bytes::from(problem.to_json())))
}

/// `value` as an uncacheable JSON answer with `status`, setting `cookies`; a value that
/// does not serialize is answered 500 instead.
pub(crate) fn json_response(
    status: u16,
    value: &impl Serialize,
    cookies: Vec<String>,
) -> pingora::Result<Local> {
    // A queue answer with its token is about 550 bytes: one allocation, never regrown.
    let mut bytes = Vec::with_capacity(1024);
    if let Err(error) = serde_json::to_writer(&mut bytes, value) {
        tracing::error!(%error, "cannot serialize a response");
        return problem_response(&problem::internal());
    }
    let mut header = ResponseHeader::build_no_case(status, Some(4 + cookies.len()))?;
    header.insert_header(http::header::CONTENT_TYPE, APPLICATION_JSON)?;
    header.insert_header(http::header::CACHE_CONTROL, NO_STORE)?;
    for cookie in cookies {
        header.append_header(http::header::SET_COOKIE, cookie)?;
    }
    Ok((header, Bytes::from(bytes)))
}

/// Writes `problem` as problem+json (see [`problem_response`]).
pub(crate) async fn problem(session: &mut Session, problem: &Problem) -> pingora::Result<()> {
    let (header, bytes) = problem_response(problem)?;
    body(session, header, bytes).await
}

/// Writes `value` as JSON (see [`json_response`]).
pub(crate) async fn json(
    session: &mut Session,
    status: u16,
    value: &impl Serialize,
    cookies: Vec<String>,
) -> pingora::Result<()> {
    let (header, bytes) = json_response(status, value, cookies)?;
    body(session, header, bytes).await
}

/// Writes `header` with a Content-Length for `body`, and the body unless the request is HEAD.
pub(crate) async fn body(
    session: &mut Session,
    mut header: ResponseHeader,
    body: Bytes,
) -> pingora::Result<()> {
    if sends_length(header.status) {
        header.insert_header(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(body.len()),
        )?;
    }
    let head_only = session.req_header().method == Method::HEAD;
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// Whether an answer with `status` carries a Content-Length: a 304 must not, unless it
/// is the length the 200 would have had (RFC 9110, 8.6); it has no body either way.
fn sends_length(status: http::StatusCode) -> bool {
    status != http::StatusCode::NOT_MODIFIED
}

/// `header` and `body` as an HTTP/1.1 response appended to `out`, for a connection the edge
/// writes itself: a Content-Length for `body` (see [`sends_length`]), the body unless
/// `head_only`, and
/// `Connection: close` when the connection ends after it.
pub(crate) fn encode_http1(
    out: &mut Vec<u8>,
    header: &ResponseHeader,
    body: &[u8],
    head_only: bool,
    close: bool,
) {
    let status = header.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in header.headers.iter() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if sends_length(status) {
        // Writing to a Vec cannot fail.
        let _ = write!(out, "content-length: {}\r\n", body.len());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(status: u16, body: &[u8], head_only: bool, close: bool) -> String {
        let mut header = ResponseHeader::build_no_case(status, None).unwrap();
        header.insert_header("etag", "\"e\"").unwrap();
        let mut out = Vec::new();
        encode_http1(&mut out, &header, body, head_only, close);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn http1_answers_frame_their_bodies() {
        assert_eq!(
            encoded(200, b"{}", false, false),
            "HTTP/1.1 200 OK\r\netag: \"e\"\r\ncontent-length: 2\r\n\r\n{}"
        );
        assert_eq!(
            encoded(200, b"{}", true, true),
            "HTTP/1.1 200 OK\r\netag: \"e\"\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(
            encoded(304, b"", false, false),
            "HTTP/1.1 304 Not Modified\r\netag: \"e\"\r\n\r\n"
        );
    }
}
