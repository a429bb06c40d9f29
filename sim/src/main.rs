//! The `onsale-sim` binary: `model SCENARIO` predicts the on-sale a scenario file
//! describes and prints the prediction as JSON, or writes it as a report directory with
//! `--out`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use onsale_sim::{model, report, scenario::Scenario};
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
        Command::Model { scenario, out } => {
            let scenario = Scenario::load(&scenario)?;
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
