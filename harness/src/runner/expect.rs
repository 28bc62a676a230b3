//! Expectations against observations: pure, so every rule is unit-tested.
//! Messages say what was expected and what was seen.

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
};

use ftpnat_server::protocol::addr::{self, is_non_public};

use super::Seen;
use crate::{
    client::DataOutcome,
    engine::Counters,
    scenario::{resolve::TransferExpect, Action, Expect},
};

/// Looks a counter up by dotted name: `alg_rewrites`, `drops` (all drops),
/// `dropped.firewall`, `rule_hits.0`, `tx_packets.wan0`. Keys of maps that
/// never counted anything read as 0.
pub fn counter(c: &Counters, name: &str) -> Result<u64, String> {
    if name == "drops" {
        return Ok(c.drops());
    }
    let v = serde_json::to_value(c).map_err(|e| e.to_string())?;
    let mut parts = name.split('.');
    let head = parts.next().unwrap_or_default();
    let mut cur = v.get(head).ok_or_else(|| {
        let known: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        format!(
            "unknown counter {name:?} (known: drops, {})",
            known.join(", ")
        )
    })?;
    for p in parts {
        cur = match cur {
            serde_json::Value::Array(a) => match p.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(x) => x,
                None => return Err(format!("counter {name:?}: no index {p}")),
            },
            serde_json::Value::Object(o) => match o.get(p) {
                Some(x) => x,
                None => return Ok(0),
            },
            _ => return Err(format!("counter {name:?}: {p:?} does not index a number")),
        };
    }
    cur.as_u64()
        .ok_or_else(|| format!("counter {name:?} is not a number (use a sub-key)"))
}

fn passive_of(seen: &Seen) -> Option<SocketAddr> {
    if let Some(r) = &seen.reply {
        let text = r.lines.join(" ");
        if r.code == 227 {
            return addr::parse_pasv_reply(&text).ok().map(SocketAddr::V4);
        }
        if r.code == 229 {
            return addr::parse_epsv_reply(&text).ok().map(|p| {
                SocketAddr::new(
                    seen.passive.map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip()),
                    p,
                )
            });
        }
    }
    seen.transfer
        .as_ref()
        .and_then(|t| t.data_peer)
        .or(seen.passive)
}

/// Checks every expectation; the first that fails is the error.
pub fn check(e: &Expect, seen: &Seen, action: &Action) -> Result<(), String> {
    let is_client_step = matches!(
        action,
        Action::Connect { .. }
            | Action::Login { .. }
            | Action::Send(_)
            | Action::Transfer { .. }
            | Action::Quit
    );
    if e.no_reply {
        return match (&seen.reply, &seen.error) {
            (None, Some(err)) if err.contains("no reply") => Ok(()),
            (Some(r), _) => Err(format!(
                "expected no reply, got {} {}",
                r.code,
                r.lines.join(" | ")
            )),
            (None, other) => Err(format!(
                "expected no reply, got {}",
                other.clone().unwrap_or_else(|| "nothing".into())
            )),
        };
    }
    if let Some(err) = &seen.error {
        // A client error fails the step unless the step expects a failed transfer.
        let expects_failure = e
            .transfer
            .is_some_and(|t| t != TransferExpect::Is(DataOutcome::Ok));
        if !expects_failure
            || !matches!(
                action,
                Action::Transfer { .. } | Action::Hold | Action::External { .. }
            )
        {
            return Err(err.clone());
        }
    }
    if is_client_step
        && e.code.is_none()
        && seen.reply.is_none()
        && seen.error.is_none()
        && e.transfer.is_none()
    {
        return Err("no reply".into());
    }
    if let Some(code) = e.code {
        match &seen.reply {
            Some(r) if r.code == code => {}
            Some(r) => {
                return Err(format!(
                    "expected reply {code}, got {} {}",
                    r.code,
                    r.lines.join(" | ")
                ))
            }
            None => {
                let why = match &seen.transfer {
                    Some(t) if t.outcome != DataOutcome::Ok => format!(
                        " (data connection to {} failed: {:?})",
                        t.data_peer.map_or("-".into(), |p| p.to_string()),
                        t.outcome
                    ),
                    _ => String::new(),
                };
                return Err(format!("expected reply {code}, got none{why}"));
            }
        }
    }
    if let Some(re) = &e.text {
        let text = seen
            .reply
            .as_ref()
            .map(|r| r.lines.join("\n"))
            .unwrap_or_default();
        if !re.is_match(&text) {
            return Err(format!("reply text {text:?} does not match /{re}/"));
        }
    }
    let pasv = passive_of(seen);
    let need_v4 = |what: &str| -> Result<std::net::Ipv4Addr, String> {
        match seen
            .reply
            .as_ref()
            .filter(|r| r.code == 227)
            .and_then(|r| addr::parse_pasv_reply(&r.lines.join(" ")).ok())
        {
            Some(a) => Ok(*a.ip()),
            None => match pasv {
                Some(SocketAddr::V4(a)) if seen.transfer.is_some() => Ok(*a.ip()),
                _ => Err(format!(
                    "expected a 227 reply to check {what}, got {}",
                    seen.reply.as_ref().map_or("none".into(), |r| format!(
                        "{} {}",
                        r.code,
                        r.lines.join(" ")
                    ))
                )),
            },
        }
    };
    if let Some(want) = e.pasv_addr {
        let got = need_v4("pasv_addr")?;
        if got != want {
            return Err(format!("227 carries {got}, expected {want}"));
        }
    }
    if let Some(public) = e.pasv_public {
        let got = need_v4("pasv_public")?;
        if is_non_public(got.into()) == public {
            return Err(format!(
                "227 carries {got}, which is {}",
                if public { "not public" } else { "public" }
            ));
        }
    }
    if let Some(net) = e.pasv_in {
        let got = need_v4("pasv_in")?;
        if !net.contains(&got) {
            return Err(format!("227 carries {got}, not inside {net}"));
        }
    }
    let port = || {
        pasv.map(|a| a.port())
            .ok_or_else(|| "no passive address or data connection to take a port from".to_string())
    };
    if let Some((lo, hi)) = e.port_in {
        let p = port()?;
        if !(lo..=hi).contains(&p) {
            return Err(format!("port {p} is outside {lo}-{hi}"));
        }
    }
    if let Some((lo, hi)) = e.port_not_in {
        let p = port()?;
        if (lo..=hi).contains(&p) {
            return Err(format!("port {p} is inside {lo}-{hi}, expected outside"));
        }
    }
    if let Some(want) = e.transfer {
        let got = seen.transfer.as_ref().map(|t| t.outcome);
        let ok = match (want, got) {
            (TransferExpect::Is(w), Some(g)) => w == g,
            (TransferExpect::Failed, Some(g)) => g != DataOutcome::Ok,
            (TransferExpect::Failed, None) => {
                seen.error.is_some() || seen.reply.as_ref().is_some_and(|r| r.code >= 400)
            }
            (TransferExpect::Is(_), None) => false,
        };
        if !ok {
            return Err(format!(
                "expected data transfer {want:?}, got {}",
                got.map_or("no data connection".into(), |g| format!("{g:?}"))
            ));
        }
    }
    if let Some(bound) = e.within {
        if seen.elapsed > bound {
            return Err(format!(
                "took {} ms, expected within {} ms",
                seen.elapsed.as_millis(),
                bound.as_millis()
            ));
        }
    }
    if let Some(bound) = e.at_least {
        if seen.elapsed < bound {
            return Err(format!(
                "took {} ms, expected at least {} ms",
                seen.elapsed.as_millis(),
                bound.as_millis()
            ));
        }
    }
    if let Some(want) = &e.sha256 {
        let got = seen
            .transfer
            .as_ref()
            .and_then(|t| t.sha256.clone())
            .unwrap_or_default();
        if !got.eq_ignore_ascii_case(want) {
            return Err(format!("sha256 {got}, expected {want}"));
        }
    }
    if let Some(want) = e.bytes {
        let got = seen.transfer.as_ref().map_or(0, |t| t.bytes);
        if got != want {
            return Err(format!("{got} bytes moved, expected {want}"));
        }
    }
    if let Some(re) = &e.log {
        let log = seen.log.as_deref().unwrap_or("");
        let n = log.lines().filter(|l| re.is_match(l)).count();
        match e.log_count {
            Some(want) if n != want => {
                return Err(format!("{n} log lines match /{re}/, expected {want}"))
            }
            None if n == 0 => return Err(format!("no log line matches /{re}/")),
            _ => {}
        }
    }
    if !e.counters.is_empty() {
        let c = seen
            .counters
            .as_ref()
            .ok_or("no gateway counters to check")?;
        for (name, cmp, want) in &e.counters {
            let got = counter(c, name)?;
            if !cmp.holds(got, *want) {
                return Err(format!(
                    "counter {name} = {got}, expected {} {want}",
                    cmp.symbol()
                ));
            }
        }
    }
    if let Some(want) = &e.reachable {
        let accepted: BTreeSet<u16> = seen
            .accepted
            .iter()
            .flat_map(|m| m.values().flatten().copied())
            .collect();
        let missing: Vec<u16> = want.difference(&accepted).copied().collect();
        if !missing.is_empty() {
            let reach: Vec<u16> = want.intersection(&accepted).copied().collect();
            let reach = if reach.is_empty() {
                "none of them reaches a listener".to_string()
            } else {
                format!("only {} reach(es) a listener", ranges(&reach))
            };
            return Err(format!("{}; {reach}", not_reached(seen, &missing, None)));
        }
    }
    for (node, want) in &e.accepted {
        let got = seen
            .accepted
            .as_ref()
            .and_then(|m| m.get(node))
            .cloned()
            .unwrap_or_default();
        if &got != want {
            let missing: Vec<u16> = want.difference(&got).copied().collect();
            let extra: Vec<u16> = got.difference(want).copied().collect();
            let mut why = Vec::new();
            if !extra.is_empty() {
                why.push(format!("{node} accepted port(s) {}", ranges(&extra)));
            }
            if !missing.is_empty() {
                let reached: Vec<u16> = want.intersection(&got).copied().collect();
                let tail = if reached.is_empty() {
                    String::new()
                } else {
                    format!("; only {} reach(es) {node}", ranges(&reached))
                };
                why.push(format!("{}{tail}", not_reached(seen, &missing, Some(node))));
            }
            return Err(why.join("; "));
        }
    }
    if let Some(want) = e.open_count {
        let got = seen.open.clone().unwrap_or_default();
        if got.len() != want {
            let list: Vec<u16> = got.iter().copied().collect();
            return Err(format!(
                "{} open port(s) ({}), expected {want}",
                got.len(),
                ranges(&list)
            ));
        }
    }
    if let Some(want) = &e.open {
        let got = seen.open.clone().unwrap_or_default();
        if &got != want {
            let extra: Vec<u16> = got.difference(want).copied().collect();
            let missing: Vec<u16> = want.difference(&got).copied().collect();
            let mut why = Vec::new();
            if !extra.is_empty() {
                why.push(format!("unexpected open port(s) {}", ranges(&extra)));
            }
            if !missing.is_empty() {
                why.push(format!("expected open but not: {}", ranges(&missing)));
            }
            return Err(why.join("; "));
        }
    }
    Ok(())
}

/// Why `ports` did not reach a listener (of `node`): silence, a RST, or
/// another node accepting them.
fn not_reached(seen: &Seen, ports: &[u16], node: Option<&str>) -> String {
    let of = |set: &Option<BTreeSet<u16>>| -> Vec<u16> {
        let set = set.clone().unwrap_or_default();
        ports.iter().copied().filter(|p| set.contains(p)).collect()
    };
    let mut parts = Vec::new();
    let silent = of(&seen.filtered);
    if !silent.is_empty() {
        parts.push(format!("no answer from {} (dropped)", ranges(&silent)));
    }
    let refused = of(&seen.closed);
    if !refused.is_empty() {
        parts.push(format!(
            "{} refused with a RST: not forwarded there (the gateway itself, or a host with nothing listening, answered)",
            ranges(&refused)
        ));
    }
    let open = of(&seen.open);
    if !open.is_empty() {
        let elsewhere: Vec<String> = seen
            .accepted
            .iter()
            .flatten()
            .filter(|(n, _)| Some(n.as_str()) != node)
            .filter_map(|(n, got)| {
                let here: Vec<u16> = open.iter().copied().filter(|p| got.contains(p)).collect();
                (!here.is_empty()).then(|| format!("{} accepted by {n}", ranges(&here)))
            })
            .collect();
        if elsewhere.is_empty() {
            parts.push(format!(
                "{} answered, but not by {}",
                ranges(&open),
                node.map_or("a listener".to_string(), |n| format!("a listener on {n}"))
            ));
        } else {
            parts.extend(elsewhere);
        }
    }
    parts.join("; ")
}

/// Compresses sorted ports into "21, 60000-60005".
pub fn ranges(ports: &[u16]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ports.len() {
        let start = ports[i];
        let mut end = start;
        while i + 1 < ports.len() && ports[i + 1] == end + 1 {
            i += 1;
            end = ports[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::resolve::{Cmp, Expect};
    use ftpnat_server::protocol::Reply;

    fn seen(code: u16, text: &str) -> Seen {
        Seen {
            reply: Some(Reply::new(code, text)),
            ..Default::default()
        }
    }

    #[test]
    fn pasv_checks() {
        let s = seen(227, "Entering Passive Mode (192,168,1,2,234,101).");
        let a = Action::Send("PASV".into());
        let e = Expect {
            code: Some(227),
            pasv_public: Some(true),
            ..Default::default()
        };
        assert_eq!(
            check(&e, &s, &a).unwrap_err(),
            "227 carries 192.168.1.2, which is not public"
        );
        let e = Expect {
            pasv_public: Some(false),
            port_in: Some((60000, 60010)),
            ..Default::default()
        };
        assert!(check(&e, &s, &a).is_ok());
        let e = Expect {
            port_not_in: Some((60000, 60010)),
            ..Default::default()
        };
        assert!(check(&e, &s, &a)
            .unwrap_err()
            .contains("inside 60000-60010"));
        let e = Expect {
            code: Some(229),
            ..Default::default()
        };
        assert!(check(&e, &s, &a)
            .unwrap_err()
            .starts_with("expected reply 229, got 227"));
    }

    #[test]
    fn port_ranges_are_compressed() {
        assert_eq!(
            ranges(&[21, 60006, 60007, 60008, 60010]),
            "21, 60006-60008, 60010"
        );
        assert_eq!(ranges(&[]), "");
    }

    #[test]
    fn counters_by_dotted_name() {
        let mut c = Counters {
            alg_rewrites: 2,
            rule_hits: vec![5, 0],
            ..Default::default()
        };
        c.dropped.insert("firewall".into(), 3);
        assert_eq!(counter(&c, "alg_rewrites").unwrap(), 2);
        assert_eq!(counter(&c, "drops").unwrap(), 3);
        assert_eq!(counter(&c, "dropped.firewall").unwrap(), 3);
        assert_eq!(counter(&c, "dropped.nothing").unwrap(), 0);
        assert_eq!(counter(&c, "rule_hits.0").unwrap(), 5);
        assert!(counter(&c, "nope").unwrap_err().contains("unknown counter"));
        let s = Seen {
            counters: Some(c),
            ..Default::default()
        };
        let e = Expect {
            counters: vec![
                ("alg_rewrites".into(), Cmp::Ge, 1),
                ("drops".into(), Cmp::Eq, 0),
            ],
            ..Default::default()
        };
        assert_eq!(
            check(
                &e,
                &s,
                &Action::Check {
                    target: "gw".into()
                }
            )
            .unwrap_err(),
            "counter drops = 3, expected == 0"
        );
    }
}
