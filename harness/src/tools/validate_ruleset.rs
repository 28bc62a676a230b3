//! `ftpnat validate-ruleset FILE…`: a battery of FTP-through-NAT checks run
//! with the user's own rule set loaded in a gateway (kernel engine) whose
//! interface names and addresses are the user's:
//!
//! ```text
//!  lanclient ─┐                                    ┌─ client  (outside)
//!  server    ─┼─ <lan name> [gateway] <wan name> ──┼─ outside (an FTP server)
//! ```
//!
//! The pipeline: the files are read as the router exported them and edited
//! to load here ([`crate::ruleset::prepare`]: includes, fw4 flowtables,
//! missing ct helpers, iptables-nft tables, interface names the gateway
//! lacks — each a warning); they are test-loaded in a scratch namespace
//! (a refusal is exit 2 with the loader's message at the user's file and
//! line, and what to do when it is about this machine); then each row of
//! [`battery`] runs as an ordinary scenario with the gateway tracing new
//! connections, and [`report`] turns the results into rows with their
//! cause and the rule (file:line) that dropped, rejected or failed to
//! DNAT the probe.

mod battery;
pub mod report;

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use ipnet::Ipv4Net;

use crate::{
    engine::kernel::RulesetFormat,
    outcome::{ScenarioResult, Status},
    ruleset::{self, host, PrepareError, Prepared},
    runner::{self, RunOptions},
    scenario::{self, resolve::ServerKind},
};
pub use report::{ErrorReport, Outcome, Report, RowReport};

/// An interface of the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Name.
    pub name: String,
    /// Address/prefix (a /32 for a PPPoE WAN).
    pub addr: Ipv4Net,
}

impl std::fmt::Display for Iface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.addr)
    }
}

/// Where the rule set runs.
#[derive(Debug, Clone)]
pub struct Params {
    /// Outside interfaces; the first carries the test clients.
    pub wan: Vec<Iface>,
    /// Inside interfaces; the one holding `server` carries the test hosts.
    pub lan: Vec<Iface>,
    /// The FTP server's inside address.
    pub server: Ipv4Addr,
    /// The server's passive range.
    pub passive: (u16, u16),
    /// Which FTP server runs inside.
    pub server_kind: ServerKind,
    /// Whether the real server announces the public address (masquerade);
    /// `None`: not declared, assumed yes.
    pub server_masquerade: Option<bool>,
    /// More router service ports to probe (besides 22, 23, 53, 80, 443, 8080).
    pub router_services: Vec<u16>,
    /// The rule set's syntax (`None`: detected per file).
    pub format: Option<RulesetFormat>,
    /// Folders searched for relative includes after the rule set's own.
    pub include_dirs: Vec<PathBuf>,
    /// Run only these rows.
    pub rows: Option<Vec<String>>,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            wan: vec![Iface {
                name: "wan0".into(),
                addr: "203.0.113.1/24".parse().expect("literal"),
            }],
            lan: vec![Iface {
                name: "lan0".into(),
                addr: "192.168.1.1/24".parse().expect("literal"),
            }],
            server: "192.168.1.2".parse().expect("literal"),
            passive: (60000, 60010),
            server_kind: ServerKind::Reference,
            server_masquerade: None,
            router_services: Vec::new(),
            format: None,
            include_dirs: Vec::new(),
            rows: None,
        }
    }
}

impl Params {
    /// The inside interface holding the server.
    fn lan_main(&self) -> Result<&Iface, ValidateError> {
        self.lan
            .iter()
            .find(|l| l.addr.contains(&self.server))
            .ok_or_else(|| {
                ValidateError::Params(format!(
                    "server {} is not inside lan {} (--server, --lan)",
                    self.server,
                    self.lan
                        .iter()
                        .map(|l| l.addr.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// Every interface name the test gateway has.
    pub fn interface_names(&self) -> Vec<String> {
        self.lan
            .iter()
            .chain(&self.wan)
            .map(|i| i.name.clone())
            .collect()
    }
}

/// Why validation could not run (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// A file cannot be read, or the files do not fit together.
    #[error("{0}")]
    Read(String),
    /// The loader (nft, iptables-nft-restore) refuses the rule set.
    #[error("{message}{}", .caveat.as_ref().map_or(String::new(), |c| format!("\n  note: {c}")))]
    Load {
        /// Its message, at the user's file and line.
        message: String,
        /// When it is about this machine rather than the rule set.
        caveat: Option<String>,
    },
    /// `nft list ruleset` output with tables only iptables-save can give.
    #[error("{0}")]
    IptablesNft(String),
    /// The parameters do not fit together.
    #[error("{0}")]
    Params(String),
    /// Something on this machine is missing or failed (namespaces, tools).
    #[error("{0}")]
    Host(String),
}

impl ValidateError {
    /// The JSON `error` kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ValidateError::Read(_) => "read",
            ValidateError::Load { .. } => "load",
            ValidateError::IptablesNft(_) => "iptables-nft",
            ValidateError::Params(_) => "input",
            ValidateError::Host(_) => "host",
        }
    }

    /// The message without the note about this machine.
    pub fn message(&self) -> String {
        match self {
            ValidateError::Load { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// The note about this machine, if any.
    pub fn caveat(&self) -> Option<&str> {
        match self {
            ValidateError::Load { caveat, .. } => caveat.as_deref(),
            _ => None,
        }
    }
}

impl From<PrepareError> for ValidateError {
    fn from(e: PrepareError) -> ValidateError {
        match e {
            PrepareError::IptablesNft { .. } => ValidateError::IptablesNft(e.to_string()),
            PrepareError::Source(_) | PrepareError::Files(_) => ValidateError::Read(e.to_string()),
        }
    }
}

/// The message of a loader, positioned in the user's files.
fn load_error(p: &Prepared, file: usize, msg: &str, v: &host::Versions) -> ValidateError {
    let f = &p.files[file];
    let (program, _) = f.syntax.loader(false);
    let mut msg = f.source.map_message(msg);
    if f.syntax == RulesetFormat::Iptables {
        // iptables-restore names the line on a line of its own ("Error
        // occurred at line: N") or at the end ("… at line N").
        let line = msg.lines().find_map(|l| {
            let (_, n) = l.rsplit_once("at line")?;
            n.trim_start_matches(':').trim().parse::<usize>().ok()
        });
        if let Some(line) = line {
            let what = msg
                .lines()
                .next()
                .unwrap_or("")
                .replace(&format!(" at line {line}"), "");
            let at = f.source.locate(line).unwrap_or_else(|| line.to_string());
            msg = format!("{at}: {what}");
        }
    }
    ValidateError::Load {
        caveat: host::caveat(&msg, v),
        message: format!("{program} rejects the rule set:\n{}", msg.trim_end()),
    }
}

/// Reads, edits and test-loads the rule set (nothing runs yet).
pub fn prepare(files: &[PathBuf], params: &Params) -> Result<Prepared, ValidateError> {
    battery::addresses(params)?;
    let names = params.interface_names();
    let mut scratch = host::Scratch::create(&names)
        .map_err(|e| ValidateError::Host(format!("scratch namespace: {e}")))?;
    let prepared = ruleset::prepare(
        files,
        params.format,
        &params.include_dirs,
        &names,
        &mut scratch,
    )?;
    scratch
        .add_interfaces(&prepared.placeholders)
        .map_err(|e| ValidateError::Host(format!("placeholder interfaces: {e}")))?;
    let v = host::Versions::here();
    for (i, f) in prepared.files.iter().enumerate() {
        scratch
            .load(f.syntax, &f.text)
            .map_err(|m| load_error(&prepared, i, &m, &v))?;
    }
    Ok(prepared)
}

/// The name of the user's rule set copied beside the battery's scenarios
/// (a scenario reads nothing outside its own folder).
const RULESET_COPY: &str = "user-ruleset";

/// The battery's runs, for a report: the verdict, and the scenarios as
/// run with their results (with `artifacts`, each row's pcaps, nft trace
/// and logs are kept in `artifacts/<row>/`).
#[derive(Debug)]
pub struct Runs {
    /// The verdict.
    pub report: Report,
    /// One scenario per row.
    pub scenarios: Vec<crate::scenario::Scenario>,
    /// One result per row.
    pub results: Vec<ScenarioResult>,
}

/// Runs the battery against the rule set in `files` (one nft file and/or
/// one iptables-save file); with `artifacts`, rows' artifacts are kept.
pub fn validate(
    files: &[PathBuf],
    params: &Params,
    jobs: usize,
    artifacts: Option<&Path>,
) -> Result<Runs, ValidateError> {
    let prepared = prepare(files, params)?;
    let mut names = Vec::new();
    let mut copies = Vec::new();
    for (i, f) in prepared.files.iter().enumerate() {
        let ext = match f.syntax {
            RulesetFormat::Nft => "nft",
            RulesetFormat::Iptables => "iptables",
        };
        let name = format!("{RULESET_COPY}-{i}.{ext}");
        names.push(format!("\"{name}\""));
        copies.push((name, f.text.clone()));
    }
    let extra = if prepared.placeholders.is_empty() {
        String::new()
    } else {
        // Appended to the battery's own extra interfaces below.
        prepared
            .placeholders
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let gateway = format!(
        "engine = \"kernel\"\nrulesets = [{}]\ntrace = true\n@EXTRA@",
        names.join(", ")
    );
    let syntaxes = prepared
        .files
        .iter()
        .map(|f| match f.syntax {
            RulesetFormat::Nft => "nft".to_string(),
            RulesetFormat::Iptables => "iptables".to_string(),
        })
        .collect();
    run_battery(
        params,
        jobs,
        artifacts,
        &gateway,
        &extra,
        &copies,
        Some(&prepared),
        report::Parameters {
            ruleset: files.iter().map(|f| f.display().to_string()).collect(),
            image: None,
            input: syntaxes,
            ..parameters(params)
        },
    )
}

/// Runs the battery through the user's router image instead of a rule set
/// (`engine = "image"`: the image's entrypoint configures its own NAT and
/// firewall on the interfaces ftpnat wires, then prints a line with
/// "ready").
pub fn validate_image(
    image: &str,
    params: &Params,
    jobs: usize,
    artifacts: Option<&Path>,
) -> Result<Runs, ValidateError> {
    battery::addresses(params)?;
    run_battery(
        params,
        jobs,
        artifacts,
        &format!("engine = \"image\"\nimage = \"{image}\""),
        "",
        &[],
        None,
        report::Parameters {
            image: Some(image.to_string()),
            ..parameters(params)
        },
    )
}

fn parameters(p: &Params) -> report::Parameters {
    report::Parameters {
        ruleset: Vec::new(),
        image: None,
        input: Vec::new(),
        wan: p.wan.iter().map(Iface::to_string).collect(),
        lan: p.lan.iter().map(Iface::to_string).collect(),
        server: p.server.to_string(),
        passive: format!("{}-{}", p.passive.0, p.passive.1),
        server_kind: p.server_kind.name().into(),
        server_masquerade: match p.server_masquerade {
            Some(true) => "yes",
            Some(false) => "no",
            None => "assumed",
        }
        .into(),
        router_services: battery::router_ports(p),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_battery(
    params: &Params,
    jobs: usize,
    artifacts: Option<&Path>,
    gateway: &str,
    placeholders: &str,
    copies: &[(String, String)],
    prepared: Option<&Prepared>,
    parameters: report::Parameters,
) -> Result<Runs, ValidateError> {
    let rows = battery::rows(params)?;
    let dir =
        crate::topology::netns::run_tempdir().map_err(|e| ValidateError::Host(e.to_string()))?;
    for (name, text) in copies {
        std::fs::write(dir.path().join(name), text)
            .map_err(|e| ValidateError::Host(e.to_string()))?;
    }
    let mut scenarios = Vec::new();
    for r in &rows {
        let mut text = format!(
            "name = \"{}\"\n{}",
            r.name,
            r.scenario.replace("@GATEWAY@", gateway)
        );
        // Placeholder interfaces join the battery's own extra interfaces.
        text = match (text.find("extra_interfaces = ["), placeholders.is_empty()) {
            (_, true) => text.replace("@EXTRA@", ""),
            (Some(i), false) => {
                let at = i + "extra_interfaces = [".len();
                let mut t = text.replace("@EXTRA@", "");
                t.insert_str(at, &format!("{placeholders}, "));
                t
            }
            (None, false) => {
                text.replace("@EXTRA@", &format!("extra_interfaces = [{placeholders}]\n"))
            }
        };
        let path = dir.path().join(format!("{}.toml", r.name));
        scenarios
            .push(scenario::parse(&text, &path).map_err(|d| ValidateError::Params(d.to_string()))?);
    }
    let _bar = crate::progress::Guard::start(scenarios.len() as u64, "validate-ruleset");
    let results: Vec<ScenarioResult> = runner::run_all(
        &scenarios,
        &RunOptions {
            no_pcap: artifacts.is_none(),
            artifacts: artifacts.map(Path::to_path_buf),
            ..Default::default()
        },
        jobs,
        &|_, r| {
            crate::progress::message(&r.name);
            crate::progress::inc(1);
        },
    );
    let router: Vec<Ipv4Addr> = params.wan.iter().map(|w| w.addr.addr()).collect();
    let mut out = Vec::new();
    for (spec, r) in rows.iter().zip(&results) {
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
        let pass = r.status == Status::Pass;
        let blocked_by = match (pass, prepared, r.traces.get("gw")) {
            (false, Some(p), Some(t)) => report::blocked(
                spec.probe,
                &t.monitor,
                &report::Listing::parse(&t.listing),
                p,
                &router,
            ),
            _ => Vec::new(),
        };
        out.push(RowReport {
            name: spec.name,
            needs: spec.needs.clone(),
            required: spec.required,
            result: match (pass, spec.required) {
                (true, _) => Outcome::Pass,
                (false, true) => Outcome::Fail,
                (false, false) => Outcome::No,
            },
            cause: (!pass).then(|| match detail {
                Some(d) => format!("{} ({d})", spec.cause),
                None => spec.cause.clone(),
            }),
            shared_cause: None,
            blocked_by,
        });
    }
    let shared_causes = shared_causes(&mut out, params);
    let fail = out.iter().filter(|r| r.result == Outcome::Fail).count();
    let summary = report::Summary {
        rows: out.len(),
        pass: out.iter().filter(|r| r.result == Outcome::Pass).count(),
        fail,
        no: out.iter().filter(|r| r.result == Outcome::No).count(),
    };
    let report = Report {
        parameters,
        host: host::Versions::here(),
        warnings: prepared.map(|p| p.warnings.clone()).unwrap_or_default(),
        rows: out,
        shared_causes,
        summary,
        exit_code: u8::from(fail > 0),
    };
    Ok(Runs {
        report,
        scenarios,
        results,
    })
}

/// One cause for rows that fail for the same reason.
fn shared_causes(rows: &mut [RowReport], p: &Params) -> Vec<report::SharedCause> {
    let result = |name: &str| rows.iter().find(|r| r.name == name).map(|r| r.result);
    let failed = |name: &str| matches!(result(name), Some(Outcome::Fail | Outcome::No));
    let mut out = Vec::new();
    // Passive mode carried by the FTP helper alone while the server
    // masquerades: Linux's helper ignores a 227 naming the public address.
    if p.server_masquerade != Some(false)
        && failed("passive-pasv")
        && result("passive-without-masquerade") == Some(Outcome::Pass)
        && result("passive-epsv") == Some(Outcome::Pass)
        && failed("range-reachable")
    {
        let (lo, hi) = p.passive;
        let explained: Vec<&'static str> = ["passive-pasv", "range-reachable", "ftps-passive"]
            .into_iter()
            .filter(|n| failed(n))
            .collect();
        for r in rows.iter_mut().filter(|r| explained.contains(&r.name)) {
            r.cause = None;
            r.shared_cause = Some("helper-carries-passive".into());
        }
        out.push(report::SharedCause {
            id: "helper-carries-passive",
            text: format!(
                "this rule set carries passive mode with the FTP helper alone (data connections are accepted only as \"related\"; {lo}-{hi} itself is not forwarded), and the server announces the public address (masquerade). Linux's FTP helper (nf_conntrack_ftp) ignores a 227 that names another address than the server's own, so PASV finds nothing expected — EPSV and a server without masquerade work. Either forward and accept {lo}-{hi} to {server}, or run the server without masquerade and check it as it runs: --server-masquerade no",
                server = p.server
            ),
            rows: explained,
        });
    }
    out
}

/// The settings of a validation, from the command line or a TOML file:
///
/// ```toml
/// ruleset = "router.nft"            # relative to this file; or a list:
/// # ruleset = ["router.nft", "router.iptables"]
/// input = "nft"                     # or "iptables"; default: detected
/// wan = "eth0=203.0.113.1/24"       # or a list of them
/// lan = ["eth1=192.168.1.1/24", "guest=192.168.2.1/24"]
/// server = "192.168.1.2"
/// passive = "60000-60010"
/// server_kind = "reference"         # vsftpd, proftpd, pure-ftpd
/// server_masquerade = true          # does the server announce the WAN address?
/// router_services = [2222, 8443]    # more of the router's own ports to probe
/// includepath = ["includes"]        # relative to this file
/// ```
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The rule set file(s).
    #[serde(default, deserialize_with = "one_or_many")]
    pub ruleset: Vec<PathBuf>,
    /// Its syntax (`format` is the older name).
    #[serde(alias = "format")]
    pub input: Option<RulesetFormat>,
    /// Outside interfaces, `NAME=ADDR/PREFIX`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub wan: Vec<String>,
    /// Inside interfaces, `NAME=ADDR/PREFIX`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub lan: Vec<String>,
    /// The server's inside address.
    pub server: Option<Ipv4Addr>,
    /// The passive range, `LO-HI`.
    pub passive: Option<String>,
    /// The server inside.
    pub server_kind: Option<ServerKind>,
    /// Whether the server announces the public address.
    pub server_masquerade: Option<bool>,
    /// More router service ports to probe.
    #[serde(default)]
    pub router_services: Vec<u16>,
    /// Include folders.
    #[serde(default, deserialize_with = "one_or_many")]
    pub includepath: Vec<PathBuf>,
}

fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        One(T),
        Many(Vec<T>),
    }
    Ok(
        match <OneOrMany<T> as serde::Deserialize>::deserialize(d)? {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        },
    )
}

impl Settings {
    /// Reads a TOML settings file; paths are resolved against its folder.
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
        if s.ruleset.is_empty() {
            return Err(format!(
                "{}: `ruleset = \"FILE\"` is missing",
                path.display()
            ));
        }
        let folder = path.parent().unwrap_or(Path::new("."));
        s.ruleset = s.ruleset.iter().map(|r| folder.join(r)).collect();
        s.includepath = s.includepath.iter().map(|r| folder.join(r)).collect();
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
        fn or<T>(a: Vec<T>, b: Vec<T>) -> Vec<T> {
            if a.is_empty() {
                b
            } else {
                a
            }
        }
        Settings {
            ruleset: or(self.ruleset, base.ruleset),
            input: self.input.or(base.input),
            wan: or(self.wan, base.wan),
            lan: or(self.lan, base.lan),
            server: self.server.or(base.server),
            passive: self.passive.or(base.passive),
            server_kind: self.server_kind.or(base.server_kind),
            server_masquerade: self.server_masquerade.or(base.server_masquerade),
            router_services: or(self.router_services, base.router_services),
            includepath: or(self.includepath, base.includepath),
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
        let ifaces = |v: &[String], key: &str, default: Vec<Iface>| -> Result<Vec<Iface>, String> {
            if v.is_empty() {
                return Ok(default);
            }
            v.iter()
                .map(|s| parse_iface(s).map_err(|e| format!("{key}: {e}")))
                .collect()
        };
        let wan = ifaces(&self.wan, "wan", d.wan)?;
        let lan = ifaces(&self.lan, "lan", d.lan)?;
        let mut names: Vec<&str> = wan.iter().chain(&lan).map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "lan: interface {} is given twice (--lan, --wan)",
                w[0]
            ));
        }
        if self.router_services.contains(&0) {
            return Err("router_services: port 0".into());
        }
        Ok(Params {
            wan,
            lan,
            server: self.server.unwrap_or(d.server),
            passive,
            server_kind: self.server_kind.unwrap_or(d.server_kind),
            server_masquerade: self.server_masquerade,
            router_services: self.router_services.clone(),
            format: self.input,
            include_dirs: self.includepath.clone(),
            rows: None,
        })
    }
}

/// Parses `NAME=ADDR/PREFIX`.
pub fn parse_iface(s: &str) -> Result<Iface, String> {
    let (name, net) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=ADDRESS/PREFIX, e.g. eth0=203.0.113.1/24"))?;
    let addr: Ipv4Net = net
        .parse()
        .map_err(|_| format!("{net:?} is not an IPv4 address/prefix"))?;
    if name.is_empty()
        || name.len() > 15
        || name == "lo"
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(format!(
            "interface name {name:?}: 1-15 letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(Iface {
        name: name.to_string(),
        addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_avoid_the_users_hosts() {
        let net: Ipv4Net = "10.0.0.0/24".parse().unwrap();
        assert_eq!(
            battery::free(&net, 50, &["10.0.0.50".parse().unwrap()])
                .unwrap()
                .to_string(),
            "10.0.0.51"
        );
        assert!(parse_iface("eth1=192.168.8.1/24").is_ok());
        assert!(parse_iface("eth1").is_err());
        assert!(parse_iface("a b=10.0.0.1/24").is_err());
        let p = Params {
            server: "10.9.9.9".parse().unwrap(),
            ..Default::default()
        };
        assert!(battery::rows(&p).is_err());
    }

    #[test]
    fn a_pppoe_wan_puts_the_outside_hosts_behind_its_peer() {
        let p = Params {
            wan: vec![parse_iface("pppoe-wan=203.0.113.7/32").unwrap()],
            ..Default::default()
        };
        let a = battery::addresses(&p).unwrap();
        assert_eq!(a.wan_peers.unwrap().to_string(), "198.51.100.0/24");
        assert_eq!(a.client.to_string(), "198.51.100.10/24");
        let rows = battery::rows(&p).unwrap();
        assert!(rows[0].scenario.contains("wan_peers = \"198.51.100.0/24\""));
    }

    #[test]
    fn declaring_the_server_changes_the_rows() {
        let p = Params {
            server_masquerade: Some(false),
            ..Default::default()
        };
        let rows = battery::rows(&p).unwrap();
        assert!(!rows.iter().any(|r| r.name == "passive-without-masquerade"));
        let range = rows.iter().find(|r| r.name == "range-reachable").unwrap();
        assert!(!range.required);
        let pasv = rows.iter().find(|r| r.name == "passive-pasv").unwrap();
        assert!(pasv.needs.contains("own address 192.168.1.2"));
        assert!(!pasv.scenario.contains("masquerade_address"));
        let only = Params {
            rows: Some(vec!["nope".into()]),
            ..Default::default()
        };
        assert!(battery::rows(&only)
            .unwrap_err()
            .to_string()
            .contains("--rows: no row \"nope\""));
    }
}
