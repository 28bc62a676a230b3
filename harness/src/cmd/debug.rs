//! `ftpnat debug …`: developer helpers (hidden from help).

use std::process::ExitCode;

use clap::Subcommand;
use ftpnat::topology::{netns, NsProcess, Topology, TopologySpec};

use super::CliError;

#[derive(Subcommand, Debug)]
pub(crate) enum DebugCmd {
    /// Build the example NAT topology with a sleeper in `server`, print
    /// `holding <prefix>`, and wait for standard input to close.
    Hold,
}

pub(crate) fn run(what: DebugCmd) -> Result<ExitCode, CliError> {
    let DebugCmd::Hold = what;
    let topo = Topology::build(&TopologySpec::nat_example()).map_err(CliError::failed)?;
    let dir = netns::run_tempdir().map_err(CliError::failed)?;
    let _sleeper = topo
        .command("server", "sleep", &["3600"])
        .and_then(|c| NsProcess::spawn(c, dir.path(), &format!("{}-sleep", topo.prefix)))
        .map_err(CliError::failed)?;
    outln!("holding {}", topo.prefix);
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    Ok(ExitCode::SUCCESS)
}
