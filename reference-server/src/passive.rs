//! The passive-port allocator.
//!
//! Invariants:
//! * A port is handed to at most one [`Lease`] at a time, across all sessions.
//! * `reserve` and `release` are O(1) at any occupancy: a FIFO queue pre-filled
//!   with a random permutation of the range. A released port goes to the back,
//!   so it is reused last (the longest quarantine against TIME_WAIT and stale
//!   NAT state).
//! * Exhaustion is known in O(1) without a system call (the queue is empty).
//! * Only the leased port is ever bound, with `SO_REUSEADDR` and never
//!   `SO_REUSEPORT` (which would let two sessions share a port and misroute
//!   data connections). A port some other process holds (`EADDRINUSE`) goes
//!   to the back of the queue and the next one is tried, at most `len` times.
//!
//! Dropping a [`Lease`] returns its port; that is the only release path, so
//! every way a session can let go (accept, a new PASV, the `data_connect`
//! timeout, the session ending) releases exactly once.

use std::{
    collections::VecDeque,
    io,
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use rand::seq::SliceRandom;
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::{net::TcpListener, sync::Notify};

use crate::config::ExhaustedPolicy;

/// Counters, one per outcome (read with [`PortPool::metrics`]).
#[derive(Debug, Default)]
struct Counters {
    reserved: AtomicU64,
    released: AtomicU64,
    fallback: AtomicU64,
    refused: AtomicU64,
    waited: AtomicU64,
    wait_timeouts: AtomicU64,
    in_use_skipped: AtomicU64,
    held_us: AtomicU64,
}

/// A snapshot of the allocator's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Metrics {
    /// Ports handed out from the range.
    pub reserved: u64,
    /// Ports returned.
    pub released: u64,
    /// Kernel-assigned fallbacks (range exhausted, policy `fallback`).
    pub fallback: u64,
    /// 425 answers (policy `refuse`, or after the `wait` bound).
    pub refused: u64,
    /// Reservations that had to wait.
    pub waited: u64,
    /// Waits that ended in 425.
    pub wait_timeouts: u64,
    /// Ports skipped because another process held them.
    pub in_use_skipped: u64,
    /// Total time ports were held by leases, microseconds (÷ `released`
    /// gives the mean hold: PASV until accept, timeout or supersede).
    pub held_us: u64,
}

/// The shared pool of one passive range.
#[derive(Debug)]
pub struct PortPool {
    range: (u16, u16),
    free: Mutex<VecDeque<u16>>,
    notify: Notify,
    counters: Counters,
}

/// A port held by one session. Dropping it returns the port.
#[derive(Debug)]
pub struct Lease {
    port: u16,
    pool: Arc<PortPool>,
    since: std::time::Instant,
}

impl Lease {
    /// The leased port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.release(self.port, self.since.elapsed());
    }
}

/// A bound, listening passive socket.
#[derive(Debug)]
pub struct PassiveListener {
    /// The listening socket.
    pub listener: TcpListener,
    /// The lease (`None` for a kernel-assigned fallback port).
    pub lease: Option<Lease>,
    /// True when the port is a fallback outside the range.
    pub fallback: bool,
}

/// Why no passive listener could be made.
#[derive(Debug, thiserror::Error)]
pub enum PassiveError {
    /// The range is exhausted and the policy says 425.
    #[error("passive port range {0}-{1} exhausted")]
    Exhausted(u16, u16),
    /// Binding failed for another reason.
    #[error("cannot open passive listener: {0}")]
    Io(#[from] io::Error),
}

impl PortPool {
    /// A pool over `lo..=hi` in random order.
    pub fn new(lo: u16, hi: u16) -> Arc<PortPool> {
        Self::with_rng(lo, hi, &mut rand::thread_rng())
    }

    /// A pool with a caller-chosen RNG (deterministic tests and benches).
    pub fn with_rng(lo: u16, hi: u16, rng: &mut impl rand::Rng) -> Arc<PortPool> {
        let mut ports: Vec<u16> = (lo..=hi).collect();
        ports.shuffle(rng);
        Arc::new(PortPool {
            range: (lo, hi),
            free: Mutex::new(ports.into()),
            notify: Notify::new(),
            counters: Counters::default(),
        })
    }

    /// The configured range.
    pub fn range(&self) -> (u16, u16) {
        self.range
    }

    /// Number of ports in the range.
    pub fn capacity(&self) -> usize {
        usize::from(self.range.1 - self.range.0) + 1
    }

    /// Ports currently free.
    pub fn available(&self) -> usize {
        self.free.lock().unwrap().len()
    }

    /// Takes the next free port, O(1); `None` when exhausted (no system call).
    pub fn try_reserve(self: &Arc<Self>) -> Option<Lease> {
        let port = self.free.lock().unwrap().pop_front()?;
        self.counters.reserved.fetch_add(1, Ordering::Relaxed);
        Some(Lease {
            port,
            pool: Arc::clone(self),
            since: std::time::Instant::now(),
        })
    }

    fn release(&self, port: u16, held: Duration) {
        self.free.lock().unwrap().push_back(port);
        self.counters.released.fetch_add(1, Ordering::Relaxed);
        self.counters
            .held_us
            .fetch_add(held.as_micros() as u64, Ordering::Relaxed);
        self.notify.notify_one();
    }

    /// Waits up to `bound` for a free port.
    pub async fn reserve_wait(self: &Arc<Self>, bound: Duration) -> Option<Lease> {
        if let Some(l) = self.try_reserve() {
            return Some(l);
        }
        self.counters.waited.fetch_add(1, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(l) = self.try_reserve() {
                return Some(l);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                // One last look: a release may have raced the timer.
                let last = self.try_reserve();
                if last.is_none() {
                    self.counters.wait_timeouts.fetch_add(1, Ordering::Relaxed);
                }
                return last;
            }
        }
    }

    /// Opens a listener on `ip` with a port from the range, applying `policy`
    /// when the range is exhausted. Ports held by other processes are skipped.
    pub async fn open(
        self: &Arc<Self>,
        ip: IpAddr,
        policy: ExhaustedPolicy,
        wait: Duration,
    ) -> Result<PassiveListener, PassiveError> {
        // `wait` keeps trying until its deadline, also past ports another
        // process holds; the other policies try each port at most once.
        let deadline = tokio::time::Instant::now() + wait;
        let mut attempts = 0;
        loop {
            let lease = match policy {
                ExhaustedPolicy::Wait => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    self.reserve_wait(left).await
                }
                _ if attempts >= self.capacity() => None,
                _ => self.try_reserve(),
            };
            let Some(lease) = lease else { break };
            attempts += 1;
            match bind_listener(SocketAddr::new(ip, lease.port)) {
                Ok(listener) => {
                    return Ok(PassiveListener {
                        listener,
                        lease: Some(lease),
                        fallback: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    self.counters.in_use_skipped.fetch_add(1, Ordering::Relaxed);
                    drop(lease); // back of the queue; try the next
                    if policy == ExhaustedPolicy::Wait {
                        if tokio::time::Instant::now() >= deadline {
                            break;
                        }
                        // The same port may come straight back: do not spin.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        match policy {
            ExhaustedPolicy::Fallback => {
                self.counters.fallback.fetch_add(1, Ordering::Relaxed);
                let listener = bind_listener(SocketAddr::new(ip, 0))?;
                Ok(PassiveListener {
                    listener,
                    lease: None,
                    fallback: true,
                })
            }
            ExhaustedPolicy::Refuse | ExhaustedPolicy::Wait => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                Err(PassiveError::Exhausted(self.range.0, self.range.1))
            }
        }
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> Metrics {
        let c = &self.counters;
        Metrics {
            reserved: c.reserved.load(Ordering::Relaxed),
            released: c.released.load(Ordering::Relaxed),
            fallback: c.fallback.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            waited: c.waited.load(Ordering::Relaxed),
            wait_timeouts: c.wait_timeouts.load(Ordering::Relaxed),
            in_use_skipped: c.in_use_skipped.load(Ordering::Relaxed),
            held_us: c.held_us.load(Ordering::Relaxed),
        }
    }
}

/// Binds and listens with `SO_REUSEADDR` (never `SO_REUSEPORT`); a small
/// backlog, as a passive listener expects one connection.
pub fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    bind_with_backlog(addr, 8)
}

/// Binds and listens with `SO_REUSEADDR` and the given backlog (control
/// listeners need room for bursts of clients).
pub fn bind_with_backlog(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    TcpListener::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashSet;

    const LO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn permutation_covers_range_and_fifo_reuses_last() {
        let pool = PortPool::with_rng(60000, 60009, &mut rand::rngs::StdRng::seed_from_u64(7));
        let leases: Vec<Lease> = (0..10).map(|_| pool.try_reserve().unwrap()).collect();
        let ports: HashSet<u16> = leases.iter().map(Lease::port).collect();
        assert_eq!(ports, (60000..=60009).collect());
        assert!(pool.try_reserve().is_none(), "exhausted without a syscall");
        let first = leases[0].port();
        drop(leases);
        // All ten are back; the first returned is the first reused.
        assert_eq!(pool.available(), 10);
        assert_eq!(pool.try_reserve().unwrap().port(), first);
        assert_eq!(pool.metrics().reserved, 11);
        assert_eq!(pool.metrics().released, 11);
    }

    #[test]
    fn released_port_goes_to_the_back() {
        let pool = PortPool::new(60000, 60002);
        let a = pool.try_reserve().unwrap();
        let pa = a.port();
        drop(a);
        let order: Vec<u16> = (0..3)
            .map(|_| pool.try_reserve().unwrap())
            .map(|l| {
                let p = l.port();
                std::mem::forget(l);
                p
            })
            .collect();
        assert_eq!(order[2], pa);
    }

    #[test]
    fn no_port_handed_out_twice_under_concurrency() {
        let pool = PortPool::new(61000, 61015);
        let held = Arc::new(Mutex::new(HashSet::new()));
        std::thread::scope(|s| {
            for _ in 0..8 {
                let pool = Arc::clone(&pool);
                let held = Arc::clone(&held);
                s.spawn(move || {
                    for _ in 0..2000 {
                        if let Some(l) = pool.try_reserve() {
                            assert!(
                                held.lock().unwrap().insert(l.port()),
                                "port {} twice",
                                l.port()
                            );
                            held.lock().unwrap().remove(&l.port());
                        }
                    }
                });
            }
        });
        assert_eq!(pool.available(), 16);
        let m = pool.metrics();
        assert_eq!(m.reserved, m.released);
    }

    #[tokio::test]
    async fn fallback_binds_kernel_port_outside_range() {
        let pool = PortPool::new(62000, 62000);
        let a = pool
            .open(LO, ExhaustedPolicy::Fallback, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(a.listener.local_addr().unwrap().port(), 62000);
        assert!(!a.fallback);
        let b = pool
            .open(LO, ExhaustedPolicy::Fallback, Duration::ZERO)
            .await
            .unwrap();
        assert!(b.fallback);
        assert!(b.lease.is_none());
        assert_ne!(b.listener.local_addr().unwrap().port(), 62000);
        assert_eq!(pool.metrics().fallback, 1);
    }

    #[tokio::test]
    async fn refuse_policy_errors_when_exhausted() {
        let pool = PortPool::new(62010, 62010);
        let _a = pool
            .open(LO, ExhaustedPolicy::Refuse, Duration::ZERO)
            .await
            .unwrap();
        let e = pool
            .open(LO, ExhaustedPolicy::Refuse, Duration::ZERO)
            .await
            .unwrap_err();
        assert!(matches!(e, PassiveError::Exhausted(62010, 62010)));
        assert_eq!(pool.metrics().refused, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_policy_gets_a_released_port_or_times_out() {
        let pool = PortPool::new(62020, 62020);
        let a = pool.try_reserve().unwrap();
        let p2 = Arc::clone(&pool);
        let waiter = tokio::spawn(async move {
            p2.reserve_wait(Duration::from_secs(2))
                .await
                .map(|l| l.port())
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(a);
        assert_eq!(waiter.await.unwrap(), Some(62020));

        let _b = pool.try_reserve().unwrap();
        let t0 = tokio::time::Instant::now();
        assert!(pool.reserve_wait(Duration::from_secs(2)).await.is_none());
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        assert_eq!(pool.metrics().wait_timeouts, 1);
    }

    /// `wait` waits out a port another process holds for a while, instead
    /// of giving up after one bind attempt per port.
    #[tokio::test]
    async fn wait_policy_outlasts_a_transient_squatter() {
        let pool = PortPool::new(62040, 62040);
        let squatter = std::net::TcpListener::bind((LO, 62040)).unwrap();
        let freed = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(squatter);
        });
        let got = pool
            .open(LO, ExhaustedPolicy::Wait, Duration::from_secs(3))
            .await
            .unwrap();
        assert_eq!(got.listener.local_addr().unwrap().port(), 62040);
        assert!(pool.metrics().in_use_skipped >= 1);
        freed.await.unwrap();
        // And with the refuse policy the same squatter means 425 at once.
        let pool = PortPool::new(62041, 62041);
        let _squatter = std::net::TcpListener::bind((LO, 62041)).unwrap();
        let t0 = std::time::Instant::now();
        assert!(pool
            .open(LO, ExhaustedPolicy::Refuse, Duration::ZERO)
            .await
            .is_err());
        assert!(t0.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test]
    async fn port_held_by_foreign_process_is_skipped() {
        // Occupy one port of a two-port range with a plain listener.
        let pool = PortPool::with_rng(62030, 62031, &mut rand::rngs::StdRng::seed_from_u64(1));
        let first = pool.free.lock().unwrap()[0];
        let _squatter = std::net::TcpListener::bind((LO, first)).unwrap();
        let got = pool
            .open(LO, ExhaustedPolicy::Refuse, Duration::ZERO)
            .await
            .unwrap();
        assert_ne!(got.listener.local_addr().unwrap().port(), first);
        assert_eq!(pool.metrics().in_use_skipped, 1);
        assert_eq!(
            pool.available(),
            1,
            "the squatted port went back to the queue"
        );
    }
}
