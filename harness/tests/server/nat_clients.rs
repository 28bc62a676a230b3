//! Issue 21: clients nobody here used before — lftp `mirror`, `wget -r`,
//! tnftp and ncftp (ncftpget -R, ncftpput) — against the reference server
//! behind a sim NAT gateway (masquerade address, forwarded 21 and passive
//! range), with their own defaults (only their retry/time bounds set).
//! Each test checks what the client got against the server's tree, and the
//! mechanism: the sessions came through the gateway from the client's
//! public address, data went through passive ports of the range announced
//! with the public address, and the client never fell back to active mode.
//! ci/test.sh installs the clients; a missing one fails saying so.

use std::{
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use ftpnat::{runner::Lab, scenario};

use crate::util::hash_password;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests build network namespaces: run them as root (CI does)"
    );
}

/// The lab: a reference server at 192.168.1.2 behind `gw` (public
/// 203.0.113.1, forwarding 21 and 60000-60010), a client at 203.0.113.10.
fn lab(extra_config: &str) -> (tempfile::TempDir, Lab) {
    require_root();
    let text = format!(
        r#"
name = "real-clients-through-nat"
[[gateway]]
name = "gw"
lan = "192.168.1.1/24"
wan = "203.0.113.1/24"
forward = [
  {{ ports = "21", to = "server" }},
  {{ ports = "60000-60010", to = "server" }},
]
[[host]]
name = "server"
addr = "192.168.1.2/24"
files = {{ "pub/readme.txt" = "read me\n", "pub/sub/data.bin" = {{ size = 300000, seed = 3 }}, "pub/sub/deeper/notes.txt" = "deep down\n", "incoming/README" = "uploads\n" }}
server = {{ kind = "reference", config = {{ masquerade_address = "203.0.113.1", passive_ports = [60000, 60010]{extra_config} }} }}
[[host]]
name = "client"
addr = "203.0.113.10/24"
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario::parse(&text, Path::new("real-clients.toml"))
        .unwrap_or_else(|d| panic!("{}", d.pretty()));
    let lab = Lab::start(&sc, &dir.path().join("lab"), false).unwrap();
    // An old file: the listing shows it in the `Mon dd  YYYY` form.
    let old = lab.dir.join("server-root/pub/sub/deeper/notes.txt");
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(981_173_106)) // 2001-02-03 04:05:06
        .unwrap();
    (dir, lab)
}

/// Runs `program` inside the client's namespace (60 s bound, then killed).
fn run(lab: &Lab, program: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = lab.topo.command("client", program, args).unwrap();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot run {program}: {e} — install it (apt-get install -y lftp wget tnftp ncftp) or run ci/test.sh")
    });
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{program} did not finish within 60 s:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn ok(program: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{program}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file under `a` is under `b` with the same bytes; returns how many.
fn same_tree(a: &Path, b: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(a).unwrap() {
        let e = e.unwrap();
        let there = b.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            assert!(there.is_dir(), "{} missing", there.display());
            n += same_tree(&e.path(), &there);
        } else {
            let got =
                std::fs::read(&there).unwrap_or_else(|err| panic!("{}: {err}", there.display()));
            assert!(
                got == std::fs::read(e.path()).unwrap(),
                "{} differs",
                there.display()
            );
            n += 1;
        }
    }
    n
}

/// The mechanism: sessions from the client's public address, passive data
/// through the range announced with the public address, no active mode.
fn through_the_nat_in_passive_mode(lab: &Lab) {
    let log = lab.servers["server"].log();
    assert!(log.contains("peer=203.0.113.10:"), "{log}");
    let pasv = log.contains("reply_addr=203.0.113.1:600");
    let epsv = log.contains("EPSV port=600");
    assert!(pasv || epsv, "no passive reply from the range:\n{log}");
    assert!(log.contains("transfer complete"), "{log}");
    assert!(
        !log.contains("PORT accepted") && !log.contains("EPRT accepted"),
        "the client fell back to active mode:\n{log}"
    );
}

/// Whether the file's modification time is in 2001 (UTC).
fn from_2001(path: &Path) -> bool {
    let t = std::fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (978_307_200..1_009_843_200).contains(&t)
}

fn dest(dir: &tempfile::TempDir) -> PathBuf {
    let d = dir.path().join("got");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// lftp `mirror` recreates the tree with the server's modes — folders it
/// can enter (before, every folder was listed `drw-r--r--`) — and times.
#[test]
fn lftp_mirror_through_the_nat() {
    let (dir, lab) = lab("");
    let got = dest(&dir);
    let script = format!(
        "set net:max-retries 2; set net:timeout 10; open -p 21 203.0.113.1; mirror pub {}/pub",
        got.display()
    );
    let out = run(&lab, "lftp", &["-c", &script], None);
    ok("lftp", &out);
    let server = lab.dir.join("server-root/pub");
    assert_eq!(same_tree(&server, &got.join("pub")), 3);
    for d in ["pub/sub", "pub/sub/deeper"] {
        let mode = std::fs::metadata(got.join(d)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "{d}: {mode:o}");
    }
    assert!(from_2001(&got.join("pub/sub/deeper/notes.txt")));
    through_the_nat_in_passive_mode(&lab);
}

/// `wget -r` walks the tree by parsing LIST and keeps the listing's times.
#[test]
fn wget_recursive_through_the_nat() {
    let (dir, lab) = lab("");
    let got = dest(&dir);
    let out = run(
        &lab,
        "wget",
        &[
            "-r",
            "-nH",
            "-q",
            "--tries=2",
            "--timeout=10",
            "-P",
            got.to_str().unwrap(),
            "ftp://203.0.113.1/pub/",
        ],
        None,
    );
    ok("wget", &out);
    let server = lab.dir.join("server-root/pub");
    assert_eq!(same_tree(&server, &got.join("pub")), 3);
    assert!(from_2001(&got.join("pub/sub/deeper/notes.txt")));
    through_the_nat_in_passive_mode(&lab);
}

/// tnftp (NetBSD ftp) lists and fetches in a scripted session.
#[test]
fn tnftp_lists_and_gets_through_the_nat() {
    let (dir, lab) = lab("");
    let got = dest(&dir);
    let script = format!(
        "user anonymous tester@example.test\nbinary\nls pub/sub\nget pub/sub/data.bin {}/data.bin\nquit\n",
        got.display()
    );
    let out = run(&lab, "tnftp", &["-n", "203.0.113.1"], Some(&script));
    ok("tnftp", &out);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.ends_with(" data.bin"))
        .unwrap_or_else(|| panic!("no listing line for data.bin:\n{text}"));
    // Mode, owner and group from the file (the harness made it as root).
    let w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        (w[0], w[2], w[3], w[4]),
        ("-rw-r--r--", "root", "root", "300000"),
        "{line}"
    );
    assert_eq!(
        std::fs::read(got.join("data.bin")).unwrap(),
        std::fs::read(lab.dir.join("server-root/pub/sub/data.bin")).unwrap()
    );
    through_the_nat_in_passive_mode(&lab);
}

/// ncftpget -R fetches the tree; ncftpput (as a local user, anonymous is
/// read-only) uploads and sets the file's time with `MDTM time file`.
#[test]
fn ncftp_get_recursive_and_put_with_its_time_through_the_nat() {
    let hash = hash_password("s3cret");
    let (dir, lab) = lab(&format!(
        ", user = [{{ name = \"alice\", password_hash = \"{hash}\" }}]"
    ));
    let got = dest(&dir);
    let out = run(
        &lab,
        "ncftpget",
        &[
            "-R",
            "-t",
            "10",
            "-r",
            "1",
            "203.0.113.1",
            got.to_str().unwrap(),
            "/pub",
        ],
        None,
    );
    ok("ncftpget", &out);
    assert_eq!(
        same_tree(&lab.dir.join("server-root/pub"), &got.join("pub")),
        3
    );
    let up = dir.path().join("upload.txt");
    std::fs::write(&up, b"put by ncftpput\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&up)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000)) // 2001-09-09
        .unwrap();
    let out = run(
        &lab,
        "ncftpput",
        &[
            "-u",
            "alice",
            "-p",
            "s3cret",
            "-t",
            "10",
            "-r",
            "1",
            "203.0.113.1",
            "/incoming",
            up.to_str().unwrap(),
        ],
        None,
    );
    ok("ncftpput", &out);
    let there = lab.dir.join("server-root/incoming/upload.txt");
    assert_eq!(std::fs::read(&there).unwrap(), b"put by ncftpput\n");
    let log = lab.servers["server"].log();
    assert_eq!(
        std::fs::metadata(&there).unwrap().modified().unwrap(),
        std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000),
        "ncftpput's time was not kept:\n{log}"
    );
    through_the_nat_in_passive_mode(&lab);
}
