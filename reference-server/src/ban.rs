//! Failed logins per client address, and bans (ProFTPD's `mod_ban`,
//! fail2ban): `max_failures` failed logins from one address within
//! `window` ban it for `duration`.
//!
//! Sans-IO: every call takes `now`; the caller logs and sleeps. The table is
//! bounded: at most `capacity` addresses are tracked, so an attacker with
//! many addresses cannot grow it. When it is full, expired records go
//! first, then the record whose last failure is oldest among addresses not
//! banned, and only if every record is a live ban, the ban that ends
//! soonest. IPv6 addresses are grouped by /64 (one subscriber's prefix);
//! IPv4-mapped IPv6 counts as the IPv4 address.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    time::Duration,
};

use tokio::time::Instant;

use crate::protocol::addr::canonical_ip;

/// When to ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BanPolicy {
    /// Failed logins within `window` that start a ban; 0 turns bans off.
    pub max_failures: u32,
    /// How long failures are remembered.
    pub window: Duration,
    /// How long a ban lasts.
    pub duration: Duration,
    /// Most addresses tracked at once.
    pub capacity: usize,
}

/// What one address has done lately.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Start of the current counting window.
    first: Instant,
    /// Failures since `first`.
    failures: u32,
    /// Latest failure.
    last: Instant,
    /// The ban's end, if banned.
    banned_until: Option<Instant>,
}

/// A ban that a failure just started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanStarted {
    /// Failures counted.
    pub failures: u32,
    /// How long it lasts.
    pub duration: Duration,
}

/// The bounded failure/ban table.
#[derive(Debug)]
pub struct BanTable {
    policy: BanPolicy,
    records: HashMap<IpAddr, Record>,
}

/// The key an address is counted under (IPv6: its /64).
pub fn ban_key(ip: IpAddr) -> IpAddr {
    match canonical_ip(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl BanTable {
    /// An empty table.
    pub fn new(policy: BanPolicy) -> BanTable {
        BanTable {
            policy,
            records: HashMap::new(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> BanPolicy {
        self.policy
    }

    /// Addresses tracked.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// How long `ip` stays banned, if it is.
    pub fn banned(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let until = self.records.get(&ban_key(ip))?.banned_until?;
        (until > now).then(|| until - now)
    }

    /// Failures from `ip` within the window (0 while banned is irrelevant:
    /// a banned address is refused before this matters).
    pub fn recent_failures(&self, ip: IpAddr, now: Instant) -> u32 {
        match self.records.get(&ban_key(ip)) {
            Some(r) if now.duration_since(r.first) <= self.policy.window => r.failures,
            _ => 0,
        }
    }

    /// Counts a failed login; `Some` when it starts a ban.
    pub fn failure(&mut self, ip: IpAddr, now: Instant) -> Option<BanStarted> {
        if self.policy.max_failures == 0 || self.policy.capacity == 0 {
            return None;
        }
        let key = ban_key(ip);
        if !self.records.contains_key(&key) && self.records.len() >= self.policy.capacity {
            self.make_room(now);
        }
        let window = self.policy.window;
        let r = self.records.entry(key).or_insert(Record {
            first: now,
            failures: 0,
            last: now,
            banned_until: None,
        });
        if r.banned_until.is_some_and(|u| u > now) {
            r.last = now;
            return None;
        }
        if r.banned_until.is_some() || now.duration_since(r.first) > window {
            *r = Record {
                first: now,
                failures: 0,
                last: now,
                banned_until: None,
            };
        }
        r.failures += 1;
        r.last = now;
        if r.failures >= self.policy.max_failures {
            r.banned_until = Some(now + self.policy.duration);
            return Some(BanStarted {
                failures: r.failures,
                duration: self.policy.duration,
            });
        }
        None
    }

    /// Frees one slot (see the module docs for the order).
    fn make_room(&mut self, now: Instant) {
        let window = self.policy.window;
        self.records.retain(|_, r| match r.banned_until {
            Some(u) => u > now,
            None => now.duration_since(r.first) <= window,
        });
        if self.records.len() < self.policy.capacity {
            return;
        }
        let victim = self
            .records
            .iter()
            .filter(|(_, r)| r.banned_until.is_none())
            .min_by_key(|(_, r)| r.last)
            .or_else(|| {
                self.records
                    .iter()
                    .min_by_key(|(_, r)| r.banned_until.unwrap_or(now))
            })
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            self.records.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(capacity: usize) -> BanPolicy {
        BanPolicy {
            max_failures: 3,
            window: Duration::from_secs(60),
            duration: Duration::from_secs(300),
            capacity,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bans_at_the_limit_and_expires() {
        let t0 = Instant::now();
        let mut t = BanTable::new(policy(16));
        let a = ip("192.0.2.1");
        assert_eq!(t.failure(a, t0), None);
        assert_eq!(t.failure(a, t0 + Duration::from_secs(1)), None);
        assert_eq!(t.recent_failures(a, t0 + Duration::from_secs(1)), 2);
        let started = t.failure(a, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(started.failures, 3);
        let at = t0 + Duration::from_secs(2);
        assert_eq!(t.banned(a, at), Some(Duration::from_secs(300)));
        assert_eq!(t.banned(ip("192.0.2.2"), at), None);
        // Failures while banned do not extend the ban.
        assert_eq!(t.failure(a, at + Duration::from_secs(10)), None);
        assert_eq!(t.banned(a, at + Duration::from_secs(300)), None);
        // After the ban, counting starts afresh.
        assert_eq!(t.failure(a, at + Duration::from_secs(301)), None);
        assert_eq!(t.recent_failures(a, at + Duration::from_secs(301)), 1);
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let t0 = Instant::now();
        let mut t = BanTable::new(policy(16));
        let a = ip("192.0.2.1");
        t.failure(a, t0);
        t.failure(a, t0 + Duration::from_secs(1));
        assert_eq!(t.failure(a, t0 + Duration::from_secs(62)), None);
        assert_eq!(t.banned(a, t0 + Duration::from_secs(62)), None);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let t0 = Instant::now();
        let mut t = BanTable::new(policy(16));
        t.failure(ip("2001:db8:1:2::1"), t0);
        t.failure(ip("2001:db8:1:2::ffff"), t0);
        assert!(t.failure(ip("2001:db8:1:2:abcd::9"), t0).is_some());
        assert!(t.banned(ip("2001:db8:1:2::77"), t0).is_some());
        assert!(t.banned(ip("2001:db8:1:3::1"), t0).is_none());
        t.failure(ip("::ffff:192.0.2.9"), t0);
        assert_eq!(t.recent_failures(ip("192.0.2.9"), t0), 1);
    }

    #[test]
    fn many_addresses_cannot_grow_the_table_nor_free_a_ban_first() {
        let t0 = Instant::now();
        let mut t = BanTable::new(policy(8));
        let banned = ip("198.51.100.1");
        for _ in 0..3 {
            t.failure(banned, t0);
        }
        for i in 0..10_000u32 {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.failure(a, t0 + Duration::from_millis(u64::from(i)));
            assert!(t.len() <= 8);
        }
        assert!(t.banned(banned, t0 + Duration::from_secs(11)).is_some());
    }

    #[test]
    fn zero_turns_bans_off() {
        let t0 = Instant::now();
        let mut t = BanTable::new(BanPolicy {
            max_failures: 0,
            ..policy(8)
        });
        for _ in 0..100 {
            assert!(t.failure(ip("192.0.2.1"), t0).is_none());
        }
        assert!(t.is_empty());
    }
}
