//! Running scenarios: build the network, start gateways and servers, execute
//! the steps, check expectations, tear everything down, write artifacts.
//!
//! Each scenario runs on its own thread with its own current-thread runtime
//! and its own topology prefix, so scenarios run in parallel without
//! sharing anything but the machine. Every wait is bounded: replies and data
//! connections by the step timeout, the whole scenario by its own.

pub mod expect;
pub mod needs;
pub mod topo;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use ftpnat_server::protocol::Reply;
use serde::Serialize;

use crate::{
    actor::reference::ReferenceServer,
    client::{FtpClient, Transcript, Transfer},
    engine::{
        counters::sim_only,
        sim::{SimGateway, SimReport},
        Counters,
    },
    error::SetupError,
    outcome::{NotRun, ScenarioResult, Status, StepResult},
    scenario::{raw::EngineKind, raw::FileSpec, Action, Mode, Scenario, Step, Verb},
    topology::Topology,
};

/// Options for a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where artifacts go (`<dir>/<scenario>/…`); `None`: a temporary folder, removed.
    pub artifacts: Option<PathBuf>,
    /// Force every gateway onto this engine.
    pub engine: Option<EngineKind>,
    /// Do not write pcap files (they cost gateway throughput).
    pub no_pcap: bool,
    /// Run every server as this kind.
    pub server_kind: Option<crate::scenario::resolve::ServerKind>,
    /// Run every server as this user's program (server kind `command`).
    pub command: Option<Arc<crate::actor::command::CommandSpec>>,
    /// The server's profile: its answers where servers may differ, and
    /// what it cannot do (reported as "not supported by this server").
    pub profile: Option<Arc<crate::profile::Profile>>,
    /// Hosts and gateways in Docker containers instead of bare namespaces.
    pub docker: bool,
}

struct ClientState {
    ftp: Option<FtpClient>,
    transcript: Transcript,
    /// Data connections held open by `hold` steps.
    held: Vec<tokio::net::TcpStream>,
}

/// What a step observed.
#[derive(Debug, Default)]
pub struct Seen {
    /// Last reply.
    pub reply: Option<Reply>,
    /// Transfer result.
    pub transfer: Option<Transfer>,
    /// Passive address announced most recently by the server to this client.
    pub passive: Option<SocketAddr>,
    /// Server log text (check/wait_log).
    pub log: Option<String>,
    /// Gateway counters (check).
    pub counters: Option<Counters>,
    /// Open ports (scan).
    pub open: Option<BTreeSet<u16>>,
    /// Ports that answered with a RST (scan): closed.
    pub closed: Option<BTreeSet<u16>>,
    /// Ports that did not answer at all (scan): filtered.
    pub filtered: Option<BTreeSet<u16>>,
    /// Scanned ports whose connection a node's own listener accepted,
    /// by node (scan).
    pub accepted: Option<BTreeMap<String, BTreeSet<u16>>>,
    /// How long the step took.
    pub elapsed: Duration,
    /// An error of the client itself (e.g. control connection refused).
    pub error: Option<String>,
}

impl Seen {
    fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.reply {
            parts.push(format!(
                "{} {}",
                r.code,
                r.lines.last().cloned().unwrap_or_default()
            ));
        }
        if let Some(t) = &self.transfer {
            parts.push(format!(
                "data {:?} {} bytes via {}",
                t.outcome,
                t.bytes,
                t.data_peer.map_or("-".into(), |p| p.to_string())
            ));
        }
        if let Some(o) = &self.open {
            parts.push(format!("open {:?}", o));
        }
        if let Some(e) = &self.error {
            parts.push(format!("error: {e}"));
        }
        parts.join("; ")
    }
}

/// A running server actor.
#[derive(Debug)]
pub enum Server {
    /// ftpnat-server, in-process.
    Reference(ReferenceServer),
    /// vsftpd, ProFTPD or Pure-FTPd: a child process.
    External(crate::actor::daemon::Daemon),
}

impl Server {
    /// Its log so far.
    pub fn log(&self) -> String {
        match self {
            Server::Reference(s) => s.log(),
            Server::External(s) => s.log(),
        }
    }

    /// Stops it.
    pub fn stop(&mut self) {
        match self {
            Server::Reference(s) => s.stop(),
            Server::External(s) => s.stop(),
        }
    }
}

/// A running gateway of either engine.
#[derive(Debug)]
pub enum Gateway {
    /// Userspace.
    Sim(SimGateway),
    /// nftables in the gateway's namespace.
    Kernel(crate::engine::kernel::KernelGateway),
    /// The user's image routes; nothing is observed inside it.
    Image(String),
}

impl Gateway {
    /// Current counters (the kernel engine fills forwarded, rule hits and
    /// firewall drops; the rest is sim-only).
    pub fn counters(&self) -> Counters {
        match self {
            Gateway::Sim(g) => g.counters(),
            Gateway::Kernel(g) => g.counters(),
            Gateway::Image(_) => Counters::default(),
        }
    }

    /// Whether it still works (a sim thread can die; the kernel cannot).
    pub fn is_running(&self) -> bool {
        match self {
            Gateway::Sim(g) => g.is_running(),
            Gateway::Kernel(_) | Gateway::Image(_) => true,
        }
    }

    /// Name.
    pub fn name(&self) -> &str {
        match self {
            Gateway::Sim(g) => g.name(),
            Gateway::Kernel(g) => g.name(),
            Gateway::Image(n) => n,
        }
    }
}

/// A scenario's network with its gateways and servers running, without
/// the steps: for tests and tools that drive it themselves (e.g. run curl
/// inside a host with [`Topology::command`]).
#[derive(Debug)]
pub struct Lab {
    /// The scenario.
    pub scenario: Scenario,
    /// Servers by host (declared before `topo`: dropped first).
    pub servers: HashMap<String, Server>,
    /// Hosts' and gateways' other listening services (the kernel
    /// completes handshakes into their backlog; a scan drains it to learn
    /// which node accepted which port).
    pub services: Vec<Service>,
    /// Gateways by name.
    pub gateways: HashMap<String, Gateway>,
    /// The network.
    pub topo: Topology,
    /// Where logs, pcaps and server roots live.
    pub dir: PathBuf,
    /// The scenario's throw-away FTPS PKI (when a server has `tls = true`).
    pub pki: Option<crate::tls::TestPki>,
    /// Recorders of kernel-engine gateways (pcaps, nft trace, conntrack
    /// events), stopped with them.
    pub recorders: Vec<crate::engine::record::KernelRecorder>,
    /// Containers holding the hosts' and gateways' namespaces (docker
    /// substrate); declared after `topo`, so they go after it.
    pub containers: Option<crate::topology::docker::Containers>,
}

impl Lab {
    /// Builds the network and starts gateways and servers, with artifacts in `dir`.
    pub fn start(sc: &Scenario, dir: &Path, pcap: bool) -> Result<Lab, SetupError> {
        Self::start_on(sc, dir, pcap, false)
    }

    /// As [`Lab::start`]; with `docker`, hosts and gateways are containers.
    pub fn start_on(
        sc: &Scenario,
        dir: &Path,
        pcap: bool,
        docker: bool,
    ) -> Result<Lab, SetupError> {
        // A host or gateway with its own image needs containers.
        let docker = docker
            || sc.hosts.iter().any(|h| h.image.is_some())
            || sc.gateways.iter().any(|g| g.image.is_some());
        std::fs::create_dir_all(dir)
            .map_err(SetupError::io(format!("cannot create {}", dir.display())))?;
        let spec = topo::topology_spec(sc);
        let _ = std::fs::write(
            dir.join("topology.svg"),
            crate::report::svg::topology_svg(sc),
        );
        let prefix = crate::topology::new_prefix();
        let (containers, adopted) = if docker {
            let images: BTreeMap<&str, &str> = sc
                .hosts
                .iter()
                .filter_map(|h| Some((h.name.as_str(), h.image.as_deref()?)))
                .chain(
                    sc.gateways
                        .iter()
                        .filter_map(|g| Some((g.config.name.as_str(), g.image.as_deref()?))),
                )
                .collect();
            let nodes: Vec<(String, Option<String>)> = spec
                .nodes
                .iter()
                .filter(|n| n.kind != crate::topology::NodeKind::Switch)
                .map(|n| {
                    (
                        n.name.clone(),
                        images.get(n.name.as_str()).map(|i| i.to_string()),
                    )
                })
                .collect();
            let (c, pids) = crate::topology::docker::Containers::start(&prefix, &nodes)?;
            (Some(c), pids)
        } else {
            (None, Default::default())
        };
        let topo = Topology::build_in(&spec, prefix, &adopted)
            .map_err(|e| SetupError::Failed(e.to_string()).within("building the network"))?;
        let mut lab = Lab {
            scenario: sc.clone(),
            topo,
            servers: HashMap::new(),
            services: Vec::new(),
            gateways: HashMap::new(),
            dir: dir.to_owned(),
            pki: None,
            recorders: Vec::new(),
            containers,
        };
        start_actors(&mut lab, pcap)?;
        Ok(lab)
    }

    /// Stops the traces of kernel gateways that run one, and returns them
    /// by gateway (each also written to `<gateway>.trace`).
    pub fn take_traces(&mut self) -> BTreeMap<String, crate::engine::trace::GatewayTrace> {
        let mut out = BTreeMap::new();
        for (name, g) in self.gateways.iter_mut() {
            if let Gateway::Kernel(k) = g {
                if let Some(t) = k.take_trace() {
                    let _ = std::fs::write(self.dir.join(format!("{name}.trace")), &t.monitor);
                    out.insert(name.clone(), t);
                }
            }
        }
        out
    }

    /// Stops servers and gateways (writing the gateways' counters and packet
    /// logs next to the pcaps) and removes the network.
    pub fn stop(mut self) -> BTreeMap<String, Counters> {
        let mut out = BTreeMap::new();
        for (_, mut s) in self.servers.drain() {
            s.stop();
        }
        let notes: Vec<String> = self.recorders.drain(..).flat_map(|r| r.stop()).collect();
        if !notes.is_empty() {
            let _ = std::fs::write(
                self.dir.join("recording-notes.txt"),
                notes.join("\n") + "\n",
            );
        }
        for (name, g) in self.gateways.drain() {
            match g {
                Gateway::Sim(g) => {
                    if let Ok(report) = g.stop() {
                        write_gateway_report(&self.dir, &report);
                        out.insert(name, report.counters);
                    }
                }
                Gateway::Kernel(g) => {
                    let c = g.counters();
                    if let Ok(j) = serde_json::to_string_pretty(&c) {
                        let _ = std::fs::write(self.dir.join(format!("{name}.counters.json")), j);
                    }
                    out.insert(name, c);
                }
                Gateway::Image(_) => {
                    if let Some(c) = &self.containers {
                        let _ = std::fs::write(
                            self.dir.join(format!("{name}.container.log")),
                            c.logs(&name).unwrap_or_else(|e| e),
                        );
                    }
                }
            }
        }
        out
    }
}

/// Runs one scenario to completion.
pub fn run_scenario(sc: &Scenario, opts: &RunOptions) -> ScenarioResult {
    let t0 = Instant::now();
    let mut result = ScenarioResult {
        name: sc.name.clone(),
        file: sc.file.display().to_string(),
        tags: sc.tags.clone(),
        status: Status::Pass,
        duration_ms: 0,
        setup_ms: 0,
        teardown_ms: 0,
        steps: vec![],
        failure: None,
        notes: Vec::new(),
        not_run: None,
        missing: Vec::new(),
        gateways: BTreeMap::new(),
        traces: BTreeMap::new(),
        transcripts: BTreeMap::new(),
    };
    let tmp;
    let dir: PathBuf = match &opts.artifacts {
        Some(a) => a.join(sanitize(&sc.name)),
        None => {
            tmp = crate::topology::netns::run_tempdir();
            match &tmp {
                Ok(t) => t.path().to_owned(),
                Err(e) => {
                    let e = SetupError::Io {
                        context: "cannot create a temporary folder".into(),
                        source: std::io::Error::new(e.kind(), e.to_string()),
                    };
                    return error(result, t0, e);
                }
            }
        }
    };
    let mut sc = match &opts.profile {
        Some(p) => match p.apply(sc) {
            Ok((s, notes)) => {
                result.notes = notes;
                s
            }
            Err(e) => return error(result, t0, e),
        },
        None => sc.clone(),
    };
    if let Some(engine) = opts.engine {
        force_engine(&mut sc, engine);
    }
    skip_sim_only_counters(&mut sc, &mut result.notes);
    if let Some(kind) = opts.server_kind {
        for s in sc.hosts.iter_mut().filter_map(|h| h.server.as_mut()) {
            s.kind = kind;
        }
    }
    if let Some(cmd) = &opts.command {
        for s in sc.hosts.iter_mut().filter_map(|h| h.server.as_mut()) {
            s.command = Some(Arc::clone(cmd));
        }
    }
    let missing = needs::missing(&sc, opts.docker);
    if !missing.is_empty() {
        let why: Vec<String> = missing.iter().map(|m| m.to_string()).collect();
        result.status = Status::NotSupportedHere;
        result.not_run = Some(crate::outcome::NotRun::Missing);
        result.failure = Some(format!("not supported here: {}", why.join("; ")));
        result.missing = missing;
        result.duration_ms = t0.elapsed().as_millis() as u64;
        return result;
    }
    let mut env = match Lab::start_on(&sc, &dir, !opts.no_pcap, opts.docker) {
        Ok(l) => l,
        Err(e) => return error(result, t0, e),
    };
    result.setup_ms = t0.elapsed().as_millis() as u64;
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return error(result, t0, SetupError::io("runtime")(e)),
    };
    let mut clients: HashMap<String, ClientState> = HashMap::new();
    let deadline = t0 + sc.timeout;
    for step in &sc.steps {
        if Instant::now() >= deadline {
            result.status = Status::Fail;
            result.failure = Some(format!(
                "scenario timeout of {:?} reached before step {}",
                sc.timeout, step.index
            ));
            break;
        }
        let results = rt.block_on(run_step(&env, &mut clients, step, deadline));
        if let Some(dead) = env.gateways.values().find(|g| !g.is_running()) {
            result.status = Status::Error;
            result.failure = Some(format!(
                "gateway {} stopped unexpectedly during step {} (see its report)",
                dead.name(),
                step.index
            ));
            result.steps.extend(results);
            break;
        }
        let failed = results.iter().find(|r| r.status != Status::Pass).cloned();
        result.steps.extend(results);
        if let Some(f) = failed {
            result.status = Status::Fail;
            let tail = clients
                .get(&f.client)
                .map(|c| tail(&c.transcript.render(true), 12))
                .unwrap_or_default();
            result.failure = Some(format!(
                "step {} (line {}) {}: {}\n  seen: {}{}",
                f.index,
                f.line,
                f.action,
                f.failure.clone().unwrap_or_default(),
                f.seen,
                if tail.is_empty() {
                    String::new()
                } else {
                    format!("\n  transcript tail:\n{tail}")
                }
            ));
            break;
        }
    }
    let t_down = Instant::now();
    for (name, c) in clients {
        result
            .transcripts
            .insert(name.clone(), c.transcript.render(true));
        let _ = std::fs::write(
            dir.join(format!("{}.transcript.txt", sanitize(&name))),
            c.transcript.render(true),
        );
        drop(c.ftp);
    }
    drop(rt);
    result.traces = env.take_traces();
    result.gateways = env.stop();
    result.teardown_ms = t_down.elapsed().as_millis() as u64;
    result.duration_ms = t0.elapsed().as_millis() as u64;
    result
}

/// Puts every gateway of `sc` on `engine` (`--engine`); an image gateway
/// routes with its own software whatever the engine.
pub fn force_engine(sc: &mut Scenario, engine: EngineKind) {
    for g in sc
        .gateways
        .iter_mut()
        .filter(|g| g.engine != EngineKind::Image)
    {
        g.engine = engine;
    }
}

fn write_gateway_report(dir: &Path, r: &SimReport) {
    if let Ok(j) = serde_json::to_string_pretty(&r.counters) {
        let _ = std::fs::write(dir.join(format!("{}.counters.json", r.name)), j);
    }
    let _ = std::fs::write(
        dir.join(format!("{}.packets.log", r.name)),
        r.log.join("\n") + "\n",
    );
}

/// The result of a scenario set-up stopped: its status from the error's
/// kind (not supported, or an error), the message as the failure.
fn error(mut r: ScenarioResult, t0: Instant, e: SetupError) -> ScenarioResult {
    r.status = e.status();
    r.not_run = Some(e.not_run());
    r.failure = Some(e.to_string());
    r.duration_ms = t0.elapsed().as_millis() as u64;
    r
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}\n"))
        .collect()
}

/// File-name-safe version of a scenario or client name: one path
/// component, never `.` or `..`.
pub fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with('.') {
        format!("_{out}")
    } else {
        out
    }
}

/// Deterministic content of a generated file.
pub fn generated_bytes(size: u64, seed: u64) -> Vec<u8> {
    crate::confine::generated_bytes(size, seed)
}

/// Creates a host's served files beneath `root`: names were checked at
/// load time and are opened again without following links; generated
/// content is streamed; the total must fit the free space.
fn write_files(root: &Path, files: &BTreeMap<String, FileSpec>) -> Result<(), SetupError> {
    let need: u64 = files
        .values()
        .map(|f| match f {
            FileSpec::Text(t) => t.len() as u64,
            FileSpec::Generated { size, .. } => *size,
        })
        .sum();
    let free = crate::confine::free_bytes(root).map_err(SetupError::io(root.display()))?;
    // Keep a margin for logs, pcaps and uploads.
    if need.saturating_add(64 << 20) > free {
        return Err(SetupError::Failed(format!(
            "the scenario's files need {need} bytes but {} has only {free} bytes free",
            root.display()
        )));
    }
    let dir = crate::confine::Confined::open(root).map_err(SetupError::io(root.display()))?;
    for (name, spec) in files {
        let mut f = dir
            .create(name)
            .map_err(SetupError::io(format!("{}/{name}", root.display())))?;
        let r = match spec {
            FileSpec::Text(t) => std::io::Write::write_all(&mut f, t.as_bytes()),
            FileSpec::Generated { size, seed } => {
                let mut w = std::io::BufWriter::new(f);
                crate::confine::write_generated(&mut w, *size, *seed)
                    .and_then(|()| std::io::Write::flush(&mut w))
            }
        };
        r.map_err(SetupError::io(format!("{}/{name}", root.display())))?;
    }
    Ok(())
}

fn start_actors(env: &mut Lab, pcap: bool) -> Result<(), SetupError> {
    let dir = env.dir.clone();
    for g in &env.scenario.gateways {
        match g.engine {
            EngineKind::Sim => {
                let gw = SimGateway::start(
                    Arc::clone(env.topo.ns(&g.config.name)),
                    g.config.clone(),
                    pcap.then_some(dir.as_path()),
                )
                .map_err(|e| SetupError::Failed(e.to_string()))
                .map_err(|e| e.within(format!("starting gateway {}", g.config.name)))?;
                env.gateways.insert(g.config.name.clone(), Gateway::Sim(gw));
            }
            EngineKind::Kernel => {
                if g.ruleset.is_none() {
                    crate::engine::kernel::check(&g.config).map_err(|u| {
                        SetupError::NotExpressible {
                            gateway: u.gateway,
                            what: u.what,
                        }
                    })?;
                }
                let gw = crate::engine::kernel::KernelGateway::start(
                    &env.topo,
                    &g.config,
                    crate::engine::kernel::KernelOptions {
                        custom: g.ruleset.as_ref(),
                        extra_interfaces: &g.extra_interfaces,
                        trace: g.trace,
                    },
                    &dir,
                )?;
                env.gateways
                    .insert(g.config.name.clone(), Gateway::Kernel(gw));
                if pcap {
                    let rec = crate::engine::record::KernelRecorder::start(
                        env.topo.ns(&g.config.name),
                        &g.config,
                        &dir,
                    )?;
                    env.recorders.push(rec);
                }
            }
            EngineKind::Image => {
                let containers = env.containers.as_ref().ok_or_else(|| {
                    SetupError::Failed("engine = \"image\" needs the docker substrate".into())
                })?;
                let ready = g.image_ready.as_ref().ok_or_else(|| {
                    SetupError::Failed("engine = \"image\" without image_ready".into())
                })?;
                containers.wait_for_log(&g.config.name, ready, Duration::from_secs(10))?;
                env.gateways
                    .insert(g.config.name.clone(), Gateway::Image(g.config.name.clone()));
            }
        }
    }
    for g in &env.scenario.gateways {
        for port in &g.services {
            match Service::bind(&env.topo, &g.config.name, *port) {
                Ok(s) => env.services.push(s),
                // A router image's own service already listens there.
                Err(e)
                    if g.engine == EngineKind::Image
                        && e.kind() == std::io::ErrorKind::AddrInUse => {}
                Err(e) => {
                    return Err(SetupError::io(format!(
                        "service {port} on {}",
                        g.config.name
                    ))(e))
                }
            }
        }
    }
    for h in &env.scenario.hosts {
        for port in &h.services {
            let l = Service::bind(&env.topo, &h.name, *port)
                .map_err(SetupError::io(format!("service {port} on {}", h.name)))?;
            env.services.push(l);
        }
        let Some(server) = &h.server else { continue };
        let root = dir.join(format!("{}-root", sanitize(&h.name)));
        // A fresh tree each run (an artifacts folder may hold the last one).
        if std::fs::symlink_metadata(&root).is_ok() {
            std::fs::remove_dir_all(&root)
                .or_else(|_| std::fs::remove_file(&root))
                .map_err(SetupError::io(root.display()))?;
        }
        std::fs::create_dir_all(&root).map_err(SetupError::io(root.display()))?;
        write_files(&root, &h.files)?;
        let mut raw = server.config.clone();
        if server.tls {
            if env.pki.is_none() {
                let pki =
                    crate::tls::TestPki::generate(&dir.join("tls"), &scenario_ips(&env.scenario))?;
                env.pki = Some(pki);
            }
            let pki = env.pki.as_ref().expect("set above");
            raw.tls_cert = Some(pki.cert_pem.clone());
            raw.tls_key = Some(pki.key_pem.clone());
        }
        let (ns, label) = (Arc::clone(env.topo.ns(&h.name)), sanitize(&h.name));
        let server_on = |e: SetupError| e.within(format!("server on {}", h.name));
        if let Some(real) = crate::actor::real_server(server.kind, server.command.as_deref()) {
            let d = crate::actor::daemon::launch(&*real, ns, &raw, &root, &dir, &label)
                .map_err(server_on)?;
            env.servers.insert(h.name.clone(), Server::External(d));
            continue;
        }
        raw.root.get_or_insert(root);
        raw.listen.get_or_insert_with(|| vec!["0.0.0.0:21".into()]);
        // Names resolve through this host's own view only: never a real DNS query.
        let table = h.hosts.clone();
        let resolver = move |name: &str| -> std::io::Result<Vec<IpAddr>> {
            table.get(name).map(|ip| vec![*ip]).ok_or_else(|| {
                std::io::Error::other(format!("{name} is not in this host's `hosts` table"))
            })
        };
        let config = ftpnat_server::config::Config::resolve(raw, &env.scenario.file, &resolver)
            .map_err(|e| server_on(SetupError::Failed(e.to_string())))?;
        let log = dir.join(format!("{}-server.log", sanitize(&h.name)));
        let s = Server::Reference(
            ReferenceServer::start(Arc::clone(env.topo.ns(&h.name)), config, &log)
                .map_err(|e| server_on(SetupError::Failed(e.to_string())))?,
        );
        env.servers.insert(h.name.clone(), s);
    }
    Ok(())
}

fn action_label(a: &Action) -> String {
    match a {
        Action::Connect { host, addr } => format!("connect {addr} from {host}"),
        Action::Login { user, .. } => format!("login {user}"),
        Action::Send(l) => format!("send {l:?}"),
        Action::Transfer {
            verb, path, mode, ..
        } => format!("{verb:?} {path} ({mode:?})").to_lowercase(),
        Action::Quit => "quit".into(),
        Action::AuthTls => "AUTH TLS".into(),
        Action::Ccc => "CCC".into(),
        Action::Hold => "hold a data connection open".into(),
        Action::External {
            tool,
            host,
            server,
            path,
            mode,
            ..
        } => format!("{tool:?} from {host}: {server}/{path} ({mode:?})").to_lowercase(),
        Action::WaitLog { target, regex } => format!("wait for {target} log /{regex}/"),
        Action::Check { target } => format!("check {target}"),
        Action::Scan {
            from,
            target,
            ports,
        } => format!("scan {target} ({} ports) from {from}", ports.len()),
        Action::Parallel(v) => format!("parallel ({} steps)", v.len()),
    }
}

async fn run_step(
    env: &Lab,
    clients: &mut HashMap<String, ClientState>,
    step: &Step,
    deadline: Instant,
) -> Vec<StepResult> {
    if let Action::Parallel(inner) = &step.action {
        // Each inner step owns its client for the duration.
        let mut owned = Vec::new();
        for s in inner {
            let c = clients.remove(&s.client);
            owned.push((s, c));
        }
        let futs = owned.into_iter().map(|(s, mut c)| async move {
            let r = run_one(env, &mut c, s, deadline).await;
            (s.client.clone(), c, r)
        });
        let done = futures::future::join_all(futs).await;
        let mut out = Vec::new();
        for (name, c, r) in done {
            if let Some(c) = c {
                clients.insert(name, c);
            }
            out.push(r);
        }
        return out;
    }
    let mut c = clients.remove(&step.client);
    let r = run_one(env, &mut c, step, deadline).await;
    if let Some(c) = c {
        clients.insert(step.client.clone(), c);
    }
    vec![r]
}

async fn run_one(
    env: &Lab,
    client: &mut Option<ClientState>,
    step: &Step,
    deadline: Instant,
) -> StepResult {
    let t0 = Instant::now();
    let started_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let bound = deadline.saturating_duration_since(Instant::now());
    let seen = match tokio::time::timeout(bound, act(env, client, step)).await {
        Ok(s) => s,
        Err(_) => Seen {
            error: Some("scenario timeout reached during this step".into()),
            ..Default::default()
        },
    };
    let mut seen = seen;
    seen.elapsed = t0.elapsed();
    let verdict = expect::check(&step.expect, &seen, &step.action);
    StepResult {
        index: step.index,
        line: step.line,
        client: step.client.clone(),
        action: action_label(&step.action),
        status: if verdict.is_ok() {
            Status::Pass
        } else {
            Status::Fail
        },
        duration_ms: seen.elapsed.as_millis() as u64,
        seen: seen.summary(),
        failure: verdict.err(),
        started_us,
    }
}

async fn act(env: &Lab, client: &mut Option<ClientState>, step: &Step) -> Seen {
    let mut seen = Seen::default();
    match &step.action {
        Action::Connect { host, addr } => {
            let transcript = client
                .as_ref()
                .map(|c| c.transcript.clone())
                .unwrap_or_default();
            match FtpClient::connect(
                env.topo.sockets(host),
                *addr,
                step.timeout,
                transcript.clone(),
            )
            .await
            {
                Ok((ftp, banner)) => {
                    seen.reply = Some(banner);
                    *client = Some(ClientState {
                        held: Vec::new(),
                        ftp: Some(ftp),
                        transcript,
                    });
                }
                Err(e) => {
                    seen.error = Some(e.to_string());
                    *client = Some(ClientState {
                        held: Vec::new(),
                        ftp: None,
                        transcript,
                    });
                }
            }
        }
        Action::WaitLog { target, regex } => {
            let srv = &env.servers[target];
            let until = Instant::now() + step.timeout;
            loop {
                let log = srv.log();
                if log.lines().any(|l| regex.is_match(l)) || Instant::now() >= until {
                    if !log.lines().any(|l| regex.is_match(l)) {
                        seen.error = Some(format!(
                            "no log line matched /{regex}/ within {:?}",
                            step.timeout
                        ));
                    }
                    seen.log = Some(log);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Action::Check { target } => {
            if let Some(s) = env.servers.get(target) {
                seen.log = Some(s.log());
            } else if let Some(g) = env.gateways.get(target) {
                seen.counters = Some(g.counters());
            }
        }
        Action::External {
            tool,
            host,
            server,
            path,
            mode,
            honour_pasv,
            ftps,
            settings,
        } => {
            let ca = match (ftps, &env.pki) {
                (false, _) => None,
                (true, Some(p)) => Some(p.ca_pem.as_path()),
                (true, None) => {
                    seen.error =
                        Some("ftps = true needs a server with tls = true in this scenario".into());
                    return seen;
                }
            };
            let (program, mut args) =
                external_command(*tool, *server, path, *mode, *honour_pasv, step.timeout, ca);
            if !settings.is_empty() {
                // The step's own lftp settings go before `open`.
                let set: String = settings
                    .iter()
                    .map(|(k, v)| format!("set {k} {v}; "))
                    .collect();
                if let Some(script) = args.last_mut() {
                    *script = script.replacen("open -p", &format!("{set}open -p"), 1);
                }
            }
            let t0 = Instant::now();
            let mut t = crate::client::Transfer::empty();
            let run = async {
                let mut cmd = std::process::Command::new(&program);
                cmd.args(&args);
                env.topo.ns(host).command(&mut cmd)?;
                let mut cmd = tokio::process::Command::from(cmd);
                cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
                tokio::time::timeout(step.timeout * 3, cmd.output())
                    .await
                    .unwrap_or_else(|_| {
                        Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "client program timed out",
                        ))
                    })
            };
            match run.await {
                Ok(out) => {
                    use sha2::Digest;
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let mut log = format!("$ {program} {}\nexit {}\n", args.join(" "), out.status);
                    for l in stderr.lines().take(20) {
                        log.push_str(&format!("stderr: {l}\n"));
                    }
                    seen.log = Some(log);
                    t.bytes = out.stdout.len() as u64;
                    t.outcome = if out.status.success() { crate::client::DataOutcome::Ok } else { crate::client::DataOutcome::Error };
                    t.sha256 = out.status.success().then(|| crate::client::hex(&sha2::Sha256::digest(&out.stdout)));
                    if !out.status.success() {
                        seen.error = Some(format!("{program} failed ({}): {}", out.status, stderr.lines().last().unwrap_or("")));
                    }
                }
                Err(e) => seen.error = Some(format!("cannot run {program}: {e} (apt-get install -y curl lftp python3, or run ci/test.sh)")),
            }
            t.elapsed_ms = t0.elapsed().as_millis() as u64;
            seen.transfer = Some(t);
        }
        Action::Scan {
            from,
            target,
            ports,
        } => {
            drain_services(&env.services);
            let r = scan(env.topo.sockets(from), *target, ports).await;
            seen.accepted = Some(accepted_by(&env.services, &r.open).await);
            seen.open = Some(r.open);
            seen.closed = Some(r.closed);
            seen.filtered = Some(r.filtered);
        }
        Action::Parallel(_) => unreachable!("handled by run_step"),
        _ => {
            let Some(c) = client.as_mut() else {
                seen.error = Some(format!("client {:?} is not connected", step.client));
                return seen;
            };
            let Some(ftp) = c.ftp.as_mut() else {
                seen.error = Some(format!(
                    "client {:?} has no control connection",
                    step.client
                ));
                return seen;
            };
            ftp.timeout = step.timeout;
            let r = match &step.action {
                Action::Login { user, pass } => {
                    ftp.login(user, pass).await.map(|r| seen.reply = Some(r))
                }
                Action::Send(line) => ftp.cmd(line).await.map(|r| seen.reply = Some(r)),
                Action::Quit => ftp.cmd("QUIT").await.map(|r| seen.reply = Some(r)),
                Action::AuthTls => match &env.pki {
                    None => {
                        seen.error =
                            Some("auth_tls needs a server with tls = true in this scenario".into());
                        Ok(())
                    }
                    Some(pki) => match crate::tls::ClientTls::new(&pki.ca_der) {
                        Ok(tls) => ftp.auth_tls(tls).await.map(|r| seen.reply = Some(r)),
                        Err(e) => {
                            seen.error = Some(e);
                            Ok(())
                        }
                    },
                },
                Action::Ccc => ftp.ccc().await.map(|r| seen.reply = Some(r)),
                Action::Hold => {
                    let mut t = crate::client::Transfer::empty();
                    match ftp.last_passive {
                        None => seen.error = Some("hold: no 227/229 received yet".into()),
                        Some(target) => {
                            t.data_peer = Some(target);
                            match ftp.connect_data(target).await {
                                Ok(s) => {
                                    t.outcome = crate::client::DataOutcome::Ok;
                                    c.held.push(s);
                                }
                                Err(e) => t.outcome = crate::client::DataOutcome::of(&e),
                            }
                        }
                    }
                    seen.transfer = Some(t);
                    Ok(())
                }
                Action::Transfer {
                    verb,
                    path,
                    mode,
                    size,
                    tls_resume,
                } => {
                    ftp.tls_resume = *tls_resume;
                    let cmd = match verb {
                        Verb::Retr => format!("RETR {path}"),
                        Verb::Stor => format!("STOR {path}"),
                        Verb::List if path.is_empty() => "LIST".into(),
                        Verb::List => format!("LIST {path}"),
                        Verb::Nlst if path.is_empty() => "NLST".into(),
                        Verb::Nlst => format!("NLST {path}"),
                    };
                    let upload = (*verb == Verb::Stor).then(|| generated_bytes(*size, 7));
                    let res = match mode {
                        Mode::Fresh(m) => ftp.transfer(*m, &cmd, upload.as_deref()).await,
                        Mode::Pending => ftp.transfer_pending(&cmd, upload.as_deref()).await,
                    };
                    res.map(|t| {
                        seen.reply = t.final_reply.clone();
                        seen.transfer = Some(t);
                    })
                }
                _ => Ok(()),
            };
            if let Err(e) = r {
                seen.error = Some(e.to_string());
            }
            seen.passive = ftp.last_passive;
            if matches!(step.action, Action::Quit) {
                c.ftp = None;
            }
        }
    }
    seen
}

/// Every address in a scenario (hosts, and where clients connect): the
/// test certificate is valid for all of them.
fn scenario_ips(sc: &Scenario) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = sc
        .hosts
        .iter()
        .flat_map(|h| h.addrs.iter().map(|a| a.addr()))
        .collect();
    fn walk(steps: &[Step], ips: &mut Vec<IpAddr>) {
        for s in steps {
            match &s.action {
                Action::Connect { addr, .. } => ips.push(addr.ip()),
                Action::External { server, .. } => ips.push(server.ip()),
                Action::Parallel(inner) => walk(inner, ips),
                _ => {}
            }
        }
    }
    walk(&sc.steps, &mut ips);
    ips
}

/// The command line of a real client fetching `path` (output on stdout).
pub fn external_command(
    tool: crate::scenario::resolve::Tool,
    server: SocketAddr,
    path: &str,
    mode: crate::client::DataMode,
    honour_pasv: bool,
    timeout: Duration,
    ftps_ca: Option<&Path>,
) -> (String, Vec<String>) {
    use crate::{client::DataMode as D, scenario::resolve::Tool};
    let secs = timeout.as_secs().max(1).to_string();
    let host = match server {
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
        SocketAddr::V4(a) => a.ip().to_string(),
    };
    match tool {
        Tool::Curl => {
            let mut a = vec!["-sS".to_string(), "--max-time".into(), secs];
            match mode {
                D::Pasv | D::Eprt => a.push("--disable-epsv".into()),
                D::Epsv => {}
                D::Port => a.extend(["--ftp-port".to_string(), "-".into()]),
            }
            if honour_pasv {
                a.push("--no-ftp-skip-pasv-ip".into());
            }
            if let Some(ca) = ftps_ca {
                // Explicit FTPS: AUTH TLS, PBSZ 0, PROT P (curl reuses the
                // control connection's TLS session on data connections).
                a.extend([
                    "--ssl-reqd".to_string(),
                    "--cacert".into(),
                    ca.display().to_string(),
                ]);
            }
            a.push(format!("ftp://{host}:{}/{path}", server.port()));
            ("curl".into(), a)
        }
        Tool::Lftp => {
            let passive = if mode == D::Port { "off" } else { "on" };
            let epsv = if mode == D::Epsv { "true" } else { "false" };
            let tls = match ftps_ca {
                Some(ca) => format!(
                    "set ftp:ssl-allow true; set ftp:ssl-force true; set ftp:ssl-protect-data true; set ftp:ssl-protect-list true; set ssl:ca-file {}; set ssl:check-hostname true; ",
                    ca.display()
                ),
                None => "set ftp:ssl-allow false; ".into(),
            };
            let script = format!(
                // lftp's defaults otherwise (ftp:fix-pasv-address and
                // ftp:auto-passive-mode on): a scenario that is about them
                // changes them with `lftp_set`. Retries and timeout only
                // bound the step.
                "set net:max-retries 1; set net:timeout {secs}; set ftp:passive-mode {passive}; set ftp:prefer-epsv {epsv}; {tls}open -p {} {host}; cat {path}",
                server.port()
            );
            ("lftp".into(), vec!["-c".into(), script])
        }
        Tool::Ftplib => {
            let (make, prot) = match ftps_ca {
                // ftplib's FTP_TLS does not resume the control session's TLS
                // session on data connections.
                Some(ca) => (
                    format!(
                        "import ssl\nf = ftplib.FTP_TLS(timeout={secs}, context=ssl.create_default_context(cafile={:?}))",
                        ca.display().to_string()
                    ),
                    "f.prot_p()\n",
                ),
                None => (format!("f = ftplib.FTP(timeout={secs})"), ""),
            };
            let script = format!(
                "import ftplib, sys\n{make}\nf.connect({host:?}, {})\nf.login()\n{prot}f.set_pasv({})\nf.retrbinary('RETR ' + {path:?}, sys.stdout.buffer.write)\nf.quit()\n",
                server.port(),
                if mode == D::Port { "False" } else { "True" }
            );
            ("python3".into(), vec!["-c".into(), script])
        }
    }
}

/// A listener standing for another service on a host or gateway (ssh,
/// a database, the router's web UI). Nothing is served; a scan learns from
/// its accept queue which node a connection reached.
#[derive(Debug)]
pub struct Service {
    /// Host or gateway.
    pub node: String,
    /// Port.
    pub port: u16,
    listener: std::net::TcpListener,
}

impl Service {
    /// Listens on `port` of every address of `node`.
    pub fn bind(topo: &Topology, node: &str, port: u16) -> std::io::Result<Service> {
        let listener = topo
            .ns(node)
            .run(|| std::net::TcpListener::bind(("0.0.0.0", port)))??;
        listener.set_nonblocking(true)?;
        Ok(Service {
            node: node.to_string(),
            port,
            listener,
        })
    }

    /// Accepts (and closes) every connection waiting; how many.
    fn drain(&self) -> usize {
        let mut n = 0;
        while self.listener.accept().is_ok() {
            n += 1;
        }
        n
    }
}

fn drain_services(services: &[Service]) {
    for s in services {
        s.drain();
    }
}

/// Which node's listener accepted each of the `open` ports, matched by
/// port. A connect completes at the SYN-ACK, the listener's queue gets it
/// at the final ACK a moment later: open ports that some listener could
/// own are polled for up to a second.
async fn accepted_by(
    services: &[Service],
    open: &BTreeSet<u16>,
) -> BTreeMap<String, BTreeSet<u16>> {
    let mut out: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    let mut waiting: BTreeSet<u16> = open
        .iter()
        .copied()
        .filter(|p| services.iter().any(|s| s.port == *p))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        for s in services {
            if s.drain() > 0 {
                out.entry(s.node.clone()).or_default().insert(s.port);
                waiting.remove(&s.port);
            }
        }
        if waiting.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    out
}

/// What a connect scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanResult {
    /// Connected.
    pub open: BTreeSet<u16>,
    /// Refused (a RST came back).
    pub closed: BTreeSet<u16>,
    /// No answer within 500 ms.
    pub filtered: BTreeSet<u16>,
}

/// TCP connect scan like `nmap -sT`: open (connected), closed (refused) or
/// filtered (no answer within 500 ms). At most 128 probes in flight.
pub async fn scan(
    sockets: Arc<crate::topology::NsSockets>,
    target: IpAddr,
    ports: &[u16],
) -> ScanResult {
    use crate::client::SocketFactory;
    use futures::StreamExt;
    #[derive(PartialEq)]
    enum St {
        Open,
        Closed,
        Filtered,
    }
    let probes = futures::stream::iter(ports.iter().copied().map(|p| {
        let sockets = Arc::clone(&sockets);
        async move {
            let addr = SocketAddr::new(target, p);
            let Ok(sock) = sockets.tcp_socket(addr) else {
                return (p, St::Filtered);
            };
            match tokio::time::timeout(Duration::from_millis(500), sock.connect(addr)).await {
                Ok(Ok(_)) => (p, St::Open),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => (p, St::Closed),
                _ => (p, St::Filtered),
            }
        }
    }))
    .buffer_unordered(128);
    let all: Vec<(u16, St)> = probes.collect().await;
    let mut r = ScanResult::default();
    for (p, st) in all {
        match st {
            St::Open => r.open.insert(p),
            St::Closed => r.closed.insert(p),
            St::Filtered => r.filtered.insert(p),
        };
    }
    r
}

/// Why the two engines disagree on a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disagreement {
    /// The scenario uses a setting the kernel engine cannot express.
    NotExpressible,
    /// Only a check of counters the kernel engine does not keep failed.
    SimOnlyCounter,
    /// One side could not run on this machine (a program is missing).
    NotSupportedHere,
    /// The engines really behave differently.
    Behaviour,
    /// They behave differently where the scenario says so (tag
    /// `kernel-differs`: it models something Linux does another way).
    Documented,
}

/// Counter checks on kernel-engine gateways of counters only the sim engine
/// keeps are not run (the kernel reports them as 0); each gets a note.
fn skip_sim_only_counters(sc: &mut Scenario, notes: &mut Vec<String>) {
    let kernel: Vec<String> = sc
        .gateways
        .iter()
        .filter(|g| g.engine == EngineKind::Kernel)
        .map(|g| g.config.name.clone())
        .collect();
    let image: Vec<String> = sc
        .gateways
        .iter()
        .filter(|g| g.engine == EngineKind::Image)
        .map(|g| g.config.name.clone())
        .collect();
    for step in &mut sc.steps {
        let Action::Check { target } = &step.action else {
            continue;
        };
        let (index, line) = (step.index, step.line);
        if image.contains(target) {
            for (name, _, _) in step.expect.counters.drain(..) {
                notes.push(format!(
                    "step {index} (line {line}): counter {name} not checked: gateway {target} is the user's image (nothing is observed inside it)"
                ));
            }
            continue;
        }
        if !kernel.contains(target) {
            continue;
        }
        step.expect.counters.retain(|(name, _, _)| {
            let keep = !sim_only(name);
            if !keep {
                notes.push(format!(
                    "step {index} (line {line}): counter {name} not checked: only the sim engine keeps it"
                ));
            }
            keep
        });
    }
}

/// Classifies a sim/kernel pair of results; `None` when they agree.
pub fn disagreement(sim: &ScenarioResult, kernel: &ScenarioResult) -> Option<Disagreement> {
    if sim.status == kernel.status {
        return None;
    }
    if sim.status == Status::NotSupportedHere || kernel.status == Status::NotSupportedHere {
        return Some(Disagreement::NotSupportedHere);
    }
    if kernel.not_run == Some(NotRun::NotExpressible) {
        return Some(Disagreement::NotExpressible);
    }
    let only_sim_counters = kernel
        .steps
        .iter()
        .filter(|s| s.status != Status::Pass)
        .all(|s| {
            s.failure
                .as_deref()
                .is_some_and(|f| f.strip_prefix("counter ").is_some_and(sim_only))
        });
    if kernel.status == Status::Fail && only_sim_counters {
        return Some(Disagreement::SimOnlyCounter);
    }
    Some(Disagreement::Behaviour)
}

/// Parses `K/N` (1-based shard K of N).
pub fn parse_shard(s: &str) -> Option<(usize, usize)> {
    let (k, n) = s.split_once('/')?;
    let (k, n): (usize, usize) = (k.trim().parse().ok()?, n.trim().parse().ok()?);
    (n >= 1 && (1..=n).contains(&k)).then_some((k, n))
}

/// Shard `k` of `n`: scenarios sorted by file, every n-th from k-1. Every
/// scenario is in exactly one shard, and the split depends only on the files.
pub fn shard(mut scenarios: Vec<Scenario>, k: usize, n: usize) -> Vec<Scenario> {
    scenarios.sort_by(|a, b| a.file.cmp(&b.file));
    scenarios
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % n == k - 1)
        .map(|(_, s)| s)
        .collect()
}

/// Runs scenarios on `jobs` threads; results in input order. `on_done`
/// gets each result's input index as soon as it finishes.
pub fn run_all(
    scenarios: &[Scenario],
    opts: &RunOptions,
    jobs: usize,
    on_done: &(dyn Fn(usize, &ScenarioResult) + Sync),
) -> Vec<ScenarioResult> {
    let jobs = jobs.max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<ScenarioResult>>> = scenarios
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.min(scenarios.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(sc) = scenarios.get(i) else { break };
                let r = run_scenario(sc, opts);
                on_done(i, &r);
                *results[i].lock().unwrap() = Some(r);
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap().expect("every scenario ran"))
        .collect()
}
