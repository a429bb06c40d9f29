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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Public catalog reads, passed through to the origin and micro-cached.
    Catalog,
    /// Seat-map and availability snapshots, answered by the edge from memory.
    SeatMap(Kind),
    /// Holds, orders, payments: admitted fans only, proxied to the origin.
    Purchase,
    /// The waiting room, answered by the edge.
    WaitingRoom(Room),
    /// A ticket's QR code: its owner, with an admission token or, once admission has
    /// lapsed, the queue token of the same join.
    Ticket,
    /// Partners with credentials of their own, proxied without an admission token: venue
    /// scanners (scanner token) and the payment provider (webhook signature). The origin
    /// checks the credential.
    Partner,
    /// Any other path: not part of the public contract.
    Unknown,
}

impl RouteClass {
    /// One of each class, in [`RouteClass::index`] order.
    pub const ALL: [RouteClass; 7] = [
        RouteClass::Catalog,
        RouteClass::SeatMap(Kind::Layout),
        RouteClass::Purchase,
        RouteClass::WaitingRoom(Room::Join),
        RouteClass::Ticket,
        RouteClass::Partner,
        RouteClass::Unknown,
    ];

    /// Position in [`RouteClass::ALL`]; both seat-map kinds share one.
    pub fn index(self) -> usize {
        match self {
            RouteClass::Catalog => 0,
            RouteClass::SeatMap(_) => 1,
            RouteClass::Purchase => 2,
            RouteClass::WaitingRoom(_) => 3,
            RouteClass::Ticket => 4,
            RouteClass::Partner => 5,
            RouteClass::Unknown => 6,
        }
    }

    /// Metric label; bounded, never the raw path.
    pub fn label(self) -> &'static str {
        match self {
            RouteClass::Catalog => "catalog",
            RouteClass::SeatMap(_) => "snapshot",
            RouteClass::Purchase => "purchase",
            RouteClass::WaitingRoom(_) => "waiting_room",
            RouteClass::Ticket => "ticket",
            RouteClass::Partner => "partner",
            RouteClass::Unknown => "unknown",
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
        ["v1", "shows", id, "holds"] if is_id(id) => {
            (RouteClass::Purchase, &[Method::POST][..], Some(id))
        }
        ["v1", "holds", id] if is_id(id) => (
            RouteClass::Purchase,
            &[Method::GET, Method::DELETE][..],
            None,
        ),
        ["v1", "orders"] => (RouteClass::Purchase, &[Method::GET, Method::POST][..], None),
        ["v1", "orders", id] if is_id(id) => (RouteClass::Purchase, &[Method::GET][..], None),
        ["v1", "orders", id, "cancel"] if is_id(id) => {
            (RouteClass::Purchase, &[Method::POST][..], None)
        }
        ["v1", "payments", id, "confirm"] if is_id(id) => {
            (RouteClass::Purchase, &[Method::POST][..], None)
        }
        ["v1", "tickets", id, "qr.svg"] if is_id(id) => (RouteClass::Ticket, read, None),
        ["v1", "tickets", "verify"] | ["v1", "webhooks", "payments"] => {
            (RouteClass::Partner, &[Method::POST][..], None)
        }
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
        _ => (RouteClass::Unknown, &[][..], None),
    };
    Route {
        class,
        method_allowed: class == RouteClass::Unknown || methods.contains(method),
        // Every route that names a show names it in the third segment.
        show: show.map(|id: &&str| offsets[2]..offsets[2] + id.len()),
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
            (Method::GET, "/v1/orders"),
            (Method::GET, "/v1/orders/o1"),
            (Method::POST, "/v1/payments/p1/confirm"),
            (Method::POST, "/v1/orders/o1/cancel"),
        ] {
            let route = classify(&method, path);
            assert_eq!(route.class, RouteClass::Purchase, "{path}");
            assert!(route.method_allowed, "{method} {path}");
            assert_eq!(route.show(path), None);
        }
    }

    #[test]
    fn partners_and_ticket_owners_have_routes_of_their_own() {
        for path in ["/v1/tickets/verify", "/v1/webhooks/payments"] {
            let route = classify(&Method::POST, path);
            assert_eq!(route.class, RouteClass::Partner, "{path}");
            assert!(route.method_allowed);
            assert!(!classify(&Method::GET, path).method_allowed);
        }
        let route = classify(&Method::GET, "/v1/tickets/t1/qr.svg");
        assert_eq!(route.class, RouteClass::Ticket);
        assert!(route.method_allowed);
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
            "/v1/shows/abc/availability/",
        ] {
            assert_eq!(
                classify(&Method::GET, path).class,
                RouteClass::Unknown,
                "{path}"
            );
        }
    }
}
