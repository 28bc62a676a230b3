//! The HTML report in a real browser: headless Chromium (Debian's
//! `chromium`, installed by ci/test.sh) opens the pages of a failing and a
//! passing scenario from `file://`; no console errors; the DOM holds the
//! failing step, the ladder's rewritten address and the drop reason; a
//! screenshot of the failing page is kept in `target/report-screens/` (a CI
//! artifact). Needs root (namespaces) and chromium; fails saying what to
//! install when either is missing.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

const BIN: &str = env!("CARGO_BIN_EXE_ftpnat");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the report tests build network namespaces: run as root (CI is root)"
    );
}

fn chromium() -> &'static str {
    for c in ["chromium", "chromium-browser"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c;
        }
    }
    panic!("headless Chromium is missing: apt-get install -y chromium (ci/test.sh does)");
}

/// Runs chromium headless with `args` on `url`, bounded by a timeout.
fn browse(args: &[&str], url: &str) -> Output {
    let child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(args)
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chromium starts");
    // Output is read while it runs (a DOM dump fills a pipe), bounded.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(out) => out.expect("chromium output"),
        Err(_) => {
            // This child only, by its PID.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("chromium did not finish within 90 s");
        }
    }
}

/// The page's DOM after its scripts ran, and the console errors chromium
/// logged (`CONSOLE` lines of level ERROR, or uncaught exceptions).
fn dom_and_console_errors(page: &Path) -> (String, Vec<String>) {
    let out = browse(&["--dump-dom"], &format!("file://{}", page.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let errors = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains(":ERROR:") || l.contains("Uncaught")))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), errors)
}

#[test]
fn report_pages_in_headless_chromium() {
    require_root();
    chromium();
    let tmp = tempfile::tempdir().unwrap();
    // The console check itself catches a script error.
    let broken = tmp.path().join("broken.html");
    std::fs::write(
        &broken,
        "<html><body><script>notDefined();</script></body></html>",
    )
    .unwrap();
    let (_, errs) = dom_and_console_errors(&broken);
    assert!(
        !errs.is_empty(),
        "a page with a script error must show a console error"
    );

    let report = tmp.path().join("report");
    let out = Command::new(BIN)
        .current_dir(root())
        .args([
            "run",
            "harness/tests/report/failing-range-only.toml",
            "scenarios/conformance/exhaustion-fallback-with-range-only-forwarding.toml",
            "--html",
        ])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "one scenario fails: {out:?}");

    let (index, errs) = dom_and_console_errors(&report.join("index.html"));
    assert!(errs.is_empty(), "index: {errs:?}");
    assert!(
        index.contains("1 passed") && index.contains("1 failed"),
        "{index}"
    );
    // Failures first, with their first failing step.
    let fail_at = index
        .find("report-range-only-forwarding-expected-to-work")
        .unwrap();
    let pass_at = index
        .find(">exhaustion-fallback-with-range-only-forwarding<")
        .unwrap();
    assert!(fail_at < pass_at);
    assert!(index.contains("step 13 (line 88)"), "{index}");
    // What the gateways saw, per scenario: the refused SYN and the 227.
    assert!(index.contains("1 drop(s), 1 flagged reply(ies)"), "{index}");
    // The filter script ran (it writes the count of rows shown).
    assert!(index.contains("2 shown"), "{index}");

    let failing = report.join("report-range-only-forwarding-expected-to-work.html");
    let (dom, errs) = dom_and_console_errors(&failing);
    assert!(errs.is_empty(), "failing page: {errs:?}");
    // The failing step, highlighted and linked to the ladder.
    assert!(
        dom.contains("<tr id=\"step-13\" class=\"failing\">"),
        "failing step row missing"
    );
    assert!(dom.contains("id=\"ladder-step-13\" class=\"step failed\""));
    // The ladder: an address rewritten by the NAT, the 227 with the
    // fallback port flagged, and the drop with its reason.
    assert!(
        dom.contains("DNAT 203.0.113.1:21 → 192.168.1.2:21"),
        "no rewritten address"
    );
    assert!(dom.contains("is not forwarded by gw"), "227 not flagged");
    assert!(
        dom.contains("✕ dropped: no mapping or forward → RST (refused)"),
        "no drop reason"
    );

    let passing = report.join("exhaustion-fallback-with-range-only-forwarding.html");
    let (dom, errs) = dom_and_console_errors(&passing);
    assert!(errs.is_empty(), "passing page: {errs:?}");
    assert!(dom.contains("class=\"ladder\""));
    assert!(dom.contains("✕ dropped: no mapping or forward"));

    // A screenshot of the failing page, kept for CI.
    let shots = root().join("target/report-screens");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join("failing-scenario.png");
    let _ = std::fs::remove_file(&png);
    let out = browse(
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1300,1500",
            "--hide-scrollbars",
        ],
        &format!("file://{}", failing.display()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{} bytes",
        bytes.len()
    );
}

/// validate-ruleset --html: the battery, and under each failing row the
/// rule of the user's rule set that dropped the probe (from the kernel's
/// nft trace) and its ladder.
#[test]
fn validate_ruleset_report_names_the_dropping_rule() {
    require_root();
    chromium();
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report");
    let out = Command::new(BIN)
        .current_dir(root())
        .args([
            "validate-ruleset",
            "scenarios/rulesets/only-port-21.nft",
            "--html",
        ])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let (dom, errs) = dom_and_console_errors(&report.join("index.html"));
    assert!(errs.is_empty(), "{errs:?}");
    assert!(
        dom.contains("id=\"row-passive-pasv\""),
        "failing row section missing"
    );
    // only-port-21.nft drops the passive range by its input policy: the
    // probe's SYN, and the chain and policy that dropped it.
    assert!(
        dom.contains(
            "dropped at gw wan0: policy drop of chain input [inet router input policy drop]"
        ),
        "dropping rule missing"
    );
    assert!(dom.contains("class=\"ladder\""));
    assert!(report.join("passive-pasv.html").exists());
}

/// load --html: the table and the three plots, drawn as inline SVG.
#[test]
fn load_report_has_table_and_plots() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "load",
            "--clients",
            "12",
            "--transfers",
            "3",
            "--ports",
            "2",
            "--policy",
            "wait",
            "--limit",
            "60",
            "--html",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = std::fs::read_to_string(tmp.path().join("index.html")).unwrap();
    assert_eq!(page.matches("<svg").count(), 3, "three plots");
    assert!(page.contains("completed transfers/s") && page.contains("ports of the range in use"));
    assert!(
        page.contains("<td>36/36</td>"),
        "all 36 transfers completed"
    );
    assert!(!page.contains("src=\"http"), "nothing fetched");
}

/// `run --engine sim,kernel --html` (the diff): a grid of scenario ×
/// engine, each cell linking to that engine's page with its own ladder
/// (the kernel's built from its recorded pcaps and nft trace).
#[test]
fn engine_comparison_report_links_each_engines_ladder() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(root())
        .args([
            "run",
            "scenarios/conformance/exhaustion-fallback-with-range-only-forwarding.toml",
            "--engine",
            "sim,kernel",
            "--html",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let index = std::fs::read_to_string(tmp.path().join("index.html")).unwrap();
    let page = "exhaustion-fallback-with-range-only-forwarding.html";
    for engine in ["sim", "kernel"] {
        assert!(
            index.contains(&format!("href=\"{engine}/{page}\"")),
            "{index}"
        );
        let p = std::fs::read_to_string(tmp.path().join(engine).join(page)).unwrap();
        assert!(
            p.contains("✕ dropped: no mapping or forward"),
            "{engine}: no drop in the ladder"
        );
    }
    let kernel = std::fs::read_to_string(tmp.path().join("kernel").join(page)).unwrap();
    assert!(
        kernel.contains("reject with tcp reset"),
        "the kernel's rule"
    );
}
