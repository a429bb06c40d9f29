//! Password resets. `POST /v1/password-resets {"email"}` answers 202 at once, whatever the
//! email; the work happens after the answer, so neither its status nor its timing says
//! whether the email has an account. For an account, a code (10 characters, about 49 bits)
//! is stored as a hash and sent to the account's email through the outbox and the
//! notification pipeline (`password_reset_requested`; the JSON-lines sink in development).
//! `POST /v1/password-resets/confirm {"email","code","new_password"}` spends the code
//! once, within `reset_code_ttl_s`, sets the password and ends every session of the account.

use super::set_password;
use super::throttle::{self, ClientIp, Counter};
use crate::domain::account::{invalid, Email, Password, ResetConfirmBody, ResetRequestBody};
use crate::domain::typed_code;
use crate::error::{ApiError, Code};
use crate::json::ApiJson;
use crate::openapi;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use onsale_contract::problem::Problem;
use uuid::Uuid;

/// Characters of a reset code: about 49 bits.
const CODE_CHARS: usize = 10;

onsale_contract::problems!(pub(crate) ResetProblems = [
    openapi::ANY,
    openapi::JSON_BODY,
    &[Code::InvalidField, Code::RateLimited],
]);

/// Asks for a password reset code by email.
///
/// `POST /v1/password-resets {"email"}`: always 202 for a well-formed email. Too many
/// requests from one client are 429; too many for one email send nothing more.
#[utoipa::path(
    post,
    path = "/v1/password-resets",
    tag = "accounts",
    request_body = ResetRequestBody,
    responses(
        (
            status = 202,
            description = "Accepted, whether or not the email has an account; if it has, a \
                           code is on its way there.",
        ),
        ResetProblems,
    ),
)]
pub(crate) async fn post_reset(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<ResetRequestBody>,
) -> Result<Response, ApiError> {
    let email = Email::parse("email", &body.email)?;
    let window = state.config.accounts.failure_window_s;
    if let Some(limited) =
        throttle::attempt(&state.pool, window, &[Counter::reset_ip(&state, ip)]).await?
    {
        return Err(limited);
    }
    tokio::spawn(async move {
        if let Err(error) = send_code(&state, &email).await {
            tracing::warn!(%error, "a password reset code was not sent");
        }
    });
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Stores a code for `email`'s account, if it has one, and puts it in the outbox.
async fn send_code(state: &AppState, email: &Email) -> Result<(), sqlx::Error> {
    let config = &state.config.accounts;
    let counter = Counter::reset_email(state, &email.key);
    if throttle::attempt(&state.pool, config.failure_window_s, &[counter])
        .await?
        .is_some()
    {
        return Ok(());
    }
    let mut tx = state.pool.begin().await?;
    let account = sqlx::query!(
        "SELECT id, email FROM accounts WHERE email_key = $1",
        email.key,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(account) = account else {
        return Ok(());
    };
    let code = typed_code::random(CODE_CHARS);
    let expires_at = sqlx::query_scalar!(
        "INSERT INTO password_resets (id, account_id, code_hash, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING expires_at",
        Uuid::now_v7(),
        account.id,
        typed_code::hash(account.id, &code),
        f64::from(config.reset_code_ttl_s),
    )
    .fetch_one(&mut *tx)
    .await?;
    // The code travels in the clear to the sink, as it must to reach the fan; PostgreSQL's
    // own record of it is the hash above.
    let payload = serde_json::json!({
        "account_id": account.id,
        "fan_id": account.id,
        "email": account.email,
        "code": code,
        "valid_minutes": config.reset_code_ttl_s / 60,
        "expires_at_ms": expires_at.timestamp_millis(),
    });
    sqlx::query!(
        "INSERT INTO outbox (aggregate_id, aggregate_type, event_type, payload)
         VALUES ($1, 'account', 'password_reset_requested', $2)",
        account.id,
        payload,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

fn invalid_code() -> ApiError {
    ApiError::problem(
        Problem::new(Code::InvalidResetCode, "Invalid reset code")
            .with_detail("the code is wrong, used or expired; request a new one"),
    )
}

onsale_contract::problems!(pub(crate) ResetConfirmProblems = [
    openapi::ANY,
    openapi::JSON_BODY,
    &[Code::InvalidField, Code::RateLimited, Code::InvalidResetCode],
]);

/// Sets a new password with a reset code.
///
/// `POST /v1/password-resets/confirm {"email","code","new_password"}`: 204 once the code is
/// spent and the password set; every session of the account ends. A wrong code (or an
/// email without an account, which is answered the same) counts as a failed credential
/// check for the email and the client.
#[utoipa::path(
    post,
    path = "/v1/password-resets/confirm",
    tag = "accounts",
    request_body = ResetConfirmBody,
    responses(
        (
            status = 204,
            description = "The password is set; every session of the account has ended.",
        ),
        ResetConfirmProblems,
    ),
)]
pub(crate) async fn post_confirm(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<ResetConfirmBody>,
) -> Result<Response, ApiError> {
    let email = Email::parse("email", &body.email)?;
    let code = typed_code::normalise(&body.code);
    if code.is_empty() || code.len() > 64 {
        return Err(invalid("code", "`code` must be the code that was sent"));
    }
    let new = Password::new("new_password", body.new_password)?;
    let config = &state.config.accounts;
    let counters = [
        Counter::credential_email(&state, &email.key),
        Counter::credential_ip(&state, ip),
    ];
    if let Some(limited) =
        throttle::attempt(&state.pool, config.failure_window_s, &counters).await?
    {
        return Err(limited);
    }
    let account = sqlx::query_scalar!("SELECT id FROM accounts WHERE email_key = $1", email.key)
        .fetch_optional(&state.pool)
        .await?;
    let matched = match account {
        Some(account) => sqlx::query_scalar!(
            "SELECT id FROM password_resets
             WHERE account_id = $1 AND code_hash = $2 AND used_at IS NULL AND expires_at > now()",
            account,
            typed_code::hash(account, &code),
        )
        .fetch_optional(&state.pool)
        .await?
        .map(|reset| (account, reset)),
        None => None,
    };
    let Some((account, reset)) = matched else {
        return Err(invalid_code());
    };
    let hash = state.passwords.hash(new).await?;
    let mut tx = state.pool.begin().await?;
    // Spent once: of two confirmations racing with one code, one finds it unused.
    let spent = sqlx::query!(
        "UPDATE password_resets SET used_at = now()
         WHERE id = $1 AND used_at IS NULL AND expires_at > now()",
        reset,
    )
    .execute(&mut *tx)
    .await?;
    if spent.rows_affected() != 1 {
        return Err(invalid_code());
    }
    // Codes requested earlier stop working with this one.
    sqlx::query!(
        "UPDATE password_resets SET used_at = now() WHERE account_id = $1 AND used_at IS NULL",
        account,
    )
    .execute(&mut *tx)
    .await?;
    set_password(&mut tx, account, &hash).await?;
    tx.commit().await?;
    throttle::succeeded(&state.pool, &counters).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
