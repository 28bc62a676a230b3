//! A corpus of broken server configurations (`tests/broken-configs/`), each
//! with its error message in one snapshot: every one is refused, the message
//! names the file and the line and column (or the file when it cannot be
//! read), and nothing panics. No DNS query is made: names fail to resolve.

use std::path::{Path, PathBuf};

use ftpnat_server::config::Config;

#[test]
fn broken_server_configs_get_positioned_errors() {
    let dir = Path::new("tests/broken-configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 12, "{files:?}");
    let no_dns = |name: &str| -> std::io::Result<Vec<std::net::IpAddr>> {
        Err(std::io::Error::other(format!("no DNS in tests ({name})")))
    };
    let mut out = String::new();
    for f in &files {
        let err = match std::panic::catch_unwind(|| Config::load_with(f, &no_dns)) {
            Ok(Ok(_)) => panic!("{} was accepted", f.display()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => panic!("{} panicked", f.display()),
        };
        let name = f.display().to_string();
        match err.strip_prefix(&name) {
            Some(rest) => assert!(has_position(rest), "no line:column in {err}"),
            None => assert!(err.starts_with(&format!("cannot read {name}")), "{err}"),
        }
        out.push_str(&err);
        out.push('\n');
    }
    insta::assert_snapshot!(out);
}

/// Whether `s` starts with `:<line>:<column>: `.
fn has_position(s: &str) -> bool {
    let number =
        |p: Option<&str>| p.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let mut parts = s.splitn(4, ':');
    parts.next() == Some("")
        && number(parts.next())
        && number(parts.next())
        && parts.next().is_some_and(|r| r.starts_with(' '))
}
