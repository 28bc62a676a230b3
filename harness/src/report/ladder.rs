//! The ladder (sequence diagram) of a scenario: one lane per host and per
//! gateway side, one row per thing worth seeing — a TCP handshake segment,
//! an FTP command or reply, a data burst, a reset, a drop with its reason,
//! a step boundary — as each gateway side saw it.
//!
//! Built from [`Evidence`] (pcaps of every gateway interface, the sim
//! packet log or the kernel's nft trace) and the steps' start times. Pure:
//! no file or clock here, so it is unit-tested on recorded artifacts.
//!
//! How the pieces are tied together:
//! * a frame was *sent* by the gateway when its Ethernet source is the
//!   gateway interface's MAC, else *received* there;
//! * the two sides of one connection through a gateway share the initial
//!   sequence number of their SYN (NAT rewrites addresses and ports, never
//!   it): a received SYN whose ISN never leaves on another interface of
//!   that gateway was not forwarded, and the gateway's note for that packet
//!   (matched by interface, addresses and time or order) says why;
//! * a data connection belongs to the control connection whose 227/229
//!   (or PORT/EPRT) announced its destination; a control connection to the
//!   client of the `connect` step that preceded its SYN.

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr},
};

use serde::Serialize;

use super::evidence::{tcp_flags as F, Evidence, Frame, Note};
use crate::{
    engine::{AlgMode, Side},
    scenario::{Action, Scenario, Step},
};

/// A step as the ladder marks it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StepMark {
    /// Step number.
    pub index: usize,
    /// Its client ("" for checks).
    pub client: String,
    /// What it did.
    pub action: String,
    /// Whether it passed.
    pub passed: bool,
    /// When it started, microseconds since the Unix epoch.
    pub started_us: u64,
}

/// A lane of the ladder.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Lane {
    /// Shown on top: a host name, or `gw wan0`.
    pub label: String,
    /// Addresses under it.
    pub addrs: String,
    /// A host, or a gateway side.
    pub kind: LaneKind,
}

/// What a lane stands for.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LaneKind {
    /// A host.
    Host,
    /// One side of a gateway.
    Gateway {
        /// Gateway name.
        gateway: String,
        /// Interface.
        iface: String,
        /// Inside or outside.
        outside: bool,
    },
    /// An address no host or gateway of the scenario has.
    Other,
}

/// A TCP connection as one gateway interface saw it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Connection {
    /// `c3 control`, `c3 data (227)`, or the addresses.
    pub label: String,
    /// Gateway and interface.
    pub at: String,
    /// Who sent the SYN.
    pub initiator: SocketAddr,
    /// Who it was for.
    pub responder: SocketAddr,
    /// Flow number: the same connection on every side shares it.
    pub flow: usize,
    /// `control`, `data` or `tcp`.
    pub kind: &'static str,
}

/// One row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// Milliseconds since the first thing recorded.
    pub t_ms: f64,
    /// What.
    pub kind: RowKind,
}

/// What a row shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum RowKind {
    /// A step begins.
    Step {
        /// Step number.
        index: usize,
        /// `c3: retr hello.txt (pending)`.
        label: String,
        /// Whether it passed.
        passed: bool,
    },
    /// A segment (or a run of them) on one side of a gateway.
    Msg(Msg),
    /// Rows left out of a step with very many (a port scan).
    Folded {
        /// Rows left out.
        hidden: usize,
        /// How many of them were drops.
        dropped: usize,
    },
}

/// Rows kept per step before the rest are folded.
const ROWS_PER_STEP: usize = 60;

/// A segment between two lanes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Msg {
    /// Connection index.
    pub conn: usize,
    /// Lane it leaves.
    pub from: usize,
    /// Lane it reaches.
    pub to: usize,
    /// `SYN`, `SYN-ACK`, `RST`, `PASV`, `227 Entering…`, `data 21 bytes`.
    pub text: String,
    /// Source and destination as on this wire.
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// Times seen (retransmissions collapsed).
    pub count: usize,
    /// The gateway dropped it here: why.
    pub dropped: Option<Drop>,
    /// Something to look at (a private or unforwarded address in a 227…).
    pub warn: Option<String>,
    /// It left the gateway after translation: how the addresses changed
    /// from the side it came in on (`dst 203.0.113.1:21 → 192.168.1.2:21`).
    pub xlat: Option<Xlat>,
}

/// Where and why a packet was dropped.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Drop {
    /// The gateway's reason (`no mapping or forward`, `firewall`…).
    pub reason: String,
    /// The rule that decided, when known.
    pub rule: Option<String>,
    /// Whether the gateway answered with a reset (refused) or stayed silent.
    pub answered: bool,
}

/// A translation across a gateway.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Xlat {
    /// The lane it came in on.
    pub from_lane: usize,
    /// `DNAT dst 203.0.113.1:21 → 192.168.1.2:21` etc.
    pub text: String,
}

/// The whole diagram.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ladder {
    /// Lanes left to right.
    pub lanes: Vec<Lane>,
    /// Connections.
    pub conns: Vec<Connection>,
    /// Rows top to bottom.
    pub rows: Vec<Row>,
    /// The first-glance findings (drops, suspicious replies), in order.
    pub findings: Vec<String>,
    /// The row each finding is about.
    pub finding_rows: Vec<usize>,
    /// What limited the picture (no pcaps, undecodable frames…).
    pub caveats: Vec<String>,
}

/// Builds the ladder.
pub fn build(sc: &Scenario, ev: &Evidence, steps: &[StepMark]) -> Ladder {
    Builder::new(sc, ev).run(steps)
}

struct Builder<'a> {
    sc: &'a Scenario,
    ev: &'a Evidence,
    lanes: Vec<Lane>,
    /// (gateway, iface) → lane.
    gw_lane: HashMap<(String, String), usize>,
    host_lane: HashMap<String, usize>,
    conns: Vec<Connection>,
    conn_key: HashMap<(String, String, SocketAddr, SocketAddr), usize>,
    rows: Vec<Row>,
    findings: Vec<String>,
    finding_rows: Vec<usize>,
    caveats: Vec<String>,
}

/// (gateway, interface, source, destination) of a packet.
type NoteKey = (String, String, SocketAddr, SocketAddr);

fn ordered(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

fn is_syn(f: &Frame) -> bool {
    f.flags & (F::SYN | F::ACK) == F::SYN
}

impl<'a> Builder<'a> {
    fn new(sc: &'a Scenario, ev: &'a Evidence) -> Self {
        let mut b = Builder {
            sc,
            ev,
            lanes: Vec::new(),
            gw_lane: HashMap::new(),
            host_lane: HashMap::new(),
            conns: Vec::new(),
            conn_key: HashMap::new(),
            rows: Vec::new(),
            findings: Vec::new(),
            finding_rows: Vec::new(),
            caveats: Vec::new(),
        };
        // Outside hosts, then each gateway outside → inside, then the rest.
        let outside_nets: Vec<ipnet::Ipv4Net> = sc
            .gateways
            .iter()
            .flat_map(|g| g.config.ifaces.iter())
            .filter(|i| i.side == Side::Outside)
            .map(|i| i.addr.trunc())
            .collect();
        let is_outside = |h: &crate::scenario::resolve::HostSpec| {
            h.addrs.iter().any(|a| match a.addr() {
                IpAddr::V4(v4) => outside_nets.iter().any(|n| n.contains(&v4)),
                IpAddr::V6(_) => false,
            })
        };
        let host_lane = |h: &crate::scenario::resolve::HostSpec| Lane {
            label: h.name.clone(),
            addrs: h
                .addrs
                .iter()
                .map(|a| a.addr().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            kind: LaneKind::Host,
        };
        for h in sc.hosts.iter().filter(|h| is_outside(h)) {
            b.host_lane.insert(h.name.clone(), b.lanes.len());
            b.lanes.push(host_lane(h));
        }
        for g in &sc.gateways {
            let mut ifs: Vec<_> = g.config.ifaces.iter().collect();
            ifs.sort_by_key(|i| i.side != Side::Outside);
            for i in ifs {
                b.gw_lane
                    .insert((g.config.name.clone(), i.name.clone()), b.lanes.len());
                b.lanes.push(Lane {
                    label: format!("{} {}", g.config.name, i.name),
                    addrs: format!(
                        "{} ({})",
                        i.addr.addr(),
                        if i.side == Side::Outside {
                            "WAN"
                        } else {
                            "LAN"
                        }
                    ),
                    kind: LaneKind::Gateway {
                        gateway: g.config.name.clone(),
                        iface: i.name.clone(),
                        outside: i.side == Side::Outside,
                    },
                });
            }
        }
        for h in sc.hosts.iter().filter(|h| !is_outside(h)) {
            b.host_lane.insert(h.name.clone(), b.lanes.len());
            b.lanes.push(host_lane(h));
        }
        b
    }

    fn iface_cfg(&self, gw: &str, iface: &str) -> Option<&crate::engine::IfaceConfig> {
        self.sc
            .gateways
            .iter()
            .find(|g| g.config.name == gw)?
            .config
            .ifaces
            .iter()
            .find(|i| i.name == iface)
    }

    fn sent_by_gateway(&self, f: &Frame) -> bool {
        self.iface_cfg(&f.gateway, &f.iface)
            .is_some_and(|i| i.mac == f.src_mac)
    }

    /// The lane of the device owning `ip` on the segment of `gw`'s `iface`.
    fn peer_lane(&mut self, gw: &str, iface: &str, ip: IpAddr) -> usize {
        let net = self.iface_cfg(gw, iface).map(|i| i.addr.trunc());
        let on_segment = |a: IpAddr| match (a, net) {
            (IpAddr::V4(v4), Some(n)) => n.contains(&v4),
            _ => true,
        };
        if let Some(h) = self
            .sc
            .hosts
            .iter()
            .find(|h| h.addrs.iter().any(|a| a.addr() == ip))
        {
            return self.host_lane[&h.name];
        }
        // Another gateway on this segment (routed traffic comes through it).
        for g in &self.sc.gateways {
            if g.config.name == gw {
                continue;
            }
            for i in &g.config.ifaces {
                if on_segment(IpAddr::V4(i.addr.addr())) {
                    return self.gw_lane[&(g.config.name.clone(), i.name.clone())];
                }
            }
        }
        let label = format!("{ip}");
        if let Some(p) = self.lanes.iter().position(|l| l.label == label) {
            return p;
        }
        self.lanes.push(Lane {
            label,
            addrs: "not in the scenario".into(),
            kind: LaneKind::Other,
        });
        self.lanes.len() - 1
    }

    fn run(mut self, steps: &[StepMark]) -> Ladder {
        let ev = self.ev;
        let mut frames: Vec<&Frame> = ev.frames.iter().collect();
        frames.sort_by_key(|f| f.t_us);
        let t0 = frames
            .first()
            .map(|f| f.t_us)
            .into_iter()
            .chain(steps.iter().map(|s| s.started_us))
            .min()
            .unwrap_or(0);
        let ms = |t: u64| (t.saturating_sub(t0)) as f64 / 1000.0;
        if ev.pcaps.is_empty() {
            self.caveats.push(
                "no pcap was recorded (--no-pcap, or an engine that records none): the ladder shows the gateway's notes only".into(),
            );
        }
        if ev.skipped > 0 {
            self.caveats.push(format!(
                "{} frame(s) or log line(s) were not TCP or did not decode",
                ev.skipped
            ));
        }
        // Which ISNs left each gateway on which interfaces (sent SYNs).
        let mut isn_sent: HashMap<(String, u32), Vec<String>> = HashMap::new();
        for f in &frames {
            if is_syn(f) && self.sent_by_gateway(f) {
                isn_sent
                    .entry((f.gateway.clone(), f.seq))
                    .or_default()
                    .push(f.iface.clone());
            }
        }
        let mut flows: HashMap<u32, usize> = HashMap::new();
        let drops = self.match_drops(&frames, &isn_sent);
        // Per (conn, direction): next expected sequence number and the
        // unfinished line.
        let mut streams: HashMap<(usize, bool), (Option<u32>, Vec<u8>)> = HashMap::new();
        let mut data_rows: HashMap<(usize, bool), usize> = HashMap::new();
        let mut syn_rows: HashMap<(usize, u8), usize> = HashMap::new();
        let mut steps: Vec<&StepMark> = steps.iter().collect();
        steps.sort_by_key(|s| s.started_us);
        let mut next_step = 0;
        // Where each flow entered each gateway: (lane, src, dst).
        let mut entered: HashMap<(usize, String), (usize, SocketAddr, SocketAddr)> = HashMap::new();
        for (fi, f) in frames.iter().enumerate() {
            while next_step < steps.len() && steps[next_step].started_us <= f.t_us {
                self.push_step(steps[next_step], ms(steps[next_step].started_us));
                next_step += 1;
            }
            let sent = self.sent_by_gateway(f);
            let key = (
                f.gateway.clone(),
                f.iface.clone(),
                ordered(f.src, f.dst).0,
                ordered(f.src, f.dst).1,
            );
            let conn = match self.conn_key.get(&key) {
                Some(c) => *c,
                None => {
                    let flow = if is_syn(f) {
                        let n = flows.len();
                        *flows.entry(f.seq).or_insert(n)
                    } else {
                        usize::MAX
                    };
                    let (initiator, responder) = if f.flags & (F::SYN | F::ACK) == F::SYN | F::ACK {
                        (f.dst, f.src)
                    } else {
                        (f.src, f.dst)
                    };
                    self.conns.push(Connection {
                        label: String::new(),
                        at: format!("{} {}", f.gateway, f.iface),
                        initiator,
                        responder,
                        flow,
                        kind: "tcp",
                    });
                    self.conn_key.insert(key, self.conns.len() - 1);
                    self.conns.len() - 1
                }
            };
            let gw_lane = self.gw_lane[&(f.gateway.clone(), f.iface.clone())];
            let (from, to) = if sent {
                (gw_lane, self.peer_lane(&f.gateway, &f.iface, f.dst.ip()))
            } else {
                (self.peer_lane(&f.gateway, &f.iface, f.src.ip()), gw_lane)
            };
            let flow = self.conns[conn].flow;
            let xlat = if sent && flow != usize::MAX {
                entered
                    .get(&(flow, f.gateway.clone()))
                    .filter(|(lane, ..)| *lane != gw_lane)
                    .and_then(|&(lane, s, d)| {
                        let from_initiator = f.src.port() == self.conns[conn].initiator.port()
                            && f.src.ip() == self.conns[conn].initiator.ip();
                        // Compare in the direction of this segment.
                        let (s0, d0) = if from_initiator { (s, d) } else { (d, s) };
                        let mut parts = Vec::new();
                        if s0 != f.src {
                            parts.push(format!("SNAT {s0} → {}", f.src));
                        }
                        if d0 != f.dst {
                            parts.push(format!("DNAT {d0} → {}", f.dst));
                        }
                        (!parts.is_empty()).then(|| Xlat {
                            from_lane: lane,
                            text: parts.join(", "),
                        })
                    })
            } else {
                None
            };
            if !sent && is_syn(f) && flow != usize::MAX {
                entered
                    .entry((flow, f.gateway.clone()))
                    .or_insert((gw_lane, f.src, f.dst));
            }
            let dropped = drops.get(&fi).cloned();
            let t = ms(f.t_us);
            let msg = |text: String| Msg {
                conn,
                from,
                to,
                text,
                src: f.src,
                dst: f.dst,
                count: 1,
                dropped: dropped.clone(),
                warn: None,
                xlat: xlat.clone(),
            };
            // Handshake and resets: one row each, retransmissions folded.
            let hs = f.flags & (F::SYN | F::ACK | F::RST);
            if f.flags & F::SYN != 0 || f.flags & F::RST != 0 {
                let text = match hs {
                    x if x & F::RST != 0 => "RST".to_string(),
                    x if x == F::SYN => "SYN".to_string(),
                    _ => "SYN-ACK".to_string(),
                };
                let fold = (conn, hs | u8::from(sent) << 7);
                if let Some(&r) = syn_rows.get(&fold) {
                    if let RowKind::Msg(m) = &mut self.rows[r].kind {
                        if m.dropped == dropped {
                            m.count += 1;
                            continue;
                        }
                    }
                }
                syn_rows.insert(fold, self.rows.len());
                self.rows.push(Row {
                    t_ms: t,
                    kind: RowKind::Msg(msg(text)),
                });
                continue;
            }
            if f.payload.is_empty() {
                continue;
            }
            let from_initiator = f.src == self.conns[conn].initiator;
            let (next, buf) = streams.entry((conn, from_initiator)).or_default();
            if let Some(n) = *next {
                // A retransmission or old segment: its bytes were counted.
                if (f.seq.wrapping_sub(n) as i32) < 0 {
                    continue;
                }
            }
            *next = Some(f.seq.wrapping_add(f.payload.len() as u32));
            let control = self.conns[conn].kind == "control"
                || (self.conns[conn].kind == "tcp"
                    && !from_initiator
                    && f.payload.len() >= 4
                    && f.payload[..3].iter().all(u8::is_ascii_digit)
                    && matches!(f.payload[3], b' ' | b'-'));
            // Bytes that are not text on a control connection: TLS after
            // AUTH TLS (and until CCC). Counted, like data.
            let binary = f
                .payload
                .iter()
                .any(|&b| b < 0x09 || (0x0e..0x20).contains(&b) || b == 0x7f);
            if control && !binary {
                self.conns[conn].kind = "control";
                buf.extend_from_slice(&f.payload);
                let mut lines = Vec::new();
                while let Some(p) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=p).collect();
                    lines.push(String::from_utf8_lossy(&line).trim_end().to_string());
                }
                for l in lines {
                    // Multi-line replies: only their last line (`227 …`) is a row.
                    if !from_initiator && l.len() >= 4 && l.as_bytes()[3] == b'-' {
                        continue;
                    }
                    let shown = match l.split_once(' ') {
                        Some((c, _)) if c.eq_ignore_ascii_case("PASS") => "PASS ****".into(),
                        _ => l,
                    };
                    let mut m = msg(shown);
                    m.xlat = None;
                    self.rows.push(Row {
                        t_ms: t,
                        kind: RowKind::Msg(m),
                    });
                }
            } else {
                let what = if control {
                    buf.clear();
                    "TLS"
                } else {
                    self.conns[conn].kind = "data";
                    "data"
                };
                match data_rows.get(&(conn, from_initiator)) {
                    Some(&r) => {
                        if let RowKind::Msg(m) = &mut self.rows[r].kind {
                            let n: usize = m
                                .text
                                .split_whitespace()
                                .nth(1)
                                .and_then(|n| n.parse().ok())
                                .unwrap_or(0);
                            m.text = format!("{what} {} bytes", n + f.payload.len());
                            m.count += 1;
                        }
                    }
                    None => {
                        data_rows.insert((conn, from_initiator), self.rows.len());
                        let mut m = msg(format!("{what} {} bytes", f.payload.len()));
                        m.xlat = None;
                        self.rows.push(Row {
                            t_ms: t,
                            kind: RowKind::Msg(m),
                        });
                    }
                }
            }
        }
        while next_step < steps.len() {
            self.push_step(steps[next_step], ms(steps[next_step].started_us));
            next_step += 1;
        }
        self.label_connections(&steps);
        self.mark_alg_rewrites();
        self.check_replies();
        self.fold();
        self.collect_findings();
        Ladder {
            lanes: self.lanes,
            conns: self.conns,
            rows: self.rows,
            findings: self.findings,
            finding_rows: self.finding_rows,
            caveats: self.caveats,
        }
    }

    /// Keeps the first [`ROWS_PER_STEP`] rows of each step (and up to 10
    /// more flagged ones); the rest become one [`RowKind::Folded`] row.
    fn fold(&mut self) {
        let mut out = Vec::with_capacity(self.rows.len());
        let (mut kept, mut flagged, mut hidden, mut dropped) = (0, 0, 0, 0);
        let flush = |out: &mut Vec<Row>, hidden: &mut usize, dropped: &mut usize, t_ms: f64| {
            if *hidden > 0 {
                out.push(Row {
                    t_ms,
                    kind: RowKind::Folded {
                        hidden: *hidden,
                        dropped: *dropped,
                    },
                });
            }
            (*hidden, *dropped) = (0, 0);
        };
        let mut last_t = 0.0;
        for r in std::mem::take(&mut self.rows) {
            match &r.kind {
                RowKind::Msg(m) => {
                    let flag = m.dropped.is_some() || m.warn.is_some();
                    if kept < ROWS_PER_STEP || (flag && flagged < 10) {
                        kept += 1;
                        if kept > ROWS_PER_STEP {
                            flagged += 1;
                        }
                        out.push(r);
                    } else {
                        hidden += 1;
                        dropped += usize::from(m.dropped.is_some());
                        last_t = r.t_ms;
                    }
                }
                _ => {
                    flush(&mut out, &mut hidden, &mut dropped, last_t);
                    (kept, flagged) = (0, 0);
                    out.push(r);
                }
            }
        }
        flush(&mut out, &mut hidden, &mut dropped, last_t);
        self.rows = out;
    }

    fn push_step(&mut self, s: &StepMark, t_ms: f64) {
        let label = if s.client.is_empty() {
            s.action.clone()
        } else {
            format!("{}: {}", s.client, s.action)
        };
        self.rows.push(Row {
            t_ms,
            kind: RowKind::Step {
                index: s.index,
                label,
                passed: s.passed,
            },
        });
    }

    /// For every received frame the gateway dropped: why. A frame crossed
    /// when a copy left on another interface of that gateway (same
    /// sequence number and flags, within 50 ms; a SYN: its ISN at any
    /// time). Timed notes (sim) go to the nearest received frame of their
    /// addresses that did not cross; untimed ones (kernel trace, SYNs
    /// only) to the SYNs of their addresses in order. A SYN that did not
    /// cross and has no note still gets a reason from what was seen.
    fn match_drops(
        &mut self,
        frames: &[&Frame],
        isn_sent: &HashMap<(String, u32), Vec<String>>,
    ) -> HashMap<usize, Drop> {
        let sent: Vec<bool> = frames.iter().map(|f| self.sent_by_gateway(f)).collect();
        let crossed: Vec<bool> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if sent[i] {
                    return false;
                }
                if is_syn(f) {
                    return isn_sent
                        .get(&(f.gateway.clone(), f.seq))
                        .is_some_and(|ifs| ifs.iter().any(|x| *x != f.iface));
                }
                let flags = F::SYN | F::RST | F::FIN;
                frames[i..]
                    .iter()
                    .enumerate()
                    .take_while(|(_, g)| g.t_us <= f.t_us + 50_000)
                    .any(|(k, g)| {
                        sent[i + k]
                            && g.gateway == f.gateway
                            && g.iface != f.iface
                            && g.seq == f.seq
                            && g.payload.len() == f.payload.len()
                            && g.flags & flags == f.flags & flags
                    })
            })
            .collect();
        let mut by_key: HashMap<NoteKey, Vec<usize>> = HashMap::new();
        for (i, f) in frames.iter().enumerate() {
            if !sent[i] {
                by_key
                    .entry((f.gateway.clone(), f.iface.clone(), f.src, f.dst))
                    .or_default()
                    .push(i);
            }
        }
        // Sim notes carry the gateway's own clock: align it with the pcaps'
        // on the notes of new flows (their SYN is unambiguous).
        let mut offsets: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for n in self.ev.notes.iter().filter(|n| !n.dropped) {
            let (Some(t), Some(v)) = (
                n.t,
                by_key.get(&(n.gateway.clone(), n.iface.clone(), n.src, n.dst)),
            ) else {
                continue;
            };
            if let Some(&fi) = v.iter().find(|&&fi| is_syn(frames[fi])) {
                offsets
                    .entry(n.gateway.clone())
                    .or_default()
                    .push(frames[fi].t_us as i64 - (t * 1e6) as i64);
            }
        }
        let offset: BTreeMap<String, i64> = offsets
            .into_iter()
            .map(|(g, mut v)| {
                v.sort_unstable();
                (g, v[v.len() / 2])
            })
            .collect();
        let mut note_of: HashMap<usize, &Note> = HashMap::new();
        let mut cursor: HashMap<NoteKey, usize> = HashMap::new();
        for n in &self.ev.notes {
            let key = (n.gateway.clone(), n.iface.clone(), n.src, n.dst);
            let Some(v) = by_key.get(&key) else { continue };
            match (n.t, offset.get(&n.gateway)) {
                (Some(t), Some(off)) => {
                    if !n.dropped {
                        continue;
                    }
                    let at = (t * 1e6) as i64 + off;
                    let best = v
                        .iter()
                        .filter(|&&fi| !crossed[fi] && !note_of.contains_key(&fi))
                        .map(|&fi| (fi, (frames[fi].t_us as i64 - at).abs()))
                        .filter(|(_, d)| *d <= 20_000)
                        .min_by_key(|(_, d)| *d);
                    if let Some((fi, _)) = best {
                        note_of.insert(fi, n);
                    }
                }
                (Some(_), None) => {
                    // No anchor for the clock: the first SYN that did not cross.
                    if let Some(&fi) = v.iter().find(|&&fi| {
                        n.dropped
                            && is_syn(frames[fi])
                            && !crossed[fi]
                            && !note_of.contains_key(&fi)
                    }) {
                        note_of.insert(fi, n);
                    }
                }
                (None, _) => {
                    // In order over the SYNs of these addresses.
                    let c = cursor.entry(key).or_default();
                    let syns: Vec<usize> =
                        v.iter().copied().filter(|&fi| is_syn(frames[fi])).collect();
                    if let Some(&fi) = syns.get(*c) {
                        *c += 1;
                        if n.dropped {
                            note_of.insert(fi, n);
                        }
                    }
                }
            }
        }
        let mut out = HashMap::new();
        for (fi, f) in frames.iter().enumerate() {
            if sent[fi] {
                continue;
            }
            let own = self
                .sc
                .gateways
                .iter()
                .find(|g| g.config.name == f.gateway)
                .is_some_and(|g| {
                    g.config
                        .ifaces
                        .iter()
                        .any(|i| IpAddr::V4(i.addr.addr()) == f.dst.ip())
                });
            let answered = frames[fi..].iter().enumerate().take(50).any(|(k, g)| {
                sent[fi + k]
                    && g.gateway == f.gateway
                    && g.iface == f.iface
                    && g.flags & F::RST != 0
                    && g.src == f.dst
                    && g.dst == f.src
            });
            match note_of.get(&fi) {
                Some(n) => {
                    out.insert(
                        fi,
                        Drop {
                            reason: n.what.clone(),
                            rule: n.rule.clone(),
                            answered,
                        },
                    );
                }
                None if is_syn(f) && !crossed[fi] => {
                    let reason = if answered && own {
                        "refused by the gateway itself (nothing forwards this port)"
                    } else if own {
                        "not forwarded (the gateway recorded no reason)"
                    } else {
                        "not forwarded (no reason recorded)"
                    };
                    out.insert(
                        fi,
                        Drop {
                            reason: reason.into(),
                            rule: None,
                            answered,
                        },
                    );
                }
                None => {}
            }
        }
        out
    }

    /// An FTP line that leaves a gateway other than it came in (the ALG
    /// rewrote a 227, PORT…): the k-th line one way on a flow's ingress
    /// side against the k-th on its egress side.
    fn mark_alg_rewrites(&mut self) {
        let gw_of = |lane: usize, lanes: &[Lane]| match &lanes[lane].kind {
            LaneKind::Gateway { gateway, .. } => Some(gateway.clone()),
            _ => None,
        };
        // (flow, gateway, from initiator) → (received rows, sent rows)
        type Sides = (Vec<usize>, Vec<usize>);
        let mut sides: BTreeMap<(usize, String, bool), Sides> = BTreeMap::new();
        for (i, r) in self.rows.iter().enumerate() {
            let RowKind::Msg(m) = &r.kind else { continue };
            let k = &self.conns[m.conn];
            let is_line = k.kind == "control"
                && !matches!(m.text.as_str(), "SYN" | "SYN-ACK" | "RST")
                && !m.text.starts_with("TLS ");
            if !is_line || k.flow == usize::MAX {
                continue;
            }
            let dir = m.src == k.initiator;
            if let Some(g) = gw_of(m.to, &self.lanes) {
                sides.entry((k.flow, g, dir)).or_default().0.push(i);
            }
            if let Some(g) = gw_of(m.from, &self.lanes) {
                sides.entry((k.flow, g, dir)).or_default().1.push(i);
            }
        }
        for (received, sent) in sides.values() {
            for (&a, &b) in received.iter().zip(sent) {
                let (RowKind::Msg(ma), RowKind::Msg(mb)) = (&self.rows[a].kind, &self.rows[b].kind)
                else {
                    continue;
                };
                if ma.text != mb.text {
                    let x = Xlat {
                        from_lane: ma.to,
                        text: format!("ALG rewrote: {}", ma.text),
                    };
                    if let RowKind::Msg(mb) = &mut self.rows[b].kind {
                        mb.xlat = Some(x);
                    }
                }
            }
        }
    }

    /// Names connections after their clients: a control connection after
    /// the `connect` step before its SYN, a data connection after the
    /// control connection whose reply or command announced its address.
    fn label_connections(&mut self, steps: &[&StepMark]) {
        let connects: Vec<(u64, String, String, SocketAddr)> = steps
            .iter()
            .filter_map(|s| {
                let step = find_step(&self.sc.steps, s.index)?;
                match &step.action {
                    Action::Connect { host, addr } => {
                        Some((s.started_us, s.client.clone(), host.clone(), *addr))
                    }
                    _ => None,
                }
            })
            .collect();
        // The flow's first SYN time on the client's side.
        let mut first_syn: HashMap<usize, f64> = HashMap::new();
        for r in &self.rows {
            if let RowKind::Msg(m) = &r.kind {
                if m.text == "SYN" {
                    first_syn.entry(m.conn).or_insert(r.t_ms);
                }
            }
        }
        let t0_us = steps.first().map(|s| s.started_us).unwrap_or(0);
        let t0_ms = self
            .rows
            .iter()
            .find_map(|r| match r.kind {
                RowKind::Step { .. } => Some(r.t_ms),
                _ => None,
            })
            .unwrap_or(0.0);
        let mut names: HashMap<usize, String> = HashMap::new();
        let mut taken: Vec<usize> = Vec::new();
        for (start, client, host, addr) in &connects {
            let Some(h) = self.sc.hosts.iter().find(|h| &h.name == host) else {
                continue;
            };
            let start_ms = t0_ms + (*start as f64 - t0_us as f64) / 1000.0;
            let best = (0..self.conns.len())
                .filter(|c| {
                    let k = &self.conns[*c];
                    k.responder == *addr
                        && h.addrs.iter().any(|a| a.addr() == k.initiator.ip())
                        && !taken.contains(&k.flow)
                        && first_syn.get(c).is_some_and(|t| *t + 1.0 >= start_ms)
                })
                .min_by(|a, b| first_syn[a].total_cmp(&first_syn[b]));
            if let Some(c) = best {
                taken.push(self.conns[c].flow);
                names.insert(self.conns[c].flow, format!("{client} control"));
            }
        }
        // Data connections: the announced address on the client's side.
        let mut announced: Vec<(SocketAddr, usize)> = Vec::new();
        for r in &self.rows {
            let RowKind::Msg(m) = &r.kind else { continue };
            if let Some(a) = announced_addr(&m.text, m.src) {
                announced.push((a, self.conns[m.conn].flow));
            }
        }
        for c in 0..self.conns.len() {
            let flow = self.conns[c].flow;
            if names.contains_key(&flow) || self.conns[c].kind == "control" {
                continue;
            }
            let resp = self.conns[c].responder;
            if let Some((_, ctl)) = announced.iter().rev().find(|(a, _)| *a == resp) {
                if let Some(n) = names.get(ctl) {
                    let n = n.replace(" control", " data");
                    names.insert(flow, n);
                }
            }
        }
        for k in &mut self.conns {
            k.label = match names.get(&k.flow) {
                Some(n) => n.clone(),
                None => format!("{} → {}", k.initiator, k.responder),
            };
            if k.kind == "tcp" && k.label.ends_with(" data") {
                k.kind = "data";
            }
        }
        // Every side of a flow is control when one side is.
        let control: Vec<usize> = self
            .conns
            .iter()
            .filter(|k| k.kind == "control")
            .map(|k| k.flow)
            .collect();
        for k in &mut self.conns {
            if control.contains(&k.flow) && k.flow != usize::MAX {
                k.kind = "control";
            }
        }
    }

    /// Flags 227/229 replies a client cannot use: a private address sent
    /// to an outside client, an address other than the one it connected
    /// to, or a port its gateway does not forward; and PORT/EPRT with a
    /// private address leaving for an outside server.
    fn check_replies(&mut self) {
        for r in 0..self.rows.len() {
            let RowKind::Msg(m) = &self.rows[r].kind else {
                continue;
            };
            let k = &self.conns[m.conn];
            // Judge on the client's wire only (the row reaching a host).
            if self.lanes[m.to].kind != LaneKind::Host {
                continue;
            }
            let mut warn = Vec::new();
            if let Some(a) = announced_addr(&m.text, k.responder) {
                if m.src == k.responder {
                    let client_outside = self.is_outside_host(m.to);
                    if client_outside && !crate::client::is_public(a.ip()) {
                        warn.push(format!(
                            "private address {} sent to an outside client",
                            a.ip()
                        ));
                    } else if a.ip() != k.responder.ip() {
                        warn.push(format!(
                            "address {} is not the one the client connected to ({})",
                            a.ip(),
                            k.responder.ip()
                        ));
                    }
                    if let Some(w) = self.unforwarded(a) {
                        warn.push(w);
                    }
                    if let Some(w) = self.outside_passive_range(k.flow, a.port()) {
                        warn.push(w);
                    }
                }
            }
            if !warn.is_empty() {
                if let RowKind::Msg(m) = &mut self.rows[r].kind {
                    m.warn = Some(warn.join("; "));
                }
            }
        }
    }

    fn is_outside_host(&self, lane: usize) -> bool {
        let name = &self.lanes[lane].label;
        let Some(h) = self.sc.hosts.iter().find(|h| &h.name == name) else {
            return false;
        };
        self.sc.gateways.iter().any(|g| {
            g.config.ifaces.iter().any(|i| {
                i.side == Side::Outside
                    && h.addrs.iter().any(|a| match a.addr() {
                        IpAddr::V4(v4) => i.addr.trunc().contains(&v4),
                        _ => false,
                    })
            })
        })
    }

    /// `a` is a gateway's outside address, and that gateway (without an
    /// ALG that would open the port itself) forwards no such TCP port.
    fn unforwarded(&self, a: SocketAddr) -> Option<String> {
        let g = self.sc.gateways.iter().find(|g| {
            g.config
                .ifaces
                .iter()
                .any(|i| i.side == Side::Outside && IpAddr::V4(i.addr.addr()) == a.ip())
        })?;
        // A user's rule set or router image: its forwards are not known here.
        if g.config.alg != AlgMode::Off
            || g.ruleset.is_some()
            || g.engine == crate::scenario::raw::EngineKind::Image
        {
            return None;
        }
        let fwd: Vec<String> = g
            .config
            .forwards
            .iter()
            .filter(|f| f.proto == 6)
            .map(|f| {
                if f.ports.0 == f.ports.1 {
                    f.ports.0.to_string()
                } else {
                    format!("{}-{}", f.ports.0, f.ports.1)
                }
            })
            .collect();
        let ok = g
            .config
            .forwards
            .iter()
            .any(|f| f.proto == 6 && (f.ports.0..=f.ports.1).contains(&a.port()));
        (!ok).then(|| {
            format!(
                "port {} is not forwarded by {} (forwards: {})",
                a.port(),
                g.config.name,
                if fwd.is_empty() {
                    "none".into()
                } else {
                    fwd.join(", ")
                }
            )
        })
    }

    /// The port is outside the passive range of the server that answered
    /// on this control connection (the host a side of the flow reaches).
    fn outside_passive_range(&self, flow: usize, port: u16) -> Option<String> {
        let servers: Vec<IpAddr> = self
            .conns
            .iter()
            .filter(|k| k.flow == flow && flow != usize::MAX)
            .map(|k| k.responder.ip())
            .collect();
        self.sc.hosts.iter().find_map(|h| {
            if !h.addrs.iter().any(|a| servers.contains(&a.addr())) {
                return None;
            }
            let [lo, hi] = h.server.as_ref()?.config.passive_ports?;
            (!(lo..=hi).contains(&port))
                .then(|| format!("outside the server's passive range {lo}-{hi} (fallback port)"))
        })
    }

    fn collect_findings(&mut self) {
        for (ri, r) in self.rows.iter().enumerate() {
            let RowKind::Msg(m) = &r.kind else { continue };
            let who = &self.conns[m.conn].label;
            if let Some(w) = &m.warn {
                self.finding_rows.push(ri);
                self.findings
                    .push(format!("{:.1} ms {who}: {} — {w}", r.t_ms, m.text));
            }
            if let Some(d) = &m.dropped {
                self.finding_rows.push(ri);
                let rule = d
                    .rule
                    .as_deref()
                    .map(|r| format!(" [{r}]"))
                    .unwrap_or_default();
                let answer = if d.answered {
                    ", answered with RST (refused)"
                } else {
                    ", no answer (the sender times out)"
                };
                self.findings.push(format!(
                    "{:.1} ms {who}: {}{} {} → {} dropped at {}: {}{rule}{answer}",
                    r.t_ms,
                    m.text,
                    times(m.count),
                    m.src,
                    m.dst,
                    self.lanes[m.to].label,
                    d.reason,
                ));
            }
        }
    }
}

/// The address a 227 (`(a,b,c,d,p1,p2)`), 229 (`(|||p|)`, on `peer`'s
/// address), PORT or EPRT line announces.
pub fn announced_addr(text: &str, peer: SocketAddr) -> Option<SocketAddr> {
    use ftpnat_server::protocol::addr;
    let code = text.get(..4)?;
    if code == "227 " {
        return addr::parse_pasv_reply(text).ok().map(SocketAddr::V4);
    }
    if code == "229 " {
        let port = addr::parse_epsv_reply(text).ok()?;
        return Some(SocketAddr::new(peer.ip(), port));
    }
    let (verb, arg) = text.split_once(' ')?;
    if verb.eq_ignore_ascii_case("PORT") {
        return addr::parse_host_port(arg.trim()).ok().map(SocketAddr::V4);
    }
    if verb.eq_ignore_ascii_case("EPRT") {
        return addr::parse_eprt(arg.trim()).ok();
    }
    None
}

/// ` ×3` for a row seen three times, nothing for one.
fn times(n: usize) -> String {
    if n > 1 {
        format!(" ×{n}")
    } else {
        String::new()
    }
}

fn find_step(steps: &[Step], index: usize) -> Option<&Step> {
    for s in steps {
        if s.index == index {
            return Some(s);
        }
        if let Action::Parallel(inner) = &s.action {
            if let Some(f) = find_step(inner, index) {
                return Some(f);
            }
        }
    }
    None
}

/// The client a connection label names (`c3 data` → `c3`), or the whole
/// label for connections no client claims.
fn client_of(label: &str) -> &str {
    if label.contains('→') {
        label
    } else {
        label.split(' ').next().unwrap_or(label)
    }
}

impl Ladder {
    /// The ladder cut down to what the findings are about: the rows of
    /// every connection of a client with a finding (its control and data
    /// connections on every side), and the steps of those clients and the
    /// failed ones. `None` when there is no finding.
    pub fn focus(&self) -> Option<Ladder> {
        let hot: Vec<&str> = self
            .finding_rows
            .iter()
            .filter_map(|r| match &self.rows.get(*r)?.kind {
                RowKind::Msg(m) => Some(client_of(&self.conns[m.conn].label)),
                RowKind::Step { .. } | RowKind::Folded { .. } => None,
            })
            .collect();
        if hot.is_empty() {
            return None;
        }
        // From the step of a concerned client before the first finding on.
        let first = self.finding_rows.iter().min().copied().unwrap_or(0);
        let is_hot_step = |r: &Row| match &r.kind {
            RowKind::Step { label, .. } => hot
                .iter()
                .any(|c| label.strip_prefix(c).is_some_and(|t| t.starts_with(':'))),
            RowKind::Msg(_) | RowKind::Folded { .. } => false,
        };
        let start = self.rows[..first]
            .iter()
            .rposition(is_hot_step)
            .unwrap_or(0);
        let rows: Vec<Row> = self.rows[start..]
            .iter()
            .filter(|r| match &r.kind {
                RowKind::Step { label, passed, .. } => {
                    !passed
                        || hot
                            .iter()
                            .any(|c| label.strip_prefix(c).is_some_and(|t| t.starts_with(':')))
                }
                RowKind::Msg(m) => hot.contains(&client_of(&self.conns[m.conn].label)),
                RowKind::Folded { .. } => false,
            })
            .cloned()
            .collect();
        Some(Ladder {
            lanes: self.lanes.clone(),
            conns: self.conns.clone(),
            rows,
            findings: Vec::new(),
            finding_rows: Vec::new(),
            caveats: Vec::new(),
        })
    }

    /// A plain-text rendering of the model (for snapshots and terminals):
    /// lanes, then one line per row.
    pub fn to_text(&self) -> String {
        let mut out = String::from("lanes:");
        for l in &self.lanes {
            out.push_str(&format!(" [{} {}]", l.label, l.addrs));
        }
        out.push('\n');
        for r in &self.rows {
            match &r.kind {
                RowKind::Folded { hidden, dropped } => {
                    out.push_str(&format!("… {hidden} more rows folded ({dropped} drops)\n"))
                }
                RowKind::Step {
                    index,
                    label,
                    passed,
                } => out.push_str(&format!(
                    "---- step {index} {label}{}\n",
                    if *passed { "" } else { "  FAILED" }
                )),
                RowKind::Msg(m) => {
                    out.push_str(&format!(
                        "{:<14} {} → {}: {}{}  ({} → {})",
                        self.conns[m.conn].label,
                        self.lanes[m.from].label,
                        self.lanes[m.to].label,
                        m.text,
                        times(m.count),
                        m.src,
                        m.dst
                    ));
                    if let Some(x) = &m.xlat {
                        out.push_str(&format!("  <{}>", x.text));
                    }
                    if let Some(d) = &m.dropped {
                        out.push_str(&format!(
                            "  DROPPED: {}{}{}",
                            d.reason,
                            d.rule
                                .as_deref()
                                .map(|r| format!(" [{r}]"))
                                .unwrap_or_default(),
                            if d.answered { " (RST back)" } else { "" }
                        ));
                    }
                    if let Some(w) = &m.warn {
                        out.push_str(&format!("  WARN: {w}"));
                    }
                    out.push('\n');
                }
            }
        }
        for f in &self.findings {
            out.push_str(&format!("finding: {f}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The ladder of a recorded run under `tests/fixtures/ladder/NAME`: its
    /// scenario, pcaps, gateway notes and step times as the report read them.
    fn replay(name: &str) -> Ladder {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ladder")
            .join(name);
        let sc = crate::scenario::load(&dir.join("scenario.toml")).expect("fixture scenario");
        let steps: Vec<StepMark> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("steps.json")).unwrap())
                .unwrap();
        let configs: Vec<_> = sc.gateways.iter().map(|g| g.config.clone()).collect();
        let words = |g: &str, c: &str| crate::report::html::comment_words(&sc, g, c);
        let ev = crate::report::evidence::read_dir(&dir, &configs, &words);
        assert!(!ev.frames.is_empty(), "{name}: no frames read");
        build(&sc, &ev, &steps)
    }

    fn msgs(l: &Ladder) -> Vec<(usize, &Msg)> {
        l.rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match &r.kind {
                RowKind::Msg(m) => Some((i, m)),
                _ => None,
            })
            .collect()
    }

    /// Issue 19's "done when": the 227 with the fallback port is flagged on
    /// the client's wire, and the client's SYN to that port arrives at the
    /// gateway's WAN side and is refused there for want of a forward.
    fn assert_fallback_port_refused(l: &Ladder, rule: Option<&str>) {
        let ms = msgs(l);
        let (ri, reply) = ms
            .iter()
            .find(|(_, m)| {
                m.text.starts_with("227 ")
                    && m.warn
                        .as_deref()
                        .is_some_and(|w| w.contains("is not forwarded by gw"))
            })
            .expect("a flagged 227");
        let port = announced_addr(&reply.text, reply.src).unwrap().port();
        assert!(!(60000..=60001).contains(&port), "{}", reply.text);
        assert_eq!(l.lanes[reply.to].label, "client");
        assert_eq!(l.conns[reply.conn].label, "c3 control");
        let (_, syn) = ms
            .iter()
            .find(|(i, m)| i > ri && m.text == "SYN" && m.dst.port() == port)
            .expect("the client's SYN to the announced port");
        assert_eq!(l.lanes[syn.to].label, "gw wan0");
        assert_eq!(l.conns[syn.conn].label, "c3 data");
        let d = syn.dropped.as_ref().expect("dropped at the gateway");
        assert_eq!(d.reason, "no mapping or forward");
        assert!(d.answered, "reject_unsolicited answers with RST");
        if let Some(r) = rule {
            assert!(d.rule.as_deref().is_some_and(|x| x.contains(r)), "{d:?}");
        }
        // Nothing of that connection reached the LAN side.
        assert!(!ms
            .iter()
            .any(|(_, m)| m.dst.port() == port && l.lanes[m.to].label == "server"));
        // The working data connection (c2) crosses with its address rewritten.
        assert!(ms.iter().any(|(_, m)| m.text == "SYN"
            && l.conns[m.conn].label == "c2 data"
            && m.xlat
                .as_ref()
                .is_some_and(|x| x.text.contains("→ 192.168.1.2:6000"))));
    }

    #[test]
    fn range_only_forwarding_sim_ladder() {
        let l = replay("range-only-forwarding-sim");
        assert_fallback_port_refused(&l, None);
        insta::assert_snapshot!(l.to_text());
    }

    #[test]
    fn focus_keeps_the_client_with_findings() {
        let l = replay("range-only-forwarding-sim");
        let f = l.focus().expect("findings");
        let labels: std::collections::BTreeSet<&str> = f
            .rows
            .iter()
            .filter_map(|r| match &r.kind {
                RowKind::Msg(m) => Some(f.conns[m.conn].label.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(labels, ["c3 control", "c3 data"].into());
        assert!(f.rows.len() < l.rows.len() / 4, "{}", f.to_text());
        // It starts at the step that sent the PASV.
        assert!(
            matches!(&f.rows[0].kind, RowKind::Step { label, .. } if label == "c3: send \"PASV\""),
            "{}",
            f.to_text()
        );
        assert_fallback_port_refused_focus(&f);
    }

    fn assert_fallback_port_refused_focus(f: &Ladder) {
        assert!(msgs(f)
            .iter()
            .any(|(_, m)| m.text.starts_with("227 ") && m.warn.is_some()));
        assert!(msgs(f).iter().any(|(_, m)| m.dropped.is_some()));
    }

    #[test]
    fn range_only_forwarding_kernel_ladder() {
        let l = replay("range-only-forwarding-kernel");
        assert_fallback_port_refused(&l, Some("reject with tcp reset"));
        insta::assert_snapshot!(l.to_text());
    }

    fn assert_firewall_drop(l: &Ladder, rule: &str) {
        let ms = msgs(l);
        let (_, syn) = ms
            .iter()
            .find(|(_, m)| m.text == "SYN" && m.dropped.is_some())
            .expect("a dropped SYN");
        assert!((40000..=40010).contains(&syn.dst.port()));
        assert_eq!(l.lanes[syn.to].label, "gw wan0");
        let d = syn.dropped.as_ref().unwrap();
        assert!(d.reason.starts_with("firewall"), "{d:?}");
        assert!(d.rule.as_deref().is_some_and(|r| r.contains(rule)), "{d:?}");
        assert!(!d.answered, "a drop policy is silent");
        assert!(syn.count >= 2, "the client retransmitted: {syn:?}");
    }

    #[test]
    fn firewall_drop_sim_ladder() {
        let l = replay("firewall-drop-sim");
        assert_firewall_drop(&l, "policy_in drop");
        insta::assert_snapshot!(l.to_text());
    }

    #[test]
    fn firewall_drop_kernel_ladder() {
        let l = replay("firewall-drop-kernel");
        assert_firewall_drop(&l, "ftpnat:policy_in");
        insta::assert_snapshot!(l.to_text());
    }

    #[test]
    fn alg_rewrite_of_port_is_marked_on_the_wan_side() {
        let l = replay("alg-rewrites-port-sim");
        let ms = msgs(&l);
        let (_, port) = ms
            .iter()
            .find(|(_, m)| m.text.starts_with("PORT ") && m.xlat.is_some())
            .expect("a rewritten PORT");
        // As the server sees it: the gateway's address, rewritten from the client's.
        assert!(port.text.starts_with("PORT 203,0,113,1,"), "{}", port.text);
        let x = port.xlat.as_ref().unwrap();
        assert!(
            x.text.starts_with("ALG rewrote: PORT 192,168,1,50,"),
            "{}",
            x.text
        );
        assert_eq!(l.lanes[x.from_lane].label, "cgw lan0");
        insta::assert_snapshot!(l.to_text());
    }

    #[test]
    fn ftps_control_bytes_are_counted_not_read_and_ccc_shows_the_227_again() {
        let l = replay("ftps-ccc-sim");
        let ms = msgs(&l);
        assert!(ms
            .iter()
            .any(|(_, m)| m.text.starts_with("TLS ") && l.conns[m.conn].kind == "control"));
        // No line of TLS garbage became an FTP row.
        assert!(
            ms.iter().all(|(_, m)| !m.text.contains('\u{fffd}')),
            "{}",
            l.to_text()
        );
        // After CCC the ALG sees and rewrites the 227 again.
        assert!(ms.iter().any(|(_, m)| m.text.starts_with("227 ")
            && m.xlat
                .as_ref()
                .is_some_and(|x| x.text.contains("(192,168,1,2,"))));
        insta::assert_snapshot!(l.to_text());
    }

    #[test]
    fn announced_addresses() {
        let peer: SocketAddr = "203.0.113.1:21".parse().unwrap();
        assert_eq!(
            announced_addr("227 Entering Passive Mode (203,0,113,1,234,96).", peer),
            Some("203.0.113.1:60000".parse().unwrap())
        );
        assert_eq!(
            announced_addr("229 Entering Extended Passive Mode (|||60001|)", peer),
            Some("203.0.113.1:60001".parse().unwrap())
        );
        assert_eq!(
            announced_addr("PORT 192,168,1,2,4,1", peer),
            Some("192.168.1.2:1025".parse().unwrap())
        );
        assert_eq!(announced_addr("200 ok", peer), None);
        assert_eq!(announced_addr("227 garbage", peer), None);
    }
}
