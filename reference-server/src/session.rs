//! One control connection: login, the command state machine, data connections.
//!
//! Data-connection rules (the NAT-relevant part):
//! * PASV/EPSV open one listener per session (a new one supersedes the old,
//!   releasing its port). A background task accepts the data connection; the
//!   listener closes and the port returns to the pool as soon as a connection
//!   from the control peer's address is accepted — or when `data_connect`
//!   passes, or the session ends. Connections from other addresses are closed
//!   and logged (`SECURITY VIOLATION`), and the right client can still connect.
//! * PORT/EPRT must name the control peer's address unless it is allowed by
//!   `allow_foreign_address`, and a port of 1024 or above (RFC 2577).
//! * A transfer runs as a task while the control connection keeps reading, so
//!   `ABOR`, `STAT` and `NOOP` are answered during it.
//! * FTPS (RFC 4217): `AUTH TLS` turns TLS on for the control connection,
//!   `PBSZ 0` + `PROT P` for data connections (the server is the TLS server,
//!   and by default a data connection must resume this session's TLS
//!   session), `CCC` turns it off again on the control connection.

use std::{
    io,
    net::{IpAddr, SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio::{
    fs::File,
    io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader, BufWriter},
    net::{TcpSocket, TcpStream},
    sync::{oneshot, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::{debug, info, warn};

use crate::{
    config::{Config, PrivatePortPolicy, TlsRequired},
    fs::Sandbox,
    passive::{bind_listener, PassiveListener, PortPool},
    protocol::{
        addr::{self, canonical_ip, is_non_public},
        command::HELP_VERBS,
        Command, Line, LineReader, ParseError, Reply,
    },
    tls::{accept_data_tls, ControlStream, DataStream, DataTlsError},
};

/// State shared by all sessions of one server.
#[derive(Debug)]
pub struct Shared {
    /// Configuration.
    pub config: Arc<Config>,
    /// Passive pool (`None`: kernel-assigned ports).
    pub pool: Option<Arc<PortPool>>,
    /// The pooled range (`passive_mode = "pooled"`), used instead of `pool`.
    pub pooled: Option<Arc<crate::pooled::PooledPassive>>,
    /// Becomes `true` when the server drains.
    pub shutdown: watch::Receiver<bool>,
}

/// What a pooled PASV came to.
enum PooledOpen {
    /// A (client address, port) lease: the port to announce.
    Leased(u16),
    /// 425 was sent.
    Refused,
    /// Exhausted for this client, policy `fallback`: use a kernel port.
    Fallback,
}

/// A data-connection plan set up by PASV/EPSV/PORT/EPRT.
enum DataPlan {
    None,
    Passive {
        rx: oneshot::Receiver<io::Result<TcpStream>>,
        task: AbortOnDrop,
    },
    Active(SocketAddr),
}

/// Aborts the passive accept task when the plan is dropped or superseded,
/// which drops the listener and returns its port.
struct AbortOnDrop(Option<JoinHandle<()>>);

impl AbortOnDrop {
    /// Aborts and waits until the task (and so its listener) is gone.
    async fn finish(mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.abort();
        }
    }
}

/// Resolves once the watched flag is true (never, if the sender is gone).
async fn until_true(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

struct Session {
    shared: Arc<Shared>,
    cfg: Arc<Config>,
    peer: SocketAddr,
    local: SocketAddr,
    /// The control connection (replies are written through it too).
    reader: LineReader<ControlStream>,
    /// This session's TLS configuration (its own session cache), once
    /// `AUTH TLS` succeeded.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// `PBSZ` was given.
    pbsz: bool,
    /// `PROT P`: data connections are TLS.
    prot_private: bool,
    sandbox: Sandbox,
    pending_user: Option<String>,
    user: Option<String>,
    failures: u32,
    cwd: String,
    binary: bool,
    rest: u64,
    rnfr: Option<PathBuf>,
    epsv_all: bool,
    data: DataPlan,
    masquerade: Option<IpAddr>,
    last_transfer: Instant,
    started: Instant,
}

/// What a command handler wants next.
enum Flow {
    Continue,
    Close,
}

type Handled = io::Result<Flow>;

/// Serves one control connection to completion.
pub async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let peer = stream
        .peer_addr()
        .map(canon)
        .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
    let local = stream
        .local_addr()
        .map(canon)
        .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
    let _ = stream.set_nodelay(true);
    let cfg = Arc::clone(&shared.config);
    let (masq, class) = cfg.masquerade_for(local.ip(), peer.ip());
    let masquerade = masq.ip();
    if let Some(class) = class {
        debug!(class, "client matches class");
    }
    let mut s = Session {
        reader: LineReader::new(ControlStream::new(stream), cfg.max_line),
        tls: None,
        pbsz: false,
        prot_private: false,
        sandbox: Sandbox::new(cfg.root.clone()),
        shared,
        peer,
        local,
        pending_user: None,
        user: None,
        failures: 0,
        cwd: "/".into(),
        binary: false,
        rest: 0,
        rnfr: None,
        epsv_all: false,
        data: DataPlan::None,
        masquerade,
        last_transfer: Instant::now(),
        started: Instant::now(),
        cfg,
    };
    info!("FTP session opened");
    if let Err(e) = s.run().await {
        debug!(error = %e, "control connection error");
    }
    info!("FTP session closed");
}

fn canon(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(a.ip()), a.port())
}

impl Session {
    async fn reply(&mut self, code: u16, text: impl Into<String>) -> io::Result<()> {
        self.send(Reply::new(code, text)).await
    }

    async fn send(&mut self, reply: Reply) -> io::Result<()> {
        let w = self.reader.get_mut();
        w.write_all(reply.to_wire().as_bytes()).await?;
        w.flush().await
    }

    fn banner_addr(&self) -> IpAddr {
        self.masquerade.unwrap_or(self.local.ip())
    }

    async fn run(&mut self) -> io::Result<()> {
        let name = self
            .cfg
            .vhost_for(self.local.ip())
            .and_then(|v| v.server_name.clone())
            .unwrap_or_else(|| self.cfg.server_name.clone());
        let banner = format!("ftpnat Server ({name}) [{}]", self.banner_addr());
        self.reply(220, banner).await?;
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            let deadline = self.command_deadline();
            let line = tokio::select! {
                line = tokio::time::timeout_at(deadline, self.reader.next_line()) => line,
                _ = until_true(&mut shutdown) => {
                    self.reply(421, "Server shutting down, closing control connection").await?;
                    return Ok(());
                }
            };
            let line = match line {
                Err(_) => {
                    let which = if self.user.is_none() { "Login" } else { "Idle" };
                    info!("{which} timeout, closing control connection");
                    self.reply(421, format!("{which} timeout, closing control connection"))
                        .await?;
                    return Ok(());
                }
                Ok(line) => line?,
            };
            let text = match line {
                Line::Eof => return Ok(()),
                Line::TooLong => {
                    warn!(limit = self.cfg.max_line, "command line too long");
                    self.reply(500, "Command line too long").await?;
                    continue;
                }
                Line::Text(t) => t,
            };
            let cmd = match Command::parse(&text) {
                Ok(c) => c,
                Err(ParseError::Empty) => continue,
                Err(e @ ParseError::Unknown(_)) => {
                    self.reply(500, e.to_string()).await?;
                    continue;
                }
                Err(e) => {
                    self.reply(501, e.to_string()).await?;
                    continue;
                }
            };
            match cmd {
                Command::Pass(_) => debug!("PASS (hidden)"),
                ref c => {
                    debug!(command = %text.chars().take(200).collect::<String>(), verb = c.verb(), "command")
                }
            }
            if let Flow::Close = self.dispatch(cmd).await? {
                return Ok(());
            }
        }
    }

    fn command_deadline(&self) -> Instant {
        let idle = Instant::now() + self.cfg.timeout_idle;
        let no_transfer = self.last_transfer + self.cfg.timeout_no_transfer;
        let mut d = idle.min(no_transfer);
        if self.user.is_none() {
            d = d.min(self.started + self.cfg.timeout_login);
        }
        d
    }

    async fn dispatch(&mut self, cmd: Command) -> Handled {
        use Command::*;
        let pre_login = matches!(
            cmd,
            User(_)
                | Pass(_)
                | Quit
                | Syst
                | Feat
                | Opts(_)
                | Help
                | Noop
                | Auth(_)
                | Pbsz(_)
                | Prot(_)
                | Ccc
        );
        if matches!(cmd, User(_) | Pass(_))
            && self.cfg.tls_required != TlsRequired::Off
            && !self.reader.get_ref().is_tls()
        {
            info!("login refused: TLS required on the control connection");
            self.reply(
                530,
                "TLS required on the control connection: use AUTH TLS first",
            )
            .await?;
            return Ok(Flow::Continue);
        }
        if self.user.is_none() && !pre_login {
            self.reply(530, "Please login with USER and PASS").await?;
            return Ok(Flow::Continue);
        }
        let verb = cmd.verb();
        if self.cfg.deny.iter().any(|d| d == verb) {
            info!(verb, "command denied by [limits] deny");
            self.reply(501, format!("{verb}: Operation not permitted"))
                .await?;
            return Ok(Flow::Continue);
        }
        let writes = matches!(
            cmd,
            Stor(_) | Appe(_) | Dele(_) | Mkd(_) | Rmd(_) | Rnfr(_) | Rnto(_)
        );
        if writes && !self.cfg.anonymous_upload && self.user.as_deref().is_some_and(is_anonymous) {
            info!(verb, "anonymous write refused (anonymous_upload = false)");
            self.reply(550, format!("{verb}: Permission denied"))
                .await?;
            return Ok(Flow::Continue);
        }
        if !matches!(cmd, Rnto(_)) && !matches!(cmd, Rnfr(_)) {
            self.rnfr = None;
        }
        match cmd {
            User(name) => self.cmd_user(name).await,
            Pass(pw) => self.cmd_pass(pw).await,
            Quit => {
                self.reply(221, "Goodbye.").await?;
                Ok(Flow::Close)
            }
            Syst => self.ok(215, "UNIX Type: L8").await,
            Feat => {
                let tls_feats: &[&str] = if self.cfg.tls.is_some() {
                    &[" AUTH TLS", " CCC", " PBSZ", " PROT"]
                } else {
                    &[]
                };
                let feats = [
                    "Features:",
                    " EPRT",
                    " EPSV",
                    " MDTM",
                    " MLSD type*;size*;modify*;",
                    " REST STREAM",
                    " SIZE",
                    " TVFS",
                    " UTF8",
                    "End",
                ];
                let mut lines: Vec<String> = feats.iter().map(|s| s.to_string()).collect();
                let end = lines.pop().unwrap_or_default();
                lines.extend(tls_feats.iter().map(|s| s.to_string()));
                lines.push(end);
                self.send(Reply::multi(211, lines)).await?;
                Ok(Flow::Continue)
            }
            Opts(arg) => {
                if arg.eq_ignore_ascii_case("UTF8 ON") || arg.eq_ignore_ascii_case("UTF8") {
                    self.ok(200, "UTF8 set to on").await
                } else {
                    self.ok(501, format!("OPTS {arg} not understood")).await
                }
            }
            Pwd => {
                let q = self.cwd.replace('"', "\"\"");
                self.ok(257, format!("\"{q}\" is the current directory"))
                    .await
            }
            Cwd(p) => self.cmd_cwd(&p).await,
            Cdup => self.cmd_cwd("..").await,
            Type(t) => match t.to_ascii_uppercase().as_str() {
                "I" | "L 8" | "L8" => {
                    self.binary = true;
                    self.ok(200, "Type set to I").await
                }
                "A" | "A N" => {
                    self.binary = false;
                    self.ok(200, "Type set to A").await
                }
                _ => self.ok(504, format!("TYPE {t} not implemented")).await,
            },
            Mode(m) if m.eq_ignore_ascii_case("S") => self.ok(200, "Mode set to S").await,
            Mode(m) => self.ok(504, format!("MODE {m} not implemented")).await,
            Stru(s) if s.eq_ignore_ascii_case("F") => self.ok(200, "Structure set to F").await,
            Stru(s) => self.ok(504, format!("STRU {s} not implemented")).await,
            Pasv => self.cmd_pasv().await,
            Epsv(arg) => self.cmd_epsv(arg).await,
            Port(arg) => self.cmd_port(arg).await,
            Eprt(arg) => self.cmd_eprt(arg).await,
            Stat(Some(p)) => self.cmd_stat_path(p).await,
            List(arg) => self.cmd_list(arg, ListKind::Long).await,
            Nlst(arg) => self.cmd_list(arg, ListKind::Names).await,
            Mlsd(arg) => self.cmd_list(arg, ListKind::Machine).await,
            Retr(p) => self.cmd_retr(p).await,
            Stor(p) => self.cmd_store(p, false).await,
            Appe(p) => self.cmd_store(p, true).await,
            Rest(n) => match n.trim().parse::<u64>() {
                Ok(off) => {
                    self.rest = off;
                    self.ok(
                        350,
                        format!("Restarting at {off}. Send STORE or RETRIEVE to initiate transfer"),
                    )
                    .await
                }
                Err(_) => self.ok(501, format!("REST: invalid offset {n:?}")).await,
            },
            Dele(p) => {
                self.simple_fs(&p, 250, "DELE command successful", |path| {
                    std::fs::remove_file(path)
                })
                .await
            }
            Rmd(p) => {
                self.simple_fs(&p, 250, "RMD command successful", |path| {
                    std::fs::remove_dir(path)
                })
                .await
            }
            Mkd(p) => {
                let virt = Sandbox::virtual_path(&self.cwd, &p);
                let q = virt.replace('"', "\"\"");
                self.simple_fs(
                    &p,
                    257,
                    &format!("\"{q}\" - Directory successfully created"),
                    |path| std::fs::create_dir(path),
                )
                .await
            }
            Rnfr(p) => match self.resolve_existing(&p) {
                Ok(path) => {
                    self.rnfr = Some(path);
                    self.ok(350, "File or directory exists, ready for destination name")
                        .await
                }
                Err(e) => self.fs_error(&p, e).await,
            },
            Rnto(p) => match self.rnfr.take() {
                None => self.ok(503, "Bad sequence of commands: RNFR first").await,
                Some(from) => {
                    self.simple_fs(&p, 250, "Rename successful", move |to| {
                        std::fs::rename(&from, to)
                    })
                    .await
                }
            },
            Size(p) => match self.resolve_existing(&p).and_then(std::fs::metadata) {
                Ok(m) if m.is_file() => self.ok(213, m.len().to_string()).await,
                Ok(_) => self.ok(550, format!("{p}: not a regular file")).await,
                Err(e) => self.fs_error(&p, e).await,
            },
            Mdtm(p) => match self.resolve_existing(&p).and_then(std::fs::metadata) {
                Ok(m) => {
                    let t: chrono::DateTime<chrono::Utc> =
                        m.modified().unwrap_or(std::time::UNIX_EPOCH).into();
                    self.ok(213, t.format("%Y%m%d%H%M%S").to_string()).await
                }
                Err(e) => self.fs_error(&p, e).await,
            },
            Abor => {
                self.clear_data().await;
                self.ok(226, "ABOR command successful").await
            }
            Noop => self.ok(200, "NOOP command successful").await,
            Stat(_) => {
                let lines = self.status_lines();
                self.send(Reply::multi(211, lines)).await?;
                Ok(Flow::Continue)
            }
            Help => {
                let lines = vec![
                    "The following commands are recognized:".to_string(),
                    format!(" {HELP_VERBS}"),
                    "Direct comments to the administrator".to_string(),
                ];
                self.send(Reply::multi(214, lines)).await?;
                Ok(Flow::Continue)
            }
            NotImplemented(v) => self.ok(502, format!("{v} not implemented")).await,
            Auth(mech) => self.cmd_auth(mech).await,
            Pbsz(size) => {
                if !self.reader.get_ref().is_tls() {
                    return self.ok(503, "PBSZ needs AUTH TLS first").await;
                }
                self.pbsz = true;
                if size.trim() == "0" {
                    self.ok(200, "PBSZ=0").await
                } else {
                    self.ok(200, "PBSZ=0 (only 0 is meaningful for TLS)").await
                }
            }
            Prot(level) => self.cmd_prot(level).await,
            Ccc => self.cmd_ccc().await,
        }
    }

    async fn ok(&mut self, code: u16, text: impl Into<String>) -> Handled {
        self.reply(code, text).await?;
        Ok(Flow::Continue)
    }

    fn status_lines(&self) -> Vec<String> {
        vec![
            format!("Status of ftpnat server [{}]", self.banner_addr()),
            format!(" Connected from {}", self.peer.ip()),
            format!(
                " Logged in as {}",
                self.user.as_deref().unwrap_or("(nobody)")
            ),
            format!(" TYPE: {}", if self.binary { "BINARY" } else { "ASCII" }),
            format!(
                " Passive ports: {}",
                self.cfg
                    .passive_ports
                    .map_or("kernel-assigned".to_string(), |(lo, hi)| format!(
                        "{lo}-{hi}"
                    ))
            ),
            "End of status".into(),
        ]
    }

    // ---- login -------------------------------------------------------------

    async fn cmd_user(&mut self, name: String) -> Handled {
        if self.user.is_some() {
            return self.ok(503, "You are already logged in").await;
        }
        let anon = is_anonymous(&name);
        self.pending_user = Some(name.clone());
        if anon && self.cfg.anonymous {
            self.ok(
                331,
                "Anonymous login ok, send your complete email address as your password",
            )
            .await
        } else {
            // Same answer for unknown users and real ones.
            self.ok(
                331,
                format!(
                    "Password required for {}",
                    name.chars().take(64).collect::<String>()
                ),
            )
            .await
        }
    }

    async fn cmd_pass(&mut self, pw: String) -> Handled {
        let Some(name) = self.pending_user.take() else {
            return self.ok(503, "Login with USER first").await;
        };
        let ok = if is_anonymous(&name) {
            self.cfg.anonymous
        } else if let Some(u) = self.cfg.users.iter().find(|u| u.name == name) {
            let hash = u.password_hash.clone();
            tokio::task::spawn_blocking(move || verify_password(&hash, &pw))
                .await
                .unwrap_or(false)
        } else {
            false
        };
        if ok {
            info!(user = %name, "login successful");
            self.user = Some(name);
            return self.ok(230, "User logged in, proceed").await;
        }
        self.failures += 1;
        warn!(user = %name.chars().take(64).collect::<String>(), failures = self.failures, "login failed");
        tokio::time::sleep(self.cfg.login_failure_delay).await;
        if self.failures >= self.cfg.max_login_failures {
            self.reply(530, "Login incorrect.").await?;
            self.reply(421, "Too many failed logins, closing control connection")
                .await?;
            return Ok(Flow::Close);
        }
        self.ok(530, "Login incorrect.").await
    }

    // ---- navigation ------------------------------------------------------

    fn resolve_existing(&self, arg: &str) -> io::Result<PathBuf> {
        let virt = Sandbox::virtual_path(&self.cwd, arg);
        let path = self.sandbox.resolve(&virt)?;
        std::fs::symlink_metadata(&path)?;
        Ok(path)
    }

    async fn cmd_cwd(&mut self, arg: &str) -> Handled {
        let virt = Sandbox::virtual_path(&self.cwd, arg);
        match self.sandbox.resolve(&virt).and_then(std::fs::metadata) {
            Ok(m) if m.is_dir() => {
                self.cwd = virt;
                self.ok(250, "CWD command successful").await
            }
            Ok(_) => self.ok(550, format!("{arg}: Not a directory")).await,
            Err(e) => self.fs_error(arg, e).await,
        }
    }

    async fn fs_error(&mut self, arg: &str, e: io::Error) -> Handled {
        let arg: String = arg.chars().take(256).collect();
        let why = match e.kind() {
            io::ErrorKind::NotFound => "No such file or directory".to_string(),
            io::ErrorKind::PermissionDenied => "Permission denied".to_string(),
            _ => e.to_string(),
        };
        self.ok(550, format!("{arg}: {why}")).await
    }

    async fn simple_fs(
        &mut self,
        arg: &str,
        code: u16,
        text: &str,
        op: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Handled {
        let virt = Sandbox::virtual_path(&self.cwd, arg);
        if virt == "/" {
            return self
                .fs_error(arg, io::Error::from(io::ErrorKind::PermissionDenied))
                .await;
        }
        match self.sandbox.resolve(&virt).and_then(|p| op(&p)) {
            Ok(()) => self.ok(code, text.to_string()).await,
            Err(e) => self.fs_error(arg, e).await,
        }
    }

    // ---- data connection set-up --------------------------------------------

    async fn cmd_pasv(&mut self) -> Handled {
        if self.epsv_all {
            return self
                .ok(500, "Illegal PASV command, EPSV ALL in effect")
                .await;
        }
        let IpAddr::V4(local_v4) = self.local.ip() else {
            return self
                .ok(500, "Illegal PASV command on an IPv6 connection, use EPSV")
                .await;
        };
        let port = match self.open_passive().await? {
            Some(p) => p,
            None => return Ok(Flow::Continue),
        };
        let shown = match self.masquerade {
            Some(IpAddr::V4(m)) => m,
            _ => local_v4,
        };
        let addr = SocketAddrV4::new(shown, port);
        info!(reply_addr = %addr, "PASV");
        self.ok(227, addr::format_pasv_text(addr)).await
    }

    async fn cmd_epsv(&mut self, arg: Option<String>) -> Handled {
        let family = if self.local.is_ipv4() { "1" } else { "2" };
        match arg.as_deref().map(str::trim) {
            None => {}
            Some(a) if a.eq_ignore_ascii_case("ALL") => {
                self.epsv_all = true;
                return self.ok(200, "EPSV ALL command successful").await;
            }
            Some(a) if a == family => {}
            Some("1") | Some("2") => {
                return self
                    .ok(
                        522,
                        format!("Network protocol not supported, use ({family})"),
                    )
                    .await;
            }
            Some(other) => {
                return self
                    .ok(501, format!("EPSV: invalid argument {other:?}"))
                    .await
            }
        }
        let Some(port) = self.open_passive().await? else {
            return Ok(Flow::Continue);
        };
        info!(port, "EPSV");
        self.ok(229, addr::format_epsv_text(port)).await
    }

    /// Opens the session's passive listener; `Ok(None)` when a 425 was sent.
    async fn open_passive(&mut self) -> io::Result<Option<u16>> {
        self.clear_data().await; // supersede: releases any pending port first
        let ip = self.local.ip();
        if let Some(pooled) = self.shared.pooled.clone() {
            match self.open_pooled(&pooled).await? {
                PooledOpen::Leased(port) => return Ok(Some(port)),
                PooledOpen::Refused => return Ok(None),
                PooledOpen::Fallback => {}
            }
        }
        let opened = match &self.shared.pool {
            _ if self.shared.pooled.is_some() => {
                // Pooled range exhausted for this client, policy fallback.
                bind_listener(SocketAddr::new(ip, 0))
                    .map(|listener| PassiveListener {
                        listener,
                        lease: None,
                        fallback: true,
                    })
                    .map_err(Into::into)
            }
            Some(pool) => {
                let pool = Arc::clone(pool);
                pool.open(ip, self.cfg.passive_exhausted, self.cfg.passive_wait)
                    .await
            }
            None => bind_listener(SocketAddr::new(ip, 0))
                .map(|listener| PassiveListener {
                    listener,
                    lease: None,
                    fallback: false,
                })
                .map_err(Into::into),
        };
        let pl = match opened {
            Ok(pl) => pl,
            Err(e) => {
                let (lo, hi) = self.cfg.passive_ports.unwrap_or((0, 0));
                let policy = self.cfg.passive_exhausted;
                warn!(policy = ?policy, "unable to find open port in PassivePorts range {lo}-{hi}: {e}");
                self.reply(
                    425,
                    "Unable to open passive connection: no free port in the passive range",
                )
                .await?;
                return Ok(None);
            }
        };
        if pl.fallback {
            let (lo, hi) = self.cfg.passive_ports.unwrap_or((0, 0));
            warn!(
                "unable to find open port in PassivePorts range {lo}-{hi}: defaulting to INPORT_ANY (consider defining a larger PassivePorts range)"
            );
        }
        let port = pl.listener.local_addr()?.port();
        let (tx, rx) = oneshot::channel();
        let peer = self.peer.ip();
        let cfg = Arc::clone(&self.cfg);
        let deadline = Instant::now() + cfg.timeout_data_connect;
        let span = tracing::Span::current();
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let res = accept_data(pl, peer, &cfg, deadline).await;
                let _ = tx.send(res);
            },
            span,
        ));
        self.data = DataPlan::Passive {
            rx,
            task: AbortOnDrop(Some(task)),
        };
        Ok(Some(port))
    }

    /// Pooled mode: leases (peer address, port) with no system call; the
    /// accept loops deliver the matching connection.
    async fn open_pooled(
        &mut self,
        pooled: &Arc<crate::pooled::PooledPassive>,
    ) -> io::Result<PooledOpen> {
        use crate::config::ExhaustedPolicy;
        let peer = self.peer.ip();
        let lease = match self.cfg.passive_exhausted {
            ExhaustedPolicy::Wait => pooled.lease_wait(peer, self.cfg.passive_wait).await,
            _ => pooled.try_lease(peer),
        };
        let Some(lease) = lease else {
            if self.cfg.passive_exhausted == ExhaustedPolicy::Fallback {
                return Ok(PooledOpen::Fallback);
            }
            pooled.count_refused();
            let (lo, hi) = pooled.range();
            warn!(policy = ?self.cfg.passive_exhausted, "every port of the pooled range {lo}-{hi} is leased to {peer}");
            self.reply(
                425,
                "Unable to open passive connection: no free port in the passive range",
            )
            .await?;
            return Ok(PooledOpen::Refused);
        };
        let port = lease.port();
        let (tx, rx) = oneshot::channel();
        let deadline = Instant::now() + self.cfg.timeout_data_connect;
        let span = tracing::Span::current();
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut lease = lease;
                let res = match tokio::time::timeout_at(deadline, &mut lease.connection).await {
                    Ok(Ok(stream)) => Ok(stream),
                    Ok(Err(_)) => Err(io::Error::other("pooled lease ended")),
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no data connection within data_connect",
                    )),
                };
                drop(lease);
                let _ = tx.send(res);
            },
            span,
        ));
        self.data = DataPlan::Passive {
            rx,
            task: AbortOnDrop(Some(task)),
        };
        Ok(PooledOpen::Leased(port))
    }

    async fn cmd_port(&mut self, arg: String) -> Handled {
        if self.epsv_all {
            return self
                .ok(500, "Illegal PORT command, EPSV ALL in effect")
                .await;
        }
        let target = match addr::parse_host_port(&arg) {
            Ok(a) => SocketAddr::V4(a),
            Err(e) => {
                warn!("Refused PORT {arg} ({e})");
                return self.ok(501, "Illegal PORT command").await;
            }
        };
        self.set_active("PORT", &arg, target).await
    }

    async fn cmd_eprt(&mut self, arg: String) -> Handled {
        if self.epsv_all {
            return self
                .ok(500, "Illegal EPRT command, EPSV ALL in effect")
                .await;
        }
        let target = match addr::parse_eprt(&arg) {
            Ok(a) => a,
            Err(addr::AddrError::Protocol(_)) => {
                return self
                    .ok(522, "Network protocol not supported, use (1,2)")
                    .await;
            }
            Err(e) => {
                warn!("Refused EPRT {arg} ({e})");
                return self.ok(501, "Illegal EPRT command").await;
            }
        };
        self.set_active("EPRT", &arg, target).await
    }

    /// Drops the current plan; a pending passive listener is closed and its
    /// port returned before this returns.
    async fn clear_data(&mut self) {
        if let DataPlan::Passive { task, .. } = std::mem::replace(&mut self.data, DataPlan::None) {
            task.finish().await;
        }
    }

    async fn set_active(&mut self, verb: &str, arg: &str, mut target: SocketAddr) -> Handled {
        self.clear_data().await;
        let peer = self.peer.ip();
        let ip = canonical_ip(target.ip());
        target.set_ip(ip);
        if ip != peer {
            let substitute = self.cfg.port_private_address == PrivatePortPolicy::Substitute
                && self.masquerade.is_some()
                && is_non_public(ip)
                && !is_non_public(peer);
            if substitute {
                info!("client sent RFC1918 address '{ip}' in {verb} command, ignoring it and using '{peer}'");
                target.set_ip(peer);
            } else if !self.cfg.foreign_allowed(ip) {
                warn!("Refused {verb} {arg} (address mismatch)");
                return self.ok(500, format!("Illegal {verb} command")).await;
            }
        }
        if target.port() < 1024 {
            warn!(
                "Refused {verb} {arg} (port {} below 1024, possible bounce attack)",
                target.port()
            );
            return self.ok(500, format!("Illegal {verb} command")).await;
        }
        info!(target = %target, "{verb} accepted");
        self.data = DataPlan::Active(target);
        self.ok(200, format!("{verb} command successful")).await
    }

    // ---- FTPS ----------------------------------------------------------------

    async fn cmd_auth(&mut self, mech: String) -> Handled {
        let mech = mech.trim().to_ascii_uppercase();
        if !["TLS", "TLS-C", "SSL"].contains(&mech.as_str()) {
            return self
                .ok(504, format!("AUTH {mech} not supported (use AUTH TLS)"))
                .await;
        }
        let Some(setup) = self.cfg.tls.clone() else {
            return self
                .ok(502, "AUTH TLS not available: no tls_cert configured")
                .await;
        };
        if self.reader.get_ref().is_tls() {
            return self.ok(503, "TLS is already on").await;
        }
        if self.reader.buffered() > 0 {
            // Commands pipelined behind AUTH would cross into TLS unprotected.
            warn!("data pipelined after AUTH TLS, closing control connection");
            self.reply(503, "Nothing may follow AUTH TLS before the handshake")
                .await?;
            return Ok(Flow::Close);
        }
        self.reply(234, format!("AUTH {mech} successful")).await?;
        let config = self.tls.get_or_insert_with(|| setup.for_session()).clone();
        let deadline = self.cfg.timeout_login;
        match tokio::time::timeout(deadline, self.reader.get_mut().start_tls(config)).await {
            Ok(Ok(())) => {
                info!(tls = %self.reader.get_ref().describe(), "TLS on the control connection");
                // RFC 4217: a new security exchange resets the login.
                self.user = None;
                self.pending_user = None;
                Ok(Flow::Continue)
            }
            Ok(Err(e)) => {
                warn!(error = %e, "TLS handshake on the control connection failed");
                Ok(Flow::Close)
            }
            Err(_) => {
                warn!("TLS handshake on the control connection timed out");
                Ok(Flow::Close)
            }
        }
    }

    async fn cmd_prot(&mut self, level: String) -> Handled {
        if !self.reader.get_ref().is_tls() && self.tls.is_none() {
            return self.ok(503, "PROT needs AUTH TLS first").await;
        }
        if !self.pbsz {
            return self.ok(503, "PROT needs PBSZ first").await;
        }
        match level.trim().to_ascii_uppercase().as_str() {
            "P" => {
                self.prot_private = true;
                self.ok(200, "Protection set to Private").await
            }
            "C" if self.cfg.tls_required == TlsRequired::All => {
                self.ok(534, "PROT C refused: tls_required = all").await
            }
            "C" => {
                self.prot_private = false;
                self.ok(200, "Protection set to Clear").await
            }
            "S" | "E" => self.ok(536, "PROT S and E are not supported").await,
            other => self.ok(504, format!("PROT {other} not understood")).await,
        }
    }

    async fn cmd_ccc(&mut self) -> Handled {
        if !self.reader.get_ref().is_tls() {
            return self.ok(533, "CCC needs a TLS control connection").await;
        }
        if self.cfg.tls_required != TlsRequired::Off {
            return self.ok(534, "CCC refused: tls_required").await;
        }
        if self.reader.buffered() > 0 {
            warn!("data pipelined after CCC, closing control connection");
            self.reply(503, "Nothing may follow CCC before the TLS closure")
                .await?;
            return Ok(Flow::Close);
        }
        self.reply(
            200,
            "Clear command channel: TLS off on the control connection",
        )
        .await?;
        match tokio::time::timeout(self.cfg.timeout_idle, self.reader.get_mut().stop_tls()).await {
            Ok(Ok(())) => {
                info!("CCC: control connection back in clear text (data protection unchanged)");
                Ok(Flow::Continue)
            }
            Ok(Err(e)) => {
                warn!(error = %e, "CCC: TLS closure failed");
                Ok(Flow::Close)
            }
            Err(_) => {
                warn!("CCC: no close_notify from the client");
                Ok(Flow::Close)
            }
        }
    }

    /// TLS on a fresh data connection when `PROT P` is in effect.
    async fn protect(&mut self, stream: TcpStream) -> Result<DataStream, String> {
        if !self.prot_private {
            return Ok(DataStream::Plain(stream));
        }
        let Some(config) = self.tls.clone() else {
            return Ok(DataStream::Plain(stream));
        };
        let reuse = self.cfg.tls_session_reuse;
        let accept = accept_data_tls(stream, config, reuse);
        match tokio::time::timeout(self.cfg.timeout_data_connect, accept).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(DataTlsError::NotResumed)) => {
                warn!("TLS data connection refused: it did not resume this session's TLS session (tls_session_reuse)");
                Err("TLS session of the control connection not resumed".into())
            }
            Ok(Err(DataTlsError::Handshake(e))) => {
                warn!(error = %e, "TLS handshake on the data connection failed");
                Err(format!("TLS handshake failed: {e}"))
            }
            Err(_) => {
                warn!("TLS handshake on the data connection timed out");
                Err("TLS handshake timed out".into())
            }
        }
    }

    /// Turns the current plan into a connected data stream.
    async fn open_data(&mut self) -> io::Result<TcpStream> {
        match std::mem::replace(&mut self.data, DataPlan::None) {
            DataPlan::None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "use PORT or PASV first",
            )),
            DataPlan::Passive { mut rx, .. } => (&mut rx)
                .await
                .unwrap_or_else(|_| Err(io::Error::other("passive listener closed"))),
            DataPlan::Active(target) => {
                let socket = if target.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                if self.local.ip().is_ipv4() == target.is_ipv4() {
                    socket.bind(SocketAddr::new(self.local.ip(), 0))?;
                }
                match tokio::time::timeout(self.cfg.timeout_data_connect, socket.connect(target))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection timed out",
                    )),
                }
            }
        }
    }

    // ---- transfers ---------------------------------------------------------

    /// Sends 150, opens the data connection and runs `job` on it while the
    /// control connection keeps answering ABOR/STAT/NOOP.
    async fn transfer<F, Fut>(&mut self, what: &str, job: F) -> Handled
    where
        F: FnOnce(DataStream) -> Fut,
        Fut: std::future::Future<Output = io::Result<u64>> + Send + 'static,
    {
        if matches!(self.data, DataPlan::None) {
            return self
                .ok(
                    425,
                    "Unable to build data connection: use PORT or PASV first",
                )
                .await;
        }
        if self.cfg.tls_required == TlsRequired::All && !self.prot_private {
            return self
                .ok(
                    521,
                    "Data connections must be protected: use PBSZ 0 and PROT P",
                )
                .await;
        }
        let mode = if self.binary { "BINARY" } else { "ASCII" };
        self.reply(
            150,
            format!("Opening {mode} mode data connection for {what}"),
        )
        .await?;
        let stream = match self.open_data().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "data connection failed");
                return self
                    .ok(
                        425,
                        format!("Unable to build data connection: {}", io_reason(&e)),
                    )
                    .await;
            }
        };
        debug!(data_peer = ?stream.peer_addr().ok(), data_local = ?stream.local_addr().ok(), tls = self.prot_private, "data connection open");
        let stream = match self.protect(stream).await {
            Ok(s) => s,
            Err(why) => {
                return self
                    .ok(425, format!("Unable to build data connection: {why}"))
                    .await
            }
        };
        let mut task = tokio::spawn(job(stream));
        let result = loop {
            tokio::select! {
                r = &mut task => break r.unwrap_or_else(|e| Err(io::Error::other(e.to_string()))),
                line = self.reader.next_line() => match line? {
                    Line::Eof => { task.abort(); return Ok(Flow::Close); }
                    Line::TooLong => self.reply(500, "Command line too long").await?,
                    Line::Text(t) => match Command::parse(&t) {
                        Ok(Command::Abor) => {
                            task.abort();
                            info!(what, "transfer aborted by client");
                            self.reply(426, "Connection closed; transfer aborted").await?;
                            self.reply(226, "Abort successful").await?;
                            self.last_transfer = Instant::now();
                            return Ok(Flow::Continue);
                        }
                        Ok(Command::Noop) => self.reply(200, "NOOP command successful").await?,
                        Ok(Command::Stat(None)) => {
                            let lines = self.status_lines();
                            self.send(Reply::multi(211, lines)).await?;
                        }
                        Ok(Command::Quit) => {
                            task.abort();
                            self.reply(221, "Goodbye.").await?;
                            return Ok(Flow::Close);
                        }
                        _ => self.reply(503, "Transfer in progress; only ABOR, STAT, NOOP, QUIT").await?,
                    },
                },
            }
        };
        self.last_transfer = Instant::now();
        match result {
            Ok(bytes) => {
                info!(what, bytes, "transfer complete");
                self.ok(226, "Transfer complete").await
            }
            Err(e) => {
                warn!(what, error = %e, "transfer failed");
                self.ok(426, format!("Transfer aborted: {}", io_reason(&e)))
                    .await
            }
        }
    }

    async fn cmd_retr(&mut self, arg: String) -> Handled {
        let offset = std::mem::take(&mut self.rest);
        let path = match self.resolve_existing(&arg) {
            Ok(p) if p.is_file() => p,
            Ok(_) => return self.ok(550, format!("{arg}: Not a regular file")).await,
            Err(e) => return self.fs_error(&arg, e).await,
        };
        let file = match File::open(&path).await {
            Ok(f) => f,
            Err(e) => return self.fs_error(&arg, e).await,
        };
        let ascii = !self.binary;
        self.transfer(&arg.clone(), move |stream| {
            send_file(stream, file, offset, ascii)
        })
        .await
    }

    async fn cmd_store(&mut self, arg: String, append: bool) -> Handled {
        let offset = std::mem::take(&mut self.rest);
        let virt = Sandbox::virtual_path(&self.cwd, &arg);
        let path = match self.sandbox.resolve(&virt) {
            Ok(p) if virt != "/" && !p.is_dir() => p,
            Ok(_) => return self.ok(550, format!("{arg}: Is a directory")).await,
            Err(e) => return self.fs_error(&arg, e).await,
        };
        if path.parent().is_none_or(|p| !p.is_dir()) {
            return self
                .fs_error(&arg, io::Error::from(io::ErrorKind::NotFound))
                .await;
        }
        let keep = if append { u64::MAX } else { offset };
        let ascii = !self.binary;
        self.transfer(&arg.clone(), move |stream| {
            recv_file(stream, path, keep, ascii)
        })
        .await
    }

    async fn cmd_list(&mut self, arg: Option<String>, kind: ListKind) -> Handled {
        // Ignore ls-style options ("-la") that many clients send.
        let arg = arg
            .map(|a| {
                a.split_whitespace()
                    .filter(|w| !w.starts_with('-'))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let virt = Sandbox::virtual_path(&self.cwd, &arg);
        let listing = match self
            .sandbox
            .resolve(&virt)
            .and_then(|p| render_listing(&p, kind))
        {
            Ok(l) => l,
            Err(e) => return self.fs_error(&arg, e).await,
        };
        let what = if arg.is_empty() { virt } else { arg };
        self.transfer(&format!("file list {what}"), move |mut stream| async move {
            stream.write_all(listing.as_bytes()).await?;
            stream.shutdown().await?;
            Ok(listing.len() as u64)
        })
        .await
    }

    async fn cmd_stat_path(&mut self, arg: String) -> Handled {
        let virt = Sandbox::virtual_path(&self.cwd, &arg);
        match self
            .sandbox
            .resolve(&virt)
            .and_then(|p| render_listing(&p, ListKind::Long))
        {
            Ok(l) => {
                let mut lines = vec![format!("Status of {arg}:")];
                lines.extend(l.lines().map(|s| s.to_string()));
                lines.push("End of status".into());
                self.send(Reply::multi(213, lines)).await?;
                Ok(Flow::Continue)
            }
            Err(e) => self.fs_error(&arg, e).await,
        }
    }
}

fn is_anonymous(name: &str) -> bool {
    name.eq_ignore_ascii_case("anonymous") || name.eq_ignore_ascii_case("ftp")
}

fn verify_password(hash: &str, pw: &str) -> bool {
    use argon2::{password_hash::PasswordHash, Argon2, PasswordVerifier};
    PasswordHash::new(hash)
        .map(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        io::ErrorKind::TimedOut => "Connection timed out".into(),
        io::ErrorKind::ConnectionReset => "Connection reset by peer".into(),
        _ => e.to_string(),
    }
}

/// Accepts the data connection for a passive plan. Connections from other
/// addresses than the control peer are closed and logged; the listener (and
/// its port lease) is dropped on return.
async fn accept_data(
    pl: PassiveListener,
    peer: IpAddr,
    cfg: &Config,
    deadline: Instant,
) -> io::Result<TcpStream> {
    loop {
        match tokio::time::timeout_at(deadline, pl.listener.accept()).await {
            Err(_) => {
                info!(
                    port = pl.listener.local_addr().map(|a| a.port()).unwrap_or(0),
                    "passive data connection not made within data_connect; port released"
                );
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no data connection within the data_connect timeout",
                ));
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok((stream, from))) => {
                let from_ip = canonical_ip(from.ip());
                if from_ip == peer || cfg.foreign_allowed(from_ip) {
                    return Ok(stream);
                }
                warn!(from = %from, expected = %peer, "SECURITY VIOLATION: passive data connection from a foreign address, closed");
                drop(stream);
            }
        }
    }
}

const CHUNK: usize = 256 * 1024;

async fn send_file(
    mut stream: DataStream,
    mut file: File,
    offset: u64,
    ascii: bool,
) -> io::Result<u64> {
    if offset > 0 {
        file.seek(io::SeekFrom::Start(offset)).await?;
    }
    let total = if ascii {
        let mut reader = BufReader::with_capacity(CHUNK, file);
        let mut out = BufWriter::with_capacity(CHUNK, &mut stream);
        let mut buf = vec![0u8; CHUNK];
        let mut conv = Vec::with_capacity(CHUNK * 2);
        let mut total = 0u64;
        let mut prev_cr = false;
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            conv.clear();
            for &b in &buf[..n] {
                if b == b'\n' && !prev_cr {
                    conv.push(b'\r');
                }
                conv.push(b);
                prev_cr = b == b'\r';
            }
            out.write_all(&conv).await?;
            total += conv.len() as u64;
        }
        out.flush().await?;
        total
    } else {
        match &mut stream {
            DataStream::Plain(tcp) => send_binary(tcp, file.into_std().await, offset).await?,
            tls => {
                let mut reader = BufReader::with_capacity(CHUNK, file);
                let n = tokio::io::copy_buf(&mut reader, tls).await?;
                tls.flush().await?;
                n
            }
        }
    };
    stream.shutdown().await?;
    Ok(total)
}

/// Image-type RETR: sendfile(2) from the page cache straight into the
/// socket (no copy through user space), driven by the socket's readiness;
/// cancel-safe at every await (ABOR drops it).
async fn send_binary(stream: &TcpStream, file: std::fs::File, offset: u64) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let len = file.metadata()?.len();
    let mut off = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    let mut total = 0u64;
    while (off as u64) < len {
        stream.writable().await?;
        let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
            let want = (len - off as u64).min(4 * CHUNK as u64) as usize;
            // SAFETY: both descriptors are open for the whole call and `off`
            // is a valid, exclusively borrowed offset.
            let n = unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut off, want) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as u64)
            }
        });
        match sent {
            Ok(0) => break, // the file shrank under us
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// Image-type upload: one blocking thread reads the socket and writes the
/// file in large blocks (no per-block hand-off between threads). If the
/// transfer is dropped (ABOR, session end), the socket is shut down so the
/// thread's read returns and it ends.
async fn recv_binary(stream: TcpStream, mut out: std::fs::File) -> io::Result<u64> {
    use std::io::{Read, Write};
    let mut sock = stream.into_std()?;
    sock.set_nonblocking(false)?;
    let handle = sock.try_clone()?;
    struct ShutdownOnDrop(Option<std::net::TcpStream>);
    impl Drop for ShutdownOnDrop {
        fn drop(&mut self) {
            if let Some(s) = self.0.take() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
    let mut guard = ShutdownOnDrop(Some(handle));
    let total = tokio::task::spawn_blocking(move || -> io::Result<u64> {
        let mut buf = vec![0u8; 4 * CHUNK];
        let mut total = 0u64;
        loop {
            let n = match sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            out.write_all(&buf[..n])?;
            total += n as u64;
        }
        out.flush()?;
        Ok(total)
    })
    .await
    .map_err(io::Error::other)??;
    guard.0 = None; // finished normally: nothing to interrupt
    Ok(total)
}

/// Receives into a temporary file next to `path` and renames it into place
/// only on success. `keep` bytes of the existing file are kept first (REST
/// offset for STOR, `u64::MAX` for APPE).
async fn recv_file(stream: DataStream, path: PathBuf, keep: u64, ascii: bool) -> io::Result<u64> {
    let dir = path.parent().unwrap_or(Path::new("/")).to_owned();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.ftpnat-upload-{:016x}",
        rand::random::<u64>()
    ));
    let result = async {
        let mut out = File::create(&tmp).await?;
        if keep > 0 {
            if let Ok(existing) = File::open(&path).await {
                tokio::io::copy(&mut existing.take(keep), &mut out).await?;
            }
        }
        let mut stream = match stream {
            DataStream::Plain(tcp) if !ascii => {
                let out = out.into_std().await;
                let total = recv_binary(tcp, out).await?;
                tokio::fs::rename(&tmp, &path).await?;
                return Ok(total);
            }
            other => other,
        };
        let mut out = BufWriter::with_capacity(CHUNK, out);
        let mut total = 0u64;
        if ascii {
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                let conv: Vec<u8> = buf[..n].iter().copied().filter(|b| *b != b'\r').collect();
                out.write_all(&conv).await?;
                total += n as u64;
            }
        } else {
            // Large reads, so the file sees few large writes.
            let mut buf = vec![0u8; 4 * CHUNK];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).await?;
                total += n as u64;
            }
        }
        out.flush().await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(total)
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

#[derive(Clone, Copy)]
enum ListKind {
    Long,
    Names,
    Machine,
}

fn render_listing(path: &Path, kind: ListKind) -> io::Result<String> {
    let meta = std::fs::metadata(path)?;
    let mut entries: Vec<(String, std::fs::Metadata)> = if meta.is_dir() {
        std::fs::read_dir(path)?
            .filter_map(Result::ok)
            .filter_map(|e| {
                Some((
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().ok()?,
                ))
            })
            .filter(|(n, _)| !n.contains(".ftpnat-upload-"))
            .collect()
    } else {
        vec![(
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            meta,
        )]
    };
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (name, m) in entries {
        let mtime: chrono::DateTime<chrono::Utc> =
            m.modified().unwrap_or(std::time::UNIX_EPOCH).into();
        match kind {
            ListKind::Names => out.push_str(&format!("{name}\r\n")),
            ListKind::Long => {
                let ty = if m.is_dir() { 'd' } else { '-' };
                out.push_str(&format!(
                    "{ty}rw-r--r--   1 ftp      ftp      {:>10} {} {name}\r\n",
                    m.len(),
                    mtime.format("%b %d %H:%M")
                ));
            }
            ListKind::Machine => {
                let ty = if m.is_dir() { "dir" } else { "file" };
                out.push_str(&format!(
                    "type={ty};size={};modify={}; {name}\r\n",
                    m.len(),
                    mtime.format("%Y%m%d%H%M%S")
                ));
            }
        }
    }
    Ok(out)
}
