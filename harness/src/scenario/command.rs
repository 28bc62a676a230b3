//! A user's own FTP server as the scenario's server (`ftpnat run --server
//! 'command:PROGRAM ARGS…' --server-config TEMPLATE`): its command line and
//! config template, as given. How it is rendered and started is
//! [`crate::actor::command`].

use std::path::PathBuf;

/// A user's server: its command line and config template.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// Program and arguments (placeholders allowed).
    pub argv: Vec<String>,
    /// Template file, if any.
    pub template: Option<PathBuf>,
}

impl CommandSpec {
    /// Parses `command:PROGRAM ARGS…` (shell quoting rules) and an optional
    /// template path.
    pub fn parse(server: &str, template: Option<PathBuf>) -> Result<CommandSpec, String> {
        let line = server
            .strip_prefix("command:")
            .ok_or_else(|| format!("--server {server:?}: expected command:PROGRAM [ARGS…]"))?;
        let argv = shlex::split(line)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| format!("--server {server:?}: unbalanced quotes"))?;
        if argv.is_empty() {
            return Err(format!("--server {server:?}: no program after command:"));
        }
        if let Some(t) = &template {
            std::fs::metadata(t).map_err(|e| format!("--server-config {}: {e}", t.display()))?;
        }
        Ok(CommandSpec { argv, template })
    }
}
