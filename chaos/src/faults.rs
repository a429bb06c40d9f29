//! The faults, one at a time: each is injected, repaired as its operator or supervisor would,
//! and followed until the stack has recovered; then the truths and the admission rate are
//! checked before the next.

use crate::checks::{self, RateCheck};
use crate::stack::{metric_sum, Node, Stack};
use crate::{Options, Plan};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The edge [`Fault::KillEdge`] kills: its fans' connections are refused until it is back.
pub const KILLED_EDGE: usize = 1;
/// A supervisor's first restart delay (as `scripts/up` and the systemd units use).
const RESTART_DELAY: Duration = Duration::from_secs(1);
/// The stack must have recovered this long after a repair.
const RECOVER_WITHIN: Duration = Duration::from_secs(60);

/// A way the on-sale's parts fail.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// `kill -9` an origin while fans hold seats and pay.
    KillOrigin,
    /// `kill -9` an edge with fans connected to it.
    KillEdge,
    /// Redis restarted (`SHUTDOWN`, then started from its append-only file).
    RestartRedis,
    /// PostgreSQL restarted in fast mode (open transactions rolled back, connections closed).
    RestartPostgres,
    /// `kill -9` the seat-map builder holding the build lease.
    KillBuilderLeader,
    /// An edge's connections to Redis cut, and new ones refused, for a while.
    CutEdgeFromRedis,
    /// An origin's PostgreSQL connections stall (bytes held both ways) for a while.
    StallOriginPostgres,
}

impl Fault {
    /// Every fault, in the order the run injects them.
    pub const ALL: [Fault; 7] = [
        Fault::KillOrigin,
        Fault::KillEdge,
        Fault::RestartRedis,
        Fault::RestartPostgres,
        Fault::KillBuilderLeader,
        Fault::CutEdgeFromRedis,
        Fault::StallOriginPostgres,
    ];
}

/// One fault as it happened.
#[derive(Debug, Serialize)]
pub struct FaultReport {
    /// Which fault.
    pub fault: Fault,
    /// The part it hit.
    pub target: String,
    /// Since the run began.
    pub injected_at_s: f64,
    /// From injection to the repair (restart started, link restored).
    pub repaired_after_s: f64,
    /// From injection until every part was ready and fans' requests went through each edge
    /// again (for the builder leader: until a builder built again).
    pub recovered_after_s: f64,
    /// The admission rate after the repair.
    pub admission_rate: RateCheck,
    /// Truths broken after recovery (must be none).
    pub broken: Vec<String>,
}

impl Fault {
    /// Injects the fault, repairs it, waits for recovery and checks the truths.
    pub async fn run(
        self,
        stack: &mut Stack,
        options: &Options,
        plan: &Plan,
        http: &reqwest::Client,
        started: Instant,
    ) -> FaultReport {
        let injected = Instant::now();
        tracing::info!(fault = ?self, "injecting");
        let mut builds_before = None;
        let target = match self {
            Fault::KillOrigin => kill_and_restart(&mut stack.origins[0]).await,
            Fault::KillEdge => kill_and_restart(&mut stack.edges[KILLED_EDGE]).await,
            Fault::RestartRedis => {
                stack.redis.restart().await;
                "redis".to_owned()
            }
            Fault::RestartPostgres => {
                let status = tokio::process::Command::new("sh")
                    .args(["-c", &options.restart_postgres])
                    .status()
                    .await
                    .expect("run the PostgreSQL restart command");
                assert!(status.success(), "restarting PostgreSQL failed: {status}");
                "postgresql".to_owned()
            }
            Fault::KillBuilderLeader => {
                let leader = leader(stack, http).await;
                builds_before = Some((leader, builds(stack, 1 - leader, http).await));
                kill_and_restart(&mut stack.builders[leader]).await
            }
            Fault::CutEdgeFromRedis => {
                stack.edge_redis[0].cut();
                tokio::time::sleep(plan.cut).await;
                stack.edge_redis[0].restore();
                format!("{} to redis", stack.edges[0].name)
            }
            Fault::StallOriginPostgres => {
                stack.origin_postgres[1].pause();
                tokio::time::sleep(plan.stall).await;
                stack.origin_postgres[1].resume();
                format!("{} to postgresql", stack.origins[1].name)
            }
        };
        let repaired = Instant::now();
        let deadline = repaired + RECOVER_WITHIN;
        for node in stack.nodes_mut() {
            node.wait_ready(http).await;
        }
        while !probes_pass(stack, http).await {
            assert!(
                Instant::now() < deadline,
                "{self:?}: fans' requests still fail"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some((killed, before)) = builds_before {
            // Either builder may win the lapsed lease: the other, or the killed one restarted
            // (a new holder, its counters from zero).
            while builds(stack, 1 - killed, http).await <= before
                && builds(stack, killed, http).await == 0.0
            {
                assert!(Instant::now() < deadline, "no builder took the lease over");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let recovered = Instant::now();
        let admission_rate = checks::admission_rate(
            stack,
            http,
            plan.admit_per_minute,
            repaired,
            plan.rate_window,
            Duration::from_secs(30),
        )
        .await;
        let mut broken = checks::truths(&stack.db).await;
        broken.extend(checks::reconciliation_breaches(stack, http).await);
        let report = FaultReport {
            fault: self,
            target,
            injected_at_s: (injected - started).as_secs_f64(),
            repaired_after_s: (repaired - injected).as_secs_f64(),
            recovered_after_s: (recovered - injected).as_secs_f64(),
            admission_rate,
            broken,
        };
        tracing::info!(?report, "fault over");
        report
    }
}

/// `kill -9`, then a start after a supervisor's delay; the node's name.
async fn kill_and_restart(node: &mut Node) -> String {
    node.kill().await;
    tokio::time::sleep(RESTART_DELAY).await;
    node.start();
    node.name.clone()
}

/// Whether every edge carries a fan's requests again: two account pages (round robin: one
/// to each origin, never cached) and a join (the waiting room's Redis), each from an address
/// of its own so per-address limits never answer instead.
async fn probes_pass(stack: &Stack, http: &reqwest::Client) -> bool {
    static ATTEMPT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    for public in &stack.edge_public {
        let attempt = ATTEMPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let from = format!("10.255.{}.{}", attempt >> 8 & 255, attempt & 255);
        let page = || {
            http.get(format!("http://{public}/v1/me"))
                .bearer_auth(&stack.probe_session)
                .header("x-forwarded-for", &from)
        };
        let join = http
            .post(format!("http://{public}/v1/waiting-room/sessions"))
            .bearer_auth(&stack.probe_session)
            .header("x-forwarded-for", &from)
            .json(&serde_json::json!({ "show_id": stack.show }));
        for request in [page(), page(), join] {
            let passed = request
                .send()
                .await
                .is_ok_and(|reply| reply.status().is_success());
            if !passed {
                return false;
            }
        }
    }
    true
}

/// Which builder holds the build lease.
async fn leader(stack: &Stack, http: &reqwest::Client) -> usize {
    for _ in 0..100 {
        for (k, builder) in stack.builders.iter().enumerate() {
            if let Some(page) = builder.metrics(http).await {
                if metric_sum(&page, "onsale_seatmap_builder_lease_holder") == 1.0 {
                    return k;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no builder holds the build lease");
}

/// Builds a builder has made since it started.
async fn builds(stack: &Stack, builder: usize, http: &reqwest::Client) -> f64 {
    match stack.builders[builder].metrics(http).await {
        Some(page) => metric_sum(&page, "onsale_seatmap_builder_builds_total"),
        None => 0.0,
    }
}
