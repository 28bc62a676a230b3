//! `ftpnat man DIR`: man pages, ftpnat.1 and one per subcommand.

use std::{path::PathBuf, process::ExitCode};

use super::CliError;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Folder to write the pages into (created if missing).
    pub(crate) dir: PathBuf,
}

/// Writes the pages of `cli` (the whole command line).
pub(crate) fn run(a: Args, cli: clap::Command) -> Result<ExitCode, CliError> {
    let n = write_pages(&a.dir, cli)
        .map_err(|e| CliError::Input(format!("{}: {e}", a.dir.display())))?;
    outln!("wrote {n} man pages to {}", a.dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes ftpnat.1 and ftpnat-SUB.1 for every visible subcommand; returns
/// how many.
pub(crate) fn write_pages(dir: &std::path::Path, cmd: clap::Command) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut n = 0;
    let mut page = |c: clap::Command, name: String| -> std::io::Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c.name(name.clone())).render(&mut buf)?;
        std::fs::write(dir.join(format!("{name}.1")), buf)?;
        n += 1;
        Ok(())
    };
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        page(sub.clone(), format!("ftpnat-{}", sub.get_name()))?;
    }
    page(cmd, "ftpnat".into())?;
    Ok(n)
}
