//! The reference server's NAT behaviours on loopback (issue 3 and the
//! hardening of issue 9): masquerade, passive range and policies, port
//! theft, PORT/EPRT refusals, limits, timeouts, drain.

use std::{net::SocketAddr, time::Duration};

use crate::util::*;

#[tokio::test]
async fn pasv_carries_masquerade_address_and_range_port() {
    let srv =
        TestServer::start("masquerade_address = \"203.0.113.1\"\npassive_ports = [61000, 61010]")
            .await;
    assert!(
        srv.logs.contains("masquerading as 203.0.113.1"),
        "{}",
        srv.logs.text()
    );
    let mut c = srv.login().await;
    let r = c.cmd("PASV").await.unwrap();
    assert_eq!(r.code, 227);
    assert!(
        r.lines[0].starts_with("Entering Passive Mode (203,0,113,1,"),
        "{r:?}"
    );
    let a = pasv_addr(&r).unwrap();
    assert_eq!(a.ip().to_string(), "203.0.113.1");
    assert!((61000..=61010).contains(&a.port()), "{a}");
    // EPSV carries no address, only a port in the range.
    let r = c.cmd("EPSV").await.unwrap();
    assert_eq!(r.code, 229);
    let p = ftpnat_server::protocol::addr::parse_epsv_reply(&r.lines[0]).unwrap();
    assert!((61000..=61010).contains(&p));
}

#[tokio::test]
async fn without_masquerade_227_carries_the_local_address() {
    let srv = TestServer::start("passive_ports = [61020, 61030]").await;
    let mut c = srv.login().await;
    let t = c
        .transfer(DataMode::Pasv, "RETR hello.txt", None)
        .await
        .unwrap();
    assert_eq!(t.data_peer.unwrap().ip().to_string(), "127.0.0.1");
    assert!(t.ok(), "{t:?}");
    assert_eq!(t.code(), 226);
    assert_eq!(t.sha256(), sha256_hex(HELLO));
}

#[tokio::test]
async fn exhausted_range_falls_back_to_kernel_port_and_logs_it() {
    let srv = TestServer::start("passive_ports = [61040, 61041]").await;
    let mut clients = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..3 {
        let mut c = srv.login().await;
        let r = c.cmd("PASV").await.unwrap();
        assert_eq!(r.code, 227, "fallback keeps the reply a 227");
        ports.push(pasv_addr(&r).unwrap().port());
        clients.push(c);
    }
    assert!(
        ports[..2].iter().all(|p| (61040..=61041).contains(p)),
        "{ports:?}"
    );
    assert!(
        !(61040..=61041).contains(&ports[2]),
        "third is outside the range: {ports:?}"
    );
    assert!(srv.logs.contains(
        "unable to find open port in PassivePorts range 61040-61041: defaulting to INPORT_ANY (consider defining a larger PassivePorts range)"
    ));
    // The fallback port works on loopback (no NAT in the way).
    let t = clients[2]
        .transfer(DataMode::Pasv, "RETR hello.txt", None)
        .await
        .unwrap();
    assert!(t.ok(), "{t:?}");
    assert_eq!(
        srv.server_metrics().fallback,
        2,
        "one for each PASV made while exhausted"
    );
}

#[tokio::test]
async fn refuse_policy_answers_425() {
    let srv =
        TestServer::start("passive_ports = [61050, 61050]\npassive_exhausted = \"refuse\"").await;
    let mut a = srv.login().await;
    assert_eq!(a.cmd("PASV").await.unwrap().code, 227);
    let mut b = srv.login().await;
    assert_eq!(b.cmd("PASV").await.unwrap().code, 425);
    assert_eq!(b.cmd("EPSV").await.unwrap().code, 425);
}

/// On the paused clock: the timers fire as soon as every task waits.
#[tokio::test(start_paused = true)]
async fn wait_policy_gets_the_port_once_released() {
    let srv = TestServer::start(
        "passive_ports = [61060, 61060]\npassive_exhausted = \"wait\"\npassive_wait_ms = 5000",
    )
    .await;
    let mut a = srv.login().await;
    let r = a.cmd("PASV").await.unwrap();
    let target = SocketAddr::V4(pasv_addr(&r).unwrap());
    let mut b = srv.login().await;
    b.send_line("PASV").await.unwrap();
    // a's data connection is accepted, which releases the port to b.
    let _data = a.connect_data(target).await.unwrap();
    let r = b.read_reply().await.unwrap();
    assert_eq!(r.code, 227);
    assert_eq!(pasv_addr(&r).unwrap().port(), 61060);
    // And with the bound passing: 425.
    let srv = TestServer::start(
        "passive_ports = [61061, 61061]\npassive_exhausted = \"wait\"\npassive_wait_ms = 300",
    )
    .await;
    let mut a = srv.login().await;
    assert_eq!(a.cmd("PASV").await.unwrap().code, 227);
    let mut b = srv.login().await;
    let t0 = tokio::time::Instant::now();
    assert_eq!(b.cmd("PASV").await.unwrap().code, 425);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_millis(400),
        "{waited:?}"
    );
}

#[tokio::test]
async fn port_is_released_on_accept_so_transfers_share_it() {
    let srv =
        TestServer::start("passive_ports = [61070, 61070]\npassive_exhausted = \"refuse\"").await;
    // Five sequential sessions reuse the single port: held only until accept.
    for _ in 0..5 {
        let mut c = srv.login().await;
        let t = c
            .transfer(DataMode::Pasv, "RETR hello.txt", None)
            .await
            .unwrap();
        assert_eq!(t.data_peer.unwrap().port(), 61070);
        assert!(t.ok(), "{t:?}");
    }
    assert_eq!(srv.pool_available(), 1);
}

/// On the paused clock: the timers fire as soon as every task waits.
#[tokio::test(start_paused = true)]
async fn superseding_pasv_and_data_connect_timeout_release_ports() {
    let srv =
        TestServer::start("passive_ports = [61080, 61081]\n[timeouts]\ndata_connect = 1").await;
    let mut c = srv.login().await;
    for _ in 0..50 {
        assert_eq!(c.cmd("PASV").await.unwrap().code, 227);
    }
    wait_until(Duration::from_secs(2), || srv.pool_available() == 1).await;
    assert_eq!(srv.pool_available(), 1, "a session holds at most one port");
    wait_until(Duration::from_secs(3), || srv.pool_available() == 2).await;
    assert_eq!(srv.pool_available(), 2, "data_connect timeout released it");
    assert!(srv.logs.contains("port released"));
    drop(c);
}

#[tokio::test]
async fn session_end_releases_its_port() {
    let srv = TestServer::start("passive_ports = [61085, 61085]").await;
    let mut c = srv.login().await;
    assert_eq!(c.cmd("PASV").await.unwrap().code, 227);
    assert_eq!(srv.pool_available(), 0);
    drop(c);
    wait_until(Duration::from_secs(3), || srv.pool_available() == 1).await;
    assert_eq!(srv.pool_available(), 1);
}

#[tokio::test]
async fn passive_port_theft_is_rejected_and_real_client_still_connects() {
    let srv = TestServer::start("passive_ports = [61090, 61090]").await;
    let mut c = srv.login().await;
    let r = c.cmd("PASV").await.unwrap();
    let target = SocketAddr::V4(pasv_addr(&r).unwrap());
    // A thief from 127.0.0.2 connects first.
    let thief = tokio::net::TcpSocket::new_v4().unwrap();
    thief.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut thief = thief.connect(target).await.unwrap();
    wait_for_log(&srv, "SECURITY VIOLATION").await;
    let mut buf = [0u8; 16];
    use tokio::io::AsyncReadExt;
    let n = tokio::time::timeout(Duration::from_secs(5), thief.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "thief got closed without data");
    let data = c.connect_data(target).await.unwrap();
    let r = c.cmd("RETR hello.txt").await.unwrap();
    assert_eq!(r.code, 150);
    let mut got = Vec::new();
    let mut data = data;
    data.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, HELLO);
    assert_eq!(c.read_reply().await.unwrap().code, 226);
}

#[tokio::test]
async fn port_with_foreign_address_is_refused_and_logged() {
    let srv = TestServer::start("").await;
    let mut c = srv.login().await;
    let r = c.cmd("PORT 192,168,1,2,193,116").await.unwrap();
    assert_eq!((r.code, r.lines[0].as_str()), (500, "Illegal PORT command"));
    assert!(srv
        .logs
        .contains("Refused PORT 192,168,1,2,193,116 (address mismatch)"));
    let r = c.cmd("EPRT |1|198.51.100.7|50000|").await.unwrap();
    assert_eq!(r.code, 500);
    assert!(srv
        .logs
        .contains("Refused EPRT |1|198.51.100.7|50000| (address mismatch)"));
    // Privileged port: bounce protection.
    let r = c.cmd("PORT 127,0,0,1,0,20").await.unwrap();
    assert_eq!(r.code, 500);
    assert!(srv
        .logs
        .contains("Refused PORT 127,0,0,1,0,20 (port 20 below 1024, possible bounce attack)"));
    // Own address, high port: accepted, and active transfer works.
    let t = c
        .transfer(DataMode::Port, "RETR hello.txt", None)
        .await
        .unwrap();
    assert!(t.ok(), "{t:?}");
    assert_eq!(t.code(), 226);
    let t = c
        .transfer(DataMode::Eprt, "RETR hello.txt", None)
        .await
        .unwrap();
    assert!(t.ok(), "{t:?}");
}

#[tokio::test]
async fn allow_foreign_address_accepts_listed_networks_only() {
    let srv = TestServer::start("allow_foreign_address = [\"198.51.100.0/24\"]").await;
    let mut c = srv.login().await;
    assert_eq!(c.cmd("PORT 198,51,100,7,195,80").await.unwrap().code, 200);
    assert_eq!(c.cmd("PORT 203,0,113,7,195,80").await.unwrap().code, 500);
}

#[tokio::test]
async fn substitute_policy_uses_the_real_address_for_rfc1918_port() {
    // Only applies when the peer is public: on loopback the peer is not, so the refusal stays.
    let srv = TestServer::start(
        "masquerade_address = \"203.0.113.1\"\nport_private_address = \"substitute\"",
    )
    .await;
    let mut c = srv.login().await;
    assert_eq!(c.cmd("PORT 192,168,1,2,193,116").await.unwrap().code, 500);
}

#[tokio::test]
async fn limits_deny_refuses_passive_but_not_port() {
    let srv = TestServer::start("[limits]\ndeny = [\"EPSV\", \"PASV\"]").await;
    let mut c = srv.login().await;
    let r = c.cmd("PASV").await.unwrap();
    assert_eq!(
        (r.code, r.lines[0].as_str()),
        (501, "PASV: Operation not permitted")
    );
    let r = c.cmd("EPSV").await.unwrap();
    assert_eq!(
        (r.code, r.lines[0].as_str()),
        (501, "EPSV: Operation not permitted")
    );
    let t = c
        .transfer(DataMode::Port, "RETR hello.txt", None)
        .await
        .unwrap();
    assert!(t.ok(), "{t:?}");
}

#[tokio::test]
async fn epsv_all_and_protocol_numbers() {
    let srv = TestServer::start("").await;
    let mut c = srv.login().await;
    let r = c.cmd("EPSV 2").await.unwrap();
    assert_eq!(
        (r.code, r.lines[0].as_str()),
        (522, "Network protocol not supported, use (1)")
    );
    assert_eq!(c.cmd("EPSV 1").await.unwrap().code, 229);
    assert_eq!(c.cmd("EPSV ALL").await.unwrap().code, 200);
    let r = c.cmd("PASV").await.unwrap();
    assert_eq!(
        (r.code, r.lines[0].as_str()),
        (500, "Illegal PASV command, EPSV ALL in effect")
    );
    let r = c.cmd("PORT 127,0,0,1,195,80").await.unwrap();
    assert_eq!(
        (r.code, r.lines[0].as_str()),
        (500, "Illegal PORT command, EPSV ALL in effect")
    );
    assert_eq!(c.cmd("EPRT |3|x|1|").await.unwrap().code, 500);
    assert_eq!(c.cmd("EPSV").await.unwrap().code, 229);
}

#[tokio::test]
async fn ipv6_control_and_data() {
    let Some(srv) = TestServer::start_at("[::1]:0", "").await else {
        panic!("IPv6 loopback (::1) is not available: enable IPv6 on lo to run this test");
    };
    let mut c = srv.login().await;
    let r = c.cmd("PASV").await.unwrap();
    assert_eq!(r.code, 500, "PASV cannot express an IPv6 address");
    assert_eq!(c.cmd("EPSV 1").await.unwrap().code, 522);
    let t = c
        .transfer(DataMode::Epsv, "RETR hello.txt", None)
        .await
        .unwrap();
    assert!(t.ok(), "{t:?}");
    assert!(t.data_peer.unwrap().is_ipv6());
    let t = c
        .transfer(DataMode::Eprt, "RETR hello.txt", None)
        .await
        .unwrap();
    assert!(t.ok(), "{t:?}");
}

#[tokio::test]
async fn uploads_rest_appe_ascii_and_listing() {
    let srv = TestServer::start("anonymous_upload = true").await;
    let mut c = srv.login().await;
    assert_eq!(c.cmd("TYPE I").await.unwrap().code, 200);
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let t = c
        .transfer(DataMode::Pasv, "STOR up.bin", Some(&body))
        .await
        .unwrap();
    assert_eq!(t.code(), 226);
    assert_eq!(std::fs::read(srv.root.path().join("up.bin")).unwrap(), body);
    assert_eq!(c.cmd("SIZE up.bin").await.unwrap().lines[0], "200000");
    // REST + RETR
    assert_eq!(c.cmd("REST 199990").await.unwrap().code, 350);
    let t = c
        .transfer(DataMode::Pasv, "RETR up.bin", None)
        .await
        .unwrap();
    assert_eq!(t.data, &body[199_990..]);
    // APPE
    let t = c
        .transfer(DataMode::Pasv, "APPE up.bin", Some(b"tail"))
        .await
        .unwrap();
    assert_eq!(t.code(), 226);
    assert_eq!(
        std::fs::metadata(srv.root.path().join("up.bin"))
            .unwrap()
            .len(),
        200_004
    );
    // ASCII: LF -> CRLF on download
    assert_eq!(c.cmd("TYPE A").await.unwrap().code, 200);
    let t = c
        .transfer(DataMode::Pasv, "RETR lines.txt", None)
        .await
        .unwrap();
    assert_eq!(t.data, b"one\r\ntwo\r\n");
    // Listings
    let t = c.transfer(DataMode::Pasv, "NLST", None).await.unwrap();
    let names = String::from_utf8(t.data).unwrap();
    assert_eq!(names, "hello.txt\r\nlines.txt\r\nup.bin\r\n");
    let t = c.transfer(DataMode::Pasv, "MLSD", None).await.unwrap();
    assert!(String::from_utf8(t.data)
        .unwrap()
        .contains("type=file;size=200004;"));
    // Directory operations
    assert_eq!(c.cmd("MKD sub").await.unwrap().code, 257);
    assert_eq!(c.cmd("CWD sub").await.unwrap().code, 250);
    assert_eq!(
        c.cmd("PWD").await.unwrap().lines[0],
        "\"/sub\" is the current directory"
    );
    assert_eq!(c.cmd("CDUP").await.unwrap().code, 250);
    assert_eq!(c.cmd("RNFR up.bin").await.unwrap().code, 350);
    assert_eq!(c.cmd("RNTO sub/moved.bin").await.unwrap().code, 250);
    assert_eq!(c.cmd("DELE sub/moved.bin").await.unwrap().code, 250);
    assert_eq!(c.cmd("RMD sub").await.unwrap().code, 250);
    assert_eq!(c.cmd("RETR ../../etc/passwd").await.unwrap().code, 550);
    assert_eq!(c.cmd("MDTM hello.txt").await.unwrap().lines[0].len(), 14);
}

#[tokio::test]
async fn failed_upload_leaves_the_old_file_intact() {
    let srv = TestServer::start("anonymous_upload = true").await;
    let mut c = srv.login().await;
    std::fs::write(srv.root.path().join("keep.bin"), b"good").unwrap();
    let r = c.cmd("PASV").await.unwrap();
    let target = SocketAddr::V4(pasv_addr(&r).unwrap());
    let data = c.connect_data(target).await.unwrap();
    assert_eq!(c.cmd("STOR keep.bin").await.unwrap().code, 150);
    // Abort mid-upload: reset the data connection.
    let std = data.into_std().unwrap();
    socket2::SockRef::from(&std)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(std);
    let r = c.read_reply().await.unwrap();
    assert!(r.code == 426 || r.code == 226, "{r:?}");
    if r.code == 426 {
        assert_eq!(
            std::fs::read(srv.root.path().join("keep.bin")).unwrap(),
            b"good"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(srv.root.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("ftpnat-upload"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file left");
}

#[tokio::test]
async fn abor_during_transfer() {
    let srv = TestServer::start("").await;
    std::fs::write(srv.root.path().join("big.bin"), vec![7u8; 64 << 20]).unwrap();
    let mut c = srv.login().await;
    let r = c.cmd("PASV").await.unwrap();
    let target = SocketAddr::V4(pasv_addr(&r).unwrap());
    let _data = c.connect_data(target).await.unwrap(); // never read: the server blocks
    assert_eq!(c.cmd("RETR big.bin").await.unwrap().code, 150);
    let r = c.cmd("ABOR").await.unwrap();
    assert_eq!(r.code, 426);
    assert_eq!(c.read_reply().await.unwrap().code, 226);
    assert_eq!(c.cmd("NOOP").await.unwrap().code, 200, "session goes on");
}

#[tokio::test]
async fn bad_input_gets_codes_and_the_session_survives() {
    let srv = TestServer::start("anonymous_upload = true\n[limits]\nmax_line = 100").await;
    let (mut c, banner) = srv.connect().await;
    assert_eq!(banner.code, 220);
    assert_eq!(c.cmd("LIST").await.unwrap().code, 530, "before login");
    assert_eq!(c.cmd("FROB").await.unwrap().code, 500);
    assert_eq!(c.cmd("RETR").await.unwrap().code, 501);
    assert_eq!(
        c.cmd(&format!("NOOP {}", "x".repeat(500)))
            .await
            .unwrap()
            .code,
        500
    );
    assert_eq!(c.cmd("PASS x").await.unwrap().code, 503);
    assert_eq!(c.login("anonymous", "a@b").await.unwrap().code, 230);
    assert_eq!(c.cmd("PORT 1,2,3").await.unwrap().code, 501);
    assert_eq!(c.cmd("AUTH TLS").await.unwrap().code, 502);
    assert_eq!(c.cmd("RNTO x").await.unwrap().code, 503);
    assert_eq!(c.cmd("NOOP").await.unwrap().code, 200);
    c.send_line("RETR \u{fffd}\u{fffd}.txt").await.unwrap();
    assert_eq!(c.read_reply().await.unwrap().code, 550);
}

#[tokio::test]
async fn local_users_and_uniform_login_failures() {
    let hash = hash_password("s3cret");
    let srv = TestServer::start(&format!("anonymous = false\n[[user]]\nname = \"alice\"\npassword_hash = \"{hash}\"\n[limits]\nmax_login_failures = 2")).await;
    let (mut c, _) = srv.connect().await;
    let unknown = c.login("mallory", "x").await.unwrap();
    let bad = c.login("alice", "wrong").await;
    assert_eq!(unknown.code, 530);
    assert_eq!(unknown.lines, vec!["Login incorrect."]);
    // Second failure hits the limit: 530 then 421 and close.
    assert_eq!(bad.unwrap().code, 530);
    assert_eq!(c.read_reply().await.unwrap().code, 421);
    let (mut c, _) = srv.connect().await;
    assert_eq!(c.login("anonymous", "x").await.unwrap().code, 530);
    assert_eq!(c.login("alice", "s3cret").await.unwrap().code, 230);
}

#[tokio::test]
async fn max_clients_answers_421_and_serves_others() {
    let srv = TestServer::start("[limits]\nmax_clients = 2").await;
    let a = srv.login().await;
    let _b = srv.login().await;
    let (_, banner) = srv.connect().await;
    assert_eq!(banner.code, 421);
    drop(a);
    wait_for_log(&srv, "FTP session closed").await;
    let (_, banner) = srv.connect().await;
    assert_eq!(banner.code, 220);
}

#[tokio::test]
async fn shutdown_drains_a_running_transfer() {
    let mut srv = TestServer::start("").await;
    std::fs::write(srv.root.path().join("mid.bin"), vec![1u8; 8 << 20]).unwrap();
    let mut c = srv.login().await;
    let r = c.cmd("PASV").await.unwrap();
    let target = SocketAddr::V4(pasv_addr(&r).unwrap());
    let mut data = c.connect_data(target).await.unwrap();
    assert_eq!(c.cmd("RETR mid.bin").await.unwrap().code, 150);
    srv.shutdown();
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    data.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), 8 << 20, "in-flight transfer completed");
    assert_eq!(c.read_reply().await.unwrap().code, 226);
    assert_eq!(c.read_reply().await.unwrap().code, 421);
    srv.join().await;
}

#[tokio::test]
async fn session_transcript_snapshot() {
    let srv =
        TestServer::start("masquerade_address = \"203.0.113.1\"\npassive_ports = [61100, 61100]")
            .await;
    let (mut c, _) = srv.connect().await;
    c.login("anonymous", "guest@").await.unwrap();
    for cmd in [
        "SYST",
        "FEAT",
        "TYPE I",
        "PASV",
        "EPSV",
        "EPSV 2",
        "SIZE hello.txt",
        "PORT 192,168,1,2,193,116",
        "QUIT",
    ] {
        c.cmd(cmd).await.unwrap();
    }
    let text = c
        .transcript
        .join("\n")
        .replace(&srv.addr.to_string(), "SERVER");
    insta::assert_snapshot!(text);
}

// ---- hardening (issue 9) ------------------------------------------------------

#[tokio::test]
async fn max_clients_per_ip_answers_421_and_serves_other_addresses() {
    let srv = TestServer::start("[limits]\nmax_clients_per_ip = 2").await;
    let _a = srv.login().await;
    let _b = srv.login().await;
    let (_, banner) = srv.connect().await;
    assert_eq!(
        (banner.code, banner.lines[0].as_str()),
        (421, "Too many connections from your address")
    );
    // Another source address is still served.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = sock.connect(srv.addr).await.unwrap();
    let mut lines = tokio::io::BufReader::new(stream);
    let mut first = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut first)
        .await
        .unwrap();
    assert!(first.starts_with("220 "), "{first}");
}

/// On the paused clock: the timers fire as soon as every task waits.
#[tokio::test(start_paused = true)]
async fn slow_loris_hits_the_login_timeout() {
    let srv = TestServer::start("[timeouts]\nlogin = 1").await;
    let (mut c, _) = srv.connect().await;
    let t0 = tokio::time::Instant::now();
    // One byte, then nothing: the login timeout closes the session.
    c.send_line("U").await.unwrap();
    assert_eq!(c.read_reply().await.unwrap().code, 500);
    let r = c.read_reply().await.unwrap();
    assert_eq!(
        (r.code, r.lines[0].as_str()),
        (421, "Login timeout, closing control connection")
    );
    let t = t0.elapsed();
    assert!(
        t >= Duration::from_secs(1) && t < Duration::from_millis(1100),
        "{t:?}"
    );
    // And an idle logged-in session hits the idle timeout.
    let srv = TestServer::start("[timeouts]\nidle = 1").await;
    let mut c = srv.login().await;
    let r = c.read_reply().await.unwrap();
    assert_eq!(
        (r.code, r.lines[0].as_str()),
        (421, "Idle timeout, closing control connection")
    );
}

#[tokio::test]
async fn thousands_of_pasv_hold_one_port() {
    let srv = TestServer::start("passive_ports = [61400, 61409]").await;
    let mut c = srv.login().await;
    for _ in 0..2000 {
        assert_eq!(c.cmd("PASV").await.unwrap().code, 227);
    }
    assert_eq!(srv.pool_available(), 9, "one pending listener per session");
    assert_eq!(srv.server_metrics().fallback, 0);
}

#[tokio::test]
async fn client_vanishing_mid_transfer_releases_everything() {
    let srv = TestServer::start("passive_ports = [61420, 61420]").await;
    std::fs::write(srv.root.path().join("big.bin"), vec![3u8; 32 << 20]).unwrap();
    let mut c = srv.login().await;
    let r = c.cmd("PASV").await.unwrap();
    let target = SocketAddr::V4(pasv_addr(&r).unwrap());
    let data = c.connect_data(target).await.unwrap();
    assert_eq!(c.cmd("RETR big.bin").await.unwrap().code, 150);
    // Vanish: reset the data connection and drop the control connection.
    let std = data.into_std().unwrap();
    socket2::SockRef::from(&std)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(std);
    drop(c);
    wait_for_log(&srv, "FTP session closed").await;
    assert_eq!(srv.pool_available(), 1);
    // The server keeps serving.
    let mut d = srv.login().await;
    let t = d
        .transfer(DataMode::Pasv, "RETR hello.txt", None)
        .await
        .unwrap();
    assert!(t.ok(), "{t:?}");
}

/// `passive_mode = "pooled"`: with a one-port range, two client addresses
/// hold the same port at once and both transfer; a third PASV from an
/// address that holds it is refused per policy; a stranger's connection to
/// a leased port is closed and logged, and the leaseholder still connects.
#[tokio::test]
async fn pooled_mode_leases_by_client_address_and_port() {
    let srv = TestServer::start(
        "passive_ports = [61095, 61095]\npassive_mode = \"pooled\"\npassive_exhausted = \"refuse\"",
    )
    .await;
    wait_for_log(&srv, "pooled passive mode: 1 port(s) 61095-61095").await;
    let mut a = srv.login().await;
    let (mut b, banner) = srv.connect_from("127.0.0.2").await;
    assert_eq!(banner.code, 220);
    assert_eq!(b.login("anonymous", "b@").await.unwrap().code, 230);
    assert_eq!(b.cmd("TYPE I").await.unwrap().code, 200);
    let pa = SocketAddr::V4(pasv_addr(&a.cmd("PASV").await.unwrap()).unwrap());
    let pb = SocketAddr::V4(pasv_addr(&b.cmd("PASV").await.unwrap()).unwrap());
    assert_eq!(pa.port(), 61095);
    assert_eq!(pb.port(), 61095, "the same port, leased to another address");
    // A second session from A's address finds A's only port leased.
    let mut a2 = srv.login().await;
    let r = a2.cmd("PASV").await.unwrap();
    assert_eq!(r.code, 425, "{r:?}");
    // A stranger (127.0.0.3) on the pooled port is closed and logged.
    let thief = tokio::net::TcpSocket::new_v4().unwrap();
    thief.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let mut thief = thief.connect(pa).await.unwrap();
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4];
    let n = tokio::time::timeout(Duration::from_secs(5), thief.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without data");
    wait_for_log(
        &srv,
        "SECURITY VIOLATION: passive data connection to pooled port 61095",
    )
    .await;
    for (c, target) in [(&mut a, pa), (&mut b, pb)] {
        let mut data = c.connect_data(target).await.unwrap();
        assert_eq!(c.cmd("RETR hello.txt").await.unwrap().code, 150);
        let mut got = Vec::new();
        data.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, HELLO);
        assert_eq!(c.read_reply().await.unwrap().code, 226);
    }
    // Both leases ended at accept: A's address can lease the port again.
    let r = a2.cmd("PASV").await.unwrap();
    assert_eq!(r.code, 227, "{r:?}");
}

/// `anonymous_upload = false` (ProFTPD's `<Limit WRITE> DenyAll` in
/// `<Anonymous>`): every write is refused with 550, reading still works.
#[tokio::test]
async fn anonymous_upload_false_refuses_writes() {
    let srv = TestServer::start("anonymous_upload = false").await;
    let mut c = srv.login().await;
    for line in [
        "STOR new.txt",
        "APPE hello.txt",
        "DELE hello.txt",
        "MKD d",
        "RMD d",
        "RNFR hello.txt",
    ] {
        let r = c.cmd(line).await.unwrap();
        assert_eq!(r.code, 550, "{line}: {r:?}");
    }
    assert!(srv.root.path().join("hello.txt").exists());
    let out = c
        .transfer(DataMode::Pasv, "RETR hello.txt", None)
        .await
        .unwrap();
    assert!(out.ok(), "{out:?}");
}
