//! Reports of runs in several configurations (`ftpnat diff`: sim and
//! kernel; `ftpnat matrix`: server kinds × engines): a grid of scenario ×
//! configuration with a status per cell, each cell linking to that
//! configuration's own report (`DIR/<column>/`, written by
//! [`super::write_run`]), rows where the configurations differ first,
//! filters by tag and by "differs only".

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use super::{badge, esc, page, page_name, status_word, write_run, Entry, RunInfo};
use crate::{
    outcome::{ScenarioResult, Status},
    report::Summary,
    runner::sanitize,
    scenario::Scenario,
};

/// One configuration's run.
#[derive(Debug)]
pub struct Column<'a> {
    /// Its name (`sim`, `vsftpd / kernel`).
    pub name: String,
    /// Scenarios as run in it.
    pub scenarios: Vec<Scenario>,
    /// Results in the order of `scenarios`.
    pub results: Vec<ScenarioResult>,
    /// Where its artifacts are (`<dir>/<scenario>/`), if kept.
    pub artifacts: Option<&'a Path>,
}

/// A column's folder name.
pub fn slug(name: &str) -> String {
    sanitize(&name.replace(" / ", "-"))
}

/// Writes `dir/index.html` (the grid) and each column's report under
/// `dir/<slug>/`. `notes`: a word per scenario name (e.g. why the engines
/// disagree).
pub fn write(
    dir: &Path,
    info: &RunInfo,
    columns: &[Column<'_>],
    notes: &BTreeMap<String, String>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for c in columns {
        let folders: Vec<Option<std::path::PathBuf>> = c
            .results
            .iter()
            .map(|r| {
                c.artifacts
                    .map(|a| a.join(sanitize(&r.name)))
                    .filter(|d| d.is_dir())
            })
            .collect();
        let entries: Vec<Entry<'_>> = c
            .results
            .iter()
            .zip(&folders)
            .map(|(r, d)| Entry {
                result: r,
                scenario: c.scenarios.iter().find(|s| s.name == r.name),
                artifacts: d.as_deref(),
            })
            .collect();
        let mut sub = info.clone();
        sub.command = format!("{} — {}", info.command, c.name);
        write_run(
            &dir.join(slug(&c.name)),
            &sub,
            &entries,
            Summary::of(&c.results, 0),
        )?;
    }
    std::fs::write(dir.join("index.html"), render(info, columns, notes))
}

/// The grid page.
pub fn render(info: &RunInfo, columns: &[Column<'_>], notes: &BTreeMap<String, String>) -> String {
    let mut b = format!(
        "<header><h1>ftpnat report — {}</h1></header><main><h2>Run</h2><table>",
        esc(&info.command)
    );
    for (k, v) in &info.params {
        let _ = write!(b, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    b.push_str("</table><h2>Results</h2><p class=\"counts\">");
    for c in columns {
        let s = Summary::of(&c.results, 0);
        let _ = write!(
            b,
            "<span><b>{}</b>: {} passed, {} failed, {} errors, {} not supported</span><br>",
            esc(&c.name),
            s.passed,
            s.failed,
            s.errors,
            s.unsupported
        );
    }
    b.push_str("</p><div class=\"filters\"><label><input type=\"checkbox\" id=\"fdiff\"> only scenarios where the columns differ</label>");
    let mut tags: Vec<&str> = columns
        .iter()
        .flat_map(|c| {
            c.results
                .iter()
                .flat_map(|r| r.tags.iter().map(String::as_str))
        })
        .collect();
    tags.sort_unstable();
    tags.dedup();
    b.push_str(" Tag: <select id=\"ftag\"><option value=\"\">(any)</option>");
    for t in &tags {
        let _ = write!(b, "<option>{}</option>", esc(t));
    }
    b.push_str(
        "</select> <span id=\"shown\"></span></div><table id=\"grid\"><tr><th>scenario</th>",
    );
    for c in columns {
        let _ = write!(b, "<th>{}</th>", esc(&c.name));
    }
    if !notes.is_empty() {
        b.push_str("<th>note</th>");
    }
    b.push_str("</tr>");
    // Scenario names in the first column's order; differing rows first.
    let names: Vec<&ScenarioResult> = columns
        .first()
        .map(|c| c.results.iter().collect())
        .unwrap_or_default();
    let cell =
        |c: &Column<'_>, name: &str| c.results.iter().find(|r| r.name == name).map(|r| r.status);
    let mut rows: Vec<(bool, &ScenarioResult)> = names
        .iter()
        .map(|r| {
            let st: Vec<Option<Status>> = columns.iter().map(|c| cell(c, &r.name)).collect();
            (st.windows(2).any(|w| w[0] != w[1]), *r)
        })
        .collect();
    rows.sort_by_key(|(differs, r)| (!differs, r.name.clone()));
    for (differs, r) in rows {
        let _ = write!(
            b,
            "<tr data-differs=\"{differs}\" data-tags=\"{}\"><td>{}</td>",
            esc(&r.tags.join(" ")),
            esc(&r.name)
        );
        for c in columns {
            match cell(c, &r.name) {
                Some(s) => {
                    let _ = write!(
                        b,
                        "<td class=\"{}\"><a href=\"{}/{}\">{}</a></td>",
                        status_word(s),
                        esc(&slug(&c.name)),
                        esc(&page_name(&r.name)),
                        badge(s)
                    );
                }
                None => b.push_str("<td></td>"),
            }
        }
        if !notes.is_empty() {
            let _ = write!(
                b,
                "<td>{}</td>",
                esc(notes.get(&r.name).map_or("", String::as_str))
            );
        }
        b.push_str("</tr>\n");
    }
    b.push_str("</table></main>");
    b.push_str(
        r#"<script>
function applyFilter(){
  var d=document.getElementById('fdiff').checked, tag=document.getElementById('ftag').value, n=0;
  document.querySelectorAll('#grid tr[data-differs]').forEach(function(tr){
    var ok=(!d || tr.dataset.differs==='true') && (!tag || tr.dataset.tags.split(' ').indexOf(tag)>=0);
    tr.style.display=ok?'':'none'; if(ok)n++;
  });
  document.getElementById('shown').textContent=n+' shown';
}
document.getElementById('fdiff').addEventListener('change',applyFilter);
document.getElementById('ftag').addEventListener('change',applyFilter);
applyFilter();
</script>"#,
    );
    page(&format!("ftpnat {}", info.command), "", &b)
}
