//! Public catalog reads: events, an event's shows, a show. Served through the edge, which
//! micro-caches them; `Cache-Control` here says for how long.

use crate::domain::{EventFilter, EventId, Keyset, ShowId};
use crate::error::{ApiError, Code};
use crate::openapi;
use crate::AppState;
use axum::extract::{RawQuery, State};
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

/// The venue an event takes place at.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct VenueSummary {
    /// The venue's id.
    pub id: Uuid,
    /// The venue's name.
    pub name: String,
    /// The city it is in.
    pub city: String,
    /// Its IANA time zone (e.g. `Europe/London`), for showing local times.
    pub timezone: String,
}

/// An event: what is performed, by whom, where.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventView {
    /// The event's id.
    pub id: Uuid,
    /// The event's name.
    pub name: String,
    /// Who performs.
    pub performer: String,
    /// The organizer's description.
    pub description: String,
    /// When its first show starts; null while it has no show.
    pub first_show_at: Option<DateTime<Utc>>,
    /// Where it takes place.
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

/// A page of events, by first show then id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventPage {
    /// The events of this page.
    pub items: Vec<EventView>,
    /// The `cursor` of the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A show: one performance of an event, with its prices.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub(crate) struct ShowView {
    /// The show's id.
    pub id: Uuid,
    /// Its event.
    pub event_id: Uuid,
    /// Its event's venue.
    pub venue_id: Uuid,
    /// When the show starts.
    pub starts_at: DateTime<Utc>,
    /// When its sale opens.
    pub on_sale_at: DateTime<Utc>,
    /// Its state; a scheduled show past `on_sale_at` is `on_sale`.
    pub status: crate::status::ShowStatus,
    /// The currency of its prices (ISO 4217, e.g. `EUR`).
    #[schema(min_length = 3, max_length = 3)]
    pub currency: String,
    /// How many seats it has.
    pub seat_count: i32,
    /// The version of the venue's seat map the show uses.
    pub layout_version: i32,
    /// Its price tiers, dearest first.
    #[sqlx(skip)]
    pub price_tiers: Vec<PriceTierView>,
}

/// The price of one tier of a show's seats.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PriceTierView {
    /// The tier's key in the venue's seat map.
    pub tier: String,
    /// The tier's name for fans.
    pub name: String,
    /// A seat's price in cents of the show's currency.
    #[schema(minimum = 0)]
    pub price_cents: i64,
}

onsale_contract::problems!(pub(crate) EventListProblems = [openapi::ANY, &[Code::InvalidQuery]]);

onsale_contract::problems!(pub(crate) EventProblems = [openapi::ANY, &[Code::EventNotFound]]);

onsale_contract::problems!(pub(crate) ShowProblems = [openapi::ANY, &[Code::ShowNotFound]]);

/// Events that have a show, by their first show's start, a keyset page at a time.
///
/// Filtered by city, venue, show dates and words. Unknown parameters are refused, never
/// ignored, so a misspelt filter never returns everything.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "catalog",
    params(
        ("city" = Option<String>, Query, description = "Only events in this city (any letter case). 1 to 100 characters after trimming, no control characters.", min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"),
        ("venue_id" = Option<Uuid>, Query, description = "Only events at this venue."),
        ("q" = Option<String>, Query, description = "Words the event's name or performer must contain, each as a prefix (`quart live` finds \"Midnight Quartet Live\"). 1 to 200 characters after trimming, no control characters, at least one letter or digit; only the first 16 words count.", min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\W_][^\x00-\x1f\x7f-\x9f]*$"),
        ("from" = Option<String>, Query, description = "Only events with a show (not cancelled) starting at or after this: an RFC 3339 time, or a date (`YYYY-MM-DD`, from the start of that day, UTC)."),
        ("to" = Option<String>, Query, description = "Only events with a show (not cancelled) starting before this: an RFC 3339 time, or a date (`YYYY-MM-DD`, through the end of that day, UTC). Must be after `from`."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page; opaque.", min_length = 1, max_length = 128),
        ("limit" = Option<u32>, Query, description = "Events per page: 1 to `catalog.max_page_size` (100 by default); `catalog.default_page_size` (20 by default) when absent.", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, description = "A page of events.", body = EventPage, headers(("Cache-Control" = String, description = "`public, max-age=<catalog.public_cache_max_age_s>`: the edge and browsers may reuse the answer that long."))),
        EventListProblems,
    ),
)]
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

/// One event, with its venue.
#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    tag = "catalog",
    params(("id" = Uuid, Path, description = "The event.")),
    responses(
        (status = 200, description = "The event.", body = EventView, headers(("Cache-Control" = String, description = "`public, max-age=<catalog.public_cache_max_age_s>`: the edge and browsers may reuse the answer that long."))),
        EventProblems,
    ),
)]
pub(crate) async fn get_event(
    State(state): State<AppState>,
    id: EventId,
) -> Result<Response, ApiError> {
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

/// An event's shows, by start time.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ShowList {
    /// The event.
    pub event_id: Uuid,
    /// Its shows.
    pub items: Vec<ShowView>,
}

/// Every show of an event, by start time, with its prices.
#[utoipa::path(
    get,
    path = "/v1/events/{id}/shows",
    tag = "catalog",
    params(("id" = Uuid, Path, description = "The event.")),
    responses(
        (status = 200, description = "The event's shows.", body = ShowList, headers(("Cache-Control" = String, description = "`public, max-age=<catalog.public_cache_max_age_s>`: the edge and browsers may reuse the answer that long."))),
        EventProblems,
    ),
)]
pub(crate) async fn list_event_shows(
    State(state): State<AppState>,
    id: EventId,
) -> Result<Response, ApiError> {
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

/// One show, with its sale state and prices.
#[utoipa::path(
    get,
    path = "/v1/shows/{id}",
    tag = "catalog",
    params(("id" = Uuid, Path, description = "The show.")),
    responses(
        (status = 200, description = "The show.", body = ShowView, headers(("Cache-Control" = String, description = "`public, max-age=<catalog.public_cache_max_age_s>`: the edge and browsers may reuse the answer that long."))),
        ShowProblems,
    ),
)]
pub(crate) async fn get_show(
    State(state): State<AppState>,
    id: ShowId,
) -> Result<Response, ApiError> {
    let show = find_show(&state.pool, id)
        .await?
        .ok_or_else(ShowId::not_found)?;
    Ok(cached(&state, Json(show)))
}

/// 404 `show_not_found` unless the show exists.
pub(crate) async fn require_show<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    show: ShowId,
) -> Result<(), ApiError> {
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM shows WHERE id = $1) AS "exists!""#,
        show.0
    )
    .fetch_one(executor)
    .await?;
    if exists {
        Ok(())
    } else {
        Err(ShowId::not_found())
    }
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
