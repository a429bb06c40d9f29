//! The organizer API: create a venue with its seat map, an event, a show. Bearer token from
//! `admin.token`. The create functions take the new id so the demo seed can use fixed ids.

use crate::catalog::{find_event, find_show, EventView, ShowView};
use crate::domain::drafts::{EventBody, SeatFlag, ShowBody, VenueBody};
use crate::domain::{EventDraft, EventId, ShowDraft, ShowId, VenueDraft, VenueId};
use crate::error::{ApiError, Code};
use crate::json::ApiJson;
use crate::openapi;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

pub(crate) async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if state.config.admin.token.matches(presented.as_bytes()) {
        Ok(next.run(request).await)
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// A venue created with its seat map.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct VenueCreated {
    /// The new venue.
    pub venue_id: Uuid,
    /// How many sections it has.
    pub sections: usize,
    /// How many seats it has.
    pub seat_count: usize,
}

onsale_contract::problems!(pub(crate) VenueProblems = [
    openapi::ANY,
    openapi::JSON_BODY,
    openapi::ORGANIZER,
    &[Code::InvalidField],
]);

/// Creates a venue with its whole seat map, in one transaction.
#[utoipa::path(
    post,
    path = "/v1/admin/venues",
    tag = "organizer",
    request_body = VenueBody,
    responses((status = 201, description = "The venue.", body = VenueCreated), VenueProblems),
    security(("organizer" = [])),
)]
pub(crate) async fn post_venue(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VenueBody>,
) -> Result<Response, ApiError> {
    let draft = VenueDraft::parse(body)?;
    let id = VenueId(Uuid::now_v7());
    create_venue(&state.pool, id, &draft).await?;
    let created = VenueCreated {
        venue_id: id.0,
        sections: draft.sections.len(),
        seat_count: draft.seat_count(),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Inserts the venue, its sections and its seats in one transaction; seats go in as arrays
/// so an 80,000-seat stadium is three statements, not 80,000.
pub(crate) async fn create_venue(
    pool: &PgPool,
    id: VenueId,
    draft: &VenueDraft,
) -> Result<(), sqlx::Error> {
    let seat_count = draft.seat_count();
    let mut section_ids = Vec::with_capacity(seat_count);
    let mut rows = Vec::with_capacity(seat_count);
    let mut numbers = Vec::with_capacity(seat_count);
    let mut xs = Vec::with_capacity(seat_count);
    let mut ys = Vec::with_capacity(seat_count);
    let mut accessible = Vec::with_capacity(seat_count);
    let mut obstructed = Vec::with_capacity(seat_count);
    for section in &draft.sections {
        for (row, seats) in &section.rows {
            for seat in seats {
                section_ids.push(section.section_id.as_str());
                rows.push(row.as_str());
                numbers.push(seat.number);
                xs.push(seat.x);
                ys.push(seat.y);
                accessible.push(seat.flags.contains(&SeatFlag::Accessible));
                obstructed.push(seat.flags.contains(&SeatFlag::Obstructed));
            }
        }
    }
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO venues (id, name, city, timezone, stage_x, stage_y) VALUES ($1, $2, $3, $4, $5, $6)",
        id.0,
        draft.name,
        draft.city,
        draft.timezone,
        draft.stage.0,
        draft.stage.1,
    )
    .execute(&mut *tx)
    .await?;
    // Borrowed text arrays (`Vec<&str>`) bind as `text[]`; `as _` takes them as they are,
    // where the macro would ask for `&[String]`.
    let ids: Vec<&str> = draft
        .sections
        .iter()
        .map(|s| s.section_id.as_str())
        .collect();
    let names: Vec<&str> = draft.sections.iter().map(|s| s.name.as_str()).collect();
    let tiers: Vec<&str> = draft
        .sections
        .iter()
        .map(|s| s.price_tier.as_str())
        .collect();
    let capacities: Vec<Option<i32>> = draft.sections.iter().map(|s| s.capacity).collect();
    sqlx::query!(
        "INSERT INTO sections (venue_id, id, name, price_tier, position, capacity)
         SELECT $1, id, name, tier, position - 1, capacity
         FROM unnest($2::text[], $3::text[], $4::text[], $5::int4[])
              WITH ORDINALITY AS t(id, name, tier, capacity, position)",
        id.0,
        ids as _,
        names as _,
        tiers as _,
        &capacities as _,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO seats (venue_id, section_id, row_label, number, x, y, accessible, obstructed, layout_idx)
         SELECT $1, section_id, row_label, number, x, y, accessible, obstructed, idx - 1
         FROM unnest($2::text[], $3::text[], $4::int4[], $5::float4[], $6::float4[], $7::bool[], $8::bool[])
              WITH ORDINALITY AS t(section_id, row_label, number, x, y, accessible, obstructed, idx)",
        id.0,
        section_ids as _,
        rows as _,
        &numbers,
        &xs,
        &ys,
        &accessible,
        &obstructed,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

onsale_contract::problems!(pub(crate) EventProblems = [
    openapi::ANY,
    openapi::JSON_BODY,
    openapi::ORGANIZER,
    &[Code::InvalidField, Code::UnknownVenue],
]);

/// Creates an event at a venue; the public listing shows it once it has a show.
#[utoipa::path(
    post,
    path = "/v1/admin/events",
    tag = "organizer",
    request_body = EventBody,
    responses((status = 201, description = "The event.", body = EventView), EventProblems),
    security(("organizer" = [])),
)]
pub(crate) async fn post_event(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EventBody>,
) -> Result<Response, ApiError> {
    let draft = EventDraft::parse(body)?;
    let id = EventId(Uuid::now_v7());
    let event = create_event(&state.pool, id, &draft).await?;
    Ok((StatusCode::CREATED, Json(event)).into_response())
}

pub(crate) async fn create_event(
    pool: &PgPool,
    id: EventId,
    draft: &EventDraft,
) -> Result<EventView, ApiError> {
    let inserted = sqlx::query!(
        "INSERT INTO events (id, venue_id, name, performer, description)
         SELECT $1, v.id, $3, $4, $5 FROM venues v WHERE v.id = $2",
        id.0,
        draft.venue_id,
        draft.name,
        draft.performer,
        draft.description,
    )
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::Unprocessable(
            Code::UnknownVenue,
            format!("venue {} does not exist", draft.venue_id),
        ));
    }
    Ok(find_event(pool, id).await?.expect("inserted above"))
}

onsale_contract::problems!(pub(crate) ShowProblems = [
    openapi::ANY,
    openapi::JSON_BODY,
    openapi::ORGANIZER,
    &[Code::EventNotFound, Code::InvalidField, Code::MissingPriceTier],
]);

/// Creates a show of an event with its prices and all its venue's seats.
#[utoipa::path(
    post,
    path = "/v1/admin/events/{id}/shows",
    tag = "organizer",
    params(("id" = Uuid, Path, description = "The event.")),
    request_body = ShowBody,
    responses((status = 201, description = "The show.", body = ShowView), ShowProblems),
    security(("organizer" = [])),
)]
pub(crate) async fn post_show(
    State(state): State<AppState>,
    event_id: EventId,
    ApiJson(body): ApiJson<ShowBody>,
) -> Result<Response, ApiError> {
    let draft = ShowDraft::parse(body)?;
    let show = create_show(&state.pool, ShowId(Uuid::now_v7()), event_id, &draft).await?;
    Ok((StatusCode::CREATED, Json(show)).into_response())
}

/// Creates the show, its prices, its own inventory partition, and copies the venue layout
/// into that partition and its general-admission sections' capacities into their counters,
/// all in one transaction: a show exists with all its seats and places or not at all.
pub(crate) async fn create_show(
    pool: &PgPool,
    id: ShowId,
    event_id: EventId,
    draft: &ShowDraft,
) -> Result<ShowView, ApiError> {
    let mut tx = pool.begin().await?;
    let venue = sqlx::query!(
        "SELECT v.id, v.layout_version FROM events e JOIN venues v ON v.id = e.venue_id
         WHERE e.id = $1 FOR SHARE OF e",
        event_id.0,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(EventId::not_found)?;
    let (venue_id, layout_version) = (venue.id, venue.layout_version);

    // `Vec<&str>` binds as `text[]` through `as _` (see `create_venue`).
    let tiers: Vec<&str> = draft.price_tiers.iter().map(|t| t.tier.as_str()).collect();
    let unpriced: Vec<String> = sqlx::query_scalar!(
        "SELECT DISTINCT price_tier FROM sections WHERE venue_id = $1 AND price_tier <> ALL($2) ORDER BY 1",
        venue_id,
        &tiers as _,
    )
    .fetch_all(&mut *tx)
    .await?;
    if !unpriced.is_empty() {
        return Err(ApiError::Unprocessable(
            Code::MissingPriceTier,
            format!("the venue's tiers {unpriced:?} have no price"),
        ));
    }

    sqlx::query!(
        "INSERT INTO shows (id, event_id, starts_at, on_sale_at, currency, seat_count, layout_version)
         SELECT $1, $2, $3, $4, $5, count(*), $6 FROM seats WHERE venue_id = $7",
        id.0,
        event_id.0,
        draft.starts_at,
        draft.on_sale_at,
        draft.currency,
        layout_version,
        venue_id,
    )
    .execute(&mut *tx)
    .await?;
    let tier_names: Vec<&str> = draft.price_tiers.iter().map(|t| t.name.as_str()).collect();
    let prices: Vec<i64> = draft.price_tiers.iter().map(|t| t.price_cents).collect();
    sqlx::query!(
        "INSERT INTO show_price_tiers (show_id, tier, name, price_cents)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int8[])",
        id.0,
        &tiers as _,
        tier_names as _,
        &prices,
    )
    .execute(&mut *tx)
    .await?;
    // DDL cannot take bind parameters; the name and value come from a UUID, never from input.
    // Pages keep a fifth free, so a seat's updates stay on its page (HOT: no index writes).
    sqlx::query(&format!(
        "CREATE TABLE {} PARTITION OF seat_inventory FOR VALUES IN ('{}') WITH (fillfactor = 80)",
        inventory_partition(id),
        id.0
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO seat_inventory (show_id, seat_id, section_id, price_tier, layout_idx)
         SELECT $1, s.id, s.section_id, sec.price_tier, s.layout_idx
         FROM seats s JOIN sections sec ON sec.venue_id = s.venue_id AND sec.id = s.section_id
         WHERE s.venue_id = $2",
        id.0,
        venue_id,
    )
    .execute(&mut *tx)
    .await?;
    // Statistics at once: until autovacuum's first ANALYZE the planner takes the new table
    // for empty, and a pooled connection keeps the sequential scans it plans then as its
    // generic plans (an order's items once read a whole stadium per order this way).
    sqlx::query(&format!("ANALYZE {}", inventory_partition(id)))
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "INSERT INTO ga_inventory (show_id, section_id, price_tier, capacity, available)
         SELECT $1, id, price_tier, capacity, capacity FROM sections
         WHERE venue_id = $2 AND capacity IS NOT NULL",
        id.0,
        venue_id,
    )
    .execute(&mut *tx)
    .await?;
    // LEAST ignores NULL: the first show sets it, later shows can only move it earlier.
    sqlx::query!(
        "UPDATE events SET first_show_at = LEAST(first_show_at, $2) WHERE id = $1",
        event_id.0,
        draft.starts_at,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(find_show(pool, id).await?.expect("committed above"))
}

/// The partition holding one show's seats. `claim_hold` spells the same name in SQL
/// (migration 0012).
pub fn inventory_partition(id: ShowId) -> String {
    format!("seat_inventory_{}", id.0.simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_tokens_exactly() {
        use onsale_contract::config::Secret;
        assert!(Secret::new("secret-token").matches(b"secret-token"));
        assert!(!Secret::new("secret-token").matches(b"secret-tokex"));
        assert!(!Secret::new("secret").matches(b"secret-token"));
    }

    #[test]
    fn partition_names_fit_postgres_identifiers() {
        let name = inventory_partition(ShowId(Uuid::new_v4()));
        assert!(name.len() <= 63 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    }
}
