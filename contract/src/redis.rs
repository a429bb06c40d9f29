//! One way to open Redis for every binary, on one server or on a Redis Cluster: a
//! multiplexed connection that reconnects by itself, where every call fails after `timeout`
//! instead of waiting on a Redis that is away. Connecting makes one attempt; callers own
//! their retry pacing.
//!
//! On a cluster every command goes to the primary of its key's slot. Each show's keys share
//! the show id as their hash tag, so a show's scripts and transactions run on one node.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};
use std::time::Duration;

/// Redirects (`MOVED`, `ASK`) and node reconnects a cluster command may follow within its
/// timeout: enough to ride a failover or a slot migration, which take one or two.
const CLUSTER_RETRIES: u32 = 3;
/// Keys asked for per `SCAN` call.
const SCAN_COUNT: usize = 1000;

/// Where Redis is: one server, or a cluster found through any of its nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    nodes: Vec<String>,
    cluster: bool,
}

/// A Redis URL that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(String);

impl From<TargetError> for redis::RedisError {
    fn from(error: TargetError) -> Self {
        (
            redis::ErrorKind::InvalidClientConfig,
            "bad Redis target",
            error.0,
        )
            .into()
    }
}

impl Target {
    /// `url` names one server; with `cluster`, one or more nodes of the cluster separated by
    /// commas (any one that answers finds the rest).
    pub fn new(url: &str, cluster: bool) -> Result<Target, TargetError> {
        let nodes: Vec<String> = if cluster {
            url.split(',').map(|node| node.trim().to_owned()).collect()
        } else {
            vec![url.to_owned()]
        };
        for node in &nodes {
            if node.is_empty() {
                return Err(TargetError("an empty node in the list".into()));
            }
            if let Err(error) = node.as_str().into_connection_info() {
                return Err(TargetError(format!("not a Redis URL: {error}")));
            }
        }
        Ok(Target { nodes, cluster })
    }

    /// Connects to the target; every call then fails after `timeout`.
    pub async fn connect(&self, timeout: Duration) -> RedisResult<Connection> {
        if !self.cluster {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(timeout)
                .set_response_timeout(timeout)
                .set_number_of_retries(0)
                .set_max_delay(1_000);
            let manager = redis::Client::open(self.nodes[0].as_str())?
                .get_connection_manager_with_config(config)
                .await?;
            return Ok(Connection::Single(manager));
        }
        let cluster = ClusterClientBuilder::new(self.nodes.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(10)
            .max_retry_wait(timeout.as_millis().try_into().unwrap_or(u64::MAX) / 4)
            .build()?
            .get_async_connection()
            .await?;
        Ok(Connection::Cluster(cluster))
    }

    /// A subscription connection to one node, the `attempt`-th in turn: a cluster passes every
    /// `PUBLISH` to all its nodes, so any node hears every channel, and a caller that lost
    /// one node tries the next.
    pub async fn subscriber(&self, attempt: usize) -> RedisResult<redis::aio::PubSub> {
        let node = &self.nodes[attempt % self.nodes.len()];
        redis::Client::open(node.as_str())?.get_async_pubsub().await
    }
}

/// Why `prefix` cannot prefix keys: braces would make it the hash tag of every key, moving
/// a show's keys off its own slot.
pub fn key_prefix_problem(prefix: &str) -> Option<&'static str> {
    (prefix.len() > 64 || prefix.contains(['{', '}', ' ']))
        .then_some("at most 64 characters, without braces or spaces")
}

/// A connection to one server or to a cluster; cheap to clone (clones share it).
#[derive(Clone)]
pub enum Connection {
    /// One server.
    Single(ConnectionManager),
    /// A cluster: a connection to each node, commands routed by their key's slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

impl Connection {
    /// Every key matching `pattern`, by `SCAN` on each primary: a cluster splits its
    /// keyspace among them. Keys written during the scan may or may not be in it.
    pub async fn scan_keys(&mut self, pattern: &str) -> RedisResult<Vec<String>> {
        let mut keys = Vec::new();
        match self {
            Connection::Single(conn) => {
                scan_node(pattern, &mut keys, |scan| {
                    let mut conn = conn.clone();
                    async move { conn.req_packed_command(&scan).await }
                })
                .await?;
            }
            Connection::Cluster(conn) => {
                for (host, port) in primaries(conn).await? {
                    let routing = SingleNodeRoutingInfo::ByAddress { host, port };
                    scan_node(pattern, &mut keys, |scan| {
                        let mut conn = conn.clone();
                        let routing = RoutingInfo::SingleNode(routing.clone());
                        async move { conn.route_command(&scan, routing).await }
                    })
                    .await?;
                }
            }
        }
        Ok(keys)
    }
}

/// Runs one node's `SCAN` iteration through `send`, adding the keys to `keys`.
async fn scan_node<F, Fut>(pattern: &str, keys: &mut Vec<String>, send: F) -> RedisResult<()>
where
    F: Fn(Cmd) -> Fut,
    Fut: std::future::Future<Output = RedisResult<Value>>,
{
    let mut cursor = 0u64;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let (next, batch): (u64, Vec<String>) = redis::from_redis_value(&send(scan).await?)?;
        keys.extend(batch);
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The cluster's primaries (host, port), from `CLUSTER SLOTS`: each slot range with its
/// primary first.
async fn primaries(conn: &mut ClusterConnection) -> RedisResult<Vec<(String, u16)>> {
    let slots = conn
        .route_command(
            &redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?;
    let ranges: Vec<Vec<Value>> = redis::from_redis_value(&slots)?;
    let mut nodes = ranges
        .iter()
        .map(|range| match range.as_slice() {
            [_start, _end, primary, ..] => primary_address(primary),
            _ => Err((redis::ErrorKind::TypeError, "a short CLUSTER SLOTS entry").into()),
        })
        .collect::<RedisResult<Vec<_>>>()?;
    nodes.sort();
    nodes.dedup();
    Ok(nodes)
}

/// A `CLUSTER SLOTS` node entry (host, port, id, ...) as (host, port).
fn primary_address(node: &Value) -> RedisResult<(String, u16)> {
    let fields: Vec<Value> = redis::from_redis_value(node)?;
    match fields.as_slice() {
        [host, port, ..] => Ok((
            redis::from_redis_value(host)?,
            redis::from_redis_value(port)?,
        )),
        _ => Err((redis::ErrorKind::TypeError, "a short CLUSTER SLOTS node").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_url_is_one_node_and_a_cluster_takes_a_list() {
        let single = Target::new("redis://127.0.0.1:6379", false).unwrap();
        assert!(!single.cluster);
        let cluster = Target::new("redis://10.0.0.1:6379, redis://10.0.0.2:6379", true).unwrap();
        assert!(cluster.cluster);
        assert_eq!(
            cluster.nodes,
            ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"]
        );
    }

    #[test]
    fn a_prefix_cannot_carry_a_hash_tag() {
        assert_eq!(key_prefix_problem("onsale:"), None);
        assert!(key_prefix_problem("on{sale}:").is_some());
        assert!(key_prefix_problem(&"x".repeat(65)).is_some());
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(Target::new("http://example.com", false).is_err());
        assert!(Target::new("redis://10.0.0.1:6379,", true).is_err());
        assert!(Target::new("redis://a:1,nonsense", true).is_err());
    }
}
