//! The sim gateway's translate path on arbitrary frames: NAT, forwards, the
//! ALG and ICMP handling never panic. The first byte picks the interface.
#![no_main]
use std::{sync::Mutex, time::Instant};

use ftpnat::engine::{sim::Router, AlgMode, Forward, GatewayConfig, NatConfig};
use libfuzzer_sys::fuzz_target;

static ROUTER: Mutex<Option<(Router, Instant)>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let Some((&first, frame)) = data.split_first() else { return };
    let mut guard = ROUTER.lock().unwrap();
    let (router, start) = guard.get_or_insert_with(|| {
        let cfg = GatewayConfig {
            nat: Some(NatConfig { max_mappings: 4096, ..Default::default() }),
            forwards: vec![
                Forward { proto: 6, ports: (21, 21), to: "192.168.1.2".parse().unwrap(), to_port: 21 },
                Forward { proto: 6, ports: (60000, 60010), to: "192.168.1.2".parse().unwrap(), to_port: 60000 },
            ],
            alg: AlgMode::Correct,
            ..GatewayConfig::example()
        };
        let now = Instant::now();
        (Router::new(cfg, now), now)
    });
    let mut out = Vec::new();
    let now = *start + std::time::Duration::from_millis(u64::from(first) * 10);
    router.handle(usize::from(first & 1), frame.to_vec(), now, &mut out);
    if first == 0xff {
        router.poll(now + std::time::Duration::from_secs(600), &mut out);
    }
});
