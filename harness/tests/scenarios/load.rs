//! `ftpnat load` and `ftpnat probe passive` against every kind of server,
//! the user's own (pyftpdlib as a `command`) included (issues 24 and 25).
//! Curves are asserted on their shape, never on absolute times.

use std::process::Command;

use super::{pyftpdlib_python, require_root, BIN};

/// Runs `ftpnat ARGS --format json`; asserts exit 0; the parsed output.
fn json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ftpnat {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn pyftpdlib() -> (String, [&'static str; 4]) {
    let py = pyftpdlib_python();
    (
        format!("command:{py}"),
        [
            "--server-config",
            "../scenarios/servers/pyftpdlib.py",
            "--profile",
            "../scenarios/profiles/pyftpdlib.toml",
        ],
    )
}

fn n(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn f(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn levels(report: &serde_json::Value) -> &Vec<serde_json::Value> {
    report["levels"].as_array().unwrap()
}

fn replies(level: &serde_json::Value) -> String {
    level["replies"].to_string()
}

/// The reference server's curve: every PASV below full gets a port in the
/// range that accepts a connection through the NAT, at a flat latency;
/// from full on, the configured policy — `refuse` answers 425 (and the
/// holders cannot hold more), `fallback` announces ports outside the range
/// that the router answers with a RST (its counter says so).
#[test]
fn probe_reference_is_flat_until_full_then_its_policy() {
    require_root();
    const R: u64 = 6;
    for policy in ["refuse", "fallback", "wait"] {
        let v = json(&[
            "probe",
            "passive",
            "--servers",
            "reference",
            "--ports",
            "6",
            "--max-held",
            "7",
            "--samples",
            "6",
            "--policy",
            policy,
        ]);
        let report = &v[0];
        let ls = levels(report);
        assert_eq!(ls.len(), 8, "{report:#}");
        let mut p50 = Vec::new();
        for l in ls {
            let (k, samples) = (n(l, "k"), n(l, "samples"));
            assert_eq!(samples, 6, "{l}");
            if k < R {
                assert_eq!(n(l, "held"), k, "{l}");
                assert_eq!(n(l, "held_in_range"), k, "{l}");
                assert_eq!(n(l, "in_range"), samples, "{policy} k={k}: {l}");
                assert_eq!(n(l, "reachable"), samples, "{policy} k={k}: {l}");
                p50.push(f(l, "p50_ms"));
                continue;
            }
            assert_eq!(n(l, "held_in_range"), R, "{l}");
            assert_eq!(n(l, "in_range"), 0, "{policy} k={k}: {l}");
            assert_eq!(n(l, "killed"), 0, "{l}");
            match policy {
                "refuse" | "wait" => {
                    assert_eq!(n(l, "errors"), samples, "{l}");
                    assert!(replies(l).contains("425"), "{l}");
                    // The holders could not hold more than the range.
                    assert_eq!(n(l, "held"), R, "{l}");
                    // `wait` waits its bound (1 s in the probe) first.
                    if policy == "wait" {
                        assert!(f(l, "p50_ms") >= 900.0, "{l}");
                    } else {
                        assert!(f(l, "p50_ms") < 900.0, "{l}");
                    }
                }
                _ => {
                    assert_eq!(n(l, "fallback"), samples, "{l}");
                    // The mechanism: the RST comes from the router (the
                    // port is not forwarded), not from the server.
                    assert_eq!(n(l, "refused_by_router"), samples, "{l}");
                    assert_eq!(n(l, "reachable"), 0, "{l}");
                    assert_eq!(n(l, "held"), k, "{l}");
                }
            }
        }
        // Flat below full: no level's median is far above the typical one.
        let mut sorted = p50.clone();
        sorted.sort_by(f64::total_cmp);
        let typical = sorted[sorted.len() / 2];
        let worst = sorted[sorted.len() - 1];
        assert!(
            worst <= 4.0 * typical + 5.0,
            "{policy}: p50 below full {p50:?}"
        );
        assert!(
            report["holder_failures"].as_object().unwrap().is_empty() || policy != "fallback",
            "{report:#}"
        );
    }
}

/// The probe on the kernel engine: the RST for a fallback port is put on
/// the router by its nftables counter (the unsolicited-input rule), as on
/// the sim engine by its drop counter.
#[test]
fn probe_on_the_kernel_engine_names_the_routers_rst() {
    require_root();
    let v = json(&[
        "probe",
        "passive",
        "--engine",
        "kernel",
        "--servers",
        "reference",
        "--policy",
        "fallback",
        "--ports",
        "3",
        "--max-held",
        "4",
        "--samples",
        "2",
    ]);
    for l in levels(&v[0]) {
        let (k, samples) = (n(l, "k"), n(l, "samples"));
        if k < 3 {
            assert_eq!(n(l, "reachable"), samples, "{l}");
        } else {
            assert_eq!(n(l, "fallback"), samples, "{l}");
            assert_eq!(n(l, "refused_by_router"), samples, "{l}");
        }
    }
}

/// vsftpd's 9 random binds: no failure on an empty range, failures before
/// the range is full (a bind loop that gives up with free ports left), and
/// from full on every PASV kills the session with `500 OOPS`.
#[test]
fn probe_vsftpd_fails_near_full_with_500_oops() {
    require_root();
    const R: u64 = 10;
    let v = json(&[
        "probe",
        "passive",
        "--servers",
        "vsftpd",
        "--ports",
        "10",
        "--max-held",
        "11",
        "--samples",
        "12",
    ]);
    let report = &v[0];
    let ls = levels(report);
    assert_eq!(n(&ls[0], "in_range"), 12, "{:#}", ls[0]);
    assert_eq!(n(&ls[0], "reachable"), 12, "{:#}", ls[0]);
    let failing: Vec<u64> = ls
        .iter()
        .filter(|l| n(l, "killed") > 0)
        .map(|l| n(l, "k"))
        .collect();
    // Failures start before the range is full …
    assert!(failing.iter().any(|k| *k < R), "{report:#}");
    for l in ls.iter().filter(|l| n(l, "held") >= R) {
        // … and from full on, every PASV ends the session.
        assert_eq!(n(l, "killed"), n(l, "samples"), "{l}");
        assert!(replies(l).contains("500 OOPS"), "{l}");
    }
    assert!(
        ls.iter().any(|l| n(l, "held") >= R),
        "the holders never filled the range: {report:#}"
    );
    // The holders met the same: sessions killed with free ports left.
    assert!(
        report["holder_failures"].to_string().contains("500 OOPS"),
        "{report:#}"
    );
}

/// The user's own server (pyftpdlib as a `command`) through the probe
/// (with its throughput under exhaustion, one command) and `load`, with its
/// profile's name and behaviour in the rows: its curve falls back outside
/// the range once full, and the router refuses those ports; its load row
/// has the spread, latency, CPU and listen figures.
#[test]
fn pyftpdlib_through_load_and_the_probe() {
    require_root();
    let (server, extra) = pyftpdlib();
    let mut args = vec![
        "probe",
        "passive",
        "--servers",
        "none",
        "--server",
        &server,
        "--ports",
        "4",
        "--max-held",
        "5",
        "--samples",
        "4",
        "--with-load",
    ];
    args.extend(extra);
    let v = json(&args);
    // One command: the curve and the throughput under exhaustion.
    assert_eq!(v["curves"].as_array().unwrap().len(), 1, "{v:#}");
    let report = &v["curves"][0];
    let under_load = &v["load"][0];
    assert_eq!(under_load["spec"]["server"]["name"], "pyftpdlib 2.2");
    assert_eq!(under_load["runs"].as_array().unwrap().len(), 3);
    assert!(
        n(&under_load["runs"][0], "completed") >= 1,
        "{under_load:#}"
    );
    assert_eq!(report["spec"]["server"]["name"], "pyftpdlib 2.2");
    assert_eq!(report["spec"]["server"]["exhausted"], "fallback");
    for l in levels(report) {
        let (k, samples) = (n(l, "k"), n(l, "samples"));
        if k < 4 {
            assert_eq!(n(l, "reachable"), samples, "k={k}: {l}");
        } else {
            assert_eq!(n(l, "fallback"), samples, "k={k}: {l}");
            assert_eq!(n(l, "refused_by_router"), samples, "k={k}: {l}");
        }
    }
    let mut args = vec![
        "load",
        "--servers",
        "none",
        "--server",
        &server,
        "--clients",
        "16",
        "--transfers",
        "2",
        "--ports",
        "2",
        "--repeat",
        "2",
        "--limit",
        "60",
    ];
    args.extend(extra);
    let v = json(&args);
    let row = &v[0];
    assert_eq!(row["spec"]["server"]["name"], "pyftpdlib 2.2", "{row:#}");
    let runs = row["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        let failed: u64 = r["failed"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(n(r, "completed") + failed, 32, "{r:#}");
        assert!(n(r, "completed") >= 1, "{r:#}");
        assert!(f(r, "session_p50_ms") > 0.0, "{r:#}");
        // Paced arrivals never fill a listen queue.
        assert_eq!(r["listen"]["overflows"], 0, "{r:#}");
    }
    // CPU time in clock ticks (10 ms): over both runs' 32 sessions.
    let cpu: f64 = runs.iter().map(|r| f(r, "cpu_ms_per_session")).sum();
    assert!(cpu > 0.0, "{row:#}");
    let spread = &row["per_second"];
    assert!(f(spread, "min") <= f(spread, "median") && f(spread, "median") <= f(spread, "max"));
}

/// Every built-in server runs under `load` (Pure-FTPd included) with the
/// same topology, and a burst of arrivals is named where it costs: the
/// listen queue counters of the server's namespace. vsftpd's backlog is 32,
/// so 120 clients at one instant overflow it; paced arrivals do not.
#[test]
fn load_rows_for_every_server_and_burst_arrivals_show_listen_overflows() {
    require_root();
    let v = json(&[
        "load",
        "--servers",
        "reference,vsftpd,proftpd,pure-ftpd",
        "--clients",
        "20",
        "--transfers",
        "1",
        "--ports",
        "4",
        "--repeat",
        "1",
        "--limit",
        "60",
    ]);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["spec"]["server"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["reference", "vsftpd", "proftpd", "pure-ftpd"]);
    for row in v.as_array().unwrap() {
        let r = &row["runs"][0];
        assert!(n(r, "completed") >= 1, "{r:#}");
        // The reference server's thread (nanoseconds) and vsftpd's two
        // processes and network namespace per session (clock ticks) cost
        // measurable CPU.
        let name = row["spec"]["server"]["name"].as_str().unwrap();
        if ["reference", "vsftpd"].contains(&name) {
            assert!(f(r, "cpu_ms_per_session") > 0.0, "{r:#}");
        }
    }
    let burst = |arrivals: &str| {
        json(&[
            "load",
            "--servers",
            "vsftpd",
            "--clients",
            "120",
            "--transfers",
            "1",
            "--ports",
            "100",
            "--repeat",
            "1",
            "--limit",
            "60",
            "--arrivals",
            arrivals,
        ])[0]["runs"][0]
            .clone()
    };
    let b = burst("burst");
    assert!(n(&b["listen"], "overflows") > 0, "{b:#}");
    let p = burst("paced:16");
    assert_eq!(n(&p["listen"], "overflows"), 0, "{p:#}");
}

/// `ftpnat speed` for the server kinds beyond the default three: Pure-FTPd
/// and the user's own (pyftpdlib), each moving every byte both ways.
#[test]
fn speed_for_pure_ftpd_and_a_command_server() {
    require_root();
    let (server, extra) = pyftpdlib();
    let mut args = vec![
        "speed",
        "--size-mib",
        "4",
        "--repeat",
        "1",
        "--paths",
        "loopback",
        "--servers",
        "pure-ftpd",
        "--server",
        &server,
    ];
    args.extend(extra);
    let v = json(&args);
    let rows: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["bytes"], 4 << 20, "{r}");
            assert!(f(r, "mib_per_s") > 0.0, "{r}");
            (
                r["server"].as_str().unwrap().to_string(),
                r["direction"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("pure-ftpd", "RETR"),
        ("pure-ftpd", "STOR"),
        ("pyftpdlib 2.2", "RETR"),
        ("pyftpdlib 2.2", "STOR"),
    ];
    assert_eq!(
        rows,
        want.map(|(a, b)| (a.to_string(), b.to_string())),
        "{v:#}"
    );
}
