//! Sessions: an opaque token (`ses_` + 43 base64url characters, 256 random bits) held by
//! the fan, stored only as its SHA-256. Every request that needs one reads it from
//! PostgreSQL, so a revoked session stops working at the origin at once; the edge caches
//! what `GET /v1/me` says for at most its `session_cache_s`.

use crate::error::ApiError;
use crate::status::AccountRole;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderValue;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use onsale_contract::tokens::{presented_session, SESSION_COOKIE, SESSION_PREFIX};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

/// Base64url characters of 32 bytes, unpadded.
const TOKEN_CHARS: usize = 43;

/// A new session token: the prefix and 32 random bytes.
pub(crate) fn new_token() -> String {
    format!(
        "{SESSION_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    )
}

/// What is stored of a token.
pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Whether `token` has the shape of a token this origin issues; anything else is refused
/// without a query.
fn well_formed(token: &str) -> bool {
    token.strip_prefix(SESSION_PREFIX).is_some_and(|rest| {
        rest.len() == TOKEN_CHARS
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// A session just issued.
pub(crate) struct Issued {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Starts a session for `account`, lasting `ttl_h` hours.
pub(crate) async fn issue(
    conn: &mut PgConnection,
    account: Uuid,
    ttl_h: u32,
) -> Result<Issued, sqlx::Error> {
    let token = new_token();
    let expires_at = sqlx::query_scalar!(
        "INSERT INTO sessions (id, account_id, token_hash, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(hours => $4))
         RETURNING expires_at",
        Uuid::now_v7(),
        account,
        token_hash(&token),
        ttl_h as i32,
    )
    .fetch_one(conn)
    .await?;
    Ok(Issued { token, expires_at })
}

/// Ends every live session of `account` (password change, password reset).
pub(crate) async fn revoke_all(conn: &mut PgConnection, account: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE sessions SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL",
        account,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Whether this answer's session cookie is `Secure`: always when `accounts.cookie_secure`
/// says so, and whenever the fan reached the edge over HTTPS (the edge sets
/// `X-Forwarded-Proto`), so a plain-HTTP development stack still gets its cookie back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CookieSecure(pub bool);

impl FromRequestParts<AppState> for CookieSecure {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let https = parts
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
        Ok(CookieSecure(state.config.accounts.cookie_secure || https))
    }
}

/// The `Set-Cookie` value carrying `token` for `max_age_s` seconds; an empty token and 0
/// clear it.
pub(crate) fn cookie(
    token: &str,
    max_age_s: i64,
    CookieSecure(secure): CookieSecure,
) -> Result<HeaderValue, ApiError> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Max-Age={max_age_s}; Path=/; HttpOnly; SameSite=Lax{secure}"
    ))
    .map_err(|e| ApiError::Internal(format!("session cookie: {e}")))
}

/// A live session (presented as `Authorization: Bearer ses_...` or the `onsale_session`
/// cookie) and its account; otherwise 401 `sign_in_required` with the sign-in link.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub id: Uuid,
    pub account: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: AccountRole,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// The account as the `fan_id` of its holds and orders (the admission token's `sub`).
    pub(crate) fn fan(&self) -> String {
        self.account.to_string()
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = presented_session(&parts.headers)
            .ok_or(ApiError::SignInRequired("no session; sign in"))?;
        if !well_formed(token) {
            return Err(ApiError::SignInRequired(
                "the session is not valid; sign in",
            ));
        }
        let session = sqlx::query_as!(
            Session,
            r#"SELECT s.id, s.account_id AS account, a.email, a.display_name,
                      a.role AS "role: AccountRole", s.expires_at
               FROM sessions s JOIN accounts a ON a.id = s.account_id
               WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()"#,
            token_hash(token),
        )
        .fetch_optional(&state.pool)
        .await?;
        session.ok_or(ApiError::SignInRequired(
            "the session has ended or is not valid; sign in",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_prefix_and_256_bits() {
        let token = new_token();
        assert!(well_formed(&token), "{token}");
        assert_eq!(token.len(), SESSION_PREFIX.len() + TOKEN_CHARS);
        assert_ne!(token, new_token());
        assert!(!well_formed("ses_short"));
        assert!(!well_formed(&token.replace(SESSION_PREFIX, "jwt_")));
        assert!(!well_formed(&format!("{token}=")));
        assert_eq!(token_hash(&token).len(), 32);
    }
}
