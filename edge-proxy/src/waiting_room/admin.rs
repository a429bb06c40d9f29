//! The operator's side of the waiting room: this node's view of a show's queue
//! (`GET /admin/shows/{id}/queue`), changing a show's admission numbers on every node
//! (`PUT`, audited), and pausing or resuming admission on every node.

use super::refusal::StateError;
use super::standing::QueueStatus;
use super::store::{self, Keys};
use super::{draw, WaitingRoom};
use crate::config::{PrequeueOrder, QueueSettings, QueueTuning};

/// A show's queue as this node last stepped it, for operators.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct QueueReport {
    /// The show.
    pub show_id: String,
    /// Where the queue is in its life.
    pub status: QueueStatus,
    /// Admission paused by an operator.
    pub paused: bool,
    /// The availability snapshot says nothing is left.
    pub sold_out: bool,
    /// The version of the settings in Redis.
    pub settings_version: u64,
    /// Fans called per minute, all nodes together.
    pub admit_per_minute: u32,
    /// Most admitted sessions and unclaimed calls open at once.
    pub max_active: u32,
    /// How long an admission lasts.
    pub session_ttl_s: u64,
    /// Silence after which a fan's place is skipped.
    pub no_show_grace_s: u64,
    /// Leading zero bits a join's proof of work needs (0: none).
    pub pow_difficulty: u8,
    /// When joins open.
    pub queue_opens_at_ms: i64,
    /// When the sale opens and the pre-queue is drawn.
    pub sale_opens_at_ms: i64,
    /// How the pre-queue is ordered at the opening.
    pub prequeue_order: PrequeueOrder,
    /// Fans present behind the serving counter.
    pub queue_length: u64,
    /// Joins so far, both lanes.
    pub joined: u64,
    /// The serving counter: every place below it has been called.
    pub serving: u64,
    /// Admitted sessions and unclaimed calls open.
    pub active: u64,
    /// Admission tokens issued in the last minute.
    pub admitted_last_minute: u64,
    /// Places called in the last minute.
    pub called_last_minute: u64,
    /// Places skipped because their fan was away.
    pub no_shows_skipped: u64,
    /// The pre-queue's size (frozen at the opening).
    pub prequeue_size: u64,
    /// SHA-256 of the draw's seed, published before the opening.
    pub seed_sha256: Option<String>,
    /// The draw's seed, revealed once the draw has happened so anyone can recompute the
    /// order.
    pub seed: Option<String>,
    /// When the step behind this report ran.
    pub as_of_ms: i64,
}

impl WaitingRoom {
    /// This node's report on `show`'s queue; `None` for a show without a waiting room.
    pub fn admin_view(&self, show: &str, now_ms: i64) -> Option<QueueReport> {
        let view = self.view(show)?;
        let state = &view.state;
        let s = &view.settings;
        let drawn = state.frozen.is_some();
        Some(QueueReport {
            show_id: show.to_owned(),
            status: view.status(now_ms),
            paused: state.paused,
            sold_out: view.sold_out,
            settings_version: state.version,
            admit_per_minute: s.admit_per_minute,
            max_active: s.max_active,
            session_ttl_s: s.session_ttl_s,
            no_show_grace_s: s.no_show_grace_s,
            pow_difficulty: s.pow_difficulty,
            queue_opens_at_ms: s.queue_opens_ms(),
            sale_opens_at_ms: s.sale_opens_ms(),
            prequeue_order: s.prequeue_order,
            queue_length: state.blocks.last().map_or(0, |b| b.1),
            joined: state.total.max(state.pre_count),
            serving: state.serving,
            active: state.active,
            admitted_last_minute: state.issued_last_minute,
            called_last_minute: state.called_last_minute,
            no_shows_skipped: state.skipped,
            prequeue_size: state.frozen.unwrap_or(state.pre_count),
            seed_sha256: view.seed.as_ref().map(draw::commitment),
            seed: drawn.then(|| view.seed.map(hex::encode)).flatten(),
            as_of_ms: view.as_of_ms,
        })
    }

    /// Pauses or resumes admission for `show` on every node; returns the settings version.
    pub(crate) async fn set_paused(
        &self,
        prefix: &str,
        show: &str,
        paused: bool,
    ) -> Result<u64, StateError> {
        let mut conn = self.connection()?;
        Ok(store::set_paused(&mut conn, &Keys::new(prefix, show), paused).await?)
    }
}

/// Attempts at a change when other changes keep landing between its read and its write.
const TUNE_ATTEMPTS: usize = 5;

/// Who changed a show's settings, from where, when: the audit entry's context.
pub(crate) struct Operator<'a> {
    /// The name the operator gave (`onsale-operator`), under the shared admin token.
    pub name: &'a str,
    /// The address the call came from.
    pub client: String,
    /// When the call was answered, Unix ms.
    pub at_ms: i64,
}

/// A change of a show's settings, applied.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Tuned {
    /// The version every node's next step reads.
    pub settings_version: u64,
    /// The settings before the change.
    pub previous: QueueSettings,
    /// The settings now.
    pub settings: QueueSettings,
}

/// Why a change of a show's settings was not applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TuneError {
    /// The change would leave the settings invalid.
    #[error("{0}")]
    Invalid(&'static str),
    /// No node has published settings for the show yet.
    #[error("no settings for this show in Redis yet")]
    Unpublished,
    /// Other changes kept landing first.
    #[error("the settings kept changing meanwhile; retry")]
    Contended,
    #[error(transparent)]
    State(#[from] StateError),
}

impl WaitingRoom {
    /// Applies `tuning` to `show`'s settings in Redis, where every node's next step picks
    /// them up, and records who did it on the show's audit stream and in the log. A
    /// node's configuration reload publishes its file's values again (the file is the
    /// source of truth).
    pub(crate) async fn tune(
        &self,
        prefix: &str,
        show: &str,
        tuning: &QueueTuning,
        operator: &Operator<'_>,
    ) -> Result<Tuned, TuneError> {
        let mut conn = self.connection()?;
        let keys = Keys::new(prefix, show);
        for _ in 0..TUNE_ATTEMPTS {
            let from_json = store::settings(&mut conn, &keys)
                .await
                .map_err(StateError::from)?
                .ok_or(TuneError::Unpublished)?;
            let previous: QueueSettings =
                serde_json::from_str(&from_json).map_err(StateError::from)?;
            let settings = tuning.applied_to(&previous).map_err(TuneError::Invalid)?;
            let to_json = serde_json::to_string(&settings).map_err(StateError::from)?;
            let audit = [
                ("at_ms", operator.at_ms.to_string()),
                ("operator", operator.name.to_owned()),
                ("client", operator.client.clone()),
                ("previous", from_json.clone()),
                ("settings", to_json.clone()),
            ];
            let written = store::tune(&mut conn, &keys, &from_json, &to_json, &audit)
                .await
                .map_err(StateError::from)?;
            if let Some(settings_version) = written {
                tracing::info!(
                    %show,
                    operator = operator.name,
                    client = %operator.client,
                    previous = %from_json,
                    settings = %to_json,
                    settings_version,
                    "waiting-room settings changed through the admin API"
                );
                return Ok(Tuned {
                    settings_version,
                    previous,
                    settings,
                });
            }
        }
        Err(TuneError::Contended)
    }
}
