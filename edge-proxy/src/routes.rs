//! Which part of the public contract a request belongs to. Classification is by path shape
//! only, before any I/O, so every later decision (gate, limit, metric label) is a match.

use http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Public catalog reads, passed through to the origin.
    Catalog,
    /// Any other path: not part of the public contract.
    Unknown,
}

impl RouteClass {
    /// Metric label; bounded, never the raw path.
    pub fn label(self) -> &'static str {
        match self {
            RouteClass::Catalog => "catalog",
            RouteClass::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub class: RouteClass,
    /// Whether the method is one this route answers.
    pub method_allowed: bool,
}

/// A path segment that could be a resource id: short and URL-safe. Anything else cannot name
/// a resource, so it never reaches the origin.
fn is_id(segment: &str) -> bool {
    (1..=64).contains(&segment.len())
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn classify(method: &Method, path: &str) -> Route {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let class = match segments.as_slice() {
        ["v1", "events"] => RouteClass::Catalog,
        ["v1", "events", id] | ["v1", "shows", id] if is_id(id) => RouteClass::Catalog,
        ["v1", "events", id, "shows"] if is_id(id) => RouteClass::Catalog,
        _ => RouteClass::Unknown,
    };
    let method_allowed = match class {
        RouteClass::Catalog => method == Method::GET || method == Method::HEAD,
        RouteClass::Unknown => true,
    };
    Route {
        class,
        method_allowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_reads_are_recognised() {
        for path in [
            "/v1/events",
            "/v1/events/0193a6f0-0000-7000-8000-000000000101",
            "/v1/events/abc/shows",
            "/v1/shows/abc",
        ] {
            let route = classify(&Method::GET, path);
            assert_eq!(route.class, RouteClass::Catalog, "{path}");
            assert!(route.method_allowed);
        }
        assert!(!classify(&Method::POST, "/v1/events").method_allowed);
    }

    #[test]
    fn everything_else_is_unknown() {
        for path in [
            "/",
            "/v1/admin/venues",
            "/metrics",
            "/v1/events/a%2Fb",
            "/v1/events//shows",
            "/v1/shows/abc/extra/segments",
        ] {
            assert_eq!(
                classify(&Method::GET, path).class,
                RouteClass::Unknown,
                "{path}"
            );
        }
    }
}
