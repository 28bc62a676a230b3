//! Test support: an in-process reference server on loopback with captured
//! logs, and a small FTP client that speaks bytes on the wire (so tests can
//! send what no polite client would).
#![allow(dead_code, unreachable_pub)]

use std::{
    net::{IpAddr, SocketAddr, SocketAddrV4},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use ftpnat_server::{
    config::Config,
    passive::Metrics,
    protocol::{addr, Reply, ReplyParser},
    server::Server,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
    sync::oneshot,
    task::JoinHandle,
};

pub const HELLO: &[u8] = b"hello through the NAT\n";

/// How long any single wait in these tests may take before it fails.
pub const BOUND: Duration = Duration::from_secs(10);

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

/// The reference server on loopback, serving a scratch tree with
/// `hello.txt` and `lines.txt`; stops when dropped.
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
    /// A server with `extra` appended to a loopback configuration.
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

    /// A control connection and its banner.
    pub async fn connect(&self) -> (Ctl, Reply) {
        Ctl::connect(self.addr, None).await
    }

    /// A control connection from another loopback address (127.0.0.x).
    pub async fn connect_from(&self, ip: &str) -> (Ctl, Reply) {
        Ctl::connect(self.addr, Some(ip.parse().unwrap())).await
    }

    /// Logged in anonymously, TYPE I.
    pub async fn login(&self) -> Ctl {
        let (mut c, banner) = self.connect().await;
        assert_eq!(banner.code, 220, "{banner:?}");
        let r = c.login("anonymous", "test@").await.unwrap();
        assert_eq!(r.code, 230, "{r:?}");
        assert_eq!(c.cmd("TYPE I").await.unwrap().code, 200);
        c
    }

    pub fn path(&self, name: impl AsRef<Path>) -> std::path::PathBuf {
        self.root.path().join(name)
    }

    pub fn pool_available(&self) -> usize {
        self.pool.as_ref().map(|p| p.available()).unwrap_or(0)
    }

    pub fn server_metrics(&self) -> Metrics {
        self.pool.as_ref().map(|p| p.metrics()).unwrap_or_default()
    }

    /// A new session still logs in and fetches `hello.txt`: the server
    /// survived whatever the test did before.
    pub async fn assert_still_serving(&self) {
        let mut c = self.login().await;
        let t = c
            .transfer(DataMode::Pasv, "RETR hello.txt", None)
            .await
            .unwrap();
        assert_eq!(t.code(), 226, "{t:?}");
        assert_eq!(t.data, HELLO);
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
    sha2::Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn hash_password(pw: &str) -> String {
    use argon2::{password_hash::SaltString, Argon2, PasswordHasher};
    let salt = SaltString::from_b64("c2FsdHNhbHRzYWx0").unwrap();
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// How a transfer's data connection is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMode {
    Pasv,
    Epsv,
    Port,
    Eprt,
}

/// A transfer as the client saw it.
#[derive(Debug)]
pub struct Xfer {
    /// The reply to the command (150, or the refusal).
    pub first: Reply,
    /// The reply after the data connection closed, if there was a 1xx.
    pub final_reply: Option<Reply>,
    /// The server end of the data connection.
    pub data_peer: Option<SocketAddr>,
    /// What arrived on the data connection.
    pub data: Vec<u8>,
}

impl Xfer {
    /// The last reply's code.
    pub fn code(&self) -> u16 {
        self.final_reply.as_ref().unwrap_or(&self.first).code
    }

    /// The transfer completed (150 … 226).
    pub fn ok(&self) -> bool {
        self.first.code == 150 && self.code() == 226
    }

    pub fn sha256(&self) -> String {
        sha256_hex(&self.data)
    }
}

/// A throw-away CA and a server certificate for 127.0.0.1, as PEM files.
pub struct TestPki {
    /// The CA certificate the client trusts.
    pub ca_der: rustls::pki_types::CertificateDer<'static>,
    /// The server certificate followed by the CA.
    pub cert_pem: std::path::PathBuf,
    /// The server key.
    pub key_pem: std::path::PathBuf,
}

impl TestPki {
    pub fn generate(dir: &Path) -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
        let cert_pem = dir.join("server.pem");
        std::fs::write(&cert_pem, format!("{}{}", leaf.pem(), ca.pem())).unwrap();
        let key_pem = dir.join("server.key");
        std::fs::write(&key_pem, key.serialize_pem()).unwrap();
        TestPki {
            ca_der: ca.der().clone(),
            cert_pem,
            key_pem,
        }
    }

    /// Client configurations trusting the CA: with a session store (data
    /// connections resume the control connection's TLS session) and without.
    fn client(&self) -> ClientTls {
        use rustls::client::Resumption;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let build = |resumption: Resumption| {
            let mut c = rustls::ClientConfig::builder_with_provider(ftpnat_server::tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            c.resumption = resumption;
            Arc::new(c)
        };
        ClientTls {
            resuming: build(Resumption::in_memory_sessions(16)),
            fresh: build(Resumption::disabled()),
        }
    }
}

#[derive(Clone)]
struct ClientTls {
    resuming: Arc<rustls::ClientConfig>,
    fresh: Arc<rustls::ClientConfig>,
}

/// A connection in clear text or TLS (the client side).
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Between the two (AUTH TLS, CCC).
    Switching,
}

impl Conn {
    async fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(b).await,
            Conn::Tls(s) => s.read(b).await,
            Conn::Switching => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(b).await,
            Conn::Tls(s) => {
                s.write_all(b).await?;
                s.flush().await
            }
            Conn::Switching => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.shutdown().await,
            Conn::Tls(s) => s.shutdown().await,
            Conn::Switching => Ok(()),
        }
    }

    async fn read_to_end(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.read(&mut chunk).await? {
                0 => return Ok(()),
                n => out.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// A control connection that sends exactly the bytes it is given and keeps
/// a transcript (`>` sent, `<` received, `#` notes). Speaks explicit FTPS
/// when asked (`auth_tls`, `PROT P`, `ccc`).
pub struct Ctl {
    stream: Conn,
    buf: Vec<u8>,
    parser: ReplyParser,
    tls: Option<ClientTls>,
    /// `PROT P` is in effect: data connections are TLS.
    pub prot_private: bool,
    /// Data connections resume the control connection's TLS session.
    pub tls_resume: bool,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub transcript: Vec<String>,
}

impl Ctl {
    pub async fn connect(server: SocketAddr, from: Option<IpAddr>) -> (Ctl, Reply) {
        let sock = if server.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .unwrap();
        if let Some(ip) = from {
            sock.bind(SocketAddr::new(ip, 0)).unwrap();
        }
        let stream = tokio::time::timeout(BOUND, sock.connect(server))
            .await
            .expect("connect within the bound")
            .expect("connect");
        let mut c = Ctl {
            local: stream.local_addr().unwrap(),
            peer: server,
            stream: Conn::Plain(stream),
            buf: Vec::new(),
            parser: ReplyParser::default(),
            tls: None,
            prot_private: false,
            tls_resume: true,
            transcript: vec![format!("# connect {server}")],
        };
        let banner = c.read_reply().await.expect("a banner");
        (c, banner)
    }

    /// Sends raw bytes (nothing added).
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The bytes read but not yet taken as reply lines.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Sends one line (CR LF added).
    pub async fn send_line(&mut self, line: &str) -> std::io::Result<()> {
        self.send_line_bytes(line.as_bytes()).await
    }

    /// Sends one line of bytes (CR LF added).
    pub async fn send_line_bytes(&mut self, line: &[u8]) -> std::io::Result<()> {
        let shown = String::from_utf8_lossy(line);
        let shown = if shown.starts_with("PASS ") {
            "PASS ****".into()
        } else {
            shown
        };
        self.transcript.push(format!("> {shown}"));
        let mut wire = line.to_vec();
        wire.extend_from_slice(b"\r\n");
        self.send(&wire).await
    }

    /// The next complete reply (bounded wait).
    pub async fn read_reply(&mut self) -> std::io::Result<Reply> {
        tokio::time::timeout(BOUND, self.read_reply_unbounded())
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply"))?
    }

    /// The next complete reply, however long it takes (paused-clock tests).
    pub async fn read_reply_unbounded(&mut self) -> std::io::Result<Reply> {
        loop {
            if let Some(line) = self.next_raw_line().await? {
                let text = String::from_utf8_lossy(&line).into_owned();
                self.transcript.push(format!("< {text}"));
                if let Some(r) = self.parser.push_line(&text) {
                    return Ok(r);
                }
            } else {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// The next reply line as bytes (`None` at end of stream).
    pub async fn next_raw_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Whether the server closed the control connection (bounded wait).
    pub async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(BOUND, self.stream.read_to_end(&mut rest)).await,
            Ok(Ok(_))
        )
    }

    pub async fn cmd(&mut self, line: &str) -> std::io::Result<Reply> {
        self.send_line(line).await?;
        let r = self.read_reply().await?;
        match (line.to_ascii_uppercase().as_str(), r.code) {
            ("PROT P", 200) => self.prot_private = true,
            ("PROT C", 200) => self.prot_private = false,
            _ => {}
        }
        Ok(r)
    }

    pub fn control_is_tls(&self) -> bool {
        matches!(self.stream, Conn::Tls(_))
    }

    /// `AUTH TLS` and, on 234, the TLS handshake (trusting `pki`'s CA).
    pub async fn auth_tls(&mut self, pki: &TestPki) -> std::io::Result<Reply> {
        let r = self.cmd("AUTH TLS").await?;
        if r.code != 234 {
            return Ok(r);
        }
        let tls = pki.client();
        let Conn::Plain(tcp) = std::mem::replace(&mut self.stream, Conn::Switching) else {
            return Err(std::io::Error::other("AUTH TLS on a TLS connection"));
        };
        let name = rustls::pki_types::ServerName::IpAddress(self.peer.ip().into());
        let s = tokio_rustls::TlsConnector::from(Arc::clone(&tls.resuming))
            .connect(name, tcp)
            .await?;
        self.stream = Conn::Tls(Box::new(s));
        self.tls = Some(tls);
        self.transcript
            .push("# TLS on the control connection".into());
        Ok(r)
    }

    /// `CCC` and, on 200, the TLS closure: clear text from there on.
    pub async fn ccc(&mut self) -> std::io::Result<Reply> {
        let r = self.cmd("CCC").await?;
        if r.code != 200 {
            return Ok(r);
        }
        let Conn::Tls(mut s) = std::mem::replace(&mut self.stream, Conn::Switching) else {
            return Err(std::io::Error::other("CCC without TLS"));
        };
        // The server's close_notify follows its 200.
        let mut sink = [0u8; 256];
        tokio::time::timeout(BOUND, async {
            while s.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no close_notify"))??;
        s.get_mut().1.send_close_notify();
        s.flush().await?;
        self.stream = Conn::Plain(s.into_inner().0);
        self.transcript
            .push("# CCC: TLS closed, control connection in clear text".into());
        Ok(r)
    }

    /// A fresh data connection as `PROT` wants it (TLS after the 150).
    async fn protect(&mut self, tcp: TcpStream) -> std::io::Result<Conn> {
        let Some(tls) = self.tls.clone().filter(|_| self.prot_private) else {
            return Ok(Conn::Plain(tcp));
        };
        let config = if self.tls_resume {
            tls.resuming
        } else {
            tls.fresh
        };
        let name = rustls::pki_types::ServerName::IpAddress(self.peer.ip().into());
        let s = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        let resumed = s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        self.transcript.push(if resumed {
            "# data TLS on (session resumed)".into()
        } else {
            "# data TLS on (full handshake)".into()
        });
        Ok(Conn::Tls(Box::new(s)))
    }

    /// A command line given as bytes (odd bytes on purpose).
    pub async fn cmd_bytes(&mut self, line: &[u8]) -> std::io::Result<Reply> {
        self.send_line_bytes(line).await?;
        self.read_reply().await
    }

    pub async fn login(&mut self, user: &str, pass: &str) -> std::io::Result<Reply> {
        let r = self.cmd(&format!("USER {user}")).await?;
        if r.code != 331 {
            return Ok(r);
        }
        self.cmd(&format!("PASS {pass}")).await
    }

    /// A data connection from this client's address to `target`.
    pub async fn connect_data(&self, target: SocketAddr) -> std::io::Result<TcpStream> {
        let sock = if target.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if self.local.is_ipv4() == target.is_ipv4() {
            sock.bind(SocketAddr::new(self.local.ip(), 0))?;
        }
        tokio::time::timeout(BOUND, sock.connect(target))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "data connect"))?
    }

    /// Sets up a data connection per `mode`, sends `command`, moves the
    /// data (uploads `upload` if given) and reads the final reply.
    pub async fn transfer(
        &mut self,
        mode: DataMode,
        command: &str,
        upload: Option<&[u8]>,
    ) -> std::io::Result<Xfer> {
        self.transfer_bytes(mode, command.as_bytes(), upload).await
    }

    /// [`Ctl::transfer`] with the command as bytes.
    pub async fn transfer_bytes(
        &mut self,
        mode: DataMode,
        command: &[u8],
        upload: Option<&[u8]>,
    ) -> std::io::Result<Xfer> {
        enum Plan {
            Connected(TcpStream),
            Listening(TcpListener),
        }
        let plan = match mode {
            DataMode::Pasv => {
                let r = self.cmd("PASV").await?;
                let target = pasv_addr(&r).ok_or_else(|| refused(&r))?;
                Plan::Connected(self.connect_data(SocketAddr::V4(target)).await?)
            }
            DataMode::Epsv => {
                let r = self.cmd("EPSV").await?;
                let port =
                    addr::parse_epsv_reply(r.lines.last().unwrap()).map_err(|_| refused(&r))?;
                Plan::Connected(
                    self.connect_data(SocketAddr::new(self.peer.ip(), port))
                        .await?,
                )
            }
            DataMode::Port | DataMode::Eprt => {
                let l = TcpListener::bind(SocketAddr::new(self.local.ip(), 0)).await?;
                let a = l.local_addr()?;
                let line = match (mode, a) {
                    (DataMode::Port, SocketAddr::V4(v4)) => {
                        format!("PORT {}", addr::format_host_port(v4))
                    }
                    _ => format!("EPRT {}", addr::format_eprt(a)),
                };
                let r = self.cmd(&line).await?;
                if r.code != 200 {
                    return Err(refused(&r));
                }
                Plan::Listening(l)
            }
        };
        self.send_line_bytes(command).await?;
        let first = self.read_reply().await?;
        if first.code / 100 != 1 {
            return Ok(Xfer {
                first,
                final_reply: None,
                data_peer: None,
                data: Vec::new(),
            });
        }
        let tcp = match plan {
            Plan::Connected(s) => s,
            Plan::Listening(l) => {
                tokio::time::timeout(BOUND, l.accept())
                    .await
                    .map_err(|_| {
                        std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no active data connection",
                        )
                    })??
                    .0
            }
        };
        let data_peer = tcp.peer_addr().ok();
        let mut got = Vec::new();
        match self.protect(tcp).await {
            Err(e) => self.transcript.push(format!("# data TLS failed: {e}")),
            Ok(mut data) => {
                let moved = async {
                    match upload {
                        Some(body) => {
                            data.write_all(body).await?;
                            data.shutdown().await?;
                            // Drain (TLS session tickets): closing with
                            // unread data would reset the connection.
                            data.read_to_end(&mut Vec::new()).await
                        }
                        None => data.read_to_end(&mut got).await,
                    }
                };
                let _ = tokio::time::timeout(BOUND, moved).await;
            }
        }
        let final_reply = Some(self.read_reply().await?);
        Ok(Xfer {
            first,
            final_reply,
            data_peer,
            data: got,
        })
    }
}

fn refused(r: &Reply) -> std::io::Error {
    std::io::Error::other(format!("data connection set-up refused: {r:?}"))
}

/// The address in a 227 reply.
pub fn pasv_addr(r: &Reply) -> Option<SocketAddrV4> {
    if r.code != 227 {
        return None;
    }
    addr::parse_pasv_reply(r.lines.last()?).ok()
}
