//! What the router records besides its decisions: why it dropped a packet
//! ([`DropReason`], the keys of [`Counters::dropped`](crate::engine::Counters)),
//! per-interface traffic ([`IfStats`]) and the packet log ([`PacketLog`]).
//! No allocation on the packet path except the log line itself.

use std::{collections::VecDeque, time::Instant};

use super::wire::{Ip4, ICMP, TCP, UDP};

/// Why the router dropped a packet. The text ([`DropReason::as_str`]) is the
/// key in the `dropped` counters (JSON artifacts, `check` steps such as
/// `dropped.firewall`) and in the packet log, so it never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The frame does not parse.
    Malformed,
    /// IPv6 is not routed.
    Ipv6,
    /// Neither IPv4 nor ARP.
    NotIpv4,
    /// Fragments are not reassembled.
    Fragment,
    /// A known flow's packet arrived on the other interface.
    WrongInterface,
    /// The firewall dropped it.
    Firewall,
    /// The firewall rejected it (and answered).
    FirewallRejected,
    /// The broken `block-extended` ALG swallowed an EPSV/EPRT segment.
    AlgBlocked,
    /// TTL reached zero.
    TtlExceeded,
    /// Too big for the egress MTU with DF set (ICMP "fragmentation needed" sent).
    OverMtuDf,
    /// Too big for the egress MTU without DF (not fragmented here).
    OverMtu,
    /// No transport header to make a flow from.
    NoTransport,
    /// A TCP segment without a flow that is not a SYN.
    Invalid,
    /// Unsolicited inbound to a mapping the filtering behaviour refuses.
    Filtered,
    /// Unsolicited inbound to no mapping and no forward.
    NoMappingOrForward,
    /// An inside host used a forward via the public address, hairpinning off.
    HairpinDisabled,
    /// Addressed to the gateway from inside, nothing listens there.
    NoServiceOnGateway,
    /// No interface's network holds the destination.
    NoRoute,
    /// The egress interface is the ingress one.
    WouldLeaveWhereItCameIn,
    /// A port forward's target is in no network of the gateway.
    ForwardTargetUnroutable,
    /// The mapping table is full.
    MappingTableFull,
    /// An ICMP error whose quote does not parse.
    IcmpWithoutQuote,
    /// An ICMP error about no flow the gateway knows.
    IcmpForNoFlow,
    /// The next hop never answered ARP.
    NeighbourUnreachable,
    /// Impairment: lost on purpose (driver).
    ImpairmentLoss,
    /// Impairment: the delay queue was full (driver).
    ImpairmentQueueFull,
    /// A received frame larger than the buffer: veth offloads still on
    /// (driver).
    Oversized,
}

impl DropReason {
    /// The counter key and log text.
    pub fn as_str(self) -> &'static str {
        use DropReason::*;
        match self {
            Malformed => "malformed",
            Ipv6 => "ipv6 not routed",
            NotIpv4 => "not ipv4",
            Fragment => "fragment (not reassembled)",
            WrongInterface => "flow seen on the wrong interface",
            Firewall => "firewall",
            FirewallRejected => "firewall (rejected)",
            AlgBlocked => "alg blocked EPSV/EPRT",
            TtlExceeded => "ttl exceeded",
            OverMtuDf => "over mtu (fragmentation needed)",
            OverMtu => "over mtu (not fragmented)",
            NoTransport => "no transport header",
            Invalid => "invalid (no flow, not a SYN)",
            Filtered => "filtered (mapping filtering behaviour)",
            NoMappingOrForward => "no mapping or forward",
            HairpinDisabled => "hairpin disabled",
            NoServiceOnGateway => "no service on the gateway",
            NoRoute => "no route",
            WouldLeaveWhereItCameIn => "would leave where it came in",
            ForwardTargetUnroutable => "forward target unroutable",
            MappingTableFull => "mapping table full",
            IcmpWithoutQuote => "icmp error without a quote",
            IcmpForNoFlow => "icmp error for no known flow",
            NeighbourUnreachable => "neighbour unreachable (no ARP reply)",
            ImpairmentLoss => "impairment loss",
            ImpairmentQueueFull => "impairment queue full",
            Oversized => "oversized frame (offloads on?)",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per interface: received and transmitted packets and bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct IfStats {
    pub(super) rx_packets: u64,
    pub(super) rx_bytes: u64,
    pub(super) tx_packets: u64,
    pub(super) tx_bytes: u64,
}

impl IfStats {
    pub(super) fn rx(&mut self, len: usize) {
        self.rx_packets += 1;
        self.rx_bytes += len as u64;
    }

    pub(super) fn tx(&mut self, len: usize) {
        self.tx_packets += 1;
        self.tx_bytes += len as u64;
    }
}

/// How many packet-log lines are kept.
pub const LOG_CAP: usize = 20_000;

/// The packet log: one line per decision worth explaining (new flows,
/// drops, translated ICMP errors), seconds since the router started, the
/// newest [`LOG_CAP`] lines.
#[derive(Debug)]
pub(super) struct PacketLog {
    start: Instant,
    lines: VecDeque<String>,
}

impl PacketLog {
    pub(super) fn new(start: Instant) -> PacketLog {
        PacketLog {
            start,
            lines: VecDeque::new(),
        }
    }

    /// Adds `what` happened on interface `iface` to the packet `ip`.
    pub(super) fn note(&mut self, now: Instant, iface: &str, what: &str, ip: Option<&Ip4>) {
        if self.lines.len() >= LOG_CAP {
            self.lines.pop_front();
        }
        let t = now.saturating_duration_since(self.start).as_secs_f64();
        let line = match ip {
            Some(ip) => format!(
                "{t:10.6} {iface} {} {}->{} {what}",
                proto_name(ip.proto),
                ip.src_sa(),
                ip.dst_sa()
            ),
            None => format!("{t:10.6} {iface} {what}"),
        };
        self.lines.push_back(line);
    }

    /// The lines, oldest first.
    pub(super) fn lines(&self) -> impl Iterator<Item = &String> {
        self.lines.iter()
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
