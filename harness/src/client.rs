//! The built-in scripted FTP client.
//!
//! It records a [`Transcript`]: every line sent and received with a timestamp,
//! and every data connection with its endpoints and outcome. It takes its
//! sockets from a [`SocketFactory`], so the same client runs on loopback or
//! inside a namespace host. Unlike curl and lftp it never "fixes" a 227
//! address: the data connection goes where the reply says, so a wrong reply
//! shows up as a failed data connection (see FIELD-NOTES: clients hide
//! server misconfiguration).

use std::{
    io,
    net::{IpAddr, SocketAddr, SocketAddrV4},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ftpnat_server::protocol::{addr, Line, LineReader, Reply, ReplyParser};
use serde::Serialize;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
};

use crate::tls::ClientTls;
pub use crate::topology::{HostSockets, SocketFactory};

/// The client's side of a control or data connection: clear, or TLS.
#[derive(Debug)]
pub enum Conn {
    /// Clear text.
    Plain(TcpStream),
    /// TLS (we are the TLS client).
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Between the two (never read or written).
    Switching,
}

impl Conn {
    fn pin(&mut self) -> Result<Pin<&mut (dyn AsyncReadWrite + Send)>, io::Error> {
        match self {
            Conn::Plain(s) => Ok(Pin::new(s)),
            Conn::Tls(s) => Ok(Pin::new(s.as_mut())),
            Conn::Switching => Err(io::Error::other("connection is switching TLS on or off")),
        }
    }
}

/// AsyncRead + AsyncWrite, as one object type.
pub trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> AsyncReadWrite for T {}

use std::{
    pin::Pin,
    task::{Context, Poll},
};

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().pin() {
            Ok(p) => p.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut().pin() {
            Ok(p) => p.poll_write(cx, b),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().pin() {
            Ok(p) => p.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().pin() {
            Ok(p) => p.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// One transcript line.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// Milliseconds since the transcript began.
    pub t_ms: u64,
    /// `>` sent, `<` received, `=` data connection, `#` note.
    pub dir: char,
    /// The text.
    pub text: String,
}

/// What one client saw, shareable between tasks.
#[derive(Debug, Clone)]
pub struct Transcript {
    start: Instant,
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Default for Transcript {
    fn default() -> Self {
        Transcript {
            start: Instant::now(),
            entries: Arc::default(),
        }
    }
}

impl Transcript {
    /// Appends an entry.
    pub fn push(&self, dir: char, text: impl Into<String>) {
        let t_ms = self.start.elapsed().as_millis() as u64;
        self.entries.lock().unwrap().push(Entry {
            t_ms,
            dir,
            text: text.into(),
        });
    }

    /// A copy of the entries.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().unwrap().clone()
    }

    /// Rendered as text; `with_times` adds the millisecond stamps.
    pub fn render(&self, with_times: bool) -> String {
        self.entries()
            .iter()
            .map(|e| {
                if with_times {
                    format!("{:>6} {} {}\n", e.t_ms, e.dir, e.text)
                } else {
                    format!("{} {}\n", e.dir, e.text)
                }
            })
            .collect()
    }
}

/// How a data connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataOutcome {
    /// Data flowed and the connection closed normally.
    Ok,
    /// The peer answered with a RST.
    Refused,
    /// Nothing answered within the bound.
    TimedOut,
    /// No route / host unreachable.
    Unreachable,
    /// Reset during the transfer.
    Reset,
    /// Another error.
    Error,
}

impl DataOutcome {
    /// Classifies an I/O error.
    pub fn of(e: &io::Error) -> DataOutcome {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => DataOutcome::Refused,
            io::ErrorKind::TimedOut => DataOutcome::TimedOut,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => DataOutcome::Reset,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                DataOutcome::Unreachable
            }
            _ => match e.raw_os_error() {
                Some(libc::EHOSTUNREACH) | Some(libc::ENETUNREACH) => DataOutcome::Unreachable,
                _ => DataOutcome::Error,
            },
        }
    }
}

/// The result of a passive or active transfer.
#[derive(Debug, Clone, Serialize)]
pub struct Transfer {
    /// Where the data connection went (passive) or came from (active).
    pub data_peer: Option<SocketAddr>,
    /// How the data connection ended.
    pub outcome: DataOutcome,
    /// Bytes moved.
    pub bytes: u64,
    /// SHA-256 of the data received (hex), for downloads.
    pub sha256: Option<String>,
    /// The final reply (226, 425, 426, …), if any came.
    pub final_reply: Option<Reply>,
    /// Milliseconds from the data command to the final reply.
    pub elapsed_ms: u64,
    /// Milliseconds the data connection took to establish (passive).
    pub connect_ms: f64,
    /// The received data (downloads only, kept only when small).
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// Errors of the client itself (not FTP-level failures, which are replies).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket error on the control connection.
    #[error("control connection: {0}")]
    Io(#[from] io::Error),
    /// No reply within the bound.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The server closed the control connection.
    #[error("server closed the control connection")]
    Closed,
}

/// Which way data connections are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMode {
    /// PASV; connect to the address in the 227.
    Pasv,
    /// EPSV; connect to the control peer's address and the 229 port.
    Epsv,
    /// PORT with our own address.
    Port,
    /// EPRT with our own address.
    Eprt,
}

/// A connected control session.
#[derive(Debug)]
pub struct FtpClient {
    reader: LineReader<Conn>,
    parser: ReplyParser,
    /// FTPS settings, once `AUTH TLS` succeeded (kept after `CCC`: data
    /// connections may stay protected).
    tls: Option<ClientTls>,
    /// `PROT P` is in effect: data connections are TLS.
    pub prot_private: bool,
    /// Data connections try to resume the control connection's TLS session
    /// (default true; false shows a server refusing them).
    pub tls_resume: bool,
    /// What was seen.
    pub transcript: Transcript,
    sockets: Arc<dyn SocketFactory>,
    /// Local address of the control connection.
    pub local: SocketAddr,
    /// Server address of the control connection.
    pub peer: SocketAddr,
    /// Bound for each reply and each data connection.
    pub timeout: Duration,
    /// The last passive address announced (227/229).
    pub last_passive: Option<SocketAddr>,
}

impl FtpClient {
    /// Connects and reads the banner.
    pub async fn connect(
        sockets: Arc<dyn SocketFactory>,
        server: SocketAddr,
        timeout: Duration,
        transcript: Transcript,
    ) -> Result<(FtpClient, Reply), ClientError> {
        transcript.push('#', format!("connect {server}"));
        let socket = sockets.tcp_socket(server)?;
        let stream = match tokio::time::timeout(timeout, socket.connect(server)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                transcript.push('#', format!("connect failed: {e}"));
                return Err(e.into());
            }
            Err(_) => {
                transcript.push('#', "connect timed out");
                return Err(ClientError::Timeout(timeout));
            }
        };
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        let mut c = FtpClient {
            reader: LineReader::new(Conn::Plain(stream), 64 * 1024),
            parser: ReplyParser::default(),
            tls: None,
            prot_private: false,
            tls_resume: true,
            transcript,
            sockets,
            local,
            peer: server,
            timeout,
            last_passive: None,
        };
        let banner = c.read_reply().await?;
        Ok((c, banner))
    }

    /// Reads one (possibly multi-line) reply.
    pub async fn read_reply(&mut self) -> Result<Reply, ClientError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let line = tokio::time::timeout_at(deadline, self.reader.next_line())
                .await
                .map_err(|_| {
                    self.transcript
                        .push('#', format!("no reply within {:?}", self.timeout));
                    ClientError::Timeout(self.timeout)
                })??;
            match line {
                Line::Eof => {
                    self.transcript
                        .push('#', "control connection closed by server");
                    return Err(ClientError::Closed);
                }
                Line::TooLong => continue,
                Line::Text(t) => {
                    self.transcript.push('<', t.clone());
                    if let Some(r) = self.parser.push_line(&t) {
                        return Ok(r);
                    }
                }
            }
        }
    }

    /// Sends a raw line (no CR LF) without waiting.
    pub async fn send_line(&mut self, line: &str) -> Result<(), ClientError> {
        let shown = if line.to_ascii_uppercase().starts_with("PASS ") {
            "PASS ****".to_string()
        } else {
            line.to_string()
        };
        self.transcript.push('>', shown);
        let w = self.reader.get_mut();
        w.write_all(format!("{line}\r\n").as_bytes()).await?;
        w.flush().await?;
        Ok(())
    }

    /// Whether the control connection is TLS now.
    pub fn control_is_tls(&self) -> bool {
        matches!(self.reader.get_ref(), Conn::Tls(_))
    }

    /// `AUTH TLS`, then the TLS handshake when the server says 234.
    /// Handshake failures are errors (the transcript says why).
    pub async fn auth_tls(&mut self, tls: ClientTls) -> Result<Reply, ClientError> {
        let r = self.cmd("AUTH TLS").await?;
        if r.code != 234 {
            return Ok(r);
        }
        let Conn::Plain(tcp) = std::mem::replace(self.reader.get_mut(), Conn::Switching) else {
            return Err(ClientError::Io(io::Error::other("TLS is already on")));
        };
        let name = ClientTls::server_name(self.peer.ip());
        let connector = tokio_rustls::TlsConnector::from(tls.resuming.clone());
        match tokio::time::timeout(self.timeout, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => {
                let (_, conn) = s.get_ref();
                self.transcript.push(
                    '#',
                    format!(
                        "TLS on the control connection ({:?}, {:?})",
                        conn.protocol_version(),
                        conn.negotiated_cipher_suite().map(|c| c.suite())
                    ),
                );
                *self.reader.get_mut() = Conn::Tls(Box::new(s));
                self.tls = Some(tls);
                Ok(r)
            }
            Ok(Err(e)) => {
                self.transcript
                    .push('#', format!("TLS handshake failed: {e}"));
                Err(ClientError::Io(io::Error::other(format!(
                    "TLS handshake failed: {e}"
                ))))
            }
            Err(_) => {
                self.transcript.push('#', "TLS handshake timed out");
                Err(ClientError::Timeout(self.timeout))
            }
        }
    }

    /// `CCC`: on 200, both sides close TLS (`close_notify` both ways) and the
    /// control connection goes on in clear text.
    pub async fn ccc(&mut self) -> Result<Reply, ClientError> {
        let r = self.cmd("CCC").await?;
        if r.code != 200 {
            return Ok(r);
        }
        let Conn::Tls(mut s) = std::mem::replace(self.reader.get_mut(), Conn::Switching) else {
            return Err(ClientError::Io(io::Error::other("CCC without TLS")));
        };
        // The server's close_notify follows its 200: read up to it.
        let mut sink = [0u8; 256];
        let closed = tokio::time::timeout(self.timeout, async {
            loop {
                match s.read(&mut sink).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => continue,
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .map_err(|_| ClientError::Timeout(self.timeout))?;
        closed?;
        s.get_mut().1.send_close_notify();
        s.flush().await?;
        let (tcp, _) = s.into_inner();
        *self.reader.get_mut() = Conn::Plain(tcp);
        self.transcript
            .push('#', "CCC: TLS closed, control connection in clear text");
        Ok(r)
    }

    /// A data connection as the session's protection level wants it: TLS
    /// (resuming the control connection's session) after `PROT P`.
    pub async fn protect_data(&self, tcp: TcpStream) -> io::Result<Conn> {
        self.protect(tcp).await
    }

    /// TLS on a data connection when `PROT P` is in effect (we are the TLS
    /// client in both directions, as RFC 4217 says).
    async fn protect(&self, tcp: TcpStream) -> io::Result<Conn> {
        let Some(tls) = self.tls.as_ref().filter(|_| self.prot_private) else {
            return Ok(Conn::Plain(tcp));
        };
        let config = if self.tls_resume {
            tls.resuming.clone()
        } else {
            tls.fresh.clone()
        };
        let name = ClientTls::server_name(self.peer.ip());
        let s = tokio::time::timeout(
            self.timeout,
            tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake on the data connection timed out",
            )
        })??;
        let resumed = s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        self.transcript.push(
            '=',
            format!(
                "data TLS on ({})",
                if resumed {
                    "session resumed"
                } else {
                    "full handshake"
                }
            ),
        );
        Ok(Conn::Tls(Box::new(s)))
    }

    /// Sends a command and reads its reply.
    pub async fn cmd(&mut self, line: &str) -> Result<Reply, ClientError> {
        self.send_line(line).await?;
        let r = self.read_reply().await?;
        self.note_passive(&r);
        if r.code == 200 {
            match line.trim().to_ascii_uppercase().as_str() {
                "PROT P" => self.prot_private = true,
                "PROT C" => self.prot_private = false,
                _ => {}
            }
        }
        Ok(r)
    }

    fn note_passive(&mut self, r: &Reply) {
        let text = r.lines.join(" ");
        match r.code {
            227 => self.last_passive = addr::parse_pasv_reply(&text).ok().map(SocketAddr::V4),
            229 => {
                self.last_passive = addr::parse_epsv_reply(&text)
                    .ok()
                    .map(|p| SocketAddr::new(self.peer.ip(), p))
            }
            _ => {}
        }
    }

    /// USER + PASS (PASS only when USER answered 331).
    pub async fn login(&mut self, user: &str, pass: &str) -> Result<Reply, ClientError> {
        let r = self.cmd(&format!("USER {user}")).await?;
        if r.code != 331 {
            return Ok(r);
        }
        self.cmd(&format!("PASS {pass}")).await
    }

    /// Connects a data socket to `target` within the bound.
    pub async fn connect_data(&self, target: SocketAddr) -> Result<TcpStream, io::Error> {
        self.transcript.push('=', format!("data connect {target}"));
        let socket = self.sockets.tcp_socket(target)?;
        let r = match tokio::time::timeout(self.timeout, socket.connect(target)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "data connection timed out",
            )),
        };
        match &r {
            Ok(s) => self.transcript.push(
                '=',
                format!("data connected {} -> {target}", s.local_addr()?),
            ),
            Err(e) => self.transcript.push(
                '=',
                format!(
                    "data connect {target} failed: {:?} ({e})",
                    DataOutcome::of(e)
                ),
            ),
        }
        r
    }

    /// Opens a listener for active mode on our control address.
    pub async fn listen_active(&self) -> io::Result<TcpListener> {
        let socket = self.sockets.tcp_socket(self.local)?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::new(self.local.ip(), 0))?;
        socket.listen(4)
    }

    /// A whole transfer: sets up the data connection with `mode`, sends `verb`
    /// (e.g. `RETR hello.txt`, `LIST`, `STOR up.bin`), moves data (`upload`
    /// for STOR/APPE) and reads the final reply.
    pub async fn transfer(
        &mut self,
        mode: DataMode,
        verb: &str,
        upload: Option<&[u8]>,
    ) -> Result<Transfer, ClientError> {
        let t0 = Instant::now();
        let mut result = Transfer::empty();
        match mode {
            DataMode::Pasv | DataMode::Epsv => {
                let r = self
                    .cmd(if mode == DataMode::Pasv {
                        "PASV"
                    } else {
                        "EPSV"
                    })
                    .await?;
                let Some(target) = self.last_passive.filter(|_| matches!(r.code, 227 | 229)) else {
                    result.final_reply = Some(r);
                    return Ok(result);
                };
                self.passive_transfer(target, verb, upload, t0).await
            }
            DataMode::Port | DataMode::Eprt => {
                let listener = self.listen_active().await?;
                let la = listener.local_addr()?;
                let cmd = match (mode, la) {
                    (DataMode::Port, SocketAddr::V4(v4)) => {
                        format!("PORT {}", addr::format_host_port(v4))
                    }
                    _ => format!("EPRT {}", addr::format_eprt(la)),
                };
                let r = self.cmd(&cmd).await?;
                if r.code != 200 {
                    result.final_reply = Some(r);
                    return Ok(result);
                }
                let r = self.cmd(verb).await?;
                if r.code >= 400 {
                    result.final_reply = Some(r);
                    return Ok(result);
                }
                let stream = match tokio::time::timeout(self.timeout, listener.accept()).await {
                    Ok(Ok((s, from))) => {
                        self.transcript
                            .push('=', format!("data accepted from {from}"));
                        result.data_peer = Some(from);
                        s
                    }
                    Ok(Err(e)) => {
                        result.outcome = DataOutcome::of(&e);
                        result.final_reply = self.read_reply().await.ok();
                        return Ok(result);
                    }
                    Err(_) => {
                        self.transcript
                            .push('=', "no data connection from the server");
                        result.outcome = DataOutcome::TimedOut;
                        result.final_reply = self.read_reply().await.ok();
                        return Ok(result);
                    }
                };
                self.finish_transfer(stream, upload, result, t0).await
            }
        }
    }

    /// A transfer through the passive address already announced (the last
    /// 227/229), without a new PASV: for clients that sent PASV earlier and
    /// kept the port pending.
    pub async fn transfer_pending(
        &mut self,
        verb: &str,
        upload: Option<&[u8]>,
    ) -> Result<Transfer, ClientError> {
        let t0 = Instant::now();
        match self.last_passive {
            Some(target) => self.passive_transfer(target, verb, upload, t0).await,
            None => {
                self.transcript.push('#', "no pending passive address");
                Ok(Transfer::empty())
            }
        }
    }

    async fn passive_transfer(
        &mut self,
        target: SocketAddr,
        verb: &str,
        upload: Option<&[u8]>,
        t0: Instant,
    ) -> Result<Transfer, ClientError> {
        let mut result = Transfer::empty();
        result.data_peer = Some(target);
        let t_connect = Instant::now();
        let connected = self.connect_data(target).await;
        result.connect_ms = t_connect.elapsed().as_secs_f64() * 1000.0;
        match connected {
            Ok(s) => {
                let r = self.cmd(verb).await?;
                if r.code >= 400 {
                    result.final_reply = Some(r);
                    return Ok(result);
                }
                self.finish_transfer(s, upload, result, t0).await
            }
            Err(e) => {
                result.outcome = DataOutcome::of(&e);
                // Tell the server we give up, as curl does.
                let _ = self.cmd("ABOR").await;
                result.elapsed_ms = t0.elapsed().as_millis() as u64;
                Ok(result)
            }
        }
    }

    async fn finish_transfer(
        &mut self,
        stream: TcpStream,
        upload: Option<&[u8]>,
        mut result: Transfer,
        t0: Instant,
    ) -> Result<Transfer, ClientError> {
        let moved = match self.protect(stream).await {
            Ok(conn) => move_data(conn, upload, self.timeout * 4).await,
            Err(e) => {
                self.transcript.push('=', format!("data TLS failed: {e}"));
                Err(e)
            }
        };
        match moved {
            Ok((bytes, data)) => {
                result.bytes = bytes;
                result.outcome = DataOutcome::Ok;
                if upload.is_none() {
                    use sha2::Digest;
                    result.sha256 = Some(hex(&sha2::Sha256::digest(&data)));
                    if data.len() <= 1 << 20 {
                        result.data = data;
                    }
                }
                self.transcript
                    .push('=', format!("data closed after {bytes} bytes"));
            }
            Err(e) => {
                result.outcome = DataOutcome::of(&e);
                self.transcript.push('=', format!("data error: {e}"));
            }
        }
        let r = self.read_reply().await?;
        result.final_reply = Some(r);
        result.elapsed_ms = t0.elapsed().as_millis() as u64;
        Ok(result)
    }
}

impl Transfer {
    /// No data connection (yet).
    pub fn empty() -> Transfer {
        Transfer {
            data_peer: None,
            outcome: DataOutcome::Error,
            bytes: 0,
            sha256: None,
            final_reply: None,
            elapsed_ms: 0,
            connect_ms: 0.0,
            data: Vec::new(),
        }
    }
}

async fn move_data(
    mut stream: Conn,
    upload: Option<&[u8]>,
    bound: Duration,
) -> io::Result<(u64, Vec<u8>)> {
    let work = async {
        match upload {
            Some(bytes) => {
                stream.write_all(bytes).await?;
                stream.shutdown().await?;
                // Wait for the server's close; dropping the socket with
                // unread bytes (TLS session tickets) would send a RST that
                // can cut off the end of the upload.
                let mut rest = Vec::new();
                let _ = stream.read_to_end(&mut rest).await;
                Ok((bytes.len() as u64, Vec::new()))
            }
            None => {
                let mut data = Vec::new();
                stream.read_to_end(&mut data).await?;
                Ok((data.len() as u64, data))
            }
        }
    };
    tokio::time::timeout(bound, work).await.unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "data transfer timed out",
        ))
    })
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The IPv4 address inside a 227 reply, if any.
pub fn pasv_addr(r: &Reply) -> Option<SocketAddrV4> {
    (r.code == 227)
        .then(|| addr::parse_pasv_reply(&r.lines.join(" ")).ok())
        .flatten()
}

/// Whether `ip` is outside the RFC 1918 / loopback / link-local space.
pub fn is_public(ip: IpAddr) -> bool {
    !addr::is_non_public(ip)
}
