//! Availability build benchmark for one show; driven by `bench/seatmap-builder.sh`, which
//! also times `COPY` of the same rows for the ratio.
//!
//! Usage: bench CONFIG SHOW_ID ROUNDS   (DATABASE_URL / REDIS_URL override the config)
//!
//! Sells half the seats at random (seeded), then times ROUNDS full builds of the show
//! (seat-state query, document, gzip, brotli, publish), each after one seat changed so every
//! round really encodes and publishes. Then reports document sizes for that pattern and for
//! a realistic one: blocks of 2-6 adjacent seats, front rows and lower levels selling best.

use onsale_contract::clock::now_ms;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seatmap_builder::config::Config;
use seatmap_builder::metrics::Metrics;
use seatmap_builder::{Builder, ShowToBuild};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

type AnyError = Box<dyn std::error::Error>;

/// Marks exactly the seats at `sold` layout positions as sold to one bench order.
async fn apply(pool: &PgPool, show: Uuid, sold: &[i32]) -> Result<(), AnyError> {
    let hold = Uuid::new_v4();
    let order = Uuid::new_v4();
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE seat_inventory SET status = 'available', order_id = NULL WHERE show_id = $1 AND status = 'sold'")
        .bind(show)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO holds (id, show_id, fan_id, status, seat_count, total_cents, currency, expires_at, ended_at, seat_ids)
                 SELECT $1, $2, 'bench', 'converted', 1, 0, 'GBP', now(), now(), ARRAY[min(seat_id)]
                 FROM seat_inventory WHERE show_id = $2")
        .bind(hold)
        .bind(show)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO orders (id, show_id, hold_id, fan_id, status, total_cents, currency, expires_at)
                 VALUES ($1, $2, $3, 'bench', 'confirmed', 0, 'GBP', now())")
        .bind(order)
        .bind(show)
        .bind(hold)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE seat_inventory SET status = 'sold', order_id = $3 WHERE show_id = $1 AND layout_idx = ANY($2)")
        .bind(show)
        .bind(sold)
        .bind(order)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

fn random_half(seats: &[(i32, String, String, String)], rng: &mut StdRng) -> Vec<i32> {
    seats
        .iter()
        .filter(|_| rng.random_bool(0.5))
        .map(|s| s.0)
        .collect()
}

/// Blocks of 2-6 adjacent seats within a row; a block sells with a probability that falls
/// from the front row to the back and from the first price tier to the last.
fn realistic_blocks(seats: &[(i32, String, String, String)], rng: &mut StdRng) -> Vec<i32> {
    let mut sold = Vec::new();
    let mut i = 0;
    while i < seats.len() {
        let (_, section, row, tier) = &seats[i];
        let row_rank = seats[..i]
            .iter()
            .rev()
            .take_while(|s| &s.1 == section)
            .filter(|s| &s.2 != row)
            .count();
        let len = rng.random_range(2..=6);
        let tier_bonus = match tier.as_str() {
            "P1" => 0.25,
            "P2" => 0.1,
            "P3" => 0.0,
            _ => -0.1,
        };
        let p = (0.75 - row_rank as f64 / 2500.0 + tier_bonus).clamp(0.05, 0.95);
        let sell = rng.random_bool(p);
        let mut taken = 0;
        while i < seats.len() && taken < len && &seats[i].1 == section && &seats[i].2 == row {
            if sell {
                sold.push(seats[i].0);
            }
            i += 1;
            taken += 1;
        }
    }
    sold
}

fn sizes(metrics: &Metrics, show: &str) -> (i64, i64, i64) {
    let get = |encoding| {
        metrics
            .document_bytes
            .with_label_values(&[show, "availability", encoding])
            .get()
    };
    (get("identity"), get("gzip"), get("br"))
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let args: Vec<String> = std::env::args().collect();
    let [_, config, show, rounds] = args.as_slice() else {
        return Err("usage: bench CONFIG SHOW_ID ROUNDS".into());
    };
    let config = Config::load(config.as_ref())?;
    let show: Uuid = show.parse()?;
    let rounds: usize = rounds.parse()?;
    let pool = PgPool::connect(config.database.url.expose()).await?;
    let seats: Vec<(i32, String, String, String)> = sqlx::query_as(
        "SELECT i.layout_idx, i.section_id, s.row_label, i.price_tier FROM seat_inventory i
         JOIN seats s ON s.id = i.seat_id WHERE i.show_id = $1 ORDER BY i.layout_idx",
    )
    .bind(show)
    .fetch_all(&pool)
    .await?;
    let show_to_build: ShowToBuild = sqlx::query_as(
        "SELECT id AS show_id, layout_version,
                (extract(epoch FROM on_sale_at) * 1000)::int8 AS on_sale_at_ms,
                NULL::int8 AS presale_starts_at_ms, NULL::int8 AS presale_ends_at_ms
         FROM shows WHERE id = $1",
    )
    .bind(show)
    .fetch_one(&pool)
    .await?;
    let mut rng = StdRng::seed_from_u64(2027);
    let metrics = Arc::new(Metrics::new());
    let mut builder = Builder::new(config, metrics.clone())?;
    let label = show.to_string();

    let sold = random_half(&seats, &mut rng);
    apply(&pool, show, &sold).await?;
    let sold_set: std::collections::HashSet<i32> = sold.iter().copied().collect();
    let unsold: Vec<i32> = seats
        .iter()
        .map(|s| s.0)
        .filter(|i| !sold_set.contains(i))
        .collect();
    builder.build_show(show_to_build, now_ms()).await?; // warm: layout cached
    let mut times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        // One seat changes between rounds (untimed), so each round encodes and publishes.
        let flip = unsold[round % unsold.len()];
        sqlx::query("UPDATE seat_inventory SET status = CASE status WHEN 'available' THEN 'unavailable' WHEN 'unavailable' THEN 'available' ELSE status END WHERE show_id = $1 AND layout_idx = $2")
            .bind(show)
            .bind(flip)
            .execute(&pool)
            .await?;
        let started = Instant::now();
        let report = builder.build_show(show_to_build, now_ms()).await?;
        times.push(started.elapsed());
        assert!(report.availability_changed, "every timed round publishes");
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let random = sizes(&metrics, &label);

    apply(&pool, show, &realistic_blocks(&seats, &mut rng)).await?;
    builder.build_show(show_to_build, now_ms()).await?;
    let blocks = sizes(&metrics, &label);
    let sold_share: f64 = sqlx::query_scalar(
        "SELECT avg((status = 'sold')::int)::float8 FROM seat_inventory WHERE show_id = $1",
    )
    .bind(show)
    .fetch_one(&pool)
    .await?;

    println!("build_ms_min={:.2}", ms(times[0]));
    println!("build_ms_p50={:.2}", ms(times[times.len() / 2]));
    println!("build_ms_max={:.2}", ms(times[times.len() - 1]));
    println!(
        "random_half_bytes identity={} gzip={} br={}",
        random.0, random.1, random.2
    );
    println!(
        "blocks_bytes identity={} gzip={} br={} sold_share={sold_share:.3}",
        blocks.0, blocks.1, blocks.2
    );
    Ok(())
}
