//! Tickets: one per sold seat, carrying a signed payload a venue scanner can check with the
//! public key alone. The payload is `T1.<base64url(ticket id, show id, seat id, issued at)>.
//! <base64url(Ed25519 signature over the first two parts)>`, shown as an SVG QR code. At
//! the gate, `POST /v1/tickets/verify` checks the signature and the ticket, and records the
//! first scan atomically: a second scan of the same ticket is `already_scanned`.
//!
//! A fan's tickets and their QR codes are account pages: they take the owner's session,
//! never an admission, so tickets show long after the on-sale.

use crate::accounts::Session;
use crate::domain::{Keyset, TicketId};
use crate::error::{ApiError, Code};
use crate::json::ApiJson;
use crate::openapi;
use crate::status::TicketStatus;
use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const VERSION: &str = "T1";
/// Ticket id, show id, seat id, issue time (Unix seconds).
const FIELDS_LEN: usize = 16 + 16 + 8 + 8;
/// Longest payload a scanner may send; a real one is about 160 characters.
const MAX_PAYLOAD: usize = 512;

/// What a ticket's payload states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketFacts {
    /// The ticket's id.
    pub ticket: Uuid,
    /// The show it admits to.
    pub show: Uuid,
    /// The seat it is for.
    pub seat: i64,
    /// When it was issued, in Unix seconds.
    pub issued_at_s: i64,
}

/// Signs ticket payloads with the Ed25519 key of `tickets.signing_key`, and checks them.
pub struct TicketSigner {
    key: ed25519_dalek::SigningKey,
}

/// The ticket signing key cannot be read or is not an Ed25519 PKCS#8 key.
#[derive(Debug, thiserror::Error)]
#[error("tickets.signing_key {path}: {message}")]
pub struct TicketKeyError {
    path: String,
    message: String,
}

impl TicketSigner {
    /// Loads the private key from the PKCS#8 PEM file at `path`.
    pub fn from_file(path: &std::path::Path) -> Result<Self, TicketKeyError> {
        let failed = |message: String| TicketKeyError {
            path: path.display().to_string(),
            message,
        };
        let pem = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
            .map_err(|e| failed(format!("not an Ed25519 PKCS#8 key: {e}")))?;
        Ok(TicketSigner { key })
    }

    /// The signed payload stating `facts`: `T1.<fields>.<signature>`.
    pub fn sign(&self, facts: TicketFacts) -> String {
        let mut fields = Vec::with_capacity(FIELDS_LEN);
        fields.extend_from_slice(facts.ticket.as_bytes());
        fields.extend_from_slice(facts.show.as_bytes());
        fields.extend_from_slice(&facts.seat.to_be_bytes());
        fields.extend_from_slice(&facts.issued_at_s.to_be_bytes());
        let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(fields));
        let signature = self.key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// The facts of a payload this key signed; `None` for anything else.
    pub(crate) fn verify(&self, payload: &str) -> Option<TicketFacts> {
        let (signed, signature) = payload.rsplit_once('.')?;
        let fields = signed.strip_prefix(VERSION)?.strip_prefix('.')?;
        let signature: [u8; 64] = URL_SAFE_NO_PAD.decode(signature).ok()?.try_into().ok()?;
        self.key
            .verifying_key()
            .verify(
                signed.as_bytes(),
                &ed25519_dalek::Signature::from_bytes(&signature),
            )
            .ok()?;
        let fields = URL_SAFE_NO_PAD.decode(fields).ok()?;
        if fields.len() != FIELDS_LEN {
            return None;
        }
        let uuid = |at: usize| Uuid::from_slice(&fields[at..at + 16]).ok();
        let int = |at: usize| i64::from_be_bytes(fields[at..at + 8].try_into().expect("8 bytes"));
        Some(TicketFacts {
            ticket: uuid(0)?,
            show: uuid(16)?,
            seat: int(32),
            issued_at_s: int(40),
        })
    }
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
            description = "The ticket's signed payload as a QR code, for the gate's scanner.",
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
        "SELECT o.fan_id, t.show_id, t.seat_id, t.issued_at FROM tickets t
         JOIN orders o ON o.id = t.order_id WHERE t.id = $1",
        ticket.0,
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(row) = row.filter(|t| t.fan_id == session.fan()) else {
        return Err(TicketId::not_found());
    };
    let payload = state.tickets.sign(TicketFacts {
        ticket: ticket.0,
        show: row.show_id,
        seat: row.seat_id,
        issued_at_s: row.issued_at.timestamp(),
    });
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
    /// The seat.
    seat_id: i64,
    /// The seat's section.
    section_id: String,
    /// The seat's row label.
    row: String,
    /// The seat's number in its row.
    number: i32,
    /// When the ticket was issued, in Unix milliseconds.
    issued_at_ms: i64,
    /// Whether the ticket was scanned at the gate.
    scanned: bool,
    /// The ticket's QR code (same session).
    qr: String,
}

/// A page of the account's valid tickets, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct MyTickets {
    /// The page's tickets.
    items: Vec<MyTicket>,
    /// The `cursor` of the next page; null on the last.
    #[schema(required = true)]
    next_cursor: Option<String>,
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
                  t.seat_id, s.section_id, s.row_label, s.number, t.issued_at,
                  t.scanned_at IS NOT NULL AS "scanned!"
           FROM tickets t
           JOIN orders o ON o.id = t.order_id
           JOIN shows sh ON sh.id = t.show_id
           JOIN events e ON e.id = sh.event_id
           JOIN seats s ON s.id = t.seat_id
           WHERE o.fan_id = $1 AND t.status = 'valid'
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
            issued_at_ms: row.issued_at.timestamp_millis(),
            scanned: row.scanned,
        })
        .collect();
    let mut response = crate::http::json(StatusCode::OK, &MyTickets { items, next_cursor })?;
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
    /// The ticket's signed payload (`T1.<fields>.<signature>`): at most 512 bytes.
    #[schema(max_length = 512)]
    payload: String,
}

/// The gate's verdict: `valid` (first scan, now recorded), `already_scanned`, `revoked`
/// (the order was cancelled), or `forged` (not signed by this origin, or no such ticket).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    Valid,
    AlreadyScanned,
    Revoked,
    Forged,
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
    /// The seat (unless forged).
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
    openapi::ORGANIZER,
]);

/// `POST /v1/tickets/verify` (scanner: the admin token): the gate's answer for a payload.
#[utoipa::path(
    post,
    path = "/v1/tickets/verify",
    tag = "organizer",
    request_body = VerifyBody,
    responses(
        (status = 200, description = "The verdict; a second scan is `already_scanned`.", body = VerifyView),
        VerifyProblems,
    ),
    security(("organizer" = [])),
)]
pub(crate) async fn post_verify(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Response, ApiError> {
    if body.payload.len() > MAX_PAYLOAD {
        return Err(ApiError::InvalidBody(format!(
            "payload is at most {MAX_PAYLOAD} characters"
        )));
    }
    let forged = VerifyView {
        result: Verdict::Forged,
        ticket_id: None,
        show_id: None,
        seat_id: None,
        scanned_at_ms: None,
    };
    let view = match state.tickets.verify(&body.payload) {
        None => forged,
        Some(facts) => scan(&state, facts).await?.unwrap_or(forged),
    };
    crate::http::json(StatusCode::OK, &view)
}

/// The verdict for a correctly signed payload; `None` if it names no such ticket.
async fn scan(state: &AppState, facts: TicketFacts) -> Result<Option<VerifyView>, ApiError> {
    // The first scan wins: one conditional update decides it.
    let first: Option<DateTime<Utc>> = sqlx::query_scalar!(
        r#"UPDATE tickets SET scanned_at = now()
         WHERE id = $1 AND show_id = $2 AND seat_id = $3 AND status = 'valid' AND scanned_at IS NULL
         RETURNING scanned_at AS "scanned_at!""#,
        facts.ticket,
        facts.show,
        facts.seat,
    )
    .fetch_optional(&state.pool)
    .await?;
    let (result, scanned_at) = match first {
        Some(at) => (Verdict::Valid, Some(at)),
        None => {
            let row = sqlx::query!(
                r#"SELECT status AS "status: TicketStatus", scanned_at
                   FROM tickets WHERE id = $1 AND show_id = $2 AND seat_id = $3"#,
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
                    TicketStatus::Valid => (Verdict::AlreadyScanned, row.scanned_at),
                },
            }
        }
    };
    Ok(Some(VerifyView {
        result,
        ticket_id: Some(facts.ticket),
        show_id: Some(facts.show),
        seat_id: Some(facts.seat),
        scanned_at_ms: scanned_at.map(|at| at.timestamp_millis()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_verify_only_untouched_and_with_their_key() {
        let (private, _) = onsale_contract::tokens::generate_pem_pair();
        let signer = TicketSigner {
            key: ed25519_dalek::SigningKey::from_pkcs8_pem(&private).unwrap(),
        };
        let facts = TicketFacts {
            ticket: Uuid::new_v4(),
            show: Uuid::new_v4(),
            seat: 42,
            issued_at_s: 1_800_000_000,
        };
        let payload = signer.sign(facts);
        assert_eq!(signer.verify(&payload), Some(facts));
        let (other, _) = onsale_contract::tokens::generate_pem_pair();
        let stranger = TicketSigner {
            key: ed25519_dalek::SigningKey::from_pkcs8_pem(&other).unwrap(),
        };
        assert_eq!(stranger.verify(&payload), None);
        // Any changed character of the fields breaks the signature.
        let mut tampered = payload.clone().into_bytes();
        tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
        assert_eq!(signer.verify(std::str::from_utf8(&tampered).unwrap()), None);
        assert_eq!(signer.verify("T1.nonsense"), None);
        assert_eq!(signer.verify(""), None);
    }
}
