//! Real FTP servers ("peers") run next to the reference server: where
//! they are found and how `ftpnat peers install` gets them.
//!
//! Debian's FTP daemons conflict with each other as packages, and
//! installing one would start it in the root namespace; so they are
//! unpacked (`apt-get download` + `dpkg -x`, no maintainer script runs)
//! into a per-user folder, [`dir`]: `$FTPNAT_PEERS`, else
//! `$XDG_CACHE_HOME/ftpnat/peers`, else `~/.cache/ftpnat/peers`. A binary
//! is looked up there from any working folder, and, for checkouts that
//! predate it, under `target/peers` of the current folder or a parent.
//! pyftpdlib (the stand-in for "your own server") is a virtualenv there.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A real server this machine may run, and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Its name in messages and in `ftpnat doctor`.
    pub name: &'static str,
    /// Its folder below [`dir`].
    pub folder: &'static str,
    /// The program inside the folder.
    pub file: &'static str,
    /// The installed path (a system-wide install wins).
    pub system: Option<&'static str>,
    /// Environment variable that overrides the path.
    pub env_var: &'static str,
    /// Debian packages unpacked into the folder (none: a virtualenv).
    pub packages: &'static [&'static str],
    /// What a machine without it cannot run.
    pub disables: &'static str,
}

/// Every peer `ftpnat peers install` provides.
pub const PEERS: [Peer; 4] = [
    Peer {
        name: "vsftpd",
        folder: "vsftpd",
        file: "usr/sbin/vsftpd",
        system: Some("/usr/sbin/vsftpd"),
        env_var: "FTPNAT_VSFTPD",
        packages: &["vsftpd"],
        disables: "--server-kind vsftpd, vsftpd rows of matrix/load/speed",
    },
    Peer {
        name: "proftpd",
        folder: "proftpd",
        file: "usr/sbin/proftpd",
        system: Some("/usr/sbin/proftpd"),
        env_var: "FTPNAT_PROFTPD",
        packages: &["proftpd-core", "proftpd-mod-crypto"],
        disables: "--server-kind proftpd, ProFTPD rows of matrix/load/speed",
    },
    Peer {
        name: "pure-ftpd",
        folder: "pure-ftpd",
        file: "usr/sbin/pure-ftpd",
        system: Some("/usr/sbin/pure-ftpd"),
        env_var: "FTPNAT_PUREFTPD",
        packages: &["pure-ftpd"],
        disables: "--server-kind pure-ftpd, Pure-FTPd rows of matrix/load/speed",
    },
    Peer {
        name: "pyftpdlib",
        folder: "pyftpdlib",
        file: "bin/python",
        system: None,
        env_var: "FTPNAT_PYFTPDLIB",
        packages: &[],
        disables: "the `command` server examples (scenarios/servers/pyftpdlib.py) and their tests",
    },
];

/// The pyftpdlib release the virtualenv pins.
pub const PYFTPDLIB: &str = "pyftpdlib==2.2.0";

/// Shared libraries the unpacked servers link against (installed with
/// apt, libraries only: no daemon comes with them).
pub const LIBRARIES: [&str; 6] = [
    "libwrap0",
    "libhiredis0.14",
    "libmemcached11",
    "libmemcachedutil2",
    "libpcre2-posix3",
    "libsodium23",
];

/// The per-user cache folder: `$XDG_CACHE_HOME`, else `~/.cache`, else
/// the temporary folder's `ftpnat-cache`.
pub fn user_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| Path::new(p).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .unwrap_or_else(|| std::env::temp_dir().join("ftpnat-cache"))
}

/// The per-user peers folder (it may not exist yet): `$FTPNAT_PEERS`, else
/// `<user cache>/ftpnat/peers`.
pub fn dir() -> PathBuf {
    match std::env::var_os("FTPNAT_PEERS").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => user_cache().join("ftpnat").join("peers"),
    }
}

/// Folders searched for peers, in order: [`dir`], then `target/peers` of
/// the current folder and each parent (checkouts made before the per-user
/// folder existed).
pub fn search_dirs() -> Vec<PathBuf> {
    let mut out = vec![dir()];
    if let Ok(mut d) = std::env::current_dir() {
        loop {
            let p = d.join("target/peers");
            if p.is_dir() && !out.contains(&p) {
                out.push(p);
            }
            if !d.pop() {
                break;
            }
        }
    }
    out
}

/// Finds `rel` (e.g. `vsftpd/usr/sbin/vsftpd`) in the peers folders.
pub fn find(rel: &str) -> Option<PathBuf> {
    search_dirs()
        .into_iter()
        .map(|d| d.join(rel))
        .find(|p| p.exists())
}

/// The peer named `name`.
pub fn peer(name: &str) -> Option<&'static Peer> {
    PEERS.iter().find(|p| p.name == name)
}

impl Peer {
    /// Where the program is: `$env_var`, the system path, the peers folders.
    pub fn locate(&self) -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(self.env_var).filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        self.system
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .or_else(|| find(&format!("{}/{}", self.folder, self.file)))
    }

    /// How to get it, for messages.
    pub fn install_hint(&self) -> String {
        format!(
            "ftpnat peers install (unpacks it into {}), or set {}",
            dir().display(),
            self.env_var
        )
    }
}

/// What `install` did, peer by peer.
#[derive(Debug, Default)]
pub struct Installed {
    /// One line per peer: installed, already there, or why not.
    pub lines: Vec<String>,
    /// Whether every requested peer is there now.
    pub complete: bool,
}

/// Installs `names` (all when empty) into [`dir`]: Debian packages with
/// `apt-get download` + `dpkg -x`, their shared libraries with `apt-get
/// install` (root only), pyftpdlib in a virtualenv from PyPI. Peers
/// already there are left alone unless `force`.
pub fn install(names: &[String], force: bool) -> Result<Installed, String> {
    let chosen: Vec<&Peer> = if names.is_empty() {
        PEERS.iter().collect()
    } else {
        names
            .iter()
            .map(|n| {
                peer(n).ok_or_else(|| {
                    format!(
                        "unknown peer {n:?} (known: {})",
                        PEERS.map(|p| p.name).join(", ")
                    )
                })
            })
            .collect::<Result<_, _>>()?
    };
    let root = dir();
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let mut out = Installed {
        complete: true,
        ..Default::default()
    };
    let debs = chosen.iter().any(|p| !p.packages.is_empty());
    if debs {
        if let Err(e) = install_libraries() {
            out.lines.push(format!("shared libraries: {e}"));
        }
    }
    for p in chosen {
        let dest = root.join(p.folder);
        let program = dest.join(p.file);
        let has_tls = p.name != "proftpd" || dest.join("usr/lib/proftpd/mod_tls.so").exists();
        if program.exists() && has_tls && !force {
            out.lines
                .push(format!("{:<10} already in {}", p.name, dest.display()));
            continue;
        }
        let r = if p.packages.is_empty() {
            install_pyftpdlib(&dest)
        } else {
            unpack(p.packages, &dest)
        };
        match r {
            Ok(()) if program.exists() => {
                out.lines
                    .push(format!("{:<10} installed in {}", p.name, dest.display()))
            }
            Ok(()) => {
                out.complete = false;
                out.lines.push(format!(
                    "{:<10} unpacked, but {} is missing",
                    p.name,
                    program.display()
                ));
            }
            Err(e) => {
                out.complete = false;
                out.lines.push(format!("{:<10} not installed: {e}", p.name));
            }
        }
    }
    Ok(out)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{shown}: {} {}",
            out.status,
            err.lines().last().unwrap_or("")
        ))
    }
}

/// Whether dpkg says `pkg` is installed.
fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("ok installed"))
}

fn install_libraries() -> Result<(), String> {
    let missing: Vec<&str> = LIBRARIES.into_iter().filter(|l| !installed(l)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() || crate::topology::rootless::in_private_userns() {
        return Err(format!(
            "missing {}; as root: apt-get install {}",
            missing.join(" "),
            missing.join(" ")
        ));
    }
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// `apt-get download` each package into a scratch folder, `dpkg -x` into `dest`.
fn unpack(packages: &[&str], dest: &Path) -> Result<(), String> {
    let scratch = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(dest.parent().unwrap_or(Path::new(".")))
        .map_err(|e| e.to_string())?;
    for pkg in packages {
        if run(Command::new("apt-get")
            .args(["download", "-qq", pkg])
            .current_dir(scratch.path()))
        .is_err()
            && nix::unistd::geteuid().is_root()
        {
            // A fresh machine has no package lists yet.
            run(Command::new("apt-get").args(["update", "-qq"]))?;
            run(Command::new("apt-get")
                .args(["download", "-qq", pkg])
                .current_dir(scratch.path()))?;
        }
    }
    for entry in std::fs::read_dir(scratch.path()).map_err(|e| e.to_string())? {
        let deb = entry.map_err(|e| e.to_string())?.path();
        if deb.extension().is_some_and(|e| e == "deb") {
            run(Command::new("dpkg").arg("-x").arg(&deb).arg(dest))?;
        }
    }
    Ok(())
}

fn install_pyftpdlib(dest: &Path) -> Result<(), String> {
    let python = dest.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(dest)).map_err(|e| {
            format!(
                "{e} (python3 and python3-venv are needed: apt-get install python3 python3-venv)"
            )
        })?;
    }
    run(Command::new(dest.join("bin/pip")).args([
        "install",
        "-q",
        "--disable-pip-version-check",
        PYFTPDLIB,
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peer_has_its_install_recipe() {
        for p in PEERS {
            assert!(!p.disables.is_empty(), "{}", p.name);
            assert!(p.install_hint().contains(p.env_var));
            assert_eq!(peer(p.name).map(|q| q.folder), Some(p.folder));
        }
        assert!(install(&["nosuch".into()], false)
            .unwrap_err()
            .contains("unknown peer \"nosuch\""));
    }
}
