//! The Pingora edge against a real origin, real Redis and real snapshots.

use onsale_contract::clock::Clock;
use onsale_contract::tokens::{Claims, Signer, TokenType};
use onsale_tests::{
    admission, builder_config, client, create_account, db, edge, eventually, keys, origin,
    redis_server, unix_now, write_edge_config, ShowFixture, TcpGate, TEST_PASSWORD,
};
use reqwest::Method;
use seatmap_builder::metrics::Metrics;
use seatmap_builder::Builder;
use serde_json::{json, Value};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WITHIN: Duration = Duration::from_secs(10);

async fn publish(f: &ShowFixture, now_ms: i64) -> String {
    let mut builder = Builder::new(
        builder_config(&f.app.db, &f.app.prefix()),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    builder
        .build_all(now_ms)
        .await
        .unwrap()
        .remove(0)
        .availability_etag
}

fn availability_path(f: &ShowFixture) -> String {
    format!("/v1/shows/{}/availability", f.show)
}

/// Waits until the edge serves the availability document with this content hash.
async fn served(f: &ShowFixture, etag: &str) {
    let path = availability_path(f);
    let want = format!("\"{etag}\"");
    eventually("the edge to serve the new snapshot", WITHIN, || async {
        let reply = f.app.fan().get(&path).await;
        (reply.header("etag") == Some(want.as_str())).then_some(())
    })
    .await;
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_are_negotiated_validated_and_cacheable() {
    let f = ShowFixture::spawn().await;
    let now = unix_now() * 1000;
    let etag = publish(&f, now).await;
    served(&f, &etag).await;
    let fan = f.app.fan();
    let path = availability_path(&f);

    let identity = fan.get(&path).await;
    assert_eq!(identity.status, 200);
    assert_eq!(identity.header("content-type"), Some("application/json"));
    assert_eq!(identity.header("vary"), Some("Accept-Encoding"));
    assert_eq!(identity.header("content-encoding"), None);
    let doc: Value = identity.json();
    assert_eq!(doc["show_id"], f.show.to_string());
    let cache_control = identity.header("cache-control").unwrap().to_owned();
    assert!(
        cache_control.starts_with("public, max-age="),
        "{cache_control}"
    );
    let max_age: i64 = cache_control["public, max-age=".len()..]
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (25..=30).contains(&max_age),
        "max-age runs to the next build: {cache_control}"
    );
    assert!(
        cache_control.ends_with("stale-while-revalidate=30"),
        "{cache_control}"
    );

    for (accept, coding, suffix) in [
        ("gzip, deflate, br", "br", ".br"),
        ("gzip;q=1, br;q=0.5", "gzip", ".gz"),
    ] {
        let reply = fan
            .send(
                fan.raw(Method::GET, &path)
                    .header("accept-encoding", accept),
            )
            .await;
        assert_eq!(reply.header("content-encoding"), Some(coding), "{accept}");
        assert_eq!(
            reply.header("etag"),
            Some(format!("\"{etag}{suffix}\"").as_str())
        );
        let decoded = match coding {
            "br" => unbrotli(&reply.body),
            _ => gunzip(&reply.body),
        };
        assert_eq!(
            decoded, identity.body,
            "{coding} decodes to the same document"
        );

        let revalidated = fan
            .send(
                fan.raw(Method::GET, &path)
                    .header("accept-encoding", accept)
                    .header("if-none-match", reply.header("etag").unwrap()),
            )
            .await;
        assert_eq!(revalidated.status, 304);
        assert!(revalidated.body.is_empty());
        assert_eq!(revalidated.header("etag"), reply.header("etag"));
    }

    let head = fan.send(fan.raw(Method::HEAD, &path)).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(identity.body.len().to_string().as_str())
    );

    let layout = fan.get(&format!("/v1/shows/{}/seat-map", f.show)).await;
    assert_eq!(layout.status, 200);
    assert_eq!(
        layout.json()["sections"].as_array().map(|s| !s.is_empty()),
        Some(true)
    );
}

/// One response read off a raw connection: status, headers by lower-case name, body.
struct Raw {
    status: u16,
    headers: std::collections::HashMap<String, String>,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 response (its body by Content-Length; none after a HEAD).
async fn read_response(conn: &mut BufReader<TcpStream>, head: bool) -> Raw {
    let mut status_line = String::new();
    conn.read_line(&mut status_line).await.unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = std::collections::HashMap::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).await.unwrap();
        let Some((name, value)) = line.trim_end().split_once(": ") else {
            break;
        };
        headers.insert(name.to_ascii_lowercase(), value.to_owned());
    }
    let length = match (status, head) {
        (304, _) | (_, true) => 0,
        _ => headers["content-length"].parse().unwrap(),
    };
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await.unwrap();
    Raw {
        status,
        headers,
        body,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_connection_takes_local_answers_and_proxied_requests_in_turn() {
    let f = ShowFixture::spawn().await;
    let etag = publish(&f, unix_now() * 1000).await;
    served(&f, &etag).await;
    let path = availability_path(&f);
    let document = f.app.fan().get(&path).await.body;
    let stream = TcpStream::connect(f.app.edge.public).await.unwrap();
    let mut conn = BufReader::new(stream);
    let get = |path: &str, extra: &str| format!("GET {path} HTTP/1.1\r\nhost: edge\r\n{extra}\r\n");

    // A snapshot, then a proxied catalog read, then the snapshot again, on one connection.
    conn.get_mut()
        .write_all(get(&path, "").as_bytes())
        .await
        .unwrap();
    let first = read_response(&mut conn, false).await;
    assert_eq!((first.status, &first.body), (200, &document));
    assert_eq!(first.headers["etag"], format!("\"{etag}\""));
    let show = format!("/v1/shows/{}", f.show);
    conn.get_mut()
        .write_all(get(&show, "").as_bytes())
        .await
        .unwrap();
    let catalog = read_response(&mut conn, false).await;
    assert_eq!(catalog.status, 200);
    let catalog: Value = serde_json::from_slice(&catalog.body).unwrap();
    assert_eq!(catalog["id"], f.show.to_string());

    // Pipelined in one write: a HEAD and a revalidation, answered in order.
    let pipelined = format!(
        "HEAD {path} HTTP/1.1\r\nhost: edge\r\n\r\n{}",
        get(&path, &format!("if-none-match: \"{etag}\"\r\n"))
    );
    conn.get_mut()
        .write_all(pipelined.as_bytes())
        .await
        .unwrap();
    let head = read_response(&mut conn, true).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], document.len().to_string());
    let revalidated = read_response(&mut conn, false).await;
    assert_eq!(revalidated.status, 304);
    assert!(
        !revalidated.headers.contains_key("content-length"),
        "a 304's length would be the 200's"
    );

    // Joins without a session, with a declared length (the fast lane's) and chunked (the
    // proxy's), then a poll without a queue token: each refused the same way either path.
    let join = r#"{"show_id":"x"}"#;
    for body in [
        format!("content-length: {}\r\n\r\n{join}", join.len()),
        format!(
            "transfer-encoding: chunked\r\n\r\n{:x}\r\n{join}\r\n0\r\n\r\n",
            join.len()
        ),
    ] {
        let join = format!(
            "POST /v1/waiting-room/sessions HTTP/1.1\r\nhost: edge\r\n\
             content-type: application/json\r\n{body}"
        );
        conn.get_mut().write_all(join.as_bytes()).await.unwrap();
        let refused = read_response(&mut conn, false).await;
        assert_eq!(refused.status, 401, "{body}");
        assert_eq!(refused.headers["content-type"], "application/problem+json");
        let refused: Value = serde_json::from_slice(&refused.body).unwrap();
        assert_eq!(refused["code"], "sign_in_required");
    }
    let poll = get("/v1/waiting-room/sessions/current", "");
    conn.get_mut().write_all(poll.as_bytes()).await.unwrap();
    let refused: Value =
        serde_json::from_slice(&read_response(&mut conn, false).await.body).unwrap();
    assert_eq!(refused["code"], "queue_token_required");

    // A head arriving in pieces, then one that asks to close.
    let request = get(&path, "connection: close\r\n");
    let (start, rest) = request.split_at(10);
    conn.get_mut().write_all(start.as_bytes()).await.unwrap();
    conn.get_mut().flush().await.unwrap();
    conn.get_mut().write_all(rest.as_bytes()).await.unwrap();
    let last = read_response(&mut conn, false).await;
    assert_eq!((last.status, &last.body), (200, &document));
    assert_eq!(last.headers["connection"], "close");
    let mut after = Vec::new();
    conn.read_to_end(&mut after).await.unwrap();
    assert!(after.is_empty(), "the edge closed the connection");

    // HTTP/1.0 and oversized heads are the proxy's, with the same answers.
    let mut old = BufReader::new(TcpStream::connect(f.app.edge.public).await.unwrap());
    let request = format!("GET {path} HTTP/1.0\r\n\r\n");
    old.get_mut().write_all(request.as_bytes()).await.unwrap();
    let old = read_response(&mut old, false).await;
    assert_eq!((old.status, &old.body), (200, &document));
    let mut big = BufReader::new(TcpStream::connect(f.app.edge.public).await.unwrap());
    let padding = format!("x-padding: {}\r\n", "y".repeat(20_000));
    big.get_mut()
        .write_all(get(&path, &padding).as_bytes())
        .await
        .unwrap();
    let big: Value = serde_json::from_slice(&read_response(&mut big, false).await.body).unwrap();
    assert_eq!(big["code"], "headers_too_large");
}

#[tokio::test(flavor = "multi_thread")]
async fn max_age_follows_the_injected_clock() {
    let f = ShowFixture::spawn().await;
    let now = unix_now() * 1000;
    let clock = Clock::manual(now);
    let edge = edge()
        .upstream(f.app.origin.addr())
        .config(|c| c.redis.key_prefix = f.app.prefix())
        .clock(clock.clone())
        .run();
    let etag = publish(&f, now).await;
    let fan = client(edge.public);
    let path = availability_path(&f);
    let reply = eventually("the snapshot at the edge", WITHIN, || async {
        let reply = fan.get(&path).await;
        (reply.status == 200).then_some(reply)
    })
    .await;
    assert_eq!(reply.header("etag"), Some(format!("\"{etag}\"").as_str()));
    assert_eq!(
        reply.header("cache-control"),
        Some("public, max-age=30, stale-while-revalidate=30")
    );
    clock.advance(Duration::from_millis(12_500));
    let reply = fan.get(&path).await;
    assert_eq!(
        reply.header("cache-control"),
        Some("public, max-age=18, stale-while-revalidate=30")
    );
    clock.advance(Duration::from_secs(60));
    let reply = fan.get(&path).await;
    assert_eq!(
        reply.header("cache-control"),
        Some("public, max-age=0, stale-while-revalidate=30"),
        "past the due build, caches must revalidate"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_shows_are_404_and_unbuilt_ones_503() {
    let f = ShowFixture::spawn().await;
    let fan = f.app.fan();
    let unbuilt = fan.get(&availability_path(&f)).await;
    let body = unbuilt.problem(503, "snapshot_not_ready");
    assert_eq!(unbuilt.header("retry-after"), Some("5"));
    assert_eq!(body["retry_after_s"], 5);
    fan.get("/v1/shows/0193a6f0-0000-7000-8000-00000000dead/seat-map")
        .await
        .problem(404, "show_not_found");
    fan.get("/v1/shows/not-a-uuid/availability")
        .await
        .problem(404, "show_not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn announcements_refresh_and_redis_loss_keeps_serving() {
    let f = ShowFixture::spawn().await;
    let gate = TcpGate::start(redis_server()).await;
    let edge = edge()
        .upstream(f.app.origin.addr())
        .config(|c| {
            c.redis.key_prefix = f.app.prefix();
            c.redis.url = onsale_contract::config::Secret::new(format!("redis://{}", gate.addr));
            c.redis.cluster = false;
            // Announcements, not the poll, must carry the change.
            c.snapshots.poll_interval_ms = 600_000;
        })
        .run();
    let fan = client(edge.public);
    let path = availability_path(&f);
    let now = unix_now() * 1000;
    let first = publish(&f, now).await;
    let etag_of = |reply: &onsale_tests::Reply| reply.header("etag").map(str::to_owned);
    eventually("the first snapshot", WITHIN, || async {
        (etag_of(&fan.get(&path).await) == Some(format!("\"{first}\""))).then_some(())
    })
    .await;

    f.hold_seat(0, "10 minutes").await;
    let second = publish(&f, now + 30_000).await;
    assert_ne!(first, second);
    eventually("the announced snapshot", WITHIN, || async {
        (etag_of(&fan.get(&path).await) == Some(format!("\"{second}\""))).then_some(())
    })
    .await;

    gate.cut();
    for _ in 0..20 {
        let reply = fan.get(&path).await;
        assert_eq!(reply.status, 200, "served from memory while Redis is away");
        assert_eq!(etag_of(&reply), Some(format!("\"{second}\"")));
    }
    let metrics = client(edge.admin).get("/metrics").await;
    assert!(String::from_utf8_lossy(&metrics.body).contains("onsale_edge_snapshot_age_seconds{"));
    gate.restore();
}

/// A JWT with the given header and claims, signed by `sign` over `header.claims`.
fn handmade(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let head = URL_SAFE_NO_PAD.encode(header.to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature = URL_SAFE_NO_PAD.encode(sign(format!("{head}.{body}").as_bytes()));
    format!("{head}.{body}.{signature}")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gate_admits_only_valid_admission_tokens_for_the_show() {
    let f = ShowFixture::spawn().await;
    let show = f.show.to_string();
    let path = format!("/v1/shows/{show}/holds");
    let body = json!({"seat_ids": [f.seats[0]]});
    let now = unix_now();
    let claims = |typ: &str, show: &str, exp: i64| {
        json!({"iss": "onsale-edge", "sub": "fan-1", "show": show, "typ": typ,
               "iat": now, "exp": exp, "jti": "j"})
    };
    let (other_private, _) = onsale_contract::tokens::generate_pem_pair();
    let stranger = Signer::from_pem(&other_private, "onsale-edge").unwrap();
    let signer = &keys().signer;
    let kid = signer.kid().to_owned();
    let public_pem = std::fs::read(&keys().verify_pem).unwrap();
    let hs256_with_public_key = handmade(
        &json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
        &claims("admit", &show, now + 600),
        |data| {
            use hmac::Mac;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&public_pem).unwrap();
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        },
    );
    let alg_none = handmade(
        &json!({"alg": "none", "typ": "JWT"}),
        &claims("admit", &show, now + 600),
        |_| Vec::new(),
    );
    let queue_keys =
        onsale_contract::tokens::QueueKeys::from_files(&[&keys().queue_key], "onsale-edge")
            .unwrap();
    let hs256_with_the_queue_key = queue_keys
        .sign(&serde_json::from_value(claims("admit", &show, now + 600)).unwrap())
        .unwrap();
    let sign = |typ: TokenType, show: &str, exp: i64| {
        signer.sign(&Claims {
            iss: "onsale-edge".into(),
            sub: "fan-1".into(),
            show: show.into(),
            typ,
            iat: now,
            exp,
            jti: "j".into(),
            queue_no: Some(1),
            lane: None,
        })
    };
    let refused = [
        ("no token", None, 401),
        (
            "forged",
            Some(stranger.issue(TokenType::Admit, "fan-1", &show, now, 600, None)),
            401,
        ),
        (
            "expired",
            Some(sign(TokenType::Admit, &show, now - 3600)),
            401,
        ),
        ("alg none", Some(alg_none), 401),
        (
            "HS256 keyed with the public key",
            Some(hs256_with_public_key),
            401,
        ),
        (
            "HS256 keyed with the queue key",
            Some(hs256_with_the_queue_key),
            401,
        ),
        (
            "queue token",
            Some(sign(TokenType::Queue, &show, now + 600)),
            401,
        ),
        ("garbage", Some("not.a.jwt".to_owned()), 401),
        (
            "other show",
            Some(admission("fan-1", "0193a6f0-0000-7000-8000-000000000999")),
            403,
        ),
    ];
    let fan = f.app.fan();
    for (what, token, status) in refused {
        let mut request = fan
            .raw(Method::POST, &path)
            .header("idempotency-key", format!("k-{what}"))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let reply = fan.send(request).await;
        let code = if status == 401 {
            "admission_required"
        } else {
            "wrong_show"
        };
        let problem = reply.problem(status, code);
        assert_eq!(problem["join"], "/v1/waiting-room/sessions", "{what}");
    }
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM holds")
        .fetch_one(f.pool())
        .await
        .unwrap();
    assert_eq!(held, 0, "nothing refused at the gate reached the origin");

    // A valid token, as a cookie among others, reaches the origin.
    let reply = fan
        .send(
            fan.raw(Method::POST, &path)
                .header(
                    "cookie",
                    format!("theme=dark; onsale_admit={}", admission("fan-1", &show)),
                )
                .header("idempotency-key", "k-valid")
                .header("x-onsale-fan", "someone-else")
                .json(&body),
        )
        .await;
    reply.expect_status(201);
    assert_eq!(reply.json()["seat_ids"], json!([f.seats[0]]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_origin_leaves_the_pool_and_comes_back() {
    let database = db().await;
    let first = origin(&database).run().await;
    let second = origin(&database).run().await;
    let second_addr = second.addr();
    let edge = edge()
        .upstream(first.addr())
        .upstream(second_addr)
        .config(|c| c.origin.catalog_cache_ms = 0)
        .run();
    let fan = client(edge.public);
    for _ in 0..10 {
        assert_eq!(fan.get("/v1/events").await.status, 200);
    }

    first.shutdown().await.unwrap();
    // Idempotent requests keep succeeding: a connect failure is retried on the other origin
    // before the health check has noticed.
    for _ in 0..40 {
        let reply = fan.get("/v1/events").await;
        reply.expect_status(200);
    }

    second.shutdown().await.unwrap();
    let down = eventually("the pool to be empty", WITHIN, || async {
        let reply = fan.get("/v1/events").await;
        (reply.status == 503).then_some(reply)
    })
    .await;
    down.problem(503, "no_healthy_origin");
    assert_eq!(down.header("retry-after"), Some("2"));
    eventually("the edge to report not ready", WITHIN, || async {
        (client(edge.admin).get("/readyz").await.status == 503).then_some(())
    })
    .await;

    let revived = origin(&database)
        .config(|c| c.http.listen = second_addr)
        .run()
        .await;
    eventually("the origin back in the pool", WITHIN, || async {
        (fan.get("/v1/events").await.status == 200).then_some(())
    })
    .await;
    eventually("the edge ready again", WITHIN, || async {
        (client(edge.admin).get("/readyz").await.status == 200).then_some(())
    })
    .await;
    drop(revived);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_refill_with_the_clock() {
    let f = ShowFixture::spawn().await;
    let clock = Clock::manual(unix_now() * 1000);
    let strict_ip = edge()
        .upstream(f.app.origin.addr())
        .clock(clock.clone())
        .config(|c| {
            c.limits.per_ip = edge_proxy::config::Quota {
                per_minute: 60,
                burst: 3,
            };
        })
        .run();
    let fan = client(strict_ip.public);
    for _ in 0..3 {
        assert_eq!(fan.get("/v1/events").await.status, 200);
    }
    let limited = fan.get("/v1/events").await;
    let problem = limited.problem(429, "rate_limited");
    assert_eq!(problem["limit"], "ip");
    assert_eq!(limited.header("retry-after"), Some("1"));
    clock.advance(Duration::from_secs(1));
    assert_eq!(fan.get("/v1/events").await.status, 200);
    assert_eq!(fan.get("/v1/events").await.status, 429);

    // Per fan on the purchase path, independent of the IP bucket.
    let strict_fan = edge()
        .upstream(f.app.origin.addr())
        .clock(clock.clone())
        .config(|c| {
            c.limits.per_fan_purchase = edge_proxy::config::Quota {
                per_minute: 2,
                burst: 2,
            };
        })
        .run();
    let show = f.show.to_string();
    let fan = client(strict_fan.public).bearer(&admission("fan-9", &show));
    let hold = |n: usize| {
        let fan = fan.clone();
        let path = format!("/v1/shows/{show}/holds");
        let seat = f.seats[n];
        async move {
            fan.send(
                fan.raw(Method::POST, &path)
                    .header("idempotency-key", format!("rl-{n}"))
                    .json(&json!({"seat_ids": [seat]})),
            )
            .await
        }
    };
    assert_eq!(hold(0).await.status, 201);
    assert_eq!(hold(1).await.status, 201);
    let limited = hold(2).await;
    assert_eq!(limited.problem(429, "rate_limited")["limit"], "fan");
    assert_eq!(limited.header("retry-after"), Some("30"));
    clock.advance(Duration::from_secs(30));
    assert_eq!(hold(2).await.status, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn account_pages_pass_without_admission_and_sign_ins_have_their_own_quota() {
    let f = ShowFixture::spawn().await;
    let clock = Clock::manual(unix_now() * 1000);
    let edge = edge()
        .upstream(f.app.origin.addr())
        .clock(clock.clone())
        .config(|c| {
            c.limits.per_ip_sign_in = edge_proxy::config::Quota {
                per_minute: 60,
                burst: 2,
            };
        })
        .run();
    let fan = client(edge.public);
    let (account, session) = create_account(&f.app.db).await;
    let signed_in = fan.clone().bearer(&session);
    // The account's pages take its session, no admission; the origin checks it.
    let me = signed_in.get("/v1/me").await;
    me.expect_status(200);
    assert_eq!(me.json()["account_id"], account.to_string());
    signed_in.get("/v1/orders").await.expect_status(200);
    signed_in.get("/v1/me/tickets").await.expect_status(200);
    for path in [
        "/v1/me".to_owned(),
        "/v1/orders".to_owned(),
        format!("/v1/orders/{}", uuid::Uuid::nil()),
        format!("/v1/tickets/{}/qr.svg", uuid::Uuid::nil()),
    ] {
        fan.get(&path).await.problem(401, "sign_in_required");
    }
    // An admission is no session.
    fan.clone()
        .bearer(&admission(&account.to_string(), &f.show.to_string()))
        .get("/v1/orders")
        .await
        .problem(401, "sign_in_required");

    // Sign-up and sign-in share a tighter per-IP quota than the rest.
    let email = format!("fan-{}@test.onsale.test", account.simple());
    let signed = fan
        .post(
            "/v1/sessions",
            &json!({"email": email, "password": TEST_PASSWORD}),
        )
        .await;
    signed.expect_status(201);
    assert_eq!(signed.json()["account_id"], account.to_string());
    fan.post(
        "/v1/sessions",
        &json!({"email": email, "password": "not the password"}),
    )
    .await
    .problem(401, "invalid_credentials");
    let limited = fan
        .post(
            "/v1/accounts",
            &json!({"email": "new@test.onsale.test", "password": "a long enough password", "display_name": "New"}),
        )
        .await;
    assert_eq!(limited.problem(429, "rate_limited")["limit"], "sign_in");
    assert_eq!(limited.header("retry-after"), Some("1"));
    signed_in.get("/v1/me").await.expect_status(200);
    clock.advance(Duration::from_secs(1));
    fan.post(
        "/v1/sessions",
        &json!({"email": email, "password": TEST_PASSWORD}),
    )
    .await
    .expect_status(201);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_and_headers_are_refused() {
    let f = ShowFixture::spawn().await;
    let fan = f.app.fan().bearer(&admission("fan-1", &f.show.to_string()));
    let path = format!("/v1/shows/{}/holds", f.show);
    let big = json!({"seat_ids": [1], "pad": "x".repeat(70_000)});
    let reply = fan
        .send(
            fan.raw(Method::POST, &path)
                .header("idempotency-key", "big")
                .json(&big),
        )
        .await;
    reply.problem(413, "body_too_large");
    let reply = fan
        .send(
            fan.raw(Method::GET, "/v1/events")
                .header("x-padding", "y".repeat(20_000)),
        )
        .await;
    reply.problem(431, "headers_too_large");
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_reads_are_micro_cached() {
    let database = db().await;
    let origin = origin(&database).run().await;
    let clock = Clock::manual(unix_now() * 1000);
    let edge = edge().upstream(origin.addr()).clock(clock.clone()).run();
    let fan = client(edge.public);
    let fresh = fan.get("/v1/events").await;
    assert_eq!(fresh.status, 200);
    origin.shutdown().await.unwrap();
    let cached = fan.get("/v1/events").await;
    assert_eq!(
        cached.status, 200,
        "answered by the edge while the origin is gone"
    );
    assert_eq!(cached.body, fresh.body);
    assert_eq!(cached.header("age"), Some("0"));
    clock.advance(Duration::from_secs(3));
    fan.get("/v1/events")
        .await
        .problem(503, "no_healthy_origin");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_reloads_live_and_a_broken_file_keeps_the_running_one() {
    let f = ShowFixture::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    let builder = edge().upstream(f.app.origin.addr()).config(|c| {
        c.server.reload_poll_ms = 100;
        c.limits.per_ip = edge_proxy::config::Quota {
            per_minute: 60_000,
            burst: 1_000,
        };
    });
    let edge = builder.live_file(&path).run();
    let admin = client(edge.admin);
    let version = |reply: onsale_tests::Reply| reply.json()["version"].as_u64().unwrap();
    assert_eq!(version(admin.get("/admin/config").await), 1);

    let mut config = edge.shared.live.load().config.clone();
    config.limits.per_ip = edge_proxy::config::Quota {
        per_minute: 60,
        burst: 1,
    };
    write_edge_config(&path, &config);
    eventually("the new limit", WITHIN, || async {
        let shown = admin.get("/admin/config").await.json();
        (shown["config"]["limits"]["per_ip"]["burst"] == 1).then_some(())
    })
    .await;
    let fan = client(edge.public);
    fan.get("/v1/events").await;
    fan.get("/v1/events").await.problem(429, "rate_limited");

    std::fs::write(&path, "[listen]\npublic = \"nonsense\"\n").unwrap();
    let reloads = eventually("the refusal", WITHIN, || async {
        let metrics = String::from_utf8(admin.get("/metrics").await.body).unwrap();
        metrics
            .contains("onsale_edge_config_reloads_total{outcome=\"refused\"}")
            .then_some(metrics)
    })
    .await;
    assert!(
        reloads.contains("onsale_edge_config_version 2"),
        "{reloads}"
    );
    assert_eq!(version(admin.get("/admin/config").await), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_keys_rotate_without_a_failed_request() {
    let f = ShowFixture::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    let edge = edge()
        .upstream(f.app.origin.addr())
        .config(|c| c.server.reload_poll_ms = 100)
        .live_file(&path)
        .run();
    let (new_private, new_public) = onsale_contract::tokens::generate_pem_pair();
    let new_signer = Signer::from_pem(&new_private, "onsale-edge").unwrap();
    let new_key = dir.path().join("new.pem");
    std::fs::write(&new_key, new_public).unwrap();
    let show = f.show.to_string();
    let fan = client(edge.public);
    let order = format!("/v1/holds/{}", uuid::Uuid::nil());
    // The gate's verdict: anything but 401/403 got through (the origin answers the rest).
    let through = move |token: String| {
        let fan = fan.clone();
        let order = order.clone();
        async move {
            let reply = fan
                .send(fan.raw(Method::GET, &order).bearer_auth(token))
                .await;
            !matches!(reply.status.as_u16(), 401 | 403)
        }
    };
    let old_token = admission("fan-1", &show);
    let new_token = new_signer.issue(TokenType::Admit, "fan-1", &show, unix_now(), 600, None);
    assert!(through(old_token.clone()).await);
    assert!(
        !through(new_token.clone()).await,
        "the new key is not trusted yet"
    );

    // Step 1: trust both keys. Requests with the old key run throughout.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = tokio::spawn({
        let (stop, old_token, through) = (stop.clone(), old_token.clone(), through.clone());
        async move {
            let mut failures = 0;
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                sent += 1;
                failures += usize::from(!through(old_token.clone()).await);
            }
            (sent, failures)
        }
    });
    let mut config = edge.shared.live.load().config.clone();
    config.tokens.verify_keys.push(new_key.clone());
    write_edge_config(&path, &config);
    eventually("the new key trusted", WITHIN, || {
        let new_token = new_token.clone();
        let through = through.clone();
        async move { through(new_token).await.then_some(()) }
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (sent, failures) = traffic.await.unwrap();
    assert!(sent > 0);
    assert_eq!(failures, 0, "no request failed during the rotation");
    assert!(through(old_token).await, "the previous key stays valid");
}
