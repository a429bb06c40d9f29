//! A prediction or a run written as a report directory: `summary.json`, `report.md`, and
//! the charts as PNG and SVG. A run's report sets the model's prediction beside what the
//! fans saw, and keeps every fan's milestones in `fans.csv`.

mod run_charts;

use crate::model::{Minute, Prediction};
use crate::plots::{Chart, Line, PlotError};
use crate::run::tally::Milestones;
use crate::run::{RunOutcome, RunSummary};
use crate::scenario::Scenario;
use std::fmt::Write as _;
use std::path::Path;

/// Why a report was not written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// A chart could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

fn write(path: &Path, contents: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, contents).map_err(|error| ReportError::Write {
        path: path.display().to_string(),
        error,
    })
}

/// A chart over the minutes from the opening.
fn by_minute<'a>(title: &'a str, y: &'a str, lines: Vec<Line>) -> Chart<'a> {
    Chart {
        title,
        x: "minutes from the opening",
        y,
        lines,
    }
}

/// Minute-by-minute figures under a name (`run`, `model`), drawn side by side.
type Series<'a> = (&'a str, &'a [Minute]);

/// One line per series of `value` at each minute's end, labelled `what (series)`; only
/// `what` when there is one series.
fn per_minute(series: &[Series<'_>], what: &str, value: fn(&Minute) -> u64) -> Vec<Line> {
    series
        .iter()
        .map(|(name, minutes)| Line {
            label: match series.len() {
                1 => what.to_owned(),
                _ => format!("{what} ({name})"),
            },
            points: minutes
                .iter()
                .map(|m| (f64::from(m.minute), value(m) as f64))
                .collect(),
        })
        .collect()
}

/// A level line: a setting across the chart.
fn setting(series: &[Series<'_>], label: &str, y: u32) -> Line {
    let end = series
        .iter()
        .filter_map(|(_, minutes)| minutes.last())
        .map(|m| f64::from(m.minute))
        .fold(1.0, f64::max);
    Line {
        label: label.to_owned(),
        points: vec![(0.0, f64::from(y)), (end, f64::from(y))],
    }
}

/// The charts every report has, by file stem.
fn timeline_charts(
    scenario: &Scenario,
    series: &[Series<'_>],
) -> Vec<(&'static str, Chart<'static>)> {
    let room = &scenario.room;
    let with = |mut lines: Vec<Line>, extra: Line| {
        lines.push(extra);
        lines
    };
    let mut seats = per_minute(series, "neither held nor sold", |m| m.seats_left);
    seats.extend(per_minute(series, "sold", |m| m.sold));
    vec![
        (
            "queue-length",
            by_minute(
                "Queue length",
                "fans waiting",
                per_minute(series, "queued", |m| m.queued),
            ),
        ),
        (
            "admissions",
            by_minute(
                "Admissions per minute against the setting",
                "fans admitted in the minute",
                with(
                    per_minute(series, "admitted", |m| m.admitted),
                    setting(series, "admit_per_minute", room.admit_per_minute.get()),
                ),
            ),
        ),
        (
            "active",
            by_minute(
                "Open admissions against max_active",
                "admissions open",
                with(
                    per_minute(series, "active", |m| m.active),
                    setting(series, "max_active", room.max_active.get()),
                ),
            ),
        ),
        ("seats-left", by_minute("Seats over time", "seats", seats)),
    ]
}

fn create_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|error| ReportError::Write {
        path: dir.display().to_string(),
        error,
    })
}

/// Writes `summary`, every chart and `page` (the Markdown before the charts) into `dir`.
fn write_report(
    dir: &Path,
    summary: serde_json::Value,
    charts: &[(&str, Chart<'_>)],
    mut page: String,
) -> Result<(), ReportError> {
    create_dir(dir)?;
    write(
        &dir.join("summary.json"),
        format!("{summary:#}\n").as_bytes(),
    )?;
    for (stem, chart) in charts {
        chart.write(&dir.join(stem))?;
        let _ = write!(
            page,
            "\n## {}\n\n![{}]({stem}.svg)\n",
            chart.title, chart.title
        );
    }
    write(&dir.join("report.md"), page.as_bytes())
}

/// Writes the report of `prediction` for `scenario` into `dir` (made if missing).
pub fn write_prediction(
    dir: &Path,
    scenario: &Scenario,
    prediction: &Prediction,
) -> Result<(), ReportError> {
    let summary = serde_json::json!({ "scenario": scenario.name, "prediction": prediction });
    let charts = timeline_charts(scenario, &[("model", &prediction.minutes)]);
    let mut page = heading(scenario, "predicted");
    page.push_str("| | |\n|---|---|\n");
    for (name, value) in prediction_rows(prediction) {
        let _ = writeln!(page, "| {name} | {value} |");
    }
    write_report(dir, summary, &charts, page)
}

fn minutes(seconds: f64) -> String {
    format!("{:.1} min", seconds / 60.0)
}

fn heading(scenario: &Scenario, what: &str) -> String {
    let room = &scenario.room;
    format!(
        "# {}: {what}\n\n{} fans for {} seats; admit_per_minute {}, max_active {}, \
         session_ttl_s {}.\n\n",
        scenario.name,
        scenario.fans.get(),
        room.seats.get(),
        room.admit_per_minute.get(),
        room.max_active.get(),
        room.session_ttl_s.get(),
    )
}

fn sellout(at: Option<f64>) -> String {
    at.map_or_else(|| "not sold out".to_owned(), minutes)
}

/// The figures a prediction and a run share, by name.
fn prediction_rows(p: &Prediction) -> Vec<(&'static str, String)> {
    vec![
        ("sell-out", sellout(p.sellout_s)),
        ("95% of the seats sold", sellout(p.sold_95_s)),
        ("seats sold", p.seats_sold.to_string()),
        ("fans admitted", p.fans_admitted.to_string()),
        ("fans who bought", p.fans_bought.to_string()),
        (
            "gone from the queue (a run: stopped polling; the model: stepped over)",
            p.no_shows_skipped.to_string(),
        ),
        ("wait p50", minutes(p.wait_s.p50)),
        ("wait p90", minutes(p.wait_s.p90)),
        ("wait p99", minutes(p.wait_s.p99)),
        ("admissions open at the peak", p.peak_active.to_string()),
        (
            "origin requests in the busiest second",
            p.peak_origin_per_s.to_string(),
        ),
    ]
}

/// How a run compares with the model: each of the run's figures over the model's.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Agreement {
    /// Sell-out time, run over model; `None` unless both sold out.
    pub sellout: Option<f64>,
    /// When 95% of the seats had sold, run over model.
    pub sold_95: Option<f64>,
    /// Median wait, run over model.
    pub wait_p50: f64,
}

impl Agreement {
    /// The run's figures against the model's.
    pub fn of(run: &RunSummary, model: &Prediction) -> Agreement {
        Agreement {
            sellout: run.sellout_s.zip(model.sellout_s).map(|(r, m)| r / m),
            sold_95: run.sold_95_s.zip(model.sold_95_s).map(|(r, m)| r / m),
            wait_p50: run.wait_s.p50 / model.wait_s.p50,
        }
    }
}

/// Every fan's milestones, one row each, in ms from the opening (empty: never reached).
fn fans_csv(fans: &[Milestones]) -> String {
    let mut csv = "arrives_ms,joined_ms,eta_s,left_queue_ms,admitted_ms,admission_ends_ms,\
                   held_ms,seats_held,bought_ms\n"
        .to_owned();
    let cell = |v: Option<u32>| v.map_or_else(String::new, |v| v.to_string());
    for m in fans {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{}",
            m.arrives_ms,
            cell(m.joined_ms),
            cell(m.eta_s),
            cell(m.stopped_ms),
            cell(m.admitted_ms),
            cell(m.admission_ends_ms),
            cell(m.held_ms),
            m.seats_held,
            cell(m.bought_ms),
        );
    }
    csv
}

/// Writes the report of a run of `scenario`, beside the model's `prediction`, into `dir`.
pub fn write_run(
    dir: &Path,
    scenario: &Scenario,
    outcome: &RunOutcome,
    prediction: &Prediction,
) -> Result<(), ReportError> {
    let run = &outcome.summary;
    let agreement = Agreement::of(run, prediction);
    let summary = serde_json::json!({
        "scenario": scenario.name,
        "run": run,
        "model": prediction,
        "run_over_model": agreement,
    });
    let mut charts = timeline_charts(
        scenario,
        &[("run", &run.minutes), ("model", &prediction.minutes)],
    );
    charts.extend(run_charts::all(&outcome.recorded, run));
    create_dir(dir)?;
    write(
        &dir.join("fans.csv"),
        fans_csv(&outcome.recorded.fans).as_bytes(),
    )?;
    let mut page = heading(scenario, "a run");
    if run.cut_short {
        let _ = write!(
            page,
            "The run's time limit ended it after {:.0} s, fans still out: the model's figures \
             are for the whole night.\n\n",
            run.duration_s
        );
    }
    page.push_str("| | run | model |\n|---|---|---|\n");
    let ran = Prediction {
        sellout_s: run.sellout_s,
        sold_95_s: run.sold_95_s,
        seats_sold: run.seats_sold,
        fans_admitted: run.fans_admitted,
        fans_bought: run.fans_bought,
        no_shows_skipped: run.fans_left_queue,
        wait_s: run.wait_s,
        peak_active: run.peak_active,
        peak_origin_per_s: run.peak_origin_per_s,
        minutes: Vec::new(),
    };
    for ((name, seen), (_, predicted)) in prediction_rows(&ran)
        .into_iter()
        .zip(prediction_rows(prediction))
    {
        let _ = writeln!(page, "| {name} | {seen} | {predicted} |");
    }
    let ratio = |r: Option<f64>| r.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}"));
    let _ = write!(
        page,
        "\nRun over model: sell-out {}, 95% sold {}, median wait {:.2}.\n\n\
         {} requests in {:.0} s; the simulator used {:.1} s of CPU and {} bytes per fan at its \
         peak.\n\nErrors by status and code: {}.\n",
        ratio(agreement.sellout),
        ratio(agreement.sold_95),
        agreement.wait_p50,
        run.requests,
        run.duration_s,
        run.cpu_s,
        run.memory_per_fan_bytes,
        match run.errors.is_empty() {
            true => "none".to_owned(),
            false => run
                .errors
                .iter()
                .map(|(label, n)| format!("{label}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        },
    );
    write_report(dir, summary, &charts, page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_has_its_summary_its_page_and_every_chart_in_both_formats() {
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/scenarios/theatre-presale.toml"
        );
        let scenario = Scenario::load(Path::new(file)).expect("the theatre scenario");
        let prediction = crate::model::predict(&scenario);
        let dir = tempfile::tempdir().expect("a directory");
        write_prediction(dir.path(), &scenario, &prediction).expect("a report");

        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary["scenario"], "theatre-presale");
        assert_eq!(summary["prediction"]["seats_sold"], prediction.seats_sold);
        let page = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(page.contains(&format!("| seats sold | {} |", prediction.seats_sold)));
        for stem in ["queue-length", "admissions", "active", "seats-left"] {
            let png = std::fs::read(dir.path().join(format!("{stem}.png"))).unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png");
            let svg = std::fs::read_to_string(dir.path().join(format!("{stem}.svg"))).unwrap();
            assert!(svg.starts_with("<svg") && svg.contains("minutes from the opening"));
            assert!(
                page.contains(&format!("({stem}.svg)")),
                "{stem} in report.md"
            );
        }
    }
}
