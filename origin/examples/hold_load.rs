//! HTTP load for the on-sale's write path, driven by `bench/holds.sh`.
//!
//! Usage: hold_load BASE_URL SHOW_ID SIGNING_KEY_PEM FIRST_SEAT_ID CLAIMS SEATS_PER_CLAIM CONCURRENCY [checkout]
//!
//! Claim k asks for seats FIRST_SEAT_ID + k*SEATS_PER_CLAIM .. + SEATS_PER_CLAIM, each with a
//! fresh Idempotency-Key; fans get two claims each (the default per-fan limit is 8 seats)
//! and their admission tokens are signed up front, so the origin's token cache is warm after
//! a fan's first call, as in a real on-sale. Prints holds/s, p50/p99/max and the outcome
//! counts. With `checkout`, each held claim is then ordered (`POST /v1/orders`) and paid
//! (`POST /v1/payments/{id}/confirm`, the sandbox's `pm_card_ok`) by the same client, and
//! each step gets its own rate, latencies and outcome counts; every claim is then a fan of
//! its own, since a paid order spends its admission.

use onsale_contract::tokens::{Signer, TokenType};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: hold_load BASE_URL SHOW_ID SIGNING_KEY_PEM FIRST_SEAT_ID CLAIMS SEATS_PER_CLAIM CONCURRENCY [checkout]";

/// One step's latencies and outcome counts (status 0: no answer).
#[derive(Default)]
struct Step {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, usize>,
}

impl Step {
    fn merge(&mut self, other: Step) {
        self.latencies.extend(other.latencies);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
    }

    /// Prints `{name}_per_s` (answers with `success`), p50/p99/max and the outcome counts.
    fn report(mut self, name: &str, success: u16, elapsed: Duration) {
        self.latencies.sort();
        let latencies = &self.latencies;
        let pct = |p: f64| match latencies.len() {
            0 => 0.0,
            n => latencies[((n as f64 * p) as usize).min(n - 1)].as_secs_f64() * 1000.0,
        };
        let succeeded = self.statuses.get(&success).copied().unwrap_or(0);
        println!(
            "{name}_per_s={:.0}",
            succeeded as f64 / elapsed.as_secs_f64()
        );
        println!("{name}_p50_ms={:.2}", pct(0.50));
        println!("{name}_p99_ms={:.2}", pct(0.99));
        println!("{name}_max_ms={:.2}", pct(1.0));
        println!("{name}_statuses={:?}", self.statuses);
    }
}

/// Sends `request`, records its latency and status in `step`, and returns the body of an
/// answer with status `success`.
async fn timed(step: &mut Step, request: reqwest::RequestBuilder, success: u16) -> Option<Value> {
    let sent = Instant::now();
    let (status, body) = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.bytes().await.ok())
        }
        Err(_) => (0, None),
    };
    step.latencies.push(sent.elapsed());
    *step.statuses.entry(status).or_default() += 1;
    (status == success)
        .then(|| body.and_then(|b| serde_json::from_slice(&b).ok()))
        .flatten()
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let args: Vec<String> = std::env::args().collect();
    let (args, checkout) = match args.split_last() {
        Some((mode, rest)) if mode == "checkout" => (rest, true),
        _ => (args.as_slice(), false),
    };
    let [_, base, show, key, first, claims, per_claim, concurrency] = args else {
        return Err(USAGE.into());
    };
    let (first, claims, per_claim, concurrency): (i64, usize, i64, usize) = (
        first.parse()?,
        claims.parse()?,
        per_claim.parse()?,
        concurrency.parse()?,
    );
    let signer = Signer::from_pem(&std::fs::read_to_string(key)?, "onsale-edge")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let claims_per_fan = if checkout { 1 } else { 2 };
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..claims.div_ceil(claims_per_fan))
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
    let base = Arc::new(base.clone());
    let holds_url = Arc::new(format!("{base}/v1/shows/{show}/holds"));
    let next = Arc::new(AtomicUsize::new(0));
    let run = format!("{:x}", now);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, base, holds_url, next, tokens, run) = (
                http.clone(),
                base.clone(),
                holds_url.clone(),
                next.clone(),
                tokens.clone(),
                run.clone(),
            );
            tokio::spawn(async move {
                let (mut holds, mut orders, mut payments) = <(Step, Step, Step)>::default();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= claims {
                        break;
                    }
                    let token = &tokens[k / claims_per_fan];
                    let seats: Vec<i64> = (0..per_claim)
                        .map(|i| first + k as i64 * per_claim + i)
                        .collect();
                    let hold = http
                        .post(holds_url.as_str())
                        .bearer_auth(token)
                        .header("idempotency-key", format!("{run}-{k}"))
                        .json(&json!({ "seat_ids": seats }));
                    let Some(hold) = timed(&mut holds, hold, 201).await else {
                        continue;
                    };
                    if !checkout {
                        continue;
                    }
                    let order = http
                        .post(format!("{base}/v1/orders"))
                        .bearer_auth(token)
                        .header("idempotency-key", format!("{run}-{k}-order"))
                        .json(&json!({ "hold_id": hold["hold_id"] }));
                    let Some(order) = timed(&mut orders, order, 201).await else {
                        continue;
                    };
                    let payment = order["payment"]["payment_id"].as_str().unwrap_or_default();
                    let confirm = http
                        .post(format!("{base}/v1/payments/{payment}/confirm"))
                        .bearer_auth(token)
                        .header("idempotency-key", format!("{run}-{k}-pay"))
                        .json(&json!({ "payment_method": "pm_card_ok" }));
                    timed(&mut payments, confirm, 200).await;
                }
                (holds, orders, payments)
            })
        })
        .collect();
    let (mut holds, mut orders, mut payments) = <(Step, Step, Step)>::default();
    for worker in workers {
        let (h, o, p) = worker.await?;
        holds.merge(h);
        orders.merge(o);
        payments.merge(p);
    }
    let elapsed = started.elapsed();
    println!("http_seconds={:.3}", elapsed.as_secs_f64());
    holds.report("http_holds", 201, elapsed);
    if checkout {
        orders.report("http_orders", 201, elapsed);
        payments.report("http_payments", 200, elapsed);
    }
    Ok(())
}
