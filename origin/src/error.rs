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
        /// The show already has one of the access codes named.
        AccessCodeExists = (409, "access_code_exists"),
        /// The access code does not open the show's presale: wrong, used up, or another
        /// show's (the answer does not say which).
        AccessCodeInvalid = (403, "access_code_invalid"),
        /// Joining the show's presale takes an access code.
        AccessCodeRequired = (403, "access_code_required"),
        /// No valid admission token for the route.
        AdmissionRequired = (401, "admission_required"),
        /// The admission token's order is paid; it buys nothing more.
        AdmissionSpent = (401, "admission_spent"),
        /// The request body exceeds the route's size limit.
        BodyTooLarge = (413, "body_too_large"),
        /// The show has not been called off.
        CancellationNotFound = (404, "cancellation_not_found"),
        /// A hold asks for the same seat more than once.
        DuplicateSeats = (422, "duplicate_seats"),
        /// An account with this email (in any letter case) exists.
        EmailTaken = (409, "email_taken"),
        /// No such event.
        EventNotFound = (404, "event_not_found"),
        /// The fan would hold more seats of the show than allowed.
        FanSeatLimit = (422, "fan_seat_limit"),
        /// The hold already has an order.
        HoldAlreadyOrdered = (409, "hold_already_ordered"),
        /// The hold became an order; cancel the order instead.
        HoldConverted = (409, "hold_converted"),
        /// The hold has expired or was released.
        HoldNotActive = (409, "hold_not_active"),
        /// No such hold (for this fan).
        HoldNotFound = (404, "hold_not_found"),
        /// The hold has an order awaiting payment.
        HoldOrdered = (409, "hold_ordered"),
        /// A request with this `Idempotency-Key` is still in flight.
        IdempotencyInFlight = (409, "idempotency_in_flight"),
        /// The write needs a well-formed `Idempotency-Key` header.
        IdempotencyKeyRequired = (400, "idempotency_key_required"),
        /// The `Idempotency-Key` was used with a different request.
        IdempotencyKeyReused = (422, "idempotency_key_reused"),
        /// A failure on the origin's side.
        Internal = (500, "internal"),
        /// The body does not have the expected shape.
        InvalidBody = (400, "invalid_body"),
        /// Wrong email or password; the same answer whether the email has an account.
        InvalidCredentials = (401, "invalid_credentials"),
        /// An organizer field is out of its limits.
        InvalidField = (422, "invalid_field"),
        /// A query parameter is malformed or out of range.
        InvalidQuery = (400, "invalid_query"),
        /// The password reset code is wrong, used or expired (or the email has none).
        InvalidResetCode = (400, "invalid_reset_code"),
        /// The body is not JSON.
        MalformedJson = (400, "malformed_json"),
        /// The route exists, not with this method.
        MethodNotAllowed = (405, "method_not_allowed"),
        /// A show leaves some of its venue's price tiers unpriced.
        MissingPriceTier = (422, "missing_price_tier"),
        /// A hold asks for no seats.
        NoSeats = (422, "no_seats"),
        /// The section has too few seats free for a best-available hold.
        NotEnoughSeats = (409, "not_enough_seats"),
        /// The order's payment window has passed.
        OrderExpired = (409, "order_expired"),
        /// The order is not one that can be cancelled.
        OrderNotCancellable = (409, "order_not_cancellable"),
        /// The account has no place on the show's waitlist.
        NotOnWaitlist = (404, "not_on_waitlist"),
        /// A scanner's session for another show's ticket, or a session that is no scanner's.
        NotShowStaff = (403, "not_show_staff"),
        /// The show still has seats on sale: its waitlist opens once none are left.
        NotSoldOut = (409, "not_sold_out"),
        /// No such order (for this fan).
        OrderNotFound = (404, "order_not_found"),
        /// The order or its payment is past confirmation.
        PaymentNotConfirmable = (409, "payment_not_confirmable"),
        /// No such payment (for this fan).
        PaymentNotFound = (404, "payment_not_found"),
        /// The payment provider did not answer.
        PaymentProviderUnavailable = (502, "payment_provider_unavailable"),
        /// Too many failed credential checks or reset requests (`limit`: `email` or
        /// `ip`); `Retry-After` says when the window ends.
        RateLimited = (429, "rate_limited"),
        /// No such route.
        RouteNotFound = (404, "route_not_found"),
        /// Some of the asked-for seats are taken.
        SeatsUnavailable = (409, "seats_unavailable"),
        /// No such show.
        ShowNotFound = (404, "show_not_found"),
        /// The show has started or is over, so it cannot be called off.
        ShowNotCancellable = (409, "show_not_cancellable"),
        /// The show is not on sale.
        ShowNotOnSale = (409, "show_not_on_sale"),
        /// No live session (none, unknown, expired or revoked); `sign_in` links sign-in.
        SignInRequired = (401, "sign_in_required"),
        /// The ticket cannot move: revoked, scanned, its show started, its show's policy, or a
        /// transfer already pending.
        TicketNotTransferable = (409, "ticket_not_transferable"),
        /// No such ticket (for this fan).
        TicketNotFound = (404, "ticket_not_found"),
        /// The fan cannot cancel an order a ticket of which it has transferred.
        TicketsTransferred = (409, "tickets_transferred"),
        /// The fan cannot cancel an order with a ticket scanned at the door
        /// (`scanned_ticket_ids`); only an organizer can.
        TicketsScanned = (409, "tickets_scanned"),
        /// The ticket has no transfer pending.
        TransferNotFound = (404, "transfer_not_found"),
        /// A hold asks for more seats than one hold may have.
        TooManySeats = (422, "too_many_seats"),
        /// Missing or invalid admin token.
        Unauthorized = (401, "unauthorized"),
        /// The database did not answer.
        Unavailable = (503, "unavailable"),
        /// Not a payment method the provider takes.
        UnknownPaymentMethod = (422, "unknown_payment_method"),
        /// A best-available hold names a price tier the show does not have.
        UnknownPriceTier = (422, "unknown_price_tier"),
        /// Seats that are not part of the show.
        UnknownSeats = (422, "unknown_seats"),
        /// The show has no such section.
        UnknownSection = (422, "unknown_section"),
        /// An event names a venue that does not exist.
        UnknownVenue = (422, "unknown_venue"),
        /// The body is not sent as `application/json`.
        UnsupportedMediaType = (415, "unsupported_media_type"),
        /// No such venue.
        VenueNotFound = (404, "venue_not_found"),
        /// The show takes no waitlist: waitlists are off, or the show is not on sale.
        WaitlistClosed = (409, "waitlist_closed"),
        /// A payment webhook whose signature does not check out.
        WebhookSignatureInvalid = (400, "webhook_signature_invalid"),
        /// The admission token is for another show.
        WrongShow = (403, "wrong_show"),
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
            ApiError::NotFound { code, what } => Problem::new(*code, &format!("{what} not found")),
            ApiError::InvalidQuery { param, reason } => {
                Problem::new(Code::InvalidQuery, "Invalid query parameter")
                    .with_detail(format!("`{param}`: {reason}"))
                    .with("param", *param)
            }
            ApiError::InvalidBody(reason) => {
                Problem::new(Code::InvalidBody, "Invalid request body").with_detail(reason.clone())
            }
            ApiError::Unprocessable(code, detail) => {
                Problem::new(*code, "Request cannot be processed").with_detail(detail.clone())
            }
            ApiError::Conflict(code, detail) => {
                Problem::new(*code, "Conflict").with_detail(detail.clone())
            }
            ApiError::Unauthorized => Problem::new(Code::Unauthorized, "Unauthorized")
                .with_detail("a valid bearer token is required"),
            ApiError::Unadmitted(detail) => {
                Problem::new(Code::AdmissionRequired, "Admission required")
                    .with_detail(*detail)
                    .with("join", WAITING_ROOM_PATH)
            }
            ApiError::AdmissionSpent => Problem::new(Code::AdmissionSpent, "Admission spent")
                .with_detail("this admission's order is paid; join again to buy more")
                .with("join", WAITING_ROOM_PATH),
            ApiError::SignInRequired(detail) => {
                Problem::new(Code::SignInRequired, "Sign-in required")
                    .with_detail(*detail)
                    .with("sign_in", SIGN_IN_PATH)
            }
            ApiError::WrongShow => Problem::new(Code::WrongShow, "Admission is for another show")
                .with_detail("join the waiting room of this show")
                .with("join", WAITING_ROOM_PATH),
            ApiError::Problem { problem, .. } => (**problem).clone(),
            ApiError::Database(_) => Problem::new(Code::Unavailable, "Service unavailable")
                .with_detail("the database did not answer; retry shortly")
                .with("retry_after_s", 1),
            ApiError::Provider(_) => Problem::new(
                Code::PaymentProviderUnavailable,
                "Payment provider unavailable",
            )
            .with_detail("the payment provider did not answer; retry shortly")
            .with("retry_after_s", 2),
            ApiError::Internal(_) => Problem::new(Code::Internal, "Internal error")
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
