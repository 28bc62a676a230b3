//! `ftpnat` command line: parses the arguments and hands them to the
//! subcommand's module in [`cmd`]. Exit codes: 0 all passed, 1 a scenario
//! failed, 2 invalid input or usage ([`cmd::CliError`] decides, in one place).

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cmd;

/// Will FTP work through this NAT/firewall, and how well?
///
/// Scenario files describe a network (hosts, NAT gateways, firewalls), FTP
/// servers and clients in it, and what must happen. `ftpnat run` builds each
/// network in Linux network namespaces, runs it, and reports.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    propagate_version = true,
    after_long_help = "\
Exit codes (every command):
  0    everything passed (scenarios a server or engine cannot run are
       reported \"not supported\", which does not fail a run)
  1    a scenario (or a required validate-ruleset row) failed
  2    invalid input or usage: a scenario file, profile, template, rule
       set or option is wrong, or a tool is missing (the message names
       the file, line and column, or what to install)
  141  standard output was closed (e.g. `ftpnat list | head`)

Most commands need root (network namespaces); run as another user, ftpnat
uses a user namespace where the kernel allows it.

Start with: ftpnat run   (the conformance suite, on the sim engine)
            ftpnat doctor   (what this machine can run, and how to get the rest)
Guide: docs/getting-started.md; reports: docs/report-format.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run scenarios (files or folders; default: ./scenarios/conformance if
    /// present, else the suite built into ftpnat).
    #[command(after_long_help = "\
Examples:
  ftpnat run                                   the suite, reference server, sim engine
  ftpnat run --engine kernel --tag masquerade  nftables in the kernel, one tag
  ftpnat run --server-kind vsftpd              vsftpd with its shipped profile
  ftpnat run --server 'command:/usr/sbin/myftpd -n' \\
             --server-config myftpd.conf.in --profile myftpd.toml
                                               your own server
  ftpnat run --shard 2/4 --junit j.xml --artifacts out/   one CI shard

Exit: 0 all passed or not supported, 1 a scenario failed, 2 bad input.")]
    Run(cmd::run::Args),
    /// Run scenarios across server kinds × engines and print a Markdown table
    /// of which behaviour holds for which peer.
    Matrix(cmd::matrix::Args),
    /// Run scenarios on both engines (sim and kernel) and report where they disagree.
    ///
    /// Exit 1 when the engines behave differently somewhere (settings the kernel
    /// cannot express and sim-only counters are listed, not counted).
    Diff(cmd::diff::Args),
    /// Check a router rule set (nftables) against a battery of FTP-through-NAT
    /// behaviours: control connection, passive (PASV, EPSV), the whole
    /// passive range reachable, exposure, inside clients passive and active,
    /// the FTP helper, hairpin.
    ///
    /// The rule set is loaded (`nft -f`) in a gateway namespace whose
    /// interfaces are named and addressed as on your router. Exit 0 when all
    /// required rows pass, 1 when one fails, 2 when the rule set does not
    /// load (nft's message names the line).
    ValidateRuleset(cmd::validate_ruleset::Args),
    /// Throughput under passive-range exhaustion: clients outside a NAT
    /// downloading from a server behind it — the reference server, vsftpd,
    /// ProFTPD, Pure-FTPd or your own (--server command:…) — each row
    /// repeated with its spread (bounded; stops by itself).
    Load(cmd::load::Args),
    /// Black-box probes of a server from outside a NAT.
    Probe {
        #[command(subcommand)]
        what: cmd::probe::ProbeCmd,
    },
    /// Transfer speed: one large RETR and one STOR per server, over
    /// loopback and over a veth pair between two namespaces, with the
    /// server's CPU time per GiB and each row's ratio to vsftpd's.
    Speed(cmd::speed::Args),
    /// List scenarios with their tags.
    List(cmd::list::Args),
    /// Validate scenario files without running them.
    Check(cmd::check::Args),
    /// Draw a scenario's network as SVG.
    Graph(cmd::graph::Args),
    /// Remove namespaces (and processes inside them) left by dead runs.
    Clean,
    /// Print the JSON Schema of scenario files (for editor completion).
    Schema,
    /// Container images for the docker substrate.
    Image {
        #[command(subcommand)]
        what: cmd::image::ImageCmd,
    },
    /// The built-in conformance suite, profiles, rule sets and server
    /// templates: list them, or export them for editing.
    Suite {
        #[command(subcommand)]
        what: cmd::suite::SuiteCmd,
    },
    /// What this machine offers ftpnat and what it lacks (kernel features,
    /// tools, peers, Docker, privileges), each missing item with what it
    /// disables and the command that gets it. Exit 1 when the main job
    /// (`ftpnat run`) cannot run here.
    Doctor(cmd::doctor::Args),
    /// Scaffold testing your own server: a sample scenario (your server
    /// behind a NAT), a config template and a profile skeleton for the
    /// `command` kind, ftpnat.toml (what `ftpnat run` there runs) and a CI
    /// file wired to --shard, JUnit and artifacts. `ftpnat run` in DIR
    /// then passes against the reference server.
    Init(cmd::init::Args),
    /// Real FTP servers to test next to the reference server (vsftpd,
    /// ProFTPD, Pure-FTPd, pyftpdlib): install them into a per-user folder.
    Peers {
        #[command(subcommand)]
        what: cmd::peers::PeersCmd,
    },
    /// Print a shell completion script, e.g.
    /// `ftpnat completions bash > /etc/bash_completion.d/ftpnat`.
    Completions(cmd::completions::Args),
    /// Write man pages (ftpnat.1 and one per subcommand, ftpnat-run.1, …)
    /// into DIR, e.g. `ftpnat man /usr/local/share/man/man1`.
    Man(cmd::man::Args),
    /// Developer helpers.
    #[command(hide = true)]
    Debug {
        #[command(subcommand)]
        what: cmd::debug::DebugCmd,
    },
}

impl Cmd {
    /// Whether the command builds networks (and so first sweeps what dead
    /// runs left behind).
    fn builds_networks(&self) -> bool {
        matches!(
            self,
            Cmd::Run(_)
                | Cmd::Matrix(_)
                | Cmd::Diff(_)
                | Cmd::ValidateRuleset(_)
                | Cmd::Load(_)
                | Cmd::Probe { .. }
                | Cmd::Speed(_)
        )
    }
}

fn main() -> ExitCode {
    // Started by a run as its cleanup watchdog (see topology::watchdog).
    if ftpnat::topology::watchdog::run_if_asked() {
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(code) => code,
        Err(e) => e.report(),
    }
}

fn run() -> Result<ExitCode, cmd::CliError> {
    // Before any thread exists: unprivileged users get a private user+net namespace.
    ftpnat::topology::rootless::enter_if_unprivileged().map_err(cmd::CliError::input)?;
    let cli = Cli::parse();
    if cli.command.builds_networks() {
        // A kill or an abort of this run leaves nothing either.
        if let Err(e) = ftpnat::topology::watchdog::spawn() {
            eprintln!("warning: no cleanup watchdog ({e}): a killed run leaves its namespaces until the next run sweeps them");
        }
        cmd::sweep_leftovers();
    }
    match cli.command {
        Cmd::Run(a) => cmd::run::run(a),
        Cmd::Matrix(a) => cmd::matrix::run(a),
        Cmd::Diff(a) => cmd::diff::run(a),
        Cmd::ValidateRuleset(a) => cmd::validate_ruleset::run(a),
        Cmd::Load(a) => cmd::load::run(a),
        Cmd::Probe { what } => cmd::probe::run(what),
        Cmd::Speed(a) => cmd::speed::run(a),
        Cmd::List(a) => cmd::list::run(a),
        Cmd::Check(a) => cmd::check::run(a),
        Cmd::Graph(a) => cmd::graph::run(a),
        Cmd::Clean => cmd::clean::run(),
        Cmd::Schema => cmd::schema::run(),
        Cmd::Image { what } => cmd::image::run(what),
        Cmd::Init(a) => cmd::init::run(a),
        Cmd::Doctor(a) => cmd::doctor::run(a),
        Cmd::Suite { what } => cmd::suite::run(what),
        Cmd::Peers { what } => cmd::peers::run(what),
        Cmd::Completions(a) => cmd::completions::run(a, Cli::command()),
        Cmd::Man(a) => cmd::man::run(a, Cli::command()),
        Cmd::Debug { what } => cmd::debug::run(what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ftpnat --help` and every subcommand's help are complete: each
    /// command says what it does and each argument has a help text.
    #[test]
    fn every_command_and_argument_is_documented() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut todo = vec![cli];
        let mut seen = 0;
        while let Some(c) = todo.pop() {
            seen += 1;
            assert!(
                c.get_about().is_some(),
                "`{}` has no description",
                c.get_name()
            );
            for a in c.get_arguments() {
                assert!(
                    a.get_help().is_some() || a.get_long_help().is_some(),
                    "`{}`: argument `{}` has no help",
                    c.get_name(),
                    a.get_id()
                );
            }
            todo.extend(c.get_subcommands().cloned());
        }
        assert!(seen >= 15, "{seen}");
    }

    #[test]
    fn man_pages_cover_every_visible_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let n = cmd::man::write_pages(dir.path(), Cli::command()).unwrap();
        let visible = Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .count();
        assert_eq!(n, visible + 1);
        let run = std::fs::read_to_string(dir.path().join("ftpnat-run.1")).unwrap();
        assert!(run.contains("server\\-config"), "{run}");
        assert!(run.contains("profile"), "{run}");
    }
}
