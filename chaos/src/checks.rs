//! What must hold after every fault and at the end: the database's truths (asked of
//! PostgreSQL directly), the queue's (from what fans were told), and the admission rate.

use crate::stack::{metric_sum, Stack};
use crate::traffic::FanRecord;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Each check: what it counts, and the SQL counting rows that break it.
const TRUTHS: [(&str, &str); 6] = [
    (
        "seats with two live holds",
        "SELECT count(*) FROM (
             SELECT 1 FROM holds h CROSS JOIN unnest(h.seat_ids) AS seat
             WHERE h.status = 'active' AND h.expires_at > now()
             GROUP BY h.show_id, seat HAVING count(*) > 1) twice",
    ),
    (
        "seats held without a live hold",
        "SELECT count(*) FROM seat_inventory i
         WHERE i.status = 'held' AND i.hold_expires_at > now()
           AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.id = i.hold_id
                           AND h.status = 'active' AND i.seat_id = ANY(h.seat_ids))",
    ),
    (
        "seats with two valid tickets",
        "SELECT count(*) FROM (SELECT 1 FROM tickets WHERE status = 'valid'
                               GROUP BY show_id, seat_id HAVING count(*) > 1) twice",
    ),
    (
        "sold seats outside a confirmed order",
        "SELECT count(*) FROM seat_inventory i LEFT JOIN orders o ON o.id = i.order_id
         WHERE i.status = 'sold' AND o.status IS DISTINCT FROM 'confirmed'",
    ),
    (
        "confirmed orders without one valid ticket per seat",
        "SELECT count(*) FROM orders o WHERE o.status = 'confirmed'
           AND (SELECT count(*) FROM order_items WHERE order_id = o.id)
               <> (SELECT count(*) FROM tickets WHERE order_id = o.id AND status = 'valid')",
    ),
    (
        "captured payments neither ticketed nor refunded",
        "SELECT count(*) FROM payments p JOIN orders o ON o.id = p.order_id
         WHERE p.status IN ('succeeded', 'refunded')
           AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.id)
           AND NOT (o.status = 'confirmed'
                    AND (SELECT count(*) FROM tickets t WHERE t.order_id = o.id AND t.status = 'valid')
                      = (SELECT count(*) FROM order_items i WHERE i.order_id = o.id))",
    ),
];

/// The truths broken right now, each with how many rows break it.
pub async fn truths(db: &PgPool) -> Vec<String> {
    let mut broken = Vec::new();
    for (truth, sql) in TRUTHS {
        match sqlx::query_scalar::<_, i64>(sql).fetch_one(db).await {
            Ok(0) => {}
            Ok(rows) => broken.push(format!("{truth}: {rows}")),
            Err(error) => broken.push(format!("{truth}: cannot check: {error}")),
        }
    }
    broken
}

/// Money still moving: refunds owed and payments waiting on the provider.
pub async fn unsettled(db: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM refunds WHERE status = 'pending')
              + (SELECT count(*) FROM payments WHERE status = 'processing')",
    )
    .fetch_one(db)
    .await
    .unwrap_or(i64::MAX)
}

/// The origins' own reconciliation: the breaches each last counted.
pub async fn reconciliation_breaches(stack: &Stack, http: &reqwest::Client) -> Vec<String> {
    let mut broken = Vec::new();
    for origin in &stack.origins {
        match origin.metrics(http).await {
            Some(page) => {
                let breaches = metric_sum(&page, "onsale_origin_reconcile_breaches");
                if breaches != 0.0 {
                    broken.push(format!(
                        "{}: {breaches} reconciliation breaches",
                        origin.name
                    ));
                }
            }
            None => broken.push(format!("{}: no metrics", origin.name)),
        }
    }
    broken
}

/// The admission rate after a fault: fans called per minute over a window.
#[derive(Debug, Serialize)]
pub struct RateCheck {
    /// The show's setting.
    pub setting_per_minute: u32,
    /// Over the first window within 10% of the setting, or the last one measured.
    pub measured_per_minute: f64,
    /// From the repair to the end of that window; `None` if none was within 10% in time.
    pub back_within_s: Option<f64>,
}

/// Watches the queue's `serving` counter (fans called so far) through the edges' operations
/// API for up to `within` after `since`, for a window of `window` whose rate is within 10% of
/// the setting.
pub async fn admission_rate(
    stack: &Stack,
    http: &reqwest::Client,
    setting_per_minute: u32,
    since: Instant,
    window: Duration,
    within: Duration,
) -> RateCheck {
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let mut measured = 0.0;
    while since.elapsed() <= within {
        if let Some(serving) = serving(stack, http).await {
            let now = Instant::now();
            samples.push((now, serving));
            if let Some(&(start, first)) = samples.iter().rev().find(|(t, _)| now - *t >= window) {
                let minutes = (now - start).as_secs_f64() / 60.0;
                measured = (serving - first) as f64 / minutes;
                if (measured - f64::from(setting_per_minute)).abs()
                    <= 0.1 * f64::from(setting_per_minute)
                {
                    return RateCheck {
                        setting_per_minute,
                        measured_per_minute: measured,
                        back_within_s: Some((now - since).as_secs_f64()),
                    };
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    RateCheck {
        setting_per_minute,
        measured_per_minute: measured,
        back_within_s: None,
    }
}

/// The show's `serving` counter as the freshest edge saw it at its last step.
async fn serving(stack: &Stack, http: &reqwest::Client) -> Option<u64> {
    let mut freshest: Option<(i64, u64)> = None;
    for edge in &stack.edges {
        let url = format!("http://{}/admin/shows/{}/queue", edge.ops, stack.show);
        let Ok(reply) = http.get(url).send().await else {
            continue;
        };
        let Ok(report) = reply.json::<serde_json::Value>().await else {
            continue;
        };
        if let (Some(as_of), Some(serving)) =
            (report["as_of_ms"].as_i64(), report["serving"].as_u64())
        {
            if freshest.is_none_or(|(seen, _)| as_of > seen) {
                freshest = Some((as_of, serving));
            }
        }
    }
    freshest.map(|(_, serving)| serving)
}

/// What the fans were told, held against each other and the database: places kept and
/// unique, every fan who joined admitted, and everything acknowledged still there.
#[derive(Debug, Default, Serialize)]
pub struct FanChecks {
    /// Fans who took part.
    pub fans: usize,
    /// Of them, admitted.
    pub admitted: usize,
    /// Holds the origin answered 201 for.
    pub holds_acknowledged: usize,
    /// Orders the origin answered 201 for.
    pub orders_acknowledged: usize,
    /// Orders fans were told are confirmed.
    pub orders_paid: usize,
    /// Paid orders fans were told are cancelled.
    pub orders_cancelled: usize,
    /// Places given to two fans, or changed, or fans never admitted.
    pub queue_breaches: Vec<String>,
    /// Acknowledged writes the database no longer has as the fan was told.
    pub data_lost: Vec<String>,
    /// Every other answer a fan did not expect.
    pub unexpected: Vec<String>,
}

/// Checks the fans' records against each other and the database.
pub async fn fans(records: &[FanRecord], db: &PgPool) -> FanChecks {
    let mut checks = FanChecks {
        fans: records.len(),
        ..FanChecks::default()
    };
    let mut places: HashMap<u64, &str> = HashMap::new();
    for fan in records {
        checks.admitted += usize::from(fan.admitted);
        checks.holds_acknowledged += fan.holds.len();
        checks.orders_acknowledged += fan.orders.len();
        checks.orders_paid += fan.paid.len();
        checks.orders_cancelled += fan.cancelled.len();
        for problem in &fan.problems {
            let breach = problem.contains("place");
            let list = if breach {
                &mut checks.queue_breaches
            } else {
                &mut checks.unexpected
            };
            list.push(format!("{}: {problem}", fan.account));
        }
        match fan.place {
            Some(place) => {
                if let Some(other) = places.insert(place, &fan.account) {
                    checks.queue_breaches.push(format!(
                        "place {place} given to {other} and {}",
                        fan.account
                    ));
                }
                if !fan.admitted {
                    checks
                        .queue_breaches
                        .push(format!("{} (place {place}) never admitted", fan.account));
                }
            }
            None => checks
                .queue_breaches
                .push(format!("{} never got a place", fan.account)),
        }
        for hold in &fan.holds {
            let kept: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM holds WHERE id = $1::uuid)")
                    .bind(hold)
                    .fetch_one(db)
                    .await
                    .unwrap_or(false);
            if !kept {
                checks
                    .data_lost
                    .push(format!("hold {hold} acknowledged, not stored"));
            }
        }
        for order in &fan.orders {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM orders WHERE id = $1::uuid")
                    .bind(order)
                    .fetch_optional(db)
                    .await
                    .unwrap_or(None);
            let paid = fan.paid.contains(order);
            let cancelled = fan.cancelled.contains(order);
            let expected = match (paid, cancelled) {
                (true, false) => Some("confirmed"),
                (_, true) => Some("cancelled"),
                (false, false) => None,
            };
            match (status.as_deref(), expected) {
                (None, _) => checks
                    .data_lost
                    .push(format!("order {order} acknowledged, not stored")),
                (Some(status), Some(expected)) if status != expected => checks.data_lost.push(
                    format!("order {order} is {status}; its fan was told {expected}"),
                ),
                _ => {}
            }
        }
    }
    checks
}
