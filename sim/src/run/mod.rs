//! `onsale-sim run`: the scenario's fans through a real edge. Each fan is a task with its
//! own loopback address, started at its arrival time; the same plans the model draws
//! ([`crate::plan`]), so a run and its prediction concern the same fans. The run ends when
//! every seat is sold, every fan is done, or its time limit passes.
//!
//! - [`fan`]: one fan's requests, as the web app sends them;
//! - [`http`]: one request from a fan's address;
//! - [`seats`]: the seat map and availability fans choose from;
//! - [`tally`]: what the fans saw, live and for the report.
//!
//! The fans' accounts are made in PostgreSQL before the opening, each run's new (see
//! `origin::accounts::rehearsal`). A run needs a show with every seat on sale: a second run
//! against the same show meets the first one's sales, so it refuses to start.

pub mod fan;
pub mod http;
pub mod seats;
pub mod tally;

use crate::model::{when_sold, Minute, Percentiles};
use crate::plan::{self, FanPlan};
use crate::scenario::Scenario;
use ::http::Method;
use fan::{Credentials, Fan};
use indicatif::{ProgressBar, ProgressStyle};
use origin::accounts::rehearsal::{self, RehearsalError};
use origin::config::AccountsConfig;
use seats::{Availability, SeatMap};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tally::{Live, Milestones, Recorded, SeatSample, Tally};
use tokio::sync::watch;

/// The password every rehearsal account shares.
pub const PASSWORD: &str = "rehearsal-night";

/// Where the run's requests of its own (not a fan's) come from: the seat map, and the
/// availability it samples for the report.
const OBSERVER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What a run drives.
pub struct Target {
    /// The edge's public listener.
    pub edge: SocketAddr,
    /// The origin's database, where the fans' accounts are made.
    pub pool: PgPool,
    /// How the origin hashes passwords and how long its sessions last.
    pub accounts: AccountsConfig,
}

/// How a run goes.
pub struct Options {
    /// Draw a progress bar on the terminal.
    pub progress: bool,
    /// The run stops after this long whatever is left.
    pub limit: Duration,
    /// How often the availability snapshot is read for the seats over time.
    pub sample_every: Duration,
    /// Names this run's accounts: lowercase letters, digits, hyphens.
    pub name: String,
}

/// Why a run did not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The show's seat map or availability could not be read.
    #[error("cannot read the show's {what} from the edge at {edge}: {why}")]
    Edge {
        /// Which document.
        what: &'static str,
        /// The edge.
        edge: SocketAddr,
        /// What came back.
        why: String,
    },
    /// The show is not the one the scenario describes.
    #[error("the scenario has {scenario} seats, the show {show_id} has {show}")]
    SeatsDiffer {
        /// The show.
        show_id: String,
        /// The scenario's `room.seats`.
        scenario: u32,
        /// The show's.
        show: u64,
    },
    /// Seats are sold or held already.
    #[error(
        "{taken} of the show's {total} seats are sold or held: rehearse on a show with every \
         seat on sale (scripts/up --fresh)"
    )]
    NotFresh {
        /// Seats not available.
        taken: u64,
        /// All seats.
        total: u64,
    },
    /// The fans' accounts were not made.
    #[error(transparent)]
    Accounts(#[from] RehearsalError),
}

/// What every fan shares.
pub struct Stage {
    edge: SocketAddr,
    show: String,
    password: String,
    map: SeatMap,
    seed: u64,
    tally: Tally,
    over: watch::Receiver<bool>,
}

/// What a run saw, in the model's terms where they meet.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Fans in the scenario.
    pub fans: u64,
    /// Fans whose join was answered.
    pub fans_joined: u64,
    /// Fans who stopped polling, or gave up, before their turn.
    pub fans_left_queue: u64,
    /// Fans admitted to the purchase path.
    pub fans_admitted: u64,
    /// Fans whose order confirmed.
    pub fans_bought: u64,
    /// Seats they bought.
    pub seats_sold: u64,
    /// When the last seat sold, in seconds from the opening; `None` if seats were left.
    pub sellout_s: Option<f64>,
    /// When 95% of the seats had sold.
    pub sold_95_s: Option<f64>,
    /// How long admitted fans waited, from their join's answer to learning of their turn.
    pub wait_s: Percentiles,
    /// Most admissions open at once.
    pub peak_active: u64,
    /// Requests the edge passed to the origin in the busiest second.
    pub peak_origin_per_s: u64,
    /// Requests the fans sent.
    pub requests: u64,
    /// Refused or failed requests by status and code.
    pub errors: BTreeMap<String, u64>,
    /// From the opening to the end.
    pub duration_s: f64,
    /// The simulator's resident memory at its peak, less before the fans, per fan.
    pub memory_per_fan_bytes: u64,
    /// CPU time the simulator used (user and system).
    pub cpu_s: f64,
    /// The time limit ended the run: fans were still out, and the model's figures for
    /// the whole night do not compare.
    pub cut_short: bool,
    /// Every minute from the opening.
    pub minutes: Vec<Minute>,
}

/// A run's summary and its record.
pub struct RunOutcome {
    /// The figures.
    pub summary: RunSummary,
    /// What the charts are drawn from.
    pub recorded: Recorded,
}

/// Runs `scenario` against `target`.
pub async fn run(
    scenario: &Scenario,
    target: &Target,
    options: &Options,
) -> Result<RunOutcome, RunError> {
    let edge = target.edge;
    let show = scenario.show_id.clone();
    let map = SeatMap::parse(
        observe(edge, &format!("/v1/shows/{show}/seat-map"))
            .await
            .map_err(|why| RunError::Edge {
                what: "seat map",
                edge,
                why,
            })?,
    )
    .map_err(|e| RunError::Edge {
        what: "seat map",
        edge,
        why: e.to_string(),
    })?;
    let before = availability(edge, &show).await?;
    if before.total != u64::from(scenario.room.seats.get()) || map.len() as u64 != before.total {
        return Err(RunError::SeatsDiffer {
            show_id: show,
            scenario: scenario.room.seats.get(),
            show: before.total,
        });
    }
    if before.available != before.total {
        return Err(RunError::NotFresh {
            taken: before.total - before.available,
            total: before.total,
        });
    }

    let plans = plan::draw(scenario);
    tracing::info!(fans = plans.len(), run = %options.name, "making the fans' accounts");
    let accounts = rehearsal::make_fans(
        &target.pool,
        &target.accounts,
        &options.name,
        scenario.fans.get(),
        PASSWORD,
        |n| !plans[n as usize].signs_in,
    )
    .await?;

    let baseline_rss = memory::resident_bytes();
    let cpu_before = memory::cpu_seconds();
    let (end, over) = watch::channel(false);
    let stage = Arc::new(Stage {
        edge,
        show,
        password: PASSWORD.to_owned(),
        map,
        seed: scenario.seed,
        tally: Tally::new(),
        over,
    });
    let bar = progress_bar(
        options.progress,
        plans.len() as u64,
        scenario.room.seats.get(),
    );
    let watchers = [
        tokio::spawn(sample_seats(
            stage.clone(),
            end.clone(),
            options.sample_every,
        )),
        tokio::spawn(show_progress(stage.clone(), bar.clone())),
    ];
    let mut arrivals = tokio::spawn(arrive(stage.clone(), plans, accounts));
    let finished = tokio::select! {
        _ = &mut arrivals => true,
        () = tokio::time::sleep(options.limit) => {
            tracing::warn!(limit_s = options.limit.as_secs(), "the run's time limit passed");
            false
        }
    };
    // Fans still out stop at their next wait.
    end.send_replace(true);
    if !finished {
        let _ = arrivals.await;
    }
    for watcher in watchers {
        watcher.abort();
    }
    bar.finish();
    let duration_s = stage.tally.started().elapsed().as_secs_f64();
    let recorded = stage.tally.take();
    let memory_per_fan_bytes =
        memory::peak_resident_bytes().saturating_sub(baseline_rss) / u64::from(scenario.fans.get());
    let cpu_s = memory::cpu_seconds() - cpu_before;
    let measured = Measured {
        requests: Live::get(&stage.tally.live.requests),
        duration_s,
        memory_per_fan_bytes,
        cpu_s,
        cut_short: !finished,
    };
    let summary = summarize(scenario, &recorded, measured);
    Ok(RunOutcome { summary, recorded })
}

/// Starts each fan at its arrival time; returns when every fan is done or the run ends.
async fn arrive(stage: Arc<Stage>, plans: Vec<FanPlan>, accounts: Vec<rehearsal::RehearsalFan>) {
    let opening = tokio::time::Instant::from_std(stage.tally.started());
    let mut over = stage.over.clone();
    let mut fans = tokio::task::JoinSet::new();
    for (index, (plan, account)) in plans.into_iter().zip(accounts).enumerate() {
        let at = opening + Duration::from_millis(plan.arrives_ms as u64);
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            _ = over.changed() => break,
        }
        let credentials = Credentials {
            email: account.email,
            session: account.session,
        };
        let fan = Fan::new(stage.clone(), index as u32, plan, credentials);
        fans.spawn(fan.run());
        // Reap the finished as the run goes: the set holds only fans still out.
        while fans.try_join_next().is_some() {}
    }
    while fans.join_next().await.is_some() {}
}

/// Reads the availability snapshot every `every` for the seats over time; ends the run
/// when every seat is sold.
async fn sample_seats(stage: Arc<Stage>, end: watch::Sender<bool>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let Ok(seats) = availability(stage.edge, &stage.show).await else {
            continue;
        };
        stage.tally.seats(SeatSample {
            at_ms: stage.tally.now_ms(),
            available: seats.available,
            held: seats.held,
            sold: seats.sold,
        });
        if seats.sold == seats.total {
            tracing::info!("sold out");
            end.send_replace(true);
        }
    }
}

fn progress_bar(shown: bool, fans: u64, seats: u32) -> ProgressBar {
    let bar = match shown {
        true => ProgressBar::new(fans),
        false => ProgressBar::hidden(),
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} {{bar:24}} {{pos}}/{{len}} fans arrived · {{msg}} of {seats} seats"
        ))
        .expect("a valid template"),
    );
    bar
}

async fn show_progress(stage: Arc<Stage>, bar: ProgressBar) {
    let live = &stage.tally.live;
    loop {
        bar.set_position(Live::get(&live.arrived));
        bar.set_message(format!(
            "queued {} · admitted {} · holding {} · bought {} · errors {} · {}",
            Live::get(&live.queued),
            Live::get(&live.admitted),
            Live::get(&live.holding),
            Live::get(&live.bought),
            Live::get(&live.errors),
            Live::get(&live.seats_bought),
        ));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A document the run reads for itself, with retries while the edge has no snapshot yet.
async fn observe(edge: SocketAddr, path: &str) -> Result<serde_json::Value, String> {
    let mut last = String::new();
    for _ in 0..30 {
        match http::send(edge, OBSERVER, &http::Call::new(Method::GET, path)).await {
            Ok(answer) if answer.status == 200 => return Ok(answer.body),
            Ok(answer) => last = format!("{} {}", answer.label(), answer.body),
            Err(failure) => last = failure.label().to_owned(),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(last)
}

async fn availability(edge: SocketAddr, show: &str) -> Result<Availability, RunError> {
    let error = |why: String| RunError::Edge {
        what: "availability",
        edge,
        why,
    };
    let body = observe(edge, &format!("/v1/shows/{show}/availability"))
        .await
        .map_err(error)?;
    serde_json::from_value(body).map_err(|e| error(e.to_string()))
}

/// What a run cost and how it ended.
struct Measured {
    requests: u64,
    duration_s: f64,
    memory_per_fan_bytes: u64,
    cpu_s: f64,
    cut_short: bool,
}

/// The run's figures from its record.
fn summarize(scenario: &Scenario, recorded: &Recorded, measured: Measured) -> RunSummary {
    let fans = &recorded.fans;
    let count = |f: fn(&Milestones) -> bool| fans.iter().filter(|m| f(m)).count() as u64;
    let mut waits: Vec<f64> = fans
        .iter()
        .filter_map(|m| Some(f64::from(m.admitted_ms? - m.joined_ms?) / 1000.0))
        .collect();
    let mut sales: Vec<(i64, u64)> = fans
        .iter()
        .filter_map(|m| Some((i64::from(m.bought_ms?), u64::from(m.seats_held))))
        .collect();
    sales.sort_unstable();
    let seats = u64::from(scenario.room.seats.get());
    let minutes = minutes(recorded, measured.duration_s);
    RunSummary {
        fans: u64::from(scenario.fans.get()),
        fans_joined: count(|m| m.joined_ms.is_some()),
        fans_left_queue: count(|m| m.stopped_ms.is_some()),
        fans_admitted: count(|m| m.admitted_ms.is_some()),
        fans_bought: sales.len() as u64,
        seats_sold: sales.iter().map(|s| s.1).sum(),
        sellout_s: when_sold(&sales, seats, 1.0),
        sold_95_s: when_sold(&sales, seats, 0.95),
        wait_s: Percentiles::of(&mut waits),
        peak_active: peak_active(fans),
        peak_origin_per_s: recorded
            .origin_requests
            .iter()
            .copied()
            .max()
            .map_or(0, u64::from),
        requests: measured.requests,
        errors: recorded
            .errors
            .iter()
            .map(|(label, times)| (label.clone(), times.len() as u64))
            .collect(),
        duration_s: measured.duration_s,
        memory_per_fan_bytes: measured.memory_per_fan_bytes,
        cpu_s: measured.cpu_s,
        cut_short: measured.cut_short,
        minutes,
    }
}

/// Most admissions open at once: each from learning of the turn to its end.
fn peak_active(fans: &[Milestones]) -> u64 {
    let mut changes: Vec<(u32, i64)> = fans
        .iter()
        .filter_map(|m| Some([(m.admitted_ms?, 1), (m.admission_ends_ms?, -1)]))
        .flatten()
        .collect();
    // Ends before starts at the same instant.
    changes.sort_unstable();
    let mut open = 0i64;
    let mut peak = 0i64;
    for (_, change) in changes {
        open += change;
        peak = peak.max(open);
    }
    peak as u64
}

/// The state at the end of every minute, as [`crate::model`] reports it.
fn minutes(recorded: &Recorded, duration_s: f64) -> Vec<Minute> {
    let fans = &recorded.fans;
    let count = (duration_s / 60.0).ceil().max(1.0) as u32;
    (1..=count)
        .map(|minute| {
            let end = minute * 60_000;
            let start = end - 60_000;
            let by = |at: Option<u32>| at.is_some_and(|t| t <= end);
            let seats = recorded.seats.iter().rev().find(|s| s.at_ms <= end);
            Minute {
                minute,
                queued: fans
                    .iter()
                    .filter(|m| by(m.joined_ms) && !by(m.admitted_ms) && !by(m.stopped_ms))
                    .count() as u64,
                admitted: fans
                    .iter()
                    .filter(|m| m.admitted_ms.is_some_and(|t| t > start && t <= end))
                    .count() as u64,
                active: fans
                    .iter()
                    .filter(|m| by(m.admitted_ms) && m.admission_ends_ms.is_some_and(|t| t > end))
                    .count() as u64,
                seats_left: seats.map_or(0, |s| s.available),
                sold: seats.map_or(0, |s| s.sold),
                origin_requests: recorded
                    .origin_requests
                    .iter()
                    .skip(start as usize / 1000)
                    .take(60)
                    .map(|&n| u64::from(n))
                    .sum(),
            }
        })
        .collect()
}

/// The simulator's own memory and CPU, from `/proc` (Linux).
mod memory {
    fn status_kib(field: &str) -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with(field))?;
                line.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0)
    }

    /// Resident memory now.
    pub fn resident_bytes() -> u64 {
        status_kib("VmRSS:") * 1024
    }

    /// Resident memory at its peak so far.
    pub fn peak_resident_bytes() -> u64 {
        status_kib("VmHWM:") * 1024
    }

    /// User and system CPU time so far, in seconds (`/proc` counts in hundredths).
    pub fn cpu_seconds() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command's closing parenthesis; utime and stime are 14th and 15th.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        match (ticks(11), ticks(12)) {
            (Some(user), Some(system)) => (user + system) / 100.0,
            _ => 0.0,
        }
    }
}
