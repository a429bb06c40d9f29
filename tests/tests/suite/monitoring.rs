//! The monitoring files in `config/monitoring/` against the real binaries: every metric the
//! Grafana dashboard and the Prometheus alert rules name is on the `/metrics` of a running
//! origin, edge or seat-map builder, carrying the labels the expressions match and group
//! by. A metric family none of whose label values has been seen is not printed at all, so
//! the stack is driven first: a waiting room with a fan who polls and is called, holds (one
//! conflicting), payments (paid, declined, slow enough for the reconciliation job), webhooks
//! (delivered and refused), a rate-limited request, and a second builder whose Redis is away.

use chrono::{TimeZone, Utc};
use edge_proxy::config::{PrequeueOrder, QueueSettings, Quota};
use onsale_contract::clock::{self, Clock};
use onsale_contract::config::Secret;
use onsale_tests::{
    admission, builder_config, client, config_dir, create_account, create_show, db, edge,
    eventually, free_port, origin, venue_body, Client, Reply, ShowFixture, TestDb, ADMIN_TOKEN,
};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;
use uuid::Uuid;

const DASHBOARD: &str = "monitoring/onsale-dashboard.json";
const ALERTS: &str = "monitoring/onsale-alerts.yml";
/// How long the driven stack may take to show every metric (webhooks, reconciliation,
/// the first build and its arrival at the edge are asynchronous).
const WITHIN: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// What the files name.

/// The PromQL of the dashboard: every panel target's `expr` and the template variables'
/// queries (`definition`, `query`).
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr" | "definition" | "query", Value::String(expr)) => {
                            out.push(expr.clone())
                        }
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    walk(dashboard, &mut exprs);
    exprs.retain(|expr| !expr.trim().is_empty());
    exprs
}

/// The `expr` of every rule in a Prometheus rules file, written on one line or as a `|` /
/// `>` block scalar (the forms `config/monitoring/onsale-alerts.yml` uses; `promtool check
/// rules` checks the file's structure).
fn rule_exprs(rules: &str) -> Vec<String> {
    let lines: Vec<&str> = rules.lines().collect();
    let mut exprs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        i += 1;
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let mut block = Vec::new();
            while i < lines.len() {
                let next = lines[i];
                let next_indent = next.len() - next.trim_start().len();
                if !next.trim().is_empty() && next_indent <= indent {
                    break;
                }
                block.push(next.trim());
                i += 1;
            }
            exprs.push(block.join("\n").trim().to_owned());
        } else {
            let unquoted = rest
                .strip_prefix('\'')
                .and_then(|r| r.strip_suffix('\''))
                .or_else(|| rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
                .unwrap_or(rest);
            exprs.push(unquoted.to_owned());
        }
    }
    exprs
}

/// One expression's references: each `onsale_*` metric with the label names its matchers
/// use, and the labels named by `by`, `without`, `on`, `ignoring` and `group_*` clauses.
#[derive(Debug, Default, PartialEq)]
struct References {
    metrics: Vec<(String, Vec<String>)>,
    grouping: Vec<String>,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// A small PromQL scanner: enough to find metric names (never inside string literals),
/// their matchers' label names, and grouping labels.
fn references(expr: &str) -> References {
    let chars: Vec<char> = expr.chars().collect();
    let mut refs = References::default();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let skip_string = |i: &mut usize| {
        let quote = chars[*i];
        *i += 1;
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' {
                *i += 1;
            }
            *i += 1;
        }
        *i += 1;
    };
    let ident = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && is_ident(chars[*i]) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            skip_string(&mut i);
        } else if c.is_ascii_digit() {
            // Numbers and durations: 0.8, 5m, 1e3.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if is_ident_start(c) {
            let name = ident(&mut i);
            let mut j = i;
            skip_space(&mut j);
            if name.starts_with("onsale_") {
                let mut labels = Vec::new();
                if j < chars.len() && chars[j] == '{' {
                    j += 1;
                    while j < chars.len() && chars[j] != '}' {
                        if is_ident_start(chars[j]) {
                            labels.push(ident(&mut j));
                        } else if matches!(chars[j], '"' | '\'' | '`') {
                            skip_string(&mut j);
                        } else {
                            j += 1;
                        }
                    }
                    i = j + 1;
                }
                refs.metrics.push((name, labels));
            } else if matches!(
                name.as_str(),
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
            ) && j < chars.len()
                && chars[j] == '('
            {
                j += 1;
                while j < chars.len() && chars[j] != ')' {
                    if is_ident_start(chars[j]) {
                        refs.grouping.push(ident(&mut j));
                    } else {
                        j += 1;
                    }
                }
                i = j + 1;
            }
        } else {
            i += 1;
        }
    }
    refs
}

// ---------------------------------------------------------------------------------------
// What the binaries export.

/// The samples of some `/metrics` pages: each sample name (a histogram's `_bucket`, `_sum`
/// and `_count`, a counter's or gauge's own name) with the label names it carries, and the
/// type of each family.
#[derive(Debug, Default)]
struct Exported {
    samples: HashMap<String, BTreeSet<String>>,
    types: HashMap<String, String>,
}

impl Exported {
    /// Adds one page of the Prometheus text format.
    fn add(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(declaration) = line.strip_prefix("# TYPE ") {
                let mut parts = declaration.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    self.types.insert(name.to_owned(), kind.to_owned());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = self.samples.entry(line[..end].to_owned()).or_default();
            if line[end..].starts_with('{') {
                labels.extend(label_names(&line[end + 1..]));
            }
        }
    }
}

/// The label names of `a="x",b="y\"z"}...`.
fn label_names(mut rest: &str) -> Vec<String> {
    let mut names = Vec::new();
    while let Some(eq) = rest.find("=\"") {
        names.push(rest[..eq].trim_start_matches(',').trim().to_owned());
        let mut chars = rest[eq + 2..].char_indices();
        let mut close = None;
        while let Some((k, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    close = Some(eq + 2 + k);
                    break;
                }
                _ => {}
            }
        }
        let Some(close) = close else { break };
        rest = &rest[close + 1..];
        if rest.starts_with('}') {
            break;
        }
    }
    names
}

/// Everything wrong with `exprs` against `exported`, one sentence each.
fn problems(exprs: &[String], exported: &Exported) -> Vec<String> {
    let mut problems = Vec::new();
    for expr in exprs {
        let refs = references(expr);
        let before = problems.len();
        let mut carried = BTreeSet::new();
        for (metric, labels) in &refs.metrics {
            let Some(have) = exported.samples.get(metric) else {
                let histogram = ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| exported.samples.contains_key(&format!("{metric}{suffix}")));
                let hint = if histogram {
                    " (a histogram: select its _bucket, _sum or _count)"
                } else {
                    ""
                };
                problems.push(format!(
                    "`{metric}` is exported by no running binary{hint}; in: {expr}"
                ));
                continue;
            };
            carried.extend(have.iter().cloned());
            for label in labels {
                if !have.contains(label) {
                    problems.push(format!(
                        "`{metric}` has no label `{label}` (it has {have:?}); in: {expr}"
                    ));
                }
            }
        }
        if problems.len() > before {
            // A missing metric or label explains the rest.
            continue;
        }
        for label in &refs.grouping {
            if !carried.contains(label) {
                problems.push(format!(
                    "no metric of the expression carries the grouping label `{label}`; in: {expr}"
                ));
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------
// The files.

fn read(relative: &str) -> String {
    let path = config_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every expression of both files, after checking each has some.
fn monitoring_exprs() -> Vec<String> {
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let targets = panel["targets"].as_array().expect("a panel has targets");
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            assert!(
                target["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "panel {} has a target without expr",
                panel["title"]
            );
        }
    }
    let mut exprs = dashboard_exprs(&dashboard);
    let rules = read(ALERTS);
    let alerts = rules
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    let rule_exprs = rule_exprs(&rules);
    assert!(alerts > 0, "{ALERTS} has no alert");
    assert_eq!(rule_exprs.len(), alerts, "one expr per alert in {ALERTS}");
    exprs.extend(rule_exprs);
    exprs
}

#[test]
fn the_check_catches_renamed_metrics_and_labels() {
    let mut exported = Exported::default();
    exported.add(
        "# HELP onsale_edge_rate_limited_total Requests refused\n\
         # TYPE onsale_edge_rate_limited_total counter\n\
         onsale_edge_rate_limited_total{limiter=\"join\"} 1\n\
         # TYPE onsale_edge_http_request_duration_seconds histogram\n\
         onsale_edge_http_request_duration_seconds_bucket{class=\"catalog\",le=\"0.1\"} 3\n\
         onsale_edge_http_request_duration_seconds_sum{class=\"catalog\"} 0.2\n\
         onsale_edge_http_request_duration_seconds_count{class=\"catalog\"} 3\n\
         onsale_edge_snapshot_feed_up 1\n",
    );
    let fine = [
        "sum by (limiter) (rate(onsale_edge_rate_limited_total{limiter=~\"j.*\"}[5m]))",
        "histogram_quantile(0.99, sum by (class, le) \
         (rate(onsale_edge_http_request_duration_seconds_bucket[$__rate_interval])))",
        "min(onsale_edge_snapshot_feed_up) == 0",
        // Names inside strings are not references.
        "sum(rate(onsale_edge_rate_limited_total{limiter=\"onsale_nothing_total\"}[1m]))",
    ]
    .map(str::to_owned);
    assert_eq!(problems(&fine, &exported), Vec::<String>::new());

    let wrong = [
        "rate(onsale_edge_rate_limited_renamed_total[5m])",
        "onsale_edge_http_request_duration_seconds > 1",
        "onsale_edge_rate_limited_total{limit=\"join\"}",
        "sum by (route) (onsale_edge_rate_limited_total)",
        "onsale_edge_snapshot_feed_up and ignoring (show) onsale_edge_rate_limited_total",
    ]
    .map(str::to_owned);
    let found = problems(&wrong, &exported);
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(found[0].contains("`onsale_edge_rate_limited_renamed_total` is exported by no"));
    assert!(found[1].contains("a histogram"));
    assert!(found[2].contains("no label `limit`"));
    assert!(found[3].contains("grouping label `route`"));
    assert!(found[4].contains("grouping label `show`"));
}

#[test]
fn both_files_parse_into_expressions() {
    let exprs = monitoring_exprs();
    let names: BTreeSet<String> = exprs
        .iter()
        .flat_map(|e| references(e).metrics)
        .map(|(name, _)| name)
        .collect();
    for prefix in ["onsale_edge_", "onsale_origin_", "onsale_seatmap_builder_"] {
        assert!(
            names.iter().any(|n| n.starts_with(prefix)),
            "no {prefix}* metric in {names:?}"
        );
    }
    let block = rule_exprs("  - alert: A\n    expr: |\n      a\n        + b\n    for: 1m\n");
    assert_eq!(block, ["a\n+ b"]);
    assert_eq!(rule_exprs("    expr: 'x > 0'\n"), ["x > 0"]);
}

// ---------------------------------------------------------------------------------------
// The running stack.

fn queue_settings(opens_ms: i64) -> QueueSettings {
    let opens = Utc.timestamp_millis_opt(opens_ms).unwrap();
    QueueSettings {
        admit_per_minute: 600,
        max_active: 1000,
        session_ttl_s: 600,
        queue_opens_at: opens,
        sale_opens_at: opens,
        prequeue_order: PrequeueOrder::Random,
        no_show_grace_s: 10,
        pow_difficulty: 0,
        paused: false,
    }
}

/// A fan with an account, admitted to `show`, at the edge `public`.
async fn admitted_fan(db: &TestDb, public: SocketAddr, show: &str) -> Client {
    let (account, session) = create_account(db).await;
    client(public)
        .bearer(&admission(&account.to_string(), show))
        .cookie(&format!("onsale_session={session}"))
}

async fn hold(fan: &Client, show: &str, seats: &[i64]) -> Reply {
    fan.post_idempotent(
        &format!("/v1/shows/{show}/holds"),
        &Uuid::new_v4().to_string(),
        &json!({ "seat_ids": seats }),
    )
    .await
}

/// Holds `seats`, orders them and confirms the payment with `method`.
async fn buy(fan: &Client, show: &str, seats: &[i64], method: &str) {
    let held = hold(fan, show, seats).await;
    held.expect_status(201);
    let ordered = fan
        .post_idempotent(
            "/v1/orders",
            &Uuid::new_v4().to_string(),
            &json!({ "hold_id": held.json()["hold_id"] }),
        )
        .await;
    ordered.expect_status(201);
    let payment = ordered.json()["payment"]["payment_id"]
        .as_str()
        .expect("a payment id")
        .to_owned();
    let confirmed = fan
        .post_idempotent(
            &format!("/v1/payments/{payment}/confirm"),
            &Uuid::new_v4().to_string(),
            &json!({ "payment_method": method }),
        )
        .await;
    assert!(
        confirmed.status.is_success(),
        "{method}: {} {}",
        confirmed.status,
        String::from_utf8_lossy(&confirmed.body)
    );
}

/// The value of the sample written exactly `series` (name and labels) on a `/metrics` page.
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(targets: &[(&str, SocketAddr)]) -> Exported {
    let mut exported = Exported::default();
    for (binary, addr) in targets {
        let reply = client(*addr).get("/metrics").await;
        assert_eq!(reply.status, 200, "{binary}'s /metrics");
        exported.add(&String::from_utf8_lossy(&reply.body));
    }
    exported
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_dashboard_and_alerts_name_is_exported() {
    let exprs = monitoring_exprs();

    let db = db().await;
    let origin = origin(&db)
        .config(|c| {
            // Processing payments are asked about at once, so a slow card is reconciled.
            c.payments.stuck_after_s = 0.0;
            c.payments.reconcile_interval_s = 0.2;
        })
        .run()
        .await;
    let organizer = client(origin.addr()).bearer(ADMIN_TOKEN);
    let layout = venue_body("Monitor Hall", "Oslo", &[("A", "T1")], 1, 10);
    let (_, show) = create_show(
        &organizer,
        layout,
        "Dashboards Live",
        "The Alerts",
        "2099-06-01T19:00:00Z",
        "2020-01-01T00:00:00Z",
    )
    .await;
    let seats: Vec<i64> = sqlx::query_scalar(
        "SELECT seat_id FROM seat_inventory WHERE show_id = $1::uuid ORDER BY layout_idx",
    )
    .bind(&show)
    .fetch_all(&db.pool)
    .await
    .unwrap();

    // The edge's clock stands still unless moved: the queue calls nobody until it is, and a
    // bucket of one catalog read a minute refuses the second read.
    let t0 = clock::now_ms();
    let edge_clock = Clock::manual(t0);
    let edge = edge()
        .upstream(origin.addr())
        .clock(edge_clock.clone())
        .config(|c| {
            c.waiting_room
                .shows
                .insert(show.clone(), queue_settings(t0));
            c.waiting_room.refresh_ms = 1000;
            c.limits.route_class.catalog = Quota {
                per_minute: 1,
                burst: 1,
            };
        })
        .run();
    let prefix = edge.shared.live.load().config.redis.key_prefix.clone();
    let builder = seatmap_builder::start(
        builder_config(&db, &prefix),
        "monitoring".into(),
        Clock::system(),
    )
    .await
    .unwrap();
    // A second builder whose Redis is away: what the Redis alert's counter looks like.
    let mut away = builder_config(&db, &prefix);
    away.redis.url = Secret::new(format!("redis://{}", free_port()));
    away.redis.cluster = false;
    let redis_away = seatmap_builder::start(away, "redis-away".into(), Clock::system())
        .await
        .unwrap();

    // The waiting room: a fan joins, polls (its place's ETA is sampled), is called.
    eventually("the waiting room's first step", WITHIN, || async {
        edge.shared.waiting_room.view(&show).map(|_| ())
    })
    .await;
    let (_, session) = create_account(&db).await;
    let joined = client(edge.public)
        .bearer(&session)
        .post("/v1/waiting-room/sessions", &json!({ "show_id": show }))
        .await;
    joined.expect_status(201);
    let queue_token = joined.json()["queue_token"].as_str().unwrap().to_owned();
    let queued = client(edge.public)
        .bearer(&queue_token)
        .get(&format!("/v1/waiting-room/sessions/current?show_id={show}"))
        .await;
    queued.expect_status(200);
    assert_eq!(queued.json()["status"], "queued", "{}", queued.json());
    assert!(
        queued.json()["estimated_wait_s"].is_u64(),
        "an ETA to sample"
    );
    edge_clock.advance(Duration::from_secs(2));
    let shared = &edge.shared;
    shared
        .waiting_room
        .step(&shared.live.load(), &shared.snapshots, edge_clock.now_ms())
        .await;
    let called = client(edge.public)
        .bearer(&queue_token)
        .get(&format!("/v1/waiting-room/sessions/current?show_id={show}"))
        .await;
    called.expect_status(200);
    assert_eq!(called.json()["status"], "admitted", "{}", called.json());

    // The purchase path through the edge: a sale, a conflict, a decline, a slow card.
    let ana = admitted_fan(&db, edge.public, &show).await;
    let bob = admitted_fan(&db, edge.public, &show).await;
    let cem = admitted_fan(&db, edge.public, &show).await;
    buy(&ana, &show, &seats[0..2], "pm_card_ok").await;
    hold(&bob, &show, &seats[1..2]).await.expect_status(409);
    buy(&bob, &show, &seats[2..3], "pm_card_declined").await;
    buy(&cem, &show, &seats[3..4], "pm_card_slow").await;

    // A webhook without a signature, and a catalog read over its route class's limit.
    client(edge.public)
        .post("/v1/webhooks/payments", &json!({}))
        .await
        .expect_status(400);
    let catalog = client(edge.public);
    catalog.get("/v1/events").await;
    catalog.get("/v1/events").await.expect_status(429);

    // Seat maps reach the edge from the builder.
    let availability = format!("/v1/shows/{show}/availability");
    eventually("the show's snapshot at the edge", WITHIN, || async {
        (client(edge.public).get(&availability).await.status == 200).then_some(())
    })
    .await;

    let targets = [
        ("origin", origin.addr()),
        ("edge", edge.admin),
        ("seatmap-builder", builder.addr),
        ("seatmap-builder (Redis away)", redis_away.addr),
    ];
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let exported = scrape(&targets).await;
        let found = problems(&exprs, &exported);
        if found.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let names: BTreeSet<&String> = exported.samples.keys().collect();
            panic!(
                "config/monitoring/ names what the running binaries do not export:\n{}\n\nexported: {names:#?}",
                found.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The settings' gauges read what the show runs on; the counter called the one fan.
    let page = |addr: SocketAddr| async move {
        String::from_utf8(client(addr).get("/metrics").await.body).unwrap()
    };
    let edge_page = page(edge.admin).await;
    let per_show = |name: &str| value(&edge_page, &format!("{name}{{show=\"{show}\"}}"));
    assert_eq!(
        per_show("onsale_edge_waiting_room_admit_per_minute"),
        Some(600.0)
    );
    assert_eq!(
        per_show("onsale_edge_waiting_room_max_active"),
        Some(1000.0)
    );
    assert_eq!(per_show("onsale_edge_waiting_room_admitting"), Some(1.0));
    assert_eq!(
        per_show("onsale_edge_waiting_room_called_last_minute"),
        Some(1.0)
    );
    assert_eq!(
        value(
            &page(builder.addr).await,
            "onsale_seatmap_builder_build_interval_seconds"
        ),
        Some(30.0)
    );

    builder.shutdown().await;
    redis_away.shutdown().await;
    edge.shutdown();
    origin.shutdown().await.unwrap();
}

/// `OnsaleSnapshotStale` compares each show's age with two build intervals, so a show that
/// left the build window (it started, or was cancelled) must stop having an age.
#[tokio::test(flavor = "multi_thread")]
async fn a_show_that_left_the_build_window_has_no_snapshot_age() {
    let f = ShowFixture::spawn().await;
    let clock = Clock::manual(clock::now_ms());
    let builder = seatmap_builder::start(
        builder_config(&f.app.db, &onsale_tests::redis_prefix()),
        "window".into(),
        clock.clone(),
    )
    .await
    .unwrap();
    let aged = |builder: &seatmap_builder::RunningBuilder| {
        onsale_contract::metrics::render(&builder.metrics.registry)
            .lines()
            .any(|line| {
                line.starts_with("onsale_seatmap_builder_snapshot_age_seconds{")
                    && line.contains(&f.show.to_string())
            })
    };
    let settled = tokio::time::timeout(WITHIN, builder.settled());
    settled.await.expect("the first build");
    assert!(aged(&builder), "a built show has an age");

    sqlx::query("UPDATE shows SET starts_at = now() - interval '1 minute' WHERE id = $1")
        .bind(f.show)
        .execute(f.pool())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(30));
    let settled = tokio::time::timeout(WITHIN, builder.settled());
    settled.await.expect("the next build");
    assert!(
        !aged(&builder),
        "a show past its start is built no more, and has no age"
    );
    builder.shutdown().await;
}
