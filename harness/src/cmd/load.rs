//! `ftpnat load`: throughput under passive-range exhaustion (one spec, or
//! the preset table), every server side by side, each row repeated with
//! its spread, as a Markdown table or JSON.

use std::process::ExitCode;

use ftpnat::{
    scenario::resolve::ServerKind,
    tools::load::{self, Arrivals, LoadRow, LoadSpec},
};

use super::{CliError, Engine, Format, ServerArgs};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Clients (sessions).
    #[arg(long, default_value_t = 50)]
    pub(crate) clients: usize,
    /// Transfers per client.
    #[arg(long, default_value_t = 4)]
    pub(crate) transfers: usize,
    /// Bytes per transfer.
    #[arg(long, default_value_t = 16384)]
    pub(crate) size: u64,
    /// Passive range size (ports from 60000).
    #[arg(long, default_value_t = 2)]
    pub(crate) ports: u16,
    /// The reference server's exhaustion policy: fallback, refuse or wait
    /// (the other servers do what they do).
    #[arg(long, default_value = "wait")]
    pub(crate) policy: String,
    /// What the NAT forwards besides 21: `range` or `all`.
    #[arg(long, default_value = "range")]
    pub(crate) forward: String,
    /// Gateway engine.
    #[arg(long, value_enum, default_value = "sim")]
    pub(crate) engine: Engine,
    /// Stop a run after this many seconds whatever is left.
    #[arg(long, default_value_t = 120)]
    pub(crate) limit: u64,
    /// The reference server's passive mode: per-transfer or pooled.
    #[arg(long, default_value = "per-transfer")]
    pub(crate) passive_mode: String,
    /// Spread the clients over this many outside addresses.
    #[arg(long, default_value_t = 1)]
    pub(crate) client_addrs: usize,
    /// One-way delay on the NAT's WAN side, ms (sim engine): an internet
    /// round trip, which makes every port be held longer.
    #[arg(long, default_value_t = 0)]
    pub(crate) wan_delay_ms: u32,
    /// How clients arrive: `paced:N` (default paced:16: a client connects
    /// when fewer than N are waiting for their 220, so the listen queue
    /// never fills and the passive range is what runs out), `burst` (all
    /// at once: the listen queue overflows first), `ramp:MS` (evenly over
    /// MS ms) or `poisson:RATE` (per second).
    #[arg(long, default_value = "paced:16", value_parser = |s: &str| s.parse::<Arrivals>())]
    pub(crate) arrivals: Arrivals,
    /// Runs of every row (rounds interleaved); the table shows min /
    /// median / max.
    #[arg(long, default_value_t = 3)]
    pub(crate) repeat: usize,
    /// The servers (default: the reference server).
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// Run the preset table and print it as Markdown: for R = 2, 10, 100,
    /// the reference server with every policy (range forwarded), fallback
    /// with every port forwarded, pooled mode from 4 client addresses,
    /// then vsftpd, ProFTPD, Pure-FTPd and your --server with their own
    /// behaviour (at least 4 × R clients).
    #[arg(long)]
    pub(crate) table: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub(crate) format: Format,
    /// Also write an HTML page here (DIR/index.html): the table and SVG
    /// plots of transfers/s and PASV latency by range size and policy, and
    /// of passive-range occupancy over time.
    #[arg(long, value_name = "DIR")]
    pub(crate) html: Option<std::path::PathBuf>,
}

pub(crate) fn run(a: Args) -> Result<ExitCode, CliError> {
    if !["fallback", "refuse", "wait"].contains(&a.policy.as_str())
        || !["range", "all"].contains(&a.forward.as_str())
        || !["per-transfer", "pooled"].contains(&a.passive_mode.as_str())
        || a.ports == 0
        || a.ports > 5000
        || !(1..=200).contains(&a.client_addrs)
        || !(1..=5000).contains(&a.clients)
        || !(1..=1000).contains(&a.transfers)
        || !(1..=20).contains(&a.repeat)
        || !(1..=3600).contains(&a.limit)
    {
        return Err(CliError::Input("--policy is fallback, refuse or wait; --forward is range or all; --passive-mode is per-transfer or pooled; --ports 1 to 5000; --client-addrs 1 to 200; --clients 1 to 5000; --transfers 1 to 1000; --repeat 1 to 20; --limit 1 to 3600 s".into()));
    }
    let table = a.table;
    let targets = a.server.targets(if table {
        &super::ALL_KINDS
    } else {
        &[ServerKind::Reference]
    })?;
    let base = LoadSpec {
        clients: a.clients,
        transfers: a.transfers,
        size: a.size,
        ports: a.ports,
        policy: a.policy,
        forward: a.forward,
        engine: a.engine.name().into(),
        limit: std::time::Duration::from_secs(a.limit),
        passive_mode: a.passive_mode,
        client_addrs: a.client_addrs,
        server: targets[0].clone(),
        wan_delay_ms: a.wan_delay_ms,
        arrivals: a.arrivals,
    };
    let specs = if table {
        preset_table(&base, &targets)
    } else {
        targets
            .iter()
            .map(|t| LoadSpec {
                server: t.clone(),
                ..base.clone()
            })
            .collect()
    };
    let rows = load::run_rows(&specs, a.repeat).map_err(CliError::Failed)?;
    if let Some(dir) = &a.html {
        let page = ftpnat::report::html::load::LoadPage {
            title: "ftpnat load".into(),
            params: ftpnat::report::html::RunInfo::new(
                "ftpnat load",
                vec![
                    ("engine".into(), a.engine.name().into()),
                    ("arrivals".into(), a.arrivals.to_string()),
                    ("runs per row".into(), a.repeat.to_string()),
                ],
            )
            .params,
            runs: rows
                .iter()
                .map(ftpnat::report::html::load::LoadRun::from_row)
                .collect(),
        };
        std::fs::create_dir_all(dir)
            .and_then(|()| {
                std::fs::write(
                    dir.join("index.html"),
                    ftpnat::report::html::load::render(&page),
                )
            })
            .map_err(|e| CliError::Failed(format!("writing {}: {e}", dir.display())))?;
        eprintln!("HTML report: {}", dir.join("index.html").display());
    }
    match a.format {
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        ),
        Format::Human => print_table(&rows),
    }
    Ok(ExitCode::SUCCESS)
}

/// `--table`: per R = 2, 10, 100, the reference server with every policy
/// (range forwarded), fallback with every port forwarded, pooled mode from
/// 4 client addresses, then each other server with its own behaviour
/// (its policy cell says which: ProFTPD's `own: fallback` compares with
/// the reference server's `fallback` row of the same R).
fn preset_table(base: &LoadSpec, targets: &[ftpnat::tools::target::Target]) -> Vec<LoadSpec> {
    let mut v = Vec::new();
    // The range is only the bottleneck when more clients than ports want
    // one: at least 4 × R clients (R = 100: 400).
    let with = |r: u16, policy: &str, forward: &str| LoadSpec {
        ports: r,
        policy: policy.into(),
        forward: forward.into(),
        clients: base.clients.max(4 * usize::from(r)),
        ..base.clone()
    };
    for r in [2u16, 10, 100] {
        for t in targets {
            if t.is_reference() {
                for p in ["wait", "refuse", "fallback"] {
                    v.push(with(r, p, "range"));
                }
                v.push(with(r, "fallback", "all"));
                v.push(LoadSpec {
                    passive_mode: "pooled".into(),
                    client_addrs: 4,
                    ..with(r, "wait", "range")
                });
            } else {
                v.push(LoadSpec {
                    server: t.clone(),
                    ..with(r, "fallback", "range")
                });
            }
        }
    }
    v
}

/// The rows as a Markdown table.
pub(crate) fn print_table(rows: &[LoadRow]) {
    let Some(first) = rows.first() else { return };
    let names: Vec<String> = first.cells().into_iter().map(|(k, _)| k).collect();
    outln!("| {} |", names.join(" | "));
    outln!("|{}", "---|".repeat(names.len()));
    for row in rows {
        let cells: Vec<String> = row.cells().into_iter().map(|(_, v)| v).collect();
        outln!("| {} |", cells.join(" | "));
    }
}
