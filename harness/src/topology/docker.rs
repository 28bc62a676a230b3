//! The container substrate: hosts and gateways as Docker containers, wired
//! like containerlab wires its nodes. Each container runs with network mode
//! `none` and a label naming the run; the harness reads the container's pid
//! and builds exactly the links and addresses the namespace substrate
//! builds, inside the container's network namespace. No Docker network, no
//! change to the host's firewall, no route out of the sandbox. Actors are
//! started by entering the container's namespaces directly.
//!
//! The image is `ftpnat/holder:<content hash>`, made offline on first use
//! by `docker import` of `/bin/sleep` and the libraries it needs (there is
//! no registry to pull from); a container only has to hold the namespace.

use std::{collections::BTreeMap, path::Path, process::Command};

use sha2::{Digest, Sha256};
use testcontainers::{runners::SyncRunner, Container, GenericImage, ImageExt};

/// The label every container of a run carries (value: the run prefix).
pub const LABEL: &str = "ftpnat.run";

/// Containers started for one run; dropping removes them.
#[derive(Default)]
pub struct Containers {
    held: Vec<Container<GenericImage>>,
    nodes: Vec<String>,
}

impl std::fmt::Debug for Containers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Containers({})", self.held.len())
    }
}

fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker").args(args).output().map_err(|e| {
        format!(
            "docker {}: {e} (install docker.io and start the engine)",
            args.join(" ")
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Fails with what to install when no Docker engine answers.
pub fn require_engine() -> Result<(), String> {
    docker(&["version", "--format", "{{.Server.Version}}"])
        .map(|_| ())
        .map_err(|e| format!("no Docker engine answers ({e}): the docker substrate needs one"))
}

/// The holder image, imported on first use; returns (name, tag).
pub fn holder_image() -> Result<(String, String), String> {
    let sleep = Path::new("/bin/sleep");
    let ldd = Command::new("ldd")
        .arg(sleep)
        .output()
        .map_err(|e| format!("ldd: {e}"))?;
    let mut files = vec![sleep.to_path_buf()];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        if let Some(p) = line.split_whitespace().find(|w| w.starts_with('/')) {
            files.push(p.into());
        }
    }
    let mut h = Sha256::new();
    for f in &files {
        h.update(f.as_os_str().as_encoded_bytes());
        h.update(std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?);
    }
    let tag = format!("{:x}", h.finalize())[..12].to_string();
    let name = "ftpnat/holder".to_string();
    if docker(&["image", "inspect", &format!("{name}:{tag}")]).is_ok() {
        return Ok((name, tag));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    for f in &files {
        let to = dir.path().join(f.strip_prefix("/").unwrap_or(f));
        std::fs::create_dir_all(to.parent().unwrap_or(dir.path())).map_err(|e| e.to_string())?;
        std::fs::copy(f, &to).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    let tar = dir.path().join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .args(["--exclude", "rootfs.tar", "-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    if !st.success() {
        return Err("tar of the holder image failed".into());
    }
    docker(&[
        "import",
        "--message",
        "ftpnat namespace holder",
        &tar.display().to_string(),
        &format!("{name}:{tag}"),
    ])?;
    Ok((name, tag))
}

impl Containers {
    /// Starts one container per node (network mode none, the run's label,
    /// NET_ADMIN) and returns each one's main pid. A node with an image runs that image with its own entrypoint; the
    /// others run the holder image (`sleep infinity`). Containers start in
    /// parallel (each is a few Docker API round trips).
    pub fn start(
        prefix: &str,
        nodes: &[(String, Option<String>)],
    ) -> Result<(Containers, BTreeMap<String, i32>), String> {
        require_engine()?;
        let (image, tag) = holder_image()?;
        let one = |n: &str, own: Option<&str>| -> Result<(Container<GenericImage>, i32), String> {
            let request = match own {
                Some(own) => {
                    docker(&["image", "inspect", own]).map_err(|_| {
                        format!("{n}: image {own} is not a local image (there is no registry to pull from: build or load it first)")
                    })?;
                    let (name, tag) = own.rsplit_once(':').unwrap_or((own, "latest"));
                    GenericImage::new(name, tag).with_network("none")
                }
                None => GenericImage::new(image.as_str(), tag.as_str())
                    .with_cmd(["/bin/sleep", "infinity"])
                    .with_network("none"),
            };
            let c = request
                .with_cap_add("NET_ADMIN")
                .with_label(LABEL, prefix)
                .with_label("ftpnat.node", n)
                .with_container_name(format!("{prefix}-{n}"))
                .start()
                .map_err(|e| format!("container for {n}: {e}"))?;
            let pid: i32 = docker(&["inspect", "-f", "{{.State.Pid}}", c.id()])?
                .parse()
                .map_err(|e| format!("pid of container {n}: {e}"))?;
            Ok((c, pid))
        };
        let started: Vec<Result<(Container<GenericImage>, i32), String>> =
            std::thread::scope(|s| {
                let handles: Vec<_> = nodes
                    .iter()
                    .map(|(n, own)| s.spawn(|| one(n, own.as_deref())))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err("container start panicked".into()))
                    })
                    .collect()
            });
        let mut held = Containers::default();
        let mut pids = BTreeMap::new();
        let mut first_error = None;
        for ((n, _), r) in nodes.iter().zip(started) {
            match r {
                Ok((c, pid)) => {
                    held.held.push(c);
                    held.nodes.push(n.clone());
                    pids.insert(n.clone(), pid);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // Containers already started are removed when `held` drops.
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok((held, pids))
    }

    fn id_of(&self, node: &str) -> Result<&str, String> {
        self.held
            .iter()
            .zip(&self.nodes)
            .find(|(_, n)| n.as_str() == node)
            .map(|(c, _)| c.id())
            .ok_or_else(|| format!("no container for {node}"))
    }

    /// The container's output so far (`docker logs`).
    pub fn logs(&self, node: &str) -> Result<String, String> {
        let id = self.id_of(node)?;
        let out = Command::new("docker")
            .args(["logs", id])
            .output()
            .map_err(|e| format!("docker logs: {e}"))?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// Waits (bounded) until the container of `node` prints a line
    /// matching `ready`.
    pub fn wait_for_log(
        &self,
        node: &str,
        ready: &regex::Regex,
        bound: std::time::Duration,
    ) -> Result<(), String> {
        let until = std::time::Instant::now() + bound;
        loop {
            let log = self.logs(node)?;
            if log.lines().any(|l| ready.is_match(l)) {
                return Ok(());
            }
            if std::time::Instant::now() >= until {
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                return Err(format!(
                    "the container of {node} printed no line matching /{ready}/ within {bound:?}; its last lines:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// How many containers are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// Removes containers of runs whose process is gone; returns their names.
/// Without a Docker engine there is nothing to remove.
pub fn sweep() -> Vec<String> {
    let Ok(list) = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={LABEL}"),
        "--format",
        &format!("{{{{.ID}}}} {{{{.Names}}}} {{{{.Label \"{LABEL}\"}}}}"),
    ]) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for line in list.lines() {
        let mut w = line.split_whitespace();
        let (Some(id), Some(name), Some(prefix)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        let alive = super::netns::owner_pid(prefix).is_some_and(super::netns::pid_alive);
        if !alive && docker(&["rm", "-f", id]).is_ok() {
            removed.push(name.to_string());
        }
    }
    removed
}

/// What goes into `ftpnat/base` (besides Debian minbase), installed.
pub const BASE_PACKAGES: &[&str] = &[
    "iproute2",
    "nftables",
    "curl",
    "lftp",
    "python3",
    // The unpacked servers' libraries (as ci/test.sh installs them).
    "libwrap0",
    "libhiredis0.14",
    "libmemcached11",
    "libmemcachedutil2",
    "libpcre2-posix3",
    "libsodium23",
    "libssl3",
    "libcap2",
    "libpam0g",
];

/// The FTP servers, unpacked (they conflict with each other as packages).
pub const BASE_UNPACKED: &[&str] = &["vsftpd", "proftpd-core", "proftpd-mod-crypto", "pure-ftpd"];

const IMAGE_BUILD: &str = include_str!("image-build.sh");

/// The Debian mirror apt uses on this machine.
fn debian_mirror() -> String {
    let from_sources = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("URIs:"))
                .and_then(|u| u.split_whitespace().next().map(str::to_string))
        });
    let from_list = || {
        std::fs::read_to_string("/etc/apt/sources.list")
            .ok()
            .and_then(|t| {
                t.lines()
                    .filter(|l| l.starts_with("deb ") && !l.contains("security"))
                    .find_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            })
    };
    from_sources
        .or_else(from_list)
        .unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    format!("{:x}", h.finalize())[..12].to_string()
}

/// What `ftpnat image build` made (or found up to date).
#[derive(Debug, Clone)]
pub struct Built {
    /// `ftpnat/base:<hash>`.
    pub base: String,
    /// `ftpnat/server:<hash>`.
    pub server: String,
    /// Whether anything was built (false: both were up to date).
    pub built: bool,
}

/// Builds `ftpnat/base` (debootstrap minbase + [`BASE_PACKAGES`], from the
/// mirror apt uses; daemons never started) and `ftpnat/server` (base + the
/// `ftpnat-server` binary), each tagged by a hash of its inputs and also
/// `:latest`; an image whose tag exists is not rebuilt unless `force`.
pub fn build_images(server_binary: &Path, force: bool) -> Result<Built, String> {
    let _bar = crate::progress::Guard::start(0, "image build");
    crate::progress::message("checking the Docker engine");
    require_engine()?;
    let mirror = debian_mirror();
    let packages = format!("{} | {}", BASE_PACKAGES.join(" "), BASE_UNPACKED.join(" "));
    let base = format!(
        "ftpnat/base:{}",
        short_hash(&[
            mirror.as_bytes(),
            packages.as_bytes(),
            IMAGE_BUILD.as_bytes(),
            b"bookworm"
        ])
    );
    let mut built = false;
    if force || docker(&["image", "inspect", &base]).is_err() {
        if Command::new("debootstrap")
            .arg("--version")
            .output()
            .is_err()
        {
            return Err("debootstrap is missing: apt-get install -y debootstrap".into());
        }
        crate::progress::message(format!("building {base}: debootstrap and packages"));
        let work = tempfile::tempdir().map_err(|e| e.to_string())?;
        let script = work.path().join("image-build.sh");
        std::fs::write(&script, IMAGE_BUILD).map_err(|e| e.to_string())?;
        let st = Command::new("bash")
            .env("UNPACK", BASE_UNPACKED.join(" "))
            .arg(&script)
            .arg(work.path())
            .arg(&mirror)
            .arg(&base)
            .args(BASE_PACKAGES)
            .status()
            .map_err(|e| format!("bash: {e}"))?;
        if !st.success() {
            return Err(format!("building {base} failed (see the messages above)"));
        }
        built = true;
    }
    docker(&["tag", &base, "ftpnat/base:latest"])?;
    let bin =
        std::fs::read(server_binary).map_err(|e| format!("{}: {e}", server_binary.display()))?;
    let server = format!("ftpnat/server:{}", short_hash(&[base.as_bytes(), &bin]));
    if force || docker(&["image", "inspect", &server]).is_err() {
        crate::progress::message(format!("building {server}"));
        let ctx = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::fs::write(ctx.path().join("ftpnat-server"), &bin).map_err(|e| e.to_string())?;
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM {base}\nCOPY ftpnat-server /usr/local/bin/ftpnat-server\nRUN chmod 755 /usr/local/bin/ftpnat-server\n"),
        )
        .map_err(|e| e.to_string())?;
        let out = Command::new("docker")
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "--network", "none", "-t", &server])
            .arg(ctx.path())
            .output()
            .map_err(|e| format!("docker build: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "docker build of {server}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        built = true;
    }
    docker(&["tag", &server, "ftpnat/server:latest"])?;
    Ok(Built {
        base,
        server,
        built,
    })
}
