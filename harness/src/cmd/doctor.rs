//! `ftpnat doctor`: what this machine offers the harness and what it
//! lacks, each missing item with what it disables and how to get it.

use std::process::ExitCode;

use super::{CliError, Format};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Output format on stdout: a table, or JSON ({"checks": [{area, name,
    /// ok, found, disables, install, essential}], "essentials_ok"}).
    #[arg(long, value_enum, default_value = "human")]
    pub(crate) format: Format,
}

pub(crate) fn run(a: Args) -> Result<ExitCode, CliError> {
    let report = ftpnat::machine::examine();
    match a.format {
        Format::Human => out!("{}", report.table()),
        Format::Json => outln!(
            "{}",
            serde_json::json!({
                "checks": report.checks,
                "essentials_ok": report.essentials_ok(),
            })
        ),
    }
    Ok(super::found(!report.essentials_ok()))
}
