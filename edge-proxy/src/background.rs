//! The edge's background work, each loop a named Pingora background service: the origin
//! pool's checks, the snapshot feed, the config watcher, the waiting room's steps, the
//! rate limiters' housekeeping and, with HTTPS, the certificate watcher. Each loop stops on Pingora's shutdown and runs under
//! [`supervise`]: a panic is logged, counted in `task_restarts_total{task}` and the loop
//! started again, so no refresher quietly ends while the edge keeps serving stale state.

use crate::snapshots::SnapshotLoader;
use crate::{limits, Shared};
use async_trait::async_trait;
use onsale_contract::tasks::{supervise, StopSignal};
use pingora::server::ShutdownWatch;
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::ServiceWithDependents;
use prometheus::{IntCounter, IntCounterVec};
use std::future::Future;
use std::sync::Arc;

/// A loop made afresh by `make` for each start, run under supervision.
struct Supervised<F> {
    name: &'static str,
    make: F,
    restarts: IntCounter,
}

impl<F> Supervised<F> {
    fn new(name: &'static str, restarts: &IntCounterVec, make: F) -> Self {
        Supervised {
            name,
            make,
            // The label exists from the start, so a restart shows as a rise from zero.
            restarts: restarts.with_label_values(&[name]),
        }
    }
}

#[async_trait]
impl<F, Fut> BackgroundService for Supervised<F>
where
    F: Fn(StopSignal) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    async fn start(&self, shutdown: ShutdownWatch) {
        supervise(
            self.name,
            self.make.clone(),
            shutdown,
            self.restarts.clone(),
        )
        .await;
    }
}

/// A named, supervised background service running `make`'s loop.
fn service<F, Fut>(
    name: &'static str,
    restarts: &IntCounterVec,
    make: F,
) -> Box<dyn ServiceWithDependents>
where
    F: Fn(StopSignal) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Box::new(background_service(
        name,
        Supervised::new(name, restarts, make),
    ))
}

/// A loop's maker from `round`, handed its own clone of `target` at every start.
fn each<T, R, Fut>(target: Arc<T>, round: R) -> impl Fn(StopSignal) -> Fut + Clone
where
    T: Send + Sync + 'static,
    R: Fn(Arc<T>, StopSignal) -> Fut + Clone,
{
    move |stop| round(target.clone(), stop)
}

/// Every background service of the edge sharing `shared`.
pub(crate) fn services(shared: &Arc<Shared>) -> Vec<Box<dyn ServiceWithDependents>> {
    let restarts = &shared.metrics.task_restarts;
    let loader = Arc::new(SnapshotLoader {
        store: shared.snapshots.clone(),
        live: shared.live.clone(),
        redis_up: shared.metrics.redis_up.clone(),
    });
    let mut services = vec![
        service(
            "origin pool",
            restarts,
            each(shared.pool_keeper.clone(), |keeper, stop| async move {
                keeper.run(stop).await
            }),
        ),
        service(
            "snapshot feed",
            restarts,
            each(loader, |loader, stop| async move { loader.run(stop).await }),
        ),
        service(
            "config watcher",
            restarts,
            each(shared.live.clone(), |live, stop| async move {
                live.watch(stop).await
            }),
        ),
        service(
            "waiting room",
            restarts,
            each(shared.clone(), |shared, stop| async move {
                let room = &shared.waiting_room;
                room.run(&shared.live, &shared.snapshots, &shared.clock, stop)
                    .await
            }),
        ),
        service(
            "limiter housekeeping",
            restarts,
            each(shared.clone(), |shared, stop| async move {
                limits::keep(&shared.live, &shared.metrics.ratelimit_keys, stop).await
            }),
        ),
    ];
    if shared.certificates.is_some() {
        services.push(service(
            "certificate watcher",
            restarts,
            each(shared.clone(), |shared, stop| async move {
                if let Some(certificates) = &shared.certificates {
                    certificates.watch(&shared.live, stop).await
                }
            }),
        ));
    }
    services
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;
    use tokio::sync::{watch, Notify};

    /// A round that panics is restarted (after the supervisor's first backoff), counted
    /// under the task's name, and the service still ends on shutdown.
    #[tokio::test]
    async fn a_panicking_round_is_counted_and_restarted_until_shutdown() {
        let metrics = Metrics::new();
        let rounds = Arc::new(AtomicU32::new(0));
        let second_round = Arc::new(Notify::new());
        let service = Supervised::new("flaky", &metrics.task_restarts, {
            let (rounds, second_round) = (rounds.clone(), second_round.clone());
            move |mut stop: StopSignal| {
                let (rounds, second_round) = (rounds.clone(), second_round.clone());
                async move {
                    if rounds.fetch_add(1, Ordering::SeqCst) == 0 {
                        panic!("a bad round");
                    }
                    second_round.notify_one();
                    let _ = stop.wait_for(|stop| *stop).await;
                }
            }
        });
        let restarts = metrics.task_restarts.with_label_values(&["flaky"]);
        assert_eq!(restarts.get(), 0);
        let (shutdown, watch) = watch::channel(false);
        let running = tokio::spawn(async move { service.start(watch).await });
        tokio::time::timeout(Duration::from_secs(10), second_round.notified())
            .await
            .expect("the loop was started again after its panic");
        assert_eq!(restarts.get(), 1);
        shutdown.send_replace(true);
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("the service ends on shutdown")
            .expect("the service itself did not panic");
        assert_eq!(rounds.load(Ordering::SeqCst), 2);
    }
}
