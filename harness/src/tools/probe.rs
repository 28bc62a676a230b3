//! `ftpnat probe passive`: a server's passive-port allocation as its range
//! fills, measured from the outside — the black-box twin of the
//! `passive_alloc` criterion bench, for any server (the user's own too).
//!
//! The server sits behind a NAT gateway that forwards port 21 and only the
//! passive range (and answers anything else with a RST, as a bare Linux
//! NAT does). For k = 0, 1, … past the range size, k *holder* sessions
//! each hold one pending PASV (or EPSV) — sent, answered, never connected
//! to — and a *probe* session sends `samples` more, one at a time, at that
//! occupancy. Each sample records the reply latency and its class: a port
//! in the range, a port outside it (fallback), an error reply, or the
//! session killed (no reply, or the connection closed after the reply).
//! For a reply with a port the probe then connects to the announced port
//! through the NAT: *reachable* only if the server accepts the connection
//! (the handshake completes end to end); a RST is attributed to the
//! router when the gateway counted an unsolicited packet during the
//! attempt (its `no mapping or forward` drop), else to the server. A
//! reachable sample then fetches a one-byte file, so the port is released
//! before the next sample (every server closes the passive listener once
//! the data connection is accepted, which precedes its 226).
//!
//! Each level reports what the holders actually hold (a server may refuse
//! or kill a holder too: vsftpd near full, Pure-FTPd past its user cap),
//! and the probe stops by itself: a bounded number of samples and holder
//! attempts, within the run's time limit.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;

use super::{
    load::{server_config, ReferenceSettings, Topo},
    observe,
    target::Target,
};
use crate::{
    client::{DataOutcome, FtpClient, Transcript},
    runner::Lab,
    topology::sockets::NsSockets,
};

/// The passive command the probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "UPPERCASE")]
pub enum PassiveCommand {
    /// `PASV` (227, with an address).
    Pasv,
    /// `EPSV` (229, port only).
    Epsv,
}

/// What to probe.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeSpec {
    /// The server behind the NAT.
    pub server: Target,
    /// Gateway engine.
    pub engine: String,
    /// Passive range size R (ports from 60000).
    pub ports: u16,
    /// The sweep's last occupancy (k from 0 to this).
    pub max_held: usize,
    /// Probe samples per occupancy.
    pub samples: usize,
    /// PASV or EPSV.
    pub command: PassiveCommand,
    /// The reference server's exhaustion policy (`wait` waits 1 s here).
    pub policy: String,
    /// Whole-probe bound.
    pub limit: Duration,
}

impl ProbeSpec {
    /// The defaults of `ftpnat probe passive` for `server`.
    pub fn new(server: Target) -> ProbeSpec {
        ProbeSpec {
            server,
            engine: "sim".into(),
            ports: 10,
            max_held: 15,
            samples: 8,
            command: PassiveCommand::Pasv,
            policy: "refuse".into(),
            limit: Duration::from_secs(300),
        }
    }
}

/// One occupancy of the sweep.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Level {
    /// Pending PASVs the probe tried to hold.
    pub k: usize,
    /// Pending PASVs the holders hold (the server answered with a port).
    pub held: usize,
    /// … of which in the range.
    pub held_in_range: usize,
    /// Probe samples taken.
    pub samples: usize,
    /// Reply latency, milliseconds.
    pub p50_ms: f64,
    /// Reply latency, milliseconds.
    pub p99_ms: f64,
    /// Replies with a port in the range.
    pub in_range: usize,
    /// Replies with a port outside the range.
    pub fallback: usize,
    /// Error replies after which the session went on.
    pub errors: usize,
    /// Samples that ended the session (no reply, or closed after it).
    pub killed: usize,
    /// Announced ports where the server accepted a connection through the NAT.
    pub reachable: usize,
    /// Announced ports the router answered with a RST (not forwarded).
    pub refused_by_router: usize,
    /// Announced ports the server answered with a RST (nothing listening).
    pub refused_by_server: usize,
    /// Announced ports where nothing answered.
    pub timed_out: usize,
    /// Probe sessions that could not log in (e.g. a user limit).
    pub no_session: usize,
    /// The replies seen, by code and text (numbers masked), with counts.
    pub replies: BTreeMap<String, usize>,
}

impl Level {
    /// Samples that did not give a reachable port in the range.
    pub fn failures(&self) -> usize {
        self.samples - self.reachable.min(self.in_range)
    }

    /// The table's cells (name, value), as `ftpnat probe passive` prints
    /// them and the HTML page shows them; shares of the samples.
    pub fn cells(&self) -> Vec<(String, String)> {
        let pct = |n: usize| {
            if self.samples == 0 {
                "–".to_string()
            } else {
                format!("{:.0} %", 100.0 * n as f64 / self.samples as f64)
            }
        };
        let replies: Vec<String> = self
            .replies
            .iter()
            .map(|(k, v)| format!("{v}× {k}"))
            .collect();
        let cell = |k: &str, v: String| (k.to_string(), v);
        vec![
            cell("k", self.k.to_string()),
            cell(
                "held (in range)",
                format!("{} ({})", self.held, self.held_in_range),
            ),
            cell("samples", self.samples.to_string()),
            cell(
                "reply p50 / p99 ms",
                format!("{:.2} / {:.2}", self.p50_ms, self.p99_ms),
            ),
            cell("in range", pct(self.in_range)),
            cell("fallback", pct(self.fallback)),
            cell("error", pct(self.errors + self.no_session)),
            cell("killed", pct(self.killed)),
            cell("reachable through the NAT", pct(self.reachable)),
            cell(
                "RST from router / server",
                format!("{} / {}", self.refused_by_router, self.refused_by_server),
            ),
            cell("timed out", self.timed_out.to_string()),
            cell("replies", replies.join("; ")),
        ]
    }
}

/// A server's curve.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The spec.
    pub spec: ProbeSpec,
    /// One entry per occupancy k.
    pub levels: Vec<Level>,
    /// Holder attempts the server refused or killed, by reply.
    pub holder_failures: BTreeMap<String, usize>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The sweep ended early (the limit), at this k.
    pub stopped_at: Option<usize>,
}

impl ProbeReport {
    /// The first occupancy with a sample that did not get a reachable
    /// port in the range.
    pub fn first_failure(&self) -> Option<usize> {
        self.levels.iter().find(|l| l.failures() > 0).map(|l| l.k)
    }
}

/// A reply's text with digits masked (ports and addresses differ per
/// sample): `227 Entering Passive Mode (#,#,#,#,#,#).`
fn shape(code: u16, text: &str) -> String {
    let mut out = format!("{code} ");
    let mut last_digit = false;
    for ch in text.chars().take(80) {
        if ch.is_ascii_digit() {
            if !last_digit {
                out.push('#');
            }
            last_digit = true;
        } else {
            out.push(ch);
            last_digit = false;
        }
    }
    out
}

/// How one PASV/EPSV went.
enum Answer {
    /// A port was announced.
    Port(SocketAddr, f64),
    /// An error reply; the session lives (`true`) or not.
    Error(String, bool, f64),
    /// No reply (closed or timed out).
    Gone(f64),
}

struct Prober {
    sockets: Arc<NsSockets>,
    server: SocketAddr,
    command: PassiveCommand,
    timeout: Duration,
}

impl Prober {
    /// A logged-in session in binary mode, or the reason there is none.
    async fn session(&self) -> Result<FtpClient, String> {
        let (mut c, banner) = FtpClient::connect(
            Arc::clone(&self.sockets) as _,
            self.server,
            self.timeout,
            Transcript::default(),
        )
        .await
        .map_err(|e| format!("control connection: {e}"))?;
        if banner.code != 220 {
            return Err(shape(banner.code, &banner.lines.join(" ")));
        }
        let r = c
            .login("anonymous", "probe@")
            .await
            .map_err(|e| format!("login: {e}"))?;
        if r.code != 230 {
            return Err(shape(r.code, &r.lines.join(" ")));
        }
        c.cmd("TYPE I").await.map_err(|e| format!("TYPE I: {e}"))?;
        Ok(c)
    }

    /// Sends the passive command on `c` and classifies the answer.
    async fn ask(&self, c: &mut FtpClient) -> Answer {
        let line = match self.command {
            PassiveCommand::Pasv => "PASV",
            PassiveCommand::Epsv => "EPSV",
        };
        let t = Instant::now();
        let r = c.cmd(line).await;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let r = match r {
            Ok(r) => r,
            Err(_) => return Answer::Gone(ms),
        };
        let text = shape(r.code, &r.lines.join(" "));
        match (r.code, c.last_passive) {
            (227 | 229, Some(at)) => Answer::Port(at, ms),
            _ => {
                // Alive? Only if NOOP gets its 200: vsftpd's `500 OOPS` is
                // its last word, and its privileged parent adds a second
                // `500 OOPS` line before closing.
                let alive = tokio::time::timeout(Duration::from_secs(2), c.cmd("NOOP"))
                    .await
                    .is_ok_and(|r| r.is_ok_and(|r| r.code / 100 == 2));
                Answer::Error(text, alive, ms)
            }
        }
    }
}

/// Probes one server. Needs root (or a user namespace).
pub fn run(spec: &ProbeSpec) -> Result<ProbeReport, String> {
    let dir = crate::topology::netns::run_tempdir().map_err(|e| e.to_string())?;
    // The holders' PASVs must stay pending for the whole sweep: the
    // reference server releases an unconnected port after `data_connect`.
    let config = server_config(
        &spec.server,
        spec.ports,
        &ReferenceSettings {
            policy: &spec.policy,
            mode: "per-transfer",
            wait_ms: 1000,
            data_connect_s: 3600,
        },
    );
    let sc = Topo {
        engine: &spec.engine,
        target: &spec.server,
        server_config: config,
        ports: spec.ports,
        forward: "range",
        client_addrs: 1,
        files: "\"probe\" = { size = 1, seed = 1 }".into(),
        wan_delay_ms: 0,
    }
    .scenario()?;
    let lab = Lab::start(&sc, dir.path(), false).map_err(|e| e.to_string())?;
    let prober = Prober {
        sockets: lab.topo.sockets("client0"),
        server: "203.0.113.1:21".parse().expect("literal"),
        command: spec.command,
        timeout: Duration::from_secs(5),
    };
    let (lo, hi) = (60000u16, 60000 + spec.ports - 1);
    let router_drops = || {
        lab.gateways.get("gw").map_or(0, |g| {
            g.counters()
                .dropped
                .get("no mapping or forward")
                .copied()
                .unwrap_or(0)
        })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let deadline = t0 + spec.limit;
    let mut report = ProbeReport {
        spec: spec.clone(),
        levels: Vec::new(),
        holder_failures: BTreeMap::new(),
        seconds: 0.0,
        stopped_at: None,
    };
    rt.block_on(async {
        let mut holders: Vec<(FtpClient, bool)> = Vec::new();
        let mut probe: Option<FtpClient> = None;
        for k in 0..=spec.max_held {
            if Instant::now() >= deadline {
                report.stopped_at = Some(k);
                break;
            }
            let mut level = Level {
                k,
                held: holders.len(),
                held_in_range: holders.iter().filter(|(_, r)| *r).count(),
                ..Level::default()
            };
            let mut latencies = Vec::new();
            for _ in 0..spec.samples {
                if Instant::now() >= deadline {
                    break;
                }
                let mut c = match probe.take() {
                    Some(c) => c,
                    None => match prober.session().await {
                        Ok(c) => c,
                        Err(why) => {
                            level.samples += 1;
                            level.no_session += 1;
                            *level.replies.entry(why).or_default() += 1;
                            continue;
                        }
                    },
                };
                level.samples += 1;
                match prober.ask(&mut c).await {
                    Answer::Gone(ms) => {
                        latencies.push(ms);
                        level.killed += 1;
                        *level
                            .replies
                            .entry("no reply (session closed)".into())
                            .or_default() += 1;
                    }
                    Answer::Error(text, alive, ms) => {
                        latencies.push(ms);
                        *level.replies.entry(text).or_default() += 1;
                        if alive {
                            level.errors += 1;
                            probe = Some(c);
                        } else {
                            level.killed += 1;
                        }
                    }
                    Answer::Port(at, ms) => {
                        latencies.push(ms);
                        let text = if at.port() >= lo && at.port() <= hi {
                            level.in_range += 1;
                            "port in the range"
                        } else {
                            level.fallback += 1;
                            "port outside the range"
                        };
                        *level.replies.entry(text.into()).or_default() += 1;
                        let drops0 = router_drops();
                        match c.transfer_pending("RETR probe", None).await {
                            // Connected (a reply to RETR came): the server accepted.
                            Ok(tr) if tr.final_reply.is_some() => {
                                level.reachable += 1;
                                if tr.final_reply.as_ref().is_some_and(|r| r.code == 226) {
                                    probe = Some(c);
                                }
                            }
                            Ok(tr) => {
                                match tr.outcome {
                                    DataOutcome::Refused if router_drops() > drops0 => {
                                        level.refused_by_router += 1
                                    }
                                    DataOutcome::Refused => level.refused_by_server += 1,
                                    _ => level.timed_out += 1,
                                }
                                // The port may still be pending: a fresh
                                // probe session next time.
                                let _ = c.cmd("QUIT").await;
                            }
                            Err(_) => level.killed += 1,
                        }
                    }
                }
            }
            level.p50_ms = observe::quantile(&latencies, 0.5);
            level.p99_ms = observe::quantile(&latencies, 0.99);
            report.levels.push(level);
            if k == spec.max_held {
                break;
            }
            // One more pending PASV, held: a few attempts (a server that
            // probes random ports can fail with free ports left and kill
            // the session); an error reply twice is the server's answer.
            let mut refused = 0;
            for _ in 0..10 {
                if refused >= 2 {
                    break;
                }
                if Instant::now() >= deadline {
                    break;
                }
                let mut h = match prober.session().await {
                    Ok(h) => h,
                    Err(why) => {
                        *report.holder_failures.entry(why).or_default() += 1;
                        continue;
                    }
                };
                match prober.ask(&mut h).await {
                    Answer::Port(at, _) => {
                        holders.push((h, at.port() >= lo && at.port() <= hi));
                        break;
                    }
                    Answer::Error(text, alive, _) => {
                        *report.holder_failures.entry(text).or_default() += 1;
                        refused += usize::from(alive);
                    }
                    Answer::Gone(_) => {
                        *report
                            .holder_failures
                            .entry("no reply (session closed)".into())
                            .or_default() += 1;
                    }
                }
            }
        }
        drop(probe);
        drop(holders);
    });
    report.seconds = t0.elapsed().as_secs_f64();
    drop(rt);
    lab.stop();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_grouped_by_shape() {
        assert_eq!(
            shape(227, "Entering Passive Mode (203,0,113,1,234,101)."),
            "227 Entering Passive Mode (#,#,#,#,#,#)."
        );
        assert_eq!(
            shape(500, "OOPS: vsf_sysutil_bind"),
            "500 OOPS: vsf_sysutil_bind"
        );
        let l = Level {
            samples: 4,
            in_range: 3,
            reachable: 3,
            ..Level::default()
        };
        assert_eq!(l.failures(), 1);
    }
}
