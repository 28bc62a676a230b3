//! The NAT table: source-NAT mappings (RFC 4787/5382 mapping and filtering
//! behaviour), the external-port allocator, and ports held for ALG
//! expectations.
//!
//! Invariants: every mapping is found both by its [`MapKey`] and by its
//! external `(proto, port)`; a port is never handed out twice while a
//! mapping, a port forward or an expectation holds it; ports below 1024 are
//! never allocated. A mapping lives while flows reference it and for the
//! flow timeout after. Pure: `now` comes in.

use std::{
    collections::{HashMap, HashSet},
    net::{Ipv4Addr, SocketAddrV4},
    time::{Duration, Instant},
};

use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::engine::{Behaviour, Forward, NatConfig, PortChoice};

/// What a mapping is for: the inside endpoint and, per the mapping
/// behaviour, the remote address (and port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct MapKey {
    pub(super) proto: u8,
    pub(super) internal: SocketAddrV4,
    remote_ip: Option<Ipv4Addr>,
    remote_port: Option<u16>,
}

#[derive(Debug)]
struct Mapping {
    ext: SocketAddrV4,
    /// Remotes the inside endpoint has sent to (the filtering behaviour's
    /// memory).
    remotes: HashSet<SocketAddrV4>,
    /// Flows using it.
    refs: usize,
    last_used: Instant,
}

/// Mappings, the port allocator and reserved ports.
#[derive(Debug)]
pub(super) struct NatTable {
    mappings: HashMap<MapKey, Mapping>,
    by_ext: HashMap<(u8, u16), MapKey>,
    reserved: HashSet<(u8, u16)>,
    next_port: u16,
    rng: StdRng,
}

impl NatTable {
    /// An empty table; `seed` makes random port choice reproducible.
    pub(super) fn new(seed: u64) -> NatTable {
        NatTable {
            mappings: HashMap::new(),
            by_ext: HashMap::new(),
            reserved: HashSet::new(),
            next_port: 1024,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Live mappings.
    pub(super) fn len(&self) -> usize {
        self.mappings.len()
    }

    fn port_taken(&self, proto: u8, port: u16, forwards: &[Forward]) -> bool {
        port < 1024
            || self.by_ext.contains_key(&(proto, port))
            || self.reserved.contains(&(proto, port))
            || forwards.iter().any(|f| f.map(proto, port).is_some())
    }

    /// A free external port: `wanted` itself when the choice preserves
    /// ports and it is free, else a random or the next free one.
    pub(super) fn alloc_port(
        &mut self,
        proto: u8,
        wanted: u16,
        choice: PortChoice,
        forwards: &[Forward],
    ) -> Option<u16> {
        if choice == PortChoice::Preserve && !self.port_taken(proto, wanted, forwards) {
            return Some(wanted);
        }
        if choice == PortChoice::Random {
            for _ in 0..64 {
                let p = self.rng.gen_range(1024..=65535);
                if !self.port_taken(proto, p, forwards) {
                    return Some(p);
                }
            }
        }
        for _ in 0..=(65535 - 1024) {
            let p = self.next_port;
            self.next_port = if self.next_port == 65535 {
                1024
            } else {
                self.next_port + 1
            };
            if !self.port_taken(proto, p, forwards) {
                return Some(p);
            }
        }
        None
    }

    /// Finds or creates the mapping for `internal` talking to `remote`,
    /// with external address `ext_ip`, and takes a reference on it. `None`
    /// when the table is full or no port is free; the flag says whether
    /// the mapping is new.
    pub(super) fn map(
        &mut self,
        nat: &NatConfig,
        forwards: &[Forward],
        (proto, internal, remote): (u8, SocketAddrV4, SocketAddrV4),
        ext_ip: Ipv4Addr,
        now: Instant,
    ) -> Option<(MapKey, SocketAddrV4, bool)> {
        let key = MapKey {
            proto,
            internal,
            remote_ip: (nat.mapping != Behaviour::EndpointIndependent).then_some(*remote.ip()),
            remote_port: (nat.mapping == Behaviour::AddressAndPortDependent)
                .then_some(remote.port()),
        };
        if let Some(m) = self.mappings.get_mut(&key) {
            m.refs += 1;
            m.last_used = now;
            return Some((key, m.ext, false));
        }
        if self.mappings.len() >= nat.max_mappings {
            return None;
        }
        let port = self.alloc_port(proto, internal.port(), nat.ports, forwards)?;
        let ext = SocketAddrV4::new(ext_ip, port);
        self.by_ext.insert((proto, port), key);
        self.mappings.insert(
            key,
            Mapping {
                ext,
                remotes: HashSet::new(),
                refs: 1,
                last_used: now,
            },
        );
        Some((key, ext, true))
    }

    /// Unsolicited inbound from `src` to external port `port`: the mapping
    /// there, if any, and whether `filtering` lets `src` in through it.
    pub(super) fn inbound(
        &self,
        proto: u8,
        port: u16,
        src: SocketAddrV4,
        filtering: Option<Behaviour>,
    ) -> (Option<MapKey>, bool) {
        let Some(key) = self.by_ext.get(&(proto, port)).copied() else {
            return (None, false);
        };
        let Some(m) = self.mappings.get(&key) else {
            return (Some(key), false);
        };
        let allowed = match filtering {
            None => false,
            Some(Behaviour::EndpointIndependent) => true,
            Some(Behaviour::AddressDependent) => m.remotes.iter().any(|r| r.ip() == src.ip()),
            Some(Behaviour::AddressAndPortDependent) => m.remotes.contains(&src),
        };
        (Some(key), allowed)
    }

    /// A flow through the mapping sent to `remote`.
    pub(super) fn add_remote(&mut self, key: MapKey, remote: SocketAddrV4) {
        if let Some(m) = self.mappings.get_mut(&key) {
            m.remotes.insert(remote);
        }
    }

    /// One more flow uses the mapping.
    pub(super) fn add_ref(&mut self, key: MapKey) {
        if let Some(m) = self.mappings.get_mut(&key) {
            m.refs += 1;
        }
    }

    /// A flow using the mapping ended.
    pub(super) fn release(&mut self, key: MapKey) {
        if let Some(m) = self.mappings.get_mut(&key) {
            m.refs = m.refs.saturating_sub(1);
        }
    }

    /// A packet used the mapping.
    pub(super) fn touch(&mut self, key: MapKey, now: Instant) {
        if let Some(m) = self.mappings.get_mut(&key) {
            m.last_used = now;
        }
    }

    /// Holds `port` for an ALG expectation.
    pub(super) fn reserve(&mut self, proto: u8, port: u16) {
        self.reserved.insert((proto, port));
    }

    /// Frees a port held for an expectation.
    pub(super) fn unreserve(&mut self, proto: u8, port: u16) {
        self.reserved.remove(&(proto, port));
    }

    /// Removes mappings no flow has used for `idle`; returns how many.
    pub(super) fn expire(&mut self, now: Instant, idle: Duration) -> u64 {
        let dead: Vec<MapKey> = self
            .mappings
            .iter()
            .filter(|(_, m)| m.refs == 0 && now.saturating_duration_since(m.last_used) >= idle)
            .map(|(k, _)| *k)
            .collect();
        let mut n = 0;
        for k in dead {
            if let Some(m) = self.mappings.remove(&k) {
                self.by_ext.remove(&(k.proto, m.ext.port()));
                n += 1;
            }
        }
        n
    }
}
