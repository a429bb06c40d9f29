//! The virtual waiting room: joins, polls and admissions, answered by the edge.
//!
//! Joining takes a signed-in account (the origin vouches for its session, see
//! [`crate::accounts`]), and an account has one place per show: a second join, from any
//! device or session, gets the same place back. A fan's place is in its queue token (an
//! HS256 JWT whose `sub` is the account): an open-lane token carries the place itself, a
//! pre-queue token its join number, placed by the [`draw`] at the opening. Redis holds the
//! queue's counters and each account's place (`store`); every node runs one admission step
//! per show every `refresh_ms` (`step`) and caches the result as a [`ShowView`], so a poll
//! is answered from memory (`poll`, with the arithmetic in `standing`). Places seen polling
//! are batched into the next step. Only a fan whose turn has come touches Redis, once, to
//! turn its call into an admission session (`session`). An admission whose order is paid
//! is spent: refused at every node's gate until it expires.
//!
//! The rest, one job per file: `join` (a new place, or the same one again), `challenge`
//! (proof of work handed out and checked; the puzzle itself in [`pow`]), `admin` (the
//! operator's view, changes of the admission numbers, pause and resume), `wire` (the typed answers), `refusal` (reasons to
//! problem+json), `cookies`, `metrics`.

mod admin;
mod challenge;
pub(crate) mod cookies;
pub mod draw;
mod join;
mod metrics;
mod poll;
pub mod pow;
mod refusal;
mod rooms;
mod session;
mod standing;
mod step;
mod store;
mod wire;

pub use admin::QueueReport;
pub(crate) use admin::{Operator, TuneError, Tuned};
pub(crate) use refusal::Refusal;
pub(crate) use session::sign_admission;
pub use standing::{QueueStatus, ShowView};
pub(crate) use wire::{ChallengeResponse, JoinRequest, Reply, RoomResponse};

use crate::config::RedisConfig;
use crate::live::Runtime;
use crate::snapshots::SnapshotStore;
use arc_swap::{ArcSwap, ArcSwapOption};
use metrics::RoomMetrics;
use onsale_contract::redis::{Connection, Target};
use refusal::StateError;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

/// A per-show map that every poll reads. Show ids come from configuration and from
/// verified tokens, so a fast seeded hash does.
type ShowMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// Sampled places -> (when the wait was predicted, ms; the predicted wait, s).
type EtaSamples = HashMap<u64, (i64, u64)>;

/// The waiting rooms of every configured show, as this node runs them.
pub struct WaitingRoom {
    views: ArcSwap<ShowMap<Arc<ShowView>>>,
    /// Places seen polling since the last step, per show.
    seen: Mutex<ShowMap<Vec<u64>>>,
    /// Places seen polling that the show's state in Redis lost, per show, to restore at the
    /// next step.
    lost: Mutex<HashMap<String, Vec<store::Lost>>>,
    /// The steps' and the admin API's connection, opened by the step loop.
    redis: ArcSwapOption<Connection>,
    /// Where the step loop reached Redis, and its timeout.
    redis_target: OnceLock<(Target, Duration)>,
    /// The requests' connection (joins, proof of work, claims, spent admissions), opened by
    /// the first request that needs Redis, so on the public listener's runtime: a join's
    /// round trip then never wakes a thread of another runtime.
    request_redis: tokio::sync::OnceCell<Connection>,
    /// Per show, the version of this node's configuration whose file values it last
    /// published, and the sale time they were for.
    published: Mutex<HashMap<String, (u64, i64)>>,
    eta_samples: Mutex<HashMap<String, EtaSamples>>,
    /// Spent admission tokens, by `jti`, until their expiry (Unix s): this node's own at
    /// once, every node's from Redis at each step.
    spent: RwLock<HashMap<String, i64>>,
    /// Per show, the id of the last spent admission read from Redis.
    spent_read: Mutex<HashMap<String, String>>,
    /// Whether the last step failed, so an outage is logged once.
    failing: AtomicBool,
    metrics: RoomMetrics,
}

impl WaitingRoom {
    /// An unconnected waiting room with its metrics in `registry`.
    pub(crate) fn new(registry: &prometheus::Registry) -> Self {
        WaitingRoom {
            views: ArcSwap::default(),
            seen: Mutex::default(),
            lost: Mutex::default(),
            redis: ArcSwapOption::empty(),
            redis_target: OnceLock::new(),
            request_redis: tokio::sync::OnceCell::new(),
            published: Mutex::default(),
            eta_samples: Mutex::default(),
            spent: RwLock::default(),
            spent_read: Mutex::default(),
            failing: AtomicBool::new(false),
            metrics: RoomMetrics::new(registry),
        }
    }

    /// This node's view of `show`'s queue after the last step; `None` for a show without a
    /// waiting room (or before its first step).
    pub fn view(&self, show: &str) -> Option<Arc<ShowView>> {
        self.views.load().get(show).cloned()
    }

    /// [`WaitingRoom::view`], or why there is none: no waiting room for `show`, or one
    /// whose first step has not run yet (the node just started, Redis has not answered it
    /// since, or the show's first snapshot just arrived): a fan retries that shortly.
    pub(crate) fn view_for(
        &self,
        runtime: &Runtime,
        snapshots: &SnapshotStore,
        show: &str,
        now_ms: i64,
    ) -> Result<Arc<ShowView>, Refusal> {
        match self.view(show) {
            Some(view) => Ok(view),
            None if rooms::has_room(&runtime.config.waiting_room, snapshots, show, now_ms) => {
                Err(Refusal::Starting)
            }
            None => Err(Refusal::NoRoom),
        }
    }

    /// Whether the admission token `jti` is spent (its order paid).
    pub(crate) fn is_spent(&self, jti: &str) -> bool {
        self.spent
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(jti)
    }

    fn connection(&self) -> Result<Connection, StateError> {
        self.redis
            .load()
            .as_deref()
            .cloned()
            .ok_or(StateError::NotConnected)
    }

    /// The requests' connection, opened on first use once the step loop has reached Redis.
    async fn request_connection(&self) -> Result<Connection, StateError> {
        let (target, timeout) = self.redis_target.get().ok_or(StateError::NotConnected)?;
        let connection = self
            .request_redis
            .get_or_try_init(|| target.connect(*timeout))
            .await?;
        Ok(connection.clone())
    }

    fn connected(&self) -> bool {
        self.redis.load().is_some()
    }

    /// Connects to Redis; every call then fails after `timeout` rather than wait on a Redis
    /// that is away.
    async fn connect(&self, config: &RedisConfig, timeout: Duration) -> Result<(), StateError> {
        let target = config.target().map_err(redis::RedisError::from)?;
        let connection = target.connect(timeout).await?;
        self.redis.store(Some(Arc::new(connection)));
        // The first target reached stays the requests' (like the connection, it applies at
        // start).
        let _ = self.redis_target.set((target, timeout));
        Ok(())
    }
}
