//! `ftpnat clean`: remove what dead runs left behind.

use std::process::ExitCode;

use super::CliError;

pub(crate) fn run() -> Result<ExitCode, CliError> {
    let s = ftpnat::topology::sweep().map_err(CliError::failed)?;
    outln!(
        "removed {} namespace(s), killed {} process(es), removed {} temporary folder(s), removed {} container(s)",
        s.namespaces.len(),
        s.processes.len(),
        s.tempdirs.len(),
        s.containers.len()
    );
    for n in s.namespaces.iter().chain(&s.containers) {
        outln!("  {n}");
    }
    for d in s.tempdirs {
        outln!("  {}", d.display());
    }
    Ok(ExitCode::SUCCESS)
}
