//! `ftpnat run`: run scenarios and report (human lines with a progress bar,
//! JSON, JUnit XML); with `--engine sim,kernel`, the engine comparison of
//! [`super::diff`].

use std::{io::IsTerminal, path::PathBuf, process::ExitCode, sync::Arc, time::Instant};

use clap::ValueEnum;
use ftpnat::{
    actor::command::CommandSpec,
    outcome::ScenarioResult,
    profile::Profile,
    report::{self, Summary},
    runner::{self, RunOptions},
    scenario::{resolve::ServerKind, Scenario},
};

use super::{default_jobs, found, CliError, Engine, Format};

/// Where hosts and gateways live.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Substrate {
    /// Network namespaces made by ftpnat.
    Netns,
    /// Docker containers (an offline holder image), the same links inside.
    Docker,
}

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Scenario files or folders.
    pub(crate) paths: Vec<PathBuf>,
    /// Only scenarios whose name matches this regex.
    #[arg(long)]
    pub(crate) filter: Option<String>,
    /// Only scenarios with this tag (repeatable: any of them).
    #[arg(long)]
    pub(crate) tag: Vec<String>,
    /// Scenarios run at once (default: number of cores).
    #[arg(long)]
    pub(crate) jobs: Option<usize>,
    /// Run shard K of N (1-based), e.g. 2/4; every scenario lands in exactly one shard.
    #[arg(long, value_name = "K/N")]
    pub(crate) shard: Option<String>,
    /// Force every gateway onto this engine; `sim,kernel` runs every
    /// scenario on both and reports where they disagree (as `ftpnat diff`).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) engine: Vec<Engine>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value = "human")]
    pub(crate) format: Format,
    /// Also write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub(crate) junit: Option<PathBuf>,
    /// Keep per-scenario artifacts (transcripts, server logs, counters, pcaps, topology.svg) here.
    #[arg(long, value_name = "DIR")]
    pub(crate) artifacts: Option<PathBuf>,
    /// Write an HTML report here: index.html and one page per scenario
    /// with its connection ladder (artifacts go to DIR/artifacts unless
    /// --artifacts says otherwise).
    #[arg(long, value_name = "DIR")]
    pub(crate) html: Option<PathBuf>,
    /// Do not capture pcap files on gateway interfaces.
    #[arg(long)]
    pub(crate) no_pcap: bool,
    /// Run every server as this kind (with its shipped profile,
    /// scenarios/profiles/<kind>.toml, unless --profile is given).
    #[arg(long, value_enum, conflicts_with = "server")]
    pub(crate) server_kind: Option<ServerKind>,
    /// Run every server as your own program: `command:PROGRAM [ARGS…]`
    /// ({{placeholders}} allowed; see docs/cookbook/test-my-server-in-ci.md).
    #[arg(long, value_name = "command:PROGRAM")]
    pub(crate) server: Option<String>,
    /// Config template for --server, in the server's own format, with
    /// {{placeholders}}; rendered per scenario.
    #[arg(long, value_name = "TEMPLATE", requires = "server")]
    pub(crate) server_config: Option<PathBuf>,
    /// Server profile (TOML): the server's answers where servers may
    /// differ, and what it cannot do.
    #[arg(long, value_name = "FILE")]
    pub(crate) profile: Option<PathBuf>,
    /// Where hosts and gateways live: bare network namespaces (default)
    /// or Docker containers (network mode none, wired by ftpnat).
    #[arg(long, value_enum, default_value = "netns")]
    pub(crate) substrate: Substrate,
    /// Scenarios this machine cannot run (a program, real server or kernel
    /// feature is missing: "not supported here") fail the run (exit 1)
    /// instead of being listed; for CI that wants full coverage.
    #[arg(long)]
    pub(crate) require_all: bool,
}

pub(crate) fn run(mut a: Args) -> Result<ExitCode, CliError> {
    // ./ftpnat.toml (ftpnat init) fills in what the command line leaves out.
    if let Some(p) = super::Project::here()? {
        if a.server.is_none() && a.server_kind.is_none() {
            a.server = p.run.server;
            a.server_config = a.server_config.or(p.run.server_config);
        }
        a.profile = a.profile.or(p.run.profile);
    }
    let command = a
        .server
        .map(|s| CommandSpec::parse(&s, a.server_config))
        .transpose()
        .map_err(CliError::input)?
        .map(Arc::new);
    let profile = match (&a.profile, a.server_kind) {
        (Some(f), _) => Some(Profile::load(f).map_err(CliError::input)?),
        (None, Some(k)) => Profile::builtin(k.name()),
        (None, None) => None,
    }
    .map(Arc::new);
    let scenarios = select(a.paths, a.filter, &a.tag, a.shard)?;
    let jobs = a.jobs.unwrap_or_else(default_jobs);
    let mut engines = a.engine.clone();
    engines.sort_by_key(|e| *e as u8);
    engines.dedup_by_key(|e| *e as u8);
    if engines.len() > 1 {
        let opts = RunOptions {
            no_pcap: true,
            server_kind: a.server_kind,
            command,
            profile,
            ..Default::default()
        };
        return super::diff::compare(&scenarios, jobs, a.format, opts, a.html.as_deref());
    }
    // Absolute: servers' roots beneath it are resolved against each
    // scenario file's folder otherwise (a relative --artifacts broke runs).
    let artifacts = a
        .artifacts
        .clone()
        .or_else(|| a.html.as_ref().map(|h| h.join("artifacts")))
        .map(|p| std::path::absolute(&p).unwrap_or(p));
    let opts = RunOptions {
        artifacts,
        no_pcap: a.no_pcap,
        server_kind: a.server_kind,
        command,
        profile,
        engine: engines.first().map(|e| e.kind()),
        docker: a.substrate == Substrate::Docker,
    };
    let t0 = Instant::now();
    let results = run_with_progress(&scenarios, &opts, jobs, a.format);
    let summary = Summary::of(&results, t0.elapsed().as_millis() as u64);
    match a.format {
        Format::Human => {
            outln!("{}", summary.line());
            for line in not_here(&results, a.require_all) {
                outln!("{line}");
            }
        }
        Format::Json => outln!("{}", report::json(&results, summary)),
    }
    if let Some(dir) = &a.html {
        let params = vec![
            (
                "engine".to_string(),
                engines
                    .first()
                    .map_or("as each scenario says".into(), |e| e.name().to_string()),
            ),
            (
                "substrate".into(),
                format!("{:?}", a.substrate).to_lowercase(),
            ),
            (
                "server".into(),
                match (&opts.command, a.server_kind) {
                    (Some(c), _) => format!("command: {}", c.argv.join(" ")),
                    (None, Some(k)) => k.name().to_string(),
                    (None, None) => "as each scenario says".into(),
                },
            ),
        ];
        super::html::write(
            dir,
            "ftpnat run",
            params,
            &scenarios,
            &results,
            &opts,
            summary,
        )?;
    }
    if let Some(path) = a.junit {
        std::fs::write(&path, report::junit(&results, summary))
            .map_err(|e| CliError::Input(format!("writing {}: {e}", path.display())))?;
    }
    Ok(found(
        summary.failed + summary.errors > 0 || (a.require_all && summary.not_supported_here > 0),
    ))
}

/// The closing lines for scenarios not supported here: one per missing
/// program, with its install command and the scenarios it kept from
/// running, then where to look for the rest.
fn not_here(results: &[ScenarioResult], require_all: bool) -> Vec<String> {
    let mut by_tool: Vec<(&ftpnat::machine::Missing, Vec<&str>)> = Vec::new();
    for r in results {
        for m in &r.missing {
            match by_tool.iter_mut().find(|(k, _)| *k == m) {
                Some((_, names)) => names.push(&r.name),
                None => by_tool.push((m, vec![&r.name])),
            }
        }
    }
    if by_tool.is_empty() {
        return Vec::new();
    }
    let n = results.iter().filter(|r| !r.missing.is_empty()).count();
    let mut out = vec![format!(
        "{n} not supported here{}:",
        if require_all {
            " (failures: --require-all)"
        } else {
            ""
        }
    )];
    for (m, names) in by_tool {
        out.push(format!("  {m} ({})", names.join(", ")));
    }
    out.push("  what else this machine lacks, and how to get it: ftpnat doctor".into());
    out
}

/// The scenarios `--filter`, `--tag` and `--shard` select; none is an error.
fn select(
    paths: Vec<PathBuf>,
    filter: Option<String>,
    tags: &[String],
    shard: Option<String>,
) -> Result<Vec<Scenario>, CliError> {
    let mut scenarios = super::load_all(paths)?;
    if let Some(f) = filter {
        let re = regex::Regex::new(&f).map_err(|e| CliError::Input(format!("--filter: {e}")))?;
        scenarios.retain(|s| re.is_match(&s.name));
    }
    if !tags.is_empty() {
        scenarios.retain(|s| s.tags.iter().any(|t| tags.contains(t)));
    }
    let scenarios = super::apply_shard(scenarios, shard)?;
    if scenarios.is_empty() {
        return Err(CliError::Input("no scenario selected".into()));
    }
    Ok(scenarios)
}

/// Runs the scenarios; in human format one line per scenario as it
/// finishes, in input order, under a progress bar when stderr is a terminal.
fn run_with_progress(
    scenarios: &[Scenario],
    opts: &RunOptions,
    jobs: usize,
    format: Format,
) -> Vec<ScenarioResult> {
    let human = matches!(format, Format::Human);
    let bar = (human && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(scenarios.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    // Lines come out in input order whatever order scenarios finish in.
    let pending =
        std::sync::Mutex::new((0usize, std::collections::BTreeMap::<usize, String>::new()));
    let on_done = |i: usize, r: &ScenarioResult| {
        if !human {
            return;
        }
        let mut p = pending.lock().unwrap();
        p.1.insert(i, report::human_line(r));
        while let Some(line) = {
            let next = p.0;
            p.1.remove(&next)
        } {
            p.0 += 1;
            match &bar {
                Some(b) => {
                    b.println(line);
                    b.inc(1);
                }
                None => outln!("{line}"),
            }
        }
    };
    let results = runner::run_all(scenarios, opts, jobs, &on_done);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    results
}
