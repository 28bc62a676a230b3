//! Gateway engines: how packets are translated and filtered between a
//! gateway's interfaces. The model here ([`GatewayConfig`]) is what a
//! scenario declares; each engine realises it:
//! * [`sim`] — a userspace router on AF_PACKET sockets (default); it can
//!   model behaviours the kernel cannot (mapping/filtering types, broken ALGs).
//! * [`kernel`] — Linux forwarding with a generated (or the user's own)
//!   nftables rule set and the conntrack FTP helper.
//! * [`trace`] — `nft monitor trace` of new connections through a kernel gateway.

pub mod counters;
pub mod kernel;
pub mod record;
pub mod sim;
pub mod trace;

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub use counters::Counters;

/// Which side of the NAT an interface is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The private network.
    Inside,
    /// The public network.
    Outside,
}

/// One gateway interface.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IfaceConfig {
    /// Interface name in the gateway's namespace.
    pub name: String,
    /// Address and prefix.
    pub addr: Ipv4Net,
    /// Inside or outside.
    pub side: Side,
    /// MAC address (the topology sets it).
    pub mac: [u8; 6],
    /// MTU.
    pub mtu: u16,
}

/// RFC 4787 mapping behaviour.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Same external port for every destination.
    #[default]
    EndpointIndependent,
    /// Per destination address.
    AddressDependent,
    /// Per destination address and port.
    AddressAndPortDependent,
}

/// External port choice.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum PortChoice {
    /// Keep the internal port when free.
    #[default]
    Preserve,
    /// Next free port from 1024 upward.
    Sequential,
    /// A random free port.
    Random,
}

/// What happens when the mapping table is full.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum FullPolicy {
    /// Drop the packet that needed a new mapping.
    #[default]
    Drop,
    /// Answer a TCP SYN with a RST (UDP: drop).
    Rst,
}

/// Source NAT on the outside interface.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatConfig {
    /// Mapping behaviour.
    #[serde(default)]
    pub mapping: Behaviour,
    /// Filtering behaviour for unsolicited inbound packets to a mapping.
    #[serde(default = "default_filtering")]
    pub filtering: Behaviour,
    /// External port choice.
    #[serde(default)]
    pub ports: PortChoice,
    /// Hairpinning: inside hosts reaching forwards via the public address.
    #[serde(default)]
    pub hairpin: bool,
    /// Mapping-table size limit.
    #[serde(default = "default_max_mappings")]
    pub max_mappings: usize,
    /// Behaviour when the table is full.
    #[serde(default)]
    pub full: FullPolicy,
    /// Timeouts, seconds.
    #[serde(default)]
    pub timeouts: Timeouts,
}

fn default_filtering() -> Behaviour {
    Behaviour::AddressAndPortDependent
}

fn default_max_mappings() -> usize {
    65536
}

impl Default for NatConfig {
    fn default() -> Self {
        NatConfig {
            mapping: Behaviour::default(),
            filtering: default_filtering(),
            ports: PortChoice::default(),
            hairpin: false,
            max_mappings: default_max_mappings(),
            full: FullPolicy::default(),
            timeouts: Timeouts::default(),
        }
    }
}

/// Mapping timeouts (RFC 5382: established ≥ 2 h 4 min, transitory ≥ 4 min;
/// RFC 4787: UDP ≥ 2 min).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Established TCP, seconds.
    #[serde(default = "t_est")]
    pub tcp_established: u64,
    /// TCP opening/closing, seconds.
    #[serde(default = "t_trans")]
    pub tcp_transitory: u64,
    /// UDP and ICMP, seconds.
    #[serde(default = "t_udp")]
    pub udp: u64,
}

fn t_est() -> u64 {
    7440
}
fn t_trans() -> u64 {
    240
}
fn t_udp() -> u64 {
    120
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_established: t_est(),
            tcp_transitory: t_trans(),
            udp: t_udp(),
        }
    }
}

/// A port forward (destination NAT) on the outside address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// Protocol number (6 TCP, 17 UDP).
    pub proto: u8,
    /// External ports (inclusive).
    pub ports: (u16, u16),
    /// Inside host.
    pub to: Ipv4Addr,
    /// Inside port of the first external port (ranges map 1:1).
    pub to_port: u16,
}

impl Forward {
    /// The inside port for external `port`, if forwarded.
    pub fn map(&self, proto: u8, port: u16) -> Option<u16> {
        (proto == self.proto && (self.ports.0..=self.ports.1).contains(&port))
            .then(|| self.to_port + (port - self.ports.0))
    }
}

/// FTP application-level gateway modes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum AlgMode {
    /// No ALG.
    #[default]
    Off,
    /// Rewrites PORT, EPRT, 227, 229 with TCP sequence adjustment, opens
    /// the expected data flow.
    Correct,
    /// Broken: rewrites only when the new text has the same length (no
    /// sequence adjustment), else passes the original.
    SameLengthOnly,
    /// Broken: rewrites PORT and 227 but leaves EPRT and 229 alone.
    PasvOnly,
    /// Broken: drops segments carrying EPSV/EPRT commands (the client times out).
    BlockExtended,
}

/// Firewall rule action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let it through (and keep state).
    Accept,
    /// Silently drop.
    Drop,
    /// Drop and answer (TCP RST, or ICMP port unreachable).
    Reject,
}

/// Connection state seen by the firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CtState {
    /// First packet of a flow.
    New,
    /// A packet of a known flow.
    Established,
    /// First packet of a flow an ALG expected.
    Related,
    /// Not part of any valid flow (e.g. a stray ACK).
    Invalid,
}

/// Direction of a flow through the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Arriving on an outside interface.
    In,
    /// Arriving on an inside interface.
    Out,
}

/// One firewall rule. Empty fields match anything. Addresses and ports are
/// matched after destination NAT (like the kernel's forward chain).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rule {
    /// Action.
    pub action: Option<Action>,
    /// Direction.
    pub direction: Option<Direction>,
    /// Protocol number.
    pub proto: Option<u8>,
    /// Source networks.
    pub src: Option<Ipv4Net>,
    /// Destination networks.
    pub dst: Option<Ipv4Net>,
    /// Source ports.
    pub sport: Option<(u16, u16)>,
    /// Destination ports.
    pub dport: Option<(u16, u16)>,
    /// TCP SYN without ACK only.
    pub syn_only: bool,
    /// States.
    pub state: Vec<CtState>,
    /// Free text shown in counters.
    pub comment: Option<String>,
}

/// A stateful firewall.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Firewall {
    /// Ordered rules (first match wins).
    pub rules: Vec<Rule>,
    /// Policy for inbound flows no rule matched.
    pub policy_in: Action,
    /// Policy for outbound flows no rule matched.
    pub policy_out: Action,
    /// "keep state": packets of accepted flows skip the rules.
    pub stateful: bool,
}

impl Default for Firewall {
    fn default() -> Self {
        Firewall {
            rules: vec![],
            policy_in: Action::Accept,
            policy_out: Action::Accept,
            stateful: true,
        }
    }
}

/// Per-interface link impairment (sim engine).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Impairment {
    /// Added one-way delay, milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// Uniform jitter added to the delay, ± milliseconds.
    #[serde(default)]
    pub jitter_ms: u64,
    /// Loss probability 0..1.
    #[serde(default)]
    pub loss: f64,
    /// Rate limit, kbit/s (0 = unlimited).
    #[serde(default)]
    pub rate_kbit: u64,
}

/// Everything a gateway does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayConfig {
    /// Name.
    pub name: String,
    /// Interfaces.
    pub ifaces: Vec<IfaceConfig>,
    /// Source NAT (masquerade) on outside interfaces.
    pub nat: Option<NatConfig>,
    /// Port forwards on the outside address.
    pub forwards: Vec<Forward>,
    /// Firewall.
    pub firewall: Firewall,
    /// FTP ALG mode (applies to control connections on port 21).
    pub alg: AlgMode,
    /// Control ports the ALG watches.
    pub alg_ports: Vec<u16>,
    /// Impairment per interface name.
    pub impairment: Vec<(String, Impairment)>,
    /// Answer unsolicited inbound TCP with RST / UDP with ICMP (else drop).
    pub reject_unsolicited: bool,
    /// RNG seed (port choice, impairment).
    pub seed: u64,
}

impl GatewayConfig {
    /// A gateway with `lan0` (inside, 192.168.1.1/24, MAC 02:fe:00:00:00:01)
    /// and `wan0` (outside, 203.0.113.1/24, MAC 02:fe:00:00:00:02), no NAT,
    /// no forwards, an accept-all firewall, ALG off: the fixture tests and
    /// benches start from.
    pub fn example() -> GatewayConfig {
        GatewayConfig {
            name: "gw".into(),
            ifaces: vec![
                IfaceConfig {
                    name: "lan0".into(),
                    addr: "192.168.1.1/24".parse().expect("literal"),
                    side: Side::Inside,
                    mac: [2, 0xfe, 0, 0, 0, 1],
                    mtu: 1500,
                },
                IfaceConfig {
                    name: "wan0".into(),
                    addr: "203.0.113.1/24".parse().expect("literal"),
                    side: Side::Outside,
                    mac: [2, 0xfe, 0, 0, 0, 2],
                    mtu: 1500,
                },
            ],
            nat: None,
            forwards: vec![],
            firewall: Firewall::default(),
            alg: AlgMode::Off,
            alg_ports: vec![21],
            impairment: vec![],
            reject_unsolicited: false,
            seed: 1,
        }
    }
}

impl Rule {
    /// The seed's ipf rule, "pass in quick proto tcp from any to any port
    /// 49151 >< 65535 flags S keep state": accept inbound TCP SYNs to
    /// 49152-65534 (the "keep state" part is [`Firewall::stateful`]).
    pub fn seed_passive_range() -> Rule {
        Rule {
            action: Some(Action::Accept),
            direction: Some(Direction::In),
            proto: Some(6),
            dport: Some((49152, 65534)),
            syn_only: true,
            ..Default::default()
        }
    }
}
