//! The sans-IO gateway: `(interface, frame, now) → frames to send`.
//!
//! Invariants:
//! * Every flow is a [`Conn`] with its original tuple (as the initiator sent
//!   it) and its translated tuple (as it leaves the gateway); two index
//!   entries find it, one per direction. Packets of known flows take the
//!   fast path: in-place rewrites with incremental checksums.
//! * A new flow is decided once, in order: ALG expectation, traffic to the
//!   gateway's own addresses (echo, forwards, inbound to a NAT mapping per
//!   the filtering behaviour, hairpin), then transit (source NAT from inside
//!   to outside). The firewall judges it after destination NAT.
//! * TCP flows start with a SYN; anything else without state is invalid.
//! * Mappings live while a flow uses them and for the flow timeout after.
//! * Nothing here reads a clock or a socket: `now` comes in, frames go out.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::{Ipv4Addr, SocketAddrV4},
    time::{Duration, Instant},
};

use rand::{rngs::StdRng, Rng, SeedableRng};

use super::{
    alg::{self, Found, Scan, SeqAdj},
    firewall::Facts,
    wire::{self, flags, Ip4, Kind, Mac, BROADCAST, ICMP, TCP, UDP},
};
use crate::engine::{
    Action, AlgMode, Behaviour, Counters, CtState, Direction, FullPolicy, GatewayConfig,
    PortChoice, Side,
};

/// A frame to transmit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Interface index.
    pub iface: usize,
    /// The frame.
    pub frame: Vec<u8>,
}

type Key = (u8, SocketAddrV4, SocketAddrV4);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Orig,
    Reply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct MapKey {
    proto: u8,
    internal: SocketAddrV4,
    remote_ip: Option<Ipv4Addr>,
    remote_port: Option<u16>,
}

#[derive(Debug)]
struct Mapping {
    ext: SocketAddrV4,
    remotes: HashSet<SocketAddrV4>,
    refs: usize,
    last_used: Instant,
}

#[derive(Debug)]
struct Conn {
    proto: u8,
    orig_src: SocketAddrV4,
    orig_dst: SocketAddrV4,
    xlat_src: SocketAddrV4,
    xlat_dst: SocketAddrV4,
    in_if: usize,
    out_if: usize,
    dir: Direction,
    seen_reply: bool,
    closing: bool,
    last_seen: Instant,
    mapping: Option<MapKey>,
    alg: bool,
    adj: [SeqAdj; 2],
}

/// (ingress interface, frame as received): what an ICMP error quotes.
type Origin = Option<(usize, Vec<u8>)>;

/// Frames waiting for an ARP reply.
#[derive(Debug)]
struct Pending {
    iface: usize,
    /// Translated frame, and its origin for the ICMP host-unreachable if the
    /// neighbour never answers.
    frames: Vec<(Vec<u8>, Origin)>,
    last_request: Instant,
    since: Instant,
}

#[derive(Debug, Clone)]
struct Expect {
    src_ip: Ipv4Addr,
    dst: SocketAddrV4,
    to: SocketAddrV4,
    expires: Instant,
}

/// The userspace gateway state machine.
#[derive(Debug)]
pub struct Router {
    cfg: GatewayConfig,
    start: Instant,
    arp: HashMap<Ipv4Addr, Mac>,
    pending: HashMap<Ipv4Addr, Pending>,
    conns: HashMap<u64, Conn>,
    next_id: u64,
    index: HashMap<Key, (u64, Dir)>,
    mappings: HashMap<MapKey, Mapping>,
    by_ext: HashMap<(u8, u16), MapKey>,
    reserved: HashSet<(u8, u16)>,
    expects: Vec<Expect>,
    next_port: u16,
    rng: StdRng,
    /// Counters (the per-interface maps are filled in by [`Router::snapshot`]).
    pub counters: Counters,
    /// Per interface: rx packets, rx bytes, tx packets, tx bytes (no
    /// allocation on the packet path).
    if_stats: Vec<[u64; 4]>,
    log: VecDeque<String>,
}

/// How many packet-log lines are kept.
pub const LOG_CAP: usize = 20_000;
const PENDING_CAP: usize = 16;
const EXPECT_TTL: Duration = Duration::from_secs(300);

impl Router {
    /// A router for `cfg`.
    pub fn new(cfg: GatewayConfig, now: Instant) -> Router {
        let rule_hits = vec![0; cfg.firewall.rules.len()];
        let rng = StdRng::seed_from_u64(cfg.seed);
        Router {
            start: now,
            arp: HashMap::new(),
            pending: HashMap::new(),
            conns: HashMap::new(),
            next_id: 1,
            index: HashMap::new(),
            mappings: HashMap::new(),
            by_ext: HashMap::new(),
            reserved: HashSet::new(),
            expects: Vec::new(),
            next_port: 1024,
            rng,
            counters: Counters {
                rule_hits,
                ..Counters::default()
            },
            if_stats: vec![[0; 4]; cfg.ifaces.len()],
            log: VecDeque::new(),
            cfg,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }

    /// All counters, including the per-interface ones.
    pub fn snapshot(&self) -> Counters {
        let mut c = self.counters.clone();
        for (i, st) in self.if_stats.iter().enumerate() {
            let name = &self.cfg.ifaces[i].name;
            c.rx_packets.insert(name.clone(), st[0]);
            c.rx_bytes.insert(name.clone(), st[1]);
            c.tx_packets.insert(name.clone(), st[2]);
            c.tx_bytes.insert(name.clone(), st[3]);
        }
        c
    }

    /// Number of live NAT mappings.
    pub fn mapping_count(&self) -> usize {
        self.mappings.len()
    }

    /// Number of live flows.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// The packet log (oldest first).
    pub fn log_lines(&self) -> impl Iterator<Item = &String> {
        self.log.iter()
    }

    fn note(&mut self, now: Instant, iface: usize, what: &str, ip: Option<&Ip4>) {
        if self.log.len() >= LOG_CAP {
            self.log.pop_front();
        }
        let t = now.saturating_duration_since(self.start).as_secs_f64();
        let name = &self.cfg.ifaces[iface].name;
        let line = match ip {
            Some(ip) => format!(
                "{t:10.6} {name} {} {}->{} {what}",
                proto_name(ip.proto),
                ip.src_sa(),
                ip.dst_sa()
            ),
            None => format!("{t:10.6} {name} {what}"),
        };
        self.log.push_back(line);
    }

    fn drop_pkt(&mut self, now: Instant, iface: usize, reason: &str, ip: Option<&Ip4>) {
        *self.counters.dropped.entry(reason.to_string()).or_default() += 1;
        self.note(now, iface, &format!("dropped ({reason})"), ip);
    }

    /// A firewall drop: counted under `reason`, logged with the rule that
    /// decided (`[rule 2 "comment"]`, or the policy) for the report's ladder.
    fn drop_by_firewall(
        &mut self,
        now: Instant,
        iface: usize,
        reason: &str,
        rule: Option<usize>,
        dir: Direction,
        ip: &Ip4,
    ) {
        *self.counters.dropped.entry(reason.to_string()).or_default() += 1;
        let which = match rule {
            Some(r) => match self
                .cfg
                .firewall
                .rules
                .get(r)
                .and_then(|r| r.comment.as_ref())
            {
                Some(c) => format!("rule {r} {c:?}"),
                None => format!("rule {r}"),
            },
            None => {
                let (name, p) = match dir {
                    Direction::In => ("policy_in", self.cfg.firewall.policy_in),
                    Direction::Out => ("policy_out", self.cfg.firewall.policy_out),
                };
                format!("{name} {p:?}").to_lowercase()
            }
        };
        self.note(
            now,
            iface,
            &format!("dropped ({reason}) [{which}]"),
            Some(ip),
        );
    }

    fn tx(&mut self, iface: usize, frame: Vec<u8>, out: &mut Vec<Output>) {
        let st = &mut self.if_stats[iface];
        st[2] += 1;
        st[3] += frame.len() as u64;
        out.push(Output { iface, frame });
    }

    /// Handles one received frame.
    pub fn handle(
        &mut self,
        iface: usize,
        mut frame: Vec<u8>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(ifc) = self.cfg.ifaces.get(iface) else {
            return;
        };
        let me = ifc.mac;
        let st = &mut self.if_stats[iface];
        st[0] += 1;
        st[1] += frame.len() as u64;
        let Some(p) = wire::parse(&frame) else {
            self.drop_pkt(now, iface, "malformed", None);
            return;
        };
        if p.src_mac == me {
            return; // our own frame looped back
        }
        if p.dst_mac != me && p.dst_mac != BROADCAST {
            return; // for another host on the segment
        }
        match p.kind {
            Kind::Arp(a) => self.on_arp(iface, a, now, out),
            Kind::Ipv4(ip) => self.on_ipv4(iface, &mut frame, ip, now, out),
            Kind::Ipv6 => self.drop_pkt(now, iface, "ipv6 not routed", None),
            Kind::Other => self.drop_pkt(now, iface, "not ipv4", None),
        }
    }

    fn on_arp(&mut self, iface: usize, a: wire::Arp, now: Instant, out: &mut Vec<Output>) {
        let ifc = &self.cfg.ifaces[iface];
        if ifc.addr.contains(&a.spa) && a.spa != ifc.addr.addr() {
            self.arp.insert(a.spa, a.sha);
            if let Some(p) = self.pending.remove(&a.spa) {
                let my = self.cfg.ifaces[p.iface].mac;
                for (mut f, _) in p.frames {
                    wire::set_macs(&mut f, my, a.sha);
                    self.tx(p.iface, f, out);
                }
            }
        }
        if a.op == 1 && a.tpa == self.cfg.ifaces[iface].addr.addr() {
            let ifc = &self.cfg.ifaces[iface];
            let reply = wire::arp_frame(2, ifc.mac, ifc.addr.addr(), a.sha, a.spa);
            self.counters.arp_replies += 1;
            self.tx(iface, reply, out);
            let _ = now;
        }
    }

    fn our_iface(&self, ip: Ipv4Addr) -> Option<usize> {
        self.cfg.ifaces.iter().position(|i| i.addr.addr() == ip)
    }

    fn route(&self, ip: Ipv4Addr) -> Option<usize> {
        self.cfg.ifaces.iter().position(|i| i.addr.contains(&ip))
    }

    fn side(&self, iface: usize) -> Side {
        self.cfg.ifaces[iface].side
    }

    fn on_ipv4(
        &mut self,
        iface: usize,
        frame: &mut Vec<u8>,
        ip: Ip4,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        if ip.fragment {
            self.drop_pkt(now, iface, "fragment (not reassembled)", Some(&ip));
            return;
        }
        if ip.proto == ICMP {
            if let Some((ty, _)) = ip.l4.and_then(|l| l.icmp) {
                if matches!(ty, 3 | 11 | 12) {
                    self.on_icmp_error(iface, frame, ip, now, out);
                    return;
                }
            }
        }
        let key = (ip.proto, ip.src_sa(), ip.dst_sa());
        if let Some(&(id, dir)) = self.index.get(&key) {
            self.forward_known(iface, frame, ip, id, dir, now, out);
            return;
        }
        self.new_flow(iface, frame, ip, now, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_known(
        &mut self,
        iface: usize,
        frame: &mut Vec<u8>,
        mut ip: Ip4,
        id: u64,
        dir: Dir,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(c) = self.conns.get(&id) else { return };
        let (egress, expected_in) = match dir {
            Dir::Orig => (c.out_if, c.in_if),
            Dir::Reply => (c.in_if, c.out_if),
        };
        if iface != expected_in {
            self.drop_pkt(now, iface, "flow seen on the wrong interface", Some(&ip));
            return;
        }
        if !self.cfg.firewall.stateful {
            let facts = Facts {
                dir: c.dir,
                proto: ip.proto,
                src: if dir == Dir::Orig {
                    c.orig_src
                } else {
                    c.xlat_dst
                },
                dst: if dir == Dir::Orig {
                    c.xlat_dst
                } else {
                    c.orig_src
                },
                tcp_flags: ip.l4.and_then(|l| l.tcp).map_or(0, |t| t.flags),
                state: CtState::Established,
            };
            let v = self.cfg.firewall.judge(&facts);
            if let Some(r) = v.rule {
                self.counters.rule_hits[r] += 1;
            }
            if v.action != Action::Accept {
                let d = c.dir;
                self.drop_by_firewall(now, iface, "firewall", v.rule, d, &ip);
                return;
            }
        }
        if !self.check_ttl_mtu(iface, egress, frame, &ip, now, out) {
            return;
        }
        // ALG on control connections: may replace the frame.
        let c = self.conns.get(&id).expect("checked");
        if c.alg
            && ip
                .l4
                .is_some_and(|l| l.payload_off < (ip.off + ip.total_len).min(frame.len()))
        {
            match self.alg_segment(id, dir, frame, &ip, now) {
                AlgOutcome::Keep => {}
                AlgOutcome::Drop => {
                    self.drop_pkt(now, iface, "alg blocked EPSV/EPRT", Some(&ip));
                    return;
                }
                AlgOutcome::Replace(new) => {
                    *frame = new;
                    match wire::parse(frame).map(|p| p.kind) {
                        Some(Kind::Ipv4(n)) => ip = n,
                        _ => return,
                    }
                }
            }
        }
        let c = self.conns.get_mut(&id).expect("checked");
        c.last_seen = now;
        let tcp_flags = ip.l4.and_then(|l| l.tcp).map_or(0, |t| t.flags);
        if dir == Dir::Reply {
            c.seen_reply = true;
        }
        if tcp_flags & (flags::FIN | flags::RST) != 0 {
            c.closing = true;
        }
        let (new_src, new_dst) = match dir {
            Dir::Orig => (c.xlat_src, c.xlat_dst),
            Dir::Reply => (c.orig_dst, c.orig_src),
        };
        let adj = c.adj;
        if let Some(m) = c.mapping {
            if let Some(m) = self.mappings.get_mut(&m) {
                m.last_used = now;
            }
        }
        // Keep what the sender sent in case the next hop never answers ARP.
        let origin = (!self.arp.contains_key(new_dst.ip())).then(|| (iface, frame.clone()));
        rewrite(frame, &mut ip, new_src, new_dst);
        if let Some(t) = ip.l4.and_then(|l| l.tcp) {
            let (mine, theirs) = match dir {
                Dir::Orig => (adj[0], adj[1]),
                Dir::Reply => (adj[1], adj[0]),
            };
            if mine.active() {
                wire::set_tcp_seq(frame, &mut ip, false, mine.seq(t.seq));
            }
            if theirs.active() && t.flags & flags::ACK != 0 {
                wire::set_tcp_seq(frame, &mut ip, true, theirs.ack_back(t.ack));
            }
        }
        self.emit(egress, std::mem::take(frame), ip, origin, now, out);
    }

    /// TTL and MTU checks before forwarding; sends the ICMP error itself.
    fn check_ttl_mtu(
        &mut self,
        iface: usize,
        egress: usize,
        frame: &[u8],
        ip: &Ip4,
        now: Instant,
        out: &mut Vec<Output>,
    ) -> bool {
        if ip.ttl <= 1 {
            self.drop_pkt(now, iface, "ttl exceeded", Some(ip));
            self.icmp_back(iface, frame, ip, 11, 0, [0; 4], out);
            return false;
        }
        let mtu = usize::from(self.cfg.ifaces[egress].mtu);
        if frame.len().saturating_sub(14) > mtu {
            if ip.df {
                self.drop_pkt(now, iface, "over mtu (fragmentation needed)", Some(ip));
                let m = (mtu as u16).to_be_bytes();
                self.icmp_back(iface, frame, ip, 3, 4, [0, 0, m[0], m[1]], out);
            } else {
                self.drop_pkt(now, iface, "over mtu (not fragmented)", Some(ip));
            }
            return false;
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn icmp_back(
        &mut self,
        iface: usize,
        frame: &[u8],
        ip: &Ip4,
        ty: u8,
        code: u8,
        extra: [u8; 4],
        out: &mut Vec<Output>,
    ) {
        if ip.proto == ICMP
            && ip
                .l4
                .and_then(|l| l.icmp)
                .is_some_and(|(t, _)| t != 0 && t != 8)
        {
            return; // never answer an ICMP error with one
        }
        let ifc = &self.cfg.ifaces[iface];
        let src_mac = wire::parse(frame).map_or(BROADCAST, |p| p.src_mac);
        let e = wire::icmp_error(
            frame,
            ip,
            ifc.addr.addr(),
            ifc.mac,
            src_mac,
            ty,
            code,
            extra,
        );
        self.counters.icmp_errors_sent += 1;
        self.tx(iface, e, out);
    }

    fn emit(
        &mut self,
        egress: usize,
        mut frame: Vec<u8>,
        mut ip: Ip4,
        origin: Origin,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        wire::dec_ttl(&mut frame, &mut ip);
        self.counters.forwarded += 1;
        let next_hop = ip.dst;
        let my = self.cfg.ifaces[egress].mac;
        match self.arp.get(&next_hop) {
            Some(&mac) => {
                wire::set_macs(&mut frame, my, mac);
                self.tx(egress, frame, out);
            }
            None => {
                let entry = self.pending.entry(next_hop).or_insert_with(|| Pending {
                    iface: egress,
                    frames: Vec::new(),
                    last_request: now - Duration::from_secs(10),
                    since: now,
                });
                if entry.frames.len() < PENDING_CAP {
                    entry.frames.push((frame, origin));
                }
                if now.duration_since(entry.last_request) >= Duration::from_millis(500) {
                    entry.last_request = now;
                    let ifc = &self.cfg.ifaces[egress];
                    let req = wire::arp_frame(1, ifc.mac, ifc.addr.addr(), [0; 6], next_hop);
                    self.counters.arp_requests += 1;
                    self.tx(egress, req, out);
                }
            }
        }
    }

    fn new_flow(
        &mut self,
        iface: usize,
        frame: &mut Vec<u8>,
        ip: Ip4,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let tcp_flags = ip.l4.and_then(|l| l.tcp).map_or(0, |t| t.flags);
        if ip.l4.is_none() {
            self.drop_pkt(now, iface, "no transport header", Some(&ip));
            return;
        }
        let is_syn = tcp_flags & (flags::SYN | flags::ACK) == flags::SYN;
        let (src, dst) = (ip.src_sa(), ip.dst_sa());
        // 1. An expected data connection (ALG).
        if let Some(pos) = self
            .expects
            .iter()
            .position(|e| e.src_ip == ip.src && e.dst == dst && now < e.expires)
        {
            if ip.proto == TCP && !is_syn {
                self.drop_pkt(now, iface, "invalid (no flow, not a SYN)", Some(&ip));
                return;
            }
            let e = self.expects.remove(pos);
            let Some(out_if) = self.route(*e.to.ip()) else {
                return;
            };
            self.counters.expectations_used += 1;
            let dir = if self.side(iface) == Side::Outside {
                Direction::In
            } else {
                Direction::Out
            };
            if self.firewall_new(iface, &ip, dir, e.to, CtState::Related, frame, now, out) {
                let id = self.add_conn(
                    ip.proto, src, dst, src, e.to, iface, out_if, dir, true, None, now,
                );
                self.note(now, iface, "new related flow (ALG expectation)", Some(&ip));
                self.forward_known(iface, frame, ip, id, Dir::Orig, now, out);
            }
            return;
        }
        // 2. Addressed to the gateway itself.
        if let Some(own_if) = self.our_iface(ip.dst) {
            if ip.proto == ICMP && ip.l4.and_then(|l| l.icmp).is_some_and(|(t, _)| t == 8) {
                let src_mac = wire::parse(frame).map_or(BROADCAST, |p| p.src_mac);
                if let Some(r) = wire::echo_reply(frame, &ip, self.cfg.ifaces[iface].mac, src_mac) {
                    self.tx(iface, r, out);
                }
                return;
            }
            if ip.proto == TCP && !is_syn {
                self.drop_pkt(now, iface, "invalid (no flow, not a SYN)", Some(&ip));
                return;
            }
            let own_outside = self.side(own_if) == Side::Outside;
            let fwd = own_outside
                .then(|| {
                    self.cfg.forwards.iter().find_map(|f| {
                        f.map(ip.proto, dst.port())
                            .map(|p| SocketAddrV4::new(f.to, p))
                    })
                })
                .flatten();
            match (self.side(iface), fwd) {
                (Side::Outside, Some(to)) => {
                    self.open_inbound(iface, frame, ip, to, src, None, now, out);
                }
                (Side::Outside, None) => {
                    // Unsolicited inbound to a NAT mapping?
                    let mk = self.by_ext.get(&(ip.proto, dst.port())).copied();
                    let allowed = mk
                        .and_then(|k| self.mappings.get(&k).map(|m| (k, m)))
                        .and_then(|(k, m)| {
                            let nat = self.cfg.nat.as_ref()?;
                            let ok = match nat.filtering {
                                Behaviour::EndpointIndependent => true,
                                Behaviour::AddressDependent => {
                                    m.remotes.iter().any(|r| r.ip() == &ip.src)
                                }
                                Behaviour::AddressAndPortDependent => m.remotes.contains(&src),
                            };
                            ok.then_some(k)
                        });
                    match allowed {
                        Some(k) => {
                            let to = k.internal;
                            self.open_inbound(iface, frame, ip, to, src, Some(k), now, out);
                        }
                        None => {
                            let why = if mk.is_some() {
                                "filtered (mapping filtering behaviour)"
                            } else {
                                "no mapping or forward"
                            };
                            self.unsolicited(iface, frame, &ip, why, now, out);
                        }
                    }
                }
                (Side::Inside, Some(to)) if self.cfg.nat.as_ref().is_some_and(|n| n.hairpin) => {
                    // Hairpin: DNAT to the server, SNAT to the public address.
                    let Some(out_if) = self.route(*to.ip()) else {
                        return;
                    };
                    let Some((mk, ext)) = self.get_mapping(ip.proto, src, to, own_if, now) else {
                        self.table_full(iface, frame, &ip, now, out);
                        return;
                    };
                    if self.firewall_new(
                        iface,
                        &ip,
                        Direction::Out,
                        to,
                        CtState::New,
                        frame,
                        now,
                        out,
                    ) {
                        let id = self.add_conn(
                            ip.proto,
                            src,
                            dst,
                            ext,
                            to,
                            iface,
                            out_if,
                            Direction::Out,
                            false,
                            Some(mk),
                            now,
                        );
                        self.note(now, iface, "new hairpin flow", Some(&ip));
                        self.forward_known(iface, frame, ip, id, Dir::Orig, now, out);
                    }
                }
                (Side::Inside, Some(_)) => self.drop_pkt(now, iface, "hairpin disabled", Some(&ip)),
                (Side::Inside, None) => {
                    self.unsolicited(iface, frame, &ip, "no service on the gateway", now, out)
                }
            }
            return;
        }
        // 3. Transit.
        let Some(egress) = self.route(ip.dst) else {
            self.drop_pkt(now, iface, "no route", Some(&ip));
            self.icmp_back(iface, frame, &ip, 3, 0, [0; 4], out);
            return;
        };
        if egress == iface {
            self.drop_pkt(now, iface, "would leave where it came in", Some(&ip));
            return;
        }
        if ip.proto == TCP && !is_syn {
            self.drop_pkt(now, iface, "invalid (no flow, not a SYN)", Some(&ip));
            return;
        }
        let dir = if self.side(iface) == Side::Outside {
            Direction::In
        } else {
            Direction::Out
        };
        let snat = self.side(iface) == Side::Inside
            && self.side(egress) == Side::Outside
            && self.cfg.nat.is_some();
        if !self.firewall_new(iface, &ip, dir, dst, CtState::New, frame, now, out) {
            return;
        }
        let (xsrc, mk) = if snat {
            match self.get_mapping(ip.proto, src, dst, egress, now) {
                Some((mk, ext)) => (ext, Some(mk)),
                None => {
                    self.table_full(iface, frame, &ip, now, out);
                    return;
                }
            }
        } else {
            (src, None)
        };
        let id = self.add_conn(
            ip.proto, src, dst, xsrc, dst, iface, egress, dir, false, mk, now,
        );
        self.note(
            now,
            iface,
            if snat {
                "new flow (source NAT)"
            } else {
                "new flow (routed)"
            },
            Some(&ip),
        );
        self.forward_known(iface, frame, ip, id, Dir::Orig, now, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn open_inbound(
        &mut self,
        iface: usize,
        frame: &mut Vec<u8>,
        ip: Ip4,
        to: SocketAddrV4,
        src: SocketAddrV4,
        mk: Option<MapKey>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(out_if) = self.route(*to.ip()) else {
            self.drop_pkt(now, iface, "forward target unroutable", Some(&ip));
            return;
        };
        if !self.firewall_new(iface, &ip, Direction::In, to, CtState::New, frame, now, out) {
            return;
        }
        if let Some(k) = mk {
            if let Some(m) = self.mappings.get_mut(&k) {
                m.refs += 1;
            }
        }
        let id = self.add_conn(
            ip.proto,
            src,
            ip.dst_sa(),
            src,
            to,
            iface,
            out_if,
            Direction::In,
            false,
            mk,
            now,
        );
        let what = if mk.is_some() {
            "new inbound flow on a mapping"
        } else {
            "new inbound flow (port forward)"
        };
        self.note(now, iface, what, Some(&ip));
        self.forward_known(iface, frame, ip, id, Dir::Orig, now, out);
    }

    fn unsolicited(
        &mut self,
        iface: usize,
        frame: &[u8],
        ip: &Ip4,
        why: &str,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        self.drop_pkt(now, iface, why, Some(ip));
        if self.cfg.reject_unsolicited {
            self.reject(iface, frame, ip, out);
        }
    }

    fn table_full(
        &mut self,
        iface: usize,
        frame: &[u8],
        ip: &Ip4,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        self.counters.mappings_refused += 1;
        self.drop_pkt(now, iface, "mapping table full", Some(ip));
        if self
            .cfg
            .nat
            .as_ref()
            .is_some_and(|n| n.full == FullPolicy::Rst)
            && ip.proto == TCP
        {
            self.reject(iface, frame, ip, out);
        }
    }

    fn reject(&mut self, iface: usize, frame: &[u8], ip: &Ip4, out: &mut Vec<Output>) {
        if ip.proto == TCP {
            let src_mac = wire::parse(frame).map_or(BROADCAST, |p| p.src_mac);
            if let Some(r) = wire::tcp_rst(ip, self.cfg.ifaces[iface].mac, src_mac) {
                self.tx(iface, r, out);
            }
        } else {
            self.icmp_back(iface, frame, ip, 3, 3, [0; 4], out);
        }
    }

    /// Judges a new flow; on drop/reject counts and answers. Returns whether to go on.
    #[allow(clippy::too_many_arguments)]
    fn firewall_new(
        &mut self,
        iface: usize,
        ip: &Ip4,
        dir: Direction,
        post_dnat_dst: SocketAddrV4,
        state: CtState,
        frame: &[u8],
        now: Instant,
        out: &mut Vec<Output>,
    ) -> bool {
        let facts = Facts {
            dir,
            proto: ip.proto,
            src: ip.src_sa(),
            dst: post_dnat_dst,
            tcp_flags: ip.l4.and_then(|l| l.tcp).map_or(0, |t| t.flags),
            state,
        };
        let v = self.cfg.firewall.judge(&facts);
        match v.rule {
            Some(r) => self.counters.rule_hits[r] += 1,
            None if state == CtState::New => self.counters.policy_hits += 1,
            None => {}
        }
        match v.action {
            Action::Accept => true,
            Action::Drop => {
                self.drop_by_firewall(now, iface, "firewall", v.rule, dir, ip);
                false
            }
            Action::Reject => {
                self.drop_by_firewall(now, iface, "firewall (rejected)", v.rule, dir, ip);
                self.reject(iface, frame, ip, out);
                false
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_conn(
        &mut self,
        proto: u8,
        orig_src: SocketAddrV4,
        orig_dst: SocketAddrV4,
        xlat_src: SocketAddrV4,
        xlat_dst: SocketAddrV4,
        in_if: usize,
        out_if: usize,
        dir: Direction,
        related: bool,
        mapping: Option<MapKey>,
        now: Instant,
    ) -> u64 {
        if related {
            self.counters.related_flows += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        let alg = self.cfg.alg != AlgMode::Off
            && proto == TCP
            && self.cfg.alg_ports.contains(&xlat_dst.port());
        self.index
            .insert((proto, orig_src, orig_dst), (id, Dir::Orig));
        self.index
            .insert((proto, xlat_dst, xlat_src), (id, Dir::Reply));
        if let Some(m) = mapping.and_then(|k| self.mappings.get_mut(&k)) {
            m.remotes.insert(xlat_dst);
        }
        self.conns.insert(
            id,
            Conn {
                proto,
                orig_src,
                orig_dst,
                xlat_src,
                xlat_dst,
                in_if,
                out_if,
                dir,
                seen_reply: false,
                closing: false,
                last_seen: now,
                mapping,
                alg,
                adj: [SeqAdj::default(); 2],
            },
        );
        self.counters.conns_created += 1;
        id
    }

    fn port_taken(&self, proto: u8, port: u16) -> bool {
        port < 1024
            || self.by_ext.contains_key(&(proto, port))
            || self.reserved.contains(&(proto, port))
            || self
                .cfg
                .forwards
                .iter()
                .any(|f| f.map(proto, port).is_some())
    }

    fn alloc_port(&mut self, proto: u8, wanted: u16) -> Option<u16> {
        let choice = self
            .cfg
            .nat
            .as_ref()
            .map_or(PortChoice::Preserve, |n| n.ports);
        if choice == PortChoice::Preserve && !self.port_taken(proto, wanted) {
            return Some(wanted);
        }
        if choice == PortChoice::Random {
            for _ in 0..64 {
                let p = self.rng.gen_range(1024..=65535);
                if !self.port_taken(proto, p) {
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
            if !self.port_taken(proto, p) {
                return Some(p);
            }
        }
        None
    }

    /// Finds or creates the mapping for `internal` talking to `remote`
    /// through outside interface `egress`.
    fn get_mapping(
        &mut self,
        proto: u8,
        internal: SocketAddrV4,
        remote: SocketAddrV4,
        egress: usize,
        now: Instant,
    ) -> Option<(MapKey, SocketAddrV4)> {
        let nat = self.cfg.nat.clone()?;
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
            return Some((key, m.ext));
        }
        if self.mappings.len() >= nat.max_mappings {
            return None;
        }
        let port = self.alloc_port(proto, internal.port())?;
        let ext = SocketAddrV4::new(self.cfg.ifaces[egress].addr.addr(), port);
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
        self.counters.mappings_created += 1;
        Some((key, ext))
    }

    // ---- ALG ---------------------------------------------------------------

    fn alg_segment(
        &mut self,
        id: u64,
        dir: Dir,
        frame: &[u8],
        ip: &Ip4,
        now: Instant,
    ) -> AlgOutcome {
        let mode = self.cfg.alg;
        let Some(l4) = ip.l4 else {
            return AlgOutcome::Keep;
        };
        let end = (ip.off + ip.total_len).min(frame.len());
        let payload = &frame[l4.payload_off..end];
        let c = &self.conns[&id];
        let (orig_src, orig_dst, xlat_src, xlat_dst) =
            (c.orig_src, c.orig_dst, c.xlat_src, c.xlat_dst);
        let scan = match dir {
            Dir::Orig => alg::scan_client(payload),
            Dir::Reply => alg::scan_server(payload),
        };
        let found = match scan {
            Scan::Nothing => return AlgOutcome::Keep,
            Scan::Split => {
                self.counters.alg_split += 1;
                return AlgOutcome::Keep;
            }
            Scan::Found(f) => f,
        };
        let extended = matches!(
            found,
            Found::Eprt { .. } | Found::Epsv { .. } | Found::EpsvCmd
        );
        if mode == AlgMode::BlockExtended && matches!(found, Found::Eprt { .. } | Found::EpsvCmd) {
            self.counters.alg_blocked += 1;
            return AlgOutcome::Drop;
        }
        if mode == AlgMode::PasvOnly && extended {
            self.counters.alg_skipped += 1;
            return AlgOutcome::Keep;
        }
        // What to rewrite, and the expectation it implies.
        let is_port = matches!(found, Found::Port { .. });
        let (span, text, expect) = match found {
            Found::EpsvCmd => return AlgOutcome::Keep,
            Found::Port { addr, span } | Found::Eprt { addr, span } => {
                // Client inside behind source NAT, naming its own inside address.
                if orig_src.ip() == xlat_src.ip() || addr.ip() != orig_src.ip() {
                    self.counters.alg_skipped += 1;
                    return AlgOutcome::Keep;
                }
                // A retransmitted command maps to the same public port.
                let existing = self
                    .expects
                    .iter()
                    .find(|e| e.to == addr && e.src_ip == *xlat_dst.ip())
                    .map(|e| e.dst.port());
                let Some(port) = existing.or_else(|| self.alloc_port(TCP, addr.port())) else {
                    return AlgOutcome::Keep;
                };
                let public = SocketAddrV4::new(*xlat_src.ip(), port);
                let text = if is_port {
                    ftpnat_server::protocol::addr::format_host_port(public)
                } else {
                    ftpnat_server::protocol::addr::format_eprt(public.into())
                };
                (
                    span,
                    text,
                    Expect {
                        src_ip: *xlat_dst.ip(),
                        dst: public,
                        to: addr,
                        expires: now + EXPECT_TTL,
                    },
                )
            }
            Found::Pasv { addr, span } => {
                // Server inside behind a port forward, naming its inside address.
                if orig_dst.ip() == xlat_dst.ip() || addr.ip() != xlat_dst.ip() {
                    self.counters.alg_skipped += 1;
                    return AlgOutcome::Keep;
                }
                let public = SocketAddrV4::new(*orig_dst.ip(), addr.port());
                let text = ftpnat_server::protocol::addr::format_host_port(public);
                (
                    span,
                    text,
                    Expect {
                        src_ip: *orig_src.ip(),
                        dst: public,
                        to: addr,
                        expires: now + EXPECT_TTL,
                    },
                )
            }
            Found::Epsv { port, span } => {
                if orig_dst.ip() == xlat_dst.ip() {
                    self.counters.alg_skipped += 1;
                    return AlgOutcome::Keep;
                }
                let public = SocketAddrV4::new(*orig_dst.ip(), port);
                let to = SocketAddrV4::new(*xlat_dst.ip(), port);
                (
                    span,
                    port.to_string(),
                    Expect {
                        src_ip: *orig_src.ip(),
                        dst: public,
                        to,
                        expires: now + EXPECT_TTL,
                    },
                )
            }
        };
        let delta = text.len() as i32 - (span.end - span.start) as i32;
        if mode == AlgMode::SameLengthOnly && delta != 0 {
            self.counters.alg_skipped += 1;
            return AlgOutcome::Keep;
        }
        self.reserved.insert((TCP, expect.dst.port()));
        self.expects.retain(|e| e.dst != expect.dst);
        self.expects.push(expect);
        self.counters.expectations_created += 1;
        self.counters.alg_rewrites += 1;
        let new_payload = alg::splice(payload, &span, &text);
        let seq = l4.tcp.map_or(0, |t| t.seq);
        if delta != 0 {
            let c = self.conns.get_mut(&id).expect("live");
            c.adj[if dir == Dir::Orig { 0 } else { 1 }].record(seq, delta);
        }
        match wire::rebuild_tcp(frame, ip, &new_payload) {
            Some(f) => AlgOutcome::Replace(f),
            None => AlgOutcome::Keep,
        }
    }

    // ---- ICMP errors -------------------------------------------------------

    fn on_icmp_error(
        &mut self,
        iface: usize,
        frame: &mut Vec<u8>,
        mut ip: Ip4,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(l4) = ip.l4 else { return };
        let Some(inner) = wire::parse_embedded(frame, l4.payload_off) else {
            self.drop_pkt(now, iface, "icmp error without a quote", Some(&ip));
            return;
        };
        let key = (inner.proto, inner.dst_sa(), inner.src_sa());
        let Some(&(id, dir)) = self.index.get(&key) else {
            if self.our_iface(ip.dst).is_none() {
                if let Some(egress) = self.route(ip.dst).filter(|e| *e != iface) {
                    self.emit(egress, std::mem::take(frame), ip, None, now, out);
                    return;
                }
            }
            self.drop_pkt(now, iface, "icmp error for no known flow", Some(&ip));
            return;
        };
        let c = &self.conns[&id];
        // The quoted packet travelled the other way: restore what that side knows.
        let (egress, in_src, in_dst, outer_dst) = match dir {
            Dir::Reply => (c.in_if, c.orig_src, c.orig_dst, *c.orig_src.ip()),
            Dir::Orig => (c.out_if, c.xlat_dst, c.xlat_src, *c.xlat_src.ip()),
        };
        wire::set_embedded(frame, &inner, true, *in_src.ip(), in_src.port());
        wire::set_embedded(frame, &inner, false, *in_dst.ip(), in_dst.port());
        if self.side(egress) == Side::Outside && self.side(iface) == Side::Inside {
            let me = self.cfg.ifaces[egress].addr.addr();
            wire::set_addr(frame, &mut ip, true, me);
        }
        wire::set_addr(frame, &mut ip, false, outer_dst);
        wire::recompute_icmp_error(frame, &ip, &inner);
        self.counters.icmp_errors_translated += 1;
        self.note(now, iface, "icmp error translated", Some(&ip));
        self.emit(egress, std::mem::take(frame), ip, None, now, out);
    }

    // ---- timers ------------------------------------------------------------

    /// Expires flows, mappings, expectations and stale ARP queues.
    /// Expiry may answer senders with ICMP host unreachable, hence `out`.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Output>) {
        let t = self
            .cfg
            .nat
            .as_ref()
            .map(|n| n.timeouts)
            .unwrap_or_default();
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
        for id in expired {
            let c = self.conns.remove(&id).expect("listed");
            self.index.remove(&(c.proto, c.orig_src, c.orig_dst));
            self.index.remove(&(c.proto, c.xlat_dst, c.xlat_src));
            if let Some(m) = c.mapping.and_then(|k| self.mappings.get_mut(&k)) {
                m.refs = m.refs.saturating_sub(1);
            }
            self.counters.conns_expired += 1;
        }
        let udp_ttl = Duration::from_secs(t.udp.min(t.tcp_transitory));
        let dead: Vec<MapKey> = self
            .mappings
            .iter()
            .filter(|(_, m)| m.refs == 0 && now.saturating_duration_since(m.last_used) >= udp_ttl)
            .map(|(k, _)| *k)
            .collect();
        for k in dead {
            if let Some(m) = self.mappings.remove(&k) {
                self.by_ext.remove(&(k.proto, m.ext.port()));
                self.counters.mappings_expired += 1;
            }
        }
        let before = self.expects.len();
        let reserved = &mut self.reserved;
        self.expects.retain(|e| {
            let live = now < e.expires;
            if !live {
                reserved.remove(&(TCP, e.dst.port()));
            }
            live
        });
        let _ = before;
        // Neighbours silent for 3 s: drop their queue, tell each sender.
        let stale: Vec<Ipv4Addr> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.since) > Duration::from_secs(3))
            .map(|(ip, _)| *ip)
            .collect();
        for ip in stale {
            let Some(p) = self.pending.remove(&ip) else {
                continue;
            };
            *self
                .counters
                .dropped
                .entry("neighbour unreachable (no ARP reply)".into())
                .or_default() += p.frames.len() as u64;
            for (_, origin) in p.frames {
                if let Some((ingress, orig)) = origin {
                    if let Some(Kind::Ipv4(oip)) = wire::parse(&orig).map(|x| x.kind) {
                        self.icmp_back(ingress, &orig, &oip, 3, 1, [0; 4], out);
                    }
                }
            }
        }
    }
}

enum AlgOutcome {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

fn rewrite(frame: &mut [u8], ip: &mut Ip4, src: SocketAddrV4, dst: SocketAddrV4) {
    if ip.src != *src.ip() {
        wire::set_addr(frame, ip, true, *src.ip());
    }
    if ip.dst != *dst.ip() {
        wire::set_addr(frame, ip, false, *dst.ip());
    }
    if let Some(l4) = ip.l4 {
        if ip.proto == ICMP {
            if l4.sport != src.port() {
                wire::set_port(frame, ip, true, src.port());
            }
            return;
        }
        if l4.sport != src.port() {
            wire::set_port(frame, ip, true, src.port());
        }
        if l4.dport != dst.port() {
            wire::set_port(frame, ip, false, dst.port());
        }
    }
}

/// Name of a protocol number.
pub fn proto_name(p: u8) -> &'static str {
    match p {
        TCP => "tcp",
        UDP => "udp",
        ICMP => "icmp",
        _ => "ip",
    }
}
