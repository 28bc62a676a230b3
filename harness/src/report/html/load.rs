//! The load page: the results table and SVG plots drawn in Rust with
//! plotters' SVG backend (no JavaScript charting): completed transfers per
//! second and PASV latency p50/p99 against the passive range size, one
//! line per policy; passive-range occupancy over time, one line per run.
//!
//! It renders a [`LoadPage`], a plain structure: whatever produces load
//! results (today `ftpnat load`) fills what it has; a plot whose data is
//! absent is left out with a line saying so.

use std::{collections::BTreeMap, fmt::Write as _};

use plotters::prelude::*;

use super::{esc, page};

/// One load run.
#[derive(Debug, Clone, Default)]
pub struct LoadRun {
    /// The table's cells, in column order (name, value).
    pub cells: Vec<(String, String)>,
    /// Which line it belongs to in the plots, e.g. `wait, range forwarded`.
    pub series: String,
    /// Passive range size (x axis).
    pub range: u16,
    /// Completed transfers per second.
    pub per_second: Option<f64>,
    /// PASV latency, milliseconds.
    pub pasv_p50_ms: Option<f64>,
    /// PASV latency, milliseconds.
    pub pasv_p99_ms: Option<f64>,
    /// (seconds since start, ports of the range in use).
    pub occupancy: Vec<(f64, f64)>,
}

/// The page.
#[derive(Debug, Clone, Default)]
pub struct LoadPage {
    /// Title.
    pub title: String,
    /// Parameters shared by the runs.
    pub params: Vec<(String, String)>,
    /// The runs.
    pub runs: Vec<LoadRun>,
}

/// A plotted line: name, points, thin (dashed) or not.
pub(super) type Series = (String, Vec<(f64, f64)>, bool);

const COLORS: [RGBColor; 8] = [
    RGBColor(0x24, 0x71, 0xa3),
    RGBColor(0xc0, 0x39, 0x2b),
    RGBColor(0x1e, 0x84, 0x49),
    RGBColor(0x7d, 0x3c, 0x98),
    RGBColor(0xd3, 0x54, 0x00),
    RGBColor(0x11, 0x11, 0x11),
    RGBColor(0x16, 0xa0, 0x85),
    RGBColor(0x95, 0xa5, 0xa6),
];

/// A line chart: `series` name → points; log-scaled x when the values span
/// more than a factor 20.
pub(super) fn chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<String, String> {
    let pts = series.iter().flat_map(|(_, p, _)| p.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for (x, y) in pts {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y1 = y1.max(*y);
    }
    if x0 > x1 {
        return Err("no data".into());
    }
    if x1 - x0 < 1e-9 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.1 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut b = ChartBuilder::on(&root);
        b.caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56);
        let draw = |c: &mut ChartContext<'_, SVGBackend<'_>, _>| -> Result<(), String> {
            c.configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .draw()
                .map_err(|e| e.to_string())
        };
        let mut ch = b
            .build_cartesian_2d(x0..x1, 0.0..y1)
            .map_err(|e| e.to_string())?;
        draw(&mut ch)?;
        for (i, (name, p, dashed)) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let style = ShapeStyle {
                color: color.to_rgba(),
                filled: false,
                stroke_width: if *dashed { 1 } else { 2 },
            };
            let mut p = p.clone();
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            ch.draw_series(LineSeries::new(p.clone(), style))
                .map_err(|e| e.to_string())?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
            if p.len() <= 40 {
                ch.draw_series(
                    p.iter()
                        .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                )
                .map_err(|e| e.to_string())?;
            }
        }
        ch.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Each plot in its `<div>`, or a line saying why it is missing.
pub(super) fn plot_divs(plots: Vec<(&str, Result<String, String>)>) -> String {
    let mut b = String::new();
    for (name, svg) in plots {
        match svg {
            Ok(s) => {
                let _ = write!(b, "<div class=\"plot\">{s}</div>");
            }
            Err(e) => {
                let _ = write!(b, "<p><i>{}: not plotted ({})</i></p>", esc(name), esc(&e));
            }
        }
    }
    b
}

/// A table whose header is the first row's cell names (`attrs` go on the
/// `<table>` tag).
pub(super) fn cell_table(attrs: &str, rows: &[&[(String, String)]]) -> String {
    let mut b = format!("<table {attrs}>");
    if let Some(first) = rows.first() {
        b.push_str("<tr>");
        for (k, _) in first.iter() {
            let _ = write!(b, "<th>{}</th>", esc(k));
        }
        b.push_str("</tr>");
    }
    for r in rows {
        b.push_str("<tr>");
        for (_, v) in r.iter() {
            let _ = write!(b, "<td>{}</td>", esc(v));
        }
        b.push_str("</tr>");
    }
    b.push_str("</table>");
    b
}

/// The page's HTML.
pub fn render(p: &LoadPage) -> String {
    let mut b = format!("<header><h1>{}</h1></header><main>", esc(&p.title));
    if !p.params.is_empty() {
        b.push_str("<h2>Parameters</h2><table>");
        for (k, v) in &p.params {
            let _ = write!(b, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
        }
        b.push_str("</table>");
    }
    b.push_str("<h2>Results</h2>");
    b.push_str(&cell_table(
        "id=\"load\"",
        &p.runs
            .iter()
            .map(|r| r.cells.as_slice())
            .collect::<Vec<_>>(),
    ));
    b.push_str("<h2>Plots</h2>");
    let mut by_series: BTreeMap<&str, Vec<&LoadRun>> = BTreeMap::new();
    for r in &p.runs {
        by_series.entry(&r.series).or_default().push(r);
    }
    let line = |f: &dyn Fn(&LoadRun) -> Option<f64>, suffix: &str, dashed: bool| -> Vec<Series> {
        by_series
            .iter()
            .map(|(s, runs)| {
                (
                    format!("{s}{suffix}"),
                    runs.iter()
                        .filter_map(|r| Some((f64::from(r.range), f(r)?)))
                        .collect::<Vec<_>>(),
                    dashed,
                )
            })
            .filter(|(_, v, _)| !v.is_empty())
            .collect()
    };
    let mut plots = Vec::new();
    plots.push((
        "transfers per second by passive range size",
        chart(
            "completed transfers/s",
            "passive range size (ports)",
            "transfers/s",
            &line(&|r| r.per_second, "", false),
        ),
    ));
    let mut lat = line(&|r| r.pasv_p50_ms, " p50", false);
    lat.extend(line(&|r| r.pasv_p99_ms, " p99", true));
    plots.push((
        "PASV latency by passive range size",
        chart(
            "PASV reply latency (p50 solid, p99 thin)",
            "passive range size (ports)",
            "ms",
            &lat,
        ),
    ));
    let occ: Vec<Series> = p
        .runs
        .iter()
        .filter(|r| !r.occupancy.is_empty())
        .map(|r| {
            (
                format!("{} R={}", r.series, r.range),
                r.occupancy.clone(),
                false,
            )
        })
        .collect();
    plots.push((
        "passive range occupancy over time",
        chart("ports of the range in use", "seconds", "ports", &occ),
    ));
    b.push_str(&plot_divs(plots));
    b.push_str("</main>");
    page(&p.title, "", &b)
}

impl LoadRun {
    /// From a row of `ftpnat load` (its runs' spread; the plots use the
    /// median steady-state throughput and the median run's latencies and
    /// occupancy).
    pub fn from_row(row: &crate::tools::load::LoadRow) -> LoadRun {
        let s = &row.spec;
        let m = row.median_run();
        let reference = s.server.is_reference();
        LoadRun {
            cells: row.cells(),
            series: format!(
                "{} {}{}{}",
                s.server.name,
                s.server.policy_cell(&s.policy),
                if s.forward == "all" {
                    " (all forwarded)"
                } else {
                    ""
                },
                if reference && s.passive_mode == "pooled" {
                    format!(" pooled×{}", s.client_addrs)
                } else {
                    String::new()
                }
            ),
            range: s.ports,
            per_second: Some(row.per_second.median),
            pasv_p50_ms: Some(m.pasv_p50_ms),
            pasv_p99_ms: Some(m.pasv_p99_ms),
            occupancy: m.occupancy.iter().map(|&(t, n)| (t, n as f64)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_svg_with_every_series_and_missing_data_is_said() {
        let run = |series: &str, range: u16, tps: f64| LoadRun {
            cells: vec![("R".into(), range.to_string())],
            series: series.into(),
            range,
            per_second: Some(tps),
            pasv_p50_ms: Some(1.0),
            pasv_p99_ms: Some(9.0),
            occupancy: vec![],
        };
        let html = render(&LoadPage {
            title: "load".into(),
            params: vec![],
            runs: vec![
                run("wait", 2, 10.0),
                run("wait", 10, 40.0),
                run("refuse", 2, 5.0),
            ],
        });
        assert!(html.contains("<svg"), "{html}");
        assert!(
            html.contains("wait p99") && html.contains("refuse"),
            "{html}"
        );
        assert!(html.contains("passive range occupancy over time: not plotted (no data)"));
        assert!(!html.contains("<script src"));
    }
}
