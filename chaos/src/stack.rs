//! The processes of the run: the PostgreSQL server it is given, a Redis of its own (append-only
//! file, as `scripts/up` runs it), and two origins, two seat-map builders and two edges, each
//! the real binary with a configuration written from the committed one. Each origin reaches
//! PostgreSQL through a gate of its own, and so does each edge Redis, so one node's link can
//! be cut or stalled while the others carry on.

use crate::Options;
use onsale_tests::{free_port, keys, pg_addr, via, OwnRedis, TcpGate};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};
use toml::Value;

/// The run's database on the given server, created afresh each run.
const DATABASE: &str = "onsale_chaos";
/// How long a part may take to become ready after it starts.
const START_WITHIN: Duration = Duration::from_secs(60);

/// One running binary that the run can kill and start again as its supervisor would.
pub struct Node {
    /// `origin-1`, `edge-2`, ...
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<tokio::process::Child>,
    /// Where it answers `/readyz` and `/metrics`.
    pub ops: SocketAddr,
}

impl Node {
    fn new(
        name: &str,
        program: PathBuf,
        args: Vec<String>,
        run_dir: &Path,
        ops: SocketAddr,
    ) -> Node {
        Node {
            name: name.to_owned(),
            program,
            args,
            log: run_dir.join(format!("{name}.log")),
            child: None,
            ops,
        }
    }

    /// Starts the binary, its output appended to its log.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open a log file");
        let child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .env("ONSALE_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", self.program.display()));
        self.child = Some(child);
    }

    /// `kill -9`: the process dies mid-whatever, with no chance to drain or release anything.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("SIGKILL a part");
        }
    }

    /// Whether the process ended without the run killing it, and how.
    pub fn exited_unasked(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().expect("poll a part")
    }

    /// Whether `/readyz` answers 200 now.
    pub async fn ready(&self, http: &reqwest::Client) -> bool {
        let url = format!("http://{}/readyz", self.ops);
        matches!(http.get(url).send().await, Ok(reply) if reply.status() == 200)
    }

    /// Waits until `/readyz` answers 200, starting the process again whenever it exits (a
    /// restarted listener may find its port held a moment longer).
    pub async fn wait_ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + START_WITHIN;
        while !self.ready(http).await {
            if self.exited_unasked().is_some() {
                self.start();
            }
            assert!(
                Instant::now() < deadline,
                "{} was not ready within {START_WITHIN:?} (log: {})",
                self.name,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of its `/metrics`.
    pub async fn metrics(&self, http: &reqwest::Client) -> Option<String> {
        let reply = http
            .get(format!("http://{}/metrics", self.ops))
            .send()
            .await
            .ok()?;
        reply.text().await.ok()
    }
}

/// The sum of a metric's samples (every label set) in a Prometheus text page.
pub fn metric_sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Everything the run started, and the handles its faults pull.
pub struct Stack {
    /// The run's database.
    pub db: PgPool,
    /// The run's Redis.
    pub redis: OwnRedis,
    /// The origins, each behind both edges.
    pub origins: Vec<Node>,
    /// The seat-map builders: one leads, one stands by.
    pub builders: Vec<Node>,
    /// The edges fans reach.
    pub edges: Vec<Node>,
    /// The edges' public addresses: where fans connect.
    pub edge_public: Vec<SocketAddr>,
    /// Each origin's link to PostgreSQL.
    pub origin_postgres: Vec<TcpGate>,
    /// Each edge's link to Redis.
    pub edge_redis: Vec<TcpGate>,
    /// The show on sale.
    pub show: String,
    /// Its sections, for best-available holds.
    pub sections: Vec<String>,
    /// A session of an account the run's probes use.
    pub probe_session: String,
}

/// The part of a config file to change: a dotted path and its new value.
type Setting = (&'static str, Value);

impl Stack {
    /// Starts every part, each ready before this returns.
    pub async fn start(options: &Options, plan: &crate::Plan, http: &reqwest::Client) -> Stack {
        std::fs::create_dir_all(&options.run_dir).expect("create the run directory");
        let database_url = fresh_database(&options.database_url).await;
        let redis = OwnRedis::start().await;
        let redis_addr: SocketAddr = redis
            .url()
            .trim_start_matches("redis://")
            .parse()
            .expect("the gate's address");
        let demo: Value = read_toml(&options.chaos_dir.join("demo.toml"));
        let show = demo["stadium"]["event"]["show_id"]
            .as_str()
            .expect("the show's id")
            .to_owned();
        let sections = stadium_sections(&demo);

        let origin_addrs: Vec<SocketAddr> = (0..2).map(|_| free_port()).collect();
        let edge_public: Vec<SocketAddr> = (0..2).map(|_| free_port()).collect();
        let mut origin_postgres = Vec::new();
        let mut edge_redis = Vec::new();
        for _ in 0..2 {
            origin_postgres.push(TcpGate::start(pg_addr(&database_url)).await);
            edge_redis.push(TcpGate::start(redis_addr).await);
        }
        let config = |name: &str| options.config_dir.join(format!("{name}.toml"));
        let written = |name: &str| options.run_dir.join(format!("{name}.toml"));
        let bin = |name: &str| options.bin_dir.join(name);
        let path = |p: &Path| Value::String(p.display().to_string());
        let keys = keys();

        let mut origins = Vec::new();
        for (k, addr) in origin_addrs.iter().enumerate() {
            let name = format!("origin-{}", k + 1);
            write_config(
                &config("origin"),
                &written(&name),
                vec![
                    ("http.listen", addr.to_string().into()),
                    (
                        "database.url",
                        via(&database_url, origin_postgres[k].addr).into(),
                    ),
                    ("database.migrate_on_start", false.into()),
                    ("tokens.verify_keys", vec![path(&keys.verify_pem)].into()),
                    ("tickets.signing_key", path(&keys.signing_pem)),
                    // A webhook arrives through the edge, as the provider's would.
                    (
                        "payments.sandbox.webhook_url",
                        format!("http://{}/v1/webhooks/payments", edge_public[k]).into(),
                    ),
                    ("payments.reconcile_interval_s", 5.into()),
                    ("payments.stuck_after_s", 20.into()),
                    ("notifications.redis_url", redis.url().into()),
                    (
                        "notifications.sink_path",
                        path(&options.run_dir.join(format!("{name}-notifications.jsonl"))),
                    ),
                ],
            );
            let args = vec!["--config".into(), written(&name).display().to_string()];
            origins.push(Node::new(
                &name,
                bin("origin"),
                args,
                &options.run_dir,
                *addr,
            ));
        }
        let setup = |command: &[&str]| {
            let status = std::process::Command::new(bin("origin"))
                .args(["--config", &written("origin-1").display().to_string()])
                .args(command)
                .stdout(Stdio::null())
                .status()
                .expect("run the origin binary");
            assert!(status.success(), "origin {command:?} failed: {status}");
        };
        setup(&["migrate"]);
        let demo_file = options.chaos_dir.join("demo.toml").display().to_string();
        setup(&["seed", "--demo", &demo_file]);

        let mut builders = Vec::new();
        for k in 1..=2 {
            let name = format!("seatmap-builder-{k}");
            let listen = free_port();
            write_config(
                &config("seatmap-builder"),
                &written(&name),
                vec![
                    ("database.url", database_url.clone().into()),
                    ("redis.url", redis.url().into()),
                    ("build.interval_s", plan.build_interval_s.into()),
                    ("http.listen", listen.to_string().into()),
                ],
            );
            let args = vec![
                "--config".into(),
                written(&name).display().to_string(),
                "run".into(),
            ];
            builders.push(Node::new(
                &name,
                bin("seatmap-builder"),
                args,
                &options.run_dir,
                listen,
            ));
        }

        let mut edges = Vec::new();
        for (k, public) in edge_public.iter().enumerate() {
            let name = format!("edge-{}", k + 1);
            let admin = free_port();
            let mut shows = toml::map::Map::new();
            shows.insert(show.clone(), queue_settings(plan));
            write_config(
                &config("edge"),
                &written(&name),
                vec![
                    ("listen.public", public.to_string().into()),
                    ("listen.admin", admin.to_string().into()),
                    ("server.threads", 1.into()),
                    (
                        "origin.upstreams",
                        origin_addrs
                            .iter()
                            .map(|a| Value::String(a.to_string()))
                            .collect::<Vec<_>>()
                            .into(),
                    ),
                    (
                        "redis.url",
                        format!("redis://{}", edge_redis[k].addr).into(),
                    ),
                    ("tokens.signing_key", path(&keys.signing_pem)),
                    ("tokens.verify_keys", vec![path(&keys.verify_pem)].into()),
                    ("tokens.queue_keys", vec![path(&keys.queue_key)].into()),
                    // Fans arrive through a balancer on this machine that names each one's
                    // address, so per-address limits apply per fan.
                    (
                        "limits.trusted_proxies",
                        vec![Value::String("127.0.0.1/32".into())].into(),
                    ),
                    ("waiting_room.shows", Value::Table(shows)),
                ],
            );
            let args = vec!["--config".into(), written(&name).display().to_string()];
            edges.push(Node::new(
                &name,
                bin("edge-proxy"),
                args,
                &options.run_dir,
                admin,
            ));
        }

        let db = PgPool::connect(&database_url)
            .await
            .expect("connect to the run's database");
        let probe_session = onsale_tests::insert_account(&db).await.1;
        let mut stack = Stack {
            db,
            redis,
            origins,
            builders,
            edges,
            edge_public,
            origin_postgres,
            edge_redis,
            show,
            sections,
            probe_session,
        };
        for node in stack.nodes_mut() {
            node.start();
        }
        for node in stack.nodes_mut() {
            node.wait_ready(http).await;
        }
        stack
    }

    /// Every part.
    pub fn nodes_mut(&mut self) -> impl Iterator<Item = &mut Node> {
        self.origins
            .iter_mut()
            .chain(self.builders.iter_mut())
            .chain(self.edges.iter_mut())
    }

    /// Every part's process that ended without the run killing it (then started again).
    pub fn restart_exited(&mut self) -> Vec<String> {
        let mut exited = Vec::new();
        for node in self.nodes_mut() {
            if let Some(status) = node.exited_unasked() {
                exited.push(format!("{} exited by itself: {status}", node.name));
                node.start();
            }
        }
        exited
    }
}

/// Drops and creates the run's database on the server at `admin_url`; returns its URL.
async fn fresh_database(admin_url: &str) -> String {
    let mut admin = PgConnection::connect(admin_url)
        .await
        .expect("connect to the PostgreSQL server");
    for statement in [
        format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
        format!("CREATE DATABASE {DATABASE}"),
    ] {
        sqlx::query(&statement)
            .execute(&mut admin)
            .await
            .expect("create the run's database");
    }
    PgConnectOptions::from_str(admin_url)
        .expect("the PostgreSQL URL parses")
        .database(DATABASE)
        .to_url_lossy()
        .to_string()
}

/// The show's waiting-room settings: open since long ago, admitting at the plan's rate.
fn queue_settings(plan: &crate::Plan) -> Value {
    let mut settings = toml::map::Map::new();
    settings.insert("admit_per_minute".into(), plan.admit_per_minute.into());
    settings.insert("max_active".into(), 100_000.into());
    settings.insert("session_ttl_s".into(), 900.into());
    settings.insert("queue_opens_at".into(), "2026-01-01T00:00:00Z".into());
    settings.insert("sale_opens_at".into(), "2026-01-01T00:00:00Z".into());
    Value::Table(settings)
}

/// The section codes the seed gives the stadium: level then section, `101`, `102`, ...
fn stadium_sections(demo: &Value) -> Vec<String> {
    let count = |key: &str| demo["stadium"][key].as_integer().expect("a stadium size");
    (1..=count("levels"))
        .flat_map(|level| {
            (1..=count("sections_per_level")).map(move |section| format!("{level}{section:02}"))
        })
        .collect()
}

fn read_toml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    toml::from_str(&text).unwrap_or_else(|error| panic!("parse {}: {error}", path.display()))
}

/// Writes `from` to `to` with `settings` changed: the committed file, so the run exercises
/// the configuration that ships.
fn write_config(from: &Path, to: &Path, settings: Vec<Setting>) {
    let mut config = read_toml(from);
    for (dotted, value) in settings {
        let mut table = config.as_table_mut().expect("a TOML table");
        let mut keys = dotted.split('.').peekable();
        while let Some(key) = keys.next() {
            if keys.peek().is_none() {
                table.insert(key.to_owned(), value.clone());
                break;
            }
            table = table
                .entry(key)
                .or_insert_with(|| Value::Table(Default::default()))
                .as_table_mut()
                .unwrap_or_else(|| panic!("{dotted}: {key} is not a table"));
        }
    }
    std::fs::write(to, toml::to_string(&config).expect("TOML")).expect("write a config file");
}
