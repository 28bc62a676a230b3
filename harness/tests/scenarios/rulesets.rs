//! `ftpnat validate-ruleset` on rule sets as users have them (issue 17):
//! the shipped examples, a corpus of real tools' exports with the rows
//! their headers expect, rule sets that must be refused (with positions),
//! and the mechanisms a verdict rests on — a partial range fails on every
//! run whatever the router answers, the rule that dropped a probe is named
//! with its line, the JSON report is one object.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use super::{require_root, BIN};

/// Runs validate-ruleset with JSON output; (exit code, the object).
fn validate(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(BIN)
        .arg("validate-ruleset")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: {e}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

/// Row name → the row.
fn rows(report: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    report["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows: {report:#}"))
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

/// A row's cause, shared cause and blocking rules as one text.
fn explanation(report: &serde_json::Value, row: &serde_json::Value) -> String {
    let mut t = row["cause"].as_str().unwrap_or("").to_string();
    if let Some(id) = row["shared_cause"].as_str() {
        for c in report["shared_causes"].as_array().into_iter().flatten() {
            if c["id"] == id {
                t.push_str(c["text"].as_str().unwrap_or(""));
            }
        }
    }
    for b in row["blocked_by"].as_array().into_iter().flatten() {
        t.push_str(&format!(" {b}"));
    }
    t
}

/// A rule set's header: its cases (arguments and expectations).
#[derive(Debug, Default, Clone)]
struct Case {
    args: Vec<String>,
    pass: Vec<String>,
    fail: Vec<String>,
    warnings: Vec<String>,
    causes: Vec<(String, String)>,
    load_error: Option<String>,
}

fn cases(file: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out: Vec<Case> = Vec::new();
    let list = |v: &str| -> Vec<String> { v.split(',').map(|s| s.trim().to_string()).collect() };
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# ") else {
            continue;
        };
        let Some((key, value)) = rest.split_once(": ") else {
            continue;
        };
        match key {
            "args" => out.push(Case {
                args: value.split_whitespace().map(String::from).collect(),
                ..Case::default()
            }),
            "then" => {
                let base = out[0].args.clone();
                let mut args: Vec<String> = value.split_whitespace().map(String::from).collect();
                // Extra files go next to the first; options after.
                args.extend(base);
                out.push(Case {
                    args,
                    ..Case::default()
                });
            }
            _ => {
                let Some(c) = out.last_mut() else { continue };
                match key {
                    "expect-pass" => c.pass = list(value),
                    "expect-fail" => c.fail = list(value),
                    "expect-warning" => c.warnings = list(value),
                    "expect-load-error" => c.load_error = Some(value.to_string()),
                    "expect-cause" => {
                        let (row, what) = value.split_once(": ").unwrap();
                        c.causes.push((row.to_string(), what.to_string()));
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// Every `at` (file:line) of a row's blocking rules points at a line of
/// the user's files that says what the verdict says.
fn blocking_lines_are_real(dir: &Path, report: &serde_json::Value) {
    for (name, row) in rows(report) {
        for b in row["blocked_by"].as_array().into_iter().flatten() {
            let Some(at) = b["at"].as_str() else { continue };
            let (file, line) = at.rsplit_once(':').unwrap();
            let path = if Path::new(file).is_absolute() {
                PathBuf::from(file)
            } else {
                dir.join(file)
            };
            let text =
                std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {at}: {e}"));
            let n: usize = line.parse().unwrap();
            let l = text
                .lines()
                .nth(n - 1)
                .unwrap_or_else(|| panic!("{at}: no such line"));
            let verdict = b["verdict"].as_str().unwrap();
            let ok = match verdict {
                "rejected" => l.contains("reject") || l.contains("REJECT"),
                "dropped" => l.contains("drop") || l.contains("DROP"),
                "policy-drop" => l.contains("policy drop") || l.contains(" DROP ["),
                "not-dnat" => l.contains("chain ") || l.starts_with(':'),
                "accepted" => l.contains("accept") || l.contains("ACCEPT") || l.contains("-j "),
                other => panic!("verdict {other}"),
            };
            assert!(ok, "{name}: {verdict} at {at}: {l:?}\n{b}");
        }
    }
}

/// The corpus of real tools' exports: each gets the rows its header
/// expects, its warnings and causes; failing rows name real lines.
#[test]
fn real_world_rule_sets_get_their_verdicts() {
    require_root();
    let dir = Path::new("../scenarios/rulesets/real-world");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && std::fs::read_to_string(p).unwrap().contains("\n# args: "))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "{files:?}");
    let mut failures = Vec::new();
    for f in &files {
        for case in cases(f) {
            let mut args: Vec<String> = vec![f.file_name().unwrap().to_string_lossy().into()];
            args.extend(case.args.iter().cloned());
            args.extend(["--jobs".into(), "4".into()]);
            let out = Command::new(BIN)
                .current_dir(dir)
                .arg("validate-ruleset")
                .args(&args)
                .args(["--format", "json"])
                .output()
                .unwrap();
            let what = format!("{} {}", f.display(), args.join(" "));
            let report: serde_json::Value = match serde_json::from_slice(&out.stdout) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!(
                        "{what}: {e}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                    continue;
                }
            };
            if let Some(err) = &case.load_error {
                let msg = report["message"].as_str().unwrap_or("");
                if out.status.code() != Some(2) || !msg.contains(err.as_str()) {
                    failures.push(format!(
                        "{what}: expected a load error with {err:?}: {report:#}"
                    ));
                }
                continue;
            }
            let got = rows(&report);
            for r in &case.pass {
                if got.get(r).map(|x| x["result"].as_str()) != Some(Some("pass")) {
                    failures.push(format!(
                        "{what}: {r} should pass: {:#}",
                        got.get(r).cloned().unwrap_or_default()
                    ));
                }
            }
            for r in &case.fail {
                match got.get(r).and_then(|x| x["result"].as_str()) {
                    Some("fail" | "no") => {}
                    other => failures.push(format!("{what}: {r} should fail, got {other:?}")),
                }
            }
            let warnings = report["warnings"].to_string();
            // A warning nobody expected is a finding too (a name taken
            // for an interface that is none, a table dropped …).
            if case.warnings.is_empty() && warnings != "[]" {
                failures.push(format!("{what}: unexpected warnings: {warnings}"));
            }
            for w in &case.warnings {
                if !warnings.contains(w.as_str()) {
                    failures.push(format!("{what}: no warning with {w:?}: {warnings}"));
                }
            }
            for (r, c) in &case.causes {
                let e = got
                    .get(r)
                    .map(|row| explanation(&report, row))
                    .unwrap_or_default();
                if !e.contains(c.as_str()) {
                    failures.push(format!("{what}: {r}: cause without {c:?}: {e}"));
                }
            }
            let required_fail = got
                .values()
                .any(|r| r["required"] == true && r["result"] != "pass");
            if out.status.code() != Some(if required_fail { 1 } else { 0 })
                || report["exit_code"] != i32::from(required_fail)
            {
                failures.push(format!(
                    "{what}: exit {:?} / {}",
                    out.status.code(),
                    report["exit_code"]
                ));
            }
            blocking_lines_are_real(dir, &report);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A DNAT for part of the passive range fails range-reachable on every
/// run, whether the router drops unforwarded ports, rejects them with a
/// RST (OpenWrt) or its kernel answers RST (no input filter): a port
/// counts only when the server's own listener accepted it.
#[test]
fn a_partial_range_fails_on_every_run_whatever_the_router_answers() {
    require_root();
    let dir = "../scenarios/rulesets";
    let fw4 = [
        "--wan",
        "pppoe-wan=198.51.100.2/32",
        "--lan",
        "br-lan=192.168.1.1/24",
        "--server",
        "192.168.1.10",
        "--passive",
        "50000-50100",
    ];
    let plain = [
        "--wan",
        "eth0=203.0.113.1/24",
        "--lan",
        "eth1=192.168.1.1/24",
    ];
    let cases: [(&str, &[&str], &str, &str); 3] = [
        ("partial-range.nft", &[], "60006-60010", "no answer"),
        (
            "real-world/bare-nat-box-partial-range.nft",
            &plain,
            "60006-60010",
            "refused with a RST",
        ),
        (
            "real-world/openwrt-fw4-partial-range.nft",
            &fw4,
            "50051-50100",
            "refused with a RST",
        ),
    ];
    for (file, args, missing, how) in cases {
        for run in 0..3 {
            let path = format!("{dir}/{file}");
            let mut a = vec![
                path.as_str(),
                "--rows",
                "range-reachable,passive-epsv",
                "--jobs",
                "2",
            ];
            a.extend(args);
            let (code, report) = validate(&a);
            assert_eq!(code, Some(1), "{file} run {run}: {report:#}");
            let r = &rows(&report)["range-reachable"];
            assert_eq!(r["result"], "fail", "{file}: {r:#}");
            let cause = r["cause"].as_str().unwrap();
            assert!(
                cause.contains(missing) && cause.contains(how),
                "{file}: {cause}"
            );
            // The probes to the unforwarded ports met no DNAT.
            let blocked = r["blocked_by"].to_string();
            assert!(blocked.contains(missing), "{file}: {blocked}");
        }
    }
}

/// The rule that dropped a probe is named with its line; the router's
/// own open ports are their own row, with the rule that accepts them.
#[test]
fn failing_rows_name_the_rule_and_its_line() {
    require_root();
    let dir = Path::new(".");
    let (code, report) = validate(&[
        "../scenarios/rulesets/real-world/old-iptables-router.iptables",
        "--wan",
        "eth0=203.0.113.1/24",
        "--lan",
        "eth1=192.168.0.1/24",
        "--server",
        "192.168.0.2",
        "--rows",
        "router-exposure,exposure,inside-client-active",
        "--jobs",
        "3",
    ]);
    assert_eq!(code, Some(1), "{report:#}");
    let got = rows(&report);
    let exp = &got["router-exposure"];
    assert_eq!(exp["result"], "fail");
    assert!(
        exp["cause"]
            .as_str()
            .unwrap()
            .contains("gw accepted port(s) 22, 80"),
        "{exp:#}"
    );
    let by = exp["blocked_by"].as_array().unwrap();
    // Port 22 is let in by the script's `allowed` chain (its line), which
    // the tcp_packets rule for port 22 jumps to (its line).
    assert!(
        by.iter().any(|b| b["verdict"] == "accepted"
            && b["chain"] == "ip filter allowed"
            && b["ports"] == "22"
            && b["at"]
                .as_str()
                .unwrap()
                .ends_with("old-iptables-router.iptables:64")
            && b["via"]
                .as_str()
                .unwrap()
                .ends_with("old-iptables-router.iptables:73)")),
        "{exp:#}"
    );
    assert_eq!(got["exposure"]["result"], "pass");
    // An inside client's active mode: without a helper the outside server
    // sees the private address in PORT and refuses it.
    let active = &got["inside-client-active"];
    assert_eq!(active["result"], "no");
    assert!(
        active["cause"]
            .as_str()
            .unwrap()
            .contains("500 Illegal PORT"),
        "{active:#}"
    );
    blocking_lines_are_real(dir, &report);
}

/// `--format json` is one object, also on exit 2; `--input` names what
/// the file is; nft and kernel versions are in every report.
#[test]
fn the_json_report_is_one_object() {
    require_root();
    let (code, report) = validate(&[
        "../scenarios/rulesets/good-router.iptables",
        "--input",
        "iptables",
        "--rows",
        "control-connection",
        "--jobs",
        "1",
    ]);
    assert_eq!(code, Some(0), "{report:#}");
    for key in [
        "parameters",
        "host",
        "warnings",
        "rows",
        "summary",
        "exit_code",
    ] {
        assert!(report.get(key).is_some(), "{key} missing: {report:#}");
    }
    assert_eq!(report["parameters"]["input"][0], "iptables");
    assert_eq!(report["parameters"]["server_masquerade"], "assumed");
    assert_eq!(report["parameters"]["wan"][0], "wan0=203.0.113.1/24");
    assert!(report["host"]["nft"]
        .as_str()
        .unwrap()
        .starts_with(|c: char| c.is_ascii_digit()));
    assert!(!report["host"]["kernel"].as_str().unwrap().is_empty());
    assert_eq!(report["summary"]["rows"], 1);
    assert_eq!(report["rows"][0]["result"], "pass");
    // Exit 2: the error is an object too, with the position and a note
    // when the problem may be this machine's.
    let (code, err) = validate(&["tests/scenarios/broken-rulesets/nft-missing-brace.nft"]);
    assert_eq!(code, Some(2));
    assert_eq!(err["error"], "load");
    assert_eq!(err["exit_code"], 2);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("nft-missing-brace.nft:5:"),
        "{err:#}"
    );
    assert!(
        err["host_caveat"].as_str().unwrap().contains("nft"),
        "{err:#}"
    );
    let (code, err) = validate(&["../scenarios/rulesets/real-world/ufw-nft-list.nft"]);
    assert_eq!(
        (code, err["error"].as_str()),
        (Some(2), Some("iptables-nft")),
        "{err:#}"
    );
    let (code, err) = validate(&["/nonexistent.nft"]);
    assert_eq!(
        (code, err["error"].as_str()),
        (Some(2), Some("read")),
        "{err:#}"
    );
    let (code, err) = validate(&["../scenarios/rulesets/good-router.nft", "--rows", "nope"]);
    assert_eq!(
        (code, err["error"].as_str()),
        (Some(2), Some("input")),
        "{err:#}"
    );
    // The table names the machine too.
    let out = Command::new(BIN)
        .args([
            "validate-ruleset",
            "../scenarios/rulesets/good-router.nft",
            "--rows",
            "control-connection",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("; nft ") && text.contains(", kernel "),
        "{text}"
    );
}

/// Includes: relative to the rule set's folder, `-I` folders after it; a
/// glob that matches nothing is a warning naming it; a missing file is
/// exit 2 naming the include and what to do.
#[test]
fn includes_resolve_like_nft_and_say_what_is_missing() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let site = tempfile::tempdir().unwrap();
    let main = d.path().join("router.nft");
    std::fs::write(
        &main,
        "include \"vars.nft\"\ninclude \"site.nft\"\ninclude \"conf.d/*.nft\"\ntable inet router {\n chain prerouting {\n  type nat hook prerouting priority dstnat; policy accept;\n  iif $WAN tcp dport { 21, 60000-60010 } dnat ip to 192.168.1.2\n }\n chain postrouting {\n  type nat hook postrouting priority srcnat; policy accept;\n  oif $WAN masquerade\n }\n}\n",
    )
    .unwrap();
    std::fs::write(d.path().join("vars.nft"), "define WAN = \"wan0\"\n").unwrap();
    std::fs::write(site.path().join("site.nft"), "# site additions\n").unwrap();
    let m = main.to_string_lossy().to_string();
    let (code, err) = validate(&[&m]);
    assert_eq!(code, Some(2), "{err:#}");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("router.nft:2: include \"site.nft\": no such file") && msg.contains("-I DIR"),
        "{msg}"
    );
    let s = site.path().to_string_lossy().to_string();
    let (code, report) = validate(&[
        &m,
        "-I",
        &s,
        "--rows",
        "control-connection,passive-epsv",
        "--jobs",
        "2",
    ]);
    assert_eq!(code, Some(0), "{report:#}");
    let w = report["warnings"].to_string();
    assert!(
        w.contains("router.nft:3: include \\\"conf.d/*.nft\\\" matches no file"),
        "{w}"
    );
}

/// Interface names: `iif`/`oif` on the gateway's own names load (the
/// check has them too); names the gateway lacks become placeholders and a
/// warning naming them; several --lan/--wan give the gateway those too.
#[test]
fn interface_names_as_the_router_has_them() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("router.nft");
    std::fs::write(
        &f,
        "table inet router {\n chain prerouting {\n  type nat hook prerouting priority dstnat; policy accept;\n  iif \"wan0\" tcp dport { 21, 60000-60010 } dnat ip to 192.168.1.2\n }\n chain postrouting {\n  type nat hook postrouting priority srcnat; policy accept;\n  oif { \"wan0\", \"wan1\" } masquerade\n }\n chain forward {\n  type filter hook forward priority filter; policy drop;\n  ct state established,related accept\n  iif \"guest\" oif \"wan0\" accept\n  iif \"lan0\" accept\n  iifname \"wan0\" ct status dnat accept\n  iifname \"wg0\" accept\n }\n}\n",
    )
    .unwrap();
    let path = f.to_string_lossy().to_string();
    let (code, report) = validate(&[
        &path,
        "--lan",
        "lan0=192.168.1.1/24",
        "--lan",
        "guest=192.168.2.1/24",
        "--wan",
        "wan0=203.0.113.1/24",
        "--wan",
        "wan1=198.51.100.2/24",
        "--rows",
        "control-connection,inside-client-passive",
        "--jobs",
        "2",
    ]);
    assert_eq!(code, Some(0), "{report:#}");
    let w = report["warnings"].to_string();
    assert!(
        w.contains("wg0 (") && !w.contains("guest (") && !w.contains("wan1 ("),
        "{w}"
    );
    assert_eq!(report["parameters"]["lan"][1], "guest=192.168.2.1/24");
    // Without the extra names, `iif "guest"` would not load: they become
    // placeholders, with a warning.
    let (code, report) = validate(&[&path, "--rows", "control-connection", "--jobs", "1"]);
    assert_eq!(code, Some(0), "{report:#}");
    let w = report["warnings"].to_string();
    assert!(
        w.contains("guest (") && w.contains("wan1 (") && w.contains("wg0 ("),
        "{w}"
    );
}

/// A design that carries passive mode by the FTP helper: one cause for the
/// rows it explains, and declared as it runs (a server without
/// masquerade) it passes.
#[test]
fn helper_only_passive_gets_one_cause_and_passes_as_declared() {
    require_root();
    let f = "../scenarios/rulesets/real-world/helper-only-passive.nft";
    let iface = [
        "--wan",
        "eth0=203.0.113.1/24",
        "--lan",
        "eth1=192.168.1.1/24",
    ];
    let mut a = vec![
        f,
        "--rows",
        "passive-pasv,passive-epsv,range-reachable,passive-without-masquerade",
        "--jobs",
        "4",
    ];
    a.extend(iface);
    let (code, report) = validate(&a);
    assert_eq!(code, Some(1), "{report:#}");
    let shared = &report["shared_causes"][0];
    assert_eq!(shared["id"], "helper-carries-passive");
    assert_eq!(
        shared["rows"],
        serde_json::json!(["passive-pasv", "range-reachable"])
    );
    let got = rows(&report);
    for r in ["passive-pasv", "range-reachable"] {
        assert_eq!(got[r]["shared_cause"], "helper-carries-passive", "{r}");
        assert!(got[r]["cause"].is_null(), "{r}");
    }
    let mut a = vec![f, "--server-masquerade", "no", "--jobs", "4"];
    a.extend(iface);
    let (code, report) = validate(&a);
    assert_eq!(code, Some(0), "{report:#}");
    let got = rows(&report);
    assert_eq!(got["passive-pasv"]["result"], "pass");
    assert_eq!(got["range-reachable"]["required"], false);
    assert!(!got.contains_key("passive-without-masquerade"));
    assert_eq!(report["parameters"]["server_masquerade"], "no");
}

/// A corpus of rule sets and settings files that do not load: each exits 2
/// with the loader's (or our) message naming the file and line, in one
/// snapshot; no battery row runs.
#[test]
fn broken_rule_sets_are_refused_with_positions() {
    require_root();
    let mut files: Vec<PathBuf> = std::fs::read_dir("tests/scenarios/broken-rulesets")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let mut all = String::new();
    let version = regex::Regex::new(r"nft \d+\.\d+(\.\d+)?").unwrap();
    for f in &files {
        let out = Command::new(BIN)
            .args(["validate-ruleset", "--jobs", "1"])
            .arg(f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", f.display());
        assert!(out.stdout.is_empty(), "no row ran for {}", f.display());
        let name = f.display().to_string();
        let positioned = regex::Regex::new(&format!(r"{}:\d+", regex::escape(&name))).unwrap();
        assert!(
            positioned.is_match(&err)
                || f.file_name().unwrap() == "settings-without-ruleset.toml"
                || err.contains("is not inside"),
            "{err}"
        );
        // This machine's nft version is in the note; the snapshot is not
        // about it.
        let err = version.replace_all(&err, "nft <version>");
        all.push_str(&format!(
            "== {}\n{err}",
            f.file_name().unwrap().to_string_lossy()
        ));
    }
    insta::assert_snapshot!(all);
}

/// Every shipped rule set gets the verdict written in its header
/// (`# expect-pass: …`, `# expect-fail: …`, `# expect-load-error`).
#[test]
fn shipped_rule_sets_get_their_verdicts() {
    require_root();
    let dir = Path::new("../scenarios/rulesets");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "nft" || e == "iptables" || e == "toml")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 6, "a good rule set and several broken ones");
    for ext in ["iptables", "toml"] {
        assert!(
            files.iter().any(|f| f.extension().unwrap() == ext),
            "a .{ext} example"
        );
    }
    let missing = Command::new(BIN)
        .args(["validate-ruleset", "/nonexistent.nft"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let list = |key: &str| -> Vec<String> {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default()
        };
        let out = Command::new(BIN)
            .args(["validate-ruleset", "--jobs", "3", "--format", "json"])
            .arg(&f)
            .output()
            .unwrap();
        if text.contains("# expect-load-error") {
            assert_eq!(out.status.code(), Some(2), "{}", f.display());
            let err = String::from_utf8_lossy(&out.stdout);
            let name = f.file_name().unwrap().to_string_lossy();
            assert!(
                regex::Regex::new(&format!(r"{}:\d+", regex::escape(&name)))
                    .unwrap()
                    .is_match(&err),
                "{err}"
            );
            continue;
        }
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: {}",
                f.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let rows = &report["rows"];
        let status = |name: &str| -> String {
            rows.as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == name)
                .unwrap_or_else(|| panic!("no row {name}"))["result"]
                .as_str()
                .unwrap()
                .to_string()
        };
        for row in list("expect-pass") {
            assert_eq!(status(&row), "pass", "{}: {row}\n{rows:#}", f.display());
        }
        let fails = list("expect-fail");
        for row in &fails {
            assert_ne!(status(row), "pass", "{}: {row} should fail", f.display());
        }
        let required_fail = rows
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["required"] == true && r["result"] != "pass");
        assert_eq!(
            out.status.code(),
            Some(if required_fail { 1 } else { 0 }),
            "{}",
            f.display()
        );
    }
}
