//! The HTML report: `DIR/index.html` and one page per scenario, each page
//! self-contained (inline CSS, JavaScript and SVG; nothing is fetched), so
//! the folder can be opened from `file://` or kept as one CI artifact.
//!
//! * [`write_run`] — index (run parameters, counts, one row per scenario,
//!   filters by status and tag, failures first) and scenario pages
//!   (findings, topology, ladder, steps, transcripts, server log, counters,
//!   artifact links).
//! * [`ruleset`] — the validate-ruleset page; [`load`] — the load page;
//!   [`probe`] — the passive-allocation curves of `ftpnat probe passive`.
//!
//! The ladder itself is [`crate::report::ladder`] (a model, tested apart);
//! [`ladder_svg`] only draws it.

pub mod grid;
pub mod ladder_svg;
pub mod load;
pub mod probe;
pub mod ruleset;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use crate::{
    outcome::{ScenarioResult, Status},
    report::{evidence, ladder, Summary},
    scenario::Scenario,
};

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// What the run was: shown on top of the index.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// The command (`ftpnat run`, `ftpnat diff`…).
    pub command: String,
    /// Name/value pairs: engine, substrate, server kind, versions…
    pub params: Vec<(String, String)>,
}

impl RunInfo {
    /// With the ftpnat version and the host's kernel and nft versions.
    pub fn new(command: &str, params: Vec<(String, String)>) -> RunInfo {
        let mut p = vec![("ftpnat".to_string(), env!("CARGO_PKG_VERSION").to_string())];
        if let Ok(k) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
            p.push(("kernel".into(), k.trim().to_string()));
        }
        p.extend(params);
        RunInfo {
            command: command.into(),
            params: p,
        }
    }
}

/// One scenario to put in the report.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// What happened.
    pub result: &'a ScenarioResult,
    /// The scenario as run (engine forced, profile applied), when known.
    pub scenario: Option<&'a Scenario>,
    /// Its artifacts folder (pcaps, logs), when kept.
    pub artifacts: Option<&'a Path>,
}

pub(crate) const CSS: &str = r#"
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f2d3d;color:#fff;padding:12px 20px}
header a{color:#cde}
main{padding:16px 20px}
h1{font-size:20px;margin:0} h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;background:#fff;font-size:13px}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}
tr.fail td,tr.error td{background:#fdecea} tr.failing td{background:#f9c9c3;font-weight:bold}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;color:#fff}
.badge.pass{background:#1e8449}.badge.fail{background:#c0392b}.badge.error{background:#7d3c98}.badge.unsupported{background:#7f8c8d}.badge.not-here{background:#95a5a6}
pre{background:#fff;border:1px solid #ddd;padding:8px;overflow:auto;font-size:12px;max-height:420px}
.findings{background:#fff5f4;border:1px solid #e6b0aa;padding:8px 12px}
.findings li{margin:3px 0;font-family:monospace;font-size:12.5px}
.scroll{overflow:auto;border:1px solid #ddd;background:#fff}
.counts span{margin-right:14px;font-size:15px}
.filters{margin:10px 0} .filters label{margin-right:10px}
.legend span{margin-right:14px;font-size:12px}
code{font-size:12px}
"#;

fn page(title: &str, head_extra: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style>{head_extra}</head><body>\n{body}\n</body></html>\n",
        esc(title)
    )
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Error => "error",
        Status::Unsupported => "unsupported",
        Status::NotSupportedHere => "not-here",
    }
}

fn badge(s: Status) -> String {
    let w = status_word(s);
    format!("<span class=\"badge {w}\">{w}</span>")
}

/// File name of a scenario's page.
pub fn page_name(scenario: &str) -> String {
    format!("{}.html", crate::runner::sanitize(scenario))
}

/// A link from `from_dir` to `target` (relative when both are under the
/// same root, else an absolute `file://` URL).
fn link(from_dir: &Path, target: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, to) = (abs(from_dir), abs(target));
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    if common <= 1 {
        return format!("file://{}", to.display());
    }
    let mut rel = PathBuf::new();
    for _ in common..f.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c);
    }
    rel.display().to_string()
}

/// Writes `dir/index.html` and one page per entry.
pub fn write_run(
    dir: &Path,
    info: &RunInfo,
    entries: &[Entry<'_>],
    summary: Summary,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for e in entries {
        if let Some(a) = e.artifacts {
            // The ladder's other input, kept beside the pcaps so the page
            // can be rebuilt (and tests can replay recorded runs).
            let marks = serde_json::to_string_pretty(&step_marks(e.result)).unwrap_or_default();
            std::fs::write(a.join("steps.json"), marks)?;
        }
        std::fs::write(dir.join(page_name(&e.result.name)), scenario_page(dir, e))?;
    }
    std::fs::write(dir.join("index.html"), index(info, entries, summary))
}

/// The index page.
pub fn index(info: &RunInfo, entries: &[Entry<'_>], s: Summary) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<header><h1>ftpnat report — {}</h1></header><main>\n<h2>Run</h2><table>",
        esc(&info.command)
    );
    for (k, v) in &info.params {
        let _ = write!(b, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    let _ = write!(
        b,
        "</table>\n<h2>Results</h2><p class=\"counts\" id=\"counts\"><span>{} passed</span><span>{} failed</span><span>{} errors</span><span>{} not supported</span><span>{:.1} s</span></p>",
        s.passed,
        s.failed,
        s.errors,
        s.unsupported,
        s.duration_ms as f64 / 1000.0
    );
    let mut tags: Vec<&str> = entries
        .iter()
        .flat_map(|e| e.result.tags.iter().map(String::as_str))
        .collect();
    tags.sort_unstable();
    tags.dedup();
    b.push_str("<div class=\"filters\">Status: ");
    for st in ["fail", "error", "unsupported", "not-here", "pass"] {
        let _ = write!(
            b,
            "<label><input type=\"checkbox\" class=\"fstatus\" value=\"{st}\" checked> {st}</label>"
        );
    }
    b.push_str(" Tag: <select id=\"ftag\"><option value=\"\">(any)</option>");
    for t in &tags {
        let _ = write!(b, "<option>{}</option>", esc(t));
    }
    b.push_str("</select> <span id=\"shown\"></span></div>\n");
    b.push_str("<table id=\"scenarios\"><tr><th>status</th><th>scenario</th><th>tags</th><th>duration</th><th>first failing step</th><th>the gateways saw</th></tr>\n");
    let mut order: Vec<&Entry> = entries.iter().collect();
    let rank = |s: Status| match s {
        Status::Fail => 0,
        Status::Error => 1,
        Status::Unsupported | Status::NotSupportedHere => 2,
        Status::Pass => 3,
    };
    order.sort_by_key(|e| (rank(e.result.status), e.result.name.clone()));
    for e in order {
        let r = e.result;
        let first = r
            .steps
            .iter()
            .find(|s| s.status != Status::Pass)
            .map(|s| {
                format!(
                    "<a href=\"{}#step-{}\">step {} (line {})</a> {}",
                    esc(&page_name(&r.name)),
                    s.index,
                    s.index,
                    s.line,
                    esc(&s.action)
                )
            })
            .or_else(|| {
                r.failure
                    .as_ref()
                    .map(|f| esc(f.lines().next().unwrap_or("")))
            })
            .unwrap_or_default();
        // Drops and flagged replies, from the scenario's ladder.
        let saw = match (e.scenario, e.artifacts) {
            (Some(sc), Some(dir)) => {
                let l = ladder_of(sc, dir, r);
                let (mut drops, mut flagged) = (0, 0);
                for row in &l.finding_rows {
                    if let Some(ladder::RowKind::Msg(m)) = l.rows.get(*row).map(|x| &x.kind) {
                        drops += usize::from(m.dropped.is_some());
                        flagged += usize::from(m.warn.is_some());
                    }
                }
                let mut parts = Vec::new();
                if drops > 0 {
                    parts.push(format!("{drops} drop(s)"));
                }
                if flagged > 0 {
                    parts.push(format!("{flagged} flagged reply(ies)"));
                }
                if parts.is_empty() {
                    String::new()
                } else {
                    format!(
                        "<a href=\"{}#findings\">{}</a>",
                        esc(&page_name(&r.name)),
                        parts.join(", ")
                    )
                }
            }
            _ => String::new(),
        };
        let _ = writeln!(
            b,
            "<tr class=\"{st}\" data-status=\"{st}\" data-tags=\"{}\"><td>{}</td><td><a href=\"{}\">{}</a></td><td>{}</td><td>{} ms</td><td>{first}</td><td>{saw}</td></tr>",
            esc(&r.tags.join(" ")),
            badge(r.status),
            esc(&page_name(&r.name)),
            esc(&r.name),
            esc(&r.tags.join(", ")),
            r.duration_ms,
            st = status_word(r.status),
        );
    }
    b.push_str("</table></main>\n");
    b.push_str(
        r#"<script>
function applyFilter(){
  var on={};document.querySelectorAll('.fstatus').forEach(function(c){on[c.value]=c.checked;});
  var tag=document.getElementById('ftag').value, n=0;
  document.querySelectorAll('#scenarios tr[data-status]').forEach(function(tr){
    var ok=on[tr.dataset.status] && (!tag || tr.dataset.tags.split(' ').indexOf(tag)>=0);
    tr.style.display=ok?'':'none'; if(ok)n++;
  });
  document.getElementById('shown').textContent=n+' shown';
}
document.querySelectorAll('.fstatus').forEach(function(c){c.addEventListener('change',applyFilter);});
document.getElementById('ftag').addEventListener('change',applyFilter);
applyFilter();
</script>"#,
    );
    page("ftpnat report", "", &b)
}

/// The gateways' modes in words (the topology picture's annotation).
fn gateway_modes(sc: &Scenario) -> String {
    let mut b = String::from("<table><tr><th>gateway</th><th>engine</th><th>NAT</th><th>forwards</th><th>ALG</th><th>firewall</th><th>unsolicited</th></tr>");
    for g in &sc.gateways {
        let c = &g.config;
        let nat = match &c.nat {
            Some(n) => format!(
                "masquerade on the WAN side; mapping {:?}, filtering {:?}, hairpin {}",
                n.mapping,
                n.filtering,
                if n.hairpin { "on" } else { "off" }
            ),
            None => "none (routing only)".into(),
        };
        let fwd: Vec<String> = c
            .forwards
            .iter()
            .map(|f| {
                let ports = if f.ports.0 == f.ports.1 {
                    f.ports.0.to_string()
                } else {
                    format!("{}-{}", f.ports.0, f.ports.1)
                };
                format!(
                    "{} {ports} → {}:{}",
                    if f.proto == 6 { "tcp" } else { "udp" },
                    f.to,
                    f.to_port
                )
            })
            .collect();
        let mut fw = format!(
            "policy in {:?}, out {:?}{}",
            c.firewall.policy_in,
            c.firewall.policy_out,
            if c.firewall.stateful {
                ", stateful"
            } else {
                ", stateless"
            }
        )
        .to_lowercase();
        for (i, r) in c.firewall.rules.iter().enumerate() {
            let _ = write!(
                fw,
                "<br>rule {i}: {:?} {}{}{}{}",
                r.action.unwrap_or(crate::engine::Action::Accept),
                r.direction.map(|d| format!("{d:?} ")).unwrap_or_default(),
                r.dport
                    .map(|(a, b)| format!("dport {a}-{b} "))
                    .unwrap_or_default(),
                if r.syn_only { "syn " } else { "" },
                r.comment
                    .as_deref()
                    .map(|c| format!("“{}”", esc(c)))
                    .unwrap_or_default()
            );
        }
        let engine = match &g.ruleset {
            Some(_) => format!("{:?} (user rule set)", g.engine),
            None => format!("{:?}", g.engine),
        }
        .to_lowercase();
        let _ = write!(
            b,
            "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{:?}</td><td>{fw}</td><td>{}</td></tr>",
            esc(&c.name),
            esc(&engine),
            esc(&nat),
            if fwd.is_empty() { "none".into() } else { esc(&fwd.join(", ")) },
            c.alg,
            if c.reject_unsolicited { "refused (RST)" } else { "dropped silently" }
        );
    }
    b.push_str("</table>");
    b
}

/// Words for the kernel rule set's comments in a trace.
pub fn comment_words(sc: &Scenario, gateway: &str, comment: &str) -> Option<String> {
    let g = sc.gateways.iter().find(|g| g.config.name == gateway)?;
    Some(match comment {
        "ftpnat:unsolicited" => "no mapping or forward".into(),
        "ftpnat:policy_in" => "firewall (policy in)".into(),
        "ftpnat:policy_out" => "firewall (policy out)".into(),
        "ftpnat:invalid" => "invalid (no flow, not a SYN)".into(),
        c => {
            let i: usize = c.strip_prefix("ftpnat:rule:")?.parse().ok()?;
            let r = g.config.firewall.rules.get(i)?;
            match &r.comment {
                Some(t) => format!("firewall rule {i} “{t}”"),
                None => format!("firewall rule {i}"),
            }
        }
    })
}

/// The ladder for a scenario from its artifacts folder.
pub fn ladder_of(sc: &Scenario, dir: &Path, result: &ScenarioResult) -> ladder::Ladder {
    let configs: Vec<_> = sc.gateways.iter().map(|g| g.config.clone()).collect();
    let words = |g: &str, c: &str| comment_words(sc, g, c);
    let ev = evidence::read_dir(dir, &configs, &words);
    ladder::build(sc, &ev, &step_marks(result))
}

/// The steps as the ladder marks them.
pub fn step_marks(r: &ScenarioResult) -> Vec<ladder::StepMark> {
    r.steps
        .iter()
        .filter(|s| s.started_us > 0)
        .map(|s| ladder::StepMark {
            index: s.index,
            client: s.client.clone(),
            action: s.action.clone(),
            passed: s.status == Status::Pass,
            started_us: s.started_us,
        })
        .collect()
}

/// Microseconds since the Unix epoch of an RFC 3339 UTC stamp at the start
/// of a log line (`2026-12-01T15:19:56.961446Z …`), as tracing writes them.
fn line_time_us(line: &str) -> Option<u64> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|x| x.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    let micros: i64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    u64::try_from(secs * 1_000_000 + micros).ok()
}

/// The log lines from a little before `from_us` to a little after `to_us`
/// (a few lines of context either side), or `None` when the log carries
/// no time stamps.
fn log_excerpt(text: &str, from_us: u64, to_us: u64) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let times: Vec<Option<u64>> = lines.iter().map(|l| line_time_us(l)).collect();
    if times.iter().all(Option::is_none) {
        return None;
    }
    let first = times
        .iter()
        .position(|t| t.is_some_and(|t| t + 200_000 >= from_us))
        .unwrap_or(lines.len());
    let last = times
        .iter()
        .rposition(|t| t.is_some_and(|t| t <= to_us + 500_000))
        .unwrap_or(0);
    let (a, b) = (first.saturating_sub(5), (last + 3).min(lines.len()));
    (a < b).then(|| lines[a..b.min(a + 120)].join("\n"))
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A scenario's page.
pub fn scenario_page(report_dir: &Path, e: &Entry<'_>) -> String {
    let r = e.result;
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<header><a href=\"index.html\">← all scenarios</a><h1>{} {}</h1></header><main>",
        badge(r.status),
        esc(&r.name)
    );
    if let Some(sc) = e.scenario {
        let _ = write!(b, "<p>{}</p>", esc(&sc.description));
    }
    let _ = write!(
        b,
        "<p><code>{}</code> · tags: {} · {} ms (set-up {} ms, tear-down {} ms)</p>",
        esc(&r.file),
        esc(&r.tags.join(", ")),
        r.duration_ms,
        r.setup_ms,
        r.teardown_ms
    );
    if let Some(f) = &r.failure {
        let _ = write!(b, "<h2>Failure</h2><pre class=\"failure\">{}</pre>", esc(f));
    }
    for n in &r.notes {
        let _ = write!(b, "<p>note: {}</p>", esc(n));
    }
    let lad = match (e.scenario, e.artifacts) {
        (Some(sc), Some(dir)) => Some(ladder_of(sc, dir, r)),
        _ => None,
    };
    if let Some(l) = &lad {
        if !l.findings.is_empty() {
            b.push_str("<h2>What the gateways saw</h2><ul class=\"findings\" id=\"findings\">");
            for (f, row) in l.findings.iter().zip(&l.finding_rows) {
                let _ = write!(b, "<li><a href=\"#ladder-row-{row}\">{}</a></li>", esc(f));
            }
            b.push_str("</ul>");
            if let Some(f) = l.focus() {
                b.push_str("<p>The connections concerned (their client's control and data connections on every side; the full ladder is below):</p>");
                let _ = write!(
                    b,
                    "<div class=\"scroll\" id=\"focus-ladder\">{}</div>",
                    ladder_svg::render_with_prefix(&f, "focus-")
                );
            }
        }
    }
    if let Some(sc) = e.scenario {
        b.push_str("<h2>Topology</h2>");
        b.push_str(&gateway_modes(sc));
        let _ = write!(
            b,
            "<div class=\"scroll\">{}</div>",
            crate::report::svg::topology_svg(sc)
        );
    }
    b.push_str("<h2 id=\"ladder\">Ladder</h2>");
    match &lad {
        Some(l) => {
            b.push_str("<p class=\"legend\"><span style=\"color:#2471a3\">━ control</span><span style=\"color:#1e8449\">━ data</span><span style=\"color:#d35400\">━ reset</span><span style=\"color:#c0392b\">✕ dropped by the gateway</span><span style=\"color:#7d3c98\">┅ translated (NAT/ALG)</span><span style=\"color:#c0392b\">⚠ suspicious reply</span> — one lane per host and per gateway side; each arrow is a segment as that wire carried it; hover for details.</p>");
            if !l.findings.is_empty() {
                b.push_str("<p><label><input type=\"checkbox\" id=\"focus\"> only the connections with findings (drops, suspicious replies)</label></p>");
            }
            for c in &l.caveats {
                let _ = write!(b, "<p><i>{}</i></p>", esc(c));
            }
            let _ = write!(b, "<div class=\"scroll\">{}</div>", ladder_svg::render(l));
        }
        None => b.push_str("<p><i>no artifacts were kept for this scenario (it did not start, or ran without --artifacts)</i></p>"),
    }
    // Steps.
    let failing = r
        .steps
        .iter()
        .find(|s| s.status != Status::Pass)
        .map(|s| s.index);
    b.push_str("<h2>Steps</h2><table id=\"steps\"><tr><th>#</th><th>line</th><th>client</th><th>action</th><th>status</th><th>ms</th><th>seen</th><th>expected / failure</th><th></th></tr>");
    for s in &r.steps {
        let cls = if Some(s.index) == failing {
            "failing"
        } else {
            status_word(s.status)
        };
        let _ = write!(
            b,
            "<tr id=\"step-{}\" class=\"{cls}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.index,
            s.index,
            s.line,
            esc(&s.client),
            esc(&s.action),
            badge(s.status),
            s.duration_ms,
            esc(&s.seen),
            esc(s.failure.as_deref().unwrap_or("as expected")),
            if lad.is_some() && s.started_us > 0 {
                format!("<a href=\"#ladder-step-{}\">ladder</a>", s.index)
            } else {
                String::new()
            }
        );
    }
    b.push_str("</table>");
    // Transcripts.
    if !r.transcripts.is_empty() {
        b.push_str("<h2>Transcripts</h2>");
        for (c, t) in &r.transcripts {
            let _ = write!(b, "<h3>{}</h3><pre>{}</pre>", esc(c), esc(t));
        }
    }
    if let Some(dir) = e.artifacts {
        // Server logs: the end, where a failure usually is.
        let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|d| d.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with("-server.log") || n.ends_with(".container.log"))
            })
            .collect();
        logs.sort();
        let failing_step = r
            .steps
            .iter()
            .find(|s| s.status != Status::Pass && s.started_us > 0);
        for p in &logs {
            let Ok(t) = std::fs::read_to_string(p) else {
                continue;
            };
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            let around = failing_step.and_then(|s| {
                log_excerpt(&t, s.started_us, s.started_us + s.duration_ms * 1000)
                    .map(|x| (s.index, x))
            });
            match around {
                Some((i, x)) => {
                    let _ = write!(
                        b,
                        "<h2>Server log: {} (around step {i})</h2><pre class=\"log\">{}</pre>",
                        esc(&name),
                        esc(&x)
                    );
                }
                None => {
                    let _ = write!(
                        b,
                        "<h2>Server log: {} (last 60 lines)</h2><pre class=\"log\">{}</pre>",
                        esc(&name),
                        esc(&tail_lines(&t, 60))
                    );
                }
            }
        }
    }
    if !r.gateways.is_empty() {
        b.push_str("<h2>Counters</h2>");
        for (g, c) in &r.gateways {
            let v = serde_json::to_value(c).unwrap_or_default();
            let mut rows = Vec::new();
            flatten("", &v, &mut rows);
            let _ = write!(b, "<h3>{}</h3><table>", esc(g));
            for (k, v) in rows {
                let _ = write!(b, "<tr><td>{}</td><td>{}</td></tr>", esc(&k), esc(&v));
            }
            b.push_str("</table>");
        }
    }
    if let Some(dir) = e.artifacts {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|d| d.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        if !files.is_empty() {
            b.push_str("<h2>Artifacts</h2><ul>");
            for f in files {
                let _ = write!(
                    b,
                    "<li><a href=\"{}\">{}</a></li>",
                    esc(&link(report_dir, &f)),
                    esc(&f.file_name().unwrap_or_default().to_string_lossy())
                );
            }
            b.push_str("</ul>");
        }
    }
    b.push_str("</main>");
    b.push_str(r#"<script>
(function(){
  var f=document.getElementById('focus'); if(!f) return;
  var hot={};
  document.querySelectorAll('g.msg.dropped, g.msg.warn').forEach(function(g){hot[g.dataset.flow]=1;});
  f.addEventListener('change',function(){
    document.querySelectorAll('g.msg').forEach(function(g){
      g.style.opacity=(f.checked && !hot[g.dataset.flow])?'0.12':'';
    });
  });
})();
</script>"#);
    page(&r.name, "", &b)
}

/// Nonzero leaves of a JSON value as `a.b` = value rows.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        Value::Number(n) if n.as_f64() == Some(0.0) => {}
        Value::Null => {}
        x => out.push((prefix.to_string(), x.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_excerpt_around_a_step() {
        assert_eq!(
            line_time_us("2026-12-01T15:19:56.961446Z  INFO x"),
            Some(1_796_138_396_961_446)
        );
        assert_eq!(line_time_us("1970-01-01T00:00:01Z a"), Some(1_000_000));
        assert_eq!(line_time_us("no stamp"), None);
        let log: String = (0..40)
            .map(|i| format!("1970-01-01T00:00:{i:02}.000000Z line {i}\n"))
            .collect();
        let x = log_excerpt(&log, 20_000_000, 21_000_000).unwrap();
        assert!(x.contains("line 15") && x.contains("line 23"), "{x}");
        assert!(!x.contains("line 10") && !x.contains("line 30"), "{x}");
        assert_eq!(log_excerpt("a\nb\n", 0, 1), None);
    }

    #[test]
    fn escaping_and_links() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("report");
        let f = d.path().join("report/artifacts/s/gw-wan0.pcap");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, b"").unwrap();
        assert_eq!(link(&a, &f), "artifacts/s/gw-wan0.pcap");
    }
}
