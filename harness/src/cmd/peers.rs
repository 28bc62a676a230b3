//! `ftpnat peers`: the real FTP servers run next to the reference server
//! (vsftpd, ProFTPD, Pure-FTPd unpacked from Debian's packages; pyftpdlib
//! in a virtualenv), in a per-user folder found from any directory.

use std::process::ExitCode;

use clap::Subcommand;
use ftpnat::peers;

use super::CliError;

#[derive(Subcommand, Debug)]
pub(crate) enum PeersCmd {
    /// Unpack the peers into the per-user folder (`ftpnat peers path`):
    /// `apt-get download` + `dpkg -x` (no daemon is installed or started),
    /// their shared libraries with apt (as root), pyftpdlib from PyPI in a
    /// virtualenv. Peers already there are kept.
    Install {
        /// Only these (vsftpd, proftpd, pure-ftpd, pyftpdlib); default all.
        names: Vec<String>,
        /// Unpack again even when a peer is there.
        #[arg(long)]
        force: bool,
    },
    /// Print the per-user peers folder ($FTPNAT_PEERS, else
    /// $XDG_CACHE_HOME/ftpnat/peers, else ~/.cache/ftpnat/peers).
    Path,
}

pub(crate) fn run(what: PeersCmd) -> Result<ExitCode, CliError> {
    match what {
        PeersCmd::Path => {
            outln!("{}", peers::dir().display());
            Ok(ExitCode::SUCCESS)
        }
        PeersCmd::Install { names, force } => {
            let done = peers::install(&names, force).map_err(CliError::Input)?;
            for l in &done.lines {
                outln!("{l}");
            }
            if done.complete {
                Ok(ExitCode::SUCCESS)
            } else {
                Err(CliError::Failed(
                    "some peers were not installed (see above); `ftpnat doctor` shows what is missing"
                        .into(),
                ))
            }
        }
    }
}
