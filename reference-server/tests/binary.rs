//! The `ftpnat-server` binary: --check-config, serving curl and lftp from a
//! config file, the log file, and a clean exit on SIGTERM. Needs curl and
//! lftp (ci/test.sh installs them).

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

const BIN: &str = env!("CARGO_BIN_EXE_ftpnat-server");

fn write_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), "served by the binary\n").unwrap();
    let cfg = dir.join("ftpnat-server.toml");
    std::fs::write(
        &cfg,
        format!("listen = [\"127.0.0.1:0\"]\nroot = \"root\"\npassive_ports = [61300, 61310]\nlog_file = \"{}\"\n{extra}", dir.join("server.log").display()),
    )
    .unwrap();
    cfg
}

/// Starts the binary with `cfg` and waits (10 s bound) for its
/// "listening on" line; returns the child and the control address.
fn spawn_server(cfg: &std::path::Path) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not announce its listener within 10 s");
        };
        if let Some(a) = line.split("listening on ").nth(1) {
            return (child, a.trim().parse().unwrap());
        }
    }
}

#[test]
fn check_config_prints_effective_config_or_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "masquerade_address = \"203.0.113.1\"\n");
    let out = Command::new(BIN)
        .arg("--check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("203.0.113.1") && text.contains("passive_ports"),
        "{text}"
    );
    let bad = write_config(dir.path(), "passive_ports = [61310, 61300]\n");
    let out = Command::new(BIN)
        .arg("--check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ftpnat-server.toml:") && err.contains("passive_ports"),
        "{err}"
    );
    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no arguments is a usage error");
}

#[test]
fn serves_curl_and_lftp_then_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let (mut child, addr) = spawn_server(&cfg);
    let addr = addr.to_string();
    let curl = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--disable-epsv",
            "--no-ftp-skip-pasv-ip",
            &format!("ftp://{addr}/hello.txt"),
        ])
        .output()
        .expect("curl (apt-get install -y curl)");
    assert!(
        curl.status.success(),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    assert_eq!(curl.stdout, b"served by the binary\n");
    let (ip, port) = addr.rsplit_once(':').unwrap();
    let lftp = Command::new("lftp")
        .args([
            "-c",
            &format!(
                "set net:max-retries 1; set net:timeout 5; open -p {port} {ip}; cat hello.txt"
            ),
        ])
        .output()
        .expect("lftp (apt-get install -y lftp)");
    assert!(
        lftp.status.success(),
        "{}",
        String::from_utf8_lossy(&lftp.stderr)
    );
    assert_eq!(lftp.stdout, b"served by the binary\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not exit within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("listening on 127.0.0.1:"), "{log}");
    assert!(log.contains("transfer complete"), "{log}");
    assert!(log.contains("server stopped"), "{log}");
}

/// Memory stays bounded with 1,000 idle sessions: the server's RSS growth is
/// measured and must stay under 64 MiB (README reports the figure).
#[test]
fn rss_with_1000_idle_sessions() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let want = 4096.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, want, hard).unwrap();
    assert!(
        want >= 2100,
        "needs 2,100 file descriptors (ulimit -n), have {want}"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[limits]\nmax_clients = 1100\nmax_clients_per_ip = 1100\n",
    );
    let (mut child, addr) = spawn_server(&cfg);
    let rss = |pid: u32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = rss(child.id());
    let mut conns = Vec::new();
    for _ in 0..1000 {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s);
        let mut banner = String::new();
        r.read_line(&mut banner).unwrap();
        assert!(banner.starts_with("220 "), "{banner}");
        conns.push(r);
    }
    let after = rss(child.id());
    let per_session = (after.saturating_sub(before)) as f64 / 1000.0;
    println!("RSS with 1000 idle sessions: {before} KiB -> {after} KiB ({per_session:.1} KiB per session)");
    assert!(
        after - before < 64 * 1024,
        "RSS grew by {} KiB",
        after - before
    );
    drop(conns);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}
