//! Seat inventory writes shared by holds, orders, payments and the sweeper, and the one
//! lock order they all keep: a hold's or order's inventory rows by primary key, in seat
//! order, then the hold or order row. A fixed order leaves no cycle to deadlock on.

use sqlx::PgConnection;
use uuid::Uuid;

/// Ends those of `holds` that are still active and past their expiry, returns the seats
/// they still hold to sale, and cancels an order still awaiting payment for any of them
/// (`hold_expired`, with an outbox event), in the caller's transaction, which has locked
/// the holds' inventory rows. Returns how many holds it ended.
pub(crate) async fn end_expired(tx: &mut PgConnection, holds: &[Uuid]) -> Result<u64, sqlx::Error> {
    let ended: Vec<Uuid> = sqlx::query_scalar!(
        "UPDATE holds SET status = 'expired', ended_at = now()
         WHERE id = ANY($1) AND status = 'active' AND expires_at <= now()
         RETURNING id",
        holds,
    )
    .fetch_all(&mut *tx)
    .await?;
    if ended.is_empty() {
        return Ok(0);
    }
    free_seats(tx, &ended).await?;
    sqlx::query!(
        "WITH cancelled AS (
             UPDATE orders SET status = 'cancelled', cancel_reason = 'hold_expired'
             WHERE hold_id = ANY($1) AND status = 'pending_payment'
             RETURNING id, hold_id, fan_id, show_id)
         INSERT INTO outbox (aggregate_id, event_type, payload)
         SELECT id, 'hold_expired',
                jsonb_build_object('order_id', id, 'fan_id', fan_id, 'show_id', show_id, 'hold_id', hold_id)
         FROM cancelled",
        &ended,
    )
    .execute(&mut *tx)
    .await?;
    Ok(ended.len() as u64)
}

/// Locks seats' inventory rows by primary key, in seat order: the first lock every write
/// to a hold or an order takes.
pub(crate) async fn lock_seats(
    tx: &mut PgConnection,
    show: Uuid,
    seats: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT 1 AS locked FROM seat_inventory WHERE show_id = $1 AND seat_id = ANY($2) ORDER BY seat_id FOR UPDATE",
        show,
        seats,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(())
}

/// Locks a hold for a write that follows it: its seats' inventory rows by primary key, then
/// the hold row, the order every writer keeps (the sweeper and lazy expiry reach the hold
/// through its seats too). Returns whether the hold is live: active and not yet expired.
pub(crate) async fn lock_hold(
    tx: &mut PgConnection,
    show: Uuid,
    seats: &[i64],
    hold: Uuid,
) -> Result<bool, sqlx::Error> {
    lock_seats(tx, show, seats).await?;
    sqlx::query_scalar!(
        r#"SELECT status = 'active' AND expires_at > now() AS "live!" FROM holds WHERE id = $1 FOR UPDATE"#,
        hold,
    )
    .fetch_one(&mut *tx)
    .await
}

/// Returns the seats `holds` still hold to sale: those of each hold's seats whose row still
/// names it (a seat taken over after the hold expired is left to its new hold). Found by
/// primary key through the holds' seat lists. While a fan waits for the show, the seats go
/// to the waitlist (`returned`, queued with the moment they came back: an expired hold's
/// expiry) rather than to everyone.
pub(crate) async fn free_seats(tx: &mut PgConnection, holds: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "WITH freed AS (
             UPDATE seat_inventory i
             SET status = CASE WHEN waitlist_waiting(h.show_id) THEN 'returned' ELSE 'available' END,
                 hold_id = NULL, hold_expires_at = NULL, version = i.version + 1
             FROM holds h
             WHERE h.id = ANY($1) AND i.show_id = h.show_id AND i.seat_id = ANY(h.seat_ids)
               AND i.hold_id = h.id AND i.status = 'held'
             RETURNING i.show_id, i.seat_id, i.status,
                       CASE WHEN h.status = 'expired' THEN h.expires_at ELSE now() END AS returned_at)
         INSERT INTO seat_returns (show_id, seat_id, returned_at)
         SELECT show_id, seat_id, returned_at FROM freed WHERE status = 'returned'",
        holds,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
