//! The `onsale-sim` binary: `model SCENARIO` predicts the on-sale a scenario file
//! describes and prints the prediction as JSON, or writes it as a report directory with
//! `--out`; `run SCENARIO` sends the scenario's fans through a running edge and writes the
//! run's report beside the model's prediction.

use anyhow::Context;
use clap::{Parser, Subcommand};
use onsale_sim::run::{Options, Target};
use onsale_sim::scenario::{Count, Scenario};
use onsale_sim::{model, report, run};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Send the scenario's fans through a running edge (scripts/up) and report what they saw.
    Run {
        /// The scenario file (config/scenarios/*.toml); its show must have every seat on sale.
        scenario: PathBuf,
        /// The edge's public listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        edge: SocketAddr,
        /// The origin's configuration: its database (DATABASE_URL overrides it, as for the
        /// origin) gets the fans' accounts, hashed as it says.
        #[arg(long, default_value = "config/origin.toml")]
        origin_config: PathBuf,
        /// The report's directory (default: .onsale/sim/<scenario>-<time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Stop after this many minutes whatever is left.
        #[arg(long, default_value_t = 180)]
        limit_minutes: u64,
        /// No progress bar (it is drawn only on a terminal anyway).
        #[arg(long)]
        quiet: bool,
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
    onsale_contract::logging::init("onsale_sim=info,warn");
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
        Command::Run {
            scenario,
            edge,
            origin_config,
            out,
            limit_minutes,
            quiet,
        } => {
            let scenario = Scenario::load(&scenario)?;
            let config = origin::config::Config::load(&origin_config)?;
            let started = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            let name = format!("{}-{started}", scenario.name);
            let out = out.unwrap_or_else(|| PathBuf::from(".onsale/sim").join(&name));
            let runtime = tokio::runtime::Runtime::new()?;
            let outcome = runtime.block_on(async {
                let pool = origin::db::connect(&config.database)
                    .await
                    .context("connecting to the origin's database")?;
                let target = Target {
                    edge,
                    pool,
                    accounts: config.accounts.clone(),
                };
                let options = Options {
                    progress: !quiet,
                    limit: Duration::from_secs(limit_minutes * 60),
                    sample_every: Duration::from_secs(2),
                    name,
                };
                anyhow::Ok(run::run(&scenario, &target, &options).await?)
            })?;
            let prediction = model::predict(&scenario);
            report::write_run(&out, &scenario, &outcome, &prediction)?;
            print(&format!("report in {}", out.display()))?;
        }
    }
    Ok(())
}
