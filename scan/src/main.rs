//! `onsale-scan`: checks ticket QR payloads offline. See the library for what it checks.

use anyhow::Context;
use clap::Parser;
use onsale_scan::{Gate, Verdict};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

/// Checks ticket payloads with the published key set and the show's revocation list, no
/// network needed. Prints one JSON line per payload; exits 0 when every one is valid, 1
/// when any is not, 2 when the files cannot be used.
#[derive(Parser)]
#[command(name = "onsale-scan", version)]
struct Args {
    /// The key set, as `GET /.well-known/onsale/ticket-keys.json` served it.
    #[arg(long)]
    keys: PathBuf,
    /// The show this gate admits to; a ticket for another is `wrong_show`.
    #[arg(long)]
    show: Option<uuid::Uuid>,
    /// A page of the show's revocation list, as `GET /v1/shows/{id}/revocations` served
    /// it; repeat for every page synced.
    #[arg(long)]
    revocations: Vec<PathBuf>,
    /// The payloads; none: one per line on standard input.
    payloads: Vec<String>,
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("onsale-scan: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let args = Args::parse();
    let pages: Vec<&std::path::Path> = args.revocations.iter().map(PathBuf::as_path).collect();
    let gate = Gate::load(&args.keys, args.show, &pages)?;
    let payloads: Vec<String> = if args.payloads.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<_, _>>()
            .context("reading payloads from standard input")?
    } else {
        args.payloads
    };
    let mut all_valid = true;
    for payload in payloads.iter().filter(|p| !p.trim().is_empty()) {
        let check = gate.check(payload);
        all_valid &= check.verdict == Verdict::Valid;
        println!("{}", serde_json::to_string(&check)?);
    }
    Ok(all_valid)
}
