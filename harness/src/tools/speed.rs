//! `ftpnat speed`: one large RETR and one STOR per server, over loopback and
//! over a namespace veth path, with the server's CPU time, in one run.
//!
//! Every server runs as its own process in the server host's namespace —
//! the reference server as the `ftpnat-server` binary, vsftpd and ProFTPD as
//! the unpacked Debian packages — so CPU time is read the same way for all:
//! utime + stime of every process in that namespace (per-session children
//! included), before and after the transfer, before the session ends.
//! The client is the harness's own, discarding what it reads and sending
//! from one buffer, so it does no per-byte work besides the socket calls.

use std::{
    collections::HashMap,
    io::Write,
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{observe, target::Target};
use crate::runner::Lab;
use crate::{
    actor::{
        self,
        daemon::{self, Daemon},
        reference,
    },
    client::{pasv_addr, FtpClient, Transcript},
    scenario,
    topology::Netns,
};

/// Which path the bytes take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// Client and server in one namespace, over 127.0.0.1.
    Loopback,
    /// Client and server in two namespaces joined by a veth pair.
    Veth,
}

/// One measured transfer.
#[derive(Debug, Clone, Serialize)]
pub struct SpeedRow {
    /// Server.
    pub server: String,
    /// Explicit FTPS (`AUTH TLS`, `PROT P`) rather than plain FTP.
    pub tls: bool,
    /// Path.
    pub path: PathKind,
    /// `RETR` or `STOR`.
    pub direction: &'static str,
    /// Bytes moved.
    pub bytes: u64,
    /// From the command to the 226.
    pub seconds: f64,
    /// MiB/s.
    pub mib_per_s: f64,
    /// Server CPU seconds (user + system) per GiB moved.
    pub cpu_s_per_gib: f64,
    /// This row's MiB/s ÷ vsftpd's on the same path, direction and mode.
    pub vs_vsftpd: Option<f64>,
    /// FTPS rows: this row's MiB/s ÷ the same server's plain FTP row.
    pub vs_plain: Option<f64>,
}

const TOPOLOGY: &str = r#"
name = "speed"
[[host]]
name = "server"
addr = "192.168.1.2/24"
[[host]]
name = "client"
addr = "192.168.1.10/24"
"#;

/// Writes `size` bytes of pseudo-random data (cheap xorshift) to `path`.
fn write_blob(path: &Path, size: u64) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for w in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    // On disk before anything is measured: no writeback of it competes
    // with the transfers.
    f.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// Starts `target` (the reference server as its own program) serving
/// `root`, with the same settings for every kind.
fn start_server(
    target: &Target,
    ns: Arc<Netns>,
    root: &Path,
    dir: &Path,
    pki: Option<&crate::tls::TestPki>,
) -> Result<Daemon, String> {
    let mut raw: ftpnat_server::config::RawConfig = toml::from_str(
        "passive_ports = [60000, 60010]\nanonymous_upload = true\nlisten = [\"0.0.0.0:21\"]\n",
    )
    .map_err(|e| e.to_string())?;
    if let Some(p) = pki {
        raw.tls_cert = Some(p.cert_pem.clone());
        raw.tls_key = Some(p.key_pem.clone());
    }
    let server = actor::real_server(target.kind, target.command.as_deref())
        .unwrap_or_else(|| Box::new(reference::Program));
    daemon::launch(&*server, ns, &raw, root, dir, "speed").map_err(|e| e.to_string())
}

/// One RETR and one STOR of `size` bytes against `target` over `path`.
pub fn measure(
    target: &Target,
    path: PathKind,
    size: u64,
    tls: bool,
) -> Result<Vec<SpeedRow>, String> {
    let dir = crate::topology::netns::run_tempdir().map_err(|e| e.to_string())?;
    let sc = scenario::parse(TOPOLOGY, Path::new("speed.toml")).map_err(|d| d.to_string())?;
    let lab = Lab::start(&sc, dir.path(), false).map_err(|e| e.to_string())?;
    let root = dir.path().join("speed-root");
    let incoming = root.join("incoming");
    std::fs::create_dir_all(&incoming).map_err(|e| e.to_string())?;
    // Writable by whichever account the server writes as (daemon for the
    // anonymous users of vsftpd and ProFTPD).
    std::os::unix::fs::chown(&incoming, Some(1), Some(1)).map_err(|e| e.to_string())?;
    std::fs::set_permissions(
        &incoming,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .map_err(|e| e.to_string())?;
    write_blob(&root.join("big.bin"), size).map_err(|e| e.to_string())?;
    let server_ns = Arc::clone(lab.topo.ns("server"));
    let pki = if tls {
        let ips = [
            "127.0.0.1".parse().expect("literal"),
            "192.168.1.2".parse().expect("literal"),
        ];
        Some(crate::tls::TestPki::generate(
            &dir.path().join("tls"),
            &ips,
        )?)
    } else {
        None
    };
    let mut daemon = start_server(
        target,
        Arc::clone(&server_ns),
        &root,
        dir.path(),
        pki.as_ref(),
    )?;
    let daemon_pid = daemon.pid();
    let (sockets, control): (_, SocketAddr) = match path {
        PathKind::Loopback => (
            lab.topo.sockets("server"),
            "127.0.0.1:21".parse().expect("literal"),
        ),
        PathKind::Veth => (
            lab.topo.sockets("client"),
            "192.168.1.2:21".parse().expect("literal"),
        ),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = rt.block_on(async {
        let (mut c, banner) = FtpClient::connect(
            sockets,
            control,
            Duration::from_secs(10),
            Transcript::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        if banner.code != 220 {
            return Err(format!("banner {banner:?}"));
        }
        if let Some(p) = &pki {
            let tls = crate::tls::ClientTls::new(&p.ca_der)?;
            let r = c.auth_tls(tls).await.map_err(|e| e.to_string())?;
            if r.code != 234 {
                return Err(format!("AUTH TLS: {r:?}"));
            }
            for cmd in ["PBSZ 0", "PROT P"] {
                let r = c.cmd(cmd).await.map_err(|e| e.to_string())?;
                if r.code != 200 {
                    return Err(format!("{cmd}: {r:?}"));
                }
            }
        }
        let r = c
            .login("anonymous", "speed@")
            .await
            .map_err(|e| e.to_string())?;
        if r.code != 230 {
            return Err(format!("login: {r:?}"));
        }
        c.cmd("TYPE I").await.map_err(|e| e.to_string())?;
        let mut rows = Vec::new();
        for direction in ["RETR", "STOR"] {
            let r = c.cmd("PASV").await.map_err(|e| e.to_string())?;
            let data_at = pasv_addr(&r).ok_or_else(|| format!("PASV: {r:?}"))?;
            let tcp = c
                .connect_data(SocketAddr::V4(data_at))
                .await
                .map_err(|e| format!("data connection: {e}"))?;
            // Earlier rows' uploads are written back first, so no transfer
            // competes with another one's writeback.
            // SAFETY: sync(2) has no preconditions.
            unsafe { libc::sync() };
            let before = observe::process_ticks(&server_ns, daemon_pid);
            let t0 = Instant::now();
            let line = match direction {
                "RETR" => "RETR big.bin",
                _ => "STOR incoming/up.bin",
            };
            let r = c.cmd(line).await.map_err(|e| e.to_string())?;
            if r.code != 150 && r.code != 125 {
                return Err(format!("{line}: {r:?}"));
            }
            // TLS (PROT P) after the 150, as FTPS clients do.
            let mut data = c
                .protect_data(tcp)
                .await
                .map_err(|e| format!("data TLS: {e}"))?;
            let mut buf = vec![0u8; 1 << 20];
            let mut moved = 0u64;
            if direction == "RETR" {
                loop {
                    let n = data.read(&mut buf).await.map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    moved += n as u64;
                }
            } else {
                while moved < size {
                    let n = (size - moved).min(buf.len() as u64) as usize;
                    data.write_all(&buf[..n]).await.map_err(|e| e.to_string())?;
                    moved += n as u64;
                }
                data.shutdown().await.map_err(|e| e.to_string())?;
                // Until the server closes: dropping with unread bytes (TLS
                // session tickets) would reset the connection.
                let mut rest = Vec::new();
                let _ = data.read_to_end(&mut rest).await;
            }
            drop(data);
            let done = c.read_reply().await.map_err(|e| e.to_string())?;
            let seconds = t0.elapsed().as_secs_f64();
            let after = observe::process_ticks(&server_ns, daemon_pid);
            if done.code != 226 || moved != size {
                return Err(format!("{line}: {moved} of {size} bytes, then {done:?}"));
            }
            let gib = size as f64 / f64::from(1u32 << 30);
            rows.push(SpeedRow {
                server: target.name.clone(),
                tls,
                path,
                direction,
                bytes: size,
                seconds,
                mib_per_s: size as f64 / f64::from(1u32 << 20) / seconds,
                cpu_s_per_gib: after.saturating_sub(before) as f64
                    / observe::ticks_per_second()
                    / gib,
                vs_vsftpd: None,
                vs_plain: None,
            });
        }
        let _ = c.cmd("QUIT").await;
        Ok(rows)
    });
    daemon.stop();
    drop(rt);
    lab.stop();
    result.map_err(|e| format!("{} over {path:?}: {e}", target.name))
}

/// Every server × path, `repeat` rounds (servers interleaved within each
/// round, so drift on a noisy machine hits all of them alike); each row is
/// the round with the median speed, with its ratio to vsftpd's.
pub fn run(
    targets: &[Target],
    paths: &[PathKind],
    size: u64,
    repeat: usize,
    with_tls: bool,
) -> Result<Vec<SpeedRow>, String> {
    let modes: &[bool] = if with_tls { &[false, true] } else { &[false] };
    let mut rounds: Vec<Vec<SpeedRow>> = Vec::new();
    let _bar = crate::progress::Guard::start(
        (repeat.max(1) * paths.len() * targets.len() * modes.len()) as u64,
        "speed",
    );
    for n in 0..repeat.max(1) {
        let mut round = Vec::new();
        for path in paths {
            for target in targets {
                for tls in modes {
                    crate::progress::message(format!(
                        "round {}/{}: {} {path:?}{}",
                        n + 1,
                        repeat.max(1),
                        target.name,
                        if *tls { " FTPS" } else { "" }
                    ));
                    round.extend(measure(target, *path, size, *tls)?);
                    crate::progress::inc(1);
                }
            }
        }
        rounds.push(round);
    }
    let mut rows = Vec::new();
    for i in 0..rounds[0].len() {
        let mut samples: Vec<SpeedRow> = rounds.iter().map(|r| r[i].clone()).collect();
        samples.sort_by(|a, b| a.mib_per_s.total_cmp(&b.mib_per_s));
        rows.push(samples.swap_remove(samples.len() / 2));
    }
    let base: HashMap<(PathKind, &str, bool), f64> = rows
        .iter()
        .filter(|r| r.server == "vsftpd")
        .map(|r| ((r.path, r.direction, r.tls), r.mib_per_s))
        .collect();
    let plain: HashMap<(PathKind, &str, String), f64> = rows
        .iter()
        .filter(|r| !r.tls)
        .map(|r| ((r.path, r.direction, r.server.clone()), r.mib_per_s))
        .collect();
    for r in &mut rows {
        r.vs_vsftpd = base
            .get(&(r.path, r.direction, r.tls))
            .map(|b| r.mib_per_s / b);
        if r.tls {
            r.vs_plain = plain
                .get(&(r.path, r.direction, r.server.clone()))
                .map(|b| r.mib_per_s / b);
        }
    }
    Ok(rows)
}
