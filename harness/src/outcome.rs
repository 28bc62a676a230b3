//! What happened: a scenario's [`Status`], its steps' results and the
//! [`ScenarioResult`] the runner produces and every report renders. Plain
//! data; the runner fills it, [`crate::report`] reads it, neither knows the
//! other.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::Counters;

/// Outcome of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every expectation held.
    Pass,
    /// An expectation did not hold.
    Fail,
    /// The scenario could not be run (set-up failed).
    Error,
    /// Not run: the server or engine cannot do what it needs ("not
    /// supported by this server", "not expressible with the kernel
    /// engine"). Never a pass, and not a failure either.
    Unsupported,
    /// Not run: this machine lacks a program, server or kernel feature the
    /// scenario needs (lftp, vsftpd, nft, …); a gap of the machine, not of
    /// the thing under test. Fails a run only with `--require-all`.
    #[serde(rename = "not-supported-here")]
    NotSupportedHere,
}

/// Why a scenario was not run, by cause (its status follows from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotRun {
    /// The server kind has no equivalent of a setting the scenario uses.
    ServerUnsupported,
    /// The kernel engine cannot express a gateway setting.
    NotExpressible,
    /// The server's profile says it cannot run the scenario.
    Profile,
    /// A program this machine lacks.
    Missing,
    /// Set-up failed.
    Failed,
}

impl NotRun {
    /// The status of a scenario not run for this cause: what a server or
    /// engine cannot do is "not supported"; what this machine lacks is
    /// "not supported here"; the rest is an error.
    pub fn status(self) -> Status {
        match self {
            NotRun::ServerUnsupported | NotRun::NotExpressible | NotRun::Profile => {
                Status::Unsupported
            }
            NotRun::Missing => Status::NotSupportedHere,
            NotRun::Failed => Status::Error,
        }
    }
}

/// One step's result.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// Step number in the file.
    pub index: usize,
    /// Line in the file.
    pub line: usize,
    /// Client acting ("" for checks).
    pub client: String,
    /// What the step did.
    pub action: String,
    /// pass / fail.
    pub status: Status,
    /// Milliseconds.
    pub duration_ms: u64,
    /// What was seen.
    pub seen: String,
    /// Why it failed.
    pub failure: Option<String>,
    /// When it started, microseconds since the Unix epoch (places it on
    /// the HTML report's ladder, next to the pcaps' timestamps).
    #[serde(skip)]
    pub started_us: u64,
}

/// A scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// Name.
    pub name: String,
    /// File.
    pub file: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Status.
    pub status: Status,
    /// Total milliseconds.
    pub duration_ms: u64,
    /// Milliseconds to build the network and start actors.
    pub setup_ms: u64,
    /// Milliseconds to tear down.
    pub teardown_ms: u64,
    /// Steps run.
    pub steps: Vec<StepResult>,
    /// First failure, with the transcript tail.
    pub failure: Option<String>,
    /// What the server profile changed (steps not run, and why).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Why it was not run (status `unsupported` or `error` at set-up).
    #[serde(skip)]
    pub not_run: Option<NotRun>,
    /// What this machine lacks to run it (status `not-supported-here`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<crate::machine::Missing>,
    /// Gateway counters by gateway.
    #[serde(skip)]
    pub gateways: BTreeMap<String, Counters>,
    /// Traces of new connections, by kernel gateway with `trace = true`.
    #[serde(skip)]
    pub traces: BTreeMap<String, crate::engine::trace::GatewayTrace>,
    /// Transcripts by client.
    #[serde(skip)]
    pub transcripts: BTreeMap<String, String>,
}
