//! Namespace topologies (issue 4). Needs root (CI is root); without it every
//! test fails saying so — nothing is skipped.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::Command,
    sync::Arc,
    time::Duration,
};

use ftpnat::{
    client::{DataMode, DataOutcome, FtpClient, Transcript},
    topology::{netns, LinkSpec, NodeKind, NodeSpec, PortSpec, RouteSpec, Topology, TopologySpec},
};

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests build network namespaces: run them as root (CI does), e.g. `sudo -E cargo test --test topology`"
    );
}

fn routed_spec() -> TopologySpec {
    let mut spec = TopologySpec::nat_example();
    // Give the WAN client a route to the LAN so plain routing is testable.
    spec.nodes[0].routes.push(RouteSpec {
        dst: "192.168.1.0/24".parse().unwrap(),
        via: "203.0.113.1".parse().unwrap(),
    });
    spec
}

fn tcp_echo_server(topo: &Topology, node: &str, addr: &str) -> std::thread::JoinHandle<()> {
    let listener = topo
        .ns(node)
        .run({
            let addr: SocketAddr = addr.parse().unwrap();
            move || std::net::TcpListener::bind(addr)
        })
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or(0);
            let _ = s.write_all(&buf[..n]);
        }
    })
}

fn tcp_echo(topo: &Topology, from: &str, to: &str) -> std::io::Result<Vec<u8>> {
    let to: SocketAddr = to.parse().unwrap();
    topo.ns(from).run(move || -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"ping")?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        Ok(buf)
    })?
}

#[test]
fn routed_reachability_tcp_and_udp_both_ways() {
    require_root();
    let topo = Topology::build(&routed_spec()).unwrap();
    let t = tcp_echo_server(&topo, "server", "192.168.1.2:7000");
    assert_eq!(
        tcp_echo(&topo, "client", "192.168.1.2:7000").unwrap(),
        b"ping"
    );
    t.join().unwrap();
    let t = tcp_echo_server(&topo, "client", "203.0.113.10:7001");
    assert_eq!(
        tcp_echo(&topo, "server", "203.0.113.10:7001").unwrap(),
        b"ping"
    );
    t.join().unwrap();
    // UDP echo, server -> client.
    let sock = topo
        .ns("client")
        .run(|| std::net::UdpSocket::bind("203.0.113.10:7002"))
        .unwrap()
        .unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 32];
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        sock.send_to(&buf[..n], from).unwrap();
    });
    let got = topo
        .ns("server")
        .run(|| -> std::io::Result<Vec<u8>> {
            let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.send_to(b"udp!", "203.0.113.10:7002")?;
            let mut buf = [0u8; 32];
            let n = s.recv(&mut buf)?;
            Ok(buf[..n].to_vec())
        })
        .unwrap()
        .unwrap();
    assert_eq!(got, b"udp!");
    echo.join().unwrap();
}

#[test]
fn unconnected_segments_are_isolated() {
    require_root();
    // Without the client's route (and the gateway not forwarding), nothing crosses.
    let mut spec = TopologySpec::nat_example();
    spec.nodes[1].sysctls.clear();
    let topo = Topology::build(&spec).unwrap();
    let e = tcp_echo(&topo, "client", "192.168.1.2:7000").unwrap_err();
    assert!(
        matches!(
            e.raw_os_error(),
            Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH)
        ) || e.kind() == std::io::ErrorKind::TimedOut,
        "{e:?}"
    );
    // And the gateway cannot be reached from the server's side for the WAN host either.
    let e = tcp_echo(&topo, "server", "203.0.113.10:7000").unwrap_err();
    assert!(
        e.kind() != std::io::ErrorKind::ConnectionRefused,
        "nothing may answer: {e:?}"
    );
}

#[test]
fn switch_segment_ipv6_and_child_sees_only_its_namespace() {
    require_root();
    let net = |s: &str| s.parse().unwrap();
    let port = |node: &str, ifname: &str, addrs: Vec<ipnet::IpNet>| PortSpec {
        node: node.into(),
        ifname: ifname.into(),
        addrs,
        mac: None,
        offloads_off: false,
        peer: None,
    };
    let node = |name: &str, kind| NodeSpec {
        name: name.into(),
        kind,
        routes: vec![],
        sysctls: vec![],
    };
    let spec = TopologySpec {
        nodes: vec![
            node("sw", NodeKind::Switch),
            node("a", NodeKind::Host),
            node("b", NodeKind::Host),
            node("c", NodeKind::Host),
        ],
        links: ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, h)| LinkSpec {
                a: port("sw", &format!("p{i}"), vec![]),
                b: port(
                    h,
                    "eth0",
                    vec![
                        net(&format!("10.9.0.{}/24", i + 1)),
                        net(&format!("fd00::{}/64", i + 1)),
                    ],
                ),
            })
            .collect(),
    };
    let topo = Topology::build(&spec).unwrap();
    let t = tcp_echo_server(&topo, "c", "10.9.0.3:7100");
    assert_eq!(tcp_echo(&topo, "a", "10.9.0.3:7100").unwrap(), b"ping");
    t.join().unwrap();
    // DAD is off in project namespaces, so IPv6 addresses are usable at once.
    let t = tcp_echo_server(&topo, "b", "[fd00::2]:7101");
    assert_eq!(tcp_echo(&topo, "a", "[fd00::2]:7101").unwrap(), b"ping");
    t.join().unwrap();
    let out = topo
        .command("a", "ip", &["-o", "link"])
        .unwrap()
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap())
        .collect();
    assert_eq!(names, vec!["lo", "eth0"], "{text}");
}

fn root_snapshot() -> String {
    let mut s = String::new();
    for args in [
        &["-o", "link"][..],
        &["-o", "addr"],
        &["route", "show", "table", "all"],
        &["netns", "list"],
    ] {
        let out = Command::new("ip").args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        // Our own namespaces appear in `ip netns list` only while a topology lives; compare the rest.
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("fn"))
            .map(|l| format!("{l}\n"))
            .collect();
        s.push_str(&text);
    }
    let out = Command::new("nft").args(["list", "ruleset"]).output();
    if let Ok(out) = out {
        s.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    for key in [
        "net/ipv4/ip_forward",
        "net/ipv6/conf/all/disable_ipv6",
        "net/ipv6/conf/all/forwarding",
    ] {
        s.push_str(&format!(
            "{key}={}",
            std::fs::read_to_string(format!("/proc/sys/{key}")).unwrap_or_default()
        ));
    }
    s
}

#[test]
fn root_namespace_is_never_changed() {
    require_root();
    let before = root_snapshot();
    for _ in 0..3 {
        let topo = Topology::build(&routed_spec()).unwrap();
        assert_eq!(
            tcp_echo(&topo, "client", "192.168.1.2:1")
                .unwrap_err()
                .kind(),
            std::io::ErrorKind::ConnectionRefused
        );
        drop(topo);
    }
    assert_eq!(before, root_snapshot());
}

#[test]
fn fifty_concurrent_topologies_leave_nothing_behind() {
    require_root();
    let prefixes = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..10 {
            s.spawn(|| {
                for _ in 0..5 {
                    let topo = Topology::build(&routed_spec()).unwrap();
                    assert_eq!(netns_names(&topo.prefix).len(), 3);
                    prefixes.lock().unwrap().push(topo.prefix.clone());
                }
            });
        }
    });
    let prefixes = prefixes.into_inner().unwrap();
    assert_eq!(prefixes.len(), 50);
    for p in prefixes {
        assert_eq!(netns_names(&p), Vec::<String>::new(), "{p} left something");
    }
}

fn netns_names(prefix: &str) -> Vec<String> {
    let mine = format!("{prefix}-");
    let mut v: Vec<String> = std::fs::read_dir(netns::NETNS_DIR)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.retain(|n| n.starts_with(&mine));
    v.sort();
    v
}

#[test]
fn kill_9_leftovers_are_swept() {
    require_root();
    for round in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ftpnat"))
            .args(["debug", "hold"])
            .stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let prefix = line
            .trim()
            .strip_prefix("holding ")
            .unwrap_or_else(|| panic!("unexpected: {line}"))
            .to_string();
        let held: Vec<String> = std::fs::read_dir(netns::NETNS_DIR)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("{prefix}-")))
            .collect();
        assert_eq!(held.len(), 3, "round {round}: {held:?}");
        // The holder also runs a process inside the server host.
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let swept = ftpnat::topology::sweep().unwrap();
        let mut expected = held.clone();
        expected.sort();
        let mine: Vec<String> = swept
            .namespaces
            .iter()
            .filter(|n| n.starts_with(&format!("{prefix}-")))
            .cloned()
            .collect();
        assert_eq!(mine, expected, "round {round}");
        assert_eq!(
            swept.processes.len(),
            1,
            "the sleeper inside the server host was killed: {swept:?}"
        );
        assert!(!std::path::Path::new(netns::NETNS_DIR)
            .join(&held[0])
            .exists());
    }
}

/// `ftpnat run` killed with SIGKILL at a random moment, 20 times: after
/// the next sweep nothing of the dead run is left — no namespace, no process
/// inside one, no link in the root namespace, no temporary folder.
#[test]
fn runs_killed_at_random_moments_leave_nothing_after_the_sweep() {
    require_root();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let links = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir("/sys/class/net")
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let root_links = links();
    for round in 0..20 {
        let delay = Duration::from_millis(20 + next() % 2000);
        let mut child = Command::new(env!("CARGO_BIN_EXE_ftpnat"))
            .args(["run", "../scenarios/conformance", "--jobs", "2", "--filter"])
            .arg("^(pasv-format-227|masquerade-pasv-public-address|clients-curl-lftp-ftplib-through-nat|exhaustion-fallback-with-range-only-forwarding|forwarding-active-mode-outside-client|exposure-scan-shows-only-ftp)$")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // The random moment: not a wait for an event, the point of the test.
        std::thread::sleep(delay);
        let owned = |name: &str| {
            name.strip_prefix("ftpnat-")
                .unwrap_or(name)
                .strip_prefix(&format!("fn{pid}x"))
                .is_some()
        };
        let inodes: Vec<u64> = std::fs::read_dir(netns::NETNS_DIR)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| owned(&e.file_name().to_string_lossy()))
            .filter_map(|e| std::os::unix::fs::MetadataExt::ino(&e.metadata().ok()?).into())
            .collect();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        ftpnat::topology::sweep().unwrap();
        let left: Vec<String> = std::fs::read_dir(netns::NETNS_DIR)
            .into_iter()
            .flatten()
            .chain(
                std::fs::read_dir(std::env::temp_dir())
                    .into_iter()
                    .flatten(),
            )
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| owned(n))
            .collect();
        assert!(left.is_empty(), "round {round} ({delay:?}): left {left:?}");
        // Killed processes take a moment to leave their namespace.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let alive: Vec<i32> = inodes
                .iter()
                .flat_map(|i| netns::pids_in_namespace(*i))
                .collect();
            if alive.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round} ({delay:?}): processes {alive:?} still in the dead run's namespaces"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            links(),
            root_links,
            "round {round}: links in the root namespace"
        );
    }
}

#[test]
fn ftp_across_a_kernel_router_with_the_reference_server() {
    require_root();
    let topo = Topology::build(&routed_spec()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), b"hi\n").unwrap();
    let text = format!(
        "listen = [\"192.168.1.2:21\"]\nroot = \"{}\"\npassive_ports = [60000, 60010]\n",
        dir.path().display()
    );
    let config = ftpnat_server::config::Config::from_toml(
        &text,
        std::path::Path::new("t.toml"),
        &ftpnat_server::config::system_resolver,
    )
    .unwrap();
    let log = dir.path().join("server.log");
    let _server = ftpnat::actor::reference::ReferenceServer::start(
        Arc::clone(topo.ns("server")),
        config,
        &log,
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut c, banner) = FtpClient::connect(
            topo.sockets("client"),
            "192.168.1.2:21".parse().unwrap(),
            Duration::from_secs(5),
            Transcript::default(),
        )
        .await
        .unwrap();
        assert_eq!(banner.code, 220);
        assert_eq!(c.login("anonymous", "x").await.unwrap().code, 230);
        assert_eq!(c.cmd("TYPE I").await.unwrap().code, 200);
        let t = c
            .transfer(DataMode::Pasv, "RETR hello.txt", None)
            .await
            .unwrap();
        assert_eq!(t.outcome, DataOutcome::Ok, "{}", c.transcript.render(true));
        assert_eq!(t.data, b"hi\n");
        let p = t.data_peer.unwrap();
        assert_eq!(p.ip().to_string(), "192.168.1.2");
        assert!((60000..=60010).contains(&p.port()));
    });
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("listening on 192.168.1.2:21"));
}

#[test]
fn unprivileged_user_runs_scenarios_in_a_user_namespace() {
    require_root(); // to switch to `nobody` with setpriv
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("ftpnat");
    std::fs::copy(env!("CARGO_BIN_EXE_ftpnat"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in [
        "masquerade-pasv-public-address.toml",
        "port-mismatch-active-behind-nat-alg-off.toml",
    ] {
        let dst = dir.path().join(f);
        std::fs::copy(format!("../scenarios/conformance/{f}"), &dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .arg("run")
        .arg(dir.path())
        .current_dir(dir.path())
        .output()
        .expect("setpriv (apt-get install -y util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("2 passed, 0 failed, 0 errors"), "{text}");
}
