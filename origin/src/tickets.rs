//! Tickets: one per sold seat, carrying a signed payload a venue scanner can check with the
//! public key alone. The payload is `T1.<base64url(ticket id, show id, seat id, issued at)>.
//! <base64url(Ed25519 signature over the first two parts)>`, shown as an SVG QR code. At
//! the gate, `POST /v1/tickets/verify` checks the signature and the ticket, and records the
//! first scan atomically: a second scan of the same ticket is `already_scanned`.
//!
//! A show in `tickets.show_rotating_qr` rotates its codes: the owner's device gets the
//! ticket's secret with its ticket list and shows `<payload>.<step>.<code>`, a new code
//! every `rotate_s`; the gate refuses a missing, wrong or more than two steps old code as
//! `stale_code`, so a screenshot or a forwarded image stops admitting within a minute.
//!
//! A fan's tickets and their QR codes are account pages: they take the owner's session,
//! never an admission, so tickets show long after the on-sale.

use crate::accounts::Session;
use crate::config::RotatingQr;
use crate::domain::{Keyset, TicketId};
use crate::error::{ApiError, Code};
use crate::json::ApiJson;
use crate::openapi;
use crate::staff::Staff;
use crate::status::TicketStatus;
use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
pub use onsale_contract::tickets::TicketFacts;
use onsale_contract::tickets::{self as payloads, JwkSet, RotatingCode, MAX_PAYLOAD};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Signs ticket payloads with the Ed25519 key of `tickets.signing_key`, and checks them
/// with it and the keys of `tickets.previous_keys` (the payload format is
/// [`onsale_contract::tickets`]).
pub struct TicketSigner {
    key: ed25519_dalek::SigningKey,
    /// The current key's public half first, then the previous keys.
    verifying: Vec<ed25519_dalek::VerifyingKey>,
}

/// A ticket key cannot be read or is not an Ed25519 key.
#[derive(Debug, thiserror::Error)]
#[error("tickets key {path}: {message}")]
pub struct TicketKeyError {
    path: String,
    message: String,
}

impl TicketSigner {
    /// Loads the private key from the PKCS#8 PEM file at `path`, and the public keys still
    /// accepted from before a rotation from the SPKI PEM files at `previous`.
    pub fn from_files(
        path: &std::path::Path,
        previous: &[std::path::PathBuf],
    ) -> Result<Self, TicketKeyError> {
        let failed = |path: &std::path::Path, message: String| TicketKeyError {
            path: path.display().to_string(),
            message,
        };
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path).map_err(|e| failed(path, e.to_string()))
        };
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&read(path)?)
            .map_err(|e| failed(path, format!("not an Ed25519 PKCS#8 key: {e}")))?;
        let previous = previous
            .iter()
            .map(|path| {
                ed25519_dalek::VerifyingKey::from_public_key_pem(&read(path)?)
                    .map_err(|e| failed(path, format!("not an Ed25519 public key: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self::with_keys(key, previous))
    }

    fn with_keys(
        key: ed25519_dalek::SigningKey,
        previous: Vec<ed25519_dalek::VerifyingKey>,
    ) -> Self {
        let verifying = std::iter::once(key.verifying_key())
            .chain(previous)
            .collect();
        TicketSigner { key, verifying }
    }

    /// The signed payload stating `facts`.
    pub fn sign(&self, facts: TicketFacts) -> String {
        onsale_contract::tickets::sign(&self.key, facts)
    }

    /// The facts of a payload one of the keys signed; `None` for anything else.
    pub(crate) fn verify(&self, payload: &str) -> Option<TicketFacts> {
        onsale_contract::tickets::verify(&self.verifying, payload)
    }

    /// The public keys, as scanners download them.
    pub(crate) fn key_set(&self) -> JwkSet {
        JwkSet::of(&self.verifying)
    }
}

/// How many steps a rotating code stays good after its own: a fan's screen that has just
/// turned still scans, a screenshot does not for long.
const MAX_STEPS_BEHIND: i64 = 2;

/// `show`'s rotating QR codes, if it has them.
fn rotation_of(state: &AppState, show: Uuid) -> Option<RotatingQr> {
    state
        .config
        .tickets
        .show_rotating_qr
        .get(&show.to_string())
        .copied()
}

/// A payload as an SVG QR code (error correction M: survives a scratched phone screen).
pub fn qr_svg(payload: &str) -> Result<String, qrcode::types::QrError> {
    let code = qrcode::QrCode::with_error_correction_level(payload, qrcode::EcLevel::M)?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(256, 256)
        .build())
}

onsale_contract::problems!(pub(crate) QrProblems = [
    openapi::ANY,
    openapi::SESSION,
    &[Code::TicketNotFound],
]);

/// `GET /v1/tickets/{id}/qr.svg`: the ticket's signed payload as a QR code, for the
/// signed-in owner; another account's ticket is 404.
#[utoipa::path(
    get,
    path = "/v1/tickets/{id}/qr.svg",
    tag = "fan",
    params(("id" = Uuid, Path, description = "The ticket.")),
    responses(
        (
            status = 200,
            description = "The ticket's signed payload as a QR code, for the gate's scanner. \
                           For a show with rotating codes, the code of the current step: \
                           good for a minute at most, so the fan's device renders its own \
                           (`rotating` in `GET /v1/me/tickets`).",
            body = String,
            content_type = "image/svg+xml",
            headers(("Cache-Control" = String, description = "`private, no-store`.")),
        ),
        QrProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn get_qr(
    State(state): State<AppState>,
    session: Session,
    ticket: TicketId,
) -> Result<Response, ApiError> {
    let row = sqlx::query!(
        "SELECT t.holder, t.show_id, t.seat_id, t.issued_at, t.rotation_secret
         FROM tickets t WHERE t.id = $1",
        ticket.0,
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(row) = row.filter(|t| t.holder == session.fan()) else {
        return Err(TicketId::not_found());
    };
    let mut payload = state.tickets.sign(TicketFacts {
        ticket: ticket.0,
        show: row.show_id,
        seat: row.seat_id.unwrap_or(payloads::GENERAL_ADMISSION),
        issued_at_s: row.issued_at.timestamp(),
    });
    if let Some(rotating) = rotation_of(&state, row.show_id) {
        let step = payloads::step_at(state.clock.now_s(), rotating.rotate_s);
        payload = payloads::rotate(&payload, &row.rotation_secret, step);
    }
    let svg = qr_svg(&payload).map_err(|e| ApiError::Internal(format!("QR encoding: {e}")))?;
    let mut response = (StatusCode::OK, svg).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

/// One of the account's tickets, with what a fan needs to find the seat.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct MyTicket {
    /// The ticket.
    ticket_id: Uuid,
    /// The order it was bought with.
    order_id: Uuid,
    /// The show it admits to.
    show_id: Uuid,
    /// The show's event.
    event_id: Uuid,
    /// The event's name.
    event_name: String,
    /// When the show starts, in Unix milliseconds.
    starts_at_ms: i64,
    /// The seat; null for a general-admission place.
    #[schema(required = true)]
    seat_id: Option<i64>,
    /// The seat's or the place's section.
    section_id: String,
    /// The seat's row label; null for a general-admission place.
    #[schema(required = true)]
    row: Option<String>,
    /// The seat's number in its row; null for a general-admission place.
    #[schema(required = true)]
    number: Option<i32>,
    /// A general-admission ticket's number in its section; null for a seat.
    #[schema(required = true)]
    ga_number: Option<i32>,
    /// When the ticket was issued, in Unix milliseconds.
    issued_at_ms: i64,
    /// Whether the ticket was scanned at the gate.
    scanned: bool,
    /// The ticket's QR code (same session).
    qr: String,
    /// For a show whose codes rotate, what the device computes them from; null otherwise.
    #[schema(required = true)]
    rotating: Option<RotatingView>,
}

/// What a fan's device needs to show a rotating QR code. During step `s` (Unix seconds
/// divided by `rotate_s`, rounded down) the QR code carries `<payload>.<s>.<code>`, `code`
/// being the 8-digit HOTP of `s` under `secret` with HMAC-SHA256 (RFC 6238, T0 = 0).
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct RotatingView {
    /// The ticket's signed payload, without a code.
    payload: String,
    /// The ticket's secret, base64url without padding: keep it on the device.
    secret: String,
    /// Seconds per step.
    rotate_s: u32,
}

/// A page of the account's valid tickets, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct MyTickets {
    /// The page's tickets.
    items: Vec<MyTicket>,
    /// The `cursor` of the next page; null on the last.
    #[schema(required = true)]
    next_cursor: Option<String>,
    /// The origin's clock, Unix milliseconds: rotating codes follow it, so a device whose
    /// clock is off corrects by the difference.
    server_time_ms: i64,
}

onsale_contract::problems!(pub(crate) MyTicketsProblems = [
    openapi::ANY,
    openapi::SESSION,
    &[Code::InvalidQuery],
]);

/// `GET /v1/me/tickets` (`cursor`, `limit`): the signed-in account's valid tickets, newest
/// first, a keyset page at a time, like the order history.
#[utoipa::path(
    get,
    path = "/v1/me/tickets",
    tag = "fan",
    params(
        (
            "cursor" = Option<String>,
            Query,
            description = "The `next_cursor` of the previous page.",
            max_length = 128,
        ),
        (
            "limit" = Option<u32>,
            Query,
            description = "Tickets per page: 1 to `catalog.max_page_size` (100 as shipped); \
                           `catalog.default_page_size` when absent. No other parameter is \
                           taken.",
            minimum = 1,
            maximum = 100,
        ),
    ),
    responses(
        (
            status = 200,
            description = "A page of the account's tickets.",
            body = MyTickets,
            headers(("Cache-Control" = String, description = "`private, no-store`.")),
        ),
        MyTicketsProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn list_mine(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let page = crate::orders::history_page(&state, query.as_deref())?;
    let mut rows = sqlx::query!(
        r#"SELECT t.id, t.order_id, t.show_id, sh.event_id, e.name AS event_name, sh.starts_at,
                  t.seat_id, coalesce(s.section_id, t.ga_section) AS "section_id!",
                  s.row_label AS "row_label?", s.number AS "number?", t.ga_number, t.issued_at,
                  t.scanned_at IS NOT NULL AS "scanned!", t.rotation_secret
           FROM tickets t
           JOIN shows sh ON sh.id = t.show_id
           JOIN events e ON e.id = sh.event_id
           LEFT JOIN seats s ON s.id = t.seat_id
           WHERE t.holder = $1 AND t.status = 'valid'
             AND ($2::timestamptz IS NULL OR (t.issued_at, t.id) < ($2, $3))
           ORDER BY t.issued_at DESC, t.id DESC LIMIT $4"#,
        session.fan(),
        page.after.map(|c| c.at),
        page.after.map(|c| c.id),
        page.fetch(),
    )
    .fetch_all(&state.pool)
    .await?;
    let next_cursor = page.cut(&mut rows, |last| Keyset {
        at: last.issued_at,
        id: last.id,
    });
    let items = rows
        .into_iter()
        .map(|row| MyTicket {
            qr: format!("/v1/tickets/{}/qr.svg", row.id),
            rotating: rotation_of(&state, row.show_id).map(|rotating| RotatingView {
                payload: state.tickets.sign(TicketFacts {
                    ticket: row.id,
                    show: row.show_id,
                    seat: row.seat_id.unwrap_or(payloads::GENERAL_ADMISSION),
                    issued_at_s: row.issued_at.timestamp(),
                }),
                secret: URL_SAFE_NO_PAD.encode(&row.rotation_secret),
                rotate_s: rotating.rotate_s,
            }),
            ticket_id: row.id,
            order_id: row.order_id,
            show_id: row.show_id,
            event_id: row.event_id,
            event_name: row.event_name,
            starts_at_ms: row.starts_at.timestamp_millis(),
            seat_id: row.seat_id,
            section_id: row.section_id,
            row: row.row_label,
            number: row.number,
            ga_number: row.ga_number,
            issued_at_ms: row.issued_at.timestamp_millis(),
            scanned: row.scanned,
        })
        .collect();
    let mine = MyTickets {
        items,
        next_cursor,
        server_time_ms: state.clock.now_ms(),
    };
    let mut response = crate::http::json(StatusCode::OK, &mine)?;
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

/// What a scanner read off a ticket's QR code.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyBody {
    /// The ticket's signed payload (`T1.<fields>.<signature>`, with `.<step>.<code>` for a
    /// show whose codes rotate): at most 512 bytes.
    #[schema(max_length = 512)]
    payload: String,
}

/// The gate's verdict: `valid` (first scan, now recorded), `already_scanned`, `revoked`
/// (the order was cancelled), `forged` (not signed by this origin, or no such ticket), or
/// `stale_code` (a show whose codes rotate, and the code is missing, wrong or more than two
/// steps old: a screenshot; ask for the live screen).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    Valid,
    AlreadyScanned,
    Revoked,
    Forged,
    StaleCode,
}

impl Verdict {
    /// Its wire name, as `ticket_scans.result` keeps it too.
    fn as_str(&self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::AlreadyScanned => "already_scanned",
            Verdict::Revoked => "revoked",
            Verdict::Forged => "forged",
            Verdict::StaleCode => "stale_code",
        }
    }
}

/// The gate's answer for a payload; a forged one states nothing else.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct VerifyView {
    /// The verdict.
    result: Verdict,
    /// The ticket (unless forged).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    ticket_id: Option<Uuid>,
    /// The show it admits to (unless forged).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    show_id: Option<Uuid>,
    /// The seat (unless forged, or a general-admission place).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    seat_id: Option<i64>,
    /// When the ticket was first scanned, in Unix milliseconds (`valid` and
    /// `already_scanned`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    scanned_at_ms: Option<i64>,
}

onsale_contract::problems!(pub(crate) VerifyProblems = [
    openapi::ANY,
    openapi::JSON_BODY,
    openapi::SESSION,
    &[Code::NotShowStaff],
]);

/// `POST /v1/tickets/verify` (a scanner's session, for its show): the gate's answer for a
/// payload, recorded for the show's entry counts.
#[utoipa::path(
    post,
    path = "/v1/tickets/verify",
    tag = "scanners",
    request_body = VerifyBody,
    responses(
        (status = 200, description = "The verdict; a second scan is `already_scanned`.", body = VerifyView),
        VerifyProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn post_verify(
    State(state): State<AppState>,
    staff: Staff,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Response, ApiError> {
    if body.payload.len() > MAX_PAYLOAD {
        return Err(ApiError::InvalidBody(format!(
            "payload is at most {MAX_PAYLOAD} characters"
        )));
    }
    let view = verdict(&state, &staff, &body.payload, None).await?;
    crate::http::json(StatusCode::OK, &view)
}

/// The verdict on `payload` scanned by `staff` at `at` (now when `None`), recorded for the
/// show's entry counts. A ticket of another show is 403 `not_show_staff`.
async fn verdict(
    state: &AppState,
    staff: &Staff,
    payload: &str,
    at: Option<DateTime<Utc>>,
) -> Result<VerifyView, ApiError> {
    let forged = VerifyView {
        result: Verdict::Forged,
        ticket_id: None,
        show_id: None,
        seat_id: None,
        scanned_at_ms: None,
    };
    let (signed, code) = payloads::split_rotation(payload);
    let facts = state.tickets.verify(signed);
    if let Some(facts) = &facts {
        staff.require_show(facts.show)?;
    }
    let view = match facts {
        None => forged,
        Some(facts) => scan(state, facts, code, at).await?.unwrap_or(forged),
    };
    let scanned_at = at.unwrap_or_else(Utc::now);
    crate::staff::record(
        state,
        staff,
        view.ticket_id,
        view.result.as_str(),
        scanned_at,
        at.is_some(),
    )
    .await?;
    Ok(view)
}

/// The verdict for a correctly signed payload, with its rotating `code` if any, scanned at
/// `at` (now when `None`); `None` if it names no such ticket.
async fn scan(
    state: &AppState,
    facts: TicketFacts,
    code: Option<RotatingCode>,
    at: Option<DateTime<Utc>>,
) -> Result<Option<VerifyView>, ApiError> {
    let view = |result, scanned_at: Option<DateTime<Utc>>| VerifyView {
        result,
        ticket_id: Some(facts.ticket),
        show_id: Some(facts.show),
        seat_id: (facts.seat != payloads::GENERAL_ADMISSION).then_some(facts.seat),
        scanned_at_ms: scanned_at.map(|at| at.timestamp_millis()),
    };
    if let Some(rotating) = rotation_of(state, facts.show) {
        let secret = sqlx::query_scalar!(
            "SELECT rotation_secret FROM tickets WHERE id = $1 AND show_id = $2 AND seat_id IS NOT DISTINCT FROM nullif($3::int8, 0)",
            facts.ticket,
            facts.show,
            facts.seat,
        )
        .fetch_optional(&state.pool)
        .await?;
        let Some(secret) = secret else {
            return Ok(None);
        };
        // An uploaded offline scan is judged at the time it was made.
        let at_s = at.map_or_else(|| state.clock.now_s(), |at| at.timestamp());
        let now_step = payloads::step_at(at_s, rotating.rotate_s);
        let live = code
            .is_some_and(|code| payloads::code_admits(&secret, code, now_step, MAX_STEPS_BEHIND));
        if !live {
            return Ok(Some(view(Verdict::StaleCode, None)));
        }
    }
    // The first scan wins: one conditional update decides it. A scan made offline and
    // uploaded later wins over a later one already recorded.
    let first: Option<DateTime<Utc>> = sqlx::query_scalar!(
        r#"UPDATE tickets SET scanned_at = coalesce($4, now())
         WHERE id = $1 AND show_id = $2 AND seat_id IS NOT DISTINCT FROM nullif($3::int8, 0) AND status = 'valid'
           AND (scanned_at IS NULL OR scanned_at > $4)
         RETURNING scanned_at AS "scanned_at!""#,
        facts.ticket,
        facts.show,
        facts.seat,
        at,
    )
    .fetch_optional(&state.pool)
    .await?;
    let (result, scanned_at) = match first {
        Some(at) => (Verdict::Valid, Some(at)),
        None => {
            let row = sqlx::query!(
                r#"SELECT status AS "status: TicketStatus", scanned_at
                   FROM tickets WHERE id = $1 AND show_id = $2 AND seat_id IS NOT DISTINCT FROM nullif($3::int8, 0)"#,
                facts.ticket,
                facts.show,
                facts.seat,
            )
            .fetch_optional(&state.pool)
            .await?;
            match row {
                None => return Ok(None),
                Some(row) => match row.status {
                    TicketStatus::Revoked => (Verdict::Revoked, None),
                    // The same offline scan uploaded again is still the first.
                    TicketStatus::Valid if at.is_some() && row.scanned_at == at => {
                        (Verdict::Valid, row.scanned_at)
                    }
                    TicketStatus::Valid => (Verdict::AlreadyScanned, row.scanned_at),
                },
            }
        }
    };
    Ok(Some(view(result, scanned_at)))
}

/// Most scans uploaded at once.
const MAX_UPLOADED_SCANS: usize = 500;
/// How far back an offline scan may be, and how far ahead of the origin's clock.
const MAX_SCAN_AGE_S: i64 = 30 * 86_400;
const MAX_SCAN_SKEW_S: i64 = 300;

/// One scan a gate made offline.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OfflineScan {
    /// The payload scanned: at most 512 bytes.
    #[schema(max_length = 512)]
    payload: String,
    /// When, by the scanner's clock, Unix ms: within the last 30 days, at most 5 minutes
    /// ahead of the origin's clock.
    scanned_at_ms: i64,
}

/// Scans a gate made offline, uploaded once it is back.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScansBody {
    /// The scans: 1 to 500.
    #[schema(min_items = 1, max_items = 500)]
    scans: Vec<OfflineScan>,
}

/// The verdicts, one per scan, in order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ScansView {
    /// `valid` when the scan was the ticket's first (by scan time, whichever gate), else
    /// `already_scanned` with the first scan's time, `revoked`, `forged` or `stale_code`.
    results: Vec<VerifyView>,
}

onsale_contract::problems!(pub(crate) ScansProblems = [
    openapi::ANY,
    openapi::JSON_BODY,
    openapi::SESSION,
    &[Code::InvalidField, Code::NotShowStaff],
]);

/// Settles the scans a gate made offline.
///
/// `POST /v1/tickets/scans` (a scanner's session, for its show): each scan is settled as an online
/// one would have been at its time: the earliest scan of a ticket, by the time it was made,
/// is its first whichever gate made it and whenever it was uploaded; every other scan of it
/// is `already_scanned`. Uploading the same scans again changes nothing and answers the
/// same. A revoked ticket admitted offline is reported `revoked`.
#[utoipa::path(
    post,
    path = "/v1/tickets/scans",
    tag = "scanners",
    request_body = ScansBody,
    responses(
        (status = 200, description = "One verdict per scan, in order.", body = ScansView),
        ScansProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn post_scans(
    State(state): State<AppState>,
    staff: Staff,
    ApiJson(body): ApiJson<ScansBody>,
) -> Result<Response, ApiError> {
    if body.scans.is_empty() || body.scans.len() > MAX_UPLOADED_SCANS {
        return Err(ApiError::Unprocessable(
            Code::InvalidField,
            format!("`scans` must hold 1 to {MAX_UPLOADED_SCANS} scans"),
        ));
    }
    let now_ms = onsale_contract::clock::now_ms();
    let mut times = Vec::with_capacity(body.scans.len());
    for scan in &body.scans {
        let plausible = (now_ms - MAX_SCAN_AGE_S * 1000..=now_ms + MAX_SCAN_SKEW_S * 1000)
            .contains(&scan.scanned_at_ms);
        let at = DateTime::from_timestamp_millis(scan.scanned_at_ms).filter(|_| plausible);
        let Some(at) = at.filter(|_| scan.payload.len() <= MAX_PAYLOAD) else {
            return Err(ApiError::Unprocessable(
                Code::InvalidField,
                "each scan needs a payload of at most 512 bytes and a `scanned_at_ms` within \
                 the last 30 days"
                    .to_owned(),
            ));
        };
        times.push(at);
    }
    let mut results = Vec::with_capacity(body.scans.len());
    for (scan, at) in body.scans.iter().zip(times) {
        results.push(verdict(&state, &staff, &scan.payload, Some(at)).await?);
    }
    crate::http::json(StatusCode::OK, &ScansView { results })
}

/// How long scanners may keep the key set before asking again.
const KEY_SET_MAX_AGE_S: u32 = 300;

onsale_contract::problems!(pub(crate) KeySetProblems = [openapi::ANY]);

/// The public keys ticket payloads are signed with, for scanners that verify offline.
///
/// `GET /.well-known/onsale/ticket-keys.json`: a JWK set (RFC 7517) of Ed25519 keys, the
/// current signing key first, then the keys of `tickets.previous_keys`. A payload
/// (`T1.<fields>.<signature>`, see the README's "Tickets at the door") is genuine when one
/// of them verifies its signature; nothing else is needed to check one.
#[utoipa::path(
    get,
    path = "/.well-known/onsale/ticket-keys.json",
    tag = "scanners",
    responses(
        (
            status = 200,
            description = "The key set.",
            body = JwkSet,
            headers(("Cache-Control" = String, description = "`public, max-age=300`.")),
        ),
        KeySetProblems,
    ),
)]
pub(crate) async fn get_ticket_keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut response = crate::http::json(StatusCode::OK, &state.tickets.key_set())?;
    let cache = format!("public, max-age={KEY_SET_MAX_AGE_S}");
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::try_from(cache).expect("a valid header value"),
    );
    Ok(response)
}

/// A ticket revoked: it no longer admits.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Revocation {
    /// The ticket.
    ticket_id: Uuid,
    /// When it was revoked, Unix ms.
    revoked_at_ms: i64,
}

/// A page of a show's revocation list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Revocations {
    /// The show.
    show_id: Uuid,
    /// Tickets revoked after `since`, oldest first.
    revocations: Vec<Revocation>,
    /// Where the next sync starts: the `since` of the next request (the last revocation
    /// here, or the `since` given when there was none).
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    /// Whether more revocations follow now; ask again with `cursor`.
    more: bool,
}

struct RevokedRow {
    id: Uuid,
    revoked_at: DateTime<Utc>,
}

/// The revocation list's query string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevocationsQuery {
    since: Option<String>,
    limit: Option<String>,
}

onsale_contract::problems!(pub(crate) RevocationsProblems = [
    openapi::ANY,
    openapi::SESSION,
    &[Code::InvalidQuery, Code::NotShowStaff],
]);

/// A show's revoked tickets, for scanners that verify offline.
///
/// `GET /v1/shows/{id}/revocations?since=<cursor>&limit=` (a scanner's session, for its show): the
/// tickets of the show revoked after `since` (a `cursor` of an earlier answer; none: from
/// the first), oldest first, at most `limit` (the catalog's page sizes: 20 by default, at
/// most 100). A scanner keeps the
/// cursor and asks again while `more` is true, and again every so often. A revocation is
/// stamped with its transaction's time and listed when that commits, so a scanner should
/// sync from a cursor a minute old now and then to catch any that committed late.
#[utoipa::path(
    get,
    path = "/v1/shows/{id}/revocations",
    tag = "scanners",
    params(
        ("id" = Uuid, Path, description = "The show."),
        ("since" = Option<String>, Query, description = "The `cursor` of an earlier answer."),
        ("limit" = Option<u32>, Query, description = "At most this many (1 to 100; default 20)."),
    ),
    responses(
        (status = 200, description = "Revoked tickets after `since`.", body = Revocations),
        RevocationsProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn get_revocations(
    State(state): State<AppState>,
    staff: Staff,
    show: crate::domain::ShowId,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    staff.require_show(show.0)?;
    let raw: RevocationsQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::invalid_query("query", e.to_string()))?;
    let since = raw.since.clone();
    let catalog = &state.config.catalog;
    let page = crate::domain::Page::parse(
        raw.since,
        raw.limit,
        catalog.default_page_size,
        catalog.max_page_size,
    )?;
    let mut rows = sqlx::query_as!(
        RevokedRow,
        r#"SELECT id, revoked_at AS "revoked_at!" FROM tickets
           WHERE show_id = $1 AND status = 'revoked'
             AND ($2::timestamptz IS NULL OR (revoked_at, id) > ($2, $3))
           ORDER BY revoked_at, id LIMIT $4"#,
        show.0,
        page.after.map(|c| c.at),
        page.after.map(|c| c.id),
        page.fetch(),
    )
    .fetch_all(&state.pool)
    .await?;
    let key = |row: &RevokedRow| Keyset {
        at: row.revoked_at,
        id: row.id,
    };
    let next = page.cut(&mut rows, key);
    let more = next.is_some();
    let cursor = next
        .or_else(|| rows.last().map(|last| key(last).encode()))
        .or(since);
    let revocations = rows
        .into_iter()
        .map(|row| Revocation {
            ticket_id: row.id,
            revoked_at_ms: row.revoked_at.timestamp_millis(),
        })
        .collect();
    crate::http::json(
        StatusCode::OK,
        &Revocations {
            show_id: show.0,
            revocations,
            cursor,
            more,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ed25519_dalek::SigningKey {
        let (private, _) = onsale_contract::tokens::generate_pem_pair();
        ed25519_dalek::SigningKey::from_pkcs8_pem(&private).unwrap()
    }

    #[test]
    fn tickets_of_a_previous_key_verify_while_it_is_listed() {
        let (old, new) = (key(), key());
        let facts = TicketFacts {
            ticket: Uuid::new_v4(),
            show: Uuid::new_v4(),
            seat: 42,
            issued_at_s: 1_800_000_000,
        };
        let before = TicketSigner::with_keys(old.clone(), Vec::new());
        let payload = before.sign(facts);
        let rotated = TicketSigner::with_keys(new.clone(), vec![old.verifying_key()]);
        assert_eq!(rotated.verify(&payload), Some(facts));
        assert_eq!(rotated.key_set().keys.len(), 2);
        assert_eq!(
            rotated.key_set().verifying_keys().unwrap()[0],
            new.verifying_key(),
            "the current key first"
        );
        let dropped = TicketSigner::with_keys(new, Vec::new());
        assert_eq!(dropped.verify(&payload), None);
    }
}
