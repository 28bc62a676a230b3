//! Passive-port allocation: the ftpnat pool (O(1) FIFO of a shuffled range)
//! against the field's strategy of probing random ports with bind() (vsftpd,
//! libunftp: 9 random binds), at several occupancies, in the same run.
//!
//! Occupancy is made real for the probing baseline: the occupied ports are
//! held by listening sockets on 127.0.0.1, so its bind() calls fail the way
//! they do on a busy server.

use std::{
    hint::black_box,
    net::{Ipv4Addr, SocketAddr, TcpListener},
};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ftpnat_server::passive::PortPool;
use rand::Rng;

const LO: u16 = 40000;
const N: u16 = 1000;

fn bind_probe(rng: &mut impl Rng, tries: usize) -> Option<socket2::Socket> {
    for _ in 0..tries {
        let port = rng.gen_range(LO..LO + N);
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
        s.set_reuse_address(true).ok()?;
        if s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())
            .is_ok()
            && s.listen(1).is_ok()
        {
            return Some(s);
        }
    }
    None
}

fn occupancy(c: &mut Criterion) {
    let mut g = c.benchmark_group("reserve_release");
    for occ in [0.0f64, 0.5, 0.9, 0.999] {
        let held = (f64::from(N) * occ).round() as usize;
        // ftpnat: leases held in memory; reserve+release one more.
        let pool = PortPool::new(LO, LO + N - 1);
        let leases: Vec<_> = (0..held).map(|_| pool.try_reserve().unwrap()).collect();
        g.bench_with_input(BenchmarkId::new("ftpnat", occ), &occ, |b, _| {
            b.iter(|| black_box(pool.try_reserve()));
        });
        drop(leases);
        // Baseline: random bind probing against really occupied ports.
        let mut rng = rand::thread_rng();
        let mut ports: Vec<u16> = (LO..LO + N).collect();
        rand::seq::SliceRandom::shuffle(&mut ports[..], &mut rng);
        let squatters: Vec<TcpListener> = ports[..held]
            .iter()
            .filter_map(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, *p)).ok())
            .collect();
        g.bench_with_input(BenchmarkId::new("bind_probe_9", occ), &occ, |b, _| {
            b.iter(|| black_box(bind_probe(&mut rng, 9)));
        });
        drop(squatters);
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

criterion_group!(benches, occupancy, exhausted);
criterion_main!(benches);
