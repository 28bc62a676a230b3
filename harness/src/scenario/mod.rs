//! Scenario files: TOML → [`Scenario`]. The format is documented in
//! `docs/scenario-format.md`; `ftpnat schema` prints a JSON Schema generated
//! from [`raw`] for editor completion.

pub mod command;
pub mod raw;
pub mod resolve;
pub mod safety;

use std::path::{Path, PathBuf};

pub use resolve::{load, parse, Action, Diagnostic, Expect, Mode, Scenario, Step, Verb};

/// All `*.toml` files under the given files/folders, sorted, deduplicated.
pub fn discover(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        collect(p, &mut out)?;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(p)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
    if meta.is_dir() {
        for e in std::fs::read_dir(p)? {
            collect(&e?.path(), out)?;
        }
    } else if p.extension().is_some_and(|e| e == "toml") {
        out.push(p.to_owned());
    }
    Ok(())
}

/// The JSON Schema of scenario files.
pub fn json_schema() -> String {
    serde_json::to_string_pretty(&schemars::schema_for!(raw::RawScenario)).unwrap_or_default()
}
