//! Netlink and ethtool operations on the *current thread's* namespace.
//!
//! Call these only from inside [`super::netns::Netns::run`]: each opens its
//! netlink socket in whatever namespace the calling thread is in, which is
//! how the root namespace is never touched.

use std::{
    io,
    net::IpAddr,
    os::fd::{AsRawFd, BorrowedFd},
};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

fn nl_err(e: rtnetlink::Error) -> io::Error {
    io::Error::other(e.to_string())
}

/// A netlink session bound to the calling thread's namespace.
pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: Handle,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Netlink")
    }
}

impl Netlink {
    /// Opens a netlink socket in the current thread's namespace.
    pub fn open() -> io::Result<Netlink> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection()?;
            tokio::spawn(conn);
            Ok::<_, io::Error>(handle)
        })?;
        Ok(Netlink { rt, handle })
    }

    /// The index of interface `name`.
    pub fn index(&self, name: &str) -> io::Result<u32> {
        self.rt.block_on(async {
            let mut links = self
                .handle
                .link()
                .get()
                .match_name(name.to_string())
                .execute();
            match links.try_next().await {
                Ok(Some(l)) => Ok(l.header.index),
                Ok(None) => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no interface {name}"),
                )),
                Err(e) => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("interface {name}: {e}"),
                )),
            }
        })
    }

    /// Every interface's name and operational state.
    fn links(&self) -> io::Result<Vec<(String, Option<rtnetlink::packet_route::link::State>)>> {
        use rtnetlink::packet_route::link::LinkAttribute;
        self.rt.block_on(async {
            let links: Vec<_> = self
                .handle
                .link()
                .get()
                .execute()
                .try_collect()
                .await
                .map_err(nl_err)?;
            Ok(links
                .iter()
                .filter_map(|l| {
                    let name = l.attributes.iter().find_map(|a| match a {
                        LinkAttribute::IfName(n) => Some(n.clone()),
                        _ => None,
                    })?;
                    let state = l.attributes.iter().find_map(|a| match a {
                        LinkAttribute::OperState(s) => Some(*s),
                        _ => None,
                    });
                    Some((name, state))
                })
                .collect())
        })
    }

    /// Names of all interfaces.
    pub fn names(&self) -> io::Result<Vec<String>> {
        Ok(self.links()?.into_iter().map(|(n, _)| n).collect())
    }

    /// Names of interfaces (other than `lo`) whose operational state is not
    /// up yet. Carrier and qdisc activation happen asynchronously (linkwatch);
    /// until then frames sent on the interface are dropped.
    pub fn not_up(&self) -> io::Result<Vec<String>> {
        use rtnetlink::packet_route::link::State;
        Ok(self
            .links()?
            .into_iter()
            .filter(|(name, state)| {
                name != "lo" && !matches!(state, Some(State::Up) | Some(State::Unknown))
            })
            .map(|(n, _)| n)
            .collect())
    }

    /// Creates a veth pair with `name` here and `peer` created directly in
    /// the namespace `peer_ns` (like `ip link add … peer name … netns …`).
    /// Creating the peer in place avoids moving an interface between
    /// namespaces, which waits for an RCU grace period.
    pub fn add_veth_into(&self, name: &str, peer: &str, peer_ns: BorrowedFd<'_>) -> io::Result<()> {
        use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
        use rtnetlink::LinkMessageBuilder;
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .setns_by_fd(peer_ns.as_raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(name.to_string())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        self.rt
            .block_on(self.handle.link().add(msg).execute())
            .map_err(|e| io::Error::other(format!("veth {name}/{peer}: {e}")))
    }

    /// Creates a bridge.
    pub fn add_bridge(&self, name: &str) -> io::Result<()> {
        self.rt
            .block_on(
                self.handle
                    .link()
                    .add(LinkBridge::new(name).build())
                    .execute(),
            )
            .map_err(|e| io::Error::other(format!("bridge {name}: {e}")))
    }

    /// Sets `name` up.
    pub fn up(&self, name: &str) -> io::Result<()> {
        let index = self.index(name)?;
        self.rt
            .block_on(
                self.handle
                    .link()
                    .set(LinkUnspec::new_with_index(index).up().build())
                    .execute(),
            )
            .map_err(|e| io::Error::other(format!("set {name} up: {e}")))
    }

    /// Enslaves `port` to `bridge`.
    pub fn set_master(&self, port: &str, bridge: &str) -> io::Result<()> {
        let (p, b) = (self.index(port)?, self.index(bridge)?);
        self.rt
            .block_on(
                self.handle
                    .link()
                    .set(LinkUnspec::new_with_index(p).controller(b).build())
                    .execute(),
            )
            .map_err(|e| io::Error::other(format!("{port} into {bridge}: {e}")))
    }

    /// Sets the MAC address of `name`.
    pub fn set_mac(&self, name: &str, mac: [u8; 6]) -> io::Result<()> {
        let index = self.index(name)?;
        self.rt
            .block_on(
                self.handle
                    .link()
                    .set(
                        LinkUnspec::new_with_index(index)
                            .address(mac.to_vec())
                            .build(),
                    )
                    .execute(),
            )
            .map_err(|e| io::Error::other(format!("set mac of {name}: {e}")))
    }

    /// Adds an address to `name`.
    pub fn add_addr(&self, name: &str, addr: IpNet) -> io::Result<()> {
        let index = self.index(name)?;
        self.rt
            .block_on(
                self.handle
                    .address()
                    .add(index, addr.addr(), addr.prefix_len())
                    .execute(),
            )
            .map_err(|e| io::Error::other(format!("address {addr} on {name}: {e}")))
    }

    /// Adds `local` with point-to-point peer `peer` to `name` (`ip addr
    /// add LOCAL peer PEER dev NAME`).
    pub fn add_addr_peer(&self, name: &str, local: IpAddr, peer: IpNet) -> io::Result<()> {
        use rtnetlink::packet_route::address::AddressAttribute;
        let index = self.index(name)?;
        let mut req = self.handle.address().add(index, local, peer.prefix_len());
        let msg = req.message_mut();
        msg.attributes.retain(|a| {
            !matches!(
                a,
                AddressAttribute::Address(_) | AddressAttribute::Broadcast(_)
            )
        });
        msg.attributes.push(AddressAttribute::Address(peer.addr()));
        self.rt
            .block_on(req.execute())
            .map_err(|e| io::Error::other(format!("address {local} peer {peer} on {name}: {e}")))
    }

    /// Adds a route to `dst` via `gw`.
    pub fn add_route(&self, dst: IpNet, gw: IpAddr) -> io::Result<()> {
        let msg = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst.addr(), dst.prefix_len())
            .and_then(|b| b.gateway(gw))
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("route {dst} via {gw}: {e:?}"),
                )
            })?
            .build();
        self.rt
            .block_on(self.handle.route().add(msg).execute())
            .map_err(|e| io::Error::other(format!("route {dst} via {gw}: {e}")))
    }
}

/// Brings `lo` up in the current namespace.
pub fn loopback_up() -> io::Result<()> {
    Netlink::open()?.up("lo")
}

/// Writes a sysctl of the current thread's network namespace, e.g.
/// `net/ipv4/ip_forward`. `/proc/sys/net` resolves per calling thread.
pub fn sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value)
        .map_err(|e| io::Error::new(e.kind(), format!("sysctl {key}={value}: {e}")))
}

/// Reads a sysctl of the current thread's network namespace.
pub fn read_sysctl(key: &str) -> io::Result<String> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}

// Legacy ethtool ioctls (linux/ethtool.h); each takes a `struct ethtool_value`.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_SGSO: u32 = 0x24;
const ETHTOOL_SGRO: u32 = 0x2c;
const ETHTOOL_GLINK: u32 = 0x0a;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

fn ethtool(sock: &socket2::Socket, name: &str, cmd: u32, data: u32) -> io::Result<u32> {
    let mut val = EthtoolValue { cmd, data };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut val,
        _pad: [0; 16],
    };
    for (d, s) in req
        .name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *d = s as libc::c_char;
    }
    // SAFETY: req is a valid ifreq whose data points at a live ethtool_value.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(val.data)
}

/// Asks for the link state of `name` (ETHTOOL_GLINK). Besides answering,
/// the kernel's `ethtool_op_get_link` runs the device's pending linkwatch
/// event at once (`linkwatch_sync_dev`): operstate goes up and the qdisc
/// is attached now instead of at linkwatch's next once-a-second batch,
/// during which frames sent on the link are dropped.
pub fn sync_link(name: &str) -> io::Result<bool> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    Ok(ethtool(&sock, name, ETHTOOL_GLINK, 0)? != 0)
}

/// Turns off tx checksum offload, TSO, GSO and GRO on `name`, so a packet
/// socket sees MTU-sized frames with complete checksums (FIELD-NOTES: veth
/// offloads hand AF_PACKET partial checksums and 64 KB GSO frames).
pub fn disable_offloads(name: &str) -> io::Result<()> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    for cmd in [ETHTOOL_STXCSUM, ETHTOOL_STSO, ETHTOOL_SGSO, ETHTOOL_SGRO] {
        if let Err(e) = ethtool(&sock, name, cmd, 0) {
            // EOPNOTSUPP for a feature the device lacks is fine.
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(io::Error::new(
                    e.kind(),
                    format!("ethtool {cmd:#x} off on {name}: {e}"),
                ));
            }
        }
    }
    Ok(())
}
