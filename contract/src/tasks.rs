//! Background tasks that are owned, named, stopped on shutdown, and never die silently.
//!
//! [`Tasks::spawn`] runs a named loop under supervision: when the loop returns it is done;
//! when it panics, the panic is logged with the task's name, counted in
//! `<prefix>_task_restarts_total{task}`, and the loop is started again after a backoff, so
//! one bad round never leaves a sweeper or a relay quietly gone. [`Tasks::shutdown`] tells
//! every loop to stop and waits for each to finish.

use crate::backoff::Backoff;
use prometheus::{IntCounterVec, Registry};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Tells a task to stop: `true` once shutdown has begun.
pub type StopSignal = watch::Receiver<bool>;

/// Delays between restarts of a task that keeps panicking.
const RESTART_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));

/// The background tasks of one running server.
pub struct Tasks {
    stop: watch::Sender<bool>,
    running: Vec<(&'static str, JoinHandle<()>)>,
    restarts: IntCounterVec,
}

impl Tasks {
    /// A set of tasks whose restarts are counted in `registry`.
    pub fn new(registry: &Registry) -> Self {
        Tasks {
            stop: watch::Sender::new(false),
            running: Vec::new(),
            restarts: crate::metrics::counter_vec(
                registry,
                "task_restarts_total",
                "Background tasks restarted after a panic, by task.",
                &["task"],
            ),
        }
    }

    /// A signal that turns `true` when [`Tasks::shutdown`] begins.
    pub fn stop_signal(&self) -> StopSignal {
        self.stop.subscribe()
    }

    /// Runs `task` (made afresh by `make` after each panic) until it returns or shutdown.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, make: F)
    where
        F: Fn(StopSignal) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(supervise(
            name,
            make,
            self.stop.subscribe(),
            self.restarts.with_label_values(&[name]),
        ));
        self.running.push((name, handle));
    }

    /// The names of the tasks started so far, in start order.
    pub fn names(&self) -> Vec<&'static str> {
        self.running.iter().map(|(name, _)| *name).collect()
    }

    /// Stops every task where it stands, as a crash would (its open transactions roll
    /// back), and waits until they are gone.
    pub async fn abort(self) {
        for (_, handle) in self.running {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// Signals every task to stop and waits for all of them.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        for (name, handle) in self.running {
            if let Err(error) = handle.await {
                tracing::error!(task = name, %error, "background task did not stop cleanly");
            }
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `make(stop)` as its own task; restarts it after a panic, returns when it returns
/// or when `stop` turns `true`.
pub async fn supervise<F, Fut>(
    name: &'static str,
    make: F,
    mut stop: StopSignal,
    restarts: prometheus::IntCounter,
) where
    F: Fn(StopSignal) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut panics = 0;
    loop {
        let task = tokio::spawn(make(stop.clone()));
        // The loop goes with its supervisor when that is aborted.
        let _abort = AbortOnDrop(task.abort_handle());
        let outcome = task.await;
        let error = match outcome {
            Ok(()) => return,
            Err(error) => error,
        };
        if !error.is_panic() || *stop.borrow() {
            return;
        }
        panics += 1;
        restarts.inc();
        let delay = RESTART_BACKOFF.delay(panics);
        tracing::error!(task = name, %error, restart_in_ms = delay.as_millis() as u64,
            "background task panicked; restarting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_panicking_task_is_restarted_and_counted_then_stops_on_shutdown() {
        let registry = Registry::new();
        let mut tasks = Tasks::new(&registry);
        let rounds = Arc::new(AtomicU32::new(0));
        let counted = rounds.clone();
        tasks.spawn("flaky", move |mut stop| {
            let rounds = counted.clone();
            async move {
                if rounds.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("a bad round");
                }
                let _ = stop.wait_for(|stop| *stop).await;
            }
        });
        let restarts = tasks.restarts.with_label_values(&["flaky"]);
        tokio::time::timeout(Duration::from_secs(10), async {
            while rounds.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the task was restarted twice");
        assert_eq!(restarts.get(), 2);
        assert_eq!(tasks.names(), vec!["flaky"]);
        tokio::time::timeout(Duration::from_secs(5), tasks.shutdown())
            .await
            .expect("shutdown waits for the task, which stops");
        assert_eq!(
            rounds.load(Ordering::SeqCst),
            3,
            "no restart after shutdown"
        );
    }
}
