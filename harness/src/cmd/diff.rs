//! `ftpnat diff` (and `ftpnat run --engine sim,kernel`): the same scenarios
//! on both engines, and where they disagree.

use std::{path::PathBuf, process::ExitCode};

use ftpnat::{
    runner::{self, Disagreement, RunOptions},
    scenario::{raw::EngineKind, Scenario},
};

use super::{default_jobs, found, CliError, Format};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Scenario files or folders.
    pub(crate) paths: Vec<PathBuf>,
    /// Scenarios run at once.
    #[arg(long)]
    pub(crate) jobs: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub(crate) format: Format,
    /// Also write an HTML report here: scenario × engine, disagreements
    /// first, each cell linking to that engine's page with its ladder.
    #[arg(long, value_name = "DIR")]
    pub(crate) html: Option<PathBuf>,
}

pub(crate) fn run(a: Args) -> Result<ExitCode, CliError> {
    let scenarios = super::load_all(a.paths)?;
    let opts = RunOptions {
        no_pcap: true,
        ..Default::default()
    };
    compare(
        &scenarios,
        a.jobs.unwrap_or_else(default_jobs),
        a.format,
        opts,
        a.html.as_deref(),
    )
}

/// One scenario the engines disagree on.
struct Row {
    name: String,
    sim: ftpnat::outcome::Status,
    kernel: ftpnat::outcome::Status,
    kind: Disagreement,
    /// The first line of the failure that tells them apart.
    why: String,
}

/// Runs `scenarios` on both engines and reports every disagreement. Exit 1
/// on a behaviour difference.
pub(crate) fn compare(
    scenarios: &[Scenario],
    jobs: usize,
    format: Format,
    opts: RunOptions,
    html: Option<&std::path::Path>,
) -> Result<ExitCode, CliError> {
    let with = |engine: EngineKind| RunOptions {
        engine: Some(engine),
        // The report needs the pcaps and artifacts of both runs.
        no_pcap: opts.no_pcap && html.is_none(),
        artifacts: html
            .map(|h| {
                h.join("artifacts")
                    .join(format!("{engine:?}").to_lowercase())
            })
            .or_else(|| opts.artifacts.clone()),
        ..opts.clone()
    };
    let _bar = ftpnat::progress::Guard::start(2 * scenarios.len() as u64, "diff");
    let run = |engine: EngineKind| {
        ftpnat::progress::message(format!("{engine:?} engine").to_lowercase());
        runner::run_all(scenarios, &with(engine), jobs, &|_, r| {
            ftpnat::progress::message(format!("{engine:?}: {}", r.name).to_lowercase());
            ftpnat::progress::inc(1);
        })
    };
    let sim = run(EngineKind::Sim);
    let kernel = run(EngineKind::Kernel);
    let mut rows = Vec::new();
    for ((a, b), sc) in sim.iter().zip(&kernel).zip(scenarios) {
        if let Some(mut d) = runner::disagreement(a, b) {
            if d == Disagreement::Behaviour && sc.tags.iter().any(|t| t == "kernel-differs") {
                d = Disagreement::Documented;
            }
            let why = b
                .failure
                .clone()
                .or_else(|| a.failure.clone())
                .unwrap_or_default();
            rows.push(Row {
                name: a.name.clone(),
                sim: a.status,
                kernel: b.status,
                kind: d,
                why: why.lines().next().unwrap_or("").to_string(),
            });
        }
    }
    if let Some(dir) = html {
        use ftpnat::report::html::{grid, RunInfo};
        let (sim_opts, kernel_opts) = (with(EngineKind::Sim), with(EngineKind::Kernel));
        let column =
            |name: &str, results: &[ftpnat::outcome::ScenarioResult], o: &'_ RunOptions| {
                grid::Column {
                    name: name.into(),
                    scenarios: scenarios
                        .iter()
                        .map(|s| super::html::as_run(s, o))
                        .collect(),
                    results: results.to_vec(),
                    artifacts: None,
                }
            };
        let mut columns = vec![
            column("sim", &sim, &sim_opts),
            column("kernel", &kernel, &kernel_opts),
        ];
        columns[0].artifacts = sim_opts.artifacts.as_deref();
        columns[1].artifacts = kernel_opts.artifacts.as_deref();
        let notes = rows
            .iter()
            .map(|r| (r.name.clone(), format!("{:?}: {}", r.kind, r.why)))
            .collect();
        grid::write(
            dir,
            &RunInfo::new(
                "ftpnat diff",
                vec![("engines".into(), "sim, kernel".into())],
            ),
            &columns,
            &notes,
        )
        .map_err(|e| {
            CliError::Failed(format!("writing the HTML report to {}: {e}", dir.display()))
        })?;
        eprintln!("HTML report: {}", dir.join("index.html").display());
    }
    let count = |k| rows.iter().filter(|r| r.kind == k).count();
    let behaviour = count(Disagreement::Behaviour);
    match format {
        Format::Human => {
            for r in &rows {
                outln!(
                    "{}: sim {:?}, kernel {:?} — {:?}\n    {}",
                    r.name,
                    r.sim,
                    r.kernel,
                    r.kind,
                    r.why
                );
            }
            outln!(
                "{} scenarios: {} agree, {} differ ({} in behaviour, {} documented (tag kernel-differs), {} not expressible in the kernel, {} sim-only counters, {} not supported here)",
                sim.len(),
                sim.len() - rows.len(),
                rows.len(),
                behaviour,
                count(Disagreement::Documented),
                count(Disagreement::NotExpressible),
                count(Disagreement::SimOnlyCounter),
                count(Disagreement::NotSupportedHere),
            );
        }
        Format::Json => {
            let v: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| serde_json::json!({"name": r.name, "sim": r.sim, "kernel": r.kernel, "kind": r.kind, "detail": r.why}))
                .collect();
            outln!(
                "{}",
                serde_json::json!({"scenarios": sim.len(), "disagreements": v})
            );
        }
    }
    Ok(found(behaviour > 0))
}
