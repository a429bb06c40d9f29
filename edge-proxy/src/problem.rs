//! Every problem `code` the edge answers with, and the refusals built in more than one place.
//! The wire strings are the contract: clients match on them.

use crate::limits::Limited;
use onsale_contract::problem::Problem;
use onsale_contract::tokens::WAITING_ROOM_PATH;

/// Where a fan signs in: the `sign_in` link of 401 `sign_in_required`.
pub(crate) const SIGN_IN_PATH: &str = "/v1/sessions";

onsale_contract::problem_codes! {
    /// The edge's problem codes.
    pub enum Code {
        /// The path is not part of the public contract.
        RouteNotFound = (404, "route_not_found"),
        /// The route exists, not with this method.
        MethodNotAllowed = (405, "method_not_allowed"),
        /// Request headers over `limits.max_header_bytes`.
        HeadersTooLarge = (431, "headers_too_large"),
        /// A declared or streamed body over its limit.
        BodyTooLarge = (413, "body_too_large"),
        /// A body the edge reads (a join) that does not parse.
        InvalidBody = (400, "invalid_body"),
        /// A query parameter that cannot be what it names.
        InvalidQuery = (400, "invalid_query"),
        /// A rate limit refused the request.
        RateLimited = (429, "rate_limited"),
        /// The purchase path without a valid admission token.
        AdmissionRequired = (401, "admission_required"),
        /// An admission token whose order is paid: it has done its job.
        AdmissionSpent = (401, "admission_spent"),
        /// A join without a valid session: the fan must sign in first.
        SignInRequired = (401, "sign_in_required"),
        /// No origin could say whose session a join carries.
        SessionUnavailable = (503, "session_unavailable"),
        /// Joining this show's presale takes an access code.
        AccessCodeRequired = (403, "access_code_required"),
        /// The access code does not open the show's presale (wrong, used up or another
        /// show's; the answer does not say which).
        AccessCodeInvalid = (403, "access_code_invalid"),
        /// No origin could check a presale join's access; retry shortly.
        PresaleUnavailable = (503, "presale_unavailable"),
        /// No seats are offered to the account on the show's waitlist.
        NoOffer = (404, "no_offer"),
        /// No origin could say whether the account has an offer; retry shortly.
        OfferUnavailable = (503, "offer_unavailable"),
        /// A token for another show than the one in the request.
        WrongShow = (403, "wrong_show"),
        /// No such show, or no waiting room for it.
        ShowNotFound = (404, "show_not_found"),
        /// A known show whose first snapshot has not landed.
        SnapshotNotReady = (503, "snapshot_not_ready"),
        /// No origin passes its health check.
        NoHealthyOrigin = (503, "no_healthy_origin"),
        /// The origin did not answer properly.
        UpstreamFailed = (502, "upstream_failed"),
        /// The edge failed to build its own answer.
        Internal = (500, "internal"),
        /// The waiting room cannot reach its state in Redis.
        QueueUnavailable = (503, "queue_unavailable"),
        /// A waiting-room poll without a valid queue token.
        QueueTokenRequired = (401, "queue_token_required"),
        /// The fan's turn came and went.
        TurnMissed = (410, "turn_missed"),
        /// The show's joins need proof of work.
        PowRequired = (400, "pow_required"),
        /// A proof of work that is forged, expired or unsolved.
        PowInvalid = (400, "pow_invalid"),
        /// A challenge already spent on a join.
        PowReused = (409, "pow_reused"),
        /// The show's waiting room hands out no challenges.
        NoChallenge = (404, "no_challenge"),
        /// `/readyz`: no origin passes its health check.
        NotReady = (503, "not_ready"),
        /// The admin API without the admin bearer token.
        Unauthorized = (401, "unauthorized"),
        /// A change through the admin API without the `onsale-operator` header naming who.
        OperatorRequired = (400, "operator_required"),
        /// A change of a show's settings that would leave them invalid.
        InvalidSettings = (422, "invalid_settings"),
        /// Other changes of the show's settings kept landing first.
        SettingsContended = (409, "settings_contended"),
    }
}

/// 404 `route_not_found`.
pub(crate) fn route_not_found() -> Problem {
    Problem::new(Code::RouteNotFound, "No such route")
}

/// 405 `method_not_allowed`; `allow` lists the methods the route answers (the `Allow`
/// header).
pub(crate) fn method_not_allowed(allow: &str) -> Problem {
    Problem::new(Code::MethodNotAllowed, "Method not allowed").with("allow", allow)
}

/// The headers a problem's members call for: `Retry-After` from `retry_after_s`, `Allow`
/// from `allow`.
pub(crate) fn headers(problem: &Problem) -> impl Iterator<Item = (http::HeaderName, String)> + '_ {
    let member = |name: &str| problem.extensions.get(name);
    let retry = member("retry_after_s")
        .and_then(|v| v.as_u64())
        .map(|s| (http::header::RETRY_AFTER, s.to_string()));
    let allow = member("allow")
        .and_then(|v| v.as_str())
        .map(|methods| (http::header::ALLOW, methods.to_owned()));
    retry.into_iter().chain(allow)
}

/// 404 `show_not_found`, saying what was looked for.
pub(crate) fn show_not_found(detail: impl Into<String>) -> Problem {
    Problem::new(Code::ShowNotFound, "No such show").with_detail(detail)
}

/// 400 `invalid_query`.
pub(crate) fn invalid_query(detail: impl Into<String>) -> Problem {
    Problem::new(Code::InvalidQuery, "Invalid query").with_detail(detail)
}

/// 400 `invalid_body`.
pub(crate) fn invalid_body(detail: impl Into<String>) -> Problem {
    Problem::new(Code::InvalidBody, "Invalid request body").with_detail(detail)
}

/// 413 `body_too_large` for bodies over `max` bytes.
pub(crate) fn body_too_large(max: usize) -> Problem {
    Problem::new(Code::BodyTooLarge, "Request body too large")
        .with_detail(format!("request bodies are limited to {max} bytes"))
        .with("max_bytes", max)
}

/// 429 `rate_limited`, naming the limit and when to come back.
pub(crate) fn rate_limited(limited: Limited) -> Problem {
    Problem::new(Code::RateLimited, "Too many requests")
        .with_detail(format!(
            "over the {} rate limit; slow down",
            limited.limiter
        ))
        .with("limit", limited.limiter)
        .with("retry_after_s", limited.retry_after_s.max(1))
}

/// 401 `admission_required`, with the way in and the show asked for when known.
pub(crate) fn admission_required(detail: &str, show: Option<&str>) -> Problem {
    let problem = Problem::new(Code::AdmissionRequired, "Admission required")
        .with_detail(detail)
        .with("join", WAITING_ROOM_PATH);
    match show {
        Some(show) => problem.with("show_id", show),
        None => problem,
    }
}

/// 401 `admission_spent`: the order this admission was for is paid.
pub(crate) fn admission_spent() -> Problem {
    Problem::new(Code::AdmissionSpent, "Admission spent")
        .with_detail("this admission's order is paid; join the waiting room again to buy more")
        .with("join", WAITING_ROOM_PATH)
}

/// 401 `sign_in_required`, with the way to sign in.
pub(crate) fn sign_in_required(detail: &str) -> Problem {
    Problem::new(Code::SignInRequired, "Sign-in required")
        .with_detail(detail)
        .with("sign_in", SIGN_IN_PATH)
}

/// 503 `session_unavailable`: no origin could check the session right now.
pub(crate) fn session_unavailable() -> Problem {
    Problem::new(Code::SessionUnavailable, "Service unavailable")
        .with_detail("the session cannot be checked right now; retry shortly")
        .with("retry_after_s", 2)
}

/// 503 `no_healthy_origin`.
pub(crate) fn no_origin() -> Problem {
    Problem::new(Code::NoHealthyOrigin, "Service unavailable")
        .with_detail("no origin is available right now; retry shortly")
        .with("retry_after_s", 2)
}

/// 500 `internal`: the edge could not build its own answer.
pub(crate) fn internal() -> Problem {
    Problem::new(Code::Internal, "Internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_are_well_formed() {
        onsale_contract::problem::assert_well_formed(Code::ALL);
    }
}
