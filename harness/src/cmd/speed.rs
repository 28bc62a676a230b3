//! `ftpnat speed`: one large RETR and STOR per server over loopback and a
//! veth pair, with ratios to vsftpd and (with `--tls`) to plain FTP.

use std::process::ExitCode;

use ftpnat::{scenario::resolve::ServerKind, tools::speed};

use super::{CliError, Format, ServerArgs};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// MiB per transfer.
    #[arg(long, default_value_t = 1024)]
    pub(crate) size_mib: u64,
    /// Servers (default reference, vsftpd, ProFTPD; Pure-FTPd and your
    /// own with --servers / --server).
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// Paths (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "loopback,veth"
    )]
    pub(crate) paths: Vec<speed::PathKind>,
    /// Rounds; each row reports the median round.
    #[arg(long, default_value_t = 3)]
    pub(crate) repeat: usize,
    /// Also measure every server over explicit FTPS (AUTH TLS, PROT P,
    /// session reuse), with its ratio to plain FTP in the same run.
    #[arg(long)]
    pub(crate) tls: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub(crate) format: Format,
}

pub(crate) fn run(a: Args) -> Result<ExitCode, CliError> {
    if !(1..=16384).contains(&a.size_mib) {
        return Err(CliError::Input("--size-mib from 1 to 16384".into()));
    }
    let targets = a.server.targets(&[
        ServerKind::Reference,
        ServerKind::Vsftpd,
        ServerKind::Proftpd,
    ])?;
    let rows = speed::run(&targets, &a.paths, a.size_mib << 20, a.repeat, a.tls)
        .map_err(CliError::Failed)?;
    match a.format {
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        ),
        Format::Human => {
            outln!("| path | server | transfer | MiB/s | × vsftpd | × plain | server CPU s/GiB |");
            outln!("|---|---|---|---|---|---|---|");
            for r in &rows {
                outln!(
                    "| {:?} | {}{} | {} {} MiB | {:.0} | {} | {} | {:.2} |",
                    r.path,
                    r.server,
                    if r.tls { " (FTPS)" } else { "" },
                    r.direction,
                    r.bytes >> 20,
                    r.mib_per_s,
                    r.vs_vsftpd.map_or("–".into(), |v| format!("{v:.2}")),
                    r.vs_plain.map_or("–".into(), |v| format!("{v:.2}")),
                    r.cpu_s_per_gib
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
