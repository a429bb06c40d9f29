//! The outbox relay and the notification consumer against a real Redis: events reach the
//! stream in order per order, at least once, survive Redis going away, and reach the sink or,
//! after the configured attempts, the dead-letter stream.

use crate::holds::{stadium_with, Stadium};
use crate::orders::{assert_invariants, confirm, ordered, refund_settled};
use onsale_tests::{client, eventually, redis, redis_prefix, Client, TcpGate};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(10);

type Entries = Vec<(String, HashMap<String, String>)>;

async fn stream(key: &str) -> Entries {
    stream_on(&mut redis().await, key).await
}

async fn stream_on(conn: &mut impl redis::aio::ConnectionLike, key: &str) -> Entries {
    redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap()
}

async fn unpublished(s: &Stadium) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&s.app.db.pool)
        .await
        .unwrap()
}

async fn outbox_len(s: &Stadium) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&s.app.db.pool)
        .await
        .unwrap()
}

fn sink_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The sink's lines once it has any.
async fn sink_written(path: &Path) -> Vec<Value> {
    eventually("a line in the sink", PATIENCE, || async {
        let lines = sink_lines(path);
        (!lines.is_empty()).then_some(lines)
    })
    .await
}

/// A paid order, then cancelled and refunded: three events for one order.
async fn paid_then_cancelled(fan: &Client, s: &Stadium, seats: &[usize]) -> String {
    let (body, payment) = ordered(s, fan, seats).await;
    confirm(fan, &payment, "pm_card_ok", "c")
        .await
        .expect_status(200);
    let order_id = body["order_id"].as_str().unwrap().to_owned();
    fan.post_idempotent(&format!("/v1/orders/{order_id}/cancel"), "x", &json!({}))
        .await
        .expect_status(200);
    refund_settled(fan, &order_id).await;
    order_id
}

fn types_of(entries: &Entries, order_id: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|(_, f)| f["order_id"] == order_id)
        .map(|(_, f)| f["type"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_reach_the_stream_in_order_and_the_sink_once_each() {
    let prefix = redis_prefix();
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("notifications.jsonl");
    let (relay_prefix, sink_path) = (prefix.clone(), sink.clone());
    let s = stadium_with(move |c| {
        c.notifications.relay = true;
        c.notifications.consumer = true;
        c.notifications.key_prefix = relay_prefix;
        c.notifications.sink_path = sink_path;
    })
    .await;
    let ana = s.fan("ana").await;
    let order_id = paid_then_cancelled(&ana, &s, &[120, 121]).await;
    let (_, declined) = ordered(&s, &s.fan("bob").await, &[122]).await;
    confirm(&s.fan("bob").await, &declined, "pm_card_declined", "c")
        .await
        .expect_status(200);
    let events = outbox_len(&s).await;
    assert_eq!(events, 4);
    eventually("every event in the sink", PATIENCE, || async {
        (unpublished(&s).await == 0 && sink_lines(&sink).len() as i64 >= events).then_some(())
    })
    .await;
    let entries = stream(&format!("{prefix}orders:events")).await;
    assert_eq!(
        types_of(&entries, &order_id),
        ["order_confirmed", "order_cancelled", "refund_issued"]
    );
    let ids: Vec<i64> = entries
        .iter()
        .map(|(_, f)| f["outbox_id"].parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let lines = sink_lines(&sink);
    let mut seen: Vec<i64> = lines
        .iter()
        .map(|l| l["outbox_id"].as_i64().unwrap())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ids, "each event reached the sink");
    let confirmed = lines
        .iter()
        .find(|l| l["type"] == "order_confirmed")
        .unwrap();
    assert_eq!(
        confirmed["fan_id"],
        s.account("ana").await.0.to_string().as_str()
    );
    assert_eq!(confirmed["order_id"], order_id.as_str());
    assert!(confirmed["message"]
        .as_str()
        .unwrap()
        .contains("2 ticket(s)"));
    // The consumer acknowledges an event after its sink line is written, so the last
    // acknowledgement may trail the last line. XPENDING's summary: the count first.
    let stream = format!("{prefix}orders:events");
    let conn = redis().await;
    eventually("every event acknowledged", PATIENCE, || {
        let (stream, mut conn) = (stream.clone(), conn.clone());
        async move {
            let pending: Vec<redis::Value> = redis::cmd("XPENDING")
                .arg(&stream)
                .arg("notifications")
                .query_async(&mut conn)
                .await
                .unwrap();
            (pending[0] == redis::Value::Int(0)).then_some(())
        }
    })
    .await;
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_redis_away_events_wait_in_postgres_and_none_is_lost() {
    let prefix = redis_prefix();
    let gate = TcpGate::start(onsale_tests::redis_server()).await;
    gate.cut();
    let url = format!("redis://{}", gate.addr);
    let relay_prefix = prefix.clone();
    let s = stadium_with(move |c| {
        c.notifications.relay = true;
        c.notifications.key_prefix = relay_prefix;
        c.notifications.redis_url = onsale_contract::config::Secret::new(url);
        c.notifications.redis_cluster = false;
    })
    .await;
    let ana = s.fan("ana").await;
    let order_id = paid_then_cancelled(&ana, &s, &[130]).await;
    // Redis cannot be reached: the events are all still waiting.
    assert_eq!(unpublished(&s).await, 3);
    // The relay's Redis, past the gate.
    let server_url = format!("redis://{}", onsale_tests::redis_server());
    let mut server = onsale_contract::redis::Target::new(&server_url, false)
        .unwrap()
        .connect(PATIENCE)
        .await
        .unwrap();
    let key = format!("{prefix}orders:events");
    assert!(stream_on(&mut server, &key).await.is_empty());
    gate.restore();
    eventually("the relay to catch up", PATIENCE, || async {
        (unpublished(&s).await == 0).then_some(())
    })
    .await;
    let entries = stream_on(&mut server, &key).await;
    assert_eq!(
        types_of(&entries, &order_id),
        ["order_confirmed", "order_cancelled", "refund_issued"]
    );
    assert_invariants(&s).await;
}

async fn consumer_stadium(prefix: &str, sink: PathBuf, max_attempts: u32) -> Stadium {
    let prefix = prefix.to_owned();
    stadium_with(move |c| {
        c.notifications.relay = true;
        c.notifications.consumer = true;
        c.notifications.key_prefix = prefix;
        c.notifications.sink_path = sink;
        c.notifications.max_attempts = max_attempts;
    })
    .await
}

async fn one_confirmation(s: &Stadium, fan: &str, seat: usize) -> String {
    let fan = s.fan(fan).await;
    let (body, payment) = ordered(s, &fan, &[seat]).await;
    confirm(&fan, &payment, "pm_card_ok", "c")
        .await
        .expect_status(200);
    body["order_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_that_keeps_failing_dead_letters_the_event_after_its_attempts() {
    let prefix = redis_prefix();
    let dir = tempfile::tempdir().unwrap();
    // A file in a directory that does not exist: every write fails.
    let sink = dir.path().join("missing").join("notifications.jsonl");
    let s = consumer_stadium(&prefix, sink.clone(), 3).await;
    let first = one_confirmation(&s, "ana", 140).await;
    let dead_key = format!("{prefix}orders:events:dead");
    let dead = eventually("the dead letter", PATIENCE, || async {
        let dead = stream(&dead_key).await;
        (!dead.is_empty()).then_some(dead)
    })
    .await;
    assert_eq!(dead.len(), 1);
    let (_, fields) = &dead[0];
    assert_eq!(fields["order_id"], first);
    assert_eq!(fields["type"], "order_confirmed");
    assert_eq!(fields["attempts"], "3");
    assert!(
        fields["error"].contains("notifications.jsonl"),
        "{fields:?}"
    );
    let failed = s
        .app
        .origin
        .state
        .metrics
        .notifications
        .with_label_values(&["failed"])
        .get();
    assert_eq!(failed, 2, "two retries before the third, last attempt");
    // The sink comes back: the next event goes through at once; the dead one stays dead.
    std::fs::create_dir(dir.path().join("missing")).unwrap();
    let second = one_confirmation(&s, "bob", 141).await;
    let lines = sink_written(&sink).await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["order_id"], second.as_str());
    assert_eq!(stream(&dead_key).await.len(), 1);
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_that_recovers_gets_the_event_on_a_retry() {
    let prefix = redis_prefix();
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("later").join("notifications.jsonl");
    let s = consumer_stadium(&prefix, sink.clone(), 1_000).await;
    let order_id = one_confirmation(&s, "ana", 150).await;
    let metrics = &s.app.origin.state.metrics.notifications;
    eventually("two failed attempts", PATIENCE, || async {
        (metrics.with_label_values(&["failed"]).get() >= 2).then_some(())
    })
    .await;
    std::fs::create_dir(dir.path().join("later")).unwrap();
    let lines = sink_written(&sink).await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["order_id"], order_id.as_str());
    assert!(stream(&format!("{prefix}orders:events:dead"))
        .await
        .is_empty());
    assert_invariants(&s).await;
}

/// The relay's `outbox_unpublished` gauge as the origin's `/metrics` shows it.
async fn unpublished_gauge(s: &Stadium) -> i64 {
    let metrics =
        String::from_utf8(client(s.app.origin.addr()).get("/metrics").await.body).unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("onsale_origin_outbox_unpublished "))
        .unwrap_or_else(|| panic!("no outbox_unpublished gauge in {metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_unpublished_gauge_counts_the_rows_still_waiting_after_each_round() {
    // The origin's own relay stays off: the test runs the rounds, with a batch smaller than
    // the backlog, on the origin's metrics.
    let prefix = redis_prefix();
    let relay_prefix = prefix.clone();
    let s = stadium_with(move |c| c.notifications.key_prefix = relay_prefix).await;
    paid_then_cancelled(&s.fan("ana").await, &s, &[160, 161]).await;
    one_confirmation(&s, "bob", 162).await;
    assert_eq!(unpublished(&s).await, 4);
    let state = &s.app.origin.state;
    let mut config = state.config.notifications.clone();
    config.relay_batch = 3;
    let mut redis = config
        .redis_target()
        .unwrap()
        .connect(Duration::from_secs(2))
        .await
        .unwrap();
    for (published, waiting) in [(3, 1), (1, 0), (0, 0)] {
        let relayed = origin::outbox::relay_once(&state.pool, &mut redis, &config, &state.metrics)
            .await
            .unwrap();
        assert_eq!(relayed, published);
        assert_eq!(unpublished(&s).await, waiting);
        assert_eq!(
            unpublished_gauge(&s).await,
            waiting,
            "the gauge after publishing {published}"
        );
    }
    assert_eq!(stream(&format!("{prefix}orders:events")).await.len(), 4);
    assert_invariants(&s).await;
}
