//! `ftpnat-server` command line. Exit codes: 0 ok, 2 bad configuration or
//! usage (a root start with nobody to become included), 1 runtime failure.
//!
//! Start-up order: configuration, log, runtime, bind the listeners, drop
//! root ([`ftpnat_server::privilege`]), serve.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use clap::Parser;
use ftpnat_server::{
    config::Config,
    privilege::{drop_after_bind, Privileges},
    server::Server,
};
use tracing_subscriber::{fmt::writer::MakeWriterExt, EnvFilter};

/// A NAT-aware FTP server (masquerade address, passive port range, PORT refusal rules).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Serve with this TOML configuration file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["check_config", "hash_password"])]
    config: Option<PathBuf>,
    /// Validate FILE, print the effective configuration and exit.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
    /// Read a password from standard input and print an argon2 hash for `[[user]] password_hash`.
    #[arg(long)]
    hash_password: bool,
    /// Log filter (tracing EnvFilter syntax); RUST_LOG overrides.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.hash_password {
        return hash_password();
    }
    if let Some(path) = &cli.check_config {
        return match Config::load(path) {
            Ok(c) => {
                println!(
                    "{}",
                    toml::to_string_pretty(&c).unwrap_or_else(|e| format!("{e}"))
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let Some(path) = cli.config else {
        eprintln!("error: --config FILE is required (see --help)");
        return ExitCode::from(2);
    };
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cli.log_level));
    let ansi = std::io::stderr().is_terminal();
    let file = match &config.log_file {
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => Some(std::sync::Arc::new(f)),
            Err(e) => {
                eprintln!("error: cannot open log_file {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match file {
        Some(f) => builder
            .with_ansi(false)
            .with_writer(std::io::stderr.and(f))
            .init(),
        None => builder.with_ansi(ansi).with_writer(std::io::stderr).init(),
    }
    release_large_allocations();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = Server::new(config);
    let listeners = match rt.block_on(async { server.bind() }) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match drop_after_bind(server.config()) {
        Ok(Privileges::Dropped { user, uid, gid }) => {
            tracing::info!("dropped root: sessions run as {user} (uid {uid}, gid {gid})")
        }
        Ok(Privileges::Root) => {
            tracing::warn!("serving as root (allow_root = true)")
        }
        Ok(Privileges::Unprivileged) => {}
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    }
    match rt.block_on(server.run(listeners, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// glibc keeps freed heap memory for reuse; a password check's ~19 MiB
/// would stay resident after it ends. A fixed mmap threshold makes every
/// allocation of 4 MiB or more its own mapping, returned to the system when
/// freed (and turns off the threshold's growth that would undo this).
fn release_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("signal received");
}

fn hash_password() -> ExitCode {
    use argon2::{password_hash::SaltString, Argon2, PasswordHasher};
    let mut pw = String::new();
    if std::io::stdin().read_line(&mut pw).is_err() {
        eprintln!("error: cannot read a password from standard input");
        return ExitCode::from(2);
    }
    let pw = pw.trim_end_matches(['\r', '\n']);
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    match Argon2::default().hash_password(pw.as_bytes(), &salt) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
