//! The charts only a run has: holds per second, the wait distribution, the ETA fans were
//! shown against the wait they had, and errors by code.

use crate::plots::{Chart, Line};
use crate::run::tally::{Milestones, Recorded};
use crate::run::RunSummary;
use std::collections::BTreeMap;

/// Holds are counted in windows this long.
const HOLD_WINDOW_MS: u32 = 10_000;
/// Fans are grouped by when they joined in windows this long for the ETA chart.
const JOIN_WINDOW_MS: u32 = 30_000;
/// Error codes drawn, the most frequent first.
const MOST_ERRORS: usize = 8;

const MINUTES: &str = "minutes from the opening";

/// Every run-only chart, by file stem.
pub fn all(recorded: &Recorded, run: &RunSummary) -> Vec<(&'static str, Chart<'static>)> {
    vec![
        ("holds", holds(&recorded.fans)),
        ("waits", waits(&recorded.fans, run)),
        ("eta", eta(&recorded.fans)),
        ("errors", errors(&recorded.errors, run.duration_s)),
    ]
}

fn minutes(ms: u32) -> f64 {
    f64::from(ms) / 60_000.0
}

fn holds(fans: &[Milestones]) -> Chart<'static> {
    let mut windows: BTreeMap<u32, u32> = BTreeMap::new();
    for at in fans.iter().filter_map(|m| m.held_ms) {
        *windows.entry(at / HOLD_WINDOW_MS).or_default() += 1;
    }
    let last = windows.keys().last().copied().unwrap_or(0);
    let per_s = f64::from(HOLD_WINDOW_MS) / 1000.0;
    Chart {
        title: "Holds per second",
        x: MINUTES,
        y: "holds made per second (10 s windows)",
        lines: vec![Line {
            label: "holds".to_owned(),
            points: (0..=last)
                .map(|w| {
                    let count = windows.get(&w).copied().unwrap_or(0);
                    (minutes(w * HOLD_WINDOW_MS), f64::from(count) / per_s)
                })
                .collect(),
        }],
    }
}

fn waits(fans: &[Milestones], run: &RunSummary) -> Chart<'static> {
    let mut waits: Vec<f64> = fans
        .iter()
        .filter_map(|m| Some(minutes(m.admitted_ms? - m.joined_ms?)))
        .collect();
    waits.sort_by(f64::total_cmp);
    let n = waits.len().max(1) as f64;
    let mark = |label: &str, wait_s: f64| Line {
        label: format!("{label} {:.1} min", wait_s / 60.0),
        points: vec![(wait_s / 60.0, 0.0), (wait_s / 60.0, 100.0)],
    };
    Chart {
        title: "Wait-time distribution",
        x: "minutes from joining to the fan's turn",
        y: "% of admitted fans who waited at most this long",
        lines: vec![
            Line {
                label: "admitted fans".to_owned(),
                points: waits
                    .iter()
                    .enumerate()
                    .map(|(i, w)| (*w, (i + 1) as f64 * 100.0 / n))
                    .collect(),
            },
            mark("p50", run.wait_s.p50),
            mark("p90", run.wait_s.p90),
            mark("p99", run.wait_s.p99),
        ],
    }
}

fn eta(fans: &[Milestones]) -> Chart<'static> {
    // Per window of joining: the ETA shown and the wait had, summed, and how many fans.
    let mut windows: BTreeMap<u32, (f64, f64, u32)> = BTreeMap::new();
    for m in fans {
        let (Some(joined), Some(admitted), Some(eta_s)) = (m.joined_ms, m.admitted_ms, m.eta_s)
        else {
            continue;
        };
        let window = windows.entry(joined / JOIN_WINDOW_MS).or_default();
        window.0 += f64::from(eta_s) / 60.0;
        window.1 += minutes(admitted - joined);
        window.2 += 1;
    }
    let line = |label: &str, pick: fn(&(f64, f64, u32)) -> f64| Line {
        label: label.to_owned(),
        points: windows
            .iter()
            .map(|(w, sums)| (minutes(w * JOIN_WINDOW_MS), pick(sums) / f64::from(sums.2)))
            .collect(),
    };
    Chart {
        title: "The wait fans were shown against the wait they had",
        x: "minutes from the opening to the fan's join",
        y: "minutes (mean of fans joining in 30 s)",
        lines: vec![
            line("estimated when joining", |s| s.0),
            line("waited", |s| s.1),
        ],
    }
}

fn errors(errors: &BTreeMap<String, Vec<u32>>, duration_s: f64) -> Chart<'static> {
    let last = (duration_s / 60.0).ceil().max(1.0) as u32;
    let mut by_count: Vec<(&String, &Vec<u32>)> = errors.iter().collect();
    by_count.sort_by_key(|(_, times)| std::cmp::Reverse(times.len()));
    let mut lines: Vec<Line> = by_count
        .into_iter()
        .take(MOST_ERRORS)
        .map(|(label, times)| {
            let mut per_minute = vec![0u32; last as usize + 1];
            for &at in times {
                per_minute[((at / 60_000) as usize).min(last as usize)] += 1;
            }
            Line {
                label: label.clone(),
                points: (0..=last)
                    .map(|m| (f64::from(m + 1), f64::from(per_minute[m as usize])))
                    .collect(),
            }
        })
        .collect();
    if lines.is_empty() {
        lines.push(Line {
            label: "no errors".to_owned(),
            points: vec![(0.0, 0.0), (f64::from(last), 0.0)],
        });
    }
    Chart {
        title: "Errors by code",
        x: MINUTES,
        y: "refused or failed requests in the minute",
        lines,
    }
}
