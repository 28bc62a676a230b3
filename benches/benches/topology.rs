//! Build + tear down the 4-host topology of issue 4 (a LAN client and a
//! server on a switched LAN, a gateway with two interfaces, an external
//! host): our netlink builder against the same topology made with `ip`
//! commands, in the same run. Both work only inside their own namespaces.

use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion};
use ftpnat::topology::{LinkSpec, NodeKind, NodeSpec, PortSpec, RouteSpec, Topology, TopologySpec};

fn spec() -> TopologySpec {
    let net = |s: &str| s.parse().unwrap();
    let node = |n: &str, kind| NodeSpec {
        name: n.into(),
        kind,
        routes: vec![],
        sysctls: vec![],
    };
    let port = |n: &str, i: &str, a: Option<&str>| PortSpec {
        node: n.into(),
        ifname: i.into(),
        addrs: a.map(|a| vec![net(a)]).unwrap_or_default(),
        mac: None,
        offloads_off: false,
        peer: None,
    };
    let mut gw = node("gw", NodeKind::Gateway);
    gw.sysctls.push(("net.ipv4.ip_forward".into(), "1".into()));
    let mut lc = node("lanclient", NodeKind::Host);
    lc.routes.push(RouteSpec {
        dst: net("0.0.0.0/0"),
        via: "192.168.1.1".parse().unwrap(),
    });
    let mut srv = node("server", NodeKind::Host);
    srv.routes.push(RouteSpec {
        dst: net("0.0.0.0/0"),
        via: "192.168.1.1".parse().unwrap(),
    });
    TopologySpec {
        nodes: vec![
            node("sw", NodeKind::Switch),
            lc,
            gw,
            srv,
            node("external", NodeKind::Host),
        ],
        links: vec![
            LinkSpec {
                a: port("sw", "p0", None),
                b: port("lanclient", "eth0", Some("192.168.1.50/24")),
            },
            LinkSpec {
                a: port("sw", "p1", None),
                b: port("server", "eth0", Some("192.168.1.2/24")),
            },
            LinkSpec {
                a: port("sw", "p2", None),
                b: port("gw", "lan0", Some("192.168.1.1/24")),
            },
            LinkSpec {
                a: port("gw", "wan0", Some("203.0.113.1/24")),
                b: port("external", "eth0", Some("203.0.113.10/24")),
            },
        ],
    }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip")
        .args(args)
        .status()
        .expect("ip (apt-get install -y iproute2)");
    assert!(st.success(), "ip {args:?}");
}

/// The same topology with `ip` commands (each link made inside a project
/// namespace with `ip -n`, never in the root namespace).
fn with_ip_commands(tag: &str) {
    let ns = |n: &str| format!("fn{}x{tag}-{n}", std::process::id());
    let (sw, lc, gw, srv, ext) = (
        ns("sw"),
        ns("lanclient"),
        ns("gw"),
        ns("server"),
        ns("external"),
    );
    for n in [&sw, &lc, &gw, &srv, &ext] {
        ip(&["netns", "add", n]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
    }
    ip(&["-n", &sw, "link", "add", "name", "br0", "type", "bridge"]);
    ip(&["-n", &sw, "link", "set", "br0", "up"]);
    for (i, (host, ifname, addr)) in [
        (&lc, "eth0", "192.168.1.50/24"),
        (&srv, "eth0", "192.168.1.2/24"),
        (&gw, "lan0", "192.168.1.1/24"),
    ]
    .iter()
    .enumerate()
    {
        let p = format!("p{i}");
        ip(&[
            "-n", &sw, "link", "add", "name", &p, "type", "veth", "peer", "name", ifname, "netns",
            host,
        ]);
        ip(&["-n", &sw, "link", "set", &p, "master", "br0", "up"]);
        ip(&["-n", host, "addr", "add", addr, "dev", ifname]);
        ip(&["-n", host, "link", "set", ifname, "up"]);
    }
    ip(&[
        "-n", &gw, "link", "add", "name", "wan0", "type", "veth", "peer", "name", "eth0", "netns",
        &ext,
    ]);
    ip(&["-n", &gw, "addr", "add", "203.0.113.1/24", "dev", "wan0"]);
    ip(&["-n", &gw, "link", "set", "wan0", "up"]);
    ip(&["-n", &ext, "addr", "add", "203.0.113.10/24", "dev", "eth0"]);
    ip(&["-n", &ext, "link", "set", "eth0", "up"]);
    ip(&[
        "netns",
        "exec",
        &gw,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]);
    ip(&["-n", &lc, "route", "add", "default", "via", "192.168.1.1"]);
    ip(&["-n", &srv, "route", "add", "default", "via", "192.168.1.1"]);
    for n in [&sw, &lc, &gw, &srv, &ext] {
        ip(&["netns", "del", n]);
    }
}

fn bench(c: &mut Criterion) {
    ftpnat_benches::require_root("topology");
    let spec = spec();
    let mut g = c.benchmark_group("topology_4_hosts");
    g.sample_size(20);
    g.bench_function("netlink", |b| {
        b.iter(|| drop(Topology::build(&spec).unwrap()))
    });
    g.bench_function("ip_commands", |b| b.iter(|| with_ip_commands("ipcmd")));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
