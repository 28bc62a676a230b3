//! `ftpnat completions SHELL`: a shell completion script.

use std::process::ExitCode;

use super::CliError;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// Prints the completion script of `cli` (the whole command line).
pub(crate) fn run(a: Args, mut cli: clap::Command) -> Result<ExitCode, CliError> {
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cli, "ftpnat", &mut buf);
    out!("{}", String::from_utf8_lossy(&buf));
    Ok(ExitCode::SUCCESS)
}
