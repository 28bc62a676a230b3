//! The sans-IO gateway: `(interface, frame, now) → frames to send`.
//!
//! Invariants:
//! * Every flow is tracked in [`super::conntrack`]; packets of known flows
//!   take the fast path: in-place rewrites with incremental checksums.
//! * A new flow is decided once ([`super::flow`]), in order: ALG
//!   expectation, traffic to the gateway's own addresses (echo, forwards,
//!   inbound to a NAT mapping per the filtering behaviour, hairpin), then
//!   transit (source NAT from inside to outside). The firewall judges it
//!   after destination NAT.
//! * TCP flows start with a SYN; anything else without state is invalid.
//! * Mappings ([`super::nat`]) live while a flow uses them and for the flow
//!   timeout after.
//! * Nothing here reads a clock or a socket: `now` comes in, frames go out.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddrV4},
    time::{Duration, Instant},
};

use super::{
    alg::{self, Scan},
    conntrack::{Conntrack, Dir},
    counters::{DropReason, IfStats, PacketLog},
    expect::{self, Expectations, Plan},
    firewall::Facts,
    nat::NatTable,
    wire::{self, flags, Ip4, Kind, Mac, BROADCAST, ICMP, TCP},
};
use crate::engine::{
    Action, Counters, CtState, Direction, FullPolicy, GatewayConfig, PortChoice, Side,
};

/// A frame to transmit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Interface index.
    pub iface: usize,
    /// The frame.
    pub frame: Vec<u8>,
}

/// A received IPv4 packet while the router decides on it.
pub(super) struct Packet<'f> {
    /// Ingress interface.
    pub(super) iface: usize,
    /// The frame as received; rewritten in place (or replaced) on the way out.
    pub(super) frame: &'f mut Vec<u8>,
    /// Its parsed header and ports.
    pub(super) ip: Ip4,
    /// When it arrived.
    pub(super) now: Instant,
}

/// An ICMP error to answer a packet with.
#[derive(Debug, Clone, Copy)]
pub(super) struct IcmpError {
    ty: u8,
    code: u8,
    /// The four bytes after the checksum (the MTU for "fragmentation needed").
    extra: [u8; 4],
}

impl IcmpError {
    pub(super) const NET_UNREACHABLE: IcmpError = IcmpError::unreachable(0);
    const HOST_UNREACHABLE: IcmpError = IcmpError::unreachable(1);
    const PORT_UNREACHABLE: IcmpError = IcmpError::unreachable(3);
    const TTL_EXCEEDED: IcmpError = IcmpError {
        ty: 11,
        code: 0,
        extra: [0; 4],
    };

    const fn unreachable(code: u8) -> IcmpError {
        IcmpError {
            ty: 3,
            code,
            extra: [0; 4],
        }
    }

    fn fragmentation_needed(mtu: u16) -> IcmpError {
        let m = mtu.to_be_bytes();
        IcmpError {
            ty: 3,
            code: 4,
            extra: [0, 0, m[0], m[1]],
        }
    }
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

/// What the ALG did to a segment.
enum AlgOutcome {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

/// The userspace gateway state machine.
#[derive(Debug)]
pub struct Router {
    pub(super) cfg: GatewayConfig,
    arp: HashMap<Ipv4Addr, Mac>,
    pending: HashMap<Ipv4Addr, Pending>,
    pub(super) conns: Conntrack,
    pub(super) nat: NatTable,
    pub(super) expects: Expectations,
    /// Counters (the per-interface maps are filled in by [`Router::snapshot`]).
    pub counters: Counters,
    /// Per interface (no allocation on the packet path).
    if_stats: Vec<IfStats>,
    log: PacketLog,
}

const PENDING_CAP: usize = 16;

impl Router {
    /// A router for `cfg`.
    pub fn new(cfg: GatewayConfig, now: Instant) -> Router {
        let rule_hits = vec![0; cfg.firewall.rules.len()];
        Router {
            arp: HashMap::new(),
            pending: HashMap::new(),
            conns: Conntrack::new(),
            nat: NatTable::new(cfg.seed),
            expects: Expectations::default(),
            counters: Counters {
                rule_hits,
                ..Counters::default()
            },
            if_stats: vec![IfStats::default(); cfg.ifaces.len()],
            log: PacketLog::new(now),
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
            c.rx_packets.insert(name.clone(), st.rx_packets);
            c.rx_bytes.insert(name.clone(), st.rx_bytes);
            c.tx_packets.insert(name.clone(), st.tx_packets);
            c.tx_bytes.insert(name.clone(), st.tx_bytes);
        }
        c
    }

    /// Number of live NAT mappings.
    pub fn mapping_count(&self) -> usize {
        self.nat.len()
    }

    /// Number of live flows.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// The packet log (oldest first).
    pub fn log_lines(&self) -> impl Iterator<Item = &String> {
        self.log.lines()
    }

    // ---- recording ---------------------------------------------------------

    pub(super) fn note(&mut self, now: Instant, iface: usize, what: &str, ip: Option<&Ip4>) {
        self.log.note(now, &self.cfg.ifaces[iface].name, what, ip);
    }

    fn drop_at(&mut self, now: Instant, iface: usize, why: DropReason, ip: Option<&Ip4>) {
        *self
            .counters
            .dropped
            .entry(why.as_str().to_string())
            .or_default() += 1;
        self.note(now, iface, &format!("dropped ({why})"), ip);
    }

    /// Counts and logs that `p` was dropped, and why.
    pub(super) fn drop(&mut self, p: &Packet, why: DropReason) {
        self.drop_at(p.now, p.iface, why, Some(&p.ip));
    }

    /// A firewall drop: counted under `why`, logged with the rule that
    /// decided (`[rule 2 "comment"]`, or the policy) for the report's ladder.
    fn drop_by_firewall(
        &mut self,
        p: &Packet,
        why: DropReason,
        rule: Option<usize>,
        dir: Direction,
    ) {
        *self
            .counters
            .dropped
            .entry(why.as_str().to_string())
            .or_default() += 1;
        let fw = &self.cfg.firewall;
        let which = match rule {
            Some(r) => match fw.rules.get(r).and_then(|r| r.comment.as_ref()) {
                Some(c) => format!("rule {r} {c:?}"),
                None => format!("rule {r}"),
            },
            None => {
                let (name, policy) = match dir {
                    Direction::In => ("policy_in", fw.policy_in),
                    Direction::Out => ("policy_out", fw.policy_out),
                };
                format!("{name} {policy:?}").to_lowercase()
            }
        };
        self.note(
            p.now,
            p.iface,
            &format!("dropped ({why}) [{which}]"),
            Some(&p.ip),
        );
    }

    pub(super) fn tx(&mut self, iface: usize, frame: Vec<u8>, out: &mut Vec<Output>) {
        self.if_stats[iface].tx(frame.len());
        out.push(Output { iface, frame });
    }

    // ---- reception ---------------------------------------------------------

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
        self.if_stats[iface].rx(frame.len());
        let Some(p) = wire::parse(&frame) else {
            self.drop_at(now, iface, DropReason::Malformed, None);
            return;
        };
        if p.src_mac == me {
            return; // our own frame looped back
        }
        if p.dst_mac != me && p.dst_mac != BROADCAST {
            return; // for another host on the segment
        }
        match p.kind {
            Kind::Arp(a) => self.on_arp(iface, a, out),
            Kind::Ipv4(ip) => {
                let p = Packet {
                    iface,
                    frame: &mut frame,
                    ip,
                    now,
                };
                self.on_ipv4(p, out)
            }
            Kind::Ipv6 => self.drop_at(now, iface, DropReason::Ipv6, None),
            Kind::Other => self.drop_at(now, iface, DropReason::NotIpv4, None),
        }
    }

    fn on_arp(&mut self, iface: usize, a: wire::Arp, out: &mut Vec<Output>) {
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
        }
    }

    pub(super) fn our_iface(&self, ip: Ipv4Addr) -> Option<usize> {
        self.cfg.ifaces.iter().position(|i| i.addr.addr() == ip)
    }

    pub(super) fn route(&self, ip: Ipv4Addr) -> Option<usize> {
        self.cfg.ifaces.iter().position(|i| i.addr.contains(&ip))
    }

    pub(super) fn side(&self, iface: usize) -> Side {
        self.cfg.ifaces[iface].side
    }

    /// The external port choice (ALG expectations use it without NAT too).
    pub(super) fn port_choice(&self) -> PortChoice {
        self.cfg
            .nat
            .as_ref()
            .map_or(PortChoice::Preserve, |n| n.ports)
    }

    fn on_ipv4(&mut self, p: Packet, out: &mut Vec<Output>) {
        if p.ip.fragment {
            self.drop(&p, DropReason::Fragment);
            return;
        }
        if p.ip.proto == ICMP {
            if let Some((ty, _)) = p.ip.l4.and_then(|l| l.icmp) {
                if matches!(ty, 3 | 11 | 12) {
                    self.on_icmp_error(p, out);
                    return;
                }
            }
        }
        let key = (p.ip.proto, p.ip.src_sa(), p.ip.dst_sa());
        match self.conns.lookup(&key) {
            Some(flow) => self.forward_known(p, flow, out),
            None => self.new_flow(p, out),
        }
    }

    // ---- known flows -------------------------------------------------------

    /// Forwards a packet of flow `(id, dir)`: stateless firewall check, TTL
    /// and MTU, the ALG, translation, sequence adjustment, then out.
    pub(super) fn forward_known(
        &mut self,
        mut p: Packet,
        (id, dir): (u64, Dir),
        out: &mut Vec<Output>,
    ) {
        let Some(c) = self.conns.get(id) else { return };
        let (egress, expected_in) = match dir {
            Dir::Orig => (c.out_if, c.in_if),
            Dir::Reply => (c.in_if, c.out_if),
        };
        if p.iface != expected_in {
            self.drop(&p, DropReason::WrongInterface);
            return;
        }
        if !self.cfg.firewall.stateful && !self.stateless_firewall(&p, id, dir) {
            return;
        }
        if !self.check_ttl_mtu(&p, egress, out) {
            return;
        }
        // ALG on control connections: may replace the frame.
        let c = self.conns.get(id).expect("checked");
        let has_payload =
            p.ip.l4
                .is_some_and(|l| l.payload_off < (p.ip.off + p.ip.total_len).min(p.frame.len()));
        if c.alg && has_payload {
            match self.alg_segment(id, dir, p.frame, &p.ip, p.now) {
                AlgOutcome::Keep => {}
                AlgOutcome::Drop => {
                    self.drop(&p, DropReason::AlgBlocked);
                    return;
                }
                AlgOutcome::Replace(new) => {
                    *p.frame = new;
                    match wire::parse(p.frame).map(|x| x.kind) {
                        Some(Kind::Ipv4(n)) => p.ip = n,
                        _ => return,
                    }
                }
            }
        }
        self.translate_and_emit(p, id, dir, egress, out);
    }

    /// Without "keep state", every packet goes through the rules (as
    /// established); returns whether it may pass.
    fn stateless_firewall(&mut self, p: &Packet, id: u64, dir: Dir) -> bool {
        let c = self.conns.get(id).expect("checked");
        let (src, dst) = match dir {
            Dir::Orig => (c.orig_src, c.xlat_dst),
            Dir::Reply => (c.xlat_dst, c.orig_src),
        };
        let facts = Facts {
            dir: c.dir,
            proto: p.ip.proto,
            src,
            dst,
            tcp_flags: p.ip.l4.and_then(|l| l.tcp).map_or(0, |t| t.flags),
            state: CtState::Established,
        };
        let v = self.cfg.firewall.judge(&facts);
        if let Some(r) = v.rule {
            self.counters.rule_hits[r] += 1;
        }
        if v.action != Action::Accept {
            self.drop_by_firewall(p, DropReason::Firewall, v.rule, c.dir);
            return false;
        }
        true
    }

    /// Updates the flow's state, rewrites addresses, ports and sequence
    /// numbers, and sends the packet out of `egress`.
    fn translate_and_emit(
        &mut self,
        mut p: Packet,
        id: u64,
        dir: Dir,
        egress: usize,
        out: &mut Vec<Output>,
    ) {
        let c = self.conns.get_mut(id).expect("checked");
        c.last_seen = p.now;
        let tcp_flags = p.ip.l4.and_then(|l| l.tcp).map_or(0, |t| t.flags);
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
            self.nat.touch(m, p.now);
        }
        // Keep what the sender sent in case the next hop never answers ARP.
        let origin = (!self.arp.contains_key(new_dst.ip())).then(|| (p.iface, p.frame.clone()));
        rewrite(p.frame, &mut p.ip, new_src, new_dst);
        if let Some(t) = p.ip.l4.and_then(|l| l.tcp) {
            let (mine, theirs) = match dir {
                Dir::Orig => (adj[0], adj[1]),
                Dir::Reply => (adj[1], adj[0]),
            };
            if mine.active() {
                wire::set_tcp_seq(p.frame, &mut p.ip, false, mine.seq(t.seq));
            }
            if theirs.active() && t.flags & flags::ACK != 0 {
                wire::set_tcp_seq(p.frame, &mut p.ip, true, theirs.ack_back(t.ack));
            }
        }
        let frame = std::mem::take(p.frame);
        self.emit(egress, frame, p.ip, origin, p.now, out);
    }

    /// TTL and MTU checks before forwarding; sends the ICMP error itself.
    fn check_ttl_mtu(&mut self, p: &Packet, egress: usize, out: &mut Vec<Output>) -> bool {
        if p.ip.ttl <= 1 {
            self.drop(p, DropReason::TtlExceeded);
            self.icmp_back(p.iface, p.frame, &p.ip, IcmpError::TTL_EXCEEDED, out);
            return false;
        }
        let mtu = self.cfg.ifaces[egress].mtu;
        if p.frame.len().saturating_sub(14) > usize::from(mtu) {
            if p.ip.df {
                self.drop(p, DropReason::OverMtuDf);
                let e = IcmpError::fragmentation_needed(mtu);
                self.icmp_back(p.iface, p.frame, &p.ip, e, out);
            } else {
                self.drop(p, DropReason::OverMtu);
            }
            return false;
        }
        true
    }

    /// Answers the sender of `frame` (received on `iface`) with an ICMP error.
    pub(super) fn icmp_back(
        &mut self,
        iface: usize,
        frame: &[u8],
        ip: &Ip4,
        e: IcmpError,
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
        let frame = wire::icmp_error(
            frame,
            ip,
            ifc.addr.addr(),
            ifc.mac,
            src_mac,
            e.ty,
            e.code,
            e.extra,
        );
        self.counters.icmp_errors_sent += 1;
        self.tx(iface, frame, out);
    }

    /// Sends a translated packet out of `egress` to its next hop (queued
    /// behind an ARP request when the neighbour is not known yet).
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
        if let Some(&mac) = self.arp.get(&next_hop) {
            wire::set_macs(&mut frame, my, mac);
            self.tx(egress, frame, out);
            return;
        }
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

    // ---- refusals ----------------------------------------------------------

    /// Unsolicited: dropped, and answered when the gateway rejects.
    pub(super) fn unsolicited(&mut self, p: &Packet, why: DropReason, out: &mut Vec<Output>) {
        self.drop(p, why);
        if self.cfg.reject_unsolicited {
            self.reject(p, out);
        }
    }

    /// The mapping table is full: dropped (TCP answered with a RST under
    /// `full = "rst"`).
    pub(super) fn table_full(&mut self, p: &Packet, out: &mut Vec<Output>) {
        self.counters.mappings_refused += 1;
        self.drop(p, DropReason::MappingTableFull);
        let rst = self
            .cfg
            .nat
            .as_ref()
            .is_some_and(|n| n.full == FullPolicy::Rst);
        if rst && p.ip.proto == TCP {
            self.reject(p, out);
        }
    }

    /// Answers with a TCP RST, or ICMP port unreachable.
    fn reject(&mut self, p: &Packet, out: &mut Vec<Output>) {
        if p.ip.proto == TCP {
            let src_mac = wire::parse(p.frame).map_or(BROADCAST, |x| x.src_mac);
            if let Some(r) = wire::tcp_rst(&p.ip, self.cfg.ifaces[p.iface].mac, src_mac) {
                self.tx(p.iface, r, out);
            }
        } else {
            self.icmp_back(p.iface, p.frame, &p.ip, IcmpError::PORT_UNREACHABLE, out);
        }
    }

    /// Judges a new flow going `dir` to `post_dnat_dst` in `state`; on drop
    /// or reject counts and answers. Returns whether to go on.
    pub(super) fn firewall_new(
        &mut self,
        p: &Packet,
        dir: Direction,
        post_dnat_dst: SocketAddrV4,
        state: CtState,
        out: &mut Vec<Output>,
    ) -> bool {
        let facts = Facts {
            dir,
            proto: p.ip.proto,
            src: p.ip.src_sa(),
            dst: post_dnat_dst,
            tcp_flags: p.ip.l4.and_then(|l| l.tcp).map_or(0, |t| t.flags),
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
                self.drop_by_firewall(p, DropReason::Firewall, v.rule, dir);
                false
            }
            Action::Reject => {
                self.drop_by_firewall(p, DropReason::FirewallRejected, v.rule, dir);
                self.reject(p, out);
                false
            }
        }
    }

    // ---- ALG ---------------------------------------------------------------

    /// The ALG on a segment of control flow `id`: scans, decides
    /// ([`expect::plan`]), records the expectation and rebuilds the segment.
    fn alg_segment(
        &mut self,
        id: u64,
        dir: Dir,
        frame: &[u8],
        ip: &Ip4,
        now: Instant,
    ) -> AlgOutcome {
        let Some(l4) = ip.l4 else {
            return AlgOutcome::Keep;
        };
        let end = (ip.off + ip.total_len).min(frame.len());
        let payload = &frame[l4.payload_off..end];
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
        let choice = self.port_choice();
        let c = self.conns.get(id).expect("live");
        let (nat, expects, forwards) = (&mut self.nat, &self.expects, &self.cfg.forwards);
        let from = *c.xlat_dst.ip();
        let plan = expect::plan(self.cfg.alg, found, c, now, |to| {
            expects
                .port_for(to, from)
                .or_else(|| nat.alloc_port(TCP, to.port(), choice, forwards))
        });
        let rw = match plan {
            Plan::Pass => return AlgOutcome::Keep,
            Plan::Skip => {
                self.counters.alg_skipped += 1;
                return AlgOutcome::Keep;
            }
            Plan::Block => {
                self.counters.alg_blocked += 1;
                return AlgOutcome::Drop;
            }
            Plan::Rewrite(rw) => rw,
        };
        let delta = rw.delta();
        self.nat.reserve(TCP, rw.expect.dst.port());
        self.expects.insert(rw.expect);
        self.counters.expectations_created += 1;
        self.counters.alg_rewrites += 1;
        let new_payload = alg::splice(payload, &rw.span, &rw.text);
        let seq = l4.tcp.map_or(0, |t| t.seq);
        if delta != 0 {
            let c = self.conns.get_mut(id).expect("live");
            c.adj[if dir == Dir::Orig { 0 } else { 1 }].record(seq, delta);
        }
        match wire::rebuild_tcp(frame, ip, &new_payload) {
            Some(f) => AlgOutcome::Replace(f),
            None => AlgOutcome::Keep,
        }
    }

    // ---- ICMP errors -------------------------------------------------------

    /// An ICMP error about a flow: the quoted packet is translated back to
    /// what its sender knows, and the error forwarded to it.
    fn on_icmp_error(&mut self, mut p: Packet, out: &mut Vec<Output>) {
        let Some(l4) = p.ip.l4 else { return };
        let Some(inner) = wire::parse_embedded(p.frame, l4.payload_off) else {
            self.drop(&p, DropReason::IcmpWithoutQuote);
            return;
        };
        let key = (inner.proto, inner.dst_sa(), inner.src_sa());
        let Some((id, dir)) = self.conns.lookup(&key) else {
            if self.our_iface(p.ip.dst).is_none() {
                if let Some(egress) = self.route(p.ip.dst).filter(|e| *e != p.iface) {
                    let frame = std::mem::take(p.frame);
                    self.emit(egress, frame, p.ip, None, p.now, out);
                    return;
                }
            }
            self.drop(&p, DropReason::IcmpForNoFlow);
            return;
        };
        let c = self.conns.get(id).expect("indexed");
        // The quoted packet travelled the other way: restore what that side knows.
        let (egress, in_src, in_dst, outer_dst) = match dir {
            Dir::Reply => (c.in_if, c.orig_src, c.orig_dst, *c.orig_src.ip()),
            Dir::Orig => (c.out_if, c.xlat_dst, c.xlat_src, *c.xlat_src.ip()),
        };
        wire::set_embedded(p.frame, &inner, true, *in_src.ip(), in_src.port());
        wire::set_embedded(p.frame, &inner, false, *in_dst.ip(), in_dst.port());
        if self.side(egress) == Side::Outside && self.side(p.iface) == Side::Inside {
            let me = self.cfg.ifaces[egress].addr.addr();
            wire::set_addr(p.frame, &mut p.ip, true, me);
        }
        wire::set_addr(p.frame, &mut p.ip, false, outer_dst);
        wire::recompute_icmp_error(p.frame, &p.ip, &inner);
        self.counters.icmp_errors_translated += 1;
        self.note(p.now, p.iface, "icmp error translated", Some(&p.ip));
        let frame = std::mem::take(p.frame);
        self.emit(egress, frame, p.ip, None, p.now, out);
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
        for c in self.conns.expire(now, &t) {
            if let Some(m) = c.mapping {
                self.nat.release(m);
            }
            self.counters.conns_expired += 1;
        }
        let idle = Duration::from_secs(t.udp.min(t.tcp_transitory));
        self.counters.mappings_expired += self.nat.expire(now, idle);
        for port in self.expects.expire(now) {
            self.nat.unreserve(TCP, port);
        }
        self.expire_neighbours(now, out);
    }

    /// Neighbours silent for 3 s: drop their queue, tell each sender.
    fn expire_neighbours(&mut self, now: Instant, out: &mut Vec<Output>) {
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
                .entry(DropReason::NeighbourUnreachable.as_str().into())
                .or_default() += p.frames.len() as u64;
            for (_, origin) in p.frames {
                if let Some((ingress, orig)) = origin {
                    if let Some(Kind::Ipv4(oip)) = wire::parse(&orig).map(|x| x.kind) {
                        self.icmp_back(ingress, &orig, &oip, IcmpError::HOST_UNREACHABLE, out);
                    }
                }
            }
        }
    }
}

/// Rewrites a packet's addresses and ports to `src` → `dst` (ICMP: the
/// identifier stands for the source port).
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
