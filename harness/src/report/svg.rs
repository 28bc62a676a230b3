//! `topology.svg`: segments as horizontal buses (outside networks on top),
//! hosts as boxes on their bus, gateways as boxes joining their two buses
//! with their NAT/forward summary. Plain SVG written here; no Graphviz.

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::{engine::Side, scenario::Scenario};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the scenario's network.
pub fn topology_svg(sc: &Scenario) -> String {
    // Segments: outside networks first, then inside, then host-only ones.
    let mut segs: Vec<(IpNet, u8)> = Vec::new();
    let add = |n: IpNet, rank: u8, segs: &mut Vec<(IpNet, u8)>| {
        if let Some(s) = segs.iter_mut().find(|(m, _)| *m == n) {
            s.1 = s.1.min(rank);
        } else {
            segs.push((n, rank));
        }
    };
    for g in &sc.gateways {
        for i in &g.config.ifaces {
            add(
                IpNet::V4(i.addr.trunc()),
                if i.side == Side::Outside { 0 } else { 1 },
                &mut segs,
            );
        }
    }
    for h in &sc.hosts {
        add(h.addrs[0].trunc(), 2, &mut segs);
    }
    segs.sort_by_key(|(n, r)| (*r, *n));
    let row_of: BTreeMap<IpNet, usize> =
        segs.iter().enumerate().map(|(i, (n, _))| (*n, i)).collect();
    let (w, row_h, top) = (900, 170, 40);
    let height = top + row_h * segs.len().max(1) + 20;
    let mut out = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"monospace\" font-size=\"12\">\n");
    out.push_str(&format!("<rect width=\"{w}\" height=\"{height}\" fill=\"white\"/>\n<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n", esc(&sc.name)));
    let bus_y = |row: usize| top + 110 + row * row_h;
    for (i, (n, rank)) in segs.iter().enumerate() {
        let y = bus_y(i);
        let color = if *rank == 0 { "#c0392b" } else { "#2471a3" };
        out.push_str(&format!("<line x1=\"20\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{color}\" stroke-width=\"4\"/>\n", w - 20));
        let label = if *rank == 0 { "outside" } else { "inside" };
        out.push_str(&format!(
            "<text x=\"24\" y=\"{}\" fill=\"{color}\">{n} ({label})</text>\n",
            y + 18
        ));
    }
    // Hosts along their bus, left part.
    let mut used: BTreeMap<usize, usize> = BTreeMap::new();
    for h in &sc.hosts {
        let row = row_of[&h.addrs[0].trunc()];
        let k = used.entry(row).or_default();
        let x = 40 + *k * 200;
        *k += 1;
        let y = bus_y(row) - 80;
        let role = if h.server.is_some() {
            "FTP server"
        } else {
            "client"
        };
        out.push_str(&format!(
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#555\"/>\n",
            x + 80,
            y + 56,
            x + 80,
            bus_y(row)
        ));
        out.push_str(&format!("<rect x=\"{x}\" y=\"{y}\" width=\"160\" height=\"56\" rx=\"6\" fill=\"#eef\" stroke=\"#333\"/>\n"));
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-weight=\"bold\">{}</text>\n",
            x + 8,
            y + 17,
            esc(&h.name)
        ));
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\">{}</text>\n",
            x + 8,
            y + 33,
            esc(&h
                .addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" "))
        ));
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" fill=\"#555\">{role}</text>\n",
            x + 8,
            y + 49
        ));
    }
    // Gateways on the right, spanning their buses.
    for (gi, g) in sc.gateways.iter().enumerate() {
        let rows: Vec<usize> = g
            .config
            .ifaces
            .iter()
            .map(|i| row_of[&IpNet::V4(i.addr.trunc())])
            .collect();
        let (r0, r1) = (
            *rows.iter().min().unwrap_or(&0),
            *rows.iter().max().unwrap_or(&0),
        );
        let x = w - 330 + (gi % 2) * 20;
        let y = bus_y(r0) + 20 + (bus_y(r1) - bus_y(r0)).saturating_sub(150) / 2;
        let mut lines = vec![format!("{} [{:?} engine]", g.config.name, g.engine).to_lowercase()];
        for i in &g.config.ifaces {
            lines.push(format!("{} {} ({:?})", i.name, i.addr, i.side).to_lowercase());
        }
        match &g.config.nat {
            Some(n) => lines.push(format!(
                "masquerade: {:?}/{:?} map/filter",
                n.mapping, n.filtering
            )),
            None => lines.push("no NAT (routing only)".into()),
        }
        for f in &g.config.forwards {
            lines.push(format!(
                "fwd {}:{}-{} -> {}:{}",
                if f.proto == 6 { "tcp" } else { "udp" },
                f.ports.0,
                f.ports.1,
                f.to,
                f.to_port
            ));
        }
        lines.push(format!(
            "alg: {:?}; firewall: {} rule(s)",
            g.config.alg,
            g.config.firewall.rules.len()
        ));
        lines.push(
            if g.config.reject_unsolicited {
                "unsolicited inbound: reject (rst)"
            } else {
                "unsolicited inbound: drop (silent)"
            }
            .into(),
        );
        let hgt = 16 * lines.len() + 12;
        for r in &rows {
            let by = bus_y(*r);
            let (y1, y2) = if by < y { (by, y) } else { (y + hgt, by) };
            out.push_str(&format!("<line x1=\"{}\" y1=\"{y1}\" x2=\"{}\" y2=\"{y2}\" stroke=\"#333\" stroke-width=\"2\"/>\n", x + 150, x + 150));
        }
        out.push_str(&format!("<rect x=\"{x}\" y=\"{y}\" width=\"300\" height=\"{hgt}\" rx=\"6\" fill=\"#ffd\" stroke=\"#333\"/>\n"));
        for (k, l) in lines.iter().enumerate() {
            let weight = if k == 0 { " font-weight=\"bold\"" } else { "" };
            out.push_str(&format!(
                "<text x=\"{}\" y=\"{}\"{weight}>{}</text>\n",
                x + 8,
                y + 18 + k * 16,
                esc(l)
            ));
        }
    }
    out.push_str("</svg>\n");
    out
}
