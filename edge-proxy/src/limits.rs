//! Rate limits (governor, GCRA): per client IP (all routes, joins, sign-ins), per account
//! and show on the purchase path, and one bucket per route class. Keyed limiters hold a state per key until
//! [`Limits::retain_recent`] drops the idle ones, which the edge does on a timer.

use crate::config::{Cidr, LimitsConfig, Quota};
use crate::live::Live;
use crate::routes::RouteClass;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::RateLimiter;
use onsale_contract::clock::Clock;
use onsale_contract::tasks::StopSignal;
use prometheus::IntGaugeVec;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, Clock, NoOpMiddleware<Nanos>>;
type Direct = RateLimiter<NotKeyed, InMemoryState, Clock, NoOpMiddleware<Nanos>>;

/// Which limit refused a request, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limited {
    /// The limit's name, as in the `limit` member and the metric label.
    pub(crate) limiter: &'static str,
    pub(crate) retry_after_s: u64,
}

/// Every limiter of one configuration version.
pub(crate) struct Limits {
    config: LimitsConfig,
    clock: Clock,
    per_ip: Keyed<u128>,
    per_ip_join: Keyed<u128>,
    per_ip_sign_in: Keyed<u128>,
    per_fan: Keyed<(String, String)>,
    catalog: Direct,
    snapshot: Direct,
    purchase: Direct,
    waiting_room: Direct,
    account: Direct,
}

fn quota(q: Quota) -> governor::Quota {
    let nonzero = |n: u32| NonZeroU32::new(n).expect("config validation refuses zero quotas");
    governor::Quota::per_minute(nonzero(q.per_minute)).allow_burst(nonzero(q.burst))
}

impl Limits {
    /// Fresh limiters for `config`, on `clock`.
    pub(crate) fn new(config: &LimitsConfig, clock: &Clock) -> Self {
        let classes = &config.route_class;
        Limits {
            config: config.clone(),
            clock: clock.clone(),
            per_ip: RateLimiter::dashmap_with_clock(quota(config.per_ip), clock.clone()),
            per_ip_join: RateLimiter::dashmap_with_clock(quota(config.per_ip_join), clock.clone()),
            per_ip_sign_in: RateLimiter::dashmap_with_clock(
                quota(config.per_ip_sign_in),
                clock.clone(),
            ),
            per_fan: RateLimiter::dashmap_with_clock(quota(config.per_fan_purchase), clock.clone()),
            catalog: RateLimiter::direct_with_clock(quota(classes.catalog), clock.clone()),
            snapshot: RateLimiter::direct_with_clock(quota(classes.snapshot), clock.clone()),
            purchase: RateLimiter::direct_with_clock(quota(classes.purchase), clock.clone()),
            waiting_room: RateLimiter::direct_with_clock(
                quota(classes.waiting_room),
                clock.clone(),
            ),
            account: RateLimiter::direct_with_clock(quota(classes.account), clock.clone()),
        }
    }

    /// The configuration these limiters were built from.
    pub(crate) fn config(&self) -> &LimitsConfig {
        &self.config
    }

    fn refused(&self, limiter: &'static str, not_until: governor::NotUntil<Nanos>) -> Limited {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&self.clock));
        Limited {
            limiter,
            retry_after_s: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        }
    }

    /// Charges one request from `client` to its IP bucket and its route class's bucket.
    pub(crate) fn check_request(&self, client: IpAddr, class: RouteClass) -> Result<(), Limited> {
        self.per_ip
            .check_key(&ip_key(client))
            .map_err(|n| self.refused("ip", n))?;
        let bucket = match class {
            RouteClass::Catalog => &self.catalog,
            RouteClass::SeatMap(_) => &self.snapshot,
            RouteClass::Purchase => &self.purchase,
            RouteClass::WaitingRoom(_) => &self.waiting_room,
            RouteClass::Account(_) => &self.account,
            // Partners are few and known, and the web app is answered from memory: the
            // per-IP limit covers them.
            RouteClass::Partner | RouteClass::Web | RouteClass::Unknown => return Ok(()),
        };
        bucket.check().map_err(|n| self.refused(class.label(), n))
    }

    /// Charges one sign-up or sign-in to `client`'s bucket for those.
    pub(crate) fn check_sign_in(&self, client: IpAddr) -> Result<(), Limited> {
        self.per_ip_sign_in
            .check_key(&ip_key(client))
            .map_err(|n| self.refused("sign_in", n))
    }

    /// Charges one purchase-path request to the fan's bucket for the show.
    pub(crate) fn check_fan(&self, fan: &str, show: &str) -> Result<(), Limited> {
        self.per_fan
            .check_key(&(fan.to_owned(), show.to_owned()))
            .map_err(|n| self.refused("fan", n))
    }

    /// Charges one waiting-room join to `client`'s join bucket.
    pub(crate) fn check_join(&self, client: IpAddr) -> Result<(), Limited> {
        self.per_ip_join
            .check_key(&ip_key(client))
            .map_err(|n| self.refused("join", n))
    }

    /// Drops keys whose buckets are full again (indistinguishable from new ones).
    pub(crate) fn retain_recent(&self) {
        for keyed in [&self.per_ip, &self.per_ip_join, &self.per_ip_sign_in] {
            keyed.retain_recent();
            keyed.shrink_to_fit();
        }
        self.per_fan.retain_recent();
        self.per_fan.shrink_to_fit();
    }

    /// Keys held, for the `ratelimit_keys` gauge.
    pub(crate) fn keys(&self) -> [(&'static str, usize); 4] {
        [
            ("ip", self.per_ip.len()),
            ("join", self.per_ip_join.len()),
            ("sign_in", self.per_ip_sign_in.len()),
            ("fan", self.per_fan.len()),
        ]
    }
}

/// Drops idle keys every `limits.retain_interval_ms` (of the running configuration's
/// limiters) and publishes how many each keyed limiter holds, until `stop`.
pub(crate) async fn keep(live: &Live, held: &IntGaugeVec, mut stop: StopSignal) {
    loop {
        let runtime = live.load();
        runtime.limits.retain_recent();
        for (limiter, keys) in runtime.limits.keys() {
            held.with_label_values(&[limiter]).set(keys as i64);
        }
        let interval = Duration::from_millis(runtime.config.limits.retain_interval_ms);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// IPv4 addresses count one by one; IPv6 clients by /64, the block one subscriber gets.
pub(crate) fn ip_key(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => (u128::from(v6) >> 64) << 64 | 1,
    }
}

/// The client: the peer, unless the peer is a trusted proxy; then the last address in
/// `X-Forwarded-For` that is not a trusted proxy (the ones before it could be forged).
pub(crate) fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.unwrap_or("").rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteClassQuotas;

    fn config(per_minute: u32, burst: u32) -> LimitsConfig {
        let q = Quota { per_minute, burst };
        LimitsConfig {
            max_body_bytes: 1024,
            max_header_bytes: 4096,
            trusted_proxies: vec![],
            retain_interval_ms: 1000,
            per_ip: q,
            per_ip_join: q,
            per_ip_sign_in: q,
            per_fan_purchase: q,
            route_class: RouteClassQuotas {
                catalog: Quota {
                    per_minute: 1_000_000,
                    burst: 1_000_000,
                },
                snapshot: q,
                purchase: q,
                waiting_room: q,
                account: q,
            },
        }
    }

    #[test]
    fn ip_bucket_refills_with_the_clock() {
        let clock = Clock::manual(1_700_000_000_000);
        let limits = Limits::new(&config(60, 2), &clock);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limits.check_request(ip, RouteClass::Catalog).is_ok());
        assert!(limits.check_request(ip, RouteClass::Catalog).is_ok());
        let refused = limits.check_request(ip, RouteClass::Catalog).unwrap_err();
        assert_eq!(
            refused,
            Limited {
                limiter: "ip",
                retry_after_s: 1
            }
        );
        // Another client is unaffected.
        assert!(limits
            .check_request("192.0.2.2".parse().unwrap(), RouteClass::Catalog)
            .is_ok());
        clock.advance(Duration::from_secs(1));
        assert!(limits.check_request(ip, RouteClass::Catalog).is_ok());
        assert!(limits.check_request(ip, RouteClass::Catalog).is_err());
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let clock = Clock::manual(0);
        let limits = Limits::new(&config(60, 1), &clock);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limits.check_request(a, RouteClass::Unknown).is_ok());
        assert!(limits.check_request(b, RouteClass::Unknown).is_err());
        assert!(limits.check_request(c, RouteClass::Unknown).is_ok());
    }

    #[test]
    fn idle_keys_are_dropped() {
        let clock = Clock::manual(0);
        let limits = Limits::new(&config(60, 5), &clock);
        for i in 0..100u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(i));
            limits.check_request(ip, RouteClass::Unknown).unwrap();
        }
        assert_eq!(limits.keys()[0], ("ip", 100));
        clock.advance(Duration::from_secs(2));
        limits.retain_recent();
        assert_eq!(limits.keys()[0], ("ip", 0));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted = vec![Cidr::try_from("10.0.0.0/8".to_owned()).unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let xff = Some("198.51.100.7, 203.0.113.9, 10.1.1.1");
        assert_eq!(client_ip(ip("10.0.0.2"), xff, &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("192.0.2.50"), xff, &trusted), ip("192.0.2.50"));
        assert_eq!(client_ip(ip("10.0.0.2"), None, &trusted), ip("10.0.0.2"));
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("garbage"), &trusted),
            ip("10.0.0.2")
        );
    }
}
