//! The accept loop: binds the control listeners, refuses banned addresses
//! and what [`crate::admission`] does not admit (`max_clients`, per-address
//! and unauthenticated caps) with 421, runs one task per session, and
//! drains on shutdown (stop accepting; idle sessions get 421; running
//! transfers finish first).
//!
//! [`Server::run`] keeps the privileges of the process that calls it (the
//! harness runs it in-process, inside its namespaces); dropping root after
//! binding is the binary's job ([`crate::privilege`]).

use std::{
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use tokio::{io::AsyncWriteExt, net::TcpListener, sync::watch, task::JoinSet};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::{
    admission::Ticket,
    config::{Config, Masquerade, PassiveMode},
    passive::{bind_with_backlog, Metrics, PortPool},
    pooled::PooledPassive,
    protocol::addr::{canonical_ip, is_non_public},
    session::{self, Shared},
};

/// How long a drain may take before remaining sessions are cut.
pub const DRAIN_BOUND: Duration = Duration::from_secs(60);

/// Whether a connection from `ip` gets a session: not banned, and admitted.
fn admit(shared: &Arc<Shared>, ip: IpAddr) -> Result<Ticket, String> {
    if let Some(left) = shared.banned(ip) {
        debug!(peer = %ip, left_s = left.as_secs(), "refused connection: banned");
        return Err("Too many failed logins from your address, try again later".into());
    }
    shared.admission.admit(ip).map_err(|why| {
        warn!(peer = %ip, "refused connection: {why}");
        why.to_string()
    })
}

/// Answers 421 and closes, without holding up the accept loop.
fn refuse(mut stream: tokio::net::TcpStream, why: String) {
    tokio::spawn(async move {
        let _ = stream.write_all(format!("421 {why}\r\n").as_bytes()).await;
        let _ = stream.shutdown().await;
    });
}

/// A configured server, not yet running.
#[derive(Debug)]
pub struct Server {
    config: Arc<Config>,
    pool: Option<Arc<PortPool>>,
    pooled: Option<Arc<PooledPassive>>,
}

impl Server {
    /// Builds the server and its passive pool.
    pub fn new(config: Config) -> Server {
        let pooled = match (config.passive_mode, config.passive_ports) {
            (PassiveMode::Pooled, Some((lo, hi))) => Some(PooledPassive::new(lo, hi)),
            _ => None,
        };
        let pool = config.passive_ports.map(|(lo, hi)| PortPool::new(lo, hi));
        Server {
            config: Arc::new(config),
            pool,
            pooled,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The passive pool, if a range is configured.
    pub fn pool(&self) -> Option<&Arc<PortPool>> {
        self.pool.as_ref()
    }

    /// The pooled range (`passive_mode = "pooled"`).
    pub fn pooled(&self) -> Option<&Arc<PooledPassive>> {
        self.pooled.as_ref()
    }

    /// Allocator counters (zero without a range).
    pub fn metrics(&self) -> Metrics {
        match (&self.pooled, &self.pool) {
            (Some(p), _) => p.metrics(),
            (None, Some(p)) => p.metrics(),
            (None, None) => Metrics::default(),
        }
    }

    /// Binds every `listen` address (SO_REUSEADDR).
    pub fn bind(&self) -> io::Result<Vec<TcpListener>> {
        self.config
            .listen
            .iter()
            .map(|a| {
                bind_with_backlog(*a, 1024)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")))
            })
            .collect()
    }

    /// Logs the masquerade set-up the way ProFTPD users expect, with a
    /// warning for a non-public address (the seed's DNS pitfall).
    pub fn announce(&self, listeners: &[TcpListener]) {
        let announce = |who: String, m: &Masquerade| {
            if let Masquerade::Addr { ip, name } = m {
                match name {
                    Some(n) => {
                        info!("{who} masquerading as {ip} (resolved from '{n}' at start-up)")
                    }
                    None => info!("{who} masquerading as {ip}"),
                }
                if is_non_public(*ip) {
                    warn!(
                        "masquerade address {ip}{} is not a public address: clients outside the LAN will be sent it in 227 replies and fail (a DNS name resolved from inside the LAN?)",
                        name.as_ref().map(|n| format!(" (from '{n}')")).unwrap_or_default()
                    );
                }
            }
        };
        for l in listeners {
            let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            announce(addr, &self.config.masquerade);
        }
        for v in &self.config.vhosts {
            if let Some(m) = &v.masquerade {
                announce(format!("vhost {}", v.address), m);
            }
        }
        for c in &self.config.classes {
            if let Some(m) = &c.masquerade {
                announce(format!("class {}", c.name), m);
            }
        }
        if let Some((lo, hi)) = self.config.passive_ports {
            info!(policy = ?self.config.passive_exhausted, "passive ports {lo}-{hi}");
        }
    }

    /// Serves until `shutdown` completes, then drains.
    pub async fn run(
        self,
        listeners: Vec<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        self.announce(&listeners);
        if let Some(p) = &self.pooled {
            let mut ips: Vec<IpAddr> = self.config.listen.iter().map(|a| a.ip()).collect();
            ips.sort();
            ips.dedup();
            p.listen(&ips)?;
            let (lo, hi) = p.range();
            info!(
                "pooled passive mode: {} port(s) {lo}-{hi} listening on {ips:?}",
                hi - lo + 1
            );
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            pool: self.pool.clone(),
            pooled: self.pooled.clone(),
            ..Shared::new(Arc::clone(&self.config), stop_rx)
        });
        let mut sessions = JoinSet::new();
        let mut accepts = JoinSet::new();
        let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel(64);
        for l in listeners {
            info!("listening on {}", l.local_addr()?);
            let tx = conn_tx.clone();
            accepts.spawn(async move {
                loop {
                    match l.accept().await {
                        Ok(c) => {
                            if tx.send(c).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            });
        }
        drop(conn_tx);
        tokio::pin!(shutdown);
        let mut next_id: u64 = 0;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(done) = sessions.join_next(), if !sessions.is_empty() => {
                    if let Err(e) = done { warn!(error = %e, "session task failed"); }
                }
                Some((stream, peer)) = conn_rx.recv() => {
                    next_id += 1;
                    let ip = canonical_ip(peer.ip());
                    let ticket = match admit(&shared, ip) {
                        Ok(t) => t,
                        Err(why) => {
                            refuse(stream, why);
                            continue;
                        }
                    };
                    let shared = Arc::clone(&shared);
                    let span = info_span!("session", id = next_id, peer = %SocketAddr::new(ip, peer.port()));
                    sessions.spawn(session::serve(stream, shared, ticket).instrument(span));
                }
            }
        }
        info!(
            sessions = sessions.len(),
            "shutting down: no new connections; draining sessions"
        );
        accepts.abort_all();
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(DRAIN_BOUND, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                left = sessions.len(),
                "drain bound reached; closing remaining sessions"
            );
            sessions.abort_all();
        }
        if let Some(p) = &self.pooled {
            p.shutdown();
        }
        let m = self.metrics();
        info!(
            reserved = m.reserved,
            fallback = m.fallback,
            refused = m.refused,
            waited = m.waited,
            "passive port metrics"
        );
        info!("server stopped");
        Ok(())
    }
}
