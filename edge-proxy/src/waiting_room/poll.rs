//! `GET /v1/waiting-room/sessions/current`, and the answer a join gives too: where the fan
//! holding a queue token stands, from this node's view of the queue. A poll touches Redis
//! only when the fan's turn has come.

use super::standing::{pre_queue_poll_after_ms, Standing};
use super::store::Lost;
use super::wire::{FanStatus, Reply, RoomResponse};
use super::{Refusal, ShowView, WaitingRoom};
use crate::accounts::Account;
use crate::live::Runtime;
use crate::snapshots::SnapshotStore;
use onsale_contract::polling::poll_after_ms;
use onsale_contract::tokens::{Claims, TokenType};
use std::sync::Arc;

/// The queue token's claims, if it is present and valid.
pub(super) fn queue_claims(
    runtime: &Runtime,
    token: Option<&str>,
    now_ms: i64,
) -> Result<Arc<Claims>, Refusal> {
    let token = token.ok_or(Refusal::QueueTokenRequired(
        "no queue token; join the waiting room",
    ))?;
    runtime
        .queue_tokens
        .verify(token, now_ms / 1000)
        .map_err(|error| Refusal::QueueTokenRequired(error.fan_detail(TokenType::Queue)))
}

impl WaitingRoom {
    /// Where the fan holding `token` stands; `show_param`, when given, must be its show.
    pub(crate) async fn poll(
        &self,
        runtime: &Runtime,
        snapshots: &SnapshotStore,
        token: Option<&str>,
        show_param: Option<&str>,
        now_ms: i64,
    ) -> Result<Reply<RoomResponse>, Refusal> {
        let claims = queue_claims(runtime, token, now_ms)?;
        if show_param.is_some_and(|s| s != claims.show) {
            return Err(Refusal::WrongShow);
        }
        let view = self.view_for(runtime, snapshots, &claims.show, now_ms)?;
        self.answer(runtime, &view, &claims, token, now_ms).await
    }

    /// The answer for a fan holding `claims` (and `queue_token`, echoed back).
    pub(super) async fn answer(
        &self,
        runtime: &Runtime,
        view: &ShowView,
        claims: &Claims,
        queue_token: Option<&str>,
        now_ms: i64,
    ) -> Result<Reply<RoomResponse>, Refusal> {
        let (Some(number), Some(lane)) = (claims.queue_no, claims.lane) else {
            return Err(Refusal::QueueTokenRequired(
                "the queue token carries no place",
            ));
        };
        if view.lost(lane, number, claims.iat) {
            if let Some(account) = Account::parse(&claims.sub) {
                self.mark_lost(
                    &claims.show,
                    Lost {
                        lane,
                        number,
                        account,
                    },
                );
            }
        }
        let settings = &view.settings;
        let grace_ms = settings.grace_ms();
        let jitter = rand::random::<f64>();
        let mut cookies = Vec::new();
        let status = match view.standing(lane, number, now_ms) {
            Standing::PreQueue => FanStatus::PreQueue {
                poll_after_ms: pre_queue_poll_after_ms(
                    settings.sale_opens_ms(),
                    now_ms,
                    grace_ms,
                    jitter,
                ),
            },
            Standing::SoldOut => FanStatus::SoldOut {
                poll_after_ms: poll_after_ms(u64::MAX, grace_ms, jitter),
            },
            Standing::Queued {
                place,
                position,
                eta_s,
            } => {
                self.mark_seen(&claims.show, place);
                if let Some(eta) = eta_s {
                    self.sample_eta(&claims.show, place, eta, now_ms);
                }
                FanStatus::Queued {
                    position,
                    estimated_wait_s: eta_s,
                    poll_after_ms: poll_after_ms(position, grace_ms, jitter),
                }
            }
            Standing::Called { place } => {
                let (admitted, cookie) = self.admit(runtime, view, claims, place, now_ms).await?;
                cookies.push(cookie);
                admitted
            }
        };
        Ok(Reply {
            status: 200,
            body: RoomResponse {
                show_id: claims.show.clone(),
                queue_token: queue_token.map(str::to_owned),
                opens_at_ms: settings.sale_opens_ms(),
                server_time_ms: now_ms,
                status,
            },
            cookies,
        })
    }
}
