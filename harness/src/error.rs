//! Why a scenario could not be set up, one variant per cause. The status
//! a report shows comes from the variant ([`SetupError::status`]), never
//! from the message: a server or engine that cannot do what the scenario
//! needs is "not supported"; everything else that stops a set-up is an
//! error.

use crate::outcome::{NotRun, Status};

/// A scenario's network, gateways or servers could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A server kind has no equivalent of a setting the scenario uses.
    #[error("{key} is not supported by {what}")]
    Unsupported {
        /// The server, as messages name it ("vsftpd", "this server (command)").
        what: String,
        /// The setting, in the scenario's terms ("passive_exhausted").
        key: String,
    },
    /// The kernel engine cannot express a gateway setting.
    #[error(
        "gateway {gateway}: {what} is not expressible with the kernel engine (use engine = \"sim\")"
    )]
    NotExpressible {
        /// Gateway name.
        gateway: String,
        /// The setting.
        what: String,
    },
    /// The server's profile says it cannot run this scenario.
    #[error("not supported by this server (profile {profile}): {why}")]
    NotInProfile {
        /// Profile name.
        profile: String,
        /// What it cannot do.
        why: String,
    },
    /// A program this machine lacks.
    #[error("{tool} not found: {install}")]
    Missing {
        /// The program.
        tool: String,
        /// How to get it.
        install: String,
    },
    /// A file or system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, or the path.
        context: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A part of the scenario would not start (its own message says why:
    /// a server's stderr, a loader's complaint, a container's log).
    #[error("{0}")]
    Failed(String),
    /// One of the above, in a named part ("server on h1", "starting gateway gw").
    #[error("{part}: {source}")]
    In {
        /// The part.
        part: String,
        /// What went wrong there.
        source: Box<SetupError>,
    },
}

impl SetupError {
    /// A failed file operation or system call on `context`.
    pub fn io(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> SetupError {
        let context = context.to_string();
        move |source| SetupError::Io { context, source }
    }

    /// A setting `what` does not support.
    pub fn unsupported(what: &str, key: impl Into<String>) -> SetupError {
        SetupError::Unsupported {
            what: what.into(),
            key: key.into(),
        }
    }

    /// This error, in `part` of the scenario.
    pub fn within(self, part: impl Into<String>) -> SetupError {
        SetupError::In {
            part: part.into(),
            source: Box::new(self),
        }
    }

    /// What kind of "not run" this is.
    pub fn not_run(&self) -> NotRun {
        match self {
            SetupError::Unsupported { .. } => NotRun::ServerUnsupported,
            SetupError::NotExpressible { .. } => NotRun::NotExpressible,
            SetupError::NotInProfile { .. } => NotRun::Profile,
            SetupError::Missing { .. } => NotRun::Missing,
            SetupError::Io { .. } | SetupError::Failed(_) => NotRun::Failed,
            SetupError::In { source, .. } => source.not_run(),
        }
    }

    /// The status of a scenario this error stopped.
    pub fn status(&self) -> Status {
        self.not_run().status()
    }
}

impl From<String> for SetupError {
    fn from(message: String) -> SetupError {
        SetupError::Failed(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_comes_from_the_variant_not_the_text() {
        let unsupported = SetupError::unsupported("vsftpd", "passive_exhausted");
        assert_eq!(
            unsupported.to_string(),
            "passive_exhausted is not supported by vsftpd"
        );
        assert_eq!(
            unsupported.within("server on server").status(),
            Status::Unsupported
        );
        // A message that merely says the words is still an error.
        let failed = SetupError::Failed("x is not supported by y".into());
        assert_eq!(failed.status(), Status::Error);
        let missing = SetupError::Missing {
            tool: "vsftpd".into(),
            install: "run ci/test.sh".into(),
        };
        assert_eq!(missing.to_string(), "vsftpd not found: run ci/test.sh");
        assert_eq!(missing.status(), Status::NotSupportedHere);
        let kernel = SetupError::NotExpressible {
            gateway: "gw".into(),
            what: "impairment".into(),
        };
        assert_eq!(kernel.status(), Status::Unsupported);
        assert_eq!(kernel.not_run(), NotRun::NotExpressible);
    }
}
