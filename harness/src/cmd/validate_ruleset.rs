//! `ftpnat validate-ruleset`: the user's rule set (or router image) through
//! the battery of FTP-through-NAT checks; a table, or one JSON object
//! (docs/report-format.md) — also for an error (exit 2).

use std::{path::PathBuf, process::ExitCode};

use clap::ValueEnum;
use ftpnat::{
    engine::kernel::RulesetFormat,
    ruleset::host::Versions,
    scenario::resolve::ServerKind,
    tools::validate_ruleset::{self as ruleset, report, ErrorReport, Params, Settings},
};

use super::{default_jobs, found, CliError};

/// `validate-ruleset --format`: the output (human, json). The rule set's
/// syntax used to be given here too; it is `--input` now (both still work).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ValidateFormat {
    /// A table on stdout.
    Human,
    /// One JSON object on stdout.
    Json,
    /// Same as `--input nft`.
    #[value(hide = true)]
    Nft,
    /// Same as `--input iptables`.
    #[value(hide = true)]
    Iptables,
}

/// `validate-ruleset --input`: what FILE is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Input {
    /// nftables (`nft list ruleset`, /etc/nftables.conf, `fw4 print`).
    Nft,
    /// iptables-save output (loaded with iptables-nft-restore).
    Iptables,
    /// A settings file naming the rule set and the options below.
    Toml,
}

/// `--server-masquerade`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum YesNo {
    /// The server announces the public (WAN) address in 227 replies.
    Yes,
    /// The server announces its own inside address.
    No,
}

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The rule set: nftables (as `nft list ruleset` or `fw4 print` prints
    /// it, or the file `nft -f` loads), iptables-save output, both for a
    /// host where nft and iptables-nft wrote rules (`router.nft
    /// router.iptables`) — or a TOML settings file naming the rule set and
    /// the options below (`ruleset`, `input`, `wan`, `lan`, `server`,
    /// `passive`, `server_kind`, `server_masquerade`, `router_services`,
    /// `includepath`; paths relative to it).
    #[arg(required_unless_present = "image", num_args = 1..=2)]
    pub(crate) file: Vec<PathBuf>,
    /// Instead of a rule set: your router as a local Docker image. Its
    /// entrypoint configures NAT and firewall on the interfaces ftpnat
    /// wires into it (named as in --wan/--lan) and prints a line with
    /// "ready"; the battery runs through it.
    #[arg(long, value_name = "IMAGE:TAG", conflicts_with = "file")]
    pub(crate) image: Option<String>,
    /// Outside interface as on the router: NAME=ADDRESS/PREFIX (a /32 for
    /// PPPoE); repeat for more [default: wan0=203.0.113.1/24].
    #[arg(long)]
    pub(crate) wan: Vec<String>,
    /// Inside interface as on the router: NAME=ADDRESS/PREFIX; repeat for
    /// more (the one holding --server carries the test hosts)
    /// [default: lan0=192.168.1.1/24].
    #[arg(long)]
    pub(crate) lan: Vec<String>,
    /// The FTP server's inside address [default: 192.168.1.2].
    #[arg(long)]
    pub(crate) server: Option<std::net::Ipv4Addr>,
    /// The server's passive port range [default: 60000-60010].
    #[arg(long)]
    pub(crate) passive: Option<String>,
    /// The FTP server inside [default: reference].
    #[arg(long, value_enum)]
    pub(crate) server_kind: Option<ServerKind>,
    /// Whether your server announces the public address in 227 replies
    /// (masquerade_address, pasv_address, MasqueradeAddress, -P). `no`
    /// checks a design where the router's FTP helper rewrites them
    /// [default: yes].
    #[arg(long, value_enum)]
    pub(crate) server_masquerade: Option<YesNo>,
    /// More of the router's own TCP ports to probe from outside, besides
    /// 22, 23, 53, 80, 443 and 8080 (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub(crate) router_services: Vec<u16>,
    /// A folder to search for relative includes, after the rule set's own
    /// folder (like nft's -I); repeat for more.
    #[arg(short = 'I', long = "includepath", value_name = "DIR")]
    pub(crate) includepath: Vec<PathBuf>,
    /// What FILE is [default: detected: .toml is settings, a `*table` line
    /// iptables-save output, anything else nftables].
    #[arg(long, value_enum)]
    pub(crate) input: Option<Input>,
    /// Run only these rows (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    pub(crate) rows: Vec<String>,
    /// Rows run at once.
    #[arg(long)]
    pub(crate) jobs: Option<usize>,
    /// Output: human (a table) or json (one object).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) format: Vec<ValidateFormat>,
    /// Also write an HTML report here: the battery with causes, and for
    /// each failing row the rule that dropped the probe and its ladder
    /// (rows' artifacts, with pcaps and the nft trace, in DIR/artifacts).
    #[arg(long, value_name = "DIR")]
    pub(crate) html: Option<PathBuf>,
}

/// The run's parameters and rule set files, from options and settings.
fn settings(a: &Args) -> Result<(Params, Vec<PathBuf>), String> {
    let legacy = a.format.iter().rev().find_map(|f| match f {
        ValidateFormat::Nft => Some(Input::Nft),
        ValidateFormat::Iptables => Some(Input::Iptables),
        _ => None,
    });
    let input = a.input.or(legacy);
    let cli = Settings {
        ruleset: Vec::new(),
        input: match input {
            Some(Input::Nft) => Some(RulesetFormat::Nft),
            Some(Input::Iptables) => Some(RulesetFormat::Iptables),
            _ => None,
        },
        wan: a.wan.clone(),
        lan: a.lan.clone(),
        server: a.server,
        passive: a.passive.clone(),
        server_kind: a.server_kind,
        server_masquerade: a.server_masquerade.map(|m| m == YesNo::Yes),
        router_services: a.router_services.clone(),
        includepath: a.includepath.clone(),
    };
    let is_toml = a.image.is_none()
        && (input == Some(Input::Toml)
            || (input.is_none() && a.file.len() == 1 && ftpnat::ruleset::is_settings(&a.file[0])));
    let (settings, files) = if is_toml {
        if a.file.len() != 1 {
            return Err("--input toml takes one settings file".into());
        }
        let from_file = Settings::load(&a.file[0])?;
        let files = from_file.ruleset.clone();
        (cli.over(from_file), files)
    } else {
        (cli, a.file.clone())
    };
    let mut params = settings.params()?;
    if !a.rows.is_empty() {
        params.rows = Some(a.rows.clone());
    }
    Ok((params, files))
}

pub(crate) fn run(a: Args) -> Result<ExitCode, CliError> {
    let json = a.format.contains(&ValidateFormat::Json);
    let jobs = a.jobs.unwrap_or_else(default_jobs);
    let kept = a.html.as_ref().map(|h| h.join("artifacts"));
    let outcome = settings(&a)
        .map_err(|e| (ruleset::ValidateError::Params(e), Vec::new()))
        .and_then(|(params, files)| {
            match &a.image {
                Some(img) => ruleset::validate_image(img, &params, jobs, kept.as_deref()),
                None => ruleset::validate(&files, &params, jobs, kept.as_deref()),
            }
            .map_err(|e| (e, Vec::new()))
        });
    match outcome {
        Ok(runs) => {
            if let (Some(dir), Some(kept)) = (&a.html, &kept) {
                write_html(dir, kept, &runs)?;
            }
            let r = &runs.report;
            if json {
                outln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                out!("{}", report::human(r));
            }
            Ok(found(r.exit_code != 0))
        }
        Err((e, warnings)) if json => {
            let r = ErrorReport {
                error: e.kind(),
                message: e.message(),
                host_caveat: e.caveat().map(str::to_string),
                host: Versions::here(),
                warnings,
                exit_code: 2,
            };
            outln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            Ok(ExitCode::from(2))
        }
        Err((e, _)) => Err(CliError::Input(e.to_string())),
    }
}

fn write_html(
    dir: &std::path::Path,
    kept: &std::path::Path,
    runs: &ruleset::Runs,
) -> Result<(), CliError> {
    use ftpnat::report::html;
    let folders: Vec<Option<PathBuf>> = runs
        .results
        .iter()
        .map(|r| Some(kept.join(ftpnat::runner::sanitize(&r.name))).filter(|d| d.is_dir()))
        .collect();
    let entries: Vec<html::Entry<'_>> = runs
        .results
        .iter()
        .zip(&folders)
        .map(|(r, d)| html::Entry {
            result: r,
            scenario: runs.scenarios.iter().find(|s| s.name == r.name),
            artifacts: d.as_deref(),
        })
        .collect();
    let p = &runs.report.parameters;
    let mut params = vec![match &p.image {
        Some(i) => ("image".to_string(), i.clone()),
        None => ("rule set".to_string(), p.ruleset.join(" + ")),
    }];
    params.extend([
        ("wan".to_string(), p.wan.join(", ")),
        ("lan".to_string(), p.lan.join(", ")),
        (
            "server".to_string(),
            format!("{} ({})", p.server, p.server_kind),
        ),
        ("passive".to_string(), p.passive.clone()),
        ("nft".to_string(), runs.report.host.nft.clone()),
    ]);
    let info = html::RunInfo::new("ftpnat validate-ruleset", params);
    html::ruleset::write(dir, &info, &runs.report, &entries).map_err(|e| {
        CliError::Failed(format!("writing the HTML report to {}: {e}", dir.display()))
    })?;
    eprintln!("HTML report: {}", dir.join("index.html").display());
    Ok(())
}
