//! HTTP load for `POST /v1/shows/{id}/holds`, driven by `bench/holds.sh`.
//!
//! Usage: hold_load BASE_URL SHOW_ID SIGNING_KEY_PEM FIRST_SEAT_ID CLAIMS SEATS_PER_CLAIM CONCURRENCY
//!
//! Claim k asks for seats FIRST_SEAT_ID + k*SEATS_PER_CLAIM .. + SEATS_PER_CLAIM, each with a
//! fresh Idempotency-Key; fans get two claims each (the default per-fan limit is 8 seats)
//! and their admission tokens are signed up front, so the origin's token cache is warm after
//! a fan's first call, as in a real on-sale. Prints holds/s, p50/p99/max and the outcome
//! counts.

use onsale_contract::tokens::{Signer, TokenType};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, show, key, first, claims, per_claim, concurrency] = args.as_slice() else {
        return Err("usage: hold_load BASE_URL SHOW_ID SIGNING_KEY_PEM FIRST_SEAT_ID CLAIMS SEATS_PER_CLAIM CONCURRENCY".into());
    };
    let (first, claims, per_claim, concurrency): (i64, usize, i64, usize) = (
        first.parse()?,
        claims.parse()?,
        per_claim.parse()?,
        concurrency.parse()?,
    );
    let signer = Signer::from_pem(&std::fs::read_to_string(key)?, "onsale-edge")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..claims.div_ceil(2))
            .map(|fan| {
                signer.issue(
                    TokenType::Admit,
                    &format!("bench-fan-{fan}"),
                    show,
                    now,
                    3600,
                    None,
                )
            })
            .collect(),
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let url = Arc::new(format!("{base}/v1/shows/{show}/holds"));
    let next = Arc::new(AtomicUsize::new(0));
    let run = format!("{:x}", now);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, next, tokens, run) = (
                http.clone(),
                url.clone(),
                next.clone(),
                tokens.clone(),
                run.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= claims {
                        break;
                    }
                    let seats: Vec<i64> = (0..per_claim)
                        .map(|i| first + k as i64 * per_claim + i)
                        .collect();
                    let sent = Instant::now();
                    let response = http
                        .post(url.as_str())
                        .bearer_auth(&tokens[k / 2])
                        .header("idempotency-key", format!("{run}-{k}"))
                        .json(&serde_json::json!({ "seat_ids": seats }))
                        .send()
                        .await;
                    let status = match response {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let _ = r.bytes().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    latencies.push(sent.elapsed());
                    *statuses.entry(status).or_default() += 1;
                }
                (latencies, statuses)
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = Vec::with_capacity(claims);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for worker in workers {
        let (l, s) = worker.await?;
        latencies.extend(l);
        for (status, n) in s {
            *statuses.entry(status).or_default() += n;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1000.0
    };
    let created = statuses.get(&201).copied().unwrap_or(0);
    println!("http_seconds={:.3}", elapsed.as_secs_f64());
    println!(
        "http_holds_per_s={:.0}",
        created as f64 / elapsed.as_secs_f64()
    );
    println!("http_p50_ms={:.2}", pct(0.50));
    println!("http_p99_ms={:.2}", pct(0.99));
    println!("http_max_ms={:.2}", pct(1.0));
    println!("http_statuses={statuses:?}");
    Ok(())
}
