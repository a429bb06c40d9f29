//! A snapshot as an HTTP answer: the encoding negotiated from `Accept-Encoding`, a strong
//! ETag per encoding, 304 on a matching `If-None-Match`, and `Cache-Control` running to the
//! builder's next build.

use super::Snapshot;
use crate::representation::{if_none_match, negotiate, Encoding};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use pingora::http::ResponseHeader;

/// The answer for `snapshot`: headers and the body (empty for 304; the caller drops it
/// for HEAD).
pub(crate) fn respond(
    snapshot: &Snapshot,
    request: &HeaderMap,
    now_ms: i64,
) -> pingora::Result<(ResponseHeader, Bytes)> {
    let accept = request
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let (body, coding, etag) = match negotiate(accept) {
        Encoding::Brotli => (&snapshot.brotli, Some("br"), &snapshot.etags[0]),
        Encoding::Gzip => (&snapshot.gzip, Some("gzip"), &snapshot.etags[1]),
        Encoding::Identity => (&snapshot.identity, None, &snapshot.etags[2]),
    };
    let max_age = ((snapshot.next_build_at_ms - now_ms).max(0) + 999) / 1000;
    let interval = ((snapshot.next_build_at_ms - snapshot.checked_at_ms).max(1000) + 999) / 1000;
    let not_modified = if_none_match(request, etag.as_bytes());
    let status = match not_modified {
        true => StatusCode::NOT_MODIFIED,
        false => StatusCode::OK,
    };
    let mut header = ResponseHeader::build_no_case(status, Some(8))?;
    header.insert_header(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )?;
    header.insert_header(header::VARY, HeaderValue::from_static("Accept-Encoding"))?;
    header.insert_header(header::ETAG, etag.clone())?;
    header.insert_header(
        header::CACHE_CONTROL,
        format!("public, max-age={max_age}, stale-while-revalidate={interval}"),
    )?;
    if let Some(coding) = coding {
        header.insert_header(header::CONTENT_ENCODING, HeaderValue::from_static(coding))?;
    }
    let body = match not_modified {
        true => Bytes::new(),
        false => body.clone(),
    };
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use super::super::etag_values;
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            etag: "abc".into(),
            etags: etag_values("abc").unwrap(),
            built_at_ms: 1_000,
            checked_at_ms: 1_000,
            next_build_at_ms: 31_000,
            identity: Bytes::from_static(b"{}"),
            gzip: Bytes::from_static(b"gz"),
            brotli: Bytes::from_static(b"br"),
            open_seats: None,
            on_sale_at_ms: None,
            presale: None,
        }
    }

    fn request(headers: &[(&str, &str)]) -> HeaderMap {
        headers
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn headers_track_the_next_build() {
        let (header, body) =
            respond(&snapshot(), &request(&[("accept-encoding", "br")]), 11_500).unwrap();
        assert_eq!(header.status, 200);
        assert_eq!(body, Bytes::from_static(b"br"));
        let get = |n: &str| header.headers.get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(get("etag"), "\"abc.br\"");
        assert_eq!(get("content-encoding"), "br");
        assert_eq!(get("vary"), "Accept-Encoding");
        assert_eq!(
            get("cache-control"),
            "public, max-age=20, stale-while-revalidate=30"
        );
        let (header, _) = respond(&snapshot(), &request(&[]), 40_000).unwrap();
        assert!(header.headers.get("content-encoding").is_none());
        assert_eq!(
            header.headers.get("cache-control").unwrap(),
            "public, max-age=0, stale-while-revalidate=30"
        );
    }

    #[test]
    fn if_none_match_gives_304_per_encoding() {
        let req = request(&[
            ("accept-encoding", "gzip"),
            ("if-none-match", "\"x\", W/\"abc.gz\""),
        ]);
        let (header, body) = respond(&snapshot(), &req, 0).unwrap();
        assert_eq!(header.status, 304);
        assert!(body.is_empty());
        // The brotli ETag does not validate the gzip representation.
        let req = request(&[("accept-encoding", "gzip"), ("if-none-match", "\"abc.br\"")]);
        assert_eq!(respond(&snapshot(), &req, 0).unwrap().0.status, 200);
    }
}
