//! Public catalog reads: events, an event's shows, a show. Served through the edge, which
//! micro-caches them; `Cache-Control` here says for how long.

use crate::domain::{EventFilter, EventId, Keyset, ShowId};
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// A show's status as fans see it: a `scheduled` show whose on-sale time has passed is on
/// sale, without a job having to flip it.
pub(crate) const EFFECTIVE_STATUS: &str =
    "CASE WHEN s.status = 'scheduled' AND s.on_sale_at <= now() THEN 'on_sale' ELSE s.status END";

#[derive(Debug, Serialize)]
pub(crate) struct VenueSummary {
    pub id: Uuid,
    pub name: String,
    pub city: String,
    pub timezone: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct EventView {
    pub id: Uuid,
    pub name: String,
    pub performer: String,
    pub description: String,
    pub first_show_at: Option<DateTime<Utc>>,
    pub venue: VenueSummary,
}

/// An event as the event queries select it: its venue's columns flat beside its own.
struct EventRow {
    id: Uuid,
    name: String,
    performer: String,
    description: String,
    first_show_at: Option<DateTime<Utc>>,
    venue_id: Uuid,
    venue_name: String,
    city: String,
    timezone: String,
}

impl From<EventRow> for EventView {
    fn from(row: EventRow) -> Self {
        EventView {
            id: row.id,
            name: row.name,
            performer: row.performer,
            description: row.description,
            first_show_at: row.first_show_at,
            venue: VenueSummary {
                id: row.venue_id,
                name: row.venue_name,
                city: row.city,
                timezone: row.timezone,
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct EventPage {
    pub items: Vec<EventView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub(crate) struct ShowView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub venue_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub on_sale_at: DateTime<Utc>,
    pub status: crate::status::ShowStatus,
    pub currency: String,
    pub seat_count: i32,
    pub layout_version: i32,
    #[sqlx(skip)]
    pub price_tiers: Vec<PriceTierView>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PriceTierView {
    pub tier: String,
    pub name: String,
    pub price_cents: i64,
}

pub(crate) async fn list_events(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let catalog = &state.config.catalog;
    let filter = EventFilter::parse(
        query.as_deref(),
        catalog.default_page_size,
        catalog.max_page_size,
    )?;
    let page = query_events(&state.pool, &filter).await?;
    Ok(cached(&state, Json(page)))
}

pub(crate) async fn query_events(
    pool: &PgPool,
    filter: &EventFilter,
) -> Result<EventPage, sqlx::Error> {
    let rows = sqlx::query_as!(
        EventRow,
        "SELECT e.id, e.name, e.performer, e.description, e.first_show_at,
                v.id AS venue_id, v.name AS venue_name, v.city, v.timezone
         FROM events e JOIN venues v ON v.id = e.venue_id
         WHERE e.first_show_at IS NOT NULL
           AND ($1::text IS NULL OR lower(v.city) = lower($1))
           AND ($2::uuid IS NULL OR e.venue_id = $2)
           AND ($3::text IS NULL OR e.search @@ to_tsquery('simple', $3))
           AND (($4::timestamptz IS NULL AND $5::timestamptz IS NULL) OR EXISTS (
                 SELECT 1 FROM shows s WHERE s.event_id = e.id AND s.status <> 'cancelled'
                   AND ($4::timestamptz IS NULL OR s.starts_at >= $4)
                   AND ($5::timestamptz IS NULL OR s.starts_at < $5)))
           AND ($6::timestamptz IS NULL OR (e.first_show_at, e.id) > ($6, $7::uuid))
         ORDER BY e.first_show_at, e.id
         LIMIT $8",
        filter.city.as_deref(),
        filter.venue_id,
        filter.text_query.as_deref(),
        filter.from,
        filter.to,
        filter.after.map(|c| c.at),
        filter.after.map(|c| c.id),
        i64::from(filter.limit) + 1,
    )
    .fetch_all(pool)
    .await?;
    let mut items: Vec<EventView> = rows.into_iter().map(EventView::from).collect();
    let next_cursor = if items.len() > filter.limit as usize {
        items.truncate(filter.limit as usize);
        items.last().and_then(|last| {
            last.first_show_at
                .map(|at| Keyset { at, id: last.id }.encode())
        })
    } else {
        None
    };
    Ok(EventPage { items, next_cursor })
}

pub(crate) async fn get_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = EventId::parse_path(&id)?;
    let event = find_event(&state.pool, id)
        .await?
        .ok_or_else(EventId::not_found)?;
    Ok(cached(&state, Json(event)))
}

pub(crate) async fn find_event(
    pool: &PgPool,
    id: EventId,
) -> Result<Option<EventView>, sqlx::Error> {
    let row = sqlx::query_as!(
        EventRow,
        "SELECT e.id, e.name, e.performer, e.description, e.first_show_at,
                v.id AS venue_id, v.name AS venue_name, v.city, v.timezone
         FROM events e JOIN venues v ON v.id = e.venue_id WHERE e.id = $1",
        id.0,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(EventView::from))
}

#[derive(Debug, Serialize)]
pub(crate) struct ShowList {
    pub event_id: Uuid,
    pub items: Vec<ShowView>,
}

pub(crate) async fn list_event_shows(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = EventId::parse_path(&id)?;
    if find_event(&state.pool, id).await?.is_none() {
        return Err(EventId::not_found());
    }
    let sql = format!(
        "{} WHERE s.event_id = $1 ORDER BY s.starts_at, s.id",
        show_select()
    );
    let mut items: Vec<ShowView> = sqlx::query_as(&sql).bind(id).fetch_all(&state.pool).await?;
    for show in &mut items {
        show.price_tiers = price_tiers(&state.pool, show.id).await?;
    }
    Ok(cached(
        &state,
        Json(ShowList {
            event_id: id.0,
            items,
        }),
    ))
}

pub(crate) async fn get_show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = ShowId::parse_path(&id)?;
    let show = find_show(&state.pool, id)
        .await?
        .ok_or_else(ShowId::not_found)?;
    Ok(cached(&state, Json(show)))
}

pub(crate) async fn find_show(pool: &PgPool, id: ShowId) -> Result<Option<ShowView>, sqlx::Error> {
    let sql = format!("{} WHERE s.id = $1", show_select());
    let show: Option<ShowView> = sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?;
    match show {
        Some(mut show) => {
            show.price_tiers = price_tiers(pool, show.id).await?;
            Ok(Some(show))
        }
        None => Ok(None),
    }
}

fn show_select() -> String {
    format!(
        "SELECT s.id, s.event_id, e.venue_id, s.starts_at, s.on_sale_at, {EFFECTIVE_STATUS} AS status,
                s.currency, s.seat_count, s.layout_version
         FROM shows s JOIN events e ON e.id = s.event_id"
    )
}

async fn price_tiers(pool: &PgPool, show_id: Uuid) -> Result<Vec<PriceTierView>, sqlx::Error> {
    sqlx::query_as!(
        PriceTierView,
        "SELECT tier, name, price_cents FROM show_price_tiers WHERE show_id = $1 ORDER BY price_cents DESC, tier",
        show_id,
    )
    .fetch_all(pool)
    .await
}

/// Public catalog answers may be cached by the edge and browsers for a few seconds.
fn cached(state: &AppState, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let value = format!(
        "public, max-age={}",
        state.config.catalog.public_cache_max_age_s
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}
