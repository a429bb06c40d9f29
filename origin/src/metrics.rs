//! The origin's Prometheus metrics.

use onsale_contract::metrics::{counter_vec, histogram_vec, int_gauge_vec, register, registry};
use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Registry,
};

/// Every metric of one origin, registered in its own registry (served at `/metrics`).
pub struct Metrics {
    pub(crate) registry: Registry,
    pub(crate) http_requests: IntCounterVec,
    pub(crate) http_duration: HistogramVec,
    pub(crate) db_pool: IntGaugeVec,
    pub(crate) holds: IntCounterVec,
    pub(crate) hold_duration: Histogram,
    pub(crate) holds_ended: IntCounterVec,
    pub(crate) sweep_lag: Gauge,
    pub(crate) payments_settled: IntCounterVec,
    /// `payment_webhooks_received_total` by `result`: applied, stale, duplicate,
    /// unknown_payment, rejected.
    pub webhooks_received: IntCounterVec,
    /// `payment_webhook_lag_seconds`: from a provider's event to its webhook's receipt.
    pub webhook_lag: Histogram,
    /// `sandbox_webhook_deliveries_total` by `result`: delivered, failed, abandoned.
    pub webhook_deliveries: IntCounterVec,
    pub(crate) refunds: IntCounterVec,
    pub(crate) reconciled: IntCounterVec,
    pub(crate) invariant_breaches: IntGaugeVec,
    pub(crate) outbox_published: IntCounter,
    pub(crate) outbox_unpublished: IntGauge,
    /// `notifications_total` by `result`: delivered, failed, dead_lettered.
    pub notifications: IntCounterVec,
    /// argon2id work by `op`: `hash` (a new password), `verify` (a password checked, against
    /// the dummy hash for an unknown email), `refused` (no hashing slot in time: 503).
    pub password_hashes: IntCounterVec,
    /// `ticket_scans_total` by `result` (`valid`, `already_scanned`, `revoked`, `forged`,
    /// `stale_code`) and `offline` (`true` for uploaded scans).
    pub(crate) ticket_scans: IntCounterVec,
    /// `waitlist_seats_total` by `outcome`: `offered` (in an offer to a waiting fan),
    /// `released` (back on sale: no waiting fan took them in time).
    pub(crate) waitlist_seats: IntCounterVec,
    /// `waitlist_offer_latency_seconds`: from the return of an offer's last seat to the
    /// waiting fan's notification.
    pub waitlist_offer_latency: Histogram,
}

const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Metrics {
    /// Creates and registers every metric in a fresh `origin` registry.
    pub(crate) fn new() -> Self {
        let registry = registry("origin");
        Metrics {
            http_requests: counter_vec(
                &registry,
                "http_requests_total",
                "HTTP requests by route, method and status",
                &["route", "method", "status"],
            ),
            http_duration: histogram_vec(
                &registry,
                "http_request_duration_seconds",
                "HTTP request latency by route",
                &["route"],
                &LATENCY_BUCKETS,
            ),
            db_pool: int_gauge_vec(
                &registry,
                "db_pool_connections",
                "Database pool connections by state",
                &["state"],
            ),
            ticket_scans: counter_vec(
                &registry,
                "ticket_scans_total",
                "Ticket scans at the gates by result, and whether they were uploaded from offline",
                &["result", "offline"],
            ),
            holds: counter_vec(
                &registry,
                "holds_total",
                "Hold attempts by outcome: created, conflict (seats taken), rejected (bad input or limit), error",
                &["outcome"],
            ),
            hold_duration: register(
                &registry,
                &Histogram::with_opts(
                    HistogramOpts::new("hold_duration_seconds", "Time to answer a hold attempt")
                        .buckets(LATENCY_BUCKETS.to_vec()),
                )
                .expect("static metric"),
            ),
            holds_ended: counter_vec(
                &registry,
                "holds_ended_total",
                "Holds ended, by reason: released, expired_swept, expired_lazily",
                &["reason"],
            ),
            sweep_lag: register(
                &registry,
                &Gauge::new(
                    "hold_sweep_lag_seconds",
                    "How long after expiry the sweeper's latest batch freed its oldest seat",
                )
                .expect("static metric"),
            ),
            payments_settled: counter_vec(
                &registry,
                "payments_settled_total",
                "Payments moved by the provider, by new status",
                &["status"],
            ),
            webhooks_received: counter_vec(
                &registry,
                "payment_webhooks_received_total",
                "Payment webhooks by result: applied, stale, duplicate, unknown_payment, rejected",
                &["result"],
            ),
            webhook_lag: register(
                &registry,
                &Histogram::with_opts(
                    HistogramOpts::new(
                        "payment_webhook_lag_seconds",
                        "From the provider's event to the receipt of its webhook (signature checked)",
                    )
                    .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0]),
                )
                .expect("static metric"),
            ),
            webhook_deliveries: counter_vec(
                &registry,
                "sandbox_webhook_deliveries_total",
                "Sandbox webhook delivery attempts by result: delivered, failed, abandoned",
                &["result"],
            ),
            refunds: counter_vec(
                &registry,
                "refund_attempts_total",
                "Refund attempts through the provider by result: succeeded, failed",
                &["result"],
            ),
            reconciled: counter_vec(
                &registry,
                "payments_reconciled_total",
                "Stuck payments asked of the provider, by result: moved, unchanged, unavailable",
                &["result"],
            ),
            invariant_breaches: int_gauge_vec(
                &registry,
                "reconcile_breaches",
                "Rows breaking a money-or-seat invariant at the last reconciliation; must be 0: \
                 orders_paid_without_tickets, seats_held_without_live_hold",
                &["check"],
            ),
            outbox_published: register(
                &registry,
                &IntCounter::new(
                    "outbox_published_total",
                    "Outbox rows published to the event stream",
                )
                .expect("static metric"),
            ),
            outbox_unpublished: register(
                &registry,
                &IntGauge::new(
                    "outbox_unpublished",
                    "Outbox rows waiting for the relay at its last round",
                )
                .expect("static metric"),
            ),
            notifications: counter_vec(
                &registry,
                "notifications_total",
                "Notification sink writes by result: delivered, failed, dead_lettered",
                &["result"],
            ),
            password_hashes: counter_vec(
                &registry,
                "password_hashes_total",
                "argon2id computations by op: hash, verify; refused: no hashing slot in time",
                &["op"],
            ),
            waitlist_seats: counter_vec(
                &registry,
                "waitlist_seats_total",
                "Seats that came back while fans waited, by outcome: offered, released",
                &["outcome"],
            ),
            waitlist_offer_latency: register(
                &registry,
                &Histogram::with_opts(
                    HistogramOpts::new(
                        "waitlist_offer_latency_seconds",
                        "From the return of an offer's last seat to the waiting fan's notification",
                    )
                    .buckets(vec![0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 30.0, 60.0]),
                )
                .expect("static metric"),
            ),
            registry,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
