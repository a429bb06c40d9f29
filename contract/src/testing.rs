//! Test support shared by the binaries' own tests (feature `testing`, dev-only): their CLI
//! checks, and what their property tests have in common.

use proptest::prelude::*;
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

/// A configuration file's `text` with one to three of its settings or table headers damaged:
/// the line deleted, or its value (a header: the whole line) replaced by a number, a string,
/// an extreme of some TOML type or any text at all.
pub fn damaged_config(text: &str) -> impl Strategy<Value = String> {
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Comments and blank lines are left alone: damaging them changes nothing.
    let live: Vec<usize> = (0..lines.len())
        .filter(|&i| !lines[i].trim().is_empty() && !lines[i].trim_start().starts_with('#'))
        .collect();
    // Mostly plausible numbers, so that many damaged files parse and reach validation.
    let value = prop_oneof![
        3 => (0..100_000i64).prop_map(|n| n.to_string()),
        2 => (0.0..100_000.0f64).prop_map(|x| toml::Value::Float(x).to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|x| toml::Value::Float(x).to_string()),
        1 => prop::sample::select(&[
            "nan",
            "inf",
            "-inf",
            "1e300",
            "0",
            "-1",
            "9223372036854775807",
            "-9223372036854775808",
            "true",
            "[]",
            "{}",
            "\"\"",
        ][..])
        .prop_map(str::to_owned),
        1 => any::<String>().prop_map(|s| toml::Value::String(s).to_string()),
        1 => "(?s).{0,40}",
    ];
    let edit = (
        prop::sample::select(live),
        prop::option::weighted(0.8, value),
    );
    prop::collection::vec(edit, 1..=3).prop_map(move |edits| {
        let mut lines = lines.clone();
        for (at, value) in edits {
            lines[at] = match (value, lines[at].split_once('=')) {
                (None, _) => String::new(),
                (Some(value), Some((key, _))) => format!("{key}= {value}"),
                (Some(value), None) => value,
            };
        }
        lines.join("\n")
    })
}

/// The property tests every binary's configuration gets, in its `config.rs` test module
/// (with `Config` in scope): any text at all is loaded or refused without a panic, and a
/// damaged copy of the committed `config/<file>` is refused or leaves a configuration `fit`
/// checks the running program can use. Loading is parsing and `Config::validate`, short of
/// the environment overrides.
#[macro_export]
macro_rules! config_file_properties {
    ($file:literal, |$config:ident| $fit:block) => {
        fn committed() -> std::path::PathBuf {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(concat!("../config/", $file))
        }

        fn load_text(text: &str) -> Result<Config, $crate::config::ConfigError> {
            let config: Config = $crate::config::parse(&committed(), text)?;
            config.validate(&committed())?;
            Ok(config)
        }

        proptest::proptest! {
            #[test]
            fn any_text_is_loaded_or_refused(text in proptest::prelude::any::<String>()) {
                let _ = load_text(&text);
            }

            #[test]
            fn a_damaged_committed_file_is_refused_or_fit_to_run(
                text in $crate::testing::damaged_config(
                    &std::fs::read_to_string(committed()).unwrap()
                )
            ) {
                if let Ok($config) = load_text(&text) $fit
            }
        }
    };
}
