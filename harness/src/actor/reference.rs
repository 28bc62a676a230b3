//! The reference server running inside a host's namespace, in-process.
//!
//! A dedicated thread enters the namespace and runs a current-thread tokio
//! runtime, so every socket the server makes — control listeners, passive
//! listeners, active connections — belongs to that host. The thread also
//! installs its own tracing subscriber, so each server's log goes to its own
//! file (the lines a scenario's `log` expectations match).

use std::{
    io,
    path::{Path, PathBuf},
    sync::{mpsc, Arc},
    thread::JoinHandle,
    time::Duration,
};

use ftpnat_server::{
    config::{Config, RawConfig},
    passive::PortPool,
    server::Server,
};
use tokio::sync::oneshot;

use crate::{error::SetupError, topology::Netns};

/// A running in-process reference server.
#[derive(Debug)]
pub struct ReferenceServer {
    thread: Option<JoinHandle<io::Result<()>>>,
    stop: Option<oneshot::Sender<()>>,
    /// Its log file.
    pub log_path: PathBuf,
    /// The passive pool, for metrics.
    pub pool: Option<Arc<PortPool>>,
    /// The pooled range (`passive_mode = "pooled"`), for metrics.
    pub pooled: Option<Arc<ftpnat_server::pooled::PooledPassive>>,
    /// The Linux thread id of the thread that runs it (its CPU time is
    /// the server's: `/proc/self/task/<tid>/stat`).
    pub tid: i32,
}

impl ReferenceServer {
    /// Allocator counters of whichever passive mode runs.
    pub fn metrics(&self) -> Option<ftpnat_server::passive::Metrics> {
        match (&self.pooled, &self.pool) {
            (Some(p), _) => Some(p.metrics()),
            (None, Some(p)) => Some(p.metrics()),
            (None, None) => None,
        }
    }
}

impl ReferenceServer {
    /// Starts `config` inside `ns`, logging to `log_path`; returns once the
    /// control listeners are bound (or with the bind error).
    pub fn start(ns: Arc<Netns>, config: Config, log_path: &Path) -> io::Result<ReferenceServer> {
        let log = std::fs::File::create(log_path)?;
        type Ready = (
            Option<Arc<PortPool>>,
            Option<Arc<ftpnat_server::pooled::PooledPassive>>,
            i32,
        );
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<Ready>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("ref-server-{}", ns.name()))
            .spawn(move || -> io::Result<()> {
                let fail = |e: io::Error| {
                    let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    e
                };
                nix::sched::setns(
                    std::os::fd::AsFd::as_fd(ns.fd()),
                    nix::sched::CloneFlags::CLONE_NEWNET,
                )
                .map_err(|e| fail(e.into()))?;
                let log = Arc::new(log);
                let subscriber = tracing_subscriber::fmt()
                    .with_ansi(false)
                    .with_target(false)
                    .with_max_level(tracing::Level::INFO)
                    .with_writer(move || LogFile(Arc::clone(&log)))
                    .finish();
                tracing::subscriber::with_default(subscriber, || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(fail)?;
                    rt.block_on(async {
                        let server = Server::new(config);
                        let listeners = server.bind().map_err(fail)?;
                        let _ = ready_tx.send(Ok((
                            server.pool().cloned(),
                            server.pooled().cloned(),
                            nix::unistd::gettid().as_raw(),
                        )));
                        server
                            .run(listeners, async {
                                let _ = stop_rx.await;
                            })
                            .await
                    })
                })
            })?;
        let (pool, pooled, tid) =
            ready_rx
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        "reference server did not start within 10 s",
                    )
                })??;
        Ok(ReferenceServer {
            thread: Some(thread),
            stop: Some(stop_tx),
            log_path: log_path.to_owned(),
            pool,
            pooled,
            tid,
        })
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Stops (draining) and waits for the thread.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct LogFile(Arc<std::fs::File>);

impl io::Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

/// The reference server as a program (`ftpnat-server --config FILE`) under
/// the same launch path as the real servers: what the speed tool measures
/// (its CPU time is then the process's own).
#[derive(Debug, Clone, Copy)]
pub struct Program;

impl super::RealServer for Program {
    fn name(&self) -> &'static str {
        "ftpnat-server"
    }

    /// `$FTPNAT_SERVER_BIN`, or `ftpnat-server` next to this program.
    fn binary(&self) -> Result<PathBuf, SetupError> {
        if let Ok(p) = std::env::var("FTPNAT_SERVER_BIN") {
            return Ok(PathBuf::from(p));
        }
        let exe = std::env::current_exe().map_err(SetupError::io("this program's path"))?;
        let bin = exe.with_file_name("ftpnat-server");
        if bin.exists() {
            Ok(bin)
        } else {
            Err(SetupError::Missing {
                tool: bin.display().to_string(),
                install:
                    "build it (cargo build --release -p ftpnat-server) or set FTPNAT_SERVER_BIN"
                        .into(),
            })
        }
    }

    /// Writes the server's TOML config (`raw` with the served tree and log
    /// file filled in).
    fn command(
        &self,
        bin: &Path,
        raw: &RawConfig,
        site: &super::Site,
    ) -> Result<(std::process::Command, std::net::SocketAddr), SetupError> {
        let mut raw = raw.clone();
        // Started as root, it drops to the account the real servers'
        // anonymous users map to.
        raw.run_as.get_or_insert_with(|| "daemon".into());
        raw.root = Some(site.root.to_owned());
        raw.log_file = Some(site.log.to_owned());
        let listen = raw.listen.get_or_insert_with(|| vec!["0.0.0.0:21".into()]);
        let addr = listen
            .first()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| SetupError::Failed(format!("listen {listen:?} is not an address")))?;
        let text = toml::to_string(&raw).map_err(|e| SetupError::Failed(e.to_string()))?;
        let conf = site.write("ftpnat-server.toml", &text)?;
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("--config").arg(&conf);
        Ok((cmd, addr))
    }
}
