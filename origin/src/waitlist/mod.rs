//! The waitlist of a sold-out show.
//!
//! `POST /v1/shows/{id}/waitlist` (the fan's session) puts the account on it, once the show
//! has no seat left on sale: for `quantity` seats, in `section_ids` or anywhere. `GET` shows
//! the account's entry with its position, or its offer; `DELETE` leaves (an offer not yet
//! ordered is released and passes on).
//!
//! While a fan waits, seats that come back go to the waitlist first (migration
//! 0022_waitlist.sql): [`offers`] makes each returned seat part of an offer to the first
//! waiting fan it fits, in the order they joined. An offer is a hold in the fan's name for
//! `waitlist.offer_ttl_s`; the edge admits the fan to buy it (`POST
//! /v1/waiting-room/offers`), and a fan who does not passes it on.

pub(crate) mod offers;

use crate::accounts::Session;
use crate::catalog::EFFECTIVE_STATUS;
use crate::domain::hold_request::is_code;
use crate::domain::ShowId;
use crate::error::{ApiError, Code};
use crate::json::ApiJson;
use crate::openapi;
use crate::status::ShowStatus;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use onsale_contract::clock::now_ms;
use onsale_contract::problem::Problem;
use onsale_contract::tokens::WAITING_ROOM_PATH;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use std::collections::HashSet;
use uuid::Uuid;

/// Most sections one entry may name.
const MAX_SECTIONS: usize = 32;

/// What a fan waits for.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinBody {
    /// How many seats, together in one offer: 1 to `holds.max_seats_per_hold`.
    #[schema(minimum = 1, maximum = 100)]
    quantity: u32,
    /// The reserved-seating sections the fan would sit in, 1 to 32 of them (section codes,
    /// each 1 to 32 letters, digits, `-` and `_`); any section when left out.
    #[schema(min_items = 1, max_items = 32)]
    section_ids: Option<Vec<String>>,
}

/// Seats held for a waiting fan.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct OfferView {
    /// The hold the seats are in: order it (`POST /v1/orders`) with the admission
    /// `POST /v1/waiting-room/offers` gives.
    hold_id: Uuid,
    /// The seats.
    seat_ids: Vec<i64>,
    /// Whether they sit together in one row.
    adjacent: bool,
    /// Until when the offer holds them, Unix ms; then they pass to the next fan.
    expires_at_ms: i64,
    /// Their price.
    total_cents: i64,
    /// ISO 4217.
    currency: String,
}

/// An account's place on a show's waitlist.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EntryView {
    /// The show.
    show_id: Uuid,
    /// `waiting`; `offered` (seats are held for the fan: `offer`); `bought` (the offer was
    /// paid); `lapsed` (the offer ended unpaid); `left`; `closed` (the show was called off).
    #[schema(pattern = "^(waiting|offered|bought|lapsed|left|closed)$")]
    status: String,
    /// Seats the fan waits for.
    quantity: i32,
    /// The sections named, or none for any.
    section_ids: Option<Vec<String>>,
    /// While waiting: 1 for the next fan to be offered seats.
    position: Option<i64>,
    /// When the fan joined, Unix ms.
    joined_at_ms: i64,
    /// The offer, once one was made.
    offer: Option<OfferView>,
    /// The origin's clock, Unix ms, for counting down to `offer.expires_at_ms`.
    server_time_ms: i64,
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    status: String,
    quantity: i32,
    section_ids: Option<Vec<String>>,
    position: Option<i64>,
    joined_at: DateTime<Utc>,
    hold_id: Option<Uuid>,
    seat_ids: Option<Vec<i64>>,
    adjacent: Option<bool>,
    expires_at: Option<DateTime<Utc>>,
    total_cents: Option<i64>,
    currency: Option<String>,
}

/// The account's latest entry for the show, as it stands: an offer whose hold has ended is
/// shown `bought` or `lapsed` before the worker records it.
async fn latest(
    conn: &mut PgConnection,
    show: Uuid,
    account: Uuid,
) -> Result<Option<EntryView>, sqlx::Error> {
    let row: Option<EntryRow> = sqlx::query_as(
        "SELECT CASE WHEN w.status = 'offered' AND h.status = 'converted' THEN 'bought'
                     WHEN w.status = 'offered' AND (h.status <> 'active' OR h.expires_at <= now())
                          THEN 'lapsed'
                     ELSE w.status END AS status,
                w.quantity, w.section_ids, w.joined_at,
                CASE WHEN w.status = 'waiting' THEN
                    (SELECT count(*) FROM waitlist_entries a
                      WHERE a.show_id = w.show_id AND a.status = 'waiting' AND a.id <= w.id)
                END AS position,
                h.id AS hold_id, h.seat_ids, h.adjacent, h.expires_at, h.total_cents, h.currency
         FROM waitlist_entries w LEFT JOIN holds h ON h.id = w.offer_hold_id
         WHERE w.show_id = $1 AND w.account_id = $2
         ORDER BY w.id DESC LIMIT 1",
    )
    .bind(show)
    .bind(account)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| {
        let offer = match (row.hold_id, row.expires_at) {
            (Some(hold_id), Some(expires_at)) => Some(OfferView {
                hold_id,
                seat_ids: row.seat_ids.unwrap_or_default(),
                adjacent: row.adjacent.unwrap_or(false),
                expires_at_ms: expires_at.timestamp_millis(),
                total_cents: row.total_cents.unwrap_or_default(),
                currency: row.currency.unwrap_or_default(),
            }),
            _ => None,
        };
        EntryView {
            show_id: show,
            status: row.status,
            quantity: row.quantity,
            section_ids: row.section_ids,
            position: row.position,
            joined_at_ms: row.joined_at.timestamp_millis(),
            offer,
            server_time_ms: now_ms(),
        }
    }))
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(Code::InvalidField, detail.into())
}

/// The sections in `body`, checked against the show's reserved-seating sections.
async fn sections_of(
    conn: &mut PgConnection,
    show: Uuid,
    named: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(named) = named else {
        return Ok(None);
    };
    if named.is_empty() || named.len() > MAX_SECTIONS {
        return Err(invalid(format!(
            "`section_ids` must name 1 to {MAX_SECTIONS} sections"
        )));
    }
    let mut seen = HashSet::new();
    if let Some(twice) = named.iter().find(|id| !seen.insert(id.as_str())) {
        return Err(invalid(format!("`section_ids` names {twice:?} twice")));
    }
    // Anything but a section code names no section.
    if let Some(unknown) = named.iter().find(|id| !is_code(id)) {
        return Err(ApiError::Unprocessable(
            Code::UnknownSection,
            format!("the show has no reserved-seating section {unknown:?}"),
        ));
    }
    let seated: Vec<String> = sqlx::query_scalar!(
        r#"SELECT sec.id AS "id!" FROM shows s JOIN events e ON e.id = s.event_id
           JOIN sections sec ON sec.venue_id = e.venue_id
           WHERE s.id = $1 AND sec.capacity IS NULL AND sec.id = ANY($2)"#,
        show,
        &named,
    )
    .fetch_all(conn)
    .await?;
    if let Some(unknown) = named.iter().find(|id| !seated.contains(id)) {
        return Err(ApiError::Unprocessable(
            Code::UnknownSection,
            format!("the show has no reserved-seating section {unknown:?}"),
        ));
    }
    Ok(Some(named))
}

onsale_contract::problems!(pub(crate) JoinProblems = [
    openapi::ANY,
    openapi::SESSION,
    openapi::JSON_BODY,
    &[
        Code::InvalidField,
        Code::ShowNotFound,
        Code::WaitlistClosed,
        Code::NotSoldOut,
        Code::UnknownSection,
        Code::FanSeatLimit,
    ],
]);

/// Puts the signed-in account on the show's waitlist, or finds its place there.
///
/// Only once the show has no seat on sale (409 `not_sold_out` before: join the waiting room
/// instead), and only while it is on sale with waitlists on (409 `waitlist_closed`). One
/// entry per account and show: joining again answers 200 with the place it has. The
/// quantity counts against the account's seat limit with its holds and orders (422
/// `fan_seat_limit`). Seats that come back are offered in the order fans joined, each offer
/// to the first fan waiting whose quantity and sections it fits.
#[utoipa::path(
    post,
    path = "/v1/shows/{id}/waitlist",
    tag = "fan",
    params(("id" = Uuid, Path, description = "The show.")),
    request_body = JoinBody,
    responses(
        (status = 201, description = "On the waitlist.", body = EntryView),
        (status = 200, description = "The account's place, joined before.", body = EntryView),
        JoinProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn post_waitlist(
    State(state): State<AppState>,
    session: Session,
    show: ShowId,
    ApiJson(body): ApiJson<JoinBody>,
) -> Result<Response, ApiError> {
    let config = &state.config;
    let most = config.holds.max_seats_per_hold;
    if !(1..=most).contains(&(body.quantity as usize)) {
        return Err(invalid(format!("`quantity` must be 1 to {most}")));
    }
    let account = session.account;
    let fan = account.to_string();
    let mut tx = state.pool.begin().await?;
    let sale: ShowStatus = sqlx::query_scalar(&format!(
        "SELECT {EFFECTIVE_STATUS} FROM shows s WHERE s.id = $1"
    ))
    .bind(show)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(ShowId::not_found)?;
    if !config.waitlist.enabled || sale != ShowStatus::OnSale {
        return Err(ApiError::Conflict(
            Code::WaitlistClosed,
            "this show takes no waitlist now".to_owned(),
        ));
    }
    let sections = sections_of(&mut tx, show.0, body.section_ids).await?;
    // The fan's seats are counted under the lock claims of its seats take.
    offers::lock_fans(&mut tx, show.0, std::slice::from_ref(&fan)).await?;
    if let Some(entry) = latest(&mut tx, show.0, account).await? {
        if matches!(entry.status.as_str(), "waiting" | "offered") {
            return crate::http::json(StatusCode::OK, &entry);
        }
    }
    let sold_out = sqlx::query_scalar!(
        r#"SELECT NOT EXISTS (SELECT 1 FROM seat_inventory i WHERE i.show_id = $1
                   AND (i.status = 'available'
                        OR (i.status = 'held' AND i.hold_expires_at <= now() AND NOT waitlist_waiting($1))))
              AND NOT EXISTS (SELECT 1 FROM ga_inventory g WHERE g.show_id = $1 AND g.available > 0)
           AS "sold_out!""#,
        show.0,
    )
    .fetch_one(&mut *tx)
    .await?;
    if !sold_out {
        return Err(ApiError::problem(
            Problem::new(Code::NotSoldOut, "Seats are still on sale")
                .with_detail("the waitlist opens once none are left; join the waiting room")
                .with("join", WAITING_ROOM_PATH),
        ));
    }
    let counts = offers::fan_seats(&mut tx, show.0, std::slice::from_ref(&fan)).await?;
    let current = counts.get(&fan).copied().unwrap_or(0);
    let max = config.holds.max_seats_per_fan;
    if current as usize + body.quantity as usize > max {
        return Err(crate::holds::claim::fan_seat_limit(max, current));
    }
    sqlx::query!(
        "INSERT INTO waitlist_entries (show_id, account_id, quantity, section_ids)
         VALUES ($1, $2, $3, $4)",
        show.0,
        account,
        body.quantity as i32,
        sections.as_deref(),
    )
    .execute(&mut *tx)
    .await?;
    let entry = latest(&mut tx, show.0, account)
        .await?
        .ok_or_else(|| ApiError::Internal("the entry just made is gone".into()))?;
    tx.commit().await?;
    tracing::info!(%show, %account, quantity = body.quantity, "joined the waitlist");
    crate::http::json(StatusCode::CREATED, &entry)
}

fn not_on_waitlist() -> ApiError {
    ApiError::NotFound {
        code: Code::NotOnWaitlist,
        what: "waitlist entry",
    }
}

onsale_contract::problems!(pub(crate) EntryProblems = [
    openapi::ANY,
    openapi::SESSION,
    &[Code::ShowNotFound, Code::NotOnWaitlist],
]);

/// The signed-in account's latest entry on the show's waitlist: its position while it
/// waits, its offer once it has one.
#[utoipa::path(
    get,
    path = "/v1/shows/{id}/waitlist",
    tag = "fan",
    params(("id" = Uuid, Path, description = "The show.")),
    responses((status = 200, description = "The entry.", body = EntryView), EntryProblems),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn get_waitlist(
    State(state): State<AppState>,
    session: Session,
    show: ShowId,
) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let entry = latest(&mut conn, show.0, session.account)
        .await?
        .ok_or_else(not_on_waitlist)?;
    crate::http::json(StatusCode::OK, &entry)
}

onsale_contract::problems!(pub(crate) LeaveProblems = [
    openapi::ANY,
    openapi::SESSION,
    &[
        Code::ShowNotFound,
        Code::NotOnWaitlist,
        Code::HoldOrdered,
        Code::HoldConverted,
    ],
]);

/// Takes the signed-in account off the show's waitlist. An offer it has not ordered is
/// released at once and passes to the next fan; one with an order awaiting payment is the
/// order's to finish (409 `hold_ordered`).
#[utoipa::path(
    delete,
    path = "/v1/shows/{id}/waitlist",
    tag = "fan",
    params(("id" = Uuid, Path, description = "The show.")),
    responses((status = 204, description = "Off the waitlist."), LeaveProblems),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn delete_waitlist(
    State(state): State<AppState>,
    session: Session,
    show: ShowId,
) -> Result<Response, ApiError> {
    let live = sqlx::query!(
        "SELECT w.id, h.id AS \"hold_id?\", h.seat_ids AS \"seat_ids?\"
         FROM waitlist_entries w LEFT JOIN holds h ON h.id = w.offer_hold_id
         WHERE w.show_id = $1 AND w.account_id = $2 AND w.status IN ('waiting', 'offered')",
        show.0,
        session.account,
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(not_on_waitlist)?;
    if let (Some(hold), Some(seats)) = (live.hold_id, live.seat_ids) {
        crate::holds::release(&state, show.0, &seats, hold).await?;
    }
    sqlx::query!(
        "UPDATE waitlist_entries SET status = 'left', ended_at = now()
         WHERE id = $1 AND status IN ('waiting', 'offered')",
        live.id,
    )
    .execute(&state.pool)
    .await?;
    tracing::info!(%show, account = %session.account, "left the waitlist");
    Ok(StatusCode::NO_CONTENT.into_response())
}
