//! Bulk TCP through a NAT gateway: the sim engine against kernel
//! forwarding with nftables masquerade + DNAT, same topology (host ends
//! with tx offloads off, as the sim engine needs), same run. A server
//! behind the NAT sends 64 MiB per connection to an outside client that
//! connects through a port forward.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ftpnat::{
    runner::Lab,
    scenario,
    topology::{Netns, NsSockets},
};

const BYTES: usize = 64 << 20;

fn lab(engine_gateway: &str) -> (tempfile_dir::Dir, Lab) {
    let text = format!(
        r#"
name = "forwarding-bench"
[[gateway]]
name = "gw"
lan = "192.168.1.1/24"
wan = "203.0.113.1/24"
{engine_gateway}
forward = [ {{ ports = "5001", to = "server" }} ]
[[host]]
name = "server"
addr = "192.168.1.2/24"
[[host]]
name = "client"
addr = "203.0.113.10/24"
"#
    );
    let sc = scenario::parse(&text, Path::new("bench.toml")).unwrap();
    let dir = tempfile_dir::Dir::new();
    let lab = Lab::start(&sc, &dir.0, false).unwrap();
    (dir, lab)
}

mod tempfile_dir {
    /// A scratch folder removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!(
                "ftpnat-bench-{}-{}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A sender in `ns` that writes BYTES to every connection until stopped.
fn sender(ns: &Arc<Netns>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let l = ns
        .run(|| TcpListener::bind("192.168.1.2:5001"))
        .unwrap()
        .unwrap();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let chunk = vec![0xabu8; 1 << 16];
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let mut left = BYTES;
                    while left > 0 {
                        let n = left.min(chunk.len());
                        if s.write_all(&chunk[..n]).is_err() {
                            break;
                        }
                        left -= n;
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    })
}

fn fetch(client: &NsSockets) -> usize {
    let addr: SocketAddr = "203.0.113.1:5001".parse().unwrap();
    let s = client
        .raw(socket2::Domain::IPV4, socket2::Type::STREAM)
        .unwrap();
    s.set_nonblocking(false).unwrap();
    s.connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap();
    let mut s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) => panic!("read after {total} bytes: {e}"),
        }
    }
}

fn bench(c: &mut Criterion) {
    ftpnat_benches::require_root("forwarding");
    let mut g = c.benchmark_group("bulk_tcp_64MiB");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    g.throughput(Throughput::Bytes(BYTES as u64));
    // The same scenario on both engines: the kernel engine loads the
    // nftables rule set (DNAT of 5001 + masquerade) generated from it.
    for engine in ["sim", "kernel"] {
        let (_d, lab) = lab(&format!("engine = \"{engine}\""));
        run_engine(&mut g, engine, &lab);
        lab.stop();
    }
    g.finish();
}

fn run_engine(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    engine: &str,
    lab: &Lab,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let t = sender(lab.topo.ns("server"), Arc::clone(&stop));
    let client = lab.topo.sockets("client");
    assert_eq!(fetch(&client), BYTES, "{engine}: warm-up transfer");
    g.bench_function(engine, |b| b.iter(|| assert_eq!(fetch(&client), BYTES)));
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
