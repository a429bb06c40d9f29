//! Harness for the end-to-end suite.
//!
//! Every test gets its own PostgreSQL database (cloned from a template migrated once per
//! schema version) and its own Redis key prefix, so tests run in parallel against one server
//! pair. Servers are the real binaries' libraries started in-process on ephemeral ports:
//!
//! ```ignore
//! let db = harness::db().await;
//! let origin = harness::origin(&db).run().await;
//! let edge = harness::edge().upstream(origin.addr()).run();
//! let client = harness::client(edge.public);
//! ```
//!
//! `TEST_DATABASE_URL` (a role that may create databases) and `TEST_REDIS_URL` name the
//! servers; `scripts/test` starts private ones and sets both.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use uuid::Uuid;

pub use edge_proxy::RunningEdge;
pub use origin::RunningOrigin;

/// The organizer token every test origin is configured with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with scripts/test, or point {var} at a server")
    })
}

/// The repository's `config/` directory: tests start from the committed files, so a broken
/// default configuration fails the suite.
pub fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// Ports [`free_port`] hands out: below Linux's ephemeral range (32768 and up), so no
/// process's `bind` to port 0 and no outgoing connection is given one of them meanwhile.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port nobody listens on and no other test process holds, for servers that cannot
/// report the one they bound (Pingora binds its own listeners, `redis-server` takes a
/// `--port`). Between choosing the port and the server binding it, another process could
/// take it and answer in the server's place; so the port comes from outside the ephemeral
/// range, and a lock file held until this process exits keeps every test process, this
/// one included, off it.
pub fn free_port() -> SocketAddr {
    static HELD: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join("onsale-test-ports");
    std::fs::create_dir_all(&dir).expect("the test port lock directory");
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    // Processes start their search far apart, so they seldom meet a port another holds.
    let start = std::process::id().wrapping_mul(64);
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(n < span, "every test port in {TEST_PORTS:?} was tried");
        let port = TEST_PORTS.start + (start.wrapping_add(n) % span) as u16;
        let lock = std::fs::File::create(dir.join(port.to_string())).expect("a port lock file");
        if lock.try_lock().is_err() {
            continue;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // Held by a program outside the suite.
        if TcpListener::bind(addr).is_err() {
            continue;
        }
        HELD.lock().expect("held port locks").push(lock);
        return addr;
    }
}

/// A database of its own, dropped when the value is.
pub struct TestDb {
    /// The database's URL.
    pub url: String,
    /// A pool on it.
    pub pool: PgPool,
    name: String,
    admin_url: String,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside async; a short-lived thread with its own runtime does the cleanup.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                }
            });
        })
        .join();
    }
}

fn with_database(url: &str, database: &str) -> String {
    let options = PgConnectOptions::from_str(url).expect("TEST_DATABASE_URL parses");
    options.database(database).to_url_lossy().to_string()
}

/// The template's name changes with the migrations, so a schema change never reuses a stale one.
fn template_name() -> String {
    let mut hash = Sha256::new();
    for migration in origin::db::migrators(true).iter().flat_map(|m| m.iter()) {
        hash.update(&*migration.checksum);
    }
    let digest = hash.finalize();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("onsale_template_{hex}")
}

/// A fresh database of its own, cloned from the migrated template.
pub async fn db() -> TestDb {
    let admin_url = env("TEST_DATABASE_URL");
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("connect to TEST_DATABASE_URL");
    let template = template_name();
    // One test process migrates the template; the others wait on the lock, then clone.
    sqlx::query("SELECT pg_advisory_lock(7215001)")
        .execute(&mut admin)
        .await
        .expect("advisory lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await
            .expect("query pg_database");
    if !exists {
        sqlx::query(&format!("CREATE DATABASE \"{template}\""))
            .execute(&mut admin)
            .await
            .expect("create template");
        let mut conn = PgConnection::connect(&with_database(&admin_url, &template))
            .await
            .expect("connect to template");
        origin::db::migrate(&mut conn, true)
            .await
            .expect("migrate template");
        conn.close().await.expect("close template connection");
    }
    let name = format!("onsale_test_{}", Uuid::new_v4().simple());
    sqlx::query(&format!(
        "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
    ))
    .execute(&mut admin)
    .await
    .expect("clone template");
    sqlx::query("SELECT pg_advisory_unlock(7215001)")
        .execute(&mut admin)
        .await
        .expect("advisory unlock");
    let url = with_database(&admin_url, &name);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await
        .expect("connect to test database");
    TestDb {
        url,
        pool,
        name,
        admin_url,
    }
}

/// A Redis key prefix of this test's own.
pub fn redis_prefix() -> String {
    format!("test:{}:", Uuid::new_v4().simple())
}

/// The Redis every test shares, each under its own key prefix: the nodes of the Redis
/// Cluster in `TEST_REDIS_CLUSTER_URL` (comma-separated) when it is set, else the one server
/// of `TEST_REDIS_URL`.
pub fn redis_url() -> String {
    cluster_url().unwrap_or_else(|| env("TEST_REDIS_URL"))
}

fn cluster_url() -> Option<String> {
    std::env::var("TEST_REDIS_CLUSTER_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Whether [`redis_url`] is a Redis Cluster.
pub fn redis_cluster() -> bool {
    cluster_url().is_some()
}

/// Where [`redis_url`] is.
pub fn redis_target() -> onsale_contract::redis::Target {
    onsale_contract::redis::Target::new(&redis_url(), redis_cluster()).expect("a Redis URL")
}

/// The one server of `TEST_REDIS_URL`, for a test that puts a [`TcpGate`] in front of Redis:
/// a cluster's clients find its nodes through `CLUSTER SLOTS`, past any gate.
pub fn redis_server() -> SocketAddr {
    let url = env("TEST_REDIS_URL");
    url.trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .expect("TEST_REDIS_URL is redis://ip:port")
}

/// The Ed25519 pair of this test process: the origin verifies with its public half.
pub struct TestKeys {
    /// Signs admission and queue tokens like the edge.
    pub signer: onsale_contract::tokens::Signer,
    /// The Ed25519 private key file (PKCS#8).
    pub signing_pem: PathBuf,
    /// The public key file (SPKI).
    pub verify_pem: PathBuf,
    /// The edge's queue key file (base64 HS256 secret).
    pub queue_key: PathBuf,
}

/// The key pair of the test process, generated once.
pub fn keys() -> &'static TestKeys {
    static KEYS: std::sync::OnceLock<TestKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let (private, public) = onsale_contract::tokens::generate_pem_pair();
        let dir = std::env::temp_dir().join(format!("onsale-test-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("key directory");
        let verify_pem = dir.join("verify.pem");
        std::fs::write(&verify_pem, public).expect("write the public key");
        let signing_pem = dir.join("signing.pem");
        std::fs::write(&signing_pem, &private).expect("write the private key");
        let queue_key = dir.join("queue.key");
        std::fs::write(&queue_key, onsale_contract::tokens::generate_queue_key())
            .expect("write the queue key");
        TestKeys {
            queue_key,
            signing_pem,
            signer: onsale_contract::tokens::Signer::from_pem(&private, "onsale-edge")
                .expect("a fresh key"),
            verify_pem,
        }
    })
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// A valid admission token for `fan` to `show`, for ten minutes.
/// A queue token of the same join as `admission(fan, show)`: same fan, same show.
pub fn queue_token(fan: &str, show: &str) -> String {
    token(onsale_contract::tokens::TokenType::Queue, fan, show)
}

fn token(typ: onsale_contract::tokens::TokenType, fan: &str, show: &str) -> String {
    let queue_no = (typ == onsale_contract::tokens::TokenType::Queue).then_some(1);
    keys()
        .signer
        .issue(typ, fan, show, unix_now(), 600, queue_no)
}

/// An admission token for `fan` to `show`, signed with the test key.
pub fn admission(fan: &str, show: &str) -> String {
    token(onsale_contract::tokens::TokenType::Admit, fan, show)
}

/// The password of every account [`create_account`] makes, so tests can also sign in to
/// them through the real argon2 path.
pub const TEST_PASSWORD: &str = "test-password-0123";

/// The argon2id hash of [`TEST_PASSWORD`] with the committed `[accounts]` parameters,
/// computed once per test process.
fn test_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let config: origin::config::Config =
            onsale_contract::config::load(&config_dir().join("origin.toml"))
                .expect("config/origin.toml");
        let argon = origin::accounts::passwords::argon2(&config.accounts).expect("argon2 params");
        origin::accounts::passwords::hash(&argon, TEST_PASSWORD.as_bytes()).expect("a hash")
    })
}

/// A fan account with a live session, inserted straight into `db` (no sign-up, no sign-in,
/// no argon2 work per account), so tests can make many accounts cheaply. Its email is
/// unique (`fan-<id>@test.onsale.test`), its password [`TEST_PASSWORD`]. Returns (account
/// id, session token); the account id is the `fan` of admission tokens for it
/// (`admission(&id.to_string(), show)`). Tests of sign-in itself go through
/// `POST /v1/sessions`.
pub async fn create_account(db: &TestDb) -> (Uuid, String) {
    insert_account(&db.pool).await
}

/// [`create_account`] in the database `pool` is on.
pub async fn insert_account(pool: &PgPool) -> (Uuid, String) {
    let account = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO accounts (id, email, email_key, display_name, password_hash, role)
         VALUES ($1, $2, $2, 'Test Fan', $3, 'fan')",
    )
    .bind(account)
    .bind(format!("fan-{}@test.onsale.test", account.simple()))
    .bind(test_password_hash())
    .execute(pool)
    .await
    .expect("insert an account");
    (account, insert_session(pool, account).await)
}

/// A new live session (a day long) of `account`, inserted straight into `db`; returns its
/// token (`ses_...`), to send as `Authorization: Bearer` or the `onsale_session` cookie.
pub async fn create_session(db: &TestDb, account: Uuid) -> String {
    insert_session(&db.pool, account).await
}

/// A scanner the organizer makes through the origin at `origin` for `show`'s `gate`, signed
/// in with the password it was given: its session token.
pub async fn scanner_session(origin: SocketAddr, show: &str, gate: &str) -> String {
    let email = format!("door-{}@staff.onsale.test", Uuid::new_v4().simple());
    let body = serde_json::json!({ "email": email, "display_name": "Door", "gate": gate });
    let made = client(origin)
        .bearer(ADMIN_TOKEN)
        .post(&format!("/v1/admin/shows/{show}/staff"), &body)
        .await;
    assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
    let password = made.json()["password"]
        .as_str()
        .expect("a password")
        .to_owned();
    let signed_in = client(origin)
        .post(
            "/v1/sessions",
            &serde_json::json!({ "email": email, "password": password }),
        )
        .await;
    assert_eq!(
        signed_in.status,
        201,
        "{}",
        String::from_utf8_lossy(&signed_in.body)
    );
    signed_in.json()["session_token"]
        .as_str()
        .expect("a session")
        .to_owned()
}

/// A gate's scanner, made and signed in at the origin `origin` for `show`'s `gate`.
pub struct Door {
    session: String,
    scanner: Client,
}

impl Door {
    /// A new scanner for `show`'s `gate`.
    pub async fn open(origin: SocketAddr, show: &str, gate: &str) -> Door {
        let session = scanner_session(origin, show, gate).await;
        Door {
            scanner: client(origin).bearer(&session),
            session,
        }
    }

    /// The scanner's session token, for the gate's routes through the edge.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The scanner's client, for the gate's other routes.
    pub fn scanner(&self) -> &Client {
        &self.scanner
    }

    /// The gate's answer for `payload` (`POST /v1/tickets/verify`, which must answer 200).
    pub async fn verify(&self, payload: &str) -> Value {
        let reply = self
            .scanner
            .post(
                "/v1/tickets/verify",
                &serde_json::json!({ "payload": payload }),
            )
            .await;
        reply.expect_status(200);
        reply.json()
    }
}

async fn insert_session(pool: &PgPool, account: Uuid) -> String {
    use base64::Engine;
    let token = format!(
        "{}{}",
        onsale_contract::tokens::SESSION_PREFIX,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    sqlx::query(
        "INSERT INTO sessions (id, account_id, token_hash, expires_at)
         VALUES ($1, $2, $3, now() + interval '1 day')",
    )
    .bind(Uuid::now_v7())
    .bind(account)
    .bind(Sha256::digest(token.as_bytes()).to_vec())
    .execute(pool)
    .await
    .expect("insert a session");
    token
}

/// The committed origin configuration pointed at `db`, with quick workers and test keys.
pub fn origin_config(db: &TestDb) -> origin::config::Config {
    let mut config: origin::config::Config =
        onsale_contract::config::load(&config_dir().join("origin.toml"))
            .expect("config/origin.toml");
    config.http.listen = "127.0.0.1:0".parse().expect("address");
    config.database.url = onsale_contract::config::Secret::new(db.url.clone());
    config.database.max_connections = 16;
    // Tests run many origins on a loaded machine: a request queued for a connection a while
    // is slow, not wrong. The committed two seconds are a production budget, not a truth.
    config.database.acquire_timeout_ms = 15_000;
    config.database.migrate_on_start = false;
    config.admin.token = onsale_contract::config::Secret::new(ADMIN_TOKEN);
    config.tokens.verify_keys = vec![keys().verify_pem.clone()];
    config.tickets.signing_key = keys().signing_pem.clone();
    // Quick workers, so asynchronous outcomes arrive within a test's patience.
    config.payments.refund_poll_ms = 50;
    config.payments.refund_retry_base_ms = 20;
    let sandbox = config
        .payments
        .sandbox
        .as_mut()
        .expect("config/origin.toml configures the sandbox");
    sandbox.poll_ms = 20;
    // Webhooks go straight to the origin under test (its edge starts after it).
    sandbox.webhook_url = None;
    sandbox.retry_base_ms = 20;
    sandbox.slow_settle_ms = 300;
    config.notifications.relay = false;
    config.notifications.consumer = false;
    config.notifications.redis_url = onsale_contract::config::Secret::new(redis_url());
    config.notifications.redis_cluster = redis_cluster();
    config.notifications.relay_interval_ms = 20;
    config.notifications.retry_base_ms = 20;
    // Plain HTTP, like scripts/up's stack.
    config.accounts.cookie_secure = false;
    config
}

/// Warnings and errors of the servers under test go to the test's output (`RUST_LOG` for
/// more), so a failing test shows what its servers complained about.
fn log_warnings() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,pingora=error".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Builds an in-process origin for a test.
pub struct OriginBuilder {
    config: origin::config::Config,
    clock: onsale_contract::clock::Clock,
}

/// An origin on `db`, configured like `origin_config`.
pub fn origin(db: &TestDb) -> OriginBuilder {
    OriginBuilder {
        config: origin_config(db),
        clock: onsale_contract::clock::Clock::system(),
    }
}

impl OriginBuilder {
    /// Changes the configuration before start.
    pub fn config(mut self, change: impl FnOnce(&mut origin::config::Config)) -> Self {
        change(&mut self.config);
        self
    }

    /// Checks rotating QR codes against `clock` instead of the system's.
    pub fn clock(mut self, clock: onsale_contract::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Starts the origin on an ephemeral port.
    pub async fn run(self) -> RunningOrigin {
        log_warnings();
        origin::start_on_clock(self.config, self.clock)
            .await
            .expect("origin starts")
    }
}

/// Builds an in-process edge for a test.
pub struct EdgeBuilder {
    config: edge_proxy::config::Config,
    config_path: Option<PathBuf>,
    clock: onsale_contract::clock::Clock,
}

/// An edge on free ports with this process's test key, a Redis prefix of its own, no
/// upstream yet, and per-IP limits high enough that only tests about limits meet them.
pub fn edge() -> EdgeBuilder {
    let mut config: edge_proxy::config::Config =
        onsale_contract::config::load(&config_dir().join("edge.toml")).expect("config/edge.toml");
    config.listen.public = free_port();
    config.listen.admin = free_port();
    config.server.threads = 1;
    config.origin.upstreams.clear();
    config.origin.health_check_interval_ms = 100;
    config.redis.url = onsale_contract::config::Secret::new(redis_url());
    config.redis.cluster = redis_cluster();
    config.redis.key_prefix = redis_prefix();
    config.snapshots.poll_interval_ms = 200;
    config.tokens.signing_key = keys().signing_pem.clone();
    config.tokens.verify_keys = vec![keys().verify_pem.clone()];
    config.tokens.queue_keys = vec![keys().queue_key.clone()];
    config.waiting_room.shows.clear();
    // Generous: a loaded test machine can stall a runtime for longer than production's.
    config.waiting_room.redis_timeout_ms = 5_000;
    config.accounts.lookup_timeout_ms = 10_000;
    config.limits.per_ip = edge_proxy::config::Quota {
        per_minute: 1_000_000,
        burst: 100_000,
    };
    EdgeBuilder {
        config,
        config_path: None,
        clock: onsale_contract::clock::Clock::system(),
    }
}

impl EdgeBuilder {
    /// Proxies to the origin at `addr`.
    pub fn upstream(mut self, addr: SocketAddr) -> Self {
        self.config.origin.upstreams.push(addr);
        self
    }

    /// Changes the configuration before start.
    pub fn config(mut self, change: impl FnOnce(&mut edge_proxy::config::Config)) -> Self {
        change(&mut self.config);
        self
    }

    /// Runs the edge on `clock` (manual in time-driven tests).
    pub fn clock(mut self, clock: onsale_contract::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Writes the config to `path` and reloads from it (SIGHUP, file changes).
    pub fn live_file(mut self, path: &std::path::Path) -> Self {
        write_edge_config(path, &self.config);
        self.config_path = Some(path.to_owned());
        self
    }

    /// Starts the edge on ephemeral ports; returns once both accept connections.
    pub fn run(self) -> RunningEdge {
        edge_proxy::start(edge_proxy::Options {
            config: self.config,
            config_path: self.config_path,
            clock: self.clock,
        })
        .expect("edge starts")
    }
}

/// Writes an edge config as TOML, secrets in the clear (the file is the test's own).
pub fn write_edge_config(path: &std::path::Path, config: &edge_proxy::config::Config) {
    let mut value = toml::Value::try_from(config).expect("config serializes");
    value["redis"]["url"] = toml::Value::String(config.redis.url.expose().to_owned());
    if let Some(token) = &config.admin.token {
        value["admin"]["token"] = toml::Value::String(token.expose().to_owned());
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, toml::to_string(&value).expect("TOML")).expect("write config");
    std::fs::rename(&tmp, path).expect("move config into place");
}

/// A JSON-over-HTTP client bound to one server.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    bearer: Option<String>,
}

/// An HTTP client of the server at `addr`.
pub fn client(addr: SocketAddr) -> Client {
    Client {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        bearer: None,
    }
}

/// A response with its body read and, when JSON, parsed.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body parsed as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the status, showing the body when it differs.
    pub fn expect_status(&self, status: u16) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem with this status and code, and returns its body.
    pub fn problem(&self, status: u16, code: &str) -> Value {
        self.expect_status(status);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["status"], status);
        body
    }
}

impl Client {
    /// Sends `Authorization: Bearer <token>` from now on.
    pub fn bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }

    /// Sends `Cookie: <cookie>` on every request from now on (a session cookie next to an
    /// admission bearer, as a browser would).
    pub fn cookie(mut self, cookie: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::COOKIE,
            cookie.parse().expect("a valid Cookie header"),
        );
        self.http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("an HTTP client");
        self
    }

    /// Sends `method path` with an optional JSON body.
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }

    /// Sends a prepared request and reads the whole reply.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request reaches the server");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("read body").to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A request builder for this server, with the client's bearer token if it has one.
    pub fn raw(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.bearer {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// A POST with an `Idempotency-Key`.
    pub async fn post_idempotent(&self, path: &str, key: &str, body: &Value) -> Reply {
        self.send(
            self.raw(Method::POST, path)
                .header("idempotency-key", key)
                .json(body),
        )
        .await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.request(Method::POST, path, Some(body)).await
    }
}

/// The whole stack for one test: its own database, an origin and an edge in front of it.
pub struct TestApp {
    /// The test's own database.
    pub db: TestDb,
    /// The origin on it.
    pub origin: RunningOrigin,
    /// The edge in front of the origin.
    pub edge: RunningEdge,
}

impl TestApp {
    /// A database, an origin and an edge in front of it.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// The stack with the origin's configuration changed first (short hold TTLs, limits).
    pub async fn spawn_with(change: impl FnOnce(&mut origin::config::Config)) -> TestApp {
        let db = db().await;
        let origin = origin(&db).config(change).run().await;
        let edge = edge().upstream(origin.addr()).run();
        TestApp { db, origin, edge }
    }

    /// The Redis key prefix the edge reads snapshots under.
    pub fn prefix(&self) -> String {
        self.edge.shared.live.load().config.redis.key_prefix.clone()
    }

    /// A fan's view: through the edge.
    pub fn fan(&self) -> Client {
        client(self.edge.public)
    }

    /// The organizer API on the origin, with the admin token.
    pub fn organizer(&self) -> Client {
        client(self.origin.addr()).bearer(ADMIN_TOKEN)
    }
}

/// A small venue layout: `sections` sections of `rows` x `seats` seats, tier per section;
/// seat `n` of row `r` at (n, r), the stage in front of the middle of the rows.
pub fn venue_body(
    name: &str,
    city: &str,
    sections: &[(&str, &str)],
    rows: u32,
    seats: u32,
) -> Value {
    let sections: Vec<Value> = sections
        .iter()
        .map(|(id, tier)| {
            let rows: Vec<Value> = (1..=rows)
                .map(|row| {
                    let seats: Vec<Value> = (1..=seats)
                        .map(|n| serde_json::json!({"number": n, "x": n as f32, "y": row as f32}))
                        .collect();
                    serde_json::json!({"row": row.to_string(), "seats": seats})
                })
                .collect();
            serde_json::json!({"section_id": id, "name": format!("Section {id}"), "price_tier": tier, "rows": rows})
        })
        .collect();
    let stage = serde_json::json!({"x": (seats as f32 + 1.0) / 2.0, "y": 0.0});
    serde_json::json!({"name": name, "city": city, "sections": sections, "stage": stage})
}

/// Creates a venue, an event and one show on sale now through the organizer API; returns
/// (event id, show id). Sections A (tier T1) and B (T2), 2 rows of 5 seats each.
pub async fn create_catalog(
    organizer: &Client,
    event_name: &str,
    performer: &str,
    city: &str,
    starts_at: &str,
) -> (String, String) {
    let layout = venue_body(
        &format!("{city} Hall"),
        city,
        &[("A", "T1"), ("B", "T2")],
        2,
        5,
    );
    create_show(
        organizer,
        layout,
        event_name,
        performer,
        starts_at,
        "2020-01-01T00:00:00Z",
    )
    .await
}

/// Creates the venue `layout`, an event there and one show pricing the layout's tiers
/// (T1 9000, T2 4000, any other 2500 cents); returns (event id, show id).
pub async fn create_show(
    organizer: &Client,
    layout: Value,
    event_name: &str,
    performer: &str,
    starts_at: &str,
    on_sale_at: &str,
) -> (String, String) {
    let venue = organizer.post("/v1/admin/venues", &layout).await;
    assert_eq!(
        venue.status,
        201,
        "{}",
        String::from_utf8_lossy(&venue.body)
    );
    let venue_id = venue.json()["venue_id"]
        .as_str()
        .expect("venue id")
        .to_owned();
    let event = organizer
        .post(
            "/v1/admin/events",
            &serde_json::json!({"venue_id": venue_id, "name": event_name, "performer": performer}),
        )
        .await;
    assert_eq!(
        event.status,
        201,
        "{}",
        String::from_utf8_lossy(&event.body)
    );
    let event_id = event.json()["id"].as_str().expect("event id").to_owned();
    let mut tiers: Vec<&str> = layout["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .filter_map(|s| s["price_tier"].as_str())
        .collect();
    tiers.sort_unstable();
    tiers.dedup();
    let tiers: Vec<Value> = tiers
        .iter()
        .map(|tier| {
            let price = match *tier {
                "T1" => 9000,
                "T2" => 4000,
                _ => 2500,
            };
            serde_json::json!({"tier": tier, "name": format!("Tier {tier}"), "price_cents": price})
        })
        .collect();
    let show = organizer
        .post(
            &format!("/v1/admin/events/{event_id}/shows"),
            &serde_json::json!({"starts_at": starts_at, "on_sale_at": on_sale_at, "currency": "EUR", "price_tiers": tiers}),
        )
        .await;
    assert_eq!(show.status, 201, "{}", String::from_utf8_lossy(&show.body));
    (
        event_id,
        show.json()["id"].as_str().expect("show id").to_owned(),
    )
}

/// Polls `check` until it yields a value or `within` passes, for effects that land after the
/// response that caused them (access-log metrics, background workers). Panics with `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The committed builder configuration pointed at `db`, the test Redis under `prefix`, and an
/// ephemeral HTTP port.
pub fn builder_config(db: &TestDb, prefix: &str) -> seatmap_builder::config::Config {
    let mut config: seatmap_builder::config::Config =
        onsale_contract::config::load(&config_dir().join("seatmap-builder.toml"))
            .expect("config/seatmap-builder.toml");
    config.database.url = onsale_contract::config::Secret::new(db.url.clone());
    config.redis.url = onsale_contract::config::Secret::new(redis_url());
    config.redis.cluster = redis_cluster();
    config.redis.key_prefix = prefix.to_owned();
    config.http.listen = "127.0.0.1:0".parse().expect("address");
    config
}

/// A connection to the test Redis.
pub async fn redis() -> onsale_contract::redis::Connection {
    redis_target()
        .connect(std::time::Duration::from_secs(10))
        .await
        .expect("connect to the test Redis")
}

/// Writes a snapshot of `show` straight into the test Redis under `prefix`, as the builder
/// publishes one (without the announcement): built at `now_ms`, next build 30 s later,
/// stand-in compressed bytes.
pub async fn put_snapshot(
    prefix: &str,
    show: &str,
    kind: onsale_contract::snapshot::Kind,
    etag: &str,
    identity: &[u8],
    now_ms: i64,
) {
    use onsale_contract::snapshot::{self, field};
    let key = snapshot::key(prefix, show, kind);
    let now = now_ms.to_string();
    let next = (now_ms + 30_000).to_string();
    let fields: [(&str, &[u8]); 8] = [
        (field::ETAG, etag.as_bytes()),
        (field::BUILT_AT_MS, now.as_bytes()),
        (field::CHECKED_AT_MS, now.as_bytes()),
        (field::NEXT_BUILD_AT_MS, next.as_bytes()),
        (field::LAYOUT_VERSION, b"1"),
        (field::IDENTITY, identity),
        (field::GZIP, b"gz"),
        (field::BROTLI, b"br"),
    ];
    redis::cmd("HSET")
        .arg(&key)
        .arg(&fields[..])
        .query_async::<()>(&mut redis().await)
        .await
        .expect("write a snapshot");
}

/// A TCP forwarder between a client and a real server that a test can cut and restore, to
/// take a dependency away mid-run (the server itself keeps running for other tests), pause
/// (connections stay open but nothing moves: a server that stalls), or point at a server that
/// came back elsewhere.
pub struct TcpGate {
    /// Where clients connect: the gate's own address.
    pub addr: SocketAddr,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    paused: tokio::sync::watch::Sender<bool>,
    target: std::sync::Arc<std::sync::Mutex<SocketAddr>>,
    generation: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpGate {
    /// A gate in front of `target`, open.
    pub async fn start(target: SocketAddr) -> TcpGate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gate");
        let addr = listener.local_addr().expect("gate address");
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let target = std::sync::Arc::new(std::sync::Mutex::new(target));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (paused, _) = tokio::sync::watch::channel(false);
        let accept_paused = paused.clone();
        let accept_open = open.clone();
        let accept_target = target.clone();
        let accept_generation = generation.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if !accept_open.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close at once
                }
                let mut cut = accept_generation.subscribe();
                let mut paused = accept_paused.subscribe();
                let target = *accept_target.lock().expect("gate target");
                tokio::spawn(async move {
                    let forward = async {
                        // A paused gate holds a new connection unanswered too.
                        if paused.wait_for(|paused| !*paused).await.is_err() {
                            return;
                        }
                        let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                            return;
                        };
                        let (client_read, client_write) = inbound.into_split();
                        let (server_read, server_write) = outbound.into_split();
                        tokio::join!(
                            pump(client_read, server_write, paused.clone()),
                            pump(server_read, client_write, paused.clone())
                        );
                    };
                    tokio::select! {
                        _ = forward => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        TcpGate {
            addr,
            open,
            paused,
            target,
            generation,
            task,
        }
    }

    /// Closes every forwarded connection and refuses new ones until [`TcpGate::restore`].
    pub fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Stops moving bytes either way, on open connections and new ones alike, which stay
    /// open until [`TcpGate::resume`]: a server that stalls rather than one that is gone.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Moves the bytes held since [`TcpGate::pause`], and all later ones.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// Forwards connections to `target` from now on; those open are closed.
    pub fn retarget(&self, target: SocketAddr) {
        *self.target.lock().expect("gate target") = target;
        self.generation.send_modify(|g| *g += 1);
    }
}

/// Copies `from` to `to` until either ends, holding bytes while the gate is paused.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0; 16 * 1024];
    while let Ok(read @ 1..) = from.read(&mut buffer).await {
        if paused.wait_for(|paused| !*paused).await.is_err()
            || to.write_all(&buffer[..read]).await.is_err()
        {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl Drop for TcpGate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Redis server of one test's own, persisting as `scripts/up` runs Redis (append-only file,
/// `appendfsync everysec`) in a directory of its own. Clients reach it through a [`TcpGate`],
/// so they keep one address while the test stops, crashes and starts the server again (each
/// start on a fresh port).
pub struct OwnRedis {
    gate: TcpGate,
    dir: tempfile::TempDir,
    server: std::process::Child,
    port: u16,
}

impl OwnRedis {
    /// A running server with no data.
    pub async fn start() -> OwnRedis {
        let dir = tempfile::tempdir().expect("a directory for Redis");
        let (server, port) = Self::spawn(dir.path()).await;
        let gate = TcpGate::start(SocketAddr::from(([127, 0, 0, 1], port))).await;
        OwnRedis {
            gate,
            dir,
            server,
            port,
        }
    }

    /// The server's URL, through the gate.
    pub fn url(&self) -> String {
        format!("redis://{}", self.gate.addr)
    }

    /// Stops the server as an operator does (`SHUTDOWN`: the append-only file written and
    /// synced), then starts it again from its files.
    pub async fn restart(&mut self) {
        self.shut_down().await;
        self.start_again().await;
    }

    /// Stops the server cleanly, copies its files and starts it again: the state a crash
    /// within the next second may fall back to (`appendfsync everysec`).
    pub async fn checkpoint(&mut self) -> tempfile::TempDir {
        self.shut_down().await;
        let copy = tempfile::tempdir().expect("a directory for the copy");
        copy_dir(self.dir.path(), copy.path());
        self.start_again().await;
        copy
    }

    /// Kills the server (`SIGKILL`) and starts it again from `checkpoint`'s files: a crash
    /// that lost every write since the checkpoint.
    pub async fn crash_back_to(&mut self, checkpoint: &Path) {
        self.server.kill().expect("kill Redis");
        self.server.wait().expect("Redis exits");
        std::fs::remove_dir_all(self.dir.path().join("appendonlydir")).expect("remove files");
        copy_dir(checkpoint, self.dir.path());
        self.start_again().await;
    }

    async fn shut_down(&mut self) {
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))
            .expect("Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to Redis");
        // The server closes the connection instead of answering.
        let _ = redis::cmd("SHUTDOWN").query_async::<()>(&mut conn).await;
        let status = self.server.wait().expect("Redis exits");
        assert!(status.success(), "Redis shut down with {status}");
    }

    async fn start_again(&mut self) {
        let (server, port) = Self::spawn(self.dir.path()).await;
        self.server = server;
        self.port = port;
        self.gate.retarget(SocketAddr::from(([127, 0, 0, 1], port)));
    }

    async fn spawn(dir: &Path) -> (std::process::Child, u16) {
        let port = free_port().port();
        let server = std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
            .arg("--dir")
            .arg(dir)
            .args(["--logfile", "redis.log"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH (scripts/test installs it)");
        let url = format!("redis://127.0.0.1:{port}");
        eventually(
            "Redis to answer",
            std::time::Duration::from_secs(10),
            || {
                let url = url.clone();
                async move {
                    let mut conn = redis::Client::open(url)
                        .ok()?
                        .get_multiplexed_async_connection()
                        .await
                        .ok()?;
                    // Loading the files answers LOADING until done.
                    redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .ok()
                }
            },
        )
        .await;
        (server, port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read a Redis directory") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            std::fs::create_dir_all(&target).expect("create a directory");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// The host:port a PostgreSQL URL points at.
pub fn pg_addr(url: &str) -> SocketAddr {
    let options = PgConnectOptions::from_str(url).expect("URL parses");
    let host = match options.get_host() {
        "localhost" => "127.0.0.1",
        host => host,
    };
    format!("{host}:{}", options.get_port())
        .parse()
        .expect("PostgreSQL at an IP address")
}

/// `url` with its host and port replaced by `addr`.
pub fn via(url: &str, addr: SocketAddr) -> String {
    let options = PgConnectOptions::from_str(url).expect("URL parses");
    options
        .host(&addr.ip().to_string())
        .port(addr.port())
        .to_url_lossy()
        .to_string()
}

/// A [`TestApp`] with one small show on sale (sections A and B, 2 rows of 5 seats each) and
/// its seat ids in layout order, plus direct-SQL helpers to put seats in any state.
pub struct ShowFixture {
    /// The stack the show lives on.
    pub app: TestApp,
    /// The show's id.
    pub show: Uuid,
    /// Its seats, in layout order.
    pub seats: Vec<i64>,
}

impl ShowFixture {
    /// A stack with one on-sale show.
    pub async fn spawn() -> ShowFixture {
        let app = TestApp::spawn().await;
        let (_, show) = create_catalog(
            &app.organizer(),
            "Jazz",
            "Blue Notes",
            "Lyon",
            "2099-03-10T20:00:00Z",
        )
        .await;
        let show = Uuid::parse_str(&show).expect("show id");
        let seats = sqlx::query_scalar(
            "SELECT seat_id FROM seat_inventory WHERE show_id = $1 ORDER BY layout_idx",
        )
        .bind(show)
        .fetch_all(&app.db.pool)
        .await
        .expect("seats");
        ShowFixture { app, show, seats }
    }

    /// The test database's pool.
    pub fn pool(&self) -> &PgPool {
        &self.app.db.pool
    }

    /// An active hold row for seat `seat` (index in layout order) expiring `expires_in` (a
    /// Postgres interval) from now; the seat's row is left as it is.
    pub async fn hold_row(&self, seat: usize, expires_in: &str) -> Uuid {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO holds (id, show_id, fan_id, status, seat_count, total_cents, currency, expires_at, seat_ids)
             VALUES ($1, $2, 'fan', 'active', 1, 100, 'EUR', now() + $3::interval, ARRAY[$4::int8])",
        )
        .bind(id)
        .bind(self.show)
        .bind(expires_in)
        .bind(self.seats[seat])
        .execute(self.pool())
        .await
        .expect("insert hold");
        id
    }

    /// Seat `seat` (index in layout order) held until `expires_in` from now.
    pub async fn hold_seat(&self, seat: usize, expires_in: &str) -> Uuid {
        let hold = self.hold_row(seat, expires_in).await;
        sqlx::query(
            "UPDATE seat_inventory SET status = 'held', hold_id = $3, hold_expires_at = now() + $4::interval
             WHERE show_id = $1 AND seat_id = $2",
        )
        .bind(self.show)
        .bind(self.seats[seat])
        .bind(hold)
        .bind(expires_in)
        .execute(self.pool())
        .await
        .expect("hold seat");
        hold
    }

    /// A confirmed order (with its converted hold), selling no seat yet.
    pub async fn order_row(&self) -> Uuid {
        let hold = self.hold_row(0, "0 seconds").await;
        sqlx::query("UPDATE holds SET status = 'converted', ended_at = now() WHERE id = $1")
            .bind(hold)
            .execute(self.pool())
            .await
            .expect("convert hold");
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO orders (id, show_id, hold_id, fan_id, status, total_cents, currency, expires_at)
             VALUES ($1, $2, $3, 'fan', 'confirmed', 100, 'EUR', now())",
        )
        .bind(id)
        .bind(self.show)
        .bind(hold)
        .execute(self.pool())
        .await
        .expect("insert order");
        id
    }

    /// Seat `seat` (index in layout order) sold to a new order.
    pub async fn sell_seat(&self, seat: usize) -> Uuid {
        let order = self.order_row().await;
        sqlx::query("UPDATE seat_inventory SET status = 'sold', order_id = $3 WHERE show_id = $1 AND seat_id = $2")
            .bind(self.show)
            .bind(self.seats[seat])
            .bind(order)
            .execute(self.pool())
            .await
            .expect("sell seat");
        order
    }
}
