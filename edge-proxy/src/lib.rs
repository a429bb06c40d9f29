//! The onsale edge: a Pingora gateway in front of the origin pool.
//!
//! [`build_server`] assembles the Pingora server (public proxy + operations listener);
//! [`start`] runs it on its own `std::thread` (Pingora owns its runtimes and must not run
//! inside a tokio runtime) and returns once both listeners accept connections.

pub mod admin;
pub mod config;
pub mod metrics;
pub mod proxy;
pub mod respond;
pub mod routes;

use crate::config::Config;
use async_trait::async_trait;
use pingora::lb::LoadBalancer;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot build the origin pool: {0}")]
    Pool(String),
    #[error("the edge did not accept connections on {0} in time")]
    NotListening(SocketAddr),
    #[error("cannot spawn the edge thread: {0}")]
    Thread(std::io::Error),
}

pub fn build_server(config: &Config) -> Result<Server, StartError> {
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period_s),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout_s),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let upstreams = LoadBalancer::try_from_iter(config.origin.upstreams.iter().copied())
        .map_err(|e| StartError::Pool(e.to_string()))?;
    let metrics = Arc::new(metrics::Metrics::new());
    let edge = proxy::EdgeProxy {
        upstreams: Arc::new(upstreams),
        origin: config.origin.clone(),
        metrics: metrics.clone(),
    };
    let mut public =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, edge, "public");
    public.add_tcp(&config.listen.public.to_string());

    let admin_app = admin::AdminApp {
        origin: config.origin.clone(),
        metrics,
    };
    let mut admin = Service::new("admin".to_owned(), admin_app);
    admin.add_tcp(&config.listen.admin.to_string());
    admin.threads = Some(1);

    server.add_service(public);
    server.add_service(admin);
    Ok(server)
}

/// Shutdown on demand, for edges started in-process.
struct StopSignal(watch::Receiver<bool>);

#[async_trait]
impl ShutdownSignalWatch for StopSignal {
    async fn recv(&self) -> ShutdownSignal {
        let mut stop = self.0.clone();
        let _ = stop.wait_for(|stop| *stop).await;
        ShutdownSignal::FastShutdown
    }
}

/// An edge running on its own thread. [`RunningEdge::shutdown`] stops it and joins the thread.
pub struct RunningEdge {
    pub public: SocketAddr,
    pub admin: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl RunningEdge {
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

pub fn start(config: Config) -> Result<RunningEdge, StartError> {
    let server = build_server(&config)?;
    let (stop, stopped) = watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("edge".to_owned())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(StopSignal(stopped)),
            })
        })
        .map_err(StartError::Thread)?;
    let running = RunningEdge {
        public: config.listen.public,
        admin: config.listen.admin,
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
