//! The reconciliation job. Webhooks get lost and confirmations die mid-call, so every
//! `reconcile_interval_s` it asks the provider about payments `processing` for longer than
//! `stuck_after_s` and applies the answer (`payments::apply` with `resync`). Then it counts
//! what must never exist and exports the counts as `onsale_origin_reconcile_breaches`:
//! - `orders_paid_without_tickets`: money kept (a succeeded payment, no refund owed) for an
//!   order that is neither confirmed with one valid ticket per seat or place nor cancelled by
//!   its fan;
//! - `seats_held_without_live_hold`: seats `held` (and not yet past their expiry, which is
//!   the sweeper's business) whose hold is not active or no longer holds them.

use crate::payments::{apply, Applied};
use crate::AppState;
use std::time::Duration;
use tokio::sync::watch;

/// Payments asked about per round.
const BATCH: i64 = 100;

/// What one reconciliation round found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Payments `processing` for longer than `stuck_after_s` (at most one batch).
    pub stuck: usize,
    /// How many of them the provider's answer moved.
    pub moved: usize,
    /// Breaches of the `orders_paid_without_tickets` invariant; must be 0.
    pub orders_paid_without_tickets: i64,
    /// Breaches of the `seats_held_without_live_hold` invariant; must be 0.
    pub seats_held_without_live_hold: i64,
}

/// One round: asks the provider about stuck payments and applies its answers, then counts
/// the invariant breaches and exports them as metrics.
pub async fn reconcile_once(state: &AppState) -> Result<Report, crate::error::ApiError> {
    let stuck = sqlx::query!(
        "SELECT id, provider_ref FROM payments
         WHERE status = 'processing' AND updated_at < now() - make_interval(secs => $1)
         ORDER BY updated_at LIMIT $2",
        state.config.payments.stuck_after_s,
        BATCH,
    )
    .fetch_all(&state.pool)
    .await?;
    let mut report = Report {
        stuck: stuck.len(),
        ..Report::default()
    };
    let metric = &state.metrics.reconciled;
    for row in &stuck {
        let (payment, intent) = (row.id, &row.provider_ref);
        let intent = match state.provider.retrieve(intent).await {
            Ok(intent) => intent,
            Err(error) => {
                metric.with_label_values(&["unavailable"]).inc();
                tracing::warn!(%payment, %error, "cannot reconcile a stuck payment yet");
                continue;
            }
        };
        let mut tx = state.pool.begin().await?;
        let applied = apply(&mut tx, state, payment, &intent, true).await?;
        tx.commit().await?;
        if applied == Applied::Moved {
            report.moved += 1;
            metric.with_label_values(&["moved"]).inc();
            tracing::info!(%payment, status = intent.status.as_str(), "reconciled a stuck payment");
        } else {
            metric.with_label_values(&["unchanged"]).inc();
        }
    }
    if report.moved > 0 {
        state.workers.refunds.notify_one();
    }
    // A cancellation under the refund policy (by the fan or an organizer) may owe nothing.
    report.orders_paid_without_tickets = sqlx::query_scalar!(
        r#"SELECT count(*) AS "breaches!" FROM orders o JOIN payments p ON p.order_id = o.id
         WHERE p.status = 'succeeded'
           AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.id)
           AND coalesce(o.cancel_reason, '') NOT IN ('fan_cancelled', 'organizer_cancelled')
           AND NOT (o.status = 'confirmed'
                    AND (SELECT count(*) FROM tickets t WHERE t.order_id = o.id AND t.status = 'valid')
                      = (SELECT h.seat_count FROM holds h WHERE h.id = o.hold_id))"#
    )
    .fetch_one(&state.pool)
    .await?;
    report.seats_held_without_live_hold = sqlx::query_scalar!(
        r#"SELECT count(*) AS "breaches!" FROM seat_inventory i
         WHERE i.status = 'held' AND i.hold_expires_at > now()
           AND NOT EXISTS (
               SELECT 1 FROM holds h
               WHERE h.id = i.hold_id AND h.status = 'active' AND i.seat_id = ANY(h.seat_ids))"#
    )
    .fetch_one(&state.pool)
    .await?;
    let breaches = &state.metrics.invariant_breaches;
    breaches
        .with_label_values(&["orders_paid_without_tickets"])
        .set(report.orders_paid_without_tickets);
    breaches
        .with_label_values(&["seats_held_without_live_hold"])
        .set(report.seats_held_without_live_hold);
    if report.orders_paid_without_tickets > 0 || report.seats_held_without_live_hold > 0 {
        tracing::error!(?report, "reconciliation found broken invariants");
    }
    Ok(report)
}

/// Reconciles every `reconcile_interval_s` until `stopped`.
pub(crate) async fn run(state: AppState, mut stopped: watch::Receiver<bool>) {
    let every = Duration::from_secs_f64(state.config.payments.reconcile_interval_s);
    loop {
        if let Err(error) = reconcile_once(&state).await {
            tracing::warn!(%error, "reconciliation round failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}
