//! The virtual waiting room: joins, polls and admissions, answered by the edge.
//!
//! A fan's place is fixed by its signed queue token: an open-lane token carries the place
//! itself, a pre-queue token its join number, placed by the [`draw`] at the opening. Redis
//! holds the queue's counters ([`store`]); every node runs one admission step per show every
//! `refresh_ms` and caches the result as a [`ShowView`], so a poll is answered from memory.
//! Places seen polling are batched into the next step. Only a fan whose turn has come
//! touches Redis, once, to turn its call into an admission session.

pub mod draw;
pub mod pow;
pub mod store;

use crate::config::{PrequeueOrder, QueueSettings};
use crate::live::{Live, Runtime};
use crate::problem::{self, Code};
use crate::snapshots::SnapshotStore;
use arc_swap::{ArcSwap, ArcSwapOption};
use onsale_contract::backoff::Backoff;
use onsale_contract::clock::Clock;
use onsale_contract::problem::Problem;
use onsale_contract::snapshot::Kind;
use onsale_contract::tasks::StopSignal;
use onsale_contract::tokens::{self, Claims, Lane, TokenType};
use redis::aio::ConnectionManager;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Claim, Joined, Keys};

/// Sampled places whose predicted wait is checked when their turn comes, per show.
const ETA_SAMPLE_EVERY: u64 = 16;
const MAX_ETA_SAMPLES: usize = 10_000;
/// Seconds of call history before the measured outflow is trusted over the configured rate.
const MIN_MEASURED_S: f64 = 5.0;
/// Reconnects to a Redis that is away.
const CONNECT_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// One show's queue as this node last saw it.
#[derive(Debug, Clone)]
pub struct ShowView {
    pub settings: QueueSettings,
    pub state: store::Advanced,
    pub seed: Option<draw::Seed>,
    pub sold_out: bool,
    pub as_of_ms: i64,
}

/// Where a fan stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Standing {
    /// Joined before the opening; placed by the draw when the sale opens.
    PreQueue,
    Queued {
        place: u64,
        position: u64,
        eta_s: Option<u64>,
    },
    /// The serving counter has passed the fan's place.
    Called {
        place: u64,
    },
    SoldOut,
}

impl ShowView {
    /// The fan's place, once known.
    pub fn place(&self, lane: Lane, number: u64) -> Option<u64> {
        match lane {
            Lane::Open => Some(number),
            Lane::PreQueue => {
                let n = self.state.frozen?;
                let join = number.min(n.saturating_sub(1));
                match (self.settings.prequeue_order, &self.seed) {
                    (PrequeueOrder::Random, Some(seed)) if n > 0 => {
                        Some(draw::place(seed, n, join))
                    }
                    (PrequeueOrder::Random, _) => None,
                    (PrequeueOrder::JoinOrder, _) => Some(join),
                }
            }
        }
    }

    /// Fans still present between the serving counter and `place`, from the step's block
    /// counts, interpolated within a block.
    pub fn position(&self, place: u64) -> u64 {
        let serving = self.state.serving;
        let mut start = serving;
        let mut before = 0;
        for &(end, cumulative) in &self.state.blocks {
            if place < end {
                let in_block = cumulative - before;
                let into = place.saturating_sub(start);
                return before + in_block * into / (end - start).max(1);
            }
            start = end;
            before = cumulative;
        }
        match self.state.blocks.last() {
            Some(_) => before + place.saturating_sub(start),
            None => place.saturating_sub(serving),
        }
    }

    /// Fans called per second: measured over the last minute once there are a few seconds
    /// of calls, the configured rate before that; `None` while admission is stopped.
    pub fn outflow_per_s(&self, now_ms: i64) -> Option<f64> {
        if self.state.paused || self.sold_out {
            return None;
        }
        let configured = f64::from(self.settings.admit_per_minute) / 60.0;
        let measured = self.state.first_call_ms.and_then(|first| {
            let window_s = ((now_ms - first) as f64 / 1000.0).min(60.0);
            (window_s >= MIN_MEASURED_S).then(|| self.state.called_last_minute as f64 / window_s)
        });
        match measured {
            Some(rate) if rate > 0.0 => Some(rate),
            Some(_) => None,
            None => Some(configured),
        }
    }

    pub fn standing(&self, lane: Lane, number: u64, now_ms: i64) -> Standing {
        let Some(place) = self.place(lane, number) else {
            return Standing::PreQueue;
        };
        if place < self.state.serving {
            return Standing::Called { place };
        }
        if self.sold_out {
            return Standing::SoldOut;
        }
        let position = self.position(place);
        let eta_s = self
            .outflow_per_s(now_ms)
            .map(|rate| (position as f64 / rate).ceil() as u64);
        Standing::Queued {
            place,
            position,
            eta_s,
        }
    }

    pub fn status(&self, now_ms: i64) -> &'static str {
        if now_ms < self.settings.queue_opens_ms() {
            "closed"
        } else if self.sold_out {
            "sold_out"
        } else if self.state.frozen.is_none() {
            "pre_queue"
        } else if self.state.paused {
            "paused"
        } else {
            "open"
        }
    }
}

/// When to poll next: sooner near the front, later far back, at most about a quarter of the
/// no-show grace (so a polling fan never looks away), spread by ±20% so polls do not
/// arrive in waves.
pub fn poll_after_ms(position: u64, grace_ms: i64, jitter: f64) -> i64 {
    let base: i64 = match position {
        0..100 => 2_000,
        100..1_000 => 5_000,
        _ => 15_000,
    };
    let base = base.min(grace_ms / 4).max(1_000);
    (base as f64 * (0.8 + 0.4 * jitter.clamp(0.0, 1.0))) as i64
}

/// A waiting-room answer: status code, JSON body, cookies to set.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub cookies: Vec<String>,
}

impl Reply {
    fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            body: serde_json::to_vec(body).expect("JSON values serialize"),
            cookies: vec![],
        }
    }
}

/// The waiting-room response of DESIGN, serialized without building a JSON tree.
#[derive(serde::Serialize)]
struct RoomResponse<'a> {
    status: &'static str,
    show_id: &'a str,
    queue_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<u64>,
    /// `null` while no honest estimate exists (admission stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    estimated_wait_s: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    poll_after_ms: Option<i64>,
    opens_at_ms: i64,
    server_time_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    admission_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    admission_expires_at_ms: Option<i64>,
}

/// A join's proof of work.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowAnswer {
    pub challenge: String,
    pub solution: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub show_id: String,
    pub pow: Option<PowAnswer>,
}

/// Per-show waiting-room metrics.
pub struct RoomMetrics {
    pub queue_length: prometheus::IntGaugeVec,
    pub admitted_last_minute: prometheus::IntGaugeVec,
    pub active: prometheus::IntGaugeVec,
    pub no_shows_skipped: prometheus::IntGaugeVec,
    pub joins: prometheus::IntCounterVec,
    pub eta_error: prometheus::HistogramVec,
    pub step_failures: prometheus::IntCounter,
}

impl RoomMetrics {
    pub fn new(registry: &prometheus::Registry) -> Self {
        use onsale_contract::metrics::{counter_vec, histogram_vec, int_gauge_vec, register};
        let show = &["show"];
        RoomMetrics {
            queue_length: int_gauge_vec(
                registry,
                "waiting_room_queue_length",
                "Fans present in the queue behind the serving counter",
                show,
            ),
            admitted_last_minute: int_gauge_vec(
                registry,
                "waiting_room_admitted_last_minute",
                "Admission tokens issued in the last minute, all nodes",
                show,
            ),
            active: int_gauge_vec(
                registry,
                "waiting_room_active",
                "Admitted sessions and unclaimed calls open, all nodes",
                show,
            ),
            no_shows_skipped: int_gauge_vec(
                registry,
                "waiting_room_no_shows_skipped",
                "Places skipped because their fan was away, all nodes",
                show,
            ),
            joins: counter_vec(
                registry,
                "waiting_room_joins_total",
                "Joins on this node by lane",
                &["show", "lane"],
            ),
            eta_error: histogram_vec(
                registry,
                "waiting_room_eta_error_seconds",
                "Absolute error of sampled estimated waits, when the fan's turn came",
                show,
                &[1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0],
            ),
            step_failures: register(
                registry,
                &prometheus::IntCounter::new(
                    "waiting_room_step_failures_total",
                    "Admission steps that failed (Redis away)",
                )
                .expect("static metric"),
            ),
        }
    }
}

/// Why the waiting room's state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the waiting room is not connected to Redis yet")]
    NotConnected,
}

/// Why a waiting-room request is refused; each maps to one problem+json `code`.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("there is no waiting room for this show")]
    NoRoom,
    #[error("the waiting room cannot reach its state right now; retry shortly")]
    Unavailable(#[from] StateError),
    #[error("{0}")]
    QueueTokenRequired(&'static str),
    #[error("this queue token is for another show; join this show's queue")]
    WrongShow,
    #[error("your turn came while you were away, or your admission ended; join again")]
    TurnMissed,
    #[error("get a challenge, solve it, and join with `pow`")]
    PowRequired { show: String, difficulty: u8 },
    #[error("{0}")]
    PowInvalid(#[from] pow::PowError),
    #[error("each challenge admits one join; get a new one")]
    PowReused,
    #[error("this show's waiting room does not ask for proof of work")]
    NoChallenge,
    #[error("show_id is required")]
    ShowIdRequired,
}

impl From<redis::RedisError> for Refusal {
    fn from(error: redis::RedisError) -> Self {
        // Debug only: in an outage every join would log; the step logs the outage once.
        tracing::debug!(%error, "waiting-room state unavailable");
        Refusal::Unavailable(error.into())
    }
}

impl From<&Refusal> for Problem {
    fn from(refusal: &Refusal) -> Problem {
        let join = |p: Problem| p.with("join", tokens::WAITING_ROOM_PATH);
        let detail = refusal.to_string();
        let problem = match refusal {
            Refusal::NoRoom => return problem::show_not_found(detail),
            Refusal::ShowIdRequired => return problem::invalid_query(detail),
            Refusal::Unavailable(_) => {
                Problem::new(503, Code::QueueUnavailable, "Waiting room unavailable")
                    .with("retry_after_s", 2)
            }
            Refusal::QueueTokenRequired(_) => join(Problem::new(
                401,
                Code::QueueTokenRequired,
                "Queue token required",
            )),
            Refusal::WrongShow => join(Problem::new(
                403,
                Code::WrongShow,
                "Queue token is for another show",
            )),
            Refusal::TurnMissed => {
                join(Problem::new(410, Code::TurnMissed, "Your turn has passed"))
            }
            Refusal::PowRequired { show, difficulty } => {
                Problem::new(400, Code::PowRequired, "Proof of work required")
                    .with(
                        "challenge",
                        format!("/v1/waiting-room/challenge?show_id={show}"),
                    )
                    .with("difficulty", *difficulty)
            }
            Refusal::PowInvalid(_) => {
                Problem::new(400, Code::PowInvalid, "Proof of work not accepted")
            }
            Refusal::PowReused => Problem::new(409, Code::PowReused, "Challenge already used"),
            Refusal::NoChallenge => Problem::new(404, Code::NoChallenge, "No proof of work here"),
        };
        problem.with_detail(detail)
    }
}

fn cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{secure}")
}

/// Sampled places -> (when the wait was predicted, ms; the predicted wait, s).
type EtaSamples = HashMap<u64, (i64, u64)>;

pub struct WaitingRoom {
    views: ArcSwap<HashMap<String, Arc<ShowView>>>,
    /// Places seen polling since the last step, per show.
    seen: Mutex<HashMap<String, Vec<u64>>>,
    redis: ArcSwapOption<ConnectionManager>,
    /// The settings this node last published per show (from its file).
    published: Mutex<HashMap<String, QueueSettings>>,
    eta_samples: Mutex<HashMap<String, EtaSamples>>,
    /// Whether the last step failed, so an outage is logged once.
    failing: AtomicBool,
    pub metrics: RoomMetrics,
}

impl WaitingRoom {
    pub fn new(registry: &prometheus::Registry) -> Self {
        WaitingRoom {
            views: ArcSwap::default(),
            seen: Mutex::default(),
            redis: ArcSwapOption::empty(),
            published: Mutex::default(),
            eta_samples: Mutex::default(),
            failing: AtomicBool::new(false),
            metrics: RoomMetrics::new(registry),
        }
    }

    pub fn view(&self, show: &str) -> Option<Arc<ShowView>> {
        self.views.load().get(show).cloned()
    }

    fn connection(&self) -> Result<ConnectionManager, StateError> {
        self.redis
            .load()
            .as_deref()
            .cloned()
            .ok_or(StateError::NotConnected)
    }

    /// Connects to Redis; every call then fails after `timeout` rather than wait on a Redis
    /// that is away.
    pub async fn connect(&self, url: &str, timeout: Duration) -> Result<(), StateError> {
        let manager = onsale_contract::redis::connect(url, timeout).await?;
        self.redis.store(Some(Arc::new(manager)));
        Ok(())
    }

    /// Connects to Redis (retrying), then steps every show every `waiting_room.refresh_ms`
    /// until `stop`.
    pub async fn run(
        &self,
        live: &Live,
        snapshots: &SnapshotStore,
        clock: &Clock,
        mut stop: StopSignal,
    ) {
        let mut attempt = 0;
        while self.redis.load().is_none() {
            let config = live.load().config.clone();
            let timeout = Duration::from_millis(config.waiting_room.redis_timeout_ms);
            if let Err(error) = self.connect(config.redis.url.expose(), timeout).await {
                tracing::warn!(%error, "waiting room cannot reach Redis; retrying");
                attempt += 1;
                tokio::select! {
                    _ = tokio::time::sleep(CONNECT_BACKOFF.delay(attempt)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
        loop {
            let runtime = live.load();
            self.step(&runtime, snapshots, clock.now_ms()).await;
            let interval = Duration::from_millis(runtime.config.waiting_room.refresh_ms);
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// One admission step for every configured show, and a fresh view of each.
    pub async fn step(&self, runtime: &Runtime, snapshots: &SnapshotStore, now_ms: i64) {
        let room = &runtime.config.waiting_room;
        let mut views = HashMap::with_capacity(room.shows.len());
        for (show, file_settings) in &room.shows {
            let previous = self.view(show);
            let result = self
                .step_show(
                    runtime,
                    show,
                    file_settings,
                    previous.as_deref(),
                    snapshots,
                    now_ms,
                )
                .await;
            match result {
                Ok(view) => {
                    if self.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!("waiting-room steps succeed again");
                    }
                    self.observe(show, &view, now_ms);
                    views.insert(show.clone(), Arc::new(view));
                }
                Err(error) => {
                    self.metrics.step_failures.inc();
                    // Once per outage, not every refresh; the counter keeps the rest.
                    if !self.failing.swap(true, Ordering::Relaxed) {
                        tracing::warn!(%show, %error, "waiting-room steps failing; polls use the last view");
                    }
                    if let Some(previous) = previous {
                        views.insert(show.clone(), previous);
                    }
                }
            }
        }
        self.views.store(Arc::new(views));
    }

    async fn step_show(
        &self,
        runtime: &Runtime,
        show: &str,
        file_settings: &QueueSettings,
        previous: Option<&ShowView>,
        snapshots: &SnapshotStore,
        now_ms: i64,
    ) -> Result<ShowView, StateError> {
        let mut conn = self.connection()?;
        let keys = Keys::new(&runtime.config.redis.key_prefix, show);
        let unpublished = self.published.lock().expect("lock").get(show) != Some(file_settings);
        if unpublished {
            let version = store::publish(&mut conn, &keys, file_settings).await?;
            tracing::info!(%show, version, "waiting-room settings published");
            self.published
                .lock()
                .expect("lock")
                .insert(show.to_owned(), file_settings.clone());
        }
        let settings = previous.map_or(file_settings, |v| &v.settings);
        let sold_out = snapshots
            .get(show, Kind::Availability)
            .and_then(|s| s.open_seats)
            == Some(0);
        let mut seen = self
            .seen
            .lock()
            .expect("lock")
            .remove(show)
            .unwrap_or_default();
        seen.sort_unstable();
        seen.dedup();
        let step = store::Step {
            settings,
            now_ms,
            sold_out,
            max_steps: runtime.config.waiting_room.max_steps_per_refresh,
            known_version: previous.map_or(0, |v| v.state.version),
            seen: &seen,
        };
        let state = match store::advance(&mut conn, &keys, step).await {
            Ok(state) => state,
            Err(error) => {
                // Not lost: those fans are seen again at their next poll.
                return Err(error.into());
            }
        };
        let settings = match &state.settings_json {
            Some(json) => serde_json::from_str(json).unwrap_or_else(|error| {
                tracing::error!(%show, %error, "unreadable settings in Redis; using the file's");
                file_settings.clone()
            }),
            None => settings.clone(),
        };
        let seed = hex::decode(&state.seed_hex)
            .ok()
            .and_then(|b| draw::Seed::try_from(b).ok());
        if let (Some(seed), None) = (&seed, previous.and_then(|v| v.seed)) {
            // The commitment, in the log before the sale opens; the seed after the draw
            // is on the admin listener.
            tracing::info!(%show, seed_sha256 = %draw::commitment(seed), "pre-queue draw seed committed");
        }
        Ok(ShowView {
            settings,
            state,
            seed,
            sold_out,
            as_of_ms: now_ms,
        })
    }

    /// Per-show gauges, and the ETA samples whose turn has come.
    fn observe(&self, show: &str, view: &ShowView, now_ms: i64) {
        let m = &self.metrics;
        let label = &[show];
        let present = view.state.blocks.last().map_or(0, |b| b.1);
        m.queue_length.with_label_values(label).set(present as i64);
        m.admitted_last_minute
            .with_label_values(label)
            .set(view.state.issued_last_minute as i64);
        m.active
            .with_label_values(label)
            .set(view.state.active as i64);
        m.no_shows_skipped
            .with_label_values(label)
            .set(view.state.skipped as i64);
        let mut samples = self.eta_samples.lock().expect("lock");
        if let Some(samples) = samples.get_mut(show) {
            let histogram = m.eta_error.with_label_values(label);
            samples.retain(|&place, &mut (at_ms, eta_s)| {
                if place >= view.state.serving {
                    return true;
                }
                let waited_s = (now_ms - at_ms) as f64 / 1000.0;
                histogram.observe((waited_s - eta_s as f64).abs());
                false
            });
        }
    }

    fn sample_eta(&self, show: &str, place: u64, eta_s: u64, now_ms: i64) {
        if !place.is_multiple_of(ETA_SAMPLE_EVERY) {
            return;
        }
        let mut samples = self.eta_samples.lock().expect("lock");
        let samples = samples.entry(show.to_owned()).or_default();
        if samples.len() < MAX_ETA_SAMPLES {
            samples.entry(place).or_insert((now_ms, eta_s));
        }
    }

    fn mark_seen(&self, show: &str, place: u64) {
        let mut seen = self.seen.lock().expect("lock");
        match seen.get_mut(show) {
            Some(places) => places.push(place),
            None => {
                seen.insert(show.to_owned(), vec![place]);
            }
        }
    }

    /// The queue token's claims, if valid and for `show` (when given).
    fn queue_claims(
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

    /// `POST /v1/waiting-room/sessions`.
    pub async fn join(
        &self,
        runtime: &Runtime,
        request: JoinRequest,
        presented: Option<&str>,
        now_ms: i64,
    ) -> Result<Reply, Refusal> {
        let show = request.show_id.as_str();
        let view = self.view(show).ok_or(Refusal::NoRoom)?;
        if now_ms < view.settings.queue_opens_ms() {
            return Ok(Reply::json(
                200,
                &json!({
                    "status": "closed",
                    "show_id": show,
                    "opens_at_ms": view.settings.queue_opens_ms(),
                    "server_time_ms": now_ms,
                }),
            ));
        }
        // The same place for a fan already in this show's queue, whatever it does.
        if let Some(claims) = presented
            .and_then(|t| Self::queue_claims(runtime, Some(t), now_ms).ok())
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
        let (lane, number) = match joined {
            Joined::PreQueue(n) => (Lane::PreQueue, n),
            Joined::Open(n) => (Lane::Open, n),
        };
        let lane_label = match lane {
            Lane::PreQueue => "pre_queue",
            Lane::Open => "open",
        };
        self.metrics
            .joins
            .with_label_values(&[show, lane_label])
            .inc();
        let now_s = now_ms / 1000;
        let claims = Claims {
            iss: runtime.signer.issuer().to_owned(),
            sub: tokens::random_id(),
            show: show.to_owned(),
            typ: TokenType::Queue,
            iat: now_s,
            exp: now_s + runtime.config.waiting_room.queue_token_ttl_s as i64,
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
            runtime.config.waiting_room.queue_token_ttl_s as i64,
            runtime.config.waiting_room.cookie_secure,
        ));
        Ok(reply)
    }

    async fn check_pow(
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
        let mut conn = self.connection()?;
        let keys = Keys::new(&runtime.config.redis.key_prefix, show);
        if !store::spend_challenge(&mut conn, &keys, &nonce, expires_ms - now_ms).await? {
            return Err(Refusal::PowReused);
        }
        Ok(())
    }

    /// `GET /v1/waiting-room/sessions/current`.
    pub async fn poll(
        &self,
        runtime: &Runtime,
        token: Option<&str>,
        show_param: Option<&str>,
        now_ms: i64,
    ) -> Result<Reply, Refusal> {
        let claims = Self::queue_claims(runtime, token, now_ms)?;
        if show_param.is_some_and(|s| s != claims.show) {
            return Err(Refusal::WrongShow);
        }
        let view = self.view(&claims.show).ok_or(Refusal::NoRoom)?;
        self.answer(runtime, &view, &claims, token, now_ms).await
    }

    /// The waiting-room response for a fan holding `claims`.
    async fn answer(
        &self,
        runtime: &Runtime,
        view: &ShowView,
        claims: &Claims,
        queue_token: Option<&str>,
        now_ms: i64,
    ) -> Result<Reply, Refusal> {
        let (Some(number), Some(lane)) = (claims.queue_no, claims.lane) else {
            return Err(Refusal::QueueTokenRequired(
                "the queue token carries no place",
            ));
        };
        let settings = &view.settings;
        let mut body = RoomResponse {
            status: "queued",
            show_id: &claims.show,
            queue_token,
            position: None,
            estimated_wait_s: None,
            poll_after_ms: None,
            opens_at_ms: settings.sale_opens_ms(),
            server_time_ms: now_ms,
            admission_token: None,
            admission_expires_at_ms: None,
        };
        let mut cookies = Vec::new();
        let jitter = rand::random::<f64>();
        let admission;
        match view.standing(lane, number, now_ms) {
            Standing::PreQueue => {
                let until_open = (settings.sale_opens_ms() - now_ms).max(1_000);
                body.status = "pre_queue";
                body.poll_after_ms =
                    Some(until_open.min(poll_after_ms(u64::MAX, settings.grace_ms(), jitter)));
            }
            Standing::SoldOut => {
                body.status = "sold_out";
                body.poll_after_ms = Some(poll_after_ms(u64::MAX, settings.grace_ms(), jitter));
            }
            Standing::Queued {
                place,
                position,
                eta_s,
            } => {
                self.mark_seen(&claims.show, place);
                if let Some(eta) = eta_s {
                    self.sample_eta(&claims.show, place, eta, now_ms);
                }
                body.position = Some(position);
                body.estimated_wait_s = Some(eta_s);
                body.poll_after_ms = Some(poll_after_ms(position, settings.grace_ms(), jitter));
            }
            Standing::Called { place } => {
                let mut conn = self.connection()?;
                let keys = Keys::new(&runtime.config.redis.key_prefix, &claims.show);
                let ttl_ms = settings.session_ttl_s as i64 * 1000;
                let claim = store::claim(&mut conn, &keys, place, now_ms, ttl_ms).await?;
                let Claim::Admitted { expires_ms } = claim else {
                    return Err(Refusal::TurnMissed);
                };
                let now_s = now_ms / 1000;
                admission = runtime.signer.sign(&Claims {
                    iss: runtime.signer.issuer().to_owned(),
                    sub: claims.sub.clone(),
                    show: claims.show.clone(),
                    typ: TokenType::Admit,
                    iat: now_s,
                    exp: expires_ms / 1000,
                    jti: tokens::random_id(),
                    queue_no: Some(place),
                    lane: None,
                });
                cookies.push(cookie(
                    tokens::ADMIT_COOKIE,
                    &admission,
                    (expires_ms - now_ms) / 1000,
                    runtime.config.waiting_room.cookie_secure,
                ));
                body.status = "admitted";
                body.position = Some(0);
                body.estimated_wait_s = Some(Some(0));
                body.admission_token = Some(&admission);
                body.admission_expires_at_ms = Some(expires_ms / 1000 * 1000);
            }
        }
        Ok(Reply {
            status: 200,
            body: serde_json::to_vec(&body).expect("a response serializes"),
            cookies,
        })
    }

    /// `GET /v1/waiting-room/challenge?show_id=`.
    pub fn challenge(
        &self,
        runtime: &Runtime,
        show: Option<&str>,
        now_ms: i64,
    ) -> Result<Reply, Refusal> {
        let show = show.ok_or(Refusal::ShowIdRequired)?;
        let view = self.view(show).ok_or(Refusal::NoRoom)?;
        let difficulty = view.settings.pow_difficulty;
        if difficulty == 0 {
            return Err(Refusal::NoChallenge);
        }
        let challenge = pow::challenge(&runtime.pow_key, show, now_ms, rand::random());
        Ok(Reply::json(
            200,
            &json!({
                "show_id": show,
                "challenge": challenge,
                "difficulty": difficulty,
                "expires_at_ms": now_ms + pow::CHALLENGE_TTL_MS,
                "server_time_ms": now_ms,
            }),
        ))
    }

    /// Ends the admitted session behind `claims` (its order confirmed).
    pub async fn end_session(&self, prefix: &str, claims: &Claims) {
        let (Some(place), Ok(mut conn)) = (claims.queue_no, self.connection()) else {
            return;
        };
        let keys = Keys::new(prefix, &claims.show);
        if let Err(error) = store::end_session(&mut conn, &keys, place).await {
            tracing::warn!(%error, show = %claims.show, "could not end an admitted session");
        }
    }

    /// `POST /admin/shows/{id}/pause` and `/resume`.
    pub async fn set_paused(
        &self,
        prefix: &str,
        show: &str,
        paused: bool,
    ) -> Result<u64, StateError> {
        let mut conn = self.connection()?;
        Ok(store::set_paused(&mut conn, &Keys::new(prefix, show), paused).await?)
    }

    /// `GET /admin/shows/{id}/queue`.
    pub fn admin_view(&self, show: &str, now_ms: i64) -> Option<Value> {
        let view = self.view(show)?;
        let state = &view.state;
        let s = &view.settings;
        let drawn = state.frozen.is_some();
        Some(json!({
            "show_id": show,
            "status": view.status(now_ms),
            "paused": state.paused,
            "sold_out": view.sold_out,
            "settings_version": state.version,
            "admit_per_minute": s.admit_per_minute,
            "max_active": s.max_active,
            "session_ttl_s": s.session_ttl_s,
            "no_show_grace_s": s.no_show_grace_s,
            "pow_difficulty": s.pow_difficulty,
            "queue_opens_at_ms": s.queue_opens_ms(),
            "sale_opens_at_ms": s.sale_opens_ms(),
            "prequeue_order": s.prequeue_order,
            "queue_length": state.blocks.last().map_or(0, |b| b.1),
            "joined": state.total.max(state.pre_count),
            "serving": state.serving,
            "active": state.active,
            "admitted_last_minute": state.issued_last_minute,
            "called_last_minute": state.called_last_minute,
            "no_shows_skipped": state.skipped,
            "prequeue_size": state.frozen.unwrap_or(state.pre_count),
            "seed_sha256": view.seed.as_ref().map(draw::commitment),
            // Revealed once the draw has happened, so anyone can recompute the order.
            "seed": drawn.then(|| view.seed.map(hex::encode)).flatten(),
            "as_of_ms": view.as_of_ms,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn settings() -> QueueSettings {
        QueueSettings {
            admit_per_minute: 600,
            max_active: 100,
            session_ttl_s: 600,
            queue_opens_at: Utc.timestamp_millis_opt(0).unwrap(),
            sale_opens_at: Utc.timestamp_millis_opt(1_000).unwrap(),
            prequeue_order: PrequeueOrder::Random,
            no_show_grace_s: 60,
            pow_difficulty: 0,
            paused: false,
        }
    }

    fn view(state: store::Advanced) -> ShowView {
        ShowView {
            settings: settings(),
            state,
            seed: Some([3; 32]),
            sold_out: false,
            as_of_ms: 0,
        }
    }

    #[test]
    fn positions_leave_out_absent_fans() {
        // Counter at 100; places 100..200 hold 10 present fans, 200..300 hold 50.
        let v = view(store::Advanced {
            serving: 100,
            total: 300,
            frozen: Some(0),
            blocks: vec![(200, 10), (300, 60)],
            ..Default::default()
        });
        assert_eq!(v.position(100), 0);
        assert_eq!(v.position(150), 5);
        assert_eq!(v.position(200), 10);
        assert_eq!(v.position(250), 35);
        assert_eq!(v.position(400), 160);
    }

    #[test]
    fn pre_queue_places_come_from_the_draw_once_frozen() {
        let mut v = view(store::Advanced::default());
        assert_eq!(v.standing(Lane::PreQueue, 3, 0), Standing::PreQueue);
        v.state.frozen = Some(10);
        v.state.total = 10;
        let place = draw::place(&[3; 32], 10, 3);
        assert_eq!(v.place(Lane::PreQueue, 3), Some(place));
        v.state.serving = place + 1;
        assert_eq!(v.standing(Lane::PreQueue, 3, 0), Standing::Called { place });
        v.settings.prequeue_order = PrequeueOrder::JoinOrder;
        assert_eq!(v.place(Lane::PreQueue, 3), Some(3));
    }

    #[test]
    fn the_eta_follows_measured_outflow() {
        let mut v = view(store::Advanced {
            serving: 0,
            total: 1_000,
            frozen: Some(0),
            first_call_ms: Some(0),
            called_last_minute: 300,
            ..Default::default()
        });
        // 300 calls in the last 60 s: 5/s, not the configured 10/s.
        assert_eq!(v.outflow_per_s(120_000), Some(5.0));
        match v.standing(Lane::Open, 100, 120_000) {
            Standing::Queued { eta_s, .. } => assert_eq!(eta_s, Some(20)),
            other => panic!("{other:?}"),
        }
        // Before five seconds of calls, the configured rate.
        assert_eq!(v.outflow_per_s(2_000), Some(10.0));
        v.state.paused = true;
        assert_eq!(v.outflow_per_s(120_000), None);
    }

    #[test]
    fn polls_spread_and_stay_inside_the_grace() {
        assert_eq!(poll_after_ms(5, 60_000, 0.5), 2_000);
        assert_eq!(poll_after_ms(500, 60_000, 0.0), 4_000);
        assert_eq!(poll_after_ms(50_000, 60_000, 1.0), 18_000);
        assert_eq!(poll_after_ms(50_000, 8_000, 0.5), 2_000);
    }
}
