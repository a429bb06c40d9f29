//! argon2id verifications per second at the parameters of `config/origin.toml [accounts]`:
//! what one core, and all of them, can check in a sign-in storm.
//!
//! Usage: argon2_rate [CONFIG] [SECONDS]   (defaults: config/origin.toml, 10)
//!
//! Verifies one password against its hash in a loop, first on one thread, then on one
//! thread per core, for SECONDS each. The rate per core is verifications per second of CPU
//! time the verifying threads got (Linux's `/proc/thread-self/schedstat`), so other load
//! on a shared machine does not lower it; the wall-clock rates are printed beside it. Prints
//! the cores 1,000 sign-ins per second need. Run it in release:
//! `cargo run --release -p origin --example argon2_rate`.

use origin::accounts::passwords::{argon2, hash, verify};
use std::path::PathBuf;
use std::time::{Duration, Instant};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// CPU time this thread has run, in nanoseconds.
fn thread_cpu_ns() -> Result<u64, AnyError> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let first = stat.split_whitespace().next().ok_or("empty schedstat")?;
    Ok(first.parse()?)
}

/// (verifications, CPU nanoseconds) of one thread verifying `phc` for `budget`.
fn verify_for(
    config: &origin::config::AccountsConfig,
    phc: &str,
    budget: Duration,
) -> Result<(u64, u64), AnyError> {
    let argon = argon2(config)?;
    let (started, cpu) = (Instant::now(), thread_cpu_ns()?);
    let mut done = 0;
    while started.elapsed() < budget {
        if !verify(&argon, b"the bench passphrase", phc) {
            return Err("the bench password did not verify".into());
        }
        done += 1;
    }
    Ok((done, thread_cpu_ns()? - cpu))
}

fn main() -> Result<(), AnyError> {
    let args: Vec<String> = std::env::args().collect();
    let config_path = PathBuf::from(args.get(1).map_or("config/origin.toml", String::as_str));
    let seconds: u64 = args.get(2).map_or(Ok(10), |s| s.parse())?;
    let config = origin::config::Config::load(&config_path)?.accounts;
    let phc = hash(&argon2(&config)?, b"the bench passphrase")?;
    let budget = Duration::from_secs(seconds);
    let cores = std::thread::available_parallelism()?.get();
    println!(
        "argon2id m={} KiB t={} p={}; {cores} core(s); {seconds} s per run",
        config.argon2_memory_kib, config.argon2_iterations, config.argon2_parallelism
    );

    let (done, cpu_ns) = verify_for(&config, &phc, budget)?;
    let per_cpu_s = |done: u64, cpu_ns: u64| done as f64 / (cpu_ns as f64 / 1e9);
    println!(
        "1 thread:   {:.1} verifications/s of CPU ({:.1} ms each); {:.1}/s wall clock",
        per_cpu_s(done, cpu_ns),
        cpu_ns as f64 / 1e6 / done as f64,
        done as f64 / seconds as f64
    );
    let runs: Vec<(u64, u64)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..cores)
            .map(|_| scope.spawn(|| verify_for(&config, &phc, budget)))
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().map_err(|_| "a bench thread panicked")?)
            .collect::<Result<_, AnyError>>()
    })?;
    let (done, cpu_ns) = runs
        .iter()
        .fold((0, 0), |(d, c), (done, cpu)| (d + done, c + cpu));
    let per_core = per_cpu_s(done, cpu_ns);
    println!(
        "{cores} threads: {per_core:.1} verifications/s per core of CPU; {:.1}/s wall clock in all",
        done as f64 / seconds as f64
    );
    println!(
        "1,000 sign-ins/s need {:.0} cores at {per_core:.1} per core",
        (1000.0 / per_core).ceil()
    );
    Ok(())
}
