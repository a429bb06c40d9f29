//! The origin pool: round-robin over the upstreams of the running config, each checked with
//! `GET /readyz`; an origin that fails leaves the rotation until it passes again. Discovery
//! and checks run together on the interval from the live config, so a reload that adds or
//! removes an origin takes effect at the next tick.

use crate::live::Live;
use async_trait::async_trait;
use onsale_contract::tasks::StopSignal;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, Backends, LoadBalancer};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The origins, chosen round-robin among those passing their check.
pub(crate) type Pool = LoadBalancer<RoundRobin>;

struct ConfiguredUpstreams(Arc<Live>);

#[async_trait]
impl ServiceDiscovery for ConfiguredUpstreams {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let upstreams = self.0.load().config.origin.upstreams.clone();
        let backends = upstreams
            .into_iter()
            .map(|addr| Backend {
                addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
                weight: 1,
                ext: Default::default(),
            })
            .collect();
        Ok((backends, HashMap::new()))
    }
}

fn health_check(live: &Live) -> HttpHealthCheck {
    let origin = &live.load().config.origin;
    let mut check = HttpHealthCheck::new("origin", false);
    check.req.set_uri(http::Uri::from_static("/readyz"));
    let timeout = Duration::from_millis(
        origin
            .connect_timeout_ms
            .min(origin.health_check_interval_ms),
    );
    check.peer_template.options.connection_timeout = Some(timeout);
    check.peer_template.options.read_timeout = Some(Duration::from_millis(
        origin.health_check_interval_ms.max(500),
    ));
    check.reuse_connection = true;
    // One slow answer on a busy origin is not an outage: taking the only origin out for an
    // interval would refuse every fan meanwhile. A dead origin's connects fail at once and
    // are retried on another origin until the second check removes it.
    check.consecutive_failure = 2;
    check
}

/// The pool with its backends discovered; unchecked backends count as healthy, so the
/// first requests need not wait for the first round of checks.
pub(crate) fn build(live: Arc<Live>) -> Pool {
    let mut backends = Backends::new(Box::new(ConfiguredUpstreams(live.clone())));
    backends.set_health_check(Box::new(health_check(&live)));
    let pool = LoadBalancer::from_backends(backends);
    use futures_util::FutureExt;
    // Discovery reads the config in memory: it neither waits nor fails.
    pool.update()
        .now_or_never()
        .expect("discovery from config does not wait")
        .expect("discovery from config does not fail");
    pool
}

/// Keeps the pool's membership and health current.
pub struct PoolKeeper {
    pub(crate) pool: Arc<Pool>,
    pub(crate) live: Arc<Live>,
    /// `upstream_healthy{upstream}`.
    pub(crate) healthy: prometheus::IntGaugeVec,
}

impl PoolKeeper {
    /// Rediscovers the origins and checks each once.
    async fn tick(&self) {
        if let Err(error) = self.pool.update().await {
            tracing::warn!(%error, "origin pool update failed");
        }
        self.pool.backends().run_health_check(true).await;
        self.healthy.reset();
        for backend in self.pool.backends().get_backend().iter() {
            let up = self.pool.backends().ready(backend);
            self.healthy
                .with_label_values(&[&backend.addr.to_string()])
                .set(i64::from(up));
        }
    }

    /// Whether some origin passes its health check.
    pub fn any_healthy(&self) -> bool {
        let backends = self.pool.backends();
        backends.get_backend().iter().any(|b| backends.ready(b))
    }

    /// Ticks on the live `origin.health_check_interval_ms` until `stop`.
    pub(crate) async fn run(&self, mut stop: StopSignal) {
        loop {
            self.tick().await;
            let interval =
                Duration::from_millis(self.live.load().config.origin.health_check_interval_ms);
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
