//! Admission sessions: a called fan's first poll claims its call in Redis (`claim.lua`)
//! and gets an admission token for the session's lifetime; a confirmed order ends the
//! session at once, freeing its capacity for the next fan, and spends its admission.

use super::cookies::Cookie;
use super::store::{self, Claim, Keys, Spent};
use super::wire::FanStatus;
use super::{Refusal, ShowView, WaitingRoom};
use crate::live::Runtime;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use onsale_contract::tokens::{self, Claims, TokenType};
use sha2::{Digest, Sha256};
use std::sync::PoisonError;

/// The `jti` of every admission token of one session (show, place, session end): a fan
/// polling twice, or from two devices, holds copies of one admission, spent together.
fn session_jti(show: &str, place: u64, expires_ms: i64) -> String {
    let digest = Sha256::digest(format!("admit\n{show}\n{place}\n{expires_ms}"));
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// An admission token to `show` for the account `sub`, signed at `now_ms` to last until
/// `expires_s` (Unix s), and the cookie carrying it. `queue_no`: the place it was called
/// from, none for an admission that took no place (a waitlist offer's).
pub(crate) fn sign_admission(
    runtime: &Runtime,
    sub: &str,
    show: &str,
    now_ms: i64,
    expires_s: i64,
    jti: String,
    queue_no: Option<u64>,
) -> (String, Cookie) {
    let token = runtime.signer.sign(&Claims {
        iss: runtime.signer.issuer().to_owned(),
        sub: sub.to_owned(),
        show: show.to_owned(),
        typ: TokenType::Admit,
        iat: now_ms / 1000,
        exp: expires_s,
        jti,
        queue_no,
        lane: None,
    });
    let cookie = Cookie {
        name: tokens::ADMIT_COOKIE,
        value: token.clone(),
        max_age_s: expires_s - now_ms / 1000,
    };
    (token, cookie)
}

impl WaitingRoom {
    /// Claims the call at `place` for the fan holding `queue`: its admission and the cookie
    /// carrying it, or [`Refusal::TurnMissed`] when the call lapsed or the session ended.
    pub(super) async fn admit(
        &self,
        runtime: &Runtime,
        view: &ShowView,
        queue: &Claims,
        place: u64,
        now_ms: i64,
    ) -> Result<(FanStatus, Cookie), Refusal> {
        let mut conn = self.request_connection().await?;
        let keys = Keys::new(&runtime.config.redis.key_prefix, &queue.show);
        let ttl_ms = view.settings.session_ttl_s as i64 * 1000;
        let Claim::Admitted { expires_ms } =
            store::claim(&mut conn, &keys, place, now_ms, ttl_ms).await?
        else {
            return Err(Refusal::TurnMissed);
        };
        let (admission_token, cookie) = sign_admission(
            runtime,
            &queue.sub,
            &queue.show,
            now_ms,
            expires_ms / 1000,
            session_jti(&queue.show, place, expires_ms),
            Some(place),
        );
        let admitted = FanStatus::Admitted {
            admission_token,
            admission_expires_at_ms: expires_ms / 1000 * 1000,
        };
        Ok((admitted, cookie))
    }

    /// The admission behind `claims` is spent (its order confirmed): refused by this node
    /// from now on. The rest, ending the session and telling the other nodes, is
    /// [`WaitingRoom::record_spent`].
    pub(crate) fn spend(&self, claims: &Claims) {
        self.spent
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(claims.jti.clone(), claims.exp);
    }

    /// Ends the admitted session behind `claims` and records its admission as spent in
    /// Redis, where every node's next step finds it.
    pub(crate) async fn record_spent(&self, prefix: &str, claims: &Claims, now_ms: i64) {
        let Ok(mut conn) = self.request_connection().await else {
            tracing::warn!(show = %claims.show, "no Redis to record a spent admission in");
            return;
        };
        let keys = Keys::new(prefix, &claims.show);
        let spent = Spent {
            jti: claims.jti.clone(),
            exp_s: claims.exp,
        };
        if let Err(error) = store::spend(&mut conn, &keys, claims.queue_no, &spent, now_ms).await {
            tracing::warn!(%error, show = %claims.show, "could not record a spent admission");
        }
    }

    /// Reads `show`'s spent admissions recorded since the last read.
    pub(super) async fn read_spent(
        &self,
        conn: &mut onsale_contract::redis::Connection,
        keys: &Keys,
        show: &str,
    ) -> redis::RedisResult<()> {
        let after = self
            .spent_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(show)
            .cloned();
        let (spent, last) = store::spent_since(conn, keys, after.as_deref()).await?;
        if let Some(last) = last {
            self.spent
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(spent.into_iter().map(|s| (s.jti, s.exp_s)));
            self.spent_read
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(show.to_owned(), last);
        }
        Ok(())
    }

    /// Forgets spent admissions that have expired (the token check refuses them anyway).
    pub(super) fn forget_expired_spent(&self, now_s: i64) {
        self.spent
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, exp| *exp > now_s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_session_one_jti() {
        let jti = session_jti("s1", 7, 1_000);
        assert_eq!(jti, session_jti("s1", 7, 1_000));
        assert_eq!(jti.len(), 22);
        for other in [
            session_jti("s2", 7, 1_000),
            session_jti("s1", 8, 1_000),
            session_jti("s1", 7, 2_000),
        ] {
            assert_ne!(jti, other);
        }
    }
}
