//! Test support shared by the binaries' own CLI tests (feature `testing`, dev-only).

use std::path::Path;
use std::process::{Command, Output};

fn check(binary: &str, config: &Path) -> Output {
    Command::new(binary)
        .arg("--config")
        .arg(config)
        .arg("--check")
        .output()
        .expect("run the binary")
}

/// `binary --check` on `config` with an unknown `key` added to `[table]` fails, naming
/// `table.key` on stderr.
pub fn assert_check_names_unknown_key(binary: &str, config: &str, table: &str, key: &str) {
    let text = std::fs::read_to_string(config).expect("read the committed config");
    let header = format!("[{table}]");
    assert!(text.contains(&header), "{config} has no {header}");
    let broken = text.replacen(&header, &format!("{header}\n{key} = 1"), 1);
    let path = std::env::temp_dir().join(format!("onsale-check-{}-{key}.toml", std::process::id()));
    std::fs::write(&path, broken).expect("write the broken config");
    let output = check(binary, &path);
    let _ = std::fs::remove_file(&path);
    assert!(
        !output.status.success(),
        "a broken config must fail --check"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("key `{table}.{key}`")), "{stderr}");
}

/// `binary --check` accepts the committed `config` and prints the effective values, with
/// secrets redacted.
pub fn assert_check_prints_effective_config(binary: &str, config: &str, table: &str) -> String {
    let output = check(binary, Path::new(config));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(stdout.contains(&format!("[{table}]")), "{stdout}");
    stdout
}
