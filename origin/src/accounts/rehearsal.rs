//! Rehearsal fans: accounts made in bulk straight in PostgreSQL for `onsale-sim run`, all
//! with one password (hashed once, as `accounts` says), and for most of them a session, the
//! way fans arrive at an opening already signed in. The rest sign in through the API when
//! they arrive. Addresses are `fan-<n>.<run>@rehearsal.onsale.test`: a run never meets the
//! places, limits or orders of an earlier one.

use super::sessions::{new_token, token_hash};
use super::{passwords, AccountRole};
use crate::config::AccountsConfig;
use sqlx::PgPool;
use uuid::Uuid;

/// Accounts and sessions are written this many to a statement.
const BATCH: usize = 5_000;

/// The domain of every rehearsal address.
pub const DOMAIN: &str = "rehearsal.onsale.test";

/// One rehearsal fan.
#[derive(Debug, Clone)]
pub struct RehearsalFan {
    /// The account (the fan id of its places, holds and orders).
    pub account_id: Uuid,
    /// Its address, to sign in with.
    pub email: String,
    /// A live session token, unless the fan signs in when it arrives.
    pub session: Option<String>,
}

/// Why rehearsal fans were not made.
#[derive(Debug, thiserror::Error)]
pub enum RehearsalError {
    /// The run's name cannot be part of an address.
    #[error("a run's name is 1 to 32 lowercase letters, digits and hyphens, not {0:?}")]
    RunName(String),
    /// The password could not be hashed.
    #[error("hashing the rehearsal password: {0}")]
    Hash(String),
    /// The database refused.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Makes `count` fans for the run named `run`, sharing `password`; fan `n` gets a session
/// (lasting `accounts.session_ttl_h`) when `signed_in(n)`.
pub async fn make_fans(
    pool: &PgPool,
    accounts: &AccountsConfig,
    run: &str,
    count: u32,
    password: &str,
    signed_in: impl Fn(u32) -> bool,
) -> Result<Vec<RehearsalFan>, RehearsalError> {
    let valid_name = (1..=32).contains(&run.len())
        && run
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid_name {
        return Err(RehearsalError::RunName(run.to_owned()));
    }
    let argon = passwords::argon2(accounts).map_err(|e| RehearsalError::Hash(e.to_string()))?;
    let hash = passwords::hash(&argon, password.as_bytes())
        .map_err(|e| RehearsalError::Hash(e.to_string()))?;
    let fans: Vec<RehearsalFan> = (0..count)
        .map(|n| RehearsalFan {
            account_id: Uuid::now_v7(),
            email: format!("fan-{n}.{run}@{DOMAIN}"),
            session: signed_in(n).then(new_token),
        })
        .collect();
    for batch in fans.chunks(BATCH) {
        let ids: Vec<Uuid> = batch.iter().map(|f| f.account_id).collect();
        let emails: Vec<String> = batch.iter().map(|f| f.email.clone()).collect();
        // The addresses are lowercase already: each is its own key.
        sqlx::query!(
            "INSERT INTO accounts (id, email, email_key, display_name, password_hash, role)
             SELECT id, email, email, 'Rehearsal Fan', $3, $4
             FROM unnest($1::uuid[], $2::text[]) AS a(id, email)",
            &ids,
            &emails,
            hash,
            AccountRole::Fan.as_str(),
        )
        .execute(pool)
        .await?;
        let (owners, hashes): (Vec<Uuid>, Vec<Vec<u8>>) = batch
            .iter()
            .filter_map(|f| Some((f.account_id, token_hash(f.session.as_deref()?))))
            .unzip();
        let session_ids: Vec<Uuid> = owners.iter().map(|_| Uuid::now_v7()).collect();
        sqlx::query!(
            "INSERT INTO sessions (id, account_id, token_hash, expires_at)
             SELECT id, account_id, token_hash, now() + make_interval(hours => $4)
             FROM unnest($1::uuid[], $2::uuid[], $3::bytea[]) AS s(id, account_id, token_hash)",
            &session_ids,
            &owners,
            &hashes,
            accounts.session_ttl_h as i32,
        )
        .execute(pool)
        .await?;
    }
    Ok(fans)
}
