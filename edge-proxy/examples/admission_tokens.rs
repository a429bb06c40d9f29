//! Prints admission tokens for `bench/edge.sh`, one per line, for distinct fans of a show.
//!
//! Usage: admission_tokens SIGNING_KEY_PEM SHOW_ID COUNT

use onsale_contract::tokens::{Signer, TokenType};
use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, key, show, count] = args.as_slice() else {
        return Err("usage: admission_tokens SIGNING_KEY_PEM SHOW_ID COUNT".into());
    };
    let signer = Signer::from_pem(&std::fs::read_to_string(key)?, "onsale-edge")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    for fan in 0..count.parse::<usize>()? {
        let token = signer.issue(
            TokenType::Admit,
            &format!("bench-fan-{fan}"),
            show,
            now,
            3600,
            None,
        );
        println!("{token}");
    }
    Ok(())
}
