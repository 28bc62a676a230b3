//! The validate-ruleset page: the battery's rows with their causes; under
//! each failing row, what the gateway saw — the probe's drop with the rule
//! that dropped it (from the kernel's nft trace of the user's rule set) —
//! and the ladder of the connections concerned. Every row links to its
//! full scenario page.

use std::{fmt::Write as _, path::Path};

use super::{badge, esc, ladder_of, ladder_svg, page, page_name, scenario_page, Entry, RunInfo};
use crate::{
    outcome::Status,
    tools::validate_ruleset::{report::describe, Outcome, Report, RowReport},
};

fn status(r: &RowReport) -> Status {
    if r.result == Outcome::Pass {
        Status::Pass
    } else {
        Status::Fail
    }
}

/// A row's cause, or the shared cause that explains it.
fn cause(report: &Report, r: &RowReport) -> String {
    match (&r.cause, &r.shared_cause) {
        (Some(c), _) => c.clone(),
        (None, Some(id)) => report
            .shared_causes
            .iter()
            .find(|c| c.id == id)
            .map_or_else(String::new, |c| c.text.clone()),
        _ => String::new(),
    }
}

/// Writes `dir/index.html` (the battery) and one page per row.
pub fn write(
    dir: &Path,
    info: &RunInfo,
    report: &Report,
    entries: &[Entry<'_>],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for e in entries {
        if let Some(a) = e.artifacts {
            let marks =
                serde_json::to_string_pretty(&super::step_marks(e.result)).unwrap_or_default();
            std::fs::write(a.join("steps.json"), marks)?;
        }
        std::fs::write(dir.join(page_name(&e.result.name)), scenario_page(dir, e))?;
    }
    std::fs::write(dir.join("index.html"), render(info, report, entries))
}

/// The battery page.
pub fn render(info: &RunInfo, report: &Report, entries: &[Entry<'_>]) -> String {
    let rows = &report.rows;
    let mut b = format!(
        "<header><h1>ftpnat report — {}</h1></header><main><h2>Run</h2><table>",
        esc(&info.command)
    );
    for (k, v) in &info.params {
        let _ = write!(b, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    let ok = report.summary.pass;
    let req_fail = report.summary.fail;
    let _ = write!(
        b,
        "</table><h2>Battery</h2><p class=\"counts\"><span>{ok} of {} behaviours work</span><span>{req_fail} required check(s) failed</span></p>",
        rows.len()
    );
    b.push_str("<table id=\"battery\"><tr><th>status</th><th>row</th><th>needs</th><th>probable cause</th></tr>");
    for r in rows {
        let kind = if r.required { "" } else { " (optional)" };
        let _ = write!(
            b,
            "<tr class=\"{}\"><td>{}</td><td><a href=\"#row-{}\">{}</a>{kind}</td><td>{}</td><td>{}</td></tr>",
            if r.result == Outcome::Pass { "pass" } else { "fail" },
            badge(status(r)),
            esc(r.name),
            esc(r.name),
            esc(&r.needs),
            esc(&cause(report, r))
        );
    }
    if !report.warnings.is_empty() {
        b.push_str("<h2>Warnings</h2><ul class=\"findings\">");
        for w in &report.warnings {
            let _ = write!(b, "<li>{}</li>", esc(w));
        }
        b.push_str("</ul>");
    }
    b.push_str("</table>");
    for r in rows.iter().filter(|r| r.result != Outcome::Pass) {
        let _ = write!(
            b,
            "<h2 id=\"row-{}\">{} {}</h2><p>{}</p>",
            esc(r.name),
            badge(status(r)),
            esc(r.name),
            esc(&cause(report, r))
        );
        if !r.blocked_by.is_empty() {
            b.push_str("<p>In your rule set (traced probes, with the line of each rule):</p><ul class=\"findings\">");
            for x in &r.blocked_by {
                let _ = write!(b, "<li>{}</li>", esc(&describe(x)));
            }
            b.push_str("</ul>");
        }
        let Some(e) = entries.iter().find(|e| e.result.name == r.name) else {
            continue;
        };
        let _ = write!(
            b,
            "<p><a href=\"{}\">the row's full page (steps, full ladder, transcripts, logs, pcaps)</a></p>",
            esc(&page_name(&e.result.name))
        );
        let (Some(sc), Some(dir)) = (e.scenario, e.artifacts) else {
            b.push_str("<p><i>no artifacts kept for this row</i></p>");
            continue;
        };
        let l = ladder_of(sc, dir, e.result);
        let drops: Vec<&String> = l
            .findings
            .iter()
            .filter(|f| f.contains(" dropped at "))
            .collect();
        if drops.is_empty() {
            b.push_str("<p>No probe was dropped by the gateway: the failure is in what the server or client did (see the row's page).</p>");
        } else {
            b.push_str("<p>Dropped by the gateway (the rule that decided, from the kernel's trace of your rule set):</p><ul class=\"findings\">");
            for f in drops {
                let _ = write!(b, "<li>{}</li>", esc(f));
            }
            b.push_str("</ul>");
        }
        if let Some(f) = l.focus() {
            let _ = write!(
                b,
                "<div class=\"scroll\">{}</div>",
                ladder_svg::render_with_prefix(&f, &format!("{}-", r.name))
            );
        }
    }
    b.push_str("</main>");
    page(&format!("ftpnat {}", info.command), "", &b)
}
