//! `POST /v1/waiting-room/sessions`: a signed-in account's place in the show's queue. A new
//! account takes a new place at the back (the pre-queue's join number before the sale
//! opens); an account that has one gets it back, whatever session, device or queue token it
//! joins with. Only a place whose turn has passed is given up for a new one.

use super::cookies::Cookie;
use super::poll::queue_claims;
use super::store::{self, Joined, Keys};
use super::wire::{FanStatus, JoinRequest, Reply, RoomResponse};
use super::{Refusal, ShowView, WaitingRoom};
use crate::accounts::Account;
use crate::live::Runtime;
use crate::snapshots::SnapshotStore;
use onsale_contract::tokens::{self, Claims, TokenType};

impl WaitingRoom {
    /// Joins `request.show_id`'s queue as `account`; `presented` is the queue token the fan
    /// already holds, if any. 201 with a new place, 200 with the account's place again (a
    /// new token and cookie when none of this account's was presented) or a closed queue.
    pub(crate) async fn join(
        &self,
        runtime: &Runtime,
        snapshots: &SnapshotStore,
        request: JoinRequest,
        account: &Account,
        presented: Option<&str>,
        now_ms: i64,
    ) -> Result<Reply<RoomResponse>, Refusal> {
        let show = request.show_id.as_str();
        let view = self.view_for(runtime, snapshots, show, now_ms)?;
        if now_ms < view.settings.queue_opens_ms() {
            return Ok(Reply::ok(RoomResponse {
                show_id: show.to_owned(),
                queue_token: None,
                opens_at_ms: view.settings.queue_opens_ms(),
                server_time_ms: now_ms,
                status: FanStatus::Closed,
            }));
        }
        // The account's own token for this show answers without Redis.
        if let Some(claims) = presented
            .and_then(|t| queue_claims(runtime, Some(t), now_ms).ok())
            .filter(|c| c.show == show && c.sub == account.id)
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
        let mut conn = self.request_connection().await?;
        let keys = Keys::new(&runtime.config.redis.key_prefix, show);
        // The show's seed is set by its first join; later joins offer the same one.
        let seed = hex::encode(view.seed.unwrap_or_else(rand::random));
        let settings = &view.settings;
        let joined = store::join(&mut conn, &keys, settings, &seed, account, None, now_ms).await?;
        let answered = self
            .place(runtime, &view, show, account, joined, now_ms)
            .await;
        let Err(Refusal::TurnMissed) = answered else {
            return answered;
        };
        // The account's turn came and went: its place is given up for one at the back.
        let renewed = store::join(
            &mut conn,
            &keys,
            settings,
            &seed,
            account,
            Some(joined),
            now_ms,
        )
        .await?;
        self.place(runtime, &view, show, account, renewed, now_ms)
            .await
    }

    /// The answer for `account` at `joined`, with a fresh queue token and its cookie.
    async fn place(
        &self,
        runtime: &Runtime,
        view: &ShowView,
        show: &str,
        account: &Account,
        joined: Joined,
        now_ms: i64,
    ) -> Result<Reply<RoomResponse>, Refusal> {
        if joined.new {
            let lane = match joined.lane {
                tokens::Lane::PreQueue => "pre_queue",
                tokens::Lane::Open => "open",
            };
            self.metrics.joins.with_label_values(&[show, lane]).inc();
        }
        let now_s = now_ms / 1000;
        let ttl_s = runtime.config.waiting_room.queue_token_ttl_s as i64;
        let claims = Claims {
            iss: runtime.queue_keys.issuer().to_owned(),
            sub: account.id.clone(),
            show: show.to_owned(),
            typ: TokenType::Queue,
            iat: now_s,
            exp: now_s + ttl_s,
            jti: tokens::random_id(),
            queue_no: Some(joined.number),
            lane: Some(joined.lane),
        };
        let token = runtime.queue_keys.sign(&claims).map_err(|error| {
            tracing::error!(%error, "cannot sign a queue token");
            Refusal::Internal
        })?;
        let mut reply = self
            .answer(runtime, view, &claims, Some(&token), now_ms)
            .await?;
        if joined.new {
            reply.status = 201;
        }
        reply.cookies.push(Cookie {
            name: tokens::QUEUE_COOKIE,
            value: token,
            max_age_s: ttl_s,
        });
        Ok(reply)
    }
}
