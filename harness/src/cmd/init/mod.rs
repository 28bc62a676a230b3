//! `ftpnat init [DIR]`: what a user needs to test their own server through
//! a NAT — a sample scenario, a config template and a profile skeleton for
//! the `command` server kind, a project file `ftpnat run` reads, and a CI
//! file wired to `--shard`, JUnit and artifacts. As written, `ftpnat run`
//! in DIR passes against the reference server.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::ValueEnum;

use super::CliError;

/// Which CI system's file to write.
#[derive(Copy, Clone, Debug, ValueEnum)]
pub(crate) enum Ci {
    /// .github/workflows/ftpnat.yml
    Github,
    /// .gitlab-ci.yml (an ftpnat job to include)
    Gitlab,
    /// No CI file.
    None,
}

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Folder to write into (created; default: the current folder).
    #[arg(default_value = ".")]
    pub(crate) dir: PathBuf,
    /// CI file to write.
    #[arg(long, value_enum, default_value = "github")]
    pub(crate) ci: Ci,
    /// Overwrite files that exist.
    #[arg(long)]
    pub(crate) force: bool,
}

/// The files `init` writes: path in DIR, content.
fn files(ci: Ci, dir: &Path) -> Vec<(&'static str, String)> {
    let mut out = vec![
        (super::PROJECT_FILE, include_str!("ftpnat.toml").to_string()),
        (
            "scenarios/my-server-through-nat.toml",
            include_str!("my-server-through-nat.toml").to_string(),
        ),
        (
            "servers/my-server.conf.in",
            include_str!("my-server.conf.in").to_string(),
        ),
        (
            "profiles/my-server.toml",
            include_str!("my-server-profile.toml").to_string(),
        ),
    ];
    let shown = dir.display().to_string();
    match ci {
        Ci::Github => out.push((
            ".github/workflows/ftpnat.yml",
            include_str!("github.yml").replace("@DIR@", &shown),
        )),
        Ci::Gitlab => out.push((
            ".gitlab-ci.yml",
            include_str!("gitlab.yml").replace("@DIR@", &shown),
        )),
        Ci::None => {}
    }
    out
}

pub(crate) fn run(a: Args) -> Result<ExitCode, CliError> {
    let files = files(a.ci, &a.dir);
    if !a.force {
        let existing: Vec<String> = files
            .iter()
            .map(|(p, _)| a.dir.join(p))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(CliError::Input(format!(
                "{} exist(s) already (--force overwrites): {}",
                existing.len(),
                existing.join(", ")
            )));
        }
    }
    for (rel, text) in &files {
        let path = a.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CliError::Input(format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        outln!("wrote {}", path.display());
    }
    outln!();
    outln!("next:");
    if a.dir != Path::new(".") {
        outln!("  cd {}", a.dir.display());
    }
    outln!("  ftpnat run            # the sample scenario, reference server: passes");
    outln!("  edit ftpnat.toml      # run your server (command, template, profile)");
    outln!("  ftpnat doctor         # what this machine can run");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in files(Ci::Github, Path::new("ci/ftpnat")) {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &text).unwrap();
            assert!(!text.contains("@DIR@"), "{rel}");
        }
        ftpnat::scenario::load(&dir.path().join("scenarios/my-server-through-nat.toml"))
            .unwrap_or_else(|d| panic!("{}", d.pretty()));
        ftpnat::profile::Profile::load(&dir.path().join("profiles/my-server.toml")).unwrap();
        let project = super::super::Project::load(&dir.path().join("ftpnat.toml")).unwrap();
        assert_eq!(project.run.paths, vec![PathBuf::from("scenarios")]);
        let ci = std::fs::read_to_string(dir.path().join(".github/workflows/ftpnat.yml")).unwrap();
        for wired in [
            "--shard",
            "--junit",
            "--artifacts",
            "FTPNAT_DIR: \"ci/ftpnat\"",
        ] {
            assert!(ci.contains(wired), "{wired}");
        }
        let gitlab = files(Ci::Gitlab, Path::new("."));
        assert!(gitlab
            .iter()
            .any(|(p, t)| *p == ".gitlab-ci.yml" && t.contains("CI_NODE_INDEX")));
    }
}
