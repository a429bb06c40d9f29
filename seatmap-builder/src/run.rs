//! The leased build loop: every tick (a third of the interval) it acquires or renews the
//! build lease, builds when it leads and a build is due, updates snapshot ages, then sleeps
//! on the injected clock. A failed pass is retried with jittered backoff while
//! `snapshot_age_seconds` keeps growing.

use crate::builder::Builder;
use crate::lease::Lease;
use onsale_contract::backoff::Backoff;
use onsale_contract::clock::Clock;
use onsale_contract::tasks::{StopSignal, Tasks};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The first retry of a failed pass; later ones double up to the build interval.
const RETRY_BASE: Duration = Duration::from_millis(250);

/// The running loop, seen from its owner.
pub(crate) struct LoopHandle {
    clock: Clock,
    abandon: watch::Sender<bool>,
    asleep_until: watch::Receiver<i64>,
}

impl LoopHandle {
    /// Makes the loop stop where it waits without releasing its lease, as a crash would.
    pub(crate) fn abandon(&self) {
        self.abandon.send_replace(true);
    }

    /// Waits until the loop has done everything due at the clock's current time and sleeps
    /// until a later one (or has ended).
    pub(crate) async fn settled(&self) {
        let mut asleep_until = self.asleep_until.clone();
        let _ = asleep_until
            .wait_for(|until| *until > self.clock.now_ms())
            .await;
    }
}

struct BuildLoop {
    /// What each run (the first, and each restart after a panic) starts from afresh.
    seed: Builder,
    lease: Lease,
    clock: Clock,
    interval_ms: i64,
    ready: Arc<AtomicBool>,
    asleep_until: watch::Sender<i64>,
    abandon: watch::Receiver<bool>,
}

/// Starts the loop as the supervised task `build_loop`. `holder` names this builder in the
/// lease.
pub(crate) fn spawn(
    tasks: &mut Tasks,
    builder: Builder,
    holder: String,
    clock: Clock,
    ready: Arc<AtomicBool>,
) -> LoopHandle {
    let interval_ms = (builder.config().interval().as_millis() as i64).max(3);
    // Renew three times per interval with a lifetime of two thirds of it: a dead leader's
    // lease lapses and a follower's next tick takes over, all within one interval.
    let lease = Lease::new(
        &builder.config().redis.key_prefix,
        holder,
        interval_ms * 2 / 3,
    );
    let (abandon, abandoned) = watch::channel(false);
    let (asleep_until, asleep) = watch::channel(i64::MIN);
    let build_loop = Arc::new(BuildLoop {
        seed: builder,
        lease,
        clock: clock.clone(),
        interval_ms,
        ready,
        asleep_until,
        abandon: abandoned,
    });
    tasks.spawn("build_loop", move |stop| build_loop.clone().run(stop));
    LoopHandle {
        clock,
        abandon,
        asleep_until: asleep,
    }
}

impl BuildLoop {
    async fn run(self: Arc<Self>, mut stop: StopSignal) {
        let mut builder = self.seed.fresh();
        let mut abandon = self.abandon.clone();
        let tick_ms = self.interval_ms / 3;
        let retry = Backoff::new(RETRY_BASE, Duration::from_millis(self.interval_ms as u64));
        let mut next_build_ms = self.clock.now_ms();
        let mut failures = 0u32;
        loop {
            let now_ms = self.clock.now_ms();
            let leader = self.lead(&mut builder, now_ms).await;
            builder.metrics().lease_holder.set(i64::from(leader));
            if !leader {
                // Whoever leads builds now; when we take over, build at once. Seeing the
                // lease held by another is this standby's readiness: it can take over.
                next_build_ms = now_ms;
                self.ready.store(true, Ordering::Relaxed);
            } else if now_ms >= next_build_ms {
                match builder.build_all(now_ms).await {
                    Ok(reports) => {
                        failures = 0;
                        next_build_ms = self.clock.now_ms() + self.interval_ms;
                        self.ready.store(true, Ordering::Relaxed);
                        tracing::debug!(shows = reports.len(), "build pass done");
                    }
                    Err(error) => {
                        builder
                            .metrics()
                            .failures
                            .with_label_values(&["build"])
                            .inc();
                        failures += 1;
                        let delay = retry.jittered(failures, &mut rand::rng());
                        tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "build pass failed; the last snapshots stay published");
                        next_build_ms = self.clock.now_ms() + delay.as_millis() as i64;
                    }
                }
            }
            let now_ms = self.clock.now_ms();
            builder.update_ages(now_ms);
            // A leader wakes to renew every tick and to build when due; a follower looks
            // at the lease again in a tick.
            let wake_ms = match leader {
                true => next_build_ms.min(now_ms + tick_ms),
                false => now_ms + tick_ms,
            }
            .max(now_ms + 1);
            self.asleep_until.send_replace(wake_ms);
            tokio::select! {
                // A crash wins over a stop that arrives with it: the lease stays behind.
                biased;
                _ = abandon.wait_for(|abandon| *abandon) => return,
                _ = stop.wait_for(|stop| *stop) => break,
                () = self.clock.sleep_until_ms(wake_ms) => {}
            }
        }
        if let Some(redis) = builder.redis(self.clock.now_ms()).await {
            if let Err(error) = self.lease.release(&mut redis.conn).await {
                tracing::warn!(%error, "could not release the build lease");
            }
        }
    }

    /// Whether this builder leads at `now_ms`.
    async fn lead(&self, builder: &mut Builder, now_ms: i64) -> bool {
        match builder.redis(now_ms).await {
            Some(redis) => match self.lease.acquire_or_renew(&mut redis.conn, now_ms).await {
                Ok(held) => held,
                Err(error) => {
                    tracing::warn!(%error, "lease check failed; building alone for the directory output");
                    true
                }
            },
            // Without Redis there is no one to coordinate with and nothing to race for.
            None => true,
        }
    }
}
