//! The harness's built-in FTPS client (RFC 4217: AUTH TLS, PBSZ/PROT,
//! data connections resuming the control connection's TLS session in every
//! data mode, uploads, CCC) against the reference server on loopback. The
//! server's own FTPS behaviour is tested in reference-server/tests/server.

use crate::util::*;
use ftpnat::{
    client::DataMode,
    tls::{ClientTls, TestPki},
};

/// A server with a generated certificate (the PKI lives in `dir`).
async fn tls_server(extra: &str) -> (TestServer, TestPki, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path(), &["127.0.0.1".parse().unwrap()]).unwrap();
    let srv = TestServer::start(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\npassive_ports = [61700, 61710]\nanonymous_upload = true\n{extra}",
        pki.cert_pem.display(),
        pki.key_pem.display()
    ))
    .await;
    (srv, pki, dir)
}

#[tokio::test]
async fn builtin_client_ftps_in_every_data_mode_with_session_reuse_and_ccc() {
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
    let r = c
        .auth_tls(ClientTls::new(&pki.ca_der).unwrap())
        .await
        .unwrap();
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
            c.transcript.render(false)
        );
        assert_eq!(t.sha256.unwrap(), sha256_hex(HELLO), "{mode:?}");
    }
    let up = vec![7u8; 300_000];
    let t = c
        .transfer(DataMode::Pasv, "STOR up.bin", Some(&up))
        .await
        .unwrap();
    assert_eq!(t.final_reply.unwrap().code, 226);
    assert_eq!(std::fs::read(srv.root.path().join("up.bin")).unwrap(), up);
    let text = c.transcript.render(false);
    assert!(text.contains("data TLS on (session resumed)"), "{text}");
    assert!(!text.contains("full handshake"), "{text}");
    // CCC: the client closes TLS on the control connection and goes on in
    // clear text; data stays protected.
    assert_eq!(c.ccc().await.unwrap().code, 200);
    assert!(!c.control_is_tls());
    let t = c
        .transfer(DataMode::Epsv, "RETR hello.txt", None)
        .await
        .unwrap();
    assert_eq!(t.final_reply.unwrap().code, 226);
    assert_eq!(t.sha256.unwrap(), sha256_hex(HELLO));
}
