//! Accounts: sign-up, sign-in to sessions, the signed-in account, password changes and
//! resets. An account's id is the fan: the edge puts it in queue and admission tokens as
//! `sub`, and every hold, order and limit is kept by it (`fan_id`).
//!
//! - this file: the account routes and the purge of ended sessions, codes and windows;
//! - [`passwords`]: argon2id hashing off the runtime, bounded, with the dummy hash that
//!   makes an unknown email cost what a wrong password does;
//! - [`sessions`]: opaque session tokens and the [`Session`] extractor;
//! - [`throttle`]: failure windows per email and per client IP, in PostgreSQL;
//! - [`resets`]: password reset codes through the notification pipeline;
//! - [`rehearsal`]: fans' accounts and sessions in bulk, for rehearsing an on-sale.
//!
//! Credentials are never enumerable: a wrong email and a wrong password get one answer
//! (401 `invalid_credentials`) after the same work, and a reset request is 202 whether or
//! not the email has an account.

pub mod passwords;
pub mod rehearsal;
pub(crate) mod resets;
pub(crate) mod sessions;
pub(crate) mod throttle;

pub use crate::status::AccountRole;
use sessions::CookieSecure;
pub(crate) use sessions::Session;

use crate::domain::account::{
    display_name, Email, Password, PasswordChangeBody, SignInBody, SignUpBody,
};
use crate::error::{ApiError, Code};
use crate::json::ApiJson;
use crate::openapi;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use onsale_contract::clock::now_ms;
use onsale_contract::problem::Problem;
use onsale_contract::tokens;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use throttle::{ClientIp, Counter};
use uuid::Uuid;

/// An account as its owner sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct AccountView {
    /// The account: the fan id of its holds, orders and tickets.
    account_id: Uuid,
    /// The email as given at sign-up, trimmed.
    email: String,
    /// The name shown to the fan.
    display_name: String,
    /// What the account is for; sign-up makes fans.
    role: AccountRole,
}

fn invalid_credentials() -> ApiError {
    ApiError::problem(
        Problem::new(Code::InvalidCredentials, "Invalid credentials")
            .with_detail("the email or the password is wrong"),
    )
}

/// Creates an account unless one has `email`'s key; returns whether it did.
pub(crate) async fn insert_account(
    conn: &mut PgConnection,
    id: Uuid,
    email: &Email,
    display_name: &str,
    password_hash: &str,
    role: AccountRole,
) -> Result<bool, sqlx::Error> {
    let created = sqlx::query!(
        "INSERT INTO accounts (id, email, email_key, display_name, password_hash, role)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email_key) DO NOTHING",
        id,
        email.address,
        email.key,
        display_name,
        password_hash,
        role.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(created.rows_affected() == 1)
}

fn email_taken() -> ApiError {
    ApiError::problem(
        Problem::new(Code::EmailTaken, "Email taken")
            .with_detail("an account with this email exists; sign in, or reset its password")
            .with("field", "email"),
    )
}

onsale_contract::problems!(pub(crate) SignUpProblems = [
    openapi::ANY,
    openapi::JSON_BODY,
    &[Code::InvalidField, Code::EmailTaken],
]);

/// Signs up: makes a fan account.
///
/// `POST /v1/accounts {"email","password","display_name"}`: a fan account, 201. Nothing is
/// stored unless every field is valid; an email taken in any letter case is 409.
#[utoipa::path(
    post,
    path = "/v1/accounts",
    tag = "accounts",
    request_body = SignUpBody,
    responses(
        (status = 201, description = "The account; sign in to use it.", body = AccountView),
        SignUpProblems,
    ),
)]
pub(crate) async fn post_account(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SignUpBody>,
) -> Result<Response, ApiError> {
    let email = Email::parse("email", &body.email)?;
    let password = Password::new("password", body.password)?;
    let name = display_name(&body.display_name)?;
    // Not worth a hash when the answer is already known; the insert settles races.
    let taken = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM accounts WHERE email_key = $1) AS "taken!""#,
        email.key,
    )
    .fetch_one(&state.pool)
    .await?;
    if taken {
        return Err(email_taken());
    }
    let hash = state.passwords.hash(password).await?;
    let id = Uuid::now_v7();
    let mut tx = state.pool.begin().await?;
    if !insert_account(&mut tx, id, &email, &name, &hash, AccountRole::Fan).await? {
        return Err(email_taken());
    }
    // Tickets sent to this email before it had an account arrive with it.
    crate::transfers::complete_waiting(&mut tx, id, &email.key).await?;
    tx.commit().await?;
    crate::http::json(
        StatusCode::CREATED,
        &AccountView {
            account_id: id,
            email: email.address,
            display_name: name,
            role: AccountRole::Fan,
        },
    )
}

/// A session just started.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SessionView {
    /// The signed-in account.
    account_id: Uuid,
    /// The session's token (`ses_` and 43 base64url characters), for
    /// `Authorization: Bearer`; the same as the `onsale_session` cookie.
    #[schema(pattern = "^ses_[A-Za-z0-9_-]{43}$")]
    session_token: String,
    /// When the session ends, in Unix milliseconds.
    expires_at_ms: i64,
    /// The origin's clock when answering, in Unix milliseconds.
    server_time_ms: i64,
}

onsale_contract::problems!(pub(crate) SignInProblems = [
    openapi::ANY,
    openapi::JSON_BODY,
    &[Code::InvalidField, Code::RateLimited, Code::InvalidCredentials],
]);

/// Signs in: starts a session.
///
/// `POST /v1/sessions {"email","password"}`: a session, 201, with its token in the body and
/// in the `onsale_session` cookie. A wrong email or password is one 401
/// `invalid_credentials` after the same work; too many failures for the email or from the
/// client are 429 before any work.
#[utoipa::path(
    post,
    path = "/v1/sessions",
    tag = "accounts",
    request_body = SignInBody,
    responses(
        (
            status = 201,
            description = "The session.",
            body = SessionView,
            headers((
                "Set-Cookie" = String,
                description = "`onsale_session=<session_token>; Max-Age=<seconds left>; Path=/; \
                               HttpOnly; SameSite=Lax`, and `Secure` over HTTPS."
            )),
        ),
        SignInProblems,
    ),
)]
pub(crate) async fn post_session(
    State(state): State<AppState>,
    ip: ClientIp,
    secure: CookieSecure,
    ApiJson(body): ApiJson<SignInBody>,
) -> Result<Response, ApiError> {
    let email = Email::parse("email", &body.email)?;
    let password = Password::presented("password", body.password)?;
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
    let account = sqlx::query!(
        "SELECT id, password_hash FROM accounts WHERE email_key = $1",
        email.key,
    )
    .fetch_optional(&state.pool)
    .await?;
    let (id, stored) = account.map(|a| (a.id, a.password_hash)).unzip();
    let matches = state
        .passwords
        .verify(password.clone(), stored.clone())
        .await?;
    let (Some(account), Some(stored)) = (id.filter(|_| matches), stored) else {
        return Err(invalid_credentials());
    };
    throttle::succeeded(&state.pool, &counters).await?;
    if state.passwords.outdated(&stored) {
        rehash(&state, account, password, &stored).await?;
    }
    let mut conn = state.pool.acquire().await?;
    let issued = sessions::issue(&mut conn, account, config.session_ttl_h).await?;
    let max_age = (issued.expires_at.timestamp_millis() - now_ms()) / 1000;
    let cookie = sessions::cookie(&issued.token, max_age, secure)?;
    let mut response = crate::http::json(
        StatusCode::CREATED,
        &SessionView {
            account_id: account,
            session_token: issued.token,
            expires_at_ms: issued.expires_at.timestamp_millis(),
            server_time_ms: now_ms(),
        },
    )?;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Hashes a password again with the configured settings, now that it is known: once the
/// settings are raised, every account that signs in moves to them, and its hash costs what
/// the dummy hash of an unknown email does again. A password changed meanwhile is kept.
async fn rehash(
    state: &AppState,
    account: Uuid,
    password: Password,
    stored: &str,
) -> Result<(), ApiError> {
    let hash = state.passwords.hash(password).await?;
    sqlx::query!(
        "UPDATE accounts SET password_hash = $2 WHERE id = $1 AND password_hash = $3",
        account,
        hash,
        stored,
    )
    .execute(&state.pool)
    .await?;
    Ok(())
}

/// The signed-in account and its session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct MeView {
    /// The account: the fan id of its holds, orders and tickets.
    account_id: Uuid,
    /// The account's email, as given at sign-up.
    email: String,
    /// The name shown to the fan.
    display_name: String,
    /// What the account is for.
    role: AccountRole,
    /// When this session ends, in Unix milliseconds.
    session_expires_at_ms: i64,
    /// The origin's clock when answering, in Unix milliseconds.
    server_time_ms: i64,
}

onsale_contract::problems!(pub(crate) SessionProblems = [openapi::ANY, openapi::SESSION]);

/// The signed-in account.
///
/// `GET /v1/me`: the signed-in account. The edge resolves sessions with this (bearer
/// `ses_...`), so its shape is part of the contract between them.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "accounts",
    responses(
        (
            status = 200,
            description = "The account.",
            body = MeView,
            headers(("Cache-Control" = String, description = "`private, no-store`.")),
        ),
        SessionProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn get_me(session: Session) -> Result<Response, ApiError> {
    let mut response = crate::http::json(
        StatusCode::OK,
        &MeView {
            account_id: session.account,
            email: session.email,
            display_name: session.display_name,
            role: session.role,
            session_expires_at_ms: session.expires_at.timestamp_millis(),
            server_time_ms: now_ms(),
        },
    )?;
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

/// 204 that also clears the session cookie.
fn signed_out(secure: CookieSecure) -> Result<Response, ApiError> {
    let cookie = sessions::cookie("", 0, secure)?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// Signs out.
///
/// `DELETE /v1/sessions/current`: signs this session out, 204 (the cookie is cleared).
#[utoipa::path(
    delete,
    path = "/v1/sessions/current",
    tag = "accounts",
    responses(
        (
            status = 204,
            description = "Signed out.",
            headers((
                "Set-Cookie" = String,
                description = "`onsale_session=; Max-Age=0; ...`: clears the session cookie."
            )),
        ),
        SessionProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn delete_current_session(
    State(state): State<AppState>,
    session: Session,
    secure: CookieSecure,
) -> Result<Response, ApiError> {
    sqlx::query!(
        "UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        session.id,
    )
    .execute(&state.pool)
    .await?;
    signed_out(secure)
}

onsale_contract::problems!(pub(crate) PasswordChangeProblems = [
    openapi::ANY,
    openapi::SESSION,
    openapi::JSON_BODY,
    &[Code::InvalidField, Code::RateLimited, Code::InvalidCredentials],
]);

/// Changes the password and ends every session of the account.
///
/// `POST /v1/me/password {"current_password","new_password"}`: with the current password,
/// sets a new one and ends every session of the account, this one included (sign in again
/// with the new password), 204. A wrong current password counts as a failed credential
/// check for the account's email and the client.
#[utoipa::path(
    post,
    path = "/v1/me/password",
    tag = "accounts",
    request_body = PasswordChangeBody,
    responses(
        (
            status = 204,
            description = "Changed; every session of the account has ended, this one included.",
            headers((
                "Set-Cookie" = String,
                description = "`onsale_session=; Max-Age=0; ...`: clears the session cookie."
            )),
        ),
        PasswordChangeProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn post_password(
    State(state): State<AppState>,
    session: Session,
    ip: ClientIp,
    secure: CookieSecure,
    ApiJson(body): ApiJson<PasswordChangeBody>,
) -> Result<Response, ApiError> {
    let current = Password::presented("current_password", body.current_password)?;
    let new = Password::new("new_password", body.new_password)?;
    let config = &state.config.accounts;
    let account = sqlx::query!(
        "SELECT email_key, password_hash FROM accounts WHERE id = $1",
        session.account,
    )
    .fetch_one(&state.pool)
    .await?;
    let counters = [
        Counter::credential_email(&state, &account.email_key),
        Counter::credential_ip(&state, ip),
    ];
    if let Some(limited) =
        throttle::attempt(&state.pool, config.failure_window_s, &counters).await?
    {
        return Err(limited);
    }
    if !state
        .passwords
        .verify(current, Some(account.password_hash))
        .await?
    {
        return Err(ApiError::problem(
            Problem::new(Code::InvalidCredentials, "Invalid credentials")
                .with_detail("the current password is wrong"),
        ));
    }
    let hash = state.passwords.hash(new).await?;
    let mut tx = state.pool.begin().await?;
    set_password(&mut tx, session.account, &hash).await?;
    tx.commit().await?;
    throttle::succeeded(&state.pool, &counters).await?;
    signed_out(secure)
}

/// Stores a new password hash and ends every session of the account, in the caller's
/// transaction.
async fn set_password(tx: &mut PgConnection, account: Uuid, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE accounts SET password_hash = $2, password_changed_at = now() WHERE id = $1",
        account,
        hash,
    )
    .execute(&mut *tx)
    .await?;
    sessions::revoke_all(tx, account).await?;
    Ok(())
}

/// How often ended sessions, codes and windows are purged.
const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Deletes sessions and reset codes that ended a day ago or more, throttling windows that
/// have ended, and spent admissions no token can carry any more.
pub async fn purge(pool: &PgPool, window_s: u32) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM sessions
         WHERE expires_at < now() - interval '1 day' OR revoked_at < now() - interval '1 day'"
    )
    .execute(pool)
    .await?;
    sqlx::query!("DELETE FROM password_resets WHERE expires_at < now() - interval '1 day'")
        .execute(pool)
        .await?;
    throttle::purge(pool, window_s).await?;
    // Twice the longest an admission token lives: every token that could carry the `jti`
    // has expired by then, whatever the skew between the edge's clock and ours.
    sqlx::query!(
        "DELETE FROM spent_admissions WHERE spent_at < now() - make_interval(secs => $1)",
        (2 * tokens::MAX_ADMISSION_LIFETIME_S) as f64,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Purges once a minute until `stopped`.
pub(crate) async fn run_purge(
    pool: PgPool,
    window_s: u32,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(error) = purge(&pool, window_s).await {
            tracing::warn!(%error, "accounts purge failed; retrying next round");
        }
        tokio::select! {
            _ = tokio::time::sleep(PURGE_INTERVAL) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}
