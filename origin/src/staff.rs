//! The door's staff: scanner accounts, each made by an organizer for one show and one gate
//! (`POST /v1/admin/shows/{id}/staff`), whose sessions scan that show's tickets, read its
//! revocation list and upload its offline scans. Every scan is kept for the show's entry
//! counts (`GET /v1/admin/shows/{id}/entry`): by result, gate, scanner and minute.

use crate::accounts::{insert_account, Session};
use crate::domain::account::{display_name, Email, Password};
use crate::domain::{typed_code, ShowId};
use crate::error::{ApiError, Code};
use crate::json::ApiJson;
use crate::openapi;
use crate::status::AccountRole;
use crate::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use onsale_contract::problem::Problem;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Characters of a scanner's first password (about 79 bits).
const PASSWORD_CHARS: usize = 16;

/// A signed-in scanner, with the show and gate it works.
#[derive(Debug, Clone)]
pub(crate) struct Staff {
    /// The scanner's account.
    pub account: Uuid,
    /// The show it scans for.
    pub show: Uuid,
    /// Its gate.
    pub gate: String,
}

impl Staff {
    /// 403 `not_show_staff` unless this scanner works `show`.
    pub(crate) fn require_show(&self, show: Uuid) -> Result<(), ApiError> {
        if self.show == show {
            return Ok(());
        }
        Err(ApiError::problem(
            Problem::new(Code::NotShowStaff, "Not staff of this show")
                .with_detail("this scanner works the door of another show"),
        ))
    }
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let session = Session::from_request_parts(parts, state).await?;
        let staff = sqlx::query!(
            "SELECT show_id, gate FROM show_staff WHERE account_id = $1",
            session.account,
        )
        .fetch_optional(&state.pool)
        .await?;
        match staff.filter(|_| session.role == AccountRole::Scanner) {
            Some(staff) => Ok(Staff {
                account: session.account,
                show: staff.show_id,
                gate: staff.gate,
            }),
            None => Err(ApiError::problem(
                Problem::new(Code::NotShowStaff, "Not staff")
                    .with_detail("scanning takes the session of a scanner the organizer made"),
            )),
        }
    }
}

/// A scanner to make.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaffBody {
    /// The scanner's email, its sign-in; no account may have it yet.
    #[schema(max_length = 254)]
    email: String,
    /// Its name: 1 to 64 characters.
    #[schema(min_length = 1, max_length = 64)]
    display_name: String,
    /// The gate it works: 1 to 64 letters, digits, `-` and `_`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    gate: String,
}

/// A scanner made, with its first password, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct StaffCreated {
    /// The scanner's account.
    account_id: Uuid,
    /// Its sign-in.
    email: String,
    /// The show it scans for.
    show_id: Uuid,
    /// Its gate.
    gate: String,
    /// Its password, to hand over; it signs in with `POST /v1/sessions` like any account.
    password: String,
}

onsale_contract::problems!(pub(crate) StaffProblems = [
    openapi::ANY,
    openapi::ORGANIZER,
    openapi::JSON_BODY,
    &[Code::InvalidField, Code::ShowNotFound, Code::EmailTaken],
]);

/// Makes a scanner account for the show's door.
///
/// `POST /v1/admin/shows/{id}/staff` (organizer): a `scanner` account for this show and
/// `gate`, with a generated password returned this once. Its session, and nothing else,
/// scans the show's tickets (`POST /v1/tickets/verify`), uploads its offline scans and
/// reads its revocation list. A scanner works one show: make one per show.
#[utoipa::path(
    post,
    path = "/v1/admin/shows/{id}/staff",
    tag = "organizer",
    params(("id" = Uuid, Path, description = "The show.")),
    request_body = StaffBody,
    responses((status = 201, description = "The scanner.", body = StaffCreated), StaffProblems),
    security(("organizer" = [])),
)]
pub(crate) async fn post_staff(
    State(state): State<AppState>,
    show: ShowId,
    ApiJson(body): ApiJson<StaffBody>,
) -> Result<Response, ApiError> {
    let email = Email::parse("email", &body.email)?;
    let name = display_name(&body.display_name)?;
    let gate_ok = (1..=64).contains(&body.gate.len())
        && body
            .gate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !gate_ok {
        return Err(ApiError::Unprocessable(
            Code::InvalidField,
            "`gate` must be 1 to 64 letters, digits, `-` and `_`".to_owned(),
        ));
    }
    crate::catalog::require_show(&state.pool, show).await?;
    let password = typed_code::random(PASSWORD_CHARS);
    let hash = state
        .passwords
        .hash(Password::new("password", password.clone())?)
        .await?;
    let account = Uuid::now_v7();
    let mut tx = state.pool.begin().await?;
    if !insert_account(&mut tx, account, &email, &name, &hash, AccountRole::Scanner).await? {
        return Err(ApiError::Conflict(
            Code::EmailTaken,
            "an account has this email already".to_owned(),
        ));
    }
    sqlx::query!(
        "INSERT INTO show_staff (account_id, show_id, gate) VALUES ($1, $2, $3)",
        account,
        show.0,
        body.gate,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    crate::http::json(
        StatusCode::CREATED,
        &StaffCreated {
            account_id: account,
            email: email.address,
            show_id: show.0,
            gate: body.gate,
            password,
        },
    )
}

/// Records a scan `staff` made: `ticket` (none when the payload was forged) with `result`,
/// at `at`. An offline scan uploaded again is recorded once.
pub(crate) async fn record(
    state: &AppState,
    staff: &Staff,
    ticket: Option<Uuid>,
    result: &str,
    at: DateTime<Utc>,
    offline: bool,
) -> Result<(), sqlx::Error> {
    let recorded = sqlx::query!(
        "INSERT INTO ticket_scans (show_id, ticket_id, account_id, gate, result, scanned_at, offline)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        staff.show,
        ticket,
        staff.account,
        staff.gate,
        result,
        at,
        offline,
    )
    .execute(&state.pool)
    .await?;
    if recorded.rows_affected() == 1 {
        state
            .metrics
            .ticket_scans
            .with_label_values(&[result, if offline { "true" } else { "false" }])
            .inc();
    }
    Ok(())
}

/// Scans counted by result.
#[derive(Debug, Default, Clone, Copy, Serialize, utoipa::ToSchema)]
pub(crate) struct Counts {
    /// Every scan.
    scanned: i64,
    /// First scans of valid tickets: fans let in.
    valid: i64,
    /// Tickets scanned before.
    already_scanned: i64,
    /// Revoked tickets.
    revoked: i64,
    /// Payloads no key signed.
    forged: i64,
    /// Genuine tickets of a rotating show shown without a live code: a screenshot or copy.
    stale_code: i64,
}

/// Counts for one gate, scanner or minute.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Bucket {
    /// The gate, the scanner's account id, or the minute (RFC 3339, UTC).
    key: String,
    /// Its counts.
    #[serde(flatten)]
    counts: Counts,
}

/// A show's entry so far.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Entry {
    /// The show.
    show_id: Uuid,
    /// Every scan of the show.
    total: Counts,
    /// By gate.
    by_gate: Vec<Bucket>,
    /// By scanner.
    by_scanner: Vec<Bucket>,
    /// By minute of the scan, oldest first.
    by_minute: Vec<Bucket>,
}

onsale_contract::problems!(pub(crate) EntryProblems = [
    openapi::ANY,
    openapi::ORGANIZER,
    &[Code::ShowNotFound],
]);

/// How the door of a show is going.
///
/// `GET /v1/admin/shows/{id}/entry` (organizer): every scan of the show, online and
/// uploaded, counted by result (`valid`, `already_scanned`, `revoked`, `forged`, `stale_code`), in all,
/// by gate, by scanner and by minute.
#[utoipa::path(
    get,
    path = "/v1/admin/shows/{id}/entry",
    tag = "organizer",
    params(("id" = Uuid, Path, description = "The show.")),
    responses((status = 200, description = "The entry counts.", body = Entry), EntryProblems),
    security(("organizer" = [])),
)]
pub(crate) async fn get_entry(
    State(state): State<AppState>,
    show: ShowId,
) -> Result<Response, ApiError> {
    crate::catalog::require_show(&state.pool, show).await?;
    let rows = sqlx::query!(
        r#"SELECT grouping(gate) = 0 AS "by_gate!", grouping(account_id) = 0 AS "by_scanner!",
                  grouping(date_trunc('minute', scanned_at)) = 0 AS "by_minute!",
                  gate AS "gate?", account_id AS "account?",
                  date_trunc('minute', scanned_at) AS "minute?",
                  count(*) AS "scanned!",
                  count(*) FILTER (WHERE result = 'valid') AS "valid!",
                  count(*) FILTER (WHERE result = 'already_scanned') AS "already_scanned!",
                  count(*) FILTER (WHERE result = 'revoked') AS "revoked!",
                  count(*) FILTER (WHERE result = 'forged') AS "forged!",
                  count(*) FILTER (WHERE result = 'stale_code') AS "stale_code!"
           FROM ticket_scans WHERE show_id = $1
           GROUP BY GROUPING SETS ((), (gate), (account_id), (date_trunc('minute', scanned_at)))
           ORDER BY 4, 5, 6"#,
        show.0,
    )
    .fetch_all(&state.pool)
    .await?;
    let mut entry = Entry {
        show_id: show.0,
        total: Counts::default(),
        by_gate: Vec::new(),
        by_scanner: Vec::new(),
        by_minute: Vec::new(),
    };
    for row in rows {
        let counts = Counts {
            scanned: row.scanned,
            valid: row.valid,
            already_scanned: row.already_scanned,
            revoked: row.revoked,
            forged: row.forged,
            stale_code: row.stale_code,
        };
        let bucket = |key: String| Bucket { key, counts };
        match (row.gate, row.account, row.minute) {
            (Some(gate), _, _) if row.by_gate => entry.by_gate.push(bucket(gate)),
            (_, Some(account), _) if row.by_scanner => {
                entry.by_scanner.push(bucket(account.to_string()))
            }
            (_, _, Some(minute)) if row.by_minute => entry.by_minute.push(bucket(
                minute.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )),
            _ => entry.total = counts,
        }
    }
    crate::http::json(StatusCode::OK, &entry)
}
