//! One build pass: the shows in the build window, per show its layout (cached per layout
//! version) and its seat states, turned into documents and published to every target that
//! lacks them.
//!
//! The builder has no clock of its own: every pass is handed the time it runs at, so a
//! caller (the loop, `seatmap-builder once`, a test) decides what time it is.

use crate::config::Config;
use crate::documents::{
    self, AvailabilityError, Encoded, Layout, PlacesCount, PlacesRow, SaleTimes, SeatRow,
};
use crate::metrics::Metrics;
use crate::publish::{self, RedisTarget, Stamp};
use crate::sql;
use crate::StartError;
use onsale_contract::snapshot::Kind;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// After a failed connect, no new attempt for this long: a pass while Redis is away must
/// not wait on a connect per document.
const REDIS_RECONNECT_HOLD_OFF_MS: i64 = 2_000;

/// How long a connect or a call to Redis may take. A stadium's documents are a few hundred
/// kilobytes, well within it; a Redis that hangs costs a pass this long, not the pass.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a pass failed. Nothing is published for the show it failed on.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A query failed; the last published snapshots stay.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The seat states no longer match the cached layout; the next pass reloads it.
    #[error("show {0}: {1}")]
    LayoutChanged(Uuid, AvailabilityError),
}

/// A show of the build window, as the builder reads it.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct ShowToBuild {
    /// The show.
    pub show_id: Uuid,
    /// Its venue layout's version.
    pub layout_version: i32,
    /// When its sale opens, Unix ms.
    pub on_sale_at_ms: i64,
    /// When its presale begins, if it has one, Unix ms.
    pub presale_starts_at_ms: Option<i64>,
    /// When its presale ends, Unix ms.
    pub presale_ends_at_ms: Option<i64>,
}

impl ShowToBuild {
    fn sale(&self) -> SaleTimes {
        SaleTimes {
            on_sale_at_ms: self.on_sale_at_ms,
            presale: self.presale_starts_at_ms.zip(self.presale_ends_at_ms),
        }
    }
}

/// What one pass did for one show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowReport {
    /// The show built.
    pub show_id: Uuid,
    /// The content hash of its layout document.
    pub layout_etag: String,
    /// Whether some target received a new layout.
    pub layout_changed: bool,
    /// The content hash of its availability document.
    pub availability_etag: String,
    /// Whether some target received new availability.
    pub availability_changed: bool,
}

#[derive(Default)]
struct ShowState {
    layout: Option<Arc<(Layout, String)>>,
    /// The ETag known to be in Redis per kind; unknown after a failed publish or a restart.
    in_redis: HashMap<Kind, String>,
    in_dir: HashMap<Kind, String>,
    last_built_ms: Option<i64>,
}

/// Builds and publishes snapshots, remembering per show what each target already holds.
pub struct Builder {
    config: Config,
    pool: PgPool,
    redis: Option<RedisTarget>,
    /// After a failed connect, no new attempt before this time.
    redis_retry_at_ms: Option<i64>,
    metrics: Arc<Metrics>,
    shows: HashMap<Uuid, ShowState>,
}

impl Builder {
    /// Connects lazily: a builder starts (and keeps serving its last snapshots) while
    /// Postgres or Redis is down. Only malformed URLs fail here.
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Result<Self, StartError> {
        let read_url = match config.database.replica_url.expose() {
            "" => config.database.url.expose(),
            replica => replica,
        };
        let pool = PgPoolOptions::new()
            .max_connections(config.database.max_connections)
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy(read_url)
            .map_err(StartError::Database)?;
        config
            .redis
            .target()
            .map_err(|error| StartError::Redis(error.into()))?;
        metrics.build_interval.set(config.build.interval_s);
        Ok(Builder {
            config,
            pool,
            redis: None,
            redis_retry_at_ms: None,
            metrics,
            shows: HashMap::new(),
        })
    }

    /// A builder on the same pool that remembers nothing: what a restarted loop starts from.
    pub(crate) fn fresh(&self) -> Builder {
        Builder {
            config: self.config.clone(),
            pool: self.pool.clone(),
            redis: None,
            redis_retry_at_ms: None,
            metrics: self.metrics.clone(),
            shows: HashMap::new(),
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A Redis connection, (re)connecting if there is none; `None` while Redis is away.
    pub(crate) async fn redis(&mut self, now_ms: i64) -> Option<&mut RedisTarget> {
        let holding_off = self.redis_retry_at_ms.is_some_and(|at| now_ms < at);
        if self.redis.is_none() && !holding_off {
            let redis = &self.config.redis;
            let connected = async { redis.target()?.connect(REDIS_TIMEOUT).await }.await;
            match connected {
                Ok(conn) => {
                    self.redis = Some(RedisTarget {
                        conn,
                        prefix: self.config.redis.key_prefix.clone(),
                        ttl_ms: self.config.redis.snapshot_ttl_s * 1000,
                    });
                }
                Err(error) => {
                    self.redis_retry_at_ms = Some(now_ms + REDIS_RECONNECT_HOLD_OFF_MS);
                    tracing::warn!(%error, "Redis unreachable; snapshots go to the directory only");
                    self.metrics
                        .failures
                        .with_label_values(&["redis_connect"])
                        .inc();
                }
            }
        }
        self.redis.as_mut()
    }

    /// One pass over every show in the build window, at `now_ms`. A database error fails
    /// the pass and publishes nothing for the show it hit: a document is published whole or
    /// not at all.
    pub async fn build_all(&mut self, now_ms: i64) -> Result<Vec<ShowReport>, BuildError> {
        let shows: Vec<ShowToBuild> = sqlx::query_as(sql::SHOWS)
            .bind(self.config.build.lookahead_hours as i32)
            .fetch_all(&self.pool)
            .await?;
        // A show that left the window (it started, or was cancelled) is built no more: forget
        // it, age and all, so its `snapshot_age_seconds` does not grow for ever.
        let metrics = &self.metrics;
        self.shows.retain(|id, _| {
            let listed = shows.iter().any(|show| show.show_id == *id);
            if !listed {
                let _ = metrics.snapshot_age.remove_label_values(&[&id.to_string()]);
            }
            listed
        });
        let mut reports = Vec::with_capacity(shows.len());
        for show in shows {
            reports.push(self.build_show(show, now_ms).await?);
        }
        Ok(reports)
    }

    /// Builds and publishes one show: what a pass does per show, exposed for benchmarks.
    pub async fn build_show(
        &mut self,
        show: ShowToBuild,
        now_ms: i64,
    ) -> Result<ShowReport, BuildError> {
        let (show_id, layout_version, sale) = (show.show_id, show.layout_version, show.sale());
        // Real elapsed time, whatever clock the pass runs on: this measures the work.
        let started = Instant::now();
        let show = show_id.to_string();
        let next_build_at_ms = now_ms + self.config.interval().as_millis() as i64;

        let cached = self.shows.get(&show_id).and_then(|s| s.layout.clone());
        let layout = match cached {
            Some(layout) if layout.0.layout_version == layout_version => layout,
            _ => {
                let seats: Vec<SeatRow> = sqlx::query_as(sql::LAYOUT)
                    .bind(show_id)
                    .fetch_all(&self.pool)
                    .await?;
                let places: Vec<PlacesRow> = sqlx::query_as(sql::PLACES)
                    .bind(show_id)
                    .fetch_all(&self.pool)
                    .await?;
                let layout = documents::layout(&show, layout_version, &seats, &places);
                let etag = documents::content_hash(&layout.json);
                let layout = Arc::new((layout, etag));
                self.shows.entry(show_id).or_default().layout = Some(layout.clone());
                layout
            }
        };
        let (layout, layout_etag) = (&layout.0, &layout.1);
        let stamp = Stamp {
            built_at_ms: now_ms,
            next_build_at_ms,
            layout_version,
        };
        let layout_changed = self
            .publish(show_id, Kind::Layout, layout_etag, stamp, None, || {
                layout.json.clone()
            })
            .await;

        let seat_status: Option<String> = sqlx::query_scalar(sql::SEAT_STATUS)
            .bind(show_id)
            .fetch_one(&self.pool)
            .await?;
        let seat_status = seat_status.unwrap_or_default();
        let places: Vec<PlacesCount> = sqlx::query_as(sql::PLACES_COUNT)
            .bind(show_id)
            .fetch_all(&self.pool)
            .await?;
        let availability = match documents::availability(
            &show,
            layout,
            &seat_status,
            &places,
            sale,
            now_ms,
            next_build_at_ms,
        ) {
            Ok(availability) => availability,
            Err(error) => {
                // The layout moved under us; rebuild it next pass, publish nothing now.
                tracing::warn!(%show, %error, "availability does not match the cached layout");
                self.metrics
                    .failures
                    .with_label_values(&["layout_mismatch"])
                    .inc();
                self.shows.entry(show_id).or_default().layout = None;
                return Err(BuildError::LayoutChanged(show_id, error));
            }
        };
        let availability_changed = self
            .publish(
                show_id,
                Kind::Availability,
                &availability.content_hash,
                stamp,
                Some(seat_status.len()),
                || availability.json,
            )
            .await;
        self.shows.entry(show_id).or_default().last_built_ms = Some(now_ms);
        self.metrics
            .build_duration
            .with_label_values(&[&show])
            .observe(started.elapsed().as_secs_f64());
        Ok(ShowReport {
            show_id,
            layout_etag: layout_etag.clone(),
            layout_changed,
            availability_etag: availability.content_hash,
            availability_changed,
        })
    }

    /// Publishes a document unless every target already has this content; encodes only then.
    /// Returns whether any target received new content.
    async fn publish(
        &mut self,
        show_id: Uuid,
        kind: Kind,
        etag: &str,
        stamp: Stamp,
        status_len: Option<usize>,
        identity: impl FnOnce() -> Vec<u8>,
    ) -> bool {
        let now_ms = stamp.built_at_ms;
        let show = show_id.to_string();
        let known_in_redis = self
            .shows
            .get(&show_id)
            .and_then(|s| s.in_redis.get(&kind).cloned());
        let redis_etag = match (known_in_redis, self.redis(now_ms).await) {
            (Some(etag), _) => Some(etag),
            (None, Some(redis)) => redis.published_etag(&show, kind).await.ok().flatten(),
            (None, None) => None,
        };
        let out_dir = self.config.build.out_dir.clone();
        let dir_wanted = !out_dir.as_os_str().is_empty();
        let dir_current = self
            .shows
            .get(&show_id)
            .and_then(|s| s.in_dir.get(&kind))
            .is_some_and(|e| e == etag);
        let redis_current = redis_etag.as_deref() == Some(etag);
        let outcome = if redis_current && (dir_current || !dir_wanted) {
            "unchanged"
        } else {
            "changed"
        };
        self.metrics
            .builds
            .with_label_values(&[kind.name(), outcome])
            .inc();

        // Redis already holds this content and only the directory lags: the directory
        // gets Redis's bytes, so one strong ETag never names two different bodies.
        let held_in_redis = match (
            redis_current && dir_wanted && !dir_current,
            self.redis(now_ms).await,
        ) {
            (true, Some(redis)) => redis.published(&show, kind, etag).await.ok().flatten(),
            _ => None,
        };
        let encoded = match outcome {
            _ if held_in_redis.is_some() => held_in_redis,
            "changed" => {
                let build = &self.config.build;
                let quality = match kind {
                    Kind::Layout => build.layout_brotli_quality,
                    Kind::Availability => build.brotli_quality,
                };
                let (etag, identity, gzip_level) = (etag.to_owned(), identity(), build.gzip_level);
                // Compression is CPU work: keep it off the async workers.
                let encode =
                    move || documents::encode(etag, identity, gzip_level, quality, status_len);
                Some(
                    tokio::task::spawn_blocking(encode)
                        .await
                        .expect("encoding does not panic"),
                )
            }
            _ => None,
        };
        if let Some(doc) = &encoded {
            self.record_sizes(&show, kind, doc);
        }
        let state_etag = match self.redis(now_ms).await {
            None => None,
            Some(redis) => {
                let result = match &encoded {
                    Some(doc) if !redis_current => redis.publish(&show, kind, doc, stamp).await,
                    _ => {
                        redis
                            .touch(&show, kind, stamp.built_at_ms, stamp.next_build_at_ms)
                            .await
                    }
                };
                match result {
                    Ok(()) => Some(etag.to_owned()),
                    Err(error) => {
                        tracing::warn!(%show, kind = kind.name(), %error, "publishing to Redis failed");
                        self.metrics
                            .failures
                            .with_label_values(&["redis_publish"])
                            .inc();
                        None
                    }
                }
            }
        };
        let state = self.shows.entry(show_id).or_default();
        match state_etag {
            Some(etag) => state.in_redis.insert(kind, etag),
            None => state.in_redis.remove(&kind),
        };
        if let (Some(doc), true, false) = (&encoded, dir_wanted, dir_current) {
            match publish::write_dir(&out_dir, &show, kind, doc) {
                Ok(()) => {
                    state.in_dir.insert(kind, etag.to_owned());
                }
                Err(error) => {
                    tracing::warn!(%show, kind = kind.name(), %error, "writing the snapshot directory failed");
                    self.metrics
                        .failures
                        .with_label_values(&["dir_write"])
                        .inc();
                }
            }
        }
        encoded.is_some()
    }

    fn record_sizes(&self, show: &str, kind: Kind, doc: &Encoded) {
        for (encoding, bytes) in [
            ("identity", &doc.identity),
            ("gzip", &doc.gzip),
            ("br", &doc.brotli),
        ] {
            self.metrics
                .document_bytes
                .with_label_values(&[show, kind.name(), encoding])
                .set(bytes.len() as i64);
        }
    }

    /// Sets every built show's `snapshot_age_seconds` as of `now_ms`.
    pub(crate) fn update_ages(&self, now_ms: i64) {
        for (show, state) in &self.shows {
            if let Some(built) = state.last_built_ms {
                self.metrics
                    .snapshot_age
                    .with_label_values(&[&show.to_string()])
                    .set((now_ms - built) as f64 / 1000.0);
            }
        }
    }
}
