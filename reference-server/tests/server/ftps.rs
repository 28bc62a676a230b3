//! FTPS (RFC 4217) in the reference server, on loopback with the test
//! client and a throw-away test PKI: PBSZ/PROT order, data connections
//! that must resume the control connection's TLS session, tls_required,
//! CCC, pipelining after AUTH refused, a broken handshake.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::*;

/// A server with a generated certificate (the PKI lives in `dir`).
async fn tls_server(extra: &str) -> (TestServer, TestPki, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let srv = TestServer::start(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\npassive_ports = [61700, 61710]\nanonymous_upload = true\n{extra}",
        pki.cert_pem.display(),
        pki.key_pem.display()
    ))
    .await;
    (srv, pki, dir)
}

/// Connected, `AUTH TLS`, `PBSZ 0`, `PROT P`, logged in.
async fn protected_session(srv: &TestServer, pki: &TestPki) -> Ctl {
    let (mut c, _) = srv.connect().await;
    let r = c.auth_tls(pki).await.unwrap();
    assert_eq!(r.code, 234);
    assert_eq!(c.cmd("PBSZ 0").await.unwrap().code, 200);
    assert_eq!(c.cmd("PROT P").await.unwrap().code, 200);
    assert_eq!(
        c.login("anonymous", "x@example.test").await.unwrap().code,
        230
    );
    c
}

/// `RETR hello.txt` over PASV.
async fn retr_hello(c: &mut Ctl) -> Xfer {
    c.transfer(DataMode::Pasv, "RETR hello.txt", None)
        .await
        .unwrap()
}

#[tokio::test]
async fn auth_tls_then_protected_transfers_both_ways_with_session_reuse() {
    let (srv, pki, _d) = tls_server("").await;
    let (mut c, _) = srv.connect().await;
    let feat = c.cmd("FEAT").await.unwrap();
    for f in [" AUTH TLS", " PBSZ", " PROT", " CCC"] {
        assert!(feat.lines.iter().any(|l| l == f), "{feat:?}");
    }
    // PBSZ/PROT need AUTH first.
    assert_eq!(c.cmd("PBSZ 0").await.unwrap().code, 503);
    assert_eq!(c.cmd("PROT P").await.unwrap().code, 503);
    assert_eq!(c.cmd("AUTH KERBEROS_V4").await.unwrap().code, 504);
    let r = c.auth_tls(&pki).await.unwrap();
    assert_eq!(r.code, 234);
    assert!(c.control_is_tls());
    assert_eq!(c.cmd("PROT P").await.unwrap().code, 503, "PBSZ first");
    assert_eq!(c.cmd("PBSZ 0").await.unwrap().code, 200);
    assert_eq!(c.cmd("PROT S").await.unwrap().code, 536);
    assert_eq!(c.cmd("PROT P").await.unwrap().code, 200);
    assert_eq!(
        c.login("anonymous", "x@example.test").await.unwrap().code,
        230
    );
    c.cmd("TYPE I").await.unwrap();
    for mode in [DataMode::Pasv, DataMode::Epsv, DataMode::Port] {
        let t = c.transfer(mode, "RETR hello.txt", None).await.unwrap();
        assert_eq!(
            t.final_reply.as_ref().unwrap().code,
            226,
            "{mode:?}: {}",
            c.transcript.join("\n")
        );
        assert_eq!(t.sha256(), sha256_hex(HELLO), "{mode:?}");
    }
    let up = vec![7u8; 300_000];
    let t = c
        .transfer(DataMode::Pasv, "STOR up.bin", Some(&up))
        .await
        .unwrap();
    assert_eq!(t.code(), 226);
    assert_eq!(std::fs::read(srv.root.path().join("up.bin")).unwrap(), up);
    let text = c.transcript.join("\n");
    assert!(text.contains("data TLS on (session resumed)"), "{text}");
    assert!(!text.contains("full handshake"), "{text}");
    assert!(srv.logs.contains("TLS on the control connection"));
}

#[tokio::test]
async fn a_data_connection_that_does_not_resume_the_session_is_refused() {
    let (srv, pki, _d) = tls_server("").await;
    let mut c = protected_session(&srv, &pki).await;
    c.tls_resume = false;
    let t = retr_hello(&mut c).await;
    let r = t.final_reply.unwrap();
    assert_eq!(r.code, 425, "{r:?}");
    assert!(r.lines[0].contains("not resumed"), "{r:?}");
    assert!(srv
        .logs
        .contains("TLS data connection refused: it did not resume"));
    // The session goes on; a resuming connection works.
    c.tls_resume = true;
    let t = retr_hello(&mut c).await;
    assert!(t.ok(), "{t:?}");
    assert_eq!(t.code(), 226);
}

#[tokio::test]
async fn session_reuse_can_be_switched_off() {
    let (srv, pki, _d) = tls_server("tls_session_reuse = false").await;
    let mut c = protected_session(&srv, &pki).await;
    c.tls_resume = false;
    let t = retr_hello(&mut c).await;
    assert_eq!(t.code(), 226, "{}", c.transcript.join("\n"));
}

#[tokio::test]
async fn tls_required_refuses_clear_logins_and_clear_data() {
    let (srv, pki, _d) = tls_server("tls_required = \"all\"").await;
    let (mut clear, _) = srv.connect().await;
    assert_eq!(clear.cmd("USER anonymous").await.unwrap().code, 530);
    let (mut c, _) = srv.connect().await;
    c.auth_tls(&pki).await.unwrap();
    c.login("anonymous", "x@example.test").await.unwrap();
    let t = retr_hello(&mut c).await;
    assert_eq!(t.code(), 521);
    c.cmd("PBSZ 0").await.unwrap();
    assert_eq!(c.cmd("PROT C").await.unwrap().code, 534);
    assert_eq!(c.cmd("CCC").await.unwrap().code, 534);
    c.cmd("PROT P").await.unwrap();
    let t = retr_hello(&mut c).await;
    assert_eq!(t.code(), 226);
}

#[tokio::test]
async fn ccc_returns_to_clear_text_and_data_stays_protected() {
    let (srv, pki, _d) = tls_server("").await;
    let mut c = protected_session(&srv, &pki).await;
    assert_eq!(c.ccc().await.unwrap().code, 200);
    assert!(!c.control_is_tls());
    assert_eq!(c.cmd("TYPE I").await.unwrap().code, 200);
    // Several commands in clear text, then a protected transfer.
    for _ in 0..3 {
        assert_eq!(c.cmd("NOOP").await.unwrap().code, 200);
    }
    let t = c
        .transfer(DataMode::Epsv, "RETR hello.txt", None)
        .await
        .unwrap();
    assert_eq!(t.code(), 226);
    assert_eq!(t.sha256(), sha256_hex(HELLO));
    assert!(srv
        .logs
        .contains("CCC: control connection back in clear text"));
    // CCC again: no TLS to clear.
    assert_eq!(c.cmd("CCC").await.unwrap().code, 533);
}

#[tokio::test]
async fn without_a_certificate_auth_is_not_available() {
    let srv = TestServer::start("").await;
    let (mut c, _) = srv.connect().await;
    assert_eq!(c.cmd("AUTH TLS").await.unwrap().code, 502);
    assert_eq!(c.cmd("CCC").await.unwrap().code, 533);
    assert_eq!(c.login("anonymous", "x").await.unwrap().code, 230);
}

/// Bytes pipelined behind `AUTH TLS` would cross into the TLS session
/// unprotected (the STARTTLS injection): the server refuses and closes.
#[tokio::test]
async fn commands_pipelined_after_auth_tls_are_refused() {
    let (srv, _pki, _d) = tls_server("").await;
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"220"));
    s.write_all(b"AUTH TLS\r\nUSER anonymous\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("503 "), "{text}");
    assert!(srv.logs.contains("data pipelined after AUTH TLS"));
}

/// A client that never finishes the handshake is dropped; others are served.
#[tokio::test]
async fn a_broken_handshake_ends_only_that_session() {
    let (srv, pki, _d) = tls_server("").await;
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let mut buf = vec![0u8; 512];
    let _ = s.read(&mut buf).await.unwrap();
    s.write_all(b"AUTH TLS\r\n").await.unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"234"));
    s.write_all(b"this is not a ClientHello\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(srv
        .logs
        .contains("TLS handshake on the control connection failed"));
    let (mut c, _) = srv.connect().await;
    assert_eq!(c.auth_tls(&pki).await.unwrap().code, 234);
}
