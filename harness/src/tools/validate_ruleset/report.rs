//! The verdict of a validation: one JSON object (documented in
//! docs/report-format.md) or a table, rows with their cause and — where
//! the gateway traced the probes — the chain and rule, with its line in
//! the user's file, that dropped, rejected, failed to DNAT or (for an
//! exposure) let the probe through.

use std::collections::BTreeMap;

use serde::Serialize;

use super::battery::Probe;
use crate::{
    ruleset::{
        host::Versions,
        nft::ChainKey,
        trace::{self, EventKind, Fate},
        Prepared,
    },
    runner::expect::ranges,
};

/// A row's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It works.
    Pass,
    /// A required behaviour does not work (exit 1).
    Fail,
    /// An optional behaviour does not work.
    No,
}

/// What stopped (or let through) a probe, in the user's rule set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    /// `dropped`, `rejected`, `policy-drop`, `not-dnat` (no DNAT matched:
    /// the packet went to the router itself) or `accepted` (exposure).
    pub verdict: String,
    /// `family table chain`.
    pub chain: String,
    /// The rule as nft prints it (none for a policy or a missing DNAT).
    pub rule: Option<String>,
    /// `file:line` of the rule (or of the chain's policy / header).
    pub at: Option<String>,
    /// The jump that led there (`chain: rule (file:line)`), when the
    /// verdict is in a chain other rules jump to.
    pub via: Option<String>,
    /// Destination ports of the probes it concerns.
    pub ports: String,
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct RowReport {
    /// Short name.
    pub name: &'static str,
    /// What the rule set must do for it.
    pub needs: String,
    /// Whether the exit code depends on it.
    pub required: bool,
    /// pass, fail (required) or no (optional).
    pub result: Outcome,
    /// Why, in the user's terms (absent when a shared cause explains it).
    pub cause: Option<String>,
    /// Id of the shared cause that explains this row, if any.
    pub shared_cause: Option<String>,
    /// What the traced probes met in the rule set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<Blocked>,
}

/// One cause behind several rows.
#[derive(Debug, Clone, Serialize)]
pub struct SharedCause {
    /// Stable id.
    pub id: &'static str,
    /// The explanation and what to do.
    pub text: String,
    /// The rows it explains.
    pub rows: Vec<&'static str>,
}

/// Counts.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Rows run.
    pub rows: usize,
    /// Rows that pass.
    pub pass: usize,
    /// Required rows that fail.
    pub fail: usize,
    /// Optional rows that do not work.
    pub no: usize,
}

/// The parameters a validation ran with.
#[derive(Debug, Clone, Serialize)]
pub struct Parameters {
    /// Rule set files (empty for an image).
    pub ruleset: Vec<String>,
    /// Router image instead of a rule set.
    pub image: Option<String>,
    /// Input syntax per file (`nft`, `iptables`).
    pub input: Vec<String>,
    /// Outside interfaces, `NAME=ADDR/PREFIX`.
    pub wan: Vec<String>,
    /// Inside interfaces.
    pub lan: Vec<String>,
    /// The FTP server's inside address.
    pub server: String,
    /// Its passive range.
    pub passive: String,
    /// Which FTP server runs inside.
    pub server_kind: String,
    /// `yes`, `no`, or `assumed` (not declared: the server masquerades).
    pub server_masquerade: String,
    /// Router service ports probed.
    pub router_services: Vec<u16>,
}

/// The whole verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Parameters.
    pub parameters: Parameters,
    /// This machine's nft and kernel.
    pub host: Versions,
    /// What was changed to load the rule set, or is missing from the check.
    pub warnings: Vec<String>,
    /// Rows.
    pub rows: Vec<RowReport>,
    /// Causes shared by several rows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shared_causes: Vec<SharedCause>,
    /// Counts.
    pub summary: Summary,
    /// 0: every required row passes; 1: one fails.
    pub exit_code: u8,
}

/// A validation that could not run, as JSON (exit 2).
#[derive(Debug, Clone, Serialize)]
pub struct ErrorReport {
    /// `input` (options, settings), `read`, `load` (the loader refused the
    /// rule set), `iptables-nft` (tables only iptables-save can give).
    pub error: &'static str,
    /// The message, with file and line.
    pub message: String,
    /// When the problem is about this machine rather than the rule set.
    pub host_caveat: Option<String>,
    /// This machine's nft and kernel.
    pub host: Versions,
    /// Warnings gathered before the error.
    pub warnings: Vec<String>,
    /// Always 2.
    pub exit_code: u8,
}

/// Chain hooks and rule handles from `nft -a -j list ruleset`.
#[derive(Debug, Default)]
pub(super) struct Listing {
    hooks: BTreeMap<ChainKey, String>,
    nat: BTreeMap<ChainKey, bool>,
    /// (chain, handle) → index of the rule in its chain.
    index: BTreeMap<(ChainKey, u64), usize>,
}

impl Listing {
    pub(super) fn parse(json: &str) -> Listing {
        let mut l = Listing::default();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
            return l;
        };
        let mut count: BTreeMap<ChainKey, usize> = BTreeMap::new();
        for item in v["nftables"].as_array().into_iter().flatten() {
            let key = |o: &serde_json::Value, name: &str| ChainKey {
                family: o["family"].as_str().unwrap_or("").to_string(),
                table: o["table"].as_str().unwrap_or("").to_string(),
                chain: o[name].as_str().unwrap_or("").to_string(),
            };
            if let Some(c) = item.get("chain") {
                let k = key(c, "name");
                if let Some(h) = c["hook"].as_str() {
                    l.hooks.insert(k.clone(), h.to_string());
                    l.nat.insert(k, c["type"].as_str() == Some("nat"));
                }
            } else if let Some(r) = item.get("rule") {
                let k = key(r, "chain");
                let n = count.entry(k.clone()).or_default();
                if let Some(h) = r["handle"].as_u64() {
                    l.index.insert((k, h), *n);
                }
                *n += 1;
            }
        }
        l
    }
}

/// Where a rule (by chain and handle) is in the user's files.
fn rule_at(p: &Prepared, l: &Listing, chain: &ChainKey, handle: Option<u64>) -> Option<String> {
    let i = *l.index.get(&(chain.clone(), handle?))?;
    p.files.iter().find_map(|f| {
        let r = f.chains.get(chain)?.rules.get(i)?;
        f.source.origin(r.line).map(|o| o.to_string())
    })
}

fn policy_at(p: &Prepared, chain: &ChainKey) -> Option<String> {
    p.files.iter().find_map(|f| {
        let c = f.chains.get(chain)?;
        let line = c.policy.as_ref().map_or(c.line, |(_, l)| *l);
        f.source.origin(line).map(|o| o.to_string())
    })
}

fn chain_at(p: &Prepared, chain: &ChainKey) -> Option<String> {
    p.files.iter().find_map(|f| {
        let c = f.chains.get(chain)?;
        f.source.origin(c.line).map(|o| o.to_string())
    })
}

/// The jump rule that led to event `i`, as `chain: `rule` (file:line)`.
fn via(pk: &trace::Packet, i: usize, p: &Prepared, l: &Listing) -> Option<String> {
    let j = pk.jumped_by(i)?;
    let e = &pk.events[j];
    let EventKind::Rule { text, handle, .. } = &e.kind else {
        return None;
    };
    let at = rule_at(p, l, &e.chain, *handle).map_or(String::new(), |a| format!(" ({a})"));
    Some(format!("chain {}: `{text}`{at}", e.chain))
}

/// What the traced probes of one row met, grouped.
pub(super) fn blocked(
    probe: Probe,
    monitor: &str,
    listing: &Listing,
    prepared: &Prepared,
    router: &[std::net::Ipv4Addr],
) -> Vec<Blocked> {
    let mut groups: Vec<(Blocked, Vec<u16>)> = Vec::new();
    let mut add = |b: Blocked, port: Option<u16>| {
        if let Some(g) = groups.iter_mut().find(|(x, _)| {
            x.verdict == b.verdict
                && x.chain == b.chain
                && x.rule == b.rule
                && x.at == b.at
                && x.via == b.via
        }) {
            g.1.extend(port);
        } else {
            groups.push((b, port.into_iter().collect()));
        }
    };
    for pk in trace::parse(monitor) {
        let arrived = pk.arrived();
        let port = arrived.dport;
        // Only TCP probes (the trace's own marker is UDP to the gateway).
        if port.is_none() {
            continue;
        }
        if let Probe::Ports(lo, hi) = probe {
            if !port.is_some_and(|p| (lo..=hi).contains(&p)) {
                continue;
            }
        }
        let hooks = pk.hooks(&listing.hooks);
        // Addressed to the router (its WAN address), not to a host.
        let to_router = arrived.daddr.is_some_and(|d| router.contains(&d));
        let exposure = matches!(probe, Probe::ExposedHosts | Probe::ExposedRouter);
        match (exposure, pk.fate()) {
            (true, Fate::Passed) => {
                // Let through: by the last accepting rule or policy of a
                // filter chain (nat chains accept everything they see).
                let Some(i) = pk.accepted_by(|c| {
                    c.table != trace::TRACE_TABLE && !listing.nat.get(c).copied().unwrap_or(false)
                }) else {
                    continue;
                };
                let wanted = match probe {
                    Probe::ExposedHosts => pk.translated() && port != Some(21),
                    _ => !pk.translated() && hooks.contains(&"input"),
                };
                if !to_router || !wanted {
                    continue;
                }
                let e = &pk.events[i];
                let (rule, at) = match &e.kind {
                    EventKind::Rule { text, handle, .. } => (
                        Some(text.clone()),
                        rule_at(prepared, listing, &e.chain, *handle),
                    ),
                    _ => (None, policy_at(prepared, &e.chain)),
                };
                add(
                    Blocked {
                        verdict: "accepted".into(),
                        chain: e.chain.to_string(),
                        rule,
                        at,
                        via: via(&pk, i, prepared, listing),
                        ports: String::new(),
                    },
                    port,
                );
            }
            (true, _) => {}
            (false, fate) => {
                // Addressed to the router and not translated: it went to
                // the router itself.
                if to_router && !pk.translated() {
                    // Not forwarded: say where a DNAT was looked for.
                    let nat = pk.events.iter().find(|e| {
                        matches!(e.kind, EventKind::Packet(_))
                            && listing.nat.get(&e.chain).copied().unwrap_or(false)
                    });
                    if let Some(e) = nat {
                        add(
                            Blocked {
                                verdict: "not-dnat".into(),
                                chain: e.chain.to_string(),
                                rule: None,
                                at: chain_at(prepared, &e.chain),
                                via: None,
                                ports: String::new(),
                            },
                            port,
                        );
                    }
                }
                let (i, is_policy) = match fate {
                    Fate::Rule(i) => (i, false),
                    Fate::Policy(i) => (i, true),
                    Fate::Passed => continue,
                };
                let e = &pk.events[i];
                let b = match (&e.kind, is_policy) {
                    (EventKind::Rule { text, handle, .. }, false) => Blocked {
                        verdict: if text.contains("reject") {
                            "rejected"
                        } else {
                            "dropped"
                        }
                        .into(),
                        chain: e.chain.to_string(),
                        rule: Some(text.clone()),
                        at: rule_at(prepared, listing, &e.chain, *handle),
                        via: via(&pk, i, prepared, listing),
                        ports: String::new(),
                    },
                    _ => Blocked {
                        verdict: "policy-drop".into(),
                        chain: e.chain.to_string(),
                        rule: None,
                        at: policy_at(prepared, &e.chain),
                        via: None,
                        ports: String::new(),
                    },
                };
                add(b, port);
            }
        }
    }
    // A missing DNAT first: it explains what follows.
    groups.sort_by_key(|(b, _)| b.verdict != "not-dnat");
    groups
        .into_iter()
        .map(|(mut b, mut ports)| {
            ports.sort_unstable();
            ports.dedup();
            b.ports = ranges(&ports);
            b
        })
        .collect()
}

/// One line for a [`Blocked`].
pub fn describe(b: &Blocked) -> String {
    let what = match b.verdict.as_str() {
        "not-dnat" => "no DNAT matched in".to_string(),
        "policy-drop" => "dropped by the policy of".to_string(),
        v => format!("{v} by"),
    };
    let rule = b
        .rule
        .as_ref()
        .map_or(String::new(), |r| format!(": `{r}`"));
    let at = b.at.as_ref().map_or(String::new(), |a| format!(" ({a})"));
    let ports = if b.ports.is_empty() {
        String::new()
    } else {
        format!("port(s) {}: ", b.ports)
    };
    let via = b
        .via
        .as_ref()
        .map_or(String::new(), |v| format!(", reached from {v}"));
    format!("{ports}{what} chain {}{rule}{at}{via}", b.chain)
}

/// The table for humans.
pub fn human(r: &Report) -> String {
    let mut out = String::new();
    for w in &r.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    let mut shown: Vec<&str> = Vec::new();
    for row in &r.rows {
        let mark = match row.result {
            Outcome::Pass => "PASS ",
            Outcome::Fail => "FAIL ",
            Outcome::No => "NO   ",
        };
        let kind = if row.required { "" } else { " (optional)" };
        out.push_str(&format!(
            "{mark} {:<28} needs{kind}: {}\n",
            row.name, row.needs
        ));
        if let Some(c) = &row.cause {
            out.push_str(&format!("      probable cause: {c}\n"));
        }
        if let Some(id) = &row.shared_cause {
            let sc = r.shared_causes.iter().find(|s| s.id == id);
            match sc {
                Some(sc) if !shown.contains(&sc.id) => {
                    shown.push(sc.id);
                    out.push_str(&format!(
                        "      probable cause (shared by {}): {}\n",
                        sc.rows.join(", "),
                        sc.text
                    ));
                }
                Some(sc) => out.push_str(&format!(
                    "      probable cause: the same as for {}\n",
                    sc.rows[0]
                )),
                None => {}
            }
        }
        for b in &row.blocked_by {
            out.push_str(&format!("      {}\n", describe(b)));
        }
    }
    let what = if r.parameters.ruleset.is_empty() {
        r.parameters.image.clone().unwrap_or_default()
    } else {
        r.parameters.ruleset.join(" + ")
    };
    out.push_str(&format!(
        "{} of {} behaviours work with {what} ({} required check(s) failed; nft {}, kernel {})\n",
        r.summary.pass, r.summary.rows, r.summary.fail, r.host.nft, r.host.kernel
    ));
    out
}
