//! Connection tracking: every flow is a [`Conn`] with its original tuple (as
//! the initiator sent it) and its translated tuple (as it leaves the
//! gateway); two index entries find it, one per direction ([`Dir`]).
//! Flows expire after the TCP established/transitory or UDP timeout since
//! their last packet. Pure: `now` comes in.

use std::{
    collections::HashMap,
    net::SocketAddrV4,
    time::{Duration, Instant},
};

use super::{alg::SeqAdj, nat::MapKey, wire::TCP};
use crate::engine::{Direction, Timeouts};

/// `(proto, source, destination)` as a packet carries it.
pub(super) type Key = (u8, SocketAddrV4, SocketAddrV4);

/// Which way a packet travels relative to the flow's first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    /// As the initiator sent it.
    Orig,
    /// The answer.
    Reply,
}

/// A tracked flow.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) proto: u8,
    pub(super) orig_src: SocketAddrV4,
    pub(super) orig_dst: SocketAddrV4,
    pub(super) xlat_src: SocketAddrV4,
    pub(super) xlat_dst: SocketAddrV4,
    pub(super) in_if: usize,
    pub(super) out_if: usize,
    pub(super) dir: Direction,
    pub(super) seen_reply: bool,
    pub(super) closing: bool,
    pub(super) last_seen: Instant,
    pub(super) mapping: Option<MapKey>,
    /// An FTP control connection the ALG watches.
    pub(super) alg: bool,
    /// TCP sequence adjustment per direction (ALG rewrites of other length).
    pub(super) adj: [SeqAdj; 2],
}

/// What a new flow is: its tuples, interfaces and mapping.
#[derive(Debug, Clone, Copy)]
pub(super) struct NewConn {
    pub(super) proto: u8,
    /// Source and destination as received.
    pub(super) orig: (SocketAddrV4, SocketAddrV4),
    /// Source and destination as sent on.
    pub(super) xlat: (SocketAddrV4, SocketAddrV4),
    pub(super) in_if: usize,
    pub(super) out_if: usize,
    pub(super) dir: Direction,
    pub(super) mapping: Option<MapKey>,
    pub(super) alg: bool,
}

/// All flows.
#[derive(Debug)]
pub(super) struct Conntrack {
    conns: HashMap<u64, Conn>,
    next_id: u64,
    index: HashMap<Key, (u64, Dir)>,
}

impl Conntrack {
    pub(super) fn new() -> Conntrack {
        Conntrack {
            conns: HashMap::new(),
            next_id: 1,
            index: HashMap::new(),
        }
    }

    /// Live flows.
    pub(super) fn len(&self) -> usize {
        self.conns.len()
    }

    /// The flow a packet with `key` belongs to, and its direction.
    pub(super) fn lookup(&self, key: &Key) -> Option<(u64, Dir)> {
        self.index.get(key).copied()
    }

    pub(super) fn get(&self, id: u64) -> Option<&Conn> {
        self.conns.get(&id)
    }

    pub(super) fn get_mut(&mut self, id: u64) -> Option<&mut Conn> {
        self.conns.get_mut(&id)
    }

    /// Tracks a new flow; returns its id.
    pub(super) fn insert(&mut self, n: NewConn, now: Instant) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let (orig_src, orig_dst) = n.orig;
        let (xlat_src, xlat_dst) = n.xlat;
        self.index
            .insert((n.proto, orig_src, orig_dst), (id, Dir::Orig));
        self.index
            .insert((n.proto, xlat_dst, xlat_src), (id, Dir::Reply));
        self.conns.insert(
            id,
            Conn {
                proto: n.proto,
                orig_src,
                orig_dst,
                xlat_src,
                xlat_dst,
                in_if: n.in_if,
                out_if: n.out_if,
                dir: n.dir,
                seen_reply: false,
                closing: false,
                last_seen: now,
                mapping: n.mapping,
                alg: n.alg,
                adj: [SeqAdj::default(); 2],
            },
        );
        id
    }

    /// Removes flows idle past their timeout; returns them (their mappings
    /// lose a reference).
    pub(super) fn expire(&mut self, now: Instant, t: &Timeouts) -> Vec<Conn> {
        let expired: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                let ttl = match (c.proto, c.seen_reply && !c.closing) {
                    (TCP, true) => t.tcp_established,
                    (TCP, false) => t.tcp_transitory,
                    _ => t.udp,
                };
                now.saturating_duration_since(c.last_seen) >= Duration::from_secs(ttl)
            })
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::with_capacity(expired.len());
        for id in expired {
            let c = self.conns.remove(&id).expect("listed");
            self.index.remove(&(c.proto, c.orig_src, c.orig_dst));
            self.index.remove(&(c.proto, c.xlat_dst, c.xlat_src));
            out.push(c);
        }
        out
    }
}
