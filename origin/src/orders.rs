//! Orders: a fan's active hold becomes an order awaiting payment, in one transaction that
//! also extends the hold, once, to the payment window and records the payment; the
//! provider's intent is created just before, outside any transaction.
//!
//! Lock order: the hold's inventory rows, then the hold row; the sweeper takes them in the
//! same order, and a claim locks inventory rows only. An order whose hold expires before
//! payment is cancelled with it (`holds::end_expired`).

use crate::accounts::Session;
use crate::auth::Admission;
use crate::domain::order_request::OrderBody;
use crate::domain::{HoldId, IdempotencyKey, Keyset, OrderId, OrderRequest, Page};
use crate::error::{ApiError, Code};
use crate::holds::{lock_hold, Places};
use crate::idempotency::{self, Begin, Claimed};
use crate::json::ApiJson;
use crate::openapi;
use crate::status::{OrderStatus, PaymentStatus, RefundStatus, TicketStatus};
use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use onsale_contract::clock::now_ms;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

/// An order's latest payment.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = OrderPayment)]
struct PaymentView {
    /// The payment's id, for `POST /v1/payments/{id}/confirm`.
    payment_id: Uuid,
    /// Where the payment stands.
    status: PaymentStatus,
}

/// A seat of an order and what it costs.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = OrderItem)]
struct ItemView {
    /// The seat.
    seat_id: i64,
    /// Its price in cents of the order's currency.
    price_cents: i64,
}

/// A ticket of a paid order: one per seat or general-admission place.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = OrderTicket)]
struct TicketView {
    /// The ticket's id (its QR code is at `GET /v1/tickets/{id}/qr.svg`).
    ticket_id: Uuid,
    /// The seat it admits to; null for a general-admission place.
    #[serde(default)]
    #[schema(required = true)]
    seat_id: Option<i64>,
    /// A general-admission ticket's number in its section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    ga_number: Option<i32>,
    /// Whether it still admits.
    status: TicketStatus,
}

/// An order: a hold's seats awaiting payment, paid, failed or cancelled.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct OrderView {
    /// The order's id.
    order_id: Uuid,
    /// The show.
    show_id: Uuid,
    /// The hold it was made from.
    hold_id: Uuid,
    /// Where the order stands.
    status: OrderStatus,
    /// Why a cancelled order was cancelled: `fan_cancelled`, `organizer_cancelled`,
    /// `hold_expired` or `show_cancelled` (the organizer called the show off).
    #[serde(skip_serializing_if = "Option::is_none")]
    cancel_reason: Option<String>,
    /// What the order costs, in cents of `currency`.
    total_cents: i64,
    /// The currency (ISO 4217, e.g. `EUR`).
    #[schema(min_length = 3, max_length = 3)]
    currency: String,
    /// When the payment window closes (the hold's expiry), Unix ms.
    expires_at_ms: i64,
    /// The server's clock when answering, Unix ms, to count down `expires_at_ms` against.
    server_time_ms: i64,
    /// Its seats, by seat id; empty for general-admission places.
    items: Vec<ItemView>,
    /// For an order of general-admission places, its section and how many.
    #[serde(skip_serializing_if = "Option::is_none")]
    general_admission: Option<Places>,
    /// Its tickets once paid, by seat id; empty before.
    tickets: Vec<TicketView>,
    /// Its latest payment.
    payment: PaymentView,
    /// The refund owed or made, once there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    refund: Option<RefundView>,
}

impl OrderView {
    pub(crate) fn payment_status(&self) -> PaymentStatus {
        self.payment.status
    }

    pub(crate) fn is_confirmed(&self) -> bool {
        self.status == OrderStatus::Confirmed
    }

    pub(crate) fn order_id(&self) -> Uuid {
        self.order_id
    }
}

/// The refund of an order.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = OrderRefund)]
struct RefundView {
    /// The refund's id.
    refund_id: Uuid,
    /// How much goes back, in cents of the order's currency.
    amount_cents: i64,
    /// Why: `fan_cancelled`, `organizer_cancelled`, `hold_expired` or `show_cancelled`.
    reason: String,
    /// `pending` until the provider has refunded it, then `succeeded`.
    status: RefundStatus,
}

onsale_contract::problems!(pub(crate) OrderProblems = [
    openapi::ANY,
    openapi::JSON_BODY,
    openapi::ADMISSION,
    openapi::IDEMPOTENT,
    &[
        Code::HoldNotFound,
        Code::HoldNotActive,
        Code::HoldAlreadyOrdered,
        Code::PaymentProviderUnavailable,
    ],
]);

/// Orders the fan's live hold, to pay for within the payment window.
///
/// The hold is extended, once, to at least the payment window, and the order's payment is
/// created at the provider. A hold has one order at most.
#[utoipa::path(
    post,
    path = "/v1/orders",
    tag = "purchase",
    params(openapi::IdempotencyKeyHeader),
    request_body = OrderBody,
    responses(
        (
            status = 201,
            description = "The order, awaiting payment.",
            body = OrderView,
            headers(("Idempotent-Replayed" = String, description = "`true` on the stored answer of an earlier request with the same key.")),
        ),
        OrderProblems,
    ),
    security(("admission" = []), ("admission_cookie" = [])),
)]
pub(crate) async fn post_order(
    State(state): State<AppState>,
    admission: Admission,
    headers: HeaderMap,
    ApiJson(body): ApiJson<OrderBody>,
) -> Result<Response, ApiError> {
    let key = IdempotencyKey::parse(headers.get("idempotency-key"))?;
    let request = OrderRequest::parse(body)?;
    let route = "POST /v1/orders";
    let begun = idempotency::begin_request(&state, &admission.fan, &key, route, &request).await?;
    let claimed = match begun {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(claimed) => claimed,
    };
    let result = create_order(&state, &admission, request.hold_id, &claimed).await;
    idempotency::respond(&state.pool, &claimed, StatusCode::CREATED, result).await
}

fn hold_already_ordered() -> ApiError {
    ApiError::Conflict(
        Code::HoldAlreadyOrdered,
        "this hold already has an order".to_owned(),
    )
}

async fn create_order(
    state: &AppState,
    admission: &Admission,
    hold: HoldId,
    claimed: &Claimed,
) -> Result<Vec<u8>, ApiError> {
    let seen = sqlx::query!(
        r#"SELECT show_id, fan_id,
                seat_ids AS seats,
                total_cents, currency
         FROM holds h WHERE id = $1"#,
        hold.0,
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(seen) = seen.filter(|h| admission.owns(&h.fan_id, &h.show_id)) else {
        return Err(HoldId::not_found());
    };
    let (show, seats, total_cents, currency) =
        (seen.show_id, seen.seats, seen.total_cents, seen.currency);
    // The intent is made before the transaction, never inside it (no lock is held across a
    // provider call). Its key is the hold, so retries and refusals reuse one intent.
    let intent = state
        .provider
        .create_intent(total_cents, &currency, &format!("order:{hold}"))
        .await?;
    let mut tx = state.pool.begin().await?;
    let active = lock_hold(&mut tx, show, &seats, hold.0).await?;
    if !active {
        let ordered = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM orders WHERE hold_id = $1) AS "ordered!""#,
            hold.0,
        )
        .fetch_one(&mut *tx)
        .await?;
        return Err(if ordered {
            hold_already_ordered()
        } else {
            ApiError::Conflict(
                Code::HoldNotActive,
                "the hold has expired or was released; hold the seats again".to_owned(),
            )
        });
    }
    // One statement for the live hold, locked above: unless it already has an order, the
    // payment window is set on the hold and its seats (once: an order is made once per
    // hold), and the order, its items and its payment are written. Nothing comes back when
    // the hold was ordered before. Seats are named by the show and seat ids as parameters,
    // never through a join with the hold: the planner prunes the inventory's partitions and
    // finds the rows by key only for values it is given (a join scanned the whole show).
    let order = Uuid::now_v7();
    let placed = sqlx::query_scalar!(
        r#"WITH extended AS (
             UPDATE holds SET expires_at = greatest(expires_at, clock_timestamp() + make_interval(secs => $2))
             WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM orders WHERE hold_id = $1)
             RETURNING id, show_id, expires_at
           ), windowed AS (
             UPDATE seat_inventory i SET hold_expires_at = e.expires_at, version = i.version + 1
             FROM extended e
             WHERE i.show_id = $13 AND i.seat_id = ANY($14) AND i.hold_id = e.id
             RETURNING i.seat_id, i.price_tier
           ), placed AS (
             INSERT INTO orders (id, show_id, hold_id, fan_id, status, total_cents, currency, expires_at,
                                 admission_jti)
             SELECT $3, e.show_id, e.id, $4, 'pending_payment', $5, $6, e.expires_at, $7 FROM extended e
             RETURNING id
           ), items AS (
             INSERT INTO order_items (order_id, show_id, seat_id, price_cents)
             SELECT p.id, $13, w.seat_id, t.price_cents
             FROM placed p, windowed w
             JOIN show_price_tiers t ON t.show_id = $13 AND t.tier = w.price_tier
           ), payment AS (
             INSERT INTO payments (id, order_id, provider, provider_ref, status, provider_version,
                                   amount_cents, currency)
             SELECT $8, p.id, $9, $10, $11, $12, $5, $6 FROM placed p
           )
           SELECT id AS "id!" FROM placed"#,
        hold.0,
        state.config.orders.payment_window_s,
        order,
        admission.fan,
        total_cents,
        currency,
        admission.jti,
        Uuid::now_v7(),
        state.provider.name(),
        intent.reference,
        intent.status.as_str(),
        intent.version,
        show,
        &seats,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if placed.is_none() {
        return Err(hold_already_ordered());
    }
    let view = load(&mut tx, OrderId(order)).await?;
    let body = crate::http::to_json(&view)?;
    idempotency::store_in(&mut tx, claimed, 201, &body).await?;
    tx.commit().await?;
    Ok(body)
}

/// The order's view in one statement: the order with its items, tickets, latest payment
/// and refund, each part read in the caller's snapshot.
pub(crate) async fn load(
    tx: &mut sqlx::PgConnection,
    order: OrderId,
) -> Result<OrderView, ApiError> {
    let row = sqlx::query!(
        r#"SELECT o.id, o.show_id, o.hold_id, o.status AS "status: OrderStatus", o.cancel_reason,
                  o.total_cents, o.currency, o.expires_at,
                  (SELECT coalesce(json_agg(json_build_object('seat_id', seat_id, 'price_cents', price_cents)
                                            ORDER BY seat_id), '[]')
                     FROM order_items WHERE order_id = o.id) AS "items!: Json<Vec<ItemView>>",
                  (SELECT coalesce(json_agg(json_strip_nulls(json_build_object(
                                              'ticket_id', id, 'seat_id', seat_id, 'ga_number', ga_number,
                                              'status', status)) ORDER BY seat_id, ga_number), '[]')
                     FROM tickets WHERE order_id = o.id) AS "tickets!: Json<Vec<TicketView>>",
                  (SELECT json_build_object('section_id', h.ga_section, 'quantity', h.seat_count)
                     FROM holds h WHERE h.id = o.hold_id AND h.ga_section IS NOT NULL)
                    AS "general_admission: Json<Places>",
                  (SELECT json_build_object('payment_id', id, 'status', status)
                     FROM payments WHERE order_id = o.id ORDER BY created_at DESC LIMIT 1)
                    AS "payment!: Json<PaymentView>",
                  (SELECT json_build_object('refund_id', id, 'amount_cents', amount_cents, 'reason', reason,
                                            'status', status)
                     FROM refunds WHERE order_id = o.id) AS "refund: Json<RefundView>"
           FROM orders o WHERE o.id = $1"#,
        order.0,
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(OrderView {
        order_id: row.id,
        show_id: row.show_id,
        hold_id: row.hold_id,
        status: row.status,
        cancel_reason: row.cancel_reason,
        total_cents: row.total_cents,
        currency: row.currency,
        expires_at_ms: row.expires_at.timestamp_millis(),
        server_time_ms: now_ms(),
        items: row.items.0,
        general_admission: row.general_admission.map(|places| places.0),
        tickets: row.tickets.0,
        payment: row.payment.0,
        refund: row.refund.map(|refund| refund.0),
    })
}

onsale_contract::problems!(pub(crate) OwnOrderProblems = [
    openapi::ANY,
    openapi::SESSION,
    &[Code::OrderNotFound],
]);

/// One of the fan's orders, with its seats, tickets, payment and refund.
///
/// `GET /v1/orders/{id}`: the signed-in account's own order; anything else is 404.
#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    tag = "fan",
    params(("id" = Uuid, Path, description = "The order.")),
    responses((status = 200, description = "The order.", body = OrderView), OwnOrderProblems),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn get_order(
    State(state): State<AppState>,
    session: Session,
    order: OrderId,
) -> Result<Response, ApiError> {
    // One snapshot for the whole view: read statement by statement, a refund worker
    // committing in between could show the refund done and the payment not yet refunded.
    let mut tx = state.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let owner = sqlx::query_scalar!("SELECT fan_id FROM orders WHERE id = $1", order.0)
        .fetch_optional(&mut *tx)
        .await?;
    if owner != Some(session.fan()) {
        return Err(OrderId::not_found());
    }
    let view = load(&mut tx, order).await?;
    tx.commit().await?;
    crate::http::json(StatusCode::OK, &view)
}

/// The history's query string: a page of it, nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

/// The page a history's query string asks for (orders, tickets); unknown parameters are
/// refused.
pub(crate) fn history_page(state: &AppState, query: Option<&str>) -> Result<Page, ApiError> {
    let raw: HistoryQuery = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ApiError::invalid_query("query", e.to_string()))?;
    let catalog = &state.config.catalog;
    Page::parse(
        raw.cursor,
        raw.limit,
        catalog.default_page_size,
        catalog.max_page_size,
    )
}

/// An order in the account's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct OrderSummary {
    /// The order's id.
    order_id: Uuid,
    /// The show.
    show_id: Uuid,
    /// Where the order stands.
    status: OrderStatus,
    /// What it costs, in cents of `currency`.
    total_cents: i64,
    /// The currency (ISO 4217, e.g. `EUR`).
    #[schema(min_length = 3, max_length = 3)]
    currency: String,
    /// When it was made, Unix ms.
    created_at_ms: i64,
    /// How many of its tickets are valid.
    #[schema(minimum = 0)]
    tickets: i64,
}

/// A page of the account's orders, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OrderHistory)]
struct History {
    /// The orders of this page.
    items: Vec<OrderSummary>,
    /// The `cursor` of the next page; null on the last page.
    next_cursor: Option<String>,
}

onsale_contract::problems!(pub(crate) OrderHistoryProblems = [
    openapi::ANY,
    openapi::SESSION,
    &[Code::InvalidQuery],
]);

/// The fan's orders, newest first.
///
/// `GET /v1/orders`: the signed-in account's orders, newest first, a keyset page at a time.
#[utoipa::path(
    get,
    path = "/v1/orders",
    tag = "fan",
    params(
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page; opaque.", min_length = 1, max_length = 128),
        ("limit" = Option<u32>, Query, description = "Orders per page: 1 to `catalog.max_page_size` (100 by default); `catalog.default_page_size` (20 by default) when absent. No other parameter is taken.", minimum = 1, maximum = 100),
    ),
    responses((status = 200, description = "A page of orders.", body = History), OrderHistoryProblems),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn list_orders(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let page = history_page(&state, query.as_deref())?;
    let mut rows = sqlx::query!(
        r#"SELECT o.id, o.show_id, o.status AS "status: OrderStatus", o.total_cents, o.currency, o.created_at,
                (SELECT count(*) FROM tickets t WHERE t.order_id = o.id AND t.status = 'valid') AS "tickets!"
         FROM orders o
         WHERE o.fan_id = $1 AND ($2::timestamptz IS NULL OR (o.created_at, o.id) < ($2, $3))
         ORDER BY o.created_at DESC, o.id DESC LIMIT $4"#,
        session.fan(),
        page.after.map(|c| c.at),
        page.after.map(|c| c.id),
        page.fetch(),
    )
    .fetch_all(&state.pool)
    .await?;
    let next_cursor = page.cut(&mut rows, |last| Keyset {
        at: last.created_at,
        id: last.id,
    });
    let items = rows
        .into_iter()
        .map(|row| OrderSummary {
            order_id: row.id,
            show_id: row.show_id,
            status: row.status,
            total_cents: row.total_cents,
            currency: row.currency,
            created_at_ms: row.created_at.timestamp_millis(),
            tickets: row.tickets,
        })
        .collect();
    let body = History { items, next_cursor };
    crate::http::json(StatusCode::OK, &body)
}
