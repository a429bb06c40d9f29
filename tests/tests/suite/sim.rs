//! `onsale-sim run` through a real stack (origin, seat-map builder, Pingora edge, PostgreSQL,
//! Redis), each shipped scenario at a size and pace that fit a test (`Scenario::scaled`),
//! beside `onsale-sim model`'s prediction for the same fans: every seat sold once, no
//! request failed, no fan was rate-limited as if it shared an address, every fan the
//! theatre asked for a proof of work solved it, the run's report has every chart, and the
//! run agrees with the model within 15% on what the model can predict at these sizes: the
//! stadium's median wait and the time 95% of its seats had sold, and the theatre's median
//! wait (its fans are called as they come, so it is their first poll).
//!
//! The sell-out itself is not asserted: the last seat comes back from an abandoned hold and
//! sells to whichever fan finds it first, so at these sizes it moves by more than 15% with
//! the fans drawn (BENCHMARKS.md, "Rehearsal"). Each run prints its figures over the
//! model's.

use chrono::{TimeZone, Utc};
use edge_proxy::config::{PrequeueOrder, QueueSettings};
use onsale_contract::clock::{self, Clock};
use onsale_sim::model;
use onsale_sim::report;
use onsale_sim::run::{self, Options, Target};
use onsale_sim::scenario::Scenario;
use onsale_tests::{builder_config, create_show, db, edge, origin, origin_config, venue_body};
use std::path::Path;
use std::time::Duration;

/// How far the run's median wait may be from the model's: 15%.
const AGREE_WITHIN: f64 = 0.15;

/// Runs the shipped scenario `name` at `1 / divisor` of its size, `speed` times as fast, on
/// a show of `sections` sections of `rows` rows of `seats_per_row` seats; the run, the
/// model's prediction and the scenario run.
async fn run_against_the_model(
    name: &str,
    divisor: u32,
    speed: f64,
    pow_difficulty: u8,
    (sections, rows, seats_per_row): (usize, u32, u32),
) -> (run::RunOutcome, model::Prediction, Scenario) {
    let db = db().await;
    let file = format!(
        "{}/../config/scenarios/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let shipped = Scenario::load(Path::new(&file)).expect("a shipped scenario");
    let mut scenario = shipped.scaled(divisor, speed);
    let room = scenario.room.clone();

    let origin = origin(&db)
        .config(|c| c.holds.ttl_s = room.hold_ttl_s.get())
        .run()
        .await;
    let organizer = onsale_tests::client(origin.addr()).bearer(onsale_tests::ADMIN_TOKEN);
    let ids = ["A", "B", "C", "D", "E", "F", "G", "H"];
    let section_tiers: Vec<(&str, &str)> = ids[..sections].iter().map(|id| (*id, "T1")).collect();
    let layout = venue_body(
        "Rehearsal Hall",
        "Leeds",
        &section_tiers,
        rows,
        seats_per_row,
    );
    let (_, show) = create_show(
        &organizer,
        layout,
        "Rehearsal",
        "The Scaled",
        "2099-06-01T19:00:00Z",
        "2020-01-01T00:00:00Z",
    )
    .await;
    scenario.show_id = show.clone();

    let opened = Utc.timestamp_millis_opt(clock::now_ms()).unwrap();
    let edge = edge()
        .upstream(origin.addr())
        .config(|c| {
            c.waiting_room.shows.insert(
                show.clone(),
                QueueSettings {
                    admit_per_minute: room.admit_per_minute.get(),
                    max_active: room.max_active.get(),
                    session_ttl_s: room.session_ttl_s.get() as u64,
                    queue_opens_at: opened,
                    sale_opens_at: opened,
                    prequeue_order: PrequeueOrder::Random,
                    no_show_grace_s: room.no_show_grace_s.get() as u64,
                    pow_difficulty,
                    paused: false,
                },
            );
        })
        .run();
    let prefix = edge.shared.live.load().config.redis.key_prefix.clone();
    let mut builds = builder_config(&db, &prefix);
    builds.build.interval_s = room.snapshot_interval_s.get();
    let builder = seatmap_builder::start(builds, "sim".into(), Clock::system())
        .await
        .expect("the builder starts");

    let target = Target {
        edge: edge.public,
        pool: db.pool.clone(),
        accounts: origin_config(&db).accounts,
    };
    let options = Options {
        progress: false,
        limit: Duration::from_secs(600),
        sample_every: Duration::from_millis(500),
        name: format!("test-{}", rand::random::<u32>()),
    };
    let outcome = run::run(&scenario, &target, &options)
        .await
        .expect("the run");
    builder.shutdown().await;
    drop(edge);
    (outcome, model::predict(&scenario), scenario)
}

/// Whether `run` is within [`AGREE_WITHIN`] of `model`.
fn within(what: &str, run: f64, model: f64) -> Result<(), String> {
    match (run - model).abs() <= model * AGREE_WITHIN {
        true => Ok(()),
        false => Err(format!(
            "{what}: the run saw {run:.2}, the model predicted {model:.2}"
        )),
    }
}

/// Writes the run's report; panics with the failed `checks` and where the report is kept
/// if any failed.
fn report_and_check(
    outcome: &run::RunOutcome,
    predicted: &model::Prediction,
    scenario: &Scenario,
    checks: Vec<Result<(), String>>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), scenario, outcome, predicted).expect("the report");
    // How close it came, for the log of a passing run too.
    println!(
        "{}: run over model {:?}",
        scenario.name,
        report::Agreement::of(&outcome.summary, predicted)
    );
    let disagreements: Vec<String> = checks.into_iter().filter_map(Result::err).collect();
    if !disagreements.is_empty() {
        let kept = dir.keep();
        panic!(
            "the run and the model disagree:\n{}\nthe report: {}",
            disagreements.join("\n"),
            kept.display()
        );
    }
    dir
}

/// Checks what every run must show: every request answered, no server error but the 503s
/// that ask a client to come back (sign-ins beyond the origin's hashing capacity), no fan
/// rate-limited as if it shared an address with others, every seat sold and no more.
fn sound(outcome: &run::RunOutcome, scenario: &Scenario) {
    let run = &outcome.summary;
    let failed: Vec<&String> = run
        .errors
        .keys()
        .filter(|label| {
            let status = label.split(' ').next().and_then(|s| s.parse::<u16>().ok());
            match status {
                Some(status) => status == 429 || (status >= 500 && status != 503),
                None => true,
            }
        })
        .collect();
    assert!(failed.is_empty(), "failed requests: {:?}", run.errors);
    assert_eq!(
        run.seats_sold,
        u64::from(scenario.room.seats.get()),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stadium_run_waits_and_sells_as_its_model_predicts() {
    // 1,000 fans for 800 seats, 40 times as fast: sold out in about a minute and a half.
    // Alone on the machine (the test runner gives it every thread), it keeps to the model.
    let (outcome, predicted, scenario) =
        run_against_the_model("stadium", 100, 40.0, 0, (8, 5, 20)).await;
    sound(&outcome, &scenario);
    let run = &outcome.summary;
    let checks = vec![
        within("median wait (s)", run.wait_s.p50, predicted.wait_s.p50),
        within(
            "95% sold (s)",
            run.sold_95_s.expect("95% of the seats sold"),
            predicted.sold_95_s.expect("95% of the seats sold"),
        ),
    ];
    let dir = report_and_check(&outcome, &predicted, &scenario, checks);
    assert!(run.peak_active <= u64::from(scenario.room.max_active.get()));
    for stem in [
        "queue-length",
        "admissions",
        "active",
        "seats-left",
        "holds",
        "waits",
        "eta",
        "errors",
    ] {
        for ext in ["png", "svg"] {
            let chart = dir.path().join(format!("{stem}.{ext}"));
            assert!(
                std::fs::metadata(&chart).is_ok_and(|m| m.len() > 1000),
                "{chart:?}"
            );
        }
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["run"]["seats_sold"], 800);
    assert!(summary["run_over_model"]["sellout"].is_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_theatre_fans_solve_the_proof_of_work_buy_every_seat_and_wait_as_predicted() {
    // 200 fans for 50 seats, 40 times as fast.
    let (outcome, predicted, scenario) =
        run_against_the_model("theatre-presale", 10, 40.0, 8, (5, 5, 2)).await;
    sound(&outcome, &scenario);
    let run = &outcome.summary;
    // Every join is first asked for a proof of work, and every solution is accepted.
    let asked = run.errors.get("400 pow_required").copied().unwrap_or(0);
    assert!(run.fans_joined > 0 && asked >= run.fans_joined, "{run:?}");
    assert!(
        !run.errors
            .keys()
            .any(|l| l.contains("pow_invalid") || l.contains("pow_reused")),
        "{run:?}"
    );
    let checks = vec![within(
        "median wait (s)",
        run.wait_s.p50,
        predicted.wait_s.p50,
    )];
    report_and_check(&outcome, &predicted, &scenario, checks);
}
