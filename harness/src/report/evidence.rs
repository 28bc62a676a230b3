//! What a scenario's artifacts recorded about its gateways, read back:
//! the frames of each gateway interface's pcap (decoded with pcap-file and
//! etherparse), the sim engine's packet log, and the kernel engine's nft
//! trace and conntrack events — each as plain data for the ladder
//! ([`super::ladder`]). Reading never fails on odd input: a frame or line
//! that does not decode is skipped and counted.

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
};

use serde::{Deserialize, Serialize};

/// TCP flag bits as on the wire.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// One TCP segment as a gateway interface's pcap holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Capture time, microseconds since the Unix epoch.
    pub t_us: u64,
    /// The gateway.
    pub gateway: String,
    /// Its interface.
    pub iface: String,
    /// Ethernet source (tells frames the gateway sent from those it got).
    pub src_mac: [u8; 6],
    /// IP source and TCP port.
    pub src: SocketAddr,
    /// IP destination and TCP port.
    pub dst: SocketAddr,
    /// TCP flags.
    pub flags: u8,
    /// Sequence number.
    pub seq: u32,
    /// TCP payload.
    pub payload: Vec<u8>,
}

/// What a gateway said about one packet (sim packet log, kernel trace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// The gateway.
    pub gateway: String,
    /// Interface the packet came in on.
    pub iface: String,
    /// Seconds since the gateway started (sim), or `None` (kernel trace:
    /// in order only).
    pub t: Option<f64>,
    /// Source as it arrived.
    pub src: SocketAddr,
    /// Destination as it arrived.
    pub dst: SocketAddr,
    /// Whether the gateway dropped (or rejected) it.
    pub dropped: bool,
    /// Why, in the gateway's words: `no mapping or forward`, `firewall`,
    /// `new inbound flow (port forward)`…
    pub what: String,
    /// The rule that decided, when known (`rule 2 "the seed ipf rule"`,
    /// `policy_in drop`, or the nft rule's text).
    pub rule: Option<String>,
}

/// A conntrack event of a kernel-engine gateway (`conntrack -E` line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtEvent {
    /// The gateway.
    pub gateway: String,
    /// Microseconds since the Unix epoch.
    pub t_us: u64,
    /// `NEW`, `UPDATE`, `DESTROY`.
    pub kind: String,
    /// Original direction as the initiator sent it.
    pub orig: (SocketAddr, SocketAddr),
    /// Reply direction as the responder sends it (translation shows here).
    pub reply: (SocketAddr, SocketAddr),
    /// TCP state, e.g. `SYN_SENT`.
    pub state: String,
}

/// Everything read for one scenario.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// TCP frames from every pcap, in capture order per file.
    pub frames: Vec<Frame>,
    /// Gateway notes, in log order per gateway.
    pub notes: Vec<Note>,
    /// Conntrack events.
    pub conntrack: Vec<CtEvent>,
    /// pcap files read (relative names).
    pub pcaps: Vec<String>,
    /// Frames or lines that did not decode.
    pub skipped: usize,
}

/// Reads the pcap of `gateway`'s `iface` at `path`.
pub fn read_pcap(
    path: &Path,
    gateway: &str,
    iface: &str,
    ev: &mut Evidence,
) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    let mut r = pcap_file::pcap::PcapReader::new(std::io::BufReader::new(file))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    while let Some(pkt) = r.next_packet() {
        let Ok(pkt) = pkt else {
            ev.skipped += 1;
            break;
        };
        let t_us = pkt.timestamp.as_micros() as u64;
        match decode(&pkt.data) {
            Err(()) => ev.skipped += 1,
            Ok(None) => {}
            Ok(Some((src_mac, src, dst, flags, seq, payload))) => ev.frames.push(Frame {
                t_us,
                gateway: gateway.into(),
                iface: iface.into(),
                src_mac,
                src,
                dst,
                flags,
                seq,
                payload,
            }),
        }
    }
    Ok(())
}

type Decoded = ([u8; 6], SocketAddr, SocketAddr, u8, u32, Vec<u8>);

/// An Ethernet frame's TCP segment; `Ok(None)` for what is not TCP over IP
/// (ARP, UDP, ICMP), `Err` for what does not decode.
fn decode(data: &[u8]) -> Result<Option<Decoded>, ()> {
    use etherparse::{LaxNetSlice, LaxSlicedPacket, LinkSlice, TransportSlice};
    let p = LaxSlicedPacket::from_ethernet(data).map_err(|_| ())?;
    let src_mac = match &p.link {
        Some(LinkSlice::Ethernet2(e)) => e.source(),
        _ => return Err(()),
    };
    let (sip, dip): (IpAddr, IpAddr) = match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
        ),
        Some(LaxNetSlice::Ipv6(v6)) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        ),
        _ => return Ok(None),
    };
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        return Ok(None);
    };
    let flags = u8::from(t.fin())
        | u8::from(t.syn()) << 1
        | u8::from(t.rst()) << 2
        | u8::from(t.psh()) << 3
        | u8::from(t.ack()) << 4;
    Ok(Some((
        src_mac,
        SocketAddr::new(sip, t.source_port()),
        SocketAddr::new(dip, t.destination_port()),
        flags,
        t.sequence_number(),
        t.payload().to_vec(),
    )))
}

/// Parses the sim engine's packet log (`<gateway>.packets.log`): lines
/// `  0.012345 wan0 tcp 203.0.113.10:40000->203.0.113.1:21 what`; a drop
/// reads `dropped (reason)` or `dropped (reason) [rule]`.
pub fn parse_packet_log(text: &str, gateway: &str, ev: &mut Evidence) {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match packet_log_line(line, gateway) {
            Some(n) => ev.notes.push(n),
            None => ev.skipped += 1,
        }
    }
}

fn packet_log_line(line: &str, gateway: &str) -> Option<Note> {
    let mut w = line.split_whitespace();
    let t: f64 = w.next()?.parse().ok()?;
    let iface = w.next()?.to_string();
    let proto = w.next()?;
    if proto != "tcp" {
        return None;
    }
    let (src, dst) = w.next()?.split_once("->")?;
    let (src, dst) = (src.parse().ok()?, dst.parse().ok()?);
    let what: String = w.collect::<Vec<_>>().join(" ");
    let (dropped, what, rule) = match what.strip_prefix("dropped (") {
        Some(rest) => {
            let (reason, tail) = rest.split_once(')').unwrap_or((rest, ""));
            let rule = tail
                .trim()
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .map(str::to_string);
            (true, reason.to_string(), rule)
        }
        None => (false, what, None),
    };
    Some(Note {
        gateway: gateway.into(),
        iface,
        t: Some(t),
        src,
        dst,
        dropped,
        what,
        rule,
    })
}

/// Notes from a kernel gateway's `nft -a monitor trace` output: one per
/// traced packet (new TCP connections), dropped or passed, with the rule.
/// `comments` maps ftpnat's rule comments (`ftpnat:rule:0`) to words.
pub fn parse_nft_trace(
    text: &str,
    gateway: &str,
    comments: &dyn Fn(&str) -> Option<String>,
    ev: &mut Evidence,
) {
    use crate::ruleset::trace::{self, EventKind, Fate};
    let comment_re = regex::Regex::new(r#"comment "([^"]*)""#).expect("literal");
    for p in trace::parse(text) {
        let h = p.arrived();
        let (Some(iif), Some(s), Some(d), Some(sp), Some(dp)) =
            (h.iif, h.saddr, h.daddr, h.sport, h.dport)
        else {
            ev.skipped += 1;
            continue;
        };
        let (dropped, what, rule) = match p.fate() {
            Fate::Passed => (false, "passed".to_string(), None),
            Fate::Rule(i) => {
                let e = &p.events[i];
                let text = match &e.kind {
                    EventKind::Rule { text, handle, .. } => match handle {
                        Some(h) => format!("{text} # handle {h}"),
                        None => text.clone(),
                    },
                    _ => String::new(),
                };
                let comment = comment_re.captures(&text).map(|c| c[1].to_string());
                let what = comment
                    .as_deref()
                    .and_then(comments)
                    .unwrap_or_else(|| format!("dropped in chain {}", e.chain.chain));
                let rule = format!(
                    "{} {} {}: {text}",
                    e.chain.family, e.chain.table, e.chain.chain
                );
                (true, what, Some(rule))
            }
            Fate::Policy(i) => {
                let e = &p.events[i];
                (
                    true,
                    format!("policy drop of chain {}", e.chain.chain),
                    Some(format!(
                        "{} {} {} policy drop",
                        e.chain.family, e.chain.table, e.chain.chain
                    )),
                )
            }
        };
        ev.notes.push(Note {
            gateway: gateway.into(),
            iface: iif,
            t: None,
            src: SocketAddr::new(s.into(), sp),
            dst: SocketAddr::new(d.into(), dp),
            dropped,
            what,
            rule,
        });
    }
}

/// Parses `conntrack -E -o timestamp` output (TCP only).
pub fn parse_conntrack(text: &str, gateway: &str, ev: &mut Evidence) {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match conntrack_line(line, gateway) {
            Some(e) => ev.conntrack.push(e),
            None => ev.skipped += 1,
        }
    }
}

fn conntrack_line(line: &str, gateway: &str) -> Option<CtEvent> {
    // [1700000000.123456]	    [NEW] tcp      6 120 SYN_SENT src=… dst=… sport=… dport=… [UNREPLIED] src=… …
    let rest = line.trim_start().strip_prefix('[')?;
    let (ts, rest) = rest.split_once(']')?;
    let t_us = (ts.trim().parse::<f64>().ok()? * 1e6) as u64;
    let rest = rest.trim_start().strip_prefix('[')?;
    let (kind, rest) = rest.split_once(']')?;
    let mut w = rest.split_whitespace();
    if w.next()? != "tcp" {
        return None;
    }
    let mut state = String::new();
    let mut kv: Vec<(String, String)> = Vec::new();
    for tok in w {
        match tok.split_once('=') {
            Some((k, v)) => kv.push((k.into(), v.into())),
            None if tok.chars().all(|c| c.is_ascii_uppercase() || c == '_') && state.is_empty() => {
                state = tok.into()
            }
            None => {}
        }
    }
    let get = |k: &str, nth: usize| -> Option<&str> {
        kv.iter()
            .filter(|(key, _)| key == k)
            .nth(nth)
            .map(|(_, v)| v.as_str())
    };
    let sa = |ip: &str, port: &str| -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
    };
    let orig = (
        sa(get("src", 0)?, get("sport", 0)?)?,
        sa(get("dst", 0)?, get("dport", 0)?)?,
    );
    let reply = (
        sa(get("src", 1)?, get("sport", 1)?)?,
        sa(get("dst", 1)?, get("dport", 1)?)?,
    );
    Some(CtEvent {
        gateway: gateway.into(),
        t_us,
        kind: kind.trim().to_string(),
        orig,
        reply,
        state,
    })
}

/// Reads every gateway's artifacts in a scenario's folder: `<gw>-<iface>.pcap`,
/// `<gw>.packets.log`, `<gw>.trace.log`, `<gw>.conntrack.log`.
pub fn read_dir(
    dir: &Path,
    gateways: &[crate::engine::GatewayConfig],
    comments: &dyn Fn(&str, &str) -> Option<String>,
) -> Evidence {
    let mut ev = Evidence::default();
    for g in gateways {
        for i in &g.ifaces {
            let name = format!("{}-{}.pcap", g.name, i.name);
            let p = dir.join(&name);
            if p.exists() && read_pcap(&p, &g.name, &i.name, &mut ev).is_ok() {
                ev.pcaps.push(name);
            }
        }
        if let Ok(t) = std::fs::read_to_string(dir.join(format!("{}.packets.log", g.name))) {
            parse_packet_log(&t, &g.name, &mut ev);
        }
        if let Ok(t) = std::fs::read_to_string(dir.join(format!("{}.trace.log", g.name))) {
            parse_nft_trace(&t, &g.name, &|c| comments(&g.name, c), &mut ev);
        }
        if let Ok(t) = std::fs::read_to_string(dir.join(format!("{}.conntrack.log", g.name))) {
            parse_conntrack(&t, &g.name, &mut ev);
        }
    }
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_log_lines_with_and_without_rule() {
        let mut ev = Evidence::default();
        parse_packet_log(
            "  0.010000 wan0 tcp 203.0.113.10:40000->203.0.113.1:21 new inbound flow (port forward)\n  1.500000 wan0 tcp 203.0.113.10:40002->203.0.113.1:39999 dropped (no mapping or forward)\n  2.0 wan0 tcp 203.0.113.10:1->198.51.100.2:40000 dropped (firewall) [policy_in drop]\n  3.0 lan0 udp 1.2.3.4:1->5.6.7.8:2 new flow (routed)\n",
            "gw",
            &mut ev,
        );
        assert_eq!(ev.notes.len(), 3);
        assert_eq!(ev.skipped, 1);
        assert!(!ev.notes[0].dropped);
        assert_eq!(ev.notes[1].what, "no mapping or forward");
        assert!(ev.notes[1].dropped);
        assert_eq!(ev.notes[2].rule.as_deref(), Some("policy_in drop"));
    }

    #[test]
    fn conntrack_event_line() {
        let mut ev = Evidence::default();
        parse_conntrack("[1700000000.250000]\t    [NEW] tcp      6 120 SYN_SENT src=203.0.113.10 dst=203.0.113.1 sport=40112 dport=60003 [UNREPLIED] src=192.168.1.2 dst=203.0.113.10 sport=60003 dport=40112\n[1700000000.3]\t [DESTROY] udp 17 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1\ngarbage\n", "gw", &mut ev);
        assert_eq!(ev.conntrack.len(), 1);
        let e = &ev.conntrack[0];
        assert_eq!(e.kind, "NEW");
        assert_eq!(e.state, "SYN_SENT");
        assert_eq!(e.t_us, 1_700_000_000_250_000);
        assert_eq!(e.reply.0, "192.168.1.2:60003".parse().unwrap());
        assert_eq!(ev.skipped, 2);
    }

    #[test]
    fn nft_trace_drop_names_the_rule_and_its_comment() {
        let mut ev = Evidence::default();
        let text = "trace id 1 inet ftpnat input packet: iif \"wan0\" ip saddr 203.0.113.10 ip daddr 203.0.113.1 tcp sport 40002 tcp dport 39999 tcp flags == syn\ntrace id 1 inet ftpnat input rule iifname \"wan0\" meta l4proto tcp reject with tcp reset comment \"ftpnat:unsolicited\" # handle 9 (verdict drop)\n";
        let words =
            |c: &str| (c == "ftpnat:unsolicited").then(|| "no mapping or forward".to_string());
        parse_nft_trace(text, "gw", &words, &mut ev);
        assert_eq!(ev.notes.len(), 1);
        let n = &ev.notes[0];
        assert!(n.dropped);
        assert_eq!(n.what, "no mapping or forward");
        assert_eq!(n.iface, "wan0");
        assert!(
            n.rule.as_deref().unwrap().contains("reject with tcp reset"),
            "{n:?}"
        );
    }

    #[test]
    fn odd_bytes_are_skipped_not_fatal() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[0xff; 13]).is_err());
        // An Ethernet frame of an unknown type: not TCP, not an error.
        assert!(matches!(decode(&[0u8; 200]), Ok(None)));
    }
}
