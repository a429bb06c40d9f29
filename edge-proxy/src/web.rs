//! The fan web app, built into the binary by `build.rs` from `edge-proxy/web/`: the one HTML
//! shell for `/` and every page path (the app routes in the browser), and the assets under
//! `/assets/<build>/`, each with its brotli and gzip forms made at build time.
//!
//! Headers: a strong ETag per representation (304 on `If-None-Match`), `immutable` for
//! assets (their URL changes with any asset's bytes), `no-cache` for the HTML (so a new
//! build is picked up at the next navigation), and a Content-Security-Policy that allows
//! scripts, styles, workers and fetches from this origin only: no inline script, no eval.

use crate::representation::{if_none_match, negotiate, Encoding};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use pingora::http::ResponseHeader;
use std::collections::HashMap;
use std::sync::LazyLock;

/// One file of the web app, as `build.rs` lists it.
pub struct WebFile {
    /// The URL path it is served at.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Hex of the identity bytes' hash; each encoding's ETag adds a suffix.
    pub etag: &'static str,
    /// The bytes as written.
    pub identity: &'static [u8],
    /// Brotli (quality 11), when smaller than the identity bytes.
    pub brotli: Option<&'static [u8]>,
    /// Gzip (level 9), when smaller than the identity bytes.
    pub gzip: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

/// The HTML shell served for `/` and every page path.
const SHELL: &str = "/index.html";

/// The edge's public OpenAPI document (`web/openapi.json`, kept by the test suite).
pub(crate) const OPENAPI: &str = "/openapi.json";

/// The first path segments of the app's pages; each page path has at most
/// [`MAX_PAGE_SEGMENTS`] segments, each an id-like segment.
pub(crate) const PAGE_ROOTS: [&str; 6] =
    ["events", "shows", "signin", "signup", "orders", "account"];
pub(crate) const MAX_PAGE_SEGMENTS: usize = 6;

/// Only this origin's scripts, styles, images (and `data:` images for drawn QR and canvas
/// exports), fetches and workers; nothing may frame the app.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; worker-src 'self'; \
     font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// A file with its header values made once.
struct Served {
    file: &'static WebFile,
    /// ETags for brotli, gzip and identity.
    etags: [HeaderValue; 3],
    cache_control: &'static str,
}

static APP: LazyLock<HashMap<&'static str, Served>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|file| {
            let etag = |suffix: &str| {
                HeaderValue::try_from(format!("\"{}{suffix}\"", file.etag))
                    .expect("a hex ETag is a valid header value")
            };
            let cache_control = match file.path.starts_with(ASSET_PREFIX) {
                true => IMMUTABLE,
                false => REVALIDATE,
            };
            let served = Served {
                file,
                etags: [etag(".br"), etag(".gz"), etag("")],
                cache_control,
            };
            (file.path, served)
        })
        .collect()
});

/// Whether `path` is one of the app's pages (answered with the HTML shell).
pub(crate) fn is_page(segments: &[&str]) -> bool {
    match segments {
        [""] => true,
        [root, rest @ ..] => {
            PAGE_ROOTS.contains(root)
                && segments.len() <= MAX_PAGE_SEGMENTS
                && rest.iter().all(|s| crate::routes::is_id(s))
        }
        [] => false,
    }
}

/// The answer for a GET or HEAD of `path` (a page, an asset or the OpenAPI document), or `None` when no file of
/// this build is there (an asset of another build, a name that never existed).
pub(crate) fn respond(
    path: &str,
    request: &HeaderMap,
    hsts: Option<&str>,
) -> Option<pingora::Result<(ResponseHeader, Bytes)>> {
    let key = match path.starts_with("/assets/") || path == OPENAPI {
        true => path,
        false => SHELL,
    };
    let served = APP.get(key)?;
    Some(answer(served, request, hsts))
}

fn answer(
    served: &Served,
    request: &HeaderMap,
    hsts: Option<&str>,
) -> pingora::Result<(ResponseHeader, Bytes)> {
    let file = served.file;
    let accept = request
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let (body, coding, etag) = match negotiate(accept) {
        Encoding::Brotli if file.brotli.is_some() => (file.brotli, Some("br"), &served.etags[0]),
        Encoding::Brotli | Encoding::Gzip if file.gzip.is_some() => {
            (file.gzip, Some("gzip"), &served.etags[1])
        }
        _ => (Some(file.identity), None, &served.etags[2]),
    };
    let not_modified = if_none_match(request, etag.as_bytes());
    let status = match not_modified {
        true => StatusCode::NOT_MODIFIED,
        false => StatusCode::OK,
    };
    let mut header = ResponseHeader::build_no_case(status, Some(10))?;
    header.insert_header(header::CONTENT_TYPE, file.content_type)?;
    header.insert_header(header::VARY, "Accept-Encoding")?;
    header.insert_header(header::ETAG, etag.clone())?;
    header.insert_header(header::CACHE_CONTROL, served.cache_control)?;
    header.insert_header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)?;
    header.insert_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")?;
    header.insert_header(header::REFERRER_POLICY, "same-origin")?;
    header.insert_header("cross-origin-opener-policy", "same-origin")?;
    if let Some(hsts) = hsts {
        header.insert_header(header::STRICT_TRANSPORT_SECURITY, hsts)?;
    }
    if let Some(coding) = coding {
        header.insert_header(header::CONTENT_ENCODING, coding)?;
    }
    let body = match (not_modified, body) {
        (false, Some(bytes)) => Bytes::from_static(bytes),
        _ => Bytes::new(),
    };
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> HeaderMap {
        headers
            .iter()
            .map(|(name, value)| {
                let name = name.parse().expect("a header name");
                (name, HeaderValue::from_str(value).expect("a header"))
            })
            .collect()
    }

    fn get(header: &ResponseHeader, name: &str) -> String {
        header
            .headers
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn pages_share_the_shell_and_assets_are_immutable() {
        let (shell, body) = respond("/shows/s1/queue", &request(&[]), None)
            .expect("a page")
            .expect("headers");
        assert_eq!(shell.status, 200);
        assert_eq!(get(&shell, "cache-control"), "no-cache");
        assert!(get(&shell, "content-type").starts_with("text/html"));
        let html = std::str::from_utf8(&body).expect("UTF-8");
        assert!(!html.contains("%ASSETS%"), "the placeholder is replaced");
        assert!(html.contains(ASSET_PREFIX));
        let asset = FILES
            .iter()
            .find(|f| f.path.ends_with(".js"))
            .expect("a script");
        let (header, _) = respond(asset.path, &request(&[]), None)
            .expect("an asset")
            .expect("headers");
        assert_eq!(get(&header, "cache-control"), IMMUTABLE);
        assert!(get(&header, "content-type").starts_with("text/javascript"));
        assert!(respond("/assets/000000000000/app.js", &request(&[]), None).is_none());
    }

    #[test]
    fn encodings_are_negotiated_and_revalidated() {
        let req = request(&[("accept-encoding", "gzip, br")]);
        let (header, body) = respond("/", &req, None)
            .expect("the shell")
            .expect("headers");
        assert_eq!(get(&header, "content-encoding"), "br");
        let etag = get(&header, "etag");
        assert!(etag.ends_with(".br\""));
        let mut identity = Vec::new();
        brotli::BrotliDecompress(&mut &body[..], &mut identity).expect("valid brotli");
        let plain = respond("/", &request(&[]), None)
            .expect("shell")
            .expect("headers");
        assert_eq!(identity, plain.1.to_vec());
        let req = request(&[("accept-encoding", "br"), ("if-none-match", &etag)]);
        let (header, body) = respond("/", &req, None)
            .expect("the shell")
            .expect("headers");
        assert_eq!(header.status, 304);
        assert!(body.is_empty());
        // Another representation's ETag does not validate this one.
        let req = request(&[("accept-encoding", "gzip"), ("if-none-match", &etag)]);
        let (header, _) = respond("/", &req, None)
            .expect("the shell")
            .expect("headers");
        assert_eq!(header.status, 200);
        assert_eq!(get(&header, "content-encoding"), "gzip");
    }

    #[test]
    fn every_answer_carries_the_security_headers() {
        let (header, _) = respond("/", &request(&[]), Some("max-age=31536000"))
            .expect("the shell")
            .expect("headers");
        let csp = get(&header, "content-security-policy");
        assert!(csp.contains("script-src 'self'"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(get(&header, "x-content-type-options"), "nosniff");
        assert_eq!(get(&header, "referrer-policy"), "same-origin");
        assert_eq!(
            get(&header, "strict-transport-security"),
            "max-age=31536000"
        );
    }

    #[test]
    fn page_paths_are_bounded() {
        let page = |p: &str| is_page(&p[1..].split('/').collect::<Vec<_>>());
        assert!(page("/"));
        assert!(page("/shows/abc/queue"));
        assert!(page("/orders"));
        assert!(!page("/shows/a/b/c/d/e/f"));
        assert!(!page("/shows/<script>"));
        assert!(!page("/v1/shows"));
        assert!(!page("/nothing"));
    }
}
