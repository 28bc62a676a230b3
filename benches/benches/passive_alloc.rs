//! Passive-port allocation, against the field's strategies, in one run.
//!
//! Group `passive_alloc` — one reserve + release at an occupancy (permille)
//! of a 5,536-port range (60000-65535), results in
//! `target/criterion/passive_alloc/<impl>/<permille>/`:
//! * `ftpnat` — the server's allocator (a FIFO of a shuffled range; the
//!   exhausted answer needs no system call);
//! * `vsftpd_like` — 9 random ports, bind each, then give up (vsftpd,
//!   libunftp);
//! * `pureftpd_like` — a random start, then a linear scan of the range;
//! * `proftpd_like` — shuffle the range, 3 passes of bind attempts;
//! * `kernel_port0` — bind port 0 with `IP_LOCAL_PORT_RANGE` set to the FTP
//!   range (the kernel's own search).
//!
//! Occupancy is real: the occupied ports are held by listening sockets on
//! 127.0.0.1 for every implementation (ftpnat also holds the leases). When
//! run as root the bench moves itself into a private network namespace
//! first, so nothing else on the machine holds ports of the range.
//!
//! Group `passive_bind` — reserve + bind + listen + close with the server's
//! own code (`PortPool::open`) against `known_free_port` (the same bind +
//! listen + close of a port known to be free): the floor no allocator can
//! beat.
//!
//! Group `passive_contention` — N threads (1, 2, 8, 64) each reserving and
//! releasing; one iteration is one reserve + release per thread, and every
//! hand-out is checked (a port handed out twice aborts the bench).

use std::{
    hint::black_box,
    net::{Ipv4Addr, SocketAddr, TcpListener},
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Barrier,
    },
    time::{Duration, Instant},
};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ftpnat_server::{config::ExhaustedPolicy, passive::PortPool};
use rand::{seq::SliceRandom, Rng};
use socket2::{Domain, Socket, Type};

const LO: u16 = 60000;
const HI: u16 = 65535;
const N: usize = (HI - LO) as usize + 1;
const PERMILLE: [u32; 6] = [0, 500, 900, 990, 999, 1000];

/// When root: a private network namespace with loopback up, so the range
/// is ours alone.
fn isolate() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("passive_alloc: not root, running in the current namespace (ports of 60000-65535 held by other programs count as occupied)");
        return;
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    let ok = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip link set lo up (apt-get install -y iproute2)");
}

fn socket() -> Socket {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.set_reuse_address(true).expect("SO_REUSEADDR");
    s
}

fn try_bind(port: u16) -> Option<Socket> {
    let s = socket();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    (s.bind(&addr.into()).is_ok() && s.listen(8).is_ok()).then_some(s)
}

fn vsftpd_like(rng: &mut impl Rng) -> Option<Socket> {
    (0..9).find_map(|_| try_bind(rng.gen_range(LO..=HI)))
}

fn pureftpd_like(rng: &mut impl Rng) -> Option<Socket> {
    let start = rng.gen_range(0..N);
    (0..N).find_map(|i| try_bind(LO + ((start + i) % N) as u16))
}

fn proftpd_like(rng: &mut impl Rng) -> Option<Socket> {
    let mut ports: Vec<u16> = (LO..=HI).collect();
    ports.shuffle(rng);
    (0..3).find_map(|_| ports.iter().find_map(|p| try_bind(*p)))
}

fn kernel_port0() -> Option<Socket> {
    const IP_LOCAL_PORT_RANGE: libc::c_int = 51;
    let s = socket();
    let range: u32 = (u32::from(HI) << 16) | u32::from(LO);
    // SAFETY: a u32 option value of the right size on a valid socket.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            IP_LOCAL_PORT_RANGE,
            (&range as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "IP_LOCAL_PORT_RANGE needs Linux 6.3 or later");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    (s.bind(&addr.into()).is_ok() && s.listen(8).is_ok()).then_some(s)
}

fn occupancy(c: &mut Criterion) {
    isolate();
    let mut g = c.benchmark_group("passive_alloc");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    let mut rng = rand::thread_rng();
    for permille in PERMILLE {
        let held = N * permille as usize / 1000;
        let pool = PortPool::new(LO, HI);
        let leases: Vec<_> = (0..held)
            .map(|_| pool.try_reserve().expect("free"))
            .collect();
        // The same ports, really held, for every implementation.
        let squatters: Vec<TcpListener> = leases
            .iter()
            .map(|l| TcpListener::bind((Ipv4Addr::LOCALHOST, l.port())).expect("squat"))
            .collect();
        let id = |name| BenchmarkId::new(name, permille);
        g.bench_with_input(id("ftpnat"), &permille, |b, _| {
            b.iter(|| black_box(pool.try_reserve()))
        });
        g.bench_with_input(id("vsftpd_like"), &permille, |b, _| {
            b.iter(|| black_box(vsftpd_like(&mut rng)))
        });
        g.bench_with_input(id("pureftpd_like"), &permille, |b, _| {
            b.iter(|| black_box(pureftpd_like(&mut rng)))
        });
        g.bench_with_input(id("proftpd_like"), &permille, |b, _| {
            b.iter(|| black_box(proftpd_like(&mut rng)))
        });
        g.bench_with_input(id("kernel_port0"), &permille, |b, _| {
            b.iter(|| black_box(kernel_port0()))
        });
        drop(squatters);
        drop(leases);
    }
    g.finish();
}

fn passive_bind(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ip = Ipv4Addr::LOCALHOST.into();
    let mut g = c.benchmark_group("passive_bind");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let pool = PortPool::new(LO, HI);
    g.bench_function("ftpnat", |b| {
        b.iter(|| {
            rt.block_on(async {
                let pl = pool
                    .open(ip, ExhaustedPolicy::Refuse, Duration::ZERO)
                    .await
                    .expect("free port");
                black_box(pl);
            })
        })
    });
    // A port nothing else uses: the same bind + listen + close.
    let free = SocketAddr::new(ip, 59999);
    g.bench_function("known_free_port", |b| {
        b.iter(|| {
            rt.block_on(async {
                let l = ftpnat_server::passive::bind_listener(free).expect("free port");
                black_box(l);
            })
        })
    });
    g.finish();
}

fn contention(c: &mut Criterion) {
    let mut g = c.benchmark_group("passive_contention");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for threads in [1usize, 2, 8, 64] {
        let pool = PortPool::new(LO, HI);
        let taken: Arc<Vec<AtomicBool>> =
            Arc::new((0..N).map(|_| AtomicBool::new(false)).collect());
        g.bench_with_input(BenchmarkId::new("ftpnat", threads), &threads, |b, &n| {
            b.iter_custom(|iters| {
                let barrier = Arc::new(Barrier::new(n + 1));
                let workers: Vec<_> = (0..n)
                    .map(|_| {
                        let (pool, taken, barrier) =
                            (Arc::clone(&pool), Arc::clone(&taken), Arc::clone(&barrier));
                        std::thread::spawn(move || {
                            barrier.wait();
                            for _ in 0..iters {
                                let lease = pool.try_reserve().expect("a free port");
                                let slot = &taken[usize::from(lease.port() - LO)];
                                assert!(
                                    !slot.swap(true, Ordering::AcqRel),
                                    "port {} handed out twice",
                                    lease.port()
                                );
                                slot.store(false, Ordering::Release);
                                drop(black_box(lease));
                            }
                        })
                    })
                    .collect();
                barrier.wait();
                let t0 = Instant::now();
                for w in workers {
                    w.join().expect("worker");
                }
                t0.elapsed()
            })
        });
    }
    g.finish();
}

fn exhausted(c: &mut Criterion) {
    let pool = PortPool::new(LO, LO + 9);
    let _all: Vec<_> = (0..10).map(|_| pool.try_reserve().unwrap()).collect();
    c.bench_function("exhausted_answer/ftpnat", |b| {
        b.iter(|| black_box(pool.try_reserve().is_none()))
    });
}

criterion_group!(benches, occupancy, passive_bind, contention, exhausted);
criterion_main!(benches);
