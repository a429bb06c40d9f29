//! `--check` against the real binary.

use onsale_contract::testing::{
    assert_check_names_unknown_key, assert_check_prints_effective_config,
};

const BINARY: &str = env!("CARGO_BIN_EXE_edge-proxy");
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/edge.toml");

#[test]
fn check_rejects_an_unknown_key_naming_it() {
    assert_check_names_unknown_key(BINARY, CONFIG, "origin", "upstream");
}

#[test]
fn check_accepts_the_committed_file() {
    assert_check_prints_effective_config(BINARY, CONFIG, "origin");
}

/// A GET on the admin listener, as raw HTTP/1.1: the body, or `None` while it is not up.
fn admin_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

/// A free port from a block of this process's own below the ephemeral range: each test
/// runs in its own process, and ports the OS hands out for port 0 can repeat across them.
fn free_port() -> std::net::SocketAddr {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 10_000 + (std::process::id() % 1_000) as u16 * 20;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(offset < 20, "no free port in this process's block");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], base + offset));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}

/// An edge binary on free ports with fresh keys, its config written from the committed
/// file through `edit`; killed when dropped.
struct EdgeProcess {
    child: std::process::Child,
    admin: std::net::SocketAddr,
    public: std::net::SocketAddr,
    config: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl EdgeProcess {
    fn start(name: &str, edit: &dyn Fn(String) -> String) -> EdgeProcess {
        let dir = std::env::temp_dir().join(format!("onsale-edge-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let (private_pem, public_pem) = onsale_contract::tokens::generate_pem_pair();
        let key = dir.join("verify.pem");
        std::fs::write(&key, public_pem).expect("write the verify key");
        let signing = dir.join("signing.pem");
        std::fs::write(&signing, private_pem).expect("write the signing key");
        let queue = dir.join("queue.key");
        std::fs::write(&queue, onsale_contract::tokens::generate_queue_key())
            .expect("write the queue key");
        let (public, admin) = (free_port(), free_port());
        let committed = std::fs::read_to_string(CONFIG)
            .expect("the committed config")
            .replace("0.0.0.0:8080", &public.to_string())
            .replace("127.0.0.1:9180", &admin.to_string())
            .replace(
                ".onsale/keys/verify.pem",
                key.to_str().expect("a UTF-8 path"),
            )
            .replace(
                ".onsale/keys/signing.pem",
                signing.to_str().expect("a UTF-8 path"),
            )
            .replace(
                ".onsale/keys/queue.key",
                queue.to_str().expect("a UTF-8 path"),
            );
        let config = dir.join("edge.toml");
        std::fs::write(&config, edit(committed)).expect("write the config");
        let child = std::process::Command::new(BINARY)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start the edge");
        EdgeProcess {
            child,
            admin,
            public,
            config,
            dir,
        }
    }

    fn wait_for(&self, what: &str, path: &str, check: &dyn Fn(&str) -> bool) {
        for _ in 0..200 {
            if admin_get(self.admin, path).is_some_and(|body| check(&body)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}");
    }

    fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        self.child.wait().expect("the edge exits")
    }
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn sighup_reloads_the_file() {
    let burst = |config: String, burst: u32| {
        config.replace(
            "per_ip = { per_minute = 1200, burst = 120 }",
            &format!("per_ip = {{ per_minute = 1200, burst = {burst} }}"),
        )
    };
    let edge = EdgeProcess::start("hup", &|c| {
        burst(c, 120)
            .replace("reload_poll_ms = 1000", "reload_poll_ms = 3600000")
            .replace("grace_period_s = 10", "grace_period_s = 0")
    });
    edge.wait_for("the edge", "/admin/config", &|body| {
        body.contains("\"version\": 1")
    });
    let changed = burst(std::fs::read_to_string(&edge.config).unwrap(), 7);
    std::fs::write(&edge.config, changed).unwrap();
    // The file poll is an hour away: only SIGHUP can apply the change now.
    edge.signal("-HUP");
    edge.wait_for("the reload", "/admin/config", &|body| {
        body.contains("\"version\": 2") && body.contains("\"burst\": 7")
    });
    let status = edge.terminate();
    assert!(status.success() || status.code().is_none(), "{status:?}");
}

/// An origin that answers `/readyz` at once and anything else after `delay`, telling the
/// test (once per request) that a slow request has arrived.
fn slow_origin(
    delay: std::time::Duration,
) -> (std::net::SocketAddr, std::sync::mpsc::Receiver<()>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("a bound address");
    let (arrived, arrivals) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let arrived = arrived.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
                let mut stream = stream;
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok() && line != "\r\n" {
                        line.clear();
                    }
                    if !request_line.contains("/readyz") {
                        let _ = arrived.send(());
                        std::thread::sleep(delay);
                    }
                    let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
                    if stream.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, arrivals)
}

#[test]
fn sigterm_drains_requests_in_flight() {
    let (origin, arrivals) = slow_origin(std::time::Duration::from_millis(1500));
    let edge = EdgeProcess::start("drain", &|c| {
        c.replace("127.0.0.1:8081", &origin.to_string())
            .replace("catalog_cache_ms = 2000", "catalog_cache_ms = 0")
            .replace("grace_period_s = 10", "grace_period_s = 3")
    });
    edge.wait_for("a healthy origin", "/readyz", &|body| body == "ready");
    let public = edge.public;
    let in_flight = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(public).unwrap();
        write!(
            stream,
            "GET /v1/events HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    });
    // The request is at the origin: now stop the edge.
    arrivals
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the request reaches the origin");
    let status = edge.terminate();
    let response = in_flight.join().unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "the request in flight was answered: {response}"
    );
    assert!(response.ends_with("{\"ok\":true}"), "{response}");
    assert!(status.success() || status.code().is_none(), "{status:?}");
}
