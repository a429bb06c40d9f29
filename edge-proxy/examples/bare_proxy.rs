//! The floor under the edge's purchase path, for `bench/edge.sh`: Pingora proxying every
//! request to one upstream with keep-alive, one worker thread, and nothing else (no route
//! classification, limits, token check or metrics). The edge's gated rate divided by this
//! one is what the edge's own work costs; this one divided by nginx's is what Pingora costs.
//!
//! Usage: bare_proxy LISTEN_ADDR UPSTREAM_ADDR
//!
//! Pingora's own knobs, for `bench/pingora_knobs.sh`, from the environment (Pingora's
//! defaults where unset, but one worker thread): `BARE_THREADS`, `BARE_WORK_STEALING`
//! (true/false), `BARE_KEEPALIVE_POOL` (upstream connections kept, `upstream_keepalive_pool_size`)
//! and `BARE_TCP_RECV_BUF` (bytes, the upstream socket's receive buffer).

use async_trait::async_trait;
use pingora::prelude::HttpPeer;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;

struct BareProxy {
    upstream: String,
    tcp_recv_buf: Option<usize>,
}

/// The environment variable `name` parsed, if set.
fn knob<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={value} does not parse")),
        Err(_) => Ok(None),
    }
}

#[async_trait]
impl ProxyHttp for BareProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream.as_str(), false, String::new());
        peer.options.tcp_recv_buf = self.tcp_recv_buf;
        Ok(Box::new(peer))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream] = args.as_slice() else {
        return Err("usage: bare_proxy LISTEN_ADDR UPSTREAM_ADDR".into());
    };
    let defaults = ServerConf::default();
    let conf = ServerConf {
        threads: knob("BARE_THREADS")?.unwrap_or(1),
        work_stealing: knob("BARE_WORK_STEALING")?.unwrap_or(defaults.work_stealing),
        upstream_keepalive_pool_size: knob("BARE_KEEPALIVE_POOL")?
            .unwrap_or(defaults.upstream_keepalive_pool_size),
        ..defaults
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let proxy = BareProxy {
        upstream: upstream.clone(),
        tcp_recv_buf: knob("BARE_TCP_RECV_BUF")?,
    };
    let mut service = http_proxy_service(&server.configuration, proxy);
    service.add_tcp(listen);
    server.add_service(service);
    server.run_forever()
}
