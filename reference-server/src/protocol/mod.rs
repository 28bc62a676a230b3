//! The wire layer: commands, replies, in-band address codecs and the line
//! reader. Nothing here touches sockets except [`LineReader`], which only reads.

pub mod addr;
pub mod command;
pub mod reply;

pub use command::{Command, ParseError, PathArg};
pub use reply::{Reply, ReplyParser};

use tokio::io::{AsyncRead, AsyncReadExt};

/// One line read from the control connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line (lossily decoded as UTF-8, CR LF removed).
    Text(String),
    /// A line longer than the limit; its bytes were discarded up to the newline.
    TooLong,
    /// The peer closed the connection.
    Eof,
}

/// One line read from the control connection, as bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RawLine {
    /// A complete line (CR LF removed), exactly the bytes the peer sent.
    Bytes(Vec<u8>),
    /// A line longer than the limit; its bytes were discarded up to the newline.
    TooLong,
    /// The peer closed the connection.
    Eof,
}

/// Reads CR LF (or bare LF) terminated lines with a length limit, without
/// buffering more than `limit` bytes per line whatever the peer sends.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    limit: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// Wraps a reader; `limit` is the longest accepted line in bytes.
    pub fn new(inner: R, limit: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::with_capacity(512),
            start: 0,
            limit,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The wrapped stream, mutably (to write replies on it).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Bytes read but not yet returned as lines (a client that pipelines
    /// after `AUTH TLS` or `CCC` has some: they must not cross the switch).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Reads the next line, lossily decoded as UTF-8. Cancel-safe: bytes
    /// already read stay buffered.
    pub async fn next_line(&mut self) -> std::io::Result<Line> {
        Ok(match self.next_raw().await? {
            RawLine::Bytes(b) => Line::Text(String::from_utf8_lossy(&b).into_owned()),
            RawLine::TooLong => Line::TooLong,
            RawLine::Eof => Line::Eof,
        })
    }

    /// Reads the next line as bytes (file names need not be UTF-8, RFC
    /// 2640). Cancel-safe: bytes already read stay buffered.
    pub async fn next_raw(&mut self) -> std::io::Result<RawLine> {
        let mut discarding = false;
        loop {
            if let Some(pos) = self.buf[self.start..].iter().position(|b| *b == b'\n') {
                let end = self.start + pos;
                let line = &self.buf[self.start..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
                self.start = end + 1;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                if discarding || line.len() > self.limit {
                    return Ok(RawLine::TooLong);
                }
                return Ok(RawLine::Bytes(line));
            }
            if self.buf.len() - self.start > self.limit {
                // Too long: forget what we have, remember to report it at the newline.
                discarding = true;
                self.buf.clear();
                self.start = 0;
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let mut chunk = [0u8; 1024];
            let n = self.inner.read(&mut chunk).await?;
            if n == 0 {
                return Ok(RawLine::Eof);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_lines_and_limits_length() {
        let input: &[u8] = b"USER a\r\nPASS b\n";
        let mut r = LineReader::new(input, 16);
        assert_eq!(r.next_line().await.unwrap(), Line::Text("USER a".into()));
        assert_eq!(r.next_line().await.unwrap(), Line::Text("PASS b".into()));
        assert_eq!(r.next_line().await.unwrap(), Line::Eof);

        let long = format!("NOOP {}\r\nPWD\r\n", "x".repeat(5000));
        let mut r = LineReader::new(long.as_bytes(), 100);
        assert_eq!(r.next_line().await.unwrap(), Line::TooLong);
        assert_eq!(r.next_line().await.unwrap(), Line::Text("PWD".into()));
    }

    #[tokio::test]
    async fn non_utf8_is_decoded_lossily() {
        let input: &[u8] = b"RETR \xff\xfe.txt\r\n";
        let mut r = LineReader::new(input, 100);
        match r.next_line().await.unwrap() {
            Line::Text(t) => assert!(t.starts_with("RETR ")),
            other => panic!("unexpected {other:?}"),
        }
        let mut r = LineReader::new(input, 100);
        assert_eq!(
            r.next_raw().await.unwrap(),
            RawLine::Bytes(b"RETR \xff\xfe.txt".to_vec())
        );
    }
}
