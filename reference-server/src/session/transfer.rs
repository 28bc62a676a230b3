//! Transfers: TYPE/MODE/STRU/REST, RETR/STOR/APPE, and the transfer task
//! that runs on the data connection while the control connection keeps
//! answering ABOR, STAT, NOOP and QUIT.
//!
//! Uploads go to a temporary file next to the target and are renamed into
//! place only on success, so a failed upload never leaves a half file.

use std::{
    io,
    path::{Path, PathBuf},
};

use tokio::{
    fs::File,
    io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader, BufWriter},
    net::TcpStream,
    task::JoinHandle,
    time::Instant,
};
use tracing::{debug, info, warn};

use super::{fs::describe, Flow, Handled, Session};
use crate::{
    config::TlsRequired,
    protocol::{command::shown, Command, PathArg, RawLine, Reply},
    tls::DataStream,
};

/// Read/write block size of transfers.
const CHUNK: usize = 256 * 1024;

impl Session {
    pub(super) async fn cmd_type(&mut self, t: String) -> Handled {
        match t.to_ascii_uppercase().as_str() {
            "I" | "L 8" | "L8" => {
                self.binary = true;
                self.ok(200, "Type set to I").await
            }
            "A" | "A N" => {
                self.binary = false;
                self.ok(200, "Type set to A").await
            }
            _ => self.ok(504, format!("TYPE {t} not implemented")).await,
        }
    }

    pub(super) async fn cmd_mode(&mut self, m: String) -> Handled {
        if m.eq_ignore_ascii_case("S") {
            self.ok(200, "Mode set to S").await
        } else {
            self.ok(504, format!("MODE {m} not implemented")).await
        }
    }

    pub(super) async fn cmd_stru(&mut self, s: String) -> Handled {
        if s.eq_ignore_ascii_case("F") {
            self.ok(200, "Structure set to F").await
        } else {
            self.ok(504, format!("STRU {s} not implemented")).await
        }
    }

    /// `REST offset`: a byte offset a file can have (0 to 2^63 − 1), else
    /// 501; whether it fits the file is checked by RETR/STOR (554).
    pub(super) async fn cmd_rest(&mut self, n: String) -> Handled {
        match n
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|o| u64::try_from(o).ok())
        {
            Some(off) => {
                self.rest = off;
                self.ok(
                    350,
                    format!("Restarting at {off}. Send STORE or RETRIEVE to initiate transfer"),
                )
                .await
            }
            None => self.ok(501, format!("REST: invalid offset {n:?}")).await,
        }
    }

    /// 554 for a restart offset beyond the end of the file (RFC 3659 §5.5).
    async fn rest_beyond_end(&mut self, arg: &[u8], offset: u64, len: u64) -> Handled {
        self.ok(
            554,
            format!(
                "{}: restart offset {offset} is beyond the end of the file ({len} bytes)",
                shown(arg)
            ),
        )
        .await
    }

    /// Sends 150, opens the data connection and runs `job` on it while the
    /// control connection keeps answering ABOR/STAT/NOOP.
    pub(super) async fn transfer<F, Fut>(&mut self, what: &str, job: F) -> Handled
    where
        F: FnOnce(DataStream) -> Fut,
        Fut: std::future::Future<Output = io::Result<u64>> + Send + 'static,
    {
        if matches!(self.data, super::DataPlan::None) {
            return self
                .ok(
                    425,
                    "Unable to build data connection: use PORT or PASV first",
                )
                .await;
        }
        if self.cfg.tls_required == TlsRequired::All && !self.prot_private {
            return self
                .ok(
                    521,
                    "Data connections must be protected: use PBSZ 0 and PROT P",
                )
                .await;
        }
        let mode = if self.binary { "BINARY" } else { "ASCII" };
        self.reply(
            150,
            format!("Opening {mode} mode data connection for {what}"),
        )
        .await?;
        let stream = match self.open_data().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "data connection failed");
                return self
                    .ok(
                        425,
                        format!("Unable to build data connection: {}", io_reason(&e)),
                    )
                    .await;
            }
        };
        debug!(data_peer = ?stream.peer_addr().ok(), data_local = ?stream.local_addr().ok(), tls = self.prot_private, "data connection open");
        let stream = match self.protect(stream).await {
            Ok(s) => s,
            Err(why) => {
                return self
                    .ok(425, format!("Unable to build data connection: {why}"))
                    .await
            }
        };
        let task = tokio::spawn(job(stream));
        let result = match self.while_transferring(what, task).await? {
            Watched::Done(result) => result,
            Watched::Aborted => return Ok(Flow::Continue),
            Watched::Close => return Ok(Flow::Close),
        };
        self.last_transfer = Instant::now();
        match result {
            Ok(bytes) => {
                info!(what, bytes, "transfer complete");
                self.ok(226, "Transfer complete").await
            }
            Err(e) => {
                warn!(what, error = %e, "transfer failed");
                let code = match describe(&e).0 {
                    c @ (426 | 452 | 552) => c,
                    _ if is_network(&e) => 426,
                    _ => 451,
                };
                self.ok(code, format!("Transfer aborted: {}", io_reason(&e)))
                    .await
            }
        }
    }

    /// Answers control commands until the transfer task ends.
    async fn while_transferring(
        &mut self,
        what: &str,
        mut task: JoinHandle<io::Result<u64>>,
    ) -> io::Result<Watched> {
        loop {
            tokio::select! {
                r = &mut task => {
                    return Ok(Watched::Done(r.unwrap_or_else(|e| Err(io::Error::other(e.to_string())))));
                }
                line = self.reader.next_raw() => match line? {
                    RawLine::Eof => {
                        task.abort();
                        return Ok(Watched::Close);
                    }
                    RawLine::TooLong => self.reply(500, "Command line too long").await?,
                    RawLine::Bytes(t) => match Command::parse_bytes(&t) {
                        Ok(Command::Abor) => {
                            task.abort();
                            info!(what, "transfer aborted by client");
                            self.reply(426, "Connection closed; transfer aborted").await?;
                            self.reply(226, "Abort successful").await?;
                            self.last_transfer = Instant::now();
                            return Ok(Watched::Aborted);
                        }
                        Ok(Command::Noop) => self.reply(200, "NOOP command successful").await?,
                        Ok(Command::Stat(None)) => {
                            let lines = self.status_lines();
                            self.send(Reply::multi(211, lines)).await?;
                        }
                        Ok(Command::Quit) => {
                            task.abort();
                            self.reply(221, "Goodbye.").await?;
                            return Ok(Watched::Close);
                        }
                        _ => self.reply(503, "Transfer in progress; only ABOR, STAT, NOOP, QUIT").await?,
                    },
                },
            }
        }
    }

    pub(super) async fn cmd_retr(&mut self, arg: PathArg) -> Handled {
        let offset = std::mem::take(&mut self.rest);
        let path = match self.resolve_existing(&arg.0) {
            Ok(p) if p.is_file() => p,
            Ok(_) => {
                return self
                    .ok(550, format!("{}: Not a regular file", arg.shown()))
                    .await
            }
            Err(e) => return self.fs_error(&arg.0, e).await,
        };
        let file = match File::open(&path).await {
            Ok(f) => f,
            Err(e) => return self.fs_error(&arg.0, e).await,
        };
        let len = match file.metadata().await {
            Ok(m) => m.len(),
            Err(e) => return self.fs_error(&arg.0, e).await,
        };
        if offset > len {
            return self.rest_beyond_end(&arg.0, offset, len).await;
        }
        let ascii = !self.binary;
        self.transfer(&arg.shown(), move |stream| {
            send_file(stream, file, offset, ascii)
        })
        .await
    }

    pub(super) async fn cmd_store(&mut self, arg: PathArg, append: bool) -> Handled {
        let offset = std::mem::take(&mut self.rest);
        let virt = self.virt(&arg.0);
        let path = match self.sandbox.resolve(&virt) {
            Ok(p) if virt != b"/" && !p.is_dir() => p,
            Ok(_) => {
                return self
                    .ok(550, format!("{}: Is a directory", arg.shown()))
                    .await
            }
            Err(e) => return self.fs_error(&arg.0, e).await,
        };
        if path.parent().is_none_or(|p| !p.is_dir()) {
            return self
                .fs_error(&arg.0, io::Error::from(io::ErrorKind::NotFound))
                .await;
        }
        if !append && offset > 0 {
            let len = std::fs::metadata(&path).map_or(0, |m| m.len());
            if offset > len {
                return self.rest_beyond_end(&arg.0, offset, len).await;
            }
        }
        let keep = if append { u64::MAX } else { offset };
        let ascii = !self.binary;
        self.transfer(&arg.shown(), move |stream| {
            recv_file(stream, path, keep, ascii)
        })
        .await
    }
}

/// How a transfer ended, seen from the control connection.
enum Watched {
    /// The task finished: bytes moved, or why it failed.
    Done(io::Result<u64>),
    /// ABOR: 426 and 226 were sent.
    Aborted,
    /// QUIT or the control connection closed: end the session.
    Close,
}

/// Whether an error is the data connection's rather than the file's.
fn is_network(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | BrokenPipe
            | NotConnected
            | TimedOut
            | UnexpectedEof
    )
}

/// A short reason for a failed data connection or transfer, in FTP's
/// words: the OS's text (`(os error N)`) never reaches the client; our own
/// messages (errors without an OS code) do.
pub(super) fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        io::ErrorKind::TimedOut => "Connection timed out".into(),
        io::ErrorKind::ConnectionReset => "Connection reset by peer".into(),
        _ if e.raw_os_error().is_some() => describe(e).1.into(),
        _ if e.get_ref().is_some() => e.to_string(),
        _ => describe(e).1.into(),
    }
}

/// ASCII type on the wire (RETR): every LF not already preceded by CR gets
/// one. `prev_cr` carries the state across blocks.
fn to_network_ascii(block: &[u8], prev_cr: &mut bool, out: &mut Vec<u8>) {
    for &b in block {
        if b == b'\n' && !*prev_cr {
            out.push(b'\r');
        }
        out.push(b);
        *prev_cr = b == b'\r';
    }
}

/// ASCII type from the wire (STOR): CR LF becomes LF, every other byte
/// (a bare CR included) stays. `pending_cr` carries a CR that ended the
/// previous block; at the end of the stream the caller writes it out.
fn from_network_ascii(block: &[u8], pending_cr: &mut bool, out: &mut Vec<u8>) {
    for &b in block {
        if std::mem::take(pending_cr) && b != b'\n' {
            out.push(b'\r');
        }
        if b == b'\r' {
            *pending_cr = true;
        } else {
            out.push(b);
        }
    }
}

async fn send_file(
    mut stream: DataStream,
    mut file: File,
    offset: u64,
    ascii: bool,
) -> io::Result<u64> {
    if offset > 0 {
        file.seek(io::SeekFrom::Start(offset)).await?;
    }
    let total = if ascii {
        let mut reader = BufReader::with_capacity(CHUNK, file);
        let mut out = BufWriter::with_capacity(CHUNK, &mut stream);
        let mut buf = vec![0u8; CHUNK];
        let mut conv = Vec::with_capacity(CHUNK * 2);
        let mut total = 0u64;
        let mut prev_cr = false;
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            conv.clear();
            to_network_ascii(&buf[..n], &mut prev_cr, &mut conv);
            out.write_all(&conv).await?;
            total += conv.len() as u64;
        }
        out.flush().await?;
        total
    } else {
        match &mut stream {
            DataStream::Plain(tcp) => send_binary(tcp, file.into_std().await, offset).await?,
            tls => {
                let mut reader = BufReader::with_capacity(CHUNK, file);
                let n = tokio::io::copy_buf(&mut reader, tls).await?;
                tls.flush().await?;
                n
            }
        }
    };
    stream.shutdown().await?;
    Ok(total)
}

/// Image-type RETR: sendfile(2) from the page cache straight into the
/// socket (no copy through user space), driven by the socket's readiness;
/// cancel-safe at every await (ABOR drops it).
async fn send_binary(stream: &TcpStream, file: std::fs::File, offset: u64) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let len = file.metadata()?.len();
    let mut off = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    let mut total = 0u64;
    while (off as u64) < len {
        stream.writable().await?;
        let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
            let want = (len - off as u64).min(4 * CHUNK as u64) as usize;
            // SAFETY: both descriptors are open for the whole call and `off`
            // is a valid, exclusively borrowed offset.
            let n = unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut off, want) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as u64)
            }
        });
        match sent {
            Ok(0) => break, // the file shrank under us
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// Image-type upload: one blocking thread reads the socket and writes the
/// file in large blocks (no per-block hand-off between threads). If the
/// transfer is dropped (ABOR, session end), the socket is shut down so the
/// thread's read returns and it ends.
async fn recv_binary(stream: TcpStream, mut out: std::fs::File) -> io::Result<u64> {
    use std::io::{Read, Write};
    let mut sock = stream.into_std()?;
    sock.set_nonblocking(false)?;
    let handle = sock.try_clone()?;
    struct ShutdownOnDrop(Option<std::net::TcpStream>);
    impl Drop for ShutdownOnDrop {
        fn drop(&mut self) {
            if let Some(s) = self.0.take() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
    let mut guard = ShutdownOnDrop(Some(handle));
    let total = tokio::task::spawn_blocking(move || -> io::Result<u64> {
        let mut buf = vec![0u8; 4 * CHUNK];
        let mut total = 0u64;
        loop {
            let n = match sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            out.write_all(&buf[..n])?;
            total += n as u64;
        }
        out.flush()?;
        Ok(total)
    })
    .await
    .map_err(io::Error::other)??;
    guard.0 = None; // finished normally: nothing to interrupt
    Ok(total)
}

/// Receives into a temporary file next to `path` and renames it into place
/// only on success. `keep` bytes of the existing file are kept first (REST
/// offset for STOR, `u64::MAX` for APPE).
async fn recv_file(stream: DataStream, path: PathBuf, keep: u64, ascii: bool) -> io::Result<u64> {
    let dir = path.parent().unwrap_or(Path::new("/")).to_owned();
    // Short, whatever the target's name: a name near NAME_MAX still works.
    let tmp = dir.join(format!(".ftpnat-upload-{:016x}", rand::random::<u64>()));
    let result = async {
        let mut out = File::create(&tmp).await?;
        if keep > 0 {
            if let Ok(existing) = File::open(&path).await {
                tokio::io::copy(&mut existing.take(keep), &mut out).await?;
            }
        }
        let total = receive_into(stream, out, ascii).await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(total)
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// Copies the data connection into `out` (ASCII conversion for type A).
async fn receive_into(stream: DataStream, out: File, ascii: bool) -> io::Result<u64> {
    let mut stream = match stream {
        DataStream::Plain(tcp) if !ascii => return recv_binary(tcp, out.into_std().await).await,
        other => other,
    };
    let mut out = BufWriter::with_capacity(CHUNK, out);
    let mut total = 0u64;
    // Large reads, so the file sees few large writes.
    let mut buf = vec![0u8; if ascii { CHUNK } else { 4 * CHUNK }];
    let mut conv = Vec::new();
    let mut pending_cr = false;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if ascii {
            conv.clear();
            from_network_ascii(&buf[..n], &mut pending_cr, &mut conv);
            out.write_all(&conv).await?;
        } else {
            out.write_all(&buf[..n]).await?;
        }
        total += n as u64;
    }
    if pending_cr {
        out.write_all(b"\r").await?;
    }
    out.flush().await?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_to_the_network_adds_cr_once_across_blocks() {
        let mut out = Vec::new();
        let mut prev = false;
        to_network_ascii(b"a\nb\r", &mut prev, &mut out);
        to_network_ascii(b"\nc\n", &mut prev, &mut out);
        assert_eq!(out, b"a\r\nb\r\nc\r\n");
    }

    #[test]
    fn ascii_from_the_network_turns_only_crlf_into_lf_across_blocks() {
        let mut out = Vec::new();
        let mut cr = false;
        for block in [&b"a\rb\r"[..], b"\nc\r", b"\r", b"\nd\r"] {
            from_network_ascii(block, &mut cr, &mut out);
        }
        assert!(cr, "a CR at the end waits for the next byte");
        assert_eq!(out, b"a\rb\nc\r\nd");
    }
}
