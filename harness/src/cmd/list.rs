//! `ftpnat list`: scenarios with their tags (optionally one shard's).

use std::{path::PathBuf, process::ExitCode};

use super::CliError;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Scenario files or folders.
    pub(crate) paths: Vec<PathBuf>,
    /// Only shard K of N (as `run --shard` would run it).
    #[arg(long, value_name = "K/N")]
    pub(crate) shard: Option<String>,
}

pub(crate) fn run(a: Args) -> Result<ExitCode, CliError> {
    let scenarios = super::apply_shard(super::load_all(a.paths)?, a.shard)?;
    for sc in scenarios {
        outln!(
            "{:<44} [{}] {}",
            sc.name,
            sc.tags.join(","),
            sc.file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
