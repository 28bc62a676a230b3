//! Paths a scenario names stay inside the folder they belong to.
//!
//! A scenario file may come from a pull request and run as root in CI, so a
//! name it gives (a served file, a rule set) is checked at `check` time by
//! [`relative_name`] — relative, no `..`, `.` or empty components, no NUL —
//! and every file the runner creates or reads for it is opened one
//! component at a time with `openat(…, O_NOFOLLOW)` from a directory file
//! descriptor ([`Confined`]): no symbolic link and no `..` is ever followed,
//! whatever appears in the folder after the check.

use std::{
    fs::File,
    io::{self, Read, Write},
    os::fd::{AsFd, OwnedFd},
    path::{Component, Path},
};

use nix::{
    fcntl::{openat, OFlag},
    sys::stat::{mkdirat, Mode},
};

/// Longest name a scenario may give (bytes).
pub const MAX_NAME: usize = 1024;
/// Deepest folder nesting a name may have.
pub const MAX_DEPTH: usize = 16;

/// Checks that `name` stays beneath the folder it is taken relative to:
/// relative, no `..`/`.`/empty components, no NUL, at most [`MAX_DEPTH`]
/// components and [`MAX_NAME`] bytes. `Err` says what is wrong.
pub fn relative_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an empty path".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "a path of {} bytes (at most {MAX_NAME})",
            name.len()
        ));
    }
    if name.contains('\0') {
        return Err(format!("{name:?} contains a NUL byte"));
    }
    if name.starts_with('/') {
        return Err(format!(
            "{name:?} is absolute: paths are relative to the scenario's own folder"
        ));
    }
    // `Path::components` drops "." and repeated slashes silently: look at
    // the raw parts.
    let parts: Vec<&str> = name.split('/').collect();
    for p in &parts {
        match *p {
            ".." => return Err(format!("{name:?} leaves its folder (`..`)")),
            "." | "" => {
                return Err(format!(
                    "{name:?} has an empty or `.` component: write the plain relative path"
                ))
            }
            _ => {}
        }
    }
    if parts.len() > MAX_DEPTH {
        return Err(format!(
            "{name:?} is {} folders deep (at most {MAX_DEPTH})",
            parts.len()
        ));
    }
    debug_assert!(Path::new(name)
        .components()
        .all(|c| matches!(c, Component::Normal(_))));
    Ok(())
}

/// A folder whose descendants are reached without following links.
#[derive(Debug)]
pub struct Confined {
    fd: OwnedFd,
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn io_err(e: nix::errno::Errno, what: &str) -> io::Error {
    io::Error::new(io::Error::from(e).kind(), format!("{what}: {e}"))
}

impl Confined {
    /// Opens `dir` (which the caller made or chose; it may be reached
    /// through links).
    pub fn open(dir: &Path) -> io::Result<Confined> {
        let fd = nix::fcntl::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(e, &dir.display().to_string()))?;
        Ok(Confined { fd })
    }

    /// Walks the folders of `name` (all but the last component), creating
    /// them when `create` is set; returns the parent's descriptor and the
    /// last component.
    fn parent<'n>(&self, name: &'n str, create: bool) -> io::Result<(OwnedFd, &'n str)> {
        relative_name(name).map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
        let mut parts: Vec<&str> = name.split('/').collect();
        let last = parts.pop().unwrap_or_default();
        let mut cur = self.fd.try_clone()?;
        for p in parts {
            if create {
                match mkdirat(cur.as_fd(), p, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(io_err(e, name)),
                }
            }
            cur = openat(cur.as_fd(), p, dir_flags(), Mode::empty()).map_err(|e| {
                if e == nix::errno::Errno::ELOOP || e == nix::errno::Errno::ENOTDIR {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{name}: {p:?} is a link or not a folder (links are not followed)"),
                    )
                } else {
                    io_err(e, name)
                }
            })?;
        }
        Ok((cur, last))
    }

    /// Creates `name` (and its folders) beneath this folder; fails if it
    /// exists or any component is a link.
    pub fn create(&self, name: &str) -> io::Result<File> {
        let (dir, last) = self.parent(name, true)?;
        let fd = openat(
            dir.as_fd(),
            last,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(|e| io_err(e, name))?;
        Ok(File::from(fd))
    }

    /// Reads `name` beneath this folder without following links, at most
    /// `limit` bytes.
    pub fn read_to_string(&self, name: &str, limit: u64) -> io::Result<String> {
        let (dir, last) = self.parent(name, false)?;
        let fd = openat(
            dir.as_fd(),
            last,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            if e == nix::errno::Errno::ELOOP {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{name} is a link (links are not followed)"),
                )
            } else {
                io_err(e, name)
            }
        })?;
        let f = File::from(fd);
        if !f.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} is not a regular file"),
            ));
        }
        let mut text = String::new();
        f.take(limit + 1).read_to_string(&mut text)?;
        if text.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name} is larger than {limit} bytes"),
            ));
        }
        Ok(text)
    }
}

/// Writes `size` deterministic pseudo-random bytes from `seed` to `out` in
/// fixed-size chunks (constant memory whatever the size). The bytes are
/// those of [`generated_bytes`] for the same size and seed.
pub fn write_generated(out: &mut impl Write, size: u64, seed: u64) -> io::Result<()> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// The bytes [`write_generated`] writes, in memory (for small sizes: tests
/// and digests of what a server serves).
pub fn generated_bytes(size: u64, seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(size.min(1 << 20) as usize);
    // Writing to a Vec cannot fail.
    let _ = write_generated(&mut v, size, seed);
    v
}

/// Free bytes for an unprivileged writer on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    let s = nix::sys::statvfs::statvfs(dir).map_err(|e| io_err(e, &dir.display().to_string()))?;
    Ok(s.blocks_available() as u64 * s.fragment_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            ".",
            "..",
            "a\0b",
        ] {
            assert!(relative_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "pub/file.bin", "..hidden", "a..b/c", ".profile"] {
            assert!(relative_name(good).is_ok(), "{good:?}");
        }
        let deep = vec!["d"; MAX_DEPTH + 1].join("/");
        assert!(relative_name(&deep).is_err());
    }

    #[test]
    fn links_are_never_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let run = root.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::os::unix::fs::symlink(outside.path(), run.join("out")).unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), run.join("s")).unwrap();
        let c = Confined::open(&run).unwrap();
        assert!(c.create("out/x").is_err());
        assert!(c.create("s").is_err());
        assert!(c.read_to_string("s", 10).is_err());
        assert!(c.read_to_string("out/secret", 10).is_err());
        assert!(c.create("../x").is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
        let mut f = c.create("pub/deep/file").unwrap();
        f.write_all(b"hi").unwrap();
        assert_eq!(c.read_to_string("pub/deep/file", 10).unwrap(), "hi");
        assert!(c.read_to_string("pub/deep/file", 1).is_err());
        assert!(c.create("pub/deep/file").is_err(), "no overwrite");
    }

    #[test]
    fn generated_bytes_stream_in_chunks_identically() {
        use rand::{RngCore, SeedableRng};
        // One fill of the whole buffer (what digests in scenarios were made with).
        let mut whole = vec![0u8; 200_003];
        rand::rngs::StdRng::seed_from_u64(7).fill_bytes(&mut whole);
        assert_eq!(generated_bytes(200_003, 7), whole);
        assert_ne!(generated_bytes(100, 7), generated_bytes(100, 8));
    }
}
