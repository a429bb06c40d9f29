//! The `onsale-sim` binary: `model SCENARIO` predicts the on-sale a scenario file
//! describes and prints the prediction as JSON, or writes it as a report directory with
//! `--out`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use onsale_sim::scenario::{Count, Scenario};
use onsale_sim::{model, report};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "onsale-sim", about = "Rehearse an on-sale")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Predict a scenario's sell-out time, waits, peak admissions and origin load.
    Model {
        /// The scenario file (config/scenarios/*.toml).
        scenario: PathBuf,
        /// Write summary.json, report.md and the charts (PNG and SVG) here instead.
        #[arg(long)]
        out: Option<PathBuf>,
        /// What if the show admitted this many fans a minute (instead of the scenario's).
        #[arg(long)]
        admit_per_minute: Option<Count>,
        /// What if at most this many admissions were open at once.
        #[arg(long)]
        max_active: Option<Count>,
    },
}

/// Writes `text` and a newline to stdout; a reader that stopped reading (`| head`) is
/// not an error.
fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Model {
            scenario,
            out,
            admit_per_minute,
            max_active,
        } => {
            let mut scenario = Scenario::load(&scenario)?;
            let room = &mut scenario.room;
            room.admit_per_minute = admit_per_minute.unwrap_or(room.admit_per_minute);
            room.max_active = max_active.unwrap_or(room.max_active);
            let prediction = model::predict(&scenario);
            match out {
                Some(dir) => {
                    report::write_prediction(&dir, &scenario, &prediction)?;
                    print(&format!("report in {}", dir.display()))?;
                }
                None => {
                    let json =
                        serde_json::to_string_pretty(&prediction).context("the prediction")?;
                    print(&json)?;
                }
            }
        }
    }
    Ok(())
}
