//! A sandboxed view of the served tree.
//!
//! Virtual paths are `/`-rooted byte strings the client sees — bytes, not
//! text, so a name that is not UTF-8 reaches exactly the file it names.
//! [`Sandbox::resolve`] normalises them lexically (`.` and `..` cannot climb
//! above `/`), joins them to the root, then canonicalises the deepest
//! existing ancestor and checks it is still under the root, so a symlink
//! pointing outside is refused too. A NUL byte or an over-long path is
//! refused (`InvalidInput`), a name over 255 bytes gets `ENAMETOOLONG`
//! before any system call sees it.

use std::{
    ffi::OsStr,
    io,
    os::unix::ffi::OsStrExt,
    path::{Component, Path, PathBuf},
};

/// Longest virtual path accepted, in bytes.
pub const MAX_PATH: usize = 4096;

/// Longest name of one path component, in bytes (Linux `NAME_MAX`).
pub const MAX_NAME: usize = 255;

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

    /// The served tree's real path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Joins `arg` to the current virtual directory and normalises it.
    pub fn virtual_path(cwd: &[u8], arg: &[u8]) -> Vec<u8> {
        let mut parts: Vec<&[u8]> = Vec::new();
        let base: &[u8] = if arg.starts_with(b"/") { b"" } else { cwd };
        for part in base.split(|b| *b == b'/').chain(arg.split(|b| *b == b'/')) {
            match part {
                b"" | b"." => {}
                b".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        let mut out = Vec::with_capacity(cwd.len() + arg.len() + 1);
        for p in &parts {
            out.push(b'/');
            out.extend_from_slice(p);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        out
    }

    /// The real path for a virtual path: `PermissionDenied` if it would
    /// leave the root (via symlinks), `InvalidInput` if it is too long or
    /// contains NUL, `ENAMETOOLONG` for a component over [`MAX_NAME`].
    pub fn resolve(&self, virt: &[u8]) -> io::Result<PathBuf> {
        if virt.len() > MAX_PATH || virt.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path too long or invalid",
            ));
        }
        if virt.split(|b| *b == b'/').any(|c| c.len() > MAX_NAME) {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        let mut real = self.root.clone();
        for c in Path::new(OsStr::from_bytes(virt)).components() {
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
        let v = |cwd: &[u8], arg: &[u8]| Sandbox::virtual_path(cwd, arg);
        assert_eq!(v(b"/", b"../../etc/passwd"), b"/etc/passwd");
        assert_eq!(v(b"/a/b", b".."), b"/a");
        assert_eq!(v(b"/a", b"/x/./y/../z"), b"/x/z");
        assert_eq!(v(b"/", b""), b"/");
        assert_eq!(v(b"/a", b"b/"), b"/a/b");
        // Bytes that are not UTF-8 stay as they are.
        assert_eq!(v(b"/\xe9", b"\xfft.txt"), b"/\xe9/\xfft.txt");
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
        assert_eq!(sb.resolve(b"/ok.txt").unwrap(), root_path.join("ok.txt"));
        assert_eq!(sb.resolve(b"/new.txt").unwrap(), root_path.join("new.txt"));
        assert_eq!(
            sb.resolve(b"/link/secret").unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert_eq!(
            sb.resolve(b"/link/new").unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert!(sb.resolve("/a".repeat(3000).as_bytes()).is_err());
        assert!(sb.resolve(b"/a\0b").is_err());
        let long = format!("/{}", "n".repeat(256));
        assert_eq!(
            sb.resolve(long.as_bytes()).unwrap_err().raw_os_error(),
            Some(libc::ENAMETOOLONG)
        );
        assert_eq!(
            sb.resolve(b"/caf\xe9").unwrap(),
            root_path.join(OsStr::from_bytes(b"caf\xe9"))
        );
    }
}
