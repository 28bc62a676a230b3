//! `ftpnat` command line. Exit codes: 0 all passed, 1 a scenario failed,
//! 2 invalid input or usage.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Will FTP work through this NAT/firewall, and how well?
#[derive(Parser, Debug)]
#[command(version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Remove namespaces (and processes inside them) left by dead runs.
    Clean,
    /// Developer helpers.
    #[command(hide = true)]
    Debug {
        #[command(subcommand)]
        what: DebugCmd,
    },
}

#[derive(Subcommand, Debug)]
enum DebugCmd {
    /// Build the example NAT topology with a sleeper in `server`, print
    /// `holding <prefix>`, and wait for standard input to close.
    Hold,
}

fn main() -> ExitCode {
    // Before any thread exists: unprivileged users get a private user+net namespace.
    if let Err(e) = ftpnat::topology::rootless::enter_if_unprivileged() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    match cli.command {
        Cmd::Clean => match ftpnat::topology::sweep() {
            Ok(s) => {
                println!(
                    "removed {} namespace(s), killed {} process(es)",
                    s.namespaces.len(),
                    s.processes.len()
                );
                for n in s.namespaces {
                    println!("  {n}");
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
        } => {
            let topo = match ftpnat::topology::Topology::build(
                &ftpnat::topology::TopologySpec::nat_example(),
            ) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let dir = std::env::temp_dir();
            let sleeper = topo.command("server", "sleep", &["3600"]).and_then(|c| {
                ftpnat::topology::NsProcess::spawn(c, &dir, &format!("{}-sleep", topo.prefix))
            });
            let _sleeper = match sleeper {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!("holding {}", topo.prefix);
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
            ExitCode::SUCCESS
        }
    }
}
