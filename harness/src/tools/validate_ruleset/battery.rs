//! The rows of the battery, each an ordinary scenario around the same
//! topology: the gateway with the user's interfaces (and their rule set or
//! image), the FTP server and a LAN client inside, a client and a
//! reference FTP server outside.
//!
//! Where a row claims a port reaches something, a listener there says so:
//! `range-reachable` puts one on every port of the passive range on the
//! server and counts only the ports it accepted (a RST from the router, or
//! from a host with nothing listening, is not "reachable"); `router-exposure`
//! puts them on the router's common service ports in the gateway.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Params, ValidateError};
use crate::scenario::resolve::ServerKind;

/// What decides a failing row's trace report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
    /// Connections that should get through: report what blocked them.
    Through,
    /// Only connections to these ports matter (the range scan).
    Ports(u16, u16),
    /// Connections that should not reach a host behind the router (but
    /// port 21): report what forwarded them.
    ExposedHosts,
    /// Connections that should not reach the router itself: report what
    /// accepted them.
    ExposedRouter,
}

/// One row before it runs.
#[derive(Debug, Clone)]
pub(super) struct RowSpec {
    pub(super) name: &'static str,
    pub(super) needs: String,
    pub(super) required: bool,
    /// The probable cause in the user's terms, when it fails.
    pub(super) cause: String,
    pub(super) probe: Probe,
    /// The row's scenario, with `@GATEWAY@` for the gateway's engine keys.
    pub(super) scenario: String,
}

/// The addresses the battery gives its own hosts.
#[derive(Debug, Clone)]
pub(super) struct Addresses {
    pub(super) lan: Ipv4Net,
    pub(super) wan: Ipv4Net,
    pub(super) lanclient: Ipv4Addr,
    pub(super) client: Ipv4Net,
    pub(super) outside: Ipv4Net,
    /// A /32 WAN's point-to-point peer network (the outside hosts').
    pub(super) wan_peers: Option<Ipv4Net>,
}

/// A free host address in `net` avoiding `taken`, starting at `.start`.
pub(super) fn free(
    net: &Ipv4Net,
    start: u32,
    taken: &[Ipv4Addr],
) -> Result<Ipv4Addr, ValidateError> {
    let base = u32::from(net.network());
    (start..start + 200)
        .map(|o| Ipv4Addr::from(base + o))
        .find(|a| net.contains(a) && *a != net.broadcast() && !taken.contains(a))
        .ok_or_else(|| ValidateError::Params(format!("no free address left in {net}")))
}

/// Where the battery's hosts live.
pub(super) fn addresses(p: &Params) -> Result<Addresses, ValidateError> {
    let lan = p.lan_main()?.addr;
    let wan = p.wan[0].addr;
    let lanclient = free(&lan.trunc(), 50, &[lan.addr(), p.server])?;
    if wan.prefix_len() == 32 {
        // PPPoE: the outside hosts sit behind the point-to-point peer.
        let taken: Vec<Ipv4Net> = p.lan.iter().chain(&p.wan).map(|i| i.addr.trunc()).collect();
        let peers = ["203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24"]
            .iter()
            .map(|n| n.parse::<Ipv4Net>().expect("literal"))
            .find(|n| {
                !n.contains(&wan.addr())
                    && !taken
                        .iter()
                        .any(|t| t.contains(&n.network()) || n.contains(&t.network()))
            })
            .ok_or_else(|| {
                ValidateError::Params("no documentation network left for the WAN-side hosts".into())
            })?;
        let at =
            |o: u32| Ipv4Net::new(Ipv4Addr::from(u32::from(peers.network()) + o), 24).expect("24");
        return Ok(Addresses {
            lan,
            wan,
            lanclient,
            client: at(10),
            outside: at(2),
            wan_peers: Some(peers),
        });
    }
    let client = free(&wan.trunc(), 10, &[wan.addr()])?;
    let outside = free(&wan.trunc(), 2, &[wan.addr(), client])?;
    let net = |a: Ipv4Addr| Ipv4Net::new(a, wan.prefix_len()).expect("prefix of wan");
    Ok(Addresses {
        lan,
        wan,
        lanclient,
        client: net(client),
        outside: net(outside),
        wan_peers: None,
    })
}

/// Ports for the router's own services.
pub(super) fn router_ports(p: &Params) -> Vec<u16> {
    let mut v: Vec<u16> = [22, 23, 53, 80, 443, 8080]
        .into_iter()
        .chain(p.router_services.iter().copied())
        .filter(|x| *x != 21)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The battery for `p`.
pub(super) fn rows(p: &Params) -> Result<Vec<RowSpec>, ValidateError> {
    let (lo, hi) = p.passive;
    let a = addresses(p)?;
    let wan_ip = a.wan.addr();
    let masquerades = p.server_masquerade != Some(false);
    let extra: Vec<String> = p
        .lan
        .iter()
        .chain(&p.wan)
        .filter(|i| i.addr != a.lan && i.addr != a.wan)
        .map(|i| format!("\"{}={}\"", i.name, i.addr))
        .collect();
    let lan_main = p.lan_main()?;
    let topology = |server: &str, tls: bool, services: &[u16], gw_services: &[u16]| {
        format!(
            r#"
[[gateway]]
name = "gw"
lan = "{lan}"
wan = "{wan}"
lan_name = "{lan_name}"
wan_name = "{wan_name}"
services = [{gw_services}]
{extra}{peers}@GATEWAY@

[[host]]
name = "server"
addr = "{server_ip}/{lan_prefix}"
services = [{services}]
files = {{ "hello.txt" = "hello through the NAT\n" }}
server = {{ kind = "{kind}"{tls}, config = {{ {server}{timeouts} }} }}

[[host]]
name = "lanclient"
addr = "{lanclient}/{lan_prefix}"

[[host]]
name = "client"
addr = "{client}"

[[host]]
name = "outside"
addr = "{outside}"
files = {{ "hello.txt" = "hello through the NAT\n" }}
server = {{ kind = "reference", config = {{ passive_ports = [61000, 61010] }} }}
"#,
            lan = a.lan,
            wan = a.wan,
            lan_name = lan_main.name,
            wan_name = p.wan[0].name,
            gw_services = list(gw_services),
            extra = if extra.is_empty() {
                String::new()
            } else {
                format!("extra_interfaces = [{}]\n", extra.join(", "))
            },
            peers = a
                .wan_peers
                .map_or(String::new(), |n| format!("wan_peers = \"{n}\"\n")),
            server_ip = p.server,
            lan_prefix = a.lan.prefix_len(),
            services = list(services),
            kind = p.server_kind.name(),
            tls = if tls { ", tls = true" } else { "" },
            // A data connection that never comes fails the row in 3 s, not
            // 30 (where the server has such a setting).
            timeouts = match p.server_kind {
                ServerKind::Reference | ServerKind::Vsftpd => ", timeouts = { data_connect = 3 }",
                ServerKind::Proftpd | ServerKind::PureFtpd => "",
            },
            lanclient = a.lanclient,
            client = a.client,
            outside = a.outside,
        )
    };
    let login = |who: &str, target: String| {
        format!("[[step]]\nclient = \"{who}\"\nconnect = \"{target}:21\"\ntimeout_ms = 2000\nexpect = {{ code = 220 }}\n[[step]]\nlogin = \"anonymous\"\nexpect = {{ code = 230 }}\n")
    };
    let outside_login = login("client", wan_ip.to_string());
    let inside_login = login("lanclient", a.outside.addr().to_string());
    let retr = |mode: &str| {
        format!("[[step]]\nretr = \"hello.txt\"\nmode = \"{mode}\"\ntimeout_ms = 3000\nexpect = {{ transfer = \"ok\", code = 226 }}\n")
    };
    let ports = format!("passive_ports = [{lo}, {hi}]");
    let masq = format!("masquerade_address = \"{wan_ip}\", {ports}");
    let declared = if masquerades {
        masq.clone()
    } else {
        ports.clone()
    };
    let range = format!("{lo}-{hi}");
    let usual = [22u16, 3306, 8080];
    let router = router_ports(p);
    // Other services on the server, for the exposure scan to find: the
    // usual ones and the router's (a DNAT of 80 to the server shows).
    let mut exposed: Vec<u16> = usual
        .iter()
        .chain(&router)
        .copied()
        .filter(|x| *x != 21 && !(lo..=hi).contains(x))
        .collect();
    exposed.sort_unstable();
    exposed.dedup();
    // Fallback: a range of one or two ports, held by as many sessions, so
    // the next PASV falls back to a kernel-chosen port outside the range.
    let small_hi = if hi > lo { lo + 1 } else { lo };
    let holders = usize::from(small_hi - lo) + 1;
    let mut fallback_steps = String::new();
    for c in 0..=holders {
        fallback_steps.push_str(&format!("[[step]]\nclient = \"c{c}\"\nhost = \"client\"\nconnect = \"{wan_ip}:21\"\ntimeout_ms = 2000\nexpect = {{ code = 220 }}\n[[step]]\nclient = \"c{c}\"\nlogin = \"anonymous\"\nexpect = {{ code = 230 }}\n[[step]]\nclient = \"c{c}\"\nsend = \"TYPE I\"\nexpect = {{ code = 200 }}\n"));
    }
    for c in 0..holders {
        fallback_steps.push_str(&format!("[[step]]\nclient = \"c{c}\"\nsend = \"PASV\"\nexpect = {{ code = 227, port_in = [{lo}, {small_hi}] }}\n"));
    }
    fallback_steps.push_str(&format!("[[step]]\nclient = \"c{holders}\"\nsend = \"PASV\"\nexpect = {{ code = 227, port_not_in = [{lo}, {small_hi}] }}\n[[step]]\nclient = \"c{holders}\"\nretr = \"hello.txt\"\nmode = \"pending\"\ntimeout_ms = 3000\nexpect = {{ transfer = \"ok\", code = 226 }}\n"));
    let near = format!(
        "1-1024,{}-{},{}-{},3306,5432,8080,8443",
        lo.saturating_sub(10).max(1025),
        lo.saturating_sub(1).max(1025),
        hi.saturating_add(1),
        hi.saturating_add(10)
    );
    // Listeners on every port of the range (not 21: the FTP server's).
    let mut range_services: Vec<u16> = (lo..=hi).filter(|x| *x != 21).chain(usual).collect();
    range_services.sort_unstable();
    range_services.dedup();
    let accepted_range =
        list(&(lo..=hi).filter(|x| *x != 21).collect::<Vec<_>>()).replace(", ", ",");
    let mut rows = vec![
        RowSpec {
            name: "control-connection",
            needs: format!("forward tcp 21 to {}", p.server),
            required: true,
            cause: "port 21 is not forwarded to the server (or the forward chain drops it)".into(),
            probe: Probe::Through,
            scenario: format!("{}{outside_login}", topology(&declared, false, &usual, &[])),
        },
        if masquerades {
            RowSpec {
                name: "passive-pasv",
                needs: format!("forward tcp {range} to {} (the server announces {wan_ip})", p.server),
                required: true,
                cause: "the passive range is not (fully) forwarded, or the forward chain drops new connections to it".into(),
                probe: Probe::Through,
                scenario: format!("{}{outside_login}{}", topology(&masq, false, &usual, &[]), retr("pasv")),
            }
        } else {
            RowSpec {
                name: "passive-pasv",
                needs: format!("an FTP ALG rewriting the 227 (the server announces its own address {})", p.server),
                required: true,
                cause: "no FTP helper rewrites the 227 (ct helper set on the forwarded port 21), or the connections it expects are not accepted as related".into(),
                probe: Probe::Through,
                scenario: format!("{}{outside_login}{}", topology(&ports, false, &usual, &[]), retr("pasv")),
            }
        },
        RowSpec {
            name: "passive-epsv",
            needs: format!("forward tcp {range} (EPSV carries no address)"),
            required: true,
            cause: "the passive range is not (fully) forwarded".into(),
            probe: Probe::Through,
            scenario: format!("{}{outside_login}{}", topology(&declared, false, &usual, &[]), retr("epsv")),
        },
        RowSpec {
            name: "range-reachable",
            needs: if masquerades {
                format!("every port of {range} reaches the server")
            } else {
                format!("every port of {range} reaches the server (without the ALG: FTPS, or a server that masquerades)")
            },
            required: masquerades,
            cause: "part of the passive range is not forwarded or is dropped".into(),
            probe: Probe::Ports(lo, hi),
            scenario: format!(
                "{}[[step]]\nscan = {{ from = \"client\", target = \"{wan_ip}\", ports = \"{range}\" }}\nexpect = {{ accepted = {{ server = \"{accepted_range}\" }} }}\n",
                topology(&masq, false, &range_services, &[])
            ),
        },
        RowSpec {
            name: "exposure",
            needs: format!("nothing reachable from outside but 21 and {range} (sampled)"),
            required: true,
            cause: "something else is reachable from outside".into(),
            probe: Probe::ExposedHosts,
            scenario: format!(
                "{}[[step]]\nscan = {{ from = \"client\", target = \"{wan_ip}\", ports = \"{near}\" }}\nexpect = {{ open = \"21\" }}\n",
                topology(&masq, false, &exposed, &[])
            ),
        },
        RowSpec {
            name: "router-exposure",
            needs: format!("the router's own services ({}) not reachable from outside", list(&router)),
            required: true,
            cause: "the rule set lets outside clients reach the router itself on these ports: whatever listens there (ssh, the web interface, DNS) is exposed".into(),
            probe: Probe::ExposedRouter,
            scenario: format!(
                "{}[[step]]\nscan = {{ from = \"client\", target = \"{wan_ip}\", ports = \"{}\" }}\nexpect = {{ accepted = {{ gw = \"\" }} }}\n",
                topology(&masq, false, &[], &router),
                list(&router).replace(", ", ",")
            ),
        },
        RowSpec {
            name: "inside-client-passive",
            needs: "masquerade inside clients going out".into(),
            required: true,
            cause: "no masquerade (source NAT) on the way out, or the forward chain drops LAN traffic".into(),
            probe: Probe::Through,
            scenario: format!("{}{inside_login}{}", topology(&ports, false, &usual, &[]), retr("pasv")),
        },
        RowSpec {
            name: "inside-client-active",
            needs: "an FTP ALG (ct helper on port 21) for inside clients' PORT".into(),
            required: false,
            cause: "no FTP helper assigned (ct helper set), or related connections are not accepted".into(),
            probe: Probe::Through,
            scenario: format!("{}{inside_login}{}", topology(&ports, false, &usual, &[]), retr("port")),
        },
    ];
    if masquerades {
        rows.push(RowSpec {
            name: "passive-without-masquerade",
            needs: "an FTP ALG rewriting the 227 of a server without masquerade".into(),
            required: false,
            cause: "no FTP helper assigned to the forwarded port 21 (or related traffic dropped)"
                .into(),
            probe: Probe::Through,
            scenario: format!(
                "{}{outside_login}{}",
                topology(&ports, false, &usual, &[]),
                retr("pasv")
            ),
        });
    }
    rows.extend([
        RowSpec {
            name: "ftps-passive",
            needs: format!("FTPS (AUTH TLS, PROT P) from outside: the ALG is blind, so the masquerade address and the forwarded range ({range}) must carry it"),
            required: false,
            cause: "with TLS the FTP helper cannot see the 227: the passive range must be forwarded and accepted by rules of its own, not only as 'related' traffic of the helper".into(),
            probe: Probe::Through,
            scenario: format!(
                "{}[[step]]\nclient = \"client\"\nconnect = \"{wan_ip}:21\"\ntimeout_ms = 2000\nexpect = {{ code = 220 }}\n[[step]]\nauth_tls = true\nexpect = {{ code = 234 }}\n[[step]]\nsend = \"PBSZ 0\"\nexpect = {{ code = 200 }}\n[[step]]\nsend = \"PROT P\"\nexpect = {{ code = 200 }}\n[[step]]\nlogin = \"anonymous\"\nexpect = {{ code = 230 }}\n{}",
                topology(&masq, true, &usual, &[]),
                retr("pasv")
            ),
        },
        RowSpec {
            name: "hairpin",
            needs: format!("inside clients reaching the server via {wan_ip}"),
            required: false,
            cause: "no hairpin NAT (DNAT from the LAN side plus masquerade back into the LAN)".into(),
            probe: Probe::Through,
            scenario: format!(
                "{}{}{}",
                topology(&declared, false, &usual, &[]),
                login("lanclient", wan_ip.to_string()),
                retr("pasv")
            ),
        },
        RowSpec {
            name: "fallback-port",
            needs: format!("a passive port outside {range} reachable when the range runs out (servers that fall back, like ProFTPD)"),
            required: false,
            cause: "the port the server falls back to (outside the range) is not forwarded: behind this rule set a server that falls back loses those transfers — use passive_exhausted = \"wait\" or \"refuse\", or a larger range".into(),
            probe: Probe::Through,
            scenario: format!(
                "{}{fallback_steps}",
                topology(
                    &format!("masquerade_address = \"{wan_ip}\", passive_ports = [{lo}, {small_hi}], passive_exhausted = \"fallback\""),
                    false,
                    &usual,
                    &[]
                )
            ),
        },
    ]);
    if let Some(only) = &p.rows {
        for o in only {
            if !rows.iter().any(|r| r.name == o) {
                let names: Vec<&str> = rows.iter().map(|r| r.name).collect();
                return Err(ValidateError::Params(format!(
                    "--rows: no row {o:?} (rows: {})",
                    names.join(", ")
                )));
            }
        }
        rows.retain(|r| only.iter().any(|o| o == r.name));
    }
    Ok(rows)
}
