//! What ships inside the binary: the conformance suite, the server
//! profiles, the example rule sets, the probes and the `command` server
//! templates — the repository's `scenarios/` folder, embedded at build
//! time, so an installed `ftpnat` runs from any directory.
//!
//! `ftpnat run` without paths uses `./scenarios/conformance` when the
//! current folder has one (this repository, or a suite exported with
//! `ftpnat suite export scenarios` and edited), else the embedded copy,
//! written once to a per-user cache folder keyed by its content hash (the
//! scenario loader and its error messages work on real files).

use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir, DirEntry};
use sha2::Digest;

/// The repository's `scenarios/` folder as it was at build time.
static SCENARIOS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../scenarios");

/// The conformance suite's folder below `scenarios/`.
pub const CONFORMANCE: &str = "conformance";

/// Every embedded file: its path below `scenarios/` and its bytes, sorted.
pub fn files() -> Vec<(&'static Path, &'static [u8])> {
    fn walk(d: &'static Dir<'static>, out: &mut Vec<(&'static Path, &'static [u8])>) {
        for e in d.entries() {
            match e {
                DirEntry::Dir(d) => walk(d, out),
                DirEntry::File(f) => out.push((f.path(), f.contents())),
            }
        }
    }
    let mut out = Vec::new();
    walk(&SCENARIOS, &mut out);
    out.sort();
    out
}

/// A short hash of the embedded files (names and contents).
pub fn digest() -> String {
    let mut h = sha2::Sha256::new();
    for (p, b) in files() {
        h.update(p.to_string_lossy().as_bytes());
        h.update([0]);
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    }
    crate::client::hex(&h.finalize()[..6])
}

/// What [`export`] wrote.
#[derive(Debug, Default)]
pub struct Exported {
    /// Files written.
    pub written: Vec<PathBuf>,
    /// Files left alone: they exist with other content (kept unless `force`).
    pub kept: Vec<PathBuf>,
}

/// Writes the embedded files below `dest` (`dest/conformance/…`,
/// `dest/profiles/…`, …). A file that exists with other content is kept
/// (the user's edit) unless `force`.
pub fn export(dest: &Path, force: bool) -> std::io::Result<Exported> {
    let mut out = Exported::default();
    for (rel, bytes) in files() {
        let path = dest.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", parent.display())))?;
        }
        match std::fs::read(&path) {
            Ok(old) if old == bytes => continue,
            Ok(_) if !force => {
                out.kept.push(path);
                continue;
            }
            _ => {}
        }
        std::fs::write(&path, bytes)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        out.written.push(path);
    }
    Ok(out)
}

/// The embedded `scenarios/` written to the per-user cache
/// (`…/ftpnat/suite-<version>-<hash>`), once; later calls find it there.
/// Written to a scratch folder first and renamed, so concurrent runs never
/// see half a suite.
pub fn unpacked() -> std::io::Result<PathBuf> {
    let base = crate::peers::user_cache().join("ftpnat");
    let dest = base.join(format!("suite-{}-{}", env!("CARGO_PKG_VERSION"), digest()));
    if dest.join(CONFORMANCE).is_dir() {
        return Ok(dest);
    }
    std::fs::create_dir_all(&base)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", base.display())))?;
    let scratch = tempfile::Builder::new()
        .prefix(".suite-")
        .tempdir_in(&base)?;
    export(scratch.path(), true)?;
    let scratch = scratch.keep();
    if let Err(e) = std::fs::rename(&scratch, &dest) {
        let _ = std::fs::remove_dir_all(&scratch);
        // Another run renamed its copy first: use that one.
        if !dest.join(CONFORMANCE).is_dir() {
            return Err(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", dest.display()),
            ));
        }
    }
    Ok(dest)
}

/// Where `ftpnat run` finds the conformance suite when given no path:
/// `./scenarios/conformance` if present, else the embedded copy.
pub fn default_conformance() -> std::io::Result<PathBuf> {
    let local = Path::new("scenarios").join(CONFORMANCE);
    if local.is_dir() {
        return Ok(local);
    }
    Ok(unpacked()?.join(CONFORMANCE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_suite_is_the_repository_folder() {
        let on_disk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let files = files();
        assert!(files.len() > 60, "{}", files.len());
        for (rel, bytes) in &files {
            assert_eq!(
                std::fs::read(on_disk.join(rel)).unwrap(),
                *bytes,
                "{} differs from the repository's copy",
                rel.display()
            );
        }
        let conformance = files
            .iter()
            .filter(|(p, _)| p.starts_with(CONFORMANCE))
            .count();
        let in_repo = std::fs::read_dir(on_disk.join(CONFORMANCE))
            .unwrap()
            .count();
        assert_eq!(conformance, in_repo);
        assert!(files
            .iter()
            .any(|(p, _)| p == &Path::new("profiles/vsftpd.toml")));
    }

    #[test]
    fn export_keeps_edits_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let first = export(dir.path(), false).unwrap();
        assert_eq!(first.written.len(), files().len());
        let edited = dir.path().join("conformance/pasv-format-227.toml");
        std::fs::write(&edited, "# mine\n").unwrap();
        let again = export(dir.path(), false).unwrap();
        assert!(again.written.is_empty(), "{:?}", again.written);
        assert_eq!(again.kept, vec![edited.clone()]);
        assert_eq!(std::fs::read_to_string(&edited).unwrap(), "# mine\n");
        let forced = export(dir.path(), true).unwrap();
        assert_eq!(forced.written, vec![edited.clone()]);
        assert_ne!(std::fs::read_to_string(&edited).unwrap(), "# mine\n");
    }
}
