//! The expiry sweeper: returns seats of expired holds to sale within a sweep interval of
//! their expiry. It works from the inventory (`status = 'held' AND hold_expires_at <= now()`,
//! a partial index), so it also frees the remaining seats of holds that expired lazily.
//! `FOR UPDATE SKIP LOCKED` lets several origin instances sweep at once without waiting on
//! each other or sweeping a seat twice.

use crate::metrics::Metrics;
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// One batch; returns how many seats it freed.
pub async fn sweep_once(pool: &PgPool, batch: i64, metrics: &Metrics) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let swept = sqlx::query!(
        r#"WITH due AS (
             SELECT show_id, seat_id, hold_id, hold_expires_at FROM seat_inventory
             WHERE status = 'held' AND hold_expires_at <= now()
             ORDER BY hold_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED),
         freed AS (
             UPDATE seat_inventory i
             SET status = 'available', hold_id = NULL, hold_expires_at = NULL, version = i.version + 1
             FROM due WHERE i.show_id = due.show_id AND i.seat_id = due.seat_id
             RETURNING due.hold_id, due.hold_expires_at)
         SELECT hold_id AS "hold_id!", extract(epoch FROM now() - min(hold_expires_at))::float8 AS "lag_s!",
                count(*) AS "seats!"
         FROM freed GROUP BY hold_id"#,
        batch,
    )
    .fetch_all(&mut *tx)
    .await?;
    if swept.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let holds: Vec<Uuid> = swept.iter().map(|s| s.hold_id).collect();
    let expired = crate::holds::end_expired(&mut tx, &holds).await?;
    tx.commit().await?;
    let lag = swept.iter().map(|s| s.lag_s).fold(0.0, f64::max);
    metrics.sweep_lag.set(lag);
    metrics
        .holds_ended
        .with_label_values(&["expired_swept"])
        .inc_by(expired);
    Ok(swept.iter().map(|s| s.seats as u64).sum())
}

/// Sweeps every `interval` until `stopped`, draining a backlog in full batches first.
pub(crate) async fn run(
    pool: PgPool,
    metrics: std::sync::Arc<Metrics>,
    interval: Duration,
    batch: i64,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        // Drain a backlog in full batches, then wait for the next tick.
        loop {
            match sweep_once(&pool, batch, &metrics).await {
                Ok(n) if n as i64 >= batch => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "hold sweep failed; retrying next tick"),
            }
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}
