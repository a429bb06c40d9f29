//! A show's waiting-room state in Redis: every key carries the show id as its hash tag, so
//! one show lives on one Redis Cluster slot and its scripts run atomically there.
//!
//! The queue is two counters (pre-queue joins, open joins), the serving counter, and bitmaps
//! of which places were seen polling (one bit per fan in at most two live buckets). Each
//! account's place is recorded in one of 16,384 small hashes per show, so an account has one
//! place however many times and from wherever it joins (about 25 bytes per fan, measured in
//! BENCHMARKS.md). Admitted sessions and unclaimed calls (bounded by `max_active`) are a
//! sorted set; spent admissions a capped stream every node reads from where it left off.

use crate::accounts::Account;
use crate::config::QueueSettings;
use onsale_contract::redis::Connection;
use onsale_contract::tokens::Lane;
use redis::Script;
use std::sync::LazyLock;

static JOIN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/join.lua")));
static ADVANCE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/advance.lua")));
static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/claim.lua")));
static PUBLISH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/publish.lua")));
static SPEND: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/spend.lua")));
static RESTORE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/restore.lua")));
static TUNE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/tune.lua")));

/// Account hashes per show: an account's is chosen by the last 14 bits of its id, so a
/// million fans make about 61 entries per hash, well within Redis's listpack encoding
/// (`hash-max-listpack-entries`, 128 by default) up to about two million per show.
pub const ACCOUNT_BUCKETS: u16 = 1 << 14;
/// Spent admissions read per show per step; the rest at the next.
const SPENT_READ: usize = 10_000;

/// The keys of one show.
pub struct Keys {
    base: String,
}

impl Keys {
    pub fn new(prefix: &str, show: &str) -> Self {
        Keys {
            base: format!("{prefix}wr:{{{show}}}:"),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }

    pub fn state(&self) -> String {
        self.key("state")
    }

    /// The presence bitmap of bucket `n` (time / grace).
    pub fn seen(&self, bucket: i64) -> String {
        self.key(&format!("seen:{bucket}"))
    }

    pub fn active(&self) -> String {
        self.key("active")
    }

    fn calls(&self) -> String {
        self.key("calls")
    }

    fn issues(&self) -> String {
        self.key("issues")
    }

    pub fn pow(&self, nonce: &str) -> String {
        self.key(&format!("pow:{nonce}"))
    }

    /// The hash holding `account`'s place.
    pub fn account(&self, account: &Account) -> String {
        let bucket = u16::from_be_bytes([account.key[14], account.key[15]]) % ACCOUNT_BUCKETS;
        self.key(&format!("acct:{bucket}"))
    }

    /// The stream of spent admissions.
    pub fn spent(&self) -> String {
        self.key("spent")
    }

    /// The stream of settings changed through the admin API.
    pub fn audit(&self) -> String {
        self.key("audit")
    }
}

/// Presence bitmaps outlive their bucket by one more, then go.
fn presence_ttl_ms(settings: &QueueSettings) -> i64 {
    settings.grace_ms() * 3
}

fn bucket(settings: &QueueSettings, now_ms: i64) -> i64 {
    now_ms.div_euclid(settings.grace_ms())
}

/// An account's place in a show's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    /// Pre-queue join number (placed by the draw at the opening), or open place.
    pub lane: Lane,
    pub number: u64,
    /// Whether this join took the place; false: the account already had it.
    pub new: bool,
}

impl Joined {
    /// The value `join.lua` records for this place.
    fn recorded(&self) -> String {
        match self.lane {
            Lane::Open => self.number.to_string(),
            Lane::PreQueue => (-(self.number as i64) - 1).to_string(),
        }
    }
}

/// `account`'s place in the show's queue: the one it has, else a new one. `give_up`, the
/// place the caller found passed, is replaced by a new one if it is still the account's.
pub async fn join(
    conn: &mut Connection,
    keys: &Keys,
    settings: &QueueSettings,
    seed_hex: &str,
    account: &Account,
    give_up: Option<Joined>,
    now_ms: i64,
) -> redis::RedisResult<Joined> {
    let (lane, number, new): (String, u64, u8) = JOIN
        .key(keys.state())
        .key(keys.seen(bucket(settings, now_ms)))
        .key(keys.account(account))
        .arg(now_ms)
        .arg(settings.sale_opens_ms())
        .arg(seed_hex)
        .arg(presence_ttl_ms(settings))
        .arg(&account.key[..])
        .arg(give_up.map(|j| j.recorded()).unwrap_or_default())
        .invoke_async(conn)
        .await?;
    let lane = match lane.as_str() {
        "pre" => Lane::PreQueue,
        _ => Lane::Open,
    };
    Ok(Joined {
        lane,
        number,
        new: new == 1,
    })
}

/// A place a fan holds in a signed queue token that the show's state in Redis lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    pub lane: Lane,
    pub number: u64,
    pub account: Account,
}

/// Records `lost` places again and raises the counters past them (`restore.lua`); returns how
/// many changed anything.
pub async fn restore(conn: &mut Connection, keys: &Keys, lost: &[Lost]) -> redis::RedisResult<u64> {
    let mut invocation = RESTORE.prepare_invoke();
    invocation.key(keys.state());
    for place in lost {
        let lane = match place.lane {
            Lane::Open => "open",
            Lane::PreQueue => "pre",
        };
        invocation
            .key(keys.account(&place.account))
            .arg(lane)
            .arg(place.number)
            .arg(&place.account.key[..]);
    }
    invocation.invoke_async(conn).await
}

/// What one admission step leaves behind, as every node caches it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Advanced {
    pub serving: u64,
    pub total: u64,
    /// The pre-queue's size once drawn.
    pub frozen: Option<u64>,
    pub pre_count: u64,
    pub active: u64,
    pub called_last_minute: u64,
    pub issued_last_minute: u64,
    pub skipped: u64,
    pub first_call_ms: Option<i64>,
    pub seed_hex: String,
    pub version: u64,
    /// The settings in Redis, when their version differs from the one the caller knows.
    pub settings_json: Option<String>,
    pub paused: bool,
    /// (block end place, fans present from the counter up to it).
    pub blocks: Vec<(u64, u64)>,
}

pub struct Step<'a> {
    pub settings: &'a QueueSettings,
    pub now_ms: i64,
    pub sold_out: bool,
    pub max_steps: u32,
    pub known_version: u64,
    pub seen: &'a [u64],
}

type AdvanceReply = (
    (u64, u64, i64, u64, u64, u64),
    (u64, u64, i64, String, u64, String),
    (String, Vec<u64>),
);

pub async fn advance(
    conn: &mut Connection,
    keys: &Keys,
    step: Step<'_>,
) -> redis::RedisResult<Advanced> {
    let settings = step.settings;
    let now_bucket = bucket(settings, step.now_ms);
    let mut invocation = ADVANCE.prepare_invoke();
    invocation
        .key(keys.state())
        .key(keys.seen(now_bucket))
        .key(keys.seen(now_bucket - 1))
        .key(keys.active())
        .key(keys.calls())
        .key(keys.issues())
        .key(keys.key("union"))
        .arg(step.now_ms)
        .arg(settings.sale_opens_ms())
        .arg(settings.admit_per_minute)
        .arg(settings.max_active)
        .arg(settings.sale_opens_ms() + settings.grace_ms())
        .arg(u8::from(step.sold_out))
        .arg(step.max_steps)
        .arg(settings.grace_ms())
        .arg(presence_ttl_ms(settings))
        .arg(step.known_version)
        .arg(hex::encode(rand::random::<super::draw::Seed>()))
        .arg(step.seen);
    let (head, middle, (paused, blocks)): AdvanceReply = invocation.invoke_async(conn).await?;
    let (serving, total, frozen, pre_count, active, called_last_minute) = head;
    let (issued_last_minute, skipped, first_call_ms, seed_hex, version, settings_json) = middle;
    Ok(Advanced {
        serving,
        total,
        frozen: u64::try_from(frozen).ok(),
        pre_count,
        active,
        called_last_minute,
        issued_last_minute,
        skipped,
        first_call_ms: (first_call_ms >= 0).then_some(first_call_ms),
        seed_hex,
        version,
        settings_json: (!settings_json.is_empty()).then_some(settings_json),
        paused: paused == "1",
        blocks: blocks.chunks_exact(2).map(|b| (b[0], b[1])).collect(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The fan's admission session, until this instant.
    Admitted { expires_ms: i64 },
    /// The fan's turn came and went: skipped as away, or its call or session ended.
    Missed,
}

pub async fn claim(
    conn: &mut Connection,
    keys: &Keys,
    place: u64,
    now_ms: i64,
    session_ttl_ms: i64,
) -> redis::RedisResult<Claim> {
    let reply: Vec<String> = CLAIM
        .key(keys.active())
        .key(keys.issues())
        .arg(place)
        .arg(now_ms)
        .arg(session_ttl_ms)
        .invoke_async(conn)
        .await?;
    Ok(match reply.as_slice() {
        [status, expires] if status == "admitted" => Claim::Admitted {
            expires_ms: expires.parse::<f64>().unwrap_or(0.0) as i64,
        },
        _ => Claim::Missed,
    })
}

/// A spent admission: the token's id and expiry (Unix s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spent {
    pub jti: String,
    pub exp_s: i64,
}

/// Ends an admitted session at once (the fan's order confirmed), freeing its capacity, and
/// records its admission token as spent until `spent.exp_s`.
pub async fn spend(
    conn: &mut Connection,
    keys: &Keys,
    place: Option<u64>,
    spent: &Spent,
    now_ms: i64,
) -> redis::RedisResult<()> {
    SPEND
        .key(keys.active())
        .key(keys.spent())
        .arg(place.map(|p| p.to_string()).unwrap_or_default())
        .arg(&spent.jti)
        .arg(spent.exp_s)
        .arg(spent.exp_s * 1000 - now_ms)
        .invoke_async(conn)
        .await
}

/// Spent admissions recorded after the entry `after` (from the start when `None`), and the
/// id of the last one read.
pub async fn spent_since(
    conn: &mut Connection,
    keys: &Keys,
    after: Option<&str>,
) -> redis::RedisResult<(Vec<Spent>, Option<String>)> {
    let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(keys.spent())
        .arg(start)
        .arg("+")
        .arg("COUNT")
        .arg(SPENT_READ)
        .query_async(conn)
        .await?;
    let last = entries.last().map(|(id, _)| id.clone());
    let spent = entries
        .into_iter()
        .filter_map(|(_, fields)| {
            let field = |name: &str| {
                fields
                    .chunks_exact(2)
                    .find(|pair| pair[0] == name)
                    .map(|pair| pair[1].clone())
            };
            Some(Spent {
                jti: field("jti")?,
                exp_s: field("exp")?.parse().ok()?,
            })
        })
        .collect();
    Ok((spent, last))
}

/// Publishes a show's settings (`settings_json`, with `paused` as given) if they differ from
/// those in Redis; returns the version.
pub async fn publish(
    conn: &mut Connection,
    keys: &Keys,
    settings_json: &str,
    paused: bool,
) -> redis::RedisResult<u64> {
    PUBLISH
        .key(keys.state())
        .arg(settings_json)
        .arg(u8::from(paused))
        .invoke_async(conn)
        .await
}

/// The settings in Redis as JSON, if a node has published any.
pub async fn settings(conn: &mut Connection, keys: &Keys) -> redis::RedisResult<Option<String>> {
    redis::cmd("HGET")
        .arg(keys.state())
        .arg("settings")
        .query_async(conn)
        .await
}

/// Replaces the settings `from_json` with `to_json` and records `audit` (field/value pairs)
/// on the audit stream; the new version, or `None` if the settings were no longer
/// `from_json`.
pub async fn tune(
    conn: &mut Connection,
    keys: &Keys,
    from_json: &str,
    to_json: &str,
    audit: &[(&str, String)],
) -> redis::RedisResult<Option<u64>> {
    let mut invocation = TUNE.key(keys.state());
    invocation.key(keys.audit()).arg(from_json).arg(to_json);
    for (field, value) in audit {
        invocation.arg(*field).arg(value);
    }
    let version: i64 = invocation.invoke_async(conn).await?;
    Ok(u64::try_from(version).ok())
}

/// Pauses or resumes admission for every node at once.
pub async fn set_paused(
    conn: &mut Connection,
    keys: &Keys,
    paused: bool,
) -> redis::RedisResult<u64> {
    let state = keys.state();
    let (_, version): ((), u64) = redis::pipe()
        .atomic()
        .hset(&state, "paused", u8::from(paused))
        .hincr(&state, "version", 1)
        .query_async(conn)
        .await?;
    Ok(version)
}

/// Records a proof-of-work challenge as used until it expires; false if it already was.
pub async fn spend_challenge(
    conn: &mut Connection,
    keys: &Keys,
    nonce: &str,
    ttl_ms: i64,
) -> redis::RedisResult<bool> {
    let set: Option<String> = redis::cmd("SET")
        .arg(keys.pow(nonce))
        .arg(1)
        .arg("NX")
        .arg("PX")
        .arg(ttl_ms.max(1))
        .query_async(conn)
        .await?;
    Ok(set.is_some())
}
