//! The ladder as SVG: lanes as columns with lifelines, one row per
//! [`Row`], arrows between lanes, drops as a red cross on the gateway
//! lane with the reason, translations as a dashed connector between a
//! gateway's two sides. Every row carries an id and a `<title>` with the
//! full text; step rows are anchors (`ladder-step-N`) the steps table
//! links to.

use super::esc;
use crate::report::ladder::{Ladder, LaneKind, RowKind};

const LANE_W: usize = 330;
const LEFT: usize = 70;
const TOP: usize = 64;

fn lane_x(i: usize) -> usize {
    LEFT + LANE_W / 2 + i * LANE_W
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// What an arrow says: a 227/229 reply shortened to its numbers and the
/// address they mean, so the port is never cut off.
fn shown_text(text: &str, src: std::net::SocketAddr) -> String {
    let code = text.get(..4).unwrap_or("");
    if code == "227 " || code == "229 " {
        if let Some(a) = crate::report::ladder::announced_addr(text, src) {
            let inner = text
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .map_or("", |(i, _)| i);
            return format!("{}({inner}) = {a}", code);
        }
    }
    text.to_string()
}

/// Renders the ladder.
pub fn render(l: &Ladder) -> String {
    render_with_prefix(l, "")
}

/// Renders the ladder with `prefix` on its element ids (a page can hold
/// two ladders).
pub fn render_with_prefix(l: &Ladder, prefix: &str) -> String {
    // Heights first.
    let mut ys = Vec::with_capacity(l.rows.len());
    let mut y = TOP + 20;
    for r in &l.rows {
        ys.push(y);
        y += match &r.kind {
            RowKind::Step { .. } | RowKind::Folded { .. } => 28,
            RowKind::Msg(m) if m.warn.is_some() || m.dropped.is_some() => 50,
            RowKind::Msg(_) => 36,
        };
    }
    let height = y + 20;
    let width = LEFT + LANE_W * l.lanes.len().max(1) + 20;
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"ladder\" width=\"{width}\" height=\"{height}\" font-family=\"monospace\" font-size=\"11\">\n\
<defs><marker id=\"arr\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"context-stroke\"/></marker>\
<marker id=\"arr-blue\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#2471a3\"/></marker>\
<marker id=\"arr-green\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#1e8449\"/></marker>\
<marker id=\"arr-grey\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker>\
<marker id=\"arr-orange\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#d35400\"/></marker>\
<marker id=\"arr-red\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#c0392b\"/></marker></defs>\n\
<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n"
    );
    // Gateway bodies behind their two lanes, then lifelines and headers.
    let mut i = 0;
    while i < l.lanes.len() {
        if let LaneKind::Gateway { gateway, .. } = &l.lanes[i].kind {
            let mut j = i;
            while j + 1 < l.lanes.len()
                && matches!(&l.lanes[j + 1].kind, LaneKind::Gateway { gateway: g, .. } if g == gateway)
            {
                j += 1;
            }
            let x0 = lane_x(i) - 20;
            let x1 = lane_x(j) + 20;
            o.push_str(&format!(
                "<rect x=\"{x0}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"#fdf6d8\" stroke=\"#e0d49a\"/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#8a7a2a\">gateway {}</text>\n",
                x1 - x0,
                height - TOP - 10,
                (x0 + x1) / 2,
                height - 14,
                esc(gateway)
            ));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    for (i, lane) in l.lanes.iter().enumerate() {
        let x = lane_x(i);
        let (fill, stroke) = match lane.kind {
            LaneKind::Host => ("#eef", "#336"),
            LaneKind::Gateway { outside: true, .. } => ("#fbe3dc", "#c0392b"),
            LaneKind::Gateway { .. } => ("#dce9f7", "#2471a3"),
            LaneKind::Other => ("#eee", "#777"),
        };
        o.push_str(&format!(
            "<line x1=\"{x}\" y1=\"{TOP}\" x2=\"{x}\" y2=\"{}\" stroke=\"#aaa\" stroke-dasharray=\"4 3\"/>\n\
<rect x=\"{}\" y=\"8\" width=\"{}\" height=\"44\" rx=\"5\" fill=\"{fill}\" stroke=\"{stroke}\"/>\n\
<text x=\"{x}\" y=\"26\" text-anchor=\"middle\" font-weight=\"bold\" font-size=\"13\">{}</text>\n\
<text x=\"{x}\" y=\"43\" text-anchor=\"middle\" fill=\"#444\">{}</text>\n",
            height - 30,
            x - LANE_W / 2 + 14,
            LANE_W - 28,
            esc(&lane.label),
            esc(&clip(&lane.addrs, 40))
        ));
    }
    for (ri, (r, y)) in l.rows.iter().zip(&ys).enumerate() {
        let y = *y;
        o.push_str(&format!(
            "<text x=\"6\" y=\"{}\" fill=\"#888\" font-size=\"10\">{:.1} ms</text>\n",
            y + 4,
            r.t_ms
        ));
        match &r.kind {
            RowKind::Step {
                index,
                label,
                passed,
            } => {
                let (fill, color, mark) = if *passed {
                    ("#f0f0f0", "#333", "▶")
                } else {
                    ("#fadbd8", "#922b21", "✗")
                };
                o.push_str(&format!(
                    "<g id=\"{prefix}ladder-step-{index}\" class=\"step{}\"><title>step {index}: {}</title><rect x=\"{LEFT}\" y=\"{}\" width=\"{}\" height=\"20\" fill=\"{fill}\"/>\n<text x=\"{}\" y=\"{}\" fill=\"{color}\" font-weight=\"bold\">{mark} step {index} · {}{}</text></g>\n",
                    if *passed { "" } else { " failed" },
                    esc(label),
                    y - 10,
                    width - LEFT - 20,
                    LEFT + 6,
                    y + 4,
                    esc(&clip(label, 120)),
                    if *passed { "" } else { " — FAILED" }
                ));
            }
            RowKind::Folded { hidden, dropped } => {
                o.push_str(&format!(
                    "<g class=\"folded\"><text x=\"{}\" y=\"{}\" fill=\"#666\" font-style=\"italic\">… {hidden} more segments in this step folded ({dropped} dropped by the gateway); the pcaps hold them all</text></g>\n",
                    LEFT + 6,
                    y + 4
                ));
            }
            RowKind::Msg(m) => {
                let conn = &l.conns[m.conn];
                let (x1, x2) = (lane_x(m.from), lane_x(m.to));
                let (color, marker) = if m.dropped.is_some() {
                    ("#c0392b", "arr-red")
                } else if m.text == "RST" {
                    ("#d35400", "arr-orange")
                } else {
                    match conn.kind {
                        "control" => ("#2471a3", "arr-blue"),
                        "data" => ("#1e8449", "arr-green"),
                        _ => ("#555", "arr-grey"),
                    }
                };
                let count = if m.count > 1 {
                    format!(" ×{}", m.count)
                } else {
                    String::new()
                };
                let title = format!(
                    "{} · {} · {} → {}{}{}{}",
                    conn.label,
                    m.text,
                    m.src,
                    m.dst,
                    m.xlat
                        .as_ref()
                        .map(|x| format!(" · {}", x.text))
                        .unwrap_or_default(),
                    m.dropped
                        .as_ref()
                        .map(|d| format!(" · dropped: {}", d.reason))
                        .unwrap_or_default(),
                    m.warn
                        .as_ref()
                        .map(|w| format!(" · {w}"))
                        .unwrap_or_default()
                );
                let cls = format!(
                    "msg {}{}{}",
                    conn.kind,
                    if m.dropped.is_some() { " dropped" } else { "" },
                    if m.warn.is_some() { " warn" } else { "" }
                );
                o.push_str(&format!(
                    "<g id=\"{prefix}ladder-row-{ri}\" class=\"{cls}\" data-flow=\"{}\"><title>{}</title>\n",
                    conn.flow,
                    esc(&title)
                ));
                // Translation connector between the gateway's sides.
                if let Some(x) = &m.xlat {
                    let xf = lane_x(x.from_lane);
                    o.push_str(&format!(
                        "<line x1=\"{xf}\" y1=\"{y}\" x2=\"{x1}\" y2=\"{y}\" stroke=\"#7d3c98\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>\n<text class=\"xlat\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#7d3c98\" font-size=\"10\">{}</text>\n",
                        (xf + x1) / 2,
                        y + 13,
                        esc(&clip(&x.text, 46))
                    ));
                }
                let width = if m.text.starts_with("data") { 2.5 } else { 1.5 };
                o.push_str(&format!(
                    "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"{color}\" stroke-width=\"{width}\" marker-end=\"url(#{marker})\"/>\n"
                ));
                let mid = (x1 + x2) / 2;
                let shown = shown_text(&m.text, m.src);
                // The client's name in front, when a client claims it.
                let who = match conn.label.split_once(' ') {
                    Some((c, _)) if !conn.label.contains('→') => format!("{c}: "),
                    _ => String::new(),
                };
                let weight = if conn.kind == "control" && m.text.len() > 3 {
                    " font-weight=\"bold\""
                } else {
                    ""
                };
                let text_fill = if m.warn.is_some() { "#c0392b" } else { "#111" };
                o.push_str(&format!(
                    "<text x=\"{mid}\" y=\"{}\" text-anchor=\"middle\" fill=\"{text_fill}\"{weight}>{}{}</text>\n<text class=\"addr\" x=\"{mid}\" y=\"{}\" text-anchor=\"middle\" fill=\"#666\" font-size=\"10\">{} → {}</text>\n",
                    y - 4,
                    esc(&clip(&format!("{who}{shown}"), 50)),
                    esc(&count),
                    y + 11,
                    m.src,
                    m.dst
                ));
                if let Some(d) = &m.dropped {
                    // A red cross on the lane where it stopped, the reason beside it.
                    o.push_str(&format!(
                        "<path d=\"M{} {} L{} {} M{} {} L{} {}\" stroke=\"#c0392b\" stroke-width=\"3\"/>\n",
                        x2 - 7, y - 7, x2 + 7, y + 7, x2 - 7, y + 7, x2 + 7, y - 7
                    ));
                    let reason = format!(
                        "✕ dropped: {}{}",
                        d.reason,
                        if d.answered {
                            " → RST (refused)"
                        } else {
                            " (silent)"
                        }
                    );
                    o.push_str(&format!(
                        "<text class=\"drop\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#c0392b\" font-weight=\"bold\">{}</text>\n",
                        mid,
                        y + 25,
                        esc(&clip(&reason, 60))
                    ));
                    if let Some(rule) = &d.rule {
                        o.push_str(&format!(
                            "<text class=\"rule\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#c0392b\" font-size=\"10\">{}</text>\n",
                            mid,
                            y + 37,
                            esc(&clip(rule, 70))
                        ));
                    }
                } else if let Some(w) = &m.warn {
                    o.push_str(&format!(
                        "<text class=\"warn\" x=\"{mid}\" y=\"{}\" text-anchor=\"middle\" fill=\"#c0392b\" font-size=\"10\">⚠ {}</text>\n",
                        y + 25,
                        esc(&clip(w, 100))
                    ));
                }
                o.push_str("</g>\n");
            }
        }
    }
    o.push_str("</svg>\n");
    o
}
