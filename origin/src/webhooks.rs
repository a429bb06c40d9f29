//! `POST /v1/webhooks/payments`: the provider reports changes to payment intents. The
//! signature is checked over the exact bytes received; then, in one transaction, the event
//! is applied and recorded by its provider id (`payment_events` primary key). A delivery
//! seen before conflicts on that key and its transaction is rolled back, so it changes
//! nothing; an event older than what the payment shows is recorded and changes nothing
//! (`payments::apply`).

use crate::error::{ApiError, Code};
use crate::json::RawBody;
use crate::openapi;
use crate::payments::{apply, Applied};
use crate::provider::WebhookError;
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use onsale_contract::problem::Problem;
use serde::Serialize;
use uuid::Uuid;

/// What became of a webhook event.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = WebhookReceived)]
struct Received {
    /// The provider's id of the event.
    event_id: String,
    /// `applied`, `stale` (older than what the payment shows), `duplicate` or
    /// `unknown_payment`.
    #[schema(value_type = String, pattern = "^(applied|stale|duplicate|unknown_payment)$")]
    result: &'static str,
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        let problem = match &error {
            WebhookError::Malformed(detail) => {
                Problem::new(Code::InvalidBody, "Invalid webhook event").with_detail(detail.clone())
            }
            signature => Problem::new(Code::WebhookSignatureInvalid, "Invalid webhook signature")
                .with_detail(signature.to_string()),
        };
        ApiError::problem(problem)
    }
}

onsale_contract::problems!(pub(crate) WebhookProblems = [
    openapi::ANY,
    &[
        Code::WebhookSignatureInvalid,
        Code::InvalidBody,
        Code::BodyTooLarge,
    ],
]);

/// The payment provider reports a change to a payment intent.
///
/// Applied once per event id; a redelivery or an out-of-date event is acknowledged and
/// changes nothing.
#[utoipa::path(
    post,
    path = "/v1/webhooks/payments",
    tag = "provider",
    params((
        "Onsale-Signature" = String,
        Header,
        description = "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"t.body\">` under the webhook secret, over the exact body bytes; `t` within `payments.webhook_tolerance_s` of now.",
    )),
    request_body(
        content = Object,
        description = "The provider's event, signed as sent; the sandbox's is `{id, type, created_ms, data: {object: {id, status, version, amount_cents, currency}}}` with no other fields.",
        content_type = "application/json",
    ),
    responses(
        (status = 200, description = "Received: applied, stale, a duplicate, or for no known payment.", body = Received),
        WebhookProblems,
    ),
)]
pub(crate) async fn post_payment_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let metrics = &state.metrics.webhooks_received;
    let now_ms = onsale_contract::clock::now_ms();
    let event = state
        .provider
        .parse_webhook(&headers, &body, now_ms / 1000)
        .inspect_err(|_| metrics.with_label_values(&["rejected"]).inc())?;
    // Redeliveries count too: how late the word arrives is what reconciliation waits on.
    let lag_s = (now_ms - event.created_ms).max(0) as f64 / 1000.0;
    state.metrics.webhook_lag.observe(lag_s);
    let provider = state.provider.name();
    let mut tx = state.pool.begin().await?;
    let payment: Option<Uuid> = sqlx::query_scalar!(
        "SELECT id FROM payments WHERE provider = $1 AND provider_ref = $2",
        provider,
        event.intent.reference,
    )
    .fetch_optional(&mut *tx)
    .await?;
    // The effect first, so its locks are taken in the order every writer keeps; then the
    // event's key. A delivery of the same event racing this one waits on those locks, finds
    // the key taken, and rolls its (stale) effect back.
    let applied = match payment {
        Some(payment) => Some(apply(&mut tx, &state, payment, &event.intent, false).await?),
        None => None,
    };
    let recorded = sqlx::query!(
        "INSERT INTO payment_events (provider, event_id, payment_id, event_type, payload)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider, event_id) DO NOTHING",
        provider,
        event.id,
        payment,
        event.kind,
        event.payload,
    )
    .execute(&mut *tx)
    .await?;
    let result = if recorded.rows_affected() == 0 {
        tx.rollback().await?;
        "duplicate"
    } else {
        tx.commit().await?;
        match applied {
            Some(Applied::Moved) => "applied",
            Some(Applied::Stale) => "stale",
            // An intent without an order (its order was refused after the intent was made).
            None => "unknown_payment",
        }
    };
    metrics.with_label_values(&[result]).inc();
    if result == "applied" {
        state.workers.refunds.notify_one();
    }
    tracing::info!(event = %event.id, kind = %event.kind, result, "payment webhook");
    let reply = Received {
        event_id: event.id,
        result,
    };
    crate::http::json(StatusCode::OK, &reply)
}
