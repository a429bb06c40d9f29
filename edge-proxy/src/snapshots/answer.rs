//! A snapshot as an HTTP answer: the encoding negotiated from `Accept-Encoding`, a strong
//! ETag per encoding, 304 on a matching `If-None-Match`, and `Cache-Control` running to the
//! builder's next build.

use super::Snapshot;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};

/// `Accept-Encoding` negotiation: the acceptable coding with the highest q-value, brotli
/// before gzip before identity on ties. Unlisted codings are unacceptable unless `*` says
/// otherwise; identity stays acceptable unless refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

pub(crate) fn negotiate(accept_encoding: Option<&str>) -> Encoding {
    let Some(accept) = accept_encoding else {
        return Encoding::Identity;
    };
    // q-values of the codings the edge serves, and of `*`; the last listing wins.
    let (mut br, mut gzip, mut x_gzip, mut identity, mut star) = (None, None, None, None, None);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let weight = parts
            .find_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .and_then(|w| w.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let target = match coding {
            c if c.eq_ignore_ascii_case("br") => &mut br,
            c if c.eq_ignore_ascii_case("gzip") => &mut gzip,
            c if c.eq_ignore_ascii_case("x-gzip") => &mut x_gzip,
            c if c.eq_ignore_ascii_case("identity") => &mut identity,
            "*" => &mut star,
            _ => continue,
        };
        *target = Some(weight);
    }
    let weight = |q: Option<f32>, default: f32| q.or(star).unwrap_or(default);
    let candidates = [
        (Encoding::Brotli, weight(br, 0.0)),
        (Encoding::Gzip, weight(gzip, 0.0).max(weight(x_gzip, 0.0))),
        (Encoding::Identity, weight(identity, 0.001)),
    ];
    candidates
        .into_iter()
        .filter(|(_, w)| *w > 0.0)
        .fold(None, |best: Option<(Encoding, f32)>, (e, w)| match best {
            Some((_, bw)) if bw >= w => best,
            _ => Some((e, w)),
        })
        .map_or(Encoding::Identity, |(e, _)| e)
}

fn if_none_match(request: &RequestHeader, etag: &[u8]) -> bool {
    request
        .headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == etag)
}

/// The answer for `snapshot`: headers and the body (empty for 304; the caller drops it
/// for HEAD).
pub(crate) fn respond(
    snapshot: &Snapshot,
    request: &RequestHeader,
    now_ms: i64,
) -> pingora::Result<(ResponseHeader, Bytes)> {
    let accept = request
        .headers
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

    #[test]
    fn negotiation_follows_q_values() {
        use Encoding::*;
        assert_eq!(negotiate(None), Identity);
        assert_eq!(negotiate(Some("gzip, deflate, br")), Brotli);
        assert_eq!(negotiate(Some("gzip")), Gzip);
        assert_eq!(negotiate(Some("br;q=0.5, gzip;q=0.9")), Gzip);
        assert_eq!(negotiate(Some("br;q=0, gzip;q=0")), Identity);
        assert_eq!(negotiate(Some("*")), Brotli);
        assert_eq!(negotiate(Some("*;q=0.2, gzip")), Gzip);
        assert_eq!(negotiate(Some("identity")), Identity);
        assert_eq!(negotiate(Some("deflate")), Identity);
        assert_eq!(negotiate(Some("GZIP;Q=1")), Gzip);
    }

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
        }
    }

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
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
