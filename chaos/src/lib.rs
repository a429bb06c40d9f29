//! The chaos run: a scripted on-sale through real processes — two edges, two origins, two
//! seat-map builders, PostgreSQL and Redis — while its parts fail one at a time. After each
//! fault and at the end it checks every truth the system promises and writes what fans saw
//! as a JSON report. `scripts/chaos` builds the binaries, starts PostgreSQL and runs it.
//!
//! - [`stack`]: the processes, their configuration and the gates faults pull;
//! - [`traffic`]: the fans, and every request they sent with what came back;
//! - [`faults`]: each fault, its repair and the wait for recovery;
//! - [`checks`]: the truths, the queue's promises and the admission rate.

mod checks;
mod faults;
mod stack;
mod traffic;

use faults::{Fault, FaultReport, KILLED_EDGE};
use futures_util::future::join_all;
use serde::Serialize;
use stack::Stack;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use traffic::{Exchange, Fan, FanRecord, Outcome, Traffic};

/// Where the run finds its parts and the server it runs on.
pub struct Options {
    /// The short form: shorter outages, fewer accounts.
    pub short: bool,
    /// Seeds every fan's choices.
    pub seed: u64,
    /// The built `origin`, `edge-proxy` and `seatmap-builder`.
    pub bin_dir: PathBuf,
    /// The committed configuration files the parts' files are written from.
    pub config_dir: PathBuf,
    /// This crate's directory: the run's on-sale (`demo.toml`).
    pub chaos_dir: PathBuf,
    /// Logs, configuration files and the report go here.
    pub run_dir: PathBuf,
    /// A PostgreSQL role that may create databases.
    pub database_url: String,
    /// A shell command that restarts that PostgreSQL server in fast mode.
    pub restart_postgres: String,
}

/// The size and pace of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The show's admission rate.
    pub admit_per_minute: u32,
    /// Fans who join at the opening.
    pub opening_fans: usize,
    /// Then fans arrive at this rate until the last fault is over: a little faster than
    /// admission, so a queue is always there to admit from.
    pub arrivals_per_minute: u32,
    /// Accounts made for fans before the opening (arrivals stop when they run out).
    pub accounts: usize,
    /// How long an edge is cut from Redis.
    pub cut: Duration,
    /// How long an origin's PostgreSQL connections stall.
    pub stall: Duration,
    /// The admission rate is measured over windows this long.
    pub rate_window: Duration,
    /// The builders' interval: short, so a build after a builder fault comes soon.
    pub build_interval_s: i64,
}

impl Plan {
    /// The full run's plan, or the short form's.
    pub fn new(short: bool) -> Plan {
        let admit_per_minute = 300;
        Plan {
            admit_per_minute,
            opening_fans: 100,
            arrivals_per_minute: admit_per_minute * 11 / 10,
            accounts: if short { 1_500 } else { 3_000 },
            cut: Duration::from_secs(if short { 5 } else { 20 }),
            stall: Duration::from_secs(if short { 5 } else { 10 }),
            rate_window: Duration::from_secs(if short { 8 } else { 10 }),
            build_interval_s: 5,
        }
    }
}

/// What happened, and whether every promise held.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Every promise held.
    pub passed: bool,
    /// The short form ran.
    pub short: bool,
    /// The fans' seed.
    pub seed: u64,
    /// The size and pace.
    pub plan: Plan,
    /// From the first process started to the last check.
    pub duration_s: f64,
    /// Each fault, in the order injected.
    pub faults: Vec<FaultWindow>,
    /// Requests the fans sent.
    pub requests: usize,
    /// Every failed request (5xx, 429, 409 `idempotency_in_flight`, no answer) by what it got.
    pub failed_requests: BTreeMap<String, usize>,
    /// Failed requests no fault caused, each with when it ended: a machine's load can
    /// make a Redis call outlast its timeout, so up to [`OUTSIDE_FAULTS_PER_MILLE`] per
    /// thousand requests pass; more fail the run.
    pub failed_outside_faults: Vec<String>,
    /// Failures that were not clear: a hang past the client's timeout, a 503, 429 or 409
    /// without `Retry-After`, a 5xx that is not problem+json, an edge not answering while it runs.
    pub unclear_failures: Vec<String>,
    /// What fans were told, checked.
    pub fans: checks::FanChecks,
    /// Truths broken at the end, and the origins' reconciliation breaches.
    pub broken_at_end: Vec<String>,
    /// Acknowledged writes lost (must be 0).
    pub data_lost: usize,
    /// Parts that died by themselves.
    pub parts_exited: Vec<String>,
}

/// A fault and what fans saw from its injection until it had passed.
#[derive(Debug, Serialize)]
pub struct FaultWindow {
    /// The fault, its recovery and the checks after it.
    #[serde(flatten)]
    pub fault: FaultReport,
    /// Failed requests the fault caused (their failures began in its window, from injection
    /// to recovery plus 2 s), by what they got.
    pub users_saw: BTreeMap<String, usize>,
    /// From injection to the end of the last of those: how long fans met the fault (at most
    /// [`FANS_RECOVER_WITHIN`] past recovery).
    pub last_failure_after_s: Option<f64>,
}

/// Fans stop meeting a fault this long after the stack has recovered from it, at the latest.
const FANS_RECOVER_WITHIN: Duration = Duration::from_secs(10);

/// Failed requests no fault caused that a run tolerates, per thousand requests.
const OUTSIDE_FAULTS_PER_MILLE: usize = 1;

/// Requests after recovery still count toward the fault that caused them for this long.
const AFTERGLOW: Duration = Duration::from_secs(2);

/// Runs the on-sale through its faults and checks; the report says what held.
pub async fn run(options: Options) -> Report {
    let plan = Plan::new(options.short);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client");
    let started = Instant::now();
    tracing::info!(?plan, "starting the stack");
    let mut stack = Stack::start(&options, &plan, &http).await;
    tracing::info!(accounts = plan.accounts, "making the fans' accounts");
    let mut accounts = Vec::with_capacity(plan.accounts);
    for _ in 0..plan.accounts.div_ceil(50) {
        accounts.extend(join_all((0..50).map(|_| onsale_tests::insert_account(&stack.db))).await);
    }
    let traffic = Arc::new(Traffic::new(
        stack.edge_public.clone(),
        stack.show.clone(),
        stack.sections.clone(),
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let crowd = tokio::spawn(arrive(
        traffic.clone(),
        plan.clone(),
        options.seed,
        accounts,
        stopped,
    ));

    warm_up(&stack).await;
    let mut faults = Vec::new();
    let mut parts_exited = Vec::new();
    for fault in Fault::ALL {
        faults.push(
            fault
                .run(&mut stack, &options, &plan, &http, traffic.started)
                .await,
        );
        parts_exited.extend(stack.restart_exited());
    }
    stop.send_replace(true);
    tracing::info!("faults over; the queue drains");
    let records = crowd.await.expect("the fans' task");
    settle(&stack).await;
    let mut broken_at_end = checks::truths(&stack.db).await;
    broken_at_end.extend(checks::reconciliation_breaches(&stack, &http).await);
    let fans = checks::fans(&records, &stack.db).await;
    parts_exited.extend(stack.restart_exited());

    let exchanges = traffic.exchanges();
    let windows: Vec<(Fault, Duration, Duration)> = faults
        .iter()
        .map(|f| {
            let from = Duration::from_secs_f64(f.injected_at_s);
            let to = from + Duration::from_secs_f64(f.recovered_after_s) + AFTERGLOW;
            (f.fault, from, to)
        })
        .collect();
    let unclear_failures = unclear(&exchanges, &windows);
    let failed = |keep: &dyn Fn(&Exchange) -> bool| {
        let mut counts = BTreeMap::new();
        for exchange in exchanges.iter().filter(|e| e.outcome.failed() && keep(e)) {
            *counts
                .entry(format!("{} {}", exchange.route, exchange.outcome.label()))
                .or_insert(0) += 1;
        }
        counts
    };
    let failed_requests = failed(&|_| true);
    let failed_outside_faults: Vec<String> = exchanges
        .iter()
        .filter(|e| {
            e.outcome.failed()
                && !windows
                    .iter()
                    .any(|(_, from, to)| (*from..=*to).contains(&e.cause))
        })
        .map(|e| describe(e, "no fault"))
        .collect();
    let faults: Vec<FaultWindow> = faults
        .into_iter()
        .zip(&windows)
        .map(|(fault, (_, from, to))| {
            let caused = |e: &&Exchange| e.outcome.failed() && (*from..=*to).contains(&e.cause);
            FaultWindow {
                fault,
                users_saw: failed(&|e| caused(&e)),
                last_failure_after_s: exchanges
                    .iter()
                    .filter(caused)
                    .map(|e| (e.ended() - *from).as_secs_f64())
                    .reduce(f64::max),
            }
        })
        .collect();
    let data_lost = fans.data_lost.len();
    let passed = faults.iter().all(|f| {
        f.fault.broken.is_empty()
            && f.fault.admission_rate.back_within_s.is_some()
            && f.last_failure_after_s.is_none_or(|last| {
                last <= f.fault.recovered_after_s + FANS_RECOVER_WITHIN.as_secs_f64()
            })
    }) && failed_outside_faults.len() * 1000
        <= exchanges.len() * OUTSIDE_FAULTS_PER_MILLE
        && unclear_failures.is_empty()
        && fans.queue_breaches.is_empty()
        && fans.unexpected.is_empty()
        && data_lost == 0
        && broken_at_end.is_empty()
        && parts_exited.is_empty();
    Report {
        passed,
        short: options.short,
        seed: options.seed,
        plan,
        duration_s: started.elapsed().as_secs_f64(),
        faults,
        requests: exchanges.len(),
        failed_requests,
        failed_outside_faults,
        unclear_failures,
        fans,
        broken_at_end,
        data_lost,
        parts_exited,
    }
}

/// Fans join: a crowd at the opening, then a steady stream until told to stop; returns
/// what each saw once all are done.
async fn arrive(
    traffic: Arc<Traffic>,
    plan: Plan,
    seed: u64,
    accounts: Vec<(uuid::Uuid, String)>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<FanRecord> {
    let every = Duration::from_secs(60) / plan.arrivals_per_minute;
    let mut fans = Vec::new();
    let mut next = tokio::time::Instant::now();
    for (index, (account, session)) in accounts.into_iter().enumerate() {
        if *stop.borrow() {
            break;
        }
        let traffic = traffic.clone();
        fans.push(tokio::spawn(async move {
            Fan::new(&traffic, index, seed, account.to_string(), session)
                .run()
                .await
        }));
        if index >= plan.opening_fans {
            next += every;
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stop.changed() => {}
            }
        }
    }
    join_all(fans)
        .await
        .into_iter()
        .map(|fan| fan.expect("a fan's task"))
        .collect()
}

/// Waits until fans are buying: the first faults are meant to hit holds and payments.
async fn warm_up(stack: &Stack) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let confirmed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'confirmed'")
                .fetch_one(&stack.db)
                .await
                .expect("count orders");
        if confirmed >= 10 {
            return;
        }
        assert!(Instant::now() < deadline, "no fan got to buy within 120 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits for refunds and slow payments to finish and the origins to reconcile once more.
async fn settle(stack: &Stack) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while checks::unsettled(&stack.db).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The origins reconcile every 5 s (the run's setting): one more round sees the end state.
    tokio::time::sleep(Duration::from_secs(6)).await;
}

/// Failures a fan could not act on: no answer in time, a 503, 429 or 409 that does not say
/// when to come back, a 5xx without a problem body, or an edge refusing while no fault
/// stopped it.
fn unclear(exchanges: &[Exchange], windows: &[(Fault, Duration, Duration)]) -> Vec<String> {
    let mut found = Vec::new();
    for exchange in exchanges.iter().filter(|e| e.outcome.failed()) {
        let what = match &exchange.outcome {
            Outcome::TimedOut => "no answer within the client's timeout",
            Outcome::Answer {
                status: 503 | 429 | 409,
                retry_after: false,
                ..
            } => "no Retry-After",
            Outcome::Answer {
                status: 500..,
                problem: false,
                ..
            } => "not problem+json",
            Outcome::Refused | Outcome::Broken => {
                let edge_down = windows.iter().any(|(fault, from, to)| {
                    matches!(fault, Fault::KillEdge)
                        && exchange.edge == KILLED_EDGE
                        && (*from..=*to).contains(&exchange.cause)
                });
                if edge_down {
                    continue;
                }
                "edge not answering while it runs"
            }
            _ => continue,
        };
        found.push(describe(exchange, what));
    }
    found
}

/// `12.3s edge-1 poll: 503 queue_unavailable (why)`.
fn describe(exchange: &Exchange, why: &str) -> String {
    format!(
        "{:.1}s edge-{} {}: {} ({why})",
        exchange.ended().as_secs_f64(),
        exchange.edge + 1,
        exchange.route,
        exchange.outcome.label()
    )
}

/// The report in a few lines: a row per fault, then the totals and anything broken.
pub fn summary(report: &Report) -> String {
    let mut out = format!(
        "chaos run ({}, seed {}): {} in {:.0} s, {} requests from {} fans\n",
        if report.short { "short" } else { "full" },
        report.seed,
        if report.passed { "PASSED" } else { "FAILED" },
        report.duration_s,
        report.requests,
        report.fans.fans,
    );
    out += &format!(
        "{:<22} {:<23} {:>9} {:>9} {:>9}  what fans saw\n",
        "fault", "target", "recovered", "last fail", "rate back"
    );
    for window in &report.faults {
        let fault = &window.fault;
        let rate = fault
            .admission_rate
            .back_within_s
            .map_or("never".to_owned(), |s| format!("{s:.1} s"));
        let saw: Vec<String> = window
            .users_saw
            .iter()
            .map(|(what, count)| format!("{count}x {what}"))
            .collect();
        let last = window
            .last_failure_after_s
            .map_or("-".to_owned(), |s| format!("{s:.1} s"));
        out += &format!(
            "{:<22} {:<23} {:>7.1} s {:>9} {:>9}  {}\n",
            serde_json::to_value(fault.fault)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            fault.target,
            fault.recovered_after_s,
            last,
            rate,
            if saw.is_empty() {
                "nothing".to_owned()
            } else {
                saw.join(", ")
            },
        );
        for broken in &fault.broken {
            out += &format!("    broken: {broken}\n");
        }
    }
    let fans = &report.fans;
    out += &format!(
        "fans admitted {}/{}; holds {}, orders {}, paid {}, cancelled {}; data lost {}\n",
        fans.admitted,
        fans.fans,
        fans.holds_acknowledged,
        fans.orders_acknowledged,
        fans.orders_paid,
        fans.orders_cancelled,
        report.data_lost
    );
    let lists: [(&str, &[String]); 7] = [
        ("queue", &fans.queue_breaches),
        ("data lost", &fans.data_lost),
        ("unexpected", &fans.unexpected),
        ("unclear failure", &report.unclear_failures),
        ("broken at end", &report.broken_at_end),
        ("exited", &report.parts_exited),
        ("failed outside faults", &report.failed_outside_faults),
    ];
    for (what, list) in lists {
        for line in list.iter().take(20) {
            out += &format!("  {what}: {line}\n");
        }
        if list.len() > 20 {
            out += &format!("  {what}: ... {} more\n", list.len() - 20);
        }
    }
    out
}
