//! Issue 22: a scenario file from a pull request, run as root, can never
//! harm the runner. Every file in `tests/scenarios/adversarial/` tries
//! something (a path escape in each field that names a path, a huge size, a
//! semantic error `run` would trip on): `check` and `run` both refuse it
//! with exit 2 and the same file:line:column, nothing is written outside
//! the run, and no namespace is left. A run killed with SIGKILL or SIGABRT
//! leaves nothing either, without another run sweeping after it.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use ftpnat::scenario;

use super::{require_root, BIN};

const DIR: &str = "tests/scenarios/adversarial";

/// Files an escape would create (the corpus names these).
const MARKERS: &[&str] = &[
    "/tmp/ftpnat-adversarial-escape",
    "/tmp/ftpnat-adversarial-absolute",
    "/tmp/ftpnat-adversarial-log",
    "/tmp/ftpnat-adversarial-name",
    "/tmp/ftpnat-adversarial-nested",
];

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "{files:?}");
    files
}

/// Namespaces and temporary folders that belong to process `pid`.
fn leftovers(pid: u32) -> Vec<String> {
    let ns = format!("fn{pid}x");
    let tmp = format!("ftpnat-fn{pid}x-");
    let list = |dir: &Path, prefix: &str| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(prefix))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = list(Path::new("/run/netns"), &ns);
    out.extend(list(&std::env::temp_dir(), &tmp));
    out
}

fn markers_absent() {
    for m in MARKERS {
        assert!(!Path::new(m).exists(), "{m} was written outside the run");
    }
}

#[test]
fn adversarial_scenarios_are_refused_by_check_and_run_alike() {
    markers_absent();
    let mut all = String::new();
    let art = tempfile::tempdir().unwrap();
    for f in corpus() {
        let d = scenario::load(&f).expect_err(&format!("{} must be rejected", f.display()));
        assert!(d.line >= 1 && d.column >= 1, "{d}");
        all.push_str(&format!("{d}\n"));
        let at = format!("{}:{}:{}", f.display(), d.line, d.column);
        for cmd in ["check", "run"] {
            let mut c = Command::new(BIN);
            c.arg(cmd).arg(&f);
            if cmd == "run" {
                c.arg("--artifacts").arg(art.path());
            }
            let child = c
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let pid = child.id();
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} {}: {err}", f.display());
            assert!(err.contains(&at), "{cmd} must say {at}: {err}");
            assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
        }
        markers_absent();
    }
    // `run` refused before making anything.
    assert_eq!(std::fs::read_dir(art.path()).unwrap().count(), 0);
    insta::assert_snapshot!(all);
}

#[test]
fn an_oversized_scenario_file_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.toml");
    let mut text = String::from("name = \"big\"\ndescription = \"");
    text.push_str(&"x".repeat(2 << 20));
    text.push_str("\"\n");
    std::fs::write(&f, text).unwrap();
    let d = scenario::load(&f).unwrap_err();
    assert!(d.message.contains("larger than 1048576 bytes"), "{d}");
    let out = Command::new(BIN).arg("check").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A scenario that builds its network and then waits (a log line that
/// never comes), with nested served files.
const WAITS: &str = r#"
name = "waits-to-be-killed"
timeout_s = 120
[[gateway]]
name = "gw"
lan = "192.168.1.1/24"
wan = "203.0.113.1/24"
forward = [{ ports = "21", to = "server" }]
[[host]]
name = "server"
addr = "192.168.1.2/24"
files = { "pub/deep/a.txt" = "inside\n", "pub/big.bin" = { size = 8388608, seed = 3 } }
server = { kind = "reference" }
[[host]]
name = "client"
addr = "203.0.113.10/24"
[[step]]
wait_log = "this line never comes"
check = "server"
timeout_ms = 100000
"#;

/// SIGKILL and SIGABRT of `ftpnat run` mid-scenario: its watchdog removes
/// the namespaces and the temporary run folder by itself (no later run or
/// `ftpnat clean` needed); the served files were made inside the run.
#[test]
fn a_killed_run_leaves_nothing() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("waits.toml");
    std::fs::write(&f, WAITS).unwrap();
    for sig in [nix::sys::signal::SIGKILL, nix::sys::signal::SIGABRT] {
        let child = Command::new(BIN)
            .arg("run")
            .arg(&f)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        // The run's folder holds the served tree once the server started.
        let t0 = Instant::now();
        let served = loop {
            let tmp = std::fs::read_dir(std::env::temp_dir())
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(&format!("ftpnat-fn{pid}x-"))
                });
            if let Some(file) = tmp
                .map(|t| t.join("server-root/pub/deep/a.txt"))
                .filter(|p| p.exists())
            {
                break file;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the run did not start its server"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(std::fs::read_to_string(&served).unwrap(), "inside\n");
        assert!(!leftovers(pid).is_empty());
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
        let mut child = child;
        child.wait().unwrap();
        let t0 = Instant::now();
        while !leftovers(pid).is_empty() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "after {sig}: left {:?}",
                leftovers(pid)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
