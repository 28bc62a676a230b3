//! The subcommands of the `ftpnat` binary, one module each: its arguments
//! (clap derive; the doc comments are the help text) and a `run` that
//! returns the exit code or a [`CliError`]. What the commands share lives
//! here: standard-output writing that survives a closed pipe, loading and
//! selecting scenarios, the `--engine` and `--format` values.
//!
//! Exit codes are decided in one place, [`CliError::exit_code`]: a command
//! returns `Ok(0 or 1)` for what it found, `Err` when it could not run.

use std::{path::PathBuf, process::ExitCode};

use clap::ValueEnum;
use ftpnat::{
    actor::command::CommandSpec,
    profile::Profile,
    runner,
    scenario::{self, raw::EngineKind, resolve::ServerKind, Scenario},
    tools::target::Target,
};

/// `println!` that ends the program quietly when stdout is closed (e.g.
/// `ftpnat list | head`) instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($t)*) {
            $crate::cmd::stdout_gone(e)
        }
    }};
}

/// `print!`, likewise.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($t)*) {
            $crate::cmd::stdout_gone(e)
        }
    }};
}

pub(crate) mod check;
pub(crate) mod clean;
pub(crate) mod completions;
pub(crate) mod debug;
pub(crate) mod diff;
pub(crate) mod doctor;
pub(crate) mod graph;
pub(crate) mod html;
pub(crate) mod image;
pub(crate) mod init;
pub(crate) mod list;
pub(crate) mod load;
pub(crate) mod man;
pub(crate) mod matrix;
pub(crate) mod peers;
pub(crate) mod probe;
pub(crate) mod run;
pub(crate) mod schema;
pub(crate) mod speed;
pub(crate) mod suite;
pub(crate) mod validate_ruleset;

/// Why a command could not do its job.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Invalid input or usage: an option, a profile, a template, a rule
    /// set, or a tool that is missing (exit 2).
    #[error("{0}")]
    Input(String),
    /// Scenario files that do not load: each diagnostic already names the
    /// file, line and column; printed as they are (exit 2).
    #[error("{}", .0.join("\n"))]
    Scenarios(Vec<String>),
    /// The command started but could not finish, e.g. a load run or an
    /// image build failed (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// An input error from anything displayable.
    pub(crate) fn input(e: impl std::fmt::Display) -> CliError {
        CliError::Input(e.to_string())
    }

    /// A failure from anything displayable.
    pub(crate) fn failed(e: impl std::fmt::Display) -> CliError {
        CliError::Failed(e.to_string())
    }

    /// The process exit code: 2 for bad input, 1 when running failed.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Input(_) | CliError::Scenarios(_) => ExitCode::from(2),
            CliError::Failed(_) => ExitCode::FAILURE,
        }
    }

    /// Prints the error on standard error; returns its exit code.
    pub(crate) fn report(&self) -> ExitCode {
        match self {
            CliError::Scenarios(_) => eprintln!("{self}"),
            CliError::Input(_) | CliError::Failed(_) => eprintln!("error: {self}"),
        }
        self.exit_code()
    }
}

/// Exit 1 when `failed`, else 0: what a command found.
pub(crate) fn found(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Stdout failed: a closed pipe ends the program like SIGPIPE would (exit
/// 141 without a message); anything else is reported.
pub(crate) fn stdout_gone(e: std::io::Error) -> ! {
    if e.kind() != std::io::ErrorKind::BrokenPipe {
        eprintln!("error: cannot write to standard output: {e}");
    }
    std::process::exit(141)
}

/// Output format of the commands that report on stdout.
#[derive(Copy, Clone, Debug, ValueEnum)]
pub(crate) enum Format {
    Human,
    Json,
}

/// A gateway engine as the command line names it (`image` is a scenario's
/// own choice, never forced from the command line).
#[derive(Copy, Clone, Debug, ValueEnum)]
pub(crate) enum Engine {
    Sim,
    Kernel,
}

impl Engine {
    /// The scenario model's engine.
    pub(crate) fn kind(self) -> EngineKind {
        match self {
            Engine::Sim => EngineKind::Sim,
            Engine::Kernel => EngineKind::Kernel,
        }
    }

    /// Its name on the command line and in tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Engine::Sim => "sim",
            Engine::Kernel => "kernel",
        }
    }
}

/// Which servers `load`, `probe` and `speed` measure, side by side in one
/// run: built-in kinds and/or your own server, started exactly as `ftpnat
/// run` starts them.
#[derive(clap::Args, Debug)]
pub(crate) struct ServerArgs {
    /// Built-in servers to measure (comma-separated): reference, vsftpd,
    /// proftpd, pure-ftpd, or none (only --server). Default: the command's
    /// own list; with --server, every built-in kind next to yours.
    #[arg(
        long,
        value_delimiter = ',',
        alias = "server-kind",
        value_parser = ["reference", "vsftpd", "proftpd", "pure-ftpd", "none"]
    )]
    pub(crate) servers: Vec<String>,
    /// Your own server as well: `command:PROGRAM [ARGS…]`
    /// ({{placeholders}} allowed; see docs/cookbook/test-my-server-in-ci.md).
    #[arg(long, value_name = "command:PROGRAM")]
    pub(crate) server: Option<String>,
    /// Config template for --server, in the server's own format.
    #[arg(long, value_name = "TEMPLATE", requires = "server")]
    pub(crate) server_config: Option<PathBuf>,
    /// Profile of --server (its name in the tables, its behaviour on an
    /// exhausted range).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub(crate) profile: Option<PathBuf>,
}

/// Every built-in server kind, in table order.
pub(crate) const ALL_KINDS: [ServerKind; 4] = [
    ServerKind::Reference,
    ServerKind::Vsftpd,
    ServerKind::Proftpd,
    ServerKind::PureFtpd,
];

impl ServerArgs {
    /// The servers to measure: `--servers` (else `default`, or every kind
    /// when --server is given), then the user's.
    pub(crate) fn targets(&self, default: &[ServerKind]) -> Result<Vec<Target>, CliError> {
        let named: Vec<ServerKind> = self
            .servers
            .iter()
            .filter_map(|s| ServerKind::from_str(s, true).ok())
            .collect();
        let kinds: &[ServerKind] = match (self.servers.is_empty(), &self.server) {
            (false, _) => &named,
            (true, Some(_)) => &ALL_KINDS,
            (true, None) => default,
        };
        let mut out: Vec<Target> = Vec::new();
        for k in kinds {
            if !out.iter().any(|t| t.kind == *k) {
                out.push(Target::builtin(*k));
            }
        }
        if let Some(s) = &self.server {
            let spec =
                CommandSpec::parse(s, self.server_config.clone()).map_err(CliError::Input)?;
            let profile = self
                .profile
                .as_deref()
                .map(Profile::load)
                .transpose()
                .map_err(CliError::Input)?;
            out.push(Target::command(std::sync::Arc::new(spec), profile.as_ref()));
        }
        if out.is_empty() {
            return Err(CliError::Input(
                "--servers none without --server: no server to measure".into(),
            ));
        }
        Ok(out)
    }
}

/// Scenarios at once when `--jobs` is not given: one per core.
pub(crate) fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The project file `ftpnat init` writes; `ftpnat run` and `ftpnat list`
/// read it from the current folder.
pub(crate) const PROJECT_FILE: &str = "ftpnat.toml";

/// `ftpnat.toml`: defaults for `ftpnat run` in this folder (options on
/// the command line win).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Project {
    /// `[run]`.
    #[serde(default)]
    pub(crate) run: ProjectRun,
}

/// `[run]` of `ftpnat.toml`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProjectRun {
    /// Scenario files or folders (`builtin:conformance`: the built-in suite).
    #[serde(default)]
    pub(crate) paths: Vec<PathBuf>,
    /// As `--server`.
    pub(crate) server: Option<String>,
    /// As `--server-config`.
    pub(crate) server_config: Option<PathBuf>,
    /// As `--profile`.
    pub(crate) profile: Option<PathBuf>,
}

impl Project {
    /// Reads a project file.
    pub(crate) fn load(path: &std::path::Path) -> Result<Project, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// `./ftpnat.toml`, when there is one.
    pub(crate) fn here() -> Result<Option<Project>, CliError> {
        let p = std::path::Path::new(PROJECT_FILE);
        if !p.is_file() {
            return Ok(None);
        }
        Project::load(p).map(Some).map_err(CliError::Input)
    }
}

/// A path as given, or, for `builtin:NAME`, that folder of the suite built
/// into the binary (`builtin:conformance`, `builtin:probes`, …).
fn resolve_path(p: PathBuf) -> Result<PathBuf, CliError> {
    let Some(rest) = p.to_str().and_then(|s| s.strip_prefix("builtin:")) else {
        return Ok(p);
    };
    let root = ftpnat::suite::unpacked()
        .map_err(|e| CliError::Input(format!("cannot unpack the built-in suite: {e}")))?;
    ftpnat::confine::relative_name(rest)
        .map_err(|m| CliError::Input(format!("{}: {m}", p.display())))?;
    let dir = root.join(rest);
    if !dir.exists() {
        return Err(CliError::Input(format!(
            "{}: no such built-in folder (see `ftpnat suite list`)",
            p.display()
        )));
    }
    Ok(dir)
}

/// The paths given; else those of `./ftpnat.toml`; else the conformance
/// suite: `./scenarios/conformance` when present, else the built-in one.
fn default_paths(paths: Vec<PathBuf>) -> Result<Vec<PathBuf>, CliError> {
    let paths = match (paths.is_empty(), Project::here()?) {
        (false, _) => paths,
        (true, Some(p)) if !p.run.paths.is_empty() => p.run.paths,
        (true, _) => {
            let suite = ftpnat::suite::default_conformance()
                .map_err(|e| CliError::Input(format!("cannot unpack the built-in suite: {e}")))?;
            return Ok(vec![suite]);
        }
    };
    paths.into_iter().map(resolve_path).collect()
}

/// Loads scenarios (default: the conformance suite); every invalid file
/// and every name used twice is reported, all at once.
pub(crate) fn load_all(paths: Vec<PathBuf>) -> Result<Vec<Scenario>, CliError> {
    let files = scenario::discover(&default_paths(paths)?).map_err(CliError::input)?;
    if files.is_empty() {
        return Err(CliError::Input("no scenario files (*.toml) found".into()));
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        match scenario::load(&f) {
            Ok(s) => out.push(s),
            Err(d) => problems.push(d.pretty()),
        }
    }
    let mut names = std::collections::BTreeMap::new();
    for s in &out {
        if let Some(prev) = names.insert(s.name.clone(), s.file.clone()) {
            problems.push(format!(
                "error: scenario name {:?} is used by both {} and {}",
                s.name,
                prev.display(),
                s.file.display()
            ));
        }
    }
    if !problems.is_empty() {
        let bad = problems.len();
        problems.push(format!("error: {bad} invalid scenario file(s)"));
        return Err(CliError::Scenarios(problems));
    }
    Ok(out)
}

/// Applies `--shard K/N`, or explains the bad value.
pub(crate) fn apply_shard(
    scenarios: Vec<Scenario>,
    shard: Option<String>,
) -> Result<Vec<Scenario>, CliError> {
    let Some(sh) = shard else {
        return Ok(scenarios);
    };
    match runner::parse_shard(&sh) {
        Some((k, n)) => Ok(runner::shard(scenarios, k, n)),
        None => Err(CliError::Input(format!(
            "--shard {sh:?}: expected K/N with 1 <= K <= N"
        ))),
    }
}

/// Removes what dead runs left behind (namespaces, folders, containers);
/// every command that builds networks calls this first.
pub(crate) fn sweep_leftovers() {
    if let Ok(s) = ftpnat::topology::sweep() {
        if !s.namespaces.is_empty() || !s.tempdirs.is_empty() || !s.containers.is_empty() {
            eprintln!(
                "swept {} namespace(s), {} temporary folder(s) and {} container(s) left by dead runs",
                s.namespaces.len(),
                s.tempdirs.len(),
                s.containers.len()
            );
        }
    }
}
