//! The refund worker: carries out refunds owed (`refunds` rows, committed with the
//! cancellation or late payment that owes them) through the provider, outside any
//! transaction, retrying with exponential backoff until the provider says yes. Each attempt
//! uses the refund's id as the provider's idempotency key, so a retry after an unknown
//! outcome refunds once.
//!
//! A claimed refund is leased (`next_attempt_at` moves past the call), so several origin
//! instances share the work and a worker that dies mid-call is replaced after the lease.

use crate::domain::OrderId;
use crate::payments::outbox;
use crate::AppState;
use std::time::Duration;
use tokio::sync::watch;

const BATCH: i64 = 32;
const LEASE_S: f64 = 60.0;

/// One round: every refund that is due gets one attempt. Returns how many were tried.
pub(crate) async fn refund_due(state: &AppState) -> Result<usize, sqlx::Error> {
    let due = sqlx::query!(
        "UPDATE refunds r SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
         FROM payments p
         WHERE p.id = r.payment_id AND r.id IN (
             SELECT id FROM refunds WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING r.id, r.order_id, r.payment_id, r.amount_cents, r.reason, p.provider_ref, r.attempts",
        BATCH,
        LEASE_S,
    )
    .fetch_all(&state.pool)
    .await?;
    let payments = &state.config.payments;
    for row in &due {
        let (refund, order, payment) = (row.id, row.order_id, row.payment_id);
        let (amount_cents, attempts) = (row.amount_cents, row.attempts);
        let (reason, intent) = (&row.reason, &row.provider_ref);
        let metric = &state.metrics.refunds;
        match state
            .provider
            .refund(intent, amount_cents, &refund.to_string())
            .await
        {
            Ok(reference) => {
                let mut tx = state.pool.begin().await?;
                let done = sqlx::query!(
                    "UPDATE refunds SET status = 'succeeded', provider_ref = $2, completed_at = now(), last_error = NULL
                     WHERE id = $1 AND status = 'pending'",
                    refund,
                    reference,
                )
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 {
                    sqlx::query!(
                        "UPDATE payments SET refunded_cents = refunded_cents + $2, updated_at = now(),
                                status = CASE WHEN refunded_cents + $2 >= amount_cents THEN 'refunded' ELSE status END
                         WHERE id = $1",
                        payment,
                        amount_cents,
                    )
                    .execute(&mut *tx)
                    .await?;
                    let payload = serde_json::json!({
                        "refund_id": refund, "amount_cents": amount_cents, "reason": reason,
                    });
                    outbox(&mut tx, OrderId(order), "refund_issued", payload).await?;
                }
                tx.commit().await?;
                metric.with_label_values(&["succeeded"]).inc();
                tracing::info!(%refund, %order, amount_cents, "refund issued");
            }
            Err(error) => {
                metric.with_label_values(&["failed"]).inc();
                let wait = onsale_contract::backoff::Backoff::new(
                    std::time::Duration::from_millis(payments.refund_retry_base_ms),
                    std::time::Duration::from_millis(payments.refund_retry_max_ms),
                )
                .delay(u32::try_from(attempts).unwrap_or(0));
                tracing::warn!(%refund, %order, attempts, %error, retry_in_ms = wait.as_millis() as u64, "refund failed");
                sqlx::query!(
                    "UPDATE refunds SET last_error = $2, next_attempt_at = now() + make_interval(secs => $3)
                     WHERE id = $1 AND status = 'pending'",
                    refund,
                    error.to_string(),
                    wait.as_secs_f64(),
                )
                .execute(&state.pool)
                .await?;
            }
        }
    }
    Ok(due.len())
}

/// Runs rounds until `stopped`: when woken (a refund was just owed) or every
/// `refund_poll_ms`.
pub(crate) async fn run(state: AppState, mut stopped: watch::Receiver<bool>) {
    let poll = Duration::from_millis(state.config.payments.refund_poll_ms);
    loop {
        match refund_due(&state).await {
            Ok(n) if n as i64 >= BATCH => continue,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "refund round failed"),
        }
        tokio::select! {
            _ = state.workers.refunds.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}
