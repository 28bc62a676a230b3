//! Reading a rule set file as nft would: `include` statements are expanded
//! in place (so the text nft reads is one piece), and every line of the
//! result remembers the file and line it came from, so nft's messages and
//! the rules named in a verdict point into the user's own files.
//!
//! Include search follows nft(8): an absolute path is used as it is; a
//! relative one is searched in the include folders (the rule set's own
//! folder first, then the `-I` folders in order). A name with `*?[` is a
//! glob: every folder's matches are read in alphabetical order, files
//! starting with a dot skipped, and no match at all is not an error for nft
//! — here it is a warning naming the glob, because the rules it would have
//! brought are then missing from the verdict. Includes nest up to 16 deep
//! (nft's limit); a file including itself is an error.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

/// Where a line was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file as the user named it (or as the include resolved it).
    pub file: Arc<str>,
    /// 1-based line.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A rule set's text with its line map.
#[derive(Debug, Clone)]
pub struct Source {
    /// What the loader reads (nft: includes expanded in place).
    pub text: String,
    /// Where each line of `text` came from (index 0 is line 1).
    pub origins: Vec<Origin>,
    /// What the user should know about how it was read.
    pub warnings: Vec<String>,
}

/// Why a rule set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file cannot be read.
    #[error("{path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// What the system said.
        error: std::io::Error,
    },
    /// An include names a file that is nowhere in the include folders.
    #[error("{at}: include \"{name}\": no such file in {} (copy it next to the rule set, or name its folder with -I DIR)", .searched.join(", "))]
    IncludeNotFound {
        /// The include statement.
        at: Origin,
        /// The name it includes.
        name: String,
        /// The folders searched.
        searched: Vec<String>,
    },
    /// Includes nest deeper than nft allows, or a file includes itself.
    #[error("{at}: include \"{name}\": {why}")]
    IncludeLoop {
        /// The include statement.
        at: Origin,
        /// The name it includes.
        name: String,
        /// Deeper than 16, or a cycle.
        why: &'static str,
    },
}

const MAX_DEPTH: usize = 16;

impl Source {
    /// A text read as it is (iptables-save output has no includes).
    pub fn plain(text: String, file: &str) -> Source {
        let file: Arc<str> = Arc::from(file);
        let origins = (1..=text.lines().count().max(1))
            .map(|line| Origin {
                file: Arc::clone(&file),
                line,
            })
            .collect();
        Source {
            text,
            origins,
            warnings: Vec::new(),
        }
    }

    /// Reads the nft rule set `path`, expanding includes (see the module
    /// docs for the search order).
    pub fn read_nft(path: &Path, include_dirs: &[PathBuf]) -> Result<Source, SourceError> {
        let mut dirs = vec![path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()];
        dirs.extend(include_dirs.iter().cloned());
        let mut out = Source {
            text: String::new(),
            origins: Vec::new(),
            warnings: Vec::new(),
        };
        let mut stack = Vec::new();
        expand(
            path,
            &path.display().to_string(),
            &dirs,
            &mut stack,
            &mut out,
        )?;
        out.warnings = empty_globs(&out);
        Ok(out)
    }

    /// Where 1-based line `line` of [`Source::text`] was written.
    pub fn origin(&self, line: usize) -> Option<&Origin> {
        line.checked_sub(1).and_then(|i| self.origins.get(i))
    }

    /// `file:line` of 1-based line `line` of [`Source::text`]; a line just
    /// past the end (a loader's "unexpected end of file") is the last
    /// file's next line.
    pub fn locate(&self, line: usize) -> Option<String> {
        match self.origin(line) {
            Some(o) => Some(o.to_string()),
            None if line == self.origins.len() + 1 => self
                .origins
                .last()
                .map(|o| format!("{}:{}", o.file, o.line + 1)),
            None => None,
        }
    }

    /// Rewrites positions in a loader's message (`/dev/stdin:12:5-9:`,
    /// `at line 12`) to the user's `file:line`.
    pub fn map_message(&self, msg: &str) -> String {
        let re = regex::Regex::new(r"/dev/stdin:(\d+):").expect("literal");
        re.replace_all(msg, |c: &regex::Captures<'_>| {
            let n: usize = c[1].parse().unwrap_or(0);
            match self.locate(n) {
                Some(at) => format!("{at}:"),
                None => c[0].to_string(),
            }
        })
        .into_owned()
    }
}

fn read_file(path: &Path, shown: &str) -> Result<String, SourceError> {
    std::fs::read_to_string(path).map_err(|error| SourceError::Read {
        path: shown.to_string(),
        error,
    })
}

/// The file name of an `include "NAME"` line, if the line is one.
pub(crate) fn include_name(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("include")?;
    let rest = rest.trim_start().strip_prefix('"')?;
    let (name, after) = rest.split_once('"')?;
    let after = after.trim_start().trim_start_matches(';').trim_start();
    (after.is_empty() || after.starts_with('#')).then_some(name)
}

fn is_glob(name: &str) -> bool {
    name.contains(['*', '?', '['])
}

fn expand(
    path: &Path,
    shown: &str,
    dirs: &[PathBuf],
    stack: &mut Vec<PathBuf>,
    out: &mut Source,
) -> Result<(), SourceError> {
    let text = read_file(path, shown)?;
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    stack.push(canonical);
    let file: Arc<str> = Arc::from(shown);
    for (i, line) in text.lines().enumerate() {
        let at = Origin {
            file: Arc::clone(&file),
            line: i + 1,
        };
        let Some(name) = include_name(line) else {
            out.text.push_str(line);
            out.text.push('\n');
            out.origins.push(at);
            continue;
        };
        // The include line itself stays as a comment, so the line count of
        // the including file is kept around the expansion.
        out.text.push_str(&format!("# {}\n", line.trim()));
        out.origins.push(at.clone());
        for (found, found_shown) in resolve(name, dirs, &at)? {
            let canonical = found.canonicalize().unwrap_or_else(|_| found.clone());
            if stack.contains(&canonical) {
                return Err(SourceError::IncludeLoop {
                    at,
                    name: name.into(),
                    why: "the file includes itself",
                });
            }
            if stack.len() >= MAX_DEPTH {
                return Err(SourceError::IncludeLoop {
                    at,
                    name: name.into(),
                    why: "includes nest deeper than 16 (nft's limit)",
                });
            }
            expand(&found, &found_shown, dirs, stack, out)?;
        }
    }
    stack.pop();
    Ok(())
}

/// The files an include names, with the names to show for them.
fn resolve(
    name: &str,
    dirs: &[PathBuf],
    at: &Origin,
) -> Result<Vec<(PathBuf, String)>, SourceError> {
    let absolute = name.starts_with('/');
    // nft reads "./x" and "../x" against its working folder; a copied rule
    // set's working folder is its own folder.
    let bases: Vec<PathBuf> = if absolute {
        vec![PathBuf::new()]
    } else if name.starts_with("./") || name.starts_with("../") {
        dirs[..1].to_vec()
    } else {
        dirs.to_vec()
    };
    let shown = |p: &Path| p.display().to_string();
    if !is_glob(name) {
        for base in &bases {
            let p = base.join(name);
            if p.is_file() {
                return Ok(vec![(p.clone(), shown(&p))]);
            }
        }
        return Err(SourceError::IncludeNotFound {
            at: at.clone(),
            name: name.into(),
            searched: if absolute {
                vec!["/".into()]
            } else {
                bases.iter().map(|b| shown(b)).collect()
            },
        });
    }
    let mut found = Vec::new();
    for base in &bases {
        let pattern = base.join(name);
        let Ok(paths) = glob::glob(&pattern.to_string_lossy()) else {
            continue;
        };
        let mut here: Vec<PathBuf> = paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with('.'))
            })
            .collect();
        here.sort();
        found.extend(here.into_iter().map(|p| {
            let s = shown(&p);
            (p, s)
        }));
    }
    Ok(found)
}

/// Warnings for include globs that matched nothing (nft accepts them
/// silently).
fn empty_globs(src: &Source) -> Vec<String> {
    let mut out = Vec::new();
    let lines: Vec<&str> = src.text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.trim_start().strip_prefix("# ").and_then(include_name) else {
            continue;
        };
        if !is_glob(name) {
            continue;
        }
        // Expanded lines follow the comment; a glob that matched nothing
        // is followed by a line of the including file itself.
        let here = &src.origins[i];
        let next_same_file = src
            .origins
            .get(i + 1)
            .is_none_or(|o| o.file == here.file && o.line == here.line + 1);
        if next_same_file {
            out.push(format!(
                "{here}: include \"{name}\" matches no file here: the rules it brings on the router are missing from this check (copy those files next to the rule set, or name their folder with -I DIR)"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn includes_expand_in_place_and_lines_map_back() {
        let d = tempfile::tempdir().unwrap();
        let main = write(
            d.path(),
            "main.nft",
            "define A = 1\ninclude \"vars.nft\"\ntable ip t {\n\tinclude \"parts/*.nft\"\n}\n",
        );
        write(d.path(), "vars.nft", "define B = 2\n");
        write(d.path(), "parts/b.nft", "chain b {\n}\n");
        write(d.path(), "parts/a.nft", "chain a {\n}\n");
        write(d.path(), "parts/.hidden.nft", "garbage\n");
        let s = Source::read_nft(&main, &[]).unwrap();
        let names: Vec<String> = s
            .origins
            .iter()
            .map(|o| {
                format!(
                    "{}:{}",
                    Path::new(&*o.file).file_name().unwrap().to_string_lossy(),
                    o.line
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                "main.nft:1",
                "main.nft:2",
                "vars.nft:1",
                "main.nft:3",
                "main.nft:4",
                "a.nft:1",
                "a.nft:2",
                "b.nft:1",
                "b.nft:2",
                "main.nft:5"
            ]
        );
        assert!(s.text.contains("chain a {\n}\nchain b {"), "{}", s.text);
        assert!(!s.text.contains("garbage"));
        assert!(s.warnings.is_empty());
        let msg = s.map_message("/dev/stdin:6:1-5: Error: x");
        assert!(msg.ends_with("parts/a.nft:1:1-5: Error: x"), "{msg}");
    }

    #[test]
    fn empty_glob_is_a_warning_and_missing_file_an_error() {
        let d = tempfile::tempdir().unwrap();
        let main = write(
            d.path(),
            "main.nft",
            "include \"none.d/*.nft\"\ntable ip t {\n}\n",
        );
        let s = Source::read_nft(&main, &[]).unwrap();
        let w = &s.warnings;
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("main.nft:1: include \"none.d/*.nft\" matches no file"),
            "{w:?}"
        );
        let bad = write(d.path(), "bad.nft", "\ninclude \"missing.nft\"\n");
        let e = Source::read_nft(&bad, &[]).unwrap_err().to_string();
        assert!(
            e.contains("bad.nft:2: include \"missing.nft\": no such file in"),
            "{e}"
        );
        let selfie = write(d.path(), "self.nft", "include \"self.nft\"\n");
        let e = Source::read_nft(&selfie, &[]).unwrap_err().to_string();
        assert!(e.contains("includes itself"), "{e}");
    }

    #[test]
    fn include_dirs_are_searched_after_the_rule_sets_folder() {
        let d = tempfile::tempdir().unwrap();
        let extra = tempfile::tempdir().unwrap();
        let main = write(d.path(), "main.nft", "include \"site.nft\"\n");
        write(extra.path(), "site.nft", "define S = 1\n");
        assert!(Source::read_nft(&main, &[]).is_err());
        let s = Source::read_nft(&main, &[extra.path().to_path_buf()]).unwrap();
        assert!(s.text.contains("define S = 1"));
        assert_eq!(include_name("  include \"x.nft\";  # c"), Some("x.nft"));
        assert_eq!(include_name("include \"x\" foo"), None);
    }
}
