//! `edge-proxy`: runs the edge from its configuration file, or checks that file.

use clap::Parser;
use edge_proxy::config::Config;
use std::path::PathBuf;

/// The onsale edge: a Pingora gateway in front of the origin pool.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Configuration file; re-read on SIGHUP and when it changes.
    #[arg(long, default_value = "config/edge.toml")]
    config: PathBuf,
    /// Validate the configuration, print the effective values and exit.
    #[arg(long)]
    check: bool,
}

// Not `#[tokio::main]`: Pingora builds and owns its runtimes.
fn main() -> anyhow::Result<()> {
    onsale_contract::logging::init("info");
    let cli = Cli::parse();
    let config = Config::load(&cli.config)?;
    if cli.check {
        print!("{}", onsale_contract::config::render(&config));
        return Ok(());
    }
    tracing::info!(public = %config.listen.public, admin = %config.listen.admin, "edge starting");
    let (server, _) = edge_proxy::build_server(edge_proxy::Options {
        config_path: Some(cli.config),
        ..edge_proxy::Options::new(config)
    })?;
    // SIGTERM drains gracefully; SIGINT (Ctrl-C) stops at once; SIGHUP reloads the config.
    server.run(pingora::server::RunArgs::default());
    Ok(())
}
