//! `seatmap-builder`: builds every interval under a lease (`run`, the default) or once.

use anyhow::Context;
use clap::{Parser, Subcommand};
use onsale_contract::clock::Clock;
use seatmap_builder::config::Config;
use std::path::PathBuf;
use std::sync::Arc;

/// Builds seat-map and availability snapshots and publishes them for the edge and CDNs.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Configuration file.
    #[arg(long, default_value = "config/seatmap-builder.toml")]
    config: PathBuf,
    /// Validate the configuration, print the effective values and exit.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Build every interval until stopped (the default).
    Run,
    /// Build every show once, publish, and exit.
    Once,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    onsale_contract::logging::init("info,sqlx=warn");
    let cli = Cli::parse();
    let config = Config::load(&cli.config)?;
    if cli.check {
        print!("{}", onsale_contract::config::render(&config));
        return Ok(());
    }
    match cli.command.unwrap_or(Command::Run) {
        Command::Once => {
            let metrics = Arc::new(seatmap_builder::metrics::Metrics::new());
            let mut builder = seatmap_builder::Builder::new(config, metrics)?;
            let reports = builder.build_all(Clock::system().now_ms()).await?;
            for report in &reports {
                tracing::info!(show = %report.show_id, availability = %report.availability_etag,
                    changed = report.availability_changed, "built");
            }
            Ok(())
        }
        Command::Run => {
            let holder = format!(
                "{}:{}",
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .unwrap_or_default()
                    .trim(),
                std::process::id()
            );
            let running = seatmap_builder::start(config, holder, Clock::system()).await?;
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .context("installing the SIGTERM handler")?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("stopping: releasing the build lease");
            running.shutdown().await;
            Ok(())
        }
    }
}
