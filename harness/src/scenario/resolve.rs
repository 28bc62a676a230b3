//! Raw scenario → validated [`Scenario`]. Every error names the file, line
//! and column and says what was expected.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    ops::Range,
    path::{Path, PathBuf},
    time::Duration,
};

use ipnet::{IpNet, Ipv4Net};
use regex::Regex;

use super::{raw::*, safety};
use crate::{
    client::DataOutcome,
    engine::{Firewall, Forward, GatewayConfig, IfaceConfig, Rule, Side},
};

/// A scenario problem with its position.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct Diagnostic {
    /// File.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
    /// Byte span in the source.
    pub span: Range<usize>,
    /// The source text (for pretty rendering).
    pub source_text: String,
}

impl Diagnostic {
    /// A diagnostic at `span` of `text`.
    pub fn at(
        file: &Path,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, column) = ftpnat_server::config::line_col(text, span.start);
        Diagnostic {
            file: file.to_owned(),
            line,
            column,
            message: message.into(),
            span,
            source_text: text.to_string(),
        }
    }

    /// Rendered with the offending source line underlined (miette).
    pub fn pretty(&self) -> String {
        let src =
            miette::NamedSource::new(self.file.display().to_string(), self.source_text.clone());
        let len = self.span.end.saturating_sub(self.span.start).max(1);
        let report = miette::miette!(
            labels = vec![miette::LabeledSpan::at(
                self.span.start..self.span.start + len,
                "here"
            )],
            "{}",
            self.message
        )
        .with_source_code(src);
        let mut out = String::new();
        let handler =
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
        if handler.render_report(&mut out, report.as_ref()).is_err() {
            return self.to_string();
        }
        format!(
            "{}:{}:{}:\n{out}",
            self.file.display(),
            self.line,
            self.column
        )
    }
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Source file.
    pub file: PathBuf,
    /// Whole-scenario bound.
    pub timeout: Duration,
    /// Gateways.
    pub gateways: Vec<GatewaySpec>,
    /// Hosts.
    pub hosts: Vec<HostSpec>,
    /// Steps.
    pub steps: Vec<Step>,
}

/// A gateway.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    /// Engine.
    pub engine: EngineKind,
    /// Kernel engine: the user's own rule set (files' contents and syntax).
    pub ruleset: Option<crate::engine::kernel::CustomRuleset>,
    /// A local Docker image to run the gateway in.
    pub image: Option<String>,
    /// `engine = "image"`: what the container prints when it is ready.
    pub image_ready: Option<Regex>,
    /// The engine-neutral model (interfaces `lan0` inside, `wan0` outside).
    pub config: GatewayConfig,
    /// TCP ports listening in the gateway's own namespace.
    pub services: Vec<u16>,
    /// More interfaces (placeholders) with an optional address.
    pub extra_interfaces: Vec<(String, Option<Ipv4Net>)>,
    /// A /32 WAN's point-to-point peer network (the WAN-side hosts).
    pub wan_peers: Option<Ipv4Net>,
    /// Trace new TCP connections.
    pub trace: bool,
}

/// A host.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Name.
    pub name: String,
    /// Addresses on `eth0`.
    pub addrs: Vec<IpNet>,
    /// Default route: gateway name and next hop.
    pub default_via: Option<(String, Ipv4Addr)>,
    /// Name → address as seen from this host.
    pub hosts: BTreeMap<String, IpAddr>,
    /// Files of the served tree.
    pub files: BTreeMap<String, FileSpec>,
    /// Server actor.
    pub server: Option<ServerSpec>,
    /// Other TCP ports listening on this host.
    pub services: Vec<u16>,
    /// A local Docker image to run the host in.
    pub image: Option<String>,
}

/// Which FTP server runs on a host.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// ftpnat-server, in-process.
    Reference,
    /// vsftpd, as a child process.
    Vsftpd,
    /// ProFTPD, as a child process.
    Proftpd,
    /// Pure-FTPd, as a child process.
    #[serde(rename = "pure-ftpd")]
    #[value(name = "pure-ftpd")]
    PureFtpd,
}

impl ServerKind {
    /// The name scenario files and the CLI use.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Reference => "reference",
            ServerKind::Vsftpd => "vsftpd",
            ServerKind::Proftpd => "proftpd",
            ServerKind::PureFtpd => "pure-ftpd",
        }
    }
}

/// A server actor.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Which server.
    pub kind: ServerKind,
    /// The reference server's configuration (root/listen filled in by the runner).
    pub config: ftpnat_server::config::RawConfig,
    /// A user's server (`ftpnat run --server command:…`), replacing `kind`.
    pub command: Option<std::sync::Arc<super::command::CommandSpec>>,
    /// FTPS with a generated test certificate.
    pub tls: bool,
}

/// Data-connection choice for transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A fresh PASV/EPSV/PORT/EPRT.
    Fresh(crate::client::DataMode),
    /// The last 227/229 already received.
    Pending,
}

/// Real client programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// curl
    Curl,
    /// lftp
    Lftp,
    /// Python's ftplib
    Ftplib,
}

/// Transfer verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// RETR
    Retr,
    /// STOR
    Stor,
    /// LIST
    List,
    /// NLST
    Nlst,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Open a control connection from `host`.
    Connect {
        /// Host the client runs on.
        host: String,
        /// Server address.
        addr: SocketAddr,
    },
    /// USER/PASS.
    Login {
        /// User.
        user: String,
        /// Password.
        pass: String,
    },
    /// A raw command.
    Send(String),
    /// A transfer.
    Transfer {
        /// Verb.
        verb: Verb,
        /// Path argument.
        path: String,
        /// Data connection.
        mode: Mode,
        /// Upload size.
        size: u64,
        /// FTPS data connections resume the control session's TLS session.
        tls_resume: bool,
    },
    /// QUIT.
    Quit,
    /// `AUTH TLS` and the handshake.
    AuthTls,
    /// `CCC`.
    Ccc,
    /// A download by a real client program.
    External {
        /// Which program.
        tool: Tool,
        /// Host it runs on.
        host: String,
        /// Server control address.
        server: SocketAddr,
        /// Path to fetch.
        path: String,
        /// pasv, epsv or port.
        mode: crate::client::DataMode,
        /// curl: honour the 227 address.
        honour_pasv: bool,
        /// Explicit FTPS.
        ftps: bool,
        /// lftp settings the step changes (name, value).
        settings: Vec<(String, String)>,
    },
    /// Connect to the pending passive address and keep the connection.
    Hold,
    /// Wait for a log line of `target`'s server.
    WaitLog {
        /// Host with a server.
        target: String,
        /// Pattern.
        regex: Regex,
    },
    /// Check a server log or gateway counters.
    Check {
        /// Host or gateway.
        target: String,
    },
    /// Connect scan.
    Scan {
        /// From host.
        from: String,
        /// Address.
        target: IpAddr,
        /// Ports.
        ports: Vec<u16>,
    },
    /// Concurrent steps.
    Parallel(Vec<Step>),
}

/// Comparison in a counter expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// ==
    Eq,
    /// >=
    Ge,
    /// <=
    Le,
    /// >
    Gt,
    /// <
    Lt,
}

impl Cmp {
    /// Applies the comparison.
    pub fn holds(self, seen: u64, want: u64) -> bool {
        match self {
            Cmp::Eq => seen == want,
            Cmp::Ge => seen >= want,
            Cmp::Le => seen <= want,
            Cmp::Gt => seen > want,
            Cmp::Lt => seen < want,
        }
    }

    /// Symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "==",
            Cmp::Ge => ">=",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Lt => "<",
        }
    }
}

/// Expected data-connection outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferExpect {
    /// Exactly this outcome.
    Is(DataOutcome),
    /// Anything but ok.
    Failed,
}

impl TransferExpect {
    /// `ok`, `refused`, `timeout`, `unreachable` or `failed`.
    pub fn parse(s: &str) -> Result<TransferExpect, String> {
        Ok(match s {
            "ok" => TransferExpect::Is(DataOutcome::Ok),
            "refused" => TransferExpect::Is(DataOutcome::Refused),
            "timeout" => TransferExpect::Is(DataOutcome::TimedOut),
            "unreachable" => TransferExpect::Is(DataOutcome::Unreachable),
            "failed" => TransferExpect::Failed,
            o => {
                return Err(format!(
                    "{o:?}: expected ok, refused, timeout, unreachable or failed"
                ))
            }
        })
    }
}

/// Validated expectations.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Reply code.
    pub code: Option<u16>,
    /// No reply within the bound.
    pub no_reply: bool,
    /// Reply text.
    pub text: Option<Regex>,
    /// 227 address.
    pub pasv_addr: Option<Ipv4Addr>,
    /// 227 address public?
    pub pasv_public: Option<bool>,
    /// 227 address in.
    pub pasv_in: Option<Ipv4Net>,
    /// Port in range.
    pub port_in: Option<(u16, u16)>,
    /// Port outside range.
    pub port_not_in: Option<(u16, u16)>,
    /// Transfer outcome.
    pub transfer: Option<TransferExpect>,
    /// Time bound.
    pub within: Option<Duration>,
    /// Lower time bound.
    pub at_least: Option<Duration>,
    /// Digest.
    pub sha256: Option<String>,
    /// Bytes.
    pub bytes: Option<u64>,
    /// Log pattern.
    pub log: Option<Regex>,
    /// Log count.
    pub log_count: Option<usize>,
    /// Counter checks.
    pub counters: Vec<(String, Cmp, u64)>,
    /// Scan result.
    pub open: Option<BTreeSet<u16>>,
    /// Number of open ports in the scan.
    pub open_count: Option<usize>,
    /// Ports that must reach a host (a listener there accepted them).
    pub reachable: Option<BTreeSet<u16>>,
    /// Per host or gateway: exactly the scanned ports its listeners accepted.
    pub accepted: BTreeMap<String, BTreeSet<u16>>,
}

/// A step.
#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based position in the file (nested: position of the parent).
    pub index: usize,
    /// Line in the file.
    pub line: usize,
    /// Client session name ("" for check/scan/wait).
    pub client: String,
    /// Action.
    pub action: Action,
    /// Expectations.
    pub expect: Expect,
    /// Per-reply bound.
    pub timeout: Duration,
    /// Profile point (see [`crate::profile`]).
    pub point: Option<String>,
}

/// Default per-reply bound.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// Default scenario bound.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

/// Parses a port list into the set of ports ("" is the empty set).
pub fn port_set(s: &str) -> Result<BTreeSet<u16>, String> {
    if s.trim().is_empty() {
        return Ok(BTreeSet::new());
    }
    Ok(parse_ports(s)?
        .into_iter()
        .flat_map(|(a, b)| a..=b)
        .collect())
}

/// Parses "21", "60000-60010", "1-1024,60000-60010" into inclusive ranges.
pub fn parse_ports(s: &str) -> Result<Vec<(u16, u16)>, String> {
    s.split(',')
        .map(|part| {
            let part = part.trim();
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let lo: u16 = a
                .trim()
                .parse()
                .map_err(|_| format!("{part:?} is not a port or range like \"60000-60010\""))?;
            let hi: u16 = b
                .trim()
                .parse()
                .map_err(|_| format!("{part:?} is not a port or range like \"60000-60010\""))?;
            if lo == 0 || lo > hi {
                return Err(format!(
                    "{part:?}: ports run from 1 to 65535, low before high"
                ));
            }
            Ok((lo, hi))
        })
        .collect()
}

fn proto_num(p: Option<&str>) -> Result<u8, String> {
    match p.unwrap_or("tcp") {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        other => Err(format!(
            "protocol {other:?}: expected \"tcp\", \"udp\" or \"icmp\""
        )),
    }
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::at(self.file, self.text, span, msg)
    }

    /// Span of the first occurrence of `needle` after `from` (for values
    /// without a Spanned wrapper).
    fn find(&self, needle: &str, from: usize) -> Range<usize> {
        match self.text.get(from..).and_then(|t| t.find(needle)) {
            Some(p) => from + p..from + p + needle.len(),
            None => from..from,
        }
    }
}

/// Parses and validates scenario text.
pub fn parse(text: &str, file: &Path) -> Result<Scenario, Diagnostic> {
    let cx = Ctx { file, text };
    let raw: RawScenario = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.err(span, e.message().to_string())
    })?;
    resolve(raw, &cx)
}

/// Reads, parses and validates a scenario file (at most
/// [`safety::MAX_SCENARIO_BYTES`]).
pub fn load(file: &Path) -> Result<Scenario, Diagnostic> {
    let fail = |message: String| Diagnostic {
        file: file.to_owned(),
        line: 1,
        column: 1,
        message,
        span: 0..0,
        source_text: String::new(),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(
            std::fs::File::open(file).map_err(|e| fail(format!("cannot read: {e}")))?,
            safety::MAX_SCENARIO_BYTES + 1,
        ),
        &mut text,
    )
    .map_err(|e| fail(format!("cannot read: {e}")))?;
    if text.len() as u64 > safety::MAX_SCENARIO_BYTES {
        return Err(fail(format!(
            "the file is larger than {} bytes",
            safety::MAX_SCENARIO_BYTES
        )));
    }
    parse(&text, file)
}

fn resolve(raw: RawScenario, cx: &Ctx<'_>) -> Result<Scenario, Diagnostic> {
    safety::scenario_name(raw.name.get_ref()).map_err(|m| cx.err(raw.name.span(), m))?;
    if raw.gateway.len() > safety::MAX_GATEWAYS || raw.host.len() > safety::MAX_HOSTS {
        return Err(cx.err(
            0..0,
            format!(
                "at most {} gateways and {} hosts",
                safety::MAX_GATEWAYS,
                safety::MAX_HOSTS
            ),
        ));
    }
    if let Some(t) = raw
        .timeout_s
        .filter(|t| *t == 0 || *t > safety::MAX_TIMEOUT_S)
    {
        return Err(cx.err(
            cx.find("timeout_s", 0),
            format!(
                "timeout_s = {t}: from 1 to {} seconds",
                safety::MAX_TIMEOUT_S
            ),
        ));
    }
    let mut names = BTreeSet::new();
    let mut gateways = Vec::new();
    let default_ready = Regex::new("ready").expect("literal");
    // Every address in the scenario once: who holds it and where it is written.
    let mut taken: BTreeMap<IpAddr, String> = BTreeMap::new();
    for (gi, g) in raw.gateway.iter().enumerate() {
        safety::node_name(g.name.get_ref()).map_err(|m| cx.err(g.name.span(), m))?;
        if !names.insert(g.name.get_ref().clone()) {
            return Err(cx.err(
                g.name.span(),
                format!("name {:?} is used twice", g.name.get_ref()),
            ));
        }
        if let Some(i) = &g.image {
            safety::image_ref(i.get_ref()).map_err(|m| cx.err(i.span(), m))?;
        }
        let net = |s: &toml::Spanned<String>| -> Result<Ipv4Net, Diagnostic> {
            s.get_ref().parse::<Ipv4Net>().map_err(|_| {
                cx.err(
                    s.span(),
                    format!(
                        "{:?} is not an IPv4 address/prefix like \"192.168.1.1/24\"",
                        s.get_ref()
                    ),
                )
            })
        };
        let lan = net(&g.lan)?;
        let wan = net(&g.wan)?;
        if lan.trunc() == wan.trunc() {
            return Err(cx.err(g.wan.span(), "lan and wan must be different networks"));
        }
        for (n, s) in [(lan, &g.lan), (wan, &g.wan)] {
            take_addr(
                &mut taken,
                IpAddr::V4(n.addr()),
                g.name.get_ref(),
                cx,
                s.span(),
            )?;
        }
        let mac = |i: u8| [0x02, 0xfe, gi as u8, 0, 0, i];
        let mtu = g.mtu.unwrap_or(1500);
        let mut forwards = Vec::new();
        for f in &g.forward {
            let proto = proto_num(f.proto.as_deref()).map_err(|m| cx.err(f.ports.span(), m))?;
            let ranges = parse_ports(f.ports.get_ref()).map_err(|m| cx.err(f.ports.span(), m))?;
            let to = f.to.get_ref();
            let host = raw
                .host
                .iter()
                .find(|h| h.name.get_ref() == to)
                .ok_or_else(|| {
                    cx.err(
                        f.to.span(),
                        format!("forward target {to:?} is not a host of this scenario"),
                    )
                })?;
            let to_ip = match host.addr.get_ref().parse::<IpNet>() {
                Ok(IpNet::V4(n)) if lan.contains(&n.addr()) => n.addr(),
                _ => {
                    return Err(cx.err(
                        f.to.span(),
                        format!("forward target {to:?} must have an IPv4 address inside {lan}"),
                    ))
                }
            };
            for (lo, hi) in ranges {
                forwards.push(Forward {
                    proto,
                    ports: (lo, hi),
                    to: to_ip,
                    to_port: f.to_port.unwrap_or(lo),
                });
            }
        }
        let firewall = match &g.firewall {
            None => Firewall::default(),
            Some(fw) => {
                let mut rules = Vec::new();
                for r in &fw.rule {
                    let here = cx.find("[[gateway.firewall.rule]]", 0);
                    let bad = |m: String| cx.err(here.clone(), m);
                    let range = |s: &Option<String>| -> Result<Option<(u16, u16)>, Diagnostic> {
                        s.as_deref()
                            .map(|s| {
                                parse_ports(s).map_err(&bad).and_then(|v| {
                                    if v.len() == 1 {
                                        Ok(v[0])
                                    } else {
                                        Err(bad(format!("{s:?}: one range per rule")))
                                    }
                                })
                            })
                            .transpose()
                    };
                    let cidr = |s: &Option<String>| -> Result<Option<Ipv4Net>, Diagnostic> {
                        s.as_deref()
                            .map(|s| {
                                s.parse::<Ipv4Net>()
                                    .or_else(|_| s.parse::<Ipv4Addr>().map(Ipv4Net::from))
                                    .map_err(|_| bad(format!("{s:?} is not an IPv4 CIDR")))
                            })
                            .transpose()
                    };
                    let syn_only = match r.flags.as_deref() {
                        None => false,
                        Some("syn") | Some("S") => true,
                        Some(o) => {
                            return Err(bad(format!(
                                "flags {o:?}: only \"syn\" (SYN without ACK) is supported"
                            )))
                        }
                    };
                    rules.push(Rule {
                        action: Some(r.action),
                        direction: r.direction,
                        proto: r
                            .proto
                            .as_deref()
                            .map(|p| proto_num(Some(p)))
                            .transpose()
                            .map_err(&bad)?,
                        src: cidr(&r.src)?,
                        dst: cidr(&r.dst)?,
                        sport: range(&r.sport)?,
                        dport: range(&r.dport)?,
                        syn_only,
                        state: r.state.clone(),
                        comment: r.comment.clone(),
                    });
                }
                Firewall {
                    rules,
                    policy_in: fw.policy_in.unwrap_or(crate::engine::Action::Accept),
                    policy_out: fw.policy_out.unwrap_or(crate::engine::Action::Accept),
                    stateful: fw.stateful.unwrap_or(true),
                }
            }
        };
        let ifname_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 15
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        };
        let lan_name = g.lan_name.clone().unwrap_or_else(|| "lan0".into());
        let wan_name = g.wan_name.clone().unwrap_or_else(|| "wan0".into());
        for n in [&lan_name, &wan_name] {
            if !ifname_ok(n) || n == "lo" {
                return Err(cx.err(
                    cx.find(n, 0),
                    format!("interface name {n:?}: 1-15 letters, digits, '-', '_' or '.'"),
                ));
            }
        }
        if lan_name == wan_name {
            return Err(cx.err(cx.find("wan_name", 0), "lan_name and wan_name must differ"));
        }
        let mut impairment = Vec::new();
        for (side, im) in &g.impair {
            let ifname = match side.as_str() {
                "lan" => lan_name.as_str(),
                "wan" => wan_name.as_str(),
                other => {
                    return Err(cx.err(
                        cx.find(other, 0),
                        format!("impair.{other}: expected impair.lan or impair.wan"),
                    ))
                }
            };
            if !(0.0..=1.0).contains(&im.loss) {
                return Err(cx.err(cx.find("loss", 0), "loss is a probability from 0 to 1"));
            }
            impairment.push((ifname.to_string(), *im));
        }
        let masquerade = g.masquerade.unwrap_or(true);
        let config = GatewayConfig {
            name: g.name.get_ref().clone(),
            ifaces: vec![
                IfaceConfig {
                    name: lan_name.clone(),
                    addr: lan,
                    side: Side::Inside,
                    mac: mac(1),
                    mtu,
                },
                IfaceConfig {
                    name: wan_name.clone(),
                    addr: wan,
                    side: Side::Outside,
                    mac: mac(2),
                    mtu,
                },
            ],
            nat: masquerade.then(|| g.nat.clone().unwrap_or_default()),
            forwards,
            firewall,
            alg: g.alg.unwrap_or_default(),
            alg_ports: g.alg_ports.clone().unwrap_or_else(|| vec![21]),
            impairment,
            reject_unsolicited: match (g.unsolicited, g.reject_unsolicited) {
                (Some(u), Some(r)) if (u == Unsolicited::Reject) != r => {
                    return Err(cx.err(
                        cx.find("reject_unsolicited", g.name.span().start),
                        "reject_unsolicited contradicts unsolicited: keep `unsolicited` only",
                    ))
                }
                (Some(u), _) => u == Unsolicited::Reject,
                (None, r) => r.unwrap_or(false),
            },
            seed: 0x5eed_0000 + gi as u64,
        };
        let engine = g.engine.unwrap_or(EngineKind::Sim);
        let files: Vec<&toml::Spanned<String>> = g.ruleset.iter().chain(&g.rulesets).collect();
        if g.ruleset.is_some() && !g.rulesets.is_empty() {
            return Err(cx.err(
                g.name.span(),
                format!(
                    "gateway {}: ruleset or rulesets, not both",
                    g.name.get_ref()
                ),
            ));
        }
        let ruleset = if files.is_empty() {
            None
        } else {
            if engine != EngineKind::Kernel {
                return Err(cx.err(files[0].span(), "ruleset needs engine = \"kernel\""));
            }
            let mut parts = Vec::new();
            for f in &files {
                // Beneath the scenario's folder, never through a link.
                crate::confine::relative_name(f.get_ref())
                    .map_err(|m| cx.err(f.span(), format!("ruleset: {m}")))?;
                let folder = cx.file.parent().unwrap_or(Path::new("."));
                let folder = if folder.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    folder
                };
                let text = crate::confine::Confined::open(folder)
                    .and_then(|d| d.read_to_string(f.get_ref(), safety::MAX_RULESET_BYTES))
                    .map_err(|e| {
                        cx.err(
                            f.span(),
                            format!("cannot read ruleset {:?}: {e}", f.get_ref()),
                        )
                    })?;
                let format = match g.ruleset_format {
                    Some(fmt) if files.len() == 1 => fmt,
                    _ => crate::engine::kernel::RulesetFormat::detect(&text),
                };
                parts.push(crate::engine::kernel::RulesetPart { format, text });
            }
            Some(crate::engine::kernel::CustomRuleset { parts })
        };
        let mut extra_interfaces = Vec::new();
        for e in &g.extra_interfaces {
            let at = || cx.find(e, g.name.span().start);
            let (name, addr) = match e.split_once('=') {
                Some((n, a)) => (
                    n,
                    Some(a.parse::<Ipv4Net>().map_err(|_| {
                        cx.err(
                            at(),
                            format!("extra_interfaces: {a:?} is not an IPv4 address/prefix"),
                        )
                    })?),
                ),
                None => (e.as_str(), None),
            };
            if !ifname_ok(name) || name == "lo" || name == lan_name || name == wan_name {
                return Err(cx.err(
                    at(),
                    format!("extra_interfaces: {name:?} is not a new interface name (1-15 letters, digits, '-', '_' or '.')"),
                ));
            }
            if extra_interfaces
                .iter()
                .any(|(n, _): &(String, _)| n == name)
            {
                return Err(cx.err(at(), format!("extra_interfaces: {name:?} is listed twice")));
            }
            extra_interfaces.push((name.to_string(), addr));
        }
        let wan_peers = match &g.wan_peers {
            None if wan.prefix_len() == 32 && engine == EngineKind::Kernel => {
                return Err(cx.err(
                    g.wan.span(),
                    "wan is a /32 (point-to-point, as on PPPoE): give wan_peers = the network of the hosts on the WAN side",
                ))
            }
            None => None,
            Some(p) => {
                let n = net(p)?;
                if wan.prefix_len() != 32 || engine != EngineKind::Kernel {
                    return Err(cx.err(p.span(), "wan_peers needs engine = \"kernel\" and a /32 wan"));
                }
                if n.contains(&wan.addr()) {
                    return Err(cx.err(p.span(), "wan_peers must not contain the wan address"));
                }
                Some(n.trunc())
            }
        };
        if (!extra_interfaces.is_empty() || g.trace) && engine != EngineKind::Kernel {
            return Err(cx.err(
                g.name.span(),
                format!(
                    "gateway {}: extra_interfaces and trace need engine = \"kernel\"",
                    g.name.get_ref()
                ),
            ));
        }
        if engine == EngineKind::Image && g.image.is_none() {
            return Err(cx.err(
                g.name.span(),
                format!("gateway {}: engine = \"image\" needs image = \"NAME:TAG\" (a local Docker image)", g.name.get_ref()),
            ));
        }
        let image_ready = match &g.image_ready {
            Some(r) => Some(Regex::new(r).map_err(|e| {
                cx.err(
                    g.name.span(),
                    format!("gateway {}: image_ready: {e}", g.name.get_ref()),
                )
            })?),
            None if engine == EngineKind::Image => Some(default_ready.clone()),
            None => None,
        };
        let mut seen_services = BTreeSet::new();
        for p in &g.services {
            if *p == 0 || !seen_services.insert(*p) {
                return Err(cx.err(
                    cx.find("services", g.name.span().start),
                    format!("services: port {p} is 0 or listed twice"),
                ));
            }
        }
        if !g.services.is_empty() && engine == EngineKind::Sim {
            return Err(cx.err(
                cx.find("services", g.name.span().start),
                "gateway services need engine = \"kernel\" or \"image\" (the sim engine's gateway has no addresses of its own)",
            ));
        }
        gateways.push(GatewaySpec {
            engine,
            ruleset,
            config,
            services: g.services.clone(),
            extra_interfaces,
            wan_peers,
            trace: g.trace,
            image: g.image.as_ref().map(|i| i.get_ref().clone()),
            image_ready,
        });
    }
    let mut hosts = Vec::new();
    let mut files_total = 0u64;
    for (hi, h) in raw.host.iter().enumerate() {
        safety::node_name(h.name.get_ref()).map_err(|m| cx.err(h.name.span(), m))?;
        if !names.insert(h.name.get_ref().clone()) {
            return Err(cx.err(
                h.name.span(),
                format!("name {:?} is used twice", h.name.get_ref()),
            ));
        }
        if let Some(i) = &h.image {
            safety::image_ref(i.get_ref()).map_err(|m| cx.err(i.span(), m))?;
        }
        let mut addrs = vec![h.addr.get_ref().parse::<IpNet>().map_err(|_| {
            cx.err(
                h.addr.span(),
                format!(
                    "{:?} is not an address/prefix like \"192.168.1.2/24\"",
                    h.addr.get_ref()
                ),
            )
        })?];
        for a in &h.addrs {
            addrs.push(
                a.parse().map_err(|_| {
                    cx.err(cx.find(a, 0), format!("{a:?} is not an address/prefix"))
                })?,
            );
        }
        for (i, a) in addrs.iter().enumerate() {
            let span = if i == 0 {
                h.addr.span()
            } else {
                cx.find(&h.addrs[i - 1], h.name.span().start)
            };
            take_addr(&mut taken, a.addr(), h.name.get_ref(), cx, span)?;
        }
        let block = nth_header(cx, "[[host]]", hi + 1).start;
        files_total = check_files(h, cx, block, files_total)?;
        let v4 = addrs.iter().find_map(|a| match a {
            IpNet::V4(n) => Some(n.addr()),
            _ => None,
        });
        let default_via = match &h.gateway {
            Some(gname) => {
                let g = gateways
                    .iter()
                    .find(|g| &g.config.name == gname.get_ref())
                    .ok_or_else(|| {
                        cx.err(
                            gname.span(),
                            format!(
                                "gateway {:?} is not defined in this scenario",
                                gname.get_ref()
                            ),
                        )
                    })?;
                let ip = v4.ok_or_else(|| {
                    cx.err(
                        gname.span(),
                        "a host routed via a gateway needs an IPv4 address",
                    )
                })?;
                let iface = g
                    .config
                    .ifaces
                    .iter()
                    .find(|i| i.addr.contains(&ip))
                    .ok_or_else(|| {
                        cx.err(
                            gname.span(),
                            format!("{ip} is on neither network of gateway {:?}", g.config.name),
                        )
                    })?;
                Some((g.config.name.clone(), iface.addr.addr()))
            }
            None => v4.and_then(|ip| {
                gateways.iter().find_map(|g| {
                    let lan = &g.config.ifaces[0];
                    lan.addr
                        .contains(&ip)
                        .then(|| (g.config.name.clone(), lan.addr.addr()))
                })
            }),
        };
        let server = match &h.server {
            None => None,
            Some(s) => {
                let kind = match s.kind.get_ref().as_str() {
                    "reference" => ServerKind::Reference,
                    "vsftpd" => ServerKind::Vsftpd,
                    "proftpd" => ServerKind::Proftpd,
                    "pure-ftpd" => ServerKind::PureFtpd,
                    other => {
                        return Err(cx.err(
                            s.kind.span(),
                            format!("server kind {other:?}: expected one of \"reference\", \"vsftpd\", \"proftpd\", \"pure-ftpd\""),
                        ))
                    }
                };
                let config = match &s.config {
                    None => ftpnat_server::config::RawConfig::default(),
                    Some(t) => {
                        let value = toml::Value::Table(t.get_ref().clone());
                        value
                            .try_into::<ftpnat_server::config::RawConfig>()
                            .map_err(|e| cx.err(t.span(), format!("server config: {e}")))?
                    }
                };
                check_server_config(&config, s, hi, h, cx)?;
                Some(ServerSpec {
                    kind,
                    config,
                    command: None,
                    tls: s.tls.unwrap_or(false),
                })
            }
        };
        check_services(h, server.as_ref(), cx)?;
        hosts.push(HostSpec {
            name: h.name.get_ref().clone(),
            addrs,
            default_via,
            hosts: h.hosts.clone(),
            files: h.files.clone(),
            server,
            services: h.services.clone(),
            image: h.image.as_ref().map(|i| i.get_ref().clone()),
        });
    }
    let mut clients = BTreeMap::new();
    let mut steps = Vec::new();
    for (i, s) in raw.step.iter().enumerate() {
        steps.push(resolve_step(s, i + 1, cx, &hosts, &gateways, &mut clients)?);
    }
    let count = |s: &Step| match &s.action {
        Action::Parallel(v) => v.len() + 1,
        _ => 1,
    };
    if steps.iter().map(count).sum::<usize>() > safety::MAX_STEPS {
        return Err(cx.err(0..0, format!("at most {} steps", safety::MAX_STEPS)));
    }
    Ok(Scenario {
        name: raw.name.into_inner(),
        description: raw.description,
        tags: raw.tags,
        file: cx.file.to_owned(),
        timeout: raw.timeout_s.map_or(SCENARIO_TIMEOUT, Duration::from_secs),
        gateways,
        hosts,
        steps,
    })
}

fn step_span(cx: &Ctx<'_>, index: usize) -> Range<usize> {
    nth_header(cx, "[[step]]", index)
}

/// The span of the `index`-th (1-based) `header` in the file.
fn nth_header(cx: &Ctx<'_>, header: &str, index: usize) -> Range<usize> {
    let mut from = 0;
    let mut span = 0..0;
    for _ in 0..index {
        span = cx.find(header, from);
        from = span.end;
    }
    span
}

/// Records that `owner` holds `ip`; two holders of one address is an error
/// (the kernel would refuse the second, or traffic would go astray).
fn take_addr(
    taken: &mut BTreeMap<IpAddr, String>,
    ip: IpAddr,
    owner: &str,
    cx: &Ctx<'_>,
    span: Range<usize>,
) -> Result<(), Diagnostic> {
    if let Some(prev) = taken.insert(ip, owner.to_string()) {
        return Err(cx.err(
            span,
            if prev == owner {
                format!("{owner} has address {ip} twice")
            } else {
                format!("address {ip} of {owner} is already {prev}'s")
            },
        ));
    }
    Ok(())
}

/// The served files: names stay inside the served tree, sizes within the
/// limits. Returns the running total.
fn check_files(h: &RawHost, cx: &Ctx<'_>, block: usize, mut total: u64) -> Result<u64, Diagnostic> {
    if h.files.len() > safety::MAX_FILES {
        return Err(cx.err(
            h.name.span(),
            format!("at most {} files per host", safety::MAX_FILES),
        ));
    }
    for (name, spec) in &h.files {
        let at = {
            let quoted = cx.find(&format!("{name:?}"), block);
            if quoted.start > block || quoted.end > quoted.start {
                quoted
            } else {
                cx.find(name, block)
            }
        };
        crate::confine::relative_name(name)
            .map_err(|m| cx.err(at.clone(), format!("files: {m}")))?;
        let size = match spec {
            FileSpec::Text(t) => t.len() as u64,
            FileSpec::Generated { size, .. } => *size,
        };
        if size > safety::MAX_FILE_SIZE {
            return Err(cx.err(
                cx.find("size", at.start),
                format!(
                    "files.{name:?}: size {size} is larger than the limit of {} bytes",
                    safety::MAX_FILE_SIZE
                ),
            ));
        }
        total += size;
        if total > safety::MAX_FILES_TOTAL {
            return Err(cx.err(
                at,
                format!(
                    "the scenario's files add up to more than {} bytes",
                    safety::MAX_FILES_TOTAL
                ),
            ));
        }
    }
    // A file and a folder of the same name cannot both exist.
    for name in h.files.keys() {
        let mut prefix = String::new();
        for part in name.split('/') {
            if !prefix.is_empty() && h.files.contains_key(prefix.trim_end_matches('/')) {
                let dir = prefix.trim_end_matches('/');
                return Err(cx.err(
                    cx.find(&format!("{name:?}"), block),
                    format!("files: {name:?} needs a folder {dir:?}, which is also a file"),
                ));
            }
            prefix.push_str(part);
            prefix.push('/');
        }
    }
    Ok(total)
}

/// Keys the runner owns: the served tree, the log and the certificate are
/// the run's own files (a scenario naming them could read or write outside
/// its run).
const RUNNER_KEYS: &[(&str, &str)] = &[
    (
        "root",
        "the runner serves the host's `files` from the run's folder",
    ),
    (
        "log_file",
        "the runner keeps the server's log in the run's folder",
    ),
    (
        "tls_cert",
        "use `tls = true` (a throw-away certificate made for the run)",
    ),
    (
        "tls_key",
        "use `tls = true` (a throw-away certificate made for the run)",
    ),
];

/// The reference server's own validation of a scenario's server keys, run
/// at load time as the runner would (root and listen filled in, names
/// resolved through the host's `hosts` table), with the error placed on the
/// key.
fn check_server_config(
    config: &ftpnat_server::config::RawConfig,
    s: &RawServer,
    host_index: usize,
    h: &RawHost,
    cx: &Ctx<'_>,
) -> Result<(), Diagnostic> {
    let table_span = s.config.as_ref().map_or(s.kind.span(), |t| t.span());
    let at = |key: &str| -> Range<usize> {
        let path = format!("host[{host_index}].server.config.{key}");
        ftpnat_server::config::key_position(cx.text, &path)
            .map(|(line, col)| {
                let start = cx
                    .text
                    .split_inclusive('\n')
                    .take(line - 1)
                    .map(str::len)
                    .sum::<usize>();
                start + col - 1..start + col
            })
            .unwrap_or_else(|| table_span.clone())
    };
    for (key, why) in RUNNER_KEYS {
        if s.config
            .as_ref()
            .is_some_and(|t| t.get_ref().contains_key(*key))
        {
            return Err(cx.err(
                at(key),
                format!("server config: `{key}` is not a scenario key: {why}"),
            ));
        }
    }
    let mut probe = config.clone();
    probe.root = Some(std::env::temp_dir());
    probe
        .listen
        .get_or_insert_with(|| vec!["0.0.0.0:21".into()]);
    if s.tls == Some(true) {
        // The runner adds the run's certificate.
        probe.tls_required = None;
    }
    let table = h.hosts.clone();
    let resolver = move |name: &str| -> std::io::Result<Vec<IpAddr>> {
        table.get(name).map(|ip| vec![*ip]).ok_or_else(|| {
            std::io::Error::other(format!("{name} is not in this host's `hosts` table"))
        })
    };
    match ftpnat_server::config::Config::resolve(probe, cx.file, &resolver) {
        Ok(_) => Ok(()),
        Err(ftpnat_server::config::ConfigError::Invalid { key, reason, .. }) => Err(cx.err(
            at(&key),
            format!("server config: invalid `{key}`: {reason}"),
        )),
        Err(e) => Err(cx.err(table_span, format!("server config: {e}"))),
    }
}

/// Other listening ports: 1-65535, each once, not the server's own port.
fn check_services(
    h: &RawHost,
    server: Option<&ServerSpec>,
    cx: &Ctx<'_>,
) -> Result<(), Diagnostic> {
    let at = || cx.find("services", h.name.span().start);
    let mut seen = BTreeSet::new();
    let server_ports: BTreeSet<u16> = server
        .map(|s| {
            s.config
                .listen
                .clone()
                .unwrap_or_else(|| vec!["0.0.0.0:21".into()])
                .iter()
                .filter_map(|l| l.parse::<SocketAddr>().ok().map(|a| a.port()))
                .collect()
        })
        .unwrap_or_default();
    for p in &h.services {
        if *p == 0 || !seen.insert(*p) {
            return Err(cx.err(at(), format!("services: port {p} is 0 or listed twice")));
        }
        if server_ports.contains(p) {
            return Err(cx.err(
                at(),
                format!(
                    "services: port {p} is the FTP server's own port on {}",
                    h.name.get_ref()
                ),
            ));
        }
    }
    Ok(())
}

fn resolve_step(
    s: &RawStep,
    index: usize,
    cx: &Ctx<'_>,
    hosts: &[HostSpec],
    gateways: &[GatewaySpec],
    clients: &mut BTreeMap<String, String>,
) -> Result<Step, Diagnostic> {
    let here = step_span(cx, index);
    let line = ftpnat_server::config::line_col(cx.text, here.start).0;
    let bad = |m: String| cx.err(here.clone(), format!("step {index}: {m}"));
    let host_exists = |n: &str| hosts.iter().any(|h| h.name == n);
    for (what, v) in [
        ("timeout_ms", s.timeout_ms),
        (
            "expect.within_ms",
            s.expect.as_ref().and_then(|e| e.within_ms),
        ),
        (
            "expect.at_least_ms",
            s.expect.as_ref().and_then(|e| e.at_least_ms),
        ),
    ] {
        if let Some(v) = v.filter(|v| *v > safety::MAX_STEP_MS) {
            return Err(bad(format!(
                "{what} = {v}: at most {} ms",
                safety::MAX_STEP_MS
            )));
        }
    }
    if let Some(n) = s.size.filter(|n| *n > safety::MAX_UPLOAD) {
        return Err(bad(format!(
            "size = {n}: an upload is at most {} bytes",
            safety::MAX_UPLOAD
        )));
    }
    let timeout = s.timeout_ms.map_or(STEP_TIMEOUT, Duration::from_millis);
    let expect = resolve_expect(s.expect.as_ref(), &bad)?;
    let actions = [
        s.connect.is_some(),
        s.login.is_some(),
        s.send.is_some(),
        s.retr.is_some(),
        s.stor.is_some(),
        s.list.is_some(),
        s.nlst.is_some(),
        s.quit.is_some(),
        s.auth_tls.is_some(),
        s.ccc.is_some(),
        s.hold.is_some(),
        s.curl.is_some() || s.lftp.is_some() || s.ftplib.is_some(),
        s.wait_log.is_some(),
        s.scan.is_some(),
        !s.parallel.is_empty(),
        s.check.is_some() && s.wait_log.is_none(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if actions != 1 {
        return Err(bad("needs exactly one of connect, login, send, retr, stor, list, nlst, quit, auth_tls, ccc, hold, curl/lftp/ftplib, wait_log, check, scan, parallel".into()));
    }
    let client_name = || -> Result<String, Diagnostic> {
        match &s.client {
            Some(c) => {
                if !clients.contains_key(c.get_ref()) {
                    return Err(cx.err(c.span(), format!("step {index}: client {:?} has not connected yet (add a connect step first)", c.get_ref())));
                }
                Ok(c.get_ref().clone())
            }
            None if clients.len() == 1 => Ok(clients.keys().next().cloned().unwrap_or_default()),
            None => Err(bad("which client? name it with client = \"…\"".into())),
        }
    };
    let (client, action) = if let Some(addr) = &s.connect {
        let host = s.host.as_ref().or(s.client.as_ref()).ok_or_else(|| bad("connect needs client = \"…\" (and host = \"…\" if the client is not named after its host)".into()))?;
        if !host_exists(host.get_ref()) {
            return Err(cx.err(
                host.span(),
                format!(
                    "step {index}: host {:?} is not defined in this scenario",
                    host.get_ref()
                ),
            ));
        }
        let name = s.client.as_ref().unwrap_or(host).get_ref().clone();
        let sa: SocketAddr = addr.get_ref().parse().map_err(|_| {
            cx.err(
                addr.span(),
                format!("{:?} is not \"address:port\"", addr.get_ref()),
            )
        })?;
        clients.insert(name.clone(), host.get_ref().clone());
        (
            name,
            Action::Connect {
                host: host.get_ref().clone(),
                addr: sa,
            },
        )
    } else if let Some(user) = &s.login {
        (
            client_name()?,
            Action::Login {
                user: user.clone(),
                pass: s
                    .password
                    .clone()
                    .unwrap_or_else(|| "ftpnat@example.test".into()),
            },
        )
    } else if let Some(line) = &s.send {
        (client_name()?, Action::Send(line.clone()))
    } else if s.retr.is_some() || s.stor.is_some() || s.list.is_some() || s.nlst.is_some() {
        let (verb, path) = if let Some(p) = &s.retr {
            (Verb::Retr, p.clone())
        } else if let Some(p) = &s.stor {
            (Verb::Stor, p.clone())
        } else if let Some(p) = &s.list {
            (Verb::List, p.clone())
        } else {
            (Verb::Nlst, s.nlst.clone().unwrap_or_default())
        };
        use crate::client::DataMode as D;
        let mode = match s.mode.as_deref().unwrap_or("pasv") {
            "pasv" => Mode::Fresh(D::Pasv),
            "epsv" => Mode::Fresh(D::Epsv),
            "port" => Mode::Fresh(D::Port),
            "eprt" => Mode::Fresh(D::Eprt),
            "pending" => Mode::Pending,
            other => {
                return Err(bad(format!(
                    "mode {other:?}: expected pasv, epsv, port, eprt or pending"
                )))
            }
        };
        (
            client_name()?,
            Action::Transfer {
                verb,
                path,
                mode,
                size: s.size.unwrap_or(65536),
                tls_resume: s.tls_resume.unwrap_or(true),
            },
        )
    } else if s.quit.is_some() {
        (client_name()?, Action::Quit)
    } else if s.auth_tls.is_some() {
        (client_name()?, Action::AuthTls)
    } else if s.ccc.is_some() {
        (client_name()?, Action::Ccc)
    } else if s.hold.is_some() {
        (client_name()?, Action::Hold)
    } else if let Some((tool, url)) = s
        .curl
        .as_ref()
        .map(|u| (Tool::Curl, u))
        .or(s.lftp.as_ref().map(|u| (Tool::Lftp, u)))
        .or(s.ftplib.as_ref().map(|u| (Tool::Ftplib, u)))
    {
        let host = s
            .host
            .as_ref()
            .or(s.client.as_ref())
            .ok_or_else(|| bad("a curl/lftp/ftplib step needs host = \"…\"".into()))?;
        if !host_exists(host.get_ref()) {
            return Err(cx.err(
                host.span(),
                format!("step {index}: host {:?} is not defined", host.get_ref()),
            ));
        }
        let (addr, path) = url
            .split_once('/')
            .ok_or_else(|| bad(format!("{url:?}: expected \"address:port/path\"")))?;
        let server: SocketAddr = addr
            .parse()
            .map_err(|_| bad(format!("{addr:?} is not \"address:port\"")))?;
        use crate::client::DataMode as D;
        let mode = match (s.mode.as_deref().unwrap_or("pasv"), tool) {
            ("pasv", _) => D::Pasv,
            ("epsv", Tool::Ftplib) => {
                return Err(bad(
                    "ftplib uses EPSV only on IPv6: use mode = \"pasv\" or \"port\"".into(),
                ))
            }
            ("epsv", _) => D::Epsv,
            ("port", _) => D::Port,
            (other, _) => return Err(bad(format!("mode {other:?}: expected pasv, epsv or port"))),
        };
        (
            String::new(),
            Action::External {
                tool,
                host: host.get_ref().clone(),
                server,
                path: path.to_string(),
                mode,
                honour_pasv: s.honour_pasv_address.unwrap_or(true),
                ftps: s.ftps.unwrap_or(false),
                settings: lftp_settings(s, tool, &bad)?,
            },
        )
    } else if let Some(pattern) = &s.wait_log {
        let target = s
            .check
            .as_ref()
            .ok_or_else(|| bad("wait_log needs check = \"<server host>\"".into()))?;
        if !hosts
            .iter()
            .any(|h| &h.name == target.get_ref() && h.server.is_some())
        {
            return Err(cx.err(
                target.span(),
                format!(
                    "step {index}: {:?} is not a host with a server",
                    target.get_ref()
                ),
            ));
        }
        let regex = Regex::new(pattern).map_err(|e| bad(format!("wait_log: {e}")))?;
        (
            String::new(),
            Action::WaitLog {
                target: target.get_ref().clone(),
                regex,
            },
        )
    } else if let Some(target) = &s.check {
        let t = target.get_ref();
        let is_server = hosts.iter().any(|h| &h.name == t && h.server.is_some());
        let is_gw = gateways.iter().any(|g| &g.config.name == t);
        if !is_server && !is_gw {
            return Err(cx.err(
                target.span(),
                format!("step {index}: check target {t:?} is neither a server host nor a gateway"),
            ));
        }
        if is_server && !expect.counters.is_empty() {
            return Err(bad("counters are gateway counters: check a gateway".into()));
        }
        if is_gw && expect.log.is_some() {
            return Err(bad("log expectations apply to a server host".into()));
        }
        (String::new(), Action::Check { target: t.clone() })
    } else if let Some(scan) = &s.scan {
        if !host_exists(scan.from.get_ref()) {
            return Err(cx.err(
                scan.from.span(),
                format!(
                    "step {index}: host {:?} is not defined",
                    scan.from.get_ref()
                ),
            ));
        }
        let ports: Vec<u16> = port_set(&scan.ports).map_err(&bad)?.into_iter().collect();
        if ports.len() > 8192 {
            return Err(bad("scan at most 8192 ports per step".into()));
        }
        for node in expect.accepted.keys() {
            if !host_exists(node) && !gateways.iter().any(|g| &g.config.name == node) {
                return Err(bad(format!(
                    "expect.accepted.{node}: no host or gateway of that name"
                )));
            }
        }
        (
            String::new(),
            Action::Scan {
                from: scan.from.get_ref().clone(),
                target: scan.target,
                ports,
            },
        )
    } else {
        let mut inner = Vec::new();
        for p in &s.parallel {
            if !p.parallel.is_empty() {
                return Err(bad("parallel groups do not nest".into()));
            }
            inner.push(resolve_step(p, index, cx, hosts, gateways, clients)?);
        }
        (String::new(), Action::Parallel(inner))
    };
    Ok(Step {
        index,
        line,
        client,
        action,
        expect,
        timeout,
        point: s.point.clone(),
    })
}

/// `lftp_set`: only on lftp steps; names like `ftp:fix-pasv-address`,
/// values without `;`, quotes or line breaks (they go into lftp's script).
fn lftp_settings(
    s: &RawStep,
    tool: Tool,
    bad: &dyn Fn(String) -> Diagnostic,
) -> Result<Vec<(String, String)>, Diagnostic> {
    if s.lftp_set.is_empty() {
        return Ok(Vec::new());
    }
    if tool != Tool::Lftp {
        return Err(bad("lftp_set applies to lftp steps only".into()));
    }
    s.lftp_set
        .iter()
        .map(|(k, v)| {
            let name_ok = k.contains(':')
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-');
            let value_ok = !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b));
            if name_ok && value_ok {
                Ok((k.clone(), v.clone()))
            } else {
                Err(bad(format!(
                    "lftp_set {k:?} = {v:?}: a setting like \"ftp:fix-pasv-address\" and a plain value"
                )))
            }
        })
        .collect()
}

fn resolve_expect(
    e: Option<&RawExpect>,
    bad: &dyn Fn(String) -> Diagnostic,
) -> Result<Expect, Diagnostic> {
    let Some(e) = e else {
        return Ok(Expect::default());
    };
    let regex = |s: &Option<String>, what: &str| -> Result<Option<Regex>, Diagnostic> {
        s.as_deref()
            .map(|p| Regex::new(p).map_err(|err| bad(format!("expect.{what}: {err}"))))
            .transpose()
    };
    let transfer = e
        .transfer
        .as_deref()
        .map(|t| TransferExpect::parse(t).map_err(|m| bad(format!("expect.transfer {m}"))))
        .transpose()?;
    let mut counters = Vec::new();
    for (k, v) in &e.counters {
        let v = v.trim();
        let (cmp, rest) = [
            (">=", Cmp::Ge),
            ("<=", Cmp::Le),
            ("==", Cmp::Eq),
            (">", Cmp::Gt),
            ("<", Cmp::Lt),
        ]
        .iter()
        .find_map(|(sym, c)| v.strip_prefix(sym).map(|r| (*c, r)))
        .unwrap_or((Cmp::Eq, v));
        let n: u64 = rest.trim().parse().map_err(|_| bad(format!("expect.counters.{k} = {v:?}: expected a number with an optional >=, <=, >, < or ==")))?;
        counters.push((k.clone(), cmp, n));
    }
    let open = e.open.as_deref().map(port_set).transpose().map_err(bad)?;
    let reachable = e
        .reachable
        .as_deref()
        .map(port_set)
        .transpose()
        .map_err(bad)?;
    let pasv_in = e
        .pasv_in
        .as_deref()
        .map(|s| {
            s.parse::<Ipv4Net>()
                .map_err(|_| bad(format!("expect.pasv_in {s:?} is not an IPv4 CIDR")))
        })
        .transpose()?;
    let range = |r: Option<[u16; 2]>, what: &str| -> Result<Option<(u16, u16)>, Diagnostic> {
        match r {
            Some([lo, hi]) if lo > hi => Err(bad(format!(
                "expect.{what}: [{lo}, {hi}] is not [low, high]"
            ))),
            other => Ok(other.map(|[a, b]| (a, b))),
        }
    };
    let mut accepted = BTreeMap::new();
    for (node, ports) in &e.accepted {
        accepted.insert(
            node.clone(),
            port_set(ports).map_err(|m| bad(format!("expect.accepted.{node}: {m}")))?,
        );
    }
    Ok(Expect {
        code: e.code,
        no_reply: e.no_reply.unwrap_or(false),
        text: regex(&e.text, "text")?,
        pasv_addr: e.pasv_addr,
        pasv_public: e.pasv_public,
        pasv_in,
        port_in: range(e.port_in, "port_in")?,
        port_not_in: range(e.port_not_in, "port_not_in")?,
        transfer,
        within: e.within_ms.map(Duration::from_millis),
        at_least: e.at_least_ms.map(Duration::from_millis),
        sha256: e.sha256.clone(),
        bytes: e.bytes,
        log: regex(&e.log, "log")?,
        log_count: e.log_count,
        counters,
        open,
        open_count: e.open_count,
        reachable,
        accepted,
    })
}
