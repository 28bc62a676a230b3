//! One control connection: login, the command state machine, data connections.
//!
//! The state machine is split by concern, one file per command family:
//! * [`login`](self::login) — USER/PASS and the login policy.
//! * [`fs`](self::fs) — navigation and file operations (CWD, DELE, MKD, RNFR…).
//! * [`data`](self::data) — data-connection set-up: PASV/EPSV/PORT/EPRT, the
//!   passive accept with port-theft protection, the PORT/EPRT policy as a
//!   pure function.
//! * [`transfer`](self::transfer) — RETR/STOR/APPE and the transfer task
//!   that runs while the control connection keeps reading.
//! * [`listing`](self::listing) — LIST/NLST/MLSD/STAT rendering, pure.
//! * [`tls`](self::tls) — AUTH TLS, PBSZ, PROT, CCC.
//! * [`info`](self::info) — SYST, FEAT, HELP, STAT, OPTS.
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

mod data;
mod fs;
mod info;
mod listing;
mod login;
mod tls;
mod transfer;

use std::{
    io,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use tokio::{
    io::AsyncWriteExt,
    net::TcpStream,
    sync::{watch, Semaphore},
    time::Instant,
};
use tracing::{debug, info, warn};

use crate::{
    admission::{Admission, Ticket},
    ban::BanTable,
    config::{Config, TlsRequired},
    fs::Sandbox,
    passive::PortPool,
    protocol::{addr::canonical_ip, Command, LineReader, ParseError, RawLine, Reply},
    tls::ControlStream,
};

use self::{data::DataPlan, listing::ListKind};

/// State shared by all sessions of one server.
#[derive(Debug)]
pub struct Shared {
    /// Configuration.
    pub config: Arc<Config>,
    /// Session counts per client address.
    pub admission: Arc<Admission>,
    /// Failed logins and bans per client address.
    pub bans: Mutex<BanTable>,
    /// Bounds the password verifications running at once
    /// (`limits.password_checks`): argon2 holds ~19 MiB each.
    pub password_checks: Semaphore,
    /// Passive pool (`None`: kernel-assigned ports).
    pub pool: Option<Arc<PortPool>>,
    /// The pooled range (`passive_mode = "pooled"`), used instead of `pool`.
    pub pooled: Option<Arc<crate::pooled::PooledPassive>>,
    /// Becomes `true` when the server drains.
    pub shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// The shared state of a server with `config`; `shutdown` turns true
    /// when it drains.
    pub fn new(config: Arc<Config>, shutdown: watch::Receiver<bool>) -> Shared {
        let admission = Admission::new(crate::admission::Limits {
            max_clients: config.max_clients,
            max_per_ip: config.max_clients_per_ip,
            max_unauthenticated_per_ip: config.max_unauthenticated_per_ip,
        });
        Shared {
            admission,
            bans: Mutex::new(BanTable::new(config.ban)),
            password_checks: Semaphore::new(config.password_checks),
            config,
            pool: None,
            pooled: None,
            shutdown,
        }
    }

    /// How long `ip` stays banned, if it is.
    pub fn banned(&self, ip: IpAddr) -> Option<std::time::Duration> {
        self.bans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .banned(ip, Instant::now())
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
    /// This session's place in the admission counts.
    ticket: Ticket,
    pending_user: Option<String>,
    user: Option<String>,
    failures: u32,
    /// The current directory, a virtual path (bytes).
    cwd: Vec<u8>,
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

/// Serves one control connection to completion; `ticket` is its admission.
pub async fn serve(stream: TcpStream, shared: Arc<Shared>, ticket: Ticket) {
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
        ticket,
        shared,
        peer,
        local,
        pending_user: None,
        user: None,
        failures: 0,
        cwd: b"/".to_vec(),
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

/// Whether a user name is one of the anonymous aliases.
fn is_anonymous(name: &str) -> bool {
    name.eq_ignore_ascii_case("anonymous") || name.eq_ignore_ascii_case("ftp")
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

    /// Sends a reply and continues the session.
    async fn ok(&mut self, code: u16, text: impl Into<String>) -> Handled {
        self.reply(code, text).await?;
        Ok(Flow::Continue)
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
                line = tokio::time::timeout_at(deadline, self.reader.next_raw()) => line,
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
                RawLine::Eof => return Ok(()),
                RawLine::TooLong => {
                    warn!(limit = self.cfg.max_line, "command line too long");
                    self.reply(500, "Command line too long").await?;
                    continue;
                }
                RawLine::Bytes(t) => t,
            };
            let Some(cmd) = self.parse(&text).await? else {
                continue;
            };
            if let Flow::Close = self.dispatch(cmd).await? {
                return Ok(());
            }
        }
    }

    /// Parses a command line; a parse error is answered here (`None`).
    async fn parse(&mut self, text: &[u8]) -> io::Result<Option<Command>> {
        let cmd = match Command::parse_bytes(text) {
            Ok(c) => c,
            Err(ParseError::Empty) => return Ok(None),
            Err(e @ ParseError::Unknown(_)) => {
                self.reply(500, e.to_string()).await?;
                return Ok(None);
            }
            Err(e) => {
                self.reply(501, e.to_string()).await?;
                return Ok(None);
            }
        };
        match cmd {
            Command::Pass(_) => debug!("PASS (hidden)"),
            ref c => {
                debug!(command = %String::from_utf8_lossy(text).chars().take(200).collect::<String>(), verb = c.verb(), "command")
            }
        }
        Ok(Some(cmd))
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

    /// The checks every command passes before its handler: TLS before
    /// login, login before most commands, `[limits] deny`, read-only
    /// anonymous users. `Some(reply)` refuses the command with it.
    fn gate(&self, cmd: &Command) -> Option<(u16, String)> {
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
            return Some((
                530,
                "TLS required on the control connection: use AUTH TLS first".into(),
            ));
        }
        if self.user.is_none() && !pre_login {
            return Some((530, "Please login with USER and PASS".into()));
        }
        let verb = cmd.verb();
        if self.cfg.deny.iter().any(|d| d == verb) {
            info!(verb, "command denied by [limits] deny");
            return Some((501, format!("{verb}: Operation not permitted")));
        }
        let writes = matches!(
            cmd,
            Stor(_) | Appe(_) | Dele(_) | Mkd(_) | Rmd(_) | Rnfr(_) | Rnto(_) | Mfmt(_)
        );
        if writes && !self.cfg.anonymous_upload && self.user.as_deref().is_some_and(is_anonymous) {
            info!(verb, "anonymous write refused (anonymous_upload = false)");
            return Some((550, format!("{verb}: Permission denied")));
        }
        None
    }

    async fn dispatch(&mut self, cmd: Command) -> Handled {
        use Command::*;
        if let Some((code, text)) = self.gate(&cmd) {
            return self.ok(code, text).await;
        }
        if !matches!(cmd, Rnto(_) | Rnfr(_)) {
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
            Feat => self.cmd_feat().await,
            Opts(arg) => self.cmd_opts(arg).await,
            Pwd => self.cmd_pwd().await,
            Cwd(p) => self.cmd_cwd(&p.0).await,
            Cdup => self.cmd_cwd(b"..").await,
            Type(t) => self.cmd_type(t).await,
            Mode(m) => self.cmd_mode(m).await,
            Stru(s) => self.cmd_stru(s).await,
            Pasv => self.cmd_pasv().await,
            Epsv(arg) => self.cmd_epsv(arg).await,
            Port(arg) => self.cmd_port(arg).await,
            Eprt(arg) => self.cmd_eprt(arg).await,
            Stat(Some(p)) => self.cmd_stat_path(p).await,
            Stat(None) => self.cmd_stat().await,
            List(arg) => self.cmd_list(arg, ListKind::Long).await,
            Nlst(arg) => self.cmd_list(arg, ListKind::Names).await,
            Mlsd(arg) => self.cmd_list(arg, ListKind::Machine).await,
            Mlst(arg) => self.cmd_mlst(arg).await,
            Retr(p) => self.cmd_retr(p).await,
            Stor(p) => self.cmd_store(p, false).await,
            Appe(p) => self.cmd_store(p, true).await,
            Rest(n) => self.cmd_rest(n).await,
            Dele(p) => self.cmd_dele(p).await,
            Rmd(p) => self.cmd_rmd(p).await,
            Mkd(p) => self.cmd_mkd(p).await,
            Rnfr(p) => self.cmd_rnfr(p).await,
            Rnto(p) => self.cmd_rnto(p).await,
            Size(p) => self.cmd_size(p).await,
            Mdtm(p) => self.cmd_mdtm(p).await,
            Mfmt(p) => self.cmd_mfmt(p).await,
            Abor => {
                self.clear_data().await;
                self.ok(226, "ABOR command successful").await
            }
            Noop => self.ok(200, "NOOP command successful").await,
            Help => self.cmd_help().await,
            NotImplemented(v) => self.ok(502, format!("{v} not implemented")).await,
            Auth(mech) => self.cmd_auth(mech).await,
            Pbsz(size) => self.cmd_pbsz(size).await,
            Prot(level) => self.cmd_prot(level).await,
            Ccc => self.cmd_ccc().await,
        }
    }
}
