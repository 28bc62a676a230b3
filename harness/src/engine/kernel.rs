//! The `kernel` engine: the gateway namespace forwards in Linux; NAT and
//! filtering are an nftables rule set generated from the same
//! [`GatewayConfig`] the sim engine runs, loaded with `nft -f` inside the
//! gateway's namespace (never the root one).
//!
//! What the kernel cannot express is an error naming the setting, never a
//! silent difference: Linux masquerade is endpoint-independent mapping with
//! address-and-port-dependent filtering (conntrack), ports preserved or
//! random; only the `off` and `correct` ALG modes exist (the conntrack FTP
//! helper); no impairment.
//!
//! Counters come from `counter` statements tagged with comments: total
//! forwarded packets, each firewall rule's hits, and firewall drops.

use std::{io::Write, path::Path, sync::Arc};

use crate::{
    engine::{
        Action, AlgMode, Behaviour, Counters, CtState, Direction, FullPolicy, GatewayConfig,
        NatConfig, PortChoice, Side, Timeouts,
    },
    topology::Topology,
};

/// A setting the kernel engine cannot express.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "gateway {gateway}: {what} is not expressible with the kernel engine (use engine = \"sim\")"
)]
pub struct Unsupported {
    /// Gateway name.
    pub gateway: String,
    /// The setting.
    pub what: String,
}

fn iface(cfg: &GatewayConfig, side: Side) -> &crate::engine::IfaceConfig {
    cfg.ifaces
        .iter()
        .find(|i| i.side == side)
        .expect("gateways have both sides")
}

fn proto_kw(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        _ => "ip",
    }
}

fn range(r: (u16, u16)) -> String {
    if r.0 == r.1 {
        r.0.to_string()
    } else {
        format!("{}-{}", r.0, r.1)
    }
}

fn verdict(a: Action, proto: Option<u8>) -> &'static str {
    match (a, proto) {
        (Action::Accept, _) => "accept",
        (Action::Drop, _) => "drop",
        (Action::Reject, Some(6)) => "reject with tcp reset",
        (Action::Reject, _) => "reject",
    }
}

/// Checks that `cfg` is expressible; returns the first thing that is not.
pub fn check(cfg: &GatewayConfig) -> Result<(), Unsupported> {
    let bad = |what: String| {
        Err(Unsupported {
            gateway: cfg.name.clone(),
            what,
        })
    };
    if let Some(n) = &cfg.nat {
        let d = NatConfig::default();
        if n.mapping != Behaviour::EndpointIndependent {
            return bad(format!("nat.mapping = {:?}", n.mapping));
        }
        if n.filtering != Behaviour::AddressAndPortDependent {
            return bad(format!("nat.filtering = {:?}", n.filtering));
        }
        if n.ports == PortChoice::Sequential {
            return bad("nat.ports = sequential".into());
        }
        if n.max_mappings != d.max_mappings || n.full != FullPolicy::Drop {
            return bad("a mapping-table limit (nat.max_mappings / nat.full)".into());
        }
    }
    if !matches!(cfg.alg, AlgMode::Off | AlgMode::Correct) {
        return bad(format!(
            "alg = {:?} (only off and correct: the conntrack FTP helper)",
            cfg.alg
        ));
    }
    if !cfg.impairment.is_empty() {
        return bad("impairment".into());
    }
    if cfg.ifaces.iter().any(|i| i.mtu != 1500) {
        return bad("an MTU other than 1500".into());
    }
    for f in &cfg.forwards {
        if f.to_port != f.ports.0 {
            return bad(format!(
                "a forward that changes the port ({} -> {})",
                range(f.ports),
                f.to_port
            ));
        }
    }
    if cfg
        .firewall
        .rules
        .iter()
        .any(|r| r.state.contains(&CtState::Invalid))
    {
        return bad(
            "a firewall rule matching state invalid (invalid packets are always dropped)".into(),
        );
    }
    Ok(())
}

/// The nftables rule set for `cfg` (table `inet ftpnat`).
pub fn ruleset(cfg: &GatewayConfig) -> Result<String, Unsupported> {
    check(cfg)?;
    let (lan, wan) = (iface(cfg, Side::Inside), iface(cfg, Side::Outside));
    let (lan_if, wan_if, wan_ip) = (&lan.name, &wan.name, wan.addr.addr());
    let mut out = String::from("table inet ftpnat {\n");
    if cfg.alg == AlgMode::Correct {
        out.push_str("  ct helper ftp-standard { type \"ftp\" protocol tcp; }\n");
        let ports: Vec<String> = cfg.alg_ports.iter().map(u16::to_string).collect();
        out.push_str(&format!(
            "  chain helpers {{ type filter hook prerouting priority filter; tcp dport {{ {} }} ct helper set \"ftp-standard\"; }}\n",
            ports.join(", ")
        ));
    }
    // Destination NAT: forwards from outside, and from inside for hairpin.
    let hairpin = cfg.nat.as_ref().is_some_and(|n| n.hairpin);
    out.push_str(
        "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n",
    );
    for f in &cfg.forwards {
        let p = proto_kw(f.proto);
        out.push_str(&format!(
            "    iifname \"{wan_if}\" ip daddr {wan_ip} {p} dport {} dnat ip to {};\n",
            range(f.ports),
            f.to
        ));
        if hairpin {
            out.push_str(&format!(
                "    iifname \"{lan_if}\" ip daddr {wan_ip} {p} dport {} dnat ip to {};\n",
                range(f.ports),
                f.to
            ));
        }
    }
    out.push_str("  }\n");
    out.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
    );
    if let Some(n) = &cfg.nat {
        let random = if n.ports == PortChoice::Random {
            " random"
        } else {
            ""
        };
        out.push_str(&format!("    oifname \"{wan_if}\" masquerade{random};\n"));
        if hairpin {
            out.push_str(&format!(
                "    oifname \"{lan_if}\" ip saddr {} ct status dnat masquerade;\n",
                lan.addr.trunc()
            ));
        }
    }
    out.push_str("  }\n");
    // Traffic to the gateway itself.
    let unsolicited = if cfg.reject_unsolicited {
        "reject with tcp reset"
    } else {
        "drop"
    };
    out.push_str(&format!(
        "  chain input {{\n    type filter hook input priority filter; policy accept;\n    ct state established,related accept;\n    icmp type echo-request accept;\n    iifname \"{wan_if}\" meta l4proto tcp counter {unsolicited} comment \"ftpnat:unsolicited\";\n    iifname \"{wan_if}\" counter drop comment \"ftpnat:unsolicited\";\n  }}\n"
    ));
    // The firewall.
    let fw = &cfg.firewall;
    out.push_str(
        "  chain forward {\n    type filter hook forward priority filter; policy accept;\n",
    );
    out.push_str("    counter comment \"ftpnat:forwarded\";\n");
    out.push_str("    ct state invalid counter drop comment \"ftpnat:invalid\";\n");
    if fw.stateful {
        out.push_str("    ct state established,related accept;\n");
    }
    for (i, r) in fw.rules.iter().enumerate() {
        let mut m = Vec::new();
        match r.direction {
            Some(Direction::In) => m.push(format!("iifname \"{wan_if}\"")),
            Some(Direction::Out) => m.push(format!("iifname \"{lan_if}\"")),
            None => {}
        }
        if let Some(p) = r.proto {
            m.push(format!("meta l4proto {}", proto_kw(p)));
        }
        if let Some(n) = r.src {
            m.push(format!("ip saddr {n}"));
        }
        if let Some(n) = r.dst {
            m.push(format!("ip daddr {n}"));
        }
        if let Some(p) = r.sport {
            m.push(format!("th sport {}", range(p)));
        }
        if let Some(p) = r.dport {
            m.push(format!("th dport {}", range(p)));
        }
        if r.syn_only {
            m.push("tcp flags & (syn | ack) == syn".into());
        }
        if !r.state.is_empty() {
            let st: Vec<&str> = r
                .state
                .iter()
                .map(|s| match s {
                    CtState::New => "new",
                    CtState::Established => "established",
                    CtState::Related => "related",
                    CtState::Invalid => "invalid",
                })
                .collect();
            m.push(format!("ct state {{ {} }}", st.join(", ")));
        }
        let action = verdict(r.action.unwrap_or(Action::Accept), r.proto);
        out.push_str(&format!(
            "    {} counter {action} comment \"ftpnat:rule:{i}\";\n",
            m.join(" ")
        ));
    }
    out.push_str(&format!(
        "    iifname \"{wan_if}\" counter {} comment \"ftpnat:policy_in\";\n    iifname \"{lan_if}\" counter {} comment \"ftpnat:policy_out\";\n",
        verdict(fw.policy_in, None),
        verdict(fw.policy_out, None)
    ));
    out.push_str("  }\n}\n");
    Ok(out)
}

/// A kernel-engine gateway: its rule set is loaded; it runs in the kernel.
#[derive(Debug)]
pub struct KernelGateway {
    name: String,
    ns: Arc<crate::topology::Netns>,
    policy: (Action, Action),
    tracer: Option<super::trace::Tracer>,
}

/// Runs `nft` inside `ns`, feeding `input` on stdin.
pub fn nft(topo: &Topology, node: &str, args: &[&str], input: &str) -> std::io::Result<String> {
    let mut cmd = topo.command(node, "nft", args)?;
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot run nft ({e}): apt-get install -y nftables"),
        )
    })?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Syntax of a user's own rule set.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum RulesetFormat {
    /// nftables (`nft -f`).
    Nft,
    /// iptables-save output (`iptables-nft-restore`).
    Iptables,
}

impl RulesetFormat {
    /// iptables-save output starts with a `*table` header; anything else is
    /// taken for nftables.
    pub fn detect(text: &str) -> RulesetFormat {
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        // No nftables statement starts with `*`.
        if lines.next().is_some_and(|l| l.starts_with('*')) {
            RulesetFormat::Iptables
        } else {
            RulesetFormat::Nft
        }
    }

    /// The program and arguments that load (or, with `check`, only parse)
    /// a rule set of this syntax from stdin.
    pub fn loader(self, check: bool) -> (&'static str, Vec<&'static str>) {
        match (self, check) {
            (RulesetFormat::Nft, false) => ("nft", vec!["-f", "-"]),
            (RulesetFormat::Nft, true) => ("nft", vec!["-c", "-f", "-"]),
            (RulesetFormat::Iptables, false) => ("iptables-nft-restore", vec![]),
            // `--test` only parses: a jump to a chain that does not exist
            // passes it. Checks load for real, in a scratch namespace.
            (RulesetFormat::Iptables, true) => ("iptables-nft-restore", vec![]),
        }
    }

    /// The Debian package that provides the loader.
    pub fn package(self) -> &'static str {
        match self {
            RulesetFormat::Nft => "nftables",
            RulesetFormat::Iptables => "iptables",
        }
    }
}

/// A user's own rule set: one or more files, loaded in order.
#[derive(Debug, Clone)]
pub struct CustomRuleset {
    /// The files.
    pub parts: Vec<RulesetPart>,
}

/// One file of a user's rule set.
#[derive(Debug, Clone)]
pub struct RulesetPart {
    /// The file's contents.
    pub text: String,
    /// Its syntax.
    pub format: RulesetFormat,
}

/// Runs `program args` in `ns` with `input` on stdin; Ok(stdout), or
/// Err(stderr) when it fails (or cannot be started: the error names the
/// package to install).
pub fn run_loader(
    ns: &crate::topology::Netns,
    format: RulesetFormat,
    check: bool,
    input: &str,
) -> Result<String, String> {
    use std::io::Write;
    let (program, args) = format.loader(check);
    let mut cmd = std::process::Command::new(program);
    cmd.args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    ns.command(&mut cmd).map_err(|e| e.to_string())?;
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "cannot run {program} ({e}): apt-get install -y {}",
            format.package()
        )
    })?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim_end().to_string())
    }
}

/// What a kernel gateway runs besides its interfaces and rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelOptions<'a> {
    /// The user's own rule set instead of the generated one.
    pub custom: Option<&'a CustomRuleset>,
    /// More interfaces (bridges carrying no traffic), with an address.
    pub extra_interfaces: &'a [(String, Option<ipnet::Ipv4Net>)],
    /// Trace new TCP connections ([`super::trace`]).
    pub trace: bool,
}

impl KernelGateway {
    /// Loads the rule set for `cfg` — or `opts.custom`, the user's own rule
    /// set — into the gateway's namespace (which forwards already: the
    /// topology gave its interfaces addresses and set ip_forward there),
    /// after creating its extra interfaces, and applies non-default
    /// conntrack timeouts. The rule set is written to `dir`.
    pub fn start(
        topo: &Topology,
        cfg: &GatewayConfig,
        opts: KernelOptions<'_>,
        dir: &Path,
    ) -> Result<KernelGateway, String> {
        if !opts.extra_interfaces.is_empty() {
            let extra = opts.extra_interfaces.to_vec();
            topo.ns(&cfg.name)
                .run(move || -> std::io::Result<()> {
                    let nl = crate::topology::link::Netlink::open()?;
                    for (name, addr) in &extra {
                        nl.add_bridge(name)?;
                        if let Some(a) = addr {
                            nl.add_addr(name, ipnet::IpNet::V4(*a))?;
                        }
                        nl.up(name)?;
                    }
                    Ok(())
                })
                .and_then(|r| r)
                .map_err(|e| format!("gateway {}: extra interfaces: {e}", cfg.name))?;
        }
        match opts.custom {
            Some(r) => {
                for (i, part) in r.parts.iter().enumerate() {
                    let ext = match part.format {
                        RulesetFormat::Nft => "nft",
                        RulesetFormat::Iptables => "iptables",
                    };
                    let suffix = if i == 0 {
                        String::new()
                    } else {
                        format!("-{i}")
                    };
                    let _ =
                        std::fs::write(dir.join(format!("{}{suffix}.{ext}", cfg.name)), &part.text);
                    run_loader(topo.ns(&cfg.name), part.format, false, &part.text)
                        .map_err(|e| format!("gateway {}: loading its rule set: {e}", cfg.name))?;
                }
            }
            None => {
                let rules = ruleset(cfg).map_err(|e| e.to_string())?;
                let _ = std::fs::write(dir.join(format!("{}.nft", cfg.name)), &rules);
                nft(topo, &cfg.name, &["-f", "-"], &rules)
                    .map_err(|e| format!("gateway {}: loading its rule set: {e}", cfg.name))?;
            }
        }
        let t = cfg.nat.as_ref().map(|n| n.timeouts).unwrap_or_default();
        let d = Timeouts::default();
        let mut sysctls = Vec::new();
        if t.tcp_established != d.tcp_established {
            sysctls.push((
                "net.netfilter.nf_conntrack_tcp_timeout_established",
                t.tcp_established,
            ));
        }
        if t.udp != d.udp {
            sysctls.push(("net.netfilter.nf_conntrack_udp_timeout_stream", t.udp));
        }
        let ns = Arc::clone(topo.ns(&cfg.name));
        ns.run(|| -> std::io::Result<()> {
            for (k, v) in &sysctls {
                crate::topology::link::sysctl(k, &v.to_string())?;
            }
            Ok(())
        })
        .and_then(|r| r)
        .map_err(|e| format!("gateway {}: {e}", cfg.name))?;
        let tracer = if opts.trace {
            Some(
                super::trace::Tracer::start(&ns)
                    .map_err(|e| format!("gateway {}: {e}", cfg.name))?,
            )
        } else {
            None
        };
        Ok(KernelGateway {
            name: cfg.name.clone(),
            ns,
            policy: (cfg.firewall.policy_in, cfg.firewall.policy_out),
            tracer,
        })
    }

    /// Stops the trace (if one runs) and returns what it saw.
    pub fn take_trace(&mut self) -> Option<super::trace::GatewayTrace> {
        self.tracer.take().map(super::trace::Tracer::finish)
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counters from the tagged `counter` statements (forwarded, rule hits,
    /// firewall drops); the rest of [`Counters`] is sim-only and stays 0.
    pub fn counters(&self) -> Counters {
        let mut c = Counters::default();
        let json = {
            let mut cmd = std::process::Command::new("nft");
            cmd.args(["-j", "list", "table", "inet", "ftpnat"]);
            if self.ns.command(&mut cmd).is_err() {
                return c;
            }
            match cmd.output() {
                Ok(o) if o.status.success() => o.stdout,
                _ => return c,
            }
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&json) else {
            return c;
        };
        for item in v["nftables"].as_array().into_iter().flatten() {
            let rule = &item["rule"];
            let Some(comment) = rule["comment"].as_str() else {
                continue;
            };
            let packets = rule["expr"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|e| e["counter"]["packets"].as_u64())
                .unwrap_or(0);
            match comment {
                "ftpnat:forwarded" => c.forwarded = packets,
                // The sim engine's name for the same drop.
                "ftpnat:unsolicited" if packets > 0 => {
                    *c.dropped.entry("no mapping or forward".into()).or_default() += packets;
                }
                "ftpnat:invalid" => {
                    c.dropped
                        .insert("invalid (no flow, not a SYN)".into(), packets);
                }
                "ftpnat:policy_in" if self.policy.0 != Action::Accept => {
                    *c.dropped.entry("firewall".into()).or_default() += packets;
                    c.policy_hits += packets;
                }
                "ftpnat:policy_out" if self.policy.1 != Action::Accept => {
                    *c.dropped.entry("firewall".into()).or_default() += packets;
                    c.policy_hits += packets;
                }
                other => {
                    if let Some(i) = other
                        .strip_prefix("ftpnat:rule:")
                        .and_then(|i| i.parse::<usize>().ok())
                    {
                        if c.rule_hits.len() <= i {
                            c.rule_hits.resize(i + 1, 0);
                        }
                        c.rule_hits[i] = packets;
                    }
                }
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Firewall, Forward, Rule};

    fn cfg() -> GatewayConfig {
        GatewayConfig {
            nat: Some(NatConfig::default()),
            forwards: vec![Forward {
                proto: 6,
                ports: (60000, 60010),
                to: "192.168.1.2".parse().unwrap(),
                to_port: 60000,
            }],
            firewall: Firewall {
                rules: vec![Rule::seed_passive_range()],
                policy_in: Action::Drop,
                policy_out: Action::Accept,
                stateful: true,
            },
            alg: AlgMode::Correct,
            ..GatewayConfig::example()
        }
    }

    #[test]
    fn ruleset_expresses_forwards_masquerade_helper_and_seed_rule() {
        let r = ruleset(&cfg()).unwrap();
        assert!(r.contains("iifname \"wan0\" ip daddr 203.0.113.1 tcp dport 60000-60010 dnat ip to 192.168.1.2;"), "{r}");
        assert!(r.contains("oifname \"wan0\" masquerade;"), "{r}");
        assert!(
            r.contains("tcp dport { 21 } ct helper set \"ftp-standard\""),
            "{r}"
        );
        assert!(r.contains("iifname \"wan0\" meta l4proto tcp th dport 49152-65534 tcp flags & (syn | ack) == syn counter accept comment \"ftpnat:rule:0\";"), "{r}");
        assert!(
            r.contains("iifname \"wan0\" counter drop comment \"ftpnat:policy_in\";"),
            "{r}"
        );
    }

    #[test]
    fn unsupported_settings_are_named() {
        let mut c = cfg();
        c.nat.as_mut().unwrap().mapping = Behaviour::AddressDependent;
        assert_eq!(
            check(&c).unwrap_err().what,
            "nat.mapping = AddressDependent"
        );
        let mut c = cfg();
        c.alg = AlgMode::PasvOnly;
        assert!(ruleset(&c)
            .unwrap_err()
            .to_string()
            .contains("alg = PasvOnly"));
        let mut c = cfg();
        c.impairment.push(("wan0".into(), Default::default()));
        assert!(check(&c)
            .unwrap_err()
            .to_string()
            .contains("impairment is not expressible with the kernel engine"));
    }
}
