//! What a scenario file says, key for key. Unknown keys are errors; names
//! that refer to other parts of the file keep their position (`Spanned`) so
//! a dangling reference is reported at its line and column. Validation into
//! the typed model is in [`super::resolve`]. The JSON Schema for editors is
//! generated from these types (`ftpnat schema`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::engine::{AlgMode, CtState, Impairment, NatConfig};

/// A scenario file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// Unique name (used for filters, artifacts, reports): letters, digits,
    /// `-`, `_`, `.`.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// One sentence: what this shows.
    #[serde(default)]
    pub description: String,
    /// Tags for `--tag` and coverage checks.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whole-scenario bound in seconds (default 60).
    pub timeout_s: Option<u64>,
    /// NAT gateways / firewalls.
    #[serde(default)]
    pub gateway: Vec<RawGateway>,
    /// Hosts (clients and servers).
    #[serde(default)]
    pub host: Vec<RawHost>,
    /// What happens, in order.
    #[serde(default)]
    pub step: Vec<RawStep>,
}

/// Gateway engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Userspace NAT/firewall (default).
    Sim,
    /// Linux nftables inside the gateway namespace.
    Kernel,
    /// The gateway's own container image (`image = …`) does NAT and
    /// filtering; ftpnat only wires it and observes (docker substrate).
    Image,
}

/// A gateway with an inside (`lan`) and an outside (`wan`) interface.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    /// Name: letters, digits, `-`, `_` (it names a namespace and files).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Engine (default `sim`).
    pub engine: Option<EngineKind>,
    /// Run this gateway as a container of a local Docker image (the docker
    /// substrate); with `engine = "image"` the image's own software routes.
    #[schemars(with = "Option<String>")]
    pub image: Option<Spanned<String>>,
    /// `engine = "image"`: a regex the container prints (docker logs) once
    /// its interfaces are configured and its rules loaded (default "ready").
    pub image_ready: Option<String>,
    /// Inside address/prefix, e.g. "192.168.1.1/24" (interface `lan0`).
    #[schemars(with = "String")]
    pub lan: Spanned<String>,
    /// Outside address/prefix, e.g. "203.0.113.1/24" (interface `wan0`).
    #[schemars(with = "String")]
    pub wan: Spanned<String>,
    /// Name of the inside interface (default `lan0`), e.g. to match the
    /// names a user's own rule set uses.
    pub lan_name: Option<String>,
    /// Name of the outside interface (default `wan0`).
    pub wan_name: Option<String>,
    /// Source NAT on the outside interface (default true).
    pub masquerade: Option<bool>,
    /// NAT behaviour (mapping, filtering, ports, hairpin, table size, timeouts).
    pub nat: Option<NatConfig>,
    /// Port forwards on the outside address.
    #[serde(default)]
    pub forward: Vec<RawForward>,
    /// FTP ALG: off, correct, same-length-only, pasv-only, block-extended.
    pub alg: Option<AlgMode>,
    /// Control ports the ALG watches (default [21]).
    pub alg_ports: Option<Vec<u16>>,
    /// Stateful firewall.
    pub firewall: Option<RawFirewall>,
    /// Impairment per side: `impair.wan = { delay_ms = 20 }`.
    #[serde(default)]
    pub impair: BTreeMap<String, Impairment>,
    /// What the gateway does with unsolicited inbound TCP (a SYN to its
    /// outside address that no forward or flow matches): "drop" (default:
    /// silence, like a router with an input drop policy) or "reject" (RST,
    /// like a bare Linux masquerade box; ICMP for UDP). Both engines.
    pub unsolicited: Option<Unsolicited>,
    /// Older spelling of `unsolicited = "reject"`.
    pub reject_unsolicited: Option<bool>,
    /// MTU of both interfaces (default 1500).
    pub mtu: Option<u16>,
    /// Kernel engine: load this nftables file (relative to the scenario)
    /// instead of the rule set generated from the keys above.
    #[schemars(with = "Option<String>")]
    pub ruleset: Option<Spanned<String>>,
    /// Syntax of `ruleset`: "nft" (default, loaded with `nft -f`) or
    /// "iptables" (iptables-save output, loaded with `iptables-nft-restore`).
    pub ruleset_format: Option<crate::engine::kernel::RulesetFormat>,
    /// Kernel or image engine: TCP ports listening in the gateway's own
    /// namespace (the router's ssh, web UI, DNS …), for exposure scans.
    #[serde(default)]
    pub services: Vec<u16>,
    /// Kernel engine, instead of `ruleset`: several files loaded in order,
    /// each with the loader of its detected syntax (a host where nft and
    /// iptables-nft both wrote rules: `["router.nft", "router.iptables"]`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub rulesets: Vec<Spanned<String>>,
    /// Kernel engine: more interfaces in the gateway, `"NAME"` or
    /// `"NAME=ADDR/PREFIX"` (a guest LAN, a second uplink, names a rule set
    /// uses). They exist and carry addresses, but no traffic.
    #[serde(default)]
    pub extra_interfaces: Vec<String>,
    /// Kernel engine, when `wan` is a /32 (a PPPoE session): the network of
    /// the hosts on the WAN side, the point-to-point peer of the WAN address.
    #[schemars(with = "Option<String>")]
    pub wan_peers: Option<Spanned<String>>,
    /// Kernel engine: trace new TCP connections (`nft monitor trace`), so a
    /// report can name the rule that dropped, rejected or failed to DNAT one.
    #[serde(default)]
    pub trace: bool,
}

/// What a gateway does with unsolicited inbound traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Unsolicited {
    /// Silently drop (the default).
    Drop,
    /// TCP RST / ICMP unreachable.
    Reject,
}

/// A port forward.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawForward {
    /// "tcp" (default) or "udp".
    pub proto: Option<String>,
    /// "21" or "60000-60010".
    #[schemars(with = "String")]
    pub ports: Spanned<String>,
    /// Inside host name.
    #[schemars(with = "String")]
    pub to: Spanned<String>,
    /// Inside port of the first external port (default: the same).
    pub to_port: Option<u16>,
}

/// Firewall.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFirewall {
    /// "accept" (default), "drop" or "reject" for inbound flows no rule matched.
    pub policy_in: Option<crate::engine::Action>,
    /// The same for outbound flows.
    pub policy_out: Option<crate::engine::Action>,
    /// Keep state (default true): packets of accepted flows skip the rules.
    pub stateful: Option<bool>,
    /// Ordered rules, first match wins.
    #[serde(default)]
    pub rule: Vec<RawRule>,
}

/// One firewall rule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// accept, drop, reject.
    pub action: crate::engine::Action,
    /// "in" or "out".
    pub direction: Option<crate::engine::Direction>,
    /// "tcp", "udp", "icmp".
    pub proto: Option<String>,
    /// Source CIDR.
    pub src: Option<String>,
    /// Destination CIDR (after port forwarding).
    pub dst: Option<String>,
    /// Source ports "lo-hi".
    pub sport: Option<String>,
    /// Destination ports "lo-hi".
    pub dport: Option<String>,
    /// "syn": TCP SYN without ACK only.
    pub flags: Option<String>,
    /// States: new, established, related, invalid.
    #[serde(default)]
    pub state: Vec<CtState>,
    /// Shown in counters.
    pub comment: Option<String>,
}

/// A host.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// Name: letters, digits, `-`, `_` (it names a namespace and files).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Run this host as a container of a local Docker image (the docker
    /// substrate; its entrypoint runs, actors enter its namespace).
    #[schemars(with = "Option<String>")]
    pub image: Option<Spanned<String>>,
    /// Address/prefix, e.g. "192.168.1.2/24" or "2001:db8::2/64".
    #[schemars(with = "String")]
    pub addr: Spanned<String>,
    /// More addresses on the same interface.
    #[serde(default)]
    pub addrs: Vec<String>,
    /// Default route via this gateway (default: the gateway whose inside
    /// network holds the host, if any).
    #[schemars(with = "Option<String>")]
    pub gateway: Option<Spanned<String>>,
    /// What names resolve to from this host (split-horizon DNS view).
    #[serde(default)]
    pub hosts: BTreeMap<String, std::net::IpAddr>,
    /// Files in the served tree: text, or `{ size = N, seed = S }` for
    /// generated bytes. Names are relative paths inside the served tree
    /// (no `..`, not absolute).
    #[serde(default)]
    pub files: BTreeMap<String, FileSpec>,
    /// An FTP server on this host.
    pub server: Option<RawServer>,
    /// Other TCP services listening on this host (e.g. 22 for ssh, 3306 for
    /// a database): what an exposure scan must not find from outside.
    #[serde(default)]
    pub services: Vec<u16>,
}

/// File content.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FileSpec {
    /// Literal text.
    Text(String),
    /// Pseudo-random bytes.
    Generated {
        /// Size in bytes.
        size: u64,
        /// Seed (default 0).
        #[serde(default)]
        seed: u64,
    },
}

/// A server actor.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// "reference" (default in the suite), "vsftpd", "proftpd" or
    /// "pure-ftpd"; `ftpnat run --server-kind`/`--server` override it.
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    /// Reference-server configuration keys (as in its TOML file); `root`
    /// and `listen` default to the host's files and 0.0.0.0:21.
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub config: Option<Spanned<toml::Table>>,
    /// FTPS: generate a throw-away test CA and a server certificate for
    /// every address in the scenario (rcgen, at run time) and configure the
    /// server with them (`tls_cert`, `tls_key`); clients trust that CA.
    pub tls: Option<bool>,
}

/// One step. Exactly one action key per step.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// The client session acting (default: the host named by `host`, or
    /// the only client so far).
    #[schemars(with = "Option<String>")]
    pub client: Option<Spanned<String>>,
    /// For `connect`: the host the client runs on (default: same as client).
    #[schemars(with = "Option<String>")]
    pub host: Option<Spanned<String>>,
    /// Open a control connection to "addr:port".
    #[schemars(with = "Option<String>")]
    pub connect: Option<Spanned<String>>,
    /// Log in as this user (anonymous: any password).
    pub login: Option<String>,
    /// Password for `login` (default "ftpnat@example.test").
    pub password: Option<String>,
    /// Send a raw command line and read the reply.
    pub send: Option<String>,
    /// Download a file.
    pub retr: Option<String>,
    /// Upload `size` generated bytes to this name.
    pub stor: Option<String>,
    /// Bytes to upload (default 65536).
    pub size: Option<u64>,
    /// LIST (path or "").
    pub list: Option<String>,
    /// NLST (path or "").
    pub nlst: Option<String>,
    /// Data connection for retr/stor/list/nlst: pasv (default), epsv, port,
    /// eprt, or pending (use the last 227/229 already received).
    pub mode: Option<String>,
    /// Close the control connection with QUIT.
    pub quit: Option<bool>,
    /// `AUTH TLS` and the TLS handshake on the control connection
    /// (explicit FTPS; the server needs `tls = true`).
    pub auth_tls: Option<bool>,
    /// `CCC`: back to clear text on the control connection.
    pub ccc: Option<bool>,
    /// FTPS data connections (after `PROT P`) resume the control
    /// connection's TLS session (default true); false makes a full
    /// handshake, as a thief's connection would.
    pub tls_resume: Option<bool>,
    /// curl/lftp: explicit FTPS (`--ssl-reqd`, `ftp:ssl-force`), data
    /// protected, trusting the scenario's test CA.
    pub ftps: Option<bool>,
    /// Download with a real client from `host`: "addr:port/path".
    /// `mode` pasv (default), epsv or port.
    pub curl: Option<String>,
    /// Same with lftp, with lftp's own defaults (it fixes a private PASV
    /// address and falls back to active mode) unless `lftp_set` changes them.
    pub lftp: Option<String>,
    /// lftp settings this step changes, e.g. `{ "ftp:fix-pasv-address" =
    /// "false" }` (each becomes `set NAME VALUE`).
    #[serde(default)]
    pub lftp_set: BTreeMap<String, String>,
    /// Same with Python's ftplib (pasv or port).
    pub ftplib: Option<String>,
    /// curl only: honour the 227 address (default true). curl ≥ 7.74
    /// otherwise reuses the control address, hiding a wrong 227.
    pub honour_pasv_address: Option<bool>,
    /// Open a data connection to the last 227/229 address and keep it open
    /// (no transfer command) until the scenario ends.
    pub hold: Option<bool>,
    /// Wait for a server log line matching this regex (in `check`'s host).
    pub wait_log: Option<String>,
    /// Assert on a server's log or a gateway's counters (host or gateway name).
    #[schemars(with = "Option<String>")]
    pub check: Option<Spanned<String>>,
    /// TCP connect scan (like `nmap -sT`).
    pub scan: Option<RawScan>,
    /// Steps run concurrently.
    #[serde(default)]
    pub parallel: Vec<RawStep>,
    /// Bound for each reply / data connection in this step (ms, default 5000).
    pub timeout_ms: Option<u64>,
    /// A point where servers legitimately differ (e.g. "foreign-port"): a
    /// server profile may replace this step's expected code and text.
    pub point: Option<String>,
    /// What must hold afterwards.
    pub expect: Option<RawExpect>,
}

/// A connect scan.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScan {
    /// Host to scan from.
    #[schemars(with = "String")]
    pub from: Spanned<String>,
    /// Address to scan.
    pub target: std::net::IpAddr,
    /// Ports, e.g. "1-1024,60000-60010".
    pub ports: String,
}

/// Expectations.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    /// Reply code (the final reply for transfers).
    pub code: Option<u16>,
    /// No reply arrives within the step's bound (e.g. an ALG dropped the command).
    pub no_reply: Option<bool>,
    /// Reply text matches this regex.
    pub text: Option<String>,
    /// Address in the 227 equals this.
    pub pasv_addr: Option<std::net::Ipv4Addr>,
    /// Address in the 227 is public (true) / non-public (false).
    pub pasv_public: Option<bool>,
    /// Address in the 227 lies in this CIDR.
    pub pasv_in: Option<String>,
    /// Port of the 227/229 (or the data connection) lies in [lo, hi].
    pub port_in: Option<[u16; 2]>,
    /// Port lies outside [lo, hi].
    pub port_not_in: Option<[u16; 2]>,
    /// Data connection outcome: ok, refused, timeout, unreachable, failed (any but ok).
    pub transfer: Option<String>,
    /// The step finished within this many milliseconds.
    pub within_ms: Option<u64>,
    /// The step took at least this many milliseconds (e.g. a rate limit).
    pub at_least_ms: Option<u64>,
    /// SHA-256 (hex) of the data downloaded.
    pub sha256: Option<String>,
    /// Bytes moved.
    pub bytes: Option<u64>,
    /// A server log line matches this regex.
    pub log: Option<String>,
    /// … exactly this many lines (default: at least one).
    pub log_count: Option<usize>,
    /// Gateway counters: `{ alg_rewrites = ">=1", drops = "0" }`.
    #[serde(default)]
    pub counters: BTreeMap<String, String>,
    /// Scan: the open ports are exactly these ("21,60000-60010").
    pub open: Option<String>,
    /// Scan: exactly this many of the scanned ports were open (e.g. the one
    /// pending passive port of a range, whichever the server chose).
    pub open_count: Option<usize>,
    /// Scan: every one of these ports reached a host — a listener there
    /// (`services`) accepted the connection. A RST (from the gateway, or
    /// a host with nothing listening) or silence does not count.
    pub reachable: Option<String>,
    /// Scan: for each host or gateway named, exactly these scanned ports
    /// were accepted by its own listeners (`services`), e.g.
    /// `accepted = { server = "60000-60010", gw = "" }`.
    #[serde(default)]
    pub accepted: BTreeMap<String, String>,
}
