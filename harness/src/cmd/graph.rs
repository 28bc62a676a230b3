//! `ftpnat graph`: a scenario's network as SVG.

use std::{path::PathBuf, process::ExitCode};

use ftpnat::{report, scenario};

use super::CliError;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Scenario file.
    pub(crate) file: PathBuf,
    /// Output file.
    #[arg(short, long, default_value = "topology.svg")]
    pub(crate) output: PathBuf,
}

pub(crate) fn run(a: Args) -> Result<ExitCode, CliError> {
    let sc = scenario::load(&a.file).map_err(|d| CliError::Scenarios(vec![d.pretty()]))?;
    std::fs::write(&a.output, report::svg::topology_svg(&sc))
        .map_err(|e| CliError::Input(format!("{}: {e}", a.output.display())))?;
    Ok(ExitCode::SUCCESS)
}
