//! `onsale-chaos`: the chaos run (`scripts/chaos` builds the parts and starts PostgreSQL).
//! Writes `report.json` in the run directory and exits non-zero unless every promise held.

use clap::Parser;
use std::path::PathBuf;

/// A scripted on-sale through real processes while their parts fail one at a time.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// The short form (shorter outages, fewer accounts), as the test suite runs it.
    #[arg(long)]
    short: bool,
    /// Seeds every fan's choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the built `origin`, `edge-proxy` and `seatmap-builder` are.
    #[arg(long, default_value = "target/debug")]
    bin_dir: PathBuf,
    /// Where logs, configuration files and report.json go.
    #[arg(long, default_value = ".onsale/chaos/run")]
    run_dir: PathBuf,
    /// A PostgreSQL role that may create databases.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// A shell command that restarts that PostgreSQL server in fast mode.
    #[arg(long, env = "ONSALE_CHAOS_RESTART_POSTGRES")]
    restart_postgres: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    onsale_contract::logging::init("info");
    let cli = Cli::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let run_dir = std::path::absolute(&cli.run_dir)?;
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)?;
    }
    let report = onsale_chaos::run(onsale_chaos::Options {
        short: cli.short,
        seed: cli.seed,
        bin_dir: std::path::absolute(&cli.bin_dir)?,
        config_dir: root.join("../config"),
        chaos_dir: root,
        run_dir: run_dir.clone(),
        database_url: cli.database_url,
        restart_postgres: cli.restart_postgres,
    })
    .await;
    let path = run_dir.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("{}", onsale_chaos::summary(&report));
    println!("report: {}", path.display());
    anyhow::ensure!(report.passed, "the chaos run found broken promises");
    Ok(())
}
