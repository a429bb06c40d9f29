//! The waiting room through real Pingora edges and real Redis. Time is a manual clock shared
//! by the edges; each simulated tick advances it and runs every edge's admission step
//! explicitly (the background step runs too, on the same clock, to the same effect).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{TimeZone, Utc};
use edge_proxy::config::{PrequeueOrder, QueueSettings};
use edge_proxy::waiting_room::{draw, pow};
use edge_proxy::RunningEdge;
use futures_util::future::join_all;
use onsale_contract::clock::Clock;
use onsale_contract::snapshot::{self, field, Kind};
use onsale_contract::tokens::{Claims, Lane, Signer, TokenType};
use onsale_tests::{admission, client, edge, eventually, keys, redis, Client};
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::Duration;

const JOIN: &str = "/v1/waiting-room/sessions";
const T0: i64 = 1_900_000_000_000;
const WITHIN: Duration = Duration::from_secs(10);

fn at(ms: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

/// A queue open since T0 with the sale open too, unless changed.
fn settings() -> QueueSettings {
    QueueSettings {
        admit_per_minute: 600,
        max_active: 100_000,
        session_ttl_s: 600,
        queue_opens_at: at(T0),
        sale_opens_at: at(T0),
        prequeue_order: PrequeueOrder::Random,
        no_show_grace_s: 10,
        pow_difficulty: 0,
        paused: false,
    }
}

struct Room {
    edges: Vec<RunningEdge>,
    clock: Clock,
    show: String,
    prefix: String,
}

/// `nodes` edges on one Redis prefix and one manual clock at T0, with `settings` for one show.
async fn room(nodes: usize, settings: QueueSettings, upstream: Option<SocketAddr>) -> Room {
    room_via(nodes, settings, upstream, onsale_tests::redis_url()).await
}

/// [`room`], reaching Redis at `redis_url`.
async fn room_via(
    nodes: usize,
    settings: QueueSettings,
    upstream: Option<SocketAddr>,
    redis_url: String,
) -> Room {
    let show = uuid::Uuid::new_v4().to_string();
    room_for(nodes, settings, upstream, redis_url, show).await
}

/// [`room_via`] for a show of the caller's (one the origin knows).
async fn room_for(
    nodes: usize,
    settings: QueueSettings,
    upstream: Option<SocketAddr>,
    redis_url: String,
    show: String,
) -> Room {
    let clock = Clock::manual(T0);
    let prefix = onsale_tests::redis_prefix();
    let edges: Vec<RunningEdge> = (0..nodes)
        .map(|_| {
            let mut builder = edge().clock(clock.clone()).config(|c| {
                c.redis.url = onsale_contract::config::Secret::new(redis_url.clone());
                c.redis.key_prefix = prefix.clone();
                c.waiting_room.shows.insert(show.clone(), settings.clone());
                c.waiting_room.refresh_ms = 1000;
                c.limits.per_ip_join.per_minute = 1_000_000;
                c.limits.per_ip_join.burst = 100_000;
            });
            if let Some(upstream) = upstream {
                builder = builder.upstream(upstream);
            }
            builder.run()
        })
        .collect();
    let room = Room {
        edges,
        clock,
        show,
        prefix,
    };
    for edge in &room.edges {
        eventually("the waiting room's first step", WITHIN, || async {
            edge.shared.waiting_room.view(&room.show).map(|_| ())
        })
        .await;
    }
    room
}

impl Room {
    async fn step(&self) {
        for edge in &self.edges {
            let shared = &edge.shared;
            shared
                .waiting_room
                .step(
                    &shared.live.load(),
                    &shared.snapshots,
                    shared.clock.now_ms(),
                )
                .await;
        }
    }

    async fn tick(&self, by: Duration) {
        self.clock.advance(by);
        self.step().await;
    }

    fn fan(&self, node: usize) -> Client {
        client(self.edges[node].public)
    }

    async fn join(&self, node: usize) -> Value {
        let reply = self
            .fan(node)
            .post(JOIN, &json!({ "show_id": self.show }))
            .await;
        reply.expect_status(201);
        reply.json()
    }

    async fn poll(&self, node: usize, token: &str) -> onsale_tests::Reply {
        self.fan(node)
            .bearer(token)
            .get(&format!("{JOIN}/current?show_id={}", self.show))
            .await
    }

    fn admin(&self, node: usize) -> Value {
        let report = self.edges[node]
            .shared
            .waiting_room
            .admin_view(&self.show, self.clock.now_ms())
            .expect("a view of the show");
        serde_json::to_value(report).unwrap()
    }
}

fn claims_of(token: &str) -> Claims {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fan_keeps_its_place_whatever_it_does() {
    let mut s = settings();
    s.paused = true;
    let room = room(1, s, None).await;
    let first = room.join(0).await;
    let second = room.join(0).await;
    assert_eq!(first["status"], "queued");
    assert_eq!(first["position"], 0);
    assert_eq!(second["position"], 1);
    assert_eq!(
        second["estimated_wait_s"],
        Value::Null,
        "paused: no honest ETA"
    );
    let token = second["queue_token"].as_str().unwrap();
    assert_eq!(claims_of(token).typ, TokenType::Queue);
    assert_eq!(claims_of(token).lane, Some(Lane::Open));

    // Re-joining with the token (bearer, or the cookie from another tab) keeps the place.
    let again = room
        .fan(0)
        .bearer(token)
        .post(JOIN, &json!({ "show_id": room.show }))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["position"], 1);
    assert_eq!(again.json()["queue_token"], token);
    let by_cookie = room
        .fan(0)
        .send(
            room.fan(0)
                .raw(Method::POST, JOIN)
                .header("cookie", format!("onsale_queue={token}"))
                .json(&json!({ "show_id": room.show })),
        )
        .await;
    assert_eq!(by_cookie.json()["position"], 1);
    // A join without the token is a new fan, at the back.
    assert_eq!(room.join(0).await["position"], 2);
    let joined = room
        .fan(0)
        .post(JOIN, &json!({ "show_id": room.show }))
        .await;
    let cookie = joined.header("set-cookie").unwrap();
    assert!(cookie.starts_with("onsale_queue=") && cookie.contains("HttpOnly"));

    // Forged, expired, other-show and wrong-type tokens get nothing.
    let now_s = room.clock.now_ms() / 1000;
    let mut claims = claims_of(token);
    claims.exp = now_s - 10;
    claims.iat = now_s - 100;
    let expired = keys().signer.sign(&claims);
    room.poll(0, &expired)
        .await
        .problem(401, "queue_token_required");
    let (stranger, _) = onsale_contract::tokens::generate_pem_pair();
    let stranger = Signer::from_pem(&stranger, "onsale-edge").unwrap();
    let mut forged = claims_of(token);
    forged.queue_no = Some(0);
    room.poll(0, &stranger.sign(&forged))
        .await
        .problem(401, "queue_token_required");
    let mut elsewhere = claims_of(token);
    elsewhere.show = "another-show".into();
    room.poll(0, &keys().signer.sign(&elsewhere))
        .await
        .problem(403, "wrong_show");
    room.poll(0, &admission("fan", &room.show))
        .await
        .problem(401, "queue_token_required");
    // A queue token does not open the purchase path.
    room.fan(0)
        .bearer(token)
        .get("/v1/holds/abc")
        .await
        .problem(401, "admission_required");

    // Bad input changes nothing.
    room.fan(0)
        .post(JOIN, &json!({ "show": room.show }))
        .await
        .problem(400, "invalid_body");
    room.fan(0)
        .post(JOIN, &json!({ "show_id": "a/b" }))
        .await
        .problem(400, "invalid_body");
    room.fan(0)
        .post(JOIN, &json!({ "show_id": "no-such-show" }))
        .await
        .problem(404, "show_not_found");
    room.fan(0)
        .get(&format!("{JOIN}/current?show_id=bad%20id"))
        .await
        .problem(400, "invalid_query");
    room.step().await;
    assert_eq!(room.admin(0)["joined"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn before_the_queue_opens_a_join_is_told_when() {
    let mut s = settings();
    s.queue_opens_at = at(T0 + 3_600_000);
    s.sale_opens_at = at(T0 + 7_200_000);
    let room = room(1, s, None).await;
    let reply = room
        .fan(0)
        .post(JOIN, &json!({ "show_id": room.show }))
        .await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["status"], "closed");
    assert_eq!(body["opens_at_ms"], T0 + 3_600_000);
    assert_eq!(body["server_time_ms"], T0);
    assert!(body.get("queue_token").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_prequeue_is_drawn_from_the_published_seed_and_later_fans_queue_behind() {
    let mut s = settings();
    s.queue_opens_at = at(T0);
    s.sale_opens_at = at(T0 + 60_000);
    s.paused = true;
    let room = room(1, s, None).await;
    let mut early = Vec::new();
    for _ in 0..40 {
        let joined = room.join(0).await;
        assert_eq!(joined["status"], "pre_queue");
        assert!(joined.get("position").is_none());
        assert_eq!(joined["opens_at_ms"], T0 + 60_000);
        early.push(joined["queue_token"].as_str().unwrap().to_owned());
    }
    room.step().await;
    let before = room.admin(0);
    assert_eq!(before["status"], "pre_queue");
    assert_eq!(before["prequeue_size"], 40);
    assert_eq!(
        before["seed"],
        Value::Null,
        "the seed stays secret until the draw"
    );
    let commitment = before["seed_sha256"].as_str().unwrap().to_owned();

    room.tick(Duration::from_secs(60)).await;
    let after = room.admin(0);
    let seed = hex_seed(after["seed"].as_str().expect("the seed, revealed"));
    assert_eq!(hex_of(&Sha256::digest(seed)), commitment);
    assert_eq!(after["prequeue_size"], 40);

    let mut places = Vec::new();
    for token in &early {
        let polled = room.poll(0, token).await.json();
        assert_eq!(polled["status"], "queued");
        let join_no = claims_of(token).queue_no.unwrap();
        let place = draw::place(&seed, 40, join_no);
        assert_eq!(polled["position"], place, "anyone can recompute the place");
        places.push(place);
    }
    places.sort_unstable();
    assert_eq!(places, (0..40).collect::<Vec<_>>());

    // After the opening: first come, first served, behind the whole pre-queue.
    for expected in 40..45 {
        assert_eq!(room.join(0).await["position"], expected);
    }
}

fn hex_seed(hex: &str) -> draw::Seed {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fans in a simulated on-sale: each polls on its own schedule (every 2 s near the front,
/// every 8 s further back, staggered by index) through the node it joined; `present`
/// decides who keeps polling. Returns admission tokens issued per tick.
struct Crowd {
    tokens: Vec<String>,
    node: Vec<usize>,
    present: Vec<bool>,
    next_poll_ms: Vec<i64>,
    admitted: Vec<bool>,
}

impl Crowd {
    async fn join(room: &Room, fans: usize, present: impl Fn(usize) -> bool) -> Crowd {
        let nodes = room.edges.len();
        let mut tokens = Vec::with_capacity(fans);
        for chunk in (0..fans).collect::<Vec<_>>().chunks(50) {
            let joined = join_all(chunk.iter().map(|&i| room.join(i % nodes))).await;
            tokens.extend(
                joined
                    .iter()
                    .map(|j| j["queue_token"].as_str().unwrap().to_owned()),
            );
        }
        // Joins ran concurrently: order the crowd by place.
        tokens.sort_by_key(|t| claims_of(t).queue_no);
        Crowd {
            node: (0..fans).map(|i| i % nodes).collect(),
            present: (0..fans).map(&present).collect(),
            next_poll_ms: (0..fans).map(|i| T0 + (i as i64 % 8) * 1000).collect(),
            admitted: vec![false; fans],
            tokens,
        }
    }

    /// Polls every present fan that is due; returns how many got their admission token.
    async fn poll_due(&mut self, room: &Room) -> usize {
        let now = room.clock.now_ms();
        let due: Vec<usize> = (0..self.tokens.len())
            .filter(|&i| self.present[i] && !self.admitted[i] && self.next_poll_ms[i] <= now)
            .collect();
        let (nodes, tokens) = (&self.node, &self.tokens);
        let replies = join_all(
            due.iter()
                .map(|&i| async move { (i, room.poll(nodes[i], &tokens[i]).await) }),
        )
        .await;
        let mut admitted = 0;
        for (i, reply) in replies {
            reply.expect_status(200);
            let body = reply.json();
            match body["status"].as_str().unwrap() {
                "admitted" => {
                    let token = body["admission_token"].as_str().unwrap();
                    assert_eq!(claims_of(token).typ, TokenType::Admit);
                    self.admitted[i] = true;
                    admitted += 1;
                }
                "queued" => {
                    let near = body["position"].as_u64().unwrap() < 100;
                    self.next_poll_ms[i] = now + if near { 2_000 } else { 8_000 };
                }
                "sold_out" => self.next_poll_ms[i] = now + 2_000,
                other => panic!("unexpected status {other}"),
            }
        }
        admitted
    }
}

/// Runs the crowd for `duration` in 250 ms ticks; returns tokens issued within the window
/// `[from, until)` (ms after T0), and checks `max_active` on every tick.
async fn run_crowd(room: &Room, crowd: &mut Crowd, until_ms: i64, window: (i64, i64)) -> usize {
    let mut issued = 0;
    let max_active = room.admin(0)["max_active"].as_u64().unwrap();
    while room.clock.now_ms() < T0 + until_ms {
        let elapsed = room.clock.now_ms() - T0;
        let admitted = crowd.poll_due(room).await;
        if (window.0..window.1).contains(&elapsed) {
            issued += admitted;
        }
        room.step().await;
        let active = room.admin(0)["active"].as_u64().unwrap();
        assert!(
            active <= max_active,
            "{active} active > max_active {max_active}"
        );
        room.tick(Duration::from_millis(250)).await;
    }
    issued
}

#[tokio::test(flavor = "multi_thread")]
async fn admission_runs_at_the_configured_rate() {
    let room = room(1, settings(), None).await;
    let mut crowd = Crowd::join(&room, 1000, |_| true).await;
    room.step().await;
    let issued = run_crowd(&room, &mut crowd, 70_000, (10_000, 70_000)).await;
    assert!(
        (540..=660).contains(&issued),
        "{issued} admission tokens in a minute at admit_per_minute = 600"
    );
    let view = room.admin(0);
    assert_eq!(view["no_shows_skipped"], 0);
    assert!(view["admitted_last_minute"].as_u64().unwrap() >= 540);
}

#[tokio::test(flavor = "multi_thread")]
async fn fans_who_walked_away_do_not_eat_the_rate() {
    let room = room(1, settings(), None).await;
    // Every other fan never polls after joining.
    let mut crowd = Crowd::join(&room, 2000, |i| i % 2 == 0).await;
    room.step().await;
    // They look away once a full grace (10 s) has passed without a poll.
    let issued = run_crowd(&room, &mut crowd, 90_000, (30_000, 90_000)).await;
    assert!(
        (540..=660).contains(&issued),
        "{issued} admission tokens in a minute with half the queue gone"
    );
    assert!(room.admin(0)["no_shows_skipped"].as_u64().unwrap() > 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_edges_admit_one_global_rate() {
    let room = room(2, settings(), None).await;
    let mut crowd = Crowd::join(&room, 1000, |_| true).await;
    room.step().await;
    let issued = run_crowd(&room, &mut crowd, 70_000, (10_000, 70_000)).await;
    assert!(
        (540..=660).contains(&issued),
        "{issued} admission tokens in a minute from two nodes at admit_per_minute = 600"
    );
    // Both nodes issued some.
    assert!(crowd.admitted.iter().step_by(2).any(|&a| a));
    assert!(crowd.admitted.iter().skip(1).step_by(2).any(|&a| a));
}

/// An upstream that answers every request `200 {}`, keeping connections alive.
async fn upstream() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        buffer.drain(..end + 4);
                        // Every answer says the admission was spent, as a confirmed order's does.
                        let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nonsale-admission-spent: true\r\ncontent-length: 2\r\n\r\n{}";
                        if stream.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn max_active_caps_sessions_and_a_confirmed_order_frees_its_place() {
    let mut s = settings();
    s.max_active = 5;
    s.session_ttl_s = 60;
    let room = room(1, s, Some(upstream().await)).await;
    let mut crowd = Crowd::join(&room, 20, |_| true).await;
    room.step().await;
    eventually("the origin pool to be healthy", WITHIN, || async {
        room.edges[0].shared.pool_keeper.any_healthy().then_some(())
    })
    .await;
    for _ in 0..40 {
        crowd.poll_due(&room).await;
        room.tick(Duration::from_millis(250)).await;
    }
    let admitted = |c: &Crowd| c.admitted.iter().filter(|&&a| a).count();
    assert_eq!(admitted(&crowd), 5, "max_active = 5");
    assert_eq!(room.admin(0)["active"], 5);

    // One admitted fan's payment confirms through the edge: its session ends at once.
    let first = crowd.admitted.iter().position(|&a| a).unwrap();
    let token = room.poll(0, &crowd.tokens[first]).await.json()["admission_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let confirmed = room
        .fan(0)
        .bearer(&token)
        .post("/v1/payments/p1/confirm", &json!({}))
        .await;
    assert_eq!(confirmed.status, 200);
    // The freed place goes to the next fan at the next step.
    let serving = room.admin(0)["serving"].as_u64().unwrap();
    eventually("the next fan to be called", WITHIN, || async {
        room.step().await;
        (room.admin(0)["serving"].as_u64().unwrap() > serving).then_some(())
    })
    .await;
    for _ in 0..20 {
        crowd.poll_due(&room).await;
        room.tick(Duration::from_millis(250)).await;
    }
    assert_eq!(admitted(&crowd), 6);
    // Sessions expire on the server: a minute on, the next fans get in.
    for _ in 0..260 {
        crowd.poll_due(&room).await;
        room.tick(Duration::from_millis(250)).await;
        assert!(room.admin(0)["active"].as_u64().unwrap() <= 5);
    }
    assert_eq!(admitted(&crowd), 11);
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_and_pause_reach_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let room = room(2, settings(), None).await;
    // Node 0 reloads a file with a new rate: it publishes it; node 1 runs on it next step.
    let path = dir.path().join("edge.toml");
    let mut config = room.edges[0].shared.live.load().config.clone();
    config
        .waiting_room
        .shows
        .get_mut(&room.show)
        .unwrap()
        .admit_per_minute = 1200;
    onsale_tests::write_edge_config(&path, &config);
    room.edges[0].shared.live.apply(config).unwrap();
    let version = room.admin(1)["settings_version"].as_u64().unwrap();
    room.step().await;
    room.step().await;
    assert_eq!(room.admin(1)["admit_per_minute"], 1200);
    assert!(room.admin(1)["settings_version"].as_u64().unwrap() > version);

    // Pause on node 0's admin listener: node 1 stops calling fans at its next step.
    let mut crowd = Crowd::join(&room, 50, |_| true).await;
    let admin = client(room.edges[0].admin);
    let paused = admin
        .post(&format!("/admin/shows/{}/pause", room.show), &json!({}))
        .await;
    paused.expect_status(200);
    let serving = room.admin(1)["serving"].as_u64().unwrap();
    for _ in 0..20 {
        crowd.poll_due(&room).await;
        room.tick(Duration::from_millis(250)).await;
    }
    assert_eq!(room.admin(1)["serving"].as_u64().unwrap(), serving);
    assert_eq!(room.admin(1)["status"], "paused");
    assert!(crowd.admitted.iter().all(|&a| !a));
    let queue = admin
        .get(&format!("/admin/shows/{}/queue", room.show))
        .await
        .json();
    assert_eq!(queue["paused"], true);
    admin
        .post(&format!("/admin/shows/{}/resume", room.show), &json!({}))
        .await;
    for _ in 0..20 {
        crowd.poll_due(&room).await;
        room.tick(Duration::from_millis(250)).await;
    }
    assert!(crowd.admitted.iter().any(|&a| a));
}

/// Publishes an availability document for `show` with `open` seats available.
async fn publish_availability(room: &Room, open: u64, version: i64) {
    let identity = json!({
        "show_id": room.show,
        "layout_version": 1,
        "built_at_ms": room.clock.now_ms(),
        "next_build_at_ms": room.clock.now_ms() + 30_000,
        "sections": [{"section_id": "a", "available": open, "held": 0, "sold": 10 - open, "total": 10}],
        "seat_status": "S".repeat(10),
    })
    .to_string();
    let key = snapshot::key(&room.prefix, &room.show, Kind::Availability);
    let mut conn = redis().await;
    let now = room.clock.now_ms();
    let _: () = conn
        .hset_multiple(
            &key,
            &[
                (field::ETAG, format!("etag{version}").into_bytes()),
                (field::BUILT_AT_MS, now.to_string().into_bytes()),
                (field::CHECKED_AT_MS, now.to_string().into_bytes()),
                (
                    field::NEXT_BUILD_AT_MS,
                    (now + 30_000).to_string().into_bytes(),
                ),
                (field::LAYOUT_VERSION, b"1".to_vec()),
                (field::IDENTITY, identity.into_bytes()),
                (field::GZIP, b"gz".to_vec()),
                (field::BROTLI, b"br".to_vec()),
            ],
        )
        .await
        .unwrap();
    eventually("the edge to load the snapshot", WITHIN, || async {
        let held = room.edges[0]
            .shared
            .snapshots
            .get(&room.show, Kind::Availability)?;
        (held.open_seats == Some(open)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sold_out_stops_admission_and_returning_seats_resume_it() {
    let room = room(1, settings(), None).await;
    let mut crowd = Crowd::join(&room, 30, |_| true).await;
    publish_availability(&room, 0, 1).await;
    room.step().await;
    let polled = room.poll(0, &crowd.tokens[0]).await.json();
    assert_eq!(polled["status"], "sold_out");
    assert_eq!(room.admin(0)["status"], "sold_out");
    let serving = room.admin(0)["serving"].clone();
    for _ in 0..8 {
        room.tick(Duration::from_millis(250)).await;
    }
    assert_eq!(room.admin(0)["serving"], serving, "no calls while sold out");

    // Seats come back (holds expired): admission resumes.
    publish_availability(&room, 3, 2).await;
    for _ in 0..20 {
        crowd.poll_due(&room).await;
        room.tick(Duration::from_millis(250)).await;
    }
    assert!(crowd.admitted.iter().any(|&a| a));
}

#[tokio::test(flavor = "multi_thread")]
async fn proof_of_work_guards_joins() {
    let mut s = settings();
    s.pow_difficulty = 8;
    let room = room(1, s, None).await;
    let fan = room.fan(0);
    let required = fan.post(JOIN, &json!({ "show_id": room.show })).await;
    required.problem(400, "pow_required");
    let challenge = fan
        .get(&format!("/v1/waiting-room/challenge?show_id={}", room.show))
        .await
        .json();
    assert_eq!(challenge["difficulty"], 8);
    let challenge = challenge["challenge"].as_str().unwrap();
    let solution = pow::solve(challenge, 8);
    let wrong = (0u64..)
        .map(|n| format!("x{n}"))
        .find(|s| !pow::solves(challenge, s, 8))
        .unwrap();
    let join = |solution: String| json!({ "show_id": room.show, "pow": { "challenge": challenge, "solution": solution } });
    fan.post(JOIN, &join(wrong))
        .await
        .problem(400, "pow_invalid");
    let joined = fan.post(JOIN, &join(solution.clone())).await;
    joined.expect_status(201);
    fan.post(JOIN, &join(solution))
        .await
        .problem(409, "pow_reused");
    // Shows without proof of work have no challenge.
    fan.get("/v1/waiting-room/challenge?show_id=elsewhere")
        .await
        .problem(404, "show_not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_redis_away_queued_fans_keep_polling_and_joins_say_so() {
    let redis: SocketAddr = onsale_tests::redis_url()
        .trim_start_matches("redis://")
        .parse()
        .expect("TEST_REDIS_URL is redis://ip:port");
    let gate = onsale_tests::TcpGate::start(redis).await;
    let mut s = settings();
    s.paused = true;
    let room = room_via(1, s, None, format!("redis://{}", gate.addr)).await;
    let token = room.join(0).await["queue_token"]
        .as_str()
        .unwrap()
        .to_owned();
    room.join(0).await;
    room.step().await;

    gate.cut();
    room.step().await;
    // The view of the last good step answers polls; joins need Redis and say so.
    let polled = room.poll(0, &token).await;
    polled.expect_status(200);
    assert_eq!(polled.json()["position"], 0);
    let refused = room
        .fan(0)
        .post(JOIN, &json!({ "show_id": room.show }))
        .await;
    refused.problem(503, "queue_unavailable");
    assert_eq!(refused.header("retry-after"), Some("2"));

    gate.restore();
    eventually("joins to work again", WITHIN, || async {
        let reply = room
            .fan(0)
            .post(JOIN, &json!({ "show_id": room.show }))
            .await;
        (reply.status == 201).then(|| reply.json())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fan_goes_from_the_queue_to_tickets_through_the_edge() {
    let stadium = crate::holds::stadium().await;
    let room = room_for(
        1,
        settings(),
        Some(stadium.app.origin.addr()),
        onsale_tests::redis_url(),
        stadium.show.clone(),
    )
    .await;
    eventually("the origin pool to be healthy", WITHIN, || async {
        room.edges[0].shared.pool_keeper.any_healthy().then_some(())
    })
    .await;
    let queued = room.join(0).await;
    let queue_token = queued["queue_token"].as_str().unwrap().to_owned();
    room.tick(Duration::from_secs(1)).await;
    let admitted = room.poll(0, &queue_token).await.json();
    assert_eq!(admitted["status"], "admitted");
    let fan = room
        .fan(0)
        .bearer(admitted["admission_token"].as_str().unwrap());
    // Without admission the purchase path is closed; with it, hold, order, pay.
    room.fan(0)
        .bearer(&queue_token)
        .post_idempotent(
            &format!("/v1/shows/{}/holds", stadium.show),
            "h",
            &json!({ "seat_ids": &stadium.seats[..2] }),
        )
        .await
        .problem(401, "admission_required");
    let hold = fan
        .post_idempotent(
            &format!("/v1/shows/{}/holds", stadium.show),
            "h",
            &json!({ "seat_ids": &stadium.seats[..2] }),
        )
        .await;
    hold.expect_status(201);
    let created = crate::orders::order(&fan, hold.json()["hold_id"].as_str().unwrap(), "o").await;
    created.expect_status(201);
    let created = created.json();
    let payment = created["payment"]["payment_id"].as_str().unwrap();
    let paid = crate::orders::confirm(&fan, payment, "pm_card_ok", "c").await;
    paid.expect_status(200);
    assert_eq!(
        paid.header("onsale-admission-spent"),
        None,
        "the edge's own"
    );
    let paid = paid.json();
    assert_eq!(paid["order"]["status"], "confirmed");
    let tickets = paid["order"]["tickets"].as_array().unwrap().clone();
    assert_eq!(tickets.len(), 2);
    // Paying ended the waiting-room session (the edge ends it after answering); the queue
    // token still shows the tickets.
    eventually("the session to end", WITHIN, || async {
        room.step().await;
        (room.admin(0)["active"] == 0).then_some(())
    })
    .await;
    let history = fan.get("/v1/orders").await.json();
    assert_eq!(history["items"][0]["order_id"], created["order_id"]);
    assert_eq!(history["items"][0]["tickets"], 2);
    for ticket in &tickets {
        let qr = room
            .fan(0)
            .bearer(&queue_token)
            .get(&format!(
                "/v1/tickets/{}/qr.svg",
                ticket["ticket_id"].as_str().unwrap()
            ))
            .await;
        qr.expect_status(200);
        assert!(String::from_utf8_lossy(&qr.body).starts_with("<?xml"));
    }
    crate::orders::assert_invariants(&stadium).await;
}
