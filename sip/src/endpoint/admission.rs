//! Inbound admission: source CIDR allow-lists per trunk, and a per-source token bucket rate
//! limit whose table is bounded (oldest source evicted first) so a flood of spoofed sources
//! cannot grow memory.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use thiserror::Error;

/// An IP network (`192.0.2.0/24`, `2001:db8::/32`, or a bare address for /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A CIDR string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CidrError {
    #[error("invalid address in CIDR {0:?}")]
    Address(String),
    #[error("invalid prefix length in CIDR {0:?}")]
    Prefix(String),
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // IPv4-mapped IPv6 sources (dual-stack sockets) match IPv4 networks.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().map_err(|_| CidrError::Address(s.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p.parse().map_err(|_| CidrError::Prefix(s.to_owned()))?,
        };
        Self::new(addr, prefix).ok_or(CidrError::Prefix(s.to_owned()))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Token bucket parameters for the per-source request limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second per source IP.
    pub per_second: f64,
    /// Requests a source may send in a burst.
    pub burst: u32,
    /// Sources tracked at most; beyond it the oldest entry is forgotten.
    pub max_sources: usize,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 50.0,
            burst: 100,
            max_sources: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Per-source token buckets, bounded to `max_sources` entries (FIFO eviction: O(1) per
/// new source, whatever the attacker does).
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    buckets: HashMap<IpAddr, Bucket>,
    order: VecDeque<IpAddr>,
}

impl RateLimiter {
    /// Takes one token for `ip`; false when the source is over its rate.
    pub(crate) fn allow(&mut self, limit: &RateLimit, now: Instant, ip: IpAddr) -> bool {
        let burst = f64::from(limit.burst.max(1));
        if let Some(b) = self.buckets.get_mut(&ip) {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + elapsed * limit.per_second).min(burst);
            b.last = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                return true;
            }
            return false;
        }
        while self.buckets.len() >= limit.max_sources.max(1) {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.buckets.remove(&old);
        }
        self.buckets.insert(
            ip,
            Bucket {
                tokens: burst - 1.0,
                last: now,
            },
        );
        self.order.push_back(ip);
        true
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buckets.len()
    }
}

/// The trunk whose allow-list contains `ip`: `Ok(None)` when no list is configured,
/// `Err(())` when lists exist and none matches.
pub(crate) fn match_source(lists: &[(String, Vec<Cidr>)], ip: IpAddr) -> Result<Option<&str>, ()> {
    if lists.iter().all(|(_, l)| l.is_empty()) {
        return Ok(None);
    }
    lists
        .iter()
        .find(|(_, l)| l.iter().any(|c| c.contains(ip)))
        .map(|(name, _)| Some(name.as_str()))
        .ok_or(())
}

/// Spacing between tokens, for tests and docs.
#[allow(dead_code)]
pub(crate) fn token_interval(limit: &RateLimit) -> Duration {
    Duration::from_secs_f64(1.0 / limit.per_second.max(f64::MIN_POSITIVE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c: Cidr = "192.0.2.0/24".parse().unwrap();
        assert!(c.contains(ip("192.0.2.200")));
        assert!(!c.contains(ip("192.0.3.1")));
        assert!(c.contains(ip("::ffff:192.0.2.7")));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(ip("203.0.113.9")));
        let host: Cidr = "2001:db8::1".parse().unwrap();
        assert_eq!(host.to_string(), "2001:db8::1/128");
        assert!(host.contains(ip("2001:db8::1")) && !host.contains(ip("2001:db8::2")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("192.0.2.1")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense/8".parse::<Cidr>().is_err());
        assert!("10.0.0.0/x".parse::<Cidr>().is_err());
    }

    #[test]
    fn match_source_lists() {
        let lists = vec![
            ("a".to_owned(), vec!["10.0.0.0/8".parse().unwrap()]),
            ("b".to_owned(), vec!["192.0.2.0/24".parse().unwrap()]),
        ];
        assert_eq!(match_source(&lists, ip("192.0.2.1")), Ok(Some("b")));
        assert_eq!(match_source(&lists, ip("203.0.113.1")), Err(()));
        assert_eq!(match_source(&[], ip("203.0.113.1")), Ok(None));
    }

    #[test]
    fn token_bucket_limits_and_refills_and_is_bounded() {
        let limit = RateLimit {
            per_second: 10.0,
            burst: 5,
            max_sources: 3,
        };
        let t0 = crate::test_epoch();
        let mut r = RateLimiter::default();
        let a = ip("192.0.2.1");
        let allowed = (0..8).filter(|_| r.allow(&limit, t0, a)).count();
        assert_eq!(allowed, 5);
        // 10/s: one token every 100 ms.
        assert!(r.allow(&limit, t0 + token_interval(&limit), a));
        assert!(!r.allow(&limit, t0 + token_interval(&limit), a));
        for i in 0..10u8 {
            assert!(r.allow(&limit, t0, IpAddr::from([198, 51, 100, i])));
        }
        assert_eq!(r.len(), 3);
        // `a` was evicted: it starts with a full bucket again.
        assert!(r.allow(&limit, t0, a));
    }
}
