//! The fan web app as a real edge serves it (compiled in, precompressed, revalidated, under a
//! strict Content-Security-Policy), and the edge's own HTTPS listener: HTTP/2 by ALPN, HSTS
//! and `Secure` cookies over TLS only, a renewed certificate served without a restart.
//! HTTPS is spoken by `curl` and certificates made by `openssl`, the Debian tools the scripts
//! install, so the client is a real TLS and HTTP/2 implementation of its own.

use edge_proxy::config::{PrequeueOrder, QueueSettings, TlsConfig};
use onsale_tests::{client, create_account, create_session, edge, eventually, free_port, TestApp};
use reqwest::Method;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The asset URLs the HTML shell links (`/assets/<build>/...`).
fn asset_urls(html: &str) -> Vec<String> {
    html.split('"')
        .filter(|s| s.starts_with("/assets/"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_web_app_is_served_from_the_binary_under_strict_headers() {
    let edge = edge().run();
    let fan = client(edge.public);

    let shell = fan.get("/").await;
    shell.expect_status(200);
    assert!(shell
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(shell.header("cache-control"), Some("no-cache"));
    assert_eq!(shell.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(shell.header("referrer-policy"), Some("same-origin"));
    let csp = shell.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe"), "{csp}");
    // Plain HTTP: no HSTS, which browsers ignore there anyway.
    assert_eq!(shell.header("strict-transport-security"), None);
    let html = String::from_utf8(shell.body.clone()).unwrap();
    assert!(!html.contains("%ASSETS%"));
    assert!(!html.contains("<script>"), "no inline script");

    // Every page path gets the same shell; the app routes in the browser.
    for page in ["/events/e1", "/shows/s1/queue", "/signin", "/orders/o1"] {
        let reply = fan.get(page).await;
        reply.expect_status(200);
        assert_eq!(reply.body, shell.body, "{page}");
    }

    // Assets: immutable, compressed at build time, revalidated per representation.
    let assets = asset_urls(&html);
    assert!(!assets.is_empty(), "the shell links its assets: {html}");
    for url in &assets {
        let plain = fan.get(url).await;
        plain.expect_status(200);
        assert_eq!(
            plain.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{url}"
        );
        let request = fan.raw(Method::GET, url).header("accept-encoding", "br");
        let compressed = fan.send(request).await;
        if compressed.header("content-encoding") == Some("br") {
            let mut decoded = Vec::new();
            brotli::BrotliDecompress(&mut &compressed.body[..], &mut decoded).unwrap();
            assert_eq!(decoded, plain.body, "{url}");
        }
        let etag = compressed.header("etag").unwrap().to_owned();
        let request = fan
            .raw(Method::GET, url)
            .header("accept-encoding", "br")
            .header("if-none-match", &etag);
        let revalidated = fan.send(request).await;
        revalidated.expect_status(304);
        assert!(revalidated.body.is_empty());
    }

    // Anything else under /assets/ (another build, a guess) is a 404 problem, and the app
    // is read-only.
    let build = assets[0].split('/').nth(2).unwrap();
    let stale = assets[0].replacen(build, "000000000000", 1);
    fan.get(&stale).await.problem(404, "route_not_found");
    fan.request(Method::POST, "/", None)
        .await
        .problem(405, "method_not_allowed");
    fan.get("/no-such-page")
        .await
        .problem(404, "route_not_found");
}

/// A self-signed certificate for `127.0.0.1` with common name `name`, written to `dir`.
fn certificate(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{made:?}");
    (cert, key)
}

/// `curl` over HTTPS without checking the self-signed certificate: (HTTP version, status,
/// response headers, the certificate's subject as curl printed it). Awaited, never blocking:
/// the origin may share the test's runtime.
async fn curl_https(url: &str, extra: &[&str]) -> (String, u16, String, String) {
    let out = tokio::process::Command::new("curl")
        .args([
            "-sk",
            "-v",
            "--http2",
            "--max-time",
            "20",
            "-D",
            "-",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "\n%{http_version} %{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .await
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let (headers, last) = stdout.trim_end().rsplit_once('\n').unwrap_or(("", &stdout));
    let mut last = last.split(' ');
    let version = last.next().unwrap_or_default().to_owned();
    let status = last.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let subject = stderr
        .lines()
        .find_map(|l| l.trim_start_matches(['*', ' ']).strip_prefix("subject: "))
        .unwrap_or_default()
        .to_owned();
    (version, status, headers.to_ascii_lowercase(), subject)
}

/// A queue and sale open an hour ago, admitting one fan a minute.
fn open_queue() -> QueueSettings {
    let opened = chrono::Utc::now() - chrono::Duration::hours(1);
    QueueSettings {
        admit_per_minute: 1,
        max_active: 1,
        session_ttl_s: 600,
        queue_opens_at: opened,
        sale_opens_at: opened,
        prequeue_order: PrequeueOrder::Random,
        no_show_grace_s: 60,
        pow_difficulty: 0,
        paused: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_speaks_http2_with_hsts_and_secure_cookies_and_plain_http_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "first");
    let app = TestApp::spawn().await;
    let show = uuid::Uuid::new_v4().to_string();
    let tls_addr = free_port();
    let edge = edge()
        .upstream(app.origin.addr())
        .config(|config| {
            config.listen.tls = Some(TlsConfig {
                address: tls_addr,
                cert: cert.clone(),
                key: key.clone(),
                hsts_max_age_s: 600,
            });
            config.waiting_room.shows.insert(show.clone(), open_queue());
        })
        .run();
    let https = format!("https://{tls_addr}");

    let (version, status, headers, subject) = curl_https(&format!("{https}/"), &[]).await;
    assert_eq!((version.as_str(), status), ("2", 200), "{headers}");
    assert!(subject.contains("CN=first"), "{subject}");
    assert!(
        headers.contains("strict-transport-security: max-age=600"),
        "{headers}"
    );

    // A join over plain HTTP sets the queue cookie without `Secure`, so a plain-HTTP
    // client still gets it back (once the edge has Redis and a healthy origin); the same
    // account joining over HTTPS gets its place back with a `Secure` cookie.
    let (account, _) = create_account(&app.db).await;
    let session = create_session(&app.db, account).await;
    let fan = client(edge.public).bearer(&session);
    let plain = eventually("a first join", Duration::from_secs(20), || async {
        let reply = fan
            .post("/v1/waiting-room/sessions", &json!({ "show_id": show }))
            .await;
        (reply.status != 503).then_some(reply)
    })
    .await;
    plain.expect_status(201);
    let cookie = plain.header("set-cookie").unwrap();
    assert!(cookie.starts_with("onsale_queue=") && !cookie.contains("Secure"));
    let body = json!({ "show_id": show }).to_string();
    let join = [
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-H",
        &format!("authorization: Bearer {session}"),
        "--data",
        &body,
    ];
    let (_, status, headers, _) =
        curl_https(&format!("{https}/v1/waiting-room/sessions"), &join).await;
    assert_eq!(status, 200, "{headers}");
    let cookie = headers
        .lines()
        .find(|l| l.starts_with("set-cookie: onsale_queue="))
        .unwrap_or_else(|| panic!("a queue cookie: {headers}"));
    assert!(cookie.contains("; secure"), "{cookie}");

    // The origin hears how the fan came: its session cookie follows.
    let (email, password) = (
        format!("{}@example.test", uuid::Uuid::new_v4()),
        "correct horse battery",
    );
    client(edge.public)
        .post(
            "/v1/accounts",
            &json!({ "email": email, "password": password, "display_name": "Fan" }),
        )
        .await
        .expect_status(201);
    let sign_in = json!({ "email": email, "password": password }).to_string();
    let args = [
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data",
        &sign_in,
    ];
    let (_, status, headers, _) = curl_https(&format!("{https}/v1/sessions"), &args).await;
    assert_eq!(status, 201, "{headers}");
    let cookie = headers
        .lines()
        .find(|l| l.starts_with("set-cookie: onsale_session="))
        .unwrap_or_else(|| panic!("a session cookie: {headers}"));
    assert!(cookie.contains("; secure"), "{cookie}");
    let plain = client(edge.public)
        .post(
            "/v1/sessions",
            &json!({ "email": email, "password": password }),
        )
        .await;
    plain.expect_status(201);
    assert!(!plain.header("set-cookie").unwrap().contains("Secure"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renewed_certificate_is_served_from_the_next_handshake_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "first");
    let tls_addr = free_port();
    let edge = edge()
        .config(|config| {
            config.listen.tls = Some(TlsConfig {
                address: tls_addr,
                cert: cert.clone(),
                key: key.clone(),
                hsts_max_age_s: 0,
            });
            // The test reloads explicitly; the watcher would race it.
            config.server.reload_poll_ms = 3_600_000;
        })
        .run();
    let url = format!("https://{tls_addr}/");
    let certificates = edge.shared.certificates.clone().expect("HTTPS is on");
    let admin = client(edge.admin);
    let reloads = |outcome: &'static str| {
        let admin = admin.clone();
        async move {
            let page = admin.get("/metrics").await;
            let series =
                format!("onsale_edge_tls_certificate_reloads_total{{outcome=\"{outcome}\"}} ");
            String::from_utf8_lossy(&page.body)
                .lines()
                .find_map(|l| l.strip_prefix(series.as_str()).map(|v| v.trim().to_owned()))
                .map_or(0, |v| v.parse::<u64>().unwrap())
        }
    };

    let (_, status, headers, subject) = curl_https(&url, &[]).await;
    assert_eq!(status, 200);
    assert!(subject.contains("CN=first"), "{subject}");
    assert!(
        !headers.contains("strict-transport-security"),
        "0 sends none"
    );

    // Renewed in place: the same file names, new contents.
    let (second_cert, second_key) = certificate(dir.path(), "second");
    std::fs::copy(&second_cert, &cert).unwrap();
    std::fs::copy(&second_key, &key).unwrap();
    certificates.reload_if_changed();
    assert_eq!(reloads("applied").await, 1);
    let (_, status, _, subject) = curl_https(&url, &[]).await;
    assert_eq!(status, 200);
    assert!(subject.contains("CN=second"), "{subject}");

    // A key that is not the certificate's: refused, the running pair stays.
    let (_, third_key) = certificate(dir.path(), "third");
    std::fs::copy(&third_key, &key).unwrap();
    certificates.reload_if_changed();
    assert_eq!(reloads("refused").await, 1);
    let (_, status, _, subject) = curl_https(&url, &[]).await;
    assert_eq!(status, 200);
    assert!(subject.contains("CN=second"), "{subject}");
    // Reported once per change, not at every check.
    certificates.reload_if_changed();
    assert_eq!(reloads("refused").await, 1);
}
