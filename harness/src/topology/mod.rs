//! Topologies: hosts, gateways and switches as network namespaces, joined by
//! veth pairs, built through netlink.
//!
//! A [`TopologySpec`] is plain data; [`Topology::build`] realises it and the
//! returned value owns everything it made: dropping it (also on panic) kills
//! the processes inside and deletes the namespaces, which deletes their
//! links. Links are created inside project namespaces only — a veth is made
//! in one node's namespace and its peer moved to the other's — so the root
//! namespace never sees a link, address, route or sysctl change.
//!
//! LAN segments with more than two members are a [`NodeKind::Switch`]: a
//! bridge in a namespace of its own, so bridged frames never cross a
//! gateway's rule set (br_netfilter).
//!
//! ```no_run
//! use ftpnat::topology::*;
//! let spec = TopologySpec::nat_example();
//! let topo = Topology::build(&spec).unwrap();
//! let out = topo.command("client", "ip", &["-br", "addr"]).unwrap().output().unwrap();
//! println!("{}", String::from_utf8_lossy(&out.stdout));
//! ```

pub mod docker;
pub mod link;
pub mod netns;
pub mod process;
pub mod rootless;
pub mod sockets;
pub mod sweep;
pub mod watchdog;

use std::{collections::BTreeMap, io, net::IpAddr, sync::Arc};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use netns::{new_prefix, Netns};
pub use process::NsProcess;
pub use sockets::{HostSockets, NsSockets, SocketFactory};
pub use sweep::{sweep, Swept};

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// An end host.
    Host,
    /// A router; for the kernel engine it forwards, for the sim engine its
    /// interfaces carry no address and IPv6 is off.
    Gateway,
    /// A LAN segment: a bridge `br0` that every port of the node joins.
    Switch,
}

/// One namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Node name (unique).
    pub name: String,
    /// Kind.
    pub kind: NodeKind,
    /// Static routes.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Sysctls applied before links are created (`net.ipv4.ip_forward` …).
    #[serde(default)]
    pub sysctls: Vec<(String, String)>,
}

/// A route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteSpec {
    /// Destination prefix (`0.0.0.0/0` for default).
    pub dst: IpNet,
    /// Next hop.
    pub via: IpAddr,
}

/// One end of a veth pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortSpec {
    /// Node name.
    pub node: String,
    /// Interface name inside the node.
    pub ifname: String,
    /// Addresses.
    #[serde(default)]
    pub addrs: Vec<IpNet>,
    /// Fixed MAC address.
    #[serde(default)]
    pub mac: Option<[u8; 6]>,
    /// Turn off checksum/segmentation offloads (needed on host ends facing a
    /// userspace gateway).
    #[serde(default)]
    pub offloads_off: bool,
    /// Point-to-point peer of the first address (as pppd sets it: `ip addr
    /// add LOCAL peer PEER`): the only route the address brings is to the
    /// peer, e.g. a PPPoE WAN that is a /32.
    #[serde(default)]
    pub peer: Option<IpNet>,
}

/// A veth pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkSpec {
    /// One end.
    pub a: PortSpec,
    /// The other end.
    pub b: PortSpec,
}

/// A whole topology.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TopologySpec {
    /// Nodes.
    pub nodes: Vec<NodeSpec>,
    /// Links.
    pub links: Vec<LinkSpec>,
}

/// Why a topology could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The spec names a node that does not exist, or twice.
    #[error("invalid topology: {0}")]
    Invalid(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        source: io::Error,
    },
}

fn io_ctx(what: impl Into<String>) -> impl FnOnce(io::Error) -> TopologyError {
    let what = what.into();
    move |source| TopologyError::Io { what, source }
}

impl TopologySpec {
    /// The DESIGN's NAT example: `client` (203.0.113.10) on the WAN side of
    /// `gw` (192.168.1.1 / 203.0.113.1, kernel-forwarding) and `server`
    /// (192.168.1.2) on its LAN.
    pub fn nat_example() -> TopologySpec {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let node = |name: &str, kind| NodeSpec {
            name: name.into(),
            kind,
            routes: vec![],
            sysctls: vec![],
        };
        let port = |node: &str, ifname: &str, addr: &str| PortSpec {
            node: node.into(),
            ifname: ifname.into(),
            addrs: vec![net(addr)],
            mac: None,
            offloads_off: false,
            peer: None,
        };
        let mut gw = node("gw", NodeKind::Gateway);
        gw.sysctls.push(("net.ipv4.ip_forward".into(), "1".into()));
        let mut server = node("server", NodeKind::Host);
        server.routes.push(RouteSpec {
            dst: net("0.0.0.0/0"),
            via: ip("192.168.1.1"),
        });
        TopologySpec {
            nodes: vec![node("client", NodeKind::Host), gw, server],
            links: vec![
                LinkSpec {
                    a: port("gw", "lan0", "192.168.1.1/24"),
                    b: port("server", "eth0", "192.168.1.2/24"),
                },
                LinkSpec {
                    a: port("gw", "wan0", "203.0.113.1/24"),
                    b: port("client", "eth0", "203.0.113.10/24"),
                },
            ],
        }
    }

    fn validate(&self) -> Result<(), TopologyError> {
        let mut seen = std::collections::HashSet::new();
        for n in &self.nodes {
            if !seen.insert(n.name.as_str()) {
                return Err(TopologyError::Invalid(format!(
                    "node {:?} defined twice",
                    n.name
                )));
            }
            if n.name.is_empty()
                || n.name.len() > 64
                || !n
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(TopologyError::Invalid(format!(
                    "node name {:?}: use letters, digits, - and _",
                    n.name
                )));
            }
        }
        for l in &self.links {
            for p in [&l.a, &l.b] {
                if !seen.contains(p.node.as_str()) {
                    return Err(TopologyError::Invalid(format!(
                        "link end names unknown node {:?}",
                        p.node
                    )));
                }
                if p.ifname.is_empty() || p.ifname.len() > 15 || p.ifname.contains(['/', ' ']) {
                    return Err(TopologyError::Invalid(format!(
                        "interface name {:?} must be 1-15 characters",
                        p.ifname
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A built node.
#[derive(Debug)]
pub struct Node {
    /// Its namespace.
    pub ns: Arc<Netns>,
    /// Its kind.
    pub kind: NodeKind,
}

/// A realised topology; dropping it removes everything it created.
#[derive(Debug)]
pub struct Topology {
    /// The per-run prefix of every namespace name.
    pub prefix: String,
    nodes: BTreeMap<String, Node>,
}

impl Topology {
    /// Builds `spec` under a fresh prefix.
    pub fn build(spec: &TopologySpec) -> Result<Topology, TopologyError> {
        Self::build_in(spec, new_prefix(), &BTreeMap::new())
    }

    /// Builds `spec` under `prefix`; nodes named in `adopted` live in the
    /// network namespace of that process (a container's) instead of a new
    /// one — the links and addresses are the same either way.
    pub fn build_in(
        spec: &TopologySpec,
        prefix: String,
        adopted: &BTreeMap<String, i32>,
    ) -> Result<Topology, TopologyError> {
        spec.validate()?;
        let mut topo = Topology {
            prefix: prefix.clone(),
            nodes: BTreeMap::new(),
        };
        for n in &spec.nodes {
            let name = format!("{prefix}-{}", n.name);
            let ns = match adopted.get(&n.name) {
                Some(pid) => Netns::adopt(&name, *pid),
                None => Netns::create(&name),
            }
            .map_err(io_ctx(format!("namespace for {}", n.name)))?;
            let ns = Arc::new(ns);
            let sysctls = n.sysctls.clone();
            let kind = n.kind;
            ns.run(move || -> io::Result<()> {
                // Simulated segments have no duplicates; DAD would only leave
                // IPv6 addresses tentative (unbindable) for a second or two.
                link::sysctl("net.ipv6.conf.all.accept_dad", "0")?;
                link::sysctl("net.ipv6.conf.default.accept_dad", "0")?;
                // Before any veth exists: gateways get no IPv6 (no link-local
                // noise); hosts get it even where a container runtime turned
                // it off in the namespace it made.
                let v6_off = if kind == NodeKind::Gateway { "1" } else { "0" };
                link::sysctl("net.ipv6.conf.all.disable_ipv6", v6_off)?;
                link::sysctl("net.ipv6.conf.default.disable_ipv6", v6_off)?;
                for (k, v) in &sysctls {
                    link::sysctl(k, v)?;
                }
                if kind == NodeKind::Switch {
                    let nl = link::Netlink::open()?;
                    nl.add_bridge("br0")?;
                    nl.up("br0")?;
                }
                Ok(())
            })
            .and_then(|r| r)
            .map_err(io_ctx(format!("set up node {}", n.name)))?;
            topo.nodes.insert(n.name.clone(), Node { ns, kind });
        }
        // Create each pair in the a-side namespace with its peer made directly
        // in the b side's namespace; one thread per a-side node.
        for n in &spec.nodes {
            let mine: Vec<&LinkSpec> = spec.links.iter().filter(|l| l.a.node == n.name).collect();
            if mine.is_empty() {
                continue;
            }
            let a = Arc::clone(&topo.nodes[&n.name].ns);
            let peers: Vec<Arc<Netns>> = mine
                .iter()
                .map(|l| Arc::clone(&topo.nodes[&l.b.node].ns))
                .collect();
            a.run(|| -> io::Result<()> {
                let nl = link::Netlink::open()?;
                for (l, b) in mine.iter().zip(&peers) {
                    nl.add_veth_into(&l.a.ifname, &l.b.ifname, std::os::fd::AsFd::as_fd(b.fd()))
                        .map_err(|e| {
                            io::Error::new(
                                e.kind(),
                                format!(
                                    "link {}:{} - {}:{}: {e}",
                                    l.a.node, l.a.ifname, l.b.node, l.b.ifname
                                ),
                            )
                        })?;
                }
                Ok(())
            })
            .and_then(|r| r)
            .map_err(io_ctx(format!("links of {}", n.name)))?;
        }
        for n in &spec.nodes {
            let node = &topo.nodes[&n.name];
            let ports: Vec<&PortSpec> = spec
                .links
                .iter()
                .flat_map(|l| [&l.a, &l.b])
                .filter(|p| p.node == n.name)
                .collect();
            let kind = node.kind;
            node.ns
                .run(|| -> io::Result<()> {
                    let nl = link::Netlink::open()?;
                    for p in &ports {
                        if let Some(mac) = p.mac {
                            nl.set_mac(&p.ifname, mac)?;
                        }
                        if p.offloads_off {
                            link::disable_offloads(&p.ifname)?;
                        }
                        for (i, a) in p.addrs.iter().enumerate() {
                            match p.peer.filter(|_| i == 0) {
                                Some(peer) => nl.add_addr_peer(&p.ifname, a.addr(), peer)?,
                                None => nl.add_addr(&p.ifname, *a)?,
                            }
                        }
                        if kind == NodeKind::Switch {
                            nl.set_master(&p.ifname, "br0")?;
                        }
                        nl.up(&p.ifname)?;
                    }
                    for r in &n.routes {
                        nl.add_route(r.dst, r.via)?;
                    }
                    Ok(())
                })
                .and_then(|r| r)
                .map_err(io_ctx(format!("configure node {}", n.name)))?;
        }
        topo.wait_operational(std::time::Duration::from_secs(3))?;
        Ok(topo)
    }

    /// Waits until every interface of every node is operationally up, so
    /// the first frame a scenario sends is not dropped by a link whose
    /// carrier is still coming up.
    fn wait_operational(&self, bound: std::time::Duration) -> Result<(), TopologyError> {
        let deadline = std::time::Instant::now() + bound;
        for (name, node) in &self.nodes {
            let pending = node
                .ns
                .run(|| -> io::Result<Vec<String>> {
                    let nl = link::Netlink::open()?;
                    loop {
                        let pending = nl.not_up()?;
                        if pending.is_empty() || std::time::Instant::now() >= deadline {
                            return Ok(pending);
                        }
                        for name in &pending {
                            let _ = link::sync_link(name);
                        }
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                })
                .and_then(|r| r)
                .map_err(io_ctx(format!("waiting for the links of {name}")))?;
            if !pending.is_empty() {
                return Err(TopologyError::Invalid(format!(
                    "interfaces of {name} not up within {bound:?}: {}",
                    pending.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// All node names.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// Namespace of `name` (panics on an unknown node: a programming error).
    pub fn ns(&self, name: &str) -> &Arc<Netns> {
        &self
            .nodes
            .get(name)
            .unwrap_or_else(|| panic!("no node {name:?} in topology"))
            .ns
    }

    /// A socket factory for `node`.
    pub fn sockets(&self, node: &str) -> Arc<NsSockets> {
        Arc::new(NsSockets {
            ns: Arc::clone(self.ns(node)),
        })
    }

    /// A `Command` that will run inside `node`.
    pub fn command(
        &self,
        node: &str,
        program: &str,
        args: &[&str],
    ) -> io::Result<std::process::Command> {
        let mut cmd = std::process::Command::new(program);
        cmd.args(args);
        self.ns(node).command(&mut cmd)?;
        Ok(cmd)
    }
}
