//! `ftpnat validate-ruleset`: the user's rule set (or router image) through
//! the battery of FTP-through-NAT checks; a table or JSON rows.

use std::{path::PathBuf, process::ExitCode};

use clap::ValueEnum;
use ftpnat::{
    engine::kernel::RulesetFormat,
    outcome::Status,
    scenario::resolve::ServerKind,
    tools::validate_ruleset::{self as ruleset, Params, Row, Settings},
};

use super::{default_jobs, found, CliError, Format};

/// `validate-ruleset --format`: the rule set's syntax and the output.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ValidateFormat {
    /// A table on stdout.
    Human,
    /// JSON rows on stdout.
    Json,
    /// The rule set is nftables.
    Nft,
    /// The rule set is iptables-save output (loaded with iptables-nft-restore).
    Iptables,
}

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The rule set: nftables (as for `nft -f`) or iptables-save output —
    /// or a TOML file naming the rule set and the settings below
    /// (`ruleset`, `format`, `wan`, `lan`, `server`, `passive`,
    /// `server_kind`; paths relative to the TOML file).
    #[arg(required_unless_present = "image")]
    pub(crate) file: Option<PathBuf>,
    /// Instead of a rule set: your router as a local Docker image. Its
    /// entrypoint configures NAT and firewall on the interfaces ftpnat
    /// wires into it (named as in --wan/--lan) and prints a line with
    /// "ready"; the battery runs through it.
    #[arg(long, value_name = "IMAGE:TAG", conflicts_with = "file")]
    pub(crate) image: Option<String>,
    /// Outside interface as on the router: NAME=ADDRESS/PREFIX
    /// [default: wan0=203.0.113.1/24].
    #[arg(long)]
    pub(crate) wan: Option<String>,
    /// Inside interface as on the router: NAME=ADDRESS/PREFIX
    /// [default: lan0=192.168.1.1/24].
    #[arg(long)]
    pub(crate) lan: Option<String>,
    /// The FTP server's inside address [default: 192.168.1.2].
    #[arg(long)]
    pub(crate) server: Option<std::net::Ipv4Addr>,
    /// The server's passive port range [default: 60000-60010].
    #[arg(long)]
    pub(crate) passive: Option<String>,
    /// The FTP server inside [default: reference].
    #[arg(long, value_enum)]
    pub(crate) server_kind: Option<ServerKind>,
    /// Rows run at once.
    #[arg(long)]
    pub(crate) jobs: Option<usize>,
    /// Rule-set syntax (nft, iptables; default: detected from the file)
    /// and output (human, json); comma-separated or repeated, e.g.
    /// `--format iptables,json`.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) format: Vec<ValidateFormat>,
    /// Also write an HTML report here: the battery with causes, and for
    /// each failing row the rule that dropped the probe and its ladder
    /// (rows' artifacts, with pcaps and the nft trace, in DIR/artifacts).
    #[arg(long, value_name = "DIR")]
    pub(crate) html: Option<PathBuf>,
}

pub(crate) fn run(a: Args) -> Result<ExitCode, CliError> {
    let format = if a.format.contains(&ValidateFormat::Json) {
        Format::Json
    } else {
        Format::Human
    };
    let syntax = a.format.iter().rev().find_map(|f| match f {
        ValidateFormat::Nft => Some(RulesetFormat::Nft),
        ValidateFormat::Iptables => Some(RulesetFormat::Iptables),
        _ => None,
    });
    let cli = Settings {
        ruleset: None,
        format: syntax,
        wan: a.wan,
        lan: a.lan,
        server: a.server,
        passive: a.passive,
        server_kind: a.server_kind,
    };
    let mut file = a
        .file
        .unwrap_or_else(|| PathBuf::from(a.image.clone().unwrap_or_default()));
    let settings = if a.image.is_none() && file.extension().is_some_and(|e| e == "toml") {
        let from_file = Settings::load(&file).map_err(CliError::Input)?;
        file = from_file.ruleset.clone().unwrap_or_default();
        cli.over(from_file)
    } else {
        cli
    };
    let params: Params = settings.params().map_err(CliError::Input)?;
    let jobs = a.jobs.unwrap_or_else(default_jobs);
    let kept = a.html.as_ref().map(|h| h.join("artifacts"));
    let runs = match &a.image {
        Some(img) => ruleset::validate_image_kept(img, &params, jobs, kept.as_deref()),
        None => ruleset::validate_kept(&file, &params, jobs, kept.as_deref()),
    }
    .map_err(CliError::input)?;
    let rows = &runs.rows;
    if let (Some(dir), Some(kept)) = (&a.html, &kept) {
        write_html(dir, kept, &file, a.image.as_deref(), &params, &runs)?;
    }
    match format {
        Format::Human => print_table(rows, &file),
        Format::Json => outln!("{}", serde_json::to_string_pretty(rows).unwrap_or_default()),
    }
    Ok(found(
        !rows.iter().all(|r| !r.required || r.status == Status::Pass),
    ))
}

fn print_table(rows: &[Row], file: &std::path::Path) {
    for r in rows {
        let mark = match (r.status, r.required) {
            (Status::Pass, _) => "PASS ",
            (_, true) => "FAIL ",
            (_, false) => "NO   ",
        };
        let kind = if r.required { "" } else { " (optional)" };
        outln!("{mark} {:<28} needs{kind}: {}", r.name, r.needs);
        if let Some(c) = &r.cause {
            outln!("      probable cause: {c}");
        }
    }
    let ok = rows.iter().filter(|r| r.status == Status::Pass).count();
    let req_fail = rows
        .iter()
        .filter(|r| r.required && r.status != Status::Pass)
        .count();
    outln!(
        "{ok} of {} behaviours work with {} ({req_fail} required check(s) failed)",
        rows.len(),
        file.display()
    );
}

fn write_html(
    dir: &std::path::Path,
    kept: &std::path::Path,
    file: &std::path::Path,
    image: Option<&str>,
    params: &Params,
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
    let info = html::RunInfo::new(
        "ftpnat validate-ruleset",
        vec![
            (
                if image.is_some() { "image" } else { "rule set" }.to_string(),
                image.map_or_else(|| file.display().to_string(), str::to_string),
            ),
            ("wan".into(), format!("{} {}", params.wan.0, params.wan.1)),
            ("lan".into(), format!("{} {}", params.lan.0, params.lan.1)),
            (
                "server".into(),
                format!("{} ({})", params.server, params.server_kind.name()),
            ),
            (
                "passive".into(),
                format!("{}-{}", params.passive.0, params.passive.1),
            ),
        ],
    );
    html::ruleset::write(dir, &info, &runs.rows, &entries).map_err(|e| {
        CliError::Failed(format!("writing the HTML report to {}: {e}", dir.display()))
    })?;
    eprintln!("HTML report: {}", dir.join("index.html").display());
    Ok(())
}
