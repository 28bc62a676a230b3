//! Test support: an in-process reference server on loopback for the
//! harness's own client. (The server's behaviour tests, with log capture
//! and a bytes-on-the-wire client, live in reference-server/tests/server.)
#![allow(dead_code, unreachable_pub)]

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use ftpnat::client::{FtpClient, HostSockets, Transcript};
use ftpnat_server::{config::Config, protocol::Reply, server::Server};
use tokio::sync::oneshot;

pub const HELLO: &[u8] = b"hello through the NAT\n";

/// The reference server serving a scratch tree with `hello.txt`; stops
/// when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl TestServer {
    pub async fn start(extra: &str) -> TestServer {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("hello.txt"), HELLO).unwrap();
        let text = format!(
            "listen = [\"127.0.0.1:0\"]\nroot = \"{}\"\n{extra}\n",
            root.path().display()
        );
        let config = Config::from_toml(
            &text,
            Path::new("test.toml"),
            &ftpnat_server::config::system_resolver,
        )
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let server = Server::new(config);
        let listeners = server.bind().unwrap();
        let addr = listeners[0].local_addr().unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        tokio::spawn(server.run(listeners, async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            root,
            _stop: stop,
        }
    }

    pub async fn connect(&self) -> (FtpClient, Reply) {
        FtpClient::connect(
            Arc::new(HostSockets),
            self.addr,
            Duration::from_secs(10),
            Transcript::default(),
        )
        .await
        .unwrap()
    }
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    ftpnat::client::hex(&sha2::Sha256::digest(b))
}

pub fn hash_password(pw: &str) -> String {
    use argon2::{password_hash::SaltString, Argon2, PasswordHasher};
    let salt = SaltString::from_b64("c2FsdHNhbHRzYWx0").unwrap();
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .unwrap()
        .to_string()
}
