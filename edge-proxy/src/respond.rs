//! Local responses written by the edge itself. Pingora needs an explicit Content-Length on
//! them, and a HEAD request gets the headers without the body.

use bytes::Bytes;
use http::Method;
use onsale_contract::problem::{self, Problem};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

pub async fn problem(session: &mut Session, problem: &Problem) -> pingora::Result<()> {
    let mut header = ResponseHeader::build(problem.status, Some(4))?;
    header.insert_header(http::header::CONTENT_TYPE, problem::CONTENT_TYPE)?;
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

/// Writes `header` with a Content-Length for `body`, and the body unless the request is HEAD.
pub async fn body(
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
