//! `ftpnat image build`: the container images of the docker substrate.

use std::process::ExitCode;

use clap::Subcommand;

use super::CliError;

#[derive(Subcommand, Debug)]
pub(crate) enum ImageCmd {
    /// Build `ftpnat/base` (Debian bookworm minbase by debootstrap from the
    /// mirror apt uses, with iproute2, nftables, curl, lftp, python3, vsftpd,
    /// proftpd-basic, pure-ftpd; no daemon ever started) and `ftpnat/server`
    /// (base + ftpnat-server), tagged by a hash of their inputs and
    /// `:latest`; up-to-date images are not rebuilt. Needs root and Docker.
    Build {
        /// Rebuild even when the tags exist.
        #[arg(long)]
        force: bool,
    },
}

pub(crate) fn run(what: ImageCmd) -> Result<ExitCode, CliError> {
    let ImageCmd::Build { force } = what;
    let bin = std::env::current_exe()
        .map_err(CliError::input)?
        .with_file_name("ftpnat-server");
    let b = ftpnat::topology::docker::build_images(&bin, force).map_err(CliError::Failed)?;
    outln!(
        "{} {} and {} (also :latest)",
        if b.built { "built" } else { "up to date:" },
        b.base,
        b.server
    );
    Ok(ExitCode::SUCCESS)
}
