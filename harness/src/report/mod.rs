//! Reports: human lines, the JSON report (stable; documented in
//! `docs/report-format.md`), JUnit XML for CI, and the topology picture.

pub mod evidence;
pub mod html;
pub mod ladder;
pub mod svg;

use serde::Serialize;

use crate::outcome::{ScenarioResult, Status};

/// Totals.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Scenarios that passed.
    pub passed: usize,
    /// Scenarios with a failed expectation.
    pub failed: usize,
    /// Scenarios that could not run.
    pub errors: usize,
    /// Scenarios not run because the server or engine cannot do what they
    /// need.
    pub unsupported: usize,
    /// Scenarios not run because this machine lacks a program, server or
    /// kernel feature they need.
    pub not_supported_here: usize,
    /// Wall-clock milliseconds of the whole run.
    pub duration_ms: u64,
}

impl Summary {
    /// Counts results.
    pub fn of(results: &[ScenarioResult], duration_ms: u64) -> Summary {
        let count = |s| results.iter().filter(|r| r.status == s).count();
        Summary {
            passed: count(Status::Pass),
            failed: count(Status::Fail),
            errors: count(Status::Error),
            unsupported: count(Status::Unsupported),
            not_supported_here: count(Status::NotSupportedHere),
            duration_ms,
        }
    }

    /// The closing line, e.g. `34 passed, 0 failed, 0 errors`.
    pub fn line(&self) -> String {
        let unsupported = if self.unsupported > 0 {
            format!(", {} not supported", self.unsupported)
        } else {
            String::new()
        };
        let here = if self.not_supported_here > 0 {
            format!(", {} not supported here", self.not_supported_here)
        } else {
            String::new()
        };
        format!(
            "{} passed, {} failed, {} errors{unsupported}{here} ({:.1} s)",
            self.passed,
            self.failed,
            self.errors,
            self.duration_ms as f64 / 1000.0
        )
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    summary: Summary,
    scenarios: &'a [ScenarioResult],
}

/// The JSON report.
pub fn json(results: &[ScenarioResult], summary: Summary) -> String {
    serde_json::to_string_pretty(&JsonReport {
        summary,
        scenarios: results,
    })
    .unwrap_or_default()
}

/// One human line per scenario (failures get their detail below).
pub fn human_line(r: &ScenarioResult) -> String {
    let mark = match r.status {
        Status::Pass => "PASS ",
        Status::Fail => "FAIL ",
        Status::Error => "ERROR",
        Status::Unsupported => "N/A  ",
        Status::NotSupportedHere => "SKIP ",
    };
    let mut s = format!(
        "{mark} {:<44} {:>6} ms (set-up {} ms)",
        r.name, r.duration_ms, r.setup_ms
    );
    if let Some(f) = &r.failure {
        s.push_str(&format!(
            "\n      {}\n      {}",
            r.file,
            f.replace('\n', "\n      ")
        ));
    }
    for n in &r.notes {
        s.push_str(&format!("\n      note: {n}"));
    }
    s
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// JUnit XML (one testcase per scenario, classname = tags' first entry).
pub fn junit(results: &[ScenarioResult], summary: Summary) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"ftpnat\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.3}\">\n",
        results.len(),
        summary.failed,
        summary.errors,
        summary.duration_ms as f64 / 1000.0
    ));
    out.push_str(&format!(
        "  <testsuite name=\"ftpnat\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
        results.len(),
        summary.failed,
        summary.errors,
        summary.unsupported + summary.not_supported_here,
        summary.duration_ms as f64 / 1000.0
    ));
    for r in results {
        let class = r.tags.first().map_or("ftpnat", String::as_str);
        out.push_str(&format!(
            "    <testcase name=\"{}\" classname=\"ftpnat.{}\" file=\"{}\" time=\"{:.3}\"",
            xml_escape(&r.name),
            xml_escape(class),
            xml_escape(&r.file),
            r.duration_ms as f64 / 1000.0
        ));
        let detail = r.failure.clone().unwrap_or_default();
        let first = detail.lines().next().unwrap_or("").to_string();
        match r.status {
            Status::Pass => out.push_str("/>\n"),
            Status::Fail => out.push_str(&format!(
                ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                xml_escape(&first),
                xml_escape(&detail)
            )),
            Status::Error => out.push_str(&format!(
                ">\n      <error message=\"{}\">{}</error>\n    </testcase>\n",
                xml_escape(&first),
                xml_escape(&detail)
            )),
            Status::Unsupported | Status::NotSupportedHere => out.push_str(&format!(
                ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                xml_escape(&first)
            )),
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
