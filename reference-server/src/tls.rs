//! Explicit FTPS (RFC 4217): the TLS configuration, the control stream that
//! can start TLS (`AUTH TLS`) and drop it again (`CCC`), and TLS data
//! connections.
//!
//! The control stream drives rustls itself and feeds it exactly one TLS
//! record at a time, so after `CCC` no clear-text byte that followed the
//! peer's `close_notify` is swallowed by the TLS layer. Each FTP session
//! gets its own copy of the server configuration with its own session
//! cache: a data connection can only resume a TLS session of *this* FTP
//! session (its control connection's, or a previous data connection's), so
//! requiring resumption stops data-connection theft by another client, as
//! ProFTPD's and vsftpd's `require_ssl_reuse` do.

use std::{
    io::{self, Read, Write},
    path::Path,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::ServerSessionMemoryCache,
    ServerConfig, ServerConnection,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
};

/// TLS settings loaded from `tls_cert` / `tls_key`.
#[derive(Clone)]
pub struct TlsSetup {
    base: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSetup")
    }
}

/// The crypto provider everything here uses (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsSetup {
    /// Loads a PEM certificate chain and private key; errors name the file.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsSetup, String> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "tls_cert {}: no certificate in the file",
                cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("tls_key {}: {e}", key.display()))?;
        Self::from_der(certs, key)
    }

    /// From DER certificate chain and key.
    pub fn from_der(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<TlsSetup, String> {
        let cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("tls_cert/tls_key: {e}"))?;
        Ok(TlsSetup {
            base: Arc::new(cfg),
        })
    }

    /// A configuration for one FTP session: its own session cache, so data
    /// connections can resume only this session's TLS sessions.
    pub fn for_session(&self) -> Arc<ServerConfig> {
        let mut c = (*self.base).clone();
        c.session_storage = ServerSessionMemoryCache::new(32);
        Arc::new(c)
    }
}

/// The control connection: plain TCP, or TLS on it after `AUTH TLS`.
pub struct ControlStream {
    tcp: TcpStream,
    tls: Option<Box<ServerConnection>>,
    /// A TLS record being read (header and body).
    rec: Vec<u8>,
    /// TLS bytes waiting to be written, from `out_pos`.
    out: Vec<u8>,
    out_pos: usize,
}

impl ControlStream {
    /// Wraps a plain control connection.
    pub fn new(tcp: TcpStream) -> ControlStream {
        ControlStream {
            tcp,
            tls: None,
            rec: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
        }
    }

    /// Whether TLS is on.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS protocol version and cipher suite, for the log.
    pub fn describe(&self) -> String {
        match &self.tls {
            Some(t) => format!(
                "{:?}, {:?}",
                t.protocol_version(),
                t.negotiated_cipher_suite().map(|s| s.suite())
            ),
            None => "clear".into(),
        }
    }

    /// Runs the TLS handshake as the server (after the `234` reply).
    pub async fn start_tls(&mut self, config: Arc<ServerConfig>) -> io::Result<()> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        self.tls = Some(Box::new(conn));
        loop {
            self.encode_pending()?;
            self.write_out().await?;
            let tls = self.tls.as_ref().expect("set above");
            if !tls.is_handshaking() {
                break;
            }
            if !self.read_record().await? {
                self.tls = None;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed during the TLS handshake",
                ));
            }
        }
        // Session tickets and anything else the handshake left to send.
        self.encode_pending()?;
        self.write_out().await
    }

    /// `CCC`: sends `close_notify`, waits for the client's, and goes on in
    /// clear text on the same TCP connection.
    pub async fn stop_tls(&mut self) -> io::Result<()> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        tls.send_close_notify();
        self.encode_pending()?;
        self.write_out().await?;
        loop {
            let tls = self.tls.as_mut().expect("checked above");
            let mut sink = [0u8; 512];
            match tls.reader().read(&mut sink) {
                Ok(0) => break, // the client's close_notify
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if !self.read_record().await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the client's close_notify",
                ));
            }
        }
        self.tls = None;
        self.rec.clear();
        Ok(())
    }

    /// Reads exactly one TLS record and hands it to rustls. `false` at EOF.
    async fn read_record(&mut self) -> io::Result<bool> {
        let mut head = [0u8; 5];
        match self.tcp.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        let len = record_len(&head)?;
        let mut rec = Vec::with_capacity(5 + len);
        rec.extend_from_slice(&head);
        rec.resize(5 + len, 0);
        self.tcp.read_exact(&mut rec[5..]).await?;
        self.feed(&rec)?;
        Ok(true)
    }

    fn feed(&mut self, rec: &[u8]) -> io::Result<()> {
        let tls = self.tls.as_mut().expect("TLS on");
        let mut slice = rec;
        while !slice.is_empty() {
            tls.read_tls(&mut slice)?;
            if let Err(e) = tls.process_new_packets() {
                // Let rustls write its alert before failing.
                let _ = tls.write_tls(&mut self.out);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        self.encode_pending()
    }

    fn encode_pending(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                tls.write_tls(&mut self.out)?;
            }
        }
        Ok(())
    }

    async fn write_out(&mut self) -> io::Result<()> {
        if self.out_pos < self.out.len() {
            self.tcp.write_all(&self.out[self.out_pos..]).await?;
        }
        self.out.clear();
        self.out_pos = 0;
        Ok(())
    }

    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.out[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }
}

/// The body length of a TLS record from its 5-byte header, or an error
/// when the header is not one (so garbage fails at once instead of waiting
/// for up to 64 KiB that will never come).
fn record_len(head: &[u8]) -> io::Result<usize> {
    let len = u16::from_be_bytes([head[3], head[4]]) as usize;
    // Content types 20-24, protocol version 3.x, at most 2^14 + 2048 bytes.
    if !(20..=24).contains(&head[0]) || head[1] != 3 || len > 16384 + 2048 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a TLS record on the control connection",
        ));
    }
    Ok(len)
}

impl AsyncRead for ControlStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.tls.is_none() {
            return Pin::new(&mut this.tcp).poll_read(cx, buf);
        }
        loop {
            ready!(this.poll_write_out(cx))?;
            let tls = this.tls.as_mut().expect("TLS on");
            match tls.reader().read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(())); // n == 0: close_notify
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            // One record, exactly: the header first, then its body.
            let have = this.rec.len();
            let want = if have < 5 {
                5
            } else {
                5 + record_len(&this.rec[..5])?
            };
            this.rec.resize(want, 0);
            let mut rb = ReadBuf::new(&mut this.rec[have..want]);
            let polled = Pin::new(&mut this.tcp).poll_read(cx, &mut rb);
            let n = rb.filled().len();
            this.rec.truncate(have + n);
            match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if n == 0 => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "peer closed the TLS connection without close_notify",
                    )))
                }
                Poll::Ready(Ok(())) => {}
            }
            if this.rec.len() >= 5 && this.rec.len() == 5 + record_len(&this.rec[..5])? {
                let rec = std::mem::take(&mut this.rec);
                this.feed(&rec)?;
            }
        }
    }
}

impl AsyncWrite for ControlStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.tls.is_none() {
            return Pin::new(&mut this.tcp).poll_write(cx, data);
        }
        ready!(this.poll_write_out(cx))?;
        let tls = this.tls.as_mut().expect("TLS on");
        let n = tls.writer().write(data)?;
        this.encode_pending()?;
        // Best effort now; poll_flush finishes it.
        let _ = this.poll_write_out(cx)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(tls) = this.tls.as_mut() {
            tls.send_close_notify();
            this.encode_pending()?;
        }
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

/// A data connection: clear, or TLS (`PROT P`).
pub enum DataStream {
    /// Clear text.
    Plain(TcpStream),
    /// TLS, the FTP server as the TLS server.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl DataStream {
    /// The TCP peer.
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        match self {
            DataStream::Plain(s) => s.peer_addr(),
            DataStream::Tls(s) => s.get_ref().0.peer_addr(),
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        match self {
            DataStream::Plain(s) => s.local_addr(),
            DataStream::Tls(s) => s.get_ref().0.local_addr(),
        }
    }
}

/// Why a TLS data connection was refused.
#[derive(Debug)]
pub enum DataTlsError {
    /// The handshake failed (or timed out).
    Handshake(io::Error),
    /// A full handshake where resumption of this session's TLS session is
    /// required.
    NotResumed,
}

/// TLS-accepts a data connection; with `require_reuse`, only a handshake
/// that resumed this FTP session's TLS session is accepted.
pub async fn accept_data_tls(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    require_reuse: bool,
) -> Result<DataStream, DataTlsError> {
    let tls = tokio_rustls::TlsAcceptor::from(config)
        .accept(tcp)
        .await
        .map_err(DataTlsError::Handshake)?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    if require_reuse && !resumed {
        return Err(DataTlsError::NotResumed);
    }
    Ok(DataStream::Tls(Box::new(tls)))
}

impl AsyncRead for DataStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DataStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            DataStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DataStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DataStream::Plain(s) => Pin::new(s).poll_write(cx, data),
            DataStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DataStream::Plain(s) => Pin::new(s).poll_flush(cx),
            DataStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DataStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            DataStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
