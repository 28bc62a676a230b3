//! Server profiles: what a particular FTP server answers where servers
//! legitimately differ (no RFC fixes the reply), what it can be configured
//! with, and what it does when the passive range runs out.
//!
//! Conformance scenarios mark such steps with `point = "foreign-port"` (the
//! step's own expectation is the seed's, i.e. ProFTPD's answer). A profile
//! replaces the expected code and/or text at the points it names, so the
//! suite asserts exact behaviour where it is defined and the profile's choice
//! where it is not. What a server cannot do is reported as "not supported by
//! this server" — never run, never a pass:
//!
//! * a server setting of the scenario that is not in `settings`;
//! * `passive_exhausted` other than the profile's `exhausted` behaviour
//!   (unless `passive_exhausted` is a setting it takes);
//! * a check of the reference server's log lines when `reference_log` is
//!   false;
//! * a scenario listed under `[unsupported]`.
//!
//! ```toml
//! name = "pyftpdlib 2.2"
//! settings = ["listen", "root", "masquerade_address", "passive_ports", "allow_foreign_address"]
//! exhausted = "fallback"
//! reference_log = false
//! [replies]
//! foreign-port = { code = 501, text = "^Rejected data connection to foreign address" }
//! [unsupported]
//! rfc2428-ipv6-control-and-data = "the template listens on IPv4 only"
//! ```

use std::{collections::BTreeMap, path::Path};

use regex::Regex;
use serde::Deserialize;

use crate::{
    error::SetupError,
    scenario::{
        resolve::{Action, Step},
        Scenario,
    },
};

/// The expected reply at one point.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// Reply code.
    pub code: Option<u16>,
    /// Regex the reply text must match.
    pub text: Option<String>,
    /// The server gives its final answer here (e.g. it connects for PORT
    /// before replying to RETR, so the failure comes at once): the
    /// scenario's later steps are not run.
    #[serde(default, rename = "final")]
    pub is_final: bool,
    /// The data connection's outcome here (`ok`, `refused`, `timeout`,
    /// `unreachable`, `failed`), when the server's answer is not the
    /// scenario's: anything but `ok` also drops the step's digest and byte
    /// count.
    pub transfer: Option<String>,
    /// No reply arrives here within the step's bound (e.g. the server
    /// connects for PORT before answering, and nothing answers its SYN).
    #[serde(default)]
    pub no_reply: bool,
}

/// What a server writes at a log point: its own line (a regex), or `false`
/// (it writes nothing there: the check is not run).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum LogLine {
    /// The server's own line.
    Pattern(String),
    /// Nothing is written (only `false` is accepted).
    Written(bool),
}

/// A server profile (a TOML file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Server name and version.
    pub name: String,
    /// Scenario server settings it can be given (dotted for nested keys,
    /// e.g. `limits.max_clients`); absent: every setting (the server kind
    /// itself refuses what it cannot express).
    pub settings: Option<Vec<String>>,
    /// What it does when the passive range runs out: `fallback`, `refuse`,
    /// `wait` or `session-dies`.
    pub exhausted: Option<String>,
    /// Whether it writes the reference server's log lines (`Refused PORT …
    /// (address mismatch)`, `SECURITY VIOLATION`, …).
    #[serde(default)]
    pub reference_log: bool,
    /// Whether it does explicit FTPS (scenarios with `tls = true` servers);
    /// default false.
    #[serde(default)]
    pub tls: bool,
    /// Point → the reply it gives there.
    #[serde(default)]
    pub replies: BTreeMap<String, Reply>,
    /// Log point → the line it writes there (when `reference_log` is true
    /// but the server words a line its own way or does not write it).
    #[serde(default)]
    pub logs: BTreeMap<String, LogLine>,
    /// Scenario name → why the server cannot run it.
    #[serde(default)]
    pub unsupported: BTreeMap<String, String>,
}

/// The profiles shipped for the built-in server kinds (and pyftpdlib).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "reference",
        include_str!("../../scenarios/profiles/reference.toml"),
    ),
    (
        "vsftpd",
        include_str!("../../scenarios/profiles/vsftpd.toml"),
    ),
    (
        "proftpd",
        include_str!("../../scenarios/profiles/proftpd.toml"),
    ),
    (
        "pure-ftpd",
        include_str!("../../scenarios/profiles/pure-ftpd.toml"),
    ),
    (
        "pyftpdlib",
        include_str!("../../scenarios/profiles/pyftpdlib.toml"),
    ),
];

impl Profile {
    /// Parses a profile; errors name the file, line and column.
    pub fn parse(text: &str, file: &Path) -> Result<Profile, String> {
        let p: Profile = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let (l, c) = ftpnat_server::config::line_col(text, s.start);
                    format!(":{l}:{c}")
                })
                .unwrap_or_default();
            format!("{}{at}: {}", file.display(), e.message())
        })?;
        for (point, r) in &p.replies {
            if let Some(t) = &r.text {
                Regex::new(t)
                    .map_err(|e| format!("{}: replies.{point}.text: {e}", file.display()))?;
            }
            if let Some(t) = &r.transfer {
                crate::scenario::resolve::TransferExpect::parse(t)
                    .map_err(|e| format!("{}: replies.{point}.transfer {e}", file.display()))?;
            }
        }
        for (point, l) in &p.logs {
            match l {
                LogLine::Pattern(t) => {
                    Regex::new(t)
                        .map_err(|e| format!("{}: logs.{point}: {e}", file.display()))?;
                }
                LogLine::Written(true) => {
                    return Err(format!(
                        "{}: logs.{point} = true: give the server's line as a regex, or false when it writes none",
                        file.display()
                    ))
                }
                LogLine::Written(false) => {}
            }
        }
        if let Some(x) = &p.exhausted {
            if !["fallback", "refuse", "wait", "session-dies"].contains(&x.as_str()) {
                return Err(format!(
                    "{}: exhausted = {x:?}: expected fallback, refuse, wait or session-dies",
                    file.display()
                ));
            }
        }
        Ok(p)
    }

    /// Reads a profile file.
    pub fn load(file: &Path) -> Result<Profile, String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        Profile::parse(&text, file)
    }

    /// The shipped profile for a server kind or `pyftpdlib`.
    pub fn builtin(name: &str) -> Option<Profile> {
        BUILTIN.iter().find(|(n, _)| *n == name).map(|(n, text)| {
            Profile::parse(text, Path::new(&format!("scenarios/profiles/{n}.toml")))
                .expect("shipped profiles parse (tested)")
        })
    }

    /// `sc` as this server should pass it, with notes on the steps left
    /// out (checks of the reference server's log lines when the server does
    /// not write them), or why it cannot run it at all
    /// ([`SetupError::NotInProfile`]).
    pub fn apply(&self, sc: &Scenario) -> Result<(Scenario, Vec<String>), SetupError> {
        let nope = |why: String| {
            Err(SetupError::NotInProfile {
                profile: self.name.clone(),
                why,
            })
        };
        if let Some(why) = self.unsupported.get(&sc.name) {
            return nope(why.clone());
        }
        let mut out = sc.clone();
        if !self.tls
            && out
                .hosts
                .iter()
                .any(|h| h.server.as_ref().is_some_and(|s| s.tls))
        {
            return nope("it does not do FTPS (no `tls = true` in the profile)".into());
        }
        for h in &mut out.hosts {
            let Some(server) = &mut h.server else {
                continue;
            };
            let set = toml::Value::try_from(&server.config)
                .map_err(|e| SetupError::Failed(format!("server config of {}: {e}", h.name)))?;
            for key in set_keys(&set) {
                let allowed = self.settings.as_ref().is_none_or(|s| s.contains(&key));
                if allowed {
                    continue;
                }
                if key == "passive_exhausted" {
                    let wanted = set
                        .get("passive_exhausted")
                        .and_then(|v| v.as_str())
                        .unwrap_or("");
                    match &self.exhausted {
                        Some(x) if x == wanted => {
                            // The server does it natively: nothing to configure.
                            server.config.passive_exhausted = None;
                            server.config.passive_wait_ms = None;
                            continue;
                        }
                        Some(x) => {
                            return nope(format!(
                                "the scenario needs passive_exhausted = \"{wanted}\"; when its range runs out this server does \"{x}\""
                            ))
                        }
                        None => {}
                    }
                }
                return nope(format!("it takes no `{key}` setting"));
            }
        }
        let mut notes = Vec::new();
        let silent = |s: &Step| {
            checks_log(s)
                && (!self.reference_log
                    || s.point
                        .as_ref()
                        .is_some_and(|p| matches!(self.logs.get(p), Some(LogLine::Written(false)))))
        };
        out.steps.retain(|s| {
            let keep = !silent(s);
            if !keep {
                notes.push(format!(
                    "step {} (line {}) not run: it checks a log line this server does not write (profile {})",
                    s.index, s.line, self.name
                ));
            }
            keep
        });
        for s in &mut out.steps {
            self.override_step(s).map_err(SetupError::Failed)?;
        }
        let last = out.steps.iter().position(|s| {
            s.point
                .as_ref()
                .and_then(|p| self.replies.get(p))
                .is_some_and(|r| r.is_final)
        });
        if let Some(i) = last {
            if i + 1 < out.steps.len() {
                let p = out.steps[i].point.clone().unwrap_or_default();
                let (a, b) = (out.steps[i + 1].index, out.steps[out.steps.len() - 1].index);
                let which = if a == b {
                    format!("step {a}")
                } else {
                    format!("steps {a}-{b}")
                };
                notes.push(format!(
                    "{which} not run: at point {p} this server gives its final answer at once (profile {}); gateway checks still run",
                    self.name
                ));
                // Checks of gateway counters observe the network, not the
                // server's session: they still say where packets went.
                let rest = out.steps.split_off(i + 1);
                out.steps.extend(rest.into_iter().filter(|s| {
                    matches!(s.action, Action::Check { .. }) && !s.expect.counters.is_empty()
                }));
            }
        }
        Ok((out, notes))
    }

    fn override_step(&self, s: &mut Step) -> Result<(), String> {
        if let Action::Parallel(inner) = &mut s.action {
            for i in inner {
                self.override_step(i)?;
            }
        }
        if let Some(LogLine::Pattern(t)) = s.point.as_ref().and_then(|p| self.logs.get(p)) {
            let re = Regex::new(t).map_err(|e| e.to_string())?;
            match &mut s.action {
                Action::WaitLog { regex, .. } => *regex = re,
                _ => s.expect.log = Some(re),
            }
        }
        let Some(r) = s.point.as_ref().and_then(|p| self.replies.get(p)) else {
            return Ok(());
        };
        if let Some(c) = r.code {
            s.expect.code = Some(c);
        }
        if let Some(t) = &r.text {
            s.expect.text = Some(Regex::new(t).map_err(|e| e.to_string())?);
        }
        if r.no_reply {
            s.expect.no_reply = true;
            s.expect.code = None;
            s.expect.text = None;
        }
        if let Some(t) = &r.transfer {
            let t = crate::scenario::resolve::TransferExpect::parse(t)?;
            if t != crate::scenario::resolve::TransferExpect::Is(crate::client::DataOutcome::Ok) {
                s.expect.sha256 = None;
                s.expect.bytes = None;
            }
            s.expect.transfer = Some(t);
        }
        Ok(())
    }
}

/// Whether a step reads a server log.
fn checks_log(s: &Step) -> bool {
    matches!(s.action, Action::WaitLog { .. })
        || s.expect.log.is_some()
        || match &s.action {
            Action::Parallel(inner) => inner.iter().any(checks_log),
            _ => false,
        }
}

/// The keys set in a server config, dotted for nested tables.
fn set_keys(v: &toml::Value) -> Vec<String> {
    let mut out = Vec::new();
    if let toml::Value::Table(t) = v {
        for (k, v) in t {
            match v {
                toml::Value::Table(inner) if !inner.is_empty() => {
                    for sub in set_keys(v) {
                        out.push(format!("{k}.{sub}"));
                    }
                }
                toml::Value::Table(_) => {}
                toml::Value::Array(a) if a.is_empty() => {}
                _ => out.push(k.clone()),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_parse() {
        for (name, _) in BUILTIN {
            assert!(Profile::builtin(name).is_some(), "{name}");
        }
    }

    #[test]
    fn bad_profiles_name_the_place() {
        let e = Profile::parse("name = \"x\"\nexhausted = 3\n", Path::new("p.toml")).unwrap_err();
        assert!(e.starts_with("p.toml:2:13:"), "{e}");
        let e = Profile::parse(
            "name = \"x\"\n[replies]\nfoo = { text = \"(\" }\n",
            Path::new("p.toml"),
        )
        .unwrap_err();
        assert!(e.contains("replies.foo.text"), "{e}");
    }
}
