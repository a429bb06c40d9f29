//! Accounts at the origin: sign-up, sign-in, sessions that can be ended, credentials that
//! cannot be enumerated, throttling shared by every origin, password change and reset,
//! account pages behind the owner's session, limits per account, and spent admissions.

use crate::holds::{stadium_with, Stadium};
use crate::orders::{assert_invariants, confirm, held, order, ordered};
use onsale_tests::{admission, client, eventually, Client, Reply, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;
use uuid::Uuid;

const PASSWORD: &str = "a long enough passphrase";

fn origin(app: &TestApp) -> Client {
    client(app.origin.addr())
}

/// The same client, as if the edge had seen the request come from `ip`.
fn from_ip(http: &Client, method: Method, path: &str, ip: &str) -> reqwest::RequestBuilder {
    http.raw(method, path).header("x-forwarded-for", ip)
}

async fn sign_up(http: &Client, email: &str, password: &str) -> Reply {
    http.post(
        "/v1/accounts",
        &json!({"email": email, "password": password, "display_name": "Ana Lima"}),
    )
    .await
}

async fn sign_in(http: &Client, email: &str, password: &str) -> Reply {
    http.post(
        "/v1/sessions",
        &json!({"email": email, "password": password}),
    )
    .await
}

async fn sign_in_from(http: &Client, ip: &str, email: &str, password: &str) -> Reply {
    http.send(
        from_ip(http, Method::POST, "/v1/sessions", ip)
            .json(&json!({"email": email, "password": password})),
    )
    .await
}

/// A session token from a successful sign-in.
async fn session_of(http: &Client, email: &str, password: &str) -> String {
    let reply = sign_in(http, email, password).await;
    reply.expect_status(201);
    reply.json()["session_token"].as_str().unwrap().to_owned()
}

/// `password_hashes_total{op}` of the origin.
fn hashes(app: &TestApp, op: &str) -> u64 {
    app.origin
        .state
        .metrics
        .password_hashes
        .with_label_values(&[op])
        .get()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fan_signs_up_signs_in_sees_itself_and_signs_out() {
    let app = TestApp::spawn().await;
    let http = origin(&app);
    let created = http
        .post(
            "/v1/accounts",
            &json!({"email": "  Ana.Lima@Example.com ", "password": PASSWORD, "display_name": "  Ana  "}),
        )
        .await;
    created.expect_status(201);
    let account = created.json();
    assert_eq!(account["email"], "Ana.Lima@Example.com");
    assert_eq!(account["display_name"], "Ana");
    assert_eq!(account["role"], "fan");
    let account_id = account["account_id"].as_str().unwrap().to_owned();
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM accounts")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );

    // The email signs in in any letter case.
    let before = hashes(&app, "verify");
    let signed_in = sign_in(&http, "ana.lima@EXAMPLE.com", PASSWORD).await;
    signed_in.expect_status(201);
    assert_eq!(
        hashes(&app, "verify"),
        before + 1,
        "one argon2 verification"
    );
    let body = signed_in.json();
    assert_eq!(body["account_id"], account_id.as_str());
    let token = body["session_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ses_") && token.len() == 47, "{token}");
    let lifetime =
        body["expires_at_ms"].as_i64().unwrap() - body["server_time_ms"].as_i64().unwrap();
    let ttl_ms = 720 * 3_600_000;
    assert!((ttl_ms - 60_000..=ttl_ms).contains(&lifetime), "{lifetime}");
    let cookie = signed_in.header("set-cookie").unwrap();
    assert!(
        cookie.starts_with(&format!("onsale_session={token};")),
        "{cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "the test stack is plain HTTP: {cookie}"
    );
    // Only the token's SHA-256 is stored.
    let hashed: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE token_hash = $1")
        .bind(Sha256::digest(token.as_bytes()).to_vec())
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(hashed, 1);

    // GET /v1/me by bearer and by cookie, the shape the edge reads.
    let me = http.clone().bearer(&token).get("/v1/me").await;
    me.expect_status(200);
    assert_eq!(me.header("cache-control"), Some("private, no-store"));
    let me = me.json();
    let mut keys: Vec<&str> = me.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "account_id",
            "display_name",
            "email",
            "role",
            "server_time_ms",
            "session_expires_at_ms"
        ]
    );
    assert_eq!(me["account_id"], account_id.as_str());
    assert_eq!(me["email"], "Ana.Lima@Example.com");
    assert_eq!(me["role"], "fan");
    assert_eq!(me["session_expires_at_ms"], body["expires_at_ms"]);
    let by_cookie = http
        .send(
            http.raw(Method::GET, "/v1/me")
                .header("cookie", format!("theme=dark; onsale_session={token}")),
        )
        .await;
    by_cookie.expect_status(200);

    // No session, a malformed one, an unknown one: 401 with the way to sign in.
    let forged = format!("ses_{}", "A".repeat(43));
    for who in [
        http.clone(),
        http.clone().bearer("ses_nope"),
        http.clone().bearer(&forged),
        http.clone()
            .bearer(&admission(&account_id, &Uuid::new_v4().to_string())),
    ] {
        let refused = who.get("/v1/me").await.problem(401, "sign_in_required");
        assert_eq!(refused["sign_in"], "/v1/sessions");
    }

    // Signing out ends this session only.
    let other = session_of(&http, "ana.lima@example.com", PASSWORD).await;
    let out = http
        .clone()
        .bearer(&token)
        .request(Method::DELETE, "/v1/sessions/current", None)
        .await;
    out.expect_status(204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    http.clone()
        .bearer(&token)
        .get("/v1/me")
        .await
        .problem(401, "sign_in_required");
    http.clone()
        .bearer(&token)
        .request(Method::DELETE, "/v1/sessions/current", None)
        .await
        .problem(401, "sign_in_required");
    http.clone()
        .bearer(&other)
        .get("/v1/me")
        .await
        .expect_status(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn raised_argon2_settings_rehash_a_password_at_its_next_sign_in() {
    let app = TestApp::spawn().await;
    sign_up(&origin(&app), "ana@example.com", PASSWORD)
        .await
        .expect_status(201);
    let stored = || async {
        sqlx::query_scalar::<_, String>("SELECT password_hash FROM accounts")
            .fetch_one(&app.db.pool)
            .await
            .unwrap()
    };
    let before = stored().await;
    assert!(before.contains("$m=19456,t=2,p=1$"), "{before}");
    // An origin with stronger settings verifies the old hash, then stores a new one.
    let stronger = onsale_tests::origin(&app.db)
        .config(|c| c.accounts.argon2_iterations = 3)
        .run()
        .await;
    let http = client(stronger.addr());
    session_of(&http, "ana@example.com", PASSWORD).await;
    let after = stored().await;
    assert!(after.contains("$m=19456,t=3,p=1$"), "{after}");
    let hashed = |op: &str| {
        stronger
            .state
            .metrics
            .password_hashes
            .with_label_values(&[op])
            .get()
    };
    assert_eq!((hashed("verify"), hashed("hash")), (1, 1));
    // Once moved, a sign-in verifies only; a wrong password moves nothing.
    session_of(&http, "ana@example.com", PASSWORD).await;
    sign_in(&http, "ana@example.com", "wrong password!")
        .await
        .problem(401, "invalid_credentials");
    assert_eq!((hashed("verify"), hashed("hash")), (3, 1));
    assert_eq!(stored().await, after);
    stronger.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_has_one_account_in_any_letter_case_and_bad_input_stores_nothing() {
    let app = TestApp::spawn().await;
    let http = origin(&app);
    sign_up(&http, "ana@example.com", PASSWORD)
        .await
        .expect_status(201);
    for variant in ["ANA@EXAMPLE.COM", " Ana@Example.com", "ana@example.com"] {
        let taken = sign_up(&http, variant, PASSWORD)
            .await
            .problem(409, "email_taken");
        assert_eq!(taken["field"], "email");
    }
    // Racing sign-ups of one email in different cases: one account.
    let racing = futures_util::future::join_all(
        [
            "bo@example.com",
            "BO@example.com",
            "Bo@Example.COM",
            "bo@EXAMPLE.com",
        ]
        .map(|email| {
            let http = http.clone();
            async move { sign_up(&http, email, PASSWORD).await.status.as_u16() }
        }),
    )
    .await;
    assert_eq!(
        racing.iter().filter(|&&s| s == 201).count(),
        1,
        "{racing:?}"
    );
    assert_eq!(
        racing.iter().filter(|&&s| s == 409).count(),
        3,
        "{racing:?}"
    );

    let before = hashes(&app, "hash");
    for (body, field) in [
        (
            json!({"email": "nope", "password": PASSWORD, "display_name": "C"}),
            "email",
        ),
        (
            json!({"email": "c@example", "password": PASSWORD, "display_name": "C"}),
            "email",
        ),
        (
            json!({"email": "c@example.com", "password": "123456789", "display_name": "C"}),
            "password",
        ),
        (
            json!({"email": "c@example.com", "password": "x".repeat(129), "display_name": "C"}),
            "password",
        ),
        (
            json!({"email": "c@example.com", "password": PASSWORD, "display_name": "  "}),
            "display_name",
        ),
        (
            json!({"email": "c@example.com", "password": PASSWORD, "display_name": "n".repeat(65)}),
            "display_name",
        ),
    ] {
        let refused = http
            .post("/v1/accounts", &body)
            .await
            .problem(422, "invalid_field");
        assert_eq!(refused["field"], field, "{body}");
    }
    // Nobody asks to be an organizer.
    http.post(
        "/v1/accounts",
        &json!({"email": "c@example.com", "password": PASSWORD, "display_name": "C", "role": "organizer"}),
    )
    .await
    .problem(400, "invalid_body");
    assert_eq!(hashes(&app, "hash"), before, "nothing hashed");
    assert_eq!(
        count(&app, "SELECT count(*) FROM accounts").await,
        2,
        "nothing stored"
    );
    // A short password is the sign-in's to refuse, not a format error that would tell
    // more than a wrong password.
    sign_in(&http, "ana@example.com", "short")
        .await
        .problem(401, "invalid_credentials");
    let refused = sign_in(&http, "ana@", PASSWORD)
        .await
        .problem(422, "invalid_field");
    assert_eq!(refused["field"], "email");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_and_an_unknown_email_are_answered_alike_after_the_same_work() {
    let app = TestApp::spawn().await;
    let http = origin(&app);
    sign_up(&http, "ana@example.com", PASSWORD)
        .await
        .expect_status(201);
    let mut answers = Vec::new();
    for (email, password) in [
        ("ana@example.com", "not the passphrase"),
        ("nobody@example.com", "not the passphrase"),
        ("nobody@example.com", PASSWORD),
    ] {
        let before = hashes(&app, "verify");
        let reply = sign_in(&http, email, password).await;
        assert_eq!(
            hashes(&app, "verify"),
            before + 1,
            "one argon2 verification for {email}"
        );
        answers.push(reply);
    }
    let first = &answers[0];
    first.problem(401, "invalid_credentials");
    for other in &answers[1..] {
        assert_eq!(other.status, first.status);
        assert_eq!(other.body, first.body, "byte for byte");
        assert_eq!(other.header("content-type"), first.header("content-type"));
        assert_eq!(other.header("set-cookie"), None);
    }
    assert_eq!(count(&app, "SELECT count(*) FROM sessions").await, 0);
}

/// Statuses of `guesses` wrong-password sign-ins sent at once: (401s, 429s).
async fn guesses_at_once(http: &Client, guesses: Vec<(String, String)>) -> (usize, usize) {
    let answers = futures_util::future::join_all(
        guesses
            .iter()
            .map(|(ip, email)| sign_in_from(http, ip, email, "wrong password!")),
    )
    .await;
    let count = |status: u16| answers.iter().filter(|r| r.status == status).count();
    assert_eq!(count(401) + count(429), answers.len(), "only 401 and 429");
    (count(401), count(429))
}

#[tokio::test(flavor = "multi_thread")]
async fn guesses_sent_at_once_never_pass_a_maximum() {
    let app = TestApp::spawn_with(|c| {
        c.accounts.max_failures_per_email = 3;
        c.accounts.max_failures_per_ip = 4;
    })
    .await;
    let http = origin(&app);
    sign_up(&http, "ana@example.com", PASSWORD)
        .await
        .expect_status(201);

    // Twelve guesses at one email from twelve addresses, all in flight together: three are
    // checked, nine refused before any work, and the email is locked for everyone.
    let (checked, refused) = guesses_at_once(
        &http,
        (0..12)
            .map(|n| (format!("198.51.100.{n}"), "ana@example.com".to_owned()))
            .collect(),
    )
    .await;
    assert_eq!((checked, refused), (3, 9));
    sign_in_from(&http, "198.51.100.99", "ana@example.com", PASSWORD)
        .await
        .problem(429, "rate_limited");

    // Twelve guesses from one address at twelve emails: four are checked. The refused ones
    // count against no email.
    let (checked, refused) = guesses_at_once(
        &http,
        (0..12)
            .map(|n| ("203.0.113.7".to_owned(), format!("fan{n}@example.com")))
            .collect(),
    )
    .await;
    assert_eq!((checked, refused), (4, 8));
    let counted: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(hits), 0) FROM auth_throttle WHERE scope = 'credential_email'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(counted, 3 + 4, "ana's three and the four checked guesses");

    // A right password gives its attempt back to the address.
    sign_up(&http, "bo@example.com", PASSWORD)
        .await
        .expect_status(201);
    for _ in 0..3 {
        sign_in_from(&http, "192.0.2.1", "bo@example.com", PASSWORD)
            .await
            .expect_status(201);
    }
    let (checked, _) = guesses_at_once(
        &http,
        (0..6)
            .map(|n| ("192.0.2.1".to_owned(), format!("guess{n}@example.com")))
            .collect(),
    )
    .await;
    assert_eq!(
        checked, 4,
        "three sign-ins cost the address none of its four failures"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_throttled_per_email_and_per_ip_across_origins() {
    let app = TestApp::spawn_with(|c| {
        c.accounts.max_failures_per_email = 3;
        c.accounts.max_failures_per_ip = 5;
    })
    .await;
    let http = origin(&app);
    // A second origin on the same database counts with the first.
    let second = onsale_tests::origin(&app.db)
        .config(|c| {
            c.accounts.max_failures_per_email = 3;
            c.accounts.max_failures_per_ip = 5;
        })
        .run()
        .await;
    let other_origin = client(second.addr());
    for email in ["ana@example.com", "bo@example.com", "cy@example.com"] {
        sign_up(&http, email, PASSWORD).await.expect_status(201);
    }

    // Per email: three failures from three addresses, on two origins, lock it for everyone,
    // the right password included. An unknown email is counted the same way.
    for (at, ip) in [
        (&http, "198.51.100.1"),
        (&other_origin, "198.51.100.2"),
        (&http, "198.51.100.3"),
    ] {
        sign_in_from(at, ip, "ana@example.com", "wrong password!")
            .await
            .problem(401, "invalid_credentials");
        sign_in_from(at, ip, "ghost@example.com", "wrong password!")
            .await
            .problem(401, "invalid_credentials");
    }
    for email in ["ana@example.com", "ghost@example.com"] {
        let limited = sign_in_from(&other_origin, "198.51.100.9", email, PASSWORD).await;
        let body = limited.problem(429, "rate_limited");
        assert_eq!(body["limit"], "email");
        let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
    }
    // Other emails from those addresses are not locked.
    sign_in_from(&http, "198.51.100.1", "bo@example.com", PASSWORD)
        .await
        .expect_status(201);

    // Per IP: five failures from one address, each for another email, lock the address
    // whatever the email; other addresses still sign in.
    let ip = "203.0.113.7";
    for n in 0..5 {
        sign_in_from(
            &http,
            ip,
            &format!("nobody{n}@example.com"),
            "wrong password!",
        )
        .await
        .problem(401, "invalid_credentials");
    }
    let limited = sign_in_from(&other_origin, ip, "cy@example.com", PASSWORD)
        .await
        .problem(429, "rate_limited");
    assert_eq!(limited["limit"], "ip");
    sign_in_from(&http, "203.0.113.8", "cy@example.com", PASSWORD)
        .await
        .expect_status(201);
    // IPv6 clients count by /64: another address of the same network is the same client.
    for n in 0..5 {
        sign_in_from(
            &http,
            &format!("2001:db8:7:7::{n}"),
            &format!("v6-{n}@example.com"),
            "wrong password!",
        )
        .await
        .problem(401, "invalid_credentials");
    }
    let limited = sign_in_from(&http, "2001:db8:7:7::99", "bo@example.com", PASSWORD)
        .await
        .problem(429, "rate_limited");
    assert_eq!(limited["limit"], "ip");
    sign_in_from(&http, "2001:db8:7:8::1", "bo@example.com", PASSWORD)
        .await
        .expect_status(201);

    // A correct password clears its email's failures.
    sign_up(&http, "di@example.com", PASSWORD)
        .await
        .expect_status(201);
    for round in 0..3 {
        for _ in 0..2 {
            sign_in_from(
                &http,
                &format!("192.0.2.{round}"),
                "di@example.com",
                "wrong pass!!",
            )
            .await
            .problem(401, "invalid_credentials");
        }
        sign_in_from(
            &http,
            &format!("192.0.2.{round}"),
            "di@example.com",
            PASSWORD,
        )
        .await
        .expect_status(201);
    }
    second.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_change_ends_every_session_of_the_account() {
    let app = TestApp::spawn().await;
    let http = origin(&app);
    sign_up(&http, "ana@example.com", PASSWORD)
        .await
        .expect_status(201);
    let phone = session_of(&http, "ana@example.com", PASSWORD).await;
    let laptop = session_of(&http, "ana@example.com", PASSWORD).await;
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let at_phone = http.clone().bearer(&phone);
    at_phone
        .post(
            "/v1/me/password",
            &change("wrong password!", "new passphrase 42"),
        )
        .await
        .problem(401, "invalid_credentials");
    let short = at_phone
        .post("/v1/me/password", &change(PASSWORD, "short"))
        .await
        .problem(422, "invalid_field");
    assert_eq!(short["field"], "new_password");
    http.post("/v1/me/password", &change(PASSWORD, "new passphrase 42"))
        .await
        .problem(401, "sign_in_required");
    // Nothing changed so far.
    at_phone.get("/v1/me").await.expect_status(200);

    let changed = at_phone
        .post("/v1/me/password", &change(PASSWORD, "new passphrase 42"))
        .await;
    changed.expect_status(204);
    assert!(changed.header("set-cookie").unwrap().contains("Max-Age=0"));
    for session in [&phone, &laptop] {
        http.clone()
            .bearer(session)
            .get("/v1/me")
            .await
            .problem(401, "sign_in_required");
    }
    sign_in(&http, "ana@example.com", PASSWORD)
        .await
        .problem(401, "invalid_credentials");
    session_of(&http, "ana@example.com", "new passphrase 42").await;
}

/// The reset code put in the outbox for `account`, once the request's work has run.
async fn reset_code(app: &TestApp, account: &str) -> String {
    let payload: Value = eventually(
        "the reset code in the outbox",
        Duration::from_secs(10),
        || async {
            sqlx::query_scalar(
                "SELECT payload FROM outbox
             WHERE aggregate_type = 'account' AND aggregate_id = $1::uuid
               AND event_type = 'password_reset_requested'
             ORDER BY id DESC LIMIT 1",
            )
            .bind(account)
            .fetch_optional(&app.db.pool)
            .await
            .unwrap()
        },
    )
    .await;
    payload["code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_reset_sends_a_single_use_code_through_the_notifications_and_ends_sessions() {
    let prefix = onsale_tests::redis_prefix();
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("notifications.jsonl");
    let (relay_prefix, sink_path) = (prefix.clone(), sink.clone());
    let app = TestApp::spawn_with(move |c| {
        c.notifications.relay = true;
        c.notifications.consumer = true;
        c.notifications.key_prefix = relay_prefix;
        c.notifications.sink_path = sink_path;
    })
    .await;
    let http = origin(&app);
    let account = sign_up(&http, "ana@example.com", PASSWORD).await.json()["account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = session_of(&http, "ana@example.com", PASSWORD).await;

    // Known or not, the same 202.
    let known = http
        .post("/v1/password-resets", &json!({"email": "ANA@example.com"}))
        .await;
    let unknown = http
        .post(
            "/v1/password-resets",
            &json!({"email": "ghost@example.com"}),
        )
        .await;
    known.expect_status(202);
    assert_eq!((unknown.status, &unknown.body), (known.status, &known.body));
    http.post("/v1/password-resets", &json!({"email": "not an email"}))
        .await
        .problem(422, "invalid_field");

    // The code reaches the notification sink; PostgreSQL keeps only its hash.
    let code = reset_code(&app, &account).await;
    assert_eq!(code.len(), 10);
    let line = eventually("the code in the sink", Duration::from_secs(10), || async {
        let text = std::fs::read_to_string(&sink).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|l| l["type"] == "password_reset_requested")
    })
    .await;
    assert_eq!(line["account_id"], account.as_str());
    assert_eq!(line["payload"]["email"], "ana@example.com");
    assert!(line["message"].as_str().unwrap().contains(&code), "{line}");
    assert!(line.get("order_id").is_none());
    let stored: Vec<u8> = sqlx::query_scalar("SELECT code_hash FROM password_resets")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_ne!(stored, code.as_bytes());
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM outbox WHERE aggregate_type = 'account'"
        )
        .await,
        1,
        "nothing for the unknown email"
    );

    let confirm_reset = |email: &str, code: &str, new: &str| {
        let http = http.clone();
        let body = json!({"email": email, "code": code, "new_password": new});
        async move { http.post("/v1/password-resets/confirm", &body).await }
    };
    let wrong = confirm_reset("ana@example.com", "ABCDEFGHJK", "new passphrase 42").await;
    wrong.problem(400, "invalid_reset_code");
    let nobody = confirm_reset("ghost@example.com", &code, "new passphrase 42").await;
    assert_eq!((nobody.status, &nobody.body), (wrong.status, &wrong.body));
    let short = confirm_reset("ana@example.com", &code, "short")
        .await
        .problem(422, "invalid_field");
    assert_eq!(short["field"], "new_password");
    http.clone()
        .bearer(&session)
        .get("/v1/me")
        .await
        .expect_status(200);

    // Typed loosely (lower case, grouped), the code works once; every session ends.
    let typed = format!("{}-{}", &code[..5], &code[5..]).to_lowercase();
    confirm_reset("Ana@Example.com", &typed, "new passphrase 42")
        .await
        .expect_status(204);
    http.clone()
        .bearer(&session)
        .get("/v1/me")
        .await
        .problem(401, "sign_in_required");
    confirm_reset("ana@example.com", &code, "another passphrase")
        .await
        .problem(400, "invalid_reset_code");
    sign_in(&http, "ana@example.com", PASSWORD)
        .await
        .problem(401, "invalid_credentials");
    session_of(&http, "ana@example.com", "new passphrase 42").await;

    // A code past its lifetime no longer works.
    http.post("/v1/password-resets", &json!({"email": "ana@example.com"}))
        .await
        .expect_status(202);
    eventually("a second code", Duration::from_secs(10), || async {
        (count(
            &app,
            "SELECT count(*) FROM password_resets WHERE used_at IS NULL",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    let late = reset_code(&app, &account).await;
    assert_ne!(late, code);
    sqlx::query(
        "UPDATE password_resets
         SET created_at = now() - interval '1 hour', expires_at = now() - interval '1 second'
         WHERE used_at IS NULL",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    confirm_reset("ana@example.com", &late, "another passphrase")
        .await
        .problem(400, "invalid_reset_code");
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_requests_are_limited_per_email_and_per_ip() {
    let app = TestApp::spawn_with(|c| {
        c.accounts.max_reset_requests_per_email = 2;
        c.accounts.max_reset_requests_per_ip = 4;
    })
    .await;
    let http = origin(&app);
    let account = sign_up(&http, "ana@example.com", PASSWORD).await.json()["account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let request = |ip: &'static str| {
        let http = http.clone();
        async move {
            http.send(
                from_ip(&http, Method::POST, "/v1/password-resets", ip)
                    .json(&json!({"email": "ana@example.com"})),
            )
            .await
        }
    };
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        request(ip).await.expect_status(202);
    }
    reset_code(&app, &account).await;
    // The third request for the email was answered like the others and sent nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&app, "SELECT count(*) FROM password_resets").await, 2);
    for _ in 0..3 {
        request("192.0.2.1").await.expect_status(202);
    }
    let limited = request("192.0.2.1").await;
    assert_eq!(limited.problem(429, "rate_limited")["limit"], "ip");
    assert!(limited.header("retry-after").is_some());
}

/// The `jti` of a JWT, read from its payload.
fn jti(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

/// A device of `name`'s account: a fresh admission (a join of its own) and a session of
/// its own.
async fn device(s: &Stadium, name: &str) -> (Client, String) {
    let (account, _) = s.account(name).await;
    let session = onsale_tests::create_session(&s.app.db, account).await;
    let token = admission(&account.to_string(), &s.show);
    let fan = client(s.app.origin.addr())
        .bearer(&token)
        .cookie(&format!("onsale_session={session}"));
    (fan, token)
}

#[tokio::test(flavor = "multi_thread")]
async fn account_pages_take_the_owners_session_and_hide_other_accounts() {
    let s = stadium_with(|_| {}).await;
    let ana = s.fan("ana").await;
    let (first, payment) = ordered(&s, &ana, &[0, 1]).await;
    confirm(&ana, &payment, "pm_card_ok", "c1")
        .await
        .expect_status(200);
    // Admission is spent; a later join buys more.
    let ana = s.fan("ana").await;
    let (second, payment) = ordered(&s, &ana, &[2]).await;
    let paid = confirm(&ana, &payment, "pm_card_ok", "c2").await.json();
    let ticket = paid["order"]["tickets"][0]["ticket_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, session) = s.account("ana").await;
    let signed_in = client(s.app.origin.addr()).bearer(&session);
    let order_path = format!("/v1/orders/{}", first["order_id"].as_str().unwrap());
    let qr_path = format!("/v1/tickets/{ticket}/qr.svg");

    // Only a session opens them: not an admission, not nothing.
    let (account, _) = s.account("ana").await;
    let admitted = client(s.app.origin.addr()).bearer(&admission(&account.to_string(), &s.show));
    for path in [
        "/v1/orders",
        order_path.as_str(),
        "/v1/me/tickets",
        qr_path.as_str(),
    ] {
        for who in [client(s.app.origin.addr()), admitted.clone()] {
            let refused = who.get(path).await.problem(401, "sign_in_required");
            assert_eq!(refused["sign_in"], "/v1/sessions", "{path}");
        }
        signed_in.get(path).await.expect_status(200);
    }

    // Tickets, newest first, a keyset page at a time.
    let page = signed_in.get("/v1/me/tickets?limit=2").await.json();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["ticket_id"], ticket.as_str(), "the newest first");
    assert_eq!(items[0]["order_id"], second["order_id"]);
    assert_eq!(items[0]["qr"], qr_path.as_str());
    assert_eq!(items[0]["section_id"], "A");
    assert_eq!(items[0]["event_name"], "Finale");
    assert_eq!(items[0]["scanned"], false);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = signed_in
        .get(&format!("/v1/me/tickets?limit=2&cursor={cursor}"))
        .await
        .json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    let all: Vec<&Value> = items
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .collect();
    assert_eq!(
        all.iter()
            .filter(|t| t["order_id"] == first["order_id"])
            .count(),
        2
    );
    signed_in
        .get("/v1/me/tickets?cursor=forged")
        .await
        .problem(400, "invalid_query");
    signed_in
        .get("/v1/me/tickets?show_id=x")
        .await
        .problem(400, "invalid_query");
    let history = signed_in.get("/v1/orders").await.json();
    assert_eq!(history["items"].as_array().unwrap().len(), 2);

    // Another account sees none of it: 404 for ids, empty lists.
    let bob = s.fan("bob").await;
    bob.get(&order_path).await.problem(404, "order_not_found");
    bob.get(&qr_path).await.problem(404, "ticket_not_found");
    assert!(bob.get("/v1/orders").await.json()["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(bob.get("/v1/me/tickets").await.json()["items"]
        .as_array()
        .unwrap()
        .is_empty());
    bob.post_idempotent(&format!("{order_path}/cancel"), "x", &json!({}))
        .await
        .problem(404, "order_not_found");

    // A cancelled order's tickets leave the list; the order stays in the history.
    ana.post_idempotent(&format!("{order_path}/cancel"), "x", &json!({}))
        .await
        .expect_status(200);
    let left = signed_in.get("/v1/me/tickets").await.json();
    assert_eq!(left["items"].as_array().unwrap().len(), 1);
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_account_cannot_pass_its_seat_limit_from_two_devices_at_once() {
    let s = stadium_with(|c| {
        c.holds.max_seats_per_hold = 4;
        c.holds.max_seats_per_fan = 4;
    })
    .await;
    // Each round, two devices of one account (two joins, two sessions) ask for three seats
    // each at the same moment: one gets them, the other is over the account's limit.
    for round in 0..8 {
        let name = format!("fan-{round}");
        let (phone, phone_token) = device(&s, &name).await;
        let (laptop, laptop_token) = device(&s, &name).await;
        assert_ne!(jti(&phone_token), jti(&laptop_token));
        let base = round * 6;
        let (left, right) = ([base, base + 1, base + 2], [base + 3, base + 4, base + 5]);
        let (a, b) = tokio::join!(s.hold(&phone, &left), s.hold(&laptop, &right));
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 422], "round {round}");
        let refused = if a.status == 422 { a } else { b };
        let body = refused.problem(422, "fan_seat_limit");
        assert_eq!(body["current_seats"], 3);
    }
    assert_eq!(
        s.count(
            "SELECT max(n) FROM (SELECT sum(seat_count) AS n FROM holds
             WHERE show_id = $1::uuid AND status = 'active' GROUP BY fan_id) per_fan"
        )
        .await,
        3
    );

    // Paid seats count too, from any device: a third device finds one seat left.
    let (phone, _) = device(&s, "fan-0").await;
    let held_by_phone = held(&s, &phone, &[60]).await;
    let created = order(&phone, held_by_phone["hold_id"].as_str().unwrap(), "o").await;
    created.expect_status(201);
    let payment = created.json()["payment"]["payment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    confirm(&phone, &payment, "pm_card_ok", "c")
        .await
        .expect_status(200);
    let (tablet, _) = device(&s, "fan-0").await;
    s.hold(&tablet, &[61]).await.problem(422, "fan_seat_limit");
    // Another account has its own limit.
    let (other, _) = device(&s, "someone-else").await;
    s.hold(&other, &[62, 63, 64, 65]).await.expect_status(201);
    assert_invariants(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admission_is_spent_at_the_origin_once_its_order_is_paid() {
    let s = stadium_with(|_| {}).await;
    let (fan, token) = device(&s, "ana").await;
    let (order_body, payment) = ordered(&s, &fan, &[0, 1]).await;
    let order_id = order_body["order_id"].as_str().unwrap().to_owned();
    let recorded: Option<String> =
        sqlx::query_scalar("SELECT admission_jti FROM orders WHERE id = $1::uuid")
            .bind(&order_id)
            .fetch_one(&s.app.db.pool)
            .await
            .unwrap();
    assert_eq!(recorded, Some(jti(&token)));

    let paid = confirm(&fan, &payment, "pm_card_ok", "c1").await;
    paid.expect_status(200);
    assert_eq!(paid.header("onsale-admission-spent"), Some("true"));
    let spent: (String, Uuid) = sqlx::query_as("SELECT jti, order_id FROM spent_admissions")
        .fetch_one(&s.app.db.pool)
        .await
        .unwrap();
    assert_eq!(spent, (jti(&token), Uuid::parse_str(&order_id).unwrap()));

    // Spent: refused on the purchase path, as bearer or cookie.
    let hold = s.hold(&fan, &[5]).await.problem(401, "admission_spent");
    assert_eq!(hold["join"], "/v1/waiting-room/sessions");
    let by_cookie = client(s.app.origin.addr());
    by_cookie
        .send(
            by_cookie
                .raw(Method::POST, &format!("/v1/shows/{}/holds", s.show))
                .header("cookie", format!("onsale_admit={token}"))
                .header("idempotency-key", "k")
                .json(&json!({"seat_ids": [s.seats[5]]})),
        )
        .await
        .problem(401, "admission_spent");
    // Nor is the refusal stored as the answer of the keys it came with.
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE response_status = 401")
            .fetch_one(&s.app.db.pool)
            .await
            .unwrap();
    assert_eq!(stored, 0);
    let hold_path = format!("/v1/holds/{}", order_body["hold_id"].as_str().unwrap());
    fan.get(&hold_path).await.problem(401, "admission_spent");
    confirm(&fan, &payment, "pm_card_ok", "c2")
        .await
        .problem(401, "admission_spent");
    confirm(&fan, &payment, "pm_card_declined", "c1")
        .await
        .problem(401, "admission_spent");

    // Except to hear its answer again: the replay still says the admission is spent.
    let replay = confirm(&fan, &payment, "pm_card_ok", "c1").await;
    replay.expect_status(200);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.header("onsale-admission-spent"), Some("true"));
    assert_eq!(replay.body, paid.body);

    // The account pages still work with the session; a new join buys again.
    fan.get(&format!("/v1/orders/{order_id}"))
        .await
        .expect_status(200);
    let (again, _) = device(&s, "ana").await;
    held(&s, &again, &[5]).await;
    assert_invariants(&s).await;

    // Remembered while a token could still carry it (two days: an admission token lives
    // one at most), forgotten after.
    let spent_after_purge = |age: &'static str| {
        let pool = &s.app.db.pool;
        async move {
            sqlx::query("UPDATE spent_admissions SET spent_at = now() - $1::interval")
                .bind(age)
                .execute(pool)
                .await
                .unwrap();
            origin::accounts::purge(pool, 60).await.unwrap();
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM spent_admissions")
                .fetch_one(pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(spent_after_purge("47 hours").await, 1);
    assert_eq!(spent_after_purge("49 hours").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admission_is_spent_when_a_webhook_settles_its_order() {
    let s = stadium_with(|_| {}).await;
    let (fan, token) = device(&s, "ana").await;
    let (order_body, payment) = ordered(&s, &fan, &[10]).await;
    // A slow payment: the confirmation answers `processing`, the webhook sells later.
    let pending = confirm(&fan, &payment, "pm_card_slow", "c1").await;
    pending.expect_status(200);
    assert_eq!(pending.header("onsale-admission-spent"), None);
    let order_id = order_body["order_id"].as_str().unwrap().to_owned();
    eventually(
        "the webhook to sell the order",
        Duration::from_secs(10),
        || async {
            let status = fan.get(&format!("/v1/orders/{order_id}")).await.json()["status"].clone();
            (status == "confirmed").then_some(())
        },
    )
    .await;
    let spent: String = sqlx::query_scalar("SELECT jti FROM spent_admissions")
        .fetch_one(&s.app.db.pool)
        .await
        .unwrap();
    assert_eq!(spent, jti(&token));
    let refused = s.hold(&fan, &[11]).await;
    refused.problem(401, "admission_spent");
    // The refusal tells the edge, which never saw the webhook, to spend it too.
    assert_eq!(refused.header("onsale-admission-spent"), Some("true"));
    // Its replay reports the spend it did not know of when first answered.
    let replay = confirm(&fan, &payment, "pm_card_slow", "c1").await;
    replay.expect_status(200);
    assert_eq!(replay.header("onsale-admission-spent"), Some("true"));
    assert_invariants(&s).await;
}
