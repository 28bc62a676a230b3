//! `ftpnat check`: validate scenario files without running them.

use std::{path::PathBuf, process::ExitCode};

use super::CliError;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Scenario files or folders.
    #[arg(required = true)]
    pub(crate) paths: Vec<PathBuf>,
}

pub(crate) fn run(a: Args) -> Result<ExitCode, CliError> {
    let scenarios = super::load_all(a.paths)?;
    outln!("{} scenario file(s) valid", scenarios.len());
    Ok(ExitCode::SUCCESS)
}
