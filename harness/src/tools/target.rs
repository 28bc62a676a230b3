//! The server a tool measures: one of the built-in kinds or a user's own
//! program (`--server command:…` with its template and profile), named as
//! the tables show it, with what it does when its passive range runs out.
//!
//! The tools start it through the runner ([`crate::actor::real_server`]
//! for every kind but the in-process reference server), so a `command`
//! server gets exactly the placeholders `ftpnat run` gives it.

use std::sync::Arc;

use serde::Serialize;

use crate::{actor::command::CommandSpec, profile::Profile, scenario::resolve::ServerKind};

/// A server under measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// As the tables show it: the kind's name, or the profile's name for a
    /// user's server (`command` without a profile).
    pub name: String,
    /// The kind (a `command` server runs in place of it).
    pub kind: ServerKind,
    /// The user's program and template, if this is one.
    #[serde(skip)]
    pub command: Option<Arc<CommandSpec>>,
    /// Its own behaviour on an exhausted range, from its profile
    /// (`fallback`, `refuse`, `wait`, `session-dies`); `None` when unknown.
    pub exhausted: Option<String>,
}

impl Target {
    /// A built-in kind, with its shipped profile's exhaustion behaviour.
    pub fn builtin(kind: ServerKind) -> Target {
        Target {
            name: kind.name().into(),
            kind,
            command: None,
            exhausted: Profile::builtin(kind.name()).and_then(|p| p.exhausted),
        }
    }

    /// A user's server; named and described by its profile when given.
    pub fn command(spec: Arc<CommandSpec>, profile: Option<&Profile>) -> Target {
        Target {
            name: profile.map_or_else(|| "command".into(), |p| p.name.clone()),
            kind: ServerKind::Reference,
            command: Some(spec),
            exhausted: profile.and_then(|p| p.exhausted.clone()),
        }
    }

    /// The in-process reference server (its policy and passive mode are
    /// the tool's to set; it exposes its allocator's counters).
    pub fn is_reference(&self) -> bool {
        self.command.is_none() && self.kind == ServerKind::Reference
    }

    /// Its behaviour on an exhausted range as a table cell: the reference
    /// server's configured `policy`, else its own (`own: fallback`).
    pub fn policy_cell(&self, policy: &str) -> String {
        if self.is_reference() {
            policy.to_string()
        } else {
            format!("own: {}", self.exhausted.as_deref().unwrap_or("unknown"))
        }
    }
}
