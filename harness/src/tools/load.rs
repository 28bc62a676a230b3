//! `ftpnat load`: throughput under passive-range exhaustion.
//!
//! M clients outside a NAT gateway (which forwards port 21 and either only
//! the passive range or every port) each make K passive downloads of S
//! bytes from a server behind it — the reference server with a given
//! exhaustion policy, a real server with its own, or the user's `command`
//! server — whose passive range has R ports. Clients arrive by an arrival
//! process ([`Arrivals`]). Bounded in count and time; stops by itself.
//!
//! Reported per run: completed and failed transfers by reason; throughput
//! in the steady state (completions between the 10th and the 90th
//! percentile completion time, divided by that interval: neither the
//! ramp-up nor a straggler waiting out SYN retransmits at 1, 3, 7, 15 s
//! sets the figure); the wall-clock rate beside it; per-session latency
//! (arrival to the end of its last transfer) p50/p99; PASV latency
//! p50/p99; the server's CPU time per session ([`super::observe`]); the
//! server namespace's `ListenOverflows`/`ListenDrops` over the run; the
//! mean port hold (PASV reply → data connection made) and efficiency =
//! throughput ÷ (R ÷ mean hold), the share of the range's Little's-law
//! ceiling used. [`run_rows`] repeats every spec, rounds interleaved, and
//! gives each figure's spread.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::Path,
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Serialize;

use super::{
    observe::{self, ListenCounters, Spread},
    target::Target,
};
use crate::{
    client::{DataOutcome, FtpClient, Transcript},
    outcome::Status,
    runner::{Lab, Server},
    scenario::{self, Scenario},
};

/// How clients arrive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Arrivals {
    /// All at the same instant: measures the server's listen queue as much
    /// as its passive range.
    Burst,
    /// Evenly spread over `ms` milliseconds.
    Ramp {
        /// The ramp's length.
        ms: u64,
    },
    /// A Poisson process of `rate` arrivals per second (fixed seed).
    Poisson {
        /// Mean arrivals per second.
        rate: f64,
    },
    /// As fast as the server greets: a client connects as soon as fewer
    /// than `n` connections are waiting for their 220, so at most `n` sit
    /// in the listen queue (16 is below vsftpd's hard-coded 32 and
    /// ProFTPD's and the reference server's backlogs; Pure-FTPd sizes its
    /// backlog 3 + max users ÷ 8, so even 16 can overflow it).
    Paced {
        /// Connections in flight at most.
        n: usize,
    },
}

impl Default for Arrivals {
    /// `paced:16`: the range, not the listen queue, is what runs out.
    fn default() -> Self {
        Arrivals::Paced { n: 16 }
    }
}

impl FromStr for Arrivals {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("arrivals {s:?}: expected burst, ramp:MS, poisson:RATE (per second) or paced:N")
        };
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        match (kind, arg) {
            ("burst", "") => Ok(Arrivals::Burst),
            ("ramp", ms) => match ms.parse::<u64>() {
                Ok(ms) if ms <= 600_000 => Ok(Arrivals::Ramp { ms }),
                _ => Err(bad()),
            },
            ("poisson", rate) => match rate.parse::<f64>() {
                Ok(rate) if (0.1..=1e6).contains(&rate) => Ok(Arrivals::Poisson { rate }),
                _ => Err(bad()),
            },
            ("paced", n) => match n.parse::<usize>() {
                Ok(n) if (1..=10_000).contains(&n) => Ok(Arrivals::Paced { n }),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Arrivals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arrivals::Burst => write!(f, "burst"),
            Arrivals::Ramp { ms } => write!(f, "ramp:{ms}"),
            Arrivals::Poisson { rate } => write!(f, "poisson:{rate}"),
            Arrivals::Paced { n } => write!(f, "paced:{n}"),
        }
    }
}

impl Arrivals {
    /// When each of `n` clients starts, from the run's start (`Paced`:
    /// all at zero; the gate does the pacing).
    pub fn offsets(&self, n: usize, seed: u64) -> Vec<Duration> {
        match *self {
            Arrivals::Burst | Arrivals::Paced { .. } => vec![Duration::ZERO; n],
            Arrivals::Ramp { ms } => (0..n)
                .map(|i| Duration::from_micros(ms * 1000 * i as u64 / n.max(1) as u64))
                .collect(),
            Arrivals::Poisson { rate } => {
                use rand::{Rng, SeedableRng};
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let mut t = 0.0f64;
                (0..n)
                    .map(|i| {
                        if i > 0 {
                            let u: f64 = rng.gen_range(f64::EPSILON..1.0);
                            t += -u.ln() / rate;
                        }
                        Duration::from_secs_f64(t)
                    })
                    .collect()
            }
        }
    }
}

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
    /// The reference server's policy: `fallback`, `refuse` or `wait`.
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
    /// The server behind the NAT (same topology, same range; the policy
    /// and mode apply to the reference server only, the others do what
    /// they do).
    pub server: Target,
    /// One-way delay on the gateway's WAN side (sim engine), milliseconds:
    /// an internet round trip makes ports be held longer.
    pub wan_delay_ms: u32,
    /// How clients arrive.
    pub arrivals: Arrivals,
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
            server: Target::builtin(scenario::resolve::ServerKind::Reference),
            wan_delay_ms: 0,
            arrivals: Arrivals::default(),
        }
    }
}

/// What happened in one run.
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
    /// Completed transfers per second in the steady state (see the module
    /// docs).
    pub per_second: f64,
    /// The steady-state window, seconds since the start.
    pub steady_window: (f64, f64),
    /// Completed ÷ wall-clock seconds (set by the slowest client).
    pub wall_per_second: f64,
    /// Session latency (arrival → end of its last transfer or its
    /// failure), milliseconds.
    pub session_p50_ms: f64,
    /// Session latency, milliseconds.
    pub session_p99_ms: f64,
    /// PASV reply latency, milliseconds.
    pub pasv_p50_ms: f64,
    /// PASV reply latency, milliseconds.
    pub pasv_p99_ms: f64,
    /// Server CPU time (user + system, its processes and their children;
    /// the reference server's thread) per session, milliseconds.
    pub cpu_ms_per_session: f64,
    /// The server namespace's listen-queue counters over the run.
    pub listen: ListenCounters,
    /// Mean port hold (the allocator's lease time: PASV until accept),
    /// milliseconds.
    pub hold_ms: f64,
    /// per_second ÷ (R ÷ hold): share of the range's per-transfer
    /// ceiling used (above 1 only when ports are shared between client
    /// addresses, as in pooled mode, or come from outside the range).
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

/// One spec repeated: every run, and the spread of its figures.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRow {
    /// The spec.
    pub spec: LoadSpec,
    /// Steady-state transfers/s over the runs.
    pub per_second: Spread,
    /// Session latency p50 over the runs, ms.
    pub session_p50_ms: Spread,
    /// Session latency p99 over the runs, ms.
    pub session_p99_ms: Spread,
    /// Server CPU per session over the runs, ms.
    pub cpu_ms_per_session: Spread,
    /// ListenOverflows over the runs.
    pub listen_overflows: Spread,
    /// Completed transfers over the runs.
    pub completed: Spread,
    /// The runs, in the order they ran.
    pub runs: Vec<LoadReport>,
}

impl LoadRow {
    /// Groups runs of one spec.
    pub fn of(runs: Vec<LoadReport>) -> Option<LoadRow> {
        let spec = runs.first()?.spec.clone();
        let spread = |f: &dyn Fn(&LoadReport) -> f64| Spread::of(runs.iter().map(f));
        Some(LoadRow {
            spec,
            per_second: spread(&|r| r.per_second),
            session_p50_ms: spread(&|r| r.session_p50_ms),
            session_p99_ms: spread(&|r| r.session_p99_ms),
            cpu_ms_per_session: spread(&|r| r.cpu_ms_per_session),
            listen_overflows: spread(&|r| r.listen.overflows as f64),
            completed: spread(&|r| r.completed as f64),
            runs,
        })
    }

    /// The run with the median steady-state throughput (the row's
    /// representative for figures not shown as a spread).
    pub fn median_run(&self) -> &LoadReport {
        let mut v: Vec<&LoadReport> = self.runs.iter().collect();
        v.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
        v[(v.len() - 1) / 2]
    }

    /// The table's cells (name, value), as `ftpnat load` prints them and
    /// the HTML page shows them: spreads as `min / median / max`, the
    /// other figures of the median run, failures and listen counters
    /// summed over the runs; ᶜ marks a hold measured by the client.
    pub fn cells(&self) -> Vec<(String, String)> {
        let s = &self.spec;
        let m = self.median_run();
        let failed: Vec<String> = self
            .failed()
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let reference = s.server.is_reference();
        let overflows: u64 = self.runs.iter().map(|r| r.listen.overflows).sum();
        let drops: u64 = self.runs.iter().map(|r| r.listen.drops).sum();
        let cell = |k: &str, v: String| (k.to_string(), v);
        vec![
            cell("server", s.server.name.clone()),
            cell("R", s.ports.to_string()),
            cell(
                "mode",
                if reference {
                    s.passive_mode.clone()
                } else {
                    "own".into()
                },
            ),
            cell("client addrs", s.client_addrs.to_string()),
            cell("policy", s.server.policy_cell(&s.policy)),
            cell("forwarded", s.forward.clone()),
            cell("arrivals", s.arrivals.to_string()),
            cell("runs", self.runs.len().to_string()),
            cell(
                "completed (median run)",
                format!("{}/{}", m.completed, s.clients * s.transfers),
            ),
            cell(
                "failed (all runs, by reason)",
                if failed.is_empty() {
                    "0".into()
                } else {
                    failed.join(", ")
                },
            ),
            cell(
                "transfers/s steady (min / median / max)",
                self.per_second.show(0),
            ),
            cell(
                "session p50 / p99 ms",
                format!(
                    "{:.0} / {:.0}",
                    self.session_p50_ms.median, self.session_p99_ms.median
                ),
            ),
            cell(
                "PASV p50 / p99 ms",
                format!("{:.1} / {:.1}", m.pasv_p50_ms, m.pasv_p99_ms),
            ),
            cell(
                "server CPU ms/session",
                format!("{:.2}", self.cpu_ms_per_session.median),
            ),
            cell(
                "ListenOverflows / ListenDrops (all runs)",
                format!("{overflows} / {drops}"),
            ),
            cell(
                "hold ms",
                format!("{:.2}{}", m.hold_ms, if reference { "" } else { "ᶜ" }),
            ),
            cell("efficiency", format!("{:.2}", m.efficiency)),
            cell(
                "fallbacks",
                if reference {
                    m.fallbacks.to_string()
                } else {
                    "–".into()
                },
            ),
        ]
    }

    /// Failures summed over the runs.
    pub fn failed(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in &self.runs {
            for (k, v) in &r.failed {
                *out.entry(k.clone()).or_default() += v;
            }
        }
        out
    }
}

/// Runs every spec `repeat` times, rounds interleaved (drift on a noisy
/// machine hits every row alike), and groups the runs by spec.
pub fn run_rows(specs: &[LoadSpec], repeat: usize) -> Result<Vec<LoadRow>, String> {
    let mut runs: Vec<Vec<LoadReport>> = vec![Vec::new(); specs.len()];
    let _bar = crate::progress::Guard::start((repeat.max(1) * specs.len()) as u64, "load");
    for n in 0..repeat.max(1) {
        for (i, s) in specs.iter().enumerate() {
            crate::progress::message(format!(
                "round {}/{}: {} R={} {} {} clients",
                n + 1,
                repeat.max(1),
                s.server.name,
                s.ports,
                s.policy,
                s.clients
            ));
            runs[i].push(run(s)?);
            crate::progress::inc(1);
        }
    }
    Ok(runs.into_iter().filter_map(LoadRow::of).collect())
}

/// The reference server's own settings in a load or probe run: its
/// exhaustion policy and passive mode, how long `wait` waits, and how long
/// a pending PASV may stay unconnected before its port is released.
pub(crate) struct ReferenceSettings<'a> {
    pub policy: &'a str,
    pub mode: &'a str,
    pub wait_ms: u64,
    pub data_connect_s: u64,
}

/// The passive range's server settings for `target` (the reference
/// server's policy, mode and bounds only for it).
pub(crate) fn server_config(target: &Target, ports: u16, r: &ReferenceSettings<'_>) -> String {
    let hi = 60000 + u32::from(ports) - 1;
    if target.is_reference() {
        format!(
            "masquerade_address = \"203.0.113.1\", passive_ports = [60000, {hi}], passive_exhausted = \"{}\", passive_mode = \"{}\", passive_wait_ms = {}, limits = {{ max_clients = 5000, max_clients_per_ip = 5000, max_unauthenticated_per_ip = 5000 }}, timeouts = {{ data_connect = {} }}",
            r.policy, r.mode, r.wait_ms, r.data_connect_s
        )
    } else {
        format!(
            "masquerade_address = \"203.0.113.1\", passive_ports = [60000, {hi}], limits = {{ max_clients = 5000, max_clients_per_ip = 5000, max_unauthenticated_per_ip = 5000 }}"
        )
    }
}

/// The network of a load run: a NAT gateway forwarding 21 and `forward`
/// (`range`: the passive range only; `all`: every port from 1024), the
/// server behind it serving `files`, `client_addrs` outside hosts; the
/// user's command (if any) put in place of the server kind.
pub(crate) struct Topo<'a> {
    pub engine: &'a str,
    pub target: &'a Target,
    pub server_config: String,
    pub ports: u16,
    pub forward: &'a str,
    pub client_addrs: usize,
    pub files: String,
    pub wan_delay_ms: u32,
}

impl Topo<'_> {
    pub(crate) fn scenario(&self) -> Result<Scenario, String> {
        let hi = 60000 + u32::from(self.ports) - 1;
        let clients: String = (0..self.client_addrs.max(1))
            .map(|i| {
                format!(
                    "[[host]]\nname = \"client{i}\"\naddr = \"203.0.113.{}/24\"\n",
                    10 + i
                )
            })
            .collect();
        let fwd = if self.forward == "all" {
            "1024-65535".to_string()
        } else {
            format!("60000-{hi}")
        };
        let text = format!(
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
files = {{ {files} }}
server = {{ kind = "{kind}", config = {{ {config} }} }}
{clients}"#,
            engine = self.engine,
            files = self.files,
            kind = self.target.kind.name(),
            config = self.server_config,
            impair = if self.wan_delay_ms > 0 {
                format!("impair.wan = {{ delay_ms = {} }}\n", self.wan_delay_ms)
            } else {
                String::new()
            },
        );
        let mut sc = scenario::parse(&text, Path::new("load.toml")).map_err(|d| d.to_string())?;
        if let Some(cmd) = &self.target.command {
            for s in sc.hosts.iter_mut().filter_map(|h| h.server.as_mut()) {
                s.command = Some(Arc::clone(cmd));
            }
        }
        Ok(sc)
    }
}

/// Where a running server's CPU time is read.
pub(crate) enum CpuMeter {
    /// The in-process reference server's thread.
    Thread(i32),
    /// A server process (and its children) in a namespace.
    Process(Arc<crate::topology::Netns>, u32),
}

impl CpuMeter {
    /// For the server on host `server` of `lab`.
    pub(crate) fn of(lab: &Lab) -> Option<CpuMeter> {
        match lab.servers.get("server")? {
            Server::Reference(r) => Some(CpuMeter::Thread(r.tid)),
            Server::External(d) => Some(CpuMeter::Process(
                Arc::clone(lab.topo.ns("server")),
                d.pid(),
            )),
        }
    }

    /// CPU seconds so far.
    pub(crate) fn seconds(&self) -> f64 {
        match self {
            CpuMeter::Thread(tid) => observe::thread_seconds(*tid),
            CpuMeter::Process(ns, pid) => {
                observe::process_ticks(ns, *pid) as f64 / observe::ticks_per_second()
            }
        }
    }
}

/// Completions per second between the 10th and 90th percentile completion
/// times (`times` in seconds since the start); with fewer than 10
/// completions, or all at one instant, completed ÷ `wall`.
pub fn steady_rate(times: &[f64], wall: f64) -> (f64, (f64, f64)) {
    let n = times.len();
    let whole = (if wall > 0.0 { n as f64 / wall } else { 0.0 }, (0.0, wall));
    if n < 10 {
        return whole;
    }
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    let (lo, hi) = (n / 10, n - 1 - n / 10);
    let dt = t[hi] - t[lo];
    if dt < 1e-3 {
        return whole;
    }
    ((hi - lo) as f64 / dt, (t[lo], t[hi]))
}

#[derive(Default)]
struct Tally {
    completed: usize,
    failed: BTreeMap<String, usize>,
    pasv_ms: Vec<f64>,
    connect_ms: Vec<f64>,
    /// Completion times, seconds since the start.
    done_at: Vec<f64>,
    /// Session latencies, ms.
    session_ms: Vec<f64>,
}

/// Runs the load once. Needs root (or a user namespace).
pub fn run(spec: &LoadSpec) -> Result<LoadReport, String> {
    let dir = crate::topology::netns::run_tempdir().map_err(|e| e.to_string())?;
    let sc = Topo {
        engine: &spec.engine,
        target: &spec.server,
        server_config: server_config(
            &spec.server,
            spec.ports,
            &ReferenceSettings {
                policy: &spec.policy,
                mode: &spec.passive_mode,
                wait_ms: 10_000,
                data_connect_s: 5,
            },
        ),
        ports: spec.ports,
        forward: &spec.forward,
        client_addrs: spec.client_addrs,
        files: format!("\"blob\" = {{ size = {}, seed = 1 }}", spec.size),
        wan_delay_ms: spec.wan_delay_ms,
    }
    .scenario()?;
    let lab = Lab::start(&sc, dir.path(), false).map_err(|e| e.to_string())?;
    let hosts: Vec<_> = (0..spec.client_addrs.max(1))
        .map(|i| lab.topo.sockets(&format!("client{i}")))
        .collect();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let server: SocketAddr = "203.0.113.1:21".parse().expect("literal");
    let mut occupancy: Vec<(f64, u64)> = Vec::new();
    let cpu = CpuMeter::of(&lab);
    let server_ns = Arc::clone(lab.topo.ns("server"));
    let listen0 = observe::listen_counters(&server_ns);
    let cpu0 = cpu.as_ref().map_or(0.0, CpuMeter::seconds);
    let offsets = spec.arrivals.offsets(spec.clients, 1);
    let gate = Arc::new(tokio::sync::Semaphore::new(match spec.arrivals {
        Arrivals::Paced { n } => n,
        _ => tokio::sync::Semaphore::MAX_PERMITS,
    }));
    let t0 = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for (i, offset) in offsets.into_iter().enumerate() {
            let sockets = Arc::clone(&hosts[i % hosts.len()]);
            let tally = Arc::clone(&tally);
            let gate = Arc::clone(&gate);
            let (k, size) = (spec.transfers, spec.size);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until((t0 + offset).into()).await;
                let permit = gate.acquire_owned().await;
                let start = Instant::now();
                let fail = |why: &str| {
                    *tally
                        .lock()
                        .unwrap()
                        .failed
                        .entry(why.to_string())
                        .or_default() += 1;
                };
                let end_session = || {
                    tally
                        .lock()
                        .unwrap()
                        .session_ms
                        .push(start.elapsed().as_secs_f64() * 1000.0);
                };
                let conn = FtpClient::connect(
                    sockets,
                    server,
                    Duration::from_secs(15),
                    Transcript::default(),
                )
                .await;
                // Greeted (or given up): the next client may connect.
                drop(permit);
                let Ok((mut c, banner)) = conn else {
                    for _ in 0..k {
                        fail("control connection failed");
                    }
                    end_session();
                    return;
                };
                if banner.code != 220
                    || c.login("anonymous", "load@").await.map(|r| r.code).ok() != Some(230)
                    || c.cmd("TYPE I").await.is_err()
                {
                    for _ in 0..k {
                        fail("login failed");
                    }
                    end_session();
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
                            g.done_at.push(t0.elapsed().as_secs_f64());
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
                end_session();
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
    // Tasks cut off by the limit end with the runtime.
    drop(rt);
    let cpu_s = cpu.as_ref().map_or(0.0, CpuMeter::seconds) - cpu0;
    let listen = observe::listen_counters(&server_ns).since(listen0);
    let metrics = lab.servers.get("server").and_then(|s| match s {
        Server::Reference(r) => r.metrics(),
        Server::External(_) => None,
    });
    let fallbacks = metrics.map_or(0, |m| m.fallback);
    let server_hold = metrics
        .filter(|m| m.released > 0)
        .map(|m| m.held_us as f64 / m.released as f64 / 1000.0);
    lab.stop();
    let g = Arc::try_unwrap(tally)
        .map_err(|_| "load tasks still running".to_string())?
        .into_inner()
        .unwrap_or_default();
    let (hold_ms, hold_source) = match server_hold {
        Some(h) => (h, "server allocator"),
        None if !g.connect_ms.is_empty() => (
            g.connect_ms.iter().sum::<f64>() / g.connect_ms.len() as f64,
            "client (PASV reply to connected)",
        ),
        None => (0.0, "none"),
    };
    let (per_second, steady_window) = steady_rate(&g.done_at, seconds);
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
        steady_window,
        wall_per_second: g.completed as f64 / seconds,
        session_p50_ms: observe::quantile(&g.session_ms, 0.5),
        session_p99_ms: observe::quantile(&g.session_ms, 0.99),
        pasv_p50_ms: observe::quantile(&g.pasv_ms, 0.5),
        pasv_p99_ms: observe::quantile(&g.pasv_ms, 0.99),
        cpu_ms_per_session: cpu_s * 1000.0 / spec.clients.max(1) as f64,
        listen,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_ignores_the_ramp_and_a_straggler() {
        // 100 completions, one every 10 ms, then one client waiting out a
        // 15 s SYN retransmit.
        let mut t: Vec<f64> = (0..100).map(|i| 0.01 * f64::from(i)).collect();
        t.push(15.0);
        let (rate, (lo, hi)) = steady_rate(&t, 15.0);
        assert!((rate - 100.0).abs() < 1.0, "{rate}");
        assert!(lo > 0.05 && hi < 1.0, "{lo} {hi}");
        // The wall-clock rate is what one timer decides.
        assert!(t.len() as f64 / 15.0 < 7.0);
        // Few completions: the wall rate.
        assert_eq!(steady_rate(&[0.5, 1.0], 2.0).0, 1.0);
        assert_eq!(steady_rate(&[], 2.0).0, 0.0);
    }

    #[test]
    fn arrivals_parse_and_spread_as_said() {
        assert_eq!("burst".parse::<Arrivals>(), Ok(Arrivals::Burst));
        assert_eq!(
            "ramp:1000".parse::<Arrivals>(),
            Ok(Arrivals::Ramp { ms: 1000 })
        );
        assert_eq!("paced:16".parse::<Arrivals>(), Ok(Arrivals::default()));
        for bad in [
            "",
            "ramp",
            "ramp:x",
            "poisson:0",
            "poisson:nan",
            "paced:0",
            "burst:3",
        ] {
            let e = bad.parse::<Arrivals>().unwrap_err();
            assert!(e.contains("expected burst, ramp:MS"), "{bad}: {e}");
        }
        let r = Arrivals::Ramp { ms: 1000 }.offsets(4, 1);
        assert_eq!(r[1], Duration::from_millis(250));
        assert_eq!(r[3], Duration::from_millis(750));
        // Poisson at 100/s: 1000 arrivals take about 10 s, deterministic.
        let p = Arrivals::Poisson { rate: 100.0 }.offsets(1000, 7);
        assert_eq!(p, Arrivals::Poisson { rate: 100.0 }.offsets(1000, 7));
        let last = p[999].as_secs_f64();
        assert!((8.5..11.5).contains(&last), "{last}");
        assert!(p.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(
            "poisson:100".parse::<Arrivals>().unwrap().to_string(),
            "poisson:100"
        );
    }
}
