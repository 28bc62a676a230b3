//! The passive-allocation page of `ftpnat probe passive`: one curve per
//! server against the number of pending PASVs held — reply latency p50
//! (solid) and p99 (thin), and the share of PASVs that did not give a port
//! in the range the server accepted a connection on through the NAT — with
//! the table under the plots.
//!
//! It renders [`ProbeCurve`]s, plain data: whatever measures a server's
//! allocation from the outside can fill them.

use std::fmt::Write as _;

use super::{
    esc,
    load::{cell_table, chart, plot_divs, Series},
    page,
};
use crate::tools::probe::ProbeReport;

/// One occupancy of a curve.
#[derive(Debug, Clone, Default)]
pub struct ProbePoint {
    /// Pending PASVs held.
    pub held: f64,
    /// Reply latency, ms.
    pub p50_ms: f64,
    /// Reply latency, ms.
    pub p99_ms: f64,
    /// Share (0–1) of samples without a reachable port in the range.
    pub failure_share: f64,
    /// The table's cells after the server's name.
    pub cells: Vec<(String, String)>,
}

/// A server's curve.
#[derive(Debug, Clone, Default)]
pub struct ProbeCurve {
    /// Server name and its exhaustion behaviour, e.g. `proftpd (own: fallback)`.
    pub server: String,
    /// Its points, by occupancy.
    pub points: Vec<ProbePoint>,
}

impl ProbeCurve {
    /// From `ftpnat probe passive`'s report.
    pub fn from_report(r: &ProbeReport) -> ProbeCurve {
        let s = &r.spec;
        ProbeCurve {
            server: format!("{} ({})", s.server.name, s.server.policy_cell(&s.policy)),
            points: r
                .levels
                .iter()
                .filter(|l| l.samples > 0)
                .map(|l| ProbePoint {
                    held: l.held as f64,
                    p50_ms: l.p50_ms,
                    p99_ms: l.p99_ms,
                    failure_share: l.failures() as f64 / l.samples as f64,
                    cells: l.cells(),
                })
                .collect(),
        }
    }
}

/// One point per occupancy, the mean of the levels that reached it (past
/// full, further levels add no PASV held: no vertical lines).
fn by_occupancy(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64, f64)> = Vec::new();
    for (x, y) in points {
        match out.iter_mut().find(|(ox, _, _)| *ox == x) {
            Some(o) => {
                o.1 += y;
                o.2 += 1.0;
            }
            None => out.push((x, y, 1.0)),
        }
    }
    out.into_iter().map(|(x, y, n)| (x, y / n)).collect()
}

/// The two plots (latency, failure share) as HTML; x is the number of
/// pending PASVs held.
pub fn plots(curves: &[ProbeCurve]) -> String {
    let line = |f: &dyn Fn(&ProbePoint) -> f64, suffix: &str, thin: bool| -> Vec<Series> {
        curves
            .iter()
            .filter(|c| !c.points.is_empty())
            .map(|c| {
                (
                    format!("{}{suffix}", c.server),
                    by_occupancy(c.points.iter().map(|p| (p.held, f(p)))),
                    thin,
                )
            })
            .collect()
    };
    let mut lat = line(&|p| p.p50_ms, " p50", false);
    lat.extend(line(&|p| p.p99_ms, " p99", true));
    let plots = [
        (
            "reply latency by occupancy",
            chart(
                "PASV reply latency (p50 solid, p99 thin)",
                "pending PASVs held",
                "ms",
                &lat,
            ),
        ),
        (
            "failures by occupancy",
            chart(
                "share of PASVs without a reachable port in the range",
                "pending PASVs held",
                "share",
                &line(&|p| p.failure_share, "", false),
            ),
        ),
    ];
    plot_divs(plots.into())
}

/// The page: parameters, plots, each server's table, then (when given)
/// the rows of `ftpnat load` on the same range (their cells).
pub fn render(
    title: &str,
    params: &[(String, String)],
    curves: &[ProbeCurve],
    load: &[Vec<(String, String)>],
) -> String {
    let mut b = format!("<header><h1>{}</h1></header><main>", esc(title));
    if !params.is_empty() {
        b.push_str("<h2>Parameters</h2><table>");
        for (k, v) in params {
            let _ = write!(b, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
        }
        b.push_str("</table>");
    }
    b.push_str("<h2>Curves</h2>");
    b.push_str(&plots(curves));
    for c in curves {
        let _ = write!(b, "<h2>{}</h2>", esc(&c.server));
        b.push_str(&cell_table(
            "class=\"probe\"",
            &c.points
                .iter()
                .map(|p| p.cells.as_slice())
                .collect::<Vec<_>>(),
        ));
    }
    if !load.is_empty() {
        b.push_str("<h2>Throughput under exhaustion (ftpnat load)</h2>");
        b.push_str(&cell_table(
            "id=\"load\"",
            &load.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        ));
    }
    b.push_str("</main>");
    page(title, "", &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_plot_per_server_and_missing_data_is_said() {
        let point = |held: f64, p50: f64, fail: f64| ProbePoint {
            held,
            p50_ms: p50,
            p99_ms: p50 * 2.0,
            failure_share: fail,
            cells: vec![("k".into(), held.to_string())],
        };
        let html = render(
            "probe",
            &[],
            &[
                ProbeCurve {
                    server: "reference (refuse)".into(),
                    points: vec![point(0.0, 0.3, 0.0), point(10.0, 0.3, 1.0)],
                },
                ProbeCurve {
                    server: "vsftpd (own: session-dies)".into(),
                    points: vec![point(0.0, 0.5, 0.0), point(9.0, 0.6, 0.4)],
                },
            ],
            &[vec![("server".into(), "reference".into())]],
        );
        assert_eq!(html.matches("<svg").count(), 2, "{html}");
        assert!(html.contains("Throughput under exhaustion"), "{html}");
        assert!(html.contains("vsftpd (own: session-dies) p99"), "{html}");
        assert!(!html.contains("<script src"));
        assert_eq!(
            by_occupancy([(3.0, 1.0), (4.0, 1.0), (4.0, 3.0)].into_iter()),
            [(3.0, 1.0), (4.0, 2.0)]
        );
        let empty = render("probe", &[], &[], &[]);
        assert!(empty.contains("reply latency by occupancy: not plotted (no data)"));
    }
}
