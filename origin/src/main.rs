//! The `origin` binary: serves the origin (the default), applies migrations, or seeds the
//! demo on-sale, configured by `config/origin.toml`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use origin::config::Config;
use origin::seed::{self, DemoConfig};
use std::path::PathBuf;

/// The onsale origin: catalog, holds, orders and tickets over PostgreSQL.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Configuration file.
    #[arg(long, default_value = "config/origin.toml")]
    config: PathBuf,
    /// Validate the configuration, print the effective values and exit.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create the demo on-sale (idempotent) and exit.
    Seed {
        #[arg(long, default_value = "config/demo.toml")]
        demo: PathBuf,
    },
    /// Print the OpenAPI document of every route and exit.
    Openapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    onsale_contract::logging::init("info,sqlx=warn");
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        println!("{}", serde_json::to_string_pretty(&origin::openapi())?);
        return Ok(());
    }
    let config = Config::load(&cli.config)?;
    if cli.check {
        if let Some(Command::Seed { demo }) = &cli.command {
            print!(
                "{}",
                onsale_contract::config::render(&DemoConfig::load(demo)?)
            );
        }
        print!("{}", onsale_contract::config::render(&config));
        return Ok(());
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Openapi => unreachable!("printed before the configuration is read"),
        Command::Migrate => {
            let pool = origin::db::connect(&config.database).await?;
            let mut conn = pool.acquire().await?;
            origin::db::migrate(&mut conn, origin::db::wants_sandbox(&config)).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Seed { demo } => {
            let demo = DemoConfig::load(&demo)?;
            let pool = origin::db::connect(&config.database).await?;
            let mut conn = pool.acquire().await?;
            origin::db::migrate(&mut conn, origin::db::wants_sandbox(&config)).await?;
            drop(conn);
            let report = seed::seed(&pool, &demo, &config.accounts, chrono::Utc::now()).await?;
            for line in &report.created {
                tracing::info!("created {line}");
            }
            for line in &report.existing {
                tracing::info!("kept existing {line}");
            }
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let mut running = origin::start(config).await?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = running.wait() => return result.context("server failed"),
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down: draining in-flight requests");
    running.shutdown().await.context("shutdown")
}
