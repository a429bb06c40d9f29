//! The admission step: every `refresh_ms` this node publishes its file's settings when they
//! changed, hands Redis the places seen polling since the last step, advances each show's
//! serving counter (`advance.lua`) and keeps the result as the show's [`ShowView`], and
//! reads the admissions other nodes saw spent. When a step fails, polls keep the last view
//! and the outage is logged once.

use super::refusal::StateError;
use super::store::{self, Keys};
use super::{draw, QueueStatus, ShowMap, ShowView, WaitingRoom};
use crate::config::QueueSettings;
use crate::live::{Live, Runtime};
use crate::snapshots::SnapshotStore;
use onsale_contract::backoff::Backoff;
use onsale_contract::clock::Clock;
use onsale_contract::redis::Connection;
use onsale_contract::snapshot::Kind;
use onsale_contract::tasks::StopSignal;
use onsale_contract::tokens::Lane;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

/// Lost places restored per show per step; more are reported again at their fans' next polls.
const MAX_LOST_PER_STEP: usize = 1_000;
/// Sampled places whose predicted wait is checked when their turn comes, per show.
const ETA_SAMPLE_EVERY: u64 = 16;
const MAX_ETA_SAMPLES: usize = 10_000;
/// Reconnects to a Redis that is away.
const CONNECT_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

impl WaitingRoom {
    /// Connects to Redis (retrying), then steps every show every `waiting_room.refresh_ms`
    /// until `stop`.
    pub(crate) async fn run(
        &self,
        live: &Live,
        snapshots: &SnapshotStore,
        clock: &Clock,
        mut stop: StopSignal,
    ) {
        let mut attempt = 0;
        while !self.connected() {
            let config = live.load().config.clone();
            let timeout = Duration::from_millis(config.waiting_room.redis_timeout_ms);
            if let Err(error) = self.connect(&config.redis, timeout).await {
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

    /// One admission step for every show with a waiting room, and a fresh view of each.
    pub async fn step(&self, runtime: &Runtime, snapshots: &SnapshotStore, now_ms: i64) {
        let rooms = super::rooms::rooms(&runtime.config.waiting_room, snapshots, now_ms);
        self.forget_expired_spent(now_ms / 1000);
        let mut views = ShowMap::with_capacity_and_hasher(rooms.len(), Default::default());
        for (show, file_settings) in &rooms {
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
        // Once per configuration this node loads (and per sale time, which a default room's
        // schedule follows): a reload puts the file's values back in force over any change
        // made through the admin API since.
        let published = (runtime.version, file_settings.sale_opens_ms());
        let unpublished = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(show)
            != Some(&published);
        if unpublished {
            let json = serde_json::to_string(file_settings)?;
            let version = store::publish(&mut conn, &keys, &json, file_settings.paused).await?;
            tracing::info!(%show, version, "waiting-room settings published");
            self.published
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(show.to_owned(), published);
        }
        let settings = previous.map_or(file_settings, |v| &v.settings);
        let sold_out = snapshots
            .get(show, Kind::Availability)
            .and_then(|s| s.open_seats)
            == Some(0);
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(show)
            .unwrap_or_default();
        seen.sort_unstable();
        seen.dedup();
        self.restore_lost(&mut conn, &keys, show).await?;
        let step = store::Step {
            settings,
            now_ms,
            sold_out,
            max_steps: runtime.config.waiting_room.max_steps_per_refresh,
            known_version: previous.map_or(0, |v| v.state.version),
            seen: &seen,
        };
        // On failure the places seen are not lost: those fans are seen again at their next poll.
        let state = store::advance(&mut conn, &keys, step).await?;
        self.read_spent(&mut conn, &keys, show).await?;
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
        m.admit_per_minute
            .with_label_values(label)
            .set(i64::from(view.settings.admit_per_minute));
        m.max_active
            .with_label_values(label)
            .set(i64::from(view.settings.max_active));
        m.called_last_minute
            .with_label_values(label)
            .set(view.state.called_last_minute as i64);
        m.admitting
            .with_label_values(label)
            .set(i64::from(view.status(now_ms) == QueueStatus::Open));
        // Exported from 0, so the first restore is an increase an alert sees.
        m.places_restored.with_label_values(label);
        let mut samples = self
            .eta_samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
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

    /// Remembers the wait predicted for `place` (every [`ETA_SAMPLE_EVERY`]th), to measure
    /// the prediction when its turn comes.
    pub(super) fn sample_eta(&self, show: &str, place: u64, eta_s: u64, now_ms: i64) {
        if !place.is_multiple_of(ETA_SAMPLE_EVERY) {
            return;
        }
        let mut samples = self
            .eta_samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let samples = samples.entry(show.to_owned()).or_default();
        if samples.len() < MAX_ETA_SAMPLES {
            samples.entry(place).or_insert((now_ms, eta_s));
        }
    }

    /// Restores the places of `show` that polls found lost, before the step counts the queue.
    async fn restore_lost(
        &self,
        conn: &mut Connection,
        keys: &Keys,
        show: &str,
    ) -> Result<(), StateError> {
        let lost = self
            .lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(show);
        let Some(mut lost) = lost else {
            return Ok(());
        };
        lost.sort_unstable_by_key(|place| (place.lane == Lane::Open, place.number));
        lost.dedup_by_key(|place| (place.lane, place.number));
        // On failure they are found again at their fans' next polls.
        let restored = store::restore(conn, keys, &lost).await?;
        if restored > 0 {
            self.metrics
                .places_restored
                .with_label_values(&[show])
                .inc_by(restored);
            tracing::warn!(%show, restored, "queue places restored from fans' queue tokens: Redis came back without them");
        }
        Ok(())
    }

    /// Queues a place that the show's state lost, to restore at the next step.
    pub(super) fn mark_lost(&self, show: &str, place: store::Lost) {
        let mut lost = self.lost.lock().unwrap_or_else(PoisonError::into_inner);
        let places = lost.entry(show.to_owned()).or_default();
        if places.len() < MAX_LOST_PER_STEP {
            places.push(place);
        }
    }

    /// Queues `place` as present for the next step.
    pub(super) fn mark_seen(&self, show: &str, place: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        match seen.get_mut(show) {
            Some(places) => places.push(place),
            None => {
                seen.insert(show.to_owned(), vec![place]);
            }
        }
    }
}
