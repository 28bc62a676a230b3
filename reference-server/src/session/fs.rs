//! Navigation and file operations inside the sandbox: PWD, CWD, CDUP, DELE,
//! RMD, MKD, RNFR/RNTO, SIZE, MDTM (read, and set as ncftpput sends it),
//! MFMT; and how file-system errors are worded ([`describe`]: FTP's words,
//! never the OS's text).
//!
//! Paths are bytes end to end: the argument's bytes name the file, and a
//! 257 reply quotes the directory's bytes as they are (RFC 959: `"` doubled,
//! CR sent as CR NUL).

use std::{
    io,
    path::{Path, PathBuf},
    time::SystemTime,
};

use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

use super::{Flow, Handled, Session};
use crate::{
    fs::Sandbox,
    protocol::{command::shown, PathArg},
};

/// The reply code and wording for a file-system error.
pub(super) fn describe(e: &io::Error) -> (u16, &'static str) {
    if let Some(errno) = e.raw_os_error() {
        let known = match errno {
            libc::ENOENT => Some((550, "No such file or directory")),
            libc::EACCES | libc::EPERM => Some((550, "Permission denied")),
            libc::EEXIST => Some((550, "File exists")),
            libc::ENOTEMPTY => Some((550, "Directory not empty")),
            libc::ENOTDIR => Some((550, "Not a directory")),
            libc::EISDIR => Some((550, "Is a directory")),
            libc::ENAMETOOLONG => Some((553, "File name too long")),
            libc::EILSEQ => Some((553, "File name not allowed")),
            libc::ENOSPC => Some((452, "Insufficient storage space")),
            libc::EDQUOT => Some((552, "Disk quota exceeded")),
            libc::EFBIG => Some((552, "File too large")),
            libc::EROFS => Some((550, "Read-only file system")),
            libc::EXDEV => Some((550, "Cannot move across file systems")),
            libc::ELOOP => Some((550, "Too many levels of symbolic links")),
            libc::EBUSY | libc::ETXTBSY => Some((450, "File busy")),
            libc::ECONNREFUSED => Some((425, "Connection refused")),
            libc::ETIMEDOUT => Some((425, "Connection timed out")),
            libc::ECONNRESET => Some((426, "Connection reset by peer")),
            libc::EPIPE | libc::ECONNABORTED => Some((426, "Connection closed")),
            libc::EHOSTUNREACH => Some((425, "No route to host")),
            libc::ENETUNREACH => Some((425, "Network is unreachable")),
            _ => None,
        };
        if let Some(k) = known {
            return k;
        }
    }
    match e.kind() {
        io::ErrorKind::NotFound => (550, "No such file or directory"),
        io::ErrorKind::PermissionDenied => (550, "Permission denied"),
        io::ErrorKind::InvalidInput => (553, "File name not allowed"),
        _ => (451, "Local error in processing"),
    }
}

/// `YYYYMMDDHHMMSS[.sss]` (UTC, RFC 3659 `time-val`) as a time.
pub(super) fn parse_time_val(s: &str) -> Option<SystemTime> {
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{f:0<9}").parse::<u32>().ok()?
        }
        Some(_) => return None,
    };
    let t = chrono::NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S").ok()?;
    let t = t.and_utc().timestamp();
    let t = u64::try_from(t).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::new(t, nanos))
}

/// A time as `YYYYMMDDHHMMSS` (UTC).
pub(super) fn format_time_val(t: SystemTime) -> String {
    let t: chrono::DateTime<chrono::Utc> = t.into();
    t.format("%Y%m%d%H%M%S").to_string()
}

/// Splits `MDTM`'s set form, `YYYYMMDDHHMMSS[.sss] path`.
fn split_time_arg(arg: &[u8]) -> Option<(SystemTime, &[u8])> {
    let sp = arg.iter().position(|b| *b == b' ')?;
    let time = std::str::from_utf8(&arg[..sp]).ok()?;
    let path = &arg[sp + 1..];
    (!path.is_empty()).then_some(())?;
    Some((parse_time_val(time)?, path))
}

/// A 257 reply line: `257 "<path>" <text>` with the path's bytes quoted.
fn reply_257(path: &[u8], text: &str) -> Vec<u8> {
    let mut out = b"257 \"".to_vec();
    for &b in path {
        match b {
            b'"' => out.extend_from_slice(b"\"\""),
            b'\r' => out.extend_from_slice(b"\r\0"),
            b'\n' => out.push(0),
            b => out.push(b),
        }
    }
    out.extend_from_slice(b"\" ");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

impl Session {
    /// Sends a 257 reply naming `path` exactly.
    async fn send_257(&mut self, path: &[u8], text: &str) -> Handled {
        let w = self.reader.get_mut();
        w.write_all(&reply_257(path, text)).await?;
        w.flush().await?;
        Ok(Flow::Continue)
    }

    pub(super) async fn cmd_pwd(&mut self) -> Handled {
        let cwd = self.cwd.clone();
        self.send_257(&cwd, "is the current directory").await
    }

    /// The virtual path of `arg` relative to the current directory.
    pub(super) fn virt(&self, arg: &[u8]) -> Vec<u8> {
        Sandbox::virtual_path(&self.cwd, arg)
    }

    /// The real path of `arg` (relative to the current directory), which
    /// must exist (a dangling symlink counts).
    pub(super) fn resolve_existing(&self, arg: &[u8]) -> io::Result<PathBuf> {
        let path = self.sandbox.resolve(&self.virt(arg))?;
        std::fs::symlink_metadata(&path)?;
        Ok(path)
    }

    pub(super) async fn cmd_cwd(&mut self, arg: &[u8]) -> Handled {
        let virt = self.virt(arg);
        match self.sandbox.resolve(&virt).and_then(std::fs::metadata) {
            Ok(m) if m.is_dir() => {
                self.cwd = virt;
                self.ok(250, "CWD command successful").await
            }
            Ok(_) => {
                self.ok(550, format!("{}: Not a directory", shown(arg)))
                    .await
            }
            Err(e) => self.fs_error(arg, e).await,
        }
    }

    /// Answers a file-system error in FTP's words (the OS's text is logged).
    pub(super) async fn fs_error(&mut self, arg: &[u8], e: io::Error) -> Handled {
        let (code, why) = describe(&e);
        if code == 451 {
            warn!(path = %shown(arg), error = %e, "file-system error");
        }
        self.ok(code, format!("{}: {why}", shown(arg))).await
    }

    /// Refuses a write by an anonymous user unless `anonymous_upload`.
    pub(super) fn may_write(&self) -> bool {
        self.cfg.anonymous_upload || !self.user.as_deref().is_some_and(super::is_anonymous)
    }

    /// Runs a file-system operation on the real path of `arg` (never on the
    /// root itself) and answers `code text` or the error.
    async fn simple_fs(
        &mut self,
        arg: &[u8],
        code: u16,
        text: &str,
        op: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Handled {
        let virt = self.virt(arg);
        if virt == b"/" {
            return self
                .fs_error(arg, io::Error::from(io::ErrorKind::PermissionDenied))
                .await;
        }
        match self.sandbox.resolve(&virt).and_then(|p| op(&p)) {
            Ok(()) => self.ok(code, text.to_string()).await,
            Err(e) => self.fs_error(arg, e).await,
        }
    }

    pub(super) async fn cmd_dele(&mut self, p: PathArg) -> Handled {
        self.simple_fs(&p.0, 250, "DELE command successful", |path| {
            std::fs::remove_file(path)
        })
        .await
    }

    pub(super) async fn cmd_rmd(&mut self, p: PathArg) -> Handled {
        self.simple_fs(&p.0, 250, "RMD command successful", |path| {
            std::fs::remove_dir(path)
        })
        .await
    }

    pub(super) async fn cmd_mkd(&mut self, p: PathArg) -> Handled {
        let virt = self.virt(&p.0);
        if virt == b"/" {
            return self
                .fs_error(&p.0, io::Error::from_raw_os_error(libc::EEXIST))
                .await;
        }
        match self.sandbox.resolve(&virt).and_then(std::fs::create_dir) {
            Ok(()) => {
                self.send_257(&virt, "- Directory successfully created")
                    .await
            }
            Err(e) => self.fs_error(&p.0, e).await,
        }
    }

    pub(super) async fn cmd_rnfr(&mut self, p: PathArg) -> Handled {
        if self.virt(&p.0) == b"/" {
            return self
                .fs_error(&p.0, io::Error::from(io::ErrorKind::PermissionDenied))
                .await;
        }
        match self.resolve_existing(&p.0) {
            Ok(path) => {
                self.rnfr = Some(path);
                self.ok(350, "File or directory exists, ready for destination name")
                    .await
            }
            Err(e) => self.fs_error(&p.0, e).await,
        }
    }

    pub(super) async fn cmd_rnto(&mut self, p: PathArg) -> Handled {
        match self.rnfr.take() {
            None => self.ok(503, "Bad sequence of commands: RNFR first").await,
            Some(from) => {
                self.simple_fs(&p.0, 250, "Rename successful", move |to| {
                    std::fs::rename(&from, to)
                })
                .await
            }
        }
    }

    pub(super) async fn cmd_size(&mut self, p: PathArg) -> Handled {
        match self.resolve_existing(&p.0).and_then(std::fs::metadata) {
            Ok(m) if m.is_file() => self.ok(213, m.len().to_string()).await,
            Ok(_) => {
                self.ok(550, format!("{}: not a regular file", p.shown()))
                    .await
            }
            Err(e) => self.fs_error(&p.0, e).await,
        }
    }

    /// `MDTM path` reads the time; `MDTM YYYYMMDDHHMMSS path` sets it (the
    /// form ncftpput and others send) unless the whole argument names an
    /// existing file.
    pub(super) async fn cmd_mdtm(&mut self, p: PathArg) -> Handled {
        if let Some((time, path)) = split_time_arg(&p.0) {
            if self.resolve_existing(&p.0).is_err() {
                let path = PathArg(path.to_vec());
                return self.set_mtime(path, time).await;
            }
        }
        match self.resolve_existing(&p.0).and_then(std::fs::metadata) {
            Ok(m) => {
                let t = m.modified().unwrap_or(std::time::UNIX_EPOCH);
                self.ok(213, format_time_val(t)).await
            }
            Err(e) => self.fs_error(&p.0, e).await,
        }
    }

    /// `MFMT YYYYMMDDHHMMSS[.sss] path` (draft-somers-ftp-mfxx).
    pub(super) async fn cmd_mfmt(&mut self, p: PathArg) -> Handled {
        match split_time_arg(&p.0) {
            Some((time, path)) => self.set_mtime(PathArg(path.to_vec()), time).await,
            None => {
                self.ok(501, "MFMT needs YYYYMMDDHHMMSS[.sss] and a path")
                    .await
            }
        }
    }

    async fn set_mtime(&mut self, p: PathArg, time: SystemTime) -> Handled {
        if !self.may_write() {
            info!("anonymous write refused (anonymous_upload = false)");
            return self
                .ok(550, format!("{}: Permission denied", p.shown()))
                .await;
        }
        let set = self
            .resolve_existing(&p.0)
            .and_then(std::fs::File::open)
            .and_then(|f| f.set_modified(time));
        match set {
            Ok(()) => {
                let text = format!("Modify={}; {}", format_time_val(time), p.shown());
                self.ok(213, text).await
            }
            Err(e) => self.fs_error(&p.0, e).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(libc::ENAMETOOLONG, 553, "File name too long")]
    #[case(libc::EEXIST, 550, "File exists")]
    #[case(libc::ENOTEMPTY, 550, "Directory not empty")]
    #[case(libc::ENOSPC, 452, "Insufficient storage space")]
    #[case(libc::EDQUOT, 552, "Disk quota exceeded")]
    #[case(libc::EIO, 451, "Local error in processing")]
    fn os_errors_get_ftp_words(#[case] errno: i32, #[case] code: u16, #[case] text: &str) {
        assert_eq!(describe(&io::Error::from_raw_os_error(errno)), (code, text));
    }

    #[test]
    fn time_vals() {
        let t = parse_time_val("20010203040506").unwrap();
        assert_eq!(format_time_val(t), "20010203040506");
        let t = parse_time_val("20010203040506.5").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
            500_000_000
        );
        for bad in [
            "2001",
            "20011303040506",
            "2001020304050x",
            "20010203040506.",
            "x",
        ] {
            assert!(parse_time_val(bad).is_none(), "{bad}");
        }
        assert_eq!(
            split_time_arg(b"20010203040506 a b").map(|(_, p)| p),
            Some(&b"a b"[..])
        );
        assert!(split_time_arg(b"hello.txt").is_none());
    }

    #[test]
    fn quotes_in_257() {
        assert_eq!(
            reply_257(b"/a\"b\xe9", "x"),
            b"257 \"/a\"\"b\xe9\" x\r\n".to_vec()
        );
    }
}
