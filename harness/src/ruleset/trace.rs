//! What `nft -a monitor trace` printed, as packets and their fate.
//!
//! The gateway marks new TCP connections (SYN without ACK) with
//! `meta nftrace set 1` in a table of its own ([`TRACE_TABLE`]); the
//! kernel then reports every base chain the packet enters (`packet:`),
//! every rule that decided something (`rule … (verdict …)`, with
//! `# handle N` under `-a`) and every policy applied. Lines of one packet
//! share a trace id. From them: where the packet was dropped or rejected
//! (the rule, or a chain's policy), whether it was destination-NATed (a
//! later `packet:` line shows another destination than the first), and
//! whether it went to the router itself (an `input` hook) or through it.

use std::{collections::BTreeMap, net::Ipv4Addr};

use super::nft::ChainKey;

/// The table the gateway adds to mark packets for tracing (skipped in
/// verdicts).
pub const TRACE_TABLE: &str = "ftpnat_trace";

/// One line of a packet's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The chain it happened in.
    pub chain: ChainKey,
    /// What happened.
    pub kind: EventKind,
}

/// What a trace line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The packet enters a base chain (header fields at this point).
    Packet(Header),
    /// A rule matched.
    Rule {
        /// The rule as nft prints it.
        text: String,
        /// Its handle (`-a`).
        handle: Option<u64>,
        /// `accept`, `drop`, `continue`, `jump x`, …
        verdict: String,
    },
    /// The chain's policy applied (`accept`, `drop`).
    Policy(String),
    /// Falling off the end of a regular chain.
    Return,
}

/// Header fields of a traced packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Input interface.
    pub iif: Option<String>,
    /// Output interface (forward, postrouting).
    pub oif: Option<String>,
    /// IPv4 source.
    pub saddr: Option<Ipv4Addr>,
    /// IPv4 destination.
    pub daddr: Option<Ipv4Addr>,
    /// TCP source port.
    pub sport: Option<u16>,
    /// TCP destination port.
    pub dport: Option<u16>,
}

/// One packet's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Trace id.
    pub id: String,
    /// Lines in order (the trace table's own skipped).
    pub events: Vec<Event>,
}

/// Parses trace output into packets (in order of their first line).
pub fn parse(out: &str) -> Vec<Packet> {
    let head = regex::Regex::new(
        r"^trace id (\S+) (\S+) (\S+) (\S+) (packet|rule|policy|return)\b:?\s*(.*?)\s*$",
    )
    .expect("literal");
    let rule = regex::Regex::new(r"^(.*?)(?: # handle (\d+))? \(verdict (.+)\)$").expect("literal");
    let mut order: Vec<String> = Vec::new();
    let mut by_id: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for line in out.lines() {
        let Some(c) = head.captures(line) else {
            continue;
        };
        if &c[3] == TRACE_TABLE {
            continue;
        }
        let chain = ChainKey {
            family: c[2].to_string(),
            table: c[3].to_string(),
            chain: c[4].to_string(),
        };
        let rest = &c[6];
        let kind = match &c[5] {
            "packet" => EventKind::Packet(header(rest)),
            "rule" => match rule.captures(rest) {
                Some(r) => EventKind::Rule {
                    text: r[1].to_string(),
                    handle: r.get(2).and_then(|h| h.as_str().parse().ok()),
                    verdict: r[3].to_string(),
                },
                None => continue,
            },
            "policy" => EventKind::Policy(rest.to_string()),
            _ => EventKind::Return,
        };
        let id = c[1].to_string();
        if !by_id.contains_key(&id) {
            order.push(id.clone());
        }
        by_id.entry(id).or_default().push(Event { chain, kind });
    }
    order
        .into_iter()
        .map(|id| {
            let events = by_id.remove(&id).unwrap_or_default();
            Packet { id, events }
        })
        .collect()
}

fn header(s: &str) -> Header {
    let w: Vec<&str> = s.split_whitespace().collect();
    let mut h = Header::default();
    for i in 0..w.len() {
        let next = w.get(i + 1).copied().unwrap_or("");
        let next2 = w.get(i + 2).copied().unwrap_or("");
        match (w[i], next) {
            ("iif", n) if h.iif.is_none() => h.iif = Some(n.trim_matches('"').to_string()),
            ("oif", n) if h.oif.is_none() => h.oif = Some(n.trim_matches('"').to_string()),
            ("ip", "saddr") => h.saddr = next2.parse().ok(),
            ("ip", "daddr") => h.daddr = next2.parse().ok(),
            ("tcp", "sport") => h.sport = next2.parse().ok(),
            ("tcp", "dport") => h.dport = next2.parse().ok(),
            _ => {}
        }
    }
    h
}

/// How a packet ended in the gateway's rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// A rule dropped or rejected it (index into [`Packet::events`]).
    Rule(usize),
    /// A chain's policy dropped it (index into [`Packet::events`]).
    Policy(usize),
    /// Nothing dropped it.
    Passed,
}

impl Packet {
    /// Header fields as the packet arrived (its first `packet:` line).
    pub fn arrived(&self) -> Header {
        self.events
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::Packet(h) => Some(h.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Whether a later base chain saw another destination (DNAT, redirect).
    pub fn translated(&self) -> bool {
        let first = self.arrived();
        self.events.iter().any(|e| match &e.kind {
            EventKind::Packet(h) => {
                (h.daddr.is_some() && h.daddr != first.daddr)
                    || (h.dport.is_some() && h.dport != first.dport)
            }
            _ => false,
        })
    }

    /// Hooks of the base chains it entered (per `hooks`, the base chains'
    /// hooks by chain).
    pub fn hooks<'a>(&self, hooks: &'a BTreeMap<ChainKey, String>) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        for e in &self.events {
            if let EventKind::Packet(_) = e.kind {
                if let Some(h) = hooks.get(&e.chain) {
                    if !out.contains(&h.as_str()) {
                        out.push(h);
                    }
                }
            }
        }
        out
    }

    /// Where it ended.
    pub fn fate(&self) -> Fate {
        for (i, e) in self.events.iter().enumerate().rev() {
            match &e.kind {
                EventKind::Rule { verdict, .. } if verdict == "drop" => return Fate::Rule(i),
                EventKind::Policy(p) if p == "drop" => return Fate::Policy(i),
                _ => {}
            }
        }
        Fate::Passed
    }

    /// The last accept verdict (rule or policy) in a chain `counts` keeps
    /// (e.g. filter chains, not nat ones): what let the packet through.
    pub fn accepted_by(&self, counts: impl Fn(&ChainKey) -> bool) -> Option<usize> {
        self.events.iter().rposition(|e| {
            counts(&e.chain)
                && match &e.kind {
                    EventKind::Rule { verdict, .. } => verdict == "accept",
                    EventKind::Policy(p) => p == "accept",
                    _ => false,
                }
        })
    }

    /// The jump that led to event `i` (the last `jump`/`goto` rule before
    /// it, since the base chain it is in was entered).
    pub fn jumped_by(&self, i: usize) -> Option<usize> {
        let start = self.events[..i]
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::Packet(_)))
            .unwrap_or(0);
        (start..i).rev().find(|&j| match &self.events[j].kind {
            EventKind::Rule { verdict, .. } => {
                (verdict.starts_with("jump ") || verdict.starts_with("goto "))
                    && self.events[j].chain != self.events[i].chain
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = r#"trace id 58a0bbb7 inet ftpnat_trace pre packet: iif "wan0" @ll,0,112 0x800 ip saddr 203.0.113.10 ip daddr 203.0.113.1 ip protocol tcp tcp sport 40000 tcp dport 60006 tcp flags == syn
trace id 58a0bbb7 inet ftpnat_trace pre rule tcp flags syn / syn,ack meta nftrace set 1 (verdict continue)
trace id 58a0bbb7 inet fw4 dstnat packet: iif "wan0" @ll,0,112 0x800 ip saddr 203.0.113.10 ip daddr 203.0.113.1 tcp sport 40000 tcp dport 60006 tcp flags == syn
trace id 58a0bbb7 inet fw4 dstnat rule iifname "wan0" jump dstnat_wan comment "x" # handle 40 (verdict jump dstnat_wan)
trace id 58a0bbb7 inet fw4 dstnat_wan return
trace id 58a0bbb7 inet fw4 dstnat policy accept
trace id 58a0bbb7 inet fw4 input packet: iif "wan0" @ll,0,112 0x800 ip saddr 203.0.113.10 ip daddr 203.0.113.1 tcp sport 40000 tcp dport 60006 tcp flags == syn
trace id 58a0bbb7 inet fw4 handle_reject rule meta l4proto tcp reject with tcp reset comment "!fw4: Reject TCP traffic" # handle 12 (verdict drop)
trace id 11111111 ip nat PREROUTING packet: iif "wan0" ip saddr 203.0.113.10 ip daddr 203.0.113.1 tcp sport 40001 tcp dport 21 tcp flags == syn
trace id 11111111 ip nat PREROUTING rule iifname "wan0" tcp dport 21 counter packets 0 bytes 0 dnat to 192.168.1.2 # handle 3 (verdict accept)
trace id 11111111 ip filter FORWARD packet: iif "wan0" oif "lan0" ip saddr 203.0.113.10 ip daddr 192.168.1.2 tcp sport 40001 tcp dport 21 tcp flags == syn
trace id 11111111 ip filter FORWARD policy drop
"#;

    #[test]
    fn packets_their_rules_and_fates() {
        let p = parse(OUT);
        assert_eq!(p.len(), 2);
        let a = &p[0];
        assert_eq!(a.arrived().dport, Some(60006));
        assert_eq!(a.arrived().daddr, Some("203.0.113.1".parse().unwrap()));
        assert!(!a.translated());
        let Fate::Rule(i) = a.fate() else {
            panic!("{:?}", a.fate())
        };
        let EventKind::Rule { handle, text, .. } = &a.events[i].kind else {
            panic!()
        };
        assert_eq!(*handle, Some(12));
        assert!(text.starts_with("meta l4proto tcp reject"));
        assert_eq!(a.events[i].chain.chain, "handle_reject");
        let mut hooks = BTreeMap::new();
        hooks.insert(a.events[0].chain.clone(), "prerouting".to_string());
        let input = a
            .events
            .iter()
            .find(|e| e.chain.chain == "input")
            .unwrap()
            .chain
            .clone();
        hooks.insert(input, "input".to_string());
        assert_eq!(a.hooks(&hooks), ["prerouting", "input"]);
        let b = &p[1];
        assert!(b.translated());
        assert!(matches!(b.fate(), Fate::Policy(_)));
        assert!(parse("garbage\ntrace id x\n").is_empty());
    }
}
