//! What the edge does with a request, decided before any upstream is chosen: the checks
//! every request passes in order (header size, route and method, client IP and its limits,
//! declared body size), then the route class's own treatment.

use super::{EdgeProxy, RequestCtx};
use crate::limits::{client_ip, Limited};
use crate::metrics::Metrics;
use crate::problem::{self, Code};
use crate::routes::{classify, Account, RouteClass};
use http::{header, HeaderMap};
use onsale_contract::problem::Problem;
use pingora::proxy::Session;
use std::net::IpAddr;

/// What the edge does with a request after looking at it.
pub(crate) enum Decision {
    /// Pass it to an origin.
    Proxy,
    /// Answered locally already.
    Served,
    /// Refuse it with this problem.
    Refuse(Problem),
}

impl From<Problem> for Decision {
    fn from(problem: Problem) -> Self {
        Decision::Refuse(problem)
    }
}

/// Bytes of the request line's target and headers, as the client sent them: what
/// `limits.max_header_bytes` bounds.
pub(crate) fn header_bytes(headers: &HeaderMap, target: &str) -> usize {
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    fields + target.len()
}

/// A 429 for `limited`, counted by the limit that refused.
pub(crate) fn refused_by_limit(metrics: &Metrics, limited: Limited) -> Problem {
    metrics
        .rate_limited
        .with_label_values(&[limited.limiter])
        .inc();
    problem::rate_limited(limited)
}

impl EdgeProxy {
    /// A 429 for `limited` (see [`refused_by_limit`]).
    pub(super) fn limited(&self, limited: Limited) -> Decision {
        refused_by_limit(&self.shared.metrics, limited).into()
    }

    /// The decision for the request in `session`, recording what later phases need in `ctx`.
    pub(super) async fn decide(&self, session: &mut Session, ctx: &mut RequestCtx) -> Decision {
        let runtime = ctx.runtime.clone();
        let limits = &runtime.config.limits;
        let header = session.req_header();
        let target = header.uri.path_and_query().map_or("", |p| p.as_str());
        if header_bytes(&header.headers, target) > limits.max_header_bytes {
            return Problem::new(Code::HeadersTooLarge, "Request headers too large")
                .with_detail(format!(
                    "headers are limited to {} bytes",
                    limits.max_header_bytes
                ))
                .into();
        }
        ctx.route = classify(&header.method, header.uri.path());
        if ctx.route.class == RouteClass::Unknown {
            return problem::route_not_found().into();
        }
        if !ctx.route.method_allowed {
            let allow = crate::routes::allowed_methods(header.uri.path());
            return problem::method_not_allowed(&allow).into();
        }
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        let forwarded = header
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let client = client_ip(peer, forwarded, &limits.trusted_proxies);
        ctx.client = Some(client);
        if let Err(limited) = runtime.limits.check_request(client, ctx.route.class) {
            return self.limited(limited);
        }
        let declared = header
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limits.max_body_bytes) {
            return problem::body_too_large(limits.max_body_bytes).into();
        }
        ctx.replayable =
            header.method.is_idempotent() || header.headers.contains_key("idempotency-key");
        if ctx.replayable {
            session.enable_retry_buffering();
        }
        match ctx.route.class {
            RouteClass::SeatMap(kind) => self.snapshot(session, ctx, kind).await,
            RouteClass::Catalog => self.catalog(session, ctx).await,
            RouteClass::Purchase => self.gate(session, ctx),
            RouteClass::Web => self.web(session, ctx).await,
            RouteClass::WaitingRoom(room) => {
                self.waiting_room(session, client, room, &runtime).await
            }
            RouteClass::Account(Account::SignIn) => match runtime.limits.check_sign_in(client) {
                Ok(()) => Decision::Proxy,
                Err(limited) => self.limited(limited),
            },
            // The origin checks the session and answers with the account's own data only.
            RouteClass::Account(Account::Pages) | RouteClass::Partner => Decision::Proxy,
            // Refused at the top already; never proxied whatever happens above.
            RouteClass::Unknown => problem::route_not_found().into(),
        }
    }
}
