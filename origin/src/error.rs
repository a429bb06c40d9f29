//! The origin's error boundary: every failure a client can see is an [`ApiError`], rendered
//! as `application/problem+json` with a stable `code`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use onsale_contract::problem::{self, Problem};
use onsale_contract::tokens::WAITING_ROOM_PATH;

/// Where a fan without a live session signs in: the `sign_in` link of 401 refusals.
pub const SIGN_IN_PATH: &str = "/v1/sessions";

onsale_contract::problem_codes! {
    /// Every problem `code` the origin answers with.
    pub enum Code {
        /// 401: no valid admission token for the route.
        AdmissionRequired = "admission_required",
        /// 401: the admission token's order is paid; it buys nothing more.
        AdmissionSpent = "admission_spent",
        /// 413: the request body exceeds the route's size limit.
        BodyTooLarge = "body_too_large",
        /// 422: a hold asks for the same seat more than once.
        DuplicateSeats = "duplicate_seats",
        /// 409: an account with this email (in any letter case) exists.
        EmailTaken = "email_taken",
        /// 404: no such event.
        EventNotFound = "event_not_found",
        /// 422: the fan would hold more seats of the show than allowed.
        FanSeatLimit = "fan_seat_limit",
        /// 409: the hold already has an order.
        HoldAlreadyOrdered = "hold_already_ordered",
        /// 409: the hold became an order; cancel the order instead.
        HoldConverted = "hold_converted",
        /// 409: the hold has expired or was released.
        HoldNotActive = "hold_not_active",
        /// 404: no such hold (for this fan).
        HoldNotFound = "hold_not_found",
        /// 409: the hold has an order awaiting payment.
        HoldOrdered = "hold_ordered",
        /// 409: a request with this `Idempotency-Key` is still in flight.
        IdempotencyInFlight = "idempotency_in_flight",
        /// 400: the write needs a well-formed `Idempotency-Key` header.
        IdempotencyKeyRequired = "idempotency_key_required",
        /// 422: the `Idempotency-Key` was used with a different request.
        IdempotencyKeyReused = "idempotency_key_reused",
        /// 500: a failure on the origin's side.
        Internal = "internal",
        /// 400: the body does not have the expected shape.
        InvalidBody = "invalid_body",
        /// 401: wrong email or password; the same answer whether the email has an account.
        InvalidCredentials = "invalid_credentials",
        /// 422: an organizer field is out of its limits.
        InvalidField = "invalid_field",
        /// 400: a query parameter is malformed or out of range.
        InvalidQuery = "invalid_query",
        /// 400: the password reset code is wrong, used or expired (or the email has none).
        InvalidResetCode = "invalid_reset_code",
        /// 400: the body is not JSON.
        MalformedJson = "malformed_json",
        /// 405: the route exists, not with this method.
        MethodNotAllowed = "method_not_allowed",
        /// 422: a show leaves some of its venue's price tiers unpriced.
        MissingPriceTier = "missing_price_tier",
        /// 422: a hold asks for no seats.
        NoSeats = "no_seats",
        /// 409: the section has too few seats free for a best-available hold.
        NotEnoughSeats = "not_enough_seats",
        /// 409: the order's payment window has passed.
        OrderExpired = "order_expired",
        /// 409: the order is not one that can be cancelled.
        OrderNotCancellable = "order_not_cancellable",
        /// 404: no such order (for this fan).
        OrderNotFound = "order_not_found",
        /// 409: the order or its payment is past confirmation.
        PaymentNotConfirmable = "payment_not_confirmable",
        /// 404: no such payment (for this fan).
        PaymentNotFound = "payment_not_found",
        /// 502: the payment provider did not answer.
        PaymentProviderUnavailable = "payment_provider_unavailable",
        /// 429: too many failed credential checks or reset requests (`limit`: `email` or
        /// `ip`); `Retry-After` says when the window ends.
        RateLimited = "rate_limited",
        /// 404: no such route.
        RouteNotFound = "route_not_found",
        /// 409: some of the asked-for seats are taken.
        SeatsUnavailable = "seats_unavailable",
        /// 404: no such show.
        ShowNotFound = "show_not_found",
        /// 409: the show is not on sale.
        ShowNotOnSale = "show_not_on_sale",
        /// 401: no live session (none, unknown, expired or revoked); `sign_in` links sign-in.
        SignInRequired = "sign_in_required",
        /// 404: no such ticket (for this fan).
        TicketNotFound = "ticket_not_found",
        /// 409: the fan cannot cancel an order with a ticket scanned at the door
        /// (`scanned_ticket_ids`); only an organizer can.
        TicketsScanned = "tickets_scanned",
        /// 422: a hold asks for more seats than one hold may have.
        TooManySeats = "too_many_seats",
        /// 401: missing or invalid admin token.
        Unauthorized = "unauthorized",
        /// 503: the database did not answer.
        Unavailable = "unavailable",
        /// 422: not a payment method the provider takes.
        UnknownPaymentMethod = "unknown_payment_method",
        /// 422: seats that are not part of the show.
        UnknownSeats = "unknown_seats",
        /// 422: the show has no such section.
        UnknownSection = "unknown_section",
        /// 422: an event names a venue that does not exist.
        UnknownVenue = "unknown_venue",
        /// 415: the body is not sent as `application/json`.
        UnsupportedMediaType = "unsupported_media_type",
        /// 404: no such venue.
        VenueNotFound = "venue_not_found",
        /// 400: a payment webhook whose signature does not check out.
        WebhookSignatureInvalid = "webhook_signature_invalid",
        /// 403: the admission token is for another show.
        WrongShow = "wrong_show",
    }
}

/// A failure a client can see, rendered as problem+json by its `IntoResponse`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 for a resource that does not exist (or is not the caller's).
    #[error("{what} not found")]
    NotFound {
        /// The resource's own `*_not_found` code.
        code: Code,
        /// The resource, for the title.
        what: &'static str,
    },
    /// 400 `invalid_query`.
    #[error("invalid query parameter `{param}`: {reason}")]
    InvalidQuery {
        /// The parameter's name.
        param: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// 400 `invalid_body` with its detail.
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// 422 with its code and detail.
    #[error("{1}")]
    Unprocessable(Code, String),
    /// 409 with its code and detail.
    #[error("{1}")]
    Conflict(Code, String),
    /// 401 `unauthorized`: missing or invalid admin token.
    #[error("missing or invalid admin token")]
    Unauthorized,
    /// 401 `admission_required`, with why.
    #[error("{0}")]
    Unadmitted(&'static str),
    /// 401 `admission_spent`: the admission's order is paid.
    #[error("the admission token is spent")]
    AdmissionSpent,
    /// 401 `sign_in_required`, with why.
    #[error("{0}")]
    SignInRequired(&'static str),
    /// 403 `wrong_show`: the admission is for another show.
    #[error("the admission token is for another show")]
    WrongShow,
    /// A refusal with its own problem body; see [`ApiError::problem`].
    #[error("{detail}")]
    Problem {
        /// The problem's detail (or title), for logs.
        detail: String,
        /// The body answered.
        problem: Box<Problem>,
    },
    /// 503 `unavailable`: the database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// 502 `payment_provider_unavailable`.
    #[error("payment provider: {0}")]
    Provider(#[from] crate::provider::ProviderError),
    /// A state the schema and locks should rule out; the transaction is rolled back.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A refusal with its own problem body (extension members such as `unavailable_seat_ids`).
    pub(crate) fn problem(problem: Problem) -> Self {
        ApiError::Problem {
            detail: problem
                .detail
                .clone()
                .unwrap_or_else(|| problem.title.clone()),
            problem: Box::new(problem),
        }
    }

    pub(crate) fn invalid_query(param: &'static str, reason: impl Into<String>) -> Self {
        ApiError::InvalidQuery {
            param,
            reason: reason.into(),
        }
    }

    /// The problem+json body this error is answered with.
    pub(crate) fn to_problem(&self) -> Problem {
        match self {
            ApiError::NotFound { code, what } => {
                Problem::new(404, *code, &format!("{what} not found"))
            }
            ApiError::InvalidQuery { param, reason } => {
                Problem::new(400, Code::InvalidQuery, "Invalid query parameter")
                    .with_detail(format!("`{param}`: {reason}"))
                    .with("param", *param)
            }
            ApiError::InvalidBody(reason) => {
                Problem::new(400, Code::InvalidBody, "Invalid request body")
                    .with_detail(reason.clone())
            }
            ApiError::Unprocessable(code, detail) => {
                Problem::new(422, *code, "Request cannot be processed").with_detail(detail.clone())
            }
            ApiError::Conflict(code, detail) => {
                Problem::new(409, *code, "Conflict").with_detail(detail.clone())
            }
            ApiError::Unauthorized => Problem::new(401, Code::Unauthorized, "Unauthorized")
                .with_detail("a valid bearer token is required"),
            ApiError::Unadmitted(detail) => {
                Problem::new(401, Code::AdmissionRequired, "Admission required")
                    .with_detail(*detail)
                    .with("join", WAITING_ROOM_PATH)
            }
            ApiError::AdmissionSpent => Problem::new(401, Code::AdmissionSpent, "Admission spent")
                .with_detail("this admission's order is paid; join again to buy more")
                .with("join", WAITING_ROOM_PATH),
            ApiError::SignInRequired(detail) => {
                Problem::new(401, Code::SignInRequired, "Sign-in required")
                    .with_detail(*detail)
                    .with("sign_in", SIGN_IN_PATH)
            }
            ApiError::WrongShow => {
                Problem::new(403, Code::WrongShow, "Admission is for another show")
                    .with_detail("join the waiting room of this show")
                    .with("join", WAITING_ROOM_PATH)
            }
            ApiError::Problem { problem, .. } => (**problem).clone(),
            ApiError::Database(_) => Problem::new(503, Code::Unavailable, "Service unavailable")
                .with_detail("the database did not answer; retry shortly")
                .with("retry_after_s", 1),
            ApiError::Provider(_) => Problem::new(
                502,
                Code::PaymentProviderUnavailable,
                "Payment provider unavailable",
            )
            .with_detail("the payment provider did not answer; retry shortly")
            .with("retry_after_s", 2),
            ApiError::Internal(_) => Problem::new(500, Code::Internal, "Internal error")
                .with_detail("nothing was changed; retry shortly"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Database(error) => tracing::error!(%error, "database error"),
            ApiError::Internal(error) => tracing::error!(%error, "internal error"),
            ApiError::Provider(error) => tracing::warn!(%error, "payment provider error"),
            _ => {}
        }
        let mut response = problem_response(&self.to_problem());
        if matches!(self, ApiError::AdmissionSpent) {
            // However the order was paid (a confirmation, or a webhook the edge never saw),
            // the edge that passed this admission learns it is spent and refuses it itself
            // from now on.
            response.headers_mut().insert(
                onsale_contract::tokens::ADMISSION_SPENT_HEADER,
                HeaderValue::from_static("true"),
            );
        }
        response
    }
}

/// `problem` as a response: its status, the problem+json content type, and `Retry-After`
/// when it carries `retry_after_s`.
pub(crate) fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, problem.to_json()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(problem::CONTENT_TYPE),
    );
    if let Some(retry) = problem
        .extensions
        .get("retry_after_s")
        .and_then(|v| v.as_u64())
    {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(retry));
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn problem_codes_are_unique_snake_case() {
        onsale_contract::problem::assert_well_formed(super::Code::ALL);
    }
}
