//! `--html DIR` of the commands that run scenarios: the report of
//! [`ftpnat::report::html`] for a set of results.

use std::path::Path;

use ftpnat::{
    outcome::ScenarioResult,
    report::{html, Summary},
    runner::{self, RunOptions},
    scenario::Scenario,
};

use super::CliError;

/// The scenario as the runner ran it under `opts` (engine forced).
pub(crate) fn as_run(sc: &Scenario, opts: &RunOptions) -> Scenario {
    let mut sc = sc.clone();
    if let Some(engine) = opts.engine {
        runner::force_engine(&mut sc, engine);
    }
    sc
}

/// Writes the report of `results` (in the order of `scenarios`) to `dir`.
pub(crate) fn write(
    dir: &Path,
    command: &str,
    params: Vec<(String, String)>,
    scenarios: &[Scenario],
    results: &[ScenarioResult],
    opts: &RunOptions,
    summary: Summary,
) -> Result<(), CliError> {
    let as_run: Vec<Scenario> = scenarios.iter().map(|s| as_run(s, opts)).collect();
    let folders: Vec<Option<std::path::PathBuf>> = results
        .iter()
        .map(|r| {
            opts.artifacts
                .as_ref()
                .map(|a| a.join(runner::sanitize(&r.name)))
                .filter(|d| d.is_dir())
        })
        .collect();
    let entries: Vec<html::Entry<'_>> = results
        .iter()
        .zip(&folders)
        .map(|(r, dir)| html::Entry {
            result: r,
            scenario: as_run.iter().find(|s| s.name == r.name),
            artifacts: dir.as_deref(),
        })
        .collect();
    html::write_run(dir, &html::RunInfo::new(command, params), &entries, summary).map_err(|e| {
        CliError::Failed(format!("writing the HTML report to {}: {e}", dir.display()))
    })?;
    eprintln!("HTML report: {}", dir.join("index.html").display());
    Ok(())
}
