//! The expiry sweeper: ends holds past their expiry and returns the seats they still hold
//! to sale, within a sweep interval of their expiry. It finds them through
//! `holds_active_expiry`, which also covers holds that lost some seats to a later claim
//! (lazy expiry takes a seat over on its row and leaves the hold to this sweep).
//!
//! A batch locks the holds' inventory rows in seat order before the holds (every writer's
//! order), so it may wait briefly on an order or payment of one of them but never deadlocks;
//! claims skip the rows it has locked rather than wait. Several origin instances may sweep at
//! once: a hold ends once, its seats are freed once.

use crate::metrics::Metrics;
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// One batch of at most `batch` expired holds; returns how many it found.
pub async fn sweep_once(
    pool: &PgPool,
    batch: i64,
    metrics: &Metrics,
) -> Result<usize, sqlx::Error> {
    sweep(pool, batch, false, metrics).await
}

/// One batch of at most `batch` expired holds of shows a fan waits for (the offer worker's
/// own sweep, so that their seats reach the waitlist within its round, not the sweeper's);
/// returns how many it found.
pub(crate) async fn sweep_waitlisted(
    pool: &PgPool,
    batch: i64,
    metrics: &Metrics,
) -> Result<usize, sqlx::Error> {
    sweep(pool, batch, true, metrics).await
}

async fn sweep(
    pool: &PgPool,
    batch: i64,
    waitlisted: bool,
    metrics: &Metrics,
) -> Result<usize, sqlx::Error> {
    let due = sqlx::query!(
        r#"SELECT id, extract(epoch FROM now() - expires_at)::float8 AS "lag_s!" FROM holds h
         WHERE status = 'active' AND expires_at <= now()
           AND (NOT $2 OR waitlist_waiting(h.show_id))
         ORDER BY expires_at LIMIT $1"#,
        batch,
        waitlisted,
    )
    .fetch_all(pool)
    .await?;
    let Some(lag) = due.first().map(|d| d.lag_s) else {
        return Ok(0);
    };
    let holds: Vec<Uuid> = due.iter().map(|d| d.id).collect();
    let mut tx = pool.begin().await?;
    // Rechecked once locked: an order may have extended a hold meanwhile.
    sqlx::query!(
        "SELECT 1 AS locked FROM seat_inventory i JOIN holds h
           ON i.show_id = h.show_id AND i.seat_id = ANY(h.seat_ids) AND i.hold_id = h.id
         WHERE h.id = ANY($1) AND i.hold_expires_at <= now()
         ORDER BY i.show_id, i.seat_id FOR UPDATE OF i",
        &holds,
    )
    .fetch_all(&mut *tx)
    .await?;
    let expired = crate::holds::end_expired(&mut tx, &holds).await?;
    tx.commit().await?;
    metrics.sweep_lag.set(lag);
    metrics
        .holds_ended
        .with_label_values(&["expired_swept"])
        .inc_by(expired);
    Ok(holds.len())
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
                Ok(due) if due as i64 >= batch => continue,
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
