//! Scenario → [`TopologySpec`].
//!
//! Every gateway interface and every host address defines a network; members
//! of one network form a segment. A segment of two members is a direct veth
//! pair; any other is a switch namespace (`seg<n>`) with a bridge. Gateway
//! interfaces get fixed MACs (the sim engine answers ARP with them) and, for
//! the sim engine, no kernel address. Host ends run with offloads off so the
//! userspace gateway sees complete checksums and MTU-sized frames.
//!
//! A kernel gateway whose WAN is a /32 (PPPoE) has `wan_peers`: its WAN
//! address gets that network as point-to-point peer, and the hosts in it
//! get the WAN address as theirs — the link a PPPoE session gives.

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::{
    scenario::{raw::EngineKind, Scenario},
    topology::{LinkSpec, NodeKind, NodeSpec, PortSpec, RouteSpec, TopologySpec},
};

struct Member {
    node: String,
    ifname: String,
    addrs: Vec<IpNet>,
    mac: Option<[u8; 6]>,
    host: bool,
    peer: Option<IpNet>,
}

/// Builds the topology of a scenario.
pub fn topology_spec(sc: &Scenario) -> TopologySpec {
    let mut nodes = Vec::new();
    let mut segments: BTreeMap<IpNet, Vec<Member>> = BTreeMap::new();
    for g in &sc.gateways {
        // The kernel forwards for the kernel engine and for an image
        // gateway (whose container cannot write /proc/sys itself).
        let kernel = matches!(g.engine, EngineKind::Kernel | EngineKind::Image);
        nodes.push(NodeSpec {
            name: g.config.name.clone(),
            kind: NodeKind::Gateway,
            routes: vec![],
            sysctls: if kernel {
                vec![("net.ipv4.ip_forward".into(), "1".into())]
            } else {
                vec![]
            },
        });
        for i in &g.config.ifaces {
            let peers = g
                .wan_peers
                .filter(|_| i.side == crate::engine::Side::Outside);
            segments
                .entry(IpNet::V4(peers.unwrap_or(i.addr.trunc())))
                .or_default()
                .push(Member {
                    peer: peers.map(IpNet::V4),
                    node: g.config.name.clone(),
                    ifname: i.name.clone(),
                    addrs: if kernel {
                        vec![IpNet::V4(i.addr)]
                    } else {
                        vec![]
                    },
                    mac: Some(i.mac),
                    host: false,
                });
        }
    }
    for h in &sc.hosts {
        let routes = h
            .default_via
            .iter()
            .map(|(_, via)| RouteSpec {
                dst: "0.0.0.0/0".parse().expect("literal"),
                via: (*via).into(),
            })
            .collect();
        nodes.push(NodeSpec {
            name: h.name.clone(),
            kind: NodeKind::Host,
            routes,
            sysctls: vec![],
        });
        let key = h.addrs[0].trunc();
        let peer = sc.gateways.iter().find_map(|g| {
            let peers = g.wan_peers?;
            let wan = g
                .config
                .ifaces
                .iter()
                .find(|i| i.side == crate::engine::Side::Outside)?;
            IpNet::V4(peers)
                .contains(&h.addrs[0].addr())
                .then(|| IpNet::V4(ipnet::Ipv4Net::from(wan.addr.addr())))
        });
        segments.entry(key).or_default().push(Member {
            peer,
            node: h.name.clone(),
            ifname: "eth0".into(),
            addrs: h.addrs.clone(),
            mac: None,
            host: true,
        });
    }
    let mut links = Vec::new();
    let port = |m: &Member| PortSpec {
        node: m.node.clone(),
        ifname: m.ifname.clone(),
        addrs: m.addrs.clone(),
        mac: m.mac,
        offloads_off: m.host,
        peer: m.peer,
    };
    for (n, (_, members)) in segments.iter().enumerate() {
        if members.len() == 2 {
            links.push(LinkSpec {
                a: port(&members[0]),
                b: port(&members[1]),
            });
            continue;
        }
        let sw = format!("seg{n}");
        nodes.push(NodeSpec {
            name: sw.clone(),
            kind: NodeKind::Switch,
            routes: vec![],
            sysctls: vec![],
        });
        for (k, m) in members.iter().enumerate() {
            links.push(LinkSpec {
                a: PortSpec {
                    node: sw.clone(),
                    ifname: format!("p{k}"),
                    addrs: vec![],
                    mac: None,
                    offloads_off: false,
                    peer: None,
                },
                b: port(m),
            });
        }
    }
    TopologySpec { nodes, links }
}
