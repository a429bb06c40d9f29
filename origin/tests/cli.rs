//! `--check` against the real binary.

use onsale_contract::testing::{
    assert_check_names_unknown_key, assert_check_prints_effective_config,
};

const BINARY: &str = env!("CARGO_BIN_EXE_origin");
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/origin.toml");

#[test]
fn check_rejects_an_unknown_key_naming_it() {
    assert_check_names_unknown_key(BINARY, CONFIG, "http", "lisen");
}

#[test]
fn check_accepts_the_committed_file_and_redacts_secrets() {
    let printed = assert_check_prints_effective_config(BINARY, CONFIG, "http");
    assert!(printed.contains(r#"token = "<redacted>""#), "{printed}");
    assert!(!printed.contains("dev-admin-token"), "{printed}");
}
