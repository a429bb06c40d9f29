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

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

#[test]
fn sighup_reloads_the_file() {
    let dir = std::env::temp_dir().join(format!("onsale-edge-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (private_pem, public_pem) = onsale_contract::tokens::generate_pem_pair();
    let key = dir.join("verify.pem");
    std::fs::write(&key, public_pem).unwrap();
    let signing = dir.join("signing.pem");
    std::fs::write(&signing, private_pem).unwrap();
    let admin = free_port();
    let committed = std::fs::read_to_string(CONFIG).unwrap();
    let config = |burst: u32| {
        committed
            .replace("0.0.0.0:8080", &free_port().to_string())
            .replace("127.0.0.1:9180", &admin.to_string())
            .replace("reload_poll_ms = 1000", "reload_poll_ms = 3600000")
            .replace(".onsale/keys/verify.pem", key.to_str().unwrap())
            .replace(".onsale/keys/signing.pem", signing.to_str().unwrap())
            .replace(
                "per_ip = { per_minute = 1200, burst = 120 }",
                &format!("per_ip = {{ per_minute = 1200, burst = {burst} }}"),
            )
    };
    let path = dir.join("edge.toml");
    std::fs::write(&path, config(120)).unwrap();
    let mut edge = std::process::Command::new(BINARY)
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start the edge");
    let wait_for = |what: &str, check: &dyn Fn(&str) -> bool| {
        for _ in 0..200 {
            if admin_get(admin, "/admin/config").is_some_and(|body| check(&body)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}");
    };
    wait_for("the edge", &|body| body.contains("\"version\": 1"));
    std::fs::write(&path, config(7)).unwrap();
    // The file poll is an hour away: only SIGHUP can apply the change now.
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &edge.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for("the reload", &|body| {
        body.contains("\"version\": 2") && body.contains("\"burst\": 7")
    });
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &edge.id().to_string()])
        .status();
    let status = edge.wait().unwrap();
    assert!(status.success() || status.code().is_none(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
