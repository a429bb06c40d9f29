//! The shell library `scripts/up` runs the stack with (`scripts/lib/stack.sh`), run as it runs
//! it.

use onsale_tests::eventually;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(20);

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

/// A part that crashes is started again, after a delay that doubles, and the terminal is
/// told each time; SIGTERM to its supervisor drains the part and ends both.
#[tokio::test(flavor = "multi_thread")]
async fn a_crashing_part_is_restarted_with_backoff_and_stopped_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let pid_file = dir.path().join("pid");
    let log = dir.path().join("part.log");
    let stderr = dir.path().join("stderr");
    let stack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lib/stack.sh");
    // Crashes twice, then stays up, as a binary that fails until its dependency is back.
    let part = format!(
        "echo run >> {runs}; echo output; if [ $(wc -l < {runs}) -ge 3 ]; then echo $$ > {pid}; exec sleep 600; fi; exit 3",
        runs = runs.display(),
        pid = pid_file.display(),
    );
    let mut supervisor = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -euo pipefail; source {}; supervise part {} sh -c \"$0\"",
            stack.display(),
            log.display()
        ))
        .arg(&part)
        .env("ONSALE_RESTART_DELAY_MS", "50")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let pid: i32 = eventually("the third run to stay up", WITHIN, || async {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    })
    .await;
    assert_eq!(lines(&runs), 3);
    assert_eq!(lines(&log), 3, "every run's output is kept");
    let told = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        told.contains("part exited with status 3; restart 1 in 0.050s")
            && told.contains("part exited with status 3; restart 2 in 0.100s"),
        "the terminal hears of each restart and its delay: {told}"
    );

    let supervisor_pid = rustix::process::Pid::from_child(&supervisor);
    rustix::process::kill_process(supervisor_pid, rustix::process::Signal::TERM).unwrap();
    let status = tokio::time::timeout(
        WITHIN,
        tokio::task::spawn_blocking(move || supervisor.wait()),
    )
    .await
    .expect("the supervisor ends")
    .unwrap()
    .unwrap();
    assert!(status.success(), "a requested stop is no failure: {status}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the part was stopped with its supervisor"
    );
    assert_eq!(lines(&runs), 3, "and not started again");
}
