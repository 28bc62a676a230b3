//! `ftpnat suite`: the scenarios, profiles, rule sets and server templates
//! built into the binary.

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;

use super::CliError;

#[derive(Subcommand, Debug)]
pub(crate) enum SuiteCmd {
    /// Write the built-in files into DIR for editing: DIR/conformance (the
    /// suite), DIR/profiles, DIR/rulesets, DIR/probes, DIR/servers. With
    /// DIR = scenarios, `ftpnat run` in the current folder then runs your
    /// copy. Files you changed are kept unless --force.
    Export {
        /// Destination folder (created).
        dir: PathBuf,
        /// Overwrite files whose content differs from the built-in one.
        #[arg(long)]
        force: bool,
    },
    /// List the built-in files (paths below `scenarios/`).
    List,
}

pub(crate) fn run(what: SuiteCmd) -> Result<ExitCode, CliError> {
    match what {
        SuiteCmd::List => {
            for (p, _) in ftpnat::suite::files() {
                outln!("{}", p.display());
            }
        }
        SuiteCmd::Export { dir, force } => {
            let done = ftpnat::suite::export(&dir, force).map_err(CliError::input)?;
            let total = ftpnat::suite::files().len();
            outln!(
                "wrote {} file(s) into {} ({} already up to date)",
                done.written.len(),
                dir.display(),
                total - done.written.len() - done.kept.len()
            );
            for k in &done.kept {
                outln!("kept (yours differs; --force overwrites): {}", k.display());
            }
            outln!(
                "run it: ftpnat run {}",
                dir.join(ftpnat::suite::CONFORMANCE).display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
