//! `POST /v1/waiting-room/sessions`: a new place at the back of the show's queue (the
//! pre-queue's join number before the sale opens), or the same place again for a fan whose
//! queue token is still good.

use super::cookies::cookie;
use super::poll::queue_claims;
use super::store::{self, Joined, Keys};
use super::wire::{FanStatus, JoinRequest, Reply, RoomResponse};
use super::{Refusal, WaitingRoom};
use crate::live::Runtime;
use onsale_contract::tokens::{self, Claims, Lane, TokenType};

impl WaitingRoom {
    /// Joins `request.show_id`'s queue; `presented` is the queue token the fan already
    /// holds, if any. 201 with a new token and cookie, 200 for a re-join or a closed queue.
    pub(crate) async fn join(
        &self,
        runtime: &Runtime,
        request: JoinRequest,
        presented: Option<&str>,
        now_ms: i64,
    ) -> Result<Reply<RoomResponse>, Refusal> {
        let show = request.show_id.as_str();
        let view = self.view(show).ok_or(Refusal::NoRoom)?;
        if now_ms < view.settings.queue_opens_ms() {
            return Ok(Reply::ok(RoomResponse {
                show_id: show.to_owned(),
                queue_token: None,
                opens_at_ms: view.settings.queue_opens_ms(),
                server_time_ms: now_ms,
                status: FanStatus::Closed,
            }));
        }
        // The same place for a fan already in this show's queue, whatever it does.
        if let Some(claims) = presented
            .and_then(|t| queue_claims(runtime, Some(t), now_ms).ok())
            .filter(|c| c.show == show)
        {
            match self
                .answer(runtime, &view, &claims, presented, now_ms)
                .await
            {
                Err(Refusal::TurnMissed) => {}
                answered => return answered,
            }
        }
        if view.settings.pow_difficulty > 0 {
            self.check_pow(runtime, show, &view, request.pow.as_ref(), now_ms)
                .await?;
        }
        let mut conn = self.connection()?;
        let keys = Keys::new(&runtime.config.redis.key_prefix, show);
        // The show's seed is set by its first join; later joins offer the same one.
        let seed = hex::encode(view.seed.unwrap_or_else(rand::random));
        let joined = store::join(&mut conn, &keys, &view.settings, &seed, now_ms).await?;
        let (lane, number, lane_label) = match joined {
            Joined::PreQueue(n) => (Lane::PreQueue, n, "pre_queue"),
            Joined::Open(n) => (Lane::Open, n, "open"),
        };
        self.metrics
            .joins
            .with_label_values(&[show, lane_label])
            .inc();
        let now_s = now_ms / 1000;
        let ttl_s = runtime.config.waiting_room.queue_token_ttl_s as i64;
        let claims = Claims {
            iss: runtime.signer.issuer().to_owned(),
            sub: tokens::random_id(),
            show: show.to_owned(),
            typ: TokenType::Queue,
            iat: now_s,
            exp: now_s + ttl_s,
            jti: tokens::random_id(),
            queue_no: Some(number),
            lane: Some(lane),
        };
        let token = runtime.signer.sign(&claims);
        let mut reply = self
            .answer(runtime, &view, &claims, Some(&token), now_ms)
            .await?;
        reply.status = 201;
        reply.cookies.push(cookie(
            tokens::QUEUE_COOKIE,
            &token,
            ttl_s,
            runtime.config.waiting_room.cookie_secure,
        ));
        Ok(reply)
    }
}
