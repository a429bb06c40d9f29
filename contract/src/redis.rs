//! One way to open Redis for every binary: a multiplexed connection that reconnects by
//! itself, where every call fails after `timeout` instead of waiting on a Redis that is
//! away. Connecting makes one attempt; callers own their retry pacing.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// A reconnecting connection to `url` whose connects and calls time out after `timeout`.
pub async fn connect(url: &str, timeout: Duration) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout)
        .set_number_of_retries(0)
        .set_max_delay(1_000);
    redis::Client::open(url)?
        .get_connection_manager_with_config(config)
        .await
}
