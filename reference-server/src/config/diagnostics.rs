//! Configuration errors and where in the file they are.

use std::path::PathBuf;

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax or type error, with position.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A key has an invalid value.
    #[error("{path}{}: invalid `{key}`: {reason}", position.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Invalid {
        /// File.
        path: PathBuf,
        /// Line and column of the value, when the file holds the key.
        position: Option<(usize, usize)>,
        /// Key path, e.g. `class[0].from`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// Line and column of the value of `key` (`a.b`, `class[0].from`) in a TOML
/// text, if it is there.
pub fn key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut item: &toml_edit::Item = doc.as_item();
    for seg in key.split('.') {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        item = item.get(name)?;
        if let Some(i) = index {
            item = item.get(i)?;
        }
    }
    let span = item
        .span()
        .or_else(|| item.as_value().and_then(|v| v.span()))?;
    Some(line_col(text, span.start))
}

/// Converts a byte offset into 1-based line and column.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, col)
}
