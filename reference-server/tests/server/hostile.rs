//! Issue 21: the reference server tried as a hostile client would, and on
//! the details real clients (lftp mirror, wget, ncftp, tnftp) depend on.
//! Each test sends bytes on the wire, checks the reply, the tree on disk
//! afterwards, and that the server still serves a new session.

use std::{os::unix::fs::PermissionsExt, time::Duration};

use crate::util::*;

const WRITABLE: &str = "anonymous_upload = true";

fn names(dir: &std::path::Path) -> Vec<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    v.sort();
    v
}

/// Item 2: a byte that is not UTF-8 is part of the name, never dropped:
/// `DELE \xfft.txt` must not delete `t.txt`, `MKD \xe9t\xe9` must not
/// create `t`, and a Latin-1 name on disk can be listed, fetched and
/// deleted with the bytes the listing shows.
#[tokio::test]
async fn non_utf8_bytes_in_paths_never_reach_another_file() {
    use std::os::unix::ffi::OsStrExt;
    let srv = TestServer::start(WRITABLE).await;
    std::fs::write(srv.path("t.txt"), b"keep me").unwrap();
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::write(srv.path(latin1), b"latin-1 name").unwrap();
    let mut c = srv.login().await;

    let r = c.cmd_bytes(b"DELE \xfft.txt").await.unwrap();
    assert_eq!(r.code, 550, "{r:?}");
    assert_eq!(std::fs::read(srv.path("t.txt")).unwrap(), b"keep me");

    let r = c.cmd_bytes(b"MKD \xe9t\xe9").await.unwrap();
    assert_eq!(r.code, 257, "{r:?}");
    assert!(!srv.path("t").exists(), "MKD created /t");
    assert!(srv.path(std::ffi::OsStr::from_bytes(b"\xe9t\xe9")).is_dir());

    // The listing carries the name's bytes as they are on disk…
    let t = c.transfer(DataMode::Pasv, "NLST", None).await.unwrap();
    assert!(
        t.data.split(|b| *b == b'\n').any(|l| l == b"caf\xe9.txt\r"),
        "{:?}",
        String::from_utf8_lossy(&t.data)
    );
    // …and those bytes fetch and delete it.
    let t = c
        .transfer_bytes(DataMode::Pasv, b"RETR caf\xe9.txt", None)
        .await
        .unwrap();
    assert_eq!((t.code(), t.data.as_slice()), (226, &b"latin-1 name"[..]));
    let r = c.cmd_bytes(b"DELE caf\xe9.txt").await.unwrap();
    assert_eq!(r.code, 250, "{r:?}");
    assert!(!srv.path(latin1).exists());

    // PWD after CWD into the Latin-1 folder: the 257 reply quotes the bytes.
    assert_eq!(c.cmd_bytes(b"CWD \xe9t\xe9").await.unwrap().code, 250);
    c.send_line("PWD").await.unwrap();
    let line = c.next_raw_line().await.unwrap().unwrap();
    assert_eq!(line, b"257 \"/\xe9t\xe9\" is the current directory");

    // NUL can name no file.
    let r = c.cmd_bytes(b"RETR hel\0lo.txt").await.unwrap();
    assert!(r.code == 550 || r.code == 553, "{r:?}");
    assert_eq!(
        names(srv.root.path()),
        vec![
            b"hello.txt".to_vec(),
            b"lines.txt".to_vec(),
            b"t.txt".to_vec(),
            b"\xe9t\xe9".to_vec(),
        ]
    );
    srv.assert_still_serving().await;
}

/// Item 3: with the defaults (as in the README's NAT example), anonymous
/// users read and nothing else.
#[tokio::test]
async fn anonymous_is_read_only_by_default() {
    let srv = TestServer::start("").await;
    let mut c = srv.login().await;
    let t = c
        .transfer(DataMode::Pasv, "STOR new.txt", Some(b"x"))
        .await
        .unwrap();
    assert_eq!(t.code(), 550, "{t:?}");
    for line in [
        "APPE hello.txt",
        "DELE hello.txt",
        "MKD d",
        "RMD d",
        "RNFR hello.txt",
        "MFMT 20010203040506 hello.txt",
        "MDTM 20010203040506 hello.txt",
    ] {
        let r = c.cmd(line).await.unwrap();
        assert_eq!(r.code, 550, "{line}: {r:?}");
    }
    assert_eq!(
        names(srv.root.path()),
        vec![b"hello.txt".to_vec(), b"lines.txt".to_vec()]
    );
    assert_eq!(std::fs::read(srv.path("hello.txt")).unwrap(), HELLO);
    srv.assert_still_serving().await;
}

/// Item 4: failed logins count per client address across connections; at
/// `ban.max_failures` the address is banned (421 at connect, logged) while
/// other addresses log in.
#[tokio::test]
async fn failed_logins_from_one_address_are_banned_across_connections() {
    let hash = hash_password("s3cret");
    let srv = TestServer::start(&format!(
        "[[user]]\nname = \"alice\"\npassword_hash = \"{hash}\"\n[ban]\nmax_failures = 4\n"
    ))
    .await;
    let mut failures = 0;
    for _ in 0..2 {
        let (mut c, banner) = srv.connect_from("127.0.0.2").await;
        assert_eq!(banner.code, 220, "{banner:?}");
        for _ in 0..2 {
            assert_eq!(c.login("alice", "guess").await.unwrap().code, 530);
            failures += 1;
        }
    }
    assert_eq!(failures, 4);
    wait_for_log(&srv, "banned 127.0.0.2").await;
    let (mut c, banner) = srv.connect_from("127.0.0.2").await;
    assert_eq!(banner.code, 421, "{banner:?}");
    assert!(c.closed().await);
    // Another address is still served.
    let (mut other, banner) = srv.connect_from("127.0.0.3").await;
    assert_eq!(banner.code, 220);
    assert_eq!(other.login("alice", "s3cret").await.unwrap().code, 230);
    srv.assert_still_serving().await;
}

/// Item 5: idle unauthenticated connections are capped per address, so 25
/// addresses opening 8 each (200, the default `max_clients`) cannot lock
/// out a 26th.
#[tokio::test]
async fn unauthenticated_sessions_are_capped_per_address() {
    let srv = TestServer::start("").await;
    let mut held = Vec::new();
    let mut refused = 0;
    for host in 2..27 {
        for _ in 0..8 {
            let (c, banner) = srv.connect_from(&format!("127.0.0.{host}")).await;
            match banner.code {
                220 => held.push(c),
                421 => {
                    assert_eq!(
                        banner.lines[0], "Too many unauthenticated connections from your address",
                        "{banner:?}"
                    );
                    refused += 1
                }
                _ => panic!("{banner:?}"),
            }
        }
    }
    assert_eq!((held.len(), refused), (25 * 4, 25 * 4));
    let (mut c, banner) = srv.connect_from("127.0.0.99").await;
    assert_eq!(banner.code, 220, "{banner:?}");
    assert_eq!(c.login("anonymous", "x@").await.unwrap().code, 230);
    // A logged-in session no longer counts against its address's cap.
    let mut mine = Vec::new();
    for _ in 0..4 {
        let (c, banner) = srv.connect_from("127.0.0.99").await;
        assert_eq!(banner.code, 220, "{banner:?}");
        mine.push(c);
    }
    drop(held);
    srv.assert_still_serving().await;
}

/// Item 5: an idle unauthenticated connection is closed after the default
/// login timeout of 20 s (paused clock).
#[tokio::test(start_paused = true)]
async fn idle_unauthenticated_connections_are_closed_after_20_seconds() {
    let srv = TestServer::start("").await;
    let (mut c, _) = srv.connect().await;
    let t0 = tokio::time::Instant::now();
    let r = c.read_reply_unbounded().await.unwrap();
    assert_eq!(
        (r.code, r.lines[0].as_str()),
        (421, "Login timeout, closing control connection")
    );
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(20) && waited < Duration::from_secs(21),
        "{waited:?}"
    );
}

/// The fields of one `ls -l` line: mode, links, owner, group, size, the
/// three date words, name.
fn ls_fields(line: &str) -> (String, String, String, String, String, String, String) {
    let w: Vec<&str> = line.split_whitespace().collect();
    assert!(w.len() >= 9, "not an ls -l line: {line:?}");
    (
        w[0].into(),
        w[2].into(),
        w[3].into(),
        w[4].into(),
        format!("{} {} {}", w[5], w[6], w[7]),
        w[8..].join(" "),
        w[1].into(),
    )
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or(uid.to_string(), |u| u.name)
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map_or(gid.to_string(), |g| g.name)
}

/// Item 6: LIST shows modes, owner, group, size and time from the file's
/// metadata, in both `ls -l` date forms; a symlink leading out of the tree
/// is not listed.
#[tokio::test]
async fn list_renders_real_metadata() {
    use std::os::unix::fs::MetadataExt;
    let srv = TestServer::start("").await;
    std::fs::create_dir(srv.path("sub")).unwrap();
    std::fs::set_permissions(srv.path("sub"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(srv.path("secret.txt"), b"12345").unwrap();
    std::fs::set_permissions(
        srv.path("secret.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let old = chrono::DateTime::parse_from_rfc3339("2001-02-03T04:05:06Z").unwrap();
    std::fs::File::options()
        .write(true)
        .open(srv.path("secret.txt"))
        .unwrap()
        .set_modified(old.into())
        .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", srv.path("escape")).unwrap();
    let mut c = srv.login().await;
    let t = c.transfer(DataMode::Pasv, "LIST -la", None).await.unwrap();
    assert_eq!(t.code(), 226);
    let text = String::from_utf8(t.data).unwrap();
    assert!(text.ends_with("\r\n"), "{text:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(!text.contains("escape"), "{text}");
    let find = |name: &str| {
        let l = lines
            .iter()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name} not in {text}"));
        ls_fields(l)
    };
    let sub = std::fs::metadata(srv.path("sub")).unwrap();
    let (mode, owner, group, _, _, name, links) = find("sub");
    assert_eq!(mode, "drwxr-xr-x");
    assert_eq!(links, sub.nlink().to_string());
    assert_eq!(
        (owner, group),
        (user_name(sub.uid()), group_name(sub.gid()))
    );
    assert_eq!(name, "sub");
    let (mode, _, _, size, date, _, _) = find("secret.txt");
    assert_eq!((mode.as_str(), size.as_str()), ("-rw-r-----", "5"));
    assert_eq!(date, "Feb 3 2001", "older than six months: year form");
    let hello = std::fs::metadata(srv.path("hello.txt")).unwrap();
    let (mode, _, _, size, date, _, _) = find("hello.txt");
    assert_eq!(mode, format!("-{}", rwx(hello.mode())));
    assert_eq!(size, HELLO.len().to_string());
    let mtime: chrono::DateTime<chrono::Utc> = hello.modified().unwrap().into();
    let want = mtime.format("%b %e %H:%M").to_string();
    assert_eq!(
        date,
        want.split_whitespace().collect::<Vec<_>>().join(" "),
        "recent: time form"
    );
    // STAT with a path shows the same line on the control connection.
    let r = c.cmd("STAT secret.txt").await.unwrap();
    assert_eq!(r.code, 213);
    assert!(r.lines.iter().any(|l| l.starts_with("-rw-r-----")), "{r:?}");
    srv.assert_still_serving().await;
}

fn rwx(mode: u32) -> String {
    let mut s = String::new();
    for shift in [6, 3, 0] {
        let b = (mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn mtime_of(path: &std::path::Path) -> String {
    let t: chrono::DateTime<chrono::Utc> =
        std::fs::metadata(path).unwrap().modified().unwrap().into();
    t.format("%Y%m%d%H%M%S").to_string()
}

/// Item 7: `MDTM <time> <file>` (ncftpput) and `MFMT` set the time.
#[tokio::test]
async fn mdtm_with_a_time_and_mfmt_set_the_modification_time() {
    let srv = TestServer::start(WRITABLE).await;
    let mut c = srv.login().await;
    let feat = c.cmd("FEAT").await.unwrap();
    assert!(feat.lines.iter().any(|l| l == " MFMT"), "{feat:?}");
    let r = c.cmd("MDTM 20010203040506 hello.txt").await.unwrap();
    assert_eq!(r.code, 213, "{r:?}");
    assert_eq!(mtime_of(&srv.path("hello.txt")), "20010203040506");
    assert_eq!(
        c.cmd("MDTM hello.txt").await.unwrap().lines[0],
        "20010203040506"
    );
    let r = c.cmd("MFMT 20020304050607.123 lines.txt").await.unwrap();
    assert_eq!(
        (r.code, r.lines[0].as_str()),
        (213, "Modify=20020304050607; lines.txt")
    );
    assert_eq!(mtime_of(&srv.path("lines.txt")), "20020304050607");
    // Nonsense times and missing files.
    assert_eq!(
        c.cmd("MFMT 20021304050607 lines.txt").await.unwrap().code,
        501
    );
    assert_eq!(c.cmd("MFMT 2002 lines.txt").await.unwrap().code, 501);
    assert_eq!(
        c.cmd("MFMT 20020304050607 nope.txt").await.unwrap().code,
        550
    );
    assert_eq!(mtime_of(&srv.path("lines.txt")), "20020304050607");
    srv.assert_still_serving().await;
}

/// Item 8: REST is validated (RFC 3659 §5): not a number for a file offset
/// → 501; beyond the end of the file → 554 before any data moves, for RETR
/// and STOR alike, and the file is unchanged.
#[tokio::test]
async fn rest_offsets_are_validated() {
    let srv = TestServer::start(WRITABLE).await;
    let mut c = srv.login().await;
    for bad in ["18446744073709551615", "9223372036854775808", "-1", "abc"] {
        let r = c.cmd(&format!("REST {bad}")).await.unwrap();
        assert_eq!(r.code, 501, "REST {bad}: {r:?}");
    }
    assert_eq!(c.cmd("REST 100").await.unwrap().code, 350);
    let t = c
        .transfer(DataMode::Pasv, "RETR hello.txt", None)
        .await
        .unwrap();
    assert_eq!(
        (t.first.code, t.final_reply.is_none()),
        (554, true),
        "{t:?}"
    );
    assert_eq!(c.cmd("REST 100").await.unwrap().code, 350);
    let t = c
        .transfer(DataMode::Pasv, "STOR hello.txt", Some(b"appended?"))
        .await
        .unwrap();
    assert_eq!(t.first.code, 554, "{t:?}");
    assert_eq!(std::fs::read(srv.path("hello.txt")).unwrap(), HELLO);
    // At the end exactly: nothing to send, and fine.
    let len = HELLO.len();
    assert_eq!(c.cmd(&format!("REST {len}")).await.unwrap().code, 350);
    let t = c
        .transfer(DataMode::Pasv, "RETR hello.txt", None)
        .await
        .unwrap();
    assert_eq!((t.code(), t.data.len()), (226, 0));
    // A valid STOR restart overwrites from the offset.
    assert_eq!(c.cmd("REST 5").await.unwrap().code, 350);
    let t = c
        .transfer(DataMode::Pasv, "STOR lines.txt", Some(b"!"))
        .await
        .unwrap();
    assert_eq!(t.code(), 226);
    assert_eq!(std::fs::read(srv.path("lines.txt")).unwrap(), b"one\nt!");
    srv.assert_still_serving().await;
}

/// Item 9: what FEAT advertises exists: MLST answers with the facts FEAT
/// names (RFC 3659 §7).
#[tokio::test]
async fn mlst_answers_with_the_advertised_facts() {
    let srv = TestServer::start("").await;
    let mut c = srv.login().await;
    let feat = c.cmd("FEAT").await.unwrap();
    let mlst = feat
        .lines
        .iter()
        .find(|l| l.starts_with(" MLST "))
        .unwrap_or_else(|| panic!("{feat:?}"));
    assert_eq!(
        mlst,
        " MLST type*;size*;modify*;perm*;UNIX.mode*;UNIX.owner*;UNIX.group*;"
    );
    assert!(
        !feat.lines.iter().any(|l| l.starts_with(" MLSD")),
        "{feat:?}"
    );
    let r = c.cmd("MLST hello.txt").await.unwrap();
    assert_eq!(r.code, 250, "{r:?}");
    let facts = &r.lines[1];
    assert!(facts.starts_with(' '), "{r:?}");
    let mtime = mtime_of(&srv.path("hello.txt"));
    let unix = unix_facts(&srv.path("hello.txt"));
    assert_eq!(
        facts,
        &format!(
            " type=file;size={};modify={mtime};perm=r;{unix} /hello.txt",
            HELLO.len()
        )
    );
    let r = c.cmd("MLST").await.unwrap();
    assert!(r.lines[1].starts_with(" type=dir;"), "{r:?}");
    assert!(r.lines[1].ends_with("; /"), "{r:?}");
    assert_eq!(c.cmd("MLST nope").await.unwrap().code, 550);
    let t = c.transfer(DataMode::Pasv, "MLSD", None).await.unwrap();
    let text = String::from_utf8(t.data).unwrap();
    assert!(
        text.contains(&format!(
            "type=file;size={};modify={mtime};perm=r;{unix} hello.txt\r\n",
            HELLO.len()
        )),
        "{text}"
    );
    srv.assert_still_serving().await;
}

/// `UNIX.mode=0644;UNIX.owner=…;UNIX.group=…;` of a file.
fn unix_facts(path: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    format!(
        "UNIX.mode=0{:o};UNIX.owner={};UNIX.group={};",
        m.mode() & 0o7777,
        user_name(m.uid()),
        group_name(m.gid())
    )
}

/// Item 9: the root cannot be renamed.
#[tokio::test]
async fn rnfr_of_the_root_is_refused() {
    let srv = TestServer::start(WRITABLE).await;
    let mut c = srv.login().await;
    for line in ["RNFR /", "RNFR .", "RNFR ..", "RNFR /../"] {
        let r = c.cmd(line).await.unwrap();
        assert_eq!(r.code, 550, "{line}: {r:?}");
    }
    assert_eq!(c.cmd("RNTO /x").await.unwrap().code, 503);
    assert!(srv.path("hello.txt").exists());
    srv.assert_still_serving().await;
}

/// Item 9: ASCII uploads turn CR LF into LF and keep every other byte,
/// bare CRs included.
#[tokio::test]
async fn ascii_stor_converts_only_crlf() {
    let srv = TestServer::start(WRITABLE).await;
    let mut c = srv.login().await;
    assert_eq!(c.cmd("TYPE A").await.unwrap().code, 200);
    let t = c
        .transfer(
            DataMode::Pasv,
            "STOR a.txt",
            Some(b"a\rb\r\nc\n\r\r\nend\r"),
        )
        .await
        .unwrap();
    assert_eq!(t.code(), 226);
    assert_eq!(
        std::fs::read(srv.path("a.txt")).unwrap(),
        b"a\rb\nc\n\r\nend\r"
    );
    srv.assert_still_serving().await;
}

/// Item 10: file-system errors are answered in FTP's words, without the
/// OS's text ("(os error 36)").
#[tokio::test]
async fn os_errors_are_worded_for_ftp() {
    let srv = TestServer::start(WRITABLE).await;
    std::fs::create_dir(srv.path("full")).unwrap();
    std::fs::write(srv.path("full/x"), b"x").unwrap();
    let mut c = srv.login().await;
    let long = "n".repeat(300);
    let cases = [
        (
            format!("MKD {long}"),
            553,
            format!("{}: File name too long", &long[..256]),
        ),
        ("MKD hello.txt".into(), 550, "hello.txt: File exists".into()),
        ("RMD full".into(), 550, "full: Directory not empty".into()),
        (
            "RMD hello.txt".into(),
            550,
            "hello.txt: Not a directory".into(),
        ),
        ("DELE full".into(), 550, "full: Is a directory".into()),
        (
            "CWD hello.txt/x".into(),
            550,
            "hello.txt/x: Not a directory".into(),
        ),
        (
            "SIZE nope".into(),
            550,
            "nope: No such file or directory".into(),
        ),
    ];
    for (line, code, text) in cases {
        let r = c.cmd(&line).await.unwrap();
        assert_eq!(
            (r.code, r.lines[0].as_str()),
            (code, text.as_str()),
            "{line}"
        );
    }
    let t = c
        .transfer(DataMode::Pasv, &format!("STOR {long}"), Some(b"x"))
        .await
        .unwrap();
    assert_eq!(t.first.code, 553, "{t:?}");
    let all = c.transcript.join("\n");
    assert!(!all.contains("os error"), "{all}");
    srv.assert_still_serving().await;
}
