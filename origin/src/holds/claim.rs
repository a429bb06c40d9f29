//! The claim: a hold of every requested seat or of none, in one statement.
//!
//! A claim is one call of `claim_hold` (migrations 0011 and 0012), one round trip and one
//! commit. In order, it: refuses a spent admission; leaves a key that has an answer to that
//! answer; checks the show is on sale and has every seat; takes the per-(show, fan) lock
//! and counts the fan's seats under it (`fan_seats`);
//! locks the requested seats in seat-id order with `FOR UPDATE SKIP LOCKED`, where a seat
//! another claim holds right now counts as taken (fail fast, never a queue of blocked
//! connections; the fixed order rules out deadlocks); writes the hold row with its price
//! total and hands it the seat rows; and stores the answer under the key. A seat whose hold
//! has expired is claimable at once (lazy expiry): the claim takes it over on the seat row,
//! and the sweeper ends the expired hold and frees its other seats within seconds.
//!
//! The seat rows carry the hold (`hold_id`, `hold_expires_at`); no index covers those
//! columns or the status, so their update stays on the row's page without index writes
//! (migration 0007). A best-available request picks its seats first, without locks
//! ([`super::best`]), and picks again if a faster fan took one; its hold records whether
//! they are adjacent (migration 0015).
//!
//! A best-available request for a general-admission section takes places, not seats: the
//! same call with the section and the quantity, which takes them from the section's
//! counter in one conditional update (migration 0021). A CHECK keeps the counter at or
//! above zero; claims of one section queue on its row for the moment each takes.

use super::best::best_available;
use crate::domain::{BestScope, HoldRequest, ShowId};
use crate::error::{ApiError, Code};
use crate::idempotency::Keyed;
use crate::status::ShowStatus;
use crate::AppState;
use onsale_contract::problem::Problem;
use uuid::Uuid;

/// SQLSTATE of `claim_hold` when the key was answered while it worked.
const KEY_ANSWERED_MEANWHILE: &str = "ON409";

pub(super) fn unavailable(code: Code, seats: Vec<i64>) -> ApiError {
    ApiError::problem(
        Problem::new(code, "Seats unavailable")
            .with_detail("some of the seats are held or sold; nothing was held")
            .with("unavailable_seat_ids", seats),
    )
}

/// 422 `fan_seat_limit`: the fan has `current` of at most `max` seats of the show.
pub(crate) fn fan_seat_limit(max: usize, current: i64) -> ApiError {
    ApiError::problem(
        Problem::new(Code::FanSeatLimit, "Seat limit reached")
            .with_detail(format!(
                "at most {max} seats per fan for this show; you have {current}"
            ))
            .with("max_seats_per_fan", max)
            .with("current_seats", current),
    )
}

pub(super) fn not_on_sale(status: ShowStatus) -> ApiError {
    ApiError::problem(
        Problem::new(Code::ShowNotOnSale, "Show not on sale")
            .with_detail(format!("the show is {status}"))
            .with("show_status", status.as_str()),
    )
}

/// Attempts for best-available requests whose chosen seats were taken between choosing and
/// locking.
const BEST_AVAILABLE_ATTEMPTS: usize = 3;

/// What a claim came to, when it was not refused.
pub(super) enum Claimed {
    /// The hold was made; its answer, as stored under the key.
    Created(Vec<u8>),
    /// The key has another request's answer or claim: the answer is the key's.
    KeyTaken,
}

/// One row of `claim_hold`.
#[derive(sqlx::FromRow)]
struct Outcome {
    outcome: String,
    body: Option<String>,
    seat_ids: Option<Vec<i64>>,
    show_status: Option<ShowStatus>,
    current_seats: Option<i64>,
}

/// Whether `section` of `show` is general admission: sold by count from a counter.
async fn general_admission(
    state: &AppState,
    show: ShowId,
    section: &str,
) -> Result<bool, ApiError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM ga_inventory WHERE show_id = $1 AND section_id = $2) AS "ga!""#,
        show.0,
        section,
    )
    .fetch_one(&state.pool)
    .await?)
}

/// Claims `request`'s seats of `show` for `keyed.fan` under `keyed.key`, with the admission
/// `jti` unless it is spent.
pub(super) async fn create_hold(
    state: &AppState,
    show: ShowId,
    request: &HoldRequest,
    jti: &str,
    keyed: &Keyed<'_>,
) -> Result<Claimed, ApiError> {
    let config = &state.config;
    // Places of a general-admission section, once a best-available request found it has no
    // seats: only then is the section looked up, so a claim of seats pays no extra query.
    let mut places: Option<(&str, i32)> = None;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (seats, adjacent) = match request {
            _ if places.is_some() => (Vec::new(), None),
            HoldRequest::Seats(seats) => (seats.clone(), None),
            HoldRequest::BestAvailable { scope, quantity } => {
                match best_available(&state.pool, show, scope, *quantity).await {
                    Ok(choice) => (choice.seats, Some(choice.adjacent)),
                    Err(unknown @ ApiError::Unprocessable(Code::UnknownSection, _)) => {
                        let BestScope::SectionId(section) = scope else {
                            return Err(unknown);
                        };
                        if !general_admission(state, show, section).await? {
                            return Err(unknown);
                        }
                        places = Some((section.as_str(), *quantity as i32));
                        (Vec::new(), None)
                    }
                    Err(error) => return Err(error),
                }
            }
        };
        let called = sqlx::query_as::<_, Outcome>(
            "SELECT * FROM claim_hold($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(Uuid::now_v7())
        .bind(show)
        .bind(keyed.fan)
        .bind(jti)
        .bind(&seats)
        .bind(config.holds.ttl_s)
        .bind(config.holds.max_seats_per_fan as i32)
        .bind(keyed.key)
        .bind(keyed.route)
        .bind(keyed.fingerprint)
        .bind(f64::from(config.idempotency.in_flight_timeout_s))
        .bind(adjacent)
        .bind(places.map(|(section, _)| section))
        .bind(places.map(|(_, quantity)| quantity))
        .fetch_one(&state.pool)
        .await;
        let outcome = match called {
            Ok(outcome) => outcome,
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some(KEY_ANSWERED_MEANWHILE) =>
            {
                return Ok(Claimed::KeyTaken)
            }
            Err(error) => return Err(error.into()),
        };
        let max = config.holds.max_seats_per_fan;
        return match outcome.outcome.as_str() {
            "created" => Ok(Claimed::Created(
                outcome.body.unwrap_or_default().into_bytes(),
            )),
            "key_taken" => Ok(Claimed::KeyTaken),
            "admission_spent" => Err(ApiError::AdmissionSpent),
            "no_show" => Err(ShowId::not_found()),
            "not_on_sale" => match outcome.show_status {
                Some(status) => Err(not_on_sale(status)),
                None => Err(ApiError::Internal("claim_hold gave no show status".into())),
            },
            "unknown_seats" => Err(ApiError::problem(
                Problem::new(Code::UnknownSeats, "Unknown seats")
                    .with_detail("these seats are not part of the show")
                    .with("unknown_seat_ids", outcome.seat_ids.unwrap_or_default()),
            )),
            "fan_limit" => Err(fan_seat_limit(
                max,
                outcome.current_seats.unwrap_or_default(),
            )),
            "sold_out" => Err(ApiError::problem(
                Problem::new(Code::NotEnoughSeats, "Not enough places")
                    .with_detail(
                        "the section has fewer places left than asked for; nothing was held",
                    )
                    .with("unavailable_seat_ids", Vec::<i64>::new()),
            )),
            "seats_taken" => {
                let taken = outcome.seat_ids.unwrap_or_default();
                match request {
                    HoldRequest::BestAvailable { .. } if attempt < BEST_AVAILABLE_ATTEMPTS => {
                        continue
                    }
                    HoldRequest::BestAvailable { .. } => {
                        Err(unavailable(Code::NotEnoughSeats, taken))
                    }
                    HoldRequest::Seats(_) => Err(unavailable(Code::SeatsUnavailable, taken)),
                }
            }
            other => Err(ApiError::Internal(format!("claim_hold answered {other:?}"))),
        };
    }
}
