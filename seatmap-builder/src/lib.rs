//! The seat-map builder: every interval, turns seat states into static, compressed,
//! cacheable documents that the edge (and any CDN) serves, so browsing never touches the
//! origin during an on-sale.
//!
//! [`Builder::build_all`] is one pass (what `seatmap-builder once` runs); [`start`] runs the
//! leased loop with health and metrics endpoints, in-process for tests.

pub mod config;
pub mod documents;
pub mod lease;
pub mod metrics;
pub mod publish;
pub mod status_brotli;

use crate::config::Config;
use crate::documents::{Encoded, Layout, SeatRow};
use crate::lease::Lease;
use crate::metrics::Metrics;
use crate::publish::{RedisTarget, Stamp};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use onsale_contract::snapshot::Kind;
use rand::Rng;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Seat states in layout order, one character each, built by Postgres in one query. An
/// expired hold counts as available whether or not the sweeper has run.
pub const SEAT_STATUS_SQL: &str = "SELECT string_agg(
        CASE WHEN status = 'available' THEN 'A'
             WHEN status = 'held' AND hold_expires_at <= now() THEN 'A'
             WHEN status = 'held' THEN 'H'
             WHEN status = 'sold' THEN 'S'
             ELSE 'X' END, '' ORDER BY layout_idx)
     FROM seat_inventory WHERE show_id = $1";

const LAYOUT_SQL: &str =
    "SELECT sec.id AS section_id, sec.name AS section_name, i.price_tier, s.row_label,
            s.id AS seat_id, s.number, s.x, s.y, s.accessible, s.obstructed
     FROM seat_inventory i
     JOIN seats s ON s.id = i.seat_id
     JOIN sections sec ON sec.venue_id = s.venue_id AND sec.id = s.section_id
     WHERE i.show_id = $1 ORDER BY i.layout_idx";

const SHOWS_SQL: &str = "SELECT id, layout_version FROM shows
     WHERE status IN ('scheduled', 'on_sale', 'sold_out')
       AND on_sale_at <= now() + make_interval(hours => $1)
       AND starts_at > now()
     ORDER BY on_sale_at, id";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("show {0}: {1}")]
    LayoutChanged(Uuid, documents::AvailabilityError),
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid database URL: {0}")]
    Database(sqlx::Error),
    #[error("invalid Redis URL: {0}")]
    Redis(redis::RedisError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What one pass did for one show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowReport {
    pub show_id: Uuid,
    pub layout_etag: String,
    pub layout_changed: bool,
    pub availability_etag: String,
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

pub struct Builder {
    config: Config,
    pool: PgPool,
    redis_client: redis::Client,
    redis: Option<RedisTarget>,
    /// After a failed connect, no new attempt before this: a pass while Redis is away must
    /// not wait on a connect per document.
    redis_retry_at: Option<Instant>,
    metrics: Arc<Metrics>,
    shows: HashMap<Uuid, ShowState>,
}

const REDIS_RECONNECT_HOLD_OFF: Duration = Duration::from_secs(2);

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Builder {
    /// Connects lazily: a builder starts (and keeps serving its last snapshots) while
    /// Postgres or Redis is down.
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
        let redis_client =
            redis::Client::open(config.redis.url.expose()).map_err(StartError::Redis)?;
        Ok(Builder {
            config,
            pool,
            redis_client,
            redis: None,
            redis_retry_at: None,
            metrics,
            shows: HashMap::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A Redis connection, (re)connecting if there is none; `None` while Redis is away.
    pub async fn redis(&mut self) -> Option<&mut RedisTarget> {
        let holding_off = self.redis_retry_at.is_some_and(|at| Instant::now() < at);
        if self.redis.is_none() && !holding_off {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Duration::from_millis(500))
                .set_response_timeout(Duration::from_secs(2))
                .set_number_of_retries(0);
            match redis::aio::ConnectionManager::new_with_config(self.redis_client.clone(), config)
                .await
            {
                Ok(conn) => {
                    self.redis = Some(RedisTarget {
                        conn,
                        prefix: self.config.redis.key_prefix.clone(),
                        ttl_ms: self.config.redis.snapshot_ttl_s * 1000,
                    });
                }
                Err(error) => {
                    self.redis_retry_at = Some(Instant::now() + REDIS_RECONNECT_HOLD_OFF);
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

    /// One pass over every show in the build window. A database error fails the pass and
    /// publishes nothing for the show it hit: a document is published whole or not at all.
    pub async fn build_all(&mut self, now_ms: i64) -> Result<Vec<ShowReport>, BuildError> {
        let shows: Vec<(Uuid, i32)> = sqlx::query_as(SHOWS_SQL)
            .bind(self.config.build.lookahead_hours as i32)
            .fetch_all(&self.pool)
            .await?;
        let mut reports = Vec::with_capacity(shows.len());
        for (show_id, layout_version) in shows {
            reports.push(self.build_show(show_id, layout_version, now_ms).await?);
        }
        Ok(reports)
    }

    /// Builds and publishes one show: what a pass does per show, exposed for benchmarks.
    pub async fn build_show(
        &mut self,
        show_id: Uuid,
        layout_version: i32,
        now_ms: i64,
    ) -> Result<ShowReport, BuildError> {
        let started = Instant::now();
        let show = show_id.to_string();
        let next_build_at_ms = now_ms + self.config.interval().as_millis() as i64;

        let cached = self.shows.get(&show_id).and_then(|s| s.layout.clone());
        let layout = match cached {
            Some(layout) if layout.0.layout_version == layout_version => layout,
            _ => {
                let seats: Vec<SeatRow> = sqlx::query_as(LAYOUT_SQL)
                    .bind(show_id)
                    .fetch_all(&self.pool)
                    .await?;
                let layout = documents::layout(&show, layout_version, &seats);
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

        let seat_status: Option<String> = sqlx::query_scalar(SEAT_STATUS_SQL)
            .bind(show_id)
            .fetch_one(&self.pool)
            .await?;
        let seat_status = seat_status.unwrap_or_default();
        let availability =
            match documents::availability(&show, layout, &seat_status, now_ms, next_build_at_ms) {
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
        let show = show_id.to_string();
        let known_in_redis = self
            .shows
            .get(&show_id)
            .and_then(|s| s.in_redis.get(&kind).cloned());
        let redis_etag = match (known_in_redis, self.redis().await) {
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
            self.redis().await,
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
        let state_etag = match self.redis().await {
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

    fn update_ages(&self, now_ms: i64) {
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

/// Delay before retrying a failed pass: doubling from 250 ms up to the build interval, with
/// ±25% jitter so several builders do not retry in step.
fn backoff(failures: u32, interval: Duration) -> Duration {
    let base = Duration::from_millis(250)
        .saturating_mul(1 << failures.min(16))
        .min(interval);
    base.mul_f64(rand::rng().random_range(0.75..1.25))
}

#[derive(Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

fn http_router(state: HttpState) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(state): State<HttpState>| async move {
                match state.ready.load(Ordering::Relaxed) {
                    true => (StatusCode::OK, "ready"),
                    false => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no build has completed yet",
                    ),
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(state): State<HttpState>| async move {
                (
                    [(header::CONTENT_TYPE, onsale_contract::metrics::CONTENT_TYPE)],
                    onsale_contract::metrics::render(&state.metrics.registry),
                )
                    .into_response()
            }),
        )
        .with_state(state)
}

/// A builder loop running in the background.
pub struct RunningBuilder {
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    http: JoinHandle<()>,
}

impl RunningBuilder {
    /// Stops the loop (releasing the lease if held) and the HTTP listener.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.http.abort();
    }

    /// Kills the loop without releasing its lease, as a crash would.
    pub fn crash(self) {
        self.task.abort();
        self.http.abort();
    }
}

/// Starts the leased build loop and its HTTP listener. `holder` names this builder in the
/// lease (hostname + pid in production).
pub async fn start(config: Config, holder: String) -> Result<RunningBuilder, StartError> {
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let listen = config.http.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;
    let router = http_router(HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    });
    let http = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "builder HTTP listener failed");
        }
    });
    let mut builder = Builder::new(config, metrics.clone())?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move { run_loop(&mut builder, holder, ready, stopped).await });
    tracing::info!(%addr, "seat-map builder running");
    Ok(RunningBuilder {
        addr,
        metrics,
        stop,
        task,
        http,
    })
}

async fn run_loop(
    builder: &mut Builder,
    holder: String,
    ready: Arc<AtomicBool>,
    mut stopped: watch::Receiver<bool>,
) {
    let interval = builder.config().interval();
    // Renew three times per interval with a TTL of two thirds of it: a dead leader's lease
    // lapses and a follower's next tick takes over, all within one interval.
    let tick = interval / 3;
    let lease = Lease::new(
        &builder.config().redis.key_prefix,
        holder,
        (interval * 2 / 3).as_millis().max(1) as u64,
    );
    let mut next_build = Instant::now();
    let mut failures = 0u32;
    loop {
        let leader = match builder.redis().await {
            Some(redis) => match lease.acquire_or_renew(&mut redis.conn).await {
                Ok(held) => held,
                Err(error) => {
                    tracing::warn!(%error, "lease check failed; building alone for the directory output");
                    true
                }
            },
            // Without Redis there is no one to coordinate with and nothing to race for.
            None => true,
        };
        builder.metrics.lease_holder.set(i64::from(leader));
        if leader && Instant::now() >= next_build {
            match builder.build_all(now_ms()).await {
                Ok(reports) => {
                    failures = 0;
                    next_build = Instant::now() + interval;
                    ready.store(true, Ordering::Relaxed);
                    tracing::debug!(shows = reports.len(), "build pass done");
                }
                Err(error) => {
                    builder.metrics.failures.with_label_values(&["build"]).inc();
                    let delay = backoff(failures, interval);
                    failures += 1;
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "build pass failed; the last snapshots stay published");
                    next_build = Instant::now() + delay;
                }
            }
        }
        if !leader {
            // Whoever leads builds now; when we take over, build at once.
            next_build = Instant::now();
        }
        builder.update_ages(now_ms());
        let wake = next_build.min(Instant::now() + tick);
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stopped.wait_for(|stop| *stop) => break,
        }
    }
    if let Some(redis) = builder.redis().await {
        if let Err(error) = lease.release(&mut redis.conn).await {
            tracing::warn!(%error, "could not release the build lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_interval_with_jitter() {
        let interval = Duration::from_secs(30);
        for (failures, base_ms) in [(0, 250.0), (1, 500.0), (3, 2000.0), (10, 30000.0)] {
            let delay = backoff(failures, interval).as_secs_f64() * 1000.0;
            assert!(
                delay >= base_ms * 0.75 && delay <= base_ms * 1.25,
                "{failures}: {delay}"
            );
        }
    }
}
