//! Payments: confirmation by the fan, outcomes from the provider, cancellation with refunds.
//!
//! A confirmation is three steps, so no lock is held across the provider call:
//! 1. a short transaction checks the order and marks its payment `processing` (a second
//!    confirmation now finds nothing to confirm);
//! 2. the provider is asked, outside any transaction;
//! 3. its answer is applied by [`apply`], the one place a provider's word changes an order,
//!    shared with webhooks and the reconciliation job.
//!
//! [`apply`] orders answers by the intent's version, so duplicates and webhooks that arrive
//! out of order change nothing. Its outcomes, each in one transaction:
//! - succeeded, hold live: order `confirmed`, hold `converted`, seats `sold`, one ticket per
//!   seat, an `order_confirmed` outbox row;
//! - succeeded, hold gone (the payment window passed): nothing is sold, the order is
//!   `cancelled` with `hold_expired`, and a full refund is owed;
//! - failed: order `payment_failed`, hold released and seats back on sale at once.
//!
//! Lock order, as every writer keeps it: the seats' inventory rows, the hold, then the
//! order and payment.

use crate::accounts::Session;
use crate::auth::{Admission, ConfirmingAdmission};
use crate::domain::payment_method::ConfirmBody;
use crate::domain::{IdempotencyKey, OrderId, PaymentId, PaymentMethod};
use crate::error::{ApiError, Code};
use crate::holds::{end_expired, free_seats, lock_hold, lock_seats};
use crate::idempotency::{self, Begin, Claimed, Recorded};
use crate::json::ApiJson;
use crate::openapi;
use crate::provider::{Intent, IntentStatus, ProviderError};
use crate::status::{OrderStatus, PaymentStatus};
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use onsale_contract::problem::Problem;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// What the fan must do before confirming again.
#[derive(Serialize, utoipa::ToSchema)]
struct NextAction {
    /// Always `authenticate`: 3-D Secure, then confirm again with the same method.
    #[serde(rename = "type")]
    #[schema(value_type = String, pattern = "^authenticate$")]
    kind: &'static str,
}

/// A confirmation's answer: the payment and the order as they stand.
#[derive(Serialize, utoipa::ToSchema)]
struct ConfirmView {
    /// The payment confirmed.
    payment_id: Uuid,
    /// Where the payment stands: `succeeded` (the order is confirmed, with tickets),
    /// `failed`, `requires_action`, or `processing` (the outcome arrives later).
    status: PaymentStatus,
    /// Present while the fan must authenticate and confirm again.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_action: Option<NextAction>,
    /// The order as it stands.
    order: crate::orders::OrderView,
}

onsale_contract::problems!(pub(crate) ConfirmProblems = [
    openapi::ANY,
    openapi::JSON_BODY,
    openapi::ADMISSION,
    openapi::IDEMPOTENT,
    &[
        Code::PaymentNotFound,
        Code::UnknownPaymentMethod,
        Code::PaymentNotConfirmable,
        Code::OrderExpired,
        Code::PaymentProviderUnavailable,
    ],
]);

/// Pays for an order: confirms its payment with a payment method.
///
/// `POST /v1/payments/{id}/confirm` (`Idempotency-Key`). The answer that confirms the
/// order spends the admission and says so (`onsale-admission-spent: true`); from then on the
/// admission may only repeat confirmations it sent, and those answers say so too. A
/// confirmation that reached the provider but whose answer was lost before it was stored (the
/// origin or its database went down in between) is answered again from the provider's word
/// under the same key, never refused as if it were a new one.
#[utoipa::path(
    post,
    path = "/v1/payments/{id}/confirm",
    tag = "purchase",
    params(("id" = Uuid, Path, description = "The order's payment."), openapi::IdempotencyKeyHeader),
    request_body = ConfirmBody,
    responses(
        (
            status = 200,
            description = "The provider's answer, applied: the payment and its order.",
            body = ConfirmView,
            headers(
                ("onsale-admission-spent" = String, description = "`true` when the order is paid: the admission is spent and buys nothing more."),
                ("Idempotent-Replayed" = String, description = "`true` on the stored answer of an earlier request with the same key."),
            ),
        ),
        ConfirmProblems,
    ),
    security(("admission" = []), ("admission_cookie" = [])),
)]
pub(crate) async fn post_confirm(
    State(state): State<AppState>,
    ConfirmingAdmission { admission, spent }: ConfirmingAdmission,
    payment: PaymentId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<Response, ApiError> {
    let key = IdempotencyKey::parse(headers.get("idempotency-key"))?;
    let method = PaymentMethod::parse(body)?;
    let route = format!("POST /v1/payments/{payment}/confirm");
    if spent {
        match idempotency::replay_request(&state, &admission.fan, &key, &route, &method).await? {
            Recorded::Answer(replay) => return Ok(admission_spent(replay)),
            Recorded::Other => return Err(ApiError::AdmissionSpent),
            Recorded::Unanswered => {}
        }
        let (order, intent) = owned_payment(&state, &admission, payment).await?;
        let provider_key = provider_key(payment, key.as_str());
        let Some(intent) = state
            .provider
            .confirmed_with(&intent, &provider_key)
            .await?
        else {
            return Err(ApiError::AdmissionSpent);
        };
        let (body, _) = settle(&state, &admission, payment, order, Ok(intent), None).await?;
        return Ok(admission_spent(crate::http::json_response(
            StatusCode::OK,
            body,
        )));
    }
    let begun = idempotency::begin_request(&state, &admission.fan, &key, &route, &method).await?;
    let claimed = match begun {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(claimed) => claimed,
    };
    let outcome = confirm(&state, &admission, payment, &method, &claimed).await;
    let confirmed = matches!(outcome, Ok((_, true)));
    let result = outcome.map(|(body, _)| body);
    let response = idempotency::respond(&state.pool, &claimed, StatusCode::OK, result).await?;
    Ok(if confirmed {
        admission_spent(response)
    } else {
        response
    })
}

/// Tells the edge the presented admission is spent, so it ends the fan's waiting-room
/// session and refuses the token from then on.
fn admission_spent(mut response: Response) -> Response {
    response.headers_mut().insert(
        onsale_contract::tokens::ADMISSION_SPENT_HEADER,
        axum::http::HeaderValue::from_static("true"),
    );
    response
}

async fn confirm(
    state: &AppState,
    admission: &Admission,
    payment: PaymentId,
    method: &PaymentMethod,
    claimed: &Claimed,
) -> Result<(Vec<u8>, bool), ApiError> {
    state
        .provider
        .check_method(method.as_str())
        .map_err(|detail| ApiError::Unprocessable(Code::UnknownPaymentMethod, detail))?;
    let (order, intent, refusal) =
        begin_confirmation(state, admission, payment, &claimed.key).await?;
    let provider_key = provider_key(payment, &claimed.key);
    let answer = match refusal {
        // Past confirming, unless this very confirmation reached the provider before and
        // its answer was lost: then the provider's word answers it again.
        Some(refusal) => match state.provider.confirmed_with(&intent, &provider_key).await {
            Ok(Some(intent)) => Ok(intent),
            _ => return Err(refusal),
        },
        None => match state
            .provider
            .confirm(&intent, method.as_str(), &provider_key)
            .await
        {
            // The provider's state moved on without us (a crash between steps): take its word.
            Err(ProviderError::Rejected(reason)) => {
                tracing::warn!(%payment, %reason, "confirmation refused; reading the intent");
                state.provider.retrieve(&intent).await
            }
            answer => answer,
        },
    };
    settle(state, admission, payment, order, answer, Some(claimed)).await
}

/// The fan's key names a confirmation at the provider too, so a retry after a crash is
/// answered from the first call.
fn provider_key(payment: PaymentId, key: &str) -> String {
    format!("{payment}:{key}")
}

/// Applies the provider's `answer` (when there is one) and answers with the order as it
/// stands, storing the answer under `claimed` in the same transaction; spends the admission
/// when the order is confirmed. Returns the body and whether the order is confirmed.
async fn settle(
    state: &AppState,
    admission: &Admission,
    payment: PaymentId,
    order: OrderId,
    answer: Result<Intent, ProviderError>,
    claimed: Option<&Claimed>,
) -> Result<(Vec<u8>, bool), ApiError> {
    let mut tx = state.pool.begin().await?;
    match answer {
        Ok(intent) => {
            apply(&mut tx, state, payment.0, &intent, false).await?;
        }
        Err(error) => tracing::warn!(
            %payment, %error,
            "payment outcome unknown; it stays processing until a webhook or reconciliation"
        ),
    }
    let order = crate::orders::load(&mut tx, order).await?;
    let confirmed = order.is_confirmed();
    if confirmed {
        // The admission that paid is spent too, when it is not the one the order was made
        // with (another device of the same account).
        spend_admission(&mut tx, &admission.jti, order.order_id()).await?;
    }
    let status = order.payment_status();
    let view = ConfirmView {
        payment_id: payment.0,
        next_action: (status == PaymentStatus::RequiresAction).then_some(NextAction {
            kind: "authenticate",
        }),
        status,
        order,
    };
    let body = crate::http::to_json(&view)?;
    if let Some(claimed) = claimed {
        idempotency::store_in(&mut tx, claimed, 200, &body).await?;
    }
    tx.commit().await?;
    Ok((body, confirmed))
}

/// The fan's own payment `payment`: its order and the provider's intent.
async fn owned_payment(
    state: &AppState,
    admission: &Admission,
    payment: PaymentId,
) -> Result<(OrderId, String), ApiError> {
    let seen = sqlx::query!(
        "SELECT o.id, o.show_id, o.fan_id, p.provider_ref
         FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.id = $1",
        payment.0,
    )
    .fetch_optional(&state.pool)
    .await?;
    match seen.filter(|o| admission.owns(&o.fan_id, &o.show_id)) {
        Some(seen) => Ok((OrderId(seen.id), seen.provider_ref)),
        None => Err(PaymentId::not_found()),
    }
}

/// Step 1: the fan's own order, awaiting payment with its hold live, has its payment marked
/// `processing` under the confirmation's `key`. A payment already `processing` under that
/// same key was left there by this confirmation's first attempt, which died before the
/// provider answered: it is resumed. Returns the order, the provider's intent id and, when
/// the payment is past confirming, the refusal to answer with (nothing was changed then).
async fn begin_confirmation(
    state: &AppState,
    admission: &Admission,
    payment: PaymentId,
    key: &str,
) -> Result<(OrderId, String, Option<ApiError>), ApiError> {
    let mut tx = state.pool.begin().await?;
    let seen = sqlx::query!(
        r#"SELECT o.id, o.show_id, o.hold_id, o.fan_id,
                array(SELECT seat_id FROM order_items WHERE order_id = o.id ORDER BY seat_id) AS "seats!"
         FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.id = $1"#,
        payment.0,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(seen) = seen.filter(|o| admission.owns(&o.fan_id, &o.show_id)) else {
        return Err(PaymentId::not_found());
    };
    let hold_live = lock_hold(&mut tx, seen.show_id, &seen.seats, seen.hold_id).await?;
    let locked = sqlx::query!(
        r#"SELECT o.status AS "order_status: OrderStatus", p.status AS "payment_status: PaymentStatus",
                  p.provider_ref, p.confirm_key
           FROM orders o JOIN payments p ON p.order_id = o.id
           WHERE p.id = $1 FOR UPDATE OF o, p"#,
        payment.0,
    )
    .fetch_one(&mut *tx)
    .await?;
    let (order_status, payment_status) = (locked.order_status, locked.payment_status);
    let order = OrderId(seen.id);
    let resumed =
        payment_status == PaymentStatus::Processing && locked.confirm_key.as_deref() == Some(key);
    if order_status != OrderStatus::PendingPayment || !(payment_status.confirmable() || resumed) {
        let refusal = ApiError::Conflict(
            Code::PaymentNotConfirmable,
            format!("the order is {order_status} and its payment {payment_status}"),
        );
        return Ok((order, locked.provider_ref, Some(refusal)));
    }
    if !hold_live {
        let refusal = ApiError::Conflict(
            Code::OrderExpired,
            "the payment window has passed; the seats are no longer held".to_owned(),
        );
        return Ok((order, locked.provider_ref, Some(refusal)));
    }
    sqlx::query!(
        "UPDATE payments SET status = 'processing', confirm_key = $2, updated_at = now()
         WHERE id = $1",
        payment.0,
        key,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((order, locked.provider_ref, None))
}

/// What [`apply`] made of a provider's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The payment moved to the intent's status.
    Moved,
    /// Older than, or the same as, what the payment already shows; nothing changed.
    Stale,
}

/// Applies the provider's view of `payment`'s intent, in the caller's transaction. An
/// intent version newer than the payment's moves it; `resync` (the reconciliation job) also
/// lets the current version replace a `processing` left by a confirmation that never heard
/// back. A settled payment (`succeeded`, `failed`, `refunded`) never moves again here.
pub(crate) async fn apply(
    tx: &mut PgConnection,
    state: &AppState,
    payment: Uuid,
    intent: &Intent,
    resync: bool,
) -> Result<Applied, ApiError> {
    let seen = sqlx::query!(
        r#"SELECT o.id, o.show_id, o.hold_id, p.status AS "payment_status: PaymentStatus", p.provider_version,
                array(SELECT seat_id FROM order_items WHERE order_id = o.id ORDER BY seat_id) AS "seats!"
         FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.id = $1"#,
        payment,
    )
    .fetch_one(&mut *tx)
    .await?;
    // Stale without a lock: a settled payment never moves and its version only grows, so
    // what is stale now stays stale. Most webhooks end here, their payment already applied
    // by the fan's confirmation. (A resync may move a `processing` payment at the same
    // version, which a confirmation can set meanwhile: it takes the locks.)
    if !resync && (seen.payment_status.settled() || intent.version <= seen.provider_version) {
        return Ok(Applied::Stale);
    }
    let (order, show, hold, seats) = (seen.id, seen.show_id, seen.hold_id, seen.seats);
    let hold_live = lock_hold(tx, show, &seats, hold).await?;
    let locked = sqlx::query!(
        r#"SELECT o.status AS "order_status: OrderStatus", p.status AS "payment_status: PaymentStatus",
                  p.provider_version, p.amount_cents
           FROM orders o JOIN payments p ON p.order_id = o.id WHERE p.id = $1 FOR UPDATE OF o, p"#,
        payment,
    )
    .fetch_one(&mut *tx)
    .await?;
    let (order_status, payment_status) = (locked.order_status, locked.payment_status);
    let (version, amount_cents) = (locked.provider_version, locked.amount_cents);
    let newer = intent.version > version
        || (resync && payment_status == PaymentStatus::Processing && intent.version == version);
    if payment_status.settled() || !newer {
        return Ok(Applied::Stale);
    }
    sqlx::query!(
        "UPDATE payments SET status = $2, provider_version = $3, updated_at = now() WHERE id = $1",
        payment,
        PaymentStatus::from(intent.status).as_str(),
        intent.version,
    )
    .execute(&mut *tx)
    .await?;
    state
        .metrics
        .payments_settled
        .with_label_values(&[intent.status.as_str()])
        .inc();
    let order = OrderId(order);
    let pending = order_status == OrderStatus::PendingPayment;
    match intent.status {
        IntentStatus::Succeeded if pending && hold_live => {
            sell(tx, order, show, hold, &seats).await?
        }
        IntentStatus::Succeeded => {
            // Paid after the window: the seats may be someone else's now. Nothing is sold;
            // the order ends with its hold and the money goes back.
            if pending {
                end_expired(tx, &[hold]).await?;
            }
            tracing::info!(%order, "payment succeeded after its hold expired; refunding");
            owe_refund(tx, order, payment, amount_cents, "hold_expired").await?;
        }
        IntentStatus::Failed if pending && hold_live => decline(tx, order, hold).await?,
        IntentStatus::Failed if pending => {
            end_expired(tx, &[hold]).await?;
        }
        _ => {}
    }
    Ok(Applied::Moved)
}

/// Records `jti` as spent by `order`'s sale; a no-op when it already is.
async fn spend_admission(tx: &mut PgConnection, jti: &str, order: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO spent_admissions (jti, order_id) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
        jti,
        order,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The sale, in one statement: the order confirmed and its admission spent (the order's
/// admission is spent with the sale however the payment's word arrived: the fan's
/// confirmation, a webhook, reconciliation), the hold converted, its seats sold, a ticket per
/// seat (or per general-admission place, numbered from the section's counter) and an
/// `order_confirmed` outbox row.
async fn sell(
    tx: &mut PgConnection,
    order: OrderId,
    show: Uuid,
    hold: Uuid,
    seats: &[i64],
) -> Result<(), ApiError> {
    // A hold has seats, or else general-admission places.
    let count = if seats.is_empty() {
        sqlx::query_scalar!("SELECT seat_count FROM holds WHERE id = $1", hold)
            .fetch_one(&mut *tx)
            .await? as usize
    } else {
        seats.len()
    };
    let tickets: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
    let sold = sqlx::query_scalar!(
        r#"WITH confirmed AS (
             UPDATE orders SET status = 'confirmed', confirmed_at = now() WHERE id = $1
             RETURNING id, fan_id, show_id, admission_jti
           ), spent AS (
             INSERT INTO spent_admissions (jti, order_id)
             SELECT admission_jti, id FROM confirmed WHERE admission_jti IS NOT NULL
             ON CONFLICT (jti) DO NOTHING
           ), converted AS (
             UPDATE holds SET status = 'converted', ended_at = now() WHERE id = $3
             RETURNING ga_section, seat_count
           ), sold AS (
             UPDATE seat_inventory SET status = 'sold', order_id = $1, hold_id = NULL, hold_expires_at = NULL,
                                       version = version + 1
             WHERE show_id = $2 AND seat_id = ANY($4) AND hold_id = $3 AND status = 'held'
             RETURNING seat_id
           ), issued AS (
             INSERT INTO tickets (id, order_id, show_id, seat_id, status, holder)
             SELECT unnest($5::uuid[]), $1, $2, unnest($4::int8[]), 'valid', c.fan_id FROM confirmed c
             WHERE cardinality($4::int8[]) > 0
           ), numbered AS (
             UPDATE ga_inventory g SET next_number = g.next_number + v.seat_count
             FROM converted v
             WHERE v.ga_section IS NOT NULL AND g.show_id = $2 AND g.section_id = v.ga_section
             RETURNING g.section_id, g.next_number - v.seat_count AS first
           ), placed AS (
             INSERT INTO tickets (id, order_id, show_id, ga_section, ga_number, status, holder)
             SELECT t.id, $1, $2, n.section_id, n.first + t.at::int - 1, 'valid', c.fan_id
             FROM confirmed c, numbered n, unnest($5::uuid[]) WITH ORDINALITY AS t(id, at)
           ), announced AS (
             -- The payload as `outbox` builds every event's: the order and its fan first.
             INSERT INTO outbox (aggregate_id, event_type, payload)
             SELECT id, 'order_confirmed',
                    jsonb_build_object('order_id', id, 'fan_id', fan_id, 'show_id', show_id,
                                       'ticket_ids', to_jsonb($5::uuid[]))
             FROM confirmed
           )
           SELECT count(*) AS "sold!" FROM sold"#,
        order.0,
        show,
        hold,
        seats,
        &tickets,
    )
    .fetch_one(&mut *tx)
    .await?;
    // The live hold was locked above, so all its seats are still its own.
    if sold != seats.len() as i64 {
        return Err(ApiError::Internal(format!(
            "order {order}: {sold} of {} seats were still held",
            seats.len()
        )));
    }
    Ok(())
}

async fn decline(tx: &mut PgConnection, order: OrderId, hold: Uuid) -> Result<(), ApiError> {
    sqlx::query!(
        "UPDATE orders SET status = 'payment_failed' WHERE id = $1",
        order.0,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE holds SET status = 'released', ended_at = now() WHERE id = $1",
        hold,
    )
    .execute(&mut *tx)
    .await?;
    free_seats(tx, &[hold]).await?;
    outbox(tx, order, "payment_failed", serde_json::json!({})).await?;
    Ok(())
}

/// Records a refund for the refund worker to carry out (`refunds::run`); one per payment.
async fn owe_refund(
    tx: &mut PgConnection,
    order: OrderId,
    payment: Uuid,
    amount_cents: i64,
    reason: &str,
) -> Result<(), ApiError> {
    sqlx::query!(
        "INSERT INTO refunds (id, order_id, payment_id, amount_cents, reason, status)
         VALUES ($1, $2, $3, $4, $5, 'pending') ON CONFLICT (payment_id) DO NOTHING",
        Uuid::now_v7(),
        order.0,
        payment,
        amount_cents,
        reason,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// An event for notification consumers, committed with the change it reports. Every
/// payload carries the order and its fan.
pub(crate) async fn outbox(
    tx: &mut PgConnection,
    order: OrderId,
    event: &str,
    payload: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO outbox (aggregate_id, event_type, payload)
         SELECT id, $2, jsonb_build_object('order_id', id, 'fan_id', fan_id, 'show_id', show_id) || $3
         FROM orders WHERE id = $1",
        order.0,
        event,
        payload,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A cancellation's answer.
#[derive(Serialize, utoipa::ToSchema)]
struct CancelView {
    /// What the refund policy gives back, in cents of the order's currency; 0 when nothing.
    #[schema(minimum = 0)]
    refund_cents: i64,
    /// The order, cancelled.
    order: crate::orders::OrderView,
}

onsale_contract::problems!(pub(crate) CancelProblems = [
    openapi::ANY,
    openapi::SESSION,
    openapi::IDEMPOTENT,
    &[
        Code::OrderNotFound,
        Code::OrderNotCancellable,
        Code::TicketsScanned,
        Code::TicketsTransferred,
    ],
]);

/// Cancels the fan's paid order, with the refund the show's policy gives.
///
/// `POST /v1/orders/{id}/cancel` (`Idempotency-Key`, the owner's session: a cancellation
/// comes days after the admission that bought the order was spent and expired): the fan's
/// paid order is cancelled under the show's refund policy, in one transaction: tickets revoked, seats back on sale,
/// the refund owed (the refund worker carries it out through the provider, retrying until
/// it succeeds), an `order_cancelled` outbox row.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/cancel",
    tag = "fan",
    params(("id" = Uuid, Path, description = "The fan's paid order."), openapi::IdempotencyKeyHeader),
    responses(
        (
            status = 200,
            description = "Cancelled: the refund owed and the order.",
            body = CancelView,
            headers(("Idempotent-Replayed" = String, description = "`true` on the stored answer of an earlier request with the same key.")),
        ),
        CancelProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn post_cancel(
    State(state): State<AppState>,
    session: Session,
    order: OrderId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = IdempotencyKey::parse(headers.get("idempotency-key"))?;
    let route = format!("POST /v1/orders/{order}/cancel");
    let fan = session.fan();
    let begun = idempotency::begin_request(&state, &fan, &key, &route, &order).await?;
    let claimed = match begun {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(claimed) => claimed,
    };
    let by = Canceller::Fan {
        fan: &fan,
        claimed: &claimed,
    };
    let result = cancel(&state, order, by).await;
    let response = idempotency::respond(&state.pool, &claimed, StatusCode::OK, result).await;
    state.workers.refunds.notify_one();
    response
}

/// The organizer's body for calling off an order or a show; it may be `{}` or absent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrganizerCancelBody {
    /// Why, in the organizer's words; it goes out with the fans' notification. At most 500
    /// characters, line breaks and tabs its only control characters; blank is the same as
    /// none.
    #[serde(default)]
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// A reason is a note for the fan, not a document.
const MAX_REASON_CHARS: usize = 500;

impl OrganizerCancelBody {
    /// The organizer's reason, if the body has one that is not blank.
    pub(crate) fn reason(body: Option<ApiJson<Self>>) -> Result<Option<String>, ApiError> {
        let Some(reason) = body
            .and_then(|ApiJson(body)| body.reason)
            .filter(|reason| !reason.trim().is_empty())
        else {
            return Ok(None);
        };
        let problem = if reason.chars().count() > MAX_REASON_CHARS {
            format!("`reason` must be at most {MAX_REASON_CHARS} characters")
        } else if !crate::domain::drafts::is_prose(&reason) {
            "`reason` must not contain control characters other than line breaks and tabs"
                .to_owned()
        } else {
            return Ok(Some(reason));
        };
        Err(ApiError::Unprocessable(Code::InvalidField, problem))
    }
}

onsale_contract::problems!(pub(crate) ForcedCancelProblems = [
    openapi::ANY,
    openapi::ORGANIZER,
    openapi::JSON_BODY,
    &[
        Code::InvalidField,
        Code::OrderNotFound,
        Code::OrderNotCancellable,
    ],
]);

/// Cancels any paid order, as the organizer, scanned tickets included.
///
/// `POST /v1/admin/orders/{id}/cancel` (organizer): cancels a paid order under the same
/// refund policy and in the same transaction as its fan's cancellation, even when tickets
/// were scanned; the optional `reason` goes out with the `order_cancelled` event. It takes
/// no `Idempotency-Key`: a repeat is refused as `order_not_cancellable` and changes nothing.
#[utoipa::path(
    post,
    path = "/v1/admin/orders/{id}/cancel",
    tag = "organizer",
    params(("id" = Uuid, Path, description = "The paid order.")),
    request_body(
        content = Option<OrganizerCancelBody>,
        description = "Optional: a request without `Content-Type` is taken to have no body.",
        content_type = "application/json",
    ),
    responses(
        (status = 200, description = "Cancelled: the refund owed and the order.", body = CancelView),
        ForcedCancelProblems,
    ),
    security(("organizer" = [])),
)]
pub(crate) async fn post_forced_cancel(
    State(state): State<AppState>,
    order: OrderId,
    body: Option<ApiJson<OrganizerCancelBody>>,
) -> Result<Response, ApiError> {
    let reason = OrganizerCancelBody::reason(body)?;
    let by = Canceller::Organizer {
        reason: reason.as_deref(),
    };
    let body = cancel(&state, order, by).await?;
    state.workers.refunds.notify_one();
    Ok(crate::http::json_response(StatusCode::OK, body))
}

/// Who cancels a paid order. Both go through [`cancel`]; this decides whose orders it
/// reaches, whether a scanned ticket stops it, and the reason recorded.
enum Canceller<'a> {
    /// The order's own fan (the signed-in account): never an order with a ticket scanned
    /// at the door, which is not refundable by policy. The answer is stored under the fan's
    /// idempotency key.
    Fan { fan: &'a str, claimed: &'a Claimed },
    /// An organizer: any paid order, scanned tickets included.
    Organizer { reason: Option<&'a str> },
}

impl Canceller<'_> {
    /// `orders.cancel_reason` and `refunds.reason`.
    fn cancel_reason(&self) -> &'static str {
        match self {
            Canceller::Fan { .. } => "fan_cancelled",
            Canceller::Organizer { .. } => "organizer_cancelled",
        }
    }
}

async fn cancel(state: &AppState, order: OrderId, by: Canceller<'_>) -> Result<Vec<u8>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let seen = sqlx::query!(
        r#"SELECT o.show_id, o.fan_id,
                array(SELECT seat_id FROM order_items WHERE order_id = o.id ORDER BY seat_id) AS "seats!"
         FROM orders o WHERE o.id = $1"#,
        order.0,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(seen) = seen.filter(|o| match &by {
        Canceller::Fan { fan, .. } => o.fan_id == *fan,
        Canceller::Organizer { .. } => true,
    }) else {
        return Err(OrderId::not_found());
    };
    let (show, seats) = (seen.show_id, seen.seats);
    // Inventory rows first, the order every writer keeps, then the order and payment, then
    // its tickets.
    lock_seats(&mut tx, show, &seats).await?;
    let locked = sqlx::query!(
        r#"SELECT o.status AS "status: OrderStatus", p.id AS payment, o.total_cents,
                  s.status = 'cancelled' AS "show_cancelled!",
                  extract(epoch FROM s.starts_at - now())::float8 AS "seconds_before!"
           FROM orders o JOIN shows s ON s.id = o.show_id JOIN payments p ON p.order_id = o.id
           WHERE o.id = $1 FOR UPDATE OF o, p"#,
        order.0,
    )
    .fetch_one(&mut *tx)
    .await?;
    let (status, payment) = (locked.status, locked.payment);
    let (total_cents, seconds_before) = (locked.total_cents, locked.seconds_before);
    if locked.show_cancelled {
        return Err(ApiError::Conflict(
            Code::OrderNotCancellable,
            "the show is called off: its orders are being cancelled and refunded in full"
                .to_owned(),
        ));
    }
    if status != OrderStatus::Confirmed {
        return Err(ApiError::Conflict(
            Code::OrderNotCancellable,
            format!("only a paid order can be cancelled; this one is {status}"),
        ));
    }
    // Locked, so that no gate scans a ticket between this check and its revocation.
    let tickets = sqlx::query!(
        r#"SELECT id, scanned_at IS NOT NULL AS "scanned!", holder FROM tickets
           WHERE order_id = $1 AND status = 'valid' ORDER BY id FOR UPDATE"#,
        order.0,
    )
    .fetch_all(&mut *tx)
    .await?;
    let scanned: Vec<String> = tickets
        .iter()
        .filter(|ticket| ticket.scanned)
        .map(|ticket| ticket.id.to_string())
        .collect();
    if let Canceller::Fan { fan, .. } = &by {
        if tickets.iter().any(|ticket| ticket.holder != *fan) {
            return Err(ApiError::Conflict(
                Code::TicketsTransferred,
                "a ticket of this order was transferred to another fan; it is theirs now"
                    .to_owned(),
            ));
        }
    }
    if matches!(by, Canceller::Fan { .. }) && !scanned.is_empty() {
        return Err(ApiError::problem(
            Problem::new(Code::TicketsScanned, "Tickets already scanned")
                .with_detail(
                    "a ticket of this order was scanned at the door and is not refundable; \
                     only the organizer can cancel the order",
                )
                .with("scanned_ticket_ids", scanned),
        ));
    }
    let orders = &state.config.orders;
    let policy = orders
        .show_refund_policies
        .get(&show.to_string())
        .unwrap_or(&orders.refund_policy);
    let refund_cents = policy.refund_cents(total_cents, seconds_before as i64);
    let reason = by.cancel_reason();
    if refund_cents > 0 {
        owe_refund(&mut tx, order, payment, refund_cents, reason).await?;
    }
    sqlx::query!(
        "UPDATE orders SET status = 'cancelled', cancel_reason = $2 WHERE id = $1",
        order.0,
        reason,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE tickets SET status = 'revoked' WHERE order_id = $1 AND status = 'valid'",
        order.0,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "WITH freed AS (
             UPDATE seat_inventory
             SET status = CASE WHEN waitlist_waiting($1) THEN 'returned' ELSE 'available' END,
                 order_id = NULL, version = version + 1
             WHERE show_id = $1 AND seat_id = ANY($2) AND order_id = $3
             RETURNING show_id, seat_id, status)
         INSERT INTO seat_returns (show_id, seat_id, returned_at)
         SELECT show_id, seat_id, now() FROM freed WHERE status = 'returned'",
        show,
        &seats,
        order.0,
    )
    .execute(&mut *tx)
    .await?;
    let mut event = serde_json::json!({ "refund_cents": refund_cents, "cancel_reason": reason });
    if let Canceller::Organizer { reason: Some(note) } = by {
        event["reason"] = note.into();
    }
    outbox(&mut tx, order, "order_cancelled", event).await?;
    let view = CancelView {
        refund_cents,
        order: crate::orders::load(&mut tx, order).await?,
    };
    let body = crate::http::to_json(&view)?;
    if let Canceller::Fan { claimed, .. } = by {
        idempotency::store_in(&mut tx, claimed, 200, &body).await?;
    }
    tx.commit().await?;
    Ok(body)
}
