//! `ftpnat probe passive`: each server's passive-allocation curve from the
//! outside (reply latency, errors, fallbacks, killed sessions and
//! reachability through the NAT against the number of pending PASVs held),
//! as a Markdown table or JSON.

use std::process::ExitCode;

use clap::Subcommand;
use ftpnat::tools::{
    load::{self, LoadRow, LoadSpec},
    probe::{self, PassiveCommand, ProbeReport, ProbeSpec},
};

use super::{CliError, Engine, Format, ServerArgs};

#[derive(Subcommand, Debug)]
pub(crate) enum ProbeCmd {
    /// Hold k pending PASVs (EPSVs) for k = 0 … past the range size and
    /// measure, at each occupancy, the reply latency (p50/p99), the share
    /// of replies in the range, outside it (fallback), errors and killed
    /// sessions, and whether the announced port accepts a connection
    /// through the NAT (or the router answers RST). Every server side by
    /// side: the reference server, vsftpd, ProFTPD, Pure-FTPd and your
    /// --server. Bounded; stops by itself.
    Passive(Args),
}

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Passive range size R (ports from 60000).
    #[arg(long, default_value_t = 10)]
    pub(crate) ports: u16,
    /// Sweep k from 0 to this many held PASVs (default: 1.5 × R + 1).
    #[arg(long)]
    pub(crate) max_held: Option<usize>,
    /// Probe samples at each k.
    #[arg(long, default_value_t = 8)]
    pub(crate) samples: usize,
    /// The passive command: pasv or epsv.
    #[arg(long, value_enum, default_value = "pasv")]
    pub(crate) command: PassiveCommand,
    /// The reference server's exhaustion policy: refuse, fallback or wait
    /// (1 s); the other servers do what they do.
    #[arg(long, default_value = "refuse")]
    pub(crate) policy: String,
    /// Gateway engine.
    #[arg(long, value_enum, default_value = "sim")]
    pub(crate) engine: Engine,
    /// Stop a server's sweep after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub(crate) limit: u64,
    /// The servers (default: every built-in kind).
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub(crate) format: Format,
    /// Also measure each server's throughput under exhaustion with
    /// `ftpnat load` on the same range (max(50, 4 × R) clients × 4
    /// downloads, paced arrivals, 3 runs each), printed after the curves
    /// (JSON: `{"curves": […], "load": […]}`).
    #[arg(long)]
    pub(crate) with_load: bool,
    /// Also write an HTML page here (DIR/index.html): the curves as SVG
    /// plots (latency and failure share against pending PASVs held) and
    /// each server's table.
    #[arg(long, value_name = "DIR")]
    pub(crate) html: Option<std::path::PathBuf>,
}

pub(crate) fn run(what: ProbeCmd) -> Result<ExitCode, CliError> {
    let ProbeCmd::Passive(a) = what;
    let max_held = a.max_held.unwrap_or(usize::from(a.ports) * 3 / 2 + 1);
    if !(1..=1000).contains(&a.ports)
        || !(1..=2000).contains(&max_held)
        || !(1..=1000).contains(&a.samples)
        || !["fallback", "refuse", "wait"].contains(&a.policy.as_str())
        || !(1..=3600).contains(&a.limit)
    {
        return Err(CliError::Input(
            "--ports 1 to 1000; --max-held 1 to 2000; --samples 1 to 1000; --policy fallback, refuse or wait; --limit 1 to 3600 s".into(),
        ));
    }
    let targets = a.server.targets(&super::ALL_KINDS)?;
    let mut reports = Vec::new();
    for t in targets {
        let spec = ProbeSpec {
            engine: a.engine.name().into(),
            ports: a.ports,
            max_held,
            samples: a.samples,
            command: a.command,
            policy: a.policy.clone(),
            limit: std::time::Duration::from_secs(a.limit),
            ..ProbeSpec::new(t)
        };
        reports.push(probe::run(&spec).map_err(CliError::Failed)?);
    }
    let rows = if a.with_load {
        let specs: Vec<LoadSpec> = reports
            .iter()
            .map(|r| LoadSpec {
                engine: a.engine.name().into(),
                clients: (4 * usize::from(a.ports)).max(50),
                server: r.spec.server.clone(),
                ..LoadSpec::new(a.ports, &a.policy)
            })
            .collect();
        load::run_rows(&specs, 3).map_err(CliError::Failed)?
    } else {
        Vec::new()
    };
    if let Some(dir) = &a.html {
        use ftpnat::report::html::probe::{render, ProbeCurve};
        let params = vec![
            ("engine".to_string(), a.engine.name().to_string()),
            ("passive range".into(), format!("{} ports", a.ports)),
            ("command".into(), format!("{:?}", a.command).to_uppercase()),
            ("samples per occupancy".into(), a.samples.to_string()),
        ];
        let curves: Vec<ProbeCurve> = reports.iter().map(ProbeCurve::from_report).collect();
        std::fs::create_dir_all(dir)
            .and_then(|()| {
                std::fs::write(
                    dir.join("index.html"),
                    render(
                        "ftpnat probe passive",
                        &params,
                        &curves,
                        &rows.iter().map(LoadRow::cells).collect::<Vec<_>>(),
                    ),
                )
            })
            .map_err(|e| CliError::Failed(format!("writing {}: {e}", dir.display())))?;
        eprintln!("HTML report: {}", dir.join("index.html").display());
    }
    match (a.format, a.with_load) {
        (Format::Json, false) => outln!(
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        ),
        (Format::Json, true) => outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "curves": reports, "load": rows }))
                .unwrap_or_default()
        ),
        (Format::Human, _) => {
            print_table(&reports);
            if !rows.is_empty() {
                outln!();
                super::load::print_table(&rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(reports: &[ProbeReport]) {
    let Some(first) = reports.iter().find_map(|r| r.levels.first()) else {
        return;
    };
    let names: Vec<String> = first.cells().into_iter().map(|(k, _)| k).collect();
    outln!("| server | policy | {} |", names.join(" | "));
    outln!("|{}", "---|".repeat(names.len() + 2));
    for r in reports {
        let s = &r.spec;
        let (name, policy) = (&s.server.name, s.server.policy_cell(&s.policy));
        for l in &r.levels {
            let cells: Vec<String> = l
                .cells()
                .into_iter()
                .map(|(_, v)| v.replace('|', "\\|"))
                .collect();
            outln!("| {name} | {policy} | {} |", cells.join(" | "));
        }
        if !r.holder_failures.is_empty() {
            let h: Vec<String> = r
                .holder_failures
                .iter()
                .map(|(k, v)| format!("{v}× {k}"))
                .collect();
            outln!(
                "| {name} | {policy} | holders refused or killed: {} |{}",
                h.join("; ").replace('|', "\\|"),
                " |".repeat(names.len() - 1)
            );
        }
    }
}
