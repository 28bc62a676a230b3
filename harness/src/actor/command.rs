//! Any FTP server as a scenario actor: server kind `command`
//! (`ftpnat run --server 'command:PROGRAM ARGS…' --server-config TEMPLATE`).
//!
//! The command line and the template (a config file in the server's own
//! format) are rendered with the scenario's server settings through named
//! placeholders, `{{name}}`:
//!
//! | placeholder | value |
//! |---|---|
//! | `listen_ip`, `listen_port` | where to listen (default 0.0.0.0, 21) |
//! | `root` | the served tree (the scenario's files) |
//! | `masquerade_address` | IP literal, or empty |
//! | `passive_lo`, `passive_hi` | the passive range, or 0 0 |
//! | `passive_ports` | `LO-HI`, or empty |
//! | `allow_foreign_address` | `true` or `false` |
//! | `server_name` | banner name, or empty |
//! | `max_clients`, `max_clients_per_ip` | limits (default 50 each) |
//! | `tls_cert`, `tls_key` | PEM files of the scenario's test certificate (`tls = true`), or empty |
//! | `log` | a file the server should log to (captured as its log) |
//! | `dir` | a private state folder (pid files, scoreboards, …) |
//! | `config` | the rendered template's path |
//!
//! If the command line does not mention `{{config}}`, the rendered
//! template's path is appended as its last argument. An unknown placeholder
//! is an error naming the file and line. Settings outside the table are "not
//! supported by this server". The program runs in the host's namespace as a
//! child process (stdout/stderr captured), is ready when the control port
//! answers 220 within 5 s, and is stopped and reaped when the scenario ends.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use ftpnat_server::config::{ForeignAddress, RawConfig};

use super::{daemon, RealServer, Site};
use crate::error::SetupError;

/// How messages name a command server.
const WHAT: &str = "this server (command)";

pub use crate::scenario::command::CommandSpec;

/// The placeholder values for `raw`, or the first setting a command server
/// cannot be given.
pub fn values(
    raw: &RawConfig,
    root: &Path,
    dir: &Path,
    log: &Path,
    config: &Path,
) -> Result<BTreeMap<&'static str, String>, SetupError> {
    let unsupported = |k: &str| Err(SetupError::unsupported(WHAT, k));
    daemon::reject_reference_only(raw, WHAT)?;
    if raw.tls_required.is_some() || raw.tls_session_reuse.is_some() {
        return unsupported("tls_required/tls_session_reuse");
    }
    if raw.passive_exhausted.is_some() || raw.passive_wait_ms.is_some() {
        return unsupported("passive_exhausted");
    }
    if raw.passive_mode.is_some() {
        return unsupported("passive_mode");
    }
    if !raw.limits.deny.is_empty() {
        return unsupported("limits.deny");
    }
    if raw.timeouts.login.is_some()
        || raw.timeouts.idle.is_some()
        || raw.timeouts.no_transfer.is_some()
        || raw.timeouts.data_connect.is_some()
    {
        return unsupported("timeouts");
    }
    let foreign = match &raw.allow_foreign_address {
        None | Some(ForeignAddress::All(false)) => false,
        Some(ForeignAddress::All(true)) => true,
        Some(ForeignAddress::Cidrs(_)) => {
            return unsupported("allow_foreign_address as a list of networks")
        }
    };
    let addr = daemon::listen_addr(raw, WHAT)?;
    let masq = daemon::masquerade_ip(raw, WHAT)?;
    let (lo, hi) = raw.passive_ports.map_or((0, 0), |[l, h]| (l, h));
    let mut v = BTreeMap::new();
    v.insert("listen_ip", addr.ip().to_string());
    v.insert("listen_port", addr.port().to_string());
    v.insert("root", root.display().to_string());
    v.insert(
        "masquerade_address",
        masq.map(|m| m.to_string()).unwrap_or_default(),
    );
    v.insert("passive_lo", lo.to_string());
    v.insert("passive_hi", hi.to_string());
    v.insert(
        "passive_ports",
        if lo == 0 {
            String::new()
        } else {
            format!("{lo}-{hi}")
        },
    );
    v.insert("allow_foreign_address", foreign.to_string());
    v.insert("server_name", raw.server_name.clone().unwrap_or_default());
    v.insert(
        "max_clients",
        raw.limits.max_clients.unwrap_or(50).to_string(),
    );
    v.insert(
        "max_clients_per_ip",
        raw.limits.max_clients_per_ip.unwrap_or(50).to_string(),
    );
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    v.insert("tls_cert", path(&raw.tls_cert));
    v.insert("tls_key", path(&raw.tls_key));
    v.insert("log", log.display().to_string());
    v.insert("dir", dir.display().to_string());
    v.insert("config", config.display().to_string());
    Ok(v)
}

/// Replaces every `{{name}}` in `text`; an unknown name is an error naming
/// `source` and the line.
pub fn render(text: &str, values: &BTreeMap<&str, String>, source: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after
            .find("}}")
            .ok_or_else(|| format!("{source}:{}: `{{{{` without `}}}}`", line_of(text, rest, i)))?;
        let name = after[..j].trim();
        let value = values.get(name).ok_or_else(|| {
            format!(
                "{source}:{}: unknown placeholder {{{{{name}}}}} (known: {})",
                line_of(text, rest, i),
                values.keys().copied().collect::<Vec<_>>().join(", ")
            )
        })?;
        out.push_str(value);
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The line of `rest[i]` in `text` (`rest` is a suffix of `text`).
fn line_of(text: &str, rest: &str, i: usize) -> usize {
    ftpnat_server::config::line_col(text, text.len() - rest.len() + i).0
}

impl RealServer for CommandSpec {
    fn name(&self) -> &'static str {
        "command"
    }

    /// The program is the command line's first word (found by the shell's
    /// rules when the child starts).
    fn binary(&self) -> Result<PathBuf, SetupError> {
        Ok(PathBuf::from(&self.argv[0]))
    }

    /// Renders the template (into a private state folder) and the command
    /// line; the template's path is appended unless the line names
    /// `{{config}}`.
    fn command(
        &self,
        _bin: &Path,
        raw: &RawConfig,
        site: &Site,
    ) -> Result<(Command, SocketAddr), SetupError> {
        let state = site.folder("command")?;
        let ext = self
            .template
            .as_ref()
            .and_then(|t| t.extension())
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        let config = state.join(format!("server-config{ext}"));
        let values = values(raw, site.root, &state, site.log, &config)?;
        if let Some(t) = &self.template {
            let text = std::fs::read_to_string(t).map_err(SetupError::io(t.display()))?;
            let rendered = render(&text, &values, &t.display().to_string())?;
            std::fs::write(&config, rendered).map_err(SetupError::io(config.display()))?;
        }
        let mut argv = self
            .argv
            .iter()
            .map(|a| render(a, &values, "--server"))
            .collect::<Result<Vec<_>, _>>()?;
        if self.template.is_some() && !self.argv.iter().any(|a| a.contains("{{config}}")) {
            argv.push(config.display().to_string());
        }
        let addr: SocketAddr = format!("{}:{}", values["listen_ip"], values["listen_port"])
            .parse()
            .or_else(|_| format!("[{}]:{}", values["listen_ip"], values["listen_port"]).parse())
            .map_err(|e| SetupError::Failed(format!("listen address: {e}")))?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        Ok((cmd, addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders_and_names_unknown_ones() {
        let raw: RawConfig = toml::from_str(
            "masquerade_address = \"203.0.113.1\"\npassive_ports = [60000, 60010]\nallow_foreign_address = true\n",
        )
        .unwrap();
        let v = values(
            &raw,
            Path::new("/r"),
            Path::new("/d"),
            Path::new("/l"),
            Path::new("/c"),
        )
        .unwrap();
        let out = render(
            "masq={{masquerade_address}} range={{ passive_lo }}:{{passive_hi}} foreign={{allow_foreign_address}} root={{root}}",
            &v,
            "t",
        )
        .unwrap();
        assert_eq!(
            out,
            "masq=203.0.113.1 range=60000:60010 foreign=true root=/r"
        );
        let e = render("a\nb {{nope}}", &v, "tpl.py").unwrap_err();
        assert!(
            e.starts_with("tpl.py:2: unknown placeholder {{nope}}"),
            "{e}"
        );
        let raw: RawConfig = toml::from_str("passive_exhausted = \"wait\"").unwrap();
        let e = values(
            &raw,
            Path::new("/r"),
            Path::new("/d"),
            Path::new("/l"),
            Path::new("/c"),
        )
        .unwrap_err();
        assert!(
            matches!(e, SetupError::Unsupported { ref key, .. } if key == "passive_exhausted"),
            "{e}"
        );
        assert!(CommandSpec::parse("python3 x.py", None).is_err());
        let s = CommandSpec::parse("command:python3 '/a b/x.py' {{config}}", None).unwrap();
        assert_eq!(s.argv, vec!["python3", "/a b/x.py", "{{config}}"]);
    }
}
