//! The origin's error boundary: every failure a client can see is an [`ApiError`], rendered
//! as `application/problem+json` with a stable `code`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use onsale_contract::problem::{self, Problem};
use onsale_contract::tokens::WAITING_ROOM_PATH;

onsale_contract::problem_codes! {
    /// Every problem `code` the origin answers with.
    pub enum Code {
        AdmissionRequired = "admission_required",
        BodyTooLarge = "body_too_large",
        DuplicateSeats = "duplicate_seats",
        EventNotFound = "event_not_found",
        FanSeatLimit = "fan_seat_limit",
        HoldAlreadyOrdered = "hold_already_ordered",
        HoldConverted = "hold_converted",
        HoldNotActive = "hold_not_active",
        HoldNotFound = "hold_not_found",
        HoldOrdered = "hold_ordered",
        IdempotencyInFlight = "idempotency_in_flight",
        IdempotencyKeyRequired = "idempotency_key_required",
        IdempotencyKeyReused = "idempotency_key_reused",
        Internal = "internal",
        InvalidBody = "invalid_body",
        InvalidField = "invalid_field",
        InvalidQuery = "invalid_query",
        MalformedJson = "malformed_json",
        MethodNotAllowed = "method_not_allowed",
        MissingPriceTier = "missing_price_tier",
        NoSeats = "no_seats",
        NotEnoughSeats = "not_enough_seats",
        OrderExpired = "order_expired",
        OrderNotCancellable = "order_not_cancellable",
        OrderNotFound = "order_not_found",
        PaymentNotConfirmable = "payment_not_confirmable",
        PaymentNotFound = "payment_not_found",
        PaymentProviderUnavailable = "payment_provider_unavailable",
        RouteNotFound = "route_not_found",
        SeatsUnavailable = "seats_unavailable",
        ShowNotFound = "show_not_found",
        ShowNotOnSale = "show_not_on_sale",
        TicketNotFound = "ticket_not_found",
        TooManySeats = "too_many_seats",
        Unauthorized = "unauthorized",
        Unavailable = "unavailable",
        UnknownPaymentMethod = "unknown_payment_method",
        UnknownSeats = "unknown_seats",
        UnknownSection = "unknown_section",
        UnknownVenue = "unknown_venue",
        UnsupportedMediaType = "unsupported_media_type",
        VenueNotFound = "venue_not_found",
        WebhookSignatureInvalid = "webhook_signature_invalid",
        WrongShow = "wrong_show",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{what} not found")]
    NotFound {
        /// The resource's own `*_not_found` code.
        code: Code,
        /// The resource, for the title.
        what: &'static str,
    },
    #[error("invalid query parameter `{param}`: {reason}")]
    InvalidQuery { param: &'static str, reason: String },
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// 422 with its code and detail.
    #[error("{1}")]
    Unprocessable(Code, String),
    /// 409 with its code and detail.
    #[error("{1}")]
    Conflict(Code, String),
    #[error("missing or invalid admin token")]
    Unauthorized,
    #[error("{0}")]
    Unadmitted(&'static str),
    #[error("the admission token is for another show")]
    WrongShow,
    #[error("{detail}")]
    Problem {
        detail: String,
        problem: Box<Problem>,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("payment provider: {0}")]
    Provider(#[from] crate::provider::ProviderError),
    /// A state the schema and locks should rule out; the transaction is rolled back.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A refusal with its own problem body (extension members such as `unavailable_seat_ids`).
    pub fn problem(problem: Problem) -> Self {
        ApiError::Problem {
            detail: problem
                .detail
                .clone()
                .unwrap_or_else(|| problem.title.clone()),
            problem: Box::new(problem),
        }
    }

    pub fn invalid_query(param: &'static str, reason: impl Into<String>) -> Self {
        ApiError::InvalidQuery {
            param,
            reason: reason.into(),
        }
    }

    pub fn to_problem(&self) -> Problem {
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
        problem_response(&self.to_problem())
    }
}

pub fn problem_response(problem: &Problem) -> Response {
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
