//! The seat-map builder against real Postgres and Redis.

use futures_util::StreamExt;
use onsale_contract::clock::{self, Clock};
use onsale_contract::snapshot::{self, field, Kind};
use onsale_tests::{builder_config, client, redis_prefix, ShowFixture, TcpGate};
use redis::AsyncCommands;
use seatmap_builder::metrics::Metrics;
use seatmap_builder::{Builder, RunningBuilder};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    inner: ShowFixture,
    prefix: String,
}

async fn fixture() -> Fixture {
    Fixture {
        inner: ShowFixture::spawn().await,
        prefix: redis_prefix(),
    }
}

impl std::ops::Deref for Fixture {
    type Target = ShowFixture;
    fn deref(&self) -> &ShowFixture {
        &self.inner
    }
}

impl Fixture {
    fn builder(&self) -> Builder {
        Builder::new(
            builder_config(&self.app.db, &self.prefix),
            Arc::new(Metrics::new()),
        )
        .unwrap()
    }

    async fn snapshot(&self, kind: Kind) -> HashMap<String, Vec<u8>> {
        let key = snapshot::key(&self.prefix, &self.show.to_string(), kind);
        onsale_tests::redis().await.hgetall(key).await.unwrap()
    }

    async fn document(&self, kind: Kind) -> Value {
        serde_json::from_slice(&self.snapshot(kind).await[field::IDENTITY]).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn seat_states_appear_in_layout_order_with_section_counts() {
    let f = fixture().await;
    f.hold_seat(0, "10 minutes").await;
    f.hold_seat(1, "-1 second").await; // expired, not yet swept: available
    f.sell_seat(2).await;
    sqlx::query(
        "UPDATE seat_inventory SET status = 'unavailable' WHERE show_id = $1 AND seat_id = $2",
    )
    .bind(f.show)
    .bind(f.seats[3])
    .execute(f.pool())
    .await
    .unwrap();
    f.sell_seat(15).await;

    let reports = f.builder().build_all(1_000).await.unwrap();
    assert_eq!(reports.len(), 1);
    let availability = f.document(Kind::Availability).await;
    assert_eq!(availability["seat_status"], "HASXAAAAAAAAAAASAAAA");
    assert_eq!(
        availability["sections"],
        serde_json::json!([
            {"section_id": "A", "available": 7, "held": 1, "sold": 1, "total": 10},
            {"section_id": "B", "available": 9, "held": 0, "sold": 1, "total": 10}
        ])
    );
    assert_eq!(availability["built_at_ms"], 1_000);
    assert_eq!(availability["next_build_at_ms"], 31_000);

    let layout = f.document(Kind::Layout).await;
    let layout_ids: Vec<i64> = layout["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["rows"].as_array().unwrap())
        .flat_map(|r| r["seats"].as_array().unwrap())
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(layout_ids, f.seats, "layout order is seat_status order");
    assert_eq!(layout["sections"][0]["price_tier"], "T1");
}

#[tokio::test(flavor = "multi_thread")]
async fn unchanged_keeps_its_etag_changed_gets_a_new_one_and_is_announced() {
    let f = fixture().await;
    let out_dir = tempfile::tempdir().unwrap();
    let mut config = builder_config(&f.app.db, &f.prefix);
    config.build.out_dir = out_dir.path().to_owned();
    let mut builder = Builder::new(config, Arc::new(Metrics::new())).unwrap();

    let mut pubsub = onsale_tests::redis_target().subscriber(0).await.unwrap();
    pubsub
        .subscribe(snapshot::channel(&f.prefix))
        .await
        .unwrap();

    let first = builder.build_all(1_000).await.unwrap().remove(0);
    assert!(first.availability_changed && first.layout_changed);
    let before = f.snapshot(Kind::Availability).await;
    // Both documents are announced, and heard before the next build: a cluster passes an
    // announcement on between its nodes in its own time, so a late one could pass for the
    // next build's.
    let mut kinds = [
        next_announcement(&mut pubsub).await.kind,
        next_announcement(&mut pubsub).await.kind,
    ];
    kinds.sort_by_key(|kind| kind.name());
    assert_eq!(kinds, [Kind::Availability, Kind::Layout]);

    let second = builder.build_all(31_000).await.unwrap().remove(0);
    assert!(!second.availability_changed && !second.layout_changed);
    assert_eq!(second.availability_etag, first.availability_etag);
    let after = f.snapshot(Kind::Availability).await;
    assert_eq!(
        after[field::IDENTITY],
        before[field::IDENTITY],
        "no new version"
    );
    assert_eq!(after[field::BUILT_AT_MS], b"1000");
    assert_eq!(
        after[field::NEXT_BUILD_AT_MS],
        b"61000",
        "the next build moved on"
    );

    f.hold_seat(4, "10 minutes").await;
    let third = builder.build_all(61_000).await.unwrap().remove(0);
    assert!(third.availability_changed && !third.layout_changed);
    assert_ne!(third.availability_etag, first.availability_etag);
    // The unchanged second build announced nothing: the next announcement is the third's.
    let announcement = next_announcement(&mut pubsub).await;
    assert_eq!(announcement.etag, third.availability_etag);
    assert_eq!(announcement.kind, Kind::Availability);

    // Every encoding decodes to the identity bytes, in Redis and on disk.
    let published = f.snapshot(Kind::Availability).await;
    let identity = &published[field::IDENTITY];
    let mut gunzipped = Vec::new();
    flate2::read::GzDecoder::new(published[field::GZIP].as_slice())
        .read_to_end(&mut gunzipped)
        .unwrap();
    assert_eq!(&gunzipped, identity);
    let mut unbrotli = Vec::new();
    brotli::BrotliDecompress(&mut published[field::BROTLI].as_slice(), &mut unbrotli).unwrap();
    assert_eq!(&unbrotli, identity);
    let dir = out_dir.path().join(f.show.to_string());
    assert_eq!(
        &std::fs::read(dir.join("availability.json")).unwrap(),
        identity
    );
    assert_eq!(
        std::fs::read(dir.join("availability.json.br")).unwrap(),
        published[field::BROTLI]
    );
    assert_eq!(
        std::fs::read(dir.join("availability.json.gz")).unwrap(),
        published[field::GZIP]
    );
    assert!(dir.join("layout.json.br").exists());
}

async fn next_announcement(pubsub: &mut redis::aio::PubSub) -> snapshot::Announcement {
    let message = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next())
        .await
        .expect("an announcement")
        .unwrap();
    serde_json::from_slice(message.get_payload_bytes()).unwrap()
}

/// A builder starting with an empty directory while Redis already holds the current content
/// (a restart, a new CDN origin) writes Redis's bytes, not a rebuild stamped later: one
/// strong ETag, one body, wherever it is served from.
#[tokio::test(flavor = "multi_thread")]
async fn a_directory_catching_up_gets_the_bytes_redis_serves() {
    let f = fixture().await;
    f.builder().build_all(1_000).await.unwrap();
    let published = f.snapshot(Kind::Availability).await;
    let out_dir = tempfile::tempdir().unwrap();
    let mut config = builder_config(&f.app.db, &f.prefix);
    config.build.out_dir = out_dir.path().to_owned();
    let mut later = Builder::new(config, Arc::new(Metrics::new())).unwrap();
    later.build_all(31_000).await.unwrap();
    let dir = out_dir.path().join(f.show.to_string());
    for (file, field) in [
        ("availability.json", field::IDENTITY),
        ("availability.json.gz", field::GZIP),
        ("availability.json.br", field::BROTLI),
    ] {
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            published[field],
            "{file}"
        );
    }
    assert_eq!(
        f.snapshot(Kind::Availability).await[field::BUILT_AT_MS],
        b"1000"
    );
}

/// The loop tests' interval. On a manual clock its length costs no time; whole seconds
/// keep the tick (a third of it) exact.
const INTERVAL: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_secs(10);

fn loop_config(f: &Fixture) -> seatmap_builder::config::Config {
    let mut config = builder_config(&f.app.db, &f.prefix);
    config.build.interval_s = INTERVAL.as_secs_f64();
    config
}

/// Waits until each builder has done everything due at the clock's current time. The
/// deadline only bounds a failure: a pass against an unreachable database takes seconds.
async fn settle(builders: &[&RunningBuilder]) {
    for builder in builders {
        tokio::time::timeout(Duration::from_secs(30), builder.settled())
            .await
            .expect("the builder settles");
    }
}

fn lease_holder(builder: &RunningBuilder) -> i64 {
    builder.metrics.lease_holder.get()
}

fn builds(builder: &RunningBuilder) -> u64 {
    ["changed", "unchanged"]
        .iter()
        .map(|outcome| {
            builder
                .metrics
                .builds
                .with_label_values(&["availability", outcome])
                .get()
        })
        .sum()
}

/// Two builders on one clock: `a` starts first and leads from its first round (one build);
/// `b` finds the lease taken.
async fn leader_and_follower(f: &Fixture, clock: &Clock) -> (RunningBuilder, RunningBuilder) {
    let a = seatmap_builder::start(loop_config(f), "a".into(), clock.clone())
        .await
        .unwrap();
    settle(&[&a]).await;
    let b = seatmap_builder::start(loop_config(f), "b".into(), clock.clone())
        .await
        .unwrap();
    settle(&[&a, &b]).await;
    assert_eq!((lease_holder(&a), lease_holder(&b)), (1, 0));
    assert_eq!((builds(&a), builds(&b)), (1, 0));
    // Both are ready: one builds, the other stands by to take over.
    for builder in [&a, &b] {
        assert_eq!(client(builder.addr).get("/readyz").await.status, 200);
    }
    (a, b)
}

/// Both builders run on one manual clock, moved a tick (a third of the interval) at a time;
/// after each move both finish their round before anything is checked, so every interval's
/// builds are exact.
#[tokio::test(flavor = "multi_thread")]
async fn two_builders_make_one_build_per_interval_and_the_follower_takes_over() {
    let f = fixture().await;
    let clock = Clock::manual(clock::now_ms());
    let t0 = clock.now_ms();
    let (a, b) = leader_and_follower(&f, &clock).await;

    // The leader renews every tick and builds every third; the follower never builds.
    for tick in 1..=9 {
        clock.advance(TICK);
        settle(&[&a, &b]).await;
        assert_eq!((lease_holder(&a), lease_holder(&b)), (1, 0), "tick {tick}");
        assert_eq!((builds(&a), builds(&b)), (1 + tick / 3, 0), "tick {tick}");
    }

    // The leader renewed and built at tick 9 and dies; its lease runs two ticks more.
    a.crash().await;
    clock.advance(TICK);
    settle(&[&b]).await;
    assert_eq!(
        (lease_holder(&b), builds(&b)),
        (0, 0),
        "the dead leader's lease still runs"
    );
    clock.advance(TICK);
    settle(&[&b]).await;
    assert_eq!(
        (lease_holder(&b), builds(&b)),
        (1, 1),
        "the follower builds within one interval of the last build"
    );
    let checked_at = t0 + 11 * TICK.as_millis() as i64;
    assert_eq!(
        f.snapshot(Kind::Availability).await[field::CHECKED_AT_MS],
        checked_at.to_string().as_bytes(),
        "stamped with the builders' clock"
    );

    // The new leader keeps the same pace.
    for tick in 1..=3 {
        clock.advance(TICK);
        settle(&[&b]).await;
        assert_eq!(builds(&b), 1 + tick / 3, "tick {tick} after the takeover");
    }
    b.shutdown().await;
}

/// A leader that stops releases the lease: a follower takes over at its next tick, without
/// waiting for the lease to lapse.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_leader_hands_over_at_the_next_tick() {
    let f = fixture().await;
    let clock = Clock::manual(clock::now_ms());
    let (a, b) = leader_and_follower(&f, &clock).await;

    a.shutdown().await;
    clock.advance(TICK);
    settle(&[&b]).await;
    assert_eq!((lease_holder(&b), builds(&b)), (1, 1));
    b.shutdown().await;
    let lease: Option<String> = onsale_tests::redis()
        .await
        .get(format!("{}seatmap-builder:lease", f.prefix))
        .await
        .unwrap();
    assert_eq!(lease, None, "released on shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_gone_mid_run_keeps_the_last_snapshot_and_ages_it() {
    let f = fixture().await;
    let gate = TcpGate::start(onsale_tests::pg_addr(&f.app.db.url)).await;
    let mut config = loop_config(&f);
    config.database.url =
        onsale_contract::config::Secret::new(onsale_tests::via(&f.app.db.url, gate.addr));
    let clock = Clock::manual(clock::now_ms());
    let builder = seatmap_builder::start(config, "solo".into(), clock.clone())
        .await
        .unwrap();
    let show = f.show.to_string();
    let age = || {
        builder
            .metrics
            .snapshot_age
            .with_label_values(&[&show])
            .get()
    };
    let failures = || builder.metrics.failures.with_label_values(&["build"]).get();
    settle(&[&builder]).await;
    let published = f.snapshot(Kind::Availability).await;
    assert!(published.contains_key(field::ETAG), "a first snapshot");

    gate.cut();
    f.hold_seat(0, "10 minutes").await; // a change the builder cannot see while Postgres is away
    clock.advance(INTERVAL);
    settle(&[&builder]).await;
    assert_eq!((failures(), age()), (1, 30.0));
    // The retry is due well within a tick, and fails again; the snapshot keeps aging.
    clock.advance(TICK);
    settle(&[&builder]).await;
    assert_eq!((failures(), age()), (2, 40.0));
    let during = f.snapshot(Kind::Availability).await;
    assert_eq!(
        during[field::ETAG],
        published[field::ETAG],
        "the last good snapshot stays"
    );
    assert_eq!(during[field::IDENTITY], published[field::IDENTITY]);

    gate.restore();
    clock.advance(TICK);
    settle(&[&builder]).await;
    let doc = f.document(Kind::Availability).await;
    assert!(
        doc["seat_status"].as_str().unwrap().starts_with('H'),
        "recovered with the new seat state"
    );
    assert_eq!((failures(), age()), (2, 0.0));
    builder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_away_still_writes_the_directory() {
    let f = fixture().await;
    let out_dir = tempfile::tempdir().unwrap();
    let mut config = builder_config(&f.app.db, &f.prefix);
    config.redis.url =
        onsale_contract::config::Secret::new(format!("redis://{}", onsale_tests::free_port()));
    config.build.out_dir = out_dir.path().to_owned();
    let metrics = Arc::new(Metrics::new());
    let mut builder = Builder::new(config, metrics.clone()).unwrap();

    let written = || {
        let path = out_dir
            .path()
            .join(f.show.to_string())
            .join("availability.json");
        let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        doc["seat_status"].as_str().unwrap().to_owned()
    };
    let report = builder.build_all(1_000).await.unwrap().remove(0);
    assert!(report.availability_changed);
    assert_eq!(written(), "A".repeat(20));
    assert!(metrics.failures.with_label_values(&["redis_connect"]).get() > 0);

    f.sell_seat(0).await;
    builder.build_all(31_000).await.unwrap();
    assert!(written().starts_with('S'));
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_come_from_the_replica_when_one_is_set() {
    let f = fixture().await;
    let mut config = builder_config(&f.app.db, &f.prefix);
    // The primary is unreachable; builds still work, so they read the replica.
    let nowhere = onsale_tests::via(&f.app.db.url, onsale_tests::free_port());
    config.database.replica_url = onsale_contract::config::Secret::new(f.app.db.url.clone());
    config.database.url = onsale_contract::config::Secret::new(nowhere);
    let mut builder = Builder::new(config, Arc::new(Metrics::new())).unwrap();
    let reports = builder.build_all(1_000).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(
        f.document(Kind::Availability).await["seat_status"]
            .as_str()
            .unwrap()
            .len(),
        20
    );
}

/// An edge's full sync finds the snapshots of every show, whichever node holds them: on a
/// Redis Cluster the shows below hash to every primary, and a `SCAN` of one node would find
/// a third of them.
#[tokio::test(flavor = "multi_thread")]
async fn an_edge_loads_every_shows_snapshot_whichever_node_holds_it() {
    let prefix = redis_prefix();
    let shows: Vec<String> = (0..24).map(|n| format!("show-{n}")).collect();
    for show in &shows {
        let identity = serde_json::json!({ "show_id": show, "sections": [] }).to_string();
        let etag = format!("etag-{show}");
        onsale_tests::put_snapshot(
            &prefix,
            show,
            Kind::Availability,
            &etag,
            identity.as_bytes(),
            1_000,
        )
        .await;
    }
    if onsale_tests::redis_cluster() {
        let mut conn = onsale_tests::redis().await;
        let ranges = slot_ranges(&mut conn).await;
        let primaries: std::collections::BTreeSet<&str> =
            ranges.iter().map(|(_, _, node)| node.as_str()).collect();
        let mut holders = std::collections::BTreeSet::new();
        for show in &shows {
            let key = snapshot::key(&prefix, show, Kind::Availability);
            let slot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let holder = ranges
                .iter()
                .find(|(start, end, _)| (*start..=*end).contains(&slot))
                .map(|(_, _, node)| node.as_str());
            holders.insert(holder.expect("every slot has a primary"));
        }
        assert_eq!(holders, primaries, "the shows span every primary");
    }

    // Announcements never come and the poll is far off: only the sync at connect loads them.
    let edge = onsale_tests::edge()
        .upstream(onsale_tests::free_port())
        .config(|c| {
            c.redis.key_prefix = prefix.clone();
            c.snapshots.poll_interval_ms = 600_000;
        })
        .run();
    onsale_tests::eventually(
        "every show's snapshot at the edge",
        Duration::from_secs(10),
        || async {
            shows
                .iter()
                .all(|show| {
                    edge.shared
                        .snapshots
                        .get(show, Kind::Availability)
                        .is_some_and(|held| held.etag == format!("etag-{show}"))
                })
                .then_some(())
        },
    )
    .await;
}

/// The cluster's slot ranges, each as (start, end, its primary's host:port), from
/// `CLUSTER SLOTS`.
async fn slot_ranges(conn: &mut onsale_contract::redis::Connection) -> Vec<(i64, i64, String)> {
    let ranges: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(conn)
        .await
        .unwrap();
    ranges
        .iter()
        .map(|range| {
            let (host, port): (String, u16) =
                match redis::from_redis_value::<Vec<redis::Value>>(&range[2])
                    .unwrap()
                    .as_slice()
                {
                    [host, port, ..] => (
                        redis::from_redis_value(host).unwrap(),
                        redis::from_redis_value(port).unwrap(),
                    ),
                    _ => panic!("a CLUSTER SLOTS node without an address"),
                };
            (
                redis::from_redis_value(&range[0]).unwrap(),
                redis::from_redis_value(&range[1]).unwrap(),
                format!("{host}:{port}"),
            )
        })
        .collect()
}
