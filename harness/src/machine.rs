//! What this machine offers the harness, and what it lacks: the programs
//! scenarios and commands call ([`TOOLS`], looked up on `PATH` like the
//! runner's own `Command`s), the real servers ([`crate::peers`]), kernel
//! features, Docker and privileges. [`require`] is what a run asks before
//! it uses a program ("not supported here" when missing, with the install
//! command); [`examine`] is `ftpnat doctor`'s full report.
//!
//! Kernel features are probed in a throwaway namespace of this run's
//! prefix (a veth pair inside it, nft tables inside it), never in the root
//! namespace; only read-only files of `/proc` are read there.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use serde::Serialize;

/// A program the harness may run, and what a machine without it loses.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The program, as looked up on `PATH`.
    pub program: &'static str,
    /// The Debian package that has it.
    pub package: &'static str,
    /// What cannot run without it.
    pub disables: &'static str,
}

/// Every program the harness or its tests call.
pub const TOOLS: [Tool; 14] = [
    Tool {
        program: "nft",
        package: "nftables",
        disables: "the kernel engine (--engine kernel, ftpnat diff), validate-ruleset",
    },
    Tool {
        program: "iptables-nft-restore",
        package: "iptables",
        disables: "validate-ruleset of iptables-save rule sets",
    },
    Tool {
        program: "conntrack",
        package: "conntrack",
        disables: "the kernel engine's conntrack event log (reports only)",
    },
    Tool {
        program: "curl",
        package: "curl",
        disables: "scenario steps with curl = (tag real-clients)",
    },
    Tool {
        program: "lftp",
        package: "lftp",
        disables: "scenario steps with lftp = (tag real-clients)",
    },
    Tool {
        program: "python3",
        package: "python3",
        disables: "scenario steps with ftplib = (tag real-clients); pyftpdlib",
    },
    Tool {
        program: "wget",
        package: "wget",
        disables: "the real-client tests of the reference server (wget -r; cargo test only)",
    },
    Tool {
        program: "tnftp",
        package: "tnftp",
        disables: "the real-client tests of the reference server (tnftp; cargo test only)",
    },
    Tool {
        program: "ncftpget",
        package: "ncftp",
        disables:
            "the real-client tests of the reference server (ncftpget/ncftpput; cargo test only)",
    },
    Tool {
        program: "ethtool",
        package: "ethtool",
        disables: "nothing in ftpnat itself (the lab's offload checks by hand)",
    },
    Tool {
        program: "debootstrap",
        package: "debootstrap",
        disables: "ftpnat image build (images of the docker substrate)",
    },
    Tool {
        program: "docker",
        package: "docker.io",
        disables: "--substrate docker, engine = \"image\", validate-ruleset --image",
    },
    Tool {
        program: "chromium",
        package: "chromium",
        disables: "the HTML report's browser test (cargo test only)",
    },
    Tool {
        program: "apt-get",
        package: "apt",
        disables: "ftpnat peers install",
    },
];

/// The catalogue entry of `program`.
pub fn tool(program: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.program == program)
}

/// A program this machine lacks, and how to get it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// The program or server.
    pub tool: String,
    /// The command that installs it.
    pub install: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} not installed — {}", self.tool, self.install)
    }
}

/// The install command for a catalogued program (or a generic hint).
pub fn install_hint(program: &str) -> String {
    match tool(program) {
        Some(t) => format!("apt-get install {}, or run ci/test.sh", t.package),
        None => format!("install {program}"),
    }
}

/// `program` as `Command::new` would find it: a path as given, else the
/// first executable file of that name on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| executable(p))
}

/// `program`'s path, or what is missing and how to get it.
pub fn require(program: &str) -> Result<PathBuf, Missing> {
    which(program).ok_or_else(|| Missing {
        tool: program.to_string(),
        install: install_hint(program),
    })
}

/// A part of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    /// Root, or a user namespace.
    Privileges,
    /// Namespaces, veth, nftables, helpers, sysctls.
    Kernel,
    /// Programs on PATH.
    Tools,
    /// Real FTP servers.
    Peers,
    /// The docker substrate.
    Docker,
}

impl Area {
    fn name(self) -> &'static str {
        match self {
            Area::Privileges => "privileges",
            Area::Kernel => "kernel",
            Area::Tools => "tools",
            Area::Peers => "peers",
            Area::Docker => "docker",
        }
    }
}

/// One thing the harness can use, found or not.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Which part.
    pub area: Area,
    /// What.
    pub name: String,
    /// Whether it is there and works.
    pub ok: bool,
    /// What was found (path, version, value) or why not.
    pub found: String,
    /// What does not run without it.
    pub disables: String,
    /// How to get it ("" when ok).
    pub install: String,
    /// Whether `ftpnat run` (the main job) needs it.
    pub essential: bool,
}

/// `ftpnat doctor`'s report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Every check, by area.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether everything the main job needs is there.
    pub fn essentials_ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok || !c.essential)
    }

    /// The checks that failed.
    pub fn missing(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    /// A table: one line per check, then what is missing with how to get
    /// it, then the one command for full coverage.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let width = self
            .checks
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(10);
        let mut area = None;
        for c in &self.checks {
            if area != Some(c.area) {
                out.push_str(&format!("{}\n", c.area.name()));
                area = Some(c.area);
            }
            out.push_str(&format!(
                "  {:<4} {:<width$}  {}\n",
                if c.ok { "ok" } else { "MISS" },
                c.name,
                c.found
            ));
        }
        let missing: Vec<&Check> = self.missing().collect();
        if missing.is_empty() {
            out.push_str(
                "\neverything is here: every scenario, engine, peer and substrate can run\n",
            );
            return out;
        }
        out.push_str(&format!("\n{} missing:\n", missing.len()));
        for c in &missing {
            out.push_str(&format!(
                "  {}: disables {}\n    get it: {}\n",
                c.name, c.disables, c.install
            ));
        }
        out.push_str(
            "\nfull coverage: in a checkout, `bash ci/test.sh` installs all of it; elsewhere the \
             apt-get lines above, then `ftpnat peers install`\n",
        );
        if !self.essentials_ok() {
            out.push_str(
                "the main job (ftpnat run) cannot run here: see the kernel/privileges lines\n",
            );
        }
        out
    }
}

fn check(area: Area, name: impl Into<String>, found: Result<String, String>) -> Check {
    let (ok, found) = match found {
        Ok(f) => (true, f),
        Err(f) => (false, f),
    };
    Check {
        area,
        name: name.into(),
        ok,
        found,
        disables: String::new(),
        install: String::new(),
        essential: false,
    }
}

impl Check {
    fn needed_for(mut self, disables: &str, install: &str) -> Check {
        self.disables = disables.into();
        if !self.ok {
            self.install = install.into();
        }
        self
    }

    fn essential(mut self) -> Check {
        self.essential = true;
        self
    }
}

/// First line of `program --version` (or `-V`), trimmed.
fn version(program: &Path) -> Option<String> {
    for flag in ["--version", "-V"] {
        if let Ok(o) = Command::new(program).arg(flag).output() {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            let line = String::from_utf8_lossy(&text)
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string();
            if o.status.success() && !line.is_empty() {
                return Some(line.chars().take(60).collect());
            }
        }
    }
    None
}

/// Everything: privileges, kernel (probed in a throwaway namespace),
/// tools on PATH, peers, Docker.
pub fn examine() -> Report {
    let mut checks = Vec::new();
    checks.push(privileges());
    checks.extend(kernel());
    for t in TOOLS {
        let found = match which(t.program) {
            Some(p) => Ok(match version(&p) {
                Some(v) if t.program != "chromium" => format!("{} ({v})", p.display()),
                _ => p.display().to_string(),
            }),
            None => Err("not on PATH".to_string()),
        };
        checks.push(
            check(Area::Tools, t.program, found)
                .needed_for(t.disables, &format!("apt-get install {}", t.package)),
        );
    }
    checks.push(
        check(
            Area::Tools,
            "ftpnat-server",
            reference_program().ok_or_else(|| "not next to ftpnat".to_string()),
        )
        .needed_for(
            "ftpnat speed (the reference server as a program), ftpnat image build",
            "cargo install --path reference-server (or build it next to ftpnat), or set FTPNAT_SERVER_BIN",
        ),
    );
    for p in crate::peers::PEERS {
        let found = match p.locate() {
            Some(bin) if p.name == "proftpd" => {
                let tls = bin
                    .parent()
                    .and_then(Path::parent)
                    .is_some_and(|d| d.join("lib/proftpd/mod_tls.so").exists());
                Ok(format!(
                    "{}{}",
                    bin.display(),
                    if tls { "" } else { " (no mod_tls: no FTPS)" }
                ))
            }
            Some(bin) => Ok(bin.display().to_string()),
            None => Err(format!(
                "not found (searched {})",
                crate::peers::search_dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        checks.push(check(Area::Peers, p.name, found).needed_for(
            p.disables,
            &format!("ftpnat peers install {} (or set {})", p.name, p.env_var),
        ));
    }
    checks.extend(docker());
    Report { checks }
}

/// The `ftpnat-server` program: `$FTPNAT_SERVER_BIN`, next to this
/// executable, or on PATH.
fn reference_program() -> Option<String> {
    std::env::var_os("FTPNAT_SERVER_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .map(|e| e.with_file_name("ftpnat-server"))
        })
        .filter(|p| p.exists())
        .or_else(|| which("ftpnat-server"))
        .map(|p| p.display().to_string())
}

fn privileges() -> Check {
    let uid = nix::unistd::getuid();
    let found = if crate::topology::rootless::in_private_userns() {
        Ok("rootless: a private user namespace (uid 0 inside)".to_string())
    } else if nix::unistd::geteuid().is_root() {
        Ok("root".to_string())
    } else {
        Err(format!("uid {uid}, and no user namespace could be entered"))
    };
    check(Area::Privileges, "root or user namespace", found)
        .needed_for(
            "everything that builds networks (run, matrix, diff, load, validate-ruleset…)",
            "run as root, or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0)",
        )
        .essential()
}

fn read_proc(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn kernel() -> Vec<Check> {
    let mut out = Vec::new();
    let name = format!("{}doc", crate::topology::new_prefix());
    let ns = crate::topology::Netns::create(&name);
    let ns_found = match &ns {
        Ok(_) => Ok(format!("created and removed {name}")),
        Err(e) => Err(e.to_string()),
    };
    out.push(
        check(Area::Kernel, "network namespaces", ns_found)
            .needed_for(
                "every scenario",
                "a kernel with CONFIG_NET_NS, and root or a user namespace",
            )
            .essential(),
    );
    let veth = match &ns {
        Ok(ns) => ns
            .run(|| -> std::io::Result<()> {
                let nl = crate::topology::link::Netlink::open()?;
                let fd = std::fs::File::open("/proc/thread-self/ns/net")?;
                nl.add_veth_into("doc0", "doc1", std::os::fd::AsFd::as_fd(&fd))?;
                nl.index("doc1").map(|_| ())
            })
            .and_then(|r| r)
            .map(|()| "a veth pair inside the probe namespace".to_string())
            .map_err(|e| e.to_string()),
        Err(_) => Err("no namespace to try in".into()),
    };
    out.push(
        check(Area::Kernel, "veth", veth)
            .needed_for(
                "every scenario (links between hosts)",
                "a kernel with CONFIG_VETH",
            )
            .essential(),
    );
    let userns = match (
        read_proc("/proc/sys/user/max_user_namespaces"),
        read_proc("/proc/sys/kernel/unprivileged_userns_clone"),
    ) {
        (Some(m), _) if m == "0" => Err("user.max_user_namespaces = 0".to_string()),
        (_, Some(c)) if c == "0" => Err("kernel.unprivileged_userns_clone = 0".to_string()),
        (Some(m), _) => Ok(format!("allowed (max {m})")),
        (None, _) => Err("no /proc/sys/user/max_user_namespaces".to_string()),
    };
    out.push(check(Area::Kernel, "user namespaces", userns).needed_for(
        "running ftpnat without root",
        "sysctl user.max_user_namespaces=10000 kernel.unprivileged_userns_clone=1 (as root), or run as root",
    ));
    let nft = which("nft");
    let nft_version = nft.as_deref().and_then(version);
    let load = |rules: &str| -> Result<String, String> {
        let (Some(nft), Ok(ns)) = (&nft, &ns) else {
            return Err(if nft.is_none() {
                "unknown: nft is not installed".into()
            } else {
                "no namespace to try in".into()
            });
        };
        let mut cmd = Command::new(nft);
        cmd.args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        ns.command(&mut cmd).map_err(|e| e.to_string())?;
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(rules.as_bytes());
        }
        let o = child.wait_with_output().map_err(|e| e.to_string())?;
        if o.status.success() {
            Ok("loaded in the probe namespace".into())
        } else {
            Err(String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .unwrap_or("nft failed")
                .to_string())
        }
    };
    out.push(
        check(
            Area::Kernel,
            "nftables",
            load("table inet ftpnat_doctor {\n chain forward_probe {\n  type filter hook forward priority 0;\n  ct state established accept\n }\n}\n")
                .map(|s| format!("{} — {s}", nft_version.clone().unwrap_or_default())),
        )
        .needed_for(
            "the kernel engine, validate-ruleset",
            "apt-get install nftables (and a kernel with nf_tables)",
        ),
    );
    out.push(
        check(
            Area::Kernel,
            "NAT (nft masquerade)",
            load("table ip ftpnat_doctor {\n chain post {\n  type nat hook postrouting priority 100;\n  masquerade\n }\n}\n"),
        )
        .needed_for("the kernel engine's NAT", "a kernel with nft_masq / nf_nat"),
    );
    out.push(
        check(
            Area::Kernel,
            "FTP conntrack helper (nf_conntrack_ftp)",
            load("table inet ftpnat_doctor {\n ct helper ftp-standard {\n  type \"ftp\" protocol tcp;\n }\n}\n"),
        )
        .needed_for(
            "the kernel engine's FTP helper (scenarios and validate-ruleset rows with helper = true)",
            "modprobe nf_conntrack_ftp nf_nat_ftp (or a kernel with them built in)",
        ),
    );
    out.push(
        check(
            Area::Kernel,
            "ip_local_port_range",
            read_proc("/proc/sys/net/ipv4/ip_local_port_range")
                .map(|r| r.split_whitespace().collect::<Vec<_>>().join("-"))
                .ok_or_else(|| "unreadable".to_string()),
        )
        .needed_for(
            "fallback ports (kernel-assigned) in exhaustion scenarios",
            "a Linux /proc",
        ),
    );
    drop(ns);
    out
}

fn docker() -> Vec<Check> {
    let mut out = Vec::new();
    let daemon = match which("docker") {
        None => Err("docker is not installed".to_string()),
        Some(d) => match Command::new(d)
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
        {
            Ok(o) if o.status.success() => Ok(format!(
                "engine {}",
                String::from_utf8_lossy(&o.stdout).trim()
            )),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("no answer")
                .to_string()),
            Err(e) => Err(e.to_string()),
        },
    };
    let up = daemon.is_ok();
    out.push(check(Area::Docker, "daemon reachable", daemon).needed_for(
        "--substrate docker, engine = \"image\", validate-ruleset --image",
        "apt-get install docker.io, then start dockerd",
    ));
    for image in ["ftpnat/base:latest", "ftpnat/server:latest"] {
        let found = if !up {
            Err("unknown: no Docker engine".to_string())
        } else {
            match Command::new("docker")
                .args(["image", "inspect", "--format", "{{.Id}}", image])
                .output()
            {
                Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .chars()
                    .take(19)
                    .collect()),
                _ => Err("not built".to_string()),
            }
        };
        out.push(check(Area::Docker, image, found).needed_for(
            "scenarios and validate-ruleset runs on the built images (--substrate docker with image hosts)",
            "ftpnat image build (needs debootstrap and Docker)",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_say_how_to_get_them() {
        let m = require("ftpnat-no-such-program").unwrap_err();
        assert_eq!(m.tool, "ftpnat-no-such-program");
        assert_eq!(
            install_hint("lftp"),
            "apt-get install lftp, or run ci/test.sh"
        );
        assert_eq!(
            Missing {
                tool: "lftp".into(),
                install: install_hint("lftp")
            }
            .to_string(),
            "lftp not installed — apt-get install lftp, or run ci/test.sh"
        );
        assert!(which("/bin/sh").is_some());
        assert!(which("sh").is_some());
        assert!(which("/nonexistent/sh").is_none());
    }
}
