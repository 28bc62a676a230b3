//! `ftpnat schema`: the JSON Schema of scenario files.

use std::process::ExitCode;

use super::CliError;

pub(crate) fn run() -> Result<ExitCode, CliError> {
    outln!("{}", ftpnat::scenario::json_schema());
    Ok(ExitCode::SUCCESS)
}
