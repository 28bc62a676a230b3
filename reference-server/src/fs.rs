//! A sandboxed view of the served tree.
//!
//! Virtual paths are `/`-rooted strings the client sees. [`Sandbox::resolve`]
//! normalises them lexically (`.` and `..` cannot climb above `/`), joins them
//! to the root, then canonicalises the deepest existing ancestor and checks it
//! is still under the root, so a symlink pointing outside is refused too.

use std::{
    io,
    path::{Component, Path, PathBuf},
};

/// Longest virtual path accepted, in bytes.
pub const MAX_PATH: usize = 4096;

/// The served tree.
#[derive(Debug, Clone)]
pub struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    /// `root` must be canonical (the config resolves it).
    pub fn new(root: PathBuf) -> Sandbox {
        Sandbox { root }
    }

    /// Joins `arg` to the current virtual directory and normalises it.
    pub fn virtual_path(cwd: &str, arg: &str) -> String {
        let joined = if arg.starts_with('/') {
            arg.to_string()
        } else {
            format!("{cwd}/{arg}")
        };
        let mut parts: Vec<&str> = Vec::new();
        for part in joined.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        format!("/{}", parts.join("/"))
    }

    /// The real path for a virtual path, or `PermissionDenied` if it would
    /// leave the root (via symlinks) or is too long, or contains NUL.
    pub fn resolve(&self, virt: &str) -> io::Result<PathBuf> {
        if virt.len() > MAX_PATH || virt.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path too long or invalid",
            ));
        }
        let mut real = self.root.clone();
        for c in Path::new(virt).components() {
            if let Component::Normal(p) = c {
                real.push(p);
            }
        }
        // Canonicalise the deepest existing ancestor (the leaf may not exist yet).
        let mut probe = real.as_path();
        loop {
            match probe.canonicalize() {
                Ok(canon) => {
                    if canon.starts_with(&self.root) {
                        return Ok(real);
                    }
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "outside the served tree",
                    ));
                }
                Err(_) => match probe.parent() {
                    Some(parent) => probe = parent,
                    None => {
                        return Err(io::Error::new(
                            io::ErrorKind::PermissionDenied,
                            "outside the served tree",
                        ))
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_paths_cannot_climb() {
        assert_eq!(
            Sandbox::virtual_path("/", "../../etc/passwd"),
            "/etc/passwd"
        );
        assert_eq!(Sandbox::virtual_path("/a/b", ".."), "/a");
        assert_eq!(Sandbox::virtual_path("/a", "/x/./y/../z"), "/x/z");
        assert_eq!(Sandbox::virtual_path("/", ""), "/");
    }

    #[test]
    fn symlink_outside_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let root = tempfile::tempdir().unwrap();
        let root_path = root.path().canonicalize().unwrap();
        std::os::unix::fs::symlink(outside.path(), root_path.join("link")).unwrap();
        std::fs::write(root_path.join("ok.txt"), "ok").unwrap();
        let sb = Sandbox::new(root_path.clone());
        assert_eq!(sb.resolve("/ok.txt").unwrap(), root_path.join("ok.txt"));
        assert_eq!(sb.resolve("/new.txt").unwrap(), root_path.join("new.txt"));
        assert_eq!(
            sb.resolve("/link/secret").unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert_eq!(
            sb.resolve("/link/new").unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert!(sb.resolve(&"/a".repeat(3000)).is_err());
        assert!(sb.resolve("/a\0b").is_err());
    }
}
