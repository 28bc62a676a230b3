//! What a gateway counts, whichever engine runs it (JSON in the scenario
//! artifacts, `check` steps' `counters` expectations). The sim engine fills
//! every field; the kernel engine only `forwarded`, `rule_hits`,
//! `policy_hits` and the firewall's drops ([`sim_only`] names the rest).

use std::collections::BTreeMap;

use serde::Serialize;

/// Counters (JSON in the scenario artifacts).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counters {
    /// Per interface: received packets.
    pub rx_packets: BTreeMap<String, u64>,
    /// Per interface: received bytes.
    pub rx_bytes: BTreeMap<String, u64>,
    /// Per interface: transmitted packets.
    pub tx_packets: BTreeMap<String, u64>,
    /// Per interface: transmitted bytes.
    pub tx_bytes: BTreeMap<String, u64>,
    /// Packets forwarded.
    pub forwarded: u64,
    /// Drops by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Flows created.
    pub conns_created: u64,
    /// Flows expired.
    pub conns_expired: u64,
    /// NAT mappings created.
    pub mappings_created: u64,
    /// NAT mappings expired.
    pub mappings_expired: u64,
    /// New mappings refused (table full).
    pub mappings_refused: u64,
    /// ALG: commands/replies rewritten.
    pub alg_rewrites: u64,
    /// ALG: found but not rewritten (broken modes, address mismatch).
    pub alg_skipped: u64,
    /// ALG: segments dropped (block-extended).
    pub alg_blocked: u64,
    /// ALG: interesting lines split across segments.
    pub alg_split: u64,
    /// ALG: expectations created.
    pub expectations_created: u64,
    /// ALG: expectations that admitted a data connection.
    pub expectations_used: u64,
    /// Flows admitted through an ALG expectation.
    pub related_flows: u64,
    /// ICMP errors generated.
    pub icmp_errors_sent: u64,
    /// ICMP errors translated back through NAT.
    pub icmp_errors_translated: u64,
    /// ARP replies sent.
    pub arp_replies: u64,
    /// ARP requests sent.
    pub arp_requests: u64,
    /// Firewall rule hits, by rule index.
    pub rule_hits: Vec<u64>,
    /// Firewall default-policy decisions on new flows.
    pub policy_hits: u64,
}

impl Counters {
    /// Total drops.
    pub fn drops(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// Counter name prefixes only the sim engine keeps (the kernel engine
/// reports forwarded, rule hits and firewall/invalid drops).
pub const SIM_ONLY: &[&str] = &[
    "alg_",
    "expectations_",
    "related_flows",
    "mappings_",
    "conns_",
    "icmp_",
    "arp_",
    "dropped.no mapping",
    "dropped.no route",
    "dropped.filtered",
    "dropped.hairpin",
    "dropped.impairment",
    "tx_",
    "rx_",
];

/// Whether only the sim engine keeps `counter` (a `check` step's name,
/// e.g. `alg_rewrites` or `dropped.no mapping`).
pub fn sim_only(counter: &str) -> bool {
    SIM_ONLY.iter().any(|p| counter.starts_with(p))
}
