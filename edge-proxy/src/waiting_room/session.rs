//! Admission sessions: a called fan's first poll claims its call in Redis (`claim.lua`)
//! and gets an admission token for the session's lifetime; a confirmed order ends the
//! session at once, freeing its capacity for the next fan.

use super::cookies::cookie;
use super::store::{self, Claim, Keys};
use super::wire::FanStatus;
use super::{Refusal, ShowView, WaitingRoom};
use crate::live::Runtime;
use onsale_contract::tokens::{self, Claims, TokenType};

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
    ) -> Result<(FanStatus, String), Refusal> {
        let mut conn = self.connection()?;
        let keys = Keys::new(&runtime.config.redis.key_prefix, &queue.show);
        let ttl_ms = view.settings.session_ttl_s as i64 * 1000;
        let Claim::Admitted { expires_ms } =
            store::claim(&mut conn, &keys, place, now_ms, ttl_ms).await?
        else {
            return Err(Refusal::TurnMissed);
        };
        let admission_token = runtime.signer.sign(&Claims {
            iss: runtime.signer.issuer().to_owned(),
            sub: queue.sub.clone(),
            show: queue.show.clone(),
            typ: TokenType::Admit,
            iat: now_ms / 1000,
            exp: expires_ms / 1000,
            jti: tokens::random_id(),
            queue_no: Some(place),
            lane: None,
        });
        let cookie = cookie(
            tokens::ADMIT_COOKIE,
            &admission_token,
            (expires_ms - now_ms) / 1000,
            runtime.config.waiting_room.cookie_secure,
        );
        let admitted = FanStatus::Admitted {
            admission_token,
            admission_expires_at_ms: expires_ms / 1000 * 1000,
        };
        Ok((admitted, cookie))
    }

    /// Ends the admitted session behind `claims` (its order confirmed).
    pub(crate) async fn end_session(&self, prefix: &str, claims: &Claims) {
        let (Some(place), Ok(mut conn)) = (claims.queue_no, self.connection()) else {
            return;
        };
        let keys = Keys::new(prefix, &claims.show);
        if let Err(error) = store::end_session(&mut conn, &keys, place).await {
            tracing::warn!(%error, show = %claims.show, "could not end an admitted session");
        }
    }
}
