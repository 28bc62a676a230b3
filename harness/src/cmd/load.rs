//! `ftpnat load`: throughput under passive-range exhaustion (one spec, or
//! the preset table), as a Markdown table or JSON.

use std::process::ExitCode;

use ftpnat::tools::load::{self, LoadReport, LoadSpec};

use super::{CliError, Engine, Format};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Concurrent clients.
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
    /// Exhaustion policy: fallback, refuse or wait.
    #[arg(long, default_value = "wait")]
    pub(crate) policy: String,
    /// What the NAT forwards besides 21: `range` or `all`.
    #[arg(long, default_value = "range")]
    pub(crate) forward: String,
    /// Gateway engine.
    #[arg(long, value_enum, default_value = "sim")]
    pub(crate) engine: Engine,
    /// Stop after this many seconds whatever is left.
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
    /// The server behind the NAT: reference, vsftpd or proftpd (the
    /// policy and passive mode apply to the reference server only).
    #[arg(long, default_value = "reference")]
    pub(crate) server_kind: String,
    /// Run the preset table and print it as Markdown: R = 2, 10, 100 ×
    /// every policy (range forwarded), fallback with every port
    /// forwarded, pooled mode from 1 and 4 client addresses, and vsftpd
    /// and ProFTPD on the same topology (at least 4 × R clients).
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
        || !["reference", "vsftpd", "proftpd"].contains(&a.server_kind.as_str())
        || a.ports == 0
        || !(1..=200).contains(&a.client_addrs)
    {
        return Err(CliError::Input("--policy is fallback, refuse or wait; --forward is range or all; --passive-mode is per-transfer or pooled; --server-kind is reference, vsftpd or proftpd; --ports at least 1; --client-addrs 1 to 200".into()));
    }
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
        server_kind: a.server_kind,
        wan_delay_ms: a.wan_delay_ms,
    };
    let specs = if a.table {
        preset_table(&base)
    } else {
        vec![base]
    };
    let mut reports = Vec::new();
    for s in &specs {
        reports.push(load::run(s).map_err(CliError::Failed)?);
    }
    if let Some(dir) = &a.html {
        let page = ftpnat::report::html::load::LoadPage {
            title: "ftpnat load".into(),
            params: ftpnat::report::html::RunInfo::new(
                "ftpnat load",
                vec![
                    ("engine".into(), a.engine.name().into()),
                    ("runs".into(), reports.len().to_string()),
                ],
            )
            .params,
            runs: reports
                .iter()
                .map(ftpnat::report::html::load::LoadRun::from_report)
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
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        ),
        Format::Human => print_table(&reports),
    }
    Ok(ExitCode::SUCCESS)
}

/// `--table`: R = 2, 10, 100 × every policy (range forwarded), fallback
/// with every port forwarded, pooled mode from 1 and 4 client addresses,
/// vsftpd and ProFTPD.
fn preset_table(base: &LoadSpec) -> Vec<LoadSpec> {
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
        for p in ["fallback", "refuse", "wait"] {
            v.push(with(r, p, "range"));
        }
        v.push(with(r, "fallback", "all"));
        for addrs in [1, 4] {
            v.push(LoadSpec {
                passive_mode: "pooled".into(),
                client_addrs: addrs,
                ..with(r, "wait", "range")
            });
        }
        for kind in ["vsftpd", "proftpd"] {
            v.push(LoadSpec {
                server_kind: kind.into(),
                ..with(r, "fallback", "range")
            });
        }
    }
    v
}

fn print_table(reports: &[LoadReport]) {
    outln!("| server | R | mode | client addrs | policy | forwarded | completed | failed (by reason) | transfers/s | PASV p50 / p99 ms | hold ms | efficiency | fallbacks |");
    outln!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        let failed: Vec<String> = r.failed.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let reference = r.spec.server_kind == "reference";
        outln!(
            "| {} | {} | {} | {} | {} | {} | {}/{} | {} | {:.0} | {:.1} / {:.1} | {:.2}{} | {:.2} | {} |",
            r.spec.server_kind,
            r.spec.ports,
            if reference { r.spec.passive_mode.as_str() } else { "own" },
            r.spec.client_addrs,
            if reference { r.spec.policy.as_str() } else { "own" },
            r.spec.forward,
            r.completed,
            r.spec.clients * r.spec.transfers,
            if failed.is_empty() { "0".into() } else { failed.join(", ") },
            r.per_second,
            r.pasv_p50_ms,
            r.pasv_p99_ms,
            r.hold_ms,
            if reference { "" } else { "ᶜ" },
            r.efficiency,
            if reference { r.fallbacks.to_string() } else { "–".into() }
        );
    }
}
