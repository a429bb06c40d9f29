//! Tickets changing hands.
//!
//! `POST /v1/tickets/{id}/transfer {"to_email"}` by the ticket's holder: when the email has
//! an account, the ticket moves at once: it is revoked and a new ticket, with a new id and
//! signature, issued to the new holder, in one transaction, so the old QR code stops
//! admitting the moment the new one does. Otherwise the transfer waits for that email to
//! sign up (`pending`, until the show starts or a week passes, cancellable by
//! `DELETE /v1/tickets/{id}/transfer`) and completes in the sign-up's transaction. Every
//! transfer is kept (`ticket_transfers`), so a ticket's chain of holders can be followed.
//! A scanned ticket, a started show, or the show's `transfer_policy` stops a transfer.
//! Both fans hear of it (`ticket_transferred`, `ticket_received`).

use crate::accounts::Session;
use crate::domain::account::Email;
use crate::domain::TicketId;
use crate::error::{ApiError, Code};
use crate::json::ApiJson;
use crate::openapi;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// How long a transfer waits for its recipient to sign up, at most (and never past the
/// show's start).
const PENDING_DAYS: f64 = 7.0;

/// Where a ticket goes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransferBody {
    /// The recipient's email: its account, or the account it signs up with.
    #[schema(max_length = 254)]
    to_email: String,
}

/// Where a transfer stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum TransferStatus {
    /// Waiting for the recipient to sign up.
    Pending,
    /// Done: the ticket was revoked and `new_ticket_id` issued to the recipient.
    Completed,
    /// Called off by the sender.
    Cancelled,
}

/// A transfer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct TransferView {
    /// The transfer.
    transfer_id: Uuid,
    /// The ticket handed over.
    ticket_id: Uuid,
    /// Where it stands.
    status: TransferStatus,
    /// The ticket issued to the recipient, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    new_ticket_id: Option<Uuid>,
    /// Until when a pending transfer waits, Unix ms.
    expires_at_ms: i64,
}

fn not_transferable(detail: &str) -> ApiError {
    ApiError::Conflict(Code::TicketNotTransferable, detail.to_owned())
}

onsale_contract::problems!(pub(crate) TransferProblems = [
    openapi::ANY,
    openapi::SESSION,
    openapi::JSON_BODY,
    &[
        Code::InvalidField,
        Code::TicketNotFound,
        Code::TicketNotTransferable,
    ],
]);

/// Transfers one of the fan's tickets to another fan.
///
/// `POST /v1/tickets/{id}/transfer` (the holder's session): to an email with an account,
/// at once (200, `completed`, the new ticket's id); to any other, when it signs up (202,
/// `pending`). Refused (409 `ticket_not_transferable`) for a revoked or scanned ticket, a
/// show that has started, a show whose policy forbids it now, or a ticket with a transfer
/// pending. Another account's ticket is 404.
#[utoipa::path(
    post,
    path = "/v1/tickets/{id}/transfer",
    tag = "fan",
    params(("id" = Uuid, Path, description = "The ticket.")),
    request_body = TransferBody,
    responses(
        (status = 200, description = "Transferred: the recipient holds a new ticket.", body = TransferView),
        (status = 202, description = "Waiting for the recipient to sign up.", body = TransferView),
        TransferProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn post_transfer(
    State(state): State<AppState>,
    session: Session,
    ticket: TicketId,
    ApiJson(body): ApiJson<TransferBody>,
) -> Result<Response, ApiError> {
    let to = Email::parse("to_email", &body.to_email)?;
    if to.key == Email::parse("email", &session.email)?.key {
        return Err(ApiError::Unprocessable(
            Code::InvalidField,
            "`to_email` is your own".to_owned(),
        ));
    }
    let mut tx = state.pool.begin().await?;
    let held = sqlx::query!(
        r#"SELECT t.holder, t.status, t.scanned_at IS NOT NULL AS "scanned!", t.show_id,
                  extract(epoch FROM s.starts_at - now())::int8 AS "seconds_before!",
                  least(s.starts_at, now() + make_interval(days => $2)) AS "expires_at!",
                  EXISTS (SELECT 1 FROM ticket_transfers x
                          WHERE x.ticket_id = t.id AND x.status = 'pending') AS "pending!"
           FROM tickets t JOIN shows s ON s.id = t.show_id
           WHERE t.id = $1 FOR UPDATE OF t"#,
        ticket.0,
        PENDING_DAYS as i32,
    )
    .fetch_optional(&mut *tx)
    .await?
    .filter(|t| t.holder == session.fan())
    .ok_or_else(TicketId::not_found)?;
    let tickets = &state.config.tickets;
    let policy = tickets
        .show_transfer_policies
        .get(&held.show_id.to_string())
        .copied()
        .unwrap_or(tickets.transfer_policy);
    if held.status != "valid" {
        return Err(not_transferable("the ticket was revoked"));
    }
    if held.scanned {
        return Err(not_transferable("the ticket was scanned at the door"));
    }
    if !policy.allows(held.seconds_before) {
        return Err(not_transferable(
            "the show has started, or its transfer policy does not allow it now",
        ));
    }
    if held.pending {
        return Err(not_transferable(
            "the ticket has a transfer pending; cancel it first",
        ));
    }
    let recipient = sqlx::query_scalar!("SELECT id FROM accounts WHERE email_key = $1", to.key)
        .fetch_optional(&mut *tx)
        .await?;
    let transfer = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO ticket_transfers (id, ticket_id, from_account, to_email_key, status, expires_at)
         VALUES ($1, $2, $3, $4, 'pending', $5)",
        transfer,
        ticket.0,
        session.fan(),
        to.key,
        held.expires_at,
    )
    .execute(&mut *tx)
    .await?;
    let (status, view) = match recipient {
        Some(recipient) => {
            let new_ticket = complete(&mut tx, transfer, recipient).await?;
            let view = view(
                transfer,
                ticket.0,
                TransferStatus::Completed,
                Some(new_ticket),
                held.expires_at,
            );
            (StatusCode::OK, view)
        }
        None => {
            let view = view(
                transfer,
                ticket.0,
                TransferStatus::Pending,
                None,
                held.expires_at,
            );
            (StatusCode::ACCEPTED, view)
        }
    };
    tx.commit().await?;
    crate::http::json(status, &view)
}

fn view(
    transfer: Uuid,
    ticket: Uuid,
    status: TransferStatus,
    new_ticket_id: Option<Uuid>,
    expires_at: DateTime<Utc>,
) -> TransferView {
    TransferView {
        transfer_id: transfer,
        ticket_id: ticket,
        status,
        new_ticket_id,
        expires_at_ms: expires_at.timestamp_millis(),
    }
}

/// Completes the pending `transfer` to `recipient`, in the caller's transaction, which
/// holds the ticket's row: the ticket revoked, a new one issued to the recipient, both fans
/// told. Returns the new ticket's id.
async fn complete(
    tx: &mut PgConnection,
    transfer: Uuid,
    recipient: Uuid,
) -> Result<Uuid, sqlx::Error> {
    let new_ticket = Uuid::now_v7();
    sqlx::query!(
        r#"WITH moved AS (
             SELECT x.id, x.ticket_id, x.from_account FROM ticket_transfers x WHERE x.id = $1
           ), revoked AS (
             UPDATE tickets t SET status = 'revoked' FROM moved m
             WHERE t.id = m.ticket_id AND t.status = 'valid'
             RETURNING t.order_id, t.show_id, t.seat_id, t.ga_section, t.ga_number
           ), issued AS (
             INSERT INTO tickets (id, order_id, show_id, seat_id, ga_section, ga_number, status, holder)
             SELECT $2, order_id, show_id, seat_id, ga_section, ga_number, 'valid', $3::uuid::text
             FROM revoked
           ), done AS (
             UPDATE ticket_transfers SET status = 'completed', new_ticket_id = $2,
                    to_account = $3::uuid::text, ended_at = now()
             WHERE id = $1
           )
           INSERT INTO outbox (aggregate_id, aggregate_type, event_type, payload)
           SELECT account::uuid, 'account', event,
                  jsonb_build_object('fan_id', account, 'transfer_id', m.id, 'show_id', r.show_id,
                                     'seat_id', r.seat_id, 'ticket_id', m.ticket_id,
                                     'new_ticket_id', $2::uuid)
           FROM moved m, revoked r,
                LATERAL (VALUES (m.from_account, 'ticket_transferred'),
                                ($3::uuid::text, 'ticket_received')) AS told (account, event)"#,
        transfer,
        new_ticket,
        recipient,
    )
    .execute(&mut *tx)
    .await?;
    Ok(new_ticket)
}

/// Completes the transfers waiting for `email_key`, now that `account` has it, in the
/// sign-up's transaction. A transfer whose ticket can no longer move (revoked, scanned, its
/// sender no longer holding it) or that expired ends without one.
pub(crate) async fn complete_waiting(
    tx: &mut PgConnection,
    account: Uuid,
    email_key: &str,
) -> Result<(), sqlx::Error> {
    let waiting = sqlx::query!(
        r#"SELECT x.id, x.expires_at > now() AND t.status = 'valid' AND t.scanned_at IS NULL
                        AND t.holder = x.from_account AS "movable!"
           FROM ticket_transfers x JOIN tickets t ON t.id = x.ticket_id
           WHERE x.to_email_key = $1 AND x.status = 'pending'
           ORDER BY x.created_at FOR UPDATE OF x, t"#,
        email_key,
    )
    .fetch_all(&mut *tx)
    .await?;
    for transfer in waiting {
        if transfer.movable {
            complete(tx, transfer.id, account).await?;
        } else {
            sqlx::query!(
                "UPDATE ticket_transfers SET status = 'expired', ended_at = now() WHERE id = $1",
                transfer.id,
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}

onsale_contract::problems!(pub(crate) CancelTransferProblems = [
    openapi::ANY,
    openapi::SESSION,
    &[Code::TicketNotFound, Code::TransferNotFound],
]);

/// Calls off the ticket's pending transfer.
///
/// `DELETE /v1/tickets/{id}/transfer` (the holder's session): the transfer waiting for its
/// recipient to sign up is `cancelled`; the ticket stays the fan's. No pending transfer is
/// 404 `transfer_not_found`.
#[utoipa::path(
    delete,
    path = "/v1/tickets/{id}/transfer",
    tag = "fan",
    params(("id" = Uuid, Path, description = "The ticket.")),
    responses(
        (status = 200, description = "Cancelled.", body = TransferView),
        CancelTransferProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn delete_transfer(
    State(state): State<AppState>,
    session: Session,
    ticket: TicketId,
) -> Result<Response, ApiError> {
    let holder = sqlx::query_scalar!("SELECT holder FROM tickets WHERE id = $1", ticket.0)
        .fetch_optional(&state.pool)
        .await?;
    if holder.as_deref() != Some(session.fan().as_str()) {
        return Err(TicketId::not_found());
    }
    let cancelled = sqlx::query!(
        "UPDATE ticket_transfers SET status = 'cancelled', ended_at = now()
         WHERE ticket_id = $1 AND status = 'pending' RETURNING id, expires_at",
        ticket.0,
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or(ApiError::NotFound {
        code: Code::TransferNotFound,
        what: "Transfer",
    })?;
    let view = view(
        cancelled.id,
        ticket.0,
        TransferStatus::Cancelled,
        None,
        cancelled.expires_at,
    );
    crate::http::json(StatusCode::OK, &view)
}
