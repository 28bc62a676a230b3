//! Directory listings: LIST, NLST, MLSD, MLST and STAT with a path.
//! Reading the directory ([`entries`]) is apart from rendering
//! ([`render`], [`mode_string`], [`ls_time`], [`facts`]), which is pure.
//!
//! LIST lines are GNU `ls -l` lines from the real metadata: type and
//! permission bits (setuid/setgid/sticky included), link count, owner and
//! group names (numbers when the system has no name), size, and the time
//! in the two `ls` forms — `Mon dd HH:MM` within the last six months,
//! `Mon dd  YYYY` otherwise (and for times in the future) — in UTC. Names
//! are the bytes on disk. A symlink is shown as what it points to when that
//! is inside the served tree, and left out when it leads outside or
//! nowhere: the sandbox would refuse to follow it anyway.

use std::{
    collections::HashMap,
    io,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    time::SystemTime,
};

use tokio::io::AsyncWriteExt;

use super::{fs::format_time_val, Flow, Handled, Session};
use crate::{
    fs::Sandbox,
    protocol::{command::shown, PathArg, Reply},
};

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
    /// File name, the bytes on disk.
    pub name: Vec<u8>,
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    /// Hard links.
    pub nlink: u64,
    /// Owner name (or uid).
    pub owner: String,
    /// Group name (or gid).
    pub group: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: SystemTime,
}

impl Entry {
    fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
}

/// GNU ls's "six months" (half a Gregorian year), in seconds.
const SIX_MONTHS: i64 = 31_556_952 / 2;

/// `drwxr-xr-x` from `st_mode`.
pub(super) fn mode_string(mode: u32) -> String {
    let ty = match mode & libc::S_IFMT {
        libc::S_IFDIR => 'd',
        libc::S_IFLNK => 'l',
        libc::S_IFIFO => 'p',
        libc::S_IFSOCK => 's',
        libc::S_IFCHR => 'c',
        libc::S_IFBLK => 'b',
        _ => '-',
    };
    let bit = |m: u32, c: char| if mode & m != 0 { c } else { '-' };
    let special = |x: u32, s: u32, on: char| match (mode & x != 0, mode & s != 0) {
        (true, true) => on,
        (false, true) => on.to_ascii_uppercase(),
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        ty,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(0o100, 0o4000, 's'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(0o010, 0o2000, 's'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(0o001, 0o1000, 't'),
    ]
    .iter()
    .collect()
}

/// The `ls -l` date: `Mon dd HH:MM` if within six months before `now`,
/// else `Mon dd  YYYY` (UTC).
pub(super) fn ls_time(mtime: SystemTime, now: SystemTime) -> String {
    let t: chrono::DateTime<chrono::Utc> = mtime.into();
    let n: chrono::DateTime<chrono::Utc> = now.into();
    let age = n.timestamp() - t.timestamp();
    if (0..SIX_MONTHS).contains(&age) {
        t.format("%b %e %H:%M").to_string()
    } else {
        t.format("%b %e  %Y").to_string()
    }
}

/// RFC 3659 facts, `type=…;size=…;modify=…;perm=…;` and ProFTPD's
/// `UNIX.mode`, `UNIX.owner`, `UNIX.group` (lftp mirror takes local modes
/// from `UNIX.mode`, else guesses them from `perm`); `writable`: the session
/// may change things.
pub(super) fn facts(e: &Entry, writable: bool) -> String {
    let (ty, perm) = match (e.is_dir(), writable) {
        (true, true) => ("dir", "cdeflmp"),
        (true, false) => ("dir", "el"),
        (false, true) => ("file", "adfrw"),
        (false, false) => ("file", "r"),
    };
    format!(
        "type={ty};size={};modify={};perm={perm};UNIX.mode=0{:o};UNIX.owner={};UNIX.group={};",
        e.size,
        format_time_val(e.mtime),
        e.mode & 0o7777,
        e.owner,
        e.group
    )
}

/// Renders entries, one CR LF terminated line each, names as bytes.
pub(super) fn render(
    entries: &[Entry],
    kind: ListKind,
    now: SystemTime,
    writable: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        match kind {
            ListKind::Names => {}
            ListKind::Long => out.extend_from_slice(
                format!(
                    "{} {:>3} {:<8} {:<8} {:>8} {} ",
                    mode_string(e.mode),
                    e.nlink,
                    e.owner,
                    e.group,
                    e.size,
                    ls_time(e.mtime, now)
                )
                .as_bytes(),
            ),
            ListKind::Machine => {
                out.extend_from_slice(facts(e, writable).as_bytes());
                out.push(b' ');
            }
        }
        out.extend_from_slice(&e.name);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Owner and group names, looked up once per id.
#[derive(Default)]
struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    fn entry(&mut self, name: Vec<u8>, m: &std::fs::Metadata) -> Entry {
        let owner = self
            .users
            .entry(m.uid())
            .or_insert_with(|| {
                nix::unistd::User::from_uid(m.uid().into())
                    .ok()
                    .flatten()
                    .map_or_else(|| m.uid().to_string(), |u| u.name)
            })
            .clone();
        let group = self
            .groups
            .entry(m.gid())
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(m.gid().into())
                    .ok()
                    .flatten()
                    .map_or_else(|| m.gid().to_string(), |g| g.name)
            })
            .clone();
        Entry {
            name,
            mode: m.mode(),
            nlink: m.nlink(),
            owner,
            group,
            size: m.len(),
            mtime: m.modified().unwrap_or(std::time::UNIX_EPOCH),
        }
    }
}

/// The entries of the directory at virtual path `virt` (without unfinished
/// uploads, symlinks followed inside the tree and left out otherwise), or
/// the file itself, sorted by name.
fn entries(sandbox: &Sandbox, virt: &[u8]) -> io::Result<Vec<Entry>> {
    let path = sandbox.resolve(virt)?;
    let meta = std::fs::metadata(&path)?;
    let mut names = Names::default();
    if !meta.is_dir() {
        let name = path.file_name().map_or(&[][..], |n| n.as_bytes()).to_vec();
        return Ok(vec![names.entry(name, &meta)]);
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(&path)?.filter_map(Result::ok) {
        let name = e.file_name().as_bytes().to_vec();
        if name.windows(15).any(|w| w == b".ftpnat-upload-") {
            continue;
        }
        let Ok(mut m) = e.metadata() else { continue };
        if m.file_type().is_symlink() {
            let mut inner = virt.to_vec();
            inner.push(b'/');
            inner.extend_from_slice(&name);
            match sandbox.resolve(&inner).and_then(std::fs::metadata) {
                Ok(target) => m = target,
                Err(_) => continue,
            }
        }
        out.push(names.entry(name, &m));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Drops leading `ls` options (`-la`) that clients send with LIST.
fn without_ls_options(arg: &[u8]) -> &[u8] {
    let mut rest = arg;
    while rest.first() == Some(&b'-') {
        match rest.iter().position(|b| *b == b' ') {
            Some(i) => rest = &rest[i + 1..],
            None => return b"",
        }
        while rest.first() == Some(&b' ') {
            rest = &rest[1..];
        }
    }
    rest
}

impl Session {
    pub(super) async fn cmd_list(&mut self, arg: Option<PathArg>, kind: ListKind) -> Handled {
        let arg = arg.unwrap_or_default();
        let arg = without_ls_options(&arg.0).to_vec();
        let virt = self.virt(&arg);
        let writable = self.may_write();
        let listing = match entries(&self.sandbox, &virt) {
            Ok(l) => render(&l, kind, SystemTime::now(), writable),
            Err(e) => return self.fs_error(&arg, e).await,
        };
        let what = shown(if arg.is_empty() { &virt } else { &arg });
        self.transfer(&format!("file list {what}"), move |mut stream| async move {
            stream.write_all(&listing).await?;
            stream.shutdown().await?;
            Ok(listing.len() as u64)
        })
        .await
    }

    pub(super) async fn cmd_stat_path(&mut self, arg: PathArg) -> Handled {
        let virt = self.virt(&arg.0);
        match entries(&self.sandbox, &virt) {
            Ok(l) => {
                let text = render(&l, ListKind::Long, SystemTime::now(), false);
                let mut lines = vec![format!("Status of {}:", arg.shown())];
                lines.extend(String::from_utf8_lossy(&text).lines().map(str::to_string));
                lines.push("End of status".into());
                self.send(Reply::multi(213, lines)).await?;
                Ok(Flow::Continue)
            }
            Err(e) => self.fs_error(&arg.0, e).await,
        }
    }

    /// `MLST [path]`: the facts of one object on the control connection
    /// (RFC 3659 §7.2), its path as the virtual path.
    pub(super) async fn cmd_mlst(&mut self, arg: Option<PathArg>) -> Handled {
        let arg = arg.unwrap_or_default();
        let virt = self.virt(&arg.0);
        let entry = self
            .sandbox
            .resolve(&virt)
            .and_then(|p| std::fs::metadata(&p))
            .map(|m| Names::default().entry(virt.clone(), &m));
        match entry {
            Ok(e) => {
                let mut line = b" ".to_vec();
                line.extend_from_slice(facts(&e, self.may_write()).as_bytes());
                line.push(b' ');
                line.extend_from_slice(&virt);
                let mut wire = format!("250-Listing {}\r\n", shown(&virt)).into_bytes();
                wire.extend(line.iter().filter(|b| **b != b'\r' && **b != b'\n'));
                wire.extend_from_slice(b"\r\n250 End\r\n");
                let w = self.reader.get_mut();
                w.write_all(&wire).await?;
                w.flush().await?;
                Ok(Flow::Continue)
            }
            Err(e) => self.fs_error(&arg.0, e).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::time::Duration;

    #[rstest]
    #[case(libc::S_IFDIR | 0o755, "drwxr-xr-x")]
    #[case(libc::S_IFREG | 0o640, "-rw-r-----")]
    #[case(libc::S_IFREG | 0o4755, "-rwsr-xr-x")]
    #[case(libc::S_IFREG | 0o2644, "-rw-r-Sr--")]
    #[case(libc::S_IFDIR | 0o1777, "drwxrwxrwt")]
    #[case(libc::S_IFDIR | 0o1770, "drwxrwx--T")]
    #[case(libc::S_IFLNK | 0o777, "lrwxrwxrwx")]
    #[case(libc::S_IFIFO | 0o600, "prw-------")]
    fn modes(#[case] mode: u32, #[case] want: &str) {
        assert_eq!(mode_string(mode), want);
    }

    fn at(s: &str) -> SystemTime {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().into()
    }

    #[rstest]
    #[case("2024-06-01T10:00:00Z", "Jun  1 10:00")]
    #[case("2023-12-31T23:59:00Z", "Dec 31 23:59")]
    #[case("2023-12-01T00:00:00Z", "Dec  1  2023")]
    #[case("2024-07-01T12:00:01Z", "Jul  1  2024")] // in the future
    #[case("2001-02-03T04:05:06Z", "Feb  3  2001")]
    fn ls_dates(#[case] mtime: &str, #[case] want: &str) {
        assert_eq!(ls_time(at(mtime), at("2024-07-01T12:00:00Z")), want);
    }

    fn entry(name: &[u8], mode: u32, size: u64) -> Entry {
        Entry {
            name: name.to_vec(),
            mode,
            nlink: 1,
            owner: "ftp".into(),
            group: "nogroup".into(),
            size,
            mtime: SystemTime::UNIX_EPOCH + Duration::from_secs(981_173_106),
        }
    }

    #[test]
    fn renders_every_kind_with_the_names_bytes() {
        let es = [
            entry(b"caf\xe9.txt", libc::S_IFREG | 0o644, 5),
            entry(b"sub", libc::S_IFDIR | 0o755, 4096),
        ];
        let now = at("2024-07-01T12:00:00Z");
        assert_eq!(
            render(&es, ListKind::Long, now, false),
            b"-rw-r--r--   1 ftp      nogroup         5 Feb  3  2001 caf\xe9.txt\r\n\
drwxr-xr-x   1 ftp      nogroup      4096 Feb  3  2001 sub\r\n"
                .to_vec()
        );
        assert_eq!(
            render(&es, ListKind::Names, now, false),
            b"caf\xe9.txt\r\nsub\r\n".to_vec()
        );
        assert_eq!(
            render(&es, ListKind::Machine, now, true),
            b"type=file;size=5;modify=20010203040506;perm=adfrw;UNIX.mode=0644;UNIX.owner=ftp;UNIX.group=nogroup; caf\xe9.txt\r\n\
type=dir;size=4096;modify=20010203040506;perm=cdeflmp;UNIX.mode=0755;UNIX.owner=ftp;UNIX.group=nogroup; sub\r\n"
                .to_vec()
        );
    }

    #[rstest]
    #[case(b"-la", b"")]
    #[case(b"-la /pub", b"/pub")]
    #[case(b"-l -a  sub dir", b"sub dir")]
    #[case(b"sub", b"sub")]
    fn ls_options_are_dropped(#[case] arg: &[u8], #[case] want: &[u8]) {
        assert_eq!(without_ls_options(arg), want);
    }
}
