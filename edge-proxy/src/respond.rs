//! Local responses written by the edge itself. Pingora needs an explicit Content-Length on
//! them, and a HEAD request gets the headers without the body.

use crate::problem;
use bytes::Bytes;
use http::Method;
use onsale_contract::problem::{Problem, CONTENT_TYPE as PROBLEM_JSON};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde::Serialize;

/// Writes `problem` as problem+json, with `Retry-After` when it carries `retry_after_s`.
pub(crate) async fn problem(session: &mut Session, problem: &Problem) -> pingora::Result<()> {
    let mut header = ResponseHeader::build(problem.status, Some(4))?;
    header.insert_header(http::header::CONTENT_TYPE, PROBLEM_JSON)?;
    header.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    if let Some(retry) = problem
        .extensions
        .get("retry_after_s")
        .and_then(|v| v.as_u64())
    {
        header.insert_header(http::header::RETRY_AFTER, retry.to_string())?;
    }
    body(session, header, Bytes::from(problem.to_json())).await
}

/// Writes `value` as an uncacheable JSON answer with `status`, setting `cookies`; a value
/// that does not serialize is answered 500 instead.
pub(crate) async fn json(
    session: &mut Session,
    status: u16,
    value: &impl Serialize,
    cookies: Vec<String>,
) -> pingora::Result<()> {
    let bytes = match serde_json::to_vec(value) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(%error, "cannot serialize a response");
            return self::problem(session, &problem::internal()).await;
        }
    };
    let mut header = ResponseHeader::build(status, Some(4 + cookies.len()))?;
    header.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    header.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    for cookie in cookies {
        header.append_header(http::header::SET_COOKIE, cookie)?;
    }
    body(session, header, Bytes::from(bytes)).await
}

/// Writes `header` with a Content-Length for `body`, and the body unless the request is HEAD.
pub(crate) async fn body(
    session: &mut Session,
    mut header: ResponseHeader,
    body: Bytes,
) -> pingora::Result<()> {
    header.insert_header(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    )?;
    let head_only = session.req_header().method == Method::HEAD;
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
