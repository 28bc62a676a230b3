//! `ftpnat matrix`: scenarios × (server kind × engine) as a Markdown table.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use ftpnat::{
    actor::command::CommandSpec,
    outcome::Status,
    profile::Profile,
    runner::{self, RunOptions},
    scenario::resolve::ServerKind,
};

use super::{default_jobs, CliError, Engine};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Scenario files or folders.
    pub(crate) paths: Vec<PathBuf>,
    /// Server kinds (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "reference,vsftpd,proftpd,pure-ftpd"
    )]
    pub(crate) kinds: Vec<ServerKind>,
    /// Engines (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sim,kernel")]
    pub(crate) engines: Vec<Engine>,
    /// Scenarios run at once.
    #[arg(long)]
    pub(crate) jobs: Option<usize>,
    /// Write the table here instead of standard output.
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
    /// Add your own server as a column: `command:PROGRAM [ARGS…]`
    /// (with --server-config, --profile and --server-name).
    #[arg(long, value_name = "command:PROGRAM")]
    pub(crate) server: Option<String>,
    /// Config template for --server.
    #[arg(long, value_name = "TEMPLATE", requires = "server")]
    pub(crate) server_config: Option<PathBuf>,
    /// Profile for --server.
    #[arg(long, value_name = "FILE", requires = "server")]
    pub(crate) profile: Option<PathBuf>,
    /// Column name for --server.
    #[arg(long, default_value = "command", requires = "server")]
    pub(crate) server_name: String,
    /// Also write an HTML report here: the grid, each cell linking to that
    /// server and engine's page with its ladder.
    #[arg(long, value_name = "DIR")]
    pub(crate) html: Option<PathBuf>,
}

pub(crate) fn run(a: Args) -> Result<ExitCode, CliError> {
    let scenarios = super::load_all(a.paths)?;
    let jobs = a.jobs.unwrap_or_else(default_jobs);
    // (column name, options without the engine)
    let mut servers: Vec<(String, RunOptions)> = a
        .kinds
        .iter()
        .map(|kind| {
            let opts = RunOptions {
                server_kind: Some(*kind),
                no_pcap: true,
                profile: Profile::builtin(kind.name()).map(Arc::new),
                ..Default::default()
            };
            (kind.name().to_string(), opts)
        })
        .collect();
    if let Some(cmd) = a.server {
        let command = CommandSpec::parse(&cmd, a.server_config).map_err(CliError::input)?;
        let profile = a
            .profile
            .map(|f| Profile::load(&f))
            .transpose()
            .map_err(CliError::input)?;
        let opts = RunOptions {
            command: Some(Arc::new(command)),
            profile: profile.map(Arc::new),
            no_pcap: true,
            ..Default::default()
        };
        servers.push((a.server_name, opts));
    }
    let mut columns = Vec::new();
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); scenarios.len()];
    let mut runs = Vec::new();
    let _bar = ftpnat::progress::Guard::start(
        (servers.len() * a.engines.len() * scenarios.len()) as u64,
        "matrix",
    );
    for (name, base) in &servers {
        for engine in &a.engines {
            let column = format!("{name} / {}", engine.name());
            let artifacts = a.html.as_ref().map(|h| {
                h.join("artifacts")
                    .join(ftpnat::report::html::grid::slug(&column))
            });
            let opts = RunOptions {
                engine: Some(engine.kind()),
                no_pcap: a.html.is_none(),
                artifacts: artifacts.clone(),
                ..base.clone()
            };
            let results = runner::run_all(&scenarios, &opts, jobs, &|_, r| {
                ftpnat::progress::message(format!("{column}: {}", r.name));
                ftpnat::progress::inc(1);
            });
            for (i, r) in results.iter().enumerate() {
                cells[i].push(cell(r.status).into());
            }
            if a.html.is_some() {
                let as_run = scenarios
                    .iter()
                    .map(|s| super::html::as_run(s, &opts))
                    .collect::<Vec<_>>();
                runs.push((column.clone(), as_run, results, artifacts));
            }
            columns.push(column);
        }
    }
    if let Some(dir) = &a.html {
        use ftpnat::report::html::{grid, RunInfo};
        let cols: Vec<grid::Column<'_>> = runs
            .into_iter()
            .map(|(name, scenarios, results, _)| grid::Column {
                name,
                scenarios,
                results,
                artifacts: None,
            })
            .collect();
        let roots: Vec<PathBuf> = cols
            .iter()
            .map(|c| dir.join("artifacts").join(grid::slug(&c.name)))
            .collect();
        let cols: Vec<grid::Column<'_>> = cols
            .into_iter()
            .zip(&roots)
            .map(|(c, r)| grid::Column {
                artifacts: Some(r.as_path()),
                ..c
            })
            .collect();
        grid::write(
            dir,
            &RunInfo::new(
                "ftpnat matrix",
                vec![("columns".into(), columns.join(", "))],
            ),
            &cols,
            &Default::default(),
        )
        .map_err(|e| {
            CliError::Failed(format!("writing the HTML report to {}: {e}", dir.display()))
        })?;
        eprintln!("HTML report: {}", dir.join("index.html").display());
    }
    let names = scenarios.iter().map(|s| s.name.as_str());
    let md = table(&columns, names, &cells);
    match a.output {
        Some(p) => {
            std::fs::write(&p, &md).map_err(|e| CliError::Input(format!("{}: {e}", p.display())))?
        }
        None => out!("{md}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn cell(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Unsupported => "n/a",
        Status::NotSupportedHere => "not here",
        Status::Error => "error",
        Status::Fail => "**FAIL**",
    }
}

/// The Markdown table with a totals line per column.
fn table<'a>(
    columns: &[String],
    scenarios: impl Iterator<Item = &'a str>,
    cells: &[Vec<String>],
) -> String {
    let mut md = format!(
        "| scenario | {} |\n|---|{}\n",
        columns.join(" | "),
        "---|".repeat(columns.len())
    );
    for (sc, row) in scenarios.zip(cells) {
        md.push_str(&format!("| {sc} | {} |\n", row.join(" | ")));
    }
    for (j, col) in columns.iter().enumerate() {
        let pass = cells.iter().filter(|r| r[j] == "pass").count();
        let na = cells.iter().filter(|r| r[j] == "n/a").count();
        md.push_str(&format!(
            "\n{col}: {pass} pass, {na} not applicable, {} fail/error",
            cells.len() - pass - na
        ));
    }
    md.push('\n');
    md
}
