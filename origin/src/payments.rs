//! Payment confirmation with the sandbox provider's test methods that settle at once
//! (`pm_card_ok`, `pm_card_declined`). One transaction per outcome:
//! - success: payment `succeeded`, order `confirmed`, hold `converted`, seats `sold` to the
//!   order, one ticket per seat, an `order_confirmed` outbox row;
//! - decline: payment `failed`, order `payment_failed`, hold released and its seats back on
//!   sale at once, a `payment_failed` outbox row.
//!
//! Locks are taken in the order every writer keeps: the seats' inventory rows, the hold,
//! then the order and payment; a second confirmation waits, then finds the order settled.
//! The sandbox decides inside the transaction; asynchronous outcomes (3-D Secure, slow
//! payments settled by webhook) are not built yet.

use crate::auth::Admission;
use crate::domain::payment_method::ConfirmBody;
use crate::domain::{IdempotencyKey, OrderId, PaymentId, PaymentMethod};
use crate::error::ApiError;
use crate::holds::{close_hold_seats, free_seats, lock_hold, lock_seats};
use crate::idempotency::{self, Begin, Claimed};
use crate::json::ApiJson;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use uuid::Uuid;

#[derive(Serialize)]
struct ConfirmView {
    payment_id: Uuid,
    status: &'static str,
    order: crate::orders::OrderView,
}

pub async fn post_confirm(
    State(state): State<AppState>,
    admission: Admission,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<Response, ApiError> {
    let payment = PaymentId::parse_path(&id)?;
    let key = IdempotencyKey::parse(headers.get("idempotency-key"))?;
    let method = PaymentMethod::parse(body)?;
    let route = format!("POST /v1/payments/{payment}/confirm");
    let begun = idempotency::begin_request(&state, &admission.fan, &key, &route, &method).await?;
    let claimed = match begun {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(claimed) => claimed,
    };
    let result = confirm(&state, &admission, payment, method, &claimed).await;
    idempotency::respond(&state.pool, &claimed, StatusCode::OK, result).await
}

async fn confirm(
    state: &AppState,
    admission: &Admission,
    payment: PaymentId,
    method: PaymentMethod,
    claimed: &Claimed,
) -> Result<Vec<u8>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let seen: Option<(Uuid, Uuid, Uuid, String, Vec<i64>)> = sqlx::query_as(
        "SELECT o.id, o.show_id, o.hold_id, o.fan_id,
                array(SELECT seat_id FROM order_items WHERE order_id = o.id ORDER BY seat_id)
         FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.id = $1",
    )
    .bind(payment)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((order, show, hold, _, seats)) = seen
        .filter(|(_, show, _, fan, _)| *fan == admission.fan && show.to_string() == admission.show)
    else {
        return Err(PaymentId::not_found());
    };
    let hold_live = lock_hold(&mut tx, show, &seats, hold).await?;
    let (order_status, payment_status): (String, String) = sqlx::query_as(
        "SELECT o.status, p.status FROM orders o JOIN payments p ON p.order_id = o.id
         WHERE p.id = $1 FOR UPDATE OF o, p",
    )
    .bind(payment)
    .fetch_one(&mut *tx)
    .await?;
    if order_status != "pending_payment" || payment_status != "requires_confirmation" {
        return Err(ApiError::Conflict(
            "payment_not_confirmable",
            format!("the order is {order_status} and its payment {payment_status}"),
        ));
    }
    if !hold_live {
        return Err(ApiError::Conflict(
            "order_expired",
            "the payment window has passed; the seats are no longer held".to_owned(),
        ));
    }
    let status = match method {
        PaymentMethod::CardOk => {
            settle_paid(&mut tx, payment, OrderId(order), show, hold, &seats).await?;
            "succeeded"
        }
        PaymentMethod::CardDeclined => {
            settle_declined(&mut tx, payment, OrderId(order), show, hold).await?;
            "failed"
        }
    };
    let view = ConfirmView {
        payment_id: payment.0,
        status,
        order: crate::orders::load(&mut tx, OrderId(order)).await?,
    };
    let body = serde_json::to_vec(&view).expect("a confirmation serializes");
    idempotency::store_in(&mut tx, claimed, 200, &body).await?;
    tx.commit().await?;
    Ok(body)
}

async fn settle_paid(
    tx: &mut sqlx::PgConnection,
    payment: PaymentId,
    order: OrderId,
    show: Uuid,
    hold: Uuid,
    seats: &[i64],
) -> Result<(), ApiError> {
    sqlx::query("UPDATE payments SET status = 'succeeded', updated_at = now() WHERE id = $1")
        .bind(payment)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE orders SET status = 'confirmed', confirmed_at = now() WHERE id = $1")
        .bind(order)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE holds SET status = 'converted', ended_at = now() WHERE id = $1")
        .bind(hold)
        .execute(&mut *tx)
        .await?;
    close_hold_seats(tx, &[hold]).await?;
    let sold = sqlx::query(
        "UPDATE seat_inventory SET status = 'sold', order_id = $4, hold_id = NULL, hold_expires_at = NULL,
                                   version = version + 1
         WHERE show_id = $1 AND seat_id = ANY($2) AND hold_id = $3 AND status = 'held'",
    )
    .bind(show)
    .bind(seats)
    .bind(hold)
    .bind(order)
    .execute(&mut *tx)
    .await?;
    // The live hold was locked above, so all its seats are still its own.
    if sold.rows_affected() != seats.len() as u64 {
        return Err(ApiError::Internal(format!(
            "order {order}: {} of {} seats were still held",
            sold.rows_affected(),
            seats.len()
        )));
    }
    let tickets: Vec<Uuid> = seats.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO tickets (id, order_id, show_id, seat_id, status)
         SELECT unnest($1::uuid[]), $2, $3, unnest($4::int8[]), 'valid'",
    )
    .bind(&tickets)
    .bind(order)
    .bind(show)
    .bind(seats)
    .execute(&mut *tx)
    .await?;
    outbox(
        tx,
        order,
        "order_confirmed",
        serde_json::json!({
            "order_id": order.0, "ticket_ids": tickets,
        }),
    )
    .await
}

async fn settle_declined(
    tx: &mut sqlx::PgConnection,
    payment: PaymentId,
    order: OrderId,
    show: Uuid,
    hold: Uuid,
) -> Result<(), ApiError> {
    sqlx::query("UPDATE payments SET status = 'failed', updated_at = now() WHERE id = $1")
        .bind(payment)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE orders SET status = 'payment_failed' WHERE id = $1")
        .bind(order)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE holds SET status = 'released', ended_at = now() WHERE id = $1")
        .bind(hold)
        .execute(&mut *tx)
        .await?;
    free_seats(tx, show, &[hold]).await?;
    outbox(
        tx,
        order,
        "payment_failed",
        serde_json::json!({ "order_id": order.0 }),
    )
    .await
}

async fn outbox(
    tx: &mut sqlx::PgConnection,
    order: OrderId,
    event: &str,
    payload: serde_json::Value,
) -> Result<(), ApiError> {
    sqlx::query("INSERT INTO outbox (aggregate_id, event_type, payload) VALUES ($1, $2, $3)")
        .bind(order)
        .bind(event)
        .bind(payload)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[derive(Serialize)]
struct CancelView {
    refund_cents: i64,
    order: crate::orders::OrderView,
}

/// `POST /v1/orders/{id}/cancel` (`Idempotency-Key`): the fan's paid order is cancelled
/// under the show's refund policy, in one transaction: the refund through the provider,
/// tickets revoked, seats back on sale, a `refund_issued` outbox row.
pub async fn post_cancel(
    State(state): State<AppState>,
    admission: Admission,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let order = OrderId::parse_path(&id)?;
    let key = IdempotencyKey::parse(headers.get("idempotency-key"))?;
    let route = format!("POST /v1/orders/{order}/cancel");
    let begun = idempotency::begin_request(&state, &admission.fan, &key, &route, &order).await?;
    let claimed = match begun {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(claimed) => claimed,
    };
    let result = cancel(&state, &admission, order, &claimed).await;
    idempotency::respond(&state.pool, &claimed, StatusCode::OK, result).await
}

async fn cancel(
    state: &AppState,
    admission: &Admission,
    order: OrderId,
    claimed: &Claimed,
) -> Result<Vec<u8>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let seen: Option<(Uuid, String, Vec<i64>)> = sqlx::query_as(
        "SELECT o.show_id, o.fan_id,
                array(SELECT seat_id FROM order_items WHERE order_id = o.id ORDER BY seat_id)
         FROM orders o WHERE o.id = $1",
    )
    .bind(order)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((show, _, seats)) =
        seen.filter(|(show, fan, _)| *fan == admission.fan && show.to_string() == admission.show)
    else {
        return Err(OrderId::not_found());
    };
    // Inventory rows first, the order every writer keeps, then the order.
    lock_seats(&mut tx, show, &seats).await?;
    let (status, total_cents, seconds_before): (String, i64, f64) = sqlx::query_as(
        "SELECT o.status, o.total_cents, extract(epoch FROM s.starts_at - now())::float8
         FROM orders o JOIN shows s ON s.id = o.show_id WHERE o.id = $1 FOR UPDATE OF o",
    )
    .bind(order)
    .fetch_one(&mut *tx)
    .await?;
    if status != "confirmed" {
        return Err(ApiError::Conflict(
            "order_not_cancellable",
            format!("only a paid order can be cancelled; this one is {status}"),
        ));
    }
    let orders = &state.config.orders;
    let policy = orders
        .show_refund_policies
        .get(&show.to_string())
        .unwrap_or(&orders.refund_policy);
    let refund_cents = policy.refund_cents(total_cents, seconds_before as i64);
    // The sandbox refunds at once; the payment records it.
    sqlx::query(
        "UPDATE payments SET status = 'refunded', updated_at = now() WHERE order_id = $1 AND status = 'succeeded'",
    )
    .bind(order)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE orders SET status = 'cancelled', cancel_reason = 'fan_cancelled' WHERE id = $1",
    )
    .bind(order)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE tickets SET status = 'revoked' WHERE order_id = $1 AND status = 'valid'")
        .bind(order)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE seat_inventory SET status = 'available', order_id = NULL, version = version + 1
         WHERE show_id = $1 AND seat_id = ANY($2) AND order_id = $3",
    )
    .bind(show)
    .bind(&seats)
    .bind(order)
    .execute(&mut *tx)
    .await?;
    outbox(
        &mut tx,
        order,
        "refund_issued",
        serde_json::json!({ "order_id": order.0, "refund_cents": refund_cents }),
    )
    .await?;
    let view = CancelView {
        refund_cents,
        order: crate::orders::load(&mut tx, order).await?,
    };
    let body = serde_json::to_vec(&view).expect("a cancellation serializes");
    idempotency::store_in(&mut tx, claimed, 200, &body).await?;
    tx.commit().await?;
    Ok(body)
}
