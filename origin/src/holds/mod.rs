//! Holds: a fan's claim on seats, all or none, in one short transaction.
//!
//! - this file: the HTTP handlers (`POST /v1/shows/{id}/holds`, `GET` and `DELETE
//!   /v1/holds/{id}`) and the hold as a fan sees it;
//! - [`claim`]: the claim transaction (sale state, known seats, best available, the fan's
//!   limit, locking, writing the hold);
//! - [`inventory`]: the lock order every writer of seats keeps, expiry and freeing of seats,
//!   shared with orders, payments and the sweeper.
//!
//! PostgreSQL's constraints (see the schema) make an oversell impossible even if this code
//! were wrong.

pub(crate) mod best;
pub(crate) mod claim;
pub(crate) mod inventory;

pub(crate) use inventory::{end_expired, free_seats, lock_hold, lock_seats};

use crate::auth::{Admission, ClaimingAdmission};
use crate::domain::hold_request::HoldBody;
use crate::domain::{HoldId, HoldRequest, IdempotencyKey, ShowId};
use crate::error::{ApiError, Code};
use crate::http::json_response;
use crate::idempotency;
use crate::json::ApiJson;
use crate::openapi;
use crate::status::HoldStatus;
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use onsale_contract::clock::now_ms;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use uuid::Uuid;

/// A hold as its fan sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct HoldView {
    pub hold_id: Uuid,
    pub show_id: Uuid,
    pub seat_ids: Vec<i64>,
    pub status: HoldStatus,
    pub expires_at_ms: i64,
    pub server_time_ms: i64,
    pub total_cents: i64,
    pub currency: String,
    /// For a best-available hold: whether its seats sit together in one row (`false`: the
    /// group had to be split). Absent for a hold of named seats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjacent: Option<bool>,
    /// For a hold of general-admission places (no seats: `seat_ids` is empty), its section
    /// and how many places.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub general_admission: Option<Places>,
}

/// Places of a general-admission section.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Places {
    /// The section.
    pub section_id: String,
    /// How many places.
    pub quantity: i32,
}

onsale_contract::problems!(pub(crate) HoldProblems = [
    openapi::ANY,
    openapi::JSON_BODY,
    openapi::ADMISSION,
    openapi::IDEMPOTENT,
    &[
        Code::WrongShow,
        Code::ShowNotFound,
        Code::ShowNotOnSale,
        Code::NoSeats,
        Code::TooManySeats,
        Code::DuplicateSeats,
        Code::UnknownSeats,
        Code::UnknownSection,
        Code::FanSeatLimit,
        Code::SeatsUnavailable,
        Code::NotEnoughSeats,
    ],
]);

/// Holds seats of a show, all or none, until `expires_at_ms`: the seats asked for, or the
/// best `quantity` of a section or of a price tier: adjacent in one row nearest the venue's
/// stage when such a group is free, else the best single seats (`adjacent: false`). For a
/// general-admission section, `quantity` places of it (`general_admission`, no seats). A
/// price tier's best available looks at its seated sections only.
#[utoipa::path(
    post,
    path = "/v1/shows/{id}/holds",
    tag = "purchase",
    params(("id" = Uuid, Path, description = "The show."), openapi::IdempotencyKeyHeader),
    request_body = HoldBody,
    responses((status = 201, description = "The hold.", body = HoldView), HoldProblems),
    security(("admission" = []), ("admission_cookie" = [])),
)]
pub(crate) async fn post_hold(
    State(state): State<AppState>,
    ClaimingAdmission(admission): ClaimingAdmission,
    show: ShowId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<HoldBody>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    admission.require_show(&show.0)?;
    let key = IdempotencyKey::parse(headers.get("idempotency-key"))?;
    let config = &state.config.holds;
    let request = HoldRequest::parse(body, config.max_seats_per_hold)?;
    let route = format!("POST /v1/shows/{show}/holds");
    let fingerprint = idempotency::fingerprint(&route, &crate::http::to_json(&request)?);
    let keyed = idempotency::Keyed {
        fan: &admission.fan,
        key: key.as_str(),
        route: &route,
        fingerprint: &fingerprint,
    };
    let result = claim::create_hold(&state, show, &request, &admission.jti, &keyed).await;
    let metrics = &state.metrics;
    metrics
        .hold_duration
        .observe(started.elapsed().as_secs_f64());
    let outcome = match &result {
        Ok(claim::Claimed::Created(_)) => Some("created"),
        Ok(claim::Claimed::KeyTaken) => None,
        Err(error) => Some(match error.to_problem().status {
            409 => "conflict",
            500.. => "error",
            _ => "rejected",
        }),
    };
    if let Some(outcome) = outcome {
        metrics.holds.with_label_values(&[outcome]).inc();
    }
    match result {
        Ok(claim::Claimed::Created(body)) => Ok(json_response(StatusCode::CREATED, body)),
        Ok(claim::Claimed::KeyTaken) => idempotency::seen(&state.pool, &keyed).await,
        Err(error) => {
            let problem = error.to_problem();
            if problem.status >= 500 || matches!(error, ApiError::AdmissionSpent) {
                // Nothing is stored: a retry runs again, and a spent admission's key stays
                // the fan's to use with a valid one.
                return Err(error);
            }
            // A refusal is the key's answer, unless another request answered it meanwhile.
            let timeout = state.config.idempotency.in_flight_timeout_s;
            let body = problem.to_json();
            if idempotency::record(&state.pool, &keyed, timeout, problem.status, &body).await? {
                Err(error)
            } else {
                idempotency::seen(&state.pool, &keyed).await
            }
        }
    }
}

struct HoldRow {
    id: Uuid,
    show_id: Uuid,
    fan_id: String,
    status: HoldStatus,
    expires_at: DateTime<Utc>,
    total_cents: i64,
    currency: String,
    seat_ids: Vec<i64>,
    adjacent: Option<bool>,
    ga_section: Option<String>,
    seat_count: i32,
}

/// The hold if `admission` may see it: its own, for the admitted show. Anything else is 404,
/// so a hold id reveals nothing to other fans.
async fn owned_hold(
    state: &AppState,
    admission: &Admission,
    id: HoldId,
) -> Result<HoldRow, ApiError> {
    let row = sqlx::query_as!(
        HoldRow,
        r#"SELECT h.id, h.show_id, h.fan_id,
                CASE WHEN h.status = 'active' AND h.expires_at <= now() THEN 'expired' ELSE h.status END
                  AS "status!: HoldStatus",
                h.expires_at, h.total_cents, h.currency,
                h.seat_ids, h.adjacent, h.ga_section, h.seat_count
         FROM holds h WHERE h.id = $1"#,
        id.0,
    )
    .fetch_optional(&state.pool)
    .await?;
    row.filter(|h| admission.owns(&h.fan_id, &h.show_id))
        .ok_or_else(HoldId::not_found)
}

onsale_contract::problems!(pub(crate) OwnHoldProblems = [
    openapi::ANY,
    openapi::ADMISSION,
    &[Code::HoldNotFound],
]);

/// One of the fan's holds, for the admitted show.
#[utoipa::path(
    get,
    path = "/v1/holds/{id}",
    tag = "purchase",
    params(("id" = Uuid, Path, description = "The hold.")),
    responses((status = 200, description = "The hold.", body = HoldView), OwnHoldProblems),
    security(("admission" = []), ("admission_cookie" = [])),
)]
pub(crate) async fn get_hold(
    State(state): State<AppState>,
    admission: Admission,
    id: HoldId,
) -> Result<Response, ApiError> {
    let hold = owned_hold(&state, &admission, id).await?;
    let view = HoldView {
        hold_id: hold.id,
        show_id: hold.show_id,
        seat_ids: hold.seat_ids,
        status: hold.status,
        expires_at_ms: hold.expires_at.timestamp_millis(),
        server_time_ms: now_ms(),
        total_cents: hold.total_cents,
        currency: hold.currency,
        adjacent: hold.adjacent,
        general_admission: hold.ga_section.map(|section_id| Places {
            section_id,
            quantity: hold.seat_count,
        }),
    };
    crate::http::json(StatusCode::OK, &view)
}

onsale_contract::problems!(pub(crate) ReleaseProblems = [
    openapi::ANY,
    openapi::ADMISSION,
    &[Code::HoldNotFound, Code::HoldConverted, Code::HoldOrdered],
]);

/// Releases a hold: its seats return to sale at once. Releasing a released or expired hold
/// again is a no-op (204); a hold that became an order cannot be released (409).
#[utoipa::path(
    delete,
    path = "/v1/holds/{id}",
    tag = "purchase",
    params(("id" = Uuid, Path, description = "The hold.")),
    responses((status = 204, description = "Released (or ended already)."), ReleaseProblems),
    security(("admission" = []), ("admission_cookie" = [])),
)]
pub(crate) async fn delete_hold(
    State(state): State<AppState>,
    admission: Admission,
    id: HoldId,
) -> Result<Response, ApiError> {
    let hold = owned_hold(&state, &admission, id).await?;
    release(&state, hold.show_id, &hold.seat_ids, hold.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Releases the hold `id` of `show` on `seats`: its seats return to sale (or to the
/// waitlist) at once; a hold already ended is left as it is. One that became an order, or
/// has one awaiting payment, cannot be released (409).
pub(crate) async fn release(
    state: &AppState,
    show: Uuid,
    seats: &[i64],
    id: Uuid,
) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    // The seats first, then the hold: the order the sweeper and orders lock them in.
    lock_seats(&mut tx, show, seats).await?;
    let status = sqlx::query_scalar!(
        r#"SELECT status AS "status: HoldStatus" FROM holds WHERE id = $1 FOR UPDATE"#,
        id,
    )
    .fetch_one(&mut *tx)
    .await?;
    let ordered = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM orders WHERE hold_id = $1) AS "ordered!""#,
        id,
    )
    .fetch_one(&mut *tx)
    .await?;
    match status {
        HoldStatus::Converted => {
            return Err(ApiError::Conflict(
                Code::HoldConverted,
                "the hold became an order; cancel the order instead".to_owned(),
            ))
        }
        HoldStatus::Active if ordered => {
            return Err(ApiError::Conflict(
                Code::HoldOrdered,
                "the hold has an order awaiting payment; pay or let it expire".to_owned(),
            ))
        }
        HoldStatus::Active => {
            let ended = sqlx::query_scalar!(
                r#"UPDATE holds SET status = CASE WHEN expires_at <= now() THEN 'expired' ELSE 'released' END,
                                  ended_at = now()
                 WHERE id = $1 RETURNING status AS "status: HoldStatus""#,
                id,
            )
            .fetch_one(&mut *tx)
            .await?;
            free_seats(&mut tx, &[id]).await?;
            let reason = if ended == HoldStatus::Released {
                "released"
            } else {
                "expired_lazily"
            };
            state.metrics.holds_ended.with_label_values(&[reason]).inc();
        }
        HoldStatus::Released | HoldStatus::Expired => {}
    }
    tx.commit().await?;
    Ok(())
}
