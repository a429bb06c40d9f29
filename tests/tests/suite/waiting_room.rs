//! The waiting room through real Pingora edges and real Redis. Time is a manual clock shared
//! by the edges; each simulated tick advances it and runs every edge's admission step
//! explicitly (the background step runs too, on the same clock, to the same effect). Joins
//! need a signed-in account: a room has its own database and origin, which vouches for the
//! sessions the harness inserts straight into the database (`create_account`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{TimeZone, Utc};
use edge_proxy::config::{DefaultQueue, PrequeueOrder, QueueSettings};
use edge_proxy::waiting_room::{draw, pow};
use edge_proxy::RunningEdge;
use futures_util::future::join_all;
use onsale_contract::clock::Clock;
use onsale_contract::snapshot::Kind;
use onsale_contract::tokens::{Claims, Lane, QueueKeys, TokenType};
use onsale_tests::{
    admission, client, create_account, create_session, edge, eventually, keys, redis, Client,
    RunningOrigin, TestDb,
};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;
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
    /// The room's own database and origin, which the edges ask about sessions; `None` when
    /// the room was given an upstream of the caller's.
    accounts: Option<(TestDb, RunningOrigin)>,
}

/// `nodes` edges on one Redis prefix and one manual clock at T0, with `settings` for one
/// show, in front of an origin of their own.
async fn room(nodes: usize, settings: QueueSettings) -> Room {
    room_via(nodes, settings, None).await
}

/// [`room`], reaching the one Redis server at `gated` (a gate in front of it) if given.
async fn room_via(nodes: usize, settings: QueueSettings, gated: Option<String>) -> Room {
    let db = onsale_tests::db().await;
    let origin = onsale_tests::origin(&db).run().await;
    let show = uuid::Uuid::new_v4().to_string();
    let mut room = room_for(nodes, settings, origin.addr(), gated, show).await;
    room.accounts = Some((db, origin));
    room
}

/// `nodes` edges in front of `upstream` for a show of the caller's (one the origin knows), on
/// the test Redis or the one server at `gated`.
async fn room_for(
    nodes: usize,
    settings: QueueSettings,
    upstream: SocketAddr,
    gated: Option<String>,
    show: String,
) -> Room {
    let clock = Clock::manual(T0);
    let prefix = onsale_tests::redis_prefix();
    let edges: Vec<RunningEdge> = (0..nodes)
        .map(|_| {
            edge()
                .clock(clock.clone())
                .upstream(upstream)
                .config(|c| {
                    if let Some(url) = &gated {
                        c.redis.url = onsale_contract::config::Secret::new(url.clone());
                        c.redis.cluster = false;
                    }
                    c.redis.key_prefix = prefix.clone();
                    c.waiting_room.shows.insert(show.clone(), settings.clone());
                    c.waiting_room.refresh_ms = 1000;
                    c.limits.per_ip_join.per_minute = 1_000_000;
                    c.limits.per_ip_join.burst = 100_000;
                })
                .run()
        })
        .collect();
    let room = Room {
        edges,
        clock,
        show,
        prefix,
        accounts: None,
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

    /// The room's own database.
    fn db(&self) -> &TestDb {
        &self
            .accounts
            .as_ref()
            .expect("a room with its own origin")
            .0
    }

    /// A new account: (its id, a session of it).
    async fn account(&self) -> (uuid::Uuid, String) {
        create_account(self.db()).await
    }

    /// Sessions of `n` new accounts.
    async fn sessions(&self, n: usize) -> Vec<String> {
        let mut sessions = Vec::with_capacity(n);
        for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
            let made = join_all(chunk.iter().map(|_| self.account())).await;
            sessions.extend(made.into_iter().map(|(_, session)| session));
        }
        sessions
    }

    /// The answer to joining through `node` with `session`.
    async fn join_as(&self, node: usize, session: &str) -> onsale_tests::Reply {
        self.fan(node)
            .bearer(session)
            .post(JOIN, &json!({ "show_id": self.show }))
            .await
    }

    /// A new account joins through `node`, taking a new place.
    async fn join(&self, node: usize) -> Value {
        let (_, session) = self.account().await;
        let reply = self.join_as(node, &session).await;
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

/// The queue keys of the test edges.
fn queue_keys() -> QueueKeys {
    QueueKeys::from_files(&[&keys().queue_key], "onsale-edge").unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fan_keeps_its_place_whatever_it_does() {
    let mut s = settings();
    s.paused = true;
    let room = room(1, s).await;
    let first = room.join(0).await;
    let (account, session) = room.account().await;
    let second = room.join_as(0, &session).await;
    second.expect_status(201);
    let second = second.json();
    assert_eq!(first["status"], "queued");
    assert_eq!(first["position"], 0);
    assert_eq!(second["position"], 1);
    assert_eq!(
        second["estimated_wait_s"],
        Value::Null,
        "paused: no honest ETA"
    );
    let token = second["queue_token"].as_str().unwrap();
    let claims = claims_of(token);
    assert_eq!(claims.typ, TokenType::Queue);
    assert_eq!(claims.lane, Some(Lane::Open));
    assert_eq!(
        claims.sub,
        account.to_string(),
        "the queue token is the account's"
    );

    // Re-joining with the token (bearer, or the cookie from another tab) keeps the place.
    let with_cookie = |cookies: String| {
        room.fan(0)
            .raw(Method::POST, JOIN)
            .header("cookie", cookies)
            .json(&json!({ "show_id": room.show }))
    };
    let again = room
        .fan(0)
        .send(with_cookie(format!(
            "onsale_queue={token}; onsale_session={session}"
        )))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["position"], 1);
    assert_eq!(again.json()["queue_token"], token);
    let by_bearer = room
        .fan(0)
        .send(
            room.fan(0)
                .raw(Method::POST, JOIN)
                .bearer_auth(token)
                .header("cookie", format!("onsale_session={session}"))
                .json(&json!({ "show_id": room.show })),
        )
        .await;
    assert_eq!(by_bearer.json()["position"], 1);
    // Without the token, from another device signed in to the same account: the same
    // place, in a new token of the account's.
    let other_device = create_session(room.db(), account).await;
    let elsewhere = room.join_as(0, &other_device).await;
    assert_eq!(elsewhere.status, 200);
    let elsewhere = elsewhere.json();
    assert_eq!(elsewhere["position"], 1);
    let renewed = claims_of(elsewhere["queue_token"].as_str().unwrap());
    assert_eq!(
        (renewed.queue_no, renewed.lane),
        (claims.queue_no, claims.lane)
    );
    assert_eq!(renewed.sub, claims.sub);
    // Another account's queue token does not carry its place over.
    let stranger = room.account().await.1;
    let borrowed = room
        .fan(0)
        .send(with_cookie(format!(
            "onsale_queue={token}; onsale_session={stranger}"
        )))
        .await;
    assert_eq!(
        borrowed.status, 201,
        "a new account is a new fan, at the back"
    );
    assert_eq!(borrowed.json()["position"], 2);
    let cookie = borrowed.header("set-cookie").unwrap();
    assert!(cookie.starts_with("onsale_queue=") && cookie.contains("HttpOnly"));

    // Forged, expired, other-show and wrong-type tokens get nothing.
    let now_s = room.clock.now_ms() / 1000;
    let mut claims = claims_of(token);
    claims.exp = now_s - 10;
    claims.iat = now_s - 100;
    let expired = queue_keys().sign(&claims).unwrap();
    room.poll(0, &expired)
        .await
        .problem(401, "queue_token_required");
    let stranger_keys = QueueKeys::from_secrets([&[9u8; 32][..]], "onsale-edge").unwrap();
    let mut forged = claims_of(token);
    forged.queue_no = Some(0);
    room.poll(0, &stranger_keys.sign(&forged).unwrap())
        .await
        .problem(401, "queue_token_required");
    let mut elsewhere = claims_of(token);
    elsewhere.show = "another-show".into();
    room.poll(0, &queue_keys().sign(&elsewhere).unwrap())
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
    let fan = room.fan(0).bearer(&session);
    fan.post(JOIN, &json!({ "show": room.show }))
        .await
        .problem(400, "invalid_body");
    fan.post(JOIN, &json!({ "show_id": "a/b" }))
        .await
        .problem(400, "invalid_body");
    fan.post(JOIN, &json!({ "show_id": "no-such-show" }))
        .await
        .problem(404, "show_not_found");
    room.fan(0)
        .get(&format!("{JOIN}/current?show_id=bad%20id"))
        .await
        .problem(400, "invalid_query");
    room.step().await;
    assert_eq!(room.admin(0)["joined"], 3, "three accounts, three places");
}

/// Queue tokens are HS256 under the edges' queue keys and nothing else: an EdDSA token
/// with the same claims (signed by the admission key), `alg: none`, or an HS256 token under
/// another key is no queue token; an HS256 token is no admission either.
#[tokio::test(flavor = "multi_thread")]
async fn queue_tokens_are_hs256_under_the_edges_keys_only() {
    let room = room(1, settings()).await;
    let joined = room.join(0).await;
    let token = joined["queue_token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], queue_keys().kid());
    room.poll(0, token).await.expect_status(200);

    let claims = claims_of(token);
    let eddsa = keys().signer.sign(&claims);
    let payload = token.split('.').nth(1).unwrap();
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","kid":"{}"}}"#,
            queue_keys().kid()
        ))
    );
    let other_key = QueueKeys::from_secrets([&[8u8; 32][..]], "onsale-edge")
        .unwrap()
        .sign(&claims)
        .unwrap();
    for (what, forged) in [
        ("EdDSA", eddsa),
        ("alg none", none),
        ("another key", other_key),
    ] {
        let refused = room.poll(0, &forged).await;
        assert_eq!(refused.status, 401, "{what}");
        refused.problem(401, "queue_token_required");
    }
    // MACed with the queue key but typed as an admission: not accepted on the purchase path.
    let mut admit = claims.clone();
    admit.typ = TokenType::Admit;
    let hs_admission = queue_keys().sign(&admit).unwrap();
    room.fan(0)
        .bearer(&hs_admission)
        .get("/v1/holds/abc")
        .await
        .problem(401, "admission_required");
}

#[tokio::test(flavor = "multi_thread")]
async fn joining_needs_a_session_the_origin_vouches_for() {
    // Paused: no turn is called while the clock runs past the session cache, so the
    // account's place stays its own whenever the room's steps run.
    let mut s = settings();
    s.paused = true;
    let mut room = room(1, s).await;
    let cache_s = room.edges[0]
        .shared
        .live
        .load()
        .config
        .accounts
        .session_cache_s;
    let anonymous = room
        .fan(0)
        .post(JOIN, &json!({ "show_id": room.show }))
        .await;
    let problem = anonymous.problem(401, "sign_in_required");
    assert_eq!(problem["sign_in"], "/v1/sessions");
    for bogus in ["ses_nobody", "not-a-session"] {
        let reply = room
            .fan(0)
            .send(
                room.fan(0)
                    .raw(Method::POST, JOIN)
                    .header("cookie", format!("onsale_session={bogus}"))
                    .json(&json!({ "show_id": room.show })),
            )
            .await;
        reply.problem(401, "sign_in_required");
    }

    // Signed in (the cookie works as well as the bearer), then signed out at the origin:
    // the edge believes the session until the cache window passes on its clock.
    let (_, session) = room.account().await;
    let by_cookie = room
        .fan(0)
        .send(
            room.fan(0)
                .raw(Method::POST, JOIN)
                .header("cookie", format!("onsale_session={session}"))
                .json(&json!({ "show_id": room.show })),
        )
        .await;
    by_cookie.expect_status(201);
    let place = by_cookie.json()["position"].clone();
    let signed_out = room
        .fan(0)
        .bearer(&session)
        .request(Method::DELETE, "/v1/sessions/current", None)
        .await;
    assert!(signed_out.status.is_success(), "{:?}", signed_out.status);
    room.tick(Duration::from_secs(cache_s - 1)).await;
    let cached = room.join_as(0, &session).await;
    cached.expect_status(200);
    assert_eq!(cached.json()["position"], place);
    room.tick(Duration::from_secs(1)).await;
    room.join_as(0, &session)
        .await
        .problem(401, "sign_in_required");

    // No origin to ask: no join, and the fan is told to come back.
    let (_, unseen) = room.account().await;
    let (_db, origin) = room.accounts.take().unwrap();
    origin.shutdown().await.unwrap();
    let unavailable = room.join_as(0, &unseen).await;
    unavailable.problem(503, "session_unavailable");
    assert_eq!(unavailable.header("retry-after"), Some("2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_has_one_place_whatever_it_joins_from() {
    let mut s = settings();
    s.paused = true;
    let room = room(2, s).await;
    let (ana, first_device) = room.account().await;
    let joined = room.join_as(0, &first_device).await;
    joined.expect_status(201);
    let place = claims_of(joined.json()["queue_token"].as_str().unwrap()).queue_no;
    // Another device signed in to the same account, through the other node.
    let second_device = create_session(room.db(), ana).await;
    let again = room.join_as(1, &second_device).await;
    again.expect_status(200);
    assert_eq!(
        claims_of(again.json()["queue_token"].as_str().unwrap()).queue_no,
        place
    );
    // Another account gets another place.
    let ben = room.join(1).await;
    assert_eq!(
        claims_of(ben["queue_token"].as_str().unwrap()).queue_no,
        place.map(|p| p + 1)
    );

    // One account joining from five sessions at once, through both nodes: one place.
    let (cleo, session) = room.account().await;
    let mut sessions = vec![session];
    for _ in 0..4 {
        sessions.push(create_session(room.db(), cleo).await);
    }
    let replies = join_all(
        sessions
            .iter()
            .enumerate()
            .map(|(i, session)| room.join_as(i % 2, session)),
    )
    .await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        4,
        "{statuses:?}"
    );
    let places: Vec<Option<u64>> = replies
        .iter()
        .map(|r| claims_of(r.json()["queue_token"].as_str().unwrap()).queue_no)
        .collect();
    assert!(
        places.iter().all(|p| *p == place.map(|p| p + 2)),
        "{places:?}"
    );
    room.step().await;
    assert_eq!(room.admin(0)["joined"], 3, "three accounts, three places");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_place_whose_turn_passed_is_given_up_for_one_at_the_back() {
    let room = room(1, settings()).await;
    let (_, away) = room.account().await;
    let first = room.join_as(0, &away).await;
    first.expect_status(201);
    let token = first.json()["queue_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&token).queue_no, Some(0));
    room.join(0).await;
    // Called at once (seen at its join), the fan never claims the call within the grace.
    room.tick(Duration::from_secs(1)).await;
    room.tick(Duration::from_secs(12)).await;
    room.poll(0, &token).await.problem(410, "turn_missed");
    let rejoined = room.join_as(0, &away).await;
    rejoined.expect_status(201);
    let renewed = claims_of(rejoined.json()["queue_token"].as_str().unwrap());
    assert_eq!(renewed.queue_no, Some(2), "a new place, at the back");
    // From then on, that is the account's place.
    let again = room.join_as(0, &away).await;
    again.expect_status(200);
    assert_eq!(
        claims_of(again.json()["queue_token"].as_str().unwrap()).queue_no,
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn before_the_queue_opens_a_join_is_told_when() {
    let mut s = settings();
    s.queue_opens_at = at(T0 + 3_600_000);
    s.sale_opens_at = at(T0 + 7_200_000);
    let room = room(1, s).await;
    let (_, session) = room.account().await;
    let reply = room.join_as(0, &session).await;
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
    let room = room(1, s).await;
    let mut early = Vec::new();
    for _ in 0..39 {
        let joined = room.join(0).await;
        assert_eq!(joined["status"], "pre_queue");
        assert!(joined.get("position").is_none());
        assert_eq!(joined["opens_at_ms"], T0 + 60_000);
        early.push(joined["queue_token"].as_str().unwrap().to_owned());
    }
    // An early account joining again from another session keeps its join number.
    let (account, session) = room.account().await;
    let first = room.join_as(0, &session).await;
    first.expect_status(201);
    let first_token = first.json()["queue_token"].as_str().unwrap().to_owned();
    let first = claims_of(&first_token);
    let other_device = create_session(room.db(), account).await;
    let again = room.join_as(0, &other_device).await;
    again.expect_status(200);
    let again = claims_of(again.json()["queue_token"].as_str().unwrap());
    assert_eq!(
        (again.lane, again.queue_no),
        (Some(Lane::PreQueue), first.queue_no)
    );
    early.push(first_token);
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
    // After the draw, the early account joining from a third session stands where its
    // join number was drawn.
    let third = create_session(room.db(), account).await;
    let drawn = room.join_as(0, &third).await;
    drawn.expect_status(200);
    assert_eq!(
        drawn.json()["position"],
        draw::place(&seed, 40, first.queue_no.unwrap())
    );

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

/// Fans in a simulated on-sale, one account each: each polls on its own schedule (every 2 s
/// near the front, every 8 s further back, staggered by index); `present` decides who keeps
/// polling. Returns admission tokens issued per tick.
struct Crowd {
    tokens: Vec<String>,
    node: Vec<usize>,
    present: Vec<bool>,
    next_poll_ms: Vec<i64>,
    admitted: Vec<bool>,
}

impl Crowd {
    /// The fans signed in with `sessions` join, spread over the room's nodes.
    async fn join(room: &Room, sessions: &[String], present: impl Fn(usize) -> bool) -> Crowd {
        let nodes = room.edges.len();
        let fans = sessions.len();
        let mut tokens = Vec::with_capacity(fans);
        for chunk in sessions.iter().enumerate().collect::<Vec<_>>().chunks(50) {
            let joined = join_all(chunk.iter().map(|&(i, session)| async move {
                let reply = room.join_as(i % nodes, session).await;
                reply.expect_status(201);
                reply.json()
            }))
            .await;
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
    let room = room(1, settings()).await;
    let mut crowd = Crowd::join(&room, &room.sessions(1000).await, |_| true).await;
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
    let room = room(1, settings()).await;
    // Every other fan never polls after joining.
    let mut crowd = Crowd::join(&room, &room.sessions(2000).await, |i| i % 2 == 0).await;
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
    let room = room(2, settings()).await;
    let mut crowd = Crowd::join(&room, &room.sessions(1000).await, |_| true).await;
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

/// A session the [`upstream`] vouches for: `ses_` and the hex of its account's id.
fn named_session() -> String {
    format!("ses_{}", uuid::Uuid::new_v4().simple())
}

/// An upstream that vouches for every [`named_session`] (`GET /v1/me`) and answers every
/// other request `200 {}` with `onsale-admission-spent`, keeping connections alive.
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
                        let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                        buffer.drain(..end + 4);
                        let account = head
                            .starts_with("get /v1/me ")
                            .then(|| head.split("bearer ses_").nth(1))
                            .flatten()
                            .and_then(|rest| {
                                uuid::Uuid::try_parse(&rest[..32.min(rest.len())]).ok()
                            });
                        let reply = match account {
                            Some(account) => {
                                let me = json!({
                                    "account_id": account.to_string(),
                                    "session_expires_at_ms": 2_000_000,
                                    "server_time_ms": 1_000_000,
                                })
                                .to_string();
                                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{me}", me.len())
                            }
                            // Every other answer says the admission was spent, as a
                            // confirmed order's does.
                            None => "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nonsale-admission-spent: true\r\ncontent-length: 2\r\n\r\n{}".to_owned(),
                        };
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
    let show = uuid::Uuid::new_v4().to_string();
    let room = room_for(1, s, upstream().await, None, show).await;
    let sessions: Vec<String> = (0..20).map(|_| named_session()).collect();
    let mut crowd = Crowd::join(&room, &sessions, |_| true).await;
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
    let room = room(2, settings()).await;
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
    let mut crowd = Crowd::join(&room, &room.sessions(50).await, |_| true).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_tunes_every_node_audited_until_a_reload() {
    let room = room(2, settings()).await;
    let admin = client(room.edges[0].admin);
    let path = format!("/admin/shows/{}/queue", room.show);
    let put = |path: &str, operator: Option<&str>, body: String| {
        let mut request = admin
            .raw(Method::PUT, path)
            .header("content-type", "application/json")
            .body(body);
        if let Some(operator) = operator {
            request = request.header("onsale-operator", operator);
        }
        admin.send(request)
    };
    let version = room.admin(1)["settings_version"].as_u64().unwrap();

    // Bad calls change nothing.
    let rate = json!({"admit_per_minute": 1200}).to_string();
    put(&path, None, rate.clone())
        .await
        .problem(400, "operator_required");
    put(&path, Some(""), rate.clone())
        .await
        .problem(400, "operator_required");
    let invalid = put(&path, Some("sre-ana"), json!({"max_active": 0}).to_string()).await;
    assert!(invalid.problem(422, "invalid_settings")["detail"]
        .as_str()
        .unwrap()
        .contains("max_active"));
    let schedule = json!({"admit_per_minute": 1200, "sale_opens_at": "2031-01-01T00:00:00Z"});
    put(&path, Some("sre-ana"), schedule.to_string())
        .await
        .problem(400, "invalid_body");
    put(&path, Some("sre-ana"), "not json".into())
        .await
        .problem(400, "invalid_body");
    put(&path, Some("sre-ana"), " ".repeat(5000))
        .await
        .problem(413, "body_too_large");
    put(
        "/admin/shows/no-such-show/queue",
        Some("sre-ana"),
        rate.clone(),
    )
    .await
    .problem(404, "show_not_found");
    room.step().await;
    assert_eq!(room.admin(1)["settings_version"].as_u64().unwrap(), version);
    let audit = format!("{}wr:{{{}}}:audit", room.prefix, room.show);
    assert!(stream_entries(&audit).await.is_empty());

    // A change on node 0 is in force on both nodes at their next step.
    let both = json!({"admit_per_minute": 1200, "max_active": 50}).to_string();
    let tuned = put(&path, Some("sre-ana"), both).await.json();
    assert_eq!(tuned["previous"]["admit_per_minute"], 600);
    assert_eq!(tuned["settings"]["admit_per_minute"], 1200);
    assert_eq!(tuned["settings"]["session_ttl_s"], 600);
    let tuned_version = tuned["settings_version"].as_u64().unwrap();
    assert!(tuned_version > version);
    room.step().await;
    for node in 0..2 {
        assert_eq!(room.admin(node)["admit_per_minute"], 1200);
        assert_eq!(room.admin(node)["max_active"], 50);
        assert_eq!(room.admin(node)["settings_version"], tuned_version);
    }

    // Who, from where, when, and the values before and after, on the show's audit stream.
    let entries = stream_entries(&audit).await;
    let [entry] = entries.as_slice() else {
        panic!("one audit entry, got {}", entries.len());
    };
    let field = |name: &str| entry[name].clone();
    assert_eq!(field("operator"), "sre-ana");
    assert!(field("client").starts_with("127.0.0.1:"));
    assert_eq!(field("at_ms"), T0.to_string());
    assert_eq!(field("version"), tuned_version.to_string());
    let previous: QueueSettings = serde_json::from_str(&field("previous")).unwrap();
    assert_eq!(previous, settings());
    let now: QueueSettings = serde_json::from_str(&field("settings")).unwrap();
    assert_eq!((now.admit_per_minute, now.max_active), (1200, 50));

    // The file is the source of truth: a reload on any node puts its values back.
    let config = room.edges[1].shared.live.load().config.clone();
    room.edges[1].shared.live.apply(config).unwrap();
    room.step().await;
    room.step().await;
    for node in 0..2 {
        assert_eq!(room.admin(node)["admit_per_minute"], 600);
        assert_eq!(room.admin(node)["max_active"], 100_000);
    }
}

/// Each entry of the Redis stream `key`, as its fields.
async fn stream_entries(key: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut redis = onsale_tests::redis().await;
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    entries
        .into_iter()
        .map(|(_, fields)| {
            let pairs = fields.chunks_exact(2);
            pairs.map(|p| (p[0].clone(), p[1].clone())).collect()
        })
        .collect()
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
    onsale_tests::put_snapshot(
        &room.prefix,
        &room.show,
        Kind::Availability,
        &format!("etag{version}"),
        identity.as_bytes(),
        room.clock.now_ms(),
    )
    .await;
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
    let room = room(1, settings()).await;
    let mut crowd = Crowd::join(&room, &room.sessions(30).await, |_| true).await;
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
    let room = room(1, s).await;
    let fan = room.fan(0).bearer(&room.account().await.1);
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
    let gate = onsale_tests::TcpGate::start(onsale_tests::redis_server()).await;
    let mut s = settings();
    s.paused = true;
    let room = room_via(1, s, Some(format!("redis://{}", gate.addr))).await;
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
    let (_, session) = room.account().await;
    let refused = room.join_as(0, &session).await;
    refused.problem(503, "queue_unavailable");
    assert_eq!(refused.header("retry-after"), Some("2"));

    gate.restore();
    eventually("joins to work again", WITHIN, || async {
        let reply = room.join_as(0, &session).await;
        (reply.status == 201).then(|| reply.json())
    })
    .await;
}

/// Redis restarting keeps the queue: a clean restart (`SHUTDOWN`, the append-only file
/// synced) loses nothing; a crash that loses the last writes (at most a second's with
/// `appendfsync everysec`) loses no place, because every fan holds its place in a signed queue
/// token and the edge writes places it finds missing back, so no later fan is given the same
/// number.
#[tokio::test(flavor = "multi_thread")]
async fn queue_places_and_admissions_survive_redis_restarting() {
    let mut redis = onsale_tests::OwnRedis::start().await;
    let mut s = settings();
    s.admit_per_minute = 60;
    s.max_active = 1;
    let room = room_via(1, s, Some(redis.url())).await;
    let mut fans = Vec::new();
    for _ in 0..5 {
        let (account, session) = room.account().await;
        let reply = room.join_as(0, &session).await;
        reply.expect_status(201);
        let token = reply.json()["queue_token"].as_str().unwrap().to_owned();
        fans.push((account, token));
    }
    room.tick(Duration::from_secs(1)).await;
    let admitted = room.poll(0, &fans[0].1).await.json();
    assert_eq!(admitted["status"], "admitted");
    let admission = admitted["admission_token"].as_str().unwrap().to_owned();
    let place_of = |reply: &onsale_tests::Reply| {
        claims_of(reply.json()["queue_token"].as_str().unwrap()).queue_no
    };

    redis.restart().await;
    until_redis_answers(&room, fans[0].0).await;
    for (i, (account, token)) in fans.iter().enumerate().skip(1) {
        let again = rejoin(&room, *account).await;
        assert_eq!(again.status, 200, "fan {i} has its place");
        assert_eq!(place_of(&again), Some(i as u64));
        assert_eq!(room.poll(0, token).await.json()["position"], i as u64 - 1);
    }
    let polled = room.poll(0, &fans[0].1).await.json();
    assert_eq!(
        polled["status"], "admitted",
        "the admission session is kept"
    );
    assert_eq!(
        polled["admission_expires_at_ms"],
        admitted["admission_expires_at_ms"]
    );
    assert_eq!(room.admin(0)["active"], 1);
    room.fan(0)
        .bearer(&admission)
        .get(&format!("/v1/holds/{}", uuid::Uuid::new_v4()))
        .await
        .problem(404, "hold_not_found");
    let next = room.join_as(0, &room.account().await.1).await;
    assert_eq!(
        place_of(&next),
        Some(5),
        "the next place, not one given before"
    );

    // A crash that loses the last joins: their fans keep their places.
    let late = joins_lost_in_a_crash(&room, &mut redis, 3, fans[0].0).await;
    assert_eq!(
        room.admin(0)["joined"],
        6,
        "Redis came back without the late joins"
    );
    for (i, (_, token)) in late.iter().enumerate() {
        let polled = room.poll(0, token).await;
        assert_eq!(polled.json()["status"], "queued");
        assert_eq!(
            polled.json()["position"],
            5 + i as u64,
            "the place in the token"
        );
    }
    room.step().await;
    assert_eq!(
        room.admin(0)["joined"],
        9,
        "the late places are counted again"
    );
    let after = room.join_as(0, &room.account().await.1).await;
    after.expect_status(201);
    assert_eq!(
        place_of(&after),
        Some(9),
        "no late fan's number is given again"
    );
    let again = rejoin(&room, late[1].0).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        place_of(&again),
        Some(7),
        "the account's place is recorded again"
    );
}

/// Before the opening too: pre-queue joins a crash lost keep their join numbers, so the
/// draw at the opening counts them.
#[tokio::test(flavor = "multi_thread")]
async fn prequeue_joins_a_redis_crash_lost_keep_their_numbers() {
    let mut redis = onsale_tests::OwnRedis::start().await;
    let mut s = settings();
    s.sale_opens_at = at(T0 + 60_000);
    let room = room_via(1, s, Some(redis.url())).await;
    let (first, session) = room.account().await;
    room.join_as(0, &session).await.expect_status(201);
    let late = joins_lost_in_a_crash(&room, &mut redis, 2, first).await;
    assert_eq!(room.admin(0)["prequeue_size"], 1);
    for (_, token) in &late {
        assert_eq!(room.poll(0, token).await.json()["status"], "pre_queue");
    }
    room.step().await;
    assert_eq!(
        room.admin(0)["prequeue_size"],
        3,
        "the lost joins are counted again"
    );
    let after = room.join_as(0, &room.account().await.1).await;
    after.expect_status(201);
    let claims = claims_of(after.json()["queue_token"].as_str().unwrap());
    assert_eq!(
        (claims.lane, claims.queue_no),
        (Some(Lane::PreQueue), Some(3))
    );
    let again = rejoin(&room, late[0].0).await;
    assert_eq!(again.status, 200);
    let claims = claims_of(again.json()["queue_token"].as_str().unwrap());
    assert_eq!(
        (claims.lane, claims.queue_no),
        (Some(Lane::PreQueue), Some(1))
    );
}

/// `n` new accounts join, then Redis crashes back to its state before them (a checkpoint
/// taken just before) and the room's clock moves past their tokens' signing; `probe`, an
/// account with a place, shows when Redis answers again. The lost fans: (account, token).
async fn joins_lost_in_a_crash(
    room: &Room,
    redis: &mut onsale_tests::OwnRedis,
    n: usize,
    probe: uuid::Uuid,
) -> Vec<(uuid::Uuid, String)> {
    let checkpoint = redis.checkpoint().await;
    until_redis_answers(room, probe).await;
    let mut lost = Vec::new();
    for _ in 0..n {
        let (account, session) = room.account().await;
        let reply = room.join_as(0, &session).await;
        reply.expect_status(201);
        let token = reply.json()["queue_token"].as_str().unwrap().to_owned();
        lost.push((account, token));
    }
    redis.crash_back_to(checkpoint.path()).await;
    room.clock.advance(Duration::from_secs(4));
    until_redis_answers(room, probe).await;
    lost
}

/// `account` joins from another device (no queue token): its place as Redis records it.
async fn rejoin(room: &Room, account: uuid::Uuid) -> onsale_tests::Reply {
    let session = create_session(room.db(), account).await;
    room.join_as(0, &session).await
}

/// Steps the room until a step reaches Redis, and a join of `account` (which has a place)
/// too: each finds its connection to the old server closed at first (a join answers 503 with
/// `Retry-After`).
async fn until_redis_answers(room: &Room, account: uuid::Uuid) {
    eventually("a step to reach Redis", WITHIN, || async {
        room.tick(Duration::from_millis(10)).await;
        (room.admin(0)["as_of_ms"] == room.clock.now_ms()).then_some(())
    })
    .await;
    eventually("a join to reach Redis", WITHIN, || async {
        (rejoin(room, account).await.status != 503).then_some(())
    })
    .await;
}

/// Requests the origin at `origin` answered on `route` with `status`, from its metrics.
async fn origin_answers(origin: SocketAddr, route: &str, status: u16) -> u64 {
    let metrics = String::from_utf8(client(origin).get("/metrics").await.body).unwrap();
    let (route, status) = (format!("route=\"{route}\""), format!("status=\"{status}\""));
    metrics
        .lines()
        .filter(|line| line.starts_with("onsale_origin_http_requests_total{"))
        .filter(|line| line.contains(&route) && line.contains(&status))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

/// The stadium show behind `nodes` edges whose origin pools are healthy.
async fn stadium_room(nodes: usize) -> (crate::holds::Stadium, Room) {
    let stadium = crate::holds::stadium().await;
    let room = room_for(
        nodes,
        settings(),
        stadium.app.origin.addr(),
        None,
        stadium.show.clone(),
    )
    .await;
    for edge in &room.edges {
        eventually("the origin pool to be healthy", WITHIN, || async {
            edge.shared.pool_keeper.any_healthy().then_some(())
        })
        .await;
    }
    (stadium, room)
}

/// A slow payment settles by webhook, which no edge sees: the origin's first refusal of the
/// spent admission tells the edge that passed it, which then refuses it itself and ends the
/// fan's session, so a join cannot hand the spent admission out again.
#[tokio::test(flavor = "multi_thread")]
async fn an_admission_spent_by_a_webhook_is_refused_by_the_edge_after_the_origin_says_so() {
    let (stadium, room) = stadium_room(1).await;
    let origin = stadium.app.origin.addr();
    let (_, session) = create_account(&stadium.app.db).await;
    let queued = room.join_as(0, &session).await;
    queued.expect_status(201);
    let queue_token = queued.json()["queue_token"].as_str().unwrap().to_owned();
    room.tick(Duration::from_secs(1)).await;
    let admitted = room.poll(0, &queue_token).await.json();
    let admission_token = admitted["admission_token"].as_str().unwrap().to_owned();
    let fan = room.fan(0).bearer(&admission_token);
    let holds = format!("/v1/shows/{}/holds", stadium.show);
    let hold = fan
        .post_idempotent(&holds, "h", &json!({ "seat_ids": &stadium.seats[..1] }))
        .await;
    hold.expect_status(201);
    let created = crate::orders::order(&fan, hold.json()["hold_id"].as_str().unwrap(), "o").await;
    let created = created.json();
    let payment = created["payment"]["payment_id"].as_str().unwrap();
    let order_path = format!("/v1/orders/{}", created["order_id"].as_str().unwrap());
    crate::orders::confirm(&fan, payment, "pm_card_slow", "c")
        .await
        .expect_status(200);
    let account_pages = room.fan(0).bearer(&session);
    eventually("the webhook to sell the order", WITHIN, || async {
        let status = account_pages.get(&order_path).await.json()["status"].clone();
        (status == "confirmed").then_some(())
    })
    .await;
    assert_eq!(room.admin(0)["active"], 1, "the edge has not heard");

    let holds_route = "/v1/shows/{id}/holds";
    let before = origin_answers(origin, holds_route, 401).await;
    let more = json!({ "seat_ids": &stadium.seats[1..2] });
    let refused = fan.post_idempotent(&holds, "more", &more).await;
    refused.problem(401, "admission_spent");
    assert_eq!(
        refused.header("onsale-admission-spent"),
        None,
        "the edge's own"
    );
    assert_eq!(origin_answers(origin, holds_route, 401).await, before + 1);
    fan.post_idempotent(&holds, "more", &more)
        .await
        .problem(401, "admission_spent");
    assert_eq!(
        origin_answers(origin, holds_route, 401).await,
        before + 1,
        "refused at the edge from then on"
    );
    eventually("the session to end", WITHIN, || async {
        room.step().await;
        (room.admin(0)["active"] == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fan_goes_from_the_queue_to_tickets_through_the_edge() {
    let (stadium, room) = stadium_room(2).await;
    let origin = stadium.app.origin.addr();
    // A signed-in fan joins, and is admitted as its account.
    let (account, session) = create_account(&stadium.app.db).await;
    room.fan(0)
        .post(JOIN, &json!({ "show_id": stadium.show }))
        .await
        .problem(401, "sign_in_required");
    let queued = room.join_as(0, &session).await;
    queued.expect_status(201);
    let queue_token = queued.json()["queue_token"].as_str().unwrap().to_owned();
    room.tick(Duration::from_secs(1)).await;
    let admitted = room.poll(0, &queue_token).await.json();
    assert_eq!(admitted["status"], "admitted");
    let admission_token = admitted["admission_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&admission_token).sub, account.to_string());
    let fan = room.fan(0).bearer(&admission_token);
    let holds = format!("/v1/shows/{}/holds", stadium.show);
    // Without admission the purchase path is closed; with it, hold, order, pay.
    room.fan(0)
        .bearer(&queue_token)
        .post_idempotent(&holds, "h", &json!({ "seat_ids": &stadium.seats[..2] }))
        .await
        .problem(401, "admission_required");
    let hold = fan
        .post_idempotent(&holds, "h", &json!({ "seat_ids": &stadium.seats[..2] }))
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

    // The admission is spent: refused by the edge that saw the payment at once, by the
    // other edge once its step has read it from Redis, and by the origin. The edges'
    // refusals never reach the origin.
    let hold_more = |node: usize| {
        let fan = room.fan(node).bearer(&admission_token);
        let holds = holds.clone();
        let seats = json!({ "seat_ids": &stadium.seats[2..3] });
        async move { fan.post_idempotent(&holds, "more", &seats).await }
    };
    let holds_route = "/v1/shows/{id}/holds";
    let refused_by_origin = origin_answers(origin, holds_route, 401).await;
    hold_more(0).await.problem(401, "admission_spent");
    let spent_key = format!("{}wr:{{{}}}:spent", room.prefix, stadium.show);
    eventually("the spent admission in Redis", WITHIN, || async {
        let mut conn = redis().await;
        let recorded: u64 = redis::cmd("XLEN")
            .arg(&spent_key)
            .query_async(&mut conn)
            .await
            .unwrap();
        (recorded == 1).then_some(())
    })
    .await;
    room.step().await;
    hold_more(1).await.problem(401, "admission_spent");
    assert_eq!(
        origin_answers(origin, holds_route, 401).await,
        refused_by_origin
    );
    client(origin)
        .bearer(&admission_token)
        .post_idempotent(&holds, "more", &json!({ "seat_ids": &stadium.seats[2..3] }))
        .await
        .problem(401, "admission_spent");
    assert_eq!(
        origin_answers(origin, holds_route, 401).await,
        refused_by_origin + 1,
        "the origin counts the refusals it answers"
    );
    // The spent admission still reaches the origin to repeat its confirmation (its answer
    // lost on the way, say); any other confirmation is refused there.
    let repeated = crate::orders::confirm(&fan, payment, "pm_card_ok", "c").await;
    repeated.expect_status(200);
    assert_eq!(repeated.header("idempotent-replayed"), Some("true"));
    crate::orders::confirm(&fan, payment, "pm_card_ok", "c-new")
        .await
        .problem(401, "admission_spent");
    // Paying also ended the waiting-room session, freeing its capacity.
    eventually("the session to end", WITHIN, || async {
        room.step().await;
        (room.admin(0)["active"] == 0).then_some(())
    })
    .await;

    // The account's pages take its session through either edge, never an admission.
    let signed_in = room.fan(1).bearer(&session);
    let history = signed_in.get("/v1/orders").await.json();
    assert_eq!(history["items"][0]["order_id"], created["order_id"]);
    assert_eq!(history["items"][0]["tickets"], 2);
    let order_id = created["order_id"].as_str().unwrap();
    signed_in
        .get(&format!("/v1/orders/{order_id}"))
        .await
        .expect_status(200);
    fan.get("/v1/orders").await.problem(401, "sign_in_required");
    for ticket in &tickets {
        let qr = signed_in
            .get(&format!(
                "/v1/tickets/{}/qr.svg",
                ticket["ticket_id"].as_str().unwrap()
            ))
            .await;
        qr.expect_status(200);
        assert!(String::from_utf8_lossy(&qr.body).starts_with("<?xml"));
    }
    // So does cancelling the order, long after its admission was spent.
    let cancel = format!("/v1/orders/{order_id}/cancel");
    fan.post_idempotent(&cancel, "x", &json!({}))
        .await
        .problem(401, "sign_in_required");
    signed_in
        .post_idempotent(&cancel, "x", &json!({}))
        .await
        .expect_status(200);
    crate::orders::assert_invariants(&stadium).await;
}

/// One edge on a manual clock at `now`, in front of the room's own origin, for `show`,
/// on the committed configuration changed by `change`, joins unlimited per IP.
fn room_at(
    now: i64,
    accounts: (TestDb, RunningOrigin),
    show: &str,
    change: impl FnOnce(&mut edge_proxy::config::Config),
) -> Room {
    let clock = Clock::manual(now);
    let prefix = onsale_tests::redis_prefix();
    let edge = edge()
        .clock(clock.clone())
        .upstream(accounts.1.addr())
        .config(|c| {
            c.redis.key_prefix = prefix.clone();
            c.waiting_room.refresh_ms = 1000;
            c.limits.per_ip_join.per_minute = 1_000_000;
            c.limits.per_ip_join.burst = 100_000;
            change(c);
        })
        .run();
    Room {
        edges: vec![edge],
        clock,
        show: show.to_owned(),
        prefix,
        accounts: Some(accounts),
    }
}

impl Room {
    /// A seat-map builder of the room's database, publishing under its Redis prefix, run
    /// a pass at a time by the test.
    fn builder(&self) -> seatmap_builder::Builder {
        let config = onsale_tests::builder_config(self.db(), &self.prefix);
        let metrics = Arc::new(seatmap_builder::metrics::Metrics::new());
        seatmap_builder::Builder::new(config, metrics).unwrap()
    }
}

/// A show made through the organizer API and named nowhere in the edge's configuration
/// queues on `[waiting_room.default]` once the builder publishes it: the queue opens
/// `queue_opens_before_s` before the show's sale, the pre-queue is drawn at the sale and
/// called; when the organizer calls the show off, the next build closes the queue; once the
/// builder stops confirming the show's snapshot, the room goes.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_show_queues_on_the_default_room_from_its_first_snapshot_until_called_off() {
    let db = onsale_tests::db().await;
    let origin = onsale_tests::origin(&db).run().await;
    let organizer = client(origin.addr()).bearer(onsale_tests::ADMIN_TOKEN);
    let now = onsale_contract::clock::now_ms();
    let sale = now - now % 1000 + 3_600_000;
    let on_sale_at = Utc.timestamp_millis_opt(sale).unwrap().to_rfc3339();
    let layout = onsale_tests::venue_body("Loft", "Bergen", &[("A", "T1")], 2, 5);
    let (_, show) = onsale_tests::create_show(
        &organizer,
        layout,
        "Debut",
        "Band",
        "2099-01-01T20:00:00Z",
        &on_sale_at,
    )
    .await;

    let room = room_at(now, (db, origin), &show, |c| {
        c.waiting_room.shows.clear();
        c.waiting_room.default = Some(DefaultQueue {
            admit_per_minute: 600,
            max_active: 100,
            session_ttl_s: 900,
            queue_opens_before_s: 1800,
            prequeue_order: PrequeueOrder::Random,
            no_show_grace_s: 60,
            pow_difficulty: 0,
            paused: false,
        });
    });
    let (_, ana) = room.account().await;
    room.join_as(0, &ana).await.problem(404, "show_not_found");

    // The builder's round publishes the show, and with it when its sale opens.
    let mut builder = room.builder();
    builder.build_all(now).await.unwrap();
    eventually("the edge to load the snapshot", WITHIN, || async {
        let snapshots = &room.edges[0].shared.snapshots;
        let availability = snapshots.get(&show, Kind::Availability)?;
        (availability.on_sale_at_ms == Some(sale)).then_some(())
    })
    .await;
    room.step().await;
    let closed = room.join_as(0, &ana).await;
    closed.expect_status(200);
    assert_eq!(closed.json()["status"], "closed");
    assert_eq!(closed.json()["opens_at_ms"], sale - 1_800_000);

    // Inside the half hour before the sale: the pre-queue.
    room.clock.advance(Duration::from_secs(45 * 60));
    room.step().await;
    let joined = room.join_as(0, &ana).await;
    joined.expect_status(201);
    let joined = joined.json();
    assert_eq!(joined["status"], "pre_queue");
    let token = joined["queue_token"].as_str().unwrap().to_owned();

    // The sale opens: the draw places the fan, and its turn comes.
    room.clock.advance(Duration::from_secs(15 * 60 + 1));
    let admitted = eventually("the fan's turn", WITHIN, || async {
        room.step().await;
        let polled = room.poll(0, &token).await.json();
        (polled["status"] == "admitted").then_some(polled)
    })
    .await;
    assert!(admitted["admission_token"].is_string(), "{admitted}");

    // Called off: the next build shows no open seat, and the queue calls no one more.
    organizer
        .post(&format!("/v1/admin/shows/{show}/cancel"), &json!({}))
        .await
        .expect_status(202);
    builder.build_all(now).await.unwrap();
    eventually("the edge to load the closing snapshot", WITHIN, || async {
        let snapshots = &room.edges[0].shared.snapshots;
        let open = snapshots.get(&show, Kind::Availability)?.open_seats;
        (open == Some(0)).then_some(())
    })
    .await;
    room.step().await;
    let (_, bo) = room.account().await;
    let behind = room.join_as(0, &bo).await.json();
    assert_eq!(behind["status"], "sold_out", "{behind}");
    room.clock.advance(Duration::from_secs(60));
    room.step().await;
    let polled = room.poll(0, behind["queue_token"].as_str().unwrap()).await;
    assert_eq!(polled.json()["status"], "sold_out");

    // A show the builder no longer confirms (it has started) loses its room, six hours
    // after the last confirmation.
    room.clock.advance(Duration::from_secs(7 * 3600));
    room.step().await;
    let (_, cy) = room.account().await;
    room.join_as(0, &cy).await.problem(404, "show_not_found");
}

/// A presale: during its window only accounts with an access code join, each code spent
/// once per account up to its uses, wrong codes refused alike and throttled per account and
/// per client IP; after the window anyone joins.
#[tokio::test(flavor = "multi_thread")]
async fn a_presale_lets_in_only_accounts_with_a_code_each_spent_once() {
    let db = onsale_tests::db().await;
    let origin = onsale_tests::origin(&db)
        .config(|c| {
            c.accounts.max_code_failures_per_account = 3;
            c.accounts.max_code_failures_per_ip = 8;
        })
        .run()
        .await;
    let organizer = client(origin.addr()).bearer(onsale_tests::ADMIN_TOKEN);
    let now = onsale_contract::clock::now_ms();
    let at = |ms: i64| {
        let time = Utc.timestamp_millis_opt(ms - ms % 1000).unwrap();
        time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let create = |name: &'static str| {
        let organizer = &organizer;
        async move {
            let layout = onsale_tests::venue_body("Cellar", "Porto", &[("A", "T1")], 2, 5);
            let on_sale_at = at(now - 60_000);
            onsale_tests::create_show(
                organizer,
                layout,
                name,
                "Band",
                "2099-01-01T20:00:00Z",
                &on_sale_at,
            )
            .await
            .1
        }
    };
    let (show, other) = (create("Fan club night").await, create("Elsewhere").await);
    let presale = json!({ "starts_at": at(now - 60_000), "ends_at": at(now + 1_800_000) });
    let codes = |show: &str, body: Value| {
        let organizer = &organizer;
        let path = format!("/v1/admin/shows/{show}/access-codes");
        async move {
            let made = organizer.post(&path, &body).await;
            made.expect_status(201);
            made.json()
        }
    };
    let generated = codes(&show, json!({ "count": 3, "presale": presale })).await;
    let generated: Vec<String> = serde_json::from_value(generated["codes"].clone()).unwrap();
    assert!(
        generated
            .iter()
            .all(|c| c.len() == 14 && c.as_bytes()[4] == b'-'),
        "{generated:?}"
    );
    let named = codes(&show, json!({ "codes": ["FANCLUB-2026"], "max_uses": 2 })).await;
    assert_eq!(named["presale"]["ends_at"], presale["ends_at"]);
    let foreign = codes(&other, json!({ "count": 1, "presale": presale })).await;
    // Named twice, or again: nothing is stored.
    organizer
        .post(
            &format!("/v1/admin/shows/{show}/access-codes"),
            &json!({ "codes": ["fanclub-2026", "NEW-CODE-1"] }),
        )
        .await
        .problem(409, "access_code_exists");

    let room = room_at(now, (db, origin), &show, |_| {});
    let mut builder = room.builder();
    builder.build_all(now).await.unwrap();
    eventually("the edge to learn of the presale", WITHIN, || async {
        room.edges[0].shared.snapshots.presale(&show).map(|_| ())
    })
    .await;
    room.step().await;

    let join = |session: String, code: Option<&str>| {
        let room = &room;
        let body = match code {
            Some(code) => json!({ "show_id": room.show, "access_code": code }),
            None => json!({ "show_id": room.show }),
        };
        async move { room.fan(0).bearer(&session).post(JOIN, &body).await }
    };
    let (ana_id, ana) = room.account().await;
    join(ana.clone(), None)
        .await
        .problem(403, "access_code_required");
    join(ana.clone(), Some("WRONG-CODE-XYZ"))
        .await
        .problem(403, "access_code_invalid");
    let foreign_code = foreign["codes"][0].as_str().unwrap();
    join(ana.clone(), Some(foreign_code))
        .await
        .problem(403, "access_code_invalid");
    // As typed loosely: lower case, no hyphens.
    let typed = generated[0].replace('-', "").to_lowercase();
    let placed = join(ana.clone(), Some(&typed)).await;
    placed.expect_status(201);
    let place = placed.json()["queue_token"].clone();
    // Another device of the same account: let in without the code, to the same place.
    let other_device = onsale_tests::create_session(room.db(), ana_id).await;
    let again = join(other_device, None).await;
    again.expect_status(200);
    assert_eq!(again.json()["position"], placed.json()["position"]);
    assert!(place.is_string());
    // An account redeems one code per show: a second one is not spent.
    join(ana.clone(), Some(&generated[1]))
        .await
        .expect_status(200);
    let (_, eve) = room.account().await;
    join(eve, Some(&generated[1])).await.expect_status(201);

    // A single-use code, used: refused alike. A code for two accounts lets in two.
    let (_, bo) = room.account().await;
    join(bo.clone(), Some(&generated[0]))
        .await
        .problem(403, "access_code_invalid");
    join(bo, Some("fanclub-2026")).await.expect_status(201);
    let (_, cy) = room.account().await;
    join(cy, Some("FANCLUB-2026")).await.expect_status(201);
    let (_, dee) = room.account().await;
    join(dee, Some("FANCLUB-2026"))
        .await
        .problem(403, "access_code_invalid");

    // Guessing: three wrong codes an account, eight from an address, then 429.
    let (_, guesser) = room.account().await;
    for guess in ["GUESS-0001", "GUESS-0002", "GUESS-0003"] {
        join(guesser.clone(), Some(guess))
            .await
            .problem(403, "access_code_invalid");
    }
    let limited = join(guesser, Some(&generated[2]))
        .await
        .problem(429, "rate_limited");
    assert_eq!(limited["limit"], "account");
    let (_, mal) = room.account().await;
    join(mal, Some("GUESS-0004"))
        .await
        .problem(403, "access_code_invalid");
    let (_, ned) = room.account().await;
    let limited = join(ned, Some(&generated[2])).await;
    assert!(limited.header("retry-after").is_some());
    assert_eq!(limited.problem(429, "rate_limited")["limit"], "ip");

    // The window ends: anyone joins.
    room.clock.advance(Duration::from_secs(31 * 60));
    room.step().await;
    let (_, fay) = room.account().await;
    join(fay, None).await.expect_status(201);
}
