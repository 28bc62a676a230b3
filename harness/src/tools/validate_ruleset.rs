//! `ftpnat validate-ruleset FILE`: a battery of FTP-through-NAT checks run
//! with the user's own nftables rule set loaded in a gateway (kernel engine)
//! whose interface names and addresses are the user's:
//!
//! ```text
//!  lanclient ─┐                                    ┌─ client  (outside)
//!  server    ─┼─ <lan name> [gateway] <wan name> ──┼─ outside (an FTP server)
//! ```
//!
//! The inside server runs the reference server with the given passive
//! range. Each row is an ordinary scenario; a failing row carries the
//! probable cause in the user's terms. The rule set is first checked with
//! `nft -c` in a scratch namespace, so a syntax error is reported with nft's
//! line before anything runs.

use std::{net::Ipv4Addr, path::Path, sync::Arc};

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::runner::{self, RunOptions};
use crate::{
    engine::kernel::RulesetFormat,
    outcome::{ScenarioResult, Status},
    scenario::{self, resolve::ServerKind},
};

/// Where the rule set runs.
#[derive(Debug, Clone)]
pub struct Params {
    /// Outside interface name and address/prefix.
    pub wan: (String, Ipv4Net),
    /// Inside interface name and address/prefix.
    pub lan: (String, Ipv4Net),
    /// The FTP server's inside address.
    pub server: Ipv4Addr,
    /// The server's passive range.
    pub passive: (u16, u16),
    /// Which FTP server runs inside.
    pub server_kind: ServerKind,
    /// The rule set's syntax (`None`: detected from its contents).
    pub format: Option<RulesetFormat>,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            wan: ("wan0".into(), "203.0.113.1/24".parse().expect("literal")),
            lan: ("lan0".into(), "192.168.1.1/24".parse().expect("literal")),
            server: "192.168.1.2".parse().expect("literal"),
            passive: (60000, 60010),
            server_kind: ServerKind::Reference,
            format: None,
        }
    }
}

/// One row of the battery.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Short name.
    pub name: &'static str,
    /// What the rule set must do for it.
    pub needs: String,
    /// Whether the exit code depends on it (informational rows describe
    /// what a typical correct router still does not do).
    pub required: bool,
    /// pass / fail / error.
    pub status: Status,
    /// Why, in the user's terms, when it failed.
    pub cause: Option<String>,
}

/// Why validation could not run.
#[derive(Debug, thiserror::Error)]
pub enum RulesetError {
    /// The file cannot be read.
    #[error("{0}")]
    Read(String),
    /// nft rejects the rule set.
    #[error("{0}")]
    Load(String),
    /// The parameters do not fit together.
    #[error("{0}")]
    Params(String),
}

/// A free host address in `net` avoiding `taken`, starting at `.start`.
fn free(net: &Ipv4Net, start: u32, taken: &[Ipv4Addr]) -> Result<Ipv4Addr, RulesetError> {
    let base = u32::from(net.network());
    (start..start + 200)
        .map(|o| Ipv4Addr::from(base + o))
        .find(|a| net.contains(a) && *a != net.broadcast() && !taken.contains(a))
        .ok_or_else(|| RulesetError::Params(format!("no free address left in {net}")))
}

type BatteryRow = (&'static str, String, bool, &'static str, String);

struct Battery {
    rows: Vec<BatteryRow>,
}

fn battery(p: &Params) -> Result<Battery, RulesetError> {
    let (lo, hi) = p.passive;
    let wan_ip = p.wan.1.addr();
    if !p.lan.1.contains(&p.server) {
        return Err(RulesetError::Params(format!(
            "server {} is not inside lan {} (--server, --lan)",
            p.server, p.lan.1
        )));
    }
    let lanclient = free(&p.lan.1.trunc(), 50, &[p.lan.1.addr(), p.server])?;
    let client = free(&p.wan.1.trunc(), 10, &[wan_ip])?;
    let outside = free(&p.wan.1.trunc(), 2, &[wan_ip, client])?;
    let topology = format!(
        r#"
[[gateway]]
name = "gw"
lan = "{lan}"
wan = "{wan}"
lan_name = "{lan_name}"
wan_name = "{wan_name}"
@GATEWAY@

[[host]]
name = "server"
addr = "{server}/{lan_prefix}"
services = [22, 3306, 8080]
files = {{ "hello.txt" = "hello through the NAT\n" }}
server = {{ kind = "{kind}"@TLS@, config = {{ @SERVER@{timeouts} }} }}

[[host]]
name = "lanclient"
addr = "{lanclient}/{lan_prefix}"

[[host]]
name = "client"
addr = "{client}/{wan_prefix}"

[[host]]
name = "outside"
addr = "{outside}/{wan_prefix}"
files = {{ "hello.txt" = "hello through the NAT\n" }}
server = {{ kind = "reference", config = {{ passive_ports = [61000, 61010] }} }}
"#,
        kind = p.server_kind.name(),
        // A data connection that never comes fails the row in 3 s, not 30
        // (where the server has such a setting).
        timeouts = match p.server_kind {
            ServerKind::Reference | ServerKind::Vsftpd => ", timeouts = { data_connect = 3 }",
            ServerKind::Proftpd | ServerKind::PureFtpd => "",
        },
        lan = p.lan.1,
        wan = p.wan.1,
        lan_name = p.lan.0,
        wan_name = p.wan.0,
        server = p.server,
        lan_prefix = p.lan.1.prefix_len(),
        wan_prefix = p.wan.1.prefix_len(),
    );
    let login = |who: &str, target: String| {
        format!("[[step]]\nclient = \"{who}\"\nconnect = \"{target}:21\"\ntimeout_ms = 2000\nexpect = {{ code = 220 }}\n[[step]]\nlogin = \"anonymous\"\nexpect = {{ code = 230 }}\n")
    };
    let outside_login = login("client", wan_ip.to_string());
    let inside_login = login("lanclient", outside.to_string());
    let retr = |mode: &str| {
        format!("[[step]]\nretr = \"hello.txt\"\nmode = \"{mode}\"\ntimeout_ms = 3000\nexpect = {{ transfer = \"ok\", code = 226 }}\n")
    };
    let ports = format!("passive_ports = [{lo}, {hi}]");
    let masq = format!("masquerade_address = \"{wan_ip}\", {ports}");
    let range = format!("{lo}-{hi}");
    // Fallback: a range of one or two ports, held by as many sessions, so
    // the next PASV falls back to a kernel-chosen port outside the range.
    let small_hi = if hi > lo { lo + 1 } else { lo };
    let holders = usize::from(small_hi - lo) + 1;
    let mut fallback_steps = String::new();
    for c in 0..=holders {
        fallback_steps.push_str(&format!("[[step]]\nclient = \"c{c}\"\nhost = \"client\"\nconnect = \"{wan_ip}:21\"\ntimeout_ms = 2000\nexpect = {{ code = 220 }}\n[[step]]\nclient = \"c{c}\"\nlogin = \"anonymous\"\nexpect = {{ code = 230 }}\n[[step]]\nclient = \"c{c}\"\nsend = \"TYPE I\"\nexpect = {{ code = 200 }}\n"));
    }
    for c in 0..holders {
        fallback_steps.push_str(&format!("[[step]]\nclient = \"c{c}\"\nsend = \"PASV\"\nexpect = {{ code = 227, port_in = [{lo}, {small_hi}] }}\n"));
    }
    fallback_steps.push_str(&format!("[[step]]\nclient = \"c{holders}\"\nsend = \"PASV\"\nexpect = {{ code = 227, port_not_in = [{lo}, {small_hi}] }}\n[[step]]\nclient = \"c{holders}\"\nretr = \"hello.txt\"\nmode = \"pending\"\ntimeout_ms = 3000\nexpect = {{ transfer = \"ok\", code = 226 }}\n"));
    let near = format!(
        "1-1024,{}-{},{}-{},3306,5432,8080,8443",
        lo.saturating_sub(10).max(1025),
        lo.saturating_sub(1).max(1025),
        hi.saturating_add(1),
        hi.saturating_add(10)
    );
    let rows = vec![
        ("control-connection", format!("forward tcp 21 to {}", p.server), true, "port 21 is not forwarded to the server (or the forward chain drops it)", ports.clone(), outside_login.clone()),
        (
            "passive-pasv",
            format!("forward tcp {range} to {} (the server announces {wan_ip})", p.server),
            true,
            "the passive range is not (fully) forwarded, or the forward chain drops new connections to it",
            masq.clone(),
            format!("{outside_login}{}", retr("pasv")),
        ),
        ("passive-epsv", format!("forward tcp {range} (EPSV carries no address)"), true, "the passive range is not (fully) forwarded", masq.clone(), format!("{outside_login}{}", retr("epsv"))),
        (
            "range-reachable",
            format!("every port of {range} reaches the server"),
            true,
            "part of the passive range is not forwarded or is dropped",
            masq.clone(),
            format!("[[step]]\nscan = {{ from = \"client\", target = \"{wan_ip}\", ports = \"{range}\" }}\nexpect = {{ reachable = \"{range}\" }}\n"),
        ),
        (
            "exposure",
            format!("nothing reachable from outside but 21 and {range} (sampled)"),
            true,
            "something else is reachable from outside",
            masq.clone(),
            format!("[[step]]\nscan = {{ from = \"client\", target = \"{wan_ip}\", ports = \"{near}\" }}\nexpect = {{ open = \"21\" }}\n"),
        ),
        ("inside-client-passive", "masquerade inside clients going out".into(), true, "no masquerade (source NAT) on the way out, or the forward chain drops LAN traffic", ports.clone(), format!("{inside_login}{}", retr("pasv"))),
        (
            "inside-client-active",
            "an FTP ALG (ct helper on port 21) for inside clients' PORT".into(),
            false,
            "no FTP helper assigned (ct helper set), or related connections are not accepted",
            ports.clone(),
            format!("{inside_login}{}", retr("port")),
        ),
        (
            "passive-without-masquerade",
            "an FTP ALG rewriting the 227 of a server without masquerade".into(),
            false,
            "no FTP helper assigned to the forwarded port 21 (or related traffic dropped)",
            ports.clone(),
            format!("{outside_login}{}", retr("pasv")),
        ),
        (
            "ftps-passive",
            format!("FTPS (AUTH TLS, PROT P) from outside: the ALG is blind, so the masquerade address and the forwarded range ({range}) must carry it"),
            false,
            "with TLS the FTP helper cannot see the 227: the passive range must be forwarded and accepted by rules of its own, not only as 'related' traffic of the helper",
            format!("{masq}@WITH_TLS@"),
            format!("[[step]]\nclient = \"client\"\nconnect = \"{wan_ip}:21\"\ntimeout_ms = 2000\nexpect = {{ code = 220 }}\n[[step]]\nauth_tls = true\nexpect = {{ code = 234 }}\n[[step]]\nsend = \"PBSZ 0\"\nexpect = {{ code = 200 }}\n[[step]]\nsend = \"PROT P\"\nexpect = {{ code = 200 }}\n[[step]]\nlogin = \"anonymous\"\nexpect = {{ code = 230 }}\n{}", retr("pasv")),
        ),
        (
            "hairpin",
            format!("inside clients reaching the server via {wan_ip}"),
            false,
            "no hairpin NAT (DNAT from the LAN side plus masquerade back into the LAN)",
            masq.clone(),
            format!("{}{}", login("lanclient", wan_ip.to_string()), retr("pasv")),
        ),
        (
            "fallback-port",
            format!("a passive port outside {range} reachable when the range runs out (servers that fall back, like ProFTPD)"),
            false,
            "the port the server falls back to (outside the range) is not forwarded: behind this rule set a server that falls back loses those transfers — use passive_exhausted = \"wait\" or \"refuse\", or a larger range",
            format!("masquerade_address = \"{wan_ip}\", passive_ports = [{lo}, {small_hi}], passive_exhausted = \"fallback\""),
            fallback_steps,
        ),
    ];
    let rows = rows
        .into_iter()
        .map(|(n, needs, req, cause, server, steps)| {
            (n, needs, req, cause, {
                let (server, tls) = match server.strip_suffix("@WITH_TLS@") {
                    Some(s) => (s.to_string(), ", tls = true"),
                    None => (server, ""),
                };
                format!(
                    "{}{steps}",
                    topology.replace("@SERVER@", &server).replace("@TLS@", tls)
                )
            })
        })
        .collect();
    Ok(Battery { rows })
}

/// Checks that the loader (nft, or iptables-nft-restore) accepts the rule
/// set, in a scratch namespace.
pub fn check_loads(rules: &str, file: &Path, format: RulesetFormat) -> Result<(), RulesetError> {
    let ns = crate::topology::Netns::create(&format!("{}-nftcheck", crate::topology::new_prefix()))
        .map_err(|e| RulesetError::Load(e.to_string()))?;
    let ns = Arc::new(ns);
    match crate::engine::kernel::run_loader(&ns, format, true, rules) {
        Ok(_) => Ok(()),
        Err(msg) => {
            let (program, _) = format.loader(true);
            let name = file.display().to_string();
            let mut msg = msg.replace("/dev/stdin", &name);
            // iptables-restore names the line on a line of its own
            // ("Error occurred at line: N") or at the end ("… at line N").
            let line = msg.lines().find_map(|l| {
                let (_, n) = l.rsplit_once("at line")?;
                let n = n.trim_start_matches(':').trim();
                n.parse::<usize>().ok()
            });
            if let (RulesetFormat::Iptables, Some(line)) = (format, line) {
                let what = msg
                    .lines()
                    .next()
                    .unwrap_or("")
                    .replace(&format!(" at line {line}"), "");
                msg = format!("{name}:{line}: {what}");
            }
            Err(RulesetError::Load(format!(
                "{program} rejects the rule set:\n{}",
                msg.trim_end()
            )))
        }
    }
}

/// The battery's runs, for a report: the scenarios as run and their
/// results (artifacts, with pcaps, in `artifacts/<row>/`).
#[derive(Debug)]
pub struct Runs {
    /// Rows in order.
    pub rows: Vec<Row>,
    /// One scenario per row.
    pub scenarios: Vec<crate::scenario::Scenario>,
    /// One result per row.
    pub results: Vec<ScenarioResult>,
}

/// Runs the battery against the rule set in `file`.
pub fn validate(file: &Path, params: &Params, jobs: usize) -> Result<Vec<Row>, RulesetError> {
    validate_kept(file, params, jobs, None).map(|r| r.rows)
}

/// As [`validate`]; with `artifacts`, every row's artifacts (pcaps, the
/// gateway's nft trace) are kept there for the HTML report.
pub fn validate_kept(
    file: &Path,
    params: &Params,
    jobs: usize,
    artifacts: Option<&Path>,
) -> Result<Runs, RulesetError> {
    let rules = std::fs::read_to_string(file)
        .map_err(|e| RulesetError::Read(format!("{}: {e}", file.display())))?;
    let format = params
        .format
        .unwrap_or_else(|| RulesetFormat::detect(&rules));
    check_loads(&rules, file, format)?;
    // The battery's scenarios name the rule set beside themselves (a
    // scenario reads nothing outside its own folder).
    let gateway = format!(
        "engine = \"kernel\"\nruleset = \"{RULESET_COPY}\"\nruleset_format = \"{}\"",
        match format {
            RulesetFormat::Nft => "nft",
            RulesetFormat::Iptables => "iptables",
        }
    );
    run_battery(params, jobs, &gateway, Some(&rules), artifacts)
}

/// The name of the user's rule set copied beside the battery's scenarios.
const RULESET_COPY: &str = "user-ruleset";

/// Runs the battery through the user's router image instead of a rule set
/// (`engine = "image"`: the image's entrypoint configures its own NAT and
/// firewall on the interfaces ftpnat wires, then prints a line with
/// "ready").
pub fn validate_image(image: &str, params: &Params, jobs: usize) -> Result<Vec<Row>, RulesetError> {
    validate_image_kept(image, params, jobs, None).map(|r| r.rows)
}

/// As [`validate_image`], keeping artifacts as [`validate_kept`] does.
pub fn validate_image_kept(
    image: &str,
    params: &Params,
    jobs: usize,
    artifacts: Option<&Path>,
) -> Result<Runs, RulesetError> {
    run_battery(
        params,
        jobs,
        &format!("engine = \"image\"\nimage = \"{image}\""),
        None,
        artifacts,
    )
}

fn run_battery(
    params: &Params,
    jobs: usize,
    gateway: &str,
    rules: Option<&str>,
    artifacts: Option<&Path>,
) -> Result<Runs, RulesetError> {
    let b = battery(params)?;
    let dir =
        crate::topology::netns::run_tempdir().map_err(|e| RulesetError::Read(e.to_string()))?;
    if let Some(r) = rules {
        std::fs::write(dir.path().join(RULESET_COPY), r)
            .map_err(|e| RulesetError::Read(e.to_string()))?;
    }
    let mut scenarios = Vec::new();
    for (name, _, _, _, body) in &b.rows {
        let text = format!("name = \"{name}\"\n{}", body.replace("@GATEWAY@", gateway));
        let path = dir.path().join(format!("{name}.toml"));
        scenarios
            .push(scenario::parse(&text, &path).map_err(|d| RulesetError::Params(d.to_string()))?);
    }
    let results: Vec<ScenarioResult> = runner::run_all(
        &scenarios,
        &RunOptions {
            no_pcap: artifacts.is_none(),
            artifacts: artifacts.map(Path::to_path_buf),
            ..Default::default()
        },
        jobs,
        &|_, _| {},
    );
    let rows = b
        .rows
        .into_iter()
        .zip(&results)
        .map(|((name, needs, required, cause, _), r)| {
            // The failed step's own message (the user did not write these scenarios).
            let detail = r
                .steps
                .iter()
                .find(|s| s.status != Status::Pass)
                .and_then(|s| s.failure.clone())
                .or_else(|| {
                    r.failure
                        .as_deref()
                        .map(|f| f.lines().next().unwrap_or("").to_string())
                });
            Row {
                name,
                needs,
                required,
                status: r.status,
                cause: detail.map(|d| format!("{cause} ({d})")),
            }
        })
        .collect();
    Ok(Runs {
        rows,
        scenarios,
        results,
    })
}

/// The settings of a validation, from the command line or a TOML file:
///
/// ```toml
/// ruleset = "router.nft"          # relative to this file
/// format = "nft"                  # or "iptables"; default: detected
/// wan = "eth0=203.0.113.1/24"
/// lan = "eth1=192.168.1.1/24"
/// server = "192.168.1.2"
/// passive = "60000-60010"
/// server_kind = "reference"       # vsftpd, proftpd, pure-ftpd
/// ```
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The rule set file.
    pub ruleset: Option<std::path::PathBuf>,
    /// Its syntax.
    pub format: Option<RulesetFormat>,
    /// Outside interface, `NAME=ADDR/PREFIX`.
    pub wan: Option<String>,
    /// Inside interface, `NAME=ADDR/PREFIX`.
    pub lan: Option<String>,
    /// The server's inside address.
    pub server: Option<Ipv4Addr>,
    /// The passive range, `LO-HI`.
    pub passive: Option<String>,
    /// The server inside.
    pub server_kind: Option<ServerKind>,
}

impl Settings {
    /// Reads a TOML settings file; `ruleset` is resolved against its folder.
    /// Errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut s: Settings = toml::from_str(&text).map_err(|e| {
            let at = e
                .span()
                .map(|sp| {
                    let (line, col) = ftpnat_server::config::line_col(&text, sp.start);
                    format!(":{line}:{col}")
                })
                .unwrap_or_default();
            format!("{}{at}: {}", path.display(), e.message())
        })?;
        match &s.ruleset {
            None => {
                return Err(format!(
                    "{}: `ruleset = \"FILE\"` is missing",
                    path.display()
                ))
            }
            Some(r) => s.ruleset = Some(path.parent().unwrap_or(Path::new(".")).join(r)),
        }
        // The file's own values, checked where they are written.
        if let Err(e) = s.params() {
            let key = e
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .next()
                .unwrap_or("");
            let at = ftpnat_server::config::key_position(&text, key)
                .map(|(l, c)| format!(":{l}:{c}"))
                .unwrap_or_default();
            return Err(format!("{}{at}: {e}", path.display()));
        }
        Ok(s)
    }

    /// These settings, with `base` filling what they leave unset.
    pub fn over(self, base: Settings) -> Settings {
        Settings {
            ruleset: self.ruleset.or(base.ruleset),
            format: self.format.or(base.format),
            wan: self.wan.or(base.wan),
            lan: self.lan.or(base.lan),
            server: self.server.or(base.server),
            passive: self.passive.or(base.passive),
            server_kind: self.server_kind.or(base.server_kind),
        }
    }

    /// Validated parameters (defaults: `Params::default()`).
    pub fn params(&self) -> Result<Params, String> {
        let d = Params::default();
        let passive = match &self.passive {
            None => d.passive,
            Some(p) => {
                let range =
                    scenario::resolve::parse_ports(p).map_err(|e| format!("passive: {e}"))?;
                let [(lo, hi)] = range[..] else {
                    return Err(format!("passive {p:?}: one range like 60000-60010"));
                };
                (lo, hi)
            }
        };
        Ok(Params {
            wan: match &self.wan {
                Some(w) => parse_iface(w).map_err(|e| format!("wan: {e}"))?,
                None => d.wan,
            },
            lan: match &self.lan {
                Some(l) => parse_iface(l).map_err(|e| format!("lan: {e}"))?,
                None => d.lan,
            },
            server: self.server.unwrap_or(d.server),
            passive,
            server_kind: self.server_kind.unwrap_or(d.server_kind),
            format: self.format,
        })
    }
}

/// Parses `NAME=ADDR/PREFIX`.
pub fn parse_iface(s: &str) -> Result<(String, Ipv4Net), String> {
    let (name, net) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=ADDRESS/PREFIX, e.g. eth0=203.0.113.1/24"))?;
    let net: Ipv4Net = net
        .parse()
        .map_err(|_| format!("{net:?} is not an IPv4 address/prefix"))?;
    if name.is_empty() || name.len() > 15 {
        return Err(format!("interface name {name:?} must be 1-15 characters"));
    }
    Ok((name.to_string(), net))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_avoid_the_users_hosts() {
        let net: Ipv4Net = "10.0.0.0/24".parse().unwrap();
        assert_eq!(
            free(&net, 50, &["10.0.0.50".parse().unwrap()])
                .unwrap()
                .to_string(),
            "10.0.0.51"
        );
        assert!(parse_iface("eth1=192.168.8.1/24").is_ok());
        assert!(parse_iface("eth1").is_err());
        let p = Params {
            server: "10.9.9.9".parse().unwrap(),
            ..Default::default()
        };
        assert!(battery(&p).is_err());
    }
}
