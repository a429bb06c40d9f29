//! The fan web app in headless Chromium against a real stack: a database seeded with the demo
//! stadium (80,000 seats), an origin, the seat-map builder and an edge whose waiting room runs
//! on a manual clock, all in this process. Each test drives its own `chromedriver` (a child
//! process, killed with its browsers when the test ends) through WebDriver.
//!
//! Time is moved, never waited out: the queue advances when the test moves the edge's clock
//! and runs an admission step; the browser is then waited on (an element, a text, a URL)
//! until a deadline sized for a loaded two-core machine. Every page visited is checked for
//! console errors and for serious or critical axe-core violations. A failing test leaves a
//! screenshot and the page source of every open browser in `target/browser-failures/`, and
//! prints their logs.
//!
//! `ONSALE_SCREENSHOTS=1` makes the first flow write the README's screenshots to
//! `docs/screenshots/`.

use chrono::{TimeZone, Utc};
use edge_proxy::config::{PrequeueOrder, QueueSettings};
use fantoccini::wd::{TimeoutConfiguration, WebDriverCompatibleCommand};
use fantoccini::{ClientBuilder, Locator};
use futures_util::FutureExt;
use onsale_contract::clock::{self, Clock};
use onsale_contract::snapshot::Kind;
use onsale_tests::{
    admission, builder_config, client, config_dir, create_account, eventually, free_port, Client,
    RunningEdge, RunningOrigin, TestDb, TEST_PASSWORD,
};
use origin::seed::{seed, DemoConfig};
use seatmap_builder::RunningBuilder;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use uuid::Uuid;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a wait on the browser may take before the test fails. Generous: on a loaded
/// two-core machine a page render or an argon2 sign-in can take seconds; a passing wait
/// returns as soon as its condition holds.
const PATIENCE: Duration = Duration::from_secs(90);
/// How often a waited-on condition is looked at again.
const RECHECK: Duration = Duration::from_millis(100);
/// Server-side effects (snapshots at the edge, the origin pool) are awaited this long.
const WITHIN: Duration = Duration::from_secs(60);

/// axe-core, vendored (tests/browser/README.md): injected with WebDriver script execution.
const AXE: &str = include_str!("../../browser/axe.min.js");

/// Accounts' emails are `fan-<id>@test.onsale.test` (the harness's `create_account`).
fn email_of(account: Uuid) -> String {
    format!("fan-{}@test.onsale.test", account.simple())
}

fn at(ms: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

/// `relative` to the repository's root (the workspace, one above this crate).
fn repo_path(relative: &str) -> PathBuf {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
    tests.parent().unwrap_or(tests).join(relative)
}

fn screenshots_wanted() -> bool {
    std::env::var("ONSALE_SCREENSHOTS").is_ok_and(|v| v == "1")
}

fn testid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

// ---------------------------------------------------------------------------------------
// chromedriver and browser sessions

/// A `chromedriver` child process on a port of its own, in a process group of its own: the
/// browsers it starts are in that group too, and all of them are killed when it drops.
struct Driver {
    child: Child,
    url: String,
}

/// Ports tried before giving up on starting chromedriver.
const DRIVER_PORTS: usize = 5;

impl Driver {
    async fn start() -> Driver {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: install Debian's chromium and chromium-driver \
                 (scripts/test does)"
            );
        }
        // A port free when asked can be taken before chromedriver binds it (the rehearsal
        // tests open connections from thousands of loopback addresses): chromedriver then
        // exits, and it is started again on another.
        for _ in 0..DRIVER_PORTS {
            if let Some(driver) = Driver::start_on(free_port().port()).await {
                return driver;
            }
        }
        panic!("chromedriver exited on {DRIVER_PORTS} ports in turn");
    }

    /// chromedriver on `port` once it is ready; `None` if it exited first.
    async fn start_on(port: u16) -> Option<Driver> {
        let child = {
            use std::os::unix::process::CommandExt;
            // Listening on localhost only: `--allowed-ips` would bind every address.
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("chromedriver starts")
        };
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let status = format!("{}/status", driver.url);
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            if let Ok(Some(_)) = driver.child.try_wait() {
                return None;
            }
            let ready = match reqwest::get(&status).await {
                Ok(reply) => reply
                    .json::<Value>()
                    .await
                    .is_ok_and(|body| body["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                return Some(driver);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {WITHIN:?} waiting for chromedriver to listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The process group is chromedriver's own (process_group(0)): its id is the pid.
        let group = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.child.wait();
    }
}

/// chromedriver's log endpoint (`POST /session/{id}/se/log`), which drains the browser's
/// console and network errors recorded since the last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// One test's browsers: its chromedriver, the sessions on it, and what failures leave behind.
#[derive(Clone)]
struct Flow(Arc<FlowInner>);

struct FlowInner {
    test: &'static str,
    browsers: Mutex<Vec<Browser>>,
    /// The test's stacks, stopped only once its browsers are closed.
    stacks: Mutex<Vec<Arc<Stack>>>,
    // Dropped last: kills chromedriver and every browser it started.
    driver: Driver,
}

/// Runs a browser test: on a panic anywhere in `body`, every open browser's page is saved
/// (screenshot, source and log) under `target/browser-failures/<test>-<step>.*` before the
/// panic goes on, with the test's stack still running (the page as the fan saw it).
async fn flow<F, Fut>(test: &'static str, body: F)
where
    F: FnOnce(Flow) -> Fut,
    Fut: Future<Output = ()>,
{
    let flow = Flow(Arc::new(FlowInner {
        test,
        browsers: Mutex::new(Vec::new()),
        stacks: Mutex::new(Vec::new()),
        driver: Driver::start().await,
    }));
    let outcome = AssertUnwindSafe(body(flow.clone())).catch_unwind().await;
    if outcome.is_err() {
        flow.capture_failure().await;
    }
    flow.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

impl Flow {
    fn browsers(&self) -> Vec<Browser> {
        self.0
            .browsers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A new headless Chromium with a fresh profile (its own temporary user-data-dir),
    /// pointed at the edge `base`.
    async fn browser(&self, profile_name: &str, base: &str) -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("onsale-chromium-")
            .tempdir()
            .expect("a profile directory");
        let capabilities = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    // Overlay scrollbars, as on phones: the page's width is the window's.
                    "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--disable-sync",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-default-apps",
                    "--disable-background-timer-throttling",
                    "--disable-renderer-backgrounding",
                    "--disable-backgrounding-occluded-windows",
                    "--password-store=basic",
                    "--mute-audio",
                    "--lang=en-GB",
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let wd = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.0.driver.url)
            .await
            .expect("a Chromium session");
        wd.update_timeouts(TimeoutConfiguration::new(
            Some(PATIENCE),
            Some(PATIENCE),
            Some(Duration::ZERO),
        ))
        .await
        .expect("session timeouts");
        let browser = Browser {
            wd,
            base: base.trim_end_matches('/').to_owned(),
            profile_name: profile_name.to_owned(),
            state: Arc::new(Mutex::new(BrowserState {
                step: "start".to_owned(),
                expected_failures: Vec::new(),
                weighed: HashSet::new(),
                time_origin: None,
            })),
            _profile: Arc::new(profile),
        };
        self.0
            .browsers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(browser.clone());
        browser
    }

    async fn capture_failure(&self) {
        let dir = repo_path("target/browser-failures");
        if let Err(error) = std::fs::create_dir_all(&dir) {
            eprintln!("cannot create {}: {error}", dir.display());
            return;
        }
        for browser in self.browsers() {
            let step = slug(&browser.state().step);
            let stem = dir.join(format!("{}-{step}", self.0.test));
            let png = stem.with_extension("png");
            match tokio::time::timeout(WITHIN, browser.wd.screenshot()).await {
                Ok(Ok(bytes)) => match std::fs::write(&png, bytes) {
                    Ok(()) => eprintln!("screenshot of the failed page: {}", png.display()),
                    Err(error) => eprintln!("cannot write {}: {error}", png.display()),
                },
                Ok(Err(error)) => eprintln!("no screenshot ({}): {error}", browser.profile_name),
                Err(_) => eprintln!("no screenshot ({}): timed out", browser.profile_name),
            }
            if let Ok(Ok(Value::Array(entries))) =
                tokio::time::timeout(WITHIN, browser.wd.issue_cmd(BrowserLog)).await
            {
                for entry in entries {
                    eprintln!(
                        "browser log ({}): {} {}",
                        browser.profile_name, entry["level"], entry["message"]
                    );
                }
            }
            if let Ok(Ok(source)) = tokio::time::timeout(WITHIN, browser.wd.source()).await {
                let html = stem.with_extension("html");
                if std::fs::write(&html, source).is_ok() {
                    eprintln!("source of the failed page: {}", html.display());
                }
            }
        }
    }

    async fn close(&self) {
        for browser in self.browsers() {
            let _ = tokio::time::timeout(WITHIN, browser.wd.clone().close()).await;
        }
        let stacks =
            std::mem::take(&mut *self.0.stacks.lock().unwrap_or_else(PoisonError::into_inner));
        drop(stacks);
    }

    /// A new [`Stack`] for this test, kept running until its browsers are closed.
    async fn stack(&self) -> Arc<Stack> {
        let stack = Arc::new(Stack::start().await);
        self.0
            .stacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(stack.clone());
        stack
    }
}

fn slug(text: &str) -> String {
    text.chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_lowercase(),
            false => '-',
        })
        .collect()
}

/// One browser profile (a WebDriver session).
#[derive(Clone)]
struct Browser {
    wd: fantoccini::Client,
    base: String,
    profile_name: String,
    state: Arc<Mutex<BrowserState>>,
    _profile: Arc<tempfile::TempDir>,
}

struct BrowserState {
    /// What the test is doing: names the failure's screenshot.
    step: String,
    /// (URL fragment, status) of requests expected to fail from now on: the browser logs
    /// them as errors, and they are not the app's.
    expected_failures: Vec<(String, u16)>,
    /// Pages whose first load was already weighed.
    weighed: HashSet<String>,
    /// `performance.timeOrigin` of the document last weighed: a new one is a full load.
    time_origin: Option<f64>,
}

/// What one page's first load transferred, from the Resource Timing entries.
#[derive(Debug, Default, Clone, Copy)]
struct Weight {
    requests: u64,
    transfer: u64,
    encoded: u64,
    decoded: u64,
}

impl Weight {
    fn add(&mut self, entry: &Value) {
        self.requests += 1;
        self.transfer += entry["transfer"].as_f64().unwrap_or(0.0) as u64;
        self.encoded += entry["encoded"].as_f64().unwrap_or(0.0) as u64;
        self.decoded += entry["decoded"].as_f64().unwrap_or(0.0) as u64;
    }
}

impl std::fmt::Display for Weight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests, {} B transferred ({} B body compressed, {} B decoded)",
            self.requests, self.transfer, self.encoded, self.decoded
        )
    }
}

impl Browser {
    fn state(&self) -> std::sync::MutexGuard<'_, BrowserState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Names what the test does next (and a failure's screenshot).
    fn step(&self, step: &str) {
        eprintln!("[{}] {step}", self.profile_name);
        self.state().step = format!("{}-{step}", self.profile_name);
    }

    /// From now on, a request whose URL contains `fragment` answered with `status` is an
    /// expected refusal, not an error of the page.
    fn expect_failure(&self, fragment: &str, status: u16) {
        self.state()
            .expected_failures
            .push((fragment.to_owned(), status));
    }

    fn fail(&self, what: &str) -> ! {
        panic!("[{}] {what}", self.state().step)
    }

    /// Loads `path` of the app.
    async fn open(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        if let Err(error) = self.wd.goto(&url).await {
            self.fail(&format!("cannot load {url}: {error}"));
        }
    }

    /// Runs `script` (a function body) with `args`.
    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        match self.wd.execute(script, args).await {
            Ok(value) => value,
            Err(error) => self.fail(&format!("script failed: {error}\n{script}")),
        }
    }

    /// Runs `script` again and again until it returns something other than null or false
    /// (returned, parsed), or [`PATIENCE`] passes (the test fails naming `what`).
    async fn wait_for<T: DeserializeOwned>(&self, what: &str, script: &str, args: Vec<Value>) -> T {
        let deadline = Instant::now() + PATIENCE;
        let mut last;
        loop {
            match self.wd.execute(script, args.clone()).await {
                Ok(value) if !value.is_null() && value != Value::Bool(false) => {
                    return serde_json::from_value(value.clone()).unwrap_or_else(|error| {
                        self.fail(&format!("{what}: unexpected {value} ({error})"))
                    });
                }
                Ok(value) => last = value.to_string(),
                // A navigation in progress: look again.
                Err(error) => last = error.to_string(),
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "timed out after {PATIENCE:?} waiting for {what} (last: {last})"
                ));
            }
            tokio::time::sleep(RECHECK).await;
        }
    }

    /// Waits until the element with this test id is on the page and visible.
    async fn wait_visible(&self, id: &str) {
        self.wait_for::<bool>(
            &format!("{id} to be visible"),
            "const e = document.querySelector(arguments[0]);
             return !!e && e.getClientRects().length > 0 && !e.closest('[hidden]');",
            vec![json!(testid(id))],
        )
        .await;
    }

    /// Waits until the URL's path is `path`.
    async fn wait_path(&self, what: &str, path: &str) {
        self.wait_for::<bool>(
            what,
            "return location.pathname === arguments[0];",
            vec![json!(path)],
        )
        .await;
    }

    /// The path of the current page.
    async fn path(&self) -> String {
        self.js("return location.pathname;", vec![])
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The text of the element with this test id (waiting for it to be visible).
    async fn text(&self, id: &str) -> String {
        self.wait_visible(id).await;
        self.js(
            "return document.querySelector(arguments[0]).textContent.trim();",
            vec![json!(testid(id))],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Clicks `selector` once it is visible and enabled, through WebDriver (so the click is
    /// a real one: refused if something covers the element).
    async fn click_css(&self, selector: &str) {
        self.wait_for::<bool>(
            &format!("{selector} to be clickable"),
            "const e = document.querySelector(arguments[0]);
             return !!e && e.getClientRects().length > 0 && !e.closest('[hidden]') && !e.disabled;",
            vec![json!(selector)],
        )
        .await;
        let deadline = Instant::now() + PATIENCE;
        loop {
            let clicked = match self.wd.find(Locator::Css(selector)).await {
                Ok(element) => element.click().await,
                Err(error) => Err(error),
            };
            match clicked {
                Ok(()) => return,
                // Re-rendered under the click: find it again.
                Err(error) if Instant::now() < deadline => {
                    eprintln!("click on {selector} again: {error}");
                    tokio::time::sleep(RECHECK).await;
                }
                Err(error) => self.fail(&format!("cannot click {selector}: {error}")),
            }
        }
    }

    async fn click(&self, id: &str) {
        self.click_css(&testid(id)).await;
    }

    /// Types `text` into the (emptied) field with this test id.
    async fn fill(&self, id: &str, text: &str) {
        self.wait_visible(id).await;
        let field = self
            .wd
            .find(Locator::Css(&testid(id)))
            .await
            .unwrap_or_else(|error| self.fail(&format!("no {id}: {error}")));
        field.clear().await.expect("clear a field");
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|error| self.fail(&format!("cannot type into {id}: {error}")));
    }

    /// Chooses the option `value` of the select with this test id.
    async fn select(&self, id: &str, value: &str) {
        self.wait_for::<bool>(
            &format!("option {value} of {id}"),
            "const e = document.querySelector(arguments[0]);
             return !!e && [...e.options].some((o) => o.value === arguments[1]);",
            vec![json!(testid(id)), json!(value)],
        )
        .await;
        let select = self
            .wd
            .find(Locator::Css(&testid(id)))
            .await
            .unwrap_or_else(|error| self.fail(&format!("no {id}: {error}")));
        select
            .select_by_value(value)
            .await
            .unwrap_or_else(|error| self.fail(&format!("cannot choose {value} in {id}: {error}")));
    }

    /// The page as a PNG.
    async fn screenshot(&self) -> Vec<u8> {
        self.wd
            .screenshot()
            .await
            .unwrap_or_else(|error| self.fail(&format!("no screenshot: {error}")))
    }

    /// Every check a visited page must pass: no console errors, no error message (the app
    /// shows failures nobody caught there, not in the console), no serious or critical
    /// accessibility violations; and what its first load transferred is printed.
    async fn check_page(&self, page: &str) {
        let shown = self
            .js(
                "const e = document.querySelector('[data-testid=\"error-message\"]');
                 return e ? e.textContent : null;",
                vec![],
            )
            .await;
        if let Some(message) = shown.as_str() {
            self.fail(&format!("{page} shows an error: {message}"));
        }
        self.check_page_showing_an_error(page).await;
    }

    /// [`Browser::check_page`] for a page whose error message is expected.
    async fn check_page_showing_an_error(&self, page: &str) {
        self.check_console(page).await;
        self.check_accessibility(page).await;
        self.weigh(page).await;
    }

    /// Fails on any SEVERE entry of the browser's log (console errors, failed loads, CSP
    /// refusals) but the expected refusals; prints warnings.
    async fn check_console(&self, page: &str) {
        let entries = match self.wd.issue_cmd(BrowserLog).await {
            Ok(Value::Array(entries)) => entries,
            Ok(other) => self.fail(&format!("unexpected browser log: {other}")),
            Err(error) => self.fail(&format!("cannot read the browser log: {error}")),
        };
        let expected = self.state().expected_failures.clone();
        let mut errors = Vec::new();
        for entry in entries {
            let level = entry["level"].as_str().unwrap_or_default();
            let message = entry["message"].as_str().unwrap_or_default();
            let refusal_expected = entry["source"] == "network"
                && expected.iter().any(|(fragment, status)| {
                    message.contains(fragment.as_str())
                        && message.contains(&format!("status of {status} "))
                });
            match level {
                "SEVERE" if !refusal_expected => errors.push(message.to_owned()),
                "SEVERE" => {}
                "WARNING" => eprintln!("console warning on {page}: {message}"),
                _ => {}
            }
        }
        if !errors.is_empty() {
            self.fail(&format!(
                "console errors on {page}:\n  {}",
                errors.join("\n  ")
            ));
        }
    }

    /// Loads axe-core into the page unless it is there (WebDriver's script execution is not
    /// subject to the page's Content-Security-Policy) and fails on any serious or critical
    /// violation; milder ones are printed.
    async fn check_accessibility(&self, page: &str) {
        let mut blocking = Vec::new();
        for (impact, line) in self.axe(page).await {
            match impact.as_str() {
                "serious" | "critical" => blocking.push(line),
                _ => eprintln!("accessibility note on {page}: {line}"),
            }
        }
        if !blocking.is_empty() {
            self.fail(&format!(
                "accessibility violations on {page}:\n  {}",
                blocking.join("\n  ")
            ));
        }
    }

    /// axe-core's violations on the page as it is: (impact, description).
    async fn axe(&self, page: &str) -> Vec<(String, String)> {
        let loaded = self.js("return typeof window.axe;", vec![]).await;
        if loaded != "object" {
            let script = format!("{AXE}\n;return typeof window.axe;");
            let loaded = self.js(&script, vec![]).await;
            if loaded != "object" {
                self.fail(&format!("axe-core did not load on {page}: {loaded}"));
            }
        }
        let report = match self
            .wd
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] }).then(
                   (r) => done({ violations: r.violations.map((v) => ({
                     id: v.id, impact: v.impact, help: v.help,
                     nodes: v.nodes.slice(0, 5).map((n) =>
                       n.target.join(' ') + ' :: ' + (n.failureSummary || '').replace(/\\s+/g, ' ')),
                   })) }),
                   (e) => done({ error: String(e) }));",
                vec![],
            )
            .await
        {
            Ok(report) => report,
            Err(error) => self.fail(&format!("axe-core did not run on {page}: {error}")),
        };
        if let Some(error) = report["error"].as_str() {
            self.fail(&format!("axe-core failed on {page}: {error}"));
        }
        report["violations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|violation| {
                let impact = violation["impact"].as_str().unwrap_or("unknown").to_owned();
                let line = format!(
                    "{impact} {}: {} at {}",
                    violation["id"].as_str().unwrap_or_default(),
                    violation["help"].as_str().unwrap_or_default(),
                    violation["nodes"]
                );
                (impact, line)
            })
            .collect()
    }

    /// Prints what the page transferred since the last page was weighed (the document too
    /// after a full load), the first time `page` is seen; then starts counting afresh.
    async fn weigh(&self, page: &str) {
        let timings = self
            .js(
                "const entry = (e) => ({ name: e.name, transfer: e.transferSize,
                   encoded: e.encodedBodySize, decoded: e.decodedBodySize });
                 const nav = performance.getEntriesByType('navigation')[0];
                 const out = { origin: performance.timeOrigin, nav: nav ? entry(nav) : null,
                   resources: performance.getEntriesByType('resource').map(entry) };
                 performance.clearResourceTimings();
                 performance.setResourceTimingBufferSize(100000);
                 return out;",
                vec![],
            )
            .await;
        let origin = timings["origin"].as_f64();
        let full_load = {
            let mut state = self.state();
            let full_load = state.time_origin != origin;
            state.time_origin = origin;
            if !state.weighed.insert(page.to_owned()) {
                return;
            }
            full_load
        };
        let (mut document, mut code, mut snapshots, mut api) =
            <(Weight, Weight, Weight, Weight)>::default();
        let mut largest: Vec<(u64, String)> = Vec::new();
        if full_load && !timings["nav"].is_null() {
            Weight::add(&mut document, &timings["nav"]);
        }
        for entry in timings["resources"].as_array().into_iter().flatten() {
            let name = entry["name"].as_str().unwrap_or_default();
            let path = name
                .strip_prefix(&self.base)
                .unwrap_or(name)
                .split('?')
                .next()
                .unwrap_or_default();
            let bucket: &mut Weight = if path.starts_with("/assets/") {
                &mut code
            } else if path.ends_with("/seat-map") || path.ends_with("/availability") {
                &mut snapshots
            } else {
                &mut api
            };
            bucket.add(entry);
            largest.push((
                entry["transfer"].as_f64().unwrap_or(0.0) as u64,
                path.to_owned(),
            ));
        }
        largest.sort_unstable_by_key(|(size, _)| std::cmp::Reverse(*size));
        let mut total = Weight::default();
        for part in [&document, &code, &snapshots, &api] {
            total.requests += part.requests;
            total.transfer += part.transfer;
            total.encoded += part.encoded;
            total.decoded += part.decoded;
        }
        let kind = match full_load {
            true => "full load",
            false => "in-app navigation",
        };
        eprintln!(
            "page weight: {page} ({kind}): {total}\n  document: {document}\n  code and styles: {code}\n  \
             snapshots: {snapshots}\n  other API: {api}\n  largest: {:?}",
            &largest[..largest.len().min(4)]
        );
    }

    /// At 360 CSS pixels wide, the page has no horizontal scroll (and stays accessible);
    /// then the window is as before.
    async fn check_narrow(&self, page: &str) {
        self.wd
            .set_window_size(360, 800)
            .await
            .expect("resize the window");
        self.wait_for::<bool>(
            "the viewport to be 360 px wide",
            "return window.innerWidth === 360;",
            vec![],
        )
        .await;
        // Two frames: the layout at the new width is done.
        let width = match self
            .wd
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 requestAnimationFrame(() => requestAnimationFrame(() =>
                   done(document.documentElement.scrollWidth)));",
                vec![],
            )
            .await
        {
            Ok(width) => width.as_u64().unwrap_or(u64::MAX),
            Err(error) => self.fail(&format!("cannot measure {page}: {error}")),
        };
        if width > 360 {
            let wide: Value = self
                .js(
                    "return [...document.querySelectorAll('body *')]
                       .filter((e) => e.getBoundingClientRect().right > 360.5)
                       .slice(0, 8)
                       .map((e) => e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).split(' ').join('.') : '')
                         + (e.dataset.testid ? '[' + e.dataset.testid + ']' : '')
                         + ' right=' + Math.round(e.getBoundingClientRect().right));",
                    vec![],
                )
                .await;
            self.fail(&format!(
                "{page} scrolls sideways at 360 px: scrollWidth {width}; widest: {wide}"
            ));
        }
        self.check_accessibility(&format!("{page} at 360 px")).await;
        self.wd
            .set_window_size(1280, 900)
            .await
            .expect("resize the window");
        self.wait_for::<bool>(
            "the viewport to be wide again",
            "return window.innerWidth === 1280;",
            vec![],
        )
        .await;
    }

    /// Writes the page as a README screenshot.
    async fn save_screenshot(&self, name: &str) {
        let dir = repo_path("docs/screenshots");
        std::fs::create_dir_all(&dir).expect("docs/screenshots");
        let path = dir.join(name);
        std::fs::write(&path, self.screenshot().await).expect("write a screenshot");
        eprintln!("wrote {}", path.display());
    }

    /// Signs in on the sign-in page with `email` and the harness's password, then waits to
    /// arrive at `next`.
    async fn sign_in(&self, email: &str, next: &str) {
        self.step("sign-in");
        self.open(&format!("/signin?next={}", urlencode(next)))
            .await;
        self.wait_visible("signin-email").await;
        self.check_page("/signin").await;
        self.fill("signin-email", email).await;
        self.fill("signin-password", TEST_PASSWORD).await;
        self.click("signin-submit").await;
        self.wait_path("the page after signing in", next).await;
    }

    /// The number in `queue-position`, once it shows one below `below`; `None` once the fan
    /// has been sent on to the seat page.
    async fn queue_position_below(&self, below: u64) -> Option<u64> {
        let seen: Value = self
            .wait_for(
                &format!("the queue position to go below {below}"),
                "if (location.pathname.endsWith('/seats')) return { admitted: true };
                 const e = document.querySelector('[data-testid=\"queue-position\"]');
                 if (!e) return null;
                 const digits = e.textContent.replace(/[^0-9]/g, '');
                 if (digits === '') return null;
                 const n = Number(digits);
                 return n < arguments[0] ? { position: n } : null;",
                vec![json!(below)],
            )
            .await;
        seen["position"].as_u64()
    }

    /// Waits until the page shows `count` ticket QR codes, every one an image loaded or,
    /// for a show whose codes rotate, a canvas drawn.
    async fn wait_ticket_codes(&self, count: usize) {
        self.wait_for::<bool>(
            &format!("{count} ticket QR codes"),
            "const codes = [...document.querySelectorAll(arguments[0])];
             return codes.length === arguments[1]
               && codes.every((c) => c.tagName === 'CANVAS'
                 ? c.dataset.step !== undefined
                 : c.complete && c.naturalWidth > 0);",
            vec![json!(testid("ticket-qr")), json!(count)],
        )
        .await;
    }

    /// The live ticket codes on the page, once all show the same step, `from` or later:
    /// (step, payload) read back from each canvas's pixels with a QR decoder.
    async fn live_codes(&self, from: i64) -> Vec<(i64, String)> {
        let canvases: Vec<Value> = self
            .wait_for(
                &format!("live codes of step {from} or later"),
                "const codes = [...document.querySelectorAll(arguments[0])];
                 const step = codes.length ? Number(codes[0].dataset.step) : NaN;
                 const shows = (c) => c.dataset.step !== undefined
                   && Number(c.dataset.step) === step;
                 if (!(step >= arguments[1]) || !codes.every(shows)) return null;
                 return codes.map((c) => {
                   const rgba = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   const grey = [];
                   for (let i = 0; i < rgba.length; i += 4) grey.push(rgba[i]);
                   return { step: Number(c.dataset.step), width: c.width, height: c.height, grey };
                 });",
                vec![json!(testid("ticket-qr")), json!(from)],
            )
            .await;
        canvases
            .iter()
            .map(|canvas| {
                let (width, height) = (
                    canvas["width"].as_u64().unwrap() as usize,
                    canvas["height"].as_u64().unwrap() as usize,
                );
                let grey: Vec<u8> = canvas["grey"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u8)
                    .collect();
                let mut image =
                    rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
                        grey[y * width + x]
                    });
                let grids = image.detect_grids();
                assert_eq!(grids.len(), 1, "one QR code per canvas");
                let (_, payload) = grids[0].decode().unwrap_or_else(|e| {
                    self.fail(&format!("the drawn QR code does not decode: {e}"))
                });
                (canvas["step"].as_i64().unwrap(), payload)
            })
            .collect()
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// the stack

/// A database with the demo catalog (the 80,000-seat stadium and the theatre), an origin,
/// a seat-map builder and an edge whose waiting room holds the stadium show; the edge and
/// the builder run on one manual clock.
struct Stack {
    // Dropped in this order: the edge, the builder, the origin, then its database.
    edge: RunningEdge,
    builder: RunningBuilder,
    origin: RunningOrigin,
    db: TestDb,
    clock: Clock,
    /// The clock the origin checks rotating ticket codes against, started at a step's
    /// start, and the stadium's step.
    codes_clock: Clock,
    period_ms: i64,
    /// The stadium show's id.
    show: String,
    /// The stadium event's id.
    event: String,
    /// The app's address: `http://127.0.0.1:<port>`.
    base: String,
}

/// The waiting room's settings for the stadium: open since the clock's start, one fan
/// called per second of the clock, a ten-second no-show grace.
fn queue_settings(t0: i64) -> QueueSettings {
    QueueSettings {
        admit_per_minute: 60,
        max_active: 1_000,
        session_ttl_s: 900,
        queue_opens_at: at(t0),
        sale_opens_at: at(t0),
        prequeue_order: PrequeueOrder::JoinOrder,
        no_show_grace_s: 10,
        pow_difficulty: 0,
        paused: false,
    }
}

impl Stack {
    async fn start() -> Stack {
        let db = onsale_tests::db().await;
        let demo = DemoConfig::load(&config_dir().join("demo.toml")).expect("config/demo.toml");
        let show = demo.stadium.event.event.show_id.to_string();
        let rotating = onsale_tests::origin_config(&db).tickets.show_rotating_qr[&show];
        let period_ms = 1000 * i64::from(rotating.rotate_s);
        let codes_clock = Clock::manual(clock::now_ms() / period_ms * period_ms);
        let origin = onsale_tests::origin(&db)
            .clock(codes_clock.clone())
            .run()
            .await;
        let seeded = Instant::now();
        seed(&db.pool, &demo, &origin.state.config.accounts, Utc::now())
            .await
            .expect("the demo seed");
        eprintln!("demo catalog seeded in {:?}", seeded.elapsed());
        let event = demo.stadium.event.event.event_id.to_string();

        let t0 = clock::now_ms();
        let clock = Clock::manual(t0);
        let edge = onsale_tests::edge()
            .upstream(origin.addr())
            .clock(clock.clone())
            .config(|c| {
                c.waiting_room
                    .shows
                    .insert(show.clone(), queue_settings(t0));
                c.waiting_room.refresh_ms = 1_000;
                // Every request of a test comes from 127.0.0.1, and buckets refill only as
                // the manual clock moves.
                c.limits.per_ip_join.per_minute = 1_000_000;
                c.limits.per_ip_join.burst = 100_000;
                c.limits.per_ip_sign_in.per_minute = 1_000_000;
                c.limits.per_ip_sign_in.burst = 100_000;
                c.limits.per_fan_purchase.per_minute = 1_000_000;
                c.limits.per_fan_purchase.burst = 100_000;
            })
            .run();
        let prefix = edge.shared.live.load().config.redis.key_prefix.clone();
        let built = Instant::now();
        let builder = seatmap_builder::start(
            builder_config(&db, &prefix),
            "browser-tests".into(),
            clock.clone(),
        )
        .await
        .expect("the builder starts");
        tokio::time::timeout(Duration::from_secs(120), builder.settled())
            .await
            .expect("the first build");
        eprintln!("snapshots built in {:?}", built.elapsed());
        let stack = Stack {
            base: format!("http://{}", edge.public),
            db,
            origin,
            builder,
            edge,
            clock,
            codes_clock,
            period_ms,
            show,
            event,
        };
        eventually("the stadium's snapshots at the edge", WITHIN, || async {
            let snapshots = &stack.edge.shared.snapshots;
            (snapshots.get(&stack.show, Kind::Layout).is_some()
                && snapshots.get(&stack.show, Kind::Availability).is_some())
            .then_some(())
        })
        .await;
        eventually("the origin pool to be healthy", WITHIN, || async {
            stack.edge.shared.pool_keeper.any_healthy().then_some(())
        })
        .await;
        eventually("the waiting room's first step", WITHIN, || async {
            stack.edge.shared.waiting_room.view(&stack.show).map(|_| ())
        })
        .await;
        stack
    }

    /// A fan's API client, through the edge.
    fn api(&self) -> Client {
        client(self.edge.public)
    }

    /// One admission step, at the clock's current time.
    async fn step(&self) {
        let shared = &self.edge.shared;
        shared
            .waiting_room
            .step(
                &shared.live.load(),
                &shared.snapshots,
                shared.clock.now_ms(),
            )
            .await;
    }

    /// Moves the clock by `by` and runs an admission step.
    async fn tick(&self, by: Duration) {
        self.clock.advance(by);
        self.step().await;
    }

    /// Moves the clock past the builder's next build and waits for it and for the edge to
    /// hold the new availability.
    async fn rebuild(&self) -> Value {
        let before = self.availability().await["built_at_ms"].clone();
        self.tick(Duration::from_secs(30)).await;
        tokio::time::timeout(Duration::from_secs(120), self.builder.settled())
            .await
            .expect("the builder settles");
        eventually("the new availability at the edge", WITHIN, || async {
            let now = self.availability().await;
            (now["built_at_ms"] != before).then_some(now)
        })
        .await
    }

    /// The stadium's availability document, as fans read it through the edge.
    async fn availability(&self) -> Value {
        let reply = self
            .api()
            .get(&format!("/v1/shows/{}/availability", self.show))
            .await;
        reply.expect_status(200);
        reply.json()
    }

    /// `n` fans (accounts of their own) join the stadium's queue through the API; their
    /// queue tokens.
    async fn fans_join(&self, n: usize) -> Vec<String> {
        let mut tokens = Vec::with_capacity(n);
        for _ in 0..n {
            let (_, session) = create_account(&self.db).await;
            let joined = self
                .api()
                .bearer(&session)
                .post(
                    "/v1/waiting-room/sessions",
                    &json!({ "show_id": self.show }),
                )
                .await;
            joined.expect_status(201);
            tokens.push(
                joined.json()["queue_token"]
                    .as_str()
                    .expect("a queue token")
                    .to_owned(),
            );
        }
        self.step().await;
        tokens
    }

    /// The fans holding `tokens` poll, keeping their places; those called are admitted and
    /// leave the list.
    async fn fans_poll(&self, tokens: &mut Vec<String>) {
        let path = format!("/v1/waiting-room/sessions/current?show_id={}", self.show);
        let mut still_queued = Vec::new();
        for token in tokens.drain(..) {
            let polled = self.api().bearer(&token).get(&path).await;
            polled.expect_status(200);
            if polled.json()["status"] != "admitted" {
                still_queued.push(token);
            }
        }
        *tokens = still_queued;
    }

    /// Seats of the stadium show not available (held, sold) right now, in the database.
    async fn seats_taken(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM seat_inventory WHERE show_id = $1::uuid AND status <> 'available'",
        )
        .bind(&self.show)
        .fetch_one(&self.db.pool)
        .await
        .expect("count seats")
    }
}

// ---------------------------------------------------------------------------------------
// steps shared by the flows

/// From the show page (signed in): joins the queue, and once admitted (the clock moved a
/// second at a time, with nobody ahead) arrives on the seat page.
async fn queue_and_get_in(b: &Browser, stack: &Stack) {
    b.step("join");
    b.click("join-queue").await;
    let queue = format!("/shows/{}/queue", stack.show);
    b.wait_path("the waiting room", &queue).await;
    b.wait_for::<u64>(
        "a place in the queue",
        "const e = document.querySelector('[data-testid=\"queue-position\"]');
         const digits = e ? e.textContent.replace(/[^0-9]/g, '') : '';
         return digits === '' ? null : Number(digits);",
        vec![],
    )
    .await;
    b.check_page("queue").await;
    b.step("admission");
    // A second of the clock calls the fan; the page's next poll (on its own schedule, about
    // every two seconds) claims the call within the grace, which the clock never passes.
    stack.tick(Duration::from_secs(1)).await;
    b.wait_path("the seat page", &format!("/shows/{}/seats", stack.show))
        .await;
}

/// On the seat page: waits for the map's first paint, holds `quantity` best-available seats
/// in the first section, and arrives on the hold page; returns the hold's id.
async fn hold_best_seats(b: &Browser, stack: &Stack, quantity: u32) -> Uuid {
    hold_best(b, stack, None, quantity).await
}

/// Holds the best `quantity` seats of the first section in the best-available list, or
/// `quantity` places of the general-admission section `standing`; the hold's id.
async fn hold_best(b: &Browser, stack: &Stack, standing: Option<&str>, quantity: u32) -> Uuid {
    b.step("seats");
    wait_first_paint(b).await;
    b.check_page("seats").await;
    let section: String = b
        .wait_for(
            "the section list",
            "const s = document.querySelector('[data-testid=\"section-select\"]');
             const o = s && [...s.options].find((o) => o.value !== ''
               && (arguments[0] === null || o.value === arguments[0]));
             return o ? o.value : null;",
            vec![json!(standing)],
        )
        .await;
    b.select("section-select", &section).await;
    b.select("quantity-select", &quantity.to_string()).await;
    b.click("hold-submit").await;
    b.step("hold");
    let prefix = format!("/shows/{}/holds/", stack.show);
    let hold: String = b
        .wait_for(
            "the hold page",
            "return location.pathname.startsWith(arguments[0])
               ? location.pathname.slice(arguments[0].length) : null;",
            vec![json!(prefix)],
        )
        .await;
    let countdown = b.text("hold-countdown").await;
    assert!(
        countdown.chars().filter(char::is_ascii_digit).count() >= 3 && countdown.contains(':'),
        "a countdown: {countdown}"
    );
    // It counts down (the hold's expiry is on the origin's clock, which runs).
    b.wait_for::<bool>(
        "the countdown to move",
        "const e = document.querySelector('[data-testid=\"hold-countdown\"]');
         return !!e && e.textContent.trim() !== arguments[0];",
        vec![json!(countdown)],
    )
    .await;
    let held: Vec<String> = b
        .wait_for(
            "the held seats",
            "const items = [...document.querySelectorAll('[data-testid=\"held-seats\"] li')];
             return items.length ? items.map((e) => e.textContent) : null;",
            vec![],
        )
        .await;
    match standing {
        None => assert_eq!(held.len(), quantity as usize, "{held:?}"),
        Some(_) => assert_eq!(
            held,
            [format!("{quantity} standing places, Floor (standing)")]
        ),
    }
    b.check_page("hold").await;
    Uuid::parse_str(&hold).expect("a hold id in the path")
}

/// Waits until the seat map has drawn once; the first-paint mark's time since navigation.
async fn wait_first_paint(b: &Browser) -> f64 {
    b.wait_visible("seat-map").await;
    b.wait_for(
        "the seat map's first paint",
        "const m = performance.getEntriesByName('seatmap-first-paint', 'mark')[0];
         return m ? m.startTime : null;",
        vec![],
    )
    .await
}

/// From the hold page: on to checkout, pays with `card`.
async fn pay_with(b: &Browser, stack: &Stack, hold: Uuid, card: &str) {
    b.step("checkout");
    b.click("continue-to-payment").await;
    b.wait_path(
        "the checkout",
        &format!("/shows/{}/checkout/{hold}", stack.show),
    )
    .await;
    b.wait_visible("pay-submit").await;
    b.wait_visible("hold-countdown").await;
    b.check_page("checkout").await;
    b.step(&format!("pay-{card}"));
    b.select("payment-method", card).await;
    b.click("pay-submit").await;
}

/// Waits for the confirmed order's page with `tickets` loaded QR codes; the order's id.
async fn confirmed_order(b: &Browser, tickets: usize) -> Uuid {
    b.step("order");
    let order: String = b
        .wait_for(
            "the order page",
            "const m = /^\\/orders\\/([0-9a-f-]{36})$/.exec(location.pathname);
             return m ? m[1] : null;",
            vec![],
        )
        .await;
    b.wait_for::<bool>(
        "the order to be confirmed",
        "const e = document.querySelector('[data-testid=\"order-status\"]');
         return !!e && e.dataset.status === 'confirmed';",
        vec![],
    )
    .await;
    b.wait_ticket_codes(tickets).await;
    b.check_page("order").await;
    Uuid::parse_str(&order).expect("an order id in the path")
}

/// An account made in the database (its email and password [`TEST_PASSWORD`]), signed in
/// through the sign-in page, on the stadium show's page.
async fn signed_in_on_the_show(b: &Browser, stack: &Stack) -> Uuid {
    let (account, _) = create_account(&stack.db).await;
    let show = format!("/shows/{}", stack.show);
    b.sign_in(&email_of(account), &show).await;
    b.wait_visible("join-queue").await;
    b.check_page("show").await;
    account
}

// ---------------------------------------------------------------------------------------
// the tests

#[tokio::test(flavor = "multi_thread")]
async fn the_app_is_served_with_its_security_headers() {
    flow(
        "the_app_is_served_with_its_security_headers",
        |flow| async move {
            let stack = flow.stack().await;
            let page = stack.api().get("/").await;
            page.expect_status(200);
            assert!(page
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/html")));
            let csp = page
                .header("content-security-policy")
                .expect("a Content-Security-Policy");
            for directive in [
                "default-src 'none'",
                "script-src 'self'",
                "frame-ancestors 'none'",
            ] {
                assert!(csp.contains(directive), "{directive} in {csp}");
            }
            assert!(
                !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
                "{csp}"
            );
            assert_eq!(page.header("x-content-type-options"), Some("nosniff"));

            let b = flow.browser("fan", &stack.base).await;
            b.step("events");
            b.open("/").await;
            let cards: u64 = b
                .wait_for(
                    "the event cards",
                    "const n = document.querySelectorAll('[data-testid=\"event-card\"]').length;
                 return n >= 2 ? n : null;",
                    vec![],
                )
                .await;
            assert_eq!(cards, 2, "the demo's two events");
            b.check_page("/").await;
            // The policy holds in the browser: an inline script is refused, while WebDriver's
            // own script execution (which loaded axe-core above) is not subject to it.
            b.step("csp");
            let ran = b
                .js(
                    "const s = document.createElement('script');
                 s.textContent = 'window.inlineRan = true;';
                 document.head.append(s);
                 return window.inlineRan === true;",
                    vec![],
                )
                .await;
            assert_eq!(ran, json!(false), "an inline script ran despite the policy");
            assert_eq!(b.js("return typeof window.axe;", vec![]).await, "object");
            let refused = b.wd.issue_cmd(BrowserLog).await.expect("the browser log");
            assert!(
                refused
                    .as_array()
                    .is_some_and(|entries| entries.iter().any(|e| e["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("Content Security Policy")))),
                "the refusal is reported: {refused}"
            );

            // The checks see what they look for: a console error, an image without a text.
            b.step("checks");
            b.js(
                "console.error('a console error');
             const img = document.createElement('img');
             img.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==';
             img.id = 'unlabelled';
             document.querySelector('main').append(img);",
                vec![],
            )
            .await;
            let logged = b.wd.issue_cmd(BrowserLog).await.expect("the browser log");
            assert!(
                logged
                    .as_array()
                    .is_some_and(|entries| entries.iter().any(|e| e["level"] == "SEVERE"
                        && e["message"].to_string().contains("a console error"))),
                "{logged}"
            );
            let found = b.axe("/ (with an unlabelled image)").await;
            assert!(
                found
                    .iter()
                    .any(|(impact, line)| impact == "critical" && line.contains("image-alt")),
                "{found:?}"
            );
            b.js("document.getElementById('unlabelled').remove();", vec![])
                .await;
            b.check_page("/").await;
        },
    )
    .await;
}

/// Flow 1: sign up, queue behind other fans while the position counts down, get in, hold
/// two seats best-available, pay with the card that succeeds, see the tickets; then, in a
/// fresh profile, sign in and find the order and its tickets again.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_fan_queues_buys_two_seats_and_finds_them_again() {
    flow(
        "a_new_fan_queues_buys_two_seats_and_finds_them_again",
        |flow| async move {
            let stack = flow.stack().await;
            let b = flow.browser("fan", &stack.base).await;
            let show_path = format!("/shows/{}", stack.show);

            b.step("events");
            b.open("/").await;
            b.wait_visible("event-card").await;
            b.check_page("/").await;
            b.click_css(&format!(
                "{}[href=\"/events/{}\"]",
                testid("event-card"),
                stack.event
            ))
            .await;
            b.step("event");
            b.wait_path("the event page", &format!("/events/{}", stack.event))
                .await;
            let tickets = format!("a[href=\"{show_path}\"]");
            b.wait_for::<bool>(
                "the show's link",
                "return !!document.querySelector(arguments[0]);",
                vec![json!(tickets)],
            )
            .await;
            b.check_page("event").await;
            b.click_css(&tickets).await;
            b.step("show");
            b.wait_path("the show page", &show_path).await;
            b.wait_visible("join-queue").await;
            b.check_page("show").await;

            // Joining needs an account: the show page sends the fan to sign in, and from
            // there to sign up, coming back to the queue.
            b.step("signup");
            b.click("join-queue").await;
            b.wait_visible("signin-email").await;
            b.check_page("/signin").await;
            let queue_path = format!("{show_path}/queue");
            b.click_css("main a[href^=\"/signup\"]").await;
            b.wait_visible("signup-name").await;
            b.check_page("/signup").await;
            let email = format!("new-fan-{}@example.test", Uuid::new_v4().simple());
            b.fill("signup-name", "Nora Fan").await;
            b.fill("signup-email", &email).await;
            b.fill("signup-password", "a-long-enough-password").await;
            // Others are in line first, so the new fan's place is behind them.
            let mut others = stack.fans_join(4).await;
            b.click("signup-submit").await;

            b.step("queue");
            b.wait_path("the waiting room", &queue_path).await;
            let mut position: u64 = b
                .wait_for(
                    "a place in the queue",
                    "const e = document.querySelector('[data-testid=\"queue-position\"]');
                     const digits = e ? e.textContent.replace(/[^0-9]/g, '') : '';
                     return digits === '' ? null : Number(digits);",
                    vec![],
                )
                .await;
            assert_eq!(position, 4, "behind the four fans who joined first");
            let live: Value = b
                .js(
                    "const e = document.querySelector('[data-testid=\"queue-status\"]');
                     return [e.getAttribute('role'), e.getAttribute('aria-live')];",
                    vec![],
                )
                .await;
            assert_eq!(live, json!(["status", "polite"]));
            b.check_page("queue").await;
            b.check_narrow("queue").await;

            // The queue moves one fan a second of the edge's clock; the others keep polling.
            b.step("countdown");
            let mut positions = vec![position];
            loop {
                stack.fans_poll(&mut others).await;
                stack.tick(Duration::from_secs(1)).await;
                match b.queue_position_below(position).await {
                    Some(next) => {
                        position = next;
                        positions.push(next);
                        if next == 2 && screenshots_wanted() {
                            b.wait_visible("queue-eta").await;
                            b.save_screenshot("queue.png").await;
                        }
                    }
                    None => break,
                }
            }
            eprintln!("queue positions seen: {positions:?}");
            assert_eq!(positions.first(), Some(&4));
            assert_eq!(positions.last(), Some(&0), "next in line before admission");
            assert!(positions.windows(2).all(|w| w[1] < w[0]));

            b.step("admitted");
            b.wait_path("the seat page", &format!("{show_path}/seats"))
                .await;
            wait_first_paint(&b).await;
            let first_paint = b
                .js(
                    "const code = performance.getEntriesByType('resource')
                       .find((e) => e.name.endsWith('/pages/seats.js'));
                     const mark = performance.getEntriesByName('seatmap-first-paint', 'mark')[0];
                     return code ? Math.round(mark.startTime - code.startTime) : null;",
                    vec![],
                )
                .await;
            eprintln!(
                "seat map first paint, in-app navigation from the queue: {first_paint} ms after \
                 the seat page's code was requested"
            );
            b.check_narrow("seats").await;
            if screenshots_wanted() {
                b.js(
                    "const map = document.querySelector('[data-testid=\"seat-map\"]').closest('section');
                     window.scrollTo(0, map.getBoundingClientRect().top + window.scrollY - 24);",
                    vec![],
                )
                .await;
                b.save_screenshot("seat-map.png").await;
                b.js("window.scrollTo(0, 0);", vec![]).await;
            }
            let hold = hold_best_seats(&b, &stack, 2).await;
            assert_eq!(stack.seats_taken().await, 2, "two seats held");
            pay_with(&b, &stack, hold, "pm_card_ok").await;
            let order = confirmed_order(&b, 2).await;
            let (status, tickets): (String, i64) = sqlx::query_as(
                "SELECT o.status::text, (SELECT count(*) FROM tickets t WHERE t.order_id = o.id)
                 FROM orders o WHERE o.id = $1",
            )
            .bind(order)
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
            assert_eq!((status.as_str(), tickets), ("confirmed", 2));

            // Another browser, nothing remembered: sign in, find the order and its tickets.
            let fresh = flow.browser("fresh-profile", &stack.base).await;
            fresh.step("sign-in");
            fresh.open("/signin?next=%2Forders").await;
            fresh.wait_visible("signin-email").await;
            fresh.check_page("/signin").await;
            fresh.fill("signin-email", &email).await;
            fresh.fill("signin-password", "a-long-enough-password").await;
            fresh.click("signin-submit").await;
            fresh.step("orders");
            fresh.wait_path("the order history", "/orders").await;
            let link = format!("{} a[href=\"/orders/{order}\"]", testid("orders-list"));
            fresh
                .wait_for::<bool>(
                    "the order in the history",
                    "return !!document.querySelector(arguments[0]);",
                    vec![json!(link)],
                )
                .await;
            fresh.check_page("/orders").await;
            fresh.click_css(&link).await;
            assert_eq!(confirmed_order(&fresh, 2).await, order);

            // The stadium's codes rotate: the page draws each step's code itself, from the
            // ticket's secret, on the clock of the ticket list, which is the gate's. Four
            // steps of the origin's clock later the page, loaded again, shows new codes, and
            // the gate takes those and refuses a screenshot of the old ones. (The page's
            // clock runs on from the list's time; four steps leave it 30 s for that.)
            fresh.step("live codes");
            let step = stack.codes_clock.now_ms() / stack.period_ms;
            let screenshot = fresh.live_codes(step).await;
            stack
                .codes_clock
                .advance(Duration::from_millis(4 * stack.period_ms as u64));
            fresh.open(&format!("/orders/{order}")).await;
            let live = fresh.live_codes(step + 4).await;
            let door = onsale_tests::Door::open(stack.origin.addr(), &stack.show, "north").await;
            let verdict = |payload: String| {
                let door = &door;
                async move { door.verify(&payload).await["result"].clone() }
            };
            let signed = |payload: &str| payload.rsplitn(3, '.').nth(2).unwrap().to_owned();
            let mut ids = HashSet::new();
            for ((old_step, old), (live_step, code)) in screenshot.iter().zip(&live) {
                assert_eq!(signed(old), signed(code), "the same ticket");
                assert!(code.ends_with(&format!(".{live_step}.{}", &code[code.len() - 8..])));
                assert!(old_step < live_step && old != code, "{old} then {code}");
                assert_eq!(verdict(old.clone()).await, "stale_code", "{old}");
                assert_eq!(verdict(code.clone()).await, "valid", "{code}");
                ids.insert(signed(code));
            }
            assert_eq!(ids.len(), 2, "two tickets");

            // The account page lists the same tickets, live too.
            fresh.step("account");
            fresh.open("/account").await;
            fresh.wait_ticket_codes(2).await;
            let listed = fresh.live_codes(step + 4).await;
            let mut on_account: Vec<String> = listed.iter().map(|(_, p)| signed(p)).collect();
            on_account.sort();
            let mut on_order: Vec<String> = ids.into_iter().collect();
            on_order.sort();
            assert_eq!(on_account, on_order);
            fresh.check_page("/account").await;
        },
    )
    .await;
}

/// Flow 2: a declined card: the refusal is shown, and the seats are free again in the
/// database and in the availability fans read.
#[tokio::test(flavor = "multi_thread")]
async fn a_declined_card_is_told_and_frees_the_seats() {
    flow("a_declined_card_is_told_and_frees_the_seats", |flow| async move {
        let stack = flow.stack().await;
        let b = flow.browser("fan", &stack.base).await;
        signed_in_on_the_show(&b, &stack).await;
        queue_and_get_in(&b, &stack).await;
        let hold = hold_best_seats(&b, &stack, 2).await;
        assert_eq!(stack.seats_taken().await, 2);
        let held = stack.rebuild().await;
        assert_eq!(held["held"], 2, "{held}");

        pay_with(&b, &stack, hold, "pm_card_declined").await;
        b.step("declined");
        let message = b.text("error-message").await;
        assert!(message.contains("declined"), "{message}");
        let role: Value = b
            .js(
                "return document.querySelector('[data-testid=\"error-message\"]').getAttribute('role');",
                vec![],
            )
            .await;
        assert_eq!(role, "alert");
        let errors: u64 = b
            .js(
                "return document.querySelectorAll('[data-testid=\"error-message\"]').length;",
                vec![],
            )
            .await
            .as_u64()
            .unwrap();
        assert_eq!(errors, 1, "one error message per page");
        b.check_page_showing_an_error("checkout (declined)").await;

        let (hold_status, order_status): (String, String) = sqlx::query_as(
            "SELECT h.status::text, o.status::text FROM holds h JOIN orders o ON o.hold_id = h.id
             WHERE h.id = $1",
        )
        .bind(hold)
        .fetch_one(&stack.db.pool)
        .await
        .unwrap();
        assert_eq!(order_status, "payment_failed");
        assert_ne!(hold_status, "active");
        assert_eq!(stack.seats_taken().await, 0, "the seats are back on sale");
        let freed = stack.rebuild().await;
        assert_eq!(freed["held"], 0, "{freed}");
        assert_eq!(freed["available"], freed["total"], "{freed}");
    })
    .await;
}

/// Flow 3: a card that asks for 3-D Secure goes through its challenge and ends confirmed.
#[tokio::test(flavor = "multi_thread")]
async fn a_three_d_secure_card_is_approved_and_confirmed() {
    flow(
        "a_three_d_secure_card_is_approved_and_confirmed",
        |flow| async move {
            let stack = flow.stack().await;
            let b = flow.browser("fan", &stack.base).await;
            signed_in_on_the_show(&b, &stack).await;
            queue_and_get_in(&b, &stack).await;
            let hold = hold_best_seats(&b, &stack, 2).await;
            pay_with(&b, &stack, hold, "pm_card_3ds").await;
            b.step("challenge");
            b.wait_visible("three-ds").await;
            b.check_page("checkout (3-D Secure)").await;
            b.click("three-ds-approve").await;
            let order = confirmed_order(&b, 2).await;
            let status: String =
                sqlx::query_scalar("SELECT status::text FROM orders WHERE id = $1")
                    .bind(order)
                    .fetch_one(&stack.db.pool)
                    .await
                    .unwrap();
            assert_eq!(status, "confirmed");
        },
    )
    .await;
}

/// Flow 4: a fan pauses live updates, its turn comes and the no-show grace passes on the
/// edge's clock; on resuming, the page says the turn was missed (and joining again works).
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_fan_whose_turn_passed_is_told_on_resuming() {
    flow(
        "a_paused_fan_whose_turn_passed_is_told_on_resuming",
        |flow| async move {
            let stack = flow.stack().await;
            let b = flow.browser("fan", &stack.base).await;
            signed_in_on_the_show(&b, &stack).await;
            let mut others = stack.fans_join(2).await;
            b.step("join");
            b.click("join-queue").await;
            let queue = format!("/shows/{}/queue", stack.show);
            b.wait_path("the waiting room", &queue).await;
            b.wait_for::<bool>(
                "a place behind the two others",
                "const e = document.querySelector('[data-testid=\"queue-position\"]');
                 return !!e && e.textContent.trim() === '2';",
                vec![],
            )
            .await;
            b.check_page("queue").await;

            b.step("pause");
            // Right after a poll's answer, so none is in flight when the fan pauses and the
            // polls counted below are all the page made.
            let updated = b.text("queue-updated").await;
            b.wait_for::<bool>(
                "a poll to be answered",
                "const e = document.querySelector('[data-testid=\"queue-updated\"]');
                 return e.textContent.trim() !== arguments[0];",
                vec![json!(updated)],
            )
            .await;
            b.click("queue-pause").await;
            b.wait_for::<bool>(
                "the paused banner",
                "const p = document.querySelector('[data-testid=\"queue-pause\"]');
                 return p.getAttribute('aria-pressed') === 'true'
                   && !!document.querySelector('[data-testid=\"queue-banner\"][data-kind=\"updates-paused\"]');",
                vec![],
            )
            .await;
            b.check_page("queue (paused)").await;
            let polled_before = b
                .js(
                    "return performance.getEntriesByType('resource')
                       .filter((e) => e.name.includes('/sessions/current')).length;",
                    vec![],
                )
                .await;

            // The others are called and get in; the fan's turn comes while it is silent,
            // and its call lapses after the grace (10 s): three graces of clock, a second
            // at a time.
            b.step("turn-passes");
            for _ in 0..33 {
                stack.fans_poll(&mut others).await;
                stack.tick(Duration::from_secs(1)).await;
            }
            assert!(others.is_empty(), "the fans ahead were admitted");
            let polled_after = b
                .js(
                    "return performance.getEntriesByType('resource')
                       .filter((e) => e.name.includes('/sessions/current')).length;",
                    vec![],
                )
                .await;
            assert_eq!(polled_before, polled_after, "no polls while paused");
            assert_eq!(b.path().await, queue, "not admitted while paused");

            b.step("resume");
            b.expect_failure("/v1/waiting-room/sessions/current", 410);
            b.click("queue-pause").await;
            b.wait_visible("queue-banner").await;
            b.wait_for::<bool>(
                "the turn-missed banner",
                "return !!document.querySelector('[data-testid=\"queue-banner\"][data-kind=\"turn-missed\"]');",
                vec![],
            )
            .await;
            b.check_page("queue (turn missed)").await;

            // Joining again takes a new place at the back (nobody is left ahead).
            b.step("rejoin");
            b.click_css(&format!(
                "{}[data-kind=\"turn-missed\"] button",
                testid("queue-banner")
            ))
            .await;
            b.wait_for::<bool>(
                "a new place",
                "const e = document.querySelector('[data-testid=\"queue-position\"]');
                 return !!e && e.textContent.trim() === '0';",
                vec![],
            )
            .await;
            b.check_page("queue (joined again)").await;
        },
    )
    .await;
}

/// Flow 5: the stadium's standing floor is sold by count: the seat page lists it with the
/// places left, a fan holds two places, pays, and gets two tickets without a seat.
#[tokio::test(flavor = "multi_thread")]
async fn a_fan_buys_two_standing_places_on_the_floor() {
    flow(
        "a_fan_buys_two_standing_places_on_the_floor",
        |flow| async move {
            let stack = flow.stack().await;
            let b = flow.browser("fan", &stack.base).await;
            signed_in_on_the_show(&b, &stack).await;
            queue_and_get_in(&b, &stack).await;
            wait_first_paint(&b).await;
            let listed: String = b
                .wait_for(
                    "the floor in the section list",
                    "const s = document.querySelector('[data-testid=\"section-select\"]');
                     const o = s && [...s.options].find((o) => o.value === 'FLOOR');
                     return o ? o.textContent : null;",
                    vec![],
                )
                .await;
            assert!(
                listed.contains("standing") && listed.contains("places left"),
                "{listed}"
            );
            let hold = hold_best(&b, &stack, Some("FLOOR"), 2).await;
            pay_with(&b, &stack, hold, "pm_card_ok").await;
            let order = confirmed_order(&b, 2).await;
            let named: Vec<String> = b
                .js(
                    "return [...document.querySelectorAll('.ticket__seat')].map((e) => e.textContent);",
                    vec![],
                )
                .await
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(named.len(), 2);
            assert!(
                named.iter().all(|n| n.starts_with("FLOOR, standing, place ")),
                "{named:?}"
            );
            let seatless: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM tickets
                 WHERE order_id = $1 AND seat_id IS NULL AND ga_section = 'FLOOR' AND status = 'valid'",
            )
            .bind(order)
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
            assert_eq!(seatless, 2);
        },
    )
    .await;
}

/// Flow 6: the stadium is sold out (every seat and place held by a wall of other fans); a
/// fan joins its waitlist from the show page for two seats, two seats come back, and the
/// page offers them: the fan buys them with the admission the offer gives, without queueing.
#[tokio::test(flavor = "multi_thread")]
async fn a_fan_on_the_waitlist_buys_two_seats_that_came_back() {
    flow(
        "a_fan_on_the_waitlist_buys_two_seats_that_came_back",
        |flow| async move {
            let stack = flow.stack().await;
            let wall = "wall-of-fans";
            for sql in [
                "INSERT INTO holds (id, show_id, fan_id, status, seat_count, total_cents, currency,
                                    expires_at, seat_ids)
                 SELECT md5($2 || i.seat_id)::uuid, i.show_id, $2, 'active', 1, 0, s.currency,
                        now() + interval '1 day', ARRAY[i.seat_id]
                 FROM seat_inventory i JOIN shows s ON s.id = i.show_id
                 WHERE i.show_id = $1::uuid AND i.status = 'available'",
                "UPDATE seat_inventory SET status = 'held', hold_id = md5($2 || seat_id)::uuid,
                        hold_expires_at = now() + interval '1 day'
                 WHERE show_id = $1::uuid AND status = 'available'",
                "WITH taken AS (UPDATE ga_inventory SET available = 0
                                WHERE show_id = $1::uuid RETURNING show_id, section_id, capacity)
                 INSERT INTO holds (id, show_id, fan_id, status, seat_count, total_cents, currency,
                                    expires_at, seat_ids, ga_section)
                 SELECT gen_random_uuid(), t.show_id, $2, 'active', t.capacity, 0, s.currency,
                        now() + interval '1 day', '{}', t.section_id
                 FROM taken t JOIN shows s ON s.id = t.show_id",
            ] {
                sqlx::query(sql)
                    .bind(&stack.show)
                    .bind(wall)
                    .execute(&stack.db.pool)
                    .await
                    .unwrap();
            }
            assert_eq!(stack.rebuild().await["available"], 0);

            let b = flow.browser("fan", &stack.base).await;
            // The panel asks for the fan's entry: none yet.
            b.expect_failure("/waitlist", 404);
            signed_in_on_the_show(&b, &stack).await;
            b.step("waitlist");
            b.wait_visible("join-waitlist").await;
            b.check_page("show, sold out").await;
            b.select("waitlist-quantity", "2").await;
            b.click("join-waitlist").await;
            let place = b.text("waitlist-position").await;
            assert!(place.contains("number 1") && place.contains("2 seats"), "{place}");

            // Two seats side by side come back: the wall's holds of the first two seats.
            let back: Vec<(Uuid, i64)> = sqlx::query_as(
                "SELECT hold_id, seat_id FROM seat_inventory
                 WHERE show_id = $1::uuid AND status = 'held' ORDER BY layout_idx LIMIT 2",
            )
            .bind(&stack.show)
            .fetch_all(&stack.db.pool)
            .await
            .unwrap();
            let walled = client(stack.origin.addr()).bearer(&admission(wall, &stack.show));
            for (hold, _) in &back {
                walled
                    .request(reqwest::Method::DELETE, &format!("/v1/holds/{hold}"), None)
                    .await
                    .expect_status(204);
            }
            b.step("offer");
            let offer = b.text("waitlist-offer").await;
            assert!(offer.contains("held for you until"), "{offer}");
            b.check_page("show, offer").await;
            b.click("buy-offer").await;
            let hold: String = b
                .wait_for(
                    "the offer's hold page",
                    "const p = `/shows/${arguments[0]}/holds/`;
                     return location.pathname.startsWith(p) ? location.pathname.slice(p.length) : null;",
                    vec![json!(stack.show)],
                )
                .await;
            let hold = Uuid::parse_str(&hold).expect("a hold id in the path");
            let offered: Vec<i64> =
                sqlx::query_scalar("SELECT unnest(seat_ids) FROM holds WHERE id = $1 ORDER BY 1")
                    .bind(hold)
                    .fetch_all(&stack.db.pool)
                    .await
                    .unwrap();
            let mut returned: Vec<i64> = back.iter().map(|(_, seat)| *seat).collect();
            returned.sort_unstable();
            assert_eq!(offered, returned, "the offer is the seats that came back");
            pay_with(&b, &stack, hold, "pm_card_ok").await;
            confirmed_order(&b, 2).await;
        },
    )
    .await;
}

/// The stadium's seat map loaded cold in a fresh profile (and again from its cache): the
/// time to its first paint, what the page transferred, and its layout at 360 px.
#[tokio::test(flavor = "multi_thread")]
async fn the_stadium_seat_map_first_paint_is_measured() {
    flow(
        "the_stadium_seat_map_first_paint_is_measured",
        |flow| async move {
            let stack = flow.stack().await;
            let b = flow.browser("fan", &stack.base).await;
            let seats = format!("/shows/{}/seats", stack.show);
            b.step("cold");
            b.open(&seats).await;
            let cold = wait_first_paint(&b).await;
            eprintln!("seat map first paint, cold load: {cold:.0} ms after navigation start");
            b.check_page("seats (cold)").await;
            let drawn: u64 = b
                .js(
                    "const c = document.querySelector('[data-testid=\"seat-map\"]');
                     return c.width * c.height;",
                    vec![],
                )
                .await
                .as_u64()
                .unwrap();
            assert!(drawn > 0, "the canvas has a size");
            b.check_narrow("seats").await;
            b.step("warm");
            b.wd.refresh().await.expect("reload");
            let warm = wait_first_paint(&b).await;
            eprintln!("seat map first paint, reload: {warm:.0} ms after navigation start");
            b.check_page("seats (reload)").await;
        },
    )
    .await;
}
