//! Test support: an in-process reference server on loopback with captured logs.
#![allow(dead_code, unreachable_pub)]

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use ftpnat::client::{FtpClient, HostSockets, Transcript};
use ftpnat_server::{config::Config, passive::Metrics, protocol::Reply, server::Server};
use tokio::{sync::oneshot, task::JoinHandle};

pub const HELLO: &[u8] = b"hello through the NAT\n";

/// Log lines captured from the server's tracing events.
#[derive(Clone, Default)]
pub struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl LogBuf {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    pub fn contains(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }
}

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    pub logs: LogBuf,
    pool: Option<Arc<ftpnat_server::passive::PortPool>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl TestServer {
    pub async fn start(extra: &str) -> TestServer {
        Self::start_at("127.0.0.1:0", extra)
            .await
            .expect("loopback server")
    }

    /// `None` if the address cannot be bound (e.g. no IPv6 loopback).
    pub async fn start_at(listen: &str, extra: &str) -> Option<TestServer> {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("hello.txt"), HELLO).unwrap();
        std::fs::write(root.path().join("lines.txt"), b"one\ntwo\n").unwrap();
        let text = format!(
            "listen = [\"{listen}\"]\nroot = \"{}\"\nlogin_failure_delay_ms = 10\n{extra}\n",
            root.path().display()
        );
        let config = Config::from_toml(
            &text,
            Path::new("test.toml"),
            &ftpnat_server::config::system_resolver,
        )
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let logs = LogBuf::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        let server = Server::new(config);
        let listeners = server.bind().ok()?;
        let addr = listeners[0].local_addr().unwrap();
        let pool = server.pool().cloned();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(listeners, async move {
            let _ = rx.await;
        }));
        let srv = TestServer {
            addr,
            root,
            logs,
            pool,
            stop: Some(stop),
            task: Some(task),
            _guard: guard,
        };
        wait_for_log(&srv, "listening on").await;
        Some(srv)
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

    pub async fn login(&self) -> FtpClient {
        let (mut c, banner) = self.connect().await;
        assert_eq!(banner.code, 220, "{banner:?}");
        let r = c.login("anonymous", "test@").await.unwrap();
        assert_eq!(r.code, 230, "{r:?}");
        assert_eq!(c.cmd("TYPE I").await.unwrap().code, 200);
        c
    }

    pub fn pool_available(&self) -> usize {
        self.pool.as_ref().map(|p| p.available()).unwrap_or(0)
    }

    pub fn server_metrics(&self) -> Metrics {
        self.pool.as_ref().map(|p| p.metrics()).unwrap_or_default()
    }

    pub fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    pub async fn join(&mut self) {
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("server stops")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Polls `cond` every 10 ms until it holds or `bound` passes.
pub async fn wait_until(bound: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + bound;
    while !cond() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn wait_for_log(srv: &TestServer, needle: &str) {
    wait_until(Duration::from_secs(5), || srv.logs.contains(needle)).await;
    assert!(
        srv.logs.contains(needle),
        "log never said {needle:?}:\n{}",
        srv.logs.text()
    );
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
