//! Proof of work at the door: `GET /v1/waiting-room/challenge` hands out a challenge for a
//! show that asks for it, and a join's answer is checked ([`pow`](super::pow)) and spent
//! once in Redis.

use super::pow::{self, CHALLENGE_TTL_MS};
use super::store::{self, Keys};
use super::wire::{ChallengeResponse, PowAnswer, Reply};
use super::{Refusal, ShowView, WaitingRoom};
use crate::live::Runtime;
use crate::snapshots::SnapshotStore;

impl WaitingRoom {
    /// A fresh challenge for `show`.
    pub(crate) fn challenge(
        &self,
        runtime: &Runtime,
        snapshots: &SnapshotStore,
        show: Option<&str>,
        now_ms: i64,
    ) -> Result<Reply<ChallengeResponse>, Refusal> {
        let show = show.ok_or(Refusal::ShowIdRequired)?;
        let view = self.view_for(runtime, snapshots, show, now_ms)?;
        let difficulty = view.settings.pow_difficulty;
        if difficulty == 0 {
            return Err(Refusal::NoChallenge);
        }
        Ok(Reply::ok(ChallengeResponse {
            challenge: pow::challenge(&runtime.pow_key, show, now_ms, rand::random()),
            difficulty,
            expires_at_ms: now_ms + CHALLENGE_TTL_MS,
            server_time_ms: now_ms,
            show_id: show.to_owned(),
        }))
    }

    /// Accepts a join's proof of work once: solved, unexpired, issued for `show`, unspent.
    pub(super) async fn check_pow(
        &self,
        runtime: &Runtime,
        show: &str,
        view: &ShowView,
        answer: Option<&PowAnswer>,
        now_ms: i64,
    ) -> Result<(), Refusal> {
        let Some(answer) = answer else {
            return Err(Refusal::PowRequired {
                show: show.to_owned(),
                difficulty: view.settings.pow_difficulty,
            });
        };
        let (nonce, expires_ms) = pow::check(
            &runtime.pow_key,
            show,
            &answer.challenge,
            &answer.solution,
            view.settings.pow_difficulty,
            now_ms,
        )?;
        let mut conn = self.request_connection().await?;
        let keys = Keys::new(&runtime.config.redis.key_prefix, show);
        if !store::spend_challenge(&mut conn, &keys, &nonce, expires_ms - now_ms).await? {
            return Err(Refusal::PowReused);
        }
        Ok(())
    }
}
