//! A prediction written as a report directory: `summary.json`, `report.md`, and the
//! minute-by-minute charts as PNG and SVG.

use crate::model::{Minute, Prediction};
use crate::plots::{Chart, Line, PlotError};
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
fn by_minute<'a>(title: &'a str, y: &'a str, lines: Vec<Line<'a>>) -> Chart<'a> {
    Chart {
        title,
        x: "minutes from the opening",
        y,
        lines,
    }
}

/// The charts of a prediction, by file stem.
fn charts<'a>(scenario: &Scenario, p: &Prediction) -> Vec<(&'static str, Chart<'a>)> {
    let per_minute = |label, value: fn(&Minute) -> u64| Line {
        label,
        points: p
            .minutes
            .iter()
            .map(|m| (f64::from(m.minute), value(m) as f64))
            .collect(),
    };
    let setting = |label, y: u32| {
        let end = p.minutes.last().map_or(1.0, |m| f64::from(m.minute));
        Line {
            label,
            points: vec![(0.0, f64::from(y)), (end, f64::from(y))],
        }
    };
    let room = &scenario.room;
    vec![
        (
            "queue-length",
            by_minute(
                "Queue length",
                "fans waiting",
                vec![per_minute("queued", |m| m.queued)],
            ),
        ),
        (
            "admissions",
            by_minute(
                "Admissions per minute against the setting",
                "fans admitted in the minute",
                vec![
                    per_minute("admitted", |m| m.admitted),
                    setting("admit_per_minute", room.admit_per_minute.get()),
                ],
            ),
        ),
        (
            "active",
            by_minute(
                "Open admissions against max_active",
                "admissions open",
                vec![
                    per_minute("active", |m| m.active),
                    setting("max_active", room.max_active.get()),
                ],
            ),
        ),
        (
            "seats-left",
            by_minute(
                "Seats over time",
                "seats",
                vec![
                    per_minute("neither held nor sold", |m| m.seats_left),
                    per_minute("sold", |m| m.sold),
                ],
            ),
        ),
    ]
}

/// Writes the report of `prediction` for `scenario` into `dir` (made if missing).
pub fn write_prediction(
    dir: &Path,
    scenario: &Scenario,
    prediction: &Prediction,
) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|error| ReportError::Write {
        path: dir.display().to_string(),
        error,
    })?;
    let summary = serde_json::json!({ "scenario": scenario.name, "prediction": prediction });
    write(
        &dir.join("summary.json"),
        format!("{summary:#}\n").as_bytes(),
    )?;
    let charts = charts(scenario, prediction);
    for (stem, chart) in &charts {
        chart.write(&dir.join(stem))?;
    }
    write(
        &dir.join("report.md"),
        markdown(scenario, prediction, &charts).as_bytes(),
    )
}

fn minutes(seconds: f64) -> String {
    format!("{:.1} min", seconds / 60.0)
}

fn markdown(scenario: &Scenario, p: &Prediction, charts: &[(&str, Chart<'_>)]) -> String {
    let room = &scenario.room;
    let mut md = format!(
        "# {}: predicted\n\n{} fans for {} seats; admit_per_minute {}, max_active {}, \
         session_ttl_s {}.\n\n| | |\n|---|---|\n",
        scenario.name,
        scenario.fans.get(),
        room.seats.get(),
        room.admit_per_minute.get(),
        room.max_active.get(),
        room.session_ttl_s.get(),
    );
    let sellout = p
        .sellout_s
        .map_or_else(|| "not sold out".to_owned(), minutes);
    let rows = [
        ("sell-out", sellout),
        ("seats sold", p.seats_sold.to_string()),
        ("fans admitted", p.fans_admitted.to_string()),
        ("fans who bought", p.fans_bought.to_string()),
        (
            "places stepped over (stopped polling)",
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
    ];
    for (name, value) in rows {
        let _ = writeln!(md, "| {name} | {value} |");
    }
    for (stem, chart) in charts {
        let _ = write!(
            md,
            "\n## {}\n\n![{}]({stem}.svg)\n",
            chart.title, chart.title
        );
    }
    md
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
