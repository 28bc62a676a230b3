//! Pooled passive listeners (`passive_mode = "pooled"`).
//!
//! The whole passive range is bound and listening once, at start-up. A PASV
//! leases a (client address, port) pair in memory — no system call on the
//! PASV path — and an accepted data connection is handed to the session
//! whose lease matches the peer's address and the local port. A connection
//! without a lease is closed and logged (`SECURITY VIOLATION`): port-theft
//! protection stays.
//!
//! Capacity becomes ports × distinct client addresses: two clients behind
//! different public addresses may use the same port at the same time,
//! because the kernel tells their connections apart by the peer.
//!
//! Invariants:
//! * A (client address, port) pair is leased at most once at a time.
//! * Per client address, leasing is O(1) while ports are free (a rotating
//!   cursor skips the few leased ones) and exhaustion is known without a
//!   system call (`leased == range size`).
//! * Each lease carries a generation number, so a lease that was already
//!   satisfied (its connection delivered) and dropped later can never remove
//!   a newer lease of the same pair.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::{oneshot, Notify},
    task::JoinSet,
};
use tracing::warn;

use crate::{
    passive::{bind_with_backlog, Metrics},
    protocol::addr::canonical_ip,
};

/// One client address's leases.
#[derive(Debug, Default)]
struct Client {
    /// Next port offset to try.
    cursor: u32,
    /// Leased port → (generation, where to deliver the connection, since).
    leased: HashMap<u16, (u64, oneshot::Sender<TcpStream>, Instant)>,
}

#[derive(Debug, Default)]
struct Counters {
    reserved: AtomicU64,
    released: AtomicU64,
    refused: AtomicU64,
    waited: AtomicU64,
    wait_timeouts: AtomicU64,
    held_us: AtomicU64,
    unleased: AtomicU64,
}

/// The pooled range: leases by client address, and (once bound) one accept
/// task per listening port.
#[derive(Debug)]
pub struct PooledPassive {
    range: (u16, u16),
    clients: Mutex<HashMap<IpAddr, Client>>,
    next_generation: AtomicU64,
    notify: Notify,
    counters: Counters,
    accepts: Mutex<JoinSet<()>>,
}

/// A leased (client address, port) pair. Dropping it ends the lease unless
/// its connection was already delivered.
#[derive(Debug)]
pub struct PooledLease {
    pool: Arc<PooledPassive>,
    client: IpAddr,
    port: u16,
    generation: u64,
    /// The data connection, once the client makes it.
    pub connection: oneshot::Receiver<TcpStream>,
}

impl PooledLease {
    /// The leased port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PooledLease {
    fn drop(&mut self) {
        self.pool.end(self.client, self.port, self.generation);
    }
}

impl PooledPassive {
    /// A pool over `lo..=hi`, not yet listening (see [`PooledPassive::listen`]).
    pub fn new(lo: u16, hi: u16) -> Arc<PooledPassive> {
        Arc::new(PooledPassive {
            range: (lo, hi),
            clients: Mutex::default(),
            next_generation: AtomicU64::new(1),
            notify: Notify::new(),
            counters: Counters::default(),
            accepts: Mutex::new(JoinSet::new()),
        })
    }

    /// The range.
    pub fn range(&self) -> (u16, u16) {
        self.range
    }

    fn size(&self) -> u32 {
        u32::from(self.range.1 - self.range.0) + 1
    }

    /// Binds every port of the range on each of `ips` and starts accepting
    /// (needs a Tokio runtime). Fails if any port cannot be bound: a pooled
    /// server owns its whole range.
    pub fn listen(self: &Arc<Self>, ips: &[IpAddr]) -> io::Result<()> {
        let mut listeners = Vec::new();
        for ip in ips {
            for port in self.range.0..=self.range.1 {
                let addr = SocketAddr::new(*ip, port);
                let l = bind_with_backlog(addr, 64).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("pooled passive mode: cannot listen on {addr}: {e}"),
                    )
                })?;
                listeners.push((port, l));
            }
        }
        let mut accepts = self.accepts.lock().unwrap();
        for (port, l) in listeners {
            let me = Arc::clone(self);
            accepts.spawn(async move { me.accept_loop(port, l).await });
        }
        Ok(())
    }

    /// Stops accepting (closes every pooled listener).
    pub fn shutdown(&self) {
        self.accepts.lock().unwrap().abort_all();
    }

    async fn accept_loop(self: Arc<Self>, port: u16, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => self.deliver(port, stream, peer),
                Err(e) => {
                    warn!(port, error = %e, "pooled passive accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Hands `stream` to the lease of (peer address, port), or closes it.
    fn deliver(&self, port: u16, stream: TcpStream, peer: SocketAddr) {
        let ip = canonical_ip(peer.ip());
        let taken = {
            let mut clients = self.clients.lock().unwrap();
            let entry = clients.get_mut(&ip).and_then(|c| c.leased.remove(&port));
            if clients.get(&ip).is_some_and(|c| c.leased.is_empty()) {
                clients.remove(&ip);
            }
            entry
        };
        match taken {
            Some((_, tx, since)) => {
                self.released(since);
                if let Err(stream) = tx.send(stream) {
                    // The session gave up between the lookup and the send.
                    drop(stream);
                }
            }
            None => {
                self.counters.unleased.fetch_add(1, Ordering::Relaxed);
                warn!(from = %peer, port, "SECURITY VIOLATION: passive data connection to pooled port {port} from {ip}, which holds no lease on it; closed");
                drop(stream);
            }
        }
    }

    fn released(&self, since: Instant) {
        self.counters.released.fetch_add(1, Ordering::Relaxed);
        self.counters
            .held_us
            .fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.notify.notify_waiters();
    }

    fn end(&self, client: IpAddr, port: u16, generation: u64) {
        let ended = {
            let mut clients = self.clients.lock().unwrap();
            let Some(c) = clients.get_mut(&client) else {
                return;
            };
            let ours = c.leased.get(&port).is_some_and(|(g, ..)| *g == generation);
            let ended = if ours { c.leased.remove(&port) } else { None };
            if c.leased.is_empty() {
                clients.remove(&client);
            }
            ended
        };
        if let Some((_, _, since)) = ended {
            self.released(since);
        }
    }

    /// Leases a port for `client`, O(1) while it has free ports; `None`
    /// when every port of the range is leased to that address (no system
    /// call either way).
    pub fn try_lease(self: &Arc<Self>, client: IpAddr) -> Option<PooledLease> {
        let client = canonical_ip(client);
        let size = self.size();
        let mut clients = self.clients.lock().unwrap();
        let c = clients.entry(client).or_default();
        if c.leased.len() as u32 >= size {
            return None;
        }
        // A leased port is skipped; with k leases at most k are skipped.
        let port = loop {
            let p = self.range.0 + (c.cursor % size) as u16;
            c.cursor = c.cursor.wrapping_add(1);
            if !c.leased.contains_key(&p) {
                break p;
            }
        };
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        c.leased.insert(port, (generation, tx, Instant::now()));
        drop(clients);
        self.counters.reserved.fetch_add(1, Ordering::Relaxed);
        Some(PooledLease {
            pool: Arc::clone(self),
            client,
            port,
            generation,
            connection: rx,
        })
    }

    /// Leases a port for `client`, waiting up to `bound` for one of its
    /// leases to end.
    pub async fn lease_wait(
        self: &Arc<Self>,
        client: IpAddr,
        bound: Duration,
    ) -> Option<PooledLease> {
        if let Some(l) = self.try_lease(client) {
            return Some(l);
        }
        self.counters.waited.fetch_add(1, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(l) = self.try_lease(client) {
                return Some(l);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let last = self.try_lease(client);
                if last.is_none() {
                    self.counters.wait_timeouts.fetch_add(1, Ordering::Relaxed);
                }
                return last;
            }
        }
    }

    /// Counts a 425 answered because a client's leases were exhausted.
    pub fn count_refused(&self) {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections closed because no lease matched them.
    pub fn unleased(&self) -> u64 {
        self.counters.unleased.load(Ordering::Relaxed)
    }

    /// A snapshot of the counters, in the per-transfer allocator's terms.
    pub fn metrics(&self) -> Metrics {
        let c = &self.counters;
        Metrics {
            reserved: c.reserved.load(Ordering::Relaxed),
            released: c.released.load(Ordering::Relaxed),
            fallback: 0,
            refused: c.refused.load(Ordering::Relaxed),
            waited: c.waited.load(Ordering::Relaxed),
            wait_timeouts: c.wait_timeouts.load(Ordering::Relaxed),
            in_use_skipped: 0,
            held_us: c.held_us.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn capacity_is_ports_times_client_addresses() {
        let p = PooledPassive::new(61000, 61003);
        let a: Vec<PooledLease> = (0..4).map(|_| p.try_lease(A).unwrap()).collect();
        assert!(p.try_lease(A).is_none(), "A has all four");
        let b: Vec<PooledLease> = (0..4).map(|_| p.try_lease(B).unwrap()).collect();
        let mut ports: Vec<u16> = a.iter().map(PooledLease::port).collect();
        ports.sort();
        assert_eq!(ports, vec![61000, 61001, 61002, 61003]);
        assert!(p.try_lease(B).is_none());
        drop(b);
        assert!(p.try_lease(B).is_some());
        let m = p.metrics();
        assert_eq!((m.reserved, m.released), (9, 5));
    }

    #[test]
    fn a_stale_lease_never_ends_a_newer_one_on_the_same_pair() {
        let p = PooledPassive::new(61000, 61000);
        let first = p.try_lease(A).unwrap();
        // Delivered (as an accept would): the pair is free again.
        p.end(A, 61000, first.generation);
        let second = p.try_lease(A).unwrap();
        assert_eq!(second.port(), 61000);
        drop(first); // must not end `second`
        assert!(p.try_lease(A).is_none(), "second still holds the pair");
        drop(second);
        assert!(p.try_lease(A).is_some());
    }

    #[tokio::test]
    async fn connections_go_to_their_lease_and_strangers_are_closed() {
        let lo = 61100 + (std::process::id() % 400) as u16 * 2;
        let p = PooledPassive::new(lo, lo + 1);
        p.listen(&[A, B]).unwrap();
        let mut lease = p.try_lease(A).unwrap();
        let port = lease.port();
        // A stranger (127.0.0.2) on A's leased port is closed, not delivered.
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(B, 0)).unwrap();
        let mut stranger = sock.connect(SocketAddr::new(A, port)).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), stranger.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "closed");
        assert_eq!(p.unleased(), 1);
        // The leaseholder's connection is delivered.
        let mut mine = TcpStream::connect(SocketAddr::new(A, port)).await.unwrap();
        let mut got = tokio::time::timeout(Duration::from_secs(5), &mut lease.connection)
            .await
            .unwrap()
            .unwrap();
        mine.write_all(b"x").await.unwrap();
        got.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"x");
        assert_eq!(p.metrics().released, 1);
        p.shutdown();
    }
}
