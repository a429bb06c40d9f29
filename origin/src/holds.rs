//! Holds: a fan's claim on seats, all or none, in one short transaction.
//!
//! The claim locks the requested seats in seat-id order with `FOR UPDATE SKIP LOCKED`: a
//! seat another transaction is claiming right now counts as taken (fail fast, never a queue
//! of blocked connections) and the fixed order rules out deadlocks. A seat whose hold has
//! expired is claimable at once (lazy expiry); the sweeper returns the rest within seconds.
//! PostgreSQL's constraints (see the schema) make an oversell impossible even if this code
//! were wrong.

use crate::auth::Admission;
use crate::catalog::EFFECTIVE_STATUS;
use crate::domain::hold_request::HoldBody;
use crate::domain::{HoldId, HoldRequest, IdempotencyKey, ShowId};
use crate::error::ApiError;
use crate::idempotency::{self, Begin, Claimed};
use crate::json::ApiJson;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use onsale_contract::problem::Problem;
use serde::Serialize;
use sqlx::{PgConnection, Postgres, Transaction};
use std::collections::HashSet;
use std::time::Instant;
use uuid::Uuid;

#[derive(Debug, Serialize)]
pub struct HoldView {
    pub hold_id: Uuid,
    pub show_id: Uuid,
    pub seat_ids: Vec<i64>,
    pub status: String,
    pub expires_at_ms: i64,
    pub server_time_ms: i64,
    pub total_cents: i64,
    pub currency: String,
}

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub async fn post_hold(
    State(state): State<AppState>,
    admission: Admission,
    Path(show): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<HoldBody>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let show = ShowId::parse_path(&show)?;
    admission.require_show(&show.0)?;
    let key = IdempotencyKey::parse(headers.get("idempotency-key"))?;
    let config = &state.config.holds;
    let request = HoldRequest::parse(body, config.max_seats_per_hold)?;
    let route = format!("POST /v1/shows/{show}/holds");
    let begun = idempotency::begin_request(&state, &admission.fan, &key, &route, &request).await?;
    let claimed = match begun {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(claimed) => claimed,
    };
    let result = create_hold(&state, show, &admission.fan, &request, &claimed).await;
    let metrics = &state.metrics;
    metrics
        .hold_duration
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(body) => {
            metrics.holds.with_label_values(&["created"]).inc();
            Ok(json_response(StatusCode::CREATED, body))
        }
        Err(error) => {
            let outcome = match error.to_problem().status {
                409 => "conflict",
                500.. => "error",
                _ => "rejected",
            };
            metrics.holds.with_label_values(&[outcome]).inc();
            idempotency::finish_failed(&state.pool, &claimed, &error).await;
            Err(error)
        }
    }
}

fn unavailable(code: &'static str, seats: Vec<i64>) -> ApiError {
    ApiError::problem(
        Problem::new(409, code, "Seats unavailable")
            .with_detail("some of the seats are held or sold; nothing was held")
            .with("unavailable_seat_ids", seats),
    )
}

/// Attempts for best-available requests whose chosen seats were taken between choosing and
/// locking.
const BEST_AVAILABLE_ATTEMPTS: usize = 3;

async fn create_hold(
    state: &AppState,
    show: ShowId,
    fan: &str,
    request: &HoldRequest,
    claimed: &Claimed,
) -> Result<Vec<u8>, ApiError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = state.pool.begin().await?;
        let currency = on_sale_currency(&mut tx, show).await?;
        let seats = match request {
            HoldRequest::Seats(seats) => {
                require_known(&mut tx, show, seats).await?;
                seats.clone()
            }
            HoldRequest::BestAvailable {
                section_id,
                quantity,
            } => best_available(&mut tx, show, section_id, *quantity).await?,
        };
        check_fan_limit(
            &mut tx,
            show,
            fan,
            seats.len(),
            state.config.holds.max_seats_per_fan,
        )
        .await?;
        let taken = lock_claimable(&mut tx, show, &seats, &state.metrics).await?;
        if !taken.is_empty() {
            tx.rollback().await?;
            match request {
                HoldRequest::BestAvailable { .. } if attempt < BEST_AVAILABLE_ATTEMPTS => continue,
                HoldRequest::BestAvailable { .. } => {
                    return Err(unavailable("not_enough_seats", taken))
                }
                HoldRequest::Seats(_) => return Err(unavailable("seats_unavailable", taken)),
            }
        }
        let view = insert_hold(
            &mut tx,
            show,
            fan,
            &seats,
            currency,
            state.config.holds.ttl_s,
        )
        .await?;
        let body = serde_json::to_vec(&view).expect("a hold serializes");
        idempotency::store_in(&mut tx, claimed, 201, &body).await?;
        tx.commit().await?;
        return Ok(body);
    }
}

async fn on_sale_currency(tx: &mut PgConnection, show: ShowId) -> Result<String, ApiError> {
    let row: Option<(String, String)> = sqlx::query_as(&format!(
        "SELECT {EFFECTIVE_STATUS}, s.currency FROM shows s WHERE s.id = $1"
    ))
    .bind(show)
    .fetch_optional(&mut *tx)
    .await?;
    match row {
        None => Err(ShowId::not_found()),
        Some((status, currency)) if status == "on_sale" => Ok(currency),
        Some((status, _)) => Err(ApiError::problem(
            Problem::new(409, "show_not_on_sale", "Show not on sale")
                .with_detail(format!("the show is {status}"))
                .with("show_status", status),
        )),
    }
}

async fn require_known(tx: &mut PgConnection, show: ShowId, seats: &[i64]) -> Result<(), ApiError> {
    let known: HashSet<i64> = sqlx::query_scalar(
        "SELECT seat_id FROM seat_inventory WHERE show_id = $1 AND seat_id = ANY($2)",
    )
    .bind(show)
    .bind(seats)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let unknown: Vec<i64> = seats
        .iter()
        .copied()
        .filter(|s| !known.contains(s))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ApiError::problem(
            Problem::new(422, "unknown_seats", "Unknown seats")
                .with_detail("these seats are not part of the show")
                .with("unknown_seat_ids", unknown),
        ))
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
    let candidates: Vec<(i64, String, i32)> = sqlx::query_as(
        "SELECT i.seat_id, s.row_label, s.number FROM seat_inventory i JOIN seats s ON s.id = i.seat_id
         WHERE i.show_id = $1 AND i.section_id = $2
           AND (i.status = 'available' OR (i.status = 'held' AND i.hold_expires_at <= now()))
         ORDER BY i.layout_idx",
    )
    .bind(show)
    .bind(section)
    .fetch_all(&mut *tx)
    .await?;
    if candidates.len() < quantity {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM seat_inventory WHERE show_id = $1 AND section_id = $2)",
        )
        .bind(show)
        .bind(section)
        .fetch_one(&mut *tx)
        .await?;
        return Err(if exists {
            unavailable("not_enough_seats", Vec::new())
        } else {
            ApiError::Unprocessable(
                "unknown_section",
                format!("the show has no section {section:?}"),
            )
        });
    }
    let adjacent = candidates.windows(quantity).find(|w| {
        w.iter().all(|s| s.1 == w[0].1)
            && w.iter().enumerate().all(|(k, s)| s.2 == w[0].2 + k as i32)
    });
    let chosen = adjacent.unwrap_or(&candidates[..quantity]);
    let mut seats: Vec<i64> = chosen.iter().map(|s| s.0).collect();
    seats.sort_unstable();
    Ok(seats)
}

/// Seats one fan may hold or own per show, checked under a per-(show, fan) transaction lock
/// so two concurrent holds of one fan cannot both pass.
async fn check_fan_limit(
    tx: &mut PgConnection,
    show: ShowId,
    fan: &str,
    wanted: usize,
    max: usize,
) -> Result<(), ApiError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7215))")
        .bind(format!("{show}:{fan}"))
        .execute(&mut *tx)
        .await?;
    let current: i64 = sqlx::query_scalar(
        "SELECT (SELECT coalesce(sum(seat_count), 0) FROM holds
                 WHERE show_id = $1 AND fan_id = $2 AND status = 'active' AND expires_at > now())
              + (SELECT count(*) FROM order_items oi JOIN orders o ON o.id = oi.order_id
                 WHERE o.show_id = $1 AND o.fan_id = $2 AND o.status = 'confirmed')",
    )
    .bind(show)
    .bind(fan)
    .fetch_one(&mut *tx)
    .await?;
    if current as usize + wanted > max {
        return Err(ApiError::problem(
            Problem::new(422, "fan_seat_limit", "Seat limit reached")
                .with_detail(format!(
                    "at most {max} seats per fan for this show; you have {current}"
                ))
                .with("max_seats_per_fan", max)
                .with("current_seats", current),
        ));
    }
    Ok(())
}

/// Locks the seats that can be claimed now and returns the ones that cannot (held, sold,
/// not for sale, or being claimed by another transaction). Seats of expired holds are taken
/// from those holds here, before any sweeper runs.
async fn lock_claimable(
    tx: &mut Transaction<'_, Postgres>,
    show: ShowId,
    seats: &[i64],
    metrics: &crate::metrics::Metrics,
) -> Result<Vec<i64>, ApiError> {
    let locked: Vec<(i64, String, Option<Uuid>, bool)> = sqlx::query_as(
        "SELECT seat_id, status, hold_id, coalesce(hold_expires_at <= now(), false)
         FROM seat_inventory WHERE show_id = $1 AND seat_id = ANY($2)
         ORDER BY seat_id FOR UPDATE SKIP LOCKED",
    )
    .bind(show)
    .bind(seats)
    .fetch_all(&mut **tx)
    .await?;
    let claimable: HashSet<i64> = locked
        .iter()
        .filter(|(_, status, _, expired)| status == "available" || (status == "held" && *expired))
        .map(|s| s.0)
        .collect();
    let taken: Vec<i64> = seats
        .iter()
        .copied()
        .filter(|s| !claimable.contains(s))
        .collect();
    if !taken.is_empty() {
        return Ok(taken);
    }
    let expired_holds: Vec<Uuid> = locked
        .iter()
        .filter_map(|s| s.2)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if !expired_holds.is_empty() {
        let ended = end_expired(tx, &expired_holds).await?;
        metrics
            .holds_ended
            .with_label_values(&["expired_lazily"])
            .inc_by(ended);
    }
    Ok(Vec::new())
}

/// Ends `holds` as expired (those still active), closes their seat rows, and cancels an
/// order still awaiting payment for any of them (`hold_expired`, with an outbox event), in
/// the caller's transaction, which has locked the holds' inventory rows. Returns how many
/// holds it ended.
pub async fn end_expired(tx: &mut PgConnection, holds: &[Uuid]) -> Result<u64, sqlx::Error> {
    let ended = sqlx::query(
        "UPDATE holds SET status = 'expired', ended_at = now() WHERE id = ANY($1) AND status = 'active'",
    )
    .bind(holds)
    .execute(&mut *tx)
    .await?;
    close_hold_seats(tx, holds).await?;
    sqlx::query(
        "WITH cancelled AS (
             UPDATE orders SET status = 'cancelled', cancel_reason = 'hold_expired'
             WHERE hold_id = ANY($1) AND status = 'pending_payment'
             RETURNING id, hold_id, fan_id, show_id)
         INSERT INTO outbox (aggregate_id, event_type, payload)
         SELECT id, 'hold_expired',
                jsonb_build_object('order_id', id, 'fan_id', fan_id, 'show_id', show_id, 'hold_id', hold_id)
         FROM cancelled",
    )
    .bind(holds)
    .execute(&mut *tx)
    .await?;
    Ok(ended.rows_affected())
}

async fn insert_hold(
    tx: &mut PgConnection,
    show: ShowId,
    fan: &str,
    seats: &[i64],
    currency: String,
    ttl_s: f64,
) -> Result<HoldView, ApiError> {
    let total_cents: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(p.price_cents), 0)::int8 FROM seat_inventory i
         JOIN show_price_tiers p ON p.show_id = i.show_id AND p.tier = i.price_tier
         WHERE i.show_id = $1 AND i.seat_id = ANY($2)",
    )
    .bind(show)
    .bind(seats)
    .fetch_one(&mut *tx)
    .await?;
    let hold_id = Uuid::now_v7();
    let expires_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO holds (id, show_id, fan_id, status, seat_count, total_cents, currency, expires_at)
         VALUES ($1, $2, $3, 'active', $4, $5, $6, clock_timestamp() + make_interval(secs => $7))
         RETURNING expires_at",
    )
    .bind(hold_id)
    .bind(show)
    .bind(fan)
    .bind(seats.len() as i32)
    .bind(total_cents)
    .bind(&currency)
    .bind(ttl_s)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO hold_seats (hold_id, show_id, seat_id) SELECT $1, $2, unnest($3::int8[])",
    )
    .bind(hold_id)
    .bind(show)
    .bind(seats)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE seat_inventory SET status = 'held', hold_id = $3, hold_expires_at = $4, version = version + 1
         WHERE show_id = $1 AND seat_id = ANY($2)",
    )
    .bind(show)
    .bind(seats)
    .bind(hold_id)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    Ok(HoldView {
        hold_id,
        show_id: show.0,
        seat_ids: seats.to_vec(),
        status: "active".to_owned(),
        expires_at_ms: expires_at.timestamp_millis(),
        server_time_ms: now_ms(),
        total_cents,
        currency,
    })
}

#[derive(sqlx::FromRow)]
struct HoldRow {
    id: Uuid,
    show_id: Uuid,
    fan_id: String,
    status: String,
    expires_at: DateTime<Utc>,
    total_cents: i64,
    currency: String,
    seat_ids: Vec<i64>,
}

/// The hold if `admission` may see it: its own, for the admitted show. Anything else is 404,
/// so a hold id reveals nothing to other fans.
async fn owned_hold(
    state: &AppState,
    admission: &Admission,
    id: &str,
) -> Result<HoldRow, ApiError> {
    let id = HoldId::parse_path(id)?;
    let row: Option<HoldRow> = sqlx::query_as(
        "SELECT h.id, h.show_id, h.fan_id,
                CASE WHEN h.status = 'active' AND h.expires_at <= now() THEN 'expired' ELSE h.status END AS status,
                h.expires_at, h.total_cents, h.currency,
                array(SELECT seat_id FROM hold_seats WHERE hold_id = h.id ORDER BY seat_id) AS seat_ids
         FROM holds h WHERE h.id = $1",
    )
    .bind(id)
    .fetch_optional(&state.pool)
    .await?;
    row.filter(|h| h.fan_id == admission.fan && h.show_id.to_string() == admission.show)
        .ok_or_else(HoldId::not_found)
}

pub async fn get_hold(
    State(state): State<AppState>,
    admission: Admission,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let hold = owned_hold(&state, &admission, &id).await?;
    let view = HoldView {
        hold_id: hold.id,
        show_id: hold.show_id,
        seat_ids: hold.seat_ids,
        status: hold.status,
        expires_at_ms: hold.expires_at.timestamp_millis(),
        server_time_ms: now_ms(),
        total_cents: hold.total_cents,
        currency: hold.currency,
    };
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&view).expect("a hold serializes"),
    ))
}

/// Releases a hold: its seats return to sale at once. Releasing a released or expired hold
/// again is a no-op (204); a hold that became an order cannot be released (409).
pub async fn delete_hold(
    State(state): State<AppState>,
    admission: Admission,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let hold = owned_hold(&state, &admission, &id).await?;
    let mut tx = state.pool.begin().await?;
    // The seats first, then the hold: the order the sweeper and orders lock them in.
    lock_seats(&mut tx, hold.show_id, &hold.seat_ids).await?;
    let status: String = sqlx::query_scalar("SELECT status FROM holds WHERE id = $1 FOR UPDATE")
        .bind(hold.id)
        .fetch_one(&mut *tx)
        .await?;
    let ordered: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM orders WHERE hold_id = $1)")
            .bind(hold.id)
            .fetch_one(&mut *tx)
            .await?;
    match status.as_str() {
        "converted" => {
            return Err(ApiError::Conflict(
                "hold_converted",
                "the hold became an order; cancel the order instead".to_owned(),
            ))
        }
        "active" if ordered => {
            return Err(ApiError::Conflict(
                "hold_ordered",
                "the hold has an order awaiting payment; pay or let it expire".to_owned(),
            ))
        }
        "active" => {
            let ended: String = sqlx::query_scalar(
                "UPDATE holds SET status = CASE WHEN expires_at <= now() THEN 'expired' ELSE 'released' END,
                                  ended_at = now()
                 WHERE id = $1 RETURNING status",
            )
            .bind(hold.id)
            .fetch_one(&mut *tx)
            .await?;
            free_seats(&mut tx, hold.show_id, &[hold.id]).await?;
            let reason = if ended == "released" {
                "released"
            } else {
                "expired_lazily"
            };
            state.metrics.holds_ended.with_label_values(&[reason]).inc();
        }
        _ => {}
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Locks seats' inventory rows by primary key, in seat order: the first lock every write
/// to a hold or an order takes.
pub(crate) async fn lock_seats(
    tx: &mut PgConnection,
    show: Uuid,
    seats: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT 1 FROM seat_inventory WHERE show_id = $1 AND seat_id = ANY($2) ORDER BY seat_id FOR UPDATE",
    )
    .bind(show)
    .bind(seats)
    .execute(&mut *tx)
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
    sqlx::query_scalar(
        "SELECT status = 'active' AND expires_at > now() FROM holds WHERE id = $1 FOR UPDATE",
    )
    .bind(hold)
    .fetch_one(&mut *tx)
    .await
}

/// Marks the seat rows of `holds` released (they stay as history).
pub(crate) async fn close_hold_seats(
    tx: &mut PgConnection,
    holds: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE hold_seats SET released_at = now() WHERE hold_id = ANY($1) AND released_at IS NULL",
    )
    .bind(holds)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Returns the seats still held by `holds` to sale and closes their `hold_seats` rows.
pub(crate) async fn free_seats(
    tx: &mut PgConnection,
    show: Uuid,
    holds: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE seat_inventory SET status = 'available', hold_id = NULL, hold_expires_at = NULL, version = version + 1
         WHERE show_id = $1 AND hold_id = ANY($2) AND status = 'held'",
    )
    .bind(show)
    .bind(holds)
    .execute(&mut *tx)
    .await?;
    close_hold_seats(tx, holds).await?;
    Ok(())
}
