//! The claim: a hold of every requested seat or of none, in one short transaction.
//!
//! The claim locks the requested seats in seat-id order with `FOR UPDATE SKIP LOCKED`: a
//! seat another transaction is claiming right now counts as taken (fail fast, never a queue
//! of blocked connections) and the fixed order rules out deadlocks. A seat whose hold has
//! expired is claimable at once (lazy expiry): the claim takes it over on the seat row, and
//! the sweeper ends the expired hold and frees its other seats within seconds.
//!
//! After the idempotency key (claimed in the same transaction), a claim is four round
//! trips: [`open_claim`] (sale state, known seats, the fan's lock), [`check_fan_limit`],
//! [`lock_claimable`], and [`insert_hold`], which writes the hold row, its price total and
//! the seat rows in one statement. The seat rows carry the hold (`hold_id`,
//! `hold_expires_at`); no index covers those columns or the status, so the update stays on
//! the row's page without index writes (see migration 0007).

use super::HoldView;
use crate::catalog::EFFECTIVE_STATUS;
use crate::domain::{HoldRequest, ShowId};
use crate::error::{ApiError, Code};
use crate::status::{HoldStatus, ShowStatus};
use crate::AppState;
use onsale_contract::clock::now_ms;
use onsale_contract::problem::Problem;
use sqlx::PgConnection;
use std::collections::HashSet;
use uuid::Uuid;

fn unavailable(code: Code, seats: Vec<i64>) -> ApiError {
    ApiError::problem(
        Problem::new(409, code, "Seats unavailable")
            .with_detail("some of the seats are held or sold; nothing was held")
            .with("unavailable_seat_ids", seats),
    )
}

/// Attempts for best-available requests whose chosen seats were taken between choosing and
/// locking.
const BEST_AVAILABLE_ATTEMPTS: usize = 3;

/// The claim in the caller's transaction `tx`, which has claimed the idempotency key:
/// the hold's answer as stored and sent. Every refusal comes before the first write, so a
/// refused claim leaves `tx` holding the key alone and its refusal may be stored and
/// committed. A best-available retry stays in `tx`: the seats it locked and lost stay
/// locked until it ends, a few milliseconds.
pub(super) async fn create_hold(
    tx: &mut PgConnection,
    state: &AppState,
    show: ShowId,
    fan: &str,
    request: &HoldRequest,
) -> Result<Vec<u8>, ApiError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let named: &[i64] = match request {
            HoldRequest::Seats(seats) => seats,
            HoldRequest::BestAvailable { .. } => &[],
        };
        let currency = open_claim(tx, show, fan, named).await?;
        let seats = match request {
            HoldRequest::Seats(seats) => seats.clone(),
            HoldRequest::BestAvailable {
                section_id,
                quantity,
            } => best_available(tx, show, section_id, *quantity).await?,
        };
        check_fan_limit(
            tx,
            show,
            fan,
            seats.len(),
            state.config.holds.max_seats_per_fan,
        )
        .await?;
        let taken = lock_claimable(tx, show, &seats).await?;
        if !taken.is_empty() {
            match request {
                HoldRequest::BestAvailable { .. } if attempt < BEST_AVAILABLE_ATTEMPTS => continue,
                HoldRequest::BestAvailable { .. } => {
                    return Err(unavailable(Code::NotEnoughSeats, taken))
                }
                HoldRequest::Seats(_) => return Err(unavailable(Code::SeatsUnavailable, taken)),
            }
        }
        let view = insert_hold(tx, show, fan, &seats, currency, state.config.holds.ttl_s).await?;
        return crate::http::to_json(&view);
    }
}

/// Opens `fan`'s claim on `show`: takes the per-(show, fan) transaction lock under which
/// [`check_fan_limit`] counts, so two concurrent holds of one fan cannot both pass, and
/// returns the show's currency if it is on sale and has every one of `seats` (none for a
/// best-available request). One round trip; the count that follows, a statement of its
/// own, sees every hold committed before the lock was granted.
async fn open_claim(
    tx: &mut PgConnection,
    show: ShowId,
    fan: &str,
    seats: &[i64],
) -> Result<String, ApiError> {
    let row: Option<(ShowStatus, String, Vec<i64>)> = sqlx::query_as(&format!(
        "SELECT {EFFECTIVE_STATUS}, s.currency,
                ARRAY(SELECT wanted FROM unnest($2::int8[]) wanted
                      WHERE NOT EXISTS (SELECT 1 FROM seat_inventory i
                                        WHERE i.show_id = s.id AND i.seat_id = wanted))
         FROM shows s, pg_advisory_xact_lock(hashtextextended($3, 7215))
         WHERE s.id = $1"
    ))
    .bind(show)
    .bind(seats)
    .bind(format!("{show}:{fan}"))
    .fetch_optional(&mut *tx)
    .await?;
    match row {
        None => Err(ShowId::not_found()),
        Some((ShowStatus::OnSale, currency, unknown)) if unknown.is_empty() => Ok(currency),
        Some((ShowStatus::OnSale, _, unknown)) => Err(ApiError::problem(
            Problem::new(422, Code::UnknownSeats, "Unknown seats")
                .with_detail("these seats are not part of the show")
                .with("unknown_seat_ids", unknown),
        )),
        Some((status, _, _)) => Err(ApiError::problem(
            Problem::new(409, Code::ShowNotOnSale, "Show not on sale")
                .with_detail(format!("the show is {status}"))
                .with("show_status", status.as_str()),
        )),
    }
}

/// The best `quantity` claimable seats of a section: the front-most run of adjacent seats in
/// one row, else the first seats in layout order. Chosen without locks; the claim that
/// follows locks them and retries if someone was faster.
async fn best_available(
    tx: &mut PgConnection,
    show: ShowId,
    section: &str,
    quantity: usize,
) -> Result<Vec<i64>, ApiError> {
    let candidates = sqlx::query!(
        "SELECT i.seat_id, s.row_label, s.number FROM seat_inventory i JOIN seats s ON s.id = i.seat_id
         WHERE i.show_id = $1 AND i.section_id = $2
           AND (i.status = 'available' OR (i.status = 'held' AND i.hold_expires_at <= now()))
         ORDER BY i.layout_idx",
        show.0,
        section,
    )
    .fetch_all(&mut *tx)
    .await?;
    if candidates.len() < quantity {
        let exists = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM seat_inventory WHERE show_id = $1 AND section_id = $2) AS "exists!""#,
            show.0,
            section,
        )
        .fetch_one(&mut *tx)
        .await?;
        return Err(if exists {
            unavailable(Code::NotEnoughSeats, Vec::new())
        } else {
            ApiError::Unprocessable(
                Code::UnknownSection,
                format!("the show has no section {section:?}"),
            )
        });
    }
    let adjacent = candidates.windows(quantity).find(|w| {
        w.iter().all(|s| s.row_label == w[0].row_label)
            && w.iter()
                .enumerate()
                .all(|(k, s)| s.number == w[0].number + k as i32)
    });
    let chosen = adjacent.unwrap_or(&candidates[..quantity]);
    let mut seats: Vec<i64> = chosen.iter().map(|s| s.seat_id).collect();
    seats.sort_unstable();
    Ok(seats)
}

/// Seats one fan may hold or own per show, counted under the lock [`open_claim`] took.
async fn check_fan_limit(
    tx: &mut PgConnection,
    show: ShowId,
    fan: &str,
    wanted: usize,
    max: usize,
) -> Result<(), ApiError> {
    let current = sqlx::query_scalar!(
        r#"SELECT (SELECT coalesce(sum(seat_count), 0) FROM holds
                 WHERE show_id = $1 AND fan_id = $2 AND status = 'active' AND expires_at > now())
              + (SELECT count(*) FROM order_items oi JOIN orders o ON o.id = oi.order_id
                 WHERE o.show_id = $1 AND o.fan_id = $2 AND o.status = 'confirmed') AS "current!""#,
        show.0,
        fan,
    )
    .fetch_one(&mut *tx)
    .await?;
    if current as usize + wanted > max {
        return Err(ApiError::problem(
            Problem::new(422, Code::FanSeatLimit, "Seat limit reached")
                .with_detail(format!(
                    "at most {max} seats per fan for this show; you have {current}"
                ))
                .with("max_seats_per_fan", max)
                .with("current_seats", current),
        ));
    }
    Ok(())
}

/// Locks the seats that can be claimed now and returns the ones that cannot (held by a live
/// hold, sold, not for sale, or being claimed by another transaction). Seats of expired
/// holds are claimable before any sweeper runs.
async fn lock_claimable(
    tx: &mut PgConnection,
    show: ShowId,
    seats: &[i64],
) -> Result<Vec<i64>, ApiError> {
    let claimable: HashSet<i64> = sqlx::query_scalar!(
        r#"SELECT seat_id FROM seat_inventory
         WHERE show_id = $1 AND seat_id = ANY($2)
           AND (status = 'available' OR (status = 'held' AND hold_expires_at <= now()))
         ORDER BY seat_id FOR UPDATE SKIP LOCKED"#,
        show.0,
        seats,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    Ok(seats
        .iter()
        .copied()
        .filter(|s| !claimable.contains(s))
        .collect())
}

/// Writes the hold and hands it the seats `lock_claimable` locked, in one statement.
async fn insert_hold(
    tx: &mut PgConnection,
    show: ShowId,
    fan: &str,
    seats: &[i64],
    currency: String,
    ttl_s: f64,
) -> Result<HoldView, ApiError> {
    let hold_id = Uuid::now_v7();
    let written = sqlx::query!(
        r#"WITH hold AS (
             INSERT INTO holds (id, show_id, fan_id, status, seat_count, total_cents, currency,
                                expires_at, seat_ids)
             SELECT $1, $2, $3, 'active', cardinality($4::int8[]), coalesce(sum(p.price_cents), 0),
                    $5, clock_timestamp() + make_interval(secs => $6), $4
             FROM seat_inventory i
             JOIN show_price_tiers p ON p.show_id = i.show_id AND p.tier = i.price_tier
             WHERE i.show_id = $2 AND i.seat_id = ANY($4)
             RETURNING expires_at, total_cents),
         seats AS (
             UPDATE seat_inventory
             SET status = 'held', hold_id = $1, hold_expires_at = (SELECT expires_at FROM hold),
                 version = version + 1
             WHERE show_id = $2 AND seat_id = ANY($4)
             RETURNING seat_id)
         SELECT expires_at AS "expires_at!", total_cents AS "total_cents!",
                (SELECT count(*) FROM seats) AS "seats!"
         FROM hold"#,
        hold_id,
        show.0,
        fan,
        seats,
        currency,
        ttl_s,
    )
    .fetch_one(&mut *tx)
    .await?;
    // The seats were locked as claimable above, so each one is this hold's now.
    if written.seats != seats.len() as i64 {
        return Err(ApiError::Internal(format!(
            "hold {hold_id}: {} of {} seats written",
            written.seats,
            seats.len()
        )));
    }
    Ok(HoldView {
        hold_id,
        show_id: show.0,
        seat_ids: seats.to_vec(),
        status: HoldStatus::Active,
        expires_at_ms: written.expires_at.timestamp_millis(),
        server_time_ms: now_ms(),
        total_cents: written.total_cents,
        currency,
    })
}
