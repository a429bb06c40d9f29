use clap::Parser;
use edge_proxy::config::Config;
use std::path::PathBuf;

/// The onsale edge: a Pingora gateway in front of the origin pool.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Configuration file.
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
    let server = edge_proxy::build_server(&config)?;
    tracing::info!(public = %config.listen.public, admin = %config.listen.admin, "edge starting");
    // SIGTERM drains gracefully; SIGINT (Ctrl-C) stops at once.
    server.run(pingora::server::RunArgs::default());
    Ok(())
}
