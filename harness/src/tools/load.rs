//! `ftpnat load`: throughput under passive-range exhaustion.
//!
//! M concurrent clients outside a NAT gateway (which forwards port 21 and
//! either only the passive range or every port) each make K passive
//! downloads of S bytes from the reference server behind it, whose passive
//! range has R ports and the given exhaustion policy. Bounded in count and
//! time; stops by itself. Reported: completed and failed transfers by
//! reason, transfers per second, PASV latency p50/p99, mean port hold time
//! (PASV reply → data connection made, as the client sees it) and
//! efficiency = throughput ÷ (R ÷ mean hold), the share of the range's
//! Little's-law ceiling actually used.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    client::{DataOutcome, FtpClient, Transcript},
    scenario,
};
use crate::{
    outcome::Status,
    runner::{Lab, Server},
};

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSpec {
    /// Concurrent clients.
    pub clients: usize,
    /// Transfers per client.
    pub transfers: usize,
    /// Bytes per transfer.
    pub size: u64,
    /// Passive range size R (ports from 60000).
    pub ports: u16,
    /// `fallback`, `refuse` or `wait`.
    pub policy: String,
    /// Forward only the range (`range`) or every port (`all`).
    pub forward: String,
    /// Gateway engine.
    pub engine: String,
    /// Whole-run bound.
    pub limit: Duration,
    /// The reference server's `passive_mode`: `per-transfer` or `pooled`.
    pub passive_mode: String,
    /// Distinct client addresses the clients are spread over (outside hosts
    /// 203.0.113.10, .11, …).
    pub client_addrs: usize,
    /// `reference`, `vsftpd` or `proftpd` (same topology, same range; the
    /// policy and mode apply to the reference server only).
    pub server_kind: String,
    /// One-way delay on the gateway's WAN side (sim engine), milliseconds:
    /// an internet round trip makes ports be held longer.
    pub wan_delay_ms: u32,
}

impl LoadSpec {
    /// A spec with the defaults of `ftpnat load`.
    pub fn new(ports: u16, policy: &str) -> LoadSpec {
        LoadSpec {
            clients: 50,
            transfers: 4,
            size: 16384,
            ports,
            policy: policy.into(),
            forward: "range".into(),
            engine: "sim".into(),
            limit: Duration::from_secs(120),
            passive_mode: "per-transfer".into(),
            client_addrs: 1,
            server_kind: "reference".into(),
            wan_delay_ms: 0,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The spec.
    pub spec: LoadSpec,
    /// Transfers that completed with 226 and all bytes.
    pub completed: usize,
    /// Failures by reason.
    pub failed: BTreeMap<String, usize>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Completed transfers per second.
    pub per_second: f64,
    /// PASV reply latency, milliseconds.
    pub pasv_p50_ms: f64,
    /// PASV reply latency, milliseconds.
    pub pasv_p99_ms: f64,
    /// Mean port hold (the allocator's lease time: PASV until accept),
    /// milliseconds.
    pub hold_ms: f64,
    /// per_second ÷ (R ÷ hold): share of the range's per-transfer
    /// ceiling used (above 1 only when ports are shared between client
    /// addresses, as in pooled mode).
    pub efficiency: f64,
    /// Where `hold_ms` comes from: the server's allocator, or (for real
    /// servers) the clients' PASV-reply-to-connected time.
    pub hold_source: String,
    /// Server-side allocator counters.
    pub fallbacks: u64,
    /// Ports of the passive range in use over the run (seconds since the
    /// start, ports), sampled every 20 ms from the reference server's
    /// allocator; empty for other servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub occupancy: Vec<(f64, u64)>,
}

fn scenario_text(s: &LoadSpec) -> String {
    let hi = 60000 + s.ports - 1;
    let config = match s.server_kind.as_str() {
        "reference" => format!(
            "masquerade_address = \"203.0.113.1\", passive_ports = [60000, {hi}], passive_exhausted = \"{}\", passive_mode = \"{}\", passive_wait_ms = 10000, limits = {{ max_clients = 5000, max_clients_per_ip = 5000 }}, timeouts = {{ data_connect = 5 }}",
            s.policy, s.passive_mode
        ),
        _ => format!(
            "masquerade_address = \"203.0.113.1\", passive_ports = [60000, {hi}], limits = {{ max_clients = 5000, max_clients_per_ip = 5000 }}"
        ),
    };
    let clients: String = (0..s.client_addrs.max(1))
        .map(|i| {
            format!(
                "[[host]]\nname = \"client{i}\"\naddr = \"203.0.113.{}/24\"\n",
                10 + i
            )
        })
        .collect();
    let fwd = if s.forward == "all" {
        "1024-65535".to_string()
    } else {
        format!("60000-{hi}")
    };
    format!(
        r#"
name = "load"
[[gateway]]
name = "gw"
engine = "{engine}"
lan = "192.168.1.1/24"
wan = "203.0.113.1/24"
reject_unsolicited = true
{impair}forward = [ {{ ports = "21", to = "server" }}, {{ ports = "{fwd}", to = "server" }} ]
[[host]]
name = "server"
addr = "192.168.1.2/24"
files = {{ "blob" = {{ size = {size}, seed = 1 }} }}
server = {{ kind = "{kind}", config = {{ {config} }} }}
{clients}"#,
        engine = s.engine,
        size = s.size,
        kind = s.server_kind,
        impair = if s.wan_delay_ms > 0 {
            format!("impair.wan = {{ delay_ms = {} }}\n", s.wan_delay_ms)
        } else {
            String::new()
        },
    )
}

#[derive(Default)]
struct Tally {
    completed: usize,
    failed: BTreeMap<String, usize>,
    pasv_ms: Vec<f64>,
    connect_ms: Vec<f64>,
}

/// Runs the load. Needs root (or a user namespace).
pub fn run(spec: &LoadSpec) -> Result<LoadReport, String> {
    let dir = crate::topology::netns::run_tempdir().map_err(|e| e.to_string())?;
    let sc =
        scenario::parse(&scenario_text(spec), Path::new("load.toml")).map_err(|d| d.to_string())?;
    let lab = Lab::start(&sc, dir.path(), false)?;
    let hosts: Vec<_> = (0..spec.client_addrs.max(1))
        .map(|i| lab.topo.sockets(&format!("client{i}")))
        .collect();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let server: SocketAddr = "203.0.113.1:21".parse().expect("literal");
    let mut occupancy: Vec<(f64, u64)> = Vec::new();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..spec.clients {
            let sockets = Arc::clone(&hosts[i % hosts.len()]);
            let tally = Arc::clone(&tally);
            let (k, size) = (spec.transfers, spec.size);
            tasks.push(tokio::spawn(async move {
                let fail = |why: &str| {
                    *tally
                        .lock()
                        .unwrap()
                        .failed
                        .entry(why.to_string())
                        .or_default() += 1;
                };
                let conn = FtpClient::connect(
                    sockets,
                    server,
                    Duration::from_secs(15),
                    Transcript::default(),
                )
                .await;
                let Ok((mut c, banner)) = conn else {
                    for _ in 0..k {
                        fail("control connection failed");
                    }
                    return;
                };
                if banner.code != 220
                    || c.login("anonymous", "load@").await.map(|r| r.code).ok() != Some(230)
                    || c.cmd("TYPE I").await.is_err()
                {
                    for _ in 0..k {
                        fail("login failed");
                    }
                    return;
                }
                for _ in 0..k {
                    let t = Instant::now();
                    let r = match c.cmd("PASV").await {
                        Ok(r) => r,
                        Err(_) => {
                            fail("no reply to PASV");
                            continue;
                        }
                    };
                    let pasv_ms = t.elapsed().as_secs_f64() * 1000.0;
                    if r.code != 227 {
                        fail(&format!("{} reply to PASV", r.code));
                        continue;
                    }
                    match c.transfer_pending("RETR blob", None).await {
                        Ok(tr)
                            if tr.outcome == DataOutcome::Ok
                                && tr.bytes == size
                                && tr.final_reply.as_ref().is_some_and(|r| r.code == 226) =>
                        {
                            let mut g = tally.lock().unwrap();
                            g.completed += 1;
                            g.pasv_ms.push(pasv_ms);
                            g.connect_ms.push(tr.connect_ms);
                        }
                        Ok(tr) => fail(&match tr.outcome {
                            DataOutcome::Ok => "incomplete transfer".to_string(),
                            DataOutcome::Refused => {
                                "data connection refused (not forwarded)".to_string()
                            }
                            DataOutcome::TimedOut => "data connection timed out".to_string(),
                            o => format!("data connection {o:?}"),
                        }),
                        Err(_) => fail("control connection lost"),
                    }
                }
                let _ = c.cmd("QUIT").await;
            }));
        }
        let all = futures::future::join_all(tasks);
        let done = std::cell::Cell::new(false);
        let run = async {
            let _ = tokio::time::timeout(spec.limit, all).await;
            done.set(true);
        };
        let sample = async {
            while !done.get() {
                if let Some(Server::Reference(r)) = lab.servers.get("server") {
                    if let Some(m) = r.metrics() {
                        occupancy.push((
                            t0.elapsed().as_secs_f64(),
                            m.reserved.saturating_sub(m.released),
                        ));
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        futures::future::join(run, sample).await;
    });
    let seconds = t0.elapsed().as_secs_f64();
    let metrics = lab.servers.get("server").and_then(|s| match s {
        Server::Reference(r) => r.metrics(),
        Server::External(_) => None,
    });
    let fallbacks = metrics.map_or(0, |m| m.fallback);
    let server_hold = metrics
        .filter(|m| m.released > 0)
        .map(|m| m.held_us as f64 / m.released as f64 / 1000.0);
    drop(rt);
    lab.stop();
    let g = Arc::try_unwrap(tally)
        .map_err(|_| "load tasks still running".to_string())?
        .into_inner()
        .unwrap_or_default();
    let pct = |v: &[f64], p: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    let (hold_ms, hold_source) = match server_hold {
        Some(h) => (h, "server allocator"),
        None if !g.connect_ms.is_empty() => (
            g.connect_ms.iter().sum::<f64>() / g.connect_ms.len() as f64,
            "client (PASV reply to connected)",
        ),
        None => (0.0, "none"),
    };
    let per_second = g.completed as f64 / seconds;
    let ceiling = if hold_ms > 0.0 {
        f64::from(spec.ports) / (hold_ms / 1000.0)
    } else {
        0.0
    };
    let mut failed = g.failed;
    let total = spec.clients * spec.transfers;
    let accounted = g.completed + failed.values().sum::<usize>();
    if accounted < total {
        failed.insert("not finished within the limit".into(), total - accounted);
    }
    Ok(LoadReport {
        spec: spec.clone(),
        completed: g.completed,
        failed,
        seconds,
        per_second,
        pasv_p50_ms: pct(&g.pasv_ms, 0.5),
        pasv_p99_ms: pct(&g.pasv_ms, 0.99),
        hold_ms,
        efficiency: if ceiling > 0.0 {
            per_second / ceiling
        } else {
            0.0
        },
        fallbacks,
        hold_source: hold_source.into(),
        occupancy,
    })
}

/// A status for callers that expect one.
pub fn status(r: &LoadReport) -> Status {
    if r.failed.is_empty() {
        Status::Pass
    } else {
        Status::Fail
    }
}
