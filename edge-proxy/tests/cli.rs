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
