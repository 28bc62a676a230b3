//! `ftpnat` command line. Exit codes: 0 all passed, 1 a scenario failed,
//! 2 invalid input or usage.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode, time::Instant};

use clap::{Parser, Subcommand, ValueEnum};
use ftpnat::{
    outcome::ScenarioResult,
    report::{self, Summary},
    runner::{self, RunOptions},
    scenario::{self, raw::EngineKind, resolve::ServerKind, Scenario},
};

/// `println!` that ends the program quietly when stdout is closed (e.g.
/// `ftpnat list | head`) instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($t)*) {
            stdout_gone(e)
        }
    }};
}

/// `print!`, likewise.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($t)*) {
            stdout_gone(e)
        }
    }};
}

/// Stdout failed: a closed pipe ends the program like SIGPIPE would (exit
/// 141 without a message); anything else is reported.
fn stdout_gone(e: std::io::Error) -> ! {
    if e.kind() != std::io::ErrorKind::BrokenPipe {
        eprintln!("error: cannot write to standard output: {e}");
    }
    std::process::exit(141)
}

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
Guide: docs/getting-started.md; reports: docs/report-format.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Substrate {
    /// Network namespaces made by ftpnat.
    Netns,
    /// Docker containers (an offline holder image), the same links inside.
    Docker,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum Format {
    Human,
    Json,
}

/// `validate-ruleset --format`: the rule set's syntax and the output.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum ValidateFormat {
    /// A table on stdout.
    Human,
    /// JSON rows on stdout.
    Json,
    /// The rule set is nftables.
    Nft,
    /// The rule set is iptables-save output (loaded with iptables-nft-restore).
    Iptables,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum Engine {
    Sim,
    Kernel,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run scenarios (files or folders; default scenarios/conformance).
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
    Run {
        /// Scenario files or folders.
        paths: Vec<PathBuf>,
        /// Only scenarios whose name matches this regex.
        #[arg(long)]
        filter: Option<String>,
        /// Only scenarios with this tag (repeatable: any of them).
        #[arg(long)]
        tag: Vec<String>,
        /// Scenarios run at once (default: number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Run shard K of N (1-based), e.g. 2/4; every scenario lands in exactly one shard.
        #[arg(long, value_name = "K/N")]
        shard: Option<String>,
        /// Force every gateway onto this engine; `sim,kernel` runs every
        /// scenario on both and reports where they disagree (as `ftpnat diff`).
        #[arg(long, value_enum, value_delimiter = ',')]
        engine: Vec<Engine>,
        /// Output format on stdout.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Also write a JUnit XML report here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Keep per-scenario artifacts (transcripts, server logs, counters, pcaps, topology.svg) here.
        #[arg(long, value_name = "DIR")]
        artifacts: Option<PathBuf>,
        /// Do not capture pcap files on gateway interfaces.
        #[arg(long)]
        no_pcap: bool,
        /// Run every server as this kind (with its shipped profile,
        /// scenarios/profiles/<kind>.toml, unless --profile is given).
        #[arg(long, value_enum, conflicts_with = "server")]
        server_kind: Option<ServerKind>,
        /// Run every server as your own program: `command:PROGRAM [ARGS…]`
        /// ({{placeholders}} allowed; see docs/cookbook/test-my-server-in-ci.md).
        #[arg(long, value_name = "command:PROGRAM")]
        server: Option<String>,
        /// Config template for --server, in the server's own format, with
        /// {{placeholders}}; rendered per scenario.
        #[arg(long, value_name = "TEMPLATE", requires = "server")]
        server_config: Option<PathBuf>,
        /// Server profile (TOML): the server's answers where servers may
        /// differ, and what it cannot do.
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
        /// Where hosts and gateways live: bare network namespaces (default)
        /// or Docker containers (network mode none, wired by ftpnat).
        #[arg(long, value_enum, default_value = "netns")]
        substrate: Substrate,
    },
    /// Run scenarios across server kinds × engines and print a Markdown table
    /// of which behaviour holds for which peer.
    Matrix {
        /// Scenario files or folders.
        paths: Vec<PathBuf>,
        /// Server kinds (comma-separated).
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "reference,vsftpd,proftpd,pure-ftpd"
        )]
        kinds: Vec<ServerKind>,
        /// Engines (comma-separated).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "sim,kernel")]
        engines: Vec<Engine>,
        /// Scenarios run at once.
        #[arg(long)]
        jobs: Option<usize>,
        /// Write the table here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Add your own server as a column: `command:PROGRAM [ARGS…]`
        /// (with --server-config, --profile and --server-name).
        #[arg(long, value_name = "command:PROGRAM")]
        server: Option<String>,
        /// Config template for --server.
        #[arg(long, value_name = "TEMPLATE", requires = "server")]
        server_config: Option<PathBuf>,
        /// Profile for --server.
        #[arg(long, value_name = "FILE", requires = "server")]
        profile: Option<PathBuf>,
        /// Column name for --server.
        #[arg(long, default_value = "command", requires = "server")]
        server_name: String,
    },
    /// Run scenarios on both engines (sim and kernel) and report where they disagree.
    ///
    /// Exit 1 when the engines behave differently somewhere (settings the kernel
    /// cannot express and sim-only counters are listed, not counted).
    Diff {
        /// Scenario files or folders.
        paths: Vec<PathBuf>,
        /// Scenarios run at once.
        #[arg(long)]
        jobs: Option<usize>,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Check a router rule set (nftables) against a battery of FTP-through-NAT
    /// behaviours: control connection, passive (PASV, EPSV), the whole
    /// passive range reachable, exposure, inside clients passive and active,
    /// the FTP helper, hairpin.
    ///
    /// The rule set is loaded (`nft -f`) in a gateway namespace whose
    /// interfaces are named and addressed as on your router. Exit 0 when all
    /// required rows pass, 1 when one fails, 2 when the rule set does not
    /// load (nft's message names the line).
    ValidateRuleset {
        /// The rule set: nftables (as for `nft -f`) or iptables-save output —
        /// or a TOML file naming the rule set and the settings below
        /// (`ruleset`, `format`, `wan`, `lan`, `server`, `passive`,
        /// `server_kind`; paths relative to the TOML file).
        #[arg(required_unless_present = "image")]
        file: Option<PathBuf>,
        /// Instead of a rule set: your router as a local Docker image. Its
        /// entrypoint configures NAT and firewall on the interfaces ftpnat
        /// wires into it (named as in --wan/--lan) and prints a line with
        /// "ready"; the battery runs through it.
        #[arg(long, value_name = "IMAGE:TAG", conflicts_with = "file")]
        image: Option<String>,
        /// Outside interface as on the router: NAME=ADDRESS/PREFIX
        /// [default: wan0=203.0.113.1/24].
        #[arg(long)]
        wan: Option<String>,
        /// Inside interface as on the router: NAME=ADDRESS/PREFIX
        /// [default: lan0=192.168.1.1/24].
        #[arg(long)]
        lan: Option<String>,
        /// The FTP server's inside address [default: 192.168.1.2].
        #[arg(long)]
        server: Option<std::net::Ipv4Addr>,
        /// The server's passive port range [default: 60000-60010].
        #[arg(long)]
        passive: Option<String>,
        /// The FTP server inside [default: reference].
        #[arg(long, value_enum)]
        server_kind: Option<ServerKind>,
        /// Rows run at once.
        #[arg(long)]
        jobs: Option<usize>,
        /// Rule-set syntax (nft, iptables; default: detected from the file)
        /// and output (human, json); comma-separated or repeated, e.g.
        /// `--format iptables,json`.
        #[arg(long, value_enum, value_delimiter = ',')]
        format: Vec<ValidateFormat>,
    },
    /// Throughput under passive-range exhaustion: concurrent clients outside a
    /// NAT downloading from the reference server behind it (bounded; stops
    /// by itself).
    Load {
        /// Concurrent clients.
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// Transfers per client.
        #[arg(long, default_value_t = 4)]
        transfers: usize,
        /// Bytes per transfer.
        #[arg(long, default_value_t = 16384)]
        size: u64,
        /// Passive range size (ports from 60000).
        #[arg(long, default_value_t = 2)]
        ports: u16,
        /// Exhaustion policy: fallback, refuse or wait.
        #[arg(long, default_value = "wait")]
        policy: String,
        /// What the NAT forwards besides 21: `range` or `all`.
        #[arg(long, default_value = "range")]
        forward: String,
        /// Gateway engine.
        #[arg(long, value_enum, default_value = "sim")]
        engine: Engine,
        /// Stop after this many seconds whatever is left.
        #[arg(long, default_value_t = 120)]
        limit: u64,
        /// The reference server's passive mode: per-transfer or pooled.
        #[arg(long, default_value = "per-transfer")]
        passive_mode: String,
        /// Spread the clients over this many outside addresses.
        #[arg(long, default_value_t = 1)]
        client_addrs: usize,
        /// One-way delay on the NAT's WAN side, ms (sim engine): an internet
        /// round trip, which makes every port be held longer.
        #[arg(long, default_value_t = 0)]
        wan_delay_ms: u32,
        /// The server behind the NAT: reference, vsftpd or proftpd (the
        /// policy and passive mode apply to the reference server only).
        #[arg(long, default_value = "reference")]
        server_kind: String,
        /// Run the preset table and print it as Markdown: R = 2, 10, 100 ×
        /// every policy (range forwarded), fallback with every port
        /// forwarded, pooled mode from 1 and 4 client addresses, and vsftpd
        /// and ProFTPD on the same topology (at least 4 × R clients).
        #[arg(long)]
        table: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Transfer speed: one large RETR and one STOR per server, over
    /// loopback and over a veth pair between two namespaces, with the
    /// server's CPU time per GiB and each row's ratio to vsftpd's.
    Speed {
        /// MiB per transfer.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Servers (comma-separated).
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "reference,vsftpd,proftpd"
        )]
        servers: Vec<ServerKind>,
        /// Paths (comma-separated).
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "loopback,veth"
        )]
        paths: Vec<runner::speed::PathKind>,
        /// Rounds; each row reports the median round.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Also measure every server over explicit FTPS (AUTH TLS, PROT P,
        /// session reuse), with its ratio to plain FTP in the same run.
        #[arg(long)]
        tls: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// List scenarios with their tags.
    List {
        /// Scenario files or folders.
        paths: Vec<PathBuf>,
        /// Only shard K of N (as `run --shard` would run it).
        #[arg(long, value_name = "K/N")]
        shard: Option<String>,
    },
    /// Validate scenario files without running them.
    Check {
        /// Scenario files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Draw a scenario's network as SVG.
    Graph {
        /// Scenario file.
        file: PathBuf,
        /// Output file.
        #[arg(short, long, default_value = "topology.svg")]
        output: PathBuf,
    },
    /// Remove namespaces (and processes inside them) left by dead runs.
    Clean,
    /// Print the JSON Schema of scenario files (for editor completion).
    Schema,
    /// Container images for the docker substrate.
    Image {
        #[command(subcommand)]
        what: ImageCmd,
    },
    /// Print a shell completion script, e.g.
    /// `ftpnat completions bash > /etc/bash_completion.d/ftpnat`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (ftpnat.1 and one per subcommand, ftpnat-run.1, …)
    /// into DIR, e.g. `ftpnat man /usr/local/share/man/man1`.
    Man {
        /// Folder to write the pages into (created if missing).
        dir: PathBuf,
    },
    /// Developer helpers.
    #[command(hide = true)]
    Debug {
        #[command(subcommand)]
        what: DebugCmd,
    },
}

#[derive(Subcommand, Debug)]
enum ImageCmd {
    /// Build `ftpnat/base` (Debian bookworm minbase by debootstrap from the
    /// mirror apt uses, with iproute2, nftables, curl, lftp, python3, vsftpd,
    /// proftpd-basic, pure-ftpd; no daemon ever started) and `ftpnat/server`
    /// (base + ftpnat-server), tagged by a hash of their inputs and
    /// `:latest`; up-to-date images are not rebuilt. Needs root and Docker.
    Build {
        /// Rebuild even when the tags exist.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum DebugCmd {
    /// Build the example NAT topology with a sleeper in `server`, print
    /// `holding <prefix>`, and wait for standard input to close.
    Hold,
}

/// Writes ftpnat.1 and ftpnat-SUB.1 for every visible subcommand; returns
/// how many.
fn write_man_pages(dir: &std::path::Path) -> std::io::Result<usize> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let cmd = Cli::command();
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

/// Scenarios at once when `--jobs` is not given: one per core.
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn default_paths(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from("scenarios/conformance")]
    } else {
        paths
    }
}

/// Loads scenarios; prints every diagnostic; `Err` if any file is invalid.
fn load_all(paths: Vec<PathBuf>) -> Result<Vec<Scenario>, ExitCode> {
    let files = match scenario::discover(&default_paths(paths)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(2));
        }
    };
    if files.is_empty() {
        eprintln!("error: no scenario files (*.toml) found");
        return Err(ExitCode::from(2));
    }
    let mut out = Vec::new();
    let mut bad = 0;
    for f in files {
        match scenario::load(&f) {
            Ok(s) => out.push(s),
            Err(d) => {
                bad += 1;
                eprintln!("{}", d.pretty());
            }
        }
    }
    let mut names = std::collections::BTreeMap::new();
    for s in &out {
        if let Some(prev) = names.insert(s.name.clone(), s.file.clone()) {
            eprintln!(
                "error: scenario name {:?} is used by both {} and {}",
                s.name,
                prev.display(),
                s.file.display()
            );
            bad += 1;
        }
    }
    if bad > 0 {
        eprintln!("error: {bad} invalid scenario file(s)");
        return Err(ExitCode::from(2));
    }
    Ok(out)
}

/// Applies `--shard K/N`, or explains the bad value.
fn apply_shard(scenarios: Vec<Scenario>, shard: Option<String>) -> Result<Vec<Scenario>, ExitCode> {
    let Some(sh) = shard else {
        return Ok(scenarios);
    };
    match runner::parse_shard(&sh) {
        Some((k, n)) => Ok(runner::shard(scenarios, k, n)),
        None => {
            eprintln!("error: --shard {sh:?}: expected K/N with 1 <= K <= N");
            Err(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    // Before any thread exists: unprivileged users get a private user+net namespace.
    if let Err(e) = ftpnat::topology::rootless::enter_if_unprivileged() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    // Whatever builds namespaces first removes what dead runs left behind.
    if matches!(
        cli.command,
        Cmd::Run { .. }
            | Cmd::Matrix { .. }
            | Cmd::Diff { .. }
            | Cmd::ValidateRuleset { .. }
            | Cmd::Load { .. }
            | Cmd::Speed { .. }
    ) {
        if let Ok(s) = ftpnat::topology::sweep() {
            if !s.namespaces.is_empty() || !s.tempdirs.is_empty() || !s.containers.is_empty() {
                eprintln!(
                    "swept {} namespace(s), {} temporary folder(s) and {} container(s) left by dead runs",
                    s.namespaces.len(),
                    s.tempdirs.len(),
                    s.containers.len()
                );
            }
        }
    }
    match cli.command {
        Cmd::Run {
            paths,
            filter,
            tag,
            jobs,
            shard,
            engine,
            format,
            junit,
            artifacts,
            no_pcap,
            server_kind,
            server,
            server_config,
            profile,
            substrate,
        } => {
            let command = match server
                .map(|s| ftpnat::actor::command::CommandSpec::parse(&s, server_config))
                .transpose()
            {
                Ok(c) => c.map(std::sync::Arc::new),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let profile = match (&profile, server_kind) {
                (Some(f), _) => match ftpnat::profile::Profile::load(f) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                },
                (None, Some(k)) => ftpnat::profile::Profile::builtin(k.name()),
                (None, None) => None,
            }
            .map(std::sync::Arc::new);
            let mut scenarios = match load_all(paths) {
                Ok(s) => s,
                Err(c) => return c,
            };
            if let Some(f) = filter {
                let re = match regex::Regex::new(&f) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("error: --filter: {e}");
                        return ExitCode::from(2);
                    }
                };
                scenarios.retain(|s| re.is_match(&s.name));
            }
            if !tag.is_empty() {
                scenarios.retain(|s| s.tags.iter().any(|t| tag.contains(t)));
            }
            scenarios = match apply_shard(scenarios, shard) {
                Ok(s) => s,
                Err(c) => return c,
            };
            if scenarios.is_empty() {
                eprintln!("error: no scenario selected");
                return ExitCode::from(2);
            }
            let mut engines = engine.clone();
            engines.sort_by_key(|e| *e as u8);
            engines.dedup_by_key(|e| *e as u8);
            if engines.len() > 1 {
                let opts = RunOptions {
                    no_pcap: true,
                    server_kind,
                    command,
                    profile,
                    ..Default::default()
                };
                return run_diff(&scenarios, jobs.unwrap_or_else(default_jobs), format, opts);
            }
            let opts = RunOptions {
                artifacts,
                no_pcap,
                server_kind,
                command,
                profile,
                engine: engines.first().map(|e| match e {
                    Engine::Sim => EngineKind::Sim,
                    Engine::Kernel => EngineKind::Kernel,
                }),
                docker: substrate == Substrate::Docker,
            };
            let jobs = jobs.unwrap_or_else(default_jobs);
            let human = matches!(format, Format::Human);
            let bar = (human && std::io::stderr().is_terminal()).then(|| {
                let b = indicatif::ProgressBar::new(scenarios.len() as u64);
                b.set_style(
                    indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                b
            });
            let t0 = Instant::now();
            // Lines come out in input order whatever order scenarios finish in.
            let pending =
                std::sync::Mutex::new((0usize, std::collections::BTreeMap::<usize, String>::new()));
            let on_done = |i: usize, r: &ScenarioResult| {
                if !human {
                    return;
                }
                let mut p = pending.lock().unwrap();
                p.1.insert(i, report::human_line(r));
                while let Some(line) = {
                    let next = p.0;
                    p.1.remove(&next)
                } {
                    p.0 += 1;
                    match &bar {
                        Some(b) => {
                            b.println(line);
                            b.inc(1);
                        }
                        None => outln!("{line}"),
                    }
                }
            };
            let results = runner::run_all(&scenarios, &opts, jobs, &on_done);
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let summary = Summary::of(&results, t0.elapsed().as_millis() as u64);
            match format {
                Format::Human => outln!("{}", summary.line()),
                Format::Json => outln!("{}", report::json(&results, summary)),
            }
            if let Some(path) = junit {
                if let Err(e) = std::fs::write(&path, report::junit(&results, summary)) {
                    eprintln!("error: writing {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
            if summary.failed + summary.errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Cmd::Diff {
            paths,
            jobs,
            format,
        } => {
            let scenarios = match load_all(paths) {
                Ok(s) => s,
                Err(c) => return c,
            };
            let opts = RunOptions {
                no_pcap: true,
                ..Default::default()
            };
            run_diff(&scenarios, jobs.unwrap_or_else(default_jobs), format, opts)
        }
        Cmd::ValidateRuleset {
            file,
            image,
            wan,
            lan,
            server,
            passive,
            server_kind,
            jobs,
            format: formats,
        } => {
            let format = if formats.contains(&ValidateFormat::Json) {
                Format::Json
            } else {
                Format::Human
            };
            let syntax = formats.iter().rev().find_map(|f| match f {
                ValidateFormat::Nft => Some(ftpnat::engine::kernel::RulesetFormat::Nft),
                ValidateFormat::Iptables => Some(ftpnat::engine::kernel::RulesetFormat::Iptables),
                _ => None,
            });
            let cli = runner::ruleset::Settings {
                ruleset: None,
                format: syntax,
                wan,
                lan,
                server,
                passive,
                server_kind,
            };
            let mut file = file.unwrap_or_else(|| PathBuf::from(image.clone().unwrap_or_default()));
            let parsed = (|| -> Result<runner::ruleset::Params, String> {
                let settings = if image.is_none() && file.extension().is_some_and(|e| e == "toml") {
                    let from_file = runner::ruleset::Settings::load(&file)?;
                    file = from_file.ruleset.clone().unwrap_or_default();
                    cli.over(from_file)
                } else {
                    cli
                };
                settings.params()
            })();
            let params = match parsed {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let jobs = jobs.unwrap_or_else(default_jobs);
            let rows = match &image {
                Some(img) => runner::ruleset::validate_image(img, &params, jobs),
                None => runner::ruleset::validate(&file, &params, jobs),
            };
            let rows = match rows {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match format {
                Format::Human => {
                    for r in &rows {
                        let mark = match (r.status, r.required) {
                            (ftpnat::outcome::Status::Pass, _) => "PASS ",
                            (_, true) => "FAIL ",
                            (_, false) => "NO   ",
                        };
                        let kind = if r.required { "" } else { " (optional)" };
                        outln!("{mark} {:<28} needs{kind}: {}", r.name, r.needs);
                        if let Some(c) = &r.cause {
                            outln!("      probable cause: {c}");
                        }
                    }
                    let ok = rows
                        .iter()
                        .filter(|r| r.status == ftpnat::outcome::Status::Pass)
                        .count();
                    let req_fail = rows
                        .iter()
                        .filter(|r| r.required && r.status != ftpnat::outcome::Status::Pass)
                        .count();
                    outln!(
                        "{ok} of {} behaviours work with {} ({req_fail} required check(s) failed)",
                        rows.len(),
                        file.display()
                    );
                }
                Format::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_default()
                ),
            }
            if rows
                .iter()
                .all(|r| !r.required || r.status == ftpnat::outcome::Status::Pass)
            {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Cmd::Matrix {
            paths,
            kinds,
            engines,
            jobs,
            output,
            server,
            server_config,
            profile,
            server_name,
        } => {
            let scenarios = match load_all(paths) {
                Ok(s) => s,
                Err(c) => return c,
            };
            let jobs = jobs.unwrap_or_else(default_jobs);
            // (column name, options without the engine)
            let mut servers: Vec<(String, RunOptions)> = kinds
                .iter()
                .map(|kind| {
                    let opts = RunOptions {
                        server_kind: Some(*kind),
                        no_pcap: true,
                        profile: ftpnat::profile::Profile::builtin(kind.name())
                            .map(std::sync::Arc::new),
                        ..Default::default()
                    };
                    (kind.name().to_string(), opts)
                })
                .collect();
            if let Some(cmd) = server {
                let command = match ftpnat::actor::command::CommandSpec::parse(&cmd, server_config)
                {
                    Ok(c) => std::sync::Arc::new(c),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                };
                let profile = match profile
                    .map(|f| ftpnat::profile::Profile::load(&f))
                    .transpose()
                {
                    Ok(p) => p.map(std::sync::Arc::new),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                };
                let opts = RunOptions {
                    command: Some(command),
                    profile,
                    no_pcap: true,
                    ..Default::default()
                };
                servers.push((server_name, opts));
            }
            let mut columns = Vec::new();
            let mut cells: Vec<Vec<String>> = vec![Vec::new(); scenarios.len()];
            for (name, base) in &servers {
                for engine in &engines {
                    let engine_kind = match engine {
                        Engine::Sim => EngineKind::Sim,
                        Engine::Kernel => EngineKind::Kernel,
                    };
                    columns.push(format!("{name} / {}", format!("{engine:?}").to_lowercase()));
                    let opts = RunOptions {
                        engine: Some(engine_kind),
                        ..base.clone()
                    };
                    for (i, r) in runner::run_all(&scenarios, &opts, jobs, &|_, _| {})
                        .iter()
                        .enumerate()
                    {
                        cells[i].push(match r.status {
                            ftpnat::outcome::Status::Pass => "pass".into(),
                            ftpnat::outcome::Status::Unsupported => "n/a".into(),
                            ftpnat::outcome::Status::Error => "error".into(),
                            ftpnat::outcome::Status::Fail => "**FAIL**".into(),
                        });
                    }
                }
            }
            let mut md = format!(
                "| scenario | {} |\n|---|{}\n",
                columns.join(" | "),
                "---|".repeat(columns.len())
            );
            for (sc, row) in scenarios.iter().zip(&cells) {
                md.push_str(&format!("| {} | {} |\n", sc.name, row.join(" | ")));
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
            match output {
                Some(p) => {
                    if let Err(e) = std::fs::write(&p, &md) {
                        eprintln!("error: {}: {e}", p.display());
                        return ExitCode::from(2);
                    }
                }
                None => out!("{md}"),
            }
            ExitCode::SUCCESS
        }
        Cmd::Load {
            clients,
            transfers,
            size,
            ports,
            policy,
            forward,
            engine,
            limit,
            passive_mode,
            client_addrs,
            wan_delay_ms,
            server_kind,
            table,
            format,
        } => {
            if !["fallback", "refuse", "wait"].contains(&policy.as_str())
                || !["range", "all"].contains(&forward.as_str())
                || !["per-transfer", "pooled"].contains(&passive_mode.as_str())
                || !["reference", "vsftpd", "proftpd"].contains(&server_kind.as_str())
                || ports == 0
                || !(1..=200).contains(&client_addrs)
            {
                eprintln!("error: --policy is fallback, refuse or wait; --forward is range or all; --passive-mode is per-transfer or pooled; --server-kind is reference, vsftpd or proftpd; --ports at least 1; --client-addrs 1 to 200");
                return ExitCode::from(2);
            }
            let base = runner::load::LoadSpec {
                clients,
                transfers,
                size,
                ports,
                policy,
                forward,
                engine: format!("{engine:?}").to_lowercase(),
                limit: std::time::Duration::from_secs(limit),
                passive_mode,
                client_addrs,
                server_kind,
                wan_delay_ms,
            };
            let specs: Vec<runner::load::LoadSpec> = if table {
                let mut v = Vec::new();
                // The range is only the bottleneck when more clients than
                // ports want one: at least 4 × R clients (R = 100: 400).
                let with = |r: u16, policy: &str, forward: &str| runner::load::LoadSpec {
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
                        v.push(runner::load::LoadSpec {
                            passive_mode: "pooled".into(),
                            client_addrs: addrs,
                            ..with(r, "wait", "range")
                        });
                    }
                    for kind in ["vsftpd", "proftpd"] {
                        v.push(runner::load::LoadSpec {
                            server_kind: kind.into(),
                            ..with(r, "fallback", "range")
                        });
                    }
                }
                v
            } else {
                vec![base]
            };
            let mut reports = Vec::new();
            for s in &specs {
                match runner::load::run(s) {
                    Ok(r) => reports.push(r),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            match format {
                Format::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&reports).unwrap_or_default()
                ),
                Format::Human => {
                    outln!("| server | R | mode | client addrs | policy | forwarded | completed | failed (by reason) | transfers/s | PASV p50 / p99 ms | hold ms | efficiency | fallbacks |");
                    outln!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
                    for r in &reports {
                        let failed: Vec<String> =
                            r.failed.iter().map(|(k, v)| format!("{v} {k}")).collect();
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
            }
            ExitCode::SUCCESS
        }
        Cmd::Speed {
            size_mib,
            servers,
            paths,
            repeat,
            tls,
            format,
        } => {
            if !(1..=16384).contains(&size_mib) {
                eprintln!("error: --size-mib from 1 to 16384");
                return ExitCode::from(2);
            }
            let rows = match runner::speed::run(&servers, &paths, size_mib << 20, repeat, tls) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match format {
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
            ExitCode::SUCCESS
        }
        Cmd::List { paths, shard } => match load_all(paths).and_then(|s| apply_shard(s, shard)) {
            Ok(s) => {
                for sc in s {
                    outln!(
                        "{:<44} [{}] {}",
                        sc.name,
                        sc.tags.join(","),
                        sc.file.display()
                    );
                }
                ExitCode::SUCCESS
            }
            Err(c) => c,
        },
        Cmd::Check { paths } => match load_all(paths) {
            Ok(s) => {
                outln!("{} scenario file(s) valid", s.len());
                ExitCode::SUCCESS
            }
            Err(c) => c,
        },
        Cmd::Graph { file, output } => match scenario::load(&file) {
            Ok(sc) => match std::fs::write(&output, report::svg::topology_svg(&sc)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {}: {e}", output.display());
                    ExitCode::from(2)
                }
            },
            Err(d) => {
                eprintln!("{}", d.pretty());
                ExitCode::from(2)
            }
        },
        Cmd::Schema => {
            outln!("{}", scenario::json_schema());
            ExitCode::SUCCESS
        }
        Cmd::Image {
            what: ImageCmd::Build { force },
        } => {
            let bin = match std::env::current_exe() {
                Ok(e) => e.with_file_name("ftpnat-server"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match ftpnat::topology::docker::build_images(&bin, force) {
                Ok(b) => {
                    outln!(
                        "{} {} and {} (also :latest)",
                        if b.built { "built" } else { "up to date:" },
                        b.base,
                        b.server
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ftpnat", &mut buf);
            out!("{}", String::from_utf8_lossy(&buf));
            ExitCode::SUCCESS
        }
        Cmd::Man { dir } => match write_man_pages(&dir) {
            Ok(n) => {
                outln!("wrote {n} man pages to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}: {e}", dir.display());
                ExitCode::from(2)
            }
        },
        Cmd::Clean => match ftpnat::topology::sweep() {
            Ok(s) => {
                outln!(
                    "removed {} namespace(s), killed {} process(es), removed {} temporary folder(s), removed {} container(s)",
                    s.namespaces.len(),
                    s.processes.len(),
                    s.tempdirs.len(),
                    s.containers.len()
                );
                for n in s.namespaces.iter().chain(&s.containers) {
                    outln!("  {n}");
                }
                for d in s.tempdirs {
                    outln!("  {}", d.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Debug {
            what: DebugCmd::Hold,
        } => hold(),
    }
}

/// Runs `scenarios` on both engines and reports every disagreement (`ftpnat
/// diff`, `ftpnat run --engine sim,kernel`). Exit 1 on a behaviour difference.
fn run_diff(scenarios: &[Scenario], jobs: usize, format: Format, opts: RunOptions) -> ExitCode {
    let run = |engine| {
        let opts = RunOptions {
            engine: Some(engine),
            ..opts.clone()
        };
        runner::run_all(scenarios, &opts, jobs, &|_, _| {})
    };
    let sim = run(EngineKind::Sim);
    let kernel = run(EngineKind::Kernel);
    let mut rows = Vec::new();
    for ((a, b), sc) in sim.iter().zip(&kernel).zip(scenarios) {
        if let Some(mut d) = runner::disagreement(a, b) {
            if d == runner::Disagreement::Behaviour && sc.tags.iter().any(|t| t == "kernel-differs")
            {
                d = runner::Disagreement::Documented;
            }
            let why = b
                .failure
                .clone()
                .or_else(|| a.failure.clone())
                .unwrap_or_default();
            rows.push((
                a.name.clone(),
                a.status,
                b.status,
                d,
                why.lines().next().unwrap_or("").to_string(),
            ));
        }
    }
    let behaviour = rows
        .iter()
        .filter(|r| r.3 == runner::Disagreement::Behaviour)
        .count();
    match format {
        Format::Human => {
            for (name, s, k, d, why) in &rows {
                outln!("{name}: sim {s:?}, kernel {k:?} — {d:?}\n    {why}");
            }
            outln!(
                "{} scenarios: {} agree, {} differ ({} in behaviour, {} documented (tag kernel-differs), {} not expressible in the kernel, {} sim-only counters)",
                sim.len(),
                sim.len() - rows.len(),
                rows.len(),
                behaviour,
                rows.iter().filter(|r| r.3 == runner::Disagreement::Documented).count(),
                rows.iter().filter(|r| r.3 == runner::Disagreement::NotExpressible).count(),
                rows.iter().filter(|r| r.3 == runner::Disagreement::SimOnlyCounter).count(),
            );
        }
        Format::Json => {
            let v: Vec<serde_json::Value> = rows
                .iter()
                .map(|(n, s, k, d, w)| serde_json::json!({"name": n, "sim": s, "kernel": k, "kind": d, "detail": w}))
                .collect();
            outln!(
                "{}",
                serde_json::json!({"scenarios": sim.len(), "disagreements": v})
            );
        }
    }
    if behaviour > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn hold() -> ExitCode {
    let topo =
        match ftpnat::topology::Topology::build(&ftpnat::topology::TopologySpec::nat_example()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
    let dir = match ftpnat::topology::netns::run_tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sleeper = topo.command("server", "sleep", &["3600"]).and_then(|c| {
        ftpnat::topology::NsProcess::spawn(c, dir.path(), &format!("{}-sleep", topo.prefix))
    });
    let _sleeper = match sleeper {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    outln!("holding {}", topo.prefix);
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

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
        let n = write_man_pages(dir.path()).unwrap();
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
