//! A newcomer's first ten minutes (issue 18): the installed binary runs
//! the built-in suite from an empty folder on a machine that lacks the
//! real clients, and says what it could not cover instead of failing;
//! `ftpnat doctor` on a complete and a crippled PATH; `ftpnat init`'s
//! folder runs green. Tools are hidden, never uninstalled: the crippled
//! PATH is a folder of symlinks to a chosen few programs.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use super::{require_root, BIN};

/// A folder with symlinks to `keep` (found on the current PATH): a PATH
/// on which everything else, lftp/curl/python3/nft included, is missing.
fn crippled_path(keep: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for p in keep {
        let found = ftpnat::machine::which(p).unwrap_or_else(|| panic!("{p} is not on PATH"));
        std::os::unix::fs::symlink(found, dir.path().join(p)).unwrap();
    }
    dir
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The conformance scenarios with a real-client step (curl, lftp, ftplib).
fn real_client_scenarios() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/conformance");
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            std::fs::read_to_string(p).unwrap().lines().any(|l| {
                ["curl =", "lftp =", "ftplib ="]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
        })
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// `cargo install --path harness --root ROOT`, reusing this build's
/// compiled dependencies (same target dir, dev profile, offline).
fn install_ftpnat(root: &Path) -> PathBuf {
    let target = Path::new(BIN).parent().unwrap().parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["install", "--debug", "--offline", "--locked", "--path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")))
        .arg("--root")
        .arg(root)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo install: {}", text(&out));
    let bin = root.join("bin/ftpnat");
    assert!(bin.exists());
    bin
}

/// The proof: installed, run from an empty folder with lftp, curl
/// and python3 hidden, the suite exits 0, names what it could not run and
/// how to get it; `--require-all` turns that into exit 1.
#[test]
fn installed_binary_on_a_bare_path_passes_and_lists_what_is_not_supported_here() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let bin = install_ftpnat(root.path());
    let empty = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let path = crippled_path(&["sh"]);
    let ftpnat = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .current_dir(empty.path())
            .env("PATH", path.path())
            .env("XDG_CACHE_HOME", cache.path())
            .env_remove("FTPNAT_PEERS")
            .output()
            .unwrap()
    };
    let list = ftpnat(&["list"]);
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.status.success(), "{}", text(&list));
    let suite =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/conformance"))
            .unwrap()
            .count();
    assert_eq!(
        listed.lines().filter(|l| !l.trim().is_empty()).count(),
        suite,
        "{listed}"
    );
    assert!(
        listed.contains("masquerade-pasv-public-address"),
        "{listed}"
    );
    // The built-in suite was unpacked into this user's cache, not the folder.
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);

    let run = ftpnat(&["run"]);
    let out = text(&run);
    assert_eq!(run.status.code(), Some(0), "{out}");
    let needing = real_client_scenarios();
    assert!(needing.len() >= 3, "{needing:?}");
    for name in &needing {
        assert!(
            out.contains(&format!("SKIP  {name}")),
            "{name} not skipped:\n{out}"
        );
    }
    assert!(
        out.contains(&format!(
            "0 failed, 0 errors, {} not supported here",
            needing.len()
        )),
        "{out}"
    );
    for hint in [
        "lftp not installed — apt-get install lftp, or run ci/test.sh",
        "curl not installed — apt-get install curl, or run ci/test.sh",
        "python3 not installed — apt-get install python3, or run ci/test.sh",
        &format!("{} not supported here:", needing.len()),
        "ftpnat doctor",
    ] {
        assert!(out.contains(hint), "missing {hint:?} in:\n{out}");
    }
    // Every scenario that needs no missing tool ran and passed.
    let passed = out.lines().filter(|l| l.starts_with("PASS ")).count();
    assert_eq!(passed + needing.len(), suite, "{out}");

    let strict = ftpnat(&[
        "run",
        "--require-all",
        "--filter",
        "^clients-|^masquerade-pasv-public-address$",
    ]);
    let out = text(&strict);
    assert_eq!(strict.status.code(), Some(1), "{out}");
    assert!(out.contains("(failures: --require-all)"), "{out}");
    assert!(
        out.contains("PASS  masquerade-pasv-public-address"),
        "{out}"
    );
}

/// `ftpnat doctor --format json` as a map name → check.
fn doctor(path: &Path, cwd: &Path, peers: &Path) -> (Option<i32>, serde_json::Value, String) {
    let o = Command::new(BIN)
        .args(["doctor", "--format", "json"])
        .current_dir(cwd)
        .env("PATH", path)
        .env("FTPNAT_PEERS", peers)
        .output()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    (o.status.code(), v, text(&o))
}

fn check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {v}"))
}

#[test]
fn doctor_on_a_complete_and_a_crippled_path() {
    require_root();
    let before: Vec<_> = std::fs::read_dir("/run/netns")
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    let empty = tempfile::tempdir().unwrap();
    // Complete: what ci/test.sh installs is found, and the probes work.
    let full = std::env::var_os("PATH").unwrap();
    let (code, v, out) = doctor(Path::new(&full), empty.path(), empty.path());
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(v["essentials_ok"], true, "{out}");
    for name in [
        "network namespaces",
        "veth",
        "nftables",
        "NAT (nft masquerade)",
        "FTP conntrack helper (nf_conntrack_ftp)",
        "lftp",
        "curl",
        "python3",
        "nft",
    ] {
        assert_eq!(check(&v, name)["ok"], true, "{name}: {out}");
    }
    assert!(
        check(&v, "nftables")["found"]
            .as_str()
            .unwrap()
            .contains("nftables v"),
        "{out}"
    );
    // Peers: none in an empty peers folder (and none system-wide here).
    let vs = check(&v, "vsftpd");
    if vs["ok"] == false {
        assert!(
            vs["install"]
                .as_str()
                .unwrap()
                .contains("ftpnat peers install vsftpd"),
            "{out}"
        );
    }
    // Crippled: the tools are missing, each with what it disables and the
    // apt-get line; kernel probes that need nft say so; the main job still can run.
    let path = crippled_path(&["sh"]);
    let (code, v, out) = doctor(path.path(), empty.path(), empty.path());
    assert_eq!(code, Some(0), "{out}");
    for (tool, package) in [
        ("lftp", "lftp"),
        ("curl", "curl"),
        ("python3", "python3"),
        ("nft", "nftables"),
    ] {
        let c = check(&v, tool);
        assert_eq!(c["ok"], false, "{out}");
        assert_eq!(c["install"], format!("apt-get install {package}"), "{out}");
        assert!(!c["disables"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        check(&v, "nftables")["found"],
        "unknown: nft is not installed",
        "{out}"
    );
    assert_eq!(check(&v, "veth")["ok"], true, "{out}");
    let table = Command::new(BIN)
        .arg("doctor")
        .env("PATH", path.path())
        .env("FTPNAT_PEERS", empty.path())
        .output()
        .unwrap();
    let t = text(&table);
    assert!(t.contains("MISS lftp"), "{t}");
    assert!(t.contains("get it: apt-get install lftp"), "{t}");
    assert!(t.contains("bash ci/test.sh"), "{t}");
    // The probe namespaces are gone.
    let after: Vec<_> = std::fs::read_dir("/run/netns")
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    let new: Vec<_> = after
        .iter()
        .filter(|n| !before.contains(n) && n.to_string_lossy().ends_with("doc"))
        .collect();
    assert!(new.is_empty(), "{new:?}");
}

#[test]
fn init_folder_runs_green_against_the_reference_server() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("ftpnat-tests");
    let o = Command::new(BIN)
        .args(["init", "--ci", "gitlab"])
        .arg(&project)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    for f in [
        "ftpnat.toml",
        "scenarios/my-server-through-nat.toml",
        "servers/my-server.conf.in",
        "profiles/my-server.toml",
        ".gitlab-ci.yml",
    ] {
        assert!(project.join(f).exists(), "{f}");
    }
    // A second init does not overwrite the user's files.
    let again = Command::new(BIN)
        .arg("init")
        .arg(&project)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(&project)
            .output()
            .unwrap()
    };
    let o = run(&["run"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("PASS  my-server-through-nat"), "{out}");
    assert!(out.contains("1 passed, 0 failed"), "{out}");
    // The profile skeleton loads and keeps it green.
    let o = run(&["run", "--profile", "profiles/my-server.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The CI file's command, as written (minus the shard count's variables).
    let o = run(&[
        "run",
        "--require-all",
        "--shard",
        "1/1",
        "--junit",
        "out/junit.xml",
        "--artifacts",
        "out/artifacts",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let junit = std::fs::read_to_string(project.join("out/junit.xml")).unwrap();
    assert!(junit.contains("my-server-through-nat"), "{junit}");
}
