//! Calling off a show: `POST /v1/admin/shows/{id}/cancel` and its progress,
//! `GET /v1/admin/shows/{id}/cancellation`.
//!
//! The request stops the sale in one short transaction: the show becomes `cancelled` (every
//! claim of it is refused from then on, and so is a fan's or an organizer's cancellation of
//! one of its orders, which the job refunds in full) and its free seats `unavailable`. A claim that read the show as on sale just before has either locked its
//! seats already, so its hold commits before the cancellation and the job below finds it,
//! or finds them unavailable. The availability snapshot then shows no open seat, so the
//! waiting room stops calling fans on the builder's next round.
//!
//! The rest is a job whose whole state is a `show_cancellations` row, carried out by
//! [`run`] on every origin (one at a time per show, by an advisory lock), so a crash
//! anywhere leaves it to be resumed by the next round of any origin. Each batch is one
//! short transaction, of at most `orders.show_cancellation_batch` holds or orders:
//! 1. live holds are released and their unpaid orders cancelled;
//! 2. then paid orders are cancelled, a full refund owed for each (the refund worker pays
//!    it, once per payment) and their tickets revoked.
//!
//! Seats go to `unavailable`, never back on sale. Each fan with an order or a ticket of the
//! show (one transferred to it) hears of it once (`show_cancelled`, to the account), in the
//! batch that reaches it first; refunds are announced as they are paid (`refund_issued`). When neither kind of
//! batch finds anything, the job is done.

use crate::domain::ShowId;
use crate::error::{ApiError, Code};
use crate::holds::lock_seats;
use crate::json::ApiJson;
use crate::openapi;
use crate::payments::OrganizerCancelBody;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use sqlx::PgConnection;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// How often the worker looks for jobs no request of this origin woke it for: another
/// origin's, or one left by a crash.
const POLL: Duration = Duration::from_secs(1);
/// Jobs worked on per round.
const JOBS_PER_ROUND: i64 = 16;

/// Where a show's cancellation stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CancellationState {
    /// Orders and holds of the show are still being cancelled.
    InProgress,
    /// Every hold is released and every order cancelled; refunds may still be on their way
    /// (`refunds_owed` against `refunds_issued`).
    Done,
}

/// A show's cancellation and its progress.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CancellationView {
    /// The show.
    show_id: Uuid,
    /// Where the cancellation stands.
    state: CancellationState,
    /// The organizer's reason, if one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// When the show was called off, Unix ms.
    requested_at_ms: i64,
    /// When the last order was cancelled, Unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at_ms: Option<i64>,
    /// Paid orders of the show when it was called off.
    paid_orders_at_request: i32,
    /// Paid orders cancelled so far, each with a full refund owed.
    paid_orders_cancelled: i32,
    /// Orders awaiting payment cancelled so far.
    unpaid_orders_cancelled: i32,
    /// Live holds released so far.
    holds_released: i32,
    /// Fans told so far, each once.
    fans_notified: i32,
    /// Refunds owed for the show's cancelled orders.
    refunds_owed: i64,
    /// Of those, refunds the payment provider has carried out.
    refunds_issued: i64,
}

onsale_contract::problems!(pub(crate) CancelShowProblems = [
    openapi::ANY,
    openapi::ORGANIZER,
    openapi::JSON_BODY,
    &[Code::InvalidField, Code::ShowNotFound, Code::ShowNotCancellable],
]);

/// Calls a show off: its sale stops at once and every order of it is cancelled and
/// refunded in full.
///
/// `POST /v1/admin/shows/{id}/cancel` (organizer): the show is `cancelled` and its free
/// seats unavailable in one transaction, so no hold of it is made afterwards (an order or
/// payment of a hold made before is cancelled and refunded like the rest); the waiting room
/// stops calling fans on the seat-map builder's next round.
/// Live holds are released, unpaid orders cancelled, and paid orders cancelled with a full
/// refund and their tickets revoked, in the background, in short batches, resumed by any
/// origin after a crash. Each fan with an order is notified once (`show_cancelled`), with the
/// optional `reason`. The answer is the progress, as `GET .../cancellation` gives it. A
/// repeat changes nothing and answers the same way. A show that has started or is over
/// cannot be called off (`show_not_cancellable`).
#[utoipa::path(
    post,
    path = "/v1/admin/shows/{id}/cancel",
    tag = "organizer",
    params(("id" = Uuid, Path, description = "The show.")),
    request_body(
        content = Option<OrganizerCancelBody>,
        description = "Optional: a request without `Content-Type` is taken to have no body.",
        content_type = "application/json",
    ),
    responses(
        (status = 202, description = "Called off; the orders are being cancelled.", body = CancellationView),
        CancelShowProblems,
    ),
    security(("organizer" = [])),
)]
pub(crate) async fn post_cancel_show(
    State(state): State<AppState>,
    show: ShowId,
    body: Option<ApiJson<OrganizerCancelBody>>,
) -> Result<Response, ApiError> {
    let reason = OrganizerCancelBody::reason(body)?;
    let mut tx = state.pool.begin().await?;
    let found = sqlx::query!(
        r#"SELECT status, starts_at <= now() AS "started!" FROM shows WHERE id = $1 FOR UPDATE"#,
        show.0,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(ShowId::not_found)?;
    if found.status != "cancelled" {
        if found.status == "completed" || found.started {
            return Err(ApiError::Conflict(
                Code::ShowNotCancellable,
                "the show has started or is over; only a show yet to start can be called off"
                    .to_owned(),
            ));
        }
        stop_sale(&mut tx, show.0, reason.as_deref()).await?;
    }
    let view = load(&mut tx, show.0).await?.ok_or_else(ShowId::not_found)?;
    tx.commit().await?;
    state.workers.show_cancellations.notify_one();
    crate::http::json(StatusCode::ACCEPTED, &view)
}

/// The show `cancelled`, its free seats and places unavailable and the job recorded, in the caller's
/// transaction, which holds the show's row.
async fn stop_sale(
    tx: &mut PgConnection,
    show: Uuid,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE shows SET status = 'cancelled' WHERE id = $1", show)
        .execute(&mut *tx)
        .await?;
    // A claim locks the seats it takes, so it either got them before this (and its hold is
    // committed when this commits) or finds them unavailable.
    sqlx::query!(
        "UPDATE seat_inventory SET status = 'unavailable', hold_id = NULL, hold_expires_at = NULL,
                version = version + 1
         WHERE show_id = $1
           AND (status IN ('available', 'returned') OR (status = 'held' AND hold_expires_at <= now()))",
        show,
    )
    .execute(&mut *tx)
    .await?;
    // The waitlist closes with the sale: nothing is offered again, and the seats that came
    // back stay unavailable with the rest. Offers are holds, released by the job.
    sqlx::query!("DELETE FROM seat_returns WHERE show_id = $1", show)
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "UPDATE waitlist_entries SET status = 'closed', ended_at = now()
         WHERE show_id = $1 AND status IN ('waiting', 'offered')",
        show,
    )
    .execute(&mut *tx)
    .await?;
    // General-admission places: a claim queues on the counter's row, so it takes places
    // before this or finds none; none come back later (migration 0021).
    sqlx::query!(
        "UPDATE ga_inventory SET available = 0 WHERE show_id = $1",
        show
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO show_cancellations (show_id, reason, paid_orders)
         SELECT $1, $2, count(*) FROM orders WHERE show_id = $1 AND status = 'confirmed'",
        show,
        reason,
    )
    .execute(&mut *tx)
    .await?;
    tracing::warn!(%show, "show called off; cancelling its orders");
    Ok(())
}

onsale_contract::problems!(pub(crate) CancellationProblems = [
    openapi::ANY,
    openapi::ORGANIZER,
    &[Code::ShowNotFound, Code::CancellationNotFound],
]);

/// A show's cancellation and its progress.
///
/// `GET /v1/admin/shows/{id}/cancellation` (organizer): holds released, orders cancelled,
/// fans notified and refunds owed and issued so far; `done` once every order is cancelled.
#[utoipa::path(
    get,
    path = "/v1/admin/shows/{id}/cancellation",
    tag = "organizer",
    params(("id" = Uuid, Path, description = "The show.")),
    responses(
        (status = 200, description = "The cancellation.", body = CancellationView),
        CancellationProblems,
    ),
    security(("organizer" = [])),
)]
pub(crate) async fn get_cancellation(
    State(state): State<AppState>,
    show: ShowId,
) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await?;
    match load(&mut conn, show.0).await? {
        Some(view) => crate::http::json(StatusCode::OK, &view),
        None => {
            crate::catalog::require_show(&mut *conn, show).await?;
            Err(ApiError::NotFound {
                code: Code::CancellationNotFound,
                what: "Cancellation",
            })
        }
    }
}

async fn load(
    conn: &mut PgConnection,
    show: Uuid,
) -> Result<Option<CancellationView>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT c.reason, c.paid_orders, c.orders_cancelled, c.unpaid_orders_cancelled,
                  c.holds_released, c.fans_notified,
                  (extract(epoch FROM c.requested_at) * 1000)::int8 AS "requested_at_ms!",
                  (extract(epoch FROM c.finished_at) * 1000)::int8 AS finished_at_ms,
                  count(r.id) AS "refunds_owed!",
                  count(r.id) FILTER (WHERE r.status = 'succeeded') AS "refunds_issued!"
           FROM show_cancellations c
           LEFT JOIN orders o ON o.show_id = c.show_id AND o.status = 'cancelled'
                             AND o.cancel_reason = 'show_cancelled'
           LEFT JOIN refunds r ON r.order_id = o.id AND r.reason = 'show_cancelled'
           WHERE c.show_id = $1
           GROUP BY c.show_id"#,
        show,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|row| CancellationView {
        show_id: show,
        state: if row.finished_at_ms.is_some() {
            CancellationState::Done
        } else {
            CancellationState::InProgress
        },
        reason: row.reason,
        requested_at_ms: row.requested_at_ms,
        finished_at_ms: row.finished_at_ms,
        paid_orders_at_request: row.paid_orders,
        paid_orders_cancelled: row.orders_cancelled,
        unpaid_orders_cancelled: row.unpaid_orders_cancelled,
        holds_released: row.holds_released,
        fans_notified: row.fans_notified,
        refunds_owed: row.refunds_owed,
        refunds_issued: row.refunds_issued,
    }))
}

/// What one batch of a job did.
#[derive(Debug, PartialEq, Eq)]
enum Batch {
    /// Holds were released or orders cancelled; there may be more.
    Worked,
    /// Nothing was left: the job is done.
    Finished,
    /// Another origin is working on this show.
    Elsewhere,
}

/// One batch of `show`'s cancellation, in one transaction.
async fn batch(state: &AppState, show: Uuid) -> Result<Batch, sqlx::Error> {
    let size = i64::from(state.config.orders.show_cancellation_batch);
    let mut tx = state.pool.begin().await?;
    let mine = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock(hashtextextended('show_cancellation:' || $1::uuid::text, 0)) AS "mine!""#,
        show,
    )
    .fetch_one(&mut *tx)
    .await?;
    if !mine {
        return Ok(Batch::Elsewhere);
    }
    let done = if release_holds(&mut tx, show, size).await? {
        Batch::Worked
    } else if cancel_paid_orders(&mut tx, show, size).await? {
        state.workers.refunds.notify_one();
        Batch::Worked
    } else {
        // Seats a racing fan cancellation or the sweeper put back on sale before their
        // order or hold was reached.
        sqlx::query!(
            "UPDATE seat_inventory SET status = 'unavailable', version = version + 1
             WHERE show_id = $1 AND status = 'available'",
            show,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE show_cancellations SET finished_at = now() WHERE show_id = $1 AND finished_at IS NULL",
            show,
        )
        .execute(&mut *tx)
        .await?;
        tracing::info!(%show, "show cancellation done");
        Batch::Finished
    };
    tx.commit().await?;
    Ok(done)
}

/// Releases up to `size` live holds of the show and cancels their unpaid orders; whether
/// there were any.
async fn release_holds(tx: &mut PgConnection, show: Uuid, size: i64) -> Result<bool, sqlx::Error> {
    let holds: Vec<Uuid> = sqlx::query_scalar!(
        r#"SELECT hold AS "hold!" FROM (
             SELECT hold_id AS hold FROM seat_inventory WHERE show_id = $1 AND status = 'held'
             UNION
             SELECT id FROM holds WHERE show_id = $1 AND ga_section IS NOT NULL AND status = 'active'
           ) live LIMIT $2"#,
        show,
        size,
    )
    .fetch_all(&mut *tx)
    .await?;
    if holds.is_empty() {
        return Ok(false);
    }
    let seats: Vec<i64> = sqlx::query_scalar!(
        "SELECT seat_id FROM seat_inventory WHERE show_id = $1 AND hold_id = ANY($2)",
        show,
        &holds,
    )
    .fetch_all(&mut *tx)
    .await?;
    lock_seats(tx, show, &seats).await?;
    let released = sqlx::query!(
        "UPDATE holds SET status = 'released', ended_at = now() WHERE id = ANY($1) AND status = 'active'",
        &holds,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query!(
        "UPDATE seat_inventory SET status = 'unavailable', hold_id = NULL, hold_expires_at = NULL,
                version = version + 1
         WHERE show_id = $1 AND seat_id = ANY($2) AND hold_id = ANY($3)",
        show,
        &seats,
        &holds,
    )
    .execute(&mut *tx)
    .await?;
    let fans: Vec<String> = sqlx::query_scalar!(
        "UPDATE orders SET status = 'cancelled', cancel_reason = 'show_cancelled'
         WHERE hold_id = ANY($1) AND status = 'pending_payment' RETURNING fan_id",
        &holds,
    )
    .fetch_all(&mut *tx)
    .await?;
    let notified = notify_fans(tx, show, &fans).await?;
    sqlx::query!(
        "UPDATE show_cancellations
         SET holds_released = holds_released + $2, unpaid_orders_cancelled = unpaid_orders_cancelled + $3,
             fans_notified = fans_notified + $4
         WHERE show_id = $1",
        show,
        released as i32,
        fans.len() as i32,
        notified,
    )
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

/// Cancels up to `size` paid orders of the show, each with a full refund owed and its
/// tickets revoked; whether there were any.
async fn cancel_paid_orders(
    tx: &mut PgConnection,
    show: Uuid,
    size: i64,
) -> Result<bool, sqlx::Error> {
    let orders: Vec<Uuid> = sqlx::query_scalar!(
        "SELECT id FROM orders WHERE show_id = $1 AND status = 'confirmed' ORDER BY id LIMIT $2",
        show,
        size,
    )
    .fetch_all(&mut *tx)
    .await?;
    if orders.is_empty() {
        return Ok(false);
    }
    let seats: Vec<i64> = sqlx::query_scalar!(
        "SELECT seat_id FROM order_items WHERE order_id = ANY($1)",
        &orders,
    )
    .fetch_all(&mut *tx)
    .await?;
    // Inventory rows first, the order every writer keeps, then the orders, their payments
    // and their tickets.
    lock_seats(tx, show, &seats).await?;
    // The orders cancelled (with their fans), then the holders of their tickets: a ticket
    // transferred away is its new holder's loss too.
    let cancelled = sqlx::query!(
        r#"WITH cancelled AS (
             UPDATE orders SET status = 'cancelled', cancel_reason = 'show_cancelled'
             WHERE id = ANY($1) AND status = 'confirmed'
             RETURNING id, fan_id
         ), owed AS (
             INSERT INTO refunds (id, order_id, payment_id, amount_cents, reason, status)
             SELECT gen_random_uuid(), p.order_id, p.id, p.amount_cents - p.refunded_cents, 'show_cancelled', 'pending'
             FROM payments p JOIN cancelled c ON c.id = p.order_id
             WHERE p.status = 'succeeded' AND p.amount_cents > p.refunded_cents
             ON CONFLICT (payment_id) DO NOTHING
         ), revoked AS (
             UPDATE tickets SET status = 'revoked'
             WHERE order_id IN (SELECT id FROM cancelled) AND status = 'valid'
             RETURNING holder
         )
         SELECT id AS "id?", fan_id AS "fan!" FROM cancelled
         UNION ALL SELECT NULL, holder FROM revoked"#,
        &orders,
    )
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<Uuid> = cancelled.iter().filter_map(|row| row.id).collect();
    sqlx::query!(
        "UPDATE seat_inventory SET status = 'unavailable', order_id = NULL, version = version + 1
         WHERE show_id = $1 AND seat_id = ANY($2) AND order_id = ANY($3)",
        show,
        &seats,
        &ids,
    )
    .execute(&mut *tx)
    .await?;
    let fans: Vec<String> = cancelled.into_iter().map(|row| row.fan).collect();
    let notified = notify_fans(tx, show, &fans).await?;
    sqlx::query!(
        "UPDATE show_cancellations
         SET orders_cancelled = orders_cancelled + $2, fans_notified = fans_notified + $3
         WHERE show_id = $1",
        show,
        ids.len() as i32,
        notified,
    )
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

/// A `show_cancelled` event for each of `fans` not told before; how many were told now.
async fn notify_fans(
    tx: &mut PgConnection,
    show: Uuid,
    fans: &[String],
) -> Result<i32, sqlx::Error> {
    if fans.is_empty() {
        return Ok(0);
    }
    let told = sqlx::query_scalar!(
        r#"WITH told AS (
             INSERT INTO show_cancellation_notices (show_id, fan_id)
             SELECT DISTINCT $1::uuid, fan FROM unnest($2::text[]) fan
             ON CONFLICT DO NOTHING
             RETURNING fan_id
           ), sent AS (
             INSERT INTO outbox (aggregate_id, aggregate_type, event_type, payload)
             SELECT t.fan_id::uuid, 'account', 'show_cancelled',
                    jsonb_build_object('fan_id', t.fan_id, 'show_id', s.id, 'event_name', e.name,
                                       'starts_at', s.starts_at, 'reason', c.reason)
             FROM told t, shows s JOIN events e ON e.id = s.event_id
                  JOIN show_cancellations c ON c.show_id = s.id
             -- Every fan is an account; an id that is not one cannot stop the job.
             WHERE s.id = $1 AND t.fan_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
           )
           SELECT count(*) AS "told!" FROM told"#,
        show,
        fans as &[String],
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(told as i32)
}

/// Works on every unfinished cancellation until `stopped`: at once when a request wakes
/// it, else every second, batch after batch while there is work.
pub(crate) async fn run(state: AppState, mut stopped: watch::Receiver<bool>) {
    loop {
        match round(&state).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "show cancellation round failed"),
        }
        tokio::select! {
            _ = state.workers.show_cancellations.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

/// One batch of each unfinished job; whether any did work.
async fn round(state: &AppState) -> Result<bool, sqlx::Error> {
    let shows = sqlx::query_scalar!(
        "SELECT show_id FROM show_cancellations WHERE finished_at IS NULL ORDER BY requested_at LIMIT $1",
        JOBS_PER_ROUND,
    )
    .fetch_all(&state.pool)
    .await?;
    let mut worked = false;
    for show in shows {
        worked |= batch(state, show).await? == Batch::Worked;
    }
    Ok(worked)
}
