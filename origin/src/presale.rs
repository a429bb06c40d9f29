//! Presale access codes.
//!
//! `POST /v1/admin/shows/{id}/access-codes` (organizer) makes codes for a show, generated or
//! named, each good for `max_uses` accounts, and sets the show's presale window. The codes
//! are answered once, in that response, and kept only as hashes (`domain::typed_code`).
//!
//! During the window the edge lets an account join the show's queue only once the origin
//! has said yes to `POST /v1/shows/{id}/access` (the fan's session, the code): an account
//! redeems one code per show, once, and from then on is let in from any device without it.
//! A wrong, used-up or foreign code is `403 access_code_invalid` whichever it is; wrong
//! codes are counted per account and per client IP like wrong passwords (429 past
//! `accounts.max_code_failures_per_*`). The window itself reaches the edge in the show's
//! availability snapshot.

use crate::accounts::throttle::{self, ClientIp, Counter};
use crate::accounts::Session;
use crate::domain::{typed_code, ShowId};
use crate::error::{ApiError, Code};
use crate::json::ApiJson;
use crate::openapi;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use onsale_contract::problem::Problem;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use uuid::Uuid;

/// Characters of a generated code (about 59 bits), shown in groups of four.
const GENERATED_CHARS: usize = 12;
/// Most codes generated in one request.
const MAX_GENERATED: u32 = 10_000;
/// Most named codes in one request.
const MAX_NAMED: usize = 1_000;
/// A named code's length as typed, hyphens included.
const NAMED_LEN: std::ops::RangeInclusive<usize> = 6..=64;
/// The longest presale window.
const MAX_WINDOW_DAYS: i64 = 30;

/// A presale window: joins from `starts_at` until `ends_at` need an access code.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PresaleWindow {
    /// When the presale begins.
    pub starts_at: DateTime<Utc>,
    /// When it ends, after `starts_at`, at most 30 days later.
    pub ends_at: DateTime<Utc>,
}

/// Codes to make: `count` generated ones or the `codes` named, not both.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessCodesBody {
    /// How many codes to generate: 1 to 10,000.
    #[schema(minimum = 1, maximum = 10000)]
    count: Option<u32>,
    /// Codes of the organizer's own naming: 1 to 1,000, each 6 to 64 letters, digits and
    /// hyphens. Letter case, spaces and hyphens do not count when a fan types one.
    #[schema(min_items = 1, max_items = 1000)]
    codes: Option<Vec<String>>,
    /// How many accounts may redeem each code: 1 to 100,000 (default 1).
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 100000, default = 1)]
    max_uses: u32,
    /// The show's presale window; required the first time, replaces the window when given.
    presale: Option<PresaleWindow>,
}

fn one() -> u32 {
    1
}

/// Codes made, in the clear this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AccessCodesCreated {
    /// The show.
    show_id: Uuid,
    /// The codes, as fans should type them.
    codes: Vec<String>,
    /// How many accounts may redeem each.
    max_uses: u32,
    /// The show's presale window now.
    presale: PresaleWindow,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(Code::InvalidField, detail.into())
}

/// The codes asked for: generated, or named and checked; in the form fans type them.
fn codes_of(body: &AccessCodesBody) -> Result<Vec<String>, ApiError> {
    match (&body.count, &body.codes) {
        (Some(count), None) => {
            if !(1..=MAX_GENERATED).contains(count) {
                return Err(invalid(format!("`count` must be 1 to {MAX_GENERATED}")));
            }
            Ok((0..*count)
                .map(|_| {
                    let code = typed_code::random(GENERATED_CHARS);
                    format!("{}-{}-{}", &code[..4], &code[4..8], &code[8..])
                })
                .collect())
        }
        (None, Some(codes)) => {
            if codes.is_empty() || codes.len() > MAX_NAMED {
                return Err(invalid(format!("`codes` must hold 1 to {MAX_NAMED} codes")));
            }
            let mut seen = HashSet::new();
            for code in codes {
                let well_formed = NAMED_LEN.contains(&code.len())
                    && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !well_formed {
                    return Err(invalid(
                        "each code must be 6 to 64 letters, digits and hyphens",
                    ));
                }
                if !seen.insert(typed_code::normalise(code)) {
                    return Err(invalid(format!("code {code:?} is named twice")));
                }
            }
            Ok(codes.clone())
        }
        _ => Err(ApiError::InvalidBody(
            "send either `count` or `codes`".to_owned(),
        )),
    }
}

onsale_contract::problems!(pub(crate) AccessCodesProblems = [
    openapi::ANY,
    openapi::ORGANIZER,
    openapi::JSON_BODY,
    &[Code::InvalidField, Code::ShowNotFound, Code::AccessCodeExists],
]);

/// Makes presale access codes for a show and sets its presale window.
///
/// `POST /v1/admin/shows/{id}/access-codes` (organizer): `count` generated codes (12
/// characters that cannot be misread for one another, in three groups of four such as
/// `K7QM-2RWT-9HNP`) or the `codes` named, each good for `max_uses` accounts, all or none.
/// The codes are in this answer only; they are stored as hashes. A named code the show
/// already has is 409 `access_code_exists`, and nothing is stored.
#[utoipa::path(
    post,
    path = "/v1/admin/shows/{id}/access-codes",
    tag = "organizer",
    params(("id" = Uuid, Path, description = "The show.")),
    request_body = AccessCodesBody,
    responses(
        (status = 201, description = "The codes, this once.", body = AccessCodesCreated),
        AccessCodesProblems,
    ),
    security(("organizer" = [])),
)]
pub(crate) async fn post_access_codes(
    State(state): State<AppState>,
    show: ShowId,
    ApiJson(body): ApiJson<AccessCodesBody>,
) -> Result<Response, ApiError> {
    let codes = codes_of(&body)?;
    if !(1..=100_000).contains(&body.max_uses) {
        return Err(invalid("`max_uses` must be 1 to 100000"));
    }
    if let Some(window) = &body.presale {
        let days = (window.ends_at - window.starts_at).num_seconds() as f64 / 86_400.0;
        if window.ends_at <= window.starts_at || days > MAX_WINDOW_DAYS as f64 {
            return Err(invalid(format!(
                "`presale.ends_at` must follow `starts_at`, within {MAX_WINDOW_DAYS} days"
            )));
        }
    }
    let mut tx = state.pool.begin().await?;
    crate::catalog::require_show(&mut *tx, show).await?;
    let presale = match body.presale {
        Some(window) => sqlx::query_as!(
            PresaleWindow,
            "INSERT INTO show_presales (show_id, starts_at, ends_at) VALUES ($1, $2, $3)
             ON CONFLICT (show_id) DO UPDATE SET starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at
             RETURNING starts_at, ends_at",
            show.0,
            window.starts_at,
            window.ends_at,
        )
        .fetch_one(&mut *tx)
        .await?,
        None => sqlx::query_as!(
            PresaleWindow,
            "SELECT starts_at, ends_at FROM show_presales WHERE show_id = $1",
            show.0,
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| invalid("the show has no presale window yet: send `presale`"))?,
    };
    let hashes: Vec<Vec<u8>> = codes
        .iter()
        .map(|code| typed_code::hash(show.0, &typed_code::normalise(code)))
        .collect();
    let stored = sqlx::query_scalar!(
        r#"WITH stored AS (
             INSERT INTO access_codes (show_id, code_hash, max_uses)
             SELECT $1, hash, $3 FROM unnest($2::bytea[]) hash
             ON CONFLICT DO NOTHING RETURNING 1)
           SELECT count(*) AS "stored!" FROM stored"#,
        show.0,
        &hashes,
        body.max_uses as i32,
    )
    .fetch_one(&mut *tx)
    .await?;
    if stored as usize != codes.len() {
        return Err(ApiError::Conflict(
            Code::AccessCodeExists,
            "the show already has one of these codes; nothing was stored".to_owned(),
        ));
    }
    tx.commit().await?;
    let created = AccessCodesCreated {
        show_id: show.0,
        codes,
        max_uses: body.max_uses,
        presale,
    };
    crate::http::json(StatusCode::CREATED, &created)
}

/// A fan's access code for a show, if it has one to give.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessBody {
    /// The code as the fan typed it: at most 64 characters. Letter case, spaces and hyphens
    /// do not count. Not needed once the account has redeemed one for the show.
    #[schema(max_length = 64)]
    #[serde(default)]
    access_code: Option<String>,
}

/// The account may join the show's presale.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AccessGranted {
    /// The show.
    show_id: Uuid,
    /// When the account redeemed its code, Unix ms.
    redeemed_at_ms: i64,
}

onsale_contract::problems!(pub(crate) AccessProblems = [
    openapi::ANY,
    openapi::SESSION,
    openapi::JSON_BODY,
    &[Code::AccessCodeRequired, Code::AccessCodeInvalid, Code::RateLimited],
]);

fn forbidden(code: Code, detail: &str) -> ApiError {
    ApiError::problem(Problem::new(code, "No presale access").with_detail(detail))
}

fn code_invalid() -> ApiError {
    forbidden(
        Code::AccessCodeInvalid,
        "the access code does not open this show's presale",
    )
}

/// Redeems an access code for the signed-in account, or finds the one it redeemed.
///
/// `POST /v1/shows/{id}/access` (the fan's session): 200 once the account has redeemed a
/// code for the show, now or before (then without a code). One code per account and show,
/// each code for at most its `max_uses` accounts. Any code that does not open this show's
/// presale (wrong, used up, another show's) is 403 `access_code_invalid`, without saying
/// which; none at all is 403 `access_code_required`. Wrong codes count against the account
/// and the client IP (429 `rate_limited` past their maximum). The edge asks this for every
/// join during a presale.
#[utoipa::path(
    post,
    path = "/v1/shows/{id}/access",
    tag = "accounts",
    params(("id" = Uuid, Path, description = "The show.")),
    request_body = AccessBody,
    responses(
        (status = 200, description = "The account may join the presale.", body = AccessGranted),
        AccessProblems,
    ),
    security(("session" = []), ("session_cookie" = [])),
)]
pub(crate) async fn post_access(
    State(state): State<AppState>,
    session: Session,
    ip: ClientIp,
    show: ShowId,
    ApiJson(body): ApiJson<AccessBody>,
) -> Result<Response, ApiError> {
    let account = session.account;
    if let Some(granted) = redeemed(&state, show, account).await? {
        return crate::http::json(StatusCode::OK, &granted);
    }
    let Some(code) = body.access_code.filter(|code| !code.trim().is_empty()) else {
        return Err(forbidden(
            Code::AccessCodeRequired,
            "joining this show's presale takes an access code",
        ));
    };
    let config = &state.config.accounts;
    let counters = [
        Counter::access_code_account(&state, account),
        Counter::access_code_ip(&state, ip),
    ];
    if let Some(limited) =
        throttle::attempt(&state.pool, config.failure_window_s, &counters).await?
    {
        return Err(limited);
    }
    if code.len() > 64 {
        return Err(code_invalid());
    }
    let hash = typed_code::hash(show.0, &typed_code::normalise(&code));
    let mut tx = state.pool.begin().await?;
    // One redemption per account and show, even from two devices at once.
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text || ':' || $2::uuid::text, 9311))",
        show.0,
        account,
    )
    .execute(&mut *tx)
    .await?;
    let redeemed_at = sqlx::query_scalar!(
        r#"WITH used AS (
             UPDATE access_codes SET uses = uses + 1
             WHERE show_id = $1 AND code_hash = $2 AND uses < max_uses
               AND NOT EXISTS (SELECT 1 FROM access_code_redemptions WHERE show_id = $1 AND account_id = $3)
             RETURNING code_hash)
           INSERT INTO access_code_redemptions (show_id, account_id, code_hash)
           SELECT $1, $3, code_hash FROM used
           RETURNING redeemed_at"#,
        show.0,
        &hash,
        account,
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let Some(redeemed_at) = redeemed_at else {
        // Redeemed meanwhile from another device: that one counts.
        return match redeemed(&state, show, account).await? {
            Some(granted) => crate::http::json(StatusCode::OK, &granted),
            None => Err(code_invalid()),
        };
    };
    throttle::succeeded(&state.pool, &counters).await?;
    tracing::info!(%show, %account, "presale access code redeemed");
    crate::http::json(
        StatusCode::OK,
        &AccessGranted {
            show_id: show.0,
            redeemed_at_ms: redeemed_at.timestamp_millis(),
        },
    )
}

async fn redeemed(
    state: &AppState,
    show: ShowId,
    account: Uuid,
) -> Result<Option<AccessGranted>, sqlx::Error> {
    let at = sqlx::query_scalar!(
        "SELECT redeemed_at FROM access_code_redemptions WHERE show_id = $1 AND account_id = $2",
        show.0,
        account,
    )
    .fetch_optional(&state.pool)
    .await?;
    Ok(at.map(|at| AccessGranted {
        show_id: show.0,
        redeemed_at_ms: at.timestamp_millis(),
    }))
}
