//! The onsale edge: a Pingora gateway in front of the origin pool.
//!
//! [`build_server`] assembles the Pingora server (public proxy, operations listener and the
//! supervised background services); [`start`] runs it on its own `std::thread` (Pingora owns
//! its runtimes and must not run inside a tokio runtime) and returns once both listeners
//! accept connections.

mod accounts;
mod admin;
mod background;
pub mod config;
mod fastlane;
mod limits;
pub mod live;
mod metrics;
mod microcache;
mod offers;
pub mod openapi;
pub mod pool;
mod presale;
mod problem;
mod proxy;
mod representation;
mod respond;
mod routes;
mod shows;
pub mod snapshots;
pub mod tls;
pub mod waiting_room;
pub mod web;

use crate::config::Config;
use crate::live::{Live, ReloadError};
use crate::snapshots::SnapshotStore;
use async_trait::async_trait;
use onsale_contract::clock::Clock;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Why an edge did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration or its keys were refused.
    #[error(transparent)]
    Config(#[from] ReloadError),
    /// A listener did not come up.
    #[error("the edge did not accept connections on {0} in time")]
    NotListening(SocketAddr),
    /// The edge's thread could not be spawned.
    #[error("cannot spawn the edge thread: {0}")]
    Thread(std::io::Error),
    /// The HTTPS listener's certificate or settings were refused.
    #[error("TLS: {0}")]
    Tls(String),
}

/// What the public proxy, the admin listener and the background tasks share.
pub struct Shared {
    /// The running configuration.
    pub live: Arc<Live>,
    /// The edge's time: limits, caches, token expiry, the waiting room.
    pub clock: Clock,
    pub(crate) metrics: Arc<metrics::Metrics>,
    /// Seat maps and availability, in memory.
    pub snapshots: Arc<SnapshotStore>,
    pub(crate) pool: Arc<pool::Pool>,
    /// The origin pool's health.
    pub pool_keeper: Arc<pool::PoolKeeper>,
    pub(crate) catalog_cache: microcache::MicroCache,
    pub(crate) shows: shows::ShowDirectory,
    /// Whose sessions joins carry, as the origin said.
    pub(crate) sessions: accounts::Sessions,
    /// Which accounts may join a presale, as the origin says.
    pub(crate) presale: presale::PresaleGate,
    /// Which accounts have seats offered from a waitlist, as the origin says.
    pub(crate) offers: offers::OfferDesk,
    /// The waiting rooms.
    pub waiting_room: waiting_room::WaitingRoom,
    /// The HTTPS listener's certificate, when it has one.
    pub certificates: Option<Arc<tls::Certificates>>,
}

/// How an edge is built: from a config value, where to reload it from, and its clock.
pub struct Options {
    /// The starting configuration.
    pub config: Config,
    /// The file SIGHUP and file changes reload; `None`: no reloads.
    pub config_path: Option<PathBuf>,
    /// The system clock, or a manual one in tests.
    pub clock: Clock,
}

impl Options {
    /// `config` on the system clock, without reloads.
    pub fn new(config: Config) -> Self {
        Options {
            config,
            config_path: None,
            clock: Clock::system(),
        }
    }
}

/// The Pingora server of one edge, and what its parts share.
pub fn build_server(options: Options) -> Result<(Server, Arc<Shared>), StartError> {
    let Options {
        config,
        config_path,
        clock,
    } = options;
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period_s),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout_s),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let metrics = Arc::new(metrics::Metrics::new());
    let live = Arc::new(Live::new(
        config.clone(),
        config_path,
        clock.clone(),
        &metrics.registry,
    )?);
    let certificates = match &config.listen.tls {
        Some(tls) => Some(Arc::new(
            tls::Certificates::load(tls, metrics.tls_reloads.clone())
                .map_err(|e| StartError::Tls(e.to_string()))?,
        )),
        None => None,
    };
    let pool = Arc::new(pool::build(live.clone()));
    let pool_keeper = Arc::new(pool::PoolKeeper {
        pool: pool.clone(),
        live: live.clone(),
        healthy: metrics.upstream_healthy.clone(),
    });
    let shared = Arc::new(Shared {
        live,
        clock,
        metrics: metrics.clone(),
        snapshots: Arc::new(SnapshotStore::default()),
        pool,
        pool_keeper,
        catalog_cache: Default::default(),
        shows: Default::default(),
        sessions: accounts::Sessions::new(&metrics.registry),
        presale: presale::PresaleGate::new(&metrics.registry),
        offers: offers::OfferDesk::new(&metrics.registry),
        waiting_room: waiting_room::WaitingRoom::new(&metrics.registry),
        certificates,
    });

    let edge = proxy::EdgeProxy {
        shared: shared.clone(),
    };
    let proxy = pingora::proxy::http_proxy(&server.configuration, edge);
    let mut public = Service::new(
        "public".to_owned(),
        fastlane::EdgeApp::new(proxy, shared.clone()),
    );
    public.add_tcp(&config.listen.public.to_string());
    if let (Some(tls), Some(certificates)) = (&config.listen.tls, &shared.certificates) {
        let settings = certificates
            .settings()
            .map_err(|e| StartError::Tls(e.to_string()))?;
        public.add_tls_with_settings(&tls.address.to_string(), None, settings);
    }

    let mut admin = Service::new(
        "admin".to_owned(),
        admin::AdminApp {
            shared: shared.clone(),
        },
    );
    admin.add_tcp(&config.listen.admin.to_string());
    admin.threads = Some(1);

    server.add_service(public);
    server.add_service(admin);
    server.add_services(background::services(&shared));
    Ok((server, shared))
}

/// Shutdown on demand, for edges started in-process.
struct StopOnDemand(watch::Receiver<bool>);

#[async_trait]
impl ShutdownSignalWatch for StopOnDemand {
    async fn recv(&self) -> ShutdownSignal {
        let mut stop = self.0.clone();
        let _ = stop.wait_for(|stop| *stop).await;
        ShutdownSignal::FastShutdown
    }
}

/// An edge running on its own thread. [`RunningEdge::shutdown`] stops it and joins the thread.
pub struct RunningEdge {
    /// The public listener.
    pub public: SocketAddr,
    /// The operations listener.
    pub admin: SocketAddr,
    /// The running edge's state.
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl RunningEdge {
    /// Stops the edge at once and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningEdge {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Builds an edge and runs it on its own thread; returns once both listeners accept.
pub fn start(options: Options) -> Result<RunningEdge, StartError> {
    let listen = options.config.listen.clone();
    let (server, shared) = build_server(options)?;
    let (stop, stopped) = watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("edge".to_owned())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(StopOnDemand(stopped)),
            })
        })
        .map_err(StartError::Thread)?;
    let running = RunningEdge {
        public: listen.public,
        admin: listen.admin,
        shared,
        stop,
        thread: Some(thread),
    };
    for addr in [running.public, running.admin] {
        wait_accepting(addr, Duration::from_secs(10))?;
    }
    Ok(running)
}

/// Readiness of a Pingora listener is the port accepting a connection.
fn wait_accepting(addr: SocketAddr, within: Duration) -> Result<(), StartError> {
    let deadline = Instant::now() + within;
    let target = match addr.ip().is_unspecified() {
        true => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        false => addr,
    };
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&target, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(StartError::NotListening(addr))
}
