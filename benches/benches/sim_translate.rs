//! The sim gateway's pure path: frames per second through `Router::handle`
//! for an established-flow TCP segment (the fast path), a new-flow SYN
//! (mapping + conntrack insert) and an ALG-rewritten control segment
//! (parse + splice + rebuild + sequence adjust). The baseline is copying
//! the frame (the least any forwarder does), measured in the same run.

use std::{hint::black_box, net::SocketAddrV4, time::Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ftpnat::engine::{
    sim::{
        wire::{self, flags},
        Output, Router,
    },
    AlgMode, GatewayConfig, NatConfig,
};

const LAN_MAC: [u8; 6] = [2, 0xfe, 0, 0, 0, 1];
const HOST: [u8; 6] = [2, 0, 0, 0, 1, 2];
const PEER: [u8; 6] = [2, 0, 0, 0, 2, 10];

fn sa(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

fn router(alg: AlgMode) -> Router {
    let cfg = GatewayConfig {
        nat: Some(NatConfig {
            max_mappings: 1 << 20,
            ..Default::default()
        }),
        alg,
        ..GatewayConfig::example()
    };
    let now = Instant::now();
    let mut r = Router::new(cfg, now);
    let mut out = Vec::new();
    r.handle(
        0,
        wire::arp_frame(
            1,
            HOST,
            "192.168.1.2".parse().unwrap(),
            [0; 6],
            "192.168.1.1".parse().unwrap(),
        ),
        now,
        &mut out,
    );
    r.handle(
        1,
        wire::arp_frame(
            1,
            PEER,
            "203.0.113.10".parse().unwrap(),
            [0; 6],
            "203.0.113.1".parse().unwrap(),
        ),
        now,
        &mut out,
    );
    r
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("translate");
    g.throughput(Throughput::Elements(1));
    let payload = vec![0x55u8; 1448];
    let data = wire::tcp_frame(
        HOST,
        LAN_MAC,
        sa("192.168.1.2:40000"),
        sa("203.0.113.10:80"),
        1000,
        1,
        flags::ACK,
        &payload,
    );
    g.bench_function("baseline_copy_1514B", |b| {
        b.iter(|| black_box(data.clone()))
    });

    let mut r = router(AlgMode::Off);
    let now = Instant::now();
    let mut out: Vec<Output> = Vec::with_capacity(4);
    r.handle(
        0,
        wire::tcp_frame(
            HOST,
            LAN_MAC,
            sa("192.168.1.2:40000"),
            sa("203.0.113.10:80"),
            999,
            0,
            flags::SYN,
            b"",
        ),
        now,
        &mut out,
    );
    out.clear();
    g.bench_function("established_1514B", |b| {
        b.iter(|| {
            r.handle(0, data.clone(), now, &mut out);
            black_box(out.pop());
        })
    });

    let mut r = router(AlgMode::Off);
    let mut port: u16 = 1024;
    g.bench_function("new_flow_syn", |b| {
        b.iter(|| {
            port = if port == 65535 { 1024 } else { port + 1 };
            let syn = wire::tcp_frame(
                HOST,
                LAN_MAC,
                SocketAddrV4::new("192.168.1.2".parse().unwrap(), port),
                sa("203.0.113.10:80"),
                1,
                0,
                flags::SYN,
                b"",
            );
            r.handle(0, syn, now, &mut out);
            black_box(out.pop());
        })
    });

    let mut r = router(AlgMode::Correct);
    r.handle(
        0,
        wire::tcp_frame(
            HOST,
            LAN_MAC,
            sa("192.168.1.2:40000"),
            sa("203.0.113.10:21"),
            999,
            0,
            flags::SYN,
            b"",
        ),
        now,
        &mut out,
    );
    out.clear();
    let mut seq = 1000u32;
    g.bench_function("alg_port_rewrite", |b| {
        b.iter(|| {
            let cmd = wire::tcp_frame(
                HOST,
                LAN_MAC,
                sa("192.168.1.2:40000"),
                sa("203.0.113.10:21"),
                seq,
                1,
                flags::ACK,
                b"PORT 192,168,1,2,195,80\r\n",
            );
            seq = seq.wrapping_add(25);
            r.handle(0, cmd, now, &mut out);
            black_box(out.pop());
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
