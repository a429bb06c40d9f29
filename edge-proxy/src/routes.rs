//! Which part of the public contract a request belongs to. Classification is by path shape
//! only, before any I/O, so every later decision (gate, limit, metric label) is a match.

use http::Method;
use onsale_contract::snapshot::Kind;
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    Join,
    Poll,
    Challenge,
    /// An admission for the seats a waitlist offers the account.
    Offer,
}

/// An account route: sign-up and sign-in spend a tighter per-IP quota than the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// `POST /v1/accounts`, `POST /v1/sessions`: where passwords are tried.
    SignIn,
    /// The signed-in fan's own pages: the session, password changes and resets, order
    /// history, tickets and their QR codes.
    Pages,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Public catalog reads, passed through to the origin and micro-cached.
    Catalog,
    /// Seat-map and availability snapshots, answered by the edge from memory.
    SeatMap(Kind),
    /// Holds, creating orders, payments: admitted fans only, proxied to the origin.
    Purchase,
    /// The waiting room, answered by the edge.
    WaitingRoom(Room),
    /// Accounts and what belongs to them, proxied without an admission token: the origin
    /// checks the session, and answers only with the account's own data.
    Account(Account),
    /// Partners with credentials of their own, proxied without an admission token: venue
    /// scanners (scanner token) and the payment provider (webhook signature). The origin
    /// checks the credential.
    Partner,
    /// The fan web app: its pages (one HTML shell) and assets, answered by the edge from
    /// the binary.
    Web,
    /// Any other path: not part of the public contract.
    Unknown,
}

impl RouteClass {
    /// One of each class, in [`RouteClass::index`] order.
    pub const ALL: [RouteClass; 8] = [
        RouteClass::Catalog,
        RouteClass::SeatMap(Kind::Layout),
        RouteClass::Purchase,
        RouteClass::WaitingRoom(Room::Join),
        RouteClass::Account(Account::Pages),
        RouteClass::Partner,
        RouteClass::Unknown,
        RouteClass::Web,
    ];

    /// Position in [`RouteClass::ALL`]; both seat-map kinds share one, so do the
    /// waiting room's routes and the account routes.
    pub fn index(self) -> usize {
        match self {
            RouteClass::Catalog => 0,
            RouteClass::SeatMap(_) => 1,
            RouteClass::Purchase => 2,
            RouteClass::WaitingRoom(_) => 3,
            RouteClass::Account(_) => 4,
            RouteClass::Partner => 5,
            RouteClass::Unknown => 6,
            RouteClass::Web => 7,
        }
    }

    /// Metric label; bounded, never the raw path.
    pub fn label(self) -> &'static str {
        match self {
            RouteClass::Catalog => "catalog",
            RouteClass::SeatMap(_) => "snapshot",
            RouteClass::Purchase => "purchase",
            RouteClass::WaitingRoom(_) => "waiting_room",
            RouteClass::Account(_) => "account",
            RouteClass::Partner => "partner",
            RouteClass::Unknown => "unknown",
            RouteClass::Web => "web",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub class: RouteClass,
    /// Whether the method is one this route answers.
    pub method_allowed: bool,
    /// Where the path names a show, as a byte range of the path: the hot path copies
    /// nothing out of the request.
    show: Option<Range<usize>>,
}

impl Route {
    pub const UNKNOWN: Route = Route {
        class: RouteClass::Unknown,
        method_allowed: true,
        show: None,
    };

    /// The show named in `path`, the path this route was classified from.
    pub fn show<'p>(&self, path: &'p str) -> Option<&'p str> {
        self.show.clone().and_then(|range| path.get(range))
    }
}

/// Most segments a known route has.
const MAX_SEGMENTS: usize = 4;

/// A path segment that could be a resource id: short and URL-safe. Anything else cannot name
/// a resource, so it never reaches the origin.
pub fn is_id(segment: &str) -> bool {
    (1..=64).contains(&segment.len())
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn classify(method: &Method, path: &str) -> Route {
    if let Some(route) = classify_web(method, path) {
        return route;
    }
    let mut buffer = [""; MAX_SEGMENTS];
    let mut offsets = [0; MAX_SEGMENTS];
    let mut count = 0;
    let rest = path.strip_prefix('/').unwrap_or(path);
    let mut offset = path.len() - rest.len();
    for segment in rest.split('/') {
        if count == MAX_SEGMENTS {
            return Route::UNKNOWN;
        }
        buffer[count] = segment;
        offsets[count] = offset;
        offset += segment.len() + 1;
        count += 1;
    }
    let segments = &buffer[..count];
    let read = [Method::GET, Method::HEAD].as_slice();
    let (class, methods, show): (_, &[Method], _) = match segments {
        ["v1", "events"] => (RouteClass::Catalog, read, None),
        // The keys tickets are signed with: public and cacheable, like the catalog.
        [".well-known", "onsale", "ticket-keys.json"] => (RouteClass::Catalog, read, None),
        ["v1", "events", id] | ["v1", "events", id, "shows"] if is_id(id) => {
            (RouteClass::Catalog, read, None)
        }
        ["v1", "shows", id] if is_id(id) => (RouteClass::Catalog, read, Some(id)),
        ["v1", "shows", id, "seat-map"] if is_id(id) => {
            (RouteClass::SeatMap(Kind::Layout), read, Some(id))
        }
        ["v1", "shows", id, "availability"] if is_id(id) => {
            (RouteClass::SeatMap(Kind::Availability), read, Some(id))
        }
        // Redeeming a presale access code is the account's, before any admission.
        ["v1", "shows", id, "access"] if is_id(id) => (
            RouteClass::Account(Account::Pages),
            &[Method::POST][..],
            Some(id),
        ),
        // A waitlist entry is the account's, like its orders: it waits outside the queue.
        ["v1", "shows", id, "waitlist"] if is_id(id) => (
            RouteClass::Account(Account::Pages),
            &[Method::GET, Method::POST, Method::DELETE][..],
            Some(id),
        ),
        ["v1", "shows", id, "holds"] if is_id(id) => {
            (RouteClass::Purchase, &[Method::POST][..], Some(id))
        }
        ["v1", "holds", id] if is_id(id) => (
            RouteClass::Purchase,
            &[Method::GET, Method::DELETE][..],
            None,
        ),
        // Creating an order spends an admission; reading orders is the account's history.
        ["v1", "orders"] if method == Method::POST => {
            (RouteClass::Purchase, &[Method::POST][..], None)
        }
        ["v1", "orders"] => (
            RouteClass::Account(Account::Pages),
            &[Method::GET][..],
            None,
        ),
        ["v1", "orders", id] if is_id(id) => (
            RouteClass::Account(Account::Pages),
            &[Method::GET][..],
            None,
        ),
        // A cancellation comes long after the admission that bought the order was spent.
        ["v1", "orders", id, "cancel"] if is_id(id) => (
            RouteClass::Account(Account::Pages),
            &[Method::POST][..],
            None,
        ),
        ["v1", "payments", id, "confirm"] if is_id(id) => {
            (RouteClass::Purchase, &[Method::POST][..], None)
        }
        ["v1", "tickets", id, "transfer"] if is_id(id) => (
            RouteClass::Account(Account::Pages),
            &[Method::POST, Method::DELETE][..],
            None,
        ),
        ["v1", "tickets", id, "qr.svg"] if is_id(id) => {
            (RouteClass::Account(Account::Pages), read, None)
        }
        ["v1", "accounts"] | ["v1", "sessions"] => (
            RouteClass::Account(Account::SignIn),
            &[Method::POST][..],
            None,
        ),
        ["v1", "sessions", "current"] => (
            RouteClass::Account(Account::Pages),
            &[Method::DELETE][..],
            None,
        ),
        ["v1", "me"] | ["v1", "me", "tickets"] => (
            RouteClass::Account(Account::Pages),
            &[Method::GET][..],
            None,
        ),
        ["v1", "me", "password"]
        | ["v1", "password-resets"]
        | ["v1", "password-resets", "confirm"] => (
            RouteClass::Account(Account::Pages),
            &[Method::POST][..],
            None,
        ),
        ["v1", "tickets", "verify"]
        | ["v1", "tickets", "scans"]
        | ["v1", "webhooks", "payments"] => (RouteClass::Partner, &[Method::POST][..], None),
        ["v1", "shows", id, "revocations"] if is_id(id) => (RouteClass::Partner, read, None),
        ["v1", "waiting-room", "sessions"] => (
            RouteClass::WaitingRoom(Room::Join),
            &[Method::POST][..],
            None,
        ),
        ["v1", "waiting-room", "sessions", "current"] => {
            (RouteClass::WaitingRoom(Room::Poll), read, None)
        }
        ["v1", "waiting-room", "challenge"] => {
            (RouteClass::WaitingRoom(Room::Challenge), read, None)
        }
        ["v1", "waiting-room", "offers"] => (
            RouteClass::WaitingRoom(Room::Offer),
            &[Method::POST][..],
            None,
        ),
        _ => (RouteClass::Unknown, &[][..], None),
    };
    Route {
        class,
        method_allowed: class == RouteClass::Unknown || methods.contains(method),
        // Every route that names a show names it in the third segment.
        show: show.map(|id: &&str| offsets[2]..offsets[2] + id.len()),
    }
}

/// The methods `path` answers, as a 405's `Allow` lists them.
pub fn allowed_methods(path: &str) -> String {
    let candidates = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    candidates
        .into_iter()
        .filter(|method| {
            let route = classify(method, path);
            route.class != RouteClass::Unknown && route.method_allowed
        })
        .map(|method| method.as_str().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The web app's routes: `/assets/...` (a file of this build or 404), its page paths, and
/// the OpenAPI document served beside them.
fn classify_web(method: &Method, path: &str) -> Option<Route> {
    let rest = path.strip_prefix('/')?;
    let is_web =
        rest.starts_with("assets/") && path.len() <= 256 || path == crate::web::OPENAPI || {
            let mut segments = [""; crate::web::MAX_PAGE_SEGMENTS + 1];
            let mut count = 0;
            for segment in rest.split('/').take(segments.len()) {
                segments[count] = segment;
                count += 1;
            }
            crate::web::is_page(&segments[..count])
        };
    is_web.then(|| Route {
        class: RouteClass::Web,
        method_allowed: [Method::GET, Method::HEAD].contains(method),
        show: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_405_allows_every_method_of_the_path() {
        assert_eq!(allowed_methods("/v1/orders"), "GET, POST");
        assert_eq!(allowed_methods("/v1/holds/h1"), "GET, DELETE");
        assert_eq!(allowed_methods("/v1/events"), "GET, HEAD");
        assert_eq!(allowed_methods("/openapi.json"), "GET, HEAD");
        assert_eq!(allowed_methods("/nowhere"), "");
    }

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
    fn snapshots_and_purchase_routes_name_their_show() {
        let path = "/v1/shows/s1/availability";
        let route = classify(&Method::GET, path);
        assert_eq!(route.class, RouteClass::SeatMap(Kind::Availability));
        assert_eq!(route.show(path), Some("s1"));
        let route = classify(&Method::HEAD, "/v1/shows/s1/seat-map");
        assert_eq!(route.class, RouteClass::SeatMap(Kind::Layout));
        let path = "/v1/shows/s1/holds";
        let route = classify(&Method::POST, path);
        assert_eq!(
            (route.class, route.show(path)),
            (RouteClass::Purchase, Some("s1"))
        );
        assert!(!classify(&Method::GET, "/v1/shows/s1/holds").method_allowed);
        for (method, path) in [
            (Method::GET, "/v1/holds/h1"),
            (Method::DELETE, "/v1/holds/h1"),
            (Method::POST, "/v1/orders"),
            (Method::POST, "/v1/payments/p1/confirm"),
        ] {
            let route = classify(&method, path);
            assert_eq!(route.class, RouteClass::Purchase, "{path}");
            assert!(route.method_allowed, "{method} {path}");
            assert_eq!(route.show(path), None);
        }
    }

    #[test]
    fn partners_have_routes_of_their_own() {
        assert_eq!(
            classify(&Method::GET, "/.well-known/onsale/ticket-keys.json").class,
            RouteClass::Catalog
        );
        assert_eq!(
            classify(&Method::GET, "/v1/shows/s1/revocations").class,
            RouteClass::Partner
        );
        for path in ["/v1/tickets/verify", "/v1/webhooks/payments"] {
            let route = classify(&Method::POST, path);
            assert_eq!(route.class, RouteClass::Partner, "{path}");
            assert!(route.method_allowed);
            assert!(!classify(&Method::GET, path).method_allowed);
        }
    }

    #[test]
    fn account_pages_are_not_behind_the_queue() {
        let pages = RouteClass::Account(Account::Pages);
        for (method, path, class) in [
            (
                Method::POST,
                "/v1/accounts",
                RouteClass::Account(Account::SignIn),
            ),
            (
                Method::POST,
                "/v1/sessions",
                RouteClass::Account(Account::SignIn),
            ),
            (Method::DELETE, "/v1/sessions/current", pages),
            (Method::GET, "/v1/me", pages),
            (Method::POST, "/v1/me/password", pages),
            (Method::GET, "/v1/me/tickets", pages),
            (Method::POST, "/v1/password-resets", pages),
            (Method::POST, "/v1/password-resets/confirm", pages),
            (Method::GET, "/v1/orders", pages),
            (Method::GET, "/v1/orders/o1", pages),
            (Method::POST, "/v1/orders/o1/cancel", pages),
            (Method::GET, "/v1/tickets/t1/qr.svg", pages),
            (Method::POST, "/v1/shows/s1/access", pages),
            (Method::HEAD, "/v1/tickets/t1/qr.svg", pages),
            (Method::POST, "/v1/shows/s1/waitlist", pages),
            (Method::GET, "/v1/shows/s1/waitlist", pages),
            (Method::DELETE, "/v1/shows/s1/waitlist", pages),
        ] {
            let route = classify(&method, path);
            assert_eq!(route.class, class, "{method} {path}");
            assert!(route.method_allowed, "{method} {path}");
            assert_eq!(route.class.label(), "account");
        }
        // Creating an order stays on the purchase path; other methods are not routes.
        assert_eq!(
            classify(&Method::POST, "/v1/orders").class,
            RouteClass::Purchase
        );
        for (method, path) in [
            (Method::GET, "/v1/sessions"),
            (Method::GET, "/v1/accounts"),
            (Method::POST, "/v1/me"),
            (Method::DELETE, "/v1/orders"),
            (Method::POST, "/v1/orders/o1"),
            (Method::GET, "/v1/password-resets"),
        ] {
            assert!(!classify(&method, path).method_allowed, "{method} {path}");
        }
        for path in ["/v1/sessions/other", "/v1/me/orders", "/v1/accounts/a1"] {
            assert_eq!(
                classify(&Method::GET, path).class,
                RouteClass::Unknown,
                "{path}"
            );
        }
    }

    #[test]
    fn everything_else_is_unknown() {
        for path in [
            "/v1/admin/venues",
            "/metrics",
            "/v1/events/a%2Fb",
            "/v1/events//shows",
            "/v1/shows/abc/extra/segments",
            "/v1/shows/abc/availability/",
            "/events/a%2Fb",
            "/shows/a/b/c/d/e/f",
            "/signin/<x>",
            "/index.html",
        ] {
            assert_eq!(
                classify(&Method::GET, path).class,
                RouteClass::Unknown,
                "{path}"
            );
        }
    }

    #[test]
    fn the_web_app_is_its_pages_and_assets_read_only() {
        for path in [
            "/",
            "/events",
            "/shows/s1/queue",
            "/orders/o1",
            "/assets/abc/app.js",
        ] {
            let route = classify(&Method::GET, path);
            assert_eq!(route.class, RouteClass::Web, "{path}");
            assert!(route.method_allowed);
        }
        assert!(!classify(&Method::POST, "/signin").method_allowed);
        assert!(!classify(&Method::DELETE, "/assets/abc/app.js").method_allowed);
    }
}
