//! `ftpnat validate-ruleset FILE`: a battery of FTP-through-NAT checks run
//! with the user's own nftables rule set loaded in the gateway (kernel
//! engine), on a fixed, documented topology:
//!
//! ```text
//!  lanclient 192.168.1.50 ─┐                        ┌─ client 203.0.113.10
//!  server    192.168.1.2  ─┼─ lan0 [gw] wan0 ─────────┼─ outside 203.0.113.2 (a server)
//!                          192.168.1.1   203.0.113.1
//! ```
//!
//! The inside server runs the reference server with passive ports
//! 60000-60010; rows say what they need from the rule set.

use std::path::Path;

use serde::Serialize;

use super::{RunOptions, ScenarioResult, Status};
use crate::scenario;

/// One row of the battery.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Short name.
    pub name: &'static str,
    /// What the rule set must do for it.
    pub needs: &'static str,
    /// pass / fail / error.
    pub status: Status,
    /// First failure.
    pub detail: Option<String>,
}

const TOPOLOGY: &str = r#"
[[gateway]]
name = "gw"
engine = "kernel"
lan = "192.168.1.1/24"
wan = "203.0.113.1/24"
ruleset = "@RULESET@"

[[host]]
name = "server"
addr = "192.168.1.2/24"
files = { "hello.txt" = "hello through the NAT\n" }
server = { kind = "reference", config = { @SERVER@passive_ports = [60000, 60010], timeouts = { data_connect = 3 } } }

[[host]]
name = "lanclient"
addr = "192.168.1.50/24"

[[host]]
name = "client"
addr = "203.0.113.10/24"

[[host]]
name = "outside"
addr = "203.0.113.2/24"
files = { "hello.txt" = "hello through the NAT\n" }
server = { kind = "reference", config = { passive_ports = [61000, 61010] } }
"#;

const OUTSIDE_LOGIN: &str = r#"
[[step]]
client = "client"
connect = "203.0.113.1:21"
timeout_ms = 2000
expect = { code = 220 }
[[step]]
login = "anonymous"
expect = { code = 230 }
"#;

const INSIDE_LOGIN: &str = r#"
[[step]]
client = "lanclient"
connect = "203.0.113.2:21"
timeout_ms = 2000
expect = { code = 220 }
[[step]]
login = "anonymous"
expect = { code = 230 }
"#;

fn battery() -> Vec<(&'static str, &'static str, &'static str, String)> {
    let ok = r#"expect = { transfer = "ok", code = 226 }"#;
    vec![
        ("control-connection", "forward tcp 21 to 192.168.1.2", "", OUTSIDE_LOGIN.to_string()),
        (
            "passive-with-masquerade",
            "forward tcp 60000-60010 to 192.168.1.2 (server announces 203.0.113.1)",
            "masquerade_address = \"203.0.113.1\", ",
            format!("{OUTSIDE_LOGIN}[[step]]\nretr = \"hello.txt\"\ntimeout_ms = 3000\n{ok}\n"),
        ),
        (
            "epsv",
            "forward the passive range (EPSV carries no address)",
            "",
            format!("{OUTSIDE_LOGIN}[[step]]\nretr = \"hello.txt\"\nmode = \"epsv\"\ntimeout_ms = 3000\n{ok}\n"),
        ),
        (
            "passive-without-masquerade",
            "an FTP ALG (ct helper) that rewrites the 227 of an unmasqueraded server",
            "",
            format!("{OUTSIDE_LOGIN}[[step]]\nretr = \"hello.txt\"\ntimeout_ms = 3000\n{ok}\n"),
        ),
        (
            "inside-client-passive",
            "masquerade inside clients going out",
            "",
            format!("{INSIDE_LOGIN}[[step]]\nretr = \"hello.txt\"\ntimeout_ms = 3000\n{ok}\n"),
        ),
        (
            "inside-client-active",
            "an FTP ALG (ct helper) that rewrites PORT for inside clients",
            "",
            format!("{INSIDE_LOGIN}[[step]]\nretr = \"hello.txt\"\nmode = \"port\"\ntimeout_ms = 3000\n{ok}\n"),
        ),
        (
            "exposure",
            "nothing reachable from outside but 21 and the passive range",
            "masquerade_address = \"203.0.113.1\", ",
            "[[step]]\nscan = { from = \"client\", target = \"203.0.113.1\", ports = \"1-1024,8000-8100,59990-60020\" }\nexpect = { open = \"21\" }\n".to_string(),
        ),
    ]
}

/// Runs the battery against `ruleset` (a file path).
pub fn validate(ruleset: &Path, jobs: usize) -> Result<Vec<Row>, String> {
    let rules = ruleset
        .canonicalize()
        .map_err(|e| format!("{}: {e}", ruleset.display()))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut scenarios = Vec::new();
    for (name, _, server, steps) in battery() {
        let text = format!(
            "name = \"{name}\"\n{}{steps}",
            TOPOLOGY
                .replace("@RULESET@", &rules.display().to_string())
                .replace("@SERVER@", server)
        );
        let file = dir.path().join(format!("{name}.toml"));
        scenarios.push(scenario::parse(&text, &file).map_err(|d| d.to_string())?);
    }
    let results: Vec<ScenarioResult> = super::run_all(
        &scenarios,
        &RunOptions {
            no_pcap: true,
            ..Default::default()
        },
        jobs,
        &|_, _| {},
    );
    Ok(battery()
        .into_iter()
        .zip(results)
        .map(|((name, needs, _, _), r)| Row {
            name,
            needs,
            status: r.status,
            detail: r
                .failure
                .map(|f| f.lines().next().unwrap_or("").to_string()),
        })
        .collect())
}
