//! Scenario files, the runner, reports and the CLI (issue 6), plus real
//! clients through the sim gateway (issue 5). Needs root (CI is root).

use std::collections::BTreeMap;
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use ftpnat::{
    outcome::Status,
    runner::{self, Lab, RunOptions},
    scenario,
};

mod adversarial;
mod firstrun;
mod honesty;
mod load;
mod rulesets;

const SUITE: &str = "../scenarios/conformance";
const BIN: &str = env!("CARGO_BIN_EXE_ftpnat");

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "scenario tests build network namespaces: run them as root (CI does), e.g. `sudo -E cargo test --test scenarios`"
    );
}

/// The pyftpdlib virtualenv's python (ci/test.sh makes it), or a failure
/// saying how to get it.
fn pyftpdlib_python() -> &'static str {
    let py = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/peers/pyftpdlib/bin/python"
    );
    assert!(
        std::path::Path::new(py).exists(),
        "{py} is missing: run ci/test.sh (it creates the pyftpdlib virtualenv)"
    );
    py
}

fn suite() -> Vec<scenario::Scenario> {
    let files = scenario::discover(&[PathBuf::from(SUITE)]).unwrap();
    files
        .iter()
        .map(|f| scenario::load(f).unwrap_or_else(|d| panic!("{d}")))
        .collect()
}

#[test]
fn conformance_suite_passes_and_covers_every_seed_behaviour() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let art = dir.path().join("art");
    let out = Command::new(BIN)
        .args(["run", SUITE, "--format", "json", "--junit"])
        .arg(&junit)
        .arg("--artifacts")
        .arg(&art)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    let failures: Vec<String> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] != "pass")
        .map(|s| format!("{}: {}", s["name"], s["failure"]))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(out.status.code(), Some(0));
    let summary = &report["summary"];
    let passed = summary["passed"].as_u64().unwrap();
    assert!(
        passed >= 30,
        "at least 30 conformance scenarios, got {passed}"
    );
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["errors"], 0);
    // Every seed behaviour has a scenario (DESIGN.md), by tag.
    let tags: BTreeSet<String> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
        })
        .collect();
    for t in [
        "masquerade",
        "masquerade-dns",
        "passive-range",
        "pasv-format",
        "exhaustion-fallback",
        "forwarding",
        "firewall",
        "exposure",
        "port-mismatch",
        "deny-passive",
        "per-client-masquerade",
        "rfc2428",
        "rfc2577",
    ] {
        assert!(tags.contains(t), "no scenario tagged {t}");
    }
    // JSON report fields (documented in docs/report-format.md).
    let first = &report["scenarios"][0];
    for k in [
        "name",
        "file",
        "tags",
        "status",
        "duration_ms",
        "steps",
        "failure",
    ] {
        assert!(first.get(k).is_some(), "scenario entry lacks {k}");
    }
    // JUnit: parses, one testcase per scenario, no failures.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suite = root
        .children()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(
        suite.attribute("tests").unwrap().parse::<u64>().unwrap(),
        passed
    );
    assert_eq!(suite.attribute("failures"), Some("0"));
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len() as u64, passed);
    assert!(cases
        .iter()
        .all(|c| c.attribute("name").is_some() && c.attribute("time").is_some()));
    // Artifacts: a pcap that parses into the frames we sent, and an SVG that parses.
    let sc = art.join("masquerade-pasv-public-address");
    let pcap = std::fs::File::open(sc.join("gw-wan0.pcap")).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(pcap).unwrap();
    let mut frames = 0;
    let mut saw_227 = false;
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.unwrap();
        let parsed = etherparse::SlicedPacket::from_ethernet(&pkt.data).unwrap();
        if let Some(etherparse::TransportSlice::Tcp(t)) = parsed.transport {
            let payload = t.payload();
            saw_227 |= payload.starts_with(b"227 Entering Passive Mode (203,0,113,1,");
        }
        frames += 1;
    }
    assert!(frames > 10, "{frames} frames");
    assert!(
        saw_227,
        "the 227 with the public address crossed the WAN interface"
    );
    let svg = std::fs::read_to_string(sc.join("topology.svg")).unwrap();
    let svg = roxmltree::Document::parse(&svg).unwrap();
    assert!(svg
        .descendants()
        .any(|n| n.text() == Some("gw [sim engine]")));
    for f in [
        "client.transcript.txt",
        "server-server.log",
        "gw.counters.json",
        "gw.packets.log",
    ] {
        assert!(sc.join(f).exists(), "artifact {f} missing");
    }
}

#[test]
fn shards_cover_every_scenario_exactly_once() {
    let all: BTreeSet<String> = suite().into_iter().map(|s| s.name).collect();
    for n in 1..=5 {
        let mut seen = BTreeSet::new();
        for k in 1..=n {
            for s in runner::shard(suite(), k, n) {
                assert!(
                    seen.insert(s.name.clone()),
                    "{} in two shards of {n}",
                    s.name
                );
            }
        }
        assert_eq!(seen, all, "shards of {n}");
    }
    assert_eq!(runner::parse_shard("2/3"), Some((2, 3)));
    assert_eq!(runner::parse_shard("0/3"), None);
    assert_eq!(runner::parse_shard("4/3"), None);
}

#[test]
fn broken_scenario_files_get_positioned_errors() {
    let dir = Path::new("tests/scenarios/broken");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 12);
    let mut all = String::new();
    for f in &files {
        let d = scenario::load(f).expect_err(&format!("{} must be rejected", f.display()));
        assert!(d.line >= 1 && d.column >= 1, "{d}");
        all.push_str(&format!("{d}\n"));
        // The pretty form names the file and underlines the spot.
        assert!(d.pretty().contains(&f.display().to_string()));
    }
    insta::assert_snapshot!(all);
}

#[test]
fn cli_exit_codes() {
    let code = |args: &[&str]| Command::new(BIN).args(args).output().unwrap().status.code();
    assert_eq!(code(&["check", SUITE]), Some(0));
    assert_eq!(
        code(&["check", "tests/scenarios/broken/bad-address.toml"]),
        Some(2)
    );
    assert_eq!(code(&["run", SUITE, "--shard", "0/3"]), Some(2));
    assert_eq!(code(&["run", SUITE, "--filter", "(unclosed"]), Some(2));
    assert_eq!(
        code(&["run", SUITE, "--filter", "^no-such-scenario$"]),
        Some(2)
    );
    if nix::unistd::geteuid().is_root() {
        let out = Command::new(BIN)
            .args(["run", "tests/scenarios/failing"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("FAIL  deliberately-failing"), "{text}");
        assert!(text.contains("expected reply 230, got 220"), "{text}");
        assert!(text.contains("0 passed, 1 failed, 0 errors"), "{text}");
    }
    let schema = Command::new(BIN).arg("schema").output().unwrap();
    let schema: serde_json::Value = serde_json::from_slice(&schema.stdout).unwrap();
    assert!(schema["properties"]["gateway"].is_object());
}

/// Ports and timings differ per run; everything else must not.
fn normalise(t: &str) -> String {
    let pasv = regex::Regex::new(r"(\d+,\d+,\d+,\d+),\d+,\d+").unwrap();
    let port = regex::Regex::new(r"(\d+\.\d+\.\d+\.\d+):\d{4,5}").unwrap();
    let epsv = regex::Regex::new(r"\|\|\|\d+\|").unwrap();
    let eprt = regex::Regex::new(r"\|1\|([\d.]+)\|\d+\|").unwrap();
    let t = pasv.replace_all(t, "$1,P1,P2");
    let t = port.replace_all(&t, "$1:PORT");
    let t = epsv.replace_all(&t, "|||PORT|");
    eprt.replace_all(&t, "|1|$1|PORT|").into_owned()
}

#[test]
fn transcripts_of_key_scenarios() {
    require_root();
    for name in [
        "masquerade-pasv-public-address",
        "port-mismatch-active-behind-nat-alg-off",
        "alg-correct-fixes-active-mode",
        "exhaustion-fallback-with-range-only-forwarding",
    ] {
        let sc = suite().into_iter().find(|s| s.name == name).unwrap();
        let r = runner::run_scenario(&sc, &RunOptions::default());
        assert_eq!(r.status, Status::Pass, "{:?}", r.failure);
        let text: String = r
            .transcripts
            .iter()
            .map(|(client, t)| {
                // Drop the timestamp column.
                let body: String = t
                    .lines()
                    .map(|l| l.trim_start().split_once(' ').map_or(l, |(_, rest)| rest))
                    .map(|l| format!("{l}\n"))
                    .collect();
                format!("## {client}\n{}", normalise(&body))
            })
            .collect();
        insta::assert_snapshot!(name, text);
    }
}

fn start_lab(text: &str) -> (tempfile::TempDir, Lab) {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario::parse(text, Path::new("inline.toml"))
        .unwrap_or_else(|d| panic!("{}", d.pretty()));
    let lab = Lab::start(&sc, &dir.path().join("lab"), true).unwrap();
    (dir, lab)
}

fn inside_client_outside_server(gateway_extra: &str) -> String {
    format!(
        r#"
name = "curl-lab"
[[gateway]]
name = "cgw"
lan = "192.168.1.1/24"
wan = "203.0.113.1/24"
{gateway_extra}
[[host]]
name = "server"
addr = "203.0.113.2/24"
files = {{ "hello.txt" = "hello through the NAT\n" }}
server = {{ kind = "reference", config = {{ passive_ports = [60000, 60010] }} }}
[[host]]
name = "client"
addr = "192.168.1.50/24"
"#
    )
}

fn curl(lab: &Lab, args: &[&str]) -> std::process::Output {
    let mut all = vec!["-sS", "--max-time", "10"];
    all.extend_from_slice(args);
    let mut cmd = lab.topo.command("client", "curl", &all).unwrap();
    cmd.output().unwrap_or_else(|e| {
        panic!("cannot run curl: {e} — install it (apt-get install -y curl) or run ci/test.sh")
    })
}

#[test]
fn curl_passive_through_each_mapping_type() {
    require_root();
    for mapping in [
        "endpoint-independent",
        "address-dependent",
        "address-and-port-dependent",
    ] {
        let (_d, lab) = start_lab(&inside_client_outside_server(&format!(
            "nat = {{ mapping = \"{mapping}\", filtering = \"{mapping}\", ports = \"random\" }}"
        )));
        let out = curl(
            &lab,
            &[
                "--disable-epsv",
                "--no-ftp-skip-pasv-ip",
                "ftp://203.0.113.2/hello.txt",
            ],
        );
        assert!(
            out.status.success(),
            "{mapping}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"hello through the NAT\n", "{mapping}");
        let counters = lab.stop();
        assert!(
            counters["cgw"].mappings_created >= 2,
            "{mapping}: {:?}",
            counters["cgw"]
        );
    }
}

#[test]
fn curl_active_mode_needs_the_alg() {
    require_root();
    // ALG off: the server refuses the PORT naming 192.168.1.50.
    let (_d, lab) = start_lab(&inside_client_outside_server(""));
    let out = curl(&lab, &["--ftp-port", "-", "ftp://203.0.113.2/hello.txt"]);
    assert!(!out.status.success());
    let log = lab.servers["server"].log();
    assert!(log.contains("(address mismatch)"), "{log}");
    lab.stop();
    // ALG correct: rewritten, transfer works; the packet log says so.
    let (_d, lab) = start_lab(&inside_client_outside_server("alg = \"correct\""));
    let out = curl(&lab, &["--ftp-port", "-", "ftp://203.0.113.2/hello.txt"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"hello through the NAT\n");
    let counters = lab.stop();
    assert!(counters["cgw"].alg_rewrites >= 1);
    assert!(counters["cgw"].related_flows >= 1);
}

#[test]
fn lftp_through_port_forward_with_and_without_masquerade() {
    require_root();
    for (masq, expect_ok) in [(true, true), (false, false)] {
        let cfg = if masq {
            "masquerade_address = \"203.0.113.1\", "
        } else {
            ""
        };
        let text = format!(
            r#"
name = "lftp-lab"
[[gateway]]
name = "gw"
lan = "192.168.1.1/24"
wan = "203.0.113.1/24"
reject_unsolicited = true
forward = [ {{ ports = "21", to = "server" }}, {{ ports = "60000-60010", to = "server" }} ]
[[host]]
name = "server"
addr = "192.168.1.2/24"
files = {{ "hello.txt" = "hello through the NAT\n" }}
server = {{ kind = "reference", config = {{ {cfg}passive_ports = [60000, 60010] }} }}
[[host]]
name = "client"
addr = "203.0.113.10/24"
"#
        );
        let (_d, lab) = start_lab(&text);
        // lftp "fixes" private PASV addresses by default; turn that off to see the truth.
        let script = "set ftp:passive-mode true; set ftp:prefer-epsv false; set ftp:fix-pasv-address false; set ftp:auto-passive-mode false; set net:max-retries 1; set net:timeout 3; open 203.0.113.1; cat hello.txt";
        let out = lab
            .topo
            .command("client", "lftp", &["-c", script])
            .unwrap()
            .output()
            .expect("lftp (apt-get install -y lftp)");
        assert_eq!(
            out.status.success(),
            expect_ok,
            "masquerade={masq}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if expect_ok {
            assert_eq!(out.stdout, b"hello through the NAT\n");
        }
        lab.stop();
    }
}

#[test]
fn sim_and_kernel_engines_agree_except_where_explained() {
    require_root();
    let out = Command::new(BIN)
        .args(["diff", SUITE, "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let behaviour: Vec<&str> = v["disagreements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "behaviour")
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(behaviour.is_empty(), "{v}");
    // Linux masquerades hairpin traffic to the LAN interface's address, the
    // sim gateway to the public one: the scenario says so (kernel-differs).
    let documented: Vec<&str> = v["disagreements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "documented")
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        documented,
        vec!["masquerade-hairpin-mixed-paths-trip-theft-protection"],
        "{v}"
    );
    assert_eq!(out.status.code(), Some(0));
    let agree =
        v["scenarios"].as_u64().unwrap() - v["disagreements"].as_array().unwrap().len() as u64;
    assert!(agree >= 30, "{agree} scenarios agree across engines");
}

/// `run --engine sim,kernel` is the same differential check, on a selection.
#[test]
fn run_with_both_engines_reports_disagreements() {
    require_root();
    let out = Command::new(BIN)
        .args(["run", SUITE, "--engine", "sim,kernel", "--format", "json"])
        .args(["--filter", "^(masquerade-hairpin-mixed-paths-trip-theft-protection|pasv-format-227|nat-endpoint-independent-mapping-passive-client)$"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["scenarios"], 3, "{v}");
    let kinds: Vec<(&str, &str)> = v["disagreements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap(), d["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                "masquerade-hairpin-mixed-paths-trip-theft-protection",
                "documented"
            ),
            (
                "nat-endpoint-independent-mapping-passive-client",
                "not-expressible"
            ),
        ],
        "{v}"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn kernel_engine_passes_the_seed_scenarios() {
    require_root();
    let out = Command::new(BIN)
        .args(["run", SUITE, "--engine", "kernel", "--tag", "exhaustion-fallback", "--tag", "port-mismatch", "--tag", "firewall", "--tag", "masquerade-dns", "--tag", "per-client-masquerade", "--filter", "^(exhaustion-fallback-with-full|exhaustion-refuse|exhaustion-wait|port-|firewall-|masquerade-dns|per-client|forwarding-active)"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" 0 failed, 0 errors"), "{text}");
}

/// Runs the conformance suite with `args` and returns the exit code and
/// each scenario's (status, failure, notes) by name.
/// Scenario name → (status, failure, notes).
type Verdicts = BTreeMap<String, (String, String, Vec<String>)>;

fn run_suite(args: &[&str]) -> (Option<i32>, Verdicts) {
    let out = Command::new(BIN)
        .args(["run", SUITE, "--no-pcap", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: {e}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let by_name = v["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let notes = s["notes"]
                .as_array()
                .map(|n| n.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            (
                s["name"].as_str().unwrap().to_owned(),
                (
                    s["status"].as_str().unwrap().to_owned(),
                    s["failure"].as_str().unwrap_or("").to_owned(),
                    notes,
                ),
            )
        })
        .collect();
    (out.status.code(), by_name)
}

/// The names with `status`.
fn with_status<'a>(r: &'a Verdicts, status: &str) -> Vec<&'a str> {
    r.iter()
        .filter(|(_, (s, _, _))| s == status)
        .map(|(n, _)| n.as_str())
        .collect()
}

/// The real servers (unpacked by ci/test.sh) run the whole suite with their
/// shipped profiles on both engines: every scenario a server supports
/// passes, except exactly the documented findings (the profiles' comments,
/// docs/matrix.md), which stay failures; what a server cannot do is "not
/// supported", never a pass.
#[rstest::rstest]
#[case::vsftpd("vsftpd", &["rfc2428-ipv6-control-and-data"], &[])]
#[case::proftpd(
    "proftpd",
    &["ftps-active-behind-nat-refused", "port-mismatch-active-behind-nat-alg-off", "rfc2428-ipv6-control-and-data"],
    // The gateway counters that show where its SYN went are sim-only.
    &["alg-pasv-only-breaks-eprt", "port-rfc1918-address-from-outside-unreachable"]
)]
#[case::pure_ftpd(
    "pure-ftpd",
    &["exhaustion-refuse-answers-425", "passive-port-shared-by-held-connections", "rfc2428-epsv-all"],
    &[]
)]
fn real_servers_pass_the_suite_as_their_profiles_say(
    #[case] kind: &str,
    #[case] findings: &[&str],
    #[case] sim_only_findings: &[&str],
) {
    require_root();
    for engine in ["sim", "kernel"] {
        let (code, r) = run_suite(&["--server-kind", kind, "--engine", engine]);
        let mut want: Vec<&str> = findings.to_vec();
        if engine == "sim" {
            want.extend(sim_only_findings);
        }
        want.sort();
        assert_eq!(with_status(&r, "fail"), want, "{kind} {engine}: {r:#?}");
        assert_eq!(
            with_status(&r, "error"),
            Vec::<&str>::new(),
            "{kind} {engine}: {r:#?}"
        );
        assert_eq!(code, Some(1), "{kind} {engine}");
        let passed = with_status(&r, "pass").len();
        assert!(
            passed >= 28,
            "{kind} {engine}: only {passed} passed: {r:#?}"
        );
        // What it cannot do is said, with the reason.
        for name in with_status(&r, "unsupported") {
            let why = &r[name].1;
            assert!(
                why.contains("not supported by")
                    || why.contains("not expressible with the kernel engine"),
                "{kind} {engine} {name}: {why}"
            );
        }
    }
    // The profile decides exact answers: without it, the server's own
    // wording at the profile's points fails the seed's expectations.
    let (_, r) = run_suite(&[
        "--server-kind",
        kind,
        "--profile",
        "../scenarios/profiles/reference.toml",
    ]);
    assert!(
        with_status(&r, "fail").len() > findings.len() + sim_only_findings.len(),
        "{kind}: {r:#?}"
    );
}

/// The issue's proof: pyftpdlib (pip-installed into target/peers by
/// ci/test.sh) as the user's own `command` server with its own profile.
/// Its known behaviours come out as the profile says: 501 on a foreign PORT,
/// fallback to a kernel port when the range runs out, and the scenarios
/// needing another exhaustion policy are "not supported".
#[test]
fn pyftpdlib_as_a_command_server_gets_its_profiles_verdicts() {
    require_root();
    let server = format!("command:{}", pyftpdlib_python());
    let args = [
        "--server",
        server.as_str(),
        "--server-config",
        "../scenarios/servers/pyftpdlib.py",
        "--profile",
        "../scenarios/profiles/pyftpdlib.toml",
    ];
    let (code, r) = run_suite(&args);
    assert_eq!(code, Some(1));
    assert_eq!(
        with_status(&r, "fail"),
        ["rfc2428-epsv-all", "rfc2428-ipv6-control-and-data"],
        "{r:#?}"
    );
    assert_eq!(with_status(&r, "error"), Vec::<&str>::new(), "{r:#?}");
    for pass in [
        "port-foreign-address-refused",
        "rfc2577-bounce-and-privileged-port",
        "exhaustion-fallback-with-range-only-forwarding",
        "exhaustion-fallback-with-full-forwarding",
        "masquerade-pasv-public-address",
        "port-rfc1918-address-from-outside-unreachable",
    ] {
        assert_eq!(r[pass].0, "pass", "{pass}: {:?}", r[pass]);
    }
    let refuse = &r["exhaustion-refuse-answers-425"];
    assert_eq!(refuse.0, "unsupported");
    assert!(
        refuse.1.contains("this server does \"fallback\""),
        "{refuse:?}"
    );
    // Log checks it cannot pass are left out, and said so.
    let fallback = &r["exhaustion-fallback-with-full-forwarding"];
    assert!(
        fallback
            .2
            .iter()
            .any(|n| n.contains("log line this server does not write")),
        "{fallback:?}"
    );
    // Without the profile, its 501 fails the seed's 500.
    let (_, bare) = run_suite(&args[..4]);
    assert_eq!(bare["port-foreign-address-refused"].0, "fail");
    assert!(
        bare["port-foreign-address-refused"]
            .1
            .contains("expected reply 500, got 501"),
        "{:?}",
        bare["port-foreign-address-refused"]
    );
}

#[test]
fn load_under_range_exhaustion_per_policy() {
    require_root();
    let load = |policy: &str, forward: &str| {
        let out = Command::new(BIN)
            .args([
                "load",
                "--clients",
                "12",
                "--transfers",
                "2",
                "--ports",
                "2",
                "--limit",
                "60",
                "--repeat",
                "1",
                "--format",
                "json",
                "--policy",
                policy,
                "--forward",
                forward,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["runs"][0].clone()
    };
    // wait: everything completes, nothing falls back.
    let w = load("wait", "range");
    assert_eq!(w["completed"], 24, "{w:#}");
    assert_eq!(w["fallbacks"], 0);
    // fallback behind a NAT forwarding only the range: the seed's warning, measured.
    let f = load("fallback", "range");
    assert!(f["fallbacks"].as_u64().unwrap() >= 1, "{f:#}");
    assert!(
        f["failed"]["data connection refused (not forwarded)"]
            .as_u64()
            .unwrap()
            >= 1,
        "{f:#}"
    );
    // … and with every port forwarded the fallback ports work.
    let a = load("fallback", "all");
    assert_eq!(a["completed"], 24, "{a:#}");
}

/// Regression (found by `ftpnat load`, issue 8): the control listener had a
/// backlog of 8, so a burst of clients through the NAT lost SYNs and some
/// control connections failed outright.
#[test]
fn burst_of_clients_through_the_nat_all_get_a_control_connection() {
    require_root();
    let out = Command::new(BIN)
        .args([
            "load",
            "--clients",
            "60",
            "--transfers",
            "1",
            "--ports",
            "2",
            "--policy",
            "refuse",
            "--limit",
            "60",
            "--arrivals",
            "burst",
            "--repeat",
            "1",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let failed = &v[0]["runs"][0]["failed"];
    assert!(
        failed.get("control connection failed").is_none(),
        "{failed}"
    );
    assert!(failed.get("login failed").is_none(), "{failed}");
}

/// `ftpnat speed --tls` moves every byte both ways for each server and
/// path, in plain FTP and over FTPS (a short size here; the README's
/// figures use 1 GiB), and reports each row against vsftpd's and each FTPS
/// row against the same server's plain one.
#[test]
fn speed_runs_retr_and_stor_for_each_server_and_path() {
    require_root();
    let out = Command::new(BIN)
        .args([
            "speed",
            "--size-mib",
            "16",
            "--repeat",
            "1",
            "--tls",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3 * 2 * 2 * 2, "{rows:?}");
    for r in rows {
        assert_eq!(r["bytes"], 16 << 20, "{r}");
        assert!(r["mib_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["vs_vsftpd"].as_f64().is_some(), "{r}");
        assert_eq!(r["vs_plain"].as_f64().is_some(), r["tls"] == true, "{r}");
    }
}

/// Runs `ci/SCRIPT ARGS` with one environment variable set; asserts it
/// succeeded and returns its standard output.
fn ci_script(script: &str, args: &[&str], env: (&str, &str)) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("bash")
        .arg(format!("{root}/ci/{script}"))
        .args(args)
        .env(env.0, env.1)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The CI kit: ci/local-ci.sh runs the GitHub Actions and GitLab templates'
/// own command blocks shard by shard against pyftpdlib as "your server" and
/// checks their contract (exit 1 exactly for shards with a failure, JUnit
/// and artifacts from every shard, every scenario in exactly one shard).
#[test]
fn ci_templates_run_locally_and_keep_their_contract() {
    require_root();
    let text = ci_script("local-ci.sh", &["4"], ("FTPNAT", BIN));
    for tpl in ["ci/github-actions.yml", "ci/gitlab-ci.yml"] {
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(tpl)).collect();
        assert_eq!(lines.len(), 4, "{text}");
        // pyftpdlib's three findings land in some shards, not all four.
        assert!(lines.iter().any(|l| l.contains("exit 0,")), "{text}");
        assert!(lines.iter().any(|l| l.contains("exit 1,")), "{text}");
    }
    assert!(text.contains("4 shards cover all"), "{text}");
}

/// `ftpnat list | head -1`: a closed stdout ends the program quietly
/// (exit 141, as SIGPIPE would), without a panic.
#[test]
fn closed_stdout_is_not_a_panic() {
    let mut child = Command::new(BIN)
        .args(["list", SUITE])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Shell completions come from the CLI definition and know the commands
/// and options (ci/test.sh writes them to target/assets/completions).
#[test]
fn completions_are_generated_from_the_cli() {
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    for word in [
        "validate-ruleset",
        "--server-config",
        "--profile",
        "--shard",
    ] {
        assert!(script.contains(word), "{word} missing");
    }
    let mut check = Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(
        check.wait().unwrap().success(),
        "bash -n rejects the script"
    );
    let bad = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// docs/scenario-format.md names every key of the scenario schema, so the
/// reference cannot silently fall behind the format.
#[test]
fn scenario_reference_names_every_schema_key() {
    let schema: serde_json::Value = serde_json::from_str(&scenario::json_schema()).unwrap();
    let mut keys = BTreeSet::new();
    let mut todo = vec![&schema];
    while let Some(v) = todo.pop() {
        match v {
            serde_json::Value::Object(o) => {
                if let Some(serde_json::Value::Object(p)) = o.get("properties") {
                    keys.extend(p.keys().cloned());
                }
                todo.extend(o.values());
            }
            serde_json::Value::Array(a) => todo.extend(a),
            _ => {}
        }
    }
    assert!(keys.len() > 60, "{keys:?}");
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/scenario-format.md"
    ))
    .unwrap();
    let missing: Vec<_> = keys.iter().filter(|k| !doc.contains(k.as_str())).collect();
    assert!(
        missing.is_empty(),
        "not in docs/scenario-format.md: {missing:?}"
    );
}

/// The user guide's commands work as written: ci/doc-commands.sh runs every
/// `sh` block of docs/getting-started.md and docs/cookbook/*.md and checks
/// each command's stated exit code.
#[test]
fn the_guides_commands_work_as_written() {
    require_root();
    let bin_dir = Path::new(BIN).parent().unwrap().to_str().unwrap();
    let text = ci_script("doc-commands.sh", &[], ("FTPNAT_BIN_DIR", bin_dir));
    let n: usize = text
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("doc-commands: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(n >= 30, "{text}");
}

/// Docker must answer for the container substrate tests (never skipped).
fn require_docker() {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "no Docker engine answers: install docker.io and start it (the container substrate tests need one)"
    );
}

/// Issue 11: hosts and gateways as Docker containers (network mode none,
/// wired by ftpnat like containerlab) give every conformance scenario the
/// same verdict as bare namespaces.
#[test]
fn docker_substrate_gives_the_same_verdicts_as_namespaces() {
    require_root();
    require_docker();
    let (code_ns, ns) = run_suite(&[]);
    let (code_docker, docker) = run_suite(&["--substrate", "docker"]);
    assert_eq!(code_ns, Some(0));
    let differ: Vec<_> = ns
        .iter()
        .filter(|(name, v)| docker.get(*name).map(|d| &d.0) != Some(&v.0))
        .map(|(name, v)| (name, &v.0, docker.get(name)))
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");
    assert_eq!(code_docker, Some(0));
    assert_eq!(ns.len(), docker.len());
}

/// A run on the docker substrate killed with SIGKILL leaves containers;
/// the next sweep (`ftpnat clean`) removes every one of them.
#[test]
fn killed_docker_runs_leave_no_container_after_the_sweep() {
    require_root();
    require_docker();
    let list = || -> Vec<String> {
        let out = Command::new("docker")
            .args([
                "ps",
                "-a",
                "--filter",
                "label=ftpnat.run",
                "--format",
                "{{.Names}}",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let mut child = Command::new(BIN)
        .args(["run", SUITE, "--substrate", "docker", "--no-pcap"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let prefix = format!("fn{}x", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !list().iter().any(|n| n.starts_with(&prefix)) {
        assert!(
            std::time::Instant::now() < deadline,
            "no container of the run appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The daemon finishes the create/start requests the dead run had in
    // flight: wait (bounded) until its containers stop appearing.
    let mine = || -> Vec<String> {
        let mut v: Vec<String> = list()
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect();
        v.sort();
        v
    };
    let settle = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = mine();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = mine();
        if now == seen || std::time::Instant::now() >= settle {
            break;
        }
        seen = now;
    }
    let out = Command::new(BIN).arg("clean").output().unwrap();
    assert!(out.status.success());
    let left: Vec<String> = list()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(
        left.is_empty(),
        "left: {left:?}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let netns: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(netns.is_empty(), "{netns:?}");
}

/// Issue 11, "bring your own router": the user's router as a container
/// image (built here offline from this machine's nft and a shipped rule
/// set) stands in for the gateway with `engine = "image"`; ftpnat only
/// wires it. Its own rules decide: the good router carries passive FTP
/// both ways, one that forwards only port 21 does not.
#[test]
fn a_users_router_image_stands_in_for_the_gateway() {
    require_root();
    require_docker();
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/images");
    let dir = tempfile::tempdir().unwrap();
    let verdict = |rules: &str, tag: &str| -> (Option<i32>, String) {
        let st = Command::new("bash")
            .arg(here.join("build-router.sh"))
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../scenarios/rulesets")
                    .join(rules),
            )
            .arg(tag)
            .status()
            .unwrap();
        assert!(st.success(), "building {tag}");
        let text = std::fs::read_to_string(here.join("byo-router.toml"))
            .unwrap()
            .replace("ftpnat-test/router:1", tag);
        let file = dir
            .path()
            .join(format!("{}.toml", tag.replace(['/', ':'], "-")));
        std::fs::write(&file, text).unwrap();
        let out = Command::new(BIN)
            .args(["run", "--no-pcap"])
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = verdict("good-router.nft", "ftpnat-test/router:good");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("1 passed"), "{text}");
    let (code, text) = verdict("only-port-21.nft", "ftpnat-test/router:only21");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("step 4 (line"),
        "the passive transfer fails: {text}"
    );
    // The validate-ruleset battery through the image: the same verdicts as
    // the rule set gets on the kernel engine.
    let battery = |tag: &str| {
        let out = Command::new(BIN)
            .args(["validate-ruleset", "--image", tag, "--format", "json"])
            .output()
            .unwrap();
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        let status = |name: &str| {
            rows["rows"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == name)
                .unwrap()["result"]
                .as_str()
                .unwrap()
                .to_string()
        };
        (
            out.status.code(),
            status("range-reachable"),
            status("ftps-passive"),
        )
    };
    assert_eq!(
        battery("ftpnat-test/router:good"),
        (Some(0), "pass".to_string(), "pass".to_string())
    );
    let (code, range, _) = battery("ftpnat-test/router:only21");
    assert_eq!((code, range.as_str()), (Some(1), "fail"));
}

/// `ftpnat image build` makes `ftpnat/base` (debootstrap from the mirror
/// apt uses, with the tools and the three FTP servers, no daemon started)
/// and `ftpnat/server`, tagged by their inputs; a second build finds them
/// up to date; a scenario host can run in the image.
#[test]
fn images_build_from_debian_and_are_reused() {
    require_root();
    require_docker();
    let build = || {
        let out = Command::new(BIN).args(["image", "build"]).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        text
    };
    build();
    let again = build();
    assert!(again.starts_with("up to date:"), "{again}");
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "ftpnat/server:latest", "sh", "-c"])
        .arg("for b in nft ip curl lftp python3 vsftpd proftpd pure-ftpd ftpnat-server; do command -v $b >/dev/null || echo missing $b; done; test -e /usr/lib/proftpd/mod_tls.so || echo missing mod_tls")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "the image lacks tools"
    );
    // A host in the image: its entrypoint runs, the harness wires it.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(format!("{SUITE}/pasv-format-227.toml"))
        .unwrap()
        .replacen(
            "name = \"server\"",
            "name = \"server\"\nimage = \"ftpnat/server:latest\"",
            1,
        );
    let file = dir.path().join("in-image.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--no-pcap"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
