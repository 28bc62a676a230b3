//! Navigation and file operations inside the sandbox: PWD, CWD, CDUP, DELE,
//! RMD, MKD, RNFR/RNTO, SIZE, MDTM; and how file-system errors are worded.

use std::{
    io,
    path::{Path, PathBuf},
};

use super::{Handled, Session};
use crate::fs::Sandbox;

impl Session {
    pub(super) async fn cmd_pwd(&mut self) -> Handled {
        let q = self.cwd.replace('"', "\"\"");
        self.ok(257, format!("\"{q}\" is the current directory"))
            .await
    }

    /// The real path of `arg` (relative to the current directory), which
    /// must exist (a dangling symlink counts).
    pub(super) fn resolve_existing(&self, arg: &str) -> io::Result<PathBuf> {
        let virt = Sandbox::virtual_path(&self.cwd, arg);
        let path = self.sandbox.resolve(&virt)?;
        std::fs::symlink_metadata(&path)?;
        Ok(path)
    }

    pub(super) async fn cmd_cwd(&mut self, arg: &str) -> Handled {
        let virt = Sandbox::virtual_path(&self.cwd, arg);
        match self.sandbox.resolve(&virt).and_then(std::fs::metadata) {
            Ok(m) if m.is_dir() => {
                self.cwd = virt;
                self.ok(250, "CWD command successful").await
            }
            Ok(_) => self.ok(550, format!("{arg}: Not a directory")).await,
            Err(e) => self.fs_error(arg, e).await,
        }
    }

    pub(super) async fn fs_error(&mut self, arg: &str, e: io::Error) -> Handled {
        let arg: String = arg.chars().take(256).collect();
        let why = match e.kind() {
            io::ErrorKind::NotFound => "No such file or directory".to_string(),
            io::ErrorKind::PermissionDenied => "Permission denied".to_string(),
            _ => e.to_string(),
        };
        self.ok(550, format!("{arg}: {why}")).await
    }

    /// Runs a file-system operation on the real path of `arg` (never on the
    /// root itself) and answers `code text` or the error.
    async fn simple_fs(
        &mut self,
        arg: &str,
        code: u16,
        text: &str,
        op: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Handled {
        let virt = Sandbox::virtual_path(&self.cwd, arg);
        if virt == "/" {
            return self
                .fs_error(arg, io::Error::from(io::ErrorKind::PermissionDenied))
                .await;
        }
        match self.sandbox.resolve(&virt).and_then(|p| op(&p)) {
            Ok(()) => self.ok(code, text.to_string()).await,
            Err(e) => self.fs_error(arg, e).await,
        }
    }

    pub(super) async fn cmd_dele(&mut self, p: String) -> Handled {
        self.simple_fs(&p, 250, "DELE command successful", |path| {
            std::fs::remove_file(path)
        })
        .await
    }

    pub(super) async fn cmd_rmd(&mut self, p: String) -> Handled {
        self.simple_fs(&p, 250, "RMD command successful", |path| {
            std::fs::remove_dir(path)
        })
        .await
    }

    pub(super) async fn cmd_mkd(&mut self, p: String) -> Handled {
        let virt = Sandbox::virtual_path(&self.cwd, &p);
        let q = virt.replace('"', "\"\"");
        self.simple_fs(
            &p,
            257,
            &format!("\"{q}\" - Directory successfully created"),
            |path| std::fs::create_dir(path),
        )
        .await
    }

    pub(super) async fn cmd_rnfr(&mut self, p: String) -> Handled {
        match self.resolve_existing(&p) {
            Ok(path) => {
                self.rnfr = Some(path);
                self.ok(350, "File or directory exists, ready for destination name")
                    .await
            }
            Err(e) => self.fs_error(&p, e).await,
        }
    }

    pub(super) async fn cmd_rnto(&mut self, p: String) -> Handled {
        match self.rnfr.take() {
            None => self.ok(503, "Bad sequence of commands: RNFR first").await,
            Some(from) => {
                self.simple_fs(&p, 250, "Rename successful", move |to| {
                    std::fs::rename(&from, to)
                })
                .await
            }
        }
    }

    pub(super) async fn cmd_size(&mut self, p: String) -> Handled {
        match self.resolve_existing(&p).and_then(std::fs::metadata) {
            Ok(m) if m.is_file() => self.ok(213, m.len().to_string()).await,
            Ok(_) => self.ok(550, format!("{p}: not a regular file")).await,
            Err(e) => self.fs_error(&p, e).await,
        }
    }

    pub(super) async fn cmd_mdtm(&mut self, p: String) -> Handled {
        match self.resolve_existing(&p).and_then(std::fs::metadata) {
            Ok(m) => {
                let t: chrono::DateTime<chrono::Utc> =
                    m.modified().unwrap_or(std::time::UNIX_EPOCH).into();
                self.ok(213, t.format("%Y%m%d%H%M%S").to_string()).await
            }
            Err(e) => self.fs_error(&p, e).await,
        }
    }
}
