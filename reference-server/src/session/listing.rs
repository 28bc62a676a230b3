//! Directory listings: LIST, NLST, MLSD and STAT with a path. Reading the
//! directory ([`entries`]) is apart from rendering ([`render`]), which is
//! pure.

use std::{io, path::Path};

use tokio::io::AsyncWriteExt;

use super::{Flow, Handled, Session};
use crate::{fs::Sandbox, protocol::Reply};

/// Which listing format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListKind {
    /// `LIST`: `ls -l` lines.
    Long,
    /// `NLST`: names only.
    Names,
    /// `MLSD`: RFC 3659 facts.
    Machine,
}

/// What a listing line shows of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// File name.
    pub name: String,
    /// A directory.
    pub dir: bool,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: chrono::DateTime<chrono::Utc>,
}

impl Session {
    pub(super) async fn cmd_list(&mut self, arg: Option<String>, kind: ListKind) -> Handled {
        // Ignore ls-style options ("-la") that many clients send.
        let arg = arg
            .map(|a| {
                a.split_whitespace()
                    .filter(|w| !w.starts_with('-'))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let virt = Sandbox::virtual_path(&self.cwd, &arg);
        let listing = match self.sandbox.resolve(&virt).and_then(|p| entries(&p)) {
            Ok(l) => render(&l, kind),
            Err(e) => return self.fs_error(&arg, e).await,
        };
        let what = if arg.is_empty() { virt } else { arg };
        self.transfer(&format!("file list {what}"), move |mut stream| async move {
            stream.write_all(listing.as_bytes()).await?;
            stream.shutdown().await?;
            Ok(listing.len() as u64)
        })
        .await
    }

    pub(super) async fn cmd_stat_path(&mut self, arg: String) -> Handled {
        let virt = Sandbox::virtual_path(&self.cwd, &arg);
        match self.sandbox.resolve(&virt).and_then(|p| entries(&p)) {
            Ok(l) => {
                let l = render(&l, ListKind::Long);
                let mut lines = vec![format!("Status of {arg}:")];
                lines.extend(l.lines().map(|s| s.to_string()));
                lines.push("End of status".into());
                self.send(Reply::multi(213, lines)).await?;
                Ok(Flow::Continue)
            }
            Err(e) => self.fs_error(&arg, e).await,
        }
    }
}

/// The entries of a directory (without unfinished uploads), or the file
/// itself, sorted by name.
fn entries(path: &Path) -> io::Result<Vec<Entry>> {
    let entry = |name: String, m: std::fs::Metadata| Entry {
        name,
        dir: m.is_dir(),
        size: m.len(),
        mtime: m.modified().unwrap_or(std::time::UNIX_EPOCH).into(),
    };
    let meta = std::fs::metadata(path)?;
    let mut out: Vec<Entry> = if meta.is_dir() {
        std::fs::read_dir(path)?
            .filter_map(Result::ok)
            .filter_map(|e| {
                Some(entry(
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().ok()?,
                ))
            })
            .filter(|e| !e.name.contains(".ftpnat-upload-"))
            .collect()
    } else {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        vec![entry(name, meta)]
    };
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Renders entries, one CR LF terminated line each.
fn render(entries: &[Entry], kind: ListKind) -> String {
    let mut out = String::new();
    for e in entries {
        let name = &e.name;
        match kind {
            ListKind::Names => out.push_str(&format!("{name}\r\n")),
            ListKind::Long => {
                let ty = if e.dir { 'd' } else { '-' };
                out.push_str(&format!(
                    "{ty}rw-r--r--   1 ftp      ftp      {:>10} {} {name}\r\n",
                    e.size,
                    e.mtime.format("%b %d %H:%M")
                ));
            }
            ListKind::Machine => {
                let ty = if e.dir { "dir" } else { "file" };
                out.push_str(&format!(
                    "type={ty};size={};modify={}; {name}\r\n",
                    e.size,
                    e.mtime.format("%Y%m%d%H%M%S")
                ));
            }
        }
    }
    out
}
